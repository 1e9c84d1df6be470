package psd_test

import (
	"encoding/json"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightbatch/flightbatch/analysis/psd"
)

// TestEffectiveParams: two requests have equal effective params exactly when
// every record is computed alike: a default spelled out equals it left out,
// and any value that can change a result, for some record, differs.
func TestEffectiveParams(t *testing.T) {
	in := arrow.NewSchema([]arrow.Field{
		{Name: "fs", Type: arrow.PrimitiveTypes.Float64},
		{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
		{Name: "other", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
	}, nil)
	cases := []struct {
		a, b string
		same bool
	}{
		{`{"fs": 250}`, `{"fs": 250.0, "column": "samples"}`, true},
		{`{"fs": 250}`, `{"fs": 250, "window": "hann"}`, true},
		{`{"fs": 250}`, `{"fs": 250, "window": {"name": "hann"}}`, true},
		{`{"fs": 250}`, `{"fs": 250, "nperseg": 256}`, true},
		{`{"fs": 250}`, `{"fs": 250, "window": "hann", "nperseg": 256, "detrend": "constant", "return_onesided": true, "scaling": "density", "average": "mean", "nan_policy": "propagate", "method": "welch"}`, true},
		{`{"fs": 250, "window": [0.5, 1, 0.5]}`, `{"fs": 250, "window": [0.5, 1, 0.5], "nperseg": 3}`, true},
		{`{"fs": 250, "bands": {"beta": [13, 30]}}`, `{"bands": {"beta": [13.0, 30]}, "fs": 250}`, true},
		{`{"fs": 250, "method": "multitaper"}`, `{"fs": 250, "method": "multitaper", "low_bias": true, "normalization": "length"}`, true},
		{`{"fs": 250, "method": "multitaper", "adaptive": true}`, `{"fs": 250, "method": "multitaper", "adaptive": true, "max_iter": 150}`, true},
		{`{"fs": 250, "method": "multitaper"}`, `{"fs": 250, "method": "multitaper", "max_iter": 20}`, true},

		{`{"fs": 250}`, `{"fs": 500}`, false},
		{`{"fs": 250}`, `{"fs_column": "fs"}`, false},
		{`{"fs": 250}`, `{"fs": 250, "column": "other"}`, false},
		{`{"fs": 250}`, `{"fs": 250, "window": "hamming"}`, false},
		{`{"fs": 250}`, `{"fs": 250, "window": "hann_symmetric"}`, false},
		{`{"fs": 250}`, `{"fs": 250, "nperseg": 128}`, false},
		// nfft and noverlap follow a short record's clipped nperseg only
		// when left out.
		{`{"fs": 250}`, `{"fs": 250, "nfft": 256}`, false},
		{`{"fs": 250}`, `{"fs": 250, "noverlap": 128}`, false},
		{`{"fs": 250}`, `{"fs": 250, "detrend": "linear"}`, false},
		{`{"fs": 250}`, `{"fs": 250, "detrend": false}`, false},
		{`{"fs": 250}`, `{"fs": 250, "return_onesided": false}`, false},
		{`{"fs": 250}`, `{"fs": 250, "scaling": "spectrum"}`, false},
		{`{"fs": 250}`, `{"fs": 250, "average": "median"}`, false},
		{`{"fs": 250}`, `{"fs": 250, "average": null}`, false},
		{`{"fs": 250}`, `{"fs": 250, "nan_policy": "omit"}`, false},
		{`{"fs": 250}`, `{"fs": 250, "method": "multitaper"}`, false},
		// fmin and fmax crop when given, even at the default total range.
		{`{"fs": 250}`, `{"fs": 250, "fmin": 1}`, false},
		{`{"fs": 250}`, `{"fs": 250, "shared_freqs": true}`, false},
		{`{"fs": 250, "bands": {"beta": [13, 30]}}`, `{"fs": 250, "bands": {"beta": [13, 31]}}`, false},
		{`{"fs": 250, "bands": {"a": [1, 2], "b": [3, 4]}}`, `{"fs": 250, "bands": {"b": [3, 4], "a": [1, 2]}}`, false},
		{`{"fs": 250, "bands": {"beta": [13, 30]}}`, `{"fs": 250, "bands": {"beta": [13, 30]}, "relative": true}`, false},
		{`{"fs": 250, "method": "multitaper"}`, `{"fs": 250, "method": "multitaper", "bandwidth": 2}`, false},
		{`{"fs": 250, "method": "multitaper"}`, `{"fs": 250, "method": "multitaper", "low_bias": false}`, false},
		{`{"fs": 250, "method": "multitaper"}`, `{"fs": 250, "method": "multitaper", "normalization": "full"}`, false},
		{`{"fs": 250, "method": "multitaper", "adaptive": true}`, `{"fs": 250, "method": "multitaper", "adaptive": true, "max_iter": 20}`, false},
		{`{"fs": 250, "method": "multitaper"}`, `{"fs": 250, "method": "multitaper", "adaptive": true}`, false},
	}
	effective := func(req string) string {
		t.Helper()
		_, rec, err := psd.Function{}.Prepare(json.RawMessage(req), in)
		if err != nil {
			t.Fatalf("%s: %v", req, err)
		}
		e, err := psd.Function{}.EffectiveParams(rec)
		if err != nil {
			t.Fatalf("%s: effective params of %s: %v", req, rec, err)
		}
		// The effective form is itself a request that records and runs alike.
		if _, again, err := (psd.Function{}).Prepare(e, in); err != nil {
			t.Fatalf("%s: effective params %s do not prepare: %v", req, e, err)
		} else if e2, err := (psd.Function{}).EffectiveParams(again); err != nil || string(e2) != string(e) {
			t.Fatalf("%s: effective params %s are not a fixed point: %s (%v)", req, e, e2, err)
		}
		return string(e)
	}
	for _, c := range cases {
		ea, eb := effective(c.a), effective(c.b)
		if (ea == eb) != c.same {
			t.Errorf("%s and %s: effective %s and %s; equal %v, want %v", c.a, c.b, ea, eb, ea == eb, c.same)
		}
	}
	if _, err := (psd.Function{}).EffectiveParams(json.RawMessage(`{"fs": 250, "nope": 1}`)); err == nil {
		t.Error("effective params of an unknown parameter: no error")
	}
}
