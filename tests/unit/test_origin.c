/* Unit tests for util/origin: one table of (pattern, origin, expected) rows
 * covering exact origins, port and host wildcards, schemes, case, default
 * ports, trailing slashes, "null", overlong and hostile input; then which
 * patterns the configuration accepts, and lists of patterns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/origin.h"

static const struct {
    const char *pat, *origin;
    int want;
} match_rows[] = {
    /* exact */
    {"https://app.example.com", "https://app.example.com", 1},
    {"https://app.example.com", "https://app.example.org", 0},
    {"https://app.example.com", "https://other.example.com", 0},
    {"https://app.example.com", "https://app.example.com.evil.example", 0},
    {"https://app.example.com", "https://evilapp.example.com", 0},
    {"https://app.example.com", "https://app.example.co", 0},
    /* scheme mismatch */
    {"https://app.example.com", "http://app.example.com", 0},
    {"http://localhost:*", "https://localhost:5173", 0},
    {"http://localhost:*", "ws://localhost:5173", 0},
    /* ports */
    {"https://app.example.com", "https://app.example.com:8443", 0},
    {"https://app.example.com:8443", "https://app.example.com:8443", 1},
    {"https://app.example.com:8443", "https://app.example.com:8444", 0},
    {"https://app.example.com:8443", "https://app.example.com", 0},
    {"https://app.example.com", "https://app.example.com:443", 1},
    {"https://app.example.com:443", "https://app.example.com", 1},
    {"http://app.example.com", "http://app.example.com:80", 1},
    {"http://app.example.com", "http://app.example.com:443", 0},
    {"http://localhost:*", "http://localhost:5173", 1},
    {"http://localhost:*", "http://localhost:1", 1},
    {"http://localhost:*", "http://localhost:65535", 1},
    {"http://localhost:*", "http://localhost", 1},
    {"http://localhost:*", "http://localhost:65536", 0},
    {"http://localhost:*", "http://localhost:0", 0},
    {"http://localhost:*", "http://localhost:05173", 0},
    {"http://localhost:*", "http://localhost:", 0},
    {"http://localhost:*", "http://localhost:51x3", 0},
    {"http://localhost:*", "http://localhost.evil.example:5173", 0},
    {"http://localhost:*", "http://127.0.0.1:5173", 0},
    {"http://127.0.0.1:*", "http://127.0.0.1:5173", 1},
    {"http://[::1]:*", "http://[::1]:3000", 1},
    {"http://[::1]:*", "http://[::2]:3000", 0},
    /* host wildcard: one or more labels before the rest */
    {"https://*.example.com", "https://app.example.com", 1},
    {"https://*.example.com", "https://a.b.example.com", 1},
    {"https://*.example.com", "https://example.com", 0},
    {"https://*.example.com", "https://.example.com", 0},
    {"https://*.example.com", "https://evilexample.com", 0},
    {"https://*.example.com", "https://app.example.com.evil.example", 0},
    {"https://*.example.com", "https://app.example.com:8443", 0},
    {"https://*.example.com:*", "https://app.example.com:8443", 1},
    {"https://*.example.com", "http://app.example.com", 0},
    /* case */
    {"https://app.example.com", "HTTPS://APP.Example.COM", 1},
    {"HTTPS://*.EXAMPLE.com", "https://app.example.com", 1},
    /* trailing slash, paths, user info, queries, fragments */
    {"https://app.example.com", "https://app.example.com/", 0},
    {"https://app.example.com", "https://app.example.com/path", 0},
    {"https://app.example.com", "https://user@app.example.com", 0},
    {"https://app.example.com", "https://app.example.com?x", 0},
    {"https://app.example.com", "https://app.example.com#x", 0},
    {"*", "https://app.example.com/", 0},
    /* "null" (sandboxed frames, file: pages) only by "*" */
    {"https://app.example.com", "null", 0},
    {"http://localhost:*", "null", 0},
    {"*", "null", 1},
    {"*", "NULL", 0},
    /* any */
    {"*", "https://anything.example", 1},
    {"*", "http://localhost:5173", 1},
    {"*", "", 0},
    {"*", "not an origin", 0},
    /* hostile */
    {"https://app.example.com", "", 0},
    {"https://app.example.com", "https://", 0},
    {"https://app.example.com", "https:/app.example.com", 0},
    {"https://app.example.com", "app.example.com", 0},
    {"https://app.example.com", " https://app.example.com", 0},
    {"https://app.example.com", "https://app.example.com ", 0},
    {"https://app.example.com", "https://app.example.com\r\nX: y", 0},
    {"https://app.example.com", "https://app..example.com", 0},
    {"https://app.example.com", "https://app.exa*mple.com", 0},
    {"https://*.example.com", "https://*.example.com", 0},
    {"http://localhost:*", "http://localhost:*", 0},
    {"https://app.example.com", "https://app.example.com\x80", 0},
    {"https://app.example.com", "https://[::1", 0},
    {"https://app.example.com", "https://app.example.com:443:443", 0},
    /* an invalid pattern matches nothing */
    {"https://app.example.com/", "https://app.example.com", 0},
    {"", "https://app.example.com", 0},
    {"*.example.com", "https://app.example.com", 0},
};

static void test_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(match_rows) / sizeof(match_rows[0]); i++) {
        const char *p = match_rows[i].pat, *o = match_rows[i].origin;
        int got = origin_match(p, strlen(p), o, strlen(o));
        if (got != match_rows[i].want)
            fail_msg("row %zu: pattern '%s' origin '%s': got %d, want %d", i, p, o, got,
                     match_rows[i].want);
    }
}

/* Lengths are counted, not NUL-terminated: bytes past len never count. */
static void test_counted(void **state)
{
    (void)state;
    const char *o = "https://app.example.com.evil.example";
    assert_int_equal(origin_match("https://app.example.com", 23, o, 23), 1);
    assert_int_equal(origin_match("https://app.example.com", 23, o, strlen(o)), 0);
    const char nul[] = "https://app.example.com\0x";
    assert_int_equal(origin_match("https://app.example.com", 23, nul, sizeof(nul) - 1), 0);
}

static void test_overlong(void **state)
{
    (void)state;
    char o[ORIGIN_MAX + 40];
    size_t n = (size_t)snprintf(o, sizeof(o), "https://");
    while (n < ORIGIN_MAX + 20) {
        memcpy(o + n, "a.", 2);
        n += 2;
    }
    memcpy(o + n, "example.com", 12);
    n += 11;
    assert_int_equal(origin_match("https://*.example.com", 21, o, n), 0);
    assert_int_equal(origin_match("*", 1, o, n), 0);
    assert_non_null(origin_pattern_check(o, n));
    /* A 64-character label is over the DNS limit. */
    char l[100] = "https://";
    memset(l + 8, 'a', 64);
    memcpy(l + 72, ".example.com", 13);
    assert_int_equal(origin_match("https://*.example.com", 21, l, strlen(l)), 0);
    memcpy(l + 71, ".example.com", 13); /* 63 is fine */
    assert_int_equal(origin_match("https://*.example.com", 21, l, strlen(l)), 1);
}

static void test_pattern_check(void **state)
{
    (void)state;
    static const char *const good[] = {
        "*",
        "https://app.example.com",
        "http://localhost:*",
        "http://127.0.0.1:*",
        "https://*.example.com",
        "https://*.example.com:*",
        "https://app.example.com:8443",
        "http://[::1]:*",
        "HTTPS://App.Example.com",
        "tauri://localhost",
        "chrome-extension://abcdefghijklmnop",
    };
    static const char *const bad[] = {
        "",
        "null",
        "**",
        "https://",
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://app.example.com:",
        "https://app.example.com:0",
        "https://app.example.com:65536",
        "https://app.example.com:8x",
        "https://app.*.com",
        "https://*",
        "https://*.",
        "https://**.example.com",
        "https://a*.example.com",
        "http://*:3000",
        "https://user@app.example.com",
        "https://app.example.com ",
        "*://app.example.com",
        "https://app.example.com?",
        "http://[::1",
        "https://app_example.com",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (origin_pattern_check(good[i], strlen(good[i])))
            fail_msg("'%s' refused: %s", good[i], origin_pattern_check(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (!origin_pattern_check(bad[i], strlen(bad[i]))) fail_msg("'%s' accepted", bad[i]);
    assert_non_null(strstr(origin_pattern_check("https://a.example/", 18), "'/'"));
    assert_non_null(strstr(origin_pattern_check("null", 4), "null"));
}

static void test_allowed_list(void **state)
{
    (void)state;
    char *dev[] = {"http://localhost:*", "http://127.0.0.1:*"};
    const char *o = "http://localhost:5173";
    assert_int_equal(origin_allowed(dev, 2, o, strlen(o)), 1);
    o = "http://127.0.0.1:8080";
    assert_int_equal(origin_allowed(dev, 2, o, strlen(o)), 1);
    o = "https://evil.example";
    assert_int_equal(origin_allowed(dev, 2, o, strlen(o)), 0);
    assert_int_equal(origin_allowed(NULL, 0, o, strlen(o)), 0);
    char *any[] = {"https://app.example.com", "*"};
    assert_int_equal(origin_allowed(any, 2, o, strlen(o)), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),  cmocka_unit_test(test_counted),
        cmocka_unit_test(test_overlong),     cmocka_unit_test(test_pattern_check),
        cmocka_unit_test(test_allowed_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
