package compute

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flightbatch/flightbatch/internal/buildbits"
)

// TestBitsAcrossBuilds compares the bits of this package's results between
// two builds of it, e.g. GOAMD64=v1 and GOAMD64=v3 (see package buildbits):
// one digest per case (Welch over every window and FFT path, float32 and
// float64 samples, multitaper, DPSS). scripts/test.sh runs the pair; without
// FLIGHTBATCH_BITS_OUT or FLIGHTBATCH_BITS_WANT the test is skipped.
func TestBitsAcrossBuilds(t *testing.T) {
	buildbits.Compare(t, "compute", bitsDigests)
}

// bitsDigests computes the results TestBitsAcrossBuilds compares. The
// samples are made from integers only (exact in float64 and float32), so
// that they are the same whatever the build.
func bitsDigests(t testing.TB) []buildbits.Digest {
	var ds []buildbits.Digest
	add := func(name string, vs ...[]float64) {
		ds = append(ds, buildbits.Hash(name, func(h hash.Hash) {
			var b [8]byte
			for _, v := range vs {
				for _, x := range v {
					binary.LittleEndian.PutUint64(b[:], math.Float64bits(x))
					h.Write(b[:])
				}
			}
		}))
	}
	samples := func(n int, seed uint64) ([]float64, []float32) {
		r := rand.New(rand.NewPCG(seed, 7))
		x64, x32 := make([]float64, n), make([]float32, n)
		for i := range x64 {
			v := float32(int32(r.Uint32()>>12)-1<<19) * 0x1p-9 // 20 bits: exact in float32
			x32[i], x64[i] = 300+v, 300+float64(v)
		}
		return x64, x32
	}
	welch := func(name string, p WelchParams, n int, seed uint64) {
		x64, x32 := samples(n, seed)
		pl, err := NewPlan(p, n)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ctx := context.Background()
		p64, err := pl.PSDContext(ctx, nil, x64, 250)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p32, err := pl.PSDFloat32Context(ctx, nil, x32, 250)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		add("welch/"+name, pl.Window(), pl.Freqs(nil, 250), p64, p32, pl.SegmentTimes(nil, 250))
	}
	lin, none := DetrendLinear, DetrendNone
	for _, nps := range []int{4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 1 << 15, 1 << 16,
		6, 100, 144, 200, 250, 375, 500, 1000, 2 * 37, 127, 1001} {
		n := 3*nps + nps/2 + 5
		s := itoa(nps)
		welch(s, WelchParams{NPerSeg: ptr(nps)}, n, uint64(nps))
		welch(s+"/even", WelchParams{NPerSeg: ptr(nps)}, 4*nps, uint64(nps))
		welch(s+"/linear", WelchParams{NPerSeg: ptr(nps), Detrend: &lin}, n, uint64(nps))
		welch(s+"/none", WelchParams{NPerSeg: ptr(nps), Detrend: &none}, n, uint64(nps))
		welch(s+"/median", WelchParams{NPerSeg: ptr(nps), Average: "median"}, n, uint64(nps))
		welch(s+"/spectrum/quarter", WelchParams{NPerSeg: ptr(nps), NOverlap: ptr(nps / 4), Scaling: "spectrum"}, n, uint64(nps))
		welch(s+"/nfft", WelchParams{NPerSeg: ptr(nps), NFFT: ptr(2*nps + 6)}, n, uint64(nps))
		welch(s+"/twosided", WelchParams{NPerSeg: ptr(nps), ReturnOnesided: ptr(false)}, n, uint64(nps))
	}
	for _, name := range SupportedWindows() {
		// chebwin is left out: its weights come from gonum's FFT and
		// math.Acos and math.Acosh, Go code that the compiler fuses at
		// GOAMD64=v3 and above, so their last bits depend on the build.
		if canonicalWindow[name] != name || name == "chebwin" {
			continue
		}
		w := Window{Name: name}
		switch r := windowArgs[name]; {
		case name == "dpss":
			w.Args = []float64{2.5}
		case name == "general_gaussian":
			w.Args = []float64{1.5, 10}
		case name == "general_cosine":
			w.Args = []float64{0.5, 0.3, 0.2}
		case r.min > 0:
			w.Args = []float64{7}
		}
		for _, nps := range []int{64, 100, 101} {
			welch("window/"+name+"/"+itoa(nps), WelchParams{NPerSeg: ptr(nps), Window: &w}, 5*nps, uint64(nps))
			sym := w
			sym.Name += "_symmetric"
			welch("window/"+sym.Name+"/"+itoa(nps), WelchParams{NPerSeg: ptr(nps), Window: &sym}, 5*nps, uint64(nps))
		}
	}
	bw := 3.0
	for _, n := range []int{256, 1000, 1001, 2500} {
		x, _ := samples(n, uint64(n))
		for _, p := range []MultitaperParams{
			{LowBias: true},
			{Full: true},
			{Bandwidth: &bw, LowBias: true, Adaptive: true, StopHi: 125},
		} {
			psd, err := Multitaper(nil, x, 250, p, nil)
			if err != nil {
				t.Fatalf("multitaper n=%d: %v", n, err)
			}
			add(fmt.Sprintf("multitaper/%d/bw%v/lowbias%v/full%v/adaptive%v", n, p.Bandwidth != nil, p.LowBias, p.Full, p.Adaptive), psd)
		}
		tapers, ratios := DPSS(n, 3.5, 6, true)
		add("dpss/"+itoa(n), append(tapers, ratios)...)
	}
	f, _ := samples(300, 1)
	p, _ := samples(300, 2)
	for i := range f {
		f[i] = float64(i) * 0.25
	}
	add("bandpower", []float64{BandPower(f, p, 13, 30), BandPower(f, p, 0, 75)})
	return ds
}
