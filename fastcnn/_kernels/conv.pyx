"""Direct 2-D convolution (cross-correlation) and its two gradients: blocking and threads.

Arrays are C-contiguous, one float dtype (float32 or float64), with sizes already checked by
fastcnn.functional: x__nchw (N, C, H, W), w__kcrs (K, C/G, R, S), y__nkpq (N, K, P, Q);
padding is given per side as top/left (bottom/right follow from the output size). Each entry
point takes `algorithm` last: None, or a dict forcing some of the choices in ALGORITHMS (for
tests and benchmarks; what it leaves out is chosen by shape).

The arithmetic is in csrc/conv.c (register-blocked SIMD microkernels, see conv.h). This
module prepares their operands and splits the work over OpenMP threads, in four files:

  conv.pyx          the entry points below: for each pass, the choices, then the operands,
                    then the tasks
  conv_plan.pxi     how it is chosen: tuning constants, what `algorithm` may force, and the
                    shape rules for the tiles, the padded input and the task sizes
  conv_operands.pxi the operands: padded copies, packed weights, tap offsets
  conv_tasks.pxi    what runs: the task loops over threads, calling the microkernels

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
              images of x (_wgrad_task), as the forward's tasks do. Ungrouped layers of many
              output channels vectorise along them instead (_backward_weight_cl).
Each task turns denormals off (FTZ/DAZ) for its thread and restores the caller's state.
"""
import os
from math import gcd

import numpy as np

from cython.parallel cimport prange, threadid
from cython cimport floating
from libc.string cimport memcpy, memset

include "conv_plan.pxi"
include "conv_operands.pxi"
include "conv_tasks.pxi"

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


# ---------------------------------------------------------------------------------- forward

def forward(const floating[:, :, :, ::1] x__nchw,      # IN
            const floating[:, :, :, ::1] w__kcrs,      # IN
            const floating[::1] bias__k,               # IN, or empty for no bias
            floating[:, :, :, ::1] y__nkpq,            # OUT, every element written
            Py_ssize_t groups, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
            Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int n_threads, algorithm=None):
    """y = conv2d(x, w) + bias, cross-correlation with top/left padding (pt, pl)."""
    cdef _Forced forced = _forced(algorithm)
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
    cdef int tiles = _pick_tiles(forced.tiles, K // groups, Cg * R * S, Q, sh * prep.row_pitch,
                                 fc_conv_lanes(floating is double), PW)
    # channel tiles read nothing but the windows' elements (_in_place)
    cdef bint direct = (tiles == TILES_CHANNELS and pt == 0 and pl == 0 and sw == 1
                        and rows <= H and cols <= W)
    cdef bint own = not direct and _own_rows(forced.prepare, K // groups)
    cdef const floating[:, :, :, ::1] src = x__nchw if own else None
    if direct:
        prep = _in_place(x__nchw)
    elif not own:
        prep = _prepare(x__nchw, pt, pl, rows, cols, sw, n_threads)
    phase = (_taps(prep, R, S, dh, dw), np.asarray(w__kcrs), 0, P, Q)
    _conv_tasks(prep, [phase], &bias__k[0] if bias__k.shape[0] else NULL,
                &y__nkpq[0, 0, 0, 0], N, groups, Cg, K // groups, sh * prep.row_pitch, P * Q, Q,
                1, tiles, n_threads, src, pl)


# ---------------------------------------------------------------------------- data gradient

def backward_data(const floating[:, :, :, ::1] gy__nkpq,   # IN
                  const floating[:, :, :, ::1] w__kcrs,    # IN
                  floating[:, :, :, ::1] gx__nchw,         # OUT, every element written
                  Py_ssize_t groups, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                  Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int n_threads, algorithm=None):
    """gx = gradient of conv2d with respect to its input x.

    gx[c, h, w] = sum of w[k, c, r, s] * gy[k, p, q] over h = p*sh - pt + r*dh, w likewise.
    Split gx into its sh x sw phases (h = a + sh*i, w = b + sw*j): in phase (a, b) only the
    taps with (a + pt - r*dh) % sh == 0 and (b + pl - s*dw) % sw == 0 contribute, each at a
    fixed offset of gy, so every phase is a stride-1 correlation of the (zero-padded) output
    gradient over those taps, with the weights' channel axes swapped. With stride 1 there is
    one phase: the usual correlation with the flipped kernel.
    """
    cdef _Forced forced = _forced(algorithm)
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
    # no more than the lowest offset needs (wider rows waste more lanes where tiles run
    # across row ends)
    cdef Py_ssize_t T = max(0, ((R - 1) * dh - pt + sh - 1) // sh)
    cdef Py_ssize_t L = max(0, ((S - 1) * dw - pl + sw - 1) // sw)
    cdef Py_ssize_t rows = (H + sh - 1) // sh + T + (sh - 1 + pt) // sh
    cdef Py_ssize_t cols = (W + sw - 1) // sw + L + (sw - 1 + pl) // sw
    cdef bint own = _own_rows(forced.prepare, Cg)
    cdef const floating[:, :, :, ::1] src = gy__nkpq if own else None
    cdef _Prepared prep = (_Prepared(rows, cols, 1, T, gy__nkpq.shape[2], 0, gx_arr.dtype)
                           if own else
                           _prepare(gy__nkpq, T, L, rows, cols, 1, n_threads))
    cdef floating *gx = &gx__nchw[0, 0, 0, 0]
    # Taps in reverse kernel order, so that their offsets into gy rise: walking a tile's
    # rows and columns downwards (the plain order) keeps missing the cache.
    # One task computes every phase of its rows, so that it pads them (own rows) once, not
    # once a phase.
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
            # the first: a view of w, which _pack reads in place (fancy indexing would copy
            # w twice)
            w_phase = w_arr[:, :, :, rs[0]::-(sh // gcd(sh, dh)),
                            ss[0]::-(sw // gcd(sw, dw))].transpose(0, 2, 1, 3, 4)
            phases.append((phase_taps, w_phase.reshape(C, Kg, len(rs), len(ss)), a * W + b, Ha,
                           Wb))
    if not phases:
        return
    cdef int tiles = _pick_tiles(forced.tiles, Cg, Kg * max([len(p[0]) for p in phases]),
                                 max([p[4] for p in phases]), prep.row_pitch,
                                 fc_conv_lanes(floating is double), PW)
    _conv_tasks(prep, phases, <floating *>NULL, gx, N, groups, Kg, Cg, prep.row_pitch, H * W,
                sh * W, sw, tiles, n_threads, src, L)


# -------------------------------------------------------------------------- weight gradient

def backward_weight(const floating[:, :, :, ::1] gy__nkpq,   # IN
                    const floating[:, :, :, ::1] x__nchw,    # IN
                    floating[:, :, :, ::1] gw__kcrs,         # OUT, every element written
                    Py_ssize_t groups, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                    Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int n_threads,
                    algorithm=None):
    """gw = gradient of conv2d with respect to its weight."""
    cdef _Forced forced = _forced(algorithm)
    cdef Py_ssize_t N = x__nchw.shape[0]
    cdef Py_ssize_t K = gw__kcrs.shape[0], Cg = gw__kcrs.shape[1]
    cdef Py_ssize_t R = gw__kcrs.shape[2], S = gw__kcrs.shape[3]
    cdef Py_ssize_t P = gy__nkpq.shape[2], Q = gy__nkpq.shape[3]
    gw = np.asarray(gw__kcrs)
    gw[...] = 0
    if N == 0 or Cg == 0 or x__nchw.shape[2] == 0 or x__nchw.shape[3] == 0:
        return
    cdef Py_ssize_t rows = (P - 1) * sh + (R - 1) * dh + 1
    cdef Py_ssize_t cols = (Q - 1) * sw + (S - 1) * dw + 1
    cdef Py_ssize_t lanes = fc_conv_lanes(floating is double)
    cdef bint channels_last = _pick_channels_last(forced.wgrad, groups, K, Cg * R * S, lanes)
    cdef bint by_task = not channels_last and _own_images(forced.prepare, K // groups,
                                                          fc_conv_wgrad_kb())
    # the channels-last kernel reads nothing past the windows (_in_place), which must lie
    # within x: 'same' may pad the bottom and right alone
    cdef bint in_place = (channels_last and pt == 0 and pl == 0 and sw == 1
                          and rows <= x__nchw.shape[2] and cols <= x__nchw.shape[3])
    cdef _Prepared prep = (
        _Prepared(rows, cols, sw, pt, x__nchw.shape[2], 0, gw.dtype) if by_task else
        _in_place(x__nchw) if in_place else
        _prepare(x__nchw, pt, pl, rows, cols, sw, n_threads))
    cdef Py_ssize_t[::1] taps = _taps(prep, R, S, dh, dw)
    cdef const floating[::1] buf
    if channels_last:
        buf = prep.buffer
        _backward_weight_cl(&gy__nkpq[0, 0, 0, 0], &buf[0], prep, taps, N, K, Cg, R, S, P, Q,
                            sh, lanes, n_threads, &gw__kcrs[0, 0, 0, 0])
    else:
        _backward_weight_rows(gy__nkpq, x__nchw, prep, taps, gw__kcrs, gw, groups, sh, pl,
                              by_task, n_threads)
