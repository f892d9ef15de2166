/* The server HTTP API (PROTOCOL.md section 6): POST /api/v1/<method> with a
 * JSON body and `Authorization: Bearer <key>`. Methods are rows of one table
 * with the API key scope they need; a key belongs to one tenant and every
 * method acts inside that tenant only. Replies are {"result": ...} or
 * {"error": {...}} with the HTTP status matching the error code. */
#include <openssl/crypto.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "auth/apikey_file.h"
#include "delivery/delivery.h"
#include "hooks/hooks.h"
#include "obs/log.h"
#include "proto/api_int.h"
#include "proto/session.h"
#include "util/clock.h"
#include "util/mem.h"

#define MAX_BROADCAST 1000
#define DEFAULT_PAGE_LIMIT 100 /* history and dlq.list */

/* The aggregate answer of a broadcast: one slot per channel. */
typedef struct api_agg {
    uint64_t conn_id;
    proto_host *h;
    uint32_t n, remaining;
    const char *key; /* "responses" or "cursors" */
    sbuf out;
    char **results;
} api_agg;

/* ---- replies ------------------------------------------------------------ */

int api_error(proto_host *h, uint64_t conn_id, int code, const char *detail)
{
    sbuf o;
    sbuf_init(&o);
    int64_t retry = code == PE_OVERLOADED ? proto_overload_retry_ms(h) : 0;
    sbuf_puts(&o, "{\"error\":");
    if (retry)
        proto_error_json_code_retry(&o, code, detail, retry);
    else
        proto_error_json(&o, code, detail);
    sbuf_putc(&o, '}');
    h->ops->respond(h, conn_id, proto_error_http_status(code), o.data ? o.data : "{}", o.len,
                    retry);
    sbuf_release(&o);
    return 0;
}

/* Sends {"result": <o's text>}. */
int api_result(proto_host *h, uint64_t conn_id, sbuf *o)
{
    if (o->oom) return api_error(h, conn_id, PE_INTERNAL, NULL);
    sbuf r;
    sbuf_init(&r);
    sbuf_puts(&r, "{\"result\":");
    sbuf_append(&r, o->data, o->len);
    sbuf_putc(&r, '}');
    h->ops->respond(h, conn_id, r.oom ? 500 : 200, r.data ? r.data : "{}", r.len, 0);
    sbuf_release(&r);
    return 0;
}

static void api_answered(proto_host *h, pending *pd, engine_req *r);

int api_audit(proto_server *srv, const char *actor, const char *action, const char *tenant,
              const char *target, const char *details)
{
    audit_event ev = {.actor = actor,
                      .action = action,
                      .tenant = tenant,
                      .target = target,
                      .details = details,
                      .details_len = details ? strlen(details) : 0};
    return srv->audit && audit_append(srv->audit, &ev, NULL) == PL_OK ? 0 : -1;
}

int api_save_keys(proto_server *srv)
{
    pthread_mutex_lock(&srv->keys_lock);
    int rc = apikey_file_save(srv->keys, srv->config_keys, srv->keys_path);
    pthread_mutex_unlock(&srv->keys_lock);
    return rc;
}

/* ---- helpers -------------------------------------------------------------- */

static proto_error get_channel(api_ctx *a, const char *key, int tok, char *out)
{
    const char *p;
    size_t n;
    int bad = tok >= 0 ? proto_str(a->b, tok, &p, &n) != PL_OK
                       : proto_param_str(a->b, a->params, key, &p, &n) != PROTO_PARAM_OK;
    if (bad || proto_channel_valid(p, n)) return PE_BAD_REQUEST;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static proto_error get_user(api_ctx *a, char *out, size_t cap, int required)
{
    const char *p;
    size_t n;
    int r = proto_param_str(a->b, a->params, "user", &p, &n);
    if (r == PROTO_PARAM_MISSING && !required) {
        out[0] = '\0';
        return 0;
    }
    if (r != PROTO_PARAM_OK || n == 0 || n >= cap) return PE_BAD_REQUEST;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* Builds and submits one publish of the request's data to channel ch. An
 * ephemeral pub is answered at once: its result is appended to eph, which a
 * stored pub leaves empty (the engine's answer completes pd). */
static proto_error publish_one(api_ctx *a, const char *ch, pending *pd, sbuf *eph)
{
    const cfg_namespace *ns = config_namespace(a->srv->cfg, ch, strlen(ch));
    if (!ns) return PE_UNKNOWN_CHANNEL;
    pub_fields f = {0};
    pub_class cls;
    int pv[PUBP_N];
    proto_publish_params(a->b, a->params, pv);
    int code = proto_parse_publish(a->srv, a->b, pv, ns, &f, &cls, a->detail, sizeof(a->detail));
    if (code) return code;
    f.tenant = a->tenant;
    f.tenant_len = strlen(a->tenant);
    f.channel = ch;
    f.channel_len = strlen(ch);
    f.now_ms = a->h->now_ms;
    f.now_us = a->h->now_us;
    pl_pub *p = pub_new(&f, cls);
    if (!p) return PE_INTERNAL;
    if (cls == PUB_EPHEMERAL) proto_ephemeral_result(eph, p->id);
    return proto_submit_pub(a->h, p, ns, pd);
}

/* ---- methods ---------------------------------------------------------------- */

static int a_publish(api_ctx *a)
{
    char ch[MAX_CHANNEL + 1];
    int code = get_channel(a, "channel", -1, ch);
    pending pd = {.conn_id = a->conn_id, .done = api_answered, .kind = P_API_PUBLISH};
    sbuf eph;
    sbuf_init(&eph);
    if (!code) code = publish_one(a, ch, &pd, &eph);
    int answered = code || eph.len || eph.oom;
    if (code)
        api_error(a->h, a->conn_id, code, a->detail[0] ? a->detail : NULL);
    else if (answered)
        api_result(a->h, a->conn_id, &eph);
    sbuf_release(&eph);
    return !answered;
}

/* An aggregate for n per-channel answers, sent as {"<key>":[...]} once all
 * arrived (one extra count is held until every request was submitted). */
static api_agg *agg_new(api_ctx *a, int n, const char *key)
{
    api_agg *g = pl_calloc(1, sizeof(*g));
    if (g) g->results = pl_calloc((size_t)n, sizeof(char *));
    if (!g || !g->results) {
        pl_free(g);
        return NULL;
    }
    g->conn_id = a->conn_id;
    g->h = a->h;
    g->key = key;
    g->n = (uint32_t)n;
    g->remaining = (uint32_t)n + 1;
    return g;
}

/* Checks a request's channel list: 0 with its size, or -1 once the error
 * was answered. */
static int channel_list(api_ctx *a, int arr, int *n)
{
    *n = json_size(&a->b->doc, arr);
    if (*n > 0 && *n <= MAX_BROADCAST) return 0;
    if (*n <= 0)
        api_error(a->h, a->conn_id, PE_BAD_REQUEST, "channels is empty");
    else
        api_error(a->h, a->conn_id, PE_LIMIT_EXCEEDED, "at most 1000 channels");
    return -1;
}

static void agg_free(api_agg *g)
{
    for (uint32_t i = 0; i < g->n; i++)
        pl_free(g->results[i]);
    pl_free(g->results);
    sbuf_release(&g->out);
    pl_free(g);
}

static void agg_slot(api_agg *g, uint32_t i, const char *json)
{
    if (i < g->n && !g->results[i]) g->results[i] = pl_strdup(json);
    if (--g->remaining) return;
    {
        sbuf o;
        sbuf_init(&o);
        sbuf_printf(&o, "{\"%s\":[", g->key);
        for (uint32_t k = 0; k < g->n; k++) {
            if (k) sbuf_putc(&o, ',');
            sbuf_puts(&o, g->results[k] ? g->results[k] : "null");
        }
        sbuf_puts(&o, "]}");
        api_result(g->h, g->conn_id, &o);
        sbuf_release(&o);
    }
    agg_free(g);
}

static void slot_error(api_agg *g, uint32_t i, int code)
{
    sbuf e;
    sbuf_init(&e);
    sbuf_puts(&e, "{\"error\":");
    proto_error_json(&e, code, NULL);
    sbuf_putc(&e, '}');
    agg_slot(g, i, e.data ? e.data : "null");
    sbuf_release(&e);
}

static int a_broadcast(api_ctx *a)
{
    int arr;
    if (proto_param_arr(a->b, a->params, "channels", &arr) != PROTO_PARAM_OK)
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST,
                         "channels must be an array of channel names");
    int n;
    if (channel_list(a, arr, &n)) return 0;
    api_agg *g = agg_new(a, n, "responses");
    if (!g) return api_error(a->h, a->conn_id, PE_INTERNAL, NULL);
    uint32_t i = 0;
    for (int t = json_child(&a->b->doc, arr); t >= 0; t = json_next(&a->b->doc, t), i++) {
        char ch[MAX_CHANNEL + 1];
        pending pd = {.conn_id = a->conn_id,
                      .done = api_answered,
                      .kind = P_API_BROADCAST,
                      .agg = g,
                      .slot = i};
        sbuf eph;
        sbuf_init(&eph);
        int code = get_channel(a, NULL, t, ch);
        if (!code) code = publish_one(a, ch, &pd, &eph);
        if (code || eph.oom)
            slot_error(g, i, code ? code : PE_INTERNAL);
        else if (eph.len)
            agg_slot(g, i, eph.data);
        sbuf_release(&eph);
    }
    agg_slot(g, UINT32_MAX, NULL);
    return 1;
}

static int a_history(api_ctx *a)
{
    char ch[MAX_CHANNEL + 1], epoch[PUB_EPOCH_LEN + 1] = "";
    uint64_t limit = DEFAULT_PAGE_LIMIT, since_off = 0;
    int since = -1, reverse = 0, has_since = 0;
    int code = get_channel(a, "channel", -1, ch);
    if (!code && !config_namespace(a->srv->cfg, ch, strlen(ch))) code = PE_UNKNOWN_CHANNEL;
    if (!code) {
        int r = proto_param_u64(a->b, a->params, "limit", &limit);
        if (r == PROTO_PARAM_TYPE)
            code = PE_BAD_REQUEST;
        else if (limit > 1000)
            code = PE_LIMIT_EXCEEDED;
    }
    if (!code && proto_param_bool(a->b, a->params, "reverse", &reverse) == PROTO_PARAM_TYPE)
        code = PE_BAD_REQUEST;
    if (!code) {
        int r = proto_param_obj(a->b, a->params, "since", &since);
        if (r == PROTO_PARAM_TYPE)
            code = PE_BAD_REQUEST;
        else if (r == PROTO_PARAM_OK) {
            has_since = 1;
            const char *why = NULL;
            code = proto_parse_since(a->b, since, &since_off, epoch, &why);
        }
    }
    pending *pd = NULL;
    engine_req *r = code ? NULL : proto_req_new(a->h, ENGINE_READ, &pd);
    if (!code && (!r || !(r->tenant = pl_strdup(a->tenant)) || !(r->channel = pl_strdup(ch))))
        code = PE_INTERNAL;
    if (code) {
        engine_req_free(r);
        return api_error(a->h, a->conn_id, code, NULL);
    }
    r->mode = ENGINE_READ_HISTORY;
    r->max_channels = tenant_max_channels(a->srv, a->tenant);
    r->has_since = has_since;
    r->since_offset = since_off;
    snprintf(r->since_epoch, sizeof(r->since_epoch), "%s", epoch);
    r->limit = (uint32_t)limit;
    r->reverse = reverse;
    *pd = (pending){.conn_id = a->conn_id, .done = api_answered, .kind = P_API_HISTORY};
    host_submit(a->h, r);
    return 1;
}

/* A user's read cursors and unread counts for many channels in one call. */
static int a_cursors(api_ctx *a)
{
    char user[256];
    int arr;
    if (get_user(a, user, sizeof(user), 1) ||
        proto_param_arr(a->b, a->params, "channels", &arr) != PROTO_PARAM_OK)
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST, "user and channels (array) required");
    int n;
    if (channel_list(a, arr, &n)) return 0;
    api_agg *g = agg_new(a, n, "cursors");
    if (!g) return api_error(a->h, a->conn_id, PE_INTERNAL, NULL);
    uint32_t i = 0;
    for (int t = json_child(&a->b->doc, arr); t >= 0; t = json_next(&a->b->doc, t), i++) {
        char ch[MAX_CHANNEL + 1];
        int code = get_channel(a, NULL, t, ch);
        const cfg_namespace *ns = code ? NULL : config_namespace(a->srv->cfg, ch, strlen(ch));
        if (!code && !ns) code = PE_UNKNOWN_CHANNEL;
        if (!code && !ns->read_cursors) code = PE_NOT_AVAILABLE;
        pending *pd = NULL;
        engine_req *r = code ? NULL : proto_req_new(a->h, ENGINE_READ, &pd);
        if (!code && (!r || !(r->tenant = pl_strdup(a->tenant)) || !(r->channel = pl_strdup(ch)) ||
                      !(r->user = pl_strdup(user))))
            code = PE_INTERNAL;
        if (code) {
            engine_req_free(r);
            slot_error(g, i, code);
            continue;
        }
        r->mode = ENGINE_READ_HISTORY;
        *pd = (pending){.conn_id = a->conn_id,
                        .done = api_answered,
                        .kind = P_API_CURSORS,
                        .agg = g,
                        .slot = i};
        host_submit(a->h, r);
    }
    agg_slot(g, UINT32_MAX, NULL);
    return 1;
}

static int a_presence(api_ctx *a)
{
    char ch[MAX_CHANNEL + 1];
    uint64_t cursor = 0, limit = 1000;
    int code = get_channel(a, "channel", -1, ch);
    const cfg_namespace *ns = code ? NULL : config_namespace(a->srv->cfg, ch, strlen(ch));
    if (!code && !ns) code = PE_UNKNOWN_CHANNEL;
    if (!code && !ns->presence) code = PE_NOT_AVAILABLE;
    if (!code && (proto_param_u64(a->b, a->params, "cursor", &cursor) == PROTO_PARAM_TYPE ||
                  proto_param_u64(a->b, a->params, "limit", &limit) == PROTO_PARAM_TYPE))
        code = PE_BAD_REQUEST;
    if (!code && (limit == 0 || limit > 10000)) code = PE_LIMIT_EXCEEDED;
    if (code) return api_error(a->h, a->conn_id, code, NULL);
    sbuf o;
    sbuf_init(&o);
    uint32_t n;
    sbuf_puts(&o, "{\"clients\":[");
    uint64_t next = presence_page(a->srv->presence, a->tenant, ch, cursor, (uint32_t)limit, &o, &n);
    sbuf_puts(&o, "],\"cursor\":");
    sbuf_u64(&o, next);
    sbuf_putc(&o, '}');
    api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    return 0;
}

static int a_presence_stats(api_ctx *a)
{
    char ch[MAX_CHANNEL + 1];
    int code = get_channel(a, "channel", -1, ch);
    const cfg_namespace *ns = code ? NULL : config_namespace(a->srv->cfg, ch, strlen(ch));
    if (!code && !ns) code = PE_UNKNOWN_CHANNEL;
    if (!code && !ns->presence) code = PE_NOT_AVAILABLE;
    if (code) return api_error(a->h, a->conn_id, code, NULL);
    uint64_t clients, users;
    presence_stats(a->srv->presence, a->tenant, ch, &clients, &users);
    sbuf o;
    sbuf_init(&o);
    sbuf_printf(&o, "{\"clients\":%llu,\"users\":%llu}", (unsigned long long)clients,
                (unsigned long long)users);
    api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    return 0;
}

static int a_channels(api_ctx *a)
{
    uint64_t cursor = 0, limit = 1000;
    const char *prefix = NULL;
    size_t plen = 0;
    char pbuf[MAX_CHANNEL + 1];
    if (proto_param_u64(a->b, a->params, "cursor", &cursor) == PROTO_PARAM_TYPE ||
        proto_param_u64(a->b, a->params, "limit", &limit) == PROTO_PARAM_TYPE ||
        proto_param_str(a->b, a->params, "prefix", &prefix, &plen) == PROTO_PARAM_TYPE ||
        plen > MAX_CHANNEL)
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST, NULL);
    if (limit == 0 || limit > 10000)
        return api_error(a->h, a->conn_id, PE_LIMIT_EXCEEDED, "limit is 1..10000");
    if (prefix) {
        memcpy(pbuf, prefix, plen);
        pbuf[plen] = '\0';
    }
    sbuf o;
    sbuf_init(&o);
    uint32_t n;
    sbuf_puts(&o, "{\"channels\":[");
    uint64_t next = presence_channels(a->srv->presence, a->tenant, prefix ? pbuf : NULL, cursor,
                                      (uint32_t)limit, &o, &n);
    sbuf_puts(&o, "],\"cursor\":");
    sbuf_u64(&o, next);
    sbuf_putc(&o, '}');
    api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    return 0;
}

/* ---- actions on live connections, run on every worker ------------------- */

typedef struct conn_action {
    proto_call call;
    char tenant[128];
    char user[256];
    char client[PUB_ID_LEN + 1];
    char channel[MAX_CHANNEL + 1];
    int kind; /* 0 disconnect, 1 subscribe, 2 unsubscribe */
    uint16_t code;
} conn_action;

static void action_on_session(session *s, void *arg)
{
    const conn_action *act = arg;
    if (act->client[0] && strcmp(session_client(s), act->client)) return;
    if (act->kind == 0)
        session_disconnect(s, act->code, "disconnected by the server API");
    else if (act->kind == 1)
        session_server_subscribe(s, act->channel);
    else
        session_server_unsubscribe(s, act->channel);
}

/* A tenant-wide action: every connected session of the tenant (of the
 * user, when the action names one). */
static void action_on_tenant_session(session *s, void *arg)
{
    const conn_action *act = arg;
    const char *t = session_tenant(s);
    if (t[0] && !strcmp(t, act->tenant) && (!act->user[0] || !strcmp(session_user(s), act->user)))
        action_on_session(s, arg);
}

static void action_on_user_conn(pl_sink *out, void *owner, void *arg)
{
    (void)out;
    action_on_session(owner, arg);
}

/* A user's connections are found through the fan-out's user table, which
 * holds WebSocket connections only (they take server-side subscriptions);
 * disconnecting must reach SSE streams too, so it walks every session of
 * the worker: rare enough for the cost. */
static void action_run(proto_host *h, proto_call *call)
{
    conn_action *act = (conn_action *)call;
    if (act->user[0] && act->kind != 0)
        fanout_user_each(h->fan, act->tenant, act->user, action_on_user_conn, act);
    else
        h->ops->each_session(h, action_on_tenant_session, act);
}

static void action_release(proto_call *call)
{
    pl_free(call);
}

static int start_action(api_ctx *a, int kind)
{
    conn_action *act = pl_calloc(1, sizeof(*act));
    if (!act) return api_error(a->h, a->conn_id, PE_INTERNAL, NULL);
    const char *p;
    size_t n;
    int code = get_user(a, act->user, sizeof(act->user), 0);
    int r = proto_param_str(a->b, a->params, "client", &p, &n);
    if (!code && r == PROTO_PARAM_OK && n <= PUB_ID_LEN) {
        memcpy(act->client, p, n);
        act->client[n] = '\0';
    } else if (r != PROTO_PARAM_MISSING) {
        code = PE_BAD_REQUEST;
    }
    if (!code && !act->user[0] && !act->client[0]) code = PE_BAD_REQUEST;
    if (!code && kind != 0) {
        code = get_channel(a, "channel", -1, act->channel);
        if (!code && !config_namespace(a->srv->cfg, act->channel, strlen(act->channel)))
            code = PE_UNKNOWN_CHANNEL;
    }
    uint64_t cc = PC_API_DISCONNECT;
    if (!code && kind == 0 &&
        (proto_param_u64(a->b, a->params, "code", &cc) == PROTO_PARAM_TYPE || cc < PC_MIN ||
         cc > PC_MAX))
        code = PE_BAD_REQUEST;
    if (code) {
        pl_free(act);
        return api_error(a->h, a->conn_id, code, NULL);
    }
    snprintf(act->tenant, sizeof(act->tenant), "%s", a->tenant);
    if (kind == 0 && api_audit(a->srv, a->who->actor, "disconnect", a->tenant,
                               act->user[0] ? act->user : act->client, NULL)) {
        pl_free(act);
        return api_error(a->h, a->conn_id, PE_INTERNAL, "audit log unavailable");
    }
    act->kind = kind;
    act->code = (uint16_t)cc;
    atomic_init(&act->call.refs, 1);
    act->call.fn = action_run;
    act->call.release = action_release;
    a->srv->ops->call_all(a->srv, &act->call);
    sbuf o;
    sbuf_init(&o);
    sbuf_puts(&o, "{}");
    api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    return 0;
}

static int a_disconnect(api_ctx *a)
{
    return start_action(a, 0);
}

static int a_subscribe(api_ctx *a)
{
    return start_action(a, 1);
}

static int a_unsubscribe(api_ctx *a)
{
    return start_action(a, 2);
}

static int a_info(api_ctx *a)
{
    engine_stats es;
    engine_get_stats(a->srv->eng, &es);
    uint64_t ws = 0, sse = 0;
    for (int i = 0; i < a->srv->nworkers; i++) {
        const metrics_shard *m = a->srv->hosts[i]->metrics;
        ws += atomic_load(&m->c[M_WS_OPENED]) - atomic_load(&m->c[M_WS_CLOSED]);
        sse += atomic_load(&m->c[M_SSE_OPENED]) - atomic_load(&m->c[M_SSE_CLOSED]);
    }
    sbuf o;
    sbuf_init(&o);
    sbuf_printf(&o,
                "{\"version\":\"1\",\"engine\":\"%s\",\"workers\":%d,\"connections\":{\"ws\":%llu,"
                "\"sse\":%llu},\"presence_entries\":%llu,\"commits\":%llu,\"committed_pubs\":%llu}",
                a->srv->eng->ops->name, a->srv->nworkers, (unsigned long long)ws,
                (unsigned long long)sse, (unsigned long long)presence_entries(a->srv->presence),
                (unsigned long long)es.commits, (unsigned long long)es.committed_pubs);
    api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    return 0;
}

/* Signs a token for user with the tenant's first HS256 secret, valid for
 * ttl seconds, and answers {"token","expires_at"}. */
static int answer_token(api_ctx *a, const char *user, uint64_t ttl)
{
    const char *secret = NULL;
    const tenant *t = proto_tenant(a->srv, a->tenant);
    if (t && t->nsecrets) secret = t->secrets[0];
    if (!secret) return api_error(a->h, a->conn_id, PE_NOT_AVAILABLE, "tenant has no HS256 secret");
    int64_t now = clock_wall_ms() / 1000;
    sbuf claims;
    sbuf_init(&claims);
    sbuf_puts(&claims, "{\"sub\":");
    sbuf_json_str(&claims, user, strlen(user));
    if (!a->srv->cfg->single_tenant) {
        sbuf_puts(&claims, ",\"tenant\":");
        sbuf_json_str(&claims, a->tenant, strlen(a->tenant));
    }
    sbuf_printf(&claims, ",\"iat\":%lld,\"exp\":%lld}", (long long)now,
                (long long)(now + (int64_t)ttl));
    char *tok = jwt_sign_hs256(secret, strlen(secret), claims.data, claims.len);
    sbuf_release(&claims);
    if (!tok) return api_error(a->h, a->conn_id, PE_INTERNAL, NULL);
    sbuf o;
    sbuf_init(&o);
    sbuf_printf(&o, "{\"token\":\"%s\",\"user\":", tok);
    sbuf_json_str(&o, user, strlen(user));
    sbuf_printf(&o, ",\"expires_at\":%lld}", (long long)(now + (int64_t)ttl));
    pl_free(tok);
    api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    return 0;
}

static int a_token(api_ctx *a)
{
    char user[256];
    uint64_t ttl = 3600;
    if (!a->srv->cfg->dev_tokens)
        return api_error(a->h, a->conn_id, PE_NOT_AVAILABLE, "tokens.issue is off (dev_tokens)");
    if (get_user(a, user, sizeof(user), 1) ||
        proto_param_u64(a->b, a->params, "ttl", &ttl) == PROTO_PARAM_TYPE || ttl == 0 ||
        ttl > 30 * 86400)
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST, "user and ttl (seconds) required");
    return answer_token(a, user, ttl);
}

static int a_dlq(api_ctx *a);
static int a_trace(api_ctx *a);

/* The scope of API_METHODS rows that no API key may call, not even "*":
 * tenant and key administration is the admin key's alone. */
#define API_ADMIN 0u

/* The one table of API methods: X(name, handler, scope) where scope is the
 * apikey_scope bit a key needs, APIKEY_SCOPE_ALL for methods only a "*" key
 * may call, or API_ADMIN. Dispatch, authorization and api_method_at (and
 * through it the docs and tests checks) all read these rows. */
#define API_METHODS(X)                                                                             \
    X("tenants.list", api_tenants_list, API_ADMIN)                                                 \
    X("tenants.create", api_tenants_put, API_ADMIN)                                                \
    X("tenants.update", api_tenants_put, API_ADMIN)                                                \
    X("keys.create", api_keys_create, API_ADMIN)                                                   \
    X("keys.revoke", api_keys_revoke, API_ADMIN)                                                   \
    X("keys.list", api_keys_list, API_ADMIN)                                                       \
    X("audit.list", api_audit_list, API_ADMIN)                                                     \
    X("publish", a_publish, APIKEY_SCOPE_PUBLISH)                                                  \
    X("broadcast", a_broadcast, APIKEY_SCOPE_BROADCAST)                                            \
    X("history", a_history, APIKEY_SCOPE_HISTORY)                                                  \
    X("cursors", a_cursors, APIKEY_SCOPE_HISTORY)                                                  \
    X("presence", a_presence, APIKEY_SCOPE_PRESENCE)                                               \
    X("presence_stats", a_presence_stats, APIKEY_SCOPE_PRESENCE)                                   \
    X("channels", a_channels, APIKEY_SCOPE_CHANNELS)                                               \
    X("subscribe", a_subscribe, APIKEY_SCOPE_SUBSCRIBE)                                            \
    X("unsubscribe", a_unsubscribe, APIKEY_SCOPE_SUBSCRIBE)                                        \
    X("disconnect", a_disconnect, APIKEY_SCOPE_DISCONNECT)                                         \
    X("connections", api_connections, APIKEY_SCOPE_DISCONNECT)                                     \
    X("info", a_info, APIKEY_SCOPE_INFO)                                                           \
    X("trace", a_trace, APIKEY_SCOPE_TRACE)                                                        \
    X("tail", api_tail, APIKEY_SCOPE_HISTORY)                                                      \
    X("dlq.list", a_dlq, APIKEY_SCOPE_DLQ)                                                         \
    X("dlq.replay", a_dlq, APIKEY_SCOPE_DLQ)                                                       \
    X("dlq.purge", a_dlq, APIKEY_SCOPE_DLQ)                                                        \
    X("routes.test", api_routes_test, APIKEY_SCOPE_ROUTES)                                         \
    X("routes.list", api_webhooks, APIKEY_SCOPE_ROUTES)                                            \
    X("routes.create", api_webhooks, APIKEY_SCOPE_ROUTES)                                          \
    X("routes.update", api_webhooks, APIKEY_SCOPE_ROUTES)                                          \
    X("routes.delete", api_webhooks, APIKEY_SCOPE_ROUTES)                                          \
    X("webhooks.list", api_webhooks, APIKEY_SCOPE_WEBHOOKS)                                        \
    X("webhooks.create", api_webhooks, APIKEY_SCOPE_WEBHOOKS)                                      \
    X("webhooks.update", api_webhooks, APIKEY_SCOPE_WEBHOOKS)                                      \
    X("webhooks.delete", api_webhooks, APIKEY_SCOPE_WEBHOOKS)                                      \
    X("webhooks.health", api_webhooks, APIKEY_SCOPE_WEBHOOKS)                                      \
    X("webhooks.attempts", api_webhooks, APIKEY_SCOPE_WEBHOOKS)                                    \
    X("webhooks.replay", api_webhooks, APIKEY_SCOPE_WEBHOOKS)                                      \
    X("webhooks.recover", api_webhooks, APIKEY_SCOPE_WEBHOOKS)                                     \
    X("webhooks.rotate_secret", api_webhooks, APIKEY_SCOPE_WEBHOOKS)                               \
    X("tokens.issue", a_token, APIKEY_SCOPE_ALL)

/* Every bit of the scope vocabulary, to check the rows at compile time. */
#define SCOPE_OR(id, bit, name) | APIKEY_SCOPE_##id
#define VOCAB_SCOPE_BITS (0u VOCAB_API_SCOPES(SCOPE_OR))

/* A row's scope is API_ADMIN or exactly one bit of the vocabulary: a
 * reserved or made-up bit would be a method no key could be given. */
#define CHECK_SCOPE(name, fn, scope)                                                               \
    _Static_assert((scope) == API_ADMIN || (((uint32_t)(scope) & ~VOCAB_SCOPE_BITS) == 0 &&        \
                                            ((uint32_t)(scope) & ((uint32_t)(scope)-1)) == 0),     \
                   "API method " name ": scope must be API_ADMIN or one vocabulary scope");
API_METHODS(CHECK_SCOPE)
#undef CHECK_SCOPE

static const struct api_method {
    const char *name;
    api_fn fn;
    uint32_t scope; /* enum apikey_scope bit, or API_ADMIN */
} api_methods[] = {
#define METHOD_ROW(name, fn, scope) {name, fn, scope},
    API_METHODS(METHOD_ROW)
#undef METHOD_ROW
};

#define N_API_METHODS (sizeof(api_methods) / sizeof(api_methods[0]))

size_t api_method_count(void)
{
    return N_API_METHODS;
}

int api_method_at(size_t i, const char **name, const char **scope)
{
    if (i >= N_API_METHODS) return -1;
    if (name) *name = api_methods[i].name;
    if (scope)
        *scope = api_methods[i].scope == API_ADMIN ? NULL : apikey_scope_name(api_methods[i].scope);
    return 0;
}

/* ---- authentication ------------------------------------------------------- */

static int key_eq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
}

/* Identifies a bearer key: 0, or PE_UNAUTHORIZED. */
static proto_error authenticate(const proto_server *srv, const char *auth, size_t alen, caller *who)
{
    memset(who, 0, sizeof(*who));
    if (!auth || alen < 8 || strncasecmp(auth, "Bearer ", 7)) return PE_UNAUTHORIZED;
    const char *key = auth + 7;
    size_t klen = alen - 7;
    if (srv->cfg->admin_key && key_eq(key, klen, srv->cfg->admin_key)) {
        who->admin = 1;
        who->tenant = srv->cfg->single_tenant ? "default" : NULL;
        snprintf(who->actor, sizeof(who->actor), "admin");
        return 0;
    }
    if (srv->cfg->single_tenant && srv->dev_secret && key_eq(key, klen, srv->dev_secret)) {
        /* Development mode: the development secret acts for the one tenant. */
        who->dev = 1;
        who->tenant = "default";
        snprintf(who->actor, sizeof(who->actor), "dev");
        return 0;
    }
    const apikey_entry *e = apikey_lookup(srv->keys, key, klen);
    if (!e) return PE_UNAUTHORIZED;
    who->tenant = e->tenant;
    who->key = e;
    snprintf(who->actor, sizeof(who->actor), "key:%s", e->id);
    return 0;
}

/* May this caller run the method? 0 or PE_PERMISSION_DENIED. The admin key
 * may run everything; tenant methods need a tenant (the admin names one
 * with "tenant" in the body, handled by the caller). The development secret
 * stands for the one tenant with every tenant method, as a "*" key would. */
static proto_error authorize(const caller *who, const struct api_method *m)
{
    if (who->admin) return 0;
    if (m->scope == API_ADMIN) return PE_PERMISSION_DENIED;
    if (who->dev) return 0;
    return who->key && apikey_mask_grants(who->key->scopes, m->scope) ? 0 : PE_PERMISSION_DENIED;
}

/* Reads an API body (one JSON object; none reads as {}) into h->batch as
 * the params of one command, for the typed getters: their index, or -1
 * after answering what is wrong. wrapped holds the bytes the params point
 * into; the caller releases it either way. */
static int parse_params(proto_host *h, uint64_t conn_id, const char *body, size_t blen,
                        sbuf *wrapped)
{
    /* Validate the body alone first so errors point into it. */
    json_doc *d = &h->batch.doc;
    sbuf_init(wrapped);
    if (blen == 0) body = "{}", blen = 2;
    int rc = json_parse(d, body, blen, NULL);
    if (rc != PL_OK || json_count(d) != 1 || json_kind(d, json_root(d, 0)) != JSON_KIND_OBJECT) {
        size_t off = 0;
        const char *why = rc == PL_OK ? "body must be one JSON object" : json_error(d, &off);
        char detail[160];
        snprintf(detail, sizeof(detail), "%s (at byte %zu)", why ? why : "malformed JSON", off);
        api_error(h, conn_id, rc == PL_ELIMIT ? PE_LIMIT_EXCEEDED : PE_BAD_REQUEST, detail);
        return -1;
    }
    sbuf_puts(wrapped, "{\"method\":\"api\",\"params\":");
    sbuf_append(wrapped, body, blen);
    sbuf_putc(wrapped, '}');
    if (wrapped->oom || proto_decode(&h->batch, wrapped->data, wrapped->len, NULL) != PL_OK ||
        h->batch.ncmds != 1) {
        api_error(h, conn_id, PE_INTERNAL, NULL);
        return -1;
    }
    return h->batch.cmds[0].params;
}

/* A development token's user names a person in the demo and in direct
 * channels (dm:#alice,bob): letters, digits, '_', '-' and '.', 1 to 64. */
#define DEV_USER_MAX 64
#define DEV_TOKEN_TTL_S 600 /* short-lived: the SDK's getToken asks again */

int api_dev_token(proto_host *h, uint64_t conn_id, const char *body, size_t blen)
{
    if (!h->srv->dev_secret) return api_error(h, conn_id, PE_NOT_FOUND, NULL);
    sbuf wrapped;
    api_ctx a = {.h = h, .srv = h->srv, .conn_id = conn_id, .b = &h->batch, .tenant = "default"};
    a.params = parse_params(h, conn_id, body, blen, &wrapped);
    char user[DEV_USER_MAX + 1];
    int rc = 0;
    if (a.params >= 0) {
        const char *p;
        size_t n;
        int ok = proto_param_str(a.b, a.params, "user", &p, &n) == PROTO_PARAM_OK && n &&
                 n <= DEV_USER_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = isalnum((unsigned char)p[i]) || p[i] == '_' || p[i] == '-' || p[i] == '.';
        if (ok) {
            memcpy(user, p, n);
            user[n] = '\0';
            rc = answer_token(&a, user, DEV_TOKEN_TTL_S);
        } else {
            rc = api_error(h, conn_id, PE_BAD_REQUEST,
                           "\"user\": 1 to 64 letters, digits, '_', '-' or '.'");
        }
    }
    sbuf_release(&wrapped);
    return rc;
}

int api_handle(proto_host *h, uint64_t conn_id, const char *peer, const char *method, size_t mlen,
               const char *body, size_t blen, const char *auth, size_t alen)
{
    const struct api_method *m = NULL;
    for (size_t i = 0; i < N_API_METHODS; i++)
        if (strlen(api_methods[i].name) == mlen && !memcmp(api_methods[i].name, method, mlen))
            m = &api_methods[i];
    if (!m) return api_error(h, conn_id, PE_UNKNOWN_METHOD, NULL);
    api_ctx a = {.h = h, .srv = h->srv, .conn_id = conn_id, .b = &h->batch, .params = -1};
    caller who;
    int code = authenticate(h->srv, auth, alen, &who);
    if (code) {
        char id[24];
        snprintf(id, sizeof(id), "%llu", (unsigned long long)conn_id);
        log_event(LOG_WARN, "auth_failed", "token", "api key", "reason",
                  auth ? "unknown or revoked key" : "no Authorization header", "tenant", "",
                  "remote", peer ? peer : "", "#conn", id, NULL);
        return api_error(h, conn_id, code, "missing or invalid API key");
    }
    if ((code = authorize(&who, m)))
        return api_error(h, conn_id, code, "the key's scopes do not include this method");
    a.tenant = who.tenant;
    a.who = &who;
    a.method = m->name;
    uint32_t rate = h->srv->cfg->limits.api_requests_per_second;
    if (rate) {
        char key[200];
        snprintf(key, sizeof(key), "k:%s", who.actor);
        int64_t wait = rl_table_take(h->srv->limits, key, rate, rate, clock_mono_us(), 1);
        if (wait) {
            sbuf o;
            sbuf_init(&o);
            sbuf_puts(&o, "{\"error\":");
            proto_error_json_retry(&o, wait);
            sbuf_putc(&o, '}');
            h->ops->respond(h, conn_id, proto_error_http_status(PE_TOO_MANY_REQUESTS),
                            o.data ? o.data : "{}", o.len, wait);
            sbuf_release(&o);
            return 0;
        }
    }
    sbuf wrapped;
    int pending = 0;
    if ((a.params = parse_params(h, conn_id, body, blen, &wrapped)) >= 0) {
        if (!a.tenant && m->scope != API_ADMIN) {
            /* The admin key acts on the tenant the body names. */
            const char *tp;
            size_t tn;
            char tid[128];
            const tenant *t = NULL;
            if (proto_param_str(a.b, a.params, "tenant", &tp, &tn) == PROTO_PARAM_OK &&
                tn < sizeof(tid)) {
                memcpy(tid, tp, tn);
                tid[tn] = '\0';
                t = proto_tenant(h->srv, tid);
            }
            if (!t) {
                sbuf_release(&wrapped);
                return api_error(h, conn_id, PE_UNKNOWN_CHANNEL,
                                 "the admin key needs an existing \"tenant\"");
            }
            a.tenant = t->id;
        }
        pending = m->fn(&a);
    }
    sbuf_release(&wrapped);
    return pending;
}

/* Copies an optional string param (at most cap-1 bytes) into a new string. */
static proto_error opt_copy(api_ctx *a, int obj, const char *key, char **out)
{
    const char *p;
    size_t n;
    int r = proto_param_str(a->b, obj, key, &p, &n);
    if (r == PROTO_PARAM_MISSING) return 0;
    if (r != PROTO_PARAM_OK || n > 255) return PE_BAD_REQUEST;
    return (*out = pl_strndup(p, n)) ? 0 : PE_INTERNAL;
}

/* r comes from proto_req_new (its pending is inside). */
static int submit_admin(api_ctx *a, engine_req *r)
{
    if (!(r->tenant = pl_strdup(a->tenant))) {
        engine_req_free(r);
        return api_error(a->h, a->conn_id, PE_INTERNAL, NULL);
    }
    *(pending *)r->ctx =
        (pending){.conn_id = a->conn_id, .done = api_answered, .kind = P_API_ADMIN};
    host_submit(a->h, r);
    return 1;
}

/* dlq.list {channel?, user?, reason?, since?, until? (unix ms), cursor?, limit?};
 * dlq.replay / dlq.purge {"id": N} or the same filter, or {"all": true}. */
static int a_dlq(api_ctx *a)
{
    engine_req *r = proto_req_new(a->h, ENGINE_ADMIN, NULL);
    if (!r) return api_error(a->h, a->conn_id, PE_INTERNAL, NULL);
    int list = !strcmp(a->method, "dlq.list");
    r->admin_op = list                               ? ADMIN_DLQ_LIST
                  : !strcmp(a->method, "dlq.replay") ? ADMIN_DLQ_REPLAY
                                                     : ADMIN_DLQ_PURGE;
    uint64_t since = 0, until = 0, limit = DEFAULT_PAGE_LIMIT;
    int code = opt_copy(a, a->params, "channel", &r->channel);
    if (!code) code = opt_copy(a, a->params, "user", &r->user);
    if (!code) code = opt_copy(a, a->params, "reason", &r->reason);
    if (!code && (proto_param_u64(a->b, a->params, "since", &since) == PROTO_PARAM_TYPE ||
                  proto_param_u64(a->b, a->params, "until", &until) == PROTO_PARAM_TYPE ||
                  proto_param_u64(a->b, a->params, "cursor", &r->after_id) == PROTO_PARAM_TYPE ||
                  proto_param_u64(a->b, a->params, "id", &r->entry_id) == PROTO_PARAM_TYPE ||
                  proto_param_u64(a->b, a->params, "limit", &limit) == PROTO_PARAM_TYPE ||
                  proto_param_bool(a->b, a->params, "all", &r->all) == PROTO_PARAM_TYPE))
        code = PE_BAD_REQUEST;
    if (!code && (limit == 0 || limit > 1000)) code = PE_LIMIT_EXCEEDED;
    /* Replay and purge need an explicit target: an id, a filter or all. */
    if (!code && !list && !r->entry_id && !r->all && !r->channel && !r->user && !r->reason &&
        !since && !until)
        code = PE_BAD_REQUEST;
    if (code) {
        engine_req_free(r);
        return api_error(a->h, a->conn_id, code, list ? NULL : "give id, a filter, or all: true");
    }
    r->since_ms = (int64_t)since;
    r->until_ms = (int64_t)until;
    r->limit = (uint32_t)limit;
    if (!list && api_audit(a->srv, a->who->actor, a->method, a->tenant,
                           r->entry_id ? "entry"
                           : r->all    ? "all"
                                       : "filter",
                           NULL)) {
        engine_req_free(r);
        return api_error(a->h, a->conn_id, PE_INTERNAL, "audit log unavailable");
    }
    return submit_admin(a, r);
}

static int a_trace(api_ctx *a)
{
    engine_req *r = proto_req_new(a->h, ENGINE_ADMIN, NULL);
    if (!r) return api_error(a->h, a->conn_id, PE_INTERNAL, NULL);
    r->admin_op = ADMIN_TRACE;
    int code = opt_copy(a, a->params, "id", &r->pub_id);
    if (!code && (!r->pub_id || !r->pub_id[0])) code = PE_BAD_REQUEST;
    if (code) {
        engine_req_free(r);
        return api_error(a->h, a->conn_id, code, "id (a pub id) required");
    }
    return submit_admin(a, r);
}

static void api_answered(proto_host *h, pending *pd, engine_req *r)
{
    uint64_t c = pd->conn_id;
    if (pd->kind == P_API_ADMIN) {
        if (r->admin_op == ADMIN_DLQ_REPLAY && r->status == PL_OK) {
            for (size_t i = 0; i < r->npubs; i++)
                delivery_replay(h->srv->dlv, r->pubs[i], r->users[i]);
            if (r->nrefs && h->srv->hooks)
                hooks_requeue(h->srv->hooks, r->tenant, r->refs, r->nrefs);
        }
        if (r->status == PL_ENOTFOUND) {
            api_error(h, c, PE_UNKNOWN_CHANNEL, "no such pub in this tenant");
            return;
        }
        if (r->status != PL_OK) {
            api_error(h, c, proto_engine_error(r->status), NULL);
            return;
        }
        if (r->admin_op == ADMIN_TRACE && r->json) {
            api_trace_result(h, c, r->json, r->tenant, r->pub_id);
            return;
        }
        sbuf o;
        sbuf_init(&o);
        if (r->json)
            sbuf_puts(&o, r->json);
        else
            sbuf_printf(&o, "{\"count\":%llu}", (unsigned long long)r->count);
        api_result(h, c, &o);
        sbuf_release(&o);
        return;
    }
    api_agg *g = pd->agg; /* broadcast and cursors: one slot per channel */
    if (!g && (pd->kind == P_API_CURSORS || pd->kind == P_API_BROADCAST)) return; /* never */
    if (g && r->status != PL_OK) {
        slot_error(g, pd->slot, proto_engine_error(r->status));
        return;
    }
    if (pd->kind == P_API_CURSORS) {
        sbuf o;
        sbuf_init(&o);
        sbuf_puts(&o, "{\"channel\":");
        sbuf_json_str(&o, r->channel, strlen(r->channel));
        sbuf_printf(&o, ",\"cursor\":%llu,\"unread\":%llu,\"offset\":%llu,\"epoch\":\"%s\"}",
                    (unsigned long long)r->cursor, (unsigned long long)proto_unread(r),
                    (unsigned long long)r->head, r->epoch);
        agg_slot(g, pd->slot, o.data ? o.data : "null");
        sbuf_release(&o);
        return;
    }
    if (pd->kind == P_API_BROADCAST) {
        char buf[160];
        snprintf(buf, sizeof(buf),
                 "{\"id\":\"%s\",\"offset\":%llu,\"epoch\":\"%s\",\"duplicate\":%s}", r->pub->id,
                 (unsigned long long)r->pub->offset, r->pub->epoch,
                 r->duplicate ? "true" : "false");
        agg_slot(g, pd->slot, buf);
        return;
    }
    if (r->status != PL_OK) {
        api_error(h, c, proto_engine_error(r->status), NULL);
        return;
    }
    sbuf o;
    sbuf_init(&o);
    if (pd->kind == P_API_PUBLISH) {
        sbuf_printf(&o, "{\"id\":\"%s\",\"offset\":", r->pub->id);
        sbuf_u64(&o, r->pub->offset);
        sbuf_printf(&o, ",\"epoch\":\"%s\",\"duplicate\":%s}", r->pub->epoch,
                    r->duplicate ? "true" : "false");
    } else {
        sbuf_putc(&o, '{');
        proto_put_pubs(&o, r);
        sbuf_puts(&o, ",\"offset\":");
        sbuf_u64(&o, r->head);
        sbuf_printf(&o, ",\"epoch\":\"%s\"}", r->epoch);
    }
    api_result(h, c, &o);
    sbuf_release(&o);
}
