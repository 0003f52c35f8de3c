"""Runtime settings and facts: the kernels' thread count, NumPy's BLAS threads, the memory
cache, the build. With `fastcnn.functional` the only module that loads the compiled kernels
(and `_blas`): functional calls them, this module configures them."""
from __future__ import annotations

import functools
import os
import platform

import numpy as np

from . import _blas

from ._validate import integer
from ._version import __version__


def _load_kernels():
    """Import the compiled kernels with OpenMP's idle threads set to sleep, not spin.

    By default GNU OpenMP keeps its threads spinning for a while after each parallel region;
    on a machine with few cores they then compete with NumPy's BLAS threads (a Linear layer
    between two convolutions) and both slow down several-fold. The OpenMP runtime reads
    OMP_WAIT_POLICY once, when it loads with these modules, so it is set just for that
    moment (unless the user chose a policy) and the environment is then left as it was.
    """
    chosen = "OMP_WAIT_POLICY" in os.environ
    if not chosen:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from ._kernels import conv, runtime
    except ImportError as e:
        raise ImportError(_unbuilt(e)) from e
    finally:
        if not chosen:
            del os.environ["OMP_WAIT_POLICY"]
    return conv, runtime


def _unbuilt(error: ImportError) -> str:
    """What to do when the compiled kernels are missing: most often Python was started in a
    source checkout, whose fastcnn/ folder shadows the installed package."""
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.exists(os.path.join(os.path.dirname(here), "setup.py")):
        return (f"fastcnn's compiled kernels are not built in {here} ({error}): this is the "
                f"source tree, which shadows an installed fastcnn when Python starts in "
                f"{os.path.dirname(here)}. Run from another folder, or build in place with "
                f"'python setup.py build_ext --inplace'")
    return f"fastcnn's compiled kernels cannot be loaded: {error}"


_conv, _runtime = _load_kernels()

MAX_THREADS = 1024
_num_threads = min(max(1, _runtime.omp_max_threads()), MAX_THREADS)
_forked = False  # this process is a fork() child: its kernels stay on one thread


def _one_thread_after_fork() -> None:
    # OpenMP's thread pool does not survive fork(): the child has the parent's pool state but
    # none of its threads, so with GNU libgomp the child's first parallel region waits for them
    # forever. A region on one thread never touches the pool.
    global _num_threads, _forked
    _num_threads = 1
    _forked = True


os.register_at_fork(after_in_child=_one_thread_after_fork)


def set_num_threads(n: int) -> None:
    """Set how many threads the kernels use (default: OMP_NUM_THREADS, else all cores).

    Without OpenMP in the build the kernels always run on one thread; the setting is kept.
    In a child process made by fork() (multiprocessing's "fork" start method) the kernels run
    on one thread and this call only checks its argument: OpenMP's threads do not survive
    fork, and GNU libgomp would hang waiting for them. Processes started with "spawn" or
    "forkserver" are unaffected.
    """
    global _num_threads
    n = integer("set_num_threads", "n", n, 1, MAX_THREADS)
    if not _forked:
        _num_threads = n


def get_num_threads() -> int:
    """The number of threads the kernels use (1 in a fork() child, see `set_num_threads`)."""
    return _num_threads


def reuses_memory(method):
    """Decorator: NumPy allocates the arrays `method` makes from fastcnn's block cache.

    The cache (csrc/memcache.c) keeps freed buffers of 64 KiB and more, up to a byte limit,
    and hands each back to the next request of the same size. A training step asks for the
    same sizes every step, and without it each big buffer comes fresh from the kernel and
    is page-faulted in again, a large part of a small network's step. Only
    calls inside fastcnn's layers, losses and optimizers use the cache; NumPy elsewhere
    keeps its own allocator, but the arrays fastcnn returns (outputs, gradients) go back
    to the cache when they are freed, wherever that happens. The handler is per context (a
    context variable), so threads and asyncio tasks do not see each other's.
    """
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        previous = _runtime.set_memory_handler(_runtime.CACHE_HANDLER)
        try:
            return method(*args, **kwargs)
        finally:
            _runtime.set_memory_handler(previous)
    wrapper.__wrapped_for_memory__ = True
    return wrapper


def memory_cache_info() -> dict:
    """fastcnn's cache of freed array buffers (see `set_memory_cache_limit`): limit, bytes
    and blocks held now, and hits and misses (requests of 64 KiB or more) so far."""
    return _runtime.cache_info()


def set_memory_cache_limit(nbytes: int) -> None:
    """Keep at most nbytes of freed array buffers for reuse (default 256 MiB, 0 in the
    AddressSanitizer build; 0: none).

    fastcnn's layers, losses and optimizers allocate from this cache, so a training or
    inference loop reuses the same buffers every step instead of page-faulting new ones in.
    Lowering the limit frees what is over it at once.
    """
    _runtime.set_cache_limit(integer("set_memory_cache_limit", "nbytes", nbytes, 0, 2**63 - 1))


def build_info() -> dict:
    """How this fastcnn was built and what it runs on.

    Keys: version, openmp (bool: kernels threaded), simd (the instruction set the
    convolution kernels dispatch to: 'avx512', 'avx2+fma' or 'generic', the best the CPU
    runs unless FASTCNN_SIMD=generic|avx2|avx512 in the environment asks for a lower one), cpu_simd (the widest the CPU has), compiler,
    num_threads, numpy, python, machine.
    """
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


def numpy_blas_threads(n: int | None = None) -> int | None:
    """Set NumPy's OpenBLAS thread count when n is given; return it (None where NumPy's BLAS
    is not OpenBLAS). For measuring NumPy on the same threads as fastcnn."""
    if n is not None:
        n = integer("numpy_blas_threads", "n", n, 1, MAX_THREADS)
    return _blas.threads(n)


def numpy_blas_kernels() -> str | None:
    """The CPU kernels NumPy's OpenBLAS chose at run time ('Haswell': AVX2), None if unknown."""
    return _blas.kernels()
