"""Argument checks, one function per rule, for every tier above the kernels.

Each check names the owner (a function or class name), the argument, what was expected and
what came, and returns the value in its canonical form (an int, a bool, a float, a pair, a
shape, a dtype, a Generator). No other module repeats these rules: a module with a check of
its own calls one of these and adds only what is particular to it (a channel count the data
decides, say).
"""
from __future__ import annotations

import argparse
import math
import numbers
import operator

import numpy as np


def _as_int(value):
    """value as an int when it is one (NumPy ints and 0-d integer arrays too), else None.

    operator.index is Python's test of "an integer"; bools pass it but are refused, as
    `True` for a size or a seed is a mistake more often than a 1.
    """
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def integer(owner: str, name: str, value, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """An int (NumPy ints too, never bool, never a float such as 2.0), in [minimum, maximum]
    where given."""
    checked = _as_int(value)
    if checked is None:
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    below = minimum is not None and checked < minimum
    above = maximum is not None and checked > maximum
    if below or above:
        if minimum is not None and maximum is not None:
            interval = f"in [{minimum}, {maximum}]"
        else:
            interval = f">= {minimum}" if below else f"<= {maximum}"
        raise ValueError(f"{owner}: {name} must be {interval}, got {checked}")
    return checked


def pair(owner: str, name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (a tuple or list of two), each >= minimum, as a 2-tuple: the
    (height, width) form of a kernel size, stride, padding or dilation."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{owner}: {name} must be an int or a pair of ints, "
                             f"got a sequence of length {len(value)}: {value!r}")
        items = tuple(value)
    else:
        items = (value, value)
    checked = tuple(_as_int(v) for v in items)
    for v, c in zip(items, checked):
        if c is None:
            raise TypeError(f"{owner}: {name} must be an int or a pair of ints, "
                            f"got {type(v).__name__} {v!r}")
    if min(checked) < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return checked


def shape(owner: str, name: str, value, ndim: int | None = 4) -> tuple:
    """An explicit array shape: a tuple or list of ndim ints >= 0 (of any length with
    ndim=None), as a tuple."""
    if not isinstance(value, (tuple, list)) or (ndim is not None and len(value) != ndim):
        expected = "a tuple" if ndim is None else f"a {ndim}-tuple"
        raise ValueError(f"{owner}: {name} must be {expected} of sizes, got {value!r}")
    checked = tuple(_as_int(v) for v in value)
    for v, c in zip(value, checked):
        if c is None:
            raise TypeError(f"{owner}: {name} must hold ints, got {type(v).__name__} {v!r} "
                            f"in {value!r}")
    if min(checked, default=0) < 0:
        raise ValueError(f"{owner}: {name} must not have negative sizes, got {value!r}")
    return checked


def array_shape(owner: str, name: str, array: np.ndarray, expected: tuple) -> np.ndarray:
    """An array of exactly the expected shape (a gradient, indices), returned as is."""
    if array.shape != tuple(expected):
        raise ValueError(f"{owner}: {name} must have shape {tuple(expected)}, got {array.shape}")
    return array


def real(owner: str, name: str, value, low=None, high=None, high_open=False,
         low_open=False) -> float:
    """A finite or infinite real number (not bool, not NaN), inside [low, high] when given;
    high_open and low_open leave out that end of the interval."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__} "
                        f"{value!r}")
    value = float(value)
    inside = not math.isnan(value)
    if inside and low is not None:
        inside = value > low if low_open else value >= low
    if inside and high is not None:
        inside = value < high if high_open else value <= high
    if not inside:
        if low is not None and high is not None:
            interval = (f"in {'(' if low_open else '['}{low}, {high}"
                        f"{')' if high_open else ']'}")
        elif low is not None:
            interval = f"{'>' if low_open else '>='} {low}"
        elif high is not None:
            interval = f"{'<' if high_open else '<='} {high}"
        else:
            interval = "a number, not NaN"
        raise ValueError(f"{owner}: {name} must be {interval}, got {value}")
    return value


def choice(owner: str, name: str, value, options: tuple):
    """One of a few allowed values (strings)."""
    if value not in options:
        raise ValueError(f"{owner}: {name} must be one of {options}, got {value!r}")
    return value


def flag(owner: str, name: str, value) -> bool:
    """A bool (NumPy bools too); anything else, 0 and 1 included, is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def float_dtype(owner: str, name: str, value) -> np.dtype:
    """float32 or float64, as anything np.dtype takes (np.float32, 'float64', ...)."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{owner}: {name} must be float32 or float64, "
                        f"got {type(value).__name__} {value!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{owner}: {name} must be float32 or float64, got {dtype}")
    return dtype


def float_input(owner: str, name: str, x) -> np.ndarray:
    """An array as float32 or float64: those stay, float16, int and bool become float32."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and x.dtype.itemsize in (4, 8):
        return x
    if x.dtype.kind in "biu" or x.dtype == np.float16:
        return x.astype(np.float32)
    raise TypeError(f"{owner}: {name} must be a float, int or bool array, got dtype {x.dtype}")


def generator(owner: str, rng) -> np.random.Generator:
    """A Generator from a Generator (returned as is), an int seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    seed = _as_int(rng)
    if rng is None or seed is not None:
        return np.random.default_rng(seed)
    raise TypeError(f"{owner}: rng must be a numpy.random.Generator, an int seed or None, "
                    f"got {type(rng).__name__} {rng!r}")


def option(parse, rule, expected: str, **limits):
    """An argparse ``type=``: the text as `parse` reads it (int, float), checked by `rule`
    with `limits`; anything else is refused as "expected <expected>, got <value>".

    Example:
        >>> positive = option(int, integer, "a positive integer", minimum=1)
        >>> positive("3")
        3
    """
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            value = text  # not a number at all: the rule refuses the text itself
        try:
            return rule("option", "value", value, **limits)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
    return convert
