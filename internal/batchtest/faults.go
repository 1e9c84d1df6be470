package batchtest

import (
	"net/http"
	"time"
)

// Behaviours are ways in which AWS Batch is less kind than the Endpoint is by
// default; each reproduces something AWS Batch documents or its clients have
// met. The zero value switches them all off. Set them with
// Endpoint.SetBehaviours, before or while jobs run.
type Behaviours struct {
	// VisibilityDelay hides a job from DescribeJobs (an empty list) and
	// ListJobs for this long after its SubmitJob, as AWS Batch's eventually
	// consistent reads may. The job runs meanwhile.
	VisibilityDelay time.Duration
	// SummaryLag holds an array parent's statusSummary and
	// statusSummaryLastUpdatedAt back: while the parent has not ended, they
	// are refreshed at most once per SummaryLag, so they trail the children
	// that ListJobs and DescribeJobs show. A parent that has ended shows its
	// final summary.
	SummaryLag time.Duration
	// Throttle makes the next N calls of an operation fail with HTTP 429
	// TooManyRequestsException before the Endpoint does anything, by
	// operation name ("SubmitJob", "DescribeJobs", "ListJobs",
	// "TerminateJob", "CancelJob", "RegisterJobDefinition"; "*" for any).
	// Each throttled call uses one up.
	Throttle map[string]int
}

// SetBehaviours switches the Endpoint's behaviours to b, replacing those set
// before.
func (e *Endpoint) SetBehaviours(b Behaviours) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := make(map[string]int, len(b.Throttle))
	for k, v := range b.Throttle {
		t[k] = v
	}
	b.Throttle = t
	e.behave = b
}

// throttled reports whether a call of op is throttled, using one up.
func (e *Endpoint) throttled(op string) *apiError {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range []string{op, "*"} {
		if e.behave.Throttle[k] > 0 {
			e.behave.Throttle[k]--
			return &apiError{status: http.StatusTooManyRequests, code: "TooManyRequestsException", message: "Too Many Requests"}
		}
	}
	return nil
}

// visible reports whether j may be shown yet. e.mu must be held.
func (e *Endpoint) visible(j *job) bool {
	if j.parent != nil {
		j = j.parent
	}
	d := e.behave.VisibilityDelay
	return d <= 0 || time.Since(time.UnixMilli(j.createdAt)) >= d
}

// shownSummary is the status summary of array parent j as the Endpoint
// reports it, lagging when SummaryLag says so. e.mu must be held.
func (e *Endpoint) shownSummary(j *job) (map[string]int32, int64) {
	lag := e.behave.SummaryLag
	if lag <= 0 || terminal(j.status) {
		return j.summary(), j.summaryAt
	}
	if j.shown == nil || time.Since(j.shownWhen) >= lag {
		j.shown, j.shownAt, j.shownWhen = j.summary(), j.summaryAt, time.Now()
	}
	out := make(map[string]int32, len(j.shown))
	for k, v := range j.shown {
		out[k] = v
	}
	return out, j.shownAt
}

// throttledErr sets *err to a throttling error and reports true when a call
// of op is throttled.
func (e *Endpoint) throttledErr(op string, err *error) bool {
	if ae := e.throttled(op); ae != nil {
		*err = ae
		return true
	}
	return false
}
