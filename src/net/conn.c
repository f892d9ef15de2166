/* Client connections; see conn.h. Reading, the outbound queue and its
 * writes, and the sink; the HTTP phase and its routes are net/conn_http.c. */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "net/conn_int.h"
#include "obs/log.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/mem.h"

#define MAX_WRITE_ITEMS 256

static const sink_ops conn_sink_ops;
static int conn_enqueue_pub(conn *c, pl_pub *p);
static int conn_send(conn *c, enum out_kind kind, const char *json, size_t len);

/* ---- WebSocket callbacks ------------------------------------------------ */

static void ws_on_text(void *ud, const uint8_t *data, size_t len)
{
    conn *c = ud;
    if (c->state == CS_WS && c->s) session_on_text(c->s, (const char *)data, len);
}

static int ws_send(void *ud, const uint8_t *data, size_t len)
{
    conn *c = ud;
    rbuf *r = rbuf_from(data, len);
    if (!r) return -1;
    conn_enqueue(c, OUT_RAW, r, len);
    return 0;
}

static void ws_on_closed(void *ud, uint16_t code)
{
    conn *c = ud;
    if (c->state != CS_CLOSING) {
        if (code != 1000 && code != 1001 && code != 1005)
            metrics_add(&c->w->metrics, M_PROTOCOL_ERRORS, 1);
        c->state = CS_CLOSING;
        c->out.closing = 1;
        c->deadline_ms = c->w->host.now_ms + CLOSE_GRACE_MS;
    }
    c->close_after_flush = 1;
    c->close_code = 0;
    if (!c->out.close_code) c->out.close_code = code;
    if (!c->qlen && !c->writing) conn_abort(c);
}

const ws_callbacks conn_ws_callbacks = {
    .on_text = ws_on_text,
    .send = ws_send,
    .on_closed = ws_on_closed,
};

/* ======================================================================
 * Reading
 * ====================================================================== */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    conn *c = (conn *)h;
    buf->base = c->w->readbuf;
    buf->len = sizeof(c->w->readbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = (conn *)s;
    worker *w = c->w;
    if (nread < 0) {
        conn_abort(c);
        return;
    }
    if (nread == 0) return;
    worker_clock(w);
    c->last_rx_ms = w->host.now_ms;
    switch (c->state) {
    case CS_HTTP:
        conn_http_read(c, buf->base, (size_t)nread);
        break;
    case CS_WS:
    case CS_CLOSING:
        if (c->out.kind != SINK_WS) break;
        if (!c->ws &&
            !(c->ws = ws_session_new(&conn_ws_callbacks, c, w->srv->cfg.limits.max_frame_bytes))) {
            conn_abort(c);
            break;
        }
        if (ws_session_feed(c->ws, (const uint8_t *)buf->base, (size_t)nread) &&
            c->state != CS_CLOSING) {
            conn_abort(c);
            break;
        }
        /* An idle session may hold wslay's 9 KiB context: drop it between
         * frames and make a new one (small until it needs wslay) on the
         * next read. */
        if (c->state == CS_WS && ws_session_state(c->ws) == WS_OPEN && ws_session_idle(c->ws)) {
            ws_session_free(c->ws);
            c->ws = NULL;
        }
        break;
    default:
        break; /* SSE clients have nothing to say */
    }
}

void conn_read_start(conn *c)
{
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

void conn_feed(conn *c, const char *data, size_t len)
{
    on_read((uv_stream_t *)&c->tcp, (ssize_t)len, &(uv_buf_t){(char *)data, len});
}

static void conn_ip_key(const conn *c, char *out, size_t cap)
{
    char addr[INET6_ADDRSTRLEN] = "?";
    inet_ntop(c->ip_family == 6 ? AF_INET6 : AF_INET, c->ip, addr, sizeof(addr));
    snprintf(out, cap, "ip:%s", addr);
}

/* Counts the peer against max_connections_per_ip (across all workers);
 * returns 1 when the address is over its limit (then not counted). */
static int count_ip(conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len)) return 0;
    if (ss.ss_family == AF_INET) {
        memcpy(c->ip, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        c->ip_family = 4;
        c->out.peer_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        memcpy(c->ip, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        c->ip_family = 6;
        c->out.peer_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        return 0;
    }
    char key[64];
    conn_ip_key(c, key, sizeof(key));
    if (rl_conn_acquire(c->w->srv->ps.limits, key, c->w->srv->cfg.limits.max_connections_per_ip) ==
        0)
        return 0;
    c->ip_family = 0;
    return 1;
}

void conn_on_accept(worker *w, uv_stream_t *listener)
{
    conn *c = pl_calloc(1, sizeof(*c));
    if (!c) return;
    uv_tcp_init(&w->loop, &c->tcp);
    c->w = w;
    c->out.ops = &conn_sink_ops;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)pl_free);
        return;
    }
    c->out.id = ((uint64_t)w->index << 56) | ++w->next_conn_id;
    c->http = conn_http_new(c);
    if (!c->http || map_put(&w->conns, (const char *)&c->out.id, sizeof(c->out.id), c)) {
        conn_http_free(c->http);
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)pl_free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int over_ip = count_ip(c);
    c->next = w->all;
    if (w->all) w->all->prev = c;
    w->all = c;
    worker_clock(w);
    c->deadline_ms = w->host.now_ms + w->srv->cfg.limits.handshake_timeout_ms;
    c->last_rx_ms = w->host.now_ms;
    if (over_ip) {
        conn_respond_error(c, 429, "Too Many Requests", PE_TOO_MANY_REQUESTS,
                           "too many connections from this address");
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ======================================================================
 * Writing
 * ====================================================================== */

typedef struct write_req {
    uv_write_t req;
    conn *c;
    size_t cap; /* bytes allocated, for reuse as the worker's spare */
    size_t bytes;
    size_t reply_bytes; /* of bytes, replies (the sink's replies count) */
    uint32_t nitems;
    out_item *items;
    uv_buf_t *bufs;
    uint8_t *hdrs;
} write_req;

/* Most writes complete inside flush, so one spare request per worker
 * serves them all: no allocation per write per subscriber. A write that
 * goes asynchronous keeps its request until libuv calls back. */
static write_req *wr_alloc(worker *w, size_t sz)
{
    write_req *wr = w->write_spare;
    if (wr && wr->cap >= sz) {
        w->write_spare = NULL;
        return wr;
    }
    wr = pl_malloc(sz);
    if (wr) wr->cap = sz;
    return wr;
}

static void wr_release(worker *w, write_req *wr)
{
    write_req *spare = w->write_spare;
    if (spare && spare->cap >= wr->cap) {
        pl_free(wr);
        return;
    }
    pl_free(spare);
    w->write_spare = wr;
}

static void item_unref(out_item *it)
{
    if (it->kind == OUT_PUB)
        pub_unref(it->ref);
    else
        rbuf_unref(it->ref);
}

static const char *item_data(const out_item *it)
{
    return it->kind == OUT_PUB ? pub_frame_peek(it->ref)->data : ((rbuf *)it->ref)->data;
}

/* Queues c for a flush, behind the connections already waiting; urgent
 * ones (answers, control frames) on their own list, written as soon as no
 * round is in progress. A connection already queued stays where it is. */
static void mark_dirty(conn *c, int urgent)
{
    worker *w = c->w;
    conn **head = urgent ? &w->urgent : &w->dirty,
         **tail = urgent ? &w->urgent_tail : &w->dirty_tail;
    if (c->dirty) return;
    c->dirty = DIRTY_QUEUED;
    c->dirty_next = NULL;
    if (*tail)
        (*tail)->dirty_next = c;
    else
        *head = c;
    *tail = c;
}

static void on_close(uv_handle_t *h)
{
    conn *c = (conn *)h;
    worker *w = c->w;
    session_free(c->s);
    c->s = NULL;
    if (c->streaming) tail_remove(w->host.tails, &c->out);
    if (c->ip_family) {
        char key[64];
        conn_ip_key(c, key, sizeof(key));
        rl_conn_release(w->srv->ps.limits, key);
    }
    for (uint32_t i = 0; i < c->qlen; i++)
        item_unref(&c->q[(c->qhead + i) % c->qcap]);
    pl_free(c->q);
    ws_session_free(c->ws);
    conn_http_free(c->http);
    map_del(&w->conns, (const char *)&c->out.id, sizeof(c->out.id));
    if (c->prev)
        c->prev->next = c->next;
    else
        w->all = c->next;
    if (c->next) c->next->prev = c->prev;
    /* Still queued for a flush (a round in progress, or one held back by
     * pacing): the flush frees it when it gets there (the list has no way
     * back to unlink it). */
    if (c->dirty)
        c->dirty = DIRTY_GONE;
    else
        pl_free(c);
}

void conn_abort(conn *c)
{
    if (c->out.closed) return;
    c->out.closed = 1;
    c->state = CS_CLOSING;
    c->out.closing = 1;
    if (c->out.kind == SINK_WS)
        metrics_add(&c->w->metrics, M_WS_CLOSED, 1);
    else if (c->out.kind == SINK_SSE)
        metrics_add(&c->w->metrics, M_SSE_CLOSED, 1);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* Ends a write, at once or from libuv's callback: releases its items, then
 * queues the next write or finishes a close waiting for the queue. */
static void write_done(write_req *wr, int status)
{
    conn *c = wr->c;
    for (uint32_t i = 0; i < wr->nitems; i++)
        item_unref(&wr->items[i]);
    c->out.queued -= wr->bytes;
    c->out.replies -= wr->reply_bytes;
    c->writing = 0;
    wr_release(c->w, wr);
    if (c->out.closed) return;
    if (status < 0) {
        conn_abort(c);
        return;
    }
    if (c->qlen) {
        mark_dirty(c, 0);
    } else if (c->close_after_flush) {
        /* A server-initiated WebSocket close waits for the peer's close. */
        if (c->out.kind != SINK_WS || c->close_code == 0) conn_abort(c);
        return;
    }
    if (c->s) session_on_drain(c->s);
}

static void on_write(uv_write_t *req, int status)
{
    write_done((write_req *)req, status);
}

/* Writes what the socket takes now and hands the rest to libuv. Most
 * writes complete at once; trying first saves libuv's completion round
 * trip for them (a pending callback and an epoll_ctl per write). */
static void start_write(conn *c, write_req *wr, uv_buf_t *bufs, unsigned nb)
{
    size_t wire = 0;
    for (unsigned i = 0; i < nb; i++)
        wire += bufs[i].len;
    c->writing = 1;
    int rc = uv_try_write((uv_stream_t *)&c->tcp, bufs, nb);
    if (rc >= 0 && (size_t)rc == wire) {
        write_done(wr, 0);
        return;
    }
    if (rc < 0 && rc != UV_EAGAIN) {
        write_done(wr, rc);
        return;
    }
    size_t skip = rc > 0 ? (size_t)rc : 0;
    while (skip >= bufs->len) {
        skip -= bufs->len;
        bufs++;
        nb--;
    }
    bufs->base += skip;
    bufs->len -= skip;
    rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, bufs, nb, on_write);
    if (rc) write_done(wr, rc);
}

static int is_frame_item(const out_item *it)
{
    return it->kind != OUT_RAW;
}

/* A pub's event id is the stream's cursor (every channel's position, from
 * the session); a connection whose session is gone falls back to the
 * single-channel form. */
static void write_sse_item(conn *c, sbuf *b, const out_item *it)
{
    if (it->kind == OUT_PUB && ((const pl_pub *)it->ref)->offset) {
        const pl_pub *p = it->ref;
        char id[SSE_EVENT_ID_MAX];
        if (session_sse_event_id(c->s, p, id, sizeof(id)))
            sbuf_printf(b, "id: %s\n", id);
        else
            sbuf_printf(b, "id: %s@%llu\n", p->channel, (unsigned long long)p->offset);
    } else if (it->kind == OUT_GAP) {
        sbuf_puts(b, "event: gap\n");
    }
    sbuf_puts(b, "data: ");
    sbuf_append(b, item_data(it), it->len);
    sbuf_puts(b, "\n\n");
}

/* Pops up to MAX_WRITE_ITEMS items into one write. On WebSocket, runs of
 * JSON items become one text frame joined by '\n' (no copy of the payloads:
 * the iovecs point into the shared buffers); raw items go as they are. SSE
 * output is formatted into one buffer. */
static void flush(conn *c)
{
    if (c->writing || !c->qlen || c->out.closed) return;
    uint32_t n = c->qlen < MAX_WRITE_ITEMS ? c->qlen : MAX_WRITE_ITEMS;
    size_t sz = sizeof(write_req) + n * sizeof(out_item) + (3 * n + 1) * sizeof(uv_buf_t) + 10 * n;
    write_req *wr = wr_alloc(c->w, sz);
    if (!wr) {
        conn_abort(c);
        return;
    }
    wr->c = c;
    wr->items = (out_item *)(wr + 1);
    wr->bufs = (uv_buf_t *)(wr->items + n);
    wr->hdrs = (uint8_t *)(wr->bufs + 3 * n + 1);
    wr->nitems = n;
    wr->bytes = wr->reply_bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        wr->items[i] = c->q[c->qhead];
        c->qhead = (c->qhead + 1) % c->qcap;
        wr->bytes += wr->items[i].len;
        if (wr->items[i].kind == OUT_REPLY) wr->reply_bytes += wr->items[i].len;
    }
    c->qlen -= n;
    c->reply_room = 0; /* the reply buffer may be in this write now */
    unsigned nb = 0;
    rbuf *sse = NULL;
    if (c->out.kind == SINK_SSE) {
        sbuf b;
        sbuf_init(&b);
        for (uint32_t i = 0; i < n; i++) {
            if (wr->items[i].kind == OUT_RAW)
                sbuf_append(&b, item_data(&wr->items[i]), wr->items[i].len);
            else
                write_sse_item(c, &b, &wr->items[i]);
        }
        sse = sbuf_to_rbuf(&b);
        sbuf_release(&b);
        if (!sse) {
            c->out.queued -= wr->bytes;
            c->out.replies -= wr->reply_bytes;
            for (uint32_t i = 0; i < n; i++)
                item_unref(&wr->items[i]);
            wr_release(c->w, wr);
            conn_abort(c);
            return;
        }
        for (uint32_t i = 0; i < n; i++)
            item_unref(&wr->items[i]);
        wr->items[0].kind = OUT_RAW;
        wr->items[0].ref = sse;
        wr->nitems = 1;
        wr->bufs[nb++] = uv_buf_init(sse->data, (unsigned)sse->len);
    } else {
        static char nl = '\n';
        for (uint32_t i = 0; i < n;) {
            if (!is_frame_item(&wr->items[i]) || c->out.kind != SINK_WS) {
                wr->bufs[nb++] = uv_buf_init((char *)item_data(&wr->items[i]), wr->items[i].len);
                i++;
                continue;
            }
            uint32_t j = i;
            uint64_t plen = 0;
            while (j < n && is_frame_item(&wr->items[j]))
                plen += wr->items[j++].len + 1;
            plen--;
            uint8_t *hdr = wr->hdrs + 10 * i;
            size_t hl = ws_frame_header(hdr, WS_OP_TEXT, plen, 1);
            wr->bufs[nb++] = uv_buf_init((char *)hdr, (unsigned)hl);
            for (uint32_t k = i; k < j; k++) {
                if (k > i) wr->bufs[nb++] = uv_buf_init(&nl, 1);
                wr->bufs[nb++] = uv_buf_init((char *)item_data(&wr->items[k]), wr->items[k].len);
            }
            metrics_add(&c->w->metrics, M_FRAMES_OUT, 1);
            i = j;
        }
    }
    metrics_add(&c->w->metrics, M_BYTES_OUT, wr->bytes);
    start_write(c, wr, wr->bufs, nb);
}

/* Pops c off a list of connections to flush; 0 if it was closed while
 * queued (and is freed now). */
static int pop_live(conn *c)
{
    if (c->dirty == DIRTY_GONE) {
        pl_free(c);
        return 0;
    }
    c->dirty = 0;
    return 1;
}

size_t conn_backlog(worker *w)
{
    size_t bytes = 0;
    for (conn *c = w->dirty; c; c = c->dirty_next)
        if (c->dirty == DIRTY_QUEUED && !c->writing) bytes += c->out.queued;
    return bytes;
}

void conn_flush_urgent(worker *w)
{
    while (w->urgent) {
        conn *c = w->urgent;
        w->urgent = c->dirty_next;
        if (!w->urgent) w->urgent_tail = NULL;
        if (pop_live(c)) flush(c);
    }
}

void conn_flush_dirty(worker *w, size_t max)
{
    for (size_t n = 0; w->dirty && n < max; n++) {
        conn *c = w->dirty;
        w->dirty = c->dirty_next;
        if (!w->dirty) w->dirty_tail = NULL;
        if (c == w->round_last) {
            w->round_last = NULL;
            max = n + 1; /* the round ends here */
        }
        if (pop_live(c)) flush(c);
    }
    /* Answers go out at once while the server keeps up. While a worker is
     * behind (srv->ps.backlogged), they wait for the end of the round that
     * carries their pubs: a publisher then runs one window per round, the
     * pacing that keeps 10,000 subscribers' delivery p99 near a round's
     * length (measured: answering at once regardless, p99 rose 2-3x). */
    if (!w->round_last || !atomic_load_explicit(&w->srv->ps.backlogged, memory_order_relaxed))
        conn_flush_urgent(w);
}

static int queue_push(conn *c, out_item it)
{
    if (c->qlen == c->qcap) {
        uint32_t ncap = c->qcap ? c->qcap * 2 : 8;
        out_item *nq = pl_malloc(ncap * sizeof(*nq));
        if (!nq) return -1;
        for (uint32_t i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) % c->qcap];
        pl_free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] = it;
    c->qlen++;
    c->out.queued += it.len;
    if (it.kind == OUT_REPLY) c->out.replies += it.len;
    c->reply_room = 0;
    mark_dirty(c, it.kind != OUT_PUB && it.kind != OUT_PUBS);
    return 0;
}

static void slow_consumer(conn *c)
{
    metrics_add(&c->w->metrics, M_SLOW_CONSUMER, 1);
    /* Drop what was not yet written: the client resumes by offset. */
    for (uint32_t i = 0; i < c->qlen; i++) {
        out_item *it = &c->q[(c->qhead + i) % c->qcap];
        c->out.queued -= it->len;
        if (it->kind == OUT_REPLY) c->out.replies -= it->len;
        item_unref(it);
    }
    c->qlen = 0;
    c->reply_room = 0;
    conn_close(c, PC_SLOW_CONSUMER, "slow consumer");
}

/* Whether an item would take the queue past its bound: pushes may fill
 * the bound beside the replies (which the session keeps under it by
 * pausing reads); anything past the hard cap cuts the connection. */
static int over_bound(const conn *c, enum out_kind kind, size_t len)
{
    size_t bound = c->w->srv->cfg.limits.outbound_queue_bytes;
    if (kind == OUT_RAW) return 0;
    if (c->out.queued + len > bound * SINK_HARD_CAP_FACTOR) return 1;
    return kind != OUT_REPLY && c->out.queued - c->out.replies + len > bound;
}

int conn_enqueue(conn *c, enum out_kind kind, void *ref, size_t len)
{
    out_item it = {ref, kind, (uint32_t)len};
    if (c->out.closed || (kind != OUT_RAW && c->state == CS_CLOSING)) goto drop;
    if (over_bound(c, kind, len)) {
        item_unref(&it);
        slow_consumer(c);
        return -1;
    }
    if (queue_push(c, it)) goto drop;
    return 0;
drop:
    item_unref(&it);
    return -1;
}

static int conn_enqueue_pub(conn *c, pl_pub *p)
{
    const rbuf *f = proto_pub_frame(p);
    if (!f) {
        /* Skipping it would be a gap the client cannot see; reconnecting
         * with since recovers it. */
        if (!c->out.closed) conn_close(c, PC_OVERLOADED, "overloaded");
        return -1;
    }
    return conn_enqueue(c, OUT_PUB, pub_ref(p), f->len);
}

/* A burst of replies to one WebSocket connection shares a buffer: each is
 * appended to the last queued item while that is a reply buffer with room,
 * joined by '\n' as flush() joins consecutive items. One allocation and one
 * iovec per burst instead of one each; the client reads the same bytes. A
 * lone message (the usual push to many connections) is sized exactly: the
 * chunk is taken only behind another queued JSON item, so a queue never
 * holds much more memory than the bytes it counts. */
#define REPLY_CHUNK 4000

static int conn_send(conn *c, enum out_kind kind, const char *json, size_t len)
{
    if (kind == OUT_REPLY && c->reply_room > len && c->state == CS_WS && !c->out.closed &&
        !over_bound(c, kind, len + 1)) {
        out_item *tail = &c->q[(c->qhead + c->qlen - 1) % c->qcap];
        rbuf *b = tail->ref;
        b->data[b->len] = '\n';
        memcpy(b->data + b->len + 1, json, len);
        b->len += len + 1;
        b->data[b->len] = '\0';
        tail->len = (uint32_t)b->len;
        c->out.queued += len + 1;
        c->out.replies += len + 1;
        c->reply_room -= (uint32_t)(len + 1);
        return 0;
    }
    int burst = kind == OUT_REPLY && c->out.kind == SINK_WS && c->qlen &&
                c->q[(c->qhead + c->qlen - 1) % c->qcap].kind == OUT_REPLY;
    size_t cap = burst && len < REPLY_CHUNK ? REPLY_CHUNK : len;
    rbuf *r = rbuf_new(cap);
    if (!r) return -1;
    memcpy(r->data, json, len);
    r->len = len;
    r->data[len] = '\0';
    if (conn_enqueue(c, kind, r, len) != 0) return -1;
    c->reply_room = (uint32_t)(cap - len);
    return 0;
}

/* ---- slow-consumer policies (sink drop_pubs) --------------------------------- */

/* Whether a queued item is a stored pub of like's tenant and channel. */
static int policy_pub(const out_item *it, const pl_pub *like)
{
    const pl_pub *p = it->ref;
    return it->kind == OUT_PUB && p->offset && !strcmp(p->channel, like->channel) &&
           !strcmp(p->tenant, like->tenant);
}

static out_item *qat(conn *c, uint32_t i)
{
    return &c->q[(c->qhead + i) % c->qcap];
}

/* What drop_pubs decided: the oldest n pubs of the channel go, and gap takes
 * the place of the queued item at index at. */
typedef struct policy_cut {
    uint32_t n, at;
    size_t dropped; /* their bytes */
    rbuf *gap;
    int merge; /* gap replaces the subscription's previous gap item (at) */
} policy_cut;

/* Chooses the pubs to drop. The gap grows by a few digits when widened; an
 * upper bound of it (named up to like's offset) is counted against need, so
 * what is freed is never short. 0, or -1 when nothing of the channel is
 * queued or out of memory. */
static int policy_choose(conn *c, const pl_pub *like, size_t need, int all, sink_gap *g,
                         policy_cut *cut, int *skip)
{
    uint32_t first = c->qlen, gi = c->qlen;
    uint64_t from = 0, to = 0;
    for (uint32_t i = 0; i < c->qlen && (first == c->qlen || gi == c->qlen); i++) {
        if (g->item && qat(c, i)->ref == g->item) gi = i;
        if (first == c->qlen && policy_pub(qat(c, i), like)) first = i;
    }
    if (first == c->qlen) return -1;
    uint64_t first_off = ((const pl_pub *)qat(c, first)->ref)->offset;
    /* Still queued ahead of the channel's pubs and contiguous with them:
     * widened instead of a second gap, so gaps never pile up in a queue. */
    cut->merge = gi < first && g->to + 1 == first_off;
    from = cut->merge ? g->from : first_off;
    rbuf *wide = proto_gap_frame(like->channel, like->epoch, from, like->offset);
    if (!wide) return -1;
    size_t old = cut->merge ? qat(c, gi)->len : 0, grow = wide->len - old;
    for (uint32_t i = first; i < c->qlen && (all || cut->dropped < need + grow); i++) {
        out_item *it = qat(c, i);
        if (!policy_pub(it, like)) continue;
        cut->dropped += it->len;
        cut->n++;
        to = ((const pl_pub *)it->ref)->offset;
    }
    *skip = cut->dropped < need + grow;
    cut->at = cut->merge ? gi : first;
    if (*skip) {
        cut->gap = wide; /* names like too: exactly the bound counted */
        to = like->offset;
    } else {
        rbuf_unref(wide);
        cut->gap = proto_gap_frame(like->channel, like->epoch, from, to);
        if (!cut->gap) return -1;
    }
    rbuf_unref(g->item);
    *g = (sink_gap){rbuf_ref(cut->gap), from, to};
    return 0;
}

/* Removes the chosen pubs and puts the gap in place, keeping the order of
 * everything else (items move only towards the head, never over one not
 * yet moved). */
static void policy_cut_apply(conn *c, const pl_pub *like, const policy_cut *cut)
{
    uint32_t j = 0, seen = 0;
    for (uint32_t i = 0; i < c->qlen; i++) {
        out_item it = *qat(c, i);
        if (i == cut->at) {
            if (cut->merge) {
                c->out.queued -= it.len;
                rbuf_unref(it.ref);
            }
            *qat(c, j++) = (out_item){cut->gap, OUT_GAP, (uint32_t)cut->gap->len};
            c->out.queued += cut->gap->len;
        }
        if (policy_pub(&it, like) && seen < cut->n) {
            seen++;
            item_unref(&it);
            continue;
        }
        if (i != cut->at || !cut->merge) *qat(c, j++) = it;
    }
    c->qlen = j;
    c->out.queued -= cut->dropped;
    c->reply_room = 0; /* the tail may have changed */
}

static int conn_drop_pubs(conn *c, const pl_pub *like, size_t need, int all, sink_gap *g, int *skip)
{
    policy_cut cut = {0};
    if (c->out.closed || c->state == CS_CLOSING || !c->qlen) return -1;
    if (policy_choose(c, like, need, all, g, &cut, skip)) return -1;
    policy_cut_apply(c, like, &cut);
    if (!cut.merge) metrics_add(&c->w->metrics, M_GAPS, 1);
    return (int)cut.n + *skip;
}

void conn_close(conn *c, uint16_t code, const char *reason)
{
    conn_close_retry(c, code, reason, 0);
}

void conn_close_retry(conn *c, uint16_t code, const char *reason, int64_t retry_after_ms)
{
    if (c->out.closed || c->state == CS_CLOSING) return;
    c->out.close_code = code;
    if (c->state == CS_WS && !c->ws)
        c->ws = ws_session_new(&conn_ws_callbacks, c, c->w->srv->cfg.limits.max_frame_bytes);
    char retry[40] = "";
    if (retry_after_ms > 0)
        snprintf(retry, sizeof(retry), ",\"retry_after\":%lld", (long long)retry_after_ms);
    if (c->state == CS_WS && c->ws) {
        char buf[256];
        int n =
            snprintf(buf, sizeof(buf),
                     "{\"push\":\"disconnect\",\"code\":%u,\"reason\":\"%s\",\"reconnect\":%s%s}",
                     code, reason, proto_close_reconnect(code) ? "true" : "false", retry);
        conn_send(c, OUT_JSON, buf, (size_t)n);
        c->close_code = code;
        ws_session_close(c->ws, code, reason);
    } else if (c->state == CS_SSE) {
        char buf[256];
        int n = snprintf(buf, sizeof(buf),
                         "event: disconnect\ndata: {\"push\":\"disconnect\",\"code\":%u,\"reason\":"
                         "\"%s\",\"reconnect\":%s%s}\n\n",
                         code, reason, proto_close_reconnect(code) ? "true" : "false", retry);
        rbuf *r = rbuf_from(buf, (size_t)n);
        if (r) conn_enqueue(c, OUT_RAW, r, r->len);
    }
    c->state = CS_CLOSING;
    c->out.closing = 1;
    c->close_after_flush = 1;
    c->deadline_ms = c->w->host.now_ms + CLOSE_GRACE_MS;
    if (c->paused) {
        /* The peer's close frame ends the close; commands read now are
         * ignored (the state is closing). */
        c->paused = 0;
        conn_read_start(c);
    }
    if (!c->qlen && !c->writing) conn_abort(c);
}

/* ---- the sink interface (broker/sink.h) ----------------------------------- */

static conn *conn_of(pl_sink *s)
{
    return (conn *)((char *)s - offsetof(conn, out));
}

static int sink_enqueue_impl(pl_sink *s, enum out_kind kind, void *ref, size_t len)
{
    return conn_enqueue(conn_of(s), kind, ref, len);
}

static int sink_enqueue_pub_impl(pl_sink *s, pl_pub *p)
{
    return conn_enqueue_pub(conn_of(s), p);
}

static int sink_send_json_impl(pl_sink *s, const char *json, size_t len)
{
    return conn_send(conn_of(s), OUT_JSON, json, len);
}

static int sink_send_reply_impl(pl_sink *s, const char *json, size_t len)
{
    return conn_send(conn_of(s), OUT_REPLY, json, len);
}

/* Only WebSocket input is paused: an SSE client sends nothing, and the
 * HTTP phase pauses on its own while a request is answered. */
static void sink_reading_impl(pl_sink *s, int on)
{
    conn *c = conn_of(s);
    if (c->out.closed || c->state != CS_WS || c->paused == !on) return;
    c->paused = (uint8_t)!on;
    if (on)
        conn_read_start(c);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

static int sink_drop_pubs_impl(pl_sink *s, const pl_pub *like, size_t need, int all, sink_gap *g,
                               int *skip)
{
    return conn_drop_pubs(conn_of(s), like, need, all, g, skip);
}

static void sink_close_impl(pl_sink *s, uint16_t code, const char *reason)
{
    conn_close(conn_of(s), code, reason);
}

static void sink_peer_impl(pl_sink *s, char *out, size_t cap)
{
    conn *c = conn_of(s);
    if (c->ip_family && cap)
        inet_ntop(c->ip_family == 6 ? AF_INET6 : AF_INET, c->ip, out, (socklen_t)cap);
}

static const sink_ops conn_sink_ops = {
    .enqueue = sink_enqueue_impl,
    .enqueue_pub = sink_enqueue_pub_impl,
    .send_json = sink_send_json_impl,
    .send_reply = sink_send_reply_impl,
    .reading = sink_reading_impl,
    .drop_pubs = sink_drop_pubs_impl,
    .close = sink_close_impl,
    .peer = sink_peer_impl,
};

static void conn_shutdown(conn *c)
{
    if (c->state == CS_HTTP)
        conn_abort(c);
    else
        conn_close(c, PC_SHUTDOWN, "server shutdown");
}

void conn_tick_all(worker *w)
{
    int64_t now = w->host.now_ms;
    for (conn *c = w->all, *next; c; c = next) {
        next = c->next;
        if (c->out.closed) continue;
        /* The handshake deadline stands until the session connects. */
        if (c->state == CS_WS && c->deadline_ms && c->s && session_connected(c->s))
            c->deadline_ms = 0;
        if (c->deadline_ms && now >= c->deadline_ms) {
            if (c->state == CS_WS)
                conn_close(c, PC_PROTOCOL_VIOLATION, "connect timeout");
            else
                conn_abort(c);
            continue;
        }
        int64_t idle = w->srv->cfg.limits.idle_timeout_ms;
        if (idle && c->out.kind == SINK_WS && c->state == CS_WS && now - c->last_rx_ms >= idle) {
            conn_close(c, PC_NO_PONG, "idle timeout");
            continue;
        }
        if (c->s && session_connected(c->s) && c->state != CS_CLOSING) session_tick(c->s);
        /* An idle connection keeps no queue array. */
        if (!c->qlen && !c->writing && c->q) {
            pl_free(c->q);
            c->q = NULL;
            c->qcap = c->qhead = 0;
        }
    }
}

/* ---- the worker's view ------------------------------------------------------ */

conn *conn_find(worker *w, uint64_t id)
{
    conn *c = map_get(&w->conns, (const char *)&id, sizeof(id));
    return c && !c->out.closed ? c : NULL;
}

session *conn_session(conn *c)
{
    return c->s;
}

void conn_each_session(worker *w, void (*fn)(session *s, void *arg), void *arg)
{
    for (conn *c = w->all, *next; c; c = next) {
        next = c->next;
        if (c->s && !c->out.closed) fn(c->s, arg);
    }
}

void conn_close_all(worker *w, uint16_t code, const char *reason)
{
    for (conn *c = w->all; c; c = c->next)
        if (!c->out.closed) conn_close(c, code, reason);
}

void conn_shutdown_all(worker *w)
{
    for (conn *c = w->all, *next; c; c = next) {
        next = c->next;
        conn_shutdown(c);
    }
}
