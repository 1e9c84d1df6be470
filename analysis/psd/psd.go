// Package psd is the built-in psd analysis: Welch's power spectral density of
// every record's signal, equal to scipy.signal.welch, with optional band
// powers. It is a batch.Function, registered where the server is assembled.
package psd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	acompute "github.com/apache/arrow-go/v18/arrow/compute"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/compute"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/pkg/api"
)

// Function is the psd function: Welch's power spectral density of every
// record's signal, with optional band powers, equal to scipy.signal.welch.
type Function struct{}

var _ batch.Function = Function{}

// Params are the decoded psd parameters: the request's fields, whose names,
// types and defaults api.PSDParams states once, and the Welch kernel's
// parameters, converted from them once by DecodeParams.
type Params struct {
	api.PSDParams
	welch compute.WelchParams
}

// MetaFreqs is the result schema metadata key holding, with "shared_freqs",
// the frequencies of every row's psd: a JSON array of numbers in Hz.
const MetaFreqs = "flightbatch.freqs"

// MaxSharedFreqs bounds the frequencies "shared_freqs" keeps in the schema
// metadata (which every job manifest and result part carries): nfft 16,384
// one-sided, or a crop of a longer spectrum.
const MaxSharedFreqs = 8193

// sharedFreqs is the frequency axis of every row with SharedFreqs (nil
// without): that of a record at least nperseg long, cropped. Prepare has
// checked that the request allows it.
func (p Params) sharedFreqs() []float64 {
	if !p.SharedFreqs || p.FS == nil || p.multitaper() {
		return nil
	}
	w := p.welch
	onesided := w.ReturnOnesided == nil || *w.ReturnOnesided
	// After Validate, MaxFreqs is the nfft of every record at least nperseg
	// long: the explicit nfft, or nperseg.
	f := compute.FFTFreqs(make([]float64, 0, w.MaxFreqs()), w.MaxFreqs(), *p.FS, onesided)
	if p.cropped() {
		lo, hi := p.totalRange()
		c0, c1 := cropRange(f, lo, hi)
		f = f[c0:c1]
	}
	return f
}

// multitaper reports whether the request asks for the multitaper method.
func (p Params) multitaper() bool { return p.Method == "multitaper" }

// multitaperParams is the kernel's parameters.
func (p Params) multitaperParams() compute.MultitaperParams {
	mp := compute.MultitaperParams{
		Bandwidth: p.Bandwidth,
		LowBias:   p.LowBias == nil || *p.LowBias,
		Full:      p.Normalization == "full",
		Adaptive:  p.Adaptive,
		StopLo:    0,
		StopHi:    math.Inf(1),
	}
	if p.MaxIter != nil {
		mp.MaxIter = *p.MaxIter
	}
	if p.cropped() {
		mp.StopLo, mp.StopHi = p.totalRange()
	}
	return mp
}

// validateMethod checks the method and that its parameters are not mixed
// with the other method's.
func (p Params) validateMethod() error {
	invalid := func(format string, args ...any) error { return batch.Invalidf("psd: "+format, args...) }
	switch p.Method {
	case "", "welch":
		var given []string
		if p.Bandwidth != nil {
			given = append(given, `"bandwidth"`)
		}
		if p.LowBias != nil {
			given = append(given, `"low_bias"`)
		}
		if p.Normalization != "" {
			given = append(given, `"normalization"`)
		}
		if p.Adaptive {
			given = append(given, `"adaptive"`)
		}
		if p.MaxIter != nil {
			given = append(given, `"max_iter"`)
		}
		if len(given) > 0 {
			return invalid(`%s are parameters of "method": "multitaper"; add it or drop them`, strings.Join(given, ", "))
		}
		return nil
	case "multitaper":
	default:
		return invalid(`method %s: use "welch" or "multitaper"`, clip.Quote(p.Method))
	}
	var given []string
	for name, set := range map[string]bool{
		"window": p.Window != nil, "nperseg": p.NPerSeg != nil, "noverlap": p.NOverlap != nil,
		"nfft": p.NFFT != nil, "detrend": p.Detrend != nil, "return_onesided": p.ReturnOnesided != nil,
		"scaling": p.Scaling != "", "average": p.Average != "",
	} {
		if set {
			given = append(given, strconv.Quote(name))
		}
	}
	if len(given) > 0 {
		sort.Strings(given)
		return invalid(`%s are Welch parameters; "method": "multitaper" tapers the whole record with DPSS tapers, set by "bandwidth", "low_bias" and "normalization"`, strings.Join(given, ", "))
	}
	if p.MaxIter != nil && (*p.MaxIter < 1 || *p.MaxIter > 10000) {
		return invalid("max_iter must be between 1 and 10000, got %d", *p.MaxIter)
	}
	if p.NaNPolicy == "omit" {
		return invalid(`"nan_policy": "omit" is supported with "method": "welch" only`)
	}
	switch p.Normalization {
	case "", "length", "full":
	default:
		return invalid(`normalization %s: use "length" or "full"`, clip.Quote(p.Normalization))
	}
	if p.Bandwidth != nil && (!(*p.Bandwidth > 0) || math.IsInf(*p.Bandwidth, 0)) {
		return invalid("bandwidth must be a positive number of Hz, got %v", *p.Bandwidth)
	}
	return nil
}

// AverageNone is the average (also JSON null) that gives every segment's
// spectrum, one row per segment, instead of their mean or median.
const AverageNone = "none"

// ReasonColumn names the column that says, with fs_column and bands, why a
// row's values are null (null when every value was computed).
const ReasonColumn = "invalid_reason"

// Welch is the Welch kernel's parameters.
func (p Params) Welch() compute.WelchParams { return p.welch }

// welchParams converts the request's Welch fields to the kernel's
// parameters, the one place the two shapes meet: compute parses scipy's
// window and detrend forms, and average "none" computes per-segment spectra
// with the plan of average "mean". It returns the window and detrend in
// their canonical JSON forms too, which the job records.
func welchParams(p api.PSDParams) (w compute.WelchParams, window, detrend json.RawMessage, err error) {
	w = compute.WelchParams{
		NPerSeg: p.NPerSeg, NOverlap: p.NOverlap, NFFT: p.NFFT,
		ReturnOnesided: p.ReturnOnesided, Scaling: p.Scaling, Average: p.Average,
	}
	if w.Average == AverageNone {
		w.Average = ""
	}
	if p.Window != nil {
		w.Window = new(compute.Window)
		if window, err = reparse(p.Window, w.Window); err != nil {
			return w, nil, nil, err
		}
	}
	if p.Detrend != nil {
		w.Detrend = new(compute.Detrend)
		if detrend, err = reparse(p.Detrend, w.Detrend); err != nil {
			return w, nil, nil, err
		}
	}
	return w, window, detrend, nil
}

// reparse decodes v, a JSON value as decoded into an interface (or raw
// JSON), into dst, and returns dst's canonical JSON.
func reparse(v any, dst json.Unmarshaler) (json.RawMessage, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if err := dst.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	return json.Marshal(dst)
}

// reasons reports whether the result has ReasonColumn: with fs_column and
// bands, whose validity then depends on each record's sampling rate, with
// nan_policy "omit", which leaves a record of NaN only without a PSD, and
// with shared_freqs, which leaves a record of other frequencies without one.
func (p Params) reasons() bool {
	return p.FSColumn != "" && len(p.Bands) > 0 || p.NaNPolicy == "omit" || p.SharedFreqs
}

// cropped reports whether fmin or fmax crop the output.
func (p Params) cropped() bool { return p.FMin != nil || p.FMax != nil }

// beyond lists what the request asks above the Nyquist frequency of a signal
// sampled at fs: bands, and the upper bound of the relative power's total.
// It is the one statement of that rule: a fixed fs makes it an error up
// front, fs_column a null value and a reason per record.
func (p Params) beyond(fs float64) (bands []int, total bool, reason string) {
	nyq := fs / 2
	var why []string
	for i, b := range p.Bands {
		if b.Hi > nyq {
			bands = append(bands, i)
			why = append(why, fmt.Sprintf("band %q reaches %v Hz, above the Nyquist frequency fs/2 = %v Hz", b.Name, b.Hi, nyq))
		}
	}
	if _, hi := p.totalRange(); p.Relative && hi > nyq {
		total = true
		why = append(why, fmt.Sprintf("fmax %v Hz (the total of relative power) is above the Nyquist frequency fs/2 = %v Hz", hi, nyq))
	}
	return bands, total, strings.Join(why, "; ")
}

// The default range, in Hz, of the total power relative band power divides by.
const (
	DefaultFMin = 1.0
	DefaultFMax = 45.0
)

// totalRange is the range of the total power of relative band power.
func (p Params) totalRange() (lo, hi float64) {
	lo, hi = DefaultFMin, DefaultFMax
	if p.FMin != nil {
		lo = *p.FMin
	}
	if p.FMax != nil {
		hi = *p.FMax
	}
	return lo, hi
}

// Band is a named frequency range [Lo, Hi] in Hz.
type Band = api.Band

// Bands is an ordered set of bands; in JSON an object {"beta": [13, 30], ...}
// whose key order is kept.
type Bands = api.Bands

// Name implements batch.Function.
func (Function) Name() string { return "psd" }

// Description implements batch.Function.
func (Function) Description() string {
	return "Welch power spectral density of every record (scipy.signal.welch parameters), with optional band powers"
}

// ActionDescription describes the psd action, whose body is a psd request:
// "dataset", "reuse", and every other field a parameter.
func (Function) ActionDescription() string {
	return `Run Welch's PSD over every shard of a dataset as a job: {"dataset": "demo", "fs": 250, "nperseg": 512, "bands": {"beta": [13, 30]}} -> {"job_id", "state", "shards"}`
}

// DecodeParams decodes psd parameters strictly: unknown names are errors.
func DecodeParams(raw json.RawMessage) (Params, error) {
	var p Params
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, batch.Invalidf("psd parameters: %s", clip.JSONError(err))
	}
	// "average": null means no averaging, as MNE's average=None does; an
	// absent "average" means the mean.
	var probe map[string]json.RawMessage
	if json.Unmarshal(raw, &probe) == nil {
		if v, ok := probe["average"]; ok && bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			p.Average = AverageNone
		}
	}
	if p.Column == "" {
		p.Column = "samples"
	}
	w, window, detrend, err := welchParams(p.PSDParams)
	if err != nil {
		return p, batch.Invalidf("psd parameters: %s", err)
	}
	p.welch = w
	if window != nil {
		p.Window = window
	}
	if detrend != nil {
		p.Detrend = detrend
	}
	return p, nil
}

// MaxBands bounds the bands of one psd request.
const MaxBands = 256

// bandNameOK reports whether a band name can name a column.
func bandNameOK(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// Prepare implements batch.Function.
func (Function) Prepare(raw json.RawMessage, in *arrow.Schema) (*arrow.Schema, json.RawMessage, error) {
	p, err := DecodeParams(raw)
	if err != nil {
		return nil, nil, err
	}
	invalid := func(format string, args ...any) error { return batch.Invalidf("psd: "+format, args...) }
	switch {
	case p.FS == nil && p.FSColumn == "":
		return nil, nil, invalid(`give the sampling rate: "fs" in Hz, or "fs_column" naming a column that holds it`)
	case p.FS != nil && p.FSColumn != "":
		return nil, nil, invalid(`give either "fs" or "fs_column", not both`)
	case p.FS != nil && compute.ValidateFS(*p.FS) != nil:
		return nil, nil, invalid("fs must be a positive number of Hz, got %v", *p.FS)
	}
	if err := p.validateMethod(); err != nil {
		return nil, nil, err
	}
	if err := p.welch.Validate(); err != nil {
		return nil, nil, batch.Invalidf("psd: %w", err)
	}
	if lo, hi := p.totalRange(); !(lo >= 0) || !(hi > lo) || math.IsInf(hi, 0) {
		return nil, nil, invalid("fmin %v and fmax %v must satisfy 0 <= fmin < fmax", lo, hi)
	}
	if p.FS != nil && p.FMax != nil && *p.FMax > *p.FS/2 {
		return nil, nil, invalid("fmax %v Hz is above the Nyquist frequency fs/2 = %v Hz", *p.FMax, *p.FS/2)
	}
	if p.cropped() && p.ReturnOnesided != nil && !*p.ReturnOnesided {
		return nil, nil, invalid(`"fmin" and "fmax" crop a one-sided spectrum; drop "return_onesided": false or the crop`)
	}
	switch p.NaNPolicy {
	case "", "propagate":
	case "omit":
		if p.Average == AverageNone {
			// MNE's psd_array_welch cannot combine spans of different
			// segment counts unaveraged either.
			return nil, nil, invalid(`"nan_policy": "omit" combines the good spans' averaged spectra, so it needs "average": "mean" or "median", not per-segment spectra`)
		}
	default:
		return nil, nil, invalid(`nan_policy %s: use "propagate" or "omit"`, clip.Quote(p.NaNPolicy))
	}
	if p.Relative && len(p.Bands) == 0 {
		return nil, nil, invalid(`"relative": true needs "bands", e.g. {"beta": [13, 30]}`)
	}
	var shared []float64
	if p.SharedFreqs {
		switch {
		case p.multitaper():
			return nil, nil, invalid(`"shared_freqs" needs one frequency axis for every record; multitaper's depends on each record's length: drop "shared_freqs"`)
		case p.FS == nil:
			return nil, nil, invalid(`"shared_freqs" needs one frequency axis for every record; with "fs_column" each record's rate gives its own: give a fixed "fs" or drop "shared_freqs"`)
		case !p.cropped() && p.welch.MaxFreqs() > 2*MaxSharedFreqs:
			// Checked before the axis is built: nfft may be 2^20.
			return nil, nil, invalid(`"shared_freqs": nfft %d gives more than %d frequencies to keep in the schema metadata; crop with "fmin"/"fmax" or drop "shared_freqs"`, p.welch.MaxFreqs(), MaxSharedFreqs)
		}
		if shared = p.sharedFreqs(); len(shared) > MaxSharedFreqs {
			return nil, nil, invalid(`"shared_freqs": %d frequencies are above the limit of %d kept in the schema metadata; crop with "fmin"/"fmax", lower nfft or drop "shared_freqs"`, len(shared), MaxSharedFreqs)
		}
	}
	if len(p.Bands) > MaxBands {
		return nil, nil, invalid("%d bands are above the limit of %d", len(p.Bands), MaxBands)
	}
	seen := map[string]bool{}
	for _, b := range p.Bands {
		switch {
		case !bandNameOK(b.Name):
			return nil, nil, invalid("band name %s must be 1 to 64 letters, digits, _ or -", clip.Quote(b.Name))
		case seen[b.Name]:
			return nil, nil, invalid("band %q is given twice", b.Name)
		case !(b.Lo >= 0) || !(b.Hi > b.Lo) || math.IsInf(b.Hi, 0):
			return nil, nil, invalid("band %q is [%v, %v]; it must satisfy 0 <= low < high", b.Name, b.Lo, b.Hi)
		}
		if lo, hi := p.totalRange(); p.Relative && (b.Lo < lo || b.Hi > hi) {
			return nil, nil, invalid("band %q [%v, %v] Hz lies outside [fmin, fmax] = [%v, %v] Hz, the total its relative power divides by; widen fmin/fmax or narrow the band", b.Name, b.Lo, b.Hi, lo, hi)
		}
		seen[b.Name] = true
	}
	if p.FS != nil {
		if _, _, reason := p.beyond(*p.FS); reason != "" {
			return nil, nil, invalid("%s", reason)
		}
	}
	idx := in.FieldIndices(p.Column)
	if len(idx) == 0 {
		return nil, nil, invalid("the dataset has no column %s; its columns are %s", clip.Quote(p.Column), columnNames(in))
	}
	if !isSignalType(in.Field(idx[0]).Type) {
		return nil, nil, invalid("column %q is %s; the signal must be a list, large_list or fixed_size_list of float32 or float64", p.Column, in.Field(idx[0]).Type)
	}
	if p.FSColumn != "" {
		fi := in.FieldIndices(p.FSColumn)
		if len(fi) == 0 {
			return nil, nil, invalid("the dataset has no column %s (fs_column); its columns are %s", clip.Quote(p.FSColumn), columnNames(in))
		}
		if !arrow.IsInteger(in.Field(fi[0]).Type.ID()) && !arrow.IsFloating(in.Field(fi[0]).Type.ID()) {
			return nil, nil, invalid("fs_column %q is %s; it must be numeric", p.FSColumn, in.Field(fi[0]).Type)
		}
	}
	fields := make([]arrow.Field, 0, len(in.Fields())+2+len(p.Bands))
	for _, f := range in.Fields() {
		if f.Name != p.Column {
			fields = append(fields, f)
		}
	}
	for _, f := range fields {
		for _, reserved := range append([]string{"freqs", "psd", "segment", "segment_time", ReasonColumn}, bandColumns(p)...) {
			if f.Name == reserved {
				return nil, nil, invalid("the dataset already has a column %q, which the result would repeat", f.Name)
			}
		}
	}
	if p.Average == AverageNone {
		fields = append(fields,
			arrow.Field{Name: "segment", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
			arrow.Field{Name: "segment_time", Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	}
	if !p.SharedFreqs {
		fields = append(fields, arrow.Field{Name: "freqs", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64), Nullable: true})
	}
	fields = append(fields, arrow.Field{Name: "psd", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64), Nullable: true})
	for _, c := range bandColumns(p) {
		fields = append(fields, arrow.Field{Name: c, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	}
	if p.reasons() {
		fields = append(fields, arrow.Field{Name: ReasonColumn, Type: arrow.BinaryTypes.String, Nullable: true})
	}
	norm, err := json.Marshal(p)
	if err != nil {
		return nil, nil, err
	}
	var meta *arrow.Metadata
	if p.SharedFreqs {
		b, err := json.Marshal(append([]float64{}, shared...))
		if err != nil {
			return nil, nil, fmt.Errorf("psd: shared freqs: %w", err)
		}
		md := arrow.NewMetadata([]string{MetaFreqs}, []string{string(b)})
		meta = &md
	}
	return arrow.NewSchema(fields, meta), norm, nil
}

var _ batch.EffectiveParams = Function{}

// EffectiveParams implements batch.EffectiveParams: recorded params with the
// defaults every record runs with filled in, so that "reuse" finds a job
// whether a default was spelled out or left out. Welch's window ("hann"),
// nperseg (256, or the number of window weights; scipy clips either to a
// shorter record alike), detrend, return_onesided, scaling, average,
// nan_policy and method; multitaper's low_bias and normalization, and
// max_iter (150) with adaptive weights, where alone it counts. noverlap and
// nfft stay as given: their defaults follow nperseg after it is clipped to
// a short record, where an explicit value does not; so do fmin and fmax,
// which crop when given, and bandwidth, whose default depends on the
// record's length.
func (Function) EffectiveParams(recorded json.RawMessage) (json.RawMessage, error) {
	p, err := DecodeParams(recorded)
	if err != nil {
		return nil, err
	}
	e := p.PSDParams
	if e.Method == "" {
		e.Method = "welch"
	}
	if e.NaNPolicy == "" {
		e.NaNPolicy = "propagate"
	}
	if p.multitaper() {
		if e.LowBias == nil {
			e.LowBias = new(true)
		}
		if e.Normalization == "" {
			e.Normalization = "length"
		}
		switch {
		case !e.Adaptive:
			e.MaxIter = nil // unused
		case e.MaxIter == nil:
			e.MaxIter = new(150)
		}
		return json.Marshal(e)
	}
	if e.Window == nil {
		e.Window = "hann"
	}
	if e.NPerSeg == nil {
		n := 256
		if w := p.welch.Window; w != nil && w.Weights != nil {
			n = len(w.Weights)
		}
		e.NPerSeg = &n
	}
	if e.Detrend == nil {
		e.Detrend = compute.DetrendConstant
	}
	if e.ReturnOnesided == nil {
		e.ReturnOnesided = new(true)
	}
	if e.Scaling == "" {
		e.Scaling = "density"
	}
	if e.Average == "" {
		e.Average = "mean"
	}
	return json.Marshal(e)
}

// bandColumns names the band columns: <band>_power for every band, then
// <band>_relative for every band if asked.
func bandColumns(p Params) []string {
	var out []string
	for _, band := range p.Bands {
		out = append(out, band.Name+"_power")
	}
	if p.Relative {
		for _, band := range p.Bands {
			out = append(out, band.Name+"_relative")
		}
	}
	return out
}

func columnNames(s *arrow.Schema) string {
	names := make([]string, len(s.Fields()))
	for i, f := range s.Fields() {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

func isSignalType(t arrow.DataType) bool {
	var elem arrow.DataType
	switch lt := t.(type) {
	case *arrow.ListType:
		elem = lt.Elem()
	case *arrow.LargeListType:
		elem = lt.Elem()
	case *arrow.FixedSizeListType:
		elem = lt.Elem()
	default:
		return false
	}
	return elem.ID() == arrow.FLOAT32 || elem.ID() == arrow.FLOAT64
}

// resultBatchRows and resultBatchBytes bound a result batch: its rows, and
// its size as written (dataset.LogicalBytes, estimated as rows are added by
// rowBytes). Rows are gathered across input batches up to these bounds, so a
// part holds few large batches rather than one per input batch; within
// resultBatchBytes, DoGet sends each batch of a part as it is stored (its
// default bound, flight.DefaultMaxBatchBytes, is 1 MiB). A row larger than
// that (a very large nfft, a long multitaper record) makes a batch alone.
// With average "none" a record gives one row per segment, so a long
// record's segments are computed and sent a batch at a time under the same
// bounds.
const (
	resultBatchRows  = 4096
	resultBatchBytes = 1<<20 - 64<<10
)

// Run implements batch.Function.
func (Function) Run(ctx context.Context, task batch.Task, in array.RecordReader, emit func(arrow.RecordBatch) error) error {
	p, err := DecodeParams(task.Params)
	if err != nil {
		return err
	}
	planner, err := compute.NewPlanner(p.welch)
	if err != nil {
		return fmt.Errorf("psd: %w", err)
	}
	schema := task.Schema
	sigIdx := in.Schema().FieldIndices(p.Column)[0]
	fsIdx := -1
	if p.FSColumn != "" {
		fsIdx = in.Schema().FieldIndices(p.FSColumn)[0]
	}
	k := &psdKernel{p: p, planner: planner, maxRows: resultBatchRows, shared: p.sharedFreqs(), sigIdx: sigIdx}
	// The builders live as long as the shard: each batch's arrays take
	// their buffers, and the next batch's come from task.Alloc again. A
	// batch gathers the rows of as many input batches as its bounds allow.
	k.r = k.newRowBuilders(task, in.Schema())
	defer k.r.release()
	for in.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := k.batch(ctx, task, schema, in.RecordBatch(), fsIdx, emit); err != nil {
			return err
		}
	}
	if err := in.Err(); err != nil {
		return err
	}
	return k.flush(ctx, task, schema, nil, emit)
}

type psdKernel struct {
	tapers  compute.TaperCache
	p       Params
	planner *compute.Planner
	maxRows int       // rows of one result batch at most (resultBatchRows)
	shared  []float64 // every row's freqs with shared_freqs, else nil
	sigIdx  int       // the signal's column in the input
	r       *rowBuilders
	x       []float64
	freqs   []float64
	psd     []float64
	span    []float64
	// freqsPlan and freqsFS are the plan and rate freqs was computed for,
	// so that the records of one length and rate (most of a dataset) do not
	// compute it again; freqsPlan is nil after a multitaper record.
	freqsPlan *compute.Plan
	freqsFS   float64
}

// rowBuilders build a result batch: the computed columns in builders, and
// the input's other columns as copies of the rows they repeat, cut from each
// input batch before it is released (so that no input batch's memory is held
// for longer than its own computation).
type rowBuilders struct {
	take  []int64 // the input row of every output row since the last cut
	rows  int     // of the batch being built, cut or not
	bytes int64   // its size as written, estimated (rowBytes)
	// meta holds, for each input column other than the signal, the pieces
	// cut for the batch being built; metaRow is the size of one row of them,
	// as the last cut measured it.
	meta    [][]arrow.Array
	metaIdx []int // their columns in the input
	metaRow int64
	seg     *array.Int32Builder
	segTime *array.Float64Builder
	fb, pb  *array.ListBuilder // fb is nil with shared_freqs
	bands   []*array.Float64Builder
	reason  *array.StringBuilder
	// builders is every builder above.
	builders []array.Builder
}

func (r *rowBuilders) release() {
	for _, b := range r.builders {
		b.Release()
	}
	r.dropMeta()
}

// dropMeta releases the pieces cut so far.
func (r *rowBuilders) dropMeta() {
	for j, ps := range r.meta {
		for _, a := range ps {
			a.Release()
		}
		r.meta[j] = ps[:0]
	}
}

// reset starts a new batch. The builders' NewArray has already reset them;
// after an error it drops what they hold.
func (r *rowBuilders) reset() {
	r.take, r.rows, r.bytes = r.take[:0], 0, 0
	r.dropMeta()
	for _, b := range r.builders {
		if b.Len() > 0 {
			b.NewArray().Release()
		}
	}
}

// rowBytes is the size as written of a result row with width frequencies
// (0 for a null row) and the given reason: its freqs and psd values and
// offsets, band powers, segment columns and reason, and the input's other
// columns as the last cut measured them.
func (r *rowBuilders) rowBytes(width int, why string) int64 {
	n := 8*int64(width) + 4
	if r.fb != nil {
		n += 8*int64(width) + 4
	}
	n += 8 * int64(len(r.bands))
	if r.seg != nil {
		n += 12
	}
	if r.reason != nil {
		n += 4 + int64(len(why))
	}
	return n + r.metaRow
}

// cut copies, from rec, the rows of the input's other columns that the rows
// added since the last cut repeat, and keeps them for the batch.
func (r *rowBuilders) cut(ctx context.Context, task batch.Task, rec arrow.RecordBatch) error {
	n := len(r.take)
	if n == 0 {
		return nil
	}
	// Most often the rows are a run of the input's (one row per record);
	// with average "none" or null rows they repeat or skip some.
	run := true
	for j, v := range r.take {
		run = run && v == r.take[0]+int64(j)
	}
	var idx arrow.Array
	if !run {
		ib := array.NewInt64Builder(task.Alloc)
		ib.AppendValues(r.take, nil)
		idx = ib.NewArray()
		ib.Release()
		defer idx.Release()
	}
	tctx := acompute.WithAllocator(ctx, task.Alloc)
	var size int64
	for j, c := range r.metaIdx {
		col := rec.Column(c)
		var piece arrow.Array
		var err error
		if run {
			sl := array.NewSlice(col, r.take[0], r.take[0]+int64(n))
			// A copy: the slice would hold the input batch's memory.
			piece, err = array.Concatenate([]arrow.Array{sl}, task.Alloc)
			sl.Release()
		} else {
			piece, err = acompute.TakeArray(tctx, col, idx)
		}
		if err != nil {
			return fmt.Errorf("psd: repeat column %s: %w", rec.ColumnName(c), err)
		}
		r.meta[j] = append(r.meta[j], piece)
		size += dataset.ArrayBytes(piece)
	}
	// The estimate of these rows' share becomes their measured size.
	r.bytes += size - int64(n)*r.metaRow
	r.metaRow = (size + int64(n) - 1) / int64(n)
	r.take = r.take[:0]
	return nil
}

// reserve makes room for rows rows of nf frequencies, so that a batch's
// buffers are allocated once, not grown by reallocation.
func (r *rowBuilders) reserve(rows, nf int) {
	for _, b := range r.builders {
		b.Reserve(rows)
	}
	if r.fb != nil {
		r.fb.ValueBuilder().Reserve(rows * nf)
	}
	r.pb.ValueBuilder().Reserve(rows * nf)
	if cap(r.take) < rows {
		r.take = make([]int64, 0, rows)
	}
}

// null appends a row of nulls for input row i, saying why.
func (r *rowBuilders) null(i int, why string) {
	r.take = append(r.take, int64(i))
	r.rows++
	r.bytes += r.rowBytes(0, why)
	if r.seg != nil {
		r.seg.AppendNull()
		r.segTime.AppendNull()
	}
	if r.fb != nil {
		r.fb.AppendNull()
	}
	r.pb.AppendNull()
	for _, b := range r.bands {
		b.AppendNull()
	}
	if r.reason != nil {
		r.reason.Append(why)
	}
}

// newRowBuilders makes the builders of the result batches.
func (k *psdKernel) newRowBuilders(task batch.Task, in *arrow.Schema) *rowBuilders {
	r := &rowBuilders{pb: array.NewListBuilder(task.Alloc, arrow.PrimitiveTypes.Float64)}
	for c := range in.NumFields() {
		if c != k.sigIdx {
			r.metaIdx = append(r.metaIdx, c)
		}
	}
	r.meta = make([][]arrow.Array, len(r.metaIdx))
	if k.shared == nil {
		r.fb = array.NewListBuilder(task.Alloc, arrow.PrimitiveTypes.Float64)
	}
	if k.p.Average == AverageNone {
		r.seg = array.NewInt32Builder(task.Alloc)
		r.segTime = array.NewFloat64Builder(task.Alloc)
	}
	for range bandColumns(k.p) {
		r.bands = append(r.bands, array.NewFloat64Builder(task.Alloc))
	}
	r.builders = []array.Builder{r.pb}
	if r.fb != nil {
		r.builders = append(r.builders, r.fb)
	}
	if r.seg != nil {
		r.builders = append(r.builders, r.seg, r.segTime)
	}
	for _, b := range r.bands {
		r.builders = append(r.builders, b)
	}
	if k.p.reasons() {
		r.reason = array.NewStringBuilder(task.Alloc)
		r.builders = append(r.builders, r.reason)
	}
	return r
}

// batch computes the result rows of rec, one per record, or one per segment
// of every record with average "none", adding them to the batch being built
// and emitting that batch whenever the next row would take it past k.maxRows
// rows or resultBatchBytes: a long record's segments are computed a batch at
// a time, so neither its spectra nor a result batch outgrow those bounds. The
// rows left at the end stay for the next input batch (Run emits the last
// ones). It checks ctx before every record and every batch, so a cancelled
// child stops within one record's computation (one batch's, with average
// "none"), however long the records are.
func (k *psdKernel) batch(ctx context.Context, task batch.Task, schema *arrow.Schema, rec arrow.RecordBatch, fsIdx int, emit func(arrow.RecordBatch) error) (err error) {
	n := int(rec.NumRows())
	p := k.p
	perSegment := p.Average == AverageNone
	r := k.r
	defer func() {
		if err == nil {
			// The rows of rec not emitted yet keep copies of its other
			// columns: rec is released after this.
			err = r.cut(ctx, task, rec)
		}
		if err != nil {
			r.reset()
		}
	}()
	var fv *array.Float64Builder
	if r.fb != nil {
		fv = r.fb.ValueBuilder().(*array.Float64Builder)
	}
	pv := r.pb.ValueBuilder().(*array.Float64Builder)
	// room emits the batch built so far if a row of size bytes would take
	// it past its bounds.
	room := func(bytes int64) error {
		if r.rows > 0 && (r.rows >= k.maxRows || r.bytes+bytes > resultBatchBytes) {
			return k.flush(ctx, task, schema, rec, emit)
		}
		return nil
	}
	null := func(i int, why string) error {
		if err := room(r.rowBytes(0, why)); err != nil {
			return err
		}
		r.null(i, why)
		return nil
	}
	sig := rec.Column(k.sigIdx)
	nb := len(p.Bands)
	lo, hi := p.totalRange()
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		x, ok := signalAt(sig, i)
		if !ok || x.len() == 0 {
			if err := null(i, "the signal is null or empty"); err != nil {
				return err
			}
			continue
		}
		fs := 0.0
		if p.FS != nil {
			fs = *p.FS
		} else {
			fs, ok = numberAt(rec.Column(fsIdx), i, true)
			if !ok || !(fs > 0) || math.IsInf(fs, 0) {
				if err := null(i, "the sampling rate (fs_column) is null, not positive or not finite"); err != nil {
					return err
				}
				continue
			}
		}
		var plan *compute.Plan
		if p.multitaper() {
			var err error
			if k.psd, err = compute.Multitaper(k.psd[:0], k.float64s(x), fs, p.multitaperParams(), &k.tapers); err != nil {
				if !errors.Is(err, compute.ErrInvalidParams) {
					return fmt.Errorf("psd: record %d: %w", i, err)
				}
				if err := null(i, fmt.Sprintf("the record (%d samples) cannot be analysed with the request: %v", x.len(), err)); err != nil {
					return err
				}
				continue
			}
			k.freqs = compute.RFFTFreqs(k.freqs[:0], x.len(), fs)
			k.freqsPlan = nil
		} else {
			var err error
			plan, err = k.planner.Plan(x.len())
			if err != nil && !errors.Is(err, compute.ErrInvalidParams) {
				return fmt.Errorf("psd: record %d: %w", i, err)
			}
			if plan == nil {
				// The parameters were validated when the job was submitted, so a
				// plan refused now is refused for this record's length alone.
				if err := null(i, fmt.Sprintf("the record (%d samples) is too short for the request: %v", x.len(), err)); err != nil {
					return err
				}
				continue
			}
			if plan != k.freqsPlan || fs != k.freqsFS {
				k.freqs = plan.Freqs(k.freqs[:0], fs)
				k.freqsPlan, k.freqsFS = plan, fs
			}
		}
		badBands, badTotal, why := p.beyond(fs)
		nf := len(k.freqs)
		c0, c1 := 0, nf
		if p.cropped() {
			c0, c1 = cropRange(k.freqs, lo, hi)
		}
		if k.shared != nil && !slices.Equal(k.freqs[c0:c1], k.shared) {
			if err := null(i, fmt.Sprintf("the record (%d samples) is shorter than nperseg, so its frequencies differ from the shared ones (%s); give an explicit nfft, or drop \"shared_freqs\" for per-row freqs", x.len(), MetaFreqs)); err != nil {
				return err
			}
			continue
		}
		// s0 to s1 are the segments (or the one average) computed into
		// k.psd; with average "none" they are taken a batch at a time.
		s0, s1, nseg := 0, 1, 1
		if perSegment {
			s1, nseg = 0, plan.NumSegments()
		} else if p.NaNPolicy == "omit" && x.hasNaN() {
			var why string
			if k.psd, why = k.omitNaN(k.psd, k.float64s(x), fs, plan); why != "" {
				if err := null(i, why); err != nil {
					return err
				}
				continue
			}
		} else if plan != nil {
			var err error
			if k.psd, err = x.psd(ctx, plan, k.psd[:0], fs); err != nil {
				return err
			}
		}
		width := c1 - c0
		size := r.rowBytes(width, why)
		for s := 0; s < nseg; s++ {
			if perSegment && s == s1 {
				// The segments computed at once are those the batch
				// has room for (at least one).
				if r.rows > 0 && (r.rows >= k.maxRows || r.bytes+size > resultBatchBytes) {
					if err := k.flush(ctx, task, schema, rec, emit); err != nil {
						return err
					}
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				fit := min(int64(k.maxRows-r.rows), max(1, (resultBatchBytes-r.bytes)/size))
				s0, s1 = s, min(nseg, s+int(fit))
				k.psd = x.segments(plan, k.psd[:0], fs, s0, s1)
			}
			if err := room(size); err != nil {
				return err
			}
			if r.rows == 0 {
				// A batch's buffers are sized at its first row, for as
				// many rows like it as its bounds allow (records of
				// other lengths make the builders grow as they need).
				r.reserve(int(max(1, min(int64(k.maxRows), resultBatchBytes/size))), max(1, width))
			}
			spec := k.psd[(s-s0)*nf : (s-s0+1)*nf]
			r.take = append(r.take, int64(i))
			r.rows++
			r.bytes += size
			if perSegment {
				r.seg.Append(int32(s))
				r.segTime.Append(plan.SegmentTime(s, fs))
			}
			if r.fb != nil {
				r.fb.Append(true)
				fv.AppendValues(k.freqs[c0:c1], nil)
			}
			r.pb.Append(true)
			pv.AppendValues(spec[c0:c1], nil)
			var total float64
			if p.Relative {
				total = compute.BandPower(k.freqs, spec, lo, hi)
			}
			for j, b := range p.Bands {
				if contains(badBands, j) {
					r.bands[j].AppendNull()
				} else {
					r.bands[j].Append(compute.BandPower(k.freqs, spec, b.Lo, b.Hi))
				}
				if p.Relative {
					if badTotal || contains(badBands, j) {
						r.bands[nb+j].AppendNull()
					} else {
						r.bands[nb+j].Append(compute.BandPower(k.freqs, spec, b.Lo, b.Hi) / total)
					}
				}
			}
			if r.reason != nil {
				if why == "" {
					r.reason.AppendNull()
				} else {
					r.reason.Append(why)
				}
			}
		}
	}
	return nil
}

// flush emits the batch built so far, if it has rows, and starts a new one.
// rec is the input batch whose rows were added last (nil once they are cut).
func (k *psdKernel) flush(ctx context.Context, task batch.Task, schema *arrow.Schema, rec arrow.RecordBatch, emit func(arrow.RecordBatch) error) error {
	r := k.r
	if r.rows == 0 {
		return nil
	}
	out, err := k.assemble(ctx, task, schema, rec)
	r.reset()
	if err != nil {
		return err
	}
	err = emit(out)
	out.Release()
	return err
}

// assemble joins the input's other columns, as the cuts copied them, and the
// computed columns into one batch.
func (k *psdKernel) assemble(ctx context.Context, task batch.Task, schema *arrow.Schema, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	r := k.r
	if rec != nil {
		if err := r.cut(ctx, task, rec); err != nil {
			return nil, err
		}
	}
	cols := make([]arrow.Array, 0, schema.NumFields())
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	for j, pieces := range r.meta {
		if len(pieces) == 1 {
			pieces[0].Retain()
			cols = append(cols, pieces[0])
			continue
		}
		a, err := array.Concatenate(pieces, task.Alloc)
		if err != nil {
			return nil, fmt.Errorf("psd: join column %s: %w", schema.Field(j).Name, err)
		}
		cols = append(cols, a)
	}
	if r.seg != nil {
		cols = append(cols, r.seg.NewArray(), r.segTime.NewArray())
	}
	if r.fb != nil {
		cols = append(cols, r.fb.NewArray())
	}
	cols = append(cols, r.pb.NewArray())
	for _, b := range r.bands {
		cols = append(cols, b.NewArray())
	}
	if r.reason != nil {
		cols = append(cols, r.reason.NewArray())
	}
	return array.NewRecordBatch(schema, cols, int64(r.rows)), nil
}

// signal is a record's samples as the input holds them: float64, or float32
// that the kernel widens as it reads each segment, so that a record is not
// copied before its PSD.
type signal struct {
	f64 []float64
	f32 []float32
}

func (x signal) len() int { return len(x.f64) + len(x.f32) }

func (x signal) hasNaN() bool {
	for _, v := range x.f64 {
		if v != v {
			return true
		}
	}
	for _, v := range x.f32 {
		if v != v {
			return true
		}
	}
	return false
}

// psd is plan's PSD of x.
func (x signal) psd(ctx context.Context, plan *compute.Plan, dst []float64, fs float64) ([]float64, error) {
	if x.f32 != nil {
		return plan.PSDFloat32Context(ctx, dst, x.f32, fs)
	}
	return plan.PSDContext(ctx, dst, x.f64, fs)
}

// segments is plan's spectra of x's segments s0 to s1-1.
func (x signal) segments(plan *compute.Plan, dst []float64, fs float64, s0, s1 int) []float64 {
	if x.f32 != nil {
		return plan.SegmentRangeFloat32(dst, x.f32, fs, s0, s1)
	}
	return plan.SegmentRange(dst, x.f64, fs, s0, s1)
}

// float64s is x as float64, widened into k.x if it is float32, for the
// computations that read a record as float64 (multitaper, NaN spans).
func (k *psdKernel) float64s(x signal) []float64 {
	if x.f32 == nil {
		return x.f64
	}
	k.x = k.x[:0]
	for _, v := range x.f32 {
		k.x = append(k.x, float64(v))
	}
	return k.x
}

// omitNaN computes into dst the PSD of a record whose NaN samples are bad
// spans, as MNE's psd_array_welch does for data whose bad annotations are
// NaN: the record splits into its good spans (maximal runs of non-NaN
// samples); each span's segments are laid from the span's own first sample
// with the record's nperseg, noverlap and nfft, a span shorter than nperseg
// getting one segment of its own length (a shorter window, zero-padded to
// nfft); each span's PSD is the mean of its segments' (with average
// "median", their median over the median's bias for the span's segment
// count, as MNE's _decomp_aggregate_mask takes it), and the spans' PSDs are
// averaged with weights the samples their segments cover (the span's
// length, less the tail no segment reaches), under either average. An infinite sample makes the
// whole PSD NaN, as MNE makes a channel with one. It returns a reason, and
// no PSD, for a record with no good sample or a span the parameters cannot
// analyse.
func (k *psdKernel) omitNaN(dst, x []float64, fs float64, full *compute.Plan) ([]float64, string) {
	nf := full.NumFreqs()
	dst = slices.Grow(dst[:0], nf)[:nf]
	for _, v := range x {
		if math.IsInf(v, 0) {
			for i := range dst {
				dst[i] = math.NaN()
			}
			return dst, ""
		}
	}
	nperseg, noverlap, nfft := full.NPerSeg(), full.NOverlap(), full.NFFT()
	wp := k.p.welch
	wp.NPerSeg, wp.NOverlap, wp.NFFT = &nperseg, &noverlap, &nfft
	step := nperseg - noverlap
	clear(dst)
	var total float64
	for start := 0; start < len(x); {
		if math.IsNaN(x[start]) {
			start++
			continue
		}
		end := start
		for end < len(x) && !math.IsNaN(x[end]) {
			end++
		}
		span := x[start:end]
		start = end
		plan, err := compute.NewPlan(wp, len(span))
		if err != nil {
			return nil, fmt.Sprintf("a good span of %d samples cannot be analysed with nperseg %d, noverlap %d: %v", len(span), nperseg, noverlap, err)
		}
		w := float64(len(span))
		if len(span) >= nperseg {
			w -= float64((len(span) - noverlap) % step)
		}
		k.span = plan.PSD(k.span[:0], span, fs)
		for i, v := range k.span {
			dst[i] += w * v
		}
		total += w
	}
	if total == 0 {
		return nil, "no good sample: every sample is NaN"
	}
	for i := range dst {
		dst[i] /= total
	}
	return dst, ""
}

// cropRange is the index range of the frequencies in [lo, hi].
func cropRange(freqs []float64, lo, hi float64) (int, int) {
	c0 := 0
	for c0 < len(freqs) && freqs[c0] < lo {
		c0++
	}
	c1 := c0
	for c1 < len(freqs) && freqs[c1] <= hi {
		c1++
	}
	return c0, c1
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// signalAt is record i's signal, in the input's own memory. ok is false for
// a null.
func signalAt(arr arrow.Array, i int) (signal, bool) {
	if arr.IsNull(i) {
		return signal{}, false
	}
	var values arrow.Array
	var start, end int64
	switch a := arr.(type) {
	case *array.List:
		start, end = a.ValueOffsets(i)
		values = a.ListValues()
	case *array.LargeList:
		start, end = a.ValueOffsets(i)
		values = a.ListValues()
	case *array.FixedSizeList:
		start, end = a.ValueOffsets(i)
		values = a.ListValues()
	default:
		return signal{}, false
	}
	switch v := values.(type) {
	case *array.Float64:
		return signal{f64: v.Float64Values()[start:end:end]}, true
	case *array.Float32:
		return signal{f32: v.Float32Values()[start:end:end]}, true
	}
	return signal{}, false
}

// numberAt reads a numeric column's value as float64.
func numberAt(arr arrow.Array, i int, ok bool) (float64, bool) {
	if !ok || arr.IsNull(i) {
		return 0, false
	}
	switch a := arr.(type) {
	case *array.Float64:
		return a.Value(i), true
	case *array.Float32:
		return float64(a.Value(i)), true
	case *array.Int64:
		return float64(a.Value(i)), true
	case *array.Int32:
		return float64(a.Value(i)), true
	case *array.Int16:
		return float64(a.Value(i)), true
	case *array.Int8:
		return float64(a.Value(i)), true
	case *array.Uint64:
		return float64(a.Value(i)), true
	case *array.Uint32:
		return float64(a.Value(i)), true
	case *array.Uint16:
		return float64(a.Value(i)), true
	case *array.Uint8:
		return float64(a.Value(i)), true
	}
	return 0, false
}
