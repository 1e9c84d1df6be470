package batchtest

import (
	"context"
	"errors"
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
