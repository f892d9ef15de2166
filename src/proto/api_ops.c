/* The server API's operator views: `connections` (the live connections of
 * a user or one connection, gathered from every worker) and `audit.list`
 * (the audit log's newest records and the check of its chain, read off the
 * worker threads). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/api_int.h"
#include "util/mem.h"
#include "util/status.h"

#define DEFAULT_LIMIT 100
#define MAX_LIMIT 1000

/* params' "limit": 0 with *limit set (DEFAULT_LIMIT when absent), or -1
 * once the error was answered. */
static int get_limit(api_ctx *a, uint32_t *limit)
{
    uint64_t v = DEFAULT_LIMIT;
    if (proto_param_u64(a->b, a->params, "limit", &v) == PROTO_PARAM_TYPE) {
        api_error(a->h, a->conn_id, PE_BAD_REQUEST, "limit must be a number");
        return -1;
    }
    if (v == 0 || v > MAX_LIMIT) {
        api_error(a->h, a->conn_id, PE_LIMIT_EXCEEDED, "limit is 1..1000");
        return -1;
    }
    *limit = (uint32_t)v;
    return 0;
}

/* ---- connections ------------------------------------------------------------ */

/* One `connections` call. Each worker describes its matching sessions
 * (a session belongs to its worker's thread, so only that thread may read
 * it); the last worker to finish hands the call back to the asking
 * worker, which answers. */
typedef struct conn_gather {
    proto_call call;
    proto_server *srv;
    proto_host *origin; /* the worker of the HTTP connection */
    uint64_t conn_id;
    char tenant[128];
    char user[256]; /* "" when only client is given */
    char client[PUB_ID_LEN + 1];
    uint32_t limit;
    pthread_mutex_t mu; /* guards what follows: workers add concurrently */
    char **items;       /* each a connection's JSON object, owned */
    size_t n, cap;
    int oom;
} conn_gather;

typedef struct worker_pass {
    conn_gather *g;
    char **items; /* this worker's, before they join the call's */
    size_t n;
    int oom;
} worker_pass;

static void describe_match(session *s, void *arg)
{
    worker_pass *wp = arg;
    const conn_gather *g = wp->g;
    if (wp->n == g->limit || strcmp(session_tenant(s), g->tenant)) return;
    if (g->user[0] && strcmp(session_user(s), g->user)) return;
    if (g->client[0] && strcmp(session_client(s), g->client)) return;
    sbuf o;
    sbuf_init(&o);
    session_describe(s, &o);
    char *item = o.oom ? NULL : pl_strndup(o.data, o.len);
    sbuf_release(&o);
    if (item)
        wp->items[wp->n++] = item;
    else
        wp->oom = 1;
}

/* Every session of the worker is walked (not the fan-out's user index,
 * which holds WebSocket connections only): an operator's call, not a hot
 * path. Each worker keeps at most limit, so the call holds at most
 * workers x limit before the answer keeps the oldest limit. */
static void gather_run(proto_host *h, proto_call *call)
{
    conn_gather *g = (conn_gather *)call;
    char **items = pl_calloc(g->limit, sizeof(char *));
    worker_pass wp = {.g = g, .items = items, .oom = !items};
    if (items) h->ops->each_session(h, describe_match, &wp);
    pthread_mutex_lock(&g->mu);
    size_t k = 0;
    if (g->n + wp.n > g->cap) {
        size_t cap = g->n + wp.n;
        char **grown = pl_realloc(g->items, cap * sizeof(char *));
        if (grown) g->items = grown, g->cap = cap;
    }
    for (; k < wp.n && g->n < g->cap; k++)
        g->items[g->n++] = items[k];
    if (wp.oom || k < wp.n) g->oom = 1; /* an incomplete list is not answered */
    pthread_mutex_unlock(&g->mu);
    for (size_t i = k; i < wp.n; i++)
        pl_free(items[i]);
    pl_free(items);
}

static void gather_free(proto_call *call)
{
    conn_gather *g = (conn_gather *)call;
    for (size_t i = 0; i < g->n; i++)
        pl_free(g->items[i]);
    pl_free(g->items);
    pthread_mutex_destroy(&g->mu);
    pl_free(g);
}

static int by_client(const void *x, const void *y)
{
    /* Every item starts {"client":"<id>": ids are ULIDs, so the oldest
     * connection sorts first. */
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* On the asking worker: the answer. */
static void gather_answer(proto_host *h, proto_call *call)
{
    conn_gather *g = (conn_gather *)call;
    if (g->oom) {
        api_error(h, g->conn_id, PE_INTERNAL, NULL);
        return;
    }
    if (g->n) qsort(g->items, g->n, sizeof(char *), by_client); /* items is NULL when none */
    sbuf o;
    sbuf_init(&o);
    sbuf_puts(&o, "{\"connections\":[");
    for (size_t i = 0; i < g->n && i < g->limit; i++) {
        if (i) sbuf_putc(&o, ',');
        sbuf_puts(&o, g->items[i]);
    }
    sbuf_puts(&o, "]}");
    api_result(h, g->conn_id, &o);
    sbuf_release(&o);
}

/* Released by the last worker of the first pass: the same call, now to
 * answer, goes to the asking worker. */
static void gather_done(proto_call *call)
{
    conn_gather *g = (conn_gather *)call;
    atomic_init(&g->call.refs, 1);
    g->call.fn = gather_answer;
    g->call.release = gather_free;
    g->srv->ops->call_one(g->srv, g->origin, &g->call);
}

/* Reads user or client into g: 0, or the error answered (-1). */
static int gather_target(api_ctx *a, conn_gather *g)
{
    const char *p;
    size_t n;
    int ru = proto_param_str(a->b, a->params, "user", &p, &n);
    if (ru == PROTO_PARAM_OK && n > 0 && n < sizeof(g->user)) {
        memcpy(g->user, p, n);
        g->user[n] = '\0';
    } else if (ru != PROTO_PARAM_MISSING) {
        api_error(a->h, a->conn_id, PE_BAD_REQUEST, "user must be a non-empty string");
        return -1;
    }
    int rc = proto_param_str(a->b, a->params, "client", &p, &n);
    if (rc == PROTO_PARAM_OK && n > 0 && n <= PUB_ID_LEN) {
        memcpy(g->client, p, n);
        g->client[n] = '\0';
    } else if (rc != PROTO_PARAM_MISSING) {
        api_error(a->h, a->conn_id, PE_BAD_REQUEST, "client must be a connection id");
        return -1;
    }
    if (g->user[0] || g->client[0]) return 0;
    api_error(a->h, a->conn_id, PE_BAD_REQUEST, "user (or client) required");
    return -1;
}

int api_connections(api_ctx *a)
{
    conn_gather *g = pl_calloc(1, sizeof(*g));
    if (!g) return api_error(a->h, a->conn_id, PE_INTERNAL, NULL);
    if (gather_target(a, g) || get_limit(a, &g->limit)) {
        pl_free(g);
        return 0;
    }
    snprintf(g->tenant, sizeof(g->tenant), "%s", a->tenant);
    g->srv = a->srv;
    g->origin = a->h;
    g->conn_id = a->conn_id;
    pthread_mutex_init(&g->mu, NULL);
    atomic_init(&g->call.refs, 1);
    g->call.fn = gather_run;
    g->call.release = gather_done;
    a->srv->ops->call_all(a->srv, &g->call);
    return 1;
}

/* ---- audit.list --------------------------------------------------------------- */

/* One audit.list, read on a pool thread: verifying reads the whole log
 * (about 0.7 s for 100,000 records), too long to stall a worker's
 * connections. */
typedef struct audit_read {
    proto_server *srv;
    uint64_t conn_id;
    uint64_t before;
    uint32_t limit;
    int rc;
    sbuf out; /* the result, built by the pool thread */
} audit_read;

static void put_verified(sbuf *o, int ok, const audit_report *r)
{
    sbuf_printf(o, "\"verified\":{\"ok\":%s,\"entries\":", ok ? "true" : "false");
    sbuf_u64(o, r->records);
    if (!ok) {
        char why[320];
        if (r->bad_line)
            snprintf(why, sizeof(why), "record %llu (line %llu): %s",
                     (unsigned long long)r->bad_seq, (unsigned long long)r->bad_line, r->why);
        else
            snprintf(why, sizeof(why), "%s", r->why);
        sbuf_puts(o, ",\"error\":");
        sbuf_json_str(o, why, strlen(why));
    }
    sbuf_putc(o, '}');
}

static void audit_read_work(void *arg)
{
    audit_read *ar = arg;
    uint64_t next = 0;
    sbuf_puts(&ar->out, "{\"entries\":[");
    ar->rc = audit_tail(ar->srv->audit, ar->before, ar->limit, &ar->out, &next);
    if (ar->rc != PL_OK) return;
    audit_report r;
    int ok = audit_verify_log(ar->srv->audit, &r) == 0;
    sbuf_puts(&ar->out, "],\"cursor\":");
    sbuf_u64(&ar->out, next);
    sbuf_putc(&ar->out, ',');
    put_verified(&ar->out, ok, &r);
    sbuf_putc(&ar->out, '}');
}

static void audit_read_done(proto_host *h, void *arg)
{
    audit_read *ar = arg;
    if (ar->rc != PL_OK)
        api_error(h, ar->conn_id, PE_INTERNAL, "audit log unreadable");
    else
        api_result(h, ar->conn_id, &ar->out);
    atomic_store(&ar->srv->audit_reading, 0);
    sbuf_release(&ar->out);
    pl_free(ar);
}

int api_audit_list(api_ctx *a)
{
    uint64_t before = 0;
    uint32_t limit;
    if (proto_param_u64(a->b, a->params, "before", &before) == PROTO_PARAM_TYPE)
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST, "before must be a sequence number");
    if (get_limit(a, &limit)) return 0;
    if (!a->srv->audit) return api_error(a->h, a->conn_id, PE_NOT_AVAILABLE, "no audit log");
    if (atomic_exchange(&a->srv->audit_reading, 1))
        return api_error(a->h, a->conn_id, PE_OVERLOADED, "another audit.list is reading the log");
    audit_read *ar = pl_calloc(1, sizeof(*ar));
    if (ar) {
        *ar = (audit_read){.srv = a->srv, .conn_id = a->conn_id, .before = before, .limit = limit};
        sbuf_init(&ar->out);
    }
    if (!ar || a->h->ops->offload(a->h, audit_read_work, audit_read_done, ar)) {
        pl_free(ar);
        atomic_store(&a->srv->audit_reading, 0);
        return api_error(a->h, a->conn_id, PE_INTERNAL, NULL);
    }
    return 1;
}
