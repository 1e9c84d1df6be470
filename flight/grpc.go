package flight

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"time"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/internal/h2coalesce"
)

// DefaultHealthEvery is how long a store check's result is kept: /healthz and
// the gRPC health service make at most one store request per interval,
// however often they are asked, and a store that stops answering turns them
// failing within it.
const DefaultHealthEvery = 5 * time.Second

// GRPCServer returns the gRPC server of s, the one place a server is put
// together (serve and the test servers both use it): the Flight service
// (whose malformed requests are InvalidArgument, see request), the
// standard grpc.health.v1 service, authentication when Options.Auth is set,
// and TLS when Options.TLS is set. Call InitListener and Serve on it, and run
// WatchHealth beside it.
func (s *Server) GRPCServer(extra ...grpc.ServerOption) aflight.Server {
	gs := aflight.NewServerWithMiddleware(nil, append(s.GRPCOptions(), extra...)...)
	gs.RegisterService(flightServiceDesc(), s)
	healthpb.RegisterHealthServer(gs, s.health)
	return gs
}

// securityOptions are the audit log and stream metrics, TLS credentials (or,
// on plaintext, the merging of DATA frames), the mutual-TLS check and the
// auth interceptors, as Options ask. The audit comes
// first, so that refused calls are audited too.
func (s *Server) securityOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(s.observeUnary), grpc.ChainStreamInterceptor(s.observeStream)}
	switch {
	case s.opts.TLS != nil:
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.opts.TLS)))
	case !s.opts.PlainFrames:
		opts = append(opts, grpc.Creds(h2coalesce.Credentials(nil)))
	}
	if s.opts.ClientCerts != nil {
		opts = append(opts, grpc.ChainUnaryInterceptor(s.mtlsUnary), grpc.ChainStreamInterceptor(s.mtlsStream))
	}
	return append(opts, s.opts.Auth.ServerOptions()...)
}

// WatchHealth keeps the health service's status, for the whole server ("")
// and for the Flight service, up to date while nobody asks /healthz: it
// checks the store (Healthy) every Options.HealthEvery until ctx ends, then
// reports NOT_SERVING. Every check, whoever asks it, sets that status.
func (s *Server) WatchHealth(ctx context.Context) {
	for {
		_ = s.Healthy(ctx)
		select {
		case <-ctx.Done():
			s.health.Shutdown()
			return
		case <-time.After(s.opts.HealthEvery):
		}
	}
}

// Healthy reports whether the store answers, as /healthz and the gRPC health
// service say: from one small store request at most every
// Options.HealthEvery, shared by every caller that asks meanwhile.
func (s *Server) Healthy(ctx context.Context) error {
	return s.healthCheck.Check(ctx)
}

// reportHealth sets the health service's status from a store check's
// result, and logs when it changes. It runs under the check's lock, one
// result at a time.
func (s *Server) reportHealth(err error) {
	st := healthpb.HealthCheckResponse_SERVING
	if err != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	if st != s.healthLast {
		if err != nil {
			s.log.Warn("health: the store does not answer", "err", err)
		} else {
			s.log.Info("health: serving")
		}
		s.healthLast = st
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus("arrow.flight.protocol.FlightService", st)
}

// StoreReachable checks that the store answers, with one small request, at
// every call; Healthy is the kept answer.
func (s *Server) StoreReachable(ctx context.Context) error {
	_, err := s.cat.Store().Exists(ctx, "health-check")
	return err
}

func newHealth() *health.Server {
	h := health.NewServer()
	h.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	h.SetServingStatus("arrow.flight.protocol.FlightService", healthpb.HealthCheckResponse_NOT_SERVING)
	return h
}

// ClientVerifier checks the client certificate of a connection, for mutual
// TLS (internal/tlsfiles.Server is one).
type ClientVerifier interface {
	VerifyClient(tls.ConnectionState) (*x509.Certificate, error)
}

func isHealth(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/")
}

// verifyPeer checks the client certificate of ctx's connection and puts its
// subject in the context. Health checks need none.
func (s *Server) verifyPeer(ctx context.Context, fullMethod string) (context.Context, error) {
	if isHealth(fullMethod) {
		return ctx, nil
	}
	p, ok := peer.FromContext(ctx)
	var ti credentials.TLSInfo
	if ok {
		ti, ok = p.AuthInfo.(credentials.TLSInfo)
	}
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "mutual TLS: the connection is not TLS")
	}
	leaf, err := s.opts.ClientCerts.VerifyClient(ti.State)
	if err != nil {
		s.log.Warn("client certificate refused", "peer", p.Addr.String(), "call", fullMethod, "err", err)
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	recordFrom(ctx).setSubject(leaf.Subject.String())
	return context.WithValue(ctx, subjectKey{}, leaf.Subject.String()), nil
}

func (s *Server) mtlsUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.verifyPeer(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) mtlsStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := s.verifyPeer(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &callerStream{ServerStream: ss, ctx: ctx})
}
