package psd_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightbatch/flightbatch/analysis/psd"
	"github.com/flightbatch/flightbatch/pkg/api"
)

// A psd request is recorded in one canonical form: scipy's window and
// detrend forms as compute writes them, "average": null as "none", the
// default column filled in; the recorded form decodes to the same
// parameters, kernel parameters included, and records itself unchanged. A
// Go client's api.PSDRequest reaches the server as the same parameters as
// the JSON a notebook sends.
func TestParamsCanonical(t *testing.T) {
	in := arrow.NewSchema([]arrow.Field{
		{Name: "fs", Type: arrow.PrimitiveTypes.Float64},
		{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
	}, nil)
	cases := []struct{ req, want string }{
		{`{"fs": 250}`, `{"column":"samples","fs":250}`},
		{`{"fs_column": "fs", "window": {"name": "hann"}, "detrend": "false", "average": null}`,
			`{"column":"samples","fs_column":"fs","window":"hann","detrend":false,"average":"none"}`},
		{`{"fs": 250, "window": ["taylor", 4, 30, true], "window_unused": 1}`, ``},
		{`{"fs": 250, "window": ["taylor", 4, 30, true]}`, `{"column":"samples","fs":250,"window":["taylor",4,30,1]}`},
		{`{"fs": 250, "window": ["exponential", null, 2.5], "detrend": "linear", "nan_policy": "omit"}`,
			`{"column":"samples","fs":250,"window":["exponential",null,2.5],"detrend":"linear","nan_policy":"omit"}`},
		{`{"fs": 250, "window": [0.1, 0.5, 1e-3], "nfft": 8, "bands": {"b": [1, 2], "a": [3, 4]}}`,
			`{"column":"samples","fs":250,"window":[0.1,0.5,0.001],"nfft":8,"bands":{"b":[1,2],"a":[3,4]}}`},
	}
	for _, c := range cases {
		_, norm, err := psd.Function{}.Prepare(json.RawMessage(c.req), in)
		if c.want == "" {
			if err == nil {
				t.Errorf("%s: accepted, want an error", c.req)
			}
			continue
		}
		if err != nil || string(norm) != c.want {
			t.Errorf("%s: recorded %s (%v), want %s", c.req, norm, err, c.want)
			continue
		}
		first, err1 := psd.DecodeParams(json.RawMessage(c.req))
		again, err2 := psd.DecodeParams(norm)
		// NaN (a null window argument) is not equal to itself: compare the
		// kernel parameters' JSON, where compute writes it as null.
		k1, _ := json.Marshal(first.Welch())
		k2, _ := json.Marshal(again.Welch())
		if err1 != nil || err2 != nil || string(k1) != string(k2) || strings.Contains(c.req, `"window"`) != strings.Contains(string(k1), `"window"`) {
			t.Errorf("%s: kernel parameters %s (%v), from the recorded form %s (%v)", c.req, k1, err1, k2, err2)
		}
		if _, renorm, err := (psd.Function{}).Prepare(norm, in); err != nil || string(renorm) != string(norm) {
			t.Errorf("%s: the recorded form records as %s (%v)", c.req, renorm, err)
		}
	}
	req := api.PSDRequest{Dataset: "demo", Reuse: true, Name: "n", PSDParams: api.PSDParams{
		FS: new(250.0), Window: []any{"tukey", 0.25}, NPerSeg: new(128), Detrend: false,
		Bands: api.Bands{{Name: "beta", Lo: 13, Hi: 30}}, SharedFreqs: true}}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		t.Fatal(err)
	}
	for _, job := range []string{"dataset", "reuse", "name"} { // the job's, as the Flight edge takes them
		delete(fields, job)
	}
	params, _ := json.Marshal(fields)
	_, fromGo, err := psd.Function{}.Prepare(params, in)
	if err != nil {
		t.Fatal(err)
	}
	_, fromJSON, err := psd.Function{}.Prepare(json.RawMessage(`{"fs": 250, "window": ["tukey", 0.25], "nperseg": 128, "detrend": false, "bands": {"beta": [13, 30]}, "shared_freqs": true}`), in)
	if err != nil || string(fromGo) != string(fromJSON) {
		t.Errorf("a Go request records %s, the same JSON request %s (%v)", fromGo, fromJSON, err)
	}
}
