package flight_test

import (
	"context"
	"strings"
	"testing"
	"time"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/flightbatch/flightbatch/internal/testserver"
)

// rawCodec sends a []byte as the message's bytes, unchecked, as a client
// with a broken encoder would, and decodes replies as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(*[]byte); ok {
		return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
	}
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (rawCodec) Name() string { return "proto" }

// TestMalformedRequestIsInvalidArgument sends every Flight method a request
// whose bytes are not the protobuf message it takes, and checks that the
// answer is InvalidArgument naming the method and the message expected and
// quoting only the start of the bytes, where gRPC alone answers Internal.
func TestMalformedRequestIsInvalidArgument(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Shards: 1, Records: 4})
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A length-delimited field 1 that claims more bytes than follow, then
	// a long tail that no message may repeat whole.
	truncated := append([]byte{0x0a, 0xff, 0x01}, strings.Repeat("x", 100)...)
	// Action.type (a string) that is not UTF-8.
	notUTF8 := []byte{0x0a, 0x02, 0xff, 0xfe}
	tests := []struct {
		method  string
		unary   bool
		clients bool // the method streams its requests
		body    []byte
		want    string // the message the method takes
	}{
		{method: "DoGet", body: truncated, want: "arrow.flight.protocol.Ticket"},
		{method: "GetFlightInfo", unary: true, body: truncated, want: "arrow.flight.protocol.FlightDescriptor"},
		{method: "GetSchema", unary: true, body: truncated, want: "arrow.flight.protocol.FlightDescriptor"},
		{method: "PollFlightInfo", unary: true, body: truncated, want: "arrow.flight.protocol.FlightDescriptor"},
		{method: "DoAction", body: truncated, want: "arrow.flight.protocol.Action"},
		{method: "DoAction", body: notUTF8, want: "arrow.flight.protocol.Action"},
		{method: "DoPut", clients: true, body: truncated, want: "arrow.flight.protocol.FlightData"},
		{method: "ListFlights", body: truncated, want: "arrow.flight.protocol.Criteria"},
		{method: "ListActions", body: truncated, want: "arrow.flight.protocol.Empty"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			full := "/arrow.flight.protocol.FlightService/" + tt.method
			codec := grpc.ForceCodecV2(rawCodec{})
			var err error
			if tt.unary {
				err = conn.Invoke(ctx, full, &tt.body, new(aflight.FlightInfo), codec)
			} else {
				err = func() error {
					s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: tt.clients}, full, codec)
					if err != nil {
						return err
					}
					if err := s.SendMsg(&tt.body); err != nil {
						return err
					}
					if err := s.CloseSend(); err != nil {
						return err
					}
					for {
						var reply aflight.Result
						if err := s.RecvMsg(&reply); err != nil {
							return err
						}
					}
				}()
			}
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("%s: got %v, want InvalidArgument", tt.method, err)
			}
			msg := st.Message()
			for _, part := range []string{"malformed " + tt.method + " request", tt.want, "it begins"} {
				if !strings.Contains(msg, part) {
					t.Errorf("%s: message %q does not say %q", tt.method, msg, part)
				}
			}
			if strings.Contains(msg, strings.Repeat("x", 30)) {
				t.Errorf("%s: message %q repeats more than a short prefix of the request", tt.method, msg)
			}
		})
	}
}

// TestWellFormedRequestsAnswerAsBefore checks that decoding requests at the
// edge changes nothing for well-formed ones, sent through the same raw
// client: a ticket that names nothing is still NotFound, not
// InvalidArgument, and a valid action still answers.
func TestWellFormedRequestsAnswerAsBefore(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Shards: 1, Records: 4})
	c := dial(t, srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.GetFlightInfo(ctx, &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"datasets", "no-such-dataset"}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("GetFlightInfo of a missing dataset: %v, want NotFound", err)
	}
	s, err := c.ListActions(ctx, &aflight.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := s.Recv(); err != nil {
			if status.Code(err) != codes.OK && err.Error() != "EOF" {
				t.Fatalf("ListActions: %v", err)
			}
			break
		}
		n++
	}
	if n == 0 {
		t.Fatal("ListActions answered no action")
	}
}
