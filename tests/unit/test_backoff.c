/* Unit and property tests for the retry schedules: the exponential bound
 * against a 128-bit reference over thousands of random curves, the full
 * jitter range and mean, overflow at huge attempts, the webhook schedule with
 * jitter, caps and Retry-After, and the Retry-After parser on valid, hostile
 * and random input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "delivery/backoff.h"
#include "util/status.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* A scripted random source: returns vals[0], vals[1], ... then repeats the
 * last one; counts calls. */
typedef struct script {
    const uint64_t *vals;
    size_t n, i, calls;
} script;

static uint64_t script_next(void *state)
{
    script *s = state;
    s->calls++;
    uint64_t v = s->vals[s->i < s->n ? s->i : s->n - 1];
    if (s->i < s->n) s->i++;
    return v;
}

static uint64_t rnd(backoff_rng *r, uint64_t n)
{
    return backoff_uniform(backoff_rng_next, r, n);
}

/* min(cap, base * factor^(attempt-1)) computed in 128 bits, saturating. */
static int64_t ref_bound(int64_t base, uint32_t factor, int64_t cap, uint32_t attempt)
{
    unsigned __int128 v = (unsigned __int128)base;
    for (uint32_t i = 1; i < attempt && v <= (unsigned __int128)cap && v != 0 && factor > 1; i++)
        v *= factor;
    return v > (unsigned __int128)cap ? cap : (int64_t)v;
}

static backoff make(int64_t base, uint32_t factor, int64_t cap)
{
    backoff b;
    assert_int_equal(backoff_init(&b), PL_OK);
    assert_int_equal(backoff_configure(&b, base, factor, cap), PL_OK);
    return b;
}

/* ------------------------------------------------------------------------ */
/* PRNG                                                                      */

static void rng_known_vector_and_seeding(void **state)
{
    /* Reference values from an independent implementation of splitmix64
     * seeding and xoshiro256**. */
    backoff_rng r;
    backoff_rng_seed(&r, 42);
    assert_true(backoff_rng_next(&r) == 0x15780b2e0c2ec716ull);
    assert_true(backoff_rng_next(&r) == 0x6104d9866d113a7eull);
    assert_true(backoff_rng_next(&r) == 0xae17533239e499a1ull);

    backoff_rng a, b;
    assert_int_equal(backoff_rng_seed_random(&a), PL_OK);
    assert_int_equal(backoff_rng_seed_random(&b), PL_OK);
    assert_memory_not_equal(&a, &b, sizeof(a));
    backoff_rng_seed(&a, 0);
    backoff_rng_seed(&b, 0);
    for (int i = 0; i < 100; i++)
        assert_true(backoff_rng_next(&a) == backoff_rng_next(&b));
}

static void uniform_rejects_biased_draws(void **state)
{
    /* 2^64 mod 3 == 1: a draw of 0 would favor residue 0 and is redrawn. */
    static const uint64_t v1[] = {0, 5};
    script s = {.vals = v1, .n = 2};
    assert_int_equal(backoff_uniform(script_next, &s, 3), 2);
    assert_int_equal(s.calls, 2);
    /* n = 2^63 + 1: everything below 2^63 - 1 is rejected. */
    static const uint64_t v2[] = {0, (1ull << 63) - 2, (1ull << 63) - 1};
    s = (script){.vals = v2, .n = 3};
    assert_true(backoff_uniform(script_next, &s, (1ull << 63) + 1) == (1ull << 63) - 1);
    assert_int_equal(s.calls, 3);
    /* Degenerate ranges need no randomness. */
    s = (script){.vals = v1, .n = 2};
    assert_int_equal(backoff_uniform(script_next, &s, 1), 0);
    assert_int_equal(backoff_uniform(script_next, &s, 0), 0);
    assert_int_equal(s.calls, 0);
    /* Powers of two never reject. */
    static const uint64_t v3[] = {UINT64_MAX};
    s = (script){.vals = v3, .n = 1};
    assert_true(backoff_uniform(script_next, &s, 1ull << 63) == (1ull << 63) - 1);
    assert_int_equal(s.calls, 1);
}

/* ------------------------------------------------------------------------ */
/* Exponential backoff                                                       */

static void defaults_and_bound_table(void **state)
{
    backoff b;
    assert_int_equal(backoff_init(&b), PL_OK);
    assert_int_equal(b.base_ms, 1000);
    assert_int_equal(b.factor, 2);
    assert_int_equal(b.cap_ms, 300000);
    static const struct {
        uint32_t attempt;
        int64_t bound;
    } rows[] = {{0, 1000},    {1, 1000},      {2, 2000},           {3, 4000},    {4, 8000},
                {8, 128000},  {9, 256000},    {10, 300000},        {11, 300000}, {64, 300000},
                {65, 300000}, {1000, 300000}, {UINT32_MAX, 300000}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(backoff_bound(&b, rows[i].attempt), rows[i].bound);
}

static void configure_rejects_bad_curves(void **state)
{
    backoff b = make(500, 3, 10000);
    assert_int_equal(backoff_configure(&b, -1, 2, 1000), PL_EINVAL);
    assert_int_equal(backoff_configure(&b, 1000, 0, 1000), PL_EINVAL);
    assert_int_equal(backoff_configure(&b, 1000, 2, -1), PL_EINVAL);
    assert_int_equal(backoff_configure(&b, INT64_MIN, 2, INT64_MIN), PL_EINVAL);
    assert_int_equal(b.base_ms, 500);
    assert_int_equal(b.factor, 3);
    assert_int_equal(b.cap_ms, 10000);
    /* Degenerate but valid curves. */
    b = make(0, 2, 1000);
    assert_int_equal(backoff_bound(&b, 50), 0);
    assert_int_equal(backoff_delay(&b, 50), 0);
    b = make(700, 1, 1000);
    assert_int_equal(backoff_bound(&b, UINT32_MAX), 700);
    b = make(5000, 2, 1000); /* base above cap */
    assert_int_equal(backoff_bound(&b, 1), 1000);
    b = make(5000, 2, 0);
    assert_int_equal(backoff_delay(&b, 3), 0);
}

/* The bound matches the 128-bit reference, is monotonic in attempt and
 * reaches the cap; the delay stays within it. Random curves of every scale. */
static void property_bound_and_delay(void **state)
{
    backoff_rng r;
    backoff_rng_seed(&r, 2024);
    for (int c = 0; c < 3000; c++) {
        int64_t base = (int64_t)rnd(&r, 1ull << rnd(&r, 63));
        int64_t cap = (int64_t)rnd(&r, 1ull << rnd(&r, 63));
        if (rnd(&r, 10) == 0) cap = INT64_MAX;
        uint32_t factor = (uint32_t)(1 + rnd(&r, rnd(&r, 2) ? 10 : UINT32_MAX));
        backoff b = make(base, factor, cap);
        backoff_set_rand(&b, backoff_rng_next, &r);
        int64_t prev = -1;
        for (uint32_t a = 0; a <= 80; a++) {
            int64_t bound = backoff_bound(&b, a);
            assert_int_equal(bound, ref_bound(base, factor, cap, a));
            assert_true(bound >= prev);
            assert_true(bound <= cap);
            prev = bound;
            int64_t d = backoff_delay(&b, a);
            assert_true(d >= 0 && d <= bound);
        }
        uint32_t huge[] = {1000, 1u << 20, UINT32_MAX};
        for (int i = 0; i < 3; i++) {
            int64_t bound = backoff_bound(&b, huge[i]);
            assert_int_equal(bound, ref_bound(base, factor, cap, huge[i]));
            assert_true(bound >= prev);
            int64_t d = backoff_delay(&b, huge[i]);
            assert_true(d >= 0 && d <= bound);
        }
        /* Any growing curve with base > 0 ends at the cap. */
        if (base > 0 && factor > 1) assert_int_equal(backoff_bound(&b, UINT32_MAX), cap);
    }
}

static void no_overflow_at_extremes(void **state)
{
    backoff b = make(INT64_MAX / 2 + 1, UINT32_MAX, INT64_MAX);
    assert_int_equal(backoff_bound(&b, 1), INT64_MAX / 2 + 1);
    assert_int_equal(backoff_bound(&b, 2), INT64_MAX);
    assert_int_equal(backoff_bound(&b, 1000), INT64_MAX);
    b = make(INT64_MAX, 2, INT64_MAX);
    assert_int_equal(backoff_bound(&b, 1000), INT64_MAX);
    /* The largest draw maps to the bound itself. */
    static const uint64_t top[] = {UINT64_MAX};
    script s = {.vals = top, .n = 1};
    backoff_set_rand(&b, script_next, &s);
    assert_int_equal(backoff_delay(&b, 1000), INT64_MAX);
    b = make(1, 2, INT64_MAX);
    backoff_set_rand(&b, script_next, &s);
    assert_int_equal(backoff_bound(&b, 63), 1LL << 62);
    assert_int_equal(backoff_bound(&b, 64), INT64_MAX);
    assert_int_equal(backoff_bound(&b, 1000), INT64_MAX);
}

/* Full jitter is uniform: mean near half the bound, both ends reachable. */
static void delay_distribution(void **state)
{
    backoff_rng r;
    backoff_rng_seed(&r, 99);
    backoff b = make(1000, 2, 300000);
    backoff_set_rand(&b, backoff_rng_next, &r);
    uint32_t attempts[] = {1, 3, 50};
    for (int k = 0; k < 3; k++) {
        int64_t bound = backoff_bound(&b, attempts[k]);
        double sum = 0;
        enum { N = 100000 };
        for (int i = 0; i < N; i++)
            sum += (double)backoff_delay(&b, attempts[k]);
        double mean = sum / N;
        assert_true(mean > bound * 0.49 && mean < bound * 0.51);
    }
    b = make(4, 2, 4);
    backoff_set_rand(&b, backoff_rng_next, &r);
    int seen[5] = {0};
    for (int i = 0; i < 1000; i++)
        seen[backoff_delay(&b, 1)]++;
    for (int v = 0; v <= 4; v++)
        assert_true(seen[v] > 100);
}

/* The same seed gives the same delays; the built-in generator is used when
 * no source is injected. */
static void injected_source_is_deterministic(void **state)
{
    backoff_rng r1, r2;
    backoff_rng_seed(&r1, 7);
    backoff_rng_seed(&r2, 7);
    backoff a = make(1000, 2, 300000), b = make(1000, 2, 300000);
    backoff_set_rand(&a, backoff_rng_next, &r1);
    backoff_set_rand(&b, backoff_rng_next, &r2);
    for (uint32_t i = 1; i < 200; i++)
        assert_int_equal(backoff_delay(&a, i), backoff_delay(&b, i));
    /* A bound of 1023 draws from 1024 values: no rejection, draw mod 1024. */
    static const uint64_t v[] = {0, 1, 1023, 12345};
    script s = {.vals = v, .n = 4};
    assert_int_equal(backoff_configure(&a, 1023, 2, 1023), PL_OK);
    backoff_set_rand(&a, script_next, &s);
    assert_int_equal(backoff_delay(&a, 1), 0);
    assert_int_equal(backoff_delay(&a, 1), 1);
    assert_int_equal(backoff_delay(&a, 1), 1023);
    assert_int_equal(backoff_delay(&a, 5), 12345 % 1024);
    assert_int_equal(s.calls, 4);
    assert_int_equal(backoff_configure(&a, 1000, 2, 300000), PL_OK);
    backoff_set_rand(&a, NULL, NULL);
    for (int i = 0; i < 1000; i++) {
        int64_t d = backoff_delay(&a, 2);
        assert_true(d >= 0 && d <= 2000);
    }
    assert_int_equal(s.calls, 4);
}

static void give_up_table(void **state)
{
    static const struct {
        uint32_t attempts, max;
        bool give_up;
    } rows[] = {{0, 7, false},          {6, 7, false}, {7, 7, true},
                {8, 7, true},           {1, 1, true},  {0, 1, false},
                {UINT32_MAX, 0, false}, {0, 0, false}, {UINT32_MAX, UINT32_MAX, true}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(backoff_should_give_up(rows[i].attempts, rows[i].max), rows[i].give_up);
}

/* ------------------------------------------------------------------------ */
/* Explicit schedule                                                         */

static const int64_t hook_delays[] = {5000, 300000, 1800000, 7200000};

static void schedule_exact_and_retry_after(void **state)
{
    backoff_schedule s;
    assert_int_equal(backoff_schedule_init(&s, hook_delays, 4, 0, 0), PL_OK);
    assert_int_equal(s.cap_ms, BACKOFF_SCHEDULE_DEFAULT_CAP_MS);
    static const uint64_t v[] = {UINT64_MAX};
    script sc = {.vals = v, .n = 1};
    backoff_schedule_set_rand(&s, script_next, &sc);
    assert_int_equal(backoff_schedule_delay(&s, 0, -1), 5000);
    assert_int_equal(backoff_schedule_delay(&s, 1, -1), 5000);
    assert_int_equal(backoff_schedule_delay(&s, 2, -1), 300000);
    assert_int_equal(backoff_schedule_delay(&s, 4, -1), 7200000);
    assert_int_equal(backoff_schedule_delay(&s, 5, -1), 7200000); /* last repeats */
    assert_int_equal(backoff_schedule_delay(&s, UINT32_MAX, -1), 7200000);
    assert_int_equal(sc.calls, 0); /* no jitter, no draws */
    /* Retry-After wins when larger, never past the cap. */
    assert_int_equal(backoff_schedule_delay(&s, 1, 600000), 600000);
    assert_int_equal(backoff_schedule_delay(&s, 2, 1000), 300000);
    assert_int_equal(backoff_schedule_delay(&s, 2, 0), 300000);
    assert_int_equal(backoff_schedule_delay(&s, 1, INT64_MAX), BACKOFF_SCHEDULE_DEFAULT_CAP_MS);
    assert_int_equal(backoff_schedule_delay(&s, 1, INT64_MIN), 5000);
    /* A smaller cap also bounds the schedule itself. */
    assert_int_equal(backoff_schedule_init(&s, hook_delays, 4, 0, 3600000), PL_OK);
    assert_int_equal(backoff_schedule_delay(&s, 3, -1), 1800000);
    assert_int_equal(backoff_schedule_delay(&s, 4, -1), 3600000);
    assert_int_equal(backoff_schedule_delay(&s, 1, 86400000), 3600000);
}

static void schedule_defaults_and_invalid(void **state)
{
    backoff_schedule s;
    assert_int_equal(backoff_schedule_init(&s, NULL, 0, 0, -5), PL_OK);
    assert_int_equal(s.n_delays, 6);
    assert_int_equal(backoff_schedule_delay(&s, 1, -1), 5000);
    assert_int_equal(backoff_schedule_delay(&s, 6, -1), 36000000);
    assert_int_equal(backoff_schedule_delay(&s, 99, -1), 36000000);
    static const int64_t bad[] = {5000, -1};
    assert_int_equal(backoff_schedule_init(&s, bad, 2, 0, 0), PL_EINVAL);
    assert_int_equal(backoff_schedule_init(&s, hook_delays, 4, 101, 0), PL_EINVAL);
    assert_int_equal(backoff_schedule_init(&s, hook_delays, 4, UINT32_MAX, 0), PL_EINVAL);
}

/* Jitter keeps each delay within +-pct%, reaches both ends, averages to the
 * scheduled delay, and saturates instead of overflowing. */
static void schedule_jitter(void **state)
{
    backoff_rng r;
    backoff_rng_seed(&r, 11);
    backoff_schedule s;
    assert_int_equal(backoff_schedule_init(&s, hook_delays, 4, 20, 0), PL_OK);
    backoff_schedule_set_rand(&s, backoff_rng_next, &r);
    for (uint32_t a = 1; a <= 4; a++) {
        int64_t d = hook_delays[a - 1], lo = INT64_MAX, hi = 0;
        double sum = 0;
        enum { N = 20000 };
        for (int i = 0; i < N; i++) {
            int64_t v = backoff_schedule_delay(&s, a, -1);
            assert_true(v >= d - d / 5 && v <= d + d / 5);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            sum += (double)v;
        }
        assert_true(lo < d - d / 10 && hi > d + d / 10);
        assert_true(sum / N > d * 0.99 && sum / N < d * 1.01);
    }
    /* Extremes: 100% jitter of INT64_MAX, odd small values, zero. */
    static const int64_t extreme[] = {INT64_MAX, 1, 0, 199};
    assert_int_equal(backoff_schedule_init(&s, extreme, 4, 100, INT64_MAX), PL_OK);
    backoff_schedule_set_rand(&s, backoff_rng_next, &r);
    for (int i = 0; i < 2000; i++) {
        int64_t v = backoff_schedule_delay(&s, 1, -1);
        assert_true(v >= 0);
        v = backoff_schedule_delay(&s, 2, -1);
        assert_true(v >= 0 && v <= 2);
        assert_int_equal(backoff_schedule_delay(&s, 3, -1), 0);
        v = backoff_schedule_delay(&s, 4, 150);
        assert_true(v >= 150 && v <= 398);
    }
    static const uint64_t top[] = {UINT64_MAX - 1}; /* the largest of 2^64 - 1 values */
    script sc = {.vals = top, .n = 1};
    backoff_schedule_set_rand(&s, script_next, &sc);
    assert_int_equal(backoff_schedule_delay(&s, 1, -1), INT64_MAX);
}

/* ------------------------------------------------------------------------ */
/* Retry-After                                                               */

static int64_t ra(const char *s, int64_t now)
{
    return backoff_parse_retry_after(s, strlen(s), now);
}

static void retry_after_table(void **state)
{
    static const struct {
        const char *in;
        int64_t now, want;
    } rows[] = {
        {"120", 0, 120000},
        {"0", 0, 0},
        {" 5\t", 0, 5000},
        {"007", 0, 7000},
        {"9223372036854775", 0, 9223372036854775000LL},
        {"9223372036854776", 0, INT64_MAX},
        {"99999999999999999999999999999999", 0, INT64_MAX},
        {"", 0, -1},
        {" \t ", 0, -1},
        {"-1", 0, -1},
        {"+5", 0, -1},
        {"1.5", 0, -1},
        {"5s", 0, -1},
        {"1 2", 0, -1},
        {"0x10", 0, -1},
        {"Wed, 21 Oct 2015 07:28:00 GMT", 1445412480000LL - 30000, 30000},
        {" Wed, 21 Oct 2015 07:28:00 GMT ", 1445412480000LL - 1, 1},
        {"Wed, 21 Oct 2015 07:28:00 GMT", 1445412480000LL + 5000, 0},
        {"Mon, 29 Feb 2016 00:00:00 GMT", 1456704000000LL - 2000, 2000},
        {"Fri, 31 Dec 9999 23:59:59 GMT", 0, 253402300799000LL},
        {"Mon, 01 Jan 0001 00:00:00 GMT", 0, 0},
        {"Thu, 01 Jan 1970 00:00:00 GMT", -5000, 5000},
        {"Thu, 01 Jan 1970 00:00:00 GMT", INT64_MIN, INT64_MAX},
        {"Thu, 01 Jan 1970 00:00:00 GMT", INT64_MAX, 0},
        {"Wed, 31 Dec 2015 23:59:60 GMT", 0, 1451606400000LL},
        {"Sun, 29 Feb 2015 07:28:00 GMT", 0, -1},
        {"Sun, 29 Feb 1900 07:28:00 GMT", 0, -1},
        {"Wed, 32 Oct 2015 07:28:00 GMT", 0, -1},
        {"Wed, 00 Oct 2015 07:28:00 GMT", 0, -1},
        {"Wed, 31 Apr 2015 07:28:00 GMT", 0, -1},
        {"Wed, 21 Oct 2015 24:00:00 GMT", 0, -1},
        {"Wed, 21 Oct 2015 07:60:00 GMT", 0, -1},
        {"Wed, 21 Oct 2015 07:28:61 GMT", 0, -1},
        {"Xyz, 21 Oct 2015 07:28:00 GMT", 0, -1},
        {"Wed, 21 Foo 2015 07:28:00 GMT", 0, -1},
        {"wed, 21 oct 2015 07:28:00 GMT", 0, -1},
        {"Wed, 21 Oct 2015 07:28:00 UTC", 0, -1},
        {"Wed, 21 Oct 2015 07:28:00 GM", 0, -1},
        {"Wed, 21 Oct 2015 07:28:00 GMTX", 0, -1},
        {"Wed, 21 Oct 2015 7:28:00 GMT ", 0, -1},
        {"Wed, 21 Oct -015 07:28:00 GMT", 0, -1},
        {"Wed,21 Oct 2015 07:28:00 GMT ", 0, -1},
        {"Wednesday, 21-Oct-15 07:28:00 GMT", 1445412480000LL - 30000, 30000},
        {"Wed Oct 21 07:28:00 2015", 1445412480000LL - 30000, 30000},
        {"Sun Nov  6 08:49:37 1994", 784111777000LL - 1000, 1000},
        {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777000LL - 1000, 1000},
        {"Wed, 21-Oct-15 07:28:00 GMT", 0, -1},
        {"Wednesday, 21 Oct 2015 07:28:00 GMT", 0, -1},
        {"Wed Oct 21 07:28:00 15", 0, -1},
        {"Wed Oct 32 07:28:00 2015", 0, -1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int64_t got = ra(rows[i].in, rows[i].now);
        if (got != rows[i].want) print_error("row %zu: \"%s\"\n", i, rows[i].in);
        assert_int_equal(got, rows[i].want);
    }
    /* Not NUL-terminated: only len bytes count; an embedded NUL is junk. */
    assert_int_equal(backoff_parse_retry_after("120abc", 3, 0), 120000);
    assert_int_equal(backoff_parse_retry_after("12\0003", 4, 0), -1);
    assert_int_equal(backoff_parse_retry_after(NULL, 0, 0), -1);
    /* A clock far in the future makes a two-digit year unusable, not an
     * overflow (found by fuzz_retry_after; UBSan reported it). */
    assert_int_equal(ra("Wednesday, 21-Oct-95 07:28:08 GMT", INT64_MAX / 2), -1);
}

/* Random and mutated input never crashes and yields -1 or a delay >= 0. */
static void retry_after_random_input(void **state)
{
    static const char alphabet[] = "0123456789 \t,:-+MonTueWedThuFriSatSunJanFebOctGMT\0\xff";
    static const char seed[] = "Wed, 21 Oct 2015 07:28:00 GMT";
    backoff_rng r;
    backoff_rng_seed(&r, 3);
    char buf[64];
    for (int i = 0; i < 200000; i++) {
        size_t len;
        if (i % 2) {
            len = (size_t)rnd(&r, sizeof(buf));
            for (size_t k = 0; k < len; k++)
                buf[k] = alphabet[rnd(&r, sizeof(alphabet) - 1)];
        } else {
            len = sizeof(seed) - 1;
            memcpy(buf, seed, len);
            buf[rnd(&r, len)] = (char)rnd(&r, 256);
        }
        int64_t now = (int64_t)backoff_rng_next(&r);
        int64_t v = backoff_parse_retry_after(buf, len, now);
        assert_true(v >= -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rng_known_vector_and_seeding),
        cmocka_unit_test(uniform_rejects_biased_draws),
        cmocka_unit_test(defaults_and_bound_table),
        cmocka_unit_test(configure_rejects_bad_curves),
        cmocka_unit_test(property_bound_and_delay),
        cmocka_unit_test(no_overflow_at_extremes),
        cmocka_unit_test(delay_distribution),
        cmocka_unit_test(injected_source_is_deterministic),
        cmocka_unit_test(give_up_table),
        cmocka_unit_test(schedule_exact_and_retry_after),
        cmocka_unit_test(schedule_defaults_and_invalid),
        cmocka_unit_test(schedule_jitter),
        cmocka_unit_test(retry_after_table),
        cmocka_unit_test(retry_after_random_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
