package psd_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/analysis/psd"
	"github.com/flightbatch/flightbatch/batch"
)

// With "shared_freqs", the result has no freqs column, the schema metadata
// holds the frequencies every row of the same request without the option
// has, and every other value is the same; a record whose frequencies would
// differ gets a null psd and a reason.
func TestSharedFreqs(t *testing.T) {
	cases := []struct {
		name, params string
		lengths      []int
		short        []int // records whose frequencies differ
	}{
		{"mean", `{"fs": 250, "nperseg": 128, "bands": {"beta": [13, 30]}}`, []int{1000, 128, 777}, nil},
		{"crop", `{"fs": 250, "nperseg": 256, "fmin": 1, "fmax": 45, "bands": {"beta": [13, 30]}, "relative": true}`, []int{1000, 2000}, nil},
		{"median-two-sided", `{"fs": 100, "nperseg": 64, "average": "median", "return_onesided": false}`, []int{640, 300}, nil},
		{"per-segment", `{"fs": 250, "nperseg": 100, "noverlap": 50, "average": null}`, []int{400, 250}, nil},
		{"short-record-explicit-nfft", `{"fs": 250, "nperseg": 256, "nfft": 512}`, []int{1000, 100}, nil},
		{"short-record", `{"fs": 250, "nperseg": 256}`, []int{1000, 100, 256}, []int{1}},
		{"empty-crop", `{"fs": 250, "nperseg": 16, "fmin": 1, "fmax": 2}`, []int{100}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			signals := make([][]float64, len(c.lengths))
			fs := make([]float64, len(c.lengths))
			for i, n := range c.lengths {
				signals[i] = noise(n, float64(3+i))
			}
			rec := input(t, memory.DefaultAllocator, fs, signals)
			defer rec.Release()
			want, err := run(t, c.params, rec)
			if err != nil {
				t.Fatal(err)
			}
			shared := strings.Replace(c.params, "{", `{"shared_freqs": true, `, 1)
			schema, _, err := psd.Function{}.Prepare(json.RawMessage(shared), rec.Schema())
			if err != nil {
				t.Fatal(err)
			}
			if schema.HasField("freqs") || !schema.HasField(psd.ReasonColumn) {
				t.Fatalf("schema %v: want no freqs and a %s column", schema, psd.ReasonColumn)
			}
			raw, ok := schema.Metadata().GetValue(psd.MetaFreqs)
			if !ok {
				t.Fatalf("schema metadata %v has no %s", schema.Metadata(), psd.MetaFreqs)
			}
			var freqs []float64
			if err := json.Unmarshal([]byte(raw), &freqs); err != nil || freqs == nil {
				t.Fatalf("%s = %.40q: %v", psd.MetaFreqs, raw, err)
			}
			got, err := run(t, shared, rec)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for r := range want {
				i := int(want[r]["id"].(int64))
				if slices.Contains(c.short, i) {
					why, _ := got[r][psd.ReasonColumn].(string)
					if got[r]["psd"] != nil || !strings.Contains(why, "nfft") || !strings.Contains(why, "shared_freqs") {
						t.Errorf("row %d (record %d samples): psd %v, reason %q; want a null psd and a reason naming nfft and shared_freqs", r, c.lengths[i], got[r]["psd"], why)
					}
					if slices.Equal(want[r]["freqs"].([]float64), freqs) {
						t.Errorf("row %d: the test expects the record's own frequencies to differ", r)
					}
					continue
				}
				if !slices.Equal(want[r]["freqs"].([]float64), freqs) {
					t.Errorf("row %d: freqs %v, the metadata holds %v", r, want[r]["freqs"], freqs)
				}
				if got[r][psd.ReasonColumn] != nil {
					t.Errorf("row %d: reason %v", r, got[r][psd.ReasonColumn])
				}
				for name, v := range want[r] {
					if name == "freqs" || name == psd.ReasonColumn {
						continue
					}
					g, ok := got[r][name]
					if !ok {
						t.Errorf("row %d: column %s is missing", r, name)
						continue
					}
					if w, isList := v.([]float64); isList {
						if !slices.Equal(g.([]float64), w) {
							t.Errorf("row %d: %s differs", r, name)
						}
					} else if g != v {
						t.Errorf("row %d: %s = %v, want %v", r, name, g, v)
					}
				}
			}
		})
	}
}

// "shared_freqs" is refused where rows cannot share one frequency axis, and
// where the axis would be too long to keep in the schema metadata.
func TestSharedFreqsRefused(t *testing.T) {
	rec := input(t, memory.DefaultAllocator, []float64{250}, [][]float64{noise(1000, 3)})
	defer rec.Release()
	cases := []struct{ params, want string }{
		{`{"shared_freqs": true, "fs_column": "fs"}`, "fixed"},
		{`{"shared_freqs": true, "fs": 250, "method": "multitaper"}`, "multitaper"},
		{`{"shared_freqs": true, "fs": 250, "nperseg": 16386}`, "fmin"},
		{`{"shared_freqs": true, "fs": 250, "nperseg": 1024, "nfft": 32768}`, "fmin"},
		{`{"shared_freqs": true, "fs": 250, "nperseg": 1024, "nfft": 16386, "return_onesided": false}`, "nfft"},
	}
	for _, c := range cases {
		_, _, err := psd.Function{}.Prepare(json.RawMessage(c.params), rec.Schema())
		if !errors.Is(err, batch.ErrInvalid) || !strings.Contains(err.Error(), "shared_freqs") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an invalid-input error naming shared_freqs and %q", c.params, err, c.want)
		}
	}
	// A crop brings a long spectrum within the limit.
	cropped := json.RawMessage(`{"shared_freqs": true, "fs": 250, "nperseg": 32768, "fmin": 1, "fmax": 45}`)
	if _, _, err := (psd.Function{}).Prepare(cropped, rec.Schema()); err != nil {
		t.Errorf("a cropped long spectrum: %v", err)
	}
}
