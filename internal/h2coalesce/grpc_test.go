package h2coalesce

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"

	"github.com/flightbatch/flightbatch/internal/testcerts"
)

// rawCodec sends []byte messages as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = bytes.Clone(data)
	return nil
}
func (rawCodec) Name() string { return "raw" }

// messages are what the test service streams: sizes around gRPC-Go's frame
// and write buffer, and an empty one.
func messages() [][]byte {
	var out [][]byte
	for i, n := range []int{1 << 20, 100, 300 << 10, 0, 16384, 16385, 980149, 5} {
		m := make([]byte, n)
		for j := range m {
			m[j] = byte(i*131 + j*7 + j>>9)
		}
		out = append(out, m)
	}
	return out
}

var streamDesc = grpc.StreamDesc{StreamName: "Get", ServerStreams: true}

// serve runs a gRPC server with creds and the service /test.Frames/Get,
// which answers any request with messages(), and the AuthInfo it saw in the
// peer as the header "auth"; it returns the address and the server's
// connections so far.
func serve(t *testing.T, inner credentials.TransportCredentials) (string, func() []*Conn) {
	t.Helper()
	var mu sync.Mutex
	var conns []*Conn
	c := creds{inner: inner, seen: func(cn *Conn) { mu.Lock(); conns = append(conns, cn); mu.Unlock() }}
	gs := grpc.NewServer(grpc.Creds(c), grpc.ForceServerCodec(rawCodec{}), grpc.WriteBufferSize(512<<10))
	desc := streamDesc
	desc.Handler = func(_ any, ss grpc.ServerStream) error {
		var req []byte
		if err := ss.RecvMsg(&req); err != nil {
			return err
		}
		auth := "none"
		if p, ok := peer.FromContext(ss.Context()); ok && p.AuthInfo != nil {
			auth = p.AuthInfo.AuthType()
		}
		if err := ss.SetHeader(map[string][]string{"auth": {auth}}); err != nil {
			return err
		}
		for _, m := range messages() {
			if err := ss.SendMsg(&m); err != nil {
				return err
			}
		}
		return nil
	}
	gs.RegisterService(&grpc.ServiceDesc{ServiceName: "test.Frames", HandlerType: (*any)(nil), Streams: []grpc.StreamDesc{desc}}, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String(), func() []*Conn { mu.Lock(); defer mu.Unlock(); return append([]*Conn(nil), conns...) }
}

// grpcGet calls the service with gRPC-Go's client and returns the messages
// and the "auth" header.
func grpcGet(t *testing.T, addr string, tc credentials.TransportCredentials) ([][]byte, string) {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(tc),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	s, err := cc.NewStream(context.Background(), &streamDesc, "/test.Frames/Get")
	if err != nil {
		t.Fatal(err)
	}
	req := []byte("get")
	if err := s.SendMsg(&req); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for {
		var m []byte
		if err := s.RecvMsg(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	h, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	return got, fmt.Sprint(h.Get("auth"))
}

// h2Get calls the service over net/http's HTTP/2 client (unencrypted),
// which allows frames of maxFrame bytes, and returns the messages.
func h2Get(t *testing.T, addr string, maxFrame uint32) [][]byte {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols), HTTP2: &http.HTTP2Config{MaxReadFrameSize: int(maxFrame)}}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest("POST", "http://"+addr+"/test.Frames/Get", bytes.NewReader([]byte{0, 0, 0, 0, 3, 'g', 'e', 't'}))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc+raw")
	req.Header.Set("TE", "trailers")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.Trailer.Get("Grpc-Status"); st != "0" {
		t.Fatalf("grpc-status %q (%s)", st, resp.Trailer.Get("Grpc-Message"))
	}
	var got [][]byte
	for len(body) > 0 {
		if len(body) < 5 || body[0] != 0 {
			t.Fatalf("a gRPC message prefix expected, got %x", body[:min(5, len(body))])
		}
		n := int(binary.BigEndian.Uint32(body[1:]))
		got = append(got, body[5:5+n])
		body = body[5+n:]
	}
	return got
}

func sameMessages(t *testing.T, got [][]byte) {
	t.Helper()
	want := messages()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("message %d (%d bytes) differs from what was sent (%d bytes)", i, len(got[i]), len(want[i]))
		}
	}
}

func TestGRPCClientGetsItsFrames(t *testing.T) {
	// gRPC-Go's client allows 16 KiB frames: nothing beyond that.
	addr, conns := serve(t, nil)
	got, auth := grpcGet(t, addr, insecure.NewCredentials())
	sameMessages(t, got)
	if auth != "[none]" {
		t.Fatalf("plaintext AuthInfo %s, want none", auth)
	}
	cs := conns()
	if len(cs) != 1 {
		t.Fatalf("%d connections", len(cs))
	}
	if st := cs[0].Stats(); st.LargestFrame > DefaultMaxFrame || st.PeerMaxFrame != DefaultMaxFrame || st.DataFrames < 100 {
		t.Fatalf("a client that said no max frame size: %+v", st)
	}
}

func TestLargeFramesToAClientThatAllowsThem(t *testing.T) {
	for _, max := range []uint32{1 << 20, 65536} {
		addr, conns := serve(t, nil)
		sameMessages(t, h2Get(t, addr, max))
		cs := conns()
		if len(cs) != 1 {
			t.Fatalf("%d connections", len(cs))
		}
		st := cs[0].Stats()
		if st.PeerMaxFrame != int64(max) || st.LargestFrame <= DefaultMaxFrame || st.LargestFrame > int64(max) || st.Merges == 0 {
			t.Fatalf("a client that allows %d-byte frames: %+v", max, st)
		}
		t.Logf("max %d: %+v", max, st)
	}
}

func TestTLSKeepsAuthInfo(t *testing.T) {
	ca := testcerts.NewCA(t, "h2coalesce test CA")
	cert := ca.Server(t).TLS(t)
	addr, conns := serve(t, credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	got, auth := grpcGet(t, addr, credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}))
	sameMessages(t, got)
	if auth != "[tls]" {
		t.Fatalf("AuthInfo over TLS %s, want tls", auth)
	}
	if len(conns()) != 1 {
		t.Fatalf("%d connections wrapped", len(conns()))
	}
}
