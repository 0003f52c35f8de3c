"""summary(model, input_shape): output shape, parameter count and FLOPs of every layer."""
from __future__ import annotations

import builtins
from dataclasses import dataclass, field

import numpy as np

from .._validate import shape
from .container import Sequential
from .module import Module

__all__ = ["summary", "ModelSummary", "LayerSummary"]


@dataclass
class LayerSummary:
    """One row: the layer's dotted name, its class, output shape, parameters and FLOPs."""
    name: str
    kind: str
    output_shape: tuple
    params: int
    flops: int


@dataclass
class ModelSummary:
    """Rows for the leaf layers (Sequentials are opened) and the totals; str() is the table."""
    input_shape: tuple
    rows: list = field(default_factory=list)

    @property
    def output_shape(self) -> tuple:
        return self.rows[-1].output_shape if self.rows else self.input_shape

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_flops(self) -> int:
        return sum(r.flops for r in self.rows)

    def __str__(self) -> str:
        header = ("Layer", "Type", "Output shape", "Params", "FLOPs")
        body = [(r.name, r.kind, str(r.output_shape), f"{r.params:,}", f"{r.flops:,}")
                for r in self.rows]
        widths = [max(len(row[i]) for row in [header] + body) for i in range(5)]

        def line(row):
            left = "  ".join(c.ljust(w) for c, w in zip(row[:3], widths[:3]))
            right = "  ".join(c.rjust(w) for c, w in zip(row[3:], widths[3:]))
            return f"{left}  {right}"

        rule = "-" * len(line(header))
        lines = [f"Input shape: {self.input_shape}", rule, line(header), rule]
        lines += [line(row) for row in body]
        lines += [rule, f"Total params: {self.total_params:,}",
                  f"Total FLOPs:  {self.total_flops:,} (2 per multiply-add, conv and linear)"]
        return "\n".join(lines)


def _run(module: Module, x: np.ndarray, name: str, rows: list) -> np.ndarray:
    if isinstance(module, Sequential):
        for child_name, child in module._modules.items():
            x = _run(child, x, f"{name}.{child_name}" if name else child_name, rows)
        return x
    y = module(x)
    params = sum(p.size for p in module.parameters())
    rows.append(LayerSummary(name or type(module).__name__, type(module).__name__, y.shape,
                             params, module._flops(x.shape, y.shape)))
    return y


def summary(model: Module, input_shape, print: bool = True) -> ModelSummary:
    """Run one forward pass on zeros in eval mode and tabulate every layer.

    FLOPs count 2 per multiply-add: conv 2*N*K*P*Q*(C/groups)*R*S, linear 2*N*in*out; other
    layers count 0. The model's training flags are restored and its forward caches cleared
    afterwards; running statistics are not touched.

    Args:
        model: a Module (Sequentials are listed layer by layer).
        input_shape: the full input shape, batch included, e.g. (1, 3, 32, 32).
        print: also print the table.

    Returns:
        a `ModelSummary` (rows, total_params, total_flops, output_shape; str() is the table).

    Example:
        >>> from fastcnn import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.Flatten(), nn.Linear(144, 2))
        >>> s = summary(model, (1, 1, 8, 8), print=False)
        >>> s.total_params, s.total_flops
        (330, 3168)
    """
    input_shape = shape("summary", "input_shape", input_shape, ndim=None)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    result = ModelSummary(input_shape)
    try:
        _run(model, np.zeros(input_shape, model.dtype), "", result.rows)
    finally:
        for m, mode in modes:
            m.training = mode
            m._ctx = None
    if print:
        builtins.print(result)
    return result
