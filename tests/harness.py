"""What the test modules share: tolerances, the closeness check, finite differences, the
hypothesis strategies for convolution and pooling arguments, and PyTorch as an oracle with
`fastcnn.reference`'s signatures.

Every test folder imports it as `harness` (pyproject's `pythonpath` puts tests/ on sys.path);
the fixtures built on it (`oracle`, the kernel choices, thread counts) are in conftest.py.
"""
import warnings
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st

DTYPES = [np.float32, np.float64]

# Two engines summing the same terms in different orders differ by rounding, which grows with
# the size of the terms, not of the result (cancellation). A result may differ from the
# expected one by RTOL[dtype] times its magnitude (the same computation on absolute values),
# or, where no magnitude is given, by RTOL[dtype] times the expected value plus ATOL[dtype].
RTOL = {np.float32: 5e-6, np.float64: 1e-14}
ATOL = {np.float32: 1e-7, np.float64: 1e-15}

# Named exceptions, each for a reason:
# - tighter: an elementwise op, linear or batch_norm rounds a few times per element, so its
#   float32 result is held to its own value more closely than a long sum to its magnitude
ELEMENTWISE_RTOL = {np.float32: 2e-6, np.float64: RTOL[np.float64]}
# - looser: whole layers, losses, optimizer steps and training runs against PyTorch, where the
#   rounding of many chained ops compounds (exp and log, square roots, Adam's division by a
#   gradient's noise); and single ops compared without a magnitude (the reference against
#   PyTorch, non-finite inputs), whose results cancelling toward zero need an absolute floor
CHAIN_RTOL = {np.float32: 1e-4, np.float64: 1e-10}
CHAIN_ATOL = {np.float32: 1e-5, np.float64: 1e-12}

# Central finite differences, always in float64: the step and the agreement expected of them.
FD_EPS = 1e-6
FD_RTOL, FD_ATOL = 1e-6, 1e-7

# The hypothesis sweeps: derandomized (a run is reproducible), no example database, no
# deadline (kernel calls on a busy machine); function-scoped fixtures are set once per test,
# which is what the kernel-choice and thread fixtures want.
SWEEP = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_close(actual, expected, dtype, *, magnitude=None, rtol=None, atol=None,
                 err_msg=""):
    """|actual - expected| <= rtol * |magnitude| + atol, elementwise, with the same shape and
    dtype; equal values (NaN and infinities in the same places) always pass.

    rtol defaults to RTOL[dtype]; atol to 0 with a magnitude (the terms bound the rounding, so
    a result whose terms are all zero must be exactly zero), else to ATOL[dtype] with
    |expected| as the magnitude.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{err_msg} shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{err_msg} dtype {actual.dtype} != {expected.dtype}"
    rtol = RTOL[dtype] if rtol is None else rtol
    if magnitude is None:
        magnitude = expected
        atol = ATOL[dtype] if atol is None else atol
    elif atol is None:
        atol = 0.0
    magnitude = np.abs(np.asarray(magnitude, np.float64))
    with np.errstate(invalid="ignore"):
        err = np.abs(actual.astype(np.float64) - expected)
        bound = rtol * magnitude + atol
        same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
        bad = ~(same | (err <= bound))
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(err - bound, nan=np.inf),
                                                -np.inf)), err.shape)
        raise AssertionError(
            f"{err_msg}{': ' if err_msg else ''}{bad.sum()} of {bad.size} elements differ by more "
            f"than {rtol:g} x their magnitude + {atol:g}; worst at {i}: got {actual[i]!r}, "
            f"expected {expected[i]!r}, magnitude {magnitude[i]!r}")


def numeric_grad(f, a, eps=FD_EPS):
    """Central differences of the scalar f() with respect to every element of a, which f reads:
    each element is moved by +-eps in place and put back."""
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        up = f()
        a[i] = old - eps
        down = f()
        a[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


# --------------------------------------------------------------- hypothesis configurations

def arg(draw, pair):
    """A hyper-parameter as a caller writes it: an int when both sides agree (sometimes),
    otherwise a tuple or a list."""
    if pair[0] == pair[1] and draw(st.booleans()):
        return pair[0]
    return draw(st.sampled_from([tuple, list]))(pair)


@dataclass(repr=False)
class Case:
    """One drawn configuration: the arrays and the keyword arguments of one call."""
    dtype: type
    arrays: dict
    kwargs: dict
    seed: int

    def grad(self, shape):
        """A random output gradient of the given shape, from this case's seed."""
        rng = np.random.default_rng(self.seed + 1)
        return rng.standard_normal(shape).astype(self.dtype)

    def __repr__(self):
        shapes = {k: (None if a is None else a.shape) for k, a in self.arrays.items()}
        return (f"Case({self.dtype.__name__}, shapes={shapes}, kwargs={self.kwargs}, "
                f"seed={self.seed})")


# Output channels per group and extra input rows/columns: mostly small, sometimes past the
# kernels' blocking (6 output channels, 16 output columns per tile; channel tiles of 2
# vectors, 8 or 16 channels with AVX2).
OUT_PER_GROUP = [1, 2, 3, 7, 1, 2, 3, 17]
BATCH = [1, 2, 3, 1, 2, 3, 0]  # N = 0 (empty output) in about one case in seven
EXTRA_SIZE = [0, 1, 2, 3, 4, 5, 17, 34]


@st.composite
def conv_cases(draw):
    """conv2d arguments: groups incl. depthwise, 1x1 to 4x4 kernels, strides, dilations,
    int / pair / 'valid' / 'same' padding, N = 0 included, odd and non-square sizes."""
    dtype = draw(st.sampled_from(DTYPES))
    N = draw(st.sampled_from(BATCH))
    groups = draw(st.integers(1, 3))
    depthwise = draw(st.booleans())
    C = groups if depthwise else groups * draw(st.integers(1, 3))
    K = groups * draw(st.sampled_from(OUT_PER_GROUP))
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    mode = draw(st.sampled_from(["explicit", "valid", "same"]))
    if mode == "explicit":
        pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        padding = arg(draw, pad)
    else:
        pad, padding = (0, 0), mode
    sizes = []
    for k, d, p in zip((R, S), dilation, pad):
        smallest = 1 if mode == "same" else max(1, d * (k - 1) + 1 - 2 * p)
        sizes.append(smallest + draw(st.sampled_from(EXTRA_SIZE)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    arrays = {
        "x": rng.standard_normal((N, C, *sizes)).astype(dtype),
        "weight": rng.standard_normal((K, C // groups, R, S)).astype(dtype),
        "bias": rng.standard_normal(K).astype(dtype) if draw(st.booleans()) else None,
    }
    kwargs = {"stride": arg(draw, stride), "padding": padding,
              "dilation": arg(draw, dilation), "groups": groups}
    return Case(dtype, arrays, kwargs, seed)


def pool_out_size(size, k, stride, pad, dilation, ceil_mode):
    """PyTorch's pooling output size (pooling_output_shape)."""
    span = size + 2 * pad - dilation * (k - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def every_window_overlaps(size, k, stride, pad, dilation, ceil_mode):
    """Every window along one axis holds an input element (fastcnn refuses a window of
    padding alone; PyTorch returns -inf there)."""
    out = pool_out_size(size, k, stride, pad, dilation, ceil_mode)
    return out >= 1 and all(
        any(0 <= o * stride - pad + i * dilation < size for i in range(k)) for o in range(out))


def pool_values(rng, shape, values, dtype):
    """Plain noise, or small integers (many ties), with NaNs or with infinities mixed in."""
    if values == "normal":
        return rng.standard_normal(shape).astype(dtype)
    x = rng.integers(-2, 3, shape).astype(dtype)
    if values == "nan":
        x[rng.random(shape) < 0.2] = np.nan
    elif values == "inf":
        x[rng.random(shape) < 0.2] = -np.inf
        x[rng.random(shape) < 0.1] = np.inf
    return x


@st.composite
def pool_cases(draw, kind):
    """max_pool2d (kind='max') or avg_pool2d (kind='avg') arguments: kernels 1..4, default or
    explicit strides, padding up to half the kernel, dilation (max only), ceil_mode, N = 0;
    max pooling's values with ties, NaNs and infinities."""
    dtype = draw(st.sampled_from(DTYPES))
    N, C = draw(st.sampled_from(BATCH)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = None if draw(st.booleans()) else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if kind == "max" else (1, 1)
    ceil_mode = draw(st.booleans())
    sizes = []
    for k, d, p in zip(kernel, dilation, pad):
        sizes.append(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 5)))
    steps = kernel if stride is None else stride
    assume(all(every_window_overlaps(*a, ceil_mode)
               for a in zip(sizes, kernel, steps, pad, dilation)))
    values = draw(st.sampled_from(["normal", "ties", "nan", "inf"])) if kind == "max" else "normal"
    seed = draw(st.integers(0, 2**32 - 1))
    kwargs = {"kernel_size": arg(draw, kernel),
              "stride": None if stride is None else arg(draw, stride),
              "padding": arg(draw, pad), "ceil_mode": ceil_mode}
    if kind == "max":
        kwargs["dilation"] = arg(draw, dilation)
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
    x = pool_values(np.random.default_rng(seed), (N, C, *sizes), values, dtype)
    return Case(dtype, {"x": x}, kwargs, seed)


# ------------------------------------------------------------------------- PyTorch as oracle

def pair(v):
    """An int or a pair as a pair."""
    return (v, v) if isinstance(v, int) else tuple(v)


def same_pads(size, k, stride, dilation):
    """'same' padding (before, after) along one axis, as fastcnn pads it: output
    ceil(size / stride), any odd pixel after (TensorFlow's 'SAME')."""
    total = max((-(-size // stride) - 1) * stride + dilation * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


class TorchOracle:
    """torch.nn.functional (forwards) and torch's autograd or aten backwards (gradients) behind
    fastcnn.reference's signatures, NumPy arrays in and out. 'same' padding with a stride,
    which torch refuses, pads the input by hand as fastcnn does."""

    name = "torch"

    def __init__(self, torch):
        self.torch = torch
        self.TF = torch.nn.functional

    def _tensor(self, a, requires_grad=False):
        """A torch copy of a (a leaf that records its gradient when asked)."""
        return self.torch.tensor(np.ascontiguousarray(a), requires_grad=requires_grad)

    def _conv(self, x, weight, bias, stride, padding, dilation, groups):
        """conv2d on tensors, with 'same' and a stride padded by hand."""
        if isinstance(padding, str) and padding == "same" and pair(stride) != (1, 1):
            (sh, sw), (dh, dw) = pair(stride), pair(dilation)
            R, S = weight.shape[2:]
            pads = (same_pads(x.shape[3], S, sw, dw)
                    + same_pads(x.shape[2], R, sh, dh))  # torch's order: W, then H
            x, padding = self.TF.pad(x, pads), 0
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Using padding='same'", UserWarning)
            return self.TF.conv2d(x, weight, bias, stride, padding, dilation, groups)

    def conv2d(self, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        bias = None if bias is None else self._tensor(bias)
        return self._conv(self._tensor(x), self._tensor(weight), bias, stride, padding,
                          dilation, groups).numpy()

    def conv2d_backward(self, grad_y, x, weight, stride=1, padding=0, dilation=1, groups=1, *,
                        input_grad=True):
        tx, tw = self._tensor(x, True), self._tensor(weight, True)
        tb = self._tensor(np.zeros(weight.shape[0], weight.dtype), True)
        y = self._conv(tx, tw, tb, stride, padding, dilation, groups)
        y.backward(self._tensor(grad_y))
        return (tx.grad.numpy() if input_grad else None), tw.grad.numpy(), tb.grad.numpy()

    def max_pool2d(self, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                   return_indices=False):
        out = self.TF.max_pool2d(self._tensor(x), kernel_size, stride, padding, dilation,
                                 ceil_mode=ceil_mode, return_indices=return_indices)
        return (out[0].numpy(), out[1].numpy()) if return_indices else out.numpy()

    def max_pool2d_backward(self, grad_y, indices, input_shape, kernel_size, stride=None,
                            padding=0, dilation=1, ceil_mode=False):
        """aten's max_pool2d_with_indices_backward (autograd's backward of max_pool2d), given
        the indices, so that it routes the gradient alone."""
        kernel = list(pair(kernel_size))
        stride = kernel if stride is None else list(pair(stride))
        x = self.torch.zeros(tuple(input_shape), dtype=self._tensor(grad_y).dtype)
        return self.torch.ops.aten.max_pool2d_with_indices_backward(
            self._tensor(grad_y), x, kernel, stride, list(pair(padding)), list(pair(dilation)),
            ceil_mode, self._tensor(indices)).numpy()

    def avg_pool2d(self, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                   count_include_pad=True):
        return self.TF.avg_pool2d(self._tensor(x), kernel_size, stride, padding, ceil_mode,
                                  count_include_pad).numpy()

    def avg_pool2d_backward(self, grad_y, input_shape, kernel_size, stride=None, padding=0,
                            ceil_mode=False, count_include_pad=True):
        tx = self.torch.zeros(tuple(input_shape), dtype=self._tensor(grad_y).dtype,
                              requires_grad=True)
        self.TF.avg_pool2d(tx, kernel_size, stride, padding, ceil_mode,
                           count_include_pad).backward(self._tensor(grad_y))
        return tx.grad.numpy()


def traced_peak(fn) -> int:
    """The peak bytes NumPy and Python allocated (tracemalloc) while fn() ran."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak
