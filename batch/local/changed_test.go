package local_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/internal/backoff"
)

// TestChangedTellsEveryChange: the channel Changed returns is closed when a
// child starts, fails an attempt, succeeds or is cancelled, and not while
// nothing changes; a handle the executor does not run has none.
func TestChangedTellsEveryChange(t *testing.T) {
	step := make(chan error)
	// An hour between attempts: after a failed attempt nothing else
	// changes, so only the failure can close the channel.
	e := local.New(func(ctx context.Context, jobID string, shard, attempt int) error {
		select {
		case err := <-step:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}, 1, &local.Options{RetryWait: backoff.Policy{Initial: time.Hour, Max: time.Hour}})
	if ch := e.Changed("local-unknown"); ch != nil {
		t.Fatal("a channel for a handle the executor does not run")
	}
	start := func() string {
		t.Helper()
		m := &batch.Manifest{JobID: "j", MaxAttempts: 2, Shards: []batch.ShardRecord{{Name: "s0"}}}
		h, err := e.Start(context.Background(), m, []int{0})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	// reach waits for the child of h to be in state want after attempts
	// attempts, taking the channel before each poll as the manager does,
	// and returns the channel taken before the poll that saw it.
	reach := func(h string, want batch.ShardState, attempts int) <-chan struct{} {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			ch := e.Changed(h)
			p, err := e.Poll(context.Background(), h)
			if err != nil {
				t.Fatal(err)
			}
			if c := p.Children[0]; c.State == want && c.Attempts == attempts {
				return ch
			}
			select {
			case <-ch:
			case <-deadline:
				t.Fatalf("child not %s after %d attempt(s) within 20 s: %+v", want, attempts, p.Children[0])
			}
		}
	}
	unchanged := func(ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
			t.Fatal("Changed closed while nothing changed")
		case <-time.After(50 * time.Millisecond):
		}
	}

	// Started, then succeeded.
	h := start()
	ch := reach(h, batch.ShardRunning, 1)
	unchanged(ch)
	step <- nil
	waitClosed(t, ch)
	reach(h, batch.ShardSucceeded, 1)

	// Started, failed an attempt (and waits an hour for the next), then
	// cancelled.
	h = start()
	ch = reach(h, batch.ShardRunning, 1)
	step <- errors.New("boom")
	waitClosed(t, ch)
	ch = reach(h, batch.ShardPending, 1)
	unchanged(ch)
	if err := e.Cancel(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ch)
	reach(h, batch.ShardCancelled, 1)
}

func waitClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal("Changed not closed within 20 s of a change")
	}
}
