package compute

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"
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

// interleaved runs a and b in turn, a round each per iteration, and reports
// the median of each one's time per round and the median of the rounds'
// ratios b/a: on a shared machine the two see the same interference, which
// separate runs do not, and a round that was preempted moves no median.
func interleaved(b *testing.B, a, bb func()) {
	var ta, tb, ratio []float64
	for b.Loop() {
		t0 := time.Now()
		a()
		t1 := time.Now()
		bb()
		t2 := time.Now()
		da, db := t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds()
		ta, tb, ratio = append(ta, da), append(tb, db), append(ratio, db/da)
	}
	med := func(v []float64) float64 {
		slices.Sort(v)
		return v[len(v)/2]
	}
	b.ReportMetric(med(ta)*1e9, "A-ns/round")
	b.ReportMetric(med(tb)*1e9, "B-ns/round")
	b.ReportMetric(med(ratio), "B/A")
}

// BenchmarkPow2Welch times Plan.PSDFloat32Context (B) against the same
// mean of segment powers computed as the kernel did before its
// power-of-two path was fused (A: each segment's pairwise sum, loadSegment
// through the bit-reversal table, every stage multiplying by every twiddle,
// then the split), on float32 records of 7,500 samples (8 a round),
// interleaved.
func BenchmarkPow2Welch(b *testing.B) {
	for _, nps := range []int{256, 512, 1024, 2048, 4096} {
		b.Run(itoa(nps), func(b *testing.B) {
			const n = 7500
			n2 := max(n, 2*nps)
			x := make([]float32, n2)
			for i, v := range randn(n2, 5) {
				x[i] = float32(v + 10)
			}
			pl, err := NewPlan(WelchParams{NPerSeg: ptr(nps)}, n2)
			if err != nil {
				b.Fatal(err)
			}
			f := pl.fft.(*pow2RFFT)
			dst := make([]float64, pl.NumFreqs())
			acc := make([]float64, pl.nhalf)
			ctx := context.Background()
			interleaved(b,
				func() {
					for range 8 {
						clear(acc)
						for s := range pl.nseg {
							seg := x[s*pl.step : s*pl.step+nps]
							mean := pairwiseSum(seg) / float64(nps)
							z, perm := f.loadBuffer()
							loadSegment(z, perm, seg, pl.win, mean, 0, nil)
							if f.odd {
								radix8(z)
							} else {
								radix4(z)
							}
							laterStagesBefore(f, z)
							splitPower(acc, z, f.split, true)
						}
					}
				},
				func() {
					for range 8 {
						dst, _ = pl.PSDFloat32Context(ctx, dst, x, 250)
					}
				})
		})
	}
}

// laterStagesBefore is pow2RFFT.laterStages as it was before its stages
// skipped the twiddles of 1: every butterfly multiplies.
func laterStagesBefore(f *pow2RFFT, z []complex128) {
	m := len(z)
	q := 4
	if f.odd {
		q = 8
	}
	for _, tw := range f.tw {
		tw = tw[:3*q]
		for base := 0; base < m; base += 4 * q {
			blk := z[base : base+4*q : base+4*q]
			z0 := blk[0:q:q]
			z1 := blk[q : 2*q : 2*q]
			z2 := blk[2*q : 3*q : 3*q]
			z3 := blk[3*q : 4*q : 4*q]
			z1, z2, z3 = z1[:len(z0)], z2[:len(z0)], z3[:len(z0)]
			tw := tw[:3*len(z0)]
			for j := range z0 {
				w := tw[3*j : 3*j+3 : 3*j+3]
				y0 := z0[j]
				y2 := cmul(z1[j], &w[1]) // z1[j] * w[1], never fused
				y1 := cmul(z2[j], &w[0])
				y3 := cmul(z3[j], &w[2])
				s0, s1 := y0+y2, y0-y2
				s2, s3 := y1+y3, y1-y3
				z0[j] = s0 + s2
				z2[j] = s0 - s2
				z1[j] = complex(real(s1)+imag(s3), imag(s1)-real(s3))
				z3[j] = complex(real(s1)-imag(s3), imag(s1)+real(s3))
			}
		}
		q *= 4
	}
}

// TestPow2PowerEqualsBefore: the power-of-two transform's power equals, bit
// for bit, that of the same stages with every twiddle multiplied
// (laterStagesBefore), for every length from 8 to 2^17, on random samples
// with and without an offset.
func TestPow2PowerEqualsBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for n := 8; n <= 1<<17; n *= 2 {
		for _, offset := range []float64{0, 1e6, math.Inf(1)} {
			x := make([]float64, n)
			for i := range x {
				x[i] = rng.NormFloat64()
				if !math.IsInf(offset, 0) {
					x[i] += offset
				}
			}
			if math.IsInf(offset, 0) {
				x[n/3] = offset
			}
			f := newPow2RFFT(n)
			got := make([]float64, n/2+1)
			f.power(got, x, false)
			z := make([]complex128, f.m)
			for k, p := range f.perm {
				z[p] = complex(x[2*k], x[2*k+1])
			}
			if f.odd {
				radix8(z)
			} else {
				radix4(z)
			}
			laterStagesBefore(f, z)
			want := make([]float64, n/2+1)
			splitPower(want, z, f.split, false)
			same := slices.EqualFunc(got, want, func(u, v float64) bool {
				if math.IsInf(offset, 0) && !isFinite(u) && !isFinite(v) {
					return true
				}
				return math.Float64bits(u) == math.Float64bits(v)
			})
			if !same {
				t.Fatalf("n=%d offset %g: power differs from the multiplying stages'", n, offset)
			}
		}
	}
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// BenchmarkPairedSegments times PSDFloat32Context with segments transformed
// two at a time (B) against one at a time (A), interleaved, on float32
// records of 7,500 samples (8 a round).
func BenchmarkPairedSegments(b *testing.B) {
	for _, nps := range []int{256, 512} {
		b.Run(itoa(nps), func(b *testing.B) {
			const n = 7500
			x := make([]float32, n)
			for i, v := range randn(n, 5) {
				x[i] = float32(v + 10)
			}
			one, err := NewPlan(WelchParams{NPerSeg: ptr(nps)}, n)
			if err != nil {
				b.Fatal(err)
			}
			two, _ := NewPlan(WelchParams{NPerSeg: ptr(nps)}, n)
			if two.pair == nil {
				b.Fatal("no paired transform")
			}
			one.pair = nil
			dst := make([]float64, one.NumFreqs())
			ctx := context.Background()
			interleaved(b, func() {
				for range 8 {
					dst, _ = one.PSDFloat32Context(ctx, dst, x, 250)
				}
			}, func() {
				for range 8 {
					dst, _ = two.PSDFloat32Context(ctx, dst, x, 250)
				}
			})
		})
	}
}

// TestLaterStagesAsmEqualsGo: the radix-4 stages in assembly give, bit for
// bit, what the Go loop gives (any NaN equal to any NaN), for every
// power-of-two length they take, on random values with zeros of both signs,
// an offset, infinities and NaN.
func TestLaterStagesAsmEqualsGo(t *testing.T) {
	if !haveAsm {
		t.Skip("no assembly on this architecture")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for n := 16; n <= 2*maxStageAsm; n *= 2 {
		f := newPow2RFFT(n)
		if len(f.tw) > 0 && len(f.twx) != len(f.tw) {
			t.Fatalf("n=%d: %d stages in assembly of %d", n, len(f.twx), len(f.tw))
		}
		for c, special := range []float64{0, math.Copysign(0, -1), 1e6, math.Inf(1), math.Inf(-1), math.NaN()} {
			z := make([]complex128, f.m)
			for k := range z {
				z[k] = complex(rng.NormFloat64(), rng.NormFloat64())
				if c == 2 {
					z[k] += complex(special, -special)
				}
			}
			if c != 2 {
				for range 3 {
					k := rng.IntN(f.m)
					z[k] = complex(special, real(z[k]))
					z[rng.IntN(f.m)] = complex(imag(z[k]), special)
				}
			}
			want := slices.Clone(z)
			f.laterStagesGo(want)
			// Each instruction set, whichever laterStages picks.
			sse, avx := slices.Clone(z), slices.Clone(z)
			f.laterStages(z)
			q := f.radix
			for _, tw := range f.tw {
				radix4Stage(sse, stageTwiddles(tw), q)
				if hasAVX {
					radix4StageAVX(avx, stageTwiddlesAVX(tw), q)
				}
				q *= 4
			}
			if !hasAVX {
				avx = sse
			}
			for name, got := range map[string][]complex128{"laterStages": z, "SSE2": sse, "AVX": avx} {
				for k := range got {
					if !sameValue(real(got[k]), real(want[k])) || !sameValue(imag(got[k]), imag(want[k])) {
						t.Fatalf("n=%d case %d, %s: point %d is %v, the Go loop's %v", n, c, name, k, got[k], want[k])
					}
				}
			}
		}
	}
	if f := newPow2RFFT(4 * maxStageAsm); f.twx != nil {
		t.Fatalf("n=%d: assembly beyond maxStageAsm", 4*maxStageAsm)
	}
}

// sameValue: u and v have the same bits, or both are NaN.
func sameValue(u, v float64) bool {
	return math.Float64bits(u) == math.Float64bits(v) || math.IsNaN(u) && math.IsNaN(v)
}

// TestLoadPairHalfAsmEqualsGo: the float32 load of two segments half a
// segment apart in assembly gives, bit for bit, what loadPairRadix8Half
// gives (any NaN equal to any NaN), for every segment length with a radix-8
// first stage up to 2^13, on random samples with an offset, signed zeros,
// infinities and NaN, and a random window.
func TestLoadPairHalfAsmEqualsGo(t *testing.T) {
	if !haveAsm {
		t.Skip("no assembly on this architecture")
	}
	rng := rand.New(rand.NewPCG(31, 32))
	if hasAVX && !pairLoadAVX(512) {
		t.Fatal("the job's segments (512) are not loaded with AVX")
	}
	for m := 8; m <= 1<<13; m *= 4 {
		f := newPow2RFFT(2 * m)
		if !f.odd {
			t.Fatalf("m=%d: no radix-8 first stage", m)
		}
		w := make([]float64, m)
		for i := range w {
			w[i] = rng.Float64()
		}
		pw := pairWindow(w)
		for c, special := range []float64{0, math.Copysign(0, -1), 1e6, math.Inf(1), math.Inf(-1), math.NaN()} {
			x := make([]float32, 3*m/2+c) // longer than read, too
			for i := range x {
				x[i] = float32(rng.NormFloat64())
				if c == 2 {
					x[i] += float32(special)
				}
			}
			if c != 2 {
				for range 3 {
					x[rng.IntN(len(x))] = float32(special)
				}
			}
			ma, mb := rng.NormFloat64(), rng.NormFloat64()
			if c == 2 {
				ma, mb = ma+special, mb+special
			}
			want := make([]complex128, m)
			loadPairRadix8Half(want, f.first, x, w, ma, mb)
			clear(f.z)
			loadPow2PairHalf(f, x, w, pw, ma, mb)
			// Each instruction set, whichever loadPow2PairHalf picks.
			sse, avx := make([]complex128, m), make([]complex128, m)
			loadPairRadix8HalfF32(sse, f.first, x, pairWindowSSE(w), ma, mb)
			if pairLoadAVX(m) {
				loadPairRadix8HalfF32AVX(avx, f.first, x, pairWindowAVX(w), ma, mb)
			} else {
				avx = sse
			}
			// float64 samples: AVX where there is, else Go.
			x64 := widen(x)
			want64 := make([]complex128, m)
			loadPairRadix8Half(want64, f.first, x64, w, ma, mb)
			if !slices.EqualFunc(want64, want, func(u, v complex128) bool {
				return sameValue(real(u), real(v)) && sameValue(imag(u), imag(v))
			}) {
				t.Fatalf("m=%d case %d: the Go loop's float64 load differs from its float32 one", m, c)
			}
			avx64 := make([]complex128, m)
			f64 := newPow2RFFT(2 * m)
			loadPow2PairHalf(f64, x64, w, pw, ma, mb)
			copy(avx64, f64.z)
			for name, got := range map[string][]complex128{"loadPow2PairHalf": f.z, "SSE2": sse, "AVX": avx, "float64": avx64} {
				for k, v := range got {
					if !sameValue(real(v), real(want[k])) || !sameValue(imag(v), imag(want[k])) {
						t.Fatalf("m=%d case %d, %s: point %d is %v, the Go loop's %v", m, c, name, k, v, want[k])
					}
				}
			}
		}
	}
}

// TestLoadPairRadix4HalfAsmEqualsGo: the load of two segments half a
// segment apart with a radix-4 first stage, in assembly (float32 in SSE2,
// float32 and float64 in AVX where the processor has it), gives bit for
// bit what loadPairRadix4Half gives, and that what loadPairRadix4 gives of the two segments read apart
// (any NaN equal to any NaN), for every segment length with a radix-4 first
// stage from 16 to 2^12 (the paired path takes those to maxPairedNFFT), on
// random samples with an offset, signed zeros, infinities and NaN, and a
// random window.
func TestLoadPairRadix4HalfAsmEqualsGo(t *testing.T) {
	if !haveAsm {
		t.Skip("no assembly on this architecture")
	}
	rng := rand.New(rand.NewPCG(33, 34))
	if hasAVX && !pairLoadAVX(256) {
		t.Fatal("the default segments (256) are not loaded with AVX")
	}
	if maxPairedNFFT > 1<<12 {
		t.Fatalf("maxPairedNFFT %d is beyond the lengths tested", maxPairedNFFT)
	}
	same := func(u, v complex128) bool { return sameValue(real(u), real(v)) && sameValue(imag(u), imag(v)) }
	for m := 16; m <= 1<<12; m *= 4 {
		f := newPow2RFFT(2 * m)
		if f.odd || pairRadix(m) != 4 {
			t.Fatalf("m=%d: no radix-4 first stage", m)
		}
		w := make([]float64, m)
		for i := range w {
			w[i] = rng.Float64()
		}
		pw := pairWindow(w)
		for c, special := range []float64{0, math.Copysign(0, -1), 1e6, math.Inf(1), math.Inf(-1), math.NaN()} {
			x := make([]float32, 3*m/2+c) // longer than read, too
			for i := range x {
				x[i] = float32(rng.NormFloat64())
				if c == 2 {
					x[i] += float32(special)
				}
			}
			if c != 2 {
				for range 3 {
					x[rng.IntN(len(x))] = float32(special)
				}
			}
			ma, mb := rng.NormFloat64(), rng.NormFloat64()
			if c == 2 {
				ma, mb = ma+special, mb+special
			}
			want := make([]complex128, m)
			loadPairRadix4Half(want, f.first, x, w, ma, mb)
			apart := make([]complex128, m)
			loadPairRadix4(apart, f.first, x[:m], x[m/2:3*m/2], w, ma, mb)
			if !slices.EqualFunc(apart, want, same) {
				t.Fatalf("m=%d case %d: the Go loop of the half-overlapping segments differs from that of the segments apart", m, c)
			}
			clear(f.z)
			loadPow2PairHalf(f, x, w, pw, ma, mb)
			// Each instruction set, whichever loadPow2PairHalf picks.
			sse, avx := make([]complex128, m), make([]complex128, m)
			loadPairRadix4HalfF32(sse, f.first, x, pairWindowSSE(w), ma, mb)
			if pairLoadAVX(m) {
				loadPairRadix4HalfF32AVX(avx, f.first, x, pairWindowAVX(w), ma, mb)
			} else if hasAVX {
				t.Fatalf("m=%d: not loaded with AVX", m)
			} else {
				avx = sse
			}
			// float64 samples: AVX where there is, else Go.
			x64 := widen(x)
			f64 := newPow2RFFT(2 * m)
			loadPow2PairHalf(f64, x64, w, pw, ma, mb)
			avx64 := make([]complex128, m)
			if pairLoadAVX(m) {
				loadPairRadix4HalfF64AVX(avx64, f.first, x64, pairWindowAVX(w), ma, mb)
			} else {
				loadPairRadix4Half(avx64, f.first, x64, w, ma, mb)
			}
			for name, got := range map[string][]complex128{"loadPow2PairHalf": f.z, "SSE2": sse, "AVX": avx, "float64": f64.z, "float64 AVX": avx64} {
				for k, v := range got {
					if !same(v, want[k]) {
						t.Fatalf("m=%d case %d, %s: point %d is %v, the Go loop's %v", m, c, name, k, v, want[k])
					}
				}
			}
		}
	}
}

// TestPairPowerAsmEqualsGo: laterStagesPairPower's sum of powers from both
// ends of the spectrum in assembly gives, bit for bit, what the Go loop
// gives, for every length to 70 and 255, on random values with signed
// zeros, infinities and NaN.
func TestPairPowerAsmEqualsGo(t *testing.T) {
	if !haveAsm {
		t.Skip("no assembly on this architecture")
	}
	rng := rand.New(rand.NewPCG(51, 52))
	lengths := append(make([]int, 0, 72), 255)
	for n := range 71 {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		for c, special := range []float64{0, math.Copysign(0, -1), math.Inf(1), math.NaN()} {
			lo, hi := make([]complex128, n), make([]complex128, n)
			d := make([]float64, n)
			for k := range lo {
				lo[k] = complex(rng.NormFloat64(), rng.NormFloat64())
				hi[k] = complex(rng.NormFloat64(), rng.NormFloat64())
				d[k] = rng.Float64()
			}
			if n > 0 {
				lo[rng.IntN(n)] = complex(special, 1)
				hi[rng.IntN(n)] = complex(2, special)
			}
			want := slices.Clone(d)
			pairPowerAddGo(want, lo, hi)
			// pairPowerAddAsm (AVX where there is, then SSE2), and SSE2
			// alone.
			sse := slices.Clone(d)
			dd, ll, hh := pairPowerAddAsm(d, lo, hi)
			pairPowerAddGo(dd, ll, hh)
			e := n &^ 1
			pairPowerAdd(sse[:e], lo[:e], hi[n-e:])
			pairPowerAddGo(sse[e:], lo[e:], hi[:n-e])
			for name, got := range map[string][]float64{"pairPowerAddAsm": d, "SSE2": sse} {
				for k := range got {
					if !sameValue(got[k], want[k]) {
						t.Fatalf("n=%d case %d, %s: d[%d] = %v, the Go loop's %v", n, c, name, k, got[k], want[k])
					}
				}
			}
		}
	}
}
