// Package local is the executor that runs a job's children on this machine:
// one goroutine per running child, at most Workers at once across all jobs,
// each child retried up to the job's attempt limit.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/flightbatch/flightbatch/batch"
)

// RunFunc runs one attempt of one child (batch.Worker.RunShard).
type RunFunc func(ctx context.Context, jobID string, shard, attempt int) error

// Executor runs children in this process.
type Executor struct {
	run   RunFunc
	slots chan struct{}

	mu   sync.Mutex
	runs map[string]*run
}

var _ batch.Executor = (*Executor)(nil)

type run struct {
	cancel   context.CancelFunc
	children []batch.Child
	left     int
}

// New returns an executor that runs at most workers children at once.
func New(fn RunFunc, workers int) *Executor {
	if workers < 1 {
		workers = 1
	}
	return &Executor{run: fn, slots: make(chan struct{}, workers), runs: map[string]*run{}}
}

// Name implements batch.Executor.
func (e *Executor) Name() string { return "local" }

// PollInterval implements batch.Executor.
func (e *Executor) PollInterval() time.Duration { return 50 * time.Millisecond }

// Start implements batch.Executor.
func (e *Executor) Start(ctx context.Context, m *batch.Manifest, shards []int) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	handle := "local-" + hex.EncodeToString(b[:])
	// Children outlive the request that started them: they stop on Cancel only.
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &run{cancel: cancel, left: len(shards)}
	for _, s := range shards {
		r.children = append(r.children, batch.Child{Shard: s, State: batch.ShardPending})
	}
	e.mu.Lock()
	e.runs[handle] = r
	e.mu.Unlock()
	attempts := max(m.MaxAttempts, 1)
	// Children take their first slot in input order, so the first shards'
	// parts come first; a retry waits for a slot like any child.
	go func() {
		for i := range r.children {
			select {
			case e.slots <- struct{}{}:
				go e.child(cctx, handle, r, i, m.JobID, attempts, true)
			case <-cctx.Done():
				for j := i; j < len(r.children); j++ {
					go e.child(cctx, handle, r, j, m.JobID, attempts, false)
				}
				return
			}
		}
	}()
	return handle, nil
}

// child runs one child's attempts; slotHeld says that its first attempt's
// slot is already taken.
func (e *Executor) child(ctx context.Context, handle string, r *run, i int, jobID string, attempts int, slotHeld bool) {
	shard := r.children[i].Shard
	final := batch.ShardFailed
	defer func() {
		e.mu.Lock()
		r.children[i].State = final
		r.left--
		e.mu.Unlock()
	}()
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt == 1 && slotHeld {
			if ctx.Err() != nil {
				<-e.slots
				final = batch.ShardCancelled
				return
			}
		} else {
			select {
			case e.slots <- struct{}{}:
			case <-ctx.Done():
				final = batch.ShardCancelled
				return
			}
		}
		e.mu.Lock()
		r.children[i].State = batch.ShardRunning
		r.children[i].Attempts = attempt
		e.mu.Unlock()
		err := e.run(ctx, jobID, shard, attempt)
		<-e.slots
		if err == nil {
			final = batch.ShardSucceeded
			return
		}
		if ctx.Err() != nil {
			final = batch.ShardCancelled
			return
		}
		e.mu.Lock()
		r.children[i].Errors = append(r.children[i].Errors, batch.AttemptError{Attempt: attempt, Error: err.Error(), At: time.Now().UTC()})
		if attempt < attempts {
			r.children[i].State = batch.ShardPending
		}
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
		c.Errors = append([]batch.AttemptError(nil), c.Errors...)
		p.Children[i] = c
	}
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
