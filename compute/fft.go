package compute

import (
	"math"
	"math/bits"
	"unsafe"

	"github.com/flightbatch/flightbatch/internal/trig"
)

// Each product that feeds a sum is converted, float64(a*b) (and cmul, abs2
// below), a no-op for the value: the Go spec lets the compiler fuse a*b+c
// into one multiply-add with a single rounding, which it does for GOAMD64=v3
// and above, and an explicit conversion rounds the product first. So the
// results are the same bits whatever GOAMD64 the binary is built for, and
// the same as the assembly's, which rounds every product too.

// cmul is a·(*b) as Go computes a complex product, (ar·br − ai·bi) +
// i·(ar·bi + ai·br), with each product rounded. b is a pointer (to a
// twiddle), and each of its parts is loaded just before its products:
// the butterflies then need fewer registers and register copies (written
// as a·b with conversions, they took up to 4% more instructions).
func cmul(a complex128, b *complex128) complex128 {
	br := real(*b)
	ibr, rbr := float64(imag(a)*br), float64(real(a)*br)
	bi := imag(*b)
	re := rbr - float64(imag(a)*bi)
	im := float64(real(a)*bi) + ibr
	return complex(re, im)
}

// abs2 is |u|² as real(u)² + imag(u)², each square rounded.
func abs2(u complex128) float64 { return float64(real(u)*real(u)) + float64(imag(u)*imag(u)) }

// powerSpectrum computes the one-sided power |X[k]|^2, k = 0..n/2, of the
// discrete Fourier transform X of a real sequence of a fixed length n.
type powerSpectrum interface {
	// power writes (add=false) or adds (add=true) |X[k]|^2 of x into dst;
	// len(x) == n, len(dst) == n/2+1; x is not modified.
	power(dst, x []float64, add bool)
}

// newPowerSpectrum picks the fastest transform available for length n.
func newPowerSpectrum(n int) powerSpectrum {
	switch {
	case n < 8:
		return newNaiveDFT(n)
	case n&(n-1) == 0:
		return newPow2RFFT(n)
	case n%2 == 0:
		if c := newCFFT(n / 2); c != nil {
			return &evenRFFT{c: c, split: newSplit(n), z: make([]complex128, n/2)}
		}
	default:
		if c := newCFFT(n); c != nil {
			return &oddRFFT{c: c, z: make([]complex128, n)}
		}
	}
	return newBluesteinRFFT(n)
}

// pow2RFFT is a real FFT of a power-of-two length n computed through a complex
// FFT of length m = n/2 (even samples as real parts, odd samples as imaginary
// parts): bit-reversed load, iterative radix-4 decimation in time (with a
// first radix-8 stage when log2(m) is odd), then the split that separates the
// spectra of the even and odd samples.
//
// Welch's segments take a faster way to the same bits (loadPow2): the first
// stage's butterflies are computed as the samples are detrended, windowed and
// loaded, so the bit-reversed buffer is written once, a cache line at a time.
type pow2RFFT struct {
	n, m  int
	perm  []int32        // perm[k] = bit reversal of k in log2(m) bits
	odd   bool           // log2(m) is odd: a radix-8 stage first
	radix int            // of the first stage: 8 if odd, else 4
	first []int32        // first[r] = radix · (bit reversal of r in log2(m/radix) bits): where the first stage's butterfly of the pairs r + k·m/radix goes
	tw    [][]complex128 // per later radix-4 stage: w^j, w^2j, w^3j, j < q, w = exp(-2πi/4q)
	twx   [][]float64    // tw laid out for radix4Stage (stageTwiddles) or, if avx, radix4StageAVX (stageTwiddlesAVX); nil: the Go loop
	avx   bool           // twx is laid out for radix4StageAVX
	split []complex128   // see splitPower
	z     []complex128
}

func newPow2RFFT(n int) *pow2RFFT {
	m := n / 2
	logm := bits.TrailingZeros(uint(m))
	f := &pow2RFFT{n: n, m: m, perm: make([]int32, m), odd: logm%2 == 1, z: make([]complex128, m)}
	for k := range f.perm {
		f.perm[k] = int32(bits.Reverse64(uint64(k)) >> (64 - logm))
	}
	f.radix = 4
	if f.odd {
		f.radix = 8
	}
	f.first = make([]int32, m/f.radix)
	lr := logm - bits.TrailingZeros(uint(f.radix))
	for r := range f.first {
		if lr > 0 {
			f.first[r] = int32(f.radix * int(bits.Reverse64(uint64(r))>>(64-lr)))
		}
	}
	for q := f.radix; 4*q <= m; q *= 4 {
		t := make([]complex128, 3*q)
		for j := 0; j < q; j++ {
			for r := 1; r <= 3; r++ {
				s, c := trig.Sincos(-2 * math.Pi * float64(r*j) / float64(4*q))
				t[3*j+r-1] = complex(c, s)
			}
		}
		f.tw = append(f.tw, t)
		if haveAsm && m <= maxStageAsm {
			if hasAVX {
				f.twx, f.avx = append(f.twx, stageTwiddlesAVX(t)), true
			} else {
				f.twx = append(f.twx, stageTwiddles(t))
			}
		}
	}
	f.split = newSplit(n)
	return f
}

func (f *pow2RFFT) power(dst, x []float64, add bool) {
	m := f.m
	z := f.z[:m]
	x = x[:2*m]
	for k, p := range f.perm[:m] {
		z[p] = complex(x[2*k], x[2*k+1])
	}
	f.transform(z)
	splitPower(dst, z, f.split, add)
}

func (f *pow2RFFT) loadBuffer() ([]complex128, []int32) { return f.z[:f.m], f.perm }

func (f *pow2RFFT) transformPower(dst []float64, add bool) {
	z := f.z[:f.m]
	f.transform(z)
	splitPower(dst, z, f.split, add)
}

// laterStagesPower finishes what loadPow2 started: the FFT's stages after
// the first, then the power, written (add=false) or added (add=true) into
// dst.
func (f *pow2RFFT) laterStagesPower(dst []float64, add bool) {
	z := f.z[:f.m]
	f.laterStages(z)
	splitPower(dst, z, f.split, add)
}

// loadPow2 detrends (subtracting mean) and windows segment x (len(x) ==
// f.n) and runs the first stage of f's FFT on it as it is loaded: bit for
// bit what loadSegment followed by the first stage of transform computes.
// laterStagesPower completes the transform.
func loadPow2[T sample](f *pow2RFFT, x []T, w []float64, mean float64) {
	if f.odd {
		loadRadix8(f.z[:f.m], f.first, x, w, mean)
	} else {
		loadRadix4(f.z[:f.m], f.first, x, w, mean)
	}
}

// loadRadix4 is loadPow2 for an even log2(m): the butterfly of the pairs r,
// r+q, r+2q, r+3q (q = m/4) goes to z[first[r]:][:4].
func loadRadix4[T sample](z []complex128, first []int32, x []T, w []float64, mean float64) {
	m := len(z)
	q := m / 4
	x = x[:2*m]
	w = w[:2*m]
	x0, x1, x2, x3 := x[0:2*q], x[2*q:4*q], x[4*q:6*q], x[6*q:8*q]
	w0, w1, w2, w3 := w[0:2*q], w[2*q:4*q], w[4*q:6*q], w[6*q:8*q]
	x1, x2, x3 = x1[:len(x0)], x2[:len(x0)], x3[:len(x0)]
	w0, w1, w2, w3 = w0[:len(x0)], w1[:len(x0)], w2[:len(x0)], w3[:len(x0)]
	first = first[:q]
	for j := 0; j+1 < len(x0); j += 2 {
		y0 := complex(float64((float64(x0[j])-mean)*w0[j]), float64((float64(x0[j+1])-mean)*w0[j+1]))
		y1 := complex(float64((float64(x1[j])-mean)*w1[j]), float64((float64(x1[j+1])-mean)*w1[j+1]))
		y2 := complex(float64((float64(x2[j])-mean)*w2[j]), float64((float64(x2[j+1])-mean)*w2[j+1]))
		y3 := complex(float64((float64(x3[j])-mean)*w3[j]), float64((float64(x3[j+1])-mean)*w3[j+1]))
		s0, s1 := y0+y2, y0-y2
		s2, s3 := y1+y3, y1-y3
		i := int(first[j/2])
		b := z[i : i+4 : i+4]
		b[0] = s0 + s2
		b[2] = s0 - s2
		b[1] = complex(real(s1)+imag(s3), imag(s1)-real(s3))
		b[3] = complex(real(s1)-imag(s3), imag(s1)+real(s3))
	}
}

// loadRadix8 is loadPow2 for an odd log2(m): the butterfly of the pairs
// r + k·o, k < 8 (o = m/8), goes to z[first[r]:][:8].
func loadRadix8[T sample](z []complex128, first []int32, x []T, w []float64, mean float64) {
	const r = 0.70710678118654752440 // 1/√2
	m := len(z)
	o := m / 8
	x = x[:2*m]
	w = w[:2*m]
	n := 2 * o
	x0, x1, x2, x3 := x[0:n], x[n:2*n], x[2*n:3*n], x[3*n:4*n]
	x4, x5, x6, x7 := x[4*n:5*n], x[5*n:6*n], x[6*n:7*n], x[7*n:8*n]
	w0, w1, w2, w3 := w[0:n], w[n:2*n], w[2*n:3*n], w[3*n:4*n]
	w4, w5, w6, w7 := w[4*n:5*n], w[5*n:6*n], w[6*n:7*n], w[7*n:8*n]
	x1, x2, x3, x4, x5, x6, x7 = x1[:len(x0)], x2[:len(x0)], x3[:len(x0)], x4[:len(x0)], x5[:len(x0)], x6[:len(x0)], x7[:len(x0)]
	w0, w1, w2, w3 = w0[:len(x0)], w1[:len(x0)], w2[:len(x0)], w3[:len(x0)]
	w4, w5, w6, w7 = w4[:len(x0)], w5[:len(x0)], w6[:len(x0)], w7[:len(x0)]
	first = first[:o]
	for j := 0; j+1 < len(x0); j += 2 {
		// As in radix8, with b[0..7] = y0, y4, y2, y6, y1, y5, y3, y7.
		y0 := complex(float64((float64(x0[j])-mean)*w0[j]), float64((float64(x0[j+1])-mean)*w0[j+1]))
		y4 := complex(float64((float64(x4[j])-mean)*w4[j]), float64((float64(x4[j+1])-mean)*w4[j+1]))
		a0, a1 := y0+y4, y0-y4
		y2 := complex(float64((float64(x2[j])-mean)*w2[j]), float64((float64(x2[j+1])-mean)*w2[j+1]))
		y6 := complex(float64((float64(x6[j])-mean)*w6[j]), float64((float64(x6[j+1])-mean)*w6[j+1]))
		a2, a3 := y2+y6, y2-y6
		y1 := complex(float64((float64(x1[j])-mean)*w1[j]), float64((float64(x1[j+1])-mean)*w1[j+1]))
		y5 := complex(float64((float64(x5[j])-mean)*w5[j]), float64((float64(x5[j+1])-mean)*w5[j+1]))
		a4, a5 := y1+y5, y1-y5
		y3 := complex(float64((float64(x3[j])-mean)*w3[j]), float64((float64(x3[j+1])-mean)*w3[j+1]))
		y7 := complex(float64((float64(x7[j])-mean)*w7[j]), float64((float64(x7[j+1])-mean)*w7[j+1]))
		a6, a7 := y3+y7, y3-y7
		i := int(first[j/2])
		b := z[i : i+8 : i+8]
		e0, e2 := a0+a2, a0-a2
		e1 := complex(real(a1)+imag(a3), imag(a1)-real(a3)) // a1 - i·a3
		e3 := complex(real(a1)-imag(a3), imag(a1)+real(a3)) // a1 + i·a3
		o0, o2 := a4+a6, a4-a6
		o1 := complex(real(a5)+imag(a7), imag(a5)-real(a7))
		o3 := complex(real(a5)-imag(a7), imag(a5)+real(a7))
		// W8·o1 = (1-i)/√2·o1, W8²·o2 = -i·o2, W8³·o3 = -(1+i)/√2·o3
		t1 := complex(float64(r*(real(o1)+imag(o1))), float64(r*(imag(o1)-real(o1))))
		t2 := complex(imag(o2), -real(o2))
		t3 := complex(float64(r*(imag(o3)-real(o3))), float64(-r*(real(o3)+imag(o3))))
		b[0], b[4] = e0+o0, e0-o0
		b[1], b[5] = e1+t1, e1-t1
		b[2], b[6] = e2+t2, e2-t2
		b[3], b[7] = e3+t3, e3-t3
	}
}

// loadPow2Pair loads two segments a and b of a real signal (len f.m each)
// as one complex sequence, z[j] = (a[j]-ma)·w[j] + i·(b[j]-mb)·w[j], and runs
// the first stage of f's FFT on it, as loadPow2 does for one segment;
// laterStagesPairPower completes the transform. f is the pow2RFFT of length
// 2·len(a): its complex FFT is of length len(a).
func loadPow2Pair[T sample](f *pow2RFFT, a, b []T, w []float64, ma, mb float64) {
	if f.odd {
		loadPairRadix8(f.z[:f.m], f.first, a, b, w, ma, mb)
	} else {
		loadPairRadix4(f.z[:f.m], f.first, a, b, w, ma, mb)
	}
}

// loadPairRadix4 is loadPow2Pair for an even log2(m): the butterfly of the
// points r, r+q, r+2q, r+3q (q = m/4) goes to z[first[r]:][:4].
func loadPairRadix4[T sample](z []complex128, first []int32, a, b []T, w []float64, ma, mb float64) {
	m := len(z)
	q := m / 4
	a, b, w = a[:m], b[:m], w[:m]
	a0, a1, a2, a3 := a[0:q], a[q:2*q], a[2*q:3*q], a[3*q:4*q]
	b0, b1, b2, b3 := b[0:q], b[q:2*q], b[2*q:3*q], b[3*q:4*q]
	w0, w1, w2, w3 := w[0:q], w[q:2*q], w[2*q:3*q], w[3*q:4*q]
	a1, a2, a3 = a1[:len(a0)], a2[:len(a0)], a3[:len(a0)]
	b0, b1, b2, b3 = b0[:len(a0)], b1[:len(a0)], b2[:len(a0)], b3[:len(a0)]
	w0, w1, w2, w3 = w0[:len(a0)], w1[:len(a0)], w2[:len(a0)], w3[:len(a0)]
	first = first[:len(a0)]
	for j, i := range first {
		y0 := complex(float64((float64(a0[j])-ma)*w0[j]), float64((float64(b0[j])-mb)*w0[j]))
		y1 := complex(float64((float64(a1[j])-ma)*w1[j]), float64((float64(b1[j])-mb)*w1[j]))
		y2 := complex(float64((float64(a2[j])-ma)*w2[j]), float64((float64(b2[j])-mb)*w2[j]))
		y3 := complex(float64((float64(a3[j])-ma)*w3[j]), float64((float64(b3[j])-mb)*w3[j]))
		s0, s1 := y0+y2, y0-y2
		s2, s3 := y1+y3, y1-y3
		bl := z[i : i+4 : i+4]
		bl[0] = s0 + s2
		bl[2] = s0 - s2
		bl[1] = complex(real(s1)+imag(s3), imag(s1)-real(s3))
		bl[3] = complex(real(s1)-imag(s3), imag(s1)+real(s3))
	}
}

// loadPairRadix8 is loadPow2Pair for an odd log2(m): the butterfly of the
// points r + k·o, k < 8 (o = m/8), goes to z[first[r]:][:8].
func loadPairRadix8[T sample](z []complex128, first []int32, a, b []T, w []float64, ma, mb float64) {
	const r = 0.70710678118654752440 // 1/√2
	m := len(z)
	o := m / 8
	a, b, w = a[:m], b[:m], w[:m]
	a0, a1, a2, a3, a4, a5, a6, a7 := a[0:o], a[o:2*o], a[2*o:3*o], a[3*o:4*o], a[4*o:5*o], a[5*o:6*o], a[6*o:7*o], a[7*o:8*o]
	b0, b1, b2, b3, b4, b5, b6, b7 := b[0:o], b[o:2*o], b[2*o:3*o], b[3*o:4*o], b[4*o:5*o], b[5*o:6*o], b[6*o:7*o], b[7*o:8*o]
	w0, w1, w2, w3, w4, w5, w6, w7 := w[0:o], w[o:2*o], w[2*o:3*o], w[3*o:4*o], w[4*o:5*o], w[5*o:6*o], w[6*o:7*o], w[7*o:8*o]
	first = first[:o]
	a0, a1, a2, a3, a4, a5, a6, a7 = a0[:len(first)], a1[:len(first)], a2[:len(first)], a3[:len(first)], a4[:len(first)], a5[:len(first)], a6[:len(first)], a7[:len(first)]
	b0, b1, b2, b3, b4, b5, b6, b7 = b0[:len(first)], b1[:len(first)], b2[:len(first)], b3[:len(first)], b4[:len(first)], b5[:len(first)], b6[:len(first)], b7[:len(first)]
	w0, w1, w2, w3, w4, w5, w6, w7 = w0[:len(first)], w1[:len(first)], w2[:len(first)], w3[:len(first)], w4[:len(first)], w5[:len(first)], w6[:len(first)], w7[:len(first)]
	for j, i := range first {
		// y_k, point j + k·o; as in radix8, with b[0..7] = y0, y4, y2, y6,
		// y1, y5, y3, y7.
		y0 := complex(float64((float64(a0[j])-ma)*w0[j]), float64((float64(b0[j])-mb)*w0[j]))
		y4 := complex(float64((float64(a4[j])-ma)*w4[j]), float64((float64(b4[j])-mb)*w4[j]))
		c0, c1 := y0+y4, y0-y4
		y2 := complex(float64((float64(a2[j])-ma)*w2[j]), float64((float64(b2[j])-mb)*w2[j]))
		y6 := complex(float64((float64(a6[j])-ma)*w6[j]), float64((float64(b6[j])-mb)*w6[j]))
		c2, c3 := y2+y6, y2-y6
		y1 := complex(float64((float64(a1[j])-ma)*w1[j]), float64((float64(b1[j])-mb)*w1[j]))
		y5 := complex(float64((float64(a5[j])-ma)*w5[j]), float64((float64(b5[j])-mb)*w5[j]))
		c4, c5 := y1+y5, y1-y5
		y3 := complex(float64((float64(a3[j])-ma)*w3[j]), float64((float64(b3[j])-mb)*w3[j]))
		y7 := complex(float64((float64(a7[j])-ma)*w7[j]), float64((float64(b7[j])-mb)*w7[j]))
		c6, c7 := y3+y7, y3-y7
		bl := z[i : i+8 : i+8]
		e0, e2 := c0+c2, c0-c2
		e1 := complex(real(c1)+imag(c3), imag(c1)-real(c3)) // c1 - i·c3
		e3 := complex(real(c1)-imag(c3), imag(c1)+real(c3)) // c1 + i·c3
		o0, o2 := c4+c6, c4-c6
		o1 := complex(real(c5)+imag(c7), imag(c5)-real(c7))
		o3 := complex(real(c5)-imag(c7), imag(c5)+real(c7))
		t1 := complex(float64(r*(real(o1)+imag(o1))), float64(r*(imag(o1)-real(o1))))
		t2 := complex(imag(o2), -real(o2))
		t3 := complex(float64(r*(imag(o3)-real(o3))), float64(-r*(real(o3)+imag(o3))))
		bl[0], bl[4] = e0+o0, e0-o0
		bl[1], bl[5] = e1+t1, e1-t1
		bl[2], bl[6] = e2+t2, e2-t2
		bl[3], bl[7] = e3+t3, e3-t3
	}
}

// loadPow2PairHalf is loadPow2Pair of the segments a = x[:m] and b =
// x[m/2:3m/2] (len(x) >= 3m/2, m = f.m): each sample shared by the two is
// read once.
// pw, when not nil, is w laid out by pairWindow: float32 samples (and
// float64 ones with AVX) are then loaded in assembly, bit for bit as
// loadPairRadix8Half or loadPairRadix4Half loads them.
func loadPow2PairHalf[T sample](f *pow2RFFT, x []T, w, pw []float64, ma, mb float64) {
	m := f.m
	if pw != nil {
		avx := pairLoadAVX(m)
		if x32, ok := any(x).([]float32); ok {
			checkPairLoad(f, len(x32), len(pw))
			switch {
			case f.odd && avx:
				loadPairRadix8HalfF32AVX(f.z[:m], f.first, x32, pw, ma, mb)
			case f.odd:
				loadPairRadix8HalfF32(f.z[:m], f.first, x32, pw, ma, mb)
			case avx:
				loadPairRadix4HalfF32AVX(f.z[:m], f.first, x32, pw, ma, mb)
			default:
				loadPairRadix4HalfF32(f.z[:m], f.first, x32, pw, ma, mb)
			}
			return
		}
		if x64, ok := any(x).([]float64); ok && avx {
			checkPairLoad(f, len(x64), len(pw))
			if f.odd {
				loadPairRadix8HalfF64AVX(f.z[:m], f.first, x64, pw, ma, mb)
			} else {
				loadPairRadix4HalfF64AVX(f.z[:m], f.first, x64, pw, ma, mb)
			}
			return
		}
	}
	if f.odd {
		loadPairRadix8Half(f.z[:m], f.first, x, w, ma, mb)
	} else {
		loadPairRadix4Half(f.z[:m], f.first, x, w, ma, mb)
	}
}

// checkPairLoad panics unless the assembly loads of loadPow2PairHalf stay
// within their slices: nx samples, a laid-out window of nw values and
// f.first of one entry per first-stage butterfly.
func checkPairLoad(f *pow2RFFT, nx, nw int) {
	m := f.m
	if nx < 3*m/2 || nw < 2*m || len(f.first) < m/pairRadix(m) || m%8 != 0 {
		panic("compute: paired load of mismatched lengths")
	}
}

// pairRadix is the radix of the first stage of the complex FFT of length
// m (a power of two): 8 for an odd log2(m), else 4.
func pairRadix(m int) int {
	if bits.TrailingZeros(uint(m))%2 == 1 {
		return 8
	}
	return 4
}

// pairLoadAVX reports whether loadPow2PairHalf loads segments of length m
// with AVX: two points j at a time, so m/pairRadix(m) must be even.
func pairLoadAVX(m int) bool { return hasAVX && m/pairRadix(m)%2 == 0 }

// pairWindow lays out window w (len m, a power of two, at least 8) for
// loadPow2PairHalf's assembly: pairWindowAVX if pairLoadAVX(m), else
// pairWindowSSE.
func pairWindow(w []float64) []float64 {
	if pairLoadAVX(len(w)) {
		return pairWindowAVX(w)
	}
	return pairWindowSSE(w)
}

// pairWindowSSE lays out window w (len m, a power of two, at least 8) for
// loadPairRadix8HalfF32 or loadPairRadix4HalfF32 (r = pairRadix(m)): the
// weights of the points j + k·m/r, k < r, one after the other for each j,
// each twice, 16-byte aligned.
func pairWindowSSE(w []float64) []float64 {
	m := len(w)
	r := pairRadix(m)
	o := m / r
	b := alignedFloat64s(2*m, 16)
	for j := 0; j < o; j++ {
		for k := 0; k < r; k++ {
			b[2*r*j+2*k], b[2*r*j+2*k+1] = w[k*o+j], w[k*o+j]
		}
	}
	return b
}

// pairWindowAVX lays out window w (len m, m/pairRadix(m) even) for the
// AVX loads (r = pairRadix(m)): for each pair j, j+1 (j even), for k < r,
// the weight of the point j + k·m/r twice, then that of j+1 + k·m/r twice;
// 32-byte aligned.
func pairWindowAVX(w []float64) []float64 {
	m := len(w)
	r := pairRadix(m)
	o := m / r
	b := alignedFloat64s(2*m, 32)
	for j := 0; j+1 < o; j += 2 {
		for k := 0; k < r; k++ {
			u, v := w[k*o+j], w[k*o+j+1]
			b[2*r*j+4*k], b[2*r*j+4*k+1], b[2*r*j+4*k+2], b[2*r*j+4*k+3] = u, u, v, v
		}
	}
	return b
}

// loadPairRadix4Half is loadPairRadix4 for two segments half a segment
// apart, a = x[:m] and b = x[m/2:3m/2]: each sample shared by the two is
// read once.
func loadPairRadix4Half[T sample](z []complex128, first []int32, x []T, w []float64, ma, mb float64) {
	m := len(z)
	q := m / 4
	x, w = x[:6*q], w[:m]
	first = first[:q]
	n := len(first)
	x0, x1, x2, x3, x4, x5 := x[0:q][:n], x[q : 2*q][:n], x[2*q : 3*q][:n], x[3*q : 4*q][:n], x[4*q : 5*q][:n], x[5*q : 6*q][:n]
	w0, w1, w2, w3 := w[0:q][:n], w[q : 2*q][:n], w[2*q : 3*q][:n], w[3*q : 4*q][:n]
	for j, i := range first {
		// a's block k is x's block k, b's is x's block k+2.
		v2, v3 := float64(x2[j]), float64(x3[j])
		y0 := complex(float64((float64(x0[j])-ma)*w0[j]), float64((v2-mb)*w0[j]))
		y1 := complex(float64((float64(x1[j])-ma)*w1[j]), float64((v3-mb)*w1[j]))
		y2 := complex(float64((v2-ma)*w2[j]), float64((float64(x4[j])-mb)*w2[j]))
		y3 := complex(float64((v3-ma)*w3[j]), float64((float64(x5[j])-mb)*w3[j]))
		s0, s1 := y0+y2, y0-y2
		s2, s3 := y1+y3, y1-y3
		bl := z[i : i+4 : i+4]
		bl[0] = s0 + s2
		bl[2] = s0 - s2
		bl[1] = complex(real(s1)+imag(s3), imag(s1)-real(s3))
		bl[3] = complex(real(s1)-imag(s3), imag(s1)+real(s3))
	}
}

// loadPairRadix8Half is loadPairRadix8 for two segments half a segment
// apart, a = x[:m] and b = x[m/2:3m/2]: each sample shared by the two is
// read once.
func loadPairRadix8Half[T sample](z []complex128, first []int32, x []T, w []float64, ma, mb float64) {
	const r = 0.70710678118654752440 // 1/√2
	m := len(z)
	o := m / 8
	x, w = x[:12*o], w[:m]
	first = first[:o]
	n := len(first)
	x0, x1, x2, x3, x4, x5 := x[0:o][:n], x[o : 2*o][:n], x[2*o : 3*o][:n], x[3*o : 4*o][:n], x[4*o : 5*o][:n], x[5*o : 6*o][:n]
	x6, x7, x8, x9, x10, x11 := x[6*o : 7*o][:n], x[7*o : 8*o][:n], x[8*o : 9*o][:n], x[9*o : 10*o][:n], x[10*o : 11*o][:n], x[11*o : 12*o][:n]
	w0, w1, w2, w3, w4, w5, w6, w7 := w[0:o][:n], w[o : 2*o][:n], w[2*o : 3*o][:n], w[3*o : 4*o][:n], w[4*o : 5*o][:n], w[5*o : 6*o][:n], w[6*o : 7*o][:n], w[7*o : 8*o][:n]
	for j, i := range first {
		// a's block k is x's block k, b's is x's block k+4.
		v4, v5, v6, v7 := float64(x4[j]), float64(x5[j]), float64(x6[j]), float64(x7[j])
		y0 := complex(float64((float64(x0[j])-ma)*w0[j]), float64((v4-mb)*w0[j]))
		y4 := complex(float64((v4-ma)*w4[j]), float64((float64(x8[j])-mb)*w4[j]))
		c0, c1 := y0+y4, y0-y4
		y2 := complex(float64((float64(x2[j])-ma)*w2[j]), float64((v6-mb)*w2[j]))
		y6 := complex(float64((v6-ma)*w6[j]), float64((float64(x10[j])-mb)*w6[j]))
		c2, c3 := y2+y6, y2-y6
		y1 := complex(float64((float64(x1[j])-ma)*w1[j]), float64((v5-mb)*w1[j]))
		y5 := complex(float64((v5-ma)*w5[j]), float64((float64(x9[j])-mb)*w5[j]))
		c4, c5 := y1+y5, y1-y5
		y3 := complex(float64((float64(x3[j])-ma)*w3[j]), float64((v7-mb)*w3[j]))
		y7 := complex(float64((v7-ma)*w7[j]), float64((float64(x11[j])-mb)*w7[j]))
		c6, c7 := y3+y7, y3-y7
		bl := z[i : i+8 : i+8]
		e0, e2 := c0+c2, c0-c2
		e1 := complex(real(c1)+imag(c3), imag(c1)-real(c3)) // c1 - i·c3
		e3 := complex(real(c1)-imag(c3), imag(c1)+real(c3)) // c1 + i·c3
		o0, o2 := c4+c6, c4-c6
		o1 := complex(real(c5)+imag(c7), imag(c5)-real(c7))
		o3 := complex(real(c5)-imag(c7), imag(c5)+real(c7))
		t1 := complex(float64(r*(real(o1)+imag(o1))), float64(r*(imag(o1)-real(o1))))
		t2 := complex(imag(o2), -real(o2))
		t3 := complex(float64(r*(imag(o3)-real(o3))), float64(-r*(real(o3)+imag(o3))))
		bl[0], bl[4] = e0+o0, e0-o0
		bl[1], bl[5] = e1+t1, e1-t1
		bl[2], bl[6] = e2+t2, e2-t2
		bl[3], bl[7] = e3+t3, e3-t3
	}
}

// laterStagesPairPower finishes what loadPow2Pair started and adds the sum
// of the two segments' powers, times 2, into dst (len(z)/2+1 values): with
// Z the FFT of z = a + i·b, A[k] = (Z[k] + conj Z[-k])/2 and B[k] =
// (Z[k] - conj Z[-k])/2i, so |A[k]|² + |B[k]|² = (|Z[k]|² + |Z[-k]|²)/2,
// without the split's twiddles.
func (f *pow2RFFT) laterStagesPairPower(dst []float64) {
	z := f.z[:f.m]
	f.laterStages(z)
	n := len(z)
	h := n / 2
	dst = dst[:h+1]
	z0, zh := z[0], z[h]
	dst[0] += 2 * abs2(z0)
	dst[h] += 2 * abs2(zh)
	lo, hi := z[1:h], z[h+1:n]
	d := dst[1:h]
	if haveAsm {
		d, lo, hi = pairPowerAddAsm(d, lo, hi)
	}
	pairPowerAddGo(d, lo, hi)
}

// pairPowerAddAsm runs pairPowerAddGo's loop in assembly, from both ends,
// for as many k as it takes: four at a time with AVX, then two at a time. It
// returns what is left, for pairPowerAddGo.
func pairPowerAddAsm(d []float64, lo, hi []complex128) ([]float64, []complex128, []complex128) {
	hi, d = hi[:len(lo)], d[:len(lo)]
	if hasAVX {
		e := len(lo) &^ 3
		pairPowerAddAVX(d[:e], lo[:e], hi[len(hi)-e:])
		d, lo, hi = d[e:], lo[e:], hi[:len(hi)-e]
	}
	e := len(lo) &^ 1
	pairPowerAdd(d[:e], lo[:e], hi[len(hi)-e:])
	return d[e:], lo[e:], hi[:len(hi)-e]
}

// pairPowerAddGo adds |lo[k]|² + |hi[len(lo)-1-k]|² into d[k], k <
// len(lo) (len(d) and len(hi) the same).
func pairPowerAddGo(d []float64, lo, hi []complex128) {
	hi = hi[:len(lo)]
	d = d[:len(lo)]
	last := len(lo) - 1
	for k, u := range lo {
		v := hi[last-k]
		d[k] += abs2(u) + abs2(v)
	}
}

// segmentPowerer is implemented by transforms that can detrend and window a
// segment while loading it (loadSegment), saving a pass over the data.
type segmentPowerer interface {
	// loadBuffer is the transform's input and its load order, for
	// loadSegment.
	loadBuffer() (z []complex128, perm []int32)
	// transformPower writes (add=false) or adds (add=true) the power of
	// the loaded segment into dst.
	transformPower(dst []float64, add bool)
}

// loadSegment fills z[perm[k]] with the detrended, windowed sample pair
// (2k, 2k+1) as one complex number: the load of a real FFT through a
// half-length complex one. The arithmetic is prepare's, bit for bit; float32
// samples are widened here, as they are loaded.
func loadSegment[T sample](z []complex128, perm []int32, x []T, w []float64, mean, slope float64, tc []float64) {
	m := len(z)
	perm = perm[:m]
	x = x[:2*m]
	w = w[:2*m]
	if tc == nil {
		for k, p := range perm {
			xx := x[2*k : 2*k+2 : 2*k+2]
			ww := w[2*k : 2*k+2 : 2*k+2]
			z[p] = complex(float64((float64(xx[0])-mean)*ww[0]), float64((float64(xx[1])-mean)*ww[1]))
		}
		return
	}
	tc = tc[:2*m]
	for k, p := range perm {
		xx := x[2*k : 2*k+2 : 2*k+2]
		ww := w[2*k : 2*k+2 : 2*k+2]
		tt := tc[2*k : 2*k+2 : 2*k+2]
		z[p] = complex(float64((float64(xx[0])-mean-float64(slope*tt[0]))*ww[0]), float64((float64(xx[1])-mean-float64(slope*tt[1]))*ww[1]))
	}
}

// transform runs the in-place complex FFT of z, whose input is in
// bit-reversed order; the output is in natural order.
func (f *pow2RFFT) transform(z []complex128) {
	if f.odd {
		radix8(z)
	} else {
		radix4(z)
	}
	f.laterStages(z)
}

// radix4 runs the first two levels of the FFT: a 4-point DFT of each
// consecutive group of 4 bit-reversed samples.
func radix4(z []complex128) {
	for i := 0; i+3 < len(z); i += 4 {
		b := z[i : i+4 : i+4]
		y0, y2, y1, y3 := b[0], b[1], b[2], b[3]
		s0, s1 := y0+y2, y0-y2
		s2, s3 := y1+y3, y1-y3
		b[0] = s0 + s2
		b[2] = s0 - s2
		b[1] = complex(real(s1)+imag(s3), imag(s1)-real(s3))
		b[3] = complex(real(s1)-imag(s3), imag(s1)+real(s3))
	}
}

// maxStageAsm bounds the complex FFT length whose stages run in assembly:
// its twiddle tables take 32 bytes per point more.
const maxStageAsm = 1 << 14

// stageTwiddles lays out a stage's twiddles t (w^j, w^2j, w^3j per j) for
// radix4Stage: per j, for each of the three, (re, re) and (-im, im), so that
// z·w = (re z, im z)·(re w, re w) + (im z, re z)·(-im w, im w) in two lanes,
// the products and sums of Go's complex multiplication. The result is
// 16-byte aligned.
func stageTwiddles(t []complex128) []float64 {
	b := alignedFloat64s(4*len(t), 16)
	for i, w := range t {
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = real(w), real(w), -imag(w), imag(w)
	}
	return b
}

// stageTwiddlesAVX lays out a stage's twiddles t (w^j, w^2j, w^3j per j,
// an even number of j) for radix4StageAVX: per pair j, j+1, for each of the
// three, (re, re) and (-im, im) of both, 32-byte aligned.
func stageTwiddlesAVX(t []complex128) []float64 {
	b := alignedFloat64s(4*len(t), 32)
	for j := 0; 3*j+5 < len(t); j += 2 {
		for r := range 3 {
			u, v := t[3*j+r], t[3*(j+1)+r]
			o := b[12*j+8*r : 12*j+8*r+8 : 12*j+8*r+8]
			o[0], o[1], o[2], o[3] = real(u), real(u), real(v), real(v)
			o[4], o[5], o[6], o[7] = -imag(u), imag(u), -imag(v), imag(v)
		}
	}
	return b
}

// alignedFloat64s returns n zeros whose first is align-byte aligned (align
// a power of two, at least 8).
func alignedFloat64s(n, align int) []float64 {
	b := make([]float64, n+align/8-1)
	off := 0
	for uintptr(unsafe.Pointer(&b[off]))%uintptr(align) != 0 {
		off++
	}
	return b[off : off+n : off+n]
}

// laterStages runs the radix-4 stages after the first (radix-4 or radix-8)
// one: in assembly where there is, else laterStagesGo.
func (f *pow2RFFT) laterStages(z []complex128) {
	if f.twx == nil {
		f.laterStagesGo(z)
		return
	}
	q := f.radix
	for _, t := range f.twx {
		if len(z)%(4*q) != 0 || len(t) < 12*q {
			panic("compute: radix4Stage of mismatched lengths")
		}
		if f.avx {
			radix4StageAVX(z, t, q)
		} else {
			radix4Stage(z, t, q)
		}
		q *= 4
	}
}

// laterStagesGo is laterStages in Go.
func (f *pow2RFFT) laterStagesGo(z []complex128) {
	m := len(z)
	q := f.radix
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
			// j = 0: the twiddles are 1 (exactly: (1, -0)), and
			// multiplying by them changes nothing but the sign of a zero.
			{
				y0, y2, y1, y3 := z0[0], z1[0], z2[0], z3[0]
				s0, s1 := y0+y2, y0-y2
				s2, s3 := y1+y3, y1-y3
				z0[0] = s0 + s2
				z2[0] = s0 - s2
				z1[0] = complex(real(s1)+imag(s3), imag(s1)-real(s3))
				z3[0] = complex(real(s1)-imag(s3), imag(s1)+real(s3))
			}
			for j := 1; j < len(z0); j++ {
				w := tw[3*j : 3*j+3 : 3*j+3]
				y0 := z0[j]
				y2 := cmul(z1[j], &w[1])
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

// naiveDFT is the O(n²) DFT, used for tiny lengths.
type naiveDFT struct {
	n        int
	cos, sin []float64
}

func newNaiveDFT(n int) *naiveDFT {
	d := &naiveDFT{n: n, cos: make([]float64, n), sin: make([]float64, n)}
	for j := range d.cos {
		d.sin[j], d.cos[j] = trig.Sincos(-2 * math.Pi * float64(j) / float64(n))
	}
	return d
}

func (d *naiveDFT) power(dst, x []float64, add bool) {
	n := d.n
	for k := 0; k <= n/2; k++ {
		var re, im float64
		for j := 0; j < n; j++ {
			r := (k * j) % n
			re += float64(x[j] * d.cos[r])
			im += float64(x[j] * d.sin[r])
		}
		p := float64(re*re) + float64(im*im)
		if add {
			dst[k] += p
		} else {
			dst[k] = p
		}
	}
}

// radix8 runs the first three levels of the FFT: an 8-point DFT of each
// consecutive group of 8 bit-reversed samples. Its last two levels (from e0
// on) stand again, written out, in loadRadix8, loadPairRadix8 and
// loadPairRadix8Half: as a function of the eight first-level values they
// would not be inlined (cost 194 against Go's budget of 80), and the call
// would fall in the kernel's innermost loop.
func radix8(z []complex128) {
	const r = 0.70710678118654752440 // 1/√2
	for i := 0; i+7 < len(z); i += 8 {
		b := z[i : i+8 : i+8]
		// b holds x0, x4, x2, x6, x1, x5, x3, x7.
		a0, a1 := b[0]+b[1], b[0]-b[1]
		a2, a3 := b[2]+b[3], b[2]-b[3]
		a4, a5 := b[4]+b[5], b[4]-b[5]
		a6, a7 := b[6]+b[7], b[6]-b[7]
		e0, e2 := a0+a2, a0-a2
		e1 := complex(real(a1)+imag(a3), imag(a1)-real(a3)) // a1 - i·a3
		e3 := complex(real(a1)-imag(a3), imag(a1)+real(a3)) // a1 + i·a3
		o0, o2 := a4+a6, a4-a6
		o1 := complex(real(a5)+imag(a7), imag(a5)-real(a7))
		o3 := complex(real(a5)-imag(a7), imag(a5)+real(a7))
		// W8·o1 = (1-i)/√2·o1, W8²·o2 = -i·o2, W8³·o3 = -(1+i)/√2·o3
		t1 := complex(float64(r*(real(o1)+imag(o1))), float64(r*(imag(o1)-real(o1))))
		t2 := complex(imag(o2), -real(o2))
		t3 := complex(float64(r*(imag(o3)-real(o3))), float64(-r*(real(o3)+imag(o3))))
		b[0], b[4] = e0+o0, e0-o0
		b[1], b[5] = e1+t1, e1-t1
		b[2], b[6] = e2+t2, e2-t2
		b[3], b[7] = e3+t3, e3-t3
	}
}
