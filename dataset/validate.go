package dataset

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flightbatch/flightbatch/internal/clip"
)

// ErrDamaged is wrapped by errors about stored bytes that are not what they
// claim to be: a shard or part whose file is damaged or not Arrow or Parquet.
var ErrDamaged = errors.New("damaged")

// ValidateRecord checks a record batch decoded from bytes that could be
// anything (a client's upload, a stored file): every column has the schema's
// type and the batch's length, and its buffers, offsets and children are
// consistent (array.ValidateRecordFull), so that reading any value stays in
// bounds. Its error says which column is wrong.
func ValidateRecord(rec arrow.RecordBatch) error {
	schema := rec.Schema()
	if int(rec.NumCols()) != schema.NumFields() {
		return fmt.Errorf("%d columns for a schema of %d fields", rec.NumCols(), schema.NumFields())
	}
	if rec.NumRows() < 0 {
		return fmt.Errorf("%d rows", rec.NumRows())
	}
	for i, col := range rec.Columns() {
		f := schema.Field(i)
		if !arrow.TypeEqual(col.DataType(), f.Type) {
			return fmt.Errorf("column %d (%s) is %s, but the schema says %s", i, clip.Quote(f.Name), col.DataType(), f.Type)
		}
		if int64(col.Len()) != rec.NumRows() {
			return fmt.Errorf("column %d (%s) has %d values for %d rows", i, clip.Quote(f.Name), col.Len(), rec.NumRows())
		}
	}
	return array.ValidateRecordFull(rec)
}

// Protect runs f, turning a panic inside it into an error wrapping sentinel
// and naming what was read: arrow-go's readers can panic on damaged bytes
// that their checks miss, and one damaged file must fail only what reads it.
func Protect(what string, sentinel error, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: unreadable (the reader failed: %s): %w", what, clip.String(fmt.Sprint(r), 200), sentinel)
		}
	}()
	return f()
}

// checkedReader hands on the batches of a reader of stored bytes only once
// they are validated; a batch that fails validation, or a panic in the
// reader, ends the stream with an error wrapping ErrDamaged that names the
// file. A batch checked from its stored bytes (StoredMessage.Checked) is
// decoded, and validated once more, only when RecordBatch asks for it.
type checkedReader struct {
	array.RecordReader
	key  string
	file *recordingFile
	err  error
	lazy bool         // the current batch is checked, not yet decoded
	refs atomic.Int64 // the file is closed when the last is released
}

func (r *checkedReader) Retain() {
	r.refs.Add(1)
	r.RecordReader.Retain()
}

func (r *checkedReader) Release() {
	r.RecordReader.Release()
	if r.refs.Add(-1) == 0 {
		_ = r.file.Close()
	}
}

func (r *checkedReader) Next() bool {
	r.lazy = false
	if r.err != nil {
		return false
	}
	var ok bool
	r.err = Protect("dataset: "+r.key, ErrDamaged, func() error {
		ok = r.RecordReader.Next()
		if !ok {
			return nil
		}
		if s, isStored := r.RecordReader.(storedReader); isStored {
			if m, raw := s.stored(); raw && m.checked {
				r.lazy = true
				return nil
			}
		}
		return r.validate(r.RecordReader.RecordBatch())
	})
	if r.err != nil {
		r.err = r.file.ioError(r.key, r.err)
	}
	return ok && r.err == nil
}

// validate checks a batch the reader decoded.
func (r *checkedReader) validate(rec arrow.RecordBatch) error {
	if rec == nil {
		return fmt.Errorf("dataset: %s is damaged: %v: %w", r.key, r.RecordReader.Err(), ErrDamaged)
	}
	if err := ValidateRecord(rec); err != nil {
		return fmt.Errorf("dataset: %s is damaged: a record batch is malformed: %v: %w", r.key, err, ErrDamaged)
	}
	return nil
}

func (r *checkedReader) stored() (StoredMessage, bool) {
	if s, ok := r.RecordReader.(storedReader); ok && r.err == nil {
		return s.stored()
	}
	return StoredMessage{}, false
}

// RecordBatch returns the current batch; nil if decoding a checked batch
// fails (Err says why).
func (r *checkedReader) RecordBatch() arrow.RecordBatch {
	if r.err != nil {
		return nil
	}
	if r.lazy {
		r.lazy = false
		var rec arrow.RecordBatch
		r.err = Protect("dataset: "+r.key, ErrDamaged, func() error {
			rec = r.RecordReader.RecordBatch()
			return r.validate(rec)
		})
		if r.err != nil {
			r.err = r.file.ioError(r.key, r.err)
			return nil
		}
		return rec
	}
	return r.RecordReader.RecordBatch()
}

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (r *checkedReader) Record() arrow.RecordBatch { return r.RecordBatch() }

func (r *checkedReader) Err() error {
	if r.err != nil {
		return r.err
	}
	err := r.RecordReader.Err()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("dataset: read %s: %w", r.key, err)
	}
	return r.file.ioError(r.key, fmt.Errorf("dataset: %s is damaged: %v: %w", r.key, err, ErrDamaged))
}
