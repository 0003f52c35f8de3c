"""The case table: what `fastcnn bench` and the pytest-benchmark suites in benchmarks/ time.

A case is an operation (`Case.op`) on a layer or a network (`Case.spec`): convolution layers
(forward, backward-data and backward-weights timed separately), max-pooling (forward with
indices, backward) and whole networks (one training step: forward, loss, backward, SGD step;
and inference). The table is plain data; `make_inputs` draws the arrays a case reads, shared
by every engine. ``Case.quick()`` divides the batch size by 8 (at least 1): --quick and the
benchmark smoke run use those shapes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import functional as F

__all__ = ["Conv", "Pool", "Net", "Case", "LENET5", "VGG_CIFAR", "CASES", "select",
           "make_inputs"]


@dataclass(frozen=True)
class Conv:
    """One convolution layer: input (N, C, H, W), weights (K, C/groups, R, S)."""
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: int = 1
    padding: int = 0
    groups: int = 1

    @property
    def P(self) -> int:
        return (self.H + 2 * self.padding - self.R) // self.stride + 1

    @property
    def Q(self) -> int:
        return (self.W + 2 * self.padding - self.S) // self.stride + 1

    @property
    def flops(self) -> int:
        """Multiply-adds of one pass, times two: 2 * N * K * P * Q * C/groups * R * S."""
        return 2 * self.N * self.K * self.P * self.Q * self.C // self.groups * self.R * self.S

    def describe(self) -> str:
        g = f", groups {self.groups}" if self.groups > 1 else ""
        return (f"{self.N}x{self.C}x{self.H}x{self.W} -> {self.K}, {self.R}x{self.S} "
                f"stride {self.stride} pad {self.padding}{g}")


@dataclass(frozen=True)
class Pool:
    """One max-pooling layer over (N, C, H, W)."""
    N: int
    C: int
    H: int
    W: int
    kernel: int
    stride: int
    padding: int = 0

    @property
    def P(self) -> int:
        return (self.H + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def Q(self) -> int:
        return (self.W + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def flops(self) -> None:
        return None

    @property
    def bytes_moved(self) -> int:
        """Bytes one pass must read and write: forward reads x and writes y and the int64
        indices; backward reads grad_y and the indices and writes grad_x (the same sizes)."""
        return self.N * self.C * (4 * self.H * self.W + (4 + 8) * self.P * self.Q)

    def describe(self) -> str:
        return (f"{self.N}x{self.C}x{self.H}x{self.W}, {self.kernel}x{self.kernel} "
                f"stride {self.stride} pad {self.padding}")


@dataclass(frozen=True)
class Net:
    """A small network as a list of layers, on a batch (N, *image) of 10-class images.

    Layers: ("conv", in, out, kernel, padding), ("relu",), ("pool", 2), ("flatten",),
    ("linear", in, out).
    """
    name: str
    N: int
    image: tuple
    layers: tuple

    @property
    def flops(self) -> int:
        """Forward flops of the conv and linear layers (2 per multiply-add)."""
        (_, H, W), total = self.image, 0
        for layer in self.layers:
            if layer[0] == "conv":
                _, cin, cout, k, pad = layer
                conv = Conv(self.N, cin, H, W, cout, k, k, padding=pad)
                total += conv.flops
                H, W = conv.P, conv.Q
            elif layer[0] == "pool":
                H, W = H // layer[1], W // layer[1]
            elif layer[0] == "linear":
                total += 2 * self.N * layer[1] * layer[2]
        return total

    def describe(self) -> str:
        return f"{self.name}, batch {self.N} of {'x'.join(map(str, self.image))}"


LENET5 = (("conv", 1, 6, 5, 2), ("relu",), ("pool", 2),
          ("conv", 6, 16, 5, 0), ("relu",), ("pool", 2), ("flatten",),
          ("linear", 16 * 5 * 5, 120), ("relu",), ("linear", 120, 84), ("relu",),
          ("linear", 84, 10))

VGG_CIFAR = (("conv", 3, 32, 3, 1), ("relu",), ("conv", 32, 32, 3, 1), ("relu",), ("pool", 2),
             ("conv", 32, 64, 3, 1), ("relu",), ("conv", 64, 64, 3, 1), ("relu",), ("pool", 2),
             ("flatten",), ("linear", 64 * 8 * 8, 256), ("relu",), ("linear", 256, 10))

_OPS = {Conv: ("forward", "backward_data", "backward_weight"),
        Pool: ("forward", "backward"),
        Net: ("train_step", "inference")}


@dataclass(frozen=True)
class Case:
    """One benchmark: an operation (`op`) on a layer or network (`spec`)."""
    name: str
    op: str
    spec: Conv | Pool | Net

    @property
    def kind(self) -> str:
        return type(self.spec).__name__.lower()

    @property
    def flops(self) -> int | None:
        """Flops of one call: one conv pass; a training step counts 3x the forward (forward,
        backward-data, backward-weights); pooling counts none."""
        if self.op == "train_step":
            return 3 * self.spec.flops
        return self.spec.flops

    @property
    def bytes_moved(self) -> int | None:
        """Bytes one call must read and write, for memory-bound cases (pooling); else None."""
        return self.spec.bytes_moved if isinstance(self.spec, Pool) else None

    @property
    def batch(self) -> int:
        return self.spec.N

    def quick(self) -> "Case":
        """The same case with the batch size divided by 8 (at least 1)."""
        spec = dataclasses.replace(self.spec, N=max(1, self.spec.N // 8))
        return dataclasses.replace(self, spec=spec)


def _cases(label: str, spec) -> list[Case]:
    kind = type(spec).__name__.lower()
    return [Case(f"{kind}.{label}.{op}", op, spec) for op in _OPS[type(spec)]]


CASES: list[Case] = [
    *_cases("lenet5-c1", Conv(64, 1, 28, 28, 6, 5, 5, padding=2)),
    *_cases("lenet5-c2", Conv(64, 6, 14, 14, 16, 5, 5)),
    *_cases("cifar-c1", Conv(32, 3, 32, 32, 32, 3, 3, padding=1)),
    *_cases("vgg-3x3", Conv(8, 64, 56, 56, 64, 3, 3, padding=1)),
    *_cases("resnet-3x3", Conv(16, 128, 28, 28, 128, 3, 3, padding=1)),
    *_cases("resnet-1x1", Conv(32, 256, 14, 14, 256, 1, 1)),
    *_cases("stem-7x7s2", Conv(8, 3, 224, 224, 64, 7, 7, stride=2, padding=3)),
    *_cases("depthwise-3x3", Conv(16, 128, 28, 28, 128, 3, 3, padding=1, groups=128)),
    *_cases("2x2s2", Pool(32, 64, 56, 56, 2, 2)),
    *_cases("3x3s2p1", Pool(32, 64, 56, 56, 3, 2, 1)),
    *_cases("lenet5", Net("LeNet-5", 64, (1, 28, 28), LENET5)),
    *_cases("vgg-cifar", Net("VGG-style CIFAR", 64, (3, 32, 32), VGG_CIFAR)),
]


def select(patterns: list[str] | None) -> list[Case]:
    """The cases whose name contains any of the patterns (all cases without patterns)."""
    if not patterns:
        return list(CASES)
    return [c for c in CASES if any(p in c.name for p in patterns)]


def make_inputs(case: Case, seed: int = 0) -> dict:
    """The float32 arrays a case's call reads, shared by all engines (torch views them)."""
    rng = np.random.default_rng(seed)
    s = case.spec

    def normal(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    if isinstance(s, Conv):
        return {"x": normal(s.N, s.C, s.H, s.W), "weight": normal(s.K, s.C // s.groups, s.R, s.S),
                "bias": normal(s.K), "grad_y": normal(s.N, s.K, s.P, s.Q)}
    if isinstance(s, Pool):
        x = normal(s.N, s.C, s.H, s.W)
        _, indices = F.max_pool2d(x, s.kernel, s.stride, s.padding, return_indices=True)
        return {"x": x, "grad_y": normal(s.N, s.C, s.P, s.Q), "indices": indices}
    return {"x": normal(s.N, *s.image), "labels": rng.integers(0, 10, s.N)}
