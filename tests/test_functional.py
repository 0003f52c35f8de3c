"""The compiled kernels (`fastcnn.functional`) against an oracle, the plain NumPy reference or
PyTorch (`oracle` in conftest.py, which runs each test against both, PyTorch where it is
installed), and the promises the functional boundary makes: any memory layout, byte order or
read-only input gives the same numbers and is left untouched, the dtype rules, bit-identical
results on 1 and 2 threads, and the thread / build-info API.

The sweeps draw a configuration (shapes, hyper-parameters, dtype) with hypothesis and the array
values from a drawn seed, so a failure prints a small, replayable case. Against PyTorch they
check forward values, every gradient (torch's autograd or aten backward), and max-pool indices
exactly (ties and NaNs included).
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given

import fastcnn
import fastcnn.functional as F
import fastcnn.reference as R
from harness import DTYPES, RTOL, SWEEP, assert_close, conv_cases, pool_cases, pool_values

# ------------------------------------------------------------------- convolution vs oracle

@SWEEP
@given(case=conv_cases())
def test_conv2d_matches_oracle(oracle, num_threads, prepare, tiles, case):
    x, w, b = case.arrays["x"], case.arrays["weight"], case.arrays["bias"]
    magnitude = oracle.conv2d(abs(x), abs(w), None if b is None else abs(b), **case.kwargs)
    assert_close(F.conv2d(x, w, b, **case.kwargs, algorithm=prepare | tiles),
                 oracle.conv2d(x, w, b, **case.kwargs), case.dtype, magnitude=magnitude)


def _conv_backward_both(oracle, case, algorithm=None):
    """fastcnn's and the oracle's gradients (x, weight, bias), and their magnitudes."""
    x, w = case.arrays["x"], case.arrays["weight"]
    grad_y = case.grad(R.conv2d(x, w, **case.kwargs).shape)
    return (F.conv2d_backward(grad_y, x, w, **case.kwargs, algorithm=algorithm),
            oracle.conv2d_backward(grad_y, x, w, **case.kwargs),
            oracle.conv2d_backward(abs(grad_y), abs(x), abs(w), **case.kwargs))


@SWEEP
@given(case=conv_cases())
def test_conv2d_backward_grad_x_matches_oracle(oracle, num_threads, prepare, tiles, case):
    got, want, magnitude = _conv_backward_both(oracle, case, prepare | tiles)
    assert_close(got[0], want[0], case.dtype, magnitude=magnitude[0])


@SWEEP
@given(case=conv_cases())
def test_conv2d_backward_grad_weight_matches_oracle(oracle, num_threads, wgrad_kernel, prepare,
                                                     case):
    got, want, magnitude = _conv_backward_both(oracle, case, wgrad_kernel | prepare)
    assert_close(got[1], want[1], case.dtype, magnitude=magnitude[1])


@SWEEP
@given(case=conv_cases())
def test_conv2d_backward_grad_bias_matches_oracle(oracle, num_threads, case):
    got, want, magnitude = _conv_backward_both(oracle, case)
    assert_close(got[2], want[2], case.dtype, magnitude=magnitude[2])


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
def test_conv2d_layer_sized_output_matches_oracle(oracle, num_threads, layer, dtype, output):
    """Layer-sized shapes: longer sums and more planes per thread than the sweep draws."""
    x_shape, w_shape, kwargs = LAYERS[layer]
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    if output == "y":
        got, want = F.conv2d(x, w, b, **kwargs), oracle.conv2d(x, w, b, **kwargs)
        magnitude = oracle.conv2d(abs(x), abs(w), abs(b), **kwargs)
    else:
        i = OUTPUTS.index(output) - 1
        grad_y = rng.standard_normal(R.conv2d(x, w, **kwargs).shape).astype(dtype)
        got = F.conv2d_backward(grad_y, x, w, **kwargs)[i]
        want = oracle.conv2d_backward(grad_y, x, w, **kwargs)[i]
        magnitude = oracle.conv2d_backward(abs(grad_y), abs(x), abs(w), **kwargs)[i]
    assert_close(got, want, dtype, magnitude=magnitude)


# --------------------------------------------------------------- convolution vs reference
#
# Shapes past what the sweeps draw, aimed at one kernel path each.

def _check_forward_and_grad_x(N, C, H, W, K, size, kwargs, dtype, algorithm=None):
    """conv2d and its data gradient against the reference on random (N, C, H, W) input and
    K size x size filters."""
    rng = np.random.default_rng(C * K + H)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // kwargs.get("groups", 1), size, size)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    y = R.conv2d(x, w, b, **kwargs)
    gy = rng.standard_normal(y.shape).astype(dtype)
    assert_close(F.conv2d(x, w, b, **kwargs, algorithm=algorithm), y, dtype,
                 magnitude=R.conv2d(abs(x), abs(w), abs(b), **kwargs))
    got = F.conv2d_backward(gy, x, w, **kwargs, algorithm=algorithm)[0]
    want = R.conv2d_backward(gy, x, w, **kwargs)[0]
    assert_close(got, want, dtype,
                 magnitude=R.conv2d_backward(abs(gy), abs(x), abs(w), **kwargs)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, C, H, W, K, kwargs", [
    (2, 3, 1, 1, 2, {}),                 # one pixel: one panel, mostly zero padding
    (3, 17, 3, 5, 13, {}),               # 15 pixels: a partial panel; 13 channels: 6, 6, 1
    (2, 40, 4, 4, 7, {}),                # 16 pixels: a whole panel on AVX2
    (2, 9, 1, 17, 12, {}),               # 17: a whole panel and one pixel
    (4, 64, 14, 14, 70, {}),             # the ResNet shape, smaller: panels in several tasks
    (3, 12, 5, 7, 8, {"groups": 4}),
    (2, 6, 6, 6, 6, {"groups": 6}),      # depthwise
    (2, 5, 1, 9, 4, {"stride": 2}),      # strided, but one row: still pixel to pixel
    (2, 5, 3, 2, 4, {"stride": (1, 2)}), # one output column of two: not pixel to pixel
    (2, 5, 3, 3, 4, {"padding": 1}),     # padded: not pixel to pixel
])
def test_pointwise_conv_matches_reference(num_threads, N, C, H, W, K, kwargs, dtype):
    """1x1 convolutions: with stride 1 and no padding the forward and data gradient read x
    (or the output gradient) in pixel panels, a path of their own; the others must not."""
    _check_forward_and_grad_x(N, C, H, W, K, 1, kwargs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, C, H, W, K, kwargs", [
    (2, 6, 14, 14, 16, {}),                          # LeNet-5's conv2: rows across, 16 channels
    (2, 17, 9, 11, 9, {"padding": 1}),               # data gradient: 16 and 1 (AVX2 float32)
    (3, 9, 8, 7, 33, {"stride": 2, "padding": 2}),   # 33: 16, 16, 1 (AVX2 float32); phases
    (1, 12, 6, 13, 24, {"groups": 2, "dilation": (2, 1)}),
    (2, 10, 3, 40, 20, {"stride": (1, 3)}),          # rows of more positions than a tile's
])
def test_conv2d_channel_tiles_match_reference(num_threads, tiles, N, C, H, W, K, kwargs,
                                              dtype):
    """Forward and data gradient with more channels than the sweeps draw: channel tiles of
    whole and partial vectors, in blocks of two vectors and a remainder (both tile kinds)."""
    _check_forward_and_grad_x(N, C, H, W, K, 3, kwargs, dtype, tiles)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [2, 3, 5, 7])
@pytest.mark.parametrize("N, C, H, W, K, kwargs", [
    (2, 4, 13, 28, 4, {"groups": 4, "padding": "same"}),   # depthwise, rows of 28
    (2, 3, 9, 20, 3, {"groups": 3, "dilation": (1, 2)}),   # few rows: the last block moved up
    (1, 2, 30, 9, 2, {"groups": 2, "padding": (3, 0)}),    # narrow rows: tiles of one vector
    (2, 3, 14, 16, 3, {"groups": 3, "stride": (2, 1), "dilation": (2, 1)}),  # rows 2 apart
    (2, 1, 16, 13, 6, {"padding": 1}),                     # data gradient: 6 channels into 1
    (2, 1, 12, 10, 5, {"stride": (2, 1), "padding": 2}),   # ... in two row phases
])
def test_conv2d_row_tiles_match_reference(num_threads, tiles, N, C, H, W, K, kwargs, size,
                                          dtype):
    """Forward and data gradient into one channel per group, where row tiles reuse each
    input row for every output row it reaches ("rows"): blocks of rows and tiles of columns
    moved back to end at the plane's and the row's end, kernels of 2 to 7 rows."""
    _check_forward_and_grad_x(N, C, H, W, K, size, kwargs, dtype, tiles)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H, W, kwargs", [
    (14, 14, {}),                        # the windows cover x
    (16, 16, {"stride": (2, 1)}),        # the last row is in no window
    (9, 12, {"dilation": (1, 2)}),
])
def test_conv2d_reads_an_unpadded_read_only_input_in_place(num_threads, tiles, H, W, kwargs,
                                                           dtype):
    """Without padding and with column stride 1, channel tiles read x itself, rows W apart,
    and nothing past the windows (x ends where the array does)."""
    rng = np.random.default_rng(H * W)
    x = rng.standard_normal((3, 6, H, W)).astype(dtype)
    x.setflags(write=False)
    w = rng.standard_normal((16, 6, 3, 3)).astype(dtype)
    assert_close(F.conv2d(x, w, **kwargs, algorithm=tiles), R.conv2d(x, w, **kwargs), dtype,
                 magnitude=R.conv2d(abs(x), abs(w), **kwargs))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H, W, kwargs", [
    (14, 14, {}),                        # the windows cover x
    (16, 16, {"stride": (2, 1)}),        # the last row is in no window
    (9, 12, {"dilation": (1, 2)}),
    (7, 9, {"stride": (1, 1), "dilation": 2}),
    (9, 2, {"stride": 3, "padding": "same"}),  # 'same' pads the bottom/right only
    (2, 2, {"stride": 3, "padding": "same"}),
])
def test_conv2d_grad_weight_reads_an_unpadded_read_only_input_in_place(
        num_threads, wgrad_kernel, H, W, kwargs, dtype):
    """Without padding and with column stride 1, the channels-last weight gradient reads x
    itself, rows W apart, and nothing past the windows (x ends where the array does)."""
    rng = np.random.default_rng(H * W + 1)
    x = rng.standard_normal((3, 6, H, W)).astype(dtype)
    x.setflags(write=False)
    w = rng.standard_normal((16, 6, 3, 3)).astype(dtype)
    gy = rng.standard_normal(R.conv2d(x, w, **kwargs).shape).astype(dtype)
    assert_close(F.conv2d_backward(gy, x, w, **kwargs, algorithm=wgrad_kernel)[1],
                 R.conv2d_backward(gy, x, w, **kwargs)[1], dtype,
                 magnitude=R.conv2d_backward(abs(gy), abs(x), abs(w), **kwargs)[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, H, W, kwargs", [
    (7, 5, 6, {"padding": 1}),                          # several small images per kernel call
    (9, 3, 17, {"stride": 2, "padding": (1, 2)}),       # and an odd image count per slot
    (5, 40, 33, {"dilation": 2, "groups": 2}),          # one image per call, rows in blocks
    (3, 40, 33, {"dilation": 2}),                       # the same, ungrouped
    (2, 4, 600, {"stride": (1, 2)}),                    # rows wider than a block of pixels
])
def test_conv2d_grad_weight_over_image_batches(num_threads, wgrad_kernel, prepare, N, H, W,
                                               kwargs, dtype):
    """The weight gradient sums small images several per microkernel call; every batch
    tail must count once."""
    rng = np.random.default_rng(N)
    x = rng.standard_normal((N, 4, H, W)).astype(dtype)
    w = rng.standard_normal((6, 4 // kwargs.get("groups", 1), 3, 3)).astype(dtype)
    gy = rng.standard_normal(R.conv2d(x, w, **kwargs).shape).astype(dtype)
    got = F.conv2d_backward(gy, x, w, **kwargs, algorithm=wgrad_kernel | prepare)[1]
    want = R.conv2d_backward(gy, x, w, **kwargs)[1]
    magnitude = R.conv2d_backward(abs(gy), abs(x), abs(w), **kwargs)[1]
    assert_close(got, want, dtype, magnitude=magnitude)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_grad_weight_splits_pairs_between_threads(num_threads, wgrad_kernel, dtype):
    """With one image (one slot of partial sums), two threads split the 99 (channel, tap)
    pairs between them. The channels-last kernel's blocks of output channels take tiles of
    different pair counts (66 channels end in a block of fewer vectors, and so more pairs a
    tile, on every instruction set and dtype): each block's share must start and end on its
    own tiles' bounds, or pairs at the end of a share are summed twice or not at all."""
    rng = np.random.default_rng(66)
    x = rng.standard_normal((1, 11, 9, 10)).astype(dtype)
    w = rng.standard_normal((66, 11, 3, 3)).astype(dtype)
    gy = rng.standard_normal(R.conv2d(x, w, padding=1).shape).astype(dtype)
    assert_close(F.conv2d_backward(gy, x, w, padding=1, algorithm=wgrad_kernel)[1],
                 R.conv2d_backward(gy, x, w, padding=1)[1], dtype,
                 magnitude=R.conv2d_backward(abs(gy), abs(x), abs(w), padding=1)[1])


@pytest.mark.parametrize("H, W, stride", [(7, 8, 2), (9, 5, 3), (1, 1, 2), (10, 10, (4, 1))])
@pytest.mark.parametrize("kernel", [1, 3, 4])
def test_conv2d_same_padding_output_is_ceil_size_over_stride(H, W, stride, kernel):
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    x = np.ones((1, 2, H, W), np.float32)
    y = F.conv2d(x, np.ones((3, 2, kernel, kernel), np.float32), stride=stride, padding="same")
    assert y.shape == (1, 3, -(-H // sh), -(-W // sw))


# ----------------------------------------------------------------------- pooling vs oracle

@SWEEP
@given(case=pool_cases("max"))
def test_max_pool2d_values_match_oracle(oracle, num_threads, case):
    x = case.arrays["x"]
    np.testing.assert_array_equal(F.max_pool2d(x, **case.kwargs),
                                  oracle.max_pool2d(x, **case.kwargs))


@SWEEP
@given(case=pool_cases("max"))
def test_max_pool2d_indices_match_oracle(oracle, num_threads, case):
    x = case.arrays["x"]
    _, got = F.max_pool2d(x, **case.kwargs, return_indices=True)
    _, want = oracle.max_pool2d(x, **case.kwargs, return_indices=True)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


@SWEEP
@given(case=pool_cases("max"))
def test_max_pool2d_backward_matches_oracle(oracle, num_threads, case):
    """Both fed the oracle's indices (equal to fastcnn's, above), so that this compares the
    routing of the gradient alone."""
    x = case.arrays["x"]
    _, indices = oracle.max_pool2d(x, **case.kwargs, return_indices=True)
    grad_y = case.grad(indices.shape)
    assert_close(F.max_pool2d_backward(grad_y, indices, x.shape, **case.kwargs),
                 oracle.max_pool2d_backward(grad_y, indices, x.shape, **case.kwargs), case.dtype,
                 magnitude=oracle.max_pool2d_backward(abs(grad_y), indices, x.shape,
                                                      **case.kwargs))


@SWEEP
@given(case=pool_cases("avg"))
def test_avg_pool2d_matches_oracle(oracle, num_threads, case):
    x = case.arrays["x"]
    assert_close(F.avg_pool2d(x, **case.kwargs), oracle.avg_pool2d(x, **case.kwargs),
                 case.dtype, magnitude=oracle.avg_pool2d(abs(x), **case.kwargs))


@SWEEP
@given(case=pool_cases("avg"))
def test_avg_pool2d_backward_matches_oracle(oracle, num_threads, case):
    x = case.arrays["x"]
    grad_y = case.grad(R.avg_pool2d(x, **case.kwargs).shape)
    assert_close(F.avg_pool2d_backward(grad_y, x.shape, **case.kwargs),
                 oracle.avg_pool2d_backward(grad_y, x.shape, **case.kwargs), case.dtype,
                 magnitude=oracle.avg_pool2d_backward(abs(grad_y), x.shape, **case.kwargs))


# -------------------------------------------------------------------- pooling vs reference

@pytest.mark.parametrize("kwargs, width", [
    ({"kernel_size": 3, "stride": 2, "padding": 1}, 56),                 # ResNet's 3x3/2
    ({"kernel_size": 3, "stride": 2, "padding": 1}, 33),                 # last vector overlaps
    ({"kernel_size": 2}, 48),                                            # 2x2/2, no edges
    ({"kernel_size": 3, "stride": 1, "padding": 1}, 17),
    ({"kernel_size": 2, "stride": 1}, 9),                                # one vector exactly
    ({"kernel_size": 3, "stride": 3, "padding": 1, "ceil_mode": True}, 40),  # lanes gathered
    ({"kernel_size": 3, "stride": 2, "dilation": 2, "padding": 1}, 41),
    ({"kernel_size": (2, 4), "stride": (1, 2), "padding": (1, 2)}, 30),  # two edge columns
    ({"kernel_size": 3, "stride": 2, "padding": 1}, 15),                 # 7 outputs: one by one
])
@pytest.mark.parametrize("values", ["normal", "ties", "nan", "inf"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_wide_rows_match_reference(num_threads, kwargs, width, values, dtype):
    # rows of 8 or more outputs whose windows lie inside the row go through the kernel's
    # vectors (pool_cases' planes are mostly narrower): values and indices exactly as the
    # reference, edges, ties, NaN and -inf windows included
    x = pool_values(np.random.default_rng(width), (2, 3, 7, width), values, dtype)
    got, got_i = F.max_pool2d(x, **kwargs, return_indices=True)
    want, want_i = R.max_pool2d(x, **kwargs, return_indices=True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_i, want_i)


@pytest.mark.parametrize("kwargs, size", [
    ({"kernel_size": 2}, (8, 8)),                                        # 2x2/2, exact fit
    ({"kernel_size": 2}, (9, 7)),                                        # a row/column left over
    ({"kernel_size": 3}, (10, 11)),
    ({"kernel_size": 2, "stride": 3, "padding": 1}, (10, 9)),            # gaps between windows
    ({"kernel_size": (2, 3), "stride": (2, 4), "ceil_mode": True}, (9, 13)),  # a clipped window
    ({"kernel_size": 1, "stride": 2}, (5, 6)),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_backward_disjoint_windows_match_reference(num_threads, kwargs, size, dtype):
    # windows that do not overlap take the write-once path: every gx element written once
    rng = np.random.default_rng(0)
    x = pool_values(rng, (2, 3, *size), "ties", dtype)
    _, indices = R.max_pool2d(x, **kwargs, return_indices=True)
    grad_y = rng.standard_normal(indices.shape).astype(dtype)
    np.testing.assert_array_equal(F.max_pool2d_backward(grad_y, indices, x.shape, **kwargs),
                                  R.max_pool2d_backward(grad_y, indices, x.shape, **kwargs))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_backward_indices_outside_their_window_are_scattered(num_threads, dtype):
    # indices that max_pool2d would not give (valid positions, other windows'): the plane
    # falls back to zero-fill and scatter, as torch's kernel does
    rng = np.random.default_rng(1)
    grad_y = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
    indices = np.zeros((2, 3, 4, 4), np.int64)
    indices[1] = rng.integers(0, 64, (3, 4, 4))      # plane (1, c): random positions
    indices[0, 1] = np.arange(16).reshape(4, 4) * 4  # some inside their window, some not
    got = F.max_pool2d_backward(grad_y, indices, (2, 3, 8, 8), 2)
    np.testing.assert_allclose(got, R.max_pool2d_backward(grad_y, indices, (2, 3, 8, 8), 2),
                               rtol=4 * RTOL[dtype])
    assert got[0, 0, 0, 0] == pytest.approx(grad_y[0, 0].sum(), rel=4 * RTOL[dtype])


# ------------------------------------------------------------------ one fixed call per op
#
# Each op: inputs(rng, dtype) -> dict of array arguments, and call(module, arrays) -> tuple of
# outputs. Used by the layout, dtype and thread tests below.

# Sizes past the conv kernels' blocking: 7 output channels per group, 20 output columns.
X_SHAPE = (3, 4, 19, 21)
CONV = {"stride": (2, 1), "padding": (1, 0), "groups": 2}
CONV_Y_SHAPE = (3, 14, 10, 20)
POOL = {"kernel_size": 3, "stride": (2, 1), "padding": 1}
POOL_Y_SHAPE = (3, 4, 10, 21)


def _conv_inputs(rng, dtype):
    return {"x": rng.standard_normal(X_SHAPE).astype(dtype),
            "weight": rng.standard_normal((14, 2, 3, 2)).astype(dtype),
            "bias": rng.standard_normal(14).astype(dtype)}


def _conv_backward_inputs(rng, dtype):
    a = _conv_inputs(rng, dtype)
    del a["bias"]
    a["grad_y"] = rng.standard_normal(CONV_Y_SHAPE).astype(dtype)
    return a


def _pool_x(rng, dtype):
    return pool_values(rng, X_SHAPE, "nan", dtype)


def _max_backward_inputs(rng, dtype):
    _, indices = R.max_pool2d(_pool_x(rng, dtype), **POOL, return_indices=True)
    return {"grad_y": rng.standard_normal(indices.shape).astype(dtype), "indices": indices}


def _avg_backward_inputs(rng, dtype):
    return {"grad_y": rng.standard_normal(POOL_Y_SHAPE).astype(dtype)}


OPS = {
    "conv2d": (_conv_inputs,
               lambda m, a: (m.conv2d(a["x"], a["weight"], a["bias"], **CONV),)),
    "conv2d_backward": (_conv_backward_inputs,
                        lambda m, a: m.conv2d_backward(a["grad_y"], a["x"], a["weight"], **CONV)),
    "max_pool2d": (lambda rng, dtype: {"x": _pool_x(rng, dtype)},
                   lambda m, a: m.max_pool2d(a["x"], **POOL, return_indices=True)),
    "max_pool2d_backward": (_max_backward_inputs,
                            lambda m, a: (m.max_pool2d_backward(a["grad_y"], a["indices"],
                                                                X_SHAPE, **POOL),)),
    "avg_pool2d": (lambda rng, dtype: {"x": _pool_x(rng, dtype)},
                   lambda m, a: (m.avg_pool2d(a["x"], **POOL, count_include_pad=False),)),
    "avg_pool2d_backward": (_avg_backward_inputs,
                            lambda m, a: (m.avg_pool2d_backward(a["grad_y"], X_SHAPE,
                                                                **POOL),)),
}


def _inputs(op, dtype, seed=0):
    return OPS[op][0](np.random.default_rng(seed), dtype)


def _call(op, arrays, module=F):
    return OPS[op][1](module, arrays)


def _assert_outputs_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


# ------------------------------------------------------------------------------- layouts

def _sliced(a):
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _negative_stride(a):
    return a[..., ::-1].copy()[..., ::-1]


def _big_endian(a):
    return a.astype(a.dtype.newbyteorder(">"))


def _channels_last(a):
    """Same values, stored with axis 1 innermost (NHWC memory for an NCHW array)."""
    return np.moveaxis(np.ascontiguousarray(np.moveaxis(a, 1, -1)), -1, 1) if a.ndim > 1 else a


def _read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


LAYOUTS = {
    "sliced": _sliced,
    "fortran": np.asfortranarray,
    "channels_last": _channels_last,
    "negative_stride": _negative_stride,
    "big_endian": _big_endian,
    "read_only": _read_only,
}


def test_layout_helpers_make_the_layouts_they_name():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert not _sliced(a).flags.c_contiguous
    assert np.asfortranarray(a).flags.f_contiguous and not np.asfortranarray(a).flags.c_contiguous
    assert _negative_stride(a).strides[-1] < 0
    assert _channels_last(a).strides[1] == a.itemsize
    assert not _big_endian(a).dtype.isnative
    assert not _read_only(a).flags.writeable
    for make in LAYOUTS.values():
        np.testing.assert_array_equal(make(a), a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("op", OPS)
def test_input_layout_gives_same_result_as_contiguous_copy(op, layout, dtype):
    arrays = _inputs(op, dtype)
    laid_out = {k: LAYOUTS[layout](a) for k, a in arrays.items()}
    _assert_outputs_equal(_call(op, laid_out), _call(op, arrays))


@pytest.mark.parametrize("layout", ["contiguous", *LAYOUTS])
@pytest.mark.parametrize("op", OPS)
def test_inputs_are_not_modified(op, layout):
    arrays = _inputs(op, np.float32)
    if layout != "contiguous":
        arrays = {k: LAYOUTS[layout](a) for k, a in arrays.items()}
    before = {k: a.copy() for k, a in arrays.items()}
    _call(op, arrays)
    for k, a in arrays.items():
        np.testing.assert_array_equal(a, before[k], err_msg=f"{op} modified {k}")


@pytest.mark.parametrize("op", OPS)
def test_outputs_are_fresh_writable_arrays(op):
    arrays = _inputs(op, np.float32)
    for out in _call(op, arrays):
        assert out.flags.c_contiguous and out.flags.writeable and out.flags.owndata
        assert not any(np.shares_memory(out, a) for a in arrays.values())


# ---------------------------------------------------------------------------- dtype rules

CAST_DTYPES = [np.float16, np.int8, np.uint8, np.int32, np.int64, np.bool_]


def _as(arrays, dtype):
    """Float arguments converted to dtype (NaN to 0 first for integer types); indices stay."""
    def convert(a):
        return a.astype(dtype) if np.dtype(dtype).kind == "f" else np.nan_to_num(a).astype(dtype)
    return {k: (a if k == "indices" else convert(a)) for k, a in arrays.items()}


def _float_outputs(outs):
    return [o for o in outs if o.dtype.kind == "f"]


@pytest.mark.parametrize("dtype", CAST_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_float16_int_bool_inputs_give_float32_result(op, dtype):
    outs = _call(op, _as(_inputs(op, np.float64), dtype))
    assert [o.dtype for o in _float_outputs(outs)] == [np.float32] * len(_float_outputs(outs))


@pytest.mark.parametrize("dtype", CAST_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_float16_int_bool_inputs_compute_like_their_float32_cast(op, dtype):
    arrays = _as(_inputs(op, np.float64), dtype)
    _assert_outputs_equal(_call(op, arrays), _call(op, _as(arrays, np.float32)))


def test_conv2d_int_input_with_float64_weight_gives_float64():
    a = _inputs("conv2d", np.float64)
    y = F.conv2d(a["x"].astype(np.int32), a["weight"], a["bias"], **CONV)
    assert y.dtype == np.float64


def test_conv2d_int_input_with_float64_weight_computes_in_float64():
    a = _inputs("conv2d", np.float64)
    x = (a["x"] * 4).astype(np.int32)
    np.testing.assert_array_equal(F.conv2d(x, a["weight"], a["bias"], **CONV),
                                  F.conv2d(x.astype(np.float64), a["weight"], a["bias"], **CONV))


def test_conv2d_backward_int_grad_and_input_with_float64_weight_give_float64():
    a = _inputs("conv2d_backward", np.float64)
    outs = F.conv2d_backward(a["grad_y"].astype(np.int8), a["x"].astype(np.int8), a["weight"],
                             **CONV)
    assert [o.dtype for o in outs] == [np.float64] * 3


MIXED = {
    "conv2d_float32_x_float64_weight":
        lambda a: F.conv2d(a["x"], a["weight"].astype(np.float64), **CONV),
    "conv2d_float64_x_float32_weight":
        lambda a: F.conv2d(a["x"].astype(np.float64), a["weight"], **CONV),
    "conv2d_float64_bias":
        lambda a: F.conv2d(a["x"], a["weight"], a["bias"].astype(np.float64), **CONV),
    "conv2d_backward_float64_grad_y":
        lambda a: F.conv2d_backward(np.zeros(CONV_Y_SHAPE), a["x"], a["weight"], **CONV),
}


@pytest.mark.parametrize("case", MIXED)
def test_mixing_float32_and_float64_raises_type_error(case):
    with pytest.raises(TypeError, match="same float dtype"):
        MIXED[case](_inputs("conv2d", np.float32))


BAD_DTYPES = [np.complex64, np.complex128, object, np.str_, np.bytes_, np.longdouble,
              "datetime64[s]"]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS)
def test_unsupported_dtype_raises_type_error(op, dtype):
    if np.dtype(dtype) == np.float64:
        pytest.skip("long double is float64 on this platform")
    arrays = _inputs(op, np.float32)
    name = next(k for k in arrays if k != "indices")
    arrays[name] = arrays[name].astype(dtype)
    with pytest.raises(TypeError, match="must be a float32 or float64 array"):
        _call(op, arrays)


# ----------------------------------------------------------------------------------- threads

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_one_and_two_threads_give_bit_identical_results(op, dtype, threads):
    arrays = _inputs(op, dtype, seed=7)
    threads(1)
    one = _call(op, arrays)
    threads(2)
    _assert_outputs_equal(_call(op, arrays), one)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((1, 4, 17, 32), (4, 1, 3, 3), {"groups": 4, "padding": 1}),  # 2 threads: a 1-row block
    ((4, 1, 33, 33), (6, 1, 5, 5), {}),  # data gradient, 6 channels into 1: a 3-row block
])
def test_row_tiles_give_the_same_bits_on_one_and_two_threads(x_shape, w_shape, kwargs, dtype,
                                                              threads, monkeypatch):
    """Where the threads' split leaves a block too few rows for row tiles, its rows take the
    tiles of positions, which must sum every output's terms in the row tiles' order."""
    monkeypatch.setattr(F, "_CONV_MACS_PER_THREAD", 1)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(R.conv2d(x, w, **kwargs).shape).astype(dtype)
    got = {}
    for n in (1, 2):
        threads(n)
        got[n] = F.conv2d(x, w, **kwargs), F.conv2d_backward(gy, x, w, **kwargs)[0]
    for one, two in zip(got[1], got[2]):
        np.testing.assert_array_equal(two, one)


@pytest.mark.parametrize("op", OPS)
def test_callers_denormal_mode_is_unchanged_after_a_call(op, num_threads):
    """The kernels may flush denormals to zero inside their threads, never in the caller's."""
    _call(op, _inputs(op, np.float32))
    tiny = np.array([1e-38], np.float32)
    assert (tiny * np.float32(0.01))[0] != 0


def test_set_num_threads_round_trips(threads):
    for n in (1, 3, 2, np.int64(4)):
        fastcnn.set_num_threads(n)
        assert fastcnn.get_num_threads() == n
        assert type(fastcnn.get_num_threads()) is int


@pytest.mark.parametrize("value, error", [(0, ValueError), (-1, ValueError), (2**31, ValueError),
                                          (1.5, TypeError), (True, TypeError), ("2", TypeError),
                                          (None, TypeError)], ids=repr)
def test_set_num_threads_rejects_bad_value(value, error, threads):
    with pytest.raises(error, match="set_num_threads"):
        fastcnn.set_num_threads(value)


def test_set_num_threads_bad_value_keeps_setting(threads):
    fastcnn.set_num_threads(2)
    with pytest.raises(ValueError):
        fastcnn.set_num_threads(0)
    assert fastcnn.get_num_threads() == 2


def test_default_num_threads_honours_omp_num_threads():
    if not fastcnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: always one thread")
    env = dict(os.environ, OMP_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", "import fastcnn; print(fastcnn.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "3"


# -------------------------------------------------------------------------------- build info

BUILD_INFO_KEYS = {"version", "openmp", "simd", "cpu_simd", "compiler", "num_threads", "numpy",
                   "python", "machine"}


def test_build_info_has_documented_keys():
    assert set(fastcnn.build_info()) == BUILD_INFO_KEYS


def test_build_info_values_have_documented_types(threads):
    threads(3)
    info = fastcnn.build_info()
    assert isinstance(info["openmp"], bool)
    assert info["version"] == fastcnn.__version__
    assert info["numpy"] == np.__version__
    assert info["num_threads"] == 3
    assert all(isinstance(info[k], str) and info[k]
               for k in ("simd", "cpu_simd", "compiler", "python", "machine"))


@pytest.mark.skipif(os.environ.get("FASTCNN_EXPECT_OPENMP") != "1",
                    reason="set FASTCNN_EXPECT_OPENMP=1 where the build must have OpenMP")
def test_build_has_openmp_where_expected():
    assert fastcnn.build_info()["openmp"] is True


@pytest.mark.parametrize("module", [F, R], ids=["fastcnn", "reference"])
def test_conv2d_backward_without_input_grad(module):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 3))
    gy = rng.standard_normal(R.conv2d(x, w, groups=2, padding=1).shape)
    full = module.conv2d_backward(gy, x, w, padding=1, groups=2)
    part = module.conv2d_backward(gy, x, w, padding=1, groups=2, input_grad=False)
    assert part[0] is None
    np.testing.assert_array_equal(part[1], full[1])
    np.testing.assert_array_equal(part[2], full[2])
    with pytest.raises(TypeError, match="input_grad must be a bool, got int 0"):
        module.conv2d_backward(gy, x, w, padding=1, groups=2, input_grad=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(padding="same", dilation=(1, 2)),  # pads the bottom only
                                dict(padding="same", dilation=(2, 1)),
                                dict(padding="same")])
def test_weight_gradient_with_bottom_or_right_padding_only_reads_no_other_image(
        wgrad_kernel, prepare, num_threads, kw, dtype):
    """'same' with an even kernel pads the bottom/right and not the top/left: the windows
    then reach past each image, and a kernel reading x in place read the next image there
    (the channels-last weight gradient gave [2, 1] where the answer is [2, 0])."""
    x = np.ones((2, 1, 1, 1), dtype)
    w = np.ones((1, 1, 2, 1), dtype) if kw.get("dilation") != (2, 1) else \
        np.ones((1, 1, 1, 2), dtype)
    gy = np.ones((2, 1, 1, 1), dtype)
    algorithm = wgrad_kernel | prepare
    got = F.conv2d_backward(gy, x, w, **kw, algorithm=algorithm)[1]
    np.testing.assert_array_equal(got, R.conv2d_backward(gy, x, w, **kw)[1])
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 5, 6)).astype(dtype)
    w = rng.standard_normal((4, 2, 2, 4)).astype(dtype)
    gy = rng.standard_normal(F.conv2d(x, w, **kw).shape).astype(dtype)
    magnitude = R.conv2d_backward(np.abs(gy), np.abs(x), w, **kw)[1]  # sums of |terms|
    assert_close(F.conv2d_backward(gy, x, w, **kw, algorithm=algorithm)[1],
                 R.conv2d_backward(gy, x, w, **kw)[1], dtype, magnitude=magnitude)


@pytest.mark.parametrize("algorithm, error, message", [
    ("rows", TypeError, "algorithm must be None or a dict, got str"),
    ({"tile": "rows"}, ValueError, "a key of algorithm must be one of"),
    ({"tiles": "row"}, ValueError, r"algorithm\['tiles'\] must be one of"),
    ({"wgrad": None}, ValueError, r"algorithm\['wgrad'\] must be one of"),
])
def test_conv2d_rejects_an_unknown_algorithm(algorithm, error, message):
    x, w = np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(error, match="conv2d: " + message):
        F.conv2d(x, w, algorithm=algorithm)
    with pytest.raises(error, match="conv2d_backward: " + message):
        F.conv2d_backward(np.ones((1, 1, 2, 2), np.float32), x, w, algorithm=algorithm)
