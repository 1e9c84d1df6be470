// Package e2e holds end-to-end tests: a real server in-process over a real
// store, driven through the arrow-go Flight client.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/flightbatch/flightbatch/analysis/psd"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/compute"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight/flighttest"
	"github.com/flightbatch/flightbatch/pkg/api"
	"github.com/flightbatch/flightbatch/store"
)

// openStore opens a fresh, empty store of the given kind, emptied when the test
// ends. The S3 store is a random prefix of the test server's bucket
// (scripts/s3-server.sh); without one the test skips, or fails when
// FLIGHTBATCH_REQUIRE_S3=1 asked for an S3 run.
func openStore(t *testing.T, kind string) *store.Store {
	t.Helper()
	u := "file://" + t.TempDir()
	if kind == "s3" {
		bucket := os.Getenv("FLIGHTBATCH_TEST_S3_BUCKET")
		if bucket == "" {
			if os.Getenv("FLIGHTBATCH_REQUIRE_S3") == "1" {
				t.Fatal("FLIGHTBATCH_REQUIRE_S3=1 but FLIGHTBATCH_TEST_S3_BUCKET is not set: start scripts/s3-server.sh and source its env file")
			}
			t.Skip("FLIGHTBATCH_TEST_S3_BUCKET is not set; start scripts/s3-server.sh and source its env file for the S3 run")
		}
		u = fmt.Sprintf("s3://%s/e2e-%016x", bucket, rand.Uint64())
	}
	st, err := store.Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	if objs, err := st.List(t.Context(), ""); err != nil || len(objs) != 0 {
		t.Fatalf("store %s is not empty (%d objects, %v)", u, len(objs), err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		objs, _ := st.List(ctx, "")
		for _, o := range objs {
			_ = st.Delete(ctx, o.Key)
		}
		st.Close()
	})
	return st
}

// lfpRecords builds rows synthetic LFP records of the demo schema: n samples
// at 250 Hz of noise plus a 20 Hz oscillation.
func lfpRecords(first, rows, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, dataset.DemoSchema)
	defer b.Release()
	for r := first; r < first+rows; r++ {
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("P%02d", r/12+1))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("P%02d-S%d", r/12+1, r/6%2+1))
		b.Field(2).(*array.StringBuilder).Append([]string{"STN-L-01", "STN-L-12", "STN-R-01"}[r%3])
		b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(1_709_542_800_000_000 + int64(r)*30_000_000))
		b.Field(4).(*array.Float64Builder).Append(250)
		lb := b.Field(5).(*array.ListBuilder)
		lb.Append(true)
		vb := lb.ValueBuilder().(*array.Float32Builder)
		rng := rand.New(rand.NewPCG(uint64(r), 42))
		for i := 0; i < n; i++ {
			ti := float64(i) / 250
			vb.Append(float32(rng.NormFloat64() + float64(1+r%4)*math.Sin(2*math.Pi*20*ti)))
		}
	}
	return b.NewRecordBatch()
}

// writeParquet stores records as a Parquet file with one row group per record batch.
func writeParquet(t *testing.T, st *store.Store, key string, recs []arrow.RecordBatch) {
	t.Helper()
	err := st.Write(t.Context(), key, func(w io.Writer) error {
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd))
		// The Parquet writer closes a sink that is an io.Closer; the store
		// closes its own writer, so hide its Close.
		sink := struct{ io.Writer }{w}
		fw, err := pqarrow.NewFileWriter(dataset.DemoSchema, sink, props, pqarrow.DefaultWriterProps())
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if err := fw.Write(rec); err != nil {
				return err
			}
		}
		return fw.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func action(t *testing.T, c aflight.Client, typ string, body any, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := c.DoAction(t.Context(), &aflight.Action{Type: typ, Body: b})
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	res, err := stream.Recv()
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	if err := json.Unmarshal(res.Body, out); err != nil {
		t.Fatalf("%s: %s: %v", typ, res.Body, err)
	}
}

// TestPSDOverParquet runs psd over a Parquet dataset of several files with
// several row groups each, registered in place, on a file store and on the S3
// test server, and checks the merged result against the input and against
// compute directly.
func TestPSDOverParquet(t *testing.T) {
	for _, kind := range []string{"file", "s3"} {
		t.Run(kind, func(t *testing.T) { testPSDOverParquet(t, openStore(t, kind)) })
	}
}

func testPSDOverParquet(t *testing.T, st *store.Store) {
	const n = 7500 // 30 s at 250 Hz
	// Three shards of 3, 2 and 4 row groups; record i comes i-th in the result.
	var input []arrow.RecordBatch
	next := 0
	for shard, groups := range [][]int{{10, 10, 4}, {7, 9}, {5, 5, 5, 3}} {
		var recs []arrow.RecordBatch
		for _, rows := range groups {
			rec := lfpRecords(next, rows, n)
			next += rows
			recs = append(recs, rec)
			input = append(input, rec)
		}
		writeParquet(t, st, fmt.Sprintf("datasets/lfp/rec-%02d.parquet", shard), recs)
	}
	defer func() {
		for _, rec := range input {
			rec.Release()
		}
	}()
	total := next

	srv := flighttest.Start(t, st, nil)
	ds, err := srv.Catalog.Get(t.Context(), "lfp")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Shards) != 3 || ds.Rows() != int64(total) {
		t.Fatalf("dataset: %d shards, %d rows; want 3, %d", len(ds.Shards), ds.Rows(), total)
	}

	params := map[string]any{"nperseg": 512, "noverlap": 256, "detrend": "linear", "bands": map[string][]float64{"beta": {13, 30}}}
	req := map[string]any{"dataset": "lfp", "fs_column": "fs"}
	for k, v := range params {
		req[k] = v
	}
	var sub api.SubmitResult
	action(t, srv.Client, api.ActionPSD, req, &sub)
	if sub.Shards != 3 {
		t.Fatalf("submit: %+v", sub)
	}
	var js api.JobStatus
	deadline := time.Now().Add(2 * time.Minute)
	for {
		action(t, srv.Client, api.ActionJobStatus, api.JobRef{JobID: sub.JobID}, &js)
		if batch.State(js.State).Terminal() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s after 2 minutes", js.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if js.State != string(batch.StateSucceeded) {
		t.Fatalf("job %s: %s %s %+v", js.JobID, js.State, js.Error, js.Failures)
	}
	if js.DatasetVersion != ds.Version {
		t.Fatalf("the job records dataset version %q; the dataset's is %q", js.DatasetVersion, ds.Version)
	}

	stream, err := srv.Client.DoGet(t.Context(), &aflight.Ticket{Ticket: []byte("jobs/" + sub.JobID)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := aflight.NewRecordReader(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	schema := r.Schema()
	wantCols := []string{"patient_id", "session_id", "channel", "start_time", "fs", "freqs", "psd", "beta_power", psd.ReasonColumn}
	if schema.NumFields() != len(wantCols) {
		t.Fatalf("result schema %s", schema)
	}
	for i, name := range wantCols {
		if schema.Field(i).Name != name {
			t.Fatalf("result column %d is %q, want %q", i, schema.Field(i).Name, name)
		}
	}

	var wp compute.WelchParams
	raw, _ := json.Marshal(params)
	dec, err := psd.DecodeParams(raw)
	if err != nil {
		t.Fatal(err)
	}
	wp = dec.Welch()
	plan, err := compute.NewPlan(wp, n)
	if err != nil {
		t.Fatal(err)
	}
	wantFreqs := plan.Freqs(nil, 250)
	x := make([]float64, n)
	in, inRow := 0, 0 // position in input
	row := 0
	for r.Next() {
		rec := r.RecordBatch()
		freqs := rec.Column(5).(*array.List)
		psd := rec.Column(6).(*array.List)
		beta := rec.Column(7).(*array.Float64)
		for i := 0; i < int(rec.NumRows()); i++ {
			src := input[in]
			for c := 0; c < 5; c++ { // metadata carried unchanged
				got := array.NewSlice(rec.Column(c), int64(i), int64(i+1))
				want := array.NewSlice(src.Column(c), int64(inRow), int64(inRow+1))
				if !array.Equal(got, want) {
					t.Fatalf("row %d column %s: %v, want %v", row, schema.Field(c).Name, got, want)
				}
				got.Release()
				want.Release()
			}
			samples := src.Column(5).(*array.List)
			vals := samples.ListValues().(*array.Float32).Float32Values()
			s, e := samples.ValueOffsets(inRow)
			for j := range x {
				x[j] = float64(vals[int(s)+j])
			}
			if int(e-s) != n {
				t.Fatalf("input row %d has %d samples", row, e-s)
			}
			wantPSD := plan.PSD(nil, x, 250)
			gs, ge := psd.ValueOffsets(i)
			gotPSD := psd.ListValues().(*array.Float64).Float64Values()[gs:ge]
			fs, fe := freqs.ValueOffsets(i)
			gotFreqs := freqs.ListValues().(*array.Float64).Float64Values()[fs:fe]
			if len(gotPSD) != len(wantPSD) || len(gotFreqs) != len(wantFreqs) {
				t.Fatalf("row %d: %d frequencies, %d PSD values; want %d", row, len(gotFreqs), len(gotPSD), len(wantPSD))
			}
			for j := range wantPSD {
				if !close(gotPSD[j], wantPSD[j]) || gotFreqs[j] != wantFreqs[j] {
					t.Fatalf("row %d bin %d: psd %g at %g Hz, want %g at %g Hz", row, j, gotPSD[j], gotFreqs[j], wantPSD[j], wantFreqs[j])
				}
			}
			if wantBeta := compute.BandPower(wantFreqs, wantPSD, 13, 30); !close(beta.Value(i), wantBeta) {
				t.Fatalf("row %d: beta power %g, want %g", row, beta.Value(i), wantBeta)
			}
			row++
			inRow++
			if inRow == int(src.NumRows()) {
				in, inRow = in+1, 0
			}
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if row != total {
		t.Fatalf("the result has %d rows, want %d", row, total)
	}

	// Changing a shard changes the dataset's version, and a new job records it.
	extra := lfpRecords(total, 3, n)
	defer extra.Release()
	writeParquet(t, st, "datasets/lfp/rec-01.parquet", []arrow.RecordBatch{extra})
	ds2, err := srv.Catalog.Get(t.Context(), "lfp")
	if err != nil {
		t.Fatal(err)
	}
	if ds2.Version == ds.Version {
		t.Fatal("the version did not change when a shard did")
	}
	action(t, srv.Client, api.ActionPSD, req, &sub)
	action(t, srv.Client, api.ActionJobStatus, api.JobRef{JobID: sub.JobID}, &js)
	if js.DatasetVersion != ds2.Version {
		t.Fatalf("the second job records version %q, want %q", js.DatasetVersion, ds2.Version)
	}
	for !batch.State(js.State).Terminal() {
		time.Sleep(50 * time.Millisecond)
		action(t, srv.Client, api.ActionJobStatus, api.JobRef{JobID: sub.JobID}, &js)
	}
}

func close(a, b float64) bool {
	return math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}
