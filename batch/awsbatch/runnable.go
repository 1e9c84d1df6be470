package awsbatch

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbatch "github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
)

// stuckReason starts the reason TerminateJob is given for a job stopped
// because a child waited RUNNABLE too long; a restarted executor knows such a
// job by it.
const stuckReason = "flightbatch: stopped: "

// waiting reports whether a job in status s waits for a place to run.
func waiting(s types.JobStatus) bool {
	return s == types.JobStatusSubmitted || s == types.JobStatusPending || s == types.JobStatusRunnable
}

// waitingSince is when AWS Batch's job d began waiting: its creation, or the
// end of its last attempt.
func waitingSince(d *types.JobDetail) time.Time {
	at := aws.ToInt64(d.CreatedAt)
	for _, a := range d.Attempts {
		at = max(at, aws.ToInt64(a.StoppedAt))
	}
	return time.UnixMilli(at)
}

// checkRunnable stops the job of handle when one of its children has waited
// longer than Options.RunnableTimeout, failing its unfinished children with
// why. The children this executor believes waiting that long are described
// first: AWS Batch's own times and statusReason decide. r.mu is held.
func (e *Executor) checkRunnable(ctx context.Context, handle string, r *run, parent *types.JobDetail) error {
	timeout := e.opts.RunnableTimeout
	created := time.UnixMilli(aws.ToInt64(parent.CreatedAt))
	var stuck []*types.JobDetail
	if !r.array {
		if waiting(parent.Status) && time.Since(waitingSince(parent)) >= timeout {
			stuck = append(stuck, parent)
		}
	} else {
		var ids []string
		for i := range r.kids {
			k := &r.kids[i]
			since := k.waiting
			if since.IsZero() {
				since = created
			}
			if !k.final && coarse(k.status) == "WAITING" && time.Since(since) >= timeout && len(ids) < describeBatch {
				ids = append(ids, fmt.Sprintf("%s:%d", handle, i))
			}
		}
		if len(ids) == 0 {
			return nil
		}
		out, err := e.client.DescribeJobs(ctx, &awsbatch.DescribeJobsInput{Jobs: ids})
		if err != nil {
			return fmt.Errorf("awsbatch: describe waiting children of %s: %w", handle, err)
		}
		for i := range out.Jobs {
			d := &out.Jobs[i]
			if d.ArrayProperties == nil || d.ArrayProperties.Index == nil {
				continue
			}
			i := int(*d.ArrayProperties.Index)
			if i < 0 || i >= len(r.kids) {
				continue
			}
			k := &r.kids[i]
			if !waiting(d.Status) {
				k.waiting = time.Now() // starting or running: polls see it next
				continue
			}
			k.waiting = waitingSince(d)
			if time.Since(k.waiting) >= timeout {
				stuck = append(stuck, d)
			}
		}
	}
	if len(stuck) == 0 {
		return nil
	}
	d := stuck[0]
	status := aws.ToString(d.StatusReason)
	msg := fmt.Sprintf("AWS Batch job %s waited %s for %s, longer than the runnable timeout (--batch-runnable-timeout %s): %s",
		aws.ToString(d.JobId), d.Status, time.Since(waitingSince(d)).Round(time.Second), timeout, whyWaiting(status, e.queue))
	if status != "" {
		msg += fmt.Sprintf(" (AWS Batch: %q)", clip(status, 300))
	}
	if len(stuck) > 1 {
		msg += fmt.Sprintf("; %d more children waited as long", len(stuck)-1)
	}
	r.stuck, r.stuckAt = stuckReason+msg, time.Now().UTC()
	e.log.Warn("children waited too long; stopping the job", "job", r.jobID, "batch_job", handle, "why", msg)
	e.mu.Lock()
	e.terminate[handle] = clip(r.stuck, 1000)
	e.mu.Unlock()
	e.resendTerminate(ctx, handle) // and at every poll until AWS Batch takes it
	return nil
}

// whyWaiting says what a RUNNABLE job's statusReason means and what to change.
func whyWaiting(status, queue string) string {
	switch {
	case strings.HasPrefix(status, "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"):
		return "it asks for more vCPUs, memory or GPUs than any instance of the queue's compute environments has; lower --batch-memory or the job definition's resources, or allow larger instance types"
	case strings.HasPrefix(status, "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"):
		return "it asks for more vCPUs than the maxvCpus of the queue's compute environments; raise maxvCpus or lower the job definition's vCPUs"
	case strings.HasPrefix(status, "CAPACITY:"):
		return "AWS Batch could not get instances of the types the compute environment allows (no capacity); allow more instance types or subnets, or submit again later"
	case strings.HasPrefix(status, "MISCONFIGURATION:"), strings.HasPrefix(status, "ACTION_REQUIRED"):
		return "the queue's compute environments cannot run it as configured; fix what AWS Batch names"
	}
	return fmt.Sprintf("no compute environment of queue %s ran it: no capacity, a request larger than the compute environment can hold, or a compute environment disabled, invalid or scaled to zero", queue)
}

// clip shortens s to at most n bytes, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
