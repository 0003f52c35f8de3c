/* Instantiates conv_kernel.inc for float and double, for AVX2+FMA and for the baseline
 * instruction set, and picks one at run time from the CPU's features. */
#include <string.h>

#include "conv.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_X86 1
#include <immintrin.h>
#else
#define FC_X86 0
#endif

/* ---- baseline ---------------------------------------------------------------------------- */
#define T float
#define IT int
#define VL 8
#define NAME(f) f##_f32_base
#include "conv_kernel.inc"
#undef T
#undef IT
#undef VL
#undef NAME

#define T double
#define IT long long
#define VL 4
#define NAME(f) f##_f64_base
#include "conv_kernel.inc"
#undef T
#undef IT
#undef VL
#undef NAME

/* ---- AVX2 + FMA --------------------------------------------------------------------------- */
#if FC_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#define T float
#define IT int
#define VL 8
#define NAME(f) f##_f32_avx2
#include "conv_kernel.inc"
#undef T
#undef IT
#undef VL
#undef NAME

#define T double
#define IT long long
#define VL 4
#define NAME(f) f##_f64_avx2
#include "conv_kernel.inc"
#undef T
#undef IT
#undef VL
#undef NAME

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

/* ---- dispatch ----------------------------------------------------------------------------- */
static int use_avx2 = -1; /* -1: not chosen yet */

static int cpu_has_avx2_fma(void)
{
#if FC_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int fc_conv_select(int want_simd)
{
    use_avx2 = want_simd && cpu_has_avx2_fma();
    return use_avx2;
}

int fc_conv_lanes(int double_precision)
{
    return double_precision ? 4 : 8;
}

const char *fc_conv_path(void)
{
    if (use_avx2 < 0)
        fc_conv_select(1);
    return use_avx2 ? "avx2+fma" : "generic";
}

#if FC_X86
#define DISPATCH(call_avx2, call_base) \
    do {                                 \
        if (use_avx2 < 0)                \
            fc_conv_select(1);           \
        if (use_avx2)                    \
            call_avx2;                   \
        else                             \
            call_base;                   \
    } while (0)
#else
#define DISPATCH(call_avx2, call_base) call_base
#endif

void fc_conv_tiles_f32(const fc_conv_geom *g, const float *x, const float *wk, int kb,
                       const float *bias, int accumulate, float *y)
{
    DISPATCH(conv_tiles_f32_avx2(g, x, wk, kb, bias, accumulate, y),
             conv_tiles_f32_base(g, x, wk, kb, bias, accumulate, y));
}

void fc_conv_tiles_f64(const fc_conv_geom *g, const double *x, const double *wk, int kb,
                       const double *bias, int accumulate, double *y)
{
    DISPATCH(conv_tiles_f64_avx2(g, x, wk, kb, bias, accumulate, y),
             conv_tiles_f64_base(g, x, wk, kb, bias, accumulate, y));
}

void fc_conv_wgrad_f32(const fc_conv_geom *g, const float *dy, const float *x, int kb,
                       float *dw)
{
    DISPATCH(conv_wgrad_f32_avx2(g, dy, x, kb, dw), conv_wgrad_f32_base(g, dy, x, kb, dw));
}

void fc_conv_wgrad_f64(const fc_conv_geom *g, const double *dy, const double *x, int kb,
                       double *dw)
{
    DISPATCH(conv_wgrad_f64_avx2(g, dy, x, kb, dw), conv_wgrad_f64_base(g, dy, x, kb, dw));
}

/* ---- denormals ---------------------------------------------------------------------------- */
unsigned fc_denormals_off(void)
{
#if FC_X86
    unsigned state = _mm_getcsr();
    _mm_setcsr(state | 0x8040); /* FTZ (bit 15) | DAZ (bit 6) */
    return state;
#else
    return 0;
#endif
}

void fc_denormals_restore(unsigned state)
{
#if FC_X86
    _mm_setcsr(state);
#else
    (void)state;
#endif
}
