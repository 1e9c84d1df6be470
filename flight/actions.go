package flight

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

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
	{Type: api.ActionCancelJob, Description: `Stop a job's children; the job ends CANCELLED: {"job_id": "..."}`},
	{Type: api.ActionListJobs, Description: `The job history, oldest first: {} or {"dataset": "demo"}`},
	{Type: api.ActionListFunctions, Description: `The functions jobs can run: {}`},
	{Type: api.ActionRegister, Description: `Register the .edf/.bdf files (or a BIDS tree) under a store prefix as a dataset read in place: {"name": "sleep", "prefix": "raw/sleep/", "epoch_s": 30, "bad_spans": "drop"}`},
}

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
	case api.ActionCancelJob:
		return s.actionCancel(ctx, body)
	case api.ActionListJobs:
		return s.actionListJobs(body)
	case api.ActionListFunctions:
		return s.actionListFunctions(body)
	case api.ActionRegister:
		return s.actionRegister(ctx, body)
	}
	types := s.actionTypes()
	names := make([]string, len(types))
	for i, x := range types {
		names[i] = x.Type
	}
	return nil, invalidArg("unknown action %s; the actions are %s", clip.Quote(typ), strings.Join(names, ", "))
}

// decodeStrict decodes a JSON object into v, refusing unknown fields.
func decodeStrict(action string, body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidArg("%s: the body must be a JSON object of the documented fields: %s", action, strings.TrimPrefix(err.Error(), "json: "))
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
			msg = strings.TrimPrefix(err.Error(), "json: ")
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
func (s *Server) actionFunction(ctx context.Context, name string, body []byte) (any, error) {
	fields, err := splitObject(name, body)
	if err != nil {
		return nil, err
	}
	ds, err := takeString(name, fields, "dataset")
	if err != nil {
		return nil, err
	}
	reuse, err := takeBool(name, fields, "reuse")
	if err != nil {
		return nil, err
	}
	if ds == "" {
		return nil, invalidArg(`%s: name the input: "dataset": "<name>" (or "jobs/<job_id>")`, name)
	}
	params, _ := json.Marshal(fields)
	return s.submit(ctx, batch.SubmitRequest{Function: name, Dataset: ds, Params: params, Reuse: reuse})
}

type runRequest struct {
	Function string          `json:"function"`
	Dataset  string          `json:"dataset"`
	Params   json.RawMessage `json:"params"`
	Reuse    bool            `json:"reuse"`
}

func (s *Server) actionRun(ctx context.Context, body []byte) (any, error) {
	var req runRequest
	if err := decodeStrict(api.ActionRun, body, &req); err != nil {
		return nil, err
	}
	if req.Function == "" || req.Dataset == "" {
		return nil, invalidArg(`run: give "function" (see list-functions) and "dataset"`)
	}
	return s.submit(ctx, batch.SubmitRequest{Function: req.Function, Dataset: req.Dataset, Params: req.Params, Reuse: req.Reuse})
}

func (s *Server) submit(ctx context.Context, req batch.SubmitRequest) (any, error) {
	if err := checkInput(req.Dataset); err != nil {
		return nil, err
	}
	req.SubmittedBy = callerName(ctx)
	m, err := s.jobs.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	return api.SubmitResult{JobID: m.JobID, State: string(m.State), Shards: len(m.Shards), Reused: m.State == batch.StateSucceeded}, nil
}

// checkInput validates a job's input name: a dataset name or jobs/<id>.
func checkInput(name string) error {
	if strings.HasPrefix(name, "jobs/") {
		t, err := parsePath([]string{name})
		if err != nil {
			return err
		}
		if t.shard != "" {
			return invalidArg(`a job's input is a whole result, "jobs/<job_id>", not %s`, clip.Quote(name))
		}
		return nil
	}
	_, err := parsePath([]string{"datasets", name})
	return err
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
	m, err := s.jobs.Status(id)
	if err != nil {
		return nil, err
	}
	return jobStatus(m), nil
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
	return jobStatus(m), nil
}

func (s *Server) actionListJobs(body []byte) (any, error) {
	var req api.ListJobsRequest
	if err := decodeStrict(api.ActionListJobs, body, &req); err != nil {
		return nil, err
	}
	out := api.ListJobsResult{Jobs: []api.JobStatus{}}
	for _, m := range s.jobs.List(req.Dataset) {
		out.Jobs = append(out.Jobs, jobStatus(m))
	}
	return out, nil
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
func jobStatus(m *batch.Manifest) api.JobStatus {
	c := m.Counts()
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
	}
	if c.Total > 0 {
		st.Progress = float64(c.Succeeded) / float64(c.Total)
	}
	for _, sh := range m.Shards {
		if len(sh.Errors) == 0 {
			continue
		}
		f := api.ShardFailure{Shard: sh.Name, State: string(sh.State), Attempts: sh.Attempts}
		for _, e := range sh.Errors {
			f.Errors = append(f.Errors, fmt.Sprintf("attempt %d: %s", e.Attempt, e.Error))
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
