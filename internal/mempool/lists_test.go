package mempool

import "testing"

// TestLists: a buffer put back is handed out again for any size of its
// class, unzeroed; buffers of no class's exact size, or beyond the bound,
// are not kept.
func TestLists(t *testing.T) {
	l := NewLists(4, 8, 64)
	if got := l.Get(20); got != nil {
		t.Fatalf("Get from empty lists: %d bytes, want nil", len(got))
	}
	b := make([]byte, 20, l.ClassSize(20))
	if cap(b) != 32 {
		t.Fatalf("class of 20 bytes: %d, want 32", cap(b))
	}
	b[0] = 7
	l.Put(b)
	if l.Kept() != 32 {
		t.Fatalf("kept %d, want 32", l.Kept())
	}
	got := l.Get(30)
	if len(got) != 30 || cap(got) != 32 || got[0] != 7 || l.Kept() != 0 {
		t.Fatalf("Get(30): len %d cap %d first %d, kept %d", len(got), cap(got), got[0], l.Kept())
	}
	for _, c := range []struct {
		name string
		buf  []byte
	}{
		{"odd capacity", make([]byte, 24)},
		{"below the smallest class", make([]byte, 8)},
		{"above the largest class", make([]byte, 512)},
	} {
		l.Put(c.buf)
		if l.Kept() != 0 {
			t.Fatalf("%s: kept %d", c.name, l.Kept())
		}
	}
	l.Put(make([]byte, 0, 256)) // 256 > limit 64
	if l.Kept() != 0 {
		t.Fatalf("over the bound: kept %d", l.Kept())
	}
	if l.ClassSize(257) != 0 || l.ClassSize(1) != 16 {
		t.Fatalf("ClassSize(257)=%d ClassSize(1)=%d", l.ClassSize(257), l.ClassSize(1))
	}
}
