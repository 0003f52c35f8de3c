from libc.stdint cimport int64_t

cdef extern from "pool.h" nogil:
    ctypedef struct fc_pool_geom:
        Py_ssize_t H, W, P, Q
        Py_ssize_t kh, kw, sh, sw, ph, pw, dh, dw
    void fc_maxpool_plane_f32(const fc_pool_geom *g, const float *x, float *y, int64_t *ind)
    void fc_maxpool_plane_f64(const fc_pool_geom *g, const double *x, double *y, int64_t *ind)
    Py_ssize_t fc_maxpool_backward_disjoint_f32(const fc_pool_geom *g, const float *gy,
                                                const int64_t *ind, float *gx)
    Py_ssize_t fc_maxpool_backward_disjoint_f64(const fc_pool_geom *g, const double *gy,
                                                const int64_t *ind, double *gx)
