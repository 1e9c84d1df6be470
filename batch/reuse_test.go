package batch_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/flightbatch/flightbatch/batch"
)

// TestReuseComparesEffectiveParams: "reuse" finds a job whose parameters
// run alike however they were spelled (a default given or left out), and
// never one whose effective parameters differ in any way, for psd and for a
// registered command, which alone knows what its params mean.
func TestReuseComparesEffectiveParams(t *testing.T) {
	ctx := context.Background()
	type step struct {
		name, params string
		reuse        bool // the earlier job is returned
	}
	check := func(t *testing.T, mg *batch.Manager, fn, first string, steps []step) {
		t.Helper()
		a := runJob(t, mg, batch.SubmitRequest{Function: fn, Dataset: "demo", Params: json.RawMessage(first)})
		if a.State != batch.StateSucceeded {
			t.Fatalf("first job %s: %s", a.State, a.Error)
		}
		for _, s := range steps {
			b, err := mg.Submit(ctx, batch.SubmitRequest{Function: fn, Dataset: "demo", Params: json.RawMessage(s.params), Reuse: true})
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if (b.JobID == a.JobID) != s.reuse {
				t.Errorf("%s: %s after %s: got job %s, reused %v, want %v", s.name, s.params, first, b.JobID, b.JobID == a.JobID, s.reuse)
			}
			if b.JobID != a.JobID {
				runJob(t, mg, batch.SubmitRequest{Function: fn, Dataset: "demo", Params: json.RawMessage(s.params), Reuse: true})
			}
		}
	}
	t.Run("psd", func(t *testing.T) {
		r := newRig(t, fileStore(t), "")
		check(t, r.mg, "psd", `{"fs": 250}`, []step{
			{"defaults spelled out", `{"fs": 250, "window": "hann", "nperseg": 256, "detrend": "constant", "scaling": "density", "average": "mean"}`, true},
			{"same, other order", `{"nperseg": 256, "fs": 250.0}`, true},
			{"another nperseg", `{"fs": 250, "nperseg": 128}`, false},
			{"another window", `{"fs": 250, "window": "hamming"}`, false},
			{"nfft given (a short record's differs)", `{"fs": 250, "nfft": 256}`, false},
		})
	})
	t.Run("psd, defaults first", func(t *testing.T) {
		r := newRig(t, fileStore(t), "")
		check(t, r.mg, "psd", `{"fs": 250, "window": "hann", "nperseg": 256, "return_onesided": true}`, []step{
			{"defaults left out", `{"fs": 250}`, true},
			{"another detrend", `{"fs": 250, "detrend": "linear"}`, false},
		})
	})
	t.Run("psd bands", func(t *testing.T) {
		// The result has a <band>_power column per band in the order asked:
		// another order is another result.
		r := newRig(t, fileStore(t), "")
		check(t, r.mg, "psd", `{"fs": 250, "bands": {"beta": [13, 30], "alpha": [8, 12]}}`, []step{
			{"same bands, spelled otherwise", `{"bands": {"beta": [13.0, 30], "alpha": [8, 12.0]}, "fs": 250}`, true},
			{"bands in another order", `{"fs": 250, "bands": {"alpha": [8, 12], "beta": [13, 30]}}`, false},
		})
	})
	t.Run("registered function", func(t *testing.T) {
		mg := newTestManager(t, "env")
		check(t, mg, "env", `{"k": "v", "n": 1, "big": 9007199254740993}`, []step{
			{"same, other order and spacing", `{ "n": 1, "big": 9007199254740993,  "k": "v" }`, true},
			{"a number written otherwise", `{"k": "v", "n": 1.0, "big": 9007199254740993}`, false},
			{"an integer float64 cannot tell apart", `{"k": "v", "n": 1, "big": 9007199254740992}`, false},
			{"a param more", `{"k": "v", "n": 1, "big": 9007199254740993, "x": null}`, false},
			{"another value", `{"k": "w", "n": 1, "big": 9007199254740993}`, false},
		})
	})
}
