/* Redaction by one walk over the span tokens of util/json.h: containers on a
 * matched path are re-emitted member by member from the source bytes (gaps
 * included), everything else is copied as raw spans, so no tree is built. */
#include <strings.h>

#include "hooks/redact.h"
#include "util/json.h"
#include "util/jpath.h"
#include "util/mem.h"
#include "util/status.h"

_Static_assert(CFG_MAX_REDACT <= 64, "active paths are a 64-bit mask");

#define REDACT_MAX_INPUT (16u << 20)

typedef struct rpath {
    char *text; /* owned; jp's segments point into it */
    jpath jp;
    int mask;
    size_t ci_seg; /* segment compared case-insensitively (header names), or SIZE_MAX */
} rpath;

struct redaction {
    size_t n;
    rpath p[];
};

typedef struct walk {
    const redaction *r;
    const json_doc *d;
    sbuf *out;
} walk;

void redact_free(redaction *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++)
        pl_free(r->p[i].text);
    pl_free(r);
}

static int root_is(const jpath *jp, const char *root)
{
    size_t n = strlen(root);
    return jp->seg[0].n == n && !memcmp(jp->seg[0].s, root, n);
}

int redact_new(const cfg_redact *rules, size_t n, redaction **out)
{
    *out = NULL;
    if (!n) return PL_OK;
    if (n > CFG_MAX_REDACT) return PL_EINVAL;
    redaction *r = pl_calloc(1, sizeof(*r) + n * sizeof(rpath));
    if (!r) return PL_ENOMEM;
    for (size_t i = 0; i < n; i++, r->n++) {
        rpath *p = &r->p[i];
        if (!rules[i].path || !(p->text = pl_strdup(rules[i].path))) {
            redact_free(r);
            return rules[i].path ? PL_ENOMEM : PL_EINVAL;
        }
        if (jpath_parse(p->text, &p->jp) || p->jp.n < 2 ||
            (!root_is(&p->jp, "data") && !root_is(&p->jp, "headers"))) {
            r->n++; /* free this one's text too */
            redact_free(r);
            return PL_EINVAL;
        }
        p->mask = rules[i].mask;
        p->ci_seg = root_is(&p->jp, "headers") ? 1 : SIZE_MAX;
    }
    *out = r;
    return PL_OK;
}

/* Whether segment depth of p matches an object key token, or an array
 * element at idx (key < 0). */
static int seg_match(const walk *w, const rpath *p, size_t depth, int key, long idx)
{
    const jpath_seg *g = &p->jp.seg[depth];
    if (g->wild) return 1;
    if (key < 0) return g->index >= 0 && g->index == idx;
    if (p->ci_seg != depth) return json_str_eqn(w->d, key, g->s, g->n);
    char buf[JPATH_MAX_LEN + 1];
    size_t n = 0;
    if (json_str_copy(w->d, key, buf, sizeof(buf), &n) != PL_OK) return 0; /* longer than any */
    return n == g->n && !strncasecmp(buf, g->s, n) && !memchr(buf, '\0', n);
}

static void put(walk *w, const char *from, const char *to)
{
    if (from && to > from) sbuf_append(w->out, from, (size_t)(to - from));
}

static void copy(walk *w, int tok, uint64_t active, size_t depth);

/* The paths of active that go on below member (key, idx), in *next, and
 * what happens to the member itself: 0 kept, 1 masked, 2 removed. */
static int judge(walk *w, uint64_t active, size_t depth, int key, long idx, uint64_t *next)
{
    int act = 0;
    *next = 0;
    for (size_t i = 0; i < w->r->n; i++) {
        if (!(active >> i & 1) || !seg_match(w, &w->r->p[i], depth, key, idx)) continue;
        if (w->r->p[i].jp.n == depth + 1) {
            int a = w->r->p[i].mask ? 1 : 2;
            if (a > act) act = a;
        } else {
            *next |= (uint64_t)1 << i;
        }
    }
    return act;
}

/* A container some active path goes into. Every original gap between two
 * members holds exactly one comma: the first member kept is preceded by the
 * gap after the opening bracket, each later one by the gap before it. */
static void copy_container(walk *w, int tok, uint64_t active, size_t depth)
{
    const char *open, *first = NULL, *end = NULL;
    size_t n;
    json_raw(w->d, tok, &open, &n);
    const char *close = open + n - 1;
    int is_obj = json_kind(w->d, tok) == JSON_KIND_OBJECT, kept = 0;
    long idx = 0;
    for (int c = json_child(w->d, tok); c >= 0; c = json_next(w->d, c), idx++) {
        int val = is_obj ? json_obj_val(w->d, c) : c;
        const char *s, *vs;
        size_t sn, vn;
        json_raw(w->d, c, &s, &sn);
        json_raw(w->d, val, &vs, &vn);
        if (!first) first = s;
        uint64_t next;
        int act = judge(w, active, depth, is_obj ? c : -1, idx, &next);
        if (act != 2) {
            if (kept)
                put(w, end, s);
            else
                put(w, open, first);
            put(w, s, vs); /* an object's key and colon; nothing for an element */
            if (act == 1)
                sbuf_puts(w->out, REDACT_MASK);
            else
                copy(w, val, next, depth + 1);
            kept = 1;
        }
        end = vs + vn;
    }
    if (!first) { /* empty */
        put(w, open, close + 1);
        return;
    }
    if (!kept) put(w, open, first);
    put(w, end, close + 1);
}

static void copy(walk *w, int tok, uint64_t active, size_t depth)
{
    enum json_kind k = json_kind(w->d, tok);
    if (active && (k == JSON_KIND_OBJECT || k == JSON_KIND_ARRAY)) {
        copy_container(w, tok, active, depth);
        return;
    }
    const char *s;
    size_t n;
    json_raw(w->d, tok, &s, &n);
    sbuf_append(w->out, s, n);
}

static int run(const redaction *r, const char *root, const char *json, size_t len, sbuf *out)
{
    if (len > REDACT_MAX_INPUT) return PL_ELIMIT;
    uint64_t active = 0;
    for (size_t i = 0; r && i < r->n; i++)
        if (!root || root_is(&r->p[i].jp, root)) active |= (uint64_t)1 << i;
    json_doc d;
    json_doc_init(&d);
    json_limits lim = {.max_tokens = len + 1, .max_depth = JSON_MAX_DEPTH_CAP};
    int rc = json_parse(&d, json, len, &lim);
    if (rc == PL_OK && json_count(&d) != 1) rc = PL_EINVAL;
    if (rc != PL_OK) {
        json_doc_release(&d);
        return rc;
    }
    size_t mark = out->len;
    walk w = {r, &d, out};
    const char *s;
    size_t n;
    json_raw(&d, 0, &s, &n);
    put(&w, json, s); /* whitespace around the value stays too */
    copy(&w, 0, active, root ? 1 : 0);
    put(&w, s + n, json + len);
    json_doc_release(&d);
    if (out->oom) {
        out->len = mark;
        if (out->data) out->data[mark] = '\0';
        return PL_ENOMEM;
    }
    return PL_OK;
}

int redact_apply(const redaction *r, const char *json, size_t len, sbuf *out)
{
    return run(r, NULL, json, len, out);
}

int redact_member(const redaction *r, const char *root, const char *json, size_t len, sbuf *out)
{
    return run(r, root, json, len, out);
}
