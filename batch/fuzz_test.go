package batch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// FuzzPartReader replaces a finished job's part with arbitrary bytes and reads
// the job's result, merged and by shard, as DoGet does: nothing may panic, and
// a part that cannot be read fails with an error that wraps
// dataset.ErrDamaged and names it.
func FuzzPartReader(f *testing.F) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		f.Fatal(err)
	}
	cat := dataset.NewCatalog(st)
	if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: 2, Bytes: 20 << 10, Seconds: 1}); err != nil {
		f.Fatal(err)
	}
	fns := analysis.Builtins()
	w := &batch.Worker{Store: st, Functions: fns, Log: slog.New(slog.DiscardHandler)}
	mg := batch.NewManager(cat, fns, local.New(w.RunShard, 2), &batch.Options{Log: slog.New(slog.DiscardHandler)})
	f.Cleanup(mg.Close)
	m, err := mg.Submit(ctx, batch.SubmitRequest{Function: "psd", Dataset: "demo", Params: json.RawMessage(`{"fs": 250, "nperseg": 64}`)})
	if err != nil {
		f.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !m.State.Terminal() && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m, err = mg.Status(m.JobID); err != nil {
			f.Fatal(err)
		}
	}
	if m.State != batch.StateSucceeded {
		f.Fatalf("job %s", m.State)
	}
	key := batch.PartKey(m.JobID, m.Shards[0].Name)
	good, err := st.ReadAll(context.Background(), key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	flipped := bytes.Clone(good)
	for i := len(flipped) - 80; i < len(flipped)-16; i++ {
		flipped[i] ^= 0xff // the footer: its schema and batch index
	}
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := st.WriteAll(context.Background(), key, data); err != nil {
			t.Fatal(err)
		}
		for _, shard := range []string{"", m.Shards[0].Name} {
			r, err := mg.OpenResult(context.Background(), m.JobID, shard)
			if err == nil {
				for r.Next() {
					rec := r.RecordBatch()
					for _, col := range rec.Columns() {
						for i := 0; i < col.Len(); i++ {
							_ = col.GetOneForMarshal(i)
						}
					}
				}
				err = r.Err()
				r.Release()
			}
			if err != nil && (!errors.Is(err, dataset.ErrDamaged) || !strings.Contains(err.Error(), key)) {
				if !errors.Is(err, dataset.ErrInvalid) { // a part whose schema differs from the job's
					t.Fatalf("reading %q: %v does not wrap ErrDamaged or name %s", shard, err, key)
				}
			}
		}
	})
}
