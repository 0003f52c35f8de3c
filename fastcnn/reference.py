"""Convolution and pooling in plain, vectorised NumPy: the test oracle and the benchmark baseline.

Every function has the signature of its twin in `fastcnn.functional` and the semantics of
`torch.nn.functional` for the same arguments (plus ``padding='same'`` with stride > 1, which pads
the odd pixel bottom/right). Arrays are NCHW, conv weights are OIHW ``(K, C/groups, R, S)``.

How it is computed, with no Python loop over pixels:

- `_im2col` copies the windows of a padded input, read through `sliding_window_view`, into
  tap-major columns ``(N, C, R, S, P, Q)``; `_col2im`, its adjoint, adds columns back into a
  padded plane with one strided slice per kernel tap (r, s).
- conv2d multiplies the weights ``(G, K/G, C/G*R*S)`` by the columns ``(N, G, C/G*R*S, P*Q)``
  with one batched BLAS `matmul`. Its backward reuses the columns for grad_weight and col2im's
  the weight-transposed product for grad_x.
- max_pool2d finds, in each window, PyTorch CPU's choice: the first in-bounds maximum in scan
  order, or the last NaN when the window holds one. Its backward is one `np.bincount`.
- avg_pool2d divides the window sums by PyTorch's divisor; its backward is a col2im.

Outputs have the compute dtype (float32 or float64, see `_args.float_arrays`); indices are int64.
Inputs are never modified.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import _args

__all__ = ["conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "avg_pool2d",
           "avg_pool2d_backward"]


def _im2col(xp, kernel, stride, dilation, out):
    """The windows of a padded input xp as C-contiguous tap-major columns (N, C, R, S, P, Q):
    ``cols[n, c, r, s, p, q] = xp[n, c, p*sH + r*dH, q*sW + s*dW]``."""
    (R, S), (sh, sw), (dh, dw), (P, Q) = kernel, stride, dilation, out
    view = sliding_window_view(xp, ((R - 1) * dh + 1, (S - 1) * dw + 1), axis=(2, 3))
    windows__ncpqrs = view[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :P, :Q]
    return np.ascontiguousarray(windows__ncpqrs.transpose(0, 1, 4, 5, 2, 3))


def _col2im(dst__nchw, cols__ncrspq, stride, dilation):
    """Adjoint of `_im2col`: add every column element into dst where `_im2col` read it."""
    _, _, R, S, P, Q = cols__ncrspq.shape
    (sh, sw), (dh, dw) = stride, dilation
    for r in range(R):
        for s in range(S):
            h0, w0 = r * dh, s * dw
            dst__nchw[:, :, h0:h0 + sh * (P - 1) + 1:sh, w0:w0 + sw * (Q - 1) + 1:sw] += \
                cols__ncrspq[:, :, r, s]


# ------------------------------------------------------------------------------ convolution

def _conv_columns(x, g):
    """im2col of the zero-padded input, grouped: (N, G, C/G*R*S, P*Q)."""
    xp = np.pad(x, ((0, 0), (0, 0), (g.pad_top, g.pad_bottom), (g.pad_left, g.pad_right)))
    cols__ncrspq = _im2col(xp, (g.R, g.S), g.stride, g.dilation, (g.P, g.Q))
    return cols__ncrspq.reshape(g.N, g.groups, g.C // g.groups * g.R * g.S, g.P * g.Q)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation of a batch of images with a bank of filters, as F.conv2d.

    Args:
        x: input images.
        weight: filters, ``(K, C/groups, R, S)``.
        bias: optional per-filter offset, ``(K,)``.
        stride: step between windows, an int or a pair (sH, sW).
        padding: zeros added on each side, an int, a pair, ``'valid'`` or ``'same'`` (output
            ``ceil(H / sH)``; any odd pixel of padding goes bottom/right).
        dilation: spacing between kernel taps, an int or a pair.
        groups: channels split into this many independent groups.

    Shape:
        x ``(N, C, H, W)`` -> y ``(N, K, P, Q)`` with
        ``P = (H + pad_top + pad_bottom - dH * (R - 1) - 1) // sH + 1`` (Q likewise).
    """
    x, weight, bias, g = _args.conv_forward_args("conv2d", x, weight, bias, stride, padding,
                                                 dilation, groups)
    w__gkx = weight.reshape(g.groups, g.K // g.groups, -1)
    y = (w__gkx @ _conv_columns(x, g)).reshape(g.out_shape)
    if bias is not None:
        y += bias[:, None, None]
    return y


def conv2d_backward(grad_y, x, weight, stride=1, padding=0, dilation=1, groups=1, *,
                    input_grad=True):
    """Gradients of conv2d with respect to its input, weight and bias.

    Args:
        grad_y: gradient of the loss with respect to the conv2d output.
        x, weight, stride, padding, dilation, groups: as given to `conv2d`.
        input_grad: False skips grad_x (returned as None).

    Shape:
        grad_y ``(N, K, P, Q)`` -> grad_x ``(N, C, H, W)``, grad_weight ``(K, C/groups, R, S)``,
        grad_bias ``(K,)`` (returned whether or not the forward had a bias).
    """
    grad_y, x, weight, g = _args.conv_backward_args("conv2d_backward", grad_y, x, weight,
                                                    stride, padding, dilation, groups)
    gy__ngkl = grad_y.reshape(g.N, g.groups, g.K // g.groups, g.P * g.Q)
    w__gkx = weight.reshape(g.groups, g.K // g.groups, -1)

    grad_bias = grad_y.sum(axis=(0, 2, 3))
    cols__ngxl = _conv_columns(x, g)
    grad_weight = (gy__ngkl @ cols__ngxl.swapaxes(-1, -2)).sum(axis=0).reshape(weight.shape)
    if not _args.flag("conv2d_backward", "input_grad", input_grad):
        return None, grad_weight, grad_bias

    dcols__ngxl = w__gkx.swapaxes(-1, -2) @ gy__ngkl
    grad_xp = np.zeros((g.N, g.C, g.H + g.pad_top + g.pad_bottom, g.W + g.pad_left + g.pad_right),
                       dtype=x.dtype)
    _col2im(grad_xp, dcols__ngxl.reshape(g.N, g.C, g.R, g.S, g.P, g.Q), g.stride, g.dilation)
    grad_x = grad_xp[:, :, g.pad_top:g.pad_top + g.H, g.pad_left:g.pad_left + g.W]
    return np.ascontiguousarray(grad_x), grad_weight, grad_bias


# ---------------------------------------------------------------------------------- pooling

def _canvas_shape(g):
    """(Hp, Wp) of a plane that holds the input at offset (padH, padW) and every window, which
    with ceil_mode may reach past the bottom/right padding."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = g.kernel, g.stride, g.padding, g.dilation
    return (max(ph + g.H, (g.P - 1) * sh + (kh - 1) * dh + 1),
            max(pw + g.W, (g.Q - 1) * sw + (kw - 1) * dw + 1))


def _pool_columns(x, g, fill):
    """im2col of the input placed on a canvas of `fill`, taps flattened: (N, C, kH*kW, P, Q)."""
    ph, pw = g.padding
    xp = np.full((g.N, g.C, *_canvas_shape(g)), fill, dtype=x.dtype)
    xp[:, :, ph:ph + g.H, pw:pw + g.W] = x
    cols__ncrspq = _im2col(xp, g.kernel, g.stride, g.dilation, (g.P, g.Q))
    return cols__ncrspq.reshape(g.N, g.C, g.kernel[0] * g.kernel[1], g.P, g.Q)


def _taps(k, stride, pad, dilation, out):
    """Input coordinate of tap i of window p along one axis, (out, k); may lie outside."""
    return np.arange(out)[:, None] * stride - pad + np.arange(k) * dilation


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Maximum over sliding windows of each channel, as F.max_pool2d on PyTorch CPU.

    Ties go to the first maximum in scan order (row-major over the window); a window holding a
    NaN gives NaN and points at its last NaN; padding counts as -inf and is never chosen, so a
    window of -inf points at its first element inside the input.

    Args:
        x: input images.
        kernel_size: window size, an int or a pair (kH, kW).
        stride: step between windows, an int or a pair; defaults to kernel_size.
        padding: implicit -inf added on each side, at most half the kernel size.
        dilation: spacing between window taps, an int or a pair.
        ceil_mode: round the output size up, letting the last window hang over the bottom/right.
        return_indices: also return where each maximum came from.

    Shape:
        x ``(N, C, H, W)`` -> y ``(N, C, P, Q)`` with
        ``P = (H + 2 * padH - dH * (kH - 1) - 1) // sH + 1`` (rounded up with ceil_mode, but the
        last window must start inside the input or its top/left padding); Q likewise.
        indices ``(N, C, P, Q)`` int64: the flat position ``h * W + w`` in the input plane.
    """
    return_indices = _args.flag("max_pool2d", "return_indices", return_indices)
    x, g = _args.pool_forward_args("max_pool2d", x, kernel_size, stride, padding, dilation,
                                   ceil_mode)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = g.kernel, g.stride, g.padding, g.dilation
    rows__pi = _taps(kh, sh, ph, dh, g.P)
    cols__qj = _taps(kw, sw, pw, dw, g.Q)
    inside__ijpq = (((rows__pi >= 0) & (rows__pi < g.H)).T[:, None, :, None]
                    & ((cols__qj >= 0) & (cols__qj < g.W)).T[None, :, None, :])

    cols__nctpq = _pool_columns(x, g, -np.inf)
    peak = cols__nctpq.max(axis=2, keepdims=True)
    # First in-bounds tap equal to the peak (for an all -inf window: its first in-bounds tap).
    hit = (cols__nctpq == peak) & inside__ijpq.reshape(kh * kw, g.P, g.Q)
    tap = hit.argmax(axis=2)
    nan_window = np.isnan(peak[:, :, 0])
    if nan_window.any():
        last_nan = kh * kw - 1 - np.isnan(cols__nctpq[:, :, ::-1]).argmax(axis=2)
        tap = np.where(nan_window, last_nan, tap)
    # The chosen tap's own value, not `peak`: a tie of -0.0 and 0.0 keeps the first, as PyTorch.
    y = np.take_along_axis(cols__nctpq, tap[:, :, None], axis=2)[:, :, 0]
    if not return_indices:
        return y

    window_start__pq = rows__pi[:, :1] * g.W + cols__qj[:, 0]
    tap_offset = (np.arange(kh)[:, None] * dh * g.W + np.arange(kw) * dw).ravel()
    return y, window_start__pq + tap_offset[tap]


def max_pool2d_backward(grad_y, indices, input_shape, kernel_size, stride=None, padding=0,
                        dilation=1, ceil_mode=False):
    """Gradient of max_pool2d with respect to its input: grad_y routed to the argmax positions.

    Args:
        grad_y: gradient of the loss with respect to the max_pool2d output.
        indices: the indices returned by ``max_pool2d(..., return_indices=True)``.
        input_shape: shape (N, C, H, W) of the forward input.
        kernel_size, stride, padding, dilation, ceil_mode: as given to `max_pool2d`.

    Shape:
        grad_y, indices ``(N, C, P, Q)`` -> grad_x ``(N, C, H, W)``; a position chosen by several
        windows receives the sum of their gradients.
    """
    grad_y, g = _args.pool_backward_args("max_pool2d_backward", grad_y, input_shape,
                                         kernel_size, stride, padding, dilation, ceil_mode)
    indices = _args.pool_indices("max_pool2d_backward", indices, g)
    plane_size = g.H * g.W
    plane_start = np.arange(g.N * g.C, dtype=np.int64).reshape(g.N, g.C, 1, 1) * plane_size
    grad_x = np.bincount((indices + plane_start).ravel(), weights=grad_y.ravel(),
                         minlength=g.N * g.C * plane_size)
    return grad_x.astype(grad_y.dtype).reshape(g.N, g.C, g.H, g.W)


def _avg_divisor(g, count_include_pad, dtype):
    """PyTorch's avg_pool2d divisor of each window, (P, Q).

    A window spans [start, min(start + k, size + pad)) in input coordinates; with
    count_include_pad the divisor is that span, otherwise only its part inside the input.
    PyTorch's output-size rule lets no window lie wholly outside the input, so none is 0.
    """
    spans = []
    for size, k, stride, pad, out in zip((g.H, g.W), g.kernel, g.stride, g.padding, (g.P, g.Q)):
        start = np.arange(out) * stride - pad
        end = np.minimum(start + k, size + pad)
        if count_include_pad:
            spans.append(end - start)
        else:
            spans.append(np.minimum(end, size) - np.maximum(start, 0))
    return np.outer(*spans).astype(dtype)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over sliding windows of each channel, as F.avg_pool2d.

    Args:
        x: input images.
        kernel_size: window size, an int or a pair (kH, kW).
        stride: step between windows, an int or a pair; defaults to kernel_size.
        padding: implicit zeros added on each side, at most half the kernel size.
        ceil_mode: round the output size up, letting the last window hang over the bottom/right
            (the part past the padding is never counted).
        count_include_pad: count the padding zeros in the divisor.

    Shape:
        x ``(N, C, H, W)`` -> y ``(N, C, P, Q)`` with ``P = (H + 2 * padH - kH) // sH + 1``
        (rounded up with ceil_mode, but the last window must start inside the input or its
        top/left padding); Q likewise.
    """
    x, g = _args.pool_forward_args("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = _args.flag("avg_pool2d", "count_include_pad", count_include_pad)
    sums = _pool_columns(x, g, 0).sum(axis=2)
    return sums / _avg_divisor(g, count_include_pad, x.dtype)


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True):
    """Gradient of avg_pool2d with respect to its input.

    Args:
        grad_y: gradient of the loss with respect to the avg_pool2d output.
        input_shape: shape (N, C, H, W) of the forward input.
        kernel_size, stride, padding, ceil_mode, count_include_pad: as given to `avg_pool2d`.

    Shape:
        grad_y ``(N, C, P, Q)`` -> grad_x ``(N, C, H, W)``: each window's gradient, divided by
        its divisor, is added to every input element of the window.
    """
    grad_y, g = _args.pool_backward_args("avg_pool2d_backward", grad_y, input_shape,
                                         kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = _args.flag("avg_pool2d_backward", "count_include_pad",
                                   count_include_pad)
    share__ncpq = grad_y / _avg_divisor(g, count_include_pad, grad_y.dtype)
    grad_xp = np.zeros((g.N, g.C, *_canvas_shape(g)), dtype=grad_y.dtype)
    cols__ncrspq = np.broadcast_to(share__ncpq[:, :, None, None], (g.N, g.C, *g.kernel, g.P, g.Q))
    _col2im(grad_xp, cols__ncrspq, g.stride, g.dilation)
    ph, pw = g.padding
    return np.ascontiguousarray(grad_xp[:, :, ph:ph + g.H, pw:pw + g.W])
