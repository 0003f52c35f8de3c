"""Facts about the build and the CPU, from csrc/runtime.c."""


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(fc_openmp_enabled())


def omp_max_threads():
    """OpenMP's default thread count (honours OMP_NUM_THREADS); 1 without OpenMP."""
    return fc_omp_max_threads()


def compiler():
    """The C compiler that built the kernels, e.g. 'gcc 12.2.0'."""
    return fc_compiler().decode()


def cpu_simd():
    """The widest SIMD instruction set this CPU supports, as fastcnn names it."""
    return fc_cpu_simd().decode()


# ------------------------------------------------------------------- NumPy memory handler
# csrc/memcache.c as a NumPy data-memory handler (NEP 49). NumPy keeps the handler an array
# was allocated with and frees the array's data with the same one, so arrays made while it
# is active may outlive that and mix freely with any others.

from cpython.pycapsule cimport PyCapsule_New
from libc.string cimport strncpy
from libc.stdint cimport uint8_t

cimport numpy as cnp

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    ctypedef struct PyDataMemAllocator:
        void *ctx
        void *(*malloc)(void *ctx, size_t size) noexcept nogil
        void *(*calloc)(void *ctx, size_t nelem, size_t elsize) noexcept nogil
        void *(*realloc)(void *ctx, void *ptr, size_t new_size) noexcept nogil
        void (*free)(void *ctx, void *ptr, size_t size) noexcept nogil
    ctypedef struct PyDataMem_Handler:
        char name[127]
        uint8_t version
        PyDataMemAllocator allocator
    object PyDataMem_SetHandler(object handler)

cdef PyDataMem_Handler _cache_handler
strncpy(_cache_handler.name, b"fastcnn_block_cache", 127)
_cache_handler.version = 1
_cache_handler.allocator.ctx = NULL
_cache_handler.allocator.malloc = fc_cache_malloc
_cache_handler.allocator.calloc = fc_cache_calloc
_cache_handler.allocator.realloc = fc_cache_realloc
_cache_handler.allocator.free = fc_cache_free

CACHE_HANDLER = PyCapsule_New(&_cache_handler, "mem_handler", NULL)


def set_memory_handler(handler):
    """Make `handler` (a NumPy "mem_handler" capsule, e.g. CACHE_HANDLER) the one NumPy
    allocates new arrays with in the current context; returns the previous one."""
    return PyDataMem_SetHandler(handler)


def cache_info():
    """The block cache now: limit, bytes and blocks held, hits and misses so far."""
    cdef fc_cache_stats s = fc_cache_info()
    return {"limit": s.limit, "bytes": s.bytes, "blocks": s.blocks, "hits": s.hits,
            "misses": s.misses}


def set_cache_limit(size_t nbytes):
    """Hold at most nbytes of freed blocks (0: none); blocks over the new limit are freed."""
    fc_cache_set_limit(nbytes)
