package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/child"
	"github.com/flightbatch/flightbatch/internal/procgroup"
)

// Process runs each attempt of a child as its own `flightbatch worker`
// process, the code path the AWS Batch executor's containers run. A child
// that panics, exhausts its memory limit or is killed by a signal ends its
// process, not the server: the attempt fails with an error that says which.
type Process struct {
	// Command is the worker command without its per-attempt flags, e.g.
	// []string{"/usr/local/bin/flightbatch", "worker"}.
	Command []string
	// Store is the store URL the worker opens.
	Store string
	// Env is added to the worker's environment, which is otherwise the server's.
	Env []string
	// MemoryLimit caps each worker's private memory in bytes (the worker sets
	// RLIMIT_DATA on itself before it does anything else; processes it
	// starts inherit the limit); 0 sets none.
	MemoryLimit int64
	// Grace is how long a cancelled worker's process group has between
	// SIGTERM and SIGKILL (default 2 s).
	Grace time.Duration
	// Stderr receives the worker's log (default the server's stderr).
	Stderr io.Writer
}

// tailSize is how much of a worker's stderr is kept to explain its failure.
const tailSize = 64 << 10

// Run implements RunFunc.
func (p *Process) Run(ctx context.Context, jobID string, shard, attempt int) error {
	if len(p.Command) == 0 {
		return errors.New("local: no worker command")
	}
	// The job and store as the executor–worker contract passes them; the
	// shard and attempt as flags, which no backend's variables stand for.
	args := append([]string(nil), p.Command[1:]...)
	args = append(args, "--shard", strconv.Itoa(shard), "--attempt", strconv.Itoa(attempt))
	if p.MemoryLimit > 0 {
		args = append(args, "--memory-limit", strconv.FormatInt(p.MemoryLimit, 10))
	}
	cmd := exec.Command(p.Command[0], args...)
	cmd.Env = append(os.Environ(), p.Env...)
	for _, v := range child.Vars("", jobID, p.Store, "") {
		if v.Value != "" {
			cmd.Env = append(cmd.Env, v.Name+"="+v.Value)
		}
	}
	var logw io.Writer = os.Stderr
	if p.Stderr != nil {
		logw = p.Stderr
	}
	tail := &tailBuffer{max: tailSize}
	cmd.Stderr = io.MultiWriter(logw, tail)
	cmd.Stdout = logw
	// The worker leads a process group of its own, so that stopping it also
	// stops whatever it started, and dies with the server.
	procgroup.Isolate(cmd, true)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker process: %w", err)
	}
	grace := p.Grace
	if grace <= 0 {
		grace = 2 * time.Second
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		_ = procgroup.Stop(cmd.Process, false)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = procgroup.Stop(cmd.Process, true)
		}
	}()
	err := cmd.Wait()
	close(done)
	<-stopped
	// Whatever the worker started dies with it.
	_ = procgroup.Stop(cmd.Process, true)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return explain(cmd.ProcessState, tail.crash(), tail.String(), p.MemoryLimit)
}

// explain turns a worker process's exit into an attempt error a user can act
// on: killed by a signal, out of memory, a crash (the runtime's first line
// about it), or the last line it wrote.
func explain(ps *os.ProcessState, crash, stderr string, limit int64) error {
	status := ps.String()
	if _, sig, ok := procgroup.KilledBy(ps); ok {
		msg := fmt.Sprintf("worker process killed by signal %s", sig)
		if sig == "killed" {
			msg += " (by the kernel's out-of-memory killer, or by hand)"
		}
		if last := lastLine(stderr); last != "" {
			msg += "; its output ends: " + clip(last, 300)
		}
		return errors.New(msg)
	}
	limitText := ""
	if limit > 0 {
		limitText = fmt.Sprintf(" (its limit is %d MiB: serve --child-memory)", limit>>20)
	}
	switch {
	case strings.Contains(crash, "out of memory") || strings.Contains(crash, "cannot allocate memory") || strings.Contains(crash, "MemoryError"):
		return fmt.Errorf("worker process ran out of memory%s: %s", limitText, clip(crash, 200))
	case strings.HasPrefix(crash, "runtime/cgo: pthread_create failed") && limit > 0:
		// Under an address-space limit a new thread's stack is the mapping
		// that fails first (EAGAIN), and the runtime aborts.
		return fmt.Errorf("worker process ran out of memory%s: it could not start a thread: %s", limitText, clip(crash, 200))
	case strings.HasPrefix(crash, "SIGSEGV") && limit > 0:
		return fmt.Errorf("worker process crashed (%s): %s; a Go runtime that cannot map memory can end so, so it may have run out of memory%s", status, clip(crash, 200), limitText)
	case crash != "":
		return fmt.Errorf("worker process crashed (%s): %s", status, clip(crash, 300))
	}
	if ps.ExitCode() == child.ExitPermanent {
		return fmt.Errorf("%s: %w", lastWords(stderr), batch.ErrNotFound)
	}
	// The worker's own error, as its last words "flightbatch: ERROR" say
	// it: the attempt fails with the same message as in a worker in-process.
	if i := strings.LastIndex(stderr, "\n"+workerErrorPrefix); i >= 0 || strings.HasPrefix(stderr, workerErrorPrefix) {
		return errors.New(clip(strings.TrimSpace(stderr[i+1+len(workerErrorPrefix):]), 16<<10))
	}
	return fmt.Errorf("worker process failed (%s): %s", status, clip(lastLine(stderr), 500))
}

func lastWords(stderr string) string {
	if i := strings.LastIndex(stderr, "\n"+workerErrorPrefix); i >= 0 {
		return clip(strings.TrimSpace(stderr[i+1+len(workerErrorPrefix):]), 16<<10)
	}
	return clip(lastLine(stderr), 500)
}

// workerErrorPrefix begins the line in which `flightbatch worker` reports the
// error it exits with.
const workerErrorPrefix = "flightbatch: "

// crashPrefixes begin the line in which a runtime reports a crash.
var crashPrefixes = []string{"panic: ", "fatal error: ", "runtime/cgo: pthread_create failed", "SIGSEGV", "SIGBUS", "SIGILL", "SIGABRT", "runtime: out of memory", "MemoryError", "Traceback"}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// tailBuffer keeps the last max bytes written to it, and the first line that
// reports a crash.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	buf   bytes.Buffer
	line  []byte // the line being written
	first string // the first crash line
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	for _, c := range p {
		if c != '\n' {
			if len(t.line) < 1024 {
				t.line = append(t.line, c)
			}
			continue
		}
		if t.first == "" {
			for _, pre := range crashPrefixes {
				if bytes.HasPrefix(t.line, []byte(pre)) {
					t.first = string(t.line)
					break
				}
			}
		}
		t.line = t.line[:0]
	}
	return len(p), nil
}

func (t *tailBuffer) crash() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
