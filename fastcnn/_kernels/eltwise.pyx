"""Element-wise layer kernels (csrc/eltwise.c), threaded over contiguous chunks.

Arrays are flat, C-contiguous and of one float dtype; fastcnn.nn.activation prepares them.
"""
from cython.parallel cimport prange
from cython cimport floating

cdef extern from "eltwise.h" nogil:
    void fc_relu_forward_f32(const float *x, float *y, unsigned char *alive, Py_ssize_t n)
    void fc_relu_forward_f64(const double *x, double *y, unsigned char *alive, Py_ssize_t n)
    void fc_relu_backward_f32(const float *g, const unsigned char *alive, float *gx,
                              Py_ssize_t n)
    void fc_relu_backward_f64(const double *g, const unsigned char *alive, double *gx,
                              Py_ssize_t n)

cdef Py_ssize_t CHUNK = 1 << 16  # elements per task


def relu_forward(const floating[::1] x,          # IN
                 floating[::1] y,                # OUT: x where not x <= 0 (NaN too), else +0
                 unsigned char[::1] alive,       # OUT: 1 where the gradient passes, else 0
                 int n_threads):
    cdef Py_ssize_t n = x.shape[0], c, i, m
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=n_threads):
        i = c * CHUNK
        m = min(CHUNK, n - i)
        if floating is float:
            fc_relu_forward_f32(&x[i], &y[i], &alive[i], m)
        else:
            fc_relu_forward_f64(&x[i], &y[i], &alive[i], m)


def relu_backward(const floating[::1] grad,        # IN
                  const unsigned char[::1] alive,  # IN
                  floating[::1] grad_x,            # OUT: grad where alive, else +0
                  int n_threads):
    cdef Py_ssize_t n = grad.shape[0], c, i, m
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=n_threads):
        i = c * CHUNK
        m = min(CHUNK, n - i)
        if floating is float:
            fc_relu_backward_f32(&grad[i], &alive[i], &grad_x[i], m)
        else:
            fc_relu_backward_f64(&grad[i], &alive[i], &grad_x[i], m)
