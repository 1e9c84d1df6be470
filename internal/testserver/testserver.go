// Package testserver starts a complete flightbatch server in the test's process,
// on 127.0.0.1:0, built by package server as `flightbatch serve` builds one,
// with the built-in analyses, the local executor and a small demo dataset.
package testserver

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/server"
	"github.com/flightbatch/flightbatch/store"
)

// Options shape a test server; the zero value is a 4-shard demo on mem://.
type Options struct {
	// Store is the store URL (default a fresh mem://).
	Store string
	// Shards and Records size the demo dataset (defaults 4 and 64); records are
	// Seconds long (default 4) at 250 Hz.
	Shards, Records int
	Seconds         float64
	// NoDemo skips creating the demo dataset (it is created only if absent).
	NoDemo bool
	// Workers bounds the children that run at once (default 4).
	Workers int
	// MaxAttempts is the attempts per child (default 3).
	MaxAttempts int
	// Fault is the worker's fault hook.
	Fault func(ctx context.Context, jobID, shard string, attempt int) error
	// PollHold is the server's long-poll hold (default 2 s).
	PollHold time.Duration
	// MaxJobWaiters bounds the job-wait calls held at once (default the
	// server's).
	MaxJobWaiters int
	// Alloc is the Flight service's allocator (default memory.DefaultAllocator).
	Alloc memory.Allocator
	// Auth turns bearer-token authentication on (default off).
	Auth *flight.Auth
	// TLS makes the server speak TLS only (default plaintext).
	TLS *tls.Config
	// ClientCerts turns on mutual TLS (with TLS).
	ClientCerts flight.ClientVerifier
}

// Server is a running test server.
type Server struct {
	// Addr is host:port of the Flight service.
	Addr    string
	Store   *store.Store
	Catalog *dataset.Catalog
	Jobs    *batch.Manager
	Flight  *flight.Server

	srv *server.Server
}

// Start starts a server and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	ctx := context.Background()
	if o.Store == "" {
		o.Store = "mem://"
	}
	if o.Shards == 0 {
		o.Shards = 4
	}
	if o.Records == 0 {
		o.Records = 64
	}
	if o.Seconds == 0 {
		o.Seconds = 4
	}
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.PollHold == 0 {
		o.PollHold = 2 * time.Second
	}
	st, err := store.Open(ctx, o.Store)
	if err != nil {
		t.Fatal(err)
	}
	cat := dataset.NewCatalog(st)
	if !o.NoDemo {
		if _, err := cat.Get(ctx, "demo"); err != nil {
			n := int64(250 * o.Seconds)
			err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: o.Shards, Bytes: int64(o.Records) * 4 * n, Seconds: o.Seconds})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	srv, err := server.Start(ctx, server.Config{
		Store: st, Functions: analysis.Builtins(), Workers: o.Workers, Fault: o.Fault, Alloc: o.Alloc,
		Jobs:   batch.Options{MaxAttempts: o.MaxAttempts, Version: "test"},
		Flight: flight.Options{PollHold: o.PollHold, MaxJobWaiters: o.MaxJobWaiters, Auth: o.Auth, TLS: o.TLS, ClientCerts: o.ClientCerts, HealthEvery: 200 * time.Millisecond},
	}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: srv.Addr, Store: st, Catalog: srv.Catalog, Jobs: srv.Jobs, Flight: srv.Flight, srv: srv}
	t.Cleanup(s.Stop)
	return s
}

// Stop cancels the jobs still running, waits a little for them to end, and
// stops the server; it is safe to call more than once.
func (s *Server) Stop() {
	if s.srv == nil {
		return
	}
	ctx := context.Background()
	for _, m := range s.Jobs.List("") {
		if !m.State.Terminal() {
			_, _ = s.Jobs.Cancel(ctx, m.JobID)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, m := range s.Jobs.List("") {
		for !m.State.Terminal() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			m, _ = s.Jobs.Status(m.JobID)
		}
	}
	s.srv.Shutdown(10 * time.Second)
	s.srv = nil
}

// Crash stops the server as a killed process would: the manager stops
// following its jobs first, so their manifests stay as they were, and then
// the children stop. Another server on the same store takes the jobs up.
func (s *Server) Crash() {
	if s.srv == nil {
		return
	}
	s.Jobs.Close()
	for _, m := range s.Jobs.List("") {
		if m.Handle != "" {
			_ = s.srv.Executor.Cancel(context.Background(), m.Handle)
		}
	}
	s.srv.StopServing(10 * time.Second)
	s.srv = nil
}
