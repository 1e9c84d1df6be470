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

// manyShards is a running job of n shards: every 7th failed, every 11th
// running, every 13th pending, the rest succeeded.
func manyShards(n int) *batch.Manifest {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	m := &batch.Manifest{JobID: batch.NewJobID(t0), Function: "psd", Dataset: "demo", State: batch.StateRunning,
		Executor: "local", CreatedAt: t0, StartedAt: &t0}
	for i := range n {
		s0, s1 := t0.Add(time.Duration(i)*time.Second), t0.Add(time.Duration(i+1)*time.Second)
		s := batch.ShardRecord{Name: fmt.Sprintf("part-%05d", i), State: batch.ShardSucceeded, Attempts: 1, StartedAt: &s0, FinishedAt: &s1}
		switch {
		case i%7 == 0:
			s.State, s.Attempts = batch.ShardFailed, 3
			s.Errors = []batch.AttemptError{{Attempt: 3, Error: "exit status 1", At: s1}}
		case i%11 == 0:
			s.State, s.FinishedAt = batch.ShardRunning, nil
		case i%13 == 0:
			s.State, s.Attempts, s.StartedAt, s.FinishedAt = batch.ShardPending, 0, nil, nil
		}
		m.Shards = append(m.Shards, s)
	}
	return m
}

var (
	shardRowRE = regexp.MustCompile(`<tr class="shard" data-shard="([^"]+)" data-state="([A-Z]+)"`)
	nextRE     = regexp.MustCompile(`<a id="next" href="([^"]+)"`)
	liveRE     = regexp.MustCompile(`<div id="job-live" data-etag="([^"]+)">`)
)

// TestJobPageIsBounded: a job of many shards shows a page of them, of all
// states or of one; following "next shards" visits every shard once, in the
// manifest's order, with pages of a bounded size; the page's refresh fetches
// the summary and the page's shards only, and nothing when they have not
// changed; bad queries get 400 and a short message.
func TestJobPageIsBounded(t *testing.T) {
	const n = 2345
	m := manyShards(n)
	srv := httptest.NewServer(console.New(console.Options{Jobs: fakeJobs{m}, Metrics: http.NotFoundHandler(), Log: quiet}))
	t.Cleanup(srv.Close)
	want := map[batch.ShardState][]string{}
	for _, s := range m.Shards {
		want[""] = append(want[""], s.Name)
		want[s.State] = append(want[s.State], s.Name)
	}
	for _, st := range []batch.ShardState{"", batch.ShardFailed, batch.ShardRunning, batch.ShardPending, batch.ShardSucceeded, batch.ShardCancelled} {
		path := "/jobs/" + m.JobID
		if st != "" {
			path += "?state=" + strings.ToLower(string(st))
		}
		var seen []string
		for p := 0; ; p++ {
			code, body := get(t, srv.Client(), srv.URL+path, nil)
			if code != 200 {
				t.Fatalf("GET %s: %d %.300s", path, code, body)
			}
			if len(body) > 64<<10 {
				t.Errorf("GET %s: %d bytes, want at most 64 KiB", path, len(body))
			}
			rows := shardRowRE.FindAllStringSubmatch(body, -1)
			if len(rows) > console.DefaultPageShards {
				t.Fatalf("GET %s: %d shards, want at most %d", path, len(rows), console.DefaultPageShards)
			}
			for _, r := range rows {
				if st != "" && r[2] != string(st) {
					t.Fatalf("GET %s shows %s in state %s", path, r[1], r[2])
				}
				seen = append(seen, r[1])
			}
			if !strings.Contains(body, `data-total="2345"`) || !strings.Contains(body, "<script") {
				t.Fatalf("GET %s: the summary of the running job is missing, or the page does not refresh", path)
			}
			next := nextRE.FindStringSubmatch(body)
			if next == nil {
				break
			}
			if p > n/console.DefaultPageShards+1 {
				t.Fatalf("%s: more pages than the job has shards", path)
			}
			path = strings.ReplaceAll(next[1], "&amp;", "&")
		}
		if fmt.Sprint(seen) != fmt.Sprint(want[st]) {
			t.Errorf("state %q: the pages show %d shards, want the job's %d once each, in order", st, len(seen), len(want[st]))
		}
	}
	if _, body := get(t, srv.Client(), srv.URL+"/jobs/"+m.JobID+"?limit=100000", nil); len(shardRowRE.FindAllString(body, -1)) != console.MaxPageShards {
		t.Errorf("?limit=100000 shows %d shards, want %d", len(shardRowRE.FindAllString(body, -1)), console.MaxPageShards)
	}
	if _, body := get(t, srv.Client(), srv.URL+"/jobs/"+m.JobID+"?from=99999", nil); len(shardRowRE.FindAllString(body, -1)) != 0 || !strings.Contains(body, `id="first"`) {
		t.Errorf("?from= past the last shard: want no shards and a link to the first")
	}

	// The refresh: the summary and the page's shards alone, with the ETag
	// the page carries; 304 and no body when unchanged.
	base := "/jobs/" + m.JobID + "?state=RUNNING"
	for try := 0; ; try++ {
		_, body := get(t, srv.Client(), srv.URL+base, nil)
		lm := liveRE.FindStringSubmatch(body)
		if lm == nil {
			t.Fatal("the page's live part carries no ETag")
		}
		etag := strings.ReplaceAll(lm[1], "&#34;", `"`)
		resp, err := srv.Client().Get(srv.URL + base + "&rows=1")
		if err != nil {
			t.Fatal(err)
		}
		live := readAll(t, resp)
		if resp.StatusCode != 200 || strings.Contains(live, "<html") || strings.Contains(live, "<script") ||
			!strings.Contains(live, `id="job-state"`) || len(shardRowRE.FindAllString(live, -1)) != len(shardRowRE.FindAllString(body, -1)) {
			t.Fatalf("the refresh: %s, %d bytes: want the summary and the page's shards alone", resp.Status, len(live))
		}
		code, again := get(t, srv.Client(), srv.URL+base+"&rows=1", map[string]string{"If-None-Match": etag})
		if resp.Header.Get("ETag") == etag && code == http.StatusNotModified && again == "" {
			break
		}
		if try == 1 {
			t.Fatalf("refresh: ETag %q, the page's %q; with If-None-Match: %d and %d bytes, want 304 and none", resp.Header.Get("ETag"), etag, code, len(again))
		}
	}
	if code, _ := get(t, srv.Client(), srv.URL+base+"&rows=1", map[string]string{"If-None-Match": `"other"`}); code != 200 {
		t.Errorf("refresh with another ETag: %d, want 200", code)
	}

	long := strings.Repeat("y", 10<<10)
	for _, tc := range []struct{ query, says string }{
		{"limit=0", "limit"}, {"limit=x", "limit"}, {"limit=-5", "limit"}, {"limit=99999999999999999999999", "limit"},
		{"from=-1", "from"}, {"from=x", "from"}, {"from=" + long, "from"},
		{"state=DONE", "state"}, {"state=" + long, "state"}, {"state=%00", "state"},
	} {
		code, body := get(t, srv.Client(), srv.URL+"/jobs/"+m.JobID+"?"+tc.query, nil)
		if code != http.StatusBadRequest || !strings.HasPrefix(body, tc.says+" ") || len(body) > 512 {
			t.Errorf("?%.40s: %d %.100q (%d bytes); want 400 and a short message about %s", tc.query, code, body, len(body), tc.says)
		}
	}
}

// A finished job's page does not refresh itself, and its live part is the
// same at every request.
func TestFinishedJobPageIsStill(t *testing.T) {
	m := manyShards(30)
	end := m.CreatedAt.Add(time.Hour)
	m.State, m.FinishedAt = batch.StateFailed, &end
	for i := range m.Shards {
		if s := &m.Shards[i]; s.State == batch.ShardRunning || s.State == batch.ShardPending {
			s.State, s.FinishedAt = batch.ShardCancelled, &end
		}
	}
	srv := httptest.NewServer(console.New(console.Options{Jobs: fakeJobs{m}, Metrics: http.NotFoundHandler(), Log: quiet}))
	t.Cleanup(srv.Close)
	_, body := get(t, srv.Client(), srv.URL+"/jobs/"+m.JobID, nil)
	if strings.Contains(body, "<script") || regexp.MustCompile(`data-running[ >]`).MatchString(body) {
		t.Error("a finished job's page refreshes itself")
	}
	for _, want := range []string{"timeline (1h 00m)", `id="filter-CANCELLED" href=`, "cancelled"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
