package batch_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// TestShardPage: the pages of a job's shards, of all states or of one, visit
// each shard once in the manifest's order with the job's counts, and a page
// is a copy: changing it changes nothing in the job.
func TestShardPage(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	m := &batch.Manifest{JobID: batch.NewJobID(at), Function: "psd", Dataset: "demo", State: batch.StateFailed, MaxAttempts: 2,
		Executor: "local", CreatedAt: at, StartedAt: &at, FinishedAt: &at, Labels: map[string]string{"cohort": "pd"}}
	for i := range 257 {
		s := batch.ShardRecord{Name: fmt.Sprintf("part-%05d", i), Format: "arrow", State: batch.ShardSucceeded, Attempts: 1, StartedAt: &at, FinishedAt: &at}
		if i%5 == 2 {
			s.State, s.Attempts = batch.ShardFailed, 2
			s.Errors = []batch.AttemptError{{Attempt: 1, Error: "exit status 1", At: at}, {Attempt: 2, Error: "exit status 2", At: at}}
		}
		m.Shards = append(m.Shards, s)
	}
	if err := batch.SaveManifest(ctx, st, m); err != nil {
		t.Fatal(err)
	}
	fns := analysis.Builtins()
	w := &batch.Worker{Store: st, Functions: fns}
	mg := batch.NewManager(dataset.NewCatalog(st), fns, local.New(w.RunShard, 1, nil), &batch.Options{Log: quiet})
	if err := mg.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mg.Close)
	before, err := mg.Status(m.JobID)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		state batch.ShardState
		limit int
	}{{"", 100}, {"", 1}, {batch.ShardFailed, 7}, {batch.ShardSucceeded, 1000}, {batch.ShardCancelled, 3}} {
		var want, got []string
		for _, s := range m.Shards {
			if tc.state == "" || s.State == tc.state {
				want = append(want, s.Name)
			}
		}
		for q := (batch.ShardQuery{State: tc.state, Limit: tc.limit}); ; {
			p, err := mg.ShardPage(m.JobID, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Shards) > tc.limit || len(p.Positions) != len(p.Shards) || p.Job.Shards != nil || p.Counts != m.Counts() {
				t.Fatalf("%+v: %d shards, %d positions, counts %+v; want at most %d, the job's counts %+v and no shards in Job",
					q, len(p.Shards), len(p.Positions), p.Counts, tc.limit, m.Counts())
			}
			for i, s := range p.Shards {
				if m.Shards[p.Positions[i]].Name != s.Name {
					t.Fatalf("%+v: shard %s at position %d, which holds %s", q, s.Name, p.Positions[i], m.Shards[p.Positions[i]].Name)
				}
				got = append(got, s.Name)
			}
			if p.Next < 0 {
				break
			}
			if p.Next <= q.From || len(got) > len(m.Shards) {
				t.Fatalf("%+v: next page from %d", q, p.Next)
			}
			q.From = p.Next
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("state %q, %d a page: the pages hold %d shards, want the job's %d once each, in order", tc.state, tc.limit, len(got), len(want))
		}
	}

	p, err := mg.ShardPage(m.JobID, batch.ShardQuery{State: batch.ShardFailed, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	p.Job.Labels["cohort"], p.Job.Error = "changed", "changed"
	p.Shards[0].Errors[0].Error, *p.Shards[0].StartedAt = "changed", at.Add(time.Hour)
	if after, _ := mg.Status(m.JobID); !reflect.DeepEqual(after, before) {
		t.Error("changing a page of shards changed the job")
	}
	if _, err := mg.ShardPage("20261129T100000000Z-000000", batch.ShardQuery{Limit: 1}); !errors.Is(err, batch.ErrNotFound) {
		t.Errorf("an unknown job: %v, want ErrNotFound", err)
	}
}
