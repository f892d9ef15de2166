/* The client methods: one table of {name, handler, flags} rows from which
 * dispatch and the metrics labels derive, and the handlers of connect,
 * publish, history, refresh, pong, ack, presence, typing and read. */
#include <stdio.h>
#include <string.h>

#include "auth/jwt.h"
#include "auth/perm.h"
#include "proto/session_int.h"
#include "util/clock.h"
#include "util/mem.h"

enum { NEEDS_CONNECT = 1 };

static void m_connect(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_publish(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_history(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_refresh(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_pong(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_ack(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_presence(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_presence_stats(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_typing(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_read(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_cursors(session *, const proto_cmd *, proto_batch *, unsigned);

/* The params each method takes (NULL-terminated): anything else is refused
 * with 107 naming it, so a misspelt parameter is never silently ignored. */
static const char *const p_connect[] = {"token", "client", "subs", NULL};
static const char *const p_subscribe[] = {"channel", "since", "limit", "token", NULL};
static const char *const p_channel[] = {"channel", NULL};
static const char *const p_publish[] = {"channel", "data",           "class",   "idempotency_key",
                                        "type",    "correlation_id", "headers", NULL};
static const char *const p_history[] = {"channel", "since", "limit", "reverse", NULL};
static const char *const p_refresh[] = {"token", NULL};
static const char *const p_none[] = {NULL};
static const char *const p_offset[] = {"channel", "offset", NULL};
static const char *const p_presence[] = {"channel", "cursor", "limit", NULL};
static const char *const p_cursors[] = {"channel", "limit", NULL};

#define DEFAULT_CURSORS_LIMIT 1000 /* readers a cursors call returns unless told */
#define MAX_CURSORS_LIMIT 10000

/* The one table of client methods: dispatch, the connect requirement, the
 * params taken and the metrics labels (session_method_names) all come from
 * these rows. The row order is the metrics index; the last row counts what
 * matched none. */
#define SESSION_METHODS(X)                                                                         \
    X(connect, m_connect, 0, p_connect)                                                            \
    X(subscribe, sess_m_subscribe, NEEDS_CONNECT, p_subscribe)                                     \
    X(unsubscribe, sess_m_unsubscribe, NEEDS_CONNECT, p_channel)                                   \
    X(publish, m_publish, NEEDS_CONNECT, p_publish)                                                \
    X(history, m_history, NEEDS_CONNECT, p_history)                                                \
    X(refresh, m_refresh, NEEDS_CONNECT, p_refresh)                                                \
    X(pong, m_pong, NEEDS_CONNECT, p_none)                                                         \
    X(ack, m_ack, NEEDS_CONNECT, p_offset)                                                         \
    X(presence, m_presence, NEEDS_CONNECT, p_presence)                                             \
    X(presence_stats, m_presence_stats, NEEDS_CONNECT, p_channel)                                  \
    X(typing, m_typing, NEEDS_CONNECT, p_channel)                                                  \
    X(read, m_read, NEEDS_CONNECT, p_offset)                                                       \
    X(cursors, m_cursors, NEEDS_CONNECT, p_cursors)

static const struct method {
    const char *name;
    method_fn fn;
    unsigned flags;
    const char *const *params;
} methods[] = {
#define METHOD_ROW(name, fn, flags, params) {#name, fn, flags, params},
    SESSION_METHODS(METHOD_ROW)
#undef METHOD_ROW
        {"unknown", NULL, NEEDS_CONNECT, p_none},
};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))
#define M_UNKNOWN (NMETHODS - 1)

const char *const session_method_names[] = {
#define METHOD_NAME(name, fn, flags, params) #name,
    SESSION_METHODS(METHOD_NAME)
#undef METHOD_NAME
        "unknown"};
const unsigned session_method_count = NMETHODS;

static void publish_done(session *s, pending *pd, engine_req *r)
{
    if (r->status != PL_OK) {
        sess_error(s, pd->has_id, pd->cmd_id, pd->method, proto_engine_error(r->status), NULL);
        return;
    }
    if (r->duplicate) metrics_add(s->h->metrics, M_PUBS_DUPLICATE, 1);
    sbuf *o = sess_reply_begin(s, pd->cmd_id);
    sbuf_puts(o, "{\"id\":\"");
    sbuf_puts(o, r->pub->id);
    sbuf_puts(o, "\",\"offset\":");
    sbuf_u64(o, r->pub->offset);
    sbuf_puts(o, ",\"epoch\":\"");
    sbuf_puts(o, r->pub->epoch);
    sbuf_puts(o, r->duplicate ? "\",\"duplicate\":true}" : "\",\"duplicate\":false}");
    sess_reply_end(s, pd->has_id, pd->method);
}

/* Keeps a history reply within the connection's reply budget: the pubs
 * that fit, in reply order, the rest dropped. A reply bigger than the queue
 * would otherwise close the client as a slow consumer on every try. Returns
 * whether pubs were cut. */
static int fit_history(session *s, engine_req *r)
{
    size_t budget = sess_reply_budget(s), bytes = 0, keep = 0;
    while (keep < r->npubs) {
        const rbuf *f = proto_pub_frame(r->pubs[keep]);
        bytes += f ? f->len : 0;
        if (bytes > budget && (keep || s->out->replies)) break;
        keep++;
    }
    for (size_t i = keep; i < r->npubs; i++)
        pub_unref(r->pubs[i]);
    int cut = keep < r->npubs;
    r->npubs = keep;
    return cut;
}

static void history_done(session *s, pending *pd, engine_req *r)
{
    if (r->status != PL_OK) {
        sess_error(s, pd->has_id, pd->cmd_id, pd->method, proto_engine_error(r->status), NULL);
        return;
    }
    int cut = fit_history(s, r);
    sbuf *o = sess_reply_begin(s, pd->cmd_id);
    sbuf_putc(o, '{');
    proto_put_pubs(o, r);
    sbuf_puts(o, ",\"offset\":");
    sbuf_u64(o, r->head);
    sbuf_printf(o, ",\"epoch\":\"%s\",\"more\":%s}", r->epoch, cut ? "true" : "false");
    sess_reply_end(s, pd->has_id, pd->method);
}

/* Pushes {"push":kind,"channel","user","offset"} of r's channel and user to
 * the channel's other subscribers (and the user's other connections when
 * to_user): read and delivery receipts. */
static void user_signal(session *s, const char *kind, const engine_req *r, uint64_t offset,
                        int to_user)
{
    sbuf o;
    sbuf_init(&o);
    sbuf_printf(&o, "{\"push\":\"%s\",\"channel\":", kind);
    sbuf_json_str(&o, r->channel, strlen(r->channel));
    sbuf_puts(&o, ",\"user\":");
    sbuf_json_str(&o, r->user, strlen(r->user));
    sbuf_puts(&o, ",\"offset\":");
    sbuf_u64(&o, offset);
    sbuf_putc(&o, '}');
    sess_signal(s, r->channel, &o, 1, to_user);
    sbuf_release(&o);
}

static void ack_done(session *s, pending *pd, engine_req *r)
{
    if (r->status != PL_OK) {
        sess_error(s, pd->has_id, pd->cmd_id, pd->method, proto_engine_error(r->status), NULL);
        return;
    }
    delivery_acked(s->h->srv->dlv, r->tenant, r->channel, r->user, r->since_offset);
    /* A delivery receipt for the publisher, on channels limited to named
     * users ("dm:#alice,bob"): their members are few, so every ack of
     * every guaranteed pub may go to all of them. */
    if (r->count && perm_has_user_list(r->channel)) user_signal(s, "ack", r, r->since_offset, 0);
    sbuf *o = sess_reply_begin(s, pd->cmd_id);
    sbuf_puts(o, "{\"acknowledged\":");
    sbuf_u64(o, r->count);
    sbuf_putc(o, '}');
    sess_reply_end(s, pd->has_id, pd->method);
}

/* A moved read cursor is a read receipt for the channel's subscribers and a
 * sync signal for the user's other devices. */
static void read_done(session *s, pending *pd, engine_req *r)
{
    if (r->status != PL_OK) {
        sess_error(s, pd->has_id, pd->cmd_id, pd->method, proto_engine_error(r->status), NULL);
        return;
    }
    if (r->moved) {
        metrics_add(s->h->metrics, M_READ_UPDATES, 1);
        user_signal(s, "read", r, r->cursor, 1);
    }
    sbuf *o = sess_reply_begin(s, pd->cmd_id);
    sbuf_puts(o, "{\"offset\":");
    sbuf_u64(o, r->cursor);
    sbuf_puts(o, ",\"unread\":");
    sbuf_u64(o, proto_unread(r));
    sbuf_putc(o, '}');
    sess_reply_end(s, pd->has_id, pd->method);
}

static void cursors_answered(proto_host *h, pending *pd, engine_req *r)
{
    session *s = sess_for(h, pd);
    if (!s) return;
    if (r->status != PL_OK || !r->json) {
        sess_error(s, pd->has_id, pd->cmd_id, pd->method,
                   proto_engine_error(r->status != PL_OK ? r->status : PL_ENOMEM), NULL);
        return;
    }
    sbuf *o = sess_reply_begin(s, pd->cmd_id);
    sbuf_puts(o, "{\"cursors\":");
    sbuf_puts(o, r->json);
    sbuf_puts(o, ",\"offset\":");
    sbuf_u64(o, r->head);
    sbuf_printf(o, ",\"epoch\":\"%s\"}", r->epoch);
    sess_reply_end(s, pd->has_id, pd->method);
}

static void publish_answered(proto_host *h, pending *pd, engine_req *r)
{
    session *s = sess_for(h, pd);
    if (s) publish_done(s, pd, r);
}

static void history_answered(proto_host *h, pending *pd, engine_req *r)
{
    session *s = sess_for(h, pd);
    if (s) history_done(s, pd, r);
}

static void ack_answered(proto_host *h, pending *pd, engine_req *r)
{
    session *s = sess_for(h, pd);
    if (s) ack_done(s, pd, r);
}

static void cursor_answered(proto_host *h, pending *pd, engine_req *r)
{
    session *s = sess_for(h, pd);
    if (s) read_done(s, pd, r);
}

/* Counts a new session against its tenant's and user's connection limits
 * (across all workers). Returns -1 when one is full (nothing held). */
static int count_connection(session *s)
{
    proto_server *srv = s->h->srv;
    const tenant *t = proto_tenant(srv, s->tenant);
    char tkey[400], ukey[400];
    sess_limit_keys(s, tkey, ukey, sizeof(tkey));
    if (t && t->max_connections) {
        if (rl_conn_acquire(srv->limits, tkey, t->max_connections)) return -1;
        s->counted_tenant = 1;
    }
    if (srv->cfg->limits.max_connections_per_user) {
        if (rl_conn_acquire(srv->limits, ukey, srv->cfg->limits.max_connections_per_user))
            return -1;
        s->counted_user = 1;
    }
    return 0;
}

/* Starts the subscriptions a connect asks for (subs: channel -> {offset,
 * epoch}); one that cannot start gets its error in the connect reply. */
static void connect_subs(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi, int subs)
{
    sbuf *o = &s->connect_reply;
    for (int k = json_child(&b->doc, subs); k >= 0; k = json_next(&b->doc, k)) {
        int v = json_obj_val(&b->doc, k);
        char ch[MAX_CHANNEL + 1], epoch[PUB_EPOCH_LEN + 1];
        const char *kp;
        size_t kn;
        uint64_t off = 0;
        proto_error err = PE_BAD_REQUEST;
        if (proto_str(b, k, &kp, &kn) == PL_OK && !proto_channel_valid(kp, kn)) {
            memcpy(ch, kp, kn);
            ch[kn] = '\0';
            const cfg_namespace *ns;
            const char *why = NULL;
            err = json_kind(&b->doc, v) == JSON_KIND_OBJECT
                      ? proto_parse_since(b, v, &off, epoch, &why)
                      : PE_BAD_REQUEST;
            if (!err) err = sess_may_read(s, ch, &ns, NULL, 0, NULL);
            pending pd = {.cmd_id = cmd->id,
                          .has_id = (uint8_t)cmd->has_id,
                          .in_connect = 1,
                          .method = (uint8_t)mi};
            int has_since = proto_param_u64(b, v, "offset", &off) == PROTO_PARAM_OK;
            if (!err)
                err = sess_subscribe(s, ch, ns, has_since, off, epoch, DEFAULT_RECOVER_LIMIT, &pd);
            if (!err) {
                s->connect_pending++;
                continue;
            }
        } else {
            snprintf(ch, sizeof(ch), "%s", "");
        }
        sbuf_puts(o, s->connect_first_sub ? "" : ",");
        s->connect_first_sub = 0;
        sbuf_json_str(o, ch, strlen(ch));
        sbuf_puts(o, ":{\"error\":");
        proto_error_json(o, err, NULL);
        sbuf_putc(o, '}');
    }
}

/* The connect result up to its subs object: who the client is, when the
 * token expires, the ping interval and the limits a client adapts to. */
static void connect_reply_head(session *s, uint64_t id, const config *cfg)
{
    sbuf *o = &s->connect_reply;
    sbuf_puts(o, "{\"id\":");
    sbuf_u64(o, id);
    sbuf_printf(o, ",\"result\":{\"client\":\"%s\",\"user\":", s->client);
    sbuf_json_str(o, s->user, strlen(s->user));
    sbuf_puts(o, ",\"tenant\":");
    sbuf_json_str(o, s->tenant, strlen(s->tenant));
    sbuf_printf(o, ",\"expires_at\":%lld,\"ping\":%lld", (long long)s->exp,
                (long long)(cfg->ping_interval_ms / 1000));
    sbuf_printf(o,
                ",\"limits\":{\"typing_interval\":%lld,\"max_frame_bytes\":%u,"
                "\"max_message_bytes\":%u,\"max_channels_per_connection\":%u}",
                (long long)cfg->limits.typing_interval_ms, cfg->limits.max_frame_bytes,
                cfg->limits.max_message_bytes, cfg->limits.max_channels_per_connection);
    sbuf_puts(o, ",\"subs\":{");
}

static void m_connect(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    const char *tok;
    size_t tlen;
    if (s->connected) {
        sess_error(s, cmd->has_id, cmd->id, mi, PE_BAD_REQUEST, "already connected");
        return;
    }
    if (proto_param_str(b, cmd->params, "token", &tok, &tlen) != PROTO_PARAM_OK) {
        sess_error(s, cmd->has_id, cmd->id, mi, PE_UNAUTHORIZED, "token required");
        sink_close(s->out, PC_INVALID_TOKEN, "invalid token");
        return;
    }
    struct jwt j;
    const tenant *tk = NULL;
    const char *reason = NULL;
    int code = sess_verify_token(s, tok, tlen, &j, &tk, &reason);
    if (code) {
        jwt_release(&j);
        sess_error(s, cmd->has_id, cmd->id, mi, code, code == PE_UNAUTHORIZED ? reason : NULL);
        sink_close(s->out, code == PE_TOKEN_EXPIRED ? PC_TOKEN_EXPIRED : PC_INVALID_TOKEN,
                   code == PE_TOKEN_EXPIRED ? "token expired" : "invalid token");
        return;
    }
    int rc = sess_login(s, &j, tk);
    jwt_release(&j);
    if (rc) {
        sess_error(s, cmd->has_id, cmd->id, mi, PE_INTERNAL, NULL);
        sink_close(s->out, PC_OVERLOADED, "overloaded");
        return;
    }
    proto_server *srv = s->h->srv;
    if (count_connection(s)) {
        sess_error(s, cmd->has_id, cmd->id, mi, PE_LIMIT_EXCEEDED, "too many connections");
        sink_close(s->out, PC_FORBIDDEN, "too many connections");
        return;
    }
    rl_bucket_init(&s->cmds, srv->cfg->limits.commands_per_second, 0, clock_mono_us());
    tenant_counters *tc = metrics_tenant(s->h->metrics, s->tenant);
    if (tc) atomic_fetch_add(&tc->connections_opened, 1);
    s->counted_conn = tc != NULL;
    if (fanout_user_add(s->h->fan, s->out, s, s->tenant, s->user)) {
        sess_error(s, cmd->has_id, cmd->id, mi, PE_INTERNAL, NULL);
        sink_close(s->out, PC_OVERLOADED, "overloaded");
        return;
    }
    s->next_ping_ms = s->h->now_ms + srv->cfg->ping_interval_ms;
    connect_reply_head(s, cmd->id, srv->cfg);
    s->connect_id = cmd->id;
    s->connect_has_id = cmd->has_id;
    s->connect_first_sub = 1;
    s->connect_pending = 1; /* held until the loop below has started every sub */
    int subs;
    if (proto_param_obj(b, cmd->params, "subs", &subs) == PROTO_PARAM_OK)
        connect_subs(s, cmd, b, mi, subs);
    if (--s->connect_pending == 0) sess_finish_connect(s);
}

static void m_publish(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    const cfg_namespace *ns = NULL;
    pub_fields f = {0};
    pub_class cls = PUB_STANDARD;
    int pv[PUBP_N];
    proto_publish_params(b, cmd->params, pv);
    int code = sess_channel_of(b, pv[PUBP_CHANNEL], ch);
    const char *why = NULL;
    if (!code) code = sess_may_publish(s, ch, &ns, &why);
    char detail[160] = "";
    if (why) snprintf(detail, sizeof(detail), "%s", why);
    if (!code) code = proto_parse_publish(s->h->srv, b, pv, ns, &f, &cls, detail, sizeof(detail));
    int64_t wait = code ? 0 : sess_publish_wait(s, ns);
    if (wait) {
        sess_retry(s, cmd->has_id, cmd->id, mi, wait);
        return;
    }
    pl_pub *p = NULL;
    if (!code) {
        f.tenant = s->tenant;
        f.tenant_len = strlen(s->tenant);
        f.channel = ch;
        f.channel_len = strlen(ch);
        f.user = s->user;
        f.user_len = strlen(s->user);
        f.client = s->client;
        f.client_len = strlen(s->client);
        f.now_ms = s->h->now_ms;
        f.now_us = s->h->now_us;
        p = pub_new(&f, cls);
        if (!p) code = PE_INTERNAL;
    }
    if (code) {
        sess_error(s, cmd->has_id, cmd->id, mi, code, detail[0] ? detail : NULL);
        return;
    }
    char id[PUB_ID_LEN + 1];
    memcpy(id, p->id, sizeof(id));
    pending pd = {.conn_id = s->out->id,
                  .cmd_id = cmd->id,
                  .has_id = (uint8_t)cmd->has_id,
                  .done = publish_answered,
                  .method = (uint8_t)mi,
                  .flow = 1};
    code = proto_submit_pub(s->h, p, ns, &pd);
    if (code) {
        sess_error(s, cmd->has_id, cmd->id, mi, code, NULL);
    } else if (cls != PUB_EPHEMERAL) {
        s->inflight++; /* counted as sess_submit does */
        s->published_us = s->h->now_us;
    } else {
        s->published_us = s->h->now_us;
        proto_ephemeral_result(sess_reply_begin(s, cmd->id), id);
        sess_reply_end(s, cmd->has_id, mi);
    }
}

static void m_history(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1], epoch[PUB_EPOCH_LEN + 1] = "";
    const cfg_namespace *ns;
    uint64_t limit = DEFAULT_HISTORY_LIMIT, since_off = 0;
    int reverse = 0, has_since = 0;
    const char *why = NULL;
    int code = sess_param_channel(b, cmd->params, ch, &why);
    if (!code) code = sess_read_limit(b, cmd->params, &limit, &why);
    if (!code && proto_param_bool(b, cmd->params, "reverse", &reverse) == PROTO_PARAM_TYPE) {
        code = PE_BAD_REQUEST;
        why = "reverse: expected true or false";
    }
    if (!code) code = sess_read_since(b, cmd->params, &has_since, &since_off, epoch, &why);
    if (!code) code = sess_may_read(s, ch, &ns, NULL, 0, &why);
    pending *pd = NULL;
    engine_req *r = code ? NULL : proto_req_new(s->h, ENGINE_READ, &pd);
    if (!code && !r) code = PE_INTERNAL;
    if (!code) {
        r->tenant = pl_strdup(s->tenant);
        r->channel = pl_strdup(ch);
        if (!r->tenant || !r->channel) code = PE_INTERNAL;
    }
    if (code) {
        engine_req_free(r);
        sess_error(s, cmd->has_id, cmd->id, mi, code, why);
        return;
    }
    r->mode = ENGINE_READ_HISTORY;
    r->max_channels = tenant_max_channels(s->h->srv, s->tenant);
    r->has_since = has_since;
    r->since_offset = since_off;
    snprintf(r->since_epoch, sizeof(r->since_epoch), "%s", epoch);
    r->limit = (uint32_t)limit;
    r->reverse = reverse;
    *pd = (pending){.conn_id = s->out->id,
                    .cmd_id = cmd->id,
                    .has_id = (uint8_t)cmd->has_id,
                    .done = history_answered,
                    .method = (uint8_t)mi};
    sess_submit(s, r);
}

static void m_refresh(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    const char *tok;
    size_t tlen;
    if (proto_param_str(b, cmd->params, "token", &tok, &tlen) != PROTO_PARAM_OK) {
        sess_error(s, cmd->has_id, cmd->id, mi, PE_BAD_REQUEST, "token required");
        return;
    }
    struct jwt j;
    const tenant *tk = NULL;
    const char *reason = NULL;
    int code = sess_verify_token(s, tok, tlen, &j, &tk, &reason);
    if (!code && (strcmp(j.sub, s->user) || strcmp(tk->id, s->tenant))) {
        code = PE_PERMISSION_DENIED;
        reason = "the token is for another user or tenant";
    }
    if (!code) s->exp = j.exp;
    jwt_release(&j);
    if (code) {
        sess_error(s, cmd->has_id, cmd->id, mi, code, code == PE_TOKEN_EXPIRED ? NULL : reason);
        return;
    }
    sbuf *o = sess_reply_begin(s, cmd->id);
    sbuf_printf(o, "{\"expires_at\":%lld}", (long long)s->exp);
    sess_reply_end(s, cmd->has_id, mi);
}

static void m_pong(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    s->pong_deadline_ms = 0;
    metrics_command(s->h->metrics, mi, 0);
    if (cmd->has_id) sess_reply_empty(s, cmd, mi);
}

/* Acknowledges every guaranteed pub of the channel up to offset for this
 * user (all of the user's devices); redelivery of those stops. */
/* Submits a per-user engine operation on a channel (ack, read cursor):
 * tenant, channel, user and offset; the reply comes from the done handler
 * of `kind`. */
static void submit_user_op(session *s, const proto_cmd *cmd, unsigned mi, enum engine_op op,
                           pending_done done, const char *ch, uint64_t off)
{
    pending *pd;
    engine_req *r = proto_req_new(s->h, op, &pd);
    if (!r || !(r->tenant = pl_strdup(s->tenant)) || !(r->channel = pl_strdup(ch)) ||
        !(r->user = pl_strdup(s->user))) {
        engine_req_free(r);
        sess_error(s, cmd->has_id, cmd->id, mi, PE_INTERNAL, NULL);
        return;
    }
    r->since_offset = off;
    *pd = (pending){.conn_id = s->out->id,
                    .cmd_id = cmd->id,
                    .has_id = (uint8_t)cmd->has_id,
                    .done = done,
                    .method = (uint8_t)mi};
    sess_submit(s, r);
}

static void m_ack(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    const cfg_namespace *ns;
    uint64_t off;
    int code = sess_param_channel(b, cmd->params, ch, NULL);
    if (!code && proto_param_u64(b, cmd->params, "offset", &off) != PROTO_PARAM_OK)
        code = PE_BAD_REQUEST;
    if (!code) code = sess_may_read(s, ch, &ns, NULL, 0, NULL);
    if (code)
        sess_error(s, cmd->has_id, cmd->id, mi, code, NULL);
    else
        submit_user_op(s, cmd, mi, ENGINE_ACK, ack_answered, ch, off);
}

static proto_error presence_target(session *s, proto_batch *b, const proto_cmd *cmd, char *ch,
                                   const cfg_namespace **ns)
{
    int code = sess_param_channel(b, cmd->params, ch, NULL);
    if (!code) code = sess_may_read(s, ch, ns, NULL, 0, NULL);
    return code;
}

static void m_presence(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    const cfg_namespace *ns;
    uint64_t cursor = 0, limit = 1000;
    int code = presence_target(s, b, cmd, ch, &ns);
    if (!code && !ns->presence) code = PE_NOT_AVAILABLE;
    if (!code && (proto_param_u64(b, cmd->params, "cursor", &cursor) == PROTO_PARAM_TYPE ||
                  proto_param_u64(b, cmd->params, "limit", &limit) == PROTO_PARAM_TYPE))
        code = PE_BAD_REQUEST;
    if (!code && (limit == 0 || limit > 10000)) code = PE_LIMIT_EXCEEDED;
    if (code) {
        sess_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        return;
    }
    sbuf *o = sess_reply_begin(s, cmd->id);
    uint32_t n;
    sbuf_puts(o, "{\"clients\":[");
    uint64_t next =
        presence_page(s->h->srv->presence, s->tenant, ch, cursor, (uint32_t)limit, o, &n);
    sbuf_puts(o, "],\"cursor\":");
    sbuf_u64(o, next);
    sbuf_putc(o, '}');
    sess_reply_end(s, cmd->has_id, mi);
}

static void m_presence_stats(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    const cfg_namespace *ns;
    int code = presence_target(s, b, cmd, ch, &ns);
    if (!code && !ns->presence) code = PE_NOT_AVAILABLE;
    if (code) {
        sess_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        return;
    }
    uint64_t clients, users;
    presence_stats(s->h->srv->presence, s->tenant, ch, &clients, &users);
    sbuf *o = sess_reply_begin(s, cmd->id);
    sbuf_printf(o, "{\"clients\":%llu,\"users\":%llu}", (unsigned long long)clients,
                (unsigned long long)users);
    sess_reply_end(s, cmd->has_id, mi);
}

/* The typing throttle: per user and channel across all devices where the
 * namespace keeps a roster, else per subscription of this connection. */
static int typing_allowed(session *s, const cfg_namespace *ns, const char *ch)
{
    proto_server *srv = s->h->srv;
    int64_t now = s->h->now_ms, interval = srv->cfg->limits.typing_interval_ms;
    if (ns->presence || ns->join_leave || ns->cls == PUB_GUARANTEED)
        return presence_typing_allowed(srv->presence, s->tenant, ch, s->user, now, interval);
    sub *sb = sess_find_sub(s, ch);
    if (!sb || (sb->last_typing_ms && now - sb->last_typing_ms < interval)) return 0;
    sb->last_typing_ms = now;
    return 1;
}

/* Typing signals are never stored, throttled per user and channel across
 * all of the user's connections, and shed first under load. */
static void m_typing(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    const cfg_namespace *ns;
    int code = presence_target(s, b, cmd, ch, &ns);
    if (code) {
        sess_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        return;
    }
    if (sess_shed_signal(s)) {
        /* counted as shed; the command itself succeeds */
    } else if (typing_allowed(s, ns, ch)) {
        sbuf o;
        sbuf_init(&o);
        sbuf_puts(&o, "{\"push\":\"typing\",\"channel\":");
        sbuf_json_str(&o, ch, strlen(ch));
        sbuf_puts(&o, ",\"user\":");
        sbuf_json_str(&o, s->user, strlen(s->user));
        sbuf_putc(&o, '}');
        sess_signal(s, ch, &o, 1, 0);
        sbuf_release(&o);
        metrics_add(s->h->metrics, M_TYPING_FORWARDED, 1);
    } else {
        metrics_add(s->h->metrics, M_TYPING_DROPPED, 1);
    }
    if (cmd->has_id)
        sess_reply_empty(s, cmd, mi);
    else
        metrics_command(s->h->metrics, mi, 0);
}

/* Sets the user's read cursor: monotonic, persisted, and announced with a
 * read push when it moved. */
static void m_read(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    const cfg_namespace *ns;
    uint64_t off = 0;
    int code = presence_target(s, b, cmd, ch, &ns);
    if (!code && !ns->read_cursors) code = PE_NOT_AVAILABLE;
    if (!code && proto_param_u64(b, cmd->params, "offset", &off) != PROTO_PARAM_OK)
        code = PE_BAD_REQUEST;
    if (code)
        sess_error(s, cmd->has_id, cmd->id, mi, code, NULL);
    else
        submit_user_op(s, cmd, mi, ENGINE_CURSOR, cursor_answered, ch, off);
}

/* Every reader's position on a channel, for read receipts that survive a
 * reload: whoever may read the channel may see how far others read it. */
static void m_cursors(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    const cfg_namespace *ns;
    uint64_t limit = DEFAULT_CURSORS_LIMIT;
    int code = presence_target(s, b, cmd, ch, &ns);
    if (!code && !ns->read_cursors) code = PE_NOT_AVAILABLE;
    if (!code && proto_param_u64(b, cmd->params, "limit", &limit) == PROTO_PARAM_TYPE)
        code = PE_BAD_REQUEST;
    if (!code && (limit == 0 || limit > MAX_CURSORS_LIMIT)) code = PE_LIMIT_EXCEEDED;
    pending *pd = NULL;
    engine_req *r = code ? NULL : proto_req_new(s->h, ENGINE_READ, &pd);
    if (!code && (!r || !(r->tenant = pl_strdup(s->tenant)) || !(r->channel = pl_strdup(ch))))
        code = PE_INTERNAL;
    if (code) {
        engine_req_free(r);
        sess_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        return;
    }
    r->mode = ENGINE_READ_CURSORS;
    r->max_channels = tenant_max_channels(s->h->srv, s->tenant);
    r->limit = (uint32_t)limit;
    *pd = (pending){.conn_id = s->out->id,
                    .cmd_id = cmd->id,
                    .has_id = (uint8_t)cmd->has_id,
                    .done = cursors_answered,
                    .method = (uint8_t)mi};
    sess_submit(s, r);
}

/* 1 with "NAME: unknown parameter" in out when params has a member that is
 * not in known. */
static int unknown_param(proto_batch *b, int params, const char *const *known, char *out,
                         size_t cap)
{
    for (int k = json_child(&b->doc, params); k >= 0; k = json_next(&b->doc, k)) {
        const char *p;
        size_t n;
        if (proto_str(b, k, &p, &n) != PL_OK) return 0; /* the decoder refused it already */
        size_t i = 0;
        while (known[i] && (strlen(known[i]) != n || memcmp(known[i], p, n)))
            i++;
        if (known[i]) continue;
        snprintf(out, cap, "%.*s: unknown parameter", n > 64 ? 64 : (int)n, p);
        return 1;
    }
    return 0;
}

static unsigned find_method(const proto_cmd *cmd)
{
    for (unsigned i = 0; i < M_UNKNOWN; i++)
        if (strlen(methods[i].name) == cmd->method_len &&
            !memcmp(methods[i].name, cmd->method, cmd->method_len))
            return i;
    return M_UNKNOWN;
}

void session_on_text(session *s, const char *data, size_t len)
{
    proto_host *h = s->h;
    proto_batch *b = &h->batch;
    int rc = proto_decode(b, data, len, NULL);
    s->pong_deadline_ms = 0; /* any frame proves the peer alive */
    if (rc == PL_ENOMEM) {
        sink_close(s->out, PC_OVERLOADED, "overloaded");
        return;
    }
    for (size_t i = 0; i < b->ncmds && !s->out->closing; i++) {
        const proto_cmd *cmd = &b->cmds[i];
        if (cmd->error) {
            metrics_add(h->metrics, M_PROTOCOL_ERRORS, 1);
            sess_error(s, cmd->has_id, cmd->id, M_UNKNOWN, cmd->error, cmd->errmsg);
            /* A message that is not JSON breaks the protocol; one over a
             * size limit is answered 106 and the connection goes on. */
            if (cmd->tok < 0 && cmd->error != PE_LIMIT_EXCEEDED)
                sink_close(s->out, PC_PROTOCOL_VIOLATION, "malformed frame");
            continue;
        }
        unsigned mi = find_method(cmd);
        if (!s->connected && (methods[mi].flags & NEEDS_CONNECT)) {
            sess_error(s, cmd->has_id, cmd->id, mi, PE_UNAUTHORIZED, "connect first");
            sink_close(s->out, PC_PROTOCOL_VIOLATION, "connect first");
            return;
        }
        if (mi == M_UNKNOWN) {
            sess_error(s, cmd->has_id, cmd->id, mi, PE_UNKNOWN_METHOD, NULL);
            continue;
        }
        char unknown[96];
        if (cmd->params >= 0 &&
            unknown_param(b, cmd->params, methods[mi].params, unknown, sizeof(unknown))) {
            sess_error(s, cmd->has_id, cmd->id, mi, PE_BAD_REQUEST, unknown);
            continue;
        }
        int64_t wait = methods[mi].flags & NEEDS_CONNECT ? sess_command_wait(s) : 0;
        if (wait) {
            sess_retry(s, cmd->has_id, cmd->id, mi, wait);
            continue;
        }
        methods[mi].fn(s, cmd, b, mi);
    }
    sess_flow(s);
}
