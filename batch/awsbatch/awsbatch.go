// Package awsbatch is the executor that runs a job's children on AWS Batch:
// one SubmitJob per start, an array job with one child per shard (a plain job
// for a single shard), each child a container running `flightbatch worker`,
// which reads its shard from the store and writes its part there. The handle
// is the AWS Batch job ID, so a restarted server follows the same job again.
//
// Children find their shards in the environment as package child describes
// (child.Vars, child.AWSBatch): child AWS_BATCH_JOB_ARRAY_INDEX runs its
// part of the shard list (child.Part with AWS_BATCH_JOB_ARRAY_SIZE children).
// A job of more shards than an array job may have children (10,000) gives
// each child several shards. A list too long for the environment is kept in
// the store (child.EncodeList).
//
// SubmitJob has no idempotency token, so Start sends it with no retry but
// for throttling, and a SubmitJob that got no reply is not simply sent
// again: the job is first looked for in the queue by its name and its start
// tag (TagStart), for up to Options.SubmitConfirm, and followed if found.
// Start looks the same way before it submits at all, so a start made again
// (the server stopped before it kept the handle) follows the job it
// submitted rather than run it twice.
//
// With Options.RunnableTimeout, a child that has waited to run (SUBMITTED,
// PENDING, RUNNABLE) longer than that, by AWS Batch's own times, stops the
// job: TerminateJob, sent again until taken, and every unfinished child fails
// with an error that quotes AWS Batch's statusReason and says what to change.
//
// Poll reads the array job's status summary with one DescribeJobs call; when
// it changed, or has not moved for Options.SummaryStale (it is updated
// asynchronously and can trail the children), ListJobs finds which children
// changed and DescribeJobs reads their attempts. A job AWS Batch does not
// know yet shortly after its SubmitJob (eventual consistency) is waiting, not
// vanished. A TerminateJob that failed is sent again at each poll. A child that has ended is not asked about again. Errors of
// failed attempts come from the records workers write to the store, or else
// from AWS Batch's status reason and exit code; the executor reads the
// records through child.Records and knows nothing else of the job.
package awsbatch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	mathrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsbatch "github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/smithy-go"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/child"
	"github.com/flightbatch/flightbatch/store"
)

// API is the part of the AWS Batch client the executor uses; *batch.Client
// of aws-sdk-go-v2 implements it.
type API interface {
	SubmitJob(ctx context.Context, in *awsbatch.SubmitJobInput, optFns ...func(*awsbatch.Options)) (*awsbatch.SubmitJobOutput, error)
	DescribeJobs(ctx context.Context, in *awsbatch.DescribeJobsInput, optFns ...func(*awsbatch.Options)) (*awsbatch.DescribeJobsOutput, error)
	ListJobs(ctx context.Context, in *awsbatch.ListJobsInput, optFns ...func(*awsbatch.Options)) (*awsbatch.ListJobsOutput, error)
	TerminateJob(ctx context.Context, in *awsbatch.TerminateJobInput, optFns ...func(*awsbatch.Options)) (*awsbatch.TerminateJobOutput, error)
}

var _ API = (*awsbatch.Client)(nil)

// Limits of AWS Batch.
const (
	// MaxArraySize is the most children an array job may have.
	MaxArraySize = 10000
	// MaxAttempts is the most attempts a retry strategy may give.
	MaxAttempts = 10
	// MinTimeout is the least attempt timeout AWS Batch accepts.
	MinTimeout = 60 * time.Second
	// describeBatch is the most job IDs one DescribeJobs call takes.
	describeBatch = 100
)

// Tags every submitted job carries.
const (
	TagJobID   = "flightbatch:job-id"
	TagDataset = "flightbatch:dataset"
	// TagStart tells one start of a job from another (see Start).
	TagStart = "flightbatch:start"
)

// cancelReason starts the reason TerminateJob is given; a child that ends
// with it was cancelled, not failed.
const cancelReason = "flightbatch: cancelled on request"

// Options tune an Executor. The zero value is usable.
type Options struct {
	// WorkerStore is the store URL children are given (FLIGHTBATCH_STORE);
	// default the executor's store's URL.
	WorkerStore string
	// Timeout is each child attempt's time limit per shard it runs (a child
	// running several shards gets as many times more); at least MinTimeout,
	// default one hour.
	Timeout time.Duration
	// PollInterval is the mean time between polls, jittered by ±25%; default
	// 15s.
	PollInterval time.Duration
	// MaxInlineShards is the longest shard list (in characters) passed in the
	// children's environment; a longer one is written to the store
	// (default child.DefaultMaxInline). Tests lower it.
	MaxInlineShards int
	// MaxChildren caps an array job's size (2..MaxArraySize, the default);
	// beyond it each child runs several shards. Tests lower it.
	MaxChildren int
	// Definition, when set, names the job definition of a function's children
	// (a registered function's image); "" means the executor's default.
	Definition func(function string) string
	// VisibilityGrace is how long after its SubmitJob a job AWS Batch does
	// not know yet is taken as not visible yet (AWS Batch's reads are
	// eventually consistent) rather than vanished; default 5 minutes.
	VisibilityGrace time.Duration
	// SummaryStale is how long an array job's unchanged status summary is
	// trusted: after it the children are listed anyway, since the summary is
	// updated asynchronously and can trail them; default 2 minutes.
	SummaryStale time.Duration
	// RunnableTimeout, when positive, is the longest a child may wait to
	// run (SUBMITTED, PENDING or RUNNABLE since it was submitted or its last
	// attempt ended): past it, the AWS Batch job is terminated and its
	// unfinished children fail with an error that says why, quoting AWS
	// Batch's statusReason (no capacity, a request larger than any compute
	// environment). Zero waits for ever, as AWS Batch does.
	RunnableTimeout time.Duration
	// SubmitConfirm is how long a SubmitJob that got no reply (it may have
	// been carried out) is looked for in the queue, by the job's name and
	// start tag, before it is submitted again; default 30 seconds (AWS
	// Batch's reads are eventually consistent).
	SubmitConfirm time.Duration
	// ShareIdentifier is the fair-share identifier of every submitted job,
	// which a queue with a fair-share scheduling policy requires; "" sends
	// none.
	ShareIdentifier string
	// SchedulingPriority, when not nil, is every submitted job's scheduling
	// priority (schedulingPriorityOverride; 0..9999, higher first) on a
	// fair-share queue.
	SchedulingPriority *int32
	// MemoryMiB, when positive, is the memory every child gets (a MEMORY
	// resource requirement in containerOverrides), in MiB, in place of its
	// job definition's.
	MemoryMiB int
	// Records is where the executor finds what its children recorded of
	// their attempts (default child.NewStoreRecords of the executor's store).
	Records child.Records
	// Log receives the executor's structured logs.
	Log *slog.Logger
}

// Executor runs children on AWS Batch. It is safe for concurrent use.
type Executor struct {
	client     API
	st         *store.Store
	queue, def string
	opts       Options
	log        *slog.Logger

	mu   sync.Mutex
	runs map[string]*run // by handle
	// terminate holds the reasons of TerminateJob calls not yet acknowledged,
	// by handle: Poll sends them again.
	terminate map[string]string
}

var (
	_ batch.Executor       = (*Executor)(nil)
	_ batch.ChangeReporter = (*Executor)(nil)
)

// run is what the executor knows of one submitted AWS Batch job.
type run struct {
	// mu is held by a poll of the run, and guards the fields below jobID,
	// shards and children, which do not change.
	mu     sync.Mutex
	jobID  string
	shards []int // the shard indices started, in list order
	// children is the array size, or 1 for a plain job.
	children  int
	array     bool
	cancelled bool
	// submitted is when this executor submitted the job; zero for a job
	// found again after a restart.
	submitted time.Time
	// visible says AWS Batch has described the job once: from then on, a
	// job it does not know has vanished.
	visible bool
	listed  time.Time // when the children were last listed
	// stuck, when not "", says why the job was stopped: a child waited
	// RUNNABLE longer than Options.RunnableTimeout.
	stuck   string
	stuckAt time.Time

	summary   map[string]int32
	summaryAt int64
	kids      []kid // by child index
	// reported is what PollChanges last reported.
	reported batch.Reported
}

// kid is the last known state of one AWS Batch child.
type kid struct {
	status   types.JobStatus
	state    batch.ShardState
	attempts int
	errors   map[int][]batch.AttemptError // by shard
	final    bool                         // described after it ended
	// waiting is when the child was last seen to start waiting (submitted,
	// or its last attempt ended); zero: since the job was created.
	waiting time.Time
}

// New returns an executor submitting to job queue and job definition (names
// or ARNs) with client, its children using store st. opts may be nil.
func New(client API, st *store.Store, queue, definition string, opts *Options) (*Executor, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	switch {
	case client == nil || st == nil:
		return nil, errors.New("awsbatch: a client and a store are required")
	case queue == "":
		return nil, errors.New("awsbatch: name the job queue")
	case definition == "":
		return nil, errors.New("awsbatch: name the job definition")
	}
	if o.WorkerStore == "" {
		o.WorkerStore = st.URL()
	}
	if o.Timeout == 0 {
		o.Timeout = time.Hour
	}
	if o.Timeout < MinTimeout {
		return nil, fmt.Errorf("awsbatch: timeout %v is below AWS Batch's least, %v", o.Timeout, MinTimeout)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 15 * time.Second
	}
	if o.Records == nil {
		o.Records = child.NewStoreRecords(st)
	}
	if o.MaxChildren == 0 {
		o.MaxChildren = MaxArraySize
	}
	if o.MaxChildren < 2 || o.MaxChildren > MaxArraySize {
		return nil, fmt.Errorf("awsbatch: MaxChildren %d: an array job has 2 to %d children", o.MaxChildren, MaxArraySize)
	}
	if p := o.SchedulingPriority; p != nil && (*p < 0 || *p > 9999) {
		return nil, fmt.Errorf("awsbatch: scheduling priority %d: AWS Batch takes 0 to 9999", *p)
	}
	if o.VisibilityGrace <= 0 {
		o.VisibilityGrace = 5 * time.Minute
	}
	if o.SubmitConfirm <= 0 {
		o.SubmitConfirm = 30 * time.Second
	}
	if o.SummaryStale <= 0 {
		o.SummaryStale = 2 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Executor{
		client: client, st: st, queue: queue, def: definition, opts: o,
		log: o.Log.With("component", "awsbatch"), runs: map[string]*run{}, terminate: map[string]string{},
	}, nil
}

// Name implements batch.Executor.
func (e *Executor) Name() string { return "aws-batch" }

// PollInterval implements batch.Executor: the configured interval, ±25%, so
// that many jobs do not poll in step.
func (e *Executor) PollInterval() time.Duration {
	d := e.opts.PollInterval
	return d*3/4 + time.Duration(mathrand.Int64N(int64(d/2)+1))
}

// Start implements batch.Executor: one SubmitJob for the shards given.
func (e *Executor) Start(ctx context.Context, m *batch.Manifest, shards []int) (string, error) {
	if len(shards) == 0 {
		return noChildren, nil
	}
	children := min(len(shards), e.opts.MaxChildren)
	perChild := (len(shards) + children - 1) / children
	list, err := child.EncodeList(ctx, e.st, m.JobID, shards, e.opts.MaxInlineShards)
	if err != nil {
		return "", fmt.Errorf("awsbatch: %w", err)
	}
	def := e.def
	if e.opts.Definition != nil {
		if d := e.opts.Definition(m.Function); d != "" {
			def = d
		}
	}
	attempts := int32(min(max(m.MaxAttempts, 1), MaxAttempts))
	timeout := int32(min(e.opts.Timeout.Seconds()*float64(perChild), 14*24*3600))
	in := &awsbatch.SubmitJobInput{
		JobName:            aws.String("flightbatch-" + m.JobID),
		JobQueue:           aws.String(e.queue),
		JobDefinition:      aws.String(def),
		ContainerOverrides: &types.ContainerOverrides{Environment: environment(child.Vars(e.Name(), m.JobID, e.opts.WorkerStore, list))},
		RetryStrategy:      RetryStrategy(attempts),
		Timeout:            &types.JobTimeout{AttemptDurationSeconds: aws.Int32(timeout)},
		Tags:               map[string]string{TagJobID: m.JobID, TagDataset: m.Dataset},
	}
	if e.opts.ShareIdentifier != "" {
		in.ShareIdentifier = aws.String(e.opts.ShareIdentifier)
	}
	if p := e.opts.SchedulingPriority; p != nil {
		in.SchedulingPriorityOverride = aws.Int32(*p)
	}
	if e.opts.MemoryMiB > 0 {
		in.ContainerOverrides.ResourceRequirements = []types.ResourceRequirement{{Type: types.ResourceTypeMemory, Value: aws.String(strconv.Itoa(e.opts.MemoryMiB))}}
	}
	if children > 1 {
		in.ArrayProperties = &types.ArrayProperties{Size: aws.Int32(int32(children))}
	}
	// SubmitJob has no idempotency token: a job this start submitted before
	// (its reply lost, or the server stopped before it kept the handle) is
	// found by its name and start tag, and followed rather than submitted
	// again.
	key := startKey(m.JobID, children, shards)
	in.Tags[TagStart] = key
	handle, err := e.findStarted(ctx, aws.ToString(in.JobName), key)
	if err != nil {
		return "", fmt.Errorf("awsbatch: look for job %s in queue %s before submitting it: %w", m.JobID, e.queue, err)
	}
	if handle != "" {
		e.log.Info("found the job submitted before", "job", m.JobID, "batch_job", handle)
		return e.follow(handle, m.JobID, shards, children), nil
	}
	for try := 1; ; try++ {
		out, err := e.client.SubmitJob(ctx, in, onlyThrottleRetries)
		if err == nil {
			handle := e.follow(aws.ToString(out.JobId), m.JobID, shards, children)
			e.log.Info("submitted", "job", m.JobID, "batch_job", handle, "children", children, "shards", len(shards))
			return handle, nil
		}
		if refused(err) || ctx.Err() != nil {
			return "", fmt.Errorf("awsbatch: submit job %s to queue %s: %w", m.JobID, e.queue, err)
		}
		// No reply: AWS Batch may have taken the job. Look for it, as long
		// as it may take to show, before submitting again.
		e.log.Warn("submit not confirmed; looking for the job before submitting again", "job", m.JobID, "try", try, "err", err)
		handle, lerr := e.confirmStarted(ctx, aws.ToString(in.JobName), key)
		if lerr != nil {
			return "", fmt.Errorf("awsbatch: submit job %s to queue %s: %v; and looking for it: %w (it is looked for again before any new submit)", m.JobID, e.queue, err, lerr)
		}
		if handle != "" {
			e.log.Info("found the job whose submit was not confirmed", "job", m.JobID, "batch_job", handle)
			return e.follow(handle, m.JobID, shards, children), nil
		}
		if try == submitTries {
			return "", fmt.Errorf("awsbatch: submit job %s to queue %s: not confirmed after %d tries, and not found in the queue: %w", m.JobID, e.queue, try, err)
		}
	}
}

// submitTries is how many SubmitJob calls one Start makes whose outcome is
// unknown (each followed by a look-up that did not find the job).
const submitTries = 3

// follow records the run of a submitted job and returns its handle.
func (e *Executor) follow(handle, jobID string, shards []int, children int) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runs[handle] == nil {
		r := newRun(jobID, shards, children)
		r.submitted = time.Now()
		e.runs[handle] = r
	}
	return handle
}

// startKey names one start of a job: the same job, shards and array size
// give the same key, so that a start made again finds the job it submitted.
func startKey(jobID string, children int, shards []int) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%d\n", jobID, children)
	for _, s := range shards {
		fmt.Fprintf(h, "%d,", s)
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}

// onlyThrottleRetries lets the SDK retry a SubmitJob only when AWS Batch
// refused it for throttling: a SubmitJob whose reply was lost may have
// created the job, and sending it again would create a second.
func onlyThrottleRetries(o *awsbatch.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.Retryables = []retry.IsErrorRetryable{retry.RetryableErrorCode{Codes: retry.DefaultThrottleErrorCodes}}
	})
}

// refused reports whether AWS Batch answered a call with a client error
// (4xx: invalid, throttled, denied), which it did not carry out.
func refused(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() >= 400 && re.HTTPStatusCode() < 500
}

// findStarted returns the ID of the newest job in the queue named name and
// tagged with start key, or "" if AWS Batch shows none.
func (e *Executor) findStarted(ctx context.Context, name, key string) (string, error) {
	in := &awsbatch.ListJobsInput{
		JobQueue:   aws.String(e.queue),
		Filters:    []types.KeyValuesPair{{Name: aws.String("JOB_NAME"), Values: []string{name}}},
		MaxResults: aws.Int32(100),
	}
	var ids []string
	for p := awsbatch.NewListJobsPaginator(e.client, in); p.HasMorePages() && len(ids) < describeBatch; {
		out, err := p.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("list jobs named %s: %w", name, err)
		}
		for _, s := range out.JobSummaryList {
			if strings.EqualFold(aws.ToString(s.JobName), name) && len(ids) < describeBatch {
				ids = append(ids, aws.ToString(s.JobId))
			}
		}
	}
	if len(ids) == 0 {
		return "", nil
	}
	out, err := e.client.DescribeJobs(ctx, &awsbatch.DescribeJobsInput{Jobs: ids})
	if err != nil {
		return "", fmt.Errorf("describe jobs named %s: %w", name, err)
	}
	found, at := "", int64(-1)
	for _, d := range out.Jobs {
		if d.Tags[TagStart] == key && aws.ToInt64(d.CreatedAt) > at {
			found, at = aws.ToString(d.JobId), aws.ToInt64(d.CreatedAt)
		}
	}
	return found, nil
}

// confirmStarted looks for the job of a start whose SubmitJob got no reply,
// until it is found or Options.SubmitConfirm has passed.
func (e *Executor) confirmStarted(ctx context.Context, name, key string) (string, error) {
	deadline := time.Now().Add(e.opts.SubmitConfirm)
	wait := 500 * time.Millisecond
	for {
		handle, err := e.findStarted(ctx, name, key)
		if err != nil || handle != "" {
			return handle, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return "", nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(min(wait, left)):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func environment(vars []child.Var) []types.KeyValuePair {
	out := make([]types.KeyValuePair, len(vars))
	for i, v := range vars {
		out[i] = types.KeyValuePair{Name: aws.String(v.Name), Value: aws.String(v.Value)}
	}
	return out
}

// RetryStrategy is the retry strategy of every submitted job: up to attempts
// attempts; a child whose host went away (Spot reclaimed, instance
// terminated) or whose worker failed is retried; one killed out of memory
// (it would be again, with the same memory), or whose job or shard does not
// exist (child.ExitPermanent), is not; and anything else (no exit code: the
// image was not pulled, the container did not start, or was stopped) ends
// it. AWS Batch takes at most five rules, first match wins.
func RetryStrategy(attempts int32) *types.RetryStrategy {
	return &types.RetryStrategy{
		Attempts: aws.Int32(attempts),
		EvaluateOnExit: []types.EvaluateOnExit{
			{Action: types.RetryActionRetry, OnStatusReason: aws.String(reasonHost + "*")},
			{Action: types.RetryActionExit, OnReason: aws.String(reasonOOM + "*")},
			{Action: types.RetryActionExit, OnExitCode: aws.String(strconv.Itoa(child.ExitPermanent))},
			{Action: types.RetryActionRetry, OnExitCode: aws.String("*")},
			{Action: types.RetryActionExit, OnReason: aws.String("*")},
		},
	}
}

func newRun(jobID string, shards []int, children int) *run {
	r := &run{jobID: jobID, shards: shards, children: children, array: children > 1, kids: make([]kid, children)}
	for i := range r.kids {
		r.kids[i] = kid{status: types.JobStatusSubmitted, state: batch.ShardPending, errors: map[int][]batch.AttemptError{}}
	}
	return r
}

// noChildren is the handle of a start with no shard: nothing is submitted.
const noChildren = "no-children"

// Poll implements batch.Executor.
func (e *Executor) Poll(ctx context.Context, handle string) (batch.Progress, error) {
	return e.poll(ctx, handle, false)
}

// PollChanges implements batch.ChangeReporter: Poll, reporting every child
// at the first call for handle (as after a restart), then only the
// children that changed since the previous call. AWS Batch is asked as
// much as by Poll; the manager gets the changes only.
func (e *Executor) PollChanges(ctx context.Context, handle string) (batch.Progress, error) {
	return e.poll(ctx, handle, true)
}

// poll is Poll, reporting only the changes with changes.
func (e *Executor) poll(ctx context.Context, handle string, changes bool) (batch.Progress, error) {
	if handle == noChildren {
		return batch.Progress{Done: true}, nil
	}
	parent, err := e.describeOne(ctx, handle)
	if errors.Is(err, batch.ErrVanished) {
		if r := e.justSubmitted(handle); r != nil {
			// Not visible yet: its children wait.
			e.resendTerminate(ctx, handle)
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.report(false, changes), nil
		}
	}
	if err != nil {
		return batch.Progress{}, err
	}
	r, err := e.runOf(ctx, handle, parent)
	if err != nil {
		return batch.Progress{}, err
	}
	if !terminal(parent.Status) {
		e.resendTerminate(ctx, handle)
	} else {
		e.mu.Lock()
		delete(e.terminate, handle)
		e.mu.Unlock()
	}
	// One poll of a handle at a time: the run's state is updated in place.
	r.mu.Lock()
	defer r.mu.Unlock()
	r.visible = true
	if !r.array {
		if err := e.updateKid(ctx, r, 0, parent); err != nil {
			return batch.Progress{}, err
		}
	} else if err := e.pollArray(ctx, handle, r, parent); err != nil {
		return batch.Progress{}, err
	}
	if e.opts.RunnableTimeout > 0 && r.stuck == "" && !r.cancelled && !terminal(parent.Status) {
		if err := e.checkRunnable(ctx, handle, r, parent); err != nil {
			return batch.Progress{}, err
		}
	}
	return r.report(terminal(parent.Status), changes), nil
}

// report is progress, only the children that changed since the last
// report of changes with changes. r.mu is held.
func (r *run) report(done, changes bool) batch.Progress {
	p := r.progress(done)
	if changes {
		p = r.reported.Changes(p)
	}
	return p
}

// justSubmitted returns the run of handle if this executor submitted it less
// than VisibilityGrace ago and AWS Batch has not described it yet.
func (e *Executor) justSubmitted(handle string) *run {
	e.mu.Lock()
	r := e.runs[handle]
	e.mu.Unlock()
	if r == nil || r.submitted.IsZero() || time.Since(r.submitted) >= e.opts.VisibilityGrace {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.visible {
		return nil
	}
	return r
}

// resendTerminate sends again a TerminateJob of handle that AWS Batch has not
// acknowledged (throttled, or failed otherwise), until it does.
func (e *Executor) resendTerminate(ctx context.Context, handle string) {
	e.mu.Lock()
	reason, ok := e.terminate[handle]
	e.mu.Unlock()
	if !ok {
		return
	}
	if _, err := e.client.TerminateJob(ctx, &awsbatch.TerminateJobInput{JobId: aws.String(handle), Reason: aws.String(reason)}); err != nil {
		e.log.Warn("terminate again", "batch_job", handle, "err", err)
		return
	}
	e.mu.Lock()
	delete(e.terminate, handle)
	e.mu.Unlock()
	e.log.Info("terminated", "batch_job", handle)
}

// describeOne describes one job; a job AWS Batch does not know is vanished.
func (e *Executor) describeOne(ctx context.Context, id string) (*types.JobDetail, error) {
	out, err := e.client.DescribeJobs(ctx, &awsbatch.DescribeJobsInput{Jobs: []string{id}})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("awsbatch: AWS Batch job %s: %v: %w", id, err, batch.ErrVanished)
		}
		return nil, fmt.Errorf("awsbatch: describe job %s: %w", id, err)
	}
	for i := range out.Jobs {
		if aws.ToString(out.Jobs[i].JobId) == id {
			return &out.Jobs[i], nil
		}
	}
	return nil, fmt.Errorf("awsbatch: AWS Batch does not know job %s (it forgets jobs some days after they end): %w", id, batch.ErrVanished)
}

func isNotFound(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ClientException" && strings.Contains(strings.ToLower(ae.ErrorMessage()), "not found")
}

// runOf returns the run of handle, rebuilding it from AWS Batch after a
// restart: the shard list is in the children's environment.
func (e *Executor) runOf(ctx context.Context, handle string, parent *types.JobDetail) (*run, error) {
	e.mu.Lock()
	r := e.runs[handle]
	e.mu.Unlock()
	if r != nil {
		return r, nil
	}
	children := 1
	env := parent
	if ap := parent.ArrayProperties; ap != nil && ap.Size != nil {
		children = int(*ap.Size)
		var err error
		if env, err = e.describeOne(ctx, handle+":0"); err != nil {
			return nil, fmt.Errorf("awsbatch: find the children of %s: %w", handle, err)
		}
	}
	vars := map[string]string{}
	if env.Container != nil {
		for _, kv := range env.Container.Environment {
			vars[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
		}
	}
	jobID, list := vars[child.EnvJobID], vars[child.EnvShards]
	if jobID == "" || list == "" {
		return nil, fmt.Errorf("awsbatch: AWS Batch job %s has no %s and %s in its environment; it was not submitted by flightbatch", handle, child.EnvJobID, child.EnvShards)
	}
	shards, err := child.DecodeList(ctx, e.st, jobID, list)
	if err != nil {
		return nil, fmt.Errorf("awsbatch: AWS Batch job %s: %w", handle, err)
	}
	r = newRun(jobID, shards, children)
	r.array = parent.ArrayProperties != nil && parent.ArrayProperties.Size != nil
	r.cancelled = strings.HasPrefix(aws.ToString(parent.StatusReason), cancelReason)
	if reason := aws.ToString(parent.StatusReason); strings.HasPrefix(reason, stuckReason) {
		r.stuck = reason
	}
	e.mu.Lock()
	if old := e.runs[handle]; old != nil {
		r = old
	} else {
		e.runs[handle] = r
	}
	e.mu.Unlock()
	e.log.Info("found job again", "job", jobID, "batch_job", handle, "children", children, "shards", len(shards))
	return r, nil
}

// pollArray brings the children of an array job up to date. r.mu is held.
func (e *Executor) pollArray(ctx context.Context, handle string, r *run, parent *types.JobDetail) error {
	ap := parent.ArrayProperties
	summaryAt := aws.ToInt64(ap.StatusSummaryLastUpdatedAt)
	unchanged := r.summary != nil && maps.Equal(r.summary, ap.StatusSummary) && summaryAt == r.summaryAt
	stale := time.Since(r.listed) >= e.opts.SummaryStale
	if unchanged && !stale && !terminal(parent.Status) {
		return nil // nothing changed since the last poll
	}
	// Which children are running, and which have ended since we last looked.
	seen := map[int]types.JobStatus{}
	ended := terminal(parent.Status)
	// Once the job has ended, or the summary has not moved for a while, look
	// whatever the summary says: it is updated asynchronously and may trail
	// the children.
	distrust := ended || (unchanged && stale)
	r.listed = time.Now()
	for _, status := range []types.JobStatus{types.JobStatusRunning, types.JobStatusSucceeded, types.JobStatusFailed} {
		n := ap.StatusSummary[string(status)]
		if !distrust && n == 0 {
			continue
		}
		if !distrust && terminal(status) && r.count(status) >= int(n) {
			continue // every child in this status is known
		}
		if err := e.list(ctx, handle, status, seen); err != nil {
			return err
		}
	}
	var changed []int
	for i := range r.kids {
		k := &r.kids[i]
		if k.final {
			continue
		}
		status, ok := seen[i]
		if !ok {
			if terminal(k.status) {
				continue
			}
			status = types.JobStatusRunnable // waiting: submitted, pending, runnable or starting
		}
		if coarse(status) != coarse(k.status) || terminal(status) || ended {
			changed = append(changed, i)
		}
	}
	for start := 0; start < len(changed); start += describeBatch {
		ids := make([]string, 0, describeBatch)
		for _, i := range changed[start:min(start+describeBatch, len(changed))] {
			ids = append(ids, fmt.Sprintf("%s:%d", handle, i))
		}
		out, err := e.client.DescribeJobs(ctx, &awsbatch.DescribeJobsInput{Jobs: ids})
		if err != nil {
			return fmt.Errorf("awsbatch: describe children of %s: %w", handle, err)
		}
		for i := range out.Jobs {
			d := &out.Jobs[i]
			if d.ArrayProperties == nil || d.ArrayProperties.Index == nil {
				continue
			}
			if err := e.updateKid(ctx, r, int(*d.ArrayProperties.Index), d); err != nil {
				return err
			}
		}
	}
	r.summary, r.summaryAt = maps.Clone(ap.StatusSummary), summaryAt
	return nil
}

// list adds the children of handle in status to seen, by index.
func (e *Executor) list(ctx context.Context, handle string, status types.JobStatus, seen map[int]types.JobStatus) error {
	in := &awsbatch.ListJobsInput{ArrayJobId: aws.String(handle), JobStatus: status, MaxResults: aws.Int32(1000)}
	p := awsbatch.NewListJobsPaginator(e.client, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("awsbatch: list %s children of %s: %w", status, handle, err)
		}
		for _, s := range out.JobSummaryList {
			if s.ArrayProperties != nil && s.ArrayProperties.Index != nil {
				seen[int(*s.ArrayProperties.Index)] = s.Status
			}
		}
	}
	return nil
}

// updateKid records child i's detail: its state, attempts and the errors of
// its failed attempts. r.mu is held.
func (e *Executor) updateKid(ctx context.Context, r *run, i int, d *types.JobDetail) error {
	if i < 0 || i >= len(r.kids) {
		return nil
	}
	k := &r.kids[i]
	k.status = d.Status
	k.state = e.state(r, d)
	if waiting(d.Status) {
		k.waiting = waitingSince(d)
	}
	var ended []types.AttemptDetail
	for _, a := range d.Attempts {
		if a.StoppedAt != nil {
			ended = append(ended, a)
		}
	}
	k.attempts = len(ended)
	if d.Status == types.JobStatusStarting || d.Status == types.JobStatusRunning {
		k.attempts++
	}
	// The errors of the attempts that failed: the last one too, unless the
	// child succeeded or was cancelled.
	failed := ended
	if n := len(failed); n > 0 && (d.Status == types.JobStatusSucceeded || k.state == batch.ShardCancelled) {
		failed = failed[:n-1]
	}
	shards := child.Part(r.shards, i, r.children)
	for n, a := range failed {
		attempt := n + 1
		if already(k.errors, shards, attempt) {
			continue
		}
		if err := e.attemptErrors(ctx, r, k, shards, attempt, a); err != nil {
			return err
		}
	}
	k.final = terminal(d.Status)
	return nil
}

func already(errs map[int][]batch.AttemptError, shards []int, attempt int) bool {
	for _, s := range shards {
		for _, ae := range errs[s] {
			if ae.Attempt == attempt {
				return true
			}
		}
	}
	return false
}

// attemptErrors finds why attempt of child k failed: the workers' records
// in the store, or else what AWS Batch says.
func (e *Executor) attemptErrors(ctx context.Context, r *run, k *kid, shards []int, attempt int, a types.AttemptDetail) error {
	found := false
	var missing []int
	for _, s := range shards {
		ae, err := e.opts.Records.AttemptError(ctx, r.jobID, s, attempt)
		if err != nil {
			return fmt.Errorf("awsbatch: %w", err)
		}
		if ae != nil {
			ae.Error = batch.ClipAttemptError(ae.Error)
			k.errors[s] = append(k.errors[s], *ae)
			found = true
			continue
		}
		ok, err := e.opts.Records.HasPart(ctx, r.jobID, s)
		if err != nil {
			return fmt.Errorf("awsbatch: %w", err)
		}
		if !ok {
			missing = append(missing, s)
		}
	}
	if found {
		return nil
	}
	// The worker recorded nothing (killed, out of memory, never started):
	// AWS Batch's account is all there is.
	ae := batch.AttemptError{Attempt: attempt, Error: batch.ClipAttemptError(e.describeAttempt(a)), At: time.UnixMilli(aws.ToInt64(a.StoppedAt)).UTC()}
	if len(missing) == 0 {
		// A later attempt wrote every part: this one failed them all.
		missing = shards
	}
	for _, s := range missing {
		k.errors[s] = append(k.errors[s], ae)
	}
	return nil
}

// How AWS Batch's reasons for a failed attempt begin (its statusReason for
// a host, the container's reason for the others).
const (
	reasonHost = "Host EC2"
	reasonOOM  = "OutOfMemoryError"
	reasonPull = "CannotPullContainerError"
)

// advice says what a failed attempt's reasons mean and what to change, or
// "" when they say nothing more than the worker's own error.
func (e *Executor) advice(a types.AttemptDetail) string {
	status, reason := aws.ToString(a.StatusReason), ""
	if a.Container != nil {
		reason = aws.ToString(a.Container.Reason)
	}
	has := func(prefix string) bool {
		return strings.HasPrefix(status, prefix) || strings.HasPrefix(reason, prefix)
	}
	switch {
	case has(reasonOOM):
		return "the child ran out of memory and was killed; it is not retried, since it would be again: raise the memory its job definition gives (MEMORY in resourceRequirements) or --batch-memory, or split the dataset into smaller shards"
	case has(reasonPull):
		return "the worker image could not be pulled, so nothing ran; it is not retried: check the image name and tag in the job definition, that the image exists in its registry, and that the execution or instance role may pull it"
	case has(reasonHost):
		return "the host running the child went away (a Spot instance reclaimed, or an instance terminated); AWS Batch retries the child while it has attempts left"
	}
	return ""
}

// describeAttempt says why an attempt failed, in AWS Batch's words, and
// what that means.
func (e *Executor) describeAttempt(a types.AttemptDetail) string {
	msg := describeReasons(a)
	if adv := e.advice(a); adv != "" {
		msg += ": " + adv
	}
	return msg
}

// describeReasons is AWS Batch's account of a failed attempt.
func describeReasons(a types.AttemptDetail) string {
	parts := []string{}
	if s := aws.ToString(a.StatusReason); s != "" {
		parts = append(parts, s)
	}
	if c := a.Container; c != nil {
		if s := aws.ToString(c.Reason); s != "" {
			parts = append(parts, s)
		}
		if c.ExitCode != nil {
			parts = append(parts, fmt.Sprintf("exit code %d", *c.ExitCode))
		}
		if s := aws.ToString(c.LogStreamName); s != "" {
			parts = append(parts, "log stream "+s)
		}
	}
	if len(parts) == 0 {
		return "AWS Batch attempt failed"
	}
	return "AWS Batch: " + strings.Join(parts, "; ")
}

// state maps an AWS Batch job status to a shard state.
func (e *Executor) state(r *run, d *types.JobDetail) batch.ShardState {
	switch d.Status {
	case types.JobStatusRunning:
		return batch.ShardRunning
	case types.JobStatusSucceeded:
		return batch.ShardSucceeded
	case types.JobStatusFailed:
		if r.stuck != "" && !r.cancelled {
			return batch.ShardFailed // stopped for waiting too long
		}
		if r.cancelled || aws.ToBool(d.IsTerminated) || aws.ToBool(d.IsCancelled) ||
			strings.HasPrefix(aws.ToString(d.StatusReason), cancelReason) {
			return batch.ShardCancelled
		}
		return batch.ShardFailed
	default: // SUBMITTED, PENDING, RUNNABLE, STARTING
		return batch.ShardPending
	}
}

func terminal(s types.JobStatus) bool {
	return s == types.JobStatusSucceeded || s == types.JobStatusFailed
}

// coarse groups the statuses a shard state does not tell apart.
func coarse(s types.JobStatus) string {
	switch s {
	case types.JobStatusRunning, types.JobStatusSucceeded, types.JobStatusFailed:
		return string(s)
	}
	return "WAITING"
}

func (r *run) count(status types.JobStatus) int {
	n := 0
	for _, k := range r.kids {
		if k.status == status && k.final {
			n++
		}
	}
	return n
}

// progress reports one child per shard: a child's state is each of its
// shards' state. done says the AWS Batch job has ended.
func (r *run) progress(done bool) batch.Progress {
	p := batch.Progress{Done: done}
	for i, k := range r.kids {
		for _, s := range child.Part(r.shards, i, r.children) {
			c := batch.Child{Shard: s, State: k.state, Attempts: k.attempts}
			c.Errors = slices.Clone(k.errors[s])
			if r.stuck != "" && c.State != batch.ShardSucceeded {
				c.State = batch.ShardFailed
				if len(c.Errors) == 0 {
					c.Errors = []batch.AttemptError{{Attempt: k.attempts + 1, Error: r.stuck, At: r.stuckAt}}
				}
			}
			if done && !terminalState(c.State) {
				c.State = batch.ShardFailed // the job ended without telling about this child
			}
			p.Children = append(p.Children, c)
		}
	}
	slices.SortFunc(p.Children, func(a, b batch.Child) int { return a.Shard - b.Shard })
	var at map[int]*kid // by shard, made when needed
	batch.HandOverErrors(p, func(shard int) []batch.AttemptError {
		if at == nil {
			at = make(map[int]*kid, len(r.shards))
			for i := range r.kids {
				for _, s := range child.Part(r.shards, i, r.children) {
					at[s] = &r.kids[i]
				}
			}
		}
		return at[shard].errors[shard]
	})
	return p
}

func terminalState(s batch.ShardState) bool {
	return s == batch.ShardSucceeded || s == batch.ShardFailed || s == batch.ShardCancelled
}

// Cancel implements batch.Executor: TerminateJob on the AWS Batch job, which
// stops its children, running or not. A TerminateJob that fails (throttled
// beyond the SDK's retries) is sent again by each Poll until it succeeds.
func (e *Executor) Cancel(ctx context.Context, handle string) error {
	if handle == noChildren {
		return nil
	}
	e.mu.Lock()
	r := e.runs[handle]
	e.mu.Unlock()
	if r != nil {
		r.mu.Lock()
		r.cancelled = true
		r.mu.Unlock()
	}
	reason := cancelReason
	if r != nil {
		reason += " (job " + r.jobID + ")"
	}
	_, err := e.client.TerminateJob(ctx, &awsbatch.TerminateJobInput{JobId: aws.String(handle), Reason: aws.String(reason)})
	if err != nil {
		if isNotFound(err) && e.justSubmitted(handle) == nil {
			return fmt.Errorf("awsbatch: terminate %s: %v: %w", handle, err, batch.ErrVanished)
		}
		// Throttled beyond the SDK's retries, or not visible yet: Poll
		// sends it again until AWS Batch takes it.
		e.mu.Lock()
		e.terminate[handle] = reason
		e.mu.Unlock()
		return fmt.Errorf("awsbatch: terminate %s (sent again at the next poll): %w", handle, err)
	}
	e.log.Info("terminated", "batch_job", handle)
	return nil
}
