"""`fastcnn.functional` against `torch.nn.functional` for the same arguments: forward values,
every gradient (through torch's autograd), and max-pool indices exactly (ties and NaNs
included). Runs only where torch is installed.

Configurations are those torch accepts: 'same' padding only with stride 1, and no pooling
window that misses the input entirely (torch returns -inf there; fastcnn refuses).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastcnn
import fastcnn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

# The engines sum in different orders, so results differ by rounding, which grows with the
# size of the terms summed, not of the result (cancellation). A result may differ from torch's
# by TOL[dtype] times its magnitude: the same computation on absolute values.
TOL = {np.float32: 5e-6, np.float64: 1e-14}
DTYPES = [np.float32, np.float64]

SWEEP = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_close(actual, expected, magnitude, dtype):
    """|actual - expected| <= TOL[dtype] * magnitude, elementwise, with matching shapes."""
    assert actual.shape == expected.shape
    err = np.abs(actual.astype(np.float64) - expected)
    bound = TOL[dtype] * np.asarray(magnitude, np.float64)
    bad = ~(err <= bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), err.shape)
        raise AssertionError(
            f"{bad.sum()} of {bad.size} elements differ by more than {TOL[dtype]:g} x their "
            f"magnitude; worst at {i}: got {actual[i]!r}, expected {expected[i]!r}, "
            f"magnitude {magnitude[i]!r}")


def _both_on(n):
    """Put both engines on n threads; return a function that restores them."""
    before = fastcnn.get_num_threads(), torch.get_num_threads()
    fastcnn.set_num_threads(n)
    torch.set_num_threads(n)

    def restore():
        fastcnn.set_num_threads(before[0])
        torch.set_num_threads(before[1])
    return restore


@pytest.fixture
def one_thread():
    """Both engines on one thread (the sweeps: torch's thread pool costs milliseconds per tiny
    call on a busy machine, and fastcnn's threading is checked in test_functional.py)."""
    restore = _both_on(1)
    yield 1
    restore()


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def matched_threads(request):
    """Both engines on the same number of threads; both restored afterwards."""
    restore = _both_on(request.param)
    yield request.param
    restore()


def _arg(draw, pair):
    """An int when both sides agree (sometimes), otherwise a tuple or a list."""
    if pair[0] == pair[1] and draw(st.booleans()):
        return pair[0]
    return draw(st.sampled_from([tuple, list]))(pair)


class Case:
    """One drawn configuration: numpy arrays, keyword arguments, and a seed for gradients."""

    def __init__(self, dtype, arrays, kwargs, seed):
        self.dtype, self.arrays, self.kwargs, self.seed = dtype, arrays, kwargs, seed

    def grad(self, shape):
        return np.random.default_rng(self.seed + 1).standard_normal(shape).astype(self.dtype)

    def __repr__(self):
        shapes = {k: (None if a is None else a.shape) for k, a in self.arrays.items()}
        return (f"Case({self.dtype.__name__}, shapes={shapes}, kwargs={self.kwargs}, "
                f"seed={self.seed})")


def leaf(a):
    """A torch leaf tensor with its own copy of a, that records its gradient."""
    return torch.tensor(a, requires_grad=True)


# ------------------------------------------------------------------------------ convolution

# Output channels per group and extra input rows/columns: mostly small, sometimes past the
# kernels' blocking (6 output channels, 16 output columns per tile).
OUT_PER_GROUP = [1, 2, 3, 7]
BATCH = [1, 2, 3, 1, 2, 3, 0]  # N = 0 (empty output) in about one case in seven
EXTRA_SIZE = [0, 1, 2, 3, 4, 5, 17, 34]


@st.composite
def conv_cases(draw):
    dtype = draw(st.sampled_from(DTYPES))
    N = draw(st.sampled_from(BATCH))
    groups = draw(st.integers(1, 3))
    C = groups if draw(st.booleans()) else groups * draw(st.integers(1, 3))
    K = groups * draw(st.sampled_from(OUT_PER_GROUP))
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    mode = draw(st.sampled_from(["explicit", "valid", "same"]))
    if mode == "same":
        stride = (1, 1)  # torch refuses 'same' with stride > 1
    if mode == "explicit":
        pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        padding = _arg(draw, pad)
    else:
        pad, padding = (0, 0), mode
    sizes = []
    for k, d, p in zip((R, S), dilation, pad):
        smallest = 1 if mode == "same" else max(1, d * (k - 1) + 1 - 2 * p)
        sizes.append(smallest + draw(st.sampled_from(EXTRA_SIZE)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.standard_normal((N, C, *sizes)).astype(dtype),
              "weight": rng.standard_normal((K, C // groups, R, S)).astype(dtype),
              "bias": rng.standard_normal(K).astype(dtype) if draw(st.booleans()) else None}
    kwargs = {"stride": _arg(draw, stride), "padding": padding,
              "dilation": _arg(draw, dilation), "groups": groups}
    return Case(dtype, arrays, kwargs, seed)


def torch_conv2d(x, weight, bias, kwargs):
    """torch's conv2d of numpy arrays, as a numpy array."""
    bias = None if bias is None else torch.from_numpy(bias)
    return TF.conv2d(torch.from_numpy(x), torch.from_numpy(weight), bias, **kwargs).numpy()


def torch_conv2d_grads(grad_y, x, weight, kwargs):
    """torch autograd's gradients (x, weight, bias) of conv2d, as numpy arrays."""
    tx, tw = leaf(x), leaf(weight)
    tb = leaf(np.zeros(weight.shape[0], weight.dtype))
    TF.conv2d(tx, tw, tb, **kwargs).backward(torch.from_numpy(grad_y))
    return tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


@SWEEP
@given(case=conv_cases())
def test_conv2d_matches_torch(one_thread, case):
    x, w, b = case.arrays["x"], case.arrays["weight"], case.arrays["bias"]
    magnitude = torch_conv2d(abs(x), abs(w), None if b is None else abs(b), case.kwargs)
    assert_close(F.conv2d(x, w, b, **case.kwargs), torch_conv2d(x, w, b, case.kwargs), magnitude,
                 case.dtype)


def _conv_grads(case):
    """fastcnn's and torch's gradients for x, weight and bias, and their magnitudes."""
    x, w = case.arrays["x"], case.arrays["weight"]
    grad_y = case.grad(torch_conv2d(x, w, None, case.kwargs).shape)
    return (F.conv2d_backward(grad_y, x, w, **case.kwargs),
            torch_conv2d_grads(grad_y, x, w, case.kwargs),
            torch_conv2d_grads(abs(grad_y), abs(x), abs(w), case.kwargs))


@SWEEP
@given(case=conv_cases())
def test_conv2d_grad_x_matches_torch_autograd(one_thread, case):
    got, want, magnitude = _conv_grads(case)
    assert_close(got[0], want[0], magnitude[0], case.dtype)


@SWEEP
@given(case=conv_cases())
def test_conv2d_grad_weight_matches_torch_autograd(one_thread, case):
    got, want, magnitude = _conv_grads(case)
    assert_close(got[1], want[1], magnitude[1], case.dtype)


@SWEEP
@given(case=conv_cases())
def test_conv2d_grad_bias_matches_torch_autograd(one_thread, case):
    got, want, magnitude = _conv_grads(case)
    assert_close(got[2], want[2], magnitude[2], case.dtype)


LAYERS = {
    "3x3-pad1": ((4, 16, 20, 20), (32, 16, 3, 3), {"padding": 1}),
    "3x3-stride2-odd-size": ((4, 16, 21, 19), (24, 16, 3, 3), {"stride": 2, "padding": 1}),
    "1x1": ((4, 32, 9, 9), (16, 32, 1, 1), {}),
    "5x5-same": ((2, 8, 15, 16), (16, 8, 5, 5), {"padding": "same"}),
    "depthwise-3x3-stride2": ((4, 32, 17, 17), (32, 1, 3, 3),
                              {"stride": 2, "padding": 1, "groups": 32}),
    "grouped-dilated": ((2, 12, 16, 16), (12, 3, 3, 3), {"dilation": 2, "groups": 4}),
}


OUTPUTS = ["y", "grad_x", "grad_weight", "grad_bias"]


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer", LAYERS)
def test_conv2d_layer_sized_output_matches_torch(matched_threads, layer, dtype, output):
    """Layer-sized shapes: longer sums and more planes per thread than the sweep draws."""
    x_shape, w_shape, kwargs = LAYERS[layer]
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    if output == "y":
        got, want = F.conv2d(x, w, b, **kwargs), torch_conv2d(x, w, b, kwargs)
        magnitude = torch_conv2d(abs(x), abs(w), abs(b), kwargs)
    else:
        i = OUTPUTS.index(output) - 1
        grad_y = rng.standard_normal(torch_conv2d(x, w, None, kwargs).shape).astype(dtype)
        got = F.conv2d_backward(grad_y, x, w, **kwargs)[i]
        want = torch_conv2d_grads(grad_y, x, w, kwargs)[i]
        magnitude = torch_conv2d_grads(abs(grad_y), abs(x), abs(w), kwargs)[i]
    assert_close(got, want, magnitude, dtype)


# ---------------------------------------------------------------------------------- pooling

def pool_out_size(size, k, stride, pad, dilation, ceil_mode):
    """PyTorch's pooling output size (pooling_output_shape)."""
    span = size + 2 * pad - dilation * (k - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def every_window_overlaps(size, k, stride, pad, dilation, ceil_mode):
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
    kwargs = {"kernel_size": _arg(draw, kernel),
              "stride": None if stride is None else _arg(draw, stride),
              "padding": _arg(draw, pad), "ceil_mode": ceil_mode}
    if kind == "max":
        kwargs["dilation"] = _arg(draw, dilation)
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
    x = pool_values(np.random.default_rng(seed), (N, C, *sizes), values, dtype)
    return Case(dtype, {"x": x}, kwargs, seed)


@SWEEP
@given(case=pool_cases("max"))
def test_max_pool2d_values_match_torch(one_thread, case):
    x = case.arrays["x"]
    want = TF.max_pool2d(torch.from_numpy(x), **case.kwargs)
    np.testing.assert_array_equal(F.max_pool2d(x, **case.kwargs), want.numpy())


@SWEEP
@given(case=pool_cases("max"))
def test_max_pool2d_indices_match_torch(one_thread, case):
    x = case.arrays["x"]
    _, want = TF.max_pool2d(torch.from_numpy(x), **case.kwargs, return_indices=True)
    _, got = F.max_pool2d(x, **case.kwargs, return_indices=True)
    np.testing.assert_array_equal(got, want.numpy())


def _torch_pool_args(kwargs):
    """max_pool2d's arguments as the positional pairs aten's backward takes."""
    def pair(v):
        return [v, v] if isinstance(v, int) else list(v)
    kernel = pair(kwargs["kernel_size"])
    stride = kernel if kwargs["stride"] is None else pair(kwargs["stride"])
    return (kernel, stride, pair(kwargs["padding"]), pair(kwargs["dilation"]),
            kwargs["ceil_mode"])


@SWEEP
@given(case=pool_cases("max"))
def test_max_pool2d_backward_matches_torch_autograd(one_thread, case):
    """Torch's autograd backward for max_pool2d (aten's max_pool2d_with_indices_backward), fed
    fastcnn's indices so that this compares the gradient alone."""
    x = case.arrays["x"]
    _, indices = F.max_pool2d(x, **case.kwargs, return_indices=True)
    grad_y = case.grad(indices.shape)

    def torch_grad(grad_y):
        return torch.ops.aten.max_pool2d_with_indices_backward(
            torch.from_numpy(grad_y), torch.from_numpy(x), *_torch_pool_args(case.kwargs),
            torch.from_numpy(indices)).numpy()
    assert_close(F.max_pool2d_backward(grad_y, indices, x.shape, **case.kwargs),
                 torch_grad(grad_y), torch_grad(abs(grad_y)), case.dtype)


@SWEEP
@given(case=pool_cases("avg"))
def test_avg_pool2d_matches_torch(one_thread, case):
    x = case.arrays["x"]
    assert_close(F.avg_pool2d(x, **case.kwargs),
                 TF.avg_pool2d(torch.from_numpy(x), **case.kwargs).numpy(),
                 TF.avg_pool2d(torch.from_numpy(abs(x)), **case.kwargs).numpy(), case.dtype)


@SWEEP
@given(case=pool_cases("avg"))
def test_avg_pool2d_grad_matches_torch_autograd(one_thread, case):
    x = case.arrays["x"]
    grad_y = case.grad(tuple(TF.avg_pool2d(torch.from_numpy(x), **case.kwargs).shape))

    def torch_grad(grad_y):
        tx = leaf(x)
        TF.avg_pool2d(tx, **case.kwargs).backward(torch.from_numpy(grad_y))
        return tx.grad.numpy()
    assert_close(F.avg_pool2d_backward(grad_y, x.shape, **case.kwargs), torch_grad(grad_y),
                 torch_grad(abs(grad_y)), case.dtype)
