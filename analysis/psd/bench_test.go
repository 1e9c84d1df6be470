package psd

import (
	"context"
	"encoding/json"
	"math"
	"runtime"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/internal/mempool"
)

// demoLikeBatches makes batches shaped as the demo dataset's: 16 records a
// batch of a patient, a channel, fs and 30 s of float32 samples at 250 Hz.
func demoLikeBatches(tb testing.TB, mem memory.Allocator, batches int) (*arrow.Schema, []arrow.RecordBatch) {
	tb.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "patient_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "channel", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "fs", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32), Nullable: true},
	}, nil)
	const rows, n = 16, 7500
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	var out []arrow.RecordBatch
	for k := 0; k < batches; k++ {
		for r := 0; r < rows; r++ {
			b.Field(0).(*array.StringBuilder).Append("P01")
			b.Field(1).(*array.StringBuilder).Append("STN-L-01")
			b.Field(2).(*array.Float64Builder).Append(250)
			lb := b.Field(3).(*array.ListBuilder)
			lb.Append(true)
			vb := lb.ValueBuilder().(*array.Float32Builder)
			vb.Reserve(n)
			for j := 0; j < n; j++ {
				t := float64(j) / 250
				vb.UnsafeAppend(float32(math.Sin(2*math.Pi*(20+float64(r))*t) + 0.3*math.Sin(2*math.Pi*50*t) + float64((j*7919+k)%101)/101))
			}
		}
		out = append(out, b.NewRecordBatch())
	}
	return schema, out
}

// BenchmarkRun runs the psd function over demo-like batches as a child does
// (fs_column, nperseg 500, two bands) and reports the heap allocations and
// bytes per input record: a load-insensitive figure of the pipeline around
// the Welch kernel.
func BenchmarkRun(b *testing.B) {
	for _, c := range []struct{ name, params string }{
		{"mean", `{"fs_column": "fs", "nperseg": 500, "bands": {"beta": [13, 30], "alpha": [8, 12]}}`},
		{"median", `{"fs_column": "fs", "nperseg": 500, "average": "median"}`},
		{"fmax", `{"fs": 250, "nperseg": 500, "fmax": 45, "bands": {"beta": [13, 30]}, "relative": true}`},
		{"none", `{"fs": 250, "nperseg": 500, "average": null}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			const batches = 8
			schema, recs := demoLikeBatches(b, memory.DefaultAllocator, batches)
			defer func() {
				for _, r := range recs {
					r.Release()
				}
			}()
			outSchema, norm, err := Function{}.Prepare(json.RawMessage(c.params), schema)
			if err != nil {
				b.Fatal(err)
			}
			// The allocator a child's worker uses.
			task := batch.Task{JobID: "j", Shard: "s", Attempt: 1, Params: norm, Schema: outSchema, Alloc: mempool.New(64 << 20)}
			records := 0
			run := func() {
				rdr, err := array.NewRecordReader(schema, recs)
				if err != nil {
					b.Fatal(err)
				}
				defer rdr.Release()
				if err := (Function{}).Run(context.Background(), task, rdr, func(out arrow.RecordBatch) error {
					// The worker writes the batch and releases it.
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				records += batches * 16
			}
			run() // warm up
			records = 0
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				run()
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(records), "allocs/record")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(records), "B/record")
		})
	}
}
