// Package flight is flightbatch's Arrow Flight service: it exposes datasets and
// job results as flights, streams them batch by batch, and takes jobs as
// actions. Requests are decoded and gRPC status codes chosen here, at the edge;
// everything below works with plain Go errors.
package flight

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/store"
)

// UploadRampBytes is the size of DoPut's first shards: an upload's shards
// start at this size and double every Options.UploadParallelism shards up to
// Options.ShardBytes.
const UploadRampBytes = 256 << 10

// DefaultMaxBatchBytes bounds a streamed record batch, well under the 4 MiB
// message limit of gRPC clients.
const DefaultMaxBatchBytes = 1 << 20

// Options tune a Server.
type Options struct {
	// MaxBatchBytes bounds the batches DoGet streams (default DefaultMaxBatchBytes);
	// a single record larger than that is sent alone.
	MaxBatchBytes int64
	// Compression is the default IPC compression of DoGet: "", "zstd" or "lz4".
	Compression string
	// PollHold is how long PollFlightInfo holds a continuation poll while the
	// job does not change (default DefaultPollHold).
	PollHold time.Duration
	Log      *slog.Logger
	Alloc    memory.Allocator

	// MaxJobWaiters bounds the job-wait calls held at once (default
	// DefaultMaxJobWaiters).
	MaxJobWaiters int

	// ShardBytes is the target size of the shards DoPut writes (default
	// dataset.DefaultShardBytes).
	ShardBytes int64
	// UploadParallelism is the number of shards DoPut cuts at each size
	// while it ramps up from UploadRampBytes to ShardBytes, so that a small
	// upload still gets several shards (default 4; serve passes --workers).
	UploadParallelism int

	// Auth, when set, is the server's bearer-token authentication; serve the
	// service with Auth.ServerOptions so that each call carries its caller.
	// Nil means authentication is off.
	Auth *Auth

	// TLS, when set, is the server's TLS configuration (see
	// internal/tlsfiles); GRPCServer serves over it. Nil is plaintext.
	TLS *tls.Config
	// Observer, when set, is told about every DoGet and DoPut stream.
	Observer Observer
	// ClientCerts, when set, turns on mutual TLS: every call but health
	// checks needs a client certificate it accepts.
	ClientCerts ClientVerifier
	// HealthEvery is how long a store check's result is kept, and how often
	// WatchHealth checks (default DefaultHealthEvery).
	HealthEvery time.Duration
	// PlainFrames leaves a plaintext connection's HTTP/2 DATA frames as
	// gRPC writes them (16 KiB each), instead of merging each message's into
	// frames as large as the client allows (internal/h2coalesce). TLS
	// connections are never merged (measured: no gain; bench/README.md).
	PlainFrames bool
}

// Server implements the Flight service.
type Server struct {
	aflight.BaseFlightServer
	cat  *dataset.Catalog
	jobs *batch.Manager
	opts Options
	log  *slog.Logger
	// uploads are the datasets DoPut is writing.
	uploads uploadSet
	health  *health.Server
	// healthCheck is the kept store check behind Healthy; healthLast the
	// status it last reported (under its lock).
	healthCheck *healthCheck
	healthLast  healthpb.HealthCheckResponse_ServingStatus
	// auditLog gets one line per call: caller, call, dataset or job.
	auditLog *slog.Logger
	// blocks lends DoGet's reads their buffers.
	blocks *dataset.BlockPool
	// jobWaiters counts the job-wait calls held now.
	jobWaiters atomic.Int64
	// stopping is closed by StopWaiting.
	stopping chan struct{}
	stopOnce sync.Once
}

// blockPoolBytes bounds the buffers DoGet streams keep for reuse: a few
// batches for each of several streams.
const blockPoolBytes = 64 << 20

// NewServer returns the Flight service over a catalog and a job manager.
func NewServer(cat *dataset.Catalog, jobs *batch.Manager, opts *Options) *Server {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.ShardBytes <= 0 {
		o.ShardBytes = dataset.DefaultShardBytes
	}
	if o.UploadParallelism <= 0 {
		o.UploadParallelism = 4
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.PollHold <= 0 {
		o.PollHold = DefaultPollHold
	}
	if o.MaxJobWaiters <= 0 {
		o.MaxJobWaiters = DefaultMaxJobWaiters
	}
	if o.Alloc == nil {
		o.Alloc = memory.DefaultAllocator
	}
	if o.HealthEvery <= 0 {
		o.HealthEvery = DefaultHealthEvery
	}
	s := &Server{cat: cat, jobs: jobs, opts: o, log: o.Log.With("component", "flight"), health: newHealth(), auditLog: o.Log.With("component", "audit"), blocks: dataset.NewBlockPool(blockPoolBytes), stopping: make(chan struct{})}
	s.healthCheck = newHealthCheck(s.StoreReachable, o.HealthEvery, time.Now, s.reportHealth)
	return s
}

// maxStatusBytes bounds the message of every status the server returns: an
// error that repeats a large input is cut, so that it still fits in the
// response's trailers (a client would otherwise see another code).
const maxStatusBytes = 1 << 10

// toStatus maps an error from below to a gRPC status, once, here at the edge.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		if len(st.Message()) > maxStatusBytes {
			return status.Error(st.Code(), clip.String(st.Message(), maxStatusBytes))
		}
		return err
	}
	return status.Error(codeOf(err), clip.String(err.Error(), maxStatusBytes))
}

// codeOf chooses the gRPC code of an error from below.
func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, batch.ErrInvalid), errors.Is(err, dataset.ErrInvalid):
		return codes.InvalidArgument
	case errors.Is(err, batch.ErrNotFound), errors.Is(err, dataset.ErrNotFound), errors.Is(err, store.ErrNotExist):
		return codes.NotFound
	case errors.Is(err, batch.ErrNotFinished), errors.Is(err, batch.ErrInUse):
		return codes.FailedPrecondition
	case errors.Is(err, dataset.ErrExists):
		return codes.AlreadyExists
	case errors.Is(err, dataset.ErrDamaged):
		return codes.DataLoss
	case errors.Is(err, store.ErrChanged):
		return codes.Aborted
	}
	return codes.Internal
}

func invalidArg(format string, args ...any) error {
	return status.Error(codes.InvalidArgument, clip.String(fmt.Sprintf(format, args...), maxStatusBytes))
}

// target is what a descriptor or ticket names.
type target struct {
	kind  string // "datasets" or "jobs"
	name  string
	shard string // a shard name, "shards" (jobs only, descriptors), or ""
	// columns projects the stream onto these columns (tickets only).
	columns []string
	// compression overrides the server's default for one stream.
	compression string
	// lookup, for jobs, means the job is found by name or as the newest
	// match (jobs/<name>, jobs/latest?...): name is then what was asked,
	// until Server.resolve replaces it with the job's ID.
	lookup *batch.Query
	query  string // the lookup's query, as given
}

func (t target) path() string {
	p := t.kind + "/" + t.name
	if t.shard != "" {
		p += "/" + t.shard
	}
	if t.query != "" {
		p += "?" + t.query
	}
	return p
}

func parsePath(segs []string) (target, error) {
	const help = `use "datasets/<name>", "datasets/<name>/<shard>", "jobs/<job_id>" or "jobs/<job_id>/<shard>" (or jobs/<job name>, jobs/latest?dataset=...)`
	if len(segs) == 1 {
		segs = strings.Split(strings.Trim(segs[0], "/"), "/")
	}
	segs, query, hasQuery := cutQuery(segs)
	if len(segs) < 2 || len(segs) > 3 {
		return target{}, invalidArg("path %s is not a flightbatch path: %s", clip.Quote(strings.Join(segs, "/")), help)
	}
	t := target{kind: segs[0], name: segs[1]}
	if len(segs) == 3 {
		t.shard = segs[2]
		if t.shard == "" {
			return target{}, invalidArg("empty shard in path %s: %s", clip.Quote(strings.Join(segs, "/")), help)
		}
	}
	switch t.kind {
	case "datasets":
		if err := dataset.ValidName(t.name); err != nil {
			return target{}, status.Error(codes.InvalidArgument, err.Error())
		}
		if hasQuery {
			return target{}, invalidArg("path %s: a dataset path takes no ?query: %s", clip.Quote(strings.Join(segs, "/")), help)
		}
	case "jobs":
		if hasQuery || !batch.ValidJobID(t.name) {
			return parseLookup(t, query, hasQuery)
		}
	default:
		return target{}, invalidArg("path %s is not a flightbatch path: %s", clip.Quote(strings.Join(segs, "/")), help)
	}
	return t, nil
}

func parseDescriptor(d *aflight.FlightDescriptor) (target, error) {
	if d == nil {
		return target{}, invalidArg("missing flight descriptor")
	}
	switch d.Type {
	case aflight.DescriptorPATH:
		return parsePath(d.Path)
	case aflight.DescriptorCMD:
		if err := foreignCommand(d.Cmd); err != nil {
			return target{}, err
		}
		return parsePath([]string{string(d.Cmd)})
	}
	return target{}, invalidArg("unknown descriptor type %v", d.Type)
}

// foreignCommand refuses, with Unimplemented, a command descriptor that is not
// flightbatch's: anything but the text of a "datasets/..." or "jobs/..." path
// or a JSON object, such as a Flight SQL command (a protobuf Any). Generic
// clients take Unimplemented to mean "this server does not do that".
func foreignCommand(cmd []byte) error {
	c := bytes.TrimSpace(cmd)
	if len(c) > 0 && c[0] == '{' {
		return nil
	}
	c = bytes.TrimLeft(c, "/")
	if bytes.HasPrefix(c, []byte("datasets/")) || bytes.HasPrefix(c, []byte("jobs/")) {
		return nil
	}
	what := "this command"
	if bytes.Contains(cmd, []byte("arrow.flight.protocol.sql.")) {
		what = "Flight SQL"
	}
	return status.Errorf(codes.Unimplemented, "flightbatch does not implement %s: its command descriptors are the paths datasets/<name> and jobs/<job_id> (or a job request as JSON, for PollFlightInfo)", what)
}

// ticketJSON is the JSON form of a ticket, for projection and compression.
type ticketJSON struct {
	Path        string   `json:"path"`
	Columns     []string `json:"columns,omitempty"`
	Compression string   `json:"compression,omitempty"`
}

// parseTicket decodes a ticket: the path text ("datasets/demo") or JSON
// ({"path": "datasets/demo", "columns": ["channel", "samples"]}).
func parseTicket(b []byte) (target, error) {
	if err := checkJSONBounds("the ticket", b, MaxTicketBytes); err != nil {
		return target{}, err
	}
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var tj ticketJSON
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		err := dec.Decode(&tj)
		if err == nil && len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
			err = errors.New("text after the JSON object")
		}
		if err != nil {
			return target{}, invalidArg(`ticket JSON: %s; use {"path": "datasets/<name>", "columns": [...], "compression": "zstd"}`, clip.JSONError(err))
		}
		t, err := parsePath([]string{tj.Path})
		if err != nil {
			return t, err
		}
		switch tj.Compression {
		case "", "none", "zstd", "lz4":
		default:
			return target{}, invalidArg(`ticket compression %s: use "zstd", "lz4" or "none"`, clip.Quote(tj.Compression))
		}
		t.columns, t.compression = tj.Columns, tj.Compression
		return t, nil
	}
	return parsePath([]string{string(b)})
}

// ListFlights lists one flight per dataset and per succeeded job.
func (s *Server) ListFlights(c *aflight.Criteria, stream aflight.FlightService_ListFlightsServer) error {
	ctx := stream.Context()
	names, err := s.cat.List(ctx)
	if err != nil {
		return toStatus(err)
	}
	for _, n := range names {
		info, err := s.datasetInfo(ctx, n)
		if err != nil {
			s.log.Warn("list flights: skip dataset", "dataset", n, "err", err)
			continue
		}
		if err := stream.Send(info); err != nil {
			return err
		}
	}
	for _, sum := range s.jobs.Summaries(batch.Query{States: []batch.State{batch.StateSucceeded}}) {
		m := sum.Job
		info, err := s.jobInfo(ctx, m.JobID, false)
		if err != nil {
			s.log.Warn("list flights: skip job", "job", m.JobID, "err", err)
			continue
		}
		if err := stream.Send(info); err != nil {
			return err
		}
	}
	return nil
}

// GetFlightInfo describes a dataset (one endpoint per shard) or a job's result
// (one endpoint for the merged result, or one per finished part for
// jobs/<id>/shards).
func (s *Server) GetFlightInfo(ctx context.Context, d *aflight.FlightDescriptor) (*aflight.FlightInfo, error) {
	t, err := parseDescriptor(d)
	if err != nil {
		return nil, err
	}
	if t, err = s.resolve(t); err != nil {
		return nil, err
	}
	var info *aflight.FlightInfo
	switch {
	case t.kind == "datasets" && t.shard == "":
		info, err = s.datasetInfo(ctx, t.name)
	case t.kind == "jobs" && t.shard == "":
		info, err = s.jobInfo(ctx, t.name, false)
	case t.kind == "jobs" && t.shard == "shards":
		info, err = s.jobInfo(ctx, t.name, true)
	default:
		return nil, invalidArg("GetFlightInfo takes datasets/<name>, jobs/<job_id> or jobs/<job_id>/shards, not %s", clip.Quote(t.path()))
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return info, nil
}

func (s *Server) datasetInfo(ctx context.Context, name string) (*aflight.FlightInfo, error) {
	ds, err := s.cat.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	schema, err := s.cat.Schema(ctx, ds)
	if err != nil {
		return nil, err
	}
	info := &aflight.FlightInfo{
		Schema:           aflight.SerializeSchema(schema, s.opts.Alloc),
		FlightDescriptor: &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"datasets", name}},
		TotalRecords:     ds.Rows(),
		TotalBytes:       ds.Bytes(),
		Ordered:          true,
		AppMetadata:      []byte(fmt.Sprintf(`{"version":%q,"shards":%d}`, ds.Version, len(ds.Shards))),
	}
	for _, sh := range ds.Shards {
		info.Endpoint = append(info.Endpoint, &aflight.FlightEndpoint{
			Ticket:      &aflight.Ticket{Ticket: []byte("datasets/" + name + "/" + sh.Name)},
			AppMetadata: []byte(fmt.Sprintf(`{"shard":%q,"rows":%d,"bytes":%d}`, sh.Name, sh.Rows, sh.Size)),
		})
	}
	return info, nil
}

// jobInfo describes a job's result: the merged result of a succeeded job, or
// (perShard) one endpoint per finished part, so far.
func (s *Server) jobInfo(ctx context.Context, id string, perShard bool) (*aflight.FlightInfo, error) {
	// The merged result needs the job's summary only; the parts, their
	// list too.
	var parts []batch.Part
	var sum batch.JobSummary
	var err error
	if perShard {
		sum, parts, err = s.jobs.Parts(id, MaxStatusFailures, false)
	} else {
		sum, err = s.jobs.Summary(id, MaxStatusFailures)
	}
	if err != nil {
		return nil, err
	}
	if !perShard && sum.Job.State != batch.StateSucceeded {
		_, err := s.jobs.OpenResult(ctx, id, "") // the error says why, with its code
		return nil, err
	}
	schema, err := s.jobs.ResultSchema(ctx, id)
	switch {
	case perShard && errors.Is(err, batch.ErrNotFinished):
		// No part yet of a function that declares no schema: none to list.
		schema = nil
	case err != nil:
		return nil, err
	}
	path := []string{"jobs", id}
	if perShard {
		path = append(path, "shards")
	}
	meta, err := json.Marshal(jobStatus(sum))
	if err != nil {
		return nil, fmt.Errorf("encode job status: %w", err)
	}
	info := &aflight.FlightInfo{
		FlightDescriptor: &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: path},
		TotalRecords:     sum.Rows,
		TotalBytes:       sum.Bytes,
		Ordered:          true,
		AppMetadata:      meta,
	}
	if schema != nil {
		info.Schema = aflight.SerializeSchema(schema, s.opts.Alloc)
	}
	if !perShard {
		info.Endpoint = []*aflight.FlightEndpoint{{Ticket: &aflight.Ticket{Ticket: []byte("jobs/" + id)}}}
		return info, nil
	}
	for _, p := range parts {
		info.Endpoint = append(info.Endpoint, &aflight.FlightEndpoint{
			Ticket:      &aflight.Ticket{Ticket: []byte("jobs/" + id + "/" + p.Name)},
			AppMetadata: []byte(fmt.Sprintf(`{"shard":%q,"rows":%d}`, p.Name, p.Rows)),
		})
	}
	return info, nil
}

// GetSchema returns the schema of a dataset or a job's result.
func (s *Server) GetSchema(ctx context.Context, d *aflight.FlightDescriptor) (*aflight.SchemaResult, error) {
	t, err := parseDescriptor(d)
	if err != nil {
		return nil, err
	}
	if t, err = s.resolve(t); err != nil {
		return nil, err
	}
	var schema *arrow.Schema
	switch t.kind {
	case "datasets":
		var ds *dataset.Dataset
		if ds, err = s.cat.Get(ctx, t.name); err == nil {
			schema, err = s.cat.Schema(ctx, ds)
		}
	case "jobs":
		schema, err = s.jobs.ResultSchema(ctx, t.name)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &aflight.SchemaResult{Schema: aflight.SerializeSchema(schema, s.opts.Alloc)}, nil
}

// DoGet streams a dataset, a dataset shard, a job's merged result or one part,
// in bounded record batches.
func (s *Server) DoGet(tkt *aflight.Ticket, stream aflight.FlightService_DoGetServer) error {
	ctx := stream.Context()
	t, err := parseTicket(tkt.GetTicket())
	if err != nil {
		return err
	}
	if t, err = s.resolve(t); err != nil {
		return err
	}
	// The stream releases every batch it reads and keeps none: its reads
	// may use lent buffers. It decodes only the batches it does not send as
	// they are stored.
	rdr, err := s.open(dataset.WithLazyDecode(dataset.WithBlockPool(ctx, s.blocks)), t)
	if err != nil {
		return toStatus(err)
	}
	defer rdr.Release()
	proj, schema, err := projection(rdr.Schema(), t.columns)
	if err != nil {
		return err
	}
	comp := s.opts.Compression
	if t.compression != "" {
		comp = t.compression
	}
	var rows int64
	defer func() { noteRecords(ctx, rows) }()
	if (comp == "" || comp == "none") && proj == nil && !dataset.HasDictionary(schema) {
		err = s.sendStored(ctx, stream, rdr, schema, &rows)
	} else {
		err = s.sendEncoded(ctx, stream, rdr, schema, proj, comp, &rows)
	}
	if err != nil {
		return err
	}
	s.log.Debug("stream sent", "path", t.path(), "rows", rows)
	return nil
}

// sendEncoded streams rdr's batches (projected on proj) encoded anew, with
// the compression comp.
func (s *Server) sendEncoded(ctx context.Context, stream aflight.FlightService_DoGetServer, rdr array.RecordReader, schema *arrow.Schema, proj []int, comp string, rows *int64) error {
	opts := []ipc.Option{ipc.WithSchema(schema), ipc.WithAllocator(s.opts.Alloc)}
	switch comp {
	case "zstd":
		opts = append(opts, ipc.WithZstd())
	case "lz4":
		opts = append(opts, ipc.WithLZ4())
	}
	w := aflight.NewRecordWriter(stream, opts...)
	defer w.Close()
	for rdr.Next() {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		rec, err := current(rdr)
		if err != nil {
			return err
		}
		if proj != nil {
			rec = project(rec, schema, proj)
		} else {
			rec.Retain()
		}
		err = dataset.WriteBounded(rec, s.opts.MaxBatchBytes, w.Write)
		*rows += rec.NumRows()
		rec.Release()
		if err != nil {
			return err
		}
	}
	return toStatus(rdr.Err())
}

// sendStored streams rdr's batches uncompressed, each as it is stored when
// the reader has it at hand (dataset.Stored) and it is within the batch
// bound, else encoded anew as sendEncoded does. The schema goes first.
func (s *Server) sendStored(ctx context.Context, stream aflight.FlightService_DoGetServer, rdr array.RecordReader, schema *arrow.Schema, rows *int64) error {
	if err := sendPayload(stream, ipc.GetSchemaPayload(schema, s.opts.Alloc)); err != nil {
		return err
	}
	encode := func(rec arrow.RecordBatch) error {
		p, err := ipc.GetRecordBatchPayload(rec, ipc.WithAllocator(s.opts.Alloc))
		if err != nil {
			return fmt.Errorf("encode a record batch: %w", err)
		}
		return sendPayload(stream, p)
	}
	send := func(m dataset.StoredMessage) error {
		// The body stays lent until gRPC has written it.
		m.Retain()
		return stream.SendMsg(&ownedData{FlightData: &aflight.FlightData{DataHeader: m.Meta, DataBody: m.Body}, release: m.Release})
	}
	for rdr.Next() {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		m, stored := dataset.Stored(rdr)
		stored = stored && !m.Compressed
		if n, size, ok := m.Checked(); stored && ok && s.fitsWhole(size, m) {
			// Checked from its bytes and within the bound however its
			// values are counted: sent without being decoded.
			if err := send(m); err != nil {
				return err
			}
			*rows += n
			continue
		}
		rec, err := current(rdr)
		if err != nil {
			return err
		}
		if stored && s.sendsWhole(rec, m) {
			err = send(m)
		} else {
			err = dataset.WriteBounded(rec, s.opts.MaxBatchBytes, encode)
		}
		*rows += rec.NumRows()
		if err != nil {
			return err
		}
	}
	return toStatus(rdr.Err())
}

// current returns rdr's current batch, decoded if it was only checked
// (dataset.WithLazyDecode), or the status of why it could not be.
func current(rdr array.RecordReader) (arrow.RecordBatch, error) {
	if rec := rdr.RecordBatch(); rec != nil {
		return rec, nil
	}
	err := rdr.Err()
	if err == nil {
		err = errors.New("flight: a record batch could not be decoded")
	}
	return nil, toStatus(err)
}

// sendsWhole reports whether rec, stored as m, goes out as one message: as
// dataset.WriteBounded would send it (within the batch bound, or one row),
// and with no more than twice its values' size of padding or unused bytes.
func (s *Server) sendsWhole(rec arrow.RecordBatch, m dataset.StoredMessage) bool {
	size := dataset.LogicalBytes(rec)
	return (rec.NumRows() <= 1 || size <= s.opts.MaxBatchBytes) && int64(len(m.Body)) <= 2*max(size, s.opts.MaxBatchBytes)
}

// fitsWhole reports whether a batch stored as m, whose LogicalBytes are at
// most bound, goes out as one message whatever they are: sendsWhole holds
// for any size up to bound.
func (s *Server) fitsWhole(bound int64, m dataset.StoredMessage) bool {
	return bound <= s.opts.MaxBatchBytes && int64(len(m.Body)) <= 2*s.opts.MaxBatchBytes
}

// sendPayload sends an IPC payload as one FlightData and releases it.
func sendPayload(stream aflight.FlightService_DoGetServer, p ipc.Payload) error {
	defer p.Release()
	meta := p.Meta()
	defer meta.Release()
	var body bytes.Buffer
	if err := p.SerializeBody(&body); err != nil {
		return fmt.Errorf("encode a record batch: %w", err)
	}
	// The header is copied as the message is marshalled; the body is
	// referenced until it is written, and this one is used only here.
	return stream.SendMsg(&ownedData{FlightData: &aflight.FlightData{DataHeader: meta.Bytes(), DataBody: body.Bytes()}})
}

func (s *Server) open(ctx context.Context, t target) (array.RecordReader, error) {
	switch t.kind {
	case "datasets":
		ds, err := s.cat.Get(ctx, t.name)
		if err != nil {
			return nil, err
		}
		if t.shard != "" {
			sh, err := ds.Shard(t.shard)
			if err != nil {
				return nil, err
			}
			return s.cat.OpenShard(ctx, sh, s.opts.Alloc)
		}
		schema, err := s.cat.Schema(ctx, ds)
		if err != nil {
			return nil, err
		}
		files := make([]dataset.File, len(ds.Shards))
		for i, sh := range ds.Shards {
			files[i] = dataset.File{Key: sh.Key, Format: sh.Format}
		}
		return dataset.Concat(ctx, s.cat.Store(), schema, files, s.opts.Alloc), nil
	default:
		return s.jobs.OpenResult(ctx, t.name, t.shard)
	}
}

func projection(schema *arrow.Schema, columns []string) ([]int, *arrow.Schema, error) {
	if len(columns) == 0 {
		return nil, schema, nil
	}
	idx := make([]int, len(columns))
	fields := make([]arrow.Field, len(columns))
	for i, c := range columns {
		found := schema.FieldIndices(c)
		if len(found) == 0 {
			names := make([]string, schema.NumFields())
			for j, f := range schema.Fields() {
				names[j] = f.Name
			}
			return nil, nil, invalidArg("ticket asks for column %s, which does not exist; the columns are %s", clip.Quote(c), strings.Join(names, ", "))
		}
		idx[i] = found[0]
		fields[i] = schema.Field(found[0])
	}
	md := schema.Metadata()
	return idx, arrow.NewSchema(fields, &md), nil
}

func project(rec arrow.RecordBatch, schema *arrow.Schema, idx []int) arrow.RecordBatch {
	cols := make([]arrow.Array, len(idx))
	for i, j := range idx {
		cols[i] = rec.Column(j)
	}
	return array.NewRecordBatch(schema, cols, rec.NumRows())
}
