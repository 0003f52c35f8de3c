"""The engines: fastcnn, the NumPy reference, and PyTorch when it is importable.

An engine turns a case and its inputs into a call with no arguments, ready to time:
``engine.prepare(case, inputs)``. fastcnn and the reference share one class, since
`fastcnn.functional` and `fastcnn.reference` have the same function signatures; their network
cases build the same `fastcnn.nn` layers and run them inside ``nn.use_backend(name)``, so the
two engines differ in the kernels alone. PyTorch runs its CPU kernels on the same arrays
(``torch.from_numpy`` shares their memory).
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from .. import functional, nn, optim, reference
from .cases import Case, Conv, Net, Pool

__all__ = ["NumpyEngine", "TorchEngine", "ENGINES", "import_torch", "available_engines"]


class NumpyEngine:
    """fastcnn or the NumPy reference: `ops` is fastcnn.functional or fastcnn.reference, and
    `name` the nn backend ('fastcnn' or 'reference') that runs the layers on it."""

    traced = True  # its arrays are NumPy's, so tracemalloc sees them

    def __init__(self, name: str, ops):
        self.name, self.ops = name, ops

    def unsupported(self, case: Case) -> str | None:
        """Why this engine cannot run the case, or None (the interface every engine has)."""
        return None

    def prepare(self, case: Case, d: dict) -> Callable[[], object]:
        s, F = case.spec, self.ops
        if isinstance(s, Conv):
            conv = (s.stride, s.padding, 1, s.groups)
            if case.op == "forward":
                return lambda: F.conv2d(d["x"], d["weight"], d["bias"], *conv)
            if case.op == "backward_data":
                return lambda: F.conv2d_backward_data(d["grad_y"], d["weight"], d["x"].shape,
                                                      *conv)
            return lambda: F.conv2d_backward_weight(d["grad_y"], d["x"], d["weight"].shape,
                                                    *conv)
        if isinstance(s, Pool):
            pool = (s.kernel, s.stride, s.padding)
            if case.op == "forward":
                return lambda: F.max_pool2d(d["x"], *pool, return_indices=True)
            return lambda: F.max_pool2d_backward(d["grad_y"], d["indices"], d["x"].shape, *pool)
        return self._net_call(case, d)

    def _net_call(self, case: Case, d: dict) -> Callable[[], object]:
        """One training step (cross-entropy, plain SGD) or one inference of the case's
        network, built from fastcnn.nn and run on this engine's backend."""
        rng = np.random.default_rng(0)
        layers = {"conv": lambda cin, cout, k, pad: nn.Conv2d(cin, cout, k, padding=pad,
                                                              rng=rng),
                  "linear": lambda cin, cout: nn.Linear(cin, cout, rng=rng),
                  "relu": nn.ReLU, "pool": nn.MaxPool2d, "flatten": nn.Flatten}
        model = nn.Sequential(*(layers[kind](*args) for kind, *args in case.spec.layers))
        x, labels, backend = d["x"], d["labels"], self.name
        if case.op == "inference":
            model.eval()

            def infer():
                with nn.use_backend(backend):
                    return model(x)
            return infer
        loss_fn = nn.CrossEntropyLoss()
        opt = optim.SGD(model.parameters(), lr=0.01)

        def step():
            with nn.use_backend(backend):
                loss = loss_fn(model(x), labels)
                opt.zero_grad()
                model.backward(loss_fn.backward(), input_grad=False)  # as torch: x needs none
                opt.step()
            return loss
        return step


class TorchEngine:
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
            return self._net_call(case, t)
        aten = torch.ops.aten
        if isinstance(s, Conv):
            conv = ([s.stride] * 2, [s.padding] * 2, [1, 1])
            if case.op == "forward":
                return self._no_grad(lambda: torch.nn.functional.conv2d(
                    t["x"], t["weight"], t["bias"], *conv, s.groups))
            mask = [case.op == "backward_data", case.op == "backward_weight", False]
            return self._no_grad(lambda: aten.convolution_backward(
                t["grad_y"], t["x"], t["weight"], None, *conv, False, [0, 0], s.groups, mask))
        pool = ([s.kernel] * 2, [s.stride] * 2, [s.padding] * 2, [1, 1], False)
        if case.op == "forward":
            return self._no_grad(lambda: aten.max_pool2d_with_indices(t["x"], *pool))
        return self._no_grad(lambda: aten.max_pool2d_with_indices_backward(
            t["grad_y"], t["x"], *pool, t["indices"]))

    def _no_grad(self, fn):
        def call():
            with self.torch.no_grad():
                return fn()
        return call

    def _net_call(self, case: Case, t: dict) -> Callable[[], object]:
        torch = self.torch
        tnn = torch.nn
        layers = {"conv": lambda cin, cout, k, pad: tnn.Conv2d(cin, cout, k, padding=pad),
                  "relu": tnn.ReLU, "pool": tnn.MaxPool2d, "flatten": tnn.Flatten,
                  "linear": tnn.Linear}
        model = tnn.Sequential(*(layers[kind](*args) for kind, *args in case.spec.layers))
        x, labels = t["x"], t["labels"]
        if case.op == "inference":
            model.eval()
            return self._no_grad(lambda: model(x))
        loss_fn = tnn.CrossEntropyLoss()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)

        def step():
            loss = loss_fn(model(x), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss
        return step


ENGINES = {"fastcnn": NumpyEngine("fastcnn", functional),
           "reference": NumpyEngine("reference", reference)}


@functools.cache
def import_torch():
    """(torch module, None), or (None, why it is unavailable)."""
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install (OSError from its libraries)
        return None, f"{type(e).__name__}: {e}"
    return torch, None


def available_engines() -> dict:
    """Engine name -> engine, for the engines this Python can run (torch when importable)."""
    engines = dict(ENGINES)
    torch, _ = import_torch()
    if torch is not None:
        engines["torch"] = TorchEngine(torch)
    return engines
