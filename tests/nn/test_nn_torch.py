"""fastcnn.nn and fastcnn.optim against torch.nn and torch.optim, weights copied across.

Layers, losses and a small training run are compared in float64 (outputs, input gradients,
parameter gradients, running statistics, weights after training); optimizers and schedulers
step by step. Weights move between the engines through state_dict, so the key names are
tested too.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastcnn import nn, optim  # noqa: E402
from harness import CHAIN_ATOL, CHAIN_RTOL, assert_close  # noqa: E402


def close(ours, theirs, dtype=np.float64, err_msg=""):
    """ours against torch's tensor (or array), within the tolerance of chained ops."""
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert_close(ours, theirs, dtype, rtol=CHAIN_RTOL[dtype], atol=CHAIN_ATOL[dtype],
                 err_msg=err_msg)


def copy_weights(ours, theirs):
    """Load ours' state_dict into the torch module (same key names, no renaming)."""
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})


def compare_layer(ours, theirs, x, seed=0):
    ours.astype(np.float64)
    theirs.double()
    copy_weights(ours, theirs)
    x = np.asarray(x, dtype=np.float64)
    x_t = torch.tensor(x, requires_grad=True)
    y, y_t = ours(x), theirs(x_t)
    close(y, y_t, err_msg="output")
    g = np.random.default_rng(seed).standard_normal(y.shape)
    y_t.backward(torch.from_numpy(g))
    close(ours.backward(g), x_t.grad, err_msg="input grad")
    torch_params = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(torch_params)
    for name, p in ours.named_parameters():
        close(p.grad, torch_params[name].grad, err_msg=name)


def x_for(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


T = torch.nn
LAYER_CASES = {
    "conv": (lambda: nn.Conv2d(3, 5, 3), lambda: T.Conv2d(3, 5, 3), (2, 3, 7, 6)),
    "conv_stride_pad": (lambda: nn.Conv2d(3, 4, (3, 5), stride=(2, 1), padding=(1, 2)),
                        lambda: T.Conv2d(3, 4, (3, 5), stride=(2, 1), padding=(1, 2)),
                        (2, 3, 9, 8)),
    "conv_groups_dilation": (lambda: nn.Conv2d(4, 6, 3, dilation=2, groups=2, bias=False),
                             lambda: T.Conv2d(4, 6, 3, dilation=2, groups=2, bias=False),
                             (2, 4, 9, 9)),
    "conv_depthwise_same": (lambda: nn.Conv2d(4, 4, 3, padding="same", groups=4),
                            lambda: T.Conv2d(4, 4, 3, padding="same", groups=4), (1, 4, 7, 6)),
    "conv_same_even_kernel": (lambda: nn.Conv2d(2, 3, (4, 2), padding="same", dilation=(1, 3)),
                              lambda: T.Conv2d(2, 3, (4, 2), padding="same", dilation=(1, 3)),
                              (1, 2, 7, 8)),
    "maxpool": (lambda: nn.MaxPool2d(2), lambda: T.MaxPool2d(2), (2, 3, 8, 7)),
    "maxpool_pad_ceil": (lambda: nn.MaxPool2d(3, 2, padding=1, ceil_mode=True),
                         lambda: T.MaxPool2d(3, 2, padding=1, ceil_mode=True), (2, 3, 8, 9)),
    "maxpool_dilation": (lambda: nn.MaxPool2d((2, 3), stride=1, dilation=(2, 1)),
                         lambda: T.MaxPool2d((2, 3), stride=1, dilation=(2, 1)), (1, 2, 6, 6)),
    "avgpool": (lambda: nn.AvgPool2d(2), lambda: T.AvgPool2d(2), (2, 3, 8, 7)),
    "avgpool_exclude_pad_ceil": (
        lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        lambda: T.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 3, 8, 9)),
    "avgpool_include_pad": (lambda: nn.AvgPool2d(3, 2, 1), lambda: T.AvgPool2d(3, 2, 1),
                            (2, 3, 7, 7)),
    "relu": (nn.ReLU, T.ReLU, (4, 5)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), lambda: T.LeakyReLU(0.2), (4, 5)),
    "sigmoid": (nn.Sigmoid, T.Sigmoid, (4, 5)),
    "tanh": (nn.Tanh, T.Tanh, (4, 5)),
    "softmax": (lambda: nn.Softmax(dim=1), lambda: T.Softmax(dim=1), (3, 4, 5)),
    "flatten": (nn.Flatten, T.Flatten, (2, 3, 4, 5)),
    "flatten_range": (lambda: nn.Flatten(1, 2), lambda: T.Flatten(1, 2), (2, 3, 4, 5)),
    "linear": (lambda: nn.Linear(6, 4), lambda: T.Linear(6, 4), (5, 6)),
    "linear_3d_nobias": (lambda: nn.Linear(6, 4, bias=False), lambda: T.Linear(6, 4, bias=False),
                         (2, 5, 6)),
    "dropout_p0": (lambda: nn.Dropout(0.0), lambda: T.Dropout(0.0), (4, 5)),
    "batchnorm_train": (lambda: nn.BatchNorm2d(3), lambda: T.BatchNorm2d(3), (4, 3, 5, 2)),
    "batchnorm_no_affine": (lambda: nn.BatchNorm2d(3, affine=False),
                            lambda: T.BatchNorm2d(3, affine=False), (4, 3, 5, 2)),
    "batchnorm_no_running_stats_eval": (
        lambda: nn.BatchNorm2d(3, track_running_stats=False).eval(),
        lambda: T.BatchNorm2d(3, track_running_stats=False).eval(), (4, 3, 5, 2)),
}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_layer_matches_torch(case):
    make_ours, make_theirs, shape = LAYER_CASES[case]
    compare_layer(make_ours(), make_theirs(), x_for(shape))


def test_batchnorm_with_random_affine_matches_torch():
    ours, theirs = nn.BatchNorm2d(3), T.BatchNorm2d(3)
    ours.weight.data[:] = [0.5, -2.0, 1.5]
    ours.bias.data[:] = [0.1, 0.0, -0.3]
    compare_layer(ours, theirs, x_for((4, 3, 3, 3)) * 3 + 1)


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm_running_stats_and_eval_match_torch(momentum):
    ours = nn.BatchNorm2d(3, momentum=momentum).astype(np.float64)
    theirs = T.BatchNorm2d(3, momentum=momentum).double()
    for step in range(4):
        x = x_for((5, 3, 4, 3), seed=step) * (step + 1) + step
        close(ours(x), theirs(torch.from_numpy(x)))
    sd = theirs.state_dict()
    for name, value in ours.state_dict().items():
        close(value, sd[name], err_msg=name)
    assert int(ours.num_batches_tracked) == 4
    compare_layer(ours.eval(), theirs.eval(), x_for((2, 3, 4, 3), seed=9))


def test_torch_state_dict_loads_into_the_same_architecture():
    theirs = T.Sequential(T.Conv2d(1, 4, 3), T.BatchNorm2d(4), T.ReLU(), T.Flatten(),
                          T.Linear(4 * 4 * 4, 3)).double().eval()
    ours = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3)).astype(np.float64).eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = x_for((2, 1, 6, 6))
    close(ours(x), theirs(torch.from_numpy(x)))


# ------------------------------------------------------------------------ losses

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_matches_torch(reduction, smoothing):
    ours = nn.CrossEntropyLoss(label_smoothing=smoothing, reduction=reduction)
    theirs = T.CrossEntropyLoss(label_smoothing=smoothing, reduction=reduction)
    logits, target = x_for((6, 5)) * 3, np.array([0, 4, 2, 2, 1, 3])
    logits_t = torch.tensor(logits, requires_grad=True)
    loss_t = theirs(logits_t, torch.from_numpy(target))
    close(np.asarray(ours(logits, target)), loss_t)
    loss_t.sum().backward()
    close(ours.backward(), logits_t.grad)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_matches_torch(reduction):
    ours, theirs = nn.MSELoss(reduction=reduction), T.MSELoss(reduction=reduction)
    x, target = x_for((3, 4, 2)), x_for((3, 4, 2), seed=2)
    x_t = torch.tensor(x, requires_grad=True)
    loss_t = theirs(x_t, torch.from_numpy(target))
    close(np.asarray(ours(x, target)), loss_t)
    loss_t.sum().backward()
    close(ours.backward(), x_t.grad)


# ------------------------------------------------------------------------ optimizers

SHAPES = [(3, 4), (4,), (2, 3, 3, 3), (5,)]


def run_optimizers(make_ours, make_theirs, steps=6, dtype=np.float64, skip_last=True):
    """Step both optimizers with the same gradients; the last parameter never gets one."""
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [nn.Parameter(a.copy()) for a in start]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    opt, opt_t = make_ours(ours), make_theirs(theirs)
    for _ in range(steps):
        for i, (p, p_t) in enumerate(zip(ours, theirs)):
            if skip_last and i == len(ours) - 1:
                continue
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad, p_t.grad = g.copy(), torch.from_numpy(g.copy())
        opt.step()
        opt_t.step()
    for i, (p, p_t) in enumerate(zip(ours, theirs)):
        close(p.data, p_t, dtype, err_msg=f"param {i}")
    np.testing.assert_array_equal(ours[-1].data, start[-1])
    return opt, opt_t


OPTIMIZER_CASES = {
    "sgd": dict(lr=0.1),
    "sgd_momentum": dict(lr=0.1, momentum=0.9),
    "sgd_momentum_dampening": dict(lr=0.05, momentum=0.8, dampening=0.3),
    "sgd_nesterov_weight_decay": dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "sgd_weight_decay": dict(lr=0.1, weight_decay=0.1),
}


@pytest.mark.parametrize("case", list(OPTIMIZER_CASES))
def test_sgd_matches_torch(case):
    kw = OPTIMIZER_CASES[case]
    run_optimizers(lambda p: optim.SGD(p, **kw), lambda p: torch.optim.SGD(p, **kw))


@pytest.mark.parametrize("kw", [dict(), dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
                                dict(lr=0.01, weight_decay=0.1)])
def test_adam_matches_torch(kw):
    run_optimizers(lambda p: optim.Adam(p, **kw), lambda p: torch.optim.Adam(p, **kw))


@pytest.mark.parametrize("kw", [dict(), dict(lr=0.01, weight_decay=0.3), dict(weight_decay=0)])
def test_adamw_matches_torch(kw):
    run_optimizers(lambda p: optim.AdamW(p, **kw), lambda p: torch.optim.AdamW(p, **kw))


def test_optimizers_match_torch_in_float32():
    kw = dict(lr=0.01, weight_decay=0.01)
    run_optimizers(lambda p: optim.AdamW(p, **kw), lambda p: torch.optim.AdamW(p, **kw),
                   dtype=np.float32)
    kw = dict(lr=0.1, momentum=0.9, nesterov=True)
    run_optimizers(lambda p: optim.SGD(p, **kw), lambda p: torch.optim.SGD(p, **kw),
                   dtype=np.float32)


def test_param_groups_match_torch():
    def groups(p):
        return [{"params": p[:2]}, {"params": p[2:], "lr": 0.01, "momentum": 0.5}]
    run_optimizers(lambda p: optim.SGD(groups(p), lr=0.1, momentum=0.9),
                   lambda p: torch.optim.SGD(groups(p), lr=0.1, momentum=0.9))


# ------------------------------------------------------------------------ schedulers

def lr_sequence(make_scheduler, opt, epochs=23):
    sched = make_scheduler(opt)
    lrs = [sched.get_last_lr()]
    for _ in range(epochs):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
    return lrs


@pytest.mark.parametrize("name, kw", [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("StepLR", dict(step_size=1)),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01)),
    ("CosineAnnealingLR", dict(T_max=7)),
])
def test_scheduler_lr_sequence_matches_torch(name, kw):
    ours = lr_sequence(lambda o: getattr(optim, name)(o, **kw),
                       optim.SGD([nn.Parameter(np.zeros(2))], lr=0.3))
    theirs = lr_sequence(lambda o: getattr(torch.optim.lr_scheduler, name)(o, **kw),
                         torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.3))
    np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=0)


# ------------------------------------------------------------------------ training

def make_net(engine):
    # no bias before BatchNorm: its gradient is round-off noise, which Adam would amplify
    m = nn if engine == "fastcnn" else T
    return m.Sequential(m.Conv2d(2, 4, 3, padding=1, bias=False), m.BatchNorm2d(4), m.ReLU(),
                        m.MaxPool2d(2), m.Conv2d(4, 6, 3, groups=2), m.LeakyReLU(0.1),
                        m.AvgPool2d(2, ceil_mode=True), m.Flatten(), m.Linear(6, 5), m.Tanh(),
                        m.Linear(5, 3))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("opt_name, kw", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("AdamW", dict(lr=0.01)),
])
def test_tiny_conv_net_trains_identically(dtype, opt_name, kw):
    ours, theirs = make_net("fastcnn").astype(dtype), make_net("torch").to(torch.from_numpy(
        np.zeros(0, dtype)).dtype)
    copy_weights(ours, theirs)
    opt = getattr(optim, opt_name)(ours.parameters(), **kw)
    opt_t = getattr(torch.optim, opt_name)(theirs.parameters(), **kw)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    loss_t_fn = T.CrossEntropyLoss(label_smoothing=0.1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal((8, 2, 8, 8)).astype(dtype)
        y = rng.integers(0, 3, 8)
        opt.zero_grad()
        loss = loss_fn(ours(x), y)
        ours.backward(loss_fn.backward())
        opt.step()
        opt_t.zero_grad()
        loss_t = loss_t_fn(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        loss_t.backward()
        opt_t.step()
        assert loss == pytest.approx(loss_t.item(), rel=CHAIN_RTOL[dtype])
    sd_t = theirs.state_dict()
    for name, value in ours.state_dict().items():
        close(value, sd_t[name], dtype, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_special_values_match_torch(dtype):
    """NaN and inf inputs and gradients, and -0.0: ReLU's mask arithmetic must not leak a NaN
    gradient through a dead unit (NaN * 0) or block one through a NaN input."""
    x = np.array([-1, 0, -0.0, np.nan, 2, np.inf, -np.inf, 3], dtype)
    grad = np.array([np.nan, np.inf, 1, 2, np.nan, 3, np.inf, -np.inf], dtype)
    ours = nn.ReLU().astype(dtype)
    y = ours(x)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.relu(tx)
    ty.backward(torch.tensor(grad))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(ours.backward(grad), tx.grad.numpy())


@pytest.mark.parametrize("value", [-2.0, 3.0])
def test_relu_on_a_0d_array_matches_torch(value):
    ours = nn.ReLU()
    y = ours(np.float32(value))
    gx = ours.backward(np.float32(5.0))
    assert y.shape == gx.shape == ()
    assert float(y) == torch.relu(torch.tensor(value)).item()
    assert float(gx) == (5.0 if value > 0 else 0.0)
