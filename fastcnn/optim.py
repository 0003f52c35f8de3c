"""Optimizers (SGD, Adam, AdamW) and learning-rate schedulers (StepLR, CosineAnnealingLR).

Each optimizer updates ``Parameter.data`` in place from ``Parameter.grad`` with the same update
rule as its ``torch.optim`` namesake (identical up to float rounding). Parameters whose grad is
None are skipped. Per-parameter state (momentum, Adam moments) is kept in the parameter's dtype,
so it follows a model converted with ``model.astype(np.float64)``.

As in PyTorch, ``params`` is an iterable of Parameters or of dicts ("param groups"), each with
a ``"params"`` list and any hyper-parameters that differ from the optimizer's arguments.
Schedulers change every group's ``"lr"``.

Example:
    >>> import numpy as np
    >>> from fastcnn import nn, optim
    >>> model = nn.Linear(3, 1, rng=0)
    >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> loss_fn = nn.MSELoss()
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     loss = loss_fn(model(np.ones((4, 3))), np.zeros((4, 1)))
    ...     _ = model.backward(loss_fn.backward())
    ...     opt.step()
"""
from __future__ import annotations

import math

import numpy as np

from ._config import reuses_memory
from ._signals import held
from ._validate import flag, integer, real
from .nn import Parameter

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "CosineAnnealingLR"]


class Optimizer:
    """Base class: holds parameter groups and per-parameter state, validates ``lr``.

    Subclasses set ``_state_arrays`` (the names of their per-parameter arrays), extend
    ``_check(group)`` for their hyper-parameters and implement ``_update(p, group, state)``.

    Args:
        params: iterable of Parameters, or of dicts with "params" and per-group overrides.
        defaults: the hyper-parameters every group starts from.
    """

    _state_arrays: tuple = ()

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.param_groups = []
        self.state = {}
        groups = list(params) if not isinstance(params, Parameter) else [params]
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a dict with "params" (Parameters) and optional hyper-parameter overrides."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{type(self).__name__}: a parameter group must be a dict with a "
                            f"'params' key, got {group!r}")
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__} optimizes Parameters, got "
                                f"{type(p).__name__}")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: a parameter appears more than once "
                                 f"({p!r})")
            seen.add(id(p))
        group = {**self.defaults, **group, "params": params}
        self._check(group)
        self.param_groups.append(group)

    def _check(self, group: dict) -> None:
        """Validate (and normalise in place) one group's hyper-parameters."""
        group["lr"] = real(type(self).__name__, "lr", group["lr"], low=0.0)

    @property
    def lr(self) -> float:
        """The learning rate of the first parameter group (the one schedulers change)."""
        return self.param_groups[0]["lr"]

    def zero_grad(self) -> None:
        """Reset the gradient of every parameter to None."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @reuses_memory
    def step(self) -> None:
        """Update every parameter that has a gradient, in place.

        A step applies to every parameter and its state or to none: Ctrl-C (SIGINT) that
        arrives during it is held until it ends, then raised as KeyboardInterrupt.
        """
        with held():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, group, self.state.setdefault(p, {}))

    def _update(self, p: Parameter, group: dict, state: dict) -> None:
        raise NotImplementedError

    @staticmethod
    def _array(state: dict, key: str, p: Parameter) -> np.ndarray:
        """state[key] in p's dtype, created as zeros the first time."""
        a = state.get(key)
        if a is None:
            a = state[key] = np.zeros_like(p.data)
        elif a.dtype != p.data.dtype:
            a = state[key] = a.astype(p.data.dtype)
        return a

    # ----------------------------------------------------------------- state dict

    def _params(self) -> list:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """{"state": {index: {name: array copy or int}}, "param_groups": [{..., "params":
        [index, ...]}]}, PyTorch's layout with parameters numbered in group order."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[id(p)]: {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                for k, v in s.items()}
                 for p, s in self.state.items()}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and state saved by `state_dict` (state keys may be strings,
        as after a JSON round trip). Arrays are copied and cast to each parameter's dtype;
        nothing changes unless every check passes."""
        name = f"{type(self).__name__}.load_state_dict"
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: expected {len(self.param_groups)} parameter groups, got "
                             f"{len(saved_groups)}")
        groups = []
        for i, (saved, current) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(current["params"]):
                raise ValueError(f"{name}: group {i} expects {len(current['params'])} "
                                 f"parameters, got {len(saved['params'])}")
            group = {**{k: v for k, v in saved.items() if k != "params"},
                     "params": current["params"]}
            self._check(group)
            groups.append(group)
        params = self._params()
        state = {}
        for key, saved in state_dict["state"].items():
            # a JSON round trip makes the keys strings: those are parsed, others checked
            i = integer(name, "a state key", int(key) if isinstance(key, str) else key)
            if not 0 <= i < len(params):
                raise ValueError(f"{name}: state for parameter {i}, but there are only "
                                 f"{len(params)}")
            p, entry = params[i], {}
            for k, v in saved.items():
                if k == "step":
                    entry[k] = integer(name, f"state[{i}]['step']", v, 0)
                elif k in self._state_arrays:
                    v = np.asarray(v)
                    if v.shape != p.shape:
                        raise ValueError(f"{name}: state[{i}][{k!r}] expects shape {p.shape}, "
                                         f"got {v.shape}")
                    entry[k] = v.astype(p.dtype, copy=True)
                else:
                    raise ValueError(f"{name}: unknown state {k!r} for parameter {i}, "
                                     f"expected one of {('step',) + self._state_arrays}")
            state[p] = entry
        self.param_groups = groups
        self.state = state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, as ``torch.optim.SGD``.

    With g = grad + weight_decay * p:
    ``buf = g`` on the first step, then ``buf = momentum * buf + (1 - dampening) * g``;
    ``d = g + momentum * buf`` (nesterov) or ``d = buf``; ``p -= lr * d``.

    Args:
        params: Parameters or parameter groups.
        lr: learning rate, >= 0.
        momentum: in [0, 1).
        dampening: in [0, 1]; must be 0 with nesterov.
        nesterov: Nesterov momentum (needs momentum > 0).
        weight_decay: L2 penalty, >= 0.

    Example:
        >>> from fastcnn import nn, optim
        >>> opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9, nesterov=True)
    """

    _state_arrays = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay))

    def _check(self, group):
        super()._check(group)
        group["momentum"] = real("SGD", "momentum", group["momentum"], 0.0, 1.0, high_open=True)
        group["dampening"] = real("SGD", "dampening", group["dampening"], 0.0, 1.0)
        group["weight_decay"] = real("SGD", "weight_decay", group["weight_decay"], low=0.0)
        group["nesterov"] = flag("SGD", "nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] == 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _update(self, p, group, state):
        g = p.grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        momentum = group["momentum"]
        if momentum:
            if "momentum_buffer" not in state:
                buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype)
            else:
                buf = self._array(state, "momentum_buffer", p)
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * g


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (L2 weight decay added to the gradient).

    With g = grad + weight_decay * p and t the step count:
    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g*g``,
    ``p -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``.

    Args:
        params: Parameters or parameter groups.
        lr: learning rate, >= 0.
        betas: (b1, b2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: L2 penalty, >= 0.

    Example:
        >>> from fastcnn import nn, optim
        >>> opt = optim.Adam(nn.Linear(2, 2).parameters(), lr=1e-3)
    """

    _state_arrays = ("exp_avg", "exp_avg_sq")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check(self, group):
        super()._check(group)
        name = type(self).__name__
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (real(name, "betas[0]", betas[0], 0.0, 1.0, high_open=True),
                          real(name, "betas[1]", betas[1], 0.0, 1.0, high_open=True))
        group["eps"] = real(name, "eps", group["eps"], low=0.0)
        group["weight_decay"] = real(name, "weight_decay", group["weight_decay"], low=0.0)

    def _update(self, p, group, state):
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        g = p.grad
        state["step"] = t = state.get("step", 0) + 1
        if wd and self._decoupled:
            p.data *= 1 - lr * wd
        elif wd:
            g = g + wd * p.data
        m = self._array(state, "exp_avg", p)
        v = self._array(state, "exp_avg_sq", p)
        m += (1 - beta1) * (g - m)
        v *= beta2
        v += (1 - beta2) * g * g
        bias_correction1 = 1 - beta1 ** t
        bias_correction2_sqrt = (1 - beta2 ** t) ** 0.5
        denom = np.sqrt(v) / bias_correction2_sqrt + group["eps"]
        p.data -= lr / bias_correction1 * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``: each step first does
    ``p *= 1 - lr * weight_decay``, then the Adam update without weight decay in g.

    Args:
        params, lr, betas, eps: as `Adam`.
        weight_decay: decoupled decay, >= 0 (default 0.01).

    Example:
        >>> from fastcnn import nn, optim
        >>> opt = optim.AdamW(nn.Linear(2, 2).parameters(), lr=1e-3, weight_decay=0.05)
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


# ----------------------------------------------------------------------------- schedulers

class LRScheduler:
    """Base class: sets every group's "lr" on each ``step()`` (call once per epoch, after the
    optimizer's steps). Constructing one performs step 0, which keeps the current lr."""

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} expects an Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def _next_lr(self, lr: float, base_lr: float) -> float:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set the new learning rates."""
        self.last_epoch += 1
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            if self.last_epoch > 0:
                group["lr"] = self._next_lr(group["lr"], base_lr)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        """The learning rates set by the last ``step()``, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """Multiply the learning rate by gamma every step_size epochs, as
    ``torch.optim.lr_scheduler.StepLR``: lr = base_lr * gamma ** (epoch // step_size).

    Args:
        optimizer: the optimizer whose lr to change.
        step_size: epochs between decays, >= 1.
        gamma: the factor.

    Example:
        >>> from fastcnn import nn, optim
        >>> opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
        >>> sched = optim.StepLR(opt, step_size=2, gamma=0.5)
        >>> lrs = []
        >>> for _ in range(5):
        ...     opt.step(); sched.step(); lrs += sched.get_last_lr()
        >>> lrs
        [1.0, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = integer("StepLR", "step_size", step_size, 1)
        self.gamma = real("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def _next_lr(self, lr, base_lr):
        return lr * self.gamma if self.last_epoch % self.step_size == 0 else lr


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate along a cosine from base_lr to eta_min over T_max epochs, as
    ``torch.optim.lr_scheduler.CosineAnnealingLR`` (same recursive form, so the same numbers):
    lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, rising again
    after T_max.

    Args:
        optimizer: the optimizer whose lr to change.
        T_max: epochs of one half cosine, >= 1.
        eta_min: the lowest learning rate, >= 0.

    Example:
        >>> from fastcnn import nn, optim
        >>> opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
        >>> sched = optim.CosineAnnealingLR(opt, T_max=2)
        >>> for _ in range(2):
        ...     opt.step(); sched.step()
        >>> sched.get_last_lr()
        [0.0]
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = integer("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = real("CosineAnnealingLR", "eta_min", eta_min, low=0.0)
        super().__init__(optimizer)

    def _next_lr(self, lr, base_lr):
        e, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if (e - 1 - T) % (2 * T) == 0:
            return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
        return ((1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T))
                * (lr - eta_min) + eta_min)
