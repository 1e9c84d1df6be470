package local_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
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
		e := local.New(run, 1)
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
