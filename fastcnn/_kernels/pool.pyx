"""Max- and average-pooling over 2-D planes, and their gradients.

Arrays are C-contiguous, one float dtype, sizes already checked by fastcnn.functional:
x__nchw (N, C, H, W), y__ncpq (N, C, P, Q), indices int64 (N, C, P, Q) holding flat positions
h*W + w in the input plane. Each thread owns whole (n, c) planes, so no two threads write the
same element. Window bounds follow PyTorch's CPU kernels exactly (see each function and
csrc/pool.h), so the NaN, tie, ceil_mode and divisor rules match PyTorch.
"""
from cython.parallel cimport prange
from cython cimport floating
from libc.stdint cimport int64_t


def max_forward(const floating[:, :, :, ::1] x__nchw,     # IN
                floating[:, :, :, ::1] y__ncpq,           # OUT, every element written
                int64_t[:, :, :, ::1] indices__ncpq,      # OUT, every element written
                Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, int n_threads):
    """Max-pooling with PyTorch's padding, dilation and NaN rules; also writes argmax indices
    (csrc/pool.c does one plane)."""
    cdef Py_ssize_t NC = x__nchw.shape[0] * x__nchw.shape[1], plane
    cdef fc_pool_geom g
    g.H, g.W = x__nchw.shape[2], x__nchw.shape[3]
    g.P, g.Q = y__ncpq.shape[2], y__ncpq.shape[3]
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = kh, kw, sh, sw, ph, pw, dh, dw
    if NC == 0:
        return
    cdef const floating *x = &x__nchw[0, 0, 0, 0]
    cdef floating *y = &y__ncpq[0, 0, 0, 0]
    cdef int64_t *ind = &indices__ncpq[0, 0, 0, 0]
    for plane in prange(NC, nogil=True, schedule="static", num_threads=n_threads):
        if floating is float:
            fc_maxpool_plane_f32(&g, x + plane * g.H * g.W, y + plane * g.P * g.Q,
                                 ind + plane * g.P * g.Q)
        else:
            fc_maxpool_plane_f64(&g, x + plane * g.H * g.W, y + plane * g.P * g.Q,
                                 ind + plane * g.P * g.Q)


def max_backward(const floating[:, :, :, ::1] gy__ncpq,      # IN
                 const int64_t[:, :, :, ::1] indices__ncpq,  # IN
                 floating[:, :, :, ::1] gx__nchw,            # OUT, every element written
                 Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                 Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, int n_threads):
    """gx[n, c].flat[indices[n, c, p, q]] += gy[n, c, p, q], starting from zero. Returns
    False if some index lies outside [0, H*W) (it is skipped; gx is then not the gradient).

    When no two windows overlap (dilation 1, stride >= kernel), each plane is written once
    by csrc/pool.c, which checks that every index lies in its own window; a plane where one
    does not (indices not from max_forward with these arguments), and every plane of
    overlapping windows, is zeroed and then scattered into."""
    cdef Py_ssize_t NC = gx__nchw.shape[0] * gx__nchw.shape[1]
    cdef Py_ssize_t HW = gx__nchw.shape[2] * gx__nchw.shape[3]
    cdef Py_ssize_t PQ = gy__ncpq.shape[2] * gy__ncpq.shape[3], plane, found
    cdef Py_ssize_t bad = 0
    cdef fc_pool_geom g
    g.H, g.W = gx__nchw.shape[2], gx__nchw.shape[3]
    g.P, g.Q = gy__ncpq.shape[2], gy__ncpq.shape[3]
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = kh, kw, sh, sw, ph, pw, dh, dw
    cdef bint disjoint = dh == 1 and dw == 1 and sh >= kh and sw >= kw
    if NC == 0:
        return True
    cdef const floating *gy = &gy__ncpq[0, 0, 0, 0]
    cdef const int64_t *ind = &indices__ncpq[0, 0, 0, 0]
    cdef floating *gx = &gx__nchw[0, 0, 0, 0]
    for plane in prange(NC, nogil=True, schedule="static", num_threads=n_threads):
        found = -1
        if disjoint:
            if floating is float:
                found = fc_maxpool_backward_disjoint_f32(&g, gy + plane * PQ, ind + plane * PQ,
                                                         gx + plane * HW)
            else:
                found = fc_maxpool_backward_disjoint_f64(&g, gy + plane * PQ, ind + plane * PQ,
                                                         gx + plane * HW)
        if found != PQ:
            bad += _scatter_plane(gy + plane * PQ, ind + plane * PQ, gx + plane * HW, PQ, HW)
    return bad == 0


cdef Py_ssize_t _scatter_plane(const floating *gy, const int64_t *ind, floating *gx,
                               Py_ssize_t PQ, Py_ssize_t HW) noexcept nogil:
    # gx = 0, then gx[ind[i]] += gy[i]; returns how many indices lie outside [0, HW)
    cdef Py_ssize_t i, bad = 0
    for i in range(HW):
        gx[i] = 0
    for i in range(PQ):
        if 0 <= ind[i] < HW:
            gx[ind[i]] += gy[i]
        else:
            bad += 1
    return bad


cdef inline Py_ssize_t _avg_window(Py_ssize_t o, Py_ssize_t stride, Py_ssize_t pad,
                                   Py_ssize_t k, Py_ssize_t size, bint count_include_pad,
                                   Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    # PyTorch's rule: the window is clipped to the padded input for the divisor when padding
    # counts, then to the input itself for the sum. Returns this axis' share of the divisor.
    cdef Py_ssize_t a = o * stride - pad
    cdef Py_ssize_t b = a + k
    cdef Py_ssize_t padded
    if b > size + pad:
        b = size + pad
    padded = b - a
    if a < 0:
        a = 0
    if b > size:
        b = size
    lo[0] = a
    hi[0] = b
    return padded if count_include_pad else b - a


cdef void _avg_plane(const floating *x, floating *y, Py_ssize_t H, Py_ssize_t W, Py_ssize_t P,
                     Py_ssize_t Q, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad) noexcept nogil:
    cdef Py_ssize_t p, q, h, w, h0, h1, w0, w1, dp, dq
    cdef floating acc
    for p in range(P):
        dp = _avg_window(p, sh, ph, kh, H, count_include_pad, &h0, &h1)
        for q in range(Q):
            dq = _avg_window(q, sw, pw, kw, W, count_include_pad, &w0, &w1)
            acc = 0
            if h0 < h1 and w0 < w1:
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        acc += x[h * W + w]
                acc /= dp * dq
            y[p * Q + q] = acc


cdef void _avg_plane_backward(const floating *gy, floating *gx, Py_ssize_t H, Py_ssize_t W,
                              Py_ssize_t P, Py_ssize_t Q, Py_ssize_t kh, Py_ssize_t kw,
                              Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                              bint count_include_pad) noexcept nogil:
    cdef Py_ssize_t p, q, h, w, h0, h1, w0, w1, dp, dq
    cdef floating g
    for h in range(H * W):
        gx[h] = 0
    for p in range(P):
        dp = _avg_window(p, sh, ph, kh, H, count_include_pad, &h0, &h1)
        for q in range(Q):
            dq = _avg_window(q, sw, pw, kw, W, count_include_pad, &w0, &w1)
            if h0 < h1 and w0 < w1:
                g = gy[p * Q + q] / (dp * dq)
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        gx[h * W + w] += g


def avg_forward(const floating[:, :, :, ::1] x__nchw,   # IN
                floating[:, :, :, ::1] y__ncpq,         # OUT, every element written
                Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad, int n_threads):
    """Average pooling; windows with no in-bounds element give 0."""
    cdef Py_ssize_t NC = x__nchw.shape[0] * x__nchw.shape[1]
    cdef Py_ssize_t H = x__nchw.shape[2], W = x__nchw.shape[3]
    cdef Py_ssize_t P = y__ncpq.shape[2], Q = y__ncpq.shape[3], plane
    if NC == 0:
        return
    cdef const floating *x = &x__nchw[0, 0, 0, 0]
    cdef floating *y = &y__ncpq[0, 0, 0, 0]
    for plane in prange(NC, nogil=True, schedule="static", num_threads=n_threads):
        _avg_plane(x + plane * H * W, y + plane * P * Q, H, W, P, Q, kh, kw, sh, sw, ph, pw,
                   count_include_pad)


def avg_backward(const floating[:, :, :, ::1] gy__ncpq,   # IN
                 floating[:, :, :, ::1] gx__nchw,         # OUT, every element written
                 Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                 Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad, int n_threads):
    """Gradient of avg_forward: each window's gradient spread evenly over its elements."""
    cdef Py_ssize_t NC = gx__nchw.shape[0] * gx__nchw.shape[1]
    cdef Py_ssize_t H = gx__nchw.shape[2], W = gx__nchw.shape[3]
    cdef Py_ssize_t P = gy__ncpq.shape[2], Q = gy__ncpq.shape[3], plane
    if NC == 0:
        return
    cdef const floating *gy = &gy__ncpq[0, 0, 0, 0]
    cdef floating *gx = &gx__nchw[0, 0, 0, 0]
    for plane in prange(NC, nogil=True, schedule="static", num_threads=n_threads):
        _avg_plane_backward(gy + plane * P * Q, gx + plane * H * W, H, W, P, Q, kh, kw, sh, sw,
                            ph, pw, count_include_pad)
