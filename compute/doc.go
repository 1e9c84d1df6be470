// Package compute holds flightbatch's numerical kernels: pure functions over
// slices, with reusable plans and no I/O.
//
// The main kernel is Welch's power spectral density with the semantics of
// scipy.signal.welch for float64 input: the same parameter names and
// defaults (WelchParams), the same windows (get_window names, tuples with
// parameters, or explicit weights), per-segment detrending, one-sided
// doubling, density or spectrum scaling, and mean or bias-corrected median
// averaging. Results agree with scipy to a relative tolerance of 1e-9
// (tests/python/test_compute_parity.py checks this against scipy itself).
// Segment means are numpy's pairwise sums bit for bit, so constant
// detrending (the default) stays exact even for signals riding on a large
// offset. Linear detrending fits the trend in closed form where scipy uses
// LAPACK's least squares; for a signal whose offset exceeds its fluctuations
// by more than about 1e5, the lowest frequency bins then differ from scipy's
// by the float64 rounding of the fit (relative 1e-8 at a ratio of 1e7), as
// two least-squares solvers would.
//
// A Plan prepares everything for one record length (window, scale factors,
// FFT tables, scratch space) so that Plan.PSD does not allocate; a Planner
// caches Plans for datasets whose records differ in length.
//
// Records that scipy treats specially are treated the same way here:
//   - shorter than nperseg (named windows): nperseg is clipped to the record
//     length, as scipy does after warning;
//   - shorter than an explicit window array: NewPlan fails with an error
//     wrapping ErrInvalidParams and ErrRecordTooShort;
//   - empty: the Plan yields empty frequencies and PSD;
//   - containing NaN or ±Inf: the PSD values they reach are NaN (with median
//     averaging a NaN in any segment makes that frequency NaN, like
//     numpy.median).
//
// The FFT is this package's own: a real transform of length n through a
// complex one of n/2, radix 8 and 4 for powers of two, radices 2, 3, 4, 5 and
// small primes (up to 31) otherwise, odd lengths directly; lengths with a
// larger prime factor use Bluestein's algorithm over power-of-two FFTs.
// A power-of-two segment's samples are detrended, windowed and put through
// the FFT's first stage in one pass; with mean averaging and nperseg up to
// 512, two segments at a time are the real and imaginary parts of one
// complex FFT of length nperseg, whose powers give the sum of theirs without
// the real transform's split.
//
// On amd64 the innermost loops of the power-of-two path are also written in
// assembly (fft_amd64.s): the radix-4 stages (FFTs up to 2^14 points), the
// paired transform's sum of powers, the load of two segments half a
// segment apart (float32 samples, and float64 ones with AVX), and numpy's
// partial sums of float32 samples. They use SSE2,
// which every amd64 processor has, and AVX where the processor and the
// operating system support it (golang.org/x/sys/cpu), never FMA: each does
// the Go loop's operations on the same operands in the same order, so the
// results are the same bits on every architecture, and the tests compare
// each instruction set with the Go loop it replaces.
//
// The Go code never lets the compiler fuse a multiply and an add, which it
// may do when GOAMD64 is v3 or above: every product that feeds a sum is
// converted (float64(a*b)), which rounds it, and the sines and cosines of
// twiddles, windows and tapers come from package internal/trig,
// math.Sincos written the same way. So the results are the same bits
// whatever GOAMD64 the binary is built for (TestBitsAcrossBuilds compares
// two builds), except for the chebwin window, whose weights go through
// gonum's FFT and math.Acos and math.Acosh. The gaussian, general_gaussian,
// exponential and chebwin windows use math.Exp, whose amd64 assembly uses
// FMA where the processor has it: their last bits depend on the processor.
package compute
