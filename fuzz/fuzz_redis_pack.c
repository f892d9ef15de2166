/* libFuzzer target for the Redis engine's stored form of a pub (Redis is
 * shared: its entries are input). Arbitrary bytes are decoded without a
 * read past their end; a decoded pub, encoded again, decodes to the same
 * fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/redis/pack.h"

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_pub *p = rd_unpack((const char *)data, size, "t", 1, "c", 1, 7, "ep", 2, 1000);
    if (!p) return 0;
    if (p->offset != 7 || strcmp(p->epoch, "ep") || strcmp(p->tenant, "t")) abort();
    sbuf b;
    sbuf_init(&b);
    rd_pack(&b, p);
    pl_pub *q = b.oom ? NULL : rd_unpack(b.data, b.len, "t", 1, "c", 1, 7, "ep", 2, 1000);
    if (!q || q->cls != p->cls || strcmp(q->id, p->id) || q->data_len != p->data_len ||
        memcmp(q->data, p->data, p->data_len) || !same(q->user, p->user) ||
        !same(q->client, p->client) || !same(q->type, p->type) ||
        !same(q->correlation_id, p->correlation_id) || !same(q->headers, p->headers) ||
        !same(q->idem_key, p->idem_key))
        abort();
    sbuf_release(&b);
    pub_unref(q);
    pub_unref(p);
    return 0;
}
