package dataset

import (
	"context"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/internal/mempool"
)

// BlockPool lends the buffers that the record batches of Arrow IPC files
// are read into (one buffer per batch: its stored metadata and body), and
// takes each back once the last reference to it is released, so that a
// stream of batches allocates no new memory once warm and leaves the garbage
// collector little to do. Lent buffers are not zeroed: they are overwritten
// by the read. It is safe for concurrent use.
//
// Reuse is as safe as the reference counting of the code that reads the
// batches: it must release every batch (and every retained StoredMessage)
// once, and keep no slice of their memory afterwards. So a pool is used only
// where asked for, with WithBlockPool; a buffer that is never released is
// collected by the garbage collector as usual.
type BlockPool struct {
	free *mempool.Lists
}

// Buffers come in size classes of powers of two from 1<<minBlockShift to
// 1<<maxBlockShift (maxBlockBytes); smaller ones are left to the heap.
const (
	minBlockShift = 16
	maxBlockShift = 26
)

// NewBlockPool returns a pool that keeps at most limit bytes of buffers
// between uses.
func NewBlockPool(limit int64) *BlockPool {
	return &BlockPool{free: mempool.NewLists(minBlockShift, maxBlockShift, limit)}
}

// get returns n bytes of uninitialised memory.
func (p *BlockPool) get(n int) []byte {
	if n < 1<<minBlockShift/2 {
		return make([]byte, n)
	}
	if b := p.free.Get(n); b != nil {
		return b
	}
	if c := p.free.ClassSize(n); c > 0 {
		return make([]byte, n, c)
	}
	return make([]byte, n)
}

// put takes back a buffer that get returned.
func (p *BlockPool) put(b []byte) { p.free.Put(b) }

// Kept is the number of bytes of buffers the pool holds for reuse.
func (p *BlockPool) Kept() int64 { return p.free.Kept() }

type blockPoolKey struct{}

// WithBlockPool returns a context under which OpenFile and Concat read the
// record batches of Arrow IPC files into buffers lent by p. Whoever reads
// them must keep to BlockPool's rule: release every batch once, keep nothing
// of its memory afterwards, and Retain a StoredMessage it holds on to.
func WithBlockPool(ctx context.Context, p *BlockPool) context.Context {
	return context.WithValue(ctx, blockPoolKey{}, p)
}

func blockPoolFrom(ctx context.Context) *BlockPool {
	p, _ := ctx.Value(blockPoolKey{}).(*BlockPool)
	return p
}

// lent is the allocator of an Arrow buffer over lent memory (a pool's
// buffer, or a block of a memory mapping, store.File.Map): freeing that
// buffer (its last reference released) ends the loan with release, once.
type lent struct {
	release func()
	done    atomic.Bool
}

func (l *lent) Allocate(n int) []byte { return make([]byte, n) }

func (l *lent) Reallocate(n int, b []byte) []byte {
	nb := make([]byte, n)
	copy(nb, b)
	return nb
}

func (l *lent) Free([]byte) {
	if l.done.CompareAndSwap(false, true) {
		l.release()
	}
}

var _ memory.Allocator = (*lent)(nil)
