"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh (element-wise) and Softmax.

Each takes an array of any shape and returns one of the same shape; NaN propagates.
"""
from __future__ import annotations

import numpy as np

from ._check import integer, real
from .module import Module, register

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax"]


def _zero_where_not(grad: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """grad where `keep` is True, +0 elsewhere (even where grad is NaN or inf), as one bitwise
    AND: np.where with a data-dependent mask branches per element and runs about 7x slower."""
    ints = np.int32 if grad.dtype.itemsize == 4 else np.int64
    out = np.asarray(np.negative(keep.view(np.int8), dtype=ints))   # all ones bits or zero
    # into `out`: a second fresh array of this size costs more in page faults than the AND
    np.bitwise_and(np.require(grad, requirements="C").view(ints), out, out=out)
    return out.view(grad.dtype)


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
        x = self._input(x)
        alive = np.asarray(x <= 0)
        np.logical_not(alive, out=alive)          # NaN passes its gradient, as in PyTorch
        self._ctx = alive
        return np.asarray(np.maximum(x, np.zeros((), x.dtype)))   # NaN propagates

    def backward(self, grad):
        alive = self._saved()
        return _zero_where_not(self._grad(grad, alive.shape), alive)


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
