package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/flightbatch/flightbatch/batch"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/flightbatch/flightbatch/internal/testserver"
	"github.com/flightbatch/flightbatch/pkg/api"
)

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	err := m.Run(context.Background(), args)
	return out.String(), errb.String(), err
}

func TestClientCommands(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	addr := srv.Addr
	out, _, err := run(t, "psd", "--addr", addr, "--dataset", "demo", "--fs", "250", "--nperseg", "128",
		"--bands", "beta=13:30,theta=4:8", "--param", "detrend=linear", "--param", "scaling=spectrum", "--wait")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	st, err := srv.Jobs.Status(id)
	if err != nil {
		t.Fatalf("psd printed %q: %v", out, err)
	}
	if st.State != "SUCCEEDED" {
		t.Errorf("psd --wait returned with the job %s", st.State)
	}
	var params map[string]any
	_ = json.Unmarshal(st.Params, &params)
	if params["detrend"] != "linear" || params["scaling"] != "spectrum" || params["nperseg"] != 128.0 {
		t.Errorf("params = %s", st.Params)
	}
	if !strings.Contains(string(st.Params), `"bands":{"beta":[13,30],"theta":[4,8]}`) {
		t.Errorf("bands lost their order: %s", st.Params)
	}

	out, _, err = run(t, "jobs", "--addr", addr)
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "SUCCEEDED") || !strings.Contains(out, "4/4") {
		t.Errorf("jobs: %v\n%s", err, out)
	}
	out, _, err = run(t, "status", id, "--addr", addr, "--json")
	var js api.JobStatus
	if err != nil || json.Unmarshal([]byte(out), &js) != nil || js.JobID != id {
		t.Errorf("status --json: %v\n%s", err, out)
	}
	out, _, err = run(t, "status", "--addr", addr, id)
	if err != nil || !strings.Contains(out, "state") || !strings.Contains(out, "4 succeeded") {
		t.Errorf("status: %v\n%s", err, out)
	}

	dir := t.TempDir()
	pq := filepath.Join(dir, "out.parquet")
	if _, _, err := run(t, "get", id, "--addr", addr, "-o", pq); err != nil {
		t.Fatal(err)
	}
	pf, err := file.OpenParquetFile(pq, false)
	if err != nil {
		t.Fatal(err)
	}
	if pf.NumRows() != 64 {
		t.Errorf("parquet has %d rows", pf.NumRows())
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := fr.Schema(); err != nil || !s.HasField("theta_power") {
		t.Errorf("parquet schema: %v %v", s, err)
	}
	pf.Close()

	arrowFile := filepath.Join(dir, "out.arrow")
	if _, _, err := run(t, "get", id, "--addr", addr, "-o", arrowFile); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(arrowFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ar, err := ipc.NewFileReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for i := 0; i < ar.NumRecords(); i++ {
		rec, err := ar.RecordBatch(i)
		if err != nil {
			t.Fatal(err)
		}
		n += rec.NumRows()
	}
	ar.Close()
	if n != 64 {
		t.Errorf("arrow file has %d rows", n)
	}

	out, _, err = run(t, "get", id, "--addr", addr, "-o", "-")
	if err != nil {
		t.Fatal(err)
	}
	sr, err := ipc.NewReader(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	n = 0
	for sr.Next() {
		n += sr.RecordBatch().NumRows()
	}
	sr.Release()
	if n != 64 {
		t.Errorf("stream has %d rows", n)
	}

	if _, _, err := run(t, "get", id, "--addr", addr, "-o", filepath.Join(dir, "x.xlsx")); err == nil {
		t.Error("get -o x.xlsx did not fail")
	}
	if _, _, err := run(t, "status", "--addr", addr, "20260101T000000000Z-abcdef"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("status of an unknown job: %v", err)
	}
	out, _, err = run(t, "datasets", "--addr", addr)
	if err != nil || !strings.Contains(out, "demo") {
		t.Errorf("datasets: %v\n%s", err, out)
	}
}

func TestPSDWaitFailedJob(t *testing.T) {
	fault, err := batch.ParseFaults("part-00003:always")
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Fault: fault, MaxAttempts: 2})
	out, errOut, err := run(t, "psd", "--addr", srv.Addr, "--dataset", "demo", "--fs", "250", "--wait")
	if err == nil || !strings.Contains(err.Error(), "FAILED") {
		t.Fatalf("psd --wait of a failing job: %v", err)
	}
	if id := strings.TrimSpace(out); len(id) == 0 {
		t.Error("psd --wait printed no job ID")
	}
	if !strings.Contains(errOut, "shard part-00003: FAILED after 2 attempt(s)") || !strings.Contains(errOut, "attempt 2: injected fault") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

func TestFlagParsing(t *testing.T) {
	var b api.Bands
	if err := (bandsFlag{&b}).Set("beta=13:30, gamma=30.5:45"); err != nil || len(b) != 2 || b[1].Lo != 30.5 {
		t.Errorf("bands = %+v, %v", b, err)
	}
	for _, bad := range []string{"beta", "beta=13", "beta=a:b", "=1:2"} {
		if err := (bandsFlag{&b}).Set(bad); err == nil {
			t.Errorf("--bands %q accepted", bad)
		}
	}
	p := paramFlag{}
	for _, v := range []string{"window=hann", `window2=["tukey",0.25]`, "detrend=false", "nfft=512"} {
		if err := p.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if string(p["window"]) != `"hann"` || string(p["window2"]) != `["tukey",0.25]` || string(p["detrend"]) != "false" || string(p["nfft"]) != "512" {
		t.Errorf("params = %v", p)
	}
	if err := p.Set("novalue"); err == nil {
		t.Error("--param without = accepted")
	}
}

// TestNoServer: a client command with no server to talk to says so and how to
// fix it, whatever the command.
func TestNoServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	for _, args := range [][]string{
		{"jobs", "--addr", addr},
		{"status", "--addr", addr, "20261124T184501123Z-9f2c1a"},
		{"psd", "--addr", addr, "--dataset", "demo", "--fs", "250"},
	} {
		_, _, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), "cannot reach a flightbatch server") {
			t.Errorf("%v: got %v, want an error saying no server answers", args, err)
		}
	}
}
