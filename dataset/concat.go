package dataset

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

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
			r.err = fmt.Errorf("dataset: %s has schema %s, unlike the stream's %s: %w", f.Key, r.cur.Schema(), r.schema, ErrInvalid)
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
