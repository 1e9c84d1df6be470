package batch_test

import (
	"context"
	"encoding/json"
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
