package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/child"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/internal/mempool"
	"github.com/flightbatch/flightbatch/store"
)

// worker runs one attempt of one child, as the executor–worker contract
// (package child) describes: the job and store come from flags or
// FLIGHTBATCH_JOB_ID and FLIGHTBATCH_STORE; the shards from --shard, or the
// child's part of FLIGHTBATCH_SHARDS, or the shard of the child's array index;
// the index and attempt from the executor's own variables (child.Conventions).
// It exits with child.ExitCode: 3 when no retry can help (a job or shard that
// does not exist). Registered functions come from --functions or
// FLIGHTBATCH_FUNCTIONS, which must register the same functions as the
// server's file.
func (m *Main) worker(ctx context.Context, args []string) error {
	env, envErr := child.ReadEnv(m.Getenv)
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&env.JobID, "job", env.JobID, "job ID ($"+child.EnvJobID+" if set)")
	storeURL := fs.String("store", env.Store, "store URL ($"+child.EnvStore+" if set)")
	var shardFlag *int
	fs.Var(optionalInt{&shardFlag}, "shard", "shard `index` (default: the child's part of $"+child.EnvShards+", or its array index, or 0)")
	fs.IntVar(&env.Attempt, "attempt", env.Attempt, "attempt `number`, from 1 (from the executor's variables if set)")
	memLimit := fs.Int64("memory-limit", 0, "cap this process's private memory at this many bytes (RLIMIT_DATA, inherited by what it starts); 0: no cap")
	logLevel := fs.String("log-level", "info", "log level")
	functions := fs.String("functions", env.Functions, functionsFlagHelp)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this child to `file` (for go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return fmt.Errorf("worker: --cpuprofile: %w", err)
		}
		defer stop()
	}
	if *memLimit > 0 {
		if err := limitMemory(*memLimit); err != nil {
			return fmt.Errorf("worker: --memory-limit: %w", err)
		}
	}
	shard := &[]int{-1}[0]
	if shardFlag != nil {
		shard = shardFlag
	}
	log, err := newLogger(*logLevel, os.Stderr)
	if err != nil {
		return err
	}
	if envErr != nil {
		return exitError{code: child.ExitCode(envErr), err: fmt.Errorf("worker: %w", envErr)}
	}
	if env.JobID == "" || *storeURL == "" {
		return errors.New("worker: give the job (--job or " + child.EnvJobID + ") and the store (--store or " + child.EnvStore + ")")
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
	fault, err := batch.ParseFaults(env.Faults)
	if err != nil {
		return fmt.Errorf("%s: %w", child.EnvFaults, err)
	}
	// Buffers freed by one record batch serve the next, across the shards
	// this process runs: reading, computing and writing a shard then
	// allocates little, and the garbage collector has little to do.
	w := &batch.Worker{
		Store: st, Functions: fns, Log: log.With(slog.String("component", "worker")), Fault: fault,
		Alloc: mempool.New(workerPoolBytes), Blocks: dataset.NewBlockPool(workerPoolBytes),
	}
	if err := child.Run(ctx, w, env, *shard); err != nil {
		return exitError{code: child.ExitCode(err), err: err}
	}
	return nil
}

// startCPUProfile profiles this process's CPU into the file path until stop
// is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// workerPoolBytes bounds the freed buffers a worker keeps for reuse, input
// batches and other buffers each: a few batches.
const workerPoolBytes = 32 << 20

// exitError makes the command exit with a given status.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// ExitCode is the process's exit status.
func (e exitError) ExitCode() int { return e.code }
