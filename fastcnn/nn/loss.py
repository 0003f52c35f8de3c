"""Losses: CrossEntropyLoss (fused log-softmax) and MSELoss.

A loss is called as ``loss_fn(prediction, target)`` and returns a Python float (an array of
per-sample losses with reduction='none'); ``loss_fn.backward()`` then returns the gradient of
that loss with respect to the prediction (with reduction='none': of the sum of the per-sample
losses). Losses compute in the prediction's dtype (float32 or float64; others become float32).
"""
from __future__ import annotations

import numpy as np

from .._config import reuses_memory
from .._validate import choice, float_input, real
from .registry import register

__all__ = ["CrossEntropyLoss", "MSELoss"]

_REDUCTIONS = ("mean", "sum", "none")


class _Loss:
    """Shared parts: the reduction argument, the saved context, config and repr."""

    def __init__(self, reduction):
        self.reduction = choice(type(self).__name__, "reduction", reduction, _REDUCTIONS)
        self._ctx = None

    def __call__(self, prediction, target):
        return self.forward(prediction, target)

    def _reduce(self, losses: np.ndarray):
        if self.reduction == "none":
            return losses
        return float(losses.mean() if self.reduction == "mean" else losses.sum())

    def _saved(self):
        if self._ctx is None:
            raise RuntimeError(f"{self!r}: backward called before the loss was computed")
        return self._ctx

    def get_config(self) -> dict:
        """{"class": class name, "config": constructor arguments}, for `from_config`."""
        return {"class": type(self).__name__, "config": self.arguments()}

    @classmethod
    def from_arguments(cls, arguments: dict):
        return cls(**arguments)

    def _extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._extra_repr()})"


@register
class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy between logits and integer class labels, as
    ``torch.nn.CrossEntropyLoss``.

    The log-softmax is fused and stable (the row maximum is subtracted first). With label
    smoothing e, the target is (1 - e) on the true class plus e / C spread over all classes:
    ``loss_i = (1 - e) * -log p[i, y_i] + e * mean_c(-log p[i, c])``.

    Args:
        label_smoothing: e, in [0, 1].
        reduction: 'mean' over the batch, 'sum', or 'none' (per-sample array).

    Shape:
        logits (N, C) float; target (N,) integers in [0, C); loss a float ((N,) with 'none').

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> loss_fn = nn.CrossEntropyLoss()
        >>> round(loss_fn(np.zeros((2, 4)), np.array([0, 3])), 4)
        1.3863
        >>> loss_fn.backward()
        array([[-0.375,  0.125,  0.125,  0.125],
               [ 0.125,  0.125,  0.125, -0.375]])
    """

    def __init__(self, label_smoothing=0.0, reduction="mean"):
        super().__init__(reduction)
        self.label_smoothing = real("CrossEntropyLoss", "label_smoothing", label_smoothing,
                                    0.0, 1.0)

    @reuses_memory
    def forward(self, logits, target):
        logits = float_input("CrossEntropyLoss", "logits", logits)
        if logits.ndim != 2:
            raise ValueError(f"CrossEntropyLoss expects logits of shape (N, C), got shape "
                             f"{logits.shape}")
        N, C = logits.shape
        target = np.asarray(target)
        if target.dtype.kind not in "iu":
            raise TypeError(f"CrossEntropyLoss expects integer class labels, got dtype "
                            f"{target.dtype}")
        if target.shape != (N,):
            raise ValueError(f"CrossEntropyLoss expects target of shape ({N},) for logits of "
                             f"shape {logits.shape}, got shape {target.shape}")
        if N and (target.min() < 0 or target.max() >= C):
            raise ValueError(f"CrossEntropyLoss expects labels in [0, {C}), got values in "
                             f"[{target.min()}, {target.max()}]")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        e = self.label_smoothing
        losses = -log_p[np.arange(N), target]
        if e:
            losses = (1 - e) * losses - e * log_p.mean(axis=1)
        self._ctx = (log_p, target)
        return self._reduce(losses)

    @reuses_memory
    def backward(self):
        log_p, target = self._saved()
        N, C = log_p.shape
        e = self.label_smoothing
        grad = np.exp(log_p)
        grad[np.arange(N), target] -= log_p.dtype.type(1 - e)
        if e:
            grad -= log_p.dtype.type(e / C)
        if self.reduction == "mean":
            grad /= log_p.dtype.type(N)
        return grad

    def arguments(self) -> dict:
        return {"label_smoothing": self.label_smoothing, "reduction": self.reduction}

    def _extra_repr(self) -> str:
        parts = [f"label_smoothing={self.label_smoothing}"] if self.label_smoothing else []
        return ", ".join(parts + ([super()._extra_repr()] if self.reduction != "mean" else []))


@register
class MSELoss(_Loss):
    """Mean squared error, as ``torch.nn.MSELoss``: mean((prediction - target) ** 2).

    Args:
        reduction: 'mean' over all elements, 'sum', or 'none' (element-wise array).

    Shape:
        prediction any shape; target the same shape.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> loss_fn = nn.MSELoss()
        >>> loss_fn(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
        5.0
        >>> loss_fn.backward()
        array([1., 3.])
    """

    def __init__(self, reduction="mean"):
        super().__init__(reduction)

    @reuses_memory
    def forward(self, prediction, target):
        prediction = float_input("MSELoss", "prediction", prediction)
        target = float_input("MSELoss", "target", target)
        if target.shape != prediction.shape:
            raise ValueError(f"MSELoss expects target of the prediction's shape "
                             f"{prediction.shape}, got shape {target.shape}")
        diff = prediction - target.astype(prediction.dtype, copy=False)
        self._ctx = diff
        return self._reduce(diff * diff)

    @reuses_memory
    def backward(self):
        diff = self._saved()
        grad = 2 * diff
        if self.reduction == "mean":
            grad /= diff.dtype.type(max(diff.size, 1))
        return grad

    def arguments(self) -> dict:
        return {"reduction": self.reduction}
