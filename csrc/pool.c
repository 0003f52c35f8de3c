#include <math.h>

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

/* Output columns q whose tap at column offset `off` (= s*dw - pw) lies inside [0, W). */
static inline void valid_columns(const fc_pool_geom *g, ptrdiff_t off, ptrdiff_t *lo,
                                 ptrdiff_t *hi)
{
    ptrdiff_t a = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
    ptrdiff_t b = g->W - off <= 0 ? 0 : (g->W - 1 - off) / g->sw + 1;
    *lo = a;
    *hi = b < g->Q ? b : g->Q;
}

/* One plane, a chunk of up to FC_POOL_CHUNK output columns of a row at a time: the running
   maxima and their indices live in small arrays (in L1) of lanes as wide as T's, IT (int32
   for float, where the plane has fewer than 2^31 elements), so that the compare-and-take
   over a tap's columns vectorises into whole registers; int64 indices beside float maxima
   took two index registers per value register. */
#define FC_POOL_CHUNK 256
#define MAXPOOL_PLANE(NAME, T, IT)                                                           \
    static FC_CLONES void NAME(const fc_pool_geom *g, const T *x, T *y, int64_t *ind)        \
    {                                                                                        \
        const ptrdiff_t sw = g->sw;                                                          \
        ptrdiff_t p, q, q0, n, h, s, lo, hi;                                                 \
        T m[FC_POOL_CHUNK];                                                                  \
        IT id[FC_POOL_CHUNK];                                                                \
        /* kernel columns that reach the input for some output column: the others fall in \
           the padding for every q (a huge padded kernel must not cost its width) */       \
        const ptrdiff_t need = g->pw - (g->Q - 1) * sw;                                      \
        const ptrdiff_t s_lo = need <= 0 ? 0 : (need + g->dw - 1) / g->dw;                   \
        const ptrdiff_t s_end = (g->W - 1 + g->pw) / g->dw + 1;                               \
        const ptrdiff_t s_hi = s_end < g->kw ? s_end : g->kw;                                 \
        for (p = 0; p < g->P; p++) {                                                         \
            const ptrdiff_t h0 = p * g->sh - g->ph;                                          \
            const ptrdiff_t hs = first_inside(h0, g->dh);                                    \
            const ptrdiff_t he0 = h0 + (g->kh - 1) * g->dh + 1;                              \
            const ptrdiff_t he = he0 < g->H ? he0 : g->H;                                    \
            for (q0 = 0; q0 < g->Q; q0 += n) {                                               \
                n = g->Q - q0 < FC_POOL_CHUNK ? g->Q - q0 : FC_POOL_CHUNK;                   \
                /* each window's first in-bounds element: from q_in on the windows start   \
                   inside the row, those before it in the left padding */                  \
                const ptrdiff_t q_pad = (g->pw - q0 * sw + sw - 1) / sw;                     \
                const ptrdiff_t q_in = q_pad < 0 ? 0 : q_pad < n ? q_pad : n;                \
                for (q = 0; q < n; q++)                                                      \
                    m[q] = -INFINITY;                                                        \
                for (q = 0; q < q_in; q++)                                                   \
                    id[q] = (IT)(hs * g->W + first_inside((q0 + q) * sw - g->pw, g->dw));    \
                for (q = q_in; q < n; q++)                                                   \
                    id[q] = (IT)(hs * g->W + (q0 + q) * sw - g->pw);                         \
                for (h = hs; h < he; h += g->dh) {                                           \
                    for (s = s_lo; s < s_hi; s++) {                                          \
                        const ptrdiff_t off = s * g->dw - g->pw;                             \
                        /* the chunk's columns, relative to q0, whose tap is inside */       \
                        valid_columns(g, off, &lo, &hi);                                     \
                        lo = lo > q0 ? lo - q0 : 0;                                          \
                        hi = hi < q0 + n ? hi - q0 : n;                                      \
                        const T *restrict xr = x + h * g->W + off + q0 * sw;                 \
                        const IT base = (IT)(h * g->W + off + q0 * sw);                      \
                        if (sw == 1) {                                                       \
                            for (q = lo; q < hi; q++) {                                      \
                                const T v = xr[q];                                           \
                                const _Bool take = (v > m[q]) | (v != v);                    \
                                m[q] = take ? v : m[q];                                      \
                                id[q] = take ? base + (IT)q : id[q];                         \
                            }                                                                \
                        } else {                                                             \
                            for (q = lo; q < hi; q++) {                                      \
                                const T v = xr[q * sw];                                      \
                                const _Bool take = (v > m[q]) | (v != v);                    \
                                m[q] = take ? v : m[q];                                      \
                                id[q] = take ? base + (IT)(q * sw) : id[q];                  \
                            }                                                                \
                        }                                                                    \
                    }                                                                        \
                }                                                                            \
                T *restrict yr = y + p * g->Q + q0;                                          \
                int64_t *restrict ir = ind + p * g->Q + q0;                                  \
                for (q = 0; q < n; q++) {                                                    \
                    yr[q] = m[q];                                                            \
                    ir[q] = id[q];                                                           \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

MAXPOOL_PLANE(maxpool_plane_f32_i32, float, int32_t)
MAXPOOL_PLANE(maxpool_plane_f32_i64, float, int64_t)
MAXPOOL_PLANE(maxpool_plane_f64_i64, double, int64_t)

void fc_maxpool_plane_f32(const fc_pool_geom *g, const float *x, float *y, int64_t *ind)
{
    if (g->H * g->W <= INT32_MAX)
        maxpool_plane_f32_i32(g, x, y, ind);
    else
        maxpool_plane_f32_i64(g, x, y, ind);
}

void fc_maxpool_plane_f64(const fc_pool_geom *g, const double *x, double *y, int64_t *ind)
{
    maxpool_plane_f64_i64(g, x, y, ind);
}

/* The gradient of one plane, for windows that do not overlap (dilation 1, stride >= kernel
   both ways; see pool.h). Input row h lies in window row p = (h + ph) / sh when
   (h + ph) % sh < kh, column w likewise; windows q's stride span, columns q*sw - pw up to
   (q+1)*sw - pw, holds its kw columns and then a gap that no window covers. Each row goes
   in three runs of windows: those whose span starts before column 0, those whose span lies
   inside [0, W) (no bounds checks: SW and KW are constants there for the common sizes, so
   the compiler vectorises it), and the rest. */
#define DISJOINT_RUN(T, CHECKED, SW, KW)                                                     \
    for (; q < q_stop; q++) {                                                                \
        const ptrdiff_t w0 = q * (SW) - g->pw;                                               \
        for (s = 0; s < (SW); s++) {                                                         \
            const ptrdiff_t w = w0 + s;                                                      \
            if (!(CHECKED) || (w >= 0 && w < g->W)) {                                        \
                const _Bool hit = s < (KW) && ir[q] == base + w;                             \
                gr[w] = hit ? gyr[q] : (T)0;                                                 \
                found += hit;                                                                \
            }                                                                                \
        }                                                                                    \
    }

#define DISJOINT_PLANE(NAME, T)                                                              \
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
            DISJOINT_RUN(T, 1, SW, KW)                                                       \
            q_stop = q_hi;                                                                   \
            DISJOINT_RUN(T, 0, SW, KW)                                                       \
            q_stop = g->Q;                                                                   \
            DISJOINT_RUN(T, 1, SW, KW)                                                       \
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

DISJOINT_PLANE(fc_maxpool_backward_disjoint_f32, float)
DISJOINT_PLANE(fc_maxpool_backward_disjoint_f64, double)
