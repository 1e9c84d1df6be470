package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/console"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// TestUnchangedRefreshAllocatesLittle: a refresh answered 304 costs a few
// allocations, not a rendering of the page's jobs or shards (a job page of
// 100 shards rendered made about 15,000).
func TestUnchangedRefreshAllocatesLittle(t *testing.T) {
	big, id := bigJob(t, 20_000)
	for _, c := range []struct {
		name string
		jobs console.Jobs
		path string
	}{
		{"job", big, "/jobs/" + id + "?rows=1"},
		{"job-failed", big, "/jobs/" + id + "?rows=1&state=FAILED"},
		{"jobs", manyJobs(t, 300), "/jobs?rows=1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := console.New(console.Options{Jobs: c.jobs, Metrics: http.NotFoundHandler(), Log: quiet})
			first := httptest.NewRecorder()
			h.ServeHTTP(first, httptest.NewRequest("GET", c.path, nil))
			etag := first.Header().Get("ETag")
			if first.Code != 200 || etag == "" {
				t.Fatalf("GET %s: %d, ETag %q", c.path, first.Code, etag)
			}
			code := 0
			allocs := testing.AllocsPerRun(10, func() {
				req := httptest.NewRequest("GET", c.path, nil)
				req.Header.Set("If-None-Match", etag)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				code = w.Code
			})
			if code != http.StatusNotModified {
				t.Fatalf("refresh with the ETag: %d, want 304", code)
			}
			if allocs > 150 {
				t.Errorf("a 304 refresh makes %.0f allocations, want at most 150", allocs)
			}
		})
	}
}

// gates holds each attempt of a job's shard until its gate ("<job>/<shard>")
// opens.
type gates struct {
	mu   sync.Mutex
	open map[string]chan struct{}
}

func (g *gates) of(shard string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch, ok := g.open[shard]
	if !ok {
		ch = make(chan struct{})
		g.open[shard] = ch
	}
	return ch
}

func (g *gates) fault(ctx context.Context, jobID, shard string, _ int) error {
	select {
	case <-g.of(jobID + "/" + shard):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gatedManager is a job manager over a memory store holding the demo
// dataset "demo" of shards shards and about bytes bytes, whose every child
// attempt waits until its gate in g opens.
func gatedManager(t *testing.T, shards int, bytes int64) (*batch.Manager, *gates) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat := dataset.NewCatalog(st)
	if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: shards, Bytes: bytes, Seconds: 4}); err != nil {
		t.Fatal(err)
	}
	g := &gates{open: map[string]chan struct{}{}}
	fns := analysis.Builtins()
	w := &batch.Worker{Store: st, Functions: fns, Fault: g.fault, Log: quiet}
	mg := batch.NewManager(cat, fns, local.New(w.RunShard, 4, nil), &batch.Options{Log: quiet, MaxAttempts: 1})
	t.Cleanup(mg.Close)
	if err := mg.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	return mg, g
}

// TestETagFollowsTheFragment runs jobs through their lives, a shard at a
// time, and refreshes the jobs page and a job's pages at every step, as
// the pages do: no ETag ever stands for two different fragments (a client
// holding it would be told 304 and keep a stale page), and a refresh with
// the current ETag is 304 once nothing changes.
func TestETagFollowsTheFragment(t *testing.T) {
	ctx := context.Background()
	mg, g := gatedManager(t, 3, 32<<10)
	srv := httptest.NewServer(console.New(console.Options{Jobs: mg, Metrics: http.NotFoundHandler(), Log: quiet}))
	t.Cleanup(srv.Close)

	seen := map[string]string{} // ETag -> fragment
	get := func(path, etag string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("ETag"), string(b)
	}
	var ids []string
	refresh := func(step string) {
		t.Helper()
		paths := []string{"/jobs?rows=1", "/jobs?rows=1&limit=1"}
		for _, id := range ids {
			paths = append(paths, "/jobs/"+id+"?rows=1", "/jobs/"+id+"?rows=1&state=SUCCEEDED", "/jobs/"+id+"?rows=1&limit=1&from=1")
		}
		for _, p := range paths {
			code, etag, body := get(p, "")
			if code == http.StatusNotFound {
				continue
			}
			if code != 200 || etag == "" {
				t.Fatalf("%s: GET %s: %d, ETag %q", step, p, code, etag)
			}
			if old, ok := seen[etag]; ok && old != body {
				t.Fatalf("%s: GET %s: ETag %s stands for two fragments:\n%s\n---\n%s", step, p, etag, old, body)
			}
			seen[etag] = body
		}
	}
	wait := func(id string, done func(batch.Counts, batch.State) bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			s, err := mg.Summary(id, 0)
			if err != nil {
				t.Fatal(err)
			}
			if done(s.Counts, s.Job.State) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s: still %s %+v", id, s.Job.State, s.Counts)
			}
			refresh("waiting")
			time.Sleep(20 * time.Millisecond)
		}
	}

	refresh("empty history")
	for j := range 2 {
		m, err := mg.Submit(ctx, batch.SubmitRequest{Function: "psd", Dataset: "demo", Params: json.RawMessage(fmt.Sprintf(`{"column":"samples","fs":250,"nperseg":%d}`, 64<<j))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.JobID)
		refresh(fmt.Sprintf("job %d submitted", j))
		shards := m.Shards
		for i, sh := range shards {
			close(g.of(m.JobID + "/" + sh.Name))
			wait(m.JobID, func(c batch.Counts, _ batch.State) bool { return c.Succeeded > i })
			refresh(fmt.Sprintf("job %d shard %d done", j, i))
		}
		wait(m.JobID, func(_ batch.Counts, s batch.State) bool { return s.Terminal() })
	}
	refresh("both ended")
	// Nothing changes now: the current ETags are answered 304.
	for _, p := range []string{"/jobs?rows=1", "/jobs/" + ids[0] + "?rows=1"} {
		_, etag, _ := get(p, "")
		if code, _, body := get(p, etag); code != http.StatusNotModified || body != "" {
			t.Fatalf("GET %s with its ETag: %d and %d bytes, want 304 and none", p, code, len(body))
		}
	}
	// Deleting a job changes the history's rows.
	_, before, _ := get("/jobs?rows=1", "")
	if err := mg.Delete(ctx, ids[0], false); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get("/jobs?rows=1", before); code != 200 {
		t.Fatalf("jobs rows after a delete, with the ETag of before: %d, want 200", code)
	}
	refresh("deleted")
	if len(seen) < 8 {
		t.Fatalf("only %d fragments seen", len(seen))
	}
}

// changing is the manager with a change made while a page's jobs or shards
// are read: during, when set, runs (once) before they are read.
type changing struct {
	*batch.Manager
	during func()
}

func (c *changing) take() {
	if f := c.during; f != nil {
		c.during = nil
		f()
	}
}

func (c *changing) ShardPage(id string, q batch.ShardQuery) (*batch.ShardPage, error) {
	c.take()
	return c.Manager.ShardPage(id, q)
}

func (c *changing) Summaries(q batch.Query) []batch.JobSummary {
	c.take()
	return c.Manager.Summaries(q)
}

// TestETagOfAPageReadWhileItsJobChanged: a job that changes between the
// version a page's ETag is made from and the reading of the page makes the
// page newer than that version; the page must not get the version's ETag,
// which already stands for the page as it was.
func TestETagOfAPageReadWhileItsJobChanged(t *testing.T) {
	ctx := context.Background()
	mg, g := gatedManager(t, 2, 16<<10)
	jobs := &changing{Manager: mg}
	srv := httptest.NewServer(console.New(console.Options{Jobs: jobs, Metrics: http.NotFoundHandler(), Log: quiet}))
	t.Cleanup(srv.Close)
	get := func(path string) (string, string) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
			t.Fatalf("GET %s: %d, ETag %q", path, resp.StatusCode, resp.Header.Get("ETag"))
		}
		return resp.Header.Get("ETag"), string(b)
	}
	submit := func() *batch.Manifest {
		t.Helper()
		m, err := mg.Submit(ctx, batch.SubmitRequest{Function: "psd", Dataset: "demo", Params: json.RawMessage(`{"column":"samples","fs":250,"nperseg":64}`)})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	waitFor := func(id string, done func(batch.JobSummary) bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			s, err := mg.Summary(id, 0)
			if err != nil {
				t.Fatal(err)
			}
			if done(s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s: still %s %+v", id, s.Job.State, s.Counts)
			}
		}
	}
	m := submit()
	waitFor(m.JobID, func(s batch.JobSummary) bool { return s.Counts.Running == len(m.Shards) })

	for _, c := range []struct {
		name, path      string
		prepare, change func()
	}{
		{name: "job page, a shard ends", path: "/jobs/" + m.JobID + "?rows=1", change: func() {
			close(g.of(m.JobID + "/" + m.Shards[0].Name))
			waitFor(m.JobID, func(s batch.JobSummary) bool { return s.Counts.Succeeded == 1 })
		}},
		// With every job ended, the history's rows get its version's ETag.
		{name: "jobs page, a job arrives", path: "/jobs?rows=1", prepare: func() {
			close(g.of(m.JobID + "/" + m.Shards[1].Name))
			waitFor(m.JobID, func(s batch.JobSummary) bool { return s.Job.State.Terminal() })
		}, change: func() { submit() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.prepare != nil {
				c.prepare()
			}
			before, body := get(c.path)
			jobs.during = c.change
			after, changed := get(c.path)
			if changed == body {
				t.Fatalf("GET %s: the page did not change", c.path)
			}
			if after == before {
				t.Errorf("GET %s: the page read while its job changed kept the ETag %s of the page before it", c.path, before)
			}
		})
	}
}
