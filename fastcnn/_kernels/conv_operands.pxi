# The microkernels' operands (included by conv.pyx): zero-padded, phase-split copies of an
# input (_prepare, or rows of it a task pads for itself: _pad_planes), packed weights (_pack),
# and the offsets of the kernel taps in a prepared buffer (_taps, _row_taps).

cdef class _Prepared:
    """Geometry of a prepared (padded, phase-split) copy of an (N, C, H, W) array: its rows
    top .. top + H - 1 hold the array's rows, the others are padding."""
    cdef public Py_ssize_t rows, phases, phase_len, row_pitch, plane, top, H
    cdef public object buffer

    def __init__(self, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t phases, Py_ssize_t top,
                 Py_ssize_t H, Py_ssize_t NC, dtype):
        """NC planes' buffer of dtype; NC = 0: the geometry alone (tasks prepare their own
        rows, see _conv_tasks and _wgrad_task)."""
        self.rows = rows
        self.top = top
        self.H = H
        self.phases = phases
        self.phase_len = (cols + phases - 1) // phases
        self.row_pitch = phases * self.phase_len
        self.plane = rows * self.row_pitch
        self.buffer = np.empty(NC * self.plane + FC_SLACK, dtype=dtype) if NC else None


cdef inline void _prepare_plane(const floating *src, floating *dst, Py_ssize_t H,
                                Py_ssize_t W, Py_ssize_t top, Py_ssize_t left, Py_ssize_t rows,
                                Py_ssize_t phases, Py_ssize_t phase_len) noexcept nogil:
    # dst[a, f, b] = src[a - top, b*phases + f - left], zero outside src (conv.h)
    if floating is float:
        fc_pad_plane_f32(src, dst, H, W, top, left, rows, phases, phase_len)
    else:
        fc_pad_plane_f64(src, dst, H, W, top, left, rows, phases, phase_len)


cdef struct _Pad:
    # how a task pads its own rows of a source array, as _prepare would (_pad_planes): the
    # source's plane sizes, its padding and the prepared planes' geometry
    Py_ssize_t H, W, top, left, rows, phases, phase_len


cdef _Pad _pad_of(_Prepared prep, Py_ssize_t W, Py_ssize_t left):
    cdef _Pad pad
    pad.H, pad.W, pad.top, pad.left = prep.H, W, prep.top, left
    pad.rows, pad.phases, pad.phase_len = prep.rows, prep.phases, prep.phase_len
    return pad


cdef void _pad_planes(const _Pad *pad, const floating *src, Py_ssize_t planes, floating *dst,
                      Py_ssize_t ldc, Py_ssize_t a0, Py_ssize_t rows) noexcept nogil:
    # prepared rows a0 .. a0 + rows - 1 of `planes` consecutive source planes, into dst
    # (plane pitch ldc)
    cdef Py_ssize_t c
    for c in range(planes):
        _prepare_plane(src + c * pad.H * pad.W, dst + c * ldc, pad.H, pad.W, pad.top - a0,
                       pad.left, rows, pad.phases, pad.phase_len)


cdef _Prepared _prepare(const floating[:, :, :, ::1] src, Py_ssize_t top, Py_ssize_t left,
                        Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t phases, int n_threads):
    cdef Py_ssize_t NC = src.shape[0] * src.shape[1], H = src.shape[2], W = src.shape[3]
    cdef Py_ssize_t plane
    cdef _Prepared prep = _Prepared(rows, cols, phases, top, H, NC,
                                    np.float32 if floating is float else np.float64)
    cdef floating[::1] buf = prep.buffer
    cdef const floating *s = &src[0, 0, 0, 0]
    cdef floating *d = &buf[0]
    cdef Py_ssize_t pplane = prep.plane, plen = prep.phase_len
    memset(d + NC * pplane, 0, FC_SLACK * sizeof(floating))
    for plane in prange(NC, nogil=True, schedule="static", num_threads=n_threads):
        _prepare_plane(s + plane * H * W, d + plane * pplane, H, W, top, left, rows, phases,
                       plen)
    return prep


def _in_place(x__nchw):
    """x itself as the prepared input, for kernels that read nothing but the windows'
    elements: with no padding and column stride 1 its rows, W apart, are the prepared rows,
    and no copy is made."""
    cdef Py_ssize_t H = x__nchw.shape[2], W = x__nchw.shape[3]
    x = np.asarray(x__nchw)
    cdef _Prepared prep = _Prepared(H, W, 1, 0, H, 0, x.dtype)
    prep.buffer = x.reshape(-1)
    return prep


def _taps(_Prepared prep, Py_ssize_t R, Py_ssize_t S, Py_ssize_t dh, Py_ssize_t dw):
    """Offset of each kernel tap (r, s) from the window origin in a prepared buffer."""
    taps = np.empty(R * S, dtype=np.intp)
    cdef Py_ssize_t[::1] t = taps
    cdef Py_ssize_t r, s
    for r in range(R):
        for s in range(S):
            t[r * S + s] = (r * dh * prep.row_pitch + (s * dw) % prep.phases * prep.phase_len
                            + (s * dw) // prep.phases)
    return taps


def _pack(w__kcrs, Py_ssize_t groups, Py_ssize_t block=FC_KB, Py_ssize_t align=1):
    """Weights (K, C/G, R, S) -> for each group, blocks of `block` of its output channels, each
    [C/G][R*S][kb] with kb the block's channels rounded up to a multiple of `align` (zeros
    past them), flat: with Kp = K/G rounded up to `align`, block (g, b) starts at
    (g*Kp + b*block) * C/G*R*S. w__kcrs may be any strided view (the data gradient's flipped,
    transposed weights are one): it is read in place. (Loops in C, not NumPy slices, whose
    fixed cost a call is more than small layers spend in their tiles; a contiguous copy of
    a transposed view first would cost more than the packing.)"""
    K, Cg, R, S = w__kcrs.shape
    Kp = (K // groups + align - 1) // align * align if groups else 0
    dtype = w__kcrs.dtype
    out = np.zeros(groups * Kp * Cg * R * S, dtype) if Kp * groups != K else np.empty(
        K * Cg * R * S, dtype)
    if dtype == np.float32:
        _pack_into[float](w__kcrs, K // groups, block, align, out)
    else:
        _pack_into[double](w__kcrs, K // groups, block, align, out)
    return out


cdef void _pack_into(const floating[:, :, :, :] w, Py_ssize_t Kg, Py_ssize_t block,
                     Py_ssize_t align, floating[::1] out) noexcept:
    # in the order of out, a block's channels for each (c, r, s) in turn: the data
    # gradient's transposed weights hold them together (a block of the layer's input
    # channels), so each step reads a short run; the forward's contiguous weights, read
    # across, lose less than that gains
    cdef Py_ssize_t Cg = w.shape[1], R = w.shape[2], S = w.shape[3], U = Cg * R * S
    cdef Py_ssize_t Kp = (Kg + align - 1) // align * align, g, b0, kb, kn, kk, c, r, s, o
    # element strides, negative for flipped axes (sizeof is unsigned: divided by it, they wrapped)
    cdef Py_ssize_t item = sizeof(floating)
    cdef Py_ssize_t s0 = w.strides[0] // item, s1 = w.strides[1] // item
    cdef Py_ssize_t s2 = w.strides[2] // item, s3 = w.strides[3] // item
    cdef const floating *src
    if w.shape[0] == 0 or U == 0:
        return
    for g in range(w.shape[0] // Kg):
        for b0 in range(0, Kg, block):
            kn = min(block, Kg - b0)                        # the block's channels,
            kb = (kn + align - 1) // align * align          # rounded up
            o = (g * Kp + b0) * U
            for c in range(Cg):
                for r in range(R):
                    for s in range(S):
                        src = &w[g * Kg + b0, 0, 0, 0] + c * s1 + r * s2 + s * s3
                        for kk in range(kn):
                            out[o + kk] = src[kk * s0]
                        o += kb


cdef object _row_taps(_Prepared prep, const Py_ssize_t[::1] taps, Py_ssize_t srow,
                      Py_ssize_t P, const floating[::1] wpack):
    """For each of P output rows, whose windows start srow prepared rows apart, the taps
    [lo, hi) that read rows of data (taps sorted by row, as _taps and backward_data make
    them): the others read padding alone, and the tiles skip them (a data gradient of small
    planes, widely padded, has many such). None when every row needs every tap,
    or when a weight is not finite: 0 * inf is NaN, so that padding then adds something."""
    cdef Py_ssize_t ntaps = taps.shape[0], p, t, row, lo, hi, i
    cdef bint skips = False
    out = np.empty((P, 2), np.intp)
    cdef Py_ssize_t[:, ::1] rt = out
    cdef Py_ssize_t[::1] tap_row = np.empty(ntaps, np.intp)  # each tap's row offset (one
    for t in range(ntaps):                                   # division per tap and row would
        tap_row[t] = taps[t] // prep.row_pitch               # weigh on small layers' calls)
    for p in range(P):
        lo, hi = ntaps, 0
        for t in range(ntaps):
            row = p * srow + tap_row[t]
            if prep.top <= row < prep.top + prep.H:
                lo = min(lo, t)
                hi = t + 1
        if hi <= lo:
            lo, hi = 0, 0
        rt[p, 0], rt[p, 1] = lo, hi
        skips = skips or hi - lo < ntaps
    if not skips:
        return None
    for i in range(wpack.shape[0]):
        if not (wpack[i] - wpack[i] == 0):  # inf or NaN
            return None
    return out
