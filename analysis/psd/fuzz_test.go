package psd_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/flightbatch/flightbatch/analysis/psd"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
)

// FuzzPSDPrepare feeds arbitrary request bodies to the psd function's parser
// and validation: it must never panic, and whatever it rejects must be
// ErrInvalid (a user's mistake, InvalidArgument at the edge).
func FuzzPSDPrepare(f *testing.F) {
	for _, s := range []string{
		`{"fs": 250}`,
		`{"fs": 250, "nperseg": 512, "noverlap": 128, "nfft": 1024, "window": "hamming"}`,
		`{"fs_column": "fs", "window": ["tukey", 0.25], "detrend": false, "scaling": "spectrum"}`,
		`{"fs": 250, "window": [0.1, 0.5, 1, 0.5, 0.1], "average": "median", "return_onesided": false}`,
		`{"fs": 250, "bands": {"beta": [13, 30], "alpha": [8, 12]}}`,
		`{"fs": 1e308, "nperseg": -1}`,
		`{"fs": 250, "bands": {"x": [1]}}`,
		`{"fs": 250, "window": ["kaiser"]}`,
		`[]`, `null`, `{"fs": "250"}`, `{"column": 3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, params, err := psd.Function{}.Prepare(json.RawMessage(body), dataset.DemoSchema)
		if err != nil {
			if !errors.Is(err, batch.ErrInvalid) {
				t.Fatalf("rejected %q with an error that is not ErrInvalid: %v", body, err)
			}
			return
		}
		if out == nil || out.NumFields() < 2 {
			t.Fatalf("accepted %q but gave schema %v", body, out)
		}
		// What was accepted and recorded must be accepted again the same way.
		out2, params2, err := psd.Function{}.Prepare(params, dataset.DemoSchema)
		if err != nil || !out2.Equal(out) || string(params2) != string(params) {
			t.Fatalf("recorded params %s do not round-trip: %v", params, err)
		}
	})
}
