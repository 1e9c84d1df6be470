package local_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/internal/backoff"
)

// TestPollChangesReportsWhatChanged: PollChanges reports every child at its
// first call, then only the children that changed since, so that the
// children it reports over a job are bounded by its changes, not by polls
// times children; what it reported, kept as the manager keeps it, is what
// Poll would have said at the end; and past the first MaxFullErrorShards
// shards with failed attempts the executor keeps no error text once
// reported, while every reported attempt came with its text once.
func TestPollChangesReportsWhatChanged(t *testing.T) {
	const n = 300 // MaxFullErrorShards is 100
	ctx := context.Background()
	e := local.New(func(ctx context.Context, jobID string, shard, attempt int) error {
		if shard%2 == 1 && attempt == 1 {
			return fmt.Errorf("shard %d failed\ntraceback", shard)
		}
		return nil
	}, 2, &local.Options{RetryWait: backoff.Policy{Initial: time.Millisecond, Max: time.Millisecond}})
	m := &batch.Manifest{JobID: "j", MaxAttempts: 2}
	todo := make([]int, n)
	for i := range n {
		m.Shards = append(m.Shards, batch.ShardRecord{Name: fmt.Sprintf("s%03d", i)})
		todo[i] = i
	}
	h, err := e.Start(ctx, m, todo)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]batch.Child{}
	texts := map[string]string{}
	reported, polls := 0, 0
	for deadline := time.Now().Add(30 * time.Second); ; {
		ch := e.Changed(h)
		p, err := e.PollChanges(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if polls++; polls == 1 && len(p.Children) != n {
			t.Fatalf("the first report has %d children, want all %d", len(p.Children), n)
		}
		reported += len(p.Children)
		for _, c := range p.Children {
			seen[c.Shard] = c
			for _, ae := range c.Errors {
				key := fmt.Sprintf("%d.%d", c.Shard, ae.Attempt)
				if _, ok := texts[key]; !ok {
					texts[key] = ae.Error // the first report of an attempt gives its text
				}
			}
		}
		if p.Done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done after 30 s")
		}
		select {
		case <-ch:
		case <-time.After(time.Second):
		}
	}
	// Each child changes at most 5 times (running, failed, running again,
	// succeeded), each change reported once or folded into a later one.
	if reported > n+5*n {
		t.Errorf("%d children reported over %d polls for %d children; want at most %d", reported, polls, n, 6*n)
	}
	t.Logf("%d children reported over %d polls (full reports: %d)", reported, polls, polls*n)
	for i := range n {
		c := seen[i]
		wantAttempts, wantErrors := 1, 0
		if i%2 == 1 {
			wantAttempts, wantErrors = 2, 1
		}
		if c.State != batch.ShardSucceeded || c.Attempts != wantAttempts || len(c.Errors) != wantErrors {
			t.Errorf("shard %d last reported %s after %d attempts, %d errors; want SUCCEEDED after %d, %d", i, c.State, c.Attempts, len(c.Errors), wantAttempts, wantErrors)
		}
		if i%2 == 1 && texts[fmt.Sprintf("%d.1", i)] != fmt.Sprintf("shard %d failed\ntraceback", i) {
			t.Errorf("shard %d: attempt 1 first reported as %q", i, texts[fmt.Sprintf("%d.1", i)])
		}
	}
	if _, err := e.PollChanges(ctx, h); !errors.Is(err, batch.ErrNotRunning) {
		t.Errorf("a finished run polled again: %v, want ErrNotRunning", err)
	}
}

// TestPollChangesDropsReportedText: while a job runs, the executor keeps the
// text of the reported errors of the first MaxFullErrorShards shards with
// failed attempts only, also when a shard failing later comes before them.
func TestPollChangesDropsReportedText(t *testing.T) {
	ctx := context.Background()
	const n = batch.MaxFullErrorShards + 20
	// An hour between attempts: every first attempt fails, and the run
	// stays, its children waiting to retry, to be polled.
	e := local.New(func(ctx context.Context, jobID string, shard, attempt int) error {
		return fmt.Errorf("shard %d failed", shard)
	}, 1, &local.Options{RetryWait: backoff.Policy{Initial: time.Hour, Max: time.Hour}})
	m := &batch.Manifest{JobID: "j", MaxAttempts: 2}
	// Started last-shard first: the shards failing last come first in shard order.
	var todo []int
	for i := range n {
		m.Shards = append(m.Shards, batch.ShardRecord{Name: fmt.Sprintf("s%03d", i)})
		todo = append([]int{i}, todo...)
	}
	h, err := e.Start(ctx, m, todo)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Cancel(ctx, h) }()
	// Poll until every failure is reported.
	failed := map[int]bool{}
	for deadline := time.Now().Add(30 * time.Second); len(failed) < n; {
		ch := e.Changed(h)
		p, err := e.PollChanges(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Children {
			if len(c.Errors) > 0 {
				failed[c.Shard] = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d shards failed within 30 s", len(failed), n)
		}
		select {
		case <-ch:
		case <-time.After(time.Second):
		}
	}
	p, err := e.Poll(ctx, h) // what the executor holds
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Children {
		for _, ae := range c.Errors {
			if keep := c.Shard < batch.MaxFullErrorShards; keep != (ae.Error != "") {
				t.Errorf("shard %d attempt %d: the executor holds %q; want its text kept: %v", c.Shard, ae.Attempt, ae.Error, keep)
			}
		}
	}
}
