package h2coalesce

import (
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawWriter writes to a non-blocking socket with writev system calls the Go
// runtime is not told of (syscall.RawSyscall): a writev of a socket never
// blocks (it returns EAGAIN, and the runtime's poller waits for room), and
// one the runtime is told of lets its monitor hand the writer's processor to
// another thread whenever the call takes longer than 20 µs, as a write of
// half a megabyte does, and wake a thread to run it: two wake-ups per write,
// and the monitor polling every 20 µs while it goes on.
type rawWriter struct {
	rc  syscall.RawConn
	iov []syscall.Iovec
}

// newRawWriter returns the raw writer of c, or nil when c is not a TCP or
// Unix socket.
func newRawWriter(c net.Conn) *rawWriter {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &rawWriter{rc: rc}
}

// maxIov is Linux's IOV_MAX.
const maxIov = 1024

// writeBuffers writes every byte of bufs, in order, and returns how many
// went out; bufs is left as it was.
func (w *rawWriter) writeBuffers(bufs [][]byte) (int64, error) {
	var total int64
	i, off := 0, 0 // the next byte is bufs[i][off]
	var errno syscall.Errno
	err := w.rc.Write(func(fd uintptr) bool {
		for {
			for i < len(bufs) && off == len(bufs[i]) {
				i, off = i+1, 0
			}
			if i == len(bufs) {
				return true
			}
			w.iov = w.iov[:0]
			for j := i; j < len(bufs) && len(w.iov) < maxIov; j++ {
				b := bufs[j]
				if j == i {
					b = b[off:]
				}
				if len(b) == 0 {
					continue
				}
				v := syscall.Iovec{Base: &b[0]}
				v.SetLen(len(b))
				w.iov = append(w.iov, v)
			}
			n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(len(w.iov)))
			clear(w.iov) // no references kept between writes
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
				return false // the poller waits for room, then calls again
			case e != 0:
				errno = e
				return true
			}
			total += int64(n)
			for n > 0 {
				k := min(int(n), len(bufs[i])-off)
				off += k
				n -= uintptr(k)
				if off == len(bufs[i]) {
					i, off = i+1, 0
				}
			}
		}
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("writev", errno)
	}
	return total, err
}
