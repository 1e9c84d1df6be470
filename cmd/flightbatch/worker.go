package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/store"
)

// worker runs one attempt of one child: the job and store come from flags or
// FLIGHTBATCH_JOB_ID and FLIGHTBATCH_STORE, the shard from --shard or
// AWS_BATCH_JOB_ARRAY_INDEX (absent: 0), the attempt from AWS_BATCH_JOB_ATTEMPT.
// When FLIGHTBATCH_SHARDS lists shards (see batch.ParseShardList; "@KEY" reads
// the list from that store key), the array index picks this child's part of
// the list (batch.ChildShards, with AWS_BATCH_JOB_ARRAY_SIZE children) and the
// child runs each of those shards. A job or shard that does not exist exits
// with status 3, which the AWS Batch executor's retry strategy does not retry.
// Registered functions come from --functions or FLIGHTBATCH_FUNCTIONS, which must
// register the same functions as the server's file.
func (m *Main) worker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	jobID := fs.String("job", m.Getenv("FLIGHTBATCH_JOB_ID"), "job ID ($FLIGHTBATCH_JOB_ID if set)")
	storeURL := fs.String("store", m.Getenv("FLIGHTBATCH_STORE"), "store URL ($FLIGHTBATCH_STORE if set)")
	var shardFlag *int
	fs.Var(optionalInt{&shardFlag}, "shard", "shard `index` (default: from $FLIGHTBATCH_SHARDS and $AWS_BATCH_JOB_ARRAY_INDEX, or $AWS_BATCH_JOB_ARRAY_INDEX, or 0)")
	logLevel := fs.String("log-level", "info", "log level")
	functions := fs.String("functions", m.Getenv("FLIGHTBATCH_FUNCTIONS"), functionsFlagHelp)
	if err := fs.Parse(args); err != nil {
		return err
	}
	shard := &[]int{-1}[0]
	if shardFlag != nil {
		shard = shardFlag
	}
	log, err := newLogger(*logLevel, os.Stderr)
	if err != nil {
		return err
	}
	if *jobID == "" || *storeURL == "" {
		return errors.New("worker: give the job (--job or FLIGHTBATCH_JOB_ID) and the store (--store or FLIGHTBATCH_STORE)")
	}
	index, size := 0, 1
	if v := m.Getenv("AWS_BATCH_JOB_ARRAY_INDEX"); v != "" {
		if index, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("worker: AWS_BATCH_JOB_ARRAY_INDEX=%q is not a number", v)
		}
	}
	if v := m.Getenv("AWS_BATCH_JOB_ARRAY_SIZE"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < 1 {
			return fmt.Errorf("worker: AWS_BATCH_JOB_ARRAY_SIZE=%q is not a positive number", v)
		}
	}
	list := m.Getenv("FLIGHTBATCH_SHARDS")
	if *shard < 0 && list == "" {
		*shard = index
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
	fault, err := batch.ParseFaults(m.Getenv("FLIGHTBATCH_FAULTS"))
	if err != nil {
		return fmt.Errorf("FLIGHTBATCH_FAULTS: %w", err)
	}
	w := &batch.Worker{Store: st, Functions: fns, Log: log.With(slog.String("component", "worker")), Fault: fault}
	if *shard >= 0 {
		return permanent(w.RunShard(ctx, *jobID, *shard, attempt))
	}
	shards, err := childShards(ctx, st, list, index, size)
	if err != nil {
		return exitError{code: 3, err: err}
	}
	log.Info("child shards", "job", *jobID, "index", index, "children", size, "shards", batch.FormatShardList(shards))
	return permanent(w.RunShards(ctx, *jobID, shards, attempt))
}

// childShards reads FLIGHTBATCH_SHARDS (inline, or "@KEY" in the store) and
// returns child index's part of it.
func childShards(ctx context.Context, st *store.Store, list string, index, size int) ([]int, error) {
	if key, ok := strings.CutPrefix(list, "@"); ok {
		data, err := st.ReadAll(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("worker: FLIGHTBATCH_SHARDS: %w", err)
		}
		list = string(data)
	}
	all, err := batch.ParseShardList(list)
	if err != nil {
		return nil, fmt.Errorf("worker: FLIGHTBATCH_SHARDS: %w", err)
	}
	shards := batch.ChildShards(all, index, size)
	if len(shards) == 0 {
		return nil, fmt.Errorf("worker: child %d of %d has no shard in FLIGHTBATCH_SHARDS (%d shards)", index, size, len(all))
	}
	return shards, nil
}

// exitError makes the command exit with a given status.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// ExitCode is the process's exit status.
func (e exitError) ExitCode() int { return e.code }

// permanent marks an error that retrying cannot cure (the job or shard does
// not exist) with exit status 3.
func permanent(err error) error {
	if err != nil && errors.Is(err, batch.ErrNotFound) {
		return exitError{code: 3, err: err}
	}
	return err
}
