/* The load generator's engine: one libuv loop, many WebSocket clients, and
 * a phase machine that every scenario shares:
 *
 *   CONNECT --all ready--> PUBLISH --time/count reached--> DRAIN --> DONE
 *      \--(idle)--> HOLD --hold elapsed----------------------------^
 *
 * idle --verify adds one publisher: on entering HOLD it writes one publish
 * per subscriber's channel at once (bench_verify.c keeps the books), and
 * the hold lasts until every answer and delivery is in (at most --drain
 * past --hold). Closes by the server are then counted, not fatal, so the
 * figures show how far the burst got.
 *
 * Subscribers track what they receive per channel with bench_seq (by
 * offset for stored classes, by the payload's sequence number for
 * ephemeral pubs and NATS), publishers keep a bounded window of commands in
 * flight. Any unexpected close or server error fails the run. */
#include "cli/bench_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "cli/bench_cmd.h"
#include "cli/bench_conn.h"
#include "cli/bench_nats.h"
#include "cli/bench_scan.h"
#include "cli/bench_verify.h"
#include "util/errors.h"
#include "util/mem.h"
#include "util/sbuf.h"

#define BENCH_TICK_MS 1
#define NATS_MARKS 4096
#define CHAN_NAME_MAX 128

enum phase { PH_CONNECT, PH_HOLD, PH_PUBLISH, PH_DRAIN, PH_DONE };
enum role { ROLE_SUB, ROLE_PUB };

typedef struct run run;

/* A publish command awaiting its reply, found by id & mask. */
typedef struct slot {
    uint64_t id; /* 0 = free */
    uint64_t t;  /* send time, ns */
    uint32_t chan;
} slot;

typedef struct mark { /* NATS: a PING sent after `sent` publishes */
    uint64_t sent;
    uint64_t t;
} mark;

typedef struct bench_chan {
    char name[CHAN_NAME_MAX];
    uint64_t next_s;     /* last payload sequence number assigned */
    uint64_t max_offset; /* highest acked offset */
    bench_seq acks;      /* acked offsets: each must be new */
} bench_chan;

typedef struct client {
    run *r;
    bench_conn *conn;
    uint32_t index;
    enum role role;
    uint32_t chan;
    char *token;
    bool ready, dropping, resubscribe, queued;
    uint64_t next_id, connect_id, sub_id;
    /* subscriber */
    bench_seq seq;
    bool seq_ready;
    char epoch[BENCH_EPOCH_MAX];
    bool waiting_catchup;
    int push_code; /* code of the disconnect push received, 0 if none */
    /* publisher */
    slot *slots;
    uint64_t slot_mask;
    uint64_t inflight, sent;
    uint64_t hold_until; /* after a 114: no publish before this (uv_hrtime) */
    /* NATS */
    bench_nats nats;
    mark *marks;
    uint64_t mark_head, mark_tail; /* ring of pings in flight */
    uint64_t confirmed;            /* publishes known processed */
} client;

struct run {
    const bench_opts *o;
    bench_result *res;
    uv_loop_t loop;
    bench_net *net;
    uv_timer_t tick, progress, deadline;
    bench_scanner *sc;
    client *clients;
    uint32_t nclients, nsubs;
    bench_chan *chans;
    uint32_t nchans;
    uint32_t *queue; /* clients waiting to be opened */
    uint32_t qhead, qtail, qcap;
    uint32_t connecting, ready;
    uint32_t rr;  /* next channel, round robin */
    uint32_t prr; /* next publisher, round robin */
    enum phase phase;
    bool by_offset;
    uint64_t t_start, t_ready, t_pub_start, t_pub_stop, t_last_ack, t_last_deliv, t_hold_end;
    uint64_t t_drop, t_caught, t_sweep;
    bool dropped;
    uint32_t waiting;
    uint64_t pubs_sent, pubs_acked, deliveries;
    uint64_t now; /* arrival time of the message being handled */
    uint64_t prog_pubs, prog_deliv, prog_t;
    double cpu_start, batch_sum0, batch_count0;
    bool have_batch0;
    bench_verify v; /* idle --verify */
    bool hold_rss_read;
    bool pub_deaf; /* the publisher is not reading yet (--verify-read-after) */
    sbuf msg;      /* the command being built */
    sbuf data;     /* the payload being built */
    char *pad;
    const char *failure;
};

static const char *scen_name[] = {"fanout", "channels", "publish", "idle", "storm", "chat"};

static void finish(run *r, const char *failure);
static void pump(run *r);
static void top_up(client *c);
static void verify_burst(run *r);

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

/* ------------------------------------------------------------- bookkeeping */

static void fail_run(run *r, const char *why)
{
    if (!r->failure) r->failure = why;
    finish(r, why);
}

static void enqueue(run *r, uint32_t idx)
{
    client *c = &r->clients[idx];
    if (c->queued) return;
    c->queued = true;
    r->queue[r->qtail++ % r->qcap] = idx;
}

static uint64_t sub_last(const run *r, const client *c)
{
    const bench_chan *ch = &r->chans[c->chan];
    return r->by_offset ? ch->max_offset : ch->next_s;
}

static bool sub_complete(const run *r, const client *c)
{
    return c->seq_ready && c->seq.next - 1 >= sub_last(r, c);
}

static void check_caught(run *r, client *c, uint64_t now)
{
    /* A subscriber being dropped is still "ready" until its close lands. */
    if (!c->waiting_catchup || !c->ready || c->dropping || !c->seq_ready) return;
    if (c->seq.next - 1 < r->chans[c->chan].max_offset) return;
    c->waiting_catchup = false;
    if (--r->waiting == 0) r->t_caught = now;
}

static void deliver(client *c, const bench_pub *p, uint64_t now, bool live)
{
    run *r = c->r;
    if (!c->seq_ready) {
        r->res->proto_errors++;
        return;
    }
    bench_seq_add(&c->seq, r->by_offset ? p->offset : p->s);
    r->deliveries++;
    r->t_last_deliv = now;
    if (live && p->t && now >= p->t) bench_hist_record(&r->res->latency, now - p->t);
    if (c->waiting_catchup) check_caught(r, c, now);
}

static void fetch_batch0(run *r)
{
    double s, n;
    if (bench_fetch_batch(r->o->host, r->o->port, &s, &n) == 0) {
        r->batch_sum0 = s;
        r->batch_count0 = n;
        r->have_batch0 = true;
    }
}

static void client_ready(client *c)
{
    run *r = c->r;
    if (c->ready) return;
    c->ready = true;
    r->ready++;
    r->connecting--;
    pump(r);
    if (c->waiting_catchup) check_caught(r, c, uv_hrtime());
    if (r->phase == PH_CONNECT && r->ready == r->nclients) {
        r->t_ready = uv_hrtime();
        if (r->o->scenario == SCEN_IDLE) {
            r->res->rss_hold_kib = bench_proc_rss_kib(r->o->server_pid);
            r->phase = PH_HOLD;
            r->t_hold_end = r->t_ready + (uint64_t)(r->o->hold_s * 1e9);
            if (r->o->verify) {
                fetch_batch0(r);
                verify_burst(r);
            }
            return;
        }
        if (r->o->proto == PROTO_PARLEY) fetch_batch0(r);
        r->phase = PH_PUBLISH;
        r->t_pub_start = uv_hrtime();
        if (r->o->rate <= 0)
            for (uint32_t i = r->nsubs; i < r->nclients; i++)
                top_up(&r->clients[i]);
    }
}

/* ---------------------------------------------------------------- commands */

static void send_msg(client *c, bool binary)
{
    run *r = c->r;
    if (r->msg.oom || r->data.oom) {
        fail_run(r, "out of memory");
        return;
    }
    if (bench_conn_send(c->conn, binary, r->msg.data, r->msg.len) < 0)
        fail_run(r, "send on a closed connection");
}

static void parley_connect(client *c)
{
    run *r = c->r;
    c->connect_id = ++c->next_id;
    sbuf_reset(&r->msg);
    bench_put_connect(&r->msg, c->connect_id, c->token);
    send_msg(c, false);
}

static void parley_subscribe(client *c)
{
    run *r = c->r;
    c->sub_id = ++c->next_id;
    sbuf_reset(&r->msg);
    bench_put_subscribe(&r->msg, c->sub_id, r->chans[c->chan].name,
                        c->resubscribe && c->seq_ready && r->by_offset, c->seq.next - 1, c->epoch);
    send_msg(c, false);
}

static uint32_t pick_chan(run *r, client *c)
{
    if (r->o->scenario == SCEN_CHANNELS || (r->o->scenario == SCEN_STORM && r->nchans > 1))
        return r->rr++ % r->nchans;
    return c->chan;
}

static void put_data(run *r, uint64_t t, uint64_t s)
{
    bench_put_data(&r->data, r->o->payload, r->pad, t, s);
}

static void put_publish(run *r, uint64_t id, const bench_chan *ch)
{
    bench_put_publish(&r->msg, id, ch->name, r->o->ephemeral, &r->data);
}

/* The whole burst is queued before returning: the connection writes it as
 * fast as the socket takes it, with no window, the way a backend publishing
 * in bulk behaves. Its replies are read as they arrive, or, with
 * --verify-read-after, not before a client busy writing would read them. */
static void verify_burst(run *r)
{
    client *p = &r->clients[r->nsubs];
    uint64_t now = uv_hrtime();
    r->t_pub_start = now;
    bench_verify_start(&r->v, p->next_id + 1, now);
    for (uint32_t i = 0; i < r->nsubs && r->phase != PH_DONE; i++) {
        bench_chan *ch = &r->chans[r->clients[i].chan];
        ch->next_s = 1;
        put_data(r, now, 1);
        sbuf_reset(&r->msg);
        put_publish(r, ++p->next_id, ch);
        send_msg(p, false);
        p->sent++;
        r->pubs_sent++;
    }
    if (p->conn && r->o->verify_read_after_s > 0) {
        bench_conn_reading(p->conn, false);
        r->pub_deaf = true;
    }
}

static void verify_ack(client *c, const bench_line *l, uint64_t now)
{
    run *r = c->r;
    int64_t ci = bench_verify_chan(&r->v, l->id);
    uint64_t off = l->has_offset ? l->offset : 0;
    if (ci < 0 || !bench_verify_ack(&r->v, l->id, off, now)) {
        r->res->proto_errors++;
        return;
    }
    bench_chan *ch = &r->chans[ci];
    if (r->by_offset && !l->has_offset) r->res->proto_errors++;
    if (off > ch->max_offset) ch->max_offset = off;
    bench_hist_record(&r->res->ack, now - r->v.t_burst);
    r->pubs_acked++;
    r->t_last_ack = now;
}

static bool can_send(const client *c)
{
    const run *r = c->r;
    if (!c->ready || c->inflight >= r->o->inflight || r->phase != PH_PUBLISH) return false;
    if (c->hold_until && uv_hrtime() < c->hold_until) return false;
    if (r->o->count && r->pubs_sent >= r->o->count) return false;
    if (r->o->proto == PROTO_PARLEY) return c->slots[(c->next_id + 1) & c->slot_mask].id == 0;
    return c->mark_tail - c->mark_head < NATS_MARKS - 1;
}

static void nats_ping(client *c, uint64_t now)
{
    c->marks[c->mark_tail++ % NATS_MARKS] = (mark){.sent = c->sent, .t = now};
    if (bench_conn_send(c->conn, true, "PING\r\n", 6) < 0)
        fail_run(c->r, "send on a closed connection");
}

static void publish_one(client *c)
{
    run *r = c->r;
    uint32_t ci = pick_chan(r, c);
    bench_chan *ch = &r->chans[ci];
    uint64_t s = ++ch->next_s;
    uint64_t now = uv_hrtime();
    put_data(r, now, s);
    sbuf_reset(&r->msg);
    if (r->o->proto == PROTO_PARLEY) {
        uint64_t id = ++c->next_id;
        put_publish(r, id, ch);
        c->slots[id & c->slot_mask] = (slot){.id = id, .t = now, .chan = ci};
        send_msg(c, false);
    } else {
        sbuf_printf(&r->msg, "PUB %s %zu\r\n", ch->name, r->data.len);
        sbuf_append(&r->msg, r->data.data, r->data.len);
        sbuf_puts(&r->msg, "\r\n");
        send_msg(c, true);
    }
    c->inflight++;
    c->sent++;
    r->pubs_sent++;
    if (r->o->proto == PROTO_NATS) {
        uint64_t every = r->o->inflight / 4 ? r->o->inflight / 4 : 1;
        if (c->sent % every == 0) nats_ping(c, now);
    }
}

static void top_up(client *c)
{
    if (c->r->o->rate > 0) return;
    while (can_send(c))
        publish_one(c);
}

/* ------------------------------------------------------------- Parley side */

static void on_subscribed(client *c, const bench_line *l, uint64_t now)
{
    run *r = c->r;
    if (!c->seq_ready) {
        if (r->by_offset && !l->has_offset) {
            fail_run(r, "subscribe result without offset");
            return;
        }
        bench_seq_init(&c->seq, r->by_offset ? l->offset : 0);
        c->seq_ready = true;
        snprintf(c->epoch, sizeof(c->epoch), "%s", l->epoch);
    } else if (r->by_offset) {
        if (!l->recovered || strcmp(l->epoch, c->epoch) != 0) r->res->gaps++;
        r->res->recovered += l->npubs;
    }
    for (size_t i = 0; i < l->npubs; i++)
        deliver(c, &l->pubs[i], now, false);
    client_ready(c);
}

static void on_ack(client *c, const bench_line *l, uint64_t now)
{
    run *r = c->r;
    slot *s = &c->slots[l->id & c->slot_mask];
    if (s->id != l->id) {
        r->res->proto_errors++;
        return;
    }
    s->id = 0;
    c->inflight--;
    bench_hist_record(&r->res->ack, now - s->t);
    if (r->by_offset) {
        bench_chan *ch = &r->chans[s->chan];
        uint64_t before = ch->acks.dups + ch->acks.invalid;
        if (!l->has_offset || l->offset == 0)
            r->res->proto_errors++;
        else
            bench_seq_add(&ch->acks, l->offset);
        if (ch->acks.dups + ch->acks.invalid != before) r->res->proto_errors++;
        if (l->offset > ch->max_offset) ch->max_offset = l->offset;
    }
    r->pubs_acked++;
    r->t_last_ack = now;
    top_up(c);
}

/* A publish shed under overload (114) is what a well-behaved client meets
 * and handles: it waits and goes on. The pause is the server's shortest
 * retry hint; sheds are reported, and ephemeral ones count as lost. */
#define SHED_PAUSE_NS 500000000ull

static int on_shed(client *c, const bench_line *l)
{
    if (l->code != PE_OVERLOADED || c->role != ROLE_PUB || !c->slots) return 0;
    slot *s = &c->slots[l->id & c->slot_mask];
    if (!l->id || s->id != l->id) return 0;
    s->id = 0;
    c->inflight--;
    c->r->res->shed++;
    c->hold_until = uv_hrtime() + SHED_PAUSE_NS;
    return 1;
}

static void on_error_reply(client *c, const bench_line *l)
{
    run *r = c->r;
    if (c->role == ROLE_PUB && bench_verify_refuse(&r->v, l->id, l->code, r->now)) return;
    if (on_shed(c, l)) return;
    r->res->server_errors++;
    if (!r->failure)
        fprintf(stderr, "bench: connection %u: command %" PRIu64 " failed with error %d\n",
                c->index, l->id, l->code);
    if (l->id && l->id == c->connect_id)
        fail_run(r, "connect rejected by the server");
    else if (l->id && l->id == c->sub_id)
        fail_run(r, "subscribe rejected by the server");
    else
        fail_run(r, "the server answered with an error");
}

static void parley_line(client *c, const bench_line *l, uint64_t now)
{
    run *r = c->r;
    switch (l->kind) {
    case BENCH_PUB:
        if (c->role != ROLE_SUB) break;
        deliver(c, &l->pub, now, true);
        if (r->v.sum.started) bench_verify_deliver(&r->v, c->chan, l->pub.offset, l->pub.s, now);
        break;
    case BENCH_RESULT:
        if (l->id == c->connect_id) {
            if (c->role == ROLE_SUB)
                parley_subscribe(c);
            else
                client_ready(c);
        } else if (l->id == c->sub_id) {
            on_subscribed(c, l, now);
        } else if (c->role == ROLE_PUB && r->v.sum.started) {
            verify_ack(c, l, now);
        } else if (c->slots) {
            on_ack(c, l, now);
        } else {
            r->res->proto_errors++;
        }
        break;
    case BENCH_ERROR:
        on_error_reply(c, l);
        break;
    case BENCH_PING:
        sbuf_reset(&r->msg);
        sbuf_puts(&r->msg, "{\"method\":\"pong\"}");
        send_msg(c, false);
        break;
    case BENCH_GAP:
        r->res->gaps++;
        break;
    case BENCH_DISCONNECT:
        c->push_code = l->code;
        break;
    case BENCH_PUSH_OTHER:
        break;
    case BENCH_BAD:
        r->res->proto_errors++;
        break;
    }
}

static void parley_message(client *c, const char *data, size_t len)
{
    uint64_t now = c->r->now;
    const char *end = data + len;
    while (data < end && c->r->phase != PH_DONE) {
        const char *nl = memchr(data, '\n', (size_t)(end - data));
        const char *stop = nl ? nl : end;
        if (stop > data) {
            bench_line l;
            bench_scan(c->r->sc, data, (size_t)(stop - data), &l);
            parley_line(c, &l, now);
        }
        data = nl ? nl + 1 : end;
    }
}

/* --------------------------------------------------------------- NATS side */

static void nats_on_msg(void *ud, uint64_t sid, const char *payload, size_t len)
{
    client *c = ud;
    bench_pub p;
    if (c->role != ROLE_SUB || sid != 1 || bench_scan_data(c->r->sc, payload, len, &p) < 0) {
        c->r->res->proto_errors++;
        return;
    }
    deliver(c, &p, c->r->now, true);
}

static void nats_on_ping(void *ud)
{
    client *c = ud;
    if (bench_conn_send(c->conn, true, "PONG\r\n", 6) < 0)
        fail_run(c->r, "send on a closed connection");
}

static void nats_on_pong(void *ud)
{
    client *c = ud;
    run *r = c->r;
    if (!c->ready) {
        if (c->role == ROLE_SUB) {
            bench_seq_init(&c->seq, 0);
            c->seq_ready = true;
        }
        client_ready(c);
        return;
    }
    if (c->mark_head == c->mark_tail) {
        r->res->proto_errors++;
        return;
    }
    mark m = c->marks[c->mark_head++ % NATS_MARKS];
    uint64_t now = uv_hrtime();
    uint64_t newly = m.sent - c->confirmed;
    c->confirmed = m.sent;
    c->inflight -= newly;
    r->pubs_acked += newly;
    r->t_last_ack = now;
    bench_hist_record(&r->res->ack, now - m.t);
    top_up(c);
}

static void nats_on_info(void *ud, const char *json, size_t len)
{
    client *c = ud;
    run *r = c->r;
    if (c->ready) return;
    sbuf_reset(&r->msg);
    sbuf_puts(&r->msg, "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"parley-bench\"}"
                       "\r\n");
    if (c->role == ROLE_SUB) sbuf_printf(&r->msg, "SUB %s 1\r\n", r->chans[c->chan].name);
    sbuf_puts(&r->msg, "PING\r\n");
    send_msg(c, true);
}

static void nats_on_err(void *ud, const char *msg, size_t len)
{
    client *c = ud;
    c->r->res->server_errors++;
    fprintf(stderr, "bench: nats-server error:%.*s\n", (int)(len > 200 ? 200 : len), msg);
    fail_run(c->r, "nats-server sent -ERR");
}

static const bench_nats_cb nats_cb = {
    .on_msg = nats_on_msg,
    .on_ping = nats_on_ping,
    .on_pong = nats_on_pong,
    .on_info = nats_on_info,
    .on_err = nats_on_err,
};

/* -------------------------------------------------------------- connection */

static void on_open(bench_conn *conn, void *ud)
{
    client *c = ud;
    if (c->r->o->proto == PROTO_PARLEY)
        parley_connect(c);
    else
        bench_nats_init(&c->nats);
}

static void on_message(bench_conn *conn, void *ud, int binary, const char *data, size_t len)
{
    client *c = ud;
    if (c->r->phase == PH_DONE) return;
    /* One clock read per message: every pub batched in it arrived together. */
    c->r->now = uv_hrtime();
    if (c->r->o->proto == PROTO_PARLEY) {
        parley_message(c, data, len);
        return;
    }
    if (bench_nats_feed(&c->nats, data, len, &nats_cb, c) != 0) {
        c->r->res->proto_errors++;
        fail_run(c->r, "malformed NATS protocol from the server");
    }
}

/* During the verification burst a close is a figure, not the end: the run
 * goes on so the deliveries of what the server did accept still count. */
static void verify_closed(client *c, const char *error, int ws_code)
{
    run *r = c->r;
    int code = c->push_code ? c->push_code : ws_code;
    bool first = r->v.sum.disconnects.n == 0;
    bench_verify_closed(&r->v, code, c->role == ROLE_PUB);
    if (first || c->role == ROLE_PUB)
        fprintf(stderr,
                "bench: %s %u closed by the server: %s (code %d) after %" PRIu64 " acks, %" PRIu64
                " deliveries\n",
                c->role == ROLE_PUB ? "publisher" : "subscriber", c->index,
                error ? error : "closed", code, r->pubs_acked, r->deliveries);
}

static void on_close(bench_conn *conn, void *ud, const char *error, int ws_code)
{
    client *c = ud;
    run *r = c->r;
    c->conn = NULL;
    if (c->r->o->proto == PROTO_NATS) bench_nats_release(&c->nats);
    if (c->ready) {
        c->ready = false;
        r->ready--;
    } else {
        r->connecting--;
    }
    if (r->phase == PH_DONE) return;
    if (c->dropping) {
        c->dropping = false;
        c->resubscribe = true;
        enqueue(r, c->index);
        pump(r);
        return;
    }
    if (r->v.sum.started) {
        verify_closed(c, error, ws_code);
        return;
    }
    r->res->conn_errors++;
    if (!r->failure) {
        static char why[160];
        snprintf(why, sizeof(why), "connection %u: %s (close code %d)", c->index,
                 error ? error : "closed", ws_code);
        fprintf(stderr, "bench: %s\n", why);
    }
    fail_run(r, "a connection failed");
}

static const bench_conn_cb conn_cb = {
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
};

static void open_client(run *r, client *c)
{
    bench_conn_opts co = bench_client_opts(r->o, c->index);
    if (c->role != ROLE_PUB && r->o->sub_host) {
        co.host = r->o->sub_host;
        co.port = r->o->sub_port;
    }
    c->ready = false;
    c->next_id = 0;
    c->connect_id = c->sub_id = 0;
    r->connecting++;
    c->conn = bench_conn_open(r->net, &co, &conn_cb, c);
    if (!c->conn) {
        r->connecting--;
        r->res->conn_errors++;
        fail_run(r, "cannot create a socket (file descriptor limit?)");
    }
}

static void pump(run *r)
{
    while (r->phase != PH_DONE && r->qhead != r->qtail &&
           r->connecting < r->o->connect_concurrency) {
        client *c = &r->clients[r->queue[r->qhead++ % r->qcap]];
        c->queued = false;
        open_client(r, c);
    }
}

/* ------------------------------------------------------------------ timers */

static void drop_subscribers(run *r, uint64_t now)
{
    r->dropped = true;
    r->t_drop = now;
    for (uint32_t i = 0; i < r->nsubs; i++) {
        client *c = &r->clients[i];
        if (!c->conn) continue;
        c->dropping = true;
        c->waiting_catchup = true;
        r->waiting++;
        bench_conn_close(c->conn);
    }
    if (r->waiting == 0) r->t_caught = now;
}

static bool drained(run *r)
{
    for (uint32_t i = r->nsubs; i < r->nclients; i++)
        if (r->clients[i].inflight) return false;
    for (uint32_t i = 0; i < r->nsubs; i++)
        if (!sub_complete(r, &r->clients[i])) return false;
    return r->waiting == 0;
}

static void stop_publishing(run *r, uint64_t now)
{
    r->phase = PH_DRAIN;
    r->t_pub_stop = now;
    if (r->o->proto != PROTO_NATS) return;
    /* Confirm the tail of the window that no PING covers yet. */
    for (uint32_t i = r->nsubs; i < r->nclients; i++) {
        client *c = &r->clients[i];
        uint64_t last = c->mark_tail > c->mark_head ? c->marks[(c->mark_tail - 1) % NATS_MARKS].sent
                                                    : c->confirmed;
        if (c->ready && last < c->sent) nats_ping(c, now);
    }
}

static void rate_send(run *r, uint64_t now)
{
    uint64_t due = (uint64_t)(r->o->rate * secs(now - r->t_pub_start));
    uint32_t npub = r->nclients - r->nsubs;
    uint32_t stuck = 0;
    while (r->pubs_sent < due && stuck < npub && r->phase == PH_PUBLISH) {
        client *c = &r->clients[r->nsubs + r->prr++ % npub];
        if (can_send(c)) {
            publish_one(c);
            stuck = 0;
        } else {
            stuck++;
        }
    }
}

/* Sweeps over every subscriber are a backstop (deliveries check as they
 * arrive), so they run every 10 ms, not every tick. */
static bool sweep_due(run *r, uint64_t now)
{
    if (now - r->t_sweep < 10 * 1000 * 1000) return false;
    r->t_sweep = now;
    return true;
}

static void on_tick(uv_timer_t *t)
{
    run *r = t->data;
    uint64_t now = uv_hrtime();
    const bench_opts *o = r->o;
    if (r->phase == PH_HOLD) {
        client *p = r->v.sum.started ? &r->clients[r->nsubs] : NULL;
        if (p && r->v.sum.burst_write_s < 0 && (!p->conn || bench_conn_pending(p->conn) == 0))
            r->v.sum.burst_write_s = secs(now - r->v.t_burst);
        if (p && r->pub_deaf && now - r->v.t_burst >= (uint64_t)(o->verify_read_after_s * 1e9)) {
            r->pub_deaf = false;
            if (p->conn) bench_conn_reading(p->conn, true);
        }
        if (now < r->t_hold_end) return;
        if (!r->hold_rss_read) {
            long rss = bench_proc_rss_kib(o->server_pid);
            if (rss > r->res->rss_hold_kib) r->res->rss_hold_kib = rss;
            r->hold_rss_read = true;
        }
        if (p && !bench_verify_settled(&r->v) && now - r->t_hold_end < (uint64_t)(o->drain_s * 1e9))
            return;
        finish(r, NULL);
        return;
    }
    if (r->phase == PH_PUBLISH) {
        if (o->rate > 0) rate_send(r, now);
        for (uint32_t i = r->nsubs; o->rate <= 0 && i < r->nclients; i++)
            if (r->clients[i].hold_until && now >= r->clients[i].hold_until) {
                r->clients[i].hold_until = 0;
                top_up(&r->clients[i]);
            }
        if (o->scenario == SCEN_STORM && !r->dropped &&
            now - r->t_pub_start >= (uint64_t)(o->drop_at_s * 1e9))
            drop_subscribers(r, now);
        if (r->waiting && sweep_due(r, now))
            for (uint32_t i = 0; i < r->nsubs; i++)
                check_caught(r, &r->clients[i], now);
        if (now - r->t_pub_start >= (uint64_t)(o->duration_s * 1e9) ||
            (o->count && r->pubs_sent >= o->count))
            stop_publishing(r, now);
        return;
    }
    if (r->phase == PH_DRAIN) {
        if (!sweep_due(r, now)) return;
        if (r->waiting)
            for (uint32_t i = 0; i < r->nsubs; i++)
                check_caught(r, &r->clients[i], now);
        if (drained(r) || now - r->t_pub_stop >= (uint64_t)(o->drain_s * 1e9)) finish(r, NULL);
    }
}

static void on_progress(uv_timer_t *t)
{
    run *r = t->data;
    uint64_t now = uv_hrtime();
    double dt = secs(now - r->prog_t);
    if (!r->o->quiet)
        fprintf(stderr,
                "bench %s [%5.1fs] ready %u/%u pubs %" PRIu64 " (%.0f/s) acked %" PRIu64
                " deliveries %" PRIu64 " (%.0f/s)%s\n",
                scen_name[r->o->scenario], secs(now - r->t_start), r->ready, r->nclients,
                r->pubs_sent, (double)(r->pubs_sent - r->prog_pubs) / dt, r->pubs_acked,
                r->deliveries, (double)(r->deliveries - r->prog_deliv) / dt,
                r->waiting ? " (storm: waiting for catch-up)" : "");
    r->prog_pubs = r->pubs_sent;
    r->prog_deliv = r->deliveries;
    r->prog_t = now;
}

static void on_deadline(uv_timer_t *t)
{
    run *r = t->data;
    fail_run(r, "run timed out");
}

/* ------------------------------------------------------------------ finish */

static void collect(run *r, uint64_t now)
{
    bench_result *res = r->res;
    res->connections = r->nclients;
    res->connect_s = r->t_ready ? secs(r->t_ready - r->t_start) : -1;
    res->pubs_sent = r->pubs_sent;
    res->pubs_acked = r->pubs_acked;
    res->deliveries = r->deliveries;
    if (r->t_pub_start) {
        uint64_t last = r->t_last_ack > r->t_pub_start ? r->t_last_ack : now;
        res->publish_s = secs(last - r->t_pub_start);
        uint64_t ld = r->t_last_deliv > r->t_pub_start ? r->t_last_deliv : now;
        res->deliver_s = secs(ld - r->t_pub_start);
    }
    for (uint32_t i = 0; i < r->nsubs; i++) {
        client *c = &r->clients[i];
        if (!c->seq_ready) continue;
        uint64_t last = sub_last(r, c);
        if (last > c->seq.base) res->expected += last - c->seq.base;
        res->lost += bench_seq_missing(&c->seq, last);
        res->dups += c->seq.dups;
        res->reorder += c->seq.reorder;
        res->proto_errors += c->seq.invalid;
    }
    if (r->o->scenario == SCEN_STORM)
        res->catchup_s = r->dropped && r->waiting == 0 ? secs(r->t_caught - r->t_drop) : -1;
    if (r->o->server_pid > 0 && r->cpu_start >= 0) {
        double cpu = bench_proc_cpu_s(r->o->server_pid);
        res->server_cpu_s = cpu >= 0 ? cpu - r->cpu_start : -1;
    }
    if (r->have_batch0) {
        double s, n;
        if (bench_fetch_batch(r->o->host, r->o->port, &s, &n) == 0 && n > r->batch_count0)
            res->commit_batch = (s - r->batch_sum0) / (n - r->batch_count0);
    }
    if (r->v.sum.on) {
        bench_verify_finish(&r->v);
        res->verify = r->v.sum;
    }
    res->elapsed_s = secs(now - r->t_start);
}

static void close_timer(uv_timer_t *t)
{
    if (!uv_is_closing((uv_handle_t *)t)) uv_close((uv_handle_t *)t, NULL);
}

static void finish(run *r, const char *failure)
{
    if (r->phase == PH_DONE) return;
    r->phase = PH_DONE;
    if (failure && !r->failure) r->failure = failure;
    collect(r, uv_hrtime());
    if (r->res->verify.on && !bench_verify_pass(&r->res->verify) && !r->failure)
        r->failure = "verification failed";
    close_timer(&r->tick);
    close_timer(&r->progress);
    close_timer(&r->deadline);
    for (uint32_t i = 0; i < r->nclients; i++)
        if (r->clients[i].conn) bench_conn_close(r->clients[i].conn);
}

/* ------------------------------------------------------------------- setup */

static int setup(run *r)
{
    const bench_opts *o = r->o;
    uint32_t nsubs = 0, npubs = 0, nchans = 1;
    switch (o->scenario) {
    case SCEN_FANOUT:
        nsubs = o->subs;
        npubs = 1;
        break;
    case SCEN_STORM:
        nsubs = o->subs;
        npubs = 1;
        nchans = o->channels < o->subs ? o->channels : o->subs;
        break;
    case SCEN_CHANNELS:
        nsubs = o->subs;
        npubs = 1;
        nchans = o->subs;
        break;
    case SCEN_PUBLISH:
        npubs = o->publishers;
        nchans = o->publishers;
        break;
    case SCEN_CHAT: /* its own engine, bench_chat.c */
        break;
    case SCEN_IDLE:
        nsubs = o->conns;
        nchans = o->conns;
        npubs = o->verify ? 1 : 0;
        break;
    }
    if (o->verify && bench_verify_init(&r->v, nsubs) < 0) return -1;
    r->nsubs = nsubs;
    r->nclients = nsubs + npubs;
    r->nchans = nchans ? nchans : 1;
    r->qcap = r->nclients + 1;
    r->by_offset = o->proto == PROTO_PARLEY && !o->ephemeral;
    r->clients = pl_calloc(r->nclients, sizeof(*r->clients));
    r->chans = pl_calloc(r->nchans, sizeof(*r->chans));
    r->queue = pl_calloc(r->qcap, sizeof(*r->queue));
    r->pad = pl_malloc(o->payload + 1);
    if (!r->clients || !r->chans || !r->queue || !r->pad) return -1;
    memset(r->pad, 'x', o->payload + 1);
    for (uint32_t i = 0; i < r->nchans; i++) {
        snprintf(r->chans[i].name, CHAN_NAME_MAX, "bench.%s.%s.%u", scen_name[o->scenario],
                 o->run_id, i);
        bench_seq_init(&r->chans[i].acks, 0);
    }
    uint64_t window = 2;
    while (window < 2 * (uint64_t)o->inflight + 2)
        window *= 2;
    for (uint32_t i = 0; i < r->nclients; i++) {
        client *c = &r->clients[i];
        c->r = r;
        c->index = i;
        c->role = i < nsubs ? ROLE_SUB : ROLE_PUB;
        if (c->role == ROLE_SUB)
            c->chan = i % r->nchans;
        else
            c->chan = o->scenario == SCEN_PUBLISH ? i - nsubs : 0;
        if (o->proto == PROTO_PARLEY && !(c->token = bench_mint(o, i))) return -1;
        if (c->role == ROLE_PUB && o->proto == PROTO_PARLEY) {
            c->slots = pl_calloc(window, sizeof(*c->slots));
            c->slot_mask = window - 1;
            if (!c->slots) return -1;
        }
        if (c->role == ROLE_PUB && o->proto == PROTO_NATS) {
            c->marks = pl_calloc(NATS_MARKS, sizeof(*c->marks));
            if (!c->marks) return -1;
        }
        enqueue(r, i);
    }
    return 0;
}

static void teardown(run *r)
{
    if (r->clients) {
        for (uint32_t i = 0; i < r->nclients; i++) {
            client *c = &r->clients[i];
            if (c->seq_ready) bench_seq_release(&c->seq);
            pl_free(c->token);
            pl_free(c->slots);
            pl_free(c->marks);
        }
    }
    if (r->chans)
        for (uint32_t i = 0; i < r->nchans; i++)
            bench_seq_release(&r->chans[i].acks);
    bench_verify_release(&r->v);
    pl_free(r->clients);
    pl_free(r->chans);
    pl_free(r->queue);
    pl_free(r->pad);
    bench_scanner_free(r->sc);
    sbuf_release(&r->msg);
    sbuf_release(&r->data);
}

int bench_run(const bench_opts *o, bench_result *res)
{
    if (o->scenario == SCEN_CHAT) return bench_chat_run(o, res);
    run r;
    memset(&r, 0, sizeof(r));
    r.o = o;
    r.res = res;
    bench_hist_init(&res->latency);
    bench_hist_init(&res->ack);
    res->server_cpu_s = -1;
    res->commit_batch = -1;
    res->catchup_s = -1;
    res->rss_before_kib = res->rss_hold_kib = -1;
    sbuf_init(&r.msg);
    sbuf_init(&r.data);
    int rc = -1;
    if (uv_loop_init(&r.loop) < 0) goto fail_noloop;
    r.sc = bench_scanner_new();
    r.net = bench_net_new(&r.loop);
    if (!r.sc || !r.net || setup(&r) < 0) {
        fprintf(stderr, "bench: setup failed (out of memory, or token minting failed)\n");
        goto fail;
    }
    r.cpu_start = o->server_pid > 0 ? bench_proc_cpu_s(o->server_pid) : -1;
    res->rss_before_kib = o->server_pid > 0 ? bench_proc_rss_kib(o->server_pid) : -1;
    r.t_start = r.prog_t = uv_hrtime();
    uv_timer_init(&r.loop, &r.tick);
    uv_timer_init(&r.loop, &r.progress);
    uv_timer_init(&r.loop, &r.deadline);
    r.tick.data = r.progress.data = r.deadline.data = &r;
    uv_timer_start(&r.tick, on_tick, BENCH_TICK_MS, BENCH_TICK_MS);
    uv_timer_start(&r.progress, on_progress, 1000, 1000);
    uv_timer_start(&r.deadline, on_deadline, (uint64_t)(o->timeout_s * 1000), 0);
    r.phase = PH_CONNECT;
    pump(&r);
    if (r.nclients == 0) finish(&r, "nothing to run");
    uv_run(&r.loop, UV_RUN_DEFAULT);
    res->ok = r.failure == NULL;
    res->failure = r.failure;
    rc = 0;
fail:
    if (r.net) {
        bench_net_free(r.net);
        uv_run(&r.loop, UV_RUN_DEFAULT);
    }
    if (r.phase != PH_DONE && r.tick.loop) {
        close_timer(&r.tick);
        close_timer(&r.progress);
        close_timer(&r.deadline);
        uv_run(&r.loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&r.loop);
fail_noloop:
    teardown(&r);
    return rc;
}
