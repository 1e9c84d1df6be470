package dataset

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// LogicalBytes is the size of the values a record batch holds: what writing it
// to a file would take before compression. Unlike RecordBytes, it counts only
// the part of each buffer that a sliced batch refers to, so the slices of one
// large batch add up to the batch's size rather than each counting all of it.
func LogicalBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, col := range rec.Columns() {
		n += arrayBytes(col)
	}
	return n
}

// ArrayBytes is the logical size of arr's values, children included: its
// share of LogicalBytes.
func ArrayBytes(arr arrow.Array) int64 { return arrayBytes(arr) }

// arrayBytes is the logical size of arr's values, children included.
func arrayBytes(arr arrow.Array) int64 {
	n := int64(arr.Len())
	if n == 0 {
		return 0
	}
	var size int64
	if arr.NullN() > 0 {
		size += (n + 7) / 8
	}
	switch a := arr.(type) {
	case *array.String:
		return size + 4*(n+1) + span(a.ValueOffsets())
	case *array.Binary:
		return size + 4*(n+1) + span(a.ValueOffsets())
	case *array.LargeString:
		return size + 8*(n+1) + span(a.ValueOffsets())
	case *array.LargeBinary:
		return size + 8*(n+1) + span(a.ValueOffsets())
	case *array.FixedSizeList:
		start, _ := a.ValueOffsets(0)
		_, end := a.ValueOffsets(int(n) - 1)
		return size + sliceBytes(a.ListValues(), start, end)
	case array.ListLike: // list, large list, map, list views
		start, _ := a.ValueOffsets(0)
		_, end := a.ValueOffsets(int(n) - 1)
		width := int64(4)
		if _, ok := arr.DataType().(*arrow.LargeListType); ok {
			width = 8
		}
		return size + width*(n+1) + sliceBytes(a.ListValues(), start, end)
	case *array.Struct:
		for i := 0; i < a.NumField(); i++ {
			size += arrayBytes(a.Field(i))
		}
		return size
	}
	if fw, ok := arr.DataType().(arrow.FixedWidthDataType); ok {
		if fw.BitWidth() < 8 {
			return size + (n*int64(fw.BitWidth())+7)/8
		}
		return size + n*int64(fw.BitWidth()/8)
	}
	// Anything else (unions, dictionaries, run-end encoded arrays): the
	// share of its buffers that its length is of its buffers' capacity is
	// unknown, so count them whole.
	return dataBytes(arr.Data())
}

// sliceBytes is the logical size of arr[start:end).
func sliceBytes(arr arrow.Array, start, end int64) int64 {
	if end <= start {
		return 0
	}
	if start == 0 && end == int64(arr.Len()) {
		return arrayBytes(arr)
	}
	s := array.NewSlice(arr, start, end)
	defer s.Release()
	return arrayBytes(s)
}

// span is the length of the values a slice's offsets refer to.
func span[T int32 | int64](offsets []T) int64 {
	if len(offsets) == 0 {
		return 0
	}
	return int64(offsets[len(offsets)-1] - offsets[0])
}

// WriteBounded hands rec to write in row slices of at most about maxBytes
// each, by LogicalBytes; a single record larger than that goes alone.
func WriteBounded(rec arrow.RecordBatch, maxBytes int64, write func(arrow.RecordBatch) error) error {
	n := rec.NumRows()
	size := LogicalBytes(rec)
	if n <= 1 || size <= maxBytes {
		return write(rec)
	}
	step := max(maxBytes/max(size/n, 1), 1)
	for off := int64(0); off < n; off += step {
		sl := rec.NewSlice(off, min(off+step, n))
		err := write(sl)
		sl.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// dataBytes is the size of an array's buffers, children included.
func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	return n
}

// maxPending bounds the batches a Coalescer holds at once, however small.
const maxPending = 1 << 16

// Coalescer gathers small record batches into batches of about maxBytes
// before handing them on, so that a stream of tiny batches (one row each)
// is stored as a few large ones rather than as one IPC message per row. A
// batch of maxBytes or more goes on alone, re-cut by WriteBounded.
type Coalescer struct {
	maxBytes int64
	mem      memory.Allocator
	write    func(arrow.RecordBatch) error
	pending  []arrow.RecordBatch
	bytes    int64
}

// NewCoalescer returns a Coalescer that hands batches of about maxBytes to write.
func NewCoalescer(maxBytes int64, mem memory.Allocator, write func(arrow.RecordBatch) error) *Coalescer {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return &Coalescer{maxBytes: maxBytes, mem: mem, write: write}
}

// Add takes a batch (the Coalescer retains what it keeps).
func (c *Coalescer) Add(rec arrow.RecordBatch) error {
	if rec.NumRows() == 0 {
		return nil
	}
	b := LogicalBytes(rec)
	if c.bytes+b > c.maxBytes || len(c.pending) >= maxPending {
		if err := c.Flush(); err != nil {
			return err
		}
	}
	if b >= c.maxBytes {
		return WriteBounded(rec, c.maxBytes, c.write)
	}
	rec.Retain()
	c.pending = append(c.pending, rec)
	c.bytes += b
	return nil
}

// Flush hands on what the Coalescer holds, as one batch.
func (c *Coalescer) Flush() error {
	if len(c.pending) == 0 {
		return nil
	}
	defer c.Release()
	if len(c.pending) == 1 {
		return c.write(c.pending[0])
	}
	first := c.pending[0]
	cols := make([]arrow.Array, first.NumCols())
	defer func() {
		for _, a := range cols {
			if a != nil {
				a.Release()
			}
		}
	}()
	var rows int64
	for _, r := range c.pending {
		rows += r.NumRows()
	}
	parts := make([]arrow.Array, len(c.pending))
	for i := range cols {
		for j, r := range c.pending {
			parts[j] = r.Column(i)
		}
		a, err := array.Concatenate(parts, c.mem)
		if err != nil {
			return fmt.Errorf("dataset: join %d small batches: %w", len(c.pending), err)
		}
		cols[i] = a
	}
	rec := array.NewRecordBatch(first.Schema(), cols, rows)
	defer rec.Release()
	return c.write(rec)
}

// Release drops what the Coalescer holds without handing it on.
func (c *Coalescer) Release() {
	for _, r := range c.pending {
		r.Release()
	}
	c.pending = c.pending[:0]
	c.bytes = 0
}
