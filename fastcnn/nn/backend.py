"""Which engine the layers compute with: fastcnn's kernels, or the plain NumPy reference.

Every layer reaches its math through `ops()`, which is `fastcnn.functional` unless a
``with use_backend("reference"):`` block says otherwise (thinc's ``use_ops`` idea). The
benchmark uses it to time the same network on both engines; tests use it to run a whole
model on the oracle.
"""
from __future__ import annotations

import contextlib
import contextvars

from .. import functional, reference
from .._validate import choice

__all__ = ["use_backend", "get_backend", "ops"]

_BACKENDS = {"fastcnn": functional, "reference": reference}
_current: contextvars.ContextVar = contextvars.ContextVar("fastcnn_nn_backend",
                                                          default="fastcnn")


@contextlib.contextmanager
def use_backend(name: str):
    """Run the layers inside the block on backend `name`: 'fastcnn' (the compiled kernels,
    the default) or 'reference' (`fastcnn.reference`, plain NumPy). Per thread and task.

    Example:
        >>> import numpy as np
        >>> from fastcnn import nn
        >>> conv = nn.Conv2d(1, 2, 3, rng=0)
        >>> with nn.use_backend("reference"):
        ...     y_ref = conv(np.ones((1, 1, 5, 5)))
        >>> bool(np.allclose(conv(np.ones((1, 1, 5, 5))), y_ref, atol=1e-6))
        True
    """
    token = _current.set(choice("use_backend", "name", name, tuple(_BACKENDS)))
    try:
        yield
    finally:
        _current.reset(token)


def get_backend() -> str:
    """The name of the backend the layers use here and now."""
    return _current.get()


def ops():
    """The module of functions the layers call: fastcnn.functional or fastcnn.reference."""
    return _BACKENDS[_current.get()]
