package metrics_test

import (
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/metrics"
)

// fakeJobs is a job history of these manifests.
type fakeJobs []*batch.Manifest

func (f fakeJobs) Summaries(batch.Query) []batch.JobSummary {
	out := make([]batch.JobSummary, len(f))
	for i, m := range f {
		out[i] = m.Summary(0)
	}
	return out
}

func (f fakeJobs) ReadJob(id string, read func(*batch.Manifest)) error {
	for _, m := range f {
		if m.JobID == id {
			read(m)
			return nil
		}
	}
	return fmt.Errorf("job %q: %w", id, batch.ErrNotFound)
}

// value finds the metric named name whose labels include want.
func value(t *testing.T, fams []*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for k, v := range want {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == k && l.GetValue() == v)
				}
				if !found {
					continue next
				}
			}
			return m
		}
	}
	t.Fatalf("no metric %s%v", name, want)
	return nil
}

func TestJobsAndStreams(t *testing.T) {
	t0 := time.Now().Add(-time.Minute)
	at := func(s float64) *time.Time { x := t0.Add(time.Duration(s * float64(time.Second))); return &x }
	jobs := fakeJobs{
		{JobID: "a", State: batch.StateSucceeded, Executor: "local", StartedAt: at(0), Shards: []batch.ShardRecord{
			{State: batch.ShardSucceeded, Attempts: 1, StartedAt: at(0), FinishedAt: at(0.2)},
			{State: batch.ShardSucceeded, Attempts: 3, StartedAt: at(0), FinishedAt: at(3)},
			{State: batch.ShardSucceeded, Attempts: 1, FinishedAt: at(0.04)}, // never seen running
		}},
		{JobID: "b", State: batch.StateRunning, Executor: "aws-batch", StartedAt: at(0), Shards: []batch.ShardRecord{
			{State: batch.ShardRunning, Attempts: 1, StartedAt: at(1)},
			{State: batch.ShardFailed, Attempts: 2, StartedAt: at(1), FinishedAt: at(20)},
			{State: batch.ShardPending},
		}},
	}
	m := metrics.New()
	m.CollectJobs(jobs)
	m.StreamStarted("DoGet")
	m.StreamStarted("DoGet")
	m.StreamEnded("DoGet", 100, 4096)
	m.StreamStarted("DoPut")
	m.StreamEnded("DoPut", 7, 512)
	m.StoreError("read")
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"flightbatch_jobs", map[string]string{"state": "SUCCEEDED"}, 1},
		{"flightbatch_jobs", map[string]string{"state": "RUNNING"}, 1},
		{"flightbatch_jobs", map[string]string{"state": "FAILED"}, 0},
		{"flightbatch_children_running", map[string]string{"executor": "aws-batch"}, 1},
		{"flightbatch_children_running", map[string]string{"executor": "local"}, 0},
		{"flightbatch_children_succeeded_total", map[string]string{"executor": "local"}, 3},
		{"flightbatch_children_failed_total", map[string]string{"executor": "aws-batch"}, 1},
		{"flightbatch_children_retried_total", map[string]string{"executor": "local"}, 2},
		{"flightbatch_children_retried_total", map[string]string{"executor": "aws-batch"}, 1},
		{"flightbatch_active_streams", map[string]string{"call": "DoGet"}, 1},
		{"flightbatch_active_streams", map[string]string{"call": "DoPut"}, 0},
		{"flightbatch_stream_records_total", map[string]string{"call": "DoGet"}, 100},
		{"flightbatch_stream_bytes_total", map[string]string{"call": "DoPut"}, 512},
		{"flightbatch_store_errors_total", map[string]string{"op": "read"}, 1},
	} {
		mt := value(t, fams, c.name, c.labels)
		got := mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	h := value(t, fams, "flightbatch_child_duration_seconds", map[string]string{"executor": "local"}).GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() < 3.2 || h.GetSampleSum() > 3.3 {
		t.Errorf("local durations: count %d sum %v, want 3 and 3.24", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == 0.25 && b.GetCumulativeCount() != 2 {
			t.Errorf("children under 0.25 s: %d, want 2", b.GetCumulativeCount())
		}
	}
}

// history is a job history that changes between scrapes.
type history struct{ jobs fakeJobs }

func (h *history) Summaries(q batch.Query) []batch.JobSummary { return h.jobs.Summaries(q) }

func (h *history) ReadJob(id string, read func(*batch.Manifest)) error {
	return h.jobs.ReadJob(id, read)
}

// A job deleted from the history (delete-job, --keep-results) keeps counting:
// Prometheus reads any fall of a counter as a restart of the process, and
// rate() and increase() over it would count the whole history again.
func TestCountersNeverGoDown(t *testing.T) {
	t0 := time.Now().Add(-time.Hour)
	at := func(s float64) *time.Time { x := t0.Add(time.Duration(s * float64(time.Second))); return &x }
	job := func(id string, shards ...batch.ShardRecord) *batch.Manifest {
		return &batch.Manifest{JobID: id, State: batch.StateFailed, Executor: "local", StartedAt: at(0), FinishedAt: at(60), Shards: shards}
	}
	ok := batch.ShardRecord{State: batch.ShardSucceeded, Attempts: 2, StartedAt: at(0), FinishedAt: at(0.1)}
	bad := batch.ShardRecord{State: batch.ShardFailed, Attempts: 3, StartedAt: at(0), FinishedAt: at(40)}
	a, b, c := job("a", ok, bad), job("b", ok, ok), job("c", bad)
	type figures struct {
		succeeded, failed, retried float64
		durations                  uint64
	}
	for _, tc := range []struct {
		name    string
		scrapes [][]*batch.Manifest
		want    figures
	}{
		{"nothing deleted", [][]*batch.Manifest{{a, b}, {a, b}}, figures{3, 1, 5, 4}},
		{"one deleted", [][]*batch.Manifest{{a, b}, {b}}, figures{3, 1, 5, 4}},
		{"every job deleted", [][]*batch.Manifest{{a, b}, {}}, figures{3, 1, 5, 4}},
		{"deleted, then a new job", [][]*batch.Manifest{{a, b}, {b}, {b, c}}, figures{3, 2, 7, 5}},
		{"deleted one at a time", [][]*batch.Manifest{{a, b, c}, {b, c}, {c}, {}}, figures{3, 2, 7, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &history{}
			m := metrics.New()
			m.CollectJobs(h)
			var last figures
			for i, jobs := range tc.scrapes {
				h.jobs = jobs
				fams, err := m.Registry().Gather()
				if err != nil {
					t.Fatal(err)
				}
				local := map[string]string{"executor": "local"}
				got := figures{
					value(t, fams, "flightbatch_children_succeeded_total", local).GetCounter().GetValue(),
					value(t, fams, "flightbatch_children_failed_total", local).GetCounter().GetValue(),
					value(t, fams, "flightbatch_children_retried_total", local).GetCounter().GetValue(),
					value(t, fams, "flightbatch_child_duration_seconds", local).GetHistogram().GetSampleCount(),
				}
				if got.succeeded < last.succeeded || got.failed < last.failed || got.retried < last.retried || got.durations < last.durations {
					t.Errorf("scrape %d: %+v after %+v: a counter went down", i+1, got, last)
				}
				last = got
			}
			if last != tc.want {
				t.Errorf("last scrape: %+v, want %+v", last, tc.want)
			}
		})
	}
}
