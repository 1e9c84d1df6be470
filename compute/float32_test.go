package compute

import (
	"context"
	"math"
	"slices"
	"testing"
)

// TestFloat32EqualsWidened: the float32 entry points give, bit for bit,
// what the float64 ones give for the same samples converted to float64, for
// every transform (power of two, even, odd, zero padding, naive) and every
// option that changes how segments are read.
func TestFloat32EqualsWidened(t *testing.T) {
	const n = 3001
	x32 := make([]float32, n)
	for i, v := range randn(n, 7) {
		// An offset makes the detrending's sums matter in the last bits.
		x32[i] = float32(1000 + v)
	}
	x64 := make([]float64, n)
	for i, v := range x32 {
		x64[i] = float64(v)
	}
	lin, none := DetrendLinear, DetrendNone
	cases := []struct {
		name   string
		p      WelchParams
		median int // bound on the median's values, 0: the default
	}{
		{"pow2", WelchParams{NPerSeg: ptr(256)}, 0},
		{"even", WelchParams{NPerSeg: ptr(500)}, 0},
		{"odd", WelchParams{NPerSeg: ptr(375)}, 0},
		{"padded", WelchParams{NPerSeg: ptr(200), NFFT: ptr(512)}, 0},
		{"naive", WelchParams{NPerSeg: ptr(6)}, 0},
		{"linear", WelchParams{NPerSeg: ptr(256), Detrend: &lin}, 0},
		{"no detrend", WelchParams{NPerSeg: ptr(128), Detrend: &none}, 0},
		{"median", WelchParams{NPerSeg: ptr(256), Average: "median"}, 0},
		{"median in blocks", WelchParams{NPerSeg: ptr(256), Average: "median"}, 1000},
		{"two-sided spectrum", WelchParams{NPerSeg: ptr(300), ReturnOnesided: ptr(false), Scaling: "spectrum"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			limit := MaxMedianValues
			if c.median > 0 {
				limit = c.median
			}
			pl, err := newPlan(c.p, n, limit)
			if err != nil {
				t.Fatal(err)
			}
			want, err := pl.PSDContext(context.Background(), nil, x64, 250)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pl.PSDFloat32Context(context.Background(), nil, x32, 250)
			if err != nil {
				t.Fatal(err)
			}
			if !sameBits(got, want) || slices.ContainsFunc(want, math.IsNaN) {
				t.Fatalf("PSDFloat32Context differs from PSDContext of the widened samples")
			}
			s0, s1 := 1, pl.NumSegments()
			if !sameBits(pl.SegmentRangeFloat32(nil, x32, 250, s0, s1), pl.SegmentRange(nil, x64, 250, s0, s1)) {
				t.Fatalf("SegmentRangeFloat32 differs from SegmentRange of the widened samples")
			}
		})
	}
}

// sameBits compares float64 slices bit for bit (NaN equal to NaN).
func sameBits(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(u, v float64) bool { return math.Float64bits(u) == math.Float64bits(v) })
}
