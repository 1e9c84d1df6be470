package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/internal/backoff"
	"github.com/flightbatch/flightbatch/store"
)

// Options tune a Manager.
type Options struct {
	// MaxAttempts is how many times a child is tried before its shard fails (default 3).
	MaxAttempts int
	// Version is recorded in every manifest.
	Version string
	// Log receives the manager's structured logs.
	Log *slog.Logger
	// Alloc allocates the batches of results read back (default memory.DefaultAllocator).
	Alloc memory.Allocator
	// Retry governs the retries of executor calls (Start, Poll) and of saving
	// a job's state (default: 0.5 s doubling to 15 s, jittered, for 2 min;
	// a job's final state is saved until it succeeds or the manager closes).
	Retry backoff.Policy
	// Now is the clock of job creation times and retention (default time.Now).
	Now func() time.Time
	// SaveInterval is how often a running job's progress (its shards'
	// states, attempts and errors) is written to the store (default
	// DefaultSaveInterval): the store's manifest of a running job lags its
	// state in memory by up to this much. A job's submission, its start,
	// a cancel request and its end are written at once.
	SaveInterval time.Duration
}

// DefaultSaveInterval is the default of Options.SaveInterval. Whatever the
// manifest of a running job lags, nothing is lost when the server stops:
// every finished part and every failed attempt has its own object in the
// store, and a restarted server counts them (see catchUp).
const DefaultSaveInterval = 5 * time.Second

// Manager submits jobs, follows them on an executor, keeps their manifests in
// the store, and serves their results.
type Manager struct {
	st    *store.Store
	cat   *dataset.Catalog
	fns   *Registry
	exec  Executor
	opts  Options
	log   *slog.Logger
	alloc memory.Allocator

	ctx    context.Context // ends when the manager closes
	stop   context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	jobs   map[string]*entry
	seq    uint64 // changes of the jobs so far (see notifyLocked)
	closed bool
	last   time.Time // the newest job's creation time

	// fold is when progress logs are folded into their manifests.
	fold foldRule
	// saved counts the manifests written to the store and their bytes;
	// segments the segments of progress logs.
	saved, segments struct{ n, bytes atomic.Int64 }
}

// entry is the manager's view of one job.
type entry struct {
	// saving serialises the changes of the job's state: whoever changes m
	// holds it (and may read m without mg.mu).
	saving sync.Mutex
	// m is the job's state. A change of its state, handle, cancel request or
	// times (update) is stored before it is published: m is then replaced
	// under mg.mu. The progress of its shards (progress) changes m.Shards in
	// place, under saving, mg.mu and shards, and reaches the store at the
	// next flush. Read m under mg.mu, or its shards under shards (read-locked)
	// once m is taken under mg.mu; a terminal m no longer changes.
	m *Manifest
	// shards is held to change m.Shards in place, and read-held to read
	// them outside mg.mu.
	shards sync.RWMutex
	// dirty is set when m holds progress the store does not have yet.
	dirty atomic.Bool
	// pending holds the shards changed in place since the last write of the
	// job's progress, under saving.
	pending map[int]struct{}
	// writing orders the writes of m to the store: taken under saving, so
	// that a newer state is never overwritten by an older one.
	writing sync.Mutex
	// plog is the job's progress log in the store, under writing.
	plog progressLog
	// changed is closed, and replaced, whenever the job changes.
	changed chan struct{}
	seq     uint64        // mg.seq at the job's last change
	cancel  chan struct{} // closed when a cancel is requested
	// result is what streaming the merged result needs, derived from m
	// once m is SUCCEEDED (see mergedResult), under mg.mu.
	result *mergedResult
}

// mergedResult is what OpenResult needs to stream a SUCCEEDED job's merged
// result, derived once from the manifest m (which is replaced, never changed
// in place): the result schema, that schema with provenance, and the parts.
// The parts themselves are read, and checked, at every stream.
type mergedResult struct {
	m            *Manifest
	schema, prov *arrow.Schema
	files        []dataset.File
}

// NewManager returns a manager over the datasets of cat, running the functions
// of fns on exec. Call Recover before serving.
func NewManager(cat *dataset.Catalog, fns *Registry, exec Executor, opts *Options) *Manager {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Alloc == nil {
		o.Alloc = memory.DefaultAllocator
	}
	if o.Retry.Initial <= 0 {
		o.Retry.Initial = 500 * time.Millisecond
	}
	if o.Retry.Max <= 0 {
		o.Retry.Max = 15 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SaveInterval <= 0 {
		o.SaveInterval = DefaultSaveInterval
	}
	ctx, stop := context.WithCancel(context.Background())
	mg := &Manager{
		st: cat.Store(), cat: cat, fns: fns, exec: exec, opts: o,
		log: o.Log.With("component", "batch"), alloc: o.Alloc,
		ctx: ctx, stop: stop, jobs: map[string]*entry{},
		fold: foldRule{segments: maxProgressSegments},
	}
	mg.wg.Add(1)
	go mg.saveProgress()
	return mg
}

// Functions is the manager's function registry.
func (mg *Manager) Functions() *Registry { return mg.fns }

// Close stops following jobs, and writes the progress of the running ones
// that the store does not have yet; it does not cancel them, so a restarted
// server takes them up again.
func (mg *Manager) Close() {
	mg.abandon()
	ctx, cancel := context.WithTimeout(context.Background(), closeFlushTimeout)
	defer cancel()
	mg.flushAll(ctx)
}

// closeFlushTimeout bounds the last writes of progress when a manager closes.
const closeFlushTimeout = 30 * time.Second

// abandon stops following jobs, as a crash would: what the store does not
// have of their progress is not written.
func (mg *Manager) abandon() {
	mg.mu.Lock()
	mg.closed = true
	mg.mu.Unlock()
	mg.stop()
	mg.wg.Wait()
}

// saveProgress writes, every SaveInterval until the manager closes, the
// progress of the running jobs that the store does not have yet.
func (mg *Manager) saveProgress() {
	defer mg.wg.Done()
	t := time.NewTicker(mg.opts.SaveInterval)
	defer t.Stop()
	for {
		select {
		case <-mg.ctx.Done():
			return
		case <-t.C:
			mg.flushAll(context.WithoutCancel(mg.ctx))
		}
	}
}

// flushAll writes the progress of every job whose store lags it.
func (mg *Manager) flushAll(ctx context.Context) {
	mg.mu.Lock()
	var dirty []*entry
	for _, e := range mg.jobs {
		if e.dirty.Load() {
			dirty = append(dirty, e)
		}
	}
	mg.mu.Unlock()
	for _, e := range dirty {
		mg.flush(ctx, e)
	}
}

// flush writes a job's progress if the store lags it: the shards changed
// since the last write, as a segment of the job's progress log, or the whole
// manifest when the log has grown enough to be folded into it (see
// progressLog.fold). A write that fails is tried again at the next flush.
func (mg *Manager) flush(ctx context.Context, e *entry) {
	e.saving.Lock()
	if !e.dirty.Load() || ctx.Err() != nil {
		e.saving.Unlock()
		return
	}
	pend := e.pending
	e.pending = nil
	e.dirty.Store(false)
	e.writing.Lock()
	e.saving.Unlock() // the job goes on while its progress is written
	defer e.writing.Unlock()
	// Only update replaces e.m, under writing; its shards change in place
	// under shards.
	m := e.m
	if m.State.Terminal() {
		return // its final manifest holds everything
	}
	for i := range e.plog.retry {
		if pend == nil {
			pend = map[int]struct{}{}
		}
		pend[i] = struct{}{}
	}
	e.plog.retry = nil
	if len(pend) == 0 {
		return
	}
	indices := make([]int, 0, len(pend))
	for i := range pend {
		indices = append(indices, i)
	}
	slices.Sort(indices)
	seq := e.plog.seq + 1
	e.shards.RLock()
	// A segment of most shards would be folded at once: not encoded.
	estimate := int64(len(indices)) * e.plog.manifestBytes / int64(max(len(m.Shards), 1))
	var data []byte
	var err error
	fold := e.plog.fold(mg.fold, int(estimate))
	if !fold {
		data, err = encodeSegment(m, seq, indices)
		fold = err == nil && e.plog.fold(mg.fold, len(data))
	}
	if fold {
		h := *m
		h.touched = nil
		h.ProgressSeq = e.plog.seq
		data, err = json.Marshal(&h)
	}
	e.shards.RUnlock()
	if err != nil {
		e.plog.retry = pend
		e.dirty.Store(true)
		mg.log.Error("encode job progress", "job", m.JobID, "err", err)
		return
	}
	if fold {
		err = mg.saveData(ctx, m.JobID, data)
		if err == nil {
			mg.folded(ctx, e, len(data))
		}
	} else {
		err = mg.saveSegment(ctx, m.JobID, seq, data)
		if err == nil {
			e.plog.seq = seq
			e.plog.segs = append(e.plog.segs, segmentKey(m.JobID, seq))
			e.plog.segBytes += int64(len(data))
		}
	}
	if err != nil {
		e.plog.retry = pend
		e.dirty.Store(true)
		mg.log.Warn("save job progress; will retry", "job", m.JobID, "err", err)
	}
}

// saveSegment writes segment seq of a job's progress log.
func (mg *Manager) saveSegment(ctx context.Context, id string, seq int64, data []byte) error {
	if err := mg.st.WriteAll(ctx, segmentKey(id, seq), data); err != nil {
		return fmt.Errorf("batch: save the progress of job %s: %w", id, err)
	}
	mg.segments.n.Add(1)
	mg.segments.bytes.Add(int64(len(data)))
	return nil
}

// folded records, under e.writing, that the job's manifest of size bytes
// is stored and holds every segment of its progress log, and deletes them:
// a segment deleted before that manifest was stored would lose progress,
// one left behind by a deletion cut short is ignored as the job loads
// (Manifest.ProgressSeq).
func (mg *Manager) folded(ctx context.Context, e *entry, size int) {
	e.plog.manifestBytes = int64(size)
	e.plog.retry = nil
	segs := e.plog.segs
	e.plog.segs, e.plog.segBytes = nil, 0
	mg.deleteSegments(ctx, e.m.JobID, segs)
}

// deleteSegments deletes segments of a job's progress log that its stored
// manifest holds; one that stays is ignored as the job loads.
func (mg *Manager) deleteSegments(ctx context.Context, id string, keys []string) {
	for _, k := range keys {
		if err := mg.st.Delete(ctx, k); err != nil && !errors.Is(err, store.ErrNotExist) {
			mg.log.Warn("delete a folded segment of a job's progress", "job", id, "key", k, "err", err)
		}
	}
}

// Recover loads every job's manifest from the store and follows again the jobs
// that had not finished: an executor that still runs their children reports
// them; otherwise their unfinished shards start again, and finished parts are
// kept.
func (mg *Manager) Recover(ctx context.Context) error {
	ids, err := mg.st.ListDirs(ctx, Prefix)
	if err != nil {
		return fmt.Errorf("batch: recover jobs: %w", err)
	}
	for _, id := range ids {
		if !ValidJobID(id) {
			continue
		}
		m, plog, err := mg.load(ctx, id)
		if err != nil {
			mg.log.Warn("skip unreadable job", "job", id, "err", err)
			continue
		}
		mg.mu.Lock()
		e := &entry{m: m, plog: plog, changed: make(chan struct{}), cancel: make(chan struct{})}
		if m.CancelRequested {
			close(e.cancel)
		}
		mg.jobs[id] = e
		mg.notifyLocked(e)
		if m.CreatedAt.After(mg.last) {
			mg.last = m.CreatedAt
		}
		mg.mu.Unlock()
		if !m.State.Terminal() {
			mg.log.Info("resume job", "job", id, "state", m.State)
			mg.follow(id)
		}
	}
	return nil
}

// load reads a job's stored state for Recover: its manifest and the
// segments of its progress log the manifest does not hold (ReadManifest). A
// damaged or missing manifest is rebuilt from the job's request and parts
// (and saved); a final state stored apart from the manifest wins over it,
// so that a job that ended stays ended.
func (mg *Manager) load(ctx context.Context, id string) (*Manifest, progressLog, error) {
	s, err := readStored(ctx, mg.st, id)
	if err != nil {
		if errors.Is(err, errReadProgress) {
			return nil, progressLog{}, err
		}
		var serr error
		if !errors.Is(err, ErrNotFound) {
			// A store that cannot be read is not a damaged manifest.
			if _, serr = mg.st.Stat(ctx, ManifestKey(id)); serr != nil && !errors.Is(serr, store.ErrNotExist) {
				return nil, progressLog{}, err
			}
		}
		rebuilt, rerr := RebuildManifest(ctx, mg.st, id)
		if rerr != nil {
			return nil, progressLog{}, fmt.Errorf("%w; %w", err, rerr)
		}
		mg.log.Warn("rebuilt the manifest of a job from its request and parts", "job", id, "state", rebuilt.State, "manifest_error", err)
		size, err := mg.save(ctx, rebuilt)
		if err != nil {
			return nil, progressLog{}, err
		}
		// The rebuilt manifest holds its progress log (RebuildManifest).
		if keys, _, err := progressSegments(ctx, mg.st, id); err == nil {
			mg.deleteSegments(ctx, id, keys)
		}
		return rebuilt, progressLog{seq: rebuilt.ProgressSeq, manifestBytes: int64(size)}, nil
	}
	m, plog := s.m, s.log
	for _, d := range s.damaged {
		mg.log.Warn("skip a damaged segment of a job's progress; the job's parts and attempt records are counted as it resumes", "job", id, "segment", d)
	}
	mg.deleteSegments(ctx, id, s.stale)
	if !m.State.Terminal() {
		f, err := ReadFinal(ctx, mg.st, id)
		if err != nil {
			return nil, progressLog{}, err
		}
		if f != nil {
			m.State, m.Error = f.State, f.Error
			at := f.FinishedAt
			m.FinishedAt = &at
			to := ShardFailed
			switch f.State {
			case StateCancelled:
				to = ShardCancelled
			case StateSucceeded:
				to = ShardSucceeded // every shard had its part
			}
			endUnfinished(m, to)
			m.ProgressSeq = plog.seq
			size, err := mg.save(ctx, m)
			if err != nil {
				return nil, progressLog{}, err
			}
			mg.deleteSegments(ctx, id, plog.segs)
			plog = progressLog{seq: plog.seq, manifestBytes: int64(size)}
		}
	}
	// The manifest of a running job may lag its parts and attempts: an
	// executor that still runs its children reports them at the first
	// poll, and a job no executor runs is caught up as it resumes (resume).
	return m, plog, nil
}

// SubmitRequest asks for a job.
type SubmitRequest struct {
	Function string
	// Dataset is a dataset name or "jobs/<id>" (a finished job's result).
	Dataset string
	Params  json.RawMessage
	// Reuse returns an earlier succeeded job with the same function, dataset
	// version and parameters instead of running again.
	Reuse bool
	// SubmittedBy names the caller, when the server authenticates callers.
	SubmittedBy string
	// Name and Labels tag the job for finding it again (optional).
	Name   string
	Labels map[string]string
}

// input is a job's resolved input.
type input struct {
	version string
	schema  *arrow.Schema
	shards  []ShardRecord
}

func (mg *Manager) resolve(ctx context.Context, name string) (*input, error) {
	if id, ok := strings.CutPrefix(name, "jobs/"); ok {
		m, err := mg.Status(id)
		if err != nil {
			return nil, err
		}
		if m.State != StateSucceeded {
			return nil, fmt.Errorf("job %s is %s; only a succeeded job's result can be an input: %w", id, m.State, ErrNotFinished)
		}
		in := &input{version: "job:" + id}
		for _, s := range m.Shards {
			rows := int64(-1)
			if s.Rows != nil {
				rows = *s.Rows
			}
			in.shards = append(in.shards, ShardRecord{Name: s.Name, Input: PartKey(id, s.Name), Format: dataset.FormatArrow, InputRows: rows})
		}
		schema, err := m.Schema()
		if err != nil {
			return nil, err
		}
		if schema == nil {
			r, err := dataset.OpenFile(ctx, mg.st, in.shards[0].Input, dataset.FormatArrow, mg.alloc)
			if err != nil {
				return nil, err
			}
			schema = r.Schema()
			r.Release()
		}
		in.schema = schema
		return in, nil
	}
	ds, err := mg.cat.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	schema, err := mg.cat.Schema(ctx, ds)
	if err != nil {
		return nil, err
	}
	in := &input{version: ds.Version, schema: schema}
	for _, s := range ds.Shards {
		in.shards = append(in.shards, ShardRecord{Name: s.Name, Input: s.Key, Format: s.Format, InputRows: s.Rows})
	}
	return in, nil
}

// Submit validates a request, records the job and starts its children. It
// returns once the job is recorded; the children run in the background.
func (mg *Manager) Submit(ctx context.Context, req SubmitRequest) (*Manifest, error) {
	fn, err := mg.fns.Get(req.Function)
	if err != nil {
		return nil, err
	}
	if err := checkTags(req.Name, req.Labels); err != nil {
		return nil, err
	}
	in, err := mg.resolve(ctx, req.Dataset)
	if err != nil {
		return nil, err
	}
	schema, params, err := fn.Prepare(req.Params, in.schema)
	if err != nil {
		return nil, err
	}
	if req.Reuse {
		if m := mg.findReusable(fn, req.Dataset, in.version, params); m != nil {
			return m, nil
		}
	}
	now := mg.creationTime()
	m := &Manifest{
		JobID:          NewJobID(now),
		Function:       fn.Name(),
		Dataset:        req.Dataset,
		DatasetVersion: in.version,
		Params:         params,
		State:          StateSubmitted,
		MaxAttempts:    mg.opts.MaxAttempts,
		Executor:       mg.exec.Name(),
		CreatedAt:      now,
		Version:        mg.opts.Version,
		SubmittedBy:    req.SubmittedBy,
		Name:           req.Name,
		Labels:         req.Labels,
		Units:          resultUnits(fn, params, in.schema),
	}
	if schema != nil {
		if err := m.SetSchema(schema); err != nil {
			return nil, fmt.Errorf("batch: %w", err)
		}
	}
	for _, s := range in.shards {
		s.State = ShardPending
		m.Shards = append(m.Shards, s)
	}
	if err := SaveRequest(ctx, mg.st, m); err != nil {
		return nil, err
	}
	size, err := mg.save(ctx, m)
	if err != nil {
		_ = mg.st.Delete(context.WithoutCancel(ctx), RequestKey(m.JobID))
		return nil, err
	}
	mg.mu.Lock()
	if mg.closed {
		mg.mu.Unlock()
		return nil, errors.New("batch: the server is shutting down")
	}
	if err := mg.inputGoneLocked(m); err != nil {
		mg.mu.Unlock()
		// Both, or a restart would rebuild the job from its request.
		_ = mg.st.Delete(context.WithoutCancel(ctx), ManifestKey(m.JobID))
		_ = mg.st.Delete(context.WithoutCancel(ctx), RequestKey(m.JobID))
		return nil, err
	}
	e := &entry{m: m, plog: progressLog{manifestBytes: int64(size)}, changed: make(chan struct{}), cancel: make(chan struct{})}
	mg.jobs[m.JobID] = e
	mg.notifyLocked(e)
	submitted := m.clone()
	mg.mu.Unlock()
	mg.log.Info("job submitted", "job", m.JobID, "function", m.Function, "dataset", m.Dataset, "shards", len(m.Shards), "by", m.SubmittedBy)
	mg.follow(m.JobID)
	return submitted, nil
}

// creationTime returns a time after every earlier job's, to the millisecond of
// job IDs, so that IDs sort in creation order.
func (mg *Manager) creationTime() time.Time {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	now := mg.opts.Now().UTC().Truncate(time.Millisecond)
	if !now.After(mg.last) {
		now = mg.last.Add(time.Millisecond)
	}
	mg.last = now
	return now
}

// findReusable returns the newest succeeded job of fn over the same dataset
// version whose effective parameters equal params' (reuseKey), or nil.
func (mg *Manager) findReusable(fn Function, ds, version string, params json.RawMessage) *Manifest {
	want, err := reuseKey(fn, params)
	if err != nil {
		return nil
	}
	mg.mu.Lock()
	var found []*Manifest
	for _, e := range mg.jobs {
		m := e.m
		if m.State == StateSucceeded && m.Function == fn.Name() && m.Dataset == ds && m.DatasetVersion == version {
			found = append(found, m)
		}
	}
	mg.mu.Unlock()
	// Manifests are replaced, never changed in place: read them unlocked.
	sort.Slice(found, func(i, j int) bool { return found[i].JobID > found[j].JobID })
	for _, m := range found {
		if got, err := reuseKey(fn, m.Params); err == nil && got == want {
			return m.clone()
		}
	}
	return nil
}

// reuseKey is the form in which "reuse" compares a job's parameters: fn's
// effective parameters (EffectiveParams) where it gives them, as it spells
// them (one spelling per value, in which the order of an object's keys may
// count: psd's bands give the order of its columns), else the recorded ones
// as canonical JSON (object keys sorted, no spaces, numbers as written: 1
// and 1.0 differ, since a command may read them differently).
func reuseKey(fn Function, params json.RawMessage) (string, error) {
	if e, ok := fn.(EffectiveParams); ok {
		p, err := e.EffectiveParams(params)
		if err != nil {
			return "", fmt.Errorf("batch: effective params of %s: %w", fn.Name(), err)
		}
		var b bytes.Buffer
		if err := json.Compact(&b, p); err != nil {
			return "", fmt.Errorf("batch: effective params of %s: %w", fn.Name(), err)
		}
		return b.String(), nil
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("batch: params of %s: %w", fn.Name(), err)
	}
	if dec.More() {
		return "", fmt.Errorf("batch: params of %s: data after the JSON value: %w", fn.Name(), ErrInvalid)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("batch: params of %s: %w", fn.Name(), err)
	}
	return string(b), nil
}

// Status returns a copy of a job's manifest.
func (mg *Manager) Status(id string) (*Manifest, error) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	e, ok := mg.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	return e.m.clone(), nil
}

// Changed returns a channel closed at the job's next change.
func (mg *Manager) Changed(id string) (<-chan struct{}, error) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	e, ok := mg.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	return e.changed, nil
}

// List returns the job history, oldest first, optionally of one dataset only.
func (mg *Manager) List(ds string) []*Manifest {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	out := make([]*Manifest, 0, len(mg.jobs))
	for _, e := range mg.jobs {
		if ds == "" || e.m.Dataset == ds {
			out = append(out, e.m.clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].JobID < out[j].JobID })
	return out
}

// Cancel asks a job to stop: its children are stopped and it ends CANCELLED.
// Cancelling a finished job changes nothing.
func (mg *Manager) Cancel(ctx context.Context, id string) (*Manifest, error) {
	mg.mu.Lock()
	e, ok := mg.jobs[id]
	mg.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if h := mg.head(e); h.CancelRequested || h.State.Terminal() {
		return mg.Status(id) // nothing to record
	}
	m, err := mg.update(id, func(m *Manifest) { m.CancelRequested = true })
	if err != nil {
		return nil, err
	}
	if m.CancelRequested {
		mg.mu.Lock()
		select {
		case <-e.cancel:
		default:
			close(e.cancel)
			mg.log.Info("job cancel requested", "job", id)
		}
		mg.mu.Unlock()
	}
	return m, nil
}

// notifyLocked tells of a change of job e: its arrival in the history, a
// new manifest, its deletion. Every change comes here.
func (mg *Manager) notifyLocked(e *entry) {
	mg.seq++
	e.seq = mg.seq
	close(e.changed)
	e.changed = make(chan struct{})
}

// save writes a job's manifest and returns its size.
func (mg *Manager) save(ctx context.Context, m *Manifest) (int, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return 0, fmt.Errorf("batch: encode manifest: %w", err)
	}
	return len(data), mg.saveData(ctx, m.JobID, data)
}

// saveData writes a job's encoded manifest.
func (mg *Manager) saveData(ctx context.Context, id string, data []byte) error {
	if err := mg.st.WriteAll(ctx, ManifestKey(id), data); err != nil {
		return fmt.Errorf("batch: save job %s: %w", id, err)
	}
	mg.saved.n.Add(1)
	mg.saved.bytes.Add(int64(len(data)))
	return nil
}

// SaveRequest writes a job's request: its manifest as submitted.
func SaveRequest(ctx context.Context, st *store.Store, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("batch: encode request: %w", err)
	}
	if err := st.WriteAll(ctx, RequestKey(m.JobID), data); err != nil {
		return fmt.Errorf("batch: save job %s: %w", m.JobID, err)
	}
	return nil
}

// saveFinal writes a job's final state once; an existing one is kept.
func saveFinal(ctx context.Context, st *store.Store, m *Manifest) error {
	if f, err := ReadFinal(ctx, st, m.JobID); err == nil && f != nil {
		return nil
	}
	at := time.Now().UTC()
	if m.FinishedAt != nil {
		at = *m.FinishedAt
	}
	data, err := json.Marshal(Final{State: m.State, Error: m.Error, FinishedAt: at})
	if err != nil {
		return fmt.Errorf("batch: encode final state: %w", err)
	}
	if err := st.WriteAll(ctx, FinalKey(m.JobID), data); err != nil {
		return fmt.Errorf("batch: save final state of job %s: %w", m.JobID, err)
	}
	return nil
}

// update applies fn to a copy of the job's manifest, stores the copy (with
// the progress the store lacked) and only then makes it the job's state and
// wakes the job's watchers: a client never sees a state, handle, cancel
// request or end the store does not hold, and a failed save changes nothing.
// fn is a change of the job worth recording at once (a start, a cancel
// request, an end): it is stored even if it changed nothing. A job in a
// final state does not change again. It returns a copy of the new state.
func (mg *Manager) update(id string, fn func(m *Manifest)) (*Manifest, error) {
	mg.mu.Lock()
	e := mg.jobs[id]
	mg.mu.Unlock()
	e.saving.Lock()
	defer e.saving.Unlock()
	cur := e.m // only its changers, holding saving, change it
	if cur.State.Terminal() {
		return cur.clone(), nil
	}
	next := cur.clone()
	fn(next)
	next.cache = manifestCache{} // fn may change what it derives from
	boundFailures(next)
	e.writing.Lock()
	defer e.writing.Unlock()
	// It holds the whole progress: every segment of the log so far.
	next.ProgressSeq = e.plog.seq
	data, err := json.Marshal(next)
	if err != nil {
		return cur.clone(), fmt.Errorf("batch: encode manifest: %w", err)
	}
	ctx := context.WithoutCancel(mg.ctx)
	if next.State.Terminal() {
		if err := saveFinal(ctx, mg.st, next); err != nil {
			return cur.clone(), err
		}
	}
	if err := mg.saveData(ctx, id, data); err != nil {
		return cur.clone(), err
	}
	e.dirty.Store(false)
	e.pending = nil
	mg.folded(ctx, e, len(data))
	out := next.clone()
	mg.mu.Lock()
	e.m = next
	mg.notifyLocked(e)
	mg.mu.Unlock()
	return out, nil
}

// progress records an executor's report of a job's children in the job's
// state in memory, in place, and wakes the job's watchers if it changed
// anything: its cost is that of the report and of what changed, whatever
// the job's size. The store has it at the next flush (SaveInterval). With
// sweep, the parts of every succeeded shard still unsized are sized.
func (mg *Manager) progress(id string, p Progress, sweep bool) {
	mg.mu.Lock()
	e := mg.jobs[id]
	mg.mu.Unlock()
	e.saving.Lock()
	defer e.saving.Unlock()
	m := e.m
	if m.State.Terminal() {
		return
	}
	apply := mg.reported(m, p, sweep)
	e.shards.Lock()
	mg.mu.Lock()
	if e.pending == nil {
		e.pending = map[int]struct{}{}
	}
	m.touched = e.pending
	if apply(m) {
		e.dirty.Store(true)
		mg.notifyLocked(e)
	}
	m.touched = nil
	mg.mu.Unlock()
	e.shards.Unlock()
}

// reported reads from the store what recording p in m needs (the sizes and
// row counts of new parts; and it records the failed attempts no worker
// recorded), and returns the function that records p in a manifest and says
// whether it changed it. m is not changed.
func (mg *Manager) reported(m *Manifest, p Progress, sweep bool) func(m *Manifest) bool {
	mg.recordFailures(m, p)
	rows, sizes := mg.partRows(m, p), mg.partSizes(m, p, sweep)
	return func(m *Manifest) bool {
		changed := applyProgress(m, p)
		changed = setRows(m, rows) || changed
		return setSizes(m, sizes) || changed
	}
}

// mustUpdate is update, retried with backoff until the store takes the new
// state or the manager closes (a full disk, a store outage): the drive of a
// job cannot go on from a state it could not record.
func (mg *Manager) mustUpdate(id string, fn func(m *Manifest)) (*Manifest, error) {
	var m *Manifest
	p := mg.opts.Retry
	p.Budget = 365 * 24 * time.Hour
	n := 0
	err := p.Do(mg.ctx, func(context.Context) error {
		var err error
		if m, err = mg.update(id, fn); err != nil {
			n++
			mg.log.Warn("save job; will retry", "job", id, "tries", n, "err", err)
		}
		return err
	})
	return m, err
}

// follow starts the goroutine that drives a job to its end.
func (mg *Manager) follow(id string) {
	mg.wg.Add(1)
	go func() {
		defer mg.wg.Done()
		if err := mg.drive(id); err != nil && mg.ctx.Err() == nil {
			mg.log.Error("job failed", "job", id, "err", err)
			now := mg.opts.Now().UTC()
			_, _ = mg.mustUpdate(id, func(m *Manifest) {
				m.State, m.Error, m.FinishedAt = StateFailed, err.Error(), &now
				endUnfinished(m, ShardFailed)
			})
		}
	}()
}

// endUnfinished gives the shards of an ended job still pending or running
// state to: no child of the job runs any longer.
func endUnfinished(m *Manifest, to ShardState) {
	for i := range m.Shards {
		if s := &m.Shards[i]; s.State == ShardPending || s.State == ShardRunning {
			s.State = to
		}
	}
}

// drive starts a job's children if needed, then polls them until the job ends.
func (mg *Manager) drive(id string) error {
	mg.mu.Lock()
	e := mg.jobs[id]
	cancelCh := e.cancel
	mg.mu.Unlock()
	m := mg.head(e)
	if m.CancelRequested && m.Handle == "" {
		return mg.finish(id, nil)
	}
	if m.Handle == "" {
		if err := mg.start(id); err != nil {
			return err
		}
	}
	cancelSent := false
	pollErrors := 0
	// sweep sizes the parts of every succeeded shard at the first report
	// after a start; later reports size the parts they report.
	sweep := true
	var lost reconciler
	for {
		m = mg.head(e)
		if m.State.Terminal() {
			return nil
		}
		if m.CancelRequested && !cancelSent {
			if err := mg.exec.Cancel(mg.ctx, m.Handle); err != nil && !errors.Is(err, ErrNotRunning) {
				mg.log.Warn("cancel children", "job", id, "err", err)
			}
			cancelSent = true
		}
		// Taken before the poll, so that a change after it wakes the wait.
		var changed <-chan struct{}
		if n, ok := mg.exec.(Notifier); ok {
			changed = n.Changed(m.Handle)
		}
		p, err := mg.poll(m.Handle)
		switch {
		case errors.Is(err, ErrNotRunning):
			if m.CancelRequested {
				return mg.finish(id, nil)
			}
			if err := mg.resume(id, &lost); err != nil {
				return err
			}
			sweep = true
			continue
		case errors.Is(err, ErrVanished):
			if m.CancelRequested {
				return mg.finish(id, nil)
			}
			// The executor cannot account for the children: the store can.
			again, err := mg.reconcile(id, &lost, err, cancelCh)
			if err != nil || !again {
				return err
			}
			cancelSent, sweep = false, true
			continue
		case err != nil:
			if mg.ctx.Err() != nil {
				return nil
			}
			pollErrors++
			mg.log.Warn("poll children; will retry", "job", id, "tries", pollErrors, "err", err)
		default:
			pollErrors = 0
			if p.Done {
				e.saving.Lock()
				apply := mg.reported(e.m, p, sweep)
				e.saving.Unlock()
				progress := func(m *Manifest) { apply(m) }
				// After a loss, shards may have attempts left that the
				// start could not give them (see rerunLeft).
				if again, err := mg.rerunLeft(id, &lost, progress); err != nil || again {
					if err != nil {
						return err
					}
					cancelSent, sweep = false, true
					continue
				}
				// Stored with the final state, in one save.
				return mg.finish(id, progress)
			}
			mg.progress(id, p, sweep)
			sweep = false
		}
		wait := mg.exec.PollInterval()
		if pollErrors > 0 {
			wait = max(wait, mg.opts.Retry.Delay(pollErrors))
		}
		select {
		case <-mg.ctx.Done():
			return nil
		case <-time.After(wait):
		case <-changed:
		case <-cancelCh:
			cancelCh = nil
		}
	}
}

// poll asks the executor for the children of handle: what changed since
// the last report where it can tell (ChangeReporter), else every child.
func (mg *Manager) poll(handle string) (Progress, error) {
	if cr, ok := mg.exec.(ChangeReporter); ok {
		return cr.PollChanges(mg.ctx, handle)
	}
	return mg.exec.Poll(mg.ctx, handle)
}

// head returns the manifest of job e without its shards, sharing its
// fields: read only.
func (mg *Manager) head(e *entry) *Manifest {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	h := *e.m
	h.Shards = nil
	return &h
}

// start launches the children of every shard that has no part yet and has
// not failed for good (spent its attempts before a restart), with up to the
// job's MaxAttempts attempts each; with none left, the job ends.
func (mg *Manager) start(id string) error {
	m, _ := mg.Status(id)
	var todo []int
	for i, s := range m.Shards {
		if s.State != ShardSucceeded && s.State != ShardFailed {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return mg.finish(id, nil)
	}
	return mg.startShards(id, todo, m.MaxAttempts)
}

// startShards launches the children of the shards todo, with up to attempts
// attempts each. Their attempts continue from those the shards had (after a
// restart): the bases are recorded for the workers, and in the manifest,
// before any child runs.
func (mg *Manager) startShards(id string, todo []int, attempts int) error {
	m, _ := mg.Status(id)
	bases := map[string]int{}
	for _, i := range todo {
		if s := m.Shards[i]; s.Attempts > 0 {
			bases[s.Name] = s.Attempts
		}
	}
	if len(bases) > 0 {
		if err := writeAttemptBases(mg.ctx, mg.st, id, bases); err != nil {
			return err
		}
	}
	m, err := mg.mustUpdate(id, func(m *Manifest) {
		for _, i := range todo {
			m.Shards[i].AttemptBase = m.Shards[i].Attempts
		}
	})
	if err != nil {
		return err
	}
	m.MaxAttempts = attempts
	var handle string
	p := mg.opts.Retry
	p.Retryable = func(err error) bool { return !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) }
	tries := 0
	err = p.Do(mg.ctx, func(ctx context.Context) error {
		var err error
		if handle, err = mg.exec.Start(ctx, m, todo); err != nil {
			tries++
			mg.log.Warn("start children", "job", id, "executor", mg.exec.Name(), "tries", tries, "err", err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("start children on the %s executor: %w", mg.exec.Name(), err)
	}
	now := mg.opts.Now().UTC()
	_, err = mg.mustUpdate(id, func(m *Manifest) {
		m.Handle = handle
		m.State = StateRunning
		if m.StartedAt == nil {
			m.StartedAt = &now
		}
	})
	mg.log.Info("children started", "job", id, "executor", mg.exec.Name(), "handle", handle, "children", len(todo))
	return err
}

// resume restarts a job whose children no executor runs (after a restart):
// shards whose part exists count as succeeded, the others run again, but
// those whose recorded failures spent their attempts (catchUp).
func (mg *Manager) resume(id string, r *reconciler) error {
	up, err := mg.Status(id)
	if err != nil {
		return err
	}
	if _, err := catchUp(mg.ctx, mg.st, up); err != nil {
		return err
	}
	// Only this job's drive changes its shards: up is current.
	if _, err := mg.mustUpdate(id, func(m *Manifest) {
		m.Shards = slices.Clone(up.Shards)
		for i := range m.Shards {
			if s := &m.Shards[i]; s.State != ShardSucceeded && s.State != ShardFailed {
				s.State = ShardPending
			}
		}
		m.Handle = ""
	}); err != nil {
		return err
	}
	mg.log.Info("resume unfinished shards", "job", id)
	return mg.restart(id, r)
}

// restart starts a resumed job's children, as start does, but for shards
// whose budget a loss of their attempts fixed (ShardRecord.AttemptLimit):
// those keep it, the others get the job's MaxAttempts from this start on. An
// executor gives every shard of a start the same attempts, so when some
// have fewer left, the start gives each the fewest, and the drive's
// reconciler (rerunLeft) gives each shard the rest of its own.
func (mg *Manager) restart(id string, r *reconciler) error {
	m, _ := mg.Status(id)
	var todo []int
	limited := false
	for i, s := range m.Shards {
		if s.State != ShardSucceeded && s.State != ShardFailed {
			todo = append(todo, i)
			limited = limited || s.AttemptLimit > 0
		}
	}
	if !limited {
		return mg.start(id)
	}
	*r = reconciler{limit: map[int]int{}, again: map[int]bool{}, times: r.times}
	for i, s := range m.Shards {
		r.limit[i] = s.AttemptLimit
		if s.AttemptLimit == 0 {
			r.limit[i] = s.Attempts + m.MaxAttempts // this start's base, renewed
		}
	}
	// A shard with no attempt left stays pending: the job's end fails it.
	todo = slices.DeleteFunc(todo, func(i int) bool { return r.limit[i] <= m.Shards[i].Attempts })
	if len(todo) == 0 {
		return mg.finish(id, nil)
	}
	for _, i := range todo {
		r.again[i] = true
	}
	attempts := r.fewestLeft(todo, func(i int) int { return m.Shards[i].Attempts })
	return mg.startShards(id, todo, attempts)
}

// partRows reads the part records of the shards p reports succeeded whose row
// count m does not have yet. A record that cannot be read leaves the count
// unknown.
func (mg *Manager) partRows(m *Manifest, p Progress) map[int]int64 {
	rows := map[int]int64{}
	for _, c := range p.Children {
		if c.State != ShardSucceeded || c.Shard < 0 || c.Shard >= len(m.Shards) || m.Shards[c.Shard].Rows != nil {
			continue
		}
		r, ok, err := ReadPartRecord(mg.ctx, mg.st, m.JobID, m.Shards[c.Shard].Name)
		if err != nil {
			mg.log.Warn("part record", "job", m.JobID, "err", err)
		}
		if ok {
			rows[c.Shard] = r.Rows
		}
	}
	return rows
}

// recordFailures keeps in the store, as a worker keeps its own, the error of
// each failed attempt p reports anew whose worker recorded none: one that
// crashed, was killed or never ran, explained by its executor (exit code or
// signal, the tail of its output). Every failed attempt then has its record.
func (mg *Manager) recordFailures(m *Manifest, p Progress) {
	for _, c := range p.Children {
		if c.Shard < 0 || c.Shard >= len(m.Shards) {
			continue
		}
		s := &m.Shards[c.Shard]
		for j, ae := range c.Errors {
			ae.Attempt += s.AttemptBase
			if slices.ContainsFunc(s.Errors, func(e AttemptError) bool { return e.Attempt == ae.Attempt }) {
				continue // seen before
			}
			rec, err := ReadAttemptError(mg.ctx, mg.st, m.JobID, s.Name, ae.Attempt)
			switch {
			case err == nil && rec == nil && ae.Error != "":
				err = recordAttemptError(mg.ctx, mg.st, m.JobID, s.Name, ae)
			case err == nil && rec != nil && ae.Error == "":
				// Reported before without being kept (the manifest could not
				// be saved), and dropped by the executor since: the record
				// has it.
				c.Errors[j].Error = rec.Error
			}
			if err != nil {
				mg.log.Warn("record failed attempt", "job", m.JobID, "shard", s.Name, "attempt", ae.Attempt, "err", err)
			}
		}
	}
}

// setRows records the row counts of parts, by shard index, and says whether
// it changed m.
func setRows(m *Manifest, rows map[int]int64) bool {
	changed := false
	for i, n := range rows {
		if i >= 0 && i < len(m.Shards) && m.Shards[i].Rows == nil {
			m.Shards[i].Rows = &n
			m.touch(i)
			changed = true
		}
	}
	return changed
}

// applyProgress copies an executor's report into a manifest and says whether
// it changed it. It costs the report and what changed, not the manifest.
func applyProgress(m *Manifest, p Progress) bool {
	some := false
	var now time.Time
	for _, c := range p.Children {
		if c.Shard < 0 || c.Shard >= len(m.Shards) {
			continue
		}
		s := &m.Shards[c.Shard]
		if s.State == ShardSucceeded {
			continue
		}
		changed := false
		at := func() *time.Time {
			if now.IsZero() {
				now = time.Now().UTC()
			}
			t := now
			return &t
		}
		if c.State == ShardRunning && s.StartedAt == nil {
			s.StartedAt, changed = at(), true
		}
		if (c.State == ShardSucceeded || c.State == ShardFailed || c.State == ShardCancelled) && s.FinishedAt == nil {
			s.FinishedAt, changed = at(), true
		}
		if s.State != c.State {
			s.State, changed = c.State, true
		}
		if c.State == ShardSucceeded {
			markSucceeded(m, c.Shard)
		}
		// The executor numbers the attempts of its start from 1; the job's
		// continue from the attempts of earlier starts.
		if n := s.AttemptBase + c.Attempts; c.Attempts > 0 && n > s.Attempts {
			s.Attempts, changed = n, true
		}
		// An attempt's text comes with the first report of it: the executor
		// may drop it after (HandOverErrors), so later reports add only the
		// attempts the manifest lacks.
		had := len(s.Errors)
		for _, e := range c.Errors {
			e.Attempt += s.AttemptBase
			if slices.ContainsFunc(s.Errors, func(k AttemptError) bool { return k.Attempt == e.Attempt }) {
				continue
			}
			e.Error = ClipAttemptError(e.Error) // whole in the attempt's record (recordFailures)
			s.Errors = append(s.Errors, e)
		}
		if len(s.Errors) > had {
			slices.SortStableFunc(s.Errors, func(a, b AttemptError) int { return a.Attempt - b.Attempt })
			m.boundNewErrors(c.Shard, had == 0)
			changed = true
		}
		if changed {
			m.touch(c.Shard)
			some = true
		}
	}
	return some
}

// finish records a job's end, after the children's last progress when it is
// given (nil: none to record).
func (mg *Manager) finish(id string, progress func(m *Manifest)) error {
	if progress == nil {
		progress = func(*Manifest) {}
	}
	// A function that declares no result schema must have given every shard the
	// same one; the first shard's becomes the job's.
	var schema, schemaProblem string
	m, _ := mg.Status(id)
	if progress(m); m.ResultSchema == "" && !m.CancelRequested && m.Counts().Succeeded == len(m.Shards) {
		schema, schemaProblem = mg.partSchemas(mg.ctx, m)
	}
	now := mg.opts.Now().UTC()
	m, err := mg.mustUpdate(id, func(m *Manifest) {
		progress(m)
		m.FinishedAt = &now
		var failed []string // the first MaxJobErrorShards failed shards' messages
		nFailed := 0
		for i := range m.Shards {
			s := &m.Shards[i]
			switch {
			case s.State == ShardSucceeded:
			case m.CancelRequested:
				s.State = ShardCancelled
			default:
				if s.State != ShardFailed {
					s.State = ShardFailed
				}
				if nFailed++; len(failed) < MaxJobErrorShards {
					msg := fmt.Sprintf("shard %s failed after %d attempt(s)", s.Name, s.Attempts)
					if n := len(s.Errors); n > 0 {
						msg += ": " + s.Errors[n-1].Error
					}
					failed = append(failed, msg)
				}
			}
		}
		// A cancel marks every unfinished shard cancelled, so no shard has
		// failed; a job whose shards all succeeded before the cancel landed
		// has succeeded.
		switch {
		case m.CancelRequested && m.Counts().Succeeded < len(m.Shards):
			m.State = StateCancelled
			m.Error = "cancelled on request"
		case nFailed > 0:
			m.State = StateFailed
			m.Error = jobFailureError(failed, nFailed)
		case schemaProblem != "":
			m.State = StateFailed
			m.Error = schemaProblem
		default:
			m.State = StateSucceeded
			if m.ResultSchema == "" {
				m.ResultSchema = schema
			}
		}
	})
	if err != nil {
		return err
	}
	mg.log.Info("job finished", "job", id, "state", m.State, "seconds", now.Sub(m.CreatedAt).Seconds(), "error", m.Error)
	return nil
}

// ResultSchema returns a job's result schema, its provenance in its metadata
// (see Manifest.WithProvenance).
func (mg *Manager) ResultSchema(ctx context.Context, id string) (*arrow.Schema, error) {
	m, e, err := mg.shared(id)
	if err != nil {
		return nil, err
	}
	if !m.State.Terminal() {
		// Its shards change in place: what resultSchema reads of them is
		// the first succeeded one.
		e.shards.RLock()
		head := *m
		head.Shards = nil
		for _, sh := range m.Shards {
			if sh.State == ShardSucceeded {
				head.Shards = []ShardRecord{sh.clone()}
				break
			}
		}
		e.shards.RUnlock()
		m = &head
	}
	s, err := mg.resultSchema(ctx, m)
	if err != nil {
		return nil, err
	}
	return m.WithProvenance(s), nil
}

// resultSchema is the result schema as the function gives it: the manifest's,
// else the first finished part's.
func (mg *Manager) resultSchema(ctx context.Context, m *Manifest) (*arrow.Schema, error) {
	id := m.JobID
	s, err := m.Schema()
	if err != nil || s != nil {
		return s, err
	}
	for _, sh := range m.Shards {
		if sh.State == ShardSucceeded {
			r, err := dataset.OpenFile(ctx, mg.st, PartKey(id, sh.Name), dataset.FormatArrow, mg.alloc)
			if err != nil {
				return nil, err
			}
			defer r.Release()
			return r.Schema(), nil
		}
	}
	return nil, fmt.Errorf("job %s: the result schema is known once a shard has finished: %w", id, ErrNotFinished)
}

// OpenResult streams a job's result: the merged result of a succeeded job
// (shard == ""), or one finished shard's part (readable while the job runs).
func (mg *Manager) OpenResult(ctx context.Context, id, shard string) (array.RecordReader, error) {
	if shard == "" {
		if r := mg.keptResult(id); r != nil {
			return r.open(ctx, mg), nil
		}
	}
	m, err := mg.Status(id)
	if err != nil {
		return nil, err
	}
	if shard != "" {
		i := m.shardIndex(shard)
		if i < 0 {
			return nil, fmt.Errorf("job %s has no shard %q: %w", id, shard, ErrNotFound)
		}
		if m.Shards[i].State != ShardSucceeded {
			return nil, fmt.Errorf("job %s: shard %s is %s; its part is readable once it has succeeded: %w", id, shard, m.Shards[i].State, ErrNotFinished)
		}
		r, err := dataset.OpenFile(ctx, mg.st, PartKey(id, shard), dataset.FormatArrow, mg.alloc)
		if err != nil {
			return nil, err
		}
		return &provenanceReader{RecordReader: r, schema: m.WithProvenance(r.Schema())}, nil
	}
	if m.State != StateSucceeded {
		c := m.Counts()
		return nil, fmt.Errorf("job %s is %s (%d of %d shards succeeded); its merged result is readable once it has SUCCEEDED (finished parts are readable as jobs/%s/<shard>): %w",
			id, m.State, c.Succeeded, c.Total, id, ErrNotFinished)
	}
	r, err := mg.mergedResult(ctx, id, m)
	if err != nil {
		return nil, err
	}
	return r.open(ctx, mg), nil
}

// open streams the merged result's parts one after the other; Concat checks
// every part's schema against r.schema as it opens it.
func (r *mergedResult) open(ctx context.Context, mg *Manager) array.RecordReader {
	parts := &deletedCheck{RecordReader: dataset.Concat(ctx, mg.st, r.schema, r.files, mg.alloc), mg: mg, id: r.m.JobID}
	return &provenanceReader{RecordReader: parts, schema: r.prov}
}

// deletedCheck is a stream of a job's parts whose error, once the job has
// been deleted, says so: its parts went with it, which the store reports as
// a missing file.
type deletedCheck struct {
	array.RecordReader
	mg *Manager
	id string
}

func (r *deletedCheck) Err() error {
	err := r.RecordReader.Err()
	if err == nil {
		return nil
	}
	r.mg.mu.Lock()
	_, exists := r.mg.jobs[r.id]
	r.mg.mu.Unlock()
	if !exists {
		return fmt.Errorf("job %s was deleted while its result was read (%v): %w", r.id, err, ErrNotFound)
	}
	return err
}

// Unwrap returns the stream of the stored parts (see dataset.Stored).
func (r *deletedCheck) Unwrap() array.RecordReader { return r.RecordReader }

// keptResult returns the mergedResult kept with job id, if its manifest has
// not changed since.
func (mg *Manager) keptResult(id string) *mergedResult {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	if e := mg.jobs[id]; e != nil && e.result != nil && e.result.m == e.m {
		return e.result
	}
	return nil
}

// mergedResult derives what streaming the merged result of job id, SUCCEEDED
// as m says, needs, and keeps it with the job while its manifest stays the
// same (keptResult), so that later streams do not copy the manifest, decode
// the schema and build its provenance again: a final job's manifest no
// longer changes.
func (mg *Manager) mergedResult(ctx context.Context, id string, m *Manifest) (*mergedResult, error) {
	mg.mu.Lock()
	e := mg.jobs[id]
	var cur *Manifest
	if e != nil {
		cur = e.m
	}
	mg.mu.Unlock()
	if cur == nil || cur.State != StateSucceeded {
		cur = m // not kept: derived from the clone the caller has
	}
	schema, err := mg.resultSchema(ctx, cur)
	if err != nil {
		return nil, err
	}
	r := &mergedResult{m: cur, schema: schema, prov: cur.WithProvenance(schema), files: make([]dataset.File, len(cur.Shards))}
	for i, s := range cur.Shards {
		r.files[i] = dataset.File{Key: PartKey(id, s.Name), Format: dataset.FormatArrow}
	}
	mg.mu.Lock()
	if e != nil && e.m == cur && mg.jobs[id] == e {
		e.result = r
	}
	mg.mu.Unlock()
	return r, nil
}
