package awsbatch_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkbatch "github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/awsbatch"
	"github.com/flightbatch/flightbatch/batch/executortest"
	"github.com/flightbatch/flightbatch/internal/batchtest"
)

// startAsManager starts shards of m as batch.Manager does: a Start that
// fails is tried again.
func startAsManager(t *testing.T, e batch.Executor, m *batch.Manifest, shards []int) string {
	t.Helper()
	var err error
	for range 3 {
		var handle string
		if handle, err = e.Start(context.Background(), m, shards); err == nil {
			return handle
		}
		t.Logf("Start: %v (tried again)", err)
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("Start: %v", err)
	return ""
}

// jobsNamed lists the AWS Batch jobs of the queue named after job m.
func jobsNamed(t *testing.T, client *sdkbatch.Client, m *batch.Manifest) []types.JobSummary {
	t.Helper()
	out, err := client.ListJobs(context.Background(), &sdkbatch.ListJobsInput{JobQueue: aws.String("queue-1"),
		Filters: []types.KeyValuesPair{{Name: aws.String("JOB_NAME"), Values: []string{"flightbatch-" + m.JobID}}}})
	if err != nil {
		t.Fatal(err)
	}
	return out.JobSummaryList
}

// A SubmitJob whose reply is lost after AWS Batch took the job (and that
// AWS Batch shows only a while later) is found, not submitted again: the
// array job runs once.
func TestLostSubmitReply(t *testing.T) {
	st := newStore(t)
	client, ep := endpoint(t, "")
	ep.SetBehaviours(batchtest.Behaviours{DropSubmitResponse: 1, VisibilityDelay: 1500 * time.Millisecond})
	e := newExecutor(t, client, st, &awsbatch.Options{SubmitConfirm: 10 * time.Second})
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	handle := startAsManager(t, e, m, []int{0, 1, 2})
	time.Sleep(1500 * time.Millisecond) // every job submitted is visible now
	jobs := jobsNamed(t, client, m)
	if len(jobs) != 1 {
		t.Fatalf("%d AWS Batch jobs for one start, want 1: %+v", len(jobs), jobs)
	}
	if id := aws.ToString(jobs[0].JobId); id != handle {
		t.Errorf("handle %s, but the job submitted is %s", handle, id)
	}
	for _, c := range waitDone(t, e, handle).Children {
		if c.State != batch.ShardSucceeded || c.Attempts != 1 {
			t.Errorf("shard %d: %s after %d attempts, want SUCCEEDED after 1", c.Shard, c.State, c.Attempts)
		}
	}
}

// A server that stopped after SubmitJob and before it kept the handle starts
// the job again: the new executor finds the AWS Batch job and follows it.
// A start of other shards of the job is a new AWS Batch job.
func TestStartAgainFindsJob(t *testing.T) {
	st := newStore(t)
	client, ep := endpoint(t, "*:sleep=2")
	first := newExecutor(t, client, st, nil)
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: first}, 1)
	handle := startAsManager(t, first, m, []int{0, 1})
	second := newExecutor(t, client, st, nil)
	if again := startAsManager(t, second, m, []int{0, 1}); again != handle {
		t.Errorf("the start made again submitted %s, want the job %s followed", again, handle)
	}
	if jobs := jobsNamed(t, client, m); len(jobs) != 1 {
		t.Errorf("%d AWS Batch jobs for one start made twice, want 1", len(jobs))
	}
	for _, c := range waitDone(t, second, handle).Children {
		if c.State != batch.ShardSucceeded || c.Attempts != 1 {
			t.Errorf("shard %d: %s after %d attempts, want SUCCEEDED after 1", c.Shard, c.State, c.Attempts)
		}
	}
	// Throttled SubmitJobs were refused: they are sent again at once.
	ep.SetBehaviours(batchtest.Behaviours{Throttle: map[string]int{"SubmitJob": 2}})
	other, err := second.Start(context.Background(), m, []int{2})
	if err != nil {
		t.Fatalf("Start through two throttled SubmitJobs: %v", err)
	}
	if other == handle {
		t.Fatal("a start of other shards followed the first start's job")
	}
	if jobs := jobsNamed(t, client, m); len(jobs) != 2 {
		t.Errorf("%d AWS Batch jobs for two starts, want 2", len(jobs))
	}
	if p := waitDone(t, second, other); len(p.Children) != 1 || p.Children[0].Shard != 2 || p.Children[0].State != batch.ShardSucceeded {
		t.Errorf("start of shard 2: %+v", p.Children)
	}
}
