// Package storetest is the conformance suite for store.Store: every behaviour
// that callers rely on, checked through the public API only, against any
// backend. A backend's test file is a harness that opens a fresh, empty store
// and calls RunConformanceTests.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/store"
)

// RunConformanceTests runs the whole suite. newStore is called once per
// subtest and must return a store that is empty (the suite refuses to run on
// one that is not, so a shared bucket is never written into by mistake); it
// should register its own cleanup with t.Cleanup.
func RunConformanceTests(t *testing.T, newStore func(t *testing.T) *store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s *store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"Missing", testMissing},
		{"WriteFillError", testWriteFillError},
		{"WriteCancelled", testWriteCancelled},
		{"WriteInProgressInvisible", testWriteInProgressInvisible},
		{"List", testList},
		{"ListSortedAcrossDirectories", testListSortedAcrossDirectories},
		{"ListDirs", testListDirs},
		{"Delete", testDelete},
		{"ReadAt", testReadAt},
		{"ParquetTail", testParquetTail},
		{"ConcurrentReadAt", testConcurrentReadAt},
		{"Large", testLarge},
		{"ETag", testETag},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ConcurrentWritersSameKey", testConcurrentWritersSameKey},
		{"KeyUnderAnObject", testKeyUnderAnObject},
		{"ReadDuringOverwrite", testReadDuringOverwrite},
		{"ListDuringWrites", testListDuringWrites},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			requireEmpty(t, s)
			tc.fn(t, s)
		})
	}
}

// requireEmpty stops the test unless s holds no object.
func requireEmpty(t *testing.T, s *store.Store) {
	t.Helper()
	objs, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatalf("list the new store: %v", err)
	}
	if len(objs) != 0 {
		t.Fatalf("refusing to run on %s: it is not empty (%d objects, first %q)", s.URL(), len(objs), objs[0].Key)
	}
}

// payload returns n deterministic pseudo-random bytes.
func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustWrite(t *testing.T, s *store.Store, key string, data []byte) {
	t.Helper()
	if err := s.WriteAll(t.Context(), key, data); err != nil {
		t.Fatalf("WriteAll(%q): %v", key, err)
	}
}

func mustRead(t *testing.T, s *store.Store, key string) []byte {
	t.Helper()
	got, err := s.ReadAll(t.Context(), key)
	if err != nil {
		t.Fatalf("ReadAll(%q): %v", key, err)
	}
	return got
}

func keys(objs []store.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
	}
	return out
}

func mustList(t *testing.T, s *store.Store, prefix string) []store.Object {
	t.Helper()
	objs, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return objs
}

func requireAbsent(t *testing.T, s *store.Store, key string) {
	t.Helper()
	ok, err := s.Exists(t.Context(), key)
	if err != nil {
		t.Fatalf("Exists(%q): %v", key, err)
	}
	if ok {
		t.Fatalf("%q exists; want no object", key)
	}
	if objs := mustList(t, s, ""); len(objs) != 0 {
		t.Fatalf("store holds %q; want nothing", keys(objs))
	}
}

func testRoundTrip(t *testing.T, s *store.Store) {
	cases := []struct {
		name string
		key  string
		data []byte
	}{
		{"empty", "empty", []byte{}},
		{"small", "small.txt", []byte("hello, flightbatch")},
		{"every byte", "bytes.bin", func() []byte {
			b := make([]byte, 256)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}()},
		{"nested", "datasets/demo/shard-00000.arrow", payload(1, 4096)},
		{"deeply nested", "jobs/01J0000000/parts/00000/result.parquet", payload(2, 1000)},
		{"dots and dashes", "a-b_c.d/e.f-g_h", []byte("x")},
		{"space", "with space/file name.bin", []byte("spaced")},
		{"unicode", "unicode/délta-β.bin", []byte("utf-8")},
		{"tmp suffix", "notes.tmp", []byte("a key may end in .tmp")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustWrite(t, s, c.key, c.data)
			if got := mustRead(t, s, c.key); !bytes.Equal(got, c.data) {
				t.Fatalf("ReadAll(%q) = %d bytes, want the %d written", c.key, len(got), len(c.data))
			}
			o, err := s.Stat(t.Context(), c.key)
			if err != nil {
				t.Fatalf("Stat(%q): %v", c.key, err)
			}
			if o.Key != c.key || o.Size != int64(len(c.data)) {
				t.Fatalf("Stat(%q) = key %q size %d, want size %d", c.key, o.Key, o.Size, len(c.data))
			}
			if ok, err := s.Exists(t.Context(), c.key); err != nil || !ok {
				t.Fatalf("Exists(%q) = %v, %v; want true", c.key, ok, err)
			}
			r, err := s.NewReader(t.Context(), c.key)
			if err != nil {
				t.Fatalf("NewReader(%q): %v", c.key, err)
			}
			got, err := io.ReadAll(r)
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			if err != nil || !bytes.Equal(got, c.data) {
				t.Fatalf("NewReader(%q) read %d bytes, %v; want the %d written", c.key, len(got), err, len(c.data))
			}
			objs := mustList(t, s, c.key)
			if !slices.Contains(keys(objs), c.key) {
				t.Fatalf("List(%q) = %q, missing the key", c.key, keys(objs))
			}
		})
	}
}

func testOverwrite(t *testing.T, s *store.Store) {
	mustWrite(t, s, "k", []byte("the first, longer version"))
	mustWrite(t, s, "k", []byte("second"))
	if got := string(mustRead(t, s, "k")); got != "second" {
		t.Fatalf("after overwrite ReadAll = %q, want %q", got, "second")
	}
	objs := mustList(t, s, "")
	if len(objs) != 1 || objs[0].Key != "k" || objs[0].Size != 6 {
		t.Fatalf("after overwrite List = %+v, want the one object k of 6 bytes", objs)
	}
}

func testMissing(t *testing.T, s *store.Store) {
	mustWrite(t, s, "dir/present", []byte("x"))
	for _, key := range []string{"absent", "dir/absent", "dir", "dir/"} {
		ctx := t.Context()
		checks := []struct {
			op  string
			err error
		}{
			{"ReadAll", func() error { _, err := s.ReadAll(ctx, key); return err }()},
			{"Stat", func() error { _, err := s.Stat(ctx, key); return err }()},
			{"NewReader", func() error {
				r, err := s.NewReader(ctx, key)
				if err == nil {
					r.Close()
				}
				return err
			}()},
			{"OpenFile", func() error { _, err := s.OpenFile(ctx, key); return err }()},
		}
		for _, c := range checks {
			if !errors.Is(c.err, store.ErrNotExist) {
				t.Errorf("%s(%q) error = %v, want one wrapping store.ErrNotExist", c.op, key, c.err)
			}
		}
		if key == "dir/" {
			continue // some backends refuse a key ending in "/" outright
		}
		if ok, err := s.Exists(ctx, key); ok || err != nil {
			t.Errorf("Exists(%q) = %v, %v; want false, nil", key, ok, err)
		}
	}
}

var errFill = errors.New("fill failed on purpose")

func testWriteFillError(t *testing.T, s *store.Store) {
	cases := []struct {
		name  string
		write int // bytes written before the error
	}{
		{"nothing written", 0},
		{"some written", 100},
		{"many parts written", 11 << 20}, // past a multipart upload's first parts
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fill := func(w io.Writer) error {
				if _, err := w.Write(payload(3, c.write)); err != nil {
					return err
				}
				return errFill
			}
			err := s.Write(t.Context(), "new/key", fill)
			if !errors.Is(err, errFill) {
				t.Fatalf("Write error = %v, want one wrapping the fill's", err)
			}
			requireAbsent(t, s, "new/key")
			if dirs, err := s.ListDirs(t.Context(), ""); err != nil || len(dirs) != 0 {
				t.Fatalf("ListDirs after a failed write = %q, %v; want none", dirs, err)
			}

			old := []byte("the old version")
			mustWrite(t, s, "old", old)
			if err := s.Write(t.Context(), "old", fill); !errors.Is(err, errFill) {
				t.Fatalf("Write over an object: error = %v, want one wrapping the fill's", err)
			}
			if got := mustRead(t, s, "old"); !bytes.Equal(got, old) {
				t.Fatalf("a failed write changed the old object to %d bytes", len(got))
			}
			if objs := mustList(t, s, ""); len(objs) != 1 {
				t.Fatalf("store holds %q, want only the old object", keys(objs))
			}
			if err := s.Delete(t.Context(), "old"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func testWriteCancelled(t *testing.T, s *store.Store) {
	cases := []struct {
		name  string
		write int
		// before cancels the context before Write is called.
		before bool
	}{
		{"before write", 10, true},
		{"during fill, small", 10, false},
		{"during fill, large", 11 << 20, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if c.before {
				cancel()
			}
			err := s.Write(ctx, "cancelled", func(w io.Writer) error {
				if _, err := w.Write(payload(4, c.write)); err != nil {
					return err
				}
				cancel()
				return nil
			})
			if err == nil {
				t.Fatal("Write with a cancelled context succeeded")
			}
			requireAbsent(t, s, "cancelled")
		})
	}
}

func testWriteInProgressInvisible(t *testing.T, s *store.Store) {
	started := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Write(t.Context(), "inflight/obj", func(w io.Writer) error {
			if _, err := w.Write(payload(5, 1000)); err != nil {
				return err
			}
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	objs, err := s.List(t.Context(), "")
	dirs, derr := s.ListDirs(t.Context(), "")
	close(release)
	if err != nil || derr != nil {
		t.Fatalf("List: %v; ListDirs: %v", err, derr)
	}
	if len(objs) != 0 {
		t.Errorf("List during a write = %q; want nothing (no partial or temporary objects)", keys(objs))
	}
	if len(dirs) != 0 {
		t.Errorf("ListDirs during a write = %q; want nothing", dirs)
	}
	if err := <-done; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got := keys(mustList(t, s, "")); !slices.Equal(got, []string{"inflight/obj"}) {
		t.Fatalf("List after the write = %q", got)
	}
}

func testList(t *testing.T, s *store.Store) {
	objs := map[string]int{
		"datasets/demo/shard-00002.arrow":  30,
		"datasets/demo/shard-00000.arrow":  10,
		"datasets/demo/shard-00001.arrow":  20,
		"datasets/other/shard-00000.arrow": 5,
		"jobs/j1/manifest.json":            7,
		"top":                              1,
	}
	for k, n := range objs {
		mustWrite(t, s, k, payload(6, n))
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"datasets/demo/shard-00000.arrow", "datasets/demo/shard-00001.arrow", "datasets/demo/shard-00002.arrow", "datasets/other/shard-00000.arrow", "jobs/j1/manifest.json", "top"}},
		{"datasets/demo/", []string{"datasets/demo/shard-00000.arrow", "datasets/demo/shard-00001.arrow", "datasets/demo/shard-00002.arrow"}},
		{"datasets/demo/shard-0000", []string{"datasets/demo/shard-00000.arrow", "datasets/demo/shard-00001.arrow", "datasets/demo/shard-00002.arrow"}},
		{"datasets/", []string{"datasets/demo/shard-00000.arrow", "datasets/demo/shard-00001.arrow", "datasets/demo/shard-00002.arrow", "datasets/other/shard-00000.arrow"}},
		{"jobs/j1/", []string{"jobs/j1/manifest.json"}},
		{"datasets/nothing/", nil},
		{"zzz", nil},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("prefix=%q", c.prefix), func(t *testing.T) {
			got := mustList(t, s, c.prefix)
			if !slices.Equal(keys(got), c.want) {
				t.Fatalf("List(%q) = %q, want %q", c.prefix, keys(got), c.want)
			}
			for _, o := range got {
				if o.Size != int64(objs[o.Key]) {
					t.Errorf("List: %s has size %d, want %d", o.Key, o.Size, objs[o.Key])
				}
				if o.ModTime.IsZero() {
					t.Errorf("List: %s has no modification time", o.Key)
				}
			}
		})
	}
}

// testListSortedAcrossDirectories: keys whose "directory" part is a prefix of
// a sibling's name ("demo/x" against "demo-2/y") are sorted by key, not in
// the order a directory walk meets them.
func testListSortedAcrossDirectories(t *testing.T, s *store.Store) {
	want := []string{
		"datasets/demo-2/a.arrow",
		"datasets/demo.v2/a.arrow",
		"datasets/demo/a.arrow",
		"datasets/demo/b.arrow",
		"datasets/demo0/a.arrow",
		"datasets/demo_x",
	}
	for i := len(want) - 1; i >= 0; i-- {
		mustWrite(t, s, want[i], []byte("x"))
	}
	for _, prefix := range []string{"", "datasets/", "datasets/demo"} {
		if got := keys(mustList(t, s, prefix)); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func testListDirs(t *testing.T, s *store.Store) {
	for _, k := range []string{
		"datasets/demo/shard-00000.arrow",
		"datasets/demo/shard-00001.arrow",
		"datasets/demo-2/shard-00000.arrow",
		"datasets/eeg/sub/deep.arrow",
		"datasets/README",
		"jobs/j1/manifest.json",
	} {
		mustWrite(t, s, k, []byte("x"))
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"datasets", "jobs"}},
		{"datasets/", []string{"demo", "demo-2", "eeg"}},
		{"datasets/eeg/", []string{"sub"}},
		{"datasets/demo/", nil},
		{"nothing/", nil},
	}
	for _, c := range cases {
		got, err := s.ListDirs(t.Context(), c.prefix)
		if err != nil {
			t.Fatalf("ListDirs(%q): %v", c.prefix, err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("ListDirs(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
}

func testDelete(t *testing.T, s *store.Store) {
	mustWrite(t, s, "d/a", []byte("a"))
	mustWrite(t, s, "d/b", []byte("b"))
	if err := s.Delete(t.Context(), "d/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.ReadAll(t.Context(), "d/a"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("ReadAll after Delete: %v, want store.ErrNotExist", err)
	}
	if got := keys(mustList(t, s, "")); !slices.Equal(got, []string{"d/b"}) {
		t.Fatalf("List after Delete = %q", got)
	}
	for _, key := range []string{"d/a", "never/was"} {
		if err := s.Delete(t.Context(), key); err != nil {
			t.Errorf("Delete(%q) of a missing object = %v, want nil", key, err)
		}
	}
	if err := s.Delete(t.Context(), "d/b"); err != nil {
		t.Fatal(err)
	}
	if dirs, err := s.ListDirs(t.Context(), ""); err != nil || len(dirs) != 0 {
		t.Fatalf("ListDirs after deleting everything = %q, %v; want none", dirs, err)
	}
}

func testReadAt(t *testing.T, s *store.Store) {
	data := payload(7, 1000)
	mustWrite(t, s, "f", data)
	f, err := s.OpenFile(t.Context(), "f")
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	if f.Size() != 1000 {
		t.Fatalf("Size = %d, want 1000", f.Size())
	}
	if end, err := f.Seek(0, io.SeekEnd); err != nil || end != 1000 {
		t.Fatalf("Seek(0, SeekEnd) = %d, %v; want 1000", end, err)
	}
	cases := []struct {
		name  string
		off   int64
		n     int
		wantN int
		// wantEOF: must return io.EOF; otherwise nil, or io.EOF when the read
		// ends exactly at the end (io.ReaderAt allows both).
		wantEOF bool
	}{
		{"start", 0, 10, 10, false},
		{"middle", 500, 100, 100, false},
		{"one byte", 999, 1, 1, false},
		{"whole", 0, 1000, 1000, false},
		{"to the end", 990, 10, 10, false},
		{"across the end", 995, 10, 5, true},
		{"larger than object", 0, 2000, 1000, true},
		{"at the end", 1000, 1, 0, true},
		{"past the end", 5000, 10, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := make([]byte, c.n)
			n, err := f.ReadAt(p, c.off)
			if n != c.wantN {
				t.Fatalf("ReadAt(%d bytes at %d) n = %d, want %d (err %v)", c.n, c.off, n, c.wantN, err)
			}
			if c.wantEOF && err != io.EOF {
				t.Fatalf("ReadAt(%d bytes at %d) err = %v, want io.EOF", c.n, c.off, err)
			}
			if !c.wantEOF && err != nil && !(err == io.EOF && c.off+int64(c.n) == 1000) {
				t.Fatalf("ReadAt(%d bytes at %d) err = %v, want nil", c.n, c.off, err)
			}
			if n > 0 && !bytes.Equal(p[:n], data[c.off:c.off+int64(n)]) {
				t.Fatalf("ReadAt(%d bytes at %d) returned the wrong bytes", c.n, c.off)
			}
		})
	}
	t.Run("negative offset", func(t *testing.T) {
		if n, err := f.ReadAt(make([]byte, 4), -1); err == nil || n != 0 {
			t.Fatalf("ReadAt at -1 = %d, %v; want an error", n, err)
		}
	})
	t.Run("empty buffer", func(t *testing.T) {
		if n, err := f.ReadAt(nil, 10); n != 0 || err != nil {
			t.Fatalf("ReadAt(nil, 10) = %d, %v; want 0, nil", n, err)
		}
	})
	t.Run("section reader", func(t *testing.T) {
		got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("reading through io.SectionReader: %d bytes, %v", len(got), err)
		}
	})
	t.Run("object deleted after open", func(t *testing.T) {
		mustWrite(t, s, "gone", data)
		g, err := s.OpenFile(t.Context(), "gone")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(t.Context(), "gone"); err != nil {
			t.Fatal(err)
		}
		// A store that holds the file open reads the version it opened;
		// any other says the object is gone. Never other bytes.
		p := make([]byte, 10)
		n, err := g.ReadAt(p, 0)
		if !errors.Is(err, store.ErrNotExist) && (err != nil || n != 10 || !bytes.Equal(p, data[:10])) {
			t.Fatalf("ReadAt of a deleted object: %d bytes, %v; want store.ErrNotExist or the bytes as opened", n, err)
		}
		if err := g.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
	t.Run("replaced after open", func(t *testing.T) {
		mustWrite(t, s, "replaced", data)
		g, err := s.OpenFile(t.Context(), "replaced")
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		next := payload(70, 1000)
		mustWrite(t, s, "replaced", next)
		p := make([]byte, 100)
		n, err := g.ReadAt(p, 200)
		if err != nil || n != 100 || !bytes.Equal(p, data[200:300]) && !bytes.Equal(p, next[200:300]) {
			t.Fatalf("ReadAt of a replaced object: %d bytes, %v; want 100 bytes of one version", n, err)
		}
	})
	t.Run("close", func(t *testing.T) {
		g, err := s.OpenFile(t.Context(), "f")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.ReadAt(make([]byte, 10), 0); err != nil {
			t.Fatal(err)
		}
		if err := g.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := g.Close(); err != nil {
			t.Fatalf("a second Close: %v", err)
		}
		// Reads after Close may fail (a file store's do), but never
		// return other bytes than the object's.
		p := make([]byte, 10)
		if n, err := g.ReadAt(p, 5); err == nil && (n != 10 || !bytes.Equal(p, data[5:15])) {
			t.Fatalf("ReadAt after Close returned %d wrong bytes", n)
		}
	})
}

// testParquetTail reads a file the way a Parquet reader does: the last 8 bytes
// give the footer's length and magic, then the footer, then a column chunk.
func testParquetTail(t *testing.T, s *store.Store) {
	body := payload(8, 300_000)
	footer := payload(9, 1234)
	var buf bytes.Buffer
	buf.WriteString("PAR1")
	buf.Write(body)
	buf.Write(footer)
	binary.Write(&buf, binary.LittleEndian, uint32(len(footer)))
	buf.WriteString("PAR1")
	mustWrite(t, s, "datasets/demo/shard-00000.parquet", buf.Bytes())

	f, err := s.OpenFile(t.Context(), "datasets/demo/shard-00000.parquet")
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	size := f.Size()
	if size != int64(buf.Len()) {
		t.Fatalf("Size = %d, want %d", size, buf.Len())
	}
	tail := make([]byte, 8)
	if n, err := f.ReadAt(tail, size-8); n != 8 || (err != nil && err != io.EOF) {
		t.Fatalf("tail ReadAt = %d, %v", n, err)
	}
	if string(tail[4:]) != "PAR1" {
		t.Fatalf("tail magic = %q", tail[4:])
	}
	flen := int64(binary.LittleEndian.Uint32(tail[:4]))
	gotFooter := make([]byte, flen)
	if n, err := f.ReadAt(gotFooter, size-8-flen); n != int(flen) || err != nil {
		t.Fatalf("footer ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(gotFooter, footer) {
		t.Fatal("footer bytes differ")
	}
	chunk := make([]byte, 4096)
	if n, err := f.ReadAt(chunk, 4+150_000); n != len(chunk) || err != nil {
		t.Fatalf("column chunk ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(chunk, body[150_000:150_000+4096]) {
		t.Fatal("column chunk bytes differ")
	}
}

func testConcurrentReadAt(t *testing.T, s *store.Store) {
	data := payload(10, 1<<20)
	mustWrite(t, s, "f", data)
	f, err := s.OpenFile(t.Context(), "f")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			off := int64(g * 65536)
			p := make([]byte, 65536)
			n, err := f.ReadAt(p, off)
			if err != nil && err != io.EOF {
				errs <- fmt.Errorf("ReadAt at %d: %w", off, err)
				return
			}
			if n != len(p) || !bytes.Equal(p, data[off:off+65536]) {
				errs <- fmt.Errorf("ReadAt at %d: wrong bytes (n=%d)", off, n)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testLarge(t *testing.T, s *store.Store) {
	const size = 20 << 20
	const chunk = 1 << 20
	want := sha256.New()
	err := s.Write(t.Context(), "large.bin", func(w io.Writer) error {
		for i := range size / chunk {
			b := payload(uint64(100+i), chunk)
			want.Write(b)
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Write 20 MiB: %v", err)
	}
	o, err := s.Stat(t.Context(), "large.bin")
	if err != nil || o.Size != size {
		t.Fatalf("Stat = %+v, %v; want size %d", o, err, size)
	}
	r, err := s.NewReader(t.Context(), "large.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := sha256.New()
	n, err := io.CopyBuffer(got, r, make([]byte, 64<<10))
	if err != nil || n != size {
		t.Fatalf("streamed %d bytes, %v; want %d", n, err, size)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("streamed content differs from what was written")
	}
	f, err := s.OpenFile(t.Context(), "large.bin")
	if err != nil {
		t.Fatal(err)
	}
	last := payload(uint64(100+size/chunk-1), chunk)
	p := make([]byte, 100)
	if n, err := f.ReadAt(p, size-100); n != 100 || (err != nil && err != io.EOF) || !bytes.Equal(p, last[chunk-100:]) {
		t.Fatalf("ReadAt of the tail = %d, %v", n, err)
	}
}

func testETag(t *testing.T, s *store.Store) {
	seen := map[string]int{}
	// Same-size versions written back to back: a tag built from the
	// modification time and size alone cannot tell them apart.
	for i := range 6 {
		mustWrite(t, s, "e", payload(uint64(20+i), 64))
		a, err := s.Stat(t.Context(), "e")
		if err != nil {
			t.Fatal(err)
		}
		if a.ETag == "" {
			t.Fatal("Stat returned an empty ETag")
		}
		b, err := s.Stat(t.Context(), "e")
		if err != nil {
			t.Fatal(err)
		}
		if a.ETag != b.ETag {
			t.Fatalf("ETag changed without a write: %s then %s", a.ETag, b.ETag)
		}
		if prev, ok := seen[a.ETag]; ok {
			t.Fatalf("version %d has the ETag %s of version %d", i, a.ETag, prev)
		}
		seen[a.ETag] = i
	}
	// Versions written with no Stat between them.
	for i := range 20 {
		a, err := s.Stat(t.Context(), "e")
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, s, "e", payload(uint64(40+2*i), 64))
		mustWrite(t, s, "e", payload(uint64(41+2*i), 64))
		b, err := s.Stat(t.Context(), "e")
		if err != nil {
			t.Fatal(err)
		}
		if a.ETag == b.ETag {
			t.Fatalf("round %d: ETag %s did not change across two writes", i, a.ETag)
		}
	}
}

func testConcurrentWriters(t *testing.T, s *store.Store) {
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if err := s.WriteAll(t.Context(), fmt.Sprintf("c/%02d", i), payload(uint64(200+i), 10_000+i)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	objs := mustList(t, s, "c/")
	if len(objs) != n {
		t.Fatalf("List = %q, want %d objects", keys(objs), n)
	}
	for i := range n {
		if got := mustRead(t, s, fmt.Sprintf("c/%02d", i)); !bytes.Equal(got, payload(uint64(200+i), 10_000+i)) {
			t.Errorf("c/%02d holds the wrong bytes", i)
		}
	}
}

func testConcurrentWritersSameKey(t *testing.T, s *store.Store) {
	const n = 8
	versions := make([][]byte, n)
	for i := range versions {
		versions[i] = payload(uint64(300+i), 200_000)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if err := s.WriteAll(t.Context(), "same", versions[i]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := mustRead(t, s, "same")
	if !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(v, got) }) {
		t.Fatal("concurrent writers to one key left a mix of versions")
	}
	if objs := mustList(t, s, ""); len(objs) != 1 {
		t.Fatalf("List = %q, want the one object", keys(objs))
	}
}

// testKeyUnderAnObject: S3 holds "x" and "x/y" side by side; a file system
// cannot. A backend either stores both or refuses the second write cleanly,
// leaving the first object unchanged and nothing else behind.
func testKeyUnderAnObject(t *testing.T, s *store.Store) {
	cases := []struct{ first, second string }{
		{"x", "x/y"},
		{"p/q", "p"},
	}
	for _, c := range cases {
		t.Run(c.first+" then "+c.second, func(t *testing.T) {
			mustWrite(t, s, c.first, []byte("first"))
			err := s.Write(t.Context(), c.second, func(w io.Writer) error {
				_, err := w.Write([]byte("second"))
				return err
			})
			if got := string(mustRead(t, s, c.first)); got != "first" {
				t.Fatalf("%q = %q after writing %q, want %q", c.first, got, c.second, "first")
			}
			want := []string{c.first}
			if err == nil {
				if got := string(mustRead(t, s, c.second)); got != "second" {
					t.Fatalf("%q = %q, want %q", c.second, got, "second")
				}
				want = append(want, c.second)
				slices.Sort(want)
			}
			if got := keys(mustList(t, s, "")); !slices.Equal(got, want) {
				t.Fatalf("List = %q, want %q (second write error: %v)", got, want, err)
			}
			for _, k := range want {
				if err := s.Delete(t.Context(), k); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// testReadDuringOverwrite: while one goroutine replaces an object again and
// again, every read and stat of it succeeds and sees one whole version (a
// manifest rewritten while a child reads it).
func testReadDuringOverwrite(t *testing.T, s *store.Store) {
	ctx := context.Background()
	version := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 1000+i%7) }
	if err := s.WriteAll(ctx, "m.json", version(0)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= 100; i++ {
			if err := s.WriteAll(ctx, "m.json", version(i)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		data, err := s.ReadAll(ctx, "m.json")
		if err != nil {
			t.Fatalf("read during overwrite: %v", err)
		}
		if len(data) < 1000 || !bytes.Equal(data, bytes.Repeat(data[:1], len(data))) {
			t.Fatalf("read during overwrite saw a torn version of %d bytes", len(data))
		}
		if _, err := s.Stat(ctx, "m.json"); err != nil {
			t.Fatalf("stat during overwrite: %v", err)
		}
	}
}

// testListDuringWrites lists, and lists directories, while other objects
// under the same prefix are written, overwritten and deleted: every listing
// succeeds and holds the objects that stay put the whole time. (A file store
// writes through a temporary file renamed into place, so entries come and go
// under a listing's walk.)
func testListDuringWrites(t *testing.T, s *store.Store) {
	ctx := t.Context()
	steady := []string{"w/a/keep", "w/b/keep", "w/keep"}
	for i, k := range steady {
		mustWrite(t, s, k, payload(uint64(400+i), 100))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("w/%c/churn-%d-%d", 'a'+byte(i%3), g, i%4)
				if err := s.WriteAll(ctx, k, payload(uint64(i), 64)); err != nil {
					t.Errorf("write %s: %v", k, err)
					return
				}
				if i%2 == 1 {
					if err := s.Delete(ctx, k); err != nil && !errors.Is(err, store.ErrNotExist) {
						t.Errorf("delete %s: %v", k, err)
						return
					}
				}
				// A busy server's pace, not a tight loop that leaves a
				// listing no moment between two writes.
				time.Sleep(200 * time.Microsecond)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	// 300 rounds catch a file store's race within a few dozen; a remote
	// store's rounds are slower, so they stop after a few seconds.
	until := time.Now().Add(3 * time.Second)
	for i := 0; i < 300 && time.Now().Before(until); i++ {
		objs, err := s.List(ctx, "w/")
		if err != nil {
			t.Fatalf("List during writes, round %d: %v", i, err)
		}
		got := map[string]bool{}
		for _, o := range objs {
			got[o.Key] = true
		}
		for _, k := range steady {
			if !got[k] {
				t.Fatalf("List during writes, round %d: %s missing from %q", i, k, keys(objs))
			}
		}
		dirs, err := s.ListDirs(ctx, "w/")
		if err != nil {
			t.Fatalf("ListDirs during writes, round %d: %v", i, err)
		}
		if !slices.Contains(dirs, "a") || !slices.Contains(dirs, "b") {
			t.Fatalf("ListDirs during writes, round %d: %q lacks a or b", i, dirs)
		}
	}
}
