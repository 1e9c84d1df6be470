package flight

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/internal/ipccheck"
)

// PutResult is the JSON of the one PutResult a successful DoPut sends back.
type PutResult struct {
	Dataset string `json:"dataset"`
	Version string `json:"version"`
	Shards  int    `json:"shards"`
	Rows    int64  `json:"rows"`
	Bytes   int64  `json:"bytes"`
	// SignalColumns are the columns a psd job can read (its "column").
	SignalColumns []string `json:"signal_columns"`
}

// uploadSet holds the names of the datasets being uploaded through this
// server, so that two uploads of one name never interleave.
type uploadSet struct {
	mu    sync.Mutex
	names map[string]bool
}

func (u *uploadSet) claim(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.names[name] {
		return false
	}
	if u.names == nil {
		u.names = map[string]bool{}
	}
	u.names[name] = true
	return true
}

func (u *uploadSet) release(name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.names, name)
}

// putCommand is the JSON command descriptor of DoPut, for clients that want the
// server to check that the whole table arrived: {"path": "datasets/<name>",
// "rows": N}.
type putCommand struct {
	Path string `json:"path"`
	Rows *int64 `json:"rows"`
	// ShardMB is the target shard size in MiB for this upload (no ramp).
	ShardMB *float64 `json:"shard_mb"`
	// Shards cuts the upload into this many shards of equal row counts;
	// it needs Rows.
	Shards *int `json:"shards"`
}

// MaxUploadShards bounds the shards of one upload.
const MaxUploadShards = 100000

// parsePutDescriptor decodes DoPut's descriptor: the path datasets/<name>, as
// a path or a command, or a JSON putCommand. It returns the command (its
// announced row count and shard options, if any).
func parsePutDescriptor(d *aflight.FlightDescriptor) (target, putCommand, error) {
	var pc putCommand
	if d != nil {
		if err := checkJSONBounds("the DoPut command", d.Cmd, MaxTicketBytes); err != nil {
			return target{}, pc, err
		}
	}
	if d != nil && d.Type == aflight.DescriptorCMD && len(bytes.TrimSpace(d.Cmd)) > 0 && bytes.TrimSpace(d.Cmd)[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(d.Cmd))
		dec.DisallowUnknownFields()
		err := dec.Decode(&pc)
		if err == nil && len(bytes.TrimSpace(d.Cmd[dec.InputOffset():])) > 0 {
			err = errors.New("text after the JSON object")
		}
		if err != nil {
			return target{}, pc, invalidArg(`DoPut command: %s; use {"path": "datasets/<name>", "rows": N}, optionally with "shard_mb" or "shards"`, clip.JSONError(err))
		}
		if pc.Rows != nil && *pc.Rows < 0 {
			return target{}, pc, invalidArg("DoPut command: rows %d is negative", *pc.Rows)
		}
		if pc.ShardMB != nil && !(*pc.ShardMB > 0 && *pc.ShardMB <= 1<<20) {
			return target{}, pc, invalidArg("DoPut command: shard_mb %v must be above 0 and at most %d (MiB)", *pc.ShardMB, 1<<20)
		}
		if pc.Shards != nil {
			if *pc.Shards < 1 || *pc.Shards > MaxUploadShards {
				return target{}, pc, invalidArg("DoPut command: shards %d must be in [1, %d]", *pc.Shards, MaxUploadShards)
			}
			if pc.Rows == nil {
				return target{}, pc, invalidArg(`DoPut command: "shards" needs "rows" (the table's row count), to cut shards of equal row counts`)
			}
			if pc.ShardMB != nil {
				return target{}, pc, invalidArg(`DoPut command: give "shards" or "shard_mb", not both`)
			}
		}
		d = &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{pc.Path}}
	}
	t, err := parseDescriptor(d)
	if err != nil {
		return target{}, pc, err
	}
	if t.kind != "datasets" || t.shard != "" {
		return target{}, pc, invalidArg("DoPut takes a descriptor datasets/<name>, not %s", clip.Quote(t.path()))
	}
	return t, pc, nil
}

// DoPut uploads a table as the new dataset datasets/<name>. The batches are
// written as Arrow IPC shards of about Options.ShardBytes each, re-cut into
// batches of at most Options.MaxBatchBytes so that the shards stream back in
// bounded memory. The dataset becomes visible only when the client ends the
// stream cleanly and every shard is stored; an upload that fails or is
// cancelled midway leaves nothing. A name that exists is refused with
// AlreadyExists: datasets are never replaced through Flight, so a job's
// dataset name always means the data it ran on (its manifest's version says
// which).
//
// A clean end of stream is what commits, and pyarrow ends the stream cleanly
// even when the client raised midway (a batch of another schema, an error in
// the caller's code): a client that must not leave a partial table behind
// announces its row count with the command descriptor {"path":
// "datasets/<name>", "rows": N}, and a stream that ends with another count is
// refused and leaves nothing.
func (s *Server) DoPut(stream aflight.FlightService_DoPutServer) error {
	ctx := stream.Context()
	rdr, err := openUpload(stream, s.opts.Alloc)
	if err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		if _, ok := status.FromError(err); ok {
			return err
		}
		return invalidArg("DoPut: the stream must start with a descriptor datasets/<name> and a schema: %v", err)
	}
	defer rdr.Release()
	t, cmd, err := parsePutDescriptor(rdr.LatestFlightDescriptor())
	if err != nil {
		return err
	}
	wantRows := cmd.Rows
	schema := rdr.Schema()
	if schema.NumFields() == 0 {
		return invalidArg("DoPut datasets/%s: the schema has no columns", t.name)
	}
	// Refused before anything is stored, so the name stays free.
	signals, err := dataset.CheckUpload(schema)
	if err != nil {
		s.log.Warn("upload refused", "dataset", t.name, "err", err)
		return toStatus(fmt.Errorf("DoPut datasets/%s: %w", t.name, err))
	}
	if !s.uploads.claim(t.name) {
		return status.Errorf(codes.AlreadyExists, "dataset %q is being uploaded by another client", t.name)
	}
	defer s.uploads.release(t.name)

	wopts := &dataset.WriterOptions{ShardBytes: s.opts.ShardBytes, RampShards: s.opts.UploadParallelism, RampBytes: UploadRampBytes}
	switch {
	case cmd.ShardMB != nil:
		wopts = &dataset.WriterOptions{ShardBytes: max(int64(*cmd.ShardMB*(1<<20)), 1)}
	case cmd.Shards != nil:
		wopts = &dataset.WriterOptions{ShardBytes: 1 << 62, ShardRows: max((*cmd.Rows+int64(*cmd.Shards)-1)/int64(*cmd.Shards), 1)}
	}
	// However small the shards asked for, an upload is cut into at most as
	// many shards as "shards" may ask for: each is a file, and a child of
	// every job over the dataset.
	wopts.MaxShards = MaxUploadShards
	w, err := s.cat.NewWriter(ctx, t.name, schema, wopts)
	if err != nil {
		return toStatus(err)
	}
	committed := false
	defer func() {
		if !committed {
			if err := w.Abort(); err != nil {
				s.log.Error("aborted upload left objects behind", "dataset", t.name, "err", err)
			}
		}
	}()
	var rows int64
	defer func() { noteRecords(ctx, rows) }()
	// Small batches are joined into batches of about MaxBatchBytes: a
	// stream of one-row batches would otherwise be stored as one IPC
	// message (and its metadata) per row.
	co := dataset.NewCoalescer(min(s.opts.MaxBatchBytes, wopts.ShardBytes, UploadRampBytes), s.opts.Alloc, w.Write)
	defer co.Release()
	for batches := 0; ; batches++ {
		rec, err := nextUpload(rdr, batches)
		if err != nil {
			return s.putError(ctx.Err(), t.name, err)
		}
		if rec == nil {
			break
		}
		if err := co.Add(rec); err != nil {
			return s.putError(ctx.Err(), t.name, err)
		}
		rows += rec.NumRows()
	}
	if err := co.Flush(); err != nil {
		return s.putError(ctx.Err(), t.name, err)
	}
	if err := ctx.Err(); err != nil {
		return s.putError(err, t.name, err)
	}
	if wantRows != nil && *wantRows != rows {
		return s.putError(nil, t.name, fmt.Errorf("the stream ended after %d rows, but the descriptor announced %d; nothing was kept: %w", rows, *wantRows, dataset.ErrInvalid))
	}
	if err := w.Commit(); err != nil {
		return s.putError(ctx.Err(), t.name, err)
	}
	committed = true
	ds, err := s.cat.Get(ctx, t.name)
	if err != nil {
		return toStatus(err)
	}
	s.log.Info("dataset uploaded", "dataset", t.name, "shards", len(ds.Shards), "rows", rows, "bytes", ds.Bytes(), "version", ds.Version)
	body, _ := json.Marshal(PutResult{Dataset: t.name, Version: ds.Version, Shards: len(ds.Shards), Rows: ds.Rows(), Bytes: ds.Bytes(), SignalColumns: signals})
	return stream.Send(&aflight.PutResult{AppMetadata: body})
}

// openUpload starts reading an upload: its descriptor and schema. Every
// message's metadata is verified before arrow-go decodes it (ipccheck), and a
// panic in the reader becomes an error wrapping dataset.ErrInvalid.
func openUpload(stream aflight.DataStreamReader, alloc memory.Allocator) (*aflight.Reader, error) {
	var rdr *aflight.Reader
	err := dataset.Protect("DoPut: the schema message", dataset.ErrInvalid, func() error {
		var err error
		rdr, err = aflight.NewRecordReader(checkedStream{stream}, ipc.WithAllocator(alloc))
		return err
	})
	return rdr, err
}

// checkedStream verifies the IPC metadata of every message of an upload.
type checkedStream struct{ aflight.DataStreamReader }

func (s checkedStream) Recv() (*aflight.FlightData, error) {
	fd, err := s.DataStreamReader.Recv()
	if err == nil && len(fd.DataHeader) > 0 {
		if err := ipccheck.Message(fd.DataHeader); err != nil {
			return nil, err
		}
	}
	return fd, err
}

// nextUpload reads and validates the next batch of an upload: nil at the
// clean end of the stream, an error wrapping dataset.ErrInvalid for a batch
// that is malformed (its buffers, offsets or types disagree with the schema)
// or that the reader cannot decode, and the stream's own error (a gRPC status)
// as it is.
func nextUpload(rdr *aflight.Reader, index int) (arrow.RecordBatch, error) {
	what := fmt.Sprintf("batch %d", index)
	var rec arrow.RecordBatch
	err := dataset.Protect(what, dataset.ErrInvalid, func() error {
		if !rdr.Next() {
			return nil
		}
		rec = rdr.RecordBatch()
		return dataset.ValidateRecord(rec)
	})
	if err == nil && rec == nil {
		err = rdr.Err()
		if _, ok := status.FromError(err); err == nil || ok {
			return nil, err
		}
	}
	if err != nil {
		if errors.Is(err, dataset.ErrInvalid) {
			return nil, err
		}
		return nil, fmt.Errorf("%s is malformed: %v: %w", what, err, dataset.ErrInvalid)
	}
	return rec, nil
}

// putError logs a failed upload and chooses its status: the client's own
// cancellation or deadline if that is what ended it.
func (s *Server) putError(ctxErr error, name string, err error) error {
	s.log.Warn("upload failed; nothing kept", "dataset", name, "err", err)
	if ctxErr != nil {
		return status.FromContextError(ctxErr).Err()
	}
	if _, ok := status.FromError(err); ok && !errors.Is(err, dataset.ErrInvalid) {
		return err
	}
	return toStatus(fmt.Errorf("upload datasets/%s: %w", name, err))
}
