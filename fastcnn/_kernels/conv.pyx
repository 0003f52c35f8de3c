"""Direct 2-D convolution (cross-correlation) and its two gradients: blocking and threads.

Arrays are C-contiguous, one float dtype (float32 or float64), with sizes already checked by
fastcnn.functional: x__nchw (N, C, H, W), w__kcrs (K, C/G, R, S), y__nkpq (N, K, P, Q);
padding is given per side as top/left (bottom/right follow from the output size).

The arithmetic is in csrc/conv.c (register-blocked SIMD microkernels, see conv.h). This file
prepares their operands and splits the work over OpenMP threads:

  _prepare    copies x once into a zero-padded buffer whose rows are split into column phases
              (for column stride sw, phase f holds columns f, f+sw, ...), so that neighbouring
              output columns read neighbouring elements for any stride and dilation. Buffer
              size: one padded copy of the input (+ a few elements of slack at the end). The
              forward's channel tiles and the channels-last weight gradient read x itself
              where it needs neither (no padding, column stride 1).
  _pack       copies w into blocks of output channels, [C/G][R*S][block] each, the order in
              which the forward microkernels read them: FC_KB channels for the tiles of
              output positions (fc_conv_tiles), fc_conv_ct_block (zero-padded to whole
              vectors) for the channel tiles (fc_conv_ctiles), which forward and
              backward_data pick where rows of positions would fill the vectors worse than
              the channels do.
  forward     one task = (image, group, block of output channels, block of rows); with
              one block per group each task pads its own rows instead (_conv_tasks). A
              tile of one output channel reuses each input row for every output row it
              reaches where the taps are rows alike (_row_reuse: the row tiles of
              fc_conv_tiles; depthwise layers, data gradients into one channel).
  _panel_tasks a 1x1 convolution with stride 1 and no padding instead reads x in pixel panels:
              runs of PW pixels, each copied as [C/G][PW] into the thread's scratch, one
              contiguous run per tile; one task = (image, group, run of PANEL_TASK panels),
              every output channel over each panel.
  backward_data is a forward pass over the padded output gradient with the weights'
              channel axes swapped, one pass per stride phase of the input gradient, over
              the taps that reach that phase (Georganas et al., SC18).
  backward_weight one task = (slot, group, block of output channels); slot s sums
              images s, s + NSLOT, ... into its own partial gradient, and the partials are
              added in a fixed order at the end: no two threads write the same element, and
              the result does not depend on the thread count. Each task copies its block of
              the output gradient, one image (or, for small images, a few) at a time, into
              rows padded to whole vectors; with one block per group it also pads its own
              images of x (_wgrad_task), as the forward's tasks do.
Each task turns denormals off (FTZ/DAZ) for its thread and restores the caller's state.
"""
import os
from math import gcd

import numpy as np

from cython.parallel cimport prange, threadid
from cython cimport floating
from libc.string cimport memcpy, memset

cdef Py_ssize_t TILE_PIXELS = 512   # output pixels per forward task (rows x columns)
cdef Py_ssize_t WGRAD_PIXELS = 1024 # output-gradient pixels per weight-gradient row block
cdef Py_ssize_t PANEL_TASK = 4     # pixel panels per 1x1 task
cdef Py_ssize_t NSLOT = 2
cdef Py_ssize_t OWN_PLANE_ELEMENTS = 16384  # a task's padded rows of all its channels, at most,
                                            # for it to take whole images (_conv_tasks)
cdef Py_ssize_t PREFETCH_BYTES = 1 << 18  # a weight-gradient task's next round, at most
cdef Py_ssize_t WGCL_PIXELS = 256   # pixels per channels-last weight-gradient block (128: 2-4% slower)
# Which weight-gradient kernel: "auto" (by shape), "rows" (fc_conv_wgrad, vectorised along
# output columns) or "channels" (fc_conv_wgcl, along output channels; ungrouped layers only).
# The tests set it to check both on every shape.
WGRAD_KERNEL = "auto"
# How the convolution tasks get their padded input: "auto" (by shape), "whole" (one padded
# copy of all of it, _prepare) or "per_task" (each task its own rows or images, see
# _conv_tasks and _wgrad_task; not the channels-last weight gradient). The tests set it to
# check both on every shape.
PREPARE = "auto"
# Which forward / data-gradient tile: "auto" (by shape, _channel_tiles_win), "positions"
# (fc_conv_tiles, vectorised along output positions), "rows" (the same, with its row tiles
# for one output channel where the taps allow, _row_reuse; "auto" takes them too) or
# "channels" (fc_conv_ctiles, along output channels). The tests set it to check each on
# every shape.
FORWARD_KERNEL = "auto"


_LEVELS = {"generic": 0, "avx2": 1, "avx512": 2}


def select_path(str path):
    """Use the 'generic', 'avx2' or 'avx512' microkernels, or the best this CPU runs ('best');
    a level the CPU lacks falls back to the best it has. Returns the path now in use. Not
    while kernels run in other threads: they size their buffers for the path in use."""
    if path != "best" and path not in _LEVELS:
        raise ValueError(f"path must be 'best' or one of {sorted(_LEVELS)}, got {path!r}")
    fc_conv_select(_LEVELS.get(path, 2))
    return fc_conv_path().decode()


def kernel_path():
    """The instruction set the convolution microkernels use now: 'avx512', 'avx2+fma' or
    'generic'."""
    return fc_conv_path().decode()


select_path(os.environ.get("FASTCNN_SIMD") or "best")


# ----------------------------------------------------------------------------- operand prep

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
    transposed weights are one): it is read in place. (Loops in C: the same in NumPy slices
    took 6 us a call, more than LeNet-5's conv1 layer spends in tiles for one image; a
    contiguous copy of the ResNet 3x3 layer's transposed weights first took 1.1 ms.)"""
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
    # channels), so each step reads a short run (ResNet 3x3 layer, 128 x 128 x 3 x 3,
    # transposed: 0.4 ms, against 0.65 ms reading along (c, r, s) and 1.2 ms copying the
    # view first; the forward's contiguous weights, 0.12 ms against 0.07)
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
    them): the others read padding alone, and the tiles skip them (LeNet-5's conv2 data
    gradient, 10x10 rows padded by 4: 29% of the work). None when every row needs every tap,
    or when a weight is not finite: 0 * inf is NaN, so that padding then adds something."""
    cdef Py_ssize_t ntaps = taps.shape[0], p, t, row, lo, hi, i
    cdef bint skips = False
    out = np.empty((P, 2), np.intp)
    cdef Py_ssize_t[:, ::1] rt = out
    cdef Py_ssize_t[::1] tap_row = np.empty(ntaps, np.intp)  # each tap's row offset (one
    for t in range(ntaps):                                   # division per tap and row was
        tap_row[t] = taps[t] // prep.row_pitch               # LeNet-5 conv1's 10 us a call)
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


def _own_rows(Py_ssize_t outputs_per_group):
    """Whether each task prepares its own rows (PREPARE): by default, when a group's outputs
    are one channel block, so that no other task reads them (depthwise: 1.2x on the bench's
    layer, 2 threads; with more blocks each task would pad the same rows again)."""
    if PREPARE not in ("auto", "whole", "per_task"):
        raise ValueError(f"PREPARE must be 'auto', 'whole' or 'per_task', got {PREPARE!r}")
    return PREPARE == "per_task" or PREPARE == "auto" and outputs_per_group <= FC_KB


# ---------------------------------------------------------------------------------- forward

def _channel_tiles_win(Py_ssize_t Kg, Py_ssize_t sums, Py_ssize_t Q, Py_ssize_t row_step,
                       Py_ssize_t lanes, Py_ssize_t width):
    """Whether channel tiles (fc_conv_ctiles) should beat tiles of output positions
    (fc_conv_tiles, `width` positions a tile) for Kg output channels per group, each a sum of
    `sums` (channel, tap) pairs, over output rows of Q columns row_step apart in the input:
    by the share of vector lanes each fills. Rows of positions waste the columns between
    rows where tiles run across row ends, and otherwise the last vector's idle lanes; channel
    tiles waste the last vector's idle channels, and need a fifth more of the lanes filled
    to win (measured, 2 threads: LeNet-5's conv2, 1.4 times the lanes, 1.3x as fast; the
    ResNet 3x3 layer, 1.07 times, 0.95x; the VGG one, 1.04 times, 0.87x: their weights,
    16 channels at a time, no longer fit in L1). Both need sums of a few vectors (channel
    tiles store each output on its own)."""
    if FORWARD_KERNEL not in ("auto", "positions", "rows", "channels"):
        raise ValueError(f"FORWARD_KERNEL must be 'auto', 'positions', 'rows' or 'channels', "
                         f"got {FORWARD_KERNEL!r}")
    if FORWARD_KERNEL != "auto":
        return FORWARD_KERNEL == "channels"
    if Kg < lanes or sums < 4 * lanes:
        return False
    across = row_step < (Q + width - 1) // width * width  # as fc_conv_tiles decides
    cdef double fill_positions = (<double>Q / row_step if across else
                                  <double>Q / ((Q + lanes - 1) // lanes * lanes))
    cdef double fill_channels = <double>Kg / ((Kg + lanes - 1) // lanes * lanes)
    return fill_channels > 1.2 * fill_positions


cdef Py_ssize_t _row_reuse(const Py_ssize_t[::1] taps, Py_ssize_t RR, Py_ssize_t row_step):
    """RR where the taps are RR rows of taps, each row's offsets the first row's plus
    row_step per row (an input row then serves RR output rows: the row tiles of
    fc_conv_tiles for one output channel, which _conv_tasks then hands the taps column by
    column), else 0; 0 also where FORWARD_KERNEL asks for plain tiles of positions."""
    cdef Py_ssize_t n = taps.shape[0], t
    if FORWARD_KERNEL == "positions" or RR < 2 or n % RR:
        return 0
    for t in range(n):
        if taps[t] != taps[t % (n // RR)] + t // (n // RR) * row_step:
            return 0
    return RR


cdef void _tiles(const fc_conv_geom *g, const floating *x, const floating *wk, int kb,
                 const floating *bias, floating *y, bint chan) noexcept nogil:
    cdef unsigned csr = fc_denormals_off()
    if floating is float:
        if chan:
            fc_conv_ctiles_f32(g, x, wk, kb, bias, y)
        else:
            fc_conv_tiles_f32(g, x, wk, kb, bias, y)
    else:
        if chan:
            fc_conv_ctiles_f64(g, x, wk, kb, bias, y)
        else:
            fc_conv_tiles_f64(g, x, wk, kb, bias, y)
    fc_denormals_restore(csr)


cdef _conv_tasks(_Prepared prep, list phases, const floating *bias, floating *y,
                 Py_ssize_t N, Py_ssize_t G, Py_ssize_t Cg, Py_ssize_t Kg, Py_ssize_t row_step,
                 Py_ssize_t ldk, Py_ssize_t ldy_row, Py_ssize_t y_col_step, bint chan,
                 int n_threads, const floating[:, :, :, ::1] src=None, Py_ssize_t left=0):
    # For each image n and group g, and each phase (taps, w, offset, P, Q) of phases:
    # y[offset + n, g*Kg + k] (P rows, Q columns; channel pitch ldk, row pitch ldy_row,
    # column step y_col_step) = sum over the group's Cg prepared channels of the phase's
    # taps with the weights w (G*Kg, Cg, taps' rows, taps' columns) (the forward pass has one
    # phase, a strided data gradient one per stride phase), in tiles along output channels
    # (chan: fc_conv_ctiles) or along output positions.
    # One task per (image, group, channel block, row block), for every phase: no two tasks
    # share an output. With src (and prep holding no buffer), each task first prepares the
    # rows it reads of src (padded prep.top / left as _prepare would) into its thread's scratch,
    # once for all phases: for layers of one channel block (depthwise, few output channels)
    # no other task reads them, and the rows stay in cache instead of going to memory and
    # back as a padded copy of the whole input.
    cdef Py_ssize_t nph = len(phases), ph, P = 0, Q = 0, t, offset, P_ph, Q_ph, rr
    cdef Py_ssize_t srow = row_step // prep.row_pitch
    cdef Py_ssize_t tap_rows = 0    # (np.max on a memoryview took 19 us)
    cdef Py_ssize_t[::1] tv
    cdef const floating[::1] wv
    cdef Py_ssize_t[:, ::1] row_taps
    # each phase's geometry, and where its weights and outputs are: (offset, P, weights)
    cdef unsigned char[::1] geo_bytes = np.zeros(nph * sizeof(fc_conv_geom), np.uint8)
    cdef fc_conv_geom *geo = <fc_conv_geom *>&geo_bytes[0]
    cdef Py_ssize_t[:, ::1] put = np.empty((nph, 3), np.intp)
    keep = []
    for ph in range(nph):
        P, Q = max(P, phases[ph][3]), max(Q, phases[ph][4])
    cdef Py_ssize_t lanes = fc_conv_lanes(floating is double)
    cdef Py_ssize_t cb = fc_conv_ct_block(floating is double) if chan else FC_KB
    cdef Py_ssize_t Kgp = (Kg + lanes - 1) // lanes * lanes if chan else Kg  # packed, per group
    for ph in range(nph):
        taps, w, offset, P_ph, Q_ph = phases[ph]
        rr = 0 if chan else _row_reuse(taps, w.shape[2], row_step)
        if rr:
            # taps and weights column by column (tap s*rr + r), the order in which row tiles
            # sum: the tiles of positions that take the row blocks too short for row tiles
            # (and which blocks those are depends on the thread count) then sum alike
            taps = np.ascontiguousarray(taps.reshape(rr, -1).T).reshape(-1)
            w = w.transpose(0, 1, 3, 2)
            keep.append(taps)
        wpack = _pack(w, G, cb, lanes if chan else 1)
        keep.append(wpack)
        tv, wv = taps, wpack
        for t in range(tv.shape[0]):
            tap_rows = max(tap_rows, tv[t] // prep.row_pitch + 1)
        rt = None if rr else _row_taps(prep, tv, srow, P_ph, wv)  # (taps sorted by row)
        keep.append(rt)  # (geo points into it)
        if rt is not None:
            row_taps = rt
        geo[ph].C = Cg
        geo[ph].ntaps = tv.shape[0]
        geo[ph].tap = &tv[0]
        geo[ph].row_step = row_step
        geo[ph].cols = Q_ph
        geo[ph].ldk = ldk
        geo[ph].ldy_row = ldy_row
        geo[ph].y_col_step = y_col_step
        geo[ph].row_taps = &row_taps[0, 0] if rt is not None else NULL
        geo[ph].row_reuse = rr
        put[ph, 0], put[ph, 1], put[ph, 2] = offset, P_ph, <Py_ssize_t><size_t>&wv[0]
    cdef Py_ssize_t kblocks = (Kg + cb - 1) // cb
    cdef Py_ssize_t rb = max(1, min(P, TILE_PIXELS // max(Q, 1)))
    cdef bint own = src is not None
    # own rows: each task also pads the tap_rows - srow rows below its block, which the next
    # block pads again; where the images are small (their padded planes at most
    # OWN_PLANE_ELEMENTS) and there are tasks enough, a task takes all P rows instead
    # (depthwise layer 1.13x, LeNet-5 conv1 data gradient 1.10x)
    if own and N * G * kblocks >= 4 * n_threads and (
            Cg * prep.rows * prep.row_pitch <= OWN_PLANE_ELEMENTS):
        rb = P
    cdef Py_ssize_t rblocks = (P + rb - 1) // rb
    cdef Py_ssize_t ntasks = N * G * kblocks * rblocks, K = G * Kg
    cdef Py_ssize_t task, n, g, kblk, rblk, k0, p0, a0, rows
    cdef int kb
    # own rows: a task's output rows p0 .. p0+rb-1 read prepared rows p0*srow on, tap_rows
    # deep; every channel of the scratch holds the most a task reads
    cdef Py_ssize_t ldc_own = ((rb - 1) * srow + tap_rows) * prep.row_pitch
    cdef floating[:, ::1] scratch
    cdef const floating[::1] buf
    cdef const floating *x = NULL
    cdef const floating *xt
    cdef _Pad pad
    if own:
        pad = _pad_of(prep, src.shape[3], left)
        scratch = np.zeros((n_threads, Cg * ldc_own + FC_SLACK),
                           np.float32 if floating is float else np.float64)
    else:
        buf = prep.buffer
        x = &buf[0]
    for ph in range(nph):
        geo[ph].ldc = ldc_own if own else prep.plane
    for task in prange(ntasks, nogil=True, schedule="static", num_threads=n_threads):
        rblk = task % rblocks
        kblk = (task // rblocks) % kblocks
        g = (task // (rblocks * kblocks)) % G
        n = task // (rblocks * kblocks * G)
        k0 = g * Kg + kblk * cb
        kb = <int>min(cb, Kg - kblk * cb)
        p0 = rblk * rb
        if own:
            xt = &scratch[threadid(), 0]
            a0 = p0 * srow
            rows = min(prep.rows - a0, (min(rb, P - p0) - 1) * srow + tap_rows)
            _pad_planes(&pad, &src[n, g * Cg, 0, 0], Cg, &scratch[threadid(), 0], ldc_own, a0,
                        rows)
        else:
            xt = x + (n * G * Cg + g * Cg) * prep.plane + p0 * row_step
        for ph in range(nph):
            if p0 < put[ph, 1]:
                _task_tiles(&geo[ph], p0, min(rb, put[ph, 1] - p0), xt,
                            <const floating *><size_t>put[ph, 2]
                            + (g * Kgp + kblk * cb) * Cg * geo[ph].ntaps,
                            kb, bias + k0 if bias != NULL else NULL,
                            y + put[ph, 0] + (n * K + k0) * ldk + p0 * ldy_row, chan)


cdef void _task_tiles(const fc_conv_geom *shared, Py_ssize_t p0, Py_ssize_t rows,
                      const floating *x, const floating *wk, int kb, const floating *bias,
                      floating *y, bint chan) noexcept nogil:
    # output rows p0 .. p0 + rows - 1
    cdef fc_conv_geom g = shared[0]
    g.rows = rows
    if g.row_taps != NULL:
        g.row_taps = g.row_taps + 2 * p0
    _tiles(&g, x, wk, kb, bias, y, chan)


# ------------------------------------------------------------------------ 1x1 in panels

cdef void _panel_tasks(const floating[:, :, :, ::1] src, const floating[::1] wpack,
                       const floating *bias, floating *y, Py_ssize_t G, Py_ssize_t Kg,
                       Py_ssize_t PW, int n_threads):
    # y[n, g*Kg + k] (HW pixels) = sum over the group's Cg channels of src[n, g*Cg + c]; each
    # task copies its panels, one at a time, into its thread's scratch ([Cg][PW]).
    cdef Py_ssize_t N = src.shape[0], Cg = src.shape[1] // G, HW = src.shape[2] * src.shape[3]
    cdef Py_ssize_t panels = (HW + PW - 1) // PW
    cdef Py_ssize_t runs = (panels + PANEL_TASK - 1) // PANEL_TASK, K = G * Kg
    cdef Py_ssize_t task, ng, r
    cdef Py_ssize_t tap0 = 0
    cdef fc_conv_geom geo
    cdef floating[:, ::1] scratch = np.empty((n_threads, Cg * PW),
                                             np.float32 if floating is float else np.float64)
    cdef const floating *x = &src[0, 0, 0, 0]
    geo.C = Cg
    geo.ntaps = 1
    geo.tap = &tap0
    geo.ldc = HW
    geo.row_step = HW
    geo.rows = 1
    geo.cols = HW
    geo.ldk = HW
    geo.ldy_row = HW
    geo.y_col_step = 1
    geo.row_taps = NULL
    geo.row_reuse = 0
    for task in prange(N * G * runs, nogil=True, schedule="static", num_threads=n_threads):
        r = task % runs
        ng = task // runs         # image n = ng // G, group ng % G: its channels follow
        _panel_run(&geo, x + ng * Cg * HW, &wpack[(ng % G) * Kg * Cg], <int>Kg,
                   bias + (ng % G) * Kg if bias != NULL else NULL,
                   y + ((ng // G) * K + (ng % G) * Kg) * HW, r * PANEL_TASK,
                   min(panels, (r + 1) * PANEL_TASK), &scratch[threadid(), 0])


cdef void _panel_run(const fc_conv_geom *g, const floating *x, const floating *wk, int K,
                     const floating *bias, floating *y, Py_ssize_t p_begin,
                     Py_ssize_t p_end, floating *scratch) noexcept nogil:
    cdef unsigned csr = fc_denormals_off()
    if floating is float:
        fc_conv_panels_f32(g, x, wk, K, bias, y, p_begin, p_end, scratch)
    else:
        fc_conv_panels_f64(g, x, wk, K, bias, y, p_begin, p_end, scratch)
    fc_denormals_restore(csr)


cdef inline bint _is_pointwise(Py_ssize_t R, Py_ssize_t S, Py_ssize_t sh, Py_ssize_t sw,
                               Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t H, Py_ssize_t W,
                               Py_ssize_t P, Py_ssize_t Q):
    # Whether output pixel (p, q) is input pixel (p, q) times the weights, the panel path's
    # case: 1x1, stride 1, no padding, and planes of one size (fastcnn.functional passes
    # stride 1 along an axis with one output whatever the caller's was, so the stride alone
    # does not tell).
    return R == 1 and S == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0 and H == P \
        and W == Q


def forward(const floating[:, :, :, ::1] x__nchw,      # IN
            const floating[:, :, :, ::1] w__kcrs,      # IN
            const floating[::1] bias__k,               # IN, or empty for no bias
            floating[:, :, :, ::1] y__nkpq,            # OUT, every element written
            Py_ssize_t groups, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
            Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int n_threads):
    """y = conv2d(x, w) + bias, cross-correlation with top/left padding (pt, pl)."""
    cdef Py_ssize_t N = x__nchw.shape[0], C = x__nchw.shape[1]
    cdef Py_ssize_t K = w__kcrs.shape[0], Cg = w__kcrs.shape[1]
    cdef Py_ssize_t R = w__kcrs.shape[2], S = w__kcrs.shape[3]
    cdef Py_ssize_t P = y__nkpq.shape[2], Q = y__nkpq.shape[3]
    if N == 0:
        return
    if Cg == 0 or x__nchw.shape[2] == 0 or x__nchw.shape[3] == 0:  # x adds nothing: bias
        y__nkpq[...] = 0
        if bias__k.shape[0]:
            np.asarray(y__nkpq)[...] += np.asarray(bias__k)[:, None, None]
        return
    cdef Py_ssize_t PW = fc_conv_panel_width(floating is double)
    cdef floating[::1] wpack
    if _is_pointwise(R, S, sh, sw, pt, pl, x__nchw.shape[2], x__nchw.shape[3], P, Q):
        wpack = _pack(np.asarray(w__kcrs), groups)
        _panel_tasks(x__nchw, wpack, &bias__k[0] if bias__k.shape[0] else NULL,
                     &y__nkpq[0, 0, 0, 0], groups, K // groups, PW, n_threads)
        return
    # rows and columns the windows reach, so the prepared copy covers every read
    cdef Py_ssize_t H = x__nchw.shape[2], W = x__nchw.shape[3]
    cdef Py_ssize_t rows = (P - 1) * sh + (R - 1) * dh + 1
    cdef Py_ssize_t cols = (Q - 1) * sw + (S - 1) * dw + 1
    dtype = np.asarray(x__nchw).dtype
    cdef _Prepared prep = _Prepared(rows, cols, sw, pt, H, 0, dtype)  # the geometry alone
    cdef bint chan = _channel_tiles_win(K // groups, Cg * R * S, Q, sh * prep.row_pitch,
                                        fc_conv_lanes(floating is double), PW)
    # channel tiles read nothing but the windows' elements (_in_place)
    cdef bint direct = chan and pt == 0 and pl == 0 and sw == 1 and rows <= H and cols <= W
    cdef bint own = not direct and _own_rows(K // groups)
    cdef const floating[:, :, :, ::1] src = x__nchw if own else None
    if direct:
        prep = _in_place(x__nchw)
    elif not own:
        prep = _prepare(x__nchw, pt, pl, rows, cols, sw, n_threads)
    phase = (_taps(prep, R, S, dh, dw), np.asarray(w__kcrs), 0, P, Q)
    _conv_tasks(prep, [phase], &bias__k[0] if bias__k.shape[0] else NULL,
                &y__nkpq[0, 0, 0, 0], N, groups, Cg, K // groups, sh * prep.row_pitch, P * Q, Q,
                1, chan, n_threads, src, pl)


# ---------------------------------------------------------------------------- data gradient

def backward_data(const floating[:, :, :, ::1] gy__nkpq,   # IN
                  const floating[:, :, :, ::1] w__kcrs,    # IN
                  floating[:, :, :, ::1] gx__nchw,         # OUT, every element written
                  Py_ssize_t groups, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                  Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int n_threads):
    """gx = gradient of conv2d with respect to its input x.

    gx[c, h, w] = sum of w[k, c, r, s] * gy[k, p, q] over h = p*sh - pt + r*dh, w likewise.
    Split gx into its sh x sw phases (h = a + sh*i, w = b + sw*j): in phase (a, b) only the
    taps with (a + pt - r*dh) % sh == 0 and (b + pl - s*dw) % sw == 0 contribute, each at a
    fixed offset of gy, so every phase is a stride-1 correlation of the (zero-padded) output
    gradient over those taps, with the weights' channel axes swapped. With stride 1 there is
    one phase: the usual correlation with the flipped kernel.
    """
    cdef Py_ssize_t N = gx__nchw.shape[0], C = gx__nchw.shape[1]
    cdef Py_ssize_t H = gx__nchw.shape[2], W = gx__nchw.shape[3]
    cdef Py_ssize_t K = w__kcrs.shape[0], Cg = w__kcrs.shape[1]
    cdef Py_ssize_t R = w__kcrs.shape[2], S = w__kcrs.shape[3]
    cdef Py_ssize_t Kg = K // groups, a, b, Ha, Wb
    if N == 0 or C == 0 or H == 0 or W == 0:
        return
    w_arr = np.asarray(w__kcrs).reshape(groups, Kg, Cg, R, S)
    gx_arr = np.asarray(gx__nchw)
    cdef Py_ssize_t PW = fc_conv_panel_width(floating is double)
    cdef Py_ssize_t[::1] taps
    cdef floating[::1] wpack
    if _is_pointwise(R, S, sh, sw, pt, pl, H, W, gy__nkpq.shape[2], gy__nkpq.shape[3]):
        # the forward pass of gy with the weights' channel axes swapped
        wpack = _pack(w_arr.transpose(0, 2, 1, 3, 4).reshape(C, Kg, 1, 1), groups)
        _panel_tasks(gy__nkpq, wpack, NULL, &gx__nchw[0, 0, 0, 0], groups, Cg, PW, n_threads)
        return
    # gy padded so that every offset (a + pt - r*dh) // sh lands inside: top/left pads T, L,
    # no more than the lowest offset needs (a pad of (R-1)*dh regardless of pt made the
    # ResNet 3x3 rows 31 wide for 28 outputs, and tiles that run across row ends wasted 10%
    # of their lanes instead of 7%)
    cdef Py_ssize_t T = max(0, ((R - 1) * dh - pt + sh - 1) // sh)
    cdef Py_ssize_t L = max(0, ((S - 1) * dw - pl + sw - 1) // sw)
    cdef Py_ssize_t rows = (H + sh - 1) // sh + T + (sh - 1 + pt) // sh
    cdef Py_ssize_t cols = (W + sw - 1) // sw + L + (sw - 1 + pl) // sw
    cdef bint own = _own_rows(Cg)
    cdef const floating[:, :, :, ::1] src = gy__nkpq if own else None
    cdef _Prepared prep = (_Prepared(rows, cols, 1, T, gy__nkpq.shape[2], 0, gx_arr.dtype)
                           if own else
                           _prepare(gy__nkpq, T, L, rows, cols, 1, n_threads))
    cdef floating *gx = &gx__nchw[0, 0, 0, 0]
    # Taps in reverse kernel order, so that their offsets into gy rise: walking a tile's
    # rows and columns downwards (the plain order) ran the stem's gradient at a third of
    # the speed, as the loads kept missing the cache.
    # One task computes every phase of its rows, so that it pads them (own rows) once: the
    # stem's four phases each padding their rows again spent a fifth of the time copying.
    phases = []
    for a in range(min(sh, H)):
        rs = [r for r in reversed(range(R)) if (a + pt - r * dh) % sh == 0]
        Ha = (H - a + sh - 1) // sh
        for b in range(min(sw, W)):
            ss = [s for s in reversed(range(S)) if (b + pl - s * dw) % sw == 0]
            Wb = (W - b + sw - 1) // sw
            if not rs or not ss:
                gx_arr[:, :, a::sh, b::sw] = 0
                continue
            phase_taps = np.array([((a + pt - r * dh) // sh + T) * prep.row_pitch
                                   + (b + pl - s * dw) // sw + L for r in rs for s in ss],
                                  np.intp)
            # the phase's taps are every (stride / gcd(stride, dilation))-th one down from
            # the first: a view of w, which _pack reads in place (fancy indexing copied w
            # twice, 0.5 ms for the ResNet 3x3 layer)
            w_phase = w_arr[:, :, :, rs[0]::-(sh // gcd(sh, dh)),
                            ss[0]::-(sw // gcd(sw, dw))].transpose(0, 2, 1, 3, 4)
            phases.append((phase_taps, w_phase.reshape(C, Kg, len(rs), len(ss)), a * W + b, Ha,
                           Wb))
    if not phases:
        return
    cdef bint chan = _channel_tiles_win(Cg, Kg * max([len(p[0]) for p in phases]),
                                        max([p[4] for p in phases]), prep.row_pitch,
                                        fc_conv_lanes(floating is double), PW)
    _conv_tasks(prep, phases, <floating *>NULL, gx, N, groups, Kg, Cg, prep.row_pitch, H * W,
                sh * W, sw, chan, n_threads, src, L)


# -------------------------------------------------------------------------- weight gradient

cdef fc_conv_geom _wgrad_geom(_Prepared prep, const Py_ssize_t[::1] taps, Py_ssize_t C,
                              Py_ssize_t ntaps, Py_ssize_t sh, Py_ssize_t Q):
    """What both weight-gradient kernels share of their geometry: x's channels, taps and
    pitches and the output columns; ldk, ldy_row and the image fields are the caller's."""
    cdef fc_conv_geom geo
    geo.C = C
    geo.ntaps = ntaps
    geo.tap = &taps[0]
    geo.ldc = prep.plane
    geo.row_step = sh * prep.row_pitch
    geo.cols = Q
    geo.y_col_step = 1
    geo.row_taps = NULL
    geo.row_reuse = 0
    geo.ldk, geo.ldy_row, geo.images, geo.dy_image, geo.x_image = 0, 0, 1, 0, 0
    return geo


cdef void _wgrad_task(const fc_conv_geom *shared, const floating *gy, const floating *x,
                      floating *dw, int kb, Py_ssize_t first_image, Py_ssize_t N,
                      Py_ssize_t gy_image, Py_ssize_t x_image, Py_ssize_t P, Py_ssize_t Q,
                      Py_ssize_t rb, Py_ssize_t m, floating *dy, const _Pad *pad,
                      floating *xs) noexcept nogil:
    # dw[kb, C, taps] += the sums over images first_image, first_image + NSLOT, ... < N,
    # taken m images at a time (so that a tile's lanes are added up once per m images).
    # Their kb output-gradient planes are first copied into dy (this thread's scratch), in
    # rows padded with zeros to whole vectors (ldy_row) as the microkernel needs. With pad,
    # x is the input itself (image pitch x_image), and the task first pads each of its
    # images' g.C channels into xs (this thread's scratch for m images) as _prepare would:
    # for layers of one channel block per group (depthwise) no other task of the slot reads
    # them, and they stay in cache instead of going to memory and back as a padded copy of
    # the whole input.
    cdef fc_conv_geom g = shared[0]
    cdef Py_ssize_t n, nn, p0, k, p, j, Qp = g.ldy_row, plane = P * Qp
    cdef const floating *xn
    cdef unsigned csr
    memset(dy, 0, m * kb * plane * sizeof(floating))
    g.dy_image = kb * plane
    g.x_image = g.C * g.ldc if pad != NULL else NSLOT * x_image
    cdef bint fetch = m * (kb * P * Q + (g.C * pad.H * pad.W if pad != NULL else 0)) * sizeof(
        floating) <= PREFETCH_BYTES
    csr = fc_denormals_off()
    n = first_image
    while n < N:
        g.images = min(m, (N - n + NSLOT - 1) // NSLOT)
        for j in range(g.images):
            for k in range(kb):
                for p in range(P):
                    memcpy(dy + (j * kb + k) * plane + p * Qp,
                           gy + (n + j * NSLOT) * gy_image + (k * P + p) * Q,
                           Q * sizeof(floating))
            if pad != NULL:
                _pad_planes(pad, x + (n + j * NSLOT) * x_image, g.C, xs + j * g.x_image, g.ldc,
                            0, pad.rows)
        # the next round's images, which lie NSLOT images apart, out of the hardware
        # prefetchers' reach (where they fit in L2 beside this round's)
        nn = n + g.images * NSLOT if fetch else N
        for j in range(min(m, (N - nn + NSLOT - 1) // NSLOT) if nn < N else 0):
            fc_prefetch(gy + (nn + j * NSLOT) * gy_image, kb * P * Q * sizeof(floating))
            if pad != NULL:
                fc_prefetch(x + (nn + j * NSLOT) * x_image,
                            g.C * pad.H * pad.W * sizeof(floating))
        xn = xs if pad != NULL else x + n * x_image
        p0 = 0
        while p0 < P:
            g.rows = min(rb, P - p0)
            if floating is float:
                fc_conv_wgrad_f32(&g, dy + p0 * Qp, xn + p0 * g.row_step, kb, dw)
            else:
                fc_conv_wgrad_f64(&g, dy + p0 * Qp, xn + p0 * g.row_step, kb, dw)
            p0 = p0 + rb
        n = n + g.images * NSLOT
    fc_denormals_restore(csr)


def backward_weight(const floating[:, :, :, ::1] gy__nkpq,   # IN
                    const floating[:, :, :, ::1] x__nchw,    # IN
                    floating[:, :, :, ::1] gw__kcrs,         # OUT, every element written
                    Py_ssize_t groups, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                    Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int n_threads):
    """gw = gradient of conv2d with respect to its weight."""
    cdef Py_ssize_t N = x__nchw.shape[0], C = x__nchw.shape[1]
    cdef Py_ssize_t K = gw__kcrs.shape[0], Cg = gw__kcrs.shape[1]
    cdef Py_ssize_t R = gw__kcrs.shape[2], S = gw__kcrs.shape[3]
    cdef Py_ssize_t P = gy__nkpq.shape[2], Q = gy__nkpq.shape[3]
    cdef Py_ssize_t Kg = K // groups
    gw = np.asarray(gw__kcrs)
    gw[...] = 0
    if N == 0 or Cg == 0 or x__nchw.shape[2] == 0 or x__nchw.shape[3] == 0:
        return
    cdef Py_ssize_t rows = (P - 1) * sh + (R - 1) * dh + 1
    cdef Py_ssize_t cols = (Q - 1) * sw + (S - 1) * dw + 1
    cdef Py_ssize_t lanes = fc_conv_lanes(floating is double)
    cdef Py_ssize_t WK = fc_conv_wgrad_kb()
    cdef bint channels_last = groups == 1 and (
        WGRAD_KERNEL == "channels" or WGRAD_KERNEL == "auto"
        and _channels_last_wins(K, Cg * R * S, lanes))
    # each task pads its own images (see _wgrad_task) when one or two blocks of output
    # channels cover its group, as in the forward pass (_own_rows): two blocks padding the
    # same images in cache beat one padded copy through memory (LeNet-5's conv1, 6 channels
    # in blocks of 3 + 3: 1.07-1.09x; the CIFAR conv1, 32 channels in 8 blocks: 0.95x)
    cdef bint by_task = not channels_last and (PREPARE == "per_task" or _own_rows(Kg)
                                               and Kg <= 2 * WK)
    # the channels-last kernel reads nothing past the windows (_in_place)
    cdef bint in_place = channels_last and pt == 0 and pl == 0 and sw == 1
    cdef _Prepared prep = (
        _Prepared(rows, cols, sw, pt, x__nchw.shape[2], 0, gw.dtype) if by_task else
        _in_place(x__nchw) if in_place else
        _prepare(x__nchw, pt, pl, rows, cols, sw, n_threads))
    cdef Py_ssize_t[::1] taps = _taps(prep, R, S, dh, dw)
    cdef const floating[::1] buf
    cdef const floating *x = &x__nchw[0, 0, 0, 0]
    if not by_task:
        buf = prep.buffer
        x = &buf[0]
    cdef const floating *gy = &gy__nkpq[0, 0, 0, 0]
    if channels_last:
        _backward_weight_cl(gy, x, prep, taps, N, K, Cg, R, S, P, Q, sh, lanes, n_threads,
                            &gw__kcrs[0, 0, 0, 0])
        return
    cdef Py_ssize_t slots = min(N, NSLOT)
    # slot 0 sums straight into gw, the others into their own partial gradients
    partial_arr = np.zeros((slots - 1,) + gw.shape, dtype=gw.dtype)
    cdef floating[::1] partial = partial_arr.reshape(-1) if slots > 1 else gw.reshape(-1)
    cdef floating *out0 = &gw__kcrs[0, 0, 0, 0]
    cdef Py_ssize_t Qp = (Q + lanes - 1) // lanes * lanes
    # a block of rb rows of m images at a time: about WGRAD_PIXELS output-gradient pixels
    cdef Py_ssize_t rb = max(1, min(P, WGRAD_PIXELS // Qp))
    cdef Py_ssize_t m = max(1, min((N + NSLOT - 1) // NSLOT, WGRAD_PIXELS // (P * Qp)))
    cdef floating[:, ::1] scratch = np.empty((n_threads, m * WK * P * Qp), gw.dtype)
    cdef floating *out1 = &partial[0]
    # blocks of near-equal size (6 channels: 3 + 3, not 4 + 2; see fc_conv_wgrad)
    cdef Py_ssize_t kblocks = (Kg + WK - 1) // WK
    cdef Py_ssize_t task, slot, g, kblk, k0, kg0
    cdef int kb
    cdef fc_conv_geom geo = _wgrad_geom(prep, taps, Cg, R * S, sh, Q)
    geo.ldk = P * Qp
    geo.ldy_row = Qp
    cdef _Pad pad
    cdef floating[:, ::1] own_scratch
    # x's plane pitch: the input's own, or the prepared copy's
    cdef Py_ssize_t x_plane = x__nchw.shape[2] * x__nchw.shape[3] if by_task else prep.plane
    if by_task:
        pad = _pad_of(prep, x__nchw.shape[3], pl)
        own_scratch = np.zeros((n_threads, m * Cg * prep.plane + FC_SLACK), gw.dtype)
    for task in prange(slots * groups * kblocks, nogil=True, schedule="static",
                       num_threads=n_threads):
        kblk = task % kblocks
        g = (task // kblocks) % groups
        slot = task // (kblocks * groups)
        kg0 = Kg * kblk // kblocks
        k0 = g * Kg + kg0
        kb = <int>(Kg * (kblk + 1) // kblocks - kg0)
        _wgrad_task(&geo, gy + k0 * P * Q,
                    x + g * Cg * x_plane, (out0 if slot == 0 else out1) + k0 * Cg * R * S,
                    kb, slot, N, K * P * Q, C * x_plane, P, Q, rb, m, &scratch[threadid(), 0],
                    &pad if by_task else NULL,
                    &own_scratch[threadid(), 0] if by_task else NULL)
    if slots > 1:
        gw += partial_arr[0]


# ------------------------------------------------ weight gradient along output channels

def _channels_last_wins(Py_ssize_t K, Py_ssize_t pairs, Py_ssize_t lanes):
    """Whether fc_conv_wgcl should beat fc_conv_wgrad: K output channels fill its vectors
    (at least one whole vector, at most a third of the lanes idle), and there are enough
    (channel, tap) pairs to pay for transposing the output gradient (measured: with 27
    pairs, 3 channels x 3x3, the transposition took longer than the sums)."""
    return (K % lanes == 0 or K >= 2 * lanes) and pairs >= 4 * lanes


cdef void _wgcl_task(const fc_conv_geom *shared, const floating *gy, const floating *x,
                     floating *dwt, Py_ssize_t K, Py_ssize_t Kp, int kvmax, Py_ssize_t lanes,
                     Py_ssize_t share0, Py_ssize_t share1, Py_ssize_t first_image,
                     Py_ssize_t N, Py_ssize_t x_image, Py_ssize_t P, Py_ssize_t Q,
                     Py_ssize_t rb, Py_ssize_t m, floating *dyt) noexcept nogil:
    # The task's share share0 .. share1 - 1 of the pairs, every output channel, over the
    # images first_image, first_image + NSLOT, ... < N, in blocks of m images x rb rows: each
    # block's output gradient is first transposed into dyt (this thread's scratch: for each
    # block of kvmax*lanes channels, pixels x channels, zeros past channel K), and then every
    # block of channels sums the pairs over it, while the block's x stays in L2 (a task per
    # block of channels, each reading all of x, scaled 1.3x on two threads). A channel
    # block's tiles take nu pairs each (fewer vectors, more pairs), so its pairs start at the
    # share's ends rounded up to a multiple of nu: the next share starts where this one ends,
    # and only the last share's last tile runs past the pairs (into the partial's spare rows).
    cdef fc_conv_geom g = shared[0]
    cdef Py_ssize_t KB = kvmax * lanes, kblocks = (Kp + KB - 1) // KB, PQ = P * Q
    cdef Py_ssize_t n, p0, j, k, kblk, pix, npix, block, nu, u_begin, u_end
    cdef const floating *src
    cdef floating *dst
    cdef unsigned csr = fc_denormals_off()
    cdef int kv
    g.ldk = KB
    g.x_image = NSLOT * x_image
    n = first_image
    while n < N:
        g.images = min(m, (N - n + NSLOT - 1) // NSLOT)
        p0 = 0
        while p0 < P:
            g.rows = min(rb, P - p0)
            npix = g.rows * Q
            g.dy_image = npix * KB
            block = g.images * g.dy_image     # one block of channels' transposed gradient
            for j in range(g.images):
                for k in range(Kp):
                    dst = dyt + k // KB * block + j * g.dy_image + k % KB
                    if k < K:
                        src = gy + ((n + j * NSLOT) * K + k) * PQ + p0 * Q
                        for pix in range(npix):
                            dst[pix * KB] = src[pix]
                    else:
                        for pix in range(npix):
                            dst[pix * KB] = 0
            for kblk in range(kblocks):
                kv = <int>min(kvmax, (Kp - kblk * KB) // lanes)
                nu = fc_conv_wgcl_nu(kv)
                u_begin = (share0 + nu - 1) // nu * nu
                u_end = (share1 + nu - 1) // nu * nu
                if u_begin >= u_end:
                    continue
                if floating is float:
                    fc_conv_wgcl_f32(&g, dyt + kblk * block, x + n * x_image + p0 * g.row_step,
                                     kv, u_begin, u_end, dwt + kblk * KB)
                else:
                    fc_conv_wgcl_f64(&g, dyt + kblk * block, x + n * x_image + p0 * g.row_step,
                                     kv, u_begin, u_end, dwt + kblk * KB)
            p0 = p0 + rb
        n = n + g.images * NSLOT
    fc_denormals_restore(csr)


cdef _backward_weight_cl(const floating *gy, const floating *x, _Prepared prep,
                         const Py_ssize_t[::1] taps, Py_ssize_t N, Py_ssize_t K, Py_ssize_t C,
                         Py_ssize_t R, Py_ssize_t S, Py_ssize_t P, Py_ssize_t Q, Py_ssize_t sh,
                         Py_ssize_t lanes, int n_threads, floating *gw):
    """The weight gradient (K, C, R, S) of an ungrouped convolution, vectorised along output
    channels (fc_conv_wgcl), into gw (K x C*R*S, contiguous). Slot s sums images s,
    s + NSLOT, ... into its own partial [pairs][channels]; the partials are added in a fixed
    order, so the result does not depend on the thread count. Tasks = (slot, share of the
    pairs), each for every output channel."""
    cdef Py_ssize_t nu_all = C * R * S, Kp = (K + lanes - 1) // lanes * lanes
    cdef int kvmax = fc_conv_wgcl_kv()
    cdef Py_ssize_t KBmax = kvmax * lanes, kblocks = (Kp + KBmax - 1) // KBmax
    cdef Py_ssize_t slots = min(N, NSLOT)
    cdef Py_ssize_t m, rb
    if P * Q <= WGCL_PIXELS:
        rb, m = P, max(1, min((N + NSLOT - 1) // NSLOT, WGCL_PIXELS // (P * Q)))
    else:
        rb, m = max(1, WGCL_PIXELS // Q), 1
    # a task for every thread: split the pairs into shares when the slots are fewer (each
    # share transposes the same output gradient again)
    cdef Py_ssize_t ranges = max(1, min(nu_all, (n_threads + slots - 1) // slots))
    partial_arr = np.zeros((slots, nu_all + FC_WCL_NU_MAX, Kp),
                           np.float32 if floating is float else np.float64)
    cdef floating[:, :, ::1] partial = partial_arr
    cdef floating[:, ::1] scratch = np.empty(
        (n_threads, max(WGCL_PIXELS, Q) * kblocks * KBmax), partial_arr.dtype)
    cdef Py_ssize_t task, slot, r
    cdef fc_conv_geom geo = _wgrad_geom(prep, taps, C, R * S, sh, Q)
    geo.ldy_row = Kp
    for task in prange(slots * ranges, nogil=True, schedule="static", num_threads=n_threads):
        r = task % ranges
        slot = task // ranges
        _wgcl_task(&geo, gy, x, &partial[slot, 0, 0], K, Kp, kvmax, lanes,
                   nu_all * r // ranges, nu_all * (r + 1) // ranges, slot, N, C * prep.plane,
                   P, Q, rb, m, &scratch[threadid(), 0])
    _add_transposed(partial, K, nu_all, gw)


cdef void _add_transposed(const floating[:, :, ::1] partial, Py_ssize_t K, Py_ssize_t U,
                          floating *out) noexcept:
    # out[k*U + u] = partial[0, u, k] + partial[1, u, k] + ... (in that order), in blocks of 16
    # pairs, so that both sides move along whole cache lines (NumPy's sum and transposed copy
    # took 0.3 ms for the ResNet 3x3 layer, in one thread while the other waited)
    cdef Py_ssize_t u0, u, k, slot
    cdef floating acc
    for u0 in range(0, U, 16):
        for k in range(K):
            for u in range(u0, min(U, u0 + 16)):
                acc = partial[0, u, k]
                for slot in range(1, partial.shape[0]):
                    acc = acc + partial[slot, u, k]
                out[k * U + u] = acc
