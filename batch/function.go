package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/internal/clip"
)

// Function is a computation a job runs over every shard of its input. The
// built-in analyses (package analysis/psd) are functions; so are commands the
// server's operator registers (External). Functions are registered where the
// server is assembled; the job framework knows nothing of any one of them.
type Function interface {
	// Name is the name requests use.
	Name() string
	// Description says in one line what the function computes.
	Description() string
	// Prepare validates params against the input schema before anything runs.
	// It returns the result schema (nil when only the output will tell) and the
	// params as they will be recorded. Errors wrap ErrInvalid.
	Prepare(params json.RawMessage, in *arrow.Schema) (*arrow.Schema, json.RawMessage, error)
	// Run computes one shard's part: it reads in and emits result batches.
	Run(ctx context.Context, task Task, in array.RecordReader, emit func(arrow.RecordBatch) error) error
}

// EffectiveParams is implemented by a Function whose recorded parameters
// (Prepare's) can spell one computation more than one way, such as a default
// given or left out. EffectiveParams returns recorded params as the run
// applies them: every default that does not depend on the data filled in,
// one spelling for each value. It must never make two computations that can
// differ look equal: a default that depends on the data (on a record's
// length, say) stays as given. "reuse" compares effective params as
// written (compact JSON), so the order of an object's keys counts; a function
// without the method is compared by its recorded params, keys sorted.
type EffectiveParams interface {
	EffectiveParams(recorded json.RawMessage) (json.RawMessage, error)
}

// Task is what a function run knows of its place in a job.
type Task struct {
	JobID   string
	Shard   string
	Attempt int
	Params  json.RawMessage
	// Schema is the result schema Prepare returned (may be nil).
	Schema *arrow.Schema
	Alloc  memory.Allocator
}

// Registry holds the functions a server can run.
type Registry struct {
	fns map[string]Function
	def string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{fns: map[string]Function{}}
}

// Register adds a function. A name that is not a function name, or is
// registered already, is an error wrapping ErrInvalid.
func (r *Registry) Register(f Function) error {
	name := f.Name()
	if !ValidFunctionName(name) {
		return invalidf("function name %q must match [a-z0-9][a-z0-9_-]{0,63}", name)
	}
	if _, ok := r.fns[name]; ok {
		return invalidf("function %q is already registered (the names of built-in analyses are reserved)", name)
	}
	r.fns[name] = f
	return nil
}

// SetDefault makes the registered function name the one a job request that
// names no function runs.
func (r *Registry) SetDefault(name string) error {
	if _, ok := r.fns[name]; !ok {
		return fmt.Errorf("default function %q is not registered: %w", name, ErrNotFound)
	}
	r.def = name
	return nil
}

// Default names the function a job request that names none runs; "" when
// there is none.
func (r *Registry) Default() string { return r.def }

// Get finds a function by name. A name not of the form of a function name
// (ValidFunctionName) is an error wrapping ErrInvalid; an unregistered one wraps
// ErrNotFound.
func (r *Registry) Get(name string) (Function, error) {
	if !ValidFunctionName(name) {
		return nil, invalidf("%s is not a function name: names match [a-z0-9][a-z0-9_-]{0,63} (see list-functions)", clip.Quote(name))
	}
	f, ok := r.fns[name]
	if !ok {
		return nil, fmt.Errorf("function %q is not registered: %w", name, ErrNotFound)
	}
	return f, nil
}

// List returns the functions sorted by name.
func (r *Registry) List() []Function {
	out := make([]Function, 0, len(r.fns))
	for _, f := range r.fns {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}
