/* Unit tests for fan-out against a recording sink: who gets which pub, in
 * what order and in how many queue items; recovering subscribers skip live
 * pubs; ephemeral pubs are shed before a queue fills; a lost pub closes its
 * channel's subscribers with 4002 and no one else; out of memory links
 * nothing and leaks nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker/fanout.h"
#include "util/mem.h"

/* ---- a recording sink ------------------------------------------------------ */

typedef struct fake_sink {
    pl_sink base;         /* first */
    uint64_t offsets[64]; /* pub offsets in the order queued (0 for ephemeral) */
    size_t npubs;
    size_t items; /* queue items, a joined run counts once */
    size_t runs;
    uint16_t close_code;
    int refuse; /* enqueue fails, as past the queue bound */
} fake_sink;

static int f_enqueue(pl_sink *s, enum out_kind kind, void *ref, size_t len)
{
    fake_sink *f = (fake_sink *)s;
    if (kind == OUT_PUBS) {
        /* A run: its frames are the offsets joined by '\n'. */
        rbuf *b = ref;
        const char *p = b->data, *end = b->data + b->len;
        while (p < end) {
            unsigned long long off = 0;
            sscanf(p, "%llu", &off);
            f->offsets[f->npubs++] = off;
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
        }
        f->runs++;
        rbuf_unref(b);
    } else {
        rbuf_unref(ref);
    }
    f->items++;
    s->queued += len;
    return 0;
}

static int f_enqueue_pub(pl_sink *s, pl_pub *p)
{
    fake_sink *f = (fake_sink *)s;
    if (f->refuse) return -1;
    f->offsets[f->npubs++] = p->offset;
    f->items++;
    s->queued += 100;
    return 0;
}

static int f_send_json(pl_sink *s, const char *json, size_t len)
{
    (void)s;
    (void)json;
    (void)len;
    return 0;
}

static void f_close(pl_sink *s, uint16_t code, const char *reason)
{
    (void)reason;
    ((fake_sink *)s)->close_code = code;
}

static const sink_ops fake_ops = {.enqueue = f_enqueue,
                                  .enqueue_pub = f_enqueue_pub,
                                  .send_json = f_send_json,
                                  .send_reply = f_send_json,
                                  .close = f_close};

static void sink_init(fake_sink *f, enum sink_kind kind)
{
    memset(f, 0, sizeof(*f));
    f->base.ops = &fake_ops;
    f->base.kind = (uint8_t)kind;
}

/* The frame is the offset as text, so a joined run can be read back. */
static rbuf *encode(const pl_pub *p)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)p->offset);
    return rbuf_from(buf, (size_t)n);
}

static pl_pub *pub(const char *channel, uint64_t offset, pub_class cls)
{
    pub_fields f = {.tenant = "t",
                    .tenant_len = 1,
                    .channel = channel,
                    .channel_len = strlen(channel),
                    .data = "{}",
                    .data_len = 2};
    pl_pub *p = pub_new(&f, cls);
    assert_non_null(p);
    p->offset = offset;
    return p;
}

static metrics_shard shard;

static fanout *make(size_t shed_above, int (*subscribed)(void *, const char *))
{
    metrics_shard_init(&shard);
    fanout_env env = {
        .metrics = &shard, .encode = encode, .shed_above = shed_above, .subscribed = subscribed};
    fanout *f = fanout_new(&env);
    assert_non_null(f);
    return f;
}

static void done(fanout *f)
{
    fanout_free(f);
    metrics_shard_release(&shard);
}

static void sub_init(fanout_sub *s, fake_sink *out, enum sub_state st)
{
    memset(s, 0, sizeof(*s));
    s->out = &out->base;
    s->client = "c";
    s->user = "u";
    s->state = (uint8_t)st;
}

static void fan(fanout *f, pl_pub **ps, size_t n)
{
    fanout_pubs(f, ps, n);
    for (size_t i = 0; i < n; i++)
        pub_unref(ps[i]);
}

/* ---- tests ----------------------------------------------------------------- */

static void live_subscribers_get_each_pub_once_in_order(void **state)
{
    (void)state;
    fanout *f = make(1 << 20, NULL);
    fake_sink a, b, other;
    fanout_sub sa, sb, so;
    sink_init(&a, SINK_SSE);
    sink_init(&b, SINK_SSE);
    sink_init(&other, SINK_SSE);
    sub_init(&sa, &a, SUB_LIVE);
    sub_init(&sb, &b, SUB_RECOVERING);
    sub_init(&so, &other, SUB_LIVE);
    assert_int_equal(fanout_attach(f, &sa, "t", "room"), 0);
    assert_int_equal(fanout_attach(f, &sb, "t", "room"), 0);
    assert_int_equal(fanout_attach(f, &so, "t", "elsewhere"), 0);
    assert_int_equal(fanout_subs(f), 3);
    pl_pub *ps[] = {pub("room", 1, PUB_STANDARD), pub("room", 2, PUB_STANDARD)};
    fan(f, ps, 2);
    /* SSE takes runs pub by pub; the recovering one waits for its READ. */
    assert_int_equal(a.npubs, 2);
    assert_int_equal(a.offsets[0], 1);
    assert_int_equal(a.offsets[1], 2);
    assert_int_equal(a.runs, 0);
    assert_int_equal(b.npubs, 0);
    assert_int_equal(other.npubs, 0);
    assert_int_equal(sa.last_offset, 2);
    /* An offset already sent (the READ covered it, or a duplicate) is not
     * sent again. */
    pl_pub *again[] = {pub("room", 2, PUB_STANDARD), pub("room", 3, PUB_STANDARD)};
    sb.state = SUB_LIVE;
    sb.last_offset = 2;
    fan(f, again, 2);
    assert_int_equal(a.npubs, 3);
    assert_int_equal(a.offsets[2], 3);
    assert_int_equal(b.npubs, 1);
    assert_int_equal(b.offsets[0], 3);
    assert_int_equal(atomic_load(&shard.c[M_DELIVERIES]), 4);
    fanout_detach(f, &sa);
    fanout_detach(f, &sa); /* no-op */
    fanout_detach(f, &sb);
    fanout_detach(f, &so);
    assert_int_equal(fanout_subs(f), 0);
    done(f);
}

static void websocket_subscribers_take_a_run_as_one_item(void **state)
{
    (void)state;
    fanout *f = make(1 << 20, NULL);
    fake_sink ws, sse, behind;
    fanout_sub sw, ss, sbh;
    sink_init(&ws, SINK_WS);
    sink_init(&sse, SINK_SSE);
    sink_init(&behind, SINK_WS);
    sub_init(&sw, &ws, SUB_LIVE);
    sub_init(&ss, &sse, SUB_LIVE);
    sub_init(&sbh, &behind, SUB_LIVE);
    sbh.last_offset = 1; /* has seen the first pub of the run already */
    fanout_attach(f, &sw, "t", "room");
    fanout_attach(f, &ss, "t", "room");
    fanout_attach(f, &sbh, "t", "room");
    pl_pub *ps[] = {pub("room", 1, PUB_STANDARD), pub("room", 2, PUB_STANDARD),
                    pub("room", 3, PUB_STANDARD)};
    fan(f, ps, 3);
    assert_int_equal(ws.items, 1);
    assert_int_equal(ws.runs, 1);
    assert_int_equal(ws.npubs, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(ws.offsets[i], i + 1);
    assert_int_equal(sw.last_offset, 3);
    assert_int_equal(sse.items, 3);
    assert_int_equal(behind.items, 2); /* pub by pub, skipping what it has */
    assert_int_equal(behind.offsets[0], 2);
    /* Guaranteed pubs never join a run (each is tracked per recipient). */
    pl_pub *g[] = {pub("room", 4, PUB_GUARANTEED), pub("room", 5, PUB_GUARANTEED)};
    fan(f, g, 2);
    assert_int_equal(ws.items, 3);
    assert_int_equal(ws.runs, 1);
    fanout_detach(f, &sw);
    fanout_detach(f, &ss);
    fanout_detach(f, &sbh);
    done(f);
}

static void ephemeral_pubs_are_shed_before_the_queue_fills(void **state)
{
    (void)state;
    fanout *f = make(150, NULL);
    fake_sink a, origin;
    fanout_sub sa, so;
    sink_init(&a, SINK_SSE);
    sink_init(&origin, SINK_SSE);
    sub_init(&sa, &a, SUB_LIVE);
    sub_init(&so, &origin, SUB_LIVE);
    so.client = "me";
    fanout_attach(f, &sa, "t", "room");
    fanout_attach(f, &so, "t", "room");
    pl_pub *e1 = pub("room", 0, PUB_EPHEMERAL);
    e1->skip_origin = 1;
    e1->client = "me";
    pl_pub *ps[] = {e1, pub("room", 0, PUB_EPHEMERAL), pub("room", 0, PUB_EPHEMERAL)};
    /* One at a time: a run would be judged as a whole. */
    for (int i = 0; i < 3; i++)
        fan(f, &ps[i], 1);
    /* a: 100 bytes after the first, 200 after the second: the third is shed. */
    assert_int_equal(a.npubs, 2);
    /* The origin never gets its own signal, and sheds later. */
    assert_int_equal(origin.npubs, 2);
    /* Stored pubs are never shed. */
    pl_pub *s[] = {pub("room", 1, PUB_STANDARD)};
    fan(f, s, 1);
    assert_int_equal(a.npubs, 3);
    fanout_detach(f, &sa);
    fanout_detach(f, &so);
    done(f);
}

static void a_lost_pub_closes_its_channel_with_4002(void **state)
{
    (void)state;
    fanout *f = make(1 << 20, NULL);
    fake_sink a, b, other;
    fanout_sub sa, sb, so;
    sink_init(&a, SINK_WS);
    sink_init(&b, SINK_SSE);
    sink_init(&other, SINK_WS);
    sub_init(&sa, &a, SUB_LIVE);
    sub_init(&sb, &b, SUB_RECOVERING);
    sub_init(&so, &other, SUB_LIVE);
    fanout_attach(f, &sa, "t", "room");
    fanout_attach(f, &sb, "t", "room");
    fanout_attach(f, &so, "t", "elsewhere");
    pl_pub *p = pub("room", 7, PUB_STANDARD);
    assert_int_equal(fanout_lost(f, p), 2);
    assert_int_equal(a.close_code, 4002);
    assert_int_equal(b.close_code, 4002);
    assert_int_equal(other.close_code, 0);
    pl_pub *nobody = pub("empty", 1, PUB_STANDARD);
    assert_int_equal(fanout_lost(f, nobody), 0);
    assert_int_equal(fanout_lost_all(f), 3);
    assert_int_equal(other.close_code, 4002);
    pub_unref(p);
    pub_unref(nobody);
    fanout_detach(f, &sa);
    fanout_detach(f, &sb);
    fanout_detach(f, &so);
    done(f);
}

static int subscribed_owner;

static int is_subscribed(void *owner, const char *channel)
{
    (void)channel;
    return owner == &subscribed_owner;
}

static void user_pushes_reach_unsubscribed_devices(void **state)
{
    (void)state;
    fanout *f = make(1 << 20, is_subscribed);
    fake_sink phone, laptop, stranger;
    int unsubscribed_owner = 0;
    sink_init(&phone, SINK_WS);
    sink_init(&laptop, SINK_WS);
    sink_init(&stranger, SINK_WS);
    assert_int_equal(fanout_user_add(f, &phone.base, &unsubscribed_owner, "t", "u"), 0);
    assert_int_equal(fanout_user_add(f, &laptop.base, &subscribed_owner, "t", "u"), 0);
    assert_int_equal(fanout_user_add(f, &stranger.base, &unsubscribed_owner, "t", "v"), 0);
    pub_fields pf = {.tenant = "t",
                     .tenant_len = 1,
                     .channel = "room",
                     .channel_len = 4,
                     .user = "u",
                     .user_len = 1,
                     .data = "{}",
                     .data_len = 2};
    pl_pub *p = pub_new(&pf, PUB_EPHEMERAL);
    p->to_user = 1;
    fan(f, &p, 1);
    assert_int_equal(phone.npubs, 1);
    assert_int_equal(laptop.npubs, 0); /* gets it through the channel */
    assert_int_equal(stranger.npubs, 0);
    fanout_user_del(f, &phone.base, "t", "u");
    fanout_user_del(f, &laptop.base, "t", "u");
    fanout_user_del(f, &stranger.base, "t", "v");
    fanout_user_del(f, &stranger.base, "t", "v"); /* no-op */
    done(f);
}

static void out_of_memory_links_nothing(void **state)
{
    (void)state;
    for (long n = 0; n < 4; n++) {
        fanout *f = make(1 << 20, NULL);
        fake_sink a;
        fanout_sub sa;
        sink_init(&a, SINK_WS);
        sub_init(&sa, &a, SUB_LIVE);
        pl_mem_fail_after(n);
        int rc = fanout_attach(f, &sa, "t", "room");
        int urc = fanout_user_add(f, &a.base, NULL, "t", "u");
        pl_mem_fail_after(-1);
        if (rc == 0) {
            assert_int_equal(fanout_subs(f), 1);
            fanout_detach(f, &sa);
        } else {
            assert_int_equal(fanout_subs(f), 0);
            assert_null(sa._ch);
        }
        if (urc == 0) fanout_user_del(f, &a.base, "t", "u");
        done(f); /* ASan: nothing left behind */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(live_subscribers_get_each_pub_once_in_order),
        cmocka_unit_test(websocket_subscribers_take_a_run_as_one_item),
        cmocka_unit_test(ephemeral_pubs_are_shed_before_the_queue_fills),
        cmocka_unit_test(a_lost_pub_closes_its_channel_with_4002),
        cmocka_unit_test(user_pushes_reach_unsubscribed_devices),
        cmocka_unit_test(out_of_memory_links_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
