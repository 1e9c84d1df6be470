// Package metrics is the server's Prometheus metrics: a registry owned by the
// server (never Prometheus' global one) holding the Flight streams' counters,
// the store's errors, and the jobs and their children as the job history
// shows them at each scrape.
package metrics

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flightbatch/flightbatch/batch"
)

// Jobs is the job history; *batch.Manager is one.
type Jobs interface {
	// Summaries lists the jobs q selects, without their shards.
	Summaries(q batch.Query) []batch.JobSummary
	// ReadJob calls read with a job's manifest, shards included, to read
	// only and not keep; it returns an error wrapping batch.ErrNotFound
	// when the job is not in the history.
	ReadJob(id string, read func(m *batch.Manifest)) error
}

// DurationBuckets are the upper bounds, in seconds, of the child duration
// histogram.
var DurationBuckets = durationBounds[:]

// durationBounds holds DurationBuckets, with a length known when compiling
// (jobFigures counts one job's children in each).
var durationBounds = [...]float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// Metrics holds the registry and the instruments the server updates.
type Metrics struct {
	reg         *prometheus.Registry
	bytes       *prometheus.CounterVec
	records     *prometheus.CounterVec
	streams     *prometheus.CounterVec
	active      *prometheus.GaugeVec
	storeErrors *prometheus.CounterVec
}

// New returns the server's metrics; CollectJobs adds the jobs'.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flightbatch_stream_bytes_total",
			Help: "Bytes of Arrow IPC messages sent by DoGet and received by DoPut.",
		}, []string{"call"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flightbatch_stream_records_total",
			Help: "Records (rows) sent by DoGet and received by DoPut.",
		}, []string{"call"}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flightbatch_streams_total",
			Help: "DoGet and DoPut streams finished, whatever their outcome.",
		}, []string{"call"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flightbatch_active_streams",
			Help: "DoGet and DoPut streams open now.",
		}, []string{"call"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flightbatch_store_errors_total",
			Help: "Store operations that failed (an object that does not exist is not a failure).",
		}, []string{"op"}),
	}
	for _, call := range []string{"DoGet", "DoPut"} {
		m.bytes.WithLabelValues(call)
		m.records.WithLabelValues(call)
		m.streams.WithLabelValues(call)
		m.active.WithLabelValues(call)
	}
	m.reg.MustRegister(m.bytes, m.records, m.streams, m.active, m.storeErrors,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// CollectJobs adds the metrics of the job history: jobs by state, children
// by executor, the child duration histogram. Call it once.
func (m *Metrics) CollectJobs(jobs Jobs) { m.reg.MustRegister(&jobCollector{jobs: jobs}) }

// Registry is the registry, for tests and further collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// StreamStarted counts an open DoGet or DoPut stream.
func (m *Metrics) StreamStarted(call string) { m.active.WithLabelValues(call).Inc() }

// StreamEnded counts what a stream carried.
func (m *Metrics) StreamEnded(call string, records, bytes int64) {
	m.active.WithLabelValues(call).Dec()
	m.streams.WithLabelValues(call).Inc()
	m.records.WithLabelValues(call).Add(float64(records))
	m.bytes.WithLabelValues(call).Add(float64(bytes))
}

// StoreError counts a failed store operation.
func (m *Metrics) StoreError(op string) { m.storeErrors.WithLabelValues(op).Inc() }

var (
	jobsDesc = prometheus.NewDesc("flightbatch_jobs",
		"Jobs in the history, by state.", []string{"state"}, nil)
	runningDesc = prometheus.NewDesc("flightbatch_children_running",
		"Children (one per shard of a job) running now, by executor.", []string{"executor"}, nil)
	succeededDesc = prometheus.NewDesc("flightbatch_children_succeeded_total",
		"Children that succeeded, over the job history, by executor.", []string{"executor"}, nil)
	failedDesc = prometheus.NewDesc("flightbatch_children_failed_total",
		"Children that failed after their last attempt, over the job history, by executor.", []string{"executor"}, nil)
	retriedDesc = prometheus.NewDesc("flightbatch_children_retried_total",
		"Attempts of children after their first (retries), over the job history, by executor.", []string{"executor"}, nil)
	durationDesc = prometheus.NewDesc("flightbatch_child_duration_seconds",
		"Time from a child's start (or its job's, if the child ended before it was seen running) to its end, all attempts, for succeeded and failed children, by executor.", []string{"executor"}, nil)
)

// jobCollector reads the job history at each scrape, so the figures are those
// of the manifests, survive restarts, and need no hook in the job manager.
// A scrape reads the jobs' summaries, and the shards of the jobs that had
// not ended at the last scrape (a finished job's shards no longer change):
// it copies no manifest, and costs the running jobs' shards, not the
// history's.
// The counters and the histogram never go down while the process runs: a job
// deleted from the history (delete-job, --keep-results) keeps counting, as
// Prometheus reads any fall of a counter as a restart and would count the
// whole history again in rate() and increase().
type jobCollector struct {
	jobs Jobs

	mu sync.Mutex
	// seen is the figures of each job of the history, by job ID, as of the
	// last scrape.
	seen map[string]jobFigures
	// gone is the figures of the jobs deleted since the process started, by
	// executor.
	gone map[string]*jobFigures
}

// jobFigures is what one job (or several) adds to the counters of its
// executor.
type jobFigures struct {
	executor                   string
	succeeded, failed, retried float64
	durationCount              uint64
	durationSum                float64
	durationBuckets            [len(durationBounds)]uint64 // cumulative, as DurationBuckets
	// final is set when the figures are those of a finished job, which
	// no longer change.
	final bool
}

// add adds o's figures to f's.
func (f *jobFigures) add(o jobFigures) {
	f.succeeded += o.succeeded
	f.failed += o.failed
	f.retried += o.retried
	f.durationCount += o.durationCount
	f.durationSum += o.durationSum
	for i := range f.durationBuckets {
		f.durationBuckets[i] += o.durationBuckets[i]
	}
}

// atLeast raises each of f's figures to o's where o's is larger, so that a
// job's figures never go down either.
func (f *jobFigures) atLeast(o jobFigures) {
	f.succeeded = max(f.succeeded, o.succeeded)
	f.failed = max(f.failed, o.failed)
	f.retried = max(f.retried, o.retried)
	f.durationCount = max(f.durationCount, o.durationCount)
	f.durationSum = max(f.durationSum, o.durationSum)
	for i := range f.durationBuckets {
		f.durationBuckets[i] = max(f.durationBuckets[i], o.durationBuckets[i])
	}
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{jobsDesc, runningDesc, succeededDesc, failedDesc, retriedDesc, durationDesc} {
		ch <- d
	}
}

// figuresOf counts one job's children.
func figuresOf(m *batch.Manifest) (f jobFigures) {
	f.executor = m.Executor
	for _, sh := range m.Shards {
		switch sh.State {
		case batch.ShardSucceeded:
			f.succeeded++
		case batch.ShardFailed:
			f.failed++
		}
		if sh.Attempts > 1 {
			f.retried += float64(sh.Attempts - 1)
		}
		// A child that finished before the manager saw it running
		// counts from the job's start.
		start := sh.StartedAt
		if start == nil {
			start = m.StartedAt
		}
		if start != nil && sh.FinishedAt != nil && (sh.State == batch.ShardSucceeded || sh.State == batch.ShardFailed) {
			d := max(sh.FinishedAt.Sub(*start), 0).Seconds()
			f.durationCount++
			f.durationSum += d
			for i, b := range durationBounds {
				if d <= b {
					f.durationBuckets[i]++
				}
			}
		}
	}
	return f
}

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	states := map[batch.State]float64{}
	for _, s := range []batch.State{batch.StateSubmitted, batch.StateRunning, batch.StateSucceeded, batch.StateFailed, batch.StateCancelled} {
		states[s] = 0
	}
	running := map[string]float64{}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen, c.gone = map[string]jobFigures{}, map[string]*jobFigures{}
	}
	listed := map[string]bool{}
	for _, s := range c.jobs.Summaries(batch.Query{}) {
		m := s.Job
		old, seen := c.seen[m.JobID]
		f := old
		if !seen || !old.final || old.executor != m.Executor {
			if err := c.jobs.ReadJob(m.JobID, func(m *batch.Manifest) { f = figuresOf(m) }); err != nil {
				continue // deleted since it was listed
			}
			f.final = m.State.Terminal()
			if seen && old.executor == f.executor {
				f.atLeast(old)
			}
		}
		states[m.State]++
		running[m.Executor] += float64(s.Counts.Running)
		c.seen[m.JobID] = f
		listed[m.JobID] = true
	}
	for id, f := range c.seen {
		if !listed[id] {
			g := c.gone[f.executor]
			if g == nil {
				g = &jobFigures{executor: f.executor}
				c.gone[f.executor] = g
			}
			g.add(f)
			delete(c.seen, id)
		}
	}
	byExec := map[string]*jobFigures{}
	for exec, g := range c.gone {
		t := *g
		byExec[exec] = &t
	}
	for _, f := range c.seen {
		t := byExec[f.executor]
		if t == nil {
			t = &jobFigures{executor: f.executor}
			byExec[f.executor] = t
		}
		t.add(f)
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, n, string(s))
	}
	for exec, t := range byExec {
		ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, running[exec], exec)
		ch <- prometheus.MustNewConstMetric(succeededDesc, prometheus.CounterValue, t.succeeded, exec)
		ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.CounterValue, t.failed, exec)
		ch <- prometheus.MustNewConstMetric(retriedDesc, prometheus.CounterValue, t.retried, exec)
		buckets := make(map[float64]uint64, len(durationBounds))
		for i, b := range durationBounds {
			buckets[b] = t.durationBuckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(durationDesc, t.durationCount, t.durationSum, buckets, exec)
	}
}
