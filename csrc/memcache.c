/* See memcache.h. */
#include "memcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#define FC_HAVE_PTHREAD 1
#include <pthread.h>
#else
#define FC_HAVE_PTHREAD 0
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* Bytes before the data, holding the block's size. The data is at least 16-byte aligned
   (malloc's alignment); big blocks from fc_cache_malloc start 64-byte aligned. */
#define HEADER 64

typedef struct {
    char *base;
    size_t size;
} block;

static block slots[FC_CACHE_SLOTS]; /* oldest first */
static size_t nslots, cached_bytes;
#if FC_HAVE_PTHREAD
static size_t limit = FC_CACHE_DEFAULT_LIMIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
#define LOCK() pthread_mutex_lock(&lock)
#define UNLOCK() pthread_mutex_unlock(&lock)
#else
static size_t limit = 0;
#define LOCK() (void)0
#define UNLOCK() (void)0
#endif
static unsigned long long hits, misses;

#if FC_HAVE_PTHREAD
/* fork() in another thread while one holds the lock would leave the child's copy locked */
static void lock_for_fork(void) { pthread_mutex_lock(&lock); }
static void unlock_after_fork(void) { pthread_mutex_unlock(&lock); }
/* Run when the library loads: no pthread_once, whose glibc 2.34 symbol would narrow the
   wheel's manylinux tag. */
__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
}
#endif

static size_t *size_of(char *base) { return (size_t *)base; }

/* Remove slot i (the lock held). */
static char *take_slot(size_t i)
{
    char *base = slots[i].base;
    cached_bytes -= slots[i].size;
    memmove(slots + i, slots + i + 1, (nslots - i - 1) * sizeof(block));
    nslots--;
    return base;
}

/* A cached block of exactly `size` bytes, newest first; NULL if none. */
static char *take(size_t size)
{
    char *base = NULL;
    size_t i;
    if (size < FC_CACHE_MIN)
        return NULL;
    LOCK();
    for (i = nslots; i-- > 0;)
        if (slots[i].size == size) {
            base = take_slot(i);
            break;
        }
    if (base)
        hits++;
    else
        misses++;
    UNLOCK();
    return base;
}

static char *new_block(size_t size)
{
    char *base;
    if (size > SIZE_MAX - HEADER)
        return NULL;
#if FC_HAVE_PTHREAD
    if (size < FC_CACHE_MIN)
        base = malloc(HEADER + size);
    else if (posix_memalign((void **)&base, HEADER, HEADER + size))
        return NULL;
    if (!base)
        return NULL;
#else
    base = malloc(HEADER + size);
    if (!base)
        return NULL;
#endif
    *size_of(base) = size;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (size >= ((size_t)4 << 20)) { /* as NumPy's own allocator: huge pages where enabled */
        uintptr_t start = ((uintptr_t)base + 4095) & ~(uintptr_t)4095;
        madvise((void *)start, (uintptr_t)base + HEADER + size - start, MADV_HUGEPAGE);
    }
#endif
    return base;
}

void *fc_cache_malloc(void *ctx, size_t size)
{
    char *base = take(size);
    (void)ctx;
    if (!base)
        base = new_block(size);
    return base ? base + HEADER : NULL;
}

void *fc_cache_calloc(void *ctx, size_t n, size_t elsize)
{
    char *base;
    size_t size;
    (void)ctx;
    if (elsize && n > SIZE_MAX / elsize)
        return NULL;
    size = n * elsize;
    base = take(size);
    if (base) {
        memset(base + HEADER, 0, size);
        return base + HEADER;
    }
    if (size > SIZE_MAX - HEADER)
        return NULL;
    base = calloc(1, HEADER + size); /* fresh pages come zeroed: no memset of its own */
    if (!base)
        return NULL;
    *size_of(base) = size;
    return base + HEADER;
}

void *fc_cache_realloc(void *ctx, void *ptr, size_t size)
{
    char *base;
    (void)ctx;
    if (!ptr)
        return fc_cache_malloc(ctx, size);
    if (size > SIZE_MAX - HEADER)
        return NULL;
    base = realloc((char *)ptr - HEADER, HEADER + size);
    if (!base)
        return NULL;
    *size_of(base) = size;
    return base + HEADER;
}

void fc_cache_free(void *ctx, void *ptr, size_t size_hint)
{
    char *base, *evicted[FC_CACHE_SLOTS];
    size_t size, nevicted = 0, i;
    (void)ctx;
    (void)size_hint; /* the header's size is the one to trust */
    if (!ptr)
        return;
    base = (char *)ptr - HEADER;
    size = *size_of(base);
    LOCK();
    if (size >= FC_CACHE_MIN && size <= limit) {
        while (nslots == FC_CACHE_SLOTS || cached_bytes + size > limit)
            evicted[nevicted++] = take_slot(0);
        slots[nslots].base = base;
        slots[nslots].size = size;
        nslots++;
        cached_bytes += size;
        base = NULL;
    }
    UNLOCK();
    for (i = 0; i < nevicted; i++)
        free(evicted[i]);
    free(base);
}

void fc_cache_set_limit(size_t bytes)
{
    char *evicted[FC_CACHE_SLOTS];
    size_t nevicted = 0, i;
#if !FC_HAVE_PTHREAD
    bytes = 0;
#endif
    LOCK();
    limit = bytes;
    while (nslots && cached_bytes > limit)
        evicted[nevicted++] = take_slot(0);
    UNLOCK();
    for (i = 0; i < nevicted; i++)
        free(evicted[i]);
}

fc_cache_stats fc_cache_info(void)
{
    fc_cache_stats s;
    LOCK();
    s.limit = limit;
    s.bytes = cached_bytes;
    s.blocks = nslots;
    s.hits = hits;
    s.misses = misses;
    UNLOCK();
    return s;
}
