/* Max-pooling over one (H, W) plane, vectorised across output columns. Plain C with GCC/Clang
 * vector extensions, no Python.h.
 *
 * Each window's taps (r, s) are visited in PyTorch's scan order (row-major), eight
 * neighbouring windows of a row at once, their running maxima and indices in registers: a
 * larger value or a NaN takes over, so ties keep the first maximum and a window holding NaN
 * reports its last NaN. Every output starts at -inf with the index of its window's first
 * in-bounds element. GCC/Clang build one copy per instruction set (AVX-512, AVX2, baseline)
 * and pick one at load time.
 *
 * x: (H, W); y, ind: (P, Q); ind holds flat positions h*W + w. Every window must hold at
 * least one in-bounds element (fastcnn._args checks this).
 */
#ifndef FASTCNN_POOL_H
#define FASTCNN_POOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    ptrdiff_t H, W, P, Q;
    ptrdiff_t kh, kw, sh, sw, ph, pw, dh, dw;
} fc_pool_geom;

void fc_maxpool_plane_f32(const fc_pool_geom *g, const float *x, float *y, int64_t *ind);
void fc_maxpool_plane_f64(const fc_pool_geom *g, const double *x, double *y, int64_t *ind);

/* The gradient of one plane when no two windows overlap (dilation 1, sh >= kh, sw >= kw):
 * gx[h, w] = gy[p, q] where (h, w) is window (p, q)'s index, 0 everywhere else, each element
 * of gx written once (no zero-fill, then scatter). Returns how many windows' indices lay in
 * their own window: fewer than P*Q means some index came from elsewhere (not max_pool2d
 * with these arguments), and the caller redoes the plane as a scatter. */
ptrdiff_t fc_maxpool_backward_disjoint_f32(const fc_pool_geom *g, const float *gy,
                                           const int64_t *ind, float *gx);
ptrdiff_t fc_maxpool_backward_disjoint_f64(const fc_pool_geom *g, const double *gy,
                                           const int64_t *ind, double *gx);

#endif
