// Package client is a Go client of a flightbatch server: it lists datasets,
// submits jobs, follows them with PollFlightInfo long polls, and streams their
// results as Arrow record batches.
//
//	c, err := client.Dial(ctx, "127.0.0.1:8815")
//	id, err := c.SubmitPSD(ctx, api.PSDRequest{Dataset: "demo", PSDParams: api.PSDParams{FS: new(250.0)}})
//	st, err := c.Wait(ctx, id, func(st api.JobStatus) { log.Print(st.Progress) })
//	rdr, err := c.Result(ctx, id)
//	defer rdr.Release()
//
// It depends only on pkg/api, arrow-go and gRPC.
package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/pkg/api"
)

// DefaultMaxRecvBytes is the client's gRPC receive limit: far above gRPC's
// 4 MiB default, so that a batch holding one very long record still arrives.
const DefaultMaxRecvBytes = 256 << 20

// Client talks to one flightbatch server. It is safe for concurrent use.
type Client struct {
	fc    flight.Client
	alloc memory.Allocator
	// statusEvery is how often Wait asks job-status when the server does not
	// serve PollFlightInfo.
	statusEvery time.Duration
}

type options struct {
	alloc    memory.Allocator
	maxRecv  int
	dialOpts []grpc.DialOption
	token    string
	tls      *tls.Config
}

// Option configures Dial.
type Option func(*options)

// WithAllocator sets the allocator of the record batches the client reads.
func WithAllocator(mem memory.Allocator) Option { return func(o *options) { o.alloc = mem } }

// WithMaxRecvBytes sets the largest gRPC message the client accepts
// (default DefaultMaxRecvBytes).
func WithMaxRecvBytes(n int) Option { return func(o *options) { o.maxRecv = n } }

// WithDialOptions adds gRPC dial options, such as transport credentials (the
// default is a plaintext connection).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// Dial connects to the server at addr: "host:port" or "grpc://host:port" in
// plaintext, "grpc+tls://host:port" over TLS (checked against the system's
// CAs unless WithTLS gives others).
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	o := options{alloc: memory.DefaultAllocator, maxRecv: DefaultMaxRecvBytes}
	for _, opt := range opts {
		opt(&o)
	}
	creds, addr, err := transport(addr, o.tls)
	if err != nil {
		return nil, err
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(o.maxRecv)),
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer(o.token)))
	}
	dial = append(dial, o.dialOpts...)
	fc, err := flight.NewClientWithMiddlewareCtx(ctx, addr, nil, nil, dial...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", addr, err)
	}
	return &Client{fc: fc, alloc: o.alloc, statusEvery: 500 * time.Millisecond}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.fc.Close() }

// Flight is the underlying arrow-go Flight client, for calls this package
// does not wrap.
func (c *Client) Flight() flight.Client { return c.fc }

// Dataset describes one dataset of the server.
type Dataset struct {
	Name    string
	Version string
	Shards  int
	Records int64
	Bytes   int64
	Schema  *arrow.Schema
}

// ListDatasets lists the server's datasets.
func (c *Client) ListDatasets(ctx context.Context) ([]Dataset, error) {
	stream, err := c.fc.ListFlights(ctx, &flight.Criteria{})
	if err != nil {
		return nil, fmt.Errorf("client: list datasets: %w", err)
	}
	var out []Dataset
	for {
		info, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("client: list datasets: %w", err)
		}
		path := info.GetFlightDescriptor().GetPath()
		if len(path) != 2 || path[0] != "datasets" {
			continue
		}
		d := Dataset{Name: path[1], Records: info.TotalRecords, Bytes: info.TotalBytes, Shards: len(info.Endpoint)}
		var meta struct {
			Version string `json:"version"`
		}
		if json.Unmarshal(info.AppMetadata, &meta) == nil {
			d.Version = meta.Version
		}
		if s, err := flight.DeserializeSchema(info.Schema, c.alloc); err == nil {
			d.Schema = s
		}
		out = append(out, d)
	}
}

// action runs one DoAction and decodes its JSON result into out.
func (c *Client) action(ctx context.Context, typ string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("client: %s: encode request: %w", typ, err)
	}
	stream, err := c.fc.DoAction(ctx, &flight.Action{Type: typ, Body: b})
	if err != nil {
		return fmt.Errorf("client: %s: %w", typ, err)
	}
	var res *flight.Result
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("client: %s: %w", typ, err)
		}
		if res == nil {
			res = r
		}
	}
	if res == nil {
		return fmt.Errorf("client: %s: the server sent no result", typ)
	}
	if err := json.Unmarshal(res.Body, out); err != nil {
		return fmt.Errorf("client: %s: decode result: %w", typ, err)
	}
	return nil
}

// Register registers the EDF/BDF files under a store prefix as a dataset
// read in place (the register-dataset action).
func (c *Client) Register(ctx context.Context, req api.RegisterRequest) (api.RegisterResult, error) {
	var res api.RegisterResult
	err := c.action(ctx, api.ActionRegister, req, &res)
	return res, err
}

// SubmitPSD submits a Welch PSD job and returns its ID at once.
func (c *Client) SubmitPSD(ctx context.Context, req api.PSDRequest) (string, error) {
	var res api.SubmitResult
	if err := c.action(ctx, api.ActionPSD, req, &res); err != nil {
		return "", err
	}
	return res.JobID, nil
}

// RunRequest asks for a job of a registered function.
type RunRequest struct {
	// Function is the function's name (see the server's list-functions).
	Function string `json:"function"`
	// Dataset is a dataset name, or "jobs/<job_id>" for a finished job's result.
	Dataset string `json:"dataset"`
	// Params are the function's parameters, encoded as JSON.
	Params any `json:"params,omitempty"`
	// Reuse returns an earlier identical succeeded job instead of running again.
	Reuse bool `json:"reuse,omitempty"`
	// Name and Labels tag the job for finding it again.
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Run submits a job of a registered function and returns its ID at once.
func (c *Client) Run(ctx context.Context, req RunRequest) (string, error) {
	var res api.SubmitResult
	if err := c.action(ctx, api.ActionRun, req, &res); err != nil {
		return "", err
	}
	return res.JobID, nil
}

// Status returns a job's status.
func (c *Client) Status(ctx context.Context, jobID string) (api.JobStatus, error) {
	var st api.JobStatus
	err := c.action(ctx, api.ActionJobStatus, api.JobRef{JobID: jobID}, &st)
	return st, err
}

// Cancel asks the server to stop a job; it ends CANCELLED (Wait tells when).
func (c *Client) Cancel(ctx context.Context, jobID string) (api.JobStatus, error) {
	var st api.JobStatus
	err := c.action(ctx, api.ActionCancelJob, api.JobRef{JobID: jobID}, &st)
	return st, err
}

// ListJobs returns the job history, oldest first, of one dataset or (dataset
// "") of all.
func (c *Client) ListJobs(ctx context.Context, dataset string) ([]api.JobStatus, error) {
	var res api.ListJobsResult
	if err := c.action(ctx, api.ActionListJobs, api.ListJobsRequest{Dataset: dataset}, &res); err != nil {
		return nil, err
	}
	return res.Jobs, nil
}

// Delete deletes a finished job and its result from the server's store.
// force deletes a result that finished jobs took as input; the server refuses
// a running job, and the input of a job that has not ended.
func (c *Client) Delete(ctx context.Context, jobID string, force bool) error {
	var res api.DeleteJobResult
	return c.action(ctx, api.ActionDeleteJob, api.DeleteJobRequest{JobID: jobID, Force: force}, &res)
}

// FindJobs returns the jobs that match every filter of req, in its order.
func (c *Client) FindJobs(ctx context.Context, req api.ListJobsRequest) ([]api.JobStatus, error) {
	var res api.ListJobsResult
	if err := c.action(ctx, api.ActionListJobs, req, &res); err != nil {
		return nil, err
	}
	return res.Jobs, nil
}

// JobError is Wait's error for a job that ended FAILED or CANCELLED.
type JobError struct {
	// Status is the job's final status; Failures names each failed shard.
	Status api.JobStatus
}

func (e *JobError) Error() string {
	msg := fmt.Sprintf("job %s %s", e.Status.JobID, e.Status.State)
	if e.Status.Error != "" {
		msg += ": " + e.Status.Error
	}
	return msg
}

// Wait follows a job until it ends, calling progress (if not nil) with each
// new status (once at 100%: with the final status), and returns the final
// status. It long-polls with
// PollFlightInfo, or asks job-status every half second of a server that does
// not serve it. A job that ends FAILED or CANCELLED returns its status and a
// *JobError.
func (c *Client) Wait(ctx context.Context, jobID string, progress func(api.JobStatus)) (api.JobStatus, error) {
	var last []byte
	report := func(meta []byte) (api.JobStatus, error) {
		var st api.JobStatus
		if err := json.Unmarshal(meta, &st); err != nil {
			return st, fmt.Errorf("client: wait: decode job status: %w", err)
		}
		// Between its last shard's success and its end, a job is RUNNING at
		// 100%; the final status follows at once, so that moment is not
		// reported: progress sees 100% once.
		if progress != nil && string(meta) != string(last) && !doneButRunning(st) {
			progress(st)
		}
		last = meta
		return st, nil
	}
	d := &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"jobs", jobID}}
	for {
		pi, err := c.fc.PollFlightInfo(ctx, d)
		switch status.Code(err) {
		case codes.OK:
		case codes.Unimplemented:
			return c.waitStatus(ctx, jobID, report)
		case codes.Aborted:
			// The job ended FAILED or CANCELLED; job-status says which and why.
			st, serr := c.Status(ctx, jobID)
			if serr != nil {
				return st, fmt.Errorf("client: wait for job %s: %w", jobID, err)
			}
			if meta, merr := json.Marshal(st); merr == nil {
				_, _ = report(meta)
			}
			return st, &JobError{Status: st}
		default:
			return api.JobStatus{}, fmt.Errorf("client: wait for job %s: %w", jobID, err)
		}
		st, err := report(pi.GetInfo().GetAppMetadata())
		if err != nil {
			return st, err
		}
		if pi.GetFlightDescriptor() == nil {
			return st, nil
		}
		d = pi.GetFlightDescriptor()
	}
}

// doneButRunning reports whether every shard of a job that has not ended has
// succeeded.
func doneButRunning(st api.JobStatus) bool {
	switch st.State {
	case "SUCCEEDED", "FAILED", "CANCELLED":
		return false
	}
	return st.Shards.Total > 0 && st.Shards.Succeeded == st.Shards.Total
}

// waitStatus follows a job with job-status.
func (c *Client) waitStatus(ctx context.Context, jobID string, report func([]byte) (api.JobStatus, error)) (api.JobStatus, error) {
	for {
		var raw json.RawMessage
		if err := c.action(ctx, api.ActionJobStatus, api.JobRef{JobID: jobID}, &raw); err != nil {
			return api.JobStatus{}, err
		}
		st, err := report(raw)
		if err != nil {
			return st, err
		}
		switch st.State {
		case "SUCCEEDED":
			return st, nil
		case "FAILED", "CANCELLED":
			return st, &JobError{Status: st}
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(c.statusEvery):
		}
	}
}

// Result streams a succeeded job's merged result: the input's metadata
// columns in the input's row order, then the function's columns. Release the
// reader when done; releasing it early stops the stream.
func (c *Client) Result(ctx context.Context, jobID string) (array.RecordReader, error) {
	return c.Stream(ctx, "jobs/"+jobID)
}

// ResultPart streams one finished part of a job, readable while the job runs.
func (c *Client) ResultPart(ctx context.Context, jobID, shard string) (array.RecordReader, error) {
	return c.Stream(ctx, "jobs/"+jobID+"/"+shard)
}

// Stream streams any ticket the server takes ("datasets/demo",
// "jobs/<job_id>/<shard>", or the ticket of a FlightInfo endpoint).
func (c *Client) Stream(ctx context.Context, ticket string) (array.RecordReader, error) {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := c.fc.DoGet(sctx, &flight.Ticket{Ticket: []byte(ticket)})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("client: get %s: %w", ticket, err)
	}
	r, err := flight.NewRecordReader(stream, ipc.WithAllocator(c.alloc))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("client: get %s: %w", ticket, err)
	}
	sr := &streamReader{Reader: r, cancel: cancel}
	sr.refs.Store(1)
	return sr, nil
}

// streamReader ends its gRPC stream when released.
type streamReader struct {
	*flight.Reader
	cancel context.CancelFunc
	refs   atomic.Int64
}

func (r *streamReader) Retain() { r.refs.Add(1) }

func (r *streamReader) Release() {
	if r.refs.Add(-1) == 0 {
		r.Reader.Release()
		r.cancel()
	}
}
