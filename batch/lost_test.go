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

// budgetExecutor's first start reports shard 0 on its first attempt,
// shard 1 on its second and shard 2 on its third, then forgets them all;
// every later start fails each child's every attempt at once. It records
// the attempts each start gave each shard.
type budgetExecutor struct {
	mu     sync.Mutex
	starts []map[int]int // shard -> attempts given, per start
	polls  int
}

func (e *budgetExecutor) Name() string                         { return "budget" }
func (e *budgetExecutor) PollInterval() time.Duration          { return 10 * time.Millisecond }
func (e *budgetExecutor) Cancel(context.Context, string) error { return nil }

func (e *budgetExecutor) Start(_ context.Context, m *batch.Manifest, shards []int) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	given := map[int]int{}
	for _, s := range shards {
		given[s] = m.MaxAttempts
	}
	e.starts = append(e.starts, given)
	return fmt.Sprintf("budget-%d", len(e.starts)), nil
}

func (e *budgetExecutor) Poll(_ context.Context, handle string) (batch.Progress, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var p batch.Progress
	if handle == "budget-1" {
		if e.polls++; e.polls > 2 {
			return p, fmt.Errorf("the backend forgot it: %w", batch.ErrVanished)
		}
		for s := range 3 {
			c := batch.Child{Shard: s, State: batch.ShardRunning, Attempts: s + 1}
			for a := 1; a <= s; a++ {
				c.Errors = append(c.Errors, batch.AttemptError{Attempt: a, Error: "exit status 1", At: time.Now()})
			}
			p.Children = append(p.Children, c)
		}
		return p, nil
	}
	var n int
	fmt.Sscanf(handle, "budget-%d", &n)
	for s, given := range e.starts[n-1] {
		c := batch.Child{Shard: s, State: batch.ShardFailed, Attempts: given}
		for a := 1; a <= given; a++ {
			c.Errors = append(c.Errors, batch.AttemptError{Attempt: a, Error: "exit status 1", At: time.Now()})
		}
		p.Children = append(p.Children, c)
	}
	p.Done = true
	return p, nil
}

// TestLostShardsKeepTheirOwnBudgets: after a loss, the shards run again
// share a start, whose executor gives each the same attempts (those the
// most spent has left); each shard still gets the rest of its own budget,
// in later starts, and none more.
func TestLostShardsKeepTheirOwnBudgets(t *testing.T) {
	st := fileStore(t)
	r := newRig(t, st, "")
	exec := &budgetExecutor{}
	mg := batch.NewManager(r.cat, analysis.Builtins(), exec, &batch.Options{Log: quiet, MaxAttempts: 3})
	t.Cleanup(mg.Close)
	m := waitFor(t, mg, submit(t, mg, "demo", `{"fs": 250}`, false).JobID, terminal)
	if m.State != batch.StateFailed {
		t.Fatalf("job ended %s, want FAILED", m.State)
	}
	for _, s := range m.Shards {
		if s.State != batch.ShardFailed || s.Attempts != 3 || len(s.Errors) != 3 {
			t.Errorf("shard %s: %s after %d attempts with %d errors; want FAILED after its 3 attempts", s.Name, s.State, s.Attempts, len(s.Errors))
		}
	}
	// The first start lost shard 0's first attempt, shard 1's second and
	// shard 2's third: after it, shard 0 had 2 attempts left, shard 1 one,
	// shard 2 none.
	exec.mu.Lock()
	defer exec.mu.Unlock()
	after := map[int]int{}
	for _, given := range exec.starts[1:] {
		for s, n := range given {
			after[s] += n
		}
	}
	if want := map[int]int{0: 2, 1: 1}; fmt.Sprint(after) != fmt.Sprint(want) {
		t.Errorf("attempts given after the loss, by shard: %v, want %v (starts %v)", after, want, exec.starts)
	}
}

// restartBudgetExecutor is a budgetExecutor whose start after the loss
// runs its children for ever (the server dies meanwhile). A second one,
// after a restart, knows none of the first one's handles, and fails each
// child's every attempt at once.
type restartBudgetExecutor struct {
	budgetExecutor
	second bool
}

func (e *restartBudgetExecutor) Poll(ctx context.Context, handle string) (batch.Progress, error) {
	if !e.second && handle == "budget-1" {
		return e.budgetExecutor.Poll(ctx, handle)
	}
	var n int
	if _, err := fmt.Sscanf(handle, "budget-%d", &n); err != nil {
		return batch.Progress{}, err
	}
	if e.second && !strings.HasSuffix(handle, "-after") {
		return batch.Progress{}, batch.ErrNotRunning // the first server's
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var p batch.Progress
	for s, given := range e.starts[n-1] {
		c := batch.Child{Shard: s, State: batch.ShardRunning, Attempts: 1}
		if e.second {
			c = batch.Child{Shard: s, State: batch.ShardFailed, Attempts: given}
			for a := 1; a <= given; a++ {
				c.Errors = append(c.Errors, batch.AttemptError{Attempt: a, Error: "exit status 1", At: time.Now()})
			}
		}
		p.Children = append(p.Children, c)
	}
	p.Done = e.second
	return p, nil
}

func (e *restartBudgetExecutor) Start(ctx context.Context, m *batch.Manifest, shards []int) (string, error) {
	h, err := e.budgetExecutor.Start(ctx, m, shards)
	if e.second {
		h += "-after"
	}
	return h, err
}

// TestLostBudgetsSurviveARestart: the budgets of shards whose attempts an
// executor lost are kept in the store: a server that dies after the start
// that followed the loss, and resumes the job, gives each shard the rest of
// its own budget and none more, as TestLostShardsKeepTheirOwnBudgets's
// server does without a restart.
func TestLostBudgetsSurviveARestart(t *testing.T) {
	st := fileStore(t)
	r := newRig(t, st, "")
	exec1 := &restartBudgetExecutor{}
	mg1 := batch.NewManager(r.cat, analysis.Builtins(), exec1, &batch.Options{Log: quiet, MaxAttempts: 3})
	t.Cleanup(mg1.Close)
	id := submit(t, mg1, "demo", `{"fs": 250}`, false).JobID
	waitFor(t, mg1, id, func(m *batch.Manifest) bool { return m.Handle == "budget-2" })
	mg1.Abandon()
	exec1.mu.Lock()
	if want := map[int]int{0: 1, 1: 1}; fmt.Sprint(exec1.starts[1]) != fmt.Sprint(want) {
		t.Errorf("the start after the loss gave %v, want %v", exec1.starts[1], want)
	}
	exec1.mu.Unlock()

	exec2 := &restartBudgetExecutor{second: true}
	mg2 := batch.NewManager(r.cat, analysis.Builtins(), exec2, &batch.Options{Log: quiet, MaxAttempts: 3})
	t.Cleanup(mg2.Close)
	if err := mg2.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := waitFor(t, mg2, id, terminal)
	if m.State != batch.StateFailed {
		t.Fatalf("job ended %s, want FAILED", m.State)
	}
	for _, s := range m.Shards {
		if s.State != batch.ShardFailed || s.Attempts != 3 {
			t.Errorf("shard %s: %s after %d attempts; want FAILED after its 3 attempts", s.Name, s.State, s.Attempts)
		}
	}
	// Before the restart, shard 0 had spent 1 attempt (lost), shard 1 two;
	// the start after the loss gave each one, but none ran.
	exec2.mu.Lock()
	defer exec2.mu.Unlock()
	after := map[int]int{}
	for _, given := range exec2.starts {
		for s, n := range given {
			after[s] += n
		}
	}
	if want := map[int]int{0: 2, 1: 1}; fmt.Sprint(after) != fmt.Sprint(want) {
		t.Errorf("attempts given after the restart, by shard: %v, want %v (starts %v)", after, want, exec2.starts)
	}
}
