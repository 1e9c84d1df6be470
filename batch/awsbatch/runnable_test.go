package awsbatch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	sdkbatch "github.com/aws/aws-sdk-go-v2/service/batch"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/awsbatch"
	"github.com/flightbatch/flightbatch/batch/executortest"
	"github.com/flightbatch/flightbatch/internal/batchtest"
)

// The statusReason AWS Batch gives a job no compute environment of its queue
// can hold.
const tooLarge = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher than that can be met by the CE(s) attached to the job queue."

// Children that stay RUNNABLE longer than the runnable timeout fail, with an
// error that says why in AWS Batch's words and what to change, and the AWS
// Batch job is stopped rather than left in the queue. An array job and a
// plain one (a single shard).
func TestRunnableTimeout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shards []int
	}{{"array", []int{0, 1, 2}}, {"plain", []int{1}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			client, ep := endpoint(t, "")
			ep.SetBehaviours(batchtest.Behaviours{StuckRunnable: tooLarge})
			e := newExecutor(t, client, st, &awsbatch.Options{RunnableTimeout: 2 * time.Second})
			m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 3)
			handle, err := e.Start(context.Background(), m, tc.shards)
			if err != nil {
				t.Fatal(err)
			}
			p := pollUntil(t, e, handle, 30*time.Second, func(p batch.Progress) bool { return p.Done })
			if len(p.Children) != len(tc.shards) {
				t.Fatalf("children %+v, want %d", p.Children, len(tc.shards))
			}
			for _, c := range p.Children {
				if c.State != batch.ShardFailed || len(c.Errors) != 1 {
					t.Errorf("shard %d: %s with errors %+v, want FAILED with one error", c.Shard, c.State, c.Errors)
					continue
				}
				for _, w := range []string{"waited RUNNABLE", "--batch-runnable-timeout", "larger instance types", tooLarge} {
					if !strings.Contains(c.Errors[0].Error, w) {
						t.Errorf("shard %d: error %q does not say %q", c.Shard, c.Errors[0].Error, w)
					}
				}
			}
			out, err := client.DescribeJobs(context.Background(), &sdkbatch.DescribeJobsInput{Jobs: []string{handle}})
			if err != nil || len(out.Jobs) != 1 || out.Jobs[0].Status != "FAILED" {
				t.Fatalf("the AWS Batch job after the timeout: %v %+v, want it FAILED", err, out)
			}
			// Unblocking the queue now runs nothing: the job was stopped.
			ep.SetBehaviours(batchtest.Behaviours{})
			time.Sleep(time.Second)
			if got := parts(t, st, m); len(got) != 0 {
				t.Errorf("parts of shards %v were written after the job was stopped", got)
			}
		})
	}
}

// A child that waits, then runs within the timeout, is not stopped.
func TestRunnableWithinTimeout(t *testing.T) {
	st := newStore(t)
	client, ep := endpoint(t, "")
	ep.SetBehaviours(batchtest.Behaviours{StuckRunnable: "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested for instance type [c5.large]"})
	e := newExecutor(t, client, st, &awsbatch.Options{RunnableTimeout: 20 * time.Second})
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	handle, err := e.Start(context.Background(), m, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	pollUntil(t, e, handle, 5*time.Second, func(p batch.Progress) bool { return len(p.Children) == 2 })
	time.Sleep(time.Second)
	ep.SetBehaviours(batchtest.Behaviours{})
	for _, c := range waitDone(t, e, handle).Children {
		if c.State != batch.ShardSucceeded {
			t.Errorf("shard %d: %s %+v, want SUCCEEDED", c.Shard, c.State, c.Errors)
		}
	}
}
