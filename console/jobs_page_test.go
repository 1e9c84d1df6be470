package console_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/console"
)

// longHistory is n jobs a minute apart, the newest first running.
func longHistory(n int) fakeJobs {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var f fakeJobs
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Minute)
		end := at.Add(time.Second)
		m := &batch.Manifest{JobID: batch.NewJobID(at), Function: "psd", Dataset: "demo", State: batch.StateSucceeded,
			CreatedAt: at, StartedAt: &at, FinishedAt: &end,
			Shards: []batch.ShardRecord{{Name: "part-00000", State: batch.ShardSucceeded, Attempts: 1}}}
		if i == n-1 {
			m.State, m.FinishedAt, m.Shards[0].State = batch.StateRunning, nil, batch.ShardRunning
		}
		f = append(f, m)
	}
	return f
}

var (
	jobRowRE = regexp.MustCompile(`<tr class="job" data-job="([0-9TZa-f-]+)"`)
	linkRE   = regexp.MustCompile(`<a id="(older|more|newest)" href="([^"]+)"`)
)

// page reads the rows (job IDs in order) and the pager's links of a page.
func page(t *testing.T, srv *httptest.Server, path string) (ids []string, links map[string]string, body string) {
	t.Helper()
	code, body := get(t, srv.Client(), srv.URL+path, nil)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	for _, m := range jobRowRE.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	links = map[string]string{}
	for _, m := range linkRE.FindAllStringSubmatch(body, -1) {
		links[m[1]] = strings.ReplaceAll(m[2], "&amp;", "&")
	}
	return ids, links, body
}

// TestJobsPageIsBounded: with a long history the jobs page shows a page of
// it, newest first, with links to older jobs and to more per page; the
// pages together show every job once, in order; the page's refresh fetches
// its rows only, and nothing when they have not changed; and it refreshes
// only while a job on it runs.
func TestJobsPageIsBounded(t *testing.T) {
	const n = 2*console.DefaultPageJobs + 30
	hist := longHistory(n)
	srv := httptest.NewServer(console.New(console.Options{Jobs: hist, Metrics: http.NotFoundHandler(), Log: quiet}))
	t.Cleanup(srv.Close)
	var want []string
	for i := n - 1; i >= 0; i-- {
		want = append(want, hist[i].JobID)
	}

	var all []string
	path := "/jobs"
	for p := 0; ; p++ {
		ids, links, body := page(t, srv, path)
		if len(ids) > console.DefaultPageJobs {
			t.Fatalf("%s shows %d jobs, want at most %d", path, len(ids), console.DefaultPageJobs)
		}
		if refreshes := strings.Contains(body, "<script>"); refreshes != (p == 0) {
			t.Errorf("%s: refreshes %v; want a refresh only on the page with the running job", path, refreshes)
		}
		if p > 0 && links["newest"] != "/jobs" {
			t.Errorf("%s: link to the newest jobs %q", path, links["newest"])
		}
		all = append(all, ids...)
		if links["older"] == "" {
			break
		}
		if p > 3 {
			t.Fatal("more pages than the history fills")
		}
		path = links["older"]
	}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("the pages show %d jobs %v..., want the %d jobs newest first", len(all), all[:min(3, len(all))], len(want))
	}

	ids, links, _ := page(t, srv, "/jobs")
	ids2, _, _ := page(t, srv, links["more"])
	if links["more"] != fmt.Sprintf("/jobs?limit=%d", 2*console.DefaultPageJobs) || fmt.Sprint(ids2) != fmt.Sprint(want[:2*console.DefaultPageJobs]) {
		t.Errorf("show more: %q shows %d jobs, want the newest %d", links["more"], len(ids2), 2*console.DefaultPageJobs)
	}
	if big, _, _ := page(t, srv, "/jobs?limit=100000"); len(big) != n {
		t.Errorf("?limit=100000 shows %d jobs, want all %d (at most %d)", len(big), n, console.MaxPageJobs)
	}
	for _, bad := range []string{"/jobs?limit=0", "/jobs?limit=x", "/jobs?before=../etc", "/jobs?before=20261301T000000000Z-abcdef"} {
		if code, _ := get(t, srv.Client(), srv.URL+bad, nil); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", bad, code)
		}
	}

	// The refresh: the rows alone, with the ETag the page carries; 304 when
	// unchanged. (The running job's duration moves with the clock, by the
	// minute here: a second try covers a minute's turn.)
	for try := 0; ; try++ {
		_, _, body := page(t, srv, "/jobs")
		m := regexp.MustCompile(`<tbody id="job-rows" data-etag="([^"]+)">`).FindStringSubmatch(body)
		if m == nil {
			t.Fatal("the page's rows carry no ETag")
		}
		etag := strings.ReplaceAll(m[1], "&#34;", `"`)
		resp, err := srv.Client().Get(srv.URL + "/jobs?rows=1")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rows := string(b)
		if resp.StatusCode != 200 || strings.Contains(rows, "<html") || strings.Contains(rows, "<script") || len(jobRowRE.FindAllString(rows, -1)) != len(ids) {
			t.Fatalf("the rows refresh: %s, %d rows: want the %d rows alone", resp.Status, len(jobRowRE.FindAllString(rows, -1)), len(ids))
		}
		code, again := get(t, srv.Client(), srv.URL+"/jobs?rows=1", map[string]string{"If-None-Match": etag})
		if resp.Header.Get("ETag") == etag && code == http.StatusNotModified && again == "" {
			break
		}
		if try == 1 {
			t.Fatalf("rows refresh: ETag %q, the page's %q; with If-None-Match: %d and %d bytes, want 304 and none", resp.Header.Get("ETag"), etag, code, len(again))
		}
	}
	if code, _ := get(t, srv.Client(), srv.URL+"/jobs?rows=1", map[string]string{"If-None-Match": `"other"`}); code != 200 {
		t.Errorf("rows refresh with another ETag: %d, want 200", code)
	}
}
