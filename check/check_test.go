package check_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/check"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// TestCheckReportsAndRepairs damages a store in every way check knows (a
// truncated manifest, a truncated dataset index, an orphaned part, the
// objects of a job with neither manifest nor request, a stale temporary
// file), checks that a check reports each and changes nothing, that a repair
// fixes each, and that a second check finds a clean store.
func TestCheckReportsAndRepairs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat := dataset.NewCatalog(st)
	if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: 2, Bytes: 100 << 10, Seconds: 4}); err != nil {
		t.Fatal(err)
	}
	fns := analysis.Builtins()
	w := &batch.Worker{Store: st, Functions: fns}
	mg := batch.NewManager(cat, fns, local.New(w.RunShard, 2, nil), nil)
	m, err := mg.Submit(ctx, batch.SubmitRequest{Function: "psd", Dataset: "demo", Params: json.RawMessage(`{"fs": 250}`)})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if s, _ := mg.Status(m.JobID); s.State.Terminal() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("job did not end")
		}
	}
	mg.Close()

	halve := func(key string) {
		data, err := st.ReadAll(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.WriteAll(ctx, key, data[:len(data)/2]); err != nil {
			t.Fatal(err)
		}
	}
	halve(batch.ManifestKey(m.JobID))
	halve(dataset.Prefix + "demo/" + dataset.IndexFile)
	orphanPart := batch.PartsPrefix(m.JobID) + "part-99999.arrow"
	noJob := "jobs/20200101T000000000Z-abcdef/parts/part-00000.arrow"
	for _, k := range []string{orphanPart, noJob} {
		if err := st.WriteAll(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	temp := filepath.Join(dir, "jobs", m.JobID, "manifest.json.1a2b3c.tmp")
	if err := os.WriteFile(temp, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(temp, old, old); err != nil {
		t.Fatal(err)
	}

	want := map[string]string{
		batch.ManifestKey(m.JobID):                   "damaged",
		dataset.Prefix + "demo/" + dataset.IndexFile: "damaged",
		orphanPart: "orphan",
		noJob:      "orphan",
		"jobs/" + m.JobID + "/manifest.json.1a2b3c.tmp": "stale-temp",
	}
	r, err := check.Run(ctx, st, check.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range r.Problems {
		got[p.Key] = p.Kind
		if p.Repaired != "" {
			t.Errorf("a check without repair repaired %s", p)
		}
	}
	for k, kind := range want {
		if got[k] != kind {
			t.Errorf("check: %s is %q, want %q (report: %v)", k, got[k], kind, r.Problems)
		}
	}
	if len(got) != len(want) || r.Unrepaired() != len(want) {
		t.Errorf("check found %v, want exactly %v", got, want)
	}
	if _, err := os.Stat(temp); err != nil {
		t.Errorf("a check without repair removed the temporary file: %v", err)
	}

	r, err = check.Run(ctx, st, check.Options{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Unrepaired() != 0 || len(r.Problems) != len(want) {
		t.Fatalf("repair left %d of %d problems: %v", r.Unrepaired(), len(r.Problems), r.Problems)
	}
	r, err = check.Run(ctx, st, check.Options{})
	if err != nil || len(r.Problems) != 0 {
		t.Fatalf("after the repair: %v, %v; want a clean store", r.Problems, err)
	}
	if !strings.Contains(r.Summary(), "no problems") {
		t.Errorf("summary %q", r.Summary())
	}
	rebuilt, err := batch.ReadManifest(ctx, st, m.JobID)
	if err != nil || rebuilt.State != batch.StateSucceeded {
		t.Fatalf("repaired manifest: %v, %v; want SUCCEEDED", rebuilt, err)
	}
	ds, err := cat.Get(ctx, "demo")
	if err != nil || ds.Rows() <= 0 {
		t.Fatalf("repaired dataset: %v, %v", ds, err)
	}
}
