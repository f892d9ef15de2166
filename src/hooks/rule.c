/* Compiling a routing rule's `match` from JSON into the immutable form that
 * rule_event.c evaluates. Every refusal names the JSON path of the offending
 * member, so a configuration error can point at it; limits bound the stack
 * and CPU a hostile rule can cost. */
#include "hooks/rule_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hooks/glob.h"
#include "util/mem.h"
#include "util/status.h"

#define OPS_LIST "$eq, $neq, $in, $nin, $exists, $gt, $gte, $lt, $lte, $contains"

typedef struct cctx {
    rule_match *m;
    rule_error *err;
    char path[512]; /* JSON path of the member being compiled */
    size_t plen;
    int values;  /* JSON values in operands so far */
    int clauses; /* comparisons and combinators so far */
} cctx;

static const struct {
    const char *name;
    enum rule_op op;
} op_names[] = {
    {"$eq", RULE_EQ},         {"$neq", RULE_NEQ},
    {"$in", RULE_IN},         {"$nin", RULE_NIN},
    {"$exists", RULE_EXISTS}, {"$gt", RULE_GT},
    {"$gte", RULE_GTE},       {"$lt", RULE_LT},
    {"$lte", RULE_LTE},       {"$contains", RULE_CONTAINS},
};

/* ---------------------------------------------------------------- error paths */

static size_t push_key(cctx *c, const char *key)
{
    size_t old = c->plen;
    int w = snprintf(c->path + old, sizeof(c->path) - old, ".%s", key);
    if (w > 0) c->plen = old + (size_t)w < sizeof(c->path) ? old + (size_t)w : sizeof(c->path) - 1;
    return old;
}

static size_t push_idx(cctx *c, size_t i)
{
    size_t old = c->plen;
    int w = snprintf(c->path + old, sizeof(c->path) - old, "[%zu]", i);
    if (w > 0) c->plen = old + (size_t)w < sizeof(c->path) ? old + (size_t)w : sizeof(c->path) - 1;
    return old;
}

static void pop(cctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

static int fail(cctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(cctx *c, const char *fmt, ...)
{
    if (c->err) {
        snprintf(c->err->path, sizeof(c->err->path), "%s", c->path);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err->reason, sizeof(c->err->reason), fmt, ap);
        va_end(ap);
    }
    return PL_EINVAL;
}

/* ---------------------------------------------------------------- globs */

static int add_glob(cctx *c, json_t *g, char sep, int whole_star, char **slot)
{
    if (!json_is_string(g)) return fail(c, "expected a glob string");
    const char *s = json_string_value(g);
    size_t n = json_string_length(g);
    const char *why = memchr(s, '\0', n) ? "invalid glob: contains a NUL byte" : NULL;
    if (!why) why = glob_check(s, n, sep, whole_star);
    if (why) return fail(c, "%s", why);
    return (*slot = pl_strndup(s, n)) ? PL_OK : PL_ENOMEM;
}

/* A glob or a list of globs; an empty list is an absent layer. */
static int compile_globs(cctx *c, json_t *v, const char *key, char ***out, size_t *n)
{
    char sep = key[0] == 'c' ? ':' : '.';
    size_t old = push_key(c, key), count = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !json_is_array(v))
        return fail(c, "expected a glob string or an array of them");
    if (count > RULE_MAX_GLOBS) return fail(c, "too many globs: at most %d", RULE_MAX_GLOBS);
    if (count && !(*out = pl_calloc(count, sizeof(char *)))) return PL_ENOMEM;
    *n = count;
    for (size_t i = 0; i < count; i++) {
        size_t o = json_is_array(v) ? push_idx(c, i) : c->plen;
        int rc =
            add_glob(c, json_is_array(v) ? json_array_get(v, i) : v, sep, sep == ':', &(*out)[i]);
        if (rc) return rc;
        pop(c, o);
    }
    pop(c, old);
    return PL_OK;
}

/* ---------------------------------------------------------------- nodes */

static int new_node(cctx *c, enum rule_op op, int parent)
{
    rule_match *m = c->m;
    if (m->nnodes == m->cap) {
        int cap = m->cap ? m->cap * 2 : 8;
        rule_node *nn = pl_realloc(m->nodes, (size_t)cap * sizeof(*nn));
        if (!nn) return -1;
        m->nodes = nn;
        m->cap = cap;
    }
    int i = m->nnodes++;
    rule_node *n = &m->nodes[i];
    memset(n, 0, sizeof(*n));
    n->op = (uint8_t)op;
    n->kid = n->next = -1;
    if (parent >= 0) { /* append: explanations list clauses as written */
        int *link = &m->nodes[parent].kid;
        while (*link >= 0)
            link = &m->nodes[*link].next;
        *link = i;
    }
    return i;
}

/* Counts an operand's values against RULE_MAX_VALUES and its nesting
 * against RULE_MAX_DEPTH; the recursion stops at the depth limit. */
static int check_value(cctx *c, json_t *v, int depth)
{
    if (depth > RULE_MAX_DEPTH)
        return fail(c, "value nested too deep: at most %d levels", RULE_MAX_DEPTH);
    if (++c->values > RULE_MAX_VALUES)
        return fail(c, "operands too large: at most %d JSON values in a rule", RULE_MAX_VALUES);
    int rc = PL_OK;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && !rc; i++)
            rc = check_value(c, json_array_get(v, i), depth + 1);
    } else if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it && !rc; it = json_object_iter_next(v, it))
            rc = check_value(c, json_object_iter_value(it), depth + 1);
    }
    return rc;
}

static int32_t seg_index(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 9 || (n > 1 && s[0] == '0')) return -1;
    int32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "data", "data.a.0.b" or "headers.<name>": a header's name is the whole
 * rest, dots included, since header values are strings. */
static int parse_path(cctx *c, rule_node *n, const char *key)
{
    size_t len = strlen(key);
    if (len > RULE_MAX_PATH) return fail(c, "path over %d bytes", RULE_MAX_PATH);
    const char *rest;
    if (!strncmp(key, "data", 4) && (key[4] == '\0' || key[4] == '.')) {
        n->root = RULE_ROOT_DATA;
        rest = key + 4;
    } else if (!strncmp(key, "headers", 7) && (key[7] == '\0' || key[7] == '.')) {
        n->root = RULE_ROOT_HEADERS;
        rest = key + 7;
    } else {
        return fail(c, "unknown path: a path starts with 'data' or 'headers' (e.g. "
                       "data.severity), an operator of a predicate with $and, $or or $not");
    }
    if (!(n->path = pl_strdup(key)) || !(n->segs = pl_strdup(*rest ? rest + 1 : "")))
        return PL_ENOMEM;
    if (!*rest) return PL_OK;
    char *s = n->segs;
    for (size_t off = 0;;) {
        char *dot = n->root == RULE_ROOT_DATA ? strchr(s + off, '.') : NULL;
        if (dot) *dot = '\0';
        if (!s[off]) return fail(c, "empty segment in path");
        if (n->nseg == RULE_MAX_SEGS) return fail(c, "path has over %d segments", RULE_MAX_SEGS);
        n->seg_off[n->nseg] = (uint16_t)off;
        n->seg_idx[n->nseg++] = seg_index(s + off);
        if (!dot) return PL_OK;
        off = (size_t)(dot - s) + 1;
    }
}

/* ---------------------------------------------------------------- where */

static int compile_pred(cctx *c, json_t *obj, int parent, int depth);

static int op_of(const char *name)
{
    for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
        if (!strcmp(name, op_names[i].name)) return (int)op_names[i].op;
    return -1;
}

static int check_operand(cctx *c, enum rule_op op, const char *name, json_t *arg)
{
    if ((op == RULE_IN || op == RULE_NIN) && !json_is_array(arg))
        return fail(c, "%s needs an array of values", name);
    if (op == RULE_EXISTS && !json_is_boolean(arg)) return fail(c, "$exists needs true or false");
    if (op >= RULE_GT && op <= RULE_LTE && !json_is_number(arg) && !json_is_string(arg))
        return fail(c, "%s needs a number or a string", name);
    return check_value(c, arg, 1);
}

/* One comparison of the path parsed into t; name NULL is the shorthand
 * `"path": literal` for $eq. */
static int compile_op(cctx *c, int parent, const rule_node *t, const char *name, json_t *arg)
{
    if (!t->path) return PL_EINVAL; /* parse_path failed: never called so */
    size_t old = name ? push_key(c, name) : c->plen;
    int op = name ? op_of(name) : RULE_EQ;
    if (op < 0 && (!strcmp(name, "$and") || !strcmp(name, "$or") || !strcmp(name, "$not")))
        return fail(c,
                    "%s combines predicates: write it beside paths, as in "
                    "{\"%s\": [{\"data.a\": 1}, {\"data.b\": 2}]}",
                    name, name);
    if (op < 0) return fail(c, "unknown operator %s (expected one of " OPS_LIST ")", name);
    int rc = check_operand(c, (enum rule_op)op, name, arg);
    if (rc) return rc;
    if (++c->clauses > RULE_MAX_CLAUSES)
        return fail(c, "too many clauses: at most %d", RULE_MAX_CLAUSES);
    int i = new_node(c, (enum rule_op)op, parent);
    if (i < 0) return PL_ENOMEM;
    rule_node *n = &c->m->nodes[i];
    n->root = t->root;
    n->nseg = t->nseg;
    memcpy(n->seg_off, t->seg_off, sizeof(n->seg_off));
    memcpy(n->seg_idx, t->seg_idx, sizeof(n->seg_idx));
    size_t plen = strlen(t->path), rlen = t->root == RULE_ROOT_DATA ? 4 : 7;
    size_t segs_len = plen > rlen ? plen - rlen - 1 : 0;
    n->path = pl_strdup(t->path);
    n->segs = pl_malloc(segs_len + 1);
    n->arg = json_deep_copy(arg);
    if (!n->path || !n->segs || !n->arg) return PL_ENOMEM;
    memcpy(n->segs, t->segs, segs_len + 1); /* NULs inside: not strdup */
    pop(c, old);
    return PL_OK;
}

/* An object value is an operator object if its first key starts with '$'. */
static int compile_field(cctx *c, int parent, const char *key, json_t *val)
{
    size_t old = push_key(c, key);
    rule_node t = {0};
    int rc = parse_path(c, &t, key);
    const char *k1 = json_is_object(val) && json_object_size(val)
                         ? json_object_iter_key(json_object_iter(val))
                         : NULL;
    if (!rc && k1 && k1[0] == '$') {
        const char *k;
        json_t *v;
        json_object_foreach(val, k, v)
        {
            if (k[0] != '$') {
                push_key(c, k);
                rc = fail(c, "mixes operators and plain keys: compare a whole object with "
                             "{\"$eq\": {...}}");
            }
            if (!rc) rc = compile_op(c, parent, &t, k, v);
            if (rc) break;
        }
    } else if (!rc) {
        rc = compile_op(c, parent, &t, NULL, val);
    }
    pl_free(t.path);
    pl_free(t.segs);
    if (!rc) pop(c, old);
    return rc;
}

static int compile_comb(cctx *c, int parent, const char *key, json_t *val, int depth)
{
    size_t old = push_key(c, key);
    int isnot = !strcmp(key, "$not");
    if (!isnot && strcmp(key, "$and") && strcmp(key, "$or"))
        return fail(c,
                    "unknown combinator %s (expected $and, $or or $not; comparisons go "
                    "under a path, as in {\"data.n\": {\"$gt\": 1}})",
                    key);
    if (isnot && !json_is_object(val)) return fail(c, "$not needs one predicate object");
    if (!isnot && (!json_is_array(val) || !json_array_size(val)))
        return fail(c, "%s needs a non-empty array of predicate objects", key);
    if (++c->clauses > RULE_MAX_CLAUSES)
        return fail(c, "too many clauses: at most %d", RULE_MAX_CLAUSES);
    int me = new_node(c, isnot ? RULE_NOT : key[1] == 'a' ? RULE_AND : RULE_OR, parent);
    if (me < 0) return PL_ENOMEM;
    int rc = isnot ? compile_pred(c, val, me, depth + 1) : PL_OK;
    for (size_t i = 0; !isnot && !rc && i < json_array_size(val); i++) {
        size_t o = push_idx(c, i);
        rc = compile_pred(c, json_array_get(val, i), me, depth + 1);
        if (!rc) pop(c, o);
    }
    if (!rc) pop(c, old);
    return rc;
}

/* A predicate object: all its members hold (a RULE_AND node). */
static int compile_pred(cctx *c, json_t *obj, int parent, int depth)
{
    if (!json_is_object(obj)) return fail(c, "a predicate must be an object");
    if (depth > RULE_MAX_DEPTH)
        return fail(c, "predicates nested too deep: at most %d levels", RULE_MAX_DEPTH);
    if (++c->clauses > RULE_MAX_CLAUSES)
        return fail(c, "too many clauses: at most %d", RULE_MAX_CLAUSES);
    int me = new_node(c, RULE_AND, parent);
    if (me < 0) return PL_ENOMEM;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        int rc = k[0] == '$' ? compile_comb(c, me, k, v, depth) : compile_field(c, me, k, v);
        if (rc) return rc;
    }
    return PL_OK;
}

/* ---------------------------------------------------------------- rule */

static int compile_match(cctx *c, const json_t *match)
{
    if (!json_is_object(match)) return fail(c, "expected an object {channel, type, where}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)match, k, v)
    {
        int rc;
        if (!strcmp(k, "channel")) {
            rc = compile_globs(c, v, k, &c->m->chan, &c->m->nchan);
        } else if (!strcmp(k, "type")) {
            rc = compile_globs(c, v, k, &c->m->type, &c->m->ntype);
        } else if (!strcmp(k, "where")) {
            size_t old = push_key(c, k);
            rc = json_is_object(v) ? compile_pred(c, v, -1, 1)
                                   : fail(c, "expected a predicate object");
            if (!rc) pop(c, old);
        } else {
            push_key(c, k);
            rc = fail(c, "unknown key (expected channel, type or where)");
        }
        if (rc) return rc;
    }
    return PL_OK;
}

int rule_match_compile(const json_t *match, rule_match **out, rule_error *err)
{
    *out = NULL;
    cctx c = {.err = err};
    strcpy(c.path, "match");
    c.plen = 5;
    if (!(c.m = pl_calloc(1, sizeof(*c.m)))) return PL_ENOMEM;
    int rc = compile_match(&c, match);
    if (rc == PL_ENOMEM && err) {
        snprintf(err->path, sizeof(err->path), "%s", c.path);
        snprintf(err->reason, sizeof(err->reason), "out of memory");
    }
    if (rc) {
        rule_match_free(c.m);
        return rc;
    }
    *out = c.m;
    return PL_OK;
}

void rule_match_free(rule_match *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->nchan; i++)
        pl_free(m->chan[i]);
    for (size_t i = 0; i < m->ntype; i++)
        pl_free(m->type[i]);
    pl_free(m->chan);
    pl_free(m->type);
    for (int i = 0; i < m->nnodes; i++) {
        pl_free(m->nodes[i].path);
        pl_free(m->nodes[i].segs);
        json_decref(m->nodes[i].arg);
    }
    pl_free(m->nodes);
    pl_free(m);
}
