package h2coalesce

import (
	"bytes"
	"errors"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection; the sending
// end's socket buffer is small, so that large writes fill it and wait.
func tcpPair(t *testing.T) (send, recv *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-accepted
	if r == nil {
		t.Fatal("accept failed")
	}
	send, recv = c.(*net.TCPConn), r.(*net.TCPConn)
	if err := send.SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Close(); recv.Close() })
	return send, recv
}

// slowRead reads everything from c in small reads until EOF.
func slowRead(c net.Conn) <-chan []byte {
	out := make(chan []byte, 1)
	go func() {
		var got bytes.Buffer
		buf := make([]byte, 3000)
		for {
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				out <- got.Bytes()
				return
			}
		}
	}()
	return out
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed + i>>9)
	}
	return b
}

func TestRawWriteBuffers(t *testing.T) {
	many := make([][]byte, 3000) // more than one writev takes
	for i := range many {
		many[i] = pattern(i%7, i)
	}
	tests := []struct {
		name string
		bufs [][]byte
	}{
		{"nothing", nil},
		{"empty buffers only", [][]byte{{}, nil, {}}},
		{"one byte", [][]byte{{42}}},
		{"empty buffers between", [][]byte{nil, pattern(10, 1), {}, pattern(5, 2), nil}},
		{"more buffers than IOV_MAX", many},
		{"megabytes, through a full socket", [][]byte{pattern(9, 3), pattern(3<<20, 4), pattern(1<<20+17, 5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send, recv := tcpPair(t)
			w := newRawWriter(send)
			if w == nil {
				t.Fatal("no raw writer for a TCP connection")
			}
			got := slowRead(recv)
			lens := make([]int, len(tt.bufs))
			for i, b := range tt.bufs {
				lens[i] = len(b)
			}
			n, err := w.writeBuffers(tt.bufs)
			want := bytes.Join(tt.bufs, nil)
			if err != nil || n != int64(len(want)) {
				t.Fatalf("writeBuffers = %d, %v; want %d, nil", n, err, len(want))
			}
			for i, b := range tt.bufs {
				if len(b) != lens[i] {
					t.Fatalf("buffer %d changed length", i)
				}
			}
			if slices.ContainsFunc(w.iov, func(v syscall.Iovec) bool { return v.Base != nil }) {
				t.Fatal("the writer kept a reference to a buffer")
			}
			send.CloseWrite()
			if g := <-got; !bytes.Equal(g, want) {
				t.Fatalf("received %d bytes, not the %d written", len(g), len(want))
			}
		})
	}
}

func TestRawWriteErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(send, recv *net.TCPConn)
		want  func(error) bool
	}{
		{"the peer is gone", func(send, recv *net.TCPConn) {
			recv.SetLinger(0)
			recv.Close()
		}, func(err error) bool {
			return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
		}},
		{"the deadline passes while the peer reads nothing", func(send, recv *net.TCPConn) {
			send.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		}, func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }},
		{"the connection is closed", func(send, recv *net.TCPConn) {
			send.Close()
		}, func(err error) bool { return errors.Is(err, net.ErrClosed) }},
		{"the connection is closed while the write waits for room", func(send, recv *net.TCPConn) {
			time.AfterFunc(100*time.Millisecond, func() { send.Close() })
		}, func(err error) bool { return errors.Is(err, net.ErrClosed) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send, recv := tcpPair(t)
			w := newRawWriter(send)
			tt.setup(send, recv)
			time.Sleep(10 * time.Millisecond) // let a reset arrive
			big := make([]byte, 32<<20)       // more than the socket buffers hold
			n, err := w.writeBuffers([][]byte{big})
			if !tt.want(err) || n >= int64(len(big)) {
				t.Fatalf("writeBuffers = %d, %v", n, err)
			}
		})
	}
}

// A Conn over TCP writes with the raw writer, merged frames and bytes it
// passes as they are alike, and the client receives the same streams.
func TestConnOverTCP(t *testing.T) {
	in := stream()
	_, _, inLens := canonical(in)
	tests := []struct {
		name   string
		max    uint32
		merged bool
	}{
		{"frames merged", 1 << 20, true},
		{"a connection passing bytes through", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send, recv := tcpPair(t)
			c := NewConn(send)
			if c.raw == nil {
				t.Fatal("a Conn over TCP has no raw writer")
			}
			c.peerMax.Store(tt.max)
			got := slowRead(recv)
			var want []byte
			for _, cut := range []int{0, 100, len(in) / 2, len(in)} {
				writeAll(t, c, in[:cut], in[cut:])
				want = append(want, in...)
			}
			send.CloseWrite()
			out := <-got
			checkEquivalent(t, want, out, int(max(tt.max, DefaultMaxFrame)))
			_, _, lens := canonical(out)
			if merged := len(lens) < 4*len(inLens); merged != tt.merged {
				t.Fatalf("%d DATA frames for %d written", len(lens), 4*len(inLens))
			}
			if !tt.merged && !bytes.Equal(out, want) {
				t.Fatal("bytes passed through changed")
			}
		})
	}
}
