// Package console is the server's HTTP side, off unless `serve --http` is
// given: Prometheus metrics at /metrics, /healthz, and the jobs page, the job
// history a page at a time and each job's summary with a page of its shards
// on a timeline, rendered on the server with html/template. Everything but /healthz needs the same credentials as the
// Flight service: a bearer token (header, or a cookie set by the login form)
// or, with mutual TLS, a client certificate.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/internal/clip"
)

// Jobs is the job history; *batch.Manager is one.
type Jobs interface {
	// Summaries returns copies of the summaries of the jobs q selects (each
	// without its shards), in q's order, at most q.Limit of them.
	Summaries(q batch.Query) []batch.JobSummary
	// ShardPage returns a job's summary and the page of its shards q
	// selects, copied.
	ShardPage(id string, q batch.ShardQuery) (*batch.ShardPage, error)
	// JobVersion returns what identifies job id's state now, or
	// batch.ErrNotFound: its Seq differs whenever the job does.
	JobVersion(id string) (batch.JobVersion, error)
	// HistoryVersion returns a count that differs whenever a job arrives,
	// changes or is deleted, and whether any job q selects (whatever
	// q.Limit) has not ended.
	HistoryVersion(q batch.Query) (seq uint64, running bool)
}

// ClientVerifier checks the client certificate of a TLS connection (mutual TLS).
type ClientVerifier interface {
	VerifyClient(tls.ConnectionState) (*x509.Certificate, error)
}

// Options configure the console.
type Options struct {
	Jobs Jobs
	// Metrics serves /metrics.
	Metrics http.Handler
	// Health answers whether the server can serve (the store answers).
	Health func(context.Context) error
	// Auth, when set, is the token and certificate list of the Flight
	// service; nil lets every request in (but for ClientCerts).
	Auth *flight.Auth
	// ClientCerts, when set, is mutual TLS: every request but /healthz
	// needs a client certificate it accepts.
	ClientCerts ClientVerifier
	// SecureCookie marks the login cookie Secure (the console is on TLS).
	SecureCookie bool
	// Log is the server's logger; the console logs as component "http" and
	// its audit lines as component "audit".
	Log *slog.Logger
}

// CookieName is the cookie the login form sets: the bearer token, in
// unpadded base64url (a cookie value cannot hold every byte a token may),
// HttpOnly and SameSite=Strict.
const CookieName = "flightbatch_token"

// cookieToken is the token of a login cookie's value: decoded from
// base64url, or the value itself as set before the encoding.
func (c *Console) cookieToken(value string) (flight.Caller, bool) {
	if tok, err := base64.RawURLEncoding.DecodeString(value); err == nil {
		if who, ok := c.o.Auth.AuthenticateToken(string(tok)); ok {
			return who, true
		}
	}
	return c.o.Auth.AuthenticateToken(value)
}

//go:embed templates/*.html
var templateFS embed.FS

// parseTemplates parses the console's pages; a server without the console
// (and every worker child) does not pay for it.
func parseTemplates() *template.Template {
	return template.Must(template.New("").Funcs(template.FuncMap{
		"duration": fmtDuration,
		"time":     fmtTime,
	}).ParseFS(templateFS, "templates/*.html"))
}

// Console serves the HTTP side.
type Console struct {
	o     Options
	mux   *http.ServeMux
	log   *slog.Logger
	audit *slog.Logger
	pages *template.Template
	// nonce starts every ETag made from the jobs' versions, which count
	// from zero again in another process.
	nonce [8]byte
}

// New returns the console.
func New(o Options) *Console {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	c := &Console{o: o, mux: http.NewServeMux(), log: o.Log.With("component", "http"), audit: o.Log.With("component", "audit"), pages: parseTemplates()}
	_, _ = rand.Read(c.nonce[:]) // never fails (crypto/rand)
	c.mux.HandleFunc("GET /healthz", c.healthz)
	c.mux.HandleFunc("GET /login", c.loginForm)
	c.mux.HandleFunc("POST /login", c.login)
	c.mux.HandleFunc("POST /logout", c.logout)
	c.mux.Handle("GET /metrics", c.authed(o.Metrics.ServeHTTP))
	c.mux.Handle("GET /jobs", c.authed(c.jobList))
	c.mux.Handle("GET /jobs/{id}", c.authed(c.jobPage))
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/jobs", http.StatusSeeOther) })
	return c
}

// ServeHTTP checks the client certificate (with mutual TLS) and routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if c.o.ClientCerts != nil && r.URL.Path != "/healthz" {
		if r.TLS == nil {
			http.Error(w, "mutual TLS: the connection is not TLS", http.StatusUnauthorized)
			return
		}
		leaf, err := c.o.ClientCerts.VerifyClient(*r.TLS)
		if err != nil {
			c.log.Warn("client certificate refused", "peer", r.RemoteAddr, "path", r.URL.Path, "err", err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), subjectKey{}, leaf.Subject.String()))
	}
	c.mux.ServeHTTP(w, r)
}

type subjectKey struct{}

// caller finds the caller of a request: a bearer token in the header or the
// login cookie, or the verified client certificate.
func (c *Console) caller(r *http.Request) (string, bool) {
	subject, _ := r.Context().Value(subjectKey{}).(string)
	if c.o.Auth == nil {
		if subject != "" {
			return subject, true
		}
		return "anonymous", true
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if who, ok := c.o.Auth.AuthenticateToken(strings.TrimSpace(tok)); ok {
				return who.Name, true
			}
		}
		return "", false
	}
	if ck, err := r.Cookie(CookieName); err == nil {
		if who, ok := c.cookieToken(ck.Value); ok {
			return who.Name, true
		}
	}
	if who, ok := c.o.Auth.AuthenticateSubject(subject); ok {
		return who.Name, true
	}
	return "", false
}

// authed lets a request through with a known caller; a browser without one
// goes to the login form, anything else gets 401.
func (c *Console) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, ok := c.caller(r)
		if !ok {
			c.audit.Info("audit", "caller", "anonymous", "call", "HTTP "+clip.String(r.URL.Path, clip.QuoteBytes), "code", "Unauthenticated")
			if r.URL.Path != "/metrics" && strings.Contains(r.Header.Get("Accept"), "text/html") {
				http.Redirect(w, r, "/login?next="+template.URLQueryEscaper(r.URL.Path), http.StatusSeeOther)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="flightbatch"`)
			http.Error(w, "authentication required: send the header Authorization: Bearer <token>, log in at /login, or present a listed client certificate", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/metrics" {
			attrs := []any{"caller", who, "call", "HTTP " + r.Pattern}
			if id := r.PathValue("id"); id != "" {
				attrs = append(attrs, "job", clip.String(id, clip.QuoteBytes))
			}
			c.audit.Info("audit", attrs...)
		}
		h(w, r)
	})
}

func (c *Console) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if c.o.Health != nil {
		if err := c.o.Health(ctx); err != nil {
			http.Error(w, "not serving: the store does not answer", http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	c.render(w, "login.html", map[string]any{"Next": safeNext(r.URL.Query().Get("next")), "Failed": false})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	tok := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	if c.o.Auth == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	who, ok := c.o.Auth.AuthenticateToken(tok)
	if !ok {
		c.audit.Info("audit", "caller", "anonymous", "call", "HTTP login", "code", "Unauthenticated")
		w.WriteHeader(http.StatusUnauthorized)
		c.render(w, "login.html", map[string]any{"Next": next, "Failed": true})
		return
	}
	c.audit.Info("audit", "caller", who.Name, "call", "HTTP login", "code", "OK")
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: base64.RawURLEncoding.EncodeToString([]byte(tok)), Path: "/", HttpOnly: true, Secure: c.o.SecureCookie, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.o.SecureCookie, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a redirect on this site: a path, not "//host". A browser
// reads a backslash as a slash and drops tabs and newlines ("/\t/host" is
// "//host"), and no control character belongs in a Location header.
func safeNext(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsRune(p, '\\') || strings.ContainsFunc(p, unicode.IsControl) {
		return "/jobs"
	}
	return p
}

func (c *Console) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; base-uri 'none'")
	if err := c.pages.ExecuteTemplate(w, name, data); err != nil {
		c.log.Warn("render page", "page", name, "err", err)
	}
}

// jobRow is one job in the history.
type jobRow struct {
	*batch.Manifest
	Counts   batch.Counts
	Duration time.Duration
}

func row(s batch.JobSummary) jobRow {
	return jobRow{Manifest: s.Job, Counts: s.Counts, Duration: jobDuration(s.Job)}
}

func jobDuration(m *batch.Manifest) time.Duration {
	end := time.Now()
	if m.FinishedAt != nil {
		end = *m.FinishedAt
	}
	return max(end.Sub(m.CreatedAt), 0)
}

// The jobs page shows a page of the history, newest first: DefaultPageJobs
// jobs unless ?limit= asks for more (at most MaxPageJobs), and ?before=<job
// ID> pages back to older jobs. However long the history, a view and each of
// its refreshes costs that page only.
const (
	DefaultPageJobs = 50
	MaxPageJobs     = 500
)

// jobsPage is what ?limit= and ?before= ask of the jobs page.
type jobsPage struct {
	Limit  int
	Before string // a job ID: the page shows older jobs only
}

func parsePage(q url.Values) (jobsPage, error) {
	p := jobsPage{Limit: DefaultPageJobs}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, fmt.Errorf("limit %s: want a number of jobs from 1 to %d", clip.Quote(v), MaxPageJobs)
		}
		p.Limit = min(n, MaxPageJobs)
	}
	if v := q.Get("before"); v != "" {
		if !batch.ValidJobID(v) {
			return p, fmt.Errorf("before %s: want a job ID", clip.Quote(v))
		}
		p.Before = v
	}
	return p, nil
}

// jobIDTime is the creation time a job ID starts with, to the millisecond.
func jobIDTime(id string) (time.Time, error) {
	return time.Parse("20060102T150405.000Z", id[:15]+"."+id[15:19])
}

// href is the page's address with limit and before.
func (p jobsPage) href() string {
	v := url.Values{}
	if p.Limit != DefaultPageJobs {
		v.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Before != "" {
		v.Set("before", p.Before)
	}
	if len(v) == 0 {
		return "/jobs"
	}
	return "/jobs?" + v.Encode()
}

func (c *Console) jobList(w http.ResponseWriter, r *http.Request) {
	page, err := parsePage(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := batch.Query{Newest: true, Limit: page.Limit + 1}
	if page.Before != "" {
		// Job IDs start with their creation time, unique to the millisecond.
		if q.Until, err = jobIDTime(page.Before); err != nil {
			http.Error(w, "before: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	// With every job it selects ended, the rows are those of the history's
	// version: a refresh that has them is answered before they are read.
	var etag string
	seq, running := c.o.Jobs.HistoryVersion(q)
	if !running {
		etag = c.versionTag("jobs", strconv.Itoa(page.Limit), page.Before, strconv.FormatUint(seq, 10))
		if c.notModified(w, r, etag) {
			return
		}
	}
	found := c.o.Jobs.Summaries(q)
	if etag != "" {
		// A job that arrived while the rows were read makes them newer
		// than the tag: they get a tag of their own (see fragment).
		if seq2, running := c.o.Jobs.HistoryVersion(q); running || seq2 != seq {
			etag = ""
		}
	}
	older := len(found) > page.Limit
	if older {
		found = found[:page.Limit]
	}
	rows := make([]jobRow, len(found))
	running = false
	for i, s := range found {
		rows[i] = row(s)
		running = running || !s.Job.State.Terminal()
	}
	data := map[string]any{"Jobs": rows, "Running": running, "Page": page}
	// The rows alone are what the page's refresh fetches.
	frag, etag, done := c.fragment(w, r, "jobrows", "render the jobs page", data, etag)
	if done {
		return
	}
	data["Rows"] = frag
	data["ETag"] = etag
	if older {
		data["Older"] = jobsPage{Limit: page.Limit, Before: found[len(found)-1].Job.JobID}.href()
		if page.Limit < MaxPageJobs {
			data["More"] = jobsPage{Limit: min(page.Limit+DefaultPageJobs, MaxPageJobs), Before: page.Before}.href()
		}
	}
	if page.Before != "" {
		data["Newest"] = jobsPage{Limit: page.Limit}.href()
	}
	c.render(w, "jobs.html", data)
}

// The job page shows a page of the job's shards in the manifest's order:
// DefaultPageShards unless ?limit= asks for more (at most MaxPageShards),
// from the position ?from=, of one state with ?state=. However many shards
// the job has, a view and each of its refreshes costs that page only.
const (
	DefaultPageShards = 100
	MaxPageShards     = 1000
)

// shardsPage is what ?state=, ?from= and ?limit= ask of a job's page.
type shardsPage struct {
	State batch.ShardState
	From  int
	Limit int
}

var shardStates = []batch.ShardState{batch.ShardPending, batch.ShardRunning, batch.ShardSucceeded, batch.ShardFailed, batch.ShardCancelled}

func parseShardsPage(q url.Values) (shardsPage, error) {
	p := shardsPage{Limit: DefaultPageShards}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, fmt.Errorf("limit %s: want a number of shards from 1 to %d", clip.Quote(v), MaxPageShards)
		}
		p.Limit = min(n, MaxPageShards)
	}
	if v := q.Get("from"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, fmt.Errorf("from %s: want a shard's position, a number from 0", clip.Quote(v))
		}
		p.From = n
	}
	if v := q.Get("state"); v != "" {
		for _, st := range shardStates {
			if strings.EqualFold(v, string(st)) {
				p.State = st
			}
		}
		if p.State == "" {
			return p, fmt.Errorf("state %s: want one of PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED", clip.Quote(v))
		}
	}
	return p, nil
}

// href is the job page's address with the page's state, from and limit.
func (p shardsPage) href(id string) string {
	v := url.Values{}
	if p.State != "" {
		v.Set("state", string(p.State))
	}
	if p.From != 0 {
		v.Set("from", strconv.Itoa(p.From))
	}
	if p.Limit != DefaultPageShards {
		v.Set("limit", strconv.Itoa(p.Limit))
	}
	if len(v) == 0 {
		return "/jobs/" + id
	}
	return "/jobs/" + id + "?" + v.Encode()
}

// shardRow is one shard of a job, placed on the job's timeline.
type shardRow struct {
	batch.ShardRecord
	Position    int
	Duration    time.Duration
	Left, Width float64 // percent of the timeline
	Started     bool
	// Open marks the bar of a shard still running: it reaches the
	// timeline's end.
	Open bool
}

// stateFilter is a link to the shards of one state, with their count.
type stateFilter struct {
	State batch.ShardState
	Count int
	Href  string
	On    bool
}

// timelineSpan is the length of a job's timeline: start to end for a
// finished job; for a running one, the time it has run rounded up to 1, 2
// or 5 times a power of ten seconds, so that the page changes with the
// shards, not with every tick of the clock.
func timelineSpan(ran time.Duration, running bool) time.Duration {
	if !running {
		return max(ran, time.Millisecond)
	}
	for unit := time.Second; unit < math.MaxInt64/10; unit *= 10 {
		for _, k := range []time.Duration{1, 2, 5} {
			if ran <= k*unit {
				return k * unit
			}
		}
	}
	return ran
}

func (c *Console) jobPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !batch.ValidJobID(id) {
		c.notFound(w, id)
		return
	}
	page, err := parseShardsPage(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The live part is the job's version's, on a timeline of the span at
	// now: a refresh that has it is answered before the job is read. The
	// version is taken again once the page is read: a page read while the
	// job changed is newer than the version, and is not given its tag.
	now := time.Now()
	v, err := c.o.Jobs.JobVersion(id)
	if errors.Is(err, batch.ErrNotFound) {
		c.notFound(w, id)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _, span := jobSpan(v.State, v.CreatedAt, v.StartedAt, v.FinishedAt, now)
	etag := c.versionTag("job", id, string(page.State), strconv.Itoa(page.From), strconv.Itoa(page.Limit),
		strconv.FormatUint(v.Seq, 10), strconv.FormatInt(int64(span), 10))
	if c.notModified(w, r, etag) {
		return
	}
	p, err := c.o.Jobs.ShardPage(id, batch.ShardQuery{State: page.State, From: page.From, Limit: page.Limit})
	if errors.Is(err, batch.ErrNotFound) {
		c.notFound(w, id)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// A change while the page was read makes it newer than the tag: it
	// gets a tag of its own (see fragment).
	if v2, err := c.o.Jobs.JobVersion(id); err != nil || v2.Seq != v.Seq {
		etag = ""
	}
	m := p.Job
	running, start, span := jobSpan(m.State, m.CreatedAt, m.StartedAt, m.FinishedAt, now)
	shards := make([]shardRow, len(p.Shards))
	for i, s := range p.Shards {
		sr := shardRow{ShardRecord: s, Position: p.Positions[i]}
		if ss := shardStart(m, s); ss != nil {
			sr.Started = true
			sr.Left = clamp(100 * float64(ss.Sub(start)) / float64(span))
			if s.FinishedAt != nil {
				sr.Duration = max(s.FinishedAt.Sub(*ss), 0)
				sr.Width = max(clamp(100*float64(sr.Duration)/float64(span)), 0.5)
			} else {
				sr.Open = true
				sr.Width = 100 - sr.Left
			}
			if sr.Left+sr.Width > 100 {
				sr.Width = 100 - sr.Left
			}
		}
		shards[i] = sr
	}
	job := jobRow{Manifest: m, Counts: p.Counts}
	if !running {
		job.Duration = jobDuration(m)
	}
	counts := map[batch.ShardState]int{batch.ShardPending: p.Counts.Pending, batch.ShardRunning: p.Counts.Running,
		batch.ShardSucceeded: p.Counts.Succeeded, batch.ShardFailed: p.Counts.Failed, batch.ShardCancelled: p.Counts.Cancelled}
	filters := []stateFilter{{Count: p.Counts.Total, Href: shardsPage{Limit: page.Limit}.href(id), On: page.State == ""}}
	for _, st := range shardStates {
		filters = append(filters, stateFilter{State: st, Count: counts[st], Href: shardsPage{State: st, Limit: page.Limit}.href(id), On: page.State == st})
	}
	data := map[string]any{"Job": job, "Shards": shards, "Running": running, "Span": span, "Page": page, "Filters": filters}
	if p.Next >= 0 {
		data["Next"] = shardsPage{State: page.State, From: p.Next, Limit: page.Limit}.href(id)
	}
	if page.From > 0 {
		data["First"] = shardsPage{State: page.State, Limit: page.Limit}.href(id)
	}
	// The summary and the shards are what the page's refresh fetches.
	live, etag, done := c.fragment(w, r, "joblive", "render the job page", data, etag)
	if done {
		return
	}
	data["Live"] = live
	data["ETag"] = etag
	c.render(w, "job.html", data)
}

// jobSpan is whether a job runs, when its timeline starts, and the
// timeline's span at now.
func jobSpan(state batch.State, created time.Time, started, finished *time.Time, now time.Time) (running bool, start time.Time, span time.Duration) {
	running, start, end := !state.Terminal(), created, now
	if started != nil {
		start = *started
	}
	if finished != nil {
		end = *finished
	}
	return running, start, timelineSpan(end.Sub(start), running)
}

func (c *Console) notFound(w http.ResponseWriter, id string) {
	w.WriteHeader(http.StatusNotFound)
	c.render(w, "notfound.html", map[string]any{"ID": clip.String(id, clip.QuoteBytes)})
}

// shardStart is when a shard's child started: as seen by the job manager or,
// for a child that finished before it was seen running, the job's start.
func shardStart(m *batch.Manifest, s batch.ShardRecord) *time.Time {
	if s.StartedAt != nil {
		return s.StartedAt
	}
	if s.FinishedAt != nil && m.StartedAt != nil {
		return m.StartedAt
	}
	return nil
}

func clamp(p float64) float64 { return min(max(p, 0), 100) }

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// versionTag is the ETag of a fragment made from what determines it, the
// parts: the version of the jobs it shows and the page's parameters.
func (c *Console) versionTag(parts ...string) string {
	sum := fnv.New64a()
	sum.Write(c.nonce[:])
	for _, p := range parts {
		sum.Write([]byte(p))
		sum.Write([]byte{0})
	}
	return fmt.Sprintf(`"v%x"`, sum.Sum64())
}

// notModified answers a refresh (?rows=) whose If-None-Match is etag with
// 304 Not Modified and no body, and says so; any other request it leaves.
func (c *Console) notModified(w http.ResponseWriter, r *http.Request, etag string) bool {
	if r.URL.Query().Get("rows") == "" || r.Header.Get("If-None-Match") != etag {
		return false
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNotModified)
	return true
}

// fragment renders the template name, the part of a page its refresh
// fetches, with its ETag: etag when given (see versionTag), or else a hash of
// the rendered fragment. A refresh (?rows=) is answered here, with the
// fragment or, when it is unchanged, 304 Not Modified without a body; so is
// a failed rendering (failure names the page). done says the answer was
// written; otherwise the caller renders the whole page around the fragment.
func (c *Console) fragment(w http.ResponseWriter, r *http.Request, name, failure string, data map[string]any, etag string) (html template.HTML, tag string, done bool) {
	var buf bytes.Buffer
	if err := c.pages.ExecuteTemplate(&buf, name, data); err != nil {
		c.log.Warn("render page", "page", name, "err", err)
		http.Error(w, failure, http.StatusInternalServerError)
		return "", "", true
	}
	if etag == "" {
		sum := fnv.New64a()
		sum.Write(buf.Bytes())
		etag = fmt.Sprintf(`"%x"`, sum.Sum64())
	}
	if r.URL.Query().Get("rows") != "" {
		w.Header().Set("ETag", etag)
		w.Header().Set("Cache-Control", "no-store")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return "", etag, true
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(buf.Bytes())
		return "", etag, true
	}
	return template.HTML(buf.String()), etag, false // rendered by html/template, escaped there
}
