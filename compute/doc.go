// Package compute holds flightbatch's numerical kernels: pure functions over
// slices, with reusable plans and no I/O.
//
// The main kernel is Welch's power spectral density with the semantics of
// scipy.signal.welch for float64 input: the same parameter names and
// defaults (WelchParams), the same windows (get_window names, tuples with
// parameters, or explicit weights), per-segment detrending, one-sided
// doubling, density or spectrum scaling, and mean or bias-corrected median
// averaging. Results agree with scipy to a relative tolerance of 1e-9.
//
// A Plan prepares everything for one record length (window, scale factors,
// FFT tables, scratch space) so that Plan.PSD does not allocate; a Planner
// caches Plans for datasets whose records differ in length. Powers of two use
// this package's own real FFT; other FFT lengths use gonum's.
package compute
