#include "textflag.h"

// negHigh flips the sign of a complex128's imaginary part (XORPD).
DATA negHigh<>+0(SB)/8, $0
DATA negHigh<>+8(SB)/8, $0x8000000000000000
GLOBL negHigh<>(SB), RODATA|NOPTR, $16

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
