package batch

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flightbatch/flightbatch/internal/clip"
)

// Bounds of a job's labels and name: they are kept in every manifest and
// answered by every list-jobs, so a client cannot make them large.
const (
	MaxLabels          = 32
	MaxLabelKeyLen     = 63
	MaxLabelValueLen   = 256
	MaxNameLen         = 64
	latestName         = "latest"
	labelKeyPattern    = `^[A-Za-z0-9][A-Za-z0-9_.-]*$`
	jobNamePattern     = `^[a-z][a-z0-9_.-]*$`
	jobNameExplanation = "a lower-case letter, then lower-case letters, digits, '_', '.' or '-'"
)

var (
	labelKeyRE = regexp.MustCompile(labelKeyPattern)
	jobNameRE  = regexp.MustCompile(jobNamePattern)
)

// ValidJobName checks a job's name. A name starts with a letter, so that it is
// never taken for a job ID (which starts with a digit), and "latest" is
// reserved for the newest-job lookup.
func ValidJobName(name string) error {
	switch {
	case len(name) > MaxNameLen:
		return invalidf("job name %s: at most %d characters", clip.Quote(name), MaxNameLen)
	case !jobNameRE.MatchString(name):
		return invalidf("job name %s: use %s", clip.Quote(name), jobNameExplanation)
	case name == latestName:
		return invalidf(`job name "latest" is reserved: jobs/latest means the newest job`)
	}
	return nil
}

// ValidLabels checks a job's labels: at most MaxLabels, keys of letters,
// digits, '_', '.' and '-', values of printable UTF-8.
func ValidLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return invalidf("%d labels: at most %d", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if len(k) == 0 || len(k) > MaxLabelKeyLen || !labelKeyRE.MatchString(k) {
			return invalidf("label key %s: 1 to %d letters, digits, '_', '.' or '-', starting with a letter or digit", clip.Quote(k), MaxLabelKeyLen)
		}
		if len(v) > MaxLabelValueLen {
			return invalidf("label %q: the value is longer than %d bytes", k, MaxLabelValueLen)
		}
		if !utf8.ValidString(v) || strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			return invalidf("label %q: the value must be printable UTF-8 text", k)
		}
	}
	return nil
}

// Query selects jobs from the history. Zero fields match every job.
type Query struct {
	// States keeps the jobs in one of these states.
	States []State
	// Dataset, Function, Name and SubmittedBy keep the jobs with exactly this
	// input, function, name or submitter.
	Dataset, Function, Name, SubmittedBy string
	// Labels keeps the jobs that carry every one of these labels.
	Labels map[string]string
	// Since and Until keep the jobs created at or after Since and before Until.
	Since, Until time.Time
	// Newest orders the jobs newest first (default oldest first).
	Newest bool
	// Limit keeps the first Limit jobs of that order (0: all).
	Limit int
}

// ParseState reads a job state, in any case.
func ParseState(s string) (State, error) {
	st := State(strings.ToUpper(s))
	switch st {
	case StateSubmitted, StateRunning, StateSucceeded, StateFailed, StateCancelled:
		return st, nil
	}
	return "", invalidf("state %s: use SUBMITTED, RUNNING, SUCCEEDED, FAILED or CANCELLED", clip.Quote(s))
}

func (q *Query) match(m *Manifest) bool {
	if len(q.States) > 0 {
		ok := false
		for _, s := range q.States {
			ok = ok || m.State == s
		}
		if !ok {
			return false
		}
	}
	switch {
	case q.Dataset != "" && m.Dataset != q.Dataset,
		q.Function != "" && m.Function != q.Function,
		q.Name != "" && m.Name != q.Name,
		q.SubmittedBy != "" && m.SubmittedBy != q.SubmittedBy,
		!q.Since.IsZero() && m.CreatedAt.Before(q.Since),
		!q.Until.IsZero() && !m.CreatedAt.Before(q.Until):
		return false
	}
	for k, v := range q.Labels {
		if got, ok := m.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Find returns copies of the jobs q selects, in q's order.
func (mg *Manager) Find(q Query) []*Manifest {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	out := mg.findLocked(q)
	for i, m := range out {
		out[i] = m.clone()
	}
	return out
}

// JobSummary is a job without its shards, the counts of its shards by state
// and, when asked for, the first of its shards with failed attempts: what a
// list of jobs or a job's status shows.
type JobSummary struct {
	// Job is the job's manifest without its shards (Shards is nil).
	Job    *Manifest
	Counts Counts
	// Failures are copies of the job's first shards with failed attempts,
	// in shard order, as many as asked for (none from Summaries);
	// FailuresTotal counts all of them.
	Failures      []ShardRecord
	FailuresTotal int
	// Rows and Bytes total the parts of the succeeded shards: -1 when a
	// part's rows (Rows nil) or size (Bytes 0) is not known.
	Rows, Bytes int64
}

// Summaries returns copies of the summaries of the jobs q selects, in q's
// order, without failed shards: however many shards the jobs have, it copies
// each job's manifest without its shards, and after releasing the manager's
// lock (a running job's shards change in place, under the job's own lock).
func (mg *Manager) Summaries(q Query) []JobSummary {
	return mg.SummariesWithFailures(q, 0)
}

// SummariesWithFailures is Summaries with, in each summary, copies of up to
// maxFailures of the job's shards with failed attempts: what list-jobs
// answers, at a cost bounded by maxFailures shards per job rather than by
// the jobs' shards.
func (mg *Manager) SummariesWithFailures(q Query, maxFailures int) []JobSummary {
	mg.mu.Lock()
	found := mg.findLocked(q)
	entries := make([]*entry, len(found))
	for i, m := range found {
		entries[i] = mg.jobs[m.JobID]
	}
	mg.mu.Unlock()
	out := make([]JobSummary, len(found))
	for i, m := range found {
		// A running job's shards change in place (see entry).
		entries[i].shards.RLock()
		out[i] = m.Summary(maxFailures)
		entries[i].shards.RUnlock()
	}
	return out
}

// Summary returns a copy of the summary of job id with up to maxFailures of
// its shards with failed attempts (see SummariesWithFailures), or
// ErrNotFound.
func (mg *Manager) Summary(id string, maxFailures int) (JobSummary, error) {
	m, e, err := mg.shared(id)
	if err != nil {
		return JobSummary{}, err
	}
	// A running job's shards change in place (see entry).
	e.shards.RLock()
	defer e.shards.RUnlock()
	return m.Summary(maxFailures), nil
}

// ReadJob calls read with job id's manifest as the manager holds it, its
// shards included, without copying it: what reading a whole job costs
// when only figures derived from its shards are wanted. read must not
// change the manifest, nor keep it or any part of it once it returns, and
// must be quick: the job's progress waits for it.
func (mg *Manager) ReadJob(id string, read func(m *Manifest)) error {
	m, e, err := mg.shared(id)
	if err != nil {
		return err
	}
	// A running job's shards change in place (see entry).
	e.shards.RLock()
	defer e.shards.RUnlock()
	read(m)
	return nil
}

// shared returns job id's manifest as the manager holds it, to read only,
// and its entry, or ErrNotFound: what reading a job costs without copying
// its shards. Its fields but its shards do not change (the manifest is
// replaced); read the shards of a job that has not ended holding
// e.shards read-locked.
func (mg *Manager) shared(id string) (*Manifest, *entry, error) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	e, ok := mg.jobs[id]
	if !ok {
		return nil, nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	return e.m, e, nil
}

// Summary returns a copy of m's summary with up to maxFailures of its shards
// with failed attempts. It only reads m.
func (m *Manifest) Summary(maxFailures int) JobSummary {
	head := *m
	head.Shards = nil
	s := JobSummary{Job: head.clone(), Counts: m.Counts()}
	for _, sh := range m.Shards {
		if sh.State == ShardSucceeded {
			switch {
			case sh.Rows == nil:
				s.Rows = -1
			case s.Rows >= 0:
				s.Rows += *sh.Rows
			}
			switch {
			case sh.Bytes <= 0:
				s.Bytes = -1
			case s.Bytes >= 0:
				s.Bytes += sh.Bytes
			}
		}
		if len(sh.Errors) == 0 {
			continue
		}
		if s.FailuresTotal++; len(s.Failures) < maxFailures {
			s.Failures = append(s.Failures, sh.clone())
		}
	}
	return s
}

// findLocked returns the manifests of the jobs q selects, in q's order,
// shared. mg.mu is held.
func (mg *Manager) findLocked(q Query) []*Manifest {
	var out []*Manifest
	for _, e := range mg.jobs {
		if q.match(e.m) {
			out = append(out, e.m)
		}
	}
	// Job IDs sort by creation time.
	sort.Slice(out, func(i, j int) bool {
		if q.Newest {
			return out[i].JobID > out[j].JobID
		}
		return out[i].JobID < out[j].JobID
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// Lookup returns the summary of the newest job q selects, or ErrNotFound.
func (mg *Manager) Lookup(q Query) (JobSummary, error) {
	q.Newest, q.Limit = true, 1
	if found := mg.Summaries(q); len(found) == 1 {
		return found[0], nil
	}
	return JobSummary{}, fmt.Errorf("no job matches: %w", ErrNotFound)
}

// checkTags validates a request's optional name and labels.
func checkTags(name string, labels map[string]string) error {
	if name != "" {
		if err := ValidJobName(name); err != nil {
			return err
		}
	}
	return ValidLabels(labels)
}

// JobVersion identifies a job's state at one moment, within one manager, and
// carries the times a view of the job measures from: a page can tell that
// it is unchanged without copying the job.
type JobVersion struct {
	// Seq is the manager's count of changes at the job's last change: it
	// differs whenever the job's manifest does.
	Seq        uint64
	State      State
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
}

// JobVersion returns the version of job id, or ErrNotFound.
func (mg *Manager) JobVersion(id string) (JobVersion, error) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	e, ok := mg.jobs[id]
	if !ok {
		return JobVersion{}, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	return JobVersion{Seq: e.seq, State: e.m.State, CreatedAt: e.m.CreatedAt,
		StartedAt: clonePtr(e.m.StartedAt), FinishedAt: clonePtr(e.m.FinishedAt)}, nil
}

// HistoryVersion returns the manager's count of changes, which differs
// whenever a job arrives, changes or is deleted, and whether any job q
// selects (whatever q.Limit) has not ended.
func (mg *Manager) HistoryVersion(q Query) (seq uint64, running bool) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	for _, e := range mg.jobs {
		if !e.m.State.Terminal() && q.match(e.m) {
			running = true
			break
		}
	}
	return mg.seq, running
}

// Part is one finished part of a job's result: its shard's index and name
// and its row count (-1 when not known).
type Part struct {
	Shard int
	Name  string
	Rows  int64
}

// Parts returns a copy of the summary of job id, with up to maxFailures of
// its shards with failed attempts, and its finished parts, in the order they
// finished (Manifest.FinishOrder) or, when finishOrder is false, the
// shards', or ErrNotFound: what a listing of the parts needs, without
// copying the other shards.
func (mg *Manager) Parts(id string, maxFailures int, finishOrder bool) (JobSummary, []Part, error) {
	m, e, err := mg.shared(id)
	if err != nil {
		return JobSummary{}, nil, err
	}
	// A running job's shards change in place (see entry).
	e.shards.RLock()
	defer e.shards.RUnlock()
	var order []int
	if finishOrder {
		order = m.FinishOrder()
	} else {
		for i, s := range m.Shards {
			if s.State == ShardSucceeded {
				order = append(order, i)
			}
		}
	}
	parts := make([]Part, len(order))
	for k, i := range order {
		s := &m.Shards[i]
		parts[k] = Part{Shard: i, Name: s.Name, Rows: -1}
		if s.Rows != nil {
			parts[k].Rows = *s.Rows
		}
	}
	return m.Summary(maxFailures), parts, nil
}
