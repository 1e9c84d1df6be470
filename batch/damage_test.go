package batch_test

import (
	"context"
	"testing"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/store"
)

// truncate cuts a stored object to half its length, as a torn write or a
// damaged disk would.
func truncate(t *testing.T, st *store.Store, key string) {
	t.Helper()
	ctx := context.Background()
	data, err := st.ReadAll(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteAll(ctx, key, data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
}

func resultRows(t *testing.T, r *rig, id string) int64 {
	t.Helper()
	rr, err := r.mg.OpenResult(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var rows int64
	for rr.Next() {
		rows += rr.RecordBatch().NumRows()
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestTruncatedManifestLosesNothing truncates the manifests of a succeeded,
// a failed and a running job: after a restart each job is still there, rebuilt
// from its request and parts; the succeeded one serves every row, the failed
// one is still FAILED (a final state never changes), the running one finishes.
func TestTruncatedManifestLosesNothing(t *testing.T) {
	st := fileStore(t)
	ctx := context.Background()
	r1 := newRig(t, st, "part-00002:always")
	failed := submit(t, r1.mg, "demo", `{"fs": 250}`, false)
	if m := waitFor(t, r1.mg, failed.JobID, terminal); m.State != batch.StateFailed {
		t.Fatalf("job with an always-failing shard ended %s", m.State)
	}
	r1.mg.Close()
	r2 := newRig(t, st, "")
	ok := submit(t, r2.mg, "demo", `{"fs": 250}`, false)
	if m := waitFor(t, r2.mg, ok.JobID, terminal); m.State != batch.StateSucceeded {
		t.Fatalf("job ended %s: %s", m.State, m.Error)
	}
	want := resultRows(t, r2, ok.JobID)
	r2.mg.Close()
	r3 := newRig(t, st, "part-00001:sleep=60")
	running := submit(t, r3.mg, "demo", `{"fs": 250}`, false)
	m := waitFor(t, r3.mg, running.JobID, func(m *batch.Manifest) bool { return m.Counts().Succeeded == 2 })
	// A crash: the manager stops, its children die. In that order: a manager
	// still following would see its children end, cancelled, and record
	// the job's end.
	r3.mg.Close()
	_ = r3.exec.Cancel(ctx, m.Handle)

	for _, id := range []string{failed.JobID, ok.JobID, running.JobID} {
		truncate(t, st, batch.ManifestKey(id))
	}
	r4 := newRig(t, st, "")
	if m, err := r4.mg.Status(failed.JobID); err != nil || m.State != batch.StateFailed {
		t.Errorf("failed job after its manifest was truncated: %v, %v; want FAILED", m, err)
	}
	if m, err := r4.mg.Status(ok.JobID); err != nil || m.State != batch.StateSucceeded {
		t.Fatalf("succeeded job after its manifest was truncated: %v, %v; want SUCCEEDED", m, err)
	}
	if got := resultRows(t, r4, ok.JobID); got != want {
		t.Errorf("rebuilt job serves %d rows, want %d", got, want)
	}
	if m := waitFor(t, r4.mg, running.JobID, terminal); m.State != batch.StateSucceeded {
		t.Errorf("running job after its manifest was truncated ended %s: %s", m.State, m.Error)
	} else if got := resultRows(t, r4, running.JobID); got != want {
		t.Errorf("resumed job serves %d rows, want %d", got, want)
	}
	// The rebuilt manifests were stored.
	for _, id := range []string{failed.JobID, ok.JobID} {
		if _, err := batch.ReadManifest(ctx, st, id); err != nil {
			t.Errorf("job %s: the rebuilt manifest was not saved: %v", id, err)
		}
	}
}

// TestFinalStateNeverChanges stores a job's final state and then a manifest
// that says it still runs (a save that a crash cut short): a restart keeps
// the final state rather than running the job again.
func TestFinalStateNeverChanges(t *testing.T) {
	st := fileStore(t)
	ctx := context.Background()
	r1 := newRig(t, st, "part-00000:always")
	m := submit(t, r1.mg, "demo", `{"fs": 250}`, false)
	final := waitFor(t, r1.mg, m.JobID, terminal)
	r1.mg.Close()
	if final.State != batch.StateFailed {
		t.Fatalf("job ended %s", final.State)
	}
	stale := *final
	stale.State, stale.Error, stale.FinishedAt = batch.StateRunning, "", nil
	if err := batch.SaveManifest(ctx, st, &stale); err != nil {
		t.Fatal(err)
	}
	r2 := newRig(t, st, "")
	got, err := r2.mg.Status(m.JobID)
	if err != nil || got.State != batch.StateFailed || got.Error != final.Error {
		t.Fatalf("after a restart: %+v, %v; want FAILED with %q", got, err, final.Error)
	}
	if again, err := r2.mg.Cancel(ctx, m.JobID); err != nil || again.State != batch.StateFailed {
		t.Errorf("cancel of a failed job: %v, %v", again, err)
	}
}
