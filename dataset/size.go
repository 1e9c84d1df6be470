package dataset

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
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
