#include <math.h>
#include <string.h>

#include "pool.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && defined(__linux__)
#define FC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FC_CLONES
#endif

/* First position >= 0 of the sequence start, start + step, ... */
static inline ptrdiff_t first_inside(ptrdiff_t start, ptrdiff_t step)
{
    return start >= 0 ? start : start + (-start + step - 1) / step * step;
}

/* The forward, output by output: a window's running maximum and index stay in registers
   while its taps go by in PyTorch's scan order, FC_POOL_VL output columns at once (GCC/Clang
   vector extensions, as in conv_kernel.inc). A tap's FC_POOL_VL inputs are one load for
   stride 1 and two loads and a shuffle for stride 2 (the second load starts at lane
   FC_POOL_VL-1, so nothing past the last input used is read); other strides gather lane by
   lane. Vectors cover the columns whose every tap lies inside the row; the last vector ends
   at the last of them and may overlap the one before (it recomputes the same maxima). The
   columns whose windows reach into the padding, and rows too short for a vector, go one
   output at a time with bounds checks. */
#define FC_POOL_VL 8

#if defined(__clang__)
#define FC_EVEN_LANES(VI, a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 9, 11, 13, 15)
#else
#define FC_EVEN_LANES(VI, a, b) __builtin_shuffle(a, b, (VI){0, 2, 4, 6, 9, 11, 13, 15})
#endif

/* The kernel columns s_lo .. s_hi-1 that reach the input for some output column: the others
   fall in the padding for every q (a huge padded kernel must not cost its width). */
static inline void tap_columns(const fc_pool_geom *g, ptrdiff_t *s_lo, ptrdiff_t *s_hi)
{
    const ptrdiff_t need = g->pw - (g->Q - 1) * g->sw;
    const ptrdiff_t end = (g->W - 1 + g->pw) / g->dw + 1;
    *s_lo = need <= 0 ? 0 : (need + g->dw - 1) / g->dw;
    *s_hi = end < g->kw ? end : g->kw;
}

/* The input rows hs, hs + dh, ... < he of output row p's windows that lie inside the input. */
static inline void window_rows(const fc_pool_geom *g, ptrdiff_t p, ptrdiff_t *hs, ptrdiff_t *he)
{
    const ptrdiff_t h0 = p * g->sh - g->ph, end = h0 + (g->kh - 1) * g->dh + 1;
    *hs = first_inside(h0, g->dh);
    *he = end < g->H ? end : g->H;
}

/* One window (p, q) of row range hs .. he-1 (step dh), its taps checked against the row.
   The running maximum and its index change by bit masks, not branches: whether a tap is the
   new maximum is as random as the data (UT: an unsigned integer as wide as T). */
#define MAXPOOL_ONE(T, UT)                                                                   \
    do {                                                                                     \
        T mx = -INFINITY;                                                                    \
        int64_t at = hs * W + first_inside(q * sw - g->pw, g->dw);                           \
        for (h = hs; h < he; h += g->dh)                                                     \
            for (s = s_lo; s < s_hi; s++) {                                                  \
                const ptrdiff_t w = q * sw + s * g->dw - g->pw;                              \
                if (w >= 0 && w < W) {                                                       \
                    const T v = x[h * W + w];                                                \
                    const int take = (v > mx) | (v != v);                                    \
                    const UT k = (UT)0 - (UT)take;                                           \
                    const int64_t k64 = -(int64_t)take;                                      \
                    UT vb, mb;                                                               \
                    memcpy(&vb, &v, sizeof vb);                                              \
                    memcpy(&mb, &mx, sizeof mb);                                             \
                    mb = (vb & k) | (mb & ~k);                                               \
                    memcpy(&mx, &mb, sizeof mx);                                             \
                    at = ((h * W + w) & k64) | (at & ~k64);                                  \
                }                                                                            \
            }                                                                                \
        y[p * g->Q + q] = mx;                                                                \
        ind[p * g->Q + q] = at;                                                              \
    } while (0)

/* Windows (p, q) .. (p, q + NB*FC_POOL_VL - 1) of the interior (q < qb), in NB vectors,
   each ending by qb at the latest */
#define MAXPOOL_VECTORS(NAME, V, VI, IT, NB)                                                 \
    do {                                                                                     \
        ptrdiff_t qv[NB];                                                                    \
        V m[NB];                                                                             \
        VI id[NB];                                                                           \
        for (b = 0; b < NB; b++) {                                                           \
            const ptrdiff_t q1 = q + b * FC_POOL_VL, first = hs * W + off_lo;                \
            qv[b] = q1 + FC_POOL_VL <= qb ? q1 : qb - FC_POOL_VL;                            \
            m[b] = NAME##_tap(x + first + qv[b] * sw, sw);                                   \
            id[b] = lane + (IT)(first + qv[b] * sw);                                         \
        }                                                                                    \
        for (h = hs; h < he; h += g->dh)                                                     \
            for (s = h == hs ? s_lo + 1 : s_lo; s < s_hi; s++) {                             \
                const ptrdiff_t at = h * W + s * g->dw - g->pw;                              \
                for (b = 0; b < NB; b++) {                                                   \
                    const V v = NAME##_tap(x + at + qv[b] * sw, sw);                         \
                    const VI k = (v > m[b]) | (v != v);                                      \
                    m[b] = (V)(((VI)v & k) | ((VI)m[b] & ~k));                               \
                    id[b] = ((lane + (IT)(at + qv[b] * sw)) & k) | (id[b] & ~k);             \
                }                                                                            \
            }                                                                                \
        for (b = 0; b < NB; b++)                                                             \
            NAME##_store(y + p * g->Q + qv[b], ind + p * g->Q + qv[b], m[b], id[b]);         \
    } while (0)

/* NAME: planes whose indices fit IT, an integer as wide as T, so that a vector of maxima and
   one of indices have the same lanes. V, VI: FC_POOL_VL lanes of T and of IT. */
#define MAXPOOL_PLANE(NAME, T, IT, UT, V, VI)                                                \
    typedef T V __attribute__((vector_size(FC_POOL_VL * sizeof(T))));                        \
    typedef IT VI __attribute__((vector_size(FC_POOL_VL * sizeof(T))));                      \
    static inline __attribute__((always_inline)) V NAME##_tap(const T *xr, ptrdiff_t sw)     \
    {                                                                                        \
        V v, u;                                                                              \
        int l;                                                                               \
        if (sw == 1) {                                                                       \
            memcpy(&v, xr, sizeof v);                                                        \
        } else if (sw == 2) {                                                                \
            memcpy(&v, xr, sizeof v);                                                        \
            memcpy(&u, xr + FC_POOL_VL - 1, sizeof u);                                       \
            v = FC_EVEN_LANES(VI, v, u);                                                     \
        } else {                                                                             \
            for (l = 0; l < FC_POOL_VL; l++)                                                 \
                v[l] = xr[l * sw];                                                           \
        }                                                                                    \
        return v;                                                                            \
    }                                                                                        \
    static inline __attribute__((always_inline)) void NAME##_store(T *y, int64_t *ind, V m, \
                                                                 VI id)                    \
    {                                                                                        \
        IT ids[FC_POOL_VL];                                                                  \
        int l;                                                                               \
        memcpy(y, &m, sizeof m);                                                             \
        memcpy(ids, &id, sizeof ids);                                                        \
        for (l = 0; l < FC_POOL_VL; l++)                                                     \
            ind[l] = ids[l];                                                                 \
    }                                                                                        \
    static FC_CLONES void NAME(const fc_pool_geom *g, const T *x, T *y, int64_t *ind)        \
    {                                                                                        \
        const ptrdiff_t sw = g->sw, W = g->W;                                                \
        ptrdiff_t p, q, h, s, hs, he;                                                        \
        VI lane;                                                                             \
        int l, b;                                                                            \
        ptrdiff_t s_lo, s_hi;                                                                \
        tap_columns(g, &s_lo, &s_hi);                                                        \
        /* the interior qa <= q < qb: columns whose taps s_lo .. s_hi-1 all lie inside */    \
        const ptrdiff_t off_lo = s_lo * g->dw - g->pw, off_hi = (s_hi - 1) * g->dw - g->pw;  \
        const ptrdiff_t qa0 = off_lo >= 0 ? 0 : (-off_lo + sw - 1) / sw;                     \
        const ptrdiff_t qb0 = W - 1 - off_hi < 0 ? 0 : (W - 1 - off_hi) / sw + 1;            \
        const ptrdiff_t qa = qa0 < g->Q ? qa0 : g->Q;                                        \
        const ptrdiff_t qb1 = qb0 < qa ? qa : qb0 < g->Q ? qb0 : g->Q;                       \
        const ptrdiff_t qb = qb1 - qa < FC_POOL_VL ? qa : qb1; /* too few for a vector */    \
        for (l = 0; l < FC_POOL_VL; l++)                                                     \
            lane[l] = (IT)(l * sw);                                                          \
        for (p = 0; p < g->P; p++) {                                                         \
            window_rows(g, p, &hs, &he);                                                     \
            for (q = 0; q < qa; q++)                                                         \
                MAXPOOL_ONE(T, UT);                                                          \
            /* 4 vectors at a time while 3 or more remain, then 2 (the last group may   \
               repeat a vector): each tap's compare and blends wait on the one before,   \
               so one vector alone left the core waiting on that chain */                \
            for (q = qa; qb - q > 2 * FC_POOL_VL; q += 4 * FC_POOL_VL)                       \
                MAXPOOL_VECTORS(NAME, V, VI, IT, 4);                                         \
            for (; q < qb; q += 2 * FC_POOL_VL)                                              \
                MAXPOOL_VECTORS(NAME, V, VI, IT, 2);                                         \
            for (q = qb; q < g->Q; q++)                                                      \
                MAXPOOL_ONE(T, UT);                                                          \
        }                                                                                    \
    }

MAXPOOL_PLANE(maxpool_plane_f32, float, int32_t, uint32_t, fc_vf32, fc_vi32)
MAXPOOL_PLANE(maxpool_plane_f64, double, int64_t, uint64_t, fc_vf64, fc_vi64)

/* Planes of 2^31 elements or more (the float kernel's indices are int32), one output at a
   time. */
static void maxpool_plane_f32_huge(const fc_pool_geom *g, const float *x, float *y,
                                   int64_t *ind)
{
    const ptrdiff_t sw = g->sw, W = g->W;
    ptrdiff_t p, q, h, s, hs, he, s_lo, s_hi;
    tap_columns(g, &s_lo, &s_hi);
    for (p = 0; p < g->P; p++) {
        window_rows(g, p, &hs, &he);
        for (q = 0; q < g->Q; q++)
            MAXPOOL_ONE(float, uint32_t);
    }
}

void fc_maxpool_plane_f32(const fc_pool_geom *g, const float *x, float *y, int64_t *ind)
{
    if (g->H * g->W <= INT32_MAX)
        maxpool_plane_f32(g, x, y, ind);
    else
        maxpool_plane_f32_huge(g, x, y, ind);
}

void fc_maxpool_plane_f64(const fc_pool_geom *g, const double *x, double *y, int64_t *ind)
{
    maxpool_plane_f64(g, x, y, ind);
}

/* The gradient of one plane, for windows that do not overlap (dilation 1, stride >= kernel
   both ways; see pool.h). Input row h lies in window row p = (h + ph) / sh when
   (h + ph) % sh < kh, column w likewise; windows q's stride span, columns q*sw - pw up to
   (q+1)*sw - pw, holds its kw columns and then a gap that no window covers. Each row goes
   in three runs of windows: those whose span starts before column 0, those whose span lies
   inside [0, W) (no bounds checks: SW and KW are constants there for the common sizes, so
   the compiler vectorises it), and the rest. Each column gets the window's gradient or zero
   by a bit mask, not a branch: which column holds a window's maximum is as random as the
   data, and the branch GCC made of `hit ? gy : 0` mispredicted. */
#define DISJOINT_RUN(T, UT, CHECKED, SW, KW)                                                 \
    for (; q < q_stop; q++) {                                                                \
        const ptrdiff_t w0 = q * (SW) - g->pw;                                               \
        const int64_t at = ir[q]; /* where the window's maximum is */                        \
        UT bits;                                                                             \
        memcpy(&bits, gyr + q, sizeof bits);                                                 \
        for (s = 0; s < (SW); s++) {                                                         \
            const ptrdiff_t w = w0 + s;                                                      \
            if (!(CHECKED) || (w >= 0 && w < g->W)) {                                        \
                const UT hit = (UT)((s < (KW)) & (at == base + w)), v = bits & (UT)-hit;     \
                memcpy(gr + w, &v, sizeof v);                                                \
                found += (ptrdiff_t)hit;                                                     \
            }                                                                                \
        }                                                                                    \
    }

#define DISJOINT_PLANE(NAME, T, UT)                                                          \
    static inline __attribute__((always_inline)) ptrdiff_t NAME##_rows(                      \
        const fc_pool_geom *g, const T *restrict gy, const int64_t *restrict ind,            \
        T *restrict gx, const ptrdiff_t SW, const ptrdiff_t KW)                              \
    {                                                                                        \
        const ptrdiff_t q_lo = (g->pw + SW - 1) / SW, q_end = (g->W + g->pw) / SW;           \
        const ptrdiff_t q_mid = q_lo < g->Q ? q_lo : g->Q;                                   \
        const ptrdiff_t q_hi = q_end < q_mid ? q_mid : q_end < g->Q ? q_end : g->Q;          \
        ptrdiff_t h, q, s, q_stop, found = 0;                                                \
        for (h = 0; h < g->H; h++) {                                                         \
            const ptrdiff_t p = (h + g->ph) / g->sh, r = (h + g->ph) % g->sh;                \
            T *restrict gr = gx + h * g->W;                                                  \
            const T *restrict gyr = gy + p * g->Q;                                           \
            const int64_t *restrict ir = ind + p * g->Q;                                     \
            const int64_t base = h * g->W;                                                   \
            if (p >= g->P || r >= g->kh) {                                                   \
                for (s = 0; s < g->W; s++)                                                   \
                    gr[s] = (T)0;                                                            \
                continue;                                                                    \
            }                                                                                \
            q = 0;                                                                           \
            q_stop = q_mid;                                                                  \
            DISJOINT_RUN(T, UT, 1, SW, KW)                                                   \
            q_stop = q_hi;                                                                   \
            DISJOINT_RUN(T, UT, 0, SW, KW)                                                   \
            q_stop = g->Q;                                                                   \
            DISJOINT_RUN(T, UT, 1, SW, KW)                                                   \
            for (s = g->Q * SW - g->pw; s < g->W; s++) /* past the last window's span */     \
                if (s >= 0)                                                                  \
                    gr[s] = (T)0;                                                            \
        }                                                                                    \
        return found;                                                                        \
    }                                                                                        \
    FC_CLONES ptrdiff_t NAME(const fc_pool_geom *g, const T *gy, const int64_t *ind, T *gx)  \
    {                                                                                        \
        if (g->sw == 2 && g->kw == 2)                                                        \
            return NAME##_rows(g, gy, ind, gx, 2, 2);                                        \
        if (g->sw == 3 && g->kw == 3)                                                        \
            return NAME##_rows(g, gy, ind, gx, 3, 3);                                        \
        return NAME##_rows(g, gy, ind, gx, g->sw, g->kw);                                    \
    }

DISJOINT_PLANE(fc_maxpool_backward_disjoint_f32, float, uint32_t)
DISJOINT_PLANE(fc_maxpool_backward_disjoint_f64, double, uint64_t)
