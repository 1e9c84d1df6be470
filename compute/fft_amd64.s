#include "textflag.h"

// negHigh flips the sign of a complex128's imaginary part (XORPD).
DATA negHigh<>+0(SB)/8, $0
DATA negHigh<>+8(SB)/8, $0x8000000000000000
GLOBL negHigh<>(SB), RODATA|NOPTR, $16

// negLow flips the sign of a complex128's real part.
DATA negLow<>+0(SB)/8, $0x8000000000000000
DATA negLow<>+8(SB)/8, $0
GLOBL negLow<>(SB), RODATA|NOPTR, $16

// sqrtHalf is (r, r), sqrtHalfNeg (r, -r), r = 1/√2 rounded as Go rounds
// the constant 0.70710678118654752440.
DATA sqrtHalf<>+0(SB)/8, $0x3fe6a09e667f3bcd
DATA sqrtHalf<>+8(SB)/8, $0x3fe6a09e667f3bcd
GLOBL sqrtHalf<>(SB), RODATA|NOPTR, $16
DATA sqrtHalfNeg<>+0(SB)/8, $0x3fe6a09e667f3bcd
DATA sqrtHalfNeg<>+8(SB)/8, $0xbfe6a09e667f3bcd
GLOBL sqrtHalfNeg<>(SB), RODATA|NOPTR, $16

// func radix4Stage(z []complex128, tw []float64, q int)
//
// One radix-4 stage of pow2RFFT.laterStages, two float64 lanes per
// instruction: the same operations, on the same operands, in the same
// order as the Go loop (see stageTwiddles for tw's layout).
TEXT ·radix4Stage(SB), NOSPLIT, $0-56
	MOVQ z_base+0(FP), DI
	MOVQ z_len+8(FP), CX
	MOVQ tw_base+24(FP), SI
	MOVQ q+48(FP), R8
	SHLQ $4, R8              // a quarter of a block, in bytes
	LEAQ (R8)(R8*2), R9      // three quarters
	MOVQ R8, R12
	SHLQ $2, R12             // a block
	SHLQ $4, CX
	LEAQ (DI)(CX*1), R10     // end of z
	MOVUPS negHigh<>(SB), X14
	CMPQ DI, R10
	JAE done

block:
	// j = 0: the twiddles are 1.
	MOVUPD (DI), X0          // y0
	MOVUPD (DI)(R8*1), X1    // y2
	MOVUPD (DI)(R8*2), X2    // y1
	MOVUPD (DI)(R9*1), X3    // y3
	MOVAPD X0, X4
	ADDPD X1, X4             // s0 = y0 + y2
	SUBPD X1, X0             // s1 = y0 - y2
	MOVAPD X2, X5
	ADDPD X3, X5             // s2 = y1 + y3
	SUBPD X3, X2             // s3 = y1 - y3
	MOVAPD X4, X6
	ADDPD X5, X6             // s0 + s2
	SUBPD X5, X4             // s0 - s2
	MOVUPD X6, (DI)
	MOVUPD X4, (DI)(R8*2)
	SHUFPD $1, X2, X2
	XORPD X14, X2            // -i·s3 = (imag s3, -real s3)
	MOVAPD X0, X7
	ADDPD X2, X7             // s1 - i·s3
	SUBPD X2, X0             // s1 + i·s3
	MOVUPD X7, (DI)(R8*1)
	MOVUPD X0, (DI)(R9*1)

	LEAQ 16(DI), AX          // &z0[1]
	LEAQ (DI)(R8*1), R11     // &z0[q]
	LEAQ 96(SI), BX          // twiddles of j = 1
	CMPQ AX, R11
	JAE next

inner:
	MOVUPD (AX), X0          // y0
	MOVUPD (AX)(R8*1), X1    // z1[j]
	PSHUFD $0x4e, X1, X5     // its parts swapped
	MULPD 32(BX), X1         // (re·wr, im·wr), w = w^2j
	MULPD 48(BX), X5         // (im·-wi, re·wi)
	ADDPD X5, X1             // y2 = z1[j]·w^2j
	MOVUPD (AX)(R8*2), X2    // z2[j]
	PSHUFD $0x4e, X2, X6
	MULPD 0(BX), X2
	MULPD 16(BX), X6
	ADDPD X6, X2             // y1 = z2[j]·w^j
	MOVUPD (AX)(R9*1), X3    // z3[j]
	PSHUFD $0x4e, X3, X7
	MULPD 64(BX), X3
	MULPD 80(BX), X7
	ADDPD X7, X3             // y3 = z3[j]·w^3j
	MOVAPD X0, X4
	ADDPD X1, X4             // s0
	SUBPD X1, X0             // s1
	MOVAPD X2, X5
	ADDPD X3, X5             // s2
	SUBPD X3, X2             // s3
	MOVAPD X4, X6
	ADDPD X5, X6
	SUBPD X5, X4
	MOVUPD X6, (AX)
	MOVUPD X4, (AX)(R8*2)
	SHUFPD $1, X2, X2
	XORPD X14, X2
	MOVAPD X0, X7
	ADDPD X2, X7
	SUBPD X2, X0
	MOVUPD X7, (AX)(R8*1)
	MOVUPD X0, (AX)(R9*1)
	ADDQ $16, AX
	ADDQ $96, BX
	CMPQ AX, R11
	JB inner

next:
	ADDQ R12, DI
	CMPQ DI, R10
	JB block

done:
	RET

// func loadPairRadix8HalfF32(z []complex128, first []int32, x []float32, w []float64, ma, mb float64)
//
// loadPairRadix8Half of float32 samples, two float64 lanes per
// instruction (the real part, segment a, in the low lane; the imaginary
// part, segment b, in the high one): the same operations, on the same
// operands, in the same order as the Go loop. w is the window laid out by
// pairWindow (16-byte aligned). The samples are loaded with MOVSS and
// widened two at a time with CVTPS2PD, which write whole registers:
// CVTSS2SD would keep each register's upper lane, tying every iteration to
// the one before.
TEXT ·loadPairRadix8HalfF32(SB), NOSPLIT, $0-112
	MOVQ z_base+0(FP), DI
	MOVQ first_base+24(FP), R12
	MOVQ z_len+8(FP), R13
	SHRQ $3, R13             // o = m/8
	MOVQ x_base+48(FP), AX
	MOVQ w_base+72(FP), SI
	MOVQ R13, R8
	SHLQ $2, R8              // S: o samples, in bytes
	LEAQ (R8)(R8*2), R9      // 3S
	LEAQ (AX)(R8*4), BX      // x's block 4
	LEAQ (BX)(R8*4), CX      // x's block 8
	LEAQ (R12)(R13*4), R13   // &first[o]
	MOVSD ma+96(FP), X13
	MOVSD mb+104(FP), X0
	UNPCKLPD X0, X13         // (ma, mb)
	MOVUPS negHigh<>(SB), X14
	MOVUPS negLow<>(SB), X12
	MOVUPS sqrtHalf<>(SB), X11
	MOVUPS sqrtHalfNeg<>(SB), X10
	CMPQ R12, R13
	JAE ldone

lloop:
	// y0 = (x0-ma, x4-mb)·w0, y4 = (x4-ma, x8-mb)·w4; c0, c1 = y0 ± y4
	MOVSS (AX), X0
	MOVSS (BX), X1
	UNPCKLPS X1, X0
	MOVSS (CX), X2
	UNPCKLPS X2, X1
	CVTPS2PD X0, X0
	CVTPS2PD X1, X1
	SUBPD X13, X0
	MULPD 0(SI), X0
	SUBPD X13, X1
	MULPD 64(SI), X1
	MOVAPD X0, X2
	ADDPD X1, X2             // c0
	SUBPD X1, X0             // c1
	// y2 = (x2, x6), y6 = (x6, x10); c2, c3 = y2 ± y6
	MOVSS (AX)(R8*2), X1
	MOVSS (BX)(R8*2), X3
	UNPCKLPS X3, X1
	MOVSS (CX)(R8*2), X4
	UNPCKLPS X4, X3
	CVTPS2PD X1, X1
	CVTPS2PD X3, X3
	SUBPD X13, X1
	MULPD 32(SI), X1
	SUBPD X13, X3
	MULPD 96(SI), X3
	MOVAPD X1, X4
	ADDPD X3, X4             // c2
	SUBPD X3, X1             // c3
	// e0, e2 = c0 ± c2; e1, e3 = c1 ∓ i·c3
	MOVAPD X2, X3
	ADDPD X4, X3             // e0
	SUBPD X4, X2             // e2
	PSHUFD $0x4e, X1, X1
	XORPD X14, X1            // -i·c3
	MOVAPD X0, X4
	ADDPD X1, X4             // e1
	SUBPD X1, X0             // e3
	// y1 = (x1, x5), y5 = (x5, x9); c4, c5 = y1 ± y5
	MOVSS (AX)(R8*1), X1
	MOVSS (BX)(R8*1), X5
	UNPCKLPS X5, X1
	MOVSS (CX)(R8*1), X6
	UNPCKLPS X6, X5
	CVTPS2PD X1, X1
	CVTPS2PD X5, X5
	SUBPD X13, X1
	MULPD 16(SI), X1
	SUBPD X13, X5
	MULPD 80(SI), X5
	MOVAPD X1, X6
	ADDPD X5, X6             // c4
	SUBPD X5, X1             // c5
	// y3 = (x3, x7), y7 = (x7, x11); c6, c7 = y3 ± y7
	MOVSS (AX)(R9*1), X5
	MOVSS (BX)(R9*1), X7
	UNPCKLPS X7, X5
	MOVSS (CX)(R9*1), X8
	UNPCKLPS X8, X7
	CVTPS2PD X5, X5
	CVTPS2PD X7, X7
	SUBPD X13, X5
	MULPD 48(SI), X5
	SUBPD X13, X7
	MULPD 112(SI), X7
	MOVAPD X5, X8
	ADDPD X7, X8             // c6
	SUBPD X7, X5             // c7
	// o0, o2 = c4 ± c6; o1, o3 = c5 ∓ i·c7
	MOVAPD X6, X7
	ADDPD X8, X7             // o0
	SUBPD X8, X6             // o2
	PSHUFD $0x4e, X5, X5
	XORPD X14, X5            // -i·c7
	MOVAPD X1, X8
	ADDPD X5, X8             // o1
	SUBPD X5, X1             // o3
	// b = z[first[j]:][:8]
	MOVLQSX (R12), DX
	SHLQ $4, DX
	ADDQ DI, DX
	// b0, b4 = e0 ± o0
	MOVAPD X3, X5
	ADDPD X7, X5
	SUBPD X7, X3
	MOVUPD X5, 0(DX)
	MOVUPD X3, 64(DX)
	// t1 = r·(re o1 + im o1, im o1 - re o1); b1, b5 = e1 ± t1
	PSHUFD $0x4e, X8, X5
	XORPD X14, X5
	ADDPD X5, X8
	MULPD X11, X8
	MOVAPD X4, X5
	ADDPD X8, X5
	SUBPD X8, X4
	MOVUPD X5, 16(DX)
	MOVUPD X4, 80(DX)
	// t2 = -i·o2; b2, b6 = e2 ± t2
	PSHUFD $0x4e, X6, X6
	XORPD X14, X6
	MOVAPD X2, X5
	ADDPD X6, X5
	SUBPD X6, X2
	MOVUPD X5, 32(DX)
	MOVUPD X2, 96(DX)
	// t3 = (r·(im o3 - re o3), -r·(re o3 + im o3)); b3, b7 = e3 ± t3
	PSHUFD $0x4e, X1, X5
	XORPD X12, X1
	ADDPD X1, X5
	MULPD X10, X5
	MOVAPD X0, X1
	ADDPD X5, X1
	SUBPD X5, X0
	MOVUPD X1, 48(DX)
	MOVUPD X0, 112(DX)

	ADDQ $4, AX
	ADDQ $4, BX
	ADDQ $4, CX
	ADDQ $128, SI
	ADDQ $4, R12
	CMPQ R12, R13
	JB lloop

ldone:
	RET

// func pairPowerAdd(d []float64, lo, hi []complex128)
//
// pairPowerAddGo for an even len(lo), two k at a time: d[k] += (|lo[k]|²)
// + (|hi[n-1-k]|²), the same products and sums in the same order.
TEXT ·pairPowerAdd(SB), NOSPLIT, $0-72
	MOVQ d_base+0(FP), DI
	MOVQ lo_base+24(FP), SI
	MOVQ lo_len+32(FP), CX
	MOVQ hi_base+48(FP), DX
	MOVQ CX, AX
	SHLQ $4, AX
	LEAQ -32(DX)(AX*1), DX   // &hi[n-2]
	LEAQ (DI)(CX*8), R8      // &d[n]
	CMPQ DI, R8
	JAE pdone

ploop:
	MOVUPD (SI), X0          // u0 = lo[k]
	MOVUPD 16(SI), X1        // u1 = lo[k+1]
	MOVUPD 16(DX), X2        // v0 = hi[n-1-k]
	MOVUPD (DX), X3          // v1 = hi[n-2-k]
	MULPD X0, X0
	MULPD X1, X1
	MULPD X2, X2
	MULPD X3, X3
	MOVAPD X0, X4
	UNPCKLPD X1, X4          // (re u0², re u1²)
	UNPCKHPD X1, X0          // (im u0², im u1²)
	ADDPD X4, X0             // |u0|², |u1|²
	MOVAPD X2, X5
	UNPCKLPD X3, X5
	UNPCKHPD X3, X2
	ADDPD X5, X2             // |v0|², |v1|²
	ADDPD X2, X0
	MOVUPD (DI), X6
	ADDPD X0, X6
	MOVUPD X6, (DI)
	ADDQ $16, DI
	ADDQ $32, SI
	SUBQ $32, DX
	CMPQ DI, R8
	JB ploop

pdone:
	RET

// negHigh2 flips the signs of the imaginary parts of two complex128s.
DATA negHigh2<>+0(SB)/8, $0
DATA negHigh2<>+8(SB)/8, $0x8000000000000000
DATA negHigh2<>+16(SB)/8, $0
DATA negHigh2<>+24(SB)/8, $0x8000000000000000
GLOBL negHigh2<>(SB), RODATA|NOPTR, $32

// STAGE_TWIDDLES loads z1, z2, z3 of the points j, j+1 at AX into Y1, Y2,
// Y3 and their products with w^2j, w^j, w^3j (twiddles at BX, laid out by
// stageTwiddlesAVX) into Y4 (y2), Y5 (y1), Y6 (y3).
#define STAGE_TWIDDLES \
	VMOVUPD (AX)(R8*1), Y1; \
	VPERMILPD $5, Y1, Y7; \
	VMULPD 64(BX), Y1, Y4; \
	VMULPD 96(BX), Y7, Y7; \
	VADDPD Y7, Y4, Y4; \
	VMOVUPD (AX)(R8*2), Y2; \
	VPERMILPD $5, Y2, Y8; \
	VMULPD 0(BX), Y2, Y5; \
	VMULPD 32(BX), Y8, Y8; \
	VADDPD Y8, Y5, Y5; \
	VMOVUPD (AX)(R9*1), Y3; \
	VPERMILPD $5, Y3, Y9; \
	VMULPD 128(BX), Y3, Y6; \
	VMULPD 160(BX), Y9, Y9; \
	VADDPD Y9, Y6, Y6

// STAGE_BUTTERFLY finishes the butterflies of the points j, j+1 at AX from
// y2, y1, y3 in Y4, Y5, Y6 and stores them.
#define STAGE_BUTTERFLY \
	VMOVUPD (AX), Y0; \
	VADDPD Y4, Y0, Y10; \
	VSUBPD Y4, Y0, Y0; \
	VADDPD Y6, Y5, Y11; \
	VSUBPD Y6, Y5, Y5; \
	VADDPD Y11, Y10, Y12; \
	VSUBPD Y11, Y10, Y10; \
	VMOVUPD Y12, (AX); \
	VMOVUPD Y10, (AX)(R8*2); \
	VPERMILPD $5, Y5, Y5; \
	VXORPD Y14, Y5, Y5; \
	VADDPD Y5, Y0, Y13; \
	VSUBPD Y5, Y0, Y0; \
	VMOVUPD Y13, (AX)(R8*1); \
	VMOVUPD Y0, (AX)(R9*1)

// func radix4StageAVX(z []complex128, tw []float64, q int)
//
// radix4Stage with AVX: two points j, j+1 an instruction, four float64
// lanes, the same operations in the same order (no FMA). The first pair of
// each block keeps j = 0's points unmultiplied, as the Go loop does.
TEXT ·radix4StageAVX(SB), NOSPLIT, $0-56
	MOVQ z_base+0(FP), DI
	MOVQ z_len+8(FP), CX
	MOVQ tw_base+24(FP), SI
	MOVQ q+48(FP), R8
	SHLQ $4, R8              // a quarter of a block, in bytes
	LEAQ (R8)(R8*2), R9      // three quarters
	MOVQ R8, R12
	SHLQ $2, R12             // a block
	SHLQ $4, CX
	LEAQ (DI)(CX*1), R10     // end of z
	VMOVUPD negHigh2<>(SB), Y14
	CMPQ DI, R10
	JAE vdone

vblock:
	MOVQ DI, AX
	MOVQ SI, BX
	LEAQ (DI)(R8*1), R11     // &z0[q]
	STAGE_TWIDDLES
	// j = 0: the twiddles are 1, unmultiplied.
	VBLENDPD $3, Y1, Y4, Y4
	VBLENDPD $3, Y2, Y5, Y5
	VBLENDPD $3, Y3, Y6, Y6
	STAGE_BUTTERFLY
	ADDQ $32, AX
	ADDQ $192, BX
	CMPQ AX, R11
	JAE vnext

vinner:
	STAGE_TWIDDLES
	STAGE_BUTTERFLY
	ADDQ $32, AX
	ADDQ $192, BX
	CMPQ AX, R11
	JB vinner

vnext:
	ADDQ R12, DI
	CMPQ DI, R10
	JB vblock

vdone:
	VZEROUPPER
	RET

// func pairwise8F32(x []float32, r *[8]float64)
//
// numpy's eight partial sums of len(x) (a multiple of 8, at least 8)
// float32 values widened: r[k] = x[k] + x[8+k] + x[16+k] + ..., added in
// that order, two sums a register.
TEXT ·pairwise8F32(SB), NOSPLIT, $0-32
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ r+24(FP), DI
	LEAQ (SI)(CX*4), DX      // end of x
	CVTPS2PD 0(SI), X0       // r0, r1
	CVTPS2PD 8(SI), X1       // r2, r3
	CVTPS2PD 16(SI), X2      // r4, r5
	CVTPS2PD 24(SI), X3      // r6, r7
	ADDQ $32, SI
	CMPQ SI, DX
	JAE sdone

sloop:
	CVTPS2PD 0(SI), X4
	CVTPS2PD 8(SI), X5
	CVTPS2PD 16(SI), X6
	CVTPS2PD 24(SI), X7
	ADDPD X4, X0
	ADDPD X5, X1
	ADDPD X6, X2
	ADDPD X7, X3
	ADDQ $32, SI
	CMPQ SI, DX
	JB sloop

sdone:
	MOVUPD X0, 0(DI)
	MOVUPD X1, 16(DI)
	MOVUPD X2, 32(DI)
	MOVUPD X3, 48(DI)
	RET

// negLow2 flips the signs of the real parts of two complex128s;
// sqrtHalfNeg2 is (r, -r, r, -r).
DATA negLow2<>+0(SB)/8, $0x8000000000000000
DATA negLow2<>+8(SB)/8, $0
DATA negLow2<>+16(SB)/8, $0x8000000000000000
DATA negLow2<>+24(SB)/8, $0
GLOBL negLow2<>(SB), RODATA|NOPTR, $32
DATA sqrtHalfNeg2<>+0(SB)/8, $0x3fe6a09e667f3bcd
DATA sqrtHalfNeg2<>+8(SB)/8, $0xbfe6a09e667f3bcd
DATA sqrtHalfNeg2<>+16(SB)/8, $0x3fe6a09e667f3bcd
DATA sqrtHalfNeg2<>+24(SB)/8, $0xbfe6a09e667f3bcd
GLOBL sqrtHalfNeg2<>(SB), RODATA|NOPTR, $32

// func loadPairRadix8HalfF32AVX(z []complex128, first []int32, x []float32, w []float64, ma, mb float64)
//
// loadPairRadix8HalfF32 with AVX: the points j and j+1 (m/8 even) in the
// two halves of each register, the same operations in the same order (no
// FMA); w laid out by pairWindowAVX.
TEXT ·loadPairRadix8HalfF32AVX(SB), NOSPLIT, $0-112
	MOVQ z_base+0(FP), DI
	MOVQ first_base+24(FP), R12
	MOVQ z_len+8(FP), R13
	SHRQ $3, R13             // o = m/8
	MOVQ x_base+48(FP), AX
	MOVQ w_base+72(FP), SI
	MOVQ R13, R8
	SHLQ $2, R8              // S: o samples, in bytes
	LEAQ (R8)(R8*2), R9      // 3S
	LEAQ (AX)(R8*4), BX      // x's block 4
	LEAQ (BX)(R8*4), CX      // x's block 8
	LEAQ (R12)(R13*4), R13   // &first[o]
	VMOVSD ma+96(FP), X13
	VMOVSD mb+104(FP), X0
	VUNPCKLPD X0, X13, X13
	VINSERTF128 $1, X13, Y13, Y13 // (ma, mb, ma, mb)
	VMOVUPD negHigh2<>(SB), Y14
	VMOVUPD negLow2<>(SB), Y12
	VBROADCASTSD sqrtHalf<>(SB), Y11
	VMOVUPD sqrtHalfNeg2<>(SB), Y10
	CMPQ R12, R13
	JAE adone

aloop:
	// c0, c1 = y0 ± y4
	VMOVSD (AX), X0
	VMOVSD (BX), X1
	VMOVSD (CX), X2
	VUNPCKLPS X1, X0, X0
	VUNPCKLPS X2, X1, X1
	VCVTPS2PD X0, Y0
	VCVTPS2PD X1, Y1
	VSUBPD Y13, Y0, Y0
	VMULPD 0(SI), Y0, Y0
	VSUBPD Y13, Y1, Y1
	VMULPD 128(SI), Y1, Y1
	VADDPD Y1, Y0, Y2        // c0
	VSUBPD Y1, Y0, Y0        // c1
	// c2, c3 = y2 ± y6
	VMOVSD (AX)(R8*2), X1
	VMOVSD (BX)(R8*2), X3
	VMOVSD (CX)(R8*2), X4
	VUNPCKLPS X3, X1, X1
	VUNPCKLPS X4, X3, X3
	VCVTPS2PD X1, Y1
	VCVTPS2PD X3, Y3
	VSUBPD Y13, Y1, Y1
	VMULPD 64(SI), Y1, Y1
	VSUBPD Y13, Y3, Y3
	VMULPD 192(SI), Y3, Y3
	VADDPD Y3, Y1, Y4        // c2
	VSUBPD Y3, Y1, Y1        // c3
	// e0, e2 = c0 ± c2; e1, e3 = c1 ∓ i·c3
	VADDPD Y4, Y2, Y3        // e0
	VSUBPD Y4, Y2, Y2        // e2
	VPERMILPD $5, Y1, Y1
	VXORPD Y14, Y1, Y1       // -i·c3
	VADDPD Y1, Y0, Y4        // e1
	VSUBPD Y1, Y0, Y0        // e3
	// c4, c5 = y1 ± y5
	VMOVSD (AX)(R8*1), X1
	VMOVSD (BX)(R8*1), X5
	VMOVSD (CX)(R8*1), X6
	VUNPCKLPS X5, X1, X1
	VUNPCKLPS X6, X5, X5
	VCVTPS2PD X1, Y1
	VCVTPS2PD X5, Y5
	VSUBPD Y13, Y1, Y1
	VMULPD 32(SI), Y1, Y1
	VSUBPD Y13, Y5, Y5
	VMULPD 160(SI), Y5, Y5
	VADDPD Y5, Y1, Y6        // c4
	VSUBPD Y5, Y1, Y1        // c5
	// c6, c7 = y3 ± y7
	VMOVSD (AX)(R9*1), X5
	VMOVSD (BX)(R9*1), X7
	VMOVSD (CX)(R9*1), X8
	VUNPCKLPS X7, X5, X5
	VUNPCKLPS X8, X7, X7
	VCVTPS2PD X5, Y5
	VCVTPS2PD X7, Y7
	VSUBPD Y13, Y5, Y5
	VMULPD 96(SI), Y5, Y5
	VSUBPD Y13, Y7, Y7
	VMULPD 224(SI), Y7, Y7
	VADDPD Y7, Y5, Y8        // c6
	VSUBPD Y7, Y5, Y5        // c7
	// o0, o2 = c4 ± c6; o1, o3 = c5 ∓ i·c7
	VADDPD Y8, Y6, Y7        // o0
	VSUBPD Y8, Y6, Y6        // o2
	VPERMILPD $5, Y5, Y5
	VXORPD Y14, Y5, Y5       // -i·c7
	VADDPD Y5, Y1, Y8        // o1
	VSUBPD Y5, Y1, Y1        // o3
	// z[first[j]:] (DX) and z[first[j+1]:] (R10)
	MOVLQSX (R12), DX
	SHLQ $4, DX
	ADDQ DI, DX
	MOVLQSX 4(R12), R10
	SHLQ $4, R10
	ADDQ DI, R10
	// b0, b4 = e0 ± o0
	VADDPD Y7, Y3, Y5
	VSUBPD Y7, Y3, Y3
	VMOVUPD X5, 0(DX)
	VEXTRACTF128 $1, Y5, 0(R10)
	VMOVUPD X3, 64(DX)
	VEXTRACTF128 $1, Y3, 64(R10)
	// t1 = r·(re o1 + im o1, im o1 - re o1); b1, b5 = e1 ± t1
	VPERMILPD $5, Y8, Y5
	VXORPD Y14, Y5, Y5
	VADDPD Y5, Y8, Y8
	VMULPD Y11, Y8, Y8
	VADDPD Y8, Y4, Y5
	VSUBPD Y8, Y4, Y4
	VMOVUPD X5, 16(DX)
	VEXTRACTF128 $1, Y5, 16(R10)
	VMOVUPD X4, 80(DX)
	VEXTRACTF128 $1, Y4, 80(R10)
	// t2 = -i·o2; b2, b6 = e2 ± t2
	VPERMILPD $5, Y6, Y6
	VXORPD Y14, Y6, Y6
	VADDPD Y6, Y2, Y5
	VSUBPD Y6, Y2, Y2
	VMOVUPD X5, 32(DX)
	VEXTRACTF128 $1, Y5, 32(R10)
	VMOVUPD X2, 96(DX)
	VEXTRACTF128 $1, Y2, 96(R10)
	// t3 = (r·(im o3 - re o3), -r·(re o3 + im o3)); b3, b7 = e3 ± t3
	VPERMILPD $5, Y1, Y5
	VXORPD Y12, Y1, Y1
	VADDPD Y1, Y5, Y5
	VMULPD Y10, Y5, Y5
	VADDPD Y5, Y0, Y1
	VSUBPD Y5, Y0, Y0
	VMOVUPD X1, 48(DX)
	VEXTRACTF128 $1, Y1, 48(R10)
	VMOVUPD X0, 112(DX)
	VEXTRACTF128 $1, Y0, 112(R10)

	ADDQ $8, AX
	ADDQ $8, BX
	ADDQ $8, CX
	ADDQ $256, SI
	ADDQ $8, R12
	CMPQ R12, R13
	JB aloop

adone:
	VZEROUPPER
	RET

// func loadPairRadix8HalfF64AVX(z []complex128, first []int32, x []float64, w []float64, ma, mb float64)
//
// loadPairRadix8HalfF32AVX of float64 samples: two samples of a block
// loaded at once, paired with those of the block four on by VUNPCKLPD and
// VUNPCKHPD.
TEXT ·loadPairRadix8HalfF64AVX(SB), NOSPLIT, $0-112
	MOVQ z_base+0(FP), DI
	MOVQ first_base+24(FP), R12
	MOVQ z_len+8(FP), R13
	SHRQ $3, R13             // o = m/8
	MOVQ x_base+48(FP), AX
	MOVQ w_base+72(FP), SI
	MOVQ R13, R8
	SHLQ $3, R8              // S: o samples, in bytes
	LEAQ (R8)(R8*2), R9      // 3S
	LEAQ (AX)(R8*4), BX      // x's block 4
	LEAQ (BX)(R8*4), CX      // x's block 8
	LEAQ (R12)(R13*4), R13   // &first[o]
	VMOVSD ma+96(FP), X13
	VMOVSD mb+104(FP), X0
	VUNPCKLPD X0, X13, X13
	VINSERTF128 $1, X13, Y13, Y13 // (ma, mb, ma, mb)
	VMOVUPD negHigh2<>(SB), Y14
	VMOVUPD negLow2<>(SB), Y12
	VBROADCASTSD sqrtHalf<>(SB), Y11
	VMOVUPD sqrtHalfNeg2<>(SB), Y10
	CMPQ R12, R13
	JAE fadone

faloop:
	// c0, c1 = y0 ± y4
	VMOVUPD (AX), X0
	VMOVUPD (BX), X1
	VMOVUPD (CX), X2
	VUNPCKHPD X1, X0, X3
	VUNPCKLPD X1, X0, X0
	VINSERTF128 $1, X3, Y0, Y0
	VUNPCKHPD X2, X1, X3
	VUNPCKLPD X2, X1, X1
	VINSERTF128 $1, X3, Y1, Y1
	VSUBPD Y13, Y0, Y0
	VMULPD 0(SI), Y0, Y0
	VSUBPD Y13, Y1, Y1
	VMULPD 128(SI), Y1, Y1
	VADDPD Y1, Y0, Y2        // c0
	VSUBPD Y1, Y0, Y0        // c1
	// c2, c3 = y2 ± y6
	VMOVUPD (AX)(R8*2), X1
	VMOVUPD (BX)(R8*2), X3
	VMOVUPD (CX)(R8*2), X4
	VUNPCKHPD X3, X1, X5
	VUNPCKLPD X3, X1, X1
	VINSERTF128 $1, X5, Y1, Y1
	VUNPCKHPD X4, X3, X5
	VUNPCKLPD X4, X3, X3
	VINSERTF128 $1, X5, Y3, Y3
	VSUBPD Y13, Y1, Y1
	VMULPD 64(SI), Y1, Y1
	VSUBPD Y13, Y3, Y3
	VMULPD 192(SI), Y3, Y3
	VADDPD Y3, Y1, Y4        // c2
	VSUBPD Y3, Y1, Y1        // c3
	// e0, e2 = c0 ± c2; e1, e3 = c1 ∓ i·c3
	VADDPD Y4, Y2, Y3        // e0
	VSUBPD Y4, Y2, Y2        // e2
	VPERMILPD $5, Y1, Y1
	VXORPD Y14, Y1, Y1       // -i·c3
	VADDPD Y1, Y0, Y4        // e1
	VSUBPD Y1, Y0, Y0        // e3
	// c4, c5 = y1 ± y5
	VMOVUPD (AX)(R8*1), X1
	VMOVUPD (BX)(R8*1), X5
	VMOVUPD (CX)(R8*1), X6
	VUNPCKHPD X5, X1, X7
	VUNPCKLPD X5, X1, X1
	VINSERTF128 $1, X7, Y1, Y1
	VUNPCKHPD X6, X5, X7
	VUNPCKLPD X6, X5, X5
	VINSERTF128 $1, X7, Y5, Y5
	VSUBPD Y13, Y1, Y1
	VMULPD 32(SI), Y1, Y1
	VSUBPD Y13, Y5, Y5
	VMULPD 160(SI), Y5, Y5
	VADDPD Y5, Y1, Y6        // c4
	VSUBPD Y5, Y1, Y1        // c5
	// c6, c7 = y3 ± y7
	VMOVUPD (AX)(R9*1), X5
	VMOVUPD (BX)(R9*1), X7
	VMOVUPD (CX)(R9*1), X8
	VUNPCKHPD X7, X5, X9
	VUNPCKLPD X7, X5, X5
	VINSERTF128 $1, X9, Y5, Y5
	VUNPCKHPD X8, X7, X9
	VUNPCKLPD X8, X7, X7
	VINSERTF128 $1, X9, Y7, Y7
	VSUBPD Y13, Y5, Y5
	VMULPD 96(SI), Y5, Y5
	VSUBPD Y13, Y7, Y7
	VMULPD 224(SI), Y7, Y7
	VADDPD Y7, Y5, Y8        // c6
	VSUBPD Y7, Y5, Y5        // c7
	// o0, o2 = c4 ± c6; o1, o3 = c5 ∓ i·c7
	VADDPD Y8, Y6, Y7        // o0
	VSUBPD Y8, Y6, Y6        // o2
	VPERMILPD $5, Y5, Y5
	VXORPD Y14, Y5, Y5       // -i·c7
	VADDPD Y5, Y1, Y8        // o1
	VSUBPD Y5, Y1, Y1        // o3
	// z[first[j]:] (DX) and z[first[j+1]:] (R10)
	MOVLQSX (R12), DX
	SHLQ $4, DX
	ADDQ DI, DX
	MOVLQSX 4(R12), R10
	SHLQ $4, R10
	ADDQ DI, R10
	// b0, b4 = e0 ± o0
	VADDPD Y7, Y3, Y5
	VSUBPD Y7, Y3, Y3
	VMOVUPD X5, 0(DX)
	VEXTRACTF128 $1, Y5, 0(R10)
	VMOVUPD X3, 64(DX)
	VEXTRACTF128 $1, Y3, 64(R10)
	// t1 = r·(re o1 + im o1, im o1 - re o1); b1, b5 = e1 ± t1
	VPERMILPD $5, Y8, Y5
	VXORPD Y14, Y5, Y5
	VADDPD Y5, Y8, Y8
	VMULPD Y11, Y8, Y8
	VADDPD Y8, Y4, Y5
	VSUBPD Y8, Y4, Y4
	VMOVUPD X5, 16(DX)
	VEXTRACTF128 $1, Y5, 16(R10)
	VMOVUPD X4, 80(DX)
	VEXTRACTF128 $1, Y4, 80(R10)
	// t2 = -i·o2; b2, b6 = e2 ± t2
	VPERMILPD $5, Y6, Y6
	VXORPD Y14, Y6, Y6
	VADDPD Y6, Y2, Y5
	VSUBPD Y6, Y2, Y2
	VMOVUPD X5, 32(DX)
	VEXTRACTF128 $1, Y5, 32(R10)
	VMOVUPD X2, 96(DX)
	VEXTRACTF128 $1, Y2, 96(R10)
	// t3 = (r·(im o3 - re o3), -r·(re o3 + im o3)); b3, b7 = e3 ± t3
	VPERMILPD $5, Y1, Y5
	VXORPD Y12, Y1, Y1
	VADDPD Y1, Y5, Y5
	VMULPD Y10, Y5, Y5
	VADDPD Y5, Y0, Y1
	VSUBPD Y5, Y0, Y0
	VMOVUPD X1, 48(DX)
	VEXTRACTF128 $1, Y1, 48(R10)
	VMOVUPD X0, 112(DX)
	VEXTRACTF128 $1, Y0, 112(R10)

	ADDQ $16, AX
	ADDQ $16, BX
	ADDQ $16, CX
	ADDQ $256, SI
	ADDQ $8, R12
	CMPQ R12, R13
	JB faloop

fadone:
	VZEROUPPER
	RET

// func pairPowerAddAVX(d []float64, lo, hi []complex128)
//
// pairPowerAdd with AVX, four k at a time (len(lo) a multiple of 4): the
// points k, k+2 and k+1, k+3 in the halves of two registers, so that
// VHADDPD of their squares gives |lo[k..k+3]|² in order; the same products
// and sums in the same order as the Go loop.
TEXT ·pairPowerAddAVX(SB), NOSPLIT, $0-72
	MOVQ d_base+0(FP), DI
	MOVQ lo_base+24(FP), SI
	MOVQ lo_len+32(FP), CX
	MOVQ hi_base+48(FP), DX
	MOVQ CX, AX
	SHLQ $4, AX
	LEAQ -64(DX)(AX*1), DX   // &hi[n-4]
	LEAQ (DI)(CX*8), R8      // &d[n]
	CMPQ DI, R8
	JAE qdone

qloop:
	VMOVUPD 0(SI), X0
	VINSERTF128 $1, 32(SI), Y0, Y0  // lo[k], lo[k+2]
	VMOVUPD 16(SI), X1
	VINSERTF128 $1, 48(SI), Y1, Y1  // lo[k+1], lo[k+3]
	VMOVUPD 48(DX), X2
	VINSERTF128 $1, 16(DX), Y2, Y2  // hi[n-1-k], hi[n-3-k]
	VMOVUPD 32(DX), X3
	VINSERTF128 $1, 0(DX), Y3, Y3   // hi[n-2-k], hi[n-4-k]
	VMULPD Y0, Y0, Y0
	VMULPD Y1, Y1, Y1
	VMULPD Y2, Y2, Y2
	VMULPD Y3, Y3, Y3
	VHADDPD Y1, Y0, Y0       // |lo[k]|², ..., |lo[k+3]|²
	VHADDPD Y3, Y2, Y2       // |hi[n-1-k]|², ..., |hi[n-4-k]|²
	VADDPD Y2, Y0, Y0
	VADDPD 0(DI), Y0, Y0
	VMOVUPD Y0, 0(DI)
	ADDQ $32, DI
	ADDQ $64, SI
	SUBQ $64, DX
	CMPQ DI, R8
	JB qloop

qdone:
	VZEROUPPER
	RET

// func loadPairRadix4HalfF32(z []complex128, first []int32, x []float32, w []float64, ma, mb float64)
//
// loadPairRadix4Half of float32 samples, two float64 lanes per instruction
// (segment a in the low lane, segment b in the high one), as
// loadPairRadix8HalfF32 does for radix 8: the same operations, on the same
// operands, in the same order as the Go loop; w laid out by pairWindowSSE
// (16-byte aligned).
TEXT ·loadPairRadix4HalfF32(SB), NOSPLIT, $0-112
	MOVQ z_base+0(FP), DI
	MOVQ first_base+24(FP), R12
	MOVQ z_len+8(FP), R13
	SHRQ $2, R13             // q = m/4
	MOVQ x_base+48(FP), AX
	MOVQ w_base+72(FP), SI
	MOVQ R13, R8
	SHLQ $2, R8              // S: q samples, in bytes
	LEAQ (AX)(R8*2), BX      // x's block 2
	LEAQ (BX)(R8*2), CX      // x's block 4
	LEAQ (R12)(R13*4), R13   // &first[q]
	MOVSD ma+96(FP), X13
	MOVSD mb+104(FP), X0
	UNPCKLPD X0, X13         // (ma, mb)
	MOVUPS negHigh<>(SB), X14
	CMPQ R12, R13
	JAE qdone

qloop:
	// y0 = (x0-ma, x2-mb)·w0, y2 = (x2-ma, x4-mb)·w2; s0, s1 = y0 ± y2
	MOVSS (AX), X0
	MOVSS (BX), X1
	UNPCKLPS X1, X0
	MOVSS (CX), X2
	UNPCKLPS X2, X1
	CVTPS2PD X0, X0
	CVTPS2PD X1, X1
	SUBPD X13, X0
	MULPD 0(SI), X0
	SUBPD X13, X1
	MULPD 32(SI), X1
	MOVAPD X0, X2
	ADDPD X1, X2             // s0
	SUBPD X1, X0             // s1
	// y1 = (x1, x3), y3 = (x3, x5); s2, s3 = y1 ± y3
	MOVSS (AX)(R8*1), X3
	MOVSS (BX)(R8*1), X4
	UNPCKLPS X4, X3
	MOVSS (CX)(R8*1), X5
	UNPCKLPS X5, X4
	CVTPS2PD X3, X3
	CVTPS2PD X4, X4
	SUBPD X13, X3
	MULPD 16(SI), X3
	SUBPD X13, X4
	MULPD 48(SI), X4
	MOVAPD X3, X5
	ADDPD X4, X5             // s2
	SUBPD X4, X3             // s3
	// b = z[first[j]:][:4]
	MOVLQSX (R12), DX
	SHLQ $4, DX
	ADDQ DI, DX
	// b0, b2 = s0 ± s2
	MOVAPD X2, X6
	ADDPD X5, X6
	SUBPD X5, X2
	MOVUPD X6, 0(DX)
	MOVUPD X2, 32(DX)
	// b1, b3 = s1 ∓ i·s3
	PSHUFD $0x4e, X3, X3
	XORPD X14, X3            // -i·s3
	MOVAPD X0, X6
	ADDPD X3, X6
	SUBPD X3, X0
	MOVUPD X6, 16(DX)
	MOVUPD X0, 48(DX)

	ADDQ $4, AX
	ADDQ $4, BX
	ADDQ $4, CX
	ADDQ $64, SI
	ADDQ $4, R12
	CMPQ R12, R13
	JB qloop

qdone:
	RET

// func loadPairRadix4HalfF32AVX(z []complex128, first []int32, x []float32, w []float64, ma, mb float64)
//
// loadPairRadix4HalfF32 with AVX: the points j and j+1 (m/4 even) in the
// two halves of each register, the same operations in the same order (no
// FMA); w laid out by pairWindowAVX.
TEXT ·loadPairRadix4HalfF32AVX(SB), NOSPLIT, $0-112
	MOVQ z_base+0(FP), DI
	MOVQ first_base+24(FP), R12
	MOVQ z_len+8(FP), R13
	SHRQ $2, R13             // q = m/4
	MOVQ x_base+48(FP), AX
	MOVQ w_base+72(FP), SI
	MOVQ R13, R8
	SHLQ $2, R8              // S: q samples, in bytes
	LEAQ (AX)(R8*2), BX      // x's block 2
	LEAQ (BX)(R8*2), CX      // x's block 4
	LEAQ (R12)(R13*4), R13   // &first[q]
	VMOVSD ma+96(FP), X13
	VMOVSD mb+104(FP), X0
	VUNPCKLPD X0, X13, X13
	VINSERTF128 $1, X13, Y13, Y13 // (ma, mb, ma, mb)
	VMOVUPD negHigh2<>(SB), Y14
	CMPQ R12, R13
	JAE vdone

vloop:
	// s0, s1 = y0 ± y2
	VMOVSD (AX), X0
	VMOVSD (BX), X1
	VMOVSD (CX), X2
	VUNPCKLPS X1, X0, X0
	VUNPCKLPS X2, X1, X1
	VCVTPS2PD X0, Y0
	VCVTPS2PD X1, Y1
	VSUBPD Y13, Y0, Y0
	VMULPD 0(SI), Y0, Y0
	VSUBPD Y13, Y1, Y1
	VMULPD 64(SI), Y1, Y1
	VADDPD Y1, Y0, Y2        // s0
	VSUBPD Y1, Y0, Y0        // s1
	// s2, s3 = y1 ± y3
	VMOVSD (AX)(R8*1), X3
	VMOVSD (BX)(R8*1), X4
	VMOVSD (CX)(R8*1), X5
	VUNPCKLPS X4, X3, X3
	VUNPCKLPS X5, X4, X4
	VCVTPS2PD X3, Y3
	VCVTPS2PD X4, Y4
	VSUBPD Y13, Y3, Y3
	VMULPD 32(SI), Y3, Y3
	VSUBPD Y13, Y4, Y4
	VMULPD 96(SI), Y4, Y4
	VADDPD Y4, Y3, Y5        // s2
	VSUBPD Y4, Y3, Y3        // s3
	// z[first[j]:] (DX) and z[first[j+1]:] (R10)
	MOVLQSX (R12), DX
	SHLQ $4, DX
	ADDQ DI, DX
	MOVLQSX 4(R12), R10
	SHLQ $4, R10
	ADDQ DI, R10
	// b0, b2 = s0 ± s2
	VADDPD Y5, Y2, Y6
	VSUBPD Y5, Y2, Y2
	VMOVUPD X6, 0(DX)
	VEXTRACTF128 $1, Y6, 0(R10)
	VMOVUPD X2, 32(DX)
	VEXTRACTF128 $1, Y2, 32(R10)
	// b1, b3 = s1 ∓ i·s3
	VPERMILPD $5, Y3, Y3
	VXORPD Y14, Y3, Y3       // -i·s3
	VADDPD Y3, Y0, Y6
	VSUBPD Y3, Y0, Y0
	VMOVUPD X6, 16(DX)
	VEXTRACTF128 $1, Y6, 16(R10)
	VMOVUPD X0, 48(DX)
	VEXTRACTF128 $1, Y0, 48(R10)

	ADDQ $8, AX
	ADDQ $8, BX
	ADDQ $8, CX
	ADDQ $128, SI
	ADDQ $8, R12
	CMPQ R12, R13
	JB vloop

vdone:
	VZEROUPPER
	RET

// func loadPairRadix4HalfF64AVX(z []complex128, first []int32, x []float64, w []float64, ma, mb float64)
//
// loadPairRadix4HalfF32AVX of float64 samples: two samples of a block
// loaded at once, paired with those of the block two on by VUNPCKLPD and
// VUNPCKHPD.
TEXT ·loadPairRadix4HalfF64AVX(SB), NOSPLIT, $0-112
	MOVQ z_base+0(FP), DI
	MOVQ first_base+24(FP), R12
	MOVQ z_len+8(FP), R13
	SHRQ $2, R13             // q = m/4
	MOVQ x_base+48(FP), AX
	MOVQ w_base+72(FP), SI
	MOVQ R13, R8
	SHLQ $3, R8              // S: q samples, in bytes
	LEAQ (AX)(R8*2), BX      // x's block 2
	LEAQ (BX)(R8*2), CX      // x's block 4
	LEAQ (R12)(R13*4), R13   // &first[q]
	VMOVSD ma+96(FP), X13
	VMOVSD mb+104(FP), X0
	VUNPCKLPD X0, X13, X13
	VINSERTF128 $1, X13, Y13, Y13 // (ma, mb, ma, mb)
	VMOVUPD negHigh2<>(SB), Y14
	CMPQ R12, R13
	JAE fvdone

fvloop:
	// s0, s1 = y0 ± y2
	VMOVUPD (AX), X0
	VMOVUPD (BX), X1
	VMOVUPD (CX), X2
	VUNPCKHPD X1, X0, X3
	VUNPCKLPD X1, X0, X0
	VINSERTF128 $1, X3, Y0, Y0
	VUNPCKHPD X2, X1, X3
	VUNPCKLPD X2, X1, X1
	VINSERTF128 $1, X3, Y1, Y1
	VSUBPD Y13, Y0, Y0
	VMULPD 0(SI), Y0, Y0
	VSUBPD Y13, Y1, Y1
	VMULPD 64(SI), Y1, Y1
	VADDPD Y1, Y0, Y2        // s0
	VSUBPD Y1, Y0, Y0        // s1
	// s2, s3 = y1 ± y3
	VMOVUPD (AX)(R8*1), X3
	VMOVUPD (BX)(R8*1), X4
	VMOVUPD (CX)(R8*1), X5
	VUNPCKHPD X4, X3, X6
	VUNPCKLPD X4, X3, X3
	VINSERTF128 $1, X6, Y3, Y3
	VUNPCKHPD X5, X4, X6
	VUNPCKLPD X5, X4, X4
	VINSERTF128 $1, X6, Y4, Y4
	VSUBPD Y13, Y3, Y3
	VMULPD 32(SI), Y3, Y3
	VSUBPD Y13, Y4, Y4
	VMULPD 96(SI), Y4, Y4
	VADDPD Y4, Y3, Y5        // s2
	VSUBPD Y4, Y3, Y3        // s3
	// z[first[j]:] (DX) and z[first[j+1]:] (R10)
	MOVLQSX (R12), DX
	SHLQ $4, DX
	ADDQ DI, DX
	MOVLQSX 4(R12), R10
	SHLQ $4, R10
	ADDQ DI, R10
	// b0, b2 = s0 ± s2
	VADDPD Y5, Y2, Y6
	VSUBPD Y5, Y2, Y2
	VMOVUPD X6, 0(DX)
	VEXTRACTF128 $1, Y6, 0(R10)
	VMOVUPD X2, 32(DX)
	VEXTRACTF128 $1, Y2, 32(R10)
	// b1, b3 = s1 ∓ i·s3
	VPERMILPD $5, Y3, Y3
	VXORPD Y14, Y3, Y3       // -i·s3
	VADDPD Y3, Y0, Y6
	VSUBPD Y3, Y0, Y0
	VMOVUPD X6, 16(DX)
	VEXTRACTF128 $1, Y6, 16(R10)
	VMOVUPD X0, 48(DX)
	VEXTRACTF128 $1, Y0, 48(R10)

	ADDQ $16, AX
	ADDQ $16, BX
	ADDQ $16, CX
	ADDQ $128, SI
	ADDQ $8, R12
	CMPQ R12, R13
	JB fvloop

fvdone:
	VZEROUPPER
	RET
