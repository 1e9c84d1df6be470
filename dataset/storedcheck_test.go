package dataset

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/internal/ipccheck"
	"github.com/flightbatch/flightbatch/store"
)

// checkSchema has a field of every type checkStored knows, nested ones
// included.
var checkSchema = arrow.NewSchema([]arrow.Field{
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
	{Name: "u16", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
	{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "d32", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
	{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64), Nullable: true},
	{Name: "ll", Type: arrow.LargeListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "fsl", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Int32), Nullable: true},
	{Name: "st", Type: arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		arrow.Field{Name: "y", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true}), Nullable: true},
}, nil)

// checkRows are rows of checkSchema, with nulls at every level.
const checkRows = `[
{"b": true, "i8": -3, "u16": 7, "i64": 1, "f32": 1.5, "d32": 19000, "ts": 1000, "s": "héllo", "bin": "AAE=", "ls": "x",
 "l": [1.5, 2.5], "ll": ["a", null], "fsl": [1, 2], "st": {"x": 1, "y": ["p", "q"]}},
{"b": null, "i8": null, "u16": null, "i64": null, "f32": null, "d32": null, "ts": null, "s": null, "bin": null, "ls": null,
 "l": null, "ll": null, "fsl": null, "st": null},
{"b": false, "i8": 4, "u16": 9, "i64": -7, "f32": -2, "d32": 1, "ts": -5, "s": "", "bin": "", "ls": "yz",
 "l": [], "ll": [], "fsl": [null, 5], "st": {"x": null, "y": null}},
{"b": true, "i8": 1, "u16": 2, "i64": 3, "f32": 4, "d32": 5, "ts": 6, "s": "日本", "bin": "/w==", "ls": "",
 "l": [null, 3], "ll": ["bb"], "fsl": [7, 8], "st": {"x": 2, "y": []}}
]`

// checkMessages writes batches as an Arrow IPC file and returns each
// batch's stored metadata and body (copies).
func checkMessages(t testing.TB, schema *arrow.Schema, recs ...arrow.RecordBatch) (meta, body [][]byte) {
	t.Helper()
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	n := int(binary.LittleEndian.Uint32(data[len(data)-10:]))
	blocks, _, err := ipccheck.Blocks(data[len(data)-10-n : len(data)-10])
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		m := int(binary.LittleEndian.Uint32(data[b.Offset+4:]))
		meta = append(meta, bytes.Clone(data[b.Offset+8:b.Offset+8+int64(m)]))
		body = append(body, bytes.Clone(data[b.Offset+int64(b.MetaLen):b.Offset+int64(b.MetaLen)+b.BodyLen]))
	}
	return meta, body
}

func checkBatches(t testing.TB) []arrow.RecordBatch {
	t.Helper()
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, checkSchema, strings.NewReader(checkRows))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Release)
	empty := rec.NewSlice(0, 0)
	t.Cleanup(empty.Release)
	tail := rec.NewSlice(1, 4) // offsets that do not start at 0
	t.Cleanup(tail.Release)
	return []arrow.RecordBatch{rec, empty, tail}
}

// decodeChecked decodes a message as a client would and validates it, as a
// reader does (a panic of arrow-go's is an error).
func decodeChecked(schema *arrow.Schema, meta, body []byte) (rec arrow.RecordBatch, err error) {
	err = Protect("message", ErrDamaged, func() error {
		if rec, err = decodeStored(schema, StoredMessage{Meta: meta, Body: body}); err != nil {
			return err
		}
		return ValidateRecord(rec)
	})
	if err != nil && rec != nil {
		rec.Release()
		rec = nil
	}
	return rec, err
}

// TestCheckStoredPasses: valid batches of every type the check knows pass,
// with their rows and a bound of their logical size.
func TestCheckStoredPasses(t *testing.T) {
	recs := checkBatches(t)
	meta, body := checkMessages(t, checkSchema, recs...)
	for i, rec := range recs {
		rows, size, ok := checkStored(checkSchema, meta[i], body[i])
		if !ok {
			t.Fatalf("batch %d (%d rows) does not pass", i, rec.NumRows())
		}
		if rows != rec.NumRows() {
			t.Errorf("batch %d: %d rows, want %d", i, rows, rec.NumRows())
		}
		got, err := decodeChecked(checkSchema, meta[i], body[i])
		if err != nil {
			t.Fatal(err)
		}
		if lb := LogicalBytes(got); size < lb || size > int64(len(body[i])) {
			t.Errorf("batch %d: size bound %d, want between its logical size %d and its body's %d", i, size, lb, len(body[i]))
		}
		got.Release()
	}
	// A type the check does not know: decoded instead.
	dict := arrow.NewSchema([]arrow.Field{{Name: "m", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int32)}}, nil)
	mrec, _, err := array.RecordFromJSON(memory.DefaultAllocator, dict, strings.NewReader(`[{"m": [{"key": "a", "value": 1}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	defer mrec.Release()
	mm, mb := checkMessages(t, dict, mrec)
	if _, _, ok := checkStored(dict, mm[0], mb[0]); ok {
		t.Error("a map column passes a check that does not know maps")
	}
}

// TestCheckStoredRefuses: each kind of damage that decoding and validation
// refuse, the check refuses too.
func TestCheckStoredRefuses(t *testing.T) {
	recs := checkBatches(t)
	meta, body := checkMessages(t, checkSchema, recs[0])
	l, err := ipccheck.BatchLayout(meta[0])
	if err != nil {
		t.Fatal(err)
	}
	// Buffers in IPC order: per field, validity then values (b, i8, u16,
	// i64, f32, d32, ts: 2 each = 14); s: validity 14, offsets 15, data 16.
	bufAt := func(i int) (int64, int64) { return l.Buffer(i) }
	setU32 := func(b []byte, at int64, v uint32) { binary.LittleEndian.PutUint32(b[at:], v) }
	cases := []struct {
		name   string
		damage func(meta, body []byte)
		// lenient: arrow-go's decoding accepts the damage (it slices a
		// buffer past the body within the memory's spare capacity).
		lenient bool
	}{
		{"null count", func(meta, body []byte) {
			// The validity bit of row 1 of i8 set: one null fewer than counted.
			off, _ := bufAt(2)
			body[off] |= 2
		}, false},
		{"offsets decrease", func(meta, body []byte) {
			off, _ := bufAt(15)
			setU32(body, off+4, 100)
		}, false},
		{"offset beyond the values", func(meta, body []byte) {
			off, _ := bufAt(15)
			setU32(body, off+16, 1000)
		}, false},
		{"negative first offset", func(meta, body []byte) {
			off, _ := bufAt(15)
			setU32(body, off, 0xFFFFFFFF)
		}, false},
		{"invalid UTF-8", func(meta, body []byte) {
			off, _ := bufAt(16)
			body[off] = 0xFF
		}, false},
		{"a character cut between two strings", func(meta, body []byte) {
			// s's values are "héllo", "", "日本": the offset between "" and
			// "日本" moved into "é" makes "hé" end mid-character and the
			// next value start mid-character, though the whole range is
			// still UTF-8.
			off, _ := bufAt(15)
			setU32(body, off+4, 2)
			setU32(body, off+8, 2)
		}, false},
		{"list offset beyond its child", func(meta, body []byte) {
			// l: validity 23, offsets 24, child validity 25, values 26.
			off, _ := bufAt(24)
			setU32(body, off+16, 99)
		}, false},
		{"buffer outside the body", func(meta, body []byte) {
			at := bytes.Index(meta, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, uint64(mustOff(bufAt(16)))), uint64(mustLen(bufAt(16)))))
			if at < 0 {
				panic("buffer not found in the metadata")
			}
			binary.LittleEndian.PutUint64(meta[at:], uint64(len(body)))
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, b := bytes.Clone(meta[0]), bytes.Clone(body[0])
			c.damage(m, b)
			if _, _, ok := checkStored(checkSchema, m, b); ok {
				t.Error("the damaged batch passes the check")
			}
			if rec, err := decodeChecked(checkSchema, m, b); err == nil {
				rec.Release()
				if !c.lenient {
					t.Error("the damage is one that decoding and validation accept: the case tests nothing")
				}
			}
		})
	}
}

func mustOff(off, _ int64) int64 { return off }
func mustLen(_, n int64) int64   { return n }

// readable reports whether the reader of Arrow IPC files would check a
// message: its metadata verified, an uncompressed record batch, the body as
// long as the metadata says.
func readable(meta, body []byte) bool {
	if ipccheck.Message(meta) != nil {
		return false
	}
	info, err := ipccheck.MessageInfo(meta)
	return err == nil && info.RecordBatch && !info.Compressed && info.BodyLen == int64(len(body))
}

// FuzzCheckStored: whatever the metadata and body, a batch that passes the
// check decodes, as a client decodes it, to a batch that ValidateRecord
// accepts, with the rows the check counted.
func FuzzCheckStored(f *testing.F) {
	recs := checkBatches(f)
	meta, body := checkMessages(f, checkSchema, recs...)
	for i := range meta {
		f.Add(meta[i], body[i])
	}
	f.Fuzz(func(t *testing.T, meta, body []byte) {
		if !readable(meta, body) {
			return // refused before the check, as the reader does
		}
		rows, _, ok := checkStored(checkSchema, meta, body)
		if !ok {
			return
		}
		rec, err := decodeChecked(checkSchema, meta, body)
		if err != nil {
			t.Fatalf("a batch that passes the check does not decode and validate: %v", err)
		}
		defer rec.Release()
		if rec.NumRows() != rows {
			t.Fatalf("%d rows decoded, the check counted %d", rec.NumRows(), rows)
		}
	})
}

// TestCheckStoredMutations damages the stored messages of checkBatches at
// seeded places, flipping bits or writing boundary values over a few bytes of
// the metadata or the body: every damaged batch that passes the check must
// decode and validate, with the rows it counted.
func TestCheckStoredMutations(t *testing.T) {
	meta, body := checkMessages(t, checkSchema, checkBatches(t)...)
	rng := rand.New(rand.NewPCG(1, 2))
	bounds := []uint64{0, 1, 2, 3, 4, 7, 8, 12, 16, 1<<31 - 1, 1 << 31, 1<<32 - 1, 1<<63 - 1, 1 << 63, 1<<64 - 1}
	passed := 0
	for range 20000 {
		k := rng.IntN(len(meta))
		m, b := bytes.Clone(meta[k]), bytes.Clone(body[k])
		for range 1 + rng.IntN(3) {
			dst := m
			if rng.IntN(2) == 1 && len(b) > 8 {
				dst = b
			}
			at := rng.IntN(len(dst) - 8)
			if rng.IntN(2) == 0 {
				dst[at] ^= byte(1 << rng.IntN(8))
				continue
			}
			v := bounds[rng.IntN(len(bounds))]
			for q := range []int{1, 2, 4, 8}[rng.IntN(4)] {
				dst[at+q] = byte(v >> (8 * q))
			}
		}
		if !readable(m, b) {
			continue
		}
		rows, _, ok := checkStored(checkSchema, m, b)
		if !ok {
			continue
		}
		passed++
		rec, err := decodeChecked(checkSchema, m, b)
		if err != nil {
			t.Fatalf("a damaged batch passes the check but does not decode and validate: %v", err)
		}
		if rec.NumRows() != rows {
			t.Fatalf("%d rows decoded, the check counted %d", rec.NumRows(), rows)
		}
		rec.Release()
	}
	t.Logf("%d of 20000 damaged batches passed the check (and decoded and validated)", passed)
}

// TestLazyDecode: under WithLazyDecode a reader of an Arrow IPC file checks
// each batch from its bytes and decodes it only when asked; the batch it then
// decodes is the one the eager reader gives.
func TestLazyDecode(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	key := "datasets/lazy/part-00000.arrow"
	if err := st.WriteAll(ctx, key, arrowBytes(t, 6, 2, 40)); err != nil {
		t.Fatal(err)
	}
	eager, err := OpenFile(ctx, st, key, FormatArrow, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer eager.Release()
	lazy, err := OpenFile(WithLazyDecode(ctx), st, key, FormatArrow, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer lazy.Release()
	ar := lazy.(*checkedReader).RecordReader.(*arrowReader)
	for i := 0; eager.Next(); i++ {
		if !lazy.Next() {
			t.Fatalf("the lazy reader ends at batch %d: %v", i, lazy.Err())
		}
		m, ok := Stored(lazy)
		rows, _, checked := m.Checked()
		if !ok || !checked || rows != eager.RecordBatch().NumRows() {
			t.Fatalf("batch %d: stored %v, checked %v, %d rows", i, ok, checked, rows)
		}
		if ar.cur != nil {
			t.Fatalf("batch %d was decoded before it was asked for", i)
		}
		if i == 0 && ar.rd != nil {
			t.Fatal("the decoder was made before any batch was decoded")
		}
		if i%2 == 0 {
			continue // never decoded
		}
		if !array.RecordEqual(lazy.RecordBatch(), eager.RecordBatch()) {
			t.Fatalf("batch %d decodes to another batch", i)
		}
	}
	if lazy.Next() || lazy.Err() != nil || eager.Err() != nil {
		t.Fatalf("the readers end apart: %v, %v", lazy.Err(), eager.Err())
	}
}
