/* Subscriptions: the state machine from subscribe to live (recovery from a
 * position, catch-up pages as the connection drains, gaps, pending
 * guaranteed pubs), presence entry and exit, unsubscribe, and the server
 * API's subscriptions on a user's behalf. See broker/fanout.h for the
 * states. */
#include <stdio.h>
#include <string.h>

#include "delivery/delivery.h"
#include "proto/session_int.h"
#include "util/mem.h"

static void pending_answered(proto_host *h, pending *pd, engine_req *r);
static void subscribe_answered(proto_host *h, pending *pd, engine_req *r);
static void page_answered(proto_host *h, pending *pd, engine_req *r);

static void join_leave(session *s, sub *sb, const char *kind)
{
    if (sess_shed_signal(s)) return;
    sbuf o;
    sbuf_init(&o);
    sbuf_printf(&o, "{\"push\":\"%s\",\"channel\":", kind);
    sbuf_json_str(&o, sb->channel, strlen(sb->channel));
    sbuf_puts(&o, ",\"info\":{\"user\":");
    sbuf_json_str(&o, s->user, strlen(s->user));
    sbuf_printf(&o, ",\"client\":\"%s\"}}", s->client);
    sess_signal(s, sb->channel, &o, 1, 0);
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
    sess_lifecycle(s, LC_JOIN, sb->channel, 0);
    if (sb->ns->join_leave) join_leave(s, sb, "join");
}

static void presence_leave(session *s, sub *sb)
{
    if (!sb->in_presence) return;
    sb->in_presence = 0;
    if (presence_remove(s->h->srv->presence, s->tenant, sb->channel, s->client) != 1) return;
    sess_lifecycle(s, LC_LEAVE, sb->channel, 0);
    if (sb->ns->join_leave) join_leave(s, sb, "leave");
}

int session_subscribed(void *owner, const char *channel)
{
    session *s = owner;
    if (!s->connected) return 0;
    sub *sb = sess_find_sub(s, channel);
    return sb && sb->f.state == SUB_LIVE;
}

void sess_drop_sub(session *s, sub *sb)
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

/* The namespace's slow_consumer as fan-out knows it (config sits below the
 * broker and names its own enum). */
static uint8_t slow_policy(const cfg_namespace *ns)
{
    switch (ns ? ns->slow_consumer : CFG_SLOW_DISCONNECT) {
    case CFG_SLOW_DROP_OLDEST:
        return FAN_SLOW_DROP_OLDEST;
    case CFG_SLOW_LATEST:
        return FAN_SLOW_LATEST;
    default:
        return FAN_SLOW_DISCONNECT;
    }
}

/* Registers a subscription and asks the engine for its starting point.
 * Returns 0, or an error code (nothing registered). */
proto_error sess_subscribe(session *s, const char *ch, const cfg_namespace *ns, int has_since,
                           uint64_t since_off, const char *since_epoch, uint32_t limit, pending *pd)
{
    proto_host *h = s->h;
    if (sess_find_sub(s, ch)) return PE_ALREADY_SUBSCRIBED;
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
    sb->f.policy = slow_policy(ns);
    sb->ns = ns;
    sb->f.client = s->client;
    sb->f.user = s->user;
    sb->channel = pl_strdup(ch);
    r->tenant = pl_strdup(s->tenant);
    r->channel = pl_strdup(ch);
    if (!sb->channel || !r->tenant || !r->channel || fanout_attach(h->fan, &sb->f, s->tenant, ch))
        goto oom;
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
    sess_submit(s, r);
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
    /* A closing connection takes no more pubs: a page would be dropped and
     * asked for again at once, until the connection is gone. */
    if (!s) return;
    sess_flow(s);
    if (s->out->closing) return;
    size_t low = s->h->srv->cfg->limits.outbound_queue_bytes / 2;
    for (uint32_t i = 0; i < s->nsubs && s->out->queued < low; i++) {
        sub *sb = s->subs[i];
        if (sb->f.state == SUB_CATCHUP && !sb->read_inflight) request_page(s, sb);
    }
}

rbuf *proto_gap_frame(const char *ch, const char *epoch, uint64_t from, uint64_t to)
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
    return r;
}

static void send_gap(session *s, const char *ch, const char *epoch, uint64_t from, uint64_t to)
{
    rbuf *r = proto_gap_frame(ch, epoch, from, to);
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
void sess_finish_connect(session *s)
{
    sbuf_puts(&s->connect_reply, "}}}");
    metrics_command(s->h->metrics, 0, 0);
    if (s->connect_has_id) sess_send(s, &s->connect_reply);
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
            proto_put_pub(o, r->pubs[i]);
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
    size_t budget = sess_reply_budget(s), bytes = 0, keep = 0;
    for (size_t k = 0; k < r->npubs; k++) {
        size_t i = recovered ? k : r->npubs - 1 - k;
        const rbuf *f = proto_pub_frame(r->pubs[i]);
        bytes += f ? f->len : 0;
        if (bytes > budget && (keep || s->out->replies)) break;
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

/* A subscription of a connect's subs that failed: its entry in the reply. */
static void connect_sub_error(session *s, const char *ch, int code, const char *detail)
{
    sbuf_puts(&s->connect_reply, s->connect_first_sub ? "" : ",");
    s->connect_first_sub = 0;
    sbuf_json_str(&s->connect_reply, ch, strlen(ch));
    sbuf_puts(&s->connect_reply, ":{\"error\":");
    proto_error_json(&s->connect_reply, code, detail);
    sbuf_putc(&s->connect_reply, '}');
}

/* The gap of a resume that could not recover. Same stream, position
 * retained no longer: the gap is what was trimmed. Another epoch or a
 * position past the head: everything the client holds up to its position
 * belongs to no stream we can vouch for, so the gap is 1..since. */
static void send_lost(session *s, sub *sb, const pending *pd, const engine_req *r, int recovered)
{
    if (!pd->has_since || recovered) return;
    int same = !strcmp(r->since_epoch, "*") || !strcmp(r->since_epoch, r->epoch);
    uint64_t from = 1, to = pd->since_offset;
    if (same && pd->since_offset <= r->head) {
        from = pd->since_offset + 1;
        to = r->npubs ? r->pubs[0]->offset - 1 : r->head;
    }
    if (to >= from) send_gap(s, sb->channel, r->epoch, from, to);
}

static void subscribe_done(session *s, sub *sb, pending *pd, engine_req *r)
{
    unsigned mi = 1;
    if (r->status != PL_OK) {
        int code = proto_engine_error(r->status);
        if (pd->in_connect) {
            connect_sub_error(s, sb->channel, code, NULL);
        } else {
            sess_error(s, pd->has_id, pd->cmd_id, mi, code, NULL);
        }
        sess_drop_sub(s, sb);
        return;
    }
    snprintf(sb->epoch, sizeof(sb->epoch), "%s", r->epoch);
    sess_lifecycle(s, LC_SUBSCRIBE, sb->channel, 0);
    int recovered = pd->has_since && r->recovered;
    fit_result(s, r, recovered);
    tune_page(s, sb, r);
    uint64_t last =
        r->npubs ? r->pubs[r->npubs - 1]->offset : (recovered ? pd->since_offset : r->head);
    if (s->sse) {
        /* The gap first: a stream's event ids pass a channel's position on
         * only with its pubs, which must not reach the client before it. */
        sess_sse_started(s, sb->channel, r, pd);
        send_lost(s, sb, pd, r, recovered);
        sb->f.last_offset = 0;
        enqueue_pubs(s, sb, r);
        sb->f.last_offset = last;
    } else {
        sbuf *o = pd->in_connect ? &s->connect_reply : sess_reply_begin(s, pd->cmd_id);
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
            sess_push(s, o);
        } else if (!pd->in_connect) {
            sess_reply_end(s, pd->has_id, mi);
        }
        sb->f.last_offset = last;
    }
    if (!s->sse) send_lost(s, sb, pd, r, recovered);
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

/* The user's unacknowledged guaranteed pubs, kept for the subscribe READ
 * that answers next. */
static void pending_answered(proto_host *h, pending *pd, engine_req *r)
{
    session *s = sess_for(h, pd);
    sub *sb = s ? sess_find_sub(s, r->channel) : NULL;
    if (sb && sb->gen == pd->gen && r->status == PL_OK && !sb->pending) {
        sb->pending = r;
        pd->kept = 1;
    }
}

/* A subscribe READ or a catch-up page, for the subscription incarnation
 * that asked (an unsubscribe or resubscribe meanwhile makes it stale). */
static void read_answered(proto_host *h, pending *pd, engine_req *r, int page)
{
    session *s = sess_for(h, pd);
    if (!s) return;
    sub *sb = sess_find_sub(s, r->channel);
    if (!sb || sb->gen != pd->gen) {
        if (page) return;
        if (!pd->in_connect) {
            sess_error(s, pd->has_id, pd->cmd_id, 1, PE_BAD_REQUEST, "unsubscribed meanwhile");
            return;
        }
        /* The connect waits for this answer too, stale or not. */
        connect_sub_error(s, r->channel, PE_BAD_REQUEST, "unsubscribed meanwhile");
        if (--s->connect_pending == 0) sess_finish_connect(s);
        return;
    }
    sb->read_inflight = 0;
    if (page)
        page_done(s, sb, r);
    else
        subscribe_done(s, sb, pd, r);
    if (pd->in_connect && --s->connect_pending == 0) sess_finish_connect(s);
}

static void subscribe_answered(proto_host *h, pending *pd, engine_req *r)
{
    read_answered(h, pd, r, 0);
}

static void page_answered(proto_host *h, pending *pd, engine_req *r)
{
    read_answered(h, pd, r, 1);
}

void sess_m_subscribe(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1], epoch[PUB_EPOCH_LEN + 1] = "";
    const char *why = NULL;
    int code = sess_param_channel(b, cmd->params, ch, &why);
    const char *tok = NULL;
    size_t tlen = 0;
    uint64_t since_off = 0, limit = DEFAULT_RECOVER_LIMIT;
    int has_since = 0;
    const cfg_namespace *ns;
    if (!code && proto_param_str(b, cmd->params, "token", &tok, &tlen) == PROTO_PARAM_TYPE) {
        code = PE_BAD_REQUEST;
        why = "token: expected a string";
    }
    if (!code) code = sess_read_since(b, cmd->params, &has_since, &since_off, epoch, &why);
    if (!code) code = sess_read_limit(b, cmd->params, &limit, &why);
    if (!code) code = sess_may_read(s, ch, &ns, tok, tlen, &why);
    if (!code) {
        pending pd = {.cmd_id = cmd->id, .has_id = (uint8_t)cmd->has_id, .method = (uint8_t)mi};
        code = sess_subscribe(s, ch, ns, has_since, since_off, epoch, (uint32_t)limit, &pd);
    }
    if (code) sess_error(s, cmd->has_id, cmd->id, mi, code, why);
}

void sess_m_unsubscribe(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi)
{
    char ch[MAX_CHANNEL + 1];
    int code = sess_param_channel(b, cmd->params, ch, NULL);
    if (code) {
        sess_error(s, cmd->has_id, cmd->id, mi, code, NULL);
        return;
    }
    sub *sb = sess_find_sub(s, ch);
    if (sb) {
        sess_lifecycle(s, LC_UNSUBSCRIBE, ch, 0);
        sess_drop_sub(s, sb);
    }
    sess_reply_empty(s, cmd, mi);
}

void session_server_subscribe(session *s, const char *ch)
{
    if (!s->connected || s->sse || s->out->closed || s->out->closing) return;
    const cfg_namespace *ns = config_namespace(s->h->srv->cfg, ch, strlen(ch));
    pending pd = {.server_side = 1};
    if (ns && !sess_find_sub(s, ch))
        sess_subscribe(s, ch, ns, 0, 0, NULL, DEFAULT_RECOVER_LIMIT, &pd);
}

void session_server_unsubscribe(session *s, const char *ch)
{
    if (!s->connected || s->out->closed) return;
    sub *sb = sess_find_sub(s, ch);
    if (!sb) return;
    sess_lifecycle(s, LC_UNSUBSCRIBE, ch, 0);
    sess_drop_sub(s, sb);
    sbuf o;
    sbuf_init(&o);
    sbuf_puts(&o, "{\"push\":\"unsubscribe\",\"channel\":");
    sbuf_json_str(&o, ch, strlen(ch));
    sbuf_puts(&o, ",\"code\":2000,\"reason\":\"unsubscribed by the server\"}");
    sess_push(s, &o);
    sbuf_release(&o);
}
