package dataset

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/internal/ipccheck"
)

// StoredMessage is a record batch message as an Arrow IPC file stores it: the
// metadata flatbuffer (without its length prefix) and the body. A stream whose
// schema equals the file's can send it as it is, without decoding and encoding
// the batch again.
type StoredMessage struct {
	Meta, Body []byte
	// Compressed is true when the body's buffers are compressed (the
	// metadata names the codec).
	Compressed bool
	// body holds Body's memory (lent by a BlockPool, or the heap's).
	body *memory.Buffer
	// checked is true when the message was checked from its bytes
	// (checkStored) rather than decoded; rows and size are then its rows
	// and an upper bound of its LogicalBytes.
	checked    bool
	rows, size int64
}

// Checked reports whether the message was checked from its stored bytes
// rather than decoded (see WithLazyDecode), and then returns its batch's
// rows and an upper bound of the batch's LogicalBytes: the lengths of the
// buffers its arrays use.
func (m StoredMessage) Checked() (rows, size int64, ok bool) {
	return m.rows, m.size, m.checked
}

// Retain keeps the message's bytes valid after its reader moves on, until
// Release: under WithBlockPool, they are otherwise reused.
func (m StoredMessage) Retain() {
	if m.body != nil {
		m.body.Retain()
	}
}

// Release ends a Retain.
func (m StoredMessage) Release() {
	if m.body != nil {
		m.body.Release()
	}
}

type lazyKey struct{}

// WithLazyDecode returns a context under which the readers of OpenFile and
// Concat check each uncompressed record batch of an Arrow IPC file from its
// stored bytes (StoredMessage.Checked) and decode it only when RecordBatch
// is called: a reader that sends the stored messages of such batches
// (Stored) never decodes them. A batch whose types the check does not know,
// or that it does not pass, is decoded and validated at once, as without.
func WithLazyDecode(ctx context.Context) context.Context {
	return context.WithValue(ctx, lazyKey{}, true)
}

func lazyFrom(ctx context.Context) bool {
	lazy, _ := ctx.Value(lazyKey{}).(bool)
	return lazy
}

// storedReader is a reader that can give its current batch's stored message.
type storedReader interface {
	stored() (StoredMessage, bool)
}

// Stored returns the stored message of the current batch of r, a reader
// from OpenFile or Concat (or one that wraps such a reader and returns it from
// an Unwrap method), when that batch was read from an Arrow IPC file as one
// message, already validated as the batch r.RecordBatch returns, or checked
// from its bytes (StoredMessage.Checked) under WithLazyDecode. It is valid
// until r moves on; the bytes must not be modified.
func Stored(r array.RecordReader) (StoredMessage, bool) {
	for r != nil {
		if s, ok := r.(storedReader); ok {
			return s.stored()
		}
		u, ok := r.(interface{ Unwrap() array.RecordReader })
		if !ok {
			return StoredMessage{}, false
		}
		r = u.Unwrap()
	}
	return StoredMessage{}, false
}

// maxBlockBytes bounds a block read whole into memory; a larger one is left
// to arrow-go's reader (which reads its body whole too).
const maxBlockBytes = 64 << 20

// continuation starts every message's length prefix since Arrow 0.15.
const continuation = 0xFFFFFFFF

// arrowReader reads an Arrow IPC file's record batches with one read per
// batch: the block's metadata and body together, the batch decoded from them
// without copying (arrow-go's file reader reads the two separately into fresh
// buffers). A block that does not look like a plain record batch message
// within the file is read by arrow-go's reader instead, as before.
type arrowReader struct {
	refs    int64
	file    *recordingFile
	fr      *ipc.FileReader
	blocks  []ipccheck.Block
	dataEnd int64 // where the footer starts: every block ends before it
	mem     memory.Allocator
	msgs    *pushedMessages // msgs and rd are nil until decoder makes them
	rd      *ipc.Reader
	pool    *BlockPool // nil: blocks are read into new memory
	lazy    bool       // check batches from their bytes, decode on demand
	i       int
	cur     arrow.RecordBatch
	msg     StoredMessage
	raw     bool // cur was decoded, or is to be decoded, from msg
	pending bool // msg is checked, not yet decoded into cur
	err     error
}

// newArrowReader reads the file fr reads, whose footer (verified) is footer.
// It returns nil when the file needs arrow-go's reader throughout
// (dictionaries, a byte order other than this machine's).
func newArrowReader(file *recordingFile, fr *ipc.FileReader, footer []byte, mem memory.Allocator, pool *BlockPool, lazy bool) (*arrowReader, error) {
	schema := fr.Schema()
	if !schema.IsNativeEndian() || HasDictionary(schema) {
		return nil, nil
	}
	blocks, dicts, err := ipccheck.Blocks(footer)
	if err != nil {
		return nil, err
	}
	if dicts > 0 || len(blocks) != fr.NumRecords() {
		return nil, nil
	}
	r := &arrowReader{refs: 1, file: file, fr: fr, blocks: blocks, dataEnd: file.Size() - 10 - int64(len(footer)), mem: mem, pool: pool, lazy: lazy}
	if !lazy { // else made when a batch is first decoded, if ever
		if err := r.decoder(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// decoder makes the IPC reader that decodes the file's batches, once.
func (r *arrowReader) decoder() error {
	if r.rd != nil {
		return nil
	}
	schema := r.fr.Schema()
	msgs := &pushedMessages{schema: ipc.GetSchemaPayload(schema, r.mem)}
	rd, err := ipc.NewReaderFromMessageReader(msgs, ipc.WithSchema(schema), ipc.WithAllocator(r.mem))
	if err != nil {
		msgs.Release()
		return err
	}
	r.msgs, r.rd = msgs, rd
	return nil
}

// HasDictionary reports whether any field of schema, nested ones included, is
// dictionary-encoded.
func HasDictionary(schema *arrow.Schema) bool {
	var walk func(t arrow.DataType) bool
	walk = func(t arrow.DataType) bool {
		if t.ID() == arrow.DICTIONARY {
			return true
		}
		if n, ok := t.(arrow.NestedType); ok {
			for _, f := range n.Fields() {
				if walk(f.Type) {
					return true
				}
			}
		}
		return false
	}
	for _, f := range schema.Fields() {
		if walk(f.Type) {
			return true
		}
	}
	return false
}

func (r *arrowReader) Retain() { r.refs++ }

func (r *arrowReader) Release() {
	r.refs--
	if r.refs == 0 {
		r.drop()
		if r.rd != nil {
			r.rd.Release() // and r.msgs
		}
		r.fr.Close()
	}
}

func (r *arrowReader) drop() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.pending {
		r.msg.body.Release()
	}
	r.msg, r.raw, r.pending = StoredMessage{}, false, false
}

func (r *arrowReader) Schema() *arrow.Schema { return r.fr.Schema() }

func (r *arrowReader) Next() bool {
	r.drop()
	if r.err != nil || r.i >= len(r.blocks) {
		return false
	}
	b := r.blocks[r.i]
	r.i++
	rec, msg, err := r.readBlock(b)
	if err == nil && rec == nil && !msg.checked {
		// Not a plain message: arrow-go's reader, as before.
		rec, err = r.fr.RecordBatchAt(r.i - 1)
	}
	if err != nil {
		r.err = err
		return false
	}
	r.cur, r.msg, r.raw, r.pending = rec, msg, msg.Meta != nil, msg.checked
	return true
}

// readBlock reads block b whole and decodes its record batch; a nil batch
// and no error mean that b is not a plain message, for arrow-go's reader.
func (r *arrowReader) readBlock(b ipccheck.Block) (arrow.RecordBatch, StoredMessage, error) {
	size := int64(b.MetaLen) + b.BodyLen
	if b.Offset < 0 || b.MetaLen <= 8 || b.BodyLen < 0 || size > maxBlockBytes || b.Offset > r.dataEnd-size {
		return nil, StoredMessage{}, nil
	}
	var buf []byte
	var body *memory.Buffer
	mapped := false
	if r.pool != nil {
		// Under the pool's rule (nothing kept after release), the block may
		// be lent from a mapping of the file: no copy of its bytes.
		var release func()
		if buf, release, mapped = r.file.Map(b.Offset, size); mapped {
			body = memory.NewBufferWithAllocator(buf[b.MetaLen:size:size], &lent{release: release})
		}
	}
	switch {
	case mapped:
	case r.pool != nil:
		buf = r.pool.get(int(size))
		// The body's capacity ends with it: arrow-go's decoder slices a
		// buffer's bytes from it without checking the body's length, and a
		// pooled buffer's spare bytes held another block.
		pool, pooled := r.pool, buf
		body = memory.NewBufferWithAllocator(buf[b.MetaLen:size:size], &lent{release: func() { pool.put(pooled) }})
	default:
		buf = make([]byte, size)
		body = memory.NewBufferBytes(buf[b.MetaLen:])
	}
	// The message and the batch's arrays take their own references; the
	// memory goes back to the pool when the last is released.
	defer body.Release()
	if !mapped {
		got, err := r.file.ReadAt(buf, b.Offset)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, StoredMessage{}, err
		}
		// An Arrow IPC file is never changed in place: if it was, during
		// or before the read, the bytes may belong to neither version.
		if err := r.file.Unchanged(); err != nil {
			return nil, StoredMessage{}, err
		}
		if int64(got) < size {
			return nil, StoredMessage{}, fmt.Errorf("record batch %d: read %d of its %d bytes: the file is shorter than when it was opened", r.i-1, got, size)
		}
	}
	n := int64(int32(binary.LittleEndian.Uint32(buf[4:])))
	if binary.LittleEndian.Uint32(buf) != continuation || n <= 0 || n > int64(b.MetaLen)-8 {
		return nil, StoredMessage{}, nil
	}
	msg := StoredMessage{Meta: bytes.Clone(buf[8 : 8+n]), Body: body.Bytes(), body: body}
	if err := ipccheck.Message(msg.Meta); err != nil {
		return nil, StoredMessage{}, fmt.Errorf("record batch %d: %w", r.i-1, err)
	}
	info, err := ipccheck.MessageInfo(msg.Meta)
	if err != nil {
		return nil, StoredMessage{}, fmt.Errorf("record batch %d: %w", r.i-1, err)
	}
	if !info.RecordBatch || info.BodyLen != b.BodyLen {
		return nil, StoredMessage{}, nil
	}
	msg.Compressed = info.Compressed
	if r.lazy && !msg.Compressed {
		if msg.rows, msg.size, msg.checked = checkStored(r.fr.Schema(), msg.Meta, msg.Body); msg.checked {
			body.Retain() // until decoded or dropped
			return nil, msg, nil
		}
	}
	rec, err := r.decode(msg)
	if err != nil {
		return nil, StoredMessage{}, err
	}
	return rec, msg, nil
}

// decode decodes the record batch of msg, the current block's.
func (r *arrowReader) decode(msg StoredMessage) (arrow.RecordBatch, error) {
	if err := r.decoder(); err != nil {
		return nil, fmt.Errorf("record batch %d: %w", r.i-1, err)
	}
	r.msgs.push(ipc.NewMessage(memory.NewBufferBytes(msg.Meta), msg.body))
	if !r.rd.Next() {
		err := r.rd.Err()
		if err == nil {
			err = errors.New("no record batch decoded")
		}
		return nil, fmt.Errorf("record batch %d: %w", r.i-1, err)
	}
	rec := r.rd.RecordBatch()
	rec.Retain()
	return rec, nil
}

// RecordBatch returns the current batch, decoding it first if it was only
// checked; nil if that fails (Err says why).
func (r *arrowReader) RecordBatch() arrow.RecordBatch {
	if r.pending {
		rec, err := r.decode(r.msg)
		r.msg.body.Release() // the batch holds it now, or nothing does
		r.pending = false
		if err != nil {
			r.err = err
			r.msg, r.raw = StoredMessage{}, false
			return nil
		}
		r.cur = rec
	}
	return r.cur
}

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (r *arrowReader) Record() arrow.RecordBatch { return r.RecordBatch() }

func (r *arrowReader) Err() error { return r.err }

func (r *arrowReader) stored() (StoredMessage, bool) { return r.msg, r.raw }

// pushedMessages is the message source of an ipc.Reader that decodes one
// pushed message at a time: first the schema, then whatever push gave.
type pushedMessages struct {
	schema   ipc.Payload
	sent     bool
	released bool
	next     *ipc.Message
	last     *ipc.Message
}

func (p *pushedMessages) push(m *ipc.Message) {
	if p.next != nil {
		p.next.Release()
	}
	p.next = m
}

func (p *pushedMessages) Message() (*ipc.Message, error) {
	if p.last != nil {
		p.last.Release()
		p.last = nil
	}
	if !p.sent {
		p.sent = true
		meta := p.schema.Meta()
		defer meta.Release()
		p.last = ipc.NewMessage(meta, memory.NewBufferBytes(nil))
		return p.last, nil
	}
	if p.next == nil {
		return nil, io.EOF
	}
	p.last, p.next = p.next, nil
	return p.last, nil
}

func (p *pushedMessages) Retain() {}

// Release drops what p holds; the ipc.Reader releases it, and so may its
// owner when the reader could not be made.
func (p *pushedMessages) Release() {
	if p.released {
		return
	}
	p.released = true
	if p.last != nil {
		p.last.Release()
		p.last = nil
	}
	if p.next != nil {
		p.next.Release()
		p.next = nil
	}
	p.schema.Release()
}

var _ array.RecordReader = (*arrowReader)(nil)
