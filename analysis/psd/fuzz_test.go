package psd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis/psd"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// FuzzPSDPrepare feeds arbitrary request bodies to the psd function's parser
// and validation: it must never panic, and whatever it rejects must be
// ErrInvalid (a user's mistake, InvalidArgument at the edge).
func FuzzPSDPrepare(f *testing.F) {
	for _, s := range []string{
		`{"fs": 250}`,
		`{"fs": 250, "nperseg": 512, "noverlap": 128, "nfft": 1024, "window": "hamming"}`,
		`{"fs_column": "fs", "window": ["tukey", 0.25], "detrend": false, "scaling": "spectrum"}`,
		`{"fs": 250, "window": [0.1, 0.5, 1, 0.5, 0.1], "average": "median", "return_onesided": false}`,
		`{"fs": 250, "bands": {"beta": [13, 30], "alpha": [8, 12]}}`,
		`{"fs": 1e308, "nperseg": -1}`,
		`{"fs": 250, "bands": {"x": [1]}}`,
		`{"fs": 250, "window": ["kaiser"]}`,
		`[]`, `null`, `{"fs": "250"}`, `{"column": 3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, params, err := psd.Function{}.Prepare(json.RawMessage(body), dataset.DemoSchema)
		if err != nil {
			if !errors.Is(err, batch.ErrInvalid) {
				t.Fatalf("rejected %q with an error that is not ErrInvalid: %v", body, err)
			}
			return
		}
		if out == nil || out.NumFields() < 2 {
			t.Fatalf("accepted %q but gave schema %v", body, out)
		}
		// What was accepted and recorded must be accepted again the same way.
		out2, params2, err := psd.Function{}.Prepare(params, dataset.DemoSchema)
		if err != nil || !out2.Equal(out) || string(params2) != string(params) {
			t.Fatalf("recorded params %s do not round-trip: %v", params, err)
		}
	})
}

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
	fns := batch.NewRegistry()
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
