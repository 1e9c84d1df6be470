// Package metrics is the server's Prometheus metrics: a registry owned by the
// server (never Prometheus' global one) holding the Flight streams' counters,
// the store's errors, and the jobs and their children as the job history
// shows them at each scrape.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flightbatch/flightbatch/batch"
)

// Jobs lists the job history; *batch.Manager is one.
type Jobs interface {
	List(dataset string) []*batch.Manifest
}

// DurationBuckets are the upper bounds, in seconds, of the child duration
// histogram.
var DurationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

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
type jobCollector struct{ jobs Jobs }

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{jobsDesc, runningDesc, succeededDesc, failedDesc, retriedDesc, durationDesc} {
		ch <- d
	}
}

type execStats struct {
	running, succeeded, failed, retried float64
	durations                           []float64
}

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	states := map[batch.State]float64{}
	for _, s := range []batch.State{batch.StateSubmitted, batch.StateRunning, batch.StateSucceeded, batch.StateFailed, batch.StateCancelled} {
		states[s] = 0
	}
	byExec := map[string]*execStats{}
	for _, m := range c.jobs.List("") {
		states[m.State]++
		st := byExec[m.Executor]
		if st == nil {
			st = &execStats{}
			byExec[m.Executor] = st
		}
		for _, sh := range m.Shards {
			switch sh.State {
			case batch.ShardRunning:
				st.running++
			case batch.ShardSucceeded:
				st.succeeded++
			case batch.ShardFailed:
				st.failed++
			}
			if sh.Attempts > 1 {
				st.retried += float64(sh.Attempts - 1)
			}
			// A child that finished before the manager saw it running
			// counts from the job's start.
			start := sh.StartedAt
			if start == nil {
				start = m.StartedAt
			}
			if start != nil && sh.FinishedAt != nil && (sh.State == batch.ShardSucceeded || sh.State == batch.ShardFailed) {
				st.durations = append(st.durations, max(sh.FinishedAt.Sub(*start), 0).Seconds())
			}
		}
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, n, string(s))
	}
	for exec, st := range byExec {
		ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, st.running, exec)
		ch <- prometheus.MustNewConstMetric(succeededDesc, prometheus.CounterValue, st.succeeded, exec)
		ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.CounterValue, st.failed, exec)
		ch <- prometheus.MustNewConstMetric(retriedDesc, prometheus.CounterValue, st.retried, exec)
		buckets := make(map[float64]uint64, len(DurationBuckets))
		var sum float64
		for _, d := range st.durations {
			sum += d
			for _, b := range DurationBuckets {
				if d <= b {
					buckets[b]++
				}
			}
		}
		ch <- prometheus.MustNewConstHistogram(durationDesc, uint64(len(st.durations)), sum, buckets, exec)
	}
}
