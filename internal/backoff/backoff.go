// Package backoff retries an operation that fails transiently, waiting between
// tries with exponential backoff and full jitter, so that an outage of tens of
// seconds (an S3 endpoint restarting, a network blip) is ridden out instead of
// failing every try within milliseconds.
package backoff

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy says how long to wait between tries and when to give up. The zero
// value waits 200 ms, doubling up to 10 s a wait, for at most 2 minutes.
type Policy struct {
	// Initial is the first wait's upper bound (default 200 ms).
	Initial time.Duration
	// Max caps one wait (default 10 s).
	Max time.Duration
	// Budget is how long to keep trying, from the first try (default 2 min);
	// a negative Budget tries once.
	Budget time.Duration
	// Retryable reports whether an error is worth another try (default: every
	// error but a cancelled or expired context's).
	Retryable func(error) bool
}

func (p Policy) withDefaults() Policy {
	if p.Initial <= 0 {
		p.Initial = 200 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 10 * time.Second
	}
	if p.Budget == 0 {
		p.Budget = 2 * time.Minute
	}
	return p
}

// Delay is the wait before retry n (1 for the first retry): a uniformly random
// duration up to Initial·2^(n-1), capped at Max ("full jitter", so that many
// clients that failed together do not retry together).
func (p Policy) Delay(n int) time.Duration {
	p = p.withDefaults()
	ceiling := p.Max
	if n < 1 {
		n = 1
	}
	if n < 32 {
		if d := p.Initial << (n - 1); d > 0 && d < p.Max {
			ceiling = d
		}
	}
	// At least a tenth of the ceiling, so that a retry never spins.
	return ceiling/10 + rand.N(ceiling-ceiling/10+1)
}

// Do calls op until it succeeds, returns an error Retryable rejects, the
// budget is spent or ctx ends; it returns op's last error, annotated with the
// number of tries when there was more than one.
func (p Policy) Do(ctx context.Context, op func(ctx context.Context) error) error {
	p = p.withDefaults()
	start := time.Now()
	for n := 1; ; n++ {
		err := op(ctx)
		if err == nil || !p.retryable(err) || ctx.Err() != nil || p.Budget < 0 {
			return err
		}
		wait := p.Delay(n)
		if time.Since(start)+wait > p.Budget {
			return fmt.Errorf("gave up after %d tries in %s: %w", n, time.Since(start).Round(time.Millisecond), err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func (p Policy) retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if p.Retryable != nil {
		return p.Retryable(err)
	}
	return true
}
