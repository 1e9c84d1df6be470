package batch_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightbatch/flightbatch/batch"
)

// A job's result schema, and every stream of its result, carry its provenance.
func TestResultProvenance(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, fileStore(t), "")
	m, err := r.mg.Submit(ctx, batch.SubmitRequest{Function: "psd", Dataset: "demo",
		Params: json.RawMessage(`{"fs_column": "fs", "nperseg": 64, "bands": {"beta": [13, 30]}}`)})
	if err != nil {
		t.Fatal(err)
	}
	done := waitFor(t, r.mg, m.JobID, terminal)
	if done.State != batch.StateSucceeded {
		t.Fatalf("job %s", done.State)
	}
	check := func(what string, s *arrow.Schema) {
		t.Helper()
		md := s.Metadata()
		get := func(k string) string {
			i := md.FindKey(k)
			if i < 0 {
				t.Fatalf("%s: no %s in schema metadata %v", what, k, md)
			}
			return md.Values()[i]
		}
		if get(batch.MetaJobID) != m.JobID || get(batch.MetaFunction) != "psd" || get(batch.MetaDataset) != "demo" ||
			get(batch.MetaDatasetVersion) != done.DatasetVersion || get(batch.MetaVersion) != done.Version {
			t.Errorf("%s: provenance %v, manifest %+v", what, md, done)
		}
		var params map[string]any
		if err := json.Unmarshal([]byte(get(batch.MetaParams)), &params); err != nil || params["nperseg"] != 64.0 {
			t.Errorf("%s: params %q (%v)", what, get(batch.MetaParams), err)
		}
		var units map[string]string
		if err := json.Unmarshal([]byte(get(batch.MetaUnits)), &units); err != nil || units["freqs"] != "Hz" {
			t.Errorf("%s: units %q (%v)", what, get(batch.MetaUnits), err)
		}
	}
	s, err := r.mg.ResultSchema(ctx, m.JobID)
	if err != nil {
		t.Fatal(err)
	}
	check("ResultSchema", s)
	for _, shard := range []string{"", done.Shards[0].Name} {
		rdr, err := r.mg.OpenResult(ctx, m.JobID, shard)
		if err != nil {
			t.Fatal(err)
		}
		check("OpenResult "+shard, rdr.Schema())
		rows := int64(0)
		for rdr.Next() {
			rows += rdr.RecordBatch().NumRows()
		}
		if err := rdr.Err(); err != nil || rows == 0 {
			t.Errorf("OpenResult %q: %d rows, %v", shard, rows, err)
		}
		rdr.Release()
	}
}
