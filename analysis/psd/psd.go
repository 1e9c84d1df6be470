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
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/compute"
	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/pkg/api"
)

// Function is the psd function: Welch's power spectral density of every
// record's signal, with optional band powers, equal to scipy.signal.welch.
type Function struct{}

var _ batch.Function = Function{}

// Params are the psd function's parameters: the signal column, the sampling
// rate (fixed or per record), scipy.signal.welch's parameters, and bands.
type Params struct {
	// Column is the signal column (default "samples").
	Column string `json:"column,omitempty"`
	// FS is a fixed sampling rate in Hz.
	FS *float64 `json:"fs,omitempty"`
	// FSColumn names a numeric column holding each record's sampling rate.
	FSColumn string `json:"fs_column,omitempty"`
	compute.WelchParams
	// Bands asks for the power in named frequency bands, in request order.
	Bands Bands `json:"bands,omitempty"`
	// Relative adds <band>_relative per band: the band's power over the total
	// power in [FMin, FMax].
	Relative bool `json:"relative,omitempty"`
	// FMin and FMax bound the total power of relative band power (default
	// DefaultFMin and DefaultFMax Hz).
	FMin *float64 `json:"fmin,omitempty"`
	FMax *float64 `json:"fmax,omitempty"`
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
		return p, batch.Invalidf("psd parameters: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if p.Column == "" {
		p.Column = "samples"
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
	case p.FS != nil && !(*p.FS > 0) || p.FS != nil && math.IsInf(*p.FS, 0):
		return nil, nil, invalid("fs must be a positive number of Hz, got %v", *p.FS)
	}
	if err := p.WelchParams.Validate(); err != nil {
		return nil, nil, batch.Invalidf("psd: %w", err)
	}
	if (p.FMin != nil || p.FMax != nil) && !p.Relative {
		return nil, nil, invalid(`"fmin" and "fmax" bound the total power of relative band power; add "relative": true`)
	}
	if p.Relative {
		lo, hi := p.totalRange()
		switch {
		case len(p.Bands) == 0:
			return nil, nil, invalid(`"relative": true needs "bands", e.g. {"beta": [13, 30]}`)
		case !(lo >= 0) || !(hi > lo) || math.IsInf(hi, 0):
			return nil, nil, invalid("fmin %v and fmax %v must satisfy 0 <= fmin < fmax", lo, hi)
		case p.FS != nil && p.FMax != nil && hi > *p.FS/2:
			return nil, nil, invalid("fmax %v Hz is above the Nyquist frequency fs/2 = %v Hz", hi, *p.FS/2)
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
		case p.FS != nil && b.Hi > *p.FS/2:
			return nil, nil, invalid("band %q reaches %v Hz, above the Nyquist frequency fs/2 = %v Hz", b.Name, b.Hi, *p.FS/2)
		}
		seen[b.Name] = true
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
		for _, reserved := range append([]string{"freqs", "psd"}, bandColumns(p)...) {
			if f.Name == reserved {
				return nil, nil, invalid("the dataset already has a column %q, which the result would repeat", f.Name)
			}
		}
	}
	fields = append(fields,
		arrow.Field{Name: "freqs", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64), Nullable: true},
		arrow.Field{Name: "psd", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64), Nullable: true})
	for _, c := range bandColumns(p) {
		fields = append(fields, arrow.Field{Name: c, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	}
	norm, err := json.Marshal(p)
	if err != nil {
		return nil, nil, err
	}
	return arrow.NewSchema(fields, nil), norm, nil
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

// psdChunkRows bounds the rows computed into one result batch.
const psdChunkRows = 128

// Run implements batch.Function.
func (Function) Run(ctx context.Context, task batch.Task, in array.RecordReader, emit func(arrow.RecordBatch) error) error {
	p, err := DecodeParams(task.Params)
	if err != nil {
		return err
	}
	planner, err := compute.NewPlanner(p.WelchParams)
	if err != nil {
		return fmt.Errorf("psd: %w", err)
	}
	schema := task.Schema
	sigIdx := in.Schema().FieldIndices(p.Column)[0]
	fsIdx := -1
	if p.FSColumn != "" {
		fsIdx = in.Schema().FieldIndices(p.FSColumn)[0]
	}
	k := &psdKernel{p: p, planner: planner}
	for in.Next() {
		rec := in.RecordBatch()
		for off := int64(0); off < rec.NumRows(); off += psdChunkRows {
			if err := ctx.Err(); err != nil {
				return err
			}
			end := min(off+psdChunkRows, rec.NumRows())
			chunk := rec.NewSlice(off, end)
			out, err := k.batch(ctx, task, schema, chunk, sigIdx, fsIdx)
			chunk.Release()
			if err != nil {
				return err
			}
			err = emit(out)
			out.Release()
			if err != nil {
				return err
			}
		}
	}
	return in.Err()
}

type psdKernel struct {
	p       Params
	planner *compute.Planner
	x       []float64
	freqs   []float64
	psd     []float64
}

// batch computes the result rows of rec. It checks ctx before every record, so
// a cancelled child stops within one record's computation, however long the
// records are.
func (k *psdKernel) batch(ctx context.Context, task batch.Task, schema *arrow.Schema, rec arrow.RecordBatch, sigIdx, fsIdx int) (arrow.RecordBatch, error) {
	n := int(rec.NumRows())
	cols := make([]arrow.Array, 0, schema.NumFields())
	for i, c := range rec.Columns() {
		if i != sigIdx {
			c.Retain()
			cols = append(cols, c)
		}
	}
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	fb := array.NewListBuilder(task.Alloc, arrow.PrimitiveTypes.Float64)
	defer fb.Release()
	pb := array.NewListBuilder(task.Alloc, arrow.PrimitiveTypes.Float64)
	defer pb.Release()
	bbs := make([]*array.Float64Builder, len(bandColumns(k.p)))
	for i := range bbs {
		bbs[i] = array.NewFloat64Builder(task.Alloc)
		defer bbs[i].Release()
	}
	fv := fb.ValueBuilder().(*array.Float64Builder)
	pv := pb.ValueBuilder().(*array.Float64Builder)
	sig := rec.Column(sigIdx)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		x, ok := signalAt(sig, i, k.x[:0])
		k.x = x
		fs := 0.0
		if k.p.FS != nil {
			fs = *k.p.FS
		} else {
			fs, ok = numberAt(rec.Column(fsIdx), i, ok)
			ok = ok && fs > 0 && !math.IsInf(fs, 0)
		}
		var plan *compute.Plan
		if ok && len(x) > 0 {
			var err error
			plan, err = k.planner.Plan(len(x))
			if err != nil && !errors.Is(err, compute.ErrInvalidParams) {
				return nil, fmt.Errorf("psd: record %d: %w", i, err)
			}
			// The parameters were validated when the job was submitted, so a
			// plan refused now is refused for this record's length alone.
		}
		if plan == nil {
			// Documented behaviour: an empty or null signal, a record too short
			// for the request (shorter than explicit window weights, say), or a
			// missing or non-positive sampling rate, gives null freqs, psd and
			// band powers; the other records are computed.
			fb.AppendNull()
			pb.AppendNull()
			for _, bb := range bbs {
				bb.AppendNull()
			}
			continue
		}
		k.freqs = plan.Freqs(k.freqs[:0], fs)
		k.psd = plan.PSD(k.psd[:0], x, fs)
		fb.Append(true)
		fv.AppendValues(k.freqs, nil)
		pb.Append(true)
		pv.AppendValues(k.psd, nil)
		nb := len(k.p.Bands)
		var total float64
		if k.p.Relative {
			lo, hi := k.p.totalRange()
			total = compute.BandPower(k.freqs, k.psd, lo, hi)
		}
		for j, b := range k.p.Bands {
			power := compute.BandPower(k.freqs, k.psd, b.Lo, b.Hi)
			bbs[j].Append(power)
			if k.p.Relative {
				bbs[nb+j].Append(power / total)
			}
		}
	}
	cols = append(cols, fb.NewArray(), pb.NewArray())
	for _, bb := range bbs {
		cols = append(cols, bb.NewArray())
	}
	return array.NewRecordBatch(schema, cols, int64(n)), nil
}

// signalAt appends record i's signal, as float64, to dst. ok is false for a null.
func signalAt(arr arrow.Array, i int, dst []float64) ([]float64, bool) {
	if arr.IsNull(i) {
		return dst, false
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
		return dst, false
	}
	switch v := values.(type) {
	case *array.Float64:
		dst = append(dst, v.Float64Values()[start:end]...)
	case *array.Float32:
		for _, f := range v.Float32Values()[start:end] {
			dst = append(dst, float64(f))
		}
	default:
		return dst, false
	}
	return dst, true
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
