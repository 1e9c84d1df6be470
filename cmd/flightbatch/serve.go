package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/server"
	"github.com/flightbatch/flightbatch/store"
)

// ServeConfig is the configuration of `flightbatch serve`, filled by flags.
type ServeConfig struct {
	Addr        string
	Store       string
	Executor    string
	Workers     int
	MaxAttempts int
	Compression string
	LogLevel    string
	Demo        bool
	DemoShards  int
	DemoMB      int
	Batch       AWSBatchConfig
	Slurm       SlurmConfig
	Functions   string
	// ShardMB is the target shard size of uploaded datasets, in MiB.
	ShardMB int
	// AuthTokens is a token file; empty leaves authentication off.
	AuthTokens string
	// KeepResults deletes jobs that ended longer ago than this; 0 keeps them.
	KeepResults time.Duration
}

func (c *ServeConfig) flags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8815", "address to serve Flight on (port 0 picks a free one)")
	fs.StringVar(&c.Store, "store", "file://./flightbatch-data", "store for datasets and results: file://DIR or s3://bucket/prefix")
	fs.StringVar(&c.Executor, "executor", "local", "where child jobs run: local, aws-batch (see the --batch-* flags) or slurm (see the --slurm-* flags)")
	fs.IntVar(&c.Workers, "workers", runtime.NumCPU(), "children run at once by the local executor")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 3, "attempts per child before its shard fails")
	fs.StringVar(&c.Compression, "compression", "", "IPC compression of DoGet streams: zstd, lz4 or empty for none")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&c.Demo, "demo", false, "create the demo dataset first if it is absent")
	fs.IntVar(&c.DemoShards, "demo-shards", 8, "shards of the demo dataset")
	fs.IntVar(&c.DemoMB, "demo-mb", 60, "approximate size of the demo dataset in MB")
	fs.StringVar(&c.Functions, "functions", getenv("FLIGHTBATCH_FUNCTIONS"), functionsFlagHelp)
	fs.IntVar(&c.ShardMB, "shard-mb", dataset.DefaultShardBytes>>20, "target size in MiB of the shards of a dataset uploaded with DoPut")
	fs.StringVar(&c.AuthTokens, "auth-tokens", getenv("FLIGHTBATCH_AUTH_TOKENS"), authTokensFlagHelp)
	fs.DurationVar(&c.KeepResults, "keep-results", 0, "delete jobs (manifest, parts, everything) that ended longer ago than this `duration`, e.g. 720h; never the input of a running job (0 keeps every job)")
}

func newLogger(level string, w *os.File) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func (m *Main) serve(ctx context.Context, args []string) error {
	var cfg ServeConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	cfg.flags(fs, m.Getenv)
	cfg.Batch.flags(fs, m.Getenv)
	cfg.Slurm.flags(fs, m.Getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, os.Stderr)
	if err != nil {
		return err
	}
	if cfg.KeepResults < 0 {
		return fmt.Errorf("--keep-results %s: give a positive duration, or 0 to keep every job", cfg.KeepResults)
	}
	if cfg.ShardMB < 1 {
		return fmt.Errorf("--shard-mb %d: give a size of at least 1 MiB", cfg.ShardMB)
	}
	switch cfg.Compression {
	case "", "zstd", "lz4":
	default:
		return fmt.Errorf("--compression %q: use zstd, lz4 or nothing", cfg.Compression)
	}
	var auth *flight.Auth
	if cfg.AuthTokens != "" {
		if auth, err = flight.LoadAuth(cfg.AuthTokens); err != nil {
			return fmt.Errorf("--auth-tokens: %w", err)
		}
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	cat := dataset.NewCatalog(st)
	if cfg.Demo {
		if err := ensureDemo(ctx, cat, cfg.DemoShards, cfg.DemoMB, log); err != nil {
			return err
		}
	}
	fns, err := newRegistry(cfg.Functions)
	if err != nil {
		return err
	}
	fault, err := batch.ParseFaults(m.Getenv("FLIGHTBATCH_FAULTS"))
	if err != nil {
		return fmt.Errorf("FLIGHTBATCH_FAULTS: %w", err)
	}
	cfgSrv := server.Config{
		Store: st, Functions: fns, Workers: cfg.Workers, Fault: fault, Log: log,
		Jobs:   batch.Options{MaxAttempts: cfg.MaxAttempts, Version: version},
		Flight: flight.Options{Compression: cfg.Compression, ShardBytes: int64(cfg.ShardMB) << 20, UploadParallelism: cfg.Workers, Auth: auth},
	}
	switch cfg.Executor {
	case "local":
	case "aws-batch":
		if cfgSrv.Executor, err = newAWSBatch(ctx, &cfg.Batch, st, fns, cfg.MaxAttempts, log); err != nil {
			return err
		}
	case "slurm":
		if cfgSrv.Executor, err = newSlurm(&cfg.Slurm, st, cfg.Functions, log); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--executor %q: use local, aws-batch or slurm", cfg.Executor)
	}
	srv, err := server.Start(ctx, cfgSrv, cfg.Addr)
	if err != nil {
		return err
	}
	if cfg.KeepResults > 0 {
		srv.Jobs.KeepResults(cfg.KeepResults, min(max(cfg.KeepResults/10, time.Second), time.Hour))
	}
	log.Info("serving", "addr", srv.Addr, "store", st.URL(), "executor", srv.Executor.Name(), "workers", cfg.Workers, "version", version, "auth", auth != nil)
	fmt.Fprintf(m.Stdout, "flightbatch listening on grpc://%s\n", srv.Addr)
	select {
	case err := <-srv.Done():
		srv.Jobs.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	if !srv.Shutdown(10 * time.Second) {
		log.Warn("streams still open after 10s; stopping anyway")
	}
	return nil
}

func ensureDemo(ctx context.Context, cat *dataset.Catalog, shards, mb int, log *slog.Logger) error {
	if _, err := cat.Get(ctx, "demo"); err == nil {
		return nil
	} else if !errors.Is(err, dataset.ErrNotFound) {
		return err
	}
	start := time.Now()
	if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: shards, Bytes: int64(mb) << 20}); err != nil {
		return fmt.Errorf("create demo dataset: %w", err)
	}
	log.Info("demo dataset created", "shards", shards, "mb", mb, "seconds", time.Since(start).Seconds())
	return nil
}
