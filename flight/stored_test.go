package flight_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/internal/ipccheck"
	"github.com/flightbatch/flightbatch/internal/testserver"
)

// collected replays FlightData messages to a record reader.
type collected []*aflight.FlightData

func (c *collected) Recv() (*aflight.FlightData, error) {
	if len(*c) == 0 {
		return nil, io.EOF
	}
	d := (*c)[0]
	*c = (*c)[1:]
	return d, nil
}

// doGetMessages returns the FlightData messages of a DoGet and the batches
// they decode to.
func doGetMessages(t *testing.T, c aflight.Client, ticket string) ([]*aflight.FlightData, []arrow.RecordBatch) {
	t.Helper()
	stream, err := c.DoGet(context.Background(), &aflight.Ticket{Ticket: []byte(ticket)})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*aflight.FlightData
	for {
		d, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("DoGet %s: %v", ticket, err)
		}
		msgs = append(msgs, d)
	}
	replay := collected(append([]*aflight.FlightData(nil), msgs...))
	r, err := aflight.NewRecordReader(&replay)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var recs []arrow.RecordBatch
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
		t.Cleanup(rec.Release)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return msgs, recs
}

// TestDoGetSendsStoredMessages: a DoGet of an Arrow IPC shard sends each
// stored batch within the bound as the file stores it (its body byte for
// byte), cuts a larger one as before, and streams the same batches as the
// path that decodes and encodes them again (a projection on every column).
func TestDoGetSendsStoredMessages(t *testing.T) {
	const bound = 64 << 10
	srv := memServer(t, &flight.Options{MaxBatchBytes: bound})
	c := dial(t, srv.Addr)
	batches := []arrow.RecordBatch{
		lfpBatch(memory.DefaultAllocator, 0, 4, 500),    // 8 KB of samples: sent as stored
		lfpBatch(memory.DefaultAllocator, 4, 40, 1000),  // 160 KB: cut into batches of about 64 KiB
		lfpBatch(memory.DefaultAllocator, 44, 1, 40000), // one 160 KB row: sent alone, as stored
		lfpBatch(memory.DefaultAllocator, 45, 0, 1),     // empty
	}
	var file bytes.Buffer
	w, err := ipc.NewFileWriter(&file, ipc.WithSchema(dataset.DemoSchema))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A mark in the padding after the first column's 20 bytes of offsets,
	// which no value refers to: an encoder writes zeros there, so only the
	// stored body carries it.
	data := file.Bytes()
	n := int(binary.LittleEndian.Uint32(data[len(data)-10:]))
	blocks, _, err := ipccheck.Blocks(data[len(data)-10-n : len(data)-10])
	if err != nil {
		t.Fatal(err)
	}
	const mark = 0xAB
	data[blocks[0].Offset+int64(blocks[0].MetaLen)+21] = mark
	key := "datasets/stored/part-00000.arrow"
	if err := srv.Store.WriteAll(t.Context(), key, data); err != nil {
		t.Fatal(err)
	}

	// The stored messages, as the dataset reader finds them.
	r, err := dataset.OpenFile(t.Context(), srv.Store, key, dataset.FormatArrow, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	var stored [][]byte
	for r.Next() {
		m, ok := dataset.Stored(r)
		if !ok {
			t.Fatal("the dataset reader has no stored message for a plain batch")
		}
		stored = append(stored, bytes.Clone(m.Body))
	}
	r.Release()

	msgs, got := doGetMessages(t, c, "datasets/stored")
	if len(msgs[0].DataBody) != 0 {
		t.Fatalf("the first message has a %d-byte body; want the schema", len(msgs[0].DataBody))
	}
	bodies := msgs[1:]
	wantRows := []int64{4}
	for off := int64(0); off < 40; off += 16 { // 16 rows of 4 KB fit in 64 KiB
		wantRows = append(wantRows, min(16, 40-off))
	}
	wantRows = append(wantRows, 1, 0)
	if len(got) != len(wantRows) || len(bodies) != len(wantRows) {
		t.Fatalf("%d batches in %d messages; want %d", len(got), len(bodies), len(wantRows))
	}
	for i, rec := range got {
		if rec.NumRows() != wantRows[i] {
			t.Fatalf("batch %d has %d rows, want %d", i, rec.NumRows(), wantRows[i])
		}
	}
	if stored[0][21] != mark || bodies[0].DataBody[21] != mark {
		t.Fatal("the first batch was not sent as stored: the mark in its padding is gone")
	}
	for _, p := range []struct{ msg, stored int }{{0, 0}, {len(wantRows) - 2, 2}, {len(wantRows) - 1, 3}} {
		if !bytes.Equal(bodies[p.msg].DataBody, stored[p.stored]) {
			t.Fatalf("message %d: its body (%d bytes) is not stored batch %d's (%d bytes)", p.msg, len(bodies[p.msg].DataBody), p.stored, len(stored[p.stored]))
		}
	}
	for i := 1; i < len(wantRows)-2; i++ {
		if len(bodies[i].DataBody) > bound+bound/4 {
			t.Fatalf("message %d of the cut batch has a %d-byte body, over the bound of %d", i, len(bodies[i].DataBody), bound)
		}
	}

	// The path that decodes and encodes every batch streams the same.
	_, want := doGetMessages(t, c, `{"path": "datasets/stored", "columns": ["patient_id", "session_id", "channel", "start_time", "fs", "samples"]}`)
	if len(want) != len(got) {
		t.Fatalf("%d batches as stored, %d decoded and encoded", len(got), len(want))
	}
	for i := range got {
		if !array.RecordEqual(got[i], want[i]) {
			t.Fatalf("batch %d differs between the stored and the encoded stream", i)
		}
	}
}

// TestDoGetSendsStoredResult: a job's merged result goes out as its parts
// store it, under the schema with the job's provenance, and equals the path
// that decodes and encodes it again.
func TestDoGetSendsStoredResult(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	c := dial(t, srv.Addr)
	res := submitPSD(t, c, map[string]any{"nperseg": 64})
	if st := waitState(t, c, res.JobID, 60*time.Second); st.State != "SUCCEEDED" {
		t.Fatalf("job = %+v", st)
	}
	var stored [][]byte
	for i := range 4 {
		key := batch.PartKey(res.JobID, fmt.Sprintf("part-%05d", i))
		r, err := dataset.OpenFile(t.Context(), srv.Store, key, dataset.FormatArrow, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			m, ok := dataset.Stored(r)
			if !ok {
				t.Fatalf("%s: no stored message", key)
			}
			stored = append(stored, bytes.Clone(m.Body))
		}
		r.Release()
	}
	msgs, got := doGetMessages(t, c, "jobs/"+res.JobID)
	if len(msgs)-1 != len(stored) {
		t.Fatalf("%d batch messages, %d stored batches", len(msgs)-1, len(stored))
	}
	for i, m := range msgs[1:] {
		if !bytes.Equal(m.DataBody, stored[i]) {
			t.Fatalf("message %d is not stored batch %d", i+1, i)
		}
	}
	schema, err := aflight.DeserializeSchema(msgsSchema(t, msgs[0]), memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := schema.Metadata().GetValue("flightbatch.job_id"); !ok || v != res.JobID {
		t.Fatalf("the stream's schema carries job_id %q, want %q", v, res.JobID)
	}
	cols := make([]string, got[0].NumCols())
	for i, f := range got[0].Schema().Fields() {
		cols[i] = f.Name
	}
	ticket, _ := json.Marshal(map[string]any{"path": "jobs/" + res.JobID, "columns": cols})
	_, want := doGetMessages(t, c, string(ticket))
	if len(want) != len(got) {
		t.Fatalf("%d batches as stored, %d decoded and encoded", len(got), len(want))
	}
	for i := range got {
		if !array.RecordEqual(got[i], want[i]) {
			t.Fatalf("batch %d differs between the stored and the encoded stream", i)
		}
	}
}

// msgsSchema turns the schema message of a stream into the bytes that
// DeserializeSchema reads (an IPC stream of the schema alone).
func msgsSchema(t *testing.T, d *aflight.FlightData) []byte {
	t.Helper()
	var b []byte
	pad := (8 - len(d.DataHeader)%8) % 8
	b = binary.LittleEndian.AppendUint32(b, 0xFFFFFFFF)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(d.DataHeader)+pad))
	b = append(b, d.DataHeader...)
	b = append(b, make([]byte, pad)...)
	return append(b, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0)
}

// TestDoGetConcurrentStreams runs several DoGets of one dataset at once:
// buffers lent to one stream's reads go back only when gRPC has written
// them, so every stream receives exactly the stored batches.
func TestDoGetConcurrentStreams(t *testing.T) {
	srv := memServer(t, nil)
	c := dial(t, srv.Addr)
	var file bytes.Buffer
	w, err := ipc.NewFileWriter(&file, ipc.WithSchema(dataset.DemoSchema))
	if err != nil {
		t.Fatal(err)
	}
	for first := 0; first < 64; first += 8 {
		b := lfpBatch(memory.DefaultAllocator, first, 8, 8000) // 256 KB batches
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		key := fmt.Sprintf("datasets/many/part-%05d.arrow", i)
		if err := srv.Store.WriteAll(t.Context(), key, file.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	want, err := ipc.NewFileReader(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	const streams = 4
	errs := make(chan error, streams)
	for range streams {
		go func() {
			errs <- func() error {
				stream, err := c.DoGet(context.Background(), &aflight.Ticket{Ticket: []byte("datasets/many")})
				if err != nil {
					return err
				}
				r, err := aflight.NewRecordReader(stream)
				if err != nil {
					return err
				}
				defer r.Release()
				i := 0
				for r.Next() {
					wb, err := want.RecordBatchAt(i % want.NumRecords())
					if err != nil {
						return err
					}
					eq := array.RecordEqual(r.RecordBatch(), wb)
					wb.Release()
					if !eq {
						return fmt.Errorf("batch %d differs from the stored one", i)
					}
					i++
				}
				if i != 2*want.NumRecords() {
					return fmt.Errorf("%d batches, want %d", i, 2*want.NumRecords())
				}
				return r.Err()
			}()
		}()
	}
	for range streams {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
