package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/console"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// manyJobs is a job manager whose history holds n finished jobs of 8 shards
// each, as a server finds them in its store at start.
func manyJobs(tb testing.TB, n int) *batch.Manager {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Minute)
		end := at.Add(20 * time.Second)
		m := &batch.Manifest{JobID: batch.NewJobID(at), Function: "psd", Dataset: "demo", DatasetVersion: "v1",
			Params: json.RawMessage(`{"column":"samples","fs":250,"nperseg":512,"bands":{"beta":[13,30]}}`),
			State:  batch.StateSucceeded, MaxAttempts: 3, Executor: "local", CreatedAt: at, StartedAt: &at, FinishedAt: &end,
			SubmittedBy: "alice", Labels: map[string]string{"cohort": "pd"}}
		if i%10 == 3 {
			m.State, m.Error = batch.StateFailed, "shard part-00003 failed after 3 attempt(s): exit status 1"
		}
		for s := range 8 {
			rows := int64(100)
			name := fmt.Sprintf("part-%05d", s)
			m.Shards = append(m.Shards, batch.ShardRecord{Name: name, Input: "datasets/demo/" + name + ".arrow", Format: "arrow",
				InputRows: rows, State: batch.ShardSucceeded, Attempts: 1, Rows: &rows, StartedAt: &at, FinishedAt: &end})
		}
		if err := batch.SaveManifest(ctx, st, m); err != nil {
			tb.Fatal(err)
		}
	}
	cat := dataset.NewCatalog(st)
	fns := analysis.Builtins()
	w := &batch.Worker{Store: st, Functions: fns}
	mg := batch.NewManager(cat, fns, local.New(w.RunShard, 1, nil), &batch.Options{Log: quiet})
	if err := mg.Recover(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(mg.Close)
	return mg
}

var quiet = slog.New(slog.DiscardHandler)

// BenchmarkJobsPageRefresh measures what one refresh of the jobs page costs
// the server with 5,000 jobs in the history: the bytes sent and the CPU time
// of the process (server and the in-process client) per refresh. "page" is
// GET /jobs, what the page's refresh reloaded (all 5,000 jobs; now the
// first page); "rows" the refresh the page makes now, of its rows only, and
// "rows-unchanged" that refresh when they have not changed (304, no body).
//
//	go test -run '^$' -bench JobsPageRefresh -benchmem ./console/
func BenchmarkJobsPageRefresh(b *testing.B) {
	mg := manyJobs(b, 5000)
	srv := httptest.NewServer(console.New(console.Options{Jobs: mg, Metrics: http.NotFoundHandler(), Log: quiet}))
	b.Cleanup(srv.Close)
	first, err := srv.Client().Get(srv.URL + "/jobs?rows=1")
	if err != nil {
		b.Fatal(err)
	}
	first.Body.Close()
	etag := first.Header.Get("ETag")
	for _, c := range []struct {
		name, path, etag string
		code             int
	}{
		{"page", "/jobs", "", 200},
		{"rows", "/jobs?rows=1", "", 200},
		{"rows-unchanged", "/jobs?rows=1", etag, 304},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.code == 304 && etag == "" {
				b.Skip("no ETag: the rows refresh is not served")
			}
			var bytes int64
			cpu0 := cpuTime()
			for b.Loop() {
				req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
				if c.etag != "" {
					req.Header.Set("If-None-Match", c.etag)
				}
				resp, err := srv.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.code {
					b.Fatalf("GET %s: %s, want %d", c.path, resp.Status, c.code)
				}
				bytes += n
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "bytes/refresh")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/refresh")
		})
	}
}

// bigJob is a job manager whose history holds one finished job of n shards,
// one in 100 of them failed after 3 attempts; it returns the job's ID.
func bigJob(tb testing.TB, n int) (*batch.Manager, string) {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	end := at.Add(time.Hour)
	m := &batch.Manifest{JobID: batch.NewJobID(at), Function: "psd", Dataset: "demo", DatasetVersion: "v1",
		Params: json.RawMessage(`{"column":"samples","fs":250,"nperseg":512}`), State: batch.StateFailed,
		Error: "shard part-00050 failed after 3 attempt(s): exit status 1", MaxAttempts: 3, Executor: "local",
		CreatedAt: at, StartedAt: &at, FinishedAt: &end, SubmittedBy: "alice"}
	m.Shards = make([]batch.ShardRecord, n)
	for i := range n {
		rows := int64(100)
		name := fmt.Sprintf("part-%06d", i)
		s0, s1 := at.Add(time.Duration(i)*time.Hour/time.Duration(n)), at.Add(time.Duration(i+1)*time.Hour/time.Duration(n))
		s := batch.ShardRecord{Name: name, Input: "datasets/demo/" + name + ".arrow", Format: "arrow", InputRows: rows,
			State: batch.ShardSucceeded, Attempts: 1, Rows: &rows, StartedAt: &s0, FinishedAt: &s1}
		if i%100 == 50 {
			s.State, s.Attempts, s.Rows = batch.ShardFailed, 3, nil
			for a := 1; a <= 3; a++ {
				s.Errors = append(s.Errors, batch.AttemptError{Attempt: a, Error: "exit status 1", At: s1})
			}
		}
		m.Shards[i] = s
	}
	if err := batch.SaveManifest(ctx, st, m); err != nil {
		tb.Fatal(err)
	}
	cat := dataset.NewCatalog(st)
	fns := analysis.Builtins()
	w := &batch.Worker{Store: st, Functions: fns}
	mg := batch.NewManager(cat, fns, local.New(w.RunShard, 1, nil), &batch.Options{Log: quiet})
	if err := mg.Recover(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(mg.Close)
	return mg, m.JobID
}

// BenchmarkJobPageRefresh measures what one refresh of a job's page costs
// the server for a job of 100,000 shards: the bytes sent and the CPU time of
// the process (server and the in-process client) per refresh. "page" is GET
// /jobs/<id>, what the page reloaded every 1.5 s while the job ran (all
// 100,000 shards; now the first 100); "live" the refresh the page makes
// now, of the job's summary and the page's shards only, "live-unchanged"
// that refresh when they have not changed (304, no body), and
// "failed-live" the refresh of the page of the failed shards.
//
//	go test -run '^$' -bench JobPageRefresh -benchmem ./console/
func BenchmarkJobPageRefresh(b *testing.B) {
	mg, id := bigJob(b, 100_000)
	srv := httptest.NewServer(console.New(console.Options{Jobs: mg, Metrics: http.NotFoundHandler(), Log: quiet}))
	b.Cleanup(srv.Close)
	first, err := srv.Client().Get(srv.URL + "/jobs/" + id + "?rows=1")
	if err != nil {
		b.Fatal(err)
	}
	first.Body.Close()
	etag := first.Header.Get("ETag")
	for _, c := range []struct {
		name, path, etag string
		code             int
	}{
		{"page", "/jobs/" + id, "", 200},
		{"live", "/jobs/" + id + "?rows=1", "", 200},
		{"live-unchanged", "/jobs/" + id + "?rows=1", etag, 304},
		{"failed-live", "/jobs/" + id + "?rows=1&state=FAILED", "", 200},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.code == 304 && etag == "" {
				b.Skip("no ETag: the refresh is not served")
			}
			var bytes int64
			cpu0 := cpuTime()
			for b.Loop() {
				req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
				if c.etag != "" {
					req.Header.Set("If-None-Match", c.etag)
				}
				resp, err := srv.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.code {
					b.Fatalf("GET %s: %s, want %d", c.path, resp.Status, c.code)
				}
				bytes += n
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "bytes/refresh")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/refresh")
		})
	}
}
