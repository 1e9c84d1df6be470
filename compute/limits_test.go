package compute

import (
	"context"
	"encoding/json"
	"errors"
	"math"
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

// TestMedianBounded: a median over more segments x frequencies than the
// bound holds at most the bound (or one value per segment) and equals the
// median computed in one pass; PSDContext stops within a long record when
// its context is cancelled.
func TestMedianBounded(t *testing.T) {
	x := make([]float64, 2000)
	v := 7.0
	for i := range x {
		v = math.Mod(v*16807, 2147483647)
		x[i] = v/2147483647 - 0.5 + math.Sin(float64(i)*0.2)
	}
	nperseg, noverlap := 256, 250
	for _, nfft := range []int{256, 1000} {
		p := WelchParams{NPerSeg: &nperseg, NOverlap: &noverlap, NFFT: &nfft, Average: "median"}
		whole, err := NewPlan(p, len(x))
		if err != nil {
			t.Fatal(err)
		}
		if whole.medianFreqs != 0 {
			t.Fatalf("nfft %d: %d x %d values blocked under the default bound", nfft, whole.nseg, whole.nhalf)
		}
		want := whole.PSD(nil, x, 250)
		for _, limit := range []int{whole.nseg * 7, 100} {
			pl, err := newPlan(p, len(x), limit)
			if err != nil {
				t.Fatal(err)
			}
			if pl.medianFreqs == 0 || len(pl.rows) > max(limit, pl.nseg) || pl.col != nil {
				t.Fatalf("nfft %d, bound %d: %d frequencies per pass, %d values held", nfft, limit, pl.medianFreqs, len(pl.rows))
			}
			got := pl.PSD(nil, x, 250)
			for k := range want {
				if math.Abs(got[k]-want[k]) > 1e-12*math.Abs(want[k]) {
					t.Fatalf("nfft %d, bound %d, bin %d: %v, want %v", nfft, limit, k, got[k], want[k])
				}
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, avg := range []string{"mean", "median"} {
		pl, err := newPlan(WelchParams{NPerSeg: &nperseg, NOverlap: &noverlap, Average: avg}, len(x), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pl.PSDContext(ctx, nil, x, 250); !errors.Is(err, context.Canceled) {
			t.Fatalf("average %s, cancelled: %v", avg, err)
		}
	}
}
