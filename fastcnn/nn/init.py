"""Weight initialisation, in place, from an explicit random generator.

Every function takes ``rng``: a `numpy.random.Generator`, an int seed, or None for fresh OS
entropy. The global NumPy seed is never used. Arrays (or `Parameter`s, whose ``.data`` is
filled) are modified in place and returned. Formulas follow ``torch.nn.init``.

Example:
    >>> import numpy as np
    >>> from fastcnn.nn import init
    >>> w = init.kaiming_uniform_(np.empty((16, 3, 3, 3), np.float32), rng=0)
    >>> bool(np.abs(w).max() <= np.sqrt(6 / 27))
    True
"""
from __future__ import annotations

import math

import numpy as np

from .._validate import choice, generator, real
from .parameter import Parameter

__all__ = ["as_generator", "calculate_gain", "kaiming_uniform_", "kaiming_normal_",
           "xavier_uniform_", "xavier_normal_", "uniform_", "normal_", "constant_", "zeros_",
           "ones_"]


def as_generator(rng) -> np.random.Generator:
    """A Generator from a Generator (returned as is), an int seed, or None (fresh entropy);
    anything else is a TypeError.

    A public alias of the rule every ``rng=`` argument in fastcnn follows (it lives in
    `fastcnn._validate.generator`), kept for code written against it.
    """
    return generator("as_generator", rng)


def _target(fname: str, array) -> np.ndarray:
    data = array.data if isinstance(array, Parameter) else array
    if not isinstance(data, np.ndarray) or data.dtype.kind != "f":
        raise TypeError(f"{fname} expects a float NumPy array or a Parameter, "
                        f"got {type(array).__name__}")
    if not data.flags.writeable:
        raise ValueError(f"{fname} fills its array in place, got a read-only array")
    return data


def _fans(fname: str, data: np.ndarray) -> tuple[int, int]:
    if data.ndim < 2:
        raise ValueError(f"{fname} needs an array with at least 2 dimensions to compute fan in "
                         f"and fan out, got shape {data.shape}")
    receptive = math.prod(data.shape[2:])
    return data.shape[1] * receptive, data.shape[0] * receptive


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for a nonlinearity: 1 for linear/conv/sigmoid, 5/3 for tanh,
    sqrt(2) for relu, sqrt(2 / (1 + slope**2)) for leaky_relu (slope = param, default 0.01),
    3/4 for selu."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else real("calculate_gain", "param", param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}, expected one "
                     f"of {linear + ('tanh', 'relu', 'leaky_relu', 'selu')}")


def _kaiming_std(fname, data, a, mode, nonlinearity) -> float:
    choice(fname, "mode", mode, ("fan_in", "fan_out"))
    fan_in, fan_out = _fans(fname, data)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"{fname}: fan is zero for an array of shape {data.shape}")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(array, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """Fill with U(-bound, bound), bound = gain * sqrt(3 / fan) (He et al., 2015).

    Args:
        array: float array (or Parameter) with at least 2 dimensions, (out, in, *kernel).
        a: negative slope of the leaky_relu that follows (only used with 'leaky_relu').
        mode: 'fan_in' (in * prod(kernel)) keeps forward variance, 'fan_out' the backward one.
        nonlinearity: name passed to `calculate_gain`.
        rng: Generator, int seed or None.
    """
    data = _target("kaiming_uniform_", array)
    bound = math.sqrt(3.0) * _kaiming_std("kaiming_uniform_", data, a, mode, nonlinearity)
    data[...] = generator("kaiming_uniform_", rng).uniform(-bound, bound, size=data.shape)
    return array


def kaiming_normal_(array, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """Fill with N(0, std^2), std = gain / sqrt(fan); arguments as `kaiming_uniform_`."""
    data = _target("kaiming_normal_", array)
    std = _kaiming_std("kaiming_normal_", data, a, mode, nonlinearity)
    data[...] = generator("kaiming_normal_", rng).normal(0.0, std, size=data.shape)
    return array


def _xavier_std(fname, data, gain) -> float:
    fan_in, fan_out = _fans(fname, data)
    if fan_in + fan_out == 0:
        raise ValueError(f"{fname}: fans are zero for an array of shape {data.shape}")
    return real(fname, "gain", gain) * math.sqrt(2.0 / (fan_in + fan_out))


def xavier_uniform_(array, gain=1.0, rng=None):
    """Fill with U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    data = _target("xavier_uniform_", array)
    bound = math.sqrt(3.0) * _xavier_std("xavier_uniform_", data, gain)
    data[...] = generator("xavier_uniform_", rng).uniform(-bound, bound, size=data.shape)
    return array


def xavier_normal_(array, gain=1.0, rng=None):
    """Fill with N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    data = _target("xavier_normal_", array)
    std = _xavier_std("xavier_normal_", data, gain)
    data[...] = generator("xavier_normal_", rng).normal(0.0, std, size=data.shape)
    return array


def uniform_(array, a=0.0, b=1.0, rng=None):
    """Fill with U(a, b)."""
    data = _target("uniform_", array)
    a, b = real("uniform_", "a", a), real("uniform_", "b", b)
    if a > b:
        raise ValueError(f"uniform_: a must be <= b, got a={a}, b={b}")
    data[...] = generator("uniform_", rng).uniform(a, b, size=data.shape)
    return array


def normal_(array, mean=0.0, std=1.0, rng=None):
    """Fill with N(mean, std^2)."""
    data = _target("normal_", array)
    mean, std = real("normal_", "mean", mean), real("normal_", "std", std, low=0.0)
    data[...] = generator("normal_", rng).normal(mean, std, size=data.shape)
    return array


def constant_(array, value):
    """Fill with one value."""
    _target("constant_", array)[...] = real("constant_", "value", value)
    return array


def zeros_(array):
    """Fill with zeros."""
    return constant_(array, 0.0)


def ones_(array):
    """Fill with ones."""
    return constant_(array, 1.0)
