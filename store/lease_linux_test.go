//go:build linux

package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// changeEnv names the change TestChangeHelper makes, in a process of its
// own, to the file named by changePathEnv.
const (
	changeEnv     = "FLIGHTBATCH_TEST_CHANGE"
	changePathEnv = "FLIGHTBATCH_TEST_CHANGE_PATH"
)

// TestChangeHelper is not a test: run as a subprocess, it changes a file as
// another program would.
func TestChangeHelper(t *testing.T) {
	op, path := os.Getenv(changeEnv), os.Getenv(changePathEnv)
	if op == "" {
		t.Skip("a helper process for the lease tests")
	}
	if err := change(op, path); err != nil {
		t.Fatal(err)
	}
}

func change(op, path string) error {
	switch op {
	case "truncate":
		return unix.Truncate(path, 0)
	case "truncate-open":
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		return f.Close()
	case "rewrite":
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.Write(make([]byte, 256<<10))
		return err
	case "punch":
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, st.Size())
	}
	return errors.New("unknown change " + op)
}

// leaseDir returns a directory on a file system whose files are mapped
// under leases: the test's own, else /dev/shm (tmpfs).
func leaseDir(t testing.TB) string {
	t.Helper()
	for _, dir := range []string{t.TempDir(), "/dev/shm"} {
		var fs unix.Statfs_t
		if unix.Statfs(dir, &fs) != nil || !leaseFS[int64(fs.Type)] {
			continue
		}
		if dir == "/dev/shm" {
			d, err := os.MkdirTemp(dir, "leasetest")
			if err != nil {
				continue
			}
			t.Cleanup(func() { os.RemoveAll(d) })
			dir = d
		}
		return dir
	}
	t.Skip("no directory on a file system with leases (ext4, XFS, Btrfs, tmpfs)")
	return ""
}

// storeWithFile returns a file store in a leasing directory holding key with
// size random bytes.
func storeWithFile(t testing.TB, query string, size int) (*Store, string, []byte) {
	t.Helper()
	if leaseBreakTime() < minLeaseBreak {
		t.Skipf("/proc/sys/fs/lease-break-time is %s: files are not mapped", leaseBreakTime())
	}
	dir := leaseDir(t)
	st, err := Open(t.Context(), "file://"+dir+query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := st.WriteAll(t.Context(), "d/f.arrow", data); err != nil {
		t.Fatal(err)
	}
	return st, filepath.Join(dir, "d", "f.arrow"), data
}

// TestMapLendsTheFilesBytes maps blocks at page boundaries and between
// them, and checks them against the file.
func TestMapLendsTheFilesBytes(t *testing.T) {
	st, _, data := storeWithFile(t, "", 3<<20+77)
	f, err := st.OpenFile(t.Context(), "d/f.arrow")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range []struct{ off, n int64 }{
		{0, 1}, {0, 4096}, {4095, 2}, {123, 1 << 20}, {int64(len(data)) - 5000, 5000}, {int64(len(data)) - 1, 1},
	} {
		b, release, ok := f.Map(c.off, c.n)
		if !ok {
			t.Fatalf("Map(%d, %d) was refused on a file system with leases", c.off, c.n)
		}
		if !bytes.Equal(b, data[c.off:c.off+c.n]) {
			t.Fatalf("Map(%d, %d) differs from the file", c.off, c.n)
		}
		release()
		release() // once only
	}
	for _, c := range []struct{ off, n int64 }{{-1, 2}, {0, 0}, {int64(len(data)) - 1, 2}, {int64(len(data)), 1}} {
		if _, _, ok := f.Map(c.off, c.n); ok {
			t.Errorf("Map(%d, %d) outside the file's %d bytes was granted", c.off, c.n, len(data))
		}
	}
}

// TestLeaseBreakKeepsLentBytes lends blocks, lets another process
// truncate, rewrite or punch a hole in the file, and checks that the
// process goes ahead well within lease-break-time, that the lent blocks
// keep the file's original bytes (a truncated file's mapping would fault,
// killing the test), that no block is mapped afterwards, and that reads
// report the change.
func TestLeaseBreakKeepsLentBytes(t *testing.T) {
	for _, c := range []struct {
		op     string
		window int64 // 0: windowBytes, one window for the whole file
	}{
		{op: "truncate"}, {op: "truncate-open"}, {op: "rewrite"}, {op: "punch"},
		// Blocks in three windows, and a fourth that lends none.
		{op: "truncate", window: 1 << 20}, {op: "punch", window: 1 << 20},
	} {
		op := c.op
		t.Run(fmt.Sprintf("%s/window=%d", op, c.window), func(t *testing.T) {
			st, path, data := storeWithFile(t, "", 4<<20)
			f, err := st.OpenFile(t.Context(), "d/f.arrow")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if c.window > 0 {
				f.lease.window = c.window
			}
			type lent struct {
				off     int64
				b       []byte
				release func()
			}
			var blocks []lent
			for _, off := range []int64{0, 100, 1<<20 + 5, 3 << 20} {
				b, release, ok := f.Map(off, 1<<20-100)
				if !ok {
					t.Fatal("Map was refused on a file system with leases")
				}
				blocks = append(blocks, lent{off, b, release})
			}
			if _, release, ok := f.Map(0, 10); ok {
				release()
			} else {
				t.Fatal("Map was refused on a file system with leases")
			}
			// A reader goes on reading a block throughout.
			var stop atomic.Bool
			var wg sync.WaitGroup
			var torn atomic.Int64
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, want := blocks[1].b, data[blocks[1].off:blocks[1].off+int64(len(blocks[1].b))]
				for !stop.Load() {
					if !bytes.Equal(b, want) {
						torn.Add(1)
					}
				}
			}()
			cmd := exec.Command(os.Args[0], "-test.run=^TestChangeHelper$")
			cmd.Env = append(os.Environ(), changeEnv+"="+op, changePathEnv+"="+path)
			out, err := runWithin(cmd, leaseBreakTime()-3*time.Second)
			stop.Store(true)
			wg.Wait()
			if err != nil {
				t.Fatalf("the %s process: %v\n%s", op, err, out)
			}
			if torn.Load() > 0 {
				t.Errorf("a reader saw other bytes %d times while the lease was broken", torn.Load())
			}
			for _, l := range blocks {
				if !bytes.Equal(l.b, data[l.off:l.off+int64(len(l.b))]) {
					t.Errorf("the block lent at %d lost the file's bytes once the file changed", l.off)
				}
			}
			if _, _, ok := f.Map(0, 4096); ok {
				t.Error("Map still maps a file whose lease was broken")
			}
			if n := fileMappings(t, path); n > 0 {
				t.Errorf("%d mappings of the file remain once its lease was broken", n)
			}
			if err := f.Unchanged(); !errors.Is(err, ErrChanged) {
				t.Errorf("Unchanged of the changed file = %v; want ErrChanged", err)
			}
			for _, l := range blocks {
				l.release()
			}
		})
	}
}

// runWithin runs cmd, failing if it takes longer than d.
func runWithin(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), errors.New("still waiting for the lease after " + d.String())
	}
}

// TestMapWithoutLease checks the files that are read with pread instead:
// one open for writing elsewhere (the lease is refused), a store with
// mmap=false; and that a file replaced by a store write keeps its lease and
// bytes.
func TestMapWithoutLease(t *testing.T) {
	t.Run("open for writing", func(t *testing.T) {
		st, path, data := storeWithFile(t, "", 1<<20)
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		f, err := st.OpenFile(t.Context(), "d/f.arrow")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, _, ok := f.Map(0, 4096); ok {
			t.Fatal("a file open for writing was mapped")
		}
		got := make([]byte, len(data))
		if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadAt: %v, equal %v", err, bytes.Equal(got, data))
		}
	})
	t.Run("mmap=false", func(t *testing.T) {
		st, _, _ := storeWithFile(t, "?mmap=false", 1<<20)
		f, err := st.OpenFile(t.Context(), "d/f.arrow")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, _, ok := f.Map(0, 4096); ok {
			t.Fatal("mmap=false mapped a file")
		}
	})
	t.Run("bad mmap", func(t *testing.T) {
		if _, err := Open(t.Context(), "file://"+t.TempDir()+"?mmap=yes"); err == nil {
			t.Fatal("mmap=yes was accepted")
		}
	})
	t.Run("replaced", func(t *testing.T) {
		st, _, data := storeWithFile(t, "", 1<<20)
		f, err := st.OpenFile(t.Context(), "d/f.arrow")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b, release, ok := f.Map(10, 1000)
		if !ok {
			t.Fatal("Map was refused")
		}
		defer release()
		done := make(chan error, 1)
		go func() { done <- st.WriteAll(t.Context(), "d/f.arrow", []byte("new")) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(leaseBreakTime() - 3*time.Second):
			t.Fatal("a write that replaces the file waited for the lease")
		}
		if !bytes.Equal(b, data[10:1010]) {
			t.Fatal("the lent block changed when the file was replaced")
		}
		if _, release2, ok := f.Map(2000, 10); !ok {
			t.Error("a replaced (not changed) file is no longer mapped")
		} else {
			release2()
		}
	})
	t.Run("closed store", func(t *testing.T) {
		st, _, data := storeWithFile(t, "", 1<<20)
		f, err := st.OpenFile(t.Context(), "d/f.arrow")
		if err != nil {
			t.Fatal(err)
		}
		b, release, ok := f.Map(0, 8192)
		if !ok {
			t.Fatal("Map was refused")
		}
		f.Close()
		st.Close()
		if !bytes.Equal(b, data[:8192]) {
			t.Fatal("a block lent past Close changed")
		}
		release()
	})
}

// fileMappings counts the mappings of the file at path in this process
// (/proc/self/maps, by device and inode).
func fileMappings(t *testing.T, path string) int {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	dev := fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev))
	n := 0
	for _, line := range strings.Split(string(maps), "\n") {
		// address perms offset dev inode path
		f := strings.Fields(line)
		if len(f) >= 5 && f[3] == dev && f[4] == strconv.FormatUint(st.Ino, 10) {
			n++
		}
	}
	return n
}

// TestMapLendsFromWindows lends the blocks a stream reads, one after
// another, and checks that they come from a few mappings of the file (a
// window of it each) rather than one per block; that a window is unmapped
// once no block is lent from it and none will be; and that the last goes,
// with the lease, when the File is closed and its blocks released.
func TestMapLendsFromWindows(t *testing.T) {
	for _, c := range []struct {
		name   string
		window int64 // 0: windowBytes
		size   int   // the file's
		blocks []struct{ off, n int64 }
		// windows is how many windows map the file while every block is
		// lent: a window starts at the first block's page that the one
		// before does not hold, and holds window bytes.
		windows int
	}{
		{name: "one window", size: 6 << 20, blocks: seq(0, 480_000, 12), windows: 1},
		{name: "from within the file", size: 6 << 20, blocks: seq(12_345, 980_000, 5), windows: 1},
		// 400,000-byte blocks in 1 MiB windows: two a window (the third
		// ends past it).
		{name: "windows one after another", window: 1 << 20, size: 4 << 20, blocks: seq(0, 400_000, 8), windows: 4},
		{name: "a block larger than a window", window: 1 << 20, size: 4 << 20, blocks: seq(100, 2_500_000, 1), windows: 1},
		{name: "backwards", window: 1 << 20, size: 4 << 20, blocks: []struct{ off, n int64 }{{3 << 20, 1000}, {0, 1000}, {3<<20 + 1000, 1000}}, windows: 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, path, data := storeWithFile(t, "", c.size)
			f, err := st.OpenFile(t.Context(), "d/f.arrow")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if c.window > 0 {
				f.lease.window = c.window
			}
			var releases []func()
			for _, b := range c.blocks {
				got, release, ok := f.Map(b.off, b.n)
				if !ok {
					t.Fatalf("Map(%d, %d) was refused on a file system with leases", b.off, b.n)
				}
				if !bytes.Equal(got, data[b.off:b.off+b.n]) {
					t.Fatalf("Map(%d, %d) differs from the file", b.off, b.n)
				}
				releases = append(releases, release)
			}
			if got := fileMappings(t, path); got != c.windows {
				t.Errorf("%d blocks lent from %d mappings of the file; want %d", len(c.blocks), got, c.windows)
			}
			for _, release := range releases[:len(releases)-1] {
				release()
			}
			if got := fileMappings(t, path); got != 1 {
				t.Errorf("with one block lent, %d mappings of the file; want 1 (the window it was lent from)", got)
			}
			f.Close()
			if got := fileMappings(t, path); got != 1 {
				t.Errorf("with one block lent past Close, %d mappings of the file; want 1", got)
			}
			releases[len(releases)-1]()
			if got := fileMappings(t, path); got != 0 {
				t.Errorf("the File closed and no block lent, %d mappings of the file remain", got)
			}
			f.lease.mu.Lock()
			held := f.lease.dup >= 0
			f.lease.mu.Unlock()
			if held {
				t.Error("the lease is held after Close with no block lent")
			}
		})
	}
}

// seq returns count blocks of n bytes, one after another from off.
func seq(off, n int64, count int) []struct{ off, n int64 } {
	var out []struct{ off, n int64 }
	for i := range int64(count) {
		out = append(out, struct{ off, n int64 }{off + i*n, n})
	}
	return out
}

// BenchmarkMapBlocks lends a file's 480 KB blocks one after another, each
// released before the next as a stream's are written, from windows of the
// file and, for comparison, from a mapping per block (a window of the
// block's length).
func BenchmarkMapBlocks(b *testing.B) {
	const block = 480 << 10
	st, _, _ := storeWithFile(b, "", 64<<20)
	for _, c := range []struct {
		name   string
		window int64
	}{{"windows", windowBytes}, {"mapping per block", block}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(64 << 20)
			for b.Loop() {
				f, err := st.OpenFile(b.Context(), "d/f.arrow")
				if err != nil {
					b.Fatal(err)
				}
				f.lease.window = c.window
				for off := int64(0); off+block <= f.Size(); off += block {
					_, release, ok := f.Map(off, block)
					if !ok {
						b.Fatal("Map was refused")
					}
					release()
				}
				f.Close()
			}
		})
	}
}
