"""Facts about the machine, and its limits measured in the same run as the cases.

Thread counts: `SameThreads` puts fastcnn, NumPy's BLAS and torch on one count (NumPy's
BLAS through `fastcnn._config.numpy_blas_threads`; where it is not OpenBLAS its own default
applies and `blas_threads()` is None). Limits: the sgemm peak (GFLOP/s of a large float32 ``numpy.matmul``; where OpenBLAS does
not know the CPU it falls back to narrower SIMD kernels, so fastcnn can pass 100%) and the copy
bandwidth (GB/s read + written of a 64 MiB float32 copy, split over the run's threads).
"""
from __future__ import annotations

import concurrent.futures
import functools
import os
import platform
import statistics
from typing import Callable

import numpy as np

from .._config import (build_info, get_num_threads, numpy_blas_kernels, numpy_blas_threads,
                       set_num_threads)
from .._version import __version__
from .timing import timed

__all__ = ["blas_threads", "SameThreads", "sgemm_call", "sgemm_peak", "copy_bandwidth",
           "load_average", "machine_info"]


def blas_threads(n: int | None = None) -> int | None:
    """Set NumPy's OpenBLAS thread count when n is given; return it (None: not OpenBLAS)."""
    return numpy_blas_threads(n)


class SameThreads:
    """Context manager: fastcnn, NumPy's OpenBLAS and torch (if given) on n threads, restored
    afterwards."""

    def __init__(self, n: int, torch=None):
        self.n, self.torch = n, torch

    def __enter__(self):
        self.before = (get_num_threads(), blas_threads(),
                       self.torch.get_num_threads() if self.torch else None)
        set_num_threads(self.n)
        blas_threads(self.n)
        if self.torch:
            self.torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        fastcnn_n, blas_n, torch_n = self.before
        set_num_threads(fastcnn_n)
        if blas_n is not None:
            blas_threads(blas_n)
        if self.torch:
            self.torch.set_num_threads(torch_n)


def sgemm_call(n: int) -> Callable[[], np.ndarray]:
    """An n x n x n float32 numpy.matmul into a preallocated output, ready to time."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    return functools.partial(np.matmul, a, b, out=out)


def sgemm_peak(n: int = 2048, repeats: int = 5, call=None) -> float:
    """Median GFLOP/s of an n x n x n float32 numpy.matmul (after one warm-up call); call:
    that matmul from sgemm_call(n), or None for a new one."""
    call = call or sgemm_call(n)
    call()
    times = [timed(call) for _ in range(repeats)]
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
        times = [timed(copy_all) for _ in range(repeats)]
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


def load_average() -> float | None:
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
        "load_average": load_average(),
        "threads": threads,
        "blas_threads": blas_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": _numpy_blas(),
        "numpy_blas_kernels": numpy_blas_kernels(),
        "fastcnn": __version__,
        "torch": torch.__version__ if torch else None,
        "torch_threads": torch.get_num_threads() if torch else None,
        "torch_unavailable": torch_missing,
        "build_info": build_info(),
    })
    return info
