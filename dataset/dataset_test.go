package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/flightbatch/flightbatch/store"
)

// stores opens every kind of store the tests run on.
func stores(t *testing.T) map[string]*store.Store {
	t.Helper()
	out := map[string]*store.Store{}
	for name, u := range map[string]string{"mem": "mem://", "file": "file://" + t.TempDir()} {
		st, err := store.Open(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		out[name] = st
	}
	if st := s3Store(t); st != nil {
		out["s3"] = st
	}
	return out
}

// s3Store opens a fresh prefix of the S3 test server's bucket
// (scripts/s3-server.sh), emptied when the test ends. Without a server it
// returns nil, unless FLIGHTBATCH_REQUIRE_S3=1 asks for one: then the test fails.
func s3Store(t *testing.T) *store.Store {
	t.Helper()
	bucket := os.Getenv("FLIGHTBATCH_TEST_S3_BUCKET")
	if bucket == "" {
		if os.Getenv("FLIGHTBATCH_REQUIRE_S3") == "1" {
			t.Fatal("FLIGHTBATCH_REQUIRE_S3=1 but FLIGHTBATCH_TEST_S3_BUCKET is not set: start scripts/s3-server.sh and source its env file")
		}
		return nil
	}
	st, err := store.Open(t.Context(), fmt.Sprintf("s3://%s/datasettest-%016x", bucket, rand.Uint64()))
	if err != nil {
		t.Fatal(err)
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

// signalBatch builds rows records of the demo schema, n samples each; the
// values depend on first, the index of the first record.
func signalBatch(t testing.TB, mem memory.Allocator, first, rows, n int) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, DemoSchema)
	defer b.Release()
	for r := first; r < first+rows; r++ {
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("P%02d", r%7))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("S%d", r))
		b.Field(2).(*array.StringBuilder).Append("STN-L-01")
		b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(r) * 30_000_000))
		b.Field(4).(*array.Float64Builder).Append(250)
		lb := b.Field(5).(*array.ListBuilder)
		lb.Append(true)
		vb := lb.ValueBuilder().(*array.Float32Builder)
		rng := rand.New(rand.NewPCG(uint64(r), 7))
		for i := 0; i < n; i++ {
			vb.Append(float32(rng.NormFloat64()))
		}
	}
	return b.NewRecordBatch()
}

// parquetBytes writes records [0, rows) as a Parquet file with row groups of
// groupRows rows.
func parquetBytes(t testing.TB, rows, groupRows, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
	fw, err := pqarrow.NewFileWriter(DemoSchema, &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	for first := 0; first < rows; first += groupRows {
		rec := signalBatch(t, memory.DefaultAllocator, first, min(groupRows, rows-first), n)
		err := fw.Write(rec) // one row group per call
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll reads every batch of r, checking each against signalBatch, and
// returns the row count.
func readAll(t *testing.T, r array.RecordReader, first, n int) int {
	t.Helper()
	rows := 0
	for r.Next() {
		got := r.RecordBatch()
		want := signalBatch(t, memory.DefaultAllocator, first+rows, int(got.NumRows()), n)
		for c := 0; c < int(got.NumCols()); c++ {
			if !array.Equal(got.Column(c), want.Column(c)) {
				t.Fatalf("rows %d..: column %s differs", first+rows, got.ColumnName(c))
			}
		}
		want.Release()
		rows += int(got.NumRows())
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// countingReaderAt records the largest single read.
type countingReaderAt struct {
	*bytes.Reader
	mu      sync.Mutex
	reads   int
	largest int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.reads++
	c.largest = max(c.largest, len(p))
	c.mu.Unlock()
	return c.Reader.ReadAt(p, off)
}

// A Parquet shard is read page by page: no read is much larger than the read
// buffer, although a column chunk holds tens of megabytes, and every batch is
// small.
func TestParquetReadsAreRangedAndBounded(t *testing.T) {
	const rows, groupRows, n = 300, 100, 20_000 // 3 row groups of 8 MB of signals
	data := parquetBytes(t, rows, groupRows, n)
	src := &countingReaderAt{Reader: bytes.NewReader(data)}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r, err := openParquet(t.Context(), src, "test.parquet", mem)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for r.Next() {
		rec := r.RecordBatch()
		if rec.NumRows() > parquetBatchRows {
			t.Fatalf("batch of %d rows, want at most %d", rec.NumRows(), parquetBatchRows)
		}
		if b := heldBytes(rec); b > 8<<20 {
			t.Fatalf("batch of %d bytes", b)
		}
		got += int(rec.NumRows())
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	r.Release()
	if got != rows {
		t.Fatalf("read %d rows, want %d", got, rows)
	}
	if len(data) < 20<<20 {
		t.Fatalf("the file is %d bytes; the test needs column chunks larger than the read buffer", len(data))
	}
	if src.largest > 2*parquetBufferBytes {
		t.Fatalf("largest read %d bytes of a %d-byte file; want ranged reads of at most %d", src.largest, len(data), 2*parquetBufferBytes)
	}
	t.Logf("%d-byte file read in %d reads, the largest %d bytes", len(data), src.reads, src.largest)
}

// Files that already exist under datasets/<name>/ are a dataset, without
// copying: Parquet (row counts from the footers) and Arrow IPC alike.
func TestRegisteredInPlace(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			const n = 500
			if err := st.WriteAll(ctx, "datasets/lfp/a.parquet", parquetBytes(t, 50, 16, n)); err != nil {
				t.Fatal(err)
			}
			if err := st.WriteAll(ctx, "datasets/lfp/b.parquet", parquetBytes(t, 30, 7, n)); err != nil {
				t.Fatal(err)
			}
			if err := st.WriteAll(ctx, "datasets/lfp/README.txt", []byte("not a shard")); err != nil {
				t.Fatal(err)
			}
			cat := NewCatalog(st)
			ds, err := cat.Get(ctx, "lfp")
			if err != nil {
				t.Fatal(err)
			}
			if len(ds.Shards) != 2 || ds.Shards[0].Name != "a" || ds.Shards[1].Format != FormatParquet {
				t.Fatalf("shards %+v", ds.Shards)
			}
			if ds.Rows() != 80 {
				t.Fatalf("rows %d, want 80", ds.Rows())
			}
			names, err := cat.List(ctx)
			if err != nil || len(names) != 1 || names[0] != "lfp" {
				t.Fatalf("List = %v, %v", names, err)
			}
			for i, first := range []int{0, 0} {
				r, err := cat.OpenShard(ctx, ds.Shards[i], memory.DefaultAllocator)
				if err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, r, first, n); got != int(ds.Shards[i].Rows) {
					t.Fatalf("shard %s: %d rows, want %d", ds.Shards[i].Name, got, ds.Shards[i].Rows)
				}
				r.Release()
			}
		})
	}
}

// The version changes when a shard's content changes (even at the same size)
// or a shard comes or goes, and only then.
func TestVersionFollowsContent(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			cat := NewCatalog(st)
			w, err := cat.NewWriter(ctx, "v", DemoSchema, &WriterOptions{ShardBytes: 1})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				rec := signalBatch(t, memory.DefaultAllocator, i*4, 4, 100)
				if err := w.Write(rec); err != nil {
					t.Fatal(err)
				}
				rec.Release()
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			version := func() string {
				t.Helper()
				ds, err := cat.Get(ctx, "v")
				if err != nil {
					t.Fatal(err)
				}
				return ds.Version
			}
			v1 := version()
			if v1 == "" || version() != v1 {
				t.Fatalf("version %q is not stable", v1)
			}
			// Rewrite shard 1 with other content of the same size.
			key := "datasets/v/part-00001.arrow"
			old, err := st.ReadAll(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			changed := bytes.Clone(old)
			i := bytes.LastIndex(changed, []byte("S7"))
			if i < 0 {
				t.Fatal("S7 not found in the shard")
			}
			changed[i+1] = '9'
			if err := st.WriteAll(ctx, key, changed); err != nil {
				t.Fatal(err)
			}
			v2 := version()
			if v2 == v1 {
				t.Fatal("version unchanged after a shard changed")
			}
			if err := st.WriteAll(ctx, "datasets/v/extra.parquet", parquetBytes(t, 5, 5, 10)); err != nil {
				t.Fatal(err)
			}
			v3 := version()
			if v3 == v2 {
				t.Fatal("version unchanged after a shard was added")
			}
			if err := st.Delete(ctx, "datasets/v/extra.parquet"); err != nil {
				t.Fatal(err)
			}
			if version() != v2 {
				t.Fatal("version differs after the added shard was removed again")
			}
		})
	}
}

// A Writer cuts shards at the target size; an aborted one leaves nothing, and
// an existing dataset is not overwritten.
func TestWriter(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			cat := NewCatalog(st)
			w, err := cat.NewWriter(ctx, "w", DemoSchema, &WriterOptions{ShardBytes: 90 << 10})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 10; i++ { // 10 batches of 8 x 4 KB
				rec := signalBatch(t, memory.DefaultAllocator, i*8, 8, 1000)
				if err := w.Write(rec); err != nil {
					t.Fatal(err)
				}
				rec.Release()
				if i == 4 {
					if _, err := cat.Get(ctx, "w"); !errors.Is(err, ErrNotFound) {
						t.Fatalf("a dataset being written is visible: %v", err)
					}
				}
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			ds, err := cat.Get(ctx, "w")
			if err != nil {
				t.Fatal(err)
			}
			if len(ds.Shards) != 4 || ds.Rows() != 80 {
				t.Fatalf("%d shards, %d rows; want 4 shards (3 batches each), 80 rows", len(ds.Shards), ds.Rows())
			}
			if _, err := cat.NewWriter(ctx, "w", DemoSchema, nil); !errors.Is(err, ErrExists) {
				t.Fatalf("NewWriter over an existing dataset: %v, want ErrExists", err)
			}

			w, err = cat.NewWriter(ctx, "gone", DemoSchema, &WriterOptions{ShardBytes: 1})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				rec := signalBatch(t, memory.DefaultAllocator, i, 1, 10)
				if err := w.Write(rec); err != nil {
					t.Fatal(err)
				}
				rec.Release()
			}
			w.Abort()
			if objs, err := st.List(ctx, "datasets/gone/"); err != nil || len(objs) != 0 {
				t.Fatalf("an aborted dataset left %v (%v)", objs, err)
			}
			if _, err := cat.Get(ctx, "gone"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get of an aborted dataset: %v", err)
			}
		})
	}
}

var _ io.ReaderAt = (*countingReaderAt)(nil)

// The slices of a batch add up to its logical size; a slice does not count
// the buffers it shares with the rest.
func TestLogicalBytes(t *testing.T) {
	rec := signalBatch(t, memory.DefaultAllocator, 0, 100, 1000)
	defer rec.Release()
	whole := LogicalBytes(rec)
	if whole < 100*1000*4 || whole > 100*1000*4+100*200 {
		t.Fatalf("LogicalBytes = %d for 400000 bytes of samples", whole)
	}
	var sum int64
	for off := int64(0); off < 100; off += 7 {
		sl := rec.NewSlice(off, min(off+7, 100))
		sum += LogicalBytes(sl)
		sl.Release()
	}
	if sum < whole || sum > whole+15*100 {
		t.Fatalf("slices add up to %d, the whole is %d", sum, whole)
	}
}

// heldBytes is the memory a record batch holds: the sizes of its buffers,
// children included (a slice counts its whole buffers).
func heldBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, col := range rec.Columns() {
		n += dataBytes(col.Data())
	}
	return n
}
