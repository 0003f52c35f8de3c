"""NumPy's OpenBLAS, reached through its C API: its thread count and the kernels it chose.

Why fastcnn touches it: after each multi-threaded call OpenBLAS keeps its worker threads
spinning (yielding in a loop) for a while before they sleep, and it reads the only setting
that shortens this (OPENBLAS_THREAD_TIMEOUT) once, when NumPy loads it. A Linear layer's
matmul in the middle of a network therefore leaves a worker competing for the cores with the
convolution kernels' OpenMP threads that run next, and on few cores both slow down.
`one_thread()` runs a block with OpenBLAS on one thread, so no worker wakes up,
and restores the user's setting after. The setting is process-wide: while a Linear layer
runs, NumPy matmuls in the process's other threads also run on one thread.

Where NumPy's BLAS is not OpenBLAS (or /proc is missing) everything here does nothing.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import functools
import os
import threading

import numpy as np


@functools.lru_cache(maxsize=None)
def openblas_functions(stem: str) -> tuple:
    """NumPy's OpenBLAS C functions named like openblas_<stem> (set_num_threads,
    get_num_threads, get_corename), one per loaded OpenBLAS library; empty where NumPy's BLAS
    is not OpenBLAS or /proc is missing. NumPy loads its BLAS when it is imported, so the
    answer does not change afterwards and is cached."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return ()
    names = [f"{prefix}_{stem}{tail}"
             for prefix in ("openblas", "scipy_openblas") for tail in ("", "64_", "_64_")]
    found = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        found += [getattr(lib, name) for name in names if hasattr(lib, name)][:1]
    for fn in found:
        if stem == "set_num_threads":
            fn.argtypes = [ctypes.c_int]
        elif stem == "get_corename":
            fn.restype = ctypes.c_char_p
    return tuple(found)


def threads(n: int | None = None) -> int | None:
    """Set OpenBLAS's thread count when n is given; return it (None: not OpenBLAS)."""
    if n is not None:
        for fn in openblas_functions("set_num_threads"):
            fn(n)
    getters = openblas_functions("get_num_threads")
    return int(getters[0]()) if getters else None


def kernels() -> str | None:
    """The CPU kernels OpenBLAS chose at run time (e.g. 'Haswell': AVX2), None if unknown."""
    for fn in openblas_functions("get_corename"):
        return fn().decode()
    return None


_lock = threading.Lock()
_depth = 0          # blocks inside one_thread(), over all Python threads
_saved = None       # the thread count to restore when the last one leaves


@contextlib.contextmanager
def one_thread():
    """Run the block with OpenBLAS on one thread; the count from before is restored when the
    last such block (of any Python thread) ends."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = threads()
            if _saved is not None and _saved != 1:
                threads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            # restore unless someone else (threadpoolctl, say) changed the count meanwhile
            if _depth == 0 and _saved is not None and _saved != 1 and threads() == 1:
                threads(_saved)


_pool = None        # the worker threads of matmul(), made on first use


def matmul(a: np.ndarray, b: np.ndarray, parts: int) -> np.ndarray:
    """a @ b for 2-D arrays with OpenBLAS on one thread (see one_thread), its rows split
    over `parts` threads (the caller's and parts - 1 workers; fastcnn.functional decides how
    many a product is worth)."""
    global _pool
    m, n = a.shape[0], b.shape[1]
    with one_thread():
        if parts < 2 or m < 2:
            return a @ b
        parts = min(parts, m)
        out = np.empty((m, n), np.result_type(a, b))
        bounds = [m * i // parts for i in range(parts + 1)]

        def part(i):
            np.matmul(a[bounds[i]:bounds[i + 1]], b, out=out[bounds[i]:bounds[i + 1]])

        if _pool is None or _pool._max_workers < parts - 1:
            _pool = concurrent.futures.ThreadPoolExecutor(parts - 1, "fastcnn-matmul")
        futures = [_pool.submit(part, i) for i in range(1, parts)]
        part(0)
        for f in futures:
            f.result()
        return out


def _after_fork_in_child() -> None:
    # A child forked while another thread was inside one_thread() inherits the lock (maybe
    # held) and the count, but not that thread: start afresh and restore the count. The
    # matmul workers did not survive either.
    global _lock, _depth, _pool
    _lock = threading.Lock()
    if _depth and _saved is not None and _saved != 1:
        threads(_saved)
    _depth = 0
    _pool = None


os.register_at_fork(after_in_child=_after_fork_in_child)
