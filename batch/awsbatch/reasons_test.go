package awsbatch_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkbatch "github.com/aws/aws-sdk-go-v2/service/batch"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/awsbatch"
	"github.com/flightbatch/flightbatch/batch/executortest"
	"github.com/flightbatch/flightbatch/internal/batchtest"
)

// Failures the worker cannot record (its host gone, its image not pulled, its
// container killed out of memory) are retried or not as their cause says,
// and their error says what happened and what to change.
func TestFailureReasons(t *testing.T) {
	for _, tc := range []struct {
		kind     batchtest.FailureKind
		attempts int // failing attempts of child 1; 0: every one
		state    batch.ShardState
		tries    int
		want     []string // in the first attempt's error
	}{
		// A host that went away is retried: the next attempt succeeds.
		{batchtest.HostTerminated, 1, batch.ShardSucceeded, 2, []string{"Host EC2", "Spot", "retries"}},
		// Out of memory it would be again: not retried, and the error says
		// how to give it more.
		{batchtest.OutOfMemory, 0, batch.ShardFailed, 1, []string{"OutOfMemoryError: Container killed due to memory usage", "exit code 137", "--batch-memory", "not retried"}},
		{batchtest.CannotPullContainer, 0, batch.ShardFailed, 1, []string{"CannotPullContainerError", "image", "not retried"}},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			client, ep := endpoint(t, "")
			ep.SetBehaviours(batchtest.Behaviours{Fail: []batchtest.Failure{{Kind: tc.kind, Index: 1, Attempts: tc.attempts}}})
			e := newExecutor(t, client, st, &awsbatch.Options{MemoryMiB: 3072})
			m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 3)
			handle, err := e.Start(context.Background(), m, []int{0, 1})
			if err != nil {
				t.Fatal(err)
			}
			p := waitDone(t, e, handle)
			if c := p.Children[0]; c.State != batch.ShardSucceeded || c.Attempts != 1 {
				t.Errorf("shard 0: %s after %d attempts, want SUCCEEDED after 1", c.State, c.Attempts)
			}
			c := p.Children[1]
			if c.State != tc.state || c.Attempts != tc.tries {
				t.Errorf("shard 1: %s after %d attempts, want %s after %d", c.State, c.Attempts, tc.state, tc.tries)
			}
			if len(c.Errors) != 1 || c.Errors[0].Attempt != 1 {
				t.Fatalf("shard 1: errors %+v, want the first attempt's alone", c.Errors)
			}
			for _, w := range tc.want {
				if !strings.Contains(c.Errors[0].Error, w) {
					t.Errorf("error %q does not say %q", c.Errors[0].Error, w)
				}
			}
			// --batch-memory reaches every child.
			out, err := client.DescribeJobs(context.Background(), &sdkbatch.DescribeJobsInput{Jobs: []string{handle + ":0"}})
			if err != nil || len(out.Jobs) != 1 || out.Jobs[0].Container == nil {
				t.Fatalf("DescribeJobs of child 0: %v", err)
			}
			rr := out.Jobs[0].Container.ResourceRequirements
			if len(rr) != 1 || rr[0].Type != "MEMORY" || aws.ToString(rr[0].Value) != "3072" {
				t.Errorf("resource requirements %+v, want MEMORY 3072", rr)
			}
		})
	}
}
