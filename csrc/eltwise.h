/* Element-wise layer kernels over one contiguous chunk. Plain C, no Python.h; written as
 * branch-free selects that compilers vectorise (a data-dependent branch per element runs
 * several times slower on the random signs of activations). */
#ifndef FASTCNN_ELTWISE_H
#define FASTCNN_ELTWISE_H

#include <stddef.h>

/* y = x where not (x <= 0) (so NaN passes), else +0. */
void fc_relu_forward_f32(const float *x, float *y, ptrdiff_t n);
void fc_relu_forward_f64(const double *x, double *y, ptrdiff_t n);

/* gx = g where not (y <= 0), y being relu's output, else +0 (also where g is NaN or inf). */
void fc_relu_backward_f32(const float *g, const float *y, float *gx, ptrdiff_t n);
void fc_relu_backward_f64(const double *g, const double *y, double *gx, ptrdiff_t n);

#endif
