package flight_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/pkg/api"
	"github.com/flightbatch/flightbatch/store"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// historyEnv is a server whose job manager runs on a fake clock. A job
// labelled outcome=fail fails every attempt, and one labelled outcome=hold
// runs until it is cancelled.
type historyEnv struct {
	*env
	clock *fakeClock
	jobs  *batch.Manager
}

func newHistoryEnv(t *testing.T, opts batch.Options) *historyEnv {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	cat := dataset.NewCatalog(st)
	for _, name := range []string{"demo", "demo2"} {
		if err := dataset.GenerateDemo(ctx, cat, name, dataset.DemoOptions{Shards: 2, Bytes: 64 << 10, Seconds: 4}); err != nil {
			t.Fatal(err)
		}
	}
	clock := &fakeClock{now: time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)}
	fault := func(ctx context.Context, jobID, shard string, attempt int) error {
		m, err := batch.ReadManifest(ctx, st, jobID)
		if err != nil {
			return err
		}
		switch m.Labels["outcome"] {
		case "fail":
			return errFault
		case "hold":
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	fns := analysis.Builtins()
	if err := fns.Register(copyFunction{}); err != nil {
		t.Fatal(err)
	}
	if err := fns.Register(lateSchemaCopy{}); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	w := &batch.Worker{Store: st, Functions: fns, Fault: fault, Log: quiet}
	opts.MaxAttempts, opts.Log, opts.Now = 1, quiet, clock.Now
	jobs := batch.NewManager(cat, fns, local.New(w.RunShard, 4, nil), &opts)
	if err := jobs.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	srv := aflight.NewServerWithMiddleware(nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.InitListener(lis)
	srv.RegisterFlightService(flight.NewServer(cat, jobs, &flight.Options{PollHold: time.Second}))
	go srv.Serve()
	client, err := aflight.NewClientWithMiddlewareCtx(ctx, lis.Addr().String(), nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, m := range jobs.List("") {
			_, _ = jobs.Cancel(ctx, m.JobID)
		}
		client.Close()
		srv.Shutdown()
		jobs.Close()
	})
	return &historyEnv{env: &env{st: st, cat: cat, client: client}, clock: clock, jobs: jobs}
}

// copyFunction copies its input: a job that can read another job's result.
type copyFunction struct{}

func (copyFunction) Name() string        { return "copy" }
func (copyFunction) Description() string { return "copies its input" }
func (copyFunction) Prepare(params json.RawMessage, in *arrow.Schema) (*arrow.Schema, json.RawMessage, error) {
	return in, json.RawMessage("{}"), nil
}
func (copyFunction) Run(ctx context.Context, task batch.Task, in array.RecordReader, emit func(arrow.RecordBatch) error) error {
	for in.Next() {
		if err := emit(in.RecordBatch()); err != nil {
			return err
		}
	}
	return in.Err()
}

// lateSchemaCopy copies its input but declares no result schema, as a
// registered command does: the job's schema is known once a part exists.
type lateSchemaCopy struct{ copyFunction }

func (lateSchemaCopy) Name() string { return "copy-late" }
func (lateSchemaCopy) Prepare(json.RawMessage, *arrow.Schema) (*arrow.Schema, json.RawMessage, error) {
	return nil, json.RawMessage("{}"), nil
}

type faultError struct{}

func (faultError) Error() string { return "injected failure" }

var errFault error = faultError{}

// waitFor polls job-status until the job is in state want.
func (e *historyEnv) waitFor(t *testing.T, id, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var st api.JobStatus
		body, err := e.action(t, api.ActionJobStatus, api.JobRef{JobID: id})
		if err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(body, &st)
		if st.State == want {
			return
		}
		if batch.State(st.State).Terminal() {
			t.Fatalf("job %s ended %s, want %s (%s)", id, st.State, want, st.Error)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s did not reach %s", id, want)
}

func (e *historyEnv) list(t *testing.T, body string) ([]string, error) {
	t.Helper()
	out, err := e.action(t, api.ActionListJobs, body)
	if err != nil {
		return nil, err
	}
	var res api.ListJobsResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, j := range res.Jobs {
		ids = append(ids, j.JobID)
	}
	return ids, nil
}

// TestLabelsFiltersAndLookups: jobs carry names and labels; list-jobs filters
// by each field, orders and limits; jobs/<name> and jobs/latest?... find them.
func TestLabelsFiltersAndLookups(t *testing.T) {
	e := newHistoryEnv(t, batch.Options{})
	t0 := e.clock.Now()
	// j0 at t0, j1 at t0+1h, ... : a history with every state and tag.
	specs := []struct{ body, state string }{
		{`{"dataset": "demo", "fs": 250, "name": "beta-weekly", "labels": {"cohort": "pd", "site": "ox"}}`, "SUCCEEDED"},
		{`{"dataset": "demo", "fs": 250, "nperseg": 128, "labels": {"cohort": "pd", "outcome": "fail"}}`, "FAILED"},
		{`{"dataset": "demo", "fs": 250, "name": "beta-weekly", "labels": {"cohort": "et"}}`, "SUCCEEDED"},
		{`{"dataset": "demo", "fs": 250, "labels": {"cohort": "pd", "outcome": "hold"}}`, "RUNNING"},
	}
	var ids []string
	for _, s := range specs {
		id := e.submit(t, s.body)
		e.waitFor(t, id, s.state)
		ids = append(ids, id)
		e.clock.Advance(time.Hour)
	}
	chained := e.submit(t, `{"dataset": "demo2", "fs": 250, "labels": {"cohort": "et"}}`)
	e.waitFor(t, chained, "SUCCEEDED")
	all := append(append([]string(nil), ids...), chained)

	st := jobStatusOf(t, e.env, ids[0])
	if st.Name != "beta-weekly" || st.Labels["cohort"] != "pd" || st.Labels["site"] != "ox" || len(st.Labels) != 2 {
		t.Errorf("job-status name %q labels %v", st.Name, st.Labels)
	}
	if st := jobStatusOf(t, e.env, ids[3]); st.Name != "" || st.Labels == nil {
		t.Errorf("unnamed job: name %q labels %v (want \"\" and an object)", st.Name, st.Labels)
	}
	// A job's input may be a lookup: jobs/beta-weekly is found (and then
	// refused by psd, whose result already has a psd column), jobs/nope is not.
	_, err := e.action(t, api.ActionPSD, `{"dataset": "jobs/beta-weekly", "column": "psd", "fs": 250}`)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "freqs") {
		t.Errorf("psd over jobs/beta-weekly: %v, want the input found and its columns refused", err)
	}
	if _, err := e.action(t, api.ActionPSD, `{"dataset": "jobs/nope", "fs": 250}`); status.Code(err) != codes.NotFound {
		t.Errorf("psd over jobs/nope: %v, want NotFound", err)
	}

	ts := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"all", `{}`, all},
		{"one state", `{"state": "FAILED"}`, []string{ids[1]}},
		{"state list", `{"state": ["RUNNING", "failed"]}`, []string{ids[1], ids[3]}},
		{"dataset", `{"dataset": "demo2"}`, []string{chained}},
		{"function", `{"function": "psd"}`, all},
		{"no such function", `{"function": "peaks"}`, []string{}},
		{"name", `{"name": "beta-weekly"}`, []string{ids[0], ids[2]}},
		{"one label", `{"labels": {"cohort": "pd"}}`, []string{ids[0], ids[1], ids[3]}},
		{"every label must match", `{"labels": {"cohort": "pd", "site": "ox"}}`, []string{ids[0]}},
		{"label value differs", `{"labels": {"cohort": "xx"}}`, []string{}},
		{"submitted_by (no auth: nobody)", `{"submitted_by": "alice"}`, []string{}},
		{"since", `{"since": "` + ts(2*time.Hour) + `"}`, []string{ids[2], ids[3], chained}},
		{"until", `{"until": "` + ts(2*time.Hour) + `"}`, []string{ids[0], ids[1]}},
		{"since and until", `{"since": "` + ts(time.Hour) + `", "until": "` + ts(3*time.Hour) + `"}`, []string{ids[1], ids[2]}},
		{"newest first", `{"order": "newest"}`, []string{chained, ids[3], ids[2], ids[1], ids[0]}},
		{"oldest first", `{"order": "oldest", "limit": 2}`, []string{ids[0], ids[1]}},
		{"newest with limit", `{"order": "newest", "limit": 2, "labels": {"cohort": "pd"}}`, []string{ids[3], ids[1]}},
		{"combined", `{"state": "SUCCEEDED", "labels": {"cohort": "et"}, "order": "newest", "limit": 1}`, []string{chained}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.list(t, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("list-jobs %s\n got  %v\n want %v", tc.body, got, tc.want)
			}
		})
	}

	for _, tc := range []struct{ name, body, word string }{
		{"unknown filter", `{"status": "FAILED"}`, `"status"`},
		{"unknown state", `{"state": "DONE"}`, "DONE"},
		{"state not a string", `{"state": 3}`, "state"},
		{"bad since", `{"since": "yesterday"}`, "since"},
		{"bad order", `{"order": "random"}`, "order"},
		{"negative limit", `{"limit": -1}`, "limit"},
		{"labels not strings", `{"labels": {"a": 1}}`, "labels"},
	} {
		t.Run("refused "+tc.name, func(t *testing.T) {
			_, err := e.list(t, tc.body)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.word) {
				t.Errorf("list-jobs %s: %v, want InvalidArgument naming %s", tc.body, err, tc.word)
			}
		})
	}

	// Lookups: tickets and descriptors.
	for _, tc := range []struct{ ticket, want string }{
		{"jobs/beta-weekly", ids[2]},
		{"jobs/latest", chained},
		{"jobs/latest?dataset=demo", ids[2]},
		{"jobs/latest?dataset=demo2", chained},
		{"jobs/latest?dataset=demo&label=cohort=pd", ids[0]},
		{"jobs/latest?name=beta-weekly&label=cohort%3Dpd", ids[0]},
		{"jobs/latest?function=psd&state=failed", ids[1]},
		{"jobs/latest?state=RUNNING,FAILED", ids[3]},
		{"jobs/latest?state=any&label=cohort=pd", ids[3]},
	} {
		info, err := e.client.GetFlightInfo(context.Background(), &aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(tc.ticket + "/shards")})
		if strings.Contains(tc.ticket, "?") {
			path, query, _ := strings.Cut(tc.ticket, "?")
			info, err = e.client.GetFlightInfo(context.Background(), &aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(path + "/shards?" + query)})
		}
		if err != nil {
			t.Errorf("GetFlightInfo %s: %v", tc.ticket, err)
			continue
		}
		if got := info.FlightDescriptor.Path; len(got) < 2 || got[1] != tc.want {
			t.Errorf("%s: the info describes %v, want job %s", tc.ticket, got, tc.want)
		}
	}
	want := e.read(t, "jobs/"+ids[2])
	got := e.read(t, "jobs/beta-weekly")
	if got.NumRows() != want.NumRows() || got.NumRows() == 0 {
		t.Errorf("DoGet jobs/beta-weekly: %d rows, jobs/%s has %d", got.NumRows(), ids[2], want.NumRows())
	}
	got.Release()
	want.Release()
	for ticket, code := range map[string]codes.Code{
		"jobs/no-such-name":                  codes.NotFound,
		"jobs/latest?dataset=nope":           codes.NotFound,
		"jobs/latest?colour=red":             codes.InvalidArgument,
		"jobs/latest?state=DONE":             codes.InvalidArgument,
		"jobs/latest?label=nokey":            codes.InvalidArgument,
		"jobs/beta-weekly?dataset=demo":      codes.InvalidArgument,
		"datasets/demo?x=1":                  codes.InvalidArgument,
		"jobs/Bad-Name":                      codes.NotFound,
		"jobs/latest?dataset=demo&dataset=x": codes.InvalidArgument,
	} {
		_, err := e.tryRead(ticket)
		if status.Code(err) != code {
			t.Errorf("DoGet %s: %v, want %v", ticket, err, code)
		}
	}

	// Names and labels are checked, and a refused request creates nothing.
	before, _ := e.list(t, `{}`)
	for _, body := range []string{
		`{"dataset": "demo", "fs": 250, "name": "latest"}`,
		`{"dataset": "demo", "fs": 250, "name": "20261124T184501123Z-9f2c1a"}`,
		`{"dataset": "demo", "fs": 250, "name": "Upper"}`,
		`{"dataset": "demo", "fs": 250, "name": "` + strings.Repeat("a", 65) + `"}`,
		`{"dataset": "demo", "fs": 250, "labels": {"": "x"}}`,
		`{"dataset": "demo", "fs": 250, "labels": {"k": "` + strings.Repeat("v", 257) + `"}}`,
		`{"dataset": "demo", "fs": 250, "labels": {"k": "line\nbreak"}}`,
		`{"dataset": "demo", "fs": 250, "labels": ["k"]}`,
		`{"dataset": "demo", "fs": 250, "labels": ` + manyLabels(33) + `}`,
	} {
		if _, err := e.action(t, api.ActionPSD, body); status.Code(err) != codes.InvalidArgument {
			t.Errorf("psd %.80s: %v, want InvalidArgument", body, err)
		}
		if _, err := e.action(t, api.ActionRun, strings.Replace(body, `"fs": 250`, `"function": "psd", "params": {"fs": 250}`, 1)); status.Code(err) != codes.InvalidArgument {
			t.Errorf("run %.80s: %v, want InvalidArgument", body, err)
		}
	}
	if after, _ := e.list(t, `{}`); strings.Join(before, ",") != strings.Join(after, ",") {
		t.Errorf("refused requests changed the history")
	}
}

func manyLabels(n int) string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[strings.Repeat("k", 1+i%5)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func jobStatusOf(t *testing.T, e *env, id string) api.JobStatus {
	t.Helper()
	body, err := e.action(t, api.ActionJobStatus, api.JobRef{JobID: id})
	if err != nil {
		t.Fatal(err)
	}
	var st api.JobStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// storeKeys lists what the store holds under a job's prefix.
func (e *historyEnv) storeKeys(t *testing.T, id string) []string {
	t.Helper()
	objs, err := e.st.List(context.Background(), "jobs/"+id+"/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

// TestDeleteJob: delete-job removes a finished job and every file of it;
// it refuses a running job, and the input of another job unless forced (and
// never the input of a job that has not ended).
func TestDeleteJob(t *testing.T) {
	e := newHistoryEnv(t, batch.Options{})
	del := func(body string) error {
		_, err := e.action(t, api.ActionDeleteJob, body)
		return err
	}
	ref := func(id string, force bool) string {
		b, _ := json.Marshal(api.DeleteJobRequest{JobID: id, Force: force})
		return string(b)
	}
	base := e.submit(t, `{"dataset": "demo", "fs": 250}`)
	e.waitFor(t, base, "SUCCEEDED")
	reader, err := e.action(t, api.ActionRun, `{"function": "copy", "dataset": "jobs/`+base+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	var sub api.SubmitResult
	_ = json.Unmarshal(reader, &sub)
	e.waitFor(t, sub.JobID, "SUCCEEDED")
	held := e.submit(t, `{"dataset": "demo", "fs": 250, "nperseg": 64, "labels": {"outcome": "hold"}}`)
	e.waitFor(t, held, "RUNNING")
	if len(e.storeKeys(t, base)) == 0 {
		t.Fatal("the store holds nothing of the finished job")
	}

	for _, tc := range []struct {
		name, body string
		code       codes.Code
		word       string
	}{
		{"running job", ref(held, false), codes.FailedPrecondition, "cancel"},
		{"running job, forced", ref(held, true), codes.FailedPrecondition, "cancel"},
		{"input of another job", ref(base, false), codes.FailedPrecondition, sub.JobID},
		{"unknown job", ref("20200101T000000000Z-000000", false), codes.NotFound, "20200101T000000000Z-000000"},
		{"malformed ID", ref("../x", false), codes.NotFound, "job IDs look like"},
		{"no ID", `{}`, codes.InvalidArgument, "job_id"},
		{"unknown field", `{"job_id": "` + base + `", "recursive": true}`, codes.InvalidArgument, "recursive"},
	} {
		err := del(tc.body)
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.word) {
			t.Errorf("%s: %v, want %v naming %q", tc.name, err, tc.code, tc.word)
		}
	}
	for _, id := range []string{base, held, sub.JobID} {
		if _, err := e.action(t, api.ActionJobStatus, api.JobRef{JobID: id}); err != nil {
			t.Errorf("a refused delete removed job %s: %v", id, err)
		}
	}

	// The input of a running job is never deleted, even forced.
	running, err := e.action(t, api.ActionRun, `{"function": "copy", "dataset": "jobs/`+sub.JobID+`", "labels": {"outcome": "hold"}}`)
	if err != nil {
		t.Fatal(err)
	}
	var runSub api.SubmitResult
	_ = json.Unmarshal(running, &runSub)
	e.waitFor(t, runSub.JobID, "RUNNING")
	if err := del(ref(sub.JobID, true)); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), runSub.JobID) {
		t.Errorf("forced delete of a running job's input: %v, want FailedPrecondition naming %s", err, runSub.JobID)
	}

	// Forced: the finished reader keeps its result; nothing of base is left.
	before := e.read(t, "jobs/"+sub.JobID)
	if err := del(ref(base, true)); err != nil {
		t.Fatalf("forced delete: %v", err)
	}
	if keys := e.storeKeys(t, base); len(keys) != 0 {
		t.Errorf("the store still holds %v", keys)
	}
	if _, err := e.action(t, api.ActionJobStatus, api.JobRef{JobID: base}); status.Code(err) != codes.NotFound {
		t.Errorf("job-status of a deleted job: %v", err)
	}
	if _, err := e.tryRead("jobs/" + base); status.Code(err) != codes.NotFound {
		t.Errorf("DoGet of a deleted job: %v", err)
	}
	if ids, _ := e.list(t, `{}`); slices.Contains(ids, base) {
		t.Errorf("list-jobs still lists the deleted job")
	}
	after := e.read(t, "jobs/"+sub.JobID)
	if after.NumRows() != before.NumRows() || after.NumRows() == 0 {
		t.Errorf("the reader's result went from %d to %d rows", before.NumRows(), after.NumRows())
	}
	before.Release()
	after.Release()
	if _, err := e.action(t, api.ActionRun, `{"function": "copy", "dataset": "jobs/`+base+`"}`); status.Code(err) != codes.NotFound {
		t.Errorf("a job over a deleted result: %v, want NotFound", err)
	}

	// Cancelled, then deletable; a deleted job is deleted once.
	if _, err := e.action(t, api.ActionCancelJob, api.JobRef{JobID: held}); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, held, "CANCELLED")
	if err := del(ref(held, false)); err != nil {
		t.Fatalf("delete of a cancelled job: %v", err)
	}
	if keys := e.storeKeys(t, held); len(keys) != 0 {
		t.Errorf("the store still holds %v", keys)
	}
	if err := del(ref(held, false)); status.Code(err) != codes.NotFound {
		t.Errorf("second delete: %v, want NotFound", err)
	}
}

// TestKeepResults: Expire deletes the jobs that ended longer ago than the
// retention time on the manager's clock, never a running job nor the input of
// one, and leaves nothing of them in the store; a restarted manager does not
// find them again.
func TestKeepResults(t *testing.T) {
	e := newHistoryEnv(t, batch.Options{})
	ctx := context.Background()
	keep := 24 * time.Hour
	old := e.submit(t, `{"dataset": "demo", "fs": 250}`)
	e.waitFor(t, old, "SUCCEEDED")
	failed := e.submit(t, `{"dataset": "demo", "fs": 250, "nperseg": 64, "labels": {"outcome": "fail"}}`)
	e.waitFor(t, failed, "FAILED")
	input := e.submit(t, `{"dataset": "demo", "fs": 250, "nperseg": 32}`)
	e.waitFor(t, input, "SUCCEEDED")
	e.clock.Advance(keep - time.Minute)
	young := e.submit(t, `{"dataset": "demo2", "fs": 250}`)
	e.waitFor(t, young, "SUCCEEDED")
	out, err := e.action(t, api.ActionRun, `{"function": "copy", "dataset": "jobs/`+input+`", "labels": {"outcome": "hold"}}`)
	if err != nil {
		t.Fatal(err)
	}
	var reader api.SubmitResult
	_ = json.Unmarshal(out, &reader)
	e.waitFor(t, reader.JobID, "RUNNING")

	// Nothing has ended keep ago yet.
	if deleted, err := e.jobs.Expire(ctx, keep); err != nil || len(deleted) != 0 {
		t.Fatalf("Expire before the time deleted %v (%v)", deleted, err)
	}
	e.clock.Advance(2 * time.Minute)
	deleted, err := e.jobs.Expire(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{old, failed}
	if strings.Join(deleted, ",") != strings.Join(want, ",") {
		t.Errorf("Expire deleted %v, want %v (not the running job's input %s, nor the young %s)", deleted, want, input, young)
	}
	for _, id := range want {
		if keys := e.storeKeys(t, id); len(keys) != 0 {
			t.Errorf("the store still holds %v", keys)
		}
	}
	ids, _ := e.list(t, `{}`)
	if strings.Join(ids, ",") != strings.Join([]string{input, young, reader.JobID}, ",") {
		t.Errorf("left jobs %v", ids)
	}

	// Once its reader has ended, the input goes too, at the next sweep.
	if _, err := e.action(t, api.ActionCancelJob, api.JobRef{JobID: reader.JobID}); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, reader.JobID, "CANCELLED")
	e.clock.Advance(keep + time.Hour)
	deleted, err = e.jobs.Expire(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(deleted, ",") != strings.Join([]string{input, young, reader.JobID}, ",") {
		t.Errorf("second sweep deleted %v", deleted)
	}
	objs, err := e.st.List(ctx, "jobs/")
	if err != nil || len(objs) != 0 {
		t.Errorf("the store still holds %v (%v)", objs, err)
	}

	// A restarted manager on the same store finds no job.
	again := batch.NewManager(e.cat, analysis.Builtins(), local.New(nil, 1, nil), &batch.Options{Log: slog.New(slog.DiscardHandler)})
	defer again.Close()
	if err := again.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if left := again.List(""); len(left) != 0 {
		t.Errorf("a restarted manager found %d jobs", len(left))
	}
}

// TestShardsInfoBeforeAnyPart: GetFlightInfo jobs/<id>/shards lists the
// finished parts at any time, also before the first part of a job whose
// function declares no result schema: no endpoint yet, no schema yet, not an
// error (as PollFlightInfo's info). A job cancelled before any part
// finished lists none likewise.
func TestShardsInfoBeforeAnyPart(t *testing.T) {
	e := newHistoryEnv(t, batch.Options{})
	body, err := e.action(t, api.ActionRun, `{"function": "copy-late", "dataset": "demo", "labels": {"outcome": "hold"}}`)
	if err != nil {
		t.Fatal(err)
	}
	var sub api.SubmitResult
	if err := json.Unmarshal(body, &sub); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, sub.JobID, "RUNNING")
	for _, when := range []string{"running", "cancelled"} {
		if when == "cancelled" {
			if _, err := e.action(t, api.ActionCancelJob, api.JobRef{JobID: sub.JobID}); err != nil {
				t.Fatal(err)
			}
			e.waitFor(t, sub.JobID, "CANCELLED")
		}
		info, err := e.client.GetFlightInfo(context.Background(), &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", sub.JobID, "shards"}})
		if err != nil {
			t.Fatalf("%s, no part yet: GetFlightInfo jobs/%s/shards: %v", when, sub.JobID, err)
		}
		if len(info.Endpoint) != 0 || info.TotalRecords != 0 {
			t.Errorf("%s, no part yet: %d endpoints, %d records; want none", when, len(info.Endpoint), info.TotalRecords)
		}
	}
}
