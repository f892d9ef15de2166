/* libFuzzer target for the client command decoder: feeds arbitrary bytes to
 * proto_decode, walks every command, every token and every accessor, checks
 * structural invariants, and cross-checks JSON validity against jansson. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/command.h"
#include "util/json.h"
#include "util/status.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

static const char *const keys[] = {"id",   "method", "params", "channel", "offset", "epoch",
                                   "data", "since",  "limit",  "token",   "",       "a"};

static void within(const char *p, size_t n, const uint8_t *src, size_t len)
{
    CHECK(p >= (const char *)src && p + n <= (const char *)src + len);
}

/* Every accessor on one token (valid or not), with invariants on the answers. */
static void walk_token(const proto_batch *b, int t, const uint8_t *src, size_t len)
{
    const json_doc *d = &b->doc;
    const char *p;
    size_t n, out;
    uint64_t u;
    int64_t s;
    int v, tt;
    char buf[64];
    enum json_kind type = json_kind(d, t);
    int valid = t >= 0 && t < json_ntok(d);

    CHECK(valid == (type != JSON_KIND_NONE));
    CHECK((json_raw(d, t, &p, &n) == PL_OK) == valid);
    if (valid) {
        within(p, n, src, len);
        CHECK(n > 0);
        CHECK(json_skip(d, t) > t && json_skip(d, t) <= json_ntok(d));
    }
    int child = json_child(d, t);
    CHECK(child == -1 || (child == t + 1 && json_size(d, t) > 0));
    int next = json_next(d, t);
    CHECK(next == -1 || next == json_skip(d, t));
    int val = json_obj_val(d, t);
    CHECK(val == -1 || (val == t + 1 && type == JSON_KIND_STRING));

    if (json_str_raw(d, t, &p, &n) == PL_OK) {
        CHECK(type == JSON_KIND_STRING);
        within(p, n, src, len);
        int rc = json_str_copy(d, t, buf, sizeof(buf), &out);
        CHECK(rc == PL_OK || rc == PL_ELIMIT);
        if (rc == PL_OK) {
            CHECK(out <= n);
            CHECK(json_str_eqn(d, t, buf, out));
            CHECK(!json_str_eqn(d, t, buf, out + 1)); /* buf[out] is the NUL */
        }
        CHECK(proto_str(b, t, &p, &n) == PL_OK);
        CHECK(json_str_eqn(d, t, p, n));
    } else {
        CHECK(type != JSON_KIND_STRING);
        CHECK(json_str_copy(d, t, buf, sizeof(buf), &out) == PL_EINVAL);
        CHECK(proto_str(b, t, &p, &n) == PL_EINVAL);
    }
    int ru = json_u64(d, t, &u), ri = json_i64(d, t, &s);
    CHECK(ru == PL_EINVAL || type == JSON_KIND_NUMBER);
    CHECK(ri == PL_EINVAL || type == JSON_KIND_NUMBER);
    if (ru == PL_OK && ri == PL_OK) CHECK((uint64_t)s == u);
    CHECK((json_bool(d, t, &v) == PL_OK) == (type == JSON_KIND_TRUE || type == JSON_KIND_FALSE));

    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        int m = json_obj_get(d, t, keys[k]);
        CHECK(m == -1 || (type == JSON_KIND_OBJECT && json_obj_val(d, m - 1) == m));
        (void)proto_param_str(b, t, keys[k], &p, &n);
        (void)proto_param_u64(b, t, keys[k], &u);
        (void)proto_param_bool(b, t, keys[k], &v);
        (void)proto_param_obj(b, t, keys[k], &tt);
        (void)proto_param_arr(b, t, keys[k], &tt);
        if (proto_param_raw(b, t, keys[k], &p, &n) == PROTO_PARAM_OK) within(p, n, src, len);
    }
}

/* Children counted by iteration must match the container's size. */
static void check_children(const json_doc *d, int t)
{
    int count = 0;
    for (int c = json_child(d, t); c >= 0; c = json_next(d, c)) {
        CHECK(c < json_skip(d, t));
        count++;
    }
    CHECK(count == json_size(d, t));
}

static void check_commands(const proto_batch *b, int rc)
{
    if (rc == PL_ENOMEM) return;
    if (rc != PL_OK) {
        CHECK(b->ncmds == 1 && b->cmds[0].error != 0 && !b->cmds[0].has_id);
        return;
    }
    CHECK(b->ncmds == (size_t)json_count(&b->doc));
    for (size_t i = 0; i < b->ncmds; i++) {
        const proto_cmd *c = &b->cmds[i];
        CHECK(c->error == 0 || c->error == PROTO_ERR_BAD_REQUEST);
        CHECK((c->error == 0) == (c->errmsg == NULL));
        CHECK(!c->has_id || (c->id >= 1 && c->id <= PROTO_ID_MAX));
        if (c->error == 0) CHECK(c->method && c->method_len > 0);
        CHECK(c->params == -1 || json_kind(&b->doc, c->params) == JSON_KIND_OBJECT);
        CHECK(json_root(&b->doc, (int)i) == c->tok);
    }
}

/* Cross-check validity with jansson for single-value documents. jansson refuses
 * numbers it cannot represent and NUL in keys, so those disagreements are allowed. */
static void differential(const json_doc *d, int rc, const uint8_t *data, size_t size)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (rc == PL_OK && json_count(d) == 1) {
        CHECK(j || strstr(err.text, "too big") || strstr(err.text, "overflow") ||
              json_error_code(&err) == json_error_null_byte_in_key);
    }
    /* jansson stops at a raw NUL byte outside strings; RFC 8259 does not. */
    if (j && rc != PL_ELIMIT && !memchr(data, 0, size)) CHECK(rc == PL_OK);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proto_batch b;
    proto_batch_init(&b);
    int rc = proto_decode(&b, (const char *)data, size, NULL);
    check_commands(&b, rc);
    if (rc == PL_OK) {
        int ntok = json_ntok(&b.doc);
        for (int t = -2; t <= ntok + 1; t++) {
            walk_token(&b, t, data, size);
            if (json_kind(&b.doc, t) == JSON_KIND_OBJECT || json_kind(&b.doc, t) == JSON_KIND_ARRAY)
                check_children(&b.doc, t);
        }
    }
    differential(&b.doc, rc, data, size);
    proto_batch_release(&b);
    return 0;
}
