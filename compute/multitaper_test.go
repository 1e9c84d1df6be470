package compute

import (
	"math"
	"testing"
)

// concentration is the definition of a taper's concentration ratio: the
// quadratic form vᵀAv with A[i][j] = sin(2πW(i-j))/(π(i-j)), A[i][i] = 2W,
// computed directly in O(m²).
func concentration(v []float64, w float64) float64 {
	var s float64
	for i := range v {
		for j := range v {
			a := 2 * w
			if i != j {
				d := float64(i - j)
				a = math.Sin(2*math.Pi*w*d) / (math.Pi * d)
			}
			s += v[i] * a * v[j]
		}
	}
	return s
}

// TestDPSSDefinition checks the tapers and ratios of DPSS against the
// definition: the sym tapers are orthonormal, each ratio equals the
// concentration quadratic form of its taper (which the tapers maximize in
// turn, so the ratios decrease and lie in (0, 1)), and the periodic tapers are
// the m+1 tapers truncated.
func TestDPSSDefinition(t *testing.T) {
	cases := []struct {
		m  int
		nw float64
		k  int
	}{
		{16, 2, 4}, {101, 4, 8}, {256, 3.5, 7}, {500, 2.5, 5}, {600, 8, 16}, {7, 1, 2},
	}
	for _, c := range cases {
		tapers, ratios := DPSS(c.m, c.nw, c.k, true)
		w := c.nw / float64(c.m)
		for a := range tapers {
			for b := range tapers {
				var dot float64
				for i := range tapers[a] {
					dot += tapers[a][i] * tapers[b][i]
				}
				want := 0.0
				if a == b {
					want = 1
				}
				if math.Abs(dot-want) > 1e-12 {
					t.Errorf("m=%d nw=%v: <taper %d, taper %d> = %v, want %v", c.m, c.nw, a, b, dot, want)
				}
			}
			ref := concentration(tapers[a], w)
			if math.Abs(ratios[a]-ref) > 1e-12 {
				t.Errorf("m=%d nw=%v: ratio %d = %.17g, the definition gives %.17g", c.m, c.nw, a, ratios[a], ref)
			}
			if !(ratios[a] > 0 && ratios[a] < 1+1e-12) || a > 0 && ratios[a] > ratios[a-1]+1e-12 {
				t.Errorf("m=%d nw=%v: ratios %v are not decreasing in (0, 1)", c.m, c.nw, ratios)
			}
		}
		// Perturbing a taper within the span of the later ones must not raise
		// its concentration: it is the maximizer orthogonal to the earlier ones.
		if len(tapers) > 1 {
			v := append([]float64(nil), tapers[0]...)
			for i := range v {
				v[i] = 0.999*v[i] + math.Sqrt(1-0.999*0.999)*tapers[1][i]
			}
			if got := concentration(v, w); got > ratios[0]+1e-12 {
				t.Errorf("m=%d nw=%v: a mix of tapers 0 and 1 concentrates %v > %v", c.m, c.nw, got, ratios[0])
			}
		}
		periodic, pr := DPSS(c.m-1, c.nw, c.k, false)
		for a := range periodic {
			if len(periodic[a]) != c.m-1 || math.Abs(pr[a]-ratios[a]) > 1e-12 {
				t.Fatalf("m=%d: periodic taper %d has %d samples, ratio %v; want %d and %v", c.m-1, a, len(periodic[a]), pr[a], c.m-1, ratios[a])
			}
			var dot float64
			for i := range periodic[a] {
				dot += periodic[a][i] * tapers[a][i]
			}
			if math.Abs(math.Abs(dot)-(1-tapers[a][c.m-1]*tapers[a][c.m-1])) > 1e-12 {
				t.Errorf("m=%d: periodic taper %d is not the truncated symmetric one", c.m-1, a)
			}
		}
	}
}

// TestDPSSWindowIsFirstTaper checks the dpss window of get_window, periodic
// and symmetric, against the tapers: it is the first taper of DPSS with the
// same symmetry, with a positive sum, and its concentration (the quadratic
// form of the definition) is DPSS's first ratio, the largest any sequence of
// its length reaches.
func TestDPSSWindowIsFirstTaper(t *testing.T) {
	for _, m := range []int{32, 255, 1024} {
		for _, sym := range []bool{false, true} {
			name := "dpss"
			if sym {
				name = "dpss_symmetric"
			}
			win := makeWindow(&Window{Name: name, Args: []float64{3}}, m)
			tapers, ratios := DPSS(m, 3, 2, sym)
			var sum, norm float64
			for _, v := range win {
				sum += v
				norm += v * v
			}
			if !(sum > 0) || len(win) != m {
				t.Fatalf("m=%d %s: %d samples with sum %v, want %d with a positive sum", m, name, len(win), sum, m)
			}
			s := tapers[0][m/2] / win[m/2]
			for i := range win {
				if math.Abs(tapers[0][i]-s*win[i]) > 1e-12 {
					t.Fatalf("m=%d %s: sample %d: %v, the first taper gives %v", m, name, i, s*win[i], tapers[0][i])
				}
			}
			if !sym {
				continue
			}
			unit := make([]float64, m)
			for i, v := range win {
				unit[i] = v / math.Sqrt(norm)
			}
			if got := concentration(unit, 3/float64(m)); math.Abs(got-ratios[0]) > 1e-12 || got <= ratios[1] {
				t.Errorf("m=%d: the window concentrates %v; DPSS's ratios are %v", m, got, ratios)
			}
		}
	}
}
