/* conv_kernel.inc for AVX2 + FMA: 32-byte vectors, 16 registers. */
#include "conv_isa.h"

#if FC_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#endif
#define VBYTES 32
#define ISA avx2
#define TILE_NV(KB) TILE_NV_16(KB)
#define WGRAD_K 4 /* 12 accumulators of 16 registers */
#define WGRAD_U 3
#define WGCL_ACC 10
#define CT_ACC 12 /* + 2 weight vectors + 1 broadcast */
/* the first n < VL lanes of v to p (conv_kernel.inc's store_part) */
#define STORE_PART_F32(p, v, n)                                                               \
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n)),                    \
                                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),     \
                        (__m256)(v))
#define STORE_PART_F64(p, v, n)                                                               \
    _mm256_maskstore_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n),                          \
                                              _mm256_setr_epi64x(0, 1, 2, 3)),                \
                        (__m256d)(v))
#include "conv_types.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
typedef int fc_no_avx2; /* not x86-64: nothing here (ISO C wants a declaration) */
#endif
