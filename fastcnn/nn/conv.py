"""Conv2d: 2-D convolution layer on the compiled kernels of `fastcnn.functional`."""
from __future__ import annotations

import math

import numpy as np

from .. import _args
from . import init
from .._validate import flag, generator, integer, pair
from .backend import ops
from .module import Module
from .parameter import Parameter, allocate
from .registry import register

__all__ = ["Conv2d"]


@register
class Conv2d(Module):
    """2-D convolution (cross-correlation) over a batch of images, as ``torch.nn.Conv2d``.

    Args:
        in_channels: C, channels of the input.
        out_channels: K, number of filters.
        kernel_size: int or (R, S).
        stride: int or (sh, sw), >= 1.
        padding: int or (ph, pw) zeros on both sides, or 'valid' (none) or 'same' (output
            ceil(H / sh) x ceil(W / sw); unlike PyTorch, stride > 1 is allowed).
        dilation: int or (dh, dw), >= 1.
        groups: split channels into this many independent groups; in_channels and
            out_channels must both be divisible by it (groups == in_channels: depthwise).
        bias: learn a per-filter bias.
        rng: Generator, int seed or None for the initial weights: kaiming_uniform_ with
            a=sqrt(5) on the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the bias, where
            fan_in = in_channels / groups * R * S (PyTorch's default).

    Shape:
        input (N, C, H, W); output (N, K, P, Q) with
        P = floor((H + 2*ph - dh*(R - 1) - 1) / sh) + 1, Q likewise with W, pw, dw, S, sw.
        weight (K, C / groups, R, S), bias (K,).

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> conv = nn.Conv2d(3, 8, 3, padding=1, rng=0)
        >>> conv(np.zeros((2, 3, 32, 32))).shape
        (2, 8, 32, 32)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, rng=None):
        super().__init__()
        name = "Conv2d"
        self.in_channels = integer(name, "in_channels", in_channels, 1)
        self.out_channels = integer(name, "out_channels", out_channels, 1)
        self.kernel_size = pair(name, "kernel_size", kernel_size, 1)
        self.stride = pair(name, "stride", stride, 1)
        self.padding = _args.conv_padding(name, padding)
        self.dilation = pair(name, "dilation", dilation, 1)
        self.groups = _args.conv_groups(name, groups, self.in_channels, self.out_channels)
        has_bias = flag(name, "bias", bias)
        rng = generator(name, rng)
        R, S = self.kernel_size
        fan_in = self.in_channels // self.groups * R * S
        self.weight = Parameter(allocate((self.out_channels, self.in_channels // self.groups,
                                          R, S)))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), rng=rng)
        self.bias = None
        if has_bias:
            bound = 1 / math.sqrt(fan_in)
            self.bias = Parameter(allocate((self.out_channels,)))
            init.uniform_(self.bias, -bound, bound, rng=rng)

    def _hyper(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 4 or input_shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expects input (N, {self.in_channels}, H, W) with "
                             f"{self.in_channels} channels, got shape {tuple(input_shape)}")
        return _args.conv_geometry(repr(self), tuple(input_shape), self.weight.shape,
                                   **self._hyper()).out_shape

    def forward(self, x):
        x = self._input(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            self.output_shape(x.shape)  # raises, naming this layer
        bias = None if self.bias is None else self.bias.data
        y = ops().conv2d(x, self.weight.data, bias, **self._hyper())
        self._ctx = x
        return y

    def backward(self, grad, input_grad=True):
        """Accumulate the weight and bias gradients; return the input's (None when
        input_grad is False: it is skipped, see `Sequential.backward`)."""
        x = self._saved()
        grad_x, grad_w, grad_b = ops().conv2d_backward(np.asarray(grad, self._dtype), x, self.weight.data,
                                                       **self._hyper(), input_grad=input_grad)
        self.weight.accumulate(grad_w)
        if self.bias is not None:
            self.bias.accumulate(grad_b)
        return grad_x

    def arguments(self) -> dict:
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return dict(in_channels=self.in_channels, out_channels=self.out_channels,
                    kernel_size=list(self.kernel_size), stride=list(self.stride),
                    padding=padding, dilation=list(self.dilation), groups=self.groups,
                    bias=self.bias is not None)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s

    def _flops(self, input_shape, output_shape) -> int:
        N, K, P, Q = output_shape
        R, S = self.kernel_size
        return 2 * N * K * P * Q * (self.in_channels // self.groups) * R * S
