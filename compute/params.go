package compute

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/flightbatch/flightbatch/internal/clip"
)

// ErrInvalidParams is wrapped by every parameter validation error of this
// package. The wrapping message names the offending parameter with
// scipy.signal.welch's name for it and says what to change.
var ErrInvalidParams = errors.New("invalid parameters")

// ErrRecordTooShort is wrapped (together with ErrInvalidParams) by the errors
// of NewPlan for a record that cannot be analysed with the given parameters
// even after scipy's clipping of nperseg, e.g. a record shorter than an
// explicit window array.
var ErrRecordTooShort = errors.New("record too short")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("compute: "+format+": %w", append(args, ErrInvalidParams)...)
}

// Window is scipy's window argument: a name ("hann"), a name with parameters
// (["tukey", 0.25], ["kaiser", 8.0]), or explicit weights ([0.1, 0.5, ...]).
//
// Exactly one of Name and Weights is set. Args holds the parameters that
// follow the name in scipy's tuple form; a JSON null among them (the None of
// ("exponential", None, 2.0)) is stored as NaN, a JSON boolean (taylor's
// norm) as 1 or 0, and the coefficient list of ("general_cosine", [a0, a1,
// ...]) is stored flat. A name may carry scipy's "_periodic" or "_symmetric"
// suffix; without one the window is periodic (get_window's fftbins=True).
// SupportedWindows lists the names; "hanning" (numpy's name for hann) is
// accepted although scipy no longer does.
type Window struct {
	Name    string    // window name as accepted by scipy.signal.get_window
	Args    []float64 // parameters following the name in scipy's tuple form
	Weights []float64 // explicit window weights; nperseg defaults to their length
}

// UnmarshalJSON accepts scipy's forms: a string, an array whose first element
// is a string (the tuple form), an array of numbers (weights), or the object
// form {"name": ..., "args": [...], "weights": [...]}.
func (w *Window) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*w = Window{}
	if len(b) == 0 {
		return invalidf("window: empty value")
	}
	switch b[0] {
	case '"':
		return json.Unmarshal(b, &w.Name)
	case '{':
		var o struct {
			Name    string    `json:"name"`
			Args    []float64 `json:"args"`
			Weights []float64 `json:"weights"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return invalidf("window: %v", err)
		}
		w.Name, w.Args, w.Weights = o.Name, o.Args, o.Weights
		return nil
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(b, &elems); err != nil {
			return invalidf("window: %v", err)
		}
		if len(elems) == 0 {
			return invalidf("window: empty array; give a name, a [name, args...] tuple or non-empty weights")
		}
		if bytes.HasPrefix(bytes.TrimSpace(elems[0]), []byte(`"`)) {
			if err := json.Unmarshal(elems[0], &w.Name); err != nil {
				return invalidf("window: %v", err)
			}
			w.Args = []float64{}
			for _, e := range elems[1:] {
				if err := appendArg(&w.Args, e); err != nil {
					return err
				}
			}
			if len(w.Args) == 0 {
				w.Args = nil
			}
			return nil
		}
		w.Weights = make([]float64, len(elems))
		for i, e := range elems {
			if err := json.Unmarshal(e, &w.Weights[i]); err != nil {
				return invalidf("window: weight %d is not a number: %s", i, clip.String(string(e), clip.QuoteBytes))
			}
		}
		return nil
	case 'n':
		return invalidf("window: null is not a window; omit it for the default hann")
	}
	return invalidf("window: want a name, a [name, args...] tuple or an array of weights, got %s", clip.String(string(b), clip.QuoteBytes))
}

func appendArg(args *[]float64, e json.RawMessage) error {
	e = bytes.TrimSpace(e)
	switch {
	case bytes.Equal(e, []byte("null")):
		*args = append(*args, math.NaN())
	case bytes.Equal(e, []byte("true")):
		*args = append(*args, 1)
	case bytes.Equal(e, []byte("false")):
		*args = append(*args, 0)
	case len(e) > 0 && e[0] == '[':
		var v []float64
		if err := json.Unmarshal(e, &v); err != nil {
			return invalidf("window: parameter list %s: want numbers", clip.String(string(e), clip.QuoteBytes))
		}
		*args = append(*args, v...)
	default:
		var v float64
		if err := json.Unmarshal(e, &v); err != nil {
			return invalidf("window: parameter %s is not a number", clip.String(string(e), clip.QuoteBytes))
		}
		*args = append(*args, v)
	}
	return nil
}

// MarshalJSON writes the scipy form: a string, a [name, args...] tuple (NaN
// written as null, general_cosine's coefficients as one nested list) or an
// array of weights.
func (w Window) MarshalJSON() ([]byte, error) {
	if w.Weights != nil {
		return json.Marshal(w.Weights)
	}
	if len(w.Args) == 0 {
		return json.Marshal(w.Name)
	}
	out := []any{w.Name}
	args := make([]any, len(w.Args))
	for i, a := range w.Args {
		if math.IsNaN(a) {
			args[i] = nil
		} else {
			args[i] = a
		}
	}
	if base, _ := splitWindowName(w.Name); canonicalWindow[base] == "general_cosine" {
		out = append(out, args)
	} else {
		out = append(out, args...)
	}
	return json.Marshal(out)
}

// Detrend is scipy's detrend argument: "constant", "linear" or none (JSON
// false or "false").
type Detrend string

// Detrend values.
const (
	DetrendConstant Detrend = "constant" // subtract each segment's mean
	DetrendLinear   Detrend = "linear"   // subtract each segment's least-squares line
	DetrendNone     Detrend = "false"    // no detrending (scipy's detrend=False)
)

// UnmarshalJSON accepts "constant", "linear", false and "false".
func (d *Detrend) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("false")) {
		*d = DetrendNone
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return invalidf("detrend: want \"constant\", \"linear\" or false, got %s", clip.String(string(b), clip.QuoteBytes))
	}
	v := Detrend(s)
	if err := v.validate(); err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes "constant", "linear" or false.
func (d Detrend) MarshalJSON() ([]byte, error) {
	if d == DetrendNone {
		return []byte("false"), nil
	}
	return json.Marshal(string(d))
}

func (d Detrend) validate() error {
	switch d {
	case DetrendConstant, DetrendLinear, DetrendNone:
		return nil
	}
	return invalidf("detrend: unknown value %s; use \"constant\", \"linear\" or false", clip.Quote(string(d)))
}

// WelchParams are scipy.signal.welch's parameters with scipy's names and
// defaults; a nil pointer or empty string means scipy's default. JSON null
// also means the default (use false, not null, for no detrending).
type WelchParams struct {
	Window         *Window  `json:"window,omitempty"`          // default hann (periodic)
	NPerSeg        *int     `json:"nperseg,omitempty"`         // default 256, or len(weights); clipped to the record length like scipy
	NOverlap       *int     `json:"noverlap,omitempty"`        // default nperseg/2 (after clipping)
	NFFT           *int     `json:"nfft,omitempty"`            // default nperseg (after clipping)
	Detrend        *Detrend `json:"detrend,omitempty"`         // default constant
	ReturnOnesided *bool    `json:"return_onesided,omitempty"` // default true
	Scaling        string   `json:"scaling,omitempty"`         // density (default) | spectrum
	Average        string   `json:"average,omitempty"`         // mean (default) | median
}

// The bounds of the Welch parameters, which keep one record's plan and result
// within memory whatever the request: a plan holds O(nfft) values and a
// record's result nfft/2+1 (one-sided) or nfft values.
const (
	// MaxNPerSeg bounds nperseg and the number of explicit window weights.
	MaxNPerSeg = 1 << 20
	// MaxNFFT bounds nfft: 2^20 points, so a record's one-sided psd holds at
	// most 524,289 values (4 MiB as float64).
	MaxNFFT = 1 << 20
	// MaxNFFTFactor bounds nfft relative to nperseg: zero padding beyond 64
	// times the segment adds only interpolated points.
	MaxNFFTFactor = 64
	// MaxCosineTerms bounds the coefficients of a general_cosine window.
	MaxCosineTerms = 64
)

// maxNPerSeg is the largest nperseg a record of any length could use: the
// explicit nperseg, the number of weights, or scipy's default 256.
func (p WelchParams) maxNPerSeg() int {
	switch {
	case p.NPerSeg != nil:
		return *p.NPerSeg
	case p.Window != nil && p.Window.Weights != nil:
		return len(p.Window.Weights)
	}
	return 256
}

// MaxFreqs bounds the length of the freqs and psd of any record under these
// parameters: nfft values two-sided, with nfft at most the explicit nfft or
// the largest nperseg a record can use.
func (p WelchParams) MaxFreqs() int {
	if p.NFFT != nil {
		return max(*p.NFFT, p.maxNPerSeg())
	}
	return p.maxNPerSeg()
}

// Validate makes the checks that do not depend on the record length: window
// name and parameters, 1 <= nperseg <= MaxNPerSeg, nperseg equal to the number
// of window weights, noverlap < nperseg, nperseg <= nfft <= MaxNFFT and nfft <=
// MaxNFFTFactor*nperseg, scaling, average and detrend.
//
// The nfft check is stricter than scipy for records shorter than nperseg
// (scipy compares nfft with nperseg after clipping nperseg to the record
// length); NewPlan applies scipy's exact rule. Parameters that pass Validate
// can still be rejected by NewPlan for a particular record, as scipy would
// reject them: a record shorter than explicit window weights, an explicit
// noverlap not below the clipped nperseg, dpss's NW not below nperseg/2.
func (p WelchParams) Validate() error {
	if err := p.validate(); err != nil {
		return err
	}
	if p.NFFT != nil && *p.NFFT < p.maxNPerSeg() {
		return invalidf("nfft=%d must be greater than or equal to nperseg=%d", *p.NFFT, p.maxNPerSeg())
	}
	return nil
}

// validate is Validate without the nfft >= nperseg check.
func (p WelchParams) validate() error {
	if p.Window != nil {
		if err := p.Window.validate(); err != nil {
			return err
		}
	}
	if p.NPerSeg != nil && *p.NPerSeg < 1 {
		return invalidf("nperseg=%d must be a positive integer", *p.NPerSeg)
	}
	if p.NPerSeg != nil && *p.NPerSeg > MaxNPerSeg {
		return invalidf("nperseg=%d is above the limit of %d", *p.NPerSeg, MaxNPerSeg)
	}
	if p.Window != nil && len(p.Window.Weights) > MaxNPerSeg {
		return invalidf("window: %d weights are above the limit of %d (the limit of nperseg)", len(p.Window.Weights), MaxNPerSeg)
	}
	if p.NPerSeg != nil && p.Window != nil && p.Window.Weights != nil && *p.NPerSeg != len(p.Window.Weights) {
		return invalidf("nperseg=%d must equal the number of window weights (%d); omit nperseg", *p.NPerSeg, len(p.Window.Weights))
	}
	if p.NOverlap != nil && *p.NOverlap >= p.maxNPerSeg() {
		return invalidf("noverlap=%d must be less than nperseg=%d", *p.NOverlap, p.maxNPerSeg())
	}
	if p.NFFT != nil && *p.NFFT < 1 {
		return invalidf("nfft=%d must be a positive integer", *p.NFFT)
	}
	if p.NFFT != nil && *p.NFFT > MaxNFFT {
		return invalidf("nfft=%d is above the limit of %d", *p.NFFT, MaxNFFT)
	}
	if p.NFFT != nil && *p.NFFT > MaxNFFTFactor*p.maxNPerSeg() {
		return invalidf("nfft=%d is above the limit of %d times nperseg=%d", *p.NFFT, MaxNFFTFactor, p.maxNPerSeg())
	}
	if p.Detrend != nil {
		if err := p.Detrend.validate(); err != nil {
			return err
		}
	}
	switch p.Scaling {
	case "", "density", "spectrum":
	default:
		return invalidf("scaling: unknown value %s; use \"density\" or \"spectrum\"", clip.Quote(p.Scaling))
	}
	switch p.Average {
	case "", "mean", "median":
	default:
		return invalidf("average: unknown value %s; use \"mean\" or \"median\"", clip.Quote(p.Average))
	}
	return nil
}

// ValidateFS checks a sampling frequency: finite and positive, as scipy
// requires.
func ValidateFS(fs float64) error {
	if !(fs > 0) || math.IsInf(fs, 0) {
		return invalidf("fs=%v must be a positive, finite sampling frequency", fs)
	}
	return nil
}

// ValidateBand checks a frequency band [lo, hi] for BandPower against the
// sampling frequency fs: 0 <= lo <= hi <= fs/2, all finite.
func ValidateBand(name string, lo, hi, fs float64) error {
	if math.IsNaN(lo) || math.IsNaN(hi) || lo < 0 || hi > fs/2 || lo > hi {
		return invalidf("band %q: [%v, %v] must satisfy 0 <= low <= high <= fs/2 = %v", name, lo, hi, fs/2)
	}
	return nil
}
