/* hook_sink: the smallest fast HTTP/1.1 receiver for the webhook benchmark
 * (bench/webhooks.sh). One thread, one libuv loop, keep-alive, pipelining
 * safe: each request's head is read up to the blank line, its body skipped
 * by Content-Length (never buffered), and every request answered in the
 * order it came with
 *
 *     HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n
 *
 * `GET /count` answers the number of POSTs received so far, as text.
 *
 * It measures throughput only: it does NOT verify the Standard Webhooks
 * signatures (nor look at any header but Content-Length, Expect and
 * Transfer-Encoding). A chunked request body is not supported: the
 * connection is closed. `Connection: close` is not honoured (the client
 * closes when it wants to).
 *
 *   hook_sink [--port N] [--delay-ms N]
 *
 * --port N      listen on 127.0.0.1:N (default 9999)
 * --delay-ms N  answer each request N ms after it was read whole (a uv_timer
 *               per request; answers still leave in request order): the slow
 *               receiver. /count is answered at once unless requests before
 *               it on the same connection are still waiting. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#define HEAD_MAX (64 * 1024)
#define READ_CHUNK (64 * 1024)

static const char OK[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";

static uv_loop_t *loop;
static uint64_t delay_ms;
static uint64_t posts;

typedef struct conn conn;

/* A request waiting for its answer (only when answers cannot leave at once). */
typedef struct req {
    uv_timer_t timer;
    conn *c;
    struct req *next;
    int ready;
    int len;        /* answer length */
    char text[128]; /* the answer */
} req;

struct conn {
    uv_tcp_t tcp;
    int refs; /* the tcp handle + every request timer not yet closed */
    int closing;
    char *buf; /* unparsed bytes buf[0..len) */
    size_t len, cap;
    uint64_t body_left; /* body bytes of the current request still to skip */
    int in_body;
    int is_post;
    req *qhead, *qtail; /* answers in request order */
    char *out;          /* answers gathered for one write */
    size_t olen, ocap;
};

typedef struct wr {
    uv_write_t w;
    conn *c;
    char data[];
} wr;

static void conn_unref(conn *c)
{
    if (--c->refs == 0) {
        free(c->buf);
        free(c->out);
        free(c);
    }
}

static void on_tcp_closed(uv_handle_t *h)
{
    conn_unref((conn *)h->data);
}

static void on_timer_closed(uv_handle_t *h)
{
    req *r = h->data;
    conn *c = r->c;
    free(r);
    conn_unref(c);
}

static void conn_close(conn *c)
{
    if (c->closing) return;
    c->closing = 1;
    for (req *r = c->qhead, *n; r; r = n) {
        n = r->next;
        uv_timer_stop(&r->timer);
        uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    }
    c->qhead = c->qtail = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
}

static int out_add(conn *c, const char *s, size_t n)
{
    if (c->olen + n > c->ocap) {
        size_t cap = c->ocap ? c->ocap : 4096;
        while (cap < c->olen + n)
            cap *= 2;
        char *p = realloc(c->out, cap);
        if (!p) return -1;
        c->out = p;
        c->ocap = cap;
    }
    memcpy(c->out + c->olen, s, n);
    c->olen += n;
    return 0;
}

static void on_written(uv_write_t *w, int status)
{
    wr *x = (wr *)w;
    conn *c = x->c;
    free(x);
    if (status < 0) conn_close(c);
    conn_unref(c);
}

/* Writes the gathered answers: uv_try_write first, a uv_write for the rest. */
static void out_flush(conn *c)
{
    if (!c->olen || c->closing) return;
    uv_buf_t b = uv_buf_init(c->out, (unsigned)c->olen);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
    if (n < 0) {
        c->olen = 0;
        conn_close(c);
        return;
    }
    size_t rest = c->olen - (size_t)n;
    if (rest) {
        wr *x = malloc(sizeof(*x) + rest);
        if (!x) {
            conn_close(c);
            return;
        }
        memcpy(x->data, c->out + n, rest);
        x->c = c;
        c->refs++;
        b = uv_buf_init(x->data, (unsigned)rest);
        if (uv_write(&x->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
            free(x);
            c->refs--;
            conn_close(c);
        }
    }
    c->olen = 0;
}

/* Moves the answers that are ready at the head of the queue to the output. */
static void queue_drain(conn *c)
{
    while (c->qhead && c->qhead->ready) {
        req *r = c->qhead;
        c->qhead = r->next;
        if (!c->qhead) c->qtail = NULL;
        out_add(c, r->text, (size_t)r->len);
        uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    }
}

static void on_timer(uv_timer_t *t)
{
    req *r = t->data;
    conn *c = r->c;
    r->ready = 1;
    queue_drain(c);
    out_flush(c);
}

/* Queues an answer: straight to the output when nothing waits before it and
 * it need not be delayed, else as a request with its timer. */
static int answer(conn *c, const char *text, size_t len, int delayed)
{
    if (!delayed && !c->qhead) return out_add(c, text, len);
    req *r = calloc(1, sizeof(*r));
    if (!r || len >= sizeof(r->text)) {
        free(r);
        return -1;
    }
    memcpy(r->text, text, len);
    r->len = (int)len;
    r->c = c;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    c->refs++;
    if (c->qtail)
        c->qtail->next = r;
    else
        c->qhead = r;
    c->qtail = r;
    if (delayed)
        uv_timer_start(&r->timer, on_timer, delay_ms, 0);
    else
        r->ready = 1;
    return 0;
}

static int finish_request(conn *c)
{
    if (c->is_post) {
        posts++;
        return answer(c, OK, sizeof(OK) - 1, delay_ms > 0);
    }
    return answer(c, OK, sizeof(OK) - 1, 0);
}

/* Header value after "name:" when line starts with it (any case); else NULL. */
static const char *header_value(const char *line, const char *end, const char *name)
{
    size_t n = strlen(name);
    if ((size_t)(end - line) < n || strncasecmp(line, name, n) != 0) return NULL;
    const char *v = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    return v;
}

/* Parses one request head buf[0..hlen) (ending with the blank line). 0 ok, -1: close. */
static int parse_head(conn *c, const char *h, size_t hlen)
{
    const char *end = h + hlen;
    const char *sp = memchr(h, ' ', hlen);
    if (!sp) return -1;
    const char *lf = memchr(h, '\n', hlen);
    c->is_post = (sp - h == 4 && memcmp(h, "POST", 4) == 0);
    int is_count = (sp - h == 3 && memcmp(h, "GET", 3) == 0 && end - sp > 7 &&
                    memcmp(sp + 1, "/count", 6) == 0 && (sp[7] == ' ' || sp[7] == '?'));
    c->body_left = 0;
    int expect = 0;
    for (const char *line = lf + 1; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) nl = end;
        const char *le = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
        const char *v;
        if ((v = header_value(line, le, "content-length:"))) {
            char *e;
            errno = 0;
            unsigned long long cl = strtoull(v, &e, 10);
            if (e == v || errno) return -1;
            c->body_left = cl;
        } else if ((v = header_value(line, le, "transfer-encoding:"))) {
            return -1; /* chunked bodies: not supported */
        } else if ((v = header_value(line, le, "expect:"))) {
            expect = (size_t)(le - v) >= 12 && strncasecmp(v, "100-continue", 12) == 0;
        }
        line = nl + 1;
    }
    if (is_count) {
        char text[96];
        char num[24];
        int nn = snprintf(num, sizeof(num), "%" PRIu64 "\n", posts);
        int tn = snprintf(
            text, sizeof(text),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", nn, num);
        c->is_post = 0;
        c->in_body = c->body_left > 0;
        if (!c->in_body) return answer(c, text, (size_t)tn, 0);
        /* A body on GET /count: skipped, then answered plainly. */
        return 0;
    }
    if (expect && c->body_left > 0 && out_add(c, CONTINUE, sizeof(CONTINUE) - 1) < 0) return -1;
    c->in_body = 1;
    if (c->body_left == 0) {
        c->in_body = 0;
        return finish_request(c);
    }
    return 0;
}

/* Consumes what is in c->buf: bodies skipped, heads parsed. 0 ok, -1 close. */
static int consume(conn *c)
{
    size_t pos = 0;
    for (;;) {
        if (c->in_body) {
            size_t avail = c->len - pos;
            size_t take = c->body_left < avail ? (size_t)c->body_left : avail;
            pos += take;
            c->body_left -= take;
            if (c->body_left) break;
            c->in_body = 0;
            if (finish_request(c) < 0) return -1;
            continue;
        }
        if (pos == c->len) break;
        const char *start = c->buf + pos;
        const char *e = memmem(start, c->len - pos, "\r\n\r\n", 4);
        if (!e) {
            if (c->len - pos > HEAD_MAX) return -1;
            break;
        }
        size_t hlen = (size_t)(e - start) + 4;
        if (parse_head(c, start, hlen) < 0) return -1;
        pos += hlen;
    }
    if (pos) {
        memmove(c->buf, c->buf + pos, c->len - pos);
        c->len -= pos;
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    conn *c = h->data;
    if (c->cap - c->len < READ_CHUNK) {
        size_t cap = c->len + READ_CHUNK;
        char *p = realloc(c->buf, cap);
        if (!p) {
            *b = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = p;
        c->cap = cap;
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b; /* the bytes are in c->buf already (on_alloc) */
    conn *c = s->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0) return;
    c->len += (size_t)n;
    if (consume(c) < 0) {
        conn_close(c);
        return;
    }
    queue_drain(c);
    out_flush(c);
}

static void on_conn(uv_stream_t *srv, int status)
{
    if (status < 0) return;
    conn *c = calloc(1, sizeof(*c));
    if (!c) return;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->refs = 1;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    fprintf(stderr, "hook_sink: %" PRIu64 " POSTs\n", posts);
    exit(0);
}

static int parse_num(const char *s, unsigned long max, unsigned long *out)
{
    char *e;
    errno = 0;
    unsigned long v = strtoul(s, &e, 10);
    if (!*s || *e || errno || v > max) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long port = 9999, delay = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], 65535, &port) < 0 || port == 0) goto usage;
        } else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], 3600000, &delay) < 0) goto usage;
        } else {
            goto usage;
        }
    }
    delay_ms = delay;
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    uv_tcp_t srv;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", (int)port, &addr);
    uv_tcp_init(loop, &srv);
    int rc = uv_tcp_bind(&srv, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&srv, 1024, on_conn);
    if (rc < 0) {
        fprintf(stderr, "hook_sink: listen on 127.0.0.1:%lu: %s\n", port, uv_strerror(rc));
        return 1;
    }
    uv_signal_t sigterm, sigint;
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    fprintf(stderr, "hook_sink: listening on 127.0.0.1:%lu, delay %lu ms\n", port, delay);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;

usage:
    fprintf(stderr, "usage: hook_sink [--port N] [--delay-ms N]\n");
    return 2;
}
