cdef extern from "runtime.h" nogil:
    int fc_openmp_enabled()
    int fc_omp_max_threads()
    const char *fc_compiler()
    const char *fc_cpu_simd()

cdef extern from "memcache.h" nogil:
    ctypedef struct fc_cache_stats:
        size_t limit, bytes, blocks
        unsigned long long hits, misses
    void *fc_cache_malloc(void *ctx, size_t size)
    void *fc_cache_calloc(void *ctx, size_t n, size_t elsize)
    void *fc_cache_realloc(void *ctx, void *ptr, size_t size)
    void fc_cache_free(void *ctx, void *ptr, size_t size)
    void fc_cache_set_limit(size_t bytes)
    fc_cache_stats fc_cache_info()
