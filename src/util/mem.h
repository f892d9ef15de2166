/* The one allocation wrapper. Every module allocates through pl_malloc and
 * friends so tests can make the Nth allocation fail (pl_mem_fail_after) and
 * exercise out-of-memory paths. Memory from these is freed with pl_free. */
#ifndef PL_MEM_H
#define PL_MEM_H

#include <stddef.h>

void *pl_malloc(size_t n);
void *pl_calloc(size_t count, size_t size);
void *pl_realloc(void *p, size_t n);
void pl_free(void *p);
/* Returns a pl_malloc'd copy of s (NUL-terminated); caller frees. */
char *pl_strdup(const char *s);
/* Returns a pl_malloc'd NUL-terminated copy of n bytes of s; caller frees. */
char *pl_strndup(const char *s, size_t n);

/* Test hook: after n more successful allocations, every allocation fails
 * until reset with n < 0. Process-wide; used only by unit tests. */
void pl_mem_fail_after(long n);

#endif
