package client_test

import (
	"context"
	"crypto/tls"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/internal/testcerts"
	"github.com/flightbatch/flightbatch/internal/testserver"
	"github.com/flightbatch/flightbatch/internal/tlsfiles"
	"github.com/flightbatch/flightbatch/pkg/api"
	"github.com/flightbatch/flightbatch/pkg/client"
)

// tlsServer starts a test server with TLS from the files of ca (and mutual
// TLS when mutual is set).
func tlsServer(t *testing.T, ca *testcerts.CA, mutual bool, auth *flight.Auth) *testserver.Server {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	caFile := ""
	if mutual {
		caFile = ca.WriteCA(t, dir, "clients")
	}
	files, err := tlsfiles.NewServer(certFile, keyFile, caFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := testserver.Options{Shards: 2, Records: 8, TLS: files.Config("h2"), Auth: auth}
	if mutual {
		o.ClientCerts = files
	}
	return testserver.Start(t, o)
}

func TestTLS(t *testing.T) {
	ca, other := testcerts.NewCA(t, "lab"), testcerts.NewCA(t, "other")
	srv := tlsServer(t, ca, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		addr string
		opts []client.Option
		want string
	}{
		{"the lab CA", "grpc+tls://" + srv.Addr, []client.Option{client.WithTLS(&tls.Config{RootCAs: ca.Pool()})}, ""},
		{"a host:port address with TLS configured", srv.Addr, []client.Option{client.WithTLS(&tls.Config{RootCAs: ca.Pool()})}, ""},
		{"the wrong CA", "grpc+tls://" + srv.Addr, []client.Option{client.WithTLS(&tls.Config{RootCAs: other.Pool()})}, "certificate signed by unknown authority"},
		{"the system CAs", "grpc+tls://" + srv.Addr, nil, "certificate signed by unknown authority"},
		// The TLS server drops a plaintext connection: the client reads its
		// end (EOF), or a reset when the server closed with the client's
		// preface still unread.
		{"plaintext", "grpc://" + srv.Addr, nil, "EOF|connection reset by peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.Dial(ctx, tc.addr, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ds, err := c.ListDatasets(ctx)
			if tc.want == "" {
				if err != nil || len(ds) != 1 {
					t.Fatalf("ListDatasets: %v, %v", ds, err)
				}
				return
			}
			if status.Code(err) != codes.Unavailable || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Fatalf("ListDatasets: %v; want Unavailable matching %q", err, tc.want)
			}
		})
	}
	if _, err := client.Dial(ctx, "grpc://"+srv.Addr, client.WithTLS(&tls.Config{})); err == nil || !strings.Contains(err.Error(), "grpc+tls://") {
		t.Errorf("a grpc:// address with TLS configured: %v", err)
	}
}

func TestMutualTLSCallers(t *testing.T) {
	ca := testcerts.NewCA(t, "lab")
	alice, bob, carol := ca.Client(t, "alice", "Lab"), ca.Client(t, "bob", "Lab"), ca.Client(t, "carol", "Lab")
	auth, err := flight.NewAuthWithCertificates(nil, []flight.Certificate{
		{Name: "alice", Subject: "CN=alice,O=Lab", Role: flight.RoleRead},
		{Name: "bob", Subject: "CN=bob,O=Lab", Role: flight.RoleSubmit},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := tlsServer(t, ca, true, auth)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connect := func(l *testcerts.Leaf) *client.Client {
		cfg := &tls.Config{RootCAs: ca.Pool()}
		if l != nil {
			cfg.Certificates = []tls.Certificate{l.TLS(t)}
		}
		c, err := client.Dial(ctx, "grpc+tls://"+srv.Addr, client.WithTLS(cfg))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	req := api.PSDRequest{Dataset: "demo", PSDParams: api.PSDParams{FS: new(250.0)}}
	if _, err := connect(nil).ListJobs(ctx, ""); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "no client certificate: this server uses mutual TLS") {
		t.Errorf("without a client certificate: %v", err)
	}
	if _, err := connect(&carol).ListJobs(ctx, ""); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "CN=carol,O=Lab") {
		t.Errorf("an unlisted certificate: %v", err)
	}
	if _, err := connect(&alice).SubmitPSD(ctx, req); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a read certificate submitting: %v", err)
	}
	id, err := connect(&bob).SubmitPSD(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	st, err := connect(&alice).Wait(ctx, id, nil)
	if err != nil || st.State != "SUCCEEDED" || st.SubmittedBy != "bob" {
		t.Fatalf("job of bob, followed by alice: %+v, %v", st, err)
	}
}

func TestExpiredClientCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, "lab")
	srv := tlsServer(t, ca, true, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{ca.ExpiredClient(t, "old", "Lab").TLS(t)}}
	c, err := client.Dial(ctx, "grpc+tls://"+srv.Addr, client.WithTLS(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ListDatasets(ctx); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), `client certificate "CN=old,O=Lab" expired at`) {
		t.Fatalf("an expired client certificate: %v", err)
	}
}

func TestHealthWithoutCredentials(t *testing.T) {
	ca := testcerts.NewCA(t, "lab")
	auth, err := flight.NewAuth([]flight.Token{{Name: "x", Role: flight.RoleRead}})
	if err != nil {
		t.Fatal(err)
	}
	srv := tlsServer(t, ca, false, auth)
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool()})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(conn)
	for {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("health check: %v", err)
		}
		if resp.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("health still %v", resp.Status)
		case <-time.After(50 * time.Millisecond):
		}
	}
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "arrow.flight.protocol.FlightService"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health of the Flight service: %v, %v", resp, err)
	}
}
