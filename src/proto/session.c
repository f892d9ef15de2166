/* Client protocol v1 over WebSocket and SSE: the method table, the connect
 * handshake, subscriptions with recovery and catch-up streaming, publish and
 * history. Every engine round trip carries a `pending` record naming the
 * connection (by id, never by pointer: it may be gone when the reply comes)
 * and the subscription generation it was for.
 *
 * Subscription states (see net/server_int.h):
 *   RECOVERING --READ done, nothing more--> LIVE
 *   RECOVERING --READ done, more to stream--> CATCHUP --last page--> LIVE
 * While not LIVE a subscription skips live pubs; the READ it waits for was
 * ordered by the engine after them, so nothing is missed or repeated. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "delivery/delivery.h"
#include "proto/session.h"
#include "obs/log.h"
#include "proto/command.h"
#include "proto/proto_int.h"
#include "util/clock.h"
#include "util/mem.h"

#define PAGE_SIZE 256
#define DEFAULT_RECOVER_LIMIT 1000
#define DEFAULT_HISTORY_LIMIT 100
#define MAX_HISTORY_LIMIT 1000
#define MAX_IDEM_KEY 128
#define PUSH_PREFIX_LEN 14 /* strlen("{\"push\":\"pub\",") */

/* A subscription of this session. */
typedef struct sub {
    fanout_sub f;  /* first: what fan-out sees (state, last offset, sink) */
    char *channel; /* owned */
    engine_req *pending; /* guaranteed pubs awaiting this user, until the READ answers */
    const cfg_namespace *ns;
    uint8_t in_presence;
    char epoch[PUB_EPOCH_LEN + 1];
    uint32_t gen;           /* matches engine replies to this incarnation */
    uint32_t page_limit;    /* catch-up page size, tuned so a page fits the queue */
    int64_t last_typing_ms; /* typing throttle where the namespace keeps no roster */
    uint8_t read_inflight;
} sub;

struct session {
    proto_host *h; /* the worker's (borrowed) */
    pl_sink *out;  /* the connection (borrowed; outlives the session) */
    int connected; /* a valid token was presented (WebSocket) or the stream opened (SSE) */
    int64_t next_ping_ms;
    int64_t pong_deadline_ms; /* 0: no ping awaits its pong */
    char client[PUB_ID_LEN + 1];
    char *user;
    const char *tenant; /* borrowed from the server's tenant table */
    int64_t exp;
    char *info; /* JSON object text or NULL */
    char **chans;
    size_t nchans;
    char **pubs;
    size_t npubs;
    sub **subs;
    uint32_t nsubs, capsubs;
    uint32_t gen;
    int sse;
    /* connect with subs: the reply waits for every subscription's READ */
    uint64_t connect_id;
    int connect_has_id;
    int connect_pending;
    sbuf connect_reply;
    int connect_first_sub;
    rl_bucket cmds;                       /* limits.commands_per_second */
    uint8_t counted_tenant, counted_user; /* held connection-limit counts */
    uint8_t counted_conn;                 /* counted in the tenant's metrics */
};

static void pending_answered(proto_host *h, pending *pd, engine_req *r);
static void subscribe_answered(proto_host *h, pending *pd, engine_req *r);
static void page_answered(proto_host *h, pending *pd, engine_req *r);
static void publish_answered(proto_host *h, pending *pd, engine_req *r);
static void history_answered(proto_host *h, pending *pd, engine_req *r);
static void ack_answered(proto_host *h, pending *pd, engine_req *r);
static void cursor_answered(proto_host *h, pending *pd, engine_req *r);

typedef void (*method_fn)(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi);

enum { NEEDS_CONNECT = 1 };

static void m_connect(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_subscribe(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_unsubscribe(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_publish(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_history(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_refresh(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_pong(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_ack(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_presence(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_presence_stats(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_typing(session *, const proto_cmd *, proto_batch *, unsigned);
static void m_read(session *, const proto_cmd *, proto_batch *, unsigned);

static const struct method {
    const char *name;
    method_fn fn;
    unsigned flags;
} methods[] = {
    {"connect", m_connect, 0},
    {"subscribe", m_subscribe, NEEDS_CONNECT},
    {"unsubscribe", m_unsubscribe, NEEDS_CONNECT},
    {"publish", m_publish, NEEDS_CONNECT},
    {"history", m_history, NEEDS_CONNECT},
    {"refresh", m_refresh, NEEDS_CONNECT},
    {"pong", m_pong, NEEDS_CONNECT},
    {"ack", m_ack, NEEDS_CONNECT},
    {"presence", m_presence, NEEDS_CONNECT},
    {"presence_stats", m_presence_stats, NEEDS_CONNECT},
    {"typing", m_typing, NEEDS_CONNECT},
    {"read", m_read, NEEDS_CONNECT},
    {"unknown", NULL, 0},
};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))
#define M_UNKNOWN (NMETHODS - 1)

const char *const session_method_names[] = {
    "connect", "subscribe", "unsubscribe",    "publish", "history", "refresh", "pong",
    "ack",     "presence",  "presence_stats", "typing",  "read",    "unknown"};
const unsigned session_method_count = NMETHODS;

/* ======================================================================
 * Replies
 * ====================================================================== */

static void send_sbuf(session *s, sbuf *o)
{
    if (o->oom) return;
    sink_send_json(s->out, o->data, o->len);
}

static void reply_error(session *s, int has_id, uint64_t id, unsigned mi, int code, const char *detail)
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
    proto_error_json(o, code, detail);
    sbuf_putc(o, '}');
    send_sbuf(s, o);
}

/* PE_TOO_MANY_REQUESTS with the time until the limit admits the command again. */
static void reply_retry(session *s, int has_id, uint64_t id, unsigned mi, int64_t wait_ms)
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
    send_sbuf(s, o);
}

static void limit_keys(const session *s, char *tkey, char *ukey, size_t cap)
{
    snprintf(tkey, cap, "tc:%s", s->tenant);
    snprintf(ukey, cap, "uc:%s\x1f%s", s->tenant, s->user);
}

/* Token buckets: per connection, then per user across all workers.
 * Returns 0 when the command may run, else the wait in ms. */
static int64_t command_wait(session *s)
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
static int64_t publish_wait(session *s, const cfg_namespace *ns)
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
static sbuf *reply_begin(session *s, uint64_t id)
{
    sbuf *o = &s->h->scratch;
    sbuf_reset(o);
    sbuf_puts(o, "{\"id\":");
    sbuf_u64(o, id);
    sbuf_puts(o, ",\"result\":");
    return o;
}

static void reply_end(session *s, int has_id, unsigned mi)
{
    metrics_command(s->h->metrics, mi, 0);
    sbuf *o = &s->h->scratch;
    sbuf_putc(o, '}');
    if (has_id) send_sbuf(s, o);
}

static void reply_empty(session *s, const proto_cmd *cmd, unsigned mi)
{
    sbuf *o = reply_begin(s, cmd->id);
    sbuf_puts(o, "{}");
    reply_end(s, cmd->has_id, mi);
}

/* ======================================================================
 * Pub encoding (engine thread and workers)
 * ====================================================================== */

rbuf *proto_encode_pub(const pl_pub *p)
{
    sbuf o;
    sbuf_init(&o);
    /* One allocation: fixed fields take under 200 bytes besides these. */
    sbuf_reserve(&o, 200 + 2 * strlen(p->channel) + p->data_len +
                         (p->user ? 2 * strlen(p->user) : 0) + (p->type ? 2 * strlen(p->type) : 0) +
                         (p->correlation_id ? 2 * strlen(p->correlation_id) : 0) +
                         (p->headers ? strlen(p->headers) : 0));
    sbuf_puts(&o, "{\"push\":\"pub\",\"channel\":");
    sbuf_json_str(&o, p->channel, strlen(p->channel));
    sbuf_puts(&o, ",\"offset\":");
    sbuf_u64(&o, p->offset);
    if (p->offset) {
        sbuf_puts(&o, ",\"epoch\":\"");
        sbuf_puts(&o, p->epoch);
        sbuf_putc(&o, '"');
    }
    sbuf_puts(&o, ",\"id\":\"");
    sbuf_puts(&o, p->id);
    sbuf_puts(&o, "\",\"ts\":");
    sbuf_i64(&o, p->ts_ms);
    sbuf_puts(&o, ",\"data\":");
    sbuf_append(&o, p->data ? p->data : "null", p->data ? p->data_len : 4);
    if (p->user || p->client) {
        sbuf_puts(&o, ",\"info\":{");
        if (p->user) {
            sbuf_puts(&o, "\"user\":");
            sbuf_json_str(&o, p->user, strlen(p->user));
        }
        if (p->client) {
            sbuf_puts(&o, p->user ? ",\"client\":" : "\"client\":");
            sbuf_json_str(&o, p->client, strlen(p->client));
        }
        sbuf_putc(&o, '}');
    }
    if (p->type) {
        sbuf_puts(&o, ",\"type\":");
        sbuf_json_str(&o, p->type, strlen(p->type));
    }
    if (p->correlation_id) {
        sbuf_puts(&o, ",\"correlation_id\":");
        sbuf_json_str(&o, p->correlation_id, strlen(p->correlation_id));
    }
    if (p->headers) {
        sbuf_puts(&o, ",\"headers\":");
        sbuf_puts(&o, p->headers);
    }
    if (p->cls != PUB_STANDARD) {
        sbuf_puts(&o, ",\"class\":\"");
        sbuf_puts(&o, vocab_class_name(p->cls));
        sbuf_putc(&o, '"');
    }
    /* Last on purpose: redeliveries rewrite just this number. */
    if (p->cls == PUB_GUARANTEED && p->offset) sbuf_puts(&o, ",\"attempt\":1");
    sbuf_putc(&o, '}');
    rbuf *frame = sbuf_to_rbuf(&o);
    sbuf_release(&o);
    return frame;
}

const rbuf *proto_pub_frame(pl_pub *p)
{
    return pub_frame(p, proto_encode_pub);
}

/* Appends a pub as an element of a `pubs` array: its frame without "push". */
static void put_pub(sbuf *o, pl_pub *p)
{
    const rbuf *f = proto_pub_frame(p);
    if (!f || f->len <= PUSH_PREFIX_LEN) {
        o->oom = 1; /* the answer would lack a pub: fail it as out of memory */
        return;
    }
    sbuf_putc(o, '{');
    sbuf_append(o, f->data + PUSH_PREFIX_LEN, f->len - PUSH_PREFIX_LEN);
}

void proto_put_pubs(sbuf *o, engine_req *r)
{
    sbuf_puts(o, "\"pubs\":[");
    for (size_t i = 0; i < r->npubs; i++) {
        if (i) sbuf_putc(o, ',');
        put_pub(o, r->pubs[i]);
    }
    sbuf_putc(o, ']');
}

/* ======================================================================
 * Channels and permissions
 * ====================================================================== */

/* ASCII letters and digits and _ . = @ / - : a byte table, since every
 * byte of every channel name of every command is looked up. */
#define CC_8(a, b, c, d, e, f, g, h) a, b, c, d, e, f, g, h
static const unsigned char chan_chars[256] = {
    CC_8(0, 0, 0, 0, 0, 0, 0, 0), CC_8(0, 0, 0, 0, 0, 0, 0, 0), /* 0x00 */
    CC_8(0, 0, 0, 0, 0, 0, 0, 0), CC_8(0, 0, 0, 0, 0, 0, 0, 0), /* 0x10 */
    CC_8(0, 0, 0, 0, 0, 0, 0, 0), CC_8(0, 0, 0, 0, 0, 1, 1, 1), /* 0x20: - . / */
    CC_8(1, 1, 1, 1, 1, 1, 1, 1), CC_8(1, 1, 0, 0, 0, 1, 0, 0), /* 0x30: 0-9 = */
    CC_8(1, 1, 1, 1, 1, 1, 1, 1), CC_8(1, 1, 1, 1, 1, 1, 1, 1), /* 0x40: @ A-O */
    CC_8(1, 1, 1, 1, 1, 1, 1, 1), CC_8(1, 1, 1, 0, 0, 0, 0, 1), /* 0x50: P-Z _ */
    CC_8(0, 1, 1, 1, 1, 1, 1, 1), CC_8(1, 1, 1, 1, 1, 1, 1, 1), /* 0x60: a-o */
    CC_8(1, 1, 1, 1, 1, 1, 1, 1), CC_8(1, 1, 1, 0, 0, 0, 0, 0), /* 0x70: p-z */
};
#undef CC_8

/* Validates a channel name (PROTOCOL.md section 5). Returns 0 or PE_BAD_REQUEST. */
proto_error proto_channel_valid(const char *s, size_t n)
{
    if (n == 0 || n > MAX_CHANNEL) return PE_BAD_REQUEST;
    const unsigned char *u = (const unsigned char *)s;
    int colon = 0, hash = 0;
    size_t start = 0; /* where the current segment began */
    for (size_t i = 0; i < n; i++) {
        /* Nearly every byte of a name is plain: four at a time. */
        while (n - i >= 4 && chan_chars[u[i]] & chan_chars[u[i + 1]] & chan_chars[u[i + 2]] &
                                 chan_chars[u[i + 3]])
            i += 4;
        if (i == n) break;
        unsigned char ch = u[i];
        if (chan_chars[ch]) continue;
        if (ch == ':' && !colon && !hash && i > 0)
            colon = 1;
        else if (ch == '#' && !hash)
            hash = 1;
        else if (!(ch == ',' && hash && i > start))
            return PE_BAD_REQUEST;
        start = i + 1;
    }
    return start == n ? PE_BAD_REQUEST : 0;
}

/* 1 if the channel has no user list or the user is on it. */
static int user_allowed(const char *ch, const char *user)
{
    const char *h = strchr(ch, '#');
    if (!h) return 1;
    size_t ul = strlen(user);
    for (const char *p = h + 1; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == ul && !memcmp(p, user, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int patterns_match(char **pats, size_t n, const char *ch)
{
    for (size_t i = 0; i < n; i++)
        if (jwt_pattern_match(pats[i], ch, strlen(ch))) return 1;
    return 0;
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
    jwt_release(&j);
    return ok;
}

/* Checks read access (subscribe, history). Returns 0 or an error code. */
static proto_error may_read(session *s, const char *ch, const cfg_namespace **nsp, const char *tok,
                            size_t tlen)
{
    const cfg_namespace *ns = config_namespace(s->h->srv->cfg, ch, strlen(ch));
    if (!ns) return PE_UNKNOWN_CHANNEL;
    *nsp = ns;
    if (!user_allowed(ch, s->user)) return PE_PERMISSION_DENIED;
    if (ns->is_private && !patterns_match(s->chans, s->nchans, ch) &&
        !(tok && channel_token_ok(s, tok, tlen, ch)))
        return PE_PERMISSION_DENIED;
    return 0;
}

static proto_error may_publish(session *s, const char *ch, const cfg_namespace **nsp)
{
    const cfg_namespace *ns = config_namespace(s->h->srv->cfg, ch, strlen(ch));
    if (!ns) return PE_UNKNOWN_CHANNEL;
    *nsp = ns;
    if (!user_allowed(ch, s->user)) return PE_PERMISSION_DENIED;
    if (patterns_match(s->pubs, s->npubs, ch)) return 0;
    if (!ns->client_publish || ns->is_private) return PE_PERMISSION_DENIED;
    return 0;
}

/* Copies channel name token tok (-1: absent) into a NUL-terminated buffer;
 * 0, or an error code. */
static proto_error channel_of(proto_batch *b, int tok, char *out)
{
    const char *p;
    size_t n;
    if (proto_str(b, tok, &p, &n) != PL_OK) return PE_BAD_REQUEST;
    if (proto_channel_valid(p, n)) return PE_BAD_REQUEST;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static proto_error param_channel(proto_batch *b, int params, char *out)
{
    return channel_of(b, json_obj_get(&b->doc, params, "channel"), out);
}

/* ======================================================================
 * Sessions and subscriptions
 * ====================================================================== */

static sub *find_sub(session *s, const char *ch)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (!strcmp(s->subs[i]->channel, ch)) return s->subs[i];
    return NULL;
}

/* Broadcasts a signal push (join, leave, typing, read) for a channel to
 * every worker: an offset-0 pub whose frame is the push itself. */
static void broadcast_signal(session *s, const char *ch, sbuf *frame, int skip_origin, int to_user)
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

static void join_leave(session *s, sub *sb, const char *kind)
{
    sbuf o;
    sbuf_init(&o);
    sbuf_printf(&o, "{\"push\":\"%s\",\"channel\":", kind);
    sbuf_json_str(&o, sb->channel, strlen(sb->channel));
    sbuf_puts(&o, ",\"info\":{\"user\":");
    sbuf_json_str(&o, s->user, strlen(s->user));
    sbuf_printf(&o, ",\"client\":\"%s\"}}", s->client);
    broadcast_signal(s, sb->channel, &o, 1, 0);
    sbuf_release(&o);
}

/* Registers the subscriber where something needs the roster: presence
 * itself, join/leave pushes, or the recipients of guaranteed pubs. An idle
 * subscriber of another namespace costs no roster entry. */
static void presence_enter(session *s, sub *sb)
{
    const cfg_namespace *ns = sb->ns;
    if (!ns->presence && !ns->join_leave && ns->cls != PUB_GUARANTEED) return;
    if (presence_add(s->h->srv->presence, s->tenant, sb->channel, s->client, s->user, s->info,
                     s->h->now_ms) != 1)
        return;
    sb->in_presence = 1;
    if (sb->ns->join_leave) join_leave(s, sb, "join");
}

static void presence_leave(session *s, sub *sb)
{
    if (!sb->in_presence) return;
    sb->in_presence = 0;
    if (presence_remove(s->h->srv->presence, s->tenant, sb->channel, s->client) == 1 &&
        sb->ns->join_leave)
        join_leave(s, sb, "leave");
}

const char *session_client(const session *s)
{
    return s->connected ? s->client : "";
}

const char *session_tenant(const session *s)
{
    return s->connected ? s->tenant : "";
}

int session_connected(const session *s)
{
    return s->connected;
}

int session_subscribed(void *owner, const char *channel)
{
    session *s = owner;
    if (!s->connected) return 0;
    sub *sb = find_sub(s, channel);
    return sb && sb->f.state == SUB_LIVE;
}

static void drop_sub(session *s, sub *sb)
{
    presence_leave(s, sb);
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (s->subs[i] == sb) {
            s->subs[i] = s->subs[--s->nsubs];
            break;
        }
    fanout_detach(s->h->fan, &sb->f);
    engine_req_free(sb->pending);
    pl_free(sb->channel);
    pl_free(sb);
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
    while (s->nsubs)
        drop_sub(s, s->subs[s->nsubs - 1]);
    if (s->connected && !s->sse) fanout_user_del(s->h->fan, s->out, s->tenant, s->user);
    tenant_counters *tc = s->counted_conn ? metrics_tenant(s->h->metrics, s->tenant) : NULL;
    if (tc) atomic_fetch_add(&tc->connections_closed, 1);
    char tkey[400], ukey[400];
    limit_keys(s, tkey, ukey, sizeof(tkey));
    if (s->counted_tenant) rl_conn_release(s->h->srv->limits, tkey);
    if (s->counted_user) rl_conn_release(s->h->srv->limits, ukey);
    pl_free(s->subs);
    pl_free(s->user);
    pl_free(s->info);
    free_strs(s->chans, s->nchans);
    free_strs(s->pubs, s->npubs);
    sbuf_release(&s->connect_reply);
    pl_free(s);
}

/* Verifies a connection token: 0 with *out filled, or PE_UNAUTHORIZED/PE_TOKEN_EXPIRED. */
static proto_error verify_token(session *s, const char *tok, size_t tlen, struct jwt *out,
                                const tenant **tkp)
{
    proto_server *srv = s->h->srv;
    if (jwt_parse(tok, tlen, out) != JWT_OK) return PE_UNAUTHORIZED;
    const tenant *tk = proto_tenant(srv, jwt_peek_tenant(out));
    if (!tk) return PE_UNAUTHORIZED;
    enum jwt_result r = jwt_verify(out, tk->keys, clock_wall_ms() / 1000);
    if (r == JWT_EXPIRED) return PE_TOKEN_EXPIRED;
    if (r != JWT_OK) return PE_UNAUTHORIZED;
    *tkp = tk;
    return 0;
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
static int session_login(session *s, const struct jwt *j, const tenant *tk)
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
    return 0;
}

static void request_pending(session *s, sub *sb)
{
    pending *p;
    engine_req *r = proto_req_new(s->h, ENGINE_PENDING, &p);
    if (!r || !(r->tenant = pl_strdup(s->tenant)) || !(r->channel = pl_strdup(sb->channel)) ||
        !(r->user = pl_strdup(s->user))) {
        engine_req_free(r);
        return;
    }
    *p = (pending){.done = pending_answered, .conn_id = s->out->id, .gen = sb->gen};
    host_submit(s->h, r);
}

/* Writes the user's unacknowledged guaranteed pubs that the subscribe
 * result did not carry and that live delivery will not bring (offsets up to
 * the starting point), each with its next attempt number. */
static void send_pending(session *s, sub *sb, engine_req *res)
{
    engine_req *pr = sb->pending;
    sb->pending = NULL;
    if (!pr) return;
    uint64_t lo = res->npubs ? res->pubs[0]->offset : UINT64_MAX;
    uint64_t hi = res->npubs ? res->pubs[res->npubs - 1]->offset : 0;
    for (size_t i = 0; i < pr->npubs; i++) {
        pl_pub *p = pr->pubs[i];
        if (p->offset > sb->f.last_offset) continue; /* comes with catch-up or live */
        uint32_t attempt = pr->attempts[i] + 1;
        if (p->offset < lo || p->offset > hi) {
            rbuf *f = delivery_frame(proto_pub_frame(p), attempt);
            if (f) sink_enqueue(s->out, OUT_JSON, f, f->len);
        }
        delivery_sent(s->h->srv->dlv, p, sb->f.user, attempt);
    }
    engine_req_free(pr);
}

/* Registers a subscription and asks the engine for its starting point.
 * Returns 0, or an error code (nothing registered). */
static proto_error start_subscribe(session *s, const char *ch, const cfg_namespace *ns, int has_since,
                                   uint64_t since_off, const char *since_epoch, uint32_t limit,
                                   pending *pd)
{
    proto_host *h = s->h;
    if (find_sub(s, ch)) return PE_ALREADY_SUBSCRIBED;
    if (s->nsubs >= h->srv->cfg->limits.max_channels_per_connection) return PE_LIMIT_EXCEEDED;
    if (s->nsubs == s->capsubs) {
        uint32_t ncap = s->capsubs ? s->capsubs * 2 : 4;
        sub **ns = pl_realloc(s->subs, ncap * sizeof(*ns));
        if (!ns) return PE_INTERNAL;
        s->subs = ns;
        s->capsubs = ncap;
    }
    sub *sb = pl_calloc(1, sizeof(*sb));
    pending *p;
    engine_req *r = proto_req_new(s->h, ENGINE_READ, &p);
    if (!sb || !r) goto oom;
    sb->f.out = s->out;
    sb->ns = ns;
    sb->f.client = s->client;
    sb->f.user = s->user;
    sb->channel = pl_strdup(ch);
    r->tenant = pl_strdup(s->tenant);
    r->channel = pl_strdup(ch);
    if (!sb->channel || !r->tenant || !r->channel || fanout_attach(h->fan, &sb->f, s->tenant, ch)) goto oom;
    /* Before the sub joins the session, so the oom path never leaves it there. */
    if (ns && ns->read_cursors && !(r->user = pl_strdup(s->user))) goto oom;
    sb->f.state = SUB_RECOVERING;
    sb->gen = ++s->gen;
    sb->read_inflight = 1;
    s->subs[s->nsubs++] = sb;
    *p = *pd;
    p->done = subscribe_answered;
    p->conn_id = s->out->id;
    p->gen = sb->gen;
    p->has_since = (uint8_t)has_since;
    p->since_offset = since_off;
        r->max_channels = tenant_max_channels(h->srv, s->tenant);
    /* Guaranteed namespaces: ask for the user's unacknowledged pubs first;
     * the engine answers before the READ, so they are at hand when it does. */
    if (ns && ns->cls == PUB_GUARANTEED && !s->sse) request_pending(s, sb);
    if (has_since) {
        r->mode = ENGINE_READ_RECOVER;
        r->has_since = 1;
        r->since_offset = since_off;
        snprintf(r->since_epoch, sizeof(r->since_epoch), "%s", since_epoch ? since_epoch : "");
        r->limit = limit;
    } else {
        r->mode = ENGINE_READ_HISTORY;
        r->limit = 0;
    }
    host_submit(h, r);
    return 0;
oom:
    if (sb) {
        fanout_detach(h->fan, &sb->f);
        pl_free(sb->channel);
        pl_free(sb);
    }
    engine_req_free(r);
    return PE_INTERNAL;
}

static void request_page(session *s, sub *sb)
{
    pending *p;
    engine_req *r = proto_req_new(s->h, ENGINE_READ, &p);
    if (!r) goto fail;
    r->tenant = pl_strdup(s->tenant);
    r->channel = pl_strdup(sb->channel);
    if (!r->tenant || !r->channel) goto fail;
    r->mode = ENGINE_READ_HISTORY;
    r->has_since = 1;
    r->since_offset = sb->f.last_offset;
    r->limit = sb->page_limit ? sb->page_limit : PAGE_SIZE;
    p->done = page_answered;
    p->conn_id = s->out->id;
    p->gen = sb->gen;
    sb->read_inflight = 1;
    host_submit(s->h, r);
    return;
fail:
    engine_req_free(r);
    sink_close(s->out, PC_OVERLOADED, "overloaded");
}

void session_on_drain(session *s)
{
    if (!s) return;
    size_t low = s->h->srv->cfg->limits.outbound_queue_bytes / 2;
    for (uint32_t i = 0; i < s->nsubs && s->out->queued < low; i++) {
        sub *sb = s->subs[i];
        if (sb->f.state == SUB_CATCHUP && !sb->read_inflight) request_page(s, sb);
    }
}

static void send_gap(session *s, const char *ch, const char *epoch, uint64_t from, uint64_t to)
{
    sbuf o;
    sbuf_init(&o);
    sbuf_puts(&o, "{\"push\":\"gap\",\"channel\":");
    sbuf_json_str(&o, ch, strlen(ch));
    sbuf_printf(&o, ",\"epoch\":\"%s\",\"from\":", epoch);
    sbuf_u64(&o, from);
    sbuf_puts(&o, ",\"to\":");
    sbuf_u64(&o, to);
    sbuf_putc(&o, '}');
    rbuf *r = sbuf_to_rbuf(&o);
    sbuf_release(&o);
    if (r) sink_enqueue(s->out, OUT_GAP, r, r->len);
    metrics_add(s->h->metrics, M_GAPS, 1);
}

static void enqueue_pubs(session *s, sub *sb, engine_req *r)
{
    for (size_t i = 0; i < r->npubs; i++) {
        pl_pub *p = r->pubs[i];
        if (p->offset <= sb->f.last_offset) continue;
        sb->f.last_offset = p->offset;
        if (sink_enqueue_pub(s->out, p)) return;
    }
}

/* Finishes a connect whose subscriptions have all answered. */
static void finish_connect(session *s)
{
    sbuf_puts(&s->connect_reply, "}}}");
    metrics_command(s->h->metrics, 0, 0);
    if (s->connect_has_id) send_sbuf(s, &s->connect_reply);
    sbuf_release(&s->connect_reply);
}

/* The next attempt number of a pub the user has not acknowledged yet (from
 * the PENDING answer), or 0 when it is not pending. */
static uint32_t pending_attempt(const engine_req *pending, uint64_t off)
{
    for (size_t i = 0; pending && i < pending->npubs; i++)
        if (pending->pubs[i]->offset == off) return pending->attempts[i] + 1;
    return 0;
}

/* The result's pubs; unacknowledged guaranteed ones show the attempt this
 * send is (the same number send_pending records). */
static void put_result_pubs(sbuf *o, engine_req *r, const engine_req *pending)
{
    sbuf_puts(o, "\"pubs\":[");
    for (size_t i = 0; i < r->npubs; i++) {
        if (i) sbuf_putc(o, ',');
        uint32_t att = pending_attempt(pending, r->pubs[i]->offset);
        rbuf *f = att > 1 ? delivery_frame(proto_pub_frame(r->pubs[i]), att) : NULL;
        if (f && f->len > PUSH_PREFIX_LEN) {
            sbuf_putc(o, '{');
            sbuf_append(o, f->data + PUSH_PREFIX_LEN, f->len - PUSH_PREFIX_LEN);
        } else {
            put_pub(o, r->pubs[i]);
        }
        rbuf_unref(f);
    }
    sbuf_putc(o, ']');
}

/* Keeps a subscribe result within half the outbound queue: recovered pubs
 * beyond it are streamed as catch-up pages instead (more = 1); for a result
 * that is not a recovery the oldest ones are dropped. */
static void fit_result(session *s, engine_req *r, int recovered)
{
    size_t budget = s->h->srv->cfg->limits.outbound_queue_bytes / 2, bytes = 0, keep = 0;
    for (size_t k = 0; k < r->npubs; k++) {
        size_t i = recovered ? k : r->npubs - 1 - k;
        const rbuf *f = proto_pub_frame(r->pubs[i]);
        bytes += f ? f->len : 0;
        if (keep && bytes > budget) break;
        keep++;
    }
    if (keep == r->npubs) return;
    size_t drop = r->npubs - keep;
    if (recovered) {
        for (size_t i = keep; i < r->npubs; i++)
            pub_unref(r->pubs[i]);
        r->more = 1;
    } else {
        for (size_t i = 0; i < drop; i++)
            pub_unref(r->pubs[i]);
        memmove(r->pubs, r->pubs + drop, keep * sizeof(*r->pubs));
    }
    r->npubs = keep;
}

/* Sizes catch-up pages from the pubs just seen: a page is at most a quarter
 * of the outbound queue, so streaming history never trips the slow-consumer
 * cut by itself. */
static void tune_page(session *s, sub *sb, const engine_req *r)
{
    size_t bytes = 0;
    for (size_t i = 0; i < r->npubs; i++) {
        const rbuf *f = proto_pub_frame(r->pubs[i]);
        bytes += f ? f->len : 0;
    }
    if (!r->npubs || !bytes) {
        if (!sb->page_limit) sb->page_limit = PAGE_SIZE;
        return;
    }
    size_t avg = bytes / r->npubs + 1;
    size_t fit = s->h->srv->cfg->limits.outbound_queue_bytes / 4 / avg;
    sb->page_limit = (uint32_t)(fit < 1 ? 1 : fit > PAGE_SIZE ? PAGE_SIZE : fit);
}

static void subscribe_done(session *s, sub *sb, pending *pd, engine_req *r)
{
    unsigned mi = 1;
    if (r->status != PL_OK) {
        int code = proto_engine_error(r->status);
        if (pd->in_connect) {
            sbuf_puts(&s->connect_reply, s->connect_first_sub ? "" : ",");
            s->connect_first_sub = 0;
            sbuf_json_str(&s->connect_reply, sb->channel, strlen(sb->channel));
            sbuf_puts(&s->connect_reply, ":{\"error\":");
            proto_error_json(&s->connect_reply, code, NULL);
            sbuf_putc(&s->connect_reply, '}');
        } else {
            reply_error(s, pd->has_id, pd->cmd_id, mi, code, NULL);
        }
        drop_sub(s, sb);
        return;
    }
    snprintf(sb->epoch, sizeof(sb->epoch), "%s", r->epoch);
    int recovered = pd->has_since && r->recovered;
    fit_result(s, r, recovered);
    tune_page(s, sb, r);
    uint64_t last =
        r->npubs ? r->pubs[r->npubs - 1]->offset : (recovered ? pd->since_offset : r->head);
    if (s->sse) {
        sb->f.last_offset = 0;
        enqueue_pubs(s, sb, r);
        sb->f.last_offset = last;
    } else {
        sbuf *o = pd->in_connect ? &s->connect_reply : reply_begin(s, pd->cmd_id);
        if (pd->server_side) {
            sbuf_reset(o);
            sbuf_puts(o, "{\"push\":\"subscribe\",\"channel\":");
            sbuf_json_str(o, sb->channel, strlen(sb->channel));
            sbuf_puts(o, ",\"result\":");
        }
        if (pd->in_connect) {
            sbuf_puts(o, s->connect_first_sub ? "" : ",");
            s->connect_first_sub = 0;
            sbuf_json_str(o, sb->channel, strlen(sb->channel));
            sbuf_putc(o, ':');
        }
        sbuf_puts(o, "{\"offset\":");
        sbuf_u64(o, r->head);
        sbuf_printf(o, ",\"epoch\":\"%s\",\"recovered\":%s,", r->epoch,
                    recovered ? "true" : "false");
        put_result_pubs(o, r, sb->pending);
        sbuf_printf(o, ",\"more\":%s", recovered && r->more ? "true" : "false");
        if (sb->ns->read_cursors) {
            sbuf_puts(o, ",\"unread\":");
            sbuf_u64(o, proto_unread(r));
        }
        sbuf_putc(o, '}');
        if (pd->server_side) {
            sbuf_putc(o, '}');
            send_sbuf(s, o);
        } else if (!pd->in_connect) {
            reply_end(s, pd->has_id, mi);
        }
        sb->f.last_offset = last;
    }
    if (pd->has_since && !recovered) {
        /* Same stream, position retained no longer: the gap is what was
         * trimmed. Another epoch or a position past the head: everything the
         * client holds up to its position belongs to no stream we can vouch
         * for, so the gap is 1..since. */
        int same = !strcmp(r->since_epoch, "*") || !strcmp(r->since_epoch, r->epoch);
        uint64_t from = 1, to = pd->since_offset;
        if (same && pd->since_offset <= r->head) {
            from = pd->since_offset + 1;
            to = r->npubs ? r->pubs[0]->offset - 1 : r->head;
        }
        if (to >= from) send_gap(s, sb->channel, r->epoch, from, to);
    }
    if (recovered) metrics_add(s->h->metrics, M_RECOVERIES, 1);
    presence_enter(s, sb);
    send_pending(s, sb, r);
    sb->f.state = recovered && r->more ? SUB_CATCHUP : SUB_LIVE;
    if (sb->f.state == SUB_CATCHUP) session_on_drain(s);
}

static void page_done(session *s, sub *sb, engine_req *r)
{
    if (r->status != PL_OK) {
        sink_close(s->out, PC_OVERLOADED, "storage unavailable");
        return;
    }
    enqueue_pubs(s, sb, r);
    tune_page(s, sb, r);
    if (!r->more)
        sb->f.state = SUB_LIVE;
    else
        session_on_drain(s);
}

static void publish_done(session *s, pending *pd, engine_req *r)
{
    if (r->status != PL_OK) {
        reply_error(s, pd->has_id, pd->cmd_id, pd->method, proto_engine_error(r->status), NULL);
        return;
    }
    if (r->duplicate) metrics_add(s->h->metrics, M_PUBS_DUPLICATE, 1);
    sbuf *o = reply_begin(s, pd->cmd_id);
    sbuf_puts(o, "{\"id\":\"");
    sbuf_puts(o, r->pub->id);
    sbuf_puts(o, "\",\"offset\":");
    sbuf_u64(o, r->pub->offset);
    sbuf_puts(o, ",\"epoch\":\"");
    sbuf_puts(o, r->pub->epoch);
    sbuf_puts(o, r->duplicate ? "\",\"duplicate\":true}" : "\",\"duplicate\":false}");
    reply_end(s, pd->has_id, pd->method);
}

static void history_done(session *s, pending *pd, engine_req *r)
{
    if (r->status != PL_OK) {
        reply_error(s, pd->has_id, pd->cmd_id, pd->method, proto_engine_error(r->status), NULL);
        return;
    }
    sbuf *o = reply_begin(s, pd->cmd_id);
    sbuf_putc(o, '{');
    proto_put_pubs(o, r);
    sbuf_puts(o, ",\"offset\":");
    sbuf_u64(o, r->head);
    sbuf_printf(o, ",\"epoch\":\"%s\"}", r->epoch);
    reply_end(s, pd->has_id, pd->method);
}

static void ack_done(session *s, pending *pd, engine_req *r)
{
    if (r->status != PL_OK) {
        reply_error(s, pd->has_id, pd->cmd_id, pd->method, proto_engine_error(r->status), NULL);
        return;
    }
    delivery_acked(s->h->srv->dlv, r->tenant, r->channel, r->user, r->since_offset);
    sbuf *o = reply_begin(s, pd->cmd_id);
    sbuf_puts(o, "{\"acknowledged\":");
    sbuf_u64(o, r->count);
    sbuf_putc(o, '}');
    reply_end(s, pd->has_id, pd->method);
}

uint64_t proto_unread(const engine_req *r)
{
    if (!r->first) return 0; /* nothing retained */
    uint64_t after = r->cursor > r->first - 1 ? r->cursor : r->first - 1;
    return r->head > after ? r->head - after : 0;
}

/* A moved read cursor is a read receipt for the channel's subscribers and a
 * sync signal for the user's other devices. */
static void read_done(session *s, pending *pd, engine_req *r)
{
    if (r->status != PL_OK) {
        reply_error(s, pd->has_id, pd->cmd_id, pd->method, proto_engine_error(r->status), NULL);
        return;
    }
    if (r->moved) {
        metrics_add(s->h->metrics, M_READ_UPDATES, 1);
        sbuf o;
        sbuf_init(&o);
        sbuf_puts(&o, "{\"push\":\"read\",\"channel\":");
        sbuf_json_str(&o, r->channel, strlen(r->channel));
        sbuf_puts(&o, ",\"user\":");
        sbuf_json_str(&o, r->user, strlen(r->user));
        sbuf_puts(&o, ",\"offset\":");
        sbuf_u64(&o, r->cursor);
        sbuf_putc(&o, '}');
        broadcast_signal(s, r->channel, &o, 1, 1);
        sbuf_release(&o);
    }
    sbuf *o = reply_begin(s, pd->cmd_id);
    sbuf_puts(o, "{\"offset\":");
    sbuf_u64(o, r->cursor);
    sbuf_puts(o, ",\"unread\":");
    sbuf_u64(o, proto_unread(r));
    sbuf_putc(o, '}');
    reply_end(s, pd->has_id, pd->method);
}

/* ======================================================================
 * Engine answers: each request carries its done handler
 * ====================================================================== */

void proto_on_engine_done(proto_host *h, engine_req *r)
{
    pending *pd = r->ctx;
    if (pd && pd->done) pd->done(h, pd, r);
    if (!pd || !pd->kept) engine_req_recycle(&h->req_pool, r); /* and pd, inside it */
}

/* The connected session an answer is for, or NULL when it went away. */
static session *session_for(proto_host *h, const pending *pd)
{
    session *s = h->ops->find(h, pd->conn_id);
    return s && s->connected && !s->out->closed ? s : NULL;
}

/* The user's unacknowledged guaranteed pubs, kept for the subscribe READ
 * that answers next. */
static void pending_answered(proto_host *h, pending *pd, engine_req *r)
{
    session *s = session_for(h, pd);
    sub *sb = s ? find_sub(s, r->channel) : NULL;
    if (sb && sb->gen == pd->gen && r->status == PL_OK && !sb->pending) {
        sb->pending = r;
        pd->kept = 1;
    }
}

/* A subscribe READ or a catch-up page, for the subscription incarnation
 * that asked (an unsubscribe or resubscribe meanwhile makes it stale). */
static void read_answered(proto_host *h, pending *pd, engine_req *r, int page)
{
    session *s = session_for(h, pd);
    if (!s) return;
    sub *sb = find_sub(s, r->channel);
    if (!sb || sb->gen != pd->gen) {
        if (!page && !pd->in_connect)
            reply_error(s, pd->has_id, pd->cmd_id, 1, PE_BAD_REQUEST, "unsubscribed meanwhile");
        return;
    }
    sb->read_inflight = 0;
    if (page)
        page_done(s, sb, r);
    else
        subscribe_done(s, sb, pd, r);
    if (pd->in_connect && --s->connect_pending == 0) finish_connect(s);
}

static void subscribe_answered(proto_host *h, pending *pd, engine_req *r)
{
    read_answered(h, pd, r, 0);
}

static void page_answered(proto_host *h, pending *pd, engine_req *r)
{
    read_answered(h, pd, r, 1);
}

static void publish_answered(proto_host *h, pending *pd, engine_req *r)
{
    session *s = session_for(h, pd);
    if (s) publish_done(s, pd, r);
}

static void history_answered(proto_host *h, pending *pd, engine_req *r)
{
    session *s = session_for(h, pd);
    if (s) history_done(s, pd, r);
}

static void ack_answered(proto_host *h, pending *pd, engine_req *r)
{
    session *s = session_for(h, pd);
    if (s) ack_done(s, pd, r);
}

static void cursor_answered(proto_host *h, pending *pd, engine_req *r)
{
    session *s = session_for(h, pd);
    if (s) read_done(s, pd, r);
}

/* ======================================================================
 * Methods
 * ====================================================================== */

proto_error proto_parse_since(proto_batch *b, int obj, uint64_t *off, char *epoch)
{
    uint64_t o = 0;
    const char *e;
    size_t en;
    if (proto_param_u64(b, obj, "offset", &o) == PROTO_PARAM_TYPE) return PE_BAD_REQUEST;
    int er = proto_param_str(b, obj, "epoch", &e, &en);
    if (er == PROTO_PARAM_TYPE || (er == PROTO_PARAM_OK && en > PUB_EPOCH_LEN))
        return PE_BAD_REQUEST;
    *off = o;
    if (er == PROTO_PARAM_OK) {
        memcpy(epoch, e, en);
        epoch[en] = '\0';
    } else {
        epoch[0] = '\0';
    }
    return 0;
}

/* Counts a new session against its tenant's and user's connection limits
 * (across all workers). Returns -1 when one is full (nothing held). */
static int count_connection(session *s)
{
    proto_server *srv = s->h->srv;
    const tenant *t = proto_tenant(srv, s->tenant);
    char tkey[400], ukey[400];
    limit_keys(s, tkey, ukey, sizeof(tkey));
    if (t && t->max_connections) {
        if (rl_conn_acquire(srv->limits, tkey, t->max_connections)) return -1;
        s->counted_tenant = 1;
    }
    if (srv->cfg->limits.max_connections_per_user) {
        if (rl_conn_acquire(srv->limits, ukey, srv->cfg->limits.max_connections_per_user)) return -1;
        s->counted_user = 1;
    }
    return 0;
}

static void m_connect(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    const char *tok;
    size_t tlen;
    if (s->connected) {
        reply_error(s, cmd->has_id, cmd->id, mi, PE_BAD_REQUEST, "already connected");
        return;
    }
    if (proto_param_str(b, cmd->params, "token", &tok, &tlen) != PROTO_PARAM_OK) {
        reply_error(s, cmd->has_id, cmd->id, mi, PE_UNAUTHORIZED, "token required");
        sink_close(s->out, PC_INVALID_TOKEN, "invalid token");
        return;
    }
    struct jwt j;
    const tenant *tk = NULL;
    int code = verify_token(s, tok, tlen, &j, &tk);
    if (code) {
        jwt_release(&j);
        reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        sink_close(s->out, code == PE_TOKEN_EXPIRED ? PC_TOKEN_EXPIRED : PC_INVALID_TOKEN,
                   code == PE_TOKEN_EXPIRED ? "token expired" : "invalid token");
        return;
    }
    int rc = session_login(s, &j, tk);
    jwt_release(&j);
    if (rc) {
        reply_error(s, cmd->has_id, cmd->id, mi, PE_INTERNAL, NULL);
        sink_close(s->out, PC_OVERLOADED, "overloaded");
        return;
    }
    proto_server *srv = s->h->srv;
    if (count_connection(s)) {
        reply_error(s, cmd->has_id, cmd->id, mi, PE_LIMIT_EXCEEDED, "too many connections");
        sink_close(s->out, PC_FORBIDDEN, "too many connections");
        return;
    }
    rl_bucket_init(&s->cmds, srv->cfg->limits.commands_per_second, 0, clock_mono_us());
    tenant_counters *tc = metrics_tenant(s->h->metrics, s->tenant);
    if (tc) atomic_fetch_add(&tc->connections_opened, 1);
    s->counted_conn = tc != NULL;
    if (fanout_user_add(s->h->fan, s->out, s, s->tenant, s->user)) {
        reply_error(s, cmd->has_id, cmd->id, mi, PE_INTERNAL, NULL);
        sink_close(s->out, PC_OVERLOADED, "overloaded");
        return;
    }
    s->next_ping_ms = s->h->now_ms + srv->cfg->ping_interval_ms;
    sbuf *o = &s->connect_reply;
    sbuf_puts(o, "{\"id\":");
    sbuf_u64(o, cmd->id);
    sbuf_printf(o, ",\"result\":{\"client\":\"%s\",\"user\":", s->client);
    sbuf_json_str(o, s->user, strlen(s->user));
    sbuf_puts(o, ",\"tenant\":");
    sbuf_json_str(o, s->tenant, strlen(s->tenant));
    sbuf_printf(o, ",\"expires_at\":%lld,\"ping\":%lld,\"subs\":{", (long long)s->exp,
                (long long)(srv->cfg->ping_interval_ms / 1000));
    s->connect_id = cmd->id;
    s->connect_has_id = cmd->has_id;
    s->connect_first_sub = 1;
    s->connect_pending = 1; /* held until the loop below has started every sub */
    int subs;
    if (proto_param_obj(b, cmd->params, "subs", &subs) == PROTO_PARAM_OK) {
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
                err = json_kind(&b->doc, v) == JSON_KIND_OBJECT
                          ? proto_parse_since(b, v, &off, epoch)
                          : PE_BAD_REQUEST;
                if (!err) err = may_read(s, ch, &ns, NULL, 0);
                pending pd = {.cmd_id = cmd->id,
                              .has_id = (uint8_t)cmd->has_id,
                              .in_connect = 1,
                              .method = (uint8_t)mi};
                int has_since = proto_param_u64(b, v, "offset", &off) == PROTO_PARAM_OK;
                if (!err)
                    err = start_subscribe(s, ch, ns, has_since, off, epoch, DEFAULT_RECOVER_LIMIT,
                                          &pd);
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
    if (--s->connect_pending == 0) finish_connect(s);
}

static void m_subscribe(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1], epoch[PUB_EPOCH_LEN + 1] = "";
    int code = param_channel(b, cmd->params, ch);
    const char *tok = NULL;
    size_t tlen = 0;
    uint64_t since_off = 0, limit = DEFAULT_RECOVER_LIMIT;
    int since = -1, has_since = 0;
    const cfg_namespace *ns;
    if (!code && proto_param_str(b, cmd->params, "token", &tok, &tlen) == PROTO_PARAM_TYPE)
        code = PE_BAD_REQUEST;
    if (!code) {
        int r = proto_param_obj(b, cmd->params, "since", &since);
        if (r == PROTO_PARAM_TYPE)
            code = PE_BAD_REQUEST;
        else if (r == PROTO_PARAM_OK) {
            has_since = 1;
            code = proto_parse_since(b, since, &since_off, epoch);
        }
    }
    if (!code) {
        int r = proto_param_u64(b, cmd->params, "limit", &limit);
        if (r == PROTO_PARAM_TYPE)
            code = PE_BAD_REQUEST;
        else if (limit > MAX_HISTORY_LIMIT)
            code = PE_LIMIT_EXCEEDED;
    }
    if (!code) code = may_read(s, ch, &ns, tok, tlen);
    if (!code) {
        pending pd = {.cmd_id = cmd->id, .has_id = (uint8_t)cmd->has_id, .method = (uint8_t)mi};
        code = start_subscribe(s, ch, ns, has_since, since_off, epoch, (uint32_t)limit, &pd);
    }
    if (code) reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
}

static void m_unsubscribe(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    int code = param_channel(b, cmd->params, ch);
    if (code) {
        reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        return;
    }
    sub *sb = find_sub(s, ch);
    if (sb) drop_sub(s, sb);
    reply_empty(s, cmd, mi);
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

static int headers_valid(proto_batch *b, int tok)
{
    for (int k = json_child(&b->doc, tok); k >= 0; k = json_next(&b->doc, k))
        if (json_kind(&b->doc, json_obj_val(&b->doc, k)) != JSON_KIND_STRING) return 0;
    return 1;
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

proto_error proto_parse_publish(const proto_server *srv, proto_batch *b, const int v[PUBP_N],
                                const cfg_namespace *ns, pub_fields *f, pub_class *cls)
{
    if (json_raw(&b->doc, v[PUBP_DATA], &f->data, &f->data_len) != PL_OK) return PE_BAD_REQUEST;
    if (f->data_len > srv->cfg->limits.max_message_bytes) return PE_LIMIT_EXCEEDED;
    *cls = ns->cls;
    int code = parse_class(b, v[PUBP_CLASS], cls);
    if (!code) code = opt_str(b, v[PUBP_IDEM], MAX_IDEM_KEY, &f->idem_key, &f->idem_key_len);
    if (!code) code = opt_str(b, v[PUBP_TYPE], 255, &f->type, &f->type_len);
    if (!code)
        code = opt_str(b, v[PUBP_CORRELATION], 255, &f->correlation_id, &f->correlation_id_len);
    int h = v[PUBP_HEADERS];
    if (!code && h >= 0) {
        if (json_kind(&b->doc, h) != JSON_KIND_OBJECT || !headers_valid(b, h))
            code = PE_BAD_REQUEST;
        else
            json_raw(&b->doc, h, &f->headers, &f->headers_len);
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
    return status == PL_EIO      ? PE_STORAGE_UNAVAILABLE
           : status == PL_ELIMIT ? PE_LIMIT_EXCEEDED
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

proto_error proto_submit_pub(proto_host *h, pl_pub *p, const cfg_namespace *ns, pending *pd)
{
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
    host_submit(h, r);
    return 0;
}

void proto_ephemeral_result(sbuf *o, const char *id)
{
    sbuf_puts(o, "{\"id\":\"");
    sbuf_puts(o, id);
    sbuf_puts(o, "\",\"offset\":0,\"epoch\":\"\",\"duplicate\":false}");
}

static void m_publish(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    const cfg_namespace *ns = NULL;
    pub_fields f = {0};
    pub_class cls = PUB_STANDARD;
    int pv[PUBP_N];
    proto_publish_params(b, cmd->params, pv);
    int code = channel_of(b, pv[PUBP_CHANNEL], ch);
    if (!code) code = may_publish(s, ch, &ns);
    if (!code) code = proto_parse_publish(s->h->srv, b, pv, ns, &f, &cls);
    int64_t wait = code ? 0 : publish_wait(s, ns);
    if (wait) {
        reply_retry(s, cmd->has_id, cmd->id, mi, wait);
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
        reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        return;
    }
    char id[PUB_ID_LEN + 1];
    memcpy(id, p->id, sizeof(id));
    pending pd = {.conn_id = s->out->id,
                  .cmd_id = cmd->id,
                  .has_id = (uint8_t)cmd->has_id,
                  .done = publish_answered,
                  .method = (uint8_t)mi};
    code = proto_submit_pub(s->h, p, ns, &pd);
    if (code) {
        reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
    } else if (cls == PUB_EPHEMERAL) {
        proto_ephemeral_result(reply_begin(s, cmd->id), id);
        reply_end(s, cmd->has_id, mi);
    }
}

static void m_history(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1], epoch[PUB_EPOCH_LEN + 1] = "";
    const cfg_namespace *ns;
    uint64_t limit = DEFAULT_HISTORY_LIMIT, since_off = 0;
    int since = -1, reverse = 0, has_since = 0;
    int code = param_channel(b, cmd->params, ch);
    if (!code) {
        int r = proto_param_u64(b, cmd->params, "limit", &limit);
        if (r == PROTO_PARAM_TYPE)
            code = PE_BAD_REQUEST;
        else if (limit > MAX_HISTORY_LIMIT)
            code = PE_LIMIT_EXCEEDED;
    }
    if (!code && proto_param_bool(b, cmd->params, "reverse", &reverse) == PROTO_PARAM_TYPE)
        code = PE_BAD_REQUEST;
    if (!code) {
        int r = proto_param_obj(b, cmd->params, "since", &since);
        if (r == PROTO_PARAM_TYPE)
            code = PE_BAD_REQUEST;
        else if (r == PROTO_PARAM_OK) {
            has_since = 1;
            code = proto_parse_since(b, since, &since_off, epoch);
        }
    }
    if (!code) code = may_read(s, ch, &ns, NULL, 0);
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
        reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
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
    host_submit(s->h, r);
}

static void m_refresh(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    const char *tok;
    size_t tlen;
    if (proto_param_str(b, cmd->params, "token", &tok, &tlen) != PROTO_PARAM_OK) {
        reply_error(s, cmd->has_id, cmd->id, mi, PE_BAD_REQUEST, "token required");
        return;
    }
    struct jwt j;
    const tenant *tk = NULL;
    int code = verify_token(s, tok, tlen, &j, &tk);
    if (!code && (strcmp(j.sub, s->user) || strcmp(tk->id, s->tenant)))
        code = PE_PERMISSION_DENIED;
    if (!code) s->exp = j.exp;
    jwt_release(&j);
    if (code) {
        reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        return;
    }
    sbuf *o = reply_begin(s, cmd->id);
    sbuf_printf(o, "{\"expires_at\":%lld}", (long long)s->exp);
    reply_end(s, cmd->has_id, mi);
}

static void m_pong(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    s->pong_deadline_ms = 0;
    metrics_command(s->h->metrics, mi, 0);
    if (cmd->has_id) reply_empty(s, cmd, mi);
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
        reply_error(s, cmd->has_id, cmd->id, mi, PE_INTERNAL, NULL);
        return;
    }
    r->since_offset = off;
    *pd = (pending){.conn_id = s->out->id,
                    .cmd_id = cmd->id,
                    .has_id = (uint8_t)cmd->has_id,
                    .done = done,
                    .method = (uint8_t)mi};
    host_submit(s->h, r);
}

static void m_ack(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    const cfg_namespace *ns;
    uint64_t off;
    int code = param_channel(b, cmd->params, ch);
    if (!code && proto_param_u64(b, cmd->params, "offset", &off) != PROTO_PARAM_OK)
        code = PE_BAD_REQUEST;
    if (!code) code = may_read(s, ch, &ns, NULL, 0);
    if (code)
        reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
    else
        submit_user_op(s, cmd, mi, ENGINE_ACK, ack_answered, ch, off);
}

static proto_error presence_target(session *s, proto_batch *b, const proto_cmd *cmd, char *ch,
                                   const cfg_namespace **ns)
{
    int code = param_channel(b, cmd->params, ch);
    if (!code) code = may_read(s, ch, ns, NULL, 0);
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
        reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        return;
    }
    sbuf *o = reply_begin(s, cmd->id);
    uint32_t n;
    sbuf_puts(o, "{\"clients\":[");
    uint64_t next =
        presence_page(s->h->srv->presence, s->tenant, ch, cursor, (uint32_t)limit, o, &n);
    sbuf_puts(o, "],\"cursor\":");
    sbuf_u64(o, next);
    sbuf_putc(o, '}');
    reply_end(s, cmd->has_id, mi);
}

static void m_presence_stats(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    const cfg_namespace *ns;
    int code = presence_target(s, b, cmd, ch, &ns);
    if (!code && !ns->presence) code = PE_NOT_AVAILABLE;
    if (code) {
        reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        return;
    }
    uint64_t clients, users;
    presence_stats(s->h->srv->presence, s->tenant, ch, &clients, &users);
    sbuf *o = reply_begin(s, cmd->id);
    sbuf_printf(o, "{\"clients\":%llu,\"users\":%llu}", (unsigned long long)clients,
                (unsigned long long)users);
    reply_end(s, cmd->has_id, mi);
}

/* The typing throttle: per user and channel across all devices where the
 * namespace keeps a roster, else per subscription of this connection. */
static int typing_allowed(session *s, const cfg_namespace *ns, const char *ch)
{
    proto_server *srv = s->h->srv;
    int64_t now = s->h->now_ms, interval = srv->cfg->limits.typing_interval_ms;
    if (ns->presence || ns->join_leave || ns->cls == PUB_GUARANTEED)
        return presence_typing_allowed(srv->presence, s->tenant, ch, s->user, now, interval);
    sub *sb = find_sub(s, ch);
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
        reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        return;
    }
    if (typing_allowed(s, ns, ch)) {
        sbuf o;
        sbuf_init(&o);
        sbuf_puts(&o, "{\"push\":\"typing\",\"channel\":");
        sbuf_json_str(&o, ch, strlen(ch));
        sbuf_puts(&o, ",\"user\":");
        sbuf_json_str(&o, s->user, strlen(s->user));
        sbuf_putc(&o, '}');
        broadcast_signal(s, ch, &o, 1, 0);
        sbuf_release(&o);
        metrics_add(s->h->metrics, M_TYPING_FORWARDED, 1);
    } else {
        metrics_add(s->h->metrics, M_TYPING_DROPPED, 1);
    }
    if (cmd->has_id)
        reply_empty(s, cmd, mi);
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
        reply_error(s, cmd->has_id, cmd->id, mi, code, NULL);
    else
        submit_user_op(s, cmd, mi, ENGINE_CURSOR, cursor_answered, ch, off);
}

/* ======================================================================
 * Frames in, timers
 * ====================================================================== */

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
            reply_error(s, cmd->has_id, cmd->id, M_UNKNOWN, cmd->error, cmd->errmsg);
            if (cmd->tok < 0) sink_close(s->out, PC_PROTOCOL_VIOLATION, "malformed frame");
            continue;
        }
        unsigned mi = find_method(cmd);
        if (!s->connected && mi != 0) {
            reply_error(s, cmd->has_id, cmd->id, mi, PE_UNAUTHORIZED, "connect first");
            sink_close(s->out, PC_PROTOCOL_VIOLATION, "connect first");
            return;
        }
        if (mi == M_UNKNOWN) {
            reply_error(s, cmd->has_id, cmd->id, mi, PE_UNKNOWN_METHOD, NULL);
            continue;
        }
        int64_t wait = s->connected && mi != 0 ? command_wait(s) : 0;
        if (wait) {
            reply_retry(s, cmd->has_id, cmd->id, mi, wait);
            continue;
        }
        methods[mi].fn(s, cmd, b, mi);
    }
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

/* ======================================================================
 * Server-Sent Events
 * ====================================================================== */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* URL-decodes src[0..n) into out (cap bytes); returns the length or -1. */
static long url_decode(const char *src, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)src[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1;
            int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            ch = hi * 16 + lo;
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (o + 1 >= cap) return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return (long)o;
}

/* Reads the stream's token and channels from the query and starts it: 0,
 * or an HTTP status with *why set (nothing sent). */
static int sse_start(session *s, const char *url, size_t len, const char *last_event_id,
                     const char **why)
{
    const char *q = memchr(url, '?', len);
    char token[8192] = "";
    char chans[16][MAX_CHANNEL + 1];
    int nch = 0;
    *why = "bad request";
    if (!q) return 400;
    for (const char *p = q + 1, *end = url + len; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq) {
            size_t kl = (size_t)(eq - p);
            if (kl == 5 && !memcmp(p, "token", 5)) {
                if (url_decode(eq + 1, (size_t)(e - eq - 1), token, sizeof(token)) < 0) return 400;
            } else if (kl == 7 && !memcmp(p, "channel", 7)) {
                if (nch == 16) return 400;
                long n = url_decode(eq + 1, (size_t)(e - eq - 1), chans[nch], sizeof(chans[nch]));
                if (n < 0 || proto_channel_valid(chans[nch], (size_t)n)) return 400;
                nch++;
            }
        }
        p = e + 1;
    }
    if (!nch) return 400;
    struct jwt j;
    const tenant *tk = NULL;
    int code = verify_token(s, token, strlen(token), &j, &tk);
    if (code) {
        jwt_release(&j);
        *why = proto_error_message(code);
        return proto_error_http_status(code);
    }
    int rc = session_login(s, &j, tk);
    jwt_release(&j);
    if (rc) return 503;
    s->sse = 1;
    for (int i = 0; i < nch; i++) {
        const cfg_namespace *ns;
        rc = may_read(s, chans[i], &ns, NULL, 0);
        if (rc) {
            *why = proto_error_message(rc);
            return proto_error_http_status(rc);
        }
    }
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\nConnection: keep-alive\r\n"
                               "X-Accel-Buffering: no\r\n\r\nretry: 2000\n\n";
    rbuf *r = rbuf_from(head, sizeof(head) - 1);
    if (r) sink_enqueue(s->out, OUT_RAW, r, r->len);
    s->next_ping_ms = s->h->now_ms + s->h->srv->cfg->ping_interval_ms;
    /* Last-Event-ID is "channel@offset": resume that channel from there. */
    const char *at = last_event_id ? strrchr(last_event_id, '@') : NULL;
    for (int i = 0; i < nch; i++) {
        pending pd = {.method = 1};
        int has_since = at && (size_t)(at - last_event_id) == strlen(chans[i]) &&
                        !memcmp(last_event_id, chans[i], strlen(chans[i]));
        uint64_t off = has_since ? strtoull(at + 1, NULL, 10) : 0;
        const cfg_namespace *ns = config_namespace(s->h->srv->cfg, chans[i], strlen(chans[i]));
        start_subscribe(s, chans[i], ns, has_since, off, "*", DEFAULT_RECOVER_LIMIT, &pd);
    }
    return 0;
}

session *session_sse_open(proto_host *h, pl_sink *out, const char *url, size_t len,
                          const char *last_event_id, int *status, const char **why)
{
    session *s = session_new(h, out);
    if (!s) {
        *status = 503;
        *why = proto_error_message(PE_INTERNAL);
        return NULL;
    }
    *status = sse_start(s, url, len, last_event_id, why);
    if (!*status) return s;
    session_free(s);
    return NULL;
}

/* ======================================================================
 * Server API actions on live connections
 * ====================================================================== */

void session_server_subscribe(session *s, const char *ch)
{
    if (!s->connected || s->sse || s->out->closed || s->out->closing) return;
    const cfg_namespace *ns = config_namespace(s->h->srv->cfg, ch, strlen(ch));
    pending pd = {.server_side = 1};
    if (ns && !find_sub(s, ch))
        start_subscribe(s, ch, ns, 0, 0, NULL, DEFAULT_RECOVER_LIMIT, &pd);
}

void session_server_unsubscribe(session *s, const char *ch)
{
    if (!s->connected || s->out->closed) return;
    sub *sb = find_sub(s, ch);
    if (!sb) return;
    drop_sub(s, sb);
    sbuf o;
    sbuf_init(&o);
    sbuf_puts(&o, "{\"push\":\"unsubscribe\",\"channel\":");
    sbuf_json_str(&o, ch, strlen(ch));
    sbuf_puts(&o, ",\"code\":2000,\"reason\":\"unsubscribed by the server\"}");
    send_sbuf(s, &o);
    sbuf_release(&o);
}

void session_disconnect(session *s, uint16_t code, const char *reason)
{
    sink_close(s->out, code, reason);
}
