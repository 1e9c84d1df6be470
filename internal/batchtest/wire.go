package batchtest

import "encoding/json"

// The JSON shapes below follow the AWS Batch REST-JSON protocol as the
// aws-sdk-go-v2 batch client (service/batch v1.65.2) serializes requests and
// deserializes replies. Time stamps are epoch milliseconds.

// KeyValuePair is a name and a value, as in a container's environment.
type KeyValuePair struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// EvaluateOnExit is one rule of a retry strategy: when every pattern given
// matches an attempt's outcome, Action (RETRY or EXIT) decides what happens.
type EvaluateOnExit struct {
	Action         string  `json:"action"`
	OnExitCode     *string `json:"onExitCode,omitempty"`
	OnReason       *string `json:"onReason,omitempty"`
	OnStatusReason *string `json:"onStatusReason,omitempty"`
}

// RetryStrategy is AWS Batch's retry strategy: up to Attempts attempts,
// EvaluateOnExit rules deciding whether a failed attempt is retried.
type RetryStrategy struct {
	Attempts       *int32           `json:"attempts,omitempty"`
	EvaluateOnExit []EvaluateOnExit `json:"evaluateOnExit,omitempty"`
}

// JobTimeout limits the duration of each attempt.
type JobTimeout struct {
	AttemptDurationSeconds *int32 `json:"attemptDurationSeconds,omitempty"`
}

type resourceRequirement struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type containerOverrides struct {
	Command              []string              `json:"command,omitempty"`
	Environment          []KeyValuePair        `json:"environment,omitempty"`
	ResourceRequirements []resourceRequirement `json:"resourceRequirements,omitempty"`
	InstanceType         *string               `json:"instanceType,omitempty"`
	Memory               *int32                `json:"memory,omitempty"`
	Vcpus                *int32                `json:"vcpus,omitempty"`
}

type arrayPropertiesInput struct {
	Size *int32 `json:"size,omitempty"`
}

type submitJobInput struct {
	JobName            *string               `json:"jobName"`
	JobQueue           *string               `json:"jobQueue"`
	JobDefinition      *string               `json:"jobDefinition"`
	ArrayProperties    *arrayPropertiesInput `json:"arrayProperties"`
	ContainerOverrides *containerOverrides   `json:"containerOverrides"`
	RetryStrategy      *RetryStrategy        `json:"retryStrategy"`
	Timeout            *JobTimeout           `json:"timeout"`
	Tags               map[string]string     `json:"tags"`
	Parameters         map[string]string     `json:"parameters"`
	PropagateTags      *bool                 `json:"propagateTags"`

	SchedulingPriorityOverride *int32  `json:"schedulingPriorityOverride"`
	ShareIdentifier            *string `json:"shareIdentifier"`

	// Accepted by AWS Batch but not by this endpoint.
	DependsOn                            json.RawMessage `json:"dependsOn"`
	NodeOverrides                        json.RawMessage `json:"nodeOverrides"`
	EksPropertiesOverride                json.RawMessage `json:"eksPropertiesOverride"`
	EcsPropertiesOverride                json.RawMessage `json:"ecsPropertiesOverride"`
	ConsumableResourcePropertiesOverride json.RawMessage `json:"consumableResourcePropertiesOverride"`
}

type submitJobOutput struct {
	JobArn  string `json:"jobArn"`
	JobID   string `json:"jobId"`
	JobName string `json:"jobName"`
}

type describeJobsInput struct {
	Jobs []string `json:"jobs"`
}

type describeJobsOutput struct {
	Jobs []jobDetail `json:"jobs"`
}

type arrayPropertiesDetail struct {
	Index                      *int32           `json:"index,omitempty"`
	Size                       *int32           `json:"size,omitempty"`
	StatusSummary              map[string]int32 `json:"statusSummary,omitempty"`
	StatusSummaryLastUpdatedAt *int64           `json:"statusSummaryLastUpdatedAt,omitempty"`
}

type attemptContainerDetail struct {
	ExitCode      *int32  `json:"exitCode,omitempty"`
	Reason        *string `json:"reason,omitempty"`
	LogStreamName *string `json:"logStreamName,omitempty"`
	TaskArn       *string `json:"taskArn,omitempty"`
}

type attemptDetail struct {
	Container    *attemptContainerDetail `json:"container,omitempty"`
	StartedAt    *int64                  `json:"startedAt,omitempty"`
	StoppedAt    *int64                  `json:"stoppedAt,omitempty"`
	StatusReason *string                 `json:"statusReason,omitempty"`
}

type containerDetail struct {
	Command              []string              `json:"command,omitempty"`
	Environment          []KeyValuePair        `json:"environment,omitempty"`
	ResourceRequirements []resourceRequirement `json:"resourceRequirements,omitempty"`
	ExitCode             *int32                `json:"exitCode,omitempty"`
	Reason               *string               `json:"reason,omitempty"`
	LogStreamName        *string               `json:"logStreamName,omitempty"`
	TaskArn              *string               `json:"taskArn,omitempty"`
}

type jobDetail struct {
	JobArn          string                 `json:"jobArn"`
	JobID           string                 `json:"jobId"`
	JobName         string                 `json:"jobName"`
	JobQueue        string                 `json:"jobQueue"`
	JobDefinition   string                 `json:"jobDefinition"`
	Status          string                 `json:"status"`
	StatusReason    *string                `json:"statusReason,omitempty"`
	CreatedAt       *int64                 `json:"createdAt,omitempty"`
	StartedAt       *int64                 `json:"startedAt,omitempty"`
	StoppedAt       *int64                 `json:"stoppedAt,omitempty"`
	ArrayProperties *arrayPropertiesDetail `json:"arrayProperties,omitempty"`
	Attempts        []attemptDetail        `json:"attempts"`
	Container       *containerDetail       `json:"container,omitempty"`
	IsCancelled     *bool                  `json:"isCancelled,omitempty"`
	IsTerminated    *bool                  `json:"isTerminated,omitempty"`
	Parameters      map[string]string      `json:"parameters,omitempty"`
	RetryStrategy   *RetryStrategy         `json:"retryStrategy,omitempty"`
	Tags            map[string]string      `json:"tags,omitempty"`
	Timeout         *JobTimeout            `json:"timeout,omitempty"`
	PropagateTags   *bool                  `json:"propagateTags,omitempty"`
	ShareIdentifier *string                `json:"shareIdentifier,omitempty"`
	// SchedulingPriority is the job's scheduling priority.
	SchedulingPriority *int32 `json:"schedulingPriority,omitempty"`
}

type listJobsFilter struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

type listJobsInput struct {
	ArrayJobID     *string          `json:"arrayJobId"`
	JobQueue       *string          `json:"jobQueue"`
	MultiNodeJobID *string          `json:"multiNodeJobId"`
	JobStatus      *string          `json:"jobStatus"`
	Filters        []listJobsFilter `json:"filters"`
	MaxResults     *int32           `json:"maxResults"`
	NextToken      *string          `json:"nextToken"`
}

type containerSummary struct {
	ExitCode *int32  `json:"exitCode,omitempty"`
	Reason   *string `json:"reason,omitempty"`
}

type jobSummary struct {
	JobArn          string                 `json:"jobArn"`
	JobID           string                 `json:"jobId"`
	JobName         string                 `json:"jobName"`
	JobDefinition   string                 `json:"jobDefinition"`
	Status          string                 `json:"status"`
	StatusReason    *string                `json:"statusReason,omitempty"`
	CreatedAt       *int64                 `json:"createdAt,omitempty"`
	StartedAt       *int64                 `json:"startedAt,omitempty"`
	StoppedAt       *int64                 `json:"stoppedAt,omitempty"`
	ArrayProperties *arrayPropertiesDetail `json:"arrayProperties,omitempty"`
	Container       *containerSummary      `json:"container,omitempty"`
}

type listJobsOutput struct {
	JobSummaryList []jobSummary `json:"jobSummaryList"`
	NextToken      *string      `json:"nextToken,omitempty"`
}

type stopJobInput struct {
	JobID  *string `json:"jobId"`
	Reason *string `json:"reason"`
}

type registerJobDefinitionInput struct {
	JobDefinitionName   *string           `json:"jobDefinitionName"`
	Type                *string           `json:"type"`
	ContainerProperties *containerProps   `json:"containerProperties"`
	Parameters          map[string]string `json:"parameters"`
	RetryStrategy       *RetryStrategy    `json:"retryStrategy"`
	Timeout             *JobTimeout       `json:"timeout"`
	Tags                map[string]string `json:"tags"`
	PropagateTags       *bool             `json:"propagateTags"`
}

type containerProps struct {
	Command              []string              `json:"command"`
	Environment          []KeyValuePair        `json:"environment"`
	ResourceRequirements []resourceRequirement `json:"resourceRequirements"`
	Image                *string               `json:"image"`
}

type registerJobDefinitionOutput struct {
	JobDefinitionArn  string `json:"jobDefinitionArn"`
	JobDefinitionName string `json:"jobDefinitionName"`
	Revision          int32  `json:"revision"`
}

type errorBody struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}
