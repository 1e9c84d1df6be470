//go:build amd64 && !amd64.v3

package trig

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSincosEqualsMath: Sincos, Sin and Cos are math.Sincos, math.Sin and
// math.Cos bit for bit, where package math is built without fused
// multiply-adds (amd64 below GOAMD64=v3), on the arguments of compute's
// twiddles and windows, random ones and the special values.
func TestSincosEqualsMath(t *testing.T) {
	xs := []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), math.Pi, -math.Pi,
		math.Pi / 4, 3 * math.Pi / 4, 1e-300, 5e-324, reduceThreshold, reduceThreshold * (1 - 0x1p-52), 1e10, -1e10, math.MaxFloat64}
	for n := 1; n <= 1<<12; n++ {
		for k := 0; k <= n; k += 1 + n/97 {
			xs = append(xs, -2*math.Pi*float64(k)/float64(n), math.Pi*float64(k)/float64(n), 2*math.Pi*float64(k)/float64(n+1))
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		xs = append(xs, (rng.Float64()-0.5)*200, (rng.Float64()-0.5)*1e7, math.Float64frombits(rng.Uint64()))
	}
	same := func(a, b float64) bool {
		return math.Float64bits(a) == math.Float64bits(b) || math.IsNaN(a) && math.IsNaN(b)
	}
	for _, x := range xs {
		s, c := Sincos(x)
		ws, wc := math.Sincos(x)
		if !same(s, ws) || !same(c, wc) {
			t.Fatalf("Sincos(%v) = %v, %v; math.Sincos: %v, %v", x, s, c, ws, wc)
		}
		if !same(Sin(x), math.Sin(x)) || !same(Cos(x), math.Cos(x)) {
			t.Fatalf("Sin, Cos(%v) = %v, %v; math: %v, %v", x, Sin(x), Cos(x), math.Sin(x), math.Cos(x))
		}
	}
}
