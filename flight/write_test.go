package flight_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/store"
)

// writeSizes is a listener whose connections record the largest write.
type writeSizes struct {
	net.Listener
	mu      sync.Mutex
	largest int
}

func (l *writeSizes) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sizedConn{Conn: c, l: l}, nil
}

func (l *writeSizes) max() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.largest
}

type sizedConn struct {
	net.Conn
	l *writeSizes
}

func (c *sizedConn) Write(b []byte) (int, error) {
	c.l.mu.Lock()
	c.l.largest = max(c.l.largest, len(b))
	c.l.mu.Unlock()
	return c.Conn.Write(b)
}

// TestDoGetWritesLargeChunks: a DoGet whose client's flow-control window
// allows it goes to the socket in writes larger than gRPC's default write
// buffer (32 KiB, a write system call for every two 16 KiB frames).
func TestDoGetWritesLargeChunks(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var file bytes.Buffer
	w, err := ipc.NewFileWriter(&file, ipc.WithSchema(dataset.DemoSchema))
	if err != nil {
		t.Fatal(err)
	}
	for first := 0; first < 32; first += 8 {
		b := lfpBatch(memory.DefaultAllocator, first, 8, 32000) // 1 MB batches
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteAll(ctx, "datasets/big/part-00000.arrow", file.Bytes()); err != nil {
		t.Fatal(err)
	}

	gs := flight.NewServer(dataset.NewCatalog(st), nil, &flight.Options{Log: slog.New(slog.DiscardHandler)}).GRPCServer()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sizes := &writeSizes{Listener: lis}
	gs.InitListener(sizes)
	go func() { _ = gs.Serve() }()
	t.Cleanup(gs.Shutdown)
	c, err := aflight.NewClientWithMiddleware(lis.Addr().String(), nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(16<<20), grpc.WithInitialConnWindowSize(16<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	stream, err := c.DoGet(context.Background(), &aflight.Ticket{Ticket: []byte("datasets/big")})
	if err != nil {
		t.Fatal(err)
	}
	r, err := aflight.NewRecordReader(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var rows int64
	for r.Next() {
		rows += r.RecordBatch().NumRows()
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if rows != 32 {
		t.Fatalf("%d rows, want 32", rows)
	}
	if got := sizes.max(); got <= 32<<10 {
		t.Errorf("largest write to the socket %d bytes, want more than 32 KiB", got)
	}
}
