/* Unit tests for SSE stream cursors: encode/parse round trips, empty
 * entries, the older CHANNEL@OFFSET form, entry counts that differ from the
 * stream's channels, the length bound and malformed values (each leaves
 * every channel without a position). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/sse_cursor.h"

static const char *const CH3[] = {"chat:a", "chat:b@x", "plain"};

static sse_pos at(const char *epoch, uint64_t off)
{
    sse_pos p = {.offset = off, .known = 1};
    snprintf(p.epoch, sizeof(p.epoch), "%s", epoch);
    return p;
}

static size_t parse(const char *v, sse_pos *pos)
{
    return sse_cursor_parse(v, strlen(v), CH3, 3, pos);
}

static void assert_none(const sse_pos *pos, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pos[i].known, 0);
}

static void test_encode(void **state)
{
    (void)state;
    sse_pos pos[3] = {at("k3f9a0x2", 42), {0}, at("00000000", 0)};
    char out[SSE_CURSOR_MAX_LEN];
    size_t n = sse_cursor_encode(pos, 3, out, sizeof(out));
    assert_string_equal(out, "v1:k3f9a0x2.42,,00000000.0");
    assert_int_equal(n, strlen(out));
    assert_int_equal(sse_cursor_encode(pos, 1, out, sizeof(out)), 14);
    assert_string_equal(out, "v1:k3f9a0x2.42");
    assert_int_equal(sse_cursor_encode(pos, 0, out, sizeof(out)), 3);
    /* Too small or too many: 0 and "". */
    assert_int_equal(sse_cursor_encode(pos, 3, out, 10), 0);
    assert_string_equal(out, "");
    assert_int_equal(sse_cursor_encode(pos, SSE_CURSOR_MAX_CHANNELS + 1, out, sizeof(out)), 0);
}

static void test_round_trip_max(void **state)
{
    (void)state;
    sse_pos pos[SSE_CURSOR_MAX_CHANNELS], back[SSE_CURSOR_MAX_CHANNELS];
    const char *chans[SSE_CURSOR_MAX_CHANNELS];
    for (int i = 0; i < SSE_CURSOR_MAX_CHANNELS; i++) {
        pos[i] = at("zzzzzzzz", UINT64_MAX - (uint64_t)i);
        chans[i] = "c";
    }
    char out[SSE_CURSOR_MAX_LEN];
    size_t n = sse_cursor_encode(pos, SSE_CURSOR_MAX_CHANNELS, out, sizeof(out));
    assert_true(n > 0 && n < sizeof(out));
    assert_int_equal(sse_cursor_parse(out, n, chans, SSE_CURSOR_MAX_CHANNELS, back),
                     SSE_CURSOR_MAX_CHANNELS);
    assert_memory_equal(pos, back, sizeof(pos));
}

static void test_parse(void **state)
{
    (void)state;
    sse_pos pos[3];
    assert_int_equal(parse("v1:k3f9a0x2.42,,00000000.7", pos), 2);
    assert_string_equal(pos[0].epoch, "k3f9a0x2");
    assert_int_equal(pos[0].offset, 42);
    assert_int_equal(pos[1].known, 0);
    assert_string_equal(pos[2].epoch, "00000000");
    assert_int_equal(pos[2].offset, 7);
    /* The unchecked epoch of a channel resumed from the older form. */
    assert_int_equal(parse("v1:*.5", pos), 1);
    assert_string_equal(pos[0].epoch, "*");
    assert_int_equal(pos[0].offset, 5);
}

static void test_counts(void **state)
{
    (void)state;
    sse_pos pos[3];
    assert_int_equal(parse("v1:aaaaaaaa.1", pos), 1); /* missing: no position */
    assert_int_equal(pos[0].offset, 1);
    assert_none(pos + 1, 2);
    assert_int_equal(parse("v1:aaaaaaaa.1,bbbbbbbb.2,cccccccc.3,dddddddd.4", pos), 3);
    assert_string_equal(pos[2].epoch, "cccccccc");
    assert_int_equal(pos[2].offset, 3);
}

static void test_legacy(void **state)
{
    (void)state;
    sse_pos pos[3];
    assert_int_equal(parse("chat:b@x@12", pos), 1); /* the last '@' splits */
    assert_int_equal(pos[0].known, 0);
    assert_int_equal(pos[1].offset, 12);
    assert_string_equal(pos[1].epoch, "*");
    assert_int_equal(pos[2].known, 0);
    assert_int_equal(parse("other@12", pos), 0);
    assert_int_equal(parse("chat:a@", pos), 0);
    assert_int_equal(parse("chat:a@1x", pos), 0);
    assert_int_equal(parse("chat:a@99999999999999999999", pos), 0);
    assert_none(pos, 3);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "garbage",
        "v2:aaaaaaaa.1",
        "v1:aaaaaaa.1",
        "v1:aaaaaaaaa.1",
        "v1:AAAAAAAA.1",
        "v1:aaaaaaaa.",
        "v1:aaaaaaaa",
        "v1:aaaaaaaa.-1",
        "v1:aaaaaaaa.1x",
        "v1:aaaaaaaa.18446744073709551616",
        "v1:aaaaaaaa.1,zz",
        "v1:**.1",
        "v1:aaaaaaaa.1,,,,,,,,,,,,,,,,",
        "v1:.1",
    };
    sse_pos pos[3];
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        memset(pos, 0xab, sizeof(pos));
        assert_int_equal(parse(bad[i], pos), 0);
        assert_none(pos, 3);
    }
    /* Over the length bound, even if well formed up to there. */
    char big[SSE_CURSOR_MAX_LEN + 20];
    memset(big, '0', sizeof(big));
    memcpy(big, "v1:aaaaaaaa.", 12);
    assert_int_equal(sse_cursor_parse(big, sizeof(big), CH3, 3, pos), 0);
    assert_int_equal(sse_cursor_parse(NULL, 0, CH3, 3, pos), 0);
    /* A NUL inside the value is just a bad byte. */
    assert_int_equal(sse_cursor_parse("v1:aaaa\0aaa.1", 13, CH3, 3, pos), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode), cmocka_unit_test(test_round_trip_max),
        cmocka_unit_test(test_parse),  cmocka_unit_test(test_counts),
        cmocka_unit_test(test_legacy), cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
