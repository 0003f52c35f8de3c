"""Parameter, Module and Sequential: the containers every layer is built from.

A `Module` runs ``forward(x)`` on NumPy arrays and keeps, from that call only, what its
``backward(grad)`` needs (its input, argmax indices, a mask). ``backward`` returns the gradient
with respect to the input and adds the gradients of its parameters into ``Parameter.grad``.
There is no autograd graph: `Sequential` calls its children's backward in reverse order.

Conventions:

* ``Parameter.grad`` is None until the first backward (as in PyTorch); backward then adds into
  it, and `Module.zero_grad` sets it back to None. Optimizers skip parameters whose grad is None.
* A model computes in one dtype, float32 unless `Module.astype` says float64. Inputs of any
  other dtype (float64 into a float32 model, ints, bools) are converted in ``forward``.
* ``state_dict`` keys are PyTorch's (``0.weight``, ``1.running_mean``, ...), so a PyTorch
  state dict converted to NumPy arrays loads directly, and ``get_config`` / `from_config`
  describe the architecture as JSON-serialisable dicts (no pickle):
  ``from_config(model.get_config())`` rebuilds any model made of registered layers.
"""
from __future__ import annotations

import contextvars
import inspect
import math
from typing import NamedTuple

import numpy as np

from .. import _args
from .._config import reuses_memory

__all__ = ["Parameter", "Module", "Sequential", "register", "from_config", "allocate"]

# Inside from_config(..., max_elements=n): [elements left, n] for every allocate() call.
_budget: contextvars.ContextVar = contextvars.ContextVar("fastcnn_nn_budget", default=None)


def allocate(shape, fill=None) -> np.ndarray:
    """A new float32 array for a layer's parameter or buffer, filled with `fill` if given.

    Layers take their arrays from here so that `from_config(config, max_elements=n)` can refuse
    a model whose arrays would hold more than n elements before allocating any of them (what
    `fastcnn.load` needs: a small file must not make it allocate gigabytes).
    """
    shape = tuple(shape)
    budget = _budget.get()
    if budget is not None:
        budget[0] -= math.prod(shape)
        if budget[0] < 0:
            raise ValueError(f"the layers' arrays would hold more than the {budget[1]} "
                             f"elements allowed")
    a = np.empty(shape, np.float32)
    if fill is not None:
        a.fill(fill)
    return a


class Parameter:
    """A trainable array (``data``) and the gradient of the loss with respect to it (``grad``).

    Args:
        data: a float array; used as is (no copy).

    Example:
        >>> import numpy as np
        >>> p = Parameter(np.zeros(3, np.float32))
        >>> p.grad is None
        True
    """

    __slots__ = ("data", "grad")

    def __init__(self, data):
        data = np.asarray(data)
        if data.dtype.kind != "f":
            raise TypeError(f"Parameter data must be a float array, got dtype {data.dtype}")
        self.data = data
        self.grad = None

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def accumulate(self, grad: np.ndarray) -> None:
        """Add a gradient into ``grad`` (a copy of it on the first call)."""
        if grad.shape != self.data.shape:
            raise ValueError(f"Parameter of shape {self.data.shape} got a gradient of shape "
                             f"{grad.shape}")
        if self.grad is None:
            self.grad = np.array(grad, dtype=self.data.dtype)
        else:
            self.grad += grad

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class IncompatibleKeys(NamedTuple):
    """What `Module.load_state_dict` did not match (only non-empty with strict=False)."""
    missing_keys: list
    unexpected_keys: list


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Module:
    """Base class of layers and models.

    Subclasses call ``super().__init__()`` first, assign `Parameter`s, sub-modules and buffers
    (``register_buffer``) as attributes, and implement ``forward``, ``backward``,
    ``arguments`` (constructor arguments, for ``get_config``) and optionally ``extra_repr``;
    decorate them with `register` so `from_config` can rebuild them.

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

    def backward(self, grad):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x):
        return self.forward(x)

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
        for m in self.modules():
            m.training = bool(mode)
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
        dtype = np.dtype(dtype)
        if dtype not in _FLOAT_DTYPES:
            raise TypeError(f"astype: dtype must be float32 or float64, got {dtype}")
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


class Sequential(Module):
    """A chain of modules: forward runs them in order, backward in reverse.

    Args:
        *layers: modules, named "0", "1", ... in ``state_dict``.

    Shape:
        input: whatever the first layer takes; output: whatever the last layer gives.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.ReLU(), nn.Flatten(),
        ...                       nn.Linear(4 * 6 * 6, 10, rng=0))
        >>> model(np.zeros((2, 1, 8, 8))).shape
        (2, 10)
    """

    def __init__(self, *layers):
        super().__init__()
        for layer in layers:
            self.append(layer)

    def append(self, layer: Module):
        """Add a module at the end; returns self."""
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential: layers must be Modules, got {type(layer).__name__}")
        setattr(self, str(len(self._modules)), layer)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def forward(self, x):
        x = self._input(x)
        for layer in self._modules.values():
            x = layer(x)
        return x

    def backward(self, grad, input_grad=True):
        """Back-propagate grad through the layers, last to first; return the gradient with
        respect to the input.

        input_grad=False: the caller does not need that gradient (a training loop's input is
        data), and None is returned. The layers before the first one with parameters are then
        skipped (they only pass gradients on), and that one is asked not to compute its input
        gradient when its backward takes an input_grad argument (Conv2d, Linear and Sequential
        do). For a convolution first this saves a pass as costly as its forward.
        """
        input_grad = _args.flag(f"{type(self).__name__}.backward", "input_grad", input_grad)
        layers = list(self._modules.values())
        first = 0
        if not input_grad:
            first = next((i for i, layer in enumerate(layers)
                          if next(iter(layer.parameters()), None) is not None), len(layers))
        for i in range(len(layers) - 1, first - 1, -1):
            if i == first and not input_grad:
                if takes_input_grad(layers[i]):
                    layers[i].backward(grad, input_grad=False)
                else:
                    layers[i].backward(grad)
                return None
            grad = layers[i].backward(grad)
        return grad if input_grad else None

    def arguments(self) -> dict:
        return {"layers": [layer.get_config() for layer in self._modules.values()]}

    @classmethod
    def from_arguments(cls, arguments: dict):
        if set(arguments) != {"layers"} or not isinstance(arguments["layers"], list):
            raise ValueError(f"Sequential config must be {{'layers': [...]}}, got {arguments!r}")
        return cls(*(from_config(c) for c in arguments["layers"]))


# ------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type] = {}


def takes_input_grad(module) -> bool:
    """Whether module.backward accepts input_grad= (see `Sequential.backward`)."""
    backward = getattr(module.backward, "__func__", module.backward)
    cached = _TAKES_INPUT_GRAD.get(backward)
    if cached is None:
        try:
            cached = "input_grad" in inspect.signature(backward).parameters
        except (TypeError, ValueError):
            cached = False
        _TAKES_INPUT_GRAD[backward] = cached
    return cached


_TAKES_INPUT_GRAD: dict = {}


def register(cls: type) -> type:
    """Class decorator: make a layer (or loss) buildable by `from_config` under its name.

    Registering the same class again (e.g. a re-run notebook cell) replaces it; a different
    class under a taken name is a ValueError.
    """
    name = cls.__name__
    old = _REGISTRY.get(name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__,
                                                                   cls.__qualname__):
        raise ValueError(f"register: the name {name!r} is already taken by "
                         f"{old.__module__}.{old.__qualname__}")
    _REGISTRY[name] = cls
    return cls


register(Sequential)


def from_config(config: dict, max_elements: int | None = None):
    """Rebuild a module (or loss) from its ``get_config()`` dict. Weights are fresh: load them
    with ``load_state_dict``. Unknown class names are a ValueError, and so is a model whose
    parameters and buffers would hold more than `max_elements` elements (checked before
    they are allocated).

    Example:
        >>> from fastcnn import nn
        >>> nn.from_config({"class": "Linear", "config": {"in_features": 4, "out_features": 2}})
        Linear(in_features=4, out_features=2)
    """
    if max_elements is not None and _budget.get() is None:
        token = _budget.set([max_elements, max_elements])
        try:
            return from_config(config)
        finally:
            _budget.reset(token)
    if not isinstance(config, dict) or set(config) != {"class", "config"}:
        raise ValueError(f"from_config expects a dict with keys 'class' and 'config', "
                         f"got {config!r}")
    cls = _REGISTRY.get(config["class"])
    if cls is None:
        raise ValueError(f"from_config: unknown class {config['class']!r}, expected one of "
                         f"{sorted(_REGISTRY)}")
    if not isinstance(config["config"], dict):
        raise ValueError(f"from_config: 'config' of {config['class']} must be a dict, got "
                         f"{config['config']!r}")
    return cls.from_arguments(config["config"])
