"""Benchmarks: fastcnn against plain NumPy and PyTorch, on this machine, in one run.

`fastcnn bench` (or ``python -m fastcnn.bench``) answers four questions at once:

* How much faster than plain NumPy? Every case also runs on `fastcnn.reference`, the honest
  best vectorised NumPy (im2col + one batched BLAS matmul per convolution).
* How close to PyTorch? When torch is importable, every case also runs on its CPU kernels.
* How close to the machine's limit? Convolutions report GFLOP/s, counting
  ``2 * N * K * P * Q * C/groups * R * S`` per pass (forward, backward-data and
  backward-weights alike), and its percentage of the sgemm peak: the median GFLOP/s of a large
  float32 ``numpy.matmul`` (2048^3; 1024^3 with --quick), timed in turns with the case's
  engines (``sgemm_gflops`` in the case's JSON; ``sgemm_peak_gflops``, measured once at the
  start, is what the other kinds of case are shown beside). Where
  OpenBLAS does not know the CPU it falls back to narrower SIMD kernels (the report names
  them), so fastcnn can pass 100%.
  Max-pooling moves memory rather than computing: it reports GB/s (the bytes it must read
  and write: input, output and int64 indices) and their percentage of the machine's copy
  bandwidth, the median GB/s (read + written) of copying a 64 MiB float32 array, split over
  the run's threads, measured in the same run.
* How much memory? The peak extra memory of one call (see Memory below).

The case table `CASES` is plain data, shared with the pytest-benchmark suites in benchmarks/:
convolution layers (forward, backward-data and backward-weights timed separately), max-pooling
(forward with indices, backward) and whole networks (one training step: forward, loss,
backward, SGD step; and inference). ``Case.quick()`` divides a case's batch size by 8 (at least
1): --quick and the benchmark smoke run use those shapes.

Timing. All engines run on the same thread count: ``fastcnn.set_num_threads``,
``torch.set_num_threads`` and NumPy's OpenBLAS (through its C API; where NumPy's BLAS is not
OpenBLAS its own default applies, and the JSON says so). The engines take turns in rounds (5;
2 with --quick), one block each per round, the order rotating from round to round, so that
drift (clock boost, heat, other load) touches every engine alike. A block is a few untimed calls
(warm-up, and time for the previous engine's idle threads to stop spinning) and then timed
calls, as many as the engine's time budget allows (at most 20 per block). The figures are the
medians of all timed calls. A busy machine makes them noisy: the report warns when the load
average was high at the start.

Thread scaling. ``--scaling`` times each case on fastcnn alone, on one thread and on
``--threads`` (at least 2), with the sgemm on one and on as many beside it: all four take turns
in the same rounds, so that the VM's drift, which between two runs of a thread count each
showed as scaling, touches them alike (`run_scaling_case`).

Memory. "Peak extra memory" is the peak of Python's tracemalloc during one call, minus what was
traced when the call began: every NumPy array the call allocates (NumPy reports its data buffers
to tracemalloc), its outputs included, plus Python objects. Memory that C code takes with plain
``malloc`` is not seen; torch allocates that way, so its memory is not reported (null in the
JSON).

Conv backward-data and backward-weights are the two halves of ``conv2d_backward``, split here
(`_fastcnn_conv_backward_data` and friends) so that each is timed alone.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
import gc
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import __version__, _args, _blas, _config
from . import functional as F
from .cli import _positive_int
from . import reference as R
from ._kernels import conv as _conv

__all__ = ["Conv", "Pool", "Net", "Case", "CASES", "ENGINES", "available_engines",
           "make_inputs", "SameThreads", "sgemm_peak", "copy_bandwidth", "machine_info", "run",
           "main"]


# ------------------------------------------------------------------------------ case table

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


# -------------------------------------------------------------------------------- engines
#
# conv2d_backward split in two. fastcnn: the checks and the kernel call of one half of
# functional.conv2d_backward; reference: the NumPy steps of one half of reference.conv2d_backward.

def _fastcnn_conv_backward_data(grad_y, x, weight, stride, padding, groups):
    grad_y, x, weight, g = _args.conv_backward_args("conv2d_backward", grad_y, x, weight,
                                                    stride, padding, 1, groups)
    grad_x = np.empty(x.shape, dtype=x.dtype)
    _conv.backward_data(grad_y, weight, grad_x, *F._conv_params(g))
    return grad_x


def _fastcnn_conv_backward_weight(grad_y, x, weight, stride, padding, groups):
    grad_y, x, weight, g = _args.conv_backward_args("conv2d_backward", grad_y, x, weight,
                                                    stride, padding, 1, groups)
    grad_w = np.empty(weight.shape, dtype=x.dtype)
    _conv.backward_weight(grad_y, x, grad_w, *F._conv_params(g))
    return grad_w


def _reference_conv_backward_data(grad_y, x, weight, stride, padding, groups):
    grad_y, x, weight, g = _args.conv_backward_args("conv2d_backward", grad_y, x, weight,
                                                    stride, padding, 1, groups)
    gy__ngkl = grad_y.reshape(g.N, g.groups, g.K // g.groups, g.P * g.Q)
    w__gkx = weight.reshape(g.groups, g.K // g.groups, -1)
    dcols__ngxl = w__gkx.swapaxes(-1, -2) @ gy__ngkl
    grad_xp = np.zeros((g.N, g.C, g.H + g.pad_top + g.pad_bottom, g.W + g.pad_left + g.pad_right),
                       dtype=x.dtype)
    R._col2im(grad_xp, dcols__ngxl.reshape(g.N, g.C, g.R, g.S, g.P, g.Q), g.stride, g.dilation)
    return np.ascontiguousarray(grad_xp[:, :, g.pad_top:g.pad_top + g.H,
                                        g.pad_left:g.pad_left + g.W])


def _reference_conv_backward_weight(grad_y, x, weight, stride, padding, groups):
    grad_y, x, weight, g = _args.conv_backward_args("conv2d_backward", grad_y, x, weight,
                                                    stride, padding, 1, groups)
    gy__ngkl = grad_y.reshape(g.N, g.groups, g.K // g.groups, g.P * g.Q)
    cols__ngxl = R._conv_columns(x, g)
    return (gy__ngkl @ cols__ngxl.swapaxes(-1, -2)).sum(axis=0).reshape(weight.shape)


class _NumpyEngine:
    """fastcnn or the NumPy reference: the same function signatures, different modules.

    net(case, inputs) makes a network case's call; net_missing() says why it cannot (or None).
    """

    traced = True  # its arrays are NumPy's, so tracemalloc sees them

    def __init__(self, name, functional, backward_data, backward_weight, net, net_missing):
        self.name = name
        self.F = functional
        self.backward_data = backward_data
        self.backward_weight = backward_weight
        self.net, self.net_missing = net, net_missing

    def unsupported(self, case: Case) -> str | None:
        """Why this engine cannot run the case, or None."""
        return self.net_missing() if isinstance(case.spec, Net) else None

    def prepare(self, case: Case, d: dict) -> Callable[[], object]:
        s, F = case.spec, self.F
        if isinstance(s, Conv):
            conv = (s.stride, s.padding)
            if case.op == "forward":
                return lambda: F.conv2d(d["x"], d["weight"], d["bias"], *conv, 1, s.groups)
            backward = {"backward_data": self.backward_data,
                        "backward_weight": self.backward_weight}[case.op]
            return lambda: backward(d["grad_y"], d["x"], d["weight"], *conv, s.groups)
        if isinstance(s, Pool):
            pool = (s.kernel, s.stride, s.padding)
            if case.op == "forward":
                return lambda: F.max_pool2d(d["x"], *pool, return_indices=True)
            return lambda: F.max_pool2d_backward(d["grad_y"], d["indices"], d["x"].shape, *pool)
        return self.net(case, d)


class _TorchEngine:
    """PyTorch's CPU kernels on the same arrays (torch.from_numpy shares their memory)."""

    name = "torch"
    traced = False  # torch allocates with malloc, unseen by tracemalloc

    def __init__(self, torch):
        self.torch = torch

    def unsupported(self, case: Case) -> str | None:
        return None

    def prepare(self, case: Case, d: dict) -> Callable[[], object]:
        torch, s = self.torch, case.spec
        t = {k: torch.from_numpy(v) for k, v in d.items()}
        if isinstance(s, Net):
            return _torch_net_call(torch, case, t)
        aten = torch.ops.aten
        if isinstance(s, Conv):
            conv = ([s.stride] * 2, [s.padding] * 2, [1, 1])
            if case.op == "forward":
                return _no_grad(torch, lambda: torch.nn.functional.conv2d(
                    t["x"], t["weight"], t["bias"], *conv, s.groups))
            mask = [case.op == "backward_data", case.op == "backward_weight", False]
            return _no_grad(torch, lambda: aten.convolution_backward(
                t["grad_y"], t["x"], t["weight"], None, *conv, False, [0, 0], s.groups, mask))
        pool = ([s.kernel] * 2, [s.stride] * 2, [s.padding] * 2, [1, 1], False)
        if case.op == "forward":
            return _no_grad(torch, lambda: aten.max_pool2d_with_indices(t["x"], *pool))
        return _no_grad(torch, lambda: aten.max_pool2d_with_indices_backward(
            t["grad_y"], t["x"], *pool, t["indices"]))


def _no_grad(torch, fn):
    def call():
        with torch.no_grad():
            return fn()
    return call


@functools.cache
def _import_torch():
    """(torch module, None), or (None, why it is unavailable)."""
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install (OSError from its libraries)
        return None, f"{type(e).__name__}: {e}"
    return torch, None


def available_engines() -> dict:
    """Engine name -> engine, for the engines this Python can run (torch when importable)."""
    engines = dict(ENGINES)
    torch, _ = _import_torch()
    if torch is not None:
        engines["torch"] = _TorchEngine(torch)
    return engines


# ------------------------------------------------------------------------------- networks

def _nn_missing() -> str | None:
    try:
        from . import nn, optim  # noqa: F401
    except ImportError as e:
        return f"fastcnn.nn / fastcnn.optim not available ({e})"
    return None


def _nn_call(case: Case, d: dict) -> Callable[[], object]:
    """One training step or one inference of the case's network built from fastcnn.nn."""
    from . import nn, optim

    layers = {"conv": lambda cin, cout, k, pad: nn.Conv2d(cin, cout, k, padding=pad),
              "relu": nn.ReLU, "pool": nn.MaxPool2d, "flatten": nn.Flatten, "linear": nn.Linear}
    model = nn.Sequential(*(layers[kind](*args) for kind, *args in case.spec.layers))
    x, labels = d["x"], d["labels"]
    if case.op == "inference":
        model.eval()
        return lambda: model(x)
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.01)

    def step():
        loss = loss_fn(model(x), labels)
        opt.zero_grad()
        model.backward(loss_fn.backward(), input_grad=False)  # as torch: x needs no gradient
        opt.step()
        return loss
    return step


# The NumPy reference's network: fastcnn.nn has no switch to run its layers on
# fastcnn.reference, so these few plain NumPy layers do what its layers do (the same
# arithmetic, the same saved state), with the reference's convolution and pooling.

class _RefConv:
    def __init__(self, cin, cout, k, pad, rng):
        bound = 1 / np.sqrt(cin * k * k)
        self.w = rng.uniform(-bound, bound, (cout, cin, k, k)).astype(np.float32)
        self.b = rng.uniform(-bound, bound, cout).astype(np.float32)
        self.pad = pad

    def forward(self, x):
        self.x = x
        return R.conv2d(x, self.w, self.b, 1, self.pad)

    def backward(self, grad, input_grad=True):
        grad_x, self.grad_w, self.grad_b = R.conv2d_backward(grad, self.x, self.w, 1, self.pad,
                                                             input_grad=input_grad)
        return grad_x

    def step(self, lr):
        self.w -= lr * self.grad_w
        self.b -= lr * self.grad_b


class _RefLinear:
    def __init__(self, cin, cout, rng):
        bound = 1 / np.sqrt(cin)
        self.w = rng.uniform(-bound, bound, (cout, cin)).astype(np.float32)
        self.b = rng.uniform(-bound, bound, cout).astype(np.float32)

    def forward(self, x):
        self.x = x
        return x @ self.w.T + self.b

    def backward(self, grad):
        self.grad_w, self.grad_b = grad.T @ self.x, grad.sum(axis=0)
        return grad @ self.w

    def step(self, lr):
        self.w -= lr * self.grad_w
        self.b -= lr * self.grad_b


class _RefReLU:
    def forward(self, x):
        self.alive = x > 0
        return np.maximum(x, np.float32(0))

    def backward(self, grad):
        return grad * self.alive   # (np.where with this mask is several times slower)


class _RefMaxPool:
    def __init__(self, k):
        self.k = k

    def forward(self, x):
        self.shape = x.shape
        y, self.indices = R.max_pool2d(x, self.k, return_indices=True)
        return y

    def backward(self, grad):
        return R.max_pool2d_backward(grad, self.indices, self.shape, self.k)


class _RefFlatten:
    def forward(self, x):
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, grad):
        return grad.reshape(self.shape)


def _reference_net_call(case: Case, d: dict) -> Callable[[], object]:
    """One training step (softmax cross-entropy, plain SGD) or one inference of the case's
    network on the reference kernels."""
    rng = np.random.default_rng(0)
    make = {"conv": lambda *a: _RefConv(*a, rng), "linear": lambda *a: _RefLinear(*a, rng),
            "relu": _RefReLU, "pool": _RefMaxPool, "flatten": _RefFlatten}
    layers = [make[kind](*args) for kind, *args in case.spec.layers]
    x, labels = d["x"], d["labels"]

    def forward():
        y = x
        for layer in layers:
            y = layer.forward(y)
        return y
    if case.op == "inference":
        return forward

    def step():
        logits = forward()
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows = np.arange(len(labels))
        grad = np.exp(log_p)
        grad[rows, labels] -= 1
        grad /= len(labels)
        for layer in reversed(layers[1:]):
            grad = layer.backward(grad)
        if isinstance(layers[0], _RefConv):   # as fastcnn and torch: x needs no gradient
            layers[0].backward(grad, input_grad=False)
        else:
            layers[0].backward(grad)
        for layer in layers:
            if hasattr(layer, "step"):
                layer.step(0.01)
        return -log_p[rows, labels].mean()
    return step


def _torch_net_call(torch, case: Case, t: dict) -> Callable[[], object]:
    nn = torch.nn
    layers = {"conv": lambda cin, cout, k, pad: nn.Conv2d(cin, cout, k, padding=pad),
              "relu": nn.ReLU, "pool": nn.MaxPool2d, "flatten": nn.Flatten, "linear": nn.Linear}
    model = nn.Sequential(*(layers[kind](*args) for kind, *args in case.spec.layers))
    x, labels = t["x"], t["labels"]
    if case.op == "inference":
        model.eval()
        return _no_grad(torch, lambda: model(x))
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step():
        loss = loss_fn(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


ENGINES = {
    "fastcnn": _NumpyEngine("fastcnn", F, _fastcnn_conv_backward_data,
                            _fastcnn_conv_backward_weight, _nn_call, _nn_missing),
    "reference": _NumpyEngine("reference", R, _reference_conv_backward_data,
                              _reference_conv_backward_weight, _reference_net_call,
                              lambda: None),
}


# ------------------------------------------------------------------------- threads, machine

class SameThreads:
    """Context manager: fastcnn, NumPy's OpenBLAS and torch (if given) on n threads, restored
    afterwards."""

    def __init__(self, n: int, torch=None):
        self.n, self.torch = n, torch

    def __enter__(self):
        self.before = (_config.get_num_threads(), _blas.threads(),
                       self.torch.get_num_threads() if self.torch else None)
        _config.set_num_threads(self.n)
        _blas.threads(self.n)
        if self.torch:
            self.torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        fastcnn_n, blas_n, torch_n = self.before
        _config.set_num_threads(fastcnn_n)
        if blas_n is not None:
            _blas.threads(blas_n)
        if self.torch:
            self.torch.set_num_threads(torch_n)


def _sgemm_call(n: int) -> Callable[[], np.ndarray]:
    """An n x n x n float32 numpy.matmul into a preallocated output, ready to time."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    return functools.partial(np.matmul, a, b, out=out)


def sgemm_peak(n: int = 2048, repeats: int = 5, call=None) -> float:
    """Median GFLOP/s of an n x n x n float32 numpy.matmul (after one warm-up call); call:
    that matmul from _sgemm_call(n), or None for a new one."""
    call = call or _sgemm_call(n)
    call()
    times = [_timed(call) for _ in range(repeats)]
    return 2 * n ** 3 / statistics.median(times) / 1e9


def copy_bandwidth(threads: int, nbytes: int = 64 * 2**20, repeats: int = 7) -> float:
    """Median GB/s (bytes read + bytes written) of copying an nbytes float32 array into
    another, split into `threads` parts copied at once (numpy.copyto releases the GIL)."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.zeros_like(src)
    parts = [(a, b) for a, b in zip(np.array_split(src, threads), np.array_split(dst, threads))]

    def copy_part(pair):
        np.copyto(pair[1], pair[0])

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        def copy_all():
            list(pool.map(copy_part, parts))
        copy_all()
        times = [_timed(copy_all) for _ in range(repeats)]
    return 2 * src.nbytes / statistics.median(times) / 1e9


def _cpuinfo() -> dict:
    """Model name and physical core count from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return {}
    model, cores, phys = None, set(), None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and model is None:
            model = value
        elif key == "physical id":
            phys = value
        elif key == "core id":
            cores.add((phys, value))
    return {"cpu_model": model, "physical_cores": len(cores) or None}


def _numpy_blas() -> str | None:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # numpy < 1.26 has no mode="dicts"; the layout is not a stable API
        return None
    return f"{blas.get('name')} {blas.get('version')}"


def _load_average() -> float | None:
    """The 1-minute load average (runnable threads), None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine_info(threads: int, torch=None, torch_missing: str | None = None) -> dict:
    """CPU, cores, thread settings and versions, for the JSON report and the table header."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    info = {"cpu_model": platform.processor() or platform.machine(), "physical_cores": None}
    info.update({k: v for k, v in _cpuinfo().items() if v})
    info.update({
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "load_average": _load_average(),
        "threads": threads,
        "blas_threads": _blas.threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": _numpy_blas(),
        "numpy_blas_kernels": _blas.kernels(),
        "fastcnn": __version__,
        "torch": torch.__version__ if torch else None,
        "torch_threads": torch.get_num_threads() if torch else None,
        "torch_unavailable": torch_missing,
        "build_info": _config.build_info(),
    })
    return info


# -------------------------------------------------------------------------------- timing

@dataclass(frozen=True)
class Settings:
    """How to measure a case, per engine: `rounds` blocks, each a settle phase of untimed calls
    (at least one, for at least `settle_s`; plus `warmup_s` in the first round) and then up to
    `max_block` timed calls, as many as `budget_s` (the timed seconds per engine) allows."""
    rounds: int
    settle_s: float
    warmup_s: float
    budget_s: float
    max_block: int
    sgemm_n: int

    @classmethod
    def for_run(cls, quick: bool) -> "Settings":
        if quick:
            return cls(rounds=2, settle_s=0.05, warmup_s=0.0, budget_s=0.1, max_block=3,
                       sgemm_n=1024)
        return cls(rounds=5, settle_s=0.15, warmup_s=0.25, budget_s=2.0, max_block=20,
                   sgemm_n=2048)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t0
    del out
    return elapsed


def _peak_memory(fn) -> int:
    """Peak bytes tracemalloc sees during one call, above what it traced when the call began."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
        del out
    finally:
        tracemalloc.stop()
    return peak - before


_SGEMM = "sgemm"  # run_case's name for the sgemm turns (not an engine)


def measure(calls: dict, settings: Settings) -> dict:
    """Times (seconds) of every engine's call: name -> list of times.

    Engines take turns, one block each per round, the order rotating from round to round, so
    that drift touches them alike. A block starts with untimed calls: the engine before may
    leave its threads spinning for a while after its last call (OpenMP and OpenBLAS both spin
    before they sleep); with every core in use that costs the next engine's first calls
    milliseconds each.
    """
    names = list(calls)
    times = {name: [] for name in names}
    fastest = {}
    for r in range(settings.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = calls[name]
            t_end = time.perf_counter() + settings.settle_s + (settings.warmup_s if r == 0 else 0)
            t = _timed(fn)
            while time.perf_counter() < t_end:
                t = min(t, _timed(fn))
            fastest[name] = min(t, fastest.get(name, t))
            block = int(settings.budget_s / settings.rounds / max(fastest[name], 1e-9))
            for _ in range(min(settings.max_block, max(1, block))):
                times[name].append(_timed(fn))
    return times


def run_case(case: Case, engines: dict, settings: Settings, sgemm=None) -> dict:
    """Measure one case on every engine; the JSON record of the case. For a convolution,
    sgemm (an n x n x n numpy.matmul, n = settings.sgemm_n) takes its turns in the same
    rounds, so that the case's '% sgemm' compares rates measured at the same time (the VM's
    speed drifts by 30% within minutes: against one peak measured at the start of a run,
    the big layers showed 96-120% of it)."""
    inputs = make_inputs(case)
    record = {"name": case.name, "kind": case.kind, "op": case.op,
              "spec": dataclasses.asdict(case.spec), "describe": case.spec.describe(),
              "batch": case.batch, "flops": case.flops, "bytes_moved": case.bytes_moved,
              "engines": {}, "sgemm_gflops": None}
    calls, skipped = {}, {}
    for name, engine in engines.items():
        why = engine.unsupported(case)
        if why:
            skipped[name] = why
        else:
            calls[name] = engine.prepare(case, inputs)
    if sgemm is not None and case.kind == "conv" and calls:
        calls[_SGEMM] = sgemm
    gc.collect()
    times = measure(calls, settings) if calls else {}
    if _SGEMM in times:
        record["sgemm_gflops"] = (2 * settings.sgemm_n ** 3
                                  / statistics.median(times.pop(_SGEMM)) / 1e9)
    for name, ts in times.items():
        median = statistics.median(ts)
        result = {"median_s": median, "min_s": min(ts), "times_s": ts,
                  "gflops": case.flops / median / 1e9 if case.flops else None,
                  "gbytes_per_s": (case.bytes_moved / median / 1e9 if case.bytes_moved
                                   else None),
                  "images_per_s": case.batch / median if case.kind == "net" else None,
                  "peak_memory_bytes": (_peak_memory(calls[name]) if engines[name].traced
                                        else None)}
        record["engines"][name] = result
    for name, why in skipped.items():
        record["engines"][name] = {"skipped": why}
    fast = record["engines"].get("fastcnn", {}).get("median_s")
    for peer in ("reference", "torch"):
        other = record["engines"].get(peer, {}).get("median_s")
        record[f"speedup_vs_{peer}"] = other / fast if fast and other else None
    return record


def _on_threads(n: int, fn, blas: bool = False) -> Callable[[], object]:
    """fn run with fastcnn's kernels (and, with blas, NumPy's OpenBLAS) on n threads."""
    def call():
        _config.set_num_threads(n)
        if blas:
            _blas.threads(n)
        return fn()
    return call


def run_scaling_case(case: Case, engines: dict, settings: Settings, threads: int,
                     sgemm) -> dict:
    """Thread scaling of one case: fastcnn on 1 thread and on `threads`, and the sgemm on 1
    and on `threads` beside it (the machine's own scaling), all four taking turns in the same
    rounds (`measure`). Timing one thread count per run, the VM's drift between the runs
    (30-50% within minutes here) showed as scaling: 1.47x in two runs, 1.96x in turns."""
    inputs = make_inputs(case)
    fastcnn = engines["fastcnn"].prepare(case, inputs)
    calls = {"fastcnn_1": _on_threads(1, fastcnn), "fastcnn_n": _on_threads(threads, fastcnn),
             "sgemm_1": _on_threads(1, sgemm, blas=True),
             "sgemm_n": _on_threads(threads, sgemm, blas=True)}
    gc.collect()
    try:
        times = measure(calls, settings)
    finally:
        _config.set_num_threads(threads)
        _blas.threads(threads)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    return {"name": case.name, "kind": case.kind, "op": case.op,
            "spec": dataclasses.asdict(case.spec), "describe": case.spec.describe(),
            "batch": case.batch, "flops": case.flops, "threads": threads,
            "times_s": times, "one_thread_s": median["fastcnn_1"],
            "threads_s": median["fastcnn_n"],
            "speedup": median["fastcnn_1"] / median["fastcnn_n"],
            "sgemm_speedup": median["sgemm_1"] / median["sgemm_n"]}


# ------------------------------------------------------------------------------- reporting

class _Progress:
    """A text progress bar on stderr: redrawn in place on a terminal, one line per step
    otherwise (CI logs)."""

    def __init__(self, total: int, stream=None, width: int = 24):
        self.total, self.width = total, width
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()

    def show(self, done: int, label: str) -> None:
        filled = self.width * done // max(self.total, 1)
        elapsed = time.perf_counter() - self.t0
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
                f"{elapsed:5.0f}s  {label}")
        if self.tty:
            self.stream.write("\r" + line[:119].ljust(119))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 119 + "\r")
            self.stream.flush()


def _fmt_time(s) -> str:
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-6:.3g} us"


def _fmt_mem(b) -> str:
    if b is None:
        return "-"
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b} B"


def _fmt_x(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _fmt_rate(x) -> str:
    return "-" if x is None else f"{x:.3g}" if x < 1000 else f"{x:.0f}"


def _fmt_pct(gflops, peak) -> str:
    return "-" if gflops is None or not peak else f"{100 * gflops / peak:.1f}%"


def _engine(record, name, key):
    return record["engines"].get(name, {}).get(key)


_SECTIONS = {"conv": "Convolution layers (float32)", "pool": "Max-pooling (float32)",
             "net": "Whole networks (float32): training step = forward, loss, backward, SGD"}


_EXTRA_COLUMNS = {
    "pool": lambda report: [
        ("GB/s", lambda r: _fmt_rate(_engine(r, "fastcnn", "gbytes_per_s")), ">"),
        ("% copy", lambda r: _fmt_pct(_engine(r, "fastcnn", "gbytes_per_s"),
                                      report["copy_gbytes_per_s"]), ">")],
    "net": lambda report: [
        ("img/s", lambda r: _fmt_rate(_engine(r, "fastcnn", "images_per_s")), ">")],
}


def _table(cols, records) -> list[str]:
    rows = [[header for header, _, _ in cols]] + [[f(r) for _, f, _ in cols] for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    return ["  ".join(f"{cell:{align}{w}}" for cell, (_, _, align), w
                      in zip(row, cols, widths)).rstrip() for row in rows]


def _load_warning(report: dict) -> list[str]:
    start, end = report["machine"]["load_average"], report["load_average_end"]
    if start is not None and end is not None and (start > 0.5 or end > report["threads"] + 0.5):
        return [f"WARNING: other work shared the cores (1-minute load average {start:.2f} "
                f"at the start, {end:.2f} at the end, of which this run's threads make "
                f"up to {report['threads']}): the figures are noisy."]
    return []


def format_scaling(report: dict) -> str:
    """The table `main --scaling` prints: one row per case."""
    m, n = report["machine"], report["threads"]
    lines = [f"fastcnn {m['fastcnn']} bench --scaling{' --quick' if report['quick'] else ''}"
             f" on {m['cpu_model']}: {m['usable_cpus']} usable CPUs, 1 thread against {n}, "
             f"kernels: {m['build_info'].get('simd')}",
             f"Times are medians; fastcnn on 1 and {n} threads and the sgemm (numpy.matmul "
             f"{report['sgemm_n']}^3 float32) on 1 and {n} take turns in the same rounds; "
             f"'x sgemm' = fastcnn's speedup / the sgemm's. Calls too small to gain from "
             f"more threads use fewer, as they do outside the bench."] + _load_warning(report)
    lines.append("")
    lines += _table([("case", lambda r: r["name"], "<"),
                     ("1 thread", lambda r: _fmt_time(r["one_thread_s"]), ">"),
                     (f"{n} threads", lambda r: _fmt_time(r["threads_s"]), ">"),
                     ("speedup", lambda r: _fmt_x(r["speedup"]), ">"),
                     ("sgemm speedup", lambda r: _fmt_x(r["sgemm_speedup"]), ">"),
                     ("x sgemm", lambda r: f"{r['speedup'] / r['sgemm_speedup']:.2f}", ">")],
                    report["cases"])
    return "\n".join(lines)


def format_report(report: dict) -> str:
    """The tables `main` prints: one section per kind, one row per case."""
    if report.get("scaling"):
        return format_scaling(report)
    m, peak = report["machine"], report["sgemm_peak_gflops"]
    torch_note = (f"torch {m['torch']} ({m['torch_threads']} threads)" if m["torch"]
                  else f"torch: not available ({m['torch_unavailable']})")
    kernels = m["numpy_blas_kernels"]
    blas_kernels = f", OpenBLAS kernels {kernels}" if kernels else ""
    lines = [f"fastcnn {m['fastcnn']} bench{' --quick' if report['quick'] else ''} on "
             f"{m['cpu_model']}: {m['usable_cpus']} usable CPUs, {m['threads']} threads "
             f"(BLAS: {m['numpy_blas']}, {m['blas_threads'] or 'default'} threads)",
             f"numpy {m['numpy']}, {torch_note}, kernels: {m['build_info'].get('simd')} "
             f"(CPU: {m['build_info'].get('cpu_simd')}), openmp {m['build_info'].get('openmp')}",
             f"sgemm peak (numpy.matmul {report['sgemm_n']}^3 float32{blas_kernels}): "
             f"{peak:.1f} GFLOP/s at the start; '% sgemm' = fastcnn GFLOP/s / the same "
             "sgemm's GFLOP/s, timed in turns with each convolution case",
             f"copy bandwidth (64 MiB float32, {report['threads']} threads, read + written): "
             f"{report['copy_gbytes_per_s']:.1f} GB/s; '% copy' = fastcnn GB/s / copy "
             "bandwidth",
             "Times are medians; 'vs' = peer time / fastcnn time (>1: fastcnn faster); "
             "memory = peak extra NumPy allocations of one call (tracemalloc)."]
    lines += _load_warning(report)
    columns = [("case", lambda r: r["name"], "<"),
               ("fastcnn", lambda r: _fmt_time(_engine(r, "fastcnn", "median_s")), ">"),
               ("numpy ref", lambda r: _fmt_time(_engine(r, "reference", "median_s")), ">"),
               ("torch", lambda r: _fmt_time(_engine(r, "torch", "median_s")), ">"),
               ("vs ref", lambda r: _fmt_x(r["speedup_vs_reference"]), ">"),
               ("vs torch", lambda r: _fmt_x(r["speedup_vs_torch"]), ">"),
               ("GFLOP/s", lambda r: _fmt_rate(_engine(r, "fastcnn", "gflops")), ">"),
               ("% sgemm", lambda r: _fmt_pct(_engine(r, "fastcnn", "gflops"),
                                              r.get("sgemm_gflops") or peak), ">"),
               ("mem fastcnn",
                lambda r: _fmt_mem(_engine(r, "fastcnn", "peak_memory_bytes")), ">"),
               ("mem ref",
                lambda r: _fmt_mem(_engine(r, "reference", "peak_memory_bytes")), ">")]
    for kind, title in _SECTIONS.items():
        records = [r for r in report["cases"] if r["kind"] == kind]
        if not records:
            continue
        cols = columns + _EXTRA_COLUMNS.get(kind, lambda report: [])(report)
        lines += ["", title] + _table(cols, records)
        skipped = {}
        for r in records:
            for name, result in r["engines"].items():
                if "skipped" in result:
                    skipped.setdefault((name, result["skipped"]), []).append(r["name"])
        for (name, why), names in skipped.items():
            lines.append(f"  {name} skipped on {', '.join(names)}: {why}")
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    """A horizontal bar chart of fastcnn's speedup against each peer, one group per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    records = report["cases"]
    peers = [p for p in ("reference", "torch") if any(r[f"speedup_vs_{p}"] for r in records)]
    fig, ax = plt.subplots(figsize=(9, 1.5 + 0.32 * len(records) * max(len(peers), 1)))
    height = 0.8 / max(len(peers), 1)
    labels = {"reference": "vs NumPy reference", "torch": "vs PyTorch"}
    for i, peer in enumerate(peers):
        ys = [j + i * height for j in range(len(records))]
        xs = [r[f"speedup_vs_{peer}"] or 0 for r in records]
        ax.barh(ys, xs, height=height, label=labels[peer])
    ax.set_yticks([j + height * (len(peers) - 1) / 2 for j in range(len(records))])
    ax.set_yticklabels([r["name"] for r in records], fontsize=8)
    ax.set_ylim(len(records) - 0.2, -0.6)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speedup of fastcnn (peer time / fastcnn time; > 1: fastcnn faster)")
    m = report["machine"]
    ax.set_title(f"fastcnn {m['fastcnn']} on {m['cpu_model']}, {m['threads']} threads",
                 fontsize=10)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------- main

def select(patterns: list[str] | None) -> list[Case]:
    """The cases whose name contains any of the patterns (all cases without patterns)."""
    if not patterns:
        return list(CASES)
    return [c for c in CASES if any(p in c.name for p in patterns)]


def run(cases: list[Case], threads: int, quick: bool = False, progress=None,
        scaling: bool = False) -> dict:
    """Measure the cases (their quick shapes when quick) and return the report dict that
    --json writes: keys date, elapsed_s, quick, scaling, threads, settings, machine, sgemm_n,
    sgemm_peak_gflops, copy_gbytes_per_s, cases, load_average_end. With scaling, each case
    is `run_scaling_case`'s record (fastcnn on 1 thread and on `threads`) instead of
    `run_case`'s."""
    if scaling and threads < 2:
        raise ValueError(f"scaling compares 1 thread with more: threads must be at least 2, "
                         f"got {threads}")
    t0 = time.perf_counter()
    torch, torch_missing = _import_torch()
    engines = available_engines()
    settings = Settings.for_run(quick)
    with SameThreads(threads, torch):
        report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "elapsed_s": None,
                  "quick": quick, "scaling": scaling, "threads": threads, "settings": dataclasses.asdict(settings),
                  "machine": machine_info(threads, torch, torch_missing)}
        if progress:
            progress.show(0, "sgemm peak")
        report["sgemm_n"] = settings.sgemm_n
        sgemm = _sgemm_call(settings.sgemm_n)
        report["sgemm_peak_gflops"] = sgemm_peak(settings.sgemm_n, call=sgemm)
        report["copy_gbytes_per_s"] = copy_bandwidth(threads)
        report["cases"] = []
        for i, case in enumerate(cases):
            if progress:
                progress.show(i, case.name)
            case = case.quick() if quick else case
            report["cases"].append(run_scaling_case(case, engines, settings, threads, sgemm)
                                   if scaling else run_case(case, engines, settings, sgemm))
        if progress:
            progress.show(len(cases), "done")
            progress.close()
    report["elapsed_s"] = time.perf_counter() - t0
    report["load_average_end"] = _load_average()
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastcnn bench",
        description="Time fastcnn against the plain NumPy reference (and PyTorch when "
                    "installed) on this machine: medians, speedups, GFLOP/s against the "
                    "measured sgemm peak, and peak memory.")
    parser.add_argument("--quick", action="store_true",
                        help="batch sizes / 8 and few repeats: a smoke run of seconds")
    parser.add_argument("--json", metavar="PATH",
                        help="write every figure and the machine info to PATH as JSON")
    parser.add_argument("--plot", metavar="PATH.png",
                        help="save a bar chart of the speedups (needs matplotlib)")
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="threads for every engine (default: fastcnn.get_num_threads(), "
                             f"now {_config.get_num_threads()})")
    parser.add_argument("--filter", action="append", metavar="NAME",
                        help="only cases whose name contains NAME (repeatable)")
    parser.add_argument("--scaling", action="store_true",
                        help="thread scaling instead: fastcnn on 1 thread and on --threads "
                             "(at least 2), in turns, beside the sgemm's own scaling")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    return parser


def _check_output_path(parser, option: str, path: str | None) -> None:
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"{option} {path}: folder {folder} does not exist")


def main(argv=None) -> int:
    """`fastcnn bench`: run the benchmarks, print the tables, optionally save JSON and a plot."""
    parser = build_parser()
    args = parser.parse_args(argv)
    cases = select(args.filter)
    if args.list:
        for case in cases:
            print(f"{case.name:34} {case.spec.describe()}")
        return 0
    if not cases:
        parser.error(f"--filter {' '.join(args.filter)} matches no case; --list shows them")
    _check_output_path(parser, "--json", args.json)
    _check_output_path(parser, "--plot", args.plot)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install matplotlib")
    threads = args.threads or _config.get_num_threads()
    if args.scaling and threads < 2:
        parser.error(f"--scaling compares 1 thread with more: --threads must be at least 2, "
                     f"got {threads}")
    if args.scaling and args.plot:
        parser.error("--plot draws speedups against the peers, which --scaling does not time")
    report = run(cases, threads, args.quick, _Progress(len(cases)), scaling=args.scaling)
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"\nwrote {args.json}")
    if args.plot:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
