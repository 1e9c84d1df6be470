package dataset

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"

	"github.com/flightbatch/flightbatch/internal/ipccheck"
)

// metadataV5 is the metadata version of Arrow 1.0 and later, which the
// check knows.
const metadataV5 = 4

// maxCheckDepth bounds the nesting checkStored follows.
const maxCheckDepth = 64

// checkStored checks an uncompressed record batch message of schema from its
// metadata's layout and its body, without decoding it: everything that
// arrow-go's IPC reader and ValidateRecord check of a batch of the same
// bytes, or more. Every buffer an array uses lies in the body and is long
// enough for the array's length; every array's length is the batch's (a
// child's, long enough for its parent); null counts equal the validity
// bitmaps' unset bits; offsets start at 0 or more, never decrease and stay
// within their values; strings are UTF-8.
//
// It returns ok only when the batch passes and every type in it is one the
// check knows (fixed-width numbers and times, booleans, strings and binary,
// lists, fixed-size lists and structs), with the batch's rows and an upper
// bound of its LogicalBytes: the lengths of the buffers its arrays use. A
// batch it does not pass, for whatever reason, is to be decoded and
// validated as before, which says what is wrong.
func checkStored(schema *arrow.Schema, meta, body []byte) (rows, size int64, ok bool) {
	l, err := ipccheck.BatchLayout(meta)
	if err != nil || l.Version != metadataV5 || l.Length < 0 || l.Variadic != 0 {
		return 0, 0, false
	}
	c := storedCheck{l: l, body: body}
	for _, f := range schema.Fields() {
		n, ok := c.array(f.Type, 0)
		if !ok || n != l.Length {
			return 0, 0, false
		}
	}
	return l.Length, c.size, true
}

// storedCheck walks a batch's field nodes and buffers in the order of the
// IPC format (depth first, each array's validity bitmap first).
type storedCheck struct {
	l     ipccheck.Layout
	body  []byte
	node  int
	buf   int
	size  int64
	nulls int64 // the current array's null count
}

// array checks the next array, of type dt, and returns its length.
func (c *storedCheck) array(dt arrow.DataType, depth int) (int64, bool) {
	if depth > maxCheckDepth || c.node >= c.l.Nodes {
		return 0, false
	}
	length, nulls := c.l.Node(c.node)
	c.node++
	if length < 0 || nulls < 0 || nulls > length {
		return 0, false
	}
	c.nulls = nulls
	switch dt := dt.(type) {
	case *arrow.BooleanType:
		return length, c.validity(length) && c.values(length, 0)
	case *arrow.Int8Type, *arrow.Int16Type, *arrow.Int32Type, *arrow.Int64Type,
		*arrow.Uint8Type, *arrow.Uint16Type, *arrow.Uint32Type, *arrow.Uint64Type,
		*arrow.Float16Type, *arrow.Float32Type, *arrow.Float64Type,
		*arrow.Date32Type, *arrow.Date64Type, *arrow.Time32Type, *arrow.Time64Type,
		*arrow.TimestampType, *arrow.DurationType:
		return length, c.validity(length) && c.values(length, int64(dt.(arrow.FixedWidthDataType).BitWidth()/8))
	case *arrow.StringType:
		return length, c.validity(length) && c.binary(length, 4, true)
	case *arrow.BinaryType:
		return length, c.validity(length) && c.binary(length, 4, false)
	case *arrow.LargeStringType:
		return length, c.validity(length) && c.binary(length, 8, true)
	case *arrow.LargeBinaryType:
		return length, c.validity(length) && c.binary(length, 8, false)
	case *arrow.ListType:
		return length, c.validity(length) && c.list(length, 4, dt.Elem(), depth)
	case *arrow.LargeListType:
		return length, c.validity(length) && c.list(length, 8, dt.Elem(), depth)
	case *arrow.FixedSizeListType:
		if !c.validity(length) || dt.Len() <= 0 {
			return 0, false
		}
		n, ok := c.array(dt.Elem(), depth+1)
		return length, ok && length <= n/int64(dt.Len())
	case *arrow.StructType:
		if !c.validity(length) {
			return 0, false
		}
		for _, f := range dt.Fields() {
			n, ok := c.array(f.Type, depth+1)
			if !ok || n < length {
				return 0, false
			}
		}
		return length, true
	}
	return 0, false
}

// buffer returns the next buffer's bytes, which must lie in the body.
func (c *storedCheck) buffer() ([]byte, bool) {
	if c.buf >= c.l.Buffers {
		return nil, false
	}
	off, n := c.l.Buffer(c.buf)
	c.buf++
	if off < 0 || n < 0 || off > int64(len(c.body)) || n > int64(len(c.body))-off {
		return nil, false
	}
	c.size += n
	return c.body[off : off+n], true
}

// validity checks the array's validity bitmap: none (skipped) without
// nulls, else as many unset bits among the first length as nulls.
func (c *storedCheck) validity(length int64) bool {
	b, ok := c.buffer()
	if !ok || c.nulls == 0 {
		return ok
	}
	return length <= 8*int64(len(b)) && length-int64(bitutil.CountSetBits(b, 0, int(length))) == c.nulls
}

// values checks a buffer of length values of width bytes (0: bits); an
// empty array's is skipped.
func (c *storedCheck) values(length, width int64) bool {
	b, ok := c.buffer()
	switch {
	case !ok || length == 0:
		return ok
	case width == 0:
		return length <= 8*int64(len(b))
	}
	return length <= int64(len(b))/width
}

// offsets checks a buffer of length+1 offsets of width bytes (4 or 8), at
// least 0, never decreasing and at most limit, and calls each with every
// value's start and end.
func (c *storedCheck) offsets(length, width int64, limit int64, each func(start, end int64) bool) bool {
	b, ok := c.buffer()
	if !ok || length == 0 {
		return ok
	}
	if length >= int64(len(b))/width { // length+1 offsets
		return false
	}
	at := func(i int64) int64 {
		if width == 4 {
			return int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
		return int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	prev := at(0)
	if prev < 0 || prev > limit {
		return false
	}
	for i := int64(1); i <= length; i++ {
		cur := at(i)
		if cur < prev || cur > limit || (each != nil && !each(prev, cur)) {
			return false
		}
		prev = cur
	}
	return true
}

// binary checks a string or binary array's offsets and values.
func (c *storedCheck) binary(length, width int64, utf bool) bool {
	// The values buffer follows the offsets; the offsets are checked
	// against its length.
	if c.buf+1 >= c.l.Buffers {
		return false
	}
	voff, vn := c.l.Buffer(c.buf + 1)
	if voff < 0 || vn < 0 || voff > int64(len(c.body)) || vn > int64(len(c.body))-voff {
		return false
	}
	values := c.body[voff : voff+vn]
	var each func(start, end int64) bool
	if utf && !c.asciiValues(length, width, values) {
		each = func(start, end int64) bool { return utf8.Valid(values[start:end]) }
	}
	if !c.offsets(length, width, vn, each) {
		return false
	}
	_, ok := c.buffer()
	return ok
}

// list checks a list array's offsets and its child.
func (c *storedCheck) list(length, width int64, elem arrow.DataType, depth int) bool {
	// The child's length, which bounds the offsets, is known only after
	// the child is checked: the offsets buffer is read first and checked
	// after.
	at := c.buf
	if _, ok := c.buffer(); !ok {
		return false
	}
	n, ok := c.array(elem, depth+1)
	if !ok {
		return false
	}
	after, size := c.buf, c.size
	c.buf = at
	ok = c.offsets(length, width, n, nil)
	c.buf, c.size = after, size
	return ok
}

// asciiValues reports whether the next buffer holds length+1 offsets of
// width bytes whose first and last bound a range of values that is all
// ASCII: then every value is UTF-8, whatever the offsets between (which
// offsets checks).
func (c *storedCheck) asciiValues(length, width int64, values []byte) bool {
	if c.buf >= c.l.Buffers || length == 0 {
		return false
	}
	off, n := c.l.Buffer(c.buf)
	if off < 0 || n < 0 || off > int64(len(c.body)) || n > int64(len(c.body))-off || length >= n/width {
		return false
	}
	b := c.body[off : off+n]
	first, last := int64(binary.LittleEndian.Uint32(b)), int64(binary.LittleEndian.Uint32(b[4*length:]))
	if width == 8 {
		first, last = int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8*length:]))
	} else {
		first, last = int64(int32(first)), int64(int32(last))
	}
	if first < 0 || first > last || last > int64(len(values)) {
		return false
	}
	for _, v := range values[first:last] {
		if v >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
