package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/dataset"
)

// The environment variables a function's command finds, besides the server's own.
const (
	// EnvParams holds the request's params as a JSON object.
	EnvParams = "FLIGHTBATCH_PARAMS"
	// EnvJobID holds the job's ID.
	EnvJobID = "FLIGHTBATCH_JOB_ID"
	// EnvShard holds the name of the shard on stdin.
	EnvShard = "FLIGHTBATCH_SHARD"
	// EnvAttempt holds the attempt number, from 1.
	EnvAttempt = "FLIGHTBATCH_ATTEMPT"
	// EnvFunction holds the function's registered name.
	EnvFunction = "FLIGHTBATCH_FUNCTION"
)

// MaxParamsBytes bounds the params of a registered function, as compact JSON:
// they reach the command in one environment variable, and the kernel refuses
// to start a program with a variable over 128 KiB.
const MaxParamsBytes = 64 << 10

// DefaultStderrLimit is how much of the end of a command's stderr an External
// keeps for the error of a failed attempt.
const DefaultStderrLimit = 8 << 10

// ValidFunctionName reports whether name has the form of a function name:
// [a-z0-9][a-z0-9_-]{0,63}. A name is never a path. It is checked by hand:
// compiling that expression (the bounded repeat unrolled) cost every
// process's start, every worker child's included.
func ValidFunctionName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// External is a function the server's operator registers: a command run once per
// shard, with the shard as an Arrow IPC stream on stdin and its result as an
// Arrow IPC stream on stdout. The request's params reach it as JSON in
// FLIGHTBATCH_PARAMS, with FLIGHTBATCH_JOB_ID, FLIGHTBATCH_SHARD,
// FLIGHTBATCH_ATTEMPT and FLIGHTBATCH_FUNCTION. A non-zero exit fails the
// attempt, with the end of its stderr in the error. The command is executed
// directly (no shell) and nothing from a request is ever part of it.
type External struct {
	name        string
	description string
	image       string
	command     []string
	dir         string

	// StderrLimit bounds the stderr kept for errors (DefaultStderrLimit if <= 0).
	StderrLimit int
	// WaitDelay bounds how long, once the command has exited or been killed,
	// its run waits for processes it left holding stdout or stderr (default 5s).
	WaitDelay time.Duration
}

var _ Function = (*External)(nil)

// ExternalSpec is one entry of a functions file.
type ExternalSpec struct {
	// Command is the program and its arguments, executed directly.
	Command []string `json:"command"`
	// Description says in one line what the function computes.
	Description string `json:"description"`
	// Image names the container its children run in on AWS Batch.
	Image string `json:"image,omitempty"`
}

// NewExternal returns the function name running spec.Command in directory dir
// (the directory of the functions file; "" is the server's working directory).
// A relative program path (one with a slash, such as ./bin/peaks) resolves
// against dir, as do relative paths among the arguments, since the command runs
// in dir. Errors wrap ErrInvalid.
func NewExternal(name string, spec ExternalSpec, dir string) (*External, error) {
	switch {
	case !ValidFunctionName(name):
		return nil, invalidf("function name %q must match [a-z0-9][a-z0-9_-]{0,63}", name)
	case len(spec.Command) == 0 || spec.Command[0] == "":
		return nil, invalidf("function %q: \"command\" must name a program: [\"program\", \"arg\", ...]", name)
	}
	for i, a := range spec.Command {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, invalidf("function %q: command element %d holds a NUL byte", name, i)
		}
	}
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("function %q: %w", name, err)
		}
		dir = abs
	}
	cmd := append([]string(nil), spec.Command...)
	if p := cmd[0]; !filepath.IsAbs(p) && strings.ContainsRune(p, filepath.Separator) && dir != "" {
		cmd[0] = filepath.Join(dir, p)
	}
	desc := spec.Description
	if desc == "" {
		desc = "runs " + filepath.Base(cmd[0])
	}
	return &External{name: name, description: desc, image: spec.Image, command: cmd, dir: dir}, nil
}

// Name implements Function.
func (f *External) Name() string { return f.name }

// Description implements Function.
func (f *External) Description() string { return f.description }

// Image names the container image (on AWS Batch, the job definition) that the
// function's children run in; empty means the worker's default.
func (f *External) Image() string { return f.image }

// Command returns the program and arguments the function executes.
func (f *External) Command() []string { return append([]string(nil), f.command...) }

// Dir is the directory the command runs in.
func (f *External) Dir() string { return f.dir }

// ImageOf returns the container image a function's children run in: External's
// Image, or "" for functions that run in the worker's own image.
func ImageOf(f Function) string {
	if im, ok := f.(interface{ Image() string }); ok {
		return im.Image()
	}
	return ""
}

// Prepare implements Function. The params must be a JSON object (absent means
// {}); the command alone knows what they mean. The result schema is known only
// from the output: the job's is the first shard's, and every shard must agree.
func (f *External) Prepare(params json.RawMessage, _ *arrow.Schema) (*arrow.Schema, json.RawMessage, error) {
	if len(bytes.TrimSpace(params)) == 0 || bytes.Equal(bytes.TrimSpace(params), []byte("null")) {
		return nil, json.RawMessage("{}"), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(params, &obj); err != nil || obj == nil {
		return nil, nil, invalidf("function %s: \"params\" must be a JSON object", f.name)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, params); err != nil {
		return nil, nil, invalidf("function %s: params: %v", f.name, err)
	}
	if buf.Len() > MaxParamsBytes {
		return nil, nil, invalidf("function %s: params are %d bytes of JSON; a registered function takes at most %d (they reach it in the environment variable %s)", f.name, buf.Len(), MaxParamsBytes, EnvParams)
	}
	return nil, buf.Bytes(), nil
}

// Run implements Function: it starts the command, streams the shard to its stdin
// while it reads the command's stdout, and emits what it reads. Cancelling ctx
// kills the command and every process it started.
func (f *External) Run(ctx context.Context, task Task, in array.RecordReader, emit func(arrow.RecordBatch) error) error {
	alloc := task.Alloc
	if alloc == nil {
		alloc = memory.DefaultAllocator
	}
	params := task.Params
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	cctx, kill := context.WithCancelCause(ctx)
	defer kill(nil)
	cmd := exec.CommandContext(cctx, f.command[0], f.command[1:]...)
	cmd.Dir = f.dir
	cmd.Env = append(os.Environ(),
		EnvParams+"="+string(params),
		EnvJobID+"="+task.JobID,
		EnvShard+"="+task.Shard,
		EnvAttempt+"="+strconv.Itoa(task.Attempt),
		EnvFunction+"="+f.name,
	)
	limit := f.StderrLimit
	if limit <= 0 {
		limit = DefaultStderrLimit
	}
	stderr := &tailBuffer{limit: limit}
	cmd.Stderr = stderr
	cmd.WaitDelay = f.WaitDelay
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = 5 * time.Second
	}
	ownProcessGroup(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("function %s: %w", f.name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("function %s: %w", f.name, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("function %s: start %s: %w", f.name, f.command[0], err)
	}
	// Stop any process the command left behind once it is over.
	defer killProcessGroup(cmd)

	fed := make(chan error, 1)
	go func() { fed <- feed(stdin, in, alloc, kill) }()

	readErr := drain(stdout, alloc, emit)
	var grace *time.Timer
	switch {
	case readErr == nil:
	case errors.Is(readErr, errEmit):
		kill(readErr) // our side failed: the command's output has nowhere to go
	default:
		// The output is unreadable. Give a command that is exiting on its own
		// (say, after a traceback) a moment, so its exit status is what we report.
		grace = time.AfterFunc(time.Second, func() { kill(readErr) })
	}
	waitErr := cmd.Wait()
	if grace != nil {
		grace.Stop()
	}
	feedErr := <-fed

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("function %s: %w", f.name, context.Cause(ctx))
	}
	if cause := context.Cause(cctx); cause != nil && !errors.Is(cause, context.Canceled) {
		if errors.Is(cause, errInput) {
			return cause
		}
		return f.failure(cause.Error(), stderr)
	}
	var exitErr *exec.ExitError
	if errors.As(waitErr, &exitErr) {
		return f.failure(describeExit(exitErr.ProcessState), stderr)
	}
	if waitErr != nil && !errors.Is(waitErr, exec.ErrWaitDelay) {
		return f.failure(waitErr.Error(), stderr)
	}
	if readErr != nil {
		return f.failure(readErr.Error(), stderr)
	}
	if feedErr != nil {
		return f.failure(feedErr.Error(), stderr)
	}
	return nil
}

// failure formats a failed attempt with the end of the command's stderr.
func (f *External) failure(what string, stderr *tailBuffer) error {
	msg := fmt.Sprintf("function %s: %s", f.name, what)
	if tail := stderr.String(); tail != "" {
		msg += "; stderr: " + tail
	} else {
		msg += " (stderr was empty)"
	}
	return errors.New(msg)
}

func describeExit(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("the command was killed by signal %s", ws.Signal())
	}
	return fmt.Sprintf("the command exited with status %d", ps.ExitCode())
}

var (
	// errInput marks a failure to read the shard (the command is not to blame).
	errInput = errors.New("read the shard")
	// errEmit marks a failure to keep the command's output.
	errEmit = errors.New("write the result")
)

// feed writes the shard to the command's stdin as an Arrow IPC stream and closes
// it. When the shard cannot be read it kills the command before closing, so the
// command never mistakes a truncated stream for the whole shard. A command that
// stops reading (it exited) ends the feeding quietly: its exit status and output
// tell whether it succeeded.
func feed(stdin io.WriteCloser, in array.RecordReader, alloc memory.Allocator, kill context.CancelCauseFunc) error {
	w := ipc.NewWriter(stdin, ipc.WithSchema(in.Schema()), ipc.WithAllocator(alloc))
	for in.Next() {
		if err := w.Write(in.RecordBatch()); err != nil {
			return pipeGone(err, stdin, kill)
		}
	}
	if err := in.Err(); err != nil {
		err = fmt.Errorf("%w: %w", errInput, err)
		kill(err)
		return err
	}
	if err := w.Close(); err != nil {
		return pipeGone(err, stdin, kill)
	}
	if err := stdin.Close(); err != nil && !isPipeGone(err) {
		return fmt.Errorf("close stdin: %w", err)
	}
	return nil
}

// pipeGone handles a failed write to stdin: a closed pipe is the command's
// choice; anything else kills the command (its input would be incomplete).
func pipeGone(err error, stdin io.Closer, kill context.CancelCauseFunc) error {
	if isPipeGone(err) {
		stdin.Close()
		return nil
	}
	err = fmt.Errorf("write the shard to stdin: %w", err)
	kill(err)
	return err
}

func isPipeGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}

// drain reads the command's stdout as an Arrow IPC stream and emits its batches.
// A stream with a schema and no batches emits one empty batch, so the part
// records the schema.
func drain(stdout io.Reader, alloc memory.Allocator, emit func(arrow.RecordBatch) error) error {
	r, err := ipc.NewReader(stdout, ipc.WithAllocator(alloc))
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the command wrote no Arrow IPC stream on stdout")
		}
		return fmt.Errorf("stdout is not an Arrow IPC stream: %v", err)
	}
	defer r.Release()
	n := 0
	for r.Next() {
		if err := dataset.ValidateRecord(r.RecordBatch()); err != nil {
			return fmt.Errorf("batch %d of the Arrow IPC stream on stdout is malformed: %v", n, err)
		}
		if err := emit(r.RecordBatch()); err != nil {
			return fmt.Errorf("%w: %w", errEmit, err)
		}
		n++
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("read the Arrow IPC stream on stdout after %d batch(es): %v", n, err)
	}
	if n == 0 {
		rec := emptyBatch(r.Schema(), alloc)
		defer rec.Release()
		if err := emit(rec); err != nil {
			return fmt.Errorf("%w: %w", errEmit, err)
		}
	}
	return nil
}

// emptyBatch returns a batch of no rows.
func emptyBatch(s *arrow.Schema, alloc memory.Allocator) arrow.RecordBatch {
	cols := make([]arrow.Array, s.NumFields())
	for i, fld := range s.Fields() {
		cols[i] = array.MakeArrayOfNull(alloc, fld.Type, 0)
	}
	rec := array.NewRecordBatch(s, cols, 0)
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	mu        sync.Mutex
	limit     int
	buf       []byte
	truncated bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.limit {
		t.truncated = t.truncated || len(t.buf) > 0 || len(p) > t.limit
		t.buf = append(t.buf[:0], p[len(p)-t.limit:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.limit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.truncated = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns the kept text, starting at a character boundary, marked with
// "..." when its beginning was dropped.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if t.truncated {
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
			b = b[1:]
		}
	}
	s := strings.TrimSpace(string(b))
	if t.truncated {
		s = "..." + s
	}
	return s
}
