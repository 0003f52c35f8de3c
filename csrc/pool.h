/* Max-pooling over one (H, W) plane, vectorised across output columns. Plain C, no Python.h.
 *
 * For each output row, the window taps (r, s) are visited in PyTorch's scan order (row-major),
 * and each tap updates all output columns at once: a larger value or a NaN takes over, so
 * ties keep the first maximum and a window holding NaN reports its last NaN. Every output
 * starts at -inf with the index of its window's first in-bounds element. The loops carry no
 * branches on the data, so the compiler vectorises them; GCC/Clang build one copy per
 * instruction set (AVX-512, AVX2, baseline) and pick one at load time.
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

#endif
