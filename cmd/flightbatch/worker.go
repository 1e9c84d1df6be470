package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/store"
)

// worker runs one attempt of one child: the job and store come from flags or
// FLIGHTBATCH_JOB_ID and FLIGHTBATCH_STORE, the shard from --shard or
// AWS_BATCH_JOB_ARRAY_INDEX (absent: 0), the attempt from AWS_BATCH_JOB_ATTEMPT.
// Registered functions come from --functions or FLIGHTBATCH_FUNCTIONS, which must
// register the same functions as the server's file.
func (m *Main) worker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	jobID := fs.String("job", m.Getenv("FLIGHTBATCH_JOB_ID"), "job ID (default $FLIGHTBATCH_JOB_ID)")
	storeURL := fs.String("store", m.Getenv("FLIGHTBATCH_STORE"), "store URL (default $FLIGHTBATCH_STORE)")
	shard := fs.Int("shard", -1, "shard index (default $AWS_BATCH_JOB_ARRAY_INDEX, or 0)")
	logLevel := fs.String("log-level", "info", "log level")
	functions := fs.String("functions", m.Getenv("FLIGHTBATCH_FUNCTIONS"), functionsFlagHelp)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel, os.Stderr)
	if err != nil {
		return err
	}
	if *jobID == "" || *storeURL == "" {
		return errors.New("worker: give the job (--job or FLIGHTBATCH_JOB_ID) and the store (--store or FLIGHTBATCH_STORE)")
	}
	if *shard < 0 {
		*shard = 0
		if v := m.Getenv("AWS_BATCH_JOB_ARRAY_INDEX"); v != "" {
			if *shard, err = strconv.Atoi(v); err != nil {
				return fmt.Errorf("worker: AWS_BATCH_JOB_ARRAY_INDEX=%q is not a number", v)
			}
		}
	}
	attempt := 1
	if v := m.Getenv("AWS_BATCH_JOB_ATTEMPT"); v != "" {
		if attempt, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("worker: AWS_BATCH_JOB_ATTEMPT=%q is not a number", v)
		}
	}
	fns, err := newRegistry(*functions)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer st.Close()
	w := &batch.Worker{Store: st, Functions: fns, Log: log.With(slog.String("component", "worker")), Fault: faultFromEnv(m.Getenv)}
	return w.RunShard(ctx, *jobID, *shard, attempt)
}
