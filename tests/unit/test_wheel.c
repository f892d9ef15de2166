/* Unit and property tests for the timer wheel: directed cases for rounding,
 * ordering, cancel and re-add from callbacks, far-future deadlines across
 * cascades and the overflow list; and seeded random add/cancel/advance runs
 * checked step by step against a simple reference model (a flat array scanned
 * in deadline order), including callbacks that mutate the wheel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/wheel.h"
#include "util/mem.h"

#define DAY_MS (86400000LL)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform-enough value in [0, n) for test data (n > 0). */
static uint64_t rnd(uint64_t *s, uint64_t n)
{
    return splitmix(s) % n;
}

typedef struct item {
    wheel_timer t;
    int id;
    int fired;
    int64_t fired_at; /* now_ms of the advance that fired it */
} item;

#define ITEM_OF(p) ((item *)((char *)(p)-offsetof(item, t)))

/* Records fire order into a log. */
typedef struct log {
    int ids[4096];
    size_t n;
    int64_t now;
} log_t;

static void log_cb(wheel_timer *t, void *arg)
{
    log_t *l = arg;
    item *it = ITEM_OF(t);
    assert_false(wheel_timer_pending(t));
    assert_true(l->n < 4096);
    l->ids[l->n++] = it->id;
    it->fired++;
    it->fired_at = l->now;
}

static size_t advance(wheel *w, log_t *l, int64_t now)
{
    l->now = now;
    return wheel_advance(w, now, log_cb, l);
}

/* ------------------------------------------------------------------------ */
/* Directed tests                                                            */

static void new_rejects_bad_tick_and_oom(void **state)
{
    assert_null(wheel_new(0, 0));
    assert_null(wheel_new(WHEEL_MAX_TICK_MS + 1, 0));
    pl_mem_fail_after(0);
    assert_null(wheel_new(1, 0));
    pl_mem_fail_after(-1);
    wheel *w = wheel_new(WHEEL_MAX_TICK_MS, -5); /* negative start clamps to 0 */
    assert_non_null(w);
    assert_int_equal(wheel_tick_ms(w), WHEEL_MAX_TICK_MS);
    assert_int_equal(wheel_count(w), 0);
    assert_int_equal(wheel_next_deadline(w), -1);
    wheel_free(w);
    wheel_free(NULL);
}

static void fires_at_deadline_not_before(void **state)
{
    wheel *w = wheel_new(1, 1000);
    log_t l = {0};
    item a = {.id = 1};
    wheel_timer_init(&a.t);
    assert_false(wheel_timer_pending(&a.t));
    wheel_add(w, &a.t, 1005);
    assert_true(wheel_timer_pending(&a.t));
    assert_int_equal(wheel_timer_deadline(&a.t), 1005);
    assert_int_equal(wheel_count(w), 1);
    assert_int_equal(wheel_next_deadline(w), 1005);
    assert_int_equal(advance(w, &l, 1004), 0);
    assert_int_equal(advance(w, &l, 1005), 1);
    assert_int_equal(a.fired, 1);
    assert_int_equal(wheel_count(w), 0);
    assert_int_equal(advance(w, &l, 5000), 0);
    assert_int_equal(a.fired, 1);
    assert_int_equal(wheel_next_deadline(w), -1);
    wheel_free(w);
}

/* With 10 ms ticks deadlines round up: 11..19 are due at 20 and fire in
 * deadline order, ties in add order. */
static void coarse_tick_rounds_up_and_orders(void **state)
{
    wheel *w = wheel_new(10, 0);
    log_t l = {0};
    item it[5] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};
    int64_t d[5] = {19, 11, 15, 11, 20};
    for (int i = 0; i < 5; i++) {
        wheel_timer_init(&it[i].t);
        wheel_add(w, &it[i].t, d[i]);
    }
    assert_int_equal(wheel_next_deadline(w), 20);
    assert_int_equal(advance(w, &l, 19), 0);
    assert_int_equal(advance(w, &l, 20), 5);
    int want[5] = {1, 3, 2, 0, 4};
    for (int i = 0; i < 5; i++)
        assert_int_equal(l.ids[i], want[i]);
    /* A deadline on a tick boundary is not delayed. */
    wheel_add(w, &it[0].t, 30);
    assert_int_equal(advance(w, &l, 29), 0);
    assert_int_equal(advance(w, &l, 30), 1);
    wheel_free(w);
}

static void past_deadline_fires_at_next_advance(void **state)
{
    wheel *w = wheel_new(1, 10000);
    log_t l = {0};
    item a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
    wheel_timer_init(&a.t);
    wheel_timer_init(&b.t);
    wheel_timer_init(&c.t);
    wheel_add(w, &a.t, 9000);
    wheel_add(w, &b.t, INT64_MIN);
    wheel_add(w, &c.t, 10000);
    assert_true(wheel_next_deadline(w) <= 10000);
    /* Same time, even an earlier one, still fires what is due. */
    assert_int_equal(advance(w, &l, 9999), 3);
    assert_int_equal(l.ids[0], 2);
    assert_int_equal(l.ids[1], 1);
    assert_int_equal(l.ids[2], 3);
    wheel_free(w);
}

static void cancel_prevents_firing(void **state)
{
    wheel *w = wheel_new(1, 0);
    log_t l = {0};
    item a = {.id = 1}, b = {.id = 2};
    wheel_timer_init(&a.t);
    wheel_timer_init(&b.t);
    assert_false(wheel_cancel(w, &a.t));
    wheel_add(w, &a.t, 10);
    wheel_add(w, &b.t, 100000); /* level 2 */
    assert_true(wheel_cancel(w, &a.t));
    assert_false(wheel_cancel(w, &a.t));
    assert_true(wheel_cancel(w, &b.t));
    assert_int_equal(wheel_count(w), 0);
    assert_int_equal(wheel_next_deadline(w), -1); /* stale bits are dropped */
    assert_int_equal(advance(w, &l, 1000000), 0);
    assert_int_equal(a.fired + b.fired, 0);
    /* Re-adding a pending timer reschedules it. */
    wheel_add(w, &a.t, 2000000);
    wheel_add(w, &a.t, 1000005);
    assert_int_equal(wheel_count(w), 1);
    assert_int_equal(advance(w, &l, 1000005), 1);
    assert_int_equal(advance(w, &l, 3000000), 0);
    assert_int_equal(a.fired, 1);
    wheel_free(w);
}

/* Callback that re-arms its timer `period` ms after its deadline. */
typedef struct periodic {
    wheel *w;
    int64_t period;
    int64_t limit;
    int fired;
    int64_t last_deadline;
} periodic;

static void periodic_cb(wheel_timer *t, void *arg)
{
    periodic *p = arg;
    int64_t d = wheel_timer_deadline(t);
    assert_true(d > p->last_deadline);
    p->last_deadline = d;
    p->fired++;
    if (d + p->period <= p->limit) wheel_add(p->w, t, d + p->period);
}

/* A re-add inside the advance window fires within the same call. */
static void readd_in_callback_same_call(void **state)
{
    periodic p = {.w = wheel_new(1, 0), .period = 7, .limit = 100000, .last_deadline = -1};
    wheel_timer t;
    wheel_timer_init(&t);
    wheel_add(p.w, &t, 7);
    assert_int_equal(wheel_advance(p.w, 1000, periodic_cb, &p), 1000 / 7);
    assert_int_equal(p.fired, 1000 / 7);
    assert_int_equal(wheel_next_deadline(p.w), (1000 / 7 + 1) * 7);
    /* Across a jump of many level-1 and level-2 spans. */
    assert_int_equal(wheel_advance(p.w, 100000, periodic_cb, &p), 100000 / 7 - 1000 / 7);
    assert_false(wheel_timer_pending(&t));
    wheel_free(p.w);
}

typedef struct rearm_now {
    wheel *w;
    int64_t now;
    int fired;
} rearm_now;

static void rearm_now_cb(wheel_timer *t, void *arg)
{
    rearm_now *r = arg;
    r->fired++;
    wheel_add(r->w, t, r->now); /* already due: must wait for the next call */
}

static void readd_due_defers_to_next_call(void **state)
{
    rearm_now r = {.w = wheel_new(1, 50), .now = 50};
    wheel_timer t;
    wheel_timer_init(&t);
    wheel_add(r.w, &t, 50);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(wheel_advance(r.w, r.now, rearm_now_cb, &r), 1);
        assert_int_equal(r.fired, i);
        assert_true(wheel_next_deadline(r.w) <= r.now);
    }
    assert_true(wheel_cancel(r.w, &t));
    wheel_free(r.w);
}

typedef struct canceller {
    wheel *w;
    item *victims;
    size_t n;
    int calls;
    log_t log;
} canceller;

static void cancel_others_cb(wheel_timer *t, void *arg)
{
    canceller *c = arg;
    c->calls++;
    c->log.ids[c->log.n++] = ITEM_OF(t)->id;
    for (size_t i = 0; i < c->n; i++)
        wheel_cancel(c->w, &c->victims[i].t);
    assert_int_equal(wheel_advance(c->w, 1 << 30, cancel_others_cb, c), 0); /* refused */
}

/* The callback cancels timers of the same tick still waiting in its batch. */
static void cancel_in_callback(void **state)
{
    wheel *w = wheel_new(1, 0);
    item it[4];
    for (int i = 0; i < 4; i++) {
        it[i] = (item){.id = i};
        wheel_timer_init(&it[i].t);
        wheel_add(w, &it[i].t, 300); /* level 1, same tick */
    }
    canceller c = {.w = w, .victims = &it[2], .n = 2};
    assert_int_equal(wheel_advance(w, 300, cancel_others_cb, &c), 2);
    assert_int_equal(c.log.ids[0], 0);
    assert_int_equal(c.log.ids[1], 1);
    assert_int_equal(wheel_count(w), 0);
    wheel_free(w);
}

/* Far deadlines: hours (level 2), days (level 3), 60 days (overflow at 1 ms),
 * years and INT64_MAX. Stepping an hour at a time, each fires in the first
 * step that reaches it; then next_deadline-driven wakeups reach each due time
 * with at most one extra wakeup per level. */
static void far_future_across_levels(void **state)
{
    int64_t start = 1700000000000LL; /* a wall-clock-like start */
    wheel *w = wheel_new(1, start);
    log_t l = {0};
    int64_t offs[] = {3 * 3600000LL, 3 * DAY_MS + 17, 60 * DAY_MS + 5, 400 * DAY_MS + 3};
    item it[4];
    for (int i = 0; i < 4; i++) {
        it[i] = (item){.id = i};
        wheel_timer_init(&it[i].t);
        wheel_add(w, &it[i].t, start + offs[i]);
    }
    item max = {.id = 99};
    wheel_timer_init(&max.t);
    wheel_add(w, &max.t, INT64_MAX);
    int64_t now = start;
    while (now < start + 401 * DAY_MS) {
        int64_t prev = now;
        now += 3600000;
        advance(w, &l, now);
        for (int i = 0; i < 4; i++)
            if (it[i].fired) {
                assert_int_equal(it[i].fired, 1);
                assert_true(it[i].fired_at >= start + offs[i]);
                if (it[i].fired_at == now) assert_true(prev < start + offs[i]);
            }
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(it[i].fired, 1);
    assert_int_equal(max.fired, 0);
    assert_int_equal(wheel_count(w), 1);
    assert_true(wheel_cancel(w, &max.t));
    wheel_free(w);

    /* Exact wakeups driven by next_deadline. */
    w = wheel_new(1, start);
    for (int i = 0; i < 4; i++) {
        it[i] = (item){.id = i};
        wheel_timer_init(&it[i].t);
        wheel_add(w, &it[i].t, start + offs[i]);
    }
    int wakeups = 0;
    for (int i = 0; i < 4; i++) {
        int per_timer = 0;
        while (!it[i].fired) {
            int64_t nd = wheel_next_deadline(w);
            assert_true(nd > 0);
            assert_true(nd <= start + offs[i]);
            advance(w, &l, nd);
            per_timer++;
        }
        assert_int_equal(it[i].fired_at, start + offs[i]);
        assert_true(per_timer <= 5);
        wakeups += per_timer;
    }
    assert_true(wakeups <= 20);
    assert_int_equal(wheel_next_deadline(w), -1);
    wheel_free(w);
}

/* A start just before a 2^32-tick boundary forces the top-level wrap and an
 * overflow rescan early. */
static void overflow_boundary(void **state)
{
    for (uint32_t tick = 1; tick <= 10; tick += 9) {
        int64_t start = (int64_t)((1ull << 32) - 300) * tick;
        wheel *w = wheel_new(tick, start);
        log_t l = {0};
        item it[3];
        int64_t d[3] = {start + ((int64_t)1 << 32) * tick + 1000, start + 500 * (int64_t)tick,
                        start + 3 * ((int64_t)1 << 32) * tick};
        for (int i = 0; i < 3; i++) {
            it[i] = (item){.id = i};
            wheel_timer_init(&it[i].t);
            wheel_add(w, &it[i].t, d[i]);
        }
        assert_int_equal(advance(w, &l, d[1] - 1), 0);
        assert_int_equal(advance(w, &l, d[1]), 1);
        assert_int_equal(advance(w, &l, d[0] - 1), 0);
        assert_int_equal(advance(w, &l, d[0]), 1);
        assert_int_equal(advance(w, &l, d[2] - 1), 0);
        assert_int_equal(advance(w, &l, d[2]), 1);
        wheel_free(w);
    }
}

typedef struct counter {
    size_t fired;
    int64_t now;
} counter;

static void count_cb(wheel_timer *t, void *arg)
{
    counter *c = arg;
    item *it = ITEM_OF(t);
    it->fired++;
    it->fired_at = c->now;
    c->fired++;
}

/* Many timers: each fires once, in the step that first passes its deadline. */
static void many_timers(void **state)
{
    enum { N = 300000 };
    const int64_t step = 1000, span = 3600000;
    item *it = calloc(N, sizeof(*it));
    assert_non_null(it);
    wheel *w = wheel_new(1, 0);
    uint64_t seed = 7;
    for (int i = 0; i < N; i++) {
        wheel_timer_init(&it[i].t);
        it[i].id = i;
        wheel_add(w, &it[i].t, 1 + (int64_t)rnd(&seed, span));
    }
    assert_int_equal(wheel_count(w), N);
    counter c = {0};
    for (int64_t now = step; now <= span; now += step) {
        c.now = now;
        size_t before = c.fired;
        size_t n = wheel_advance(w, now, count_cb, &c);
        assert_int_equal(n, c.fired - before);
    }
    assert_int_equal(c.fired, N);
    assert_int_equal(wheel_count(w), 0);
    for (int i = 0; i < N; i++) {
        int64_t d = wheel_timer_deadline(&it[i].t);
        assert_int_equal(it[i].fired, 1);
        assert_true(it[i].fired_at >= d && it[i].fired_at < d + step);
    }
    wheel_free(w);
    free(it);
}

/* Freeing a wheel with pending timers must not touch or leak them. */
static void free_with_pending(void **state)
{
    wheel *w = wheel_new(1, 0);
    item it[3];
    for (int i = 0; i < 3; i++) {
        wheel_timer_init(&it[i].t);
        wheel_add(w, &it[i].t, (int64_t)i * 100000000);
    }
    wheel_free(w);
    for (int i = 0; i < 3; i++)
        wheel_timer_init(&it[i].t);
    assert_false(wheel_timer_pending(&it[0].t));
}

/* ------------------------------------------------------------------------ */
/* Reference model                                                           */

enum { MODEL_N = 256 };

typedef struct mtimer {
    wheel_timer t;
    int id;
    bool pending;
    bool deferred; /* (re)added during the current advance, already due */
    int64_t deadline;
    uint64_t seq;
    uint64_t tick;
} mtimer;

typedef struct model {
    wheel *w;
    uint64_t T;
    mtimer tm[MODEL_N];
    uint64_t seq;
    uint64_t cur; /* as in the wheel: next tick to process */
    int64_t last_ms;
    uint64_t target;
    int phase; /* 0: the pending batch, 1: ticks, 2: done */
    int batch[MODEL_N];
    uint64_t batch_seq[MODEL_N];
    int batch_n, batch_i;
    bool in_advance;
    bool mutate;
    int64_t last_fired_deadline;
    uint64_t last_fired_seq;
    bool fired_any;
    uint64_t rng;
    size_t fired_total;
} model;

static uint64_t m_tick(const model *m, int64_t d)
{
    if (d <= 0) return 0;
    uint64_t u = (uint64_t)d;
    return u / m->T + (u % m->T != 0);
}

/* a + b for b >= 0, saturating at INT64_MAX. */
static int64_t sat_add(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* The last tick wheel_advance(now) processes. */
static uint64_t m_target(const model *m, int64_t now)
{
    return now == INT64_MAX ? m_tick(m, INT64_MAX) : (uint64_t)now / m->T;
}

static int64_t m_random_deadline(model *m)
{
    int64_t now = m->last_ms;
    uint64_t r = rnd(&m->rng, 100);
    if (r < 20) return now - (int64_t)rnd(&m->rng, 10000);
    if (r < 50) return sat_add(now, (int64_t)rnd(&m->rng, 300));
    if (r < 70) return sat_add(now, (int64_t)rnd(&m->rng, 100000));
    if (r < 85) return sat_add(now, (int64_t)rnd(&m->rng, 10 * DAY_MS));
    if (r < 95) return sat_add(now, (int64_t)rnd(&m->rng, 200 * DAY_MS));
    if (r < 97) return INT64_MAX - (int64_t)rnd(&m->rng, 1000);
    if (r < 98) return INT64_MIN + (int64_t)rnd(&m->rng, 1000);
    return sat_add(now, (int64_t)rnd(&m->rng, (uint64_t)1 << 50));
}

static void m_add(model *m, int i, int64_t d)
{
    mtimer *t = &m->tm[i];
    wheel_add(m->w, &t->t, d);
    t->pending = true;
    t->deadline = d;
    t->seq = m->seq++;
    t->tick = m_tick(m, d);
    t->deferred = m->in_advance && t->tick < m->cur;
}

static void m_cancel(model *m, int i)
{
    mtimer *t = &m->tm[i];
    assert_int_equal(wheel_cancel(m->w, &t->t), t->pending);
    t->pending = false;
}

static bool m_before(const mtimer *a, const mtimer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

/* Fills the batch with pending timers matching the phase, sorted. */
static void m_fill_batch(model *m, uint64_t tick)
{
    m->batch_n = m->batch_i = 0;
    for (int i = 0; i < MODEL_N; i++) {
        const mtimer *t = &m->tm[i];
        if (!t->pending) continue;
        if (m->phase == 0 ? t->tick < m->cur : t->tick == tick) m->batch[m->batch_n++] = i;
    }
    for (int i = 1; i < m->batch_n; i++) /* insertion sort: small batches */
        for (int j = i; j > 0 && m_before(&m->tm[m->batch[j]], &m->tm[m->batch[j - 1]]); j--) {
            int x = m->batch[j];
            m->batch[j] = m->batch[j - 1];
            m->batch[j - 1] = x;
        }
    for (int i = 0; i < m->batch_n; i++)
        m->batch_seq[i] = m->tm[m->batch[i]].seq;
}

/* The id of the timer the wheel must fire next in this advance, or -1. */
static int m_expect_next(model *m)
{
    for (;;) {
        while (m->batch_i < m->batch_n) {
            int i = m->batch[m->batch_i];
            uint64_t seq = m->batch_seq[m->batch_i++];
            if (m->tm[i].pending && m->tm[i].seq == seq) return i;
        }
        if (m->phase == 2) return -1;
        m->phase = 1;
        uint64_t best = UINT64_MAX;
        for (int i = 0; i < MODEL_N; i++)
            if (m->tm[i].pending && m->tm[i].tick >= m->cur && m->tm[i].tick < best)
                best = m->tm[i].tick;
        if (best == UINT64_MAX || best > m->target) {
            if (m->cur <= m->target) m->cur = m->target + 1;
            m->phase = 2;
            return -1;
        }
        m->cur = best + 1;
        m_fill_batch(m, best);
    }
}

static void m_mutate(model *m, int self)
{
    uint64_t r = rnd(&m->rng, 100);
    int other = (int)rnd(&m->rng, MODEL_N);
    if (r < 30)
        m_add(m, self, m_random_deadline(m));
    else if (r < 40)
        m_add(m, self, m->last_ms - (int64_t)rnd(&m->rng, 5)); /* due: deferred */
    else if (r < 55) /* just after its deadline: maybe within this call */
        m_add(m, self,
              sat_add(wheel_timer_deadline(&m->tm[self].t), 1 + (int64_t)rnd(&m->rng, 50)));
    if (r >= 55 && r < 75)
        m_cancel(m, other);
    else if (r >= 75 && r < 90)
        m_add(m, other, m_random_deadline(m));
    size_t fired_before = m->fired_total;
    assert_int_equal(wheel_advance(m->w, sat_add(m->last_ms, 1000), NULL, NULL), 0);
    assert_int_equal(m->fired_total, fired_before);
}

static void model_cb(wheel_timer *wt, void *arg)
{
    model *m = arg;
    mtimer *t = (mtimer *)((char *)wt - offsetof(mtimer, t));
    int want = m_expect_next(m);
    assert_int_equal(t->id, want);
    assert_true(t->pending);
    assert_false(wheel_timer_pending(wt));
    /* Never early: its due time (and so its deadline) has been reached. */
    assert_true(t->deadline <= m->last_ms);
    assert_true(t->tick <= m_target(m, m->last_ms));
    /* Order within one call. */
    if (m->fired_any)
        assert_true(t->deadline > m->last_fired_deadline ||
                    (t->deadline == m->last_fired_deadline && t->seq > m->last_fired_seq));
    m->fired_any = true;
    m->last_fired_deadline = t->deadline;
    m->last_fired_seq = t->seq;
    t->pending = false;
    m->fired_total++;
    if (m->mutate && rnd(&m->rng, 2) == 0) m_mutate(m, t->id);
}

static void m_advance(model *m, int64_t now)
{
    if (now > m->last_ms) m->last_ms = now;
    for (int i = 0; i < MODEL_N; i++)
        m->tm[i].deferred = false;
    m->target = m_target(m, m->last_ms);
    m->phase = 0;
    m_fill_batch(m, 0);
    m->in_advance = true;
    m->fired_any = false;
    size_t before = m->fired_total;
    size_t n = wheel_advance(m->w, now, model_cb, m);
    m->in_advance = false;
    assert_int_equal(m_expect_next(m), -1);
    assert_int_equal(n, m->fired_total - before);

    /* After the call: nothing due is left except timers deferred by a
     * callback, and every survivor is less than a tick past its deadline. */
    size_t pending = 0;
    uint64_t min_due = UINT64_MAX;
    bool deferred = false;
    for (int i = 0; i < MODEL_N; i++) {
        const mtimer *t = &m->tm[i];
        assert_int_equal(wheel_timer_pending(&t->t), t->pending);
        if (!t->pending) continue;
        pending++;
        if (t->deferred) {
            deferred = true;
            continue;
        }
        assert_true(t->tick > m->target);
        assert_true(t->deadline > m->last_ms - (int64_t)m->T);
        if (t->tick < min_due) min_due = t->tick;
    }
    assert_int_equal(wheel_count(m->w), pending);
    int64_t nd = wheel_next_deadline(m->w);
    if (pending == 0)
        assert_int_equal(nd, -1);
    else if (deferred)
        assert_true(nd <= m->last_ms);
    else {
        assert_true(nd > m->last_ms);
        if (min_due <= (uint64_t)INT64_MAX / m->T) assert_true(nd <= (int64_t)(min_due * m->T));
    }
}

static void model_run(uint64_t seed, uint32_t tick, int64_t start, bool mutate, int ops)
{
    model *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    m->w = wheel_new(tick, start);
    assert_non_null(m->w);
    m->T = tick;
    m->last_ms = start < 0 ? 0 : start;
    m->cur = (uint64_t)m->last_ms / tick + 1;
    m->rng = seed;
    m->mutate = mutate;
    for (int i = 0; i < MODEL_N; i++) {
        m->tm[i].id = i;
        wheel_timer_init(&m->tm[i].t);
    }
    for (int op = 0; op < ops; op++) {
        uint64_t r = rnd(&m->rng, 100);
        int i = (int)rnd(&m->rng, MODEL_N);
        if (r < 40) {
            m_add(m, i, m_random_deadline(m));
        } else if (r < 55) {
            m_cancel(m, i);
        } else {
            uint64_t s = rnd(&m->rng, 100);
            int64_t now = m->last_ms;
            if (s < 40)
                now += (int64_t)rnd(&m->rng, 21);
            else if (s < 65)
                now += (int64_t)rnd(&m->rng, 2001);
            else if (s < 80)
                now += (int64_t)rnd(&m->rng, 10 * DAY_MS);
            else if (s < 85)
                now += (int64_t)rnd(&m->rng, 300 * DAY_MS);
            else if (s >= 95)
                now -= (int64_t)rnd(&m->rng, 1000);
            m_advance(m, now);
        }
    }
    m_advance(m, INT64_MAX); /* everything left fires, in order */
    for (int i = 0; i < MODEL_N; i++) {
        if (m->tm[i].pending) assert_true(m->tm[i].deferred);
        m_cancel(m, i);
    }
    assert_int_equal(wheel_count(m->w), 0);
    wheel_free(m->w);
    free(m);
}

static void property_against_model(void **state)
{
    static const int64_t starts[] = {0, 1700000000000LL, ((1LL << 32) - 5000),
                                     ((1LL << 40) - 70000)};
    static const uint32_t ticks[] = {1, 10, 7};
    for (uint64_t seed = 1; seed <= 60; seed++) {
        uint32_t tick = ticks[seed % 3];
        int64_t start = starts[seed % 4] * (seed % 4 >= 2 ? (int64_t)tick : 1);
        model_run(seed, tick, start, false, 1500);
    }
}

static void property_with_mutating_callbacks(void **state)
{
    static const uint32_t ticks[] = {1, 10, 3};
    for (uint64_t seed = 1000; seed < 1060; seed++)
        model_run(seed, ticks[seed % 3], (int64_t)(seed % 2) * 1700000000000LL, true, 1500);
}

/* Dense timers in few ticks: exercises the sort of large shuffled slots
 * (cascaded timers interleaved with direct adds of equal deadlines). */
static void property_dense(void **state)
{
    for (uint64_t seed = 5000; seed < 5020; seed++) {
        model *m = calloc(1, sizeof(*m));
        assert_non_null(m);
        m->T = 10;
        m->w = wheel_new(10, 0);
        m->cur = 1;
        m->rng = seed;
        for (int i = 0; i < MODEL_N; i++) {
            m->tm[i].id = i;
            wheel_timer_init(&m->tm[i].t);
        }
        for (int round = 0; round < 20; round++) {
            for (int i = 0; i < MODEL_N; i++)
                if (rnd(&m->rng, 3) == 0)
                    m_add(m, i, m->last_ms + 2000 + (int64_t)rnd(&m->rng, 40));
            m_advance(m, m->last_ms + (int64_t)rnd(&m->rng, 1500));
        }
        m_advance(m, INT64_MAX);
        assert_int_equal(wheel_count(m->w), 0);
        wheel_free(m->w);
        free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_rejects_bad_tick_and_oom),
        cmocka_unit_test(fires_at_deadline_not_before),
        cmocka_unit_test(coarse_tick_rounds_up_and_orders),
        cmocka_unit_test(past_deadline_fires_at_next_advance),
        cmocka_unit_test(cancel_prevents_firing),
        cmocka_unit_test(readd_in_callback_same_call),
        cmocka_unit_test(readd_due_defers_to_next_call),
        cmocka_unit_test(cancel_in_callback),
        cmocka_unit_test(far_future_across_levels),
        cmocka_unit_test(overflow_boundary),
        cmocka_unit_test(many_timers),
        cmocka_unit_test(free_with_pending),
        cmocka_unit_test(property_against_model),
        cmocka_unit_test(property_with_mutating_callbacks),
        cmocka_unit_test(property_dense),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
