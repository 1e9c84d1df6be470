package batch_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// panicky is a function whose every run panics, as a buggy kernel would.
type panicky struct{}

func (panicky) Name() string        { return "panicky" }
func (panicky) Description() string { return "panics" }
func (panicky) Prepare(json.RawMessage, *arrow.Schema) (*arrow.Schema, json.RawMessage, error) {
	return nil, json.RawMessage("{}"), nil
}
func (panicky) Run(context.Context, batch.Task, array.RecordReader, func(arrow.RecordBatch) error) error {
	var s []int
	_ = s[len(s)+1] // index out of range, as arrow-go panics on a damaged buffer
	return nil
}

// TestPanickingChildFailsItsAttempts runs a function that panics in-process:
// every attempt fails with the panic recorded, the job ends FAILED, and the
// process (this test) goes on, so a restart would not loop.
func TestPanickingChildFailsItsAttempts(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat := dataset.NewCatalog(st)
	if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: 2, Bytes: 50 << 10, Seconds: 1}); err != nil {
		t.Fatal(err)
	}
	fns := batch.NewRegistry()
	fns.Register(panicky{})
	w := &batch.Worker{Store: st, Functions: fns}
	mg := batch.NewManager(cat, fns, local.New(w.RunShard, 2), &batch.Options{MaxAttempts: 2})
	t.Cleanup(mg.Close)
	m := runJob(t, mg, batch.SubmitRequest{Function: "panicky", Dataset: "demo"})
	if m.State != batch.StateFailed {
		t.Fatalf("job %s, want FAILED", m.State)
	}
	for _, sh := range m.Shards {
		if sh.Attempts != 2 || len(sh.Errors) != 2 {
			t.Fatalf("shard %s: %d attempts, %d errors; want 2 and 2", sh.Name, sh.Attempts, len(sh.Errors))
		}
		for _, e := range sh.Errors {
			if !strings.Contains(e.Error, "panicked") || !strings.Contains(e.Error, "index out of range") {
				t.Fatalf("shard %s: attempt error %q does not report the panic", sh.Name, e.Error)
			}
		}
	}
}
