"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh (element-wise) and Softmax.

Each takes an array of any shape and returns one of the same shape; NaN propagates.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._kernels import eltwise as _eltwise
from ._check import integer, real
from .module import Module, register

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax"]


def _flat(a: np.ndarray) -> np.ndarray:
    """A flat C-contiguous view of a (copied first only if a is not C-contiguous)."""
    return np.require(a, requirements="C").reshape(-1)


_ELEMENTS_PER_THREAD = 1 << 16  # an element-wise pass stays on one thread below this


class _Elementwise(Module):
    """An activation without arguments."""

    def arguments(self) -> dict:
        return {}


@register
class ReLU(_Elementwise):
    """max(x, 0) element-wise; the gradient is 0 where x <= 0 (as PyTorch).

    Shape:
        any; output has the input's shape.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> nn.ReLU()(np.array([-1.0, 2.0]))
        array([0., 2.], dtype=float32)
    """

    def forward(self, x):
        # one threaded pass (csrc/eltwise.c) for the output and the mask of units whose
        # gradient passes (not x <= 0: NaN propagates and passes it, as in PyTorch)
        x = self._input(x)
        y = np.empty(x.shape, x.dtype)
        alive = np.empty(x.shape, np.bool_)
        _eltwise.relu_forward(_flat(x), y.reshape(-1), alive.view(np.uint8).reshape(-1),
                              F._threads(x.size, _ELEMENTS_PER_THREAD))
        self._ctx = alive
        return y

    def backward(self, grad):
        alive = self._saved()
        grad = self._grad(grad, alive.shape)
        grad_x = np.empty(alive.shape, self._dtype)
        _eltwise.relu_backward(_flat(grad), alive.view(np.uint8).reshape(-1),
                               grad_x.reshape(-1), F._threads(grad.size, _ELEMENTS_PER_THREAD))
        return grad_x


@register
class LeakyReLU(Module):
    """x where x > 0, negative_slope * x elsewhere.

    Args:
        negative_slope: slope for x <= 0.

    Shape:
        any; output has the input's shape.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> nn.LeakyReLU(0.1)(np.array([-1.0, 2.0]))
        array([-0.1,  2. ], dtype=float32)
    """

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = real("LeakyReLU", "negative_slope", negative_slope)

    def forward(self, x):
        x = self._input(x)
        positive = x > 0
        self._ctx = positive
        return np.where(positive, x, x * self._dtype.type(self.negative_slope))

    def backward(self, grad):
        positive = self._saved()
        grad = self._grad(grad, positive.shape)
        return np.where(positive, grad, grad * self._dtype.type(self.negative_slope))

    def arguments(self) -> dict:
        return {"negative_slope": self.negative_slope}

    def extra_repr(self) -> str:
        return "" if self.negative_slope == 0.01 else f"negative_slope={self.negative_slope}"


@register
class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x)) element-wise, computed without overflow for large |x|.

    Shape:
        any; output has the input's shape.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> nn.Sigmoid()(np.array([0.0]))
        array([0.5], dtype=float32)
    """

    def forward(self, x):
        x = self._input(x)
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        self._ctx = y
        return y

    def backward(self, grad):
        y = self._saved()
        return self._grad(grad, y.shape) * y * (1 - y)


@register
class Tanh(_Elementwise):
    """tanh(x) element-wise.

    Shape:
        any; output has the input's shape.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> nn.Tanh()(np.array([0.0]))
        array([0.], dtype=float32)
    """

    def forward(self, x):
        y = np.tanh(self._input(x))
        self._ctx = y
        return y

    def backward(self, grad):
        y = self._saved()
        return self._grad(grad, y.shape) * (1 - y * y)


@register
class Softmax(Module):
    """exp(x) / sum(exp(x)) along one axis, computed stably (max subtracted first).

    For a classifier's loss use `CrossEntropyLoss` on the logits instead: it fuses the
    log-softmax and is more accurate.

    Args:
        dim: the axis that sums to 1 (negative counts from the end).

    Shape:
        any with ``dim`` inside it; output has the input's shape.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> nn.Softmax(dim=1)(np.zeros((1, 4)))
        array([[0.25, 0.25, 0.25, 0.25]], dtype=float32)
    """

    def __init__(self, dim=1):
        super().__init__()
        self.dim = integer("Softmax", "dim", dim)

    def forward(self, x):
        x = self._input(x)
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"{self!r} expects input with a dimension {self.dim}, got shape "
                             f"{x.shape}")
        e = np.exp(x - x.max(axis=self.dim, keepdims=True))
        y = e / e.sum(axis=self.dim, keepdims=True)
        self._ctx = y
        return y

    def backward(self, grad):
        y = self._saved()
        grad = self._grad(grad, y.shape)
        return y * (grad - (grad * y).sum(axis=self.dim, keepdims=True))

    def arguments(self) -> dict:
        return {"dim": self.dim}

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
