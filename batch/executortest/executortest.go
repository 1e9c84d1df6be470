// Package executortest is the conformance suite every batch.Executor must pass:
// children that succeed, fail and are retried, fail for good, are cancelled, run
// for a subset of shards, and a handle the executor does not know. Each
// backend's test supplies a Harness; the suite drives the executor through its
// interface only, with real jobs over a real store. The jobs run Function, a
// function that copies its input (the command cat, registered by the
// functions file FunctionsFile writes), so the suite tests executors and
// nothing else.
package executortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// Harness is one backend under test.
type Harness struct {
	// Store is where jobs and datasets live; the executor's children use it.
	Store *store.Store
	// Executor is the executor under test.
	Executor batch.Executor
	// FullErrorShards is how many shards with failed attempts keep their
	// errors' text in the executor once reported (batch.HandOverErrors), if
	// the harness lowered it from batch.MaxFullErrorShards (0): the harness of
	// an executor whose children start slowly lowers it, for its executor and
	// here alike, so that ManyErrorsBounded runs a few children rather than a
	// hundred. The local executor's harness keeps the full size.
	FullErrorShards int

	// texts keeps, by handle, shard and attempt, the error text of each
	// attempt's first report, as the manager does (batch.Child.Errors).
	texts map[string]map[[2]int]string
}

// keep records the error texts p reports for the first time for handle, and
// fills in the ones it reports again without text: the progress the manager
// sees.
func (h *Harness) keep(handle string, p batch.Progress) batch.Progress {
	if h.texts == nil {
		h.texts = map[string]map[[2]int]string{}
	}
	seen := h.texts[handle]
	if seen == nil {
		seen = map[[2]int]string{}
		h.texts[handle] = seen
	}
	for i := range p.Children {
		c := &p.Children[i]
		for j := range c.Errors {
			ae := &c.Errors[j]
			key := [2]int{c.Shard, ae.Attempt}
			if text, ok := seen[key]; ok {
				ae.Error = text
			} else {
				seen[key] = ae.Error
			}
		}
	}
	return p
}

// Function is the name of the function the suite's jobs run: it copies its
// input to its output.
const Function = "copy"

// LoudFunction is the name of a function that fails every attempt after
// writing LoudStderrBytes bytes to its stderr, between the lines
// "loud-start" and "loud-end": an error as long as a function's can be.
const LoudFunction = "fail-loud"

// LoudStderrBytes is how much LoudFunction writes to its stderr.
const LoudStderrBytes = 20000

// FunctionsFile writes a functions file (batch.ReadFunctionsFile) that
// registers Function, and returns its path. A harness whose children are
// `flightbatch worker` processes gives it to them as FLIGHTBATCH_FUNCTIONS;
// one running children in this process registers the functions it reads.
func FunctionsFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "functions.json")
	loud := fmt.Sprintf(`echo loud-start >&2; head -c %d /dev/zero | tr '\0' x >&2; echo >&2; echo loud-end >&2; exit 1`, LoudStderrBytes)
	spec := map[string]batch.ExternalSpec{
		Function:     {Command: []string{"cat"}, Description: "copies its input"},
		LoudFunction: {Command: []string{"sh", "-c", loud}, Description: "fails with a long stderr"},
	}
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// NewHarness returns a harness whose children inject the faults of spec (the
// FLIGHTBATCH_FAULTS syntax of batch.ParseFaults; empty for none). Each call
// must give an empty store.
type NewHarness func(t *testing.T, faults string) *Harness

// Timeout bounds how long the suite waits for one job's children.
var Timeout = 90 * time.Second

// RunConformanceTests runs the suite against the executor newHarness builds.
func RunConformanceTests(t *testing.T, newHarness NewHarness) {
	tests := []struct {
		name   string
		faults string
		run    func(t *testing.T, h *Harness)
	}{
		{"AllSucceed", "", testAllSucceed},
		{"RetryThenSucceed", "part-00001:1", testRetry},
		{"FailForGood", "part-00001:always", testFailForGood},
		{"Cancel", "*:sleep=60", testCancel},
		{"Subset", "", testSubset},
		{"UnknownHandle", "", testUnknownHandle},
		{"LongErrorsBounded", "", testLongErrorsBounded},
		{"ManyErrorsBounded", "*:always,part-00000:sleep=1800", testManyErrorsBounded},
		{"ChangesOnly", "part-00001:1", testChangesOnly},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.faults)
			objs, err := h.Store.List(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) > 0 {
				t.Fatalf("the harness's store is not empty (%d objects, first %s); the suite needs an empty one", len(objs), objs[0].Key)
			}
			tc.run(t, h)
		})
	}
}

const shards = 3

// NewJob writes a small dataset of three shards and a job running Function over it to the
// harness's store, and returns the job; a backend's own tests use it.
func NewJob(t *testing.T, h *Harness, maxAttempts int) *batch.Manifest {
	t.Helper()
	return newJob(t, h, maxAttempts)
}

// newJob writes a small dataset and a job over it, and returns the job.
func newJob(t *testing.T, h *Harness, maxAttempts int) *batch.Manifest {
	t.Helper()
	return newJobOf(t, h, Function, maxAttempts)
}

// newJobOf writes a small dataset and a job running function fn over it,
// and returns the job.
func newJobOf(t *testing.T, h *Harness, fn string, maxAttempts int) *batch.Manifest {
	t.Helper()
	return newJobOver(t, h, fn, maxAttempts, shards)
}

// newJobOver writes a small dataset of n shards and a job running function
// fn over it, and returns the job.
func newJobOver(t *testing.T, h *Harness, fn string, maxAttempts, n int) *batch.Manifest {
	t.Helper()
	ctx := context.Background()
	cat := dataset.NewCatalog(h.Store)
	if err := dataset.GenerateDemo(ctx, cat, "conf", dataset.DemoOptions{Shards: n, Bytes: int64(n) * 10 * 10000, Seconds: 10}); err != nil {
		t.Fatal(err)
	}
	ds, err := cat.Get(ctx, "conf")
	if err != nil {
		t.Fatal(err)
	}
	m := &batch.Manifest{
		JobID:          batch.NewJobID(time.Now()),
		Function:       fn,
		Dataset:        "conf",
		DatasetVersion: ds.Version,
		Params:         json.RawMessage("{}"),
		State:          batch.StateSubmitted,
		MaxAttempts:    maxAttempts,
		Executor:       h.Executor.Name(),
		CreatedAt:      time.Now().UTC(),
	}
	for _, s := range ds.Shards {
		m.Shards = append(m.Shards, batch.ShardRecord{Name: s.Name, Input: s.Key, Format: s.Format, InputRows: s.Rows, State: batch.ShardPending})
	}
	if err := batch.SaveManifest(ctx, h.Store, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func start(t *testing.T, h *Harness, m *batch.Manifest, idx []int) string {
	t.Helper()
	handle, err := h.Executor.Start(context.Background(), m, idx)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if handle == "" {
		t.Fatal("Start returned an empty handle")
	}
	return handle
}

// wait polls until the children are done, returning the last progress with
// each error's text as first reported.
func wait(t *testing.T, h *Harness, handle string, until func(batch.Progress) bool) batch.Progress {
	t.Helper()
	return waitUpTo(t, h, handle, until, Timeout)
}

// waitUpTo is wait for at most timeout.
func waitUpTo(t *testing.T, h *Harness, handle string, until func(batch.Progress) bool, timeout time.Duration) batch.Progress {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, err := h.Executor.Poll(context.Background(), handle)
		if err != nil {
			t.Fatalf("Poll(%s): %v", handle, err)
		}
		p = h.keep(handle, p)
		if until(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("children of %s not there after %v: %+v", handle, timeout, p)
		}
		time.Sleep(min(h.Executor.PollInterval(), 200*time.Millisecond))
	}
}

func done(p batch.Progress) bool { return p.Done }

func child(t *testing.T, p batch.Progress, shard int) batch.Child {
	t.Helper()
	for _, c := range p.Children {
		if c.Shard == shard {
			return c
		}
	}
	t.Fatalf("no child for shard %d in %+v", shard, p.Children)
	return batch.Child{}
}

func partExists(t *testing.T, h *Harness, m *batch.Manifest, shard int) bool {
	t.Helper()
	ok, err := h.Store.Exists(context.Background(), batch.PartKey(m.JobID, m.Shards[shard].Name))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func testAllSucceed(t *testing.T, h *Harness) {
	m := newJob(t, h, 1)
	p := wait(t, h, start(t, h, m, []int{0, 1, 2}), done)
	if len(p.Children) != shards {
		t.Fatalf("got %d children, want %d", len(p.Children), shards)
	}
	for i := 0; i < shards; i++ {
		c := child(t, p, i)
		if c.State != batch.ShardSucceeded || c.Attempts != 1 {
			t.Errorf("shard %d: state %s after %d attempts, want SUCCEEDED after 1", i, c.State, c.Attempts)
		}
		if !partExists(t, h, m, i) {
			t.Errorf("shard %d succeeded but its part is missing", i)
		}
	}
}

func testRetry(t *testing.T, h *Harness) {
	m := newJob(t, h, 3)
	p := wait(t, h, start(t, h, m, []int{0, 1, 2}), done)
	c := child(t, p, 1)
	if c.State != batch.ShardSucceeded || c.Attempts != 2 {
		t.Fatalf("shard 1: state %s after %d attempts, want SUCCEEDED after 2", c.State, c.Attempts)
	}
	if len(c.Errors) != 1 || c.Errors[0].Attempt != 1 || c.Errors[0].Error == "" {
		t.Errorf("shard 1: want the first attempt's error kept, got %+v", c.Errors)
	}
	if !partExists(t, h, m, 1) {
		t.Error("shard 1 succeeded on retry but its part is missing")
	}
}

func testFailForGood(t *testing.T, h *Harness) {
	m := newJob(t, h, 2)
	p := wait(t, h, start(t, h, m, []int{0, 1, 2}), done)
	c := child(t, p, 1)
	if c.State != batch.ShardFailed || c.Attempts != 2 {
		t.Fatalf("shard 1: state %s after %d attempts, want FAILED after 2", c.State, c.Attempts)
	}
	if len(c.Errors) != 2 {
		t.Errorf("shard 1: want both attempts' errors, got %+v", c.Errors)
	}
	if partExists(t, h, m, 1) {
		t.Error("a failed shard left a part")
	}
	for _, i := range []int{0, 2} {
		if c := child(t, p, i); c.State != batch.ShardSucceeded || !partExists(t, h, m, i) {
			t.Errorf("shard %d: state %s; the other shards must still succeed", i, c.State)
		}
	}
}

func testCancel(t *testing.T, h *Harness) {
	m := newJob(t, h, 3)
	handle := start(t, h, m, []int{0, 1, 2})
	wait(t, h, handle, func(p batch.Progress) bool {
		for _, c := range p.Children {
			if c.State == batch.ShardRunning {
				return true
			}
		}
		return false
	})
	began := time.Now()
	if err := h.Executor.Cancel(context.Background(), handle); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	p := wait(t, h, handle, done)
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("children took %v to stop", took)
	}
	for _, c := range p.Children {
		if c.State != batch.ShardCancelled {
			t.Errorf("shard %d: state %s after cancel, want CANCELLED", c.Shard, c.State)
		}
		if c.Attempts > 1 {
			t.Errorf("shard %d: a cancelled child was retried (%d attempts)", c.Shard, c.Attempts)
		}
		if partExists(t, h, m, c.Shard) {
			t.Errorf("shard %d: a cancelled child left a part", c.Shard)
		}
	}
}

func testSubset(t *testing.T, h *Harness) {
	m := newJob(t, h, 1)
	p := wait(t, h, start(t, h, m, []int{2}), done)
	if len(p.Children) != 1 || p.Children[0].Shard != 2 || p.Children[0].State != batch.ShardSucceeded {
		t.Fatalf("want one succeeded child for shard 2, got %+v", p.Children)
	}
	if partExists(t, h, m, 0) || partExists(t, h, m, 1) || !partExists(t, h, m, 2) {
		t.Error("only shard 2's part should exist")
	}
}

func testUnknownHandle(t *testing.T, h *Harness) {
	_, err := h.Executor.Poll(context.Background(), "no-such-handle")
	if !errors.Is(err, batch.ErrNotRunning) && !errors.Is(err, batch.ErrVanished) {
		t.Fatalf("Poll of an unknown handle: got %v, want ErrNotRunning or ErrVanished", err)
	}
}

// testLongErrorsBounded: what an executor holds of a failed attempt's error
// is bounded at capture to what a manifest keeps (batch.ClipAttemptError):
// its start and its end, however much the function printed; the attempt's
// record in the store keeps it whole.
func testLongErrorsBounded(t *testing.T, h *Harness) {
	const attempts = 2
	m := newJobOf(t, h, LoudFunction, attempts)
	p := wait(t, h, start(t, h, m, []int{0, 1, 2}), done)
	held := 0
	for i := 0; i < shards; i++ {
		c := child(t, p, i)
		if c.State != batch.ShardFailed || len(c.Errors) != attempts {
			t.Fatalf("shard %d: %s with %d errors, want FAILED with %d", i, c.State, len(c.Errors), attempts)
		}
		for _, ae := range c.Errors {
			held += len(ae.Error)
			if len(ae.Error) > batch.MaxAttemptErrorBytes {
				t.Errorf("shard %d attempt %d: the executor holds %d bytes of its error, want at most %d", i, ae.Attempt, len(ae.Error), batch.MaxAttemptErrorBytes)
			}
			if !strings.Contains(ae.Error, LoudFunction) || !strings.Contains(ae.Error, "loud-end") {
				t.Errorf("shard %d attempt %d: the error kept lacks its start (the function's name) or its end (the stderr's last line): %.200q", i, ae.Attempt, ae.Error)
			}
			rec, err := batch.ReadAttemptError(context.Background(), h.Store, m.JobID, m.Shards[i].Name, ae.Attempt)
			if err != nil || rec == nil {
				t.Fatalf("shard %d attempt %d: no record in the store (%v)", i, ae.Attempt, err)
			}
			if len(rec.Error) <= batch.MaxAttemptErrorBytes || !strings.Contains(rec.Error, "loud-end") || strings.Count(rec.Error, "x") < batch.MaxAttemptErrorBytes {
				t.Errorf("shard %d attempt %d: the record in the store should hold the whole error (%d bytes)", i, ae.Attempt, len(rec.Error))
			}
		}
	}
	if limit := shards * attempts * batch.MaxAttemptErrorBytes; held > limit {
		t.Errorf("the executor holds %d bytes of errors for %d failed attempts, want at most %d", held, shards*attempts, limit)
	}
}

// testManyErrorsBounded: what an executor holds of failed attempts' errors
// while a job runs is bounded by MaxFullErrorShards shards' worth (or the
// harness's FullErrorShards), however many shards fail
// (batch.HandOverErrors): once reported, the errors of the later failed
// shards come again with their attempts and no text, while their first
// report, which the manager keeps, has it. Shard 0 sleeps, so that the job
// still runs when the executor is asked again (it is cancelled then); the
// others fail.
func testManyErrorsBounded(t *testing.T, h *Harness) {
	full := batch.MaxFullErrorShards
	if h.FullErrorShards > 0 {
		full = h.FullErrorShards
	}
	n := full + 3
	m := newJobOver(t, h, Function, 1, n)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	handle := start(t, h, m, idx)
	failed := func(p batch.Progress) bool {
		for i := 1; i < n; i++ {
			if c := child(t, p, i); c.State != batch.ShardFailed || len(c.Errors) != 1 {
				return false
			}
		}
		return true
	}
	// Up to a hundred children, one after the other on a small test cluster.
	p := waitUpTo(t, h, handle, failed, 5*Timeout)
	for i := 1; i < n; i++ {
		if ae := child(t, p, i).Errors[0]; !strings.Contains(ae.Error, "injected fault") {
			t.Errorf("shard %d: the first report of its error lacks it: %.200q", i, ae.Error)
		}
	}
	again, err := h.Executor.Poll(context.Background(), handle)
	if err != nil {
		t.Fatalf("Poll(%s): %v", handle, err)
	}
	if again.Done {
		t.Fatal("the job ended while shard 0 sleeps")
	}
	held, heldPast := 0, 0
	for i := 1; i < n; i++ {
		c := child(t, again, i)
		if len(c.Errors) != 1 || c.Errors[0].Attempt != 1 {
			t.Errorf("shard %d: asked again, the executor reports errors %+v, want attempt 1's", i, c.Errors)
			continue
		}
		held += len(c.Errors[0].Error)
		if i > full {
			heldPast += len(c.Errors[0].Error)
		}
	}
	if limit := full * batch.MaxAttemptErrorBytes; held > limit || heldPast > 0 {
		t.Errorf("%d failed shards: the executor still holds %d bytes of errors already reported (%d of the shards past the first %d), want at most %d (0)",
			n-1, held, heldPast, full, limit)
	}
	if err := h.Executor.Cancel(context.Background(), handle); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	wait(t, h, handle, done)
}

// testChangesOnly: an executor that reports only what changed
// (batch.ChangeReporter) reports every child at its first PollChanges of a
// handle, then each child only when its state, attempts or failed attempts
// changed since its previous report; what it reported, kept as the manager
// keeps it, is the job's end: shard 1 succeeded on its second attempt.
func testChangesOnly(t *testing.T, h *Harness) {
	cr, ok := h.Executor.(batch.ChangeReporter)
	if !ok {
		t.Skipf("%s reports every child at every poll", h.Executor.Name())
	}
	m := newJob(t, h, 3)
	handle := start(t, h, m, []int{0, 1, 2})
	last := map[int]batch.Child{}
	polls, reported := 0, 0
	for deadline := time.Now().Add(Timeout); ; {
		p, err := cr.PollChanges(context.Background(), handle)
		if err != nil {
			t.Fatalf("PollChanges(%s): %v", handle, err)
		}
		p = h.keep(handle, p)
		if polls++; polls == 1 && len(p.Children) != shards {
			t.Fatalf("the first PollChanges reports %d children, want every one (%d): %+v", len(p.Children), shards, p.Children)
		}
		reported += len(p.Children)
		for _, c := range p.Children {
			if old, ok := last[c.Shard]; ok && sameReport(old, c) {
				t.Errorf("poll %d reports shard %d again unchanged: %+v", polls, c.Shard, c)
			}
			last[c.Shard] = c
		}
		if p.Done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("children of %s not done after %v: %+v", handle, Timeout, last)
		}
		time.Sleep(min(h.Executor.PollInterval(), 200*time.Millisecond))
	}
	t.Logf("%d children reported over %d polls", reported, polls)
	for i := 0; i < shards; i++ {
		c, want := last[i], 1
		if i == 1 {
			want = 2
		}
		if c.State != batch.ShardSucceeded || c.Attempts != want || len(c.Errors) != want-1 {
			t.Errorf("shard %d last reported %s after %d attempts with errors %+v; want SUCCEEDED after %d", i, c.State, c.Attempts, c.Errors, want)
		}
	}
}

// sameReport says whether two reports of a child tell the same: state,
// attempts and failed attempts (an error's text aside, which only its
// first report need give).
func sameReport(a, b batch.Child) bool {
	if a.State != b.State || a.Attempts != b.Attempts || len(a.Errors) != len(b.Errors) {
		return false
	}
	for i := range a.Errors {
		if a.Errors[i].Attempt != b.Errors[i].Attempt || !a.Errors[i].At.Equal(b.Errors[i].At) {
			return false
		}
	}
	return true
}

// ChangesAcrossRestart checks an executor that reports only what changed
// (batch.ChangeReporter) across a restart: once a job's children are done,
// its first PollChanges of the handle reports every child, the next none,
// and the first PollChanges of an executor made afresh (restarted, over the
// harness's store: the server after a restart) every child again, which the
// manager's catch-up of a job relies on. A backend's own tests call it.
func ChangesAcrossRestart(t *testing.T, h *Harness, restarted func() batch.Executor) {
	t.Helper()
	ctx := context.Background()
	m := newJob(t, h, 1)
	handle := start(t, h, m, []int{0, 1, 2})
	wait(t, h, handle, done)
	for i, e := range []batch.Executor{h.Executor, h.Executor, restarted()} {
		cr, ok := e.(batch.ChangeReporter)
		if !ok {
			t.Fatalf("%s does not report only what changed (batch.ChangeReporter)", e.Name())
		}
		p, err := cr.PollChanges(ctx, handle)
		if err != nil {
			t.Fatalf("PollChanges(%s), call %d: %v", handle, i+1, err)
		}
		want := shards
		if i == 1 {
			want = 0
		}
		if len(p.Children) != want || !p.Done {
			t.Errorf("PollChanges(%s), call %d (%s): %d children reported (done: %v), want %d (done)", handle, i+1,
				[]string{"first", "again", "first after a restart"}[i], len(p.Children), p.Done, want)
		}
		for _, c := range p.Children {
			if c.State != batch.ShardSucceeded {
				t.Errorf("PollChanges(%s), call %d: shard %d %s, want SUCCEEDED", handle, i+1, c.Shard, c.State)
			}
		}
	}
}
