// Package flighttest runs a real flightbatch Flight server in-process for
// tests: a store, the local executor, and a gRPC server on 127.0.0.1:0.
package flighttest

import (
	"context"
	"log/slog"
	"net"
	"testing"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight"
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
	cat := dataset.NewCatalog(st)
	fns := batch.NewRegistry()
	worker := &batch.Worker{Store: st, Functions: fns, Log: log}
	jobs := batch.NewManager(cat, fns, local.New(worker.RunShard, 2), &batch.Options{Version: "test", Log: log})
	if err := jobs.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	o := flight.Options{}
	if opts != nil {
		o = *opts
	}
	if o.Log == nil {
		o.Log = log
	}
	srv := flight.NewServer(cat, jobs, &o)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := aflight.NewServerWithMiddleware(nil, srv.GRPCOptions()...)
	gs.InitListener(lis)
	gs.RegisterFlightService(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve()
	}()
	addr := lis.Addr().String()
	client, err := aflight.NewClientWithMiddleware(addr, nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(MaxRecvBytes)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		gs.Shutdown()
		<-done
		jobs.Close()
	})
	return &Server{Addr: addr, Store: st, Catalog: cat, Jobs: jobs, Client: client}
}
