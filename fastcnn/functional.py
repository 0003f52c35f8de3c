"""The one door from Python to fastcnn's compiled kernels: convolution, pooling, activations,
linear and batch normalisation, each with its backward.

Same signatures and the same numbers as ``torch.nn.functional`` for the same arguments (and as
`fastcnn.reference`, the plain NumPy version, function for function). Conventions:

* x is (N, C, H, W); conv weights are (K, C/groups, R, S); bias is (K,); linear weights are
  (out_features, in_features).
* Hyper-parameters are an int or a pair of ints. Convolution ``padding`` may also be
  ``'valid'`` (no padding) or ``'same'``: the output is ceil(H / stride) x ceil(W / stride),
  with any odd pixel of padding on the bottom/right. PyTorch refuses 'same' with stride > 1;
  fastcnn allows it (as TensorFlow does).
* Output sizes are floor((H + 2p - d(k-1) - 1) / s) + 1; for pooling, ``ceil_mode`` rounds up,
  but the last window must start inside the input or the left padding (PyTorch's rule).
* Compute dtype is float32 or float64, set by the float arrays given (mixing the two is a
  TypeError); float16, int and bool arrays are cast up to it (float32 if nothing decides).
* Any memory layout, byte order or read-only input works; inputs are never modified (but
  `batch_norm` updates the running statistics it is given, as PyTorch does).
* A backward takes what its forward was given or returned (``y`` for relu, sigmoid, tanh and
  softmax: the output is all their gradient needs) and returns the gradients.
* Kernels run on up to `fastcnn.get_num_threads()` threads; a call too small to gain from
  threads (under about a millisecond of work) runs on one, since waking threads would cost
  more than it saves. That choice is made here, in `_threads`, for every kernel.
"""
from __future__ import annotations

import numpy as np

from . import _args, _blas
from ._config import get_num_threads
from ._kernels import conv as _conv
from ._kernels import eltwise as _eltwise
from ._kernels import pool as _pool
from ._validate import choice, flag, real

__all__ = ["conv2d", "conv2d_backward", "conv2d_backward_data", "conv2d_backward_weight",
           "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid",
           "sigmoid_backward", "tanh", "tanh_backward", "softmax", "softmax_backward",
           "linear", "linear_backward", "batch_norm", "batch_norm_backward"]


# ---------------------------------------------------------------------------------- threads

# Work per extra thread below which a call stays on one thread: multiply-adds for
# convolution, input elements visited for pooling, elements for element-wise passes.
_CONV_MACS_PER_THREAD = 1 << 20
_POOL_ELEMENTS_PER_THREAD = 1 << 16
_ELEMENTS_PER_THREAD = 1 << 16
# A matmul of at least this many multiply-adds is split over the threads (fastcnn/_blas.py);
# below it, handing work to a thread costs more than it saves.
_MATMUL_SPLIT_MACS = 1 << 22


def _threads(work: int, per_thread: int) -> int:
    return max(1, min(get_num_threads(), work // per_thread))


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for 2-D arrays, on fastcnn's threads when it is big enough to gain from them."""
    big = a.shape[0] * a.shape[1] * b.shape[1] >= _MATMUL_SPLIT_MACS
    return _blas.matmul(a, b, get_num_threads() if big else 1)


def _conv_params(g: _args.ConvGeometry):
    macs = g.N * g.K * g.P * g.Q * (g.C // g.groups) * g.R * g.S
    return (g.groups, g.stride[0], g.stride[1], g.pad_top, g.pad_left, g.dilation[0],
            g.dilation[1], _threads(macs, _CONV_MACS_PER_THREAD))


def _pool_threads(g: _args.PoolGeometry) -> int:
    visits = g.N * g.C * max(g.H * g.W, g.P * g.Q * g.kernel[0] * g.kernel[1])
    return _threads(visits, _POOL_ELEMENTS_PER_THREAD)


# ------------------------------------------------------------------------------ convolution

def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm=None):
    """2-D convolution (cross-correlation) of a batch of images with a bank of filters.

    Args:
        x: input, (N, C, H, W).
        weight: filters, (K, C/groups, R, S).
        bias: optional, (K,).
        stride, dilation: int or (sh, sw) / (dh, dw), each >= 1.
        padding: int or (ph, pw) zero padding on both sides, or 'valid' or 'same'.
        groups: split channels into this many independent groups (groups == C: depthwise).
        algorithm: force a kernel choice, for tests and benchmarks; None chooses by shape.
            A dict of any of "tiles" ("positions", "rows", "channels"), "prepare" ("whole",
            "per_task") and "wgrad" ("rows", "channels": the weight gradient's), each "auto"
            when left out. Results agree up to rounding.

    Shape:
        output (N, K, P, Q), P = floor((H + 2*ph - dh*(R-1) - 1) / sh) + 1, Q likewise.

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.conv2d(np.ones((1, 3, 32, 32), np.float32), np.ones((1, 3, 5, 5), np.float32)).shape
        (1, 1, 28, 28)
    """
    x, weight, bias, g = _args.conv_forward_args("conv2d", x, weight, bias, stride, padding,
                                                 dilation, groups)
    algorithm = _algorithm("conv2d", algorithm)
    y = np.empty(g.out_shape, dtype=x.dtype)
    if bias is None:
        bias = np.empty(0, dtype=x.dtype)
    _conv.forward(x, weight, bias, y, *_conv_params(g), algorithm)
    return y


def conv2d_backward(grad_y, x, weight, stride=1, padding=0, dilation=1, groups=1, *,
                    input_grad=True, algorithm=None):
    """Gradients of conv2d with respect to its input, weight and bias.

    Args:
        grad_y: gradient of the loss with respect to conv2d's output, (N, K, P, Q).
        x, weight, stride, padding, dilation, groups: as given to `conv2d`.
        input_grad: False skips grad_x (returned as None): a network's first layer needs
            only its weights' gradients, and grad_x costs as much as the forward pass.
        algorithm: as for `conv2d`, for both gradients.

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
    input_grad = flag("conv2d_backward", "input_grad", input_grad)
    algorithm = _algorithm("conv2d_backward", algorithm)
    grad_x = _backward_data(grad_y, weight, g, algorithm) if input_grad else None
    return grad_x, _backward_weight(grad_y, x, g, algorithm), grad_y.sum(axis=(0, 2, 3))


def conv2d_backward_data(grad_y, weight, input_shape, stride=1, padding=0, dilation=1,
                         groups=1, *, algorithm=None):
    """Gradient of conv2d with respect to its input (``torch.nn.grad.conv2d_input``).

    Args:
        grad_y: gradient of the loss with respect to conv2d's output, (N, K, P, Q).
        weight: the filters conv2d was given, (K, C/groups, R, S).
        input_shape: (N, C, H, W) of conv2d's input.
        stride, padding, dilation, groups, algorithm: as given to `conv2d`.

    Returns:
        grad_x, (N, C, H, W).

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.conv2d_backward_data(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), (1, 1, 3, 3))
        array([[[[1., 2., 1.],
                 [2., 4., 2.],
                 [1., 2., 1.]]]])
    """
    grad_y, weight, g = _args.conv_data_args("conv2d_backward_data", grad_y, weight,
                                             input_shape, stride, padding, dilation, groups)
    return _backward_data(grad_y, weight, g, _algorithm("conv2d_backward_data", algorithm))


def conv2d_backward_weight(grad_y, x, weight_shape, stride=1, padding=0, dilation=1, groups=1,
                           *, algorithm=None):
    """Gradient of conv2d with respect to its weight (``torch.nn.grad.conv2d_weight``).

    Args:
        grad_y: gradient of the loss with respect to conv2d's output, (N, K, P, Q).
        x: the input conv2d was given, (N, C, H, W).
        weight_shape: (K, C/groups, R, S) of conv2d's weight.
        stride, padding, dilation, groups, algorithm: as given to `conv2d`.

    Returns:
        grad_weight, (K, C/groups, R, S).

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.conv2d_backward_weight(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)), (1, 1, 2, 2))
        array([[[[4., 4.],
                 [4., 4.]]]])
    """
    grad_y, x, g = _args.conv_weight_args("conv2d_backward_weight", grad_y, x, weight_shape,
                                          stride, padding, dilation, groups)
    return _backward_weight(grad_y, x, g, _algorithm("conv2d_backward_weight", algorithm))


def _algorithm(fname: str, algorithm):
    """A forced kernel choice (see `conv2d`), checked here so that errors name the call."""
    if algorithm is None:
        return None
    if not isinstance(algorithm, dict):
        raise TypeError(f"{fname}: algorithm must be None or a dict, got "
                        f"{type(algorithm).__name__} {algorithm!r}")
    for key, value in algorithm.items():
        choice(fname, "a key of algorithm", key, tuple(_conv.ALGORITHMS))
        choice(fname, f"algorithm[{key!r}]", value, _conv.ALGORITHMS[key])
    return algorithm


def _backward_data(grad_y, weight, g: _args.ConvGeometry, algorithm) -> np.ndarray:
    if not np.isfinite(weight).all():
        return _backward_data_scattered(grad_y, weight, g)
    grad_x = np.empty((g.N, g.C, g.H, g.W), dtype=weight.dtype)
    _conv.backward_data(grad_y, weight, grad_x, *_conv_params(g), algorithm)
    return grad_x


def _backward_weight(grad_y, x, g: _args.ConvGeometry, algorithm) -> np.ndarray:
    grad_w = np.empty(g.weight_shape, dtype=x.dtype)
    _conv.backward_weight(grad_y, x, grad_w, *_conv_params(g), algorithm)
    return grad_w


def _backward_data_scattered(grad_y, weight, g: _args.ConvGeometry) -> np.ndarray:
    """The input gradient for weights holding inf or NaN, one tap at a time.

    The kernel correlates a zero-padded grad_y with the weights, so padding zeros meet an
    infinite weight and make NaN (0 * inf) where PyTorch, which never reads the padding, has
    a finite value. Here each tap's products w[:, :, r, s]^T @ grad_y are added into a padded
    plane at the inputs that tap touched, so only real grad_y values are multiplied.
    """
    G, Kg, Cg = g.groups, g.K // g.groups, g.C // g.groups
    (sh, sw), (dh, dw) = g.stride, g.dilation
    gy__ngkl = grad_y.reshape(g.N, G, Kg, g.P * g.Q)
    w__gkcrs = weight.reshape(G, Kg, Cg, g.R, g.S)
    grad_xp = np.zeros((g.N, G, Cg, g.H + g.pad_top + g.pad_bottom,
                        g.W + g.pad_left + g.pad_right), dtype=weight.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        for r in range(g.R):
            for s in range(g.S):
                part = w__gkcrs[:, :, :, r, s].swapaxes(-1, -2) @ gy__ngkl
                grad_xp[:, :, :, r * dh:r * dh + sh * (g.P - 1) + 1:sh,
                        s * dw:s * dw + sw * (g.Q - 1) + 1:sw] += \
                    part.reshape(g.N, G, Cg, g.P, g.Q)
    grad_x = grad_xp[:, :, :, g.pad_top:g.pad_top + g.H, g.pad_left:g.pad_left + g.W]
    return np.ascontiguousarray(grad_x).reshape(g.N, g.C, g.H, g.W)


# ---------------------------------------------------------------------------------- pooling

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
    return_indices = flag("max_pool2d", "return_indices", return_indices)
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
    # the kernel checks the indices' range in its own pass: one pass over them, not three
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
    count_include_pad = flag("avg_pool2d", "count_include_pad", count_include_pad)
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
    count_include_pad = flag("avg_pool2d_backward", "count_include_pad",
                                   count_include_pad)
    grad_x = np.empty((g.N, g.C, g.H, g.W), dtype=grad_y.dtype)
    _pool.avg_backward(grad_y, grad_x, *_pool_params(g), count_include_pad, _pool_threads(g))
    return grad_x


# ------------------------------------------------------------------------------ activations

def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1)  # the arrays _args hands over are C-contiguous: a view


def relu(x):
    """max(x, 0) element-wise; NaN propagates.

    Shape:
        any; the output has the input's shape.

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.relu(np.array([-1.0, 2.0]))
        array([0., 2.])
    """
    x = _args.unary_args("relu", x)
    y = np.empty(x.shape, x.dtype)
    _eltwise.relu_forward(_flat(x), _flat(y), _threads(x.size, _ELEMENTS_PER_THREAD))
    return y


def relu_backward(grad_y, y):
    """Gradient of relu from its output y: grad_y where y > 0 or NaN, else 0 (PyTorch's rule:
    no gradient at x = 0).

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.relu_backward(np.ones(3), F.relu(np.array([-1.0, 0.0, 2.0])))
        array([0., 0., 1.])
    """
    grad_y, y = _args.unary_backward_args("relu_backward", grad_y, y)
    grad_x = np.empty(y.shape, y.dtype)
    _eltwise.relu_backward(_flat(grad_y), _flat(y), _flat(grad_x),
                           _threads(y.size, _ELEMENTS_PER_THREAD))
    return grad_x


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, negative_slope * x elsewhere.

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.leaky_relu(np.array([-1.0, 2.0]), 0.1)
        array([-0.1,  2. ])
    """
    negative_slope = real("leaky_relu", "negative_slope", negative_slope)
    x = _args.unary_args("leaky_relu", x)
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(grad_y, x, negative_slope=0.01):
    """Gradient of leaky_relu from its input x: grad_y where x > 0, else negative_slope times it."""
    negative_slope = real("leaky_relu_backward", "negative_slope", negative_slope)
    grad_y, x = _args.unary_backward_args("leaky_relu_backward", grad_y, x, "input")
    return np.where(x > 0, grad_y, grad_y * x.dtype.type(negative_slope))


def sigmoid(x):
    """1 / (1 + exp(-x)) element-wise, without overflow for large |x|.

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.sigmoid(np.array([0.0]))
        array([0.5])
    """
    x = _args.unary_args("sigmoid", x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(grad_y, y):
    """Gradient of sigmoid from its output y: grad_y * y * (1 - y)."""
    grad_y, y = _args.unary_backward_args("sigmoid_backward", grad_y, y)
    return grad_y * y * (1 - y)


def tanh(x):
    """tanh(x) element-wise.

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.tanh(np.array([0.0]))
        array([0.])
    """
    return np.tanh(_args.unary_args("tanh", x))


def tanh_backward(grad_y, y):
    """Gradient of tanh from its output y: grad_y * (1 - y**2)."""
    grad_y, y = _args.unary_backward_args("tanh_backward", grad_y, y)
    return grad_y * (1 - y * y)


def softmax(x, dim):
    """exp(x) / sum(exp(x)) along axis dim, computed stably (the maximum subtracted first).

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.softmax(np.zeros((1, 4)), dim=1)
        array([[0.25, 0.25, 0.25, 0.25]])
    """
    x = _args.unary_args("softmax", x)
    dim = _args.softmax_dim("softmax", dim, x.ndim)
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def softmax_backward(grad_y, y, dim):
    """Gradient of softmax from its output y: y * (grad_y - sum(grad_y * y) along dim)."""
    grad_y, y = _args.unary_backward_args("softmax_backward", grad_y, y)
    dim = _args.softmax_dim("softmax_backward", dim, y.ndim)
    return y * (grad_y - (grad_y * y).sum(axis=dim, keepdims=True))


# ----------------------------------------------------------------------------------- linear

def linear(x, weight, bias=None):
    """x @ weight.T + bias over the last axis, as ``torch.nn.functional.linear``.

    The matmuls run NumPy's OpenBLAS on one thread per part, big ones split over fastcnn's
    threads (fastcnn/_blas.py): OpenBLAS's own threads keep spinning after a call and slow
    the convolutions that follow.

    Args:
        x: input, (*, in_features).
        weight: (out_features, in_features).
        bias: optional, (out_features,).

    Returns:
        y, (*, out_features).

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> F.linear(np.ones((2, 3)), np.ones((4, 3)), np.arange(4.0))
        array([[3., 4., 5., 6.],
               [3., 4., 5., 6.]])
    """
    x, weight, bias = _args.linear_args("linear", x, weight, bias)
    y = _matmul(x.reshape(-1, weight.shape[1]), weight.T)
    y = y.reshape(x.shape[:-1] + (weight.shape[0],))
    if bias is not None:
        y += bias
    return y


def linear_backward(grad_y, x, weight, *, input_grad=True):
    """Gradients of linear with respect to its input, weight and bias.

    Args:
        grad_y: gradient with respect to linear's output, (*, out_features).
        x, weight: as given to `linear`.
        input_grad: False skips grad_x (returned as None).

    Returns:
        (grad_x, grad_weight, grad_bias) with the shapes of x, weight and (out_features,).
    """
    grad_y, x, weight = _args.linear_backward_args("linear_backward", grad_y, x, weight)
    input_grad = flag("linear_backward", "input_grad", input_grad)
    rows = grad_y.reshape(-1, weight.shape[0])
    grad_w = _matmul(rows.T, x.reshape(-1, weight.shape[1]))
    grad_x = _matmul(rows, weight).reshape(x.shape) if input_grad else None
    return grad_x, grad_w, rows.sum(axis=0)


# ----------------------------------------------------------------------- batch normalisation

def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, return_stats=False):
    """Normalise each channel to zero mean and unit variance, then scale and shift, as
    ``torch.nn.functional.batch_norm``.

    In training the batch's mean and biased variance are used, and running_mean and
    running_var (when given) are updated in place as
    ``running = (1 - momentum) * running + momentum * batch``, with the unbiased variance.
    Otherwise the running statistics are used.

    Args:
        x: input, (N, C, *).
        running_mean, running_var: (C,) arrays of x's compute dtype, or None (training only).
        weight, bias: optional per-channel scale and shift, (C,).
        training: use and track the batch's statistics.
        momentum: weight of this batch in the running statistics, in [0, 1].
        eps: added to the variance before the square root, >= 0.
        return_stats: also return the mean and 1 / sqrt(var + eps) used, (C,) each: what
            `batch_norm_backward` takes.

    Returns:
        y with x's shape; with return_stats, (y, mean, inv_std).

    Example:
        >>> import numpy as np, fastcnn.functional as F
        >>> x = np.array([[[[1.0]], [[2.0]]], [[[3.0]], [[6.0]]]])   # (2, 2, 1, 1)
        >>> F.batch_norm(x, None, None, training=True, eps=0.0)[:, :, 0, 0]
        array([[-1., -1.],
               [ 1.,  1.]])
    """
    x, weight, bias, training, momentum, eps = _args.batch_norm_args(
        "batch_norm", x, running_mean, running_var, weight, bias, training, momentum, eps)
    return_stats = flag("batch_norm", "return_stats", return_stats)
    dt = x.dtype.type
    axes = (0,) + tuple(range(2, x.ndim))
    if training:
        mean = x.mean(axis=axes)
        centred = x - _per_channel(mean, x.ndim)
        var = (centred * centred).mean(axis=axes)
        if running_mean is not None:
            n = x.size // x.shape[1]
            f = dt(momentum)
            running_mean *= 1 - f
            running_mean += f * mean
            running_var *= 1 - f
            running_var += f * var * dt(n / (n - 1))
    else:
        mean = running_mean.copy()
        centred = x - _per_channel(mean, x.ndim)
        var = running_var
    inv_std = 1 / np.sqrt(var + dt(eps))
    y = centred * _per_channel(inv_std, x.ndim)
    if weight is not None:
        y *= _per_channel(weight, x.ndim)
    if bias is not None:
        y += _per_channel(bias, x.ndim)
    return (y, mean, inv_std) if return_stats else y


def batch_norm_backward(grad_y, x, mean, inv_std, weight=None, training=True):
    """Gradients of batch_norm with respect to its input, weight and bias.

    Args:
        grad_y: gradient with respect to batch_norm's output, x's shape.
        x, weight, training: as given to `batch_norm`.
        mean, inv_std: the statistics `batch_norm(..., return_stats=True)` returned.

    Returns:
        (grad_x, grad_weight, grad_bias); grad_weight is None when weight is None. In
        training the gradient also flows through the batch's mean and variance.
    """
    grad_y, x, mean, inv_std, weight, training = _args.batch_norm_backward_args(
        "batch_norm_backward", grad_y, x, mean, inv_std, weight, training)
    axes = (0,) + tuple(range(2, x.ndim))
    x_hat = (x - _per_channel(mean, x.ndim)) * _per_channel(inv_std, x.ndim)
    grad_w, grad_b = None, grad_y.sum(axis=axes)
    grad_x_hat = grad_y
    if weight is not None:
        grad_w = (grad_y * x_hat).sum(axis=axes)
        grad_x_hat = grad_y * _per_channel(weight, x.ndim)
    if not training:
        return grad_x_hat * _per_channel(inv_std, x.ndim), grad_w, grad_b
    # x_hat = (x - mean) * inv_std with mean and var taken over the batch:
    # dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))
    mean_g = grad_x_hat.mean(axis=axes)
    mean_gx = (grad_x_hat * x_hat).mean(axis=axes)
    grad_x = _per_channel(inv_std, x.ndim) * (grad_x_hat - _per_channel(mean_g, x.ndim)
                                              - x_hat * _per_channel(mean_gx, x.ndim))
    return grad_x, grad_w, grad_b
