package batch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
)

// TestSummariesWithoutShards: Summaries gives the jobs Find gives, in the
// same order, each without its shards and with its shards' counts, copied;
// and it costs the same few allocations per job however many shards the jobs
// have, where Find copies every shard.
func TestSummariesWithoutShards(t *testing.T) {
	ctx := context.Background()
	st := fileStore(t)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i, n := range []int{3, 20000, 5} {
		at := t0.Add(time.Duration(i) * time.Minute)
		m := &batch.Manifest{JobID: batch.NewJobID(at), Function: "psd", Dataset: "demo", DatasetVersion: "v1",
			Params: json.RawMessage(`{"fs":250}`), State: batch.StateFailed, MaxAttempts: 3, Executor: "local", CreatedAt: at, FinishedAt: &at}
		for s := range n {
			state := batch.ShardSucceeded
			if s%3 == 1 {
				state = batch.ShardFailed
			}
			m.Shards = append(m.Shards, batch.ShardRecord{Name: fmt.Sprintf("part-%05d", s), Input: "in", Format: "arrow", State: state,
				Errors: []batch.AttemptError{{Attempt: 1, Error: "exit status 1", At: at}}})
		}
		if err := batch.SaveManifest(ctx, st, m); err != nil {
			t.Fatal(err)
		}
	}
	fns := analysis.Builtins()
	mg := batch.NewManager(dataset.NewCatalog(st), fns, &crashing{}, &batch.Options{Log: quiet})
	t.Cleanup(mg.Close)
	if err := mg.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range []batch.Query{{Newest: true}, {Limit: 2}, {Newest: true, Limit: 1}} {
		jobs, sums := mg.Find(q), mg.Summaries(q)
		if len(sums) != len(jobs) {
			t.Fatalf("%+v: %d summaries, %d jobs", q, len(sums), len(jobs))
		}
		for i, s := range sums {
			if s.Job.JobID != jobs[i].JobID || s.Job.Shards != nil || s.Counts != jobs[i].Counts() || s.Job.Params == nil {
				t.Errorf("%+v: summary %d is %s with %d shards, counts %+v; want %s without shards, counts %+v",
					q, i, s.Job.JobID, len(s.Job.Shards), s.Counts, jobs[i].JobID, jobs[i].Counts())
			}
		}
	}
	// A copy: changing it changes nothing the manager holds.
	s := mg.Summaries(batch.Query{Limit: 1})[0]
	s.Job.Function = "changed"
	if again := mg.Summaries(batch.Query{Limit: 1})[0]; again.Job.Function != "psd" {
		t.Errorf("a summary shares the manager's manifest: %q", again.Job.Function)
	}
	q := batch.Query{Newest: true}
	find := testing.AllocsPerRun(5, func() { mg.Find(q) })
	sums := testing.AllocsPerRun(5, func() { mg.Summaries(q) })
	t.Logf("allocations for 3 jobs of 20,008 shards: Find %.0f, Summaries %.0f", find, sums)
	if sums > 300 {
		t.Errorf("Summaries of 3 jobs makes %.0f allocations, want at most 300 whatever their shards", sums)
	}
}

// TestSummariesWithFailures: a summary lists copies of the job's first
// shards with failed attempts, in shard order, as many as asked for, and
// counts them all; Summary gives one job's, Summaries none.
func TestSummariesWithFailures(t *testing.T) {
	ctx := context.Background()
	st := fileStore(t)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	m := &batch.Manifest{JobID: batch.NewJobID(at), Function: "psd", Dataset: "demo", DatasetVersion: "v1",
		Params: json.RawMessage(`{"fs":250}`), State: batch.StateFailed, MaxAttempts: 3, Executor: "local", CreatedAt: at, FinishedAt: &at}
	var want []string
	for s := range 50 {
		sh := batch.ShardRecord{Name: fmt.Sprintf("part-%05d", s), Input: "in", Format: "arrow", State: batch.ShardSucceeded}
		if s%5 == 2 {
			sh.State = batch.ShardFailed
			sh.Errors = []batch.AttemptError{{Attempt: 1, Error: "exit status " + sh.Name, At: at}}
			want = append(want, sh.Name)
		}
		m.Shards = append(m.Shards, sh)
	}
	if err := batch.SaveManifest(ctx, st, m); err != nil {
		t.Fatal(err)
	}
	mg := batch.NewManager(dataset.NewCatalog(st), analysis.Builtins(), &crashing{}, &batch.Options{Log: quiet})
	t.Cleanup(mg.Close)
	if err := mg.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	one, err := mg.Summary(m.JobID, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		sum  batch.JobSummary
		want []string
	}{
		{"SummariesWithFailures", mg.SummariesWithFailures(batch.Query{}, 4)[0], want[:4]},
		{"SummariesWithFailures-all", mg.SummariesWithFailures(batch.Query{}, 100)[0], want},
		{"Summary", one, want[:4]},
		{"Summaries", mg.Summaries(batch.Query{})[0], nil},
	} {
		var got []string
		for _, f := range c.sum.Failures {
			if len(f.Errors) != 1 || f.Errors[0].Error != "exit status "+f.Name {
				t.Errorf("%s: shard %s has errors %+v", c.name, f.Name, f.Errors)
			}
			got = append(got, f.Name)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) || c.sum.FailuresTotal != len(want) {
			t.Errorf("%s: failures %v of %d, want %v of %d", c.name, got, c.sum.FailuresTotal, c.want, len(want))
		}
	}
	one.Failures[0].Errors[0].Error = "changed"
	if again, _ := mg.Summary(m.JobID, 1); again.Failures[0].Errors[0].Error != "exit status "+want[0] {
		t.Errorf("a summary's failures share the manager's manifest: %q", again.Failures[0].Errors[0].Error)
	}
	if _, err := mg.Summary("20200101T000000000Z-000000", 1); !errors.Is(err, batch.ErrNotFound) {
		t.Errorf("Summary of an unknown job: %v, want ErrNotFound", err)
	}
}

// TestSummaryTotals: a summary totals the rows and bytes of the succeeded
// shards' parts, -1 when one of them is not known.
func TestSummaryTotals(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	tests := []struct {
		name        string
		shards      []batch.ShardRecord
		rows, bytes int64
	}{
		{"none succeeded", []batch.ShardRecord{{State: batch.ShardFailed}}, 0, 0},
		{"all known", []batch.ShardRecord{
			{State: batch.ShardSucceeded, Rows: n(3), Bytes: 100},
			{State: batch.ShardFailed, Rows: n(7), Bytes: 1000},
			{State: batch.ShardSucceeded, Rows: n(4), Bytes: 50},
		}, 7, 150},
		{"rows unknown", []batch.ShardRecord{
			{State: batch.ShardSucceeded, Rows: n(3), Bytes: 100},
			{State: batch.ShardSucceeded, Bytes: 50},
			{State: batch.ShardSucceeded, Rows: n(4), Bytes: 50},
		}, -1, 200},
		{"size unknown", []batch.ShardRecord{
			{State: batch.ShardSucceeded, Rows: n(3)},
			{State: batch.ShardSucceeded, Rows: n(4), Bytes: 50},
		}, 7, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := (&batch.Manifest{JobID: "j", Shards: tt.shards}).Summary(0)
			if s.Rows != tt.rows || s.Bytes != tt.bytes {
				t.Errorf("rows %d, bytes %d; want %d, %d", s.Rows, s.Bytes, tt.rows, tt.bytes)
			}
		})
	}
}
