// Package batch runs flightbatch's jobs: one computation (a Function, such as the
// built-in Welch PSD) over every shard of a dataset, as parallel child jobs on an
// Executor (this machine, or AWS Batch). Each child writes its part of the result
// to the store atomically as it finishes; a manifest per job records the dataset,
// parameters and shard states, so a restarted server finds its jobs again and
// every result stays addressable by its job ID.
package batch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

var (
	// ErrNotFound is wrapped by errors about an unknown job, shard or function.
	ErrNotFound = errors.New("not found")
	// ErrInvalid is wrapped by errors about a request that cannot run as given.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFinished is wrapped by errors about a result asked of a job, or a
	// shard, that has not finished.
	ErrNotFinished = errors.New("not finished")
)

// invalidError carries a message for the user and matches ErrInvalid (and
// whatever it wraps) without repeating the sentinel's text.
type invalidError struct{ err error }

func (e *invalidError) Error() string   { return e.err.Error() }
func (e *invalidError) Unwrap() []error { return []error{ErrInvalid, e.err} }

// invalidf formats an error that wraps ErrInvalid; %w in format wraps as usual.
func invalidf(format string, args ...any) error {
	return &invalidError{fmt.Errorf(format, args...)}
}

// Invalidf formats an error about a request that cannot run as given: it
// matches ErrInvalid (InvalidArgument at the Flight edge) and its message is
// the formatted text alone. Functions' Prepare methods use it.
func Invalidf(format string, args ...any) error { return invalidf(format, args...) }

// State is a job's state.
type State string

// The job states.
const (
	StateSubmitted State = "SUBMITTED"
	StateRunning   State = "RUNNING"
	StateSucceeded State = "SUCCEEDED"
	StateFailed    State = "FAILED"
	StateCancelled State = "CANCELLED"
)

// Terminal reports whether a job in state s is over.
func (s State) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// ShardState is the state of one child (one shard of a job).
type ShardState string

// The shard states.
const (
	ShardPending   ShardState = "PENDING"
	ShardRunning   ShardState = "RUNNING"
	ShardSucceeded ShardState = "SUCCEEDED"
	ShardFailed    ShardState = "FAILED"
	ShardCancelled ShardState = "CANCELLED"
)

// Prefix is the store prefix under which every job keeps its manifest and parts.
const Prefix = "jobs/"

// ManifestKey is the store key of a job's manifest: its current state.
func ManifestKey(jobID string) string { return Prefix + jobID + "/manifest.json" }

// RequestKey is the store key of a job's request: the manifest as submitted,
// written once before it and never changed, so that a damaged manifest can be
// rebuilt from it and the job's parts.
func RequestKey(jobID string) string { return Prefix + jobID + "/request.json" }

// FinalKey is the store key of a job's final state, written once when the job
// ends and before the manifest says so: a final state never changes, even if
// the manifest is lost.
func FinalKey(jobID string) string { return Prefix + jobID + "/final.json" }

// PartsPrefix is the store prefix of a job's parts.
func PartsPrefix(jobID string) string { return Prefix + jobID + "/parts/" }

// AttemptsPrefix is the store prefix of the records of a job's failed attempts.
func AttemptsPrefix(jobID string) string { return Prefix + jobID + "/attempts/" }

// PartKey is the store key of the result part of one shard.
func PartKey(jobID, shard string) string { return Prefix + jobID + "/parts/" + shard + ".arrow" }

// partRecordKey is the store key of the record of one shard's part.
func partRecordKey(jobID, shard string) string { return Prefix + jobID + "/parts/" + shard + ".json" }

// PartRecord is what a worker records of a part it wrote, next to it, so that
// nothing needs to know which function wrote it.
type PartRecord struct {
	// Rows is the part's row count.
	Rows int64 `json:"rows"`
}

func writePartRecord(ctx context.Context, st *store.Store, jobID, shard string, r PartRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := st.WriteAll(ctx, partRecordKey(jobID, shard), data); err != nil {
		return fmt.Errorf("record part %s of job %s: %w", shard, jobID, err)
	}
	return nil
}

// ReadPartRecord reads the record of a shard's part; ok is false when there is
// none (a part written before parts had records).
func ReadPartRecord(ctx context.Context, st *store.Store, jobID, shard string) (r PartRecord, ok bool, err error) {
	data, err := st.ReadAll(ctx, partRecordKey(jobID, shard))
	if errors.Is(err, store.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("batch: read the record of part %s of job %s: %w", shard, jobID, err)
	}
	if err := json.Unmarshal(data, &r); err != nil || r.Rows < 0 {
		return r, false, fmt.Errorf("batch: the record of part %s of job %s is malformed", shard, jobID)
	}
	return r, true, nil
}

func attemptKey(jobID, shard string, attempt int) string {
	return fmt.Sprintf("%s%s.%d.json", AttemptsPrefix(jobID), shard, attempt)
}

// attemptShard is the shard of the attempt record at key (attemptKey): a
// shard name may itself hold dots.
func attemptShard(jobID, key string) (string, bool) {
	name, ok := strings.CutSuffix(strings.TrimPrefix(key, AttemptsPrefix(jobID)), ".json")
	if i := strings.LastIndexByte(name, '.'); ok && i > 0 {
		return name[:i], true
	}
	return "", false
}

// attemptBasesKey is the store key of the shards' attempt bases of a job's
// current start (see ShardRecord.AttemptBase), by shard name; absent when
// every base is 0. The manager writes it before it starts children again;
// workers read it to number their attempts.
func attemptBasesKey(jobID string) string { return Prefix + jobID + "/attempt-bases.json" }

// AttemptNumber is the job's number of an executor's attempt n of shard:
// executors number the attempts of each start from 1, and a start after a
// restart continues from the attempts the shard had (its AttemptBase).
func AttemptNumber(ctx context.Context, st *store.Store, jobID, shard string, n int) (int, error) {
	bases, err := readAttemptBases(ctx, st, jobID)
	if err != nil {
		return 0, err
	}
	return bases[shard] + n, nil
}

func readAttemptBases(ctx context.Context, st *store.Store, jobID string) (map[string]int, error) {
	data, err := st.ReadAll(ctx, attemptBasesKey(jobID))
	if errors.Is(err, store.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("batch: read the attempt bases of job %s: %w", jobID, err)
	}
	var bases map[string]int
	if err := json.Unmarshal(data, &bases); err != nil {
		return nil, fmt.Errorf("batch: the attempt bases of job %s are malformed: %w", jobID, err)
	}
	return bases, nil
}

func writeAttemptBases(ctx context.Context, st *store.Store, jobID string, bases map[string]int) error {
	data, err := json.Marshal(bases)
	if err != nil {
		return err
	}
	if err := st.WriteAll(ctx, attemptBasesKey(jobID), data); err != nil {
		return fmt.Errorf("batch: save the attempt bases of job %s: %w", jobID, err)
	}
	return nil
}

// recordAttemptError keeps the error of a failed attempt in the store, where
// executors (child.Records) and a rebuilt manifest find it.
func recordAttemptError(ctx context.Context, st *store.Store, jobID, shard string, ae AttemptError) error {
	data, err := json.Marshal(ae)
	if err != nil {
		return err
	}
	if err := st.WriteAll(ctx, attemptKey(jobID, shard, ae.Attempt), data); err != nil {
		return fmt.Errorf("batch: record attempt %d of job %s shard %s: %w", ae.Attempt, jobID, shard, err)
	}
	return nil
}

// Final is a job's final state, as kept at FinalKey.
type Final struct {
	State      State     `json:"state"`
	Error      string    `json:"error,omitempty"`
	FinishedAt time.Time `json:"finished_at"`
}

// Manifest is a job's record, kept at ManifestKey(JobID).
type Manifest struct {
	JobID    string `json:"job_id"`
	Function string `json:"function"`
	// Dataset is the input: a dataset name, or "jobs/<id>" for a job's result.
	Dataset        string          `json:"dataset"`
	DatasetVersion string          `json:"dataset_version"`
	Params         json.RawMessage `json:"params"`
	// ResultSchema is the result's Arrow schema (IPC, base64); empty when the
	// function's schema is known only from its output.
	ResultSchema string        `json:"result_schema,omitempty"`
	State        State         `json:"state"`
	Error        string        `json:"error,omitempty"`
	Shards       []ShardRecord `json:"shards"`
	MaxAttempts  int           `json:"max_attempts"`
	Executor     string        `json:"executor"`
	// Handle is the executor's name for the running children (an AWS Batch job ID).
	Handle          string     `json:"handle,omitempty"`
	CancelRequested bool       `json:"cancel_requested,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	// Version is the version of flightbatch that created the job.
	Version string `json:"version"`
	// SubmittedBy names the caller that submitted the job, when the server
	// authenticates callers.
	SubmittedBy string `json:"submitted_by,omitempty"`
	// Name is the job's optional name (see ValidJobName); several jobs may
	// share one, and jobs/<name> means the newest of them.
	Name string `json:"name,omitempty"`
	// Labels are the job's free key/value tags (see ValidLabels).
	Labels map[string]string `json:"labels,omitempty"`
	// Units are the physical units of result columns the function knows
	// (UnitFunction), served in the result's provenance.
	Units map[string]string `json:"units,omitempty"`
	// ProgressSeq is the number of the last segment of the job's progress
	// log that the stored manifest holds (see ProgressPrefix): loading the
	// job replays the later ones. Meaningful in the store only.
	ProgressSeq int64 `json:"progress_seq,omitempty"`

	// cache is derived from Shards, so that recording a shard's progress
	// costs what changed (see caches).
	cache manifestCache
	// touched, when set, collects the indices of the shards changed in
	// place (see touch), for the next write of the job's progress.
	touched map[int]struct{}
}

// touch notes that shard i changed in place.
func (m *Manifest) touch(i int) {
	if m.touched != nil {
		m.touched[i] = struct{}{}
	}
}

// manifestCache is what a manifest derives from its shards, kept as they
// change in place.
type manifestCache struct {
	valid bool
	// lastDone is the highest finish number of the shards (ShardRecord.Done).
	lastDone int
	// errShards counts the shards with failed attempts; fullEnd is the
	// index of the last of the first MaxFullErrorShards of them, in shard
	// order, once there are that many (see boundFailures).
	errShards, fullEnd int
}

// caches returns m's cache, derived from its shards if it is not yet.
func (m *Manifest) caches() *manifestCache {
	c := &m.cache
	if c.valid {
		return c
	}
	*c = manifestCache{valid: true, fullEnd: -1}
	for i, s := range m.Shards {
		c.lastDone = max(c.lastDone, s.Done)
		if len(s.Errors) > 0 {
			if c.errShards++; c.errShards == MaxFullErrorShards {
				c.fullEnd = i
			}
		}
	}
	return c
}

// ShardRecord is one child's record in a manifest.
type ShardRecord struct {
	Name   string         `json:"name"`
	Input  string         `json:"input"`
	Format dataset.Format `json:"format"`
	// InputRows is the input shard's record count (-1 if unknown).
	InputRows int64          `json:"input_rows"`
	State     ShardState     `json:"state"`
	Attempts  int            `json:"attempts"`
	Errors    []AttemptError `json:"errors,omitempty"`
	// AttemptBase is how many attempts the shard had when the executor's
	// current start began (0 but after a restart that started children
	// again): the executor's attempt n of that start is the shard's attempt
	// AttemptBase+n. See AttemptNumber.
	AttemptBase int `json:"attempt_base,omitempty"`
	// AttemptLimit, once the job's executor has lost the shard's attempt
	// (see Manager.reconcile), is the last attempt the shard's budget
	// allows: the attempts it had when the job started (or resumed) plus
	// the job's MaxAttempts; a start after the loss does not renew it. 0:
	// AttemptBase + MaxAttempts.
	AttemptLimit int `json:"attempt_limit,omitempty"`
	// Rows is the row count of the shard's part, once it has succeeded (nil
	// while unknown).
	Rows *int64 `json:"rows,omitempty"`
	// Done numbers the succeeded shards in the order their parts finished
	// (from 1; 0 for a shard not succeeded, or one from before it was kept).
	Done int `json:"done,omitempty"`
	// Bytes is the stored size of the shard's part, once known.
	Bytes      int64      `json:"bytes,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// AttemptError records why one attempt of a child failed.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

// Counts tallies the shards of a job by state.
type Counts struct {
	Total     int `json:"total"`
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
}

// Counts tallies the job's shards by state.
func (m *Manifest) Counts() Counts {
	c := Counts{Total: len(m.Shards)}
	for _, s := range m.Shards {
		switch s.State {
		case ShardPending:
			c.Pending++
		case ShardRunning:
			c.Running++
		case ShardSucceeded:
			c.Succeeded++
		case ShardCancelled:
			c.Cancelled++
		default:
			c.Failed++
		}
	}
	return c
}

// Schema decodes the result schema, or returns nil if it is not known yet.
func (m *Manifest) Schema() (*arrow.Schema, error) {
	if m.ResultSchema == "" {
		return nil, nil
	}
	return decodeSchema(m.ResultSchema)
}

// SetSchema records the result schema.
func (m *Manifest) SetSchema(s *arrow.Schema) error {
	enc, err := encodeSchema(s)
	if err != nil {
		return fmt.Errorf("encode result schema: %w", err)
	}
	m.ResultSchema = enc
	return nil
}

// SaveManifest writes a job's manifest to the store atomically, as compact
// JSON: it is rewritten as the job runs, and indenting a manifest of many
// shards made it about a third larger (`jq .` shows it indented).
func SaveManifest(ctx context.Context, st *store.Store, m *Manifest) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("batch: encode manifest: %w", err)
	}
	if err := st.WriteAll(ctx, ManifestKey(m.JobID), data); err != nil {
		return fmt.Errorf("batch: save job %s: %w", m.JobID, err)
	}
	return nil
}

// decodeManifest parses a stored manifest or request and checks that it is
// whole: a truncated or overwritten object is refused, not half read.
func decodeManifest(jobID string, data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("job %s: decode manifest: %w", jobID, err)
	}
	if m.JobID != jobID || m.Function == "" || m.State == "" || len(m.Shards) == 0 {
		return nil, fmt.Errorf("job %s: the manifest is incomplete (job %q, function %q, state %q, %d shards)", jobID, m.JobID, m.Function, m.State, len(m.Shards))
	}
	clipErrors(&m)
	return &m, nil
}

// ReadRequest reads a job's request (the manifest as submitted).
func ReadRequest(ctx context.Context, st *store.Store, jobID string) (*Manifest, error) {
	data, err := st.ReadAll(ctx, RequestKey(jobID))
	if err != nil {
		if errors.Is(err, store.ErrNotExist) {
			return nil, fmt.Errorf("job %q has no request.json: %w", jobID, ErrNotFound)
		}
		return nil, fmt.Errorf("job %s: read request: %w", jobID, err)
	}
	return decodeManifest(jobID, data)
}

// ReadFinal reads a job's final state; it returns nil, nil if there is none.
func ReadFinal(ctx context.Context, st *store.Store, jobID string) (*Final, error) {
	data, err := st.ReadAll(ctx, FinalKey(jobID))
	if errors.Is(err, store.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: read final state: %w", jobID, err)
	}
	var f Final
	if err := json.Unmarshal(data, &f); err != nil || !f.State.Terminal() {
		return nil, fmt.Errorf("job %s: final.json is damaged (%v)", jobID, err)
	}
	f.Error = clipJobError(f.Error)
	return &f, nil
}

// RebuildManifest rebuilds a job's manifest from what outlives a damaged one:
// its request, its parts (a shard with a part succeeded), the records of its
// failed attempts, and its final state if it had one; it holds every segment
// of the job's progress log (ProgressSeq), which that makes stale. A job that had not
// ended comes back RUNNING with no executor handle, so a manager resumes it.
func RebuildManifest(ctx context.Context, st *store.Store, jobID string) (*Manifest, error) {
	m, err := ReadRequest(ctx, st, jobID)
	if err != nil {
		return nil, fmt.Errorf("rebuild job %s: %w", jobID, err)
	}
	parts, err := st.List(ctx, PartsPrefix(jobID))
	if err != nil {
		return nil, fmt.Errorf("rebuild job %s: %w", jobID, err)
	}
	have := map[string]bool{}
	for _, o := range parts {
		have[o.Key] = true
	}
	attempts, err := st.List(ctx, AttemptsPrefix(jobID))
	if err != nil {
		return nil, fmt.Errorf("rebuild job %s: %w", jobID, err)
	}
	hasErrors := map[string]bool{}
	for _, o := range attempts {
		if shard, ok := attemptShard(jobID, o.Key); ok {
			hasErrors[shard] = true
		}
	}
	// Bounded as read: a job of many failed shards keeps the text of the
	// first ones only (boundFailures).
	full := fullErrorShards(m.Shards, hasErrors)
	errs := map[string][]AttemptError{}
	for _, o := range attempts {
		shard, ok := attemptShard(jobID, o.Key)
		if !ok {
			continue
		}
		data, err := st.ReadAll(ctx, o.Key)
		if err != nil {
			continue
		}
		var a AttemptError
		if json.Unmarshal(data, &a) == nil && a.Attempt > 0 {
			if full[shard] {
				a.Error = ClipAttemptError(a.Error)
			} else {
				a.Error = shortAttemptError(shard, a.Attempt, a.Error)
			}
			errs[shard] = append(errs[shard], a)
		}
	}
	final, err := ReadFinal(ctx, st, jobID)
	if err != nil {
		return nil, fmt.Errorf("rebuild job %s: %w", jobID, err)
	}
	for i := range m.Shards {
		s := &m.Shards[i]
		s.Errors = errs[s.Name]
		sort.Slice(s.Errors, func(a, b int) bool { return s.Errors[a].Attempt < s.Errors[b].Attempt })
		s.Attempts = len(s.Errors)
		switch {
		case have[PartKey(jobID, s.Name)]:
			s.State = ShardSucceeded
			s.Attempts++
			if r, ok, err := ReadPartRecord(ctx, st, jobID, s.Name); err == nil && ok {
				n := r.Rows
				s.Rows = &n
			}
		case final != nil && final.State == StateCancelled:
			s.State = ShardCancelled
		case final != nil:
			s.State = ShardFailed
		default:
			s.State = ShardPending
		}
	}
	// The parts and records it was rebuilt from are newer than any
	// segment of its progress log: the rebuilt manifest holds them.
	if _, seq, err := progressSegments(ctx, st, jobID); err != nil {
		return nil, fmt.Errorf("rebuild job %s: %w", jobID, err)
	} else {
		m.ProgressSeq = seq
	}
	m.Handle = ""
	if final != nil {
		m.State, m.Error = final.State, final.Error
		at := final.FinishedAt
		m.FinishedAt = &at
	} else {
		m.State = StateRunning
	}
	return m, nil
}

// clone is a copy of the manifest that shares nothing with it.
func (m *Manifest) clone() *Manifest {
	c := *m
	c.touched = nil
	c.Params = slices.Clone(m.Params)
	c.StartedAt = clonePtr(m.StartedAt)
	c.FinishedAt = clonePtr(m.FinishedAt)
	c.Labels = maps.Clone(m.Labels)
	c.Units = maps.Clone(m.Units)
	if m.Shards != nil {
		c.Shards = cloneShards(m.Shards)
	}
	return &c
}

func (m *Manifest) shardIndex(name string) int {
	for i, s := range m.Shards {
		if s.Name == name {
			return i
		}
	}
	return -1
}

func encodeSchema(s *arrow.Schema) (string, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(s))
	if err := w.Close(); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

func decodeSchema(s string) (*arrow.Schema, error) {
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode result schema: %w", err)
	}
	r, err := ipc.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode result schema: %w", err)
	}
	defer r.Release()
	return r.Schema(), nil
}

var jobIDRE = regexp.MustCompile(`^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$`)

// ValidJobID reports whether id has the form of a job ID.
func ValidJobID(id string) bool { return jobIDRE.MatchString(id) }

// NewJobID returns an ID that sorts by creation time: UTC time to the
// millisecond, then random hex, e.g. 20261124T184501123Z-9f2c1a.
func NewJobID(t time.Time) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	t = t.UTC()
	return fmt.Sprintf("%s%03dZ-%s", t.Format("20060102T150405"), t.Nanosecond()/1e6, hex.EncodeToString(b[:]))
}
