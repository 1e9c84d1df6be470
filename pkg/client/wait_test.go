package client_test

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"testing"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"

	"github.com/flightbatch/flightbatch/pkg/api"
	"github.com/flightbatch/flightbatch/pkg/client"
)

// scriptedPoll answers PollFlightInfo with a fixed sequence of job statuses,
// one per call; the last has no next descriptor.
type scriptedPoll struct {
	aflight.BaseFlightServer
	mu    sync.Mutex
	steps []api.JobStatus
}

func (s *scriptedPoll) PollFlightInfo(ctx context.Context, d *aflight.FlightDescriptor) (*aflight.PollInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.steps[0]
	if len(s.steps) > 1 {
		s.steps = s.steps[1:]
	}
	meta, _ := json.Marshal(st)
	pi := &aflight.PollInfo{Info: &aflight.FlightInfo{AppMetadata: meta}}
	if st.State != "SUCCEEDED" {
		pi.FlightDescriptor = &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", st.JobID, "poll", "x"}}
	}
	return pi, nil
}

// TestWaitReportsFullProgressOnce: a job seen RUNNING with every shard done,
// and then SUCCEEDED, makes one progress call at 100%, with the final status.
func TestWaitReportsFullProgressOnce(t *testing.T) {
	const id = "20261124T184501123Z-9f2c1a"
	step := func(state string, done int, extra string) api.JobStatus {
		return api.JobStatus{JobID: id, State: state, Shards: api.ShardCounts{Total: 4, Succeeded: done, Running: 4 - done},
			Progress: float64(done) / 4, Error: extra}
	}
	srv := &scriptedPoll{steps: []api.JobStatus{
		step("RUNNING", 2, ""),
		step("RUNNING", 4, ""),
		step("RUNNING", 4, "x"), // changed metadata, still at 100%
		step("SUCCEEDED", 4, ""),
	}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := aflight.NewServerWithMiddleware(nil)
	gs.InitListener(lis)
	gs.RegisterFlightService(srv)
	go func() { _ = gs.Serve() }()
	t.Cleanup(gs.Shutdown)

	c, err := client.Dial(context.Background(), lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var seen []api.JobStatus
	st, err := c.Wait(context.Background(), id, func(st api.JobStatus) { seen = append(seen, st) })
	if err != nil || st.State != "SUCCEEDED" {
		t.Fatalf("Wait = %+v, %v", st, err)
	}
	full := 0
	for _, s := range seen {
		if s.Progress == 1 {
			full++
			if s.State != "SUCCEEDED" {
				t.Errorf("100%% reported with state %s, before the job ended", s.State)
			}
		}
	}
	if full != 1 || len(seen) != 2 {
		t.Errorf("progress calls %+v: want one at 50%% and one at 100%%", seen)
	}
}
