/* Client connections; see conn.h. The routes that answer directly live
 * here with the HTTP phase; requests are read by net/http.c. */
#include "net/conn.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "net/http.h"
#include "net/ws.h"
#include "obs/log.h"
#include "proto/api.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/mem.h"
#include "util/origin.h"

#define MAX_WRITE_ITEMS 256
#define CLOSE_GRACE_MS 2000
#define CORS_MAX_AGE_S 600 /* how long a browser may reuse a preflight's answer */

/* ---- outbound queue -------------------------------------------------------- */

typedef struct out_item {
    void *ref; /* pl_pub* or rbuf*, one reference owned by the queue */
    uint32_t kind;
    uint32_t len;
} out_item;

/* ---- connections ------------------------------------------------------------- */

enum conn_state { CS_HTTP, CS_WS, CS_SSE, CS_CLOSING };
enum { DIRTY_QUEUED = 1, DIRTY_GONE = 2 };

typedef struct http_req http_req;

struct conn {
    uv_tcp_t tcp; /* first: handle->data is not needed to find the conn */
    pl_sink out;  /* id, kind (WS or SSE once upgraded), queued bytes, closed */
    worker *w;
    uint8_t state;
    uint8_t writing;
    uint8_t dirty; /* 0, DIRTY_QUEUED or DIRTY_GONE (closed while queued) */
    uint8_t close_after_flush;
    uint8_t ip_family; /* 0 when not counted against max_connections_per_ip */
    uint8_t ip[16];
    uint16_t close_code; /* WebSocket close code once closing was decided */
    http_req *http;      /* only in CS_HTTP */
    ws_session *ws;      /* WebSocket parser; freed while idle (no partial frame) */
    session *s;          /* after a successful connect (WS) or SSE open */
    out_item *q;
    uint32_t qhead, qlen, qcap;
    uint32_t reply_room; /* > 0: the last queued item is a reply buffer with this much room */
    int64_t deadline_ms; /* handshake / close deadline; 0 = none */
    int64_t last_rx_ms;  /* last bytes from the peer (idle_timeout) */
    conn *dirty_next;
    conn *prev, *next; /* worker's list of all connections */
};

static const sink_ops conn_sink_ops;
static int conn_enqueue(conn *c, enum out_kind kind, void *ref, size_t len);
static int conn_enqueue_pub(conn *c, pl_pub *p);
static int conn_send_json(conn *c, const char *json, size_t len);
static void conn_abort(conn *c);

/* ======================================================================
 * HTTP phase
 * ====================================================================== */

/* The HTTP phase of a connection: the request reader, and what the
 * connection holds while an API request waits for the engine. */
struct http_req {
    http_request *rq;
    sbuf stash; /* bytes received while an API request waits for the engine */
    int keep_alive;
    int pending;               /* an API request is being answered asynchronously */
    int vary;                  /* the next answer carries Vary: Origin (a CORS path) ... */
    char cors[ORIGIN_MAX + 1]; /* ... and, when not "", Access-Control-Allow-Origin */
};

static http_req *conn_http_new(conn *c)
{
    http_req *h = pl_calloc(1, sizeof(*h));
    if (!h) return NULL;
    h->rq = http_request_new(c->w->srv->cfg.limits.max_body_bytes);
    if (!h->rq) {
        pl_free(h);
        return NULL;
    }
    return h;
}

static void conn_http_free(http_req *h)
{
    if (!h) return;
    http_request_free(h->rq);
    sbuf_release(&h->stash);
    pl_free(h);
}

/* Ends the head in b with Connection and the blank line, appends the body
 * and queues it all; closes after it unless kept alive. Releases b. */
static void send_head(conn *c, sbuf *b, int keep_alive, const char *body, size_t blen)
{
    sbuf_printf(b, "Connection: %s\r\n\r\n", keep_alive ? "keep-alive" : "close");
    sbuf_append(b, body, blen);
    rbuf *r = sbuf_to_rbuf(b);
    sbuf_release(b);
    if (r) conn_enqueue(c, OUT_RAW, r, r->len);
    if (!keep_alive) {
        c->close_after_flush = 1;
        c->state = CS_CLOSING;
        c->out.closing = 1;
        c->deadline_ms = c->w->host.now_ms + CLOSE_GRACE_MS;
    }
}

/* The CORS headers of the answer to a request on a CORS path (see
 * cors_prepare), once: they belong to that one answer. */
static void cors_headers(http_req *h, sbuf *b)
{
    if (!h || !h->vary) return;
    if (h->cors[0]) sbuf_printf(b, "Access-Control-Allow-Origin: %s\r\n", h->cors);
    sbuf_puts(b, "Vary: Origin\r\n");
    h->vary = 0;
    h->cors[0] = '\0';
}

/* retry_after_ms > 0 adds Retry-After, in whole seconds rounded up, as
 * every 429 carries (beside retry_after in milliseconds in the body). */
static void respond(conn *c, int status, const char *reason, const char *ctype, const char *body,
                    size_t blen, int keep_alive, int64_t retry_after_ms)
{
    sbuf b;
    sbuf_init(&b);
    sbuf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status, reason,
                ctype, blen);
    if (retry_after_ms > 0)
        sbuf_printf(&b, "Retry-After: %lld\r\n", (long long)((retry_after_ms + 999) / 1000));
    cors_headers(c->http, &b);
    sbuf_printf(&b, "Cache-Control: no-store\r\n");
    send_head(c, &b, keep_alive, body, blen);
}

/* Errors of the HTTP phase, closing the connection. A 429 (too many
 * connections from one address) says when to try again: in a second, when
 * another connection may have gone. */
static void respond_error(conn *c, int status, const char *reason, int code, const char *msg)
{
    char body[256];
    int64_t retry_ms = status == 429 ? 1000 : 0;
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":%d,\"message\":\"%s\",\"temporary\":%s%s}}", code, msg,
                     retry_ms ? "true" : "false", retry_ms ? ",\"retry_after\":1000" : "");
    respond(c, status, reason, "application/json", body, (size_t)n, 0, retry_ms);
}

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
    if (!c->qlen && !c->writing) conn_abort(c);
}

static const ws_callbacks ws_cbs = {
    .on_text = ws_on_text,
    .send = ws_send,
    .on_closed = ws_on_closed,
};

static void upgrade_ws(conn *c, http_req *h)
{
    server *srv = c->w->srv;
    ws_handshake hs;
    hs.upgrade = http_header(h->rq, HTTP_H_UPGRADE, &hs.upgrade_len);
    hs.connection = http_header(h->rq, HTTP_H_CONNECTION, &hs.connection_len);
    hs.version = http_header(h->rq, HTTP_H_WS_VERSION, &hs.version_len);
    hs.key = http_header(h->rq, HTTP_H_WS_KEY, &hs.key_len);
    int status = ws_handshake_check(&hs);
    if (status) {
        respond_error(c, status, status == 426 ? "Upgrade Required" : "Bad Request", PE_BAD_REQUEST,
                      "invalid websocket upgrade");
        return;
    }
    size_t plen;
    const char *offer = http_header(h->rq, HTTP_H_WS_PROTOCOL, &plen);
    int proto = ws_offers_subprotocol(offer, plen);
    c->ws = ws_session_new(&ws_cbs, c, srv->cfg.limits.max_frame_bytes);
    c->s = c->ws ? session_new(&c->w->host, &c->out) : NULL;
    if (!c->s) {
        respond_error(c, 503, "Service Unavailable", PE_INTERNAL, "out of memory");
        return;
    }
    sbuf b;
    sbuf_init(&b);
    ws_handshake_write_101(&b, hs.key, hs.key_len, proto);
    rbuf *r = sbuf_to_rbuf(&b);
    sbuf_release(&b);
    if (r) conn_enqueue(c, OUT_RAW, r, r->len);
    c->state = CS_WS;
    c->out.kind = SINK_WS;
    c->deadline_ms = c->w->host.now_ms + srv->cfg.limits.handshake_timeout_ms;
    metrics_add(&c->w->metrics, M_WS_OPENED, 1);
}

static int path_is(const http_request *rq, const char *path)
{
    size_t n;
    const char *p = http_path(rq, &n);
    return n == strlen(path) && !memcmp(p, path, n);
}

/* /metrics names every tenant and its traffic: with metrics_token set, only
 * a request bearing it gets them (compared in constant time). */
static int metrics_allowed(const server *srv, const http_request *rq)
{
    const char *want = srv->cfg.metrics_token;
    if (!want) return 1;
    size_t alen, wlen = strlen(want);
    const char *auth = http_header(rq, HTTP_H_AUTHORIZATION, &alen);
    return auth && alen == wlen + 7 && !strncasecmp(auth, "Bearer ", 7) &&
           CRYPTO_memcmp(auth + 7, want, wlen) == 0;
}

/* 1 when the request may go on: it sends no Origin (no browser sent it: the
 * CLI, backends, native clients) or one that allowed_origins lists. */
static int origin_ok(const server *srv, const http_request *rq)
{
    size_t n;
    const char *o = http_header(rq, HTTP_H_ORIGIN, &n);
    return !o || origin_allowed(srv->cfg.allowed_origins, srv->cfg.n_allowed_origins, o, n);
}

/* A request on a CORS path (the API and /sse): its answer varies with the
 * Origin and, for an allowed one, names it so that the page may read it. */
static void cors_prepare(conn *c, http_req *h)
{
    size_t n;
    const char *o = http_header(h->rq, HTTP_H_ORIGIN, &n);
    h->vary = 1;
    h->cors[0] = '\0';
    if (!o || n > ORIGIN_MAX || !origin_ok(c->w->srv, h->rq)) return;
    memcpy(h->cors, o, n);
    h->cors[n] = '\0';
}

static void refuse_origin(conn *c)
{
    respond_error(c, 403, "Forbidden", PE_PERMISSION_DENIED, "origin not allowed");
}

/* OPTIONS on a CORS path: a browser asks whether it may send the request.
 * Without an Origin it is no preflight; the answer just lists the methods. */
static int preflight(conn *c, http_req *h, const char *method, int keep)
{
    if (!origin_ok(c->w->srv, h->rq)) {
        refuse_origin(c);
        return 1;
    }
    cors_prepare(c, h);
    sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "HTTP/1.1 204 No Content\r\n");
    if (h->cors[0])
        sbuf_printf(&b,
                    "Access-Control-Allow-Methods: %s\r\n"
                    "Access-Control-Allow-Headers: Authorization, Content-Type, Last-Event-ID\r\n"
                    "Access-Control-Max-Age: %d\r\n",
                    method, CORS_MAX_AGE_S);
    else
        sbuf_printf(&b, "Allow: OPTIONS, %s\r\n", method);
    cors_headers(h, &b);
    send_head(c, &b, keep, "", 0);
    return !keep;
}

/* GET /sse: refused before the stream starts when the Origin is not
 * allowed; the stream's head and its errors carry the CORS headers. */
static void open_sse(conn *c, http_req *h, const char *url, size_t ulen)
{
    if (!origin_ok(c->w->srv, h->rq)) {
        refuse_origin(c);
        return;
    }
    cors_prepare(c, h);
    char extra[ORIGIN_MAX + 64];
    snprintf(extra, sizeof(extra), "%s%s%sVary: Origin\r\n",
             h->cors[0] ? "Access-Control-Allow-Origin: " : "", h->cors, h->cors[0] ? "\r\n" : "");
    size_t llen;
    const char *lei = http_header(h->rq, HTTP_H_LAST_EVENT_ID, &llen);
    const char *why = NULL;
    int st = 0;
    c->s = session_sse_open(&c->w->host, &c->out, url, ulen, llen ? lei : NULL, extra, &st, &why);
    if (!c->s) {
        respond_error(c, st,
                      st == 401   ? "Unauthorized"
                      : st == 403 ? "Forbidden"
                      : st == 404 ? "Not Found"
                                  : "Bad Request",
                      st == 401   ? PE_UNAUTHORIZED
                      : st == 403 ? PE_PERMISSION_DENIED
                      : st == 404 ? PE_UNKNOWN_CHANNEL
                                  : PE_BAD_REQUEST,
                      why);
        return;
    }
    h->vary = 0;
    c->state = CS_SSE;
    c->out.kind = SINK_SSE;
    c->deadline_ms = 0;
    metrics_add(&c->w->metrics, M_SSE_OPENED, 1);
}

/* Routes one complete request. Returns 1 when the connection left the HTTP
 * phase (upgraded or closing). */
static int route(conn *c, http_req *h)
{
    server *srv = c->w->srv;
    int keep = http_keep_alive(h->rq);
    int get = http_method_of(h->rq) == HTTP_GET;
    size_t ulen;
    const char *url = http_url(h->rq, &ulen);
    metrics_add(&c->w->metrics, M_HTTP_REQUESTS, 1);
    int api = ulen > 8 && !memcmp(url, "/api/v1/", 8), sse = path_is(h->rq, "/sse");
    if (http_method_of(h->rq) == HTTP_OPTIONS && (api || sse))
        return preflight(c, h, api ? "POST" : "GET", keep);
    if (get && path_is(h->rq, "/ws")) {
        if (!origin_ok(srv, h->rq)) {
            refuse_origin(c); /* before the upgrade: a page elsewhere gets no socket */
            return 1;
        }
        if (!http_upgrade(h->rq)) {
            respond_error(c, 426, "Upgrade Required", PE_BAD_REQUEST, "websocket upgrade required");
            return 1;
        }
        upgrade_ws(c, h);
        return 1;
    }
    if (get && sse) {
        open_sse(c, h, url, ulen);
        return 1;
    }
    if (http_method_of(h->rq) == HTTP_POST && api) {
        cors_prepare(c, h);
        const char *phrase, *why;
        if (http_error(h->rq, &phrase, &why) == 413) {
            respond_error(c, 413, phrase, PE_LIMIT_EXCEEDED, why);
            return 1;
        }
        const char *m = url + 8;
        const char *q = memchr(m, '?', ulen - 8);
        size_t mlen = q ? (size_t)(q - m) : ulen - 8;
        size_t blen, alen;
        const char *body = http_body(h->rq, &blen);
        const char *auth = http_header(h->rq, HTTP_H_AUTHORIZATION, &alen);
        h->keep_alive = keep;
        char peer[64];
        sink_peer(&c->out, peer, sizeof(peer));
        h->pending = api_handle(&c->w->host, c->out.id, peer, m, mlen, body, blen, auth, alen);
        return c->state != CS_HTTP;
    }
    if (get && path_is(h->rq, "/healthz")) {
        respond(c, 200, "OK", "text/plain", "ok\n", 3, keep, 0);
    } else if (get && path_is(h->rq, "/readyz")) {
        /* Ready: started, and the engine can still store (engine_healthy). */
        if (atomic_load(&srv->ready) && engine_healthy(srv->ps.eng))
            respond(c, 200, "OK", "text/plain", "ready\n", 6, keep, 0);
        else
            respond(c, 503, "Service Unavailable", "text/plain", "not ready\n", 10, keep, 0);
    } else if (get && path_is(h->rq, "/metrics") && !metrics_allowed(srv, h->rq)) {
        respond_error(c, 401, "Unauthorized", PE_UNAUTHORIZED, "metrics_token required");
        return 1;
    } else if (get && path_is(h->rq, "/metrics")) {
        sbuf m;
        sbuf_init(&m);
        server_render_metrics(srv, &m);
        respond(c, 200, "OK", "text/plain; version=0.0.4", m.data ? m.data : "", m.len, keep, 0);
        sbuf_release(&m);
    } else {
        respond_error(c, 404, "Not Found", PE_UNKNOWN_CHANNEL, "no such endpoint");
        return 1;
    }
    return !keep;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);

static void conn_http_read(conn *c, const char *data, size_t len)
{
    while (len && c->state == CS_HTTP && c->http) {
        http_req *h = c->http;
        size_t n;
        int st = http_feed(h->rq, data, len, &n);
        if (st != PL_OK && st != PL_AGAIN) {
            const char *phrase, *why;
            int status = http_error(h->rq, &phrase, &why);
            respond_error(c, status, phrase, status == 503 ? PE_INTERNAL : PE_BAD_REQUEST, why);
            return;
        }
        data += n;
        len -= n;
        if (st == PL_AGAIN) return; /* need more bytes */
        int left = route(c, h);
        if (h->pending) {
            /* Answered later by conn_http_respond; keep what the client
             * pipelined meanwhile. */
            sbuf_append(&h->stash, data, len);
            uv_read_stop((uv_stream_t *)&c->tcp);
            return;
        }
        if (c->state == CS_WS) {
            conn_http_free(c->http);
            c->http = NULL;
            if (len) on_read((uv_stream_t *)&c->tcp, (ssize_t)len, &(uv_buf_t){(char *)data, len});
            return;
        }
        if (left || c->state != CS_HTTP) return;
        http_next(h->rq);
        /* A kept-alive connection gets a fresh deadline for its next request. */
        c->deadline_ms = c->w->host.now_ms + c->w->srv->cfg.limits.handshake_timeout_ms;
    }
}

void conn_http_respond(conn *c, int status, const char *body, size_t len, int64_t retry_after_ms)
{
    http_req *h = c->http;
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {{200, "OK"},
                   {400, "Bad Request"},
                   {401, "Unauthorized"},
                   {403, "Forbidden"},
                   {404, "Not Found"},
                   {413, "Payload Too Large"},
                   {429, "Too Many Requests"},
                   {500, "Internal Server Error"},
                   {503, "Service Unavailable"}};
    const char *reason = "Error";
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status) reason = reasons[i].reason;
    if (!h || c->out.closed) return;
    respond(c, status, reason, "application/json", body, len, h->keep_alive, retry_after_ms);
    if (!h->pending) return; /* answered inside route(): conn_http_read goes on */
    h->pending = 0;
    if (c->state != CS_HTTP) return;
    sbuf stash = h->stash;
    sbuf_init(&h->stash);
    http_next(h->rq);
    c->deadline_ms = c->w->host.now_ms + c->w->srv->cfg.limits.handshake_timeout_ms;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (stash.len) conn_http_read(c, stash.data, stash.len);
    sbuf_release(&stash);
}

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
        if (!c->ws && !(c->ws = ws_session_new(&ws_cbs, c, w->srv->cfg.limits.max_frame_bytes))) {
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
    } else if (ss.ss_family == AF_INET6) {
        memcpy(c->ip, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        c->ip_family = 6;
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
        respond_error(c, 429, "Too Many Requests", PE_TOO_MANY_REQUESTS,
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

static void conn_abort(conn *c)
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
    wr->bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        wr->items[i] = c->q[c->qhead];
        c->qhead = (c->qhead + 1) % c->qcap;
        wr->bytes += wr->items[i].len;
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
    /* Answers go out between rounds: after the round that carries a
     * publisher's pubs, so the publisher cannot run ahead of its
     * subscribers (that order is the backpressure), but never held back by
     * pacing. */
    if (!w->round_last) conn_flush_urgent(w);
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
        item_unref(it);
    }
    c->qlen = 0;
    c->reply_room = 0;
    conn_close(c, PC_SLOW_CONSUMER, "slow consumer");
}

static int conn_enqueue(conn *c, enum out_kind kind, void *ref, size_t len)
{
    out_item it = {ref, kind, (uint32_t)len};
    if (c->out.closed || (kind != OUT_RAW && c->state == CS_CLOSING)) goto drop;
    if (kind != OUT_RAW && c->out.queued + len > c->w->srv->cfg.limits.outbound_queue_bytes) {
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

static int conn_send_json(conn *c, const char *json, size_t len)
{
    if (c->reply_room > len && c->state == CS_WS && !c->out.closed &&
        c->out.queued + len + 1 <= c->w->srv->cfg.limits.outbound_queue_bytes) {
        out_item *tail = &c->q[(c->qhead + c->qlen - 1) % c->qcap];
        rbuf *b = tail->ref;
        b->data[b->len] = '\n';
        memcpy(b->data + b->len + 1, json, len);
        b->len += len + 1;
        b->data[b->len] = '\0';
        tail->len = (uint32_t)b->len;
        c->out.queued += len + 1;
        c->reply_room -= (uint32_t)(len + 1);
        return 0;
    }
    int burst = c->out.kind == SINK_WS && c->qlen &&
                c->q[(c->qhead + c->qlen - 1) % c->qcap].kind == OUT_JSON;
    size_t cap = burst && len < REPLY_CHUNK ? REPLY_CHUNK : len;
    rbuf *r = rbuf_new(cap);
    if (!r) return -1;
    memcpy(r->data, json, len);
    r->len = len;
    r->data[len] = '\0';
    if (conn_enqueue(c, OUT_JSON, r, len) != 0) return -1;
    c->reply_room = (uint32_t)(cap - len);
    return 0;
}

void conn_close(conn *c, uint16_t code, const char *reason)
{
    if (c->out.closed || c->state == CS_CLOSING) return;
    if (c->state == CS_WS && !c->ws)
        c->ws = ws_session_new(&ws_cbs, c, c->w->srv->cfg.limits.max_frame_bytes);
    if (c->state == CS_WS && c->ws) {
        char buf[256];
        int n = snprintf(buf, sizeof(buf),
                         "{\"push\":\"disconnect\",\"code\":%u,\"reason\":\"%s\",\"reconnect\":%s}",
                         code, reason, proto_close_reconnect(code) ? "true" : "false");
        conn_send_json(c, buf, (size_t)n);
        c->close_code = code;
        ws_session_close(c->ws, code, reason);
    } else if (c->state == CS_SSE) {
        char buf[256];
        int n = snprintf(buf, sizeof(buf),
                         "event: disconnect\ndata: {\"push\":\"disconnect\",\"code\":%u,\"reason\":"
                         "\"%s\",\"reconnect\":%s}\n\n",
                         code, reason, proto_close_reconnect(code) ? "true" : "false");
        rbuf *r = rbuf_from(buf, (size_t)n);
        if (r) conn_enqueue(c, OUT_RAW, r, r->len);
    }
    c->state = CS_CLOSING;
    c->out.closing = 1;
    c->close_after_flush = 1;
    c->deadline_ms = c->w->host.now_ms + CLOSE_GRACE_MS;
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
    return conn_send_json(conn_of(s), json, len);
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
