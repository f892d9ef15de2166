/* Publishing, shared by the client protocol and the HTTP API: a publish's
 * params parsed and checked, the pub submitted (ephemeral ones fanned out at
 * once, stored ones to the engine with their recipients and retention). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto_int.h"
#include "proto/session.h"
#include "util/mem.h"

/* 1 if the n bytes at e could be an epoch the engine made (letters and
 * digits, at most PUB_EPOCH_LEN). */
static int epoch_like(const char *e, size_t n)
{
    if (n == 0 || n > PUB_EPOCH_LEN) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)e[i])) return 0;
    return 1;
}

proto_error proto_parse_since(proto_batch *b, int obj, uint64_t *off, char *epoch, const char **why)
{
    uint64_t o = 0;
    const char *e;
    size_t en;
    if (proto_param_u64(b, obj, "offset", &o) == PROTO_PARAM_TYPE) {
        *why = "since.offset: expected an integer";
        return PE_BAD_REQUEST;
    }
    int er = proto_param_str(b, obj, "epoch", &e, &en);
    if (er == PROTO_PARAM_TYPE) {
        *why = "since.epoch: expected a string";
        return PE_BAD_REQUEST;
    }
    *off = o;
    epoch[0] = '\0';
    if (er != PROTO_PARAM_OK) return PE_OK;
    /* A client may hold an epoch of a wiped data dir or another install: any
     * string that cannot be one of ours is simply another epoch (recovery
     * then answers recovered: false and a gap), never a bad request. "!"
     * matches no epoch, "*" included (the wildcard is the server's own). */
    if (!epoch_like(e, en)) {
        strcpy(epoch, "!");
        return PE_OK;
    }
    memcpy(epoch, e, en);
    epoch[en] = '\0';
    return PE_OK;
}

static proto_error parse_class(proto_batch *b, int tok, pub_class *cls)
{
    const char *p;
    size_t n;
    if (tok < 0) return 0;
    if (proto_str(b, tok, &p, &n) != PL_OK) return PE_BAD_REQUEST;
    return vocab_class_parse(p, n, cls) ? PE_BAD_REQUEST : PE_OK;
}

/* Optional string value tok (-1 if absent) of at most max bytes: 0, or PE_BAD_REQUEST. */
static proto_error opt_str(proto_batch *b, int tok, size_t max, const char **p, size_t *n)
{
    if (tok < 0) {
        *p = NULL;
        *n = 0;
        return 0;
    }
    return proto_str(b, tok, p, n) == PL_OK && *n <= max ? 0 : PE_BAD_REQUEST;
}

void proto_publish_params(const proto_batch *b, int params, int v[PUBP_N])
{
    static const json_field keys[PUBP_N] = {
        [PUBP_CHANNEL] = JSON_FIELD("channel"), [PUBP_DATA] = JSON_FIELD("data"),
        [PUBP_CLASS] = JSON_FIELD("class"),     [PUBP_IDEM] = JSON_FIELD("idempotency_key"),
        [PUBP_TYPE] = JSON_FIELD("type"),       [PUBP_CORRELATION] = JSON_FIELD("correlation_id"),
        [PUBP_HEADERS] = JSON_FIELD("headers"),
    };
    json_obj_fields(&b->doc, params, keys, PUBP_N, v);
}

/* A pub's headers: an object of string values, at most HEADERS_MAX entries
 * with names of at most HEADER_NAME_MAX bytes (values are bounded by the
 * pub's size limit). PE_OK, or the error with detail written. */
static proto_error check_headers(proto_batch *b, int tok, char *detail, size_t cap)
{
    if (json_kind(&b->doc, tok) != JSON_KIND_OBJECT) {
        snprintf(detail, cap, "headers: expected an object of strings");
        return PE_BAD_REQUEST;
    }
    size_t n = 0;
    for (int k = json_child(&b->doc, tok); k >= 0; k = json_next(&b->doc, k), n++) {
        const char *name;
        size_t len;
        if (json_kind(&b->doc, json_obj_val(&b->doc, k)) != JSON_KIND_STRING) {
            snprintf(detail, cap, "headers: every value must be a string");
            return PE_BAD_REQUEST;
        }
        if (proto_str(b, k, &name, &len) != PL_OK || len > HEADER_NAME_MAX) {
            snprintf(detail, cap, "headers: a name is over %d bytes", HEADER_NAME_MAX);
            return PE_LIMIT_EXCEEDED;
        }
    }
    if (n > HEADERS_MAX) {
        snprintf(detail, cap, "headers: %zu entries; at most %d", n, HEADERS_MAX);
        return PE_LIMIT_EXCEEDED;
    }
    return PE_OK;
}

/* An optional string param: PE_OK, or 107 naming it. */
static proto_error opt_param(proto_batch *b, int tok, const char *name, size_t max, const char **p,
                             size_t *n, char *detail, size_t cap)
{
    if (!opt_str(b, tok, max, p, n)) return PE_OK;
    snprintf(detail, cap, "%s: expected a string of at most %zu bytes", name, max);
    return PE_BAD_REQUEST;
}

proto_error proto_parse_publish(const proto_server *srv, proto_batch *b, const int v[PUBP_N],
                                const cfg_namespace *ns, pub_fields *f, pub_class *cls,
                                char *detail, size_t cap)
{
    detail[0] = '\0';
    if (json_raw(&b->doc, v[PUBP_DATA], &f->data, &f->data_len) != PL_OK) {
        snprintf(detail, cap, "data: missing");
        return PE_BAD_REQUEST;
    }
    *cls = ns->cls;
    proto_error code = parse_class(b, v[PUBP_CLASS], cls);
    if (code) snprintf(detail, cap, "class: expected ephemeral, standard or guaranteed");
    if (!code)
        code = opt_param(b, v[PUBP_IDEM], "idempotency_key", MAX_IDEM_KEY, &f->idem_key,
                         &f->idem_key_len, detail, cap);
    if (!code) code = opt_param(b, v[PUBP_TYPE], "type", 255, &f->type, &f->type_len, detail, cap);
    if (!code)
        code = opt_param(b, v[PUBP_CORRELATION], "correlation_id", 255, &f->correlation_id,
                         &f->correlation_id_len, detail, cap);
    int h = v[PUBP_HEADERS];
    if (!code && h >= 0 && !(code = check_headers(b, h, detail, cap)))
        json_raw(&b->doc, h, &f->headers, &f->headers_len);
    /* The limit is on what is stored and sent, not on data alone. */
    size_t total = f->data_len + f->headers_len + f->type_len + f->correlation_id_len;
    if (!code && total > srv->cfg->limits.max_message_bytes) {
        snprintf(detail, cap,
                 "the pub is %zu bytes (data, headers, type, correlation_id); "
                 "limits.max_message_bytes is %u",
                 total, srv->cfg->limits.max_message_bytes);
        code = PE_LIMIT_EXCEEDED;
    }
    return code;
}

/* The smaller of two limits where 0 means none. */
static uint32_t cap_u32(uint32_t a, uint32_t b)
{
    return !a ? b : !b ? a : a < b ? a : b;
}

static int64_t cap_i64(int64_t a, int64_t b)
{
    return !a ? b : !b ? a : a < b ? a : b;
}

uint32_t tenant_max_channels(const proto_server *srv, const char *tid)
{
    const tenant *t = proto_tenant(srv, tid);
    return t ? t->max_channels : 0;
}

proto_error proto_engine_error(int status)
{
    return status == PL_EIO        ? PE_STORAGE_UNAVAILABLE
           : status == PL_ELIMIT   ? PE_LIMIT_EXCEEDED
           : status == PL_DECLINED ? PE_NOT_AVAILABLE /* the engine lacks the feature */
                                   : PE_INTERNAL;
}

/* The recipients of a guaranteed pub: the users subscribed to the channel
 * now, plus the users a user-limited channel names (even offline). */
static int add_recipients(const proto_server *srv, engine_req *r, const pl_pub *p)
{
    char **present = NULL;
    size_t np = presence_users(srv->presence, p->tenant, p->channel, &present);
    const char *h = strchr(p->channel, '#');
    size_t nlisted = 0;
    for (const char *q = h; q && *q; q++)
        nlisted += *q == ',' || q == h;
    r->recipients = pl_calloc(np + nlisted + 1, sizeof(char *));
    if (!r->recipients) goto fail;
    for (size_t i = 0; i < np; i++)
        r->recipients[r->nrecipients++] = present[i];
    np = 0;
    for (const char *q = h ? h + 1 : NULL; q && *q;) {
        const char *e = strchr(q, ',');
        size_t n = e ? (size_t)(e - q) : strlen(q);
        int dup = 0;
        for (size_t i = 0; i < r->nrecipients && !dup; i++)
            dup = strlen(r->recipients[i]) == n && !memcmp(r->recipients[i], q, n);
        if (!dup && !(r->recipients[r->nrecipients++] = pl_strndup(q, n))) goto fail;
        q = e ? e + 1 : NULL;
    }
    pl_free(present);
    return 0;
fail:
    for (size_t i = 0; i < np; i++)
        pl_free(present[i]);
    pl_free(present);
    return -1;
}

int proto_overloaded(const proto_server *srv)
{
    return atomic_load_explicit(&srv->shedding, memory_order_relaxed) ||
           atomic_load_explicit(&srv->storage_queue, memory_order_relaxed) >
               (long)srv->cfg->limits.storage_queue_shed;
}

int64_t proto_overload_retry_ms(const proto_host *h)
{
    return OVERLOAD_RETRY_MS + h->now_us % OVERLOAD_RETRY_MS; /* spread, not in step */
}

/* Shedding in order: ephemeral pubs go first, when any worker is far behind
 * on its writes (past limits.backlog_shed_bytes: publishers are held
 * from the mark on) or storage on its commits; stored ones only when the storage
 * queue is full, never accepted without it. PE_OK or PE_OVERLOADED
 * (counted); the caller answers 114 with proto_overload_retry_ms. */
static proto_error admit(proto_host *h, pub_class cls)
{
    proto_server *srv = h->srv;
    long queued = atomic_load_explicit(&srv->storage_queue, memory_order_relaxed);
    if (cls == PUB_EPHEMERAL) {
        if (atomic_load_explicit(&srv->shedding, memory_order_relaxed)) {
            metrics_add(h->metrics, M_SHED_EPHEMERAL_BACKLOG, 1);
            return PE_OVERLOADED;
        }
        if (queued > (long)srv->cfg->limits.storage_queue_shed) {
            metrics_add(h->metrics, M_SHED_EPHEMERAL_STORAGE, 1);
            return PE_OVERLOADED;
        }
        return PE_OK;
    }
    if (queued >= (long)srv->cfg->limits.storage_queue_max) {
        metrics_add(h->metrics, M_SHED_STORED, 1);
        return PE_OVERLOADED;
    }
    return PE_OK;
}

proto_error proto_submit_pub(proto_host *h, pl_pub *p, const cfg_namespace *ns, pending *pd)
{
    if (admit(h, p->cls) != PE_OK) {
        pub_unref(p);
        return PE_OVERLOADED;
    }
    tenant_counters *tc = metrics_tenant(h->metrics, p->tenant);
    if (tc) atomic_fetch_add_explicit(&tc->pubs, 1, memory_order_relaxed);
    if (p->cls == PUB_EPHEMERAL) {
        pub_set_frame(p, proto_encode_pub(p));
        if (pub_frame_peek(p)) h->ops->broadcast(h, p);
        metrics_add(h->metrics, M_PUBS_EPHEMERAL, 1);
        pub_unref(p);
        return 0;
    }
    pending *copy;
    engine_req *r = proto_req_new(h, ENGINE_PUBLISH, &copy);
    if (!r) {
        pub_unref(p);
        return PE_INTERNAL;
    }
    *copy = *pd;
    r->pub = p;
    const tenant *t = proto_tenant(h->srv, p->tenant);
    r->max_channels = t ? t->max_channels : 0;
    r->storage_bytes = t ? t->storage_bytes : 0;
    if (p->cls == PUB_GUARANTEED && add_recipients(h->srv, r, p)) {
        engine_req_free(r);
        return PE_INTERNAL;
    }
    r->history_size = cap_u32(ns->history_size, t ? t->history_size : 0);
    r->history_ttl_ms = cap_i64(ns->history_ttl_ms, t ? t->history_ttl_ms : 0);
    metrics_add(h->metrics, p->cls == PUB_GUARANTEED ? M_PUBS_GUARANTEED : M_PUBS_STANDARD, 1);
    atomic_fetch_add_explicit(&h->srv->storage_queue, 1, memory_order_relaxed);
    host_submit(h, r);
    return 0;
}

uint64_t proto_unread(const engine_req *r)
{
    if (!r->first) return 0; /* nothing retained */
    uint64_t after = r->cursor > r->first - 1 ? r->cursor : r->first - 1;
    return r->head > after ? r->head - after : 0;
}

/* What rides with a route's publish to its commit. */
typedef struct route_pub {
    proto_server *srv;
    void (*done)(void *arg, int status);
    void *arg;
} route_pub;

static void route_pub_done(engine_req *r)
{
    route_pub *rp = r->ctx;
    atomic_fetch_sub_explicit(&rp->srv->storage_queue, 1, memory_order_relaxed);
    rp->done(rp->arg, r->status);
    engine_req_free(r);
}

int proto_route_publish(void *ctx, const pub_fields *f, void (*done)(void *arg, int status),
                        void *arg)
{
    /* The system channels (endpoint state changes on $sys:webhooks) are
     * the server's own: stored like lifecycle events, no namespace. */
    static const cfg_namespace sys_ns = {.name = "$sys",
                                         .history_size = LIFECYCLE_HISTORY,
                                         .history_ttl_ms = LIFECYCLE_TTL_MS,
                                         .cls = PUB_STANDARD};
    proto_server *srv = ctx;
    int sys = f->channel_len > 5 && !memcmp(f->channel, "$sys:", 5);
    const cfg_namespace *ns =
        sys ? &sys_ns : config_namespace(srv->cfg, f->channel, f->channel_len);
    /* A route feeds stored channels: an ephemeral one has no log to resume
     * from, so a route could not promise its pubs. */
    if (!ns || ns->cls == PUB_EPHEMERAL ||
        (!sys && proto_channel_valid(f->channel, f->channel_len)))
        return PL_EINVAL;
    engine_req *r = engine_req_new_ctx(ENGINE_PUBLISH, sizeof(route_pub));
    pl_pub *p = r ? pub_new(f, ns->cls) : NULL;
    if (!p) {
        engine_req_free(r);
        return PL_ENOMEM;
    }
    *(route_pub *)r->ctx = (route_pub){srv, done, arg};
    r->done = route_pub_done;
    r->pub = p;
    const tenant *t = proto_tenant(srv, p->tenant);
    r->max_channels = t ? t->max_channels : 0;
    r->storage_bytes = t ? t->storage_bytes : 0;
    if (p->cls == PUB_GUARANTEED && add_recipients(srv, r, p)) {
        engine_req_free(r);
        return PL_ENOMEM;
    }
    r->history_size = cap_u32(ns->history_size, t ? t->history_size : 0);
    r->history_ttl_ms = cap_i64(ns->history_ttl_ms, t ? t->history_ttl_ms : 0);
    atomic_fetch_add_explicit(&srv->storage_queue, 1, memory_order_relaxed);
    engine_submit(srv->eng, r);
    return PL_OK;
}
