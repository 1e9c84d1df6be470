// Package ipccheck verifies the flatbuffers of Arrow IPC metadata (a file's
// footer, a message's header) before arrow-go decodes them. arrow-go trusts
// the lengths and offsets a flatbuffer claims: a vector that claims billions
// of children makes it allocate them (an out-of-memory, which no recover
// catches), and a child that points back at its parent makes it recurse
// without end. Verify checks that every table, vector and string the decoder
// will visit lies inside the buffer, and bounds the nesting and the number of
// tables, so that what arrow-go allocates is proportional to the bytes it was
// given.
package ipccheck

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error of this package.
var ErrMalformed = errors.New("malformed Arrow IPC metadata")

const (
	// maxDepth bounds the nesting of a schema's fields.
	maxDepth = 64
	// maxTables bounds the tables one flatbuffer may hold.
	maxTables = 1 << 16
)

// The Arrow type and message header unions' members that hold more than
// scalars (Schema.fbs, Message.fbs).
const (
	typeTimestamp = 10
	typeUnion     = 14

	headerSchema          = 1
	headerDictionaryBatch = 2
	headerRecordBatch     = 3
)

type verifier struct {
	buf    []byte
	tables int
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrMalformed)
}

func (v *verifier) u32(pos int64) (uint32, error) {
	if pos < 0 || pos+4 > int64(len(v.buf)) {
		return 0, malformed("offset %d is outside the %d bytes of metadata", pos, len(v.buf))
	}
	return binary.LittleEndian.Uint32(v.buf[pos:]), nil
}

// table is a verified table: its position and vtable.
type table struct {
	pos, vt int64
	vtSize  int64
	size    int64
}

// table verifies the table at pos.
func (v *verifier) table(pos int64) (table, error) {
	v.tables++
	if v.tables > maxTables {
		return table{}, malformed("more than %d tables", maxTables)
	}
	so, err := v.u32(pos)
	if err != nil {
		return table{}, err
	}
	vt := pos - int64(int32(so))
	if vt < 0 || vt+4 > int64(len(v.buf)) {
		return table{}, malformed("vtable at %d is outside the metadata", vt)
	}
	t := table{pos: pos, vt: vt,
		vtSize: int64(binary.LittleEndian.Uint16(v.buf[vt:])),
		size:   int64(binary.LittleEndian.Uint16(v.buf[vt+2:]))}
	if t.vtSize < 4 || t.vtSize%2 != 0 || vt+t.vtSize > int64(len(v.buf)) || t.size < 4 || pos+t.size > int64(len(v.buf)) {
		return table{}, malformed("table at %d has a vtable or size outside the metadata", pos)
	}
	return t, nil
}

// field returns the position of field slot in t, or 0 if absent; the field's
// inline size must fit in the table.
func (v *verifier) field(t table, slot int, size int64) (int64, error) {
	at := int64(4 + 2*slot)
	if at+2 > t.vtSize {
		return 0, nil
	}
	off := int64(binary.LittleEndian.Uint16(v.buf[t.vt+at:]))
	if off == 0 {
		return 0, nil
	}
	if off+size > t.size {
		return 0, malformed("field %d of the table at %d lies outside it", slot, t.pos)
	}
	return t.pos + off, nil
}

// ref follows the offset of a reference field of t (0 if absent).
func (v *verifier) ref(t table, slot int) (int64, error) {
	at, err := v.field(t, slot, 4)
	if err != nil || at == 0 {
		return 0, err
	}
	off, err := v.u32(at)
	if err != nil {
		return 0, err
	}
	return at + int64(off), nil
}

// vector verifies the vector a field of t refers to, of elements of elem
// bytes, and returns its elements' start and count (0, 0 if absent).
func (v *verifier) vector(t table, slot int, elem int64) (int64, int64, error) {
	at, err := v.ref(t, slot)
	if err != nil || at == 0 {
		return 0, 0, err
	}
	n, err := v.u32(at)
	if err != nil {
		return 0, 0, err
	}
	if at+4+int64(n)*elem > int64(len(v.buf)) {
		return 0, 0, malformed("a vector at %d claims %d elements, more than the metadata holds", at, n)
	}
	return at + 4, int64(n), nil
}

// tables verifies a vector of tables and each table with check.
func (v *verifier) tableVector(t table, slot int, check func(table) error) error {
	start, n, err := v.vector(t, slot, 4)
	if err != nil {
		return err
	}
	for i := int64(0); i < n; i++ {
		at := start + 4*i
		off, _ := v.u32(at)
		tt, err := v.table(at + int64(off))
		if err != nil {
			return err
		}
		if err := check(tt); err != nil {
			return err
		}
	}
	return nil
}

// subtable verifies the table a field of t refers to (nil check: just the table).
func (v *verifier) subtable(t table, slot int, check func(table) error) error {
	at, err := v.ref(t, slot)
	if err != nil || at == 0 {
		return err
	}
	tt, err := v.table(at)
	if err != nil {
		return err
	}
	if check != nil {
		return check(tt)
	}
	return nil
}

func (v *verifier) keyValues(t table, slot int) error {
	return v.tableVector(t, slot, func(kv table) error {
		if _, _, err := v.vector(kv, 0, 1); err != nil {
			return err
		}
		_, _, err := v.vector(kv, 1, 1)
		return err
	})
}

func (v *verifier) schema(s table) error {
	if err := v.tableVector(s, 1, func(f table) error { return v.fieldTable(f, 1) }); err != nil {
		return err
	}
	if err := v.keyValues(s, 2); err != nil {
		return err
	}
	_, _, err := v.vector(s, 3, 8)
	return err
}

func (v *verifier) fieldTable(f table, depth int) error {
	if depth > maxDepth {
		return malformed("fields nested more than %d deep", maxDepth)
	}
	if _, _, err := v.vector(f, 0, 1); err != nil { // name
		return err
	}
	var typ byte
	if at, err := v.field(f, 2, 1); err != nil {
		return err
	} else if at != 0 {
		typ = v.buf[at]
	}
	err := v.subtable(f, 3, func(tt table) error {
		switch typ {
		case typeTimestamp:
			_, _, err := v.vector(tt, 1, 1) // timezone
			return err
		case typeUnion:
			_, _, err := v.vector(tt, 1, 4) // typeIds
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := v.subtable(f, 4, func(d table) error { return v.subtable(d, 1, nil) }); err != nil { // dictionary, its index type
		return err
	}
	if err := v.tableVector(f, 5, func(c table) error { return v.fieldTable(c, depth+1) }); err != nil {
		return err
	}
	return v.keyValues(f, 6)
}

func (v *verifier) recordBatch(rb table) error {
	if _, _, err := v.vector(rb, 1, 16); err != nil { // nodes
		return err
	}
	if _, _, err := v.vector(rb, 2, 16); err != nil { // buffers
		return err
	}
	if err := v.subtable(rb, 3, nil); err != nil { // compression
		return err
	}
	_, _, err := v.vector(rb, 4, 8) // variadicBufferCounts
	return err
}

func (v *verifier) root() (table, error) {
	off, err := v.u32(0)
	if err != nil {
		return table{}, err
	}
	return v.table(int64(off))
}

// Footer verifies the flatbuffer of an Arrow IPC file's footer: its schema
// and its blocks.
func Footer(buf []byte) error {
	v := &verifier{buf: buf}
	ft, err := v.root()
	if err != nil {
		return err
	}
	if err := v.subtable(ft, 1, v.schema); err != nil {
		return err
	}
	if _, _, err := v.vector(ft, 2, 24); err != nil {
		return err
	}
	if _, _, err := v.vector(ft, 3, 24); err != nil {
		return err
	}
	return v.keyValues(ft, 4)
}

// Message verifies the flatbuffer of an Arrow IPC message's metadata: a
// schema, a record batch or a dictionary batch.
func Message(buf []byte) error {
	v := &verifier{buf: buf}
	m, err := v.root()
	if err != nil {
		return err
	}
	var kind byte
	if at, err := v.field(m, 1, 1); err != nil {
		return err
	} else if at != 0 {
		kind = v.buf[at]
	}
	if _, err := v.field(m, 0, 2); err != nil { // version
		return err
	}
	if _, err := v.field(m, 3, 8); err != nil { // bodyLength
		return err
	}
	err = v.subtable(m, 2, func(h table) error {
		switch kind {
		case headerSchema:
			return v.schema(h)
		case headerRecordBatch:
			return v.recordBatch(h)
		case headerDictionaryBatch:
			return v.subtable(h, 1, v.recordBatch)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return v.keyValues(m, 4)
}

// Block is one entry of an Arrow IPC file's footer: where a message lies in
// the file.
type Block struct {
	// Offset is where the message starts: its metadata's length prefix.
	Offset int64
	// MetaLen is the length of the prefix and the metadata, padding included.
	MetaLen int32
	// BodyLen is the length of the body that follows the metadata.
	BodyLen int64
}

// Blocks returns the record batch blocks and the number of dictionary
// blocks of a footer that Footer has verified.
func Blocks(footer []byte) ([]Block, int, error) {
	v := &verifier{buf: footer}
	ft, err := v.root()
	if err != nil {
		return nil, 0, err
	}
	_, dicts, err := v.vector(ft, 2, 24)
	if err != nil {
		return nil, 0, err
	}
	start, n, err := v.vector(ft, 3, 24)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Block, n)
	for i := range out {
		at := start + 24*int64(i)
		out[i] = Block{
			Offset:  int64(binary.LittleEndian.Uint64(footer[at:])),
			MetaLen: int32(binary.LittleEndian.Uint32(footer[at+8:])),
			BodyLen: int64(binary.LittleEndian.Uint64(footer[at+16:])),
		}
	}
	return out, int(dicts), nil
}

// Info is what a message's metadata says about it.
type Info struct {
	// RecordBatch is true for a record batch message.
	RecordBatch bool
	// BodyLen is the length of the body the metadata declares.
	BodyLen int64
	// Compressed is true when the record batch's body is compressed.
	Compressed bool
}

// MessageInfo reads the kind, body length and compression of a message whose
// metadata Message has verified.
func MessageInfo(buf []byte) (Info, error) {
	v := &verifier{buf: buf}
	m, err := v.root()
	if err != nil {
		return Info{}, err
	}
	var info Info
	if at, err := v.field(m, 1, 1); err != nil {
		return Info{}, err
	} else if at != 0 {
		info.RecordBatch = buf[at] == headerRecordBatch
	}
	if at, err := v.field(m, 3, 8); err != nil {
		return Info{}, err
	} else if at != 0 {
		info.BodyLen = int64(binary.LittleEndian.Uint64(buf[at:]))
	}
	if info.RecordBatch {
		err := v.subtable(m, 2, func(rb table) error {
			at, err := v.ref(rb, 3)
			info.Compressed = at != 0
			return err
		})
		if err != nil {
			return Info{}, err
		}
	}
	return info, nil
}

// Layout is what a record batch message's metadata says of its arrays: the
// batch's length, a field node (length and null count) for every array,
// depth first, and the place in the body of every buffer, in the order of
// the Arrow IPC format. It reads them from the metadata on each call.
type Layout struct {
	// Version is the message's metadata version (4 is Arrow's V5).
	Version int16
	// Length is the batch's number of rows.
	Length int64
	// Nodes and Buffers are the numbers of field nodes and buffers.
	Nodes, Buffers int
	// Variadic is the number of variadic buffer counts (for view types).
	Variadic int
	buf      []byte
	nodes    int64
	buffers  int64
}

// Node returns the length and null count of field node i.
func (l Layout) Node(i int) (length, nulls int64) {
	at := l.nodes + 16*int64(i)
	return int64(binary.LittleEndian.Uint64(l.buf[at:])), int64(binary.LittleEndian.Uint64(l.buf[at+8:]))
}

// Buffer returns the offset in the body and the length of buffer i.
func (l Layout) Buffer(i int) (offset, length int64) {
	at := l.buffers + 16*int64(i)
	return int64(binary.LittleEndian.Uint64(l.buf[at:])), int64(binary.LittleEndian.Uint64(l.buf[at+8:]))
}

// BatchLayout reads the layout of a record batch message whose metadata
// Message has verified.
func BatchLayout(buf []byte) (Layout, error) {
	v := &verifier{buf: buf}
	m, err := v.root()
	if err != nil {
		return Layout{}, err
	}
	if at, err := v.field(m, 1, 1); err != nil {
		return Layout{}, err
	} else if at == 0 || buf[at] != headerRecordBatch {
		return Layout{}, malformed("not a record batch message")
	}
	l := Layout{buf: buf}
	if at, err := v.field(m, 0, 2); err != nil {
		return Layout{}, err
	} else if at != 0 {
		l.Version = int16(binary.LittleEndian.Uint16(buf[at:]))
	}
	found := false
	err = v.subtable(m, 2, func(rb table) error {
		found = true
		at, err := v.field(rb, 0, 8)
		if err != nil {
			return err
		}
		if at != 0 {
			l.Length = int64(binary.LittleEndian.Uint64(buf[at:]))
		}
		var n int64
		if l.nodes, n, err = v.vector(rb, 1, 16); err != nil {
			return err
		}
		l.Nodes = int(n)
		if l.buffers, n, err = v.vector(rb, 2, 16); err != nil {
			return err
		}
		l.Buffers = int(n)
		_, n, err = v.vector(rb, 4, 8)
		l.Variadic = int(n)
		return err
	})
	if err == nil && !found {
		err = malformed("a record batch message without its header")
	}
	return l, err
}
