package batch_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightbatch/flightbatch/batch"
)

func TestPSDResultUnits(t *testing.T) {
	list := arrow.ListOf(arrow.PrimitiveTypes.Float64)
	withUnit := func(u string) *arrow.Schema {
		md := arrow.NewMetadata([]string{"unit"}, []string{u})
		return arrow.NewSchema([]arrow.Field{{Name: "samples", Type: list, Metadata: md}}, nil)
	}
	perRow := arrow.NewSchema([]arrow.Field{{Name: "unit", Type: arrow.BinaryTypes.String}, {Name: "samples", Type: list}}, nil)
	bare := arrow.NewSchema([]arrow.Field{{Name: "samples", Type: list}}, nil)
	tests := []struct {
		name   string
		params string
		in     *arrow.Schema
		want   map[string]string
	}{
		{"no unit", `{"fs": 250}`, bare, map[string]string{"freqs": "Hz"}},
		{"field unit, density", `{"fs": 250, "bands": {"beta": [13, 30]}}`, withUnit("uV"),
			map[string]string{"freqs": "Hz", "psd": "uV²/Hz", "beta_power": "uV²"}},
		{"field unit, spectrum", `{"fs": 250, "scaling": "spectrum", "bands": {"beta": [13, 30]}}`, withUnit("V"),
			map[string]string{"freqs": "Hz", "psd": "V²", "beta_power": "V²·Hz"}},
		{"compound unit", `{"fs": 250}`, withUnit("T/m"), map[string]string{"freqs": "Hz", "psd": "(T/m)²/Hz"}},
		{"per-row unit column", `{"fs": 250, "bands": {"beta": [13, 30]}, "relative": true}`, perRow,
			map[string]string{"freqs": "Hz", "psd": "[unit]²/Hz", "beta_power": "[unit]²", "beta_relative": "1"}},
		{"field unit wins over the column", `{"fs": 250}`,
			arrow.NewSchema([]arrow.Field{{Name: "unit", Type: arrow.BinaryTypes.String}, withUnit("mV").Field(0)}, nil),
			map[string]string{"freqs": "Hz", "psd": "mV²/Hz"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := batch.PSD{}.ResultUnits(json.RawMessage(tc.params), tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("units %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("units[%q] = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

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
