// Package mempool is an Arrow memory allocator that reuses the buffers it
// is given back, so that a process reading and writing record batches of
// similar sizes over and over (a child reading a shard and building its
// result) stops allocating once warm, and the garbage collector has little to
// do.
package mempool

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Buffers are handed out in size classes of powers of two from 1<<minShift
// to 1<<maxShift bytes; larger ones come from and go back to the Go heap.
const (
	minShift  = 6
	maxShift  = 30
	alignment = 64
)

// Allocator is a memory.Allocator that keeps freed buffers, up to a bound
// of bytes, and hands them out again. Like Arrow's own allocators it returns
// zeroed, 64-byte aligned memory. It is safe for concurrent use. A buffer is
// reused only after Arrow frees it (its last reference released), so the
// allocator is as safe as the reference counting of the code that uses it;
// a buffer never freed is collected by the garbage collector as usual.
type Allocator struct {
	free *Lists
}

var _ memory.Allocator = (*Allocator)(nil)

// New returns an Allocator that keeps at most limit bytes of freed buffers.
func New(limit int64) *Allocator {
	return &Allocator{free: NewLists(minShift, maxShift, limit)}
}

// Allocate implements memory.Allocator: size zeroed bytes, with the class's
// capacity.
func (a *Allocator) Allocate(size int) []byte {
	if b := a.free.Get(size); b != nil {
		clear(b)
		return b
	}
	if c := a.free.ClassSize(size); c > 0 {
		return alloc(size, c)
	}
	return alloc(size, size)
}

// alloc returns size zeroed bytes of a new, 64-byte aligned buffer of
// capacity capacity.
func alloc(size, capacity int) []byte {
	buf := make([]byte, capacity+alignment)
	shift := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(buf))) % alignment); r != 0 {
		shift = alignment - r
	}
	return buf[shift : shift+size : shift+capacity]
}

// Reallocate implements memory.Allocator: b's first min(len(b), size)
// bytes, then zeros, in b itself when its capacity suffices.
func (a *Allocator) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		if size > len(b) {
			clear(b[len(b):size])
		}
		return b[:size]
	}
	nb := a.Allocate(size)
	copy(nb, b)
	a.Free(b)
	return nb
}

// Free implements memory.Allocator: b is kept for reuse if it is one of this
// allocator's classes and the free lists are under their bound.
func (a *Allocator) Free(b []byte) {
	if cap(b) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b[:1])))%alignment != 0 {
		return // not a buffer this allocator made: the garbage collector takes it
	}
	a.free.Put(b)
}

// Kept is the number of bytes of freed buffers the allocator holds.
func (a *Allocator) Kept() int64 { return a.free.Kept() }
