//go:build linux

package store

import (
	"cmp"
	"errors"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
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
// a mapping never outlives its lease: when the lease is being broken, the
// pages of every block still lent are copied to anonymous memory, which is
// moved over their address (mremap), so that whoever reads them reads the
// same bytes from memory that no longer depends on the file, and the rest
// of each mapping is replaced too; only then is the lease released. The
// file's later blocks are read with pread.
//
// Blocks are lent from windows of the file (windowBytes), each mapped once
// and unmapped when none of its blocks is lent any more and the File reads
// from another window or is closed; each block's pages are read in just
// before it is lent.
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

// windowBytes is the least a file is mapped at once: blocks are lent from
// windows of this many bytes of the file (or a block's own length, when
// larger), each mapped once and unmapped once none of its blocks is lent
// and no more will be, rather than from a mapping of their own: a mapping
// costs an mmap, and its unmapping a TLB shootdown on every core that ran
// the process. A window's pages are read in block by block as they are
// lent, and stay mapped (counted in the process's file-backed resident
// memory) until it is unmapped, so a stream maps the window its blocks come
// from and those whose blocks gRPC still holds: the few blocks it has not
// written yet, so in practice at most the window before.
const windowBytes = 16 << 20

// leasedFile is the lease and the mapped windows of one open File.
type leasedFile struct {
	l  *leaser
	fd int // the File's descriptor
	// unchanged checks that the file is as when the File was opened.
	unchanged func() error

	mu     sync.Mutex
	state  int
	dup    int   // a duplicate of fd holding the lease while blocks are lent; -1 when none
	size   int64 // the file's size under the lease
	window int64 // windowBytes; replaced by tests
	// cur is the window new blocks are lent from; nil when none.
	cur *window
	// windows are the windows that map the file: cur, and those that still
	// lend blocks.
	windows map[*window]struct{}
	closed  bool // the File is closed
}

// window is one read-only mapping of the file: length bytes from addr (a
// page boundary), the file's bytes from off.
type window struct {
	addr   unsafe.Pointer
	off    int64
	length uintptr
	// lent are the blocks lent from it, as the pages they span.
	lent map[*span]struct{}
}

// span is the pages [start, end) of a window that a lent block lies in,
// from the window's start.
type span struct{ start, end uintptr }

func newLeasedFile(l *leaser, f *os.File, unchanged func() error) *leasedFile {
	if l == nil {
		return nil
	}
	return &leasedFile{l: l, fd: int(f.Fd()), unchanged: unchanged, dup: -1, window: windowBytes, windows: map[*window]struct{}{}}
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
	var st unix.Stat_t
	if lf.unchanged() != nil || unix.Fstat(lf.dup, &st) != nil {
		lf.releaseLocked()
		return false
	}
	lf.size = st.Size
	lf.state = leaseHeld
	return true
}

// holdsLocked reports whether the lease is held and not being broken (a
// lease being broken reads as the type it is broken to: F_UNLCK).
func (lf *leasedFile) holdsLocked() bool {
	t, err := unix.FcntlInt(uintptr(lf.dup), unix.F_GETLEASE, 0)
	return err == nil && t == unix.F_RDLCK
}

// mapBlock lends [off, off+n) of the file (n > 0, off+n within it) from a
// window mapping it; ok is false when it is to be read with pread instead.
func (lf *leasedFile) mapBlock(off, n int64) (b []byte, release func(), ok bool) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.closed || !lf.takeLocked() || off+n > lf.size {
		return nil, nil, false
	}
	if !lf.holdsLocked() {
		lf.revokeLocked()
		return nil, nil, false
	}
	page := int64(os.Getpagesize())
	start := off &^ (page - 1)
	end := (off + n + page - 1) &^ (page - 1)
	w := lf.cur
	if w == nil || start < w.off || end > w.off+int64(w.length) {
		if w = lf.mapWindowLocked(start, end); w == nil {
			return nil, nil, false
		}
	}
	s := &span{start: uintptr(start - w.off), end: uintptr(end - w.off)}
	// Read the block's pages in now: a page that cannot be read (an I/O
	// error) fails here rather than faulting wherever the bytes are read.
	if err := unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(w.addr, s.start)), s.end-s.start), unix.MADV_POPULATE_READ); err != nil && !errors.Is(err, unix.EINVAL) {
		return nil, nil, false
	}
	w.lent[s] = struct{}{}
	b = unsafe.Slice((*byte)(unsafe.Add(w.addr, off-w.off)), n)
	var once sync.Once
	return b[:n:n], func() { once.Do(func() { lf.unlend(w, s) }) }, true
}

// mapWindowLocked maps a new window from start (a page boundary) that holds
// the pages up to end, and lends from it from now on; nil if it cannot.
func (lf *leasedFile) mapWindowLocked(start, end int64) *window {
	if w := lf.cur; w != nil {
		lf.cur = nil
		lf.dropIdleLocked(w)
	}
	page := int64(os.Getpagesize())
	last := (lf.size + page - 1) &^ (page - 1)
	length := uintptr(min(max(start+lf.window, end), last) - start)
	addr, err := unix.MmapPtr(lf.dup, start, nil, length, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	w := &window{addr: addr, off: start, length: length, lent: map[*span]struct{}{}}
	lf.cur = w
	lf.windows[w] = struct{}{}
	return w
}

// unlend ends the loan of the block s of w.
func (lf *leasedFile) unlend(w *window, s *span) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	delete(w.lent, s)
	lf.dropIdleLocked(w)
	lf.finishLocked()
}

// dropIdleLocked unmaps w once it lends no block and will lend none.
func (lf *leasedFile) dropIdleLocked(w *window) {
	if len(w.lent) > 0 || w == lf.cur || w.addr == nil {
		return
	}
	_ = unix.MunmapPtr(w.addr, w.length)
	w.addr = nil
	delete(lf.windows, w)
}

// close is the File's Close: the last window is unmapped, and the lease
// released, once no block is lent.
func (lf *leasedFile) close() {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	lf.closed = true
	if w := lf.cur; w != nil {
		lf.cur = nil
		lf.dropIdleLocked(w)
	}
	lf.finishLocked()
}

// finishLocked releases the lease when the File is closed and no window
// maps the file.
func (lf *leasedFile) finishLocked() {
	if !lf.closed || len(lf.windows) > 0 || lf.dup < 0 {
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

// revokeLocked stops mapping the file: in every window, the pages of the
// blocks still lent are moved to anonymous memory holding the same bytes
// and the rest to memory that cannot be accessed, windows that lend nothing
// are unmapped, then the lease is released. A window that cannot be moved
// keeps the lease held; the next scan tries again (the kernel breaks the
// lease itself after lease-break-time).
func (lf *leasedFile) revokeLocked() {
	for w := range lf.windows {
		if len(w.lent) > 0 {
			if err := w.toAnonymous(); err != nil {
				return
			}
		}
	}
	// The windows no longer need the file or the lease; the release of
	// their last block unmaps them.
	lf.cur = nil
	for w := range lf.windows {
		lf.dropIdleLocked(w)
		delete(lf.windows, w)
	}
	lf.state = leaseOff
	lf.releaseLocked()
}

// toAnonymous replaces w's mapping of the file: each run of pages that lent
// blocks lie in is copied to anonymous memory moved to its address (a
// reader sees the same bytes before, during and after), and the pages
// between them, which no one reads, with anonymous memory that cannot be
// accessed, so that w keeps its addresses until it is unmapped whole. Done
// again, it does the same with the same bytes.
func (w *window) toAnonymous() error {
	spans := make([]span, 0, len(w.lent))
	for s := range w.lent {
		spans = append(spans, *s)
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	var runs []span
	for _, s := range spans {
		if n := len(runs); n > 0 && s.start <= runs[n-1].end {
			runs[n-1].end = max(runs[n-1].end, s.end)
		} else {
			runs = append(runs, s)
		}
	}
	for _, r := range runs {
		if err := (&region{addr: unsafe.Add(w.addr, r.start), length: r.end - r.start}).toAnonymous(); err != nil {
			return err
		}
	}
	at := uintptr(0)
	for _, r := range append(runs, span{start: w.length, end: w.length}) {
		if r.start > at {
			p := unsafe.Add(w.addr, at)
			got, err := unix.MmapPtr(-1, 0, p, r.start-at, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED|unix.MAP_NORESERVE)
			if err != nil {
				return err
			}
			if got != p {
				return errors.New("an anonymous mapping was not placed where asked")
			}
		}
		at = r.end
	}
	return nil
}

// region is length bytes of memory from addr (a page boundary).
type region struct {
	addr   unsafe.Pointer
	length uintptr
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
