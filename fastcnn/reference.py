"""fastcnn.functional in plain, vectorised NumPy: the test oracle and the benchmark baseline.

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
- The activations, linear and batch_norm are their textbook formulas, written apart from
  functional's (which are tuned for speed and range) so that the two check each other.

Outputs have the compute dtype (float32 or float64, see `_args.float_arrays`); indices are int64.
Inputs are never modified.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import _args
from ._validate import flag, real

__all__ = ["conv2d", "conv2d_backward", "conv2d_backward_data", "conv2d_backward_weight",
           "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid",
           "sigmoid_backward", "tanh", "tanh_backward", "softmax", "softmax_backward",
           "linear", "linear_backward", "batch_norm", "batch_norm_backward"]


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
    input_grad = flag("conv2d_backward", "input_grad", input_grad)
    grad_x = _backward_data(grad_y, weight, g) if input_grad else None
    return grad_x, _backward_weight(grad_y, x, g), grad_y.sum(axis=(0, 2, 3))


def conv2d_backward_data(grad_y, weight, input_shape, stride=1, padding=0, dilation=1,
                         groups=1):
    """Gradient of conv2d with respect to its input: grad_y ``(N, K, P, Q)`` and the weight
    -> grad_x of `input_shape` ``(N, C, H, W)``."""
    grad_y, weight, g = _args.conv_data_args("conv2d_backward_data", grad_y, weight,
                                             input_shape, stride, padding, dilation, groups)
    return _backward_data(grad_y, weight, g)


def conv2d_backward_weight(grad_y, x, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of conv2d with respect to its weight: grad_y ``(N, K, P, Q)`` and the input
    -> grad_weight of `weight_shape` ``(K, C/groups, R, S)``."""
    grad_y, x, g = _args.conv_weight_args("conv2d_backward_weight", grad_y, x, weight_shape,
                                          stride, padding, dilation, groups)
    return _backward_weight(grad_y, x, g)


def _backward_weight(grad_y, x, g):
    gy__ngkl = grad_y.reshape(g.N, g.groups, g.K // g.groups, g.P * g.Q)
    cols__ngxl = _conv_columns(x, g)
    return (gy__ngkl @ cols__ngxl.swapaxes(-1, -2)).sum(axis=0).reshape(g.weight_shape)


def _backward_data(grad_y, weight, g):
    gy__ngkl = grad_y.reshape(g.N, g.groups, g.K // g.groups, g.P * g.Q)
    w__gkx = weight.reshape(g.groups, g.K // g.groups, -1)
    dcols__ngxl = w__gkx.swapaxes(-1, -2) @ gy__ngkl
    grad_xp = np.zeros((g.N, g.C, g.H + g.pad_top + g.pad_bottom, g.W + g.pad_left + g.pad_right),
                       dtype=weight.dtype)
    _col2im(grad_xp, dcols__ngxl.reshape(g.N, g.C, g.R, g.S, g.P, g.Q), g.stride, g.dilation)
    grad_x = grad_xp[:, :, g.pad_top:g.pad_top + g.H, g.pad_left:g.pad_left + g.W]
    return np.ascontiguousarray(grad_x)


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
    return_indices = flag("max_pool2d", "return_indices", return_indices)
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
    count_include_pad = flag("avg_pool2d", "count_include_pad", count_include_pad)
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
    count_include_pad = flag("avg_pool2d_backward", "count_include_pad",
                                   count_include_pad)
    share__ncpq = grad_y / _avg_divisor(g, count_include_pad, grad_y.dtype)
    grad_xp = np.zeros((g.N, g.C, *_canvas_shape(g)), dtype=grad_y.dtype)
    cols__ncrspq = np.broadcast_to(share__ncpq[:, :, None, None], (g.N, g.C, *g.kernel, g.P, g.Q))
    _col2im(grad_xp, cols__ncrspq, g.stride, g.dilation)
    ph, pw = g.padding
    return np.ascontiguousarray(grad_xp[:, :, ph:ph + g.H, pw:pw + g.W])


# ------------------------------------------------------------------------------ activations

def relu(x):
    """x where x > 0 (and NaN), else +0."""
    x = _args.unary_args("relu", x)
    return np.where(x <= 0, 0, x)


def relu_backward(grad_y, y):
    """grad_y where relu's output y is not <= 0, else 0."""
    grad_y, y = _args.unary_backward_args("relu_backward", grad_y, y)
    return np.where(y <= 0, 0, grad_y)


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, negative_slope * x elsewhere."""
    negative_slope = real("leaky_relu", "negative_slope", negative_slope)
    x = _args.unary_args("leaky_relu", x)
    return np.where(x > 0, x, negative_slope * x).astype(x.dtype)


def leaky_relu_backward(grad_y, x, negative_slope=0.01):
    """grad_y where the input x > 0, negative_slope * grad_y elsewhere."""
    negative_slope = real("leaky_relu_backward", "negative_slope", negative_slope)
    grad_y, x = _args.unary_backward_args("leaky_relu_backward", grad_y, x, "input")
    return np.where(x > 0, grad_y, negative_slope * grad_y).astype(x.dtype)


def sigmoid(x):
    """1 / (1 + exp(-x)); exp overflowing to inf gives the exact limit 0."""
    x = _args.unary_args("sigmoid", x)
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x))).astype(x.dtype)


def sigmoid_backward(grad_y, y):
    """The derivative of sigmoid in terms of its output: y - y**2."""
    grad_y, y = _args.unary_backward_args("sigmoid_backward", grad_y, y)
    return grad_y * (y - y * y)


def tanh(x):
    """(exp(2x) - 1) / (exp(2x) + 1), as 1 - 2 / (exp(2x) + 1) so that large x gives 1."""
    x = _args.unary_args("tanh", x)
    with np.errstate(over="ignore"):
        return (1 - 2 / (np.exp(2 * x) + 1)).astype(x.dtype)


def tanh_backward(grad_y, y):
    """The derivative of tanh in terms of its output: 1 - y**2."""
    grad_y, y = _args.unary_backward_args("tanh_backward", grad_y, y)
    return grad_y * (1 - y * y)


def softmax(x, dim):
    """exp(x - logsumexp(x)) along dim."""
    x = _args.unary_args("softmax", x)
    dim = _args.softmax_dim("softmax", dim, x.ndim)
    top = x.max(axis=dim, keepdims=True)
    log_sum = np.log(np.exp(x - top).sum(axis=dim, keepdims=True)) + top
    return np.exp(x - log_sum)


def softmax_backward(grad_y, y, dim):
    """The Jacobian diag(y) - y y^T of each slice along dim applied to grad_y."""
    grad_y, y = _args.unary_backward_args("softmax_backward", grad_y, y)
    dim = _args.softmax_dim("softmax_backward", dim, y.ndim)
    y_m, g_m = np.moveaxis(y, dim, -1), np.moveaxis(grad_y, dim, -1)
    jacobian = np.einsum("...i,ij->...ij", y_m, np.eye(y_m.shape[-1], dtype=y.dtype)) \
        - y_m[..., :, None] * y_m[..., None, :]
    return np.moveaxis(np.einsum("...ij,...j->...i", jacobian, g_m), -1, dim)


# ----------------------------------------------------------------------------------- linear

def linear(x, weight, bias=None):
    """x @ weight.T + bias over the last axis: x (*, in) -> (*, out)."""
    x, weight, bias = _args.linear_args("linear", x, weight, bias)
    y = x @ weight.T
    return y if bias is None else y + bias


def linear_backward(grad_y, x, weight, *, input_grad=True):
    """(grad_x, grad_weight, grad_bias) of linear; grad_x None when input_grad is False."""
    grad_y, x, weight = _args.linear_backward_args("linear_backward", grad_y, x, weight)
    input_grad = flag("linear_backward", "input_grad", input_grad)
    rows = grad_y.reshape(-1, weight.shape[0])
    grad_w = rows.T @ x.reshape(-1, weight.shape[1])
    return (grad_y @ weight if input_grad else None), grad_w, rows.sum(axis=0)


# ----------------------------------------------------------------------- batch normalisation

def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, return_stats=False):
    """(x - mean) / sqrt(var + eps) * weight + bias per channel (axis 1), with the batch's
    statistics in training (updating the running ones in place) or the running ones."""
    x, weight, bias, training, momentum, eps = _args.batch_norm_args(
        "batch_norm", x, running_mean, running_var, weight, bias, training, momentum, eps)
    return_stats = flag("batch_norm", "return_stats", return_stats)
    x_cn = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    if training:
        mean, var = x_cn.mean(axis=1), x_cn.var(axis=1)
        if running_mean is not None:
            n = x_cn.shape[1]
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            running_var[...] = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    else:
        mean, var = running_mean.copy(), running_var
    inv_std = (1 / np.sqrt(var + eps)).astype(x.dtype)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) * inv_std.reshape(shape)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return (y, mean, inv_std) if return_stats else y


def batch_norm_backward(grad_y, x, mean, inv_std, weight=None, training=True):
    """(grad_x, grad_weight, grad_bias) of batch_norm, from the statistics it returned."""
    grad_y, x, mean, inv_std, weight, training = _args.batch_norm_backward_args(
        "batch_norm_backward", grad_y, x, mean, inv_std, weight, training)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    axes = (0,) + tuple(range(2, x.ndim))
    x_hat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
    grad_w, grad_b = None, grad_y.sum(axis=axes)
    scale = inv_std.reshape(shape)
    if weight is not None:
        grad_w = (grad_y * x_hat).sum(axis=axes)
        scale = scale * weight.reshape(shape)
    if not training:
        return grad_y * scale, grad_w, grad_b
    n = x.size // x.shape[1]
    # d/dx of (x - mean) * inv_std, with mean and inv_std functions of every x in the channel
    grad_x = scale / n * (n * grad_y - grad_y.sum(axis=axes, keepdims=True)
                          - x_hat * (grad_y * x_hat).sum(axis=axes, keepdims=True))
    return grad_x, grad_w, grad_b
