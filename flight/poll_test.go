package flight_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/internal/testserver"
	"github.com/flightbatch/flightbatch/pkg/api"
)

func psdCommand(extra string) *aflight.FlightDescriptor {
	body := `{"dataset": "demo", "fs": 250, "nperseg": 256, "bands": {"beta": [13, 30]}` + extra + `}`
	return &aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(body)}
}

// TestPollFlightInfoFollowsJob follows a psd job from its command descriptor to
// the final FlightInfo with arrow-go's PollFlightInfo, checks that endpoints
// are only ever appended, and streams the result from the final tickets.
func TestPollFlightInfoFollowsJob(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	g := newGate("part-00000", "part-00002")
	// A hold far longer than the bound below tells a first poll that returns
	// at once from one that is held, however loaded the machine.
	srv := testserver.Start(t, testserver.Options{Fault: g.fault, Workers: 4, PollHold: 30 * time.Second})
	c := dial(t, srv.Addr)
	ctx := context.Background()

	start := time.Now()
	pi, err := c.PollFlightInfo(ctx, psdCommand(""))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("first poll took %s; it must return at once, not after the %s hold", d, 30*time.Second)
	}
	next := pi.GetFlightDescriptor()
	if next == nil || len(next.Path) != 4 || next.Path[0] != "jobs" || next.Path[2] != "poll" {
		t.Fatalf("first poll's next descriptor = %v, want [jobs <id> poll <token>]", next)
	}
	id := next.Path[1]
	if got := pi.GetInfo().GetFlightDescriptor().GetPath(); strings.Join(got, "/") != "jobs/"+id {
		t.Errorf("info descriptor = %v", got)
	}
	if pi.ExpirationTime == nil || !pi.ExpirationTime.AsTime().After(time.Now()) {
		t.Errorf("expiration_time = %v, want a time ahead", pi.ExpirationTime)
	}
	var meta api.JobStatus
	if err := json.Unmarshal(pi.GetInfo().GetAppMetadata(), &meta); err != nil || meta.JobID != id {
		t.Fatalf("info app_metadata = %s (%v), want the job status", pi.GetInfo().GetAppMetadata(), err)
	}

	var seen []string // tickets so far
	opened := false
	polls := 0
	for next != nil {
		polls++
		if polls > 200 {
			t.Fatal("job did not finish")
		}
		if !opened && polls > 1 {
			// Let shard 2 finish before shard 0: the info lists it at once.
			g.open("part-00002")
			time.Sleep(200 * time.Millisecond)
			opened = true
		} else if opened {
			g.open("part-00000")
		}
		pi, err = c.PollFlightInfo(ctx, next)
		if err != nil {
			t.Fatal(err)
		}
		p := pi.GetProgress()
		if pi.Progress == nil || p < 0 || p > 1 {
			t.Errorf("progress = %v, want a value in [0, 1]", pi.Progress)
		}
		var tickets []string
		for _, ep := range pi.GetInfo().GetEndpoint() {
			tickets = append(tickets, string(ep.GetTicket().GetTicket()))
		}
		if len(tickets) < len(seen) || strings.Join(tickets[:len(seen)], ",") != strings.Join(seen, ",") {
			t.Fatalf("endpoints went from %v to %v; they may only be appended", seen, tickets)
		}
		if pi.FlightDescriptor != nil && len(tickets) > 0 && p == 0 {
			t.Errorf("%d endpoints listed at progress 0", len(tickets))
		}
		seen = tickets
		next = pi.GetFlightDescriptor()
	}
	if pi.GetProgress() != 1 {
		t.Errorf("final progress = %v, want 1", pi.GetProgress())
	}
	info := pi.GetInfo()
	// Parts are listed as they finished (TestPollListsLastShardFirst pins the
	// order down): every part once.
	sorted := append([]string(nil), seen...)
	slices.Sort(sorted)
	want := []string{"jobs/" + id + "/part-00000", "jobs/" + id + "/part-00001", "jobs/" + id + "/part-00002", "jobs/" + id + "/part-00003"}
	if !slices.Equal(sorted, want) {
		t.Fatalf("final endpoints = %v, want each of %v once", seen, want)
	}
	if info.Ordered {
		t.Error("final info says ordered, but its endpoints are in finishing order")
	}
	ds, err := srv.Catalog.Get(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if info.TotalRecords != ds.Rows() {
		t.Errorf("total_records = %d, want %d", info.TotalRecords, ds.Rows())
	}
	schema, err := aflight.DeserializeSchema(info.Schema, mem)
	if err != nil {
		t.Fatal(err)
	}
	if schema.NumFields() != 8 || !schema.HasField("beta_power") {
		t.Errorf("final schema = %v", schema)
	}

	// Reading every endpoint in the order of its "index" gives the merged result.
	byIndex := make([]*aflight.FlightEndpoint, len(info.Endpoint))
	for _, ep := range info.Endpoint {
		var em struct{ Index int }
		if err := json.Unmarshal(ep.AppMetadata, &em); err != nil || em.Index < 0 || em.Index >= len(byIndex) || byIndex[em.Index] != nil {
			t.Fatalf("endpoint app_metadata %s: %v", ep.AppMetadata, err)
		}
		byIndex[em.Index] = ep
	}
	var rows int64
	var channels []string
	for _, ep := range byIndex {
		n, ch, err := readAll(t, c, mem, string(ep.Ticket.Ticket), "channel")
		if err != nil {
			t.Fatal(err)
		}
		rows += n
		channels = append(channels, ch...)
	}
	n, merged, err := readAll(t, c, mem, "jobs/"+id, "channel")
	if err != nil {
		t.Fatal(err)
	}
	if rows != ds.Rows() || n != rows || strings.Join(channels, ",") != strings.Join(merged, ",") {
		t.Errorf("endpoints give %d rows, merged result %d, dataset %d (or the order differs)", rows, n, ds.Rows())
	}

	// A finished job's first poll is the final info at once.
	pi, err = c.PollFlightInfo(ctx, &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id}})
	if err != nil || pi.FlightDescriptor != nil || len(pi.Info.Endpoint) != 4 {
		t.Errorf("poll of a finished job = %v, %v", pi, err)
	}
}

// TestPollHoldsContinuation checks the long poll: a continuation poll waits
// while the job does not change and answers as soon as it does.
func TestPollHoldsContinuation(t *testing.T) {
	g := newGate("part-00000")
	// The change comes 100 ms into a 6 s hold: a poll that answers before
	// 5.5 s answered the change, with more than 5 s to spare on a loaded machine.
	hold := 6 * time.Second
	srv := testserver.Start(t, testserver.Options{Fault: g.fault, Shards: 1, Records: 8, PollHold: hold})
	c := dial(t, srv.Addr)
	ctx := context.Background()
	pi, err := c.PollFlightInfo(ctx, psdCommand(""))
	if err != nil {
		t.Fatal(err)
	}
	id := pi.FlightDescriptor.Path[1]
	// Wait until the child runs, so that nothing changes until the gate opens.
	for jobStatus(t, c, id).Shards.Running == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	pi, err = c.PollFlightInfo(ctx, &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pi2, err := c.PollFlightInfo(ctx, pi.FlightDescriptor)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < hold-50*time.Millisecond {
		t.Errorf("continuation poll of an unchanged job returned after %s, want it held for %s", d, hold)
	}
	if pi2.FlightDescriptor == nil || strings.Join(pi2.FlightDescriptor.Path, "/") != strings.Join(pi.FlightDescriptor.Path, "/") {
		t.Errorf("unchanged job's next descriptor = %v, want %v", pi2.FlightDescriptor, pi.FlightDescriptor)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		g.open("part-00000")
	}()
	srv2 := time.Now()
	pi3, err := c.PollFlightInfo(ctx, pi2.FlightDescriptor)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(srv2); d > hold-500*time.Millisecond && pi3.FlightDescriptor != nil {
		t.Errorf("continuation poll took %s after the job changed", d)
	}
}

func pollUntilDone(t *testing.T, c aflight.Client, d *aflight.FlightDescriptor) (*aflight.PollInfo, error) {
	t.Helper()
	for i := 0; i < 500; i++ {
		pi, err := c.PollFlightInfo(context.Background(), d)
		if err != nil || pi.FlightDescriptor == nil {
			return pi, err
		}
		d = pi.FlightDescriptor
	}
	t.Fatal("job did not finish")
	return nil, nil
}

// TestPollFailedJob checks that a FAILED job answers Aborted with each failed
// shard, and that its finished parts stay readable.
func TestPollFailedJob(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	fault := func(ctx context.Context, jobID, shard string, attempt int) error {
		if shard == "part-00001" {
			return errInjected
		}
		return nil
	}
	srv := testserver.Start(t, testserver.Options{Fault: fault, MaxAttempts: 2})
	c := dial(t, srv.Addr)
	pi, err := c.PollFlightInfo(context.Background(), psdCommand(""))
	if err != nil {
		t.Fatal(err)
	}
	id := pi.FlightDescriptor.Path[1]
	_, err = pollUntilDone(t, c, pi.FlightDescriptor)
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "FAILED") || !strings.Contains(err.Error(), "part-00001") || !strings.Contains(err.Error(), "2 attempt") {
		t.Fatalf("poll of a failed job: %v; want Aborted naming the state, shard and attempts", err)
	}
	st := jobStatus(t, c, id)
	if st.State != "FAILED" || len(st.Failures) != 1 || st.Failures[0].Shard != "part-00001" || st.Failures[0].Attempts != 2 || len(st.Failures[0].Errors) != 2 {
		t.Fatalf("job-status = %+v; want FAILED with part-00001's two failed attempts", st)
	}
	if !strings.Contains(st.Failures[0].Errors[0], "injected") {
		t.Errorf("failure errors = %v", st.Failures[0].Errors)
	}
	for _, sh := range []string{"part-00000", "part-00002", "part-00003"} {
		if n, _, err := readAll(t, c, mem, "jobs/"+id+"/"+sh, ""); err != nil || n == 0 {
			t.Errorf("part %s of a failed job: %d rows, %v", sh, n, err)
		}
	}
	if _, _, err := readAll(t, c, mem, "jobs/"+id+"/part-00001", ""); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("failed part: %v, want FailedPrecondition", err)
	}
	info, err := c.GetFlightInfo(context.Background(), &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id, "shards"}})
	if err != nil || len(info.Endpoint) != 3 {
		t.Errorf("jobs/<id>/shards of a failed job: %v, %v; want 3 endpoints", info, err)
	}
}

// TestPollCancelledJob cancels a running job and checks the poll reports it.
func TestPollCancelledJob(t *testing.T) {
	g := newGate("part-00000", "part-00001", "part-00002", "part-00003")
	srv := testserver.Start(t, testserver.Options{Fault: g.fault})
	c := dial(t, srv.Addr)
	pi, err := c.PollFlightInfo(context.Background(), psdCommand(""))
	if err != nil {
		t.Fatal(err)
	}
	id := pi.FlightDescriptor.Path[1]
	for jobStatus(t, c, id).Shards.Running == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	mustAction(t, c, api.ActionCancelJob, api.JobRef{JobID: id}, nil)
	_, err = pollUntilDone(t, c, pi.FlightDescriptor)
	if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "CANCELLED") {
		t.Fatalf("poll of a cancelled job: %v; want Aborted naming CANCELLED", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel took %s", d)
	}
}

// TestPollBadDescriptors checks the errors of descriptors PollFlightInfo does
// not take.
func TestPollBadDescriptors(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Shards: 1, Records: 4})
	c := dial(t, srv.Addr)
	cases := []struct {
		d    *aflight.FlightDescriptor
		code codes.Code
	}{
		{&aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", "20260101T000000000Z-abcdef"}}, codes.NotFound},
		{&aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", "nope"}}, codes.NotFound},
		{&aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"datasets", "demo"}}, codes.InvalidArgument},
		{&aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(`{"dataset": "demo", "fs": -1}`)}, codes.InvalidArgument},
		{&aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(`{"dataset": "nosuch", "fs": 250}`)}, codes.NotFound},
		{&aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(`{"dataset": "demo", "fs": 250, "bogus": 1}`)}, codes.InvalidArgument},
		{&aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(`{not json`)}, codes.InvalidArgument},
	}
	for _, tc := range cases {
		_, err := c.PollFlightInfo(context.Background(), tc.d)
		if status.Code(err) != tc.code {
			t.Errorf("PollFlightInfo(%v) = %v, want %v", tc.d, err, tc.code)
		}
	}
	var jobs api.ListJobsResult
	mustAction(t, c, api.ActionListJobs, map[string]any{}, &jobs)
	if len(jobs.Jobs) != 0 {
		t.Errorf("bad requests created %d jobs", len(jobs.Jobs))
	}
}

// TestPollListsLastShardFirst: when the last-listed shard finishes first, its
// endpoint is in the next poll, while every other shard still runs; the
// job-status in app_metadata and total_bytes follow.
func TestPollListsLastShardFirst(t *testing.T) {
	g := newGate("part-00000", "part-00001", "part-00002")
	srv := testserver.Start(t, testserver.Options{Fault: g.fault, Workers: 4})
	c := dial(t, srv.Addr)
	ctx := context.Background()
	pi, err := c.PollFlightInfo(ctx, psdCommand(""))
	if err != nil {
		t.Fatal(err)
	}
	id := pi.FlightDescriptor.Path[1]
	next := pi.FlightDescriptor
	last := "jobs/" + id + "/part-00003"
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("the last shard's endpoint never appeared")
		}
		var eps []string
		for _, ep := range pi.Info.Endpoint {
			eps = append(eps, string(ep.Ticket.Ticket))
		}
		if len(eps) > 0 {
			if len(eps) != 1 || eps[0] != last {
				t.Fatalf("endpoints %v, want only %s", eps, last)
			}
			var em struct {
				Shard string
				Index int
				Rows  int64
			}
			if err := json.Unmarshal(pi.Info.Endpoint[0].AppMetadata, &em); err != nil || em.Shard != "part-00003" || em.Index != 3 || em.Rows <= 0 {
				t.Errorf("endpoint app_metadata %s (%v)", pi.Info.Endpoint[0].AppMetadata, err)
			}
			var st api.JobStatus
			if err := json.Unmarshal(pi.Info.AppMetadata, &st); err != nil || st.State != "RUNNING" || st.Shards.Succeeded != 1 || st.Progress != 0.25 {
				t.Errorf("info app_metadata %s (%v), want RUNNING with 1 of 4 shards", pi.Info.AppMetadata, err)
			}
			if pi.GetProgress() != 0.25 {
				t.Errorf("progress %v, want 0.25", pi.GetProgress())
			}
			if pi.Info.TotalRecords != em.Rows {
				t.Errorf("total_records %d, want the listed part's %d", pi.Info.TotalRecords, em.Rows)
			}
			obj, err := srv.Store.Stat(ctx, "jobs/"+id+"/parts/part-00003.arrow")
			if err != nil {
				t.Fatal(err)
			}
			if pi.Info.TotalBytes != obj.Size {
				t.Errorf("total_bytes %d, want the listed part's size %d", pi.Info.TotalBytes, obj.Size)
			}
			break
		}
		if pi, err = c.PollFlightInfo(ctx, next); err != nil {
			t.Fatal(err)
		}
		next = pi.FlightDescriptor
	}
	for _, s := range []string{"part-00000", "part-00001", "part-00002"} {
		g.open(s)
	}
	final, err := pollUntilDone(t, c, next)
	if err != nil {
		t.Fatal(err)
	}
	if len(final.Info.Endpoint) != 4 || string(final.Info.Endpoint[0].Ticket.Ticket) != last {
		t.Errorf("final endpoints %v, want 4 starting with %s", final.Info.Endpoint, last)
	}

	// GetFlightInfo of the merged result: total_bytes and the job's status.
	info, err := c.GetFlightInfo(ctx, &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id}})
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	objs, err := srv.Store.List(ctx, "jobs/"+id+"/parts/")
	if err != nil {
		t.Fatal(err)
	}
	parts := 0
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".arrow") {
			size += o.Size
			parts++
		}
	}
	if parts != 4 {
		t.Fatalf("%d parts in %v", parts, objs)
	}
	if info.TotalBytes != size || size <= 0 {
		t.Errorf("total_bytes %d, want the parts' %d", info.TotalBytes, size)
	}
	var st api.JobStatus
	if err := json.Unmarshal(info.AppMetadata, &st); err != nil || st.State != "SUCCEEDED" || st.Progress != 1 || st.JobID != id {
		t.Errorf("app_metadata %s (%v), want the job's status", info.AppMetadata, err)
	}
}
