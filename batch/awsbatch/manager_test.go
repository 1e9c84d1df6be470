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

// A job whose AWS Batch job the endpoint no longer knows (it restarted while
// the server was down, and forgot every job) is reconciled with the store:
// the shards whose parts are stored have succeeded, each other one lost an
// attempt and runs again while its attempts last. It ends SUCCEEDED when
// every part is there, FAILED only when a shard's attempts are spent, with
// an error saying the attempt was lost.
func TestForgottenJobReconciled(t *testing.T) {
	for _, tc := range []struct {
		name     string
		faults   string // of the children the endpoint that forgets runs
		attempts int    // the job's MaxAttempts
		want     batch.State
		shard1   int // attempts of shard 1
	}{
		{"every part stored", "*:sleep=1", 2, batch.StateSucceeded, 1},
		{"a part missing, run again", "part-00001:sleep=60", 2, batch.StateSucceeded, 2},
		{"a part missing, attempts spent", "part-00001:sleep=60", 1, batch.StateFailed, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := newStore(t)
			client, ep := endpoint(t, tc.faults)
			cat := dataset.NewCatalog(st)
			if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: 3, Bytes: 30 * 10000, Seconds: 10}); err != nil {
				t.Fatal(err)
			}
			opts := &batch.Options{MaxAttempts: tc.attempts, Log: slog.New(slog.DiscardHandler)}
			first := batch.NewManager(cat, analysis.Builtins(), newExecutor(t, client, st, nil), opts)
			if err := first.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			m, err := first.Submit(ctx, batch.SubmitRequest{Function: "psd", Dataset: "demo",
				Params: json.RawMessage(`{"column": "samples", "fs_column": "fs", "nperseg": 256}`)})
			if err != nil {
				t.Fatal(err)
			}
			parts := func() int {
				n := 0
				for _, s := range m.Shards {
					if ok, err := st.Exists(ctx, batch.PartKey(m.JobID, s.Name)); err != nil {
						t.Fatal(err)
					} else if ok {
						n++
					}
				}
				return n
			}
			// The server stops while shard 1 runs; its children go on.
			deadline := time.Now().Add(60 * time.Second)
			for {
				cur, _ := first.Status(m.JobID)
				if cur.State.Terminal() {
					t.Fatalf("the job ended %s before the server stopped", cur.State)
				}
				if cur.Shards[1].State == batch.ShardRunning && (tc.faults[0] == '*' || parts() == 2) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("shard 1 not running after 60 s: %+v", cur.Shards)
				}
				time.Sleep(100 * time.Millisecond)
			}
			first.Close()
			if tc.faults[0] == '*' {
				for parts() < 3 {
					if time.Now().After(deadline) {
						t.Fatal("the children did not store every part within 60 s")
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			if err := ep.Close(); err != nil { // the endpoint restarts: its children die with it
				t.Fatal(err)
			}
			// The server starts again, against an endpoint that never knew the job.
			other, _ := endpoint(t, "")
			again := batch.NewManager(cat, analysis.Builtins(), newExecutor(t, other, st, nil), opts)
			if err := again.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(again.Close)
			deadline = time.Now().Add(90 * time.Second)
			for !m.State.Terminal() {
				if time.Now().After(deadline) {
					t.Fatalf("job %s still %s after 90 s", m.JobID, m.State)
				}
				time.Sleep(100 * time.Millisecond)
				if m, err = again.Status(m.JobID); err != nil {
					t.Fatal(err)
				}
			}
			if m.State != tc.want {
				t.Fatalf("job ended %s (%s), want %s", m.State, m.Error, tc.want)
			}
			for _, i := range []int{0, 2} {
				if s := m.Shards[i]; s.State != batch.ShardSucceeded || s.Attempts != 1 {
					t.Errorf("shard %d: %s after %d attempts, want SUCCEEDED after 1 (its part was stored)", i, s.State, s.Attempts)
				}
			}
			s := m.Shards[1]
			wantState := batch.ShardSucceeded
			if tc.want == batch.StateFailed {
				wantState = batch.ShardFailed
			}
			if s.State != wantState || s.Attempts != tc.shard1 || len(s.Errors) != tc.shard1-1+boolInt(tc.want == batch.StateFailed) {
				t.Fatalf("shard 1: %s after %d attempts, errors %+v; want %s after %d", s.State, s.Attempts, s.Errors, wantState, tc.shard1)
			}
			if len(s.Errors) > 0 && (!strings.Contains(s.Errors[0].Error, "attempt lost") || !strings.Contains(s.Errors[0].Error, "no longer knows")) {
				t.Errorf("shard 1's lost attempt: %q does not say it was lost", s.Errors[0].Error)
			}
			if tc.want == batch.StateFailed && !strings.Contains(m.Error, "attempt lost") {
				t.Errorf("the job's error %q does not say the attempt was lost", m.Error)
			}
			if tc.want == batch.StateSucceeded {
				r, err := again.OpenResult(ctx, m.JobID, "")
				if err != nil {
					t.Fatal(err)
				}
				var rows int64
				for r.Next() {
					rows += r.RecordBatch().NumRows()
				}
				err = r.Err()
				r.Release()
				if want := inputRows(t, cat); err != nil || rows != want {
					t.Errorf("the merged result has %d rows (%v), the input %d", rows, err, want)
				}
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// inputRows counts the rows of the demo dataset.
func inputRows(t *testing.T, cat *dataset.Catalog) int64 {
	t.Helper()
	ds, err := cat.Get(context.Background(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range ds.Shards {
		n += s.Rows
	}
	return n
}
