"""Dropout: zero random elements while training, scaling the rest (inverted dropout)."""
from __future__ import annotations

import numpy as np

from .._validate import generator, real
from .module import Module
from .registry import register

__all__ = ["Dropout"]


@register
class Dropout(Module):
    """Zero each element with probability p in training and scale the others by 1 / (1 - p),
    as ``torch.nn.Dropout``; the identity in eval mode.

    Args:
        p: drop probability, in [0, 1).
        rng: Generator, int seed or None; each training forward draws a new mask from it.

    Shape:
        any; output has the input's shape.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> drop = nn.Dropout(0.5, rng=0)
        >>> sorted(set(drop(np.ones(100)).tolist()))
        [0.0, 2.0]
        >>> drop.eval()(np.ones(3))
        array([1., 1., 1.], dtype=float32)
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = real("Dropout", "p", p, low=0.0, high=1.0, high_open=True)
        self.rng = generator("Dropout", rng)

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def forward(self, x):
        x = self._input(x)
        if not self.training or self.p == 0:
            self._ctx = (None, x.shape)
            return x
        keep = self.rng.random(x.shape, dtype=self._dtype) >= self.p
        mask = keep * self._dtype.type(1 / (1 - self.p))
        self._ctx = (mask, x.shape)
        return x * mask

    def backward(self, grad, input_grad=True):
        mask, shape = self._saved()
        grad = self._grad(grad, shape)
        return grad if mask is None else grad * mask

    def arguments(self) -> dict:
        return {"p": self.p}

    def extra_repr(self) -> str:
        return f"p={self.p}"
