package flight

import (
	"errors"
	"strings"
	"testing"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	protobuf "google.golang.org/protobuf/proto"
)

// bytesStream is a server stream whose next message is b, decoded by the
// server's codec, or whose RecvMsg fails with err.
type bytesStream struct {
	grpc.ServerStream
	b   []byte
	err error
}

func (s *bytesStream) RecvMsg(m any) error {
	if s.err != nil {
		return s.err
	}
	return newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(s.b)}, m)
}

// TestDecodingStreamChangesNothingElse checks that only a malformed message
// becomes InvalidArgument: a well-formed one arrives whole, and any other
// failure to receive, an internal one included, keeps its status.
func TestDecodingStreamChangesNothingElse(t *testing.T) {
	good, err := protobuf.Marshal(&aflight.Ticket{Ticket: []byte("datasets/demo")})
	if err != nil {
		t.Fatal(err)
	}
	internal := status.Error(codes.Internal, "transport broke")
	tests := []struct {
		name     string
		stream   *bytesStream
		wantCode codes.Code
		wantErr  error // when set, the very error
	}{
		{"well-formed", &bytesStream{b: good}, codes.OK, nil},
		{"malformed", &bytesStream{b: []byte{0x0a, 0x7f}}, codes.InvalidArgument, nil},
		{"internal", &bytesStream{err: internal}, codes.Internal, internal},
		{"resource-exhausted", &bytesStream{err: status.Error(codes.ResourceExhausted, "too big")}, codes.ResourceExhausted, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &decodingStream{ServerStream: tt.stream, method: flightServicePrefix + "DoGet"}
			var tk aflight.Ticket
			err := d.RecvMsg(&tk)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("RecvMsg: %v, want %v", err, tt.wantCode)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("RecvMsg: %v, want the stream's own error %v", err, tt.wantErr)
			}
			if tt.wantCode == codes.OK && string(tk.Ticket) != "datasets/demo" {
				t.Fatalf("ticket %q, want %q", tk.Ticket, "datasets/demo")
			}
		})
	}
}

// TestRequestOfNoMessageIsTheServersError checks that a request whose
// target is no protobuf message fails in the codec, as any codec error
// did (gRPC's Internal), rather than blaming the client.
func TestRequestOfNoMessageIsTheServersError(t *testing.T) {
	r := request{msg: new(string)}
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{1, 2})}, &r); err == nil {
		t.Fatal("decoding into a string succeeded")
	}
}

// FuzzRequestDecode: whatever bytes arrive, decoding a request does not
// panic, and a malformed one's status is InvalidArgument with a short
// message.
func FuzzRequestDecode(f *testing.F) {
	f.Add([]byte{0x0a, 0x02, 'h', 'i'})
	f.Add([]byte{0x0a, 0xff, 0x01})
	f.Add([]byte(strings.Repeat("\xff", 200)))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := request{msg: new(aflight.Action)}
		if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b[:len(b)/2]), mem.SliceBuffer(b[len(b)/2:])}, &r); err != nil {
			t.Fatalf("Unmarshal: %v", err)
		}
		err := r.check(flightServicePrefix + "DoAction")
		if err == nil {
			return
		}
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || len(st.Message()) > 512 {
			t.Fatalf("status %v (%d bytes)", st.Code(), len(st.Message()))
		}
	})
}
