package dataset

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/store"
)

// File names one stored Arrow IPC or Parquet file.
type File struct {
	Key    string
	Format Format
}

// Concat reads files one after the other as one stream of the given schema,
// holding one file open at a time. A file whose schema differs is an error.
func Concat(ctx context.Context, st *store.Store, schema *arrow.Schema, files []File, mem memory.Allocator) array.RecordReader {
	return &concatReader{ctx: ctx, st: st, schema: schema, files: files, mem: mem, refs: 1}
}

type concatReader struct {
	ctx    context.Context
	st     *store.Store
	schema *arrow.Schema
	files  []File
	mem    memory.Allocator
	cur    array.RecordReader
	err    error
	refs   int
}

func (r *concatReader) Retain()               { r.refs++ }
func (r *concatReader) Schema() *arrow.Schema { return r.schema }

// Err is the error that ended the stream, or the current file's (decoding a
// batch on demand can fail).
func (r *concatReader) Err() error {
	if r.err == nil && r.cur != nil {
		return r.cur.Err()
	}
	return r.err
}

func (r *concatReader) Release() {
	r.refs--
	if r.refs == 0 && r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}

func (r *concatReader) Next() bool {
	for r.err == nil {
		if r.cur != nil {
			if r.cur.Next() {
				return true
			}
			r.err = r.cur.Err()
			r.cur.Release()
			r.cur = nil
			continue
		}
		if len(r.files) == 0 {
			return false
		}
		f := r.files[0]
		r.files = r.files[1:]
		r.cur, r.err = OpenFile(r.ctx, r.st, f.Key, f.Format, r.mem)
		if r.err == nil && !r.cur.Schema().Equal(r.schema) {
			r.err = fmt.Errorf("dataset: %s does not hold the schema of the files before it: %s: %w", f.Key, schemaDiff(r.cur.Schema(), r.schema), ErrDamaged)
		}
	}
	return false
}

func (r *concatReader) stored() (StoredMessage, bool) {
	if r.cur == nil || r.err != nil {
		return StoredMessage{}, false
	}
	return Stored(r.cur)
}

func (r *concatReader) RecordBatch() arrow.RecordBatch {
	if r.cur == nil {
		return nil
	}
	return r.cur.RecordBatch()
}

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (r *concatReader) Record() arrow.RecordBatch { return r.RecordBatch() }

// schemaDiff says briefly where a file's schema first differs from the
// stream's, quoting only short prefixes of names: the schemas themselves may
// be large.
func schemaDiff(got, want *arrow.Schema) string {
	for i := 0; i < min(got.NumFields(), want.NumFields()); i++ {
		g, w := got.Field(i), want.Field(i)
		if g.Name == w.Name && arrow.TypeEqual(g.Type, w.Type) && !g.Equal(w) {
			return fmt.Sprintf("column %d %s differs in nullability or field metadata", i, clip.Quote(g.Name))
		}
		if !g.Equal(w) {
			return fmt.Sprintf("column %d is %s %s, where the stream has %s %s",
				i, clip.Quote(g.Name), clip.String(g.Type.String(), clip.QuoteBytes), clip.Quote(w.Name), clip.String(w.Type.String(), clip.QuoteBytes))
		}
	}
	return fmt.Sprintf("it has %d columns, where the stream has %d", got.NumFields(), want.NumFields())
}
