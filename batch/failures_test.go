package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// crashing is an executor whose every child fails each of its attempts at
// once, explained by its executor (no worker record): errText(shard, attempt)
// is the error, as an executor reports a crashed child's stderr tail.
type crashing struct {
	attempts int
	errText  func(shard, attempt int) string
	shards   []int
}

func (*crashing) Name() string                         { return "crashing" }
func (*crashing) PollInterval() time.Duration          { return 10 * time.Millisecond }
func (*crashing) Cancel(context.Context, string) error { return nil }
func (e *crashing) Start(_ context.Context, _ *batch.Manifest, shards []int) (string, error) {
	e.shards = shards
	return "crashing-1", nil
}
func (e *crashing) Poll(context.Context, string) (batch.Progress, error) {
	p := batch.Progress{Done: true}
	for _, s := range e.shards {
		c := batch.Child{Shard: s, State: batch.ShardFailed, Attempts: e.attempts}
		for a := 1; a <= e.attempts; a++ {
			c.Errors = append(c.Errors, batch.AttemptError{Attempt: a, Error: e.errText(s, a), At: time.Now().UTC()})
		}
		p.Children = append(p.Children, c)
	}
	return p, nil
}

// stderrTail is a long error as a failed child gives it: its exit status, then
// n bytes of stderr whose last line names the cause.
func stderrTail(n int, filler string, shard, attempt int) string {
	cause := fmt.Sprintf("\ncause: shard %d attempt %d ran out of disk", shard, attempt)
	return "exit status 1; stderr: " + strings.Repeat(filler, (n-len(cause))/len(filler)) + cause
}

// manyShards writes a dataset of n shards to st.
func manyShards(t *testing.T, st *store.Store, n int) *dataset.Catalog {
	t.Helper()
	cat := dataset.NewCatalog(st)
	if err := dataset.GenerateDemo(context.Background(), cat, "demo", dataset.DemoOptions{Shards: n, Bytes: 64 << 10, Seconds: 4}); err != nil {
		t.Fatal(err)
	}
	return cat
}

// TestFailureTextBounded: a job whose every shard fails with a long stderr
// tail keeps a bounded manifest: each attempt's error cut in the middle (its
// start and the cause at its end kept), the job's error naming the first shards and counting the
// rest, while each attempt's record in the store keeps the error whole.
func TestFailureTextBounded(t *testing.T) {
	const shards, attempts = 12, 3
	for _, tc := range []struct {
		name   string
		errLen int
		filler string
		cut    bool
	}{
		{"short errors are kept whole", 200, "x", false},
		{"a stderr tail of 8 KiB", 8 << 10, "x", true},
		{"a stderr tail of 9000 bytes of multibyte text", 9000, "é∑", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := fileStore(t)
			cat := manyShards(t, st, shards)
			exec := &crashing{attempts: attempts, errText: func(s, a int) string { return stderrTail(tc.errLen, tc.filler, s, a) }}
			mg := batch.NewManager(cat, analysis.Builtins(), exec, &batch.Options{Log: quiet})
			t.Cleanup(mg.Close)
			m := waitFor(t, mg, submit(t, mg, "demo", `{"fs": 250}`, false).JobID, terminal)
			if m.State != batch.StateFailed {
				t.Fatalf("job ended %s, want FAILED", m.State)
			}
			for i, s := range m.Shards {
				if len(s.Errors) != attempts {
					t.Fatalf("shard %s keeps %d errors, want %d", s.Name, len(s.Errors), attempts)
				}
				for _, e := range s.Errors {
					want := stderrTail(tc.errLen, tc.filler, i, e.Attempt)
					switch {
					case len(e.Error) > batch.MaxAttemptErrorBytes:
						t.Errorf("shard %s attempt %d: %d bytes kept, want at most %d", s.Name, e.Attempt, len(e.Error), batch.MaxAttemptErrorBytes)
					case !utf8.ValidString(e.Error):
						t.Errorf("shard %s attempt %d: the cut error is not valid UTF-8", s.Name, e.Attempt)
					case !tc.cut && e.Error != want:
						t.Errorf("shard %s attempt %d: a short error was changed to %q", s.Name, e.Attempt, e.Error)
					case tc.cut && (!strings.Contains(e.Error, "cut") || !strings.HasSuffix(want, tailOf(e.Error)) || !strings.HasPrefix(e.Error, "exit status 1; stderr: ")):
						t.Errorf("shard %s attempt %d: the cut error %q… does not say it was cut and end as the error does", s.Name, e.Attempt, clipFor(e.Error))
					case !strings.HasSuffix(e.Error, fmt.Sprintf("cause: shard %d attempt %d ran out of disk", i, e.Attempt)):
						t.Errorf("shard %s attempt %d: the cause was lost: ...%q", s.Name, e.Attempt, e.Error[max(len(e.Error)-80, 0):])
					}
					rec, err := batch.ReadAttemptError(ctx, st, m.JobID, s.Name, e.Attempt)
					if err != nil || rec == nil || rec.Error != want {
						t.Errorf("shard %s attempt %d: the record in the store is %v, %v; want the whole error", s.Name, e.Attempt, rec != nil, err)
					}
				}
			}
			if len(m.Error) > batch.MaxJobErrorBytes {
				t.Errorf("job error is %d bytes, want at most %d", len(m.Error), batch.MaxJobErrorBytes)
			}
			more := fmt.Sprintf("; and %d more shards failed; see failures", shards-batch.MaxJobErrorShards)
			if !strings.HasSuffix(m.Error, more) || strings.Count(m.Error, "failed after") != batch.MaxJobErrorShards {
				t.Errorf("job error names %d shards and ends %q; want %d and %q", strings.Count(m.Error, "failed after"), m.Error[max(len(m.Error)-80, 0):], batch.MaxJobErrorShards, more)
			}
			data, err := st.ReadAll(ctx, batch.ManifestKey(m.JobID))
			if err != nil {
				t.Fatal(err)
			}
			// The manifest without failures is about 300 bytes a shard.
			limit := shards*(attempts*(batch.MaxAttemptErrorBytes+200)+1000) + batch.MaxJobErrorBytes
			if len(data) > limit {
				t.Errorf("manifest is %d bytes; want at most %d", len(data), limit)
			}
		})
	}
}

// tailOf is what a cut error keeps of the end of the error.
func tailOf(s string) string {
	_, tail, _ := strings.Cut(s, "has it whole] ...")
	return tail
}

func clipFor(s string) string { return s[:min(len(s), 120)] }

// TestOldManifestServedBounded: a manifest kept before the bounds, with whole
// stderr tails and a job error naming every shard, is loaded bounded.
func TestOldManifestServedBounded(t *testing.T) {
	ctx := context.Background()
	st := fileStore(t)
	cat := manyShards(t, st, 8)
	exec := &crashing{attempts: 1, errText: func(s, a int) string { return "short" }}
	mg := batch.NewManager(cat, analysis.Builtins(), exec, &batch.Options{Log: quiet})
	m := waitFor(t, mg, submit(t, mg, "demo", `{"fs": 250}`, false).JobID, terminal)
	mg.Close()

	// Rewrite it as a server before the bounds kept it.
	var failed []string
	for i := range m.Shards {
		s := &m.Shards[i]
		s.Errors = []batch.AttemptError{{Attempt: 1, Error: stderrTail(9000, "x", i, 1), At: time.Now().UTC()}}
		failed = append(failed, fmt.Sprintf("shard %s failed after 1 attempt(s): %s", s.Name, s.Errors[0].Error))
		rec, _ := json.Marshal(s.Errors[0])
		if err := st.WriteAll(ctx, batch.AttemptsPrefix(m.JobID)+s.Name+".1.json", rec); err != nil {
			t.Fatal(err)
		}
	}
	m.Error = strings.Join(failed, "; ")
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteAll(ctx, batch.ManifestKey(m.JobID), data); err != nil {
		t.Fatal(err)
	}
	final, _ := json.Marshal(batch.Final{State: batch.StateFailed, Error: m.Error, FinishedAt: time.Now().UTC()})
	if err := st.WriteAll(ctx, batch.FinalKey(m.JobID), final); err != nil {
		t.Fatal(err)
	}

	for _, read := range []struct {
		name string
		get  func() (*batch.Manifest, error)
	}{
		{"a new manager", func() (*batch.Manifest, error) {
			mg := batch.NewManager(cat, analysis.Builtins(), exec, &batch.Options{Log: quiet})
			defer mg.Close()
			if err := mg.Recover(ctx); err != nil {
				return nil, err
			}
			return mg.Status(m.JobID)
		}},
		{"ReadManifest", func() (*batch.Manifest, error) { return batch.ReadManifest(ctx, st, m.JobID) }},
		{"RebuildManifest", func() (*batch.Manifest, error) { return batch.RebuildManifest(ctx, st, m.JobID) }},
	} {
		t.Run(read.name, func(t *testing.T) {
			got, err := read.get()
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Error) > batch.MaxJobErrorBytes || !strings.HasPrefix(got.Error, "shard part-00000 failed") {
				t.Errorf("job error is %d bytes starting %q; want at most %d, the first shards kept", len(got.Error), clipFor(got.Error), batch.MaxJobErrorBytes)
			}
			for i, s := range got.Shards {
				for _, e := range s.Errors {
					if len(e.Error) > batch.MaxAttemptErrorBytes || !strings.HasSuffix(e.Error, fmt.Sprintf("cause: shard %d attempt 1 ran out of disk", i)) {
						t.Errorf("shard %s: %d bytes kept, ending %q", s.Name, len(e.Error), e.Error[max(len(e.Error)-60, 0):])
					}
				}
			}
		})
	}
}

func TestClipAttemptError(t *testing.T) {
	n := batch.MaxAttemptErrorBytes
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"at the bound", strings.Repeat("a", n)},
		{"one byte over", strings.Repeat("a", n+1)},
		{"multibyte over", strings.Repeat("ü", n)},
		{"four-byte runes over", strings.Repeat("𝄞", n)},
		{"huge", strings.Repeat("b", 1<<20) + "the end"},
		{"invalid UTF-8 over", strings.Repeat("\xff", n) + "the end"},
		{"invalid UTF-8 within", "\xff\xfe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := batch.ClipAttemptError(tc.in)
			if !utf8.ValidString(tc.in) {
				// JSON would make each bad byte 3: it is replaced first.
				if !utf8.ValidString(got) || len(got) > n || !strings.HasSuffix(got, strings.ToValidUTF8(tc.in, "\uFFFD")) {
					t.Errorf("invalid UTF-8 kept as %q (%d bytes)", clipFor(got), len(got))
				}
				return
			}
			if len(tc.in) <= n {
				if got != tc.in {
					t.Errorf("an error within the bound was changed: %q", clipFor(got))
				}
				return
			}
			head, _, ok := strings.Cut(got, " ...[error of")
			tail := tailOf(got)
			switch {
			case len(got) > n:
				t.Errorf("%d bytes, want at most %d", len(got), n)
			case !ok || !strings.Contains(got, fmt.Sprintf("error of %d bytes cut", len(tc.in))):
				t.Errorf("no note of the cut: %q", clipFor(got))
			case !utf8.ValidString(got) || !strings.HasSuffix(tc.in, tail) || len(tail) < n/2:
				t.Errorf("kept %d bytes, not the valid end of the error", len(tail))
			case !strings.HasPrefix(tc.in, head) || len(head) < batch.MaxAttemptErrorHeadBytes-3:
				t.Errorf("kept %d bytes, not the valid start of the error", len(head))
			}
		})
	}
}
