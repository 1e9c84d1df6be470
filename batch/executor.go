package batch

import (
	"context"
	"errors"
	"slices"
	"time"
)

var (
	// ErrNotRunning is returned by Executor.Poll for a handle the executor does
	// not run (a local executor after a restart): the manager then resumes the
	// job's unfinished shards.
	ErrNotRunning = errors.New("children are not running")
	// ErrVanished is returned by Executor.Poll when the executor's backend no
	// longer knows the job (an AWS Batch job aged out or deleted, a Slurm
	// array purged): the manager then reconciles the job with the store, its
	// shards with a part succeeded, the others run again while their
	// attempts last.
	ErrVanished = errors.New("job vanished from the executor")
)

// Executor runs a job's children. Each child runs the same worker code path
// (Worker.RunShard): shard in, part out.
type Executor interface {
	// Name names the executor in manifests ("local", "aws-batch").
	Name() string
	// Start launches one child per shard index in shards of job m, with up to
	// m.MaxAttempts attempts each, and returns a handle for them at once.
	Start(ctx context.Context, m *Manifest, shards []int) (handle string, err error)
	// Poll reports the children of handle. It returns ErrNotRunning or
	// ErrVanished (wrapped) when it cannot follow them.
	Poll(ctx context.Context, handle string) (Progress, error)
	// Cancel stops every child of handle; it returns once they are told to stop.
	Cancel(ctx context.Context, handle string) error
	// PollInterval is how often the manager should poll.
	PollInterval() time.Duration
}

// Notifier is an Executor that tells when the children of a handle change
// (one starts, ends or fails an attempt), so that the manager polls them at
// once rather than at its next interval: a job's end is then recorded as
// soon as its last child ends.
type Notifier interface {
	// Changed returns a channel that is closed at the next change of the
	// children of handle; nil (never closed) if the executor does not run
	// them.
	Changed(handle string) <-chan struct{}
}

// ChangeReporter is an Executor that can report only what changed: the
// manager then polls with PollChanges, and a report costs what changed
// since the last, not the job's size.
type ChangeReporter interface {
	// PollChanges is Poll, but its Children are only the children that
	// changed (state, attempts or errors) since the previous PollChanges of
	// handle: every child at the first. The others are as last reported.
	PollChanges(ctx context.Context, handle string) (Progress, error)
}

// Progress is what an executor knows of a job's children.
type Progress struct {
	// Children has one entry per shard the executor was started with.
	Children []Child
	// Done is true once every child is terminal.
	Done bool
}

// Child is one child's state.
type Child struct {
	Shard    int
	State    ShardState
	Attempts int
	// Errors are the failed attempts' errors, oldest first. The first Poll
	// that reports an attempt gives its error's text. Past the first
	// MaxFullErrorShards shards with failed attempts, later polls may report
	// an attempt with an empty Error (HandOverErrors): the manager keeps the
	// text of the first report, the manifest only a short form of it for
	// those shards, and the store the attempt's whole record.
	Errors []AttemptError
}

// HandOverErrors drops from what an executor holds the text of the errors
// p reports, once reported, of the shards past the first MaxFullErrorShards
// with failed attempts in shard order (the manifest keeps only a short form
// of those, see boundFailures): held returns the executor's own errors of a
// shard, which it then holds with their attempts and times only. An executor
// calls it after building p from copies of its errors, so that the text it
// holds while a job runs is bounded by MaxFullErrorShards shards' worth,
// whatever the number of failed shards, rather than MaxAttemptErrorBytes per
// failed attempt of every shard until the job ends.
func HandOverErrors(p Progress, held func(shard int) []AttemptError) {
	HandOverErrorsPast(p, MaxFullErrorShards, held)
}

// HandOverErrorsPast is HandOverErrors past the first full shards with
// failed attempts rather than MaxFullErrorShards: an executor's tests lower
// it to see the bound hold with a few failed shards.
func HandOverErrorsPast(p Progress, full int, held func(shard int) []AttemptError) {
	var failed []int
	for _, c := range p.Children {
		if len(c.Errors) > 0 {
			failed = append(failed, c.Shard)
		}
	}
	full = max(full, 0)
	if len(failed) <= full {
		return
	}
	slices.Sort(failed)
	for _, shard := range failed[full:] {
		errs := held(shard)
		for i := range errs {
			errs[i].Error = ""
		}
	}
}
