package flight

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/pkg/api"
	"github.com/flightbatch/flightbatch/store"
)

// bigJobServer is a Flight server whose job history holds one finished job
// of n shards, every failEvery-th of them failed after 3 attempts (none, and
// the job SUCCEEDED, when failEvery is 0), and a small job; it returns the
// big job's ID.
func bigJobServer(tb testing.TB, n, failEvery int) (*Server, string) {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	end := at.Add(time.Hour)
	var buf bytes.Buffer
	sw := ipc.NewWriter(&buf, ipc.WithSchema(arrow.NewSchema([]arrow.Field{{Name: "psd", Type: arrow.PrimitiveTypes.Float64}}, nil)))
	if err := sw.Close(); err != nil {
		tb.Fatal(err)
	}
	schema := base64.StdEncoding.EncodeToString(buf.Bytes())
	var big string
	for j, shards := range []int{n, 3} {
		created := at.Add(time.Duration(j) * time.Minute)
		m := &batch.Manifest{JobID: batch.NewJobID(created), Function: "psd", Dataset: "demo", DatasetVersion: "v1",
			Params: json.RawMessage(`{"column":"samples","fs":250,"nperseg":512}`), State: batch.StateFailed,
			Error: "shards failed", MaxAttempts: 3, Executor: "local", CreatedAt: created, StartedAt: &created, FinishedAt: &end,
			SubmittedBy: "alice", Name: fmt.Sprintf("job-%d", j), Labels: map[string]string{"cohort": "pd"}}
		if failEvery == 0 {
			m.State, m.Error, m.ResultSchema = batch.StateSucceeded, "", schema
		}
		m.Shards = make([]batch.ShardRecord, shards)
		for i := range shards {
			rows := int64(100)
			name := fmt.Sprintf("part-%06d", i)
			s := batch.ShardRecord{Name: name, Input: "datasets/demo/" + name + ".arrow", Format: "arrow", InputRows: rows,
				State: batch.ShardSucceeded, Attempts: 1, Rows: &rows, Bytes: 1000, StartedAt: &created, FinishedAt: &end}
			if failEvery > 0 && i%failEvery == failEvery/2 {
				s.State, s.Attempts, s.Rows = batch.ShardFailed, 3, nil
				for a := 1; a <= 3; a++ {
					s.Errors = append(s.Errors, batch.AttemptError{Attempt: a, Error: fmt.Sprintf("exit status %d of %s", a, name), At: end})
				}
			}
			m.Shards[i] = s
		}
		if err := batch.SaveManifest(ctx, st, m); err != nil {
			tb.Fatal(err)
		}
		if j == 0 {
			big = m.JobID
		}
	}
	quiet := slog.New(slog.DiscardHandler)
	cat := dataset.NewCatalog(st)
	fns := analysis.Builtins()
	w := &batch.Worker{Store: st, Functions: fns}
	mg := batch.NewManager(cat, fns, local.New(w.RunShard, 1, nil), &batch.Options{Log: quiet})
	if err := mg.Recover(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(mg.Close)
	return NewServer(cat, mg, &Options{Log: quiet}), big
}

// TestListJobsOfABigJob checks list-jobs' answer for a job of many shards,
// more of them failed than an entry lists: the counts, the first
// MaxStatusFailures failed shards in shard order with every attempt's error,
// failures_total counting them all, and the same entry job-status gives;
// and that the call's allocations are bounded by the failures it lists, not
// by the job's shards (it used to copy the whole manifest).
func TestListJobsOfABigJob(t *testing.T) {
	const n, every = 30_000, 100 // 300 failed shards
	s, id := bigJobServer(t, n, every)
	out, err := s.actionListJobs([]byte(`{"order": "oldest"}`))
	if err != nil {
		t.Fatal(err)
	}
	jobs := out.(api.ListJobsResult).Jobs
	if len(jobs) != 2 || jobs[0].JobID != id {
		t.Fatalf("list-jobs: %d jobs, first %q; want 2, first %s", len(jobs), jobs[0].JobID, id)
	}
	got := jobs[0]
	failed := n / every
	if got.Shards.Total != n || got.Shards.Failed != failed || got.Shards.Succeeded != n-failed || got.FailuresTotal != failed {
		t.Fatalf("counts %+v, failures_total %d; want %d shards, %d failed", got.Shards, got.FailuresTotal, n, failed)
	}
	if len(got.Failures) != MaxStatusFailures {
		t.Fatalf("%d failures listed, want %d", len(got.Failures), MaxStatusFailures)
	}
	for i, f := range got.Failures {
		name := fmt.Sprintf("part-%06d", i*every+every/2)
		want := []string{"attempt 1: exit status 1 of " + name, "attempt 2: exit status 2 of " + name, "attempt 3: exit status 3 of " + name}
		if f.Shard != name || f.State != string(batch.ShardFailed) || f.Attempts != 3 || fmt.Sprint(f.Errors) != fmt.Sprint(want) {
			t.Fatalf("failure %d: %+v, want shard %s failed after 3 attempts with errors %q", i, f, name, want)
		}
	}
	if got.Name != "job-0" || got.Labels["cohort"] != "pd" || got.SubmittedBy != "alice" || string(got.Params) == "" || got.Progress <= 0 {
		t.Fatalf("entry lost the job's fields: %+v", got)
	}
	one, err := s.actionJobStatus([]byte(`{"job_id": "` + id + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(one)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Fatalf("job-status and list-jobs differ:\n%s\n%s", a, b)
	}
	// About 10 allocations per listed failure and a few per job; a copy of
	// the manifest makes several per shard.
	const bound = 20*MaxStatusFailures + 500
	for _, call := range []struct {
		name string
		run  func() error
	}{
		{"list-jobs", func() error { _, err := s.actionListJobs([]byte(`{}`)); return err }},
		{"job-status", func() error { _, err := s.actionJobStatus([]byte(`{"job_id": "` + id + `"}`)); return err }},
	} {
		var err error
		allocs := testing.AllocsPerRun(3, func() { err = call.run() })
		if err != nil {
			t.Fatal(err)
		}
		if allocs > bound {
			t.Errorf("%s with a job of %d shards makes %.0f allocations, want at most %d", call.name, n, allocs, bound)
		}
	}
}

// BenchmarkListJobs measures the bytes one list-jobs call allocates with a
// job of 100,000 shards (one in 100 failed) in the history: "all" lists
// every job, "newest" the newest one (the small job).
//
//	go test -run '^$' -bench ListJobs -benchmem ./flight/
func BenchmarkListJobs(b *testing.B) {
	s, _ := bigJobServer(b, 100_000, 100)
	for _, c := range []struct{ name, body string }{
		{"all", `{}`},
		{"newest", `{"order": "newest", "limit": 1}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.actionListJobs([]byte(c.body)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestJobFlightInfoOfABigJob: the FlightInfo of a succeeded job's merged
// result totals its parts' rows and bytes, and costs allocations bounded
// whatever the job's shards (it used to copy the whole manifest, twice).
func TestJobFlightInfoOfABigJob(t *testing.T) {
	const n = 30_000
	s, id := bigJobServer(t, n, 0)
	d := &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id}}
	info, err := s.GetFlightInfo(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if info.TotalRecords != 100*n || info.TotalBytes != 1000*n || len(info.Endpoint) != 1 {
		t.Fatalf("FlightInfo: %d records, %d bytes, %d endpoints; want %d, %d, 1", info.TotalRecords, info.TotalBytes, len(info.Endpoint), 100*n, 1000*n)
	}
	allocs := testing.AllocsPerRun(3, func() { _, err = s.GetFlightInfo(context.Background(), d) })
	if err != nil {
		t.Fatal(err)
	}
	if allocs > 2000 {
		t.Errorf("GetFlightInfo of a job of %d shards makes %.0f allocations, want at most 2000", n, allocs)
	}
}

// BenchmarkJobFlightInfo measures the bytes GetFlightInfo of a succeeded
// job's merged result allocates for a job of 100,000 shards.
//
//	go test -run '^$' -bench JobFlightInfo -benchmem ./flight/
func BenchmarkJobFlightInfo(b *testing.B) {
	s, id := bigJobServer(b, 100_000, 0)
	d := &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetFlightInfo(context.Background(), d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJobParts measures the bytes the listings of a job's parts
// allocate for a succeeded job of 100,000 shards: "shards" is GetFlightInfo
// of jobs/<id>/shards, "poll" the FlightInfo PollFlightInfo answers. Each
// lists 100,000 endpoints; neither copies the manifest any longer.
//
//	go test -run '^$' -bench JobParts -benchmem ./flight/
func BenchmarkJobParts(b *testing.B) {
	s, id := bigJobServer(b, 100_000, 0)
	ctx := context.Background()
	b.Run("shards", func(b *testing.B) {
		b.ReportAllocs()
		d := &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id, "shards"}}
		for b.Loop() {
			info, err := s.GetFlightInfo(ctx, d)
			if err != nil || len(info.Endpoint) != 100_000 {
				b.Fatalf("%v", err)
			}
		}
	})
	b.Run("poll", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pi, _, err := s.pollInfo(ctx, id)
			if err != nil || len(pi.Info.Endpoint) != 100_000 {
				b.Fatalf("%v", err)
			}
		}
	})
}
