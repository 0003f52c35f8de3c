/* Picks the microkernels of one instruction set (conv_base.c, conv_avx2.c, conv_avx512.c) at
 * run time from the CPU's features, and passes every call on to them. */
#include "conv_isa.h"

/* ---- dispatch ----------------------------------------------------------------------------- */
enum { FC_BASE, FC_AVX2, FC_AVX512 };
static int level = -1; /* set by fc_conv_select (the extension calls it at import) */

static int cpu_level(void)
{
#if FC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq"))
        return FC_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return FC_AVX2;
#endif
    return FC_BASE;
}

int fc_conv_select(int want)
{
    int best = cpu_level();
    level = want < best ? want : best;
    return level;
}

const char *fc_conv_path(void)
{
    static const char *names[] = {"generic", "avx2+fma", "avx512"};
    if (level < 0)
        fc_conv_select(FC_AVX512);
    return names[level];
}

int fc_conv_wgrad_kb(void)
{
    return level == FC_AVX512 ? 6 : 4; /* each path's WGRAD_K */
}

int fc_conv_wgcl_kv(void)
{
    /* channel vectors per tile: 4 with AVX-512's 32 registers; with 16, 2 (4 x 2 pairs leave
       the AVX2 tile short of accumulators, against 2 x 5) */
    return level == FC_AVX512 ? FC_WCL_KV_MAX : 2;
}

int fc_conv_wgcl_nu(int kv)
{
    int acc = level == FC_AVX512 ? 24 : 10; /* each path's WGCL_ACC */
    if (kv < 1)
        kv = 1;
    return acc / kv > FC_WCL_NU_MAX ? FC_WCL_NU_MAX : acc / kv;
}


int fc_conv_lanes(int double_precision)
{
    int bytes = level == FC_AVX512 ? 64 : level == FC_AVX2 ? 32 : 16; /* each path's VBYTES */
    return bytes / (double_precision ? 8 : 4);
}

#if FC_X86
#define DISPATCH(f, args)                  \
    do {                                   \
        if (level == FC_AVX512)            \
            f##_avx512 args;               \
        else if (level == FC_AVX2)         \
            f##_avx2 args;                 \
        else                               \
            f##_base args;                 \
    } while (0)
#else
#define DISPATCH(f, args) f##_base args
#endif

int fc_conv_panel_width(int double_precision)
{
    int f32 = 0, f64 = 0;
    DISPATCH(conv_panel_width_f32, (&f32));
    DISPATCH(conv_panel_width_f64, (&f64));
    return double_precision ? f64 : f32;
}

void fc_conv_tiles_f32(const fc_conv_geom *g, const float *x, const float *wk, int kb,
                       const float *bias, float *y)
{
    DISPATCH(conv_tiles_f32, (g, x, wk, kb, bias, y));
}

void fc_conv_tiles_f64(const fc_conv_geom *g, const double *x, const double *wk, int kb,
                       const double *bias, double *y)
{
    DISPATCH(conv_tiles_f64, (g, x, wk, kb, bias, y));
}

int fc_conv_ct_block(int double_precision)
{
    return FC_CT_KV_MAX * fc_conv_lanes(double_precision);
}

void fc_conv_ctiles_f32(const fc_conv_geom *g, const float *x, const float *wk, int kn,
                        const float *bias, float *y)
{
    DISPATCH(conv_ctiles_f32, (g, x, wk, kn, bias, y));
}

void fc_conv_ctiles_f64(const fc_conv_geom *g, const double *x, const double *wk, int kn,
                        const double *bias, double *y)
{
    DISPATCH(conv_ctiles_f64, (g, x, wk, kn, bias, y));
}

void fc_conv_panels_f32(const fc_conv_geom *g, const float *x, const float *wk, int K,
                        const float *bias, float *y, ptrdiff_t p_begin, ptrdiff_t p_end,
                        float *scratch)
{
    DISPATCH(conv_panels_f32, (g, x, wk, K, bias, y, p_begin, p_end, scratch));
}

void fc_conv_panels_f64(const fc_conv_geom *g, const double *x, const double *wk, int K,
                        const double *bias, double *y, ptrdiff_t p_begin, ptrdiff_t p_end,
                        double *scratch)
{
    DISPATCH(conv_panels_f64, (g, x, wk, K, bias, y, p_begin, p_end, scratch));
}

void fc_conv_wgrad_f32(const fc_conv_geom *g, const float *dy, const float *x, int kb,
                       float *dw)
{
    DISPATCH(conv_wgrad_f32, (g, dy, x, kb, dw));
}

void fc_conv_wgrad_f64(const fc_conv_geom *g, const double *dy, const double *x, int kb,
                       double *dw)
{
    DISPATCH(conv_wgrad_f64, (g, dy, x, kb, dw));
}

void fc_conv_wgcl_f32(const fc_conv_geom *g, const float *dyt, const float *x, int kv,
                      ptrdiff_t u_begin, ptrdiff_t u_end, float *dwt)
{
    DISPATCH(conv_wgcl_f32, (g, dyt, x, kv, u_begin, u_end, dwt));
}

void fc_conv_wgcl_f64(const fc_conv_geom *g, const double *dyt, const double *x, int kv,
                      ptrdiff_t u_begin, ptrdiff_t u_end, double *dwt)
{
    DISPATCH(conv_wgcl_f64, (g, dyt, x, kv, u_begin, u_end, dwt));
}

/* ---- padded copies (conv_pad.inc) -------------------------------------------------------- */
void fc_pad_plane_f32(const float *src, float *dst, ptrdiff_t H, ptrdiff_t W, ptrdiff_t top,
                      ptrdiff_t left, ptrdiff_t rows, ptrdiff_t phases, ptrdiff_t phase_len)
{
    DISPATCH(pad_plane_f32, (src, dst, H, W, top, left, rows, phases, phase_len));
}

void fc_pad_plane_f64(const double *src, double *dst, ptrdiff_t H, ptrdiff_t W, ptrdiff_t top,
                      ptrdiff_t left, ptrdiff_t rows, ptrdiff_t phases, ptrdiff_t phase_len)
{
    DISPATCH(pad_plane_f64, (src, dst, H, W, top, left, rows, phases, phase_len));
}

/* ---- prefetch ----------------------------------------------------------------------------- */
void fc_prefetch(const void *p, ptrdiff_t bytes)
{
    const char *c = (const char *)p;
    ptrdiff_t b;
    for (b = 0; b < bytes; b += 64)
        __builtin_prefetch(c + b);
    if (bytes > 0)
        __builtin_prefetch(c + bytes - 1);
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
