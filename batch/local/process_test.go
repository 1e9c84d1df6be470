package local_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/internal/workerbin"
	"github.com/flightbatch/flightbatch/store"
)

// worker is the flightbatch binary the process tests run as children.
var worker string

func TestMain(m *testing.M) { os.Exit(workerbin.Main(m, &worker)) }

var quiet = slog.New(slog.DiscardHandler)

// processRig is a manager whose local executor runs children as worker
// processes over a file store holding a 3-shard demo dataset.
type processRig struct {
	url string
	st  *store.Store
	mg  *batch.Manager
}

func newProcessRig(t *testing.T, url, faults string, memory int64) *processRig {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat := dataset.NewCatalog(st)
	if _, err := cat.Get(ctx, "demo"); err != nil {
		if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: 3, Bytes: 300 << 10, Seconds: 10}); err != nil {
			t.Fatal(err)
		}
	}
	p := &local.Process{
		Command:     []string{worker, "worker", "--log-level", "warn"},
		Store:       st.URL(),
		Env:         []string{"FLIGHTBATCH_FAULTS=" + faults},
		MemoryLimit: memory,
		Stderr:      io.Discard,
	}
	fast := &local.Options{}
	fast.RetryWait.Initial, fast.RetryWait.Max = 10*time.Millisecond, 20*time.Millisecond
	mg := batch.NewManager(cat, analysis.Builtins(), local.New(p.Run, 2, fast), &batch.Options{MaxAttempts: 2, Log: quiet})
	if err := mg.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mg.Close)
	return &processRig{url: url, st: st, mg: mg}
}

func (r *processRig) submit(t *testing.T) string {
	t.Helper()
	m, err := r.mg.Submit(context.Background(), batch.SubmitRequest{Function: "psd", Dataset: "demo", Params: json.RawMessage(`{"fs": 250}`)})
	if err != nil {
		t.Fatal(err)
	}
	return m.JobID
}

func (r *processRig) wait(t *testing.T, id string, timeout time.Duration) *batch.Manifest {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := r.mg.Status(id)
		if err != nil {
			t.Fatal(err)
		}
		if m.State.Terminal() {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %s: %+v", id, m.State, timeout, m.Counts())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProcessChildCrashFailsOnlyItsAttempt runs children that panic, allocate
// without bound and are killed by a signal: each attempt fails with an error
// that says how, the other shards succeed, the test process (the server) is
// unharmed, the job ends FAILED, and a restarted manager leaves it FAILED
// rather than running it again.
func TestProcessChildCrashFailsOnlyItsAttempt(t *testing.T) {
	for _, tt := range []struct {
		fault string
		want  string
	}{
		{"panic", "panic: injected panic"},
		{"oom", "out of memory"},
		{"kill", "killed by signal killed"},
	} {
		t.Run(tt.fault, func(t *testing.T) {
			url := "file://" + t.TempDir()
			r := newProcessRig(t, url, "part-00001:"+tt.fault, 256<<20)
			id := r.submit(t)
			m := r.wait(t, id, 2*time.Minute)
			if m.State != batch.StateFailed {
				t.Fatalf("job %s, want FAILED", m.State)
			}
			for _, s := range m.Shards {
				if s.Name != "part-00001" {
					if s.State != batch.ShardSucceeded {
						t.Errorf("shard %s %s, want SUCCEEDED", s.Name, s.State)
					}
					continue
				}
				if s.State != batch.ShardFailed || s.Attempts != 2 || len(s.Errors) != 2 {
					t.Fatalf("shard %s: %s after %d attempts, errors %+v; want FAILED after 2", s.Name, s.State, s.Attempts, s.Errors)
				}
				for _, e := range s.Errors {
					if !strings.Contains(e.Error, tt.want) {
						t.Errorf("attempt %d: %q, want it to say %q", e.Attempt, e.Error, tt.want)
					}
					// The crashed worker recorded nothing: the store keeps the
					// executor's account of the attempt, as of any failure.
					rec, err := batch.ReadAttemptError(context.Background(), r.st, id, s.Name, e.Attempt)
					if err != nil || rec == nil || !strings.Contains(rec.Error, tt.want) {
						t.Errorf("stored record of attempt %d: %+v, %v; want one saying %q", e.Attempt, rec, err, tt.want)
					}
				}
			}
			// The stored manifest says what the manager reported.
			stored, err := batch.ReadManifest(context.Background(), r.st, id)
			if err != nil || stored.State != batch.StateFailed {
				t.Fatalf("stored manifest: %v, %v; want FAILED", stored, err)
			}
			// A restart finds the job FAILED and does not run it again.
			r.mg.Close()
			again := newProcessRig(t, url, "", 0)
			time.Sleep(500 * time.Millisecond)
			if m, err := again.mg.Status(id); err != nil || m.State != batch.StateFailed || m.Shards[1].Attempts != 2 {
				t.Fatalf("after a restart: %+v, %v; want FAILED, untouched", m, err)
			}
		})
	}
}

// TestProcessChildrenSucceedAndCancel runs a job as worker processes to its
// end, and cancels another whose children sleep: their processes are killed
// and the job ends CANCELLED long before the sleep would end.
func TestProcessChildrenSucceedAndCancel(t *testing.T) {
	r := newProcessRig(t, "file://"+t.TempDir(), "", 256<<20)
	id := r.submit(t)
	if m := r.wait(t, id, 2*time.Minute); m.State != batch.StateSucceeded {
		t.Fatalf("job %s: %s", m.State, m.Error)
	}
	slow := newProcessRig(t, "file://"+t.TempDir(), "*:sleep=120", 0)
	id = slow.submit(t)
	for {
		m, _ := slow.mg.Status(id)
		if m.Counts().Running > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if _, err := slow.mg.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	m := slow.wait(t, id, time.Minute)
	if m.State != batch.StateCancelled {
		t.Fatalf("cancelled job %s", m.State)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("cancel took %s; the children sleep 120 s", d)
	}
}
