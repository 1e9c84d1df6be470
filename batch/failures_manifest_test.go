package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
)

// hugeFailedJob is the manifest of a job of n shards that all failed after
// attempts attempts, each attempt's error the same long stderr tail.
func hugeFailedJob(n, attempts int, errText string) *batch.Manifest {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	m := &batch.Manifest{JobID: "20261129T100000000Z-abcdef", Function: "psd", Dataset: "big", DatasetVersion: "v1",
		Params: json.RawMessage(`{"column":"samples","fs":250}`), State: batch.StateFailed, MaxAttempts: attempts,
		Executor: "slurm", CreatedAt: now, StartedAt: &now, FinishedAt: &now}
	m.Shards = make([]batch.ShardRecord, n)
	for i := range m.Shards {
		name := fmt.Sprintf("part-%06d", i)
		s := batch.ShardRecord{Name: name, Input: "datasets/big/" + name + ".arrow", Format: "arrow", InputRows: 100,
			State: batch.ShardFailed, Attempts: attempts, StartedAt: &now, FinishedAt: &now}
		for a := 1; a <= attempts; a++ {
			s.Errors = append(s.Errors, batch.AttemptError{Attempt: a, Error: errText, At: now})
		}
		m.Shards[i] = s
	}
	return m
}

// TestManifestOfHugeFailedJobBounded: the manifest of a job of 100,000
// shards that all failed three times, each attempt with an 8 KiB stderr
// tail, keeps the first 100 shards' errors (2 KiB each, as job-status lists
// them) and a first line and the attempt record's name for the others: about
// 73 MB as stored instead of about 0.71 GB. It logs both sizes.
func TestManifestOfHugeFailedJobBounded(t *testing.T) {
	const shards, attempts = 100_000, 3
	errText := "batch: function psd: exit status 1; stderr: Traceback (most recent call last):\n" +
		strings.Repeat("  File \"/opt/lab/analysis.py\", line 42, in run\n", 8<<10/48) + "MemoryError: out of memory"
	m := hugeFailedJob(shards, attempts, errText)

	// Before: every attempt's error kept up to MaxAttemptErrorBytes. The
	// shards differ only by name, so 1,000 of them measure the rest.
	const sample = 1000
	var before int
	for i := range sample {
		s := m.Shards[i]
		for j := range s.Errors {
			s.Errors[j].Error = batch.ClipAttemptError(s.Errors[j].Error)
		}
		b, err := json.MarshalIndent(s, "    ", "  ") // as SaveManifest stored it
		if err != nil {
			t.Fatal(err)
		}
		before += len(b) + 6
	}
	before *= shards / sample

	batch.BoundFailures(m)
	data, err := json.Marshal(m) // as SaveManifest stores it
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("manifest of %d shards failed %d times with %d-byte errors: %.1f MB with every attempt's error kept to %d bytes, %.1f MB bounded",
		shards, attempts, len(errText), float64(before)/1e6, batch.MaxAttemptErrorBytes, float64(len(data))/1e6)
	// A shard's record without its errors is about 200 bytes as stored;
	// each attempt's short error adds its line, the record's name and
	// about 60.
	short := attempts * (batch.MaxShortErrorBytes + 120)
	limit := batch.MaxFullErrorShards*(attempts*(batch.MaxAttemptErrorBytes+120)+400) + shards*(400+short)
	if len(data) > limit {
		t.Fatalf("bounded manifest is %d bytes, want at most %d", len(data), limit)
	}
	if len(data) > before/8 {
		t.Fatalf("bounded manifest is %d bytes, not an eighth of the %d bytes kept before", len(data), before)
	}
	for i, s := range m.Shards {
		for _, e := range s.Errors {
			full := i < batch.MaxFullErrorShards
			ptr := fmt.Sprintf("[whole: attempts/%s.%d.json]", s.Name, e.Attempt)
			switch {
			case full && e.Error != batch.ClipAttemptError(errText):
				t.Fatalf("shard %s (among the first %d) attempt %d keeps %q, want the error clipped to %d bytes", s.Name, batch.MaxFullErrorShards, e.Attempt, clipFor(e.Error), batch.MaxAttemptErrorBytes)
			case !full && (!strings.HasPrefix(e.Error, "batch: function psd: exit status 1") || !strings.HasSuffix(e.Error, ptr) || strings.Contains(e.Error, "\n")):
				t.Fatalf("shard %s attempt %d keeps %q, want the first line and %q", s.Name, e.Attempt, e.Error, ptr)
			}
		}
	}
	bare := *m
	bare.Shards = make([]batch.ShardRecord, len(m.Shards))
	for i, s := range m.Shards {
		s.Errors = nil
		bare.Shards[i] = s
	}
	if b, err := json.Marshal(&bare); err == nil {
		t.Logf("of which %.1f MB are the manifest without any error", float64(len(b))/1e6)
	}
	// Bounding again changes nothing: the manager bounds at every update.
	again := hugeFailedJob(0, 0, "")
	again.Shards = m.Shards[:batch.MaxFullErrorShards+10]
	kept, _ := json.Marshal(again.Shards)
	batch.BoundFailures(again)
	if now, _ := json.Marshal(again.Shards); string(now) != string(kept) {
		t.Fatal("bounding a bounded manifest again changed it")
	}
}

// TestManyFailedShardsKeepFirstErrors runs a job of more shards than keep
// their errors whole, all failing: the first MaxFullErrorShards keep each
// attempt's (clipped) error, the rest its first line and the name of its
// record, and every record in the store keeps the whole error.
//
// The manifest is the same whether the executor reports every attempt at
// once or one attempt per poll, dropping the text of those it reported
// (batch.HandOverErrors).
func TestManyFailedShardsKeepFirstErrors(t *testing.T) {
	const shards, attempts = batch.MaxFullErrorShards + 8, 2
	errText := func(s, a int) string { return stderrTail(4<<10, "x", s, a) }
	for _, tc := range []struct {
		name string
		exec batch.Executor
	}{
		{"all at once", &crashing{attempts: attempts, errText: errText}},
		{"handed over", &handingOver{crashing: crashing{attempts: attempts, errText: errText}}},
	} {
		t.Run(tc.name, func(t *testing.T) { testManyFailedShardsKeepFirstErrors(t, tc.exec, shards, attempts) })
	}
}

// handingOver is an executor whose children fail one more attempt at each
// poll, holding their errors as the executors do: the text of those past the
// first MaxFullErrorShards failed shards dropped once reported.
type handingOver struct {
	crashing
	polls int
	held  map[int][]batch.AttemptError
	// heldBytes is the error text held after each poll.
	heldBytes []int
}

func (e *handingOver) Poll(context.Context, string) (batch.Progress, error) {
	if e.held == nil {
		e.held = map[int][]batch.AttemptError{}
	}
	e.polls++
	a := min(e.polls, e.attempts)
	p := batch.Progress{Done: a == e.attempts}
	for _, s := range e.shards {
		if len(e.held[s]) < a {
			e.held[s] = append(e.held[s], batch.AttemptError{Attempt: a, Error: e.errText(s, a), At: time.Now().UTC()})
		}
		state := batch.ShardPending
		if p.Done {
			state = batch.ShardFailed
		}
		p.Children = append(p.Children, batch.Child{Shard: s, State: state, Attempts: a, Errors: slices.Clone(e.held[s])})
	}
	batch.HandOverErrors(p, func(shard int) []batch.AttemptError { return e.held[shard] })
	n := 0
	for _, errs := range e.held {
		for _, ae := range errs {
			n += len(ae.Error)
		}
	}
	e.heldBytes = append(e.heldBytes, n)
	return p, nil
}

func testManyFailedShardsKeepFirstErrors(t *testing.T, exec batch.Executor, shards, attempts int) {
	ctx := context.Background()
	st := fileStore(t)
	cat := manyShards(t, st, shards)
	mg := batch.NewManager(cat, analysis.Builtins(), exec, &batch.Options{Log: quiet})
	t.Cleanup(mg.Close)
	m := waitFor(t, mg, submit(t, mg, "demo", `{"fs": 250}`, false).JobID, terminal)
	check := func(what string, m *batch.Manifest) {
		t.Helper()
		for i, s := range m.Shards {
			if len(s.Errors) != attempts {
				t.Fatalf("%s: shard %s keeps %d errors, want %d", what, s.Name, len(s.Errors), attempts)
			}
			for _, e := range s.Errors {
				whole := stderrTail(4<<10, "x", i, e.Attempt)
				want := batch.ClipAttemptError(whole)
				if i >= batch.MaxFullErrorShards {
					want = fmt.Sprintf("%s ... [whole: attempts/%s.%d.json]", whole[:batch.MaxShortErrorBytes], s.Name, e.Attempt)
				}
				if e.Error != want {
					t.Errorf("%s: shard %s attempt %d keeps %q, want %q", what, s.Name, e.Attempt, clipFor(e.Error), clipFor(want))
				}
				rec, err := batch.ReadAttemptError(ctx, st, m.JobID, s.Name, e.Attempt)
				if err != nil || rec == nil || rec.Error != whole {
					t.Errorf("%s: shard %s attempt %d: the record in the store is %v, %v; want the whole error", what, s.Name, e.Attempt, rec != nil, err)
				}
			}
		}
	}
	check("the manager", m)
	rebuilt, err := batch.RebuildManifest(ctx, st, m.JobID)
	if err != nil {
		t.Fatal(err)
	}
	check("a rebuilt manifest", rebuilt)
	if h, ok := exec.(*handingOver); ok {
		// What the first MaxFullErrorShards shards' errors take.
		limit := 0
		for s := 0; s < batch.MaxFullErrorShards; s++ {
			for a := 1; a <= attempts; a++ {
				limit += len(h.errText(s, a))
			}
		}
		for i, n := range h.heldBytes {
			if n > limit {
				t.Errorf("after poll %d the executor holds %d bytes of errors, want at most %d", i+1, n, limit)
			}
		}
	}
}

// TestRebuiltManifestOfDottedShards: shard names may hold dots (a file
// "rec.2024-01.arrow" put in a dataset's folder is shard "rec.2024-01"); a
// manifest rebuilt from the attempt records keeps each such shard's failed
// attempts, as the manager's does.
func TestRebuiltManifestOfDottedShards(t *testing.T) {
	const attempts = 2
	ctx := context.Background()
	st := fileStore(t)
	cat := manyShards(t, st, 2)
	for i, name := range []string{"rec.2024-01", "rec.2024-02.a"} {
		data, err := st.ReadAll(ctx, fmt.Sprintf("datasets/demo/part-%05d.arrow", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.WriteAll(ctx, "datasets/dots/"+name+".arrow", data); err != nil {
			t.Fatal(err)
		}
	}
	exec := &crashing{attempts: attempts, errText: func(s, a int) string { return fmt.Sprintf("shard %d attempt %d failed", s, a) }}
	mg := batch.NewManager(cat, analysis.Builtins(), exec, &batch.Options{Log: quiet})
	t.Cleanup(mg.Close)
	m := waitFor(t, mg, submit(t, mg, "dots", `{"fs": 250}`, false).JobID, terminal)
	rebuilt, err := batch.RebuildManifest(ctx, st, m.JobID)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range m.Shards {
		if !strings.Contains(s.Name, ".") || len(s.Errors) != attempts {
			t.Fatalf("the manager's shard %s keeps %d errors; want a dotted name and %d", s.Name, len(s.Errors), attempts)
		}
		r := rebuilt.Shards[i]
		if r.Name != s.Name || r.Attempts != s.Attempts || len(r.Errors) != len(s.Errors) {
			t.Errorf("rebuilt shard %s: %d attempts, %d errors; the manager's %s: %d, %d", r.Name, r.Attempts, len(r.Errors), s.Name, s.Attempts, len(s.Errors))
			continue
		}
		for j := range s.Errors {
			if r.Errors[j].Error != s.Errors[j].Error {
				t.Errorf("rebuilt shard %s attempt %d keeps %q, the manager %q", r.Name, r.Errors[j].Attempt, r.Errors[j].Error, s.Errors[j].Error)
			}
		}
	}
}
