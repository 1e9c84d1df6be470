package ipccheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var testMetadata = arrow.NewMetadata([]string{"k"}, []string{"v"})

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32), Nullable: true},
	{Name: "start", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
	{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "a", Type: arrow.BinaryTypes.String})},
}, &testMetadata)

// footerOf writes an Arrow IPC file of one empty batch and returns its footer.
func footerOf(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, testSchema)
	rec := b.NewRecordBatch()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	b.Release()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	n := int(binary.LittleEndian.Uint32(data[len(data)-10:]))
	return data[len(data)-10-n : len(data)-10]
}

// messagesOf returns the metadata of the schema and batch messages of a stream.
func messagesOf(t testing.TB) [][]byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(testSchema))
	b := array.NewRecordBuilder(memory.DefaultAllocator, testSchema)
	rec := b.NewRecordBatch()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	b.Release()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Each message: 0xFFFFFFFF, the metadata length, the metadata, the body.
	data := buf.Bytes()
	var out [][]byte
	for len(data) >= 8 {
		n := int(binary.LittleEndian.Uint32(data[4:]))
		if n == 0 {
			break
		}
		meta := data[8 : 8+n]
		out = append(out, bytes.Clone(meta))
		body := int(binary.LittleEndian.Uint64(bodyLength(meta)))
		data = data[8+n+body:]
	}
	return out
}

// lie replaces every occurrence of a vector length n found after a little
// endian uint32 equal to n with a huge one: a vector that claims billions of
// elements.
func lie(buf []byte, n uint32) []byte {
	out := bytes.Clone(buf)
	var pat [4]byte
	binary.LittleEndian.PutUint32(pat[:], n)
	if i := bytes.Index(out, pat[:]); i >= 0 {
		binary.LittleEndian.PutUint32(out[i:], 1<<30)
	}
	return out
}

func TestVerify(t *testing.T) {
	footer := footerOf(t)
	msgs := messagesOf(t)
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	cases := []struct {
		name  string
		check func([]byte) error
		buf   []byte
		ok    bool
	}{
		{"footer", Footer, footer, true},
		{"schema-message", Message, msgs[0], true},
		{"batch-message", Message, msgs[1], true},
		{"footer-3-fields-claims-2^30", Footer, lie(footer, 3), false},
		{"empty", Footer, nil, false},
		{"root-outside", Footer, []byte{0xff, 0xff, 0xff, 0x7f}, false},
		{"truncated-footer", Footer, footer[:len(footer)/2], false},
		{"truncated-message", Message, msgs[0][:len(msgs[0])/3], false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.check(c.buf)
			if c.ok && err != nil {
				t.Fatalf("refused valid metadata: %v", err)
			}
			if !c.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			t.Log(err)
		})
	}
}

func FuzzFooter(f *testing.F) {
	f.Add(footerOf(f))
	f.Fuzz(func(t *testing.T, buf []byte) {
		err := Footer(buf)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
		if err == nil {
			if _, _, err := Blocks(buf); err != nil {
				t.Fatalf("Blocks of a verified footer: %v", err)
			}
		}
	})
}

func FuzzMessage(f *testing.F) {
	for _, m := range messagesOf(f) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		err := Message(buf)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
		if err == nil {
			info, err := MessageInfo(buf)
			if err != nil {
				t.Fatalf("MessageInfo of verified metadata: %v", err)
			}
			l, err := BatchLayout(buf)
			if err != nil {
				if info.RecordBatch && !errors.Is(err, ErrMalformed) {
					t.Fatal(err)
				}
				return
			}
			for i := range l.Nodes {
				l.Node(i) // within the metadata
			}
			for i := range l.Buffers {
				l.Buffer(i)
			}
		}
	})
}

// TestBatchLayout reads the layout of a record batch message written by
// arrow-go: its length, one node per array and the buffers of each.
func TestBatchLayout(t *testing.T) {
	msgs := messagesOf(t)
	if _, err := BatchLayout(msgs[0]); !errors.Is(err, ErrMalformed) {
		t.Errorf("the layout of a schema message: %v, want ErrMalformed", err)
	}
	l, err := BatchLayout(msgs[1])
	if err != nil {
		t.Fatal(err)
	}
	// testSchema's empty batch: a node for each of its five arrays (the
	// list, its values, the timestamps, the struct, its strings), and ten
	// buffers (a validity bitmap each, offsets for the list and the
	// strings, values for the floats, timestamps and strings).
	if l.Version != 4 || l.Length != 0 || l.Nodes != 5 || l.Buffers != 10 || l.Variadic != 0 {
		t.Fatalf("layout %+v", l)
	}
	for i := range l.Nodes {
		if n, nulls := l.Node(i); n != 0 || nulls != 0 {
			t.Errorf("node %d: length %d, %d nulls", i, n, nulls)
		}
	}
}

// bodyLength returns the 8 bytes of a message's bodyLength (zeros if absent).
func bodyLength(meta []byte) []byte {
	v := &verifier{buf: meta}
	m, err := v.root()
	if err != nil {
		return make([]byte, 8)
	}
	at, err := v.field(m, 3, 8)
	if err != nil || at == 0 {
		return make([]byte, 8)
	}
	return meta[at : at+8]
}

// TestBlocks reads the blocks of files written by arrow-go, plain and
// compressed, and checks each against the message found where it points.
func TestBlocks(t *testing.T) {
	for _, c := range []struct {
		name       string
		opts       []ipc.Option
		compressed bool
	}{
		{"plain", nil, false},
		{"zstd", []ipc.Option{ipc.WithZstd()}, true},
		{"lz4", []ipc.Option{ipc.WithLZ4()}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := ipc.NewFileWriter(&buf, append([]ipc.Option{ipc.WithSchema(testSchema)}, c.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			for rows := range 3 {
				b := array.NewRecordBuilder(memory.DefaultAllocator, testSchema)
				for range rows * 100 {
					lb := b.Field(0).(*array.ListBuilder)
					lb.Append(true)
					lb.ValueBuilder().(*array.Float32Builder).AppendValues([]float32{1, 2, 3}, nil)
					b.Field(1).(*array.TimestampBuilder).Append(7)
					sb := b.Field(2).(*array.StructBuilder)
					sb.Append(true)
					sb.FieldBuilder(0).(*array.StringBuilder).Append("x")
				}
				rec := b.NewRecordBatch()
				if err := w.Write(rec); err != nil {
					t.Fatal(err)
				}
				rec.Release()
				b.Release()
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			data := buf.Bytes()
			n := int(binary.LittleEndian.Uint32(data[len(data)-10:]))
			footer := data[len(data)-10-n : len(data)-10]
			if err := Footer(footer); err != nil {
				t.Fatal(err)
			}
			blocks, dicts, err := Blocks(footer)
			if err != nil || len(blocks) != 3 || dicts != 0 {
				t.Fatalf("Blocks = %d blocks, %d dictionaries, %v; want 3, 0", len(blocks), dicts, err)
			}
			for i, b := range blocks {
				if binary.LittleEndian.Uint32(data[b.Offset:]) != 0xFFFFFFFF {
					t.Fatalf("block %d at %d does not start with the continuation marker", i, b.Offset)
				}
				m := int64(binary.LittleEndian.Uint32(data[b.Offset+4:]))
				meta := data[b.Offset+8 : b.Offset+8+m]
				if err := Message(meta); err != nil {
					t.Fatalf("block %d: %v", i, err)
				}
				info, err := MessageInfo(meta)
				if err != nil {
					t.Fatal(err)
				}
				want := Info{RecordBatch: true, BodyLen: b.BodyLen, Compressed: c.compressed}
				if info != want {
					t.Fatalf("block %d: MessageInfo = %+v, want %+v", i, info, want)
				}
				if end := b.Offset + int64(b.MetaLen) + b.BodyLen; end > int64(len(data)-10-n) {
					t.Fatalf("block %d ends at %d, inside the footer", i, end)
				}
			}
			schemaInfo, err := MessageInfo(messagesOf(t)[0])
			if err != nil || schemaInfo.RecordBatch {
				t.Fatalf("MessageInfo of a schema message = %+v, %v; want no record batch", schemaInfo, err)
			}
		})
	}
}
