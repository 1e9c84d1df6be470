package batchtest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	// DropSubmitResponse makes the next N SubmitJob calls take the job (it
	// runs) and then close the connection without a reply, as when a reply
	// is lost on the network: the caller cannot know the job exists.
	DropSubmitResponse int
	// StuckRunnable, when not empty, keeps every RUNNABLE job RUNNABLE (no
	// attempt starts) and shows it as the job's statusReason, as AWS Batch
	// does for a queue it cannot run jobs from, e.g.
	// "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - ..." or
	// "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - ...". Jobs start again
	// once it is switched off.
	StuckRunnable string
	// Fail makes chosen attempts fail as AWS Batch reports failures that
	// no local process can cause (a host terminated, an image not pulled,
	// the out-of-memory killer): no process runs, and the attempt ends with
	// the status reason, container reason and exit code AWS Batch gives. The
	// job's retry strategy then applies as for any attempt.
	Fail []Failure
}

// FailureKind is a way an attempt fails that the Endpoint reproduces.
type FailureKind string

// The failures Behaviours.Fail reproduces, with what AWS Batch reports of
// the attempt.
const (
	// HostTerminated: the EC2 instance went away (Spot reclaimed, instance
	// retired) while the attempt ran: statusReason "Host EC2 (instance
	// i-...) terminated.", no exit code.
	HostTerminated FailureKind = "host-terminated"
	// CannotPullContainer: the image could not be pulled: the container's
	// reason "CannotPullContainerError: ...", statusReason "Task failed to
	// start", no exit code; the attempt never ran.
	CannotPullContainer FailureKind = "cannot-pull-container"
	// OutOfMemory: the container was killed for using more memory than it
	// was given: the container's reason "OutOfMemoryError: Container killed
	// due to memory usage", exit code 137, statusReason "Essential container
	// in task exited".
	OutOfMemory FailureKind = "out-of-memory"
)

// AllChildren as a Failure's Index selects every job.
const AllChildren = -1

// Failure selects the attempts that fail as Kind says.
type Failure struct {
	Kind FailureKind
	// Index is the array index of the children concerned (a plain job is
	// index 0), or AllChildren.
	Index int32
	// Attempts is how many of each selected job's first attempts fail; 0
	// means all of them.
	Attempts int
}

// failure returns how attempt n of j fails, or "" when it runs. e.mu must
// be held.
func (e *Endpoint) failure(j *job, n int) FailureKind {
	index := max(j.index, 0)
	for _, f := range e.behave.Fail {
		if (f.Index == AllChildren || f.Index == index) && (f.Attempts == 0 || n <= f.Attempts) {
			return f.Kind
		}
	}
	return ""
}

// dropSubmit reports whether the reply of this SubmitJob is to be lost,
// using one up.
func (e *Endpoint) dropSubmit() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.behave.DropSubmitResponse > 0 {
		e.behave.DropSubmitResponse--
		return true
	}
	return false
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
	b.Fail = append([]Failure(nil), b.Fail...)
	e.behave = b
	e.dispatchLocked() // jobs held RUNNABLE may start now
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

// ParseFailures reads Behaviours.Fail from a comma-separated list of
// KIND:INDEX[:ATTEMPTS], KIND a FailureKind, INDEX an array index or "*" for
// every job, ATTEMPTS how many first attempts fail (default every one):
// "out-of-memory:1", "host-terminated:*:1".
func ParseFailures(spec string) ([]Failure, error) {
	var out []Failure
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("failure %q: want KIND:INDEX[:ATTEMPTS]", item)
		}
		f := Failure{Kind: FailureKind(parts[0]), Index: AllChildren}
		switch f.Kind {
		case HostTerminated, CannotPullContainer, OutOfMemory:
		default:
			return nil, fmt.Errorf("failure %q: kind %q is not %s, %s or %s", item, parts[0], HostTerminated, CannotPullContainer, OutOfMemory)
		}
		if parts[1] != "*" {
			n, err := strconv.ParseInt(parts[1], 10, 32)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("failure %q: index %q is not an array index or *", item, parts[1])
			}
			f.Index = int32(n)
		}
		if len(parts) == 3 {
			n, err := strconv.Atoi(parts[2])
			if err != nil || n < 1 {
				return nil, fmt.Errorf("failure %q: attempts %q is not a positive number", item, parts[2])
			}
			f.Attempts = n
		}
		out = append(out, f)
	}
	return out, nil
}
