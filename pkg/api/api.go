// Package api holds the JSON shapes of flightbatch's Flight actions, shared by
// the server and the Go client.
package api

import (
	"encoding/json"
	"errors"
	"time"
)

// Action type names.
const (
	ActionPSD           = "psd"
	ActionRun           = "run"
	ActionJobStatus     = "job-status"
	ActionJobWait       = "job-wait"
	ActionCancelJob     = "cancel-job"
	ActionListJobs      = "list-jobs"
	ActionListFunctions = "list-functions"
	ActionDeleteJob     = "delete-job"
	ActionRegister      = "register-dataset"
)

// RegisterRequest is the body of register-dataset: register the .edf/.bdf
// files under a store prefix as a dataset read in place.
type RegisterRequest struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix"`
	// EpochS is the epoch length in seconds; 0 or absent: the whole recording.
	EpochS float64 `json:"epoch_s,omitempty"`
	// BadSpans is "drop" (default), "nan" or "keep".
	BadSpans string  `json:"bad_spans,omitempty"`
	ShardMB  float64 `json:"shard_mb,omitempty"`
	Shards   int     `json:"shards,omitempty"`
}

// RegisterResult answers register-dataset.
type RegisterResult struct {
	Dataset string `json:"dataset"`
	Version string `json:"version"`
	Files   int    `json:"files"`
	Shards  int    `json:"shards"`
	Rows    int64  `json:"rows"`
	Bytes   int64  `json:"bytes"`
	BIDS    bool   `json:"bids"`
}

// SubmitResult answers psd and run.
type SubmitResult struct {
	JobID  string `json:"job_id"`
	State  string `json:"state"`
	Shards int    `json:"shards"`
	// Reused is true when an earlier job's result was reused ("reuse": true).
	Reused bool `json:"reused,omitempty"`
}

// JobRef names a job: the body of job-status and cancel-job.
type JobRef struct {
	JobID string `json:"job_id"`
}

// JobWaitRequest is the body of job-wait: answer the job's status when it
// has ended, or after TimeoutS seconds if it has not.
type JobWaitRequest struct {
	JobID string `json:"job_id"`
	// TimeoutS is how long to wait, 0 to 60 seconds; nil waits 10 seconds.
	TimeoutS *float64 `json:"timeout_s,omitempty"`
}

// DeleteJobRequest is the body of delete-job.
type DeleteJobRequest struct {
	JobID string `json:"job_id"`
	// Force deletes a result that finished jobs took as their input (their
	// own results stay). The input of a job that has not ended is never
	// deleted.
	Force bool `json:"force,omitempty"`
}

// DeleteJobResult answers delete-job.
type DeleteJobResult struct {
	JobID   string `json:"job_id"`
	Deleted bool   `json:"deleted"`
}

// ShardCounts tallies a job's shards by state.
type ShardCounts struct {
	Total     int `json:"total"`
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// Cancelled counts the shards of a cancelled job that never finished.
	Cancelled int `json:"cancelled"`
}

// ShardFailure describes a shard whose children failed.
type ShardFailure struct {
	Shard    string   `json:"shard"`
	State    string   `json:"state"`
	Attempts int      `json:"attempts"`
	Errors   []string `json:"errors"`
}

// JobStatus answers job-status and is one entry of list-jobs.
type JobStatus struct {
	JobID          string          `json:"job_id"`
	Function       string          `json:"function"`
	State          string          `json:"state"`
	Shards         ShardCounts     `json:"shards"`
	Progress       float64         `json:"progress"`
	Dataset        string          `json:"dataset"`
	DatasetVersion string          `json:"dataset_version"`
	Params         json.RawMessage `json:"params"`
	Executor       string          `json:"executor"`
	CreatedAt      time.Time       `json:"created_at"`
	StartedAt      *time.Time      `json:"started_at"`
	FinishedAt     *time.Time      `json:"finished_at"`
	// Error says why the job failed or was cancelled: a failed job's names
	// its first 5 failed shards, each with its last attempt's error, and
	// counts the others ("and N more shards failed; see failures").
	Error string `json:"error"`
	// Failures lists the shards with failed attempts, in shard order, with
	// each attempt's error ([] when none has failed). It lists at most the
	// first 100 such shards (FailuresTotal counts them all), and an error
	// longer than 2 KiB keeps its start and end with a note of the cut: the
	// whole error of each attempt is in the job's attempt records in the
	// store (jobs/<job_id>/attempts/<shard>.<attempt>.json).
	Failures []ShardFailure `json:"failures"`
	// FailuresTotal counts the shards with failed attempts; when it is more
	// than len(Failures), Failures was cut.
	FailuresTotal int `json:"failures_total"`
	// SubmittedBy names the caller that submitted the job, when the server
	// authenticates callers.
	SubmittedBy string `json:"submitted_by,omitempty"`
	// Name is the job's name ("" when it has none).
	Name string `json:"name"`
	// Labels are the job's labels (empty when it has none).
	Labels map[string]string `json:"labels"`
}

// ListJobsRequest is the body of list-jobs: filters that every listed job
// matches (all optional), the order and a limit.
type ListJobsRequest struct {
	// State is one state ("FAILED") or a list (["FAILED", "CANCELLED"]).
	State StateFilter `json:"state,omitempty"`
	// Dataset is the job's input: a dataset name or "jobs/<job_id>".
	Dataset  string `json:"dataset,omitempty"`
	Function string `json:"function,omitempty"`
	// Name is the job's name.
	Name string `json:"name,omitempty"`
	// Labels must all be on the job, with these values.
	Labels      map[string]string `json:"labels,omitempty"`
	SubmittedBy string            `json:"submitted_by,omitempty"`
	// Since and Until bound created_at (RFC 3339): Since <= created_at < Until.
	Since string `json:"since,omitempty"`
	Until string `json:"until,omitempty"`
	// Order is "oldest" (default) or "newest" first.
	Order string `json:"order,omitempty"`
	// Limit keeps the first Limit jobs of that order (0: all).
	Limit int `json:"limit,omitempty"`
}

// StateFilter is one job state or a list of them; in JSON a string or an
// array of strings.
type StateFilter []string

// UnmarshalJSON takes "FAILED" or ["FAILED", "CANCELLED"].
func (s *StateFilter) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*s = StateFilter{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return errors.New(`state must be a state ("FAILED") or a list of states (["FAILED", "CANCELLED"])`)
	}
	*s = many
	return nil
}

// ListJobsResult answers list-jobs: the jobs, oldest first unless asked otherwise.
type ListJobsResult struct {
	Jobs []JobStatus `json:"jobs"`
}

// Function describes a registered function.
type Function struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// ListFunctionsResult answers list-functions.
type ListFunctionsResult struct {
	Functions []Function `json:"functions"`
}
