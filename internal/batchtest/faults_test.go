package batchtest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
	"github.com/aws/smithy-go"
)

func TestVisibilityDelay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.ep.SetBehaviours(Behaviours{VisibilityDelay: time.Hour})
	id := h.submit("hidden", 2, nil)
	for _, ids := range [][]string{{id}, {id + ":0"}} {
		out, err := h.client.DescribeJobs(context.Background(), &batch.DescribeJobsInput{Jobs: ids})
		if err != nil || len(out.Jobs) != 0 {
			t.Errorf("DescribeJobs %v right after SubmitJob: %v, %d jobs, want none", ids, err, len(out.Jobs))
		}
	}
	list, err := h.client.ListJobs(context.Background(), &batch.ListJobsInput{JobQueue: aws.String("queue-1"), JobStatus: "SUCCEEDED"})
	if err != nil || len(list.JobSummaryList) != 0 {
		t.Errorf("ListJobs right after SubmitJob: %v, %+v, want none", err, list)
	}
	h.ep.SetBehaviours(Behaviours{})
	if d := h.wait(id, 30*time.Second); d.Status != "SUCCEEDED" {
		t.Errorf("status %s, want SUCCEEDED (the job ran while hidden)", d.Status)
	}
}

func TestThrottle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.ep.SetBehaviours(Behaviours{Throttle: map[string]int{"DescribeJobs": 2}})
	noRetry := func(o *batch.Options) { o.RetryMaxAttempts = 1 }
	for i := range 3 {
		_, err := h.client.DescribeJobs(context.Background(), &batch.DescribeJobsInput{Jobs: []string{"x"}}, noRetry)
		var ae smithy.APIError
		throttled := errors.As(err, &ae) && ae.ErrorCode() == "TooManyRequestsException"
		if want := i < 2; throttled != want {
			t.Errorf("call %d: %v, throttled %v, want %v", i+1, err, throttled, want)
		}
	}
	// "*" throttles any operation; the SDK's own retries get through.
	h.ep.SetBehaviours(Behaviours{Throttle: map[string]int{"*": 1}})
	if _, err := h.client.ListJobs(context.Background(), &batch.ListJobsInput{JobQueue: aws.String("q")}); err != nil {
		t.Errorf("ListJobs after one 429, with the SDK's retries: %v", err)
	}
}

func TestSummaryLag(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{MaxRunning: 1}) // one child at a time: the parent outlives the first
	h.ep.SetBehaviours(Behaviours{SummaryLag: time.Hour})
	id := h.submit("lagging", 3, &batch.SubmitJobInput{
		ContainerOverrides: &types.ContainerOverrides{Environment: env("BATCHTEST_SLEEP", "2s")},
	})
	first := h.describe(id).ArrayProperties.StatusSummary
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := h.client.ListJobs(context.Background(), &batch.ListJobsInput{ArrayJobId: aws.String(id), JobStatus: "SUCCEEDED"})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.JobSummaryList) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no child succeeded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := h.describe(id); d.Status != "SUCCEEDED" {
		if got := d.ArrayProperties.StatusSummary; got["SUCCEEDED"] != first["SUCCEEDED"] {
			t.Errorf("summary %v moved with the children, want it held at %v", got, first)
		}
	}
	d := h.wait(id, 30*time.Second)
	if got := d.ArrayProperties.StatusSummary; got["SUCCEEDED"] != 3 {
		t.Errorf("final summary %v, want 3 SUCCEEDED", got)
	}
}

func TestDropSubmitResponse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.ep.SetBehaviours(Behaviours{DropSubmitResponse: 1})
	noRetry := func(o *batch.Options) { o.RetryMaxAttempts = 1 }
	in := &batch.SubmitJobInput{JobName: aws.String("Lost-Reply"), JobQueue: aws.String("queue-1"), JobDefinition: aws.String("child")}
	if out, err := h.client.SubmitJob(context.Background(), in, noRetry); err == nil {
		t.Fatalf("SubmitJob with its reply dropped returned %+v, want an error", out)
	}
	// The job was taken: ListJobs finds it by name, without regard to case.
	list, err := h.client.ListJobs(context.Background(), &batch.ListJobsInput{JobQueue: aws.String("queue-1"),
		Filters: []types.KeyValuesPair{{Name: aws.String("JOB_NAME"), Values: []string{"lost-reply"}}}})
	if err != nil || len(list.JobSummaryList) != 1 {
		t.Fatalf("ListJobs by name after a lost reply: %v, %+v; want the one job", err, list)
	}
	if d := h.wait(aws.ToString(list.JobSummaryList[0].JobId), 30*time.Second); d.Status != "SUCCEEDED" {
		t.Errorf("status %s, want SUCCEEDED", d.Status)
	}
	// Only the next reply was dropped.
	h.submit("kept", 0, nil)
}

func TestStuckRunnable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	const reason = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement is higher than that can be met by the CE(s) attached to the job queue."
	h.ep.SetBehaviours(Behaviours{StuckRunnable: reason})
	id := h.submit("stuck", 2, nil)
	time.Sleep(500 * time.Millisecond)
	d := h.describe(id + ":1")
	if d.Status != "RUNNABLE" || aws.ToString(d.StatusReason) != reason || len(d.Attempts) != 0 {
		t.Fatalf("child: %s %q with %d attempts, want RUNNABLE %q and none", d.Status, aws.ToString(d.StatusReason), len(d.Attempts), reason)
	}
	list, err := h.client.ListJobs(context.Background(), &batch.ListJobsInput{ArrayJobId: aws.String(id), JobStatus: "RUNNABLE"})
	if err != nil || len(list.JobSummaryList) != 2 || aws.ToString(list.JobSummaryList[0].StatusReason) != reason {
		t.Fatalf("ListJobs RUNNABLE: %v, %+v; want both children with the reason", err, list)
	}
	h.ep.SetBehaviours(Behaviours{})
	if d := h.wait(id, 30*time.Second); d.Status != "SUCCEEDED" {
		t.Errorf("once unblocked: %s, want SUCCEEDED", d.Status)
	}
}

func TestFail(t *testing.T) {
	t.Parallel()
	retry := &types.RetryStrategy{Attempts: aws.Int32(2)}
	for _, tc := range []struct {
		kind               FailureKind
		status             string
		statusReason       string
		reason             string
		exitCode           *int32
		attempts, failures int
	}{
		// Failing the first attempt only: the second runs the process.
		{HostTerminated, "SUCCEEDED", "Host EC2 (instance ", "", nil, 1, 1},
		{OutOfMemory, "SUCCEEDED", "Essential container in task exited", "OutOfMemoryError: Container killed due to memory usage", aws.Int32(137), 1, 1},
		{CannotPullContainer, "FAILED", "Task failed to start", "CannotPullContainerError: ", nil, 0, 2},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{})
			h.ep.SetBehaviours(Behaviours{Fail: []Failure{{Kind: tc.kind, Index: 1, Attempts: tc.attempts}}})
			id := h.submit("failing", 2, &batch.SubmitJobInput{RetryStrategy: retry})
			h.wait(id, 30*time.Second)
			if d := h.describe(id + ":0"); d.Status != "SUCCEEDED" || len(d.Attempts) != 1 {
				t.Errorf("child 0: %s after %d attempts, want SUCCEEDED after 1 (not selected)", d.Status, len(d.Attempts))
			}
			d := h.describe(id + ":1")
			if string(d.Status) != tc.status || len(d.Attempts) != 2 {
				t.Fatalf("child 1: %s after %d attempts, want %s after 2", d.Status, len(d.Attempts), tc.status)
			}
			for i, a := range d.Attempts[:tc.failures] {
				c := a.Container
				if !strings.HasPrefix(aws.ToString(a.StatusReason), tc.statusReason) || !strings.HasPrefix(aws.ToString(c.Reason), tc.reason) ||
					(c.ExitCode == nil) != (tc.exitCode == nil) || (c.ExitCode != nil && *c.ExitCode != *tc.exitCode) {
					t.Errorf("attempt %d: status reason %q, reason %q, exit code %v; want %q..., %q..., %v",
						i+1, aws.ToString(a.StatusReason), aws.ToString(c.Reason), c.ExitCode, tc.statusReason, tc.reason, tc.exitCode)
				}
			}
		})
	}
}

func TestParseFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec string
		want []Failure
		bad  bool
	}{
		{"", nil, false},
		{"out-of-memory:1", []Failure{{Kind: OutOfMemory, Index: 1}}, false},
		{"host-terminated:*:1, cannot-pull-container:0", []Failure{{Kind: HostTerminated, Index: AllChildren, Attempts: 1}, {Kind: CannotPullContainer, Index: 0}}, false},
		{"oom:1", nil, true},
		{"out-of-memory", nil, true},
		{"out-of-memory:-1", nil, true},
		{"out-of-memory:1:0", nil, true},
		{"out-of-memory:1:2:3", nil, true},
	} {
		got, err := ParseFailures(tc.spec)
		if (err != nil) != tc.bad || (!tc.bad && !slices.Equal(got, tc.want)) {
			t.Errorf("ParseFailures(%q) = %+v, %v; want %+v, error %v", tc.spec, got, err, tc.want, tc.bad)
		}
	}
}
