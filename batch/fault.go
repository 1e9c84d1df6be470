package batch

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// FaultFunc is called before each attempt of a child; an error it returns fails
// the attempt. It exists for tests: see ParseFaults.
type FaultFunc func(ctx context.Context, jobID, shard string, attempt int) error

// ParseFaults builds the test-only fault hook from its text form, as given to
// the FLIGHTBATCH_FAULTS environment variable (off unless set): comma-separated
// entries "SHARD:N" (fail the first N attempts of that shard's child),
// "SHARD:always" (fail every attempt) and "SHARD:sleep=SECONDS" (slow each
// attempt down, until cancelled). SHARD "*" matches every shard. An empty spec
// gives nil.
//
// Three more crash the process that runs the attempt, as a bug in a function
// would, and exist to test that a child's crash fails only its attempt:
// "SHARD:panic" (an unrecovered panic in a new goroutine), "SHARD:oom"
// (allocate without bound) and "SHARD:kill" (SIGKILL itself). Use them only
// where children run as processes.
func ParseFaults(spec string) (FaultFunc, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	type fault struct {
		failFirst int
		sleep     time.Duration
		crash     string
	}
	faults := map[string]fault{}
	for _, e := range strings.Split(spec, ",") {
		e = strings.TrimSpace(e)
		name, what, ok := strings.Cut(e, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("fault %q: use SHARD:N, SHARD:always or SHARD:sleep=SECONDS", e)
		}
		f := faults[name]
		switch {
		case what == "always":
			f.failFirst = 1 << 30
		case what == "panic" || what == "oom" || what == "kill":
			f.crash = what
		case strings.HasPrefix(what, "sleep="):
			secs, err := strconv.ParseFloat(strings.TrimPrefix(what, "sleep="), 64)
			if err != nil || secs < 0 {
				return nil, fmt.Errorf("fault %q: sleep takes a number of seconds", e)
			}
			f.sleep = time.Duration(secs * float64(time.Second))
		default:
			n, err := strconv.Atoi(what)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("fault %q: use SHARD:N, SHARD:always or SHARD:sleep=SECONDS", e)
			}
			f.failFirst = n
		}
		faults[name] = f
	}
	return func(ctx context.Context, jobID, shard string, attempt int) error {
		f, ok := faults[shard]
		if !ok {
			f, ok = faults["*"]
		}
		if !ok {
			return nil
		}
		if f.sleep > 0 {
			select {
			case <-time.After(f.sleep):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		switch f.crash {
		case "panic":
			done := make(chan struct{})
			go func() {
				defer close(done)
				panic(fmt.Sprintf("injected panic (FLIGHTBATCH_FAULTS) in shard %s, attempt %d", shard, attempt))
			}()
			<-done
		case "oom":
			hog := map[int][]byte{} // kept, so that nothing is freed
			for n := 0; ; n++ {
				b := make([]byte, 64<<20)
				for i := 0; i < len(b); i += 4096 {
					b[i] = 1
				}
				hog[n] = b
			}
		case "kill":
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				_ = p.Kill()
			}
			select {}
		}
		if attempt <= f.failFirst {
			return fmt.Errorf("injected fault (FLIGHTBATCH_FAULTS) in shard %s, attempt %d", shard, attempt)
		}
		return nil
	}, nil
}
