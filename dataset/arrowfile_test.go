package dataset

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/internal/ipccheck"
	"github.com/flightbatch/flightbatch/store"
)

// dictFile writes an Arrow IPC file with a dictionary-encoded column.
func dictFile(t *testing.T) []byte {
	t.Helper()
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{{Name: "site", Type: dt}}, nil)
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for _, v := range []string{"stn", "gpi", "stn"} {
		if err := b.Field(0).(*array.BinaryDictionaryBuilder).AppendString(v); err != nil {
			t.Fatal(err)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compressedFile writes the demo schema's records compressed with zstd.
func compressedFile(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(DemoSchema), ipc.WithZstd())
	if err != nil {
		t.Fatal(err)
	}
	for first := 0; first < 6; first += 3 {
		rec := signalBatch(t, memory.DefaultAllocator, first, 3, 50)
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestStored reads files batch by batch and checks which batches come with
// their stored message, that the message decodes to the batch validated, and
// that every batch equals arrow-go's own reading of the file.
func TestStored(t *testing.T) {
	cases := []struct {
		name       string
		data       []byte
		stored     bool
		compressed bool
	}{
		{"plain", arrowBytes(t, 7, 3, 40), true, false},
		{"zstd", compressedFile(t), true, true},
		{"dictionary", dictFile(t), false, false},
		{"empty", arrowBytes(t, 0, 1, 1), true, false},
	}
	st, err := store.Open(t.Context(), "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := "datasets/stored/" + c.name + ".arrow"
			if err := st.WriteAll(context.Background(), key, c.data); err != nil {
				t.Fatal(err)
			}
			want, err := ipc.NewFileReader(bytes.NewReader(c.data))
			if err != nil {
				t.Fatal(err)
			}
			defer want.Close()
			r, err := OpenFile(context.Background(), st, key, FormatArrow, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			i := 0
			for r.Next() {
				rec := r.RecordBatch()
				w, err := want.RecordBatchAt(i)
				if err != nil {
					t.Fatal(err)
				}
				if !array.RecordEqual(rec, w) {
					t.Fatalf("batch %d differs from arrow-go's reading", i)
				}
				w.Release()
				m, ok := Stored(r)
				if ok != c.stored {
					t.Fatalf("batch %d: Stored ok = %v, want %v", i, ok, c.stored)
				}
				if ok {
					if m.Compressed != c.compressed {
						t.Fatalf("batch %d: Compressed = %v, want %v", i, m.Compressed, c.compressed)
					}
					got, err := decodeStored(r.Schema(), m)
					if err != nil {
						t.Fatal(err)
					}
					if !array.RecordEqual(got, rec) {
						t.Fatalf("batch %d: the stored message decodes to another batch", i)
					}
					got.Release()
				}
				i++
			}
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			if i != want.NumRecords() {
				t.Fatalf("read %d batches, want %d", i, want.NumRecords())
			}
			if _, ok := Stored(r); ok {
				t.Fatal("Stored after the last batch")
			}
		})
	}
}

// TestBlockPool reads a file under WithBlockPool while keeping every batch
// and one stored message retained: nothing retained may be overwritten by a
// later read (its buffer goes back only when released), and once all is
// released the pool holds the buffers for the next read, which reads the
// same.
func TestBlockPool(t *testing.T) {
	st, err := store.Open(t.Context(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	data := arrowBytes(t, 40, 4, 5000) // batches of 80 KB: pooled sizes
	if err := st.WriteAll(t.Context(), "datasets/p/part-00000.arrow", data); err != nil {
		t.Fatal(err)
	}
	pool := NewBlockPool(64 << 20)
	ctx := WithBlockPool(t.Context(), pool)
	want, err := ipc.NewFileReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	for pass := range 2 {
		r, err := OpenFile(ctx, st, "datasets/p/part-00000.arrow", FormatArrow, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		var kept []arrow.RecordBatch
		var msg StoredMessage
		var body []byte
		for r.Next() {
			rec := r.RecordBatch()
			rec.Retain()
			kept = append(kept, rec)
			if len(kept) == 2 {
				m, ok := Stored(r)
				if !ok {
					t.Fatal("no stored message")
				}
				m.Retain()
				msg, body = m, bytes.Clone(m.Body)
			}
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		r.Release()
		if !bytes.Equal(msg.Body, body) {
			t.Fatalf("pass %d: a retained stored message was overwritten", pass)
		}
		msg.Release()
		for i, rec := range kept {
			w, err := want.RecordBatchAt(i)
			if err != nil {
				t.Fatal(err)
			}
			if !array.RecordEqual(rec, w) {
				t.Fatalf("pass %d: retained batch %d was overwritten", pass, i)
			}
			w.Release()
			rec.Release()
		}
		if pool.Kept() == 0 {
			t.Fatalf("pass %d: the pool holds nothing after every batch was released", pass)
		}
	}
}

// TestBufferPastTheBody: a stored batch whose metadata places a buffer just
// past its body, where the pooled block buffer read for it has spare bytes,
// is refused as damaged; it must never be read from those bytes, which held
// another block before.
func TestBufferPastTheBody(t *testing.T) {
	st, err := store.Open(t.Context(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	data := arrowBytes(t, 16, 16, 1000) // one batch of 64 KB: a pooled size, with spare capacity
	n := int(binary.LittleEndian.Uint32(data[len(data)-10:]))
	blocks, _, err := ipccheck.Blocks(data[len(data)-10-n : len(data)-10])
	if err != nil || len(blocks) != 1 {
		t.Fatalf("blocks %v, %v", blocks, err)
	}
	b := blocks[0]
	metaLen := int64(binary.LittleEndian.Uint32(data[b.Offset+4:]))
	meta := data[b.Offset+8 : b.Offset+8+metaLen]
	l, err := ipccheck.BatchLayout(meta)
	if err != nil {
		t.Fatal(err)
	}
	// Buffer 12 holds fs's values (three string columns of three buffers,
	// start_time's two, then fs's validity and values).
	off, length := l.Buffer(12)
	at := bytes.Index(meta, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, uint64(off)), uint64(length)))
	if at < 0 || length == 0 {
		t.Fatalf("fs's values (%d, %d) not found in the metadata", off, length)
	}
	pool := NewBlockPool(64 << 20)
	if c := pool.free.ClassSize(int(int64(b.MetaLen) + b.BodyLen)); int64(c) < int64(b.MetaLen)+b.BodyLen+length {
		t.Fatalf("the block's pooled buffer (%d bytes) has no room past the body: the case tests nothing", c)
	}
	binary.LittleEndian.PutUint64(meta[at:], uint64(b.BodyLen))
	if err := st.WriteAll(t.Context(), "datasets/p/part-00000.arrow", data); err != nil {
		t.Fatal(err)
	}
	for _, lazy := range []bool{false, true} {
		ctx := WithBlockPool(t.Context(), pool)
		if lazy {
			ctx = WithLazyDecode(ctx)
		}
		r, err := OpenFile(ctx, st, "datasets/p/part-00000.arrow", FormatArrow, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			if r.RecordBatch() == nil {
				break
			}
			t.Errorf("lazy %v: a batch with a buffer past its body was read", lazy)
		}
		if err := r.Err(); !errors.Is(err, ErrDamaged) {
			t.Errorf("lazy %v: error %v, want one wrapping ErrDamaged", lazy, err)
		}
		r.Release()
	}
}
