// Package local is the executor that runs a job's children on this machine:
// at most Workers at once across all jobs, started in the order of the input's
// shards, each child retried up to the job's attempt limit with a jittered,
// growing wait between attempts. What an attempt runs is a RunFunc: a
// `flightbatch worker` process (Process.Run, what the server uses, so that a
// child that panics, runs out of memory or is killed fails only its attempt)
// or, in tests, the worker code in this process (batch.Worker.RunShard).
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/internal/backoff"
)

// RunFunc runs one attempt of one child.
type RunFunc func(ctx context.Context, jobID string, shard, attempt int) error

// Options tune an Executor.
type Options struct {
	// RetryWait is the wait between a child's attempts (default: up to 1 s
	// before the second attempt, doubling to 30 s, jittered), so that a
	// store outage of tens of seconds does not use up every attempt at once.
	RetryWait backoff.Policy
}

// Executor runs children on this machine.
type Executor struct {
	run   RunFunc
	slots *fifo
	wait  backoff.Policy

	mu   sync.Mutex
	runs map[string]*run
}

var (
	_ batch.Executor       = (*Executor)(nil)
	_ batch.Notifier       = (*Executor)(nil)
	_ batch.ChangeReporter = (*Executor)(nil)
)

type run struct {
	cancel   context.CancelFunc
	children []batch.Child
	left     int
	// changed is closed, and replaced, at every change of children.
	changed chan struct{}
	// dirty lists the children changed since the last PollChanges, each
	// once (marked).
	dirty  []int
	marked []bool
	// failed lists the children with failed attempts in shard order;
	// pushed those pushed past the first batch.MaxFullErrorShards of them
	// since the last PollChanges (see PollChanges).
	failed, pushed []int
}

// changedLocked records that child i changed and wakes those waiting for a
// change of r's children.
func (r *run) changedLocked(i int) {
	if !r.marked[i] {
		r.marked[i] = true
		r.dirty = append(r.dirty, i)
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// failedLocked records that child i has failed an attempt.
func (r *run) failedLocked(i int) {
	if len(r.children[i].Errors) != 1 {
		return // listed at its first
	}
	shard := r.children[i].Shard
	at, _ := slices.BinarySearchFunc(r.failed, shard, func(j, s int) int { return r.children[j].Shard - s })
	r.failed = slices.Insert(r.failed, at, i)
	if at < batch.MaxFullErrorShards && len(r.failed) > batch.MaxFullErrorShards {
		r.pushed = append(r.pushed, r.failed[batch.MaxFullErrorShards])
	}
}

// New returns an executor that runs at most workers children at once.
func New(fn RunFunc, workers int, opts *Options) *Executor {
	if workers < 1 {
		workers = 1
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.RetryWait.Initial <= 0 {
		o.RetryWait.Initial = time.Second
	}
	if o.RetryWait.Max <= 0 {
		o.RetryWait.Max = 30 * time.Second
	}
	return &Executor{run: fn, slots: newFIFO(workers), wait: o.RetryWait, runs: map[string]*run{}}
}

// Name implements batch.Executor.
func (e *Executor) Name() string { return "local" }

// PollInterval implements batch.Executor. Every change of a child is told
// at once (Changed), so polls at this interval are only a safety net.
func (e *Executor) PollInterval() time.Duration { return 500 * time.Millisecond }

// Changed implements batch.Notifier.
func (e *Executor) Changed(handle string) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.runs[handle]; ok {
		return r.changed
	}
	return nil
}

// Start implements batch.Executor.
func (e *Executor) Start(ctx context.Context, m *batch.Manifest, shards []int) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	handle := "local-" + hex.EncodeToString(b[:])
	// Children outlive the request that started them: they stop on Cancel only.
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &run{cancel: cancel, left: len(shards), changed: make(chan struct{}), marked: make([]bool, len(shards))}
	for i, s := range shards {
		r.children = append(r.children, batch.Child{Shard: s, State: batch.ShardPending})
		r.dirty, r.marked[i] = append(r.dirty, i), true // the first report has them all
	}
	e.mu.Lock()
	e.runs[handle] = r
	e.mu.Unlock()
	attempts := max(m.MaxAttempts, 1)
	for i := range r.children {
		// Queued here, in input order, so that children start in that order.
		turn := e.slots.queue()
		go e.child(cctx, r, i, m.JobID, attempts, turn)
	}
	return handle, nil
}

func (e *Executor) child(ctx context.Context, r *run, i int, jobID string, attempts int, turn *ticket) {
	shard := r.children[i].Shard
	final := batch.ShardFailed
	defer func() {
		e.mu.Lock()
		r.children[i].State = final
		r.left--
		r.changedLocked(i)
		e.mu.Unlock()
	}()
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(e.wait.Delay(attempt - 1))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				final = batch.ShardCancelled
				return
			}
			turn = e.slots.queue()
		}
		if !turn.wait(ctx) {
			final = batch.ShardCancelled
			return
		}
		e.mu.Lock()
		r.children[i].State = batch.ShardRunning
		r.children[i].Attempts = attempt
		r.changedLocked(i)
		e.mu.Unlock()
		err := e.run(ctx, jobID, shard, attempt)
		e.slots.release()
		if err == nil {
			final = batch.ShardSucceeded
			return
		}
		if ctx.Err() != nil {
			final = batch.ShardCancelled
			return
		}
		e.mu.Lock()
		r.children[i].Errors = append(r.children[i].Errors, batch.AttemptError{Attempt: attempt, Error: batch.ClipAttemptError(err.Error()), At: time.Now().UTC()})
		r.failedLocked(i)
		if attempt < attempts {
			r.children[i].State = batch.ShardPending
		}
		r.changedLocked(i)
		e.mu.Unlock()
	}
}

// Poll implements batch.Executor.
func (e *Executor) Poll(ctx context.Context, handle string) (batch.Progress, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.runs[handle]
	if !ok {
		return batch.Progress{}, fmt.Errorf("local: %s: %w", handle, batch.ErrNotRunning)
	}
	p := batch.Progress{Done: r.left == 0, Children: make([]batch.Child, len(r.children))}
	for i, c := range r.children {
		c.Errors = slices.Clone(c.Errors)
		p.Children[i] = c
	}
	var at map[int]int // index in r.children by shard, made when needed
	batch.HandOverErrors(p, func(shard int) []batch.AttemptError {
		if at == nil {
			at = make(map[int]int, len(r.children))
			for i, c := range r.children {
				at[c.Shard] = i
			}
		}
		return r.children[at[shard]].Errors
	})
	if p.Done {
		delete(e.runs, handle) // the manager stops polling a finished run
	}
	return p, nil
}

// PollChanges implements batch.ChangeReporter: it reports the children that
// changed since its last report, at the cost of those. As Poll does
// (batch.HandOverErrors), it then drops the text of the reported errors of
// the children past the first batch.MaxFullErrorShards with failed
// attempts, in shard order, and of those pushed past them since: every
// change having been reported, the manager holds their text.
func (e *Executor) PollChanges(ctx context.Context, handle string) (batch.Progress, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.runs[handle]
	if !ok {
		return batch.Progress{}, fmt.Errorf("local: %s: %w", handle, batch.ErrNotRunning)
	}
	p := batch.Progress{Done: r.left == 0, Children: make([]batch.Child, 0, len(r.dirty))}
	for _, i := range r.dirty {
		c := r.children[i]
		c.Errors = slices.Clone(c.Errors)
		p.Children = append(p.Children, c)
		r.marked[i] = false
	}
	drop := func(i int) {
		for j := range r.children[i].Errors {
			r.children[i].Errors[j].Error = ""
		}
	}
	if len(r.failed) > batch.MaxFullErrorShards {
		past := r.children[r.failed[batch.MaxFullErrorShards]].Shard // the first shard past them
		for _, i := range r.dirty {
			if len(r.children[i].Errors) > 0 && r.children[i].Shard >= past {
				drop(i)
			}
		}
		for _, i := range r.pushed {
			drop(i)
		}
	}
	r.dirty, r.pushed = r.dirty[:0], r.pushed[:0]
	if p.Done {
		delete(e.runs, handle) // the manager stops polling a finished run
	}
	return p, nil
}

// Cancel implements batch.Executor.
func (e *Executor) Cancel(ctx context.Context, handle string) error {
	e.mu.Lock()
	r, ok := e.runs[handle]
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("local: %s: %w", handle, batch.ErrNotRunning)
	}
	r.cancel()
	return nil
}

// fifo is a counting semaphore that grants its slots in the order they were
// queued for.
type fifo struct {
	mu      sync.Mutex
	free    int
	waiting []*ticket
}

// ticket is one place in a fifo's queue.
type ticket struct {
	f       *fifo
	granted chan struct{}
}

func newFIFO(n int) *fifo { return &fifo{free: n} }

// queue takes a place in the queue at once; wait then waits for the slot.
func (f *fifo) queue() *ticket {
	t := &ticket{f: f, granted: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.free > 0 && len(f.waiting) == 0 {
		f.free--
		close(t.granted)
	} else {
		f.waiting = append(f.waiting, t)
	}
	return t
}

// wait waits for the ticket's slot; it returns false, and gives up its place
// (or its slot), if ctx ends first.
func (t *ticket) wait(ctx context.Context) bool {
	select {
	case <-t.granted:
		return true
	case <-ctx.Done():
	}
	f := t.f
	f.mu.Lock()
	for i, w := range f.waiting {
		if w == t {
			f.waiting = append(f.waiting[:i], f.waiting[i+1:]...)
			f.mu.Unlock()
			return false
		}
	}
	f.mu.Unlock()
	// Granted meanwhile: hand the slot on.
	f.release()
	return false
}

// release frees a slot, granting it to the first in the queue.
func (f *fifo) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.waiting) > 0 {
		t := f.waiting[0]
		f.waiting = f.waiting[1:]
		close(t.granted)
		return
	}
	f.free++
}
