package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
)

// stalled is an executor whose children never end: shard 1 is on its second
// attempt, its first having crashed without a record of its own.
type stalled struct{}

func (stalled) Name() string                         { return "stalled" }
func (stalled) PollInterval() time.Duration          { return 10 * time.Millisecond }
func (stalled) Cancel(context.Context, string) error { return nil }
func (stalled) Start(context.Context, *batch.Manifest, []int) (string, error) {
	return "stalled-1", nil
}
func (stalled) Poll(context.Context, string) (batch.Progress, error) {
	return batch.Progress{Children: []batch.Child{
		{Shard: 0, State: batch.ShardPending},
		{Shard: 1, State: batch.ShardRunning, Attempts: 2, Errors: []batch.AttemptError{{Attempt: 1, Error: "worker process killed by signal killed", At: time.Now().UTC()}}},
		{Shard: 2, State: batch.ShardPending},
	}}, nil
}

// After a restart, the attempts of a resumed job continue from those in its
// manifest: the worker sees them numbered so, its failures are recorded
// under their own numbers, and an executor's report of an attempt whose
// worker left no record (a crash) is kept in the store as well.
func TestResumedAttemptsContinue(t *testing.T) {
	ctx := context.Background()
	st := fileStore(t)
	first := newRig(t, st, "") // writes the demo dataset
	first.mg.Close()

	before := batch.NewManager(first.cat, analysis.Builtins(), stalled{}, &batch.Options{Log: quiet})
	m, err := before.Submit(ctx, batch.SubmitRequest{Function: "psd", Dataset: "demo", Params: json.RawMessage(`{"fs": 250}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, before, m.JobID, func(m *batch.Manifest) bool { return m.Shards[1].Attempts == 2 && len(m.Shards[1].Errors) == 1 })
	before.Close() // the server stops; its children are gone

	var mu sync.Mutex
	seen := map[string][]int{}
	w := &batch.Worker{Store: st, Functions: analysis.Builtins(), Log: quiet,
		Fault: func(_ context.Context, _, shard string, attempt int) error {
			mu.Lock()
			seen[shard] = append(seen[shard], attempt)
			mu.Unlock()
			if shard == "part-00001" && attempt == 3 {
				return fmt.Errorf("injected fault")
			}
			return nil
		}}
	fast := &local.Options{}
	fast.RetryWait.Initial, fast.RetryWait.Max = 10*time.Millisecond, 20*time.Millisecond
	after := batch.NewManager(first.cat, analysis.Builtins(), local.New(w.RunShard, 2, fast), &batch.Options{Log: quiet})
	if err := after.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(after.Close)
	got := waitFor(t, after, m.JobID, func(m *batch.Manifest) bool { return m.State.Terminal() })
	if got.State != batch.StateSucceeded {
		t.Fatalf("job %s: %s", got.State, got.Error)
	}
	mu.Lock()
	defer mu.Unlock()
	for shard, want := range map[string][]int{"part-00000": {1}, "part-00001": {3, 4}, "part-00002": {1}} {
		if !slices.Equal(seen[shard], want) {
			t.Errorf("%s: the worker ran attempts %v, want %v", shard, seen[shard], want)
		}
	}
	s := got.Shards[1]
	var nums []int
	for _, e := range s.Errors {
		nums = append(nums, e.Attempt)
	}
	if s.Attempts != 4 || !slices.Equal(nums, []int{1, 3}) {
		t.Errorf("shard 1: %d attempts, errors of attempts %v; want 4, [1 3]", s.Attempts, nums)
	}
	for attempt, want := range map[int]string{1: "killed by signal", 3: "injected fault"} {
		ae, err := batch.ReadAttemptError(ctx, st, m.JobID, "part-00001", attempt)
		if err != nil || ae == nil || ae.Attempt != attempt || !strings.Contains(ae.Error, want) {
			t.Errorf("record of attempt %d: %+v, %v; want one saying %q", attempt, ae, err, want)
		}
	}
	if ae, err := batch.ReadAttemptError(ctx, st, m.JobID, "part-00001", 2); err != nil || ae != nil {
		t.Errorf("attempt 2 was cut short by the restart and failed nothing: %+v, %v", ae, err)
	}
}
