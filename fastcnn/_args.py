"""Argument checking shared by `fastcnn.functional` and `fastcnn.reference`.

Everything a caller can get wrong is caught here, once, with a message that names what was
expected and what came. The geometry helpers turn PyTorch-style hyper-parameters (an int or a
pair; for convolution also ``'valid'`` / ``'same'``) into explicit per-side paddings and output
sizes, so the kernels and the NumPy reference never see anything but plain integers.
"""
from __future__ import annotations

import math
import operator
from typing import NamedTuple

import numpy as np

__all__ = ["ConvGeometry", "PoolGeometry", "conv_geometry", "pool_geometry", "float_arrays",
           "shape4", "check_shape"]


def _int(fname: str, name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fname}: {name} must be an int, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{fname}: {name} must be an int or a pair of ints, "
                        f"got {type(value).__name__} {value!r}") from None


def flag(fname: str, name: str, value) -> bool:
    """A bool hyper-parameter (numpy bools too); anything else is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fname}: {name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def _pair(fname: str, name: str, value, minimum: int) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{fname}: {name} must be an int or a pair of ints, "
                             f"got a sequence of length {len(value)}: {value!r}")
        pair = (_int(fname, name, value[0]), _int(fname, name, value[1]))
    else:
        v = _int(fname, name, value)
        pair = (v, v)
    if min(pair) < minimum:
        raise ValueError(f"{fname}: {name} must be >= {minimum}, got {value!r}")
    return pair


def shape4(fname: str, name: str, value) -> tuple[int, int, int, int]:
    """Check an explicit (N, C, H, W) shape argument."""
    if not isinstance(value, (tuple, list)) or len(value) != 4:
        raise ValueError(f"{fname}: {name} must be a 4-tuple (N, C, H, W), got {value!r}")
    shape = tuple(_int(fname, name, v) for v in value)
    if min(shape) < 0:
        raise ValueError(f"{fname}: {name} must not have negative sizes, got {value!r}")
    return shape


def check_shape(fname: str, name: str, array: np.ndarray, expected: tuple) -> None:
    if array.shape != tuple(expected):
        raise ValueError(f"{fname}: {name} must have shape {tuple(expected)}, got {array.shape}")


def _check_ndim(fname: str, name: str, array: np.ndarray, ndim: int, axes: str) -> None:
    if array.ndim != ndim:
        raise ValueError(f"{fname} expects {ndim}-D {name} {axes}, got shape {array.shape}")


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
    a = np.ascontiguousarray(a, dtype=dtype)
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


def conv_geometry(fname: str, x: np.ndarray, weight: np.ndarray, stride, padding, dilation,
                  groups) -> ConvGeometry:
    _check_ndim(fname, "input", x, 4, "(N, C, H, W)")
    _check_ndim(fname, "weight", weight, 4, "(K, C/groups, R, S)")
    N, C, H, W = x.shape
    K, Cg, R, S = weight.shape
    sh, sw = _pair(fname, "stride", stride, 1)
    dh, dw = _pair(fname, "dilation", dilation, 1)
    groups = _int(fname, "groups", groups)
    if groups < 1:
        raise ValueError(f"{fname}: groups must be >= 1, got {groups}")
    if C % groups or K % groups:
        raise ValueError(f"{fname}: in_channels ({C}) and out_channels ({K}) must both be "
                         f"divisible by groups ({groups})")
    if Cg != C // groups:
        raise ValueError(f"{fname}: weight must have C/groups = {C // groups} input channels "
                         f"(shape (K, {C // groups}, R, S)), got weight shape {weight.shape}")
    if R < 1 or S < 1 or K < 1:
        raise ValueError(f"{fname}: weight must have non-zero sizes, got shape {weight.shape}")
    if isinstance(padding, str):
        if padding == "valid":
            pt = pb = pl = pr = 0
        elif padding == "same":
            pt, pb = _same_padding(H, R, sh, dh)
            pl, pr = _same_padding(W, S, sw, dw)
        else:
            raise ValueError(f"{fname}: padding must be an int, a pair, 'valid' or 'same', "
                             f"got {padding!r}")
    else:
        pt, pl = _pair(fname, "padding", padding, 0)
        pb, pr = pt, pl
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


def pool_geometry(fname: str, input_shape, kernel_size, stride, padding, dilation,
                  ceil_mode) -> PoolGeometry:
    N, C, H, W = input_shape
    kernel = _pair(fname, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else _pair(fname, "stride", stride, 1)
    padding = _pair(fname, "padding", padding, 0)
    dilation = _pair(fname, "dilation", dilation, 1)
    dilation = tuple(d if k > 1 else 1 for k, d in zip(kernel, dilation))  # 1 tap: any dilation
    ceil_mode = flag(fname, "ceil_mode", ceil_mode)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{fname}: padding must be at most half the kernel size "
                         f"{kernel}, got padding {padding}")
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
    g = conv_geometry(fname, x, weight, stride, padding, dilation, groups)
    if bias is not None and bias.shape != (g.K,):
        raise ValueError(f"{fname}: bias must have shape ({g.K},) (one per output channel), "
                         f"got {bias.shape}")
    return x, weight, bias, g


def conv_backward_args(fname, grad_y, x, weight, stride, padding, dilation, groups):
    """Checked (grad_y, x, weight, geometry) for conv2d_backward."""
    grad_y, x, weight = float_arrays(fname, grad_y=grad_y, input=x, weight=weight)
    g = conv_geometry(fname, x, weight, stride, padding, dilation, groups)
    check_shape(fname, "grad_y", grad_y, g.out_shape)
    return grad_y, x, weight, g


def pool_forward_args(fname, x, kernel_size, stride, padding, dilation, ceil_mode):
    """Checked (x, geometry) for max_pool2d / avg_pool2d."""
    (x,) = float_arrays(fname, input=x)
    _check_ndim(fname, "input", x, 4, "(N, C, H, W)")
    g = pool_geometry(fname, x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return x, g


def pool_backward_args(fname, grad_y, input_shape, kernel_size, stride, padding, dilation,
                       ceil_mode):
    """Checked (grad_y, geometry) for the pooling gradients."""
    (grad_y,) = float_arrays(fname, grad_y=grad_y)
    input_shape = shape4(fname, "input_shape", input_shape)
    g = pool_geometry(fname, input_shape, kernel_size, stride, padding, dilation, ceil_mode)
    check_shape(fname, "grad_y", grad_y, g.out_shape)
    return grad_y, g


def pool_indices(fname, indices, g: PoolGeometry, check_range: bool = True) -> np.ndarray:
    """Checked int64 argmax indices: shape of the pooled output, values in [0, H*W) (with
    check_range=False the caller checks the values, as the compiled backward does in its
    own pass, and raises `indices_range_error` for a bad one)."""
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{fname}: indices must be an integer array, got dtype {indices.dtype}")
    check_shape(fname, "indices", indices, g.out_shape)
    indices = _kernel_array(indices, np.int64)
    if check_range and indices.size and (indices.min() < 0 or indices.max() >= g.H * g.W):
        raise indices_range_error(fname, indices, g)
    return indices


def indices_range_error(fname, indices, g: PoolGeometry) -> ValueError:
    """The error for argmax indices with a value outside [0, H*W)."""
    return ValueError(f"{fname}: indices must lie in [0, H*W) = [0, {g.H * g.W}), "
                      f"got values in [{int(indices.min())}, {int(indices.max())}]")
