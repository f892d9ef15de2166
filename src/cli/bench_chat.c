/* The chat scenario's engine (see bench_chat.h for the plan): one libuv
 * loop, every connection both a member of 5 rooms and a publisher.
 *
 *   CONNECT --all subscribed--> STEP --duration--> SETTLE --+--> DONE
 *                                 ^   (--find-max, step met) |
 *                                 +-------- rate * factor ---+--> DRAIN --> DONE
 *
 * A step publishes at a fixed rate for --duration; SETTLE waits until every
 * pub is acked and delivered to every member of its room. A step is met when
 * the pubs went out on schedule, none was shed, everything was in within
 * CHAT_SETTLE_NS of the step's end, and its p99 is within --p99-bound; a
 * missed step is run once more at the same rate before the search ends.
 * Without --find-max there is one step and SETTLE waits up to --drain.
 *
 * Each (connection, room) has its own bench_seq: by offset for the stored
 * class (offsets are the server's order), by the payload's per-room
 * sequence number for ephemeral pubs and NATS (assigned by the bench when
 * sent, so two members publishing at once may legitimately arrive
 * "reordered").
 *
 * With --proto nats a room is a subject, membership k is subscription id
 * k + 1, and each PUB is followed by a PING: its PONG is the publish's ack. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "cli/bench_chat.h"
#include "cli/bench_cmd.h"
#include "cli/bench_conn.h"
#include "cli/bench_int.h"
#include "cli/bench_nats.h"
#include "cli/bench_scan.h"
#include "util/errors.h"
#include "util/mem.h"
#include "util/sbuf.h"

#define CHAT_TICK_MS 1
#define CHAT_WINDOW BENCH_CHAT_WINDOW
/* A step has kept up when everything was delivered this soon after it. */
#define CHAT_SETTLE_NS 1000000000ull
/* The pause after a publish refused with 114 (overload), as bench_run.c. */
#define CHAT_SHED_PAUSE_NS 500000000ull
/* A pick whose connection cannot publish now is redrawn this many times. */
#define CHAT_PICK_TRIES 8

enum cphase { CP_CONNECT, CP_STEP, CP_SETTLE, CP_DRAIN, CP_DONE };

typedef struct cslot {
    uint64_t id; /* 0 = free */
    uint64_t t;
    uint32_t room;
} cslot;

typedef struct cmember {
    uint32_t room;
    bool ready;
    bench_seq seq;
} cmember;

typedef struct croom {
    uint64_t next_s;     /* last payload sequence number given */
    uint64_t max_offset; /* highest acked offset */
} croom;

typedef struct chat chat;

typedef struct cclient {
    chat *ch;
    bench_conn *conn;
    uint32_t index;
    char *token;
    bool ready;
    uint32_t subscribed;
    uint64_t next_id, connect_id, sub_id0;
    uint32_t inflight;
    uint64_t hold_until;
    cmember m[BENCH_CHAT_PER_CONN];
    cslot slots[CHAT_WINDOW];
    /* NATS: every PUB is followed by a PING; PONGs confirm them in order. */
    bench_nats nats;
    uint64_t confirmed;
} cclient;

struct chat {
    const bench_opts *o;
    bench_result *res;
    bench_chat_sum *sum;
    uv_loop_t loop;
    bench_net *net;
    uv_timer_t tick, progress, deadline;
    bench_scanner *sc;
    bench_chat_plan plan;
    cclient *cl;
    croom *rooms;
    uint32_t n;
    uint32_t next_open, connecting, ready;
    enum cphase phase;
    bool by_offset;
    char prefix[96];
    size_t prefix_len;
    uint64_t rng;
    uint64_t t_start, t_ready, t_pub_start, t_last_ack, t_last_deliv, now;
    uint64_t pubs_sent, pubs_acked, deliveries, inflight;
    uint64_t owed; /* deliveries the pubs sent so far make (room sizes), minus shed ones */
    /* the current step */
    double rate;
    bool retried; /* the current step repeats a missed one */
    uint64_t t_step, t_step_end, step_sent0, step_deliv0, step_shed0;
    bench_hist step_lat;
    uint64_t prog_pubs, prog_deliv, prog_t;
    double cpu_start, batch_sum0, batch_count0;
    bool have_batch0;
    sbuf msg, data;
    char *pad;
    const char *failure;
};

static void finish(chat *r, const char *failure);
static void pump(chat *r);

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void fail_run(chat *r, const char *why)
{
    if (!r->failure) r->failure = why;
    finish(r, why);
}

static void send_msg(cclient *c)
{
    chat *r = c->ch;
    if (r->msg.oom || r->data.oom) {
        fail_run(r, "out of memory");
        return;
    }
    /* NATS's text protocol goes in binary frames, as in bench_run.c. */
    if (bench_conn_send(c->conn, r->o->proto == PROTO_NATS, r->msg.data, r->msg.len) < 0)
        fail_run(r, "send on a closed connection");
}

static void room_name(const chat *r, uint32_t room, char *out, size_t n)
{
    snprintf(out, n, "%s%u", r->prefix, room);
}

/* -------------------------------------------------------------- the steps */

static void start_step(chat *r, double rate, uint64_t now)
{
    r->phase = CP_STEP;
    r->rate = rate;
    r->t_step = now;
    r->step_sent0 = r->pubs_sent;
    r->step_deliv0 = r->deliveries;
    r->step_shed0 = r->res->shed;
    bench_hist_init(&r->step_lat);
    if (!r->o->quiet)
        fprintf(stderr, "bench chat: step %u at %.0f pubs/s\n", r->sum->nsteps + 1, rate);
}

static bool caught_up(const chat *r)
{
    return r->inflight == 0 && r->deliveries >= r->owed;
}

/* Closes the current step's figures; returns whether it was met. */
static bool close_step(chat *r, uint64_t now, bool in_time)
{
    bench_chat_sum *s = r->sum;
    if (s->nsteps == BENCH_CHAT_MAX_STEPS) return false;
    bench_chat_step *t = &s->steps[s->nsteps++];
    double dur = secs(r->t_step_end - r->t_step);
    t->rate = r->rate;
    t->pubs = r->pubs_sent - r->step_sent0;
    t->deliveries = r->deliveries - r->step_deliv0;
    t->pubs_per_s = dur > 0 ? (double)t->pubs / dur : 0;
    t->deliv_per_s = now > r->t_step ? (double)t->deliveries / secs(now - r->t_step) : 0;
    t->p50_ms = (double)bench_hist_quantile(&r->step_lat, 0.5) / 1e6;
    t->p99_ms = (double)bench_hist_quantile(&r->step_lat, 0.99) / 1e6;
    t->settle_s = in_time ? secs(now - r->t_step_end) : -1;
    t->shed = r->res->shed - r->step_shed0;
    /* On schedule: within 1% of rate * time (the tick rounds down). */
    bool on_time = (double)t->pubs >= 0.99 * r->rate * dur;
    t->kept_up = on_time && t->shed == 0 && in_time;
    t->ok = t->kept_up && t->p99_ms <= s->p99_bound_ms;
    if (t->ok && t->rate > s->max_rate) s->max_rate = t->rate;
    if (!r->o->quiet)
        fprintf(stderr,
                "bench chat: step %u: %.0f pubs/s, %.0f deliveries/s, p50 %.2fms p99 %.2fms, "
                "settled %s: %s\n",
                s->nsteps, t->pubs_per_s, t->deliv_per_s, t->p50_ms, t->p99_ms,
                in_time ? "in time" : "late", t->ok ? "met" : "not met");
    return t->ok;
}

static void pick_and_publish(chat *r, uint64_t now);

static void on_settle(chat *r, uint64_t now)
{
    const bench_opts *o = r->o;
    bool done = caught_up(r);
    uint64_t waited = now - r->t_step_end;
    uint64_t bound = o->find_max ? CHAT_SETTLE_NS : (uint64_t)(o->drain_s * 1e9);
    if (!done && waited < bound) return;
    bool met = close_step(r, now, done && waited <= CHAT_SETTLE_NS);
    r->phase = CP_DRAIN; /* what is still owed, for the loss figures */
    /* A step missed once is run again at the same rate (once everything
     * owed is in): on a shared machine one stall can cost a step its p99.
     * The search ends at the first rate missed twice in a row. */
    bool again = !met && !r->retried && done;
    if (o->find_max && (met || again) && r->sum->nsteps < BENCH_CHAT_MAX_STEPS) {
        r->retried = again;
        start_step(r, met ? r->rate * o->step_factor : r->rate, now);
        return;
    }
    if (done) finish(r, NULL);
}

static void on_tick(uv_timer_t *t)
{
    chat *r = t->data;
    uint64_t now = uv_hrtime();
    if (r->phase == CP_STEP) {
        uint64_t due = (uint64_t)(r->rate * secs(now - r->t_step));
        for (uint32_t tries = 0; r->pubs_sent - r->step_sent0 < due && tries < CHAT_PICK_TRIES &&
                                 r->phase == CP_STEP;) {
            uint64_t before = r->pubs_sent;
            pick_and_publish(r, now);
            tries = r->pubs_sent == before ? tries + 1 : 0;
        }
        if (now - r->t_step >= (uint64_t)(r->o->duration_s * 1e9)) {
            r->t_step_end = now;
            r->phase = CP_SETTLE;
        }
    } else if (r->phase == CP_SETTLE) {
        on_settle(r, now);
    } else if (r->phase == CP_DRAIN) {
        if (caught_up(r) || now - r->t_step_end >= (uint64_t)(r->o->drain_s * 1e9)) finish(r, NULL);
    }
}

/* -------------------------------------------------------------- publishing */

static bool can_send(const cclient *c, uint64_t now)
{
    if (!c->ready || c->inflight >= CHAT_WINDOW) return false;
    if (c->hold_until && now < c->hold_until) return false;
    return c->slots[(c->next_id + 1) & (CHAT_WINDOW - 1)].id == 0;
}

/* A uniformly drawn membership speaks: its connection publishes to its
 * room. Returns without sending when that connection cannot right now. */
static void pick_and_publish(chat *r, uint64_t now)
{
    uint64_t m = bench_chat_rand(&r->rng) % ((uint64_t)r->n * BENCH_CHAT_PER_CONN);
    cclient *c = &r->cl[m / BENCH_CHAT_PER_CONN];
    if (!can_send(c, now)) return;
    uint32_t room = c->m[m % BENCH_CHAT_PER_CONN].room;
    char name[128];
    room_name(r, room, name, sizeof(name));
    uint64_t id = ++c->next_id;
    bench_put_data(&r->data, r->o->payload, r->pad, now, ++r->rooms[room].next_s);
    sbuf_reset(&r->msg);
    if (r->o->proto == PROTO_NATS) {
        sbuf_printf(&r->msg, "PUB %s %zu\r\n", name, r->data.len);
        sbuf_append(&r->msg, r->data.data, r->data.len);
        sbuf_puts(&r->msg, "\r\nPING\r\n");
    } else {
        bench_put_publish(&r->msg, id, name, r->o->ephemeral, &r->data);
    }
    c->slots[id & (CHAT_WINDOW - 1)] = (cslot){.id = id, .t = now, .room = room};
    c->inflight++;
    r->inflight++;
    r->pubs_sent++;
    r->owed += r->plan.size[room];
    send_msg(c);
}

/* ----------------------------------------------------------------- replies */

static void deliver(cclient *c, cmember *mb, const bench_pub *p, uint64_t now, bool live)
{
    chat *r = c->ch;
    bench_seq_add(&mb->seq, r->by_offset ? p->offset : p->s);
    r->deliveries++;
    r->t_last_deliv = now;
    if (live && p->t && now >= p->t) {
        bench_hist_record(&r->res->latency, now - p->t);
        if (r->phase == CP_STEP || r->phase == CP_SETTLE)
            bench_hist_record(&r->step_lat, now - p->t);
    }
}

/* The membership a pub push is for: the room number after our prefix. */
static cmember *member_of(cclient *c, const bench_line *l)
{
    chat *r = c->ch;
    uint64_t room;
    if (!l->channel || l->channel_len <= r->prefix_len ||
        memcmp(l->channel, r->prefix, r->prefix_len) != 0 ||
        bench_parse_u64(l->channel + r->prefix_len, l->channel_len - r->prefix_len, &room) < 0)
        return NULL;
    for (int k = 0; k < BENCH_CHAT_PER_CONN; k++)
        if (c->m[k].room == room && c->m[k].ready) return &c->m[k];
    return NULL;
}

static void client_ready(cclient *c)
{
    chat *r = c->ch;
    c->ready = true;
    r->ready++;
    r->connecting--;
    pump(r);
    if (r->ready < r->n || r->phase != CP_CONNECT) return;
    r->t_ready = r->t_pub_start = uv_hrtime();
    double s, n;
    if (bench_fetch_batch(r->o->host, r->o->port, &s, &n) == 0) {
        r->batch_sum0 = s;
        r->batch_count0 = n;
        r->have_batch0 = true;
    }
    start_step(r, r->o->rate, uv_hrtime());
}

static void on_connected(cclient *c)
{
    chat *r = c->ch;
    char name[128];
    c->sub_id0 = c->next_id + 1;
    /* The 5 subscribes leave in one write (the flush is per loop turn). */
    for (int k = 0; k < BENCH_CHAT_PER_CONN && r->phase != CP_DONE; k++) {
        room_name(r, c->m[k].room, name, sizeof(name));
        sbuf_reset(&r->msg);
        bench_put_subscribe(&r->msg, ++c->next_id, name, false, 0, "");
        send_msg(c);
    }
}

static void on_subscribed(cclient *c, cmember *mb, const bench_line *l, uint64_t now)
{
    chat *r = c->ch;
    if (mb->ready || (r->by_offset && !l->has_offset)) {
        fail_run(r, "unexpected subscribe result");
        return;
    }
    bench_seq_init(&mb->seq, r->by_offset ? l->offset : 0);
    mb->ready = true;
    for (size_t i = 0; i < l->npubs; i++)
        deliver(c, mb, &l->pubs[i], now, false);
    if (++c->subscribed == BENCH_CHAT_PER_CONN) client_ready(c);
}

/* Publish id of c answered: its slot, or NULL (counted) when it has none. */
static cslot *answered(cclient *c, uint64_t id, uint64_t now)
{
    chat *r = c->ch;
    cslot *s = &c->slots[id & (CHAT_WINDOW - 1)];
    if (!id || s->id != id) {
        r->res->proto_errors++;
        return NULL;
    }
    s->id = 0;
    c->inflight--;
    r->inflight--;
    r->pubs_acked++;
    r->t_last_ack = now;
    bench_hist_record(&r->res->ack, now - s->t);
    return s;
}

static void on_ack(cclient *c, const bench_line *l, uint64_t now)
{
    chat *r = c->ch;
    cslot *s = answered(c, l->id, now);
    if (!s) return;
    if (r->by_offset) {
        if (!l->has_offset || l->offset == 0) r->res->proto_errors++;
        if (l->offset > r->rooms[s->room].max_offset) r->rooms[s->room].max_offset = l->offset;
    }
}

static void on_error_reply(cclient *c, const bench_line *l)
{
    chat *r = c->ch;
    cslot *s = &c->slots[l->id & (CHAT_WINDOW - 1)];
    if (l->code == PE_OVERLOADED && l->id && s->id == l->id) {
        /* Shed under overload: the member waits and goes on; the pub will
         * never be delivered, so it is owed to no one. */
        s->id = 0;
        c->inflight--;
        r->inflight--;
        r->owed -= r->plan.size[s->room];
        r->res->shed++;
        c->hold_until = uv_hrtime() + CHAT_SHED_PAUSE_NS;
        return;
    }
    r->res->server_errors++;
    if (!r->failure)
        fprintf(stderr, "bench: connection %u: command %" PRIu64 " failed with error %d\n",
                c->index, l->id, l->code);
    fail_run(r, l->id == c->connect_id ? "connect rejected by the server"
                : l->id >= c->sub_id0 && l->id < c->sub_id0 + BENCH_CHAT_PER_CONN
                    ? "subscribe rejected by the server"
                    : "the server answered with an error");
}

static void on_result(cclient *c, const bench_line *l, uint64_t now)
{
    if (l->id && l->id == c->connect_id) {
        on_connected(c);
    } else if (c->sub_id0 && l->id >= c->sub_id0 && l->id < c->sub_id0 + BENCH_CHAT_PER_CONN) {
        on_subscribed(c, &c->m[l->id - c->sub_id0], l, now);
    } else {
        on_ack(c, l, now);
    }
}

static void on_line(cclient *c, const bench_line *l, uint64_t now)
{
    chat *r = c->ch;
    cmember *mb;
    switch (l->kind) {
    case BENCH_PUB:
        if (!(mb = member_of(c, l)))
            r->res->proto_errors++;
        else
            deliver(c, mb, &l->pub, now, true);
        break;
    case BENCH_RESULT:
        on_result(c, l, now);
        break;
    case BENCH_ERROR:
        on_error_reply(c, l);
        break;
    case BENCH_PING:
        sbuf_reset(&r->msg);
        sbuf_puts(&r->msg, "{\"method\":\"pong\"}");
        send_msg(c);
        break;
    case BENCH_GAP:
        r->res->gaps++;
        break;
    case BENCH_DISCONNECT:
    case BENCH_PUSH_OTHER:
        break;
    case BENCH_BAD:
        r->res->proto_errors++;
        break;
    }
}

/* --------------------------------------------------------------- NATS side */

/* Subscription id k + 1 is membership k. */
static void nats_on_msg(void *ud, uint64_t sid, const char *payload, size_t len)
{
    cclient *c = ud;
    chat *r = c->ch;
    bench_pub p;
    if (sid < 1 || sid > BENCH_CHAT_PER_CONN || !c->m[sid - 1].ready ||
        bench_scan_data(r->sc, payload, len, &p) < 0) {
        r->res->proto_errors++;
        return;
    }
    deliver(c, &c->m[sid - 1], &p, r->now, true);
}

static void nats_on_ping(void *ud)
{
    cclient *c = ud;
    sbuf_reset(&c->ch->msg);
    sbuf_puts(&c->ch->msg, "PONG\r\n");
    send_msg(c);
}

/* The first PONG answers the PING after the SUBs: subscribed. Later ones
 * confirm the publishes in the order they were sent. */
static void nats_on_pong(void *ud)
{
    cclient *c = ud;
    if (c->subscribed < BENCH_CHAT_PER_CONN) {
        for (int k = 0; k < BENCH_CHAT_PER_CONN; k++) {
            bench_seq_init(&c->m[k].seq, 0);
            c->m[k].ready = true;
        }
        c->subscribed = BENCH_CHAT_PER_CONN;
        client_ready(c);
        return;
    }
    answered(c, ++c->confirmed, uv_hrtime());
}

static void nats_on_info(void *ud, const char *json, size_t len)
{
    cclient *c = ud;
    chat *r = c->ch;
    if (c->subscribed || c->ready) return;
    char name[128];
    sbuf_reset(&r->msg);
    sbuf_puts(&r->msg, "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"parley-bench\"}"
                       "\r\n");
    for (int k = 0; k < BENCH_CHAT_PER_CONN; k++) {
        room_name(r, c->m[k].room, name, sizeof(name));
        sbuf_printf(&r->msg, "SUB %s %d\r\n", name, k + 1);
    }
    sbuf_puts(&r->msg, "PING\r\n");
    send_msg(c);
}

static void nats_on_err(void *ud, const char *msg, size_t len)
{
    cclient *c = ud;
    c->ch->res->server_errors++;
    fprintf(stderr, "bench: nats-server error:%.*s\n", (int)(len > 200 ? 200 : len), msg);
    fail_run(c->ch, "nats-server sent -ERR");
}

static const bench_nats_cb nats_cb = {
    .on_msg = nats_on_msg,
    .on_ping = nats_on_ping,
    .on_pong = nats_on_pong,
    .on_info = nats_on_info,
    .on_err = nats_on_err,
};

/* ------------------------------------------------------------- connections */

static void on_open(bench_conn *conn, void *ud)
{
    cclient *c = ud;
    chat *r = c->ch;
    if (r->o->proto == PROTO_NATS) {
        bench_nats_init(&c->nats); /* the server speaks first (INFO) */
        return;
    }
    c->connect_id = ++c->next_id;
    sbuf_reset(&r->msg);
    bench_put_connect(&r->msg, c->connect_id, c->token);
    send_msg(c);
}

static void on_message(bench_conn *conn, void *ud, int binary, const char *data, size_t len)
{
    cclient *c = ud;
    chat *r = c->ch;
    if (r->phase == CP_DONE) return;
    /* One clock read per message: every pub batched in it arrived together. */
    uint64_t now = r->now = uv_hrtime();
    if (r->o->proto == PROTO_NATS) {
        if (bench_nats_feed(&c->nats, data, len, &nats_cb, c) != 0) {
            r->res->proto_errors++;
            fail_run(r, "malformed NATS protocol from the server");
        }
        return;
    }
    const char *end = data + len;
    while (data < end && r->phase != CP_DONE) {
        const char *nl = memchr(data, '\n', (size_t)(end - data));
        const char *stop = nl ? nl : end;
        if (stop > data) {
            bench_line l;
            bench_scan(r->sc, data, (size_t)(stop - data), &l);
            on_line(c, &l, now);
        }
        data = nl ? nl + 1 : end;
    }
}

static void on_close(bench_conn *conn, void *ud, const char *error, int ws_code)
{
    cclient *c = ud;
    chat *r = c->ch;
    c->conn = NULL;
    if (r->o->proto == PROTO_NATS) bench_nats_release(&c->nats);
    if (c->ready) {
        c->ready = false;
        r->ready--;
    } else {
        r->connecting--;
    }
    if (r->phase == CP_DONE) return;
    r->res->conn_errors++;
    if (!r->failure)
        fprintf(stderr, "bench: connection %u: %s (close code %d)\n", c->index,
                error ? error : "closed", ws_code);
    fail_run(r, "a connection failed");
}

static const bench_conn_cb conn_cb = {
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
};

static void pump(chat *r)
{
    while (r->phase != CP_DONE && r->next_open < r->n &&
           r->connecting < r->o->connect_concurrency) {
        cclient *c = &r->cl[r->next_open++];
        bench_conn_opts co = bench_client_opts(r->o, c->index);
        r->connecting++;
        c->conn = bench_conn_open(r->net, &co, &conn_cb, c);
        if (!c->conn) {
            r->connecting--;
            r->res->conn_errors++;
            fail_run(r, "cannot create a socket (file descriptor limit?)");
        }
    }
}

/* ------------------------------------------------------------ progress, end */

static void on_progress(uv_timer_t *t)
{
    chat *r = t->data;
    uint64_t now = uv_hrtime();
    double dt = secs(now - r->prog_t);
    if (!r->o->quiet)
        fprintf(stderr,
                "bench chat [%5.1fs] ready %u/%u pubs %" PRIu64 " (%.0f/s) acked %" PRIu64
                " deliveries %" PRIu64 " (%.0f/s) owed %" PRIu64 "\n",
                secs(now - r->t_start), r->ready, r->n, r->pubs_sent,
                (double)(r->pubs_sent - r->prog_pubs) / dt, r->pubs_acked, r->deliveries,
                (double)(r->deliveries - r->prog_deliv) / dt,
                r->owed > r->deliveries ? r->owed - r->deliveries : 0);
    r->prog_pubs = r->pubs_sent;
    r->prog_deliv = r->deliveries;
    r->prog_t = now;
}

static void on_deadline(uv_timer_t *t)
{
    fail_run(t->data, "run timed out");
}

/* Loss, duplicates and order per (connection, room). */
static void collect_members(chat *r)
{
    bench_result *res = r->res;
    for (uint32_t i = 0; i < r->n; i++) {
        for (int k = 0; k < BENCH_CHAT_PER_CONN; k++) {
            cmember *mb = &r->cl[i].m[k];
            if (!mb->ready) continue;
            const croom *room = &r->rooms[mb->room];
            uint64_t last = r->by_offset ? room->max_offset : room->next_s;
            uint64_t missing = bench_seq_missing(&mb->seq, last);
            if (last > mb->seq.base) res->expected += last - mb->seq.base;
            res->lost += missing;
            res->dups += mb->seq.dups;
            res->reorder += mb->seq.reorder;
            res->proto_errors += mb->seq.invalid;
            if (missing) r->sum->memberships_lossy++;
            if (mb->seq.dups || mb->seq.reorder) r->sum->memberships_dup_ooo++;
        }
    }
}

static void collect(chat *r, uint64_t now)
{
    bench_result *res = r->res;
    res->connections = r->n;
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
    collect_members(r);
    if (r->o->server_pid > 0 && r->cpu_start >= 0) {
        double cpu = bench_proc_cpu_s(r->o->server_pid);
        res->server_cpu_s = cpu >= 0 ? cpu - r->cpu_start : -1;
    }
    double s, n;
    if (r->have_batch0 && bench_fetch_batch(r->o->host, r->o->port, &s, &n) == 0 &&
        n > r->batch_count0)
        res->commit_batch = (s - r->batch_sum0) / (n - r->batch_count0);
    res->elapsed_s = secs(now - r->t_start);
}

static void close_timer(uv_timer_t *t)
{
    if (t->loop && !uv_is_closing((uv_handle_t *)t)) uv_close((uv_handle_t *)t, NULL);
}

static void finish(chat *r, const char *failure)
{
    if (r->phase == CP_DONE) return;
    /* A run cut short mid-step still reports the step it was in. */
    if (r->phase == CP_STEP || r->phase == CP_SETTLE) {
        if (r->phase == CP_STEP) r->t_step_end = uv_hrtime();
        close_step(r, uv_hrtime(), false);
    }
    r->phase = CP_DONE;
    if (failure && !r->failure) r->failure = failure;
    collect(r, uv_hrtime());
    close_timer(&r->tick);
    close_timer(&r->progress);
    close_timer(&r->deadline);
    for (uint32_t i = 0; i < r->n; i++)
        if (r->cl[i].conn) bench_conn_close(r->cl[i].conn);
}

/* ------------------------------------------------------------------- setup */

/* The plan's shape for the report: sizes are in decreasing order. */
static void describe_plan(chat *r)
{
    bench_chat_sum *s = r->sum;
    const bench_chat_plan *p = &r->plan;
    double sq = 0, sum = 0;
    for (uint32_t i = 0; i < p->rooms; i++) {
        sq += (double)p->size[i] * p->size[i];
        sum += p->size[i];
    }
    s->on = true;
    s->rooms = p->rooms;
    s->memberships = p->conns * BENCH_CHAT_PER_CONN;
    s->size_max = p->size[0];
    s->size_min = p->size[p->rooms - 1];
    s->size_median = p->size[p->rooms / 2];
    s->size_k = p->k;
    s->fanout = sum > 0 ? sq / sum : 0;
    s->find_max = r->o->find_max;
    s->p99_bound_ms = r->o->p99_bound_s * 1000;
}

static int setup(chat *r)
{
    const bench_opts *o = r->o;
    if (bench_chat_plan_make(&r->plan, o->conns, o->rooms, o->seed) < 0) return -1;
    describe_plan(r);
    r->n = o->conns;
    r->rng = o->seed ^ UINT64_C(0x5eed);
    r->by_offset = o->proto == PROTO_PARLEY && !o->ephemeral;
    snprintf(r->prefix, sizeof(r->prefix), "bench.chat.%s.", o->run_id);
    r->prefix_len = strlen(r->prefix);
    r->cl = pl_calloc(r->n, sizeof(*r->cl));
    r->rooms = pl_calloc(o->rooms, sizeof(*r->rooms));
    r->pad = pl_malloc(o->payload + 1);
    if (!r->cl || !r->rooms || !r->pad) return -1;
    memset(r->pad, 'x', o->payload + 1);
    for (uint32_t i = 0; i < r->n; i++) {
        cclient *c = &r->cl[i];
        c->ch = r;
        c->index = i;
        for (int k = 0; k < BENCH_CHAT_PER_CONN; k++)
            c->m[k].room = r->plan.member[(size_t)i * BENCH_CHAT_PER_CONN + k];
        if (o->proto == PROTO_PARLEY && !(c->token = bench_mint(o, i))) return -1;
    }
    return 0;
}

static void teardown(chat *r)
{
    for (uint32_t i = 0; r->cl && i < r->n; i++) {
        for (int k = 0; k < BENCH_CHAT_PER_CONN; k++)
            if (r->cl[i].m[k].ready) bench_seq_release(&r->cl[i].m[k].seq);
        pl_free(r->cl[i].token);
    }
    pl_free(r->cl);
    pl_free(r->rooms);
    pl_free(r->pad);
    bench_chat_plan_release(&r->plan);
    bench_scanner_free(r->sc);
    sbuf_release(&r->msg);
    sbuf_release(&r->data);
}

int bench_chat_run(const bench_opts *o, bench_result *res)
{
    chat *r = pl_calloc(1, sizeof(*r)); /* holds a histogram: too big for the stack */
    if (!r) return -1;
    r->o = o;
    r->res = res;
    r->sum = &res->chat;
    bench_hist_init(&res->latency);
    bench_hist_init(&res->ack);
    res->server_cpu_s = res->commit_batch = res->catchup_s = -1;
    res->rss_before_kib = res->rss_hold_kib = -1;
    sbuf_init(&r->msg);
    sbuf_init(&r->data);
    int rc = -1;
    if (uv_loop_init(&r->loop) < 0) goto fail_noloop;
    r->sc = bench_scanner_new();
    r->net = bench_net_new(&r->loop);
    if (!r->sc || !r->net || setup(r) < 0) {
        fprintf(stderr, "bench: setup failed (out of memory, or token minting failed)\n");
        goto fail;
    }
    r->cpu_start = o->server_pid > 0 ? bench_proc_cpu_s(o->server_pid) : -1;
    r->t_start = r->prog_t = uv_hrtime();
    uv_timer_init(&r->loop, &r->tick);
    uv_timer_init(&r->loop, &r->progress);
    uv_timer_init(&r->loop, &r->deadline);
    r->tick.data = r->progress.data = r->deadline.data = r;
    uv_timer_start(&r->tick, on_tick, CHAT_TICK_MS, CHAT_TICK_MS);
    uv_timer_start(&r->progress, on_progress, 1000, 1000);
    uv_timer_start(&r->deadline, on_deadline, (uint64_t)(o->timeout_s * 1000), 0);
    r->phase = CP_CONNECT;
    pump(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    res->ok = r->failure == NULL;
    res->failure = r->failure;
    rc = 0;
fail:
    if (r->net) {
        bench_net_free(r->net);
        uv_run(&r->loop, UV_RUN_DEFAULT);
    }
    if (r->phase != CP_DONE) {
        close_timer(&r->tick);
        close_timer(&r->progress);
        close_timer(&r->deadline);
        uv_run(&r->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&r->loop);
fail_noloop:
    teardown(r);
    pl_free(r);
    return rc;
}
