package batch_test

import (
	"context"
	"fmt"
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

// TestJobLostByItsExecutor: a job that fails because its executor lost its
// children (AWS Batch or Slurm forgot the job) or would not start them ends
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
		})
	}
}
