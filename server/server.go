// Package server assembles a flightbatch server from its parts: a catalog over
// a store, the registered functions, the worker, an executor (the local one
// unless given), the job manager and the Flight service (with the gRPC
// health service, and TLS and authentication as its options say) on a gRPC
// listener.
// `flightbatch serve` and every test server are built here, so there is one
// wiring.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/store"
)

// Config is what a server is built from. Store and Functions are required.
type Config struct {
	// Store holds datasets and jobs; the server does not close it.
	Store *store.Store
	// Functions are the functions jobs can run (analysis.Register adds the
	// built-in ones).
	Functions *batch.Registry
	// Executor runs children; nil runs them in this process, Workers at once.
	Executor batch.Executor
	// Workers bounds the children the local executor runs at once (default 1).
	Workers int
	// Fault is the workers' test-only fault hook (batch.ParseFaults).
	Fault batch.FaultFunc
	// Alloc is the allocator of the workers, the manager and the Flight
	// service (default memory.DefaultAllocator).
	Alloc memory.Allocator
	// Jobs tunes the job manager; its Log and Alloc default to the server's.
	Jobs batch.Options
	// Flight tunes the Flight service; its Log and Alloc default to the server's.
	Flight flight.Options
	// Log receives the server's structured logs (default slog.Default()).
	Log *slog.Logger
}

// Server is a running server.
type Server struct {
	// Addr is the host:port the server listens on.
	Addr     string
	Catalog  *dataset.Catalog
	Jobs     *batch.Manager
	Executor batch.Executor
	// Flight is the Flight service (its health and store checks).
	Flight *flight.Server

	gs         aflight.Server
	done       chan error
	stopHealth context.CancelFunc
}

// Start builds a server from cfg, takes up the jobs found in the store, and
// serves on addr (port 0 picks a free one) until Shutdown.
func Start(ctx context.Context, cfg Config, addr string) (*Server, error) {
	if cfg.Store == nil || cfg.Functions == nil {
		return nil, fmt.Errorf("server: a store and functions are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Alloc == nil {
		cfg.Alloc = memory.DefaultAllocator
	}
	if cfg.Jobs.Log == nil {
		cfg.Jobs.Log = cfg.Log
	}
	if cfg.Jobs.Alloc == nil {
		cfg.Jobs.Alloc = cfg.Alloc
	}
	if cfg.Flight.Log == nil {
		cfg.Flight.Log = cfg.Log
	}
	if cfg.Flight.Alloc == nil {
		cfg.Flight.Alloc = cfg.Alloc
	}
	cat := dataset.NewCatalog(cfg.Store)
	exec := cfg.Executor
	if exec == nil {
		w := &batch.Worker{Store: cfg.Store, Functions: cfg.Functions, Alloc: cfg.Alloc, Log: cfg.Log.With("component", "worker"), Fault: cfg.Fault}
		exec = local.New(w.RunShard, cfg.Workers, nil)
	}
	jobs := batch.NewManager(cat, cfg.Functions, exec, &cfg.Jobs)
	if err := jobs.Recover(ctx); err != nil {
		jobs.Close()
		return nil, err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		jobs.Close()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := flight.NewServer(cat, jobs, &cfg.Flight)
	gs := srv.GRPCServer()
	gs.InitListener(lis)
	hctx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{Addr: lis.Addr().String(), Catalog: cat, Jobs: jobs, Executor: exec, Flight: srv, gs: gs, done: make(chan error, 1), stopHealth: stopHealth}
	go srv.WatchHealth(hctx)
	go func() { s.done <- gs.Serve() }()
	return s, nil
}

// Done delivers the error that ended serving (nil after Shutdown).
func (s *Server) Done() <-chan error { return s.done }

// StopServing stops the gRPC server, waiting up to grace for open streams;
// it reports whether they ended in time. Jobs keep being followed until
// Shutdown.
func (s *Server) StopServing(grace time.Duration) bool {
	s.stopHealth()
	s.Flight.StopWaiting()
	stopped := make(chan struct{})
	go func() { s.gs.Shutdown(); close(stopped) }()
	select {
	case <-stopped:
		return true
	case <-time.After(grace):
		return false
	}
}

// Shutdown stops serving (see StopServing), then stops following jobs; it
// does not cancel them, so a server restarted on the same store takes them up.
func (s *Server) Shutdown(grace time.Duration) bool {
	ok := s.StopServing(grace)
	s.Jobs.Close()
	return ok
}
