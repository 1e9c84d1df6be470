package batchtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flightbatch/flightbatch/internal/procgroup"
)

// dispatchLocked starts queued jobs while there are free slots. e.mu must be
// held.
func (e *Endpoint) dispatchLocked() {
	for !e.closed && e.behave.StuckRunnable == "" && e.running < e.opts.MaxRunning && len(e.queue) > 0 {
		j := e.queue[0]
		e.queue[0] = nil
		e.queue = e.queue[1:]
		if j.status != StatusRunnable {
			continue // cancelled or terminated while queued
		}
		n := len(j.attempts) + 1
		a := &attempt{logStream: fmt.Sprintf("%s/default/%s/attempt-%d", j.spec.definition.Name, strings.ReplaceAll(j.id, ":", "_"), n)}
		j.attempts = append(j.attempts, a)
		ctx, stop := context.WithCancelCause(context.Background())
		j.stop = stop
		e.running++
		e.setStatus(j, StatusStarting)
		e.wg.Add(1)
		if kind := e.failure(j, n); kind != "" {
			go e.failAttempt(ctx, j, a, kind)
			continue
		}
		go e.runAttempt(ctx, j, a, n, e.attemptEnv(j, n))
	}
}

// attemptEnv is the environment of attempt n: PATH and the passed-on
// variables of this process, the definition's and the overrides' variables,
// and the variables AWS Batch sets. e.mu must be held.
func (e *Endpoint) attemptEnv(j *job, n int) []string {
	var env []string
	for _, name := range append([]string{"PATH"}, e.opts.PassEnv...) {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	for _, kv := range j.spec.env {
		env = append(env, kv.Name+"="+kv.Value)
	}
	env = append(env,
		"AWS_BATCH_JOB_ID="+j.id,
		"AWS_BATCH_JOB_ATTEMPT="+strconv.Itoa(n),
		"AWS_BATCH_JQ_NAME="+j.spec.queueName,
		"AWS_BATCH_CE_NAME="+e.opts.ComputeEnvironment,
	)
	if j.parent != nil {
		env = append(env,
			"AWS_BATCH_JOB_ARRAY_INDEX="+strconv.Itoa(int(j.index)),
			"AWS_BATCH_JOB_ARRAY_SIZE="+strconv.Itoa(int(j.parent.size)),
		)
	}
	return env
}

// output opens where an attempt's stdout and stderr go.
func (e *Endpoint) output(logStream string) (io.Writer, func(), error) {
	if e.opts.LogDir == "" {
		return e.opts.ChildOutput, func() {}, nil
	}
	path := filepath.Join(e.opts.LogDir, filepath.FromSlash(logStream)+".log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { _ = f.Close() }, nil
}

// runAttempt runs one attempt of j as a process and records its outcome.
func (e *Endpoint) runAttempt(ctx context.Context, j *job, a *attempt, n int, env []string) {
	defer e.wg.Done()
	// The attempt's timeout counts from its start, as on AWS Batch: starting
	// a process on a loaded machine can take a while.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	argv := j.spec.command
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	// The attempt leads a process group of its own, so that stopping it
	// also stops whatever it started.
	procgroup.Isolate(cmd, false)
	cmd.Cancel = func() error {
		var sc *stopCause
		kill := errors.As(context.Cause(ctx), &sc) && sc.kill
		return procgroup.Stop(cmd.Process, kill)
	}
	cmd.WaitDelay = e.opts.TerminateGrace

	out, closeOut, err := e.output(a.logStream)
	if err == nil {
		cmd.Stdout, cmd.Stderr = out, out
		err = cmd.Start()
	}
	e.mu.Lock()
	a.startedAt = nowMillis()
	if t := j.spec.timeout; err == nil && t != nil && t.AttemptDurationSeconds != nil {
		timer := time.AfterFunc(time.Duration(*t.AttemptDurationSeconds)*time.Second, func() { stop(&stopCause{reason: reasonTimeout}) })
		defer timer.Stop()
	}
	if err == nil {
		j.startedAt = a.startedAt
		e.setStatus(j, StatusRunning)
		e.log.Info("attempt started", "job_id", j.id, "attempt", n, "pid", cmd.Process.Pid)
	}
	e.mu.Unlock()

	var code *int32
	if err == nil {
		_ = cmd.Wait()
		// Whatever the attempt left behind in its process group goes too.
		_ = procgroup.Stop(cmd.Process, true)
		c := exitCode(cmd.ProcessState)
		code = &c
	}
	if closeOut != nil {
		closeOut()
	}
	cause := context.Cause(ctx)

	e.mu.Lock()
	defer e.mu.Unlock()
	e.running--
	j.stop(nil)
	j.stop = nil
	e.finishAttempt(j, a, code, err, cause)
	e.dispatchLocked()
}

// failAttempt ends an attempt as kind says, without running a process,
// after a moment (or at once when the attempt is stopped).
func (e *Endpoint) failAttempt(ctx context.Context, j *job, a *attempt, kind FailureKind) {
	defer e.wg.Done()
	e.mu.Lock()
	a.startedAt = nowMillis()
	if kind != CannotPullContainer {
		j.startedAt = a.startedAt
		e.setStatus(j, StatusRunning)
	}
	e.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(200 * time.Millisecond):
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running--
	cause := context.Cause(ctx)
	j.stop(nil)
	j.stop = nil
	if cause != nil {
		e.finishAttempt(j, a, nil, nil, cause)
		e.dispatchLocked()
		return
	}
	a.stoppedAt = nowMillis()
	switch kind {
	case HostTerminated:
		a.statusReason = "Host EC2 (instance i-0b7e5c1d2a3f4e5f6) terminated."
	case CannotPullContainer:
		a.reason = "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref " + j.spec.definition.Name + ":latest: not found"
		a.statusReason = reasonNoStart
	case OutOfMemory:
		a.exitCode = ptr(int32(137))
		a.reason = "OutOfMemoryError: Container killed due to memory usage"
		a.statusReason = reasonExited
	}
	e.log.Info("attempt failed", "job_id", j.id, "attempt", len(j.attempts), "failure", string(kind))
	e.settle(j, a, false)
	e.dispatchLocked()
}

// finishAttempt records an attempt's outcome and decides the job's next
// status. e.mu must be held.
func (e *Endpoint) finishAttempt(j *job, a *attempt, code *int32, startErr, cause error) {
	a.stoppedAt = nowMillis()
	a.exitCode = code
	var sc *stopCause
	switch {
	case errors.As(cause, &sc):
		a.statusReason = sc.reason
		j.terminated = j.terminated || sc.terminated
	case startErr != nil:
		a.reason = "CannotStartContainerError: " + startErr.Error()
		a.statusReason = reasonNoStart
	default:
		a.statusReason = reasonExited
	}
	attrs := []any{"job_id", j.id, "attempt", len(j.attempts), "status_reason", a.statusReason}
	if code != nil {
		attrs = append(attrs, "exit_code", *code)
	}
	e.log.Info("attempt stopped", attrs...)
	e.settle(j, a, sc != nil)
}

// settle decides a job's next status after its attempt a ended; stopped
// says it was stopped (terminated, timed out), which is never retried. e.mu
// must be held.
func (e *Endpoint) settle(j *job, a *attempt, stopped bool) {
	switch {
	case !stopped && a.exitCode != nil && *a.exitCode == 0:
		j.statusReason = a.statusReason
		e.setStatus(j, StatusSucceeded)
	case !stopped && !e.closed && e.shouldRetry(j, a):
		e.setStatus(j, StatusRunnable)
		e.queue = append(e.queue, j)
	default:
		j.statusReason = a.statusReason
		e.setStatus(j, StatusFailed)
	}
}

// shouldRetry applies the job's retry strategy to its last, failed attempt:
// attempts left and no matching EXIT rule (an unmatched attempt is retried).
func (e *Endpoint) shouldRetry(j *job, a *attempt) bool {
	rs := j.spec.retry
	if rs == nil || rs.Attempts == nil || len(j.attempts) >= int(*rs.Attempts) {
		return false
	}
	for _, rule := range rs.EvaluateOnExit {
		if ruleMatches(rule, a) {
			return strings.EqualFold(rule.Action, "RETRY")
		}
	}
	return true
}

func ruleMatches(r EvaluateOnExit, a *attempt) bool {
	if r.OnExitCode != nil && (a.exitCode == nil || !globMatch(*r.OnExitCode, strconv.Itoa(int(*a.exitCode)))) {
		return false
	}
	if r.OnReason != nil && !globMatch(*r.OnReason, a.reason) {
		return false
	}
	if r.OnStatusReason != nil && !globMatch(*r.OnStatusReason, a.statusReason) {
		return false
	}
	return true
}

// stopJob serves TerminateJob (terminate) and CancelJob. Both fail the jobs
// not yet started; only TerminateJob stops running ones. On an array parent
// they act on every child.
func (e *Endpoint) stopJob(body []byte, terminate bool) (any, error) {
	var in stopJobInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.JobID == nil || *in.JobID == "" {
		return nil, clientError("jobId is required")
	}
	if in.Reason == nil || *in.Reason == "" {
		return nil, clientError("reason is required")
	}
	reason := *in.Reason
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.jobs[*in.JobID]
	if j == nil {
		return nil, clientError("Job %s not found", *in.JobID)
	}
	targets := []*job{j}
	if j.size > 0 {
		targets = j.children
		if !terminal(j.status) {
			j.stopReason = reason
			if terminate {
				j.terminated = true
			} else {
				j.cancelled = true
			}
		}
	}
	for _, t := range targets {
		switch t.status {
		case StatusSubmitted, StatusPending, StatusRunnable:
			t.statusReason = reason
			if terminate {
				t.terminated = true
			} else {
				t.cancelled = true
			}
			e.setStatus(t, StatusFailed)
		case StatusStarting, StatusRunning:
			if terminate && t.stop != nil {
				t.stop(&stopCause{reason: reason, terminated: true})
			}
		}
	}
	e.log.Info("job stopped", "job_id", j.id, "terminate", terminate, "reason", reason)
	return struct{}{}, nil
}

// exitCode reports a process's exit status as a container runtime does:
// the exit code, or 128 plus the signal that killed it.
func exitCode(ps *os.ProcessState) int32 {
	if sig, _, ok := procgroup.KilledBy(ps); ok {
		return 128 + int32(sig)
	}
	return int32(ps.ExitCode())
}
