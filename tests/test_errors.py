"""Every documented misuse of `fastcnn.functional` raises ValueError or TypeError with a
message naming what was wrong.

Each case is (call, error, match): `call` gets a fresh set of valid arrays and changes one
thing; `match` is a key part of the message (usually what came). Dtype rules are tested in
test_functional.py.
"""
import numpy as np
import pytest

import fastcnn.functional as F

# Valid arguments every case starts from: conv with groups=2, pooling 3x3 with padding 1.
X = (2, 4, 8, 8)
W = (6, 2, 3, 3)  # K=6, C/groups=2
GY_CONV = (2, 6, 6, 6)
GY_POOL = (2, 4, 3, 3)  # max_pool2d(x, 3, padding=1) and avg_pool2d(x, 3, padding=1)


def x(shape=X):
    return np.zeros(shape, np.float32)


def w(shape=W):
    return np.zeros(shape, np.float32)


def conv(x_=None, w_=None, **kwargs):
    kwargs.setdefault("groups", 2)
    return F.conv2d(x() if x_ is None else x_, w() if w_ is None else w_, **kwargs)


def conv_back(gy=None, x_=None, w_=None, **kwargs):
    kwargs.setdefault("groups", 2)
    return F.conv2d_backward(x(GY_CONV) if gy is None else gy, x() if x_ is None else x_,
                             w() if w_ is None else w_, **kwargs)


def max_pool(x_=None, **kwargs):
    kwargs.setdefault("kernel_size", 3)
    kwargs.setdefault("padding", 1)
    return F.max_pool2d(x() if x_ is None else x_, **kwargs)


def max_back(gy=None, indices=None, input_shape=X, **kwargs):
    kwargs.setdefault("kernel_size", 3)
    kwargs.setdefault("padding", 1)
    return F.max_pool2d_backward(x(GY_POOL) if gy is None else gy,
                                 np.zeros(GY_POOL, np.int64) if indices is None else indices,
                                 input_shape, **kwargs)


def avg_pool(x_=None, **kwargs):
    kwargs.setdefault("kernel_size", 3)
    kwargs.setdefault("padding", 1)
    return F.avg_pool2d(x() if x_ is None else x_, **kwargs)


def avg_back(gy=None, input_shape=X, **kwargs):
    kwargs.setdefault("kernel_size", 3)
    kwargs.setdefault("padding", 1)
    return F.avg_pool2d_backward(x(GY_POOL) if gy is None else gy, input_shape, **kwargs)


@pytest.mark.parametrize("call", [conv, conv_back, max_pool, max_back, avg_pool, avg_back],
                         ids=lambda f: f.__name__)
def test_baseline_arguments_are_valid(call):
    """The starting point of the cases below runs, so each case fails for its own reason."""
    call()


def case(id_, call, error, match):
    return pytest.param(call, error, match, id=id_)


# ------------------------------------------------------------------------------ convolution

CONV_CASES = [
    # array ranks
    case("conv2d-x-3d", lambda: conv(x((4, 8, 8))), ValueError, "expects 4-D input"),
    case("conv2d-x-5d", lambda: conv(x((1, *X))), ValueError, "expects 4-D input"),
    case("conv2d-x-0d", lambda: conv(np.float32(1)), ValueError, "expects 4-D input"),
    case("conv2d-weight-2d", lambda: conv(w_=w((6, 18))), ValueError, "expects 4-D weight"),
    case("conv2d-weight-5d", lambda: conv(w_=w((1, *W))), ValueError, "expects 4-D weight"),
    # channels and groups
    case("conv2d-weight-channels-vs-groups", lambda: conv(w_=w((6, 4, 3, 3))), ValueError,
         "C/groups = 2"),
    case("conv2d-weight-channels-no-groups", lambda: conv(w_=w((6, 2, 3, 3)), groups=1),
         ValueError, "C/groups = 4"),
    case("conv2d-in-channels-not-divisible-by-groups", lambda: conv(w_=w((6, 1, 3, 3)), groups=3),
         ValueError, r"in_channels \(4\).*divisible by groups \(3\)"),
    case("conv2d-out-channels-not-divisible-by-groups", lambda: conv(w_=w((5, 2, 3, 3))),
         ValueError, r"out_channels \(5\).*divisible by groups \(2\)"),
    case("conv2d-zero-out-channels", lambda: conv(w_=w((0, 2, 3, 3))), ValueError,
         "non-zero sizes"),
    case("conv2d-zero-kernel-height", lambda: conv(w_=w((6, 2, 0, 3))), ValueError,
         "non-zero sizes"),
    case("conv2d-groups-0", lambda: conv(groups=0), ValueError, "groups must be >= 1"),
    case("conv2d-groups-negative", lambda: conv(groups=-2), ValueError, "groups must be >= 1"),
    case("conv2d-groups-float", lambda: conv(groups=2.0), TypeError, "groups must be an int"),
    case("conv2d-groups-str", lambda: conv(groups="2"), TypeError, "groups must be an int"),
    case("conv2d-groups-none", lambda: conv(groups=None), TypeError, "groups must be an int"),
    case("conv2d-groups-bool", lambda: conv(w_=w((6, 4, 3, 3)), groups=True), TypeError,
         "got bool"),
    # bias
    case("conv2d-bias-too-short", lambda: conv(bias=np.zeros(5, np.float32)), ValueError,
         r"bias must have shape \(6,\).*got \(5,\)"),
    case("conv2d-bias-too-long", lambda: conv(bias=np.zeros(7, np.float32)), ValueError,
         r"bias must have shape \(6,\)"),
    case("conv2d-bias-2d", lambda: conv(bias=np.zeros((6, 1), np.float32)), ValueError,
         r"bias must have shape \(6,\).*got \(6, 1\)"),
    case("conv2d-bias-scalar", lambda: conv(bias=np.float32(0)), ValueError,
         r"bias must have shape \(6,\)"),
    # kernel against the (padded) input
    case("conv2d-kernel-larger-than-input", lambda: conv(x((2, 4, 2, 8))), ValueError,
         r"larger than the padded input \(2, 8\)"),
    case("conv2d-kernel-larger-than-padded-input",
         lambda: conv(x((1, 4, 2, 2)), w((6, 2, 5, 5)), padding=1), ValueError,
         r"kernel size \(5, 5\).*larger than the padded input \(4, 4\)"),
    case("conv2d-dilated-kernel-larger-than-input", lambda: conv(x((1, 4, 4, 8)), dilation=2),
         ValueError, r"kernel size \(5, 5\) \(after dilation\)"),
    case("conv2d-valid-kernel-larger-than-input", lambda: conv(x((1, 4, 2, 2)), padding="valid"),
         ValueError, "larger than the padded input"),
    # stride, dilation, padding values
    case("conv2d-stride-0", lambda: conv(stride=0), ValueError, "stride must be >= 1"),
    case("conv2d-stride-negative", lambda: conv(stride=(1, -1)), ValueError,
         "stride must be >= 1"),
    case("conv2d-dilation-0", lambda: conv(dilation=0), ValueError, "dilation must be >= 1"),
    case("conv2d-dilation-negative", lambda: conv(dilation=(-1, 1)), ValueError,
         "dilation must be >= 1"),
    case("conv2d-padding-negative", lambda: conv(padding=-1), ValueError,
         "padding must be >= 0"),
    case("conv2d-padding-pair-negative", lambda: conv(padding=(0, -2)), ValueError,
         "padding must be >= 0"),
    # hyper-parameter types
    case("conv2d-stride-float", lambda: conv(stride=1.5), TypeError, "stride must be an int"),
    case("conv2d-stride-integral-float", lambda: conv(stride=2.0), TypeError,
         "stride must be an int"),
    case("conv2d-stride-str", lambda: conv(stride="2"), TypeError, "stride must be an int"),
    case("conv2d-stride-none", lambda: conv(stride=None), TypeError, "stride must be an int"),
    case("conv2d-stride-bool", lambda: conv(stride=True), TypeError, "stride must be an int"),
    case("conv2d-stride-pair-with-float", lambda: conv(stride=(1, 1.5)), TypeError,
         "stride must be an int"),
    case("conv2d-stride-pair-with-bool", lambda: conv(stride=(1, False)), TypeError, "got bool"),
    case("conv2d-dilation-float", lambda: conv(dilation=1.5), TypeError,
         "dilation must be an int"),
    case("conv2d-dilation-none", lambda: conv(dilation=None), TypeError,
         "dilation must be an int"),
    case("conv2d-padding-float", lambda: conv(padding=1.5), TypeError, "padding must be an int"),
    case("conv2d-padding-none", lambda: conv(padding=None), TypeError, "padding must be an int"),
    case("conv2d-padding-bool", lambda: conv(padding=True), TypeError, "got bool"),
    # pairs and padding strings
    case("conv2d-stride-triple", lambda: conv(stride=(1, 1, 1)), ValueError,
         "sequence of length 3"),
    case("conv2d-dilation-single", lambda: conv(dilation=[1]), ValueError,
         "sequence of length 1"),
    case("conv2d-padding-empty", lambda: conv(padding=()), ValueError, "sequence of length 0"),
    case("conv2d-padding-four-sides", lambda: conv(padding=(1, 1, 1, 1)), ValueError,
         "sequence of length 4"),
    case("conv2d-padding-unknown-string", lambda: conv(padding="full"), ValueError,
         "padding must be an int, a pair, 'valid' or 'same', got 'full'"),
    case("conv2d-padding-uppercase-string", lambda: conv(padding="SAME"), ValueError,
         "got 'SAME'"),
    case("conv2d-padding-digit-string", lambda: conv(padding="2"), ValueError, "got '2'"),
]

CONV_BACKWARD_CASES = [
    case("conv2d_backward-grad_y-3d", lambda: conv_back(x((6, 6, 6))), ValueError,
         r"grad_y must have shape \(2, 6, 6, 6\), got \(6, 6, 6\)"),
    case("conv2d_backward-grad_y-wrong-batch", lambda: conv_back(x((1, 6, 6, 6))), ValueError,
         r"grad_y must have shape \(2, 6, 6, 6\)"),
    case("conv2d_backward-grad_y-wrong-channels", lambda: conv_back(x((2, 4, 6, 6))), ValueError,
         r"grad_y must have shape \(2, 6, 6, 6\)"),
    case("conv2d_backward-grad_y-wrong-size", lambda: conv_back(x((2, 6, 8, 8))), ValueError,
         r"grad_y must have shape \(2, 6, 6, 6\), got \(2, 6, 8, 8\)"),
    case("conv2d_backward-grad_y-shape-ignores-stride", lambda: conv_back(stride=2), ValueError,
         r"grad_y must have shape \(2, 6, 3, 3\)"),
    case("conv2d_backward-x-3d", lambda: conv_back(x_=x((4, 8, 8))), ValueError,
         "expects 4-D input"),
    case("conv2d_backward-weight-3d", lambda: conv_back(w_=w((6, 2, 9))), ValueError,
         "expects 4-D weight"),
    case("conv2d_backward-channels-vs-groups", lambda: conv_back(groups=1), ValueError,
         "C/groups = 4"),
    case("conv2d_backward-stride-0", lambda: conv_back(stride=0), ValueError,
         "stride must be >= 1"),
    case("conv2d_backward-padding-bad-string", lambda: conv_back(padding="full"), ValueError,
         "got 'full'"),
    case("conv2d_backward-dilation-float", lambda: conv_back(dilation=1.5), TypeError,
         "dilation must be an int"),
]


# ---------------------------------------------------------------------------------- pooling

def _pool_hyper_cases(name, call, dilation=True):
    """Hyper-parameter misuse shared by max/avg pooling and their gradients."""
    cases = [
        case(f"{name}-kernel-0", lambda: call(kernel_size=0, padding=0), ValueError,
             "kernel_size must be >= 1"),
        case(f"{name}-kernel-negative", lambda: call(kernel_size=(3, -1), padding=0), ValueError,
             "kernel_size must be >= 1"),
        case(f"{name}-kernel-float", lambda: call(kernel_size=2.5), TypeError,
             "kernel_size must be an int"),
        case(f"{name}-kernel-str", lambda: call(kernel_size="3"), TypeError,
             "kernel_size must be an int"),
        case(f"{name}-kernel-none", lambda: call(kernel_size=None), TypeError,
             "kernel_size must be an int"),
        case(f"{name}-kernel-bool", lambda: call(kernel_size=True, padding=0), TypeError,
             "got bool"),
        case(f"{name}-kernel-triple", lambda: call(kernel_size=(3, 3, 3)), ValueError,
             "sequence of length 3"),
        case(f"{name}-stride-0", lambda: call(stride=0), ValueError, "stride must be >= 1"),
        case(f"{name}-stride-negative", lambda: call(stride=(-1, 2)), ValueError,
             "stride must be >= 1"),
        case(f"{name}-stride-float", lambda: call(stride=1.5), TypeError,
             "stride must be an int"),
        case(f"{name}-stride-str", lambda: call(stride="2"), TypeError, "stride must be an int"),
        case(f"{name}-stride-bool", lambda: call(stride=True), TypeError, "got bool"),
        case(f"{name}-stride-single", lambda: call(stride=[2]), ValueError,
             "sequence of length 1"),
        case(f"{name}-padding-negative", lambda: call(padding=-1), ValueError,
             "padding must be >= 0"),
        case(f"{name}-padding-float", lambda: call(padding=0.5), TypeError,
             "padding must be an int"),
        case(f"{name}-padding-none", lambda: call(padding=None), TypeError,
             "padding must be an int"),
        case(f"{name}-padding-string", lambda: call(padding="same"), TypeError,
             "padding must be an int"),
        case(f"{name}-padding-more-than-half-kernel", lambda: call(padding=2), ValueError,
             r"at most half the kernel size \(3, 3\), got padding \(2, 2\)"),
        case(f"{name}-padding-more-than-half-even-kernel",
             lambda: call(kernel_size=(3, 2), padding=(1, 2)), ValueError,
             "at most half the kernel size"),
        case(f"{name}-output-smaller-than-1",
             lambda: call(kernel_size=9, padding=0), ValueError,
             r"output size \(0, 0\) is too small"),
        case(f"{name}-output-smaller-than-1-one-axis",
             lambda: call(kernel_size=(2, 9), padding=0), ValueError,
             r"output size \(4, 0\) is too small"),
        case(f"{name}-ceil_mode-int", lambda: call(ceil_mode=1), TypeError,
             "ceil_mode must be a bool"),
        case(f"{name}-ceil_mode-none", lambda: call(ceil_mode=None), TypeError,
             "ceil_mode must be a bool"),
        case(f"{name}-ceil_mode-str", lambda: call(ceil_mode="True"), TypeError,
             "ceil_mode must be a bool"),
    ]
    if dilation:
        cases += [
            case(f"{name}-dilation-0", lambda: call(dilation=0), ValueError,
                 "dilation must be >= 1"),
            case(f"{name}-dilation-float", lambda: call(dilation=1.0), TypeError,
                 "dilation must be an int"),
            case(f"{name}-dilation-bool", lambda: call(dilation=True), TypeError, "got bool"),
        ]
    return cases


# A dilated window can step over a narrow input: width 2, kernel 2 with dilation 3 and padding 1
# has its taps at -1 and 2, both outside (PyTorch returns -inf there and writes out of bounds
# in its backward; fastcnn refuses).
MISSING_WINDOW = {"kernel_size": 2, "padding": (0, 1), "dilation": (1, 3)}


MAX_POOL_CASES = [
    case("max_pool2d-x-3d", lambda: max_pool(x((4, 8, 8))), ValueError, "expects 4-D input"),
    case("max_pool2d-x-5d", lambda: max_pool(x((1, *X))), ValueError, "expects 4-D input"),
    case("max_pool2d-return_indices-int", lambda: max_pool(return_indices=1), TypeError,
         "return_indices must be a bool"),
    case("max_pool2d-return_indices-none", lambda: max_pool(return_indices=None), TypeError,
         "return_indices must be a bool"),
    *_pool_hyper_cases("max_pool2d", max_pool),
    case("max_pool2d-dilated-window-misses-input",
         lambda: max_pool(x((2, 4, 8, 2)), **MISSING_WINDOW), ValueError,
         "pooling window 0 along W holds no input element"),
]

MAX_BACKWARD_CASES = [
    case("max_pool2d_backward-grad_y-3d", lambda: max_back(x((4, 3, 3))), ValueError,
         r"grad_y must have shape \(2, 4, 3, 3\), got \(4, 3, 3\)"),
    case("max_pool2d_backward-grad_y-wrong-shape", lambda: max_back(x((2, 4, 4, 4))), ValueError,
         r"grad_y must have shape \(2, 4, 3, 3\), got \(2, 4, 4, 4\)"),
    case("max_pool2d_backward-indices-wrong-shape",
         lambda: max_back(indices=np.zeros((2, 4, 3, 4), np.int64)), ValueError,
         r"indices must have shape \(2, 4, 3, 3\), got \(2, 4, 3, 4\)"),
    case("max_pool2d_backward-indices-3d", lambda: max_back(indices=np.zeros((4, 3, 3), int)),
         ValueError, r"indices must have shape \(2, 4, 3, 3\)"),
    case("max_pool2d_backward-indices-float",
         lambda: max_back(indices=np.zeros(GY_POOL, np.float64)), TypeError,
         "indices must be an integer array, got dtype float64"),
    case("max_pool2d_backward-indices-float32",
         lambda: max_back(indices=np.zeros(GY_POOL, np.float32)), TypeError,
         "indices must be an integer array"),
    case("max_pool2d_backward-indices-bool", lambda: max_back(indices=np.zeros(GY_POOL, bool)),
         TypeError, "indices must be an integer array"),
    case("max_pool2d_backward-indices-negative",
         lambda: max_back(indices=np.full(GY_POOL, -1, np.int64)), ValueError,
         r"indices must lie in \[0, H\*W\) = \[0, 64\), got values in \[-1, -1\]"),
    case("max_pool2d_backward-indices-one-past-plane",
         lambda: max_back(indices=np.full(GY_POOL, 64, np.int64)), ValueError,
         r"got values in \[64, 64\]"),
    case("max_pool2d_backward-indices-huge-unsigned",
         lambda: max_back(indices=np.full(GY_POOL, 2**63, np.uint64)), ValueError,
         r"indices must lie in \[0, H\*W\)"),
    case("max_pool2d_backward-input_shape-3-tuple", lambda: max_back(input_shape=(4, 8, 8)),
         ValueError, r"input_shape must be a 4-tuple of sizes, got \(4, 8, 8\)"),
    case("max_pool2d_backward-input_shape-5-tuple", lambda: max_back(input_shape=(1, *X)),
         ValueError, "input_shape must be a 4-tuple"),
    case("max_pool2d_backward-input_shape-int", lambda: max_back(input_shape=8), ValueError,
         "input_shape must be a 4-tuple"),
    case("max_pool2d_backward-input_shape-none", lambda: max_back(input_shape=None), ValueError,
         "input_shape must be a 4-tuple"),
    case("max_pool2d_backward-input_shape-float-size",
         lambda: max_back(input_shape=(2, 4, 8.0, 8)), TypeError,
         "input_shape must hold ints, got float 8.0"),
    case("max_pool2d_backward-input_shape-negative",
         lambda: max_back(input_shape=(2, -4, 8, 8)), ValueError, "negative sizes"),
    case("max_pool2d_backward-input_shape-mismatch-grad_y",
         lambda: max_back(input_shape=(2, 4, 10, 10)), ValueError,
         r"grad_y must have shape \(2, 4, 4, 4\)"),
    *_pool_hyper_cases("max_pool2d_backward", max_back),
    case("max_pool2d_backward-dilated-window-misses-input",
         lambda: max_back(x((2, 4, 4, 1)), np.zeros((2, 4, 4, 1), np.int64), (2, 4, 8, 2),
                          **MISSING_WINDOW), ValueError,
         "pooling window 0 along W holds no input element"),
]

AVG_POOL_CASES = [
    case("avg_pool2d-x-3d", lambda: avg_pool(x((4, 8, 8))), ValueError, "expects 4-D input"),
    case("avg_pool2d-x-5d", lambda: avg_pool(x((1, *X))), ValueError, "expects 4-D input"),
    case("avg_pool2d-count_include_pad-int", lambda: avg_pool(count_include_pad=0), TypeError,
         "count_include_pad must be a bool"),
    case("avg_pool2d-count_include_pad-none", lambda: avg_pool(count_include_pad=None),
         TypeError, "count_include_pad must be a bool"),
    *_pool_hyper_cases("avg_pool2d", avg_pool, dilation=False),
]

AVG_BACKWARD_CASES = [
    case("avg_pool2d_backward-grad_y-3d", lambda: avg_back(x((4, 3, 3))), ValueError,
         r"grad_y must have shape \(2, 4, 3, 3\), got \(4, 3, 3\)"),
    case("avg_pool2d_backward-grad_y-wrong-shape", lambda: avg_back(x((2, 4, 3, 2))), ValueError,
         r"grad_y must have shape \(2, 4, 3, 3\), got \(2, 4, 3, 2\)"),
    case("avg_pool2d_backward-input_shape-3-tuple", lambda: avg_back(input_shape=(4, 8, 8)),
         ValueError, "input_shape must be a 4-tuple"),
    case("avg_pool2d_backward-input_shape-str", lambda: avg_back(input_shape="2488"), ValueError,
         "input_shape must be a 4-tuple"),
    case("avg_pool2d_backward-input_shape-negative", lambda: avg_back(input_shape=(-2, 4, 8, 8)),
         ValueError, "negative sizes"),
    case("avg_pool2d_backward-count_include_pad-int", lambda: avg_back(count_include_pad=1),
         TypeError, "count_include_pad must be a bool"),
    *_pool_hyper_cases("avg_pool2d_backward", avg_back, dilation=False),
]


@pytest.mark.parametrize("call, error, match", CONV_CASES + CONV_BACKWARD_CASES)
def test_bad_convolution_argument_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("call, error, match", MAX_POOL_CASES + MAX_BACKWARD_CASES)
def test_bad_max_pool_argument_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("call, error, match", AVG_POOL_CASES + AVG_BACKWARD_CASES)
def test_bad_avg_pool_argument_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("fname, call", [
    ("conv2d", lambda: conv(x((2, 4, 2, 8)))),
    ("conv2d_backward", lambda: conv_back(x((1, 6, 6, 6)))),
    ("max_pool2d", lambda: max_pool(kernel_size=9, padding=0)),
    ("max_pool2d_backward", lambda: max_back(indices=np.full(GY_POOL, 64))),
    ("avg_pool2d", lambda: avg_pool(padding=2)),
    ("avg_pool2d_backward", lambda: avg_back(input_shape=(4, 8, 8))),
])
def test_error_message_starts_with_the_function_name(fname, call):
    with pytest.raises(ValueError, match=f"^{fname}[: ]"):
        call()
