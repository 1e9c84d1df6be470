package flight

import (
	"fmt"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protobuf "google.golang.org/protobuf/proto"
)

// ownedData is a FlightData whose body its sender hands over: nothing
// changes the body's bytes afterwards, so the server's codec sends them
// without copying them into a protobuf message first (gRPC writes a message
// after Send returns, so a body that is reused cannot go this way). To any
// other codec it is the FlightData it wraps.
type ownedData struct {
	*aflight.FlightData
	// release, when set, is called once the body is no longer needed:
	// when it has been written, or copied.
	release func()
}

// bodyDone is the gRPC buffer pool of one body, told when gRPC has written
// it (it hands out nothing).
type bodyDone func()

func (f bodyDone) Get(n int) *[]byte {
	b := make([]byte, n)
	return &b
}

func (f bodyDone) Put(*[]byte) { f() }

// flightDataBody is the field number of FlightData.data_body.
const flightDataBody = 1000

// minOwnedBody is the body size below which a copy costs less than a
// second buffer.
const minOwnedBody = 4 << 10

// codec is the server's gRPC codec: protobuf, with the body of an ownedData
// referenced rather than copied.
type codec struct {
	proto encoding.CodecV2
}

func newCodec() codec {
	return codec{proto: encoding.GetCodecV2(proto.Name)}
}

// Marshal encodes v; an ownedData becomes its other fields, marshalled, then
// the body field's tag and length, then the body itself.
func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	d, ok := v.(*ownedData)
	if !ok {
		return c.proto.Marshal(v)
	}
	if len(d.DataBody) < minOwnedBody || mem.IsBelowBufferPoolingThreshold(cap(d.DataBody)) {
		out, err := c.proto.Marshal(v) // a copy
		if d.release != nil {
			d.release()
		}
		return out, err
	}
	head := &aflight.FlightData{FlightDescriptor: d.FlightDescriptor, DataHeader: d.DataHeader, AppMetadata: d.AppMetadata}
	n := protobuf.Size(head)
	b := make([]byte, 0, n+protowire.SizeTag(flightDataBody)+protowire.SizeVarint(uint64(len(d.DataBody))))
	b, err := protobuf.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, head)
	if err != nil {
		if d.release != nil {
			d.release()
		}
		return nil, fmt.Errorf("flight: marshal FlightData: %w", err)
	}
	b = protowire.AppendTag(b, flightDataBody, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(d.DataBody)))
	body := mem.Buffer(mem.SliceBuffer(d.DataBody))
	if d.release != nil {
		body = mem.NewBuffer(&d.DataBody, bodyDone(d.release))
	}
	return mem.BufferSlice{mem.SliceBuffer(b), body}, nil
}

// Unmarshal decodes as protobuf; a *request notes a malformed message
// rather than failing (see request).
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*request); ok {
		return r.decode(c, data)
	}
	return c.proto.Unmarshal(data, v)
}

// Name is protobuf's: the codec changes how, not what, is sent.
func (c codec) Name() string { return proto.Name }
