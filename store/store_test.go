package store_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/flightbatch/flightbatch/store"
	"github.com/flightbatch/flightbatch/store/storetest"
)

func TestConformanceMem(t *testing.T) {
	storetest.RunConformanceTests(t, func(t *testing.T) *store.Store {
		return openForTest(t, "mem://")
	})
}

func TestConformanceFile(t *testing.T) {
	storetest.RunConformanceTests(t, func(t *testing.T) *store.Store {
		return openForTest(t, "file://"+t.TempDir())
	})
}

func openForTest(t *testing.T, url string) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close(%q): %v", url, err)
		}
	})
	return s
}

// TestFileETagCoarseClock: two same-size versions with the same modification
// time (a clock that ticks every few milliseconds gives them that) have
// different ETags.
func TestFileETagCoarseClock(t *testing.T) {
	dir := t.TempDir()
	s := openForTest(t, "file://"+dir)
	ctx := t.Context()
	if err := s.WriteAll(ctx, "k", []byte("version A")); err != nil {
		t.Fatal(err)
	}
	a, err := s.Stat(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"version B", "version C"} {
		if err := s.WriteAll(ctx, "k", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(filepath.Join(dir, "k"), a.ModTime, a.ModTime); err != nil {
		t.Fatal(err)
	}
	c, err := s.Stat(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if !c.ModTime.Equal(a.ModTime) || c.Size != a.Size {
		t.Fatalf("setup: version C has time %v size %d, want A's %v %d", c.ModTime, c.Size, a.ModTime, a.Size)
	}
	if c.ETag == a.ETag {
		t.Fatalf("versions A and C share the ETag %s", a.ETag)
	}
}

// TestFileAbortedWritesLeaveNoFiles: a write that fails, is cancelled or
// panics leaves no file behind in the directory, temporary or not.
func TestFileAbortedWritesLeaveNoFiles(t *testing.T) {
	dir := t.TempDir()
	s := openForTest(t, "file://"+dir)
	errFill := errors.New("fill failed")
	aborts := map[string]func(w io.Writer) error{
		"error": func(w io.Writer) error {
			w.Write([]byte("partial"))
			return errFill
		},
		"panic": func(w io.Writer) error {
			w.Write([]byte("partial"))
			panic("fill panicked")
		},
	}
	for name, fill := range aborts {
		t.Run(name, func(t *testing.T) {
			func() {
				defer func() { _ = recover() }()
				if err := s.Write(t.Context(), "d/obj", fill); err == nil {
					t.Error("Write succeeded")
				}
			}()
			var files []string
			filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, path)
				}
				return nil
			})
			if len(files) != 0 {
				t.Fatalf("files left behind: %q", files)
			}
		})
	}
}

// TestFileTempNamesReserved: in a file store only names shaped like a
// temporary file (KEY.HEX.tmp) are hidden from List; other keys ending in
// ".tmp" are objects like any other.
func TestFileTempNamesReserved(t *testing.T) {
	dir := t.TempDir()
	s := openForTest(t, "file://"+dir)
	if err := s.WriteAll(t.Context(), "a.tmp", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.18a2f3c4d5e6f7a8.tmp"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Key != "a.tmp" {
		t.Fatalf("List = %+v, want only a.tmp", objs)
	}
}
