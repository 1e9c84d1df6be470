package batch_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// childArg matches the test binary's child mode (external_test.go).
const childArg = "flightbatch-test-child"

func newTestManager(t *testing.T, modes ...string) *batch.Manager {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat := dataset.NewCatalog(st)
	if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: 3, Bytes: 100 << 10, Seconds: 1}); err != nil {
		t.Fatal(err)
	}
	fns := batch.NewRegistry()
	for _, mode := range modes {
		f, err := batch.NewExternal(mode, batch.ExternalSpec{Command: []string{os.Args[0], childArg, mode}}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		fns.Register(f)
	}
	w := &batch.Worker{Store: st, Functions: fns}
	mg := batch.NewManager(cat, fns, local.New(w.RunShard, 4), &batch.Options{MaxAttempts: 2})
	t.Cleanup(mg.Close)
	return mg
}

func runJob(t *testing.T, mg *batch.Manager, req batch.SubmitRequest) *batch.Manifest {
	t.Helper()
	m, err := mg.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !m.State.Terminal(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s", m.JobID, m.State)
		}
		if m, err = mg.Status(m.JobID); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestExternalJobRecordsSchemaAndChains(t *testing.T) {
	mg := newTestManager(t, "env")
	m := runJob(t, mg, batch.SubmitRequest{Function: "env", Dataset: "demo", Params: json.RawMessage(`{"k": "v"}`)})
	if m.State != batch.StateSucceeded {
		t.Fatalf("job %s: %s", m.State, m.Error)
	}
	schema, err := m.Schema()
	if err != nil || schema == nil || len(schema.FieldIndices(batch.EnvShard)) != 1 {
		t.Fatalf("result schema %v, %v: want the first part's", schema, err)
	}
	// A finished job's result is the next job's input.
	m2 := runJob(t, mg, batch.SubmitRequest{Function: "env", Dataset: "jobs/" + m.JobID})
	if m2.State != batch.StateSucceeded || len(m2.Shards) != 3 {
		t.Fatalf("chained job %s with %d shards: %s", m2.State, len(m2.Shards), m2.Error)
	}
	r, err := mg.OpenResult(context.Background(), m2.JobID, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	rows := 0
	for r.Next() {
		rows += int(r.RecordBatch().NumRows())
	}
	if r.Err() != nil || rows != 3 {
		t.Fatalf("merged result: %d rows, %v", rows, r.Err())
	}
}

// Every part's row count is recorded, whatever function wrote it: the worker
// counts what it writes, so nothing needs to know which function ran.
func TestPartRowsRecorded(t *testing.T) {
	mg := newTestManager(t, "env")
	m := runJob(t, mg, batch.SubmitRequest{Function: "env", Dataset: "demo"})
	if m.State != batch.StateSucceeded {
		t.Fatalf("job %s: %s", m.State, m.Error)
	}
	for _, sh := range m.Shards {
		r, err := mg.OpenResult(context.Background(), m.JobID, sh.Name)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for r.Next() {
			n += r.RecordBatch().NumRows()
		}
		r.Release()
		if sh.Rows == nil || *sh.Rows != n {
			t.Errorf("shard %s: recorded rows %v, its part has %d", sh.Name, sh.Rows, n)
		}
	}
}

func TestExternalJobFailsOnSchemaMismatch(t *testing.T) {
	mg := newTestManager(t, "odd")
	m := runJob(t, mg, batch.SubmitRequest{Function: "odd", Dataset: "demo", Params: json.RawMessage(`{"odd": "part-00002"}`)})
	if m.State != batch.StateFailed {
		t.Fatalf("job %s, want FAILED", m.State)
	}
	for _, want := range []string{"do not share one schema", "(part-00002)", "first shard part-00000", `field "n" is float64, not int64`} {
		if !strings.Contains(m.Error, want) {
			t.Errorf("error %q does not say %q", m.Error, want)
		}
	}
	if m.ResultSchema != "" {
		t.Error("a failed job recorded a result schema")
	}
}
