package compute

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func itoa(n int) string { return strconv.Itoa(n) }

func ptr[T any](v T) *T { return &v }

func randn(n int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]float64, n)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	return x
}

func closeTo(a, b, rtol float64) bool {
	return math.Abs(a-b) <= rtol*math.Max(math.Abs(a), math.Abs(b))
}

func TestWindowsMatchClosedForms(t *testing.T) {
	const m = 64
	fm := float64(m)
	cases := []struct {
		win  Window
		want func(i float64) float64
	}{
		{Window{Name: "hann"}, func(i float64) float64 { return 0.5 - 0.5*math.Cos(2*math.Pi*i/fm) }},
		{Window{Name: "hann_symmetric"}, func(i float64) float64 { return 0.5 - 0.5*math.Cos(2*math.Pi*i/(fm-1)) }},
		{Window{Name: "hamming"}, func(i float64) float64 { return 0.54 - 0.46*math.Cos(2*math.Pi*i/fm) }},
		{Window{Name: "blackman"}, func(i float64) float64 {
			return 0.42 - 0.5*math.Cos(2*math.Pi*i/fm) + 0.08*math.Cos(4*math.Pi*i/fm)
		}},
		{Window{Name: "boxcar"}, func(float64) float64 { return 1 }},
		{Window{Name: "bartlett"}, func(i float64) float64 { return 1 - math.Abs(2*i/fm-1) }},
		{Window{Name: "cosine"}, func(i float64) float64 { return math.Sin(math.Pi * (i + 0.5) / (fm + 1)) }},
		{Window{Name: "tukey", Args: []float64{0}}, func(float64) float64 { return 1 }},
		{Window{Name: "tukey", Args: []float64{1}}, func(i float64) float64 { return 0.5 - 0.5*math.Cos(2*math.Pi*i/fm) }},
		{Window{Name: "kaiser", Args: []float64{0}}, func(float64) float64 { return 1 }},
		{Window{Name: "gaussian", Args: []float64{7}}, func(i float64) float64 {
			d := i - fm/2
			return math.Exp(-d * d / (2 * 49))
		}},
		{Window{Name: "exponential", Args: []float64{math.NaN(), 3}}, func(i float64) float64 { return math.Exp(-math.Abs(i-fm/2) / 3) }},
	}
	for _, c := range cases {
		if err := c.win.validate(); err != nil {
			t.Fatalf("%v: %v", c.win, err)
		}
		w := makeWindow(&c.win, m)
		if len(w) != m {
			t.Fatalf("%v: %d points", c.win, len(w))
		}
		for i, v := range w {
			if want := c.want(float64(i)); math.Abs(v-want) > 1e-14 {
				t.Errorf("%v[%d] = %.17g, want %.17g", c.win, i, v, want)
				break
			}
		}
	}
}

func TestEveryWindowNameBuilds(t *testing.T) {
	for _, name := range SupportedWindows() {
		w := Window{Name: name}
		switch r := windowArgs[canonicalWindow[name]]; {
		case canonicalWindow[name] == "dpss":
			w.Args = []float64{0.4}
		case canonicalWindow[name] == "general_gaussian":
			w.Args = []float64{1.5, 10}
		case r.min > 0:
			w.Args = []float64{60}
		}
		for _, m := range []int{1, 2, 7, 64} {
			pl, err := NewPlan(WelchParams{Window: &w, NPerSeg: ptr(m)}, 100)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for i, v := range pl.Window() {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s m=%d: w[%d] = %g", name, m, i, v)
				}
			}
		}
	}
}

func TestWindowJSON(t *testing.T) {
	cases := []struct {
		in   string
		want Window
		out  string
	}{
		{`"hann"`, Window{Name: "hann"}, `"hann"`},
		{`["tukey", 0.25]`, Window{Name: "tukey", Args: []float64{0.25}}, `["tukey",0.25]`},
		{`["exponential", null, 2]`, Window{Name: "exponential", Args: []float64{math.NaN(), 2}}, `["exponential",null,2]`},
		{`["taylor", 4, 30, false]`, Window{Name: "taylor", Args: []float64{4, 30, 0}}, `["taylor",4,30,0]`},
		{`["general_cosine", [0.5, 0.5]]`, Window{Name: "general_cosine", Args: []float64{0.5, 0.5}}, `["general_cosine",[0.5,0.5]]`},
		{`[0.5, 1, 0.5]`, Window{Weights: []float64{0.5, 1, 0.5}}, `[0.5,1,0.5]`},
		{`{"name": "kaiser", "args": [8]}`, Window{Name: "kaiser", Args: []float64{8}}, `["kaiser",8]`},
	}
	for _, c := range cases {
		var w Window
		if err := json.Unmarshal([]byte(c.in), &w); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if w.Name != c.want.Name || len(w.Args) != len(c.want.Args) || len(w.Weights) != len(c.want.Weights) {
			t.Errorf("%s: got %+v want %+v", c.in, w, c.want)
		}
		b, err := json.Marshal(w)
		if err != nil || string(b) != c.out {
			t.Errorf("%s: marshal %s %v, want %s", c.in, b, err, c.out)
		}
	}
	for _, bad := range []string{`[]`, `3`, `["tukey", "x"]`, `[1, "a"]`, `{"nme": "hann"}`} {
		var w Window
		if err := json.Unmarshal([]byte(bad), &w); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("%s: err %v, want ErrInvalidParams", bad, err)
		}
	}
}

func TestWelchParamsJSON(t *testing.T) {
	var p WelchParams
	in := `{"window": ["tukey", 0.25], "nperseg": 512, "noverlap": 128, "nfft": 1024, "detrend": false, "return_onesided": false, "scaling": "spectrum", "average": "median"}`
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	if *p.NPerSeg != 512 || *p.NOverlap != 128 || *p.NFFT != 1024 || *p.Detrend != DetrendNone || *p.ReturnOnesided || p.Scaling != "spectrum" || p.Average != "median" {
		t.Errorf("decoded %+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Error(err)
	}
	b, _ := json.Marshal(p)
	var q WelchParams
	if err := json.Unmarshal(b, &q); err != nil || *q.Detrend != DetrendNone || q.Window.Args[0] != 0.25 {
		t.Errorf("round trip %s: %+v %v", b, q, err)
	}
	for _, s := range []string{`"false"`, `false`, `"constant"`, `"linear"`} {
		var d Detrend
		if err := json.Unmarshal([]byte(s), &d); err != nil {
			t.Errorf("detrend %s: %v", s, err)
		}
	}
	var d Detrend
	if err := json.Unmarshal([]byte(`"quadratic"`), &d); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("detrend quadratic: %v", err)
	}
}

func TestValidationErrors(t *testing.T) {
	cases := []struct {
		name string
		p    WelchParams
		want string // substring of the message
	}{
		{"unknown window", WelchParams{Window: &Window{Name: "hanning2"}}, "window"},
		{"unsupported kbd", WelchParams{Window: &Window{Name: "kbd", Args: []float64{3}}}, "not supported"},
		{"dpss NW", WelchParams{Window: &Window{Name: "dpss", Args: []float64{0}}}, "NW"},
		{"kaiser needs beta", WelchParams{Window: &Window{Name: "kaiser"}}, "kaiser"},
		{"hann takes none", WelchParams{Window: &Window{Name: "hann", Args: []float64{1}}}, "no parameters"},
		{"empty weights", WelchParams{Window: &Window{Weights: []float64{}}}, "weights"},
		{"weights and nperseg", WelchParams{Window: &Window{Weights: []float64{1, 1}}, NPerSeg: ptr(3)}, "nperseg"},
		{"nperseg zero", WelchParams{NPerSeg: ptr(0)}, "nperseg"},
		{"noverlap too big", WelchParams{NPerSeg: ptr(64), NOverlap: ptr(64)}, "noverlap"},
		{"noverlap default nperseg", WelchParams{NOverlap: ptr(300)}, "noverlap"},
		{"nfft too small", WelchParams{NPerSeg: ptr(64), NFFT: ptr(32)}, "nfft"},
		{"scaling", WelchParams{Scaling: "power"}, "scaling"},
		{"average", WelchParams{Average: "mode"}, "average"},
		{"detrend", WelchParams{Detrend: ptr(Detrend("cubic"))}, "detrend"},
		{"taylor nbar", WelchParams{Window: &Window{Name: "taylor", Args: []float64{2.5}}}, "nbar"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.p.Validate()
			if !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate() = %v, want ErrInvalidParams mentioning %q", err, c.want)
			}
			if _, err := NewPlanner(c.p); !errors.Is(err, ErrInvalidParams) {
				t.Errorf("NewPlanner: %v", err)
			}
		})
	}
	if err := (WelchParams{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestValidateFSAndBand(t *testing.T) {
	for _, fs := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if err := ValidateFS(fs); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("fs=%v: %v", fs, err)
		}
	}
	if err := ValidateFS(250); err != nil {
		t.Error(err)
	}
	bad := [][2]float64{{-1, 10}, {10, 126}, {30, 13}, {math.NaN(), 1}}
	for _, b := range bad {
		if err := ValidateBand("beta", b[0], b[1], 250); !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), "beta") {
			t.Errorf("band %v: %v", b, err)
		}
	}
	if err := ValidateBand("beta", 13, 30, 250); err != nil {
		t.Error(err)
	}
	if err := ValidateBand("all", 0, 125, 250); err != nil {
		t.Error(err)
	}
}

func TestNewPlanFollowsScipyClipping(t *testing.T) {
	pl, err := NewPlan(WelchParams{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if pl.NPerSeg() != 100 || pl.NOverlap() != 50 || pl.NFFT() != 100 || pl.NumFreqs() != 51 || pl.NumSegments() != 1 {
		t.Errorf("clipped plan: nperseg %d noverlap %d nfft %d nfreq %d nseg %d", pl.NPerSeg(), pl.NOverlap(), pl.NFFT(), pl.NumFreqs(), pl.NumSegments())
	}
	// nfft below the default nperseg is fine once nperseg is clipped below it.
	if _, err := NewPlan(WelchParams{NFFT: ptr(128)}, 100); err != nil {
		t.Errorf("nfft 128 for n=100: %v", err)
	}
	if _, err := NewPlan(WelchParams{NFFT: ptr(64)}, 100); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("nfft 64 for n=100: %v", err)
	}
	_, err = NewPlan(WelchParams{Window: &Window{Weights: make([]float64, 16)}}, 10)
	if !errors.Is(err, ErrRecordTooShort) || !errors.Is(err, ErrInvalidParams) {
		t.Errorf("weights longer than record: %v", err)
	}
	empty, err := NewPlan(WelchParams{}, 0)
	if err != nil || empty.NumFreqs() != 0 || len(empty.PSD(nil, nil, 1)) != 0 || len(empty.Freqs(nil, 1)) != 0 {
		t.Errorf("empty record: %v", err)
	}
	pl, _ = NewPlan(WelchParams{NPerSeg: ptr(256), NOverlap: ptr(-44)}, 10000)
	if pl.NumSegments() != (10000-256)/300+1 {
		t.Errorf("negative noverlap: %d segments", pl.NumSegments())
	}
}

func TestFreqs(t *testing.T) {
	pl, _ := NewPlan(WelchParams{NPerSeg: ptr(8)}, 100)
	want := []float64{0, 12.5, 25, 37.5, 50}
	for i, f := range pl.Freqs(nil, 100) {
		if f != want[i] {
			t.Errorf("one-sided %v", pl.Freqs(nil, 100))
		}
	}
	pl, _ = NewPlan(WelchParams{NPerSeg: ptr(5), ReturnOnesided: ptr(false)}, 100)
	want = []float64{0, 20, 40, -40, -20}
	for i, f := range pl.Freqs(nil, 100) {
		if math.Abs(f-want[i]) > 1e-12 {
			t.Errorf("two-sided %v", pl.Freqs(nil, 100))
		}
	}
}

func TestPSDOfSineSpectrum(t *testing.T) {
	// A sine centred on a bin: spectrum scaling gives amplitude²/2 at its
	// frequency for any window (one-sided doubling included).
	fs, n, nperseg := 1000.0, 20000, 1000
	f0, a := 50.0, 3.0
	x := make([]float64, n)
	for i := range x {
		x[i] = a * math.Sin(2*math.Pi*f0*float64(i)/fs)
	}
	for _, win := range []string{"hann", "boxcar", "blackman", "flattop"} {
		pl, err := NewPlan(WelchParams{Window: &Window{Name: win}, NPerSeg: ptr(nperseg), Scaling: "spectrum"}, n)
		if err != nil {
			t.Fatal(err)
		}
		psd := pl.PSD(nil, x, fs)
		k := int(f0 * float64(nperseg) / fs)
		if !closeTo(psd[k], a*a/2, 1e-9) {
			t.Errorf("%s: peak %g, want %g", win, psd[k], a*a/2)
		}
	}
}

func TestPSDParsevalDensity(t *testing.T) {
	// Boxcar, no overlap, no detrending: the integral of the density equals
	// the mean square of the samples used.
	x := randn(4096, 9)
	for _, nfft := range []int{256, 300} {
		pl, err := NewPlan(WelchParams{Window: &Window{Name: "boxcar"}, NPerSeg: ptr(256), NOverlap: ptr(0), NFFT: ptr(nfft), Detrend: ptr(DetrendNone)}, len(x))
		if err != nil {
			t.Fatal(err)
		}
		fs := 200.0
		psd := pl.PSD(nil, x, fs)
		var integral float64
		for _, v := range psd {
			integral += v * fs / float64(nfft)
		}
		var ms float64
		for _, v := range x {
			ms += v * v
		}
		ms /= float64(len(x))
		if !closeTo(integral, ms, 1e-9) {
			t.Errorf("nfft %d: integral %g, mean square %g", nfft, integral, ms)
		}
	}
}

func TestPSDDetrendRemovesTrend(t *testing.T) {
	n := 2048
	x := make([]float64, n)
	for i := range x {
		x[i] = 5 + 0.01*float64(i)
	}
	pl, _ := NewPlan(WelchParams{NPerSeg: ptr(256), Detrend: ptr(DetrendLinear)}, n)
	for _, v := range pl.PSD(nil, x, 1) {
		if v > 1e-20 {
			t.Fatalf("linear trend left power %g", v)
		}
	}
	for i := range x {
		x[i] = 5
	}
	pl, _ = NewPlan(WelchParams{NPerSeg: ptr(256)}, n)
	for _, v := range pl.PSD(nil, x, 1) {
		if v > 1e-20 {
			t.Fatalf("constant left power %g", v)
		}
	}
}

func TestPSDTwoSidedMirrorsOneSided(t *testing.T) {
	x := randn(3000, 11)
	for _, nfft := range []int{256, 257} {
		one, _ := NewPlan(WelchParams{NPerSeg: ptr(200), NFFT: ptr(nfft)}, len(x))
		two, _ := NewPlan(WelchParams{NPerSeg: ptr(200), NFFT: ptr(nfft), ReturnOnesided: ptr(false)}, len(x))
		p1, p2 := one.PSD(nil, x, 10), two.PSD(nil, x, 10)
		if len(p2) != nfft {
			t.Fatalf("two-sided length %d", len(p2))
		}
		for k := 1; k < len(p1); k++ {
			doubled := !(nfft%2 == 0 && k == nfft/2)
			want := p1[k]
			if doubled {
				want /= 2
			}
			if !closeTo(p2[k], want, 1e-12) || !closeTo(p2[nfft-k], want, 1e-12) {
				t.Fatalf("nfft %d bin %d: %g %g, want %g", nfft, k, p2[k], p2[nfft-k], want)
			}
		}
	}
}

func TestPSDMedian(t *testing.T) {
	if medianBias(1) != 1 || medianBias(2) != 1 || !closeTo(medianBias(3), 1+1.0/3-0.5, 1e-15) {
		t.Errorf("median bias %g %g %g", medianBias(1), medianBias(2), medianBias(3))
	}
	x := randn(1000, 12)
	// One segment: median equals mean (scipy does not average nor correct).
	a, _ := NewPlan(WelchParams{NPerSeg: ptr(1000), Average: "median"}, len(x))
	b, _ := NewPlan(WelchParams{NPerSeg: ptr(1000)}, len(x))
	pa, pb := a.PSD(nil, x, 1), b.PSD(nil, x, 1)
	for k := range pa {
		if pa[k] != pb[k] {
			t.Fatalf("single segment median differs at %d", k)
		}
	}
	// Three segments of a signal whose segments' spectra are scaled copies:
	// the median is the middle one divided by the bias.
	seg := randn(100, 13)
	y := make([]float64, 300)
	for s, g := range []float64{1, 3, 2} {
		for i, v := range seg {
			y[s*100+i] = g * v
		}
	}
	m, _ := NewPlan(WelchParams{NPerSeg: ptr(100), NOverlap: ptr(0), Average: "median"}, 300)
	one, _ := NewPlan(WelchParams{NPerSeg: ptr(100)}, 100)
	pm, p1 := m.PSD(nil, y, 1), one.PSD(nil, seg, 1)
	for k := range pm {
		if !closeTo(pm[k], 4*p1[k]/medianBias(3), 1e-12) {
			t.Fatalf("median bin %d: %g want %g", k, pm[k], 4*p1[k]/medianBias(3))
		}
	}
}

func TestMedianMatchesSorting(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for n := 1; n < 300; n++ {
		for _, dup := range []bool{false, true} {
			v := make([]float64, n)
			for i := range v {
				v[i] = rng.ExpFloat64()
				if dup {
					v[i] = float64(rng.IntN(4))
				}
			}
			s := slices.Clone(v)
			slices.Sort(s)
			want := s[n/2]
			if n%2 == 0 {
				want = (s[n/2-1] + s[n/2]) / 2
			}
			if got := median(v); got != want {
				t.Fatalf("n=%d dup=%v: median %g, want %g", n, dup, got, want)
			}
		}
	}
}

func TestPSDNaN(t *testing.T) {
	x := randn(2000, 14)
	x[700] = math.NaN()
	for _, avg := range []string{"mean", "median"} {
		pl, _ := NewPlan(WelchParams{Average: avg}, len(x))
		for k, v := range pl.PSD(nil, x, 1) {
			if !math.IsNaN(v) {
				t.Fatalf("%s: bin %d = %g, want NaN", avg, k, v)
			}
		}
	}
}

func TestPSDDoesNotAllocate(t *testing.T) {
	x := randn(60000, 15)
	for _, p := range []WelchParams{
		{}, {NPerSeg: ptr(1000)}, {Average: "median", Detrend: ptr(DetrendLinear)},
		{NPerSeg: ptr(375)}, {NPerSeg: ptr(254)}, {NPerSeg: ptr(127)}, {NPerSeg: ptr(200), NFFT: ptr(256)},
		{ReturnOnesided: ptr(false), Window: &Window{Name: "dpss", Args: []float64{3}}},
	} {
		pl, _ := NewPlan(p, len(x))
		dst := make([]float64, pl.NumFreqs())
		if a := testing.AllocsPerRun(5, func() { dst = pl.PSD(dst, x, 250) }); a != 0 {
			t.Errorf("%+v: %v allocations per PSD", p, a)
		}
	}
}

func TestPlanner(t *testing.T) {
	pp, err := NewPlanner(WelchParams{NPerSeg: ptr(128)})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := pp.Plan(1000)
	b, _ := pp.Plan(1000)
	c, _ := pp.Plan(50)
	if a != b || a == c || c.NPerSeg() != 50 {
		t.Errorf("planner cache: %p %p %p nperseg %d", a, b, c, c.NPerSeg())
	}
	for n := 1; n <= 2*maxCachedPlans; n++ {
		if _, err := pp.Plan(n); err != nil {
			t.Fatal(err)
		}
	}
	if len(pp.plans) > maxCachedPlans {
		t.Errorf("cache holds %d plans", len(pp.plans))
	}
	pw, _ := NewPlanner(WelchParams{Window: &Window{Weights: []float64{1, 2, 1}}})
	if _, err := pw.Plan(2); !errors.Is(err, ErrRecordTooShort) {
		t.Errorf("short record: %v", err)
	}
}

func TestBandPower(t *testing.T) {
	freqs := []float64{0, 1, 2, 3, 4, 5}
	psd := []float64{0, 2, 4, 6, 8, 10} // psd = 2f
	cases := []struct {
		lo, hi, want float64
	}{
		{0, 5, 25}, {1, 3, 8}, {1.5, 3.5, 5}, {2, 2, 0}, {6, 9, 0}, {-1, 0.5, 0},
	}
	for _, c := range cases {
		if got := BandPower(freqs, psd, c.lo, c.hi); !closeTo(got, c.want, 1e-15) && got != c.want {
			t.Errorf("BandPower(%g, %g) = %g, want %g", c.lo, c.hi, got, c.want)
		}
	}
	// Two-sided order: the selected frequencies are integrated in array order.
	if got := BandPower([]float64{0, 1, -1}, []float64{1, 1, 1}, 0, 1); got != 1 {
		t.Errorf("two-sided band power %g", got)
	}
}

func BenchmarkPSD(b *testing.B) {
	x := randn(60000, 16)
	for _, c := range []struct {
		name string
		p    WelchParams
	}{
		{"nperseg=256", WelchParams{NPerSeg: ptr(256)}},
		{"nperseg=512", WelchParams{NPerSeg: ptr(512)}},
		{"nperseg=1024", WelchParams{NPerSeg: ptr(1024)}},
		{"nperseg=4096", WelchParams{NPerSeg: ptr(4096)}},
		{"nperseg=500", WelchParams{NPerSeg: ptr(500)}},
		{"nperseg=256/median", WelchParams{NPerSeg: ptr(256), Average: "median"}},
		{"nperseg=256/linear", WelchParams{NPerSeg: ptr(256), Detrend: ptr(DetrendLinear)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			pl, err := NewPlan(c.p, len(x))
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]float64, pl.NumFreqs())
			b.SetBytes(int64(8 * len(x)))
			c0 := cpuTime()
			for b.Loop() {
				dst = pl.PSD(dst, x, 250)
			}
			b.ReportMetric(float64(len(x)*b.N)/b.Elapsed().Seconds()/1e6, "Msamples/s")
			reportCPU(b, c0, len(x))
		})
	}
}

// BenchmarkPSDFloat32 is the psd job's kernel: float32 records of 7,500
// samples, nperseg 512, noverlap 256 (hann, constant detrending, density,
// mean).
func BenchmarkPSDFloat32(b *testing.B) { benchPSDFloat32(b, 512) }

// BenchmarkPSDFloat32NPerSeg256 is BenchmarkPSDFloat32 at the psd default,
// nperseg 256, noverlap 128: segments with a radix-4 first stage.
func BenchmarkPSDFloat32NPerSeg256(b *testing.B) { benchPSDFloat32(b, 256) }

// benchPSDFloat32 times PSDFloat32Context on float32 records of 7,500
// samples, nperseg nps, noverlap nps/2.
func benchPSDFloat32(b *testing.B, nps int) {
	const n, records = 7500, 16
	xs := make([][]float32, records)
	for r := range xs {
		xs[r] = make([]float32, n)
		for i, v := range randn(n, uint64(20+r)) {
			xs[r][i] = float32(v)
		}
	}
	pl, err := NewPlan(WelchParams{NPerSeg: ptr(nps), NOverlap: ptr(nps / 2)}, n)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float64, pl.NumFreqs())
	ctx := context.Background()
	b.SetBytes(4 * n)
	i, c0 := 0, cpuTime()
	for b.Loop() {
		dst, _ = pl.PSDFloat32Context(ctx, dst, xs[i%records], 250)
		i++
	}
	b.ReportMetric(float64(n*i)/b.Elapsed().Seconds()/1e6, "Msamples/s")
	reportCPU(b, c0, n)
}

// reportCPU reports the throughput per CPU second since c0 (the loop's
// goroutine is the only busy one, so on a shared machine this is steadier
// than the wall-clock rate).
func reportCPU(b *testing.B, c0 time.Duration, samples int) {
	if d := cpuTime() - c0; d > 0 {
		b.ReportMetric(float64(samples*b.N)/d.Seconds()/1e6, "Msamples/cpu-s")
	}
}

// TestPairwiseSumEqualsNumpy: pairwiseSum gives, bit for bit, numpy's
// pairwise summation (pairwiseRef, numpy's pairwise_sum written plainly)
// for every length to 600, of float64 and float32 values with an offset.
func TestPairwiseSumEqualsNumpy(t *testing.T) {
	x := randn(600, 41)
	x32 := make([]float32, len(x))
	for i, v := range x {
		x[i] = 1e4 + v
		x32[i] = float32(x[i])
	}
	for n := range len(x) + 1 {
		if got, want := pairwiseSum(x[:n]), pairwiseRef(x[:n]); math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("float64, n=%d: %v, numpy's %v", n, got, want)
		}
		if got, want := pairwiseSum(x32[:n]), pairwiseRef(widen(x32[:n])); math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("float32, n=%d: %v, numpy's %v", n, got, want)
		}
	}
}

// pairwiseRef is numpy's pairwise_sum (numpy/_core/src/umath/loops_utils.h.src).
func pairwiseRef(a []float64) float64 {
	n := len(a)
	if n < 8 {
		res := 0.0
		for _, v := range a {
			res += v
		}
		return res
	}
	if n <= 128 {
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for k := range r {
				r[k] += a[i+k]
			}
		}
		res := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			res += a[i]
		}
		return res
	}
	n2 := n / 2
	n2 -= n2 % 8
	return pairwiseRef(a[:n2]) + pairwiseRef(a[n2:])
}
