package dataset

import (
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/store"
)

// TestWriterBoundsShards: a writer with MaxShards refuses to cut more shards
// than that (an upload of a million rows with a shard size of a byte must not
// become a million files and a job of a million children), and leaves
// nothing when aborted.
func TestWriterBoundsShards(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat := NewCatalog(st)
	for _, tc := range []struct {
		name string
		opts WriterOptions
	}{
		{"by size", WriterOptions{ShardBytes: 1, MaxShards: 3}},
		{"by rows", WriterOptions{ShardBytes: 1 << 40, ShardRows: 1, MaxShards: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := cat.NewWriter(ctx, "bounded", DemoSchema, &tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var werr error
			for i := 0; i < 5 && werr == nil; i++ {
				rec := signalBatch(t, memory.DefaultAllocator, i, 1, 10)
				werr = w.Write(rec)
				rec.Release()
			}
			if !errors.Is(werr, ErrInvalid) || !strings.Contains(werr.Error(), "3 shards") {
				t.Fatalf("writing 5 one-row shards with MaxShards 3: %v, want ErrInvalid naming the bound", werr)
			}
			w.Abort()
			if _, err := cat.Get(ctx, "bounded"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after the refusal: %v, want nothing kept", err)
			}
		})
	}
}

// TestAbortReportsWhatItCouldNotDelete: an upload aborted while the store
// fails says so (the server logs it) instead of leaving its objects behind
// silently; once the store answers again, an abort leaves nothing.
func TestAbortReportsWhatItCouldNotDelete(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat := NewCatalog(st)
	w, err := cat.NewWriter(ctx, "cut", DemoSchema, &WriterOptions{ShardBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		rec := signalBatch(t, memory.DefaultAllocator, i, 1, 10)
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	failing, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	failing.Close() // every request now fails
	w.c = NewCatalog(failing)
	if err := w.Abort(); err == nil || !strings.Contains(err.Error(), "cut") {
		t.Fatalf("abort over a failing store: %v, want an error naming the dataset", err)
	}
	w.c = cat
	if err := w.Abort(); err != nil {
		t.Fatalf("abort: %v", err)
	}
	objs, err := st.List(ctx, Prefix+"cut/")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 0 {
		t.Fatalf("%d objects left after the abort, want none: %v", len(objs), objs[0].Key)
	}
}
