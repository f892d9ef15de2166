/* Reference-counted buffers; see rbuf.h. */
#include "util/rbuf.h"

#include <string.h>

#include "util/mem.h"

rbuf *rbuf_new(size_t len)
{
    rbuf *b = pl_malloc(sizeof(*b) + len + 1);
    if (!b) return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    b->data[len] = '\0';
    return b;
}

rbuf *rbuf_from(const void *data, size_t len)
{
    rbuf *b = rbuf_new(len);
    if (b && len) memcpy(b->data, data, len);
    return b;
}

rbuf *rbuf_ref(rbuf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void rbuf_unref(rbuf *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) pl_free(b);
}
