package compute

import (
	"fmt"
	"math"

	"github.com/flightbatch/flightbatch/internal/trig"
)

// As in fft.go, each product that feeds a sum is converted, float64(a*b),
// so that no GOAMD64 level fuses it into a multiply-add.

// The bounds of a multitaper PSD, which keep one record's tapers within
// memory whatever the request.
const (
	// MaxMultitaperLength bounds the length of a record analysed by
	// multitaper (the whole record is one FFT).
	MaxMultitaperLength = 1 << 20
	// MaxTaperSamples bounds the number of tapers times the record length:
	// the tapers of one record are held in memory together (128 MiB).
	MaxTaperSamples = 1 << 24
)

// MultitaperParams are MNE's psd_array_multitaper parameters, with MNE's
// names and defaults.
type MultitaperParams struct {
	// Bandwidth is the full frequency bandwidth in Hz; nil means a
	// half-bandwidth NW of 4 (MNE's bandwidth=None).
	Bandwidth *float64
	// LowBias keeps only the tapers whose concentration ratio exceeds 0.9
	// (MNE's default true).
	LowBias bool
	// Full divides the PSD by the sampling rate (MNE's normalization="full");
	// false is normalization="length".
	Full bool
	// Adaptive combines the tapered spectra with MNE's adaptive weights
	// (_psd_from_mt_adaptive): iterated until the largest mean squared change
	// of the weights over the frequencies in [StopLo, StopHi] is below 1e-10,
	// at most MaxIter times (MNE's default 150 when 0). With fewer than 3
	// tapers the fixed weights are used, as MNE does.
	Adaptive       bool
	MaxIter        int
	StopLo, StopHi float64
}

// HalfBandwidth is MNE's standardized half-bandwidth NW for a record of n
// samples at fs Hz: bandwidth·n/(2·fs), or 4 without a bandwidth.
func (p MultitaperParams) HalfBandwidth(n int, fs float64) float64 {
	if p.Bandwidth == nil {
		return 4
	}
	return *p.Bandwidth * float64(n) / (2 * fs)
}

// Multitaper computes the one-sided multitaper PSD of a whole record as MNE's
// psd_array_multitaper does with adaptive=False and remove_dc=True: the mean
// is removed, the record is multiplied by the int(2·NW) periodic DPSS tapers
// of DPSS (those with concentration above 0.9 with LowBias), each product's
// power spectrum is taken at freqs rfftfreq(n, 1/fs), the DC and (even n)
// Nyquist bins are halved, and the spectra are combined with weights the
// concentration ratios and doubled: 2·Σ λk·|Xk|² / Σ λk. With Full the result
// is divided by fs. It appends the PSD to dst. cache, if not nil, keeps the
// tapers of the last record length and half-bandwidth for the next call.
func Multitaper(dst, x []float64, fs float64, p MultitaperParams, cache *TaperCache) ([]float64, error) {
	n := len(x)
	nw := p.HalfBandwidth(n, fs)
	if n < 2 {
		return dst, invalidf("multitaper: a record of %d samples is too short", n)
	}
	if n > MaxMultitaperLength {
		return dst, fmt.Errorf("compute: multitaper: a record of %d samples is above the limit of %d: %w", n, MaxMultitaperLength, ErrInvalidParams)
	}
	if !(nw >= 0.5) || math.IsInf(nw, 0) {
		return dst, invalidf("multitaper: the half-bandwidth bandwidth·n/(2·fs) = %v for a record of %d samples must be at least 0.5; increase bandwidth", nw, n)
	}
	if nw >= float64(n)/2 {
		return dst, invalidf("multitaper: the half-bandwidth bandwidth·n/(2·fs) = %v must be less than n/2 = %v; decrease bandwidth", nw, float64(n)/2)
	}
	k := int(2 * nw)
	if k*n > MaxTaperSamples {
		return dst, invalidf("multitaper: %d tapers of %d samples are above the limit of %d taper samples; decrease bandwidth", k, n, MaxTaperSamples)
	}
	tapers, ratios := cache.dpss(n, nw, k)
	if p.LowBias {
		var kt [][]float64
		var kr []float64
		best := 0
		for i, r := range ratios {
			if r > 0.9 {
				kt, kr = append(kt, tapers[i]), append(kr, r)
			}
			if r > ratios[best] {
				best = i
			}
		}
		if len(kt) == 0 {
			kt, kr = tapers[best:best+1], ratios[best:best+1]
		}
		tapers, ratios = kt, kr
	}
	nf := n/2 + 1
	start := len(dst)
	dst = grow(dst, nf)
	out := dst[start:]
	clear(out)
	mean := pairwiseSum(x) / float64(n)
	ps := newPowerSpectrum(n)
	seg := make([]float64, n)
	// pows[i] is taper i's power spectrum with the DC and (even n) Nyquist
	// bins halved, as MNE's one-sided spectra are.
	pows := make([][]float64, len(tapers))
	for i, t := range tapers {
		for j, v := range x {
			seg[j] = (v - mean) * t[j]
		}
		pows[i] = make([]float64, nf)
		ps.power(pows[i], seg, false)
		pows[i][0] /= 2
		if n%2 == 0 {
			pows[i][nf-1] /= 2
		}
	}
	fixed := func(dst []float64, k int) {
		var wsum float64
		for i := range pows[:k] {
			for f, v := range pows[i] {
				dst[f] += float64(ratios[i] * v)
			}
			wsum += ratios[i]
		}
		for f := range dst {
			dst[f] *= 2 / wsum
		}
	}
	fixed(out, len(pows))
	if p.Adaptive && len(pows) >= 3 {
		adaptiveCombine(out, pows, ratios, n, fs, p)
	}
	if p.Full {
		for f := range out {
			out[f] /= fs
		}
	}
	return dst, nil
}

// adaptiveCombine replaces psd, the fixed-weight estimate, by MNE's adaptive
// estimate (_psd_from_mt_adaptive), step by step.
func adaptiveCombine(psd []float64, pows [][]float64, ratios []float64, n int, fs float64, p MultitaperParams) {
	nf, k := len(psd), len(pows)
	maxIter := p.MaxIter
	if maxIter <= 0 {
		maxIter = 150
	}
	// The variance: trapezoid(psd, dx=π/nf)/(2π), numpy's summation order.
	dx := math.Pi / float64(nf)
	pieces := make([]float64, max(nf-1, 0))
	for f := range pieces {
		pieces[f] = dx * (psd[f+1] + psd[f]) / 2
	}
	variance := pairwiseSum(pieces) / (2 * math.Pi)
	stop := func(f int) bool {
		fr := float64(f) * (1 / (float64(n) * (1 / fs)))
		return fr >= p.StopLo && fr <= p.StopHi
	}
	rt := make([]float64, k)
	for i, l := range ratios {
		rt[i] = math.Sqrt(l)
	}
	// combine is _psd_from_mt with per-frequency weights w.
	combine := func(dst []float64, w [][]float64, m int) {
		for f := range dst {
			var num, den float64
			for i := 0; i < m; i++ {
				a := float64(w[i][f] * w[i][f])
				num += float64(a * pows[i][f])
				den += a
			}
			dst[f] = num * (2 / den)
		}
	}
	iter := make([]float64, nf)
	first := make([][]float64, 2)
	for i := range first {
		first[i] = make([]float64, nf)
		for f := range first[i] {
			first[i][f] = rt[i]
		}
	}
	combine(iter, first, 2)
	d := make([][]float64, k)
	errs := make([][]float64, k)
	for i := range d {
		d[i] = make([]float64, nf)
		errs[i] = make([]float64, nf)
	}
	for it := 0; it < maxIter; it++ {
		for i := range d {
			for f := range iter {
				d[i][f] = iter[f] / (float64(ratios[i]*iter[f]) + float64((1-ratios[i])*variance)) * rt[i]
				errs[i][f] -= d[i][f]
			}
		}
		worst := math.Inf(-1)
		for f := 0; f < nf; f++ {
			if !stop(f) {
				continue
			}
			var s float64
			for i := range errs {
				s += float64(errs[i][f] * errs[i][f])
			}
			worst = math.Max(worst, s/float64(k))
		}
		if worst < 1e-10 {
			break
		}
		combine(iter, d, k)
		for i := range d {
			copy(errs[i], d[i])
		}
	}
	copy(psd, iter)
}

// TaperCache keeps the periodic DPSS tapers of one record length and
// half-bandwidth, so that records of equal length share them. The zero value
// is ready to use; it is not safe for concurrent use.
type TaperCache struct {
	m, k   int
	nw     float64
	tapers [][]float64
	ratios []float64
}

// dpss is DPSS(m, nw, k, false), from the cache when it holds them; a nil
// cache computes them.
func (c *TaperCache) dpss(m int, nw float64, k int) ([][]float64, []float64) {
	if c == nil {
		return DPSS(m, nw, k, false)
	}
	if c.tapers == nil || c.m != m || c.nw != nw || c.k != k {
		c.tapers, c.ratios = DPSS(m, nw, k, false)
		c.m, c.nw, c.k = m, nw, k
	}
	return c.tapers, c.ratios
}

// DPSS returns the first k discrete prolate spheroidal (Slepian) sequences of
// length m with half-bandwidth nw, L2-normalized, and their concentration
// ratios (the fraction of each taper's energy within [-nw/m, nw/m] cycles per
// sample), as scipy.signal.windows.dpss(m, nw, k, sym=sym,
// return_ratios=True) does: with sym false the tapers are computed for length
// m+1 (whose ratios are returned) and truncated to m samples. Signs are not
// normalized (scipy's sign convention does not change a power spectrum).
// It requires 0 < nw < m/2 and 0 < k <= m.
func DPSS(m int, nw float64, k int, sym bool) (tapers [][]float64, ratios []float64) {
	mm := m
	if !sym {
		mm++
	}
	tapers = dpssTapers(mm, nw, k)
	ratios = dpssRatios(tapers, nw/float64(mm))
	if !sym {
		for t := range tapers {
			tapers[t] = tapers[t][:m]
		}
	}
	return tapers, ratios
}

// dpssTapers returns the first k symmetric DPSS tapers of length m with
// half-bandwidth nw, L2-normalized: the eigenvectors of scipy's tridiagonal
// matrix for its k largest eigenvalues, each eigenvalue found by bisection on
// Sturm counts and its vector by inverse iteration, orthogonalized against
// the earlier ones.
func dpssTapers(m int, nw float64, k int) [][]float64 {
	fm := float64(m)
	cw := trig.Cos(2 * math.Pi * nw / fm)
	d := make([]float64, m)
	e := make([]float64, m) // e[i] couples i-1 and i; e[0] unused
	for i := range d {
		v := (fm - 1 - 2*float64(i)) / 2
		d[i] = v * v * cw
		if i > 0 {
			e[i] = float64(i) * (fm - float64(i)) / 2
		}
	}
	// Gershgorin bounds.
	lo0, hi0 := math.Inf(1), math.Inf(-1)
	for i := range d {
		r := math.Abs(e[i])
		if i+1 < m {
			r += math.Abs(e[i+1])
		}
		lo0 = math.Min(lo0, d[i]-r)
		hi0 = math.Max(hi0, d[i]+r)
	}
	// below counts the eigenvalues smaller than x.
	below := func(x float64) int {
		n := 0
		q := 1.0
		for i := range d {
			if i == 0 {
				q = d[0] - x
			} else {
				q = d[i] - x - e[i]*e[i]/q
			}
			if q == 0 {
				q = -1e-300
			}
			if q < 0 {
				n++
			}
		}
		return n
	}
	scale := math.Max(math.Abs(lo0), math.Abs(hi0))
	tapers := make([][]float64, k)
	var seed uint64 = 0x9E3779B97F4A7C15
	for t := 0; t < k; t++ {
		j := m - 1 - t // ascending index of the t-th largest eigenvalue
		lo, hi := lo0, hi0
		for it := 0; it < 2000 && hi-lo > 4e-16*scale; it++ {
			mid := lo + float64((hi-lo)/2)
			if mid <= lo || mid >= hi {
				break
			}
			if below(mid) > j {
				hi = mid
			} else {
				lo = mid
			}
		}
		sigma := lo + float64((hi-lo)/2)
		y := make([]float64, m)
		for i := range y {
			seed ^= seed << 13
			seed ^= seed >> 7
			seed ^= seed << 17
			y[i] = float64(seed>>11)/(1<<53) - 0.5
		}
		f := newTridiagLU(d, e, sigma, scale)
		for it := 0; it < 5; it++ {
			f.solve(y)
			for _, prev := range tapers[:t] {
				var dot float64
				for i := range y {
					dot += float64(y[i] * prev[i])
				}
				for i := range y {
					y[i] -= float64(dot * prev[i])
				}
			}
			var s float64
			for _, v := range y {
				s += float64(v * v)
			}
			s = 1 / math.Sqrt(s)
			for i := range y {
				y[i] *= s
			}
		}
		tapers[t] = y
	}
	return tapers
}

// dpssRatios returns the concentration ratios of symmetric tapers of
// half-bandwidth w cycles per sample, from their autocorrelation (Percival
// and Walden 1993, p. 390), as scipy computes them: λ = Σ_k r_xx[k]·r[k],
// r[0] = 2W, r[k] = 4W·sinc(2Wk).
func dpssRatios(tapers [][]float64, w float64) []float64 {
	ratios := make([]float64, len(tapers))
	if len(tapers) == 0 {
		return ratios
	}
	mm := len(tapers[0])
	r := make([]float64, mm)
	r[0] = 2 * w
	for i := 1; i < mm; i++ {
		a := math.Pi * 2 * w * float64(i)
		r[i] = 4 * w * trig.Sin(a) / a
	}
	l := 1
	for l < 2*mm-1 {
		l *= 2
	}
	c := newCFFT(l)
	z := make([]complex128, l)
	z2 := make([]complex128, l)
	for t, v := range tapers {
		clear(z)
		for i, s := range v {
			z[c.perm[i]] = complex(s, 0)
		}
		c.transform(z)
		// Inverse transform of |Z|² by the conjugate trick; |Z|² is real.
		for i, s := range z {
			z2[c.perm[i]] = complex(abs2(s), 0)
		}
		c.transform(z2)
		var lam float64
		for i := 0; i < mm; i++ {
			lam += float64(real(z2[i]) / float64(l) * r[i])
		}
		ratios[t] = lam
	}
	return ratios
}

// tridiagLU is the LU factorization with partial pivoting of T - σI for a
// symmetric tridiagonal T (LAPACK's dgttrf), used for inverse iteration.
type tridiagLU struct {
	dl, d, du, du2 []float64
	swap           []bool
}

func newTridiagLU(diag, off []float64, sigma, scale float64) *tridiagLU {
	n := len(diag)
	f := &tridiagLU{dl: make([]float64, n), d: make([]float64, n), du: make([]float64, n), du2: make([]float64, n), swap: make([]bool, n)}
	for i := range diag {
		f.d[i] = diag[i] - sigma
		if i+1 < n {
			f.dl[i] = off[i+1]
			f.du[i] = off[i+1]
		}
	}
	tiny := 1e-16 * scale
	for i := 0; i < n-1; i++ {
		if math.Abs(f.d[i]) >= math.Abs(f.dl[i]) {
			if f.d[i] == 0 {
				f.d[i] = tiny
			}
			fact := f.dl[i] / f.d[i]
			f.dl[i] = fact
			f.d[i+1] -= float64(fact * f.du[i])
		} else {
			fact := f.d[i] / f.dl[i]
			f.d[i] = f.dl[i]
			f.dl[i] = fact
			temp := f.du[i]
			f.du[i] = f.d[i+1]
			f.d[i+1] = temp - float64(fact*f.d[i+1])
			if i+2 < n {
				f.du2[i] = f.du[i+1]
				f.du[i+1] = -fact * f.du[i+1]
			}
			f.swap[i] = true
		}
	}
	if f.d[n-1] == 0 {
		f.d[n-1] = tiny
	}
	return f
}

// solve overwrites b with (T - σI)⁻¹ b.
func (f *tridiagLU) solve(b []float64) {
	n := len(b)
	for i := 0; i < n-1; i++ {
		if f.swap[i] {
			b[i], b[i+1] = b[i+1], b[i]-float64(f.dl[i]*b[i+1])
		} else {
			b[i+1] -= float64(f.dl[i] * b[i])
		}
	}
	b[n-1] /= f.d[n-1]
	if n > 1 {
		b[n-2] = (b[n-2] - float64(f.du[n-2]*b[n-1])) / f.d[n-2]
	}
	for i := n - 3; i >= 0; i-- {
		b[i] = (b[i] - float64(f.du[i]*b[i+1]) - float64(f.du2[i]*b[i+2])) / f.d[i]
	}
}

// RFFTFreqs appends the frequencies of a one-sided spectrum of n samples at
// fs Hz to dst, as numpy.fft.rfftfreq(n, 1/fs): k·(1/(n·(1/fs))), k <= n/2.
func RFFTFreqs(dst []float64, n int, fs float64) []float64 {
	val := 1 / (float64(n) * (1 / fs))
	for k := 0; k <= n/2; k++ {
		dst = append(dst, float64(k)*val)
	}
	return dst
}
