// Package trig is math.Sincos, math.Sin and math.Cos without fused
// multiply-adds, for the results that must be the same bits whatever the
// binary is built for: compute's FFT twiddles, windows and tapers, and the
// synthetic demo dataset.
//
// math's sine and cosine are Go code, and a binary built with GOAMD64=v3 or
// above fuses their polynomials into multiply-adds, which changes the last
// bits of some values. Sincos is math.Sincos (Go's sin.go and sincos.go,
// from the Cephes library; BSD-style license, Copyright 2010 The Go Authors)
// with each product rounded on its own (an explicit float64 conversion), so
// it gives math.Sincos's bits as built without fusion (GOAMD64=v1 and v2),
// whatever the build.
package trig

import "math"

// Sincos's coefficients, as math's _sin and _cos.
var (
	sinCoef = [...]float64{
		1.58962301576546568060e-10, // 0x3de5d8fd1fd19ccd
		-2.50507477628578072866e-8, // 0xbe5ae5e5a9291f5d
		2.75573136213857245213e-6,  // 0x3ec71de3567d48a1
		-1.98412698295895385996e-4, // 0xbf2a01a019bfdf03
		8.33333333332211858878e-3,  // 0x3f8111111110f7d0
		-1.66666666666666307295e-1, // 0xbfc5555555555548
	}
	cosCoef = [...]float64{
		-1.13585365213876817300e-11, // 0xbda8fa49a0861a9b
		2.08757008419747316778e-9,   // 0x3e21ee9d7b4e3f05
		-2.75573141792967388112e-7,  // 0xbe927e4f7eac4bc6
		2.48015872888517045348e-5,   // 0x3efa01a019c844f5
		-1.38888888888730564116e-3,  // 0xbf56c16c16c14f91
		4.16666666666665929218e-2,   // 0x3fa555555555554b
	}
)

// reduceThreshold is math's reduceThreshold: beyond it math reduces the
// argument with Payne and Hanek's method, which Sincos leaves to math (no
// argument of compute's or the demo's comes near it).
const reduceThreshold = 1 << 29

// reduce returns the octant j (0, 2, 4 or 6) of x, 0 < x < reduceThreshold,
// and x - j·Pi/4, as math's sin.go and sincos.go do.
func reduce(x float64) (j uint64, z float64) {
	const (
		pi4A = 7.85398125648498535156e-1  // 0x3fe921fb40000000, Pi/4 split into three parts
		pi4B = 3.77489470793079817668e-8  // 0x3e64442d00000000,
		pi4C = 2.69515142907905952645e-15 // 0x3ce8469898cc5170,
	)
	j = uint64(x * (4 / math.Pi)) // integer part of x/(Pi/4)
	y := float64(j)
	if j&1 == 1 { // map zeros to origin
		j++
		y++
	}
	j &= 7 // octant modulo 2Pi radians
	// Extended precision modular arithmetic.
	return j, ((x - float64(y*pi4A)) - float64(y*pi4B)) - float64(y*pi4C)
}

// Sincos is math.Sincos(x) without fused multiply-adds (math.Sin(x) and
// math.Cos(x) are the same bits as math.Sincos(x)'s).
func Sincos(x float64) (sin, cos float64) {
	switch {
	case x == 0:
		return x, 1 // ±0, 1
	case math.IsNaN(x) || math.IsInf(x, 0):
		return math.NaN(), math.NaN()
	case math.Abs(x) >= reduceThreshold:
		return math.Sincos(x)
	}
	sinSign, cosSign := false, false
	if x < 0 {
		x = -x
		sinSign = true
	}
	j, z := reduce(x)
	if j > 3 { // reflect in x axis
		j -= 4
		sinSign, cosSign = !sinSign, !cosSign
	}
	if j > 1 {
		cosSign = !cosSign
	}
	zz := z * z
	// Horner's scheme, as math's ((((c0·zz + c1)·zz + c2)·zz ...) + c5.
	cp := float64(cosCoef[0]*zz) + cosCoef[1]
	sp := float64(sinCoef[0]*zz) + sinCoef[1]
	for k := 2; k < len(cosCoef); k++ {
		cp = float64(cp*zz) + cosCoef[k]
		sp = float64(sp*zz) + sinCoef[k]
	}
	cos = 1.0 - float64(0.5*zz) + float64(zz*zz*cp)
	sin = z + float64(z*zz*sp)
	if j == 1 || j == 2 {
		sin, cos = cos, sin
	}
	if cosSign {
		cos = -cos
	}
	if sinSign {
		sin = -sin
	}
	return sin, cos
}

// Sin is math.Sin(x) without fused multiply-adds. Like math's sin.go, it
// evaluates one of the two polynomials Sincos evaluates, so it costs about
// as much as math.Sin.
func Sin(x float64) float64 {
	switch {
	case x == 0 || math.IsNaN(x):
		return x // ±0, NaN
	case math.IsInf(x, 0):
		return math.NaN()
	case math.Abs(x) >= reduceThreshold:
		return math.Sin(x)
	}
	sign := false
	if x < 0 {
		x = -x
		sign = true
	}
	j, z := reduce(x)
	if j > 3 { // reflect in x axis
		j -= 4
		sign = !sign
	}
	zz := z * z
	var y float64
	if j == 1 || j == 2 {
		y = 1.0 - float64(0.5*zz) + float64(zz*zz*horner(&cosCoef, zz))
	} else {
		y = z + float64(z*zz*horner(&sinCoef, zz))
	}
	if sign {
		y = -y
	}
	return y
}

// horner is ((((c0·zz + c1)·zz + c2)·zz ...) + c5, as math's polynomials,
// each product rounded.
func horner(c *[6]float64, zz float64) float64 {
	p := float64(c[0]*zz) + c[1]
	p = float64(p*zz) + c[2]
	p = float64(p*zz) + c[3]
	p = float64(p*zz) + c[4]
	return float64(p*zz) + c[5]
}

// Cos is math.Cos(x) without fused multiply-adds.
func Cos(x float64) float64 {
	_, c := Sincos(x)
	return c
}
