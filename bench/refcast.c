/* refcast: the reference broadcaster of the benchmarks (bench/compare.sh).
 * The smallest server that speaks enough of Parley's wire protocol for
 * `parley bench` (WebSocket upgrade, connect, subscribe, publish with its
 * reply, pushes of pubs), with no auth, no storage and no checks, written
 * for speed: one thread, one libuv loop, every connection's replies and
 * pushes coalesced into one WebSocket frame and one write per flush round;
 * a round that took longer than PACE_MIN_US holds the next one back by as
 * long, at most PACE_MAX_US, so that a large fan-out shares its writes
 * among the pubs that arrive meanwhile (the pacing Parley's workers use). What it reaches is what the bench client and the kernel allow on
 * the machine: the ceiling Parley's figures are divided by.
 *
 * It reads exactly what `parley bench` sends (one JSON command per line,
 * "data" the last member of a publish's params) and nothing else: it is not
 * a Parley server and must never face anything but the bench client.
 *
 *   refcast [--port N]      listen on 127.0.0.1:N (default 9100) */
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#define READ_CHUNK (256 * 1024)
#define MAX_FRAME (16u << 20) /* a client frame past this closes the connection */
#define CHAN_BUCKETS 65536
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define PACE_MIN_US 50
#define PACE_MAX_US 1000

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

typedef struct conn conn;

typedef struct chan {
    struct chan *next; /* bucket chain */
    char *name;
    uint64_t head;
    conn **subs;
    size_t nsubs, cap;
} chan;

struct conn {
    uv_tcp_t tcp;
    int upgraded, closing;
    buf in;  /* bytes read and not yet parsed */
    buf out; /* lines (replies, pushes) for the next frame, joined by '\n' */
    conn *next_dirty;
    int dirty;
    chan **chs; /* the channels it subscribed to, to leave them when it goes */
    size_t nch, chcap;
};

static chan *chans[CHAN_BUCKETS];
static conn *dirty_head;
static uv_loop_t *loop;
static uv_timer_t pacer;
static uint64_t flush_at_us; /* no round before this (0: at once) */

static void buf_add(buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) abort(); /* a benchmark tool: no memory is the end of the run */
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static uint32_t hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static chan *chan_get(const char *name, size_t n)
{
    uint32_t b = hash(name, n) % CHAN_BUCKETS;
    for (chan *c = chans[b]; c; c = c->next)
        if (strlen(c->name) == n && !memcmp(c->name, name, n)) return c;
    chan *c = calloc(1, sizeof(*c));
    if (!c || !(c->name = strndup(name, n))) abort();
    c->next = chans[b];
    chans[b] = c;
    return c;
}

static void mark_dirty(conn *c)
{
    if (c->dirty || c->closing) return;
    c->dirty = 1;
    c->next_dirty = dirty_head;
    dirty_head = c;
}

/* A line for c's next frame. */
static void queue_line(conn *c, const char *p, size_t n)
{
    if (c->closing) return;
    if (c->out.len) buf_add(&c->out, "\n", 1);
    buf_add(&c->out, p, n);
    mark_dirty(c);
}

/* ---- the minimal JSON reading the bench's commands need ------------------ */

/* The string value after `"key":"` in line, or NULL. */
static const char *str_member(const char *line, size_t len, const char *key, size_t *n)
{
    char pat[64];
    int pn = snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = memmem(line, len, pat, (size_t)pn);
    if (!p) return NULL;
    p += pn;
    const char *end = memchr(p, '"', (size_t)(line + len - p));
    if (!end) return NULL;
    *n = (size_t)(end - p);
    return p;
}

static uint64_t id_of(const char *line, size_t len)
{
    const char *p = memmem(line, len, "\"id\":", 5);
    return p ? strtoull(p + 5, NULL, 10) : 0;
}

static void reply(conn *c, const char *fmt, uint64_t id, uint64_t a)
{
    char out[256];
    int n = snprintf(out, sizeof(out), fmt, (unsigned long long)id, (unsigned long long)a);
    queue_line(c, out, (size_t)n);
}

static void do_subscribe(conn *c, uint64_t id, const char *name, size_t n)
{
    chan *ch = chan_get(name, n);
    if (ch->nsubs == ch->cap) {
        ch->cap = ch->cap ? ch->cap * 2 : 4;
        ch->subs = realloc(ch->subs, ch->cap * sizeof(*ch->subs));
        if (!ch->subs) abort();
    }
    ch->subs[ch->nsubs++] = c;
    if (c->nch == c->chcap) {
        c->chcap = c->chcap ? c->chcap * 2 : 4;
        c->chs = realloc(c->chs, c->chcap * sizeof(*c->chs));
        if (!c->chs) abort();
    }
    c->chs[c->nch++] = ch;
    reply(c,
          "{\"id\":%llu,\"result\":{\"offset\":%llu,\"epoch\":\"ref00001\",\"recovered\":false,"
          "\"pubs\":[],\"more\":false}}",
          id, ch->head);
}

/* The pub's push, built once, copied into each subscriber's next frame. */
static void do_publish(conn *c, uint64_t id, const char *line, size_t len, const char *name,
                       size_t n)
{
    const char *d = memmem(line, len, "\"data\":", 7);
    if (!d || len < 2) return;
    d += 7;
    size_t dlen = (size_t)(line + len - 2 - d); /* data is last: strip the "}}" */
    chan *ch = chan_get(name, n);
    int eph = memmem(line, len, "\"class\":\"ephemeral\"", 19) != NULL;
    uint64_t off = eph ? 0 : ++ch->head;
    static buf push;
    push.len = 0;
    char head[512];
    int hn = snprintf(head, sizeof(head),
                      "{\"push\":\"pub\",\"channel\":\"%.*s\",\"offset\":%llu,\"epoch\":\"%s\","
                      "\"id\":\"r%llu\",\"data\":",
                      (int)n, name, (unsigned long long)off, eph ? "" : "ref00001",
                      (unsigned long long)off);
    buf_add(&push, head, (size_t)hn);
    buf_add(&push, d, dlen);
    buf_add(&push, "}", 1);
    for (size_t i = 0; i < ch->nsubs; i++)
        queue_line(ch->subs[i], push.p, push.len);
    reply(c,
          "{\"id\":%llu,\"result\":{\"id\":\"r\",\"offset\":%llu,\"epoch\":\"ref00001\","
          "\"duplicate\":false}}",
          id, off);
}

static void on_line(conn *c, const char *line, size_t len)
{
    size_t mn, cn = 0;
    const char *m = str_member(line, len, "method", &mn);
    if (!m) return;
    uint64_t id = id_of(line, len);
    const char *ch = str_member(line, len, "channel", &cn);
    if (mn == 7 && !memcmp(m, "connect", 7)) {
        char out[128];
        int k = snprintf(out, sizeof(out),
                         "{\"id\":%llu,\"result\":{\"client\":\"ref\",\"user\":\"u\",\"subs\":{}}}",
                         (unsigned long long)id);
        queue_line(c, out, (size_t)k);
    } else if (mn == 9 && !memcmp(m, "subscribe", 9) && ch)
        do_subscribe(c, id, ch, cn);
    else if (mn == 7 && !memcmp(m, "publish", 7) && ch)
        do_publish(c, id, line, len, ch, cn);
}

/* ---- WebSocket ------------------------------------------------------------ */

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void send_raw(conn *c, const char *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int done = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (done < 0) done = 0;
    if ((size_t)done == n) return;
    uv_write_t *w = malloc(sizeof(*w));
    char *rest = malloc(n - (size_t)done);
    if (!w || !rest) abort();
    memcpy(rest, p + done, n - (size_t)done);
    w->data = rest;
    b = uv_buf_init(rest, (unsigned)(n - (size_t)done));
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
        free(rest);
        free(w);
    }
}

/* One unmasked text frame holding every line queued for c. */
static void flush_conn(conn *c)
{
    static buf frame;
    size_t n = c->out.len;
    frame.len = 0;
    uint8_t h[10];
    size_t hl = 2;
    h[0] = 0x81;
    if (n < 126) {
        h[1] = (uint8_t)n;
    } else if (n < 65536) {
        h[1] = 126, h[2] = (uint8_t)(n >> 8), h[3] = (uint8_t)n, hl = 4;
    } else {
        h[1] = 127, hl = 10;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)(n >> (56 - 8 * i));
    }
    buf_add(&frame, h, hl);
    buf_add(&frame, c->out.p, n);
    c->out.len = 0;
    send_raw(c, frame.p, frame.len);
}

static void on_pacer(uv_timer_t *t);

static void flush_round(void)
{
    uint64_t now = uv_hrtime() / 1000;
    if (!dirty_head) return;
    if (now < flush_at_us) { /* held back: the pacer ends the wait */
        uv_timer_start(&pacer, on_pacer, (flush_at_us - now + 999) / 1000, 0);
        return;
    }
    while (dirty_head) {
        conn *c = dirty_head;
        dirty_head = c->next_dirty;
        c->dirty = 0;
        if (!c->closing && c->out.len) flush_conn(c);
    }
    uint64_t took = uv_hrtime() / 1000 - now;
    flush_at_us = took > PACE_MIN_US ? now + took + (took < PACE_MAX_US ? took : PACE_MAX_US) : 0;
}

static void on_pacer(uv_timer_t *t)
{
    (void)t;
    flush_round();
}

static void on_check(uv_check_t *h)
{
    (void)h;
    flush_round();
}

static void on_closed(uv_handle_t *h)
{
    conn *c = (conn *)h;
    for (size_t k = 0; k < c->nch; k++) {
        chan *ch = c->chs[k];
        for (size_t i = 0; i < ch->nsubs; i++)
            if (ch->subs[i] == c) {
                ch->subs[i] = ch->subs[--ch->nsubs];
                break;
            }
    }
    free(c->chs);
    for (conn **pp = &dirty_head; *pp; pp = &(*pp)->next_dirty)
        if (*pp == c) {
            *pp = c->next_dirty;
            break;
        }
    free(c->in.p);
    free(c->out.p);
    free(c);
}

static void conn_close(conn *c)
{
    if (c->closing) return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void b64(const uint8_t *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

/* The upgrade request: answers 101 and returns the bytes it took, 0 when
 * incomplete, -1 when it is not one. */
static long upgrade(conn *c)
{
    char *end = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
    if (!end) return c->in.len > 65536 ? -1 : 0;
    *end = '\0';
    char *k = strcasestr(c->in.p, "\r\nSec-WebSocket-Key:");
    if (!k) return -1;
    k += 20;
    while (*k == ' ')
        k++;
    size_t kn = strcspn(k, "\r");
    char src[128];
    if (kn > 64) return -1;
    snprintf(src, sizeof(src), "%.*s%s", (int)kn, k, WS_GUID);
    uint8_t md[SHA_DIGEST_LENGTH];
    SHA1((const uint8_t *)src, strlen(src), md);
    char acc[64], resp[256];
    b64(md, sizeof(md), acc);
    int proto = strcasestr(c->in.p, "parley.v1") != NULL;
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                     "Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                     acc, proto ? "Sec-WebSocket-Protocol: parley.v1\r\n" : "");
    send_raw(c, resp, (size_t)n);
    c->upgraded = 1;
    return (long)(end + 4 - c->in.p);
}

/* One client frame from p[0..n): its size, 0 when incomplete, -1 to close. */
static long frame(conn *c, uint8_t *p, size_t n)
{
    if (n < 2) return 0;
    int op = p[0] & 15;
    uint64_t len = p[1] & 127;
    size_t hl = 2;
    if (len == 126) {
        if (n < 4) return 0;
        len = (uint64_t)p[2] << 8 | p[3], hl = 4;
    } else if (len == 127) {
        if (n < 10) return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        hl = 10;
    }
    if (!(p[1] & 128) || len > MAX_FRAME || !(p[0] & 128)) return -1; /* unmasked or fragmented */
    if (n < hl + 4 + len) return 0;
    uint8_t *mask = p + hl, *d = p + hl + 4;
    for (uint64_t i = 0; i < len; i++)
        d[i] ^= mask[i & 3];
    if (op == 8) return -1;
    if (op == 1 || op == 2) {
        const char *s = (const char *)d, *e = s + len;
        while (s < e) {
            const char *nl = memchr(s, '\n', (size_t)(e - s));
            const char *le = nl ? nl : e;
            if (le > s) on_line(c, s, (size_t)(le - s));
            s = le + 1;
        }
    }
    return (long)(hl + 4 + len);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    conn *c = (conn *)h;
    if (c->in.cap - c->in.len < READ_CHUNK) {
        size_t cap = c->in.len + READ_CHUNK;
        char *np = realloc(c->in.p, cap);
        if (!np) abort();
        c->in.p = np;
        c->in.cap = cap;
    }
    *b = uv_buf_init(c->in.p + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    (void)b;
    conn *c = (conn *)s;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->in.len += (size_t)nread;
    size_t used = 0;
    for (;;) {
        long k = c->upgraded ? frame(c, (uint8_t *)c->in.p + used, c->in.len - used) : upgrade(c);
        if (k < 0) {
            conn_close(c);
            return;
        }
        if (k == 0) break;
        used += (size_t)k;
    }
    memmove(c->in.p, c->in.p + used, c->in.len - used);
    c->in.len -= used;
}

static void on_conn(uv_stream_t *server, int status)
{
    if (status < 0) return;
    conn *c = calloc(1, sizeof(*c));
    if (!c) abort();
    uv_tcp_init(loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_signal(uv_signal_t *h, int sig)
{
    (void)sig;
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    int port = 9100;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    uv_tcp_t srv;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(loop, &srv);
    if (uv_tcp_bind(&srv, (const struct sockaddr *)&addr, 0) ||
        uv_listen((uv_stream_t *)&srv, 4096, on_conn)) {
        fprintf(stderr, "refcast: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    uv_timer_init(loop, &pacer);
    uv_check_t check;
    uv_check_init(loop, &check);
    uv_check_start(&check, on_check);
    uv_signal_t term, intr;
    uv_signal_init(loop, &term);
    uv_signal_init(loop, &intr);
    uv_signal_start(&term, on_signal, SIGTERM);
    uv_signal_start(&intr, on_signal, SIGINT);
    fprintf(stderr, "refcast: listening on 127.0.0.1:%d\n", port);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
