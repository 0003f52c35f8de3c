"""Convolution and pooling, forward and backward, on compiled OpenMP kernels.

Same signatures and the same numbers as ``torch.nn.functional`` for the same arguments (and as
`fastcnn.reference`, the plain NumPy version). Conventions:

* x is (N, C, H, W); conv weights are (K, C/groups, R, S); bias is (K,).
* Hyper-parameters are an int or a pair of ints. Convolution ``padding`` may also be
  ``'valid'`` (no padding) or ``'same'``: the output is ceil(H / stride) x ceil(W / stride),
  with any odd pixel of padding on the bottom/right. PyTorch refuses 'same' with stride > 1;
  fastcnn allows it (as TensorFlow does).
* Output sizes are floor((H + 2p - d(k-1) - 1) / s) + 1; for pooling, ``ceil_mode`` rounds up,
  but the last window must start inside the input or the left padding (PyTorch's rule).
* Compute dtype is float32 or float64, set by the float arrays given (mixing the two is a
  TypeError); float16, int and bool arrays are cast up to it (float32 if nothing decides).
* Any memory layout, byte order or read-only input works; inputs are never modified.
* Kernels run on up to `fastcnn.get_num_threads()` threads; a call too small to gain from
  threads (under about a millisecond of work) runs on one, since waking threads would cost
  more than it saves.
"""
from __future__ import annotations

import numpy as np

from . import _args
from . import reference as _reference
from ._config import get_num_threads
from ._kernels import conv as _conv
from ._kernels import pool as _pool

__all__ = ["conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "avg_pool2d",
           "avg_pool2d_backward"]


# Work per extra thread below which a call stays on one thread: multiply-adds for
# convolution, input elements visited for pooling.
_CONV_MACS_PER_THREAD = 1 << 20
_POOL_ELEMENTS_PER_THREAD = 1 << 16


def _threads(work: int, per_thread: int) -> int:
    return max(1, min(get_num_threads(), work // per_thread))


def _conv_params(g: _args.ConvGeometry):
    macs = g.N * g.K * g.P * g.Q * (g.C // g.groups) * g.R * g.S
    return (g.groups, g.stride[0], g.stride[1], g.pad_top, g.pad_left, g.dilation[0],
            g.dilation[1], _threads(macs, _CONV_MACS_PER_THREAD))


def _pool_threads(g: _args.PoolGeometry) -> int:
    visits = g.N * g.C * max(g.H * g.W, g.P * g.Q * g.kernel[0] * g.kernel[1])
    return _threads(visits, _POOL_ELEMENTS_PER_THREAD)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) of a batch of images with a bank of filters.

    Args:
        x: input, (N, C, H, W).
        weight: filters, (K, C/groups, R, S).
        bias: optional, (K,).
        stride, dilation: int or (sh, sw) / (dh, dw), each >= 1.
        padding: int or (ph, pw) zero padding on both sides, or 'valid' or 'same'.
        groups: split channels into this many independent groups (groups == C: depthwise).

    Shape:
        output (N, K, P, Q), P = floor((H + 2*ph - dh*(R-1) - 1) / sh) + 1, Q likewise.

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.conv2d(np.ones((1, 3, 32, 32), np.float32), np.ones((1, 3, 5, 5), np.float32)).shape
        (1, 1, 28, 28)
    """
    x, weight, bias, g = _args.conv_forward_args("conv2d", x, weight, bias, stride, padding,
                                                 dilation, groups)
    y = np.empty(g.out_shape, dtype=x.dtype)
    if bias is None:
        bias = np.empty(0, dtype=x.dtype)
    _conv.forward(x, weight, bias, y, *_conv_params(g))
    return y


def conv2d_backward(grad_y, x, weight, stride=1, padding=0, dilation=1, groups=1, *,
                    input_grad=True):
    """Gradients of conv2d with respect to its input, weight and bias.

    Args:
        grad_y: gradient of the loss with respect to conv2d's output, (N, K, P, Q).
        x, weight, stride, padding, dilation, groups: as given to `conv2d`.
        input_grad: False skips grad_x (returned as None): a network's first layer needs
            only its weights' gradients, and grad_x costs as much as the forward pass.

    Returns:
        (grad_x, grad_weight, grad_bias) with the shapes of x, weight and (K,).

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> x, w = np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3))
        >>> gx, gw, gb = F.conv2d_backward(np.ones((2, 4, 6, 6)), x, w)
        >>> gb
        array([72., 72., 72., 72.])
    """
    grad_y, x, weight, g = _args.conv_backward_args("conv2d_backward", grad_y, x, weight,
                                                    stride, padding, dilation, groups)
    input_grad = _args.flag("conv2d_backward", "input_grad", input_grad)
    grad_x = np.empty(x.shape, dtype=x.dtype) if input_grad else None
    grad_w = np.empty(weight.shape, dtype=x.dtype)
    params = _conv_params(g)
    if input_grad and np.isfinite(weight).all():
        _conv.backward_data(grad_y, weight, grad_x, *params)
    elif input_grad:
        # The kernel correlates a zero-padded grad_y with the weights, and 0 * inf is NaN
        # where PyTorch, which skips the padding, has a finite value. The NumPy reference
        # drops the padded positions too: use it for this rare case.
        with np.errstate(invalid="ignore", over="ignore"):
            grad_x = _reference.conv2d_backward(grad_y, x, weight, stride, padding, dilation,
                                                groups)[0]
    _conv.backward_weight(grad_y, x, grad_w, *params)
    return grad_x, grad_w, grad_y.sum(axis=(0, 2, 3))


def _pool_params(g: _args.PoolGeometry):
    return g.kernel + g.stride + g.padding


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max-pooling over each channel: the largest value in every window.

    Padding acts as -inf and may be at most half the kernel. Ties go to the first maximum in
    row-major window order; a window holding NaN gives NaN (its index: the last NaN).

    Args:
        x: input, (N, C, H, W).
        kernel_size: int or (kh, kw).
        stride: int or pair; default kernel_size.
        padding, dilation: int or pair.
        ceil_mode: round output sizes up instead of down.
        return_indices: also return the argmax positions.

    Returns:
        y (N, C, P, Q), and with return_indices the int64 positions h*W + w of each maximum in
        its input plane (what `max_pool2d_backward` takes).

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.max_pool2d(np.arange(16.).reshape(1, 1, 4, 4), 2)
        array([[[[ 5.,  7.],
                 [13., 15.]]]])
    """
    return_indices = _args.flag("max_pool2d", "return_indices", return_indices)
    x, g = _args.pool_forward_args("max_pool2d", x, kernel_size, stride, padding, dilation,
                                   ceil_mode)
    y = np.empty(g.out_shape, dtype=x.dtype)
    indices = np.empty(g.out_shape, dtype=np.int64)
    _pool.max_forward(x, y, indices, *_pool_params(g), *g.dilation, _pool_threads(g))
    return (y, indices) if return_indices else y


def max_pool2d_backward(grad_y, indices, input_shape, kernel_size, stride=None, padding=0,
                        dilation=1, ceil_mode=False):
    """Gradient of max_pool2d: each output's gradient goes to the input element it came from.

    Args:
        grad_y: gradient with respect to max_pool2d's output, (N, C, P, Q).
        indices: the positions max_pool2d returned with return_indices=True.
        input_shape: (N, C, H, W) of max_pool2d's input.
        kernel_size, stride, padding, dilation, ceil_mode: as given to max_pool2d.

    Returns:
        grad_x, (N, C, H, W).
    """
    grad_y, g = _args.pool_backward_args("max_pool2d_backward", grad_y, input_shape,
                                         kernel_size, stride, padding, dilation, ceil_mode)
    # the kernel checks the indices' range in its own pass (two NumPy passes cost 20%)
    indices = _args.pool_indices("max_pool2d_backward", indices, g, check_range=False)
    grad_x = np.empty((g.N, g.C, g.H, g.W), dtype=grad_y.dtype)
    if not _pool.max_backward(grad_y, indices, grad_x, *_pool_params(g), *g.dilation,
                              _pool_threads(g)):
        raise _args.indices_range_error("max_pool2d_backward", indices, g)
    return grad_x


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling over each channel.

    The divisor is the window size clipped to the padded input when count_include_pad (zero
    padding counts), otherwise the number of input elements in the window (PyTorch's rule).

    Args:
        x: input, (N, C, H, W).
        kernel_size: int or (kh, kw); stride defaults to it; padding at most half of it.
        ceil_mode: round output sizes up instead of down.
        count_include_pad: whether padding counts in the divisor.

    Returns:
        y, (N, C, P, Q).

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.avg_pool2d(np.arange(16.).reshape(1, 1, 4, 4), 2)
        array([[[[ 2.5,  4.5],
                 [10.5, 12.5]]]])
    """
    x, g = _args.pool_forward_args("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = _args.flag("avg_pool2d", "count_include_pad", count_include_pad)
    y = np.empty(g.out_shape, dtype=x.dtype)
    _pool.avg_forward(x, y, *_pool_params(g), count_include_pad, _pool_threads(g))
    return y


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True):
    """Gradient of avg_pool2d: each output's gradient shared evenly by its window.

    Args:
        grad_y: gradient with respect to avg_pool2d's output, (N, C, P, Q).
        input_shape: (N, C, H, W) of avg_pool2d's input.
        kernel_size, stride, padding, ceil_mode, count_include_pad: as given to avg_pool2d.

    Returns:
        grad_x, (N, C, H, W).
    """
    grad_y, g = _args.pool_backward_args("avg_pool2d_backward", grad_y, input_shape,
                                         kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = _args.flag("avg_pool2d_backward", "count_include_pad",
                                   count_include_pad)
    grad_x = np.empty((g.N, g.C, g.H, g.W), dtype=grad_y.dtype)
    _pool.avg_backward(grad_y, grad_x, *_pool_params(g), count_include_pad, _pool_threads(g))
    return grad_x
