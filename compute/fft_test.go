package compute

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// naivePower is the O(n²) DFT power |X[k]|², k = 0..n/2, with exactly
// reduced angles.
func naivePower(x []float64) []float64 {
	n := len(x)
	out := make([]float64, n/2+1)
	for k := range out {
		var re, im float64
		for j, v := range x {
			s, c := math.Sincos(-2 * math.Pi * float64((k*j)%n) / float64(n))
			re += v * c
			im += v * s
		}
		out[k] = re*re + im*im
	}
	return out
}

func TestPowerSpectrumMatchesNaiveDFT(t *testing.T) {
	sizes := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 22, 24, 25, 27, 30, 31, 32, 33, 36,
		45, 48, 49, 60, 62, 64, 74, 96, 98, 100, 125, 127, 128, 154, 162, 200, 250, 256, 300, 360, 375, 500, 512, 600,
		625, 750, 1000, 1024, 1536, 2000, 2048, 2310, 4096, 5000, 37, 41, 74, 254, 257, 1018, 2003}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range sizes {
		x := make([]float64, n)
		for i := range x {
			x[i] = rng.NormFloat64()*3 + 1
		}
		want := naivePower(x)
		ps := newPowerSpectrum(n)
		got := make([]float64, n/2+1)
		ps.power(got, x, false)
		var mx float64
		for _, v := range want {
			mx = math.Max(mx, v)
		}
		for k := range want {
			if d := math.Abs(got[k] - want[k]); d > 1e-11*mx {
				t.Errorf("n=%d k=%d: got %g want %g", n, k, got[k], want[k])
				break
			}
		}
		// add=true accumulates.
		ps.power(got, x, true)
		for k := range want {
			if d := math.Abs(got[k] - 2*want[k]); d > 2e-11*mx {
				t.Errorf("n=%d k=%d accumulate: got %g want %g", n, k, got[k], 2*want[k])
				break
			}
		}
	}
}

func TestPowerSpectrumPicksTransform(t *testing.T) {
	cases := []struct {
		n    int
		want string
	}{
		{4, "*compute.naiveDFT"}, {1024, "*compute.pow2RFFT"}, {1000, "*compute.evenRFFT"},
		{2 * 29, "*compute.evenRFFT"}, {375, "*compute.oddRFFT"}, {2 * 37, "*compute.bluesteinRFFT"},
		{127, "*compute.bluesteinRFFT"}, {60013, "*compute.bluesteinRFFT"},
	}
	for _, c := range cases {
		if got := fmt.Sprintf("%T", newPowerSpectrum(c.n)); got != c.want {
			t.Errorf("n=%d: %s, want %s", c.n, got, c.want)
		}
	}
}

func TestPowerSpectrumParseval(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{8, 64, 256, 1000, 4096, 1 << 15} {
		x := make([]float64, n)
		var e float64
		for i := range x {
			x[i] = rng.NormFloat64()
			e += x[i] * x[i]
		}
		p := make([]float64, n/2+1)
		newPowerSpectrum(n).power(p, x, false)
		// Two-sided sum from the one-sided half: bins 1..ceil(n/2)-1 appear twice.
		s := p[0]
		for k := 1; k < len(p); k++ {
			if n%2 == 0 && k == n/2 {
				s += p[k]
			} else {
				s += 2 * p[k]
			}
		}
		if math.Abs(s/float64(n)-e) > 1e-10*e {
			t.Errorf("n=%d: sum|X|²/n = %g, sum x² = %g", n, s/float64(n), e)
		}
	}
}

func TestPowerSpectrumOfSine(t *testing.T) {
	n, k0, a := 512, 37, 2.5
	x := make([]float64, n)
	for i := range x {
		x[i] = a * math.Cos(2*math.Pi*float64(k0*i)/float64(n))
	}
	p := make([]float64, n/2+1)
	newPowerSpectrum(n).power(p, x, false)
	want := a * a * float64(n*n) / 4
	for k, v := range p {
		if k == k0 {
			if math.Abs(v-want) > 1e-9*want {
				t.Errorf("peak %g, want %g", v, want)
			}
		} else if v > 1e-18*want {
			t.Errorf("bin %d: %g, want 0", k, v)
		}
	}
}

func BenchmarkPowerSpectrum(b *testing.B) {
	for _, n := range []int{256, 250, 500, 1000, 1024, 2000, 4096} {
		b.Run(itoa(n), func(b *testing.B) {
			x := make([]float64, n)
			for i := range x {
				x[i] = float64(i%7) - 3
			}
			p := make([]float64, n/2+1)
			ps := newPowerSpectrum(n)
			if os.Getenv("FFT_MIXED") != "" && n%2 == 0 {
				ps = &evenRFFT{c: newCFFT(n / 2), split: newSplit(n), z: make([]complex128, n/2)}
			}
			for b.Loop() {
				ps.power(p, x, true)
			}
		})
	}
}
