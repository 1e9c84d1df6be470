package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// reportingExecutor runs nothing: at each poll it finishes the next step
// children, writing each one's part and part record as a worker would, and
// reports every child, as executors do. It tells of a change at once while
// children are left (Notifier), as the local executor does at each child's
// end, so the manager polls again at once: step 1 is a job whose children
// are reported one at a time. With failFirst, each child's first attempt
// fails (its error reported) and its second succeeds.
type reportingExecutor struct {
	st        *store.Store
	step      int
	failFirst bool
	// stopAt, if set, is how many children end: the others run for ever.
	stopAt int

	mu       sync.Mutex
	jobID    string
	names    []string
	children []batch.Child
	next     int
	polls    int
}

func (e *reportingExecutor) Name() string                { return "reporting" }
func (e *reportingExecutor) PollInterval() time.Duration { return time.Millisecond }
func (e *reportingExecutor) Cancel(context.Context, string) error {
	return nil
}

func (e *reportingExecutor) Start(_ context.Context, m *batch.Manifest, shards []int) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.jobID = m.JobID
	e.names = make([]string, len(m.Shards))
	for i, s := range m.Shards {
		e.names[i] = s.Name
	}
	e.children = make([]batch.Child, len(shards))
	for i, s := range shards {
		e.children[i] = batch.Child{Shard: s, State: batch.ShardPending}
	}
	return "reporting-1", nil
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (e *reportingExecutor) Changed(string) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.next < e.ends() {
		return closedChan
	}
	return nil
}

// ends is how many children end.
func (e *reportingExecutor) ends() int {
	if e.stopAt > 0 {
		return min(e.stopAt, len(e.children))
	}
	return len(e.children)
}

func (e *reportingExecutor) Poll(ctx context.Context, _ string) (batch.Progress, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.advance(ctx); err != nil {
		return batch.Progress{}, err
	}
	// The report is the executor's own slice: the manager reads it before
	// the next poll, and copying it would count the executor's costs.
	return batch.Progress{Children: e.children, Done: e.next == len(e.children)}, nil
}

// changeReportingExecutor is a reportingExecutor that reports only the
// children each poll ended (batch.ChangeReporter), as the local executor
// does.
type changeReportingExecutor struct {
	*reportingExecutor
	reported bool
}

func (e *changeReportingExecutor) PollChanges(ctx context.Context, _ string) (batch.Progress, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	from, err := e.advance(ctx)
	if err != nil {
		return batch.Progress{}, err
	}
	if !e.reported {
		from, e.reported = 0, true
	}
	return batch.Progress{Children: e.children[from:e.next], Done: e.next == len(e.children)}, nil
}

// advance ends the next step children and returns the index of the first.
func (e *reportingExecutor) advance(ctx context.Context) (int, error) {
	from := e.next
	e.polls++
	for k := 0; k < e.step && e.next < e.ends(); k++ {
		c := &e.children[e.next]
		name := e.names[c.Shard]
		c.State, c.Attempts = batch.ShardSucceeded, 1
		if e.failFirst {
			c.Attempts = 2
			c.Errors = []batch.AttemptError{{Attempt: 1, At: time.Unix(0, 0).UTC(),
				Error: fmt.Sprintf("run psd on shard %s: exit status 1: Traceback (most recent call last): ValueError: the recording of shard %s is too short", name, name)}}
		}
		if err := e.st.WriteAll(ctx, batch.PartKey(e.jobID, name), []byte("part")); err != nil {
			return 0, err
		}
		if err := e.st.WriteAll(ctx, batch.Prefix+e.jobID+"/parts/"+name+".json", []byte(`{"rows":1}`)); err != nil {
			return 0, err
		}
		e.next++
	}
	return from, nil
}

// manifestCost is what running one job cost the process.
type manifestCost struct {
	shards                 int
	cpu                    time.Duration
	alloc                  uint64
	writes, written, final int64
	// segments of the written are segments of the job's progress log.
	segments, segmentBytes int64
	polls                  int
}

func (c manifestCost) String() string {
	n := float64(c.shards)
	return fmt.Sprintf("%6d shards: %8.3f CPU-s (%7.1f µs/shard), %9.0f bytes allocated/shard, %5d writes (%d of them progress segments, %d bytes), %9.0f bytes written/shard, %d in all (final manifest %d bytes), %d polls",
		c.shards, c.cpu.Seconds(), float64(c.cpu.Microseconds())/n, float64(c.alloc)/n, c.writes, c.segments, c.segmentBytes, float64(c.written)/n, c.written, c.final, c.polls)
}

// runReportedJob runs a job of n shards on a reportingExecutor (with
// changes, one that reports what changed) over a memory store, from its
// submission (recorded as Submit records it) to its end, and returns what it
// cost.
func runReportedJob(tb testing.TB, n, step int, failFirst, changes bool, opts batch.Options) manifestCost {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	m := &batch.Manifest{JobID: batch.NewJobID(at), Function: "psd", Dataset: "big", DatasetVersion: "v1",
		Params: json.RawMessage(`{"fs":250}`), State: batch.StateSubmitted, MaxAttempts: 3, Executor: "reporting", CreatedAt: at}
	if err := m.SetSchema(arrow.NewSchema([]arrow.Field{{Name: "psd", Type: arrow.PrimitiveTypes.Float64}}, nil)); err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		m.Shards = append(m.Shards, batch.ShardRecord{Name: fmt.Sprintf("part-%06d", i), Input: fmt.Sprintf("datasets/big/v1/part-%06d.arrow", i),
			Format: dataset.FormatArrow, InputRows: 1000, State: batch.ShardPending})
	}
	if err := batch.SaveRequest(ctx, st, m); err != nil {
		tb.Fatal(err)
	}
	if err := batch.SaveManifest(ctx, st, m); err != nil {
		tb.Fatal(err)
	}
	exec := &reportingExecutor{st: st, step: step, failFirst: failFirst}
	var ex batch.Executor = exec
	if changes {
		ex = &changeReportingExecutor{reportingExecutor: exec}
	}
	opts.Log = quiet
	mg := batch.NewManager(dataset.NewCatalog(st), analysis.Builtins(), ex, &opts)
	defer mg.Close()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	if err := mg.Recover(ctx); err != nil {
		tb.Fatal(err)
	}
	for {
		changed, err := mg.Changed(m.JobID)
		if err != nil {
			tb.Fatal(err)
		}
		// The job's version, not its summary: that costs the job's size,
		// at each change.
		if v, err := mg.JobVersion(m.JobID); err != nil {
			tb.Fatal(err)
		} else if v.State.Terminal() {
			if s := mg.Summaries(batch.Query{}); s[0].Job.State != batch.StateSucceeded || s[0].Counts.Succeeded != n {
				tb.Fatalf("job ended %s with %+v: %s", s[0].Job.State, s[0].Counts, s[0].Job.Error)
			}
			break
		}
		select {
		case <-changed:
		case <-time.After(time.Minute):
			tb.Fatalf("job %s: no change for a minute", m.JobID)
		}
	}
	cost := manifestCost{shards: n, cpu: cpuTime() - cpu0}
	runtime.ReadMemStats(&after)
	cost.alloc = after.TotalAlloc - before.TotalAlloc
	cost.writes, cost.written = mg.ManifestWrites()
	cost.segments, cost.segmentBytes = mg.SegmentWrites()
	exec.mu.Lock()
	cost.polls = exec.polls
	exec.mu.Unlock()
	if o, err := st.Stat(ctx, batch.ManifestKey(m.JobID)); err == nil {
		cost.final = o.Size
	}
	return cost
}

// BenchmarkManifestCost runs jobs of 100 to 100,000 shards whose children
// are reported one at a time (as the local executor reports each child's
// end) or a hundred at a time (as a poll of AWS Batch or Slurm finds
// many ended), with and without a failed attempt per shard, by an executor
// that reports every child at each poll (report=all) or only those that
// changed (report=changes, as the local executor does), and reports the
// CPU time, the bytes allocated and the manifest bytes written per shard:
// per shard, these stay flat as jobs grow when an update costs what
// changed, and grow with the job when each update costs the whole manifest
// (or each report the whole job).
// It prints each run's figures (go test -run '^$' -bench ManifestCost -v).
func BenchmarkManifestCost(b *testing.B) {
	for _, n := range []int{100, 1000, 10000, 100000} {
		for _, step := range []int{1, 100} {
			for _, fail := range []bool{false, true} {
				for _, changes := range []bool{false, true} {
					report := map[bool]string{false: "all", true: "changes"}[changes]
					b.Run(fmt.Sprintf("shards=%d/step=%d/failfirst=%v/report=%s", n, step, fail, report), func(b *testing.B) {
						var c manifestCost
						for range b.N {
							c = runReportedJob(b, n, step, fail, changes, batch.Options{})
						}
						b.ReportMetric(float64(c.cpu.Nanoseconds())/float64(n), "cpu-ns/shard")
						b.ReportMetric(float64(c.alloc)/float64(n), "alloc-B/shard")
						b.ReportMetric(float64(c.written)/float64(n), "written-B/shard")
						b.ReportMetric(float64(c.writes), "writes")
						b.Log(c)
					})
				}
			}
		}
	}
}

// BenchmarkProgressWrites runs jobs of 10,000 and 100,000 shards as
// BenchmarkManifestCost does (reported one at a time, what changed), their
// progress written every 100 ms rather than 5 s: a job that runs a few
// seconds here stands for one that runs many intervals, as long jobs do.
// Written bytes per shard stay flat as the job grows when each write of
// progress costs what changed, and grow with the job (the manifest's
// size times the intervals) when each rewrites the manifest
// (go test -run '^$' -bench ProgressWrites -benchtime 1x -v).
func BenchmarkProgressWrites(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		for _, fail := range []bool{false, true} {
			b.Run(fmt.Sprintf("shards=%d/failfirst=%v/interval=100ms", n, fail), func(b *testing.B) {
				var c manifestCost
				for range b.N {
					c = runReportedJob(b, n, 1, fail, true, batch.Options{SaveInterval: 100 * time.Millisecond})
				}
				b.ReportMetric(float64(c.cpu.Nanoseconds())/float64(n), "cpu-ns/shard")
				b.ReportMetric(float64(c.written)/float64(n), "written-B/shard")
				b.ReportMetric(float64(c.writes), "writes")
				b.Log(c)
			})
		}
	}
}

// BenchmarkStatusCopy copies the manifest of a job of 100,000 shards (a
// third with a failed attempt) as Status does, beside a JSON round trip of
// it, which is how Status copied it before (go test -run '^$' -bench
// StatusCopy -benchmem).
func BenchmarkStatusCopy(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	m := &batch.Manifest{JobID: batch.NewJobID(at), Function: "psd", Dataset: "big", DatasetVersion: "v1",
		Params: json.RawMessage(`{"fs":250}`), State: batch.StateSucceeded, MaxAttempts: 3, Executor: "reporting", CreatedAt: at, StartedAt: &at, FinishedAt: &at}
	for i := range 100000 {
		rows := int64(1000)
		s := batch.ShardRecord{Name: fmt.Sprintf("part-%06d", i), Input: fmt.Sprintf("datasets/big/v1/part-%06d.arrow", i),
			Format: dataset.FormatArrow, InputRows: 1000, State: batch.ShardSucceeded, Attempts: 1, Rows: &rows, Done: i + 1, Bytes: 4096, StartedAt: &at, FinishedAt: &at}
		if i%3 == 0 {
			s.Attempts = 2
			s.Errors = []batch.AttemptError{{Attempt: 1, Error: "exit status 1", At: at}}
		}
		m.Shards = append(m.Shards, s)
	}
	if err := batch.SaveManifest(ctx, st, m); err != nil {
		b.Fatal(err)
	}
	mg := batch.NewManager(dataset.NewCatalog(st), analysis.Builtins(), &crashing{}, &batch.Options{Log: quiet})
	defer mg.Abandon()
	if err := mg.Recover(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("json-round-trip", func(b *testing.B) {
		for range b.N {
			data, err := json.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			var c batch.Manifest
			if err := json.Unmarshal(data, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Status", func(b *testing.B) {
		for range b.N {
			if _, err := mg.Status(m.JobID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Summary", func(b *testing.B) {
		for range b.N {
			if _, err := mg.Summary(m.JobID, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
