package compute

import "golang.org/x/sys/cpu"

// hasAVX reports whether the processor and the operating system support
// AVX: radix4StageAVX then runs the stages.
var hasAVX = cpu.X86.HasAVX

// haveAsm reports whether radix4Stage and loadPairRadix8HalfF32 are
// written in assembly here (SSE2, which every amd64 processor has).
const haveAsm = true

// radix4Stage runs one radix-4 stage of pow2RFFT.laterStages, of quarter
// length q, on every block of 4q points of z, with the twiddles laid out by
// stageTwiddles (tw 16-byte aligned): bit for bit what the Go loop gives.
//
//go:noescape
func radix4Stage(z []complex128, tw []float64, q int)

// loadPairRadix8HalfF32 is loadPairRadix8Half of float32 samples, with the
// window laid out by pairWindow: bit for bit what the Go loop gives.
// len(z) = m, a multiple of 8; len(first) >= m/8; len(x) >= 3m/2;
// len(w) >= 2m.
//
//go:noescape
func loadPairRadix8HalfF32(z []complex128, first []int32, x []float32, w []float64, ma, mb float64)

// pairPowerAdd is pairPowerAddGo for an even len(lo) (len(d) and len(hi)
// at least as long): bit for bit what the Go loop gives.
//
//go:noescape
func pairPowerAdd(d []float64, lo, hi []complex128)

// radix4StageAVX is radix4Stage with AVX, two points an instruction, with
// the twiddles laid out by stageTwiddlesAVX: bit for bit what the Go loop
// gives. It needs AVX (hasAVX).
//
//go:noescape
func radix4StageAVX(z []complex128, tw []float64, q int)

// pairwise8F32 writes into r numpy's eight partial sums of the float32
// values x (len(x) a multiple of 8, at least 8), widened: r[k] = x[k] +
// x[8+k] + ..., in that order.
//
//go:noescape
func pairwise8F32(x []float32, r *[8]float64)

// loadPairRadix8HalfF32AVX is loadPairRadix8HalfF32 with AVX, for m/8 even,
// with the window laid out by pairWindowAVX: bit for bit what the Go loop
// gives. It needs AVX (hasAVX).
//
//go:noescape
func loadPairRadix8HalfF32AVX(z []complex128, first []int32, x []float32, w []float64, ma, mb float64)

// pairPowerAddAVX is pairPowerAdd with AVX for len(lo) a multiple of 4: bit
// for bit what the Go loop gives. It needs AVX (hasAVX).
//
//go:noescape
func pairPowerAddAVX(d []float64, lo, hi []complex128)

// loadPairRadix8HalfF64AVX is loadPairRadix8HalfF32AVX of float64 samples:
// bit for bit what the Go loop gives. It needs AVX (hasAVX).
//
//go:noescape
func loadPairRadix8HalfF64AVX(z []complex128, first []int32, x []float64, w []float64, ma, mb float64)

// loadPairRadix4HalfF32 is loadPairRadix4Half of float32 samples, with the
// window laid out by pairWindow: bit for bit what the Go loop gives.
// len(z) = m, a multiple of 4; len(first) >= m/4; len(x) >= 3m/2;
// len(w) >= 2m.
//
//go:noescape
func loadPairRadix4HalfF32(z []complex128, first []int32, x []float32, w []float64, ma, mb float64)

// loadPairRadix4HalfF32AVX is loadPairRadix4HalfF32 with AVX, for m/4
// even, with the window laid out by pairWindowAVX: bit for bit what the Go
// loop gives. It needs AVX (hasAVX).
//
//go:noescape
func loadPairRadix4HalfF32AVX(z []complex128, first []int32, x []float32, w []float64, ma, mb float64)

// loadPairRadix4HalfF64AVX is loadPairRadix4HalfF32AVX of float64
// samples: bit for bit what the Go loop gives. It needs AVX (hasAVX).
//
//go:noescape
func loadPairRadix4HalfF64AVX(z []complex128, first []int32, x []float64, w []float64, ma, mb float64)
