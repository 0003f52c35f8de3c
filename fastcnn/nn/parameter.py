"""Parameter, a trainable array with its gradient, and `allocate`, where layers get the arrays
they hold (so that a model read from a file can be refused before it allocates too much)."""
from __future__ import annotations

import contextlib
import contextvars
import math

import numpy as np

__all__ = ["Parameter", "allocate", "element_budget"]

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


@contextlib.contextmanager
def element_budget(max_elements: int):
    """Inside the block, `allocate` refuses to hand out more than max_elements in all."""
    token = _budget.set([max_elements, max_elements])
    try:
        yield
    finally:
        _budget.reset(token)


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
