// Package child is the contract between an executor and the workers it starts:
// the environment variables a child reads, the shard-list format (kept in the
// store when too long for the environment), the exit codes, how each executor's
// backend tells a child its array index and attempt number, and what an
// executor may learn of its children's attempts from the store.
//
// An executor starts children with Vars (and its backend's own variables, named
// by its Convention); a child (`flightbatch worker`) calls ReadEnv, then Run,
// and exits with ExitCode of Run's error.
package child

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/flightbatch/flightbatch/batch"
)

// The variables an executor gives every child.
const (
	// EnvJobID holds the job's ID.
	EnvJobID = "FLIGHTBATCH_JOB_ID"
	// EnvStore holds the URL of the store the job lives in.
	EnvStore = "FLIGHTBATCH_STORE"
	// EnvShards holds the shard indices the children of one start run, in the
	// form of FormatList, or "@KEY" when the list is kept at store key KEY
	// (see EncodeList). Child i of n runs Part(list, i, n).
	EnvShards = "FLIGHTBATCH_SHARDS"
	// EnvExecutor names the executor (a Convention's Executor), and so which
	// of the backend's variables carry the array index and the attempt.
	// When unset, the convention whose Marker is set applies.
	EnvExecutor = "FLIGHTBATCH_EXECUTOR"
	// EnvFunctions is the path of the functions file registering the
	// operator's functions; it must register the same functions as the
	// server's.
	EnvFunctions = "FLIGHTBATCH_FUNCTIONS"
	// EnvFaults injects failures in tests (see batch.ParseFaults); unset in
	// production.
	EnvFaults = "FLIGHTBATCH_FAULTS"
	// EnvAttemptsBefore holds how many attempts the child's shard made in
	// earlier backend jobs, when an executor resubmits a shard as a new
	// backend job (whose own attempt count starts again); the child's attempt
	// is that number plus its backend's attempt number. Absent: 0.
	EnvAttemptsBefore = "FLIGHTBATCH_ATTEMPTS_BEFORE"
)

// The exit codes of a child.
const (
	// ExitOK: every shard of the child has its part.
	ExitOK = 0
	// ExitFailed: the attempt failed; another attempt may succeed.
	ExitFailed = 1
	// ExitPermanent: the job, a shard or the shard list does not exist or is
	// malformed; no attempt can succeed, and executors do not retry.
	ExitPermanent = 3
)

// ErrContract is wrapped by errors about a child's environment or shard list
// that no retry can cure.
var ErrContract = errors.New("child contract")

// Convention is how an executor's backend tells a child its place: which of
// the variables it sets carry the array index, the array size and the
// attempt number.
type Convention struct {
	// Executor is the executor's name (batch.Executor.Name).
	Executor string
	// Marker is a variable the backend sets in every child.
	Marker string
	// Index carries the child's array index, from 0 (absent: 0).
	Index string
	// Size carries the number of children of the array (absent: 1). Empty
	// when the backend does not set one: the executor then sets EnvChildren.
	Size string
	// Attempt carries the attempt number (absent: the first attempt).
	Attempt string
	// FirstAttempt is Attempt's value on a child's first attempt.
	FirstAttempt int
}

// AWSBatch is the convention of AWS Batch array jobs.
func AWSBatch() Convention {
	return Convention{
		Executor:     "aws-batch",
		Marker:       "AWS_BATCH_JOB_ID",
		Index:        "AWS_BATCH_JOB_ARRAY_INDEX",
		Size:         "AWS_BATCH_JOB_ARRAY_SIZE",
		Attempt:      "AWS_BATCH_JOB_ATTEMPT",
		FirstAttempt: 1,
	}
}

// Slurm is the convention of Slurm job arrays: SLURM_RESTART_COUNT is 0 (or
// absent) on the first run and counts requeues.
func Slurm() Convention {
	return Convention{
		Executor:     "slurm",
		Marker:       "SLURM_JOB_ID",
		Index:        "SLURM_ARRAY_TASK_ID",
		Size:         "SLURM_ARRAY_TASK_COUNT",
		Attempt:      "SLURM_RESTART_COUNT",
		FirstAttempt: 0,
	}
}

// Conventions are the known executors' conventions.
func Conventions() []Convention { return []Convention{AWSBatch(), Slurm()} }

// EnvChildren holds the number of children of the start when the backend has
// no variable of its own for it (an executor that splits a start into several
// backend jobs sets it for each).
const EnvChildren = "FLIGHTBATCH_CHILDREN"

// Var is one environment variable.
type Var struct{ Name, Value string }

// Vars are the variables an executor gives the children of one start: the
// job, the store URL the children use, the shard list (a value EncodeList
// returned) and the executor's name.
func Vars(executor, jobID, storeURL, list string) []Var {
	return []Var{
		{EnvJobID, jobID},
		{EnvStore, storeURL},
		{EnvShards, list},
		{EnvExecutor, executor},
	}
}

// Env is what a child reads of its environment.
type Env struct {
	JobID string
	Store string
	// Shards is EnvShards as given (inline list or "@KEY"); empty means the
	// child runs the one shard whose index is Index.
	Shards string
	// Index is the child's array index, Children the number of children.
	Index, Children int
	// Attempt is the attempt number, from 1.
	Attempt int
	// Functions is EnvFunctions; Faults is EnvFaults.
	Functions, Faults string
}

// ReadEnv reads a child's environment through getenv (os.Getenv). Errors
// wrap ErrContract.
func ReadEnv(getenv func(string) string) (Env, error) {
	env := Env{
		JobID: getenv(EnvJobID), Store: getenv(EnvStore), Shards: getenv(EnvShards),
		Children: 1, Attempt: 1,
		Functions: getenv(EnvFunctions), Faults: getenv(EnvFaults),
	}
	num := func(name string, least int) (int, bool, error) {
		v := getenv(name)
		if name == "" || v == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < least {
			return 0, false, fmt.Errorf("%s=%q is not a whole number of at least %d: %w", name, short(v), least, ErrContract)
		}
		return n, true, nil
	}
	before, _, err := num(EnvAttemptsBefore, 0)
	if err != nil {
		return env, err
	}
	env.Attempt += before
	conv, ok, err := convention(getenv)
	if err != nil || !ok {
		return env, err
	}
	if n, ok, err := num(conv.Index, 0); err != nil {
		return env, err
	} else if ok {
		env.Index = n
	}
	size := conv.Size
	if getenv(EnvChildren) != "" {
		size = EnvChildren
	}
	if n, ok, err := num(size, 1); err != nil {
		return env, err
	} else if ok {
		env.Children = n
	}
	if n, ok, err := num(conv.Attempt, conv.FirstAttempt); err != nil {
		return env, err
	} else if ok {
		env.Attempt = before + n - conv.FirstAttempt + 1
	}
	return env, nil
}

// convention finds the convention of the child's executor: the one EnvExecutor
// names, or else the one whose Marker is set.
func convention(getenv func(string) string) (Convention, bool, error) {
	if name := getenv(EnvExecutor); name != "" {
		for _, c := range Conventions() {
			if c.Executor == name {
				return c, true, nil
			}
		}
		return Convention{}, false, fmt.Errorf("%s=%q names no known executor: %w", EnvExecutor, short(name), ErrContract)
	}
	for _, c := range Conventions() {
		if getenv(c.Marker) != "" {
			return c, true, nil
		}
	}
	return Convention{}, false, nil
}

// short quotes at most a short prefix of untrusted text.
func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ExitCode is the exit status of a child whose Run returned err.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, batch.ErrNotFound), errors.Is(err, ErrContract):
		return ExitPermanent
	}
	return ExitFailed
}

// Run runs the attempt of the child env describes with w: shard (when >= 0),
// else the child's part of env.Shards, else the shard whose index is the
// child's array index. Errors a retry cannot cure wrap batch.ErrNotFound or
// ErrContract (ExitCode says ExitPermanent).
func Run(ctx context.Context, w *batch.Worker, env Env, shard int) error {
	if env.JobID == "" {
		return fmt.Errorf("no job: set %s: %w", EnvJobID, ErrContract)
	}
	if shard < 0 && env.Shards == "" {
		shard = env.Index
	}
	if shard >= 0 {
		return w.RunShard(ctx, env.JobID, shard, env.Attempt)
	}
	all, err := DecodeList(ctx, w.Store, env.JobID, env.Shards)
	if err != nil {
		return err
	}
	shards := Part(all, env.Index, env.Children)
	if len(shards) == 0 {
		return fmt.Errorf("child %d of %d has no shard in %s (%d shards): %w", env.Index, env.Children, EnvShards, len(all), ErrContract)
	}
	return w.RunShards(ctx, env.JobID, shards, env.Attempt)
}

// keyed reports whether a value of EnvShards names a store key.
func keyed(value string) (string, bool) { return strings.CutPrefix(value, "@") }
