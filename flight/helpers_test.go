package flight_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flightbatch/flightbatch/pkg/api"
)

// dial connects an arrow-go Flight client to addr.
func dial(t *testing.T, addr string) aflight.Client {
	t.Helper()
	c, err := aflight.NewClientWithMiddleware(addr, nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// action runs a DoAction and decodes its one JSON result into out.
func action(ctx context.Context, c aflight.Client, typ string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	stream, err := c.DoAction(ctx, &aflight.Action{Type: typ, Body: b})
	if err != nil {
		return err
	}
	res, err := stream.Recv()
	if err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(res.Body, out)
}

func mustAction(t *testing.T, c aflight.Client, typ string, body any, out any) {
	t.Helper()
	if err := action(context.Background(), c, typ, body, out); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
}

func jobStatus(t *testing.T, c aflight.Client, id string) api.JobStatus {
	t.Helper()
	var st api.JobStatus
	mustAction(t, c, api.ActionJobStatus, api.JobRef{JobID: id}, &st)
	return st
}

// waitState polls job-status until the job is terminal or the timeout passes.
func waitState(t *testing.T, c aflight.Client, id string, timeout time.Duration) api.JobStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := jobStatus(t, c, id)
		switch st.State {
		case "SUCCEEDED", "FAILED", "CANCELLED":
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %s", id, st.State, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readAll streams a ticket and returns its row count and the values of one
// string column, in order.
func readAll(t *testing.T, c aflight.Client, mem memory.Allocator, ticket string, column string) (int64, []string, error) {
	t.Helper()
	stream, err := c.DoGet(context.Background(), &aflight.Ticket{Ticket: []byte(ticket)})
	if err != nil {
		return 0, nil, err
	}
	r, err := aflight.NewRecordReader(stream, ipcAlloc(mem))
	if err != nil {
		return 0, nil, err
	}
	defer r.Release()
	var n int64
	var vals []string
	for r.Next() {
		rec := r.RecordBatch()
		n += rec.NumRows()
		if column != "" {
			col := rec.Column(rec.Schema().FieldIndices(column)[0]).(*array.String)
			for i := 0; i < col.Len(); i++ {
				vals = append(vals, col.Value(i))
			}
		}
	}
	return n, vals, r.Err()
}

// gate is a fault hook that holds the attempts of chosen shards until opened.
type gate struct {
	mu     sync.Mutex
	shards map[string]chan struct{}
}

func newGate(shards ...string) *gate {
	g := &gate{shards: map[string]chan struct{}{}}
	for _, s := range shards {
		g.shards[s] = make(chan struct{})
	}
	return g
}

func (g *gate) open(shard string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch, ok := g.shards[shard]; ok {
		close(ch)
		delete(g.shards, shard)
	}
}

func (g *gate) fault(ctx context.Context, jobID, shard string, attempt int) error {
	g.mu.Lock()
	ch, ok := g.shards[shard]
	g.mu.Unlock()
	if !ok {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func ipcAlloc(mem memory.Allocator) ipc.Option { return ipc.WithAllocator(mem) }

var errInjected = errors.New("injected fault")
