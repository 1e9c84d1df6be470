// Package analysis registers the built-in analyses: each is a batch.Function
// in its own package (analysis/psd, ...), and this is the one list of them.
// The server's assembly (cmd/flightbatch, and the test servers) calls
// Register; adding an analysis touches its package, this list and its docs.
package analysis

import (
	"github.com/flightbatch/flightbatch/analysis/psd"
	"github.com/flightbatch/flightbatch/batch"
)

// Register adds the built-in analyses to r and makes psd the function of a
// job request that names none (the documented PollFlightInfo command).
func Register(r *batch.Registry) error {
	for _, f := range []batch.Function{psd.Function{}} {
		if err := r.Register(f); err != nil {
			return err
		}
	}
	return r.SetDefault(psd.Function{}.Name())
}

// Builtins returns a registry holding the built-in analyses only.
func Builtins() *batch.Registry {
	r := batch.NewRegistry()
	if err := Register(r); err != nil {
		panic(err) // the built-in list is fixed; a clash is a programming error
	}
	return r
}
