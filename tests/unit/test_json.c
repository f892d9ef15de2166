/* Unit tests for proto/json: table-driven accept/reject cases for RFC 8259
 * strictness, limits (depth, tokens) and every accessor, including hostile
 * indexes and allocation failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/json.h"
#include "util/mem.h"
#include "util/status.h"

/* Sized string literal: keeps embedded NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

struct good_case {
    const char *src;
    size_t len;
    int ntok;
    int nroots;
};

static const struct good_case good[] = {
    {S("{}"), 1, 1},
    {S("[]"), 1, 1},
    {S("0"), 1, 1},
    {S("-0"), 1, 1},
    {S("1.5"), 1, 1},
    {S("-1.5e10"), 1, 1},
    {S("1E+2"), 1, 1},
    {S("1e-2"), 1, 1},
    {S("0.0e0"), 1, 1},
    {S("123456789012345678901234567890"), 1, 1}, /* huge numbers are valid JSON */
    {S("true"), 1, 1},
    {S("false"), 1, 1},
    {S("null"), 1, 1},
    {S("\"\""), 1, 1},
    {S("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\""), 1, 1},
    {S("\"\\u00e9\\u00C9\""), 1, 1},
    {S("\"\\ud83d\\ude00\""), 1, 1},
    {S("\"\\u0000\""), 1, 1},
    {S("\"\xc3\xa9\""), 1, 1},         /* U+00E9 */
    {S("\"\xe2\x82\xac\""), 1, 1},     /* U+20AC */
    {S("\"\xef\xbf\xbf\""), 1, 1},     /* U+FFFF */
    {S("\"\xf0\x9f\x98\x80\""), 1, 1}, /* U+1F600 */
    {S("\"\xf4\x8f\xbf\xbf\""), 1, 1}, /* U+10FFFF */
    {S("\"\x7f\""), 1, 1},             /* DEL is not a control char in JSON */
    {S("{\"a\":1,\"a\":2}"), 5, 1},    /* duplicates are syntactically fine */
    {S(" \t\r\n{} \n"), 1, 1},
    {S("{} []"), 2, 2},
    {S("{}\n{}\n{}\n"), 3, 3},
    {S("1 2"), 2, 2},
    {S("\"a\" \"b\""), 2, 2},
    {S("[[[]]]"), 3, 1},
    {S("{\"a\":{\"b\":[1,{\"c\":null}]}}"), 9, 1},
    {S("[1,\"x\",true,false,null,{},[]]"), 8, 1},
};

struct bad_case {
    const char *src;
    size_t len;
    int status;
    long off; /* expected error offset, -1 = don't check */
};

static const struct bad_case bad[] = {
    {S(""), PL_EINVAL, -1},
    {S("   \n"), PL_EINVAL, -1},
    /* structure */
    {S("{"), PL_EINVAL, 1},
    {S("["), PL_EINVAL, 1},
    {S("]"), PL_EINVAL, 0},
    {S("}"), PL_EINVAL, 0},
    {S("[1,]"), PL_EINVAL, 3},
    {S("{\"a\":1,}"), PL_EINVAL, 7},
    {S("[,1]"), PL_EINVAL, 1},
    {S("[1 2]"), PL_EINVAL, 3},
    {S("[1,,2]"), PL_EINVAL, 3},
    {S("{\"a\" 1}"), PL_EINVAL, 5},
    {S("{\"a\":}"), PL_EINVAL, 5},
    {S("{\"a\"}"), PL_EINVAL, 4},
    {S("{a:1}"), PL_EINVAL, 1},
    {S("{1:2}"), PL_EINVAL, 1},
    {S("{\"a\":1 \"b\":2}"), PL_EINVAL, 7},
    {S("{\"a\"::1}"), PL_EINVAL, 5},
    {S("[1}"), PL_EINVAL, 2},
    {S("{\"a\":1]"), PL_EINVAL, 6},
    {S("{}}"), PL_EINVAL, 2},
    {S("[]]"), PL_EINVAL, 2},
    {S("[1:2]"), PL_EINVAL, 1},
    {S("'a'"), PL_EINVAL, 0},
    {S("// c\n{}"), PL_EINVAL, 0},
    {S("\xef\xbb\xbf{}"), PL_EINVAL, 0}, /* BOM */
    /* trailing garbage and missing separators */
    {S("{}x"), PL_EINVAL, 2},
    {S("{} x"), PL_EINVAL, 3},
    {S("1 x"), PL_EINVAL, 2},
    {S("{}{}"), PL_EINVAL, 2},
    {S("\"a\"\"b\""), PL_EINVAL, 3},
    {S("{}\n,{}"), PL_EINVAL, 3},
    {S("{}\0"), PL_EINVAL, 2},
    /* numbers */
    {S("01"), PL_EINVAL, 0},
    {S("-01"), PL_EINVAL, 0},
    {S("-"), PL_EINVAL, 0},
    {S("+1"), PL_EINVAL, 0},
    {S("1."), PL_EINVAL, 0},
    {S(".5"), PL_EINVAL, 0},
    {S("1e"), PL_EINVAL, 0},
    {S("1e+"), PL_EINVAL, 0},
    {S("1.e5"), PL_EINVAL, 0},
    {S("0x10"), PL_EINVAL, 0},
    {S("1.5.5"), PL_EINVAL, 0},
    {S("NaN"), PL_EINVAL, 0},
    {S("Infinity"), PL_EINVAL, 0},
    {S("-Infinity"), PL_EINVAL, 0},
    {S("1_000"), PL_EINVAL, 0},
    {S("[1a]"), PL_EINVAL, 1},
    {S("[- 1]"), PL_EINVAL, 1},
    /* literals */
    {S("tru"), PL_EINVAL, 0},
    {S("True"), PL_EINVAL, 0},
    {S("nul"), PL_EINVAL, 0},
    {S("nulll"), PL_EINVAL, 0},
    {S("truefalse"), PL_EINVAL, 0},
    {S("[falsey]"), PL_EINVAL, 1},
    {S("undefined"), PL_EINVAL, 0},
    /* strings */
    {S("\"abc"), PL_EINVAL, 0},
    {S("\"abc\\"), PL_EINVAL, 4},
    {S("\"\\x\""), PL_EINVAL, 1},
    {S("\"\\'\""), PL_EINVAL, 1},
    {S("\"\\u12\""), PL_EINVAL, 1},
    {S("\"\\u12G4\""), PL_EINVAL, 1},
    {S("\"\\U0041\""), PL_EINVAL, 1},
    {S("\"\\ud800\""), PL_EINVAL, 1},
    {S("\"\\udc00\""), PL_EINVAL, 1},
    {S("\"\\ud800\\u0041\""), PL_EINVAL, 1},
    {S("\"\\ud800\\ud800\""), PL_EINVAL, 1},
    {S("\"\\ud800x\""), PL_EINVAL, 1},
    {S("\"\\ud800\\"), PL_EINVAL, 1},
    {S("\"a\x01z\""), PL_EINVAL, 2},
    {S("\"\t\""), PL_EINVAL, 1},
    {S("\"\n\""), PL_EINVAL, 1},
    {S("\"a\0b\""), PL_EINVAL, 2},
    {S("{\"k\x1f\":1}"), PL_EINVAL, 3},
    /* UTF-8 */
    {S("\"\xc0\xaf\""), PL_EINVAL, 1},         /* overlong '/' */
    {S("\"\xc1\xbf\""), PL_EINVAL, 1},         /* overlong */
    {S("\"\xe0\x80\xaf\""), PL_EINVAL, 1},     /* overlong */
    {S("\"\xf0\x80\x80\xaf\""), PL_EINVAL, 1}, /* overlong */
    {S("\"\xed\xa0\x80\""), PL_EINVAL, 1},     /* UTF-16 surrogate */
    {S("\"\xf4\x90\x80\x80\""), PL_EINVAL, 1}, /* > U+10FFFF */
    {S("\"\xf5\x80\x80\x80\""), PL_EINVAL, 1},
    {S("\"\x80\""), PL_EINVAL, 1}, /* lone continuation */
    {S("\"\xc3\""), PL_EINVAL, 1}, /* truncated */
    {S("\"\xe2\x82\""), PL_EINVAL, 1},
    {S("\"\xe2\x82"), PL_EINVAL, 1}, /* truncated at end of input */
    {S("\"\xf0\x9f\x98\""), PL_EINVAL, 1},
    {S("\"\xff\""), PL_EINVAL, 1},
    {S("\"\xc3\x28\""), PL_EINVAL, 1},
    {S("\xc3\xa9"), PL_EINVAL, 0}, /* UTF-8 outside a string */
};

static void test_good_cases(void **state)
{
    json_doc d;
    json_doc_init(&d);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int rc = json_parse(&d, good[i].src, good[i].len, NULL);
        if (rc != PL_OK)
            fail_msg("case %zu (%s) rejected: %s", i, good[i].src, json_error(&d, NULL));
        assert_int_equal(json_ntok(&d), good[i].ntok);
        assert_int_equal(json_count(&d), good[i].nroots);
        assert_null(json_error(&d, NULL));
    }
    json_doc_release(&d);
}

static void test_bad_cases(void **state)
{
    json_doc d;
    json_doc_init(&d);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t off = 0;
        int rc = json_parse(&d, bad[i].src, bad[i].len, NULL);
        if (rc != bad[i].status) fail_msg("case %zu (%s): got %d", i, bad[i].src, rc);
        const char *msg = json_error(&d, &off);
        assert_non_null(msg);
        if (bad[i].off >= 0 && (long)off != bad[i].off)
            fail_msg("case %zu (%s): error '%s' at %zu, want %ld", i, bad[i].src, msg, off,
                     bad[i].off);
        /* A failed parse leaves nothing to read. */
        assert_int_equal(json_ntok(&d), 0);
        assert_int_equal(json_count(&d), 0);
        assert_int_equal(json_kind(&d, 0), JSON_KIND_NONE);
    }
    json_doc_release(&d);
}

static char *repeat(const char *a, size_t na, const char *b, size_t nb)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la * na + lb * nb + 1);
    char *p = s;
    for (size_t i = 0; i < na; i++, p += la)
        memcpy(p, a, la);
    for (size_t i = 0; i < nb; i++, p += lb)
        memcpy(p, b, lb);
    *p = '\0';
    return s;
}

static void test_depth_limit(void **state)
{
    json_doc d;
    json_doc_init(&d);
    size_t off;

    /* 10,000 deep, unterminated and terminated: a clean ELIMIT, no recursion. */
    char *s = repeat("[", 10000, "", 0);
    assert_int_equal(json_parse(&d, s, strlen(s), NULL), PL_ELIMIT);
    assert_string_equal(json_error(&d, &off), "nesting too deep");
    assert_int_equal(off, 64);
    free(s);
    s = repeat("[", 10000, "]", 10000);
    assert_int_equal(json_parse(&d, s, strlen(s), NULL), PL_ELIMIT);
    free(s);
    s = repeat("{\"a\":", 10000, "}", 10000);
    assert_int_equal(json_parse(&d, s, strlen(s), NULL), PL_ELIMIT);
    free(s);

    /* Exactly at the default limit passes, one more fails. */
    s = repeat("[", 64, "]", 64);
    assert_int_equal(json_parse(&d, s, strlen(s), NULL), PL_OK);
    assert_int_equal(json_ntok(&d), 64);
    assert_int_equal(json_skip(&d, 0), 64);
    free(s);
    s = repeat("[", 65, "]", 65);
    assert_int_equal(json_parse(&d, s, strlen(s), NULL), PL_ELIMIT);
    free(s);

    /* A configured limit, and the hard cap above it. */
    json_limits lim = {.max_depth = 2};
    assert_int_equal(json_parse(&d, S("[[1]]"), &lim), PL_OK);
    assert_int_equal(json_parse(&d, S("[[[1]]]"), &lim), PL_ELIMIT);
    assert_int_equal(json_parse(&d, S("{\"a\":{\"b\":{}}}"), &lim), PL_ELIMIT);
    lim.max_depth = 1000000;
    s = repeat("[", JSON_MAX_DEPTH_CAP, "]", JSON_MAX_DEPTH_CAP);
    assert_int_equal(json_parse(&d, s, strlen(s), &lim), PL_OK);
    free(s);
    s = repeat("[", JSON_MAX_DEPTH_CAP + 1, "]", JSON_MAX_DEPTH_CAP + 1);
    assert_int_equal(json_parse(&d, s, strlen(s), &lim), PL_ELIMIT);
    free(s);
    json_doc_release(&d);
}

static void test_token_limit(void **state)
{
    json_doc d;
    json_doc_init(&d);
    json_limits lim = {.max_tokens = 3};
    assert_int_equal(json_parse(&d, S("[1,2]"), &lim), PL_OK);
    assert_int_equal(json_parse(&d, S("[1,2,3]"), &lim), PL_ELIMIT);
    assert_string_equal(json_error(&d, NULL), "too many tokens");
    assert_int_equal(json_parse(&d, S("{\"a\":1}"), &lim), PL_OK); /* key + value + object */
    assert_int_equal(json_parse(&d, S("{\"a\":1,\"b\":2}"), &lim), PL_ELIMIT);
    assert_int_equal(json_parse(&d, S("{} {} {}"), &lim), PL_OK);
    assert_int_equal(json_parse(&d, S("{} {} {} {}"), &lim), PL_ELIMIT);

    /* Default limit: a large flat array. */
    char *s = repeat("[", 1, "0,", JSON_DEFAULT_MAX_TOKENS);
    size_t n = strlen(s);
    s[n - 1] = ']'; /* JSON_DEFAULT_MAX_TOKENS elements + the array */
    assert_int_equal(json_parse(&d, s, n, NULL), PL_ELIMIT);
    s[2] = ']';
    assert_int_equal(json_parse(&d, s, 3, NULL), PL_OK);
    free(s);
    json_doc_release(&d);
}

/* Key lookup by length first: keys of other lengths, prefixes and
 * extensions never match; an escaped key of any raw length still does, and
 * the last duplicate wins whichever of them is escaped. */
static void test_obj_get_keys(void **state)
{
    (void)state;
    static const char src[] = "{\"channel\":1,\"chann\":2,\"channelx\":3,\"ch\\u0061nnel\":4,"
                              "\"data\":5,\"dat\\u0061\":6,\"data\":7,\"\\u0061\":8,\"b\":9}";
    json_doc d;
    json_doc_init(&d);
    assert_int_equal(json_parse(&d, S(src), NULL), PL_OK);
    int o = json_root(&d, 0);
    struct {
        const char *key;
        uint64_t want; /* 0 = absent */
    } cases[] = {{"channel", 4}, {"chann", 2}, {"channelx", 3},  {"data", 7}, {"a", 8},
                 {"b", 9},       {"chan", 0},  {"channelxy", 0}, {"dat", 0},  {"", 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int v = json_obj_get(&d, o, cases[i].key);
        if (!cases[i].want) {
            assert_int_equal(v, -1);
            continue;
        }
        uint64_t u = 0;
        assert_int_equal(json_u64(&d, v, &u), PL_OK);
        assert_int_equal(u, cases[i].want);
    }
    json_doc_release(&d);
}

/* One walk for many keys answers as json_obj_get does key by key: last
 * duplicate wins, escaped keys decoded, same-length keys told apart. */
static void test_obj_fields(void **state)
{
    (void)state;
    static const char src[] = "{\"method\":1,\"params\":2,\"id\":3,\"p\\u0061rams\":4,\"id\":5,"
                              "\"\":6,\"type\":7,\"data\":8}\n[1]\n{}";
    static const json_field keys[] = {
        JSON_FIELD("id"), JSON_FIELD("method"), JSON_FIELD("params"), JSON_FIELD("data"),
        JSON_FIELD(""),   JSON_FIELD("absent"), JSON_FIELD("typ")};
    const size_t n = sizeof(keys) / sizeof(keys[0]);
    const uint64_t want[] = {5, 1, 4, 8, 6, 0, 0};
    json_doc d;
    json_doc_init(&d);
    assert_int_equal(json_parse(&d, S(src), NULL), PL_OK);
    int o = json_root(&d, 0), v[7];
    assert_int_equal(json_obj_fields(&d, o, keys, n, v), 8);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i], json_obj_get(&d, o, keys[i].key));
        uint64_t u = 0;
        if (!want[i]) {
            assert_int_equal(v[i], -1);
            continue;
        }
        assert_int_equal(json_u64(&d, v[i], &u), PL_OK);
        assert_int_equal(u, want[i]);
    }
    /* Not an object: -1, every value -1; an empty object: 0 members. */
    v[0] = 42;
    assert_int_equal(json_obj_fields(&d, json_root(&d, 1), keys, n, v), -1);
    assert_int_equal(v[0], -1);
    assert_int_equal(json_obj_fields(&d, -7, keys, n, v), -1);
    v[0] = 42;
    assert_int_equal(json_obj_fields(&d, json_root(&d, 2), keys, n, v), 0);
    assert_int_equal(v[0], -1);
    json_doc_release(&d);
}

/* An opaque value is validated but one token: its raw bytes, no children,
 * nothing counted against the token limit; any other key (an escaped
 * spelling included) is tokenized as usual. */
static void test_opaque_values(void **state)
{
    (void)state;
    static const char src[] = "{\"a\":{\"data\":{\"t\":1,\"s\":[1,{\"data\":2}]},\"b\":[3]},"
                              "\"d\\u0061ta\":{\"x\":1},\"data\":\"s\"}";
    json_limits lim = {.opaque_key = "data"};
    json_doc d;
    json_doc_init(&d);
    assert_int_equal(json_parse(&d, S(src), &lim), PL_OK);
    int root = json_root(&d, 0), a = json_obj_get(&d, root, "a");
    int data = json_obj_get(&d, a, "data");
    assert_int_equal(json_kind(&d, data), JSON_KIND_OBJECT);
    assert_int_equal(json_size(&d, data), 0);
    assert_int_equal(json_child(&d, data), -1);
    assert_int_equal(json_skip(&d, data), data + 1);
    const char *raw;
    size_t rn;
    assert_int_equal(json_raw(&d, data, &raw, &rn), PL_OK);
    assert_memory_equal(raw, "{\"t\":1,\"s\":[1,{\"data\":2}]}", rn);
    /* The member after it is still found, and so are the escaped key's. */
    int b = json_obj_get(&d, a, "b");
    assert_int_equal(json_kind(&d, b), JSON_KIND_ARRAY);
    assert_int_equal(json_size(&d, b), 1);
    /* "d\u0061ta" means data too but is not spelled so: its value keeps its
     * member. The last "data" of root, the string, is the one found. */
    int esc_key = json_next(&d, json_child(&d, root));
    assert_true(json_str_esc(&d, esc_key));
    assert_int_equal(json_size(&d, json_obj_val(&d, esc_key)), 1);
    assert_int_equal(json_kind(&d, json_obj_get(&d, root, "data")), JSON_KIND_STRING);
    int tokens = json_ntok(&d);
    json_doc full;
    json_doc_init(&full);
    assert_int_equal(json_parse(&full, S(src), NULL), PL_OK);
    assert_int_equal(json_ntok(&full), tokens + 8); /* t 1 s [ 1 { data 2 */
    json_doc_release(&full);

    /* Validity and the depth limit hold inside opaque values. */
    static const char bad[] = "{\"data\":{\"t\":[1,}}";
    assert_int_equal(json_parse(&d, S(bad), &lim), PL_EINVAL);
    size_t off;
    json_error(&d, &off);
    assert_int_equal(off, strlen("{\"data\":{\"t\":[1,"));
    json_limits shallow = {.max_depth = 3, .opaque_key = "data"};
    static const char deep[] = "{\"data\":[[[1]]]}";
    assert_int_equal(json_parse(&d, S(deep), &shallow), PL_ELIMIT);
    /* ...but its elements are not tokens: 3 tokens fit where 1,000 would not. */
    char many[4096] = "{\"data\":[";
    for (int i = 0; i < 1000; i++)
        strcat(many, i ? ",0" : "0");
    strcat(many, "]}");
    json_limits few = {.max_tokens = 3, .opaque_key = "data"};
    assert_int_equal(json_parse(&d, many, strlen(many), &few), PL_OK);
    assert_int_equal(json_ntok(&d), 3);
    few.opaque_key = NULL;
    assert_int_equal(json_parse(&d, many, strlen(many), &few), PL_ELIMIT);
    json_doc_release(&d);
}

static void test_navigation(void **state)
{
    static const char src[] = "{\"a\":1,\"b\":[true,false,null],\"c\":\"x\\ny\",\"a\":2,"
                              "\"\\u0064\":{\"e\":[]}}\n[10,-20]";
    json_doc d;
    json_doc_init(&d);
    assert_int_equal(json_parse(&d, S(src), NULL), PL_OK);
    assert_int_equal(json_count(&d), 2);
    int o = json_root(&d, 0), arr2 = json_root(&d, 1);
    assert_int_equal(o, 0);
    assert_int_equal(json_root(&d, 2), -1);
    assert_int_equal(json_root(&d, -1), -1);
    assert_int_equal(json_next(&d, o), arr2);
    assert_int_equal(json_next(&d, arr2), -1);
    assert_int_equal(json_kind(&d, o), JSON_KIND_OBJECT);
    assert_int_equal(json_size(&d, o), 5);
    assert_int_equal(json_skip(&d, o), arr2);
    assert_int_equal(json_skip(&d, arr2), json_ntok(&d));

    /* Member iteration sees every key in order, duplicates included. */
    const char *keys[] = {"a", "b", "c", "a", "d"};
    int i = 0;
    for (int k = json_child(&d, o); k >= 0; k = json_next(&d, k), i++) {
        assert_true(i < 5);
        assert_true(json_str_eq(&d, k, keys[i]));
        assert_int_equal(json_obj_val(&d, k), k + 1);
        assert_int_equal(json_next(&d, k + 1), -1); /* a value has no sibling */
    }
    assert_int_equal(i, 5);

    /* Last duplicate wins; escaped keys match their unescaped form. */
    uint64_t u;
    assert_int_equal(json_u64(&d, json_obj_get(&d, o, "a"), &u), PL_OK);
    assert_int_equal(u, 2);
    int dd = json_obj_get(&d, o, "d");
    assert_int_equal(json_kind(&d, dd), JSON_KIND_OBJECT);
    assert_int_equal(json_kind(&d, json_obj_get(&d, dd, "e")), JSON_KIND_ARRAY);
    assert_int_equal(json_child(&d, json_obj_get(&d, dd, "e")), -1);
    assert_int_equal(json_obj_get(&d, o, "zz"), -1);
    assert_int_equal(json_obj_get(&d, o, ""), -1);
    assert_int_equal(json_obj_get(&d, arr2, "a"), -1); /* not an object */

    /* Array iteration and raw spans. */
    int b = json_obj_get(&d, o, "b");
    const char *p;
    size_t n;
    assert_int_equal(json_raw(&d, b, &p, &n), PL_OK);
    assert_int_equal(n, strlen("[true,false,null]"));
    assert_memory_equal(p, "[true,false,null]", n);
    enum json_kind want[] = {JSON_KIND_TRUE, JSON_KIND_FALSE, JSON_KIND_NULL};
    i = 0;
    for (int e = json_child(&d, b); e >= 0; e = json_next(&d, e))
        assert_int_equal(json_kind(&d, e), want[i++]);
    assert_int_equal(i, 3);
    int bv;
    assert_int_equal(json_bool(&d, json_child(&d, b), &bv), PL_OK);
    assert_int_equal(bv, 1);
    assert_int_equal(json_bool(&d, json_child(&d, b) + 1, &bv), PL_OK);
    assert_int_equal(bv, 0);
    assert_int_equal(json_bool(&d, json_child(&d, b) + 2, &bv), PL_EINVAL);

    int c = json_obj_get(&d, o, "c");
    assert_int_equal(json_raw(&d, c, &p, &n), PL_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(p, "\"x\\ny\"", 6);
    assert_int_equal(json_str_raw(&d, c, &p, &n), PL_OK);
    assert_memory_equal(p, "x\\ny", n);
    char buf[8];
    assert_int_equal(json_str_copy(&d, c, buf, sizeof(buf), &n), PL_OK);
    assert_int_equal(n, 3);
    assert_string_equal(buf, "x\ny");
    assert_true(json_str_eq(&d, c, "x\ny"));
    assert_false(json_str_eq(&d, c, "x\\ny"));
    assert_false(json_str_eq(&d, c, "x\n"));
    assert_false(json_str_eq(&d, c, "x\nyz"));
    assert_false(json_str_eq(&d, b, "x"));

    int64_t s64;
    assert_int_equal(json_i64(&d, json_child(&d, arr2) + 1, &s64), PL_OK);
    assert_int_equal(s64, -20);
    json_doc_release(&d);
}

static void test_bad_indexes(void **state)
{
    json_doc d;
    json_doc_init(&d);
    const char *p = NULL;
    size_t n = 0;
    char buf[4];
    uint64_t u;
    int64_t s;
    int bv;

    /* Before any parse and after a failed one, nothing is readable. */
    assert_int_equal(json_kind(&d, 0), JSON_KIND_NONE);
    assert_int_equal(json_root(&d, 0), -1);
    assert_int_equal(json_parse(&d, S("[1"), NULL), PL_EINVAL);
    assert_int_equal(json_parse(&d, S("[\"s\",1]"), NULL), PL_OK);
    int bads[] = {-1000, -1, 3, 4, 1 << 30};
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        int t = bads[i];
        assert_int_equal(json_kind(&d, t), JSON_KIND_NONE);
        assert_int_equal(json_size(&d, t), 0);
        assert_int_equal(json_skip(&d, t), -1);
        assert_int_equal(json_child(&d, t), -1);
        assert_int_equal(json_next(&d, t), -1);
        assert_int_equal(json_obj_val(&d, t), -1);
        assert_int_equal(json_obj_get(&d, t, "a"), -1);
        assert_int_equal(json_raw(&d, t, &p, &n), PL_EINVAL);
        assert_int_equal(json_str_raw(&d, t, &p, &n), PL_EINVAL);
        assert_false(json_str_eq(&d, t, ""));
        assert_int_equal(json_str_copy(&d, t, buf, sizeof(buf), &n), PL_EINVAL);
        assert_int_equal(json_u64(&d, t, &u), PL_EINVAL);
        assert_int_equal(json_i64(&d, t, &s), PL_EINVAL);
        assert_int_equal(json_bool(&d, t, &bv), PL_EINVAL);
    }
    /* Wrong types. */
    assert_int_equal(json_u64(&d, 1, &u), PL_EINVAL); /* a string, not a number */
    assert_int_equal(json_str_copy(&d, 2, buf, sizeof(buf), &n), PL_EINVAL);
    assert_int_equal(json_str_raw(&d, 0, &p, &n), PL_EINVAL);
    assert_int_equal(json_obj_val(&d, 1), -1); /* an array element is not a key */
    assert_int_equal(json_size(&d, 1), 0);
    json_doc_release(&d);
}

struct int_case {
    const char *src;
    int u_rc;
    uint64_t u;
    int i_rc;
    int64_t i;
};

static const struct int_case ints[] = {
    {"0", PL_OK, 0, PL_OK, 0},
    {"-0", PL_EINVAL, 0, PL_OK, 0},
    {"42", PL_OK, 42, PL_OK, 42},
    {"-42", PL_EINVAL, 0, PL_OK, -42},
    {"9007199254740993", PL_OK, 9007199254740993ULL, PL_OK, 9007199254740993LL},
    {"9223372036854775807", PL_OK, 9223372036854775807ULL, PL_OK, INT64_MAX},
    {"9223372036854775808", PL_OK, 9223372036854775808ULL, PL_ELIMIT, 0},
    {"-9223372036854775808", PL_EINVAL, 0, PL_OK, INT64_MIN},
    {"-9223372036854775809", PL_EINVAL, 0, PL_ELIMIT, 0},
    {"18446744073709551615", PL_OK, UINT64_MAX, PL_ELIMIT, 0},
    {"18446744073709551616", PL_ELIMIT, 0, PL_ELIMIT, 0},
    {"99999999999999999999999999", PL_ELIMIT, 0, PL_ELIMIT, 0},
    {"1.0", PL_EINVAL, 0, PL_EINVAL, 0},
    {"1e2", PL_EINVAL, 0, PL_EINVAL, 0},
    {"1E2", PL_EINVAL, 0, PL_EINVAL, 0},
    {"-1.5", PL_EINVAL, 0, PL_EINVAL, 0},
    {"\"1\"", PL_EINVAL, 0, PL_EINVAL, 0},
    {"true", PL_EINVAL, 0, PL_EINVAL, 0},
    {"null", PL_EINVAL, 0, PL_EINVAL, 0},
    {"[1]", PL_EINVAL, 0, PL_EINVAL, 0},
};

static void test_integers(void **state)
{
    json_doc d;
    json_doc_init(&d);
    for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++) {
        uint64_t u = 77;
        int64_t i = 77;
        assert_int_equal(json_parse(&d, ints[k].src, strlen(ints[k].src), NULL), PL_OK);
        int rc = json_u64(&d, 0, &u);
        if (rc != ints[k].u_rc) fail_msg("u64 case %s: rc %d", ints[k].src, rc);
        assert_int_equal(u, rc == PL_OK ? ints[k].u : 77); /* untouched on error */
        rc = json_i64(&d, 0, &i);
        if (rc != ints[k].i_rc) fail_msg("i64 case %s: rc %d", ints[k].src, rc);
        assert_int_equal(i, rc == PL_OK ? ints[k].i : 77);
    }
    json_doc_release(&d);
}

struct str_case {
    const char *src;
    const char *want;
    size_t want_len;
};

static const struct str_case strs[] = {
    {"\"\"", "", 0},
    {"\"plain\"", "plain", 5},
    {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8},
    {"\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6},
    {"\"\\ud83d\\ude00!\"", "\xf0\x9f\x98\x80!", 5},
    {"\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4},
    {"\"a\\u0000b\"", "a\0b", 3},
    {"\"\xc3\xa9\\n\"", "\xc3\xa9\n", 3},
    {"\"\\u007f\\u0080\\u07ff\\u0800\"", "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80", 8},
};

static void test_strings(void **state)
{
    json_doc d;
    json_doc_init(&d);
    for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++) {
        char buf[32];
        size_t n = 999;
        assert_int_equal(json_parse(&d, strs[k].src, strlen(strs[k].src), NULL), PL_OK);
        assert_int_equal(json_str_copy(&d, 0, buf, sizeof(buf), &n), PL_OK);
        assert_int_equal(n, strs[k].want_len);
        assert_memory_equal(buf, strs[k].want, n);
        assert_int_equal(buf[n], '\0');
        assert_true(json_str_eqn(&d, 0, strs[k].want, strs[k].want_len));
        if (strs[k].want_len > 0) {
            assert_false(json_str_eqn(&d, 0, strs[k].want, strs[k].want_len - 1));
            /* Exactly-fitting buffer works, one byte less does not. */
            assert_int_equal(json_str_copy(&d, 0, buf, n + 1, NULL), PL_OK);
            assert_int_equal(json_str_copy(&d, 0, buf, n, NULL), PL_ELIMIT);
        }
        assert_int_equal(json_str_copy(&d, 0, NULL, 0, NULL), PL_ELIMIT);
    }
    json_doc_release(&d);
}

/* Strings are scanned eight plain bytes a step: a byte that ends or breaks the
 * string (quote, backslash, control character, non-ASCII) is found at every
 * position across those steps, and the string's span is exact. */
static void test_string_steps(void **state)
{
    static const struct {
        const char *ins;
        size_t n;
        int ok;
        int closes; /* the inserted quote ends the string */
    } cases[] = {
        {"\"", 1, 1, 1},           {"\\n", 2, 1, 0},      {"\x01", 1, 0, 0}, {"\x1f", 1, 0, 0},
        {"\x7f", 1, 1, 0},         {"\xc3\xa9", 2, 1, 0}, {"\xc3", 1, 0, 0}, {"\x80", 1, 0, 0},
        {"\xed\xa0\x80", 3, 0, 0}, {" ", 1, 1, 0},        {"~", 1, 1, 0},
    };
    json_doc d;
    json_doc_init(&d);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        for (size_t at = 0; at < 40; at++) {
            char src[64];
            size_t n = 0;
            src[n++] = '"';
            memset(src + n, 'a', at);
            n += at;
            memcpy(src + n, cases[k].ins, cases[k].n);
            n += cases[k].n;
            memset(src + n, 'b', 17);
            n += 17;
            src[n++] = '"';
            int rc = json_parse(&d, src, n, NULL);
            if (cases[k].closes) { /* "aaa" then bbb": trailing garbage */
                assert_int_not_equal(rc, PL_OK);
                continue;
            }
            if (rc != (cases[k].ok ? PL_OK : PL_EINVAL))
                fail_msg("case %zu at %zu: rc %d", k, at, rc);
            if (!cases[k].ok) continue;
            const char *p;
            size_t len;
            assert_int_equal(json_raw(&d, 0, &p, &len), PL_OK);
            assert_ptr_equal(p, src);
            assert_int_equal(len, n);
        }
    }
    json_doc_release(&d);
}

/* The token array is kept across parses: a small parse after a large one does
 * not reallocate, so one doc per connection costs no allocation per message. */
static void test_reuse(void **state)
{
    json_doc d;
    json_doc_init(&d);
    char *s = repeat("[", 1, "1,", 500);
    size_t n = strlen(s);
    s[n - 1] = ']';
    assert_int_equal(json_parse(&d, s, n, NULL), PL_OK);
    assert_int_equal(json_ntok(&d), 501);
    free(s);
    void *toks = d._tok;
    size_t cap = d._cap;
    pl_mem_fail_after(0); /* any allocation would now fail */
    assert_int_equal(json_parse(&d, S("{\"a\":[1,2,3]}"), NULL), PL_OK);
    assert_int_equal(json_parse(&d, S("{} {}"), NULL), PL_OK);
    pl_mem_fail_after(-1);
    assert_ptr_equal(d._tok, toks);
    assert_int_equal(d._cap, cap);
    assert_int_equal(json_count(&d), 2);
    json_doc_release(&d);
    assert_null(d._tok);
}

static void test_alloc_failure(void **state)
{
    json_doc d;
    json_doc_init(&d);
    pl_mem_fail_after(0);
    assert_int_equal(json_parse(&d, S("{\"a\":1}"), NULL), PL_ENOMEM);
    pl_mem_fail_after(-1);
    assert_int_equal(json_ntok(&d), 0);
    assert_non_null(json_error(&d, NULL));
    /* The doc is still usable afterwards. */
    assert_int_equal(json_parse(&d, S("{\"a\":1}"), NULL), PL_OK);
    assert_int_equal(json_ntok(&d), 3);
    /* Growing an existing array fails cleanly and keeps the old one. */
    char *s = repeat("[", 1, "1,", 1000);
    size_t n = strlen(s);
    s[n - 1] = ']';
    pl_mem_fail_after(0);
    assert_int_equal(json_parse(&d, s, n, NULL), PL_ENOMEM);
    pl_mem_fail_after(-1);
    assert_int_equal(json_parse(&d, S("[1]"), NULL), PL_OK);
    assert_int_equal(json_parse(&d, s, n, NULL), PL_OK);
    free(s);
    json_doc_release(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_cases),    cmocka_unit_test(test_bad_cases),
        cmocka_unit_test(test_depth_limit),   cmocka_unit_test(test_token_limit),
        cmocka_unit_test(test_navigation),    cmocka_unit_test(test_obj_get_keys),
        cmocka_unit_test(test_bad_indexes),   cmocka_unit_test(test_integers),
        cmocka_unit_test(test_strings),       cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_alloc_failure), cmocka_unit_test(test_string_steps),
        cmocka_unit_test(test_obj_fields),    cmocka_unit_test(test_opaque_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
