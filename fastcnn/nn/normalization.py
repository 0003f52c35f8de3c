"""BatchNorm2d: per-channel normalisation with batch statistics in training."""
from __future__ import annotations

import numpy as np

from .._validate import flag, integer, real
from .backend import ops
from .module import Module
from .parameter import Parameter, allocate
from .registry import register

__all__ = ["BatchNorm2d"]

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
        self.affine = flag(name, "affine", affine)
        self.track_running_stats = flag(name, "track_running_stats", track_running_stats)
        C = self.num_features
        self.weight = Parameter(allocate((C,), 1)) if self.affine else None
        self.bias = Parameter(allocate((C,), 0)) if self.affine else None
        if self.track_running_stats:
            self.register_buffer("running_mean", allocate((C,), 0))
            self.register_buffer("running_var", allocate((C,), 1))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 4 or input_shape[1] != self.num_features:
            raise ValueError(f"{self!r} expects input (N, {self.num_features}, H, W) with "
                             f"{self.num_features} channels, got shape {tuple(input_shape)}")
        return tuple(input_shape)

    def forward(self, x):
        x = self._input(x)
        self.output_shape(x.shape)
        batch_stats = self.training or not self.track_running_stats
        update = self.training and self.track_running_stats
        momentum = 0.0
        if update:  # momentum None: a cumulative average over the batches seen
            seen = int(self.num_batches_tracked) + 1
            momentum = 1 / seen if self.momentum is None else self.momentum
        running = (self.running_mean, self.running_var) if self.track_running_stats else (None,
                                                                                         None)
        weight, bias = (self.weight.data, self.bias.data) if self.affine else (None, None)
        y, mean, inv_std = ops().batch_norm(x, *running, weight, bias, training=batch_stats,
                                            momentum=momentum, eps=self.eps, return_stats=True)
        if update:
            self.num_batches_tracked += 1
        self._ctx = (x, mean, inv_std, batch_stats)
        return y

    def backward(self, grad, input_grad=True):
        x, mean, inv_std, batch_stats = self._saved()
        weight = self.weight.data if self.affine else None
        grad_x, grad_w, grad_b = ops().batch_norm_backward(self._grad(grad, x.shape), x, mean,
                                                           inv_std, weight, batch_stats)
        if self.affine:
            self.weight.accumulate(grad_w)
            self.bias.accumulate(grad_b)
        return grad_x

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
