package dataset

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/store"
)

// arrowBytes writes records [0, rows) as an Arrow IPC file, in batches of
// batchRows records of n samples.
func arrowBytes(t testing.TB, rows, batchRows, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := ipc.NewFileWriter(&buf, ipc.WithSchema(DemoSchema))
	if err != nil {
		t.Fatal(err)
	}
	for first := 0; first < rows; first += batchRows {
		rec := signalBatch(t, memory.DefaultAllocator, first, min(batchRows, rows-first), n)
		err := fw.Write(rec)
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

// decodeStored decodes a stored message as a client of a stream does: the
// schema's message, then the stored one, each with its length prefix.
func decodeStored(schema *arrow.Schema, m StoredMessage) (arrow.RecordBatch, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := w.Close(); err != nil { // the schema, then the end marker
		return nil, err
	}
	stream := bytes.Clone(buf.Bytes()[:buf.Len()-8])
	pad := (8 - len(m.Meta)%8) % 8
	stream = binary.LittleEndian.AppendUint32(stream, 0xFFFFFFFF)
	stream = binary.LittleEndian.AppendUint32(stream, uint32(len(m.Meta)+pad))
	stream = append(stream, m.Meta...)
	stream = append(stream, make([]byte, pad)...)
	stream = append(stream, m.Body...)
	r, err := ipc.NewReader(bytes.NewReader(stream), ipc.WithSchema(schema))
	if err != nil {
		return nil, err
	}
	defer r.Release()
	if !r.Next() {
		return nil, fmt.Errorf("no batch: %v", r.Err())
	}
	rec := r.RecordBatch()
	rec.Retain()
	return rec, nil
}

// flipFooter flips 64 bytes of an Arrow IPC file's footer, which holds its
// schema and batch index: what once made the server panic on every listing.
func flipFooter(data []byte) []byte {
	out := bytes.Clone(data)
	n := int(binary.LittleEndian.Uint32(out[len(out)-10:]))
	start := len(out) - 10 - n
	for i := start; i < start+min(64, n); i++ {
		out[i] ^= 0xff
	}
	return out
}

// checkStoredFile reads the file at key to its end, touching every value of
// every batch: it must never panic, and must either succeed or fail with an
// error that wraps ErrDamaged and names the file.
func checkStoredFile(t *testing.T, st *store.Store, key string, f Format) {
	t.Helper()
	check := func(err error) {
		t.Helper()
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), key) {
			t.Fatalf("error %v does not wrap ErrDamaged or name %s", err, key)
		}
	}
	// Memory is the Go allocator's, as the server's: a reader that fails
	// midway leaves its buffers to the garbage collector.
	r, err := OpenFile(context.Background(), st, key, f, memory.DefaultAllocator)
	if err != nil {
		check(err)
		return
	}
	defer r.Release()
	for r.Next() {
		rec := r.RecordBatch()
		if m, ok := Stored(r); ok {
			// What a client decodes from the stored message is the batch
			// that was validated.
			got, err := decodeStored(r.Schema(), m)
			if err != nil {
				t.Fatalf("the stored message of a validated batch does not decode: %v", err)
			}
			if !array.RecordEqual(got, rec) {
				t.Fatal("the stored message decodes to another batch than the one validated")
			}
			got.Release()
		}
		for _, col := range rec.Columns() {
			for i := 0; i < col.Len(); i++ {
				_ = col.GetOneForMarshal(i)
			}
		}
	}
	if err := r.Err(); err != nil {
		check(err)
	}
	// Under WithLazyDecode, a batch checked from its bytes decodes, as a
	// client decodes its stored message, to a valid batch: the one the
	// reader decodes when asked.
	lr, err := OpenFile(WithLazyDecode(context.Background()), st, key, f, memory.DefaultAllocator)
	if err != nil {
		check(err)
		return
	}
	defer lr.Release()
	for lr.Next() {
		m, ok := Stored(lr)
		rows, _, checked := m.Checked()
		if !ok || !checked {
			continue
		}
		got, err := decodeChecked(lr.Schema(), m.Meta, m.Body)
		if err != nil {
			t.Fatalf("a batch that passes the check does not decode and validate: %v", err)
		}
		rec := lr.RecordBatch()
		if rec == nil || got.NumRows() != rows || !array.RecordEqual(got, rec) {
			t.Fatalf("a checked batch of %d rows decodes to another batch than the reader's (%v)", rows, lr.Err())
		}
		got.Release()
	}
	if err := lr.Err(); err != nil {
		check(err)
	}
}

func fuzzStoredFile(f *testing.F, format Format, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	st, err := store.Open(context.Background(), "mem://")
	if err != nil {
		f.Fatal(err)
	}
	key := "datasets/fuzz/part-00000." + string(format)
	f.Fuzz(func(t *testing.T, data []byte) {
		stuck := time.AfterFunc(10*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic("reading the file took over 10 s:\n" + string(buf[:runtime.Stack(buf, true)]))
		})
		defer stuck.Stop()
		if err := st.WriteAll(context.Background(), key, data); err != nil {
			t.Fatal(err)
		}
		checkStoredFile(t, st, key, format)
	})
}

// FuzzArrowFile feeds arbitrary bytes to the reader of Arrow IPC shards (and
// job parts, which are read by the same OpenFile).
func FuzzArrowFile(f *testing.F) {
	good := arrowBytes(f, 6, 2, 40)
	fuzzStoredFile(f, FormatArrow, good, flipFooter(good), good[:len(good)/2], []byte("ARROW1\x00\x00ARROW1"))
}

// FuzzParquetFile feeds arbitrary bytes to the reader of Parquet shards.
func FuzzParquetFile(f *testing.F) {
	good := parquetBytes(f, 6, 3, 40)
	bad := bytes.Clone(good)
	for i := len(bad) - 72; i < len(bad)-8; i++ {
		bad[i] ^= 0xff // the footer's metadata
	}
	fuzzStoredFile(f, FormatParquet, good, bad, good[:len(good)/2], []byte("PAR1\x00\x00\x00\x00PAR1"))
}

// TestDamagedShardBytes flips single bytes at 400 seeded positions of an Arrow
// and a Parquet shard: no flip may panic, and each read either succeeds or
// fails naming the shard.
func TestDamagedShardBytes(t *testing.T) {
	st, err := store.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		format Format
		data   []byte
	}{
		{FormatArrow, arrowBytes(t, 6, 2, 40)},
		{FormatParquet, parquetBytes(t, 6, 3, 40)},
	} {
		t.Run(string(c.format), func(t *testing.T) {
			key := "datasets/flip/part-00000." + string(c.format)
			failed := 0
			for i := 0; i < 400; i++ {
				pos := (i*7919 + 13) % len(c.data)
				data := bytes.Clone(c.data)
				data[pos] ^= byte(1 + i%255)
				if err := st.WriteAll(context.Background(), key, data); err != nil {
					t.Fatal(err)
				}
				checkStoredFile(t, st, key, c.format)
				r, err := OpenFile(context.Background(), st, key, c.format, memory.DefaultAllocator)
				if err == nil {
					for r.Next() {
					}
					err = r.Err()
					r.Release()
				}
				if err != nil {
					failed++
				}
			}
			t.Logf("%s: %d of 400 single-byte flips detected; none panicked", c.format, failed)
		})
	}
}
