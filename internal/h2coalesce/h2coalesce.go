// Package h2coalesce sends a server's HTTP/2 DATA frames as fewer, larger
// frames: a net.Conn wrapper, for gRPC-Go's server transport, that merges
// runs of adjacent DATA frames of one stream within each Write into one
// frame, as large as the client allows.
//
// gRPC-Go cuts every message into 16 KiB DATA frames whatever the client
// allows, and a client pays per frame to gather a message. The wrapper reads
// the frame headers in the bytes gRPC writes (it writes its whole write
// buffer, full of frames, at once) and writes a run of complete DATA frames
// of the same stream, none of them padded and only the last one ending the
// stream, as one DATA frame: a new 9-byte header followed by the runs'
// payloads, sliced from the bytes being written and sent with one writev, so
// the payloads are not copied. A merged frame is at most the client's
// SETTINGS_MAX_FRAME_SIZE, which the wrapper learns by watching (never
// altering) the bytes the client sends: until the client's SETTINGS say
// more, frames stay 16 KiB and nothing is merged. Every other frame, and a
// frame cut by the end of a Write, goes out byte for byte. The merged stream
// carries the same bytes of each stream's data, the same other frames, in
// the same order; flow control, which counts payload bytes, is unchanged.
//
// On Linux, a Conn over a TCP or Unix socket writes with writev system calls
// the Go runtime is not told of (see rawWriter): the socket is non-blocking,
// so a write never blocks, and the runtime's monitor does not hand the
// writing goroutine's processor to another thread (and wake one) during
// each write of gRPC's half-megabyte buffer.
//
// Anything unexpected on the client's side (not the HTTP/2 client preface, a
// malformed SETTINGS frame, a frame larger than gRPC accepts) switches the
// connection to plain pass-through for good, and gRPC handles it as it would
// have without the wrapper.
package h2coalesce

import (
	"encoding/binary"
	"net"
	"sync/atomic"
)

// HTTP/2 framing (RFC 9113, section 4 and 6).
const (
	headerLen = 9
	// DefaultMaxFrame is the HTTP/2 default of SETTINGS_MAX_FRAME_SIZE, the
	// largest frame a client accepts until it says otherwise.
	DefaultMaxFrame = 16384
	// maxFrameLimit is the largest SETTINGS_MAX_FRAME_SIZE allowed.
	maxFrameLimit = 1<<24 - 1
	// maxClientFrame is the largest frame the client may send a gRPC-Go
	// server, which advertises 16 KiB and refuses larger frames.
	maxClientFrame = 16384

	typeData     = 0x0
	typeSettings = 0x4

	flagEndStream = 0x1
	flagAck       = 0x1

	settingMaxFrameSize = 0x5
)

// clientPreface opens every HTTP/2 connection from the client.
const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Stats counts what a connection's writes carried.
type Stats struct {
	// DataFrames is the number of DATA frames written to the connection,
	// after merging; MergedFrames the number of frames gRPC wrote that went
	// into merged ones (a run of k frames counts k); Merges the number of
	// merged frames written.
	DataFrames, MergedFrames, Merges int64
	// LargestFrame is the largest DATA payload written, in bytes.
	LargestFrame int64
	// PeerMaxFrame is the client's SETTINGS_MAX_FRAME_SIZE as learnt so far
	// (DefaultMaxFrame until known); 0 once the connection passes bytes
	// through unchanged.
	PeerMaxFrame int64
}

// Conn wraps the server side of an HTTP/2 connection (plaintext, or the
// plaintext side of TLS). Its Write merges DATA frames as the package doc
// says; its Read returns what the wrapped conn read, unchanged, and learns
// the client's settings from it. As any net.Conn, one goroutine may Read
// while another Writes.
type Conn struct {
	net.Conn
	// peerMax is the largest frame the client accepts, 0 once the
	// connection has switched to pass-through.
	peerMax atomic.Uint32
	rd      reader // the reading goroutine's
	wr      writer // the writing goroutine's
	// raw, when set, writes to the socket without telling the runtime
	// (see rawWriter); one is the writing goroutine's scratch for it.
	raw *rawWriter
	one [1][]byte

	dataFrames, mergedFrames, merges, largest atomic.Int64
}

// NewConn wraps c, the server side of a connection whose client has not yet
// sent anything.
func NewConn(c net.Conn) *Conn {
	w := &Conn{Conn: c, raw: newRawWriter(c)}
	w.peerMax.Store(DefaultMaxFrame)
	return w
}

// Stats returns the connection's counts so far.
func (c *Conn) Stats() Stats {
	return Stats{
		DataFrames: c.dataFrames.Load(), MergedFrames: c.mergedFrames.Load(), Merges: c.merges.Load(),
		LargestFrame: c.largest.Load(), PeerMaxFrame: int64(c.peerMax.Load()),
	}
}

// Read reads from the wrapped conn and watches the bytes for the client's
// SETTINGS.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.rd.off {
		c.rd.observe(b[:n])
		switch {
		case c.rd.off:
			c.peerMax.Store(0)
		case c.rd.maxFrame != 0:
			c.peerMax.Store(c.rd.maxFrame)
			c.rd.maxFrame = 0
		}
	}
	return n, err
}

// Write writes p, its runs of DATA frames merged up to the client's largest
// frame. It returns how many of p's bytes went out, as io.Writer does, and
// keeps no reference to p.
func (c *Conn) Write(p []byte) (int, error) {
	peerMax := c.peerMax.Load()
	if peerMax == 0 || c.wr.off {
		return c.write(p)
	}
	c.wr.plan(p, peerMax)
	c.count()
	if c.wr.newHeads == 0 {
		c.wr.reset()
		return c.write(p)
	}
	var out int64
	var err error
	if c.raw != nil {
		out, err = c.raw.writeBuffers(c.wr.segs)
	} else {
		bufs := net.Buffers(c.wr.segs) // WriteTo consumes bufs, and with it segs
		out, err = bufs.WriteTo(c.Conn)
	}
	n := len(p)
	if err != nil {
		n = c.wr.consumed(out)
		c.wr.off = true // the connection is broken; nothing to merge any more
	}
	c.wr.reset()
	return n, err
}

// write writes p as it is.
func (c *Conn) write(p []byte) (int, error) {
	if c.raw == nil {
		return c.Conn.Write(p)
	}
	c.one[0] = p
	n, err := c.raw.writeBuffers(c.one[:])
	c.one[0] = nil
	return int(n), err
}

// count adds the planned write's frames to the connection's counts.
func (c *Conn) count() {
	st := &c.wr.st
	if st.dataFrames != 0 {
		c.dataFrames.Add(st.dataFrames)
	}
	if st.merges != 0 {
		c.merges.Add(st.merges)
		c.mergedFrames.Add(st.mergedFrames)
	}
	if st.largest > c.largest.Load() {
		c.largest.Store(st.largest)
	}
	*st = writeStats{}
}

// writeStats are the counts of one planned write.
type writeStats struct {
	dataFrames, mergedFrames, merges, largest int64
}

// writer plans each Write: the segments to send, slices of the written bytes
// and new frame headers. It tracks a frame cut by the end of a Write into
// the next one.
type writer struct {
	// rest is the count of bytes of the current frame still to come in
	// later writes; head holds the first headN bytes of a frame header cut
	// by the end of a write.
	rest  int
	head  [headerLen]byte
	headN int
	// off is set once the connection's writes pass through unchanged.
	off bool

	// segs is the plan of the current write, lens their lengths; ends[i]
	// is the offset in p that segs[0..i] account for once written,
	// isHead[i] whether segs[i] is a new header. heads holds the new headers (a header's segment
	// keeps its bytes if heads grows), newHeads their count.
	segs     [][]byte
	lens     []int
	ends     []int
	isHead   []bool
	heads    []byte
	newHeads int
	st       writeStats
}

// maxSegments bounds the segments a write is sent in, so that it is one
// writev (Linux's IOV_MAX, up to which Go's writev goes at once). An
// ordinary write (16 KiB frames) needs a few dozen; a write of many tiny
// frames merges until its plan holds this many, and the rest of it goes out
// as it is.
const maxSegments = 1024

// maxKeptPlan bounds, in bytes, the plan a connection keeps between writes
// for the next: that of an ordinary write (gRPC's buffer of 16 KiB frames).
// A write of many tiny frames (a client opening its window a byte at a time)
// plans a segment per frame; its plan is dropped once written.
const maxKeptPlan = 64 << 10

// reset forgets the current write's plan, and with it every reference to p.
func (w *writer) reset() {
	if cap(w.segs)*(24+8+8+1)+cap(w.heads) > maxKeptPlan {
		w.segs, w.lens, w.ends, w.isHead, w.heads = nil, nil, nil, nil, nil
		w.newHeads = 0
		return
	}
	clear(w.segs)
	w.segs = w.segs[:0]
	w.ends = w.ends[:0]
	w.lens = w.lens[:0]
	w.isHead = w.isHead[:0]
	w.heads = w.heads[:0]
	w.newHeads = 0
}

// consumed returns how many bytes of p the first out bytes of the plan
// account for: p's bytes up to the last segment sent whole, and those of a
// part-sent slice of p; a part-sent new header accounts for none. (Sending
// consumes segs; lens keeps their lengths.)
func (w *writer) consumed(out int64) int {
	start := 0
	for i, n := range w.lens {
		if out < int64(n) {
			if w.ends[i]-start == n && !w.isHead[i] {
				return start + int(out)
			}
			return start
		}
		out -= int64(n)
		start = w.ends[i]
	}
	return start
}

// add appends a segment that accounts for p up to end; head says it is a
// new header.
func (w *writer) add(s []byte, end int, head bool) {
	if len(s) == 0 {
		return
	}
	w.segs = append(w.segs, s)
	w.lens = append(w.lens, len(s))
	w.ends = append(w.ends, end)
	w.isHead = append(w.isHead, head)
}

// plan fills segs with p's bytes, each run of adjacent complete DATA frames
// of one stream merged into frames of at most peerMax bytes of payload.
func (w *writer) plan(p []byte, peerMax uint32) {
	limit := int(min(peerMax, maxFrameLimit))
	i := 0
	// The end of a frame header cut by the previous write.
	if w.headN > 0 {
		k := copy(w.head[w.headN:], p)
		w.headN += k
		i = k
		if w.headN < headerLen {
			w.add(p, len(p), false)
			return
		}
		w.headN = 0
		w.rest = int(frameLen(w.head[:]))
		if w.head[3] == typeData {
			w.st.dataFrames++
		}
	}
	// The rest of a frame cut by the previous write.
	if w.rest > 0 {
		k := min(w.rest, len(p)-i)
		w.rest -= k
		i += k
	}
	pass := 0 // p[pass:i] is still to go out as it is; p[pass:] at the end
	for i < len(p) {
		if len(p)-i < headerLen {
			w.headN = copy(w.head[:], p[i:])
			break
		}
		h := p[i : i+headerLen]
		n := int(frameLen(h))
		end := i + headerLen + n
		if h[3] == typeData {
			w.st.dataFrames++
			w.st.largest = max(w.st.largest, int64(n))
		}
		if end > len(p) {
			w.rest = end - len(p)
			break
		}
		if !mergeable(h) || h[4]&flagEndStream != 0 {
			i = end
			continue
		}
		// A run: frames of h's stream, complete, none ending the stream
		// but the last, within max, and within the segments left (those
		// before the run, the new header, a payload per frame, those
		// after the last run).
		budget := maxSegments - len(w.segs) - 3
		if budget < 2 {
			i = end
			continue
		}
		stream := binary.BigEndian.Uint32(h[5:])
		total, frames, last := n, 1, end
		var flags byte
		for last+headerLen <= len(p) && frames < budget {
			g := p[last : last+headerLen]
			m := int(frameLen(g))
			if !mergeable(g) || binary.BigEndian.Uint32(g[5:]) != stream ||
				last+headerLen+m > len(p) || total+m > limit {
				break
			}
			total += m
			frames++
			last += headerLen + m
			if g[4]&flagEndStream != 0 {
				flags = flagEndStream
				break
			}
		}
		if frames == 1 {
			i = end
			continue
		}
		w.add(p[pass:i], i, false)
		hs := len(w.heads)
		w.heads = append(w.heads, byte(total>>16), byte(total>>8), byte(total), typeData, flags,
			byte(stream>>24), byte(stream>>16), byte(stream>>8), byte(stream))
		w.add(w.heads[hs:hs+headerLen:hs+headerLen], i+headerLen, true)
		w.newHeads++
		for j := i; j < last; {
			m := int(frameLen(p[j:]))
			w.add(p[j+headerLen:j+headerLen+m], j+headerLen+m, false)
			j += headerLen + m
		}
		// The run's first frame was counted as one DATA frame, its others
		// not at all: the merged frame counts one.
		w.st.mergedFrames += int64(frames)
		w.st.merges++
		w.st.largest = max(w.st.largest, int64(total))
		i, pass = last, last
	}
	w.add(p[pass:], len(p), false)
}

// mergeable reports whether the frame of header h may be merged with frames
// of its stream: DATA on a stream (the reserved bit unset), with no flag but
// END_STREAM.
func mergeable(h []byte) bool {
	id := binary.BigEndian.Uint32(h[5:])
	return h[3] == typeData && h[4]&^flagEndStream == 0 && id != 0 && id>>31 == 0
}

// frameLen is the payload length in frame header h.
func frameLen(h []byte) uint32 {
	return uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
}

// reader watches the client's bytes: the preface, then frames, learning
// SETTINGS_MAX_FRAME_SIZE from SETTINGS frames.
type reader struct {
	// pre counts the preface's bytes seen.
	pre int
	// head holds the first headN bytes of the current frame's header; rest
	// is the count of its payload's bytes still to come.
	head  [headerLen]byte
	headN int
	rest  int
	// settings is set while the current frame is a SETTINGS frame (not
	// an ACK), whose entries are parsed: entry holds the first entryN bytes
	// of the current one, pending the MAX_FRAME_SIZE it sets so far.
	settings bool
	entry    [6]byte
	entryN   int
	pending  uint32
	// maxFrame is the MAX_FRAME_SIZE of the last complete SETTINGS frame
	// that set it, until taken (0: none new).
	maxFrame uint32
	// off is set once the bytes are not what gRPC would accept.
	off bool
}

// observe reads b, the next bytes from the client.
func (r *reader) observe(b []byte) {
	for len(b) > 0 && !r.off {
		if r.pre < len(clientPreface) {
			k := min(len(clientPreface)-r.pre, len(b))
			if string(b[:k]) != clientPreface[r.pre:r.pre+k] {
				r.off = true
				return
			}
			r.pre += k
			b = b[k:]
			continue
		}
		if r.headN < headerLen {
			k := copy(r.head[r.headN:], b)
			r.headN += k
			b = b[k:]
			if r.headN < headerLen {
				return
			}
			if !r.begin() {
				r.off = true
				return
			}
			if r.rest == 0 {
				r.end()
			}
			continue
		}
		k := min(r.rest, len(b))
		if r.settings {
			r.parse(b[:k])
		}
		r.rest -= k
		b = b[k:]
		if r.rest == 0 {
			r.end()
		}
	}
}

// begin checks the header in head and starts its frame; false means it is
// not a frame gRPC would accept.
func (r *reader) begin() bool {
	n := frameLen(r.head[:])
	if n > maxClientFrame {
		return false
	}
	r.rest = int(n)
	r.settings = false
	if r.head[3] != typeSettings {
		return true
	}
	if binary.BigEndian.Uint32(r.head[5:])&(1<<31-1) != 0 {
		return false
	}
	if r.head[4]&flagAck != 0 {
		return n == 0
	}
	if n%6 != 0 {
		return false
	}
	r.settings = true
	r.entryN = 0
	r.pending = 0
	return true
}

// parse reads the next bytes of a SETTINGS frame's payload.
func (r *reader) parse(b []byte) {
	for len(b) > 0 {
		k := copy(r.entry[r.entryN:], b)
		r.entryN += k
		b = b[k:]
		if r.entryN < len(r.entry) {
			return
		}
		r.entryN = 0
		if binary.BigEndian.Uint16(r.entry[:]) != settingMaxFrameSize {
			continue
		}
		v := binary.BigEndian.Uint32(r.entry[2:])
		if v < DefaultMaxFrame || v > maxFrameLimit {
			r.off = true
			return
		}
		r.pending = v
	}
}

// end ends the current frame: a SETTINGS frame's MAX_FRAME_SIZE applies.
func (r *reader) end() {
	if r.settings && r.pending != 0 {
		r.maxFrame = r.pending
	}
	r.settings = false
	r.headN = 0
}
