"""Flatten: merge a range of axes into one (typically between the conv and linear parts)."""
from __future__ import annotations

import math

from .._validate import integer
from .module import Module
from .registry import register

__all__ = ["Flatten"]


@register
class Flatten(Module):
    """Reshape axes start_dim..end_dim into one, as ``torch.nn.Flatten``.

    Args:
        start_dim: first axis to merge (default 1: keep the batch axis).
        end_dim: last axis to merge (negative counts from the end).

    Shape:
        input (N, C, H, W) -> output (N, C*H*W) with the defaults.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> nn.Flatten()(np.zeros((2, 3, 4, 4))).shape
        (2, 48)
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = integer("Flatten", "start_dim", start_dim)
        self.end_dim = integer("Flatten", "end_dim", end_dim)

    def output_shape(self, input_shape: tuple) -> tuple:
        shape, ndim = tuple(input_shape), len(input_shape)
        start = self.start_dim + ndim if self.start_dim < 0 else self.start_dim
        end = self.end_dim + ndim if self.end_dim < 0 else self.end_dim
        if not 0 <= start <= end < ndim:
            raise ValueError(f"{self!r} expects input with axes {self.start_dim}..."
                             f"{self.end_dim} in order, got shape {shape}")
        return shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]

    def forward(self, x):
        x = self._input(x)
        y = x.reshape(self.output_shape(x.shape))
        self._ctx = (x.shape, y.shape)
        return y

    def backward(self, grad, input_grad=True):
        shape, out_shape = self._saved()
        return self._grad(grad, out_shape).reshape(shape)

    def arguments(self) -> dict:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    def extra_repr(self) -> str:
        parts = [f"start_dim={self.start_dim}"] if self.start_dim != 1 else []
        return ", ".join(parts + ([f"end_dim={self.end_dim}"] if self.end_dim != -1 else []))
