package awsbatch_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkbatch "github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/awsbatch"
	"github.com/flightbatch/flightbatch/batch/child"
	"github.com/flightbatch/flightbatch/batch/executortest"
)

// fakeAPI answers from fixed job details, to reproduce what the test
// endpoint does not: a status summary that trails the children, and
// attempts that leave no record in the store.
type fakeAPI struct {
	jobs      map[string]types.JobDetail
	submitted []*sdkbatch.SubmitJobInput
}

func (f *fakeAPI) SubmitJob(ctx context.Context, in *sdkbatch.SubmitJobInput, _ ...func(*sdkbatch.Options)) (*sdkbatch.SubmitJobOutput, error) {
	f.submitted = append(f.submitted, in)
	return &sdkbatch.SubmitJobOutput{JobId: aws.String("p")}, nil
}

func (f *fakeAPI) DescribeJobs(ctx context.Context, in *sdkbatch.DescribeJobsInput, _ ...func(*sdkbatch.Options)) (*sdkbatch.DescribeJobsOutput, error) {
	out := &sdkbatch.DescribeJobsOutput{}
	for _, id := range in.Jobs {
		if d, ok := f.jobs[id]; ok {
			out.Jobs = append(out.Jobs, d)
		}
	}
	return out, nil
}

func (f *fakeAPI) ListJobs(ctx context.Context, in *sdkbatch.ListJobsInput, _ ...func(*sdkbatch.Options)) (*sdkbatch.ListJobsOutput, error) {
	out := &sdkbatch.ListJobsOutput{}
	for id, d := range f.jobs {
		if strings.HasPrefix(id, aws.ToString(in.ArrayJobId)+":") && d.Status == in.JobStatus {
			out.JobSummaryList = append(out.JobSummaryList, types.JobSummary{
				JobId: d.JobId, Status: d.Status,
				ArrayProperties: &types.ArrayPropertiesSummary{Index: d.ArrayProperties.Index},
			})
		}
	}
	return out, nil
}

func (f *fakeAPI) TerminateJob(ctx context.Context, in *sdkbatch.TerminateJobInput, _ ...func(*sdkbatch.Options)) (*sdkbatch.TerminateJobOutput, error) {
	return &sdkbatch.TerminateJobOutput{}, nil
}

func (f *fakeAPI) child(i int, status types.JobStatus, attempts ...types.AttemptDetail) {
	f.jobs[fmt.Sprintf("p:%d", i)] = types.JobDetail{
		JobId: aws.String(fmt.Sprintf("p:%d", i)), Status: status, Attempts: attempts,
		ArrayProperties: &types.ArrayPropertiesDetail{Index: aws.Int32(int32(i))},
	}
}

func stopped(code int32, reason string) types.AttemptDetail {
	return types.AttemptDetail{
		StartedAt: aws.Int64(1), StoppedAt: aws.Int64(2), StatusReason: aws.String(reason),
		Container: &types.AttemptContainerDetail{ExitCode: aws.Int32(code), Reason: aws.String("OutOfMemoryError: Container killed due to memory usage")},
	}
}

func TestSummaryTrailsChildren(t *testing.T) {
	st := newStore(t)
	f := &fakeAPI{jobs: map[string]types.JobDetail{}}
	e := newExecutor(t, f, st, nil)
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 2)
	handle, err := e.Start(context.Background(), m, []int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	// The array job has ended but its summary still says every child waits.
	f.jobs["p"] = types.JobDetail{JobId: aws.String("p"), Status: types.JobStatusFailed,
		ArrayProperties: &types.ArrayPropertiesDetail{Size: aws.Int32(3), StatusSummary: map[string]int32{"RUNNABLE": 3}}}
	f.child(0, types.JobStatusSucceeded, stopped(0, "Essential container in task exited"))
	f.child(1, types.JobStatusFailed, stopped(137, "Essential container in task exited"), stopped(137, "Essential container in task exited"))
	f.child(2, types.JobStatusSucceeded, stopped(137, "Essential container in task exited"), stopped(0, "Essential container in task exited"))
	p, err := e.Poll(context.Background(), handle)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Done || len(p.Children) != 3 {
		t.Fatalf("progress %+v, want done with 3 children", p)
	}
	want := []struct {
		state    batch.ShardState
		attempts int
		errors   int
	}{{batch.ShardSucceeded, 1, 0}, {batch.ShardFailed, 2, 2}, {batch.ShardSucceeded, 2, 1}}
	for i, w := range want {
		c := p.Children[i]
		if c.State != w.state || c.Attempts != w.attempts || len(c.Errors) != w.errors {
			t.Errorf("shard %d: %s, %d attempts, errors %+v; want %s, %d attempts, %d errors", i, c.State, c.Attempts, c.Errors, w.state, w.attempts, w.errors)
		}
	}
	// No worker recorded these failures: AWS Batch's reasons stand in.
	if msg := p.Children[1].Errors[0].Error; !strings.Contains(msg, "OutOfMemoryError") || !strings.Contains(msg, "exit code 137") {
		t.Errorf("error %q should carry AWS Batch's reason and exit code", msg)
	}
}

func TestTerminatedChildIsCancelled(t *testing.T) {
	st := newStore(t)
	f := &fakeAPI{jobs: map[string]types.JobDetail{}}
	// A restarted executor: it knows nothing of the job but its handle.
	e := newExecutor(t, f, st, nil)
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	f.jobs["p"] = types.JobDetail{JobId: aws.String("p"), Status: types.JobStatusFailed, StatusReason: aws.String("flightbatch: cancelled on request (job x)"),
		ArrayProperties: &types.ArrayPropertiesDetail{Size: aws.Int32(2), StatusSummary: map[string]int32{"FAILED": 2}}}
	f.child(0, types.JobStatusFailed, stopped(143, "flightbatch: cancelled on request (job x)"))
	f.child(1, types.JobStatusFailed)
	d := f.jobs["p:0"]
	d.IsTerminated = aws.Bool(true)
	d.Container = &types.ContainerDetail{Environment: []types.KeyValuePair{
		{Name: aws.String(child.EnvJobID), Value: aws.String(m.JobID)},
		{Name: aws.String(child.EnvShards), Value: aws.String("1-2")},
	}}
	f.jobs["p:0"] = d
	p, err := e.Poll(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Children) != 2 || p.Children[0].Shard != 1 || p.Children[1].Shard != 2 {
		t.Fatalf("children %+v, want shards 1 and 2", p.Children)
	}
	for _, c := range p.Children {
		if c.State != batch.ShardCancelled || len(c.Errors) != 0 {
			t.Errorf("shard %d: %s with errors %+v, want CANCELLED without", c.Shard, c.State, c.Errors)
		}
	}
}

// TestFunctionDefinition: a function with an image runs its children in that
// job definition; other functions use the executor's default.
func TestFunctionDefinition(t *testing.T) {
	st := newStore(t)
	f := &fakeAPI{jobs: map[string]types.JobDetail{}}
	images := map[string]string{"peaks": "peaks-image:3"}
	e := newExecutor(t, f, st, &awsbatch.Options{Definition: func(fn string) string { return images[fn] }})
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	for _, tc := range []struct{ function, want string }{{"psd", "worker"}, {"peaks", "peaks-image:3"}} {
		m.Function = tc.function
		if _, err := e.Start(context.Background(), m, []int{0, 1}); err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(f.submitted[len(f.submitted)-1].JobDefinition); got != tc.want {
			t.Errorf("function %s ran in job definition %q, want %q", tc.function, got, tc.want)
		}
	}
}

// A restarted executor knows a job it stopped for waiting RUNNABLE too long
// by the reason it gave TerminateJob: its children failed, they were not
// cancelled, and their error says why.
func TestStoppedForWaitingAfterRestart(t *testing.T) {
	st := newStore(t)
	f := &fakeAPI{jobs: map[string]types.JobDetail{}}
	e := newExecutor(t, f, st, &awsbatch.Options{RunnableTimeout: time.Minute})
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	const why = "flightbatch: stopped: AWS Batch job p:1 waited RUNNABLE for 1m0s, longer than the runnable timeout"
	f.jobs["p"] = types.JobDetail{JobId: aws.String("p"), Status: types.JobStatusFailed, StatusReason: aws.String(why),
		ArrayProperties: &types.ArrayPropertiesDetail{Size: aws.Int32(2), StatusSummary: map[string]int32{"FAILED": 2}}}
	f.child(0, types.JobStatusFailed)
	f.child(1, types.JobStatusFailed)
	for _, id := range []string{"p:0", "p:1"} {
		d := f.jobs[id]
		d.IsTerminated, d.StatusReason = aws.Bool(true), aws.String(why)
		f.jobs[id] = d
	}
	d := f.jobs["p:0"]
	d.Container = &types.ContainerDetail{Environment: []types.KeyValuePair{
		{Name: aws.String(child.EnvJobID), Value: aws.String(m.JobID)},
		{Name: aws.String(child.EnvShards), Value: aws.String("0-1")},
	}}
	f.jobs["p:0"] = d
	p, err := e.Poll(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Done || len(p.Children) != 2 {
		t.Fatalf("progress %+v, want done with two children", p)
	}
	for _, c := range p.Children {
		if c.State != batch.ShardFailed || len(c.Errors) != 1 || c.Errors[0].Error != why {
			t.Errorf("shard %d: %s with errors %+v, want FAILED saying %q", c.Shard, c.State, c.Errors, why)
		}
	}
}
