package local_test

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// TestChildrenStartInInputOrder: with one slot, children run exactly in the
// order of the shards they were started with, whatever the goroutine
// scheduler does.
func TestChildrenStartInInputOrder(t *testing.T) {
	for round := 0; round < 5; round++ {
		var mu sync.Mutex
		var order []int
		run := func(ctx context.Context, jobID string, shard, attempt int) error {
			mu.Lock()
			order = append(order, shard)
			mu.Unlock()
			return nil
		}
		e := local.New(run, 1, nil)
		shards := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
		h, err := e.Start(context.Background(), &batch.Manifest{JobID: "j", MaxAttempts: 1}, shards)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			p, err := e.Poll(context.Background(), h)
			if err != nil {
				t.Fatal(err)
			}
			if p.Done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("children did not finish")
			}
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		if !slices.Equal(order, shards) {
			t.Fatalf("round %d: children ran in order %v, want %v", round, order, shards)
		}
		mu.Unlock()
	}
}

// TestProcessChildrenStartInInputOrder: children run as worker processes
// (what the server runs) with one slot start, and finish, in input order.
func TestProcessChildrenStartInInputOrder(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat := dataset.NewCatalog(st)
	const shards = 6
	if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: shards, Bytes: 200 << 10, Seconds: 10}); err != nil {
		t.Fatal(err)
	}
	p := &local.Process{Command: []string{worker, "worker", "--log-level", "warn"}, Store: st.URL(), Stderr: io.Discard}
	var mu sync.Mutex
	var started []int
	run := func(ctx context.Context, jobID string, shard, attempt int) error {
		mu.Lock()
		started = append(started, shard)
		mu.Unlock()
		return p.Run(ctx, jobID, shard, attempt)
	}
	mg := batch.NewManager(cat, analysis.Builtins(), local.New(run, 1, nil), &batch.Options{MaxAttempts: 1, Log: quiet})
	t.Cleanup(mg.Close)
	m, err := mg.Submit(ctx, batch.SubmitRequest{Function: "psd", Dataset: "demo", Params: json.RawMessage(`{"fs": 250}`)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !m.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("job still %s: %+v", m.State, m.Counts())
		}
		time.Sleep(20 * time.Millisecond)
		if m, err = mg.Status(m.JobID); err != nil {
			t.Fatal(err)
		}
	}
	if m.State != batch.StateSucceeded {
		t.Fatalf("job %s: %s", m.State, m.Error)
	}
	want := make([]int, shards)
	for i := range want {
		want[i] = i
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(started, want) {
		t.Errorf("child processes started in order %v, want %v", started, want)
	}
	if got := m.FinishOrder(); !slices.Equal(got, want) {
		t.Errorf("parts finished in order %v, want %v", got, want)
	}
}
