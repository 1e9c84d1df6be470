package h2coalesce

import (
	"bytes"
	"io"
	"testing"
)

// FuzzWrite writes arbitrary bytes, cut into three writes anywhere, through a
// Conn whose client allows any max: the output must carry the same frames
// (DATA runs joined), within the max, and the same bytes after the last
// whole frame.
func FuzzWrite(f *testing.F) {
	f.Add(stream(), uint32(0), uint32(100), uint32(1<<20))
	f.Add(data(1, 40000, 16384, true), uint32(9), uint32(16393), uint32(20000))
	f.Add(cat(data(1, 300, 100, false), data(3, 200, 100, true)), uint32(4), uint32(200), uint32(DefaultMaxFrame))
	f.Fuzz(func(t *testing.T, in []byte, a, b, max uint32) {
		max = DefaultMaxFrame + max%(maxFrameLimit-DefaultMaxFrame+1)
		x := int(a % uint32(len(in)+1))
		y := x + int(b%uint32(len(in)-x+1))
		c, cc := withMax(max)
		writeAll(t, c, in[:x], in[x:y], in[y:])
		checkEquivalent(t, in, cc.out.Bytes(), int(max))
	})
}

// FuzzRead reads arbitrary client bytes through a Conn, chunk bytes at a
// time: they must come through unchanged, and the max frame size learnt must
// be what a parse of all of them at once says.
func FuzzRead(f *testing.F) {
	f.Add(clientBytes(1<<20), uint8(1))
	f.Add(clientBytes(70000), uint8(7))
	f.Add(cat([]byte(clientPreface), settings(false, settingMaxFrameSize, 1<<24)), uint8(3))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		c := NewConn(&captureConn{r: &chunkReader{b: in, n: int(chunk) + 1}})
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, in) {
			t.Fatalf("read %x, %v: not what was sent", got, err)
		}
		if m, want := c.Stats().PeerMaxFrame, int64(refMax(in)); m != want {
			t.Fatalf("PeerMaxFrame %d, reference %d", m, want)
		}
	})
}
