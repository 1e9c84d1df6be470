package batch_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

var quiet = slog.New(slog.DiscardHandler)

type rig struct {
	st   *store.Store
	cat  *dataset.Catalog
	exec *local.Executor
	mg   *batch.Manager
}

// newRig starts a manager with a local executor over st (a demo dataset is
// written if absent).
func newRig(t *testing.T, st *store.Store, faults string) *rig {
	t.Helper()
	ctx := context.Background()
	cat := dataset.NewCatalog(st)
	if _, err := cat.Get(ctx, "demo"); errors.Is(err, dataset.ErrNotFound) {
		if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: 3, Bytes: 300 << 10, Seconds: 10}); err != nil {
			t.Fatal(err)
		}
	}
	fault, err := batch.ParseFaults(faults)
	if err != nil {
		t.Fatal(err)
	}
	fns := analysis.Builtins()
	w := &batch.Worker{Store: st, Functions: fns, Fault: fault, Log: quiet}
	exec := local.New(w.RunShard, 2, nil)
	mg := batch.NewManager(cat, fns, exec, &batch.Options{Log: quiet})
	if err := mg.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mg.Close)
	return &rig{st: st, cat: cat, exec: exec, mg: mg}
}

func fileStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func waitFor(t *testing.T, mg *batch.Manager, id string, ok func(*batch.Manifest) bool) *batch.Manifest {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := mg.Status(id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: condition not met; state %s, shards %+v", id, m.State, m.Counts())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func terminal(m *batch.Manifest) bool { return m.State.Terminal() }

func submit(t *testing.T, mg *batch.Manager, ds, params string, reuse bool) *batch.Manifest {
	t.Helper()
	m, err := mg.Submit(context.Background(), batch.SubmitRequest{Function: "psd", Dataset: ds, Params: json.RawMessage(params), Reuse: reuse})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return m
}

// TestRestartResumes stops a manager mid-job, as a crash would, and checks that
// a new one over the same store finishes the job, keeping the finished parts.
func TestRestartResumes(t *testing.T) {
	st := fileStore(t)
	r1 := newRig(t, st, "part-00001:sleep=60")
	m := submit(t, r1.mg, "demo", `{"fs": 250}`, false)
	m = waitFor(t, r1.mg, m.JobID, func(m *batch.Manifest) bool { return m.Counts().Succeeded == 2 })
	ctx := context.Background()
	before := map[string]store.Object{}
	for _, s := range m.Shards {
		if s.State == batch.ShardSucceeded {
			o, err := st.Stat(ctx, batch.PartKey(m.JobID, s.Name))
			if err != nil {
				t.Fatal(err)
			}
			before[s.Name] = o
		}
	}
	// The crash: the manager stops following and its children die (in that
	// order: a manager still following would see its children end,
	// cancelled, and record the job's end).
	r1.mg.Close()
	_ = r1.exec.Cancel(ctx, m.Handle)

	r2 := newRig(t, st, "")
	got := waitFor(t, r2.mg, m.JobID, terminal)
	if got.State != batch.StateSucceeded {
		t.Fatalf("resumed job ended %s: %s", got.State, got.Error)
	}
	for name, o := range before {
		now, err := st.Stat(ctx, batch.PartKey(m.JobID, name))
		if err != nil {
			t.Fatal(err)
		}
		if now.ETag != o.ETag {
			t.Errorf("part %s was rewritten after the restart", name)
		}
	}
	rr, err := r2.mg.OpenResult(ctx, m.JobID, "")
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var rows int64
	for rr.Next() {
		rows += rr.RecordBatch().NumRows()
	}
	ds, _ := r2.cat.Get(ctx, "demo")
	if rows != ds.Rows() {
		t.Fatalf("result has %d rows, the dataset %d", rows, ds.Rows())
	}
}

func TestReuseAndHistory(t *testing.T) {
	r := newRig(t, fileStore(t), "")
	a := waitFor(t, r.mg, submit(t, r.mg, "demo", `{"fs": 250, "nperseg": 128}`, false).JobID, terminal)
	tests := []struct {
		name   string
		params string
		reuse  bool
		same   bool
	}{
		{"same request reused", `{"nperseg": 128, "fs": 250}`, true, true},
		{"same request, no reuse", `{"fs": 250, "nperseg": 128}`, false, false},
		{"other params", `{"fs": 250, "nperseg": 256}`, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := submit(t, r.mg, "demo", tc.params, tc.reuse)
			if (b.JobID == a.JobID) != tc.same {
				t.Fatalf("got job %s (%s) after %s; reused: %v, want %v", b.JobID, b.DatasetVersion, a.JobID, b.JobID == a.JobID, tc.same)
			}
			waitFor(t, r.mg, b.JobID, terminal)
		})
	}
	hist := r.mg.List("demo")
	if len(hist) != 3 {
		t.Fatalf("history has %d jobs, want 3", len(hist))
	}
	for i := 1; i < len(hist); i++ {
		if hist[i-1].JobID >= hist[i].JobID || hist[i-1].CreatedAt.After(hist[i].CreatedAt) {
			t.Fatalf("history not oldest first: %s then %s", hist[i-1].JobID, hist[i].JobID)
		}
	}
	if len(r.mg.List("other")) != 0 {
		t.Fatal("a dataset filter let other jobs through")
	}
}

// TestChainedInput checks how a job's result is resolved as another job's input.
func TestChainedInput(t *testing.T) {
	r := newRig(t, fileStore(t), "*:sleep=60")
	running := submit(t, r.mg, "demo", `{"fs": 250}`, false)
	tests := []struct {
		name    string
		dataset string
		want    error
	}{
		{"a running job", "jobs/" + running.JobID, batch.ErrNotFinished},
		{"an unknown job", "jobs/20200101T000000000Z-000000", batch.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.mg.Submit(context.Background(), batch.SubmitRequest{Function: "psd", Dataset: tc.dataset, Params: json.RawMessage(`{"fs": 1, "column": "psd"}`)})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := r.mg.Cancel(context.Background(), running.JobID); err != nil {
		t.Fatal(err)
	}
	if m := waitFor(t, r.mg, running.JobID, terminal); m.State != batch.StateCancelled {
		t.Fatalf("cancelled job ended %s", m.State)
	}
}

// hourlyPolls is a local executor that asks to be polled once an hour: a job
// on it ends in time only if the manager polls when the executor tells of a
// change (batch.Notifier), which the embedded executor does.
type hourlyPolls struct{ *local.Executor }

func (hourlyPolls) PollInterval() time.Duration { return time.Hour }

// TestNotifiedChangesArePolled: the manager follows a job's children as the
// executor tells of their changes, not only at its poll interval, so a job
// is recorded as ended as soon as its last child ends.
func TestNotifiedChangesArePolled(t *testing.T) {
	st := fileStore(t)
	r := newRig(t, st, "")
	fns := analysis.Builtins()
	w := &batch.Worker{Store: st, Functions: fns, Log: quiet}
	mg := batch.NewManager(r.cat, fns, hourlyPolls{local.New(w.RunShard, 2, nil)}, &batch.Options{Log: quiet})
	t.Cleanup(mg.Close)
	m := waitFor(t, mg, submit(t, mg, "demo", `{"fs": 250}`, false).JobID, terminal)
	if m.State != batch.StateSucceeded || m.Counts().Succeeded != len(m.Shards) {
		t.Fatalf("job ended %s with %+v: %s", m.State, m.Counts(), m.Error)
	}
}
