package compute

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestParamLimits: parameters beyond the documented bounds are refused by
// Validate (and so by NewPlan) with ErrInvalidParams, a message naming the
// parameter, and never a plan that would allocate them; those at the bounds
// pass.
func TestParamLimits(t *testing.T) {
	weights := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]" }
	cases := []struct {
		name, params string
		wantErr      string // "" for accepted
	}{
		{"nfft-2^62", `{"nfft": 4611686018427387904}`, "nfft"},
		{"nfft-2^31", `{"nfft": 2147483648}`, "nfft"},
		{"nfft-max", `{"nperseg": 16384, "nfft": 1048576}`, ""},
		{"nfft-above-max", `{"nperseg": 1048576, "nfft": 1048577}`, "nfft"},
		{"nfft-above-factor", `{"nperseg": 256, "nfft": 16385}`, "64 times nperseg"},
		{"nfft-at-factor", `{"nperseg": 256, "nfft": 16384}`, ""},
		{"nfft-default-nperseg-factor", `{"nfft": 32768}`, "nperseg=256"},
		{"nperseg-max", `{"nperseg": 1048576}`, ""},
		{"nperseg-above-max", `{"nperseg": 1048577}`, "nperseg"},
		{"nperseg-2^62", `{"nperseg": 4611686018427387904}`, "nperseg"},
		{"general-cosine-terms", `{"window": ["general_cosine", ` + weights(MaxCosineTerms+1) + `]}`, "general_cosine"},
		{"general-cosine-max-terms", `{"window": ["general_cosine", ` + weights(MaxCosineTerms) + `]}`, ""},
		{"huge-window-name", `{"window": "` + strings.Repeat("w", 100_000) + `"}`, "window"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p WelchParams
			if err := json.Unmarshal([]byte(c.params), &p); err != nil {
				t.Fatal(err)
			}
			err := p.Validate()
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), c.wantErr) || len(err.Error()) > 2000 {
				t.Fatalf("got %.400v; want ErrInvalidParams naming %q in a short message", err, c.wantErr)
			}
			if _, err := NewPlan(p, 2000); !errors.Is(err, ErrInvalidParams) {
				t.Fatalf("NewPlan accepted what Validate refuses: %v", err)
			}
		})
	}
	// Explicit weights beyond MaxNPerSeg are refused before any window is made.
	p := WelchParams{Window: &Window{Weights: make([]float64, MaxNPerSeg+1)}}
	if err := p.Validate(); !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), "weights") {
		t.Fatalf("%d weights: %v", MaxNPerSeg+1, err)
	}
}

// TestPlannerCacheBounded: records of many lengths below a large nperseg each
// need a plan of nfft points; the planner keeps at most maxCachedPoints of
// them.
func TestPlannerCacheBounded(t *testing.T) {
	nfft, nperseg := MaxNFFT, 1<<14
	pp, err := NewPlanner(WelchParams{NPerSeg: &nperseg, NFFT: &nfft})
	if err != nil {
		t.Fatal(err)
	}
	for n := 100; n < 110; n++ {
		if _, err := pp.Plan(n); err != nil {
			t.Fatal(err)
		}
		if pp.points > maxCachedPoints || len(pp.plans)*nfft > maxCachedPoints {
			t.Fatalf("after %d lengths: %d plans, %d points cached", n-99, len(pp.plans), pp.points)
		}
	}
}
