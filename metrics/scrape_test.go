package metrics_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/metrics"
)

// copied is a manager's job history read as whole copies of its manifests
// (List), what a scrape read before it used the manager's summaries.
type copied struct{ mg *batch.Manager }

func (c copied) Summaries(q batch.Query) []batch.JobSummary {
	return fakeJobs(c.mg.List("")).Summaries(q)
}

func (c copied) ReadJob(id string, read func(*batch.Manifest)) error {
	return fakeJobs(c.mg.List("")).ReadJob(id, read)
}

// jobFamilies gathers m's job metrics (flightbatch_jobs and
// flightbatch_child*), by name.
func jobFamilies(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		if n := f.GetName(); n == "flightbatch_jobs" || strings.HasPrefix(n, "flightbatch_child") {
			out[n] = f
		}
	}
	return out
}

// TestScrapeMatchesCopies: the job metrics of a manager's history, read
// from its summaries (and, once, from its shards), are those read from
// copies of its manifests, at the first scrape and at the next.
func TestScrapeMatchesCopies(t *testing.T) {
	mg := finishedManager(t, 7, 500)
	want := metrics.New()
	want.CollectJobs(copied{mg})
	got := metrics.New()
	got.CollectJobs(mg)
	for scrape := 1; scrape <= 2; scrape++ {
		w, g := jobFamilies(t, want), jobFamilies(t, got)
		if len(w) != 6 {
			t.Fatalf("%d job metric families, want 6", len(w))
		}
		for name, f := range w {
			if !proto.Equal(f, g[name]) {
				t.Errorf("scrape %d: %s is\n%v\nwant\n%v", scrape, name, g[name], f)
			}
		}
	}
}

// counting is a job history that counts the jobs whose shards are read.
type counting struct {
	*history
	reads map[string]int
}

func (c *counting) ReadJob(id string, read func(*batch.Manifest)) error {
	c.reads[id]++
	return c.history.ReadJob(id, read)
}

// TestScrapeReadsRunningJobs: a scrape reads the shards of the jobs that
// had not ended at the last one (so that their progress shows), and a
// finished job's once.
func TestScrapeReadsRunningJobs(t *testing.T) {
	t0 := time.Now().Add(-time.Hour)
	at := func(s float64) *time.Time { x := t0.Add(time.Duration(s * float64(time.Second))); return &x }
	done := batch.ShardRecord{State: batch.ShardSucceeded, Attempts: 2, StartedAt: at(0), FinishedAt: at(1)}
	run := batch.ShardRecord{State: batch.ShardRunning, Attempts: 1, StartedAt: at(0)}
	job := func(id string, state batch.State, shards ...batch.ShardRecord) *batch.Manifest {
		return &batch.Manifest{JobID: id, State: state, Executor: "local", StartedAt: at(0), Shards: shards}
	}
	fin := job("fin", batch.StateSucceeded, done, done)
	h := &counting{history: &history{}, reads: map[string]int{}}
	m := metrics.New()
	m.CollectJobs(h)
	local := map[string]string{"executor": "local"}
	for i, c := range []struct {
		jobs               fakeJobs
		succeeded, running float64
		reads              map[string]int
	}{
		{fakeJobs{fin, job("run", batch.StateRunning, done, run)}, 3, 1, map[string]int{"fin": 1, "run": 1}},
		{fakeJobs{fin, job("run", batch.StateRunning, done, done)}, 4, 0, map[string]int{"fin": 1, "run": 2}},
		{fakeJobs{fin, job("run", batch.StateSucceeded, done, done)}, 4, 0, map[string]int{"fin": 1, "run": 3}},
		{fakeJobs{fin, job("run", batch.StateSucceeded, done, done)}, 4, 0, map[string]int{"fin": 1, "run": 3}},
	} {
		h.jobs = c.jobs
		fams := jobFamilies(t, m)
		got := value(t, mapValues(fams), "flightbatch_children_succeeded_total", local).GetCounter().GetValue()
		running := value(t, mapValues(fams), "flightbatch_children_running", local).GetGauge().GetValue()
		if got != c.succeeded || running != c.running {
			t.Errorf("scrape %d: %v succeeded, %v running; want %v and %v", i+1, got, running, c.succeeded, c.running)
		}
		if fmt.Sprint(h.reads) != fmt.Sprint(c.reads) {
			t.Errorf("scrape %d: shards read %v times by job, want %v", i+1, h.reads, c.reads)
		}
	}
}

func mapValues(m map[string]*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(m))
	for _, f := range m {
		out = append(out, f)
	}
	return out
}
