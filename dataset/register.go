package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/edf"
	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/store"
)

// MaxRecordingFiles bounds the files one registration takes.
const MaxRecordingFiles = 100000

// MaxRecordingShards bounds the shards one registration is cut into.
const MaxRecordingShards = 100000

// MaxBadSpans bounds the BAD annotations of one file.
const MaxBadSpans = 100000

// annotationScanBytes is the size of each ranged read that scans an EDF+
// file's data records for annotations at registration.
const annotationScanBytes = 8 << 20

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:16]
}

func parseNumber(s string) (float64, bool) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return v, err == nil && !math.IsNaN(v) && !math.IsInf(v, 0)
}

// RegisterResult describes a registered recording dataset.
type RegisterResult struct {
	Dataset string `json:"dataset"`
	Version string `json:"version"`
	Files   int    `json:"files"`
	Shards  int    `json:"shards"`
	Rows    int64  `json:"rows"`
	Bytes   int64  `json:"bytes"`
	BIDS    bool   `json:"bids"`
}

// validate fills defaults and checks the options of a registration.
func (o *RegisterOptions) validate() error {
	p := strings.TrimPrefix(o.Prefix, "/")
	if p == "" || strings.Contains(p, "..") || strings.HasPrefix(p, Prefix) || strings.HasPrefix(p, "jobs/") {
		return fmt.Errorf("register: prefix %s must be a relative store prefix of .edf/.bdf files, outside datasets/ and jobs/ (no \"..\"): %w", clip.Quote(o.Prefix), ErrInvalid)
	}
	o.Prefix = p
	return o.validateScan()
}

// validateScan fills defaults and checks the options but the prefix.
func (o *RegisterOptions) validateScan() error {
	if math.IsNaN(o.EpochSeconds) || math.IsInf(o.EpochSeconds, 0) || o.EpochSeconds < 0 {
		return fmt.Errorf("register: epoch_s %v must be a positive number of seconds, or 0 for the whole recording: %w", o.EpochSeconds, ErrInvalid)
	}
	switch o.BadSpans {
	case "":
		o.BadSpans = DefaultBadSpans
	case BadSpansNaN, BadSpansDrop, BadSpansKeep:
	default:
		return fmt.Errorf("register: bad_spans %s must be \"nan\", \"drop\" or \"keep\": %w", clip.Quote(o.BadSpans), ErrInvalid)
	}
	if math.IsNaN(o.ShardMB) || o.ShardMB < 0 || o.ShardMB > 1<<20 {
		return fmt.Errorf("register: shard_mb %v must be 0 (the default, %d) to %d (MiB): %w", o.ShardMB, DefaultShardBytes>>20, 1<<20, ErrInvalid)
	}
	if o.Shards < 0 || o.Shards > MaxRecordingShards {
		return fmt.Errorf("register: shards %d must be in [1, %d]: %w", o.Shards, MaxRecordingShards, ErrInvalid)
	}
	return nil
}

// Register registers the .edf/.bdf files under opts.Prefix as the recording
// dataset name, read in place: nothing is copied, only an index
// (datasets/<name>/_recording.json) is written. It reads each file's header,
// and for EDF+/BDF+ files every data record's annotations (one pass over the
// file in large ranged reads). A BIDS layout (participants.tsv,
// sub-*/[ses-*/]eeg/*_eeg.edf|bdf, *_channels.tsv) adds subject, session,
// task, run, the participants.tsv columns and bad_channel. A name that exists
// is refused with ErrExists.
func (c *Catalog) Register(ctx context.Context, name string, opts RegisterOptions) (*RegisterResult, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	dsPrefix := Prefix + name + "/"
	if existing, err := c.st.List(ctx, dsPrefix); err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	} else if len(existing) > 0 {
		return nil, fmt.Errorf("dataset %q: %w", name, ErrExists)
	}
	ix, err := scanRecordings(ctx, c.st, opts)
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	data, err := json.Marshal(ix)
	if err != nil {
		return nil, err
	}
	if err := c.st.WriteAll(ctx, dsPrefix+recordingIndexFile, data); err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	ds, err := c.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return &RegisterResult{Dataset: name, Version: ds.Version, Files: len(ix.Files), Shards: len(ds.Shards), Rows: ds.Rows(), Bytes: ds.Bytes(), BIDS: ix.BIDS}, nil
}

// scanRecordings reads the headers (and EDF+ annotations) of the .edf/.bdf
// files under opts.Prefix and lays out their epochs and shards: everything a
// registration's index holds.
func scanRecordings(ctx context.Context, st *store.Store, opts RegisterOptions) (*recIndex, error) {
	objs, err := st.List(ctx, opts.Prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", opts.Prefix, err)
	}
	ix := &recIndex{Options: opts}
	var participants *tsv
	root := opts.Prefix
	if !strings.HasSuffix(root, "/") {
		root = path.Dir(root) + "/"
		if root == "./" {
			root = ""
		}
	}
	var files []store.Object
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, root)
		ext := strings.ToLower(path.Ext(o.Key))
		switch {
		case rel == "participants.tsv":
			data, err := st.ReadAll(ctx, o.Key)
			if err != nil {
				return nil, err
			}
			participants, err = parseTSV(data)
			if err != nil {
				return nil, fmt.Errorf("%s: %v: %w", o.Key, err, ErrInvalid)
			}
		case ext == ".edf" || ext == ".bdf":
			files = append(files, o)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no .edf or .bdf file under %s: %w", clip.Quote(opts.Prefix), ErrNotFound)
	}
	if len(files) > MaxRecordingFiles {
		return nil, fmt.Errorf("%d files under %s, more than %d: %w", len(files), clip.Quote(opts.Prefix), MaxRecordingFiles, ErrInvalid)
	}
	bids := participants != nil
	for _, o := range files {
		if bidsEEG.MatchString(strings.TrimPrefix(o.Key, root)) {
			bids = true
		}
	}
	ix.BIDS = bids
	if bids && participants != nil {
		ix.Extra = participantColumns(participants)
	}
	channelsCache := map[string]map[string]bool{}
	for _, o := range files {
		f, err := registerFile(ctx, st, o, &opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.Key, err)
		}
		f.Name = strings.TrimPrefix(o.Key, root)
		if bids {
			if err := bidsFile(ctx, st, f, participants, channelsCache); err != nil {
				return nil, fmt.Errorf("%s: %w", o.Key, err)
			}
		}
		ix.Files = append(ix.Files, *f)
	}
	if err := cutShards(ix); err != nil {
		return nil, err
	}
	return ix, nil
}

// registerFile reads one file's header (and annotations) and lays out its
// epochs.
func registerFile(ctx context.Context, src *store.Store, o store.Object, opts *RegisterOptions) (*recFile, error) {
	file, err := src.OpenFile(ctx, o.Key)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	info, err := src.Stat(ctx, o.Key)
	if err != nil {
		return nil, err
	}
	fixed := make([]byte, edf.FixedHeaderBytes)
	if n, _ := file.ReadAt(fixed, 0); n < len(fixed) {
		return nil, fmt.Errorf("the file is %d bytes, shorter than an EDF/BDF header (truncated file?): %w", o.Size, ErrInvalid)
	}
	ns, err := edf.SignalCount(fixed)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	hdr := make([]byte, edf.FixedHeaderBytes+ns*edf.SignalHeaderBytes)
	if n, _ := file.ReadAt(hdr, 0); n < len(hdr) {
		return nil, fmt.Errorf("the file is %d bytes, shorter than the header of its %d signals (truncated file?): %w", o.Size, ns, ErrInvalid)
	}
	h, err := edf.ParseHeader(hdr, o.Size)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	f := &recFile{Key: o.Key, Size: info.Size, ETag: info.ETag, Header: h}
	var bad [][2]float64
	onsets := []float64{0}
	if ann := h.Annotations(); len(ann) > 0 {
		onsets = make([]float64, 0, h.Records)
		perRead := max(annotationScanBytes/int64(h.RecordBytes), 1)
		for r := int64(0); r < h.Records; r += perRead {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			n := min(perRead, h.Records-r)
			buf := make([]byte, n*int64(h.RecordBytes))
			if got, err := file.ReadAt(buf, h.RecordOffset(r)); got < len(buf) {
				return nil, fmt.Errorf("read data records %d-%d: %v", r, r+n, err)
			}
			for i := int64(0); i < n; i++ {
				rec := buf[i*int64(h.RecordBytes) : (i+1)*int64(h.RecordBytes)]
				for j, sig := range ann {
					on, anns, err := h.RecordAnnotations(rec, sig)
					if err != nil {
						return nil, fmt.Errorf("data record %d: %v: %w", r+i, err, ErrInvalid)
					}
					if j == 0 {
						onsets = append(onsets, on)
					}
					for _, a := range anns {
						if strings.HasPrefix(strings.ToLower(a.Text), "bad") {
							if len(bad) >= MaxBadSpans {
								return nil, fmt.Errorf("more than %d BAD annotations: %w", MaxBadSpans, ErrInvalid)
							}
							bad = append(bad, [2]float64{a.Onset, a.Onset + a.Duration})
						}
					}
				}
			}
		}
	}
	f.Bad = bad
	// Segments: runs of records each starting where the last ended.
	if h.Kind.Discontinuous() {
		tol := 1e-6 * h.RecordSeconds
		for r := int64(0); r < h.Records; r++ {
			if r > 0 && math.Abs(onsets[r]-(onsets[r-1]+h.RecordSeconds)) <= tol {
				f.Segments[len(f.Segments)-1].Records++
				continue
			}
			if r > 0 && onsets[r] < onsets[r-1]+h.RecordSeconds-tol {
				return nil, fmt.Errorf("data record %d starts at %gs, before the previous record ends (%gs): %w", r, onsets[r], onsets[r-1]+h.RecordSeconds, ErrInvalid)
			}
			f.Segments = append(f.Segments, segment{Record: r, Records: 1, Onset: onsets[r]})
		}
	} else {
		f.Segments = []segment{{Record: 0, Records: h.Records, Onset: onsets[0]}}
	}
	for _, sig := range h.DataSignals() {
		fs := h.Fs(sig)
		if opts.EpochSeconds > 0 {
			m := opts.EpochSeconds * fs
			if math.Abs(m-math.Round(m)) > 1e-6*max(1, m) || math.Round(m) < 1 {
				return nil, fmt.Errorf("epoch_s %g is not a whole number of samples of signal %q at %g Hz: %w", opts.EpochSeconds, h.Signals[sig].Label, fs, ErrInvalid)
			}
		}
	}
	var e int64
	for i := range f.Segments {
		s := &f.Segments[i]
		dur := float64(s.Records) * h.RecordSeconds
		if opts.EpochSeconds <= 0 {
			s.Epochs = 1
		} else {
			s.Epochs = int64(math.Floor(dur/opts.EpochSeconds + 1e-9))
		}
		for _, sig := range h.DataSignals() {
			if m := f.epochSamples(opts, s, sig); m > MaxEpochSamples {
				return nil, fmt.Errorf("an epoch of signal %q holds %d samples, more than the %d a row may hold; choose a shorter epoch_s: %w", h.Signals[sig].Label, m, MaxEpochSamples, ErrInvalid)
			}
		}
		for _, b := range bad {
			if k0, k1 := touched(f, opts, s, b); k1 > k0 {
				f.Dropped = append(f.Dropped, [2]int64{e + k0, e + k1})
			}
		}
		e += s.Epochs
	}
	f.Epochs = e
	f.Dropped = mergeRanges(f.Dropped)
	return f, nil
}

// touched is the range [k0, k1) of the epochs of segment s that the BAD span
// b touches. MNE's rule: a span [onset, onset+duration) rejects an epoch
// [t0, t1) when onset < t1 and onset+duration > t0, onsets counted from the
// first record's start; a zero-duration span inside an epoch touches it.
func touched(f *recFile, opts *RegisterOptions, s *segment, b [2]float64) (int64, int64) {
	if s.Epochs == 0 {
		return 0, 0
	}
	hits := func(k int64) (bool, bool) { // on < t1, end > t0
		t0, t1 := f.epochSpan(opts, s, k)
		return b[0] < t1, b[1] > t0
	}
	L := float64(s.Records) * f.Header.RecordSeconds
	if opts.EpochSeconds > 0 {
		L = opts.EpochSeconds
	}
	guess := func(t float64) int64 {
		g := math.Floor((t - s.Onset) / L)
		return int64(max(0, min(g, float64(s.Epochs))))
	}
	k0 := max(guess(b[0])-1, 0)
	for k0 < s.Epochs {
		if a, _ := hits(k0); a {
			break
		}
		k0++
	}
	k1 := min(guess(b[1])+2, s.Epochs)
	for k1 > k0 {
		if _, z := hits(k1 - 1); z {
			break
		}
		k1--
	}
	return k0, k1
}

// mergeRanges sorts ranges and merges those that overlap or touch.
func mergeRanges(r [][2]int64) [][2]int64 {
	sort.Slice(r, func(i, j int) bool { return r[i][0] < r[j][0] })
	var out [][2]int64
	for _, x := range r {
		if n := len(out); n > 0 && x[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], x[1])
			continue
		}
		out = append(out, x)
	}
	return out
}

// cutShards splits each file's epochs into shards of about ShardMB of data
// records (default DefaultShardBytes), at least Shards in all when the epochs
// allow it, and at most MaxRecordingShards: each is a child of every job over
// the dataset.
func cutShards(ix *recIndex) error {
	target := int64(DefaultShardBytes)
	if ix.Options.ShardMB > 0 {
		target = max(int64(ix.Options.ShardMB*(1<<20)), 1)
	}
	var total int64
	for i := range ix.Files {
		total += ix.Files[i].Size
	}
	if n := int64(ix.Options.Shards); n > 0 {
		target = min(target, max(total/n, 1))
	}
	var count int64
	for _, f := range ix.Files {
		if f.Epochs > 0 {
			step := max(target/max((f.Size-int64(f.Header.HeaderBytes))/f.Epochs, 1), 1)
			count += (f.Epochs + step - 1) / step
		}
	}
	if count > MaxRecordingShards {
		return fmt.Errorf("register: the files would be cut into %d shards, more than %d; give a larger shard_mb or longer epochs: %w", count, MaxRecordingShards, ErrInvalid)
	}
	for fi := range ix.Files {
		f := &ix.Files[fi]
		if f.Epochs == 0 {
			continue
		}
		perEpoch := max((f.Size-int64(f.Header.HeaderBytes))/f.Epochs, 1)
		step := max(target/perEpoch, 1)
		for e0 := int64(0); e0 < f.Epochs; e0 += step {
			e1 := min(e0+step, f.Epochs)
			kept := e1 - e0
			if ix.Options.BadSpans == BadSpansDrop {
				kept -= f.droppedIn(e0, e1)
			}
			rows := kept * int64(len(f.Header.DataSignals()))
			ix.Shards = append(ix.Shards, recShard{
				Name: fmt.Sprintf("part-%05d", len(ix.Shards)), File: fi, Epoch0: e0, Epoch1: e1,
				Rows: rows, Bytes: (e1 - e0) * perEpoch,
			})
		}
	}
	return nil
}

// bidsEEG matches a BIDS EEG/iEEG recording's path.
var bidsEEG = regexp.MustCompile(`(^|/)sub-[^/_]+/(ses-[^/_]+/)?(eeg|ieeg)/[^/]+_(eeg|ieeg)\.(edf|bdf|EDF|BDF)$`)

// bidsEntity reads key-value entities (sub-01_ses-02_task-rest_run-1) from a
// BIDS file name.
func bidsEntity(base, key string) string {
	for _, part := range strings.Split(base, "_") {
		if v, ok := strings.CutPrefix(part, key+"-"); ok {
			return v
		}
	}
	return ""
}

// bidsFile fills a file's BIDS columns: entities from its name, its
// participant's row, and the bad channels of its *_channels.tsv.
func bidsFile(ctx context.Context, st *store.Store, f *recFile, participants *tsv, cache map[string]map[string]bool) error {
	base := path.Base(f.Key)
	f.Subject = bidsEntity(base, "sub")
	f.Session = bidsEntity(base, "ses")
	f.Task = bidsEntity(base, "task")
	f.Run = bidsEntity(base, "run")
	if participants != nil && f.Subject != "" {
		if row := participants.find("participant_id", "sub-"+f.Subject); row != nil {
			f.Participant = row
		}
	}
	// sub-01_ses-1_task-rest_eeg.edf → sub-01_ses-1_task-rest_channels.tsv
	i := strings.LastIndex(base, "_")
	if i < 0 {
		return nil
	}
	chKey := path.Join(path.Dir(f.Key), base[:i]+"_channels.tsv")
	bad, ok := cache[chKey]
	if !ok {
		data, err := st.ReadAll(ctx, chKey)
		if err == nil {
			t, err := parseTSV(data)
			if err != nil {
				return fmt.Errorf("%s: %v: %w", chKey, err, ErrInvalid)
			}
			bad = map[string]bool{}
			for _, row := range t.rows {
				if strings.EqualFold(row["status"], "bad") {
					bad[row["name"]] = true
				}
			}
		}
		cache[chKey] = bad
	}
	for ch := range bad {
		f.BadChannels = append(f.BadChannels, ch)
	}
	sort.Strings(f.BadChannels)
	return nil
}

// tsv is a parsed tab-separated table with a header row.
type tsv struct {
	columns []string
	rows    []map[string]string
}

func parseTSV(data []byte) (*tsv, error) {
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) == "" {
		return nil, fmt.Errorf("no header row")
	}
	t := &tsv{columns: strings.Split(strings.TrimPrefix(lines[0], "\ufeff"), "\t")}
	for n, line := range lines[1:] {
		if strings.TrimSpace(line) == "" {
			continue
		}
		cells := strings.Split(line, "\t")
		if len(cells) != len(t.columns) {
			return nil, fmt.Errorf("line %d has %d cells, the header %d", n+2, len(cells), len(t.columns))
		}
		row := map[string]string{}
		for i, c := range t.columns {
			row[c] = cells[i]
		}
		t.rows = append(t.rows, row)
	}
	return t, nil
}

func (t *tsv) find(col, value string) map[string]string {
	for _, r := range t.rows {
		if r[col] == value {
			return r
		}
	}
	return nil
}

var snakeRE = regexp.MustCompile(`[^a-z0-9_]+`)

// participantColumns names the participants.tsv columns (all but
// participant_id) as snake_case columns; a column whose every value but "n/a"
// is a number is float64. A name that would collide with another column gets
// the prefix "participant_".
func participantColumns(t *tsv) []extraColumn {
	taken := map[string]bool{}
	for _, f := range (&recIndex{BIDS: true}).schema().Fields() {
		taken[f.Name] = true
	}
	var out []extraColumn
	for _, c := range t.columns {
		if c == "participant_id" {
			continue
		}
		name := strings.Trim(snakeRE.ReplaceAllString(strings.ToLower(c), "_"), "_")
		if name == "" || taken[name] || name[0] >= '0' && name[0] <= '9' {
			name = "participant_" + name
		}
		for taken[name] {
			name += "_"
		}
		taken[name] = true
		numeric, any := true, false
		for _, r := range t.rows {
			v := r[c]
			if v == "n/a" || v == "" {
				continue
			}
			any = true
			if _, ok := parseNumber(v); !ok {
				numeric = false
			}
		}
		out = append(out, extraColumn{Name: name, Source: c, Numeric: numeric && any})
	}
	return out
}

// Recordings is a scan of EDF/BDF files: the rows a registration of them
// would serve, readable without registering (flightbatch upload converts
// local files this way).
type Recordings struct {
	st *store.Store
	ix *recIndex
}

// ScanRecordings reads the headers (and EDF+ annotations) of the .edf/.bdf
// files under opts.Prefix in st.
func ScanRecordings(ctx context.Context, st *store.Store, opts RegisterOptions) (*Recordings, error) {
	if err := opts.validateScan(); err != nil {
		return nil, err
	}
	ix, err := scanRecordings(ctx, st, opts)
	if err != nil {
		return nil, err
	}
	return &Recordings{st: st, ix: ix}, nil
}

// Schema is the schema of the rows.
func (r *Recordings) Schema() *arrow.Schema { return r.ix.schema() }

// Rows is the number of rows.
func (r *Recordings) Rows() int64 {
	var n int64
	for _, s := range r.ix.Shards {
		n += s.Rows
	}
	return n
}

// Open reads every row, shard after shard.
func (r *Recordings) Open(ctx context.Context, mem memory.Allocator) array.RecordReader {
	return &recordingsReader{ctx: ctx, r: r, mem: mem, refs: 1}
}

type recordingsReader struct {
	ctx  context.Context
	r    *Recordings
	mem  memory.Allocator
	next int
	cur  array.RecordReader
	err  error
	refs int
}

func (m *recordingsReader) Retain()               { m.refs++ }
func (m *recordingsReader) Schema() *arrow.Schema { return m.r.Schema() }
func (m *recordingsReader) Err() error            { return m.err }

func (m *recordingsReader) Release() {
	m.refs--
	if m.refs == 0 && m.cur != nil {
		m.cur.Release()
		m.cur = nil
	}
}

func (m *recordingsReader) Next() bool {
	for m.err == nil {
		if m.cur != nil {
			if m.cur.Next() {
				return true
			}
			m.err = m.cur.Err()
			m.cur.Release()
			m.cur = nil
			continue
		}
		if m.next >= len(m.r.ix.Shards) {
			return false
		}
		rr, err := newRecordingReader(m.ctx, m.r.st, m.r.ix, &m.r.ix.Shards[m.next], m.mem)
		m.next++
		if err != nil {
			m.err = err
			return false
		}
		m.cur = rr
	}
	return false
}

func (m *recordingsReader) RecordBatch() arrow.RecordBatch {
	if m.cur == nil {
		return nil
	}
	return m.cur.RecordBatch()
}

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (m *recordingsReader) Record() arrow.RecordBatch { return m.RecordBatch() }
