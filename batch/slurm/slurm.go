// Package slurm is the executor that runs a job's children on a Slurm cluster:
// one `sbatch --array=0-(N-1) --requeue` per start (a plain job for a single
// shard; arrays larger than the cluster's MaxArraySize are split into several),
// each task a batch script that runs `flightbatch worker` on a compute node,
// which reads its shard from the store and writes its part there.
//
// The executor talks to Slurm only through its commands (sbatch, scontrol,
// scancel, and sacct when accounting is on), as a user on a login node does:
// they work on every cluster, need no daemon of their own and no token, and
// authenticate with the cluster's own munge.
//
// Children find their shards in the environment (child.Vars, child.Slurm):
// FLIGHTBATCH_SHARDS is the shard list of their array (child.EncodeList), task
// SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT runs its part of it
// (child.Part: one shard per task), and its attempt is SLURM_RESTART_COUNT+1.
//
// Slurm never retries a failed task by itself. Poll reads every task's state
// with one `scontrol -o show job` per array; a task that failed is given
// another attempt with `scontrol requeue` until the job's attempts are spent
// (child.ExitPermanent, a job or shard that does not exist, is not retried).
// The controller forgets a task MinJobAge after it ends (a server that was
// down longer finds some tasks, or a whole array, gone): with Accounting the
// executor then reads them from `sacct --duplicates`, whose REQUEUED rows are
// the earlier attempts, each with its exit code; without it, a forgotten task
// whose part exists succeeded and any other failed. A failed task the
// controller forgot cannot be requeued: while attempts are left its shard is
// resubmitted as a new plain Slurm job (the same script, begun after
// Options.RetryWait, with child.EnvAttemptsBefore so that its attempts
// continue), polled and cancelled with the arrays. Resubmissions are recorded
// in the store beside the job (the handle, kept by the manager, does not
// change), so a restarted server follows them too. A task missing from an
// array the controller still knows that never started (no log, no part, no
// recorded attempt) was cancelled while pending, which leaves no record:
// like any task cancelled outside flightbatch (scancel), it fails its shard
// and is not run again; node failures and preemptions are retried. An array
// neither the controller nor accounting knows is batch.ErrVanished: the
// manager reconciles the job with the store.
// Each failed attempt's error is its exit code, the error the worker recorded
// (child.Records), and the tail of its log (written with --open-mode=append,
// so the log keeps every attempt). The handle names the job, its attempt
// limit, its shard list and its Slurm job IDs, so a restarted server follows
// the same arrays again; the executor reads no manifest.
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/child"
	"github.com/flightbatch/flightbatch/internal/backoff"
	"github.com/flightbatch/flightbatch/store"
)

// logTailBytes and logTailLines bound the log tail kept in an attempt's
// error.
const (
	logTailBytes = 2048
	logTailLines = 6
)

// Runner runs one Slurm command with stdin (nil for none) and returns its
// standard output; its error carries the command's standard error.
type Runner interface {
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// Commands runs Slurm's commands as processes, with this process's
// environment (SLURM_CONF and the like) plus Env.
type Commands struct {
	// Env is added to the commands' environment ("NAME=value").
	Env []string
}

// Run implements Runner.
func (c Commands) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[:500] + "..."
		}
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// Options tune an Executor. The zero value is usable with a store the
// cluster's nodes reach.
type Options struct {
	// Partition, Account and QOS are passed to sbatch when set.
	Partition, Account, QOS string
	// TimeLimit is each task's time limit in sbatch's form ("30", "1:00:00",
	// "2-00:00:00"); empty leaves the partition's default.
	TimeLimit string
	// CPUsPerChild is each task's --cpus-per-task (0: Slurm's default).
	CPUsPerChild int
	// MemPerChild is each task's --mem ("4G"; empty: Slurm's default).
	MemPerChild string
	// MaxRunning caps the running tasks of one array (sbatch --array=...%K);
	// 0 leaves it to the scheduler.
	MaxRunning int
	// ExtraArgs are further sbatch arguments, e.g. --constraint=skylake.
	ExtraArgs []string
	// WorkerCommand is the shell command a task runs; default this
	// program's executable with the argument "worker". It may load what it
	// needs first, e.g. "module load python/3.11 && flightbatch worker".
	WorkerCommand string
	// WorkerEnv are further variables of the tasks ("NAME=value").
	WorkerEnv []string
	// WorkerStore is the store URL children are given (FLIGHTBATCH_STORE);
	// default the executor's store's URL.
	WorkerStore string
	// LogDir is the directory, on a filesystem both this server and the
	// compute nodes see, of the tasks' logs (one per task, every attempt
	// appended). Default: slurm-logs under a file:// store's directory, else
	// ./flightbatch-slurm-logs.
	LogDir string
	// MaxArraySize is the most tasks one array may have; 0 asks the cluster
	// (scontrol show config). Larger jobs are split into several arrays.
	MaxArraySize int
	// Accounting makes Poll ask sacct about a job scontrol no longer shows
	// (only when the cluster keeps accounting).
	Accounting bool
	// RetryWait is the wait before a failed task the controller forgot runs
	// again as a new Slurm job (sbatch --begin); default up to 1 s, doubling
	// with each attempt up to 30 s, as the local executor waits. A requeued
	// task waits the cluster's own delay (cred_expire).
	RetryWait backoff.Policy
	// PollInterval is the time between polls; default 5s.
	PollInterval time.Duration
	// MaxInlineShards is the longest shard list (in characters) passed in the
	// tasks' environment; a longer one is written to the store (default
	// child.DefaultMaxInline).
	MaxInlineShards int
	// Records is where the executor finds what its children recorded of
	// their attempts (default child.NewStoreRecords of the executor's store).
	Records child.Records
	// Runner runs Slurm's commands; default Commands{}.
	Runner Runner
	// Log receives the executor's structured logs.
	Log *slog.Logger
}

// Executor runs children as Slurm job arrays. It is safe for concurrent use.
type Executor struct {
	st   *store.Store
	opts Options
	log  *slog.Logger
	sh   Runner

	// fullErrors is how many shards with failed attempts keep their errors'
	// text once reported (batch.HandOverErrorsPast): batch.MaxFullErrorShards,
	// lower in tests.
	fullErrors int

	mu      sync.Mutex
	maxSize int // the cluster's MaxArraySize, once known
	runs    map[string]*run
}

var (
	_ batch.Executor       = (*Executor)(nil)
	_ batch.ChangeReporter = (*Executor)(nil)
)

// New returns an executor whose children use store st. opts may be nil.
func New(st *store.Store, opts *Options) (*Executor, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if st == nil {
		return nil, errors.New("slurm: a store is required")
	}
	if o.WorkerStore == "" {
		o.WorkerStore = st.URL()
	}
	if o.WorkerCommand == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("slurm: find this program to run as the worker (or give a worker command): %w", err)
		}
		o.WorkerCommand = shellQuote(exe) + " worker"
	}
	for _, kv := range o.WorkerEnv {
		if name, _, ok := strings.Cut(kv, "="); !ok || !envNameRE.MatchString(name) {
			return nil, fmt.Errorf("slurm: worker environment %q: use NAME=value", short(kv))
		}
	}
	if o.LogDir == "" {
		if dir, ok := strings.CutPrefix(st.URL(), "file://"); ok {
			o.LogDir = filepath.Join(dir, "slurm-logs")
		} else {
			o.LogDir = "flightbatch-slurm-logs"
		}
	}
	abs, err := filepath.Abs(o.LogDir)
	if err != nil {
		return nil, fmt.Errorf("slurm: log directory %q: %w", o.LogDir, err)
	}
	o.LogDir = abs
	if o.CPUsPerChild < 0 || o.MaxRunning < 0 || o.MaxArraySize < 0 {
		return nil, errors.New("slurm: CPUs per child, the running cap and the array size may not be negative")
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Second
	}
	if o.RetryWait.Initial <= 0 {
		o.RetryWait.Initial = time.Second
	}
	if o.RetryWait.Max <= 0 {
		o.RetryWait.Max = 30 * time.Second
	}
	if o.Records == nil {
		o.Records = child.NewStoreRecords(st)
	}
	if o.Runner == nil {
		o.Runner = Commands{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Executor{
		st: st, opts: o, log: o.Log.With("component", "slurm"), sh: o.Runner,
		fullErrors: batch.MaxFullErrorShards, maxSize: o.MaxArraySize, runs: map[string]*run{},
	}, nil
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Name implements batch.Executor.
func (e *Executor) Name() string { return "slurm" }

// PollInterval implements batch.Executor.
func (e *Executor) PollInterval() time.Duration { return e.opts.PollInterval }

// run is what the executor knows of one start: its shards and arrays.
type run struct {
	// mu is held by a poll of the run; it guards the fields below pieces.
	mu          sync.Mutex
	jobID       string
	maxAttempts int
	shards      []int // the shards started, in list order
	pieces      []piece
	cancelled   bool
	// found is set for a run rebuilt from its handle after a restart: the
	// errors of attempts before it are read again.
	found bool
	kids  []kid // by position in shards
	// reported is what PollChanges last reported.
	reported batch.Reported
}

// piece is one Slurm job: an array (or plain job) over shards[offset:offset+n],
// or a plain job that runs shards[offset] again after the controller forgot
// its failed task (a resubmission, whose attempts continue after before).
type piece struct {
	id        string
	offset, n int
	before    int  // attempts the shard made before this job
	resub     bool // a resubmission
}

// kid is the last known state of one task.
type kid struct {
	state    batch.ShardState
	attempts int
	errors   []batch.AttemptError
	final    bool
	caughtUp bool // the errors of attempts before a restart are read
	// piece is the Slurm job ID of the resubmission that now runs the
	// shard; "" while its array does.
	piece string
}

// A handle is "JOBID;ATTEMPTS;CHUNK;LIST;ID,ID...": the flightbatch job, its
// attempt limit, the most tasks per array, the shard list (child.EncodeList's
// value) and the Slurm job IDs.
type handleParts struct {
	jobID    string
	attempts int
	chunk    int
	list     string
	ids      []string
}

func formatHandle(h handleParts) string {
	return fmt.Sprintf("%s;%d;%d;%s;%s", h.jobID, h.attempts, h.chunk, h.list, strings.Join(h.ids, ","))
}

// parseHandle reads a handle formatHandle wrote; anything else is a handle
// this executor cannot follow (ErrVanished).
func parseHandle(s string) (handleParts, error) {
	bad := fmt.Errorf("slurm: %q is not a handle of the slurm executor: %w", short(s), batch.ErrVanished)
	f := strings.SplitN(s, ";", 5)
	if len(f) != 5 || !batch.ValidJobID(f[0]) || f[3] == "" {
		return handleParts{}, bad
	}
	h := handleParts{jobID: f[0], list: f[3], ids: strings.Split(f[4], ",")}
	var err1, err2 error
	h.attempts, err1 = strconv.Atoi(f[1])
	h.chunk, err2 = strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || h.attempts < 1 || h.chunk < 1 {
		return handleParts{}, bad
	}
	if slices.ContainsFunc(h.ids, func(id string) bool { return !jobIDRE.MatchString(id) }) {
		return handleParts{}, bad
	}
	return h, nil
}

// noChildren is the handle of a start with no shard: nothing is submitted.
const noChildren = "no-children"

// Start implements batch.Executor: one sbatch per array of at most
// MaxArraySize tasks.
func (e *Executor) Start(ctx context.Context, m *batch.Manifest, shards []int) (string, error) {
	if len(shards) == 0 {
		return noChildren, nil
	}
	chunk, err := e.arraySize(ctx)
	if err != nil {
		return "", err
	}
	logDir := filepath.Join(e.opts.LogDir, m.JobID)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return "", fmt.Errorf("slurm: make the log directory of job %s: %w", m.JobID, err)
	}
	list, err := child.EncodeList(ctx, e.st, m.JobID, shards, e.opts.MaxInlineShards)
	if err != nil {
		return "", fmt.Errorf("slurm: %w", err)
	}
	var ids []string
	for off := 0; off < len(shards); off += chunk {
		part := shards[off:min(off+chunk, len(shards))]
		id, err := e.submit(ctx, m, part, logDir)
		if err != nil {
			if len(ids) > 0 {
				e.scancel(context.WithoutCancel(ctx), ids)
			}
			return "", err
		}
		ids = append(ids, id)
	}
	attempts := max(m.MaxAttempts, 1)
	handle := formatHandle(handleParts{jobID: m.JobID, attempts: attempts, chunk: chunk, list: list, ids: ids})
	r := &run{jobID: m.JobID, maxAttempts: attempts, shards: shards}
	r.pieces = pieces(ids, chunk, len(shards))
	r.kids = make([]kid, len(shards))
	for i := range r.kids {
		r.kids[i].state = batch.ShardPending
	}
	e.mu.Lock()
	e.runs[handle] = r
	e.mu.Unlock()
	e.log.Info("submitted", "job", m.JobID, "slurm_jobs", strings.Join(ids, ","), "shards", len(shards))
	return handle, nil
}

func pieces(ids []string, chunk, n int) []piece {
	out := make([]piece, len(ids))
	for i, id := range ids {
		off := i * chunk
		out[i] = piece{id: id, offset: off, n: min(chunk, n-off)}
	}
	return out
}

// arraySize is the most tasks of one array: the option, or the cluster's
// MaxArraySize (task indices run from 0 to MaxArraySize-1).
func (e *Executor) arraySize(ctx context.Context) (int, error) {
	e.mu.Lock()
	n := e.maxSize
	e.mu.Unlock()
	if n > 0 {
		return n, nil
	}
	out, err := e.sh.Run(ctx, nil, "scontrol", "show", "config")
	if err != nil {
		return 0, fmt.Errorf("slurm: read the cluster's configuration: %w", err)
	}
	n, err = parseMaxArraySize(out)
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	e.maxSize = n
	e.mu.Unlock()
	return n, nil
}

var maxArrayRE = regexp.MustCompile(`(?m)^MaxArraySize\s*=\s*(\d+)`)

func parseMaxArraySize(config []byte) (int, error) {
	m := maxArrayRE.FindSubmatch(config)
	if m == nil {
		return 0, errors.New("slurm: scontrol show config names no MaxArraySize")
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("slurm: MaxArraySize %q is not a positive number", m[1])
	}
	return n, nil
}

// submit runs one sbatch for shards and returns the Slurm job ID.
func (e *Executor) submit(ctx context.Context, m *batch.Manifest, shards []int, logDir string) (string, error) {
	list, err := child.EncodeList(ctx, e.st, m.JobID, shards, e.opts.MaxInlineShards)
	if err != nil {
		return "", fmt.Errorf("slurm: %w", err)
	}
	args := e.sbatchArgs(m.JobID, len(shards), logDir)
	out, err := e.sh.Run(ctx, e.script(m.JobID, list), "sbatch", args...)
	if err != nil {
		return "", fmt.Errorf("slurm: submit job %s: %w", m.JobID, err)
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";") // --parsable: ID[;cluster]
	if !jobIDRE.MatchString(id) {
		return "", fmt.Errorf("slurm: sbatch answered %q, not a job ID", short(string(out)))
	}
	return id, nil
}

var jobIDRE = regexp.MustCompile(`^[0-9]+$`)

// sbatchArgs are the arguments of one sbatch of n tasks.
func (e *Executor) sbatchArgs(jobID string, n int, logDir string) []string {
	o := &e.opts
	args := []string{"--parsable", "--job-name=flightbatch-" + jobID, "--requeue", "--open-mode=append"}
	if n > 1 {
		spec := fmt.Sprintf("0-%d", n-1)
		if o.MaxRunning > 0 {
			spec += fmt.Sprintf("%%%d", o.MaxRunning)
		}
		args = append(args, "--array="+spec, "--output="+filepath.Join(logDir, "%A_%a.log"))
	} else {
		args = append(args, "--output="+filepath.Join(logDir, "%j.log"))
	}
	for _, f := range []struct{ flag, v string }{
		{"--partition", o.Partition}, {"--account", o.Account}, {"--qos", o.QOS},
		{"--time", o.TimeLimit}, {"--mem", o.MemPerChild},
	} {
		if f.v != "" {
			args = append(args, f.flag+"="+f.v)
		}
	}
	if o.CPUsPerChild > 0 {
		args = append(args, fmt.Sprintf("--cpus-per-task=%d", o.CPUsPerChild))
	}
	return append(args, o.ExtraArgs...)
}

// script is the batch script of every task: the children's variables (and
// extra ones), then the worker command.
func (e *Executor) script(jobID, list string, extra ...child.Var) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n# flightbatch job " + jobID + "\n")
	for _, v := range append(child.Vars(e.Name(), jobID, e.opts.WorkerStore, list), extra...) {
		fmt.Fprintf(&b, "export %s=%s\n", v.Name, shellQuote(v.Value))
	}
	for _, kv := range e.opts.WorkerEnv {
		name, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", name, shellQuote(v))
	}
	b.WriteString(e.opts.WorkerCommand + "\n")
	return []byte(b.String())
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=/.,:@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Poll implements batch.Executor: one `scontrol -o show job` per array; a
// failed task with attempts left is requeued.
func (e *Executor) Poll(ctx context.Context, handle string) (batch.Progress, error) {
	return e.poll(ctx, handle, false)
}

// PollChanges implements batch.ChangeReporter: Poll, reporting every child
// at the first call for handle (as after a restart), then only the
// children that changed since the previous call. Slurm is asked as much as
// by Poll; the manager gets the changes only.
func (e *Executor) PollChanges(ctx context.Context, handle string) (batch.Progress, error) {
	return e.poll(ctx, handle, true)
}

// poll is Poll, reporting only the changes with changes.
func (e *Executor) poll(ctx context.Context, handle string, changes bool) (batch.Progress, error) {
	if handle == noChildren {
		return batch.Progress{Done: true}, nil
	}
	r, err := e.runOf(ctx, handle)
	if err != nil {
		return batch.Progress{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// A resubmission made in this poll is appended, and polled in it too.
	for j := 0; j < len(r.pieces); j++ {
		p := r.pieces[j]
		tasks, known, err := e.tasks(ctx, p)
		if err != nil {
			return batch.Progress{}, err
		}
		seen := make([]bool, p.n)
		for _, t := range tasks {
			if t.index < 0 || t.index >= p.n {
				continue
			}
			seen[t.index] = true
			if err := e.update(ctx, r, p, t); err != nil {
				return batch.Progress{}, err
			}
		}
		var lost []int
		for i, ok := range seen {
			if k := &r.kids[p.offset+i]; !ok && !k.final && k.piece == pieceOf(p) {
				lost = append(lost, i)
			}
		}
		if len(lost) > 0 {
			if err := e.forgotten(ctx, r, p, lost, known); err != nil {
				return batch.Progress{}, err
			}
		}
	}
	p := r.progress(e.fullErrors)
	if changes {
		p = r.reported.Changes(p)
	}
	return p, nil
}

// forgotten settles the tasks of piece p the controller no longer shows
// (lost, by index): from sacct when the cluster keeps accounting, else from
// their parts. known is false when the controller knows no task of p.
func (e *Executor) forgotten(ctx context.Context, r *run, p piece, lost []int, known bool) error {
	byIndex := map[int]task{}
	if e.opts.Accounting {
		out, err := e.sh.Run(ctx, nil, "sacct", "-n", "-P", "-X", "--duplicates", "-j", p.id, "-o", "JobID,State,ExitCode")
		if err != nil {
			return fmt.Errorf("slurm: ask sacct about Slurm job %s: %w", p.id, err)
		}
		for _, t := range parseSacct(out, p.n) {
			byIndex[t.index] = t
		}
	}
	if !known && len(byIndex) == 0 && !p.resub {
		return fmt.Errorf("slurm: Slurm no longer knows job %s (it forgets a job MinJobAge after it ends, and every job when its state is lost): %w", p.id, batch.ErrVanished)
	}
	for _, i := range lost {
		if t, ok := byIndex[i]; ok {
			t.forgotten = true
			if err := e.update(ctx, r, p, t); err != nil {
				return err
			}
			continue
		}
		// Neither the controller nor accounting knows the task: its part
		// tells whether it succeeded.
		k := &r.kids[p.offset+i]
		shard := r.shards[p.offset+i]
		ok, err := e.opts.Records.HasPart(ctx, r.jobID, shard)
		if err != nil {
			return fmt.Errorf("slurm: job %s: %w", r.jobID, err)
		}
		k.attempts = max(k.attempts, p.before+1)
		if ok {
			k.state, k.final = batch.ShardSucceeded, true
			continue
		}
		if r.cancelled {
			k.state, k.final = batch.ShardCancelled, true
			continue
		}
		if known && e.neverStarted(ctx, r, p, i) {
			// Its array is there and the task never ran: it was cancelled
			// while pending, which leaves no record of it (scancel ID_i).
			k.state, k.final = batch.ShardFailed, true
			if !slices.ContainsFunc(k.errors, func(ae batch.AttemptError) bool { return ae.Attempt == k.attempts }) {
				k.errors = append(k.errors, batch.AttemptError{Attempt: k.attempts, At: time.Now().UTC(),
					Error: batch.ClipAttemptError(fmt.Sprintf("Slurm task %s %s", taskName(p, i), cancelledPending))})
			}
			continue
		}
		// Requeues the server did not see left their errors in the
		// store: they count against the attempts too.
		for k.attempts < r.maxAttempts {
			ae, err := e.opts.Records.AttemptError(ctx, r.jobID, shard, k.attempts+1)
			if err != nil || ae == nil {
				break
			}
			k.attempts++
		}
		why := "Slurm no longer knows the task (it forgets one MinJobAge after it ends) and its part is missing"
		if !e.opts.Accounting {
			why += "; on a cluster that keeps accounting, serve --slurm-sacct reads how it ended from sacct"
		}
		if !slices.ContainsFunc(k.errors, func(ae batch.AttemptError) bool { return ae.Attempt == k.attempts }) {
			k.errors = append(k.errors, batch.AttemptError{Attempt: k.attempts, At: time.Now().UTC(),
				Error: batch.ClipAttemptError(fmt.Sprintf("Slurm task %s: %s; see its log %s", taskName(p, i), why, e.logPath(r.jobID, p, i)))})
		}
		if k.attempts >= r.maxAttempts {
			k.state, k.final = batch.ShardFailed, true
			continue
		}
		e.resubmit(ctx, r, p.offset+i, k)
	}
	return nil
}

// What an attempt's error says of a task cancelled outside flightbatch: an
// administrator's scancel is an intent to stop, so the shard is not run
// again (a node failure, a preemption, a boot failure are retried).
const (
	cancelledOutside = "cancelled outside flightbatch (scancel by a user or an administrator); not run again, since a scancel means stop"
	cancelledPending = "was cancelled while pending, outside flightbatch (scancel of the task: Slurm then keeps no record of it, and it never started: no log, no part); not run again, since a scancel means stop"
)

// neverStarted reports whether task index of piece p never started: its log
// (which its first start creates) does not exist, and no worker recorded an
// attempt of its shard beyond those the server knows of. Only a task
// cancelled while pending disappears so: one that ran leaves its log.
func (e *Executor) neverStarted(ctx context.Context, r *run, p piece, index int) bool {
	if _, err := os.Stat(e.logPath(r.jobID, p, index)); !errors.Is(err, os.ErrNotExist) {
		return false
	}
	for attempt := p.before + 1; attempt <= r.maxAttempts; attempt++ {
		if ae, err := e.opts.Records.AttemptError(ctx, r.jobID, r.shards[p.offset+index], attempt); err != nil || ae != nil {
			return false
		}
	}
	return true
}

// origin is the array (or plain job) first started over shards[pos], and
// the index of its task there.
func (r *run) origin(pos int) (piece, int) {
	for _, p := range r.pieces {
		if !p.resub && pos >= p.offset && pos < p.offset+p.n {
			return p, pos - p.offset
		}
	}
	return piece{}, 0
}

// pieceOf is the value of kid.piece for the tasks of p.
func pieceOf(p piece) string {
	if p.resub {
		return p.id
	}
	return ""
}

// resubmit runs shard r.shards[pos], whose failed task the controller
// forgot, again as a new plain Slurm job after the retry wait, its attempts
// continuing after k.attempts, and records the job in the store so that a
// restarted server follows it too. When it cannot, the shard is reported
// running and the next poll tries again. r.mu is held.
func (e *Executor) resubmit(ctx context.Context, r *run, pos int, k *kid) {
	shard := r.shards[pos]
	wait := e.opts.RetryWait.Delay(k.attempts)
	id, err := e.submitOne(ctx, r.jobID, shard, k.attempts, wait)
	if err == nil {
		p := piece{id: id, offset: pos, n: 1, before: k.attempts, resub: true}
		pieces := append(slices.Clone(r.pieces), p)
		if err = e.writeResubmits(ctx, r, pieces); err != nil {
			e.scancel(context.WithoutCancel(ctx), []string{id})
		} else {
			r.pieces = pieces
			k.piece = id
			k.state = batch.ShardPending
			e.log.Info("forgotten failed task resubmitted", "job", r.jobID, "shard", shard, "slurm_job", id, "attempt", k.attempts+1, "begin_in", wait)
			return
		}
	}
	e.log.Warn("resubmit failed task", "job", r.jobID, "shard", shard, "err", err)
	k.state = batch.ShardRunning
}

// submitOne runs one sbatch of a plain job for shard whose attempts continue
// after before, to begin after wait.
func (e *Executor) submitOne(ctx context.Context, jobID string, shard, before int, wait time.Duration) (string, error) {
	logDir := filepath.Join(e.opts.LogDir, jobID)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return "", fmt.Errorf("slurm: make the log directory of job %s: %w", jobID, err)
	}
	args := e.sbatchArgs(jobID, 1, logDir)
	args = append(args, fmt.Sprintf("--begin=now+%d", max(int((wait+time.Second-1)/time.Second), 1)))
	script := e.script(jobID, child.FormatList([]int{shard}), child.Var{Name: child.EnvAttemptsBefore, Value: strconv.Itoa(before)})
	out, err := e.sh.Run(ctx, script, "sbatch", args...)
	if err != nil {
		return "", fmt.Errorf("slurm: resubmit shard %d of job %s: %w", shard, jobID, err)
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	if !jobIDRE.MatchString(id) {
		return "", fmt.Errorf("slurm: sbatch answered %q, not a job ID", short(string(out)))
	}
	return id, nil
}

// resubmitsKey is the store key of the resubmissions of the run whose first
// Slurm job is first.
func resubmitsKey(jobID, first string) string {
	return batch.Prefix + jobID + "/children/slurm-" + first + "-resubmitted.txt"
}

// writeResubmits records the resubmissions among pieces, one line
// "SHARD BEFORE SLURMID" each (formatResubmits).
func (e *Executor) writeResubmits(ctx context.Context, r *run, pieces []piece) error {
	key := resubmitsKey(r.jobID, r.pieces[0].id)
	if err := e.st.WriteAll(ctx, key, formatResubmits(r.shards, pieces)); err != nil {
		return fmt.Errorf("slurm: record the resubmissions of job %s: %w", r.jobID, err)
	}
	return nil
}

func formatResubmits(shards []int, pieces []piece) []byte {
	var b strings.Builder
	for _, p := range pieces {
		if p.resub {
			fmt.Fprintf(&b, "%d %d %s\n", shards[p.offset], p.before, p.id)
		}
	}
	return []byte(b.String())
}

// parseResubmits reads what formatResubmits wrote for a run over shards:
// the resubmitted pieces, in order. Anything else is an error.
func parseResubmits(data []byte, shards []int) ([]piece, error) {
	pos := make(map[int]int, len(shards))
	for i, s := range shards {
		pos[s] = i
	}
	var out []piece
	for n, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		bad := fmt.Errorf("slurm: line %d of the resubmissions, %q, is not \"SHARD BEFORE SLURMID\" of one of the job's shards", n+1, short(line))
		if len(f) != 3 || !jobIDRE.MatchString(f[2]) || len(out) >= len(shards)*1000 {
			return nil, bad
		}
		shard, err1 := strconv.Atoi(f[0])
		before, err2 := strconv.Atoi(f[1])
		i, ok := pos[shard]
		if err1 != nil || err2 != nil || !ok || before < 1 {
			return nil, bad
		}
		out = append(out, piece{id: f[2], offset: i, n: 1, before: before, resub: true})
	}
	return out, nil
}

// task is one task's record as scontrol (or sacct) reports it.
type task struct {
	index    int    // in its array; 0 for a plain job
	state    string // Slurm's job state, e.g. RUNNING, FAILED
	reason   string
	restarts int
	exit     int
	signal   int
	// forgotten: the controller no longer holds the task; this record is
	// sacct's, and the task cannot be requeued.
	forgotten bool
	// earlier are sacct's records of the attempts before this one (its
	// REQUEUED rows), oldest first; scontrol keeps none.
	earlier []task
}

// tasks reads the tasks of one array the controller holds; known is false
// when it holds none.
func (e *Executor) tasks(ctx context.Context, p piece) (tasks []task, known bool, err error) {
	out, err := e.sh.Run(ctx, nil, "scontrol", "-o", "show", "job", p.id)
	if err == nil {
		tasks, err := parseShowJob(out, p.n)
		return tasks, true, err
	}
	if !strings.Contains(err.Error(), "Invalid job id") {
		return nil, false, fmt.Errorf("slurm: read Slurm job %s: %w", p.id, err)
	}
	return nil, false, nil
}

var fieldRE = regexp.MustCompile(`(?:^|\s)(JobId|ArrayTaskId|JobState|Reason|Restarts|ExitCode)=(\S*)`)

// parseShowJob reads `scontrol -o show job`: one line per task, pending
// tasks folded into one line whose ArrayTaskId is a set ("2-5%2", "1,3-4").
// n is the array's size (1 for a plain job).
func parseShowJob(out []byte, n int) ([]task, error) {
	var tasks []task
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := map[string]string{}
		for _, m := range fieldRE.FindAllStringSubmatch(line, -1) {
			if _, ok := f[m[1]]; !ok {
				f[m[1]] = m[2]
			}
		}
		if f["JobId"] == "" || f["JobState"] == "" {
			return nil, fmt.Errorf("slurm: scontrol answered a line without JobId and JobState: %q", short(line))
		}
		t := task{state: f["JobState"], reason: f["Reason"]}
		t.restarts, _ = strconv.Atoi(f["Restarts"])
		t.exit, t.signal = parseExit(f["ExitCode"])
		idx := []int{0}
		if s, ok := f["ArrayTaskId"]; ok {
			var err error
			if idx, err = parseIndexSet(s, n); err != nil {
				return nil, err
			}
		}
		for _, i := range idx {
			t.index = i
			tasks = append(tasks, t)
		}
	}
	return tasks, nil
}

// parseIndexSet reads an array index set such as "3", "0-7%2", "1,4-6:1".
func parseIndexSet(s string, n int) ([]int, error) {
	s, _, _ = strings.Cut(s, "%")
	var out []int
	for _, part := range strings.Split(s, ",") {
		part, _, _ = strings.Cut(part, ":") // a step; ours are always 1
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a {
			return nil, fmt.Errorf("slurm: array task set %q is not one scontrol writes", short(s))
		}
		for i := a; i <= b && i < n; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

func parseExit(s string) (code, sig int) {
	a, b, _ := strings.Cut(s, ":")
	code, _ = strconv.Atoi(a)
	sig, _ = strconv.Atoi(b)
	return code, sig
}

// parseSacct reads `sacct -n -P -X --duplicates -o JobID,State,ExitCode`:
// one row per attempt of each task, "ID_INDEX", "ID_[2-5]" for pending
// tasks, or "ID" for a plain job. A task's REQUEUED rows are its earlier
// attempts, with their exit codes (`sacct --json` reports 0 for them; the
// parsable output does not); its other row is its latest. Tasks come in
// index order.
//
// An attempt Slurm requeued by itself (NODE_FAIL, PREEMPTED: tasks are
// submitted with --requeue) keeps its own state in its row, not REQUEUED:
// a task's row that another row of it follows is an earlier attempt too
// (sacct lists a task's attempts in order). Rows of a folded set of
// pending tasks ("ID_[1,3]") are older news than a task's own row and never
// replace it.
func parseSacct(out []byte, n int) []task {
	byIndex := map[int]*task{}
	own := map[int]bool{} // a task's own row (not a folded set) was read
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 3 {
			continue
		}
		state, _, _ := strings.Cut(f[1], " ") // "CANCELLED by 0"
		row := task{state: state}
		row.exit, row.signal = parseExit(f[2])
		idx := []int{0}
		folded := false
		if _, sub, ok := strings.Cut(f[0], "_"); ok {
			var err error
			folded = strings.HasPrefix(sub, "[")
			if idx, err = parseIndexSet(strings.Trim(sub, "[]"), n); err != nil {
				continue
			}
		}
		for _, i := range idx {
			t := byIndex[i]
			if t == nil {
				t = &task{index: i, state: "REQUEUED"}
				byIndex[i] = t
			}
			if row.state == "REQUEUED" {
				r := row
				r.index = i
				t.earlier = append(t.earlier, r)
				t.restarts = len(t.earlier)
				continue
			}
			switch {
			case folded && own[i]:
				continue
			case !folded && own[i]:
				// The row before was an attempt Slurm requeued by itself.
				t.earlier = append(t.earlier, task{index: i, state: t.state, exit: t.exit, signal: t.signal})
				t.restarts = len(t.earlier)
			}
			own[i] = own[i] || !folded
			t.state, t.exit, t.signal = row.state, row.exit, row.signal
		}
	}
	tasks := make([]task, 0, len(byIndex))
	for _, t := range byIndex {
		tasks = append(tasks, *t)
	}
	slices.SortFunc(tasks, func(a, b task) int { return a.index - b.index })
	return tasks
}

// What a Slurm job state means for a task.
const (
	slurmWaiting = iota
	slurmRunning
	slurmSucceeded
	slurmFailed
	slurmCancelled
)

func classify(state string) int {
	switch state {
	case "RUNNING", "COMPLETING", "STAGE_OUT", "SUSPENDED", "SIGNALING":
		return slurmRunning
	case "COMPLETED":
		return slurmSucceeded
	case "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED", "SPECIAL_EXIT":
		return slurmFailed
	case "CANCELLED", "REVOKED":
		return slurmCancelled
	}
	return slurmWaiting // PENDING, CONFIGURING, REQUEUED, REQUEUE_HOLD, REQUEUE_FED, RESIZING
}

// update records task t of piece p; a failed attempt is recorded, and
// requeued while attempts are left. r.mu is held.
func (e *Executor) update(ctx context.Context, r *run, p piece, t task) error {
	k := &r.kids[p.offset+t.index]
	if k.final || k.piece != pieceOf(p) {
		return nil // settled, or run again by a resubmission
	}
	if (r.found || t.forgotten) && !k.caughtUp {
		e.catchUp(ctx, r, p, t, k)
	}
	k.attempts = max(k.attempts, p.before+t.restarts)
	class := classify(t.state)
	if class != slurmWaiting {
		k.attempts = max(k.attempts, p.before+t.restarts+1)
	}
	if t.forgotten && (class == slurmWaiting || class == slurmRunning) {
		// Accounting's last word on a task the controller lost.
		k.attempts = max(k.attempts, 1)
		k.state, k.final = batch.ShardFailed, true
		if r.cancelled {
			k.state = batch.ShardCancelled
			return nil
		}
		why := "Slurm no longer holds the task, and accounting last saw it " + t.state
		if class == slurmWaiting && e.neverStarted(ctx, r, p, t.index) {
			why = cancelledPending
		}
		e.recordError(ctx, r, p, t, k, why)
		return nil
	}
	if class != slurmWaiting {
		k.attempts = max(k.attempts, 1)
	}
	switch class {
	case slurmWaiting:
		k.state = batch.ShardPending
	case slurmRunning:
		k.state = batch.ShardRunning
	case slurmSucceeded:
		k.state, k.final = batch.ShardSucceeded, true
	case slurmCancelled:
		k.state, k.final = batch.ShardCancelled, true
		if !r.cancelled {
			k.state = batch.ShardFailed // not on request: the shard failed
			e.recordError(ctx, r, p, t, k, cancelledOutside)
		}
	case slurmFailed:
		if r.cancelled {
			k.state, k.final = batch.ShardCancelled, true
			return nil
		}
		e.recordError(ctx, r, p, t, k, "")
		if k.attempts >= r.maxAttempts || t.exit == child.ExitPermanent {
			k.state, k.final = batch.ShardFailed, true
			return nil
		}
		if t.forgotten {
			// scontrol requeue refuses a task the controller forgot: the
			// shard runs again as a new Slurm job.
			e.resubmit(ctx, r, p.offset+t.index, k)
			return nil
		}
		name := taskName(p, t.index)
		if _, err := e.sh.Run(ctx, nil, "scontrol", "requeue", name); err != nil {
			// Reported running, not failed: the next poll tries again.
			e.log.Warn("requeue failed task", "job", r.jobID, "task", name, "err", err)
			k.state = batch.ShardRunning
			return nil
		}
		e.log.Info("task requeued", "job", r.jobID, "task", name, "attempt", k.attempts+1)
		k.state = batch.ShardPending
	}
	return nil
}

// taskName is Slurm's name of task index of piece p.
func taskName(p piece, index int) string {
	if p.n == 1 {
		return p.id
	}
	return fmt.Sprintf("%s_%d", p.id, index)
}

// logPath is the log of task index of piece p (the --output of submit).
func (e *Executor) logPath(jobID string, p piece, index int) string {
	name := p.id + ".log"
	if p.n > 1 {
		name = fmt.Sprintf("%s_%d.log", p.id, index)
	}
	return filepath.Join(e.opts.LogDir, jobID, name)
}

// recordError adds the error of task t's latest attempt to k, once.
func (e *Executor) recordError(ctx context.Context, r *run, p piece, t task, k *kid, why string) {
	attempt := max(k.attempts, 1)
	for _, ae := range k.errors {
		if ae.Attempt == attempt {
			return
		}
	}
	shard := r.shards[p.offset+t.index]
	k.errors = append(k.errors, batch.AttemptError{Attempt: attempt, Error: batch.ClipAttemptError(e.describe(ctx, r, p, t, shard, attempt, why)), At: time.Now().UTC()})
}

// catchUp reads again, after a restart, the errors of the attempts task t
// made before this one (and, for a resubmission, the shard's attempts before
// it): what the worker recorded, or else a pointer to the log, which keeps
// every attempt.
func (e *Executor) catchUp(ctx context.Context, r *run, p piece, t task, k *kid) {
	k.caughtUp = true
	shard := r.shards[p.offset+t.index]
	for attempt := 1; attempt <= p.before+t.restarts; attempt++ {
		if slices.ContainsFunc(k.errors, func(ae batch.AttemptError) bool { return ae.Attempt == attempt }) {
			continue
		}
		lp, li := p, t.index
		if attempt <= p.before {
			lp, li = r.origin(p.offset) // an earlier Slurm job's attempt
		}
		// sacct's record of the attempt, when it keeps one.
		slurmSays := ""
		if n := attempt - p.before; n >= 1 && n <= len(t.earlier) {
			prev := t.earlier[n-1]
			slurmSays = fmt.Sprintf("Slurm task %s REQUEUED after attempt %d, exit code %d", taskName(p, t.index), attempt, prev.exit)
			if prev.state != "REQUEUED" {
				slurmSays = fmt.Sprintf("Slurm task %s %s in attempt %d and requeued by Slurm, exit code %d", taskName(p, t.index), prev.state, attempt, prev.exit)
			}
			if prev.signal != 0 {
				slurmSays += fmt.Sprintf(", signal %d", prev.signal)
			}
		}
		ae, err := e.opts.Records.AttemptError(ctx, r.jobID, shard, attempt)
		switch {
		case err == nil && ae != nil && slurmSays != "":
			ae.Error = slurmSays + ": " + ae.Error
		case err != nil || ae == nil:
			if slurmSays == "" {
				slurmSays = fmt.Sprintf("Slurm task %s: attempt %d failed before the server restarted", taskName(lp, li), attempt)
			}
			ae = &batch.AttemptError{Attempt: attempt, At: time.Now().UTC(),
				Error: fmt.Sprintf("%s; see its log %s", slurmSays, e.logPath(r.jobID, lp, li))}
		}
		ae.Error = batch.ClipAttemptError(ae.Error)
		k.errors = append(k.errors, *ae)
	}
	slices.SortFunc(k.errors, func(a, b batch.AttemptError) int { return a.Attempt - b.Attempt })
}

// describe says why an attempt failed: Slurm's state and exit code, the
// worker's own record, and the tail of the task's log.
func (e *Executor) describe(ctx context.Context, r *run, p piece, t task, shard, attempt int, why string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Slurm task %s %s", taskName(p, t.index), t.state)
	if t.reason != "" && t.reason != "None" {
		fmt.Fprintf(&b, " (%s)", t.reason)
	}
	fmt.Fprintf(&b, ", exit code %d", t.exit)
	if t.signal != 0 {
		fmt.Fprintf(&b, ", signal %d", t.signal)
	}
	if why != "" {
		b.WriteString(": " + why)
	}
	if ae, err := e.opts.Records.AttemptError(ctx, r.jobID, shard, attempt); err == nil && ae != nil {
		b.WriteString(": " + ae.Error)
	}
	path := e.logPath(r.jobID, p, t.index)
	if tail := readTail(path); tail != "" {
		fmt.Fprintf(&b, "; log %s ends: %s", path, tail)
	} else {
		fmt.Fprintf(&b, "; log %s is empty or unreadable here", path)
	}
	return b.String()
}

// readTail returns the last lines of a log, joined by " | ".
func readTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-logTailBytes, 0)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // the first may be cut
	}
	lines = slices.DeleteFunc(lines, func(s string) bool { return strings.TrimSpace(s) == "" })
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return strings.Join(lines, " | ")
}

// progress reports one child per shard, holding on to the errors' text of
// the first full shards with failed attempts only. r.mu is held.
func (r *run) progress(full int) batch.Progress {
	p := batch.Progress{Done: true}
	for i, k := range r.kids {
		p.Children = append(p.Children, batch.Child{Shard: r.shards[i], State: k.state, Attempts: k.attempts, Errors: slices.Clone(k.errors)})
		if !k.final {
			p.Done = false
		}
	}
	slices.SortFunc(p.Children, func(a, b batch.Child) int { return a.Shard - b.Shard })
	var at map[int]*kid // by shard, made when needed
	batch.HandOverErrorsPast(p, full, func(shard int) []batch.AttemptError {
		if at == nil {
			at = make(map[int]*kid, len(r.kids))
			for i := range r.kids {
				at[r.shards[i]] = &r.kids[i]
			}
		}
		return at[shard].errors
	})
	return p
}

// runOf returns the run of handle, rebuilding it from the handle after a
// restart.
func (e *Executor) runOf(ctx context.Context, handle string) (*run, error) {
	e.mu.Lock()
	r := e.runs[handle]
	e.mu.Unlock()
	if r != nil {
		return r, nil
	}
	h, err := parseHandle(handle)
	if err != nil {
		return nil, err
	}
	shards, err := child.DecodeList(ctx, e.st, h.jobID, h.list)
	if err != nil {
		if errors.Is(err, child.ErrContract) {
			return nil, fmt.Errorf("slurm: handle of job %s: %w: %w", h.jobID, err, batch.ErrVanished)
		}
		return nil, fmt.Errorf("slurm: handle of job %s: %w", h.jobID, err)
	}
	if (len(shards)+h.chunk-1)/h.chunk != len(h.ids) {
		return nil, fmt.Errorf("slurm: handle of job %s: %d shards in arrays of %d do not make %d Slurm jobs: %w", h.jobID, len(shards), h.chunk, len(h.ids), batch.ErrVanished)
	}
	r = &run{jobID: h.jobID, maxAttempts: h.attempts, shards: shards, pieces: pieces(h.ids, h.chunk, len(shards)), found: true}
	r.kids = make([]kid, len(shards))
	for i := range r.kids {
		r.kids[i].state = batch.ShardPending
	}
	// The shards resubmitted as new Slurm jobs, each run by its latest.
	data, err := e.st.ReadAll(ctx, resubmitsKey(h.jobID, h.ids[0]))
	switch {
	case errors.Is(err, store.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("slurm: read the resubmissions of job %s: %w", h.jobID, err)
	default:
		resubs, err := parseResubmits(data, shards)
		if err != nil {
			return nil, fmt.Errorf("slurm: job %s: %w: %w", h.jobID, err, batch.ErrVanished)
		}
		for _, p := range resubs {
			r.kids[p.offset].piece = p.id
		}
		r.pieces = append(r.pieces, resubs...)
	}
	e.mu.Lock()
	if old := e.runs[handle]; old != nil {
		r = old
	} else {
		e.runs[handle] = r
	}
	e.mu.Unlock()
	e.log.Info("found job again", "job", h.jobID, "slurm_jobs", strings.Join(h.ids, ","), "shards", len(shards))
	return r, nil
}

// Cancel implements batch.Executor: scancel of every array, which cancels
// pending tasks at once and signals running ones.
func (e *Executor) Cancel(ctx context.Context, handle string) error {
	if handle == noChildren {
		return nil
	}
	r, err := e.runOf(ctx, handle)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.cancelled = true
	ids := make([]string, len(r.pieces))
	for i, p := range r.pieces {
		ids[i] = p.id
	}
	r.mu.Unlock()
	if err := e.scancel(ctx, ids); err != nil {
		return err
	}
	e.log.Info("cancelled", "job", r.jobID, "slurm_jobs", strings.Join(ids, ","))
	return nil
}

func (e *Executor) scancel(ctx context.Context, ids []string) error {
	if _, err := e.sh.Run(ctx, nil, "scancel", ids...); err != nil {
		return fmt.Errorf("slurm: cancel Slurm jobs %s: %w", strings.Join(ids, ","), err)
	}
	return nil
}
