/* Evaluating compiled routing rules: the prepared event (a pub's data and
 * headers tokenized once, escaped strings decoded once) and the comparisons.
 * Evaluation only reads the rule and the event and never allocates, so any
 * number of threads may evaluate at once. */
#include "hooks/rule_int.h"

#include <stdlib.h>
#include <string.h>

#include "hooks/glob.h"
#include "util/mem.h"
#include "util/status.h"

/* ---------------------------------------------------------------- the event */

rule_event *rule_event_new(void)
{
    rule_event *ev = pl_calloc(1, sizeof(*ev));
    if (!ev) return NULL;
    json_doc_init(&ev->data.doc);
    json_doc_init(&ev->headers.doc);
    ev->data.root = ev->headers.root = -1;
    sbuf_init(&ev->arena);
    ev->data.arena = ev->headers.arena = &ev->arena;
    return ev;
}

void rule_event_free(rule_event *ev)
{
    if (!ev) return;
    json_doc_release(&ev->data.doc);
    json_doc_release(&ev->headers.doc);
    pl_free(ev->data.esc);
    pl_free(ev->headers.esc);
    sbuf_release(&ev->arena);
    pl_free(ev);
}

/* Decodes every escaped string value of d into the arena, so that substring
 * and order comparisons read plain bytes without allocating. Keys are not
 * needed: lookups compare them with json_obj_get, which decodes. */
static int decode_escapes(rule_event *ev, rule_doc *d)
{
    for (int t = 0; t < json_ntok(&d->doc); t++) {
        if (json_kind(&d->doc, t) != JSON_KIND_STRING || !json_str_esc(&d->doc, t) ||
            json_obj_val(&d->doc, t) >= 0)
            continue;
        const char *raw;
        size_t n, len;
        json_str_raw(&d->doc, t, &raw, &n);
        char *dst = sbuf_space(&ev->arena, n + 1);
        if (!dst) return PL_ENOMEM;
        if (d->nesc == d->capesc) {
            size_t cap = d->capesc ? d->capesc * 2 : 8;
            rule_esc *e = pl_realloc(d->esc, cap * sizeof(*e));
            if (!e) return PL_ENOMEM;
            d->esc = e;
            d->capesc = cap;
        }
        json_str_copy(&d->doc, t, dst, n + 1, &len);
        d->esc[d->nesc++] = (rule_esc){.tok = t, .off = ev->arena.len, .len = len};
        sbuf_wrote(&ev->arena, len);
    }
    return PL_OK;
}

static int doc_prepare(rule_event *ev, rule_doc *d, const char *src, size_t len)
{
    d->root = -1;
    d->nesc = 0;
    if (!src) return PL_OK;
    int rc = json_parse(&d->doc, src, len, NULL);
    if (!rc && json_count(&d->doc) != 1) rc = PL_EINVAL;
    /* Most pubs hold no backslash at all: one memchr skips the token walk. */
    if (!rc && memchr(src, '\\', len)) rc = decode_escapes(ev, d);
    if (!rc) d->root = 0;
    return rc;
}

int rule_event_prepare(rule_event *ev, const rule_event_fields *f)
{
    ev->tenant = f->tenant;
    ev->channel = f->channel ? f->channel : "";
    ev->channel_len = f->channel ? f->channel_len : 0;
    ev->type = f->type;
    ev->type_len = f->type ? f->type_len : 0;
    sbuf_reset(&ev->arena);
    int rc = doc_prepare(ev, &ev->data, f->data, f->data_len);
    int hrc = doc_prepare(ev, &ev->headers, f->headers, f->headers_len);
    if (!hrc && ev->headers.root >= 0 && json_kind(&ev->headers.doc, 0) != JSON_KIND_OBJECT) {
        ev->headers.root = -1;
        hrc = PL_EINVAL;
    }
    return rc ? rc : hrc;
}

void rule_doc_str(const rule_doc *d, int tok, const char **p, size_t *n)
{
    if (!json_str_esc(&d->doc, tok)) {
        json_str_raw(&d->doc, tok, p, n);
        return;
    }
    size_t lo = 0, hi = d->nesc;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d->esc[mid].tok < tok)
            lo = mid + 1;
        else
            hi = mid;
    }
    *p = "";
    *n = 0;
    if (lo < d->nesc && d->esc[lo].tok == tok) {
        *p = d->arena->data + d->esc[lo].off;
        *n = d->esc[lo].len;
    }
}

/* ---------------------------------------------------------------- values */

typedef struct num {
    double d;
    int64_t i;
    int isint; /* i is exact: both sides integers compare without rounding */
} num;

/* Number token tok as a num; 0 if it is too long to read (over 255 bytes,
 * which no real number needs), so it compares with nothing. */
static int tok_num(const json_doc *doc, int tok, num *out)
{
    out->isint = json_i64(doc, tok, &out->i) == PL_OK;
    if (out->isint) {
        out->d = (double)out->i;
        return 1;
    }
    const char *p;
    size_t n;
    char buf[256];
    if (json_raw(doc, tok, &p, &n) || n >= sizeof(buf)) return 0;
    memcpy(buf, p, n); /* strtod needs a terminator the source may lack */
    buf[n] = '\0';
    out->d = strtod(buf, NULL);
    return 1;
}

static num arg_num(const json_t *v)
{
    num x = {.isint = json_is_integer(v)};
    if (x.isint) x.i = (int64_t)json_integer_value(v);
    x.d = x.isint ? (double)x.i : json_real_value(v);
    return x;
}

static int num_cmp(num a, num b)
{
    if (a.isint && b.isint) return (a.i > b.i) - (a.i < b.i);
    return (a.d > b.d) - (a.d < b.d);
}

/* Equality by value: numbers numerically, containers structurally. The
 * recursion follows the operand, whose depth the compiler bounded. */
static int val_eq(const rule_doc *d, int tok, const json_t *v)
{
    const json_doc *doc = &d->doc;
    enum json_kind k = json_kind(doc, tok);
    num a;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return k == JSON_KIND_STRING &&
               json_str_eqn(doc, tok, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
    case JSON_REAL:
        return k == JSON_KIND_NUMBER && tok_num(doc, tok, &a) && !num_cmp(a, arg_num(v));
    case JSON_TRUE:
        return k == JSON_KIND_TRUE;
    case JSON_FALSE:
        return k == JSON_KIND_FALSE;
    case JSON_NULL:
        return k == JSON_KIND_NULL;
    case JSON_ARRAY: {
        if (k != JSON_KIND_ARRAY || (size_t)json_size(doc, tok) != json_array_size(v)) return 0;
        int t = json_child(doc, tok);
        for (size_t i = 0; i < json_array_size(v); i++, t = json_next(doc, t))
            if (!val_eq(d, t, json_array_get(v, i))) return 0;
        return 1;
    }
    case JSON_OBJECT: {
        /* Equal member counts and every operand member equal: the same set
         * of keys (an event object with a duplicate key never equals). */
        if (k != JSON_KIND_OBJECT || (size_t)json_size(doc, tok) != json_object_size(v)) return 0;
        const char *key;
        json_t *x;
        json_object_foreach((json_t *)v, key, x)
        {
            int t = json_obj_get(doc, tok, key);
            if (t < 0 || !val_eq(d, t, x)) return 0;
        }
        return 1;
    }
    }
    return 0;
}

static int in_list(const rule_doc *d, int tok, const json_t *list)
{
    for (size_t i = 0; i < json_array_size(list); i++)
        if (val_eq(d, tok, json_array_get(list, i))) return 1;
    return 0;
}

/* Orders the event's value against the operand: numbers with numbers,
 * strings with strings bytewise (UTF-8, so by code point). */
static enum rule_res order(const rule_node *n, const rule_doc *d, int tok)
{
    enum json_kind k = json_kind(&d->doc, tok);
    int c;
    if (json_is_number(n->arg)) {
        num a;
        if (k != JSON_KIND_NUMBER || !tok_num(&d->doc, tok, &a)) return RULE_RES_TYPE;
        c = num_cmp(a, arg_num(n->arg));
    } else {
        if (k != JSON_KIND_STRING) return RULE_RES_TYPE;
        const char *p;
        size_t len, alen = json_string_length(n->arg);
        rule_doc_str(d, tok, &p, &len);
        c = memcmp(p, json_string_value(n->arg), len < alen ? len : alen);
        if (!c) c = (len > alen) - (len < alen);
    }
    int ok = n->op == RULE_GT    ? c > 0
             : n->op == RULE_GTE ? c >= 0
             : n->op == RULE_LT  ? c < 0
                                 : c <= 0;
    return ok ? RULE_RES_MATCH : RULE_RES_NO;
}

static enum rule_res contains(const rule_node *n, const rule_doc *d, int tok)
{
    enum json_kind k = json_kind(&d->doc, tok);
    if (k == JSON_KIND_ARRAY) {
        for (int t = json_child(&d->doc, tok); t >= 0; t = json_next(&d->doc, t))
            if (val_eq(d, t, n->arg)) return RULE_RES_MATCH;
        return RULE_RES_NO;
    }
    if (k != JSON_KIND_STRING || !json_is_string(n->arg)) return RULE_RES_TYPE;
    const char *p;
    size_t len, alen = json_string_length(n->arg);
    rule_doc_str(d, tok, &p, &len);
    if (!alen || memmem(p, len, json_string_value(n->arg), alen)) return RULE_RES_MATCH;
    return RULE_RES_NO;
}

enum rule_res rule_compare(const rule_node *n, const rule_doc *d, int tok)
{
    if (tok < 0) { /* the negations hold of what is not there */
        int neg = n->op == RULE_NEQ || n->op == RULE_NIN ||
                  (n->op == RULE_EXISTS && !json_is_true(n->arg));
        return neg ? RULE_RES_MATCH : RULE_RES_MISSING;
    }
    switch ((enum rule_op)n->op) {
    case RULE_EQ:
        return val_eq(d, tok, n->arg) ? RULE_RES_MATCH : RULE_RES_NO;
    case RULE_NEQ:
        return val_eq(d, tok, n->arg) ? RULE_RES_NO : RULE_RES_MATCH;
    case RULE_IN:
        return in_list(d, tok, n->arg) ? RULE_RES_MATCH : RULE_RES_NO;
    case RULE_NIN:
        return in_list(d, tok, n->arg) ? RULE_RES_NO : RULE_RES_MATCH;
    case RULE_EXISTS:
        return json_is_true(n->arg) ? RULE_RES_MATCH : RULE_RES_NO;
    case RULE_GT:
    case RULE_GTE:
    case RULE_LT:
    case RULE_LTE:
        return order(n, d, tok);
    case RULE_CONTAINS:
        return contains(n, d, tok);
    default:
        return RULE_RES_NO;
    }
}

/* ---------------------------------------------------------------- evaluation */

int rule_resolve(const rule_node *n, const rule_event *ev, const rule_doc **dp)
{
    const rule_doc *d = n->root == RULE_ROOT_DATA ? &ev->data : &ev->headers;
    *dp = d;
    int t = d->root;
    for (int i = 0; i < n->nseg && t >= 0; i++) {
        enum json_kind k = json_kind(&d->doc, t);
        if (k == JSON_KIND_OBJECT) {
            t = json_obj_get(&d->doc, t, n->segs + n->seg_off[i]);
        } else if (k == JSON_KIND_ARRAY && n->seg_idx[i] >= 0 &&
                   n->seg_idx[i] < json_size(&d->doc, t)) {
            t = json_child(&d->doc, t);
            for (int32_t j = 0; j < n->seg_idx[i]; j++)
                t = json_next(&d->doc, t);
        } else {
            t = -1;
        }
    }
    return t;
}

int rule_node_eval(const rule_match *m, int i, const rule_event *ev)
{
    const rule_node *n = &m->nodes[i];
    int k;
    switch ((enum rule_op)n->op) {
    case RULE_AND:
        for (k = n->kid; k >= 0; k = m->nodes[k].next)
            if (!rule_node_eval(m, k, ev)) return 0;
        return 1;
    case RULE_OR:
        for (k = n->kid; k >= 0; k = m->nodes[k].next)
            if (rule_node_eval(m, k, ev)) return 1;
        return 0;
    case RULE_NOT:
        return !rule_node_eval(m, n->kid, ev);
    default: {
        const rule_doc *d;
        int t = rule_resolve(n, ev, &d);
        return rule_compare(n, d, t) == RULE_RES_MATCH;
    }
    }
}

int rule_globs_find(char *const *list, size_t n, const char *s, size_t sn, char sep)
{
    if (!n) return -2;
    for (size_t i = 0; i < n; i++)
        if (glob_match(list[i], strlen(list[i]), s, sn, sep)) return (int)i;
    return -1;
}

int rule_match_eval(const rule_match *m, const rule_event *ev)
{
    if (rule_globs_find(m->chan, m->nchan, ev->channel, ev->channel_len, ':') == -1) return 0;
    if (m->ntype &&
        (!ev->type || rule_globs_find(m->type, m->ntype, ev->type, ev->type_len, '.') < 0))
        return 0;
    return m->nnodes == 0 || rule_node_eval(m, 0, ev);
}
