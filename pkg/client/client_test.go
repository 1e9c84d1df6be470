package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/internal/testserver"
	"github.com/flightbatch/flightbatch/pkg/api"
	"github.com/flightbatch/flightbatch/pkg/client"
)

func dial(t *testing.T, addr string, mem memory.Allocator) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), "grpc://"+addr, client.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rows(t *testing.T, r array.RecordReader) (int64, []string) {
	t.Helper()
	defer r.Release()
	var n int64
	for r.Next() {
		n += r.RecordBatch().NumRows()
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range r.Schema().Fields() {
		names = append(names, f.Name)
	}
	return n, names
}

// gate holds the attempts of chosen shards until its channel closes.
func gate(ch chan struct{}, shards ...string) func(ctx context.Context, jobID, shard string, attempt int) error {
	return func(ctx context.Context, jobID, shard string, attempt int) error {
		for _, s := range shards {
			if s == shard {
				select {
				case <-ch:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return nil
	}
}

func TestSubmitWaitResult(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	release := make(chan struct{})
	srv := testserver.Start(t, testserver.Options{Fault: gate(release, "part-00001")})
	c := dial(t, srv.Addr, mem)
	ctx := context.Background()

	dss, err := c.ListDatasets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dss) != 1 || dss[0].Name != "demo" || dss[0].Shards != 4 || dss[0].Records != 64 || dss[0].Version == "" || dss[0].Schema == nil {
		t.Fatalf("datasets = %+v", dss)
	}

	id, err := c.SubmitPSD(ctx, api.PSDRequest{Dataset: "demo", PSDParams: api.PSDParams{FS: new(250.0), NPerSeg: new(128),
		Bands: api.Bands{{Name: "theta", Lo: 4, Hi: 8}, {Name: "beta", Lo: 13, Hi: 30}}}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		close(release)
	}()
	var mu sync.Mutex
	var seen []api.JobStatus
	st, err := c.Wait(ctx, id, func(st api.JobStatus) {
		mu.Lock()
		seen = append(seen, st)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "SUCCEEDED" || st.Progress != 1 || st.JobID != id {
		t.Fatalf("final status = %+v", st)
	}
	if len(seen) < 2 || seen[len(seen)-1].State != "SUCCEEDED" {
		t.Errorf("progress callback saw %d statuses", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Progress < seen[i-1].Progress {
			t.Errorf("progress went back: %v then %v", seen[i-1].Progress, seen[i].Progress)
		}
	}

	r, err := c.Result(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	n, cols := rows(t, r)
	want := "patient_id,session_id,channel,start_time,fs,freqs,psd,theta_power,beta_power"
	if n != 64 || strings.Join(cols, ",") != want {
		t.Errorf("result: %d rows, columns %v; want 64 rows, %s", n, cols, want)
	}
	r, err = c.ResultPart(ctx, id, "part-00003")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := rows(t, r); n != 16 {
		t.Errorf("part: %d rows, want 16", n)
	}

	jobs, err := c.ListJobs(ctx, "demo")
	if err != nil || len(jobs) != 1 || jobs[0].JobID != id {
		t.Errorf("jobs = %+v, %v", jobs, err)
	}
	got, err := c.Status(ctx, id)
	if err != nil || got.State != "SUCCEEDED" || !strings.Contains(string(got.Params), `"nperseg":128`) {
		t.Errorf("status = %+v, %v", got, err)
	}
}

func TestEarlyReleaseStopsStream(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	srv := testserver.Start(t, testserver.Options{Shards: 2, Records: 256})
	c := dial(t, srv.Addr, mem)
	r, err := c.Stream(context.Background(), "datasets/demo")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Next() {
		t.Fatal(r.Err())
	}
	r.Release()
}

func TestWaitFailedJob(t *testing.T) {
	fault := func(ctx context.Context, jobID, shard string, attempt int) error {
		if shard == "part-00000" {
			return errors.New("disk on fire")
		}
		return nil
	}
	srv := testserver.Start(t, testserver.Options{Fault: fault, MaxAttempts: 2})
	c := dial(t, srv.Addr, memory.DefaultAllocator)
	ctx := context.Background()
	id, err := c.SubmitPSD(ctx, api.PSDRequest{Dataset: "demo", PSDParams: api.PSDParams{FS: new(250.0)}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctx, id, nil)
	var je *client.JobError
	if !errors.As(err, &je) || st.State != "FAILED" || je.Status.State != "FAILED" {
		t.Fatalf("Wait = %+v, %v; want FAILED and a *JobError", st, err)
	}
	if len(st.Failures) != 1 || st.Failures[0].Shard != "part-00000" || st.Failures[0].Attempts != 2 ||
		!strings.Contains(st.Failures[0].Errors[1], "disk on fire") || !strings.Contains(err.Error(), "part-00000") {
		t.Errorf("failures = %+v, error %v", st.Failures, err)
	}
	if _, err := c.Result(ctx, id); status.Code(errors.Unwrap(err)) != codes.FailedPrecondition {
		t.Errorf("result of a failed job: %v", err)
	}
	r, err := c.ResultPart(ctx, id, "part-00001")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := rows(t, r); n != 16 {
		t.Errorf("a finished part of a failed job has %d rows", n)
	}
}

func TestCancelWait(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Fault: gate(make(chan struct{}), "part-00002")})
	c := dial(t, srv.Addr, memory.DefaultAllocator)
	ctx := context.Background()
	id, err := c.SubmitPSD(ctx, api.PSDRequest{Dataset: "demo", PSDParams: api.PSDParams{FS: new(250.0)}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = c.Cancel(ctx, id)
	}()
	start := time.Now()
	st, err := c.Wait(ctx, id, nil)
	var je *client.JobError
	if !errors.As(err, &je) || st.State != "CANCELLED" {
		t.Fatalf("Wait = %+v, %v; want CANCELLED", st, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel took %s", d)
	}
}

func TestErrors(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Shards: 1, Records: 4})
	c := dial(t, srv.Addr, memory.DefaultAllocator)
	ctx := context.Background()
	if _, err := c.SubmitPSD(ctx, api.PSDRequest{Dataset: "demo", PSDParams: api.PSDParams{FS: new(-3.0)}}); status.Code(errors.Unwrap(err)) != codes.InvalidArgument {
		t.Errorf("fs -3: %v", err)
	}
	if _, err := c.SubmitPSD(ctx, api.PSDRequest{Dataset: "demo", PSDParams: api.PSDParams{FS: new(250.0)}, Extra: map[string]json.RawMessage{"bogus": json.RawMessage("1")}}); status.Code(errors.Unwrap(err)) != codes.InvalidArgument {
		t.Errorf("unknown parameter: %v", err)
	}
	if _, err := c.Run(ctx, client.RunRequest{Function: "nosuch", Dataset: "demo"}); status.Code(errors.Unwrap(err)) != codes.NotFound {
		t.Errorf("unknown function: %v", err)
	}
	if _, err := c.Status(ctx, "20260101T000000000Z-abcdef"); status.Code(errors.Unwrap(err)) != codes.NotFound {
		t.Errorf("unknown job: %v", err)
	}
	if _, err := c.Wait(ctx, "20260101T000000000Z-abcdef", nil); status.Code(errors.Unwrap(err)) != codes.NotFound {
		t.Errorf("wait for an unknown job: %v", err)
	}
}

// TestRecordLargerThanGRPCDefault streams a record of more than 4 MiB, which
// gRPC's default receive limit would refuse.
func TestRecordLargerThanGRPCDefault(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	srv := testserver.Start(t, testserver.Options{Shards: 1, Records: 2, Seconds: 4800}) // 1.2 M samples, 4.8 MB a record
	c := dial(t, srv.Addr, mem)
	r, err := c.Stream(context.Background(), "datasets/demo")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := rows(t, r); n != 2 {
		t.Errorf("%d rows, want 2", n)
	}
}
