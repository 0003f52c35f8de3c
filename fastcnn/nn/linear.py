"""Linear: a fully connected layer, y = x @ weight.T + bias."""
from __future__ import annotations

import math

import numpy as np

from .._validate import flag, generator, integer
from . import init
from .backend import ops
from .module import Module
from .parameter import Parameter, allocate
from .registry import register

__all__ = ["Linear"]


@register
class Linear(Module):
    """Affine map of the last axis, as ``torch.nn.Linear``.

    Args:
        in_features: size of each input row.
        out_features: size of each output row.
        bias: learn an additive bias.
        rng: Generator, int seed or None for the initial weights: kaiming_uniform_ with
            a=sqrt(5) on the weight, U(-1/sqrt(in_features), 1/sqrt(in_features)) on the bias
            (PyTorch's default).

    Shape:
        input (*, in_features); output (*, out_features); weight (out_features, in_features),
        bias (out_features,).

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> nn.Linear(20, 10, rng=0)(np.zeros((4, 20))).shape
        (4, 10)
    """

    def __init__(self, in_features, out_features, bias=True, rng=None):
        super().__init__()
        self.in_features = integer("Linear", "in_features", in_features, 1)
        self.out_features = integer("Linear", "out_features", out_features, 1)
        has_bias = flag("Linear", "bias", bias)
        rng = generator("Linear", rng)
        self.weight = Parameter(allocate((self.out_features, self.in_features)))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), rng=rng)
        self.bias = None
        if has_bias:
            bound = 1 / math.sqrt(self.in_features)
            self.bias = Parameter(allocate((self.out_features,)))
            init.uniform_(self.bias, -bound, bound, rng=rng)

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) < 1 or input_shape[-1] != self.in_features:
            raise ValueError(f"{self!r} expects input (*, {self.in_features}), got shape "
                             f"{tuple(input_shape)}")
        return tuple(input_shape[:-1]) + (self.out_features,)

    def forward(self, x):
        x = self._input(x)
        self.output_shape(x.shape)
        y = ops().linear(x, self.weight.data, None if self.bias is None else self.bias.data)
        self._ctx = x
        return y

    def backward(self, grad, input_grad=True):
        """Accumulate the weight and bias gradients; return the input's (None when
        input_grad is False: it is skipped, see `Sequential.backward`)."""
        x = self._saved()
        grad = self._grad(grad, x.shape[:-1] + (self.out_features,))
        grad_x, grad_w, grad_b = ops().linear_backward(grad, x, self.weight.data,
                                                       input_grad=input_grad)
        self.weight.accumulate(grad_w)
        if self.bias is not None:
            self.bias.accumulate(grad_b)
        return grad_x

    def arguments(self) -> dict:
        return dict(in_features=self.in_features, out_features=self.out_features,
                    bias=self.bias is not None)

    def extra_repr(self) -> str:
        s = f"in_features={self.in_features}, out_features={self.out_features}"
        return s if self.bias is not None else s + ", bias=False"

    def _flops(self, input_shape, output_shape) -> int:
        return 2 * math.prod(input_shape[:-1]) * self.in_features * self.out_features
