package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
)

// losingExecutor reports its children running, then loses them (Poll
// returns its error); with refuse set, Start fails instead.
type losingExecutor struct {
	refuse, lose error

	mu     sync.Mutex
	shards []int
	polls  int
}

func (e *losingExecutor) Name() string                { return "losing" }
func (e *losingExecutor) PollInterval() time.Duration { return 10 * time.Millisecond }
func (e *losingExecutor) Cancel(context.Context, string) error {
	return nil
}

func (e *losingExecutor) Start(_ context.Context, _ *batch.Manifest, shards []int) (string, error) {
	if e.refuse != nil {
		return "", e.refuse
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.shards = shards
	return "losing-1", nil
}

func (e *losingExecutor) Poll(context.Context, string) (batch.Progress, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.polls++
	if e.polls > 2 {
		return batch.Progress{}, e.lose
	}
	var p batch.Progress
	for i, s := range e.shards {
		st := batch.ShardRunning
		if i == 0 {
			st = batch.ShardPending
		}
		p.Children = append(p.Children, batch.Child{Shard: s, State: st, Attempts: 1})
	}
	return p, nil
}

// TestJobLostByItsExecutor: a job that fails because its executor keeps
// losing its children (AWS Batch or Slurm forgot the job; each loss costs
// every shard without a part an attempt) or would not start them ends
// with no shard left pending or running: none runs any longer, and the
// job's page, job-status and the running-children gauge would say otherwise
// for ever.
func TestJobLostByItsExecutor(t *testing.T) {
	for _, tc := range []struct {
		name string
		exec *losingExecutor
	}{
		{"vanished", &losingExecutor{lose: fmt.Errorf("the backend forgot it: %w", batch.ErrVanished)}},
		{"start refused", &losingExecutor{refuse: fmt.Errorf("no such queue: %w", batch.ErrInvalid)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := fileStore(t)
			r := newRig(t, st, "")
			mg := batch.NewManager(r.cat, analysis.Builtins(), tc.exec, &batch.Options{Log: quiet})
			t.Cleanup(mg.Close)
			m := waitFor(t, mg, submit(t, mg, "demo", `{"fs": 250}`, false).JobID, terminal)
			if m.State != batch.StateFailed {
				t.Fatalf("job ended %s, want FAILED", m.State)
			}
			c := m.Counts()
			if c.Running != 0 || c.Pending != 0 || c.Failed != len(m.Shards) {
				t.Errorf("FAILED job's shards: %+v; want all %d failed, none running or pending (error %q)", c, len(m.Shards), m.Error)
			}
			if tc.name != "vanished" {
				return
			}
			// Each loss cost every shard an attempt, and started it again
			// while its attempts lasted.
			if !strings.Contains(m.Error, "attempt lost") || !strings.Contains(m.Error, "no longer knows") {
				t.Errorf("the job's error does not say its children were lost: %q", m.Error)
			}
			for _, s := range m.Shards {
				if s.Attempts != 3 || len(s.Errors) != 3 {
					t.Errorf("shard %s: %d attempts, %d errors; want the 3 attempts lost", s.Name, s.Attempts, len(s.Errors))
				}
			}
		})
	}
}

// TestFinalStateWinsForShardsToo: a server that stored a job's final state
// and died before its manifest took it ends the job at its next start, and
// the shards the old manifest had pending or running end with it.
func TestFinalStateWinsForShardsToo(t *testing.T) {
	for _, tc := range []struct {
		final     batch.State
		succeeded int
	}{{batch.StateFailed, 2}, {batch.StateCancelled, 2}, {batch.StateSucceeded, 3}} {
		final := tc.final
		t.Run(string(final), func(t *testing.T) {
			st := fileStore(t)
			r1 := newRig(t, st, "part-00001:sleep=60")
			m := submit(t, r1.mg, "demo", `{"fs": 250}`, false)
			m = waitFor(t, r1.mg, m.JobID, func(m *batch.Manifest) bool {
				return m.Counts().Succeeded == 2 && m.Counts().Running == 1
			})
			r1.mg.Close()
			ctx := context.Background()
			_ = r1.exec.Cancel(ctx, m.Handle)
			data, err := json.Marshal(batch.Final{State: final, Error: "ended before the crash", FinishedAt: time.Now().UTC()})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.WriteAll(ctx, batch.FinalKey(m.JobID), data); err != nil {
				t.Fatal(err)
			}
			r2 := newRig(t, st, "")
			got, err := r2.mg.Status(m.JobID)
			if err != nil {
				t.Fatal(err)
			}
			c := got.Counts()
			if got.State != final || c.Running != 0 || c.Pending != 0 || c.Succeeded != tc.succeeded {
				t.Errorf("after the restart: %s with shards %+v; want %s, %d succeeded, none pending or running", got.State, c, final, tc.succeeded)
			}
		})
	}
}
