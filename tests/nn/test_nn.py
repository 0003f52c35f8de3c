"""Tests for fastcnn.nn: gradients against finite differences, state dicts, configs, dtypes,
argument errors and summary. Comparisons with PyTorch live in test_nn_torch.py."""
import json

import numpy as np
import pytest

from fastcnn import nn, optim
from fastcnn.nn import init
from harness import FD_ATOL, FD_RTOL, numeric_grad


def distinct(shape, seed=0):
    """Values spaced at least 0.01 apart, so a max or a kink never flips under eps."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(np.prod(shape)).reshape(shape) - np.prod(shape) / 2) * 0.01 + 0.005


def check_gradients(layer, x, seed=0):
    """backward's input and parameter gradients match finite differences of sum(y * w)."""
    layer.astype(np.float64)
    x = np.array(x, dtype=np.float64)
    y = layer(x)
    w = np.random.default_rng(seed).standard_normal(y.shape)
    layer.zero_grad()
    grad_x = layer.backward(w)
    analytic = {name: p.grad.copy() for name, p in layer.named_parameters()}

    def f():
        return float((layer(x) * w).sum())

    np.testing.assert_allclose(grad_x, numeric_grad(f, x), rtol=FD_RTOL, atol=FD_ATOL)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(analytic[name], numeric_grad(f, p.data), rtol=FD_RTOL,
                                   atol=FD_ATOL, err_msg=name)


# ------------------------------------------------------------------------ gradients

GRAD_CASES = {
    "conv": (lambda: nn.Conv2d(3, 4, 3, rng=0), (2, 3, 6, 5)),
    "conv_stride_pad_groups": (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, rng=0),
                               (2, 4, 7, 6)),
    "conv_dilation_same_nobias": (lambda: nn.Conv2d(3, 4, (3, 2), padding="same", dilation=2,
                                                    bias=False, rng=0), (1, 3, 7, 6)),
    "conv_same_stride2": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding="same", rng=0),
                          (1, 2, 6, 7)),
    "maxpool": (lambda: nn.MaxPool2d(2), (2, 3, 6, 6)),
    "maxpool_pad_ceil": (lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
                         (2, 2, 6, 7)),
    "maxpool_dilation": (lambda: nn.MaxPool2d(2, stride=1, dilation=2), (1, 2, 5, 6)),
    "avgpool": (lambda: nn.AvgPool2d(2), (2, 3, 6, 6)),
    "avgpool_pad_ceil_exclude": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True,
                                                      count_include_pad=False), (2, 2, 6, 7)),
    "relu": (lambda: nn.ReLU(), (3, 4, 5)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), (3, 4, 5)),
    "sigmoid": (lambda: nn.Sigmoid(), (3, 4, 5)),
    "tanh": (lambda: nn.Tanh(), (3, 4, 5)),
    "softmax": (lambda: nn.Softmax(dim=1), (3, 4, 5)),
    "softmax_last": (lambda: nn.Softmax(dim=-1), (3, 4, 5)),
    "flatten": (lambda: nn.Flatten(), (2, 3, 2, 2)),
    "flatten_middle": (lambda: nn.Flatten(1, 2), (2, 3, 2, 2)),
    "linear": (lambda: nn.Linear(5, 3, rng=0), (4, 5)),
    "linear_3d": (lambda: nn.Linear(5, 3, bias=False, rng=0), (2, 3, 5)),
    "batchnorm_train": (lambda: nn.BatchNorm2d(3), (4, 3, 3, 2)),
    "batchnorm_no_affine": (lambda: nn.BatchNorm2d(3, affine=False), (4, 3, 3, 2)),
    "batchnorm_no_running_stats_eval": (
        lambda: nn.BatchNorm2d(3, track_running_stats=False).eval(), (4, 3, 3, 2)),
    "sequential": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=0),
                                         nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                                         nn.Flatten(), nn.Linear(12, 4, rng=1), nn.Tanh()),
                   (3, 2, 4, 4)),
}


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_backward_matches_finite_differences(case, threads):
    threads(1)  # hundreds of tiny kernel calls: thread start-up would dominate
    make, shape = GRAD_CASES[case]
    check_gradients(make(), distinct(shape))


def test_batchnorm_eval_backward_matches_finite_differences():
    bn = nn.BatchNorm2d(3).astype(np.float64)
    for seed in range(3):
        bn(np.random.default_rng(seed).normal(2, 3, (4, 3, 3, 2)))
    bn.weight.data[:] = [0.5, -1.0, 2.0]
    bn.bias.data[:] = [0.1, 0.2, 0.3]
    check_gradients(bn.eval(), distinct((2, 3, 3, 2)))


def test_cross_entropy_backward_matches_finite_differences():
    for smoothing in (0.0, 0.2):
        for reduction in ("mean", "sum"):
            loss_fn = nn.CrossEntropyLoss(label_smoothing=smoothing, reduction=reduction)
            logits = np.random.default_rng(0).standard_normal((5, 4))
            target = np.array([0, 3, 1, 1, 2])
            loss_fn(logits, target)
            grad = loss_fn.backward()
            np.testing.assert_allclose(
                grad, numeric_grad(lambda: loss_fn(logits, target), logits), rtol=FD_RTOL,
                atol=1e-9)


def test_cross_entropy_none_backward_is_gradient_of_the_sum():
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    logits = np.random.default_rng(0).standard_normal((3, 4))
    target = np.array([0, 3, 1])
    assert loss_fn(logits, target).shape == (3,)
    grad = loss_fn.backward()
    np.testing.assert_allclose(
        grad, numeric_grad(lambda: loss_fn(logits, target).sum(), logits), rtol=FD_RTOL)


def test_mse_backward_matches_finite_differences():
    for reduction in ("mean", "sum"):
        loss_fn = nn.MSELoss(reduction=reduction)
        x, t = np.random.default_rng(0).standard_normal((2, 3, 4))
        loss_fn(x, t)
        grad = loss_fn.backward()
        np.testing.assert_allclose(grad, numeric_grad(lambda: loss_fn(x, t), x), rtol=FD_RTOL)


def test_cross_entropy_is_stable_for_huge_logits():
    loss = nn.CrossEntropyLoss()(np.array([[1e4, 0.0], [0.0, 1e4]]), np.array([0, 0]))
    assert loss == pytest.approx(5e3)


def test_sigmoid_does_not_overflow():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = nn.Sigmoid()(np.array([-1e4, 0.0, 1e4]))
    np.testing.assert_array_equal(y, [0.0, 0.5, 1.0])


def test_dropout_backward_uses_the_forward_mask():
    drop = nn.Dropout(0.3, rng=0)
    x = distinct((4, 50)) + 10
    y = drop(x)
    g = np.random.default_rng(1).standard_normal(x.shape)
    np.testing.assert_allclose(drop.backward(g), g * (y / x.astype(np.float32)), rtol=1e-6)


def test_dropout_drops_about_p_and_scales_the_rest():
    y = nn.Dropout(0.25, rng=0)(np.ones((100, 100)))
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / 0.75, rtol=1e-6)


def test_dropout_same_seed_same_mask():
    x = np.ones((10, 10))
    np.testing.assert_array_equal(nn.Dropout(rng=3)(x), nn.Dropout(rng=3)(x))


def test_dropout_is_identity_in_eval_mode():
    drop = nn.Dropout(0.5, rng=0).eval()
    x = np.arange(6.0, dtype=np.float32)
    np.testing.assert_array_equal(drop(x), x)
    np.testing.assert_array_equal(drop.backward(x), x)


# ------------------------------------------------------------------------ parameters

def test_grad_is_none_until_backward_and_accumulates():
    layer = nn.Linear(3, 2, rng=0)
    assert all(p.grad is None for p in layer.parameters())
    x, g = np.ones((4, 3)), np.ones((4, 2))
    layer(x)
    layer.backward(g)
    once = layer.weight.grad.copy()
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once)


def test_zero_grad_resets_to_none():
    layer = nn.Linear(3, 2, rng=0)
    layer(np.ones((1, 3)))
    layer.backward(np.ones((1, 2)))
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_named_parameters_use_pytorch_names():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.BatchNorm2d(2), nn.ReLU()))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.0.weight",
                                                        "1.0.bias"]
    assert [n for n, _ in model.named_buffers()] == ["1.0.running_mean", "1.0.running_var",
                                                     "1.0.num_batches_tracked"]


def test_train_and_eval_reach_every_submodule():
    model = nn.Sequential(nn.Dropout(), nn.Sequential(nn.BatchNorm2d(2)))
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_backward_before_forward_is_runtime_error():
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.Conv2d(1, 1, 1).backward(np.ones((1, 1, 1, 1)))


def test_loss_backward_before_call_is_runtime_error():
    with pytest.raises(RuntimeError, match="backward called before"):
        nn.MSELoss().backward()


def test_conv_and_linear_default_init_like_pytorch():
    conv = nn.Conv2d(4, 8, 3, groups=2, rng=0)
    bound = 1 / np.sqrt(2 * 9)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.bias.data).max() <= bound
    assert np.abs(conv.weight.data).max() > 0.9 * bound
    linear = nn.Linear(16, 4, rng=np.random.default_rng(0))
    assert np.abs(linear.weight.data).max() <= 0.25 and np.abs(linear.bias.data).max() <= 0.25


def test_same_seed_same_weights():
    np.testing.assert_array_equal(nn.Conv2d(3, 4, 3, rng=7).weight.data,
                                  nn.Conv2d(3, 4, 3, rng=7).weight.data)


# ------------------------------------------------------------------------ init

def test_init_uses_only_the_given_rng():
    a = init.uniform_(np.empty(5), -1, 2, rng=4)
    np.testing.assert_array_equal(a, np.random.default_rng(4).uniform(-1, 2, 5))


def test_init_fills_in_place_and_returns_its_argument():
    a = np.empty((3, 4), np.float32)
    assert init.zeros_(a) is a and not a.any()
    p = nn.Parameter(np.empty((3, 4), np.float32))
    assert init.ones_(p) is p and (p.data == 1).all()


def test_kaiming_uniform_bound():
    a = init.kaiming_uniform_(np.empty((64, 8, 3, 3)), mode="fan_out", nonlinearity="relu",
                              rng=0)
    bound = np.sqrt(2) * np.sqrt(3 / (64 * 9))
    assert bound * 0.99 < np.abs(a).max() <= bound


@pytest.mark.parametrize("fill, std", [
    (lambda a: init.kaiming_normal_(a, nonlinearity="relu", rng=0), np.sqrt(2 / 200)),
    (lambda a: init.xavier_normal_(a, rng=0), np.sqrt(2 / 300)),
    (lambda a: init.xavier_uniform_(a, gain=2.0, rng=0), 2 * np.sqrt(2 / 300)),
    (lambda a: init.normal_(a, 1.0, 0.5, rng=0), 0.5),
])
def test_init_standard_deviation(fill, std):
    a = fill(np.empty((100, 200)))
    assert a.std() == pytest.approx(std, rel=0.02)


def test_init_rejects_bad_arguments():
    with pytest.raises(TypeError, match="rng"):
        init.normal_(np.empty(3), rng="seed")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(np.empty(3))
    with pytest.raises(TypeError, match="float NumPy array"):
        init.zeros_(np.empty(3, np.int64))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(np.empty((2, 2)), mode="fan_avg")


# ------------------------------------------------------------------------ state dict

def small_model(seed=0):
    return nn.Sequential(nn.Conv2d(2, 3, 3, rng=seed), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(12, 2, rng=seed + 1))


def test_state_dict_keys_follow_pytorch():
    assert list(small_model().state_dict()) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "1.num_batches_tracked", "4.weight", "4.bias"]


def test_state_dict_round_trip_gives_the_same_outputs():
    a, b = small_model(0), small_model(10)
    x = np.random.default_rng(0).standard_normal((5, 2, 4, 4))
    a(x)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x), b(x))
    assert int(b[1].num_batches_tracked) == 1


def test_state_dict_returns_copies():
    model = small_model()
    sd = model.state_dict()
    sd["0.weight"][...] = 0
    assert model[0].weight.data.any()


def test_load_state_dict_shape_mismatch_names_key_and_shapes():
    sd = small_model().state_dict()
    sd["4.weight"] = np.zeros((2, 13))
    with pytest.raises(ValueError, match=r"'4.weight' expects shape \(2, 12\), got \(2, 13\)"):
        small_model().load_state_dict(sd)


def test_load_state_dict_failure_changes_nothing():
    model = small_model()
    before = model.state_dict()
    sd = small_model(5).state_dict()
    sd["4.bias"] = np.zeros(3)
    with pytest.raises(ValueError):
        model.load_state_dict(sd)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_strict_missing_and_unexpected_keys():
    sd = small_model().state_dict()
    del sd["0.bias"]
    sd["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['0.bias'\], unexpected keys \['extra'\]"):
        small_model().load_state_dict(sd)
    result = small_model().load_state_dict(sd, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["extra"]


def test_load_state_dict_casts_to_the_model_dtype():
    model = nn.Linear(2, 2)
    model.load_state_dict({"weight": np.eye(2, dtype=np.float64), "bias": np.zeros(2, int)})
    assert model.weight.dtype == np.float32
    np.testing.assert_array_equal(model.weight.data, np.eye(2))


# ------------------------------------------------------------------------ config

ALL_LAYERS = [
    nn.Conv2d(4, 6, (3, 1), stride=2, padding="same", dilation=(1, 2), groups=2, bias=False),
    nn.MaxPool2d(3, 2, 1, dilation=1, ceil_mode=True),
    nn.AvgPool2d(2, count_include_pad=False),
    nn.ReLU(), nn.LeakyReLU(0.3), nn.Sigmoid(), nn.Tanh(), nn.Softmax(dim=-1),
    nn.Flatten(2, 3), nn.Linear(5, 7, bias=False), nn.Dropout(0.1),
    nn.BatchNorm2d(4, eps=1e-3, momentum=None, affine=False, track_running_stats=False),
    nn.CrossEntropyLoss(label_smoothing=0.1, reduction="sum"), nn.MSELoss(reduction="none"),
]


@pytest.mark.parametrize("layer", ALL_LAYERS, ids=lambda m: type(m).__name__)
def test_config_json_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    rebuilt = nn.from_config(config)
    assert type(rebuilt) is type(layer)
    assert repr(rebuilt) == repr(layer)
    assert rebuilt.get_config() == config


def test_from_config_rebuilds_a_model_that_loads_its_weights():
    model = small_model()
    rebuilt = nn.from_config(json.loads(json.dumps(model.get_config())))
    rebuilt.load_state_dict(model.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4))
    np.testing.assert_array_equal(rebuilt.eval()(x), model.eval()(x))


def test_from_config_unknown_class_is_value_error():
    with pytest.raises(ValueError, match="unknown class 'Conv3d'"):
        nn.from_config({"class": "Conv3d", "config": {}})


def test_from_config_malformed_is_value_error():
    with pytest.raises(ValueError, match="keys 'class' and 'config'"):
        nn.from_config({"layers": []})
    with pytest.raises(ValueError, match="Sequential config must be"):
        nn.from_config({"class": "Sequential", "config": {"layer": []}})


def test_register_refuses_a_second_class_under_a_taken_name():
    with pytest.raises(ValueError, match="already taken"):
        nn.register(type("ReLU", (nn.Module,), {}))


# ------------------------------------------------------------------------ dtypes

def test_model_is_float32_by_default_and_converts_inputs():
    model = small_model()
    assert model.dtype == np.float32
    assert model(np.zeros((2, 2, 4, 4), np.float64)).dtype == np.float32
    assert model(np.zeros((2, 2, 4, 4), np.int64)).dtype == np.float32


def test_astype_float64_converts_parameters_and_float_buffers():
    model = small_model()
    assert model.astype(np.float64) is model
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model[1].running_mean.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64
    assert model(np.zeros((2, 2, 4, 4), np.float32)).dtype == np.float64


def test_astype_rejects_non_float_dtypes():
    with pytest.raises(TypeError, match="float32 or float64"):
        small_model().astype(np.int32)


def test_non_numeric_input_is_type_error():
    with pytest.raises(TypeError, match="numeric array"):
        nn.ReLU()(np.array(["a"]))


# ------------------------------------------------------------------------ errors

BAD_ARGS = [
    (lambda: nn.Conv2d(3, 8, 3, groups=2), ValueError, "divisible by groups"),
    (lambda: nn.Conv2d(0, 8, 3), ValueError, "in_channels must be >= 1"),
    (lambda: nn.Conv2d(3.0, 8, 3), TypeError, "in_channels must be an int"),
    (lambda: nn.Conv2d(3, 8, 0), ValueError, "kernel_size must be >= 1"),
    (lambda: nn.Conv2d(3, 8, 3, padding="full"), ValueError, "'valid' or 'same'"),
    (lambda: nn.Conv2d(3, 8, 3, bias=1), TypeError, "bias must be a bool"),
    (lambda: nn.Conv2d(3, 8, 3, rng="x"), TypeError, "rng"),
    (lambda: nn.MaxPool2d(2, padding=2), ValueError, "at most half the kernel"),
    (lambda: nn.AvgPool2d(2, stride=0), ValueError, "stride must be >= 1"),
    (lambda: nn.Dropout(1.0), ValueError, r"p must be in \[0.0, 1.0\)"),
    (lambda: nn.Dropout(-0.1), ValueError, "p must be in"),
    (lambda: nn.Dropout("half"), TypeError, "p must be a number"),
    (lambda: nn.BatchNorm2d(0), ValueError, "num_features must be >= 1"),
    (lambda: nn.BatchNorm2d(3, momentum=1.5), ValueError, "momentum"),
    (lambda: nn.BatchNorm2d(3, eps=-1), ValueError, "eps"),
    (lambda: nn.Linear(0, 3), ValueError, "in_features must be >= 1"),
    (lambda: nn.LeakyReLU("x"), TypeError, "negative_slope must be a number"),
    (lambda: nn.Softmax(dim=1.5), TypeError, "dim must be an int"),
    (lambda: nn.CrossEntropyLoss(label_smoothing=1.5), ValueError, "label_smoothing"),
    (lambda: nn.MSELoss(reduction="avg"), ValueError, "reduction must be one of"),
    (lambda: nn.Sequential(np.zeros(3)), TypeError, "must be Modules"),
]


@pytest.mark.parametrize("make, error, message", BAD_ARGS,
                         ids=[f"bad{i}" for i in range(len(BAD_ARGS))])
def test_bad_constructor_argument(make, error, message):
    with pytest.raises(error, match=message):
        make()


BAD_INPUTS = [
    (nn.Conv2d(3, 8, 3), (1, 2, 5, 5),
     r"Conv2d\(3, 8, kernel_size=\(3, 3\), stride=\(1, 1\)\) expects input \(N, 3, H, W\) "
     r"with 3 channels, got shape \(1, 2, 5, 5\)"),
    (nn.Conv2d(3, 8, 3), (3, 5, 5), r"got shape \(3, 5, 5\)"),
    (nn.BatchNorm2d(4), (2, 3, 2, 2), r"expects input \(N, 4, H, W\)"),
    (nn.Linear(4, 2), (3, 5), r"expects input \(\*, 4\), got shape \(3, 5\)"),
    (nn.MaxPool2d(2), (1, 4, 4), "expects 4-D input"),
    (nn.AvgPool2d(2), (1, 1, 4, 4, 1), "expects 4-D input"),
    (nn.Softmax(dim=2), (3, 4), r"dim must be in \[-2, 2\) for a 2-D input"),
    (nn.Flatten(2), (3, 4), "axes"),
    (nn.BatchNorm2d(2), (1, 2, 1, 1), "more than 1 value per channel"),
]


@pytest.mark.parametrize("layer, shape, message", BAD_INPUTS,
                         ids=[f"input{i}" for i in range(len(BAD_INPUTS))])
def test_bad_input_shape_is_value_error(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer(np.zeros(shape))


@pytest.mark.parametrize("target, error, message", [
    (np.array([0, 4]), ValueError, r"labels in \[0, 4\), got values in \[0, 4\]"),
    (np.array([-1, 0]), ValueError, "labels in"),
    (np.array([0, 1, 2]), ValueError, r"target of shape \(2,\)"),
    (np.array([[0], [1]]), ValueError, r"target of shape \(2,\)"),
    (np.array([0.0, 1.0]), TypeError, "integer class labels"),
    (np.array([True, False]), TypeError, "integer class labels"),
])
def test_cross_entropy_bad_target(target, error, message):
    with pytest.raises(error, match=message):
        nn.CrossEntropyLoss()(np.zeros((2, 4)), target)


def test_cross_entropy_bad_logits_shape():
    with pytest.raises(ValueError, match=r"logits of shape \(N, C\)"):
        nn.CrossEntropyLoss()(np.zeros((2, 4, 1)), np.array([0, 1]))


def test_mse_shape_mismatch():
    with pytest.raises(ValueError, match=r"prediction's shape \(2, 3\), got shape \(3, 2\)"):
        nn.MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))


# ------------------------------------------------------------------------ containers

def test_sequential_indexing_len_and_slices():
    model = small_model()
    assert len(model) == 5 and isinstance(model[0], nn.Conv2d)
    assert isinstance(model[-1], nn.Linear)
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is model[0]


def test_repr_shows_non_default_arguments_like_pytorch():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                          nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten())
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
        "  (1): BatchNorm2d(8)\n"
        "  (2): MaxPool2d(kernel_size=2, stride=2)\n"
        "  (3): Dropout(p=0.25)\n"
        "  (4): Flatten()\n"
        ")")


# ------------------------------------------------------------------------ summary

def test_summary_numbers_for_a_small_model():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, groups=1, rng=0), nn.BatchNorm2d(8),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, groups=4, rng=0),
                          nn.Flatten(), nn.Linear(8 * 2 * 2, 10, rng=0))
    s = nn.summary(model, (2, 3, 8, 8), print=False)
    assert [r.output_shape for r in s.rows] == [(2, 8, 8, 8), (2, 8, 8, 8), (2, 8, 8, 8),
                                                (2, 8, 4, 4), (2, 8, 2, 2), (2, 32), (2, 10)]
    assert [r.params for r in s.rows] == [8 * 3 * 9 + 8, 16, 0, 0, 8 * 2 * 9 + 8, 0, 330]
    conv1 = 2 * 2 * 8 * 8 * 8 * 3 * 3 * 3
    conv2 = 2 * 2 * 8 * 2 * 2 * 2 * 3 * 3
    linear = 2 * 2 * 32 * 10
    assert [r.flops for r in s.rows] == [conv1, 0, 0, 0, conv2, 0, linear]
    assert s.total_params == 224 + 16 + 152 + 330
    assert s.total_flops == conv1 + conv2 + linear


def test_summary_prints_table_and_leaves_model_untouched(capsys):
    model = small_model()
    nn.summary(model, (1, 2, 4, 4))
    out = capsys.readouterr().out
    assert "Conv2d" in out and "Total params: 89" in out
    assert model.training and int(model[1].num_batches_tracked) == 0
    assert not model[1].running_mean.any()


# ------------------------------------------------------------------ input_grad=False

def _two_conv_model():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=0), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(3, 4, 3, rng=1), nn.Flatten()),
                         nn.Linear(4 * 4 * 4, 5, rng=2))


@pytest.mark.parametrize("first", ["conv", "relu"])
def test_backward_without_input_grad_gives_the_same_parameter_gradients(first):
    x = np.random.default_rng(0).standard_normal((3, 2, 6, 6)).astype(np.float32)
    grads = []
    for input_grad in (True, False):
        model = _two_conv_model()
        if first == "relu":                       # a first layer without input_grad=
            model = nn.Sequential(nn.ReLU(), *model)
        y = model(x)
        out = model.backward(np.ones_like(y), input_grad=input_grad)
        assert (out is None) == (not input_grad)
        if input_grad:
            assert out.shape == x.shape
        grads.append([p.grad.copy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_layers_skip_input_grad_only_when_asked():
    conv, lin = nn.Conv2d(1, 2, 3, rng=0), nn.Linear(4, 2, rng=0)
    y = conv(np.ones((1, 1, 5, 5), np.float32))
    assert conv.backward(np.ones_like(y), input_grad=False) is None
    assert conv.backward(np.ones_like(y)).shape == (1, 1, 5, 5)
    y = lin(np.ones((3, 4), np.float32))
    assert lin.backward(np.ones_like(y), input_grad=False) is None
    assert lin.backward(np.ones_like(y)).shape == (3, 4)
    with pytest.raises(TypeError, match="input_grad must be a bool"):
        conv.backward(np.ones((1, 2, 3, 3), np.float32), input_grad="no")


def test_fit_asks_the_model_for_no_input_gradient():
    from fastcnn import fit

    class Recording(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0))
            self.asked = []

        def forward(self, x):
            return self.inner(x)

        def backward(self, grad, input_grad=True):
            self.asked.append(input_grad)
            return self.inner.backward(grad, input_grad=input_grad)

        def arguments(self):
            return {}

    model = Recording()
    x = np.random.default_rng(0).standard_normal((8, 1, 2, 2)).astype(np.float32)
    fit(model, x, np.arange(8) % 2, optimizer=optim.SGD(model.parameters(), lr=0.1),
        epochs=1, batch_size=4, verbose=False)
    assert model.asked and not any(model.asked)


def test_backward_without_input_grad_skips_leading_parameter_free_layers():
    calls = []

    class Spy(nn.Module):
        def forward(self, x):
            return x

        def backward(self, grad):
            calls.append(grad.shape)
            return grad

        def arguments(self):
            return {}

    model = nn.Sequential(Spy(), nn.Flatten(), nn.Linear(12, 3, rng=0), Spy())
    y = model(np.ones((2, 3, 2, 2), np.float32))
    assert model.backward(np.ones_like(y), input_grad=False) is None
    assert calls == [(2, 3)]                 # only the Spy after the Linear
    assert model.backward(np.ones_like(y)).shape == (2, 3, 2, 2)
    with pytest.raises(TypeError, match="input_grad must be a bool, got str"):
        model.backward(np.ones_like(y), input_grad="no")
    with pytest.raises(TypeError, match="input_grad must be a bool, got int"):
        model[2].backward(np.ones_like(y), input_grad=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_relu_on_big_arrays_over_threads_and_layouts(dtype, layout, threads):
    """ReLU's compiled pass runs in 64K-element chunks on several threads: every chunk
    boundary and every layout gives the element-wise definition."""
    threads(2)
    rng = np.random.default_rng(7)
    base = rng.standard_normal((3, 5, 101, 139)).astype(dtype)     # 212,085 elements
    base.flat[rng.integers(0, base.size, 50)] = np.nan
    base.flat[rng.integers(0, base.size, 50)] = np.inf
    base.flat[rng.integers(0, base.size, 50)] = -np.inf
    x = {"C": base, "F": np.asfortranarray(base), "strided": base[:, :, ::2, ::3]}[layout]
    grad = rng.standard_normal(x.shape).astype(dtype)
    relu = nn.ReLU().astype(dtype)
    y = relu(x)
    alive = ~(x <= 0)
    np.testing.assert_array_equal(y, np.where(alive, x, 0))
    np.testing.assert_array_equal(relu.backward(grad), np.where(alive, grad, 0))
    assert y.dtype == dtype and y.flags.c_contiguous
