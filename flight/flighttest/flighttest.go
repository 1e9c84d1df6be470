// Package flighttest runs a real flightbatch Flight server in-process for
// tests: built by package server with the built-in analyses and the local
// executor, on 127.0.0.1:0.
package flighttest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/server"
	"github.com/flightbatch/flightbatch/store"
)

// MaxRecvBytes is the gRPC receive limit of the server.
const MaxRecvBytes = flight.MaxMessageBytes

// Server is a running test server.
type Server struct {
	// Addr is the host:port the server listens on.
	Addr string
	// Store is the server's store.
	Store *store.Store
	// Catalog is the server's dataset catalog.
	Catalog *dataset.Catalog
	// Jobs is the server's job manager.
	Jobs *batch.Manager
	// Client is an arrow-go Flight client connected to the server.
	Client aflight.Client
}

// Start serves the datasets and jobs of st until the test ends; opts may be nil.
// The store is not closed: it belongs to the caller.
func Start(t testing.TB, st *store.Store, opts *flight.Options) *Server {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.Default()
	}
	o := flight.Options{}
	if opts != nil {
		o = *opts
	}
	srv, err := server.Start(ctx, server.Config{
		Store: st, Functions: analysis.Builtins(), Workers: 2, Log: log,
		Jobs: batch.Options{Version: "test"}, Flight: o,
	}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr
	client, err := aflight.NewClientWithMiddleware(addr, nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(MaxRecvBytes)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		srv.Shutdown(10 * time.Second)
	})
	return &Server{Addr: addr, Store: st, Catalog: srv.Catalog, Jobs: srv.Jobs, Client: client}
}
