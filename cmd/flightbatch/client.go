package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/flightbatch/flightbatch/internal/tlsfiles"
	"github.com/flightbatch/flightbatch/pkg/api"
	"github.com/flightbatch/flightbatch/pkg/client"
)

const defaultAddr = "127.0.0.1:8815"

// parseArgs parses flags that may come before or after the positional
// arguments ("status ID --json" as well as "status --json ID").
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// clientFlags starts the flags of a client command, with --addr.
func (m *Main) clientFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&m.token, "token", m.Getenv("FLIGHTBATCH_TOKEN"), "bearer token of a server with authentication on (default $FLIGHTBATCH_TOKEN)")
	fs.StringVar(&m.tlsCA, "tls-ca", m.Getenv("FLIGHTBATCH_TLS_CA"), "PEM file of the CA that signed the server's certificate (default $FLIGHTBATCH_TLS_CA; the system's CAs when empty)")
	fs.StringVar(&m.tlsCert, "tls-cert", m.Getenv("FLIGHTBATCH_TLS_CERT"), "client certificate (PEM) for a server with mutual TLS (default $FLIGHTBATCH_TLS_CERT)")
	fs.StringVar(&m.tlsKey, "tls-key", m.Getenv("FLIGHTBATCH_TLS_KEY"), "key (PEM) of the client certificate (default $FLIGHTBATCH_TLS_KEY)")
	addr := m.Getenv("FLIGHTBATCH_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	return fs, fs.String("addr", addr, "server address: host:port or grpc://host:port (plaintext), grpc+tls://host:port (TLS); $FLIGHTBATCH_ADDR when set")
}

// connectJob parses the flags and the one job ID of a command, and dials.
func (m *Main) connectJob(ctx context.Context, fs *flag.FlagSet, addr *string, args []string) (*client.Client, string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, "", err
	}
	if len(pos) != 1 {
		return nil, "", fmt.Errorf("%s: give one job ID", fs.Name())
	}
	c, err := m.dial(ctx, *addr)
	return c, pos[0], err
}

func (m *Main) dial(ctx context.Context, addr string) (*client.Client, error) {
	var opts []client.Option
	if m.token != "" {
		opts = append(opts, client.WithToken(m.token))
	}
	if m.tlsCA != "" || m.tlsCert != "" || m.tlsKey != "" {
		cfg, err := tlsfiles.Client(m.tlsCA, m.tlsCert, m.tlsKey)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithTLS(cfg))
	}
	return client.Dial(ctx, addr, opts...)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// bandsFlag collects --bands name=lo:hi[,name=lo:hi...], in order.
type bandsFlag struct{ bands *api.Bands }

func (b bandsFlag) String() string { return "" }

func (b bandsFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		name, rng, ok := strings.Cut(strings.TrimSpace(part), "=")
		lo, hi, ok2 := strings.Cut(rng, ":")
		if !ok || !ok2 || name == "" {
			return fmt.Errorf("band %q: use name=low:high, e.g. beta=13:30", part)
		}
		l, err1 := strconv.ParseFloat(lo, 64)
		h, err2 := strconv.ParseFloat(hi, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("band %q: low and high must be numbers in Hz", part)
		}
		*b.bands = append(*b.bands, api.Band{Name: name, Lo: l, Hi: h})
	}
	return nil
}

// paramFlag collects --param key=JSON; a value that is not JSON is a string.
type paramFlag map[string]json.RawMessage

func (p paramFlag) String() string { return "" }

func (p paramFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("--param %q: use key=value, the value in JSON (a bare word is a string)", v)
	}
	if !json.Valid([]byte(val)) {
		q, _ := json.Marshal(val)
		val = string(q)
	}
	p[k] = json.RawMessage(val)
	return nil
}

func (m *Main) psd(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("psd")
	var req api.PSDRequest
	fs.StringVar(&req.Dataset, "dataset", "", "input: a dataset name, or jobs/<job_id>")
	fs.StringVar(&req.Column, "column", "", "signal column (server default: samples)")
	fs.Float64Var(&req.FS, "fs", 0, "sampling rate in Hz")
	fs.StringVar(&req.FSColumn, "fs-column", "", "column holding each record's sampling rate")
	window := fs.String("window", "", `window name, or JSON such as '["tukey", 0.25]'`)
	fs.IntVar(&req.NPerSeg, "nperseg", 0, "segment length (scipy default)")
	noverlap := fs.Int("noverlap", -1, "segment overlap (default nperseg/2)")
	fs.IntVar(&req.NFFT, "nfft", 0, "FFT length (default nperseg)")
	fs.StringVar(&req.Scaling, "scaling", "", "density or spectrum")
	fs.StringVar(&req.Average, "average", "", "mean or median")
	fs.Var(bandsFlag{&req.Bands}, "bands", "band powers to compute: name=low:high[,...], e.g. beta=13:30")
	params := paramFlag{}
	fs.Var(params, "param", "any other parameter as key=JSON (repeatable), e.g. detrend=false")
	fs.BoolVar(&req.Reuse, "reuse", false, "reuse an earlier identical job's result")
	wait := fs.Bool("wait", false, "wait for the job, showing the shards done")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if req.Dataset == "" {
		return errors.New("psd: give --dataset")
	}
	if *window != "" {
		var w any = *window
		if json.Valid([]byte(*window)) {
			w = json.RawMessage(*window)
		}
		req.Window = w
	}
	if *noverlap >= 0 {
		req.NOverlap = noverlap
	}
	if len(params) > 0 {
		req.Extra = params
	}
	c, err := m.dial(ctx, *addr)
	if err != nil {
		return err
	}
	defer c.Close()
	id, err := c.SubmitPSD(ctx, req)
	if err != nil {
		return err
	}
	if !*wait {
		fmt.Fprintln(m.Stdout, id)
		return nil
	}
	_, err = m.follow(ctx, c, id)
	fmt.Fprintln(m.Stdout, id)
	return err
}

// follow waits for a job, drawing a bar of the shards done on a terminal.
func (m *Main) follow(ctx context.Context, c *client.Client, id string) (api.JobStatus, error) {
	var bar *progressbar.ProgressBar
	show := isTerminal(m.Stderr)
	st, err := c.Wait(ctx, id, func(st api.JobStatus) {
		if !show {
			return
		}
		if bar == nil {
			bar = progressbar.NewOptions(st.Shards.Total,
				progressbar.OptionSetWriter(m.Stderr),
				progressbar.OptionSetDescription("job "+id),
				progressbar.OptionShowCount(),
				progressbar.OptionSetItsString("shards"),
				progressbar.OptionSetElapsedTime(true),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionFullWidth(),
				progressbar.OptionThrottle(100*time.Millisecond))
		}
		_ = bar.Set(st.Shards.Succeeded)
	})
	if bar != nil {
		if err == nil {
			_ = bar.Finish()
		}
		fmt.Fprintln(m.Stderr)
	}
	var je *client.JobError
	if errors.As(err, &je) {
		for _, f := range st.Failures {
			if f.State != "SUCCEEDED" {
				fmt.Fprintf(m.Stderr, "shard %s: %s after %d attempt(s)\n", f.Shard, f.State, f.Attempts)
				for _, e := range f.Errors {
					fmt.Fprintf(m.Stderr, "  %s\n", e)
				}
			}
		}
	}
	return st, err
}

func (m *Main) waitCmd(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("wait")
	c, id, err := m.connectJob(ctx, fs, addr, args)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = m.follow(ctx, c, id)
	return err
}

func (m *Main) jobs(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("jobs")
	ds := fs.String("dataset", "", "only the jobs of this dataset")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := m.dial(ctx, *addr)
	if err != nil {
		return err
	}
	defer c.Close()
	jobs, err := c.ListJobs(ctx, *ds)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(m.Stdout, api.ListJobsResult{Jobs: jobs})
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB ID\tSTATE\tFUNCTION\tDATASET\tSHARDS\tCREATED\tDURATION\tPARAMS")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.JobID, j.State, j.Function, j.Dataset,
			j.Shards.Succeeded, j.Shards.Total, j.CreatedAt.Local().Format("2006-01-02 15:04:05"), duration(j), compact(j.Params))
	}
	return tw.Flush()
}

func duration(j api.JobStatus) string {
	if j.StartedAt == nil {
		return "-"
	}
	end := time.Now()
	if j.FinishedAt != nil {
		end = *j.FinishedAt
	}
	return end.Sub(*j.StartedAt).Round(10 * time.Millisecond).String()
}

func compact(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (m *Main) status(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("status")
	asJSON := fs.Bool("json", false, "print the job-status JSON")
	c, id, err := m.connectJob(ctx, fs, addr, args)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(ctx, id)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(m.Stdout, st)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("job", st.JobID)
	row("state", st.State)
	row("function", st.Function)
	row("dataset", st.Dataset+" (version "+st.DatasetVersion+")")
	row("params", compact(st.Params))
	row("shards", fmt.Sprintf("%d total, %d succeeded, %d running, %d pending, %d failed, %d cancelled",
		st.Shards.Total, st.Shards.Succeeded, st.Shards.Running, st.Shards.Pending, st.Shards.Failed, st.Shards.Cancelled))
	row("progress", fmt.Sprintf("%.0f%%", 100*st.Progress))
	row("executor", st.Executor)
	row("created", st.CreatedAt.Local().Format(time.RFC3339))
	if st.StartedAt != nil {
		row("started", st.StartedAt.Local().Format(time.RFC3339))
	}
	if st.FinishedAt != nil {
		row("finished", st.FinishedAt.Local().Format(time.RFC3339))
	}
	row("duration", duration(st))
	if st.Error != "" {
		row("error", st.Error)
	}
	for _, f := range st.Failures {
		row("shard "+f.Shard, fmt.Sprintf("%s after %d attempt(s)", f.State, f.Attempts))
		for _, e := range f.Errors {
			row("", e)
		}
	}
	return tw.Flush()
}

func (m *Main) cancel(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("cancel")
	c, id, err := m.connectJob(ctx, fs, addr, args)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Cancel(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "%s %s (cancel requested)\n", st.JobID, st.State)
	return nil
}

func (m *Main) datasets(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("datasets")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := m.dial(ctx, *addr)
	if err != nil {
		return err
	}
	defer c.Close()
	dss, err := c.ListDatasets(ctx)
	if err != nil {
		return err
	}
	sort.Slice(dss, func(i, j int) bool { return dss[i].Name < dss[j].Name })
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATASET\tSHARDS\tRECORDS\tBYTES\tVERSION")
	for _, d := range dss {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", d.Name, d.Shards, d.Records, d.Bytes, d.Version)
	}
	return tw.Flush()
}

func (m *Main) get(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("get")
	out := fs.String("o", "", "output: FILE.parquet, FILE.arrow (Arrow IPC file), or - (Arrow IPC stream on stdout)")
	shard := fs.String("shard", "", "only this finished part of the job")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return errors.New("get: give one job ID and -o FILE.parquet, FILE.arrow or -")
	}
	write, err := outputFor(*out)
	if err != nil {
		return err
	}
	c, err := m.dial(ctx, *addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var rdr array.RecordReader
	if *shard != "" {
		rdr, err = c.ResultPart(ctx, pos[0], *shard)
	} else {
		rdr, err = c.Result(ctx, pos[0])
	}
	if err != nil {
		return err
	}
	defer rdr.Release()
	if *out == "-" {
		return write(m.Stdout, rdr)
	}
	return writeFileAtomically(*out, func(w io.Writer) error { return write(w, rdr) })
}

// outputFor picks the writer of an output name by its extension.
func outputFor(name string) (func(io.Writer, array.RecordReader) error, error) {
	switch {
	case name == "-":
		return writeIPCStream, nil
	case strings.HasSuffix(name, ".parquet"):
		return writeParquet, nil
	case strings.HasSuffix(name, ".arrow"), strings.HasSuffix(name, ".feather"):
		return writeIPCFile, nil
	}
	return nil, fmt.Errorf("get: -o %q: name a .parquet or .arrow file, or - for an Arrow IPC stream on stdout", name)
}

func writeFileAtomically(name string, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

func copyRecords(rdr array.RecordReader, write func(arrow.RecordBatch) error) error {
	for rdr.Next() {
		if err := write(rdr.RecordBatch()); err != nil {
			return err
		}
	}
	return rdr.Err()
}

func writeIPCStream(w io.Writer, rdr array.RecordReader) error {
	iw := ipc.NewWriter(w, ipc.WithSchema(rdr.Schema()))
	if err := copyRecords(rdr, iw.Write); err != nil {
		iw.Close()
		return err
	}
	return iw.Close()
}

func writeIPCFile(w io.Writer, rdr array.RecordReader) error {
	fw, err := ipc.NewFileWriter(w, ipc.WithSchema(rdr.Schema()))
	if err != nil {
		return err
	}
	if err := copyRecords(rdr, fw.Write); err != nil {
		fw.Close()
		return err
	}
	return fw.Close()
}

func writeParquet(w io.Writer, rdr array.RecordReader) error {
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithMaxRowGroupLength(64<<10))
	// The Parquet writer closes a sink that is an io.Closer; the caller closes w.
	sink := struct{ io.Writer }{w}
	pw, err := pqarrow.NewFileWriter(rdr.Schema(), sink, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return err
	}
	if err := copyRecords(rdr, pw.WriteBuffered); err != nil {
		pw.Close()
		return err
	}
	return pw.Close()
}
