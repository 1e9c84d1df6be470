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
	"github.com/flightbatch/flightbatch/pkg/api"
)

// actions are the DoAction types, with their one-line descriptions.
var actions = []*aflight.ActionType{
	{Type: api.ActionPSD, Description: `Run Welch's PSD over every shard of a dataset as a job: {"dataset": "demo", "fs": 250, "nperseg": 512, "bands": {"beta": [13, 30]}} -> {"job_id", "state", "shards"}`},
	{Type: api.ActionRun, Description: `Run a registered function over every shard of a dataset as a job: {"function": "name", "dataset": "demo", "params": {...}}`},
	{Type: api.ActionJobStatus, Description: `A job's state and shard counts: {"job_id": "..."}`},
	{Type: api.ActionCancelJob, Description: `Stop a job's children; the job ends CANCELLED: {"job_id": "..."}`},
	{Type: api.ActionListJobs, Description: `The job history, oldest first: {} or {"dataset": "demo"}`},
	{Type: api.ActionListFunctions, Description: `The functions jobs can run: {}`},
}

// ListActions lists every action type with a one-line description.
func (s *Server) ListActions(_ *aflight.Empty, stream aflight.FlightService_ListActionsServer) error {
	for _, a := range actions {
		if err := stream.Send(a); err != nil {
			return err
		}
	}
	return nil
}

// DoAction runs one action; every body is JSON in and JSON out.
func (s *Server) DoAction(a *aflight.Action, stream aflight.FlightService_DoActionServer) error {
	ctx := stream.Context()
	if err := s.opts.Auth.authorize(ctx, actionRole(a.Type), "action "+a.Type); err != nil {
		return err
	}
	var (
		out any
		err error
	)
	switch a.Type {
	case api.ActionPSD:
		out, err = s.actionPSD(ctx, a.Body)
	case api.ActionRun:
		out, err = s.actionRun(ctx, a.Body)
	case api.ActionJobStatus:
		out, err = s.actionJobStatus(a.Body)
	case api.ActionCancelJob:
		out, err = s.actionCancel(ctx, a.Body)
	case api.ActionListJobs:
		out, err = s.actionListJobs(a.Body)
	case api.ActionListFunctions:
		out, err = s.actionListFunctions(a.Body)
	default:
		names := make([]string, len(actions))
		for i, x := range actions {
			names[i] = x.Type
		}
		return status.Errorf(codes.Unimplemented, "unknown action %q; the actions are %s", clip(a.Type), strings.Join(names, ", "))
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

// actionPSD submits a psd job: "dataset" and "reuse" are the request's, every
// other field is a psd parameter.
func (s *Server) actionPSD(ctx context.Context, body []byte) (any, error) {
	fields, err := splitObject(api.ActionPSD, body)
	if err != nil {
		return nil, err
	}
	ds, err := takeString(api.ActionPSD, fields, "dataset")
	if err != nil {
		return nil, err
	}
	reuse, err := takeBool(api.ActionPSD, fields, "reuse")
	if err != nil {
		return nil, err
	}
	if ds == "" {
		return nil, invalidArg(`psd: name the input: "dataset": "<name>" (or "jobs/<job_id>")`)
	}
	params, _ := json.Marshal(fields)
	return s.submit(ctx, batch.SubmitRequest{Function: "psd", Dataset: ds, Params: params, Reuse: reuse})
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
			return invalidArg(`a job's input is a whole result, "jobs/<job_id>", not %q`, name)
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
		return "", status.Errorf(codes.NotFound, "job %q not found: job IDs look like 20261124T184501123Z-9f2c1a", ref.JobID)
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

// clip shortens what a client sent, for quoting it in an error message.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
