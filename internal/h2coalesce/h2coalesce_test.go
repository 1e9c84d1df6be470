package h2coalesce

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
)

// frame encodes one HTTP/2 frame.
func frame(typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	b := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[5:], stream)
	return append(b, payload...)
}

// data encodes DATA frames of stream carrying n bytes (a pattern that
// differs per stream and offset) cut every chunk bytes, as gRPC-Go cuts a
// message; end sets END_STREAM on the last.
func data(stream uint32, n, chunk int, end bool) []byte {
	var out []byte
	for off := 0; off < n || n == 0; off += chunk {
		k := min(chunk, n-off)
		p := make([]byte, k)
		for i := range p {
			p[i] = byte(int(stream)*31 + (off+i)*7 + (off+i)>>8)
		}
		var flags byte
		if end && off+k >= n {
			flags = flagEndStream
		}
		out = append(out, frame(typeData, flags, stream, p)...)
		if n == 0 {
			break
		}
	}
	return out
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func settings(ack bool, kv ...uint32) []byte {
	var p []byte
	for i := 0; i+1 < len(kv); i += 2 {
		p = binary.BigEndian.AppendUint16(p, uint16(kv[i]))
		p = binary.BigEndian.AppendUint32(p, kv[i+1])
	}
	var flags byte
	if ack {
		flags = flagAck
	}
	return frame(typeSettings, flags, 0, p)
}

// event is one item of a frame sequence in canonical form: a run of
// adjacent unpadded DATA frames of a stream joined (ending at END_STREAM),
// or any other frame as its bytes.
type event struct {
	stream uint32
	data   []byte
	end    bool
	raw    []byte // a frame that is not joined
}

// canonical parses b as frames into events, with what is left after the
// last complete frame; it also returns each DATA frame's length.
func canonical(b []byte) (evs []event, tail []byte, dataLens []int) {
	open := false // the last event is a DATA run still open
	for len(b) >= headerLen {
		n := int(frameLen(b))
		if headerLen+n > len(b) {
			break
		}
		h, p := b[:headerLen], b[headerLen:headerLen+n]
		if h[3] == typeData {
			dataLens = append(dataLens, n)
		}
		if mergeable(h) {
			id := binary.BigEndian.Uint32(h[5:])
			if open && evs[len(evs)-1].stream == id {
				e := &evs[len(evs)-1]
				e.data = append(e.data, p...)
			} else {
				evs = append(evs, event{stream: id, data: slices.Clone(p)})
			}
			open = h[4]&flagEndStream == 0
			evs[len(evs)-1].end = !open
		} else {
			evs = append(evs, event{raw: slices.Clone(b[:headerLen+n])})
			open = false
		}
		b = b[headerLen+n:]
	}
	return evs, b, dataLens
}

// captureConn records what is written to it and reads from r.
type captureConn struct {
	net.Conn
	out    bytes.Buffer
	writes int
	r      io.Reader
	failAt int // when > 0, writes fail once out holds this many bytes
}

func (c *captureConn) Write(p []byte) (int, error) {
	c.writes++
	if c.failAt > 0 && c.out.Len()+len(p) > c.failAt {
		k := c.failAt - c.out.Len()
		c.out.Write(p[:k])
		return k, errors.New("connection reset")
	}
	return c.out.Write(p)
}

func (c *captureConn) Read(p []byte) (int, error) {
	if c.r == nil {
		return 0, io.EOF
	}
	return c.r.Read(p)
}

// withMax is a Conn over a captureConn whose client said max.
func withMax(max uint32) (*Conn, *captureConn) {
	cc := &captureConn{}
	c := NewConn(cc)
	if max != 0 {
		c.peerMax.Store(max)
	}
	return c, cc
}

// writeAll writes each chunk through c, checking io.Writer's contract and
// that c keeps no reference to a chunk (each is overwritten after its write).
func writeAll(t testing.TB, c *Conn, chunks ...[]byte) {
	t.Helper()
	for _, ch := range chunks {
		p := slices.Clone(ch)
		n, err := c.Write(p)
		if err != nil || n != len(p) {
			t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
		}
		for i := range p {
			p[i] = 0xEE
		}
		for _, s := range c.wr.segs[:cap(c.wr.segs)] {
			if s != nil {
				t.Fatalf("Write kept a segment after returning")
			}
		}
	}
}

// checkEquivalent fails unless out carries in's events and tail, with every
// DATA frame within max.
func checkEquivalent(t testing.TB, in, out []byte, max int) {
	t.Helper()
	ein, tin, _ := canonical(in)
	eout, tout, lens := canonical(out)
	if !bytes.Equal(tin, tout) {
		t.Fatalf("tails differ: in %x, out %x", tin, tout)
	}
	if len(ein) != len(eout) {
		t.Fatalf("%d events in, %d out", len(ein), len(eout))
	}
	for i := range ein {
		a, b := ein[i], eout[i]
		if a.stream != b.stream || a.end != b.end || !bytes.Equal(a.data, b.data) || !bytes.Equal(a.raw, b.raw) {
			t.Fatalf("event %d differs: in stream %d end %v %d bytes raw %x; out stream %d end %v %d bytes raw %x",
				i, a.stream, a.end, len(a.data), a.raw, b.stream, b.end, len(b.data), b.raw)
		}
	}
	inLens := func() []int { _, _, l := canonical(in); return l }()
	for _, n := range lens {
		if n > max && !slices.Contains(inLens, n) {
			t.Fatalf("a merged DATA frame of %d bytes is beyond the peer's %d", n, max)
		}
	}
}

func TestWriteMerges(t *testing.T) {
	ping := frame(0x6, 0, 0, make([]byte, 8))
	headers := frame(0x1, 0x4, 1, []byte("hdrs"))
	padded := frame(typeData, 0x8, 1, append([]byte{2}, "abcd\x00\x00"...))
	tests := []struct {
		name   string
		max    uint32
		in     []byte
		frames []int // DATA frame lengths expected on the wire
	}{
		{"a message's frames become one", 1 << 20, data(1, 100000, 16384, false), []int{100000}},
		{"no merging until the client allows more", DefaultMaxFrame, data(1, 100000, 16384, false), []int{16384, 16384, 16384, 16384, 16384, 16384, 1696}},
		{"small frames merge within the default", DefaultMaxFrame, data(1, 4000, 1000, false), []int{4000}},
		{"END_STREAM on the last frame is kept", 1 << 20, data(3, 50000, 16384, true), []int{50000}},
		{"END_STREAM ends a run", 1 << 20, cat(data(1, 20000, 16384, true), data(1, 20000, 16384, false)), []int{20000, 20000}},
		{"a run stops at the peer's max", 40000, data(1, 100000, 16384, false), []int{32768, 32768, 34464}},
		{"small frames fill the peer's max", 20000, data(1, 30000, 1000, false), []int{20000, 10000}},
		{"streams interleaved do not merge", 1 << 20, cat(data(1, 20000, 16384, false), data(3, 20000, 16384, false), data(1, 20000, 16384, false)), []int{20000, 20000, 20000}},
		{"frames of two streams in turn", 1 << 20, cat(data(1, 100, 100, false), data(3, 100, 100, false), data(1, 100, 100, false), data(3, 100, 100, false)), []int{100, 100, 100, 100}},
		{"a frame between runs splits them", 1 << 20, cat(data(1, 20000, 16384, false), ping, data(1, 20000, 16384, false), headers, data(1, 20000, 16384, true)), []int{20000, 20000, 20000}},
		{"padded frames pass as they are", 1 << 20, cat(data(1, 100, 100, false), padded, data(1, 200, 100, false)), []int{100, 7, 200}},
		{"empty frames merge", 1 << 20, cat(data(1, 0, 1, false), data(1, 10, 10, false), data(1, 0, 1, true)), []int{10}},
		{"a lone frame passes", 1 << 20, data(1, 500, 16384, true), []int{500}},
		{"stream 0 is not merged", 1 << 20, cat(data(0, 10, 10, false), data(0, 10, 10, false)), []int{10, 10}},
		{"the reserved bit is not merged", 1 << 20, cat(data(1|1<<31, 10, 10, false), data(1|1<<31, 10, 10, false)), []int{10, 10}},
		{"unknown flags are not merged", 1 << 20, cat(frame(typeData, 0x2, 1, []byte("ab")), frame(typeData, 0x2, 1, []byte("cd"))), []int{2, 2}},
		{"the largest frame allowed", maxFrameLimit, data(1, maxFrameLimit+1, maxFrameLimit/3, false), []int{maxFrameLimit, 1}},
		{"non-DATA frames only", 1 << 20, cat(settings(false, 4, 1<<20), ping, headers), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, cc := withMax(tt.max)
			writeAll(t, c, tt.in)
			checkEquivalent(t, tt.in, cc.out.Bytes(), int(tt.max))
			_, _, lens := canonical(cc.out.Bytes())
			if !slices.Equal(lens, tt.frames) {
				t.Fatalf("DATA frames %v, want %v", lens, tt.frames)
			}
			st := c.Stats()
			if st.DataFrames != int64(len(tt.frames)) {
				t.Fatalf("Stats.DataFrames %d, want %d", st.DataFrames, len(tt.frames))
			}
			if len(tt.frames) > 0 && st.LargestFrame < int64(slices.Max(tt.frames)) {
				t.Fatalf("Stats.LargestFrame %d, want at least %d", st.LargestFrame, slices.Max(tt.frames))
			}
		})
	}
}

// stream is a frame sequence with everything the writer must tell apart.
func stream() []byte {
	return cat(
		settings(false, 4, 1<<20), settings(true),
		frame(0x1, 0x4, 1, []byte("headers of 1")),
		data(1, 40000, 16384, false),
		frame(0x8, 0, 0, []byte{0, 1, 0, 0}),
		data(1, 5000, 1000, false), data(3, 3000, 1000, false),
		frame(typeData, 0x8, 3, append([]byte{1}, "xy\x00"...)),
		data(3, 20000, 16384, true),
		data(1, 100, 100, true),
		frame(0x6, 0, 0, make([]byte, 8)),
	)
}

func TestWriteBoundaryAtEveryOffset(t *testing.T) {
	// Every offset within 12 bytes of a frame's start (cuts in headers and
	// at payload edges), and every 331st elsewhere (a cut inside a payload
	// is one case).
	in := stream()
	var cuts []int
	for s := 0; s < len(in); s += headerLen + int(frameLen(in[s:])) {
		for k := max(0, s-12); k <= min(len(in), s+12); k++ {
			cuts = append(cuts, k)
		}
	}
	for k := 0; k <= len(in); k += 331 {
		cuts = append(cuts, k)
	}
	cuts = append(cuts, len(in))
	for _, max := range []uint32{DefaultMaxFrame, 20000, 1 << 20} {
		for _, k := range cuts {
			c, cc := withMax(max)
			writeAll(t, c, in[:k], in[k:])
			checkEquivalent(t, in, cc.out.Bytes(), int(max))
		}
	}
}

func TestWriteCutsAtEveryByteNearFrames(t *testing.T) {
	// Three writes, the cuts at every byte of the first frames' headers
	// and payloads.
	in := cat(data(1, 300, 100, false), data(3, 200, 100, true), data(1, 300, 100, true))
	for a := 0; a <= len(in); a++ {
		for b := a; b <= len(in); b += 29 {
			c, cc := withMax(1 << 20)
			writeAll(t, c, in[:a], in[a:b], in[b:])
			checkEquivalent(t, in, cc.out.Bytes(), 1<<20)
		}
	}
}

func TestWriteInBufferSizedChunks(t *testing.T) {
	// gRPC-Go's way: 16 KiB frames of ~1 MB messages, each with a small
	// frame ahead, written 512 KiB at a time.
	var in []byte
	for s := uint32(1); s < 8; s += 2 {
		in = cat(in, frame(0x1, 0x4, s, []byte("h")))
		for m := 0; m < 3; m++ {
			in = cat(in, data(s, 5, 5, false), data(s, 980000, 16384, false))
		}
		in = cat(in, frame(0x1, 0x5, s, []byte("t")))
	}
	c, cc := withMax(1 << 24)
	var chunks [][]byte
	for off := 0; off < len(in); off += 512 << 10 {
		chunks = append(chunks, in[off:min(off+512<<10, len(in))])
	}
	writeAll(t, c, chunks...)
	checkEquivalent(t, in, cc.out.Bytes(), 1<<24)
	_, _, before := canonical(in)
	_, _, after := canonical(cc.out.Bytes())
	if len(after)*10 > len(before) {
		t.Fatalf("%d DATA frames in, %d out: too few merged", len(before), len(after))
	}
}

func TestSettingsLearnedLate(t *testing.T) {
	cc := &captureConn{r: bytes.NewReader(cat([]byte(clientPreface), settings(false, 3, 100, settingMaxFrameSize, 1<<20)))}
	c := NewConn(cc)
	msg := data(1, 50000, 16384, false)
	writeAll(t, c, msg)
	if !bytes.Equal(cc.out.Bytes(), msg) {
		t.Fatal("frames merged before the client's SETTINGS")
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().PeerMaxFrame; got != 1<<20 {
		t.Fatalf("PeerMaxFrame %d after the client's SETTINGS", got)
	}
	cc.out.Reset()
	writeAll(t, c, msg)
	if _, _, lens := canonical(cc.out.Bytes()); !slices.Equal(lens, []int{50000}) {
		t.Fatalf("DATA frames %v after the SETTINGS", lens)
	}
}

func TestWriteErrorCountsWhatWent(t *testing.T) {
	in := cat(frame(0x1, 0x4, 1, []byte("h")), data(1, 50000, 16384, false), frame(0x6, 0, 0, make([]byte, 8)))
	for _, failAt := range []int{1, 14, 15, 20, 100, 16384 + 30, 50000} {
		c, cc := withMax(1 << 20)
		cc.failAt = failAt
		n, err := c.Write(slices.Clone(in))
		if err == nil || n >= len(in) {
			t.Fatalf("fail after %d bytes: Write = %d, %v", failAt, n, err)
		}
		// After an error the conn passes bytes through.
		cc.failAt = 0
		if n, err := c.Write(in); err != nil || n != len(in) || !bytes.HasSuffix(cc.out.Bytes(), in) {
			t.Fatalf("a write after an error: %d, %v, or changed", n, err)
		}
	}
}

// clientBytes is a client's side of a connection: preface, SETTINGS, some
// frames.
func clientBytes(max uint32) []byte {
	return cat([]byte(clientPreface), settings(false, 2, 0, settingMaxFrameSize, max, 4, 1<<20),
		frame(0x8, 0, 0, []byte{0, 0, 1, 0}), frame(0x1, 0x4, 1, []byte("headers")), data(1, 3000, 1000, true), settings(true))
}

func TestReadLearnsMaxFrameSize(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want uint32
	}{
		{"the client's max", clientBytes(1 << 20), 1 << 20},
		{"the largest max", clientBytes(maxFrameLimit), maxFrameLimit},
		{"the default", clientBytes(DefaultMaxFrame), DefaultMaxFrame},
		{"none said", cat([]byte(clientPreface), settings(false, 4, 1<<20)), DefaultMaxFrame},
		{"the later SETTINGS wins", cat(clientBytes(1<<20), settings(false, settingMaxFrameSize, 65536)), 65536},
		{"the last entry of a frame wins", cat([]byte(clientPreface), settings(false, settingMaxFrameSize, 1<<20, settingMaxFrameSize, 1<<18)), 1 << 18},
		{"not yet whole", cat([]byte(clientPreface), settings(false, settingMaxFrameSize, 1<<20)[:14]), DefaultMaxFrame},
		{"bad preface", cat([]byte("PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"), settings(false, settingMaxFrameSize, 1<<20)), 0},
		{"HTTP/1", []byte("GET / HTTP/1.1\r\n\r\n"), 0},
		{"max too small", cat([]byte(clientPreface), settings(false, settingMaxFrameSize, 16383)), 0},
		{"max too large", cat([]byte(clientPreface), settings(false, settingMaxFrameSize, 1<<24)), 0},
		{"SETTINGS on a stream", cat([]byte(clientPreface), frame(typeSettings, 0, 1, make([]byte, 6))), 0},
		{"SETTINGS of 7 bytes", cat([]byte(clientPreface), frame(typeSettings, 0, 0, make([]byte, 7))), 0},
		{"an ACK with a payload", cat([]byte(clientPreface), frame(typeSettings, flagAck, 0, make([]byte, 6))), 0},
		{"a frame beyond gRPC's max", cat([]byte(clientPreface), settings(false, settingMaxFrameSize, 1<<20), data(1, 16385, 16385, false)), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{1, 2, 5, 9, 24, 25, 1 << 20} {
				cc := &captureConn{r: &chunkReader{b: tt.in, n: chunk}}
				c := NewConn(cc)
				got, err := io.ReadAll(c)
				if err != nil || !bytes.Equal(got, tt.in) {
					t.Fatalf("chunks of %d: read %d bytes, %v: not what was sent", chunk, len(got), err)
				}
				if m := c.Stats().PeerMaxFrame; m != int64(tt.want) {
					t.Fatalf("chunks of %d: PeerMaxFrame %d, want %d", chunk, m, tt.want)
				}
			}
		})
	}
}

func TestPassThroughAfterBadClientBytes(t *testing.T) {
	cc := &captureConn{r: bytes.NewReader([]byte("GET / HTTP/1.1\r\n\r\n"))}
	c := NewConn(cc)
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	in := data(1, 4000, 1000, false) // would merge within the default max
	writeAll(t, c, in)
	if !bytes.Equal(cc.out.Bytes(), in) {
		t.Fatal("a connection whose client is not HTTP/2 had its writes changed")
	}
}

// chunkReader reads b n bytes at a time.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}

// refMax is what the client's bytes b say of its max frame size, parsed
// whole: 0 when they are not what gRPC would accept.
func refMax(b []byte) uint32 {
	if len(b) < len(clientPreface) {
		if string(b) != clientPreface[:len(b)] {
			return 0
		}
		return DefaultMaxFrame
	}
	if string(b[:len(clientPreface)]) != clientPreface {
		return 0
	}
	b = b[len(clientPreface):]
	max := uint32(DefaultMaxFrame)
	for len(b) >= headerLen {
		n := int(frameLen(b))
		typ, flags, id := b[3], b[4], binary.BigEndian.Uint32(b[5:])&(1<<31-1)
		if n > maxClientFrame {
			return 0
		}
		p := b[headerLen:min(len(b), headerLen+n)]
		if typ == typeSettings {
			switch {
			case id != 0, flags&flagAck != 0 && n != 0, flags&flagAck == 0 && n%6 != 0:
				return 0
			}
			pending := uint32(0)
			for i := 0; flags&flagAck == 0 && i+6 <= len(p); i += 6 {
				if binary.BigEndian.Uint16(p[i:]) == settingMaxFrameSize {
					v := binary.BigEndian.Uint32(p[i+2:])
					if v < DefaultMaxFrame || v > maxFrameLimit {
						return 0
					}
					pending = v
				}
			}
			if pending != 0 && len(p) == n {
				max = pending
			}
		}
		if len(p) < n {
			break
		}
		b = b[headerLen+n:]
	}
	return max
}

func TestReadMatchesReference(t *testing.T) {
	for _, in := range [][]byte{clientBytes(1 << 20), clientBytes(70000), cat(clientBytes(1<<20), []byte{0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 5, 0, 0})} {
		for cut := 0; cut <= len(in); cut++ {
			c := NewConn(&captureConn{r: &chunkReader{b: in[:cut], n: 3}})
			if _, err := io.ReadAll(c); err != nil {
				t.Fatal(err)
			}
			if got, want := c.Stats().PeerMaxFrame, int64(refMax(in[:cut])); got != want {
				t.Fatalf("%d bytes: PeerMaxFrame %d, reference %d", cut, got, want)
			}
		}
	}
}

func ExampleConn_Stats() {
	cc := &captureConn{r: bytes.NewReader(cat([]byte(clientPreface), settings(false, settingMaxFrameSize, 1<<20)))}
	c := NewConn(cc)
	_, _ = io.ReadAll(c)
	_, _ = c.Write(data(1, 100000, 16384, true))
	st := c.Stats()
	fmt.Println(st.DataFrames, st.MergedFrames, st.LargestFrame)
	// Output: 1 7 100000
}

// TestTinyFramesLeaveNoPlanBehind: a client that opens its flow-control
// window a byte at a time makes gRPC write a buffer of 1-byte DATA frames,
// tens of thousands per Write; merged, they plan as many segments. The
// connection may need that plan while it writes, but keeps at most
// maxKeptPlan of it afterwards, as it keeps for any ordinary write.
func TestTinyFramesLeaveNoPlanBehind(t *testing.T) {
	in := data(1, (512<<10)/(headerLen+1), 1, false)
	c, cc := withMax(maxFrameLimit)
	writeAll(t, c, in)
	checkEquivalent(t, in, cc.out.Bytes(), maxFrameLimit)
	w := &c.wr
	kept := cap(w.segs)*24 + cap(w.lens)*8 + cap(w.ends)*8 + cap(w.isHead) + cap(w.heads)
	if kept > maxKeptPlan {
		t.Errorf("after a write of %d 1-byte frames the connection keeps %d bytes of its plan, want at most %d", len(in)/(headerLen+1), kept, maxKeptPlan)
	}
	// An ordinary write's plan is kept for the next.
	ordinary := data(3, 512<<10, 16384, false)
	writeAll(t, c, ordinary)
	if cap(w.segs) == 0 {
		t.Error("the plan of an ordinary write was not kept for the next")
	}
}

// TestTinyFramesOneWritev: however many tiny frames a write holds, it goes
// out in at most maxSegments segments (one writev); the frames past that
// many pass unmerged.
func TestTinyFramesOneWritev(t *testing.T) {
	for _, in := range [][]byte{
		data(1, (512<<10)/(headerLen+1), 1, false),
		cat(data(1, 3000, 1, false), frame(0x6, 0, 0, make([]byte, 8)), data(3, 3000, 1, true)),
		data(1, 2*maxSegments, 1, true),
	} {
		c, cc := withMax(1 << 20)
		writeAll(t, c, in) // captureConn has no writev: a Write per segment
		checkEquivalent(t, in, cc.out.Bytes(), 1<<20)
		if cc.writes > maxSegments {
			t.Fatalf("a write of %d bytes went out in %d segments, want at most %d", len(in), cc.writes, maxSegments)
		}
		if _, _, lens := canonical(cc.out.Bytes()); lens[0] < maxSegments-8 {
			t.Fatalf("the first run merged only %d frames", lens[0])
		}
	}
}
