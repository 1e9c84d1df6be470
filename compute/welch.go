package compute

import (
	"context"
	"fmt"
	"math"
)

// As in fft.go, each product that feeds a sum is converted, float64(a*b),
// so that no GOAMD64 level fuses it into a multiply-add.

// Plan computes Welch power spectral densities of records of one length with
// one set of parameters. It holds the window, the scale factors, the FFT
// tables and all scratch space, so PSD does not allocate once its destination
// is large enough. Reuse a Plan across records; it is not safe for
// concurrent use.
type Plan struct {
	n        int // record length
	nperseg  int
	noverlap int
	step     int
	nfft     int
	nseg     int
	nfreq    int // len of the result
	nhalf    int // nfft/2 + 1
	onesided bool
	density  bool
	median   bool
	detrend  Detrend

	win   []float64
	sumW  float64 // sum(w)
	sumW2 float64 // sum(w²)
	tc    []float64
	invTT float64 // 1 / sum(tc²) for linear detrending
	bias  float64 // median bias

	fft powerSpectrum
	// pair, for mean averaging of power-of-two segments (nfft = nperseg <=
	// maxPairedNFFT, no linear detrending), transforms two segments at
	// once: the pow2RFFT of length 2·nfft, whose complex FFT is of length
	// nfft; acc2 sums its powers (twice the segments' sum).
	pair *pow2RFFT
	// pairWin is the window laid out for pair's float32 loads in
	// assembly (pairWindow), or nil.
	pairWin []float64
	acc2    []float64
	seg     []float64 // nfft: windowed, detrended, zero-padded segment
	acc     []float64 // nhalf: sum over segments (mean)
	rows    []float64 // nseg*nhalf: per-segment powers (median)
	col     []float64 // medianBlock*nseg scratch (median)
	// medianFreqs, when positive, is how many frequencies a median over
	// too many segments x frequencies takes per pass over the record, its
	// segments' powers held by frequency in rows (medianFreqs*nseg values).
	medianFreqs int
	// plain, set by tests, sends every segment through trend, prepare and
	// fft.power: the reference that the fused paths equal bit for bit.
	plain bool
	// noHalfPairs, set by tests, loads paired segments half a segment
	// apart as any two segments (the reference for loadPow2PairHalf).
	noHalfPairs bool
}

// MaxMedianValues bounds the segments x frequencies a Plan holds for average
// "median" (2^25 values, 256 MiB): a longer record's median is computed a
// block of frequencies at a time, each block a pass over every segment, so
// memory stays within the bound (or one value per segment) while time grows
// with the number of passes.
const MaxMedianValues = 1 << 25

// maxPairedNFFT bounds the segments that Plan transforms two at a time
// (memory: the paired transform's tables and buffer hold about 45 bytes per
// point).
const maxPairedNFFT = 1 << 9

// cancelEvery is how many segments PSDContext computes between checks of
// its context.
const cancelEvery = 256

// NewPlan validates p and prepares the computation for records of length n,
// following scipy.signal.welch exactly:
//
//   - With a named window, nperseg (default 256) larger than n is clipped to n
//     (scipy warns and does the same); noverlap then defaults to nperseg/2 and
//     nfft to nperseg, both of the clipped nperseg.
//   - With window weights, n shorter than the weights is an error wrapping
//     both ErrInvalidParams and ErrRecordTooShort (scipy raises ValueError).
//   - nfft smaller than the (clipped) nperseg is an error, as in scipy.
//   - n == 0 gives a Plan with NumFreqs() == 0 whose PSD and Freqs are empty,
//     as scipy returns empty arrays for an empty record.
//
// All errors wrap ErrInvalidParams.
func NewPlan(p WelchParams, n int) (*Plan, error) {
	return newPlan(p, n, MaxMedianValues)
}

// newPlan is NewPlan with a bound on the median's segments x frequencies.
func newPlan(p WelchParams, n, medianValues int) (*Plan, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, invalidf("record length %d is negative", n)
	}
	pl := &Plan{n: n}
	if n == 0 {
		return pl, nil
	}
	w := p.Window
	if w == nil {
		w = &Window{Name: "hann"}
	}
	var nperseg int
	if w.Weights != nil {
		nperseg = len(w.Weights)
		if n < nperseg {
			return nil, fmt.Errorf("compute: record length %d is shorter than the %d window weights: %w: %w", n, nperseg, ErrInvalidParams, ErrRecordTooShort)
		}
	} else {
		nperseg = 256
		if p.NPerSeg != nil {
			nperseg = *p.NPerSeg
		}
		nperseg = min(nperseg, n)
	}
	nfft := nperseg
	if p.NFFT != nil {
		nfft = *p.NFFT
		if nfft < nperseg {
			return nil, invalidf("nfft=%d must be greater than or equal to nperseg=%d", nfft, nperseg)
		}
	}
	noverlap := nperseg / 2
	if p.NOverlap != nil {
		noverlap = *p.NOverlap
		if noverlap >= nperseg {
			return nil, invalidf("noverlap=%d must be less than nperseg=%d (record length %d)", noverlap, nperseg, n)
		}
	}
	pl.nperseg, pl.noverlap, pl.nfft = nperseg, noverlap, nfft
	pl.step = nperseg - noverlap
	pl.nseg = (n-nperseg)/pl.step + 1
	pl.nhalf = nfft/2 + 1
	pl.onesided = p.ReturnOnesided == nil || *p.ReturnOnesided
	if pl.onesided {
		pl.nfreq = pl.nhalf
	} else {
		pl.nfreq = nfft
	}
	pl.density = p.Scaling != "spectrum"
	pl.median = p.Average == "median" && pl.nseg > 1
	pl.detrend = DetrendConstant
	if p.Detrend != nil {
		pl.detrend = *p.Detrend
	}

	if err := checkWindowLength(w, nperseg); err != nil {
		return nil, err
	}
	pl.win = makeWindow(w, nperseg)
	for _, v := range pl.win {
		pl.sumW += v
		pl.sumW2 += float64(v * v)
	}
	if pl.detrend == DetrendLinear {
		pl.tc = make([]float64, nperseg)
		mid := float64(nperseg-1) / 2
		var tt float64
		for i := range pl.tc {
			pl.tc[i] = float64(i) - mid
			tt += float64(pl.tc[i] * pl.tc[i])
		}
		if tt > 0 {
			pl.invTT = 1 / tt
		}
	}
	pl.fft = newPowerSpectrum(nfft)
	pl.seg = make([]float64, nfft)
	pl.acc = make([]float64, pl.nhalf)
	if _, ok := pl.fft.(*pow2RFFT); ok && nfft == nperseg && nfft <= maxPairedNFFT && !pl.median && pl.detrend != DetrendLinear && pl.nseg > 1 {
		pl.pair = newPow2RFFT(2 * nfft)
		pl.acc2 = make([]float64, pl.nhalf)
		if haveAsm {
			pl.pairWin = pairWindow(pl.win)
		}
	}
	if pl.median {
		pl.bias = medianBias(pl.nseg)
		if pl.nseg <= medianValues/pl.nhalf {
			pl.rows = make([]float64, pl.nseg*pl.nhalf)
			pl.col = make([]float64, medianBlock*pl.nseg)
		} else {
			pl.medianFreqs = max(1, medianValues/pl.nseg)
			pl.rows = make([]float64, pl.medianFreqs*pl.nseg)
		}
	}
	return pl, nil
}

// medianBias is scipy's _median_bias: the ratio of median to mean of a
// chi-squared distribution with two degrees of freedom, for k samples.
func medianBias(k int) float64 {
	s := 0.0
	for i := 1; i <= (k-1)/2; i++ {
		ii := 2 * float64(i)
		s += 1/(ii+1) - 1/ii
	}
	return 1 + s
}

// NumFreqs is the length of the Freqs and PSD results: nfft/2+1 one-sided,
// nfft two-sided, 0 for an empty record.
func (pl *Plan) NumFreqs() int { return pl.nfreq }

// NPerSeg is the segment length in use after scipy's clipping to the record
// length.
func (pl *Plan) NPerSeg() int { return pl.nperseg }

// NOverlap is the segment overlap in use.
func (pl *Plan) NOverlap() int { return pl.noverlap }

// NFFT is the FFT length in use.
func (pl *Plan) NFFT() int { return pl.nfft }

// NumSegments is the number of segments averaged per record.
func (pl *Plan) NumSegments() int { return pl.nseg }

// Window returns the window weights in use (do not modify).
func (pl *Plan) Window() []float64 { return pl.win }

// Freqs writes the sample frequencies for sampling frequency fs into dst
// (reusing its storage when large enough) and returns it: scipy's order,
// rfftfreq one-sided and fftfreq (0, positive, then negative) two-sided.
func (pl *Plan) Freqs(dst []float64, fs float64) []float64 {
	dst = grow(dst, pl.nfreq)[:0]
	if pl.nfreq == 0 {
		return dst
	}
	return FFTFreqs(dst, pl.nfft, fs, pl.onesided)
}

// FFTFreqs appends the frequencies of an nfft-point spectrum at fs Hz to dst
// in scipy's order: numpy.fft.rfftfreq(nfft, 1/fs) when onesided, else
// numpy.fft.fftfreq(nfft, 1/fs) (0, positive, then negative). They are the
// frequencies of a Plan of that nfft.
func FFTFreqs(dst []float64, nfft int, fs float64, onesided bool) []float64 {
	if onesided {
		return RFFTFreqs(dst, nfft, fs)
	}
	val := 1 / (float64(nfft) * (1 / fs))
	npos := (nfft-1)/2 + 1
	for k := 0; k < nfft; k++ {
		if k < npos {
			dst = append(dst, float64(k)*val)
		} else {
			dst = append(dst, float64(k-nfft)*val)
		}
	}
	return dst
}

func grow(dst []float64, n int) []float64 {
	if cap(dst) < n {
		return make([]float64, n)
	}
	return dst[:n]
}

// PSD writes the Welch power spectral density (or power spectrum, per
// scaling) of x, sampled at fs (> 0), into dst (reusing its storage when large
// enough) and returns it. len(x) must be the Plan's record length; PSD panics
// otherwise. A NaN or infinity in x makes the affected values NaN, as in
// scipy.
func (pl *Plan) PSD(dst []float64, x []float64, fs float64) []float64 {
	dst, _ = pl.PSDContext(context.Background(), dst, x, fs)
	return dst
}

// PSDContext is PSD that stops, returning ctx's error, when ctx is done:
// it checks ctx every few hundred segments, so a cancelled caller waits for
// a fraction of one long record, not all of it.
func (pl *Plan) PSDContext(ctx context.Context, dst []float64, x []float64, fs float64) ([]float64, error) {
	return psd(ctx, pl, dst, x, fs)
}

// PSDFloat32Context is PSDContext of float32 samples: equal, bit for bit, to
// PSDContext of x converted to float64, without that copy of the record
// (each segment's samples are widened as the segment is loaded).
func (pl *Plan) PSDFloat32Context(ctx context.Context, dst []float64, x []float32, fs float64) ([]float64, error) {
	return psd(ctx, pl, dst, x, fs)
}

// sample is the type of the samples a Plan reads: float64, or float32
// widened to float64 as it is read.
type sample interface{ float32 | float64 }

// psd is PSDContext for samples of either type.
func psd[T sample](ctx context.Context, pl *Plan, dst []float64, x []T, fs float64) ([]float64, error) {
	if len(x) != pl.n {
		panic(fmt.Sprintf("compute: PSD of %d samples with a plan for %d", len(x), pl.n))
	}
	dst = grow(dst, pl.nfreq)
	if pl.nfreq == 0 {
		return dst, nil
	}
	nh := pl.nhalf
	acc := pl.acc[:nh]
	clear(acc)
	fused, _ := pl.fft.(segmentPowerer)
	p2, _ := pl.fft.(*pow2RFFT)
	if pl.nfft != pl.nperseg {
		fused, p2 = nil, nil // zero padding goes through pl.seg
	}
	if pl.tc != nil {
		p2 = nil // loadPow2 does not subtract a slope
	}
	if pl.plain {
		fused, p2 = nil, nil
	}
	// halves, when true: constant detrending's pairwise sum of a segment is
	// that of its two halves, and the first half of each segment is the
	// second half of the one before, whose sum is carried over (bit for bit
	// the same sum, half the additions).
	halves := pl.detrend == DetrendConstant && pairwiseHalves(pl.nperseg) && pl.step == pl.nperseg/2 && !pl.plain
	var carried float64
	// segMean is the mean and slope detrending subtracts from segment s,
	// for s = 0, 1, ... in turn.
	segMean := func(s int, seg []T) (mean, slope float64) {
		if !halves {
			return trend(pl, seg)
		}
		h := pl.step
		if s == 0 {
			carried = pairwiseSum(seg[:h])
		}
		second := pairwiseSum(seg[h:])
		mean = (carried + second) / float64(len(seg))
		carried = second
		return mean, 0
	}
	pair := pl.pair
	if pl.plain || pl.median {
		pair = nil
	}
	if pair != nil {
		clear(pl.acc2)
	}
	if pl.medianFreqs > 0 {
		if err := blockMedian(ctx, pl, acc, x); err != nil {
			return dst, err
		}
	}
	nextCheck := cancelEvery - 1
	for s := 0; s < pl.nseg && pl.medianFreqs == 0; s++ {
		if s >= nextCheck {
			nextCheck += cancelEvery
			if err := ctx.Err(); err != nil {
				return dst, err
			}
		}
		seg := x[s*pl.step : s*pl.step+pl.nperseg]
		mean, slope := segMean(s, seg)
		if pair != nil && s+1 < pl.nseg {
			seg2 := x[(s+1)*pl.step : (s+1)*pl.step+pl.nperseg]
			mean2, _ := segMean(s+1, seg2)
			if 2*pl.step == pl.nperseg && !pl.noHalfPairs {
				loadPow2PairHalf(pair, x[s*pl.step:(s+1)*pl.step+pl.nperseg], pl.win, pl.pairWin, mean, mean2)
			} else {
				loadPow2Pair(pair, seg, seg2, pl.win, mean, mean2)
			}
			pair.laterStagesPairPower(pl.acc2)
			s++
			continue
		}
		out, add := acc, true
		if pl.median {
			out, add = pl.rows[s*nh:(s+1)*nh], false
		}
		if p2 != nil {
			loadPow2(p2, seg, pl.win, mean)
			p2.laterStagesPower(out, add)
		} else if fused != nil {
			z, perm := fused.loadBuffer()
			loadSegment(z, perm, seg, pl.win, mean, slope, pl.tc)
			fused.transformPower(out, add)
		} else {
			prepare(pl, seg, mean, slope)
			pl.fft.power(out, pl.seg, add)
		}
	}
	if pair != nil {
		for k, v := range pl.acc2[:nh] {
			acc[k] += float64(0.5 * v)
		}
	}
	var scale float64
	if pl.density {
		scale = 1 / (fs * pl.sumW2)
	} else {
		scale = 1 / (pl.sumW * pl.sumW)
	}
	if pl.median && pl.medianFreqs == 0 {
		ns := pl.nseg
		for k0 := 0; k0 < nh; k0 += medianBlock {
			// Gather medianBlock frequencies at a time: one cache line of
			// each segment's row instead of one value.
			kn := min(medianBlock, nh-k0)
			for s := 0; s < ns; s++ {
				row := pl.rows[s*nh+k0 : s*nh+k0+kn]
				for j, v := range row {
					pl.col[j*ns+s] = v
				}
			}
			for j := 0; j < kn; j++ {
				acc[k0+j] = median(pl.col[j*ns:(j+1)*ns]) / pl.bias
			}
		}
	} else if !pl.median {
		scale /= float64(pl.nseg)
	}
	if !pl.onesided {
		for k := range dst {
			kk := k
			if kk >= nh {
				kk = pl.nfft - k
			}
			dst[k] = acc[kk] * scale
		}
		return dst, nil
	}
	last := nh - 1
	if pl.nfft%2 == 1 {
		last = nh // no Nyquist bin to spare
	}
	dst[0] = acc[0] * scale
	scale2 := 2 * scale
	for k := 1; k < nh; k++ {
		if k < last {
			dst[k] = acc[k] * scale2
		} else {
			dst[k] = acc[k] * scale
		}
	}
	return dst, nil
}

// blockMedian writes into acc the median over segments of every
// frequency's power, divided by the median bias, a block of medianFreqs
// frequencies at a time: each block computes every segment's power again
// and keeps only the block's, by frequency, in rows.
func blockMedian[T sample](ctx context.Context, pl *Plan, acc []float64, x []T) error {
	nh, ns := pl.nhalf, pl.nseg
	power := make([]float64, nh)
	for k0 := 0; k0 < nh; k0 += pl.medianFreqs {
		kn := min(pl.medianFreqs, nh-k0)
		for s := 0; s < ns; s++ {
			if s%cancelEvery == cancelEvery-1 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			seg := x[s*pl.step : s*pl.step+pl.nperseg]
			mean, slope := trend(pl, seg)
			prepare(pl, seg, mean, slope)
			pl.fft.power(power, pl.seg, false)
			for j := 0; j < kn; j++ {
				pl.rows[j*ns+s] = power[k0+j]
			}
		}
		for j := 0; j < kn; j++ {
			acc[k0+j] = median(pl.rows[j*ns:(j+1)*ns]) / pl.bias
		}
	}
	return nil
}

// Segments writes the spectrum of every segment of x, one after the other
// (NumSegments rows of NumFreqs values), into dst and returns it: what
// scipy.signal.spectrogram returns (mode "psd", transposed to one row per
// segment) with the same window, overlap, nfft, detrend, scaling and sides.
// Welch's PSD with average "mean" is the mean of these rows. len(x) must be
// the Plan's record length; Segments panics otherwise.
func (pl *Plan) Segments(dst []float64, x []float64, fs float64) []float64 {
	return pl.SegmentRange(dst, x, fs, 0, pl.nseg)
}

// SegmentRange is Segments for segments s0 to s1-1 only (0 <= s0 <= s1 <=
// NumSegments), s1-s0 rows of NumFreqs values: a caller bounds its memory by
// taking a long record's segments a range at a time. It panics if len(x) is
// not the Plan's record length or the range is out of bounds.
func (pl *Plan) SegmentRange(dst []float64, x []float64, fs float64, s0, s1 int) []float64 {
	return segmentRange(pl, dst, x, fs, s0, s1)
}

// SegmentRangeFloat32 is SegmentRange of float32 samples: equal, bit for
// bit, to SegmentRange of x converted to float64, without that copy.
func (pl *Plan) SegmentRangeFloat32(dst []float64, x []float32, fs float64, s0, s1 int) []float64 {
	return segmentRange(pl, dst, x, fs, s0, s1)
}

// segmentRange is SegmentRange for samples of either type.
func segmentRange[T sample](pl *Plan, dst []float64, x []T, fs float64, s0, s1 int) []float64 {
	if len(x) != pl.n {
		panic(fmt.Sprintf("compute: Segments of %d samples with a plan for %d", len(x), pl.n))
	}
	if s0 < 0 || s1 < s0 || s1 > pl.nseg {
		panic(fmt.Sprintf("compute: segments [%d, %d) of %d", s0, s1, pl.nseg))
	}
	dst = grow(dst, (s1-s0)*pl.nfreq)
	if pl.nfreq == 0 {
		return dst
	}
	nh := pl.nhalf
	scale := 1 / (pl.sumW * pl.sumW)
	if pl.density {
		scale = 1 / (fs * pl.sumW2)
	}
	last := nh - 1
	if pl.nfft%2 == 1 {
		last = nh
	}
	acc := pl.acc[:nh]
	for s := s0; s < s1; s++ {
		seg := x[s*pl.step : s*pl.step+pl.nperseg]
		clear(acc)
		mean, slope := trend(pl, seg)
		prepare(pl, seg, mean, slope)
		pl.fft.power(acc, pl.seg, true)
		row := dst[(s-s0)*pl.nfreq : (s-s0+1)*pl.nfreq]
		for k := range row {
			switch {
			case !pl.onesided:
				kk := k
				if kk >= nh {
					kk = pl.nfft - k
				}
				row[k] = acc[kk] * scale
			case k == 0 || k >= last:
				row[k] = acc[k] * scale
			default:
				row[k] = acc[k] * 2 * scale
			}
		}
	}
	return dst
}

// SegmentTimes writes the centre of every segment, in seconds from the
// record's first sample at sampling frequency fs, into dst and returns it
// (scipy.signal.spectrogram's t).
func (pl *Plan) SegmentTimes(dst []float64, fs float64) []float64 {
	dst = grow(dst, pl.nseg)
	for s := range dst {
		dst[s] = pl.SegmentTime(s, fs)
	}
	return dst
}

// SegmentTime is the centre of segment s, in seconds from the record's first
// sample at sampling frequency fs: SegmentTimes(nil, fs)[s].
func (pl *Plan) SegmentTime(s int, fs float64) float64 {
	return (float64(s*pl.step) + float64(float64(pl.nperseg)/2)) / fs
}

// trend returns the mean and slope (per sample, about the segment's
// centre) that pl's detrending subtracts from segment x.
func trend[T sample](pl *Plan, x []T) (mean, slope float64) {
	switch pl.detrend {
	case DetrendConstant:
		return pairwiseSum(x) / float64(len(x)), 0
	case DetrendLinear:
		mean = pairwiseSum(x) / float64(len(x))
		return mean, dotCentered(pl.tc, x, mean) * pl.invTT
	}
	return 0, 0
}

// prepare detrends and windows segment x into pl.seg (the zero padding
// beyond nperseg stays zero).
func prepare[T sample](pl *Plan, x []T, mean, slope float64) {
	w := pl.win
	seg := pl.seg[:len(w)]
	x = x[:len(w)]
	if pl.tc == nil {
		for i, v := range x {
			seg[i] = (float64(v) - mean) * w[i]
		}
		return
	}
	tc := pl.tc[:len(x)]
	for i, v := range x {
		seg[i] = (float64(v) - mean - float64(slope*tc[i])) * w[i]
	}
}

// pairwiseHalves reports whether pairwiseSum of n values is the sum of the
// pairwiseSums of its two halves of n/2 values.
func pairwiseHalves(n int) bool {
	return n > 128 && n%16 == 0
}

// pairwiseSum is numpy's pairwise summation of a contiguous float64 array,
// bit for bit, so that the segment means (numpy.mean, used by scipy's
// constant detrending) agree exactly: with a large offset, the detrended
// samples are small differences of large numbers, and any difference in the
// mean would show in the lowest frequencies.
func pairwiseSum[T sample](x []T) float64 {
	n := len(x)
	switch {
	case n < 8:
		var s float64
		for _, v := range x {
			s += float64(v)
		}
		return s
	case n <= 128:
		if x32, ok := any(x).([]float32); ok && haveAsm {
			var r [8]float64
			e := n &^ 7
			pairwise8F32(x32[:e], &r)
			s := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
			for _, v := range x32[e:] {
				s += float64(v)
			}
			return s
		}
		// Eight variables, not an array: the compiler keeps them in
		// registers (an array stays in memory, a load and a store per
		// addition).
		h := x[:8:8]
		r0, r1, r2, r3 := float64(h[0]), float64(h[1]), float64(h[2]), float64(h[3])
		r4, r5, r6, r7 := float64(h[4]), float64(h[5]), float64(h[6]), float64(h[7])
		i := 8
		for ; i+8 <= n; i += 8 {
			v := x[i : i+8 : i+8]
			r0 += float64(v[0])
			r1 += float64(v[1])
			r2 += float64(v[2])
			r3 += float64(v[3])
			r4 += float64(v[4])
			r5 += float64(v[5])
			r6 += float64(v[6])
			r7 += float64(v[7])
		}
		s := ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
		for ; i < n; i++ {
			s += float64(x[i])
		}
		return s
	}
	n2 := n / 2
	n2 -= n2 % 8
	return pairwiseSum(x[:n2]) + pairwiseSum(x[n2:])
}

// dotCentered is the dot product of a and b-c (len(b) >= len(a)) with four
// independent accumulators; subtracting c first avoids cancellation when b
// has a large offset.
func dotCentered[T sample](a []float64, b []T, c float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		u := a[i : i+4 : i+4]
		v := b[i : i+4 : i+4]
		s0 += float64(u[0] * (float64(v[0]) - c))
		s1 += float64(u[1] * (float64(v[1]) - c))
		s2 += float64(u[2] * (float64(v[2]) - c))
		s3 += float64(u[3] * (float64(v[3]) - c))
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i] * (float64(b[i]) - c))
	}
	return (s0 + s1) + (s2 + s3)
}

// medianBlock is how many frequencies the median gathers per pass.
const medianBlock = 8

// median is numpy.median of v (reordered in place): NaN if any value is NaN.
func median(v []float64) float64 {
	for _, x := range v {
		if math.IsNaN(x) {
			return math.NaN()
		}
	}
	n := len(v)
	hi := selectKth(v, n/2)
	if n%2 == 1 {
		return hi
	}
	// The lower middle value is the largest of those left below hi.
	lo := v[0]
	for _, x := range v[1 : n/2] {
		lo = max(lo, x)
	}
	return (lo + hi) / 2
}

// selectKth reorders v so that v[k] is its k-th smallest value, everything
// before it no larger and everything after it no smaller, and returns v[k].
// v must not contain NaN.
func selectKth(v []float64, k int) float64 {
	lo, hi := 0, len(v)-1
	for hi-lo > 16 {
		// Median-of-three pivot, Hoare partition.
		mid := lo + (hi-lo)/2
		if v[mid] < v[lo] {
			v[mid], v[lo] = v[lo], v[mid]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[hi] < v[mid] {
			v[hi], v[mid] = v[mid], v[hi]
		}
		p := v[mid]
		i, j := lo, hi
		for i <= j {
			for v[i] < p {
				i++
			}
			for v[j] > p {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	// Insertion sort of the small remaining range.
	for i := lo + 1; i <= hi; i++ {
		x := v[i]
		j := i - 1
		for j >= lo && v[j] > x {
			v[j+1] = v[j]
			j--
		}
		v[j+1] = x
	}
	return v[k]
}

// Planner caches Plans by record length for one set of parameters, for
// datasets whose records differ in length. It keeps at most 64 Plans (it
// starts afresh when full). Use one Planner per goroutine.
type Planner struct {
	p     WelchParams
	plans map[int]*Plan
	// points is the sum of the cached plans' nfft.
	points int
}

const maxCachedPlans = 64

// maxCachedPoints bounds the FFT points of the plans a Planner keeps: a plan
// holds buffers of O(nfft), tens of MiB at MaxNFFT, and records of many
// lengths below nperseg each need their own.
const maxCachedPoints = 1 << 22

// NewPlanner validates p (see WelchParams.Validate) and returns a Planner.
func NewPlanner(p WelchParams) (*Planner, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Planner{p: p, plans: make(map[int]*Plan)}, nil
}

// Plan returns the Plan for records of length n, creating it on first use.
// Errors are NewPlan's.
func (pp *Planner) Plan(n int) (*Plan, error) {
	if pl, ok := pp.plans[n]; ok {
		return pl, nil
	}
	pl, err := NewPlan(pp.p, n)
	if err != nil {
		return nil, err
	}
	if len(pp.plans) >= maxCachedPlans || pp.points+pl.nfft > maxCachedPoints {
		clear(pp.plans)
		pp.points = 0
	}
	pp.plans[n] = pl
	pp.points += pl.nfft
	return pl, nil
}

// BandPower is numpy.trapezoid(psd[m], freqs[m]) with
// m = (freqs >= lo) & (freqs <= hi): the trapezoidal integral of the PSD over
// the selected frequencies, in their order. It is 0 when fewer than two
// frequencies are selected. freqs and psd must have the same length.
func BandPower(freqs, psd []float64, lo, hi float64) float64 {
	psd = psd[:len(freqs)]
	var sum float64
	havePrev := false
	var pf, pp float64
	for i, f := range freqs {
		if !(f >= lo && f <= hi) {
			continue
		}
		if havePrev {
			sum += float64((f - pf) * (psd[i] + pp) / 2)
		}
		pf, pp, havePrev = f, psd[i], true
	}
	return sum
}
