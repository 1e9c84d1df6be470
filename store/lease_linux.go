//go:build linux

package store

import (
	"errors"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A file store lends the bytes of its files from read-only memory mappings
// (File.Map) only while it holds a read lease on the file (fcntl(2)
// F_SETLEASE): the kernel then refuses a read lease while the file is open
// for writing anywhere, and holds up any process's open for writing or
// truncate of it (a non-blocking open fails with EAGAIN) until the lease is
// released, or until /proc/sys/fs/lease-break-time has passed, and tells the
// holder with SIGIO. A file cut short under a mapping would make the next
// access to the mapping fault (SIGBUS), which the Go runtime cannot recover
// from in a goroutine it did not ask to (gRPC's writer copies the bytes), so
// a mapping never outlives its lease: when the lease is being broken, every
// block still lent is copied to anonymous memory, which is moved over the
// block's address (mremap), so that whoever reads it reads the same bytes
// from memory that no longer depends on the file; only then is the lease
// released. The file's later blocks are read with pread.
//
// Leases are used only on local file systems whose every change goes
// through this kernel (ext2/3/4, XFS, Btrfs, tmpfs: not network or FUSE
// file systems, whose files can change without breaking a lease), and while
// lease-break-time leaves minLeaseBreak to react.

// minLeaseBreak is the least /proc/sys/fs/lease-break-time under which
// files are mapped: the time there is to copy the blocks still lent once a
// lease is being broken.
const minLeaseBreak = 5 * time.Second

// leaseScan is how often the leases held are checked even without a signal.
const leaseScan = time.Second

// leaseFS are the file systems whose files are mapped under a lease.
var leaseFS = map[int64]bool{
	unix.EXT4_SUPER_MAGIC:  true, // also ext2 and ext3
	unix.XFS_SUPER_MAGIC:   true,
	unix.BTRFS_SUPER_MAGIC: true,
	unix.TMPFS_MAGIC:       true,
}

// leaser holds a file store's leases and breaks them when asked: its
// goroutine, started with the first lease and stopped by stop, waits for
// SIGIO (and checks every leaseScan in case a signal was missed).
type leaser struct {
	breakTime func() time.Duration // reads lease-break-time; replaced by tests

	mu      sync.Mutex
	files   map[*leasedFile]struct{}
	started bool
	stopped bool
	quit    chan struct{}
	done    chan struct{}
}

func newLeaser() *leaser {
	return &leaser{breakTime: leaseBreakTime, files: map[*leasedFile]struct{}{}, quit: make(chan struct{}), done: make(chan struct{})}
}

// leaseBreakTime reads /proc/sys/fs/lease-break-time; 0 if it cannot.
func leaseBreakTime() time.Duration {
	b, err := os.ReadFile("/proc/sys/fs/lease-break-time")
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Second
}

// add registers lf (before its lease is taken, so that no break is
// missed) and starts the goroutine; false once the store is closed.
func (l *leaser) add(lf *leasedFile) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.files[lf] = struct{}{}
	if !l.started {
		l.started = true
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, unix.SIGIO)
		go l.run(sig)
	}
	return true
}

func (l *leaser) remove(lf *leasedFile) {
	l.mu.Lock()
	delete(l.files, lf)
	l.mu.Unlock()
}

func (l *leaser) run(sig chan os.Signal) {
	defer close(l.done)
	defer signal.Stop(sig)
	tick := time.NewTicker(leaseScan)
	defer tick.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-sig:
		case <-tick.C:
		}
		l.scan()
	}
}

// scan revokes every lease being broken (or gone), and all of them when
// lease-break-time has become too short.
func (l *leaser) scan() {
	short := l.breakTime() < minLeaseBreak
	l.mu.Lock()
	files := make([]*leasedFile, 0, len(l.files))
	for lf := range l.files {
		files = append(files, lf)
	}
	l.mu.Unlock()
	for _, lf := range files {
		lf.mu.Lock()
		if lf.state == leaseHeld && (short || !lf.holdsLocked()) {
			lf.revokeLocked()
		}
		lf.mu.Unlock()
	}
}

// stop ends the goroutine, and with it the leases: with no one left to
// answer a break, the blocks still lent are moved to anonymous memory now.
func (l *leaser) stop() {
	if l == nil {
		return
	}
	l.mu.Lock()
	started := l.started && !l.stopped
	l.stopped = true
	l.mu.Unlock()
	if !started {
		return
	}
	close(l.quit)
	<-l.done
	l.mu.Lock()
	files := make([]*leasedFile, 0, len(l.files))
	for lf := range l.files {
		files = append(files, lf)
	}
	l.mu.Unlock()
	for _, lf := range files {
		lf.mu.Lock()
		if lf.state == leaseHeld {
			lf.revokeLocked()
		}
		lf.mu.Unlock()
	}
}

const (
	leaseUntried = iota // no block mapped yet
	leaseHeld           // blocks are mapped
	leaseOff            // refused or revoked: blocks are read with pread
)

// leasedFile is the lease and the mapped blocks of one open File.
type leasedFile struct {
	l  *leaser
	fd int // the File's descriptor
	// unchanged checks that the file is as when the File was opened.
	unchanged func() error

	mu     sync.Mutex
	state  int
	dup    int // a duplicate of fd holding the lease while blocks are lent; -1 when none
	live   map[*region]struct{}
	closed bool // the File is closed
}

// region is one mapped block: length bytes from addr (a page boundary).
type region struct {
	addr   unsafe.Pointer
	length uintptr
}

func newLeasedFile(l *leaser, f *os.File, unchanged func() error) *leasedFile {
	if l == nil {
		return nil
	}
	return &leasedFile{l: l, fd: int(f.Fd()), unchanged: unchanged, dup: -1, live: map[*region]struct{}{}}
}

// take takes the lease, once; false when the file is not to be mapped.
func (lf *leasedFile) takeLocked() bool {
	if lf.state != leaseUntried {
		return lf.state == leaseHeld
	}
	lf.state = leaseOff
	var fs unix.Statfs_t
	if err := unix.Fstatfs(lf.fd, &fs); err != nil || !leaseFS[int64(fs.Type)] || lf.l.breakTime() < minLeaseBreak {
		return false
	}
	// The lease belongs to the open file description: a duplicate keeps it
	// (and the file) while blocks are lent after the File is closed.
	dup, err := unix.FcntlInt(uintptr(lf.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return false
	}
	if !lf.l.add(lf) {
		_ = unix.Close(dup)
		return false
	}
	// Refused (EAGAIN) while the file is open for writing; EACCES when
	// this process neither owns the file nor has CAP_LEASE; EINVAL where the
	// file system has no leases.
	if _, err := unix.FcntlInt(uintptr(dup), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
		lf.l.remove(lf)
		_ = unix.Close(dup)
		return false
	}
	lf.dup = dup
	// Under the lease nothing changes the file: if it is still as it was
	// when opened, every block within that size is within the file.
	if lf.unchanged() != nil {
		lf.releaseLocked()
		return false
	}
	lf.state = leaseHeld
	return true
}

// holdsLocked reports whether the lease is held and not being broken (a
// lease being broken reads as the type it is broken to: F_UNLCK).
func (lf *leasedFile) holdsLocked() bool {
	t, err := unix.FcntlInt(uintptr(lf.dup), unix.F_GETLEASE, 0)
	return err == nil && t == unix.F_RDLCK
}

// mapBlock maps [off, off+n) of the file (n > 0, off+n within it); ok is
// false when it is to be read with pread instead.
func (lf *leasedFile) mapBlock(off, n int64) (b []byte, release func(), ok bool) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.closed || !lf.takeLocked() {
		return nil, nil, false
	}
	if !lf.holdsLocked() {
		lf.revokeLocked()
		return nil, nil, false
	}
	page := int64(os.Getpagesize())
	start := off &^ (page - 1)
	length := uintptr(off + n - start)
	addr, err := unix.MmapPtr(lf.dup, start, nil, length, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, false
	}
	// Read the pages in now: a page that cannot be read (an I/O error)
	// fails here rather than faulting wherever the bytes are read.
	if err := unix.Madvise(unsafe.Slice((*byte)(addr), length), unix.MADV_POPULATE_READ); err != nil && !errors.Is(err, unix.EINVAL) {
		_ = unix.MunmapPtr(addr, length)
		return nil, nil, false
	}
	r := &region{addr: addr, length: length}
	lf.live[r] = struct{}{}
	b = unsafe.Slice((*byte)(unsafe.Add(addr, off-start)), n)
	var once sync.Once
	return b[:n:n], func() { once.Do(func() { lf.unmap(r) }) }, true
}

// unmap ends the loan of r.
func (lf *leasedFile) unmap(r *region) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	delete(lf.live, r)
	_ = unix.MunmapPtr(r.addr, r.length)
	lf.finishLocked()
}

// close is the File's Close: the lease goes once no block is lent.
func (lf *leasedFile) close() {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	lf.closed = true
	lf.finishLocked()
}

// finishLocked releases the lease when the File is closed and no block is
// lent.
func (lf *leasedFile) finishLocked() {
	if !lf.closed || len(lf.live) > 0 || lf.dup < 0 {
		return
	}
	lf.releaseLocked()
	if lf.state == leaseHeld {
		lf.state = leaseOff
	}
}

// releaseLocked releases the lease: closing the last descriptor of the
// open file description does, and so does unmapping its last mapping.
func (lf *leasedFile) releaseLocked() {
	_, _ = unix.FcntlInt(uintptr(lf.dup), unix.F_SETLEASE, unix.F_UNLCK)
	_ = unix.Close(lf.dup)
	lf.dup = -1
	lf.l.remove(lf)
}

// revokeLocked stops mapping the file: every block still lent is moved to
// anonymous memory holding the same bytes, then the lease is released. A
// block that cannot be moved keeps the lease held; the next scan tries
// again (the kernel breaks the lease itself after lease-break-time).
func (lf *leasedFile) revokeLocked() {
	for r := range lf.live {
		if err := r.toAnonymous(); err != nil {
			return
		}
		// It no longer needs the file or the lease; its release unmaps
		// the anonymous memory.
		delete(lf.live, r)
	}
	lf.state = leaseOff
	lf.releaseLocked()
}

// toAnonymous copies r's bytes to anonymous memory and moves that memory to
// r's address, in place of the file's pages: a reader sees the same bytes
// before, during and after.
func (r *region) toAnonymous() (err error) {
	anon, err := unix.MmapPtr(-1, 0, nil, r.length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = unix.MunmapPtr(anon, r.length)
		}
	}()
	if err := copyPages(anon, r.addr, r.length); err != nil {
		return err
	}
	if err := unix.Mprotect(unsafe.Slice((*byte)(anon), r.length), unix.PROT_READ); err != nil {
		return err
	}
	// MREMAP_FIXED unmaps what was at r.addr (the file's pages) and puts
	// the anonymous pages there, in one call under the address space's
	// lock.
	_, _, e := unix.Syscall6(unix.SYS_MREMAP, uintptr(anon), r.length, r.length, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, uintptr(r.addr), 0)
	if e != 0 {
		return e
	}
	return nil
}

// copyPages copies n bytes from src to dst; a fault reading src (a page
// that cannot be read) is an error, not a crash.
func copyPages(dst, src unsafe.Pointer, n uintptr) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			err = errors.New("a mapped page could not be read")
		}
	}()
	copy(unsafe.Slice((*byte)(dst), n), unsafe.Slice((*byte)(src), n))
	return nil
}
