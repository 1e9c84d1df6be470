package batchtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
)

// JobDefinition is the part of an AWS Batch job definition this endpoint
// uses: the command and environment of its container properties, default
// parameters, retry strategy and timeout.
type JobDefinition struct {
	// Name is the job definition's name; Revision its revision (1 if zero).
	Name     string
	Revision int32
	// Command is the argv of each attempt; its first element is the program
	// (looked up in PATH when it has no slash). No shell is involved.
	// Arguments of the form Ref::NAME are replaced by the job's parameter NAME.
	Command []string
	// Environment is added to every attempt's environment.
	Environment []KeyValuePair
	// Parameters are defaults for Ref::NAME substitution.
	Parameters map[string]string
	// RetryStrategy and Timeout apply unless SubmitJob overrides them.
	RetryStrategy *RetryStrategy
	Timeout       *JobTimeout
}

// definitionDoc accepts both the flat shape (command and environment at the
// top level) and AWS's RegisterJobDefinition input (command and environment
// under containerProperties).
type definitionDoc struct {
	JobDefinitionName   string            `json:"jobDefinitionName"`
	Revision            int32             `json:"revision"`
	Type                string            `json:"type"`
	ContainerProperties *containerProps   `json:"containerProperties"`
	Command             []string          `json:"command"`
	Environment         []KeyValuePair    `json:"environment"`
	Parameters          map[string]string `json:"parameters"`
	RetryStrategy       *RetryStrategy    `json:"retryStrategy"`
	Timeout             *JobTimeout       `json:"timeout"`
}

var definitionNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// ParseDefinitions reads job definitions from JSON in one of three forms:
//
//   - an object mapping a definition name to its definition,
//     {"name": {"command": [...], "environment": [{"name": ..., "value": ...}],
//     "parameters": {...}, "retryStrategy": {...}, "timeout": {...}}},
//     where command and environment may also sit under "containerProperties";
//   - one AWS RegisterJobDefinition input, {"jobDefinitionName": ...,
//     "type": "container", "containerProperties": {...}, "retryStrategy": ...};
//   - a JSON array of RegisterJobDefinition inputs.
func ParseDefinitions(data []byte) ([]JobDefinition, error) {
	data = bytes.TrimSpace(data)
	var docs []definitionDoc
	switch {
	case len(data) > 0 && data[0] == '[':
		if err := json.Unmarshal(data, &docs); err != nil {
			return nil, fmt.Errorf("batchtest: parse definitions: %w", err)
		}
	default:
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(data, &probe); err != nil {
			return nil, fmt.Errorf("batchtest: parse definitions: %w", err)
		}
		if _, ok := probe["jobDefinitionName"]; ok {
			var d definitionDoc
			if err := json.Unmarshal(data, &d); err != nil {
				return nil, fmt.Errorf("batchtest: parse definitions: %w", err)
			}
			docs = append(docs, d)
			break
		}
		names := make([]string, 0, len(probe))
		for name := range probe {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			var d definitionDoc
			if err := json.Unmarshal(probe[name], &d); err != nil {
				return nil, fmt.Errorf("batchtest: parse definition %q: %w", name, err)
			}
			if d.JobDefinitionName != "" && d.JobDefinitionName != name {
				return nil, fmt.Errorf("batchtest: definition %q has jobDefinitionName %q", name, d.JobDefinitionName)
			}
			d.JobDefinitionName = name
			docs = append(docs, d)
		}
	}
	defs := make([]JobDefinition, 0, len(docs))
	for _, d := range docs {
		def := JobDefinition{
			Name:          d.JobDefinitionName,
			Revision:      d.Revision,
			Command:       d.Command,
			Environment:   d.Environment,
			Parameters:    d.Parameters,
			RetryStrategy: d.RetryStrategy,
			Timeout:       d.Timeout,
		}
		if d.Type != "" && d.Type != "container" {
			return nil, fmt.Errorf("batchtest: definition %q: type %q is not supported, only container", d.JobDefinitionName, d.Type)
		}
		if cp := d.ContainerProperties; cp != nil {
			if len(cp.Command) > 0 {
				def.Command = cp.Command
			}
			def.Environment = append(append([]KeyValuePair(nil), def.Environment...), cp.Environment...)
		}
		defs = append(defs, def)
	}
	return defs, nil
}

// LoadDefinitions reads job definitions from a file; see ParseDefinitions.
func LoadDefinitions(path string) ([]JobDefinition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("batchtest: load definitions: %w", err)
	}
	return ParseDefinitions(data)
}

// validateDefinition checks a definition as RegisterJobDefinition would.
func validateDefinition(d *JobDefinition, minTimeout int32) error {
	if !definitionNameRE.MatchString(d.Name) {
		return fmt.Errorf("job definition name %q must be 1 to 128 letters, numbers, hyphens or underscores, starting with a letter or number", d.Name)
	}
	if d.Revision < 0 {
		return fmt.Errorf("job definition %q: revision must be positive", d.Name)
	}
	if err := validateRetryStrategy(d.RetryStrategy); err != nil {
		return err
	}
	if err := validateTimeout(d.Timeout, minTimeout); err != nil {
		return err
	}
	return validateEnvironment(d.Environment)
}
