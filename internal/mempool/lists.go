package mempool

import (
	"math/bits"
	"sync"
)

// Lists keeps byte buffers for reuse in free lists by size class: powers of
// two from 1<<minShift to 1<<maxShift bytes, at most limit bytes in all. It
// hands buffers out as they were put back, not zeroed; what a buffer is
// used for, and whether it must be cleared, is the caller's business. It is
// safe for concurrent use.
type Lists struct {
	minShift, maxShift int
	limit              int64 // most bytes kept

	mu   sync.Mutex
	free [][][]byte
	kept int64 // bytes in free lists
}

// NewLists returns free lists for the classes 1<<minShift to 1<<maxShift
// bytes that keep at most limit bytes.
func NewLists(minShift, maxShift int, limit int64) *Lists {
	return &Lists{minShift: minShift, maxShift: maxShift, limit: limit, free: make([][][]byte, maxShift-minShift+1)}
}

// ClassSize is the capacity of the class that holds n bytes, or 0 when n is
// above the largest class.
func (l *Lists) ClassSize(n int) int {
	c := l.class(n)
	if c < 0 {
		return 0
	}
	return 1 << (c + l.minShift)
}

func (l *Lists) class(n int) int {
	if n <= 1<<l.minShift {
		return 0
	}
	c := bits.Len(uint(n-1)) - l.minShift
	if c > l.maxShift-l.minShift {
		return -1
	}
	return c
}

// Get returns a kept buffer of n's class, cut to n bytes and holding
// whatever it held before, or nil when the class has none.
func (l *Lists) Get(n int) []byte {
	c := l.class(n)
	if c < 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	list := l.free[c]
	k := len(list)
	if k == 0 {
		return nil
	}
	b := list[k-1]
	list[k-1] = nil
	l.free[c] = list[:k-1]
	l.kept -= int64(cap(b))
	return b[:n]
}

// Put keeps b for a later Get when its capacity is exactly a class's size
// and the lists are under their bound; otherwise the garbage collector
// takes it.
func (l *Lists) Put(b []byte) {
	n := cap(b)
	c := l.class(n)
	if c < 0 || n != 1<<(c+l.minShift) {
		return
	}
	l.mu.Lock()
	if l.kept+int64(n) <= l.limit {
		l.free[c] = append(l.free[c], b[:0])
		l.kept += int64(n)
	}
	l.mu.Unlock()
}

// Kept is the number of bytes of buffers the lists hold.
func (l *Lists) Kept() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kept
}
