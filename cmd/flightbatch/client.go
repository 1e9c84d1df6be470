package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/csv"
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

// clientFlags starts the flags of a client command: --addr (default
// $FLIGHTBATCH_ADDR, else defaultAddr) and --token (default $FLIGHTBATCH_TOKEN).
func (m *Main) clientFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	m.token = m.Getenv("FLIGHTBATCH_TOKEN")
	// The token's value stays out of the help text: it is a secret.
	fs.Var(secretFlag{&m.token}, "token", "bearer `token` of a server with authentication on (default $FLIGHTBATCH_TOKEN)")
	fs.StringVar(&m.tlsCA, "tls-ca", m.Getenv("FLIGHTBATCH_TLS_CA"), "PEM file of the CA that signed the server's certificate ($FLIGHTBATCH_TLS_CA if set; the system's CAs when empty)")
	fs.StringVar(&m.tlsCert, "tls-cert", m.Getenv("FLIGHTBATCH_TLS_CERT"), "client certificate (PEM) for a server with mutual TLS ($FLIGHTBATCH_TLS_CERT if set)")
	fs.StringVar(&m.tlsKey, "tls-key", m.Getenv("FLIGHTBATCH_TLS_KEY"), "key (PEM) of the client certificate ($FLIGHTBATCH_TLS_KEY if set)")
	return fs, fs.String("addr", m.defaultAddr(), "server address: host:port or grpc://host:port (plaintext), grpc+tls://host:port (TLS); $FLIGHTBATCH_ADDR if set")
}

// defaultAddr is the server address a client command uses without --addr.
func (m *Main) defaultAddr() string {
	if a := m.Getenv("FLIGHTBATCH_ADDR"); a != "" {
		return a
	}
	return defaultAddr
}

// secretFlag is a string flag whose value the help text never shows.
type secretFlag struct{ p *string }

func (f secretFlag) String() string { return "" }

func (f secretFlag) Set(v string) error {
	*f.p = v
	return nil
}

// optionalInt is an int flag that is unset unless given (its help shows no
// default, so the usage text can say what unset means).
type optionalInt struct{ p **int }

func (f optionalInt) String() string {
	if f.p == nil || *f.p == nil {
		return ""
	}
	return strconv.Itoa(**f.p)
}

func (f optionalInt) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("not an integer")
	}
	*f.p = &n
	return nil
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

// labelsFlag collects --label key=value (repeatable) into a map.
type labelsFlag map[string]string

func (l labelsFlag) String() string { return "" }

func (l labelsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("label %q: use key=value, e.g. cohort=pd", v)
	}
	l[k] = val
	return nil
}

// tagFlags adds --name and --label to a command that submits a job.
func tagFlags(fs *flag.FlagSet) (*string, labelsFlag) {
	labels := labelsFlag{}
	fs.Var(labels, "label", "tag the job with a `key=value` label (repeatable)")
	return fs.String("name", "", "name the job (get NAME then fetches the newest succeeded job of that name)"), labels
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
	rate := fs.Float64("fs", 0, "sampling rate in Hz")
	fs.StringVar(&req.FSColumn, "fs-column", "", "column holding each record's sampling rate")
	window := fs.String("window", "", `window name, or JSON such as '["tukey", 0.25]'`)
	nperseg := fs.Int("nperseg", 0, "segment length (scipy default)")
	fs.Var(optionalInt{&req.NOverlap}, "noverlap", "segment `overlap` (default nperseg/2)")
	nfft := fs.Int("nfft", 0, "FFT length (default nperseg)")
	fs.StringVar(&req.Scaling, "scaling", "", "density or spectrum")
	fs.StringVar(&req.Average, "average", "", "mean or median")
	fs.Var(bandsFlag{&req.Bands}, "bands", "band powers to compute: name=low:high[,...], e.g. beta=13:30")
	params := paramFlag{}
	fs.Var(params, "param", "any other parameter as key=JSON (repeatable), e.g. detrend=false")
	fs.BoolVar(&req.Reuse, "reuse", false, "reuse an earlier identical job's result")
	name, labels := tagFlags(fs)
	wait := fs.Bool("wait", false, "wait for the job, showing the shards done")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if req.Dataset == "" {
		return errors.New("psd: give --dataset")
	}
	// 0, the flags' default, is left out of the request: the server's default.
	if *rate != 0 {
		req.FS = rate
	}
	if *nperseg != 0 {
		req.NPerSeg = nperseg
	}
	if *nfft != 0 {
		req.NFFT = nfft
	}
	req.Name = *name
	if len(labels) > 0 {
		req.Labels = labels
	}
	if *window != "" {
		var w any = *window
		if json.Valid([]byte(*window)) {
			w = json.RawMessage(*window)
		}
		req.Window = w
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
	return m.submitted(ctx, c, id, *addr, *wait)
}

// submitted prints a submitted job's ID, after following it with --wait.
func (m *Main) submitted(ctx context.Context, c *client.Client, id, addr string, wait bool) error {
	if !wait {
		fmt.Fprintln(m.Stdout, id)
		return nil
	}
	_, err := m.follow(ctx, c, id, addr)
	fmt.Fprintln(m.Stdout, id)
	return err
}

// runCmd submits a job of a registered function.
func (m *Main) runCmd(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("run")
	var req client.RunRequest
	fs.StringVar(&req.Function, "function", "", "registered function to run (the server's list-functions)")
	fs.StringVar(&req.Dataset, "dataset", "", "input: a dataset name, or jobs/<job_id>")
	params := paramFlag{}
	fs.Var(params, "param", "a parameter of the function as `key=JSON` (repeatable; a bare word is a string)")
	fs.BoolVar(&req.Reuse, "reuse", false, "reuse an earlier identical job's result")
	name, labels := tagFlags(fs)
	wait := fs.Bool("wait", false, "wait for the job, showing the shards done")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if req.Function == "" || req.Dataset == "" {
		return errors.New("run: give --function and --dataset")
	}
	if len(params) > 0 {
		req.Params = map[string]json.RawMessage(params)
	}
	req.Name = *name
	if len(labels) > 0 {
		req.Labels = labels
	}
	c, err := m.dial(ctx, *addr)
	if err != nil {
		return err
	}
	defer c.Close()
	id, err := c.Run(ctx, req)
	if err != nil {
		return err
	}
	return m.submitted(ctx, c, id, *addr, *wait)
}

// interruptedError ends a wait stopped by the user (Ctrl-C): the job goes on.
type interruptedError struct{ id, flags string }

func (e *interruptedError) Error() string {
	return fmt.Sprintf("stopped waiting; job %s goes on running on the server. Follow it with 'flightbatch wait%s %s', cancel it with 'flightbatch cancel%s %s'",
		e.id, e.flags, e.id, e.flags, e.id)
}

// ExitCode is the shell's code for a command stopped by SIGINT.
func (e *interruptedError) ExitCode() int { return 130 }

// follow waits for a job, drawing a bar of the shards done on a terminal. A
// wait stopped by ctx (Ctrl-C) says that the job goes on, and how to cancel it.
func (m *Main) follow(ctx context.Context, c *client.Client, id, addr string) (api.JobStatus, error) {
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
	if err != nil && ctx.Err() != nil {
		ie := &interruptedError{id: id}
		if addr != m.defaultAddr() {
			ie.flags = " --addr " + addr
		}
		return st, ie
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
		if more := st.FailuresTotal - len(st.Failures); more > 0 {
			fmt.Fprintf(m.Stderr, "and %d more shards with failures, not listed\n", more)
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
	_, err = m.follow(ctx, c, id, *addr)
	return err
}

func (m *Main) jobs(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("jobs")
	var req api.ListJobsRequest
	fs.StringVar(&req.Dataset, "dataset", "", "only the jobs of this input (a dataset, or jobs/<job_id>)")
	state := fs.String("state", "", "only the jobs in these `states`, comma-separated (e.g. FAILED,CANCELLED)")
	fs.StringVar(&req.Function, "function", "", "only the jobs of this function")
	fs.StringVar(&req.Name, "name", "", "only the jobs of this name")
	labels := labelsFlag{}
	fs.Var(labels, "label", "only the jobs with this `key=value` label (repeatable: all must match)")
	fs.StringVar(&req.SubmittedBy, "submitted-by", "", "only the jobs of this caller (authentication on)")
	fs.StringVar(&req.Since, "since", "", "only the jobs created at or after this `time` (RFC 3339, e.g. 2026-11-24T00:00:00Z)")
	fs.StringVar(&req.Until, "until", "", "only the jobs created before this `time` (RFC 3339)")
	newest := fs.Bool("newest", false, "newest first (default oldest first)")
	fs.IntVar(&req.Limit, "limit", 0, "at most this many jobs (0: all)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if *state != "" {
		req.State = strings.Split(*state, ",")
	}
	if len(labels) > 0 {
		req.Labels = labels
	}
	if *newest {
		req.Order = "newest"
	}
	c, err := m.dial(ctx, *addr)
	if err != nil {
		return err
	}
	defer c.Close()
	jobs, err := c.FindJobs(ctx, req)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(m.Stdout, api.ListJobsResult{Jobs: jobs})
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB ID\tSTATE\tFUNCTION\tDATASET\tSHARDS\tCREATED\tDURATION\tNAME\tLABELS\tPARAMS")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%s\n", j.JobID, j.State, j.Function, j.Dataset,
			j.Shards.Succeeded, j.Shards.Total, j.CreatedAt.Local().Format("2006-01-02 15:04:05"), duration(j),
			orDash(j.Name), labelText(j.Labels), compact(j.Params))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// labelText prints labels as k=v,k=v in key order.
func labelText(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + labels[k]
	}
	return strings.Join(keys, ",")
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
	if more := st.FailuresTotal - len(st.Failures); more > 0 {
		row("failures", fmt.Sprintf("and %d more shards with failures, not listed", more))
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

func (m *Main) deleteCmd(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("delete")
	force := fs.Bool("force", false, "delete a result that finished jobs took as their input (their results stay)")
	c, id, err := m.connectJob(ctx, fs, addr, args)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Delete(ctx, id, *force); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "%s deleted\n", id)
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
	out := fs.String("o", "", "output: FILE.parquet, FILE.arrow (Arrow IPC file), FILE.csv, or - (Arrow IPC stream on stdout)")
	shard := fs.String("shard", "", "only this finished part of the job")
	var q url.Values = map[string][]string{}
	for _, k := range []string{"dataset", "function", "name"} {
		fs.Func(k, "with latest: the newest succeeded job of this "+k, func(v string) error { q.Set(k, v); return nil })
	}
	fs.Func("label", "with latest: the newest succeeded job with this `key=value` label (repeatable)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("label %q: use key=value", v)
		}
		q.Add("label", v)
		return nil
	})
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return errors.New("get: give one job (an ID, a job name, or latest) and -o FILE.parquet, FILE.arrow, FILE.csv or -")
	}
	job := pos[0]
	if len(q) > 0 {
		if job != "latest" {
			return fmt.Errorf("get: --dataset, --function, --name and --label go with latest, not %q", job)
		}
		job += "?" + q.Encode()
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
	ticket := "jobs/" + job
	if *shard != "" {
		path, query, _ := strings.Cut(job, "?")
		ticket = "jobs/" + path + "/" + *shard
		if query != "" {
			ticket += "?" + query
		}
	}
	rdr, err := c.Stream(ctx, ticket)
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
	case strings.HasSuffix(name, ".csv"):
		return writeCSV, nil
	}
	return nil, fmt.Errorf("get: -o %q: name a .parquet, .arrow or .csv file, or - for an Arrow IPC stream on stdout", name)
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

// writeCSV writes a header line and one line per record; a list cell (such
// as freqs or psd) is written as {v1,v2,...}.
func writeCSV(w io.Writer, rdr array.RecordReader) error {
	cw := csv.NewWriter(w, rdr.Schema(), csv.WithHeader(true), csv.WithNullWriter(""))
	if err := copyRecords(rdr, cw.Write); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
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
