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
		if err := Footer(buf); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
}

func FuzzMessage(f *testing.F) {
	for _, m := range messagesOf(f) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		if err := Message(buf); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
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
