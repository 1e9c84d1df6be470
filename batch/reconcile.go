package batch

import (
	"fmt"
	"slices"
	"time"
)

// reconciler is what the drive of a job keeps across the times its executor
// could not account for its children (ErrVanished).
type reconciler struct {
	// limit is, by shard index, the last attempt the shard's budget allows:
	// its attempt base when the job was started (or resumed) plus the job's
	// MaxAttempts. A start after a loss does not renew it.
	limit map[int]int
	// again holds the shards started again after a loss: those rerunLeft
	// may start again (a shard that failed for good before stays failed).
	again map[int]bool
	// times counts the losses, for the wait before the next start.
	times int
}

// reconcile settles a job whose executor no longer knows its children (cause
// wraps ErrVanished: AWS Batch or Slurm forgot the job, its endpoint or
// controller lost its state) against the store, as resume does for a local
// job after a restart. Every shard whose part is stored has succeeded (the
// parts are checked again, as for any job, when it ends). Every other shard
// still pending or running lost its attempt: the attempt is counted (with
// the error its worker recorded, or one saying it was lost, kept in the
// store like any failed attempt's), and the shard runs again, after a
// jittered wait that grows with each loss, while its attempts last; a shard
// whose attempts are spent fails. It returns true when children run again
// (the drive follows the new start), false when the job has ended, or when
// the manager is closing.
func (mg *Manager) reconcile(id string, r *reconciler, cause error, cancel <-chan struct{}) (bool, error) {
	m, err := mg.Status(id)
	if err != nil {
		return false, err
	}
	if r.limit == nil {
		r.limit, r.again = map[int]int{}, map[int]bool{}
	}
	for i, s := range m.Shards {
		if _, ok := r.limit[i]; !ok {
			r.limit[i] = s.budget(m.MaxAttempts)
		}
	}
	r.times++
	now := mg.opts.Now().UTC()
	why := fmt.Sprintf("attempt lost: the %s executor no longer knows the job's children (%v), and the shard's part is not in the store", mg.exec.Name(), cause)

	type settled struct {
		done     bool
		attempts int
		err      AttemptError
		failed   bool
	}
	found := map[int]settled{}
	rows := map[int]int64{}
	var todo []int
	for i, s := range m.Shards {
		if s.State != ShardPending && s.State != ShardRunning {
			continue // succeeded, or failed for good before the loss
		}
		ok, err := mg.st.Exists(mg.ctx, PartKey(id, s.Name))
		if err != nil {
			// The store will answer later: the next poll finds the job lost again.
			mg.log.Warn("reconcile a lost job with the store; will retry", "job", id, "err", err)
			return mg.pause(r.times, cancel)
		}
		if ok {
			found[i] = settled{done: true}
			if rec, ok, err := ReadPartRecord(mg.ctx, mg.st, id, s.Name); err == nil && ok && s.Rows == nil {
				rows[i] = rec.Rows
			}
			continue
		}
		// The attempt that was running (or was to run) is lost; attempts the
		// server did not see, recorded by their workers, count too.
		used := max(s.Attempts, s.AttemptBase+1)
		for used < r.limit[i] {
			if rec, err := ReadAttemptError(mg.ctx, mg.st, id, s.Name, used+1); err != nil || rec == nil {
				break
			}
			used++
		}
		ae := AttemptError{Attempt: used, Error: ClipAttemptError(why), At: now}
		if rec, err := ReadAttemptError(mg.ctx, mg.st, id, s.Name, used); err == nil && rec != nil {
			ae = *rec // its worker said why it failed
			ae.Error = ClipAttemptError(ae.Error)
		} else if err := recordAttemptError(mg.ctx, mg.st, id, s.Name, AttemptError{Attempt: used, Error: why, At: now}); err != nil {
			mg.log.Warn("record lost attempt", "job", id, "shard", s.Name, "attempt", used, "err", err)
		}
		st := settled{attempts: used, err: ae, failed: used >= r.limit[i]}
		found[i] = st
		if !st.failed {
			todo = append(todo, i)
		}
	}
	if _, err := mg.mustUpdate(id, func(m *Manifest) {
		setRows(m, rows)
		for i, f := range found {
			s := &m.Shards[i]
			if f.done {
				s.Attempts = max(s.Attempts, s.AttemptBase+1) // its part was written by one
				markSucceeded(m, i)
				if s.FinishedAt == nil {
					s.FinishedAt = &now
				}
				continue
			}
			s.Attempts = max(s.Attempts, f.attempts)
			// Stored, so that a restart keeps the budget (catchUp, resume).
			s.AttemptLimit = r.limit[i]
			if !slices.ContainsFunc(s.Errors, func(e AttemptError) bool { return e.Attempt == f.err.Attempt }) {
				s.Errors = append(s.Errors, f.err)
			}
			s.State = ShardPending
			if f.failed {
				s.State, s.FinishedAt = ShardFailed, &now
			}
		}
	}); err != nil {
		return false, err
	}
	mg.log.Warn("the executor lost the job's children; reconciled with the store", "job", id, "executor", mg.exec.Name(),
		"err", cause, "rerun", len(todo))
	if len(todo) == 0 {
		return false, mg.finish(id, nil)
	}
	if again, err := mg.pause(r.times, cancel); !again || err != nil {
		return false, err
	}
	if m, _ := mg.Status(id); m.CancelRequested {
		return false, mg.finish(id, nil)
	}
	for _, i := range todo {
		r.again[i] = true
	}
	if err := mg.startShards(id, todo, r.fewestLeft(todo, func(i int) int { return found[i].attempts })); err != nil {
		return false, err
	}
	return true, nil
}

// budget is the last attempt the shard's budget allows, maxAttempts being
// its job's MaxAttempts: its AttemptLimit once a loss has fixed it, else
// the attempts of its current start.
func (s *ShardRecord) budget(maxAttempts int) int {
	if s.AttemptLimit > 0 {
		return s.AttemptLimit
	}
	return s.AttemptBase + maxAttempts
}

// fewestLeft is the attempts the most spent of shards todo has left, used(i)
// being the attempts shard i has spent: an executor gives every shard of a
// start the same attempts, so a start after a loss gives each of its shards
// that many, which none overspends; rerunLeft gives the others the rest.
func (r *reconciler) fewestLeft(todo []int, used func(i int) int) int {
	attempts := 0
	for _, i := range todo {
		if left := r.limit[i] - used(i); attempts == 0 || left < attempts {
			attempts = left
		}
	}
	return attempts
}

// rerunLeft, when the children of a job's start after a loss are done (p's
// report, which progress applies), starts again the shards that failed
// with attempts left in their budgets: each shard gets its own attempts,
// however many its companions in the start had left. It returns false
// (nothing started) when there is no loss to make up for, no such shard,
// or the job is cancelled; the drive then finishes the job.
func (mg *Manager) rerunLeft(id string, r *reconciler, progress func(m *Manifest)) (bool, error) {
	if r.limit == nil {
		return false, nil
	}
	m, err := mg.Status(id)
	if err != nil || m.CancelRequested {
		return false, err
	}
	progress(m)
	var todo []int
	for i, s := range m.Shards {
		if r.again[i] && s.State == ShardFailed && s.Attempts < r.limit[i] {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return false, nil
	}
	if _, err := mg.mustUpdate(id, func(m *Manifest) {
		progress(m)
		for _, i := range todo {
			m.Shards[i].State, m.Shards[i].FinishedAt = ShardPending, nil
		}
	}); err != nil {
		return false, err
	}
	attempts := r.fewestLeft(todo, func(i int) int { return m.Shards[i].Attempts })
	mg.log.Info("run again the shards with attempts left after a loss", "job", id, "shards", len(todo), "attempts", attempts)
	if err := mg.startShards(id, todo, attempts); err != nil {
		return false, err
	}
	return true, nil
}

// pause waits before the next try after the n-th loss of a job's children:
// true when the drive goes on, false (the job ended CANCELLED, or the
// manager is closing) when it stops.
func (mg *Manager) pause(n int, cancel <-chan struct{}) (bool, error) {
	t := time.NewTimer(mg.opts.Retry.Delay(n))
	defer t.Stop()
	select {
	case <-mg.ctx.Done():
		return false, nil
	case <-cancel:
		return true, nil // the drive's next turn cancels
	case <-t.C:
		return true, nil
	}
}
