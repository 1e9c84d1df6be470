package main

import (
	"fmt"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
)

// functionsFlagHelp is the help of --functions, on serve and worker alike: a
// worker must know the functions of the server that started its job.
const functionsFlagHelp = `JSON file registering functions jobs can run: {"name": {"command": ["program", "arg"], "description": "...", "image": "..."}}; relative paths resolve against its directory ($FLIGHTBATCH_FUNCTIONS if set)`

// newRegistry returns the built-in analyses (package analysis) plus the
// functions of the functions file at path, if any.
func newRegistry(path string) (*batch.Registry, error) {
	fns := analysis.Builtins()
	if path == "" {
		return fns, nil
	}
	ext, err := batch.ReadFunctionsFile(path)
	if err != nil {
		return nil, err
	}
	for _, f := range ext {
		if err := fns.Register(f); err != nil {
			return nil, fmt.Errorf("functions file %s: %w", path, err)
		}
	}
	return fns, nil
}
