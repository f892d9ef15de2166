/* Unit tests for auth/ratelimit: exact bucket arithmetic and retry_after,
 * clocks going backwards, property runs over random simulated time, the
 * keyed table's eviction and bound, connection counters, threads hammering
 * one key, and allocation failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "auth/ratelimit.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/status.h"

#define T0 1000000000LL /* an arbitrary start time, in microseconds */
#define MS 1000LL
#define SEC 1000000LL

/* Deterministic PRNG (xorshift64*) so a failing property run can be replayed. */
static uint64_t rnd_state;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return rnd_state * 2685821657736338717ULL;
}

static uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
    return lo + rnd() % (hi - lo + 1);
}

/* ---- backlog ----------------------------------------------------------- */

/* A crowd refused in one instant gets one slot each, 1/rate apart, in the
 * order they were refused, each jittered inside its own slot. */
static void test_backlog_slots(void **state)
{
    rl_backlog q = {0};
    for (int i = 0; i < 5; i++) {
        int64_t ms = rl_backlog_slot(&q, 10, 100, T0, 60000, (uint64_t)i);
        assert_in_range(ms, 100 * (i + 1), 100 * (i + 2));
    }
    /* The crowd is gone: a refusal much later waits for the bucket only. */
    int64_t ms = rl_backlog_slot(&q, 10, 100, T0 + 10 * SEC, 60000, 7);
    assert_in_range(ms, 100, 200);
    /* A bucket wait beyond the backlog's end wins. */
    ms = rl_backlog_slot(&q, 10, 5000, T0 + 10 * SEC, 60000, 8);
    assert_in_range(ms, 5000, 5100);
    /* rate 0: nothing to spread. */
    assert_int_equal(rl_backlog_slot(&q, 0, 42, T0, 60000, 1), 42);
}

/* At a fast rate the retry times of a crowd are spread: no millisecond gets
 * more than its share, and the jitter differs between neighbours. */
static void test_backlog_spread(void **state)
{
    rl_backlog q = {0};
    enum { N = 3000 };
    static int per_ms[N + 2];
    memset(per_ms, 0, sizeof(per_ms));
    int64_t last = 0;
    for (int i = 0; i < N; i++) {
        int64_t ms = rl_backlog_slot(&q, 1000, 1, T0, 60000, (uint64_t)i);
        assert_in_range(ms, 1, N + 1);
        assert_true(ms >= last); /* slots follow the order of refusal */
        last = ms;
        per_ms[ms]++;
    }
    for (int i = 0; i < N + 2; i++)
        assert_in_range(per_ms[i], 0, 2);
}

/* Past max_ms no slot is taken: the answer stays near max_ms and the
 * backlog does not grow without bound. */
static void test_backlog_cap(void **state)
{
    rl_backlog q = {0};
    for (int i = 0; i < 5; i++)
        assert_in_range(rl_backlog_slot(&q, 1, 1000, T0, 5000, (uint64_t)i), 1000 * (i + 1),
                        1000 * (i + 2));
    for (int i = 0; i < 100; i++)
        assert_in_range(rl_backlog_slot(&q, 1, 1000, T0, 5000, (uint64_t)i), 5000, 6000);
    /* Five seconds on, the first slot past the old backlog is free again. */
    assert_in_range(rl_backlog_slot(&q, 1, 1000, T0 + 5 * SEC, 5000, 1), 1000, 2000);
}

/* The point of the backlog, simulated in whole milliseconds: a storm of
 * clients all connecting in the same instant against a bucket of rate R
 * (burst R), each refused one coming back when told. All get in within
 * about N / R seconds, and nobody is refused more than a few times (told
 * only the bucket's wait, most would come back together and be refused
 * again, round after round). */
static void test_backlog_storm(void **state)
{
    enum { N = 5000, R = 1000 };
    static int64_t when_ms[N];
    static int tries[N];
    memset(when_ms, 0, sizeof(when_ms));
    memset(tries, 0, sizeof(tries));
    rl_bucket b;
    rl_bucket_init(&b, R, R, T0);
    rl_backlog q = {0};
    int left = N, max_tries = 0;
    int64_t t = 0;
    for (; left && t < 60000; t++) {
        int64_t now = T0 + t * MS;
        for (int i = 0; i < N; i++) {
            if (when_ms[i] != t) continue;
            int64_t wait = rl_take(&b, now, 1);
            if (!wait) {
                left--;
                when_ms[i] = -1;
                continue;
            }
            tries[i]++;
            if (tries[i] > max_tries) max_tries = tries[i];
            when_ms[i] = t + rl_backlog_slot(&q, R, wait, now, 60000, (uint64_t)i);
        }
    }
    assert_int_equal(left, 0);
    assert_in_range(t, (N - R) * 1000 / R, (N - R) * 1000 / R + 1000);
    assert_in_range(max_tries, 1, 3);
}

/* ---- bucket ------------------------------------------------------------ */

static void test_burst_then_refuse(void **state)
{
    rl_bucket b;
    rl_bucket_init(&b, 10, 5, T0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rl_take(&b, T0, 1), 0);
    assert_int_equal(rl_take(&b, T0, 1), 100);
    assert_int_equal(rl_take(&b, T0, 2), 200);
    /* Refusal consumes nothing: still exactly one token after 100 ms. */
    assert_int_equal(rl_take(&b, T0 + 100 * MS, 1), 0);
    assert_int_equal(rl_take(&b, T0 + 100 * MS, 1), 100);
}

static void test_retry_after_is_exact(void **state)
{
    rl_bucket b;
    rl_bucket_init(&b, 3, 1, T0);
    assert_int_equal(rl_take(&b, T0, 1), 0);
    /* One token at 3/s takes 333334 us (rounded up), announced as 334 ms. */
    assert_int_equal(rl_take(&b, T0, 1), 334);
    assert_int_not_equal(rl_take(&b, T0 + 333333, 1), 0);
    assert_int_equal(rl_take(&b, T0 + 333334, 1), 0);
    /* retry_after is never 0 while refusing, even a microsecond short. */
    rl_bucket_init(&b, 1000000, 1, T0);
    assert_int_equal(rl_take(&b, T0, 1), 0);
    assert_int_equal(rl_take(&b, T0, 1), 1);
}

static void test_no_drift(void **state)
{
    /* 3 tokens/s polled every millisecond for 1000 s: a float bucket that
     * adds 0.003 per step drifts; integer micro-tokens give exactly 3000. */
    rl_bucket b;
    rl_bucket_init(&b, 3, 2, T0);
    assert_int_equal(rl_take(&b, T0, 2), 0);
    uint64_t admitted = 0;
    for (int64_t t = T0 + MS; t <= T0 + 1000 * SEC; t += MS)
        if (rl_take(&b, t, 1) == 0) admitted++;
    assert_int_equal(admitted, 3000);
}

static void test_unlimited_and_edges(void **state)
{
    rl_bucket b;
    rl_bucket_init(&b, 0, 0, T0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(rl_take(&b, T0, UINT64_MAX), 0);
    assert_true(rl_bucket_full(&b, T0));

    rl_bucket_init(&b, 10, 5, T0);
    assert_int_equal(rl_take(&b, T0, 0), 0);
    assert_int_equal(rl_take(&b, T0, 6), RL_NEVER);
    assert_int_equal(rl_take(&b, T0, UINT64_MAX), RL_NEVER);
    assert_int_equal(rl_take(&b, T0, 5), 0);

    /* burst 0 = one second's worth. */
    rl_bucket_init(&b, 7, 0, T0);
    assert_int_equal(b.burst, 7);
    /* Absurd limits are clamped, not overflowed. */
    rl_bucket_init(&b, UINT64_MAX, UINT64_MAX, INT64_MIN / 2);
    assert_int_equal(b.rate, RL_MAX_RATE);
    assert_int_equal(b.burst, RL_MAX_BURST);
    assert_int_equal(rl_take(&b, INT64_MIN / 2, RL_MAX_BURST), 0);
    assert_int_not_equal(rl_take(&b, INT64_MIN / 2, 1), 0);
    assert_int_equal(rl_take(&b, INT64_MAX / 2, RL_MAX_BURST), 0);
    assert_true(rl_take(&b, INT64_MAX, 1) == 0);
}

static void test_clock_backwards(void **state)
{
    rl_bucket b;
    rl_bucket_init(&b, 10, 1, T0);
    assert_int_equal(rl_take(&b, T0 + SEC, 1), 0);
    /* A small step back credits nothing and the wait includes the step. */
    assert_int_equal(rl_take(&b, T0 + SEC - 500 * MS, 1), 600);
    /* Coming back to the newest time seen must not credit the gap twice. */
    assert_int_equal(rl_take(&b, T0 + SEC, 1), 100);
    assert_int_equal(rl_take(&b, T0 + SEC + 100 * MS, 1), 0);

    /* A large step back rebases instead of freezing the bucket for an hour. */
    rl_bucket_init(&b, 10, 1, T0 + 3600 * SEC);
    assert_int_equal(rl_take(&b, T0 + 3600 * SEC, 1), 0);
    assert_int_equal(rl_take(&b, T0, 1), 100);
    assert_int_equal(rl_take(&b, T0 + 100 * MS, 1), 0);
}

static void test_set_limits(void **state)
{
    rl_bucket b;
    rl_bucket_init(&b, 10, 10, T0);
    rl_bucket_set(&b, 10, 2, T0);
    assert_int_equal(rl_take(&b, T0, 2), 0);
    assert_int_equal(rl_take(&b, T0, 1), 100);
    rl_bucket_set(&b, 1000, 2, T0);
    assert_int_equal(rl_take(&b, T0 + MS, 1), 0);
    /* Unlimited, then limited again: starts full. */
    rl_bucket_set(&b, 0, 0, T0);
    assert_int_equal(rl_take(&b, T0, 100), 0);
    rl_bucket_set(&b, 1, 3, T0);
    assert_int_equal(rl_take(&b, T0, 3), 0);
    assert_int_equal(rl_take(&b, T0, 1), 1000);
}

/* Property: over random rates, bursts, step sizes, token counts and small
 * backward steps, admitted tokens never exceed burst + rate * elapsed, and a
 * retry_after is always honoured when the caller comes back on time. */
static void test_property_never_exceeds(void **state)
{
    rnd_state = 0x9e3779b97f4a7c15ULL;
    for (int run = 0; run < 300; run++) {
        uint64_t rate = rnd_range(1, 5000), burst = rnd_range(1, 100);
        rl_bucket b;
        rl_bucket_init(&b, rate, burst, T0);
        int64_t now = T0, newest = T0;
        uint64_t admitted = 0;
        for (int step = 0; step < 2000; step++) {
            uint64_t r = rnd() % 100;
            if (r < 5)
                now -= (int64_t)rnd_range(1, 200 * MS); /* jitter backwards */
            else if (r < 60)
                now += (int64_t)rnd_range(0, 20 * MS);
            else if (r < 62)
                now += (int64_t)rnd_range(0, 5 * SEC);
            /* Steps back beyond RL_BACKSTEP_US rebase by design; stay under. */
            if (now < newest - 900 * MS) now = newest - 900 * MS;
            if (now > newest) newest = now;
            uint64_t n = rnd_range(1, burst < 4 ? burst : 4);
            int64_t wait = rl_take(&b, now, n);
            if (wait == 0) {
                admitted += n;
            } else if (now == newest && rnd() % 4 == 0) {
                now += wait * MS;
                newest = now;
                assert_int_equal(rl_take(&b, now, n), 0);
                admitted += n;
            }
            uint64_t elapsed = (uint64_t)(newest - T0);
            assert_true(admitted * 1000000ULL <= burst * 1000000ULL + rate * elapsed);
        }
    }
}

/* Property: a greedy taker on a monotonic clock gets exactly what the bucket
 * allows, burst + floor(rate * elapsed), never a token less. */
static void test_property_greedy_exact(void **state)
{
    rnd_state = 12345;
    for (int run = 0; run < 200; run++) {
        uint64_t rate = rnd_range(1, 2000), burst = rnd_range(2, 50);
        int64_t max_step = (int64_t)((burst - 1) * 1000000ULL / rate);
        if (max_step > 50 * MS) max_step = 50 * MS;
        rl_bucket b;
        rl_bucket_init(&b, rate, burst, T0);
        int64_t now = T0;
        uint64_t admitted = 0;
        for (int step = 0; step < 500; step++) {
            while (rl_take(&b, now, 1) == 0)
                admitted++;
            now += (int64_t)rnd_range(0, (uint64_t)max_step);
        }
        /* The last step was not followed by takes: count up to the last take. */
        uint64_t elapsed = (uint64_t)(b._last - T0);
        assert_int_equal(admitted, burst + rate * elapsed / 1000000ULL);
    }
}

/* ---- keyed table ------------------------------------------------------- */

static void test_table_keys_independent(void **state)
{
    rl_table *t = rl_table_new(0);
    assert_non_null(t);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rl_table_take(t, "user:a/x", 1, 3, T0, 1), 0);
    assert_int_equal(rl_table_take(t, "user:a/x", 1, 3, T0, 1), 1000);
    assert_int_equal(rl_table_take(t, "user:a/y", 1, 3, T0, 1), 0);
    assert_int_equal(rl_table_take(t, "tenant:a", 1, 3, T0, 3), 0);
    assert_int_equal(rl_table_size(t), 3);
    /* Rate 0 admits and does not store anything. */
    assert_int_equal(rl_table_take(t, "ip:1.2.3.4", 0, 0, T0, 1000), 0);
    assert_int_equal(rl_table_size(t), 3);
    /* A config reload to a higher rate applies to the existing bucket. */
    assert_int_equal(rl_table_take(t, "user:a/x", 1000, 3, T0 + MS, 1), 0);
    rl_table_free(t);
}

static void test_table_evicts_idle(void **state)
{
    rl_table *t = rl_table_new(0);
    char key[32];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "ip:10.0.%d.%d", i / 256, i % 256);
        assert_int_equal(rl_table_take(t, key, 10, 10, T0, 1), 0);
    }
    assert_int_equal(rl_table_size(t), 500);
    /* Not yet refilled: a take 50 ms later keeps them all. */
    for (int i = 0; i < 200; i++)
        rl_table_take(t, "hot", 10, 10, T0 + 50 * MS, 0);
    assert_int_equal(rl_table_size(t), 501);
    /* 100 ms after their take they are full again and go lazily, shard by
     * shard, as traffic reaches each shard. */
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "new:%d", i);
        rl_table_take(t, key, 10, 10, T0 + 200 * MS, 1);
    }
    assert_int_equal(rl_table_size(t), 2000);
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "ip:10.0.%d.%d", i / 256, i % 256);
        for (int j = 0; j < 10; j++)
            assert_int_equal(rl_table_take(t, key, 10, 10, T0 + 200 * MS, 1), 0);
    }
    /* The explicit sweep drops everything that has refilled by then. */
    assert_int_equal(rl_table_sweep(t, T0 + 250 * MS), 0);
    assert_int_equal(rl_table_sweep(t, T0 + 300 * MS), 2000); /* "new:*" took 1 of 10 */
    assert_int_equal(rl_table_sweep(t, T0 + 1199 * MS), 0);   /* "ip:*" took 10 */
    assert_int_equal(rl_table_sweep(t, T0 + 1200 * MS), 500);
    assert_int_equal(rl_table_size(t), 0);
    /* The evicted key behaves like a fresh full bucket, as it would have. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(rl_table_take(t, "ip:10.0.0.0", 10, 10, T0, 1), 0);
    rl_table_free(t);
}

static void test_table_hard_cap(void **state)
{
    rl_table *t = rl_table_new(RL_SHARDS * 2);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        /* Drained, so nothing is idle: only the cap can bound memory. */
        assert_int_equal(rl_table_take(t, key, 1, 1, T0, 1), 0);
        assert_true(rl_table_size(t) <= RL_SHARDS * 2);
    }
    assert_true(rl_table_size(t) > RL_SHARDS);
    /* The most recent key is still limited. */
    assert_int_equal(rl_table_take(t, "key:4999", 1, 1, T0, 1), 1000);
    rl_table_free(t);
}

struct hammer {
    rl_table *t;
    const char *key;
    int64_t now; /* 0 = real monotonic clock */
    int64_t until;
    int iterations;
    atomic_ulong *admitted;
};

static void *hammer_take(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; h->now ? i < h->iterations : clock_mono_us() < h->until; i++) {
        int64_t now = h->now ? h->now : clock_mono_us();
        if (rl_table_take(h->t, h->key, 1000, 100, now, 1) == 0) atomic_fetch_add(h->admitted, 1);
    }
    return NULL;
}

static void test_table_threads_fixed_time(void **state)
{
    rl_table *t = rl_table_new(0);
    atomic_ulong admitted = 0;
    pthread_t th[8];
    struct hammer h = {t, "tenant:acme", T0, 0, 5000, &admitted};
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, hammer_take, &h);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&admitted), 100);
    rl_table_free(t);
}

static void test_table_threads_real_clock(void **state)
{
    rl_table *t = rl_table_new(0);
    atomic_ulong admitted = 0;
    pthread_t th[8];
    int64_t start = clock_mono_us();
    /* The bucket is created by the first take, at or after start. */
    struct hammer h = {t, "user:acme/alice", 0, start + 300 * MS, 0, &admitted};
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, hammer_take, &h);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    int64_t elapsed = clock_mono_us() - start;
    unsigned long got = atomic_load(&admitted);
    unsigned long allowed = 100 + (unsigned long)(1000 * elapsed / SEC);
    assert_true(got <= allowed + 1);
    assert_true(got >= 100);
    rl_table_free(t);
}

/* ---- connection counters ----------------------------------------------- */

static void test_conn_limits(void **state)
{
    rl_table *t = rl_table_new(0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rl_conn_acquire(t, "ip:127.0.0.1", 3), 0);
    assert_int_equal(rl_conn_acquire(t, "ip:127.0.0.1", 3), -1);
    assert_int_equal(rl_conn_count(t, "ip:127.0.0.1"), 3);
    assert_int_equal(rl_conn_acquire(t, "ip:127.0.0.2", 3), 0);
    rl_conn_release(t, "ip:127.0.0.1");
    assert_int_equal(rl_conn_acquire(t, "ip:127.0.0.1", 3), 0);
    /* Lowering the limit below the live count refuses new ones only. */
    assert_int_equal(rl_conn_acquire(t, "ip:127.0.0.1", 1), -1);
    for (int i = 0; i < 3; i++)
        rl_conn_release(t, "ip:127.0.0.1");
    assert_int_equal(rl_conn_count(t, "ip:127.0.0.1"), 0);
    /* Unmatched releases never underflow into a huge count. */
    rl_conn_release(t, "ip:127.0.0.1");
    rl_conn_release(t, "never-seen");
    assert_int_equal(rl_conn_count(t, "ip:127.0.0.1"), 0);
    assert_int_equal(rl_conn_acquire(t, "ip:127.0.0.1", 1), 0);
    /* max 0 = unlimited, still counted. */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(rl_conn_acquire(t, "tenant:big", 0), 0);
    assert_int_equal(rl_conn_count(t, "tenant:big"), 1000);
    /* Counters do not count as buckets. */
    assert_int_equal(rl_table_size(t), 0);
    rl_table_free(t); /* frees live counters too (checked under ASan) */
}

struct conn_hammer {
    rl_table *t;
    atomic_int live;
    atomic_int peak;
    atomic_int refused;
};

static void *hammer_conn(void *arg)
{
    struct conn_hammer *h = arg;
    for (int i = 0; i < 20000; i++) {
        if (rl_conn_acquire(h->t, "user:acme/bob", 5) != 0) {
            atomic_fetch_add(&h->refused, 1);
            continue;
        }
        int live = atomic_fetch_add(&h->live, 1) + 1;
        int peak = atomic_load(&h->peak);
        while (live > peak && !atomic_compare_exchange_weak(&h->peak, &peak, live)) {
        }
        atomic_fetch_sub(&h->live, 1);
        rl_conn_release(h->t, "user:acme/bob");
    }
    return NULL;
}

static void test_conn_threads(void **state)
{
    struct conn_hammer h = {.t = rl_table_new(0)};
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, hammer_conn, &h);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    assert_true(atomic_load(&h.peak) <= 5);
    assert_true(atomic_load(&h.peak) >= 1);
    assert_int_equal(rl_conn_count(h.t, "user:acme/bob"), 0);
    rl_table_free(h.t);
}

/* ---- allocation failure ------------------------------------------------- */

static void test_oom(void **state)
{
    pl_mem_fail_after(0);
    assert_null(rl_table_new(0));
    pl_mem_fail_after(-1);

    rl_table *t = rl_table_new(0);
    for (long n = 0; n < 4; n++) {
        pl_mem_fail_after(n);
        /* Fails open for buckets; reports the error for counters. */
        assert_int_equal(rl_table_take(t, "k", 1, 1, T0, 1), 0);
        int rc = rl_conn_acquire(t, "c", 1);
        pl_mem_fail_after(-1);
        assert_true(rc == 0 || rc == PL_ENOMEM);
        assert_int_equal(rl_conn_count(t, "c"), rc == 0 ? 1 : 0);
        if (rc == 0) rl_conn_release(t, "c");
    }
    rl_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backlog_slots),
        cmocka_unit_test(test_backlog_spread),
        cmocka_unit_test(test_backlog_cap),
        cmocka_unit_test(test_backlog_storm),
        cmocka_unit_test(test_burst_then_refuse),
        cmocka_unit_test(test_retry_after_is_exact),
        cmocka_unit_test(test_no_drift),
        cmocka_unit_test(test_unlimited_and_edges),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_set_limits),
        cmocka_unit_test(test_property_never_exceeds),
        cmocka_unit_test(test_property_greedy_exact),
        cmocka_unit_test(test_table_keys_independent),
        cmocka_unit_test(test_table_evicts_idle),
        cmocka_unit_test(test_table_hard_cap),
        cmocka_unit_test(test_table_threads_fixed_time),
        cmocka_unit_test(test_table_threads_real_clock),
        cmocka_unit_test(test_conn_limits),
        cmocka_unit_test(test_conn_threads),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
