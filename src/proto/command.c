/* Client command decoder; see command.h. Strings with escapes are decoded lazily
 * into a scratch buffer as long as the message, each at its own source offset:
 * the unescaped form is never longer than the escaped one, so decoded strings
 * never overlap and every span stays valid until the next decode. */
#include "proto/command.h"

#include <stdio.h>
#include <string.h>

#include "util/mem.h"
#include "util/status.h"

void proto_batch_init(proto_batch *b)
{
    memset(b, 0, sizeof(*b));
    json_doc_init(&b->doc);
}

void proto_batch_release(proto_batch *b)
{
    json_doc_release(&b->doc);
    pl_free(b->_arr);
    pl_free(b->_scratch);
    proto_batch_init(b);
}

/* ---------------------------------------------------------------- strings */

int proto_str(const proto_batch *b, int tok, const char **p, size_t *n)
{
    const char *raw;
    size_t len, out;
    if (json_str_raw(&b->doc, tok, &raw, &len) != PL_OK) return PL_EINVAL;
    if (!json_str_esc(&b->doc, tok)) {
        *p = raw;
        *n = len;
        return PL_OK;
    }
    /* proto_decode allocated scratch because the message holds a backslash. */
    size_t off = (size_t)(raw - b->doc._src);
    if (!b->_scratch || b->_scratch_cap < off + len + 1) return PL_EINVAL;
    char *dst = b->_scratch + off;
    if (json_str_copy(&b->doc, tok, dst, len + 1, &out) != PL_OK) return PL_EINVAL;
    *p = dst;
    *n = out;
    return PL_OK;
}

/* ---------------------------------------------------------------- decoding */

static int reserve_cmds(proto_batch *b, size_t n)
{
    if (n <= b->_cap) return PL_OK;
    size_t cap = b->_cap ? b->_cap * 2 : 8;
    if (cap < n) cap = n;
    if (cap > SIZE_MAX / sizeof(proto_cmd)) return PL_ENOMEM;
    proto_cmd *a = pl_realloc(b->_arr, cap * sizeof(*a));
    if (!a) return PL_ENOMEM;
    b->_arr = a;
    b->_cap = cap;
    return PL_OK;
}

static int reserve_scratch(proto_batch *b, size_t n)
{
    if (n <= b->_scratch_cap) return PL_OK;
    char *s = pl_realloc(b->_scratch, n);
    if (!s) return PL_ENOMEM;
    b->_scratch = s;
    b->_scratch_cap = n;
    return PL_OK;
}

static int bad(proto_cmd *c, const char *msg)
{
    c->error = PROTO_ERR_BAD_REQUEST;
    c->errmsg = msg;
    return -1;
}

/* Fills c from command object tok; returns 0, or -1 when c->error is set. */
static int decode_one(const proto_batch *b, int tok, proto_cmd *c)
{
    static const json_field keys[] = {JSON_FIELD("id"), JSON_FIELD("method"), JSON_FIELD("params")};
    const json_doc *d = &b->doc;
    uint64_t id;
    int v[3], t;

    memset(c, 0, sizeof(*c));
    c->tok = tok;
    c->params = -1;
    if (json_obj_fields(d, tok, keys, 3, v) < 0) return bad(c, "command must be a JSON object");
    t = v[0];
    if (t >= 0) {
        if (json_u64(d, t, &id) != PL_OK || id == 0 || id > PROTO_ID_MAX)
            return bad(c, "id must be an integer from 1 to 2^53");
        c->has_id = 1;
        c->id = id;
    }
    t = v[1];
    if (t < 0) return bad(c, "missing method");
    if (proto_str(b, t, &c->method, &c->method_len) != PL_OK)
        return bad(c, "method must be a string");
    if (c->method_len == 0) {
        c->method = NULL;
        return bad(c, "method must not be empty");
    }
    t = v[2];
    if (t >= 0) {
        if (json_kind(d, t) != JSON_KIND_OBJECT) return bad(c, "params must be an object");
        c->params = t;
    }
    return 0;
}

/* The whole message is unusable: one error without id, explaining where. */
static void message_error(proto_batch *b, int rc)
{
    size_t off;
    const char *why = json_error(&b->doc, &off);
    proto_cmd *c = &b->_one;

    memset(c, 0, sizeof(*c));
    c->tok = -1;
    c->params = -1;
    c->error = rc == PL_ELIMIT ? PROTO_ERR_LIMIT : PROTO_ERR_BAD_REQUEST;
    if (rc == PL_ELIMIT) /* Valid JSON may be over a limit: name both, so the client can tell. */
        snprintf(b->_errbuf, sizeof(b->_errbuf),
                 "%s at byte %zu (a message holds at most %u levels of nesting and %u values)",
                 why ? why : "limit exceeded", off, JSON_DEFAULT_MAX_DEPTH,
                 JSON_DEFAULT_MAX_TOKENS);
    else
        snprintf(b->_errbuf, sizeof(b->_errbuf), "malformed JSON at byte %zu: %s", off,
                 why ? why : "invalid");
    c->errmsg = b->_errbuf;
    b->cmds = c;
    b->ncmds = 1;
}

int proto_decode(proto_batch *b, const char *msg, size_t len, const json_limits *lim)
{
    size_t i = 0;
    int rc;

    b->cmds = NULL;
    b->ncmds = 0;
    /* A pub's data is only ever passed on whole: not tokenized (a third of
     * a publish command's tokens). */
    json_limits l = lim ? *lim : (json_limits){0};
    l.opaque_key = "data";
    rc = json_parse(&b->doc, msg, len, &l);
    if (rc == PL_ENOMEM) return rc;
    if (rc != PL_OK) {
        message_error(b, rc);
        return rc;
    }
    if (memchr(msg, '\\', len) && reserve_scratch(b, len) != PL_OK) return PL_ENOMEM;
    if (reserve_cmds(b, (size_t)json_count(&b->doc)) != PL_OK) return PL_ENOMEM;
    for (int t = json_root(&b->doc, 0); t >= 0; t = json_next(&b->doc, t))
        decode_one(b, t, &b->_arr[i++]);
    b->cmds = b->_arr;
    b->ncmds = i;
    return PL_OK;
}

/* ---------------------------------------------------------------- getters */

int proto_param_str(const proto_batch *b, int obj, const char *key, const char **p, size_t *n)
{
    int v = json_obj_get(&b->doc, obj, key);
    if (v < 0) return PROTO_PARAM_MISSING;
    return proto_str(b, v, p, n) == PL_OK ? PROTO_PARAM_OK : PROTO_PARAM_TYPE;
}

int proto_param_u64(const proto_batch *b, int obj, const char *key, uint64_t *out)
{
    int v = json_obj_get(&b->doc, obj, key);
    if (v < 0) return PROTO_PARAM_MISSING;
    return json_u64(&b->doc, v, out) == PL_OK ? PROTO_PARAM_OK : PROTO_PARAM_TYPE;
}

int proto_param_bool(const proto_batch *b, int obj, const char *key, int *out)
{
    int v = json_obj_get(&b->doc, obj, key);
    if (v < 0) return PROTO_PARAM_MISSING;
    return json_bool(&b->doc, v, out) == PL_OK ? PROTO_PARAM_OK : PROTO_PARAM_TYPE;
}

static int param_of_type(const proto_batch *b, int obj, const char *key, enum json_kind type,
                         int *tok)
{
    int v = json_obj_get(&b->doc, obj, key);
    if (v < 0) return PROTO_PARAM_MISSING;
    if (json_kind(&b->doc, v) != type) return PROTO_PARAM_TYPE;
    *tok = v;
    return PROTO_PARAM_OK;
}

int proto_param_obj(const proto_batch *b, int obj, const char *key, int *tok)
{
    return param_of_type(b, obj, key, JSON_KIND_OBJECT, tok);
}

int proto_param_arr(const proto_batch *b, int obj, const char *key, int *tok)
{
    return param_of_type(b, obj, key, JSON_KIND_ARRAY, tok);
}

int proto_param_raw(const proto_batch *b, int obj, const char *key, const char **p, size_t *n)
{
    int v = json_obj_get(&b->doc, obj, key);
    if (v < 0) return PROTO_PARAM_MISSING;
    return json_raw(&b->doc, v, p, n) == PL_OK ? PROTO_PARAM_OK : PROTO_PARAM_TYPE;
}
