package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/metrics"
	"github.com/flightbatch/flightbatch/store"
)

// idle is an executor that is never asked to run anything: the manager's
// jobs are all finished.
type idle struct{}

func (idle) Name() string                         { return "idle" }
func (idle) PollInterval() time.Duration          { return time.Hour }
func (idle) Cancel(context.Context, string) error { return nil }
func (idle) Start(context.Context, *batch.Manifest, []int) (string, error) {
	return "", fmt.Errorf("idle executor: %w", batch.ErrNotRunning)
}
func (idle) Poll(context.Context, string) (batch.Progress, error) {
	return batch.Progress{}, fmt.Errorf("idle executor: %w", batch.ErrNotRunning)
}

// finishedManager returns a manager holding jobs finished jobs of shards
// shards each (a third of the shards with a failed attempt), as recovered
// from a memory store.
func finishedManager(tb testing.TB, jobs, shards int) *batch.Manager {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for j := range jobs {
		created := at.Add(time.Duration(j) * time.Minute)
		state := batch.StateSucceeded
		if j%2 == 1 {
			state = batch.StateFailed
		}
		m := &batch.Manifest{JobID: batch.NewJobID(created), Function: "psd", Dataset: "big", DatasetVersion: "v1",
			Params: json.RawMessage(`{"fs":250}`), State: state, MaxAttempts: 3, Executor: fmt.Sprintf("exec-%d", j%3),
			CreatedAt: created, StartedAt: &created, FinishedAt: &created}
		for i := range shards {
			rows := int64(1000)
			start, end := created.Add(time.Duration(i%7)*time.Second), created.Add(time.Duration(i%11)*time.Minute)
			s := batch.ShardRecord{Name: fmt.Sprintf("part-%06d", i), Input: fmt.Sprintf("datasets/big/v1/part-%06d.arrow", i),
				Format: dataset.FormatArrow, InputRows: 1000, State: batch.ShardSucceeded, Attempts: 1, Rows: &rows, Done: i + 1,
				Bytes: 4096, StartedAt: &start, FinishedAt: &end}
			switch {
			case i%3 == 0:
				s.Attempts = 2
				s.Errors = []batch.AttemptError{{Attempt: 1, Error: "exit status 1", At: start}}
			case state == batch.StateFailed && i%5 == 0:
				s.State, s.Attempts, s.Rows, s.Done, s.Bytes = batch.ShardFailed, 3, nil, 0, 0
			case i%13 == 0:
				s.StartedAt = nil // ended before it was seen running
			}
			m.Shards = append(m.Shards, s)
		}
		if err := batch.SaveManifest(ctx, st, m); err != nil {
			tb.Fatal(err)
		}
	}
	mg := batch.NewManager(dataset.NewCatalog(st), analysis.Builtins(), idle{}, &batch.Options{Log: slog.New(slog.DiscardHandler)})
	tb.Cleanup(mg.Close)
	if err := mg.Recover(ctx); err != nil {
		tb.Fatal(err)
	}
	return mg
}

// BenchmarkScrape gathers the metrics of a job history of finished jobs:
// one job of 100,000 shards, and 100 jobs of 1,000 (go test -run '^$'
// -bench Scrape -benchmem ./metrics/).
func BenchmarkScrape(b *testing.B) {
	for _, c := range []struct{ jobs, shards int }{{1, 100000}, {100, 1000}} {
		b.Run(fmt.Sprintf("%dx%d", c.jobs, c.shards), func(b *testing.B) {
			mg := finishedManager(b, c.jobs, c.shards)
			m := metrics.New()
			m.CollectJobs(mg)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Registry().Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
