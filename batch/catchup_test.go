package batch_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/internal/backoff"
	"github.com/flightbatch/flightbatch/store"
)

// TestRestartBetweenProgressWrites stops a manager as a crash would, while
// the store's manifest lags the job's progress (written every SaveInterval,
// here an hour), and checks that a new manager over the same store finds
// every stored part done and every failed attempt counted, runs only what
// is left, and ends the job as it would have ended: a shard that spent its
// attempts before the crash stays failed and runs no more, the attempts of
// a shard retried after it continue from those recorded (no record
// overwritten), and no finished part is written again.
func TestRestartBetweenProgressWrites(t *testing.T) {
	ctx := context.Background()
	st := fileStore(t)
	cat := dataset.NewCatalog(st)
	if err := dataset.GenerateDemo(ctx, cat, "eight", dataset.DemoOptions{Shards: 8, Bytes: 200 << 10, Seconds: 10}); err != nil {
		t.Fatal(err)
	}
	const (
		slow   = "part-00001" // running at the crash
		flaky  = "part-00002" // failed once, then succeeded
		broken = "part-00003" // failed every attempt
	)
	fault, err := batch.ParseFaults(slow + ":sleep=600," + flaky + ":1," + broken + ":always")
	if err != nil {
		t.Fatal(err)
	}
	fns := analysis.Builtins()
	quick := &local.Options{RetryWait: backoff.Policy{Initial: time.Millisecond, Max: time.Millisecond}}
	w1 := &batch.Worker{Store: st, Functions: fns, Fault: fault, Log: quiet}
	exec1 := local.New(w1.RunShard, 2, quick)
	mg1 := batch.NewManager(cat, fns, exec1, &batch.Options{Log: quiet, MaxAttempts: 2, SaveInterval: time.Hour})
	if err := mg1.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mg1.Close)
	job := submit(t, mg1, "eight", `{"fs": 250}`, false).JobID

	// In memory, every shard but the slow one has ended.
	shardOf := func(m *batch.Manifest, name string) batch.ShardRecord { return m.Shards[shardIndex(t, m, name)] }
	mem := waitFor(t, mg1, job, func(m *batch.Manifest) bool {
		c := m.Counts()
		return c.Succeeded == 6 && c.Failed == 1 && shardOf(m, slow).State == batch.ShardRunning
	})
	if s := shardOf(mem, broken); s.Attempts != 2 || len(s.Errors) != 2 {
		t.Fatalf("before the crash, %s has %d attempts and %d errors; want 2 and 2", broken, s.Attempts, len(s.Errors))
	}
	// The store's manifest lags: the job's progress was never written.
	stored, err := batch.ReadManifest(ctx, st, job)
	if err != nil {
		t.Fatal(err)
	}
	if c := stored.Counts(); stored.State != batch.StateRunning || c.Succeeded != 0 || c.Failed != 0 {
		t.Fatalf("the store's manifest is %s with %+v; want RUNNING with no shard ended (progress not yet written)", stored.State, c)
	}
	parts := map[string]store.Object{}
	for _, s := range mem.Shards {
		if s.State == batch.ShardSucceeded {
			o, err := st.Stat(ctx, batch.PartKey(job, s.Name))
			if err != nil {
				t.Fatal(err)
			}
			parts[s.Name] = o
		}
	}
	if recs := attemptRecords(t, st, job); len(recs) != 3 {
		t.Fatalf("before the crash, %d attempt records; want 3 (%s once, %s twice)", len(recs), flaky, broken)
	}

	// The crash: the manager stops without writing, its children die (the
	// slow one's attempt is recorded as failed, as its worker records it).
	mg1.Abandon()
	if err := exec1.Cancel(ctx, mem.Handle); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if p, err := exec1.Poll(ctx, mem.Handle); errors.Is(err, batch.ErrNotRunning) || (err == nil && p.Done) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first manager's children did not stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, err := batch.ReadManifest(ctx, st, job); err != nil || got.Counts().Succeeded != 0 {
		t.Fatalf("the abandoned manager wrote the job's progress (%v)", err)
	}
	records := attemptRecords(t, st, job) // with the slow shard's cancelled attempt

	var mu sync.Mutex
	runs := map[string]int{}
	w2 := &batch.Worker{Store: st, Functions: fns, Log: quiet}
	exec2 := local.New(func(ctx context.Context, jobID string, shard, attempt int) error {
		mu.Lock()
		runs[mem.Shards[shard].Name]++
		mu.Unlock()
		return w2.RunShard(ctx, jobID, shard, attempt)
	}, 2, quick)
	mg2 := batch.NewManager(cat, fns, exec2, &batch.Options{Log: quiet, MaxAttempts: 2})
	if err := mg2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mg2.Close)
	got := waitFor(t, mg2, job, terminal)

	if got.State != batch.StateFailed || !strings.Contains(got.Error, broken) {
		t.Errorf("the job ended %s (%s); want FAILED for %s", got.State, got.Error, broken)
	}
	mu.Lock()
	if len(runs) != 1 || runs[slow] != 1 {
		t.Errorf("after the restart, children ran %v; want %s once only", runs, slow)
	}
	mu.Unlock()
	want := map[string]struct {
		state    batch.ShardState
		attempts int
		errors   []int
	}{
		slow:   {batch.ShardSucceeded, 2, []int{1}},
		flaky:  {batch.ShardSucceeded, 2, []int{1}},
		broken: {batch.ShardFailed, 2, []int{1, 2}},
	}
	dones := map[int]bool{}
	for _, s := range got.Shards {
		w, ok := want[s.Name]
		if !ok {
			w.state, w.attempts = batch.ShardSucceeded, 1
		}
		var errs []int
		for _, e := range s.Errors {
			errs = append(errs, e.Attempt)
		}
		if s.State != w.state || s.Attempts != w.attempts || fmt.Sprint(errs) != fmt.Sprint(w.errors) {
			t.Errorf("shard %s: %s after %d attempts, failed attempts %v; want %s after %d, failed %v", s.Name, s.State, s.Attempts, errs, w.state, w.attempts, w.errors)
		}
		if s.State == batch.ShardSucceeded {
			if s.Done < 1 || dones[s.Done] {
				t.Errorf("shard %s: finish number %d repeated or missing", s.Name, s.Done)
			}
			dones[s.Done] = true
			if s.Rows == nil || s.Bytes == 0 {
				t.Errorf("shard %s: rows %v, bytes %d; want both known", s.Name, s.Rows, s.Bytes)
			}
		}
	}
	for name, before := range parts {
		o, err := st.Stat(ctx, batch.PartKey(job, name))
		if err != nil || !o.ModTime.Equal(before.ModTime) || o.Size != before.Size {
			t.Errorf("part %s was written again after the restart (%v)", name, err)
		}
	}
	after := attemptRecords(t, st, job)
	for key, rec := range records {
		if after[key] != rec {
			t.Errorf("attempt record %s changed after the restart: %q, was %q", key, after[key], rec)
		}
	}
	if len(after) != len(records) {
		t.Errorf("attempt records after the restart: %d, want the %d from before it", len(after), len(records))
	}
	final, err := batch.ReadManifest(ctx, st, job)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != got.State || final.Counts() != got.Counts() {
		t.Errorf("the store's manifest is %s %+v; the manager's %s %+v", final.State, final.Counts(), got.State, got.Counts())
	}
}

func shardIndex(t *testing.T, m *batch.Manifest, name string) int {
	t.Helper()
	for i, s := range m.Shards {
		if s.Name == name {
			return i
		}
	}
	t.Fatalf("job %s has no shard %s", m.JobID, name)
	return -1
}

// attemptRecords returns the job's attempt records, by key.
func attemptRecords(t *testing.T, st *store.Store, job string) map[string]string {
	t.Helper()
	ctx := context.Background()
	objs, err := st.List(ctx, batch.AttemptsPrefix(job))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var keys []string
	for _, o := range objs {
		data, err := st.ReadAll(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		out[o.Key] = string(data)
		keys = append(keys, o.Key)
	}
	sort.Strings(keys)
	t.Logf("attempt records: %v", keys)
	return out
}

// TestProgressWritesCoalesced: a job whose children are reported one at a
// time is written to the store a bounded number of times (its start and its
// end) when its progress is written every hour, and the store's final
// manifest is the manager's; with a short interval, the store catches up
// with a running job's progress.
func TestProgressWritesCoalesced(t *testing.T) {
	const n = 2000
	for _, changes := range []bool{false, true} {
		c := runReportedJob(t, n, 1, true, changes, batch.Options{SaveInterval: time.Hour})
		t.Log(c)
		if c.polls < n || c.writes > 3 {
			t.Errorf("%d shards reported in %d polls (changes only: %v) made %d manifest writes; want at most 3 (start and end)", n, c.polls, changes, c.writes)
		}
	}
}

// TestProgressReachesTheStore: the progress of a running job reaches the
// store's manifest within a few SaveIntervals, without any other change of
// the job, while the manager's state has it at once.
func TestProgressReachesTheStore(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	m := &batch.Manifest{JobID: batch.NewJobID(at), Function: "psd", Dataset: "big", DatasetVersion: "v1",
		Params: []byte(`{"fs":250}`), State: batch.StateSubmitted, MaxAttempts: 3, Executor: "reporting", CreatedAt: at}
	for i := range 10 {
		m.Shards = append(m.Shards, batch.ShardRecord{Name: fmt.Sprintf("part-%02d", i), Input: "in", Format: dataset.FormatArrow, State: batch.ShardPending})
	}
	if err := batch.SaveRequest(ctx, st, m); err != nil {
		t.Fatal(err)
	}
	if err := batch.SaveManifest(ctx, st, m); err != nil {
		t.Fatal(err)
	}
	exec := &reportingExecutor{st: st, step: 1, stopAt: 6}
	mg := batch.NewManager(dataset.NewCatalog(st), analysis.Builtins(), exec, &batch.Options{Log: quiet, SaveInterval: 20 * time.Millisecond})
	defer mg.Close()
	if err := mg.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, mg, m.JobID, func(m *batch.Manifest) bool { return m.Counts().Succeeded == 6 })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got, err := batch.ReadManifest(ctx, st, m.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if c := got.Counts(); c.Succeeded == 6 {
			if got.State != batch.StateRunning {
				t.Fatalf("the stored manifest is %s; want RUNNING", got.State)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the store's manifest has %+v; want the 6 succeeded shards", got.Counts())
		}
	}
}
