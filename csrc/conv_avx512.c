/* conv_kernel.inc for AVX-512 F/VL/DQ: 64-byte vectors, 32 registers. */
#include "conv_isa.h"

#if FC_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
#endif
#define VBYTES 64
#define ISA avx512
#define TILE_NV(KB) (24 / (KB) > 6 ? 6 : 24 / (KB)) /* 24 accumulators of 32 registers */
#define WGRAD_K 6 /* 24 accumulators of 32 registers */
#define WGRAD_U 4
#define WGCL_ACC 24
#define CT_ACC 24
/* the first n < VL lanes of v to p (conv_kernel.inc's store_part) */
#define STORE_PART_F32(p, v, n) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1), (__m512)(v))
#define STORE_PART_F64(p, v, n) _mm512_mask_storeu_pd(p, (__mmask8)((1u << (n)) - 1), (__m512d)(v))
#include "conv_types.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
typedef int fc_no_avx512; /* not x86-64: nothing here (ISO C wants a declaration) */
#endif
