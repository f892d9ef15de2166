/* The HTTP phase of a connection: requests read by net/http.c are routed
 * here (health, readiness, metrics, the server API, inbound webhooks, the
 * WebSocket and SSE upgrades) and answered, with CORS for the paths browsers
 * call. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "net/conn_int.h"
#include "net/http.h"
#include "net/web.h"
#include "obs/log.h"
#include "proto/api.h"
#include "proto/inbound.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/mem.h"
#include "util/origin.h"

#define CORS_MAX_AGE_S 600 /* how long a browser may reuse a preflight's answer */
/* The longest retry_after a connect refusal names: past it the backlog of
 * refused clients is so long that more precision helps no one. */
#define CONNECT_RETRY_MAX_MS 60000

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

http_req *conn_http_new(conn *c)
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

void conn_http_free(http_req *h)
{
    if (!h) return;
    http_request_free(h->rq);
    sbuf_release(&h->stash);
    pl_free(h);
}

/* Ends the head in b with Connection and the blank line, appends the body
 * and queues it all, then tail when not NULL (a shared buffer: takes the
 * reference); closes after it unless kept alive. Releases b. */
static void send_head_tail(conn *c, sbuf *b, int keep_alive, const char *body, size_t blen,
                           rbuf *tail)
{
    sbuf_printf(b, "Connection: %s\r\n\r\n", keep_alive ? "keep-alive" : "close");
    sbuf_append(b, body, blen);
    rbuf *r = sbuf_to_rbuf(b);
    sbuf_release(b);
    if (!r) { /* a body without its head would desynchronize the client: close */
        rbuf_unref(tail);
        tail = NULL;
        keep_alive = 0;
    }
    if (r) conn_enqueue(c, OUT_RAW, r, r->len);
    if (tail) conn_enqueue(c, OUT_RAW, tail, tail->len);
    if (!keep_alive) {
        c->close_after_flush = 1;
        c->state = CS_CLOSING;
        c->out.closing = 1;
        c->deadline_ms = c->w->host.now_ms + CLOSE_GRACE_MS;
    }
}

static void send_head(conn *c, sbuf *b, int keep_alive, const char *body, size_t blen)
{
    send_head_tail(c, b, keep_alive, body, blen, NULL);
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
void conn_respond_error(conn *c, int status, const char *reason, int code, const char *msg)
{
    char body[256];
    int64_t retry_ms = status == 429 ? 1000 : 0;
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":%d,\"message\":\"%s\",\"temporary\":%s%s}}", code, msg,
                     retry_ms ? "true" : "false", retry_ms ? ",\"retry_after\":1000" : "");
    respond(c, status, reason, "application/json", body, (size_t)n, 0, retry_ms);
}

/* 0 when limits.connects_per_second admits one more WebSocket or SSE open
 * (one bucket for the whole server, in the shared limits table), else the
 * retry_after (ms) to tell the refused client, its own slot in the backlog
 * of refused ones (see rl_backlog_slot); each refusal is counted. */
static int64_t connect_admit(conn *c)
{
    server *srv = c->w->srv;
    const cfg_limits *l = &srv->cfg.limits;
    if (!l->connects_per_second) return 0;
    int64_t now = clock_mono_us();
    int64_t wait =
        rl_table_take(srv->ps.limits, "connect", l->connects_per_second, l->connect_burst, now, 1);
    if (!wait) return 0;
    metrics_add(&c->w->metrics, M_SHED_CONNECT, 1);
    return rl_backlog_slot(&srv->connect_backlog, l->connects_per_second, wait, now,
                           CONNECT_RETRY_MAX_MS, c->out.id);
}

/* Writes the 101 and leaves the HTTP phase for the WebSocket one. */
static void ws_accept(conn *c, const ws_handshake *hs, int proto)
{
    sbuf b;
    sbuf_init(&b);
    ws_handshake_write_101(&b, hs->key, hs->key_len, proto);
    rbuf *r = sbuf_to_rbuf(&b);
    sbuf_release(&b);
    if (r) conn_enqueue(c, OUT_RAW, r, r->len);
    c->state = CS_WS;
    c->out.kind = SINK_WS;
    metrics_add(&c->w->metrics, M_WS_OPENED, 1);
}

/* A refused open still gets its upgrade: a WebSocket client reads a close
 * code and its disconnect push (with when to come back), where an HTTP
 * status before the upgrade would reach most client libraries as an opaque
 * handshake failure. No session: nothing the client sends is read. */
static void refuse_ws(conn *c, const ws_handshake *hs, int proto, int64_t retry_ms)
{
    c->ws = ws_session_new(&conn_ws_callbacks, c, c->w->srv->cfg.limits.max_frame_bytes);
    if (!c->ws) {
        conn_respond_error(c, 503, "Service Unavailable", PE_INTERNAL, "out of memory");
        return;
    }
    ws_accept(c, hs, proto);
    conn_close_retry(c, PC_OVERLOADED, "too many connects, retry later", retry_ms);
}

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
        conn_respond_error(c, status, status == 426 ? "Upgrade Required" : "Bad Request",
                           PE_BAD_REQUEST, "invalid websocket upgrade");
        return;
    }
    size_t plen;
    const char *offer = http_header(h->rq, HTTP_H_WS_PROTOCOL, &plen);
    int proto = ws_offers_subprotocol(offer, plen);
    int64_t retry_ms = connect_admit(c);
    if (retry_ms) {
        refuse_ws(c, &hs, proto, retry_ms);
        return;
    }
    c->ws = ws_session_new(&conn_ws_callbacks, c, srv->cfg.limits.max_frame_bytes);
    c->s = c->ws ? session_new(&c->w->host, &c->out) : NULL;
    if (!c->s) {
        conn_respond_error(c, 503, "Service Unavailable", PE_INTERNAL, "out of memory");
        return;
    }
    ws_accept(c, &hs, proto);
    c->deadline_ms = c->w->host.now_ms + srv->cfg.limits.handshake_timeout_ms;
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
    conn_respond_error(c, 403, "Forbidden", PE_PERMISSION_DENIED, "origin not allowed");
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

/* An SSE open over limits.connects_per_second: 503 with error 114, its
 * retry_after (ms) and Retry-After (s), with the CORS headers of /sse. */
static void refuse_sse(conn *c, int64_t retry_ms)
{
    sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"error\":");
    proto_error_json_code_retry(&b, PE_OVERLOADED, "too many connects, retry later", retry_ms);
    sbuf_putc(&b, '}');
    respond(c, proto_error_http_status(PE_OVERLOADED), "Service Unavailable", "application/json",
            b.data ? b.data : "", b.len, 0, retry_ms);
    sbuf_release(&b);
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
    int64_t retry_ms = connect_admit(c);
    if (retry_ms) {
        refuse_sse(c, retry_ms);
        return;
    }
    char extra[ORIGIN_MAX + 64];
    snprintf(extra, sizeof(extra), "%s%s%sVary: Origin\r\n",
             h->cors[0] ? "Access-Control-Allow-Origin: " : "", h->cors, h->cors[0] ? "\r\n" : "");
    size_t llen;
    const char *lei = http_header(h->rq, HTTP_H_LAST_EVENT_ID, &llen);
    const char *why = NULL;
    int st = 0;
    c->s = session_sse_open(&c->w->host, &c->out, url, ulen, llen ? lei : NULL, extra, &st, &why);
    if (!c->s) {
        conn_respond_error(c, st,
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

static const char *header_by_name(void *ctx, const char *name, size_t *len)
{
    return http_header_named(ctx, name, len);
}

#define HOOKS_PREFIX "/hooks/in/"

/* /hooks/in/<source>: senders are servers, not browsers, so no CORS; only
 * POST (405 with Allow otherwise). The body limit is the API's. */
static int inbound_route(conn *c, http_req *h, int keep)
{
    if (http_method_of(h->rq) != HTTP_POST) {
        sbuf body, b;
        sbuf_init(&body);
        sbuf_init(&b);
        sbuf_puts(&body, "{\"error\":");
        proto_error_json(&body, PE_BAD_REQUEST, "method not allowed (POST only)");
        sbuf_putc(&body, '}');
        sbuf_printf(&b,
                    "HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\nContent-Type: "
                    "application/json\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n",
                    body.len);
        send_head(c, &b, keep, body.data ? body.data : "", body.len);
        sbuf_release(&body);
        return !keep;
    }
    size_t plen, blen;
    const char *path = http_path(h->rq, &plen);
    char peer[64];
    sink_peer(&c->out, peer, sizeof(peer));
    inbound_request rq = {
        .source = path + strlen(HOOKS_PREFIX),
        .source_len = plen - strlen(HOOKS_PREFIX),
        .body_too_large = http_error(h->rq, NULL, NULL) == 413,
        .header = header_by_name,
        .header_ctx = h->rq,
        .peer = peer,
    };
    rq.body = http_body(h->rq, &blen);
    rq.body_len = blen;
    /* A cut body leaves the stream in sync, but the answer closes like the API's 413. */
    h->keep_alive = keep && !rq.body_too_large;
    h->pending = inbound_handle(&c->w->host, c->out.id, &rq);
    return c->state != CS_HTTP || !h->keep_alive;
}

/* POST /dev/token, in development mode only: a short-lived token for the
 * user the body names, so the demo can log in by name. */
static int dev_token(conn *c, http_req *h, int keep)
{
    const char *phrase, *why;
    if (http_error(h->rq, &phrase, &why) == 413) {
        conn_respond_error(c, 413, phrase, PE_LIMIT_EXCEEDED, why);
        return 1;
    }
    size_t blen;
    const char *body = http_body(h->rq, &blen);
    h->keep_alive = keep;
    h->pending = api_dev_token(&c->w->host, c->out.id, body, blen);
    return c->state != CS_HTTP;
}

/* The web app's pages send no inline script or style and load nothing from
 * elsewhere: this policy makes an injected <script> inert. */
#define WEB_CSP                                                                                    \
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "                \
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "           \
    "form-action 'self'"

/* GET or HEAD of a file of the web root (405 otherwise), from memory: gzip
 * when the client takes it, 304 when If-None-Match names its ETag. Range is
 * ignored: the whole file is the answer, as RFC 9110 allows. */
static int serve_web(conn *c, http_req *h, int keep)
{
    enum http_method m = http_method_of(h->rq);
    if (m != HTTP_GET && m != HTTP_HEAD) {
        sbuf b;
        sbuf_init(&b);
        sbuf_puts(&b, "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"
                      "Content-Length: 0\r\nCache-Control: no-store\r\n");
        send_head(c, &b, keep, "", 0);
        return !keep;
    }
    size_t plen, alen, ilen;
    const char *path = http_path(h->rq, &plen);
    const char *ae = http_header_named(h->rq, "Accept-Encoding", &alen);
    web_file f;
    switch (web_find(c->w->srv->web, path, plen, web_accepts_gzip(ae, alen), &f)) {
    case WEB_BAD_PATH:
        conn_respond_error(c, 400, "Bad Request", PE_BAD_REQUEST,
                           "malformed path: bad escape, control byte, or empty, . or .. segment");
        return 1;
    case WEB_NOT_FOUND:
        conn_respond_error(c, 404, "Not Found", PE_NOT_FOUND, "no such file");
        return 1;
    case WEB_FOUND:
        break;
    }
    const char *inm = http_header_named(h->rq, "If-None-Match", &ilen);
    int fresh = web_etag_match(inm, ilen, f.etag);
    sbuf b;
    sbuf_init(&b);
    if (fresh)
        sbuf_puts(&b, "HTTP/1.1 304 Not Modified\r\n");
    else
        sbuf_printf(&b, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s", f.type,
                    f.body->len, f.gzip ? "Content-Encoding: gzip\r\n" : "");
    sbuf_printf(&b,
                "ETag: %s\r\nCache-Control: no-cache\r\nVary: Accept-Encoding\r\n"
                "Content-Security-Policy: " WEB_CSP "\r\nX-Content-Type-Options: nosniff\r\n"
                "Referrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n",
                f.etag);
    send_head_tail(c, &b, keep, "", 0, fresh || m == HTTP_HEAD ? NULL : rbuf_ref(f.body));
    return !keep;
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
            conn_respond_error(c, 426, "Upgrade Required", PE_BAD_REQUEST,
                               "websocket upgrade required");
            return 1;
        }
        upgrade_ws(c, h);
        return 1;
    }
    if (get && sse) {
        open_sse(c, h, url, ulen);
        return 1;
    }
    size_t plen;
    const char *path = http_path(h->rq, &plen);
    if (plen > strlen(HOOKS_PREFIX) && !memcmp(path, HOOKS_PREFIX, strlen(HOOKS_PREFIX)))
        return inbound_route(c, h, keep);
    if (http_method_of(h->rq) == HTTP_POST && srv->dev_secret && path_is(h->rq, "/dev/token"))
        return dev_token(c, h, keep);
    if (http_method_of(h->rq) == HTTP_POST && api) {
        cors_prepare(c, h);
        const char *phrase, *why;
        if (http_error(h->rq, &phrase, &why) == 413) {
            conn_respond_error(c, 413, phrase, PE_LIMIT_EXCEEDED, why);
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
        conn_respond_error(c, 401, "Unauthorized", PE_UNAUTHORIZED, "metrics_token required");
        return 1;
    } else if (get && path_is(h->rq, "/metrics")) {
        sbuf m;
        sbuf_init(&m);
        server_render_metrics(srv, &m);
        respond(c, 200, "OK", "text/plain; version=0.0.4", m.data ? m.data : "", m.len, keep, 0);
        sbuf_release(&m);
    } else if (srv->web) {
        return serve_web(c, h, keep);
    } else {
        conn_respond_error(c, 404, "Not Found", PE_UNKNOWN_CHANNEL, "no such endpoint");
        return 1;
    }
    return !keep;
}
void conn_http_read(conn *c, const char *data, size_t len)
{
    while (len && c->state == CS_HTTP && c->http) {
        http_req *h = c->http;
        size_t n;
        int st = http_feed(h->rq, data, len, &n);
        if (st != PL_OK && st != PL_AGAIN) {
            const char *phrase, *why;
            int status = http_error(h->rq, &phrase, &why);
            conn_respond_error(c, status, phrase, status == 503 ? PE_INTERNAL : PE_BAD_REQUEST,
                               why);
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
            if (len) conn_feed(c, data, len);
            return;
        }
        if (left || c->state != CS_HTTP) return;
        http_next(h->rq);
        /* A kept-alive connection gets a fresh deadline for its next request. */
        c->deadline_ms = c->w->host.now_ms + c->w->srv->cfg.limits.handshake_timeout_ms;
    }
}

pl_sink *conn_http_stream(conn *c, const char *head, size_t len)
{
    http_req *h = c->http;
    if (!h || c->out.closed || c->state != CS_HTTP) return NULL;
    sbuf b;
    sbuf_init(&b);
    sbuf_append(&b, head, len);
    cors_headers(h, &b);
    sbuf_puts(&b, "Connection: keep-alive\r\n\r\n");
    rbuf *r = sbuf_to_rbuf(&b);
    sbuf_release(&b);
    if (!r) return NULL;
    conn_enqueue(c, OUT_RAW, r, r->len);
    /* An SSE stream without a session: only raw events are queued on it. */
    c->state = CS_SSE;
    c->out.kind = SINK_SSE;
    c->streaming = 1;
    c->deadline_ms = 0;
    metrics_add(&c->w->metrics, M_SSE_OPENED, 1);
    return &c->out;
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
                   {409, "Conflict"},
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
    conn_read_start(c);
    if (stash.len) conn_http_read(c, stash.data, stash.len);
    sbuf_release(&stash);
}
