package metrics_test

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/metrics"
)

type fakeJobs []*batch.Manifest

func (f fakeJobs) List(string) []*batch.Manifest { return f }

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
