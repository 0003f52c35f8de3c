"""Argument checks, one function per rule, for every tier above the kernels.

Each check names the owner (a function or class name), the argument, what was expected and
what came, and returns the value in its canonical form (an int, a bool, a float, a pair).
"""
from __future__ import annotations

import math
import numbers

import numpy as np


def integer(owner: str, name: str, value, minimum: int | None = None) -> int:
    """An int (NumPy ints too, never bool), at least `minimum` when given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return value


def real(owner: str, name: str, value, low=None, high=None, high_open=False) -> float:
    """A finite or infinite real number (not bool, not NaN), inside [low, high] when given;
    with high_open the interval is [low, high)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__} "
                        f"{value!r}")
    value = float(value)
    inside = not math.isnan(value)
    if inside and low is not None:
        inside = value >= low
    if inside and high is not None:
        inside = value < high if high_open else value <= high
    if not inside:
        if low is not None and high is not None:
            interval = f"in [{low}, {high}{')' if high_open else ']'}"
        elif low is not None:
            interval = f">= {low}"
        else:
            interval = "a number, not NaN"
        raise ValueError(f"{owner}: {name} must be {interval}, got {value}")
    return value


def choice(owner: str, name: str, value, options: tuple):
    """One of a few allowed values (strings)."""
    if value not in options:
        raise ValueError(f"{owner}: {name} must be one of {options}, got {value!r}")
    return value


def float_input(owner: str, name: str, x) -> np.ndarray:
    """An array as float32 or float64: those stay, float16, int and bool become float32."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and x.dtype.itemsize in (4, 8):
        return x
    if x.dtype.kind in "biu" or x.dtype == np.float16:
        return x.astype(np.float32)
    raise TypeError(f"{owner}: {name} must be a float, int or bool array, got dtype {x.dtype}")


def flag(owner: str, name: str, value) -> bool:
    """A bool (NumPy bools too); anything else is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def generator(owner: str, rng) -> np.random.Generator:
    """A Generator from a Generator (returned as is), an int seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_))):
        return np.random.default_rng(rng)
    raise TypeError(f"{owner}: rng must be a numpy.random.Generator, an int seed or None, "
                    f"got {type(rng).__name__} {rng!r}")
