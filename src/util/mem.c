/* Allocation wrapper with a failure-injection hook for tests. The countdown
 * is the one process-wide variable outside struct server: it exists only to
 * drive out-of-memory tests and is atomic so worker threads may race on it. */
#include "util/mem.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static _Atomic long fail_countdown = -1;

static int should_fail(void)
{
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n < 0) return 0;
    if (n == 0) return 1;
    atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed);
    return 0;
}

void pl_mem_fail_after(long n)
{
    atomic_store(&fail_countdown, n);
}

void *pl_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n ? n : 1);
}

/* glibc's calloc (2.36) never takes a chunk from the per-thread cache, so a
 * small calloc costs a full allocation (about 170 instructions, more than
 * the memset); malloc then memset uses the cache. Large blocks stay with
 * calloc, which skips zeroing pages fresh from the kernel. */
#define CALLOC_VIA_MALLOC_MAX 1024

void *pl_calloc(size_t count, size_t size)
{
    if (should_fail()) return NULL;
    if (!count) count = 1;
    if (!size) size = 1;
    if (count > SIZE_MAX / size) return NULL; /* as calloc, without asking it */
    if (size > CALLOC_VIA_MALLOC_MAX / count) return calloc(count, size);
    size_t n = count * size, fill = n;
    void *p = malloc(n);
    /* Hides that fill is n from the compiler, which would fold the pair
     * back into a calloc call. */
    __asm__("" : "+r"(fill));
    if (p) memset(p, 0, fill);
    return p;
}

void *pl_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void pl_free(void *p)
{
    free(p);
}

char *pl_strndup(const char *s, size_t n)
{
    char *d = pl_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *pl_strdup(const char *s)
{
    return pl_strndup(s, strlen(s));
}
