"""Element-wise kernels (csrc/eltwise.c), threaded over contiguous chunks.

Arrays are flat, C-contiguous and of one float dtype; fastcnn.functional prepares them.
"""
from cython.parallel cimport prange
from cython cimport floating

cdef extern from "eltwise.h" nogil:
    void fc_relu_forward_f32(const float *x, float *y, Py_ssize_t n)
    void fc_relu_forward_f64(const double *x, double *y, Py_ssize_t n)
    void fc_relu_backward_f32(const float *g, const float *y, float *gx, Py_ssize_t n)
    void fc_relu_backward_f64(const double *g, const double *y, double *gx, Py_ssize_t n)

cdef Py_ssize_t CHUNK = 1 << 16  # elements per task


def relu_forward(const floating[::1] x,          # IN
                 floating[::1] y,                # OUT: x where not x <= 0 (NaN too), else +0
                 int n_threads):
    cdef Py_ssize_t n = x.shape[0], c, i, m
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=n_threads):
        i = c * CHUNK
        m = min(CHUNK, n - i)
        if floating is float:
            fc_relu_forward_f32(&x[i], &y[i], m)
        else:
            fc_relu_forward_f64(&x[i], &y[i], m)


def relu_backward(const floating[::1] grad,      # IN
                  const floating[::1] y,         # IN: relu_forward's output
                  floating[::1] grad_x,          # OUT: grad where not y <= 0, else +0
                  int n_threads):
    cdef Py_ssize_t n = grad.shape[0], c, i, m
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=n_threads):
        i = c * CHUNK
        m = min(CHUNK, n - i)
        if floating is float:
            fc_relu_backward_f32(&grad[i], &y[i], &grad_x[i], m)
        else:
            fc_relu_backward_f64(&grad[i], &y[i], &grad_x[i], m)
