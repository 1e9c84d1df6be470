package flight

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// countingStore stands for the store: it counts the requests made of it,
// fails while down is set, and holds each request until release is closed.
type countingStore struct {
	calls   atomic.Int64
	down    atomic.Bool
	release chan struct{}
}

func (c *countingStore) check(ctx context.Context) error {
	c.calls.Add(1)
	select {
	case <-c.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	if c.down.Load() {
		return errors.New("store down")
	}
	return nil
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestHealthCheckIsKeptAndShared: a flood of health checks makes one store
// request per interval (concurrent ones share it), every result is reported
// to the gRPC side in order, and a store that fails turns health failing at
// the first check after the interval.
func TestHealthCheckIsKeptAndShared(t *testing.T) {
	const every = 5 * time.Second
	st := &countingStore{release: make(chan struct{})}
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	var mu sync.Mutex
	var reported []error
	h := newHealthCheck(st.check, every, clk.Now, func(err error) {
		mu.Lock()
		reported = append(reported, err)
		mu.Unlock()
	})
	ctx := context.Background()

	// 100 concurrent checks while the first request is held: one request.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- h.Check(ctx)
		}()
	}
	for st.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(st.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a check sharing the first request: %v", err)
		}
	}
	if n := st.calls.Load(); n != 1 {
		t.Fatalf("100 concurrent checks made %d store requests, want 1", n)
	}

	// Within the interval: answered from the kept result, even with the store down.
	st.down.Store(true)
	for range 1000 {
		if err := h.Check(ctx); err != nil {
			t.Fatalf("within the interval: %v", err)
		}
	}
	clk.Add(every - time.Millisecond)
	if err := h.Check(ctx); err != nil || st.calls.Load() != 1 {
		t.Fatalf("just before the interval ends: %v after %d requests, want the kept ok after 1", err, st.calls.Load())
	}

	// The interval over: the next check asks the store, and sees it fail.
	clk.Add(time.Millisecond)
	if err := h.Check(ctx); err == nil {
		t.Fatal("the first check after the interval, with the store down: ok, want an error")
	}
	if err := h.Check(ctx); err == nil || st.calls.Load() != 2 {
		t.Fatalf("the failure kept: %v after %d requests, want an error after 2", err, st.calls.Load())
	}

	// Back up: seen at the next interval.
	st.down.Store(false)
	clk.Add(every)
	if err := h.Check(ctx); err != nil || st.calls.Load() != 3 {
		t.Fatalf("store back: %v after %d requests, want ok after 3", err, st.calls.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 3 || reported[0] != nil || reported[1] == nil || reported[2] != nil {
		t.Fatalf("reported to the gRPC health service %v, want ok, an error, ok", reported)
	}
}

// TestHealthCheckWaiterDeadline: a caller whose context ends while the store
// hangs gets an error at once, and the request goes on for the others.
func TestHealthCheckWaiterDeadline(t *testing.T) {
	st := &countingStore{release: make(chan struct{})}
	h := newHealthCheck(st.check, time.Minute, time.Now, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Check(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled caller while the store hangs: %v, want context.Canceled", err)
	}
	close(st.release)
	if err := h.Check(context.Background()); err != nil {
		t.Fatalf("after the store answers: %v", err)
	}
	if n := st.calls.Load(); n != 1 {
		t.Fatalf("%d store requests, want 1 (the second caller shares the first request)", n)
	}
}

// TestHealthyCountsStoreRequests floods Healthy over a real store that fails
// every request and counts them: one request answers 200 concurrent checks
// and the 1,000 after them, and the gRPC health service says NOT_SERVING.
func TestHealthyCountsStoreRequests(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int64
	st.ObserveErrors(func(string) { requests.Add(1) }) // every request fails: each is counted
	st.Close()
	s := NewServer(dataset.NewCatalog(st), nil, &Options{HealthEvery: time.Hour, Log: slog.New(slog.DiscardHandler)})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.Healthy(ctx) == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	for range 1000 {
		if s.Healthy(ctx) == nil {
			ok.Add(1)
		}
	}
	if n := requests.Load(); n != 1 || ok.Load() != 0 {
		t.Fatalf("1,200 health checks over a failing store: %d store requests, %d healthy; want 1 and 0", n, ok.Load())
	}
	resp, err := s.health.Check(ctx, &healthpb.HealthCheckRequest{Service: "arrow.flight.protocol.FlightService"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("gRPC health after the failed check: %v, %v; want NOT_SERVING", resp, err)
	}
}
