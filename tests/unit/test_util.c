/* Unit tests for the small util modules: map (the per-worker channel and
 * connection tables), sbuf (reply building and JSON escaping), durations
 * and ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <inttypes.h>
#include <string.h>

#include <cmocka.h>

#include "util/clock.h"
#include "util/map.h"
#include "util/mem.h"
#include "util/sbuf.h"
#include "util/swar.h"
#include "util/utf8.h"

static void map_put_get_del_many(void **state)
{
    map m;
    map_init(&m);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(map_put(&m, key, (size_t)n, (void *)(intptr_t)(i + 1)), 0);
    }
    assert_int_equal(m.len, 5000);
    /* Delete every third key; the rest must still be found (backward shift). */
    for (int i = 0; i < 5000; i += 3) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal((intptr_t)map_del(&m, key, (size_t)n), i + 1);
    }
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        intptr_t v = (intptr_t)map_get(&m, key, (size_t)n);
        assert_int_equal(v, i % 3 == 0 ? 0 : i + 1);
    }
    assert_null(map_del(&m, "absent", 6));
    map_release(&m);
}

static void map_binary_keys_and_replace(void **state)
{
    map m;
    map_init(&m);
    const char a[] = {'t', '\x1f', 'c'}, b[] = {'t', '\x1f', 'd'};
    assert_int_equal(map_put(&m, a, 3, (void *)1), 0);
    assert_int_equal(map_put(&m, b, 3, (void *)2), 0);
    assert_int_equal(map_put(&m, a, 3, (void *)3), 0);
    assert_int_equal(m.len, 2);
    assert_int_equal((intptr_t)map_get(&m, a, 3), 3);
    assert_int_equal((intptr_t)map_get(&m, b, 3), 2);
    map_release(&m);
}

/* A borrowed map keeps the caller's key pointers: the entry's key is the
 * very bytes given (so it lives inside the value), a replace takes the new
 * pointer, and release frees no key (ASan would report a double free). */
static void map_borrowed_keys(void **state)
{
    typedef struct item {
        int n;
        char name[16];
    } item;
    item items[200];
    map m;
    map_init_borrowed(&m);
    for (int i = 0; i < 200; i++) {
        items[i].n = i;
        snprintf(items[i].name, sizeof(items[i].name), "item-%d", i);
        assert_int_equal(map_put(&m, items[i].name, strlen(items[i].name), &items[i]), 0);
    }
    for (int i = 0; i < 200; i += 2)
        assert_ptr_equal(map_del(&m, items[i].name, strlen(items[i].name)), &items[i]);
    for (size_t i = 0; i < m.cap; i++) {
        if (!m.slots[i].key) continue;
        item *it = m.slots[i].value;
        assert_ptr_equal(m.slots[i].key, it->name);
        assert_int_equal(it->n % 2, 1);
    }
    item again = items[1];
    assert_int_equal(map_put(&m, again.name, strlen(again.name), &again), 0);
    assert_int_equal(m.len, 100);
    assert_ptr_equal(map_get(&m, "item-1", 6), &again);
    for (size_t i = 0; i < m.cap; i++)
        if (m.slots[i].value == &again) assert_ptr_equal(m.slots[i].key, again.name);
    map_release(&m);
    assert_int_equal(m.borrowed, 1);
    assert_int_equal(map_put(&m, items[3].name, strlen(items[3].name), &items[3]), 0);
    assert_ptr_equal(map_get(&m, "item-3", 6), &items[3]);
    map_release(&m);
}

static void map_alloc_failure(void **state)
{
    map m;
    map_init(&m);
    pl_mem_fail_after(0);
    assert_int_equal(map_put(&m, "x", 1, (void *)1), -1);
    pl_mem_fail_after(-1);
    assert_null(map_get(&m, "x", 1));
    map_release(&m);
}

/* The hash spreads the keys the server really uses over the low bits that
 * pick slots: channel names that differ in one digit, 8-byte connection
 * ids, and keys that differ only in length or in their last byte. */
static void map_hash_spreads_keys(void **state)
{
    (void)state;
    enum { N = 1 << 16, BUCKETS = 1 << 14 };
    static uint16_t load[BUCKETS];
    for (int kind = 0; kind < 2; kind++) {
        memset(load, 0, sizeof(load));
        for (uint64_t i = 0; i < N; i++) {
            char key[48];
            size_t n = sizeof(i);
            if (kind == 0)
                n = (size_t)snprintf(key, sizeof(key),
                                     "bench\x1f"
                                     "chat:room.%" PRIu64,
                                     i);
            else
                memcpy(key, &i, sizeof(i));
            load[map_hash(key, n) & (BUCKETS - 1)]++;
        }
        /* 4 keys a bucket on average; a weak mix piles dozens into some. */
        for (int b = 0; b < BUCKETS; b++)
            assert_true(load[b] <= 20);
    }
    /* Zero padding of the tail never makes two keys the same. */
    assert_true(map_hash("a", 1) != map_hash("a\0", 2));
    assert_true(map_hash("", 0) != map_hash("\0", 1));
    assert_true(map_hash("12345678", 8) != map_hash("12345678\0", 9));
    assert_true(map_hash("room-1", 6) != map_hash("room-2", 6));
}

static void sbuf_json_escaping(void **state)
{
    sbuf b;
    sbuf_init(&b);
    const char in[] = "a\"b\\c\nd\x01\x1f";
    sbuf_json_str(&b, in, sizeof(in) - 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\u0001\\u001f\"");
    sbuf_reset(&b);
    sbuf_json_str(&b, "h\xc3\xa9llo", 6); /* UTF-8 passes through */
    assert_string_equal(b.data, "\"h\xc3\xa9llo\"");
    sbuf_release(&b);
}

static void sbuf_growth_and_oom_latch(void **state)
{
    sbuf b;
    sbuf_init(&b);
    for (int i = 0; i < 1000; i++)
        sbuf_printf(&b, "%d,", i);
    assert_int_equal(b.oom, 0);
    assert_true(b.len > 2000);
    sbuf_release(&b);
    sbuf_init(&b);
    pl_mem_fail_after(0);
    sbuf_puts(&b, "x");
    sbuf_puts(&b, "y");
    pl_mem_fail_after(-1);
    assert_int_equal(b.oom, 1);
    assert_null(sbuf_to_rbuf(&b));
    sbuf_release(&b);
}

static void sbuf_reserve_then_append_without_growth(void **state)
{
    sbuf b;
    sbuf_init(&b);
    sbuf_reserve(&b, 300);
    assert_true(b.cap >= 301);
    char *before = b.data;
    for (int i = 0; i < 30; i++)
        sbuf_puts(&b, "0123456789");
    assert_ptr_equal(b.data, before); /* no reallocation within the reserve */
    assert_int_equal(b.len, 300);
    sbuf_release(&b);
    sbuf_init(&b);
    pl_mem_fail_after(0);
    sbuf_reserve(&b, 10);
    pl_mem_fail_after(-1);
    assert_int_equal(b.oom, 1);
    sbuf_release(&b);
}

/* Offsets, timestamps and counts are formatted by hand: the edges of both
 * ranges must read back exactly as printf would write them. */
/* sbuf_space: room for many small in-place writes, growing by doubling (not
 * one reallocation per call), NUL-terminated after sbuf_wrote; NULL once
 * out of memory, with nothing written. */
static void sbuf_space_then_wrote(void **state)
{
    (void)state;
    sbuf b;
    sbuf_init(&b);
    for (int i = 0; i < 1000; i++) {
        char *w = sbuf_space(&b, 16);
        assert_non_null(w);
        assert_ptr_equal(w, b.data + b.len);
        memcpy(w, "abc", 3); /* fewer bytes than asked for */
        sbuf_wrote(&b, 3);
        assert_int_equal(b.data[b.len], '\0');
    }
    assert_int_equal(b.len, 3000);
    assert_memory_equal(b.data + 2997, "abc", 3);
    /* Doubled from 64 bytes, not grown to each call's exact need. */
    assert_int_equal(b.cap, 4096);
    sbuf_release(&b);

    sbuf_init(&b);
    sbuf_puts(&b, "keep");
    pl_mem_fail_after(0);
    assert_null(sbuf_space(&b, 1 << 20));
    pl_mem_fail_after(-1);
    assert_int_equal(b.oom, 1);
    assert_null(sbuf_space(&b, 1)); /* latched */
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    sbuf_release(&b);
}

static void sbuf_integers_match_printf(void **state)
{
    static const int64_t vals[] = {0, 1, -1, 9, 10, -10, 1732282000123LL, INT64_MAX, INT64_MIN};
    char want[64];
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        sbuf b;
        sbuf_init(&b);
        sbuf_i64(&b, vals[i]);
        sbuf_putc(&b, '|');
        sbuf_u64(&b, (uint64_t)vals[i]);
        snprintf(want, sizeof(want), "%lld|%llu", (long long)vals[i],
                 (unsigned long long)(uint64_t)vals[i]);
        assert_int_equal(b.len, strlen(want));
        assert_memory_equal(b.data, want, b.len);
        sbuf_release(&b);
    }
}

static void durations(void **state)
{
    assert_int_equal(clock_parse_duration("200ms"), 200);
    assert_int_equal(clock_parse_duration("5s"), 5000);
    assert_int_equal(clock_parse_duration("5m"), 300000);
    assert_int_equal(clock_parse_duration("24h"), 86400000);
    assert_int_equal(clock_parse_duration("7d"), 604800000);
    assert_int_equal(clock_parse_duration(""), -1);
    assert_int_equal(clock_parse_duration("-5s"), -1);
    assert_int_equal(clock_parse_duration("5 s"), -1);
    assert_int_equal(clock_parse_duration("5y"), -1);
    assert_int_equal(clock_parse_duration("99999999999999999999s"), -1);
}

static void ulids_are_ordered_and_unique(void **state)
{
    char a[27], b[27];
    clock_ulid(a);
    clock_ulid(b);
    assert_int_equal(strlen(a), 26);
    assert_string_not_equal(a, b);
    assert_true(memcmp(a, b, 10) <= 0); /* time prefix never goes back */
}

static void ulid_pack_round_trips(void **state)
{
    char s[27];
    uint64_t ms, hi, lo;
    const uint64_t top48 = (1ULL << 48) - 1, top40 = (1ULL << 40) - 1;
    const uint64_t cases[][3] = {{0, 0, 0},
                                 {1, 2, 3},
                                 {1795361154671ULL, 77, 123456789},
                                 {top48, top40, top40},
                                 {0x123456789ABULL, 0x5A5A5A5A5AULL, 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        clock_ulid_pack(s, cases[i][0], cases[i][1], cases[i][2]);
        assert_int_equal(strlen(s), 26);
        assert_int_equal(clock_ulid_unpack(s, 26, &ms, &hi, &lo), 0);
        assert_int_equal(ms, cases[i][0]);
        assert_int_equal(hi, cases[i][1]);
        assert_int_equal(lo, cases[i][2]);
    }
    /* The text is fixed: stored pub ids are compared with derived ones. */
    clock_ulid_pack(s, 1795361154671ULL, 77, 123456789);
    assert_string_equal(s, "01M81XT9KF0000002D003NQK8N");
    /* Bits above 40 are dropped, not carried into the time. */
    clock_ulid_pack(s, 5, (1ULL << 40) | 7, 9);
    assert_int_equal(clock_ulid_unpack(s, 26, &ms, &hi, &lo), 0);
    assert_int_equal(ms, 5);
    assert_int_equal(hi, 7);
    /* Fresh ULIDs read back too; anything but 26 alphabet characters with
     * a 48-bit time does not. */
    clock_ulid(s);
    assert_int_equal(clock_ulid_unpack(s, 26, &ms, &hi, &lo), 0);
    assert_int_equal(clock_ulid_unpack(s, 25, &ms, &hi, &lo), -1);
    assert_int_equal(clock_ulid_unpack(NULL, 26, &ms, &hi, &lo), -1);
    for (size_t i = 0; i < 26; i++) {
        char t[27];
        memcpy(t, s, sizeof(t));
        const char bad[] = {'I', 'L', 'O', 'U', 'a', '\0', '-', (char)0xC3};
        for (size_t k = 0; k < sizeof(bad); k++) {
            t[i] = bad[k];
            assert_int_equal(clock_ulid_unpack(t, 26, &ms, &hi, &lo), -1);
        }
    }
    memcpy(s, "8", 1);
    assert_int_equal(clock_ulid_unpack(s, 26, &ms, &hi, &lo), -1);
}

/* Reference: decode the sequence the plain way and check the code point. */
static size_t utf8_ref(const unsigned char *p, size_t n)
{
    size_t need;
    uint32_t cp, min;
    if (p[0] < 0x80) return 1;
    if ((p[0] & 0xe0) == 0xc0)
        need = 2, cp = p[0] & 0x1fu, min = 0x80;
    else if ((p[0] & 0xf0) == 0xe0)
        need = 3, cp = p[0] & 0x0fu, min = 0x800;
    else if ((p[0] & 0xf8) == 0xf0)
        need = 4, cp = p[0] & 0x07u, min = 0x10000;
    else
        return 0;
    if (n < need) return 0;
    for (size_t k = 1; k < need; k++) {
        if ((p[k] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[k] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return need;
}

/* Every sequence of up to three bytes, and every four-byte lead with its
 * boundary second bytes, read the same as the reference; cut sequences are
 * refused. */
static void utf8_matches_reference(void **state)
{
    unsigned char b[4];
    for (uint32_t v = 0; v < (1u << 24); v++) {
        b[0] = (unsigned char)(v >> 16), b[1] = (unsigned char)(v >> 8), b[2] = (unsigned char)v;
        for (size_t n = 1; n <= 3; n++)
            if (utf8_seq_len(b, n) != utf8_ref(b, n))
                fail_msg("%02x %02x %02x (n %zu): %zu, want %zu", b[0], b[1], b[2], n,
                         utf8_seq_len(b, n), utf8_ref(b, n));
    }
    for (uint32_t v = 0; v < (1u << 16); v++) {
        b[0] = (unsigned char)(0xf0 | (v >> 12 & 0x0f)), b[1] = (unsigned char)(v >> 4);
        b[2] = 0x80, b[3] = (unsigned char)(0x80 | (v & 0x0f) << 2);
        assert_int_equal(utf8_seq_len(b, 4), utf8_ref(b, 4));
        assert_int_equal(utf8_seq_len(b, 3), 0);
    }
}

/* A bad byte anywhere in a run, ASCII or not, on either side of an
 * eight-byte step, makes the whole text invalid. */
static void utf8_valid_finds_every_bad_byte(void **state)
{
    char text[40];
    memset(text, 'a', sizeof(text));
    memcpy(text + 11, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9); /* é € 😀 */
    assert_true(utf8_valid(text, sizeof(text)));
    assert_true(utf8_valid(text, 0));
    /* 0xff and 0xc0 are never UTF-8; a continuation byte is wrong where a
     * sequence starts (ASCII, or the leads at 11, 13 and 16). */
    for (size_t at = 0; at < sizeof(text); at++) {
        int lead = at < 11 || at >= 20 || at == 11 || at == 13 || at == 16;
        const unsigned char bad[] = {0xff, 0xc0, 0x80};
        for (size_t k = 0; k < (lead ? 3u : 2u); k++) {
            char t[40];
            memcpy(t, text, sizeof(t));
            t[at] = (char)bad[k];
            if (utf8_valid(t, sizeof(t))) fail_msg("byte %02x at %zu accepted", bad[k], at);
        }
    }
    assert_false(utf8_valid(text, 12)); /* cut inside é */
    assert_false(utf8_valid(text, 19)); /* cut inside 😀 */
}

/* Every byte value at every position, among digits and among high bytes
 * (where a borrow or carry between bytes would show). */
static void swar_nondigits_flags_exactly(void **state)
{
    (void)state;
    const unsigned char fills[] = {'9', '0', 0xff, '/', ':'};
    for (size_t f = 0; f < sizeof(fills); f++) {
        for (unsigned at = 0; at < 8; at++) {
            for (unsigned b = 0; b < 256; b++) {
                unsigned char w[8];
                memset(w, fills[f], sizeof(w));
                w[at] = (unsigned char)b;
                uint64_t m = swar_nondigits(swar_load(w));
                for (unsigned i = 0; i < 8; i++) {
                    int flagged = (int)((m >> (8 * i + 7)) & 1);
                    if (flagged != !(w[i] >= '0' && w[i] <= '9'))
                        fail_msg("byte %02x at %u among %02x: position %u wrong", b, at, fills[f],
                                 i);
                }
                if (m & ~SWAR_HIGHS) fail_msg("low bits set for byte %02x", b);
            }
        }
    }
}

/* pl_calloc zeroes what malloc hands back used (small blocks go through
 * malloc and memset) and what it maps fresh; a product that overflows
 * fails. */
static void calloc_zeroes_reused_blocks(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 24, 400, 1024, 1025, 100000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *dirty = pl_malloc(sizes[i]);
        assert_non_null(dirty);
        memset(dirty, 0xab, sizes[i]);
        pl_free(dirty); /* the next allocation of this size may reuse it */
        unsigned char *p = pl_calloc(1, sizes[i]);
        assert_non_null(p);
        for (size_t k = 0; k < sizes[i]; k++)
            if (p[k]) fail_msg("byte %zu of %zu not zero", k, sizes[i]);
        pl_free(p);
    }
    unsigned char *arr = pl_calloc(16, 24);
    assert_non_null(arr);
    for (size_t k = 0; k < 16 * 24; k++)
        assert_int_equal(arr[k], 0);
    pl_free(arr);
    assert_null(pl_calloc(SIZE_MAX / 2, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(map_put_get_del_many),
        cmocka_unit_test(map_hash_spreads_keys),
        cmocka_unit_test(map_binary_keys_and_replace),
        cmocka_unit_test(map_borrowed_keys),
        cmocka_unit_test(map_alloc_failure),
        cmocka_unit_test(sbuf_json_escaping),
        cmocka_unit_test(sbuf_growth_and_oom_latch),
        cmocka_unit_test(sbuf_reserve_then_append_without_growth),
        cmocka_unit_test(sbuf_space_then_wrote),
        cmocka_unit_test(sbuf_integers_match_printf),
        cmocka_unit_test(durations),
        cmocka_unit_test(ulids_are_ordered_and_unique),
        cmocka_unit_test(ulid_pack_round_trips),
        cmocka_unit_test(utf8_matches_reference),
        cmocka_unit_test(utf8_valid_finds_every_bad_byte),
        cmocka_unit_test(swar_nondigits_flags_exactly),
        cmocka_unit_test(calloc_zeroes_reused_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
