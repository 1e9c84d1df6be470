package flight_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/internal/testserver"
	"github.com/flightbatch/flightbatch/pkg/api"
)

func submitPSD(t *testing.T, c aflight.Client, extra map[string]any) api.SubmitResult {
	t.Helper()
	body := map[string]any{"dataset": "demo", "fs": 250}
	for k, v := range extra {
		body[k] = v
	}
	var res api.SubmitResult
	mustAction(t, c, api.ActionPSD, body, &res)
	return res
}

// TestRetrySucceeds fails the first two attempts of one shard; the third
// succeeds and job-status keeps both errors.
func TestRetrySucceeds(t *testing.T) {
	fault := func(ctx context.Context, jobID, shard string, attempt int) error {
		if shard == "part-00002" && attempt <= 2 {
			return fmt.Errorf("flaky storage, attempt %d", attempt)
		}
		return nil
	}
	srv := testserver.Start(t, testserver.Options{Fault: fault, MaxAttempts: 3})
	c := dial(t, srv.Addr)
	res := submitPSD(t, c, nil)
	st := waitState(t, c, res.JobID, 30*time.Second)
	if st.State != "SUCCEEDED" || st.Shards.Succeeded != 4 {
		t.Fatalf("job = %+v, want SUCCEEDED", st)
	}
	if len(st.Failures) != 1 {
		t.Fatalf("failures = %+v, want part-00002's two failed attempts", st.Failures)
	}
	f := st.Failures[0]
	if f.Shard != "part-00002" || f.State != "SUCCEEDED" || f.Attempts != 3 || len(f.Errors) != 2 ||
		!strings.Contains(f.Errors[0], "attempt 1: flaky storage, attempt 1") || !strings.Contains(f.Errors[1], "attempt 2") {
		t.Errorf("failure = %+v", f)
	}
}

// TestPartsReadableWhileRunning reads finished parts of a job whose last shard
// still runs, and checks the errors of what is not finished yet.
func TestPartsReadableWhileRunning(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	g := newGate("part-00003")
	srv := testserver.Start(t, testserver.Options{Fault: g.fault})
	c := dial(t, srv.Addr)
	res := submitPSD(t, c, nil)
	for jobStatus(t, c, res.JobID).Shards.Succeeded < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	info, err := c.GetFlightInfo(context.Background(), &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", res.JobID, "shards"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Endpoint) != 3 {
		t.Fatalf("jobs/<id>/shards lists %d endpoints, want 3", len(info.Endpoint))
	}
	ds, _ := srv.Catalog.Get(context.Background(), "demo")
	for i, ep := range info.Endpoint {
		n, _, err := readAll(t, c, mem, string(ep.Ticket.Ticket), "")
		if err != nil || n != ds.Shards[i].Rows {
			t.Errorf("%s: %d rows, %v; want %d", ep.Ticket.Ticket, n, err, ds.Shards[i].Rows)
		}
	}
	if _, _, err := readAll(t, c, mem, "jobs/"+res.JobID+"/part-00003", ""); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("running part: %v, want FailedPrecondition", err)
	}
	if _, _, err := readAll(t, c, mem, "jobs/"+res.JobID, ""); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("merged result of a running job: %v, want FailedPrecondition", err)
	}
	if _, _, err := readAll(t, c, mem, "jobs/"+res.JobID+"/part-00099", ""); status.Code(err) != codes.NotFound {
		t.Errorf("unknown part: %v, want NotFound", err)
	}
	g.open("part-00003")
	if st := waitState(t, c, res.JobID, 30*time.Second); st.State != "SUCCEEDED" {
		t.Fatalf("job = %+v", st)
	}
}

// TestHistoryAndReuse checks list-jobs (oldest first, with dataset, params,
// state and timings) and "reuse": true.
func TestHistoryAndReuse(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Shards: 2, Records: 8})
	c := dial(t, srv.Addr)
	a := submitPSD(t, c, map[string]any{"nperseg": 128})
	waitState(t, c, a.JobID, 30*time.Second)
	b := submitPSD(t, c, map[string]any{"nperseg": 256})
	waitState(t, c, b.JobID, 30*time.Second)

	r := submitPSD(t, c, map[string]any{"nperseg": 128, "reuse": true})
	if r.JobID != a.JobID || !r.Reused || r.State != "SUCCEEDED" {
		t.Errorf("reuse of an identical job = %+v, want job %s reused", r, a.JobID)
	}
	// Parameters written differently but meaning the same are identical.
	r2 := submitPSD(t, c, map[string]any{"nperseg": 128, "column": "samples", "reuse": true})
	if r2.JobID != a.JobID && r2.Reused {
		t.Errorf("reuse picked %s", r2.JobID)
	}
	n := submitPSD(t, c, map[string]any{"nperseg": 64, "reuse": true})
	if n.Reused || n.JobID == a.JobID || n.JobID == b.JobID {
		t.Errorf("a job with other params was reused: %+v", n)
	}
	nr := submitPSD(t, c, map[string]any{"nperseg": 128})
	if nr.Reused || nr.JobID == a.JobID {
		t.Errorf("without reuse a new job must run: %+v", nr)
	}
	waitState(t, c, n.JobID, 30*time.Second)
	waitState(t, c, nr.JobID, 30*time.Second)

	var list api.ListJobsResult
	mustAction(t, c, api.ActionListJobs, map[string]any{}, &list)
	var ids []string
	for _, j := range list.Jobs {
		ids = append(ids, j.JobID)
		if j.Dataset != "demo" || j.State != "SUCCEEDED" || len(j.Params) == 0 || j.StartedAt == nil || j.FinishedAt == nil || j.CreatedAt.IsZero() {
			t.Errorf("history entry = %+v", j)
		}
	}
	if !slices.IsSorted(ids) || len(ids) < 4 || ids[0] != a.JobID || ids[1] != b.JobID {
		t.Errorf("history = %v, want oldest first starting %s, %s", ids, a.JobID, b.JobID)
	}
	mustAction(t, c, api.ActionListJobs, map[string]any{"dataset": "other"}, &list)
	if len(list.Jobs) != 0 {
		t.Errorf("history of another dataset = %v", list.Jobs)
	}
}

// TestCancelIsPrompt cancels a job whose children compute long records and
// checks that it ends CANCELLED long before its shards could have finished.
func TestCancelIsPrompt(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Shards: 2, Records: 192, Seconds: 60, Workers: 2})
	c := dial(t, srv.Addr)
	// Segments 16 samples apart make each 15000-sample record take tens of
	// milliseconds (cancel is checked between records) and each shard
	// seconds: a cancel that waited for the children would end the job
	// SUCCEEDED, and the bound leaves a loaded machine 10 s.
	res := submitPSD(t, c, map[string]any{"nperseg": 4096, "noverlap": 4080, "bands": map[string]any{"beta": []float64{13, 30}}})
	for st := jobStatus(t, c, res.JobID); st.Shards.Running == 0; st = jobStatus(t, c, res.JobID) {
		if st.State == "SUCCEEDED" || st.State == "FAILED" {
			t.Fatalf("the job ended %s before a child was seen running; the records are too short to test cancel", st.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	mustAction(t, c, api.ActionCancelJob, api.JobRef{JobID: res.JobID}, nil)
	st := waitState(t, c, res.JobID, 60*time.Second)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel took %s", d)
	}
	if st.State != "CANCELLED" {
		t.Errorf("cancelled job = %+v", st)
	}
}

// TestRestartResumes stops a server as a crash would, mid-job, and starts
// another on the same store: it takes the job up, keeps the finished parts and
// ends with every row exactly once.
func TestRestartResumes(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	storeURL := "file://" + t.TempDir()
	g := newGate("part-00002", "part-00003")
	var attempts atomic.Int32
	counting := func(ctx context.Context, jobID, shard string, attempt int) error {
		attempts.Add(1)
		return g.fault(ctx, jobID, shard, attempt)
	}
	first := testserver.Start(t, testserver.Options{Store: storeURL, Fault: counting})
	c := dial(t, first.Addr)
	res := submitPSD(t, c, nil)
	for jobStatus(t, c, res.JobID).Shards.Succeeded < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	finished, err := first.Store.Stat(context.Background(), "jobs/"+res.JobID+"/parts/part-00000.arrow")
	if err != nil {
		t.Fatal(err)
	}
	first.Crash()

	var reruns []string
	record := func(ctx context.Context, jobID, shard string, attempt int) error {
		reruns = append(reruns, shard) // children of one run are serialised below
		return nil
	}
	second := testserver.Start(t, testserver.Options{Store: storeURL, Fault: record, NoDemo: true, Workers: 1})
	c2 := dial(t, second.Addr)
	st := waitState(t, c2, res.JobID, 30*time.Second)
	if st.State != "SUCCEEDED" {
		t.Fatalf("resumed job = %+v", st)
	}
	slices.Sort(reruns)
	if strings.Join(reruns, ",") != "part-00002,part-00003" {
		t.Errorf("the restarted server ran %v; want only the unfinished shards", reruns)
	}
	again, err := second.Store.Stat(context.Background(), "jobs/"+res.JobID+"/parts/part-00000.arrow")
	if err != nil || !again.ModTime.Equal(finished.ModTime) {
		t.Errorf("a finished part was rewritten: %v -> %v (%v)", finished.ModTime, again.ModTime, err)
	}

	// Every row of the dataset, exactly once, in order.
	keys := func(ticket string) []string {
		stream, err := c2.DoGet(context.Background(), &aflight.Ticket{Ticket: []byte(ticket)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := aflight.NewRecordReader(stream, ipcAlloc(mem))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Release()
		var out []string
		for r.Next() {
			rec := r.RecordBatch()
			cols := make([]arrow.Array, 4)
			for i, name := range []string{"patient_id", "session_id", "channel", "start_time"} {
				cols[i] = rec.Column(rec.Schema().FieldIndices(name)[0])
			}
			for i := 0; i < int(rec.NumRows()); i++ {
				out = append(out, fmt.Sprintf("%s|%s|%s|%s", cols[0].ValueStr(i), cols[1].ValueStr(i), cols[2].ValueStr(i), cols[3].ValueStr(i)))
			}
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got, want := keys("jobs/"+res.JobID), keys("datasets/demo")
	if len(got) != len(want) || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("resumed result has %d rows, the dataset %d (or they differ)", len(got), len(want))
	}
	seen := map[string]bool{}
	for _, k := range got {
		if seen[k] {
			t.Fatalf("row %s appears twice", k)
		}
		seen[k] = true
	}
}

// TestJobStatusKeys: job-status answers every key the README lists, also
// those with nothing to say yet ("failures": [] for a job without a failed
// attempt), so that a notebook's status["failures"] does not raise.
func TestJobStatusKeys(t *testing.T) {
	e := newEnv(t, "")
	id := e.submit(t, `{"dataset": "demo", "fs": 250}`)
	e.wait(t, id)
	body, err := e.action(t, api.ActionJobStatus, api.JobRef{JobID: id})
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"job_id", "state", "shards", "progress", "dataset", "dataset_version", "params", "created_at", "started_at", "finished_at", "error", "failures", "name", "labels"} {
		if _, ok := st[k]; !ok {
			t.Errorf("job-status has no %q: %s", k, body)
		}
	}
	if got := string(st["failures"]); got != "[]" {
		t.Errorf(`job-status "failures" of a job without failures is %s, want []`, got)
	}
}
