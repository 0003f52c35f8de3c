"""Thread count and build facts, shared by every kernel call."""
from __future__ import annotations

import platform

import numpy as np

from ._kernels import conv as _conv
from ._kernels import runtime as _runtime

MAX_THREADS = 1024
_num_threads = min(max(1, _runtime.omp_max_threads()), MAX_THREADS)


def set_num_threads(n: int) -> None:
    """Set how many threads the kernels use (default: OMP_NUM_THREADS, else all cores).

    Without OpenMP in the build the kernels always run on one thread; the setting is kept.
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__} {n!r}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be between 1 and {MAX_THREADS}, got {n}")
    _num_threads = int(n)


def get_num_threads() -> int:
    """The number of threads the kernels use."""
    return _num_threads


def build_info() -> dict:
    """How this fastcnn was built and what it runs on.

    Keys: version, openmp (bool: kernels threaded), simd (the instruction set the
    convolution kernels dispatch to: 'avx512', 'avx2+fma' or 'generic', the best the CPU
    runs unless FASTCNN_SIMD=generic|avx2|avx512 in the environment asks for a lower one), cpu_simd (the widest the CPU has), compiler,
    num_threads, numpy, python, machine.
    """
    from . import __version__

    return {
        "version": __version__,
        "openmp": _runtime.openmp_enabled(),
        "simd": _conv.kernel_path(),
        "cpu_simd": _runtime.cpu_simd(),
        "compiler": _runtime.compiler(),
        "num_threads": _num_threads,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
