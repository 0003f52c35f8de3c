"""Tests for fastcnn.reference, the NumPy oracle: hand-computed cases, finite differences,
adjoint identities, and (when installed) exact agreement with torch.nn.functional."""
import itertools

import numpy as np
import pytest

from fastcnn import reference as R
from harness import (CHAIN_ATOL, CHAIN_RTOL, DTYPES, FD_ATOL, FD_RTOL, TorchOracle, assert_close,
                     numeric_grad)

# (x shape, weight shape, keyword arguments) for conv2d.
CONV_CASES = {
    "plain": ((2, 3, 7, 6), (4, 3, 3, 2), {}),
    "stride2-pad1": ((2, 3, 7, 8), (4, 3, 3, 3), dict(stride=2, padding=1)),
    "pairs-dilation": ((1, 2, 9, 7), (3, 2, 3, 2), dict(stride=(1, 2), padding=(2, 0),
                                                        dilation=(2, 1))),
    "same-stride1-even-kernel": ((2, 2, 6, 5), (3, 2, 4, 2), dict(padding="same")),
    "same-stride2": ((2, 2, 7, 8), (3, 2, 3, 3), dict(stride=2, padding="same")),
    "same-stride2-dilation": ((1, 2, 9, 6), (2, 2, 3, 2), dict(stride=(2, 3), padding="same",
                                                               dilation=2)),
    "valid": ((1, 3, 5, 5), (2, 3, 3, 3), dict(padding="valid")),
    "groups": ((2, 6, 6, 5), (4, 3, 3, 3), dict(groups=2, padding=1, stride=(2, 1))),
    "depthwise": ((1, 3, 6, 6), (6, 1, 3, 3), dict(groups=3, dilation=2, padding=2)),
    "1x1": ((2, 4, 3, 4), (5, 4, 1, 1), {}),
}

# (x shape, keyword arguments) for max_pool2d; avg_pool2d takes those without dilation.
POOL_CASES = {
    "2x2": ((2, 3, 6, 8), dict(kernel_size=2)),
    "overlap-pad": ((2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    "stride1": ((1, 2, 5, 6), dict(kernel_size=(2, 3), stride=1, padding=(1, 1))),
    "ceil": ((2, 2, 7, 6), dict(kernel_size=3, stride=2, ceil_mode=True)),
    "ceil-pad": ((1, 2, 6, 5), dict(kernel_size=(2, 3), stride=(2, 2), padding=(1, 1),
                                    ceil_mode=True)),
    "dilation": ((1, 2, 9, 8), dict(kernel_size=3, stride=2, padding=1, dilation=2)),
    "dilation-ceil": ((2, 1, 8, 9), dict(kernel_size=2, stride=3, padding=1, dilation=(2, 3),
                                         ceil_mode=True)),
}
AVG_CASES = {name: case for name, case in POOL_CASES.items() if "dilation" not in case[1]}


def rand(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


# ----------------------------------------------------------------------- hand-computed cases

def test_conv2d_5x5_filter_on_32x32x3_image_gives_28x28_map():
    x, w = np.ones((1, 3, 32, 32)), np.ones((1, 3, 5, 5))
    y = R.conv2d(x, w, bias=np.array([0.5]))
    assert y.shape == (1, 1, 28, 28)
    np.testing.assert_array_equal(y, 5 * 5 * 3 + 0.5)


def test_conv2d_7x7_filter_on_32x32_image_gives_26x26_map():
    assert R.conv2d(np.ones((1, 3, 32, 32)), np.ones((1, 3, 7, 7))).shape == (1, 1, 26, 26)


def test_conv2d_two_filters_give_two_maps():
    w = np.stack([np.ones((3, 5, 5)), -2 * np.ones((3, 5, 5))])
    y = R.conv2d(np.ones((1, 3, 32, 32)), w)
    assert y.shape == (1, 2, 28, 28)
    np.testing.assert_array_equal(y[0, 0], 75)
    np.testing.assert_array_equal(y[0, 1], -150)


def test_conv2d_is_cross_correlation_with_zero_padding():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.array([[[[0.0, 1.0], [0.0, 0.0]]]])  # picks the top-right tap of each window
    np.testing.assert_array_equal(R.conv2d(x, w, padding=1)[0, 0],
                                  [[0, 0, 0, 0], [0, 1, 2, 0], [3, 4, 5, 0], [6, 7, 8, 0]])


def test_conv2d_same_with_stride2_outputs_ceil_size_and_pads_bottom_right():
    x = np.zeros((1, 1, 8, 8))
    x[0, 0, 7, 7] = 1.0
    y = R.conv2d(x, np.ones((1, 1, 3, 3)), stride=2, padding="same")
    assert y.shape == (1, 1, 4, 4)  # padding: total 1 -> 0 top/left, 1 bottom/right
    assert y[0, 0, 3, 3] == 1.0 and y.sum() == 1.0


def test_max_pool2d_2x2_picks_each_window_maximum_and_its_position():
    y, idx = R.max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2, return_indices=True)
    np.testing.assert_array_equal(y[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(idx[0, 0], [[5, 7], [13, 15]])
    assert idx.dtype == np.int64


def test_max_pool2d_tie_goes_to_first_maximum_in_scan_order():
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]]]])
    assert R.max_pool2d(x, 2, return_indices=True)[1].item() == 1


def test_max_pool2d_tie_of_signed_zeros_keeps_the_first_value():
    y, idx = R.max_pool2d(np.array([[[[-0.0, 0.0, 0.0, -0.0]]]]), (1, 2), return_indices=True)
    np.testing.assert_array_equal(np.signbit(y), [[[[True, False]]]])
    np.testing.assert_array_equal(idx, [[[[0, 2]]]])


def test_max_pool2d_nan_window_gives_nan_at_last_nan():
    x = np.array([[[[np.nan, 9.0], [np.nan, 0.0]]]])
    y, idx = R.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(y.item()) and idx.item() == 2


def test_max_pool2d_all_minus_inf_points_at_first_element_inside_input():
    x = np.full((1, 1, 3, 3), -np.inf)
    y, idx = R.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    assert np.all(y == -np.inf)
    np.testing.assert_array_equal(idx[0, 0], [[0, 1], [3, 4]])


def test_max_pool2d_window_missing_the_input_is_refused():
    # taps at -1 and 2 of a 2-row input: PyTorch returns an index outside the plane here.
    with pytest.raises(ValueError, match="holds no input element"):
        R.max_pool2d(np.ones((1, 1, 2, 2)), 2, stride=1, padding=1, dilation=3)


def test_max_pool2d_backward_sums_gradients_of_overlapping_windows():
    x = np.array([[[[0.0, 5.0, 1.0]]]])
    y, idx = R.max_pool2d(x, (1, 2), stride=1, return_indices=True)
    grad_x = R.max_pool2d_backward(np.array([[[[1.0, 2.0]]]]), idx, x.shape, (1, 2), stride=1)
    np.testing.assert_array_equal(grad_x, [[[[0.0, 3.0, 0.0]]]])


def test_avg_pool2d_2x2_means():
    y = R.avg_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    np.testing.assert_array_equal(y[0, 0], [[2.5, 4.5], [10.5, 12.5]])


@pytest.mark.parametrize("count_include_pad, expected", [(True, 4 / 9), (False, 1.0)])
def test_avg_pool2d_divisor_counts_padding_only_when_asked(count_include_pad, expected):
    y = R.avg_pool2d(np.ones((1, 1, 2, 2)), 3, stride=1, padding=1,
                     count_include_pad=count_include_pad)
    np.testing.assert_allclose(y, expected, rtol=1e-15)


def test_avg_pool2d_ceil_mode_never_counts_past_the_padding():
    # the last window (rows and columns 4..5) reaches past a 5x5 input with no padding
    y = R.avg_pool2d(np.ones((1, 1, 5, 5)), 2, ceil_mode=True)
    assert y.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(y, 1.0)


# ------------------------------------------------------------ dtypes, empty batches, inputs

def all_calls(x, dtype):
    """Every reference function once on x (N, 2, 6, 6), forward outputs feeding backwards."""
    w = np.ones((4, 2, 3, 3), dtype)
    y = R.conv2d(x, w, np.ones(4, dtype), stride=2, padding=1)
    conv_grads = R.conv2d_backward(y, x, w, stride=2, padding=1)
    m, idx = R.max_pool2d(x, 2, return_indices=True)
    a = R.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
    return {"conv2d": y, "grad_x": conv_grads[0], "grad_weight": conv_grads[1],
            "grad_bias": conv_grads[2], "max_pool2d": m,
            "max_pool2d_backward": R.max_pool2d_backward(m, idx, x.shape, 2),
            "avg_pool2d": a,
            "avg_pool2d_backward": R.avg_pool2d_backward(a, x.shape, 3, stride=2, padding=1,
                                                         ceil_mode=True)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_have_the_input_dtype(dtype):
    outs = all_calls(rand(np.random.default_rng(0), (2, 2, 6, 6), dtype), dtype)
    assert {name: out.dtype for name, out in outs.items()} == {name: dtype for name in outs}


def test_empty_batch_gives_empty_outputs_of_the_right_shape():
    outs = all_calls(np.zeros((0, 2, 6, 6)), np.float64)
    assert {name: out.shape for name, out in outs.items()} == {
        "conv2d": (0, 4, 3, 3), "grad_x": (0, 2, 6, 6), "grad_weight": (4, 2, 3, 3),
        "grad_bias": (4,), "max_pool2d": (0, 2, 3, 3), "max_pool2d_backward": (0, 2, 6, 6),
        "avg_pool2d": (0, 2, 4, 4), "avg_pool2d_backward": (0, 2, 6, 6)}
    assert not outs["grad_weight"].any() and not outs["grad_bias"].any()


def test_inputs_are_never_modified():
    x = readonly(rand(np.random.default_rng(0), (2, 2, 6, 6)))
    before = x.copy()
    all_calls(x, np.float64)  # read-only: any in-place write would raise
    np.testing.assert_array_equal(x, before)


def test_int_input_is_computed_in_float32():
    y = R.conv2d(np.ones((1, 1, 3, 3), np.int64), np.ones((1, 1, 2, 2), np.int8))
    assert y.dtype == np.float32 and np.all(y == 4)


# --------------------------------------------------------------------------- bad arguments

def test_conv2d_backward_rejects_grad_y_of_the_wrong_shape():
    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
    with pytest.raises(ValueError, match=r"grad_y must have shape \(1, 3, 3, 3\)"):
        R.conv2d_backward(np.ones((1, 3, 5, 5)), x, w)


def test_pool_backwards_reject_grad_y_of_the_wrong_shape():
    with pytest.raises(ValueError, match="grad_y must have shape"):
        R.avg_pool2d_backward(np.ones((1, 1, 3, 3)), (1, 1, 4, 4), 2)
    with pytest.raises(ValueError, match="grad_y must have shape"):
        R.max_pool2d_backward(np.ones((1, 1, 3, 3)), np.zeros((1, 1, 3, 3), np.int64),
                              (1, 1, 4, 4), 2)


@pytest.mark.parametrize("indices, error, match", [
    (np.zeros((1, 1, 2, 2)), TypeError, "integer"),
    (np.zeros((1, 1, 2, 1), np.int64), ValueError, "indices must have shape"),
    (np.full((1, 1, 2, 2), 16), ValueError, r"\[0, 16\)"),
    (np.full((1, 1, 2, 2), -1), ValueError, r"\[0, 16\)"),
])
def test_max_pool2d_backward_rejects_bad_indices(indices, error, match):
    with pytest.raises(error, match=match):
        R.max_pool2d_backward(np.ones((1, 1, 2, 2)), indices, (1, 1, 4, 4), 2)


def test_mixing_float32_and_float64_is_refused():
    with pytest.raises(TypeError, match="same float dtype"):
        R.conv2d(np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 2, 2)))


# ------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_gradients_match_finite_differences(case):
    x_shape, w_shape, kw = case
    rng = np.random.default_rng(1)
    x, w, b = rand(rng, x_shape), rand(rng, w_shape), rand(rng, w_shape[0])
    grad_y = rand(rng, R.conv2d(x, w, b, **kw).shape)

    def loss():
        return np.sum(R.conv2d(x, w, b, **kw) * grad_y)

    grad_x, grad_w, grad_b = R.conv2d_backward(grad_y, x, w, **kw)
    np.testing.assert_allclose(grad_x, numeric_grad(loss, x), rtol=FD_RTOL, atol=FD_ATOL)
    np.testing.assert_allclose(grad_w, numeric_grad(loss, w), rtol=FD_RTOL, atol=FD_ATOL)
    np.testing.assert_allclose(grad_b, numeric_grad(loss, b), rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_max_pool2d_gradient_matches_finite_differences(case):
    shape, kw = case
    rng = np.random.default_rng(2)
    # distinct values 0.01 apart, so no step of FD_EPS changes which element is the maximum
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
    y, idx = R.max_pool2d(x, return_indices=True, **kw)
    grad_y = rand(rng, y.shape)

    def loss():
        return np.sum(R.max_pool2d(x, **kw) * grad_y)

    np.testing.assert_allclose(R.max_pool2d_backward(grad_y, idx, shape, **kw),
                               numeric_grad(loss, x), rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", AVG_CASES.values(), ids=AVG_CASES.keys())
def test_avg_pool2d_gradient_matches_finite_differences(case, count_include_pad):
    shape, kw = case
    rng = np.random.default_rng(3)
    x = rand(rng, shape)
    grad_y = rand(rng, R.avg_pool2d(x, count_include_pad=count_include_pad, **kw).shape)

    def loss():
        return np.sum(R.avg_pool2d(x, count_include_pad=count_include_pad, **kw) * grad_y)

    grad_x = R.avg_pool2d_backward(grad_y, shape, count_include_pad=count_include_pad, **kw)
    np.testing.assert_allclose(grad_x, numeric_grad(loss, x), rtol=FD_RTOL, atol=FD_ATOL)


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_backward_is_the_adjoint_of_conv2d(case):
    # <conv2d(x, w), g> = <x, grad_x(g, w)> = <w, grad_weight(g, x)>: conv is bilinear
    x_shape, w_shape, kw = case
    rng = np.random.default_rng(4)
    x, w = rand(rng, x_shape), rand(rng, w_shape)
    y = R.conv2d(x, w, **kw)
    g = rand(rng, y.shape)
    grad_x, grad_w, _ = R.conv2d_backward(g, x, w, **kw)
    tol = dict(rtol=CHAIN_RTOL[np.float64], atol=CHAIN_ATOL[np.float64])
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, grad_x), **tol)
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(w, grad_w), **tol)


# ------------------------------------------------------------------------- against torch

@pytest.fixture
def torch_oracle():
    return TorchOracle(pytest.importorskip("torch"))


def assert_matches_torch(ours, theirs, dtype):
    assert_close(ours, theirs, dtype, rtol=CHAIN_RTOL[dtype], atol=CHAIN_ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_and_gradients_match_torch(torch_oracle, case, dtype):
    """torch's own 'same' padding where it takes one (stride 1), padded by hand otherwise."""
    x_shape, w_shape, kw = case
    rng = np.random.default_rng(5)
    x, w, b = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype), rand(rng, w_shape[0], dtype)
    y = R.conv2d(x, w, b, **kw)
    grad_y = rand(rng, y.shape, dtype)
    assert_matches_torch(y, torch_oracle.conv2d(x, w, b, **kw), dtype)
    for ours, theirs in zip(R.conv2d_backward(grad_y, x, w, **kw),
                            torch_oracle.conv2d_backward(grad_y, x, w, **kw)):
        assert_matches_torch(ours, theirs, dtype)


def tie_and_nan_input(rng, shape):
    """Small integers (many ties), with NaNs and a plane of -inf."""
    x = rng.integers(-2, 3, shape).astype(np.float64)
    x[0, 0, 1, 1:3] = np.nan
    x[-1, -1, -1, 0] = np.nan
    x[0, -1] = -np.inf
    return x


@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_max_pool2d_values_indices_and_gradient_match_torch(torch_oracle, case):
    shape, kw = case
    rng = np.random.default_rng(6)
    x = tie_and_nan_input(rng, shape)
    y, idx = R.max_pool2d(x, return_indices=True, **kw)
    grad_y = rand(rng, y.shape)
    y_t, idx_t = torch_oracle.max_pool2d(x, return_indices=True, **kw)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(idx, idx_t)
    assert_matches_torch(R.max_pool2d_backward(grad_y, idx, shape, **kw),
                         torch_oracle.max_pool2d_backward(grad_y, idx_t, shape, **kw),
                         np.float64)


def test_max_pool2d_matches_torch_over_a_grid_of_geometries(torch_oracle):
    rng = np.random.default_rng(7)
    x = tie_and_nan_input(rng, (2, 2, 7, 6))
    for k, s, p, d, ceil in itertools.product((1, 2, 3), (1, 2, 3), (0, 1), (1, 2), (False, True)):
        if p > k // 2 or (k - 1) * d + 1 > 6 + 2 * p:
            continue
        kw = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
        y, idx = R.max_pool2d(x, return_indices=True, **kw)
        y_t, idx_t = torch_oracle.max_pool2d(x, return_indices=True, **kw)
        np.testing.assert_array_equal(y, y_t, err_msg=str(kw))
        np.testing.assert_array_equal(idx, idx_t, err_msg=str(kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", AVG_CASES.values(), ids=AVG_CASES.keys())
def test_avg_pool2d_and_gradient_match_torch(torch_oracle, case, count_include_pad, dtype):
    shape, kw = case
    rng = np.random.default_rng(8)
    x = rand(rng, shape, dtype)
    y = R.avg_pool2d(x, count_include_pad=count_include_pad, **kw)
    grad_y = rand(rng, y.shape, dtype)
    assert_matches_torch(y, torch_oracle.avg_pool2d(x, count_include_pad=count_include_pad, **kw),
                         dtype)
    assert_matches_torch(
        R.avg_pool2d_backward(grad_y, shape, count_include_pad=count_include_pad, **kw),
        torch_oracle.avg_pool2d_backward(grad_y, shape, count_include_pad=count_include_pad,
                                         **kw), dtype)
