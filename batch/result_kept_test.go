package batch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// streamResult reads the merged result of job id whole: its batches'
// values in IPC form (one buffer per batch), or the error that ended it.
func streamResult(t *testing.T, mg *batch.Manager, id string) ([][]byte, error) {
	t.Helper()
	rr, err := mg.OpenResult(context.Background(), id, "")
	if err != nil {
		return nil, err
	}
	defer rr.Release()
	var out [][]byte
	for rr.Next() {
		out = append(out, ipcBytes(t, rr.RecordBatch()))
	}
	return out, rr.Err()
}

// ipcBytes is rec as an IPC stream.
func ipcBytes(t *testing.T, rec arrow.RecordBatch) []byte {
	t.Helper()
	b, err := encodeIPC(rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodeIPC(rec arrow.RecordBatch) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()))
	if err := w.Write(rec); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// partsAsStored reads the job's parts as they are in the store now, one
// after the other: what its merged result must be.
func partsAsStored(t *testing.T, st *store.Store, m *batch.Manifest) [][]byte {
	t.Helper()
	var out [][]byte
	for _, sh := range m.Shards {
		r, err := dataset.OpenFile(context.Background(), st, batch.PartKey(m.JobID, sh.Name), dataset.FormatArrow, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			out = append(out, ipcBytes(t, r.RecordBatch()))
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		r.Release()
	}
	return out
}

// otherSchemaFile is a valid Arrow IPC file of one int64 column.
func otherSchemaFile(t *testing.T) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewInt64Builder(memory.DefaultAllocator)
	b.AppendValues([]int64{1, 2, 3}, nil)
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 3)
	defer rec.Release()
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestKeptResultReadsPartsAnew streams a succeeded job's merged result, then
// changes one of its parts in the store and streams it again: the second
// stream uses what was kept of the job (its schema and parts, from the final
// manifest) but reads and checks the parts as they are now. It sends their
// current contents, or fails with the error a first stream would give; never
// what the parts were.
func TestKeptResultReadsPartsAnew(t *testing.T) {
	for _, c := range []struct {
		name    string
		change  func(t *testing.T, r *rig, m *batch.Manifest)
		err     error // nil: the stream equals the parts as stored now
		differs bool  // the parts' contents change
	}{
		{"unchanged", func(*testing.T, *rig, *batch.Manifest) {}, nil, false},
		{"replaced by another part", func(t *testing.T, r *rig, m *batch.Manifest) {
			st := r.st
			data, err := st.ReadAll(context.Background(), batch.PartKey(m.JobID, m.Shards[1].Name))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.WriteAll(context.Background(), batch.PartKey(m.JobID, m.Shards[0].Name), data); err != nil {
				t.Fatal(err)
			}
		}, nil, true},
		{"truncated", func(t *testing.T, r *rig, m *batch.Manifest) {
			truncate(t, r.st, batch.PartKey(m.JobID, m.Shards[1].Name))
		}, dataset.ErrDamaged, true},
		{"another schema", func(t *testing.T, r *rig, m *batch.Manifest) {
			if err := r.st.WriteAll(context.Background(), batch.PartKey(m.JobID, m.Shards[2].Name), otherSchemaFile(t)); err != nil {
				t.Fatal(err)
			}
		}, dataset.ErrDamaged, true},
		{"part removed", func(t *testing.T, r *rig, m *batch.Manifest) {
			if err := r.st.Delete(context.Background(), batch.PartKey(m.JobID, m.Shards[0].Name)); err != nil {
				t.Fatal(err)
			}
		}, dataset.ErrNotFound, true},
		{"job deleted", func(t *testing.T, r *rig, m *batch.Manifest) {
			if err := r.mg.Delete(context.Background(), m.JobID, false); err != nil {
				t.Fatal(err)
			}
			if r.mg.HasKeptResult(m.JobID) {
				t.Fatal("a deleted job's result is still kept")
			}
		}, batch.ErrNotFound, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := fileStore(t)
			r := newRig(t, st, "")
			sub := submit(t, r.mg, "demo", `{"fs": 250}`, false)
			m := waitFor(t, r.mg, sub.JobID, terminal)
			if m.State != batch.StateSucceeded {
				t.Fatalf("job ended %s: %s", m.State, m.Error)
			}
			if r.mg.HasKeptResult(m.JobID) {
				t.Fatal("a result is kept before it was streamed")
			}
			first, err := streamResult(t, r.mg, m.JobID)
			if err != nil {
				t.Fatal(err)
			}
			if want := partsAsStored(t, st, m); !equalBatches(first, want) {
				t.Fatalf("first stream: %d batches, not the %d stored", len(first), len(want))
			}
			if !r.mg.HasKeptResult(m.JobID) {
				t.Fatal("the succeeded job's result is not kept after a stream")
			}
			c.change(t, r, m)
			second, err := streamResult(t, r.mg, m.JobID)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("second stream: err %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := partsAsStored(t, st, m); !equalBatches(second, want) {
				t.Fatalf("second stream: %d batches, not the %d stored now", len(second), len(want))
			}
			if equalBatches(second, first) == c.differs {
				t.Fatalf("second stream equal to the first: %v; the parts changed: %v", !c.differs, c.differs)
			}
		})
	}
}

func equalBatches(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestKeptResultConcurrentStreams streams a succeeded job's merged result
// from several goroutines at once, before and after it is kept: every
// stream gets every stored batch (run with -race).
func TestKeptResultConcurrentStreams(t *testing.T) {
	st := fileStore(t)
	r := newRig(t, st, "")
	sub := submit(t, r.mg, "demo", `{"fs": 250}`, false)
	m := waitFor(t, r.mg, sub.JobID, terminal)
	if m.State != batch.StateSucceeded {
		t.Fatalf("job ended %s: %s", m.State, m.Error)
	}
	want := partsAsStored(t, st, m)
	const streams = 4
	errs := make(chan error, 2*streams)
	for range 2 * streams {
		go func() {
			rr, err := r.mg.OpenResult(context.Background(), m.JobID, "")
			if err != nil {
				errs <- err
				return
			}
			defer rr.Release()
			n := 0
			for rr.Next() {
				got, err := encodeIPC(rr.RecordBatch())
				if err != nil {
					errs <- err
					return
				}
				if n >= len(want) || !bytes.Equal(got, want[n]) {
					errs <- fmt.Errorf("batch %d differs from the stored one", n)
					return
				}
				n++
			}
			if err := rr.Err(); err != nil {
				errs <- err
				return
			}
			if n != len(want) {
				errs <- fmt.Errorf("%d batches, %d stored", n, len(want))
				return
			}
			errs <- nil
		}()
	}
	for range 2 * streams {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if !r.mg.HasKeptResult(m.JobID) {
		t.Fatal("the result is not kept after the streams")
	}
}

// TestResultDeletedMidStream deletes a succeeded job while its merged result
// streams: the stream ends with NotFound saying the job was deleted, not with
// the store's word about a missing file.
func TestResultDeletedMidStream(t *testing.T) {
	st := fileStore(t)
	r := newRig(t, st, "")
	m := waitFor(t, r.mg, submit(t, r.mg, "demo", `{"fs": 250}`, false).JobID, terminal)
	if m.State != batch.StateSucceeded || len(m.Shards) < 2 {
		t.Fatalf("job ended %s with %d shards: %s", m.State, len(m.Shards), m.Error)
	}
	rr, err := r.mg.OpenResult(context.Background(), m.JobID, "")
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	if !rr.Next() {
		t.Fatalf("no first batch: %v", rr.Err())
	}
	if err := r.mg.Delete(context.Background(), m.JobID, false); err != nil {
		t.Fatal(err)
	}
	for rr.Next() {
	}
	err = rr.Err()
	if !errors.Is(err, batch.ErrNotFound) || !strings.Contains(err.Error(), "deleted") || !strings.Contains(err.Error(), m.JobID) {
		t.Fatalf("stream of a job deleted meanwhile ended with %v, want NotFound saying job %s was deleted", err, m.JobID)
	}
}
