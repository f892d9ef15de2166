/* Unit tests for proto/command: command shape per PROTOCOL.md section 2 (id,
 * method, params), batching with per-command errors, whole-message errors, the
 * typed param getters and allocation failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/command.h"
#include "proto/proto_int.h"
#include "util/mem.h"
#include "util/status.h"

#define S(lit) lit, sizeof(lit) - 1

static int setup(void **state)
{
    proto_batch *b = malloc(sizeof(*b));
    proto_batch_init(b);
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    proto_batch_release(*state);
    free(*state);
    return 0;
}

static int method_is(const proto_cmd *c, const char *m)
{
    return c->method && c->method_len == strlen(m) && memcmp(c->method, m, c->method_len) == 0;
}

static void test_single(void **state)
{
    proto_batch *b = *state;
    const char *p;
    size_t n;
    assert_int_equal(
        proto_decode(b,
                     S("{\"id\": 7, \"method\": \"subscribe\", \"params\": {\"channel\": "
                       "\"room:42\"}}"),
                     NULL),
        PL_OK);
    assert_int_equal(b->ncmds, 1);
    const proto_cmd *c = &b->cmds[0];
    assert_int_equal(c->error, 0);
    assert_null(c->errmsg);
    assert_true(c->has_id);
    assert_int_equal(c->id, 7);
    assert_true(method_is(c, "subscribe"));
    assert_int_equal(json_kind(&b->doc, c->params), JSON_KIND_OBJECT);
    assert_int_equal(c->tok, 0);
    assert_int_equal(proto_param_str(b, c->params, "channel", &p, &n), PROTO_PARAM_OK);
    assert_int_equal(n, 7);
    assert_memory_equal(p, "room:42", 7);
}

static void test_batch_isolates_errors(void **state)
{
    proto_batch *b = *state;
    static const char msg[] = "{\"id\":1,\"method\":\"publish\",\"params\":{\"channel\":\"a\"}}\n"
                              "{\"id\":2,\"params\":{}}\n"
                              "[1,2]\n"
                              "{\"method\":\"typing\",\"params\":{\"channel\":\"a\"}}\n"
                              "{\"id\":0,\"method\":\"x\"}\n";
    assert_int_equal(proto_decode(b, S(msg), NULL), PL_OK);
    assert_int_equal(b->ncmds, 5);
    assert_int_equal(b->cmds[0].error, 0);
    assert_int_equal(b->cmds[0].id, 1);
    assert_true(method_is(&b->cmds[0], "publish"));

    assert_int_equal(b->cmds[1].error, PROTO_ERR_BAD_REQUEST);
    assert_true(b->cmds[1].has_id); /* the reply can still carry the id */
    assert_int_equal(b->cmds[1].id, 2);
    assert_string_equal(b->cmds[1].errmsg, "missing method");

    assert_int_equal(b->cmds[2].error, PROTO_ERR_BAD_REQUEST);
    assert_false(b->cmds[2].has_id);
    assert_string_equal(b->cmds[2].errmsg, "command must be a JSON object");

    assert_int_equal(b->cmds[3].error, 0);
    assert_false(b->cmds[3].has_id); /* fire-and-forget */
    assert_true(method_is(&b->cmds[3], "typing"));

    assert_int_equal(b->cmds[4].error, PROTO_ERR_BAD_REQUEST);
    assert_false(b->cmds[4].has_id);
}

struct msg_case {
    const char *src;
    size_t len;
    int rc;
    int error;
};

/* Messages that are unusable as a whole: exactly one error, without id. */
static const struct msg_case whole[] = {
    {S(""), PL_EINVAL, PROTO_ERR_BAD_REQUEST},
    {S("\n\n"), PL_EINVAL, PROTO_ERR_BAD_REQUEST},
    {S("{"), PL_EINVAL, PROTO_ERR_BAD_REQUEST},
    {S("{\"id\":1,\"method\":\"x\"}{\"id\":2,\"method\":\"x\"}"), PL_EINVAL, PROTO_ERR_BAD_REQUEST},
    {S("{\"id\":1,\"method\":\"x\",}"), PL_EINVAL, PROTO_ERR_BAD_REQUEST},
    {S("{\"id\":1,\"method\":\"x\"}\n{oops}"), PL_EINVAL, PROTO_ERR_BAD_REQUEST},
    {S("{\"id\":1,\"method\":\"x\0\"}"), PL_EINVAL, PROTO_ERR_BAD_REQUEST},
    {S("{\"id\":1,\"method\":\"\xff\"}"), PL_EINVAL, PROTO_ERR_BAD_REQUEST},
    {S("hello"), PL_EINVAL, PROTO_ERR_BAD_REQUEST},
};

static void test_whole_message_errors(void **state)
{
    proto_batch *b = *state;
    for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
        int rc = proto_decode(b, whole[i].src, whole[i].len, NULL);
        if (rc != whole[i].rc) fail_msg("case %zu: rc %d", i, rc);
        assert_int_equal(b->ncmds, 1);
        assert_int_equal(b->cmds[0].error, whole[i].error);
        assert_false(b->cmds[0].has_id);
        assert_int_equal(b->cmds[0].tok, -1);
        assert_int_equal(b->cmds[0].params, -1);
        assert_null(b->cmds[0].method);
        assert_non_null(strstr(b->cmds[0].errmsg, "malformed JSON at byte "));
    }
}

static void test_limits(void **state)
{
    proto_batch *b = *state;
    size_t n = 20000;
    char *s = malloc(n + 64);
    int len = sprintf(s, "{\"id\":1,\"method\":\"publish\",\"params\":{\"data\":");
    memset(s + len, '[', n);
    assert_int_equal(proto_decode(b, s, (size_t)len + n, NULL), PL_ELIMIT);
    assert_int_equal(b->ncmds, 1);
    assert_int_equal(b->cmds[0].error, PROTO_ERR_LIMIT);
    assert_false(b->cmds[0].has_id);
    assert_non_null(strstr(b->cmds[0].errmsg, "nesting too deep"));
    free(s);

    json_limits lim = {.max_tokens = 4};
    assert_int_equal(proto_decode(b, S("{\"method\":\"pong\"}"), &lim), PL_OK);
    assert_int_equal(proto_decode(b, S("{\"method\":\"pong\"}\n{\"method\":\"pong\"}"), &lim),
                     PL_ELIMIT);
    assert_int_equal(b->cmds[0].error, PROTO_ERR_LIMIT);
}

static void test_large_batch(void **state)
{
    proto_batch *b = *state;
    size_t count = 2000;
    char *s = malloc(count * 64);
    size_t len = 0;
    for (size_t i = 0; i < count; i++)
        len += (size_t)sprintf(s + len,
                               "{\"id\":%zu,\"method\":\"read\",\"params\":{\"offset\":%zu}}\n",
                               i + 1, i * 3);
    assert_int_equal(proto_decode(b, s, len, NULL), PL_OK);
    assert_int_equal(b->ncmds, count);
    for (size_t i = 0; i < count; i++) {
        uint64_t off;
        assert_int_equal(b->cmds[i].error, 0);
        assert_int_equal(b->cmds[i].id, i + 1);
        assert_int_equal(proto_param_u64(b, b->cmds[i].params, "offset", &off), PROTO_PARAM_OK);
        assert_int_equal(off, i * 3);
    }
    /* A later, smaller message reuses the arrays. */
    assert_int_equal(proto_decode(b, S("{\"method\":\"pong\"}"), NULL), PL_OK);
    assert_int_equal(b->ncmds, 1);
    assert_true(method_is(&b->cmds[0], "pong"));
    free(s);
}

struct id_case {
    const char *id; /* JSON text of the id value */
    int ok;
    uint64_t want;
};

static const struct id_case ids[] = {
    {"1", 1, 1},
    {"7", 1, 7},
    {"9007199254740992", 1, UINT64_C(9007199254740992)}, /* 2^53 */
    {"9007199254740993", 0, 0},                          /* 2^53 + 1 */
    {"18446744073709551615", 0, 0},
    {"18446744073709551616", 0, 0},
    {"0", 0, 0},
    {"-0", 0, 0},
    {"-1", 0, 0},
    {"1.5", 0, 0},
    {"1.0", 0, 0},
    {"1e3", 0, 0},
    {"\"7\"", 0, 0},
    {"null", 0, 0},
    {"true", 0, 0},
    {"[7]", 0, 0},
    {"{}", 0, 0},
};

static void test_ids(void **state)
{
    proto_batch *b = *state;
    char msg[128];
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        int n = snprintf(msg, sizeof(msg), "{\"id\":%s,\"method\":\"history\"}", ids[i].id);
        assert_int_equal(proto_decode(b, msg, (size_t)n, NULL), PL_OK);
        const proto_cmd *c = &b->cmds[0];
        if (ids[i].ok) {
            if (c->error) fail_msg("id %s rejected: %s", ids[i].id, c->errmsg);
            assert_true(c->has_id);
            assert_int_equal(c->id, ids[i].want);
        } else {
            if (c->error != PROTO_ERR_BAD_REQUEST) fail_msg("id %s accepted", ids[i].id);
            assert_false(c->has_id);
            assert_string_equal(c->errmsg, "id must be an integer from 1 to 2^53");
        }
    }
    /* Duplicate keys: the last id wins, as in JSON.parse. */
    assert_int_equal(proto_decode(b, S("{\"id\":1,\"method\":\"x\",\"id\":2}"), NULL), PL_OK);
    assert_int_equal(b->cmds[0].id, 2);
    assert_int_equal(proto_decode(b, S("{\"id\":1,\"method\":\"x\",\"id\":0}"), NULL), PL_OK);
    assert_int_equal(b->cmds[0].error, PROTO_ERR_BAD_REQUEST);
}

struct shape_case {
    const char *src;
    const char *errmsg; /* NULL: valid */
};

static const struct shape_case shapes[] = {
    {"{\"id\":1,\"method\":\"pong\"}", NULL},
    {"{\"method\":\"pong\",\"params\":{}}", NULL},
    {"{\"method\":\"pong\",\"extra\":[1,{\"x\":null}],\"jsonrpc\":\"2.0\"}", NULL},
    {"{\"id\":1}", "missing method"},
    {"{}", "missing method"},
    {"{\"id\":1,\"method\":7}", "method must be a string"},
    {"{\"id\":1,\"method\":null}", "method must be a string"},
    {"{\"id\":1,\"method\":[\"x\"]}", "method must be a string"},
    {"{\"id\":1,\"method\":\"\"}", "method must not be empty"},
    {"{\"id\":1,\"method\":\"x\",\"params\":[]}", "params must be an object"},
    {"{\"id\":1,\"method\":\"x\",\"params\":\"{}\"}", "params must be an object"},
    {"{\"id\":1,\"method\":\"x\",\"params\":null}", "params must be an object"},
    {"{\"id\":1,\"method\":\"x\",\"params\":1}", "params must be an object"},
    {"[]", "command must be a JSON object"},
    {"\"subscribe\"", "command must be a JSON object"},
    {"null", "command must be a JSON object"},
    {"42", "command must be a JSON object"},
};

static void test_shapes(void **state)
{
    proto_batch *b = *state;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        assert_int_equal(proto_decode(b, shapes[i].src, strlen(shapes[i].src), NULL), PL_OK);
        assert_int_equal(b->ncmds, 1);
        const proto_cmd *c = &b->cmds[0];
        if (!shapes[i].errmsg) {
            if (c->error) fail_msg("case %s rejected: %s", shapes[i].src, c->errmsg);
            assert_true(method_is(c, "pong"));
        } else {
            if (c->error != PROTO_ERR_BAD_REQUEST) fail_msg("case %s accepted", shapes[i].src);
            assert_string_equal(c->errmsg, shapes[i].errmsg);
        }
    }
    /* A command without params: every getter reports "missing". */
    assert_int_equal(proto_decode(b, S("{\"method\":\"pong\"}"), NULL), PL_OK);
    assert_int_equal(b->cmds[0].params, -1);
    const char *p;
    size_t n;
    uint64_t u;
    int v;
    assert_int_equal(proto_param_str(b, -1, "channel", &p, &n), PROTO_PARAM_MISSING);
    assert_int_equal(proto_param_u64(b, -1, "offset", &u), PROTO_PARAM_MISSING);
    assert_int_equal(proto_param_bool(b, -1, "reverse", &v), PROTO_PARAM_MISSING);
    assert_int_equal(proto_param_obj(b, -1, "since", &v), PROTO_PARAM_MISSING);
    assert_int_equal(proto_param_arr(b, -1, "x", &v), PROTO_PARAM_MISSING);
    assert_int_equal(proto_param_raw(b, -1, "data", &p, &n), PROTO_PARAM_MISSING);
}

static void test_escaped_strings(void **state)
{
    proto_batch *b = *state;
    const char *p1, *p2, *p3;
    size_t n1, n2, n3;
    /* PHP escapes '/', some serializers escape everything non-ASCII. */
    assert_int_equal(
        proto_decode(b,
                     S("{\"id\":3,\"method\":\"sub\\u0073cribe\",\"params\":{\"channel\":"
                       "\"news\\/eu\",\"token\":\"abc\",\"k\":\"caf\\u00e9 \\ud83d\\ude00\"}}"),
                     NULL),
        PL_OK);
    const proto_cmd *c = &b->cmds[0];
    assert_int_equal(c->error, 0);
    assert_true(method_is(c, "subscribe"));
    assert_int_equal(proto_param_str(b, c->params, "channel", &p1, &n1), PROTO_PARAM_OK);
    assert_int_equal(proto_param_str(b, c->params, "token", &p2, &n2), PROTO_PARAM_OK);
    assert_int_equal(proto_param_str(b, c->params, "k", &p3, &n3), PROTO_PARAM_OK);
    /* All spans stay valid at once: each is decoded at its own offset. */
    assert_int_equal(n1, 7);
    assert_memory_equal(p1, "news/eu", 7);
    assert_int_equal(n2, 3);
    assert_memory_equal(p2, "abc", 3);
    assert_int_equal(n3, 10);
    assert_memory_equal(p3, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10);
    assert_true(method_is(c, "subscribe"));
    /* Asking again gives the same answer. */
    assert_int_equal(proto_param_str(b, c->params, "channel", &p1, &n1), PROTO_PARAM_OK);
    assert_memory_equal(p1, "news/eu", 7);

    /* Keys are compared after unescaping too. */
    assert_int_equal(proto_decode(b, S("{\"\\u006d\\u0065thod\":\"pong\"}"), NULL), PL_OK);
    assert_int_equal(b->cmds[0].error, 0);
    assert_true(method_is(&b->cmds[0], "pong"));

    /* \u0000 decodes to a NUL byte that callers see through the length. */
    assert_int_equal(proto_decode(b, S("{\"method\":\"a\\u0000b\"}"), NULL), PL_OK);
    assert_int_equal(b->cmds[0].method_len, 3);
    assert_memory_equal(b->cmds[0].method, "a\0b", 3);
}

static void test_getters(void **state)
{
    proto_batch *b = *state;
    static const char msg[] =
        "{\"id\":9,\"method\":\"publish\",\"params\":{"
        "\"channel\":\"room:1\",\"n\":5,\"neg\":-1,\"frac\":1.5,\"big\":18446744073709551616,"
        "\"yes\":true,\"no\":false,\"nil\":null,\"obj\":{\"offset\":3,\"epoch\":\"e1\"},"
        "\"arr\":[1,2],\"data\":{\"text\":\"hi \\\"there\\\"\",\"n\":[1.5e3, null]},"
        "\"sdata\":\"x\\ny\"}}";
    const char *p;
    size_t n;
    uint64_t u = 42;
    int v = 42, t = 42;

    assert_int_equal(proto_decode(b, S(msg), NULL), PL_OK);
    int prm = b->cmds[0].params;
    assert_int_equal(b->cmds[0].error, 0);

    /* str */
    assert_int_equal(proto_param_str(b, prm, "channel", &p, &n), PROTO_PARAM_OK);
    assert_memory_equal(p, "room:1", n);
    assert_int_equal(proto_param_str(b, prm, "n", &p, &n), PROTO_PARAM_TYPE);
    assert_int_equal(proto_param_str(b, prm, "obj", &p, &n), PROTO_PARAM_TYPE);
    assert_int_equal(proto_param_str(b, prm, "nil", &p, &n), PROTO_PARAM_TYPE);
    assert_int_equal(proto_param_str(b, prm, "nope", &p, &n), PROTO_PARAM_MISSING);
    /* A nested key is not a member of params. */
    assert_int_equal(proto_param_str(b, prm, "epoch", &p, &n), PROTO_PARAM_MISSING);

    /* u64: wrong types and out-of-range leave *out untouched. */
    assert_int_equal(proto_param_u64(b, prm, "n", &u), PROTO_PARAM_OK);
    assert_int_equal(u, 5);
    u = 42;
    assert_int_equal(proto_param_u64(b, prm, "neg", &u), PROTO_PARAM_TYPE);
    assert_int_equal(proto_param_u64(b, prm, "frac", &u), PROTO_PARAM_TYPE);
    assert_int_equal(proto_param_u64(b, prm, "big", &u), PROTO_PARAM_TYPE);
    assert_int_equal(proto_param_u64(b, prm, "channel", &u), PROTO_PARAM_TYPE);
    assert_int_equal(proto_param_u64(b, prm, "yes", &u), PROTO_PARAM_TYPE);
    assert_int_equal(u, 42);

    /* bool */
    assert_int_equal(proto_param_bool(b, prm, "yes", &v), PROTO_PARAM_OK);
    assert_int_equal(v, 1);
    assert_int_equal(proto_param_bool(b, prm, "no", &v), PROTO_PARAM_OK);
    assert_int_equal(v, 0);
    v = 42;
    assert_int_equal(proto_param_bool(b, prm, "n", &v), PROTO_PARAM_TYPE);
    assert_int_equal(proto_param_bool(b, prm, "nil", &v), PROTO_PARAM_TYPE);
    assert_int_equal(proto_param_bool(b, prm, "channel", &v), PROTO_PARAM_TYPE);
    assert_int_equal(v, 42);

    /* obj / arr, and nested getters on the returned token. */
    assert_int_equal(proto_param_obj(b, prm, "obj", &t), PROTO_PARAM_OK);
    assert_int_equal(proto_param_u64(b, t, "offset", &u), PROTO_PARAM_OK);
    assert_int_equal(u, 3);
    assert_int_equal(proto_param_str(b, t, "epoch", &p, &n), PROTO_PARAM_OK);
    assert_memory_equal(p, "e1", 2);
    t = 42;
    assert_int_equal(proto_param_obj(b, prm, "arr", &t), PROTO_PARAM_TYPE);
    assert_int_equal(proto_param_obj(b, prm, "nil", &t), PROTO_PARAM_TYPE);
    assert_int_equal(t, 42);
    assert_int_equal(proto_param_arr(b, prm, "arr", &t), PROTO_PARAM_OK);
    assert_int_equal(json_size(&b->doc, t), 2);
    assert_int_equal(proto_param_arr(b, prm, "obj", &t), PROTO_PARAM_TYPE);
    /* A getter on a non-object token finds nothing. */
    assert_int_equal(proto_param_u64(b, t, "offset", &u), PROTO_PARAM_MISSING);

    /* raw: exact bytes, strings with their quotes and escapes. */
    assert_int_equal(proto_param_raw(b, prm, "data", &p, &n), PROTO_PARAM_OK);
    const char *want = "{\"text\":\"hi \\\"there\\\"\",\"n\":[1.5e3, null]}";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
    assert_true(p >= msg && p + n <= msg + sizeof(msg) - 1); /* zero-copy */
    assert_int_equal(proto_param_raw(b, prm, "sdata", &p, &n), PROTO_PARAM_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(p, "\"x\\ny\"", 6);
    assert_int_equal(proto_param_raw(b, prm, "nil", &p, &n), PROTO_PARAM_OK);
    assert_memory_equal(p, "null", n);
    assert_int_equal(proto_param_raw(b, prm, "frac", &p, &n), PROTO_PARAM_OK);
    assert_memory_equal(p, "1.5", n);
}

/* Every allocation in proto_decode may fail: the result is PL_ENOMEM with no
 * commands, never a crash or leak, and the batch works afterwards. */
static void test_alloc_failure(void **state)
{
    static const char msg[] = "{\"id\":1,\"method\":\"sub\\u0073cribe\",\"params\":{}}\n"
                              "{\"id\":2,\"method\":\"pong\"}";
    int saw_enomem = 0;
    for (long k = 0; k < 10; k++) {
        proto_batch b;
        proto_batch_init(&b);
        pl_mem_fail_after(k);
        int rc = proto_decode(&b, S(msg), NULL);
        pl_mem_fail_after(-1);
        if (rc == PL_ENOMEM) {
            saw_enomem++;
            assert_int_equal(b.ncmds, 0);
            assert_int_equal(proto_decode(&b, S(msg), NULL), PL_OK);
        }
        assert_int_equal(b.ncmds, 2);
        assert_true(method_is(&b.cmds[0], "subscribe"));
        assert_int_equal(b.cmds[1].id, 2);
        proto_batch_release(&b);
    }
    assert_int_equal(saw_enomem, 3); /* tokens, scratch, commands */
}

/* Channel names (PROTOCOL.md section 5): every byte value against the
 * allowed set, then the structure rules (namespace ':', user list '#'). */
static void test_channel_names(void **state)
{
    (void)state;
    const char *allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.=@/-";
    for (int ch = 0; ch < 256; ch++) {
        char name[3] = {'a', (char)ch, 'b'};
        int want = ch && strchr(allowed, ch) ? 0 : 107;
        if (ch == ':' || ch == '#') continue; /* structural, below */
        assert_int_equal(proto_channel_valid(name, 3), want);
    }
    assert_int_equal(proto_channel_valid(S("room:42")), 0);
    assert_int_equal(proto_channel_valid(S("dm#alice,bob")), 0);
    assert_int_equal(proto_channel_valid(S("ns:dm#alice,bob")), 0);
    assert_int_equal(proto_channel_valid(S(":room")), 107);
    assert_int_equal(proto_channel_valid(S("a:b:c")), 107);
    assert_int_equal(proto_channel_valid(S("dm#alice,,bob")), 107);
    assert_int_equal(proto_channel_valid(S("dm#")), 107);
    assert_int_equal(proto_channel_valid(S("")), 107);
    assert_int_equal(proto_channel_valid(S("dm#a#b")), 107); /* one user list */
    assert_int_equal(proto_channel_valid(S("dm#a:b")), 107); /* namespace before it */
    assert_int_equal(proto_channel_valid(S("a,b")), 107);    /* ',' only in a list */
    assert_int_equal(proto_channel_valid(S("dm#,a")), 107);  /* no empty user */
    assert_int_equal(proto_channel_valid(S("dm#a,")), 107);
    assert_int_equal(proto_channel_valid(S("ns:")), 107); /* no empty name */
    assert_int_equal(proto_channel_valid(S("#a")), 0);    /* a list alone is a name */
    assert_int_equal(proto_channel_valid(S("ns:#a,b")), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_isolates_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_message_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaped_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getters, setup, teardown),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_channel_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
