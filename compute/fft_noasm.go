//go:build !amd64

package compute

// haveAsm reports whether radix4Stage and loadPairRadix8HalfF32 are
// written in assembly here.
const haveAsm = false

// hasAVX reports whether radix4StageAVX can run here.
const hasAVX = false

// radix4StageAVX is not called where haveAsm is false.
func radix4StageAVX(z []complex128, tw []float64, q int) {
	panic("compute: radix4StageAVX without assembly")
}

// radix4Stage is not called where haveAsm is false.
func radix4Stage(z []complex128, tw []float64, q int) {
	panic("compute: radix4Stage without assembly")
}

// loadPairRadix8HalfF32 is not called where haveAsm is false.
func loadPairRadix8HalfF32(z []complex128, first []int32, x []float32, w []float64, ma, mb float64) {
	panic("compute: loadPairRadix8HalfF32 without assembly")
}

// pairPowerAdd is not called where haveAsm is false.
func pairPowerAdd(d []float64, lo, hi []complex128) {
	panic("compute: pairPowerAdd without assembly")
}

// pairwise8F32 is not called where haveAsm is false.
func pairwise8F32(x []float32, r *[8]float64) {
	panic("compute: pairwise8F32 without assembly")
}

// loadPairRadix8HalfF32AVX is not called where haveAsm is false.
func loadPairRadix8HalfF32AVX(z []complex128, first []int32, x []float32, w []float64, ma, mb float64) {
	panic("compute: loadPairRadix8HalfF32AVX without assembly")
}

// pairPowerAddAVX is not called where haveAsm is false.
func pairPowerAddAVX(d []float64, lo, hi []complex128) {
	panic("compute: pairPowerAddAVX without assembly")
}

// loadPairRadix8HalfF64AVX is not called where haveAsm is false.
func loadPairRadix8HalfF64AVX(z []complex128, first []int32, x []float64, w []float64, ma, mb float64) {
	panic("compute: loadPairRadix8HalfF64AVX without assembly")
}

// loadPairRadix4HalfF32 is not called where haveAsm is false.
func loadPairRadix4HalfF32(z []complex128, first []int32, x []float32, w []float64, ma, mb float64) {
	panic("compute: loadPairRadix4HalfF32 without assembly")
}

// loadPairRadix4HalfF32AVX is not called where haveAsm is false.
func loadPairRadix4HalfF32AVX(z []complex128, first []int32, x []float32, w []float64, ma, mb float64) {
	panic("compute: loadPairRadix4HalfF32AVX without assembly")
}

// loadPairRadix4HalfF64AVX is not called where haveAsm is false.
func loadPairRadix4HalfF64AVX(z []complex128, first []int32, x []float64, w []float64, ma, mb float64) {
	panic("compute: loadPairRadix4HalfF64AVX without assembly")
}
