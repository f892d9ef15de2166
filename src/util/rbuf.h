/* Reference-counted immutable byte buffers: one serialized pub frame shared
 * by every worker and connection. The refcount is atomic; the bytes must not
 * change once a second reference exists. */
#ifndef PL_RBUF_H
#define PL_RBUF_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct rbuf {
    atomic_int refs;
    size_t len;
    char data[];
} rbuf;

/* Returns a buffer of len bytes with one reference, or NULL. */
rbuf *rbuf_new(size_t len);
/* Returns a new buffer holding a copy of data. */
rbuf *rbuf_from(const void *data, size_t len);
/* Adds a reference; returns b. */
rbuf *rbuf_ref(rbuf *b);
/* Drops a reference; frees the buffer on the last one. NULL is ignored. */
void rbuf_unref(rbuf *b);

#endif
