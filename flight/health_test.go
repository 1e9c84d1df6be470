package flight_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flightbatch/flightbatch/internal/testserver"
)

// TestHealthFollowsTheStore checks that health turns NOT_SERVING when the
// store stops answering.
func TestHealthFollowsTheStore(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Shards: 1, Records: 4})
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitFor := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "arrow.flight.protocol.FlightService"})
			if err != nil {
				t.Fatalf("health check: %v", err)
			}
			if resp.Status == want {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("health is %v, want %v", resp.Status, want)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitFor(healthpb.HealthCheckResponse_SERVING)
	if err := srv.Flight.StoreReachable(ctx); err != nil {
		t.Fatalf("StoreReachable: %v", err)
	}
	srv.Store.Close() // every store call fails from now on
	if srv.Flight.StoreReachable(ctx) == nil {
		t.Fatal("StoreReachable is nil with the store closed")
	}
	waitFor(healthpb.HealthCheckResponse_NOT_SERVING)
}
