package awsbatch_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/awsbatch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/internal/batchtest"
)

// What job-status shows of a psd job whose children AWS Batch could not run:
// the job's error and each shard's attempts and failures say why, and what
// to change.
func TestJobStatusSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		behave   batchtest.Behaviours
		attempts int              // of shard 1
		others   batch.ShardState // shards 0 and 2
		want     []string         // in the job's error and shard 1's last failure
	}{
		{"out of memory", batchtest.Behaviours{Fail: []batchtest.Failure{{Kind: batchtest.OutOfMemory, Index: 1}}},
			1, batch.ShardSucceeded, []string{"OutOfMemoryError", "--batch-memory"}},
		{"stuck runnable", batchtest.Behaviours{StuckRunnable: tooLarge},
			0, batch.ShardFailed, []string{"waited RUNNABLE", "--batch-runnable-timeout", tooLarge}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := newStore(t)
			client, ep := endpoint(t, "")
			ep.SetBehaviours(tc.behave)
			e := newExecutor(t, client, st, &awsbatch.Options{RunnableTimeout: 3 * time.Second})
			cat := dataset.NewCatalog(st)
			if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: 3, Bytes: 30 * 10000, Seconds: 10}); err != nil {
				t.Fatal(err)
			}
			mg := batch.NewManager(cat, analysis.Builtins(), e, &batch.Options{MaxAttempts: 3, Log: slog.New(slog.DiscardHandler)})
			if err := mg.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(mg.Close)
			m, err := mg.Submit(ctx, batch.SubmitRequest{Function: "psd", Dataset: "demo",
				Params: json.RawMessage(`{"column": "samples", "fs_column": "fs", "nperseg": 256}`)})
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(60 * time.Second)
			for !m.State.Terminal() {
				if time.Now().After(deadline) {
					t.Fatalf("job %s still %s after 60 s", m.JobID, m.State)
				}
				time.Sleep(200 * time.Millisecond)
				if m, err = mg.Status(m.JobID); err != nil {
					t.Fatal(err)
				}
			}
			if m.State != batch.StateFailed {
				t.Fatalf("job %s, want FAILED", m.State)
			}
			for _, i := range []int{0, 2} {
				if got := m.Shards[i].State; got != tc.others {
					t.Errorf("shard %d: %s, want %s", i, got, tc.others)
				}
			}
			s := m.Shards[1]
			if s.State != batch.ShardFailed || s.Attempts != tc.attempts || len(s.Errors) != 1 {
				t.Fatalf("shard 1: %s after %d attempts, failures %+v; want FAILED after %d with one failure", s.State, s.Attempts, s.Errors, tc.attempts)
			}
			for _, w := range tc.want {
				if !strings.Contains(m.Error, w) || !strings.Contains(s.Errors[0].Error, w) {
					t.Errorf("job error %q or shard 1's failure %q does not say %q", m.Error, s.Errors[0].Error, w)
				}
			}
		})
	}
}
