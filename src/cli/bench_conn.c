/* libuv WebSocket client connection for the bench. Incoming frames go
 * through bench_ws_read, which hands a frame that arrived whole over where
 * it lies in the read buffer (wslay's frame layer copied every frame into
 * its own buffer first: 9% of the client's core at 2 M deliveries/s). Reads share one buffer per
 * loop (every byte is consumed inside the read callback); outgoing frames are appended to a
 * per-connection buffer and flushed in a uv_prepare handle (just before the
 * loop polls, so output queued by timers goes out in the same iteration),
 * trying a direct write first and queueing only what the kernel refused. */
#include "cli/bench_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/rand.h>

#include "cli/bench_ws.h"
#include "net/ws.h"
#include "util/mem.h"
#include "util/sbuf.h"
#include "util/status.h"

#define READ_BUF (256 * 1024)

enum conn_state { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING };

struct bench_net {
    uv_loop_t *loop;
    uv_prepare_t flusher;
    char *rbuf;
    bench_conn *dirty; /* connections with queued output, linked by next_dirty */
    size_t live;
    uint64_t rng; /* xorshift state for frame masks */
};

struct bench_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    bench_net *net;
    bench_conn_cb cb;
    void *ud;
    enum conn_state state;
    char key[25];
    char *host, *path, *protocol;
    int port;
    sbuf hs;  /* handshake response bytes until the header block is complete */
    sbuf out; /* frames not yet handed to the kernel */
    bench_ws_reader rd;
    size_t pending; /* bytes in uv_write requests in flight */
    bench_conn *next_dirty;
    int dirty;
    const char *error;
    int ws_code;
};

typedef struct wreq {
    uv_write_t req;
    bench_conn *c;
    size_t len;
    char data[];
} wreq;

static void flush_conn(bench_conn *c);

/* ------------------------------------------------------------------ closing */

static void unlink_dirty(bench_conn *c)
{
    if (!c->dirty) return;
    for (bench_conn **p = &c->net->dirty; *p; p = &(*p)->next_dirty) {
        if (*p == c) {
            *p = c->next_dirty;
            break;
        }
    }
    c->dirty = 0;
}

static void on_closed(uv_handle_t *h)
{
    bench_conn *c = h->data;
    unlink_dirty(c);
    c->net->live--;
    if (c->cb.on_close) c->cb.on_close(c, c->ud, c->error, c->ws_code);
    bench_ws_reader_release(&c->rd);
    sbuf_release(&c->hs);
    sbuf_release(&c->out);
    pl_free(c->host);
    pl_free(c->path);
    pl_free(c->protocol);
    pl_free(c);
}

static void fail(bench_conn *c, const char *error)
{
    if (c->state == ST_CLOSING) return;
    c->state = ST_CLOSING;
    c->error = error;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void bench_conn_close(bench_conn *c)
{
    fail(c, NULL);
}

/* ------------------------------------------------------------------ writing */

static void mark_dirty(bench_conn *c)
{
    if (c->dirty) return;
    c->dirty = 1;
    c->next_dirty = c->net->dirty;
    c->net->dirty = c;
}

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    bench_conn *c = w->c;
    c->pending -= w->len;
    pl_free(w);
    if (status < 0 && status != UV_ECANCELED) fail(c, "write failed");
}

/* Hands len bytes to the kernel: directly when nothing is queued, the rest
 * through a uv_write that owns a copy. */
static void write_bytes(bench_conn *c, const char *data, size_t len)
{
    if (c->state == ST_CLOSING || len == 0) return;
    if (c->pending == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
            fail(c, "write failed");
            return;
        }
        if (len == 0) return;
    }
    wreq *w = pl_malloc(sizeof(*w) + len);
    if (!w) {
        fail(c, "out of memory");
        return;
    }
    w->c = c;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc < 0) {
        pl_free(w);
        fail(c, "write failed");
        return;
    }
    c->pending += len;
}

static void flush_conn(bench_conn *c)
{
    if (c->state != ST_OPEN) return;
    if (c->out.oom) {
        fail(c, "out of memory");
        return;
    }
    write_bytes(c, c->out.data, c->out.len);
    sbuf_reset(&c->out);
}

static void on_flush(uv_prepare_t *h)
{
    bench_net *n = h->data;
    while (n->dirty) {
        bench_conn *c = n->dirty;
        n->dirty = c->next_dirty;
        c->dirty = 0;
        flush_conn(c);
    }
}

/* ------------------------------------------------------------ frames */

/* Masks only need to be unpredictable to intermediaries; a per-loop
 * xorshift seeded from OpenSSL avoids a syscall per frame. */
static uint32_t next_mask(bench_net *n)
{
    uint64_t x = n->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    n->rng = x;
    return (uint32_t)(x >> 16);
}

static void queue_frame(bench_conn *c, int opcode, const void *data, size_t len)
{
    bench_ws_frame(&c->out, opcode, data, len, next_mask(c->net));
    mark_dirty(c);
}

static int on_frame(void *ud, int opcode, const char *data, size_t len)
{
    bench_conn *c = ud;
    if (opcode == WS_OP_PING) {
        queue_frame(c, WS_OP_PONG, data, len);
    } else if (opcode == WS_OP_CLOSE) {
        if (len >= 2) c->ws_code = ((uint8_t)data[0] << 8) | (uint8_t)data[1];
        fail(c, "closed by server");
    } else if (opcode != WS_OP_PONG && c->cb.on_message) {
        c->cb.on_message(c, c->ud, opcode == WS_OP_BINARY, data, len);
    }
    return c->state != ST_OPEN;
}

static void feed(bench_conn *c, const char *data, size_t len)
{
    const char *why = bench_ws_read(&c->rd, data, len, on_frame, c);
    if (why) fail(c, why);
}

/* ------------------------------------------------------------------ reading */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    bench_conn *c = h->data;
    *buf = uv_buf_init(c->net->rbuf, READ_BUF);
}

static void on_handshake_bytes(bench_conn *c, const char *data, size_t len)
{
    sbuf_append(&c->hs, data, len);
    if (c->hs.oom) {
        fail(c, "out of memory");
        return;
    }
    size_t used = 0;
    int status = 0;
    int rc = bench_ws_check_response(c->hs.data, c->hs.len, c->key, &used, &status);
    if (rc == PL_AGAIN) return;
    if (rc != PL_OK) {
        fail(c, status == 101 || status == 0 ? "bad handshake response" : "handshake refused");
        return;
    }
    c->state = ST_OPEN;
    if (c->cb.on_open) c->cb.on_open(c, c->ud);
    if (c->state == ST_OPEN && c->hs.len > used) {
        /* Frames that came with the 101: move them out of hs before reuse. */
        sbuf rest;
        sbuf_init(&rest);
        sbuf_append(&rest, c->hs.data + used, c->hs.len - used);
        sbuf_release(&c->hs);
        if (rest.oom)
            fail(c, "out of memory");
        else
            feed(c, rest.data, rest.len);
        sbuf_release(&rest);
        return;
    }
    sbuf_release(&c->hs);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    bench_conn *c = s->data;
    if (nread < 0) {
        fail(c, nread == UV_EOF ? (c->ws_code ? "closed by server" : "connection closed by server")
                                : "read error");
        return;
    }
    if (nread == 0) return;
    if (c->state == ST_HANDSHAKE)
        on_handshake_bytes(c, buf->base, (size_t)nread);
    else if (c->state == ST_OPEN)
        feed(c, buf->base, (size_t)nread);
}

/* --------------------------------------------------------------- connecting */

static void on_connect(uv_connect_t *req, int status)
{
    bench_conn *c = req->data;
    if (c->state == ST_CLOSING) return;
    if (status < 0) {
        fail(c, status == UV_ECONNREFUSED ? "connection refused" : "connect failed");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = ST_HANDSHAKE;
    sbuf req_text;
    sbuf_init(&req_text);
    bench_ws_request(&req_text, c->host, c->port, c->path, c->protocol, c->key);
    if (req_text.oom) {
        sbuf_release(&req_text);
        fail(c, "out of memory");
        return;
    }
    write_bytes(c, req_text.data, req_text.len);
    sbuf_release(&req_text);
    if (c->state != ST_CLOSING && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        fail(c, "read start failed");
}

static int start_connect(bench_conn *c, const bench_conn_opts *o)
{
    struct sockaddr_in dst;
    if (uv_ip4_addr(o->host, o->port, &dst) < 0) return -1;
    if (o->source_ip) {
        uv_os_fd_t fd;
        int one = 1;
        /* Without this, bind() picks the source port before the
         * destination is known, capping each source address at one port
         * range for the whole machine. */
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src;
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(o->source_ip);
        if (uv_tcp_bind(&c->tcp, (const struct sockaddr *)&src, 0) < 0) return -1;
    }
    c->creq.data = c;
    return uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&dst, on_connect);
}

bench_conn *bench_conn_open(bench_net *n, const bench_conn_opts *o, const bench_conn_cb *cb,
                            void *ud)
{
    bench_conn *c = pl_calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->net = n;
    c->cb = *cb;
    c->ud = ud;
    c->port = o->port;
    sbuf_init(&c->hs);
    sbuf_init(&c->out);
    c->host = pl_strdup(o->host);
    c->path = pl_strdup(o->path ? o->path : "/");
    c->protocol = o->protocol ? pl_strdup(o->protocol) : NULL;
    if (!c->host || !c->path || (o->protocol && !c->protocol) || bench_ws_key(c->key) < 0)
        goto fail;
    if (uv_tcp_init_ex(n->loop, &c->tcp, AF_INET) < 0) goto fail;
    c->tcp.data = c;
    n->live++;
    if (start_connect(c, o) < 0) fail(c, "connect failed");
    return c;
fail:
    pl_free(c->host);
    pl_free(c->path);
    pl_free(c->protocol);
    pl_free(c);
    return NULL;
}

int bench_conn_send(bench_conn *c, int binary, const void *data, size_t len)
{
    if (c->state != ST_OPEN) return -1;
    queue_frame(c, binary ? WS_OP_BINARY : WS_OP_TEXT, data, len);
    return c->out.oom ? -1 : 0;
}

void bench_conn_reading(bench_conn *c, bool on)
{
    if (c->state != ST_OPEN) return;
    if (on)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

size_t bench_conn_pending(const bench_conn *c)
{
    return c->pending + c->out.len;
}

void *bench_conn_ud(const bench_conn *c)
{
    return c->ud;
}

void bench_conn_set_ud(bench_conn *c, void *ud)
{
    c->ud = ud;
}

/* ---------------------------------------------------------------------- net */

bench_net *bench_net_new(uv_loop_t *loop)
{
    bench_net *n = pl_calloc(1, sizeof(*n));
    if (!n) return NULL;
    n->loop = loop;
    n->rbuf = pl_malloc(READ_BUF);
    if (!n->rbuf || RAND_bytes((unsigned char *)&n->rng, sizeof(n->rng)) != 1) goto fail;
    n->rng |= 1;
    if (uv_prepare_init(loop, &n->flusher) < 0) goto fail;
    n->flusher.data = n;
    uv_prepare_start(&n->flusher, on_flush);
    uv_unref((uv_handle_t *)&n->flusher);
    return n;
fail:
    pl_free(n->rbuf);
    pl_free(n);
    return NULL;
}

static void on_net_closed(uv_handle_t *h)
{
    bench_net *n = h->data;
    pl_free(n->rbuf);
    pl_free(n);
}

void bench_net_free(bench_net *n)
{
    if (!n) return;
    uv_prepare_stop(&n->flusher);
    uv_close((uv_handle_t *)&n->flusher, on_net_closed);
}

size_t bench_net_live(const bench_net *n)
{
    return n->live;
}
