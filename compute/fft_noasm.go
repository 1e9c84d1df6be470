//go:build !amd64

package compute

// haveStageAsm reports whether radix4Stage is written in assembly here.
const haveStageAsm = false

// radix4Stage is not called where haveStageAsm is false.
func radix4Stage(z []complex128, tw []float64, q int) {
	panic("compute: radix4Stage without assembly")
}
