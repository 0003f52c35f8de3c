"""Tests for fastcnn.optim: hyper-parameter checks, skipping missing gradients, dtypes, state
dicts and schedulers. Step-by-step comparisons with PyTorch live in nn/test_nn_torch.py."""
import json

import numpy as np
import pytest

from fastcnn import nn, optim


def params(dtype=np.float32):
    rng = np.random.default_rng(0)
    return [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in [(3, 2), (2,)]]


def step_with(opt, ps, seed):
    rng = np.random.default_rng(seed)
    for p in ps:
        p.grad = rng.standard_normal(p.shape).astype(p.dtype)
    opt.step()


# ------------------------------------------------------------------------ arguments

BAD = [
    (lambda p: optim.SGD(p, lr=-0.1), ValueError, "lr must be >= 0.0, got -0.1"),
    (lambda p: optim.SGD(p, lr=float("nan")), ValueError, "lr must be >= 0.0, got nan"),
    (lambda p: optim.SGD(p, lr="0.1"), TypeError, "lr must be a number"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=1.0), ValueError,
     r"momentum must be in \[0.0, 1.0\)"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), ValueError, "weight_decay must be >= 0"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), ValueError, "nesterov needs momentum > 0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "dampening = 0"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=1), TypeError, "nesterov must be a bool"),
    (lambda p: optim.Adam(p, lr=-1), ValueError, "lr must be >= 0"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), ValueError, r"betas\[0\] must be in"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), ValueError, r"betas\[1\] must be in"),
    (lambda p: optim.Adam(p, betas=(0.9,)), ValueError, "betas must be a pair"),
    (lambda p: optim.Adam(p, eps=-1e-8), ValueError, "eps must be >= 0"),
    (lambda p: optim.Adam(p, weight_decay=-0.1), ValueError, "weight_decay must be >= 0"),
    (lambda p: optim.AdamW(p, weight_decay=-0.1), ValueError, "AdamW: weight_decay"),
    (lambda p: optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda p: optim.SGD([np.zeros(3)], lr=0.1), TypeError, "optimizes Parameters, got ndarray"),
    (lambda p: optim.SGD(p + p[:1], lr=0.1), ValueError, "more than once"),
    (lambda p: optim.SGD([{"params": p[:1]}, {"params": p[1:], "lr": -1}], lr=0.1), ValueError,
     "lr must be >= 0"),
]


@pytest.mark.parametrize("make, error, message", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_hyper_parameter(make, error, message):
    with pytest.raises(error, match=message):
        make(params())


@pytest.mark.parametrize("make, error, message", [
    (lambda o: optim.StepLR(o, step_size=0), ValueError, "step_size must be >= 1"),
    (lambda o: optim.StepLR(o, step_size=2.5), TypeError, "step_size must be an int"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=0), ValueError, "T_max must be >= 1"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=3, eta_min=-1), ValueError, "eta_min"),
    (lambda o: optim.StepLR(object(), 3), TypeError, "expects an Optimizer"),
])
def test_bad_scheduler_argument(make, error, message):
    with pytest.raises(error, match=message):
        make(optim.SGD(params(), lr=0.1))


# ------------------------------------------------------------------------ stepping

def test_sgd_step_is_plain_gradient_descent():
    p = nn.Parameter(np.array([1.0, 2.0]))
    p.grad = np.array([0.5, -1.0])
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.95, 2.1])


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: optim.Adam(p), lambda p: optim.AdamW(p)])
def test_parameters_without_grad_are_skipped(make):
    ps = params()
    before = ps[1].data.copy()
    ps[0].grad = np.ones_like(ps[0].data)
    opt = make(ps)
    opt.step()
    np.testing.assert_array_equal(ps[1].data, before)
    assert ps[1] not in opt.state


def test_zero_grad_sets_grads_to_none():
    ps = params()
    opt = optim.Adam(ps)
    step_with(opt, ps, 0)
    opt.zero_grad()
    assert all(p.grad is None for p in ps)


def test_param_groups_use_their_own_lr():
    a, b = nn.Parameter(np.zeros(1)), nn.Parameter(np.zeros(1))
    a.grad, b.grad = np.ones(1), np.ones(1)
    optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1).step()
    assert a.data[0] == pytest.approx(-0.1) and b.data[0] == pytest.approx(-1.0)


def test_module_parameters_can_be_passed_directly():
    model = nn.Linear(3, 2, rng=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    model(np.ones((1, 3)))
    model.backward(np.ones((1, 2)))
    before = model.weight.data.copy()
    opt.step()
    np.testing.assert_allclose(model.weight.data, before - 0.1, rtol=1e-6)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: optim.Adam(p)])
def test_state_follows_the_parameter_dtype(make):
    model = nn.Linear(3, 2, rng=0)
    opt = make(model.parameters())
    for dtype in (np.float32, np.float64):
        model.astype(dtype)
        model(np.ones((1, 3)))
        model.backward(np.ones((1, 2)))
        opt.step()
        assert model.weight.dtype == dtype
        assert all(v.dtype == dtype for s in opt.state.values() for v in s.values()
                   if isinstance(v, np.ndarray))


# ------------------------------------------------------------------------ state dict

@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
                                  lambda p: optim.Adam(p, lr=0.01, weight_decay=0.1),
                                  lambda p: optim.AdamW(p, lr=0.01)])
def test_state_dict_round_trip_continues_identically(make):
    ps_a = params()
    opt_a = make(ps_a)
    for seed in range(3):
        step_with(opt_a, ps_a, seed)
    ps_b = [nn.Parameter(p.data.copy()) for p in ps_a]
    opt_b = make(ps_b)
    opt_b.load_state_dict(opt_a.state_dict())
    for seed in range(3, 6):
        step_with(opt_a, ps_a, seed)
        step_with(opt_b, ps_b, seed)
    for a, b in zip(ps_a, ps_b):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_layout_and_copies():
    ps = params()
    opt = optim.Adam(ps, lr=0.01)
    step_with(opt, ps, 0)
    sd = opt.state_dict()
    assert sd["param_groups"] == [{"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8,
                                   "weight_decay": 0.0, "params": [0, 1]}]
    assert sorted(sd["state"]) == [0, 1]
    assert sd["state"][0]["step"] == 1 and sd["state"][0]["exp_avg"].shape == (3, 2)
    sd["state"][0]["exp_avg"][...] = 0
    assert opt.state[ps[0]]["exp_avg"].any()


def test_load_state_dict_accepts_string_keys_and_restores_hyper_parameters():
    ps = params()
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    step_with(opt, ps, 0)
    sd = opt.state_dict()
    sd["state"] = {str(k): v for k, v in sd["state"].items()}
    sd["param_groups"][0]["lr"] = 0.5
    other = optim.SGD(params(), lr=0.1, momentum=0.9)
    other.load_state_dict(json.loads(json.dumps(sd, default=lambda a: a.tolist())))
    assert other.param_groups[0]["lr"] == 0.5
    assert other.state[other.param_groups[0]["params"][0]]["momentum_buffer"].dtype == np.float32


def test_load_state_dict_shape_mismatch_names_the_entry():
    ps = params()
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    step_with(opt, ps, 0)
    sd = opt.state_dict()
    sd["state"][1]["momentum_buffer"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"state\[1\]\['momentum_buffer'\] expects shape \(2,\), "
                                         r"got \(3,\)"):
        optim.SGD(params(), lr=0.1, momentum=0.9).load_state_dict(sd)


def test_load_state_dict_group_count_mismatch():
    sd = optim.SGD(params(), lr=0.1).state_dict()
    ps = params()
    opt = optim.SGD([{"params": ps[:1]}, {"params": ps[1:]}], lr=0.1)
    with pytest.raises(ValueError, match="expected 2 parameter groups, got 1"):
        opt.load_state_dict(sd)


# ------------------------------------------------------------------------ schedulers

def test_step_lr_sequence():
    opt = optim.SGD(params(), lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.1)
    lrs = []
    for _ in range(6):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, [1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    assert opt.lr == opt.param_groups[0]["lr"] == sched.get_last_lr()[0]


def test_cosine_annealing_reaches_eta_min_and_rises_again():
    opt = optim.SGD(params(), lr=1.0)
    sched = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.2)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(8):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    closed = [0.2 + 0.8 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(9)]
    np.testing.assert_allclose(lrs, closed, rtol=1e-12)


def test_scheduler_state_dict_round_trip():
    opt = optim.SGD(params(), lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        sched.step()
    other_opt = optim.SGD(params(), lr=1.0)
    other_opt.load_state_dict(opt.state_dict())
    other = optim.StepLR(other_opt, step_size=5)
    other.load_state_dict(sched.state_dict())
    sched.step()
    other.step()
    assert other.get_last_lr() == sched.get_last_lr() == [0.25]
