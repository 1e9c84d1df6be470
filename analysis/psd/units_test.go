package psd_test

import (
	"encoding/json"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightbatch/flightbatch/analysis/psd"
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
			got := psd.Function{}.ResultUnits(json.RawMessage(tc.params), tc.in)
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
