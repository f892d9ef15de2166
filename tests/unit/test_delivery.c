/* Unit tests for guaranteed delivery: the state machine (tracker.h) driven
 * with a fake engine that records what is persisted, a fake clock and fake
 * presence and resend callbacks, no sockets; the thread shell's restart
 * path; the attempt frame; out-of-memory at every allocation; and a timing
 * of acks with 100,000 deliveries outstanding (printed, not asserted). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "delivery/backoff.h"
#include "delivery/delivery.h"
#include "delivery/tracker.h"
#include "util/clock.h"
#include "util/mem.h"

#define MAX_REC 512
#define ACK_WAIT_MS 1000
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 400
#define MAX_ATTEMPTS 3
#define TICK_MS 10

typedef struct rec {
    char tenant[16], channel[16], user[16], error[64];
    uint64_t off;
    int state;
    uint32_t attempt;
} rec;

typedef struct sent_rec {
    char tenant[16], channel[16], user[16];
    uint64_t off;
    uint32_t attempt;
} sent_rec;

/* The fake engine and everything else the tracker reaches. */
typedef struct fake {
    engine base; /* first: the engine pointer is the fake */
    pthread_mutex_t lock;
    rec recs[MAX_REC];
    size_t nrecs;
    sent_rec sends[MAX_REC];
    size_t nsends;
    int64_t now_us;
    int offline;
    /* ADMIN_SENT_ALL answer */
    pl_pub *restore_pub[2];
    const char *restore_user[2];
    uint32_t restore_attempt[2];
    size_t nrestore;
} fake;

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void answer_sent_all(fake *f, engine_req *r)
{
    size_t n = f->nrestore;
    r->pubs = pl_calloc(n, sizeof(*r->pubs));
    r->users = pl_calloc(n, sizeof(*r->users));
    r->attempts = pl_calloc(n, sizeof(*r->attempts));
    r->status = r->pubs && r->users && r->attempts ? PL_OK : PL_ENOMEM;
    for (size_t i = 0; r->status == PL_OK && i < n; i++) {
        r->pubs[i] = pub_ref(f->restore_pub[i]);
        r->users[i] = pl_strdup(f->restore_user[i]);
        r->attempts[i] = f->restore_attempt[i];
        r->npubs = i + 1;
    }
    r->done(r);
}

static void fake_submit(engine *e, engine_req *first, engine_req *last)
{
    fake *f = (fake *)e;
    (void)last;
    for (engine_req *r = first, *next; r; r = next) {
        next = r->_next;
        if (r->op == ENGINE_ADMIN && r->admin_op == ADMIN_SENT_ALL) {
            answer_sent_all(f, r);
            continue;
        }
        assert_int_equal(r->op, ENGINE_DELIVERY);
        pthread_mutex_lock(&f->lock);
        if (f->nrecs < MAX_REC) {
            rec *x = &f->recs[f->nrecs++];
            copy(x->tenant, sizeof(x->tenant), r->tenant);
            copy(x->channel, sizeof(x->channel), r->channel);
            copy(x->user, sizeof(x->user), r->user);
            copy(x->error, sizeof(x->error), r->error);
            x->off = r->since_offset;
            x->state = r->dstate;
            x->attempt = r->attempt;
        }
        pthread_mutex_unlock(&f->lock);
        engine_req_free(r);
    }
}

static int fake_start(engine *e)
{
    (void)e;
    return 0;
}
static void fake_nop(engine *e)
{
    (void)e;
}
static void fake_stats(engine *e, engine_stats *out)
{
    (void)e;
    memset(out, 0, sizeof(*out));
}
static int fake_healthy(engine *e)
{
    (void)e;
    return 1;
}
static uint64_t fake_log_events(engine *e, int on)
{
    (void)e, (void)on;
    return 0;
}
static const engine_ops fake_ops = {"fake",   fake_start, fake_submit,  fake_nop,
                                    fake_nop, fake_stats, fake_healthy, fake_log_events};

static int f_online(void *ctx, const char *tenant, const char *channel, const char *user)
{
    (void)tenant, (void)channel, (void)user;
    return !((fake *)ctx)->offline;
}

static void f_resend(void *ctx, pl_pub *pub, const char *user, uint32_t attempt)
{
    fake *f = ctx;
    if (f->nsends >= MAX_REC) return;
    sent_rec *s = &f->sends[f->nsends++];
    copy(s->tenant, sizeof(s->tenant), pub->tenant);
    copy(s->channel, sizeof(s->channel), pub->channel);
    copy(s->user, sizeof(s->user), user);
    s->off = pub->offset;
    s->attempt = attempt;
}

static void f_settings(void *ctx, const char *tenant, const char *channel, delivery_settings *out)
{
    (void)ctx, (void)tenant, (void)channel;
    out->max_attempts = MAX_ATTEMPTS;
    out->ack_wait_ms = ACK_WAIT_MS;
    out->retry_min_ms = RETRY_MIN_MS;
    out->retry_max_ms = RETRY_MAX_MS;
}

static int64_t f_now(void *ctx)
{
    return ((fake *)ctx)->now_us;
}

/* Always the same draw, so the jitter is known (see expected_wait_ms). */
static uint64_t f_rand(void *ctx)
{
    (void)ctx;
    return UINT64_MAX;
}

static fake *fake_new(void)
{
    fake *f = calloc(1, sizeof(*f));
    f->base.ops = &fake_ops;
    pthread_mutex_init(&f->lock, NULL);
    f->now_us = 1000000000; /* 1000 s: clear of zero */
    return f;
}

static void fake_free(fake *f)
{
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static delivery_deps deps_of(fake *f)
{
    return (delivery_deps){.eng = &f->base,
                           .ctx = f,
                           .user_online = f_online,
                           .resend = f_resend,
                           .settings = f_settings,
                           .now_us = f_now,
                           .rand = f_rand};
}

/* ack_wait plus the jitter the tracker draws after `attempt` attempts. */
static int64_t expected_wait_ms(uint32_t attempt)
{
    backoff b;
    backoff_init(&b);
    backoff_configure(&b, RETRY_MIN_MS, BACKOFF_DEFAULT_FACTOR, RETRY_MAX_MS);
    backoff_set_rand(&b, f_rand, NULL);
    return ACK_WAIT_MS + backoff_delay(&b, attempt);
}

static pl_pub *mkpub(const char *tenant, const char *channel, uint64_t off)
{
    pub_fields pf = {.tenant = tenant,
                     .tenant_len = strlen(tenant),
                     .channel = channel,
                     .channel_len = strlen(channel),
                     .data = "1",
                     .data_len = 1};
    pl_pub *p = pub_new(&pf, PUB_GUARANTEED);
    assert_non_null(p);
    p->offset = off;
    return p;
}

static void advance_ms(fake *f, tracker *t, int64_t ms)
{
    f->now_us += ms * 1000;
    tracker_advance(t);
}

static size_t tracked(tracker *t)
{
    delivery_stats s;
    tracker_stats(t, &s);
    return (size_t)s.tracked;
}

/* ------------------------------------------------------------------------ */

/* Acked within the wait: never resent, nothing more persisted (the ack
 * command itself writes ACKNOWLEDGED, ENGINE_ACK), no timer left. */
static void ack_before_wait(void **state)
{
    (void)state;
    fake *f = fake_new();
    delivery_deps deps = deps_of(f);
    tracker *t = tracker_new(&deps);
    pl_pub *p = mkpub("t1", "news", 7);
    tracker_sent(t, p, "alice", 1);
    assert_int_equal(tracked(t), 1);
    advance_ms(f, t, ACK_WAIT_MS - 1);
    assert_int_equal(f->nsends, 0);
    f->now_us += 250000;
    tracker_acked(t, "t1", "news", "alice", 7);
    delivery_stats s;
    tracker_stats(t, &s);
    assert_int_equal(s.tracked, 0);
    assert_int_equal(s.acks, 1);
    assert_int_equal(s.ack_latency_us_sum, (ACK_WAIT_MS - 1) * 1000 + 250000);
    assert_int_equal(tracker_next_us(t), -1);
    advance_ms(f, t, 3600 * 1000);
    assert_int_equal(f->nsends, 0);
    assert_int_equal(f->nrecs, 0);
    tracker_free(t);
    pub_unref(p);
    fake_free(f);
}

/* No ack: resent at ack_wait + backoff(1) (not a tick before its deadline,
 * at most a tick after) with attempt 2, persisted as SENT attempt 2; the
 * next one waits ack_wait + backoff(2). */
static void resend_after_wait_and_backoff(void **state)
{
    (void)state;
    fake *f = fake_new();
    delivery_deps deps = deps_of(f);
    tracker *t = tracker_new(&deps);
    pl_pub *p = mkpub("t1", "news", 3);
    tracker_sent(t, p, "alice", 1);
    int64_t w1 = expected_wait_ms(1), w2 = expected_wait_ms(2);
    assert_true(w1 > ACK_WAIT_MS && w2 > w1);
    advance_ms(f, t, w1 - 1);
    assert_int_equal(f->nsends, 0);
    advance_ms(f, t, TICK_MS);
    assert_int_equal(f->nsends, 1);
    assert_string_equal(f->sends[0].user, "alice");
    assert_int_equal(f->sends[0].off, 3);
    assert_int_equal(f->sends[0].attempt, 2);
    assert_int_equal(f->nrecs, 1);
    assert_int_equal(f->recs[0].state, DLV_SENT);
    assert_int_equal(f->recs[0].attempt, 2);
    assert_int_equal(f->recs[0].off, 3);
    /* The second wait counts from the resend. */
    advance_ms(f, t, w2 - TICK_MS - 1);
    assert_int_equal(f->nsends, 1);
    advance_ms(f, t, 2 * TICK_MS);
    assert_int_equal(f->nsends, 2);
    assert_int_equal(f->sends[1].attempt, 3);
    delivery_stats s;
    tracker_stats(t, &s);
    assert_int_equal(s.redeliveries, 2);
    assert_int_equal(s.tracked, 1);
    tracker_free(t);
    pub_unref(p);
    fake_free(f);
}

/* A second device reporting the same attempt does not restart the wait. */
static void same_attempt_twice_keeps_timer(void **state)
{
    (void)state;
    fake *f = fake_new();
    delivery_deps deps = deps_of(f);
    tracker *t = tracker_new(&deps);
    pl_pub *p = mkpub("t1", "news", 3);
    tracker_sent(t, p, "alice", 1);
    int64_t due = tracker_next_us(t);
    f->now_us += 500000;
    tracker_sent(t, p, "alice", 1);
    assert_int_equal(tracker_next_us(t), due);
    assert_int_equal(tracked(t), 1);
    tracker_free(t);
    pub_unref(p);
    fake_free(f);
}

static void run_until_idle(fake *f, tracker *t)
{
    for (int i = 0; i < 100 && tracker_next_us(t) >= 0; i++) {
        if (tracker_next_us(t) > f->now_us) f->now_us = tracker_next_us(t);
        tracker_advance(t);
    }
}

/* Attempts exhausted: FAILED with the reason persisted (the engine writes
 * the dead-letter entry with it), no further resend, no longer tracked. */
static void exhausted_dead_letters(void **state)
{
    (void)state;
    fake *f = fake_new();
    delivery_deps deps = deps_of(f);
    tracker *t = tracker_new(&deps);
    pl_pub *p = mkpub("t1", "news", 9);
    tracker_sent(t, p, "bob", 1);
    run_until_idle(f, t);
    assert_int_equal(f->nsends, MAX_ATTEMPTS - 1);
    assert_int_equal(f->nrecs, MAX_ATTEMPTS);
    rec *last = &f->recs[f->nrecs - 1];
    assert_int_equal(last->state, DLV_FAILED);
    assert_int_equal(last->attempt, MAX_ATTEMPTS);
    assert_string_equal(last->user, "bob");
    assert_string_equal(last->error, "not acknowledged after 3 attempts");
    delivery_stats s;
    tracker_stats(t, &s);
    assert_int_equal(s.dead_lettered, 1);
    assert_int_equal(s.tracked, 0);
    assert_int_equal(tracker_next_us(t), -1);
    tracker_free(t);
    pub_unref(p);
    fake_free(f);
}

/* Offline at the resend: back to QUEUED with the attempt it had (none used
 * up), nothing written, no longer tracked. */
static void offline_goes_back_to_queued(void **state)
{
    (void)state;
    fake *f = fake_new();
    delivery_deps deps = deps_of(f);
    tracker *t = tracker_new(&deps);
    pl_pub *p = mkpub("t1", "news", 4);
    tracker_sent(t, p, "carol", 2);
    f->offline = 1;
    run_until_idle(f, t);
    assert_int_equal(f->nsends, 0);
    assert_int_equal(f->nrecs, 1);
    assert_int_equal(f->recs[0].state, DLV_QUEUED);
    assert_int_equal(f->recs[0].attempt, 2);
    assert_string_equal(f->recs[0].error, "recipient offline");
    assert_int_equal(tracked(t), 0);
    tracker_free(t);
    pub_unref(p);
    fake_free(f);
}

static size_t count_sends(fake *f, const char *tenant, const char *user, const char *channel,
                          uint64_t off)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nsends; i++) {
        sent_rec *s = &f->sends[i];
        n += !strcmp(s->tenant, tenant) && !strcmp(s->user, user) && !strcmp(s->channel, channel) &&
             s->off == off;
    }
    return n;
}

/* An ack covering several offsets acks exactly those of its (tenant, user,
 * channel), whatever order they were sent in, and nothing of another user,
 * channel or tenant with the same offsets. */
static void ack_covers_only_its_stream(void **state)
{
    (void)state;
    static const char *const streams[][3] = {
        {"t1", "alice", "a"}, {"t1", "alice", "b"}, {"t1", "bob", "a"}, {"t2", "alice", "a"}};
    static const uint64_t order[] = {5, 3, 1, 4, 2};
    fake *f = fake_new();
    delivery_deps deps = deps_of(f);
    tracker *t = tracker_new(&deps);
    pl_pub *pubs[4][6] = {{0}};
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < 5; i++) {
            uint64_t off = order[i];
            pubs[s][off] = mkpub(streams[s][0], streams[s][2], off);
            tracker_sent(t, pubs[s][off], streams[s][1], 1);
        }
    assert_int_equal(tracked(t), 20);
    tracker_acked(t, "t1", "a", "alice", 3);
    delivery_stats st;
    tracker_stats(t, &st);
    assert_int_equal(st.acks, 3);
    assert_int_equal(st.tracked, 17);
    tracker_acked(t, "t1", "a", "alice", 3); /* again: nothing left to ack */
    tracker_acked(t, "t3", "a", "alice", 5); /* unknown tenant */
    tracker_stats(t, &st);
    assert_int_equal(st.acks, 3);
    /* Fire everything once: only the acked five stay silent. */
    f->now_us += expected_wait_ms(1) * 1000 + TICK_MS * 1000;
    tracker_advance(t);
    assert_int_equal(f->nsends, 17);
    for (int s = 0; s < 4; s++)
        for (uint64_t off = 1; off <= 5; off++)
            assert_int_equal(count_sends(f, streams[s][0], streams[s][1], streams[s][2], off),
                             s == 0 && off <= 3 ? 0 : 1);
    /* The rest of the stream, then the others, empty the index. */
    tracker_acked(t, "t1", "a", "alice", 100);
    tracker_acked(t, "t1", "b", "alice", 100);
    tracker_acked(t, "t1", "a", "bob", 100);
    tracker_acked(t, "t2", "a", "alice", 100);
    assert_int_equal(tracked(t), 0);
    assert_int_equal(tracker_next_us(t), -1);
    tracker_free(t);
    for (int s = 0; s < 4; s++)
        for (int off = 1; off <= 5; off++)
            pub_unref(pubs[s][off]);
    fake_free(f);
}

/* Replay of a dead-lettered delivery: SENT attempt 1 persisted and written
 * now, then the attempts count again from 1. Offline: QUEUED instead. */
static void replay_restarts_at_attempt_1(void **state)
{
    (void)state;
    fake *f = fake_new();
    delivery_deps deps = deps_of(f);
    tracker *t = tracker_new(&deps);
    pl_pub *p = mkpub("t1", "news", 2);
    tracker_sent(t, p, "dave", 1);
    run_until_idle(f, t);
    assert_int_equal(f->recs[f->nrecs - 1].state, DLV_FAILED);
    size_t r0 = f->nrecs, s0 = f->nsends;
    tracker_replay(t, p, "dave");
    assert_int_equal(f->nrecs, r0 + 1);
    assert_int_equal(f->recs[r0].state, DLV_SENT);
    assert_int_equal(f->recs[r0].attempt, 1);
    assert_int_equal(f->nsends, s0 + 1);
    assert_int_equal(f->sends[s0].attempt, 1);
    advance_ms(f, t, expected_wait_ms(1) + TICK_MS);
    assert_int_equal(f->nsends, s0 + 2);
    assert_int_equal(f->sends[s0 + 1].attempt, 2);
    run_until_idle(f, t);
    assert_int_equal(f->recs[f->nrecs - 1].state, DLV_FAILED);
    assert_int_equal(f->recs[f->nrecs - 1].attempt, MAX_ATTEMPTS);

    f->offline = 1;
    r0 = f->nrecs;
    s0 = f->nsends;
    tracker_replay(t, p, "dave");
    assert_int_equal(f->nsends, s0);
    assert_int_equal(f->recs[r0].state, DLV_QUEUED);
    assert_int_equal(tracked(t), 0);
    tracker_free(t);
    pub_unref(p);
    fake_free(f);
}

/* A delivery persisted as SENT attempt 2 before a restart: tracked again,
 * resent as attempt 3 after the wait, dead-lettered after that. A restore
 * older than what is tracked changes nothing. */
static void restore_from_persisted(void **state)
{
    (void)state;
    fake *f = fake_new();
    delivery_deps deps = deps_of(f);
    tracker *t = tracker_new(&deps);
    pl_pub *p = mkpub("t1", "news", 11);
    tracker_restore(t, p, "erin", 2);
    tracker_restore(t, p, "erin", 1);
    assert_int_equal(tracked(t), 1);
    advance_ms(f, t, expected_wait_ms(2) - 1);
    assert_int_equal(f->nsends, 0);
    advance_ms(f, t, TICK_MS);
    assert_int_equal(f->nsends, 1);
    assert_int_equal(f->sends[0].attempt, 3);
    run_until_idle(f, t);
    assert_int_equal(f->recs[f->nrecs - 1].state, DLV_FAILED);
    tracker_free(t);
    pub_unref(p);
    fake_free(f);
}

static delivery_stats wait_stats(delivery *d, uint64_t tracked_want, uint64_t acks_want)
{
    delivery_stats s;
    for (int i = 0; i < 5000; i++) {
        delivery_get_stats(d, &s);
        if (s.tracked == tracked_want && s.acks == acks_want) break;
        usleep(1000);
    }
    return s;
}

/* The thread shell end to end: start loads what the engine has in state
 * sent, delivery_sent persists from the caller's thread, an ack reaches
 * the tracker, stop and free release everything. */
static void shell_restores_and_acks(void **state)
{
    (void)state;
    fake *f = fake_new();
    f->restore_pub[0] = mkpub("t1", "news", 1);
    f->restore_pub[1] = mkpub("t1", "news", 2);
    f->restore_user[0] = f->restore_user[1] = "frank";
    f->restore_attempt[0] = 2;
    f->restore_attempt[1] = 0;
    f->nrestore = 2;
    delivery_deps deps = deps_of(f);
    delivery *d = delivery_new(&deps);
    assert_non_null(d);
    assert_int_equal(delivery_start(d), 0);
    delivery_stats s = wait_stats(d, 2, 0);
    assert_int_equal(s.tracked, 2);
    pl_pub *p3 = mkpub("t1", "news", 3);
    delivery_sent(d, p3, "frank", 1);
    pthread_mutex_lock(&f->lock);
    assert_int_equal(f->nrecs, 1);
    assert_int_equal(f->recs[0].state, DLV_SENT);
    pthread_mutex_unlock(&f->lock);
    delivery_acked(d, "t1", "news", "frank", 2);
    s = wait_stats(d, 1, 2);
    assert_int_equal(s.tracked, 1);
    assert_int_equal(s.acks, 2);
    delivery_stop(d);
    delivery_sent(d, p3, "frank", 2); /* after stop: persisted, not tracked */
    delivery_free(d);
    pub_unref(p3);
    pub_unref(f->restore_pub[0]);
    pub_unref(f->restore_pub[1]);
    fake_free(f);
}

static void frame_for_attempt(void **state)
{
    (void)state;
    static const char push[] = "{\"push\":{\"pub\":{\"data\":1},\"attempt\":1}";
    rbuf *f = rbuf_new(sizeof(push) - 1);
    memcpy(f->data, push, sizeof(push) - 1);
    rbuf *one = delivery_frame(f, 1);
    assert_ptr_equal(one, f);
    rbuf_unref(one);
    rbuf *three = delivery_frame(f, 12);
    assert_non_null(three);
    assert_ptr_not_equal(three, f);
    static const char want[] = "{\"push\":{\"pub\":{\"data\":1},\"attempt\":12}";
    assert_int_equal(three->len, sizeof(want) - 1);
    assert_memory_equal(three->data, want, sizeof(want) - 1);
    rbuf_unref(three);
    assert_null(delivery_frame(NULL, 3));
    rbuf_unref(f);
}

/* One pass of everything that allocates: new, sends into new and existing
 * groups and out of order, an ack, resends, a dead letter, a replay, an
 * offline requeue, free. */
static void exercise(fake *f, pl_pub **p, size_t np)
{
    delivery_deps deps = deps_of(f);
    delivery *d = delivery_new(&deps);
    delivery_free(d);
    tracker *t = tracker_new(&deps);
    if (!t) return;
    for (size_t i = np; i-- > 0;)
        tracker_sent(t, p[i], "u1", 1);
    for (size_t i = 0; i < np; i++)
        tracker_sent(t, p[i], i % 2 ? "u2" : "u3", 1);
    tracker_restore(t, p[0], "u4", 2);
    tracker_acked(t, "t1", "c0", "u1", 2);
    f->now_us += expected_wait_ms(1) * 1000 + TICK_MS * 1000;
    tracker_advance(t);
    run_until_idle(f, t);
    tracker_replay(t, p[1], "u1");
    f->offline = 1;
    tracker_replay(t, p[2], "u1");
    f->offline = 0;
    tracker_free(t);
}

/* Allocation failure at each allocation in turn: every path unwinds (ASan
 * reports any leak) and the tracker stays consistent. */
static void oom_at_every_allocation(void **state)
{
    (void)state;
    pl_pub *p[6];
    for (size_t i = 0; i < 6; i++)
        p[i] = mkpub("t1", i < 4 ? "c0" : "c1", i + 1);
    fake *full = fake_new();
    exercise(full, p, 6);
    size_t nfull = full->nrecs, sfull = full->nsends;
    assert_true(nfull > 10 && sfull > 10);
    fake_free(full);
    long n = 0;
    for (;; n++) {
        fake *f = fake_new();
        pl_mem_fail_after(n);
        exercise(f, p, 6);
        pl_mem_fail_after(-1);
        /* Done once a run needed no more than n allocations. */
        int done = f->nrecs == nfull && f->nsends == sfull;
        fake_free(f);
        if (done || n > 5000) break;
    }
    assert_true(n > 20 && n <= 5000);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(atomic_load(&p[i]->refs), 1);
        pub_unref(p[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* Timing (printed, not asserted)                                            */

static double ack_all(tracker *t, int nusers, int nchan, int per, int chunks)
{
    char ch[16], user[16];
    int64_t t0 = clock_mono_us();
    for (int u = 0; u < nusers; u++)
        for (int c = 0; c < nchan; c++)
            for (int j = 1; j <= chunks; j++) {
                snprintf(ch, sizeof(ch), "c%d", c);
                snprintf(user, sizeof(user), "u%d", u);
                tracker_acked(t, "t", ch, user, (uint64_t)(j * (per / chunks)));
            }
    return (double)(clock_mono_us() - t0);
}

static void time_case(const char *label, int nusers, int nchan, int per, int chunks)
{
    fake *f = fake_new();
    delivery_deps deps = deps_of(f);
    deps.eng = NULL; /* nothing here persists */
    tracker *t = tracker_new(&deps);
    pl_pub **pubs = calloc((size_t)nchan * (size_t)per, sizeof(*pubs));
    char ch[16], user[16];
    for (int c = 0; c < nchan; c++)
        for (int k = 0; k < per; k++) {
            snprintf(ch, sizeof(ch), "c%d", c);
            pubs[c * per + k] = mkpub("t", ch, (uint64_t)k + 1);
        }
    int64_t t0 = clock_mono_us();
    for (int u = 0; u < nusers; u++)
        for (int i = 0; i < nchan * per; i++) {
            snprintf(user, sizeof(user), "u%d", u);
            tracker_sent(t, pubs[i], user, 1);
        }
    double sent_us = (double)(clock_mono_us() - t0);
    size_t n = tracked(t);
    double ack_us = ack_all(t, nusers, nchan, per, chunks);
    int nacks = nusers * nchan * chunks;
    printf("  %s: %zu tracked in %.1f ms; %d acks in %.1f ms = %.2f us per ack, %.0f acks/s; "
           "left %zu\n",
           label, n, sent_us / 1000, nacks, ack_us / 1000, ack_us / nacks, nacks / (ack_us / 1e6),
           tracked(t));
    tracker_free(t);
    for (int i = 0; i < nchan * per; i++)
        pub_unref(pubs[i]);
    free(pubs);
    fake_free(f);
}

static void timing_100k_outstanding(void **state)
{
    (void)state;
    printf("tracker ack timing, 100,000 outstanding:\n");
    time_case("1,000 users x 100 channels, one ack each", 1000, 100, 1, 1);
    time_case("1 user x 1 channel, 100 acks of 1,000 offsets", 1, 1, 100000, 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ack_before_wait),
        cmocka_unit_test(resend_after_wait_and_backoff),
        cmocka_unit_test(same_attempt_twice_keeps_timer),
        cmocka_unit_test(exhausted_dead_letters),
        cmocka_unit_test(offline_goes_back_to_queued),
        cmocka_unit_test(ack_covers_only_its_stream),
        cmocka_unit_test(replay_restarts_at_attempt_1),
        cmocka_unit_test(restore_from_persisted),
        cmocka_unit_test(shell_restores_and_acks),
        cmocka_unit_test(frame_for_attempt),
        cmocka_unit_test(oom_at_every_allocation),
        cmocka_unit_test(timing_100k_outstanding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
