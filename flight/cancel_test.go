//go:build linux

package flight_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight/flighttest"
)

// TestDoGetEndedByTheClientLeavesNothing streams a dataset of mapped blocks
// to a client with gRPC's smallest windows, which reads one batch and then
// ends the call while the server waits to write the rest: by cancelling
// it, or by closing its connection. The server's goroutines for the call
// (the handler, gRPC's writer blocked on a full socket) all end, and the
// server streams the dataset whole afterwards.
func TestDoGetEndedByTheClientLeavesNothing(t *testing.T) {
	st, _ := mappingStore(t)
	srv := flighttest.Start(t, st, nil)
	mem := memory.DefaultAllocator
	var batches []arrow.RecordBatch
	for i := range 12 {
		b := lfpBatch(mem, i*25, 25, 2500) // 250 KB each
		defer b.Release()
		batches = append(batches, b)
	}
	if _, err := put(t.Context(), srv.Client, "big", dataset.DemoSchema, batches...); err != nil {
		t.Fatal(err)
	}
	dialSlow := func() aflight.Client {
		c, err := aflight.NewClientWithMiddleware(srv.Addr, nil, nil,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// readAllRows streams the dataset whole.
	readAllRows := func(c aflight.Client) int64 {
		s, err := c.DoGet(t.Context(), &aflight.Ticket{Ticket: []byte("datasets/big")})
		if err != nil {
			t.Fatal(err)
		}
		r, err := aflight.NewRecordReader(s)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Release()
		var n int64
		for r.Next() {
			n += r.RecordBatch().NumRows()
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const rows = 12 * 25
	tests := []struct {
		name string
		// closes is set when the client's connection goes too: the
		// goroutines counted before the call are those before it dialled.
		closes bool
		end    func(cancel context.CancelFunc, c aflight.Client)
	}{
		{"the call is cancelled", false, func(cancel context.CancelFunc, _ aflight.Client) { cancel() }},
		{"the connection is closed", true, func(_ context.CancelFunc, c aflight.Client) { c.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := readAllRows(srv.Client); n != rows {
				t.Fatalf("%d rows, want %d", n, rows)
			}
			before, loopy := runtime.NumGoroutine(), goroutinesIn("loopyWriter).run")
			c := dialSlow()
			defer c.Close()
			if !tt.closes {
				if n := readAllRows(c); n != rows {
					t.Fatalf("%d rows, want %d", n, rows)
				}
				before, loopy = runtime.NumGoroutine(), goroutinesIn("loopyWriter).run")
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			s, err := c.DoGet(ctx, &aflight.Ticket{Ticket: []byte("datasets/big")})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the schema and a first batch
				if _, err := s.Recv(); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(100 * time.Millisecond) // the server fills the window and waits
			tt.end(cancel, c)
			// Every goroutine the call and its connection started ends: a
			// leak fails after the generous wait.
			deadline := time.Now().Add(30 * time.Second)
			for runtime.NumGoroutine() > before || goroutinesIn("flight.(*Server).DoGet") > 0 || goroutinesIn("loopyWriter).run") > loopy {
				if time.Now().After(deadline) {
					t.Fatalf("%d goroutines, %d before the call; of them in a DoGet %d, in gRPC's writer %d (%d before):\n%s",
						runtime.NumGoroutine(), before, goroutinesIn("flight.(*Server).DoGet"), goroutinesIn("loopyWriter).run"), loopy, allStacks())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if n := readAllRows(srv.Client); n != rows {
				t.Fatalf("after the call ended: %d rows, want %d", n, rows)
			}
		})
	}
}

// allStacks returns the stacks of every goroutine.
func allStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// goroutinesIn counts the goroutines with fn in their stacks.
func goroutinesIn(fn string) int {
	n := 0
	for _, g := range strings.Split(allStacks(), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}
