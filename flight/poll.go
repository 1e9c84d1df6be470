package flight

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/pkg/api"
)

// DefaultPollHold is how long a continuation PollFlightInfo waits for the job to
// change before it answers with the same PollInfo again.
const DefaultPollHold = 10 * time.Second

// pollExpiry is how far ahead PollInfo.expiration_time lies. Continuation
// descriptors stay valid as long as the job exists; the expiration time is a
// conservative promise that moves forward on every poll.
const pollExpiry = time.Hour

// pollSegment marks a continuation descriptor: ["jobs", id, "poll", token].
// Other flightbatch paths have at most three segments, so it cannot be taken
// for a shard.
const pollSegment = "poll"

// PollFlightInfo follows a job with the Flight protocol for long-running
// queries.
//
// The descriptor is either
//   - a path ["jobs", "<job_id>"] (or the command text "jobs/<job_id>"): the
//     first poll of an existing job, answered at once;
//   - a command holding a psd request as JSON ({"dataset": "demo", "fs": 250},
//     the body of the psd action), or a run request ({"function": ...}): the job
//     is submitted and its first PollInfo returned at once;
//   - the continuation descriptor of an earlier PollInfo, ["jobs", "<job_id>",
//     "poll", "<token>"]: the server holds the call until the job changes or
//     Options.PollHold passes (long poll).
//
// The PollInfo carries the complete FlightInfo so far: the result schema, and
// one endpoint per finished part (ticket "jobs/<job_id>/<shard>") in the order
// the parts finished, whatever their position in the input: endpoints may only
// be appended from one poll to the next, so each part is appended when it
// finishes. Each endpoint's app_metadata gives its shard, its index in the
// input and its rows; the info is not ordered. The info's app_metadata is the
// job-status JSON; total_records and total_bytes count the listed parts.
// progress is the fraction of shards that have succeeded. When the job has
// SUCCEEDED the descriptor is unset and the info lists every part; reading
// them by index gives the merged result, which the ticket jobs/<job_id>
// streams in input order.
//
// A job that ends FAILED or CANCELLED answers with the gRPC status Aborted and a
// message that names the state and, for a failure, each failed shard with its
// attempts and last error; its finished parts stay readable.
func (s *Server) PollFlightInfo(ctx context.Context, d *aflight.FlightDescriptor) (*aflight.PollInfo, error) {
	id, seen, err := s.pollTarget(ctx, d)
	if err != nil {
		return nil, err
	}
	if seen == "" {
		info, _, err := s.pollInfo(ctx, id)
		return info, err
	}
	var info *aflight.PollInfo
	err = s.holdForChange(ctx, id, s.opts.PollHold, func() (bool, error) {
		var token string
		var err error
		info, token, err = s.pollInfo(ctx, id)
		return token != seen, err
	})
	if err != nil {
		return nil, err
	}
	return info, nil
}

// pollTarget decodes a PollFlightInfo descriptor into a job ID and, for a
// continuation, the token of the PollInfo the client saw last. A command holding
// a job request submits the job.
func (s *Server) pollTarget(ctx context.Context, d *aflight.FlightDescriptor) (id, seen string, err error) {
	const help = `PollFlightInfo takes the path ["jobs", "<job_id>"], a command holding a psd request as JSON ({"dataset": "demo", "fs": 250}), or the descriptor of an earlier PollInfo`
	if d == nil {
		return "", "", invalidArg("missing flight descriptor: %s", help)
	}
	var segs []string
	switch d.Type {
	case aflight.DescriptorCMD:
		cmd := bytes.TrimSpace(d.Cmd)
		if len(cmd) > 0 && cmd[0] == '{' {
			id, err := s.pollSubmit(ctx, cmd)
			return id, "", err
		}
		if err := foreignCommand(cmd); err != nil {
			return "", "", err
		}
		segs = strings.Split(strings.Trim(string(cmd), "/"), "/")
	case aflight.DescriptorPATH:
		segs = d.Path
		if len(segs) == 1 {
			segs = strings.Split(strings.Trim(segs[0], "/"), "/")
		}
	default:
		return "", "", invalidArg("unknown descriptor type %v: %s", d.Type, help)
	}
	switch {
	case len(segs) == 2 && segs[0] == "jobs":
	case len(segs) == 4 && segs[0] == "jobs" && segs[2] == pollSegment && segs[3] != "":
		seen = segs[3]
	default:
		return "", "", invalidArg("descriptor %s: %s", clip.Quote(strings.Join(segs, "/")), help)
	}
	id = segs[1]
	if !batch.ValidJobID(id) {
		return "", "", status.Errorf(codes.NotFound, "job %s not found: job IDs look like 20261124T184501123Z-9f2c1a", clip.Quote(id))
	}
	if _, err := s.jobs.Summary(id, 0); err != nil {
		return "", "", toStatus(err)
	}
	return id, seen, nil
}

// pollSubmit submits the job a command descriptor asks for: a run request when
// the JSON has a "function" field, otherwise a request of the registry's
// default function (psd), shaped as that function's action's body.
func (s *Server) pollSubmit(ctx context.Context, cmd []byte) (string, error) {
	if err := s.opts.Auth.authorize(ctx, RoleSubmit, "PollFlightInfo of a job request"); err != nil {
		return "", err
	}
	if err := checkJSONBounds("the job request", cmd, MaxActionBodyBytes); err != nil {
		return "", err
	}
	var probe map[string]json.RawMessage
	_ = json.Unmarshal(cmd, &probe)
	var (
		out any
		err error
	)
	if _, ok := probe["function"]; ok {
		out, err = s.actionRun(ctx, cmd)
	} else if def := s.jobs.Functions().Default(); def != "" {
		out, err = s.actionFunction(ctx, def, cmd)
	} else {
		return "", invalidArg(`the job request names no "function" and the server has no default function: {"function": "<name>", "dataset": "...", "params": {...}}`)
	}
	if err != nil {
		return "", toStatus(err)
	}
	return out.(api.SubmitResult).JobID, nil
}

// pollInfo builds a job's PollInfo and the token that identifies its content.
func (s *Server) pollInfo(ctx context.Context, id string) (*aflight.PollInfo, string, error) {
	sum, parts, err := s.jobs.Parts(id, MaxStatusFailures, true)
	if err != nil {
		return nil, "", toStatus(err)
	}
	m := sum.Job
	switch m.State {
	case batch.StateFailed:
		return nil, "", status.Errorf(codes.Aborted, "job %s FAILED: %s (finished parts stay readable: GetFlightInfo jobs/%s/shards; job-status lists every failed attempt)", id, m.Error, id)
	case batch.StateCancelled:
		c := sum.Counts
		return nil, "", status.Errorf(codes.Aborted, "job %s CANCELLED with %d of %d shards succeeded (finished parts stay readable: GetFlightInfo jobs/%s/shards)", id, c.Succeeded, c.Total, id)
	}
	meta, err := json.Marshal(jobStatus(sum))
	if err != nil {
		return nil, "", status.Errorf(codes.Internal, "encode job status: %v", err)
	}
	// Endpoints are listed in the order the parts finished, not in input
	// order: a later poll may only append.
	info := &aflight.FlightInfo{
		FlightDescriptor: &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id}},
		TotalRecords:     sum.Rows,
		TotalBytes:       sum.Bytes,
		Ordered:          false,
		AppMetadata:      meta,
	}
	schema, err := s.jobs.ResultSchema(ctx, id)
	switch {
	case err == nil:
		info.Schema = aflight.SerializeSchema(schema, s.opts.Alloc)
	case !errors.Is(err, batch.ErrNotFinished):
		return nil, "", toStatus(err)
	}
	for _, p := range parts {
		info.Endpoint = append(info.Endpoint, &aflight.FlightEndpoint{
			Ticket:      &aflight.Ticket{Ticket: []byte("jobs/" + id + "/" + p.Name)},
			AppMetadata: []byte(fmt.Sprintf(`{"shard":%q,"index":%d,"rows":%d}`, p.Name, p.Shard, p.Rows)),
		})
	}
	c := sum.Counts
	progress := 0.0
	if c.Total > 0 {
		progress = float64(c.Succeeded) / float64(c.Total)
	} else if m.State == batch.StateSucceeded {
		progress = 1
	}
	pi := &aflight.PollInfo{
		Info:           info,
		Progress:       &progress,
		ExpirationTime: timestamppb.New(time.Now().Add(pollExpiry)),
	}
	h := fnv.New64a()
	h.Write(meta)
	fmt.Fprintf(h, "|%d", len(info.Endpoint))
	token := fmt.Sprintf("%016x", h.Sum64())
	if m.State != batch.StateSucceeded {
		pi.FlightDescriptor = &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id, pollSegment, token}}
	}
	return pi, token, nil
}
