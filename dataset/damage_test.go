package dataset_test

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// TestDamagedIndexLosesOnlyRowCounts truncates a dataset's _dataset.json: the
// dataset is still listed and readable from its shards, with row counts
// unknown, and RebuildIndex restores them.
func TestDamagedIndexLosesOnlyRowCounts(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat := dataset.NewCatalog(st)
	if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: 3, Bytes: 200 << 10, Seconds: 4}); err != nil {
		t.Fatal(err)
	}
	before, err := cat.Get(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	key := dataset.Prefix + "demo/" + dataset.IndexFile
	data, err := st.ReadAll(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteAll(ctx, key, data[:len(data)/3]); err != nil {
		t.Fatal(err)
	}
	if problem, err := cat.CheckIndex(ctx, "demo"); err != nil || problem == "" {
		t.Errorf("CheckIndex of a truncated index = %q, %v; want a problem", problem, err)
	}
	names, err := cat.List(ctx)
	if err != nil || len(names) != 1 || names[0] != "demo" {
		t.Fatalf("List with a damaged index = %v, %v; want [demo]", names, err)
	}
	ds, err := cat.Get(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Shards) != len(before.Shards) || ds.Version != before.Version {
		t.Fatalf("damaged index: %d shards, version %s; want %d, %s", len(ds.Shards), ds.Version, len(before.Shards), before.Version)
	}
	var rows int64
	for _, sh := range ds.Shards {
		r, err := cat.OpenShard(ctx, sh, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			rows += r.RecordBatch().NumRows()
		}
		r.Release()
	}
	if rows != before.Rows() {
		t.Errorf("shards read %d rows, want %d", rows, before.Rows())
	}
	if n, err := cat.RebuildIndex(ctx, "demo"); err != nil || n != len(before.Shards) {
		t.Fatalf("RebuildIndex = %d, %v", n, err)
	}
	after, err := cat.Get(ctx, "demo")
	if err != nil || after.Rows() != before.Rows() {
		t.Fatalf("after RebuildIndex: %v rows, %v; want %d", after.Rows(), err, before.Rows())
	}
	if problem, err := cat.CheckIndex(ctx, "demo"); err != nil || problem != "" {
		t.Errorf("CheckIndex after the rebuild = %q, %v", problem, err)
	}
}
