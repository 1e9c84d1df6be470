package store

import (
	"bytes"
	"sync"
	"testing"
)

// Reading an object of a file store while it is being replaced gets one
// whole version, never an error: fileblob rewrites the attributes sidecar in
// place and takes the size from a stat made before it opens the file.
func TestFileReadWhileReplaced(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := bytes.Repeat([]byte("x"), 5000)
	if err := s.WriteAll(ctx, "k.json", data); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 1000; i++ {
			if err := s.WriteAll(ctx, "k.json", data[:4000+i%1000]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer wg.Wait()
	for i := 0; i < 1000; i++ {
		got, err := s.ReadAll(ctx, "k.json")
		if err != nil {
			t.Errorf("read %d: %v", i, err)
			return
		}
		if len(got) < 4000 {
			t.Errorf("read %d: %d bytes", i, len(got))
			return
		}
		if _, err := s.Stat(ctx, "k.json"); err != nil {
			t.Errorf("stat %d: %v", i, err)
			return
		}
	}
}
