/* Unit tests for fan-out against a recording sink: who gets which pub, in
 * what order and in how many queue items; recovering subscribers skip live
 * pubs; ephemeral pubs are shed before a queue fills; a lost pub closes its
 * channel's subscribers with 4002 and no one else; slow-consumer policies
 * drop a channel's queued pubs behind a gap instead of disconnecting; out of
 * memory links nothing and leaks nothing. */
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

/* What the fake's queue holds now (drop_pubs edits it). */
typedef struct fake_item {
    uint8_t kind;              /* enum out_kind */
    char channel[16];          /* a copy: the pub may be gone */
    uint64_t offset, from, to; /* a pub's offset; a gap's range */
    size_t len;
} fake_item;

typedef struct fake_sink {
    pl_sink base; /* first */
    fake_item q[64];
    size_t qn;
    size_t bound;         /* > 0: a pub past it closes with 4001, as net/conn.c does */
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
    f->q[f->qn++] = (fake_item){.kind = (uint8_t)kind, .len = len};
    f->items++;
    s->queued += len;
    return 0;
}

static int f_enqueue_pub(pl_sink *s, pl_pub *p)
{
    fake_sink *f = (fake_sink *)s;
    if (f->refuse) return -1;
    if (f->bound && s->queued - s->replies + 100 > f->bound) {
        f->close_code = 4001;
        return -1;
    }
    fake_item it = {.kind = OUT_PUB, .offset = p->offset, .len = 100};
    snprintf(it.channel, sizeof(it.channel), "%s", p->channel);
    f->q[f->qn++] = it;
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

/* The policy's drop as net/conn.c does it, minus widening an earlier gap
 * (a gap here takes no bytes, so gaps may pile up). */
static int f_drop_pubs(pl_sink *s, const pl_pub *like, size_t need, int all, sink_gap *g, int *skip)
{
    fake_sink *f = (fake_sink *)s;
    size_t dropped = 0, j = 0;
    int n = 0;
    fake_item gap = {.kind = OUT_GAP};
    (void)g;
    for (size_t i = 0; i < f->qn; i++) {
        fake_item it = f->q[i];
        if (it.kind == OUT_PUB && it.offset && !strcmp(it.channel, like->channel) &&
            (all || dropped < need)) {
            if (!n++) {
                gap.from = it.offset;
                f->q[j++] = gap; /* where the first dropped pub was */
            }
            gap.to = it.offset;
            dropped += it.len;
            continue;
        }
        f->q[j++] = it;
    }
    if (!n) return -1;
    f->qn = j;
    s->queued -= dropped;
    *skip = dropped < need;
    for (size_t i = 0; i < f->qn; i++)
        if (f->q[i].kind == OUT_GAP && f->q[i].from == gap.from)
            f->q[i].to = *skip ? like->offset : gap.to;
    return n + *skip;
}

static const sink_ops fake_ops = {.enqueue = f_enqueue,
                                  .enqueue_pub = f_enqueue_pub,
                                  .send_json = f_send_json,
                                  .send_reply = f_send_json,
                                  .drop_pubs = f_drop_pubs,
                                  .close = f_close};

static void sink_init(fake_sink *f, enum sink_kind kind)
{
    memset(f, 0, sizeof(*f));
    f->base.ops = &fake_ops;
    f->base.kind = (uint8_t)kind;
}

/* The frame is the offset as text, so a joined run can be read back,
 * padded to the 100 bytes the fake counts for a queued pub. */
static rbuf *encode(const pl_pub *p)
{
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "%-100llu", (unsigned long long)p->offset);
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
static size_t queue_bound; /* of the next make(); 0 = none */

static fanout *make(size_t shed_above, int (*subscribed)(void *, const char *))
{
    metrics_shard_init(&shard);
    fanout_env env = {.metrics = &shard,
                      .encode = encode,
                      .shed_above = shed_above,
                      .queue_bound = queue_bound,
                      .subscribed = subscribed};
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

/* Checks that the pubs and gaps of channel ch queued on f name offsets
 * 1..upto each exactly once, in order; returns the pubs among them. */
static size_t covers_once(const fake_sink *f, const char *ch, uint64_t upto)
{
    uint64_t next = 1;
    size_t pubs = 0;
    for (size_t i = 0; i < f->qn; i++) {
        const fake_item *it = &f->q[i];
        if (it->kind == OUT_PUB && !strcmp(it->channel, ch)) {
            assert_int_equal(it->offset, next);
            next++;
            pubs++;
        } else if (it->kind == OUT_GAP) {
            assert_int_equal(it->from, next);
            assert_true(it->to >= it->from);
            next = it->to + 1;
        }
    }
    assert_int_equal(next, upto + 1);
    return pubs;
}

static void fan_one(fanout *f, const char *ch, uint64_t off)
{
    pl_pub *p = pub(ch, off, PUB_STANDARD);
    fan(f, &p, 1);
}

static void drop_oldest_names_what_it_drops_and_keeps_the_connection(void **state)
{
    (void)state;
    queue_bound = 500; /* five pubs */
    fanout *f = make(1 << 20, NULL);
    queue_bound = 0;
    fake_sink a;
    fanout_sub room, news;
    sink_init(&a, SINK_WS);
    a.bound = 500;
    sub_init(&room, &a, SUB_LIVE);
    sub_init(&news, &a, SUB_LIVE);
    room.policy = FAN_SLOW_DROP_OLDEST;
    fanout_attach(f, &room, "t", "room");
    fanout_attach(f, &news, "t", "news");
    fan_one(f, "news", 1);
    fan_one(f, "news", 2);
    for (uint64_t o = 1; o <= 3; o++)
        fan_one(f, "room", o);
    /* Past the bound: a run is taken pub by pub, the oldest room pubs give
     * way one for one, named by gaps where they were. */
    pl_pub *run[] = {pub("room", 4, PUB_STANDARD), pub("room", 5, PUB_STANDARD)};
    fan(f, run, 2);
    assert_int_equal(a.runs, 0);
    assert_int_equal(a.close_code, 0);
    assert_int_equal(a.base.queued, 500);
    assert_int_equal(covers_once(&a, "room", 5), 3);
    assert_int_equal(room.last_offset, 5);
    /* The other channel's items are untouched, first in the queue. */
    assert_int_equal(a.q[0].offset, 1);
    assert_string_equal(a.q[0].channel, "news");
    assert_int_equal(a.q[1].offset, 2);
    assert_int_equal(a.q[2].kind, OUT_GAP);
    assert_int_equal(a.q[2].from, 1);
    assert_int_equal(a.q[2].to, 1);
    assert_int_equal(atomic_load(&shard.c[M_SLOW_DROPPED_OLDEST]), 2);
    /* A push past the bound that is not a pub of the channel: 4001. */
    fan_one(f, "news", 3);
    assert_int_equal(a.close_code, 4001);
    fanout_detach(f, &room);
    fanout_detach(f, &news);
    done(f);
}

static void drop_oldest_names_the_new_pub_when_dropping_all_is_not_enough(void **state)
{
    (void)state;
    queue_bound = 300;
    fanout *f = make(1 << 20, NULL);
    queue_bound = 0;
    fake_sink a;
    fanout_sub room, news;
    sink_init(&a, SINK_SSE);
    sub_init(&room, &a, SUB_LIVE);
    sub_init(&news, &a, SUB_LIVE);
    room.policy = FAN_SLOW_DROP_OLDEST;
    fanout_attach(f, &room, "t", "room");
    fanout_attach(f, &news, "t", "news");
    fan_one(f, "room", 1);
    fan_one(f, "news", 1);
    fan_one(f, "news", 2);
    sink_enqueue(&a.base, OUT_JSON, rbuf_from("{}", 2), 50); /* a presence push */
    fan_one(f, "room", 2);
    assert_int_equal(a.close_code, 0);
    assert_int_equal(covers_once(&a, "room", 2), 0);
    assert_int_equal(room.last_offset, 2);
    assert_int_equal(atomic_load(&shard.c[M_SLOW_DROPPED_OLDEST]), 2);
    fanout_detach(f, &room);
    fanout_detach(f, &news);
    done(f);
}

static void latest_keeps_the_newest_pub_of_each_channel(void **state)
{
    (void)state;
    queue_bound = 500;
    fanout *f = make(1 << 20, NULL);
    queue_bound = 0;
    fake_sink a, chat;
    fanout_sub tick, sc;
    sink_init(&a, SINK_WS);
    sink_init(&chat, SINK_WS);
    a.bound = chat.bound = 500;
    sub_init(&tick, &a, SUB_LIVE);
    sub_init(&sc, &chat, SUB_LIVE);
    tick.policy = FAN_SLOW_LATEST;
    fanout_attach(f, &tick, "t", "tick");
    fanout_attach(f, &sc, "t", "tick");
    for (uint64_t o = 1; o <= 11; o++)
        fan_one(f, "tick", o);
    /* 1..5 fill the queue; 6 replaces them; 7..10 fill it; 11 replaces
     * those: one pub of the channel, the newest, behind the gaps. */
    assert_int_equal(a.close_code, 0);
    assert_int_equal(covers_once(&a, "tick", 11), 1);
    assert_int_equal(a.q[a.qn - 1].kind, OUT_PUB);
    assert_int_equal(a.q[a.qn - 1].offset, 11);
    assert_int_equal(atomic_load(&shard.c[M_SLOW_DROPPED_LATEST]), 10);
    /* The same channel's disconnect subscriber is cut as before. */
    assert_int_equal(chat.close_code, 4001);
    assert_int_equal(chat.npubs, 5);
    fanout_detach(f, &tick);
    fanout_detach(f, &sc);
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
        cmocka_unit_test(drop_oldest_names_what_it_drops_and_keeps_the_connection),
        cmocka_unit_test(drop_oldest_names_the_new_pub_when_dropping_all_is_not_enough),
        cmocka_unit_test(latest_keeps_the_newest_pub_of_each_channel),
        cmocka_unit_test(out_of_memory_links_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
