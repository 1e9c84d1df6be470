package flight

import (
	"context"
	"fmt"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/internal/clip"
)

// MaxMessageBytes is the largest gRPC message the server receives: one DoPut
// batch, or one request. gRPC refuses a larger message with ResourceExhausted
// from its length prefix, before reading its body.
const MaxMessageBytes = 64 << 20

// writeBufferBytes is how much gRPC gathers of a connection's frames before
// it writes them to the socket. gRPC's default, 32 KiB, makes a write system
// call for every two 16 KiB frames of a DoGet, and as many wake-ups of the
// client; a larger buffer sends a batch in a few writes. Connections share
// the buffers (gRPC's default): one is held only while a
// connection writes, so idle connections hold none.
const writeBufferBytes = 512 << 10

// GRPCOptions are the gRPC server options every flightbatch server is built
// with: the receive limit MaxMessageBytes, the write buffer writeBufferBytes,
// the codec, decodeStream (a malformed message on a Flight stream is
// InvalidArgument; it comes first, see there), interceptors that turn a
// panic in a handler into Internal for that call alone (logged with its
// stack) and cut the message of every status to maxStatusBytes, and
// authentication when it is on. The panic interceptors come before
// authentication, so they also cover it.
func (s *Server) GRPCOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.WriteBufferSize(writeBufferBytes),
		grpc.ForceServerCodecV2(newCodec()),
		grpc.ChainStreamInterceptor(decodeStream),
		grpc.ChainUnaryInterceptor(s.recoverUnary),
		grpc.ChainStreamInterceptor(s.recoverStream),
	}
	return append(opts, s.securityOptions()...)
}

func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, s.panicked(info.FullMethod, r)
		}
	}()
	resp, err = handler(ctx, req)
	return resp, toStatus(err)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.panicked(info.FullMethod, r)
		}
	}()
	return toStatus(handler(srv, ss))
}

// panicked logs a recovered panic with its stack and returns the call's status.
func (s *Server) panicked(method string, r any) error {
	s.log.Error("panic in a call; the call fails, the server goes on", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return status.Errorf(codes.Internal, "internal error in %s: %s; the server logged it", method, clip.String(fmt.Sprint(r), 256))
}
