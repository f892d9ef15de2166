/* The protocol session's core: lifecycle (new at the upgrade, connected
 * after a valid token, freed with its connection), replies and the rate
 * limits they obey, the permission checks every method makes, engine
 * answers handed to each request's done handler, and the ping timer. */
#include <stdio.h>
#include <string.h>

#include "auth/jwt.h"
#include "auth/perm.h"
#include "obs/log.h"
#include "proto/session_int.h"
#include "util/clock.h"
#include "util/mem.h"

void sess_send(session *s, sbuf *o)
{
    if (o->oom) return;
    sink_send_reply(s->out, o->data, o->len);
}

void sess_push(session *s, sbuf *o)
{
    if (o->oom) return;
    sink_send_json(s->out, o->data, o->len);
}

/* A client's commands are read only as fast as their answers leave: past
 * FLOW_INFLIGHT_HIGH commands in storage, or half the outbound queue of
 * replies it has not taken, the connection is no longer read (TCP then
 * slows the client) until both are back under their low-water marks. The
 * in-flight bound matters because a storage answer queues its reply only
 * later: one read takes up to 64 KiB of commands. */
#define FLOW_INFLIGHT_HIGH 512
#define FLOW_INFLIGHT_LOW 256

/* Moves the session to pause state st (0: reading), keeping the host's
 * count of the held ones and the metrics; the sink only hears of changes
 * between reading and not. */
static void set_pause(session *s, uint8_t st)
{
    if (st == s->paused) return;
    s->h->held += (st == FLOW_HELD) - (s->paused == FLOW_HELD);
    if (!s->paused) metrics_add(s->h->metrics, M_READS_PAUSED, 1);
    if (!st) metrics_add(s->h->metrics, M_READS_RESUMED, 1);
    if (!s->paused || !st) sink_reading(s->out, !st);
    s->paused = st;
}

void sess_flow(session *s)
{
    size_t bound = s->h->srv->cfg->limits.outbound_queue_bytes;
    if (s->out->closed) return;
    /* A client that published in the last second waits while a worker is
     * behind on its writes (net sets srv->backlogged). */
    int held = s->published_us && s->h->now_us - s->published_us < 1000000 &&
               atomic_load_explicit(&s->h->srv->backlogged, memory_order_relaxed);
    int over = s->inflight >= FLOW_INFLIGHT_HIGH || s->out->replies >= bound / 2;
    int under = s->inflight <= FLOW_INFLIGHT_LOW && s->out->replies <= bound / 4;
    /* Paused for its own commands, the session is resumed by their answers
     * and drains (which call here); held only for the backlog, by net once
     * no worker is backlogged (proto_host.held). */
    if (over || (s->paused && !under))
        set_pause(s, FLOW_PAUSED);
    else if (held)
        set_pause(s, FLOW_HELD);
    else
        set_pause(s, 0);
}

/* Forgets a pause: the session ends (the gauge and the host's held count
 * cover live sessions only). */
static void sess_unpause(session *s)
{
    s->h->held -= s->paused == FLOW_HELD;
    if (s->paused) metrics_add(s->h->metrics, M_READS_RESUMED, 1);
    s->paused = 0;
}

size_t sess_reply_budget(const session *s)
{
    size_t half = s->h->srv->cfg->limits.outbound_queue_bytes / 2;
    return s->out->replies < half ? half - s->out->replies : 0;
}

void sess_submit(session *s, engine_req *r)
{
    pending *pd = r->ctx;
    pd->flow = 1;
    s->inflight++;
    host_submit(s->h, r);
}

void sess_error(session *s, int has_id, uint64_t id, unsigned mi, int code, const char *detail)
{
    metrics_command(s->h->metrics, mi, code);
    if (!has_id && code != PE_BAD_REQUEST && code != PE_LIMIT_EXCEEDED)
        return; /* fire-and-forget */
    sbuf *o = &s->h->scratch;
    sbuf_reset(o);
    sbuf_putc(o, '{');
    if (has_id) {
        sbuf_puts(o, "\"id\":");
        sbuf_u64(o, id);
        sbuf_putc(o, ',');
    }
    sbuf_puts(o, "\"error\":");
    if (code == PE_OVERLOADED)
        proto_error_json_code_retry(o, code, detail, proto_overload_retry_ms(s->h));
    else
        proto_error_json(o, code, detail);
    sbuf_putc(o, '}');
    sess_send(s, o);
}

/* PE_TOO_MANY_REQUESTS with the time until the limit admits the command again. */
void sess_retry(session *s, int has_id, uint64_t id, unsigned mi, int64_t wait_ms)
{
    metrics_command(s->h->metrics, mi, PE_TOO_MANY_REQUESTS);
    if (!has_id) return;
    sbuf *o = &s->h->scratch;
    sbuf_reset(o);
    sbuf_puts(o, "{\"id\":");
    sbuf_u64(o, id);
    sbuf_puts(o, ",\"error\":");
    proto_error_json_retry(o, wait_ms);
    sbuf_putc(o, '}');
    sess_send(s, o);
}

void sess_limit_keys(const session *s, char *tkey, char *ukey, size_t cap)
{
    snprintf(tkey, cap, "tc:%s", s->tenant);
    snprintf(ukey, cap, "uc:%s\x1f%s", s->tenant, s->user);
}

/* Token buckets: per connection, then per user across all workers.
 * Returns 0 when the command may run, else the wait in ms. */
int64_t sess_command_wait(session *s)
{
    proto_server *srv = s->h->srv;
    int64_t now = s->h->now_us, wait = 0;
    if (srv->cfg->limits.commands_per_second && (wait = rl_take(&s->cmds, now, 1))) return wait;
    uint32_t urate = srv->cfg->limits.user_commands_per_second;
    if (urate) {
        char key[400];
        snprintf(key, sizeof(key), "u:%s\x1f%s", s->tenant, s->user);
        wait = rl_table_take(srv->limits, key, urate, urate, now, 1);
    }
    return wait;
}

/* Publish rates: the namespace's per connection, the tenant's overall. */
int64_t sess_publish_wait(session *s, const cfg_namespace *ns)
{
    proto_server *srv = s->h->srv;
    int64_t now = s->h->now_us, wait = 0;
    char key[400];
    if (ns->publishes_per_second) {
        snprintf(key, sizeof(key), "p:%llx:%s", (unsigned long long)s->out->id, ns->name);
        wait = rl_table_take(srv->limits, key, ns->publishes_per_second, ns->publishes_per_second,
                             now, 1);
        if (wait) return wait;
    }
    const tenant *t = proto_tenant(srv, s->tenant);
    if (t && t->publishes_per_second) {
        snprintf(key, sizeof(key), "t:%s", t->id);
        wait = rl_table_take(srv->limits, key, t->publishes_per_second, t->publishes_per_second,
                             now, 1);
    }
    return wait;
}

/* Starts {"id":N,"result": in the worker scratch buffer. */
sbuf *sess_reply_begin(session *s, uint64_t id)
{
    sbuf *o = &s->h->scratch;
    sbuf_reset(o);
    sbuf_puts(o, "{\"id\":");
    sbuf_u64(o, id);
    sbuf_puts(o, ",\"result\":");
    return o;
}

void sess_reply_end(session *s, int has_id, unsigned mi)
{
    metrics_command(s->h->metrics, mi, 0);
    sbuf *o = &s->h->scratch;
    sbuf_putc(o, '}');
    if (has_id) sess_send(s, o);
}

void sess_reply_empty(session *s, const proto_cmd *cmd, unsigned mi)
{
    sbuf *o = sess_reply_begin(s, cmd->id);
    sbuf_puts(o, "{}");
    sess_reply_end(s, cmd->has_id, mi);
}

/* Copies channel name token tok (-1: absent) into a NUL-terminated buffer;
 * 0, or an error code. */
proto_error sess_channel_of(proto_batch *b, int tok, char *out)
{
    const char *p;
    size_t n;
    if (proto_str(b, tok, &p, &n) != PL_OK) return PE_BAD_REQUEST;
    if (proto_channel_valid(p, n)) return PE_BAD_REQUEST;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

proto_error sess_param_channel(proto_batch *b, int params, char *out, const char **why)
{
    int tok = json_obj_get(&b->doc, params, "channel");
    proto_error code = sess_channel_of(b, tok, out);
    if (code && why) *why = tok < 0 ? "channel: missing" : "channel: not a valid channel name";
    return code;
}

proto_error sess_read_limit(proto_batch *b, int params, uint64_t *limit, const char **why)
{
    int r = proto_param_u64(b, params, "limit", limit);
    if (r == PROTO_PARAM_TYPE) {
        *why = "limit: expected a non-negative integer";
        return PE_BAD_REQUEST;
    }
    if (*limit > MAX_HISTORY_LIMIT) {
        *why = "limit: at most 1000";
        return PE_LIMIT_EXCEEDED;
    }
    return PE_OK;
}

proto_error sess_read_since(proto_batch *b, int params, int *has_since, uint64_t *off, char *epoch,
                            const char **why)
{
    int since;
    int r = proto_param_obj(b, params, "since", &since);
    if (r == PROTO_PARAM_TYPE) {
        *why = "since: expected an object {offset, epoch}";
        return PE_BAD_REQUEST;
    }
    if (r != PROTO_PARAM_OK) return PE_OK;
    *has_since = 1;
    return proto_parse_since(b, since, off, epoch, why);
}

sub *sess_find_sub(session *s, const char *ch)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (!strcmp(s->subs[i]->channel, ch)) return s->subs[i];
    return NULL;
}

/* Broadcasts a signal push (join, leave, typing, read) for a channel to
 * every worker: an offset-0 pub whose frame is the push itself. */
int sess_shed_signal(session *s)
{
    if (!proto_overloaded(s->h->srv)) return 0;
    metrics_add(s->h->metrics, M_SHED_SIGNALS, 1);
    return 1;
}

void sess_signal(session *s, const char *ch, sbuf *frame, int skip_origin, int to_user)
{
    pub_fields f = {.tenant = s->tenant,
                    .tenant_len = strlen(s->tenant),
                    .channel = ch,
                    .channel_len = strlen(ch),
                    .user = s->user,
                    .user_len = strlen(s->user),
                    .client = s->client,
                    .client_len = strlen(s->client),
                    .now_ms = s->h->now_ms,
                    .now_us = s->h->now_us};
    pl_pub *p = frame->oom ? NULL : pub_new(&f, PUB_EPHEMERAL);
    if (!p) return;
    p->skip_origin = (uint8_t)skip_origin;
    p->to_user = (uint8_t)to_user;
    rbuf *copy = rbuf_from(frame->data, frame->len);
    pub_set_frame(p, copy);
    if (copy) s->h->ops->broadcast(s->h, p);
    pub_unref(p);
}

const char *session_client(const session *s)
{
    return s->connected ? s->client : "";
}

const char *session_tenant(const session *s)
{
    return s->connected ? s->tenant : "";
}

const char *session_user(const session *s)
{
    return s->connected ? s->user : "";
}

/* "addr:port" ("[addr]:port" for IPv6), the address alone when the port
 * is unknown, "" when neither is known. */
static void put_remote(session *s, sbuf *o)
{
    char peer[64] = "", remote[80] = "";
    sink_peer(s->out, peer, sizeof(peer));
    if (peer[0] && s->out->peer_port)
        snprintf(remote, sizeof(remote), strchr(peer, ':') ? "[%s]:%u" : "%s:%u", peer,
                 (unsigned)s->out->peer_port);
    else
        snprintf(remote, sizeof(remote), "%s", peer);
    sbuf_json_str(o, remote, strlen(remote));
}

void session_describe(session *s, sbuf *o)
{
    sbuf_printf(o, "{\"client\":\"%s\",\"user\":", s->client);
    sbuf_json_str(o, s->user ? s->user : "", s->user ? strlen(s->user) : 0);
    sbuf_printf(o, ",\"transport\":\"%s\",\"remote\":", s->sse ? "sse" : "ws");
    put_remote(s, o);
    sbuf_printf(o, ",\"connected_at\":%lld,\"channels\":[", (long long)s->connected_at_ms);
    for (uint32_t i = 0; i < s->nsubs; i++) {
        if (i) sbuf_putc(o, ',');
        sbuf_json_str(o, s->subs[i]->channel, strlen(s->subs[i]->channel));
    }
    sbuf_puts(o, "]}");
}

int session_connected(const session *s)
{
    return s->connected;
}

static char **copy_strs(const char **src, size_t n)
{
    if (!n) return NULL;
    char **d = pl_calloc(n, sizeof(*d));
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++)
        d[i] = pl_strdup(src[i]);
    return d;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        pl_free(v[i]);
    pl_free(v);
}

void session_free(session *s)
{
    if (!s) return;
    sess_lifecycle(s, LC_DISCONNECT, NULL, s->out->close_code);
    while (s->nsubs)
        sess_drop_sub(s, s->subs[s->nsubs - 1]);
    sess_unpause(s);
    if (s->connected && !s->sse) fanout_user_del(s->h->fan, s->out, s->tenant, s->user);
    tenant_counters *tc = s->counted_conn ? metrics_tenant(s->h->metrics, s->tenant) : NULL;
    if (tc) atomic_fetch_add(&tc->connections_closed, 1);
    char tkey[400], ukey[400];
    sess_limit_keys(s, tkey, ukey, sizeof(tkey));
    if (s->counted_tenant) rl_conn_release(s->h->srv->limits, tkey);
    if (s->counted_user) rl_conn_release(s->h->srv->limits, ukey);
    pl_free(s->subs);
    sess_sse_free(s->stream);
    pl_free(s->user);
    pl_free(s->info);
    free_strs(s->chans, s->nchans);
    free_strs(s->pubs, s->npubs);
    sbuf_release(&s->connect_reply);
    pl_free(s->why);
    pl_free(s);
}

/* Verifies a connection token: 0 with *out filled, or PE_UNAUTHORIZED/PE_TOKEN_EXPIRED. */
/* One JSON log line per refused token: what was presented, why (the
 * verifier's own words, for the operator), the tenant it named, the peer
 * and the connection. Never the token. */
void sess_log_auth_failure(session *s, const char *what, const char *why, const char *tenant)
{
    char peer[64] = "", id[24];
    sink_peer(s->out, peer, sizeof(peer));
    snprintf(id, sizeof(id), "%llu", (unsigned long long)s->out->id);
    log_event(LOG_WARN, "auth_failed", "token", what, "reason", why, "tenant", tenant ? tenant : "",
              "remote", peer, "#conn", id, NULL);
}

proto_error sess_verify_token(session *s, const char *tok, size_t tlen, struct jwt *out,
                              const tenant **tkp, const char **reason)
{
    proto_server *srv = s->h->srv;
    const tenant *tk = NULL;
    enum jwt_result r = jwt_parse(tok, tlen, out);
    const char *named = r == JWT_OK ? jwt_peek_tenant(out) : NULL;
    if (r == JWT_OK && !(tk = proto_tenant(srv, named))) {
        *reason = "unknown tenant";
        sess_log_auth_failure(s, "connection", "unknown tenant", named);
        return PE_UNAUTHORIZED;
    }
    if (r == JWT_OK) r = jwt_verify(out, tk->keys, clock_wall_ms() / 1000);
    if (r == JWT_OK) {
        *tkp = tk;
        return PE_OK;
    }
    *reason = jwt_reason(out);
    sess_log_auth_failure(s, "connection", jwt_errmsg(out), named);
    return r == JWT_EXPIRED ? PE_TOKEN_EXPIRED : PE_UNAUTHORIZED;
}

session *session_new(proto_host *h, pl_sink *out)
{
    session *s = pl_calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->h = h;
    s->out = out;
    sbuf_init(&s->connect_reply);
    return s;
}

/* Takes the identity of a verified token: the session is connected from
 * here. -1 when out of memory (the session stays unconnected). */
int sess_login(session *s, const struct jwt *j, const tenant *tk)
{
    clock_ulid(s->client);
    s->user = pl_strdup(j->sub);
    s->tenant = tk->id;
    s->exp = j->exp;
    s->info = j->info ? pl_strdup(j->info) : NULL;
    s->chans = copy_strs(j->channels, j->n_channels);
    s->nchans = s->chans ? j->n_channels : 0;
    s->pubs = copy_strs(j->publish, j->n_publish);
    s->npubs = s->pubs ? j->n_publish : 0;
    if (!s->user) return -1;
    s->connected = 1;
    s->connected_at_ms = s->h->now_ms;
    sess_lifecycle(s, LC_CONNECT, NULL, 0);
    return 0;
}

void proto_on_engine_done(proto_host *h, engine_req *r)
{
    pending *pd = r->ctx;
    if (r->op == ENGINE_PUBLISH)
        atomic_fetch_sub_explicit(&h->srv->storage_queue, 1, memory_order_relaxed);
    /* A counted request (sess_submit) finds its session here, once: the done
     * handler's sess_for takes it from h->answer instead of a second lookup. */
    session *s = pd && pd->flow ? h->ops->find(h, pd->conn_id) : NULL;
    if (s) h->answer = (proto_answer){pd->conn_id, s};
    if (pd && pd->done) pd->done(h, pd, r);
    h->answer.conn_id = 0;
    if (!pd || !pd->kept) engine_req_recycle(&h->req_pool, r); /* and pd, inside it */
    if (s && s->inflight) {
        s->inflight--; /* after the reply was queued: sess_flow counts it */
        sess_flow(s);
    }
}

/* The connected session an answer is for, or NULL when it went away. */
session *sess_for(proto_host *h, const pending *pd)
{
    session *s = pd->conn_id == h->answer.conn_id ? h->answer.s : h->ops->find(h, pd->conn_id);
    return s && s->connected && !s->out->closed ? s : NULL;
}

void session_tick(session *s)
{
    int64_t now = s->h->now_ms;
    int64_t interval = s->h->srv->cfg->ping_interval_ms;
    if (s->exp && now / 1000 >= s->exp && !s->sse) {
        sink_close(s->out, PC_TOKEN_EXPIRED, "token expired");
        return;
    }
    if (now < s->next_ping_ms) return;
    s->next_ping_ms = now + interval;
    if (s->sse) {
        rbuf *r = rbuf_from(": ping\n\n", 8);
        if (r) sink_enqueue(s->out, OUT_RAW, r, r->len);
        return;
    }
    if (s->pong_deadline_ms && now >= s->pong_deadline_ms) {
        sink_close(s->out, PC_NO_PONG, "no pong");
        return;
    }
    static const char ping[] = "{\"push\":\"ping\"}";
    sink_send_json(s->out, ping, sizeof(ping) - 1);
    s->pong_deadline_ms = now + interval;
}

void session_disconnect(session *s, uint16_t code, const char *reason)
{
    sink_close(s->out, code, reason);
}

/* Verifies a channel token for this session and channel. */
static int channel_token_ok(session *s, const char *tok, size_t tlen, const char *ch)
{
    const tenant *tk = proto_tenant(s->h->srv, s->tenant);
    struct jwt j;
    int ok = 0;
    if (jwt_parse(tok, tlen, &j) == JWT_OK && tk &&
        jwt_verify(&j, tk->keys, clock_wall_ms() / 1000) == JWT_OK)
        ok = j.channel && !strcmp(j.channel, ch) && !strcmp(j.sub, s->user) &&
             (s->h->srv->cfg->single_tenant || (j.tenant && !strcmp(j.tenant, s->tenant)));
    if (!ok)
        sess_log_auth_failure(s, "channel",
                              strcmp(jwt_errmsg(&j), "ok") ? jwt_errmsg(&j)
                                                           : "not for this channel, user or tenant",
                              s->tenant);
    jwt_release(&j);
    return ok;
}

/* What the connection token granted, for auth/perm. */
static perm_claims claims_of(const session *s)
{
    return (perm_claims){s->user, s->chans, s->nchans, s->pubs, s->npubs};
}

static proto_error perm_error(perm_result r)
{
    return r == PERM_OK             ? PE_OK
           : r == PERM_NO_NAMESPACE ? PE_UNKNOWN_CHANNEL
                                    : PE_PERMISSION_DENIED;
}

/* Why access was refused, for the error's detail: the rule, or for a
 * channel no namespace takes, the namespace its name asks for. NULL when
 * allowed. The text lives in the session until the next refusal. */
static const char *refusal(session *s, perm_result r, const char *ch)
{
    if (r == PERM_OK) return NULL;
    if (r != PERM_NO_NAMESPACE) return perm_why(r);
    const char *colon = strchr(ch, ':');
    if (!colon) return "the default namespace (channels without ':') is not configured";
    char buf[128];
    snprintf(buf, sizeof(buf), "no namespace '%.*s' is configured",
             (int)(colon - ch > 64 ? 64 : colon - ch), ch);
    pl_free(s->why); /* a refusal is rare: no buffer in every session for it */
    s->why = pl_strdup(buf);
    return s->why ? s->why : perm_why(r);
}

proto_error sess_may_read(session *s, const char *ch, const cfg_namespace **nsp, const char *tok,
                          size_t tlen, const char **why)
{
    const cfg_namespace *ns = config_namespace(s->h->srv->cfg, ch, strlen(ch));
    perm_claims who = claims_of(s);
    perm_result r = perm_read(ns, ch, &who);
    if (r == PERM_NEED_TOKEN && tok && channel_token_ok(s, tok, tlen, ch)) r = PERM_OK;
    *nsp = ns;
    if (why) *why = refusal(s, r, ch);
    return perm_error(r);
}

proto_error sess_may_publish(session *s, const char *ch, const cfg_namespace **nsp,
                             const char **why)
{
    const cfg_namespace *ns = config_namespace(s->h->srv->cfg, ch, strlen(ch));
    perm_claims who = claims_of(s);
    perm_result r = perm_publish(ns, ch, &who);
    *nsp = ns;
    if (why) *why = refusal(s, r, ch);
    return perm_error(r);
}
