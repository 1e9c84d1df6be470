package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// childArg makes the test binary act as a function's command (see TestMain).
const childArg = "flightbatch-test-child"

func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && os.Args[1] == childArg {
		os.Exit(runChild(os.Args[2], os.Args[3:]))
	}
	os.Exit(m.Run())
}

// runChild is a function's command, in one of several behaviours.
func runChild(mode string, args []string) int {
	switch mode {
	case "echo": // copy stdin to stdout
		r, err := ipc.NewReader(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "read stdin:", err)
			return 1
		}
		w := ipc.NewWriter(os.Stdout, ipc.WithSchema(r.Schema()))
		for r.Next() {
			if err := w.Write(r.RecordBatch()); err != nil {
				fmt.Fprintln(os.Stderr, "write stdout:", err)
				return 1
			}
		}
		if r.Err() != nil {
			fmt.Fprintln(os.Stderr, "read stdin:", r.Err())
			return 1
		}
		return exitOn(w.Close())
	case "env": // read stdin, then one row: the environment and the rows read
		r, err := ipc.NewReader(os.Stdin)
		if err != nil {
			return 1
		}
		rows := 0
		for r.Next() {
			rows += int(r.RecordBatch().NumRows())
		}
		wd, _ := os.Getwd()
		names := []string{EnvParams, EnvJobID, EnvShard, EnvAttempt, EnvFunction, "cwd", "rows"}
		values := []string{os.Getenv(EnvParams), os.Getenv(EnvJobID), os.Getenv(EnvShard), os.Getenv(EnvAttempt), os.Getenv(EnvFunction), wd, strconv.Itoa(rows)}
		return exitOn(writeStrings(os.Stdout, names, values))
	case "fail": // a lot of stderr, then exit 3
		for i := 0; i < 2000; i++ {
			fmt.Fprintf(os.Stderr, "noise line %d\n", i)
		}
		fmt.Fprintln(os.Stderr, "THE END")
		return 3
	case "odd": // one int64 row, or a float64 one on the shard params name
		io.Copy(io.Discard, os.Stdin)
		var p struct{ Odd string }
		json.Unmarshal([]byte(os.Getenv(EnvParams)), &p)
		typ := arrow.DataType(arrow.PrimitiveTypes.Int64)
		if os.Getenv(EnvShard) == p.Odd {
			typ = arrow.PrimitiveTypes.Float64
		}
		schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: typ, Nullable: true}}, nil)
		w := ipc.NewWriter(os.Stdout, ipc.WithSchema(schema))
		return exitOn(w.Close())
	case "garbage":
		io.Copy(io.Discard, os.Stdin)
		fmt.Println("this is not Arrow")
		return 0
	case "nothing":
		io.Copy(io.Discard, os.Stdin)
		return 0
	case "noread": // answers without reading its input
		return exitOn(writeStrings(os.Stdout, []string{"ok"}, []string{"yes"}))
	case "schema-only":
		io.Copy(io.Discard, os.Stdin)
		w := ipc.NewWriter(os.Stdout, ipc.WithSchema(arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)))
		return exitOn(w.Close())
	case "hang": // start a grandchild, record its pid in args[0], and wait forever
		gc := exec.Command(os.Args[0], childArg, "sleep")
		if err := gc.Start(); err != nil {
			return 1
		}
		os.WriteFile(args[0]+".tmp", []byte(strconv.Itoa(gc.Process.Pid)), 0o644)
		os.Rename(args[0]+".tmp", args[0])
		select {}
	case "sleep":
		time.Sleep(time.Hour)
		return 0
	case "record": // record its own pid in args[0], then wait forever
		os.WriteFile(args[0]+".tmp", []byte(strconv.Itoa(os.Getpid())), 0o644)
		os.Rename(args[0]+".tmp", args[0])
		select {}
	case "worker": // a worker: run the function "record" args[0], as a child of a job does
		f, err := NewExternal("record", ExternalSpec{Command: []string{os.Args[0], childArg, "record", args[0]}}, filepath.Dir(args[0]))
		if err != nil {
			return 1
		}
		schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
		in, _ := array.NewRecordReader(schema, nil)
		_ = f.Run(context.Background(), Task{JobID: "20260101T000000000Z-abcdef", Shard: "part-0000", Attempt: 1}, in, func(arrow.RecordBatch) error { return nil })
		return 1
	}
	fmt.Fprintln(os.Stderr, "unknown mode", mode)
	return 2
}

func exitOn(err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func writeStrings(w io.Writer, names, values []string) error {
	fields := make([]arrow.Field, len(names))
	cols := make([]arrow.Array, len(names))
	for i, n := range names {
		fields[i] = arrow.Field{Name: n, Type: arrow.BinaryTypes.String}
		b := array.NewStringBuilder(memory.DefaultAllocator)
		b.Append(values[i])
		cols[i] = b.NewArray()
	}
	schema := arrow.NewSchema(fields, nil)
	rec := array.NewRecordBatch(schema, cols, 1)
	iw := ipc.NewWriter(w, ipc.WithSchema(schema))
	if err := iw.Write(rec); err != nil {
		return err
	}
	return iw.Close()
}

func testExternal(t *testing.T, mode string, args ...string) *External {
	t.Helper()
	f, err := NewExternal("test-"+mode, ExternalSpec{Command: append([]string{os.Args[0], childArg, mode}, args...)}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// testInput is a shard of rows records with a signal of n float64 each.
func testInput(t *testing.T, mem memory.Allocator, rows, n int) array.RecordReader {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
	}, nil)
	var recs []arrow.RecordBatch
	for start := 0; start < rows; start += 16 {
		b := array.NewRecordBuilder(mem, schema)
		lb := b.Field(1).(*array.ListBuilder)
		vb := lb.ValueBuilder().(*array.Float64Builder)
		for i := start; i < min(start+16, rows); i++ {
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			lb.Append(true)
			for j := 0; j < n; j++ {
				vb.Append(float64(i*n + j))
			}
		}
		recs = append(recs, b.NewRecordBatch())
		b.Release()
	}
	r, err := array.NewRecordReader(schema, recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		rec.Release()
	}
	return r
}

type collected struct {
	rows    int64
	batches int
	schema  *arrow.Schema
	first   map[string]string
	ids     []int64
}

func (c *collected) emit(rec arrow.RecordBatch) error {
	c.rows += rec.NumRows()
	c.batches++
	c.schema = rec.Schema()
	if c.first == nil && rec.NumRows() > 0 && rec.Column(0).DataType().ID() == arrow.STRING {
		c.first = map[string]string{}
		for i, f := range rec.Schema().Fields() {
			c.first[f.Name] = rec.Column(i).(*array.String).Value(0)
		}
	}
	if ids, ok := rec.Column(0).(*array.Int64); ok {
		c.ids = append(c.ids, ids.Int64Values()...)
	}
	return nil
}

func runExternal(t *testing.T, ctx context.Context, f *External, in array.RecordReader, mem memory.Allocator, params string) (*collected, error) {
	t.Helper()
	c := &collected{}
	task := Task{JobID: "20260101T000000000Z-abcdef", Shard: "part-0003", Attempt: 2, Params: json.RawMessage(params), Alloc: mem}
	err := f.Run(ctx, task, in, c.emit)
	return c, err
}

func TestExternalProtocol(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	f := testExternal(t, "env")
	in := testInput(t, mem, 100, 8)
	defer in.Release()
	c, err := runExternal(t, context.Background(), f, in, mem, `{"a":1}`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		EnvParams: `{"a":1}`, EnvJobID: "20260101T000000000Z-abcdef", EnvShard: "part-0003",
		EnvAttempt: "2", EnvFunction: "test-env", "cwd": f.Dir(), "rows": "100",
	}
	for k, v := range want {
		if c.first[k] != v {
			t.Errorf("%s = %q, want %q", k, c.first[k], v)
		}
	}
}

// TestExternalLargeShard streams a shard far larger than a pipe's buffer through
// a command that writes while it reads: feeding and reading must overlap.
func TestExternalLargeShard(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	f := testExternal(t, "echo")
	const rows = 2000
	in := testInput(t, mem, rows, 1024) // 16 MB
	defer in.Release()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := runExternal(t, ctx, f, in, mem, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.rows != rows || len(c.ids) != rows {
		t.Fatalf("got %d rows back, want %d", c.rows, rows)
	}
	for i, id := range c.ids {
		if id != int64(i) {
			t.Fatalf("row %d has id %d", i, id)
		}
	}
}

func TestExternalNonZeroExit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	f := testExternal(t, "fail")
	f.StderrLimit = 1024
	in := testInput(t, mem, 10, 4)
	defer in.Release()
	_, err := runExternal(t, context.Background(), f, in, mem, "")
	if err == nil {
		t.Fatal("a command that exits 3 succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"function test-fail", "exited with status 3", "THE END", "stderr: ..."} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "noise line 0\n") || len(msg) > 1024+200 {
		t.Errorf("stderr is not bounded to its last 1 KiB: %d bytes", len(msg))
	}
}

func TestExternalBadOutput(t *testing.T) {
	for mode, want := range map[string]string{
		"garbage": "not an Arrow IPC stream",
		"nothing": "wrote no Arrow IPC stream",
	} {
		t.Run(mode, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			in := testInput(t, mem, 10, 4)
			defer in.Release()
			_, err := runExternal(t, context.Background(), testExternal(t, mode), in, mem, "")
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want one saying %q", err, want)
			}
		})
	}
}

func TestExternalOutputWithoutReadingInput(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := testInput(t, mem, 2000, 1024)
	defer in.Release()
	c, err := runExternal(t, context.Background(), testExternal(t, "noread"), in, mem, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.first["ok"] != "yes" {
		t.Fatalf("got %v", c.first)
	}
}

func TestExternalSchemaOnly(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := testInput(t, mem, 3, 4)
	defer in.Release()
	c, err := runExternal(t, context.Background(), testExternal(t, "schema-only"), in, mem, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.batches != 1 || c.rows != 0 || c.schema.Field(0).Name != "x" {
		t.Fatalf("want one empty batch of the stream's schema, got %d batches, %d rows, %v", c.batches, c.rows, c.schema)
	}
}

type failingReader struct {
	array.RecordReader
	n int
}

func (r *failingReader) Next() bool {
	r.n++
	return r.n <= 1 && r.RecordReader.Next()
}
func (r *failingReader) Err() error { return errors.New("disk on fire") }

func TestExternalInputError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := testInput(t, mem, 100, 4)
	defer in.Release()
	c := &collected{}
	err := testExternal(t, "echo").Run(context.Background(), Task{Alloc: mem}, &failingReader{RecordReader: in}, c.emit)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("error %v, want the input's", err)
	}
}

func TestExternalCancelKillsProcessGroup(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	f := testExternal(t, "hang", pidFile)
	in := testInput(t, mem, 10, 4)
	defer in.Release()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := runExternal(t, ctx, f, in, mem, "")
		done <- err
	}()
	var pid int
	for deadline := time.Now().Add(20 * time.Second); ; {
		if data, err := os.ReadFile(pidFile); err == nil {
			pid, _ = strconv.Atoi(string(data))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command did not start its grandchild")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for deadline := time.Now().Add(10 * time.Second); alive(pid); {
		if time.Now().After(deadline) {
			killProcess(pid)
			t.Fatalf("grandchild %d outlived the cancelled command", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExternalDiesWithItsWorker kills the process that runs a function's
// command (a worker, as the local executor's child is, and as a server that
// dies takes its workers down): the command must die with it, not run on
// orphaned.
func TestExternalDiesWithItsWorker(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("a child's death with its parent is Linux's parent-death signal")
	}
	pidFile := filepath.Join(t.TempDir(), "command.pid")
	worker := exec.Command(os.Args[0], childArg, "worker", pidFile)
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	defer worker.Process.Kill()
	var pid int
	for deadline := time.Now().Add(20 * time.Second); ; {
		if data, err := os.ReadFile(pidFile); err == nil {
			pid, _ = strconv.Atoi(string(data))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := worker.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = worker.Wait()
	for deadline := time.Now().Add(10 * time.Second); alive(pid); {
		if time.Now().After(deadline) {
			killProcess(pid)
			t.Fatalf("command %d outlived its killed worker", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExternalStartError(t *testing.T) {
	f, err := NewExternal("missing", ExternalSpec{Command: []string{"./no-such-program"}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := testInput(t, mem, 1, 1)
	defer in.Release()
	_, err = runExternal(t, context.Background(), f, in, mem, "")
	if err == nil || !strings.Contains(err.Error(), "no-such-program") {
		t.Fatalf("error %v, want one naming the program", err)
	}
}

func TestExternalPrepare(t *testing.T) {
	f := testExternal(t, "echo")
	for params, want := range map[string]string{"": "{}", "null": "{}", `{ "a" : [1, 2] }`: `{"a":[1,2]}`} {
		schema, got, err := f.Prepare(json.RawMessage(params), nil)
		if err != nil || schema != nil || string(got) != want {
			t.Errorf("Prepare(%q) = %v, %s, %v; want nil, %s", params, schema, got, err, want)
		}
	}
	for _, params := range []string{`[1]`, `3`, `"x"`, `{`} {
		if _, _, err := f.Prepare(json.RawMessage(params), nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("Prepare(%q): error %v, want ErrInvalid", params, err)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{limit: 8}
	tb.Write([]byte("abc"))
	if got := tb.String(); got != "abc" {
		t.Fatalf("got %q", got)
	}
	tb.Write([]byte("defghij"))
	if got := tb.String(); got != "...cdefghij" {
		t.Fatalf("got %q", got)
	}
	tb.Write([]byte("0123456789"))
	if got := tb.String(); got != "...23456789" {
		t.Fatalf("got %q", got)
	}
	tb = &tailBuffer{limit: 4}
	tb.Write([]byte("xéé")) // é is two bytes: the cut must not split one
	if got := tb.String(); got != "...éé" {
		t.Fatalf("got %q", got)
	}
}
