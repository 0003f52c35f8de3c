"""Argument checking shared by `fastcnn.functional` and `fastcnn.reference`.

Everything a caller can get wrong is caught here, once, with a message that names what was
expected and what came. Single arguments (an int, a pair, a flag, a shape) are checked by the
rules in `fastcnn._validate`; this module adds the array conversions and the geometry. The
geometry helpers turn PyTorch-style hyper-parameters (an int or a
pair; for convolution also ``'valid'`` / ``'same'``) into explicit per-side paddings and output
sizes, so the kernels and the NumPy reference never see anything but plain integers.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._validate import array_shape, flag, integer, pair, real, shape

__all__ = ["ConvGeometry", "PoolGeometry", "conv_geometry", "pool_geometry", "float_arrays"]


def _check_ndim(fname: str, name: str, dims: tuple, ndim: int, axes: str) -> None:
    if len(dims) != ndim:
        raise ValueError(f"{fname} expects {ndim}-D {name} {axes}, got shape {tuple(dims)}")


# The kernels index with 64-bit integers, and their buffers (a zero-padded copy of the input)
# can be several times the padded size. Refusing any size or element count above 2**60, in
# Python's exact integers and before anything is allocated, keeps every index below 2**63.
_MAX_SIZE = 2**60


def _check_size(fname: str, what: str, sizes: tuple, elements: bool = True) -> None:
    """ValueError if any of `sizes` or (with `elements`) their product is above 2**60."""
    if max(sizes) > _MAX_SIZE or (elements and math.prod(sizes) > _MAX_SIZE):
        raise ValueError(f"{fname}: {what} {sizes} is too large: every size"
                         f"{' and the number of elements' if elements else ''} must be at most "
                         f"2**60")


# ----------------------------------------------------------------------------------- dtypes

_CAST_KINDS = "biu"  # bool, signed and unsigned ints: cast up to the compute dtype
_OPTIONAL = {"bias"}  # array arguments that may be None


def _kernel_array(a, dtype) -> np.ndarray:
    """a as a C-contiguous, aligned, native-endian array of dtype: a itself if it is one."""
    a = np.asarray(a, dtype=dtype, order="C")  # not ascontiguousarray: it makes 0-d 1-d
    return a if a.flags.aligned else a.copy()


def float_arrays(fname: str, **arrays):
    """Return the given arrays (a None bias passes through) as C-contiguous, aligned,
    native-endian copies or views of one compute dtype, float32 or float64.

    float32 and float64 arrays set the compute dtype and must agree (mixing them is a
    TypeError, as silently rounding float64 weights would be a surprise). float16, bool and
    integer arrays are cast up to the compute dtype (float32 when nothing else decides).
    Complex, object, string and extended-precision arrays are refused with TypeError.
    The caller's arrays are never modified: a conversion always makes a new array.
    """
    converted = {}
    decided = {}
    for name, a in arrays.items():
        if a is None and name in _OPTIONAL:
            continue
        if a is None:
            raise TypeError(f"{fname}: {name} must be an array, got None")
        a = np.asarray(a)
        kind, size = a.dtype.kind, a.dtype.itemsize
        if kind == "f" and size in (4, 8):
            decided[name] = np.dtype(f"f{size}")
        elif not (kind in _CAST_KINDS or (kind == "f" and size == 2)):
            raise TypeError(f"{fname}: {name} must be a float32 or float64 array "
                            f"(float16, int and bool are cast to float32), got dtype {a.dtype}")
        converted[name] = a
    kinds = set(decided.values())
    if len(kinds) > 1:
        got = ", ".join(f"{n}={d}" for n, d in decided.items())
        raise TypeError(f"{fname}: all arrays must have the same float dtype "
                        f"(float32 or float64), got {got}")
    dtype = kinds.pop() if kinds else np.dtype(np.float32)
    out = []
    for name, a in arrays.items():
        out.append(None if a is None else _kernel_array(converted[name], dtype))
    return out


# ------------------------------------------------------------------------------ convolution

class ConvGeometry(NamedTuple):
    """Explicit sizes of one 2-D convolution. Paddings are per side: top, bottom, left, right.
    A stride or dilation that cannot matter (one output row, a one-tap kernel) is 1."""
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    groups: int
    stride: tuple
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    dilation: tuple
    P: int
    Q: int

    @property
    def out_shape(self):
        return (self.N, self.K, self.P, self.Q)

    @property
    def weight_shape(self):
        return (self.K, self.C // self.groups, self.R, self.S)


def _same_padding(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """Output ceil(size / stride); the odd pixel of padding goes to the bottom/right."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv_padding(fname: str, padding):
    """A convolution's padding: 'valid', 'same', or an int or pair of ints >= 0 (as a pair)."""
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"{fname}: padding must be an int, a pair, 'valid' or 'same', "
                             f"got {padding!r}")
        return padding
    return pair(fname, "padding", padding, 0)


def conv_groups(fname: str, groups, in_channels: int, out_channels: int) -> int:
    """A convolution's groups: an int >= 1 dividing both channel counts."""
    groups = integer(fname, "groups", groups, 1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{fname}: in_channels ({in_channels}) and out_channels "
                         f"({out_channels}) must both be divisible by groups ({groups})")
    return groups


def conv_geometry(fname: str, x_shape: tuple, weight_shape: tuple, stride, padding, dilation,
                  groups) -> ConvGeometry:
    """The sizes of a convolution of an input of x_shape with filters of weight_shape."""
    _check_ndim(fname, "input", x_shape, 4, "(N, C, H, W)")
    _check_ndim(fname, "weight", weight_shape, 4, "(K, C/groups, R, S)")
    N, C, H, W = x_shape
    K, Cg, R, S = weight_shape
    sh, sw = pair(fname, "stride", stride, 1)
    dh, dw = pair(fname, "dilation", dilation, 1)
    groups = conv_groups(fname, groups, C, K)
    padding = conv_padding(fname, padding)
    if Cg != C // groups:
        raise ValueError(f"{fname}: weight must have C/groups = {C // groups} input channels "
                         f"(shape (K, {C // groups}, R, S)), got weight shape "
                         f"{tuple(weight_shape)}")
    if R < 1 or S < 1 or K < 1:
        raise ValueError(f"{fname}: weight must have non-zero sizes, got shape "
                         f"{tuple(weight_shape)}")
    if padding == "valid":
        pt = pb = pl = pr = 0
    elif padding == "same":
        pt, pb = _same_padding(H, R, sh, dh)
        pl, pr = _same_padding(W, S, sw, dw)
    else:
        (pt, pl), (pb, pr) = padding, padding
    eff_r, eff_s = dh * (R - 1) + 1, dw * (S - 1) + 1
    Hp, Wp = H + pt + pb, W + pl + pr
    if eff_r > Hp or eff_s > Wp:
        raise ValueError(f"{fname}: kernel size {(eff_r, eff_s)} (after dilation) is larger than "
                         f"the padded input {(Hp, Wp)}")
    _check_size(fname, "zero-padded (N, max(C, K), H, W)", (N, max(C, K), Hp, Wp))
    P = (Hp - eff_r) // sh + 1
    Q = (Wp - eff_s) // sw + 1
    # same numbers, but no buffer or index grows with a stride or dilation that does nothing
    sh, sw = (sh if P > 1 else 1), (sw if Q > 1 else 1)
    dh, dw = (dh if R > 1 else 1), (dw if S > 1 else 1)
    return ConvGeometry(N, C, H, W, K, R, S, groups, (sh, sw), pt, pb, pl, pr, (dh, dw), P, Q)


# ---------------------------------------------------------------------------------- pooling

class PoolGeometry(NamedTuple):
    """Explicit sizes of one 2-D pooling. Padding is symmetric; with ceil_mode the last window
    may reach past the bottom/right padding. A stride or dilation that cannot matter (one
    output, a one-tap kernel) is 1."""
    N: int
    C: int
    H: int
    W: int
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    P: int
    Q: int

    @property
    def out_shape(self):
        return (self.N, self.C, self.P, self.Q)


def _pool_out(size, k, stride, pad, dilation, ceil_mode):
    span = size + 2 * pad - dilation * (k - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1  # PyTorch's rule: the last window must start inside the input or left padding
    return out


def _empty_window(size, k, stride, pad, dilation, out):
    """First window (along one axis) whose taps all fall outside the input, or None.

    Only dilation can cause one (a tap steps over the whole input); PyTorch then returns -inf
    with an index outside the plane, and its backward writes out of bounds. Every window starts
    before the end of the input (the output-size rules see to it), and its first tap at or
    after 0 lies less than `dilation` past 0, so with dilation <= size no window is empty.
    Memory: one integer per window, however large the kernel.
    """
    if dilation <= size:
        return None
    start = np.arange(out, dtype=np.int64) * stride - pad
    skip = np.maximum(-(start // dilation), 0)  # taps before 0: ceil(-start / dilation)
    empty = (skip >= k) | (start + skip * dilation >= size)
    return int(empty.argmax()) if empty.any() else None


def pool_window(fname: str, kernel_size, stride, padding, dilation) -> tuple:
    """A pooling window's (kernel, stride, padding, dilation), each a pair: stride defaults to
    the kernel size, and padding may be at most half of it."""
    kernel = pair(fname, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair(fname, "stride", stride, 1)
    padding = pair(fname, "padding", padding, 0)
    dilation = pair(fname, "dilation", dilation, 1)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{fname}: padding must be at most half the kernel size "
                         f"{kernel}, got padding {padding}")
    return kernel, stride, padding, dilation


def pool_geometry(fname: str, input_shape, kernel_size, stride, padding, dilation,
                  ceil_mode) -> PoolGeometry:
    N, C, H, W = input_shape
    kernel, stride, padding, dilation = pool_window(fname, kernel_size, stride, padding,
                                                    dilation)
    dilation = tuple(d if k > 1 else 1 for k, d in zip(kernel, dilation))  # 1 tap: any dilation
    ceil_mode = flag(fname, "ceil_mode", ceil_mode)
    _check_size(fname, "padded input", (N, C, H + 2 * padding[0], W + 2 * padding[1]))
    _check_size(fname, "dilated window", tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation)),
                elements=False)
    P = _pool_out(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    Q = _pool_out(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if P < 1 or Q < 1:
        raise ValueError(f"{fname}: output size {(P, Q)} is too small for input {(H, W)} with "
                         f"kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation}")
    steps = (stride[0] if P > 1 else 1, stride[1] if Q > 1 else 1)  # one window: any stride
    for axis, size, k, st, step, pad, dil, out in zip("HW", (H, W), kernel, stride, steps,
                                                        padding, dilation, (P, Q)):
        p = _empty_window(size, k, step, pad, dil, out)
        if p is not None:
            raise ValueError(f"{fname}: pooling window {p} along {axis} holds no input element "
                             f"(input {size}, kernel {k}, stride {st}, padding {pad}, "
                             f"dilation {dil}): every window must overlap the input")
    return PoolGeometry(N, C, H, W, kernel, steps, padding, dilation, P, Q)


# ------------------------------------------------- whole-call checks, shared by both engines

def conv_forward_args(fname, x, weight, bias, stride, padding, dilation, groups):
    """Checked (x, weight, bias, geometry) for conv2d; bias stays None when absent."""
    x, weight, bias = float_arrays(fname, input=x, weight=weight, bias=bias)
    g = conv_geometry(fname, x.shape, weight.shape, stride, padding, dilation, groups)
    if bias is not None and bias.shape != (g.K,):
        raise ValueError(f"{fname}: bias must have shape ({g.K},) (one per output channel), "
                         f"got {bias.shape}")
    return x, weight, bias, g


def conv_backward_args(fname, grad_y, x, weight, stride, padding, dilation, groups):
    """Checked (grad_y, x, weight, geometry) for conv2d_backward."""
    grad_y, x, weight = float_arrays(fname, grad_y=grad_y, input=x, weight=weight)
    g = conv_geometry(fname, x.shape, weight.shape, stride, padding, dilation, groups)
    array_shape(fname, "grad_y", grad_y, g.out_shape)
    return grad_y, x, weight, g


def conv_data_args(fname, grad_y, weight, input_shape, stride, padding, dilation, groups):
    """Checked (grad_y, weight, geometry) for the gradient of conv2d with respect to its input."""
    grad_y, weight = float_arrays(fname, grad_y=grad_y, weight=weight)
    input_shape = shape(fname, "input_shape", input_shape)
    g = conv_geometry(fname, input_shape, weight.shape, stride, padding, dilation, groups)
    array_shape(fname, "grad_y", grad_y, g.out_shape)
    return grad_y, weight, g


def conv_weight_args(fname, grad_y, x, weight_shape, stride, padding, dilation, groups):
    """Checked (grad_y, x, geometry) for the gradient of conv2d with respect to its weight."""
    grad_y, x = float_arrays(fname, grad_y=grad_y, input=x)
    weight_shape = shape(fname, "weight_shape", weight_shape)
    g = conv_geometry(fname, x.shape, weight_shape, stride, padding, dilation, groups)
    array_shape(fname, "grad_y", grad_y, g.out_shape)
    return grad_y, x, g


def pool_forward_args(fname, x, kernel_size, stride, padding, dilation, ceil_mode):
    """Checked (x, geometry) for max_pool2d / avg_pool2d."""
    (x,) = float_arrays(fname, input=x)
    _check_ndim(fname, "input", x.shape, 4, "(N, C, H, W)")
    g = pool_geometry(fname, x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return x, g


def pool_backward_args(fname, grad_y, input_shape, kernel_size, stride, padding, dilation,
                       ceil_mode):
    """Checked (grad_y, geometry) for the pooling gradients."""
    (grad_y,) = float_arrays(fname, grad_y=grad_y)
    input_shape = shape(fname, "input_shape", input_shape)
    g = pool_geometry(fname, input_shape, kernel_size, stride, padding, dilation, ceil_mode)
    array_shape(fname, "grad_y", grad_y, g.out_shape)
    return grad_y, g


def pool_indices(fname, indices, g: PoolGeometry, check_range: bool = True) -> np.ndarray:
    """Checked int64 argmax indices: shape of the pooled output, values in [0, H*W) (with
    check_range=False the caller checks the values, as the compiled backward does in its
    own pass, and raises `indices_range_error` for a bad one)."""
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{fname}: indices must be an integer array, got dtype {indices.dtype}")
    array_shape(fname, "indices", indices, g.out_shape)
    indices = _kernel_array(indices, np.int64)
    if check_range and indices.size and (indices.min() < 0 or indices.max() >= g.H * g.W):
        raise indices_range_error(fname, indices, g)
    return indices


def indices_range_error(fname, indices, g: PoolGeometry) -> ValueError:
    """The error for argmax indices with a value outside [0, H*W)."""
    return ValueError(f"{fname}: indices must lie in [0, H*W) = [0, {g.H * g.W}), "
                      f"got values in [{int(indices.min())}, {int(indices.max())}]")


# --------------------------------------------- element-wise, linear and batch normalisation

def unary_args(fname, x) -> np.ndarray:
    """Checked input of an element-wise function (any shape)."""
    (x,) = float_arrays(fname, input=x)
    return x


def unary_backward_args(fname, grad_y, saved, saved_name="y"):
    """Checked (grad_y, saved) for an element-wise backward: saved is what its forward was
    given or returned, and grad_y must have its shape (a broadcasting gradient is wrong)."""
    grad_y, saved = float_arrays(fname, grad_y=grad_y, **{saved_name: saved})
    array_shape(fname, "grad_y", grad_y, saved.shape)
    return grad_y, saved


def softmax_dim(fname, dim, ndim: int) -> int:
    """The axis softmax runs along, as a non-negative index of an ndim-D array."""
    dim = integer(fname, "dim", dim)
    if not -ndim <= dim < ndim:
        raise ValueError(f"{fname}: dim must be in [{-ndim}, {ndim}) for a {ndim}-D input, "
                         f"got {dim}")
    return dim % ndim


def linear_args(fname, x, weight, bias):
    """Checked (x, weight, bias) for linear: x (*, in_features), weight (out, in), bias (out,)."""
    x, weight, bias = float_arrays(fname, input=x, weight=weight, bias=bias)
    _check_ndim(fname, "weight", weight.shape, 2, "(out_features, in_features)")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"{fname} expects input (*, {weight.shape[1]}) for weight of shape "
                         f"{weight.shape}, got shape {x.shape}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{fname}: bias must have shape ({weight.shape[0]},) (one per output "
                         f"feature), got {bias.shape}")
    return x, weight, bias


def linear_backward_args(fname, grad_y, x, weight):
    """Checked (grad_y, x, weight) for linear's backward; grad_y has linear's output shape."""
    grad_y, x, weight = float_arrays(fname, grad_y=grad_y, input=x, weight=weight)
    x, weight, _ = linear_args(fname, x, weight, None)
    array_shape(fname, "grad_y", grad_y, x.shape[:-1] + (weight.shape[0],))
    return grad_y, x, weight


def _channel_arrays(fname, C: int, **arrays) -> None:
    for name, a in arrays.items():
        if a is not None and a.shape != (C,):
            raise ValueError(f"{fname}: {name} must have shape ({C},) (one per channel), "
                             f"got {a.shape}")


def batch_norm_args(fname, x, running_mean, running_var, weight, bias, training, momentum,
                    eps):
    """Checked (x, weight, bias, training, momentum, eps) for batch_norm.

    The running statistics are updated in place in training, so they must be arrays of x's
    compute dtype, of shape (C,), and writeable; they may be None (both) only in training.
    """
    training = flag(fname, "training", training)
    momentum = real(fname, "momentum", momentum, 0.0, 1.0)
    eps = real(fname, "eps", eps, low=0.0)
    x, weight, bias = _optional_floats(fname, input=x, weight=weight, bias=bias)
    if x.ndim < 2:
        raise ValueError(f"{fname} expects input (N, C, *) with at least 2 dimensions, got "
                         f"shape {x.shape}")
    C = x.shape[1]
    _channel_arrays(fname, C, weight=weight, bias=bias)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fname}: running_mean and running_var must both be arrays or both "
                         f"None")
    if running_mean is None and not training:
        raise ValueError(f"{fname}: running_mean and running_var are needed when training is "
                         f"False")
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        if a is None:
            continue
        if not isinstance(a, np.ndarray) or a.dtype != x.dtype:
            got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"{fname}: {name} must be a {x.dtype} array (the input's compute "
                            f"dtype; it is updated in place), got {got}")
        _channel_arrays(fname, C, **{name: a})
        if training and not a.flags.writeable:
            raise ValueError(f"{fname}: {name} must be writeable in training (it is updated "
                             f"in place)")
    if training and x.size // C <= 1:
        raise ValueError(f"{fname} needs more than 1 value per channel to compute batch "
                         f"statistics, got input shape {x.shape}")
    return x, weight, bias, training, momentum, eps


def batch_norm_backward_args(fname, grad_y, x, mean, inv_std, weight, training):
    """Checked (grad_y, x, mean, inv_std, weight, training) for batch_norm's backward."""
    training = flag(fname, "training", training)
    grad_y, x, mean, inv_std, weight = _optional_floats(fname, grad_y=grad_y, input=x,
                                                        mean=mean, inv_std=inv_std,
                                                        weight=weight)
    if x.ndim < 2:
        raise ValueError(f"{fname} expects input (N, C, *) with at least 2 dimensions, got "
                         f"shape {x.shape}")
    array_shape(fname, "grad_y", grad_y, x.shape)
    _channel_arrays(fname, x.shape[1], mean=mean, inv_std=inv_std, weight=weight)
    return grad_y, x, mean, inv_std, weight, training


def _optional_floats(fname, **arrays):
    """float_arrays of the arrays that are not None, None kept in place of the others."""
    given = {name: a for name, a in arrays.items() if a is not None}
    for name, a in zip(given, float_arrays(fname, **given)):
        given[name] = a
    return [given.get(name) for name in arrays]
