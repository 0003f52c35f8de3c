"""BatchNorm2d: per-channel normalisation with batch statistics in training."""
from __future__ import annotations

import numpy as np

from .. import _args
from ._check import integer, real
from .module import Module, Parameter, allocate, register

__all__ = ["BatchNorm2d"]

_AXES = (0, 2, 3)  # every axis of (N, C, H, W) but the channel


def _per_channel(v: np.ndarray) -> np.ndarray:
    return v[None, :, None, None]


@register
class BatchNorm2d(Module):
    """Normalise each channel to zero mean and unit variance, then scale and shift, as
    ``torch.nn.BatchNorm2d``.

    In training (and always without running statistics) the mean and biased variance of the
    batch are used, and the running statistics are updated as
    ``running = (1 - momentum) * running + momentum * batch`` with the *unbiased* batch
    variance (momentum None: a cumulative average over the batches seen). In eval mode the
    running statistics are used.

    Args:
        num_features: C, channels of the input.
        eps: added to the variance before the square root, >= 0.
        momentum: weight of the newest batch in the running statistics, in [0, 1], or None.
        affine: learn a per-channel scale (weight, ones) and shift (bias, zeros).
        track_running_stats: keep running_mean, running_var and num_batches_tracked buffers.

    Shape:
        input (N, C, H, W); output (N, C, H, W).

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> bn = nn.BatchNorm2d(3)
        >>> y = bn(np.random.default_rng(0).normal(5, 2, (8, 3, 4, 4)))
        >>> bool(abs(y.mean()) < 1e-5)
        True
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        super().__init__()
        name = "BatchNorm2d"
        self.num_features = integer(name, "num_features", num_features, 1)
        self.eps = real(name, "eps", eps, low=0.0)
        self.momentum = None if momentum is None else real(name, "momentum", momentum, 0.0, 1.0)
        self.affine = _args.flag(name, "affine", affine)
        self.track_running_stats = _args.flag(name, "track_running_stats", track_running_stats)
        C = self.num_features
        self.weight = Parameter(allocate((C,), 1)) if self.affine else None
        self.bias = Parameter(allocate((C,), 0)) if self.affine else None
        if self.track_running_stats:
            self.register_buffer("running_mean", allocate((C,), 0))
            self.register_buffer("running_var", allocate((C,), 1))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))

    def forward(self, x):
        x = self._input(x)
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"{self!r} expects input (N, {self.num_features}, H, W) with "
                             f"{self.num_features} channels, got shape {x.shape}")
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            n = x.size // self.num_features
            if n <= 1:
                raise ValueError(f"{self!r} needs more than 1 value per channel to compute "
                                 f"batch statistics, got input shape {x.shape}")
            mean = x.mean(axis=_AXES)
            centred = x - _per_channel(mean)
            var = (centred * centred).mean(axis=_AXES)
            if self.training and self.track_running_stats:
                self._update_running(mean, var, n)
        else:
            centred = x - _per_channel(self.running_mean)
            var = self.running_var
        inv_std = 1 / np.sqrt(var + self._dtype.type(self.eps))
        x_hat = centred * _per_channel(inv_std)
        self._ctx = (x_hat, inv_std, batch_stats)
        if not self.affine:
            return x_hat
        return x_hat * _per_channel(self.weight.data) + _per_channel(self.bias.data)

    def _update_running(self, mean, var, n):
        self.num_batches_tracked += 1
        f = (1 / int(self.num_batches_tracked) if self.momentum is None else self.momentum)
        f = self._dtype.type(f)
        self.running_mean *= 1 - f
        self.running_mean += f * mean
        self.running_var *= 1 - f
        self.running_var += f * var * self._dtype.type(n / (n - 1))

    def backward(self, grad):
        x_hat, inv_std, batch_stats = self._saved()
        grad = np.asarray(grad, self._dtype)
        grad_x_hat = grad
        if self.affine:
            self.weight.accumulate((grad * x_hat).sum(axis=_AXES))
            self.bias.accumulate(grad.sum(axis=_AXES))
            grad_x_hat = grad * _per_channel(self.weight.data)
        if not batch_stats:
            return grad_x_hat * _per_channel(inv_std)
        # x_hat = (x - mean) * inv_std with mean and var taken over the batch:
        # dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))
        mean_g = grad_x_hat.mean(axis=_AXES)
        mean_gx = (grad_x_hat * x_hat).mean(axis=_AXES)
        return _per_channel(inv_std) * (grad_x_hat - _per_channel(mean_g)
                                        - x_hat * _per_channel(mean_gx))

    def arguments(self) -> dict:
        return dict(num_features=self.num_features, eps=self.eps, momentum=self.momentum,
                    affine=self.affine, track_running_stats=self.track_running_stats)

    def extra_repr(self) -> str:
        s = f"{self.num_features}"
        if self.eps != 1e-5:
            s += f", eps={self.eps}"
        if self.momentum != 0.1:
            s += f", momentum={self.momentum}"
        if not self.affine:
            s += ", affine=False"
        if not self.track_running_stats:
            s += ", track_running_stats=False"
        return s
