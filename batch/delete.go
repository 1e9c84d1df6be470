package batch

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ErrInUse is wrapped by errors about a job that cannot be deleted now: it is
// running, or another job reads its result.
var ErrInUse = errors.New("in use")

// Delete removes a finished job: its manifest, parts and attempt records, so
// that nothing of it is left in the store. A job that has not ended is
// refused (cancel it first), and so is a job whose result is the input of
// another job, unless force is set and every such job has ended: the input of
// a job that has not ended is never deleted.
func (mg *Manager) Delete(ctx context.Context, id string, force bool) error {
	mg.mu.Lock()
	e, ok := mg.jobs[id]
	if !ok {
		mg.mu.Unlock()
		return fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if state := e.m.State; !state.Terminal() {
		mg.mu.Unlock()
		return fmt.Errorf("job %s is %s; cancel it first (cancel-job), then delete it: %w", id, state, ErrInUse)
	}
	var readers, running []string
	for oid, o := range mg.jobs {
		if o.m.Dataset == Prefix+id {
			readers = append(readers, oid)
			if !o.m.State.Terminal() {
				running = append(running, oid)
			}
		}
	}
	sort.Strings(readers)
	sort.Strings(running)
	switch {
	case len(running) > 0:
		mg.mu.Unlock()
		return fmt.Errorf("job %s's result is the input of job(s) %s, which have not ended: %w", id, strings.Join(running, ", "), ErrInUse)
	case len(readers) > 0 && !force:
		mg.mu.Unlock()
		return fmt.Errorf(`job %s's result is the input of job(s) %s; delete with "force": true to delete it all the same (their results stay): %w`, id, strings.Join(readers, ", "), ErrInUse)
	}
	// Gone from the history at once: no new job can take it as its input.
	delete(mg.jobs, id)
	mg.notifyLocked(e)
	mg.mu.Unlock()
	if err := mg.removeFiles(ctx, id); err != nil {
		// Put it back, so that a later delete finishes the work.
		mg.mu.Lock()
		mg.jobs[id] = e
		mg.notifyLocked(e)
		mg.mu.Unlock()
		return err
	}
	mg.log.Info("job deleted", "job", id, "forced", force && len(readers) > 0)
	return nil
}

// inputGoneLocked reports a job's input result deleted since it was resolved.
func (mg *Manager) inputGoneLocked(m *Manifest) error {
	if in, ok := strings.CutPrefix(m.Dataset, Prefix); ok {
		if _, exists := mg.jobs[in]; !exists {
			return fmt.Errorf("job %q, the input, was deleted: %w", in, ErrNotFound)
		}
	}
	return nil
}

// removeFiles deletes every object under the job's prefix, the manifest last,
// so that a delete cut short leaves a job that can be deleted again.
func (mg *Manager) removeFiles(ctx context.Context, id string) error {
	prefix := Prefix + id + "/"
	objs, err := mg.st.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("batch: delete job %s: list its files: %w", id, err)
	}
	for _, o := range objs {
		if o.Key == ManifestKey(id) {
			continue
		}
		if err := mg.st.Delete(ctx, o.Key); err != nil {
			return fmt.Errorf("batch: delete job %s: %w", id, err)
		}
	}
	if err := mg.st.Delete(ctx, ManifestKey(id)); err != nil {
		return fmt.Errorf("batch: delete job %s: %w", id, err)
	}
	if err := mg.st.RemoveEmptyDirs(prefix); err != nil {
		return fmt.Errorf("batch: delete job %s: %w", id, err)
	}
	return nil
}

// Expire deletes the jobs that ended more than keep ago (by the manager's
// clock), except the inputs of jobs that have not ended; it returns the IDs
// it deleted. Serve calls it periodically when results have a retention time.
func (mg *Manager) Expire(ctx context.Context, keep time.Duration) ([]string, error) {
	cutoff := mg.opts.Now().Add(-keep)
	mg.mu.Lock()
	needed := map[string]bool{}
	for _, e := range mg.jobs {
		if !e.m.State.Terminal() {
			if in, ok := strings.CutPrefix(e.m.Dataset, Prefix); ok {
				needed[in] = true
			}
		}
	}
	var old []string
	for id, e := range mg.jobs {
		end := e.m.CreatedAt
		if e.m.FinishedAt != nil {
			end = *e.m.FinishedAt
		}
		if e.m.State.Terminal() && end.Before(cutoff) && !needed[id] {
			old = append(old, id)
		}
	}
	mg.mu.Unlock()
	sort.Strings(old)
	var deleted []string
	var errs []error
	for _, id := range old {
		// force: a finished job that read an expired result keeps its own.
		err := mg.Delete(ctx, id, true)
		switch {
		case err == nil:
			deleted = append(deleted, id)
		case errors.Is(err, ErrInUse), errors.Is(err, ErrNotFound):
			// A job started reading it, or it was deleted meanwhile.
		default:
			errs = append(errs, err)
		}
	}
	return deleted, errors.Join(errs...)
}

// KeepResults deletes, every interval until the manager closes, the jobs that
// ended more than keep ago (see Expire).
func (mg *Manager) KeepResults(keep, interval time.Duration) {
	mg.wg.Add(1)
	go func() {
		defer mg.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			deleted, err := mg.Expire(mg.ctx, keep)
			if len(deleted) > 0 {
				mg.log.Info("expired results deleted", "jobs", len(deleted), "keep", keep)
			}
			if err != nil && mg.ctx.Err() == nil {
				mg.log.Warn("expire results", "err", err)
			}
			select {
			case <-mg.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}
