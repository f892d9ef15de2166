/* Unit tests for the pure pieces of `parley bench`: the latency histogram's
 * percentile math, loss/dup/reorder accounting, the Parley line scanner,
 * the NATS protocol reader, the WebSocket handshake check and the
 * Prometheus and /proc probes. Hostile and oversized input included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/bench_int.h"
#include "cli/bench_nats.h"
#include "cli/bench_scan.h"
#include "cli/bench_stats.h"
#include "cli/bench_verify.h"
#include "cli/bench_ws.h"
#include "net/ws.h"
#include "util/mem.h"
#include "util/status.h"

/* ---------------------------------------------------------------- histogram */

static void hist_index_is_monotonic_and_tight(void **state)
{
    for (uint64_t v = 0; v < 200000; v += 7) {
        size_t i = bench_hist_index(v);
        assert_true(i < BENCH_HIST_BUCKETS);
        assert_true(bench_hist_upper(i) >= v);
        if (i > 0) assert_true(bench_hist_upper(i - 1) < v);
        /* relative width under 1/64 */
        assert_true((double)(bench_hist_upper(i) - v) <= (double)v / 64.0 + 1);
    }
    assert_int_equal(bench_hist_index(63), 63);
    assert_int_equal(bench_hist_index(64), 64);
    assert_true(bench_hist_index(UINT64_MAX) < BENCH_HIST_BUCKETS);
    assert_true(bench_hist_upper(bench_hist_index(UINT64_MAX)) == UINT64_MAX);
    for (int e = 6; e < 64; e++) {
        uint64_t v = UINT64_C(1) << e;
        assert_true(bench_hist_index(v) > bench_hist_index(v - 1));
    }
}

static void hist_quantiles(void **state)
{
    bench_hist *h = malloc(sizeof(*h));
    bench_hist_init(h);
    assert_int_equal(bench_hist_quantile(h, 0.5), 0);
    /* 1..10000 us in ns: p50 = 5000us, p99 = 9900us within 1/64. */
    for (uint64_t i = 1; i <= 10000; i++)
        bench_hist_record(h, i * 1000);
    assert_int_equal(h->count, 10000);
    assert_int_equal(h->min, 1000);
    assert_int_equal(h->max, 10000000);
    double p50 = (double)bench_hist_quantile(h, 0.5);
    double p99 = (double)bench_hist_quantile(h, 0.99);
    double p999 = (double)bench_hist_quantile(h, 0.999);
    assert_true(p50 >= 5000000 && p50 <= 5000000 * (1 + 1.0 / 64));
    assert_true(p99 >= 9900000 && p99 <= 9900000 * (1 + 1.0 / 64));
    assert_true(p999 >= 9990000 && p999 <= 10000000);
    assert_int_equal(bench_hist_quantile(h, 1.0), 10000000);
    assert_int_equal(bench_hist_quantile(h, 0.0), 1000);

    /* Merge doubles counts and keeps the extremes. */
    bench_hist *g = malloc(sizeof(*g));
    bench_hist_init(g);
    bench_hist_record(g, 7);
    bench_hist_merge(h, g);
    assert_int_equal(h->count, 10001);
    assert_int_equal(h->min, 7);
    assert_int_equal(bench_hist_quantile(h, 0.00001), 7);
    free(g);
    free(h);
}

static void hist_single_value_is_exact(void **state)
{
    bench_hist *h = malloc(sizeof(*h));
    bench_hist_init(h);
    bench_hist_record(h, 123456789);
    /* Bucket bounds are clamped to [min, max]. */
    assert_int_equal(bench_hist_quantile(h, 0.5), 123456789);
    assert_int_equal(bench_hist_quantile(h, 0.999), 123456789);
    free(h);
}

/* ----------------------------------------------------------------- sequence */

static void seq_in_order(void **state)
{
    bench_seq s;
    bench_seq_init(&s, 10);
    for (uint64_t i = 11; i <= 1000; i++)
        assert_int_equal(bench_seq_add(&s, i), 0);
    assert_int_equal(s.next, 1001);
    assert_int_equal(s.unique, 990);
    assert_int_equal(s.dups + s.reorder + s.invalid, 0);
    assert_int_equal(bench_seq_missing(&s, 1000), 0);
    assert_int_equal(bench_seq_missing(&s, 1005), 5);
    assert_int_equal(bench_seq_missing(&s, 5), 0);
    bench_seq_release(&s);
}

static void seq_loss_dup_reorder(void **state)
{
    bench_seq s;
    bench_seq_init(&s, 0);
    uint64_t order[] = {1, 2, 4, 3, 3, 6, 8, 7, 8, 1};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        bench_seq_add(&s, order[i]);
    assert_int_equal(s.dups, 3);    /* 3, 8, 1 again */
    assert_int_equal(s.reorder, 2); /* 3 after 4, 7 after 8 */
    assert_int_equal(s.next, 5);    /* 5 missing */
    assert_int_equal(bench_seq_missing(&s, 8), 1);
    assert_int_equal(bench_seq_missing(&s, 10), 3);
    assert_true(bench_seq_has(&s, 7));
    assert_false(bench_seq_has(&s, 5));
    assert_false(bench_seq_has(&s, 0));
    assert_false(bench_seq_has(&s, 1u << 30));
    bench_seq_release(&s);
}

static void seq_hostile_values(void **state)
{
    bench_seq s;
    bench_seq_init(&s, 100);
    bench_seq_add(&s, 100); /* at base: not expected */
    bench_seq_add(&s, 0);
    bench_seq_add(&s, UINT64_MAX); /* would need a huge bitmap */
    bench_seq_add(&s, 100 + BENCH_SEQ_MAX_SPAN + 1);
    assert_int_equal(s.invalid, 4);
    assert_int_equal(s.unique, 0);
    assert_true(s.nwords * 8 <= 1024); /* nothing was allocated for them */
    /* The largest allowed span still works. */
    assert_int_equal(bench_seq_add(&s, 100 + 64 * 1000), 0);
    assert_int_equal(bench_seq_missing(&s, 100 + 64 * 1000), 64 * 1000 - 1);
    bench_seq_release(&s);
}

static void seq_survives_oom(void **state)
{
    bench_seq s;
    bench_seq_init(&s, 0);
    pl_mem_fail_after(0);
    assert_int_equal(bench_seq_add(&s, 5), -1);
    pl_mem_fail_after(-1);
    assert_int_equal(s.invalid, 1);
    assert_int_equal(bench_seq_add(&s, 5), 0);
    assert_int_equal(s.unique, 1);
    bench_seq_release(&s);
}

/* ------------------------------------------------------------------ scanner */

static bench_line scan(bench_scanner *sc, const char *s)
{
    bench_line l;
    bench_scan(sc, s, strlen(s), &l);
    return l;
}

static void scan_pub_push(void **state)
{
    bench_scanner *sc = bench_scanner_new();
    bench_line l = scan(sc, "{\"push\":\"pub\",\"channel\":\"room:42\",\"offset\":18,"
                            "\"epoch\":\"k3f9\",\"id\":\"01JD\",\"ts\":1732282000123,"
                            "\"data\":{\"p\":\"x}\\\"{\",\"t\":123456789,\"s\":7,"
                            "\"nested\":{\"t\":1}},\"info\":{\"user\":\"a\"}}");
    assert_int_equal(l.kind, BENCH_PUB);
    assert_int_equal(l.pub.offset, 18);
    assert_int_equal(l.pub.t, 123456789);
    assert_int_equal(l.pub.s, 7);
    assert_string_equal(l.epoch, "k3f9");
    assert_int_equal(l.channel_len, 7);
    assert_memory_equal(l.channel, "room:42", 7);
    assert_int_equal(l.id, 0);

    /* Field order does not matter; data that is not ours reads as 0. */
    l = scan(sc, "{\"data\":[1,2,{\"t\":3}],\"offset\":0,\"push\":\"pub\"}");
    assert_int_equal(l.kind, BENCH_PUB);
    assert_int_equal(l.pub.offset, 0);
    assert_int_equal(l.pub.t, 0);
    l = scan(sc, "{\"push\":\"pub\",\"data\":{\"t\":-5,\"s\":1.5}}");
    assert_int_equal(l.kind, BENCH_PUB);
    assert_int_equal(l.pub.t, 0);
    assert_int_equal(l.pub.s, 0);
    bench_scanner_free(sc);
}

static void scan_other_pushes(void **state)
{
    bench_scanner *sc = bench_scanner_new();
    bench_line l =
        scan(sc, "{\"push\":\"gap\",\"channel\":\"c\",\"epoch\":\"e\",\"from\":3,\"to\":9}");
    assert_int_equal(l.kind, BENCH_GAP);
    assert_int_equal(l.from, 3);
    assert_int_equal(l.to, 9);
    assert_int_equal(scan(sc, "{\"push\":\"ping\"}").kind, BENCH_PING);
    l = scan(sc, "{\"push\":\"disconnect\",\"code\":4001,\"reason\":\"slow\",\"reconnect\":true}");
    assert_int_equal(l.kind, BENCH_DISCONNECT);
    assert_int_equal(l.code, 4001);
    assert_int_equal(scan(sc, "{\"push\":\"join\",\"channel\":\"c\",\"info\":{}}").kind,
                     BENCH_PUSH_OTHER);
    bench_scanner_free(sc);
}

static void scan_replies(void **state)
{
    bench_scanner *sc = bench_scanner_new();
    bench_line l =
        scan(sc, "{\"id\":42,\"result\":{\"id\":\"01J\",\"offset\":77,\"epoch\":\"ep\"}}");
    assert_int_equal(l.kind, BENCH_RESULT);
    assert_int_equal(l.id, 42);
    assert_true(l.has_offset);
    assert_int_equal(l.offset, 77);
    assert_string_equal(l.epoch, "ep");

    l = scan(sc, "{\"result\":{\"offset\":5,\"epoch\":\"e\",\"recovered\":true,\"more\":false,"
                 "\"pubs\":[{\"offset\":4,\"data\":{\"t\":1,\"s\":2}},"
                 "{\"offset\":5,\"epoch\":\"e\",\"data\":\"text\"}]},\"id\":3}");
    assert_int_equal(l.kind, BENCH_RESULT);
    assert_int_equal(l.id, 3);
    assert_true(l.recovered);
    assert_false(l.more);
    assert_int_equal(l.npubs, 2);
    assert_int_equal(l.pubs[0].offset, 4);
    assert_int_equal(l.pubs[0].t, 1);
    assert_int_equal(l.pubs[0].s, 2);
    assert_int_equal(l.pubs[1].offset, 5);
    assert_int_equal(l.pubs[1].t, 0);

    l = scan(sc, "{\"id\":9,\"error\":{\"code\":103,\"message\":\"permission denied\","
                 "\"temporary\":false}}");
    assert_int_equal(l.kind, BENCH_ERROR);
    assert_int_equal(l.id, 9);
    assert_int_equal(l.code, 103);
    l = scan(sc, "{\"error\":{\"code\":107,\"message\":\"bad\"}}");
    assert_int_equal(l.kind, BENCH_ERROR);
    assert_int_equal(l.id, 0);
    bench_scanner_free(sc);
}

static void scan_large_recovery(void **state)
{
    /* 1000 recovered pubs force the token and pub arrays to grow. */
    bench_scanner *sc = bench_scanner_new();
    size_t cap = 1000 * 80 + 100;
    char *s = malloc(cap);
    size_t n = (size_t)sprintf(s, "{\"id\":2,\"result\":{\"recovered\":true,\"pubs\":[");
    for (int i = 1; i <= 1000; i++)
        n += (size_t)sprintf(s + n, "%s{\"offset\":%d,\"data\":{\"t\":%d,\"s\":%d}}",
                             i > 1 ? "," : "", i, i * 10, i);
    n += (size_t)sprintf(s + n, "],\"more\":true}}");
    bench_line l;
    bench_scan(sc, s, n, &l);
    assert_int_equal(l.kind, BENCH_RESULT);
    assert_int_equal(l.npubs, 1000);
    assert_true(l.more);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(l.pubs[i].offset, i + 1);
        assert_int_equal(l.pubs[i].t, (i + 1) * 10);
    }
    free(s);
    bench_scanner_free(sc);
}

static void scan_rejects_malformed(void **state)
{
    static const char *bad[] = {
        "",
        "   ",
        "[]",
        "42",
        "\"push\"",
        "{",
        "{\"push\":\"pub\"",
        "{\"push\":\"pub\"}{\"push\":\"pub\"}",
        "{\"push\":1}",
        "{\"push\":\"pub\",\"offset\":\"18\"}",
        "{\"push\":\"pub\",\"offset\":-1}",
        "{\"push\":\"pub\",\"offset\":1e3}",
        "{\"push\":\"pub\",\"offset\":99999999999999999999999}",
        "{\"push\":\"pub\",\"channel\":5}",
        ("{\"push\":\"pub\",\"epoch\":\"" /* longer than BENCH_EPOCH_MAX */
         "0123456789012345678901234567890123456789012345678901234567890123456789\"}"),
        "{\"id\":\"1\",\"result\":{}}",
        "{\"result\":{}}",
        "{\"id\":1,\"result\":{\"recovered\":\"yes\"}}",
        "{\"id\":1,\"result\":{\"pubs\":{}}}",
        "{\"id\":1,\"result\":{\"pubs\":[1]}}",
        "{\"id\":1,\"result\":{\"pubs\":[{\"offset\":true}]}}",
        "{\"id\":1,\"result\":[]}",
        "{\"id\":1,\"error\":\"x\"}",
        "{\"id\":1,\"error\":{\"code\":1000000}}",
        "{1:2}",
        "{\"a\" \"b\"}",
        "{\"nothing\":true}",
    };
    bench_scanner *sc = bench_scanner_new();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bench_line l = scan(sc, bad[i]);
        if (l.kind != BENCH_BAD) fail_msg("accepted: %s (kind %d)", bad[i], l.kind);
    }
    bench_scanner_free(sc);
}

static void scan_deep_nesting_and_oversize(void **state)
{
    bench_scanner *sc = bench_scanner_new();
    /* Deep nesting is refused quickly by both paths (jsmn alone would take
     * quadratic time); 100 levels are still fine. */
    bench_line l;
    char *s;
    size_t n;
    for (int pass = 0; pass < 2; pass++) {
        size_t depth = pass ? 100 : 1000000;
        s = malloc(depth * 2 + 64);
        n = (size_t)sprintf(s, "{\"push\":\"pub\",\"offset\":1,\"data\":");
        memset(s + n, '[', depth);
        n += depth;
        memset(s + n, ']', depth);
        n += depth;
        s[n++] = '}';
        bench_scan(sc, s, n, &l);
        assert_int_equal(l.kind, pass ? BENCH_PUB : BENCH_BAD);
        if (pass) assert_int_equal(l.pub.offset, 1);
        free(s);
    }

    /* More tokens than the scanner will hold: the general path refuses
     * rather than growing forever; the fast path needs no tokens. */
    size_t count = (1u << 20) + 10;
    s = malloc(count * 2 + 64);
    n = (size_t)sprintf(s, "{\"push\":\"pub\",\"data\":[");
    for (size_t i = 0; i < count; i++) {
        s[n++] = '1';
        s[n++] = ',';
    }
    s[n - 1] = ']';
    s[n++] = '}';
    bench_scan(sc, s, n, &l);
    assert_int_equal(l.kind, BENCH_PUB);
    bench_scanner_set_fast(sc, false);
    bench_scan(sc, s, n, &l);
    assert_int_equal(l.kind, BENCH_BAD);
    free(s);
    bench_scanner_free(sc);
}

/* The fast path for pub pushes must agree with the jsmn path on every line
 * it accepts, and must accept the usual server shape. */
static void scan_fast_path_agrees(void **state)
{
    static const struct {
        const char *line;
        int fast; /* 1: the fast path must take it */
    } cases[] = {
        {"{\"push\":\"pub\",\"channel\":\"c\",\"offset\":5,\"epoch\":\"e\",\"id\":\"01J\","
         "\"ts\":17,\"data\":{\"t\":9,\"s\":3,\"p\":\"xx\"},\"info\":{\"user\":\"u\"}}",
         1},
        {" { \"push\" : \"pub\" , \"offset\" : 5 , \"data\" : { \"s\" : 3 } } ", 1},
        {"{\"push\":\"pub\",\"data\":{\"t\":\"9\",\"s\":[1,{\"a\":\"]}\"}],\"t\":4}}", 1},
        {"{\"push\":\"pub\",\"data\":{\"p\":\"a\\\"b\\\\\",\"t\":2}}", 1},
        {"{\"push\":\"pub\",\"data\":null,\"offset\":0}", 1},
        {"{\"push\":\"pub\",\"data\":{\"t\":1.5,\"s\":-2}}", 1},
        /* The server's exact layout, and near misses that leave it for the
         * general walk: whitespace, another order, no epoch, extra fields. */
        {"{\"push\":\"pub\",\"channel\":\"c\",\"offset\":5,\"id\":\"i\",\"ts\":1,\"data\":{\"t\":2,"
         "\"s\":3}}",
         1},
        {"{\"push\":\"pub\",\"channel\":\"c\",\"offset\":5,\"epoch\":\"e\",\"id\":\"i\",\"ts\":1,"
         "\"data\":{\"t\":2},\"info\":{\"client\":\"k\"},\"type\":\"x\"}",
         1},
        {"{\"push\":\"pub\",\"channel\":\"c\",\"offset\":0,\"id\":\"i\",\"ts\":1,\"data\":{\"t\":2}"
         ","
         "\"info\":{\"user\":\"u\"},\"class\":\"ephemeral\"}",
         1},
        {"{\"push\":\"pub\",\"channel\":\"c\",\"offset\":3,\"id\":\"i\",\"ts\":1,\"data\":{\"t\":2}"
         ","
         "\"class\":\"guaranteed\",\"attempt\":2}",
         1},
        {"{\"push\":\"pub\",\"channel\":\"c\",\"offset\":3,\"id\":\"i\",\"ts\":1,\"data\":{\"t\":2}"
         ","
         "\"class\":7}",
         0},
        {"{\"push\":\"pub\", \"channel\":\"c\",\"offset\":5,\"id\":\"i\",\"ts\":1,\"data\":7}", 1},
        {"{\"push\":\"pub\",\"channel\":\"c\",\"offset\":5,\"id\":\"i\",\"ts\":1,\"data\":{\"t\":2}"
         "}}",
         0},
        {"{\"push\":\"pub\",\"channel\":\"c\",\"offset\":5,\"id\":\"i\",\"ts\":1,\"data\":{\"t\":2}"
         ","
         "\"info\":{\"user\":\"u\"}",
         0},
        {"{\"push\":\"pub\",\"channel\":\"c\",\"offset\":5,\"id\":\"i\",\"ts\":1,\"data\":{\"t\":2}"
         ","
         "\"info\":{\"user\":3}}",
         0},
        {"{\"push\":\"pub\",\"channel\":\"c\",\"offset\":-5,\"id\":\"i\",\"ts\":1,\"data\":{}}", 0},
        {"{\"push\":\"pub\",\"offset\":5}x", 0},
        {"{\"push\":\"pub\",\"offset\":5,}", 0},
        {"{\"push\":\"pub\",\"offset\":\"5\"}", 0},
        {"{\"push\":\"pub\",\"data\":{\"t\":[1}}", 0},
        {"{\"push\":\"pub\",\"data\":{\"t\":1]}", 0},
        {"{\"push\":\"pub\",\"data\":{\"t\":1}", 0},
        {"{\"push\":\"gap\",\"from\":1,\"to\":2}", 0},
        {"{\"id\":1,\"result\":{\"offset\":1}}", 0},
        {"{\"push\":\"pub\",\"id\":7}", 0},
        {"{\"push\":\"pub\",\"channel\":\"a\nb\"}", 0},
    };
    bench_scanner *fast = bench_scanner_new();
    bench_scanner *slow = bench_scanner_new();
    bench_scanner_set_fast(slow, false);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bench_line a, b;
        const char *line = cases[i].line;
        bench_scan(fast, line, strlen(line), &a);
        bench_scan(slow, line, strlen(line), &b);
        if (cases[i].fast && a.kind != BENCH_PUB)
            fail_msg("fast path refused case %zu: %s", i, line);
        if (a.kind != b.kind || a.pub.offset != b.pub.offset || a.pub.t != b.pub.t ||
            a.pub.s != b.pub.s || strcmp(a.epoch, b.epoch) != 0 || a.channel_len != b.channel_len)
            fail_msg("paths disagree on case %zu: %s (kind %d vs %d)", i, line, a.kind, b.kind);
    }
    bench_scanner_free(fast);
    bench_scanner_free(slow);
}

/* The fast path finds string ends 8 bytes at a time: a quote, backslash
 * escape or control byte at every position of channel names from 0 to 40
 * bytes (across and at word boundaries, near the end of the line) must read
 * exactly as the general path reads it. */
static void scan_fast_path_strings_at_every_position(void **state)
{
    static const char *specials[] = {"\\\"", "\\\\", "\\n", "\\u00e9", "\x01",
                                     "\x1f", "\"",   "\\x", "\x7f",    "\xc3\xa9"};
    bench_scanner *fast = bench_scanner_new();
    bench_scanner *slow = bench_scanner_new();
    bench_scanner_set_fast(slow, false);
    /* The second template is the exact layout the server writes (the
     * quick path), the first is not (the general walk). */
    static const char *templates[] = {
        "{\"push\":\"pub\",\"channel\":\"%.*s%s%s\",\"offset\":%zu}",
        "{\"push\":\"pub\",\"channel\":\"%.*s%s%s\",\"offset\":%zu,\"epoch\":\"ab\",\"id\":\"x\","
        "\"ts\":1,\"data\":{\"t\":5,\"s\":6,\"p\":\"xx\"},\"info\":{\"user\":\"u\",\"client\":"
        "\"c\"}}",
    };
    char name[64], line[512];
    for (size_t tpl = 0; tpl < 2; tpl++) {
        for (size_t len = 0; len <= 40; len++) {
            for (size_t at = 0; at <= len; at++) {
                for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
                    memset(name, 'a', len);
                    name[len] = '\0';
                    int n = snprintf(line, sizeof(line), templates[tpl], (int)at, name,
                                     at < len ? specials[k] : "", name + at, len);
                    bench_line a, b;
                    bench_scan(fast, line, (size_t)n, &a);
                    bench_scan(slow, line, (size_t)n, &b);
                    if (a.kind != b.kind || a.channel_len != b.channel_len ||
                        a.pub.offset != b.pub.offset || a.pub.t != b.pub.t || a.pub.s != b.pub.s ||
                        strcmp(a.epoch, b.epoch) != 0)
                        fail_msg("paths disagree: %s (kind %d vs %d)", line, a.kind, b.kind);
                    /* A bare quote or a bad escape makes the line malformed;
                     * everything else is a pub (raw control bytes are left to
                     * the general path, which takes them as jsmn does). */
                    int valid = at == len || (k != 6 && k != 7);
                    if ((a.kind == BENCH_PUB) != valid)
                        fail_msg("case %zu at %zu: %s", k, at, line);
                    if (valid) assert_int_equal(a.pub.offset, len);
                    if (valid && tpl == 1) assert_int_equal(a.pub.t, 5);
                }
            }
        }
    }
    bench_scanner_free(fast);
    bench_scanner_free(slow);
}

/* The server's exact layout with every number field (offset, ts, t, s,
 * attempt) and every string field replaced in turn: digit runs around the
 * 8-digit steps and the 19/20-digit bounds, signs, fractions, exponents,
 * escapes, control and non-ASCII bytes. Every variant must read as the
 * general path reads it, and plain digits must give their value. */
static void scan_quick_path_fields(void **state)
{
    static const char *nums[] = {"0",
                                 "7",
                                 "00012",
                                 "1234567",
                                 "12345678",
                                 "123456789",
                                 "1234567812345678",
                                 "9999999999999999999",
                                 "18446744073709551615",
                                 "18446744073709551616",
                                 "123456789012345678901",
                                 "-1",
                                 "1e5",
                                 "1.5",
                                 "12a",
                                 "",
                                 "\"5\"",
                                 "null",
                                 "1234567a9"};
    static const char *strs[] = {"\"\"",
                                 "\"plain\"",
                                 "\"a\\\"b\"",
                                 "\"\\u00e9\"",
                                 "\"\x01\"",
                                 "\"\xc3\xa9\"",
                                 "\"0123456789abcdef0123456789\"",
                                 "5",
                                 "\"open"};
    const char *tpl = "{\"push\":\"pub\",\"channel\":%s,\"offset\":%s,\"epoch\":%s,\"id\":%s,"
                      "\"ts\":%s,\"data\":{\"t\":%s,\"s\":%s,\"p\":%s},\"info\":{\"user\":%s,"
                      "\"client\":%s},\"class\":\"guaranteed\",\"attempt\":%s}";
    bench_scanner *fast = bench_scanner_new();
    bench_scanner *slow = bench_scanner_new();
    bench_scanner_set_fast(slow, false);
    char line[1024];
    size_t nn = sizeof(nums) / sizeof(nums[0]), ns = sizeof(strs) / sizeof(strs[0]);
    for (int field = 0; field < 11; field++) {
        bool is_num = field == 1 || field == 4 || field == 5 || field == 6 || field == 10;
        for (size_t k = 0; k < (is_num ? nn : ns); k++) {
            const char *f[11] = {"\"c\"", "5",      "\"e\"", "\"i\"", "1", "2",
                                 "3",     "\"xx\"", "\"u\"", "\"k\"", "4"};
            f[field] = is_num ? nums[k] : strs[k];
            int n = snprintf(line, sizeof(line), tpl, f[0], f[1], f[2], f[3], f[4], f[5], f[6],
                             f[7], f[8], f[9], f[10]);
            bench_line a, b;
            bench_scan(fast, line, (size_t)n, &a);
            bench_scan(slow, line, (size_t)n, &b);
            if (a.kind != b.kind || a.pub.offset != b.pub.offset || a.pub.t != b.pub.t ||
                a.pub.s != b.pub.s || a.channel_len != b.channel_len || strcmp(a.epoch, b.epoch))
                fail_msg("paths disagree: %s (kind %d vs %d)", line, a.kind, b.kind);
            if (field == 5 && k < 9) {
                uint64_t want = 0;
                assert_int_equal(bench_parse_u64(nums[k], strlen(nums[k]), &want), 0);
                assert_int_equal(a.kind, BENCH_PUB);
                assert_true(a.pub.t == want);
            }
        }
    }
    bench_scanner_free(fast);
    bench_scanner_free(slow);
}

static void scan_data_and_numbers(void **state)
{
    bench_scanner *sc = bench_scanner_new();
    bench_pub p;
    assert_int_equal(bench_scan_data(sc, "{\"t\":5,\"s\":6,\"p\":\"xx\"}", 22, &p), 0);
    assert_int_equal(p.t, 5);
    assert_int_equal(p.s, 6);
    assert_int_equal(bench_scan_data(sc, "[1]", 3, &p), -1);
    assert_int_equal(bench_scan_data(sc, "{\"t\":5", 6, &p), -1);
    assert_int_equal(bench_scan_data(sc, "", 0, &p), -1);

    /* Bare payloads (NATS) read the same through the one-pass walk and
     * through jsmn, valid or not. */
    static const char *payloads[] = {
        " {\"t\":5,\"s\":6,\"p\":\"a\\\"b\"} ",
        "{\"s\":[1,{\"t\":2}],\"t\":\"9\"}",
        "{}",
        "{\"t\":1.5,\"s\":-1}",
        "{\"t\":5}}",
        "{\"t\":5,}",
        "{\"t\":5} x",
        "{\"t\"}",
        "5",
        "{\"t\":18446744073709551616,\"s\":2}",
    };
    bench_scanner *slow = bench_scanner_new();
    bench_scanner_set_fast(slow, false);
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        bench_pub a, b;
        int ra = bench_scan_data(sc, payloads[i], strlen(payloads[i]), &a);
        int rb = bench_scan_data(slow, payloads[i], strlen(payloads[i]), &b);
        if (ra != rb || a.t != b.t || a.s != b.s)
            fail_msg("paths disagree on payload %zu: %s", i, payloads[i]);
    }
    bench_scanner_free(slow);
    bench_scanner_free(sc);

    uint64_t v;
    assert_int_equal(bench_parse_u64("18446744073709551615", 20, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(bench_parse_u64("18446744073709551616", 20, &v), -1);
    assert_int_equal(bench_parse_u64("", 0, &v), -1);
    assert_int_equal(bench_parse_u64("12a", 3, &v), -1);
    assert_int_equal(bench_parse_u64("007", 3, &v), 0);
    assert_int_equal(v, 7);
}

/* --------------------------------------------------------------------- NATS */

typedef struct nats_log {
    int msgs, pings, pongs, infos, errs;
    uint64_t last_sid;
    char last[256];
    size_t last_len;
} nats_log;

static void l_msg(void *ud, uint64_t sid, const char *p, size_t n)
{
    nats_log *l = ud;
    l->msgs++;
    l->last_sid = sid;
    l->last_len = n < sizeof(l->last) ? n : sizeof(l->last);
    memcpy(l->last, p, l->last_len);
}
static void l_ping(void *ud)
{
    ((nats_log *)ud)->pings++;
}
static void l_pong(void *ud)
{
    ((nats_log *)ud)->pongs++;
}
static void l_info(void *ud, const char *j, size_t n)
{
    ((nats_log *)ud)->infos++;
}
static void l_err(void *ud, const char *m, size_t n)
{
    ((nats_log *)ud)->errs++;
}
static const bench_nats_cb ncb = {l_msg, l_ping, l_pong, l_info, l_err};

static const char nats_stream[] = "INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n"
                                  "PING\r\n"
                                  "+OK\r\n"
                                  "MSG a.b 1 5\r\nhello\r\n"
                                  "MSG a.b 2 reply.to 7\r\nwo\r\nrld\r\n"
                                  "msg a.b 3 0\r\n\r\n"
                                  "PONG\r\n"
                                  "-ERR 'Slow Consumer'\r\n";

static void nats_whole_and_split(void **state)
{
    size_t len = sizeof(nats_stream) - 1;
    /* Every split point, and byte by byte, gives the same items. */
    for (size_t cut = 0; cut <= len; cut++) {
        bench_nats p;
        nats_log l;
        memset(&l, 0, sizeof(l));
        bench_nats_init(&p);
        assert_int_equal(bench_nats_feed(&p, nats_stream, cut, &ncb, &l), PL_OK);
        assert_int_equal(bench_nats_feed(&p, nats_stream + cut, len - cut, &ncb, &l), PL_OK);
        assert_int_equal(l.infos, 1);
        assert_int_equal(l.pings, 1);
        assert_int_equal(l.pongs, 1);
        assert_int_equal(l.msgs, 3);
        assert_int_equal(l.errs, 1);
        assert_int_equal(l.last_sid, 3);
        assert_int_equal(l.last_len, 0);
        assert_int_equal(p.len, 0);
        bench_nats_release(&p);
    }
    bench_nats p;
    nats_log l;
    memset(&l, 0, sizeof(l));
    bench_nats_init(&p);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(bench_nats_feed(&p, nats_stream + i, 1, &ncb, &l), PL_OK);
    assert_int_equal(l.msgs, 3);
    bench_nats_release(&p);

    /* Payload with CR LF inside is taken by length. */
    memset(&l, 0, sizeof(l));
    bench_nats_init(&p);
    assert_int_equal(bench_nats_feed(&p, "MSG x 9 7\r\nwo\r\nrld\r\n", 20, &ncb, &l), PL_OK);
    assert_int_equal(l.last_len, 7);
    assert_memory_equal(l.last, "wo\r\nrld", 7);
    bench_nats_release(&p);
}

static void nats_rejects_hostile(void **state)
{
    static const char *bad[] = {
        "BOGUS\r\n",
        "PING\n",
        "\r\n",
        "MSG a 1\r\n",
        "MSG a x 3\r\nabc\r\n",
        "MSG a 1 -3\r\nabc\r\n",
        "MSG a 1 3\r\nabcd\r\n", /* length lies */
        "MSG a 1 99999999999\r\n",
        "MSG a 1 b c 3\r\nabc\r\n",
        "PING extra\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bench_nats p;
        nats_log l;
        memset(&l, 0, sizeof(l));
        bench_nats_init(&p);
        int rc = bench_nats_feed(&p, bad[i], strlen(bad[i]), &ncb, &l);
        if (rc != PL_EINVAL) fail_msg("accepted: %s", bad[i]);
        /* A failed parser stays failed. */
        assert_int_equal(bench_nats_feed(&p, "PING\r\n", 6, &ncb, &l), PL_EINVAL);
        assert_int_equal(l.pings, 0);
        bench_nats_release(&p);
    }
    /* A control line that never ends is cut off at the limit. */
    bench_nats p;
    nats_log l;
    memset(&l, 0, sizeof(l));
    bench_nats_init(&p);
    char junk[1000];
    memset(junk, 'A', sizeof(junk));
    int rc = PL_OK;
    for (int i = 0; i < 10 && rc == PL_OK; i++)
        rc = bench_nats_feed(&p, junk, sizeof(junk), &ncb, &l);
    assert_int_equal(rc, PL_EINVAL);
    bench_nats_release(&p);
    /* The largest allowed payload is accepted, split across feeds. */
    size_t big = BENCH_NATS_MAX_PAYLOAD;
    char *msg = malloc(big + 64);
    int h = sprintf(msg, "MSG s 1 %zu\r\n", big);
    memset(msg + h, 'z', big);
    memcpy(msg + h + big, "\r\n", 2);
    bench_nats_init(&p);
    memset(&l, 0, sizeof(l));
    size_t total = (size_t)h + big + 2, half = total / 2;
    assert_int_equal(bench_nats_feed(&p, msg, half, &ncb, &l), PL_OK);
    assert_int_equal(bench_nats_feed(&p, msg + half, total - half, &ncb, &l), PL_OK);
    assert_int_equal(l.msgs, 1);
    bench_nats_release(&p);
    /* One byte more is refused before it is buffered. */
    h = sprintf(msg, "MSG s 1 %zu\r\n", big + 1);
    bench_nats_init(&p);
    assert_int_equal(bench_nats_feed(&p, msg, (size_t)h, &ncb, &l), PL_EINVAL);
    bench_nats_release(&p);
    free(msg);
}

/* ---------------------------------------------------------------- handshake */

static void ws_accept_rfc_example(void **state)
{
    char out[29];
    bench_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    char k1[25], k2[25];
    assert_int_equal(bench_ws_key(k1), 0);
    assert_int_equal(bench_ws_key(k2), 0);
    assert_int_equal(strlen(k1), 24);
    assert_string_not_equal(k1, k2);
}

static void ws_request_shape(void **state)
{
    sbuf b;
    sbuf_init(&b);
    bench_ws_request(&b, "127.0.0.1", 8080, "/ws", "parley.v1", "KEY");
    assert_non_null(strstr(b.data, "GET /ws HTTP/1.1\r\n"));
    assert_non_null(strstr(b.data, "Host: 127.0.0.1:8080\r\n"));
    assert_non_null(strstr(b.data, "Sec-WebSocket-Key: KEY\r\n"));
    assert_non_null(strstr(b.data, "Sec-WebSocket-Protocol: parley.v1\r\n"));
    assert_non_null(strstr(b.data, "Sec-WebSocket-Version: 13\r\n"));
    assert_true(b.len > 4 && memcmp(b.data + b.len - 4, "\r\n\r\n", 4) == 0);
    sbuf_reset(&b);
    bench_ws_request(&b, "h", 1, "/", NULL, "KEY");
    assert_null(strstr(b.data, "Protocol"));
    sbuf_release(&b);
}

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static int check(const char *resp, size_t *used, int *status)
{
    return bench_ws_check_response(resp, strlen(resp), KEY, used, status);
}

static void ws_response_checks(void **state)
{
    const char *good = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n"
                       "Sec-WebSocket-Protocol: parley.v1\r\n\r\n\x81\x02hi";
    size_t used = 0;
    int status = 0;
    assert_int_equal(check(good, &used, &status), PL_OK);
    assert_int_equal(status, 101);
    assert_int_equal(used, strlen(good) - 4); /* the frame bytes are left */

    /* Incomplete header block at every length. */
    for (size_t n = 0; n < strlen(good) - 4; n++)
        assert_int_equal(bench_ws_check_response(good, n, KEY, &used, NULL), PL_AGAIN);

    /* Header names are case-insensitive; Connection may be a list. */
    assert_int_equal(check("HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, "
                           "upgrade\r\nsec-websocket-accept: " ACCEPT "\r\n\r\n",
                           &used, NULL),
                     PL_OK);

    static const char *bad[] = {
        "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
        "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
        "garbage garbage\r\n\r\n",
        "HTTP/1.1 101 OK\r\nUpgrade websocket\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (check(bad[i], &used, &status) != PL_EINVAL) fail_msg("accepted response %zu", i);
    assert_int_equal(check(bad[0], &used, &status), PL_EINVAL);
    assert_int_equal(status, 200);

    /* An endless header block is refused at the limit. */
    size_t big = BENCH_WS_MAX_RESPONSE + 10;
    char *s = malloc(big);
    memset(s, 'a', big);
    assert_int_equal(bench_ws_check_response(s, big, KEY, &used, NULL), PL_EINVAL);
    free(s);
}

/* ------------------------------------------------------------------- probes */

/* Client frames: FIN, the opcode, the mask bit, the shortest length
 * encoding, the key most significant byte first, and a payload that
 * unmasks to the data; a control frame over 125 bytes is not written. */
static void ws_client_frames(void **state)
{
    static uint8_t data[70000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7);
    size_t lens[] = {0, 1, 125, 126, 65535, 65536, sizeof(data)};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        size_t len = lens[k];
        sbuf o;
        sbuf_init(&o);
        bench_ws_frame(&o, WS_OP_TEXT, data, len, 0x11223344u);
        const uint8_t *f = (const uint8_t *)o.data;
        size_t hl = len < 126 ? 2 : len <= 0xffff ? 4 : 10;
        assert_int_equal(o.len, hl + 4 + len);
        assert_int_equal(f[0], 0x81);
        assert_int_equal(f[1] & 0x80, 0x80);
        uint64_t got = f[1] & 0x7f;
        if (hl == 4) got = (uint64_t)f[2] << 8 | f[3];
        if (hl == 10) {
            got = 0;
            for (int i = 2; i < 10; i++)
                got = got << 8 | f[i];
        }
        assert_true(got == len);
        assert_memory_equal(f + hl, "\x11\x22\x33\x44", 4);
        uint8_t *plain = malloc(len + 1);
        ws_mask(plain, f + hl + 4, len, f + hl);
        if (len) assert_memory_equal(plain, data, len);
        free(plain);
        sbuf_release(&o);
    }
    sbuf o;
    sbuf_init(&o);
    bench_ws_frame(&o, WS_OP_PONG, data, 126, 1);
    assert_int_equal(o.len, 0);
    bench_ws_frame(&o, WS_OP_PONG, data, 125, 1);
    assert_int_equal(o.len, 2 + 4 + 125);
    assert_int_equal((uint8_t)o.data[0], 0x8a);
    sbuf_release(&o);
}

/* Server frames for the reader tests (b0: FIN bit and opcode), with the
 * server's own header encoder. */
static void server_frame(sbuf *o, uint8_t b0, const char *data, size_t len)
{
    uint8_t h[WS_FRAME_HEADER_MAX];
    size_t n = ws_frame_header(h, b0 & 0x0f, len, b0 & 0x80);
    assert_true(n > 0);
    sbuf_append(o, h, n);
    sbuf_append(o, data, len);
}

/* What the reader handed over: "op:len:first byte;" per frame. */
typedef struct transcript {
    sbuf log;
    int stop_after; /* ask to stop after this many frames; 0 never */
    int frames;
} transcript;

static int record_frame(void *ud, int opcode, const char *data, size_t len)
{
    transcript *t = ud;
    sbuf_printf(&t->log, "%d:%zu:%c;", opcode, len, len ? data[0] : '-');
    return ++t->frames == t->stop_after;
}

/* Feeds stream in chunks of size step (0: whole); returns the error. */
static const char *read_in_chunks(const sbuf *stream, size_t step, transcript *t)
{
    bench_ws_reader r;
    memset(&r, 0, sizeof(r));
    const char *why = NULL;
    size_t at = 0;
    do {
        size_t n = step && stream->len - at > step ? step : stream->len - at;
        why = bench_ws_read(&r, stream->data + at, n, record_frame, t);
        at += n;
    } while (!why && at < stream->len && (!t->stop_after || t->frames < t->stop_after));
    bench_ws_reader_release(&r);
    return why;
}

/* Every frame shape the server may send, whole and split at every size:
 * the same messages in the same order, a fragmented message reassembled,
 * control frames passed through, large lengths decoded. */
static void ws_reader_any_split(void **state)
{
    static char big[70000];
    memset(big, 'b', sizeof(big));
    sbuf s;
    sbuf_init(&s);
    server_frame(&s, 0x81, "hello", 5);
    server_frame(&s, 0x81, "", 0);
    server_frame(&s, 0x89, "pp", 2);
    server_frame(&s, 0x81, big, 300);
    server_frame(&s, 0x01, "fr", 2);
    server_frame(&s, 0x8a, "", 0); /* a control frame between fragments */
    server_frame(&s, 0x00, "ag", 2);
    server_frame(&s, 0x80, "ment", 4);
    server_frame(&s, 0x82, big, sizeof(big));
    server_frame(&s, 0x88, "\x03\xe8", 2);
    const char *want = "1:5:h;1:0:-;9:2:p;1:300:b;10:0:-;1:8:f;2:70000:b;8:2:\x03;";
    size_t steps[] = {0, 1, 2, 3, 5, 7, 13, 126, 4096, 65536};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        transcript t = {0};
        sbuf_init(&t.log);
        assert_null(read_in_chunks(&s, steps[i], &t));
        if (strcmp(t.log.data, want) != 0)
            fail_msg("step %zu: %s instead of %s", steps[i], t.log.data, want);
        sbuf_release(&t.log);
    }
    /* Asking to stop takes effect at once, whole or split. */
    for (size_t step = 0; step < 8; step++) {
        transcript t = {.stop_after = 2};
        sbuf_init(&t.log);
        assert_null(read_in_chunks(&s, step, &t));
        assert_string_equal(t.log.data, "1:5:h;1:0:-;");
        sbuf_release(&t.log);
    }
    sbuf_release(&s);
}

/* Frames a server must not send: refused with the documented reason, at
 * any split, without handing over anything after the last good frame, and
 * without buffering an oversized payload before refusing it. */
static void ws_reader_refuses_hostile(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *why;
    } cases[] = {
        {"\xc1\x01x", 3, "websocket protocol error"},                 /* RSV1 */
        {"\x91\x01x", 3, "websocket protocol error"},                 /* RSV3 */
        {"\x81\x81\x00\x00\x00\x00x", 7, "websocket protocol error"}, /* masked */
        {"\x83\x01x", 3, "websocket protocol error"},                 /* opcode 3 */
        {"\x8b\x00", 2, "websocket protocol error"},                  /* opcode 11 */
        {"\x80\x01x", 3, "websocket protocol error"},                 /* continuation first */
        {"\x01\x01x\x81\x01y", 6, "websocket protocol error"},        /* text inside a message */
        {"\x09\x00", 2, "websocket protocol error"},                  /* fragmented ping */
        {"\x89\x7e\x00\x7e", 4, "websocket protocol error"},          /* ping of 126 bytes */
        {"\x81\x7f\xff\xff\xff\xff\xff\xff\xff\xff", 10, "websocket message too big"},
        {"\x81\x7f\x00\x00\x00\x00\x01\x00\x00\x01", 10, "websocket message too big"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sbuf s;
        sbuf_init(&s);
        server_frame(&s, 0x81, "ok", 2);
        sbuf_append(&s, cases[i].bytes, cases[i].len);
        server_frame(&s, 0x81, "after", 5);
        for (size_t step = 0; step < 4; step++) {
            transcript t = {0};
            sbuf_init(&t.log);
            const char *why = read_in_chunks(&s, step, &t);
            if (!why || strcmp(why, cases[i].why) != 0)
                fail_msg("case %zu step %zu: %s", i, step, why ? why : "accepted");
            if (strcmp(t.log.data ? t.log.data : "", "1:2:o;") != 0)
                fail_msg("case %zu step %zu handed over %s", i, step, t.log.data);
            sbuf_release(&t.log);
        }
        sbuf_release(&s);
    }
    /* Fragments adding up past the limit are refused too. */
    static char chunk[1 << 20];
    sbuf s;
    sbuf_init(&s);
    server_frame(&s, 0x01, chunk, sizeof(chunk));
    for (int i = 0; i < 16; i++)
        server_frame(&s, 0x00, chunk, sizeof(chunk));
    transcript t = {0};
    sbuf_init(&t.log);
    assert_string_equal(read_in_chunks(&s, 65536, &t), "websocket message too big");
    assert_int_equal(t.frames, 0);
    sbuf_release(&t.log);
    sbuf_release(&s);
}

/* ------------------------------------------------------------------- verify */

static uint64_t code_count(const bench_code_table *t, int code)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].code == code) return t->e[i].count;
    return 0;
}

static void verify_all_served_passes(void **state)
{
    bench_verify v;
    assert_int_equal(bench_verify_init(&v, 3), 0);
    assert_false(bench_verify_settled(&v));
    bench_verify_start(&v, 10, 1000);
    assert_int_equal(bench_verify_chan(&v, 9), -1);
    assert_int_equal(bench_verify_chan(&v, 12), 2);
    assert_int_equal(bench_verify_chan(&v, 13), -1);
    /* A delivery may come before its ack. */
    bench_verify_deliver(&v, 0, 7, 1, 2000);
    assert_true(bench_verify_ack(&v, 10, 7, 3000));
    assert_false(bench_verify_ack(&v, 10, 7, 3000)); /* answered twice */
    assert_true(bench_verify_ack(&v, 11, 1, 3000));
    assert_true(bench_verify_ack(&v, 12, 1, 3000));
    assert_false(bench_verify_ack(&v, 99, 1, 3000));
    bench_verify_deliver(&v, 1, 1, 1, 4000);
    assert_false(bench_verify_settled(&v));
    bench_verify_deliver(&v, 2, 1, 1, 5000);
    assert_true(bench_verify_settled(&v));
    bench_verify_finish(&v);
    assert_true(bench_verify_pass(&v.sum));
    assert_int_equal(v.sum.missing, 0);
    assert_int_equal(v.sum.unanswered, 0);
    assert_true(v.sum.settle_s > 0);
    sbuf j;
    sbuf_init(&j);
    bench_verify_json(&v.sum, &j);
    assert_non_null(strstr(j.data, "\"ok\":true"));
    assert_non_null(strstr(j.data, "\"disconnects\":{}"));
    assert_non_null(strstr(j.data, "\"publisher_closed\":null"));
    sbuf_release(&j);
    bench_verify_release(&v);
}

static void verify_counts_what_went_wrong(void **state)
{
    bench_verify v;
    assert_int_equal(bench_verify_init(&v, 5), 0);
    bench_verify_start(&v, 1, 0);
    assert_true(bench_verify_ack(&v, 1, 1, 10));
    assert_true(bench_verify_refuse(&v, 2, 429, 10));
    assert_false(bench_verify_refuse(&v, 2, 429, 10));
    assert_true(bench_verify_ack(&v, 4, 3, 10));
    bench_verify_deliver(&v, 0, 1, 1, 10);
    bench_verify_deliver(&v, 0, 1, 1, 10); /* twice */
    bench_verify_deliver(&v, 3, 2, 1, 10); /* acked at 3, delivered 2 */
    bench_verify_deliver(&v, 4, 5, 2, 10); /* not the burst's pub */
    bench_verify_deliver(&v, 9, 1, 1, 10); /* no such channel */
    bench_verify_closed(&v, 0, false);
    bench_verify_closed(&v, 4001, true);
    bench_verify_closed(&v, 4001, true); /* only the first close is the publisher's */
    bench_verify_finish(&v);
    assert_false(bench_verify_pass(&v.sum));
    assert_int_equal(v.sum.acked, 2);
    assert_int_equal(v.sum.refused, 1);
    assert_int_equal(code_count(&v.sum.refused_by, 429), 1);
    assert_int_equal(v.sum.unanswered, 2);
    assert_int_equal(v.sum.delivered, 2);
    assert_int_equal(v.sum.missing, 3);
    assert_int_equal(v.sum.extra, 3);
    assert_int_equal(v.sum.mismatched, 1);
    assert_int_equal(code_count(&v.sum.disconnects, 4001), 2);
    assert_int_equal(code_count(&v.sum.disconnects, BENCH_VERIFY_ABNORMAL), 1);
    assert_int_equal(v.sum.publisher_close, 4001);
    assert_int_equal(v.sum.acked_at_close, 2);
    sbuf j, h;
    sbuf_init(&j);
    sbuf_init(&h);
    bench_verify_json(&v.sum, &j);
    bench_verify_human(&v.sum, &h);
    assert_non_null(strstr(j.data, "\"disconnects\":{\"1006\":1,\"4001\":2}"));
    assert_non_null(strstr(j.data, "\"publisher_closed\":{\"code\":4001"));
    assert_non_null(strstr(j.data, "\"refused_by\":{\"429\":1}"));
    assert_non_null(strstr(h.data, "publisher closed with 4001 after 2 acks"));
    sbuf_release(&j);
    sbuf_release(&h);
    bench_verify_release(&v);
}

static void verify_mismatch_and_many_codes(void **state)
{
    bench_verify v;
    assert_int_equal(bench_verify_init(&v, 40), 0);
    bench_verify_start(&v, 100, 0);
    assert_true(bench_verify_ack(&v, 100, 8, 1));
    bench_verify_deliver(&v, 0, 9, 1, 1);
    for (int i = 1; i < 40; i++)
        assert_true(bench_verify_refuse(&v, 100 + (uint64_t)i, 1000 + i, 1));
    bench_verify_finish(&v);
    assert_int_equal(v.sum.mismatched, 1);
    /* The table is bounded: codes past its size fold into the last entry. */
    assert_int_equal(v.sum.refused_by.n, BENCH_VERIFY_CODES);
    uint64_t total = 0;
    for (size_t i = 0; i < v.sum.refused_by.n; i++)
        total += v.sum.refused_by.e[i].count;
    assert_int_equal(total, 39);
    bench_verify_release(&v);
    /* Zero channels is a valid, if empty, verification. */
    assert_int_equal(bench_verify_init(&v, 0), 0);
    bench_verify_start(&v, 1, 0);
    bench_verify_finish(&v);
    assert_true(bench_verify_pass(&v.sum));
    bench_verify_release(&v);
}

static void prom_sum_parsing(void **state)
{
    const char *m = "# HELP parley_commit_batch_size pubs per commit\n"
                    "# TYPE parley_commit_batch_size histogram\n"
                    "parley_commit_batch_size_bucket{le=\"1\"} 3\n"
                    "parley_commit_batch_size_sum{engine=\"sqlite\",x=\"a}b\"} 120.5\n"
                    "parley_commit_batch_size_sum{engine=\"other\"} 10\n"
                    "parley_commit_batch_size_count 13 1700000000000\n"
                    "parley_commit_batch_size_count_total 999\n"
                    "parley_commit_batch_size_sumx 5\n"
                    "parley_commit_batch_size_sum{bad=\"1\"} notanumber\n";
    assert_true(bench_prom_sum(m, strlen(m), "parley_commit_batch_size_sum") == 130.5);
    assert_true(bench_prom_sum(m, strlen(m), "parley_commit_batch_size_count") == 13);
    assert_true(bench_prom_sum(m, strlen(m), "parley_missing") < 0);
    assert_true(bench_prom_sum("", 0, "x") < 0);
    assert_true(bench_prom_sum("x{\"", 3, "x") < 0);
}

static void proc_probes_on_self(void **state)
{
    volatile double x = 0;
    for (int i = 0; i < 20000000; i++)
        x += i;
    assert_true(x > 0); /* the loop burns CPU for the probe to see */
    assert_true(bench_proc_cpu_s(getpid()) >= 0);
    long rss = bench_proc_rss_kib(getpid());
    assert_true(rss > 0);
    assert_true(bench_proc_cpu_s(0x7ffffff0) < 0);
    assert_true(bench_proc_rss_kib(0x7ffffff0) < 0);
    assert_true(bench_proc_rss_kib(0) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hist_index_is_monotonic_and_tight),
        cmocka_unit_test(hist_quantiles),
        cmocka_unit_test(hist_single_value_is_exact),
        cmocka_unit_test(seq_in_order),
        cmocka_unit_test(seq_loss_dup_reorder),
        cmocka_unit_test(seq_hostile_values),
        cmocka_unit_test(seq_survives_oom),
        cmocka_unit_test(scan_pub_push),
        cmocka_unit_test(scan_other_pushes),
        cmocka_unit_test(scan_replies),
        cmocka_unit_test(scan_large_recovery),
        cmocka_unit_test(scan_rejects_malformed),
        cmocka_unit_test(scan_deep_nesting_and_oversize),
        cmocka_unit_test(scan_fast_path_agrees),
        cmocka_unit_test(scan_fast_path_strings_at_every_position),
        cmocka_unit_test(scan_quick_path_fields),
        cmocka_unit_test(scan_data_and_numbers),
        cmocka_unit_test(nats_whole_and_split),
        cmocka_unit_test(nats_rejects_hostile),
        cmocka_unit_test(ws_accept_rfc_example),
        cmocka_unit_test(ws_request_shape),
        cmocka_unit_test(ws_response_checks),
        cmocka_unit_test(ws_client_frames),
        cmocka_unit_test(ws_reader_any_split),
        cmocka_unit_test(ws_reader_refuses_hostile),
        cmocka_unit_test(verify_all_served_passes),
        cmocka_unit_test(verify_counts_what_went_wrong),
        cmocka_unit_test(verify_mismatch_and_many_codes),
        cmocka_unit_test(prom_sum_parsing),
        cmocka_unit_test(proc_probes_on_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
