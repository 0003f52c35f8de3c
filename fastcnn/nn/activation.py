"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh (element-wise) and Softmax.

Each takes an array of any shape and returns one of the same shape; NaN propagates.
"""
from __future__ import annotations

from .._validate import integer, real
from .backend import ops
from .module import Module
from .registry import register

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax"]


class _SameShape(Module):
    """A layer whose output has its input's shape."""

    def output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)


class _Elementwise(_SameShape):
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
        y = ops().relu(self._input(x))
        self._ctx = y
        return y

    def backward(self, grad, input_grad=True):
        y = self._saved()
        return ops().relu_backward(self._grad(grad, y.shape), y)


@register
class LeakyReLU(_SameShape):
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
        self._ctx = x
        return ops().leaky_relu(x, self.negative_slope)

    def backward(self, grad, input_grad=True):
        x = self._saved()
        return ops().leaky_relu_backward(self._grad(grad, x.shape), x, self.negative_slope)

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
        y = ops().sigmoid(self._input(x))
        self._ctx = y
        return y

    def backward(self, grad, input_grad=True):
        y = self._saved()
        return ops().sigmoid_backward(self._grad(grad, y.shape), y)


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
        y = ops().tanh(self._input(x))
        self._ctx = y
        return y

    def backward(self, grad, input_grad=True):
        y = self._saved()
        return ops().tanh_backward(self._grad(grad, y.shape), y)


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

    def output_shape(self, input_shape: tuple) -> tuple:
        if not -len(input_shape) <= self.dim < len(input_shape):
            raise ValueError(f"{self!r} expects input with a dimension {self.dim}, got shape "
                             f"{tuple(input_shape)}")
        return tuple(input_shape)

    def forward(self, x):
        y = ops().softmax(self._input(x), self.dim)
        self._ctx = y
        return y

    def backward(self, grad, input_grad=True):
        y = self._saved()
        return ops().softmax_backward(self._grad(grad, y.shape), y, self.dim)

    def arguments(self) -> dict:
        return {"dim": self.dim}

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
