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
	"github.com/flightbatch/flightbatch/dataset"
)

// TestPerSegmentBatchesBounded: with average "none" a long record gives many
// segment rows; they come in batches within DoGet's default batch bound
// (1 MiB as written), a batch may hold segments of two records, and together
// they are every segment, in order, equal to the plan's Segments (a record
// too short for the request: one null row).
func TestPerSegmentBatchesBounded(t *testing.T) {
	const nperseg, step = 1 << 14, 1000
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
	// A row's freqs and psd alone take 2*8*(nperseg/2+1) bytes: a few rows
	// fill a batch.
	rowBytes := int64(16 * (nperseg/2 + 1))
	maxRows := int64(resultBatchBytes) / rowBytes
	if maxRows < 2 || maxRows > 16 {
		t.Fatalf("%d rows a batch: the test wants a bound between 2 and 16", maxRows)
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
		if n, size := out.NumRows(), dataset.LogicalBytes(out); n < 1 || n > maxRows || size > 1<<20 || fl.ListValues().Len() != pl.ListValues().Len() {
			t.Errorf("batch %d: %d rows, %d bytes, %d psd values (bounds %d rows, 1 MiB)", batches, n, size, pl.ListValues().Len(), maxRows)
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

// unevenBatches makes input batches of uneven sizes, of 1500 to 2000
// float32 samples at 250 Hz (fs from a column); some rows have no signal or
// no fs (null result rows), so some batches' result rows are not a run of
// their input rows.
func unevenBatches(mem memory.Allocator) (*arrow.Schema, []arrow.RecordBatch) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "patient_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "fs", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32), Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	sizes := []int{16, 1, 7, 16, 40, 3, 16, 16, 90, 16, 5, 120, 16, 16, 64, 16, 33}
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	var recs []arrow.RecordBatch
	row := 0
	for _, n := range sizes {
		for r := 0; r < n; r++ {
			b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("P%03d", row%37))
			if row%29 == 5 {
				b.Field(1).AppendNull()
			} else {
				b.Field(1).(*array.Float64Builder).Append(250)
			}
			lb := b.Field(2).(*array.ListBuilder)
			if row%23 == 7 {
				lb.AppendNull()
			} else {
				lb.Append(true)
				vb := lb.ValueBuilder().(*array.Float32Builder)
				for j := 0; j < 1500+row%3*250; j++ {
					vb.Append(float32(math.Sin(float64(j)*0.07*float64(1+row%5)) + float64((j*31+row)%17)/17))
				}
			}
			b.Field(3).(*array.Int64Builder).Append(int64(row))
			row++
		}
		recs = append(recs, b.NewRecordBatch())
	}
	return schema, recs
}

// TestBatchesGatherInputBatches: result rows are gathered across input
// batches into batches within DoGet's default bound (1 MiB as written) and
// resultBatchRows, each full but the last, holding none of the input's
// memory; and together they are exactly the rows that running the function
// on each input batch alone gives: the same rows in the same order, with the
// same values and schema.
func TestBatchesGatherInputBatches(t *testing.T) {
	cases := []struct {
		name, params string
		one          bool // the whole result fits one batch
	}{
		{"mean", `{"fs_column": "fs", "nperseg": 512, "bands": {"beta": [13, 30], "alpha": [8, 12]}}`, false},
		{"shared-freqs-fmax", `{"fs": 250, "nperseg": 256, "fmax": 45, "shared_freqs": true, "bands": {"beta": [13, 30]}, "relative": true}`, true},
		{"none", `{"fs_column": "fs", "nperseg": 512, "average": null}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			input := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer input.AssertSize(t, 0)
			schema, recs := unevenBatches(input)
			releaseInput := func() {
				for _, r := range recs {
					r.Release()
				}
				recs = nil
			}
			defer releaseInput()
			outSchema, norm, err := Function{}.Prepare(json.RawMessage(c.params), schema)
			if err != nil {
				t.Fatal(err)
			}
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			run := func(in []arrow.RecordBatch) []arrow.RecordBatch {
				t.Helper()
				rdr, err := array.NewRecordReader(schema, in)
				if err != nil {
					t.Fatal(err)
				}
				defer rdr.Release()
				var outs []arrow.RecordBatch
				task := batch.Task{JobID: "j", Shard: "s", Attempt: 1, Params: norm, Schema: outSchema, Alloc: mem}
				if err := (Function{}).Run(context.Background(), task, rdr, func(out arrow.RecordBatch) error {
					out.Retain()
					outs = append(outs, out)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				return outs
			}
			// The reference: each input batch alone.
			var want []arrow.RecordBatch
			for _, r := range recs {
				want = append(want, run([]arrow.RecordBatch{r})...)
			}
			got := run(recs)
			defer func() {
				for _, r := range append(want, got...) {
					r.Release()
				}
			}()
			nin := len(recs)
			// The result holds none of the input's memory.
			releaseInput()
			if n := input.CurrentAlloc(); n != 0 {
				t.Fatalf("%d bytes of the input still held by the result", n)
			}
			if len(got) >= nin || (len(got) == 1) != c.one {
				t.Fatalf("%d result batches from %d input batches: want fewer, and one only if the result is small (%v)", len(got), nin, c.one)
			}
			var rows, wantRows int64
			for i, out := range got {
				n, size := out.NumRows(), dataset.LogicalBytes(out)
				rows += n
				if n < 1 || n > resultBatchRows || size > 1<<20 {
					t.Errorf("batch %d: %d rows, %d bytes (bounds %d rows, 1 MiB)", i, n, size, resultBatchRows)
				}
				// Every batch but the last is full: a row more would
				// not have fitted (rows here are at most 8 KiB).
				if i < len(got)-1 && n < resultBatchRows && size < resultBatchBytes-16<<10 {
					t.Errorf("batch %d of %d: %d rows, %d bytes: emitted before it was full", i, len(got), n, size)
				}
				if !out.Schema().Equal(outSchema) {
					t.Fatalf("batch %d: schema %s, want %s", i, out.Schema(), outSchema)
				}
			}
			for _, w := range want {
				wantRows += w.NumRows()
			}
			if rows != wantRows {
				t.Fatalf("%d rows, want %d", rows, wantRows)
			}
			for j := range outSchema.NumFields() {
				g, w := joinColumn(t, mem, got, j), joinColumn(t, mem, want, j)
				if !array.Equal(g, w) {
					t.Errorf("column %s differs from the input batches' results one by one", outSchema.Field(j).Name)
				}
				g.Release()
				w.Release()
			}
		})
	}
}

// joinColumn concatenates column j of recs.
func joinColumn(t *testing.T, mem memory.Allocator, recs []arrow.RecordBatch, j int) arrow.Array {
	t.Helper()
	cols := make([]arrow.Array, len(recs))
	for i, r := range recs {
		cols[i] = r.Column(j)
	}
	a, err := array.Concatenate(cols, mem)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
