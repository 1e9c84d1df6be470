package flight

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	flightgen "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	protobuf "google.golang.org/protobuf/proto"

	"github.com/flightbatch/flightbatch/internal/clip"
)

// flightServicePrefix starts the full name of every Flight method.
const flightServicePrefix = "/arrow.flight.protocol.FlightService/"

// quoteRequestBytes is how many bytes of a malformed request its error
// repeats.
const quoteRequestBytes = 24

// request is what the Flight service's handlers hand the codec to decode a
// message into: msg to fill and, when the bytes are not one, why. gRPC
// reports any error of a codec as Internal, and writes that status before a
// handler or an interceptor sees it; a request lets the codec accept the
// bytes and the Flight edge answer InvalidArgument instead.
type request struct {
	msg any
	// err is the protobuf decoding error, if any.
	err error
	// head is the start of the bytes that did not decode, n their length.
	head []byte
	n    int
}

// decode fills r from data; when data is not a protobuf message of r.msg's
// type, it notes why and the start of data. A msg that is no protobuf
// message at all is the server's error, returned as such.
func (r *request) decode(c codec, data mem.BufferSlice) error {
	if _, ok := r.msg.(protobuf.Message); !ok {
		return c.proto.Unmarshal(data, r.msg)
	}
	err := c.proto.Unmarshal(data, r.msg)
	if err == nil {
		return nil
	}
	r.err, r.n = err, data.Len()
	for _, b := range data {
		if len(r.head) == quoteRequestBytes {
			break
		}
		d := b.ReadOnlyData()
		r.head = append(r.head, d[:min(len(d), quoteRequestBytes-len(r.head))]...)
	}
	return nil
}

// check is the status of a decoded request to method: nil, or
// InvalidArgument saying which message was expected, why these bytes are
// not one, and how they begin.
func (r *request) check(method string) error {
	if r.err == nil {
		return nil
	}
	want := "a protobuf message"
	if m, ok := r.msg.(protobuf.Message); ok {
		want = "a protobuf " + string(protobuf.MessageName(m))
	}
	begins := strconv.Quote(string(r.head))
	if r.n > len(r.head) {
		begins += "... (" + strconv.Itoa(r.n) + " bytes)"
	}
	return status.Error(codes.InvalidArgument, fmt.Sprintf(
		"malformed %s request: the message is not %s (%s); it begins %s: send the serialized message, as Flight clients do",
		path.Base(method), want, clip.String(r.err.Error(), 2*clip.QuoteBytes), begins))
}

// flightServiceDesc is the Flight service with each unary method's request
// decoded through a request, so that a malformed one is InvalidArgument.
// (The streaming methods' requests go through decodeStream.)
func flightServiceDesc() *grpc.ServiceDesc {
	d := flightgen.FlightService_ServiceDesc
	d.Methods = slices.Clone(d.Methods)
	for i, m := range d.Methods {
		handler, method := m.Handler, m.MethodName
		d.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			return handler(srv, ctx, func(v any) error {
				r := request{msg: v}
				if err := dec(&r); err != nil {
					return err
				}
				return r.check(method)
			}, ic)
		}
	}
	return &d
}

// decodeStream decodes every message a Flight stream receives through a
// request, so that a malformed one is InvalidArgument. It must be the first
// stream interceptor: the streams of those after it then see the decoded
// message, as before.
func decodeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !strings.HasPrefix(info.FullMethod, flightServicePrefix) {
		return handler(srv, ss)
	}
	return handler(srv, &decodingStream{ServerStream: ss, method: info.FullMethod})
}

// decodingStream is a Flight stream whose received messages are decoded
// through a request.
type decodingStream struct {
	grpc.ServerStream
	method string
}

func (d *decodingStream) RecvMsg(m any) error {
	r := request{msg: m}
	if err := d.ServerStream.RecvMsg(&r); err != nil {
		return err
	}
	return r.check(d.method)
}
