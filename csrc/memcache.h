/* A cache of freed array buffers, handed back to the next request of the same size.
 * Plain C, no Python.h; fastcnn/_kernels/runtime.pyx wraps it as a NumPy memory handler.
 *
 * Why: a training step frees and re-allocates the same few buffer sizes every step (each
 * layer's output, its gradient, the kernels' padded copies). glibc serves large requests
 * with fresh mmap()s, or trims the heap top back to the kernel, so each such buffer is
 * page-faulted in again on every step, a large part of a small network's step. Reusing the
 * freed buffer costs no fault.
 *
 * Every block carries a 64-byte header holding its size, so the cache never trusts a
 * caller's idea of the size (the data keeps malloc's 16-byte alignment at least). Blocks of at least FC_CACHE_MIN bytes
 * are kept when freed, newest first, while the cache holds fewer than FC_CACHE_SLOTS blocks
 * and at most the limit's bytes (oldest evicted first); smaller ones go straight to free().
 * All functions are thread-safe (one mutex; none without pthreads, where nothing is cached).
 */
#ifndef FASTCNN_MEMCACHE_H
#define FASTCNN_MEMCACHE_H

#include <stddef.h>

#define FC_CACHE_MIN (64 * 1024)
#define FC_CACHE_SLOTS 64
#ifndef FC_CACHE_DEFAULT_LIMIT /* the sanitizer build sets 0: ASan must see every free */
#define FC_CACHE_DEFAULT_LIMIT ((size_t)256 << 20)
#endif

void *fc_cache_malloc(void *ctx, size_t size);
void *fc_cache_calloc(void *ctx, size_t n, size_t elsize);
void *fc_cache_realloc(void *ctx, void *ptr, size_t size);
void fc_cache_free(void *ctx, void *ptr, size_t size);

/* Set the byte limit (0: cache nothing); blocks over it are freed now. */
void fc_cache_set_limit(size_t bytes);

typedef struct {
    size_t limit, bytes, blocks;
    unsigned long long hits, misses;
} fc_cache_stats;

fc_cache_stats fc_cache_info(void);

#endif
