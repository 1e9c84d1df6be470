package flight_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/flight/flighttest"
	"github.com/flightbatch/flightbatch/store"
)

func memServer(t *testing.T, opts *flight.Options) *flighttest.Server {
	t.Helper()
	st, err := store.Open(t.Context(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return flighttest.Start(t, st, opts)
}

// lfpBatch builds rows records of the demo schema, n samples each, from a
// deterministic generator.
func lfpBatch(mem memory.Allocator, first, rows, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, dataset.DemoSchema)
	defer b.Release()
	for r := first; r < first+rows; r++ {
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("P%02d", r%5))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("P%02d-S%d", r%5, r%2))
		b.Field(2).(*array.StringBuilder).Append([]string{"STN-L-01", "STN-R-01"}[r%2])
		b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(r) * 30_000_000))
		b.Field(4).(*array.Float64Builder).Append(250)
		lb := b.Field(5).(*array.ListBuilder)
		lb.Append(true)
		vb := lb.ValueBuilder().(*array.Float32Builder)
		rng := rand.New(rand.NewPCG(uint64(r), 1))
		for i := 0; i < n; i++ {
			vb.Append(float32(rng.NormFloat64()))
		}
	}
	return b.NewRecordBatch()
}

// put uploads batches as datasets/name and returns the server's answer.
func put(ctx context.Context, c aflight.Client, name string, schema *arrow.Schema, batches ...arrow.RecordBatch) (flight.PutResult, error) {
	return putDesc(ctx, c, &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"datasets", name}}, schema, batches...)
}

// putDesc uploads batches with any descriptor.
func putDesc(ctx context.Context, c aflight.Client, desc *aflight.FlightDescriptor, schema *arrow.Schema, batches ...arrow.RecordBatch) (flight.PutResult, error) {
	var res flight.PutResult
	stream, err := c.DoPut(ctx)
	if err != nil {
		return res, err
	}
	w := aflight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(desc)
	for _, b := range batches {
		if err := w.Write(b); err != nil {
			break // the server ended the call; Recv says why
		}
	}
	_ = w.Close()
	_ = stream.CloseSend()
	pr, err := stream.Recv()
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal(pr.AppMetadata, &res); err != nil {
		return res, err
	}
	if _, err := stream.Recv(); err != io.EOF {
		return res, fmt.Errorf("after the PutResult: %v", err)
	}
	return res, nil
}

// get streams a ticket and returns its schema, batches, and the largest batch.
func get(t *testing.T, c aflight.Client, ticket string) (*arrow.Schema, arrow.Table, int64) {
	t.Helper()
	stream, err := c.DoGet(t.Context(), &aflight.Ticket{Ticket: []byte(ticket)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := aflight.NewRecordReader(stream)
	if err != nil {
		t.Fatalf("DoGet %s: %v", ticket, err)
	}
	defer r.Release()
	var recs []arrow.RecordBatch
	var largest int64
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
		largest = max(largest, dataset.LogicalBytes(rec))
	}
	if err := r.Err(); err != nil {
		t.Fatalf("DoGet %s: %v", ticket, err)
	}
	tbl := array.NewTableFromRecords(r.Schema(), recs)
	for _, rec := range recs {
		rec.Release()
	}
	t.Cleanup(tbl.Release)
	return r.Schema(), tbl, largest
}

func tableOf(schema *arrow.Schema, recs ...arrow.RecordBatch) arrow.Table {
	return array.NewTableFromRecords(schema, recs)
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want %v", err, code)
	}
}

// An uploaded table comes back equal, cut into shards of about the target size
// and into bounded batches, even when sent as one batch larger than a shard.
func TestDoPutRoundTrip(t *testing.T) {
	srv := memServer(t, &flight.Options{ShardBytes: 1 << 20, MaxBatchBytes: 256 << 10})
	mem := memory.DefaultAllocator
	big := lfpBatch(mem, 0, 200, 5000) // 4 MB in one batch
	small := lfpBatch(mem, 200, 3, 5000)
	defer big.Release()
	defer small.Release()
	res, err := put(t.Context(), srv.Client, "up", dataset.DemoSchema, big, small)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dataset != "up" || res.Rows != 203 || res.Shards < 4 || res.Version == "" {
		t.Fatalf("PutResult %+v; want 203 rows in at least 4 shards", res)
	}
	want := tableOf(dataset.DemoSchema, big, small)
	defer want.Release()
	schema, got, largest := get(t, srv.Client, "datasets/up")
	if !schema.Equal(dataset.DemoSchema) {
		t.Fatalf("schema %s", schema)
	}
	if !array.TableEqual(got, want) {
		t.Fatal("the table read back differs from the one uploaded")
	}
	if largest > 256<<10 {
		t.Fatalf("a streamed batch holds %d bytes, more than MaxBatchBytes", largest)
	}
	info, err := srv.Client.GetFlightInfo(t.Context(), &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"datasets", "up"}})
	if err != nil {
		t.Fatal(err)
	}
	if info.TotalRecords != 203 || len(info.Endpoint) != res.Shards {
		t.Fatalf("FlightInfo: %d records, %d endpoints; PutResult %+v", info.TotalRecords, len(info.Endpoint), res)
	}
	ds, err := srv.Catalog.Get(t.Context(), "up")
	if err != nil {
		t.Fatal(err)
	}
	// Shards start at flight.UploadRampBytes and grow to ShardBytes, so that
	// a small upload still gets several.
	for _, sh := range ds.Shards[:len(ds.Shards)-1] {
		if sh.Size < flight.UploadRampBytes || sh.Size > 2<<20 {
			t.Errorf("shard %s is %d bytes; the targets are %d bytes to 1 MiB", sh.Name, sh.Size, flight.UploadRampBytes)
		}
	}
	// Each shard's ticket streams that shard alone.
	var rows int64
	for _, ep := range info.Endpoint {
		_, part, _ := get(t, srv.Client, string(ep.Ticket.Ticket))
		rows += part.NumRows()
	}
	if rows != 203 {
		t.Fatalf("the shards hold %d rows, want 203", rows)
	}
}

// Uploads that cannot be taken are refused and change nothing.
func TestDoPutRefused(t *testing.T) {
	srv := memServer(t, nil)
	ctx := t.Context()
	rec := lfpBatch(memory.DefaultAllocator, 0, 4, 100)
	defer rec.Release()
	if _, err := put(ctx, srv.Client, "first", dataset.DemoSchema, rec); err != nil {
		t.Fatal(err)
	}
	before, err := srv.Catalog.Get(ctx, "first")
	if err != nil {
		t.Fatal(err)
	}
	other := lfpBatch(memory.DefaultAllocator, 10, 2, 100)
	defer other.Release()
	_, err = put(ctx, srv.Client, "first", dataset.DemoSchema, other)
	wantCode(t, err, codes.AlreadyExists)
	after, err := srv.Catalog.Get(ctx, "first")
	if err != nil || after.Version != before.Version {
		t.Fatalf("an upload refused as AlreadyExists changed the dataset: %v", err)
	}
	for _, name := range []string{"Bad", "../x", "a/b", ""} {
		_, err = put(ctx, srv.Client, name, dataset.DemoSchema, rec)
		if name == "a/b" {
			wantCode(t, err, codes.InvalidArgument) // datasets/a/b is a shard, not a dataset
			continue
		}
		wantCode(t, err, codes.InvalidArgument)
	}
	stream, err := srv.Client.DoPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := aflight.NewRecordWriter(stream, ipc.WithSchema(dataset.DemoSchema))
	w.SetFlightDescriptor(&aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", "20260101T000000000Z-abcdef"}})
	_ = w.Write(rec)
	_ = w.Close()
	_ = stream.CloseSend()
	_, err = stream.Recv()
	if status.Code(err) != codes.InvalidArgument && status.Code(err) != codes.NotFound {
		t.Fatalf("DoPut to jobs/...: %v", err)
	}
	objs, err := srv.Store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if !regularFirst(o.Key) {
			t.Errorf("a refused upload left %s", o.Key)
		}
	}
}

func regularFirst(key string) bool {
	return len(key) > len("datasets/first/") && key[:len("datasets/first/")] == "datasets/first/"
}

// An upload that ends midway, by the client's cancellation, leaves nothing:
// no dataset, no object.
func TestDoPutCancelledLeavesNothing(t *testing.T) {
	srv := memServer(t, &flight.Options{ShardBytes: 64 << 10})
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := srv.Client.DoPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := aflight.NewRecordWriter(stream, ipc.WithSchema(dataset.DemoSchema))
	w.SetFlightDescriptor(&aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"datasets", "half"}})
	for i := 0; i < 10; i++ {
		rec := lfpBatch(memory.DefaultAllocator, i*10, 10, 2000)
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	// Wait until the server has written shards, then hang up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		objs, err := srv.Store.List(t.Context(), "datasets/half/")
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server wrote only %v", objs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := srv.Catalog.Get(t.Context(), "half"); !errors.Is(err, dataset.ErrNotFound) {
		t.Fatalf("a dataset being uploaded is visible: %v", err)
	}
	cancel()
	for {
		objs, err := srv.Store.List(t.Context(), "datasets/half/")
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a cancelled upload left %v", objs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	names, err := srv.Catalog.List(t.Context())
	if err != nil || len(names) != 0 {
		t.Fatalf("datasets after a cancelled upload: %v, %v", names, err)
	}
}

// A JSON ticket projects the stream onto the columns it names, in its order,
// for a dataset and a shard alike.
func TestDoGetProjection(t *testing.T) {
	srv := memServer(t, &flight.Options{ShardBytes: 64 << 10, MaxBatchBytes: 32 << 10})
	rec := lfpBatch(memory.DefaultAllocator, 0, 40, 2000)
	defer rec.Release()
	if _, err := put(t.Context(), srv.Client, "proj", dataset.DemoSchema, rec); err != nil {
		t.Fatal(err)
	}
	schema, tbl, _ := get(t, srv.Client, `{"path": "datasets/proj", "columns": ["samples", "channel"]}`)
	if schema.NumFields() != 2 || schema.Field(0).Name != "samples" || schema.Field(1).Name != "channel" {
		t.Fatalf("projected schema %s", schema)
	}
	if tbl.NumRows() != 40 {
		t.Fatalf("%d rows, want 40", tbl.NumRows())
	}
	want := arrow.NewChunked(rec.Column(2).DataType(), []arrow.Array{rec.Column(2)})
	defer want.Release()
	if !array.ChunkedEqual(tbl.Column(1).Data(), want) {
		t.Fatal("projected channel column differs")
	}
	schema, tbl, _ = get(t, srv.Client, `{"path": "datasets/proj/part-00000", "columns": ["fs"], "compression": "zstd"}`)
	if schema.NumFields() != 1 || tbl.NumRows() == 0 || tbl.NumRows() >= 40 {
		t.Fatalf("shard projection: %s, %d rows", schema, tbl.NumRows())
	}
	for ticket, code := range map[string]codes.Code{
		`{"path": "datasets/proj", "columns": ["nope"]}`:    codes.InvalidArgument,
		`{"path": "datasets/proj", "colums": ["fs"]}`:       codes.InvalidArgument,
		`{"path": "datasets/proj", "compression": "gzip"}`:  codes.InvalidArgument,
		`{"path": "datasets/nope", "columns": ["fs"]}`:      codes.NotFound,
		`{"path": "datasets/proj/part-99999"}`:              codes.NotFound,
		`{"path": "datasets/proj", "columns": "fs"}`:        codes.InvalidArgument,
		`{"path": "datasets/proj", "columns": ["fs"]} junk`: codes.InvalidArgument,
	} {
		stream, err := srv.Client.DoGet(t.Context(), &aflight.Ticket{Ticket: []byte(ticket)})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != code {
			t.Errorf("ticket %s: %v, want %v", ticket, err, code)
		}
	}
}

// A client that announces its row count gets its upload refused, and nothing
// kept, when the stream ends with another count.
func TestDoPutAnnouncedRows(t *testing.T) {
	srv := memServer(t, &flight.Options{ShardBytes: 1 << 10})
	ctx := t.Context()
	rec := lfpBatch(memory.DefaultAllocator, 0, 6, 100)
	defer rec.Release()
	cmd := func(s string) *aflight.FlightDescriptor {
		return &aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(s)}
	}
	_, err := putDesc(ctx, srv.Client, cmd(`{"path": "datasets/counted", "rows": 7}`), dataset.DemoSchema, rec)
	wantCode(t, err, codes.InvalidArgument)
	if objs, _ := srv.Store.List(ctx, "datasets/counted/"); len(objs) != 0 {
		t.Fatalf("a refused upload left %v", objs)
	}
	_, err = putDesc(ctx, srv.Client, cmd(`{"path": "datasets/counted", "rows": -1}`), dataset.DemoSchema, rec)
	wantCode(t, err, codes.InvalidArgument)
	res, err := putDesc(ctx, srv.Client, cmd(`{"path": "datasets/counted", "rows": 6}`), dataset.DemoSchema, rec)
	if err != nil || res.Rows != 6 {
		t.Fatalf("upload of the announced rows: %+v, %v", res, err)
	}
	res, err = putDesc(ctx, srv.Client, cmd("datasets/plain"), dataset.DemoSchema, rec)
	if err != nil || res.Rows != 6 {
		t.Fatalf("upload with a path command: %+v, %v", res, err)
	}
}
