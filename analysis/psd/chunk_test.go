package psd

import (
	"testing"

	"github.com/flightbatch/flightbatch/compute"
)

// TestChunkRows: a result batch holds at most psdChunkRows rows and, for
// large FFTs, at most psdChunkBytes of freqs and psd, but never no row.
func TestChunkRows(t *testing.T) {
	n := func(v int) *int { return &v }
	cases := []struct {
		name string
		p    compute.WelchParams
	}{
		{"default", compute.WelchParams{}},
		{"nperseg-2^16", compute.WelchParams{NPerSeg: n(1 << 16)}},
		{"nfft-max", compute.WelchParams{NPerSeg: n(1 << 14), NFFT: n(compute.MaxNFFT)}},
		{"nperseg-max", compute.WelchParams{NPerSeg: n(compute.MaxNPerSeg)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows := chunkRows(c.p)
			bytes := rows * 16 * int64(c.p.MaxFreqs())
			if rows < 1 || rows > psdChunkRows || (rows > 1 && bytes > psdChunkBytes) {
				t.Fatalf("%d rows of %d freqs: %d bytes", rows, c.p.MaxFreqs(), bytes)
			}
			if want := min(psdChunkRows, max(1, psdChunkBytes/(16*int64(c.p.MaxFreqs())))); rows != want {
				t.Fatalf("%d rows, want %d", rows, want)
			}
		})
	}
}
