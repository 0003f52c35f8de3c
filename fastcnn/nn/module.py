"""Module: the base class of every layer and model.

A `Module` runs ``forward(x)`` on NumPy arrays and keeps, from that call only, what its
``backward(grad, input_grad=True)`` needs (its input, argmax indices, a mask). ``backward``
adds the gradients of its parameters into ``Parameter.grad`` and returns the gradient with
respect to the input, or None when ``input_grad`` is False and the module can skip it (a
network's first layer: its input is data). There is no autograd graph: containers
(`fastcnn.nn.Sequential`) call their children's backward in reverse order.

Conventions:

* ``Parameter.grad`` is None until the first backward (as in PyTorch); backward then adds into
  it, and `Module.zero_grad` sets it back to None. Optimizers skip parameters whose grad is None.
* A model computes in one dtype, float32 unless `Module.astype` says float64. Inputs of any
  other dtype (float64 into a float32 model, ints, bools) are converted in ``forward``.
* ``state_dict`` keys are PyTorch's (``0.weight``, ``1.running_mean``, ...), so a PyTorch
  state dict converted to NumPy arrays loads directly, and ``get_config`` / `from_config`
  describe the architecture as JSON-serialisable dicts (no pickle).
"""
from __future__ import annotations

import inspect
from typing import NamedTuple

import numpy as np

from .._config import reuses_memory
from .._validate import flag, float_dtype
from .parameter import Parameter

__all__ = ["Module", "IncompatibleKeys"]


class IncompatibleKeys(NamedTuple):
    """What `Module.load_state_dict` did not match (only non-empty with strict=False)."""
    missing_keys: list
    unexpected_keys: list


class Module:
    """Base class of layers and models.

    Subclasses call ``super().__init__()`` first, assign `Parameter`s, sub-modules and buffers
    (``register_buffer``) as attributes, and implement ``forward``, ``backward(grad,
    input_grad=True)``, ``arguments`` (constructor arguments, for ``get_config``) and optionally
    ``extra_repr``; decorate them with `register` so `from_config` can rebuild them.

    Attributes:
        training: True after ``train()`` (the default), False after ``eval()``.
    """

    def __init_subclass__(cls, **kwargs):
        # Every layer's forward and backward allocate from fastcnn's buffer cache (see
        # fastcnn._config.reuses_memory): the same sizes come back every training step.
        super().__init_subclass__(**kwargs)
        for name in ("forward", "backward"):
            method = cls.__dict__.get(name)
            if inspect.isfunction(method) and not hasattr(method, "__wrapped_for_memory__"):
                setattr(cls, name, reuses_memory(method))

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        self.training = True
        self._dtype = np.dtype(np.float32)
        self._ctx = None

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call Module.__init__() before "
                                 f"assigning attribute {name!r}")
        # replacing a member keeps its place (and so the order of state_dict keys)
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._parameters.pop(name, None)
            self._modules[name] = value
        else:
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
            if name in self._buffers:
                if value is None:
                    del self._buffers[name]
                else:
                    self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """Keep a non-trainable array (running statistics) in ``state_dict``."""
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    # ------------------------------------------------------------------ computing

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad, input_grad=True):
        """Add the parameters' gradients into their ``grad`` and return the gradient with
        respect to the input. input_grad=False: the caller does not need that gradient, and
        a module may skip computing it and return None (a convolution saves a pass as costly
        as its forward); a module without parameters may ignore it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x):
        return self.forward(x)

    def output_shape(self, input_shape: tuple) -> tuple:
        """The shape forward returns for an input of input_shape, found without computing
        anything; a ValueError when such an input does not fit. Used to bound what a model
        read from a file would allocate before it runs."""
        raise NotImplementedError(f"{type(self).__name__} does not implement output_shape")

    @property
    def dtype(self) -> np.dtype:
        """The dtype this module computes in (float32 unless changed by `astype`)."""
        return self._dtype

    def _input(self, x) -> np.ndarray:
        """x as an array of this module's dtype (converted when it is anything else)."""
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self!r} expects a numeric array, got dtype {x.dtype}")
        return x if x.dtype == self._dtype else x.astype(self._dtype)

    def _grad(self, grad, shape) -> np.ndarray:
        """grad as an array of this module's dtype; a ValueError unless it has `shape`, the
        shape of the last forward's output (a broadcasting one would give a wrong gradient)."""
        grad = np.asarray(grad, self._dtype)
        if grad.shape != tuple(shape):
            raise ValueError(f"{self!r}: backward expects a gradient of the output's shape "
                             f"{tuple(shape)}, got {grad.shape}")
        return grad

    def _saved(self):
        """What forward kept for backward; a RuntimeError if forward has not run."""
        if self._ctx is None:
            raise RuntimeError(f"{self!r}: backward called before forward (backward uses what "
                               f"the last forward call saved)")
        return self._ctx

    # ------------------------------------------------------------------ traversal

    def named_modules(self, prefix: str = ""):
        """Yield (name, module) for this module and every sub-module, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> list:
        return [m for _, m in self.named_modules()]

    def children(self) -> list:
        return list(self._modules.values())

    def _named_members(self, kind: str):
        seen = set()
        for prefix, module in self.named_modules():
            for name, value in getattr(module, kind).items():
                if id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self) -> list:
        """[(name, Parameter)] with PyTorch's dotted names, each parameter once."""
        return list(self._named_members("_parameters"))

    def parameters(self) -> list:
        return [p for _, p in self._named_members("_parameters")]

    def named_buffers(self) -> list:
        """[(name, array)]: BatchNorm's running_mean, running_var, num_batches_tracked."""
        return list(self._named_members("_buffers"))

    def buffers(self) -> list:
        return [b for _, b in self._named_members("_buffers")]

    # ------------------------------------------------------------------ state

    def train(self, mode: bool = True):
        """Set training mode (batch statistics, dropout) here and in every sub-module."""
        mode = flag(f"{type(self).__name__}.train", "mode", mode)
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        """Set evaluation mode (running statistics, no dropout); returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Reset every parameter's gradient to None."""
        for p in self.parameters():
            p.grad = None

    def astype(self, dtype):
        """Convert parameters, gradients and float buffers to float32 or float64; returns self.

        Forward caches are dropped, so call forward again before backward.
        """
        dtype = float_dtype("astype", "dtype", dtype)
        for m in self.modules():
            m._dtype = dtype
            m._ctx = None
            for p in m._parameters.values():
                p.data = p.data.astype(dtype, copy=False)
                if p.grad is not None:
                    p.grad = p.grad.astype(dtype, copy=False)
            for name, b in list(m._buffers.items()):
                if b.dtype.kind == "f":
                    setattr(m, name, b.astype(dtype, copy=False))
        return self

    def _state_items(self) -> dict:
        """name -> array for every parameter then buffer, module by module (PyTorch's order)."""
        items = {}
        for prefix, m in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            for name, p in m._parameters.items():
                items.setdefault(dot + name, p.data)
            for name, b in m._buffers.items():
                items.setdefault(dot + name, b)
        return items

    def state_dict(self) -> dict:
        """{name: copy of the array} for parameters and buffers, with PyTorch's key names."""
        return {name: a.copy() for name, a in self._state_items().items()}

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values from ``state_dict`` into this module's parameters and buffers.

        Nothing is modified unless every check passes. Values are cast to each array's dtype.

        Args:
            state_dict: mapping of name -> array (or anything np.asarray accepts).
            strict: missing or unexpected keys raise KeyError; otherwise they are returned.

        Raises:
            KeyError: strict and the keys differ (both lists named).
            ValueError: a value's shape differs (key, expected and actual shape named).
            TypeError: a value is not numeric.
        """
        own = self._state_items()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys "
                           f"{unexpected}")
        values = {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = np.asarray(state_dict[key])
            if value.dtype.kind not in "fiub":
                raise TypeError(f"load_state_dict: {key!r} must be a numeric array, got dtype "
                                f"{value.dtype}")
            if value.shape != target.shape:
                raise ValueError(f"load_state_dict: {key!r} expects shape {target.shape}, got "
                                 f"{value.shape}")
            values[key] = value
        for key, value in values.items():
            own[key][...] = value
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ description

    def arguments(self) -> dict:
        """The constructor arguments (JSON-serialisable) that rebuild this module."""
        raise NotImplementedError(f"{type(self).__name__} does not implement arguments")

    def get_config(self) -> dict:
        """``{"class": class name, "config": constructor arguments}``, JSON-serialisable;
        `from_config` rebuilds the module from it (with fresh weights).

        Example:
            >>> from fastcnn import nn
            >>> nn.Sequential(nn.ReLU()).get_config()
            {'class': 'Sequential', 'config': {'layers': [{'class': 'ReLU', 'config': {}}]}}
        """
        return {"class": type(self).__name__, "config": self.arguments()}

    @classmethod
    def from_arguments(cls, arguments: dict):
        """Build a module from `arguments`' dict."""
        return cls(**arguments)

    def extra_repr(self) -> str:
        """The arguments shown inside this module's repr."""
        return ""

    def _flops(self, input_shape: tuple, output_shape: tuple) -> int:
        """Floating-point operations of one forward (2 per multiply-add); 0 unless overridden."""
        return 0

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, child in self._modules.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"
