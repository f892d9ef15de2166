/* Unit tests for the chat scenario's plan (`parley bench chat`): the room
 * size curve (exact sum, bounds, skew), memberships (every connection in 5
 * distinct rooms, every room exactly its size), determinism from the seed,
 * the refusals of impossible sizes, and the report's JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/bench_chat.h"
#include "util/sbuf.h"

static uint64_t sum_of(const uint32_t *v, uint32_t n)
{
    uint64_t s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

static void sizes_sum_exactly_within_bounds(void **state)
{
    static const struct {
        uint32_t rooms;
        uint64_t total;
        uint32_t max;
    } cases[] = {
        {2000, 50000, 200}, {40, 1000, 200},   {5, 10, 2},    {5, 25, 5},      {1000, 2000, 200},
        {100, 20000, 200},  {100, 19999, 200}, {7, 23, 7},    {17, 35, 7},     {3000, 50000, 200},
        {2500, 5001, 200},  {10, 1999, 200},   {1, 100, 200}, {999, 4321, 60},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint32_t n = cases[c].rooms;
        uint32_t *size = calloc(n, sizeof(*size));
        double k = bench_chat_sizes(n, cases[c].total, 2, cases[c].max, size);
        assert_true(k > 0);
        assert_int_equal(sum_of(size, n), cases[c].total);
        for (uint32_t i = 0; i < n; i++) {
            assert_true(size[i] >= 2 && size[i] <= cases[c].max);
            if (i) assert_true(size[i] <= size[i - 1]); /* decreasing */
        }
        free(size);
    }
}

/* The defaults: most rooms are direct messages or small groups, a few are
 * large, none over 200. */
static void default_sizes_are_skewed(void **state)
{
    uint32_t size[2000];
    double k = bench_chat_sizes(2000, 50000, 2, 200, size);
    assert_true(k > 5 && k < 10);
    assert_int_equal(sum_of(size, 2000), 50000);
    assert_int_equal(size[1999], 2);
    assert_true(size[0] >= 195 && size[0] <= 200);
    assert_true(size[1000] <= 5); /* median */
    uint32_t over100 = 0;
    for (int i = 0; i < 2000; i++)
        over100 += size[i] > 100;
    assert_true(over100 >= 20 && over100 <= 400);
}

static void check_plan(const bench_chat_plan *p)
{
    uint32_t *count = calloc(p->rooms, sizeof(*count));
    for (uint32_t c = 0; c < p->conns; c++) {
        const uint32_t *m = &p->member[(size_t)c * BENCH_CHAT_PER_CONN];
        for (int a = 0; a < BENCH_CHAT_PER_CONN; a++) {
            assert_true(m[a] < p->rooms);
            count[m[a]]++;
            for (int b = 0; b < a; b++)
                assert_true(m[a] != m[b]); /* 5 distinct rooms */
        }
    }
    for (uint32_t r = 0; r < p->rooms; r++)
        assert_int_equal(count[r], p->size[r]);
    assert_int_equal(sum_of(p->size, p->rooms), (uint64_t)p->conns * BENCH_CHAT_PER_CONN);
    free(count);
}

static void plans_are_exact(void **state)
{
    static const uint32_t cases[][2] = {
        {10000, 2000}, {200, 40},  {2, 5}, {5, 5},  {7, 17},      {1000, 2500},
        {50, 5},       {1000, 25}, {3, 7}, {6, 15}, {20000, 600},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (uint64_t seed = 1; seed <= 3; seed++) {
            bench_chat_plan p;
            assert_null(bench_chat_check(cases[c][0], cases[c][1]));
            assert_int_equal(bench_chat_plan_make(&p, cases[c][0], cases[c][1], seed), 0);
            check_plan(&p);
            bench_chat_plan_release(&p);
        }
    }
}

static void plans_follow_the_seed(void **state)
{
    bench_chat_plan a, b, c;
    assert_int_equal(bench_chat_plan_make(&a, 10000, 2000, 42), 0);
    assert_int_equal(bench_chat_plan_make(&b, 10000, 2000, 42), 0);
    assert_int_equal(bench_chat_plan_make(&c, 10000, 2000, 43), 0);
    size_t n = (size_t)10000 * BENCH_CHAT_PER_CONN;
    assert_memory_equal(a.member, b.member, n * sizeof(*a.member));
    assert_memory_equal(a.size, c.size, 2000 * sizeof(*a.size)); /* sizes: not the seed's */
    assert_true(memcmp(a.member, c.member, n * sizeof(*a.member)) != 0);
    bench_chat_plan_release(&a);
    bench_chat_plan_release(&b);
    bench_chat_plan_release(&c);

    uint64_t s1 = 7, s2 = 7;
    for (int i = 0; i < 100; i++)
        assert_true(bench_chat_rand(&s1) == bench_chat_rand(&s2));
}

static void impossible_sizes_are_refused(void **state)
{
    const char *why;
    assert_non_null(why = bench_chat_check(1, 5));
    assert_non_null(strstr(why, "--conns must be at least 2"));
    assert_non_null(why = bench_chat_check(100, 4));
    assert_non_null(strstr(why, "--rooms must be at least 5"));
    /* 100 connections have 500 memberships: at most 250 rooms of 2. */
    assert_null(bench_chat_check(100, 250));
    assert_non_null(why = bench_chat_check(100, 251));
    assert_non_null(strstr(why, "--rooms 251 is too many for 100 connections"));
    /* 1,000 connections in 20 rooms would need 250 members a room. */
    assert_null(bench_chat_check(1000, 25));
    assert_non_null(why = bench_chat_check(1000, 24));
    assert_non_null(strstr(why, "--rooms 24 is too few"));
    assert_non_null(bench_chat_check(300, 7));
    assert_null(bench_chat_check(300, 8));
    /* Fewer connections than 200: rooms of all of them, still exact. */
    assert_null(bench_chat_check(10, 5));
    bench_chat_plan p;
    assert_int_equal(bench_chat_plan_make(&p, 100, 251, 1), -1);
    assert_null(p.size);
    assert_null(p.member);
}

static void report_json_names_steps(void **state)
{
    bench_chat_sum s;
    memset(&s, 0, sizeof(s));
    sbuf j;
    sbuf_init(&j);
    bench_chat_json(&s, &j); /* off: nothing */
    assert_int_equal(j.len, 0);
    s.on = true;
    s.rooms = 40;
    s.memberships = 1000;
    s.find_max = true;
    s.max_rate = 2500;
    s.nsteps = 2;
    s.steps[0] = (bench_chat_step){.rate = 2000, .ok = true, .kept_up = true};
    s.steps[1] = (bench_chat_step){.rate = 2500, .p99_ms = 150, .kept_up = true};
    bench_chat_json(&s, &j);
    assert_non_null(strstr(j.data, "\"max_rate\":2500"));
    assert_non_null(strstr(j.data, "{\"rate\":2000,"));
    assert_non_null(strstr(j.data, "\"kept_up\":true,\"ok\":false}]}"));
    sbuf h;
    sbuf_init(&h);
    bench_chat_human(&s, &h);
    assert_null(strchr(h.data, '\n')); /* the summary stays one line */
    assert_non_null(strstr(h.data, "2500/s:p99=150.0ms(over)"));
    assert_non_null(strstr(h.data, "max sustainable rate 2500 pubs/s"));
    sbuf_release(&j);
    sbuf_release(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes_sum_exactly_within_bounds),
        cmocka_unit_test(default_sizes_are_skewed),
        cmocka_unit_test(plans_are_exact),
        cmocka_unit_test(plans_follow_the_seed),
        cmocka_unit_test(impossible_sizes_are_refused),
        cmocka_unit_test(report_json_names_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
