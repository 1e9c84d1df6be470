package flight

import (
	"context"
	"math"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/pkg/api"
)

// The bounds of job-wait.
const (
	// DefaultJobWait is how long job-wait holds a call whose body gives no
	// timeout_s.
	DefaultJobWait = 10 * time.Second
	// MaxJobWait bounds job-wait's timeout_s.
	MaxJobWait = 60 * time.Second
	// DefaultMaxJobWaiters bounds the job-wait calls held at once.
	DefaultMaxJobWaiters = 1024
)

// actionJobWait answers a job's status as soon as the job has ended, or when
// the body's timeout_s passes, whichever comes first: a client learns that
// its job ended when the manager records it, not at its next poll. The call
// is woken by the manager's notice of each change of the job, and ends early
// when the client goes away or the server stops (answering the status so
// far). At most Options.MaxJobWaiters calls are held at once; past that the
// call is refused with ResourceExhausted and the client polls job-status.
func (s *Server) actionJobWait(ctx context.Context, body []byte) (any, error) {
	var req api.JobWaitRequest
	if err := decodeStrict(api.ActionJobWait, body, &req); err != nil {
		return nil, err
	}
	if req.JobID == "" {
		return nil, invalidArg(`%s: give "job_id"`, api.ActionJobWait)
	}
	if !batch.ValidJobID(req.JobID) {
		return nil, status.Errorf(codes.NotFound, "job %s not found: job IDs look like 20261124T184501123Z-9f2c1a", clip.Quote(req.JobID))
	}
	hold := DefaultJobWait
	if t := req.TimeoutS; t != nil {
		if math.IsNaN(*t) || *t < 0 || *t > MaxJobWait.Seconds() {
			return nil, invalidArg(`%s: "timeout_s" is %g; give 0 to %g seconds`, api.ActionJobWait, *t, MaxJobWait.Seconds())
		}
		hold = time.Duration(*t * float64(time.Second))
	}
	sum, err := s.jobs.Summary(req.JobID, MaxStatusFailures)
	if err != nil {
		return nil, err
	}
	if sum.Job.State.Terminal() || hold <= 0 {
		return jobStatus(sum), nil
	}
	if n := s.jobWaiters.Add(1); n > int64(s.opts.MaxJobWaiters) {
		s.jobWaiters.Add(-1)
		return nil, status.Errorf(codes.ResourceExhausted, "%s: %d calls already wait for jobs, the server's limit; poll job-status instead", api.ActionJobWait, n-1)
	}
	defer s.jobWaiters.Add(-1)
	err = s.holdForChange(ctx, req.JobID, hold, func() (bool, error) {
		var err error
		sum, err = s.jobs.Summary(req.JobID, MaxStatusFailures)
		return err == nil && sum.Job.State.Terminal(), err
	})
	if err != nil {
		return nil, err
	}
	return jobStatus(sum), nil
}

// holdForChange calls look, and again after each change of job id, until
// look has the caller's answer (done) or fails, hold passes, the server
// stops serving or ctx ends: job-wait and PollFlightInfo's long polls hold
// their calls with it. It returns look's error or ctx's, as a gRPC status
// where it is one.
func (s *Server) holdForChange(ctx context.Context, id string, hold time.Duration, look func() (done bool, err error)) error {
	timer := time.NewTimer(hold)
	defer timer.Stop()
	for {
		// The channel before the look: a change between the two wakes the
		// wait at once instead of being missed.
		changed, err := s.jobs.Changed(id)
		if err != nil {
			return toStatus(err)
		}
		if done, err := look(); done || err != nil {
			return err
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil
		case <-s.stopping:
			return nil
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// StopWaiting ends the calls that wait for a job to change (job-wait and
// PollFlightInfo's long polls), each answering what it has, so that a server
// that stops serving does not wait out their holds.
func (s *Server) StopWaiting() {
	s.stopOnce.Do(func() { close(s.stopping) })
}
