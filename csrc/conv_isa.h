/* What conv.c and the per-instruction-set files conv_base.c, conv_avx2.c and conv_avx512.c
 * share. Each of those files instantiates conv_kernel.inc (through conv_types.inc) for float
 * and double with its own vector size and tile shapes; conv.c picks one set at run time. One
 * file per instruction set, so that a build compiles them side by side (setup.py compiles an
 * extension's sources in parallel). */
#ifndef FASTCNN_CONV_ISA_H
#define FASTCNN_CONV_ISA_H

#include <stddef.h>
#include <string.h>

#include "conv.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_X86 1
#include <immintrin.h>
#else
#define FC_X86 0
#endif

#define FC_CAT3_(a, b, c) a##b##c
#define FC_CAT3(a, b, c) FC_CAT3_(a, b, c)

/* the per-ISA entry points: seen by conv.c, not exported from the extension */
#if defined(__GNUC__) || defined(__clang__)
#define FC_ISA_FN __attribute__((visibility("hidden")))
#else
#define FC_ISA_FN
#endif

/* Vectors of output positions per forward tile for KB output channels (TILE_NV, set per
   instruction set), with 16 vector registers: as many as fit beside the KB x NV accumulators,
   the NV input vectors they share and a broadcast weight, 1 + NV*(KB+1) <= 16; with one
   channel each input vector is used once, straight from memory, so 8 accumulators (two FMA
   units of 4 cycles' latency need 8 independent sums to stay busy). Measured on Zen 3
   (AVX2): 2 vectors for every KB left the depthwise and 3-channel data-gradient tiles
   waiting on FMA latency. */
#define TILE_NV_16(KB) ((KB) == 1 ? 8 : 15 / ((KB) + 1))

#define FC_ISA_DECLARE(T, S, ISA)                                                             \
    FC_ISA_FN void conv_panel_width_##S##_##ISA(int *elements);                               \
    FC_ISA_FN void conv_tiles_##S##_##ISA(const fc_conv_geom *g, const T *x, const T *wk,     \
                                          int kb, const T *bias, T *y);                       \
    FC_ISA_FN void conv_ctiles_##S##_##ISA(const fc_conv_geom *g, const T *x, const T *wk,    \
                                           int kn, const T *bias, T *y);                      \
    FC_ISA_FN void conv_panels_##S##_##ISA(const fc_conv_geom *g, const T *x, const T *wk,    \
                                           int K, const T *bias, T *y, ptrdiff_t p_begin,     \
                                           ptrdiff_t p_end, T *scratch);                      \
    FC_ISA_FN void conv_wgrad_##S##_##ISA(const fc_conv_geom *g, const T *dy, const T *x,     \
                                          int kb, T *dw);                                     \
    FC_ISA_FN void conv_wgcl_##S##_##ISA(const fc_conv_geom *g, const T *dyt, const T *x,     \
                                         int kv, ptrdiff_t u_begin, ptrdiff_t u_end, T *dwt); \
    FC_ISA_FN void pad_plane_##S##_##ISA(const T *src, T *dst, ptrdiff_t H, ptrdiff_t W,      \
                                         ptrdiff_t top, ptrdiff_t left, ptrdiff_t rows,       \
                                         ptrdiff_t phases, ptrdiff_t phase_len);
#define FC_ISA_DECLARE_BOTH(ISA) FC_ISA_DECLARE(float, f32, ISA) FC_ISA_DECLARE(double, f64, ISA)

FC_ISA_DECLARE_BOTH(base)
#if FC_X86
FC_ISA_DECLARE_BOTH(avx2)
FC_ISA_DECLARE_BOTH(avx512)
#endif

#endif
