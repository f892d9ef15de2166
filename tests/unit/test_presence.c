/* Unit tests for the presence roster: the counts, pages, typing throttle and
 * user queries must read the same whether a channel holds one client (kept
 * inline) or several (in maps), across the move from one to the other and
 * back down, and under allocation failure nothing is lost or leaked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker/presence.h"
#include "util/mem.h"
#include "util/sbuf.h"

static void expect_stats(presence *p, const char *ch, uint64_t clients, uint64_t users)
{
    uint64_t c, u;
    presence_stats(p, "t", ch, &c, &u);
    assert_int_equal(c, clients);
    assert_int_equal(u, users);
}

/* All pages of the roster, concatenated, with the entry count. */
static uint32_t roster(presence *p, const char *ch, uint32_t limit, sbuf *out)
{
    uint32_t total = 0, n;
    uint64_t cursor = 0;
    do {
        cursor = presence_page(p, "t", ch, cursor, limit, out, &n);
        if (n) sbuf_putc(out, '|');
        total += n;
    } while (cursor);
    return total;
}

static void one_client_then_many_then_one(void **state)
{
    presence *p = presence_new();
    assert_non_null(p);
    assert_int_equal(presence_add(p, "t", "c", "cl1", "alice", "{\"n\":1}", 100), 1);
    assert_int_equal(presence_add(p, "t", "c", "cl1", "alice", NULL, 200), 0);
    expect_stats(p, "c", 1, 1);
    assert_true(presence_has_user(p, "t", "c", "alice"));
    assert_false(presence_has_user(p, "t", "c", "bob"));
    assert_true(presence_typing_allowed(p, "t", "c", "alice", 1000, 500));
    assert_false(presence_typing_allowed(p, "t", "c", "bob", 1000, 500));

    sbuf b;
    sbuf_init(&b);
    assert_int_equal(roster(p, "c", 10, &b), 1);
    assert_string_equal(
        b.data, "{\"client\":\"cl1\",\"user\":\"alice\",\"info\":{\"n\":1},\"since\":100}|");

    /* A second client of the same user and one of another: the first moves
     * into the maps and keeps its typing time. */
    assert_int_equal(presence_add(p, "t", "c", "cl2", "alice", NULL, 300), 1);
    assert_int_equal(presence_add(p, "t", "c", "cl3", "bob", NULL, 400), 1);
    expect_stats(p, "c", 3, 2);
    assert_false(presence_typing_allowed(p, "t", "c", "alice", 1200, 500));
    assert_true(presence_typing_allowed(p, "t", "c", "alice", 1500, 500));
    assert_true(presence_typing_allowed(p, "t", "c", "bob", 1200, 500));
    assert_int_equal(presence_entries(p), 3);

    sbuf_reset(&b);
    assert_int_equal(roster(p, "c", 1, &b), 3);
    assert_non_null(strstr(b.data, "\"client\":\"cl1\",\"user\":\"alice\",\"info\":{\"n\":1}"));
    assert_non_null(strstr(b.data, "\"client\":\"cl2\",\"user\":\"alice\",\"info\":null"));
    assert_non_null(strstr(b.data, "\"client\":\"cl3\",\"user\":\"bob\""));

    char **users;
    size_t n = presence_users(p, "t", "c", &users);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        pl_free(users[i]);
    pl_free(users);

    assert_int_equal(presence_remove(p, "t", "c", "cl1"), 1);
    assert_int_equal(presence_remove(p, "t", "c", "cl1"), 0);
    expect_stats(p, "c", 2, 2);
    assert_int_equal(presence_remove(p, "t", "c", "cl3"), 1);
    expect_stats(p, "c", 1, 1);
    assert_false(presence_has_user(p, "t", "c", "bob"));
    assert_int_equal(presence_remove(p, "t", "c", "cl2"), 1);
    expect_stats(p, "c", 0, 0);
    assert_int_equal(presence_entries(p), 0);

    /* The channel is gone: a new client starts a fresh roster of one. */
    assert_int_equal(presence_add(p, "t", "c", "cl4", "carol", NULL, 500), 1);
    n = presence_users(p, "t", "c", &users);
    assert_int_equal(n, 1);
    assert_string_equal(users[0], "carol");
    pl_free(users[0]);
    pl_free(users);
    assert_true(presence_typing_allowed(p, "t", "c", "carol", 2000, 500));

    sbuf_release(&b);
    presence_free(p); /* frees the inline client too (ASan checks) */
}

static void channels_listing_counts_both_kinds(void **state)
{
    presence *p = presence_new();
    assert_int_equal(presence_add(p, "t", "solo", "a", "u1", NULL, 1), 1);
    assert_int_equal(presence_add(p, "t", "pair", "b", "u1", NULL, 1), 1);
    assert_int_equal(presence_add(p, "t", "pair", "c", "u2", NULL, 1), 1);
    assert_int_equal(presence_add(p, "other", "solo", "d", "u1", NULL, 1), 1);
    sbuf b;
    sbuf_init(&b);
    uint32_t n;
    assert_int_equal(presence_channels(p, "t", NULL, 0, 10, &b, &n), 0);
    assert_int_equal(n, 2);
    assert_non_null(strstr(b.data, "{\"channel\":\"solo\",\"clients\":1,\"users\":1}"));
    assert_non_null(strstr(b.data, "{\"channel\":\"pair\",\"clients\":2,\"users\":2}"));
    sbuf_release(&b);
    presence_free(p);
}

/* Allocation failures at every step of adding a second and third client:
 * each add either lands whole or leaves the roster as it was. */
static void allocation_failures_leave_roster_whole(void **state)
{
    for (int fail = 0; fail < 12; fail++) {
        presence *p = presence_new();
        assert_int_equal(presence_add(p, "t", "c", "a", "u1", NULL, 1), 1);
        pl_mem_fail_after(fail);
        int r2 = presence_add(p, "t", "c", "b", "u2", NULL, 2);
        int r3 = presence_add(p, "t", "c", "c", "u1", NULL, 3);
        pl_mem_fail_after(-1);
        uint64_t clients, users;
        presence_stats(p, "t", "c", &clients, &users);
        assert_int_equal(clients, 1 + (r2 == 1) + (r3 == 1));
        assert_int_equal(users, 1 + (r2 == 1));
        assert_int_equal(presence_entries(p), clients);
        assert_true(presence_has_user(p, "t", "c", "u1"));
        presence_free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_client_then_many_then_one),
        cmocka_unit_test(channels_listing_counts_both_kinds),
        cmocka_unit_test(allocation_failures_leave_roster_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
