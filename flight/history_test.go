package flight_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

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
	fns := batch.NewRegistry()
	quiet := slog.New(slog.DiscardHandler)
	w := &batch.Worker{Store: st, Functions: fns, Fault: fault, Log: quiet}
	opts.MaxAttempts, opts.Log, opts.Now = 1, quiet, clock.Now
	jobs := batch.NewManager(cat, fns, local.New(w.RunShard, 4), &opts)
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
