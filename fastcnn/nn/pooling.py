"""MaxPool2d and AvgPool2d: pooling layers on the compiled kernels of `fastcnn.functional`."""
from __future__ import annotations

import numpy as np

from .. import _args
from .._validate import flag
from .backend import ops
from .module import Module
from .registry import register

__all__ = ["MaxPool2d", "AvgPool2d"]


def _show(pair: tuple):
    """An int when both sides agree, else the pair: how the repr shows pooling sizes."""
    return pair[0] if pair[0] == pair[1] else pair


class _Pool2d(Module):
    """Shared argument handling: sizes as pairs, stride defaulting to the kernel size."""

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode):
        super().__init__()
        name = type(self).__name__
        self.kernel_size, self.stride, self.padding, self.dilation = _args.pool_window(
            name, kernel_size, stride, padding, dilation)
        self.ceil_mode = flag(name, "ceil_mode", ceil_mode)

    def _input4(self, x) -> np.ndarray:
        x = self._input(x)
        if x.ndim != 4:
            raise ValueError(f"{self!r} expects 4-D input (N, C, H, W), got shape {x.shape}")
        return x

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) != 4:
            raise ValueError(f"{self!r} expects 4-D input (N, C, H, W), got shape "
                             f"{tuple(input_shape)}")
        hyper = self._hyper()
        return _args.pool_geometry(repr(self), tuple(input_shape), hyper["kernel_size"],
                                   hyper["stride"], hyper["padding"],
                                   hyper.get("dilation", 1), hyper["ceil_mode"]).out_shape

    def arguments(self) -> dict:
        return dict(kernel_size=list(self.kernel_size), stride=list(self.stride),
                    padding=list(self.padding), ceil_mode=self.ceil_mode)

    def extra_repr(self) -> str:
        s = f"kernel_size={_show(self.kernel_size)}, stride={_show(self.stride)}"
        if self.padding != (0, 0):
            s += f", padding={_show(self.padding)}"
        if self.dilation != (1, 1):
            s += f", dilation={_show(self.dilation)}"
        if self.ceil_mode:
            s += ", ceil_mode=True"
        return s


@register
class MaxPool2d(_Pool2d):
    """Max pooling over each channel, as ``torch.nn.MaxPool2d``.

    Padding acts as -inf (at most half the kernel); ties go to the first maximum in row-major
    window order; NaN propagates. The gradient flows to the argmax of each window.

    Args:
        kernel_size: int or (kh, kw).
        stride: int or pair; default kernel_size.
        padding: int or pair, at most kernel_size // 2.
        dilation: int or pair, spacing between window taps.
        ceil_mode: round output sizes up (the last window must start inside the input or the
            left padding).

    Shape:
        input (N, C, H, W); output (N, C, P, Q) with
        P = floor((H + 2*ph - dh*(kh - 1) - 1) / sh) + 1 (ceil with ceil_mode), Q likewise.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> nn.MaxPool2d(2)(np.arange(16.).reshape(1, 1, 4, 4))
        array([[[[ 5.,  7.],
                 [13., 15.]]]], dtype=float32)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)

    def _hyper(self) -> dict:
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    dilation=self.dilation, ceil_mode=self.ceil_mode)

    def forward(self, x):
        x = self._input4(x)
        y, indices = ops().max_pool2d(x, return_indices=True, **self._hyper())
        self._ctx = (indices, x.shape)
        return y

    def backward(self, grad, input_grad=True):
        indices, shape = self._saved()
        return ops().max_pool2d_backward(np.asarray(grad, self._dtype), indices, shape,
                                         **self._hyper())

    def arguments(self) -> dict:
        return {**super().arguments(), "dilation": list(self.dilation)}


@register
class AvgPool2d(_Pool2d):
    """Average pooling over each channel, as ``torch.nn.AvgPool2d``.

    Args:
        kernel_size: int or (kh, kw).
        stride: int or pair; default kernel_size.
        padding: int or pair of zeros, at most kernel_size // 2.
        ceil_mode: round output sizes up.
        count_include_pad: count the zero padding in each window's divisor.

    Shape:
        input (N, C, H, W); output (N, C, P, Q) with
        P = floor((H + 2*ph - kh) / sh) + 1 (ceil with ceil_mode), Q likewise.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> nn.AvgPool2d(2)(np.arange(16.).reshape(1, 1, 4, 4))
        array([[[[ 2.5,  4.5],
                 [10.5, 12.5]]]], dtype=float32)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = flag("AvgPool2d", "count_include_pad",
                                            count_include_pad)

    def _hyper(self) -> dict:
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)

    def forward(self, x):
        x = self._input4(x)
        self._ctx = x.shape
        return ops().avg_pool2d(x, **self._hyper())

    def backward(self, grad, input_grad=True):
        shape = self._saved()
        return ops().avg_pool2d_backward(np.asarray(grad, self._dtype), shape, **self._hyper())

    def arguments(self) -> dict:
        return {**super().arguments(), "count_include_pad": self.count_include_pad}

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.count_include_pad else s + ", count_include_pad=False"
