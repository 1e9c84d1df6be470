package flight

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// healthCheck answers whether the store answers, from one small store
// request at most every interval however many ask: a result is kept for the
// interval from the start of the request that found it, and callers arriving
// while a request runs wait for that one (single flight). A store that stops
// answering is seen by the first check after the kept result expires, so at
// most one interval late.
type healthCheck struct {
	check func(context.Context) error
	every time.Duration
	now   func() time.Time
	// report, when set, is told each request's result, in order.
	report func(error)

	mu       sync.Mutex
	have     bool      // a request has ended
	at       time.Time // when the last ended request started
	err      error     // its result
	inflight chan struct{}
}

func newHealthCheck(check func(context.Context) error, every time.Duration, now func() time.Time, report func(error)) *healthCheck {
	return &healthCheck{check: check, every: every, now: now, report: report}
}

// Check returns the kept result while it is fresh, else waits for a request
// to the store (the running one, or a new one) or for ctx to end.
func (h *healthCheck) Check(ctx context.Context) error {
	h.mu.Lock()
	if h.have {
		if age := h.now().Sub(h.at); age >= 0 && age < h.every {
			err := h.err
			h.mu.Unlock()
			return err
		}
	}
	done := h.inflight
	if done == nil {
		done = make(chan struct{})
		h.inflight = done
		go h.run(h.now(), done)
	}
	h.mu.Unlock()
	select {
	case <-done:
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.err
	case <-ctx.Done():
		return fmt.Errorf("health: the store did not answer in time: %w", ctx.Err())
	}
}

// run makes one request, bounded by the interval, on behalf of every waiter:
// no one caller's context may end it for the others.
func (h *healthCheck) run(start time.Time, done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), h.every)
	err := h.check(ctx)
	cancel()
	h.mu.Lock()
	h.have, h.at, h.err, h.inflight = true, start, err, nil
	if h.report != nil {
		h.report(err)
	}
	h.mu.Unlock()
	close(done)
}
