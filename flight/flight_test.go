package flight_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/compute"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/pkg/api"
	"github.com/flightbatch/flightbatch/server"
	"github.com/flightbatch/flightbatch/store"
)

// env is a real server on 127.0.0.1:0 and an arrow-go client.
type env struct {
	st     *store.Store
	cat    *dataset.Catalog
	client aflight.Client
	alloc  *memory.CheckedAllocator
}

func newEnv(t *testing.T, faults string) *env {
	t.Helper()
	ctx := context.Background()
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	cat := dataset.NewCatalog(st)
	if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: 3, Bytes: 600 << 10, Seconds: 20}); err != nil {
		t.Fatal(err)
	}
	fault, err := batch.ParseFaults(faults)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	srv, err := server.Start(ctx, server.Config{
		Store: st, Functions: analysis.Builtins(), Workers: 2, Fault: fault, Alloc: alloc, Log: quiet,
		Jobs: batch.Options{MaxAttempts: 2},
	}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := aflight.NewClientWithMiddlewareCtx(ctx, srv.Addr, nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, cat: cat, client: client, alloc: alloc}
	t.Cleanup(func() {
		client.Close()
		srv.Shutdown(10 * time.Second)
		alloc.AssertSize(t, 0)
	})
	return e
}

func (e *env) action(t *testing.T, typ string, body any) ([]byte, error) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	stream, err := e.client.DoAction(context.Background(), &aflight.Action{Type: typ, Body: raw})
	if err != nil {
		return nil, err
	}
	res, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	return res.Body, nil
}

func (e *env) submit(t *testing.T, body string) string {
	t.Helper()
	out, err := e.action(t, api.ActionPSD, body)
	if err != nil {
		t.Fatalf("psd %s: %v", body, err)
	}
	var r api.SubmitResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r.JobID
}

func (e *env) wait(t *testing.T, id string) api.JobStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := e.action(t, api.ActionJobStatus, map[string]string{"job_id": id})
		if err != nil {
			t.Fatal(err)
		}
		var st api.JobStatus
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatal(err)
		}
		if st.State == "SUCCEEDED" || st.State == "FAILED" || st.State == "CANCELLED" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s", id, st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// read streams a ticket into memory (released at cleanup).
func (e *env) read(t *testing.T, ticket string) arrow.Table {
	t.Helper()
	tbl, err := e.tryRead(ticket)
	if err != nil {
		t.Fatalf("DoGet %s: %v", ticket, err)
	}
	t.Cleanup(tbl.Release)
	return tbl
}

func (e *env) tryRead(ticket string) (arrow.Table, error) {
	stream, err := e.client.DoGet(context.Background(), &aflight.Ticket{Ticket: []byte(ticket)})
	if err != nil {
		return nil, err
	}
	r, err := aflight.NewRecordReader(stream)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	var recs []arrow.RecordBatch
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if err := r.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	tbl := array.NewTableFromRecords(r.Schema(), recs)
	for _, rec := range recs {
		rec.Release()
	}
	return tbl, nil
}

func TestListAndDescribe(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	ds, err := e.cat.Get(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := e.client.ListFlights(ctx, &aflight.Criteria{})
	if err != nil {
		t.Fatal(err)
	}
	var paths [][]string
	for {
		info, err := lf.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, info.FlightDescriptor.Path)
	}
	if len(paths) != 1 || paths[0][0] != "datasets" || paths[0][1] != "demo" {
		t.Fatalf("ListFlights: got %v, want [[datasets demo]]", paths)
	}
	info, err := e.client.GetFlightInfo(ctx, &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"datasets", "demo"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Endpoint) != len(ds.Shards) || info.TotalRecords != ds.Rows() || info.TotalBytes != ds.Bytes() {
		t.Fatalf("GetFlightInfo: %d endpoints, %d records, %d bytes; want %d, %d, %d",
			len(info.Endpoint), info.TotalRecords, info.TotalBytes, len(ds.Shards), ds.Rows(), ds.Bytes())
	}
	var rows int64
	for _, ep := range info.Endpoint {
		rows += e.read(t, string(ep.Ticket.Ticket)).NumRows()
	}
	if whole := e.read(t, "datasets/demo"); rows != ds.Rows() || whole.NumRows() != ds.Rows() {
		t.Fatalf("read %d rows by shard and %d whole, want %d", rows, whole.NumRows(), ds.Rows())
	}
	sr, err := e.client.GetSchema(ctx, &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"datasets", "demo"}})
	if err != nil {
		t.Fatal(err)
	}
	schema, err := aflight.DeserializeSchema(sr.Schema, e.alloc)
	if err != nil {
		t.Fatal(err)
	}
	if !schema.Equal(dataset.DemoSchema) {
		t.Fatalf("GetSchema: got %s, want %s", schema, dataset.DemoSchema)
	}
	proj := e.read(t, `{"path": "datasets/demo", "columns": ["channel", "fs"]}`)
	if proj.NumCols() != 2 || proj.Schema().Field(0).Name != "channel" || proj.NumRows() != ds.Rows() {
		t.Fatalf("projection: got %s with %d rows", proj.Schema(), proj.NumRows())
	}
}

func TestPSDJobMatchesKernel(t *testing.T) {
	e := newEnv(t, "")
	id := e.submit(t, `{"dataset": "demo", "fs": 250, "nperseg": 512, "bands": {"beta": [13, 30], "alpha": [8, 12]}}`)
	st := e.wait(t, id)
	if st.State != "SUCCEEDED" || st.Shards.Succeeded != 3 || st.Progress != 1 {
		t.Fatalf("job ended %+v", st)
	}
	in := e.read(t, "datasets/demo")
	out := e.read(t, "jobs/"+id)
	if out.NumRows() != in.NumRows() {
		t.Fatalf("result has %d rows, input %d", out.NumRows(), in.NumRows())
	}
	wantCols := []string{"patient_id", "session_id", "channel", "start_time", "fs", "freqs", "psd", "beta_power", "alpha_power"}
	for i, name := range wantCols {
		if out.Schema().Field(i).Name != name {
			t.Fatalf("result column %d is %q, want %q (schema %s)", i, out.Schema().Field(i).Name, name, out.Schema())
		}
	}
	nper := 512
	plan, err := compute.NewPlan(compute.WelchParams{NPerSeg: &nper}, 5000)
	if err != nil {
		t.Fatal(err)
	}
	inRows := tableRows(t, in)
	outRows := tableRows(t, out)
	for r := range inRows {
		if a, b := inRows[r]["channel"], outRows[r]["channel"]; a != b {
			t.Fatalf("row %d: channel %v in the result, %v in the input: order lost", r, b, a)
		}
		if a, b := inRows[r]["start_time"], outRows[r]["start_time"]; a != b {
			t.Fatalf("row %d: start_time %v in the result, %v in the input", r, b, a)
		}
		samples := inRows[r]["samples"].([]float64)
		want := plan.PSD(nil, samples, 250)
		freqs := plan.Freqs(nil, 250)
		got := outRows[r]["psd"].([]float64)
		if len(got) != len(want) {
			t.Fatalf("row %d: %d psd values, want %d", r, len(got), len(want))
		}
		for k := range want {
			if got[k] != want[k] {
				t.Fatalf("row %d: psd[%d] = %g, the kernel gives %g", r, k, got[k], want[k])
			}
		}
		if bp, want := outRows[r]["beta_power"].(float64), compute.BandPower(freqs, want, 13, 30); math.Abs(bp-want) > 1e-12*math.Abs(want) {
			t.Fatalf("row %d: beta_power %g, want %g", r, bp, want)
		}
	}
	// The job is now a flight, described by GetFlightInfo, and listed.
	info, err := e.client.GetFlightInfo(context.Background(), &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id}})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Endpoint) != 1 || string(info.Endpoint[0].Ticket.Ticket) != "jobs/"+id || info.TotalRecords != in.NumRows() {
		t.Fatalf("job FlightInfo: %v", info)
	}
	for _, shard := range []string{"part-00000", "part-00002"} {
		if n := e.read(t, "jobs/"+id+"/"+shard).NumRows(); n == 0 {
			t.Errorf("part %s is empty", shard)
		}
	}
}

// tableRows flattens a small table into maps (lists as []float64).
func tableRows(t *testing.T, tbl arrow.Table) []map[string]any {
	t.Helper()
	tr := array.NewTableReader(tbl, 1000)
	defer tr.Release()
	var rows []map[string]any
	for tr.Next() {
		rec := tr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			row := map[string]any{}
			for c, f := range rec.Schema().Fields() {
				switch col := rec.Column(c).(type) {
				case *array.String:
					row[f.Name] = col.Value(i)
				case *array.Timestamp:
					row[f.Name] = int64(col.Value(i))
				case *array.Float64:
					row[f.Name] = col.Value(i)
				case *array.List:
					s, e := col.ValueOffsets(i)
					var xs []float64
					switch v := col.ListValues().(type) {
					case *array.Float32:
						for _, x := range v.Float32Values()[s:e] {
							xs = append(xs, float64(x))
						}
					case *array.Float64:
						xs = append(xs, v.Float64Values()[s:e]...)
					}
					row[f.Name] = xs
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, "")
	e.wait(t, e.submit(t, `{"dataset": "demo", "fs": 250}`))
	tests := []struct {
		name   string
		action string
		body   string
		ticket string
		want   codes.Code
	}{
		{"malformed JSON", api.ActionPSD, `{"dataset": `, "", codes.InvalidArgument},
		{"not an object", api.ActionPSD, `[1, 2]`, "", codes.InvalidArgument},
		{"unknown parameter", api.ActionPSD, `{"dataset": "demo", "fs": 250, "npersegs": 128}`, "", codes.InvalidArgument},
		{"unknown dataset", api.ActionPSD, `{"dataset": "nope", "fs": 250}`, "", codes.NotFound},
		{"bad dataset name", api.ActionPSD, `{"dataset": "../etc", "fs": 250}`, "", codes.InvalidArgument},
		{"no dataset", api.ActionPSD, `{"fs": 250}`, "", codes.InvalidArgument},
		{"no fs", api.ActionPSD, `{"dataset": "demo"}`, "", codes.InvalidArgument},
		{"fs zero", api.ActionPSD, `{"dataset": "demo", "fs": 0}`, "", codes.InvalidArgument},
		{"fs negative", api.ActionPSD, `{"dataset": "demo", "fs": -250}`, "", codes.InvalidArgument},
		{"noverlap >= nperseg", api.ActionPSD, `{"dataset": "demo", "fs": 250, "nperseg": 128, "noverlap": 128}`, "", codes.InvalidArgument},
		{"unknown window", api.ActionPSD, `{"dataset": "demo", "fs": 250, "window": "nope"}`, "", codes.InvalidArgument},
		{"band above Nyquist", api.ActionPSD, `{"dataset": "demo", "fs": 250, "bands": {"gamma": [30, 200]}}`, "", codes.InvalidArgument},
		{"band reversed", api.ActionPSD, `{"dataset": "demo", "fs": 250, "bands": {"beta": [30, 13]}}`, "", codes.InvalidArgument},
		{"relative without bands", api.ActionPSD, `{"dataset": "demo", "fs": 250, "relative": true}`, "", codes.InvalidArgument},
		{"crop fmin above fmax", api.ActionPSD, `{"dataset": "demo", "fs": 250, "fmin": 50, "fmax": 40}`, "", codes.InvalidArgument},
		{"relative band outside fmin-fmax", api.ActionPSD, `{"dataset": "demo", "fs": 250, "bands": {"wide": [0, 64]}, "relative": true}`, "", codes.InvalidArgument},
		{"fmax above Nyquist", api.ActionPSD, `{"dataset": "demo", "fs": 250, "bands": {"beta": [13, 30]}, "relative": true, "fmax": 200}`, "", codes.InvalidArgument},
		{"fmin above fmax", api.ActionPSD, `{"dataset": "demo", "fs": 250, "bands": {"beta": [13, 30]}, "relative": true, "fmin": 50, "fmax": 40}`, "", codes.InvalidArgument},
		{"unknown column", api.ActionPSD, `{"dataset": "demo", "fs": 250, "column": "nope"}`, "", codes.InvalidArgument},
		{"non-signal column", api.ActionPSD, `{"dataset": "demo", "fs": 250, "column": "channel"}`, "", codes.InvalidArgument},
		{"unknown job", api.ActionJobStatus, `{"job_id": "20200101T000000000Z-000000"}`, "", codes.NotFound},
		{"malformed job ID", api.ActionJobStatus, `{"job_id": "x/../y"}`, "", codes.NotFound},
		{"job-status without ID", api.ActionJobStatus, `{}`, "", codes.InvalidArgument},
		{"unknown action field", api.ActionListJobs, `{"datasets": "demo"}`, "", codes.InvalidArgument},
		{"body not UTF-8", api.ActionListJobs, "{\"dataset\": \"de\xffmo\"}", "", codes.InvalidArgument},
		{"unknown action", "nope", `{}`, "", codes.Unimplemented},
		{"Flight SQL action", "CreatePreparedStatement", "\x0a\x08SELECT 1", "", codes.Unimplemented},
		{"action type too long", strings.Repeat("x", 300), `{}`, "", codes.InvalidArgument},
		{"unknown function", api.ActionRun, `{"function": "nope", "dataset": "demo"}`, "", codes.NotFound},
		{"ticket of unknown dataset", "", "", "datasets/nope", codes.NotFound},
		{"ticket of unknown shard", "", "", "datasets/demo/part-99999", codes.NotFound},
		{"ticket of unknown job", "", "", "jobs/20200101T000000000Z-000000", codes.NotFound},
		{"ticket of unknown kind", "", "", "tables/demo", codes.InvalidArgument},
		{"ticket JSON with unknown column", "", "", `{"path": "datasets/demo", "columns": ["nope"]}`, codes.InvalidArgument},
		{"ticket JSON malformed", "", "", `{"path": `, codes.InvalidArgument},
	}
	before, _ := e.action(t, api.ActionListJobs, `{}`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.ticket != "" {
				_, err = e.tryRead(tc.ticket)
			} else {
				_, err = e.action(t, tc.action, tc.body)
			}
			if status.Code(err) != tc.want {
				t.Fatalf("got %v (%v), want %v", status.Code(err), err, tc.want)
			}
			if msg := status.Convert(err).Message(); len(msg) < 10 {
				t.Fatalf("message %q says too little", msg)
			}
		})
	}
	after, _ := e.action(t, api.ActionListJobs, `{}`)
	if string(before) != string(after) {
		t.Errorf("rejected requests changed the job history:\nbefore %s\nafter  %s", before, after)
	}
}

func TestUnfinishedResultIsFailedPrecondition(t *testing.T) {
	e := newEnv(t, "*:sleep=30")
	id := e.submit(t, `{"dataset": "demo", "fs": 250}`)
	_, err := e.tryRead("jobs/" + id)
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("DoGet of a running job: got %v, want FailedPrecondition", err)
	}
	_, err = e.client.GetFlightInfo(context.Background(), &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("GetFlightInfo of a running job: got %v, want FailedPrecondition", err)
	}
	if _, err := e.action(t, api.ActionCancelJob, map[string]string{"job_id": id}); err != nil {
		t.Fatal(err)
	}
	if st := e.wait(t, id); st.State != "CANCELLED" {
		t.Fatalf("cancelled job ended %s", st.State)
	}
}

// TestRecordLargerThanGRPCLimit streams a dataset whose one record is larger
// than gRPC's 4 MiB default message limit: the batch goes alone, a client with
// a raised limit reads it, and a psd job over it works.
func TestRecordLargerThanGRPCLimit(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
	}, nil)
	w, err := e.cat.NewWriter(ctx, "big", schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	const n = 700_000 // 5.6 MB of float64
	for r := 0; r < 2; r++ {
		b.Field(0).(*array.StringBuilder).Append("rec")
		lb := b.Field(1).(*array.ListBuilder)
		lb.Append(true)
		vb := lb.ValueBuilder().(*array.Float64Builder)
		for i := 0; i < n; i++ {
			vb.Append(math.Sin(float64(i) * 0.1 * float64(r+1)))
		}
	}
	rec := b.NewRecordBatch()
	b.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	tbl := e.read(t, "datasets/big") // the client below raises its limit
	if tbl.NumRows() != 2 {
		t.Fatalf("read %d rows, want 2", tbl.NumRows())
	}
	id := e.submit(t, `{"dataset": "big", "fs": 1000, "nperseg": 1024}`)
	if st := e.wait(t, id); st.State != "SUCCEEDED" {
		t.Fatalf("psd over big records: %+v", st)
	}
	if n := e.read(t, "jobs/"+id).NumRows(); n != 2 {
		t.Fatalf("result has %d rows, want 2", n)
	}
}

func TestRetryAndFailure(t *testing.T) {
	t.Run("retry succeeds", func(t *testing.T) {
		e := newEnv(t, "part-00001:1")
		st := e.wait(t, e.submit(t, `{"dataset": "demo", "fs": 250}`))
		if st.State != "SUCCEEDED" || len(st.Failures) != 1 || st.Failures[0].Attempts != 2 {
			t.Fatalf("want SUCCEEDED after a retry of part-00001, got %+v", st)
		}
	})
	t.Run("fails for good", func(t *testing.T) {
		e := newEnv(t, "part-00001:always")
		id := e.submit(t, `{"dataset": "demo", "fs": 250}`)
		st := e.wait(t, id)
		if st.State != "FAILED" || st.Shards.Failed != 1 || st.Shards.Succeeded != 2 {
			t.Fatalf("want FAILED with one failed shard, got %+v", st)
		}
		if len(st.Failures) != 1 || st.Failures[0].Shard != "part-00001" || st.Failures[0].Attempts != 2 || len(st.Failures[0].Errors) != 2 {
			t.Fatalf("failures: %+v", st.Failures)
		}
		if e.read(t, "jobs/"+id+"/part-00000").NumRows() == 0 {
			t.Fatal("a succeeded part of a failed job must stay readable")
		}
		if _, err := e.tryRead("jobs/" + id); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("merged result of a failed job: got %v, want FailedPrecondition", err)
		}
	})
}
