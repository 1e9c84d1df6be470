package batchtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
)

type harness struct {
	t      *testing.T
	ep     *Endpoint
	client *batch.Client
	out    string // where attempts write their reports
}

// newHarness serves an Endpoint whose definition "child" runs this test
// binary as the job (see childMain).
func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, out: t.TempDir()}
	opts.Definitions = append(opts.Definitions, JobDefinition{
		Name:    "child",
		Command: []string{self, "-test.run=^$"},
		Environment: []KeyValuePair{
			{Name: "BATCHTEST_CHILD", Value: "1"},
			{Name: "BATCHTEST_OUT", Value: h.out},
			{Name: "FROM_DEF", Value: "def"},
			{Name: "OVERRIDE_ME", Value: "def"},
		},
	})
	if opts.MinTimeoutSeconds == 0 {
		opts.MinTimeoutSeconds = 1
	}
	if opts.TerminateGrace == 0 {
		opts.TerminateGrace = 2 * time.Second
	}
	opts.PassEnv = append(opts.PassEnv, passedVar)
	if opts.LogDir == "" {
		opts.LogDir = t.TempDir()
	}
	h.ep, err = New(&opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.ep)
	t.Cleanup(func() {
		srv.Close()
		h.ep.Close()
	})
	h.client = batch.New(batch.Options{
		BaseEndpoint: aws.String(srv.URL),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("k", "s", ""),
	})
	return h
}

func env(kv ...string) []types.KeyValuePair {
	var out []types.KeyValuePair
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, types.KeyValuePair{Name: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return out
}

// submit submits a job of definition "child"; size 0 is a plain job.
func (h *harness) submit(name string, size int32, in *batch.SubmitJobInput) string {
	h.t.Helper()
	if in == nil {
		in = &batch.SubmitJobInput{}
	}
	in.JobName, in.JobQueue = aws.String(name), aws.String("queue-1")
	if in.JobDefinition == nil {
		in.JobDefinition = aws.String("child")
	}
	if size > 0 {
		in.ArrayProperties = &types.ArrayProperties{Size: aws.Int32(size)}
	}
	out, err := h.client.SubmitJob(context.Background(), in)
	if err != nil {
		h.t.Fatalf("SubmitJob: %v", err)
	}
	if aws.ToString(out.JobName) != name || aws.ToString(out.JobId) == "" || !strings.HasSuffix(aws.ToString(out.JobArn), "/"+aws.ToString(out.JobId)) {
		h.t.Fatalf("SubmitJob returned %+v", out)
	}
	return aws.ToString(out.JobId)
}

func (h *harness) describe(id string) types.JobDetail {
	h.t.Helper()
	out, err := h.client.DescribeJobs(context.Background(), &batch.DescribeJobsInput{Jobs: []string{id}})
	if err != nil {
		h.t.Fatalf("DescribeJobs: %v", err)
	}
	if len(out.Jobs) != 1 {
		h.t.Fatalf("DescribeJobs %s: %d jobs", id, len(out.Jobs))
	}
	return out.Jobs[0]
}

// wait polls until the job reaches a final status, failing after timeout.
func (h *harness) wait(id string, timeout time.Duration) types.JobDetail {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := h.describe(id)
		if d.Status == types.JobStatusSucceeded || d.Status == types.JobStatusFailed {
			return d
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("job %s still %s after %v", id, d.Status, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// report reads what attempt n of job id wrote about itself, waiting for it.
func (h *harness) report(id string, n int) report {
	h.t.Helper()
	path := filepath.Join(h.out, reportName(id, strconv.Itoa(n)))
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			var r report
			if err := json.Unmarshal(data, &r); err != nil {
				h.t.Fatal(err)
			}
			return r
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no report from %s attempt %d: %v", id, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running after %v", pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func exitCodes(d types.JobDetail) []int32 {
	var out []int32
	for _, a := range d.Attempts {
		if a.Container == nil || a.Container.ExitCode == nil {
			out = append(out, -1)
			continue
		}
		out = append(out, *a.Container.ExitCode)
	}
	return out
}

func TestJobs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	tests := []struct {
		name       string
		size       int32
		in         *batch.SubmitJobInput
		wantStatus types.JobStatus
		// wantCodes are the attempts' exit codes, per child for arrays.
		wantCodes  map[int][]int32
		wantReason string
		check      func(t *testing.T, id string, d types.JobDetail)
	}{
		{
			name:       "plain job",
			in:         &batch.SubmitJobInput{ContainerOverrides: &types.ContainerOverrides{Environment: env("OVERRIDE_ME", "over")}},
			wantStatus: types.JobStatusSucceeded,
			wantCodes:  map[int][]int32{-1: {0}},
			wantReason: reasonExited,
			check: func(t *testing.T, id string, d types.JobDetail) {
				r := h.report(id, 1)
				want := map[string]string{
					"AWS_BATCH_JOB_ID":      id,
					"AWS_BATCH_JOB_ATTEMPT": "1",
					"AWS_BATCH_JQ_NAME":     "queue-1",
					"AWS_BATCH_CE_NAME":     "batchtest",
					"FROM_DEF":              "def",
					"OVERRIDE_ME":           "over",
					passedVar:               "passed-through",
				}
				for k, v := range want {
					if r.Env[k] != v {
						t.Errorf("env %s = %q, want %q", k, r.Env[k], v)
					}
				}
				for _, k := range []string{"AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE", "BATCHTEST_NOT_PASSED"} {
					if v, ok := r.Env[k]; ok {
						t.Errorf("env %s = %q, want unset", k, v)
					}
				}
				if d.ArrayProperties != nil {
					t.Errorf("plain job has arrayProperties %+v", d.ArrayProperties)
				}
				if d.CreatedAt == nil || d.StartedAt == nil || d.StoppedAt == nil || *d.StartedAt < *d.CreatedAt || *d.StoppedAt < *d.StartedAt {
					t.Errorf("time stamps created %v started %v stopped %v", d.CreatedAt, d.StartedAt, d.StoppedAt)
				}
				if ms := *d.CreatedAt; ms < time.Now().Add(-time.Hour).UnixMilli() || ms > time.Now().UnixMilli() {
					t.Errorf("createdAt %d is not epoch milliseconds of now", ms)
				}
				log := aws.ToString(d.Attempts[0].Container.LogStreamName)
				data, err := os.ReadFile(filepath.Join(h.ep.opts.LogDir, log+".log"))
				if err != nil || !strings.Contains(string(data), "child "+id+" attempt 1") {
					t.Errorf("log %s: %q, %v", log, data, err)
				}
			},
		},
		{
			name:       "array of five",
			size:       5,
			wantStatus: types.JobStatusSucceeded,
			wantCodes:  map[int][]int32{0: {0}, 1: {0}, 2: {0}, 3: {0}, 4: {0}},
			check: func(t *testing.T, id string, d types.JobDetail) {
				for i := range 5 {
					child := fmt.Sprintf("%s:%d", id, i)
					r := h.report(child, 1)
					want := map[string]string{
						"AWS_BATCH_JOB_ID":          child,
						"AWS_BATCH_JOB_ARRAY_INDEX": strconv.Itoa(i),
						"AWS_BATCH_JOB_ARRAY_SIZE":  "5",
						"AWS_BATCH_JOB_ATTEMPT":     "1",
					}
					for k, v := range want {
						if r.Env[k] != v {
							t.Errorf("child %d: env %s = %q, want %q", i, k, r.Env[k], v)
						}
					}
				}
				ap := d.ArrayProperties
				if ap == nil || aws.ToInt32(ap.Size) != 5 || ap.StatusSummary[string(types.JobStatusSucceeded)] != 5 || ap.StatusSummaryLastUpdatedAt == nil {
					t.Errorf("parent arrayProperties %+v", ap)
				}
			},
		},
		{
			name: "fails on attempt 1, succeeds on attempt 2",
			in: &batch.SubmitJobInput{
				ContainerOverrides: &types.ContainerOverrides{Environment: env("BATCHTEST_FAIL_BEFORE", "2")},
				RetryStrategy:      &types.RetryStrategy{Attempts: aws.Int32(3)},
			},
			wantStatus: types.JobStatusSucceeded,
			wantCodes:  map[int][]int32{-1: {3, 0}},
			check: func(t *testing.T, id string, d types.JobDetail) {
				if r := h.report(id, 2); r.Env["AWS_BATCH_JOB_ATTEMPT"] != "2" {
					t.Errorf("attempt 2 saw AWS_BATCH_JOB_ATTEMPT=%q", r.Env["AWS_BATCH_JOB_ATTEMPT"])
				}
			},
		},
		{
			name: "evaluateOnExit EXIT stops retries",
			in: &batch.SubmitJobInput{
				ContainerOverrides: &types.ContainerOverrides{Environment: env("BATCHTEST_FAIL_INDEX", "all", "BATCHTEST_EXIT_CODE", "3")},
				RetryStrategy: &types.RetryStrategy{Attempts: aws.Int32(3), EvaluateOnExit: []types.EvaluateOnExit{
					{OnExitCode: aws.String("3"), Action: types.RetryActionExit},
				}},
			},
			wantStatus: types.JobStatusFailed,
			wantCodes:  map[int][]int32{-1: {3}},
			wantReason: reasonExited,
		},
		{
			name: "evaluateOnExit RETRY glob, then catch-all EXIT",
			in: &batch.SubmitJobInput{
				ContainerOverrides: &types.ContainerOverrides{Environment: env("BATCHTEST_FAIL_BEFORE", "3", "BATCHTEST_EXIT_CODE", "42")},
				RetryStrategy: &types.RetryStrategy{Attempts: aws.Int32(5), EvaluateOnExit: []types.EvaluateOnExit{
					{OnExitCode: aws.String("4*"), OnStatusReason: aws.String("Essential*"), Action: types.RetryActionRetry},
					{OnReason: aws.String("*"), Action: types.RetryActionExit},
				}},
			},
			wantStatus: types.JobStatusSucceeded,
			wantCodes:  map[int][]int32{-1: {42, 42, 0}},
		},
		{
			name: "unmatched rules retry until attempts run out",
			in: &batch.SubmitJobInput{
				ContainerOverrides: &types.ContainerOverrides{Environment: env("BATCHTEST_FAIL_INDEX", "all")},
				RetryStrategy: &types.RetryStrategy{Attempts: aws.Int32(2), EvaluateOnExit: []types.EvaluateOnExit{
					{OnExitCode: aws.String("7"), Action: types.RetryActionExit},
				}},
			},
			wantStatus: types.JobStatusFailed,
			wantCodes:  map[int][]int32{-1: {3, 3}},
		},
		{
			name: "a child failing always fails the parent",
			size: 3,
			in: &batch.SubmitJobInput{
				ContainerOverrides: &types.ContainerOverrides{Environment: env("BATCHTEST_FAIL_INDEX", "1")},
				RetryStrategy:      &types.RetryStrategy{Attempts: aws.Int32(2)},
			},
			wantStatus: types.JobStatusFailed,
			wantCodes:  map[int][]int32{0: {0}, 1: {3, 3}, 2: {0}},
			check: func(t *testing.T, id string, d types.JobDetail) {
				out, err := h.client.ListJobs(context.Background(), &batch.ListJobsInput{ArrayJobId: aws.String(id), JobStatus: types.JobStatusFailed})
				if err != nil {
					t.Fatal(err)
				}
				if len(out.JobSummaryList) != 1 || aws.ToString(out.JobSummaryList[0].JobId) != id+":1" {
					t.Fatalf("ListJobs FAILED children: %+v", out.JobSummaryList)
				}
				s := out.JobSummaryList[0]
				if s.ArrayProperties == nil || aws.ToInt32(s.ArrayProperties.Index) != 1 || s.Container == nil || aws.ToInt32(s.Container.ExitCode) != 3 {
					t.Errorf("summary of failed child: %+v", s)
				}
				sum := d.ArrayProperties.StatusSummary
				if sum["FAILED"] != 1 || sum["SUCCEEDED"] != 2 {
					t.Errorf("statusSummary %v", sum)
				}
			},
		},
		{
			name: "timeout kills the attempt and is not retried",
			in: &batch.SubmitJobInput{
				ContainerOverrides: &types.ContainerOverrides{Environment: env("BATCHTEST_SLEEP", "1m")},
				RetryStrategy:      &types.RetryStrategy{Attempts: aws.Int32(3)},
				Timeout:            &types.JobTimeout{AttemptDurationSeconds: aws.Int32(6)},
			},
			wantStatus: types.JobStatusFailed,
			wantCodes:  map[int][]int32{-1: {128 + int32(syscall.SIGTERM)}},
			wantReason: reasonTimeout,
			check: func(t *testing.T, id string, d types.JobDetail) {
				waitGone(t, h.report(id, 1).PID, 10*time.Second)
				// A 6 s timeout: killed neither at once (5 s of slack below)
				// nor after the minute's sleep (over 40 s of slack above).
				if took := *d.StoppedAt - *d.StartedAt; took < 1000 || took > 20000 {
					t.Errorf("attempt ran %d ms, want about 6000", took)
				}
			},
		},
		{
			name: "command that cannot start",
			in: &batch.SubmitJobInput{
				ContainerOverrides: &types.ContainerOverrides{Command: []string{"/nonexistent/batchtest-child"}},
			},
			wantStatus: types.JobStatusFailed,
			wantCodes:  map[int][]int32{-1: {-1}},
			wantReason: reasonNoStart,
			check: func(t *testing.T, id string, d types.JobDetail) {
				if r := aws.ToString(d.Attempts[0].Container.Reason); !strings.HasPrefix(r, "CannotStartContainerError") {
					t.Errorf("container reason %q", r)
				}
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := h.submit(fmt.Sprintf("job-%d", i), tt.size, tt.in)
			d := h.wait(id, 30*time.Second)
			if d.Status != tt.wantStatus {
				t.Fatalf("status %s (%s), want %s", d.Status, aws.ToString(d.StatusReason), tt.wantStatus)
			}
			if tt.wantReason != "" && aws.ToString(d.StatusReason) != tt.wantReason {
				t.Errorf("statusReason %q, want %q", aws.ToString(d.StatusReason), tt.wantReason)
			}
			for idx, want := range tt.wantCodes {
				cd := d
				if idx >= 0 {
					cd = h.describe(fmt.Sprintf("%s:%d", id, idx))
					if cd.ArrayProperties == nil || aws.ToInt32(cd.ArrayProperties.Index) != int32(idx) {
						t.Errorf("child %d arrayProperties %+v", idx, cd.ArrayProperties)
					}
				}
				if got := exitCodes(cd); !slices.Equal(got, want) {
					t.Errorf("job %s: attempts' exit codes %v, want %v", aws.ToString(cd.JobId), got, want)
				}
				if c := cd.Container; c == nil || (want[len(want)-1] >= 0 && aws.ToInt32(c.ExitCode) != want[len(want)-1]) {
					t.Errorf("job %s: container %+v", aws.ToString(cd.JobId), c)
				}
			}
			if tt.check != nil {
				tt.check(t, id, d)
			}
		})
	}
}

// TestStatusSummary follows an array job's status summary while at most two
// children run at once.
func TestStatusSummary(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxRunning: 2})
	id := h.submit("summary", 5, &batch.SubmitJobInput{
		ContainerOverrides: &types.ContainerOverrides{Environment: env("BATCHTEST_SLEEP", "300ms")},
	})
	seen := map[types.JobStatus]bool{}
	sawQueued := false
	var last int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		d := h.describe(id)
		seen[d.Status] = true
		sum := d.ArrayProperties.StatusSummary
		total := int32(0)
		for _, n := range sum {
			total += n
		}
		if total != 5 {
			t.Fatalf("statusSummary %v counts %d children", sum, total)
		}
		if active := sum["STARTING"] + sum["RUNNING"]; active > 2 {
			t.Fatalf("statusSummary %v: %d active children, cap 2", sum, active)
		}
		sawQueued = sawQueued || (sum["RUNNABLE"] > 0 && sum["SUCCEEDED"] > 0)
		if at := aws.ToInt64(d.ArrayProperties.StatusSummaryLastUpdatedAt); at < last {
			t.Fatalf("statusSummaryLastUpdatedAt went back from %d to %d", last, at)
		} else {
			last = at
		}
		if d.Status == types.JobStatusSucceeded || d.Status == types.JobStatusFailed {
			if d.Status != types.JobStatusSucceeded || sum["SUCCEEDED"] != 5 {
				t.Fatalf("final status %s, summary %v", d.Status, sum)
			}
			break
		}
		if d.Status != types.JobStatusPending && d.Status != types.JobStatusSubmitted {
			t.Fatalf("parent status %s while children run", d.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("array job still %s: %v", d.Status, sum)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !seen[types.JobStatusPending] || !sawQueued {
		t.Errorf("parent statuses seen %v, children waiting for a slot seen %v", seen, sawQueued)
	}
	// No more than two attempts overlapped in time.
	type span struct{ start, stop int64 }
	var spans []span
	for i := range 5 {
		a := h.describe(fmt.Sprintf("%s:%d", id, i)).Attempts[0]
		spans = append(spans, span{*a.StartedAt, *a.StoppedAt})
	}
	for _, s := range spans {
		n := 0
		for _, o := range spans {
			if o.start <= s.start && s.start < o.stop {
				n++
			}
		}
		if n > 2 {
			t.Errorf("%d attempts running at %d: %v", n, s.start, spans)
		}
	}
}

// TestTerminate stops a running array job: its processes (and what they
// started) are gone, queued children never start, nothing is retried.
func TestTerminate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		ignoreTerm  string
		grace       time.Duration
		wantExit    int32
		maxDuration time.Duration
	}{
		{"SIGTERM", "0", 10 * time.Second, 128 + int32(syscall.SIGTERM), 10 * time.Second},
		{"SIGKILL after grace", "1", 300 * time.Millisecond, 128 + int32(syscall.SIGKILL), 10 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{MaxRunning: 2, TerminateGrace: tt.grace})
			id := h.submit("terminate", 3, &batch.SubmitJobInput{
				ContainerOverrides: &types.ContainerOverrides{Environment: env(
					"BATCHTEST_SLEEP", "1m", "BATCHTEST_IGNORE_TERM", tt.ignoreTerm, "BATCHTEST_GRANDCHILD", "1")},
				RetryStrategy: &types.RetryStrategy{Attempts: aws.Int32(3)},
			})
			reports := []report{h.report(id+":0", 1), h.report(id+":1", 1)}
			start := time.Now()
			if _, err := h.client.TerminateJob(context.Background(), &batch.TerminateJobInput{JobId: aws.String(id), Reason: aws.String("stop now")}); err != nil {
				t.Fatal(err)
			}
			d := h.wait(id, 30*time.Second)
			if took := time.Since(start); took > tt.maxDuration {
				t.Errorf("terminating took %v", took)
			}
			if d.Status != types.JobStatusFailed || aws.ToString(d.StatusReason) != "stop now" || !aws.ToBool(d.IsTerminated) {
				t.Errorf("parent %s %q terminated=%v", d.Status, aws.ToString(d.StatusReason), aws.ToBool(d.IsTerminated))
			}
			for _, r := range reports {
				waitGone(t, r.PID, 10*time.Second)
				waitGone(t, r.GrandchildPID, 10*time.Second)
			}
			for i := range 3 {
				c := h.describe(fmt.Sprintf("%s:%d", id, i))
				if c.Status != types.JobStatusFailed || aws.ToString(c.StatusReason) != "stop now" || !aws.ToBool(c.IsTerminated) {
					t.Errorf("child %d: %s %q terminated=%v", i, c.Status, aws.ToString(c.StatusReason), aws.ToBool(c.IsTerminated))
				}
				want := []int32{tt.wantExit}
				if i == 2 {
					want = nil // was waiting for a slot
				}
				if got := exitCodes(c); !slices.Equal(got, want) {
					t.Errorf("child %d: attempts' exit codes %v, want %v", i, got, want)
				}
			}
		})
	}
}

// TestCancelJob fails a queued job and leaves a running one alone.
func TestCancelJob(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxRunning: 1})
	slow := &batch.SubmitJobInput{ContainerOverrides: &types.ContainerOverrides{Environment: env("BATCHTEST_SLEEP", "1m")}}
	running := h.submit("running", 0, slow)
	r := h.report(running, 1)
	queued := h.submit("queued", 0, nil)
	for _, id := range []string{running, queued} {
		if _, err := h.client.CancelJob(context.Background(), &batch.CancelJobInput{JobId: aws.String(id), Reason: aws.String("not needed")}); err != nil {
			t.Fatal(err)
		}
	}
	if d := h.describe(queued); d.Status != types.JobStatusFailed || !aws.ToBool(d.IsCancelled) || aws.ToString(d.StatusReason) != "not needed" || len(d.Attempts) != 0 {
		t.Errorf("cancelled queued job: %s %q cancelled=%v attempts %d", d.Status, aws.ToString(d.StatusReason), aws.ToBool(d.IsCancelled), len(d.Attempts))
	}
	if d := h.describe(running); d.Status != types.JobStatusRunning {
		t.Errorf("cancelled running job is %s, want RUNNING", d.Status)
	}
	if gone(r.PID) {
		t.Errorf("CancelJob stopped a running process")
	}
	out, err := h.client.ListJobs(context.Background(), &batch.ListJobsInput{JobQueue: aws.String("queue-1")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.JobSummaryList) != 1 || aws.ToString(out.JobSummaryList[0].JobId) != running {
		t.Errorf("ListJobs with no status (RUNNING) = %+v", out.JobSummaryList)
	}
	h.ep.Close()
	waitGone(t, r.PID, 10*time.Second)
	if d := h.describe(running); d.Status != types.JobStatusFailed {
		t.Errorf("after Close the running job is %s", d.Status)
	}
}

func TestListJobsPagination(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	want := map[string]bool{}
	for i := range 5 {
		want[h.submit(fmt.Sprintf("page-%d", i), 0, nil)] = true
	}
	for id := range want {
		h.wait(id, 30*time.Second)
	}
	p := batch.NewListJobsPaginator(h.client, &batch.ListJobsInput{
		JobQueue: aws.String("arn:aws:batch:us-east-1:123456789012:job-queue/queue-1"), JobStatus: types.JobStatusSucceeded, MaxResults: aws.Int32(2),
	})
	pages := 0
	got := map[string]bool{}
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, s := range out.JobSummaryList {
			got[aws.ToString(s.JobId)] = true
		}
	}
	if pages != 3 || len(got) != 5 {
		t.Errorf("%d pages, %d jobs, want 3 pages, 5 jobs", pages, len(got))
	}
	for id := range want {
		if !got[id] {
			t.Errorf("job %s not listed", id)
		}
	}
	out, err := h.client.ListJobs(context.Background(), &batch.ListJobsInput{
		JobQueue: aws.String("queue-1"),
		Filters:  []types.KeyValuesPair{{Name: aws.String("JOB_NAME"), Values: []string{"page-3*"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.JobSummaryList) != 1 || aws.ToString(out.JobSummaryList[0].JobName) != "page-3" {
		t.Errorf("JOB_NAME filter: %+v", out.JobSummaryList)
	}
}

func TestDescribeUnknown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	id := h.submit("known", 0, nil)
	out, err := h.client.DescribeJobs(context.Background(), &batch.DescribeJobsInput{Jobs: []string{"no-such-job", id, id + ":0"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Jobs) != 1 || aws.ToString(out.Jobs[0].JobId) != id {
		t.Errorf("DescribeJobs = %+v, want only %s", out.Jobs, id)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MinTimeoutSeconds: 60})
	ctx := context.Background()
	submit := func(mod func(*batch.SubmitJobInput)) func() error {
		return func() error {
			in := &batch.SubmitJobInput{JobName: aws.String("bad"), JobQueue: aws.String("q"), JobDefinition: aws.String("child")}
			mod(in)
			_, err := h.client.SubmitJob(ctx, in)
			return err
		}
	}
	rules := make([]types.EvaluateOnExit, 6)
	for i := range rules {
		rules[i] = types.EvaluateOnExit{OnExitCode: aws.String("1"), Action: types.RetryActionExit}
	}
	tests := []struct {
		name    string
		call    func() error
		message string
	}{
		{"array size 1", submit(func(in *batch.SubmitJobInput) { in.ArrayProperties = &types.ArrayProperties{Size: aws.Int32(1)} }), "arrayProperties.size"},
		{"array size 10001", submit(func(in *batch.SubmitJobInput) { in.ArrayProperties = &types.ArrayProperties{Size: aws.Int32(10001)} }), "arrayProperties.size"},
		{"attempts 0", submit(func(in *batch.SubmitJobInput) { in.RetryStrategy = &types.RetryStrategy{Attempts: aws.Int32(0)} }), "attempts"},
		{"attempts 11", submit(func(in *batch.SubmitJobInput) { in.RetryStrategy = &types.RetryStrategy{Attempts: aws.Int32(11)} }), "attempts"},
		{"six rules", submit(func(in *batch.SubmitJobInput) {
			in.RetryStrategy = &types.RetryStrategy{Attempts: aws.Int32(2), EvaluateOnExit: rules}
		}), "at most 5"},
		{"bad exit code pattern", submit(func(in *batch.SubmitJobInput) {
			in.RetryStrategy = &types.RetryStrategy{Attempts: aws.Int32(2), EvaluateOnExit: []types.EvaluateOnExit{{OnExitCode: aws.String("1*2"), Action: types.RetryActionExit}}}
		}), "onExitCode"},
		{"timeout under 60 s", submit(func(in *batch.SubmitJobInput) {
			in.Timeout = &types.JobTimeout{AttemptDurationSeconds: aws.Int32(30)}
		}), "attemptDurationSeconds"},
		{"unknown definition", submit(func(in *batch.SubmitJobInput) { in.JobDefinition = aws.String("nope:1") }), "not found"},
		{"unknown revision", submit(func(in *batch.SubmitJobInput) { in.JobDefinition = aws.String("child:2") }), "not found"},
		{"bad job name", submit(func(in *batch.SubmitJobInput) { in.JobName = aws.String("-bad name") }), "jobName"},
		{"reserved environment", submit(func(in *batch.SubmitJobInput) {
			in.ContainerOverrides = &types.ContainerOverrides{Environment: env("AWS_BATCH_JOB_ID", "x")}
		}), "reserved"},
		{"dependsOn", submit(func(in *batch.SubmitJobInput) {
			in.DependsOn = []types.JobDependency{{JobId: aws.String("x")}}
		}), "dependsOn"},
		{"describe 101 jobs", func() error {
			_, err := h.client.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: make([]string, 101)})
			return err
		}, "at most 100"},
		{"terminate unknown job", func() error {
			_, err := h.client.TerminateJob(ctx, &batch.TerminateJobInput{JobId: aws.String("nope"), Reason: aws.String("r")})
			return err
		}, "not found"},
		{"list without queue or array", func() error {
			_, err := h.client.ListJobs(ctx, &batch.ListJobsInput{})
			return err
		}, "exactly one"},
		{"list with a bad token", func() error {
			_, err := h.client.ListJobs(ctx, &batch.ListJobsInput{JobQueue: aws.String("q"), NextToken: aws.String("garbage")})
			return err
		}, "nextToken"},
		{"operation not served", func() error {
			_, err := h.client.DescribeJobQueues(ctx, &batch.DescribeJobQueuesInput{})
			return err
		}, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ce *types.ClientException
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want *types.ClientException", err, err)
			}
			if !strings.Contains(ce.ErrorMessage(), tt.message) {
				t.Errorf("message %q, want it to mention %q", ce.ErrorMessage(), tt.message)
			}
		})
	}
}

func TestNotFoundPath(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	rec := httptest.NewRecorder()
	h.ep.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get("X-Amzn-ErrorType") != "UnknownOperationException" {
		t.Errorf("GET /: %d %v", rec.Code, rec.Header())
	}
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Type != "UnknownOperationException" || body.Message == "" {
		t.Errorf("body %s: %v", rec.Body, err)
	}
}

func TestRegisterJobDefinition(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	self, _ := os.Executable()
	out, err := h.client.RegisterJobDefinition(context.Background(), &batch.RegisterJobDefinitionInput{
		JobDefinitionName: aws.String("child"),
		Type:              types.JobDefinitionTypeContainer,
		Parameters:        map[string]string{"run": "-test.run=^$"},
		ContainerProperties: &types.ContainerProperties{
			Command:     []string{self, "Ref::run"},
			Environment: env("BATCHTEST_CHILD", "1", "BATCHTEST_OUT", h.out, "FROM_DEF", "rev2"),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(out.Revision) != 2 || !strings.HasSuffix(aws.ToString(out.JobDefinitionArn), ":job-definition/child:2") {
		t.Fatalf("RegisterJobDefinition = %+v", out)
	}
	for _, ref := range []string{"child", "child:2", aws.ToString(out.JobDefinitionArn)} {
		id := h.submit("registered", 0, &batch.SubmitJobInput{JobDefinition: aws.String(ref)})
		d := h.wait(id, 30*time.Second)
		if d.Status != types.JobStatusSucceeded || aws.ToString(d.JobDefinition) != aws.ToString(out.JobDefinitionArn) {
			t.Errorf("%s: %s on %s", ref, d.Status, aws.ToString(d.JobDefinition))
		}
		if got := d.Container.Command[1]; got != "-test.run=^$" {
			t.Errorf("Ref::run became %q", got)
		}
		if r := h.report(id, 1); r.Env["FROM_DEF"] != "rev2" {
			t.Errorf("%s ran with FROM_DEF=%q", ref, r.Env["FROM_DEF"])
		}
	}
}

func TestParseDefinitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		json string
	}{
		{"map of flat definitions", `{"psd": {"command": ["flightbatch", "worker"], "environment": [{"name": "A", "value": "1"}],
			"retryStrategy": {"attempts": 3}, "timeout": {"attemptDurationSeconds": 3600}}}`},
		{"map with containerProperties", `{"psd": {"containerProperties": {"image": "x", "command": ["flightbatch", "worker"],
			"environment": [{"name": "A", "value": "1"}]}, "retryStrategy": {"attempts": 3}, "timeout": {"attemptDurationSeconds": 3600}}}`},
		{"RegisterJobDefinition input", `{"jobDefinitionName": "psd", "type": "container", "containerProperties": {"image": "x",
			"command": ["flightbatch", "worker"], "environment": [{"name": "A", "value": "1"}]},
			"retryStrategy": {"attempts": 3}, "timeout": {"attemptDurationSeconds": 3600}}`},
		{"list of inputs", `[{"jobDefinitionName": "psd", "type": "container", "containerProperties": {
			"command": ["flightbatch", "worker"], "environment": [{"name": "A", "value": "1"}]},
			"retryStrategy": {"attempts": 3}, "timeout": {"attemptDurationSeconds": 3600}}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defs, err := ParseDefinitions([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			if len(defs) != 1 {
				t.Fatalf("%d definitions", len(defs))
			}
			d := defs[0]
			if d.Name != "psd" || !slices.Equal(d.Command, []string{"flightbatch", "worker"}) ||
				len(d.Environment) != 1 || d.Environment[0] != (KeyValuePair{"A", "1"}) ||
				aws.ToInt32(d.RetryStrategy.Attempts) != 3 || aws.ToInt32(d.Timeout.AttemptDurationSeconds) != 3600 {
				t.Errorf("parsed %+v", d)
			}
			if _, err := New(&Options{Definitions: defs}); err != nil {
				t.Errorf("New: %v", err)
			}
		})
	}
	if _, err := New(&Options{Definitions: []JobDefinition{{Name: "x", Timeout: &JobTimeout{AttemptDurationSeconds: aws.Int32(5)}}}}); err == nil {
		t.Errorf("a 5 s timeout was accepted with the default minimum of 60 s")
	}
}
