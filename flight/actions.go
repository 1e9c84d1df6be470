package flight

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/pkg/api"
)

// actionFunction is a registered function that has an action of its own, named
// after it, whose body is its job request: "dataset", "reuse", and every other
// field one of its parameters (psd is one).
type actionFunction interface {
	batch.Function
	// ActionDescription describes the action in one line.
	ActionDescription() string
}

// functionAction returns the registered function with an action named typ.
func (s *Server) functionAction(typ string) (actionFunction, bool) {
	for _, a := range actions {
		if a.Type == typ {
			return nil, false // the server's own actions come first
		}
	}
	f, err := s.jobs.Functions().Get(typ)
	if err != nil {
		return nil, false
	}
	af, ok := f.(actionFunction)
	return af, ok
}

// actionTypes lists every action: the registered functions' own, then the
// server's.
func (s *Server) actionTypes() []*aflight.ActionType {
	var out []*aflight.ActionType
	for _, f := range s.jobs.Functions().List() {
		if af, ok := s.functionAction(f.Name()); ok {
			out = append(out, &aflight.ActionType{Type: af.Name(), Description: af.ActionDescription()})
		}
	}
	return append(out, actions...)
}

// actions are the server's own DoAction types, with their one-line
// descriptions.
var actions = []*aflight.ActionType{
	{Type: api.ActionRun, Description: `Run a registered function over every shard of a dataset as a job: {"function": "name", "dataset": "demo", "params": {...}}`},
	{Type: api.ActionJobStatus, Description: `A job's state and shard counts: {"job_id": "..."}`},
	{Type: api.ActionJobWait, Description: `A job's status as soon as it has ended, or after timeout_s (0 to 60, default 10) if it has not: {"job_id": "...", "timeout_s": 10}`},
	{Type: api.ActionCancelJob, Description: `Stop a job's children; the job ends CANCELLED: {"job_id": "..."}`},
	{Type: api.ActionListJobs, Description: `The job history, oldest first, filtered: {} or {"state": ["FAILED"], "dataset", "function", "name", "labels": {"k": "v"}, "submitted_by", "since", "until" (RFC 3339), "order": "newest", "limit": 10}`},
	{Type: api.ActionListFunctions, Description: `The functions jobs can run: {}`},
	{Type: api.ActionDeleteJob, Description: `Delete a finished job and its result from the store: {"job_id": "...", "force": false}; refused while it runs, or while other jobs read its result unless forced`},
	{Type: api.ActionRegister, Description: `Register the .edf/.bdf files (or a BIDS tree) under a store prefix as a dataset read in place: {"name": "sleep", "prefix": "raw/sleep/", "epoch_s": 30, "bad_spans": "drop"}`},
}

// maxActionType bounds an action's type: an unknown one is Unimplemented, a
// type longer than this is InvalidArgument.
const maxActionType = 256

// ListActions lists every action type with a one-line description.
func (s *Server) ListActions(_ *aflight.Empty, stream aflight.FlightService_ListActionsServer) error {
	for _, a := range s.actionTypes() {
		if err := stream.Send(a); err != nil {
			return err
		}
	}
	return nil
}

// DoAction runs one action; every body is JSON in and JSON out.
func (s *Server) DoAction(a *aflight.Action, stream aflight.FlightService_DoActionServer) error {
	ctx := stream.Context()
	role := actionRole(a.Type)
	if _, ok := s.functionAction(a.Type); ok {
		role = RoleSubmit
	}
	if err := s.opts.Auth.authorize(ctx, role, "action "+a.Type); err != nil {
		return err
	}
	if err := checkJSONBounds("the body of action "+clip.Quote(a.Type), a.Body, MaxActionBodyBytes); err != nil {
		return err
	}
	var (
		out any
		err error
	)
	fn, isFunction := s.functionAction(a.Type)
	switch {
	case isFunction:
		out, err = s.actionFunction(ctx, fn.Name(), a.Body)
	default:
		out, err = s.action(ctx, a.Type, a.Body)
	}
	if err != nil {
		return toStatus(err)
	}
	body, err := json.Marshal(out)
	if err != nil {
		return status.Errorf(codes.Internal, "encode %s result: %v", a.Type, err)
	}
	return stream.Send(&aflight.Result{Body: body})
}

// action runs one of the server's own actions.
func (s *Server) action(ctx context.Context, typ string, body []byte) (out any, err error) {
	switch typ {
	case api.ActionRun:
		return s.actionRun(ctx, body)
	case api.ActionJobStatus:
		return s.actionJobStatus(body)
	case api.ActionJobWait:
		return s.actionJobWait(ctx, body)
	case api.ActionCancelJob:
		return s.actionCancel(ctx, body)
	case api.ActionListJobs:
		return s.actionListJobs(body)
	case api.ActionListFunctions:
		return s.actionListFunctions(body)
	case api.ActionRegister:
		return s.actionRegister(ctx, body)
	case api.ActionDeleteJob:
		return s.actionDeleteJob(ctx, body)
	}
	types := s.actionTypes()
	names := make([]string, len(types))
	for i, x := range types {
		names[i] = x.Type
	}
	if len(typ) > maxActionType {
		// Not a name any Flight client would send: a malformed request.
		return nil, invalidArg("action type %s is longer than %d bytes; the actions are %s", clip.Quote(typ), maxActionType, strings.Join(names, ", "))
	}
	return nil, status.Errorf(codes.Unimplemented, "unknown action %s; the actions are %s", clip.Quote(typ), strings.Join(names, ", "))
}

// decodeStrict decodes a JSON object into v, refusing unknown fields.
func decodeStrict(action string, body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidArg("%s: the body must be a JSON object of the documented fields: %s", action, clip.JSONError(err))
	}
	if dec.More() {
		return invalidArg("%s: the body holds more than one JSON value", action)
	}
	return nil
}

// splitObject decodes a JSON object into its fields.
func splitObject(action string, body []byte) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalidArg("%s: the body is empty; send a JSON object", action)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		msg := "not an object"
		if err != nil {
			msg = clip.JSONError(err)
		}
		return nil, invalidArg("%s: the body must be a JSON object: %s", action, msg)
	}
	return fields, nil
}

func takeString(action string, fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok {
		return "", nil
	}
	delete(fields, name)
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", invalidArg("%s: %q must be a string", action, name)
	}
	return v, nil
}

func takeBool(action string, fields map[string]json.RawMessage, name string) (bool, error) {
	raw, ok := fields[name]
	if !ok {
		return false, nil
	}
	delete(fields, name)
	var v bool
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, invalidArg("%s: %q must be true or false", action, name)
	}
	return v, nil
}

// actionFunction submits a job of function name from its own action's body:
// "dataset" and "reuse" are the request's, every other field is a parameter.
func (s *Server) actionFunction(ctx context.Context, fnName string, body []byte) (any, error) {
	fields, err := splitObject(fnName, body)
	if err != nil {
		return nil, err
	}
	ds, err := takeString(fnName, fields, "dataset")
	if err != nil {
		return nil, err
	}
	reuse, err := takeBool(fnName, fields, "reuse")
	if err != nil {
		return nil, err
	}
	jobName, err := takeString(fnName, fields, "name")
	if err != nil {
		return nil, err
	}
	labels, err := takeLabels(fnName, fields)
	if err != nil {
		return nil, err
	}
	if ds == "" {
		return nil, invalidArg(`%s: name the input: "dataset": "<name>" (or "jobs/<job_id>")`, fnName)
	}
	params, _ := json.Marshal(fields)
	return s.submit(ctx, batch.SubmitRequest{Function: fnName, Dataset: ds, Params: params, Reuse: reuse, Name: jobName, Labels: labels})
}

// takeLabels takes the "labels" object of string values.
func takeLabels(action string, fields map[string]json.RawMessage) (map[string]string, error) {
	raw, ok := fields["labels"]
	if !ok {
		return nil, nil
	}
	delete(fields, "labels")
	var v map[string]string
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, invalidArg(`%s: "labels" must be an object of strings, e.g. {"cohort": "pd", "site": "oxford"}`, action)
	}
	return v, nil
}

type runRequest struct {
	Function string            `json:"function"`
	Dataset  string            `json:"dataset"`
	Params   json.RawMessage   `json:"params"`
	Reuse    bool              `json:"reuse"`
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
}

func (s *Server) actionRun(ctx context.Context, body []byte) (any, error) {
	var req runRequest
	if err := decodeStrict(api.ActionRun, body, &req); err != nil {
		return nil, err
	}
	if req.Function == "" || req.Dataset == "" {
		return nil, invalidArg(`run: give "function" (see list-functions) and "dataset"`)
	}
	return s.submit(ctx, batch.SubmitRequest{Function: req.Function, Dataset: req.Dataset, Params: req.Params, Reuse: req.Reuse, Name: req.Name, Labels: req.Labels})
}

func (s *Server) submit(ctx context.Context, req batch.SubmitRequest) (any, error) {
	t, err := checkInput(req.Dataset)
	if err != nil {
		return nil, err
	}
	if t.lookup != nil {
		// An input named by a lookup (jobs/<name>, jobs/latest?...) is the job
		// it means now; the manifest records that job's ID.
		if t, err = s.resolve(t); err != nil {
			return nil, err
		}
		req.Dataset = "jobs/" + t.name
	}
	req.SubmittedBy = callerName(ctx)
	m, err := s.jobs.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	return api.SubmitResult{JobID: m.JobID, State: string(m.State), Shards: len(m.Shards), Reused: m.State == batch.StateSucceeded}, nil
}

// checkInput validates a job's input name: a dataset name, jobs/<id> or a
// job lookup.
func checkInput(name string) (target, error) {
	if strings.HasPrefix(name, "jobs/") {
		t, err := parsePath([]string{name})
		if err != nil {
			return t, err
		}
		if t.shard != "" {
			return t, invalidArg(`a job's input is a whole result, "jobs/<job_id>", not %s`, clip.Quote(name))
		}
		return t, nil
	}
	return parsePath([]string{"datasets", name})
}

func (s *Server) jobRef(action string, body []byte) (string, error) {
	var ref api.JobRef
	if err := decodeStrict(action, body, &ref); err != nil {
		return "", err
	}
	if ref.JobID == "" {
		return "", invalidArg(`%s: give "job_id"`, action)
	}
	if !batch.ValidJobID(ref.JobID) {
		return "", status.Errorf(codes.NotFound, "job %s not found: job IDs look like 20261124T184501123Z-9f2c1a", clip.Quote(ref.JobID))
	}
	return ref.JobID, nil
}

func (s *Server) actionJobStatus(body []byte) (any, error) {
	id, err := s.jobRef(api.ActionJobStatus, body)
	if err != nil {
		return nil, err
	}
	sum, err := s.jobs.Summary(id, MaxStatusFailures)
	if err != nil {
		return nil, err
	}
	return jobStatus(sum), nil
}

func (s *Server) actionCancel(ctx context.Context, body []byte) (any, error) {
	id, err := s.jobRef(api.ActionCancelJob, body)
	if err != nil {
		return nil, err
	}
	m, err := s.jobs.Cancel(ctx, id)
	if err != nil {
		return nil, err
	}
	return jobStatus(m.Summary(MaxStatusFailures)), nil
}

// listJobsFilters are the fields of a list-jobs body.
var listJobsFilters = []string{"state", "dataset", "function", "name", "labels", "submitted_by", "since", "until", "order", "limit"}

// maxListLimit bounds list-jobs' limit.
const maxListLimit = 100000

func (s *Server) actionListJobs(body []byte) (any, error) {
	if len(bytes.TrimSpace(body)) > 0 {
		fields, err := splitObject(api.ActionListJobs, body)
		if err != nil {
			return nil, err
		}
		for k := range fields {
			if !slices.Contains(listJobsFilters, k) {
				return nil, invalidArg("list-jobs: unknown filter %s; the filters are %s", clip.Quote(k), strings.Join(listJobsFilters, ", "))
			}
		}
	}
	var req api.ListJobsRequest
	if err := decodeStrict(api.ActionListJobs, body, &req); err != nil {
		return nil, err
	}
	q, err := listQuery(req)
	if err != nil {
		return nil, err
	}
	out := api.ListJobsResult{Jobs: []api.JobStatus{}}
	for _, sum := range s.jobs.SummariesWithFailures(q, MaxStatusFailures) {
		out.Jobs = append(out.Jobs, jobStatus(sum))
	}
	return out, nil
}

// listQuery turns list-jobs filters into a query.
func listQuery(req api.ListJobsRequest) (batch.Query, error) {
	q := batch.Query{Dataset: req.Dataset, Function: req.Function, Name: req.Name, Labels: req.Labels, SubmittedBy: req.SubmittedBy, Limit: req.Limit}
	for _, st := range req.State {
		state, err := batch.ParseState(st)
		if err != nil {
			return q, invalidArg("list-jobs: %v", err)
		}
		q.States = append(q.States, state)
	}
	for _, b := range []struct {
		name, text string
		t          *time.Time
	}{{"since", req.Since, &q.Since}, {"until", req.Until, &q.Until}} {
		if b.text == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, b.text)
		if err != nil {
			return q, invalidArg(`list-jobs: %q is %s, not an RFC 3339 time such as "2026-11-24T18:45:00Z"`, b.name, clip.Quote(b.text))
		}
		*b.t = t
	}
	switch req.Order {
	case "", "oldest":
	case "newest":
		q.Newest = true
	default:
		return q, invalidArg(`list-jobs: "order" is %s; use "oldest" (the default) or "newest"`, clip.Quote(req.Order))
	}
	if req.Limit < 0 || req.Limit > maxListLimit {
		return q, invalidArg(`list-jobs: "limit" %d: use 1 to %d, or 0 for all`, req.Limit, maxListLimit)
	}
	if len(req.Labels) > batch.MaxLabels {
		return q, invalidArg("list-jobs: %d labels: at most %d", len(req.Labels), batch.MaxLabels)
	}
	return q, nil
}

func (s *Server) actionDeleteJob(ctx context.Context, body []byte) (any, error) {
	var req api.DeleteJobRequest
	if err := decodeStrict(api.ActionDeleteJob, body, &req); err != nil {
		return nil, err
	}
	if req.JobID == "" {
		return nil, invalidArg(`delete-job: give "job_id"`)
	}
	if !batch.ValidJobID(req.JobID) {
		return nil, status.Errorf(codes.NotFound, "job %s not found: job IDs look like 20261124T184501123Z-9f2c1a", clip.Quote(req.JobID))
	}
	if err := s.jobs.Delete(ctx, req.JobID, req.Force); err != nil {
		return nil, err
	}
	s.log.Info("job deleted on request", "job", req.JobID, "by", callerName(ctx))
	return api.DeleteJobResult{JobID: req.JobID, Deleted: true}, nil
}

func (s *Server) actionListFunctions(body []byte) (any, error) {
	var req struct{}
	if err := decodeStrict(api.ActionListFunctions, body, &req); err != nil {
		return nil, err
	}
	out := api.ListFunctionsResult{Functions: []api.Function{}}
	for _, f := range s.jobs.Functions().List() {
		out.Functions = append(out.Functions, api.Function{Name: f.Name(), Description: f.Description()})
	}
	return out, nil
}

// jobStatus is the job-status answer for a manifest.
func jobStatus(sum batch.JobSummary) api.JobStatus {
	m, c := sum.Job, sum.Counts
	st := api.JobStatus{
		JobID:          m.JobID,
		Function:       m.Function,
		State:          string(m.State),
		Shards:         api.ShardCounts(c),
		Dataset:        m.Dataset,
		DatasetVersion: m.DatasetVersion,
		Params:         m.Params,
		Executor:       m.Executor,
		CreatedAt:      m.CreatedAt,
		StartedAt:      m.StartedAt,
		FinishedAt:     m.FinishedAt,
		Error:          m.Error,
		SubmittedBy:    m.SubmittedBy,
		Name:           m.Name,
		Labels:         m.Labels,
		Failures:       []api.ShardFailure{},
	}
	if st.Labels == nil {
		st.Labels = map[string]string{}
	}
	if c.Total > 0 {
		st.Progress = float64(c.Succeeded) / float64(c.Total)
	}
	st.FailuresTotal = sum.FailuresTotal
	for _, sh := range sum.Failures[:min(len(sum.Failures), MaxStatusFailures)] {
		f := api.ShardFailure{Shard: sh.Name, State: string(sh.State), Attempts: sh.Attempts}
		for _, e := range sh.Errors {
			f.Errors = append(f.Errors, fmt.Sprintf("attempt %d: %s", e.Attempt, batch.ClipAttemptError(e.Error)))
		}
		st.Failures = append(st.Failures, f)
	}
	return st
}

// actionRegister registers a store prefix of EDF/BDF files as a dataset read
// in place. The name is claimed like an upload's, so a register and a DoPut of
// one name never interleave.
func (s *Server) actionRegister(ctx context.Context, body []byte) (any, error) {
	var req api.RegisterRequest
	if err := decodeStrict(api.ActionRegister, body, &req); err != nil {
		return nil, err
	}
	if req.Name == "" || req.Prefix == "" {
		return nil, invalidArg(`%s: "name" and "prefix" are required: {"name": "sleep", "prefix": "raw/sleep/"}`, api.ActionRegister)
	}
	if err := dataset.ValidName(req.Name); err != nil {
		return nil, toStatus(err)
	}
	if !s.uploads.claim(req.Name) {
		return nil, status.Errorf(codes.AlreadyExists, "dataset %q is being uploaded or registered by another client", req.Name)
	}
	defer s.uploads.release(req.Name)
	res, err := s.cat.Register(ctx, req.Name, dataset.RegisterOptions{
		Prefix: req.Prefix, EpochSeconds: req.EpochS, BadSpans: req.BadSpans, ShardMB: req.ShardMB, Shards: req.Shards,
	})
	if err != nil {
		s.log.Warn("register failed", "dataset", req.Name, "prefix", req.Prefix, "err", err)
		return nil, err
	}
	s.log.Info("dataset registered", "dataset", res.Dataset, "files", res.Files, "shards", res.Shards, "rows", res.Rows, "bids", res.BIDS)
	return res, nil
}
