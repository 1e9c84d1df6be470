package compute

import (
	"math"

	"github.com/flightbatch/flightbatch/internal/trig"
)

// As in fft.go, each product that feeds a sum is rounded on its own (a
// conversion, cmul or abs2) so that no GOAMD64 level fuses it.

// cfft is an in-place mixed-radix complex FFT (decimation in time) of length
// m = product of its stages' radices: 4, 2, 3, 5 have hand-written
// butterflies, other primes a direct O(r²) one. The input is loaded in
// digit-reversed order through perm; the output is in natural order.
type cfft struct {
	m      int
	perm   []int32 // perm[j] is where input sample j goes
	stages []fftStage
}

// fftStage combines r consecutive blocks of length l (DFTs of the samples
// with residues 0..r-1 modulo r) into DFTs of length r·l.
type fftStage struct {
	r, l int
	tw   []complex128 // tw[k*(r-1)+q-1] = exp(-2πi·q·k/(r·l)), k < l, 1 <= q < r; nil when l == 1
	rot  []complex128 // generic radix only: rot[i] = exp(-2πi·i/r)
}

// maxGenericRadix bounds the prime factors cfft accepts (the generic
// butterfly is O(r²)).
const maxGenericRadix = 31

// factorize splits m into the radices of cfft's stages (4s first, then 2,
// 3, 5, then other primes), or returns nil if m has a prime factor larger
// than maxGenericRadix.
func factorize(m int) []int {
	var f []int
	for m%4 == 0 {
		f = append(f, 4)
		m /= 4
	}
	for _, p := range []int{2, 3, 5} {
		for m%p == 0 {
			f = append(f, p)
			m /= p
		}
	}
	for p := 7; m > 1; p += 2 {
		if p > maxGenericRadix {
			return nil
		}
		for m%p == 0 {
			f = append(f, p)
			m /= p
		}
	}
	return f
}

// newCFFT returns the FFT of length m, or nil if m does not factor into
// supported radices.
func newCFFT(m int) *cfft {
	radices := factorize(m)
	if radices == nil {
		return nil
	}
	c := &cfft{m: m, perm: make([]int32, m)}
	// Stage i combines blocks of length l = product of the earlier radices.
	l := 1
	for _, r := range radices {
		st := fftStage{r: r, l: l}
		if l > 1 {
			st.tw = make([]complex128, l*(r-1))
			for k := 0; k < l; k++ {
				for q := 1; q < r; q++ {
					s, co := trig.Sincos(-2 * math.Pi * float64((q*k)%(r*l)) / float64(r*l))
					st.tw[k*(r-1)+q-1] = complex(co, s)
				}
			}
		}
		if r > 5 {
			st.rot = make([]complex128, r)
			for i := range st.rot {
				s, co := trig.Sincos(-2 * math.Pi * float64(i) / float64(r))
				st.rot[i] = complex(co, s)
			}
		}
		c.stages = append(c.stages, st)
		l *= r
	}
	// The last stage splits the input by residue modulo its radix into
	// consecutive blocks, recursively.
	for j := range c.perm {
		jj, pos, size := j, 0, m
		for i := len(radices) - 1; i >= 0; i-- {
			r := radices[i]
			size /= r
			pos += (jj % r) * size
			jj /= r
		}
		c.perm[j] = int32(pos)
	}
	return c
}

// transform runs the FFT in place on z, loaded in digit-reversed order.
func (c *cfft) transform(z []complex128) {
	z = z[:c.m]
	for i := range c.stages {
		st := &c.stages[i]
		switch st.r {
		case 4:
			stage4(z, st.l, st.tw)
		case 2:
			stage2(z, st.l, st.tw)
		case 3:
			stage3(z, st.l, st.tw)
		case 5:
			stage5(z, st.l, st.tw)
		default:
			stageGeneric(z, st)
		}
	}
}

func stage2(z []complex128, l int, tw []complex128) {
	for base := 0; base < len(z); base += 2 * l {
		b := z[base : base+2*l : base+2*l]
		b0, b1 := b[:l:l], b[l:2*l:2*l]
		for k := range b0 {
			t1 := b1[k]
			if tw != nil {
				t1 = cmul(t1, &tw[k])
			}
			t0 := b0[k]
			b0[k], b1[k] = t0+t1, t0-t1
		}
	}
}

func stage4(z []complex128, l int, tw []complex128) {
	for base := 0; base < len(z); base += 4 * l {
		b := z[base : base+4*l : base+4*l]
		b0, b1, b2, b3 := b[:l:l], b[l:2*l:2*l], b[2*l:3*l:3*l], b[3*l:4*l:4*l]
		for k := range b0 {
			t1, t2, t3 := b1[k], b2[k], b3[k]
			if tw != nil {
				w := tw[3*k : 3*k+3 : 3*k+3]
				t1, t2, t3 = cmul(t1, &w[0]), cmul(t2, &w[1]), cmul(t3, &w[2])
			}
			t0 := b0[k]
			s0, s1 := t0+t2, t0-t2
			s2, s3 := t1+t3, t1-t3
			b0[k] = s0 + s2
			b2[k] = s0 - s2
			b1[k] = complex(real(s1)+imag(s3), imag(s1)-real(s3)) // s1 - i·s3
			b3[k] = complex(real(s1)-imag(s3), imag(s1)+real(s3)) // s1 + i·s3
		}
	}
}

func stage3(z []complex128, l int, tw []complex128) {
	const h = 0.86602540378443864676 // sin(2π/3)
	for base := 0; base < len(z); base += 3 * l {
		b := z[base : base+3*l : base+3*l]
		b0, b1, b2 := b[:l:l], b[l:2*l:2*l], b[2*l:3*l:3*l]
		for k := range b0 {
			t1, t2 := b1[k], b2[k]
			if tw != nil {
				w := tw[2*k : 2*k+2 : 2*k+2]
				t1, t2 = cmul(t1, &w[0]), cmul(t2, &w[1])
			}
			t0 := b0[k]
			s, d := t1+t2, t1-t2
			// 0.5*s as Go computes a complex product: (0.5·re − 0·im, 0.5·im + 0·re).
			hs := complex(float64(0.5*real(s))-float64(0*imag(s)), float64(0.5*imag(s))+float64(0*real(s)))
			m := t0 - hs
			// ∓i·h·d
			rr, ri := float64(h*imag(d)), float64(-h*real(d))
			b0[k] = t0 + s
			b1[k] = complex(real(m)+rr, imag(m)+ri)
			b2[k] = complex(real(m)-rr, imag(m)-ri)
		}
	}
}

func stage5(z []complex128, l int, tw []complex128) {
	const (
		c1 = 0.30901699437494742410  // cos(2π/5)
		c2 = -0.80901699437494742410 // cos(4π/5)
		s1 = 0.95105651629515357212  // sin(2π/5)
		s2 = 0.58778525229247312917  // sin(4π/5)
	)
	for base := 0; base < len(z); base += 5 * l {
		b := z[base : base+5*l : base+5*l]
		b0, b1, b2, b3, b4 := b[:l:l], b[l:2*l:2*l], b[2*l:3*l:3*l], b[3*l:4*l:4*l], b[4*l:5*l:5*l]
		for k := range b0 {
			// t0 is loaded after the twiddle products: fewer values held
			// in registers across them.
			t1, t2, t3, t4 := b1[k], b2[k], b3[k], b4[k]
			if tw != nil {
				w := tw[4*k : 4*k+4 : 4*k+4]
				t1, t2, t3, t4 = cmul(t1, &w[0]), cmul(t2, &w[1]), cmul(t3, &w[2]), cmul(t4, &w[3])
			}
			t0 := b0[k]
			a1, d1 := t1+t4, t1-t4
			a2, d2 := t2+t3, t2-t3
			m1 := complex(real(t0)+float64(c1*real(a1))+float64(c2*real(a2)), imag(t0)+float64(c1*imag(a1))+float64(c2*imag(a2)))
			m2 := complex(real(t0)+float64(c2*real(a1))+float64(c1*real(a2)), imag(t0)+float64(c2*imag(a1))+float64(c1*imag(a2)))
			// n1 = s1·d1 + s2·d2, n2 = s2·d1 - s1·d2; out = m ∓ i·n
			n1r, n1i := float64(s1*real(d1))+float64(s2*real(d2)), float64(s1*imag(d1))+float64(s2*imag(d2))
			n2r, n2i := float64(s2*real(d1))-float64(s1*real(d2)), float64(s2*imag(d1))-float64(s1*imag(d2))
			b0[k] = t0 + a1 + a2
			b1[k] = complex(real(m1)+n1i, imag(m1)-n1r)
			b4[k] = complex(real(m1)-n1i, imag(m1)+n1r)
			b2[k] = complex(real(m2)+n2i, imag(m2)-n2r)
			b3[k] = complex(real(m2)-n2i, imag(m2)+n2r)
		}
	}
}

func stageGeneric(z []complex128, st *fftStage) {
	r, l := st.r, st.l
	var buf [maxGenericRadix]complex128
	t := buf[:r]
	for base := 0; base < len(z); base += r * l {
		for k := 0; k < l; k++ {
			for q := 0; q < r; q++ {
				v := z[base+q*l+k]
				if q > 0 && st.tw != nil {
					v = cmul(v, &st.tw[k*(r-1)+q-1])
				}
				t[q] = v
			}
			for q := 0; q < r; q++ {
				var s complex128
				for i, v := range t {
					s += cmul(v, &st.rot[(i*q)%r])
				}
				z[base+q*l+k] = s
			}
		}
	}
}

// splitPower turns Z, the length-m complex FFT of z[j] = x[2j] + i·x[2j+1],
// into the power |X[k]|², k = 0..m, of the length-2m real FFT X of x, writing
// or adding it into dst. split[k] = -i/2·exp(-2πik/2m) for k < (m+1)/2.
func splitPower(dst []float64, z, split []complex128, add bool) {
	m := len(z)
	dst = dst[:m+1]
	z0 := z[0]
	p0 := float64((real(z0) + imag(z0)) * (real(z0) + imag(z0)))
	pm := float64((real(z0) - imag(z0)) * (real(z0) - imag(z0)))
	if add {
		dst[0] += p0
		dst[m] += pm
	} else {
		dst[0] = p0
		dst[m] = pm
	}
	h := (m + 1) / 2 // pairs k, m-k for 1 <= k < h
	if m%2 == 0 {
		zh := z[m/2]
		ph := abs2(zh)
		if add {
			dst[m/2] += ph
		} else {
			dst[m/2] = ph
		}
	}
	split = split[:h]
	for k := 1; k < h; k++ {
		a := z[k]
		b := z[m-k]
		// e = (a + conj b)/2, d = a - conj b; X[k] = e + c·d, X[m-k] = conj(e - c·d)
		er := float64(0.5 * (real(a) + real(b)))
		ei := float64(0.5 * (imag(a) - imag(b)))
		dr := real(a) - real(b)
		di := imag(a) + imag(b)
		c := split[k]
		tr := float64(real(c)*dr) - float64(imag(c)*di)
		ti := float64(real(c)*di) + float64(imag(c)*dr)
		xr, xi := er+tr, ei+ti
		yr, yi := er-tr, ei-ti
		if add {
			dst[k] += float64(xr*xr) + float64(xi*xi)
			dst[m-k] += float64(yr*yr) + float64(yi*yi)
		} else {
			dst[k] = float64(xr*xr) + float64(xi*xi)
			dst[m-k] = float64(yr*yr) + float64(yi*yi)
		}
	}
}

func newSplit(n int) []complex128 {
	m := n / 2
	split := make([]complex128, (m+1)/2)
	for k := range split {
		s, c := trig.Sincos(-2 * math.Pi * float64(k) / float64(n))
		split[k] = complex(0.5*s, -0.5*c) // -i/2 · (c + i s)
	}
	return split
}

// evenRFFT is the real FFT of an even length n through the mixed-radix
// complex FFT of length n/2.
type evenRFFT struct {
	c     *cfft
	split []complex128
	z     []complex128
}

func (f *evenRFFT) power(dst, x []float64, add bool) {
	m := f.c.m
	z := f.z[:m]
	x = x[:2*m]
	for k, p := range f.c.perm[:m] {
		z[p] = complex(x[2*k], x[2*k+1])
	}
	f.c.transform(z)
	splitPower(dst, z, f.split, add)
}

func (f *evenRFFT) loadBuffer() ([]complex128, []int32) { return f.z[:f.c.m], f.c.perm }

func (f *evenRFFT) transformPower(dst []float64, add bool) {
	z := f.z[:f.c.m]
	f.c.transform(z)
	splitPower(dst, z, f.split, add)
}

// oddRFFT is the real FFT of an odd length n through the mixed-radix
// complex FFT of length n with zero imaginary parts.
type oddRFFT struct {
	c *cfft
	z []complex128
}

func (f *oddRFFT) power(dst, x []float64, add bool) {
	n := f.c.m
	z := f.z[:n]
	x = x[:n]
	for j, p := range f.c.perm[:n] {
		z[p] = complex(x[j], 0)
	}
	f.c.transform(z)
	dst = dst[:n/2+1]
	for k := range dst {
		v := z[k]
		p := abs2(v)
		if add {
			dst[k] += p
		} else {
			dst[k] = p
		}
	}
}

// bluesteinRFFT is the DFT of a real sequence of any length n by Bluestein's
// algorithm: the DFT as a convolution with a chirp, computed with power-of-two
// FFTs of length mm >= 2n-1. It serves lengths with a prime factor too large
// for cfft, in O(n log n) instead of gonum's O(n·p).
type bluesteinRFFT struct {
	n     int
	c     *cfft        // length mm, a power of two
	chirp []complex128 // chirp[j] = exp(-iπj²/n), j < n
	bhat  []complex128 // FFT of the conjugate chirp, arranged for circular convolution
	z, w  []complex128 // scratch
}

func newBluesteinRFFT(n int) *bluesteinRFFT {
	mm := 1
	for mm < 2*n-1 {
		mm *= 2
	}
	f := &bluesteinRFFT{n: n, c: newCFFT(mm), chirp: make([]complex128, n), bhat: make([]complex128, mm),
		z: make([]complex128, mm), w: make([]complex128, mm)}
	for j := range f.chirp {
		// j² mod 2n keeps the angle exact for large j.
		r := (uint64(j) * uint64(j)) % uint64(2*n)
		s, co := trig.Sincos(-math.Pi * float64(r) / float64(n))
		f.chirp[j] = complex(co, s)
	}
	b := make([]complex128, mm)
	for j := 0; j < n; j++ {
		v := complex(real(f.chirp[j]), -imag(f.chirp[j]))
		b[j] = v
		if j > 0 {
			b[mm-j] = v
		}
	}
	for j, p := range f.c.perm {
		f.bhat[p] = b[j]
	}
	f.c.transform(f.bhat)
	return f
}

func (f *bluesteinRFFT) power(dst, x []float64, add bool) {
	n, mm := f.n, len(f.z)
	z := f.z
	clear(z)
	perm := f.c.perm[:mm]
	x = x[:n]
	for j, v := range x {
		c := f.chirp[j]
		z[perm[j]] = complex(float64(v*real(c)), float64(v*imag(c)))
	}
	f.c.transform(z)
	// Multiply by the chirp's transform and take the inverse FFT as
	// conj(FFT(conj(·))), loading through the permutation again.
	y := f.bhat[:mm]
	tmp := f.w[:mm]
	for k, p := range perm {
		v := cmul(z[k], &y[k])
		tmp[p] = complex(real(v), -imag(v))
	}
	f.c.transform(tmp)
	dst = dst[:n/2+1]
	inv := 1 / float64(mm)
	for k := range dst {
		// X[k] = chirp[k]·conj(tmp[k])/mm; |chirp[k]| = 1.
		v := tmp[k]
		p := float64(abs2(v) * inv * inv)
		if add {
			dst[k] += p
		} else {
			dst[k] = p
		}
	}
}
