package batch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/internal/backoff"
	"github.com/flightbatch/flightbatch/store"
)

// reportedJob stores a running job of n shards as Submit would and returns
// a manager following it on exec, progress written every interval.
func reportedJob(t *testing.T, st *store.Store, n int, exec batch.Executor, interval time.Duration) (*batch.Manager, *batch.Manifest) {
	t.Helper()
	ctx := context.Background()
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	m := &batch.Manifest{JobID: batch.NewJobID(at), Function: "psd", Dataset: "big", DatasetVersion: "v1",
		Params: json.RawMessage(`{"fs":250}`), State: batch.StateSubmitted, MaxAttempts: 3, Executor: "reporting", CreatedAt: at}
	for i := range n {
		m.Shards = append(m.Shards, batch.ShardRecord{Name: fmt.Sprintf("part-%06d", i), Input: fmt.Sprintf("datasets/big/v1/part-%06d.arrow", i),
			Format: dataset.FormatArrow, InputRows: 1000, State: batch.ShardPending})
	}
	if err := m.SetSchema(arrow.NewSchema([]arrow.Field{{Name: "psd", Type: arrow.PrimitiveTypes.Float64}}, nil)); err != nil {
		t.Fatal(err)
	}
	if err := batch.SaveRequest(ctx, st, m); err != nil {
		t.Fatal(err)
	}
	if err := batch.SaveManifest(ctx, st, m); err != nil {
		t.Fatal(err)
	}
	mg := batch.NewManager(dataset.NewCatalog(st), analysis.Builtins(), exec, &batch.Options{Log: quiet, SaveInterval: interval})
	t.Cleanup(mg.Close)
	if err := mg.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	return mg, m
}

// storedManifest is the job's manifest.json alone, without its progress log.
func storedManifest(t *testing.T, st *store.Store, id string) (*batch.Manifest, int) {
	t.Helper()
	data, err := st.ReadAll(context.Background(), batch.ManifestKey(id))
	if err != nil {
		t.Fatal(err)
	}
	var m batch.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m, len(data)
}

// waitStored waits until the job's stored state (ReadManifest) satisfies ok.
func waitStored(t *testing.T, st *store.Store, id string, ok func(*batch.Manifest) bool) *batch.Manifest {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		m, err := batch.ReadManifest(context.Background(), st, id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the job's stored state is %s %+v", m.State, m.Counts())
		}
	}
}

func shardsJSON(t *testing.T, m *batch.Manifest) string {
	t.Helper()
	data, err := json.Marshal(m.Shards)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestProgressWritesCostWhatChanged: while a job of 5,000 shards runs, 40
// of its shards end; its progress reaches the store, written every 10 ms,
// in writes of about what changed (the records of those 40 shards), not by
// rewriting the manifest of 5,000 shards, which stays as the job's start
// wrote it. The stored state, manifest then progress log, is the manager's.
func TestProgressWritesCostWhatChanged(t *testing.T) {
	st, err := store.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n, ended = 5000, 40
	mg, m := reportedJob(t, st, n, &reportingExecutor{st: st, step: 1, stopAt: ended}, 10*time.Millisecond)
	mem := waitFor(t, mg, m.JobID, func(m *batch.Manifest) bool { return m.Counts().Succeeded == ended })
	stored := waitStored(t, st, m.JobID, func(s *batch.Manifest) bool { return shardsJSON(t, s) == shardsJSON(t, mem) })
	if stored.State != batch.StateRunning {
		t.Errorf("stored state %s, want RUNNING", stored.State)
	}
	raw, size := storedManifest(t, st, m.JobID)
	if c := raw.Counts(); c.Succeeded != 0 {
		t.Errorf("manifest.json has %d shards succeeded; want it as the start wrote it", c.Succeeded)
	}
	writes, _ := mg.ManifestWrites()
	segs, segBytes := mg.SegmentWrites()
	// The start records the attempt bases, then the handle: two writes.
	if manifests := writes - segs; manifests > 2 || segs == 0 {
		t.Errorf("%d manifest writes and %d segments; want the start's 2 manifest writes, and the progress in segments", manifests, segs)
	}
	perShard := size / n
	if limit := int64(ended * 3 * perShard); segBytes > limit {
		t.Errorf("the progress of %d shards took %d bytes of segments; want at most %d (3 records of %d bytes each), whatever the job's size (%d bytes)",
			ended, segBytes, limit, perShard, size)
	}
	t.Logf("%d shards ended: %d segments of %d bytes in all; manifest of %d bytes written %d times", ended, segs, segBytes, size, writes-segs)
}

// TestProgressLogFolded: once the segments of a job's progress log add up
// to half its manifest, the manifest is written whole and the segments it
// holds are deleted; once the job ends, its final manifest holds all, and
// no segment is left.
func TestProgressLogFolded(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n, ended = 300, 200
	exec := &reportingExecutor{st: st, step: 1, stopAt: ended}
	mg, m := reportedJob(t, st, n, exec, 5*time.Millisecond)
	mem := waitFor(t, mg, m.JobID, func(m *batch.Manifest) bool { return m.Counts().Succeeded == ended })
	waitStored(t, st, m.JobID, func(s *batch.Manifest) bool { return shardsJSON(t, s) == shardsJSON(t, mem) })
	writes, _ := mg.ManifestWrites()
	segs, _ := mg.SegmentWrites()
	if writes-segs <= 2 {
		t.Errorf("%d manifest writes: the segments of %d shards' records (more than half the manifest) were never folded", writes-segs, ended)
	}
	raw, size := storedManifest(t, st, m.JobID)
	objs, err := st.List(ctx, batch.ProgressPrefix(m.JobID))
	if err != nil {
		t.Fatal(err)
	}
	var left int64
	for _, o := range objs {
		if o.Key <= batch.SegmentKey(m.JobID, raw.ProgressSeq) {
			t.Errorf("segment %s is left after the manifest holding it (up to %d) was stored", o.Key, raw.ProgressSeq)
		}
		left += o.Size
	}
	if left > int64(size) {
		t.Errorf("%d bytes of segments beside a manifest of %d bytes; want at most about half", left, size)
	}
	exec.mu.Lock()
	exec.stopAt = 0
	exec.mu.Unlock()
	got := waitFor(t, mg, m.JobID, terminal)
	if got.State != batch.StateSucceeded {
		t.Fatalf("job %s: %s", got.State, got.Error)
	}
	if objs, err := st.List(ctx, batch.ProgressPrefix(m.JobID)); err != nil || len(objs) != 0 {
		t.Errorf("%d segments left after the job's end (%v)", len(objs), err)
	}
	if raw, _ := storedManifest(t, st, m.JobID); raw.State != batch.StateSucceeded || raw.Counts().Succeeded != n {
		t.Errorf("final manifest.json %s %+v", raw.State, raw.Counts())
	}
}

// TestRestartWithDamagedProgressLog: a server dies while its job's progress
// is in segments of the progress log, and every segment is damaged; a new
// server over the same store loses nothing of the job: it catches the job
// up from its parts and attempt records, runs only what was left, and the
// job ends as it would have.
func TestRestartWithDamagedProgressLog(t *testing.T) {
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
	mg1 := batch.NewManager(cat, fns, exec1, &batch.Options{Log: quiet, MaxAttempts: 2, SaveInterval: 10 * time.Millisecond})
	mg1.FoldAfter(batch.MaxProgressSegments) // a job this small would be folded at each write
	if err := mg1.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mg1.Close)
	job := submit(t, mg1, "eight", `{"fs": 250}`, false).JobID
	shardOf := func(m *batch.Manifest, name string) batch.ShardRecord { return m.Shards[shardIndex(t, m, name)] }
	done := func(m *batch.Manifest) bool {
		c := m.Counts()
		return c.Succeeded == 6 && c.Failed == 1 && shardOf(m, slow).State == batch.ShardRunning
	}
	mem := waitFor(t, mg1, job, done)
	waitStored(t, st, job, done)
	if raw, _ := storedManifest(t, st, job); raw.Counts().Succeeded != 0 {
		t.Fatalf("manifest.json has %d shards succeeded; want the progress in segments only", raw.Counts().Succeeded)
	}
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
	objs, err := st.List(ctx, batch.ProgressPrefix(job))
	if err != nil || len(objs) == 0 {
		t.Fatalf("%d segments (%v); want the job's progress in segments", len(objs), err)
	}
	for i, o := range objs {
		damage := []byte(`{"job_id":`) // cut short
		if i%2 == 1 {
			damage = []byte(fmt.Sprintf(`{"job_id":%q,"seq":1,"shards":[{"index":0,"name":"elsewhere","state":"SUCCEEDED"}]}`, job))
		}
		if err := st.WriteAll(ctx, o.Key, damage); err != nil {
			t.Fatal(err)
		}
	}
	if got := waitStored(t, st, job, func(*batch.Manifest) bool { return true }); got.Counts().Succeeded != 0 {
		t.Fatalf("damaged segments were replayed: %+v", got.Counts())
	}

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
	for _, s := range got.Shards {
		state, attempts := batch.ShardSucceeded, 1
		switch s.Name {
		case slow, flaky:
			attempts = 2
		case broken:
			state, attempts = batch.ShardFailed, 2
		}
		if s.State != state || s.Attempts != attempts {
			t.Errorf("shard %s: %s after %d attempts; want %s after %d", s.Name, s.State, s.Attempts, state, attempts)
		}
	}
	if objs, err := st.List(ctx, batch.ProgressPrefix(job)); err != nil || len(objs) != 0 {
		t.Errorf("%d segments left after the job's end (%v)", len(objs), err)
	}
}
