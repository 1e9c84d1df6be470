package batchtest

import (
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
)

func ptr[T any](v T) *T { return &v }

func millis(v int64) *int64 {
	if v == 0 {
		return nil
	}
	return &v
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// summary counts an array parent's children by status. e.mu must be held.
func (j *job) summary() map[string]int32 {
	m := make(map[string]int32, len(allStatuses))
	for _, s := range allStatuses {
		m[s] = 0
	}
	for _, c := range j.children {
		m[c.status]++
	}
	return m
}

// arrayProperties is j's arrayProperties as reported. e.mu must be held.
func (e *Endpoint) arrayProperties(j *job) *arrayPropertiesDetail {
	switch {
	case j.size > 0:
		sum, at := e.shownSummary(j)
		return &arrayPropertiesDetail{Size: ptr(j.size), StatusSummary: sum, StatusSummaryLastUpdatedAt: millis(at)}
	case j.parent != nil:
		return &arrayPropertiesDetail{Index: ptr(j.index)}
	}
	return nil
}

func (j *job) lastAttempt() *attempt {
	if len(j.attempts) == 0 {
		return nil
	}
	return j.attempts[len(j.attempts)-1]
}

// detail is the DescribeJobs shape of j. e.mu must be held.
func (e *Endpoint) detail(j *job) jobDetail {
	s := j.spec
	d := jobDetail{
		JobArn:             j.arn,
		JobID:              j.id,
		JobName:            s.name,
		JobQueue:           s.queueArn,
		JobDefinition:      s.definitionArn,
		Status:             j.status,
		StatusReason:       optString(e.statusReason(j)),
		CreatedAt:          millis(j.createdAt),
		StartedAt:          millis(j.startedAt),
		StoppedAt:          millis(j.stoppedAt),
		ArrayProperties:    e.arrayProperties(j),
		Attempts:           []attemptDetail{},
		Parameters:         s.parameters,
		RetryStrategy:      s.retry,
		Tags:               s.tags,
		Timeout:            s.timeout,
		PropagateTags:      s.propagateTags,
		ShareIdentifier:    s.shareID,
		SchedulingPriority: s.priority,
	}
	if j.cancelled {
		d.IsCancelled = ptr(true)
	}
	if j.terminated {
		d.IsTerminated = ptr(true)
	}
	if len(d.Parameters) == 0 {
		d.Parameters = nil
	}
	c := &containerDetail{Command: s.command, Environment: s.env, ResourceRequirements: s.resources}
	for _, a := range j.attempts {
		if a.startedAt == 0 {
			continue // not started yet
		}
		d.Attempts = append(d.Attempts, attemptDetail{
			Container: &attemptContainerDetail{
				ExitCode:      a.exitCode,
				Reason:        optString(a.reason),
				LogStreamName: optString(a.logStream),
			},
			StartedAt:    millis(a.startedAt),
			StoppedAt:    millis(a.stoppedAt),
			StatusReason: optString(a.statusReason),
		})
	}
	if a := j.lastAttempt(); a != nil {
		c.ExitCode, c.Reason, c.LogStreamName = a.exitCode, optString(a.reason), optString(a.logStream)
	}
	if j.size == 0 {
		d.Container = c
	}
	return d
}

func (e *Endpoint) describeJobs(body []byte) (any, error) {
	var in describeJobsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Jobs) > maxDescribeJobs {
		return nil, clientError("jobs allows at most %d job IDs, got %d", maxDescribeJobs, len(in.Jobs))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := describeJobsOutput{Jobs: []jobDetail{}}
	for _, id := range in.Jobs {
		if j := e.jobs[id]; j != nil && e.visible(j) {
			out.Jobs = append(out.Jobs, e.detail(j))
		}
	}
	return out, nil
}

// jobFilter is one ListJobs filter; all given must hold.
type jobFilter func(*job) bool

func parseFilters(fs []listJobsFilter) ([]jobFilter, error) {
	var out []jobFilter
	for _, f := range fs {
		if len(f.Values) != 1 {
			return nil, clientError("filter %s needs exactly one value", f.Name)
		}
		v := f.Values[0]
		switch f.Name {
		case "JOB_NAME":
			// AWS Batch matches job names without regard to case.
			lv := strings.ToLower(v)
			out = append(out, func(j *job) bool { return globMatch(lv, strings.ToLower(j.spec.name)) })
		case "JOB_DEFINITION":
			out = append(out, func(j *job) bool {
				d := j.spec.definition
				return globMatch(v, j.spec.definitionArn) || globMatch(v, d.Name) ||
					globMatch(v, d.Name+":"+strconv.Itoa(int(d.Revision)))
			})
		case "BEFORE_CREATED_AT", "AFTER_CREATED_AT":
			t, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, clientError("filter %s: %q is not a time stamp in milliseconds", f.Name, v)
			}
			before := f.Name == "BEFORE_CREATED_AT"
			out = append(out, func(j *job) bool {
				if before {
					return j.createdAt < t
				}
				return j.createdAt > t
			})
		default:
			return nil, clientError("unknown filter name %q", f.Name)
		}
	}
	return out, nil
}

func (e *Endpoint) listJobs(body []byte) (any, error) {
	var in listJobsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	given := 0
	for _, p := range []*string{in.JobQueue, in.ArrayJobID, in.MultiNodeJobID} {
		if p != nil {
			given++
		}
	}
	if given != 1 {
		return nil, clientError("exactly one of jobQueue, arrayJobId and multiNodeJobId is required")
	}
	if in.MultiNodeJobID != nil {
		return nil, clientError("multi-node jobs are not supported by the batchtest endpoint")
	}
	filters, err := parseFilters(in.Filters)
	if err != nil {
		return nil, err
	}
	status := ""
	if len(filters) == 0 {
		status = StatusRunning // AWS Batch's default
		if in.JobStatus != nil {
			status = strings.ToUpper(*in.JobStatus)
			known := false
			for _, s := range allStatuses {
				known = known || s == status
			}
			if !known {
				return nil, clientError("jobStatus %q is not a job status", *in.JobStatus)
			}
		}
	}
	limit := 1000
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 1000 {
			return nil, clientError("maxResults must be between 1 and 1000, got %d", *in.MaxResults)
		}
		limit = int(*in.MaxResults)
	}
	offset := 0
	if in.NextToken != nil {
		raw, err := base64.RawURLEncoding.DecodeString(*in.NextToken)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(raw), "batchtest:"))
		if err != nil || err2 != nil || n < 0 || !strings.HasPrefix(string(raw), "batchtest:") {
			return nil, clientError("nextToken %q is not valid", *in.NextToken)
		}
		offset = n
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	var candidates []*job
	if in.JobQueue != nil {
		q := queueName(*in.JobQueue)
		for _, j := range e.top {
			if j.spec.queueName == q {
				candidates = append(candidates, j)
			}
		}
	} else if p := e.jobs[*in.ArrayJobID]; p != nil {
		candidates = p.children
	}
	if len(filters) > 0 {
		// With a filter, AWS Batch lists the newest jobs first.
		candidates = slices.Clone(candidates)
		slices.Reverse(candidates)
	}
	var matched []*job
	for _, j := range candidates {
		ok := e.visible(j) && (status == "" || j.status == status)
		for _, f := range filters {
			ok = ok && f(j)
		}
		if ok {
			matched = append(matched, j)
		}
	}
	out := listJobsOutput{JobSummaryList: []jobSummary{}}
	if offset > len(matched) {
		offset = len(matched)
	}
	end := min(offset+limit, len(matched))
	for _, j := range matched[offset:end] {
		out.JobSummaryList = append(out.JobSummaryList, e.summaryOf(j))
	}
	if end < len(matched) {
		out.NextToken = ptr(base64.RawURLEncoding.EncodeToString([]byte("batchtest:" + strconv.Itoa(end))))
	}
	return out, nil
}

// summaryOf is the ListJobs shape of j. e.mu must be held.
func (e *Endpoint) summaryOf(j *job) jobSummary {
	s := jobSummary{
		JobArn:          j.arn,
		JobID:           j.id,
		JobName:         j.spec.name,
		JobDefinition:   j.spec.definitionArn,
		Status:          j.status,
		StatusReason:    optString(e.statusReason(j)),
		CreatedAt:       millis(j.createdAt),
		StartedAt:       millis(j.startedAt),
		StoppedAt:       millis(j.stoppedAt),
		ArrayProperties: e.arrayProperties(j),
	}
	if a := j.lastAttempt(); a != nil && a.stoppedAt != 0 {
		s.Container = &containerSummary{ExitCode: a.exitCode, Reason: optString(a.reason)}
	}
	return s
}

// statusReason is j's statusReason as reported: a RUNNABLE job that
// Behaviours.StuckRunnable holds shows why. e.mu must be held.
func (e *Endpoint) statusReason(j *job) string {
	if j.status == StatusRunnable && e.behave.StuckRunnable != "" {
		return e.behave.StuckRunnable
	}
	return j.statusReason
}
