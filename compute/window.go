package compute

import (
	"math"
	"sort"
	"strings"

	"gonum.org/v1/gonum/dsp/fourier"

	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/internal/trig"
)

// As in fft.go, each product that feeds a sum is converted, float64(a*b)
// (halvings x/2, exact, too), so that no GOAMD64 level fuses it into a
// multiply-add.

// canonicalWindow maps every window name scipy.signal.get_window accepts
// (and that this package supports) to its canonical name.
var canonicalWindow = map[string]string{}

// argRange is the allowed number of a window's parameters, min to max.
type argRange struct{ min, max int }

// windowArgs gives, per canonical name, the allowed number of parameters.
var windowArgs = map[string]argRange{
	"barthann": {0, 0}, "bartlett": {0, 0}, "blackman": {0, 0}, "blackmanharris": {0, 0}, "dpss": {1, 1},
	"bohman": {0, 0}, "boxcar": {0, 0}, "chebwin": {1, 1}, "cosine": {0, 0},
	"exponential": {0, 2}, "flattop": {0, 0}, "gaussian": {1, 1}, "general_cosine": {1, MaxCosineTerms},
	"general_gaussian": {2, 2}, "general_hamming": {1, 1}, "hamming": {0, 0}, "hann": {0, 0},
	"kaiser": {1, 1}, "lanczos": {0, 0}, "nuttall": {0, 0}, "parzen": {0, 0},
	"taylor": {0, 3}, "triang": {0, 0}, "tukey": {0, 1},
}

func init() {
	aliases := map[string][]string{
		"barthann":         {"brthan", "bth"},
		"bartlett":         {"bart", "brt"},
		"blackman":         {"black", "blk"},
		"blackmanharris":   {"blackharr", "bkh"},
		"bohman":           {"bman", "bmn"},
		"boxcar":           {"box", "ones", "rect", "rectangular"},
		"chebwin":          {"cheb"},
		"cosine":           {"halfcosine"},
		"dpss":             {},
		"exponential":      {"poisson"},
		"flattop":          {"flat", "flt"},
		"gaussian":         {"gauss", "gss"},
		"general_cosine":   {"general cosine"},
		"general_gaussian": {"general gaussian", "general gauss", "general_gauss", "ggs"},
		"general_hamming":  {"general hamming"},
		"hamming":          {"hamm", "ham"},
		"hann":             {"han", "hanning"}, // "hanning" is numpy's name; scipy >= 1.13 rejects it
		"kaiser":           {"ksr"},
		"lanczos":          {"sinc"},
		"nuttall":          {"nutl", "nut"},
		"parzen":           {"parz", "par"},
		"taylor":           {"taylorwin"},
		"triang":           {"triangle", "tri"},
		"tukey":            {"tuk"},
	}
	for c, as := range aliases {
		canonicalWindow[c] = c
		for _, a := range as {
			canonicalWindow[a] = c
		}
	}
}

// SupportedWindows lists the window names (with aliases) that Window.Name
// accepts, sorted. Each may carry a "_periodic" or "_symmetric" suffix.
func SupportedWindows() []string {
	names := make([]string, 0, len(canonicalWindow))
	for n := range canonicalWindow {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// splitWindowName strips scipy's "_symmetric"/"_periodic" suffix and reports
// whether the window is symmetric.
func splitWindowName(name string) (base string, sym bool) {
	if b, ok := strings.CutSuffix(name, "_symmetric"); ok {
		return b, true
	}
	if b, ok := strings.CutSuffix(name, "_periodic"); ok {
		return b, false
	}
	return name, false
}

func (w *Window) validate() error {
	if w.Weights != nil {
		if w.Name != "" || len(w.Args) > 0 {
			return invalidf("window: give either a name (with args) or weights, not both")
		}
		if len(w.Weights) == 0 {
			return invalidf("window: weights must not be empty")
		}
		return nil
	}
	if w.Name == "" {
		return invalidf("window: empty name; use one of %s, or an array of weights", strings.Join(SupportedWindows(), ", "))
	}
	base, sym := splitWindowName(w.Name)
	c, ok := canonicalWindow[base]
	if !ok {
		if base == "kaiser_bessel_derived" || base == "kaiser bessel derived" || base == "kbd" {
			return invalidf("window: %s is not supported; use one of %s, or an array of weights", clip.Quote(w.Name), strings.Join(SupportedWindows(), ", "))
		}
		return invalidf("window: unknown name %s; use one of %s, or an array of weights", clip.Quote(w.Name), strings.Join(SupportedWindows(), ", "))
	}
	r := windowArgs[c]
	if len(w.Args) < r.min || len(w.Args) > r.max {
		if r.max == 0 {
			return invalidf("window: %q takes no parameters, got %d", w.Name, len(w.Args))
		}
		if r.min == r.max {
			return invalidf("window: %q needs %d parameter(s), got %d: pass [%q, ...]", w.Name, r.min, len(w.Args), w.Name)
		}
		return invalidf("window: %q takes %d to %d parameters, got %d", w.Name, r.min, r.max, len(w.Args))
	}
	for i, a := range w.Args {
		if math.IsNaN(a) && !(c == "exponential" && i == 0) {
			return invalidf("window: parameter %d of %q must be a number", i+1, w.Name)
		}
		if math.IsInf(a, 0) {
			return invalidf("window: parameter %d of %q must be finite", i+1, w.Name)
		}
	}
	switch c {
	case "taylor":
		if len(w.Args) > 0 && (w.Args[0] != math.Trunc(w.Args[0]) || w.Args[0] < 1) {
			return invalidf("window: taylor's nbar must be a positive integer, got %v", w.Args[0])
		}
	case "dpss":
		if !(w.Args[0] > 0) {
			return invalidf("window: dpss's NW must be positive, got %v", w.Args[0])
		}
	case "exponential":
		if sym && len(w.Args) > 0 && !math.IsNaN(w.Args[0]) {
			return invalidf("window: %q: center must be null for a symmetric window", w.Name)
		}
	}
	return nil
}

// checkWindowLength makes the checks of w that depend on the window length m.
func checkWindowLength(w *Window, m int) error {
	if w.Weights != nil || m <= 1 {
		return nil
	}
	base, _ := splitWindowName(w.Name)
	if canonicalWindow[base] == "dpss" && w.Args[0] >= float64(m)/2 {
		return invalidf("window: dpss's NW=%v must be less than nperseg/2 = %v", w.Args[0], float64(m)/2)
	}
	return nil
}

// makeWindow returns the window of m points described by w (validated).
func makeWindow(w *Window, m int) []float64 {
	if w.Weights != nil {
		return append([]float64(nil), w.Weights...)
	}
	base, sym := splitWindowName(w.Name)
	c := canonicalWindow[base]
	if m <= 1 {
		out := make([]float64, m)
		for i := range out {
			out[i] = 1
		}
		return out
	}
	mm := m
	if !sym {
		mm = m + 1 // scipy's _extend: compute m+1 symmetric points, drop the last
	}
	a := w.Args
	arg := func(i int, def float64) float64 {
		if i < len(a) {
			return a[i]
		}
		return def
	}
	var out []float64
	switch c {
	case "boxcar":
		out = make([]float64, mm)
		for i := range out {
			out[i] = 1
		}
	case "hann":
		out = generalCosine(mm, []float64{0.5, 0.5})
	case "hamming":
		out = generalCosine(mm, []float64{0.54, 1 - 0.54})
	case "general_hamming":
		out = generalCosine(mm, []float64{a[0], 1 - a[0]})
	case "general_cosine":
		out = generalCosine(mm, a)
	case "blackman":
		out = generalCosine(mm, []float64{0.42, 0.50, 0.08})
	case "nuttall":
		out = generalCosine(mm, []float64{0.3635819, 0.4891775, 0.1365995, 0.0106411})
	case "blackmanharris":
		out = generalCosine(mm, []float64{0.35875, 0.48829, 0.14128, 0.01168})
	case "flattop":
		out = generalCosine(mm, []float64{0.21557895, 0.41663158, 0.277263158, 0.083578947, 0.006947368})
	case "triang":
		out = triang(mm)
	case "parzen":
		out = parzen(mm)
	case "bohman":
		out = bohman(mm)
	case "bartlett":
		out = bartlett(mm)
	case "tukey":
		alpha := arg(0, 0.5)
		if alpha <= 0 {
			out = make([]float64, m)
			for i := range out {
				out[i] = 1
			}
			return out
		}
		if alpha >= 1 {
			out = generalCosine(mm, []float64{0.5, 0.5})
		} else {
			out = tukey(mm, alpha)
		}
	case "barthann":
		out = make([]float64, mm)
		for i := range out {
			fac := math.Abs(float64(i)/(float64(mm)-1) - 0.5)
			out[i] = 0.62 - float64(0.48*fac) + float64(0.38*trig.Cos(2*math.Pi*fac))
		}
	case "kaiser":
		out = kaiser(mm, a[0])
	case "gaussian":
		out = make([]float64, mm)
		sig2 := 2 * a[0] * a[0]
		for i := range out {
			n := float64(i) - (float64(mm)-1)/2
			out[i] = math.Exp(-(n * n) / sig2)
		}
	case "general_gaussian":
		out = make([]float64, mm)
		p, sig := a[0], a[1]
		for i := range out {
			n := float64(i) - (float64(mm)-1)/2
			out[i] = math.Exp(-0.5 * math.Pow(math.Abs(n/sig), 2*p))
		}
	case "cosine":
		out = make([]float64, mm)
		for i := range out {
			out[i] = trig.Sin(math.Pi / float64(mm) * (float64(i) + 0.5))
		}
	case "exponential":
		center := arg(0, math.NaN())
		if math.IsNaN(center) {
			center = float64(mm-1) / 2
		}
		tau := arg(1, 1)
		out = make([]float64, mm)
		for i := range out {
			out[i] = math.Exp(-math.Abs(float64(i)-center) / tau)
		}
	case "taylor":
		out = taylor(mm, int(arg(0, 4)), arg(1, 30))
	case "lanczos":
		out = lanczos(mm)
	case "chebwin":
		out = chebwin(mm, a[0])
	case "dpss":
		out = dpss(mm, a[0])
	default:
		panic("compute: window " + c + " not implemented")
	}
	if !sym {
		out = out[:m]
	}
	return out
}

// linspace mirrors numpy.linspace(start, stop, num) bit for bit.
func linspace(start, stop float64, num int) []float64 {
	out := make([]float64, num)
	step := (stop - start) / float64(num-1)
	for i := range out {
		out[i] = float64(float64(i)*step) + start
	}
	out[num-1] = stop
	return out
}

func generalCosine(m int, a []float64) []float64 {
	fac := linspace(-math.Pi, math.Pi, m)
	w := make([]float64, m)
	for k, ak := range a {
		for i := range w {
			w[i] += float64(ak * trig.Cos(float64(k)*fac[i]))
		}
	}
	return w
}

func triang(m int) []float64 {
	h := (m + 1) / 2
	w := make([]float64, m)
	for i := 0; i < h; i++ {
		n := float64(i + 1)
		var v float64
		if m%2 == 0 {
			v = (2*n - 1) / float64(m)
		} else {
			v = 2 * n / (float64(m) + 1)
		}
		w[i] = v
		w[m-1-i] = v
	}
	return w
}

func parzen(m int) []float64 {
	w := make([]float64, m)
	fm := float64(m)
	for i := range w {
		n := math.Abs(float64(-(fm-1)/2) + float64(i))
		if n <= (fm-1)/4 {
			r := n / (fm / 2)
			w[i] = 1 - float64(6*math.Pow(r, 2)) + float64(6*math.Pow(r, 3))
		} else {
			w[i] = 2 * math.Pow(1-n/(fm/2), 3)
		}
	}
	return w
}

func bohman(m int) []float64 {
	fac := linspace(-1, 1, m)
	w := make([]float64, m)
	for i := 1; i < m-1; i++ {
		f := math.Abs(fac[i])
		w[i] = float64((1-f)*trig.Cos(math.Pi*f)) + float64(1/math.Pi*trig.Sin(math.Pi*f))
	}
	return w
}

func bartlett(m int) []float64 {
	w := make([]float64, m)
	fm := float64(m)
	for i := range w {
		n := float64(i)
		if n <= (fm-1)/2 {
			w[i] = 2 * n / (fm - 1)
		} else {
			w[i] = 2 - 2*n/(fm-1)
		}
	}
	return w
}

func tukey(m int, alpha float64) []float64 {
	w := make([]float64, m)
	fm := float64(m)
	width := int(math.Floor(alpha * (fm - 1) / 2))
	for i := range w {
		n := float64(i)
		switch {
		case i < width+1:
			w[i] = 0.5 * (1 + trig.Cos(math.Pi*(-1+2*n/alpha/(fm-1))))
		case i >= m-width-1:
			w[i] = 0.5 * (1 + trig.Cos(math.Pi*(-2/alpha+1+2*n/alpha/(fm-1))))
		default:
			w[i] = 1
		}
	}
	return w
}

// besselI0 is the modified Bessel function of the first kind, order 0,
// summed from its power series (all terms positive, so accurate to a few
// ulps wherever it does not overflow).
func besselI0(x float64) float64 {
	q := x * x / 4
	sum, term := 1.0, 1.0
	for k := 1; k < 1000; k++ {
		term *= q / (float64(k) * float64(k))
		sum += float64(term) // a product
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

func kaiser(m int, beta float64) []float64 {
	w := make([]float64, m)
	alpha := (float64(m) - 1) / 2
	d := besselI0(beta)
	for i := range w {
		r := (float64(i) - alpha) / alpha
		w[i] = besselI0(beta*math.Sqrt(1-float64(r*r))) / d
	}
	return w
}

func taylor(m, nbar int, sll float64) []float64 {
	b := math.Pow(10, sll/20)
	a := math.Acosh(b) / math.Pi
	s2 := float64(nbar*nbar) / (float64(a*a) + float64((float64(nbar)-0.5)*(float64(nbar)-0.5)))
	fm := make([]float64, nbar-1)
	for mi := range fm {
		mf := float64(mi + 1)
		m2 := mf * mf
		numer := 1.0
		for j := 1; j < nbar; j++ {
			numer *= 1 - m2/s2/(float64(a*a)+float64((float64(j)-0.5)*(float64(j)-0.5)))
		}
		if mi%2 == 1 {
			numer = -numer
		}
		denom := 2.0
		for j := 1; j < nbar; j++ {
			if j != mi+1 {
				denom *= 1 - m2/float64(j*j)
			}
		}
		fm[mi] = numer / denom
	}
	w := make([]float64, m)
	fM := float64(m)
	for i := range w {
		s := 0.0
		for mi, f := range fm {
			s += float64(f * trig.Cos(2*math.Pi*float64(mi+1)*(float64(i)-fM/2+0.5)/fM))
		}
		w[i] = 1 + 2*s
	}
	// scipy's norm=True scales by a constant, which the PSD scalings cancel.
	return w
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return trig.Sin(math.Pi*x) / (math.Pi * x)
}

func lanczos(m int) []float64 {
	w := make([]float64, m)
	fm := float64(m)
	h := m / 2
	for i := 0; i < h; i++ {
		var v float64
		if m%2 == 0 {
			v = sinc(2*(float64(fm/2)+float64(i))/(fm-1) - 1)
		} else {
			v = sinc(2*(float64((fm+1)/2)+float64(i))/(fm-1) - 1)
		}
		w[m-h+i] = v
		w[h-1-i] = v
	}
	if m%2 == 1 {
		w[h] = 1
	}
	return w
}

func chebwin(m int, at float64) []float64 {
	order := float64(m) - 1
	beta := math.Cosh(1 / order * math.Acosh(math.Pow(10, math.Abs(at)/20)))
	p := make([]complex128, m)
	for k := range p {
		x := beta * trig.Cos(math.Pi*float64(k)/float64(m))
		var v float64
		switch {
		case x > 1:
			v = math.Cosh(order * math.Acosh(x))
		case x < -1:
			v = float64(2*(m%2)-1) * math.Cosh(order*math.Acosh(-x))
		default:
			v = trig.Cos(order * math.Acos(x))
		}
		if m%2 == 0 {
			s, c := trig.Sincos(math.Pi / float64(m) * float64(k))
			p[k] = complex(v*c, v*s)
		} else {
			p[k] = complex(v, 0)
		}
	}
	f := fourier.NewCmplxFFT(m).Coefficients(nil, p)
	w := make([]float64, 0, m)
	if m%2 == 1 {
		n := (m + 1) / 2
		for i := n - 1; i >= 1; i-- {
			w = append(w, real(f[i]))
		}
		for i := 0; i < n; i++ {
			w = append(w, real(f[i]))
		}
	} else {
		n := m/2 + 1
		for i := n - 1; i >= 1; i-- {
			w = append(w, real(f[i]))
		}
		for i := 1; i < n; i++ {
			w = append(w, real(f[i]))
		}
	}
	mx := math.Inf(-1)
	for _, v := range w {
		mx = math.Max(mx, v)
	}
	for i := range w {
		w[i] /= mx
	}
	return w
}

// dpss is the first discrete prolate spheroidal (Slepian) sequence of length
// m with half-bandwidth nw, the first taper of DPSS, returned with a positive
// sum; its scale is irrelevant to the PSD scalings.
func dpss(m int, nw float64) []float64 {
	y := dpssTapers(m, nw, 1)[0]
	if pairwiseSum(y) < 0 {
		for i := range y {
			y[i] = -y[i]
		}
	}
	return y
}
