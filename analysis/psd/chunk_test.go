package psd

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/compute"
)

// TestChunkRows: a result batch holds at most psdChunkRows rows and, for
// large FFTs, at most psdChunkBytes of freqs and psd, but never no row.
func TestChunkRows(t *testing.T) {
	n := func(v int) *int { return &v }
	cases := []struct {
		name string
		p    compute.WelchParams
	}{
		{"default", compute.WelchParams{}},
		{"nperseg-2^16", compute.WelchParams{NPerSeg: n(1 << 16)}},
		{"nfft-max", compute.WelchParams{NPerSeg: n(1 << 14), NFFT: n(compute.MaxNFFT)}},
		{"nperseg-max", compute.WelchParams{NPerSeg: n(compute.MaxNPerSeg)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows := chunkRows(c.p)
			bytes := rows * 16 * int64(c.p.MaxFreqs())
			if rows < 1 || rows > psdChunkRows || (rows > 1 && bytes > psdChunkBytes) {
				t.Fatalf("%d rows of %d freqs: %d bytes", rows, c.p.MaxFreqs(), bytes)
			}
			if want := min(psdChunkRows, max(1, psdChunkBytes/(16*int64(c.p.MaxFreqs())))); rows != want {
				t.Fatalf("%d rows, want %d", rows, want)
			}
		})
	}
}

// TestPerSegmentBatchesBounded: with average "none" a long record gives many
// segment rows; they come in batches within chunkRows rows and psdChunkBytes
// of freqs and psd, a batch may hold segments of two records, and together
// they are every segment, in order, equal to the plan's Segments (a record
// too short for the request: one null row).
func TestPerSegmentBatchesBounded(t *testing.T) {
	const nperseg, step = 1 << 17, 1000
	lengths := []int{nperseg + 20*step, nperseg + 3*step + 17, 300}
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
	}, nil)
	b := array.NewRecordBuilder(alloc, schema)
	signals := make([][]float64, len(lengths))
	for i, n := range lengths {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		lb := b.Field(1).(*array.ListBuilder)
		lb.Append(true)
		for j := 0; j < n; j++ {
			v := float32(math.Sin(float64(j)*0.01*float64(i+1)) + float64(j%7)/7)
			lb.ValueBuilder().(*array.Float32Builder).Append(v)
			signals[i] = append(signals[i], float64(v))
		}
	}
	rec := b.NewRecordBatch()
	b.Release()
	defer rec.Release()

	params := fmt.Sprintf(`{"fs": 100, "nperseg": %d, "noverlap": %d, "average": null}`, nperseg, nperseg-step)
	outSchema, norm, err := Function{}.Prepare(json.RawMessage(params), schema)
	if err != nil {
		t.Fatal(err)
	}
	p, err := DecodeParams(norm)
	if err != nil {
		t.Fatal(err)
	}
	maxRows := chunkRows(p.Welch())
	if maxRows >= psdChunkRows || maxRows < 2 {
		t.Fatalf("chunkRows %d: the test wants a bound between 2 and %d", maxRows, psdChunkRows)
	}
	rdr, err := array.NewRecordReader(schema, []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	type row struct {
		id  int64
		seg int32
		psd []float64
	}
	var rows []row
	batches := 0
	task := batch.Task{JobID: "j", Shard: "s", Attempt: 1, Params: norm, Schema: outSchema, Alloc: alloc}
	err = Function{}.Run(context.Background(), task, rdr, func(out arrow.RecordBatch) error {
		batches++
		pl := out.Column(outSchema.FieldIndices("psd")[0]).(*array.List)
		fl := out.Column(outSchema.FieldIndices("freqs")[0]).(*array.List)
		if n := out.NumRows(); n < 1 || n > maxRows || int64(16*pl.ListValues().Len()) > psdChunkBytes || fl.ListValues().Len() != pl.ListValues().Len() {
			t.Errorf("batch %d: %d rows, %d psd values (bounds %d rows, %d bytes)", batches, n, pl.ListValues().Len(), maxRows, psdChunkBytes)
		}
		ids := out.Column(0).(*array.Int64)
		segs := out.Column(outSchema.FieldIndices("segment")[0]).(*array.Int32)
		vals := pl.ListValues().(*array.Float64).Float64Values()
		for r := 0; r < int(out.NumRows()); r++ {
			s, e := pl.ValueOffsets(r)
			if pl.IsNull(r) {
				rows = append(rows, row{ids.Value(r), -1, nil})
				continue
			}
			rows = append(rows, row{ids.Value(r), segs.Value(r), append([]float64(nil), vals[s:e]...)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for id, x := range signals {
		plan, err := compute.NewPlan(p.Welch(), len(x))
		if err != nil {
			// Too short for noverlap: one null row.
			if i >= len(rows) || rows[i].id != int64(id) || rows[i].psd != nil {
				t.Fatalf("row %d: want record %d's null row", i, id)
			}
			i++
			continue
		}
		want := plan.Segments(nil, x, 100)
		nf := plan.NumFreqs()
		for s := 0; s < plan.NumSegments(); s++ {
			if i >= len(rows) {
				t.Fatalf("%d rows; record %d segment %d missing", len(rows), id, s)
			}
			got := rows[i]
			if got.id != int64(id) || got.seg != int32(s) || !slices.Equal(got.psd, want[s*nf:(s+1)*nf]) {
				t.Fatalf("row %d: record %d segment %d, want record %d segment %d with the plan's spectrum", i, got.id, got.seg, id, s)
			}
			i++
		}
	}
	if i != len(rows) {
		t.Fatalf("%d rows, want %d", len(rows), i)
	}
	if min := (len(rows) + int(maxRows) - 1) / int(maxRows); batches < min {
		t.Fatalf("%d batches for %d rows of at most %d", batches, len(rows), maxRows)
	}
}
