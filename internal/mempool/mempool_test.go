package mempool

import (
	"sync"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b[:1]))) }

func dirty(b []byte) {
	for i := range b[:cap(b)] {
		b[:cap(b)][i] = 0xab
	}
}

func zero(b []byte) bool {
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
}

// TestAllocate: buffers are zeroed, aligned, of the size asked, and a freed
// buffer comes back for the next request of its class, zeroed again.
func TestAllocate(t *testing.T) {
	for _, size := range []int{0, 1, 63, 64, 65, 1000, 4096, 480_000, 3 << 20} {
		a := New(64 << 20)
		b := a.Allocate(size)
		if len(b) != size || !zero(b) || addr(b)%alignment != 0 {
			t.Fatalf("Allocate(%d): len %d, zeroed %v, address %% 64 = %d", size, len(b), zero(b), addr(b)%alignment)
		}
		dirty(b)
		first := addr(b)
		a.Free(b)
		if a.Kept() != int64(cap(b)) {
			t.Fatalf("size %d: kept %d after freeing a buffer of capacity %d", size, a.Kept(), cap(b))
		}
		c := a.Allocate(size)
		if addr(c) != first || len(c) != size || !zero(c) {
			t.Fatalf("size %d: the freed buffer was not reused zeroed (reused %v, zeroed %v)", size, addr(c) == first, zero(c))
		}
		if a.Kept() != 0 {
			t.Fatalf("size %d: kept %d with every buffer in use", size, a.Kept())
		}
	}
}

// TestReallocate keeps the prefix and zeroes what it adds, in place or not.
func TestReallocate(t *testing.T) {
	a := New(64 << 20)
	for _, c := range []struct{ from, to int }{{10, 50}, {100, 120}, {100, 5000}, {5000, 100}, {0, 64}} {
		b := a.Allocate(c.from)
		dirty(b)
		for i := range b {
			b[i] = byte(i + 1)
		}
		r := a.Reallocate(c.to, b)
		if len(r) != c.to {
			t.Fatalf("%v: len %d", c, len(r))
		}
		for i := range r {
			want := byte(0)
			if i < c.from {
				want = byte(i + 1)
			}
			if r[i] != want {
				t.Fatalf("%v: byte %d is %d, want %d", c, i, r[i], want)
			}
		}
		a.Free(r)
	}
}

// TestBounded: the free lists hold at most the limit; buffers the allocator
// did not make, or too large for a class, are left to the garbage collector.
func TestBounded(t *testing.T) {
	a := New(10 << 10)
	var bufs [][]byte
	for i := 0; i < 8; i++ {
		bufs = append(bufs, a.Allocate(4096))
	}
	for _, b := range bufs {
		a.Free(b)
	}
	if k := a.Kept(); k > 10<<10 || k != 8<<10 {
		t.Fatalf("kept %d bytes under a limit of %d", k, 10<<10)
	}
	if l := a.free; l.ClassSize(1<<maxShift) != 1<<maxShift || l.ClassSize(1<<maxShift+1) != 0 {
		t.Fatalf("classes end at 1<<%d bytes", maxShift)
	}
	a = New(1 << 40)
	a.Free(make([]byte, 100))
	a.Free(make([]byte, 4096)[1:])
	if a.Kept() != 0 {
		t.Fatalf("kept %d bytes of buffers it should not keep", a.Kept())
	}
}

// TestArrowBuilders: builders grown through the allocator over reused
// buffers give the same arrays as fresh memory, also from several
// goroutines.
func TestArrowBuilders(t *testing.T) {
	a := New(64 << 20)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 50; round++ {
				lb := array.NewListBuilder(a, arrow.PrimitiveTypes.Float64)
				vb := lb.ValueBuilder().(*array.Float64Builder)
				for r := 0; r < 20; r++ {
					if r%7 == 3 {
						lb.AppendNull()
						continue
					}
					lb.Append(true)
					for k := 0; k < r*13; k++ {
						vb.Append(float64(g*1000 + r*10 + k))
					}
				}
				arr := lb.NewListArray()
				lb.Release()
				vals := arr.ListValues().(*array.Float64)
				for r := 0; r < 20; r++ {
					if (r%7 == 3) != arr.IsNull(r) {
						t.Errorf("row %d: null %v", r, arr.IsNull(r))
						return
					}
					s, e := arr.ValueOffsets(r)
					if arr.IsNull(r) {
						continue
					}
					if int(e-s) != r*13 {
						t.Errorf("row %d: %d values, want %d", r, e-s, r*13)
						return
					}
					for k := 0; k < r*13; k++ {
						if v := vals.Value(int(s) + k); v != float64(g*1000+r*10+k) {
							t.Errorf("row %d value %d: %v", r, k, v)
							return
						}
					}
				}
				arr.Release()
			}
		}()
	}
	wg.Wait()
	if a.Kept() == 0 {
		t.Fatal("no buffer came back to the allocator")
	}
}
