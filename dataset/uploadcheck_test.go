package dataset

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/store"
)

func TestCheckUpload(t *testing.T) {
	f64 := arrow.ListOf(arrow.PrimitiveTypes.Float64)
	tensorMD := arrow.NewMetadata([]string{"ARROW:extension:name"}, []string{"arrow.fixed_shape_tensor"})
	field := func(name string, t arrow.DataType) arrow.Field {
		return arrow.Field{Name: name, Type: t, Nullable: true}
	}
	cases := []struct {
		name    string
		fields  []arrow.Field
		signals string
		refuse  string // words the error must hold
	}{
		{"samples", []arrow.Field{field("channel", arrow.BinaryTypes.String), field("samples", f64)}, "samples", ""},
		{"float32 fixed size and large list", []arrow.Field{field("a", arrow.FixedSizeListOf(8, arrow.PrimitiveTypes.Float32)), field("b", arrow.LargeListOf(arrow.PrimitiveTypes.Float64))}, "a,b", ""},
		{"lists of strings are metadata", []arrow.Field{field("tags", arrow.ListOf(arrow.BinaryTypes.String)), field("sig", f64)}, "sig", ""},
		{"list<int16>", []arrow.Field{field("samples", arrow.ListOf(arrow.PrimitiveTypes.Int16))}, "", `column "samples" is list<item: int16, nullable>`},
		{"list<float16>", []arrow.Field{field("raw", arrow.ListOf(arrow.FixedWidthTypes.Float16)), field("samples", f64)}, "", `column "raw"`},
		// arrow-go has no tensor extension type: the IPC reader leaves the
		// storage type, with the extension's name in the field's metadata.
		{"tensor", []arrow.Field{{Name: "epoch", Type: arrow.FixedSizeListOf(3584, arrow.PrimitiveTypes.Float32), Metadata: tensorMD}}, "", `column "epoch" is an arrow.fixed_shape_tensor`},
		{"nested lists", []arrow.Field{field("x", arrow.ListOf(f64))}, "", "channels nested in one row"},
		{"one column per channel", []arrow.Field{field("time", arrow.PrimitiveTypes.Float64), field("Fz", arrow.PrimitiveTypes.Float64)}, "", `no signal column (its columns: "time" float64, "Fz" float64)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := CheckUpload(arrow.NewSchema(c.fields, nil))
			if c.refuse == "" {
				if err != nil || strings.Join(got, ",") != c.signals {
					t.Fatalf("signals %v, %v; want %s", got, err, c.signals)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.refuse) {
				t.Fatalf("error %v; want ErrInvalid saying %q", err, c.refuse)
			}
			if !strings.Contains(err.Error(), "list<float64>") {
				t.Errorf("the message does not say what layout is accepted: %v", err)
			}
		})
	}
}

func oneRowBatch(mem memory.Allocator, i int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, DemoSchema)
	defer b.Release()
	for f := range DemoSchema.Fields() {
		switch fb := b.Field(f).(type) {
		case *array.StringBuilder:
			fb.Append("p")
		case *array.Int64Builder:
			fb.Append(int64(i))
		case *array.Int32Builder:
			fb.Append(int32(i))
		case *array.Float64Builder:
			fb.Append(float64(i))
		case *array.TimestampBuilder:
			fb.Append(arrow.Timestamp(i))
		case *array.ListBuilder:
			fb.Append(true)
			fb.ValueBuilder().(*array.Float32Builder).AppendValues([]float32{float32(i), 1}, nil)
		default:
			b.Field(f).AppendNull()
		}
	}
	return b.NewRecordBatch()
}

// A stream of one-row batches is stored as a few large batches: the data
// comes back equal and the stored shards are not much larger than it.
func TestCoalescerJoinsTinyBatches(t *testing.T) {
	ctx := context.Background()
	st, _ := store.Open(ctx, "mem://")
	cat := NewCatalog(st)
	w, err := cat.NewWriter(ctx, "tiny", DemoSchema, nil)
	if err != nil {
		t.Fatal(err)
	}
	var written, logical int64
	co := NewCoalescer(256<<10, memory.DefaultAllocator, func(rec arrow.RecordBatch) error {
		written++
		return w.Write(rec)
	})
	const n = 20000
	for i := 0; i < n; i++ {
		rec := oneRowBatch(memory.DefaultAllocator, i)
		logical += LogicalBytes(rec)
		if err := co.Add(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := co.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	ds, err := cat.Get(ctx, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if written > 20 || ds.Rows() != n {
		t.Fatalf("%d batches written for %d rows (want a few); %d rows stored", written, n, ds.Rows())
	}
	if ds.Bytes() > 2*logical {
		t.Fatalf("stored %d bytes for %d bytes of data", ds.Bytes(), logical)
	}
	r, err := cat.OpenShard(ctx, ds.Shards[0], memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var next int64
	for r.Next() {
		col := r.RecordBatch().Column(DemoSchema.FieldIndices("fs")[0]).(*array.Float64)
		for i := 0; i < col.Len(); i++ {
			if got := col.Value(i); got != float64(next) {
				t.Fatalf("row %d holds fs %v", next, got)
			}
			next++
		}
	}
}

func TestWriterRampAndShardRows(t *testing.T) {
	ctx := context.Background()
	st, _ := store.Open(ctx, "mem://")
	cat := NewCatalog(st)
	write := func(name string, o *WriterOptions, batches int) *Dataset {
		w, err := cat.NewWriter(ctx, name, DemoSchema, o)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < batches; i++ {
			rec := signalBatch(t, memory.DefaultAllocator, i*8, 8, 1000)
			if err := w.Write(rec); err != nil {
				t.Fatal(err)
			}
			rec.Release()
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		ds, err := cat.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	// 8 rows of 1000 float32 samples are about 32 KB a batch.
	ramp := write("ramp", &WriterOptions{ShardBytes: 1 << 20, RampShards: 2, RampBytes: 30 << 10}, 24)
	var rows []int64
	for _, s := range ramp.Shards {
		rows = append(rows, s.Rows)
	}
	// Targets 30K, 30K, 60K, 60K, 120K, 120K, 240K...: batches 1, 1, 2, 2, 4, 4, 8, then the rest.
	want := []int64{8, 8, 16, 16, 32, 32, 64, 16}
	if len(rows) != len(want) {
		t.Fatalf("shard rows %v, want %v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Fatalf("shard rows %v, want %v", rows, want)
		}
	}
	even := write("even", &WriterOptions{ShardBytes: 1 << 62, ShardRows: 30}, 10)
	for i, s := range even.Shards {
		if wantRows := min(int64(30), 80-int64(i)*30); s.Rows != wantRows {
			t.Fatalf("shard %d has %d rows, want %d", i, s.Rows, wantRows)
		}
	}
	if len(even.Shards) != 3 {
		t.Fatalf("%d shards for 80 rows at 30 a shard", len(even.Shards))
	}
}
