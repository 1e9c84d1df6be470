package batchtest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Job statuses, as AWS Batch names them.
const (
	StatusSubmitted = "SUBMITTED"
	StatusPending   = "PENDING"
	StatusRunnable  = "RUNNABLE"
	StatusStarting  = "STARTING"
	StatusRunning   = "RUNNING"
	StatusSucceeded = "SUCCEEDED"
	StatusFailed    = "FAILED"
)

var allStatuses = []string{StatusSubmitted, StatusPending, StatusRunnable, StatusStarting, StatusRunning, StatusSucceeded, StatusFailed}

// Status reasons AWS Batch reports.
const (
	reasonExited   = "Essential container in task exited"
	reasonTimeout  = "Job attempt duration exceeded timeout"
	reasonNoStart  = "Task failed to start"
	reasonChildren = "Array Child Job failed"
	reasonClosed   = "batchtest endpoint closed"
)

// Options configure an Endpoint. The zero value is usable.
type Options struct {
	// Definitions are the job definitions SubmitJob may name. More can be
	// added with RegisterJobDefinition.
	Definitions []JobDefinition
	// MaxRunning caps the number of attempts running at once, like the vCPU
	// cap of a compute environment (each attempt counts as one). Default 4.
	MaxRunning int
	// LogDir, if set, receives each attempt's stdout and stderr in the file
	// LogDir/<logStreamName>.log, logStreamName being what DescribeJobs
	// reports for the attempt.
	LogDir string
	// ChildOutput receives the attempts' stdout and stderr when LogDir is
	// empty; nil discards it.
	ChildOutput io.Writer
	// PassEnv names variables of this process's environment passed on to
	// every attempt (a real container gets credentials and endpoints from its
	// task role and configuration). PATH is always passed.
	PassEnv []string
	// MinTimeoutSeconds is the least timeout.attemptDurationSeconds accepted.
	// Default 60, as on AWS Batch; tests may lower it.
	MinTimeoutSeconds int32
	// TerminateGrace is how long a stopped attempt has between SIGTERM and
	// SIGKILL. Default 5s.
	TerminateGrace time.Duration
	// Region and AccountID go into ARNs. Defaults us-east-1 and 123456789012.
	Region    string
	AccountID string
	// ComputeEnvironment is the AWS_BATCH_CE_NAME of attempts. Default
	// "batchtest".
	ComputeEnvironment string
	// Logger logs submissions and attempts; nil discards.
	Logger *slog.Logger
}

// Endpoint is an http.Handler serving the AWS Batch API and running jobs as
// local processes. It is safe for concurrent use. Close stops every process.
type Endpoint struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	defs    map[string][]*JobDefinition // by name; index revision-1
	jobs    map[string]*job             // by ID and by ARN, children included
	top     []*job                      // submitted jobs in order, children excluded
	queue   []*job                      // RUNNABLE jobs waiting for a slot, FIFO
	running int
	closed  bool
	behave  Behaviours
	wg      sync.WaitGroup
}

// spec is what a submitted job and all its array children share.
type spec struct {
	name          string
	queueName     string
	queueArn      string
	definition    *JobDefinition
	definitionArn string
	command       []string
	env           []KeyValuePair // the definition's and the overrides'
	resources     []resourceRequirement
	parameters    map[string]string
	retry         *RetryStrategy
	timeout       *JobTimeout
	tags          map[string]string
	propagateTags *bool
	shareID       *string
	priority      *int32
}

type attempt struct {
	startedAt, stoppedAt int64
	exitCode             *int32
	reason               string // the container's reason
	statusReason         string
	logStream            string
}

type job struct {
	id, arn string
	spec    *spec

	parent   *job
	index    int32  // array child index
	children []*job // array parent only
	size     int32  // array parent only

	status       string
	statusReason string
	createdAt    int64
	startedAt    int64
	stoppedAt    int64
	summaryAt    int64 // array parent: last child status change
	attempts     []*attempt
	cancelled    bool
	terminated   bool
	stopReason   string                  // array parent: TerminateJob's reason
	stop         context.CancelCauseFunc // set while an attempt runs

	// array parent: the status summary last shown (Behaviours.SummaryLag)
	shown     map[string]int32
	shownAt   int64
	shownWhen time.Time
}

// stopCause is why a running attempt was stopped.
type stopCause struct {
	reason     string
	terminated bool // by TerminateJob
	kill       bool // no grace period
}

func (c *stopCause) Error() string { return c.reason }

// apiError is an AWS error reply.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func clientError(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "ClientException", message: fmt.Sprintf(format, args...)}
}

// New returns an Endpoint with the given options; opts may be nil.
func New(opts *Options) (*Endpoint, error) {
	e := &Endpoint{defs: map[string][]*JobDefinition{}, jobs: map[string]*job{}}
	if opts != nil {
		e.opts = *opts
	}
	o := &e.opts
	if o.MaxRunning <= 0 {
		o.MaxRunning = 4
	}
	if o.MinTimeoutSeconds <= 0 {
		o.MinTimeoutSeconds = 60
	}
	if o.TerminateGrace <= 0 {
		o.TerminateGrace = 5 * time.Second
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "123456789012"
	}
	if o.ComputeEnvironment == "" {
		o.ComputeEnvironment = "batchtest"
	}
	e.log = o.Logger
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	for i := range o.Definitions {
		d := o.Definitions[i]
		if _, err := e.register(&d); err != nil {
			return nil, fmt.Errorf("batchtest: definition %q: %w", d.Name, err)
		}
	}
	return e, nil
}

// register adds a definition as its next revision (or the revision it names).
func (e *Endpoint) register(d *JobDefinition) (*JobDefinition, error) {
	if err := validateDefinition(d, e.opts.MinTimeoutSeconds); err != nil {
		return nil, err
	}
	revs := e.defs[d.Name]
	next := int32(len(revs)) + 1
	if d.Revision == 0 {
		d.Revision = next
	}
	if d.Revision != next {
		return nil, fmt.Errorf("revision %d given, next revision is %d", d.Revision, next)
	}
	e.defs[d.Name] = append(revs, d)
	return d, nil
}

func (e *Endpoint) definitionArn(d *JobDefinition) string {
	return fmt.Sprintf("arn:aws:batch:%s:%s:job-definition/%s:%d", e.opts.Region, e.opts.AccountID, d.Name, d.Revision)
}

// resolveDefinition finds a definition by name, name:revision or ARN.
func (e *Endpoint) resolveDefinition(ref string) *JobDefinition {
	if strings.HasPrefix(ref, "arn:") {
		_, after, ok := strings.Cut(ref, ":job-definition/")
		if !ok {
			return nil
		}
		ref = after
	}
	name, rev, hasRev := strings.Cut(ref, ":")
	revs := e.defs[name]
	if len(revs) == 0 {
		return nil
	}
	if !hasRev {
		return revs[len(revs)-1]
	}
	n, err := strconv.Atoi(rev)
	if err != nil || n < 1 || n > len(revs) {
		return nil
	}
	return revs[n-1]
}

func queueName(ref string) string {
	if strings.HasPrefix(ref, "arn:") {
		if _, after, ok := strings.Cut(ref, ":job-queue/"); ok {
			return after
		}
	}
	return ref
}

func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func nowMillis() int64 { return time.Now().UnixMilli() }

func terminal(status string) bool { return status == StatusSucceeded || status == StatusFailed }

// ServeHTTP serves the AWS Batch REST-JSON API.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var handler func([]byte) (any, error)
	op := ""
	switch r.URL.Path {
	case "/v1/submitjob":
		op = "SubmitJob"
		handler = e.submitJob
	case "/v1/describejobs":
		op = "DescribeJobs"
		handler = e.describeJobs
	case "/v1/listjobs":
		op = "ListJobs"
		handler = e.listJobs
	case "/v1/terminatejob":
		op = "TerminateJob"
		handler = func(b []byte) (any, error) { return e.stopJob(b, true) }
	case "/v1/canceljob":
		op = "CancelJob"
		handler = func(b []byte) (any, error) { return e.stopJob(b, false) }
	case "/v1/registerjobdefinition":
		op = "RegisterJobDefinition"
		handler = e.registerJobDefinition
	}
	var out any
	var err error
	switch {
	case handler != nil && r.Method == http.MethodPost && e.throttledErr(op, &err):
	case handler != nil && r.Method == http.MethodPost:
		var body []byte
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
		if err == nil {
			out, err = handler(body)
		} else {
			err = clientError("read request body: %v", err)
		}
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		err = clientError("%s %s is not supported by the batchtest endpoint", r.Method, r.URL.Path)
	default:
		err = &apiError{status: http.StatusNotFound, code: "UnknownOperationException", message: "unknown operation " + r.Method + " " + r.URL.Path}
	}
	if err == nil && op == "SubmitJob" && e.dropSubmit() {
		// The job is taken; its reply is lost: the connection closes
		// without one.
		e.log.Info("submit reply dropped")
		panic(http.ErrAbortHandler)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-RequestId", newJobID())
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{status: http.StatusInternalServerError, code: "ServerException", message: err.Error()}
		}
		e.log.Debug("request failed", "path", r.URL.Path, "code", ae.code, "message", ae.message)
		w.Header().Set("X-Amzn-ErrorType", ae.code)
		w.WriteHeader(ae.status)
		_ = json.NewEncoder(w).Encode(errorBody{Type: ae.code, Message: ae.message})
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}

func decode(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return clientError("malformed request body: %v", err)
	}
	return nil
}

func (e *Endpoint) registerJobDefinition(body []byte) (any, error) {
	var in registerJobDefinitionInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.JobDefinitionName == nil {
		return nil, clientError("jobDefinitionName is required")
	}
	if in.Type == nil || *in.Type != "container" {
		return nil, clientError("type must be container")
	}
	d := &JobDefinition{
		Name:          *in.JobDefinitionName,
		Parameters:    in.Parameters,
		RetryStrategy: in.RetryStrategy,
		Timeout:       in.Timeout,
	}
	if cp := in.ContainerProperties; cp != nil {
		d.Command = cp.Command
		d.Environment = cp.Environment
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.register(d); err != nil {
		return nil, clientError("%v", err)
	}
	return registerJobDefinitionOutput{JobDefinitionArn: e.definitionArn(d), JobDefinitionName: d.Name, Revision: d.Revision}, nil
}

func (e *Endpoint) submitJob(body []byte) (any, error) {
	var in submitJobInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{
		{"dependsOn", in.DependsOn}, {"nodeOverrides", in.NodeOverrides},
		{"eksPropertiesOverride", in.EksPropertiesOverride}, {"ecsPropertiesOverride", in.EcsPropertiesOverride},
		{"consumableResourcePropertiesOverride", in.ConsumableResourcePropertiesOverride},
	} {
		if len(f.raw) > 0 && string(f.raw) != "null" {
			return nil, clientError("%s is not supported by the batchtest endpoint", f.name)
		}
	}
	switch {
	case in.JobName == nil:
		return nil, clientError("jobName is required")
	case in.JobQueue == nil || *in.JobQueue == "":
		return nil, clientError("jobQueue is required")
	case in.JobDefinition == nil || *in.JobDefinition == "":
		return nil, clientError("jobDefinition is required")
	}
	if err := validateJobName(*in.JobName); err != nil {
		return nil, clientError("%v", err)
	}
	var size int32
	if in.ArrayProperties != nil && in.ArrayProperties.Size != nil {
		size = *in.ArrayProperties.Size
		if size < 2 || size > maxArraySize {
			return nil, clientError("arrayProperties.size must be between 2 and %d, got %d", maxArraySize, size)
		}
	}
	if err := validateRetryStrategy(in.RetryStrategy); err != nil {
		return nil, clientError("%v", err)
	}
	if err := validateTimeout(in.Timeout, e.opts.MinTimeoutSeconds); err != nil {
		return nil, clientError("%v", err)
	}
	if err := validateTags(in.Tags); err != nil {
		return nil, clientError("%v", err)
	}
	ov := in.ContainerOverrides
	if ov == nil {
		ov = &containerOverrides{}
	}
	if err := validateEnvironment(ov.Environment); err != nil {
		return nil, clientError("containerOverrides: %v", err)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, clientError("the batchtest endpoint is closed")
	}
	def := e.resolveDefinition(*in.JobDefinition)
	if def == nil {
		return nil, clientError("Job definition %s not found", *in.JobDefinition)
	}
	s := &spec{
		name:          *in.JobName,
		queueName:     queueName(*in.JobQueue),
		definition:    def,
		definitionArn: e.definitionArn(def),
		resources:     ov.ResourceRequirements,
		retry:         def.RetryStrategy,
		timeout:       def.Timeout,
		tags:          in.Tags,
		propagateTags: in.PropagateTags,
		shareID:       in.ShareIdentifier,
		priority:      in.SchedulingPriorityOverride,
	}
	s.queueArn = fmt.Sprintf("arn:aws:batch:%s:%s:job-queue/%s", e.opts.Region, e.opts.AccountID, s.queueName)
	if in.RetryStrategy != nil {
		s.retry = in.RetryStrategy
	}
	if in.Timeout != nil {
		s.timeout = in.Timeout
	}
	s.parameters = map[string]string{}
	for k, v := range def.Parameters {
		s.parameters[k] = v
	}
	for k, v := range in.Parameters {
		s.parameters[k] = v
	}
	command := def.Command
	if len(ov.Command) > 0 {
		command = ov.Command
	}
	if len(command) == 0 {
		return nil, clientError("job definition %s has no command and containerOverrides.command is empty", def.Name)
	}
	for _, arg := range command {
		if name, ok := strings.CutPrefix(arg, "Ref::"); ok {
			if v, ok := s.parameters[name]; ok {
				arg = v
			}
		}
		s.command = append(s.command, arg)
	}
	s.env = mergeEnv(def.Environment, ov.Environment)

	id := newJobID()
	j := &job{
		id:        id,
		arn:       fmt.Sprintf("arn:aws:batch:%s:%s:job/%s", e.opts.Region, e.opts.AccountID, id),
		spec:      s,
		index:     -1,
		size:      size,
		status:    StatusSubmitted,
		createdAt: nowMillis(),
	}
	e.jobs[j.id], e.jobs[j.arn] = j, j
	e.top = append(e.top, j)
	for i := range size {
		c := &job{
			id:        fmt.Sprintf("%s:%d", j.id, i),
			arn:       fmt.Sprintf("%s:%d", j.arn, i),
			spec:      s,
			parent:    j,
			index:     i,
			status:    StatusSubmitted,
			createdAt: j.createdAt,
		}
		j.children = append(j.children, c)
		e.jobs[c.id], e.jobs[c.arn] = c, c
	}
	if size > 0 {
		j.summaryAt = j.createdAt
	}
	e.log.Info("job submitted", "job_id", j.id, "name", s.name, "queue", s.queueName, "definition", s.definitionArn, "array_size", size)
	e.wg.Add(1)
	go e.admit(j)
	return submitJobOutput{JobArn: j.arn, JobID: j.id, JobName: s.name}, nil
}

// mergeEnv returns base with overrides applied: a variable named in both
// takes the override's value.
func mergeEnv(base, over []KeyValuePair) []KeyValuePair {
	out := make([]KeyValuePair, 0, len(base)+len(over))
	pos := map[string]int{}
	for _, list := range [][]KeyValuePair{base, over} {
		for _, kv := range list {
			if i, ok := pos[kv.Name]; ok {
				out[i] = kv
				continue
			}
			pos[kv.Name] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// admit moves a submitted job through PENDING to RUNNABLE (an array parent
// stays PENDING while its children run) and queues it.
func (e *Endpoint) admit(j *job) {
	defer e.wg.Done()
	e.mu.Lock()
	defer e.mu.Unlock()
	if j.status != StatusSubmitted {
		return
	}
	e.setStatus(j, StatusPending)
	if j.size == 0 {
		e.setStatus(j, StatusRunnable)
		e.queue = append(e.queue, j)
	}
	for _, c := range j.children {
		if c.status != StatusSubmitted {
			continue
		}
		e.setStatus(c, StatusPending)
		e.setStatus(c, StatusRunnable)
		e.queue = append(e.queue, c)
	}
	e.dispatchLocked()
}

// setStatus changes a job's status and keeps its array parent's up to date.
// e.mu must be held.
func (e *Endpoint) setStatus(j *job, status string) {
	j.status = status
	now := nowMillis()
	if terminal(status) {
		j.stoppedAt = now
	}
	p := j.parent
	if p == nil {
		return
	}
	p.summaryAt = now
	if terminal(p.status) {
		return
	}
	failed := 0
	for _, c := range p.children {
		if !terminal(c.status) {
			return
		}
		if c.status == StatusFailed {
			failed++
		}
	}
	p.stoppedAt = now
	if failed == 0 {
		p.status, p.statusReason = StatusSucceeded, ""
		return
	}
	p.status, p.statusReason = StatusFailed, reasonChildren
	if p.stopReason != "" {
		p.statusReason = p.stopReason
	}
}

// Close stops every running attempt at once (SIGKILL to its process group),
// fails every job not finished, waits for the processes to be gone and
// refuses later submissions. It does not close any HTTP server.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		e.queue = nil
		for _, j := range e.jobs {
			if j.size > 0 || terminal(j.status) {
				continue
			}
			if j.stop != nil {
				j.stop(&stopCause{reason: reasonClosed, kill: true})
				continue
			}
			j.statusReason = reasonClosed
			e.setStatus(j, StatusFailed)
		}
	}
	e.mu.Unlock()
	e.wg.Wait()
	return nil
}
