package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/schollz/progressbar/v3"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// uploadBatchBytes is about the size of the batches upload sends.
const uploadBatchBytes = 2 << 20

// uploadOptions are the flags of flightbatch upload.
type uploadOptions struct {
	name       string
	fs         float64
	timeColumn string
	unit       string
	start      string
	epochS     float64
	badSpans   string
	shardMB    float64
	shards     int
}

// upload sends a local file to the server as a new dataset: Parquet and Arrow
// files as they are, a CSV of one column per channel and EDF/BDF files
// converted to rows of one channel × epoch, as a registered recording's.
func (m *Main) upload(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("upload")
	var o uploadOptions
	fs.StringVar(&o.name, "dataset", "", "name of the new dataset")
	fs.Float64Var(&o.fs, "fs", 0, "CSV: sampling rate in Hz (instead of a time column)")
	fs.StringVar(&o.timeColumn, "time-column", "", "CSV: the column of sample times in seconds (default: a column named time, t, seconds or timestamp)")
	fs.StringVar(&o.unit, "unit", "", "CSV: the channels' physical unit, e.g. uV")
	fs.StringVar(&o.start, "start", "", "CSV: the recording's start, RFC 3339 (e.g. 2024-03-01T10:20:30Z), for start_time")
	fs.Float64Var(&o.epochS, "epoch-s", 0, "CSV, EDF, BDF: epoch length in seconds (default: the whole recording)")
	fs.StringVar(&o.badSpans, "bad-spans", "", "EDF+/BDF+: BAD annotation spans: drop (default), nan or keep")
	fs.Float64Var(&o.shardMB, "shard-mb", 0, "target shard size in MiB (server default: a ramp from 256 KiB to --shard-mb)")
	fs.IntVar(&o.shards, "shards", 0, "cut the upload into this many shards of equal row counts")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || o.name == "" {
		return errors.New("upload: give one FILE (.parquet, .arrow, .csv, .edf or .bdf) and --dataset NAME")
	}
	path := pos[0]
	rdr, rows, err := openUpload(ctx, path, &o)
	if err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	defer rdr.Release()
	c, err := m.dial(ctx, *addr)
	if err != nil {
		return err
	}
	defer c.Close()

	cmd := map[string]any{"path": "datasets/" + o.name}
	if rows >= 0 {
		cmd["rows"] = rows
	}
	if o.shardMB > 0 {
		cmd["shard_mb"] = o.shardMB
	}
	if o.shards > 0 {
		if rows < 0 {
			return errors.New("upload: --shards needs the row count, which this file does not give before it is read; use --shard-mb")
		}
		cmd["shards"] = o.shards
	}
	body, _ := json.Marshal(cmd)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Flight().DoPut(ctx)
	if err != nil {
		return err
	}
	w := aflight.NewRecordWriter(stream, ipc.WithSchema(rdr.Schema()))
	w.SetFlightDescriptor(&aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: body})
	var bar *progressbar.ProgressBar
	if isTerminal(m.Stderr) {
		bar = progressbar.NewOptions64(rows,
			progressbar.OptionSetWriter(m.Stderr),
			progressbar.OptionSetDescription("upload "+filepath.Base(path)),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(rows >= 0),
			progressbar.OptionFullWidth(),
			progressbar.OptionThrottle(100*time.Millisecond))
	}
	var sent int64
	for rdr.Next() {
		rec := rdr.RecordBatch()
		if err := dataset.WriteBounded(rec, uploadBatchBytes, w.Write); err != nil {
			return m.putFailure(stream, fmt.Errorf("upload: send: %w", err))
		}
		sent += rec.NumRows()
		if bar != nil {
			_ = bar.Set64(sent)
		}
	}
	if err := rdr.Err(); err != nil {
		cancel() // the server keeps nothing of a cancelled upload
		return fmt.Errorf("upload %s: read: %w", path, err)
	}
	if err := w.Close(); err != nil {
		return m.putFailure(stream, fmt.Errorf("upload: send: %w", err))
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	res, err := stream.Recv()
	if err != nil {
		return reachable(err)
	}
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(m.Stderr)
	}
	var out struct {
		Dataset       string   `json:"dataset"`
		Shards        int      `json:"shards"`
		Rows          int64    `json:"rows"`
		Bytes         int64    `json:"bytes"`
		SignalColumns []string `json:"signal_columns"`
	}
	if err := json.Unmarshal(res.AppMetadata, &out); err != nil {
		return fmt.Errorf("upload: the server's result: %w", err)
	}
	fmt.Fprintf(m.Stdout, "uploaded %s: %d rows, %d shards, %d bytes; signal columns: %s\n",
		out.Dataset, out.Rows, out.Shards, out.Bytes, strings.Join(out.SignalColumns, ", "))
	return nil
}

// putFailure prefers the server's reason for a failed upload (a refused
// schema) over the client's broken pipe.
func (m *Main) putFailure(stream aflight.FlightService_DoPutClient, err error) error {
	if _, rerr := stream.Recv(); rerr != nil && !errors.Is(rerr, io.EOF) {
		return rerr
	}
	return err
}

// openUpload opens a local file as record batches, with its row count (-1 if
// unknown before reading it).
func openUpload(ctx context.Context, path string, o *uploadOptions) (array.RecordReader, int64, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".csv" && (o.fs != 0 || o.timeColumn != "" || o.unit != "" || o.start != "") {
		return nil, 0, errors.New("--fs, --time-column, --unit and --start are for CSV files")
	}
	switch ext {
	case ".parquet":
		return openParquetUpload(ctx, path)
	case ".arrow", ".feather", ".ipc", ".arrows":
		return openArrowUpload(path)
	case ".csv":
		return openCSVUpload(path, o)
	case ".edf", ".bdf":
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, 0, err
		}
		st, err := store.Open(ctx, "file://"+filepath.Dir(abs))
		if err != nil {
			return nil, 0, err
		}
		recs, err := dataset.ScanRecordings(ctx, st, dataset.RegisterOptions{Prefix: filepath.Base(abs), EpochSeconds: o.epochS, BadSpans: o.badSpans})
		if err != nil {
			return nil, 0, err
		}
		return recs.Open(ctx, memory.DefaultAllocator), recs.Rows(), nil
	}
	return nil, 0, fmt.Errorf("%q is not a file upload reads: give a .parquet, .arrow, .csv, .edf or .bdf file", ext)
}

func openParquetUpload(ctx context.Context, path string) (array.RecordReader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	pf, err := file.NewParquetReader(f)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("read Parquet: %w", err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64}, memory.DefaultAllocator)
	if err != nil {
		pf.Close()
		return nil, 0, fmt.Errorf("read Parquet: %w", err)
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		pf.Close()
		return nil, 0, fmt.Errorf("read Parquet: %w", err)
	}
	return rr, pf.NumRows(), nil
}

// openArrowUpload reads an Arrow IPC file, or an Arrow IPC stream.
func openArrowUpload(path string) (array.RecordReader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	if fr, err := ipc.NewFileReader(f); err == nil {
		// The row count is the sum of the batches' (a pass over the file).
		var rows int64
		for i := 0; i < fr.NumRecords(); i++ {
			rec, err := fr.RecordBatchAt(i)
			if err != nil {
				fr.Close()
				f.Close()
				return nil, 0, fmt.Errorf("read Arrow file: %w", err)
			}
			rows += rec.NumRows()
			rec.Release()
		}
		return &arrowFileReader{fr: fr, f: f}, rows, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	sr, err := ipc.NewReader(f)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("read Arrow: neither an Arrow IPC file nor a stream: %w", err)
	}
	return sr, -1, nil
}

// arrowFileReader reads an Arrow IPC file's batches in order.
type arrowFileReader struct {
	fr  *ipc.FileReader
	f   *os.File
	i   int
	cur arrow.RecordBatch
	err error
}

func (r *arrowFileReader) Retain()               {}
func (r *arrowFileReader) Schema() *arrow.Schema { return r.fr.Schema() }
func (r *arrowFileReader) Err() error            { return r.err }
func (r *arrowFileReader) RecordBatch() arrow.RecordBatch {
	return r.cur
}

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (r *arrowFileReader) Record() arrow.RecordBatch { return r.cur }

func (r *arrowFileReader) Release() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.fr.Close()
	r.f.Close()
}

func (r *arrowFileReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.err != nil || r.i >= r.fr.NumRecords() {
		return false
	}
	r.cur, r.err = r.fr.RecordBatchAt(r.i)
	r.i++
	return r.err == nil
}

// csvSchema is the row layout of a CSV upload: the core columns of a
// registered recording (and of the Python client's uploads), with
// flightbatch.recording.epoch_s in the schema's metadata.
var csvSchema = arrow.NewSchema([]arrow.Field{
	{Name: "file", Type: arrow.BinaryTypes.String},
	{Name: "channel", Type: arrow.BinaryTypes.String},
	{Name: "epoch", Type: arrow.PrimitiveTypes.Int64},
	{Name: "start_time", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "unit", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "fs", Type: arrow.PrimitiveTypes.Float64},
	{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
}, nil)

var timeColumns = []string{"time", "t", "seconds", "timestamp", "time_s"}

// openCSVUpload reads a CSV of one column per channel (and optionally a time
// column) into rows of one channel × epoch. The file is read whole.
func openCSVUpload(path string, o *uploadOptions) (array.RecordReader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, 0, fmt.Errorf("read the CSV header: %w", err)
	}
	names := append([]string(nil), header...)
	tcol := -1
	if o.timeColumn != "" {
		for i, n := range names {
			if n == o.timeColumn {
				tcol = i
			}
		}
		if tcol < 0 {
			return nil, 0, fmt.Errorf("no column %q (the columns: %s)", o.timeColumn, strings.Join(names, ", "))
		}
	} else if o.fs == 0 {
		for i, n := range names {
			for _, t := range timeColumns {
				if strings.EqualFold(strings.TrimSpace(n), t) {
					tcol = i
				}
			}
		}
	}
	if tcol < 0 && o.fs <= 0 {
		return nil, 0, fmt.Errorf("give --fs HZ, or a time column (--time-column, or a column named %s)", strings.Join(timeColumns, ", "))
	}
	cols := make([][]float64, len(names))
	line := 1
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			return nil, 0, fmt.Errorf("line %d: %w", line, err)
		}
		for i, cell := range rec {
			cell = strings.TrimSpace(cell)
			v := math.NaN()
			if cell != "" && !strings.EqualFold(cell, "nan") && !strings.EqualFold(cell, "n/a") {
				v, err = strconv.ParseFloat(cell, 64)
				if err != nil {
					return nil, 0, fmt.Errorf("line %d, column %q: %q is not a number; upload reads CSV files of one numeric column per channel", line, names[i], cell)
				}
			}
			cols[i] = append(cols[i], v)
		}
	}
	n := 0
	if len(cols) > 0 {
		n = len(cols[0])
	}
	if n == 0 {
		return nil, 0, errors.New("the CSV has no data rows")
	}
	fs := o.fs
	if tcol >= 0 {
		fs, err = rateOf(cols[tcol])
		if err != nil {
			return nil, 0, fmt.Errorf("time column %q: %w", names[tcol], err)
		}
	}
	m := n
	if o.epochS > 0 {
		x := o.epochS * fs
		if math.Abs(x-math.Round(x)) > 1e-6*max(1, x) || math.Round(x) < 1 {
			return nil, 0, fmt.Errorf("--epoch-s %g is not a whole number of samples at %g Hz", o.epochS, fs)
		}
		m = int(math.Round(x))
	}
	epochs := n / m
	if epochs == 0 {
		return nil, 0, fmt.Errorf("the recording (%d samples) is shorter than one epoch (%d)", n, m)
	}
	var start *time.Time
	if o.start != "" {
		t, err := time.Parse(time.RFC3339Nano, o.start)
		if err != nil {
			return nil, 0, fmt.Errorf("--start %q is not RFC 3339 (2024-03-01T10:20:30Z)", o.start)
		}
		start = &t
	}
	var channels []int
	for i := range names {
		if i != tcol {
			channels = append(channels, i)
		}
	}
	if len(channels) == 0 {
		return nil, 0, errors.New("the CSV has no channel column besides time")
	}
	md := arrow.NewMetadata([]string{"flightbatch.recording.epoch_s"}, []string{dataset.FormatEpochSeconds(o.epochS)})
	schema := arrow.NewSchema(csvSchema.Fields(), &md)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	var batches []arrow.RecordBatch
	var bytes int
	base := filepath.Base(path)
	for e := 0; e < epochs; e++ {
		for _, ci := range channels {
			b.Field(0).(*array.StringBuilder).Append(base)
			b.Field(1).(*array.StringBuilder).Append(strings.TrimSpace(names[ci]))
			b.Field(2).(*array.Int64Builder).Append(int64(e))
			if start != nil {
				t := start.Add(time.Duration(math.Round(float64(e*m) / fs * 1e9)))
				b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(t.UnixMicro()))
			} else {
				b.Field(3).AppendNull()
			}
			if o.unit != "" {
				b.Field(4).(*array.StringBuilder).Append(o.unit)
			} else {
				b.Field(4).AppendNull()
			}
			b.Field(5).(*array.Float64Builder).Append(fs)
			lb := b.Field(6).(*array.ListBuilder)
			lb.Append(true)
			lb.ValueBuilder().(*array.Float64Builder).AppendValues(cols[ci][e*m:(e+1)*m], nil)
			bytes += 8 * m
			if bytes >= uploadBatchBytes {
				batches = append(batches, b.NewRecordBatch())
				bytes = 0
			}
		}
	}
	if bytes > 0 {
		batches = append(batches, b.NewRecordBatch())
	}
	rr, err := array.NewRecordReader(schema, batches)
	for _, rec := range batches {
		rec.Release()
	}
	if err != nil {
		return nil, 0, err
	}
	return rr, int64(epochs * len(channels)), nil
}

// rateOf is the sampling rate of uniformly spaced times in seconds.
func rateOf(t []float64) (float64, error) {
	if len(t) < 2 {
		return 0, errors.New("needs at least two samples to give a rate")
	}
	d := make([]float64, len(t)-1)
	for i := range d {
		d[i] = t[i+1] - t[i]
	}
	s := append([]float64(nil), d...)
	sort.Float64s(s)
	med := s[len(s)/2]
	if !(med > 0) {
		return 0, errors.New("times do not increase")
	}
	for i, x := range d {
		if math.IsNaN(x) || math.Abs(x-med) > 1e-3*med {
			return 0, fmt.Errorf("samples %d and %d are %g s apart, not %g s: the samples are not evenly spaced (give --fs to ignore the times)", i, i+1, x, med)
		}
	}
	return float64(len(t)-1) / (t[len(t)-1] - t[0]), nil
}
