package flight_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/internal/testserver"
	"github.com/flightbatch/flightbatch/pkg/api"
)

// TestFailuresBounded: a job whose shards all fail with long stderr tails
// answers job-status and list-jobs in bounded size: at most
// MaxStatusFailures shards listed in shard order, failures_total counting
// them all, each error cut in the middle (its start and the cause at its end kept), the job's error
// naming the first shards and counting the others.
func TestFailuresBounded(t *testing.T) {
	for _, tc := range []struct {
		name             string
		shards, attempts int
		errLen           int
	}{
		{"few shards, short errors", 6, 2, 100},
		{"more shards than listed, 9000-byte stderr tails", flight.MaxStatusFailures + 20, 1, 9000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cause := func(shard string, attempt int) string {
				return fmt.Sprintf("cause: %s attempt %d ran out of disk", shard, attempt)
			}
			fault := func(_ context.Context, _, shard string, attempt int) error {
				c := cause(shard, attempt)
				return fmt.Errorf("exit status 1; stderr: %s%s", strings.Repeat("x", max(tc.errLen-len(c), 0)), c)
			}
			srv := testserver.Start(t, testserver.Options{Shards: tc.shards, Records: tc.shards, Seconds: 1, Fault: fault, MaxAttempts: tc.attempts})
			c := dial(t, srv.Addr)
			st := waitState(t, c, submitPSD(t, c, nil).JobID, 120*time.Second)
			if st.State != "FAILED" {
				t.Fatalf("job ended %s, want FAILED", st.State)
			}
			listed := min(tc.shards, flight.MaxStatusFailures)
			if st.FailuresTotal != tc.shards || len(st.Failures) != listed {
				t.Fatalf("failures_total %d with %d listed; want %d with %d", st.FailuresTotal, len(st.Failures), tc.shards, listed)
			}
			for i, f := range st.Failures {
				if want := fmt.Sprintf("part-%05d", i); f.Shard != want || f.State != "FAILED" || f.Attempts != tc.attempts || len(f.Errors) != tc.attempts {
					t.Fatalf("failure %d is %s %s, %d attempts, %d errors; want %s FAILED, %d and %d", i, f.Shard, f.State, f.Attempts, len(f.Errors), want, tc.attempts, tc.attempts)
				}
				for a, e := range f.Errors {
					if len(e) > batch.MaxAttemptErrorBytes+32 || !strings.HasPrefix(e, fmt.Sprintf("attempt %d: ", a+1)) || !strings.HasSuffix(e, cause(f.Shard, a+1)) {
						t.Errorf("shard %s error %d: %d bytes, %q...%q", f.Shard, a, len(e), e[:min(len(e), 40)], e[max(len(e)-60, 0):])
					}
					if !strings.Contains(e, "exit status 1; stderr: x") {
						t.Errorf("shard %s error %d lost its start: %q", f.Shard, a, e[:min(len(e), 80)])
					}
					if cut := strings.Contains(e, "cut in the middle"); cut != (tc.errLen > batch.MaxAttemptErrorBytes) {
						t.Errorf("shard %s error %d: cut %v for a %d-byte error", f.Shard, a, cut, tc.errLen)
					}
				}
			}
			named := min(tc.shards, batch.MaxJobErrorShards)
			if n := strings.Count(st.Error, "failed after"); n != named || len(st.Error) > batch.MaxJobErrorBytes {
				t.Errorf("job error names %d shards in %d bytes; want %d in at most %d", n, len(st.Error), named, batch.MaxJobErrorBytes)
			}
			if more := tc.shards - named; more > 0 && !strings.HasSuffix(st.Error, fmt.Sprintf("and %d more shards failed; see failures", more)) {
				t.Errorf("job error ends %q; want the count of the other %d shards", st.Error[max(len(st.Error)-80, 0):], more)
			}

			// One shard listed costs its name and its attempts' errors.
			limit := listed*(tc.attempts*(batch.MaxAttemptErrorBytes+64)+200) + batch.MaxJobErrorBytes + 4096
			var raw json.RawMessage
			mustAction(t, c, api.ActionJobStatus, api.JobRef{JobID: st.JobID}, &raw)
			if len(raw) > limit {
				t.Errorf("job-status is %d bytes; want at most %d", len(raw), limit)
			}
			mustAction(t, c, api.ActionListJobs, map[string]any{}, &raw)
			var jobs api.ListJobsResult
			if err := json.Unmarshal(raw, &jobs); err != nil || len(jobs.Jobs) != 1 {
				t.Fatalf("list-jobs: %v, %d jobs", err, len(jobs.Jobs))
			}
			if len(raw) > limit || jobs.Jobs[0].FailuresTotal != tc.shards || len(jobs.Jobs[0].Failures) != listed {
				t.Errorf("list-jobs is %d bytes (at most %d) with failures_total %d and %d listed; want %d and %d",
					len(raw), limit, jobs.Jobs[0].FailuresTotal, len(jobs.Jobs[0].Failures), tc.shards, listed)
			}
		})
	}
}
