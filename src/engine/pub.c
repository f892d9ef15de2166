/* Pub records; see pub.h. */
#include "engine/pub.h"

#include <string.h>

#include "util/clock.h"
#include "util/mem.h"

static const char *put(char **cursor, const char *s, size_t n)
{
    if (!s) return NULL;
    char *dst = *cursor;
    memcpy(dst, s, n);
    dst[n] = '\0';
    *cursor += n + 1;
    return dst;
}

pl_pub *pub_new(const pub_fields *f, pub_class cls)
{
    size_t extra = 0;
    const char *srcs[] = {f->tenant, f->channel,        f->data,    f->user,    f->client,
                          f->type,   f->correlation_id, f->headers, f->idem_key};
    size_t lens[] = {f->tenant_len,         f->channel_len, f->data_len,
                     f->user_len,           f->client_len,  f->type_len,
                     f->correlation_id_len, f->headers_len, f->idem_key_len};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        if (srcs[i]) extra += lens[i] + 1;
    pl_pub *p = pl_calloc(1, sizeof(*p) + extra);
    if (!p) return NULL;
    atomic_init(&p->refs, 1);
    p->cls = cls;
    p->ts_ms = f->now_ms ? f->now_ms : clock_wall_ms();
    p->created_us = f->now_us ? f->now_us : clock_mono_us();
    /* Stored pubs get their id from the engine when it assigns the offset. */
    if (cls == PUB_EPHEMERAL) clock_ulid_at(p->id, p->ts_ms);
    char *cur = (char *)(p + 1);
    p->tenant = put(&cur, f->tenant, f->tenant_len);
    p->channel = put(&cur, f->channel, f->channel_len);
    p->data = put(&cur, f->data, f->data_len);
    p->data_len = f->data ? f->data_len : 0;
    p->user = put(&cur, f->user, f->user_len);
    p->client = put(&cur, f->client, f->client_len);
    p->type = put(&cur, f->type, f->type_len);
    p->correlation_id = put(&cur, f->correlation_id, f->correlation_id_len);
    p->headers = put(&cur, f->headers, f->headers_len);
    p->idem_key = put(&cur, f->idem_key, f->idem_key_len);
    return p;
}

pl_pub *pub_ref(pl_pub *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void pub_unref(pl_pub *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1) return;
    rbuf_unref(atomic_load_explicit(&p->frame, memory_order_relaxed));
    pl_free(p);
}

const rbuf *pub_frame(pl_pub *p, pub_encode_fn encode)
{
    rbuf *have = atomic_load_explicit(&p->frame, memory_order_acquire);
    if (have) return have;
    rbuf *mine = encode(p);
    if (!mine) return NULL;
    /* On a lost race `have` becomes the winner's frame. */
    if (atomic_compare_exchange_strong_explicit(&p->frame, &have, mine, memory_order_acq_rel,
                                                memory_order_acquire))
        return mine;
    rbuf_unref(mine);
    return have;
}

void pub_set_frame(pl_pub *p, rbuf *frame)
{
    rbuf_unref(atomic_exchange_explicit(&p->frame, frame, memory_order_relaxed));
}
