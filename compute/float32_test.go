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

// TestFusedPathsEqualPlain: PSD's fast ways through a segment (the
// power-of-two FFT's first stage fused with the load, the other transforms'
// fused load, constant detrending's sums carried from one segment's second
// half to the next one's first half) give bit for bit what detrending,
// windowing and transforming each segment separately gives, for float64 and
// float32 samples; segments transformed two at a time (mean averaging,
// nperseg <= maxPairedNFFT) give it to 1e-13 relative in every bin, and
// float32 samples give bit for bit what their widened float64 samples give.
func TestFusedPathsEqualPlain(t *testing.T) {
	lin, none := DetrendLinear, DetrendNone
	type tc struct {
		name string
		n    int
		p    WelchParams
	}
	var cases []tc
	for _, nps := range []int{8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 1 << 15} {
		n := 3*nps + nps/2 + 5
		cases = append(cases,
			tc{"pow2/" + itoa(nps), n, WelchParams{NPerSeg: ptr(nps)}},
			tc{"pow2/quarter/" + itoa(nps), n, WelchParams{NPerSeg: ptr(nps), NOverlap: ptr(nps / 4)}},
			tc{"pow2/none/" + itoa(nps), n, WelchParams{NPerSeg: ptr(nps), Detrend: &none}},
			tc{"pow2/linear/" + itoa(nps), n, WelchParams{NPerSeg: ptr(nps), Detrend: &lin}},
			tc{"pow2/median/" + itoa(nps), n, WelchParams{NPerSeg: ptr(nps), Average: "median"}},
			tc{"pow2/odd segments/" + itoa(nps), 4 * nps, WelchParams{NPerSeg: ptr(nps)}},
			tc{"pow2/one segment/" + itoa(nps), nps + 3, WelchParams{NPerSeg: ptr(nps)}},
		)
	}
	for _, nps := range []int{200, 250, 375, 500, 1000, 144, 272} {
		cases = append(cases, tc{"other/" + itoa(nps), 7 * nps, WelchParams{NPerSeg: ptr(nps)}},
			tc{"other/linear/" + itoa(nps), 7 * nps, WelchParams{NPerSeg: ptr(nps), Detrend: &lin}})
	}
	cases = append(cases, tc{"job", 7500, WelchParams{NPerSeg: ptr(512), NOverlap: ptr(256)}},
		tc{"hamming", 5000, WelchParams{NPerSeg: ptr(1024), Window: &Window{Name: "hamming"}}})
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x32 := make([]float32, c.n)
			for j, v := range randn(c.n, uint64(100+i)) {
				x32[j] = float32(300 + 20*v)
			}
			x64 := make([]float64, c.n)
			for j, v := range x32 {
				x64[j] = float64(v) + 1e-9*float64(j%7)
			}
			fast, err := NewPlan(c.p, c.n)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := NewPlan(c.p, c.n)
			if err != nil {
				t.Fatal(err)
			}
			plain.plain = true
			single, err := NewPlan(c.p, c.n)
			if err != nil {
				t.Fatal(err)
			}
			single.pair = nil
			ctx := context.Background()
			want, _ := plain.PSDContext(ctx, nil, x64, 100)
			got, _ := single.PSDContext(ctx, nil, x64, 100)
			if !sameBits(got, want) || slices.ContainsFunc(want, math.IsNaN) {
				t.Fatalf("float64: fused path differs from the plain one")
			}
			want32, _ := plain.PSDFloat32Context(ctx, nil, x32, 100)
			got, _ = single.PSDFloat32Context(ctx, nil, x32, 100)
			if !sameBits(got, want32) {
				t.Fatalf("float32: fused path differs from the plain one")
			}
			// Segments half a segment apart read once where they overlap:
			// the same bits.
			apart, err := NewPlan(c.p, c.n)
			if err != nil {
				t.Fatal(err)
			}
			apart.noHalfPairs = true
			got, _ = fast.PSDFloat32Context(ctx, nil, x32, 100)
			want, _ = apart.PSDFloat32Context(ctx, nil, x32, 100)
			if !sameBits(got, want) {
				t.Fatalf("float32: overlapping pairs read once differ from pairs read apart")
			}
			got, _ = fast.PSDContext(ctx, nil, x64, 100)
			want, _ = apart.PSDContext(ctx, nil, x64, 100)
			if !sameBits(got, want) {
				t.Fatalf("float64: overlapping pairs read once differ from pairs read apart")
			}
			want, _ = plain.PSDContext(ctx, nil, x64, 100)
			// Segments transformed two at a time: the same to rounding.
			got, _ = fast.PSDContext(ctx, nil, x64, 100)
			if d := maxRelDiff(got, want); d > 1e-13 || fast.pair == nil && d != 0 {
				t.Fatalf("float64, paired segments: relative difference %.3g from the plain path", d)
			}
			got32, _ := fast.PSDFloat32Context(ctx, nil, x32, 100)
			if !sameBits(got32, func() []float64 { r, _ := fast.PSDContext(ctx, nil, widen(x32), 100); return r }()) {
				t.Fatalf("float32, paired segments: differs from the widened samples' PSD")
			}
			if d := maxRelDiff(got32, want32); d > 1e-13 {
				t.Fatalf("float32, paired segments: relative difference %.3g from the plain path", d)
			}
		})
	}
}

// maxRelDiff is the largest |a[k]-b[k]| / |b[k]|.
func maxRelDiff(a, b []float64) float64 {
	var d float64
	for k := range b {
		d = max(d, math.Abs(a[k]-b[k])/math.Abs(b[k]))
	}
	return d
}

func widen(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}
