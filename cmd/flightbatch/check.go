package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/flightbatch/flightbatch/check"
	"github.com/flightbatch/flightbatch/store"
)

// check reports the damage in a store, and repairs it with --repair. It exits
// with status 1 if problems remain.
func (m *Main) check(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	storeURL := fs.String("store", m.Getenv("FLIGHTBATCH_STORE"), "the store to check: file://DIR or s3://bucket/prefix (default $FLIGHTBATCH_STORE)")
	repair := fs.Bool("repair", false, "repair what can be repaired: rebuild damaged manifests and dataset indexes, delete orphans and stale temporary files")
	tempAge := fs.Duration("temp-age", check.DefaultTempAge, "age past which a temporary file is stale")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *storeURL == "" {
		return errors.New("check: give the store with --store")
	}
	st, err := store.Open(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := check.Run(ctx, st, check.Options{Repair: *repair, TempAge: *tempAge})
	if err != nil {
		return fmt.Errorf("check %s: %w", st.URL(), err)
	}
	for _, p := range r.Problems {
		fmt.Fprintln(m.Stdout, p)
	}
	fmt.Fprintln(m.Stdout, r.Summary())
	if n := r.Unrepaired(); n > 0 {
		hint := ""
		if !*repair {
			hint = "; run again with --repair"
		}
		return exitError{code: 1, err: fmt.Errorf("%d problem(s) left%s", n, hint)}
	}
	return nil
}
