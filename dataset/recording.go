package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/edf"
	"github.com/flightbatch/flightbatch/store"
)

// FormatRecording marks a shard of a registered recording dataset: a range
// of epochs of one EDF/BDF file, read in place. Its key is the dataset's
// recording index followed by "#" and the shard's name.
const FormatRecording Format = "recording"

// recordingIndexFile is the index a registered recording dataset carries instead
// of shards of its own.
const recordingIndexFile = "_recording.json"

// The bad_spans policies.
const (
	BadSpansNaN  = "nan"
	BadSpansDrop = "drop"
	BadSpansKeep = "keep"
)

// DefaultBadSpans is the bad_spans policy when a registration names none:
// epochs that touch a BAD span are left out, as MNE's epochs do by default
// (reject_by_annotation=True).
const DefaultBadSpans = BadSpansDrop

// MaxEpochSamples bounds the samples of one row (one channel's epoch): a row
// is held whole in memory by readers and kernels.
const MaxEpochSamples = 16 << 20

// maxRecordingIndexBytes bounds the size of a recording index read from the store.
const maxRecordingIndexBytes = 512 << 20

// recordingBatchBytes is the size of the sample data a recording shard reader
// puts in one record batch, and of each ranged read it makes.
const recordingBatchBytes = 4 << 20

// RegisterOptions are the parameters of a recording dataset's registration.
type RegisterOptions struct {
	// Prefix is the store prefix of the .edf/.bdf files (or one file's key).
	Prefix string `json:"prefix"`
	// EpochSeconds is the length of an epoch; 0 means the whole recording
	// (each contiguous segment of an EDF+D file) is one epoch.
	EpochSeconds float64 `json:"epoch_s,omitempty"`
	// BadSpans is "nan", "drop" or "keep" (default DefaultBadSpans).
	BadSpans string `json:"bad_spans,omitempty"`
	// ShardMB is the size of the data records a shard covers, in MiB
	// (default DefaultShardBytes). A shard never spans two files.
	ShardMB float64 `json:"shard_mb,omitempty"`
	// Shards asks for at least this many shards, when the files have enough
	// epochs, so that a small dataset still runs in parallel.
	Shards int `json:"shards,omitempty"`
}

// recIndex is the content of a recording dataset's _recording.json.
type recIndex struct {
	Options RegisterOptions `json:"options"`
	BIDS    bool            `json:"bids"`
	// Extra are the participants.tsv columns, in order.
	Extra  []extraColumn `json:"extra,omitempty"`
	Files  []recFile     `json:"files"`
	Shards []recShard    `json:"shards"`
}

type extraColumn struct {
	Name    string `json:"name"`
	Source  string `json:"source"`
	Numeric bool   `json:"numeric"`
}

type recFile struct {
	Key  string `json:"key"`
	Name string `json:"name"`
	Size int64  `json:"size"`
	ETag string `json:"etag"`
	// Header is the parsed header, so shard readers read no header.
	Header   *edf.Header `json:"header"`
	Segments []segment   `json:"segments"`
	// Bad are the BAD annotation spans, [onset, end) in seconds from the
	// header's start.
	Bad [][2]float64 `json:"bad,omitempty"`
	// Epochs is the number of epochs of the file (kept or not).
	Epochs int64 `json:"epochs"`
	// Dropped are the epochs a BAD span touches, as sorted disjoint ranges
	// [first, end) (left out by bad_spans "drop").
	Dropped [][2]int64 `json:"dropped,omitempty"`

	Subject     string            `json:"subject,omitempty"`
	Session     string            `json:"session,omitempty"`
	Task        string            `json:"task,omitempty"`
	Run         string            `json:"run,omitempty"`
	Participant map[string]string `json:"participant,omitempty"`
	BadChannels []string          `json:"bad_channels,omitempty"`
}

// segment is a run of contiguous data records (all of them in a continuous
// file).
type segment struct {
	Record  int64 `json:"record"`
	Records int64 `json:"records"`
	// Onset is the segment's start in seconds from the header's start.
	Onset float64 `json:"onset"`
	// Epochs is the number of epochs in the segment.
	Epochs int64 `json:"epochs"`
}

type recShard struct {
	Name   string `json:"name"`
	File   int    `json:"file"`
	Epoch0 int64  `json:"epoch0"`
	Epoch1 int64  `json:"epoch1"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
}

// epochSamples is the length of one epoch of segment s in samples of signal sig.
func (f *recFile) epochSamples(opts *RegisterOptions, s *segment, sig int) int64 {
	n := int64(f.Header.Signals[sig].SamplesPerRecord)
	if opts.EpochSeconds <= 0 {
		return s.Records * n
	}
	return int64(math.Round(opts.EpochSeconds * f.Header.Fs(sig)))
}

// epochAt finds the segment and the index inside it of the file's epoch e.
func (f *recFile) epochAt(e int64) (int, int64) {
	for i := range f.Segments {
		if e < f.Segments[i].Epochs {
			return i, e
		}
		e -= f.Segments[i].Epochs
	}
	return -1, 0
}

// epochSpan is the time span [t0, t1) of epoch k of segment s, in seconds
// from the header's start.
func (f *recFile) epochSpan(opts *RegisterOptions, s *segment, k int64) (float64, float64) {
	// The products are converted, which rounds them: a GOAMD64=v3 build
	// would otherwise fuse them with the sums, and the times would depend
	// on the build.
	if opts.EpochSeconds <= 0 {
		return s.Onset, s.Onset + float64(float64(s.Records)*f.Header.RecordSeconds)
	}
	t0 := s.Onset + float64(float64(k)*opts.EpochSeconds)
	return t0, t0 + opts.EpochSeconds
}

func (f *recFile) dropped(e int64) bool {
	i := sort.Search(len(f.Dropped), func(i int) bool { return f.Dropped[i][1] > e })
	return i < len(f.Dropped) && f.Dropped[i][0] <= e
}

// droppedIn counts the dropped epochs in [e0, e1).
func (f *recFile) droppedIn(e0, e1 int64) int64 {
	var n int64
	for _, d := range f.Dropped {
		n += max(0, min(d[1], e1)-max(d[0], e0))
	}
	return n
}

// schema is the schema of a recording dataset's rows.
func (ix *recIndex) schema() *arrow.Schema {
	str := func(n string) arrow.Field {
		return arrow.Field{Name: n, Type: arrow.BinaryTypes.String, Nullable: true}
	}
	f64 := func(n string) arrow.Field {
		return arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Float64, Nullable: true}
	}
	fields := []arrow.Field{
		{Name: "file", Type: arrow.BinaryTypes.String},
		{Name: "channel", Type: arrow.BinaryTypes.String},
		{Name: "epoch", Type: arrow.PrimitiveTypes.Int64},
		{Name: "start_time", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "unit", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "fs", Type: arrow.PrimitiveTypes.Float64},
		{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
		str("file_format"),
		str("patient_id"), str("recording_id"),
		str("patient_code"), str("patient_sex"), str("patient_birthdate"), str("patient_name"),
		str("admin_code"), str("technician"), str("equipment"),
		str("transducer"), str("prefilter"),
		f64("physical_min"), f64("physical_max"),
		{Name: "digital_min", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "digital_max", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}
	if ix.BIDS {
		fields = append(fields, str("subject"), str("session"), str("task"), str("run"))
		for _, c := range ix.Extra {
			if c.Numeric {
				fields = append(fields, f64(c.Name))
			} else {
				fields = append(fields, str(c.Name))
			}
		}
		fields = append(fields, arrow.Field{Name: "bad_channel", Type: arrow.FixedWidthTypes.Boolean})
	}
	md := arrow.NewMetadata([]string{"flightbatch.recording.bad_spans", "flightbatch.recording.epoch_s"},
		[]string{ix.Options.BadSpans, FormatEpochSeconds(ix.Options.EpochSeconds)})
	return arrow.NewSchema(fields, &md)
}

// edfPlusFields splits EDF+'s patient ("code sex birthdate name") and
// recording ("Startdate date admin technician equipment") fields; "X" is
// unknown (null).
func edfPlusFields(h *edf.Header) (patient [4]string, recording [3]string) {
	if !h.Kind.Plus() {
		return
	}
	p := strings.Fields(h.Patient)
	for i := 0; i < 4 && i < len(p); i++ {
		patient[i] = p[i]
	}
	r := strings.Fields(h.Recording)
	if len(r) > 0 && r[0] == "Startdate" {
		for i := 0; i < 3 && i+2 < len(r); i++ {
			recording[i] = r[i+2]
		}
	}
	return
}

// readRecordingIndex reads a recording dataset's index.
func readRecordingIndex(ctx context.Context, st *store.Store, key string) (*recIndex, error) {
	if o, err := st.Stat(ctx, key); err == nil && o.Size > maxRecordingIndexBytes {
		return nil, fmt.Errorf("dataset: %s is %d bytes, more than the %d a recording index may be: %w", key, o.Size, maxRecordingIndexBytes, ErrDamaged)
	}
	data, err := st.ReadAll(ctx, key)
	if err != nil {
		if errors.Is(err, store.ErrNotExist) {
			return nil, fmt.Errorf("dataset: %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("dataset: %w", err)
	}
	ix := &recIndex{}
	if err := json.Unmarshal(data, ix); err != nil {
		return nil, fmt.Errorf("dataset: read %s: %v: %w", key, err, ErrDamaged)
	}
	return ix, nil
}

// recordingDataset describes a registered recording dataset from its index.
func recordingDataset(name, key string, obj store.Object, ix *recIndex) *Dataset {
	ds := &Dataset{Name: name, Version: recordingVersion(obj)}
	for _, s := range ix.Shards {
		ds.Shards = append(ds.Shards, Shard{Name: s.Name, Key: key + "#" + s.Name, Format: FormatRecording, Size: s.Bytes, Rows: s.Rows, ETag: obj.ETag})
	}
	return ds
}

// recordingVersion is the version of a recording dataset: its index names
// every file with its size and ETag, so the index's own identity stands for
// the data it describes (a file changed since registration is refused when
// read).
func recordingVersion(obj store.Object) string {
	return shortHash(fmt.Sprintf("recording\x00%s\x00%d\x00%s", obj.Key, obj.Size, obj.ETag))
}

// openRecordingShard opens one shard of a recording dataset.
func openRecordingShard(ctx context.Context, st *store.Store, ref string, mem memory.Allocator) (array.RecordReader, error) {
	key, shard, ok := strings.Cut(ref, "#")
	if !ok {
		return nil, fmt.Errorf("dataset: recording shard %q names no shard: %w", ref, ErrInvalid)
	}
	ix, err := readRecordingIndex(ctx, st, key)
	if err != nil {
		return nil, err
	}
	for i := range ix.Shards {
		if ix.Shards[i].Name == shard {
			return newRecordingReader(ctx, st, ix, &ix.Shards[i], mem)
		}
	}
	return nil, fmt.Errorf("dataset: %s: no shard %q: %w", key, shard, ErrNotFound)
}

// recordingReader reads one shard of a recording dataset: epoch after epoch,
// each channel a row, through ranged reads of whole data records.
type recordingReader struct {
	ctx    context.Context
	ix     *recIndex
	sh     *recShard
	f      *recFile
	file   *store.File
	schema *arrow.Schema
	mem    memory.Allocator
	sigs   []int
	bad    map[string]bool
	next   int64
	cur    arrow.RecordBatch
	err    error
	refs   int
}

func newRecordingReader(ctx context.Context, st *store.Store, ix *recIndex, sh *recShard, mem memory.Allocator) (*recordingReader, error) {
	if sh.File < 0 || sh.File >= len(ix.Files) {
		return nil, fmt.Errorf("dataset: recording shard %s names file %d of %d: %w", sh.Name, sh.File, len(ix.Files), ErrInvalid)
	}
	f := &ix.Files[sh.File]
	file, err := st.OpenFile(ctx, f.Key)
	if err != nil {
		return nil, fmt.Errorf("dataset: recording file %s: %w", f.Key, err)
	}
	if o, err := st.Stat(ctx, f.Key); err != nil || o.Size != f.Size || o.ETag != f.ETag {
		_ = file.Close()
		return nil, fmt.Errorf("dataset: recording file %s changed since the dataset was registered (size or ETag differ); register it again: %w", f.Key, ErrDamaged)
	}
	if err := f.check(&ix.Options, sh); err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("dataset: the recording index's entry of %s is damaged: %v; register it again: %w", f.Key, err, ErrDamaged)
	}
	r := &recordingReader{ctx: ctx, ix: ix, sh: sh, f: f, file: file, schema: ix.schema(), mem: mem, sigs: f.Header.DataSignals(), next: sh.Epoch0, refs: 1}
	r.bad = map[string]bool{}
	for _, c := range f.BadChannels {
		r.bad[c] = true
	}
	return r, nil
}

// check makes sure an index entry (found in the store, so not trusted) reads
// within the file and within the memory bounds a registration enforces.
func (f *recFile) check(opts *RegisterOptions, sh *recShard) error {
	h := f.Header
	if h == nil || len(h.Signals) == 0 || h.RecordBytes <= 0 || h.RecordBytes > edf.MaxRecordBytes || h.HeaderBytes < 0 ||
		(h.SampleBytes != 2 && h.SampleBytes != 3) || !(h.RecordSeconds > 0) {
		return errors.New("bad header")
	}
	off := 0
	for i := range h.Signals {
		s := &h.Signals[i]
		if s.SamplesPerRecord < 1 || s.Offset != off || s.DigMax <= s.DigMin && !s.Annotations {
			return fmt.Errorf("bad signal %d", i)
		}
		off += s.SamplesPerRecord * h.SampleBytes
	}
	if off != h.RecordBytes {
		return errors.New("signal sizes do not add up to the record size")
	}
	var epochs int64
	for i := range f.Segments {
		s := &f.Segments[i]
		if s.Record < 0 || s.Records < 1 || s.Epochs < 0 || h.RecordOffset(s.Record+s.Records) > f.Size {
			return fmt.Errorf("segment %d is outside the file", i)
		}
		for _, sig := range h.DataSignals() {
			m := f.epochSamples(opts, s, sig)
			n := int64(h.Signals[sig].SamplesPerRecord)
			if m < 1 || m > MaxEpochSamples || s.Epochs*m > s.Records*n {
				return fmt.Errorf("segment %d: epochs of %d samples do not fit", i, m)
			}
		}
		epochs += s.Epochs
	}
	if epochs != f.Epochs || sh.Epoch0 < 0 || sh.Epoch1 > epochs || sh.Epoch0 > sh.Epoch1 {
		return errors.New("epochs do not add up")
	}
	return nil
}

func (r *recordingReader) Retain()               { r.refs++ }
func (r *recordingReader) Schema() *arrow.Schema { return r.schema }
func (r *recordingReader) Err() error            { return r.err }
func (r *recordingReader) RecordBatch() arrow.RecordBatch {
	return r.cur
}

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (r *recordingReader) Record() arrow.RecordBatch { return r.cur }

func (r *recordingReader) Release() {
	r.refs--
	if r.refs == 0 {
		if r.cur != nil {
			r.cur.Release()
			r.cur = nil
		}
		_ = r.file.Close()
	}
}

func (r *recordingReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	for r.err == nil && r.next < r.sh.Epoch1 {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			return false
		}
		var rec arrow.RecordBatch
		err := Protect("dataset: "+r.f.Key, ErrDamaged, func() error {
			var err error
			rec, err = r.readGroup()
			return err
		})
		if err != nil {
			r.err = fmt.Errorf("dataset: read recording %s: %w", r.f.Key, err)
			return false
		}
		if rec != nil {
			r.cur = rec
			return true
		}
	}
	return false
}

// readGroup reads the next epochs of one segment whose data records fit in
// one ranged read of about recordingBatchBytes (at least one epoch), and
// builds their rows.
func (r *recordingReader) readGroup() (arrow.RecordBatch, error) {
	h := r.f.Header
	opts := &r.ix.Options
	segIdx, k0 := r.f.epochAt(r.next)
	if segIdx < 0 {
		return nil, fmt.Errorf("epoch %d is past the file's %d epochs: %w", r.next, r.f.Epochs, ErrInvalid)
	}
	seg := &r.f.Segments[segIdx]
	// records [a, b) of the segment that epochs k0..k1-1 cover.
	recRange := func(k0, k1 int64) (int64, int64) {
		a, b := int64(math.MaxInt64), int64(0)
		for _, sig := range r.sigs {
			m := r.f.epochSamples(opts, seg, sig)
			n := int64(h.Signals[sig].SamplesPerRecord)
			a = min(a, k0*m/n)
			b = max(b, (k1*m+n-1)/n)
		}
		return a, b
	}
	k1 := k0 + 1
	last := seg.Epochs
	if rem := r.sh.Epoch1 - r.next; k0+rem < last {
		last = k0 + rem
	}
	for k1 < last {
		a, b := recRange(k0, k1+1)
		if (b-a)*int64(h.RecordBytes) > recordingBatchBytes {
			break
		}
		k1++
	}
	a, b := recRange(k0, k1)
	if b > seg.Records {
		return nil, fmt.Errorf("epoch %d needs record %d of a segment of %d: %w", r.next, seg.Record+b, seg.Records, ErrInvalid)
	}
	buf := make([]byte, (b-a)*int64(h.RecordBytes))
	off := h.RecordOffset(seg.Record + a)
	if n, err := r.file.ReadAt(buf, off); n < len(buf) {
		return nil, fmt.Errorf("read %d bytes at %d: got %d: %v: %w", len(buf), off, n, err, ErrDamaged)
	}
	r.next += k1 - k0
	return r.build(seg, k0, k1, a, buf)
}

func (r *recordingReader) build(seg *segment, k0, k1, a int64, buf []byte) (arrow.RecordBatch, error) {
	h := r.f.Header
	opts := &r.ix.Options
	b := array.NewRecordBuilder(r.mem, r.schema)
	defer b.Release()
	patient, recording := edfPlusFields(h)
	fileEpoch0 := int64(0)
	for i := range r.f.Segments {
		if &r.f.Segments[i] == seg {
			break
		}
		fileEpoch0 += r.f.Segments[i].Epochs
	}
	decoded := make([][]float64, len(h.Signals))
	for _, sig := range r.sigs {
		decoded[sig] = h.Decode(nil, buf, sig)
	}
	rows := 0
	for k := k0; k < k1; k++ {
		e := fileEpoch0 + k
		if opts.BadSpans == BadSpansDrop && r.f.dropped(e) {
			continue
		}
		t0, _ := r.f.epochSpan(opts, seg, k)
		start := h.Start.Add(time.Duration(math.Round(t0*1e6)) * time.Microsecond)
		for _, sig := range r.sigs {
			s := &h.Signals[sig]
			m := r.f.epochSamples(opts, seg, sig)
			n := int64(s.SamplesPerRecord)
			lo := k*m - a*n
			samples := decoded[sig][lo : lo+m]
			if opts.BadSpans == BadSpansNaN && len(r.f.Bad) > 0 {
				samples = append([]float64(nil), samples...)
				r.markBad(samples, seg, k*m, h.Fs(sig))
			}
			col := 0
			str := func(v string) {
				sb := b.Field(col).(*array.StringBuilder)
				if v == "" || v == "X" {
					sb.AppendNull()
				} else {
					sb.Append(v)
				}
				col++
			}
			b.Field(0).(*array.StringBuilder).Append(r.f.Name)
			b.Field(1).(*array.StringBuilder).Append(s.Label)
			b.Field(2).(*array.Int64Builder).Append(e)
			b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(start.UnixMicro()))
			if s.Unit == "" {
				b.Field(4).AppendNull()
			} else {
				b.Field(4).(*array.StringBuilder).Append(s.Unit)
			}
			b.Field(5).(*array.Float64Builder).Append(h.Fs(sig))
			lb := b.Field(6).(*array.ListBuilder)
			lb.Append(true)
			lb.ValueBuilder().(*array.Float64Builder).AppendValues(samples, nil)
			col = 7
			str(string(h.Kind))
			str(h.Patient)
			str(h.Recording)
			for _, v := range patient {
				str(v)
			}
			for _, v := range recording {
				str(v)
			}
			str(s.Transducer)
			str(s.Prefilter)
			b.Field(col).(*array.Float64Builder).Append(s.PhysMin)
			b.Field(col + 1).(*array.Float64Builder).Append(s.PhysMax)
			b.Field(col + 2).(*array.Int64Builder).Append(s.DigMin)
			b.Field(col + 3).(*array.Int64Builder).Append(s.DigMax)
			col += 4
			if r.ix.BIDS {
				str(r.f.Subject)
				str(r.f.Session)
				str(r.f.Task)
				str(r.f.Run)
				for _, c := range r.ix.Extra {
					v, ok := r.f.Participant[c.Source]
					if c.Numeric {
						fb := b.Field(col).(*array.Float64Builder)
						if x, isNum := parseNumber(v); ok && isNum {
							fb.Append(x)
						} else {
							fb.AppendNull()
						}
						col++
						continue
					}
					if !ok || v == "n/a" {
						b.Field(col).(*array.StringBuilder).AppendNull()
						col++
						continue
					}
					b.Field(col).(*array.StringBuilder).Append(v)
					col++
				}
				b.Field(col).(*array.BooleanBuilder).Append(r.bad[s.Label])
			}
			rows++
		}
	}
	if rows == 0 {
		return nil, nil
	}
	return b.NewRecordBatch(), nil
}

// markBad sets to NaN the samples of an epoch (starting at sample first of
// its segment, at rate fs) that a BAD span covers: as MNE's
// reject_by_annotation="NaN", the span [onset, end) covers samples
// round(onset·fs) to round(end·fs) - 1, times counted from the segment's start.
func (r *recordingReader) markBad(samples []float64, seg *segment, first int64, fs float64) {
	for _, span := range r.f.Bad {
		lo := int64(math.RoundToEven((span[0] - seg.Onset) * fs))
		hi := int64(math.RoundToEven((span[1] - seg.Onset) * fs))
		lo, hi = max(lo-first, 0), min(hi-first, int64(len(samples)))
		for j := lo; j < hi; j++ {
			samples[j] = math.NaN()
		}
	}
}

// recordingSchema is the schema of a registered recording dataset.
func (c *Catalog) recordingSchema(ctx context.Context, ds *Dataset) (*arrow.Schema, bool, error) {
	if len(ds.Shards) == 0 || ds.Shards[0].Format != FormatRecording {
		return nil, false, nil
	}
	key, _, _ := strings.Cut(ds.Shards[0].Key, "#")
	ix, err := readRecordingIndex(ctx, c.st, key)
	if err != nil {
		return nil, true, err
	}
	return ix.schema(), true, nil
}

// FormatEpochSeconds formats epoch_s for a schema's
// flightbatch.recording.epoch_s metadata as Python's str(float(v)) does
// ("2.0", "0.5"), as the Python client writes it.
func FormatEpochSeconds(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}
