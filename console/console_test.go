package console_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/console"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/internal/testcerts"
	"github.com/flightbatch/flightbatch/internal/tlsfiles"
)

// fakeJobs is a job history of fixed manifests.
type fakeJobs []*batch.Manifest

// Summaries are the summaries of the jobs find keeps.
func (f fakeJobs) Summaries(q batch.Query) []batch.JobSummary {
	var out []batch.JobSummary
	for _, m := range f.find(q) {
		head := *m
		head.Shards = nil
		out = append(out, batch.JobSummary{Job: &head, Counts: m.Counts()})
	}
	return out
}

// find keeps the jobs created before q.Until (when set), in q's order, at
// most q.Limit.
func (f fakeJobs) find(q batch.Query) []*batch.Manifest {
	var out []*batch.Manifest
	for _, m := range f {
		if q.Until.IsZero() || m.CreatedAt.Before(q.Until) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return (out[i].JobID < out[j].JobID) != q.Newest })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

func (f fakeJobs) ShardPage(id string, q batch.ShardQuery) (*batch.ShardPage, error) {
	for _, m := range f {
		if m.JobID == id {
			return m.ShardPage(q), nil
		}
	}
	return nil, fmt.Errorf("job %q: %w", id, batch.ErrNotFound)
}

// JobVersion's Seq is a hash of the job's manifest: it changes whenever the
// manifest does.
func (f fakeJobs) JobVersion(id string) (batch.JobVersion, error) {
	for _, m := range f {
		if m.JobID == id {
			return batch.JobVersion{Seq: contentSeq(m), State: m.State, CreatedAt: m.CreatedAt, StartedAt: m.StartedAt, FinishedAt: m.FinishedAt}, nil
		}
	}
	return batch.JobVersion{}, fmt.Errorf("job %q: %w", id, batch.ErrNotFound)
}

// HistoryVersion's count is a hash of every manifest.
func (f fakeJobs) HistoryVersion(q batch.Query) (uint64, bool) {
	running := false
	for _, m := range f.find(batch.Query{Until: q.Until}) {
		running = running || !m.State.Terminal()
	}
	return contentSeq(f), running
}

func contentSeq(v any) uint64 {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

const jobID = "20261124T184501123Z-9f2c1a"

func history() fakeJobs {
	t0 := time.Date(2026, 11, 24, 18, 45, 1, 0, time.UTC)
	at := func(s float64) *time.Time { t := t0.Add(time.Duration(s * float64(time.Second))); return &t }
	return fakeJobs{{
		JobID: jobID, Function: "psd", Dataset: "demo<b>", State: batch.StateFailed, Executor: "local",
		SubmittedBy: `bob"><script>alert(1)</script>`, CreatedAt: t0, StartedAt: at(0), FinishedAt: at(10),
		Error: "shard part-00001 failed after 3 attempt(s): <img src=x onerror=alert(2)>",
		Shards: []batch.ShardRecord{
			{Name: "part-00000", State: batch.ShardSucceeded, Attempts: 1, StartedAt: at(0), FinishedAt: at(4)},
			{Name: "part-00001", State: batch.ShardFailed, Attempts: 3, StartedAt: at(1), FinishedAt: at(10),
				Errors: []batch.AttemptError{{Attempt: 3, Error: "<img src=x onerror=alert(2)>"}}},
			{Name: "part-00002", State: batch.ShardSucceeded, Attempts: 1, FinishedAt: at(2)},
		},
	}}
}

func newConsole(t *testing.T, auth *flight.Auth, health func(context.Context) error) *httptest.Server {
	t.Helper()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "flightbatch_jobs 1\n") })
	srv := httptest.NewServer(console.New(console.Options{Jobs: history(), Metrics: metrics, Auth: auth, Health: health}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, c *http.Client, u string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestJobPageEscapesAndShows(t *testing.T) {
	srv := newConsole(t, nil, nil)
	code, body := get(t, srv.Client(), srv.URL+"/jobs/"+jobID, nil)
	if code != 200 {
		t.Fatalf("status %d\n%s", code, body)
	}
	for _, bad := range []string{"<script>alert(1)", "<img src=x", "demo<b>"} {
		if strings.Contains(body, bad) {
			t.Errorf("the page holds %q unescaped", bad)
		}
	}
	for _, want := range []string{
		"2 of 3 child jobs succeeded, 1 failed", "&lt;img src=x onerror=alert(2)&gt;",
		`data-shard="part-00001" data-state="FAILED" data-attempts="3"`, "demo&lt;b&gt;",
		"left: 10%; width: 90%", // part-00001 ran from 1 s to 10 s of a 10 s job
		"left: 0%; width: 20%",  // part-00002 ended at 2 s, unseen running: from the job's start
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("a finished job's page refreshes itself")
	}
	code, body = get(t, srv.Client(), srv.URL+"/jobs", nil)
	if code != 200 || !strings.Contains(body, `href="/jobs/`+jobID+`"`) || !strings.Contains(body, "2 of 3 succeeded, 1 failed") {
		t.Errorf("job list: %d\n%s", code, body)
	}
	if code, _ := get(t, srv.Client(), srv.URL+"/jobs/20261124T184501123Z-000000", nil); code != 404 {
		t.Errorf("unknown job: %d", code)
	}
}

func TestAuth(t *testing.T) {
	auth, err := flight.NewAuth([]flight.Token{{Name: "alice", SHA256: sha256.Sum256([]byte("s3cret")), Role: flight.RoleRead}})
	if err != nil {
		t.Fatal(err)
	}
	srv := newConsole(t, auth, nil)
	noRedirect := *srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, path := range []string{"/metrics", "/jobs", "/jobs/" + jobID} {
		if code, _ := get(t, &noRedirect, srv.URL+path, nil); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d", path, code)
		}
		if code, _ := get(t, &noRedirect, srv.URL+path, map[string]string{"Authorization": "Bearer wrong"}); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d", path, code)
		}
		if code, _ := get(t, &noRedirect, srv.URL+path, map[string]string{"Authorization": "Bearer s3cret"}); code != 200 {
			t.Errorf("%s with the token: %d", path, code)
		}
	}
	if code, _ := get(t, &noRedirect, srv.URL+"/jobs", map[string]string{"Accept": "text/html"}); code != http.StatusSeeOther {
		t.Errorf("a browser without a token is not sent to the login form: %d", code)
	}
	if code, _ := get(t, &noRedirect, srv.URL+"/healthz", nil); code != 200 {
		t.Errorf("healthz needs no token: %d", code)
	}

	login := func(token, next string) *http.Response {
		resp, err := noRedirect.PostForm(srv.URL+"/login", url.Values{"token": {token}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := login("wrong", "/jobs"); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("login with a wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp := login("s3cret", "//evil.example/")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/jobs" {
		t.Errorf("login redirects to %q (%d)", resp.Header.Get("Location"), resp.StatusCode)
	}
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login cookie = %+v", ck)
	}
	if code, _ := get(t, &noRedirect, srv.URL+"/jobs", map[string]string{"Cookie": ck.Name + "=" + ck.Value}); code != 200 {
		t.Errorf("with the login cookie: %d", code)
	}
}

func TestHealthz(t *testing.T) {
	down := newConsole(t, nil, func(context.Context) error { return errors.New("no store") })
	if code, body := get(t, down.Client(), down.URL+"/healthz", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "not serving") {
		t.Errorf("healthz with the store down: %d %q", code, body)
	}
	up := newConsole(t, nil, func(context.Context) error { return nil })
	if code, body := get(t, up.Client(), up.URL+"/healthz", nil); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "lab")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	files, err := tlsfiles.NewServer(certFile, keyFile, ca.WriteCA(t, dir, "clients"), nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := flight.NewAuthWithCertificates(nil, []flight.Certificate{{Name: "alice", Subject: "CN=alice,O=Lab", Role: flight.RoleRead}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(console.New(console.Options{Jobs: history(), Metrics: http.NotFoundHandler(), Auth: auth, ClientCerts: files}))
	srv.TLS = files.Config("http/1.1")
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := func(l *testcerts.Leaf) *http.Client {
		cfg := &tls.Config{RootCAs: ca.Pool()}
		if l != nil {
			cfg.Certificates = []tls.Certificate{l.TLS(t)}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
	}
	alice, bob, old := ca.Client(t, "alice", "Lab"), ca.Client(t, "bob", "Lab"), ca.ExpiredClient(t, "alice", "Lab")
	for _, tc := range []struct {
		name string
		leaf *testcerts.Leaf
		path string
		code int
		body string
	}{
		{"listed certificate", &alice, "/jobs/" + jobID, 200, "part-00001"},
		{"unlisted certificate", &bob, "/jobs", 401, "authentication required"},
		{"expired certificate", &old, "/jobs", 401, "expired at"},
		{"no certificate", nil, "/jobs", 401, "no client certificate"},
		{"no certificate, healthz", nil, "/healthz", 200, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, client(tc.leaf), srv.URL+tc.path, nil)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Fatalf("%s: %d %q; want %d with %q", tc.path, code, body, tc.code, tc.body)
			}
		})
	}
}

// browserURL resolves a Location header as a browser does (the WHATWG URL
// parser): tabs and newlines are dropped anywhere, leading and trailing
// control characters and spaces are trimmed, and a backslash is a slash.
func browserURL(t *testing.T, base, loc string) *url.URL {
	t.Helper()
	loc = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\r', '\n':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, loc)
	loc = strings.TrimFunc(loc, func(r rune) bool { return r <= ' ' })
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u, err := b.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q does not parse: %v", loc, err)
	}
	return u
}

// The login form's "next" never sends the browser to another site, however
// the path is spelled.
func TestLoginRedirectStaysOnSite(t *testing.T) {
	auth, err := flight.NewAuth([]flight.Token{{Name: "alice", SHA256: sha256.Sum256([]byte("s3cret")), Role: flight.RoleRead}})
	if err != nil {
		t.Fatal(err)
	}
	srv := newConsole(t, auth, nil)
	noRedirect := *srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tc := range []struct {
		next, want string // want: the path the browser goes to
	}{
		{"/jobs/" + jobID, "/jobs/" + jobID},
		{"//evil.example/", "/jobs"},
		{"https://evil.example/", "/jobs"},
		{"/\\evil.example/", "/jobs"},
		{"/\t/evil.example/", "/jobs"},
		{"/\n/evil.example/", "/jobs"},
		{"/\r/evil.example/", "/jobs"},
		{"\t//evil.example/", "/jobs"},
		{"/\x00/evil.example/", "/jobs"},
		{"/\x7f/evil.example/", "/jobs"},
	} {
		t.Run(fmt.Sprintf("%q", tc.next), func(t *testing.T) {
			resp, err := noRedirect.PostForm(srv.URL+"/login", url.Values{"token": {"s3cret"}, "next": {tc.next}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			u := browserURL(t, srv.URL+"/login", loc)
			if resp.StatusCode != http.StatusSeeOther || u.Host != strings.TrimPrefix(srv.URL, "http://") || u.Path != tc.want {
				t.Errorf("login redirects (%d) to %q, which a browser reads as %s; want %s on this site", resp.StatusCode, loc, u, tc.want)
			}
		})
	}
}

// Whatever a token holds, the login cookie carries it: a browser that logs in
// with it reaches the pages (a cookie value cannot hold ';', '"', '\',
// control or non-ASCII bytes, which net/http would drop, and the browser
// would be sent back to the login form for ever).
func TestLoginCookieCarriesAnyToken(t *testing.T) {
	for _, tok := range []string{"plain-token_1", "lab;token", `say "hi"`, `back\slash`, "two words", "a,b", "café", "tab\there", "=leading"} {
		t.Run(fmt.Sprintf("%q", tok), func(t *testing.T) {
			auth, err := flight.NewAuth([]flight.Token{{Name: "alice", SHA256: sha256.Sum256([]byte(tok)), Role: flight.RoleRead}})
			if err != nil {
				t.Fatal(err)
			}
			srv := newConsole(t, auth, nil)
			noRedirect := *srv.Client()
			noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := noRedirect.PostForm(srv.URL+"/login", url.Values{"token": {tok}, "next": {"/jobs"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			var ck *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == console.CookieName {
					ck = c
				}
			}
			if resp.StatusCode != http.StatusSeeOther || ck == nil {
				t.Fatalf("login: %d, cookie %v", resp.StatusCode, ck)
			}
			if code, _ := get(t, &noRedirect, srv.URL+"/jobs", map[string]string{"Cookie": ck.String()}); code != 200 {
				t.Errorf("with the login cookie %q: %d, want 200", ck.Value, code)
			}
		})
	}
}

// A long path, from anyone, is repeated neither in full in the pages nor in
// the log: a client could otherwise write a megabyte into the log with each
// request, logged in or not.
func TestLongPathsAreClipped(t *testing.T) {
	auth, err := flight.NewAuth([]flight.Token{{Name: "alice", SHA256: sha256.Sum256([]byte("s3cret")), Role: flight.RoleRead}})
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logged}, nil))
	srv := httptest.NewServer(console.New(console.Options{Jobs: history(), Metrics: http.NotFoundHandler(), Auth: auth, Log: log}))
	t.Cleanup(srv.Close)
	long := strings.Repeat("x", 100<<10)
	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
	}{
		{"job page, logged in", "/jobs/" + long, map[string]string{"Authorization": "Bearer s3cret"}},
		{"job page, anonymous", "/jobs/" + long, nil},
		{"metrics, anonymous, long query", "/metrics/" + long, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logged.Reset()
			_, body := get(t, srv.Client(), srv.URL+tc.path, tc.hdr)
			if len(body) > 8<<10 {
				t.Errorf("page of %d bytes repeats the path", len(body))
			}
			for _, line := range strings.Split(logged.String(), "\n") {
				if len(line) > 2<<10 {
					t.Errorf("log line of %d bytes: %.200s...", len(line), line)
				}
			}
		})
	}
}

// lockedWriter is a writer for a logger used by the server's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
