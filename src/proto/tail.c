/* Live tails (see tail.h): the per-worker set and the `tail` API method that
 * turns its HTTP request into one. */
#include "proto/tail.h"

#include <stdio.h>
#include <string.h>

#include "hooks/envelope.h"
#include "hooks/glob.h"
#include "proto/api_int.h"
#include "util/errors.h"
#include "util/mem.h"
#include "util/sbuf.h"

typedef struct tail {
    pl_sink *s;
    char tenant[128];
    char glob[GLOB_MAX_LEN + 1];
    size_t glen;
    int64_t last_ms; /* the last keep-alive comment */
} tail;

struct tail_set {
    tail *v;
    size_t n, cap;
};

tail_set *tail_set_new(void)
{
    return pl_calloc(1, sizeof(tail_set));
}

void tail_set_free(tail_set *t)
{
    if (!t) return;
    pl_free(t->v);
    pl_free(t);
}

size_t tail_count(const tail_set *t)
{
    return t ? t->n : 0;
}

int tail_add(tail_set *t, pl_sink *s, const char *tenant, const char *glob)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4;
        tail *nv = pl_realloc(t->v, cap * sizeof(*nv));
        if (!nv) return -1;
        t->v = nv;
        t->cap = cap;
    }
    tail *e = &t->v[t->n++];
    memset(e, 0, sizeof(*e));
    e->s = s;
    snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
    snprintf(e->glob, sizeof(e->glob), "%s", glob);
    e->glen = strlen(e->glob);
    return 0;
}

void tail_remove(tail_set *t, const pl_sink *s)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (t->v[i].s == s) {
            t->v[i] = t->v[--t->n];
            return;
        }
}

static int matches(const tail *e, const pl_pub *p)
{
    return !e->s->closing && !e->s->closed && !strcmp(e->tenant, p->tenant) &&
           glob_match(e->glob, e->glen, p->channel, strlen(p->channel), ':');
}

/* The envelope of p on one line, the data of one SSE event (a raw line
 * break can only be whitespace between JSON tokens, so it becomes a space).
 * NULL when out of memory or the envelope cannot be written. */
static rbuf *render(const pl_pub *p)
{
    sbuf b;
    sbuf_init(&b);
    rbuf *r = NULL;
    if (envelope_write(&b, p, NULL) == PL_OK) {
        for (size_t i = 0; i < b.len; i++)
            if (b.data[i] == '\n' || b.data[i] == '\r') b.data[i] = ' ';
        r = sbuf_to_rbuf(&b);
    }
    sbuf_release(&b);
    return r;
}

void tail_pubs(tail_set *t, pl_pub *const *pubs, size_t k)
{
    for (size_t i = 0; t && t->n && i < k; i++) {
        rbuf *r = NULL; /* rendered once, for the first tail that wants it */
        for (size_t j = 0; j < t->n; j++) {
            tail *e = &t->v[j];
            if (!matches(e, pubs[i])) continue;
            if (!r && !(r = render(pubs[i]))) {
                sink_close(e->s, PC_OVERLOADED, "overloaded");
                continue;
            }
            /* A JSON item: the sink frames it as an SSE event and holds it
             * to the queue bound, past which it closes with 4001. */
            sink_enqueue(e->s, OUT_JSON, rbuf_ref(r), r->len);
        }
        rbuf_unref(r);
    }
}

void tail_tick(tail_set *t, int64_t now_ms, int64_t interval_ms)
{
    static const char ping[] = ": ping\n\n";
    for (size_t i = 0; t && i < t->n; i++) {
        tail *e = &t->v[i];
        if (e->s->closing || e->s->closed || now_ms - e->last_ms < interval_ms) continue;
        e->last_ms = now_ms;
        rbuf *r = rbuf_from(ping, sizeof(ping) - 1);
        if (r) sink_enqueue(e->s, OUT_RAW, r, r->len);
    }
}

int api_tail(api_ctx *a)
{
    const char *g;
    size_t gn;
    if (proto_param_str(a->b, a->params, "channel", &g, &gn) != PROTO_PARAM_OK)
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST,
                         "\"channel\": a channel glob such as \"chat:*\" or \"**\"");
    const char *why = gn > GLOB_MAX_LEN ? "glob too long" : glob_check(g, gn, ':', 1);
    if (why) return api_error(a->h, a->conn_id, PE_BAD_REQUEST, why);
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n";
    pl_sink *s = a->h->tails ? a->h->ops->stream(a->h, a->conn_id, head, sizeof(head) - 1) : NULL;
    if (!s) return api_error(a->h, a->conn_id, PE_INTERNAL, NULL); /* a no-op when it went */
    char glob[GLOB_MAX_LEN + 1];
    memcpy(glob, g, gn);
    glob[gn] = '\0';
    if (tail_add(a->h->tails, s, a->tenant, glob) < 0) {
        sink_close(s, PC_OVERLOADED, "overloaded");
        return 0;
    }
    static const char hello[] = ": tail open\n\n";
    rbuf *r = rbuf_from(hello, sizeof(hello) - 1);
    if (r) sink_enqueue(s, OUT_RAW, r, r->len);
    return 0;
}
