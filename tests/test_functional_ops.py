"""The functional ops the layers run on besides convolution and pooling (activations, linear,
batch_norm) and the split convolution gradients, each against `fastcnn.reference`, finite
differences in float64, hand-computed values and PyTorch where it is installed; and the
backend switch that runs the layers on either.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastcnn.functional as F
import fastcnn.reference as R
from fastcnn import nn
from harness import (ATOL, CHAIN_ATOL, CHAIN_RTOL, DTYPES, ELEMENTWISE_RTOL, FD_RTOL, SWEEP,
                     assert_close, numeric_grad)

OPS_SWEEP = settings(SWEEP, max_examples=60)

ACTIVATIONS = {  # name: (forward arguments after x, what the backward takes besides grad_y)
    "relu": ((), "y"),
    "leaky_relu": ((0.2,), "x"),
    "sigmoid": ((), "y"),
    "tanh": ((), "y"),
    "softmax": ((1,), "y"),
}


def close(actual, expected, dtype, scale=1.0):
    """Within an elementwise op's rounding of the expected value, plus ATOL times scale (for
    results that sum about scale terms)."""
    assert_close(actual, expected, dtype, rtol=ELEMENTWISE_RTOL[dtype], atol=ATOL[dtype] * scale)


def close_to_terms(actual, expected, terms, dtype):
    """Within an elementwise op's rounding of terms, plus ATOL: for results that cancel, such
    as tanh's gradient grad_y * (1 - y * y) where y is near 1, whose rounding follows the size
    of grad_y, not of the result."""
    assert_close(actual, expected, dtype, magnitude=terms, rtol=ELEMENTWISE_RTOL[dtype],
                 atol=ATOL[dtype])


def _values(seed, shape, dtype, special):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    if special and x.size:
        specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0], dtype)
        pick = rng.random(shape) < 0.3
        x[pick] = rng.choice(specials, size=int(pick.sum()))
    return x


def _run(module, name, x, grad_y):
    """(y, grad_x) of activation `name` computed by module (functional or reference)."""
    args, saved = ACTIVATIONS[name]
    y = getattr(module, name)(x, *args)
    grad_x = getattr(module, name + "_backward")(grad_y, y if saved == "y" else x, *args)
    return y, grad_x


# ------------------------------------------------------------------------------ activations

@OPS_SWEEP
@given(name=st.sampled_from(sorted(ACTIVATIONS)), dtype=st.sampled_from(DTYPES),
       shape=st.lists(st.integers(1, 7), min_size=2, max_size=4).map(tuple),
       special=st.booleans(), seed=st.integers(0, 2**16))
def test_activations_match_the_reference(name, dtype, shape, special, seed):
    if name == "softmax" and special:
        special = False  # one inf in a row makes NaN in both, compared below by hand
    x = _values(seed, shape, dtype, special)
    grad_y = _values(seed + 1, shape, dtype, False)
    with np.errstate(all="ignore"):
        want = _run(R, name, x, grad_y)
        got = _run(F, name, x, grad_y)
    close(got[0], want[0], dtype)
    close_to_terms(got[1], want[1], 4 * grad_y, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_is_exact_and_passes_nan_as_pytorch(dtype):
    x = np.array([-1.0, -0.0, 0.0, 2.5, np.nan, np.inf, -np.inf], dtype)
    y = F.relu(x)
    np.testing.assert_array_equal(y, [0, 0, 0, 2.5, np.nan, np.inf, 0])
    assert not np.signbit(y[:3]).any()  # +0 for x <= 0, as PyTorch
    gx = F.relu_backward(np.full(7, 3.0, dtype), y)
    np.testing.assert_array_equal(gx, [0, 0, 0, 3, 3, 3, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_tanh_saturate_without_overflow(dtype):
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype)
    with np.errstate(over="raise", invalid="raise"):
        s = F.sigmoid(x)
    np.testing.assert_array_equal(s[[0, 2, 4]], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(F.tanh(x)[[0, 2, 4]], [-1.0, 0.0, 1.0])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_gradients_match_finite_differences(name):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from relu's kink
    grad_y = rng.standard_normal((3, 4))
    args, _ = ACTIVATIONS[name]
    want = numeric_grad(lambda: (getattr(F, name)(x, *args) * grad_y).sum(), x)
    np.testing.assert_allclose(_run(F, name, x, grad_y)[1], want, rtol=1e-7, atol=1e-9)


# ----------------------------------------------------------------------------------- linear

@OPS_SWEEP
@given(dtype=st.sampled_from(DTYPES), lead=st.lists(st.integers(1, 5), max_size=3).map(tuple),
       n_in=st.integers(1, 40), n_out=st.integers(1, 40), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_linear_matches_the_reference(dtype, lead, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(lead + (n_in,)).astype(dtype)
    w = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    gy = rng.standard_normal(lead + (n_out,)).astype(dtype)
    close(F.linear(x, w, b), R.linear(x, w, b), dtype, scale=n_in)
    for got, want in zip(F.linear_backward(gy, x, w), R.linear_backward(gy, x, w)):
        close(got, want, dtype, scale=max(n_in, n_out, x.size))
    assert F.linear_backward(gy, x, w, input_grad=False)[0] is None


def test_linear_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    x, w, gy = rng.standard_normal((2, 3, 5)), rng.standard_normal((4, 5)), rng.standard_normal((2, 3, 4))
    gx, gw, gb = F.linear_backward(gy, x, w)
    def loss():
        return (F.linear(x, w) * gy).sum()
    np.testing.assert_allclose(gx, numeric_grad(loss, x), rtol=1e-7)
    np.testing.assert_allclose(gw, numeric_grad(loss, w), rtol=1e-7)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 1)), rtol=1e-12)


# ----------------------------------------------------------------------- batch normalisation

def _bn_inputs(seed, shape, dtype):
    rng = np.random.default_rng(seed)
    C = shape[1]
    return (rng.normal(3, 2, shape).astype(dtype), rng.random(C).astype(dtype),
            (rng.random(C) + 0.5).astype(dtype), rng.standard_normal(C).astype(dtype),
            rng.standard_normal(C).astype(dtype), rng.standard_normal(shape).astype(dtype))


@OPS_SWEEP
@given(dtype=st.sampled_from(DTYPES),
       shape=st.lists(st.integers(1, 5), min_size=2, max_size=5).map(tuple),
       training=st.booleans(), affine=st.booleans(), track=st.booleans(),
       momentum=st.sampled_from([0.0, 0.1, 1.0]), seed=st.integers(0, 2**16))
def test_batch_norm_matches_the_reference(dtype, shape, training, affine, track, momentum,
                                          seed):
    training = training or not track  # no running statistics: batch statistics
    if training and np.prod(shape) // shape[1] <= 1:
        shape = (2,) + shape[1:]
    x, rm, rv, w, b, gy = _bn_inputs(seed, shape, dtype)
    if not affine:
        w = b = None
    stats = {}
    for name, module in (("F", F), ("R", R)):
        running = (rm.copy(), rv.copy()) if track else (None, None)
        y, mean, inv_std = module.batch_norm(x, *running, w, b, training=training,
                                             momentum=momentum, return_stats=True)
        grads = module.batch_norm_backward(gy, x, mean, inv_std, w, training)
        stats[name] = (y, mean, inv_std, *running, *grads)
    for got, want in zip(stats["F"], stats["R"]):
        if want is None:
            assert got is None
        else:
            close(got, want, dtype, scale=100)


def test_batch_norm_gradients_match_finite_differences():
    x, _, _, w, b, gy = _bn_inputs(5, (3, 2, 2, 2), np.float64)
    y, mean, inv_std = F.batch_norm(x, None, None, w, b, training=True, return_stats=True)
    gx, gw, gb = F.batch_norm_backward(gy, x, mean, inv_std, w, training=True)

    def loss():
        return (F.batch_norm(x, None, None, w, b, training=True) * gy).sum()
    np.testing.assert_allclose(gx, numeric_grad(loss, x), rtol=FD_RTOL, atol=1e-8)
    np.testing.assert_allclose(gw, numeric_grad(loss, w), rtol=FD_RTOL)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_batch_norm_backward_gives_the_bias_gradient_without_a_weight():
    x, _, _, _, _, gy = _bn_inputs(6, (3, 2, 2, 2), np.float64)
    y, mean, inv_std = F.batch_norm(x, None, None, training=True, return_stats=True)
    for module in (F, R):
        _, grad_w, grad_b = module.batch_norm_backward(gy, x, mean, inv_std, None, True)
        assert grad_w is None
        np.testing.assert_allclose(grad_b, gy.sum(axis=(0, 2, 3)))


def test_batch_norm_updates_the_running_statistics_in_place_with_the_unbiased_variance():
    x = np.arange(8.0).reshape(4, 2, 1, 1)
    rm, rv = np.zeros(2), np.ones(2)
    F.batch_norm(x, rm, rv, training=True, momentum=0.5)
    np.testing.assert_allclose(rm, 0.5 * np.array([3.0, 4.0]))
    np.testing.assert_allclose(rv, 0.5 + 0.5 * x[:, 0].var(ddof=1))


@pytest.mark.parametrize("bad, error, message", [
    (dict(running_mean=np.zeros(2, np.float32)), TypeError, "running_mean must be a float64"),
    (dict(running_mean=None), ValueError, "both be arrays or both None"),
    (dict(running_mean=None, running_var=None), ValueError, "needed when training is False"),
    (dict(running_var=np.ones(3)), ValueError, r"running_var must have shape \(2,\)"),
    (dict(weight=np.ones(5)), ValueError, r"weight must have shape \(2,\)"),
    (dict(momentum=1.5), ValueError, "momentum"),
])
def test_batch_norm_refuses_bad_arguments(bad, error, message):
    kwargs = dict(running_mean=np.zeros(2), running_var=np.ones(2))
    kwargs.update(bad)
    with pytest.raises(error, match=message):
        F.batch_norm(np.ones((3, 2, 2, 2)), **kwargs)


def test_batch_norm_refuses_read_only_running_statistics_in_training():
    rm = np.zeros(2)
    rm.flags.writeable = False
    with pytest.raises(ValueError, match="running_mean must be writeable"):
        F.batch_norm(np.ones((3, 2, 2, 2)), rm, np.ones(2), training=True)


# ------------------------------------------------------------ convolution, split gradients

CONV_CASES = [
    ((2, 4, 9, 7), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((1, 3, 8, 8), (4, 3, 5, 3), dict(padding="same", dilation=(1, 2))),
    ((3, 2, 6, 5), (2, 1, 1, 1), dict(stride=(1, 2), groups=2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES)
def test_split_conv_gradients_are_conv2d_backward_s(x_shape, w_shape, kw, dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(F.conv2d(x, w, **kw).shape).astype(dtype)
    gx, gw, _ = F.conv2d_backward(gy, x, w, **kw)
    np.testing.assert_array_equal(F.conv2d_backward_data(gy, w, x.shape, **kw), gx)
    np.testing.assert_array_equal(F.conv2d_backward_weight(gy, x, w.shape, **kw), gw)
    close(R.conv2d_backward_data(gy, w, x.shape, **kw), gx, dtype, scale=100)
    close(R.conv2d_backward_weight(gy, x, w.shape, **kw), gw, dtype, scale=100)


def test_split_conv_gradients_check_their_shapes():
    with pytest.raises(ValueError, match="input_shape must be a 4-tuple"):
        F.conv2d_backward_data(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), (3, 3))
    with pytest.raises(ValueError, match=r"grad_y must have shape \(1, 1, 2, 2\)"):
        F.conv2d_backward_weight(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), (1, 1, 2, 2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_data_gradient_of_an_infinite_weight_matches_hand_computed_values(dtype):
    """A 3x3 filter of ones with +inf at its top-left tap, padding 1, grad_y of ones: input
    (i, j) takes the infinite tap only from output (i + 1, j + 1), so the last row and column
    stay finite: they sum 4 or 6 ones (the padding's zeros never meet the inf)."""
    w = np.ones((1, 1, 3, 3), dtype)
    w[0, 0, 0, 0] = np.inf
    gx = F.conv2d_backward_data(np.ones((1, 1, 3, 3), dtype), w, (1, 1, 3, 3), padding=1)
    inf = np.inf
    np.testing.assert_array_equal(gx[0, 0], [[inf, inf, 4], [inf, inf, 6], [4, 6, 4]])


# ------------------------------------------------------------ layouts, threads, immutability

def _layouts(a):
    yield np.asfortranarray(a)
    b = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)[..., ::2]
    b[...] = a
    yield b
    c = a.copy()
    c.flags.writeable = False
    yield c


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_take_any_layout_and_leave_inputs_alone(name):
    rng = np.random.default_rng(7)
    x, gy = rng.standard_normal((3, 4, 5)).astype(np.float32), rng.standard_normal((3, 4, 5))
    gy = gy.astype(np.float32)
    want = _run(F, name, x, gy)
    for xl, gl in zip(_layouts(x), _layouts(gy)):
        before = xl.copy(), gl.copy()
        for got, w in zip(_run(F, name, xl, gl), want):
            np.testing.assert_array_equal(got, w)
        np.testing.assert_array_equal(xl, before[0])
        np.testing.assert_array_equal(gl, before[1])


def test_relu_gives_the_same_bits_on_one_and_two_threads(threads, monkeypatch):
    monkeypatch.setattr(F, "_ELEMENTS_PER_THREAD", 1)
    x = np.random.default_rng(8).standard_normal(300_001).astype(np.float32)
    results = []
    for n in (1, 2):
        threads(n)
        y = F.relu(x)
        results.append((y, F.relu_backward(x, y)))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.relu_backward(np.ones(3), np.ones(4)), ValueError, r"grad_y must have shape"),
    (lambda: F.sigmoid_backward(np.ones(3, np.float32), np.ones(3)), TypeError, "same float"),
    (lambda: F.softmax(np.ones((2, 3)), 2), ValueError, r"dim must be in \[-2, 2\)"),
    (lambda: F.linear(np.ones((2, 3)), np.ones((4, 5))), ValueError, r"input \(\*, 5\)"),
    (lambda: F.linear(np.ones((2, 3)), np.ones((4, 3)), np.ones(3)), ValueError, "bias"),
    (lambda: F.linear_backward(np.ones((3, 4)), np.ones((4, 3)), np.ones((4, 3))), ValueError,
     r"grad_y must have shape \(4, 4\)"),
    (lambda: F.relu(np.array(["a"])), TypeError, "float32 or float64"),
])
def test_functional_ops_refuse_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------------- backend switch

def _every_layer_model():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, rng=0), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1, groups=2, rng=1), nn.LeakyReLU(), nn.AvgPool2d(2),
        nn.Tanh(), nn.Flatten(), nn.Linear(16, 8, rng=2), nn.Sigmoid(), nn.Linear(8, 3, rng=3),
        nn.Softmax(dim=1)).astype(np.float64)


def test_the_layers_compute_the_same_on_the_reference_backend():
    rng = np.random.default_rng(9)
    x, gy = rng.standard_normal((5, 2, 8, 8)), rng.standard_normal((5, 3))
    results = []
    for backend in ("fastcnn", "reference"):
        model = _every_layer_model()
        with nn.use_backend(backend):
            assert nn.get_backend() == backend
            y = model(x)
            gx = model.backward(gy)
        results.append([y, gx] + [p.grad for p in model.parameters()]
                       + [b for b in model.buffers()])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=CHAIN_RTOL[np.float64],
                                   atol=CHAIN_ATOL[np.float64])


def test_use_backend_restores_the_default_after_an_error():
    with pytest.raises(RuntimeError):
        with nn.use_backend("reference"):
            raise RuntimeError
    assert nn.get_backend() == "fastcnn"
    with pytest.raises(ValueError, match="must be one of"):
        with nn.use_backend("torch"):
            pass


# ------------------------------------------------------------------------------- PyTorch

@pytest.fixture
def torch_mod():
    return pytest.importorskip("torch")


def _t(torch, a):
    return torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(True)


@pytest.mark.parametrize("name, tname, extra", [
    ("relu", "relu", {}), ("leaky_relu", "leaky_relu", {"negative_slope": 0.2}),
    ("sigmoid", "sigmoid", {}), ("tanh", "tanh", {}), ("softmax", "softmax", {"dim": 1}),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_match_pytorch(torch_mod, name, tname, extra, dtype):
    torch = torch_mod
    x = _values(10, (4, 6), dtype, name != "softmax")
    gy = _values(11, (4, 6), dtype, False)
    xt = _t(torch, x)
    yt = getattr(torch.nn.functional, tname)(xt, **extra)
    yt.backward(torch.from_numpy(gy))
    with np.errstate(all="ignore"):
        y, gx = _run(F, name, x, gy)
    close(y, yt.detach().numpy(), dtype)
    close_to_terms(gx, xt.grad.numpy(), 4 * gy, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_and_batch_norm_match_pytorch(torch_mod, dtype):
    torch = torch_mod
    rng = np.random.default_rng(12)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in [(3, 2, 7), (5, 7), (5,)])
    gy = rng.standard_normal((3, 2, 5)).astype(dtype)
    xt, wt, bt = _t(torch, x), _t(torch, w), _t(torch, b)
    torch.nn.functional.linear(xt, wt, bt).backward(torch.from_numpy(gy))
    gx, gw, gb = F.linear_backward(gy, x, w)
    for got, want in zip((F.linear(x, w, b), gx, gw, gb),
                         (torch.nn.functional.linear(xt, wt, bt), xt.grad, wt.grad, bt.grad)):
        close(got, want.detach().numpy(), dtype, scale=10)

    x, rm, rv, w, b, gy = _bn_inputs(13, (4, 3, 5, 5), dtype)
    rmt, rvt = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    xt, wt, bt = _t(torch, x), _t(torch, w), _t(torch, b)
    torch.nn.functional.batch_norm(xt, rmt, rvt, wt, bt, training=True, momentum=0.3).backward(
        torch.from_numpy(gy))
    y, mean, inv_std = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3,
                                    return_stats=True)
    gx, gw, gb = F.batch_norm_backward(gy, x, mean, inv_std, w, training=True)
    for got, want in zip((rm, rv, gx, gw, gb), (rmt, rvt, xt.grad, wt.grad, bt.grad)):
        close(got, want.detach().numpy(), dtype, scale=100)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES[::2])
def test_split_conv_gradients_match_pytorch(torch_mod, x_shape, w_shape, kw, dtype):
    torch = torch_mod
    rng = np.random.default_rng(14)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(F.conv2d(x, w, **kw).shape).astype(dtype)
    t = {k: torch.from_numpy(v) for k, v in dict(x=x, w=w, gy=gy).items()}
    gx = torch.nn.grad.conv2d_input(x.shape, t["w"], t["gy"], **kw)
    gw = torch.nn.grad.conv2d_weight(t["x"], w.shape, t["gy"], **kw)
    close(F.conv2d_backward_data(gy, w, x.shape, **kw), gx.numpy(), dtype, scale=100)
    close(F.conv2d_backward_weight(gy, x, w.shape, **kw), gw.numpy(), dtype, scale=100)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_data_gradient_of_non_finite_weights_matches_pytorch(torch_mod, value):
    torch = torch_mod
    rng = np.random.default_rng(15)
    w = rng.standard_normal((3, 2, 3, 3))
    gy = rng.standard_normal((2, 3, 5, 3))
    for i in range(w.size):
        wi = w.copy()
        wi.flat[i] = value
        want = torch.nn.grad.conv2d_input((2, 2, 5, 6), torch.from_numpy(wi),
                                          torch.from_numpy(gy), padding=1, stride=(1, 2))
        got = F.conv2d_backward_data(gy, wi, (2, 2, 5, 6), padding=1, stride=(1, 2))
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)
