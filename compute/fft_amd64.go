package compute

// haveStageAsm reports whether radix4Stage is written in assembly here
// (SSE2, which every amd64 processor has).
const haveStageAsm = true

// radix4Stage runs one radix-4 stage of pow2RFFT.laterStages, of quarter
// length q, on every block of 4q points of z, with the twiddles laid out by
// stageTwiddles (tw 16-byte aligned): bit for bit what the Go loop gives.
//
//go:noescape
func radix4Stage(z []complex128, tw []float64, q int)
