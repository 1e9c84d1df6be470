//go:build linux

package flight_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight/flighttest"
	"github.com/flightbatch/flightbatch/store"
)

// The change TestFileChangeHelper makes, in a process of its own, to the
// files named (separated by newlines).
const (
	fileChangeEnv  = "FLIGHTBATCH_TEST_FILE_CHANGE"
	fileChangePath = "FLIGHTBATCH_TEST_FILE_CHANGE_PATHS"
)

// TestFileChangeHelper is not a test: run as a subprocess, it changes
// files as another program would.
func TestFileChangeHelper(t *testing.T) {
	op := os.Getenv(fileChangeEnv)
	if op == "" {
		t.Skip("a helper process for TestDoGetWhileTheFileChanges")
	}
	for _, path := range strings.Split(os.Getenv(fileChangePath), "\n") {
		var err error
		switch op {
		case "truncate":
			err = unix.Truncate(path, 0)
		case "rewrite":
			var f *os.File
			if f, err = os.OpenFile(path, os.O_WRONLY, 0); err == nil {
				_, err = f.Write(make([]byte, 1<<20))
				f.Close()
			}
		case "punch":
			var f *os.File
			if f, err = os.OpenFile(path, os.O_RDWR, 0); err == nil {
				err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 1<<30)
				f.Close()
			}
		default:
			err = errors.New("unknown change " + op)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// mappingStore opens a file store in a directory where it maps files (the
// test's own, else under /dev/shm); it skips the test where there is none.
func mappingStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	for _, dir := range []string{t.TempDir(), "/dev/shm"} {
		if dir == "/dev/shm" {
			d, err := os.MkdirTemp(dir, "leasetest")
			if err != nil {
				continue
			}
			t.Cleanup(func() { os.RemoveAll(d) })
			dir = d
		}
		st, err := store.Open(t.Context(), "file://"+dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.WriteAll(t.Context(), "probe", make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		f, err := st.OpenFile(t.Context(), "probe")
		if err != nil {
			t.Fatal(err)
		}
		_, release, ok := f.Map(0, 4096)
		f.Close()
		if ok {
			release()
			if err := st.Delete(t.Context(), "probe"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st, dir
		}
		st.Close()
	}
	t.Skip("no directory here where a file store maps its files (leases on ext4, XFS, Btrfs, tmpfs)")
	return nil, ""
}

// leaseWait is how long a process that changes a mapped file may wait:
// well within /proc/sys/fs/lease-break-time, after which the kernel would
// let it through whatever the server did.
func leaseWait(t *testing.T) time.Duration {
	b, err := os.ReadFile("/proc/sys/fs/lease-break-time")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(n)*time.Second - 3*time.Second
}

// TestDoGetWhileTheFileChanges streams a dataset from a file store that
// maps its files, to a client that stops reading (so gRPC holds the
// batches sent), while another process truncates its file, rewrites it in
// place or punches a hole in it: that process goes ahead well within
// lease-break-time, the server lives on, and the stream either ends with
// the original rows or with a clear error after a prefix of them. Streams
// of an unchanged file, and of one open for writing elsewhere (no lease:
// pread), carry the stored rows.
func TestDoGetWhileTheFileChanges(t *testing.T) {
	st, dir := mappingStore(t)
	srv := flighttest.Start(t, st, nil)
	mem := memory.DefaultAllocator
	var batches []arrow.RecordBatch
	for i := range 12 {
		b := lfpBatch(mem, i*25, 25, 2500) // 250 KB each: 3 MB a dataset, small enough for a 64 MiB /dev/shm
		defer b.Release()
		batches = append(batches, b)
	}
	want := array.NewTableFromRecords(dataset.DemoSchema, batches)
	defer want.Release()
	upload := func(name string) []string {
		if _, err := put(t.Context(), srv.Client, name, dataset.DemoSchema, batches...); err != nil {
			t.Fatal(err)
		}
		files, err := filepath.Glob(filepath.Join(dir, "datasets", name, "*.arrow"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no stored files for %s (%v)", name, err)
		}
		return files
	}
	// A client with gRPC's smallest windows: the server can send only
	// 64 KiB more than it reads.
	slow, err := aflight.NewClientWithMiddleware(srv.Addr, nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()

	// stream reads name's rows, calling pause after the first batch.
	stream := func(name string, pause func()) (arrow.Table, error) {
		s, err := slow.DoGet(t.Context(), &aflight.Ticket{Ticket: []byte("datasets/" + name)})
		if err != nil {
			return nil, err
		}
		r, err := aflight.NewRecordReader(s)
		if err != nil {
			return nil, err
		}
		defer r.Release()
		var got []arrow.RecordBatch
		defer func() {
			for _, b := range got {
				b.Release()
			}
		}()
		for r.Next() {
			b := r.RecordBatch()
			b.Retain()
			got = append(got, b)
			if len(got) == 1 && pause != nil {
				pause()
			}
		}
		tbl := array.NewTableFromRecords(dataset.DemoSchema, got)
		if err := r.Err(); err != nil && !errors.Is(err, io.EOF) {
			return tbl, err
		}
		return tbl, nil
	}
	same := func(got arrow.Table, rows int64) bool {
		var recs []arrow.RecordBatch
		for _, b := range batches {
			if n := min(b.NumRows(), rows); n > 0 {
				recs = append(recs, b.NewSlice(0, n))
				rows -= n
			}
		}
		part := array.NewTableFromRecords(dataset.DemoSchema, recs)
		for _, r := range recs {
			r.Release()
		}
		defer part.Release()
		return got.NumRows() == part.NumRows() && rows == 0 && array.TableEqual(got, part)
	}

	upload("kept")
	got, err := stream("kept", nil)
	if err != nil || !same(got, want.NumRows()) {
		t.Fatalf("DoGet of a mapped file: %v; rows %d of %d, equal to the stored ones: %v", err, got.NumRows(), want.NumRows(), err == nil && same(got, want.NumRows()))
	}
	got.Release()

	t.Run("open for writing", func(t *testing.T) {
		for _, p := range upload("writing") {
			w, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
		}
		got, err := stream("writing", nil)
		if err != nil || !same(got, want.NumRows()) {
			t.Fatalf("DoGet of a file open for writing: %v; equal to the stored rows: %v", err, err == nil && same(got, want.NumRows()))
		}
		got.Release()
	})

	for _, op := range []string{"truncate", "rewrite", "punch"} {
		t.Run(op, func(t *testing.T) {
			files := upload(op)
			var changed error
			pause := func() {
				time.Sleep(300 * time.Millisecond) // the server fills the window and waits
				changed = changeFiles(op, files, leaseWait(t))
			}
			got, err := stream(op, pause)
			defer got.Release()
			if changed != nil {
				t.Fatalf("the process that changes the file: %v", changed)
			}
			if err == nil {
				if !same(got, want.NumRows()) {
					t.Fatalf("the stream ended without error after %d of %d rows, or with other rows", got.NumRows(), want.NumRows())
				}
			} else {
				if c := status.Code(err); c != codes.Aborted && c != codes.DataLoss {
					t.Fatalf("the stream ended with %v; want Aborted (the file changed)", err)
				}
				if !same(got, got.NumRows()) {
					t.Fatalf("the %d rows before the error are not the stored ones", got.NumRows())
				}
				t.Logf("%d of %d rows, then %v", got.NumRows(), want.NumRows(), err)
			}
			// The server lives on.
			again, err := stream("kept", nil)
			if err != nil || !same(again, want.NumRows()) {
				t.Fatalf("DoGet after the change: %v", err)
			}
			again.Release()
		})
	}
}

// changeFiles runs TestFileChangeHelper, failing if it takes longer than d.
func changeFiles(op string, files []string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFileChangeHelper$")
	cmd.Env = append(os.Environ(), fileChangeEnv+"="+op, fileChangePath+"="+strings.Join(files, "\n"))
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("still waiting for the server's lease after %s", d)
	}
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}
