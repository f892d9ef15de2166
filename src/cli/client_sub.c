/* `parley subscribe` and `parley tail`: one WebSocket connection (the
 * bench's client connection: handshake, framing, reading) on a libuv loop.
 * connect, then one subscribe per channel; every pub pushed is printed.
 * The position of each channel (the last pub printed, or the head when it
 * was subscribed) is kept, so after a dropped connection the subscribe
 * resumes from it: the server sends what was missed, and a pub at or
 * before the position is never printed twice. */
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <uv.h>

#include "cli/bench_conn.h"
#include "cli/client.h"
#include "cli/client_int.h"
#include "cli/mint.h"
#include "util/mem.h"
#include "util/sbuf.h"

#define BACKOFF_MAX_MS 5000
#define BACKOFF_MIN_MS (BACKOFF_MAX_MS / 50) /* 100 ms */
#define CONNECT_ID 1                         /* subscribe i has id 2 + i */

typedef struct sub_chan {
    const char *name; /* argv */
    uint64_t offset;  /* the position to resume after */
    char epoch[64];
    int have;       /* offset/epoch are known */
    int subscribed; /* a subscribe has succeeded once */
} sub_chan;

typedef struct sub_state {
    const client_args *a;
    uv_loop_t loop;
    bench_net *net;
    bench_conn *conn;
    uv_timer_t retry;
    uv_signal_t sigint, sigterm;
    bench_conn_opts opts;
    char host[INET_ADDRSTRLEN];
    char *token;
    sub_chan *chans;
    int nchans;
    unsigned backoff_ms;
    int opened;   /* a connect has succeeded once: keep retrying after that */
    int lost;     /* the connection dropped; say so once per outage */
    int stopping; /* Ctrl-C, SIGTERM or a fatal error */
    int finished;
    int rc;
} sub_state;

static void sub_connect(sub_state *st);

/* ----------------------------------------------------------------- ending */

static void finish(sub_state *st)
{
    if (st->finished) return;
    st->finished = 1;
    uv_close((uv_handle_t *)&st->retry, NULL);
    uv_close((uv_handle_t *)&st->sigint, NULL);
    uv_close((uv_handle_t *)&st->sigterm, NULL);
    bench_net_free(st->net);
}

static void stop(sub_state *st, int rc)
{
    if (!st->stopping) st->rc = rc;
    st->stopping = 1;
    uv_timer_stop(&st->retry);
    if (st->conn)
        bench_conn_close(st->conn);
    else
        finish(st);
}

static void on_signal(uv_signal_t *h, int signum)
{
    stop(h->data, 0);
}

/* --------------------------------------------------------------- messages */

static void send_line(sub_state *st, json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    if (s && st->conn) bench_conn_send(st->conn, 0, s, strlen(s));
    free(s);
    json_decref(msg);
}

static void send_subscribes(sub_state *st)
{
    for (int i = 0; i < st->nchans; i++) {
        sub_chan *c = &st->chans[i];
        json_t *p = json_pack("{s:s}", "channel", c->name);
        if (c->have)
            json_object_set_new(
                p, "since",
                json_pack("{s:I,s:s}", "offset", (json_int_t)c->offset, "epoch", c->epoch));
        send_line(st, json_pack("{s:i,s:s,s:o}", "id", CONNECT_ID + 1 + i, "method", "subscribe",
                                "params", p));
    }
}

static sub_chan *find_chan(sub_state *st, const char *name)
{
    for (int i = 0; name && i < st->nchans; i++)
        if (!strcmp(st->chans[i].name, name)) return &st->chans[i];
    return NULL;
}

/* Prints pub unless it is at or before the channel's position in the same
 * epoch (already printed before a reconnect), and moves the position. */
static void show_pub(sub_state *st, sub_chan *c, const json_t *pub)
{
    uint64_t off = (uint64_t)json_integer_value(json_object_get(pub, "offset"));
    const char *ep = json_string_value(json_object_get(pub, "epoch"));
    if (!c || !ep) return;
    if (off && c->have && !strcmp(ep, c->epoch) && off <= c->offset) return;
    if (st->a->json)
        client_print_json(pub);
    else
        client_print_pub(pub);
    if (!off) return; /* ephemeral: no position */
    c->offset = off;
    snprintf(c->epoch, sizeof(c->epoch), "%s", ep);
    c->have = 1;
}

static void on_subscribed(sub_state *st, sub_chan *c, const json_t *res)
{
    size_t i;
    json_t *pub;
    json_array_foreach(json_object_get(res, "pubs"), i, pub) show_pub(st, c, pub);
    const char *ep = json_string_value(json_object_get(res, "epoch"));
    /* Nothing printed yet: resume from the head as of this subscribe, so
     * what is published while the connection is down is not lost. */
    if (!c->have && ep && *ep) {
        c->offset = (uint64_t)json_integer_value(json_object_get(res, "offset"));
        snprintf(c->epoch, sizeof(c->epoch), "%s", ep);
        c->have = 1;
    }
    /* On stderr, so scripts and tests can tell when pubs start to count. */
    fprintf(stderr, "parley: %s %s at %llu@%s\n", c->subscribed ? "resubscribed" : "subscribed",
            c->name, (unsigned long long)c->offset, c->epoch);
    c->subscribed = 1;
    st->backoff_ms = BACKOFF_MIN_MS;
}

static void on_reply(sub_state *st, json_int_t id, const json_t *msg)
{
    const json_t *err = json_object_get(msg, "error");
    sub_chan *c =
        id > CONNECT_ID && id <= CONNECT_ID + st->nchans ? &st->chans[id - CONNECT_ID - 1] : NULL;
    if (err) {
        fprintf(stderr, "parley: %lld %s%s%s\n",
                (long long)json_integer_value(json_object_get(err, "code")),
                json_string_value(json_object_get(err, "message")), c ? " subscribing to " : "",
                c ? c->name : "");
        stop(st, 1);
    } else if (id == CONNECT_ID) {
        if (st->lost) fprintf(stderr, "parley: reconnected to %s\n", st->a->url);
        st->lost = 0;
        st->opened = 1;
        send_subscribes(st);
    } else if (c) {
        on_subscribed(st, c, json_object_get(msg, "result"));
    }
}

static void on_push(sub_state *st, const char *kind, const json_t *msg)
{
    const char *chan = json_string_value(json_object_get(msg, "channel"));
    if (!strcmp(kind, "pub")) {
        show_pub(st, find_chan(st, chan), msg);
    } else if (!strcmp(kind, "ping")) {
        send_line(st, json_pack("{s:s}", "method", "pong"));
    } else if (!strcmp(kind, "gap")) {
        fprintf(stderr, "parley: %s: pubs %lld..%lld of epoch %s are no longer available\n",
                chan ? chan : "", (long long)json_integer_value(json_object_get(msg, "from")),
                (long long)json_integer_value(json_object_get(msg, "to")),
                json_string_value(json_object_get(msg, "epoch")));
    } else if (!strcmp(kind, "disconnect") && !json_is_true(json_object_get(msg, "reconnect"))) {
        fprintf(stderr, "parley: disconnected by the server: %lld %s\n",
                (long long)json_integer_value(json_object_get(msg, "code")),
                json_string_value(json_object_get(msg, "reason")));
        stop(st, 1);
    }
}

static void on_line(sub_state *st, const char *line, size_t len)
{
    json_t *msg = json_loadb(line, len, 0, NULL);
    const char *kind = json_string_value(json_object_get(msg, "push"));
    json_t *id = json_object_get(msg, "id");
    if (kind)
        on_push(st, kind, msg);
    else if (json_is_integer(id))
        on_reply(st, json_integer_value(id), msg);
    json_decref(msg);
}

/* ------------------------------------------------------------- connection */

static void on_message(bench_conn *c, void *ud, int binary, const char *data, size_t len)
{
    sub_state *st = ud;
    while (len && !st->stopping) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        if (n) on_line(st, data, n);
        data += nl ? n + 1 : n;
        len -= nl ? n + 1 : n;
    }
}

static void on_open(bench_conn *c, void *ud)
{
    sub_state *st = ud;
    send_line(st, json_pack("{s:i,s:s,s:{s:s}}", "id", CONNECT_ID, "method", "connect", "params",
                            "token", st->token));
}

static void on_retry(uv_timer_t *t)
{
    sub_connect(t->data);
}

static void on_close(bench_conn *c, void *ud, const char *error, int ws_code)
{
    sub_state *st = ud;
    st->conn = NULL;
    if (st->stopping) {
        finish(st);
        return;
    }
    if (!st->opened) {
        fprintf(stderr, "parley: cannot reach the server at %s (ws://%s:%d/ws): %s\n", st->a->url,
                st->host, st->opts.port, error ? error : "connection closed");
        st->rc = 1;
        finish(st);
        return;
    }
    if (!st->lost)
        fprintf(stderr, "parley: connection to %s lost (%s); reconnecting\n", st->a->url,
                error ? error : "closed");
    st->lost = 1;
    uv_timer_start(&st->retry, on_retry, st->backoff_ms, 0);
    st->backoff_ms = st->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : st->backoff_ms * 2;
}

static void sub_connect(sub_state *st)
{
    static const bench_conn_cb cb = {on_open, on_message, on_close};
    st->conn = bench_conn_open(st->net, &st->opts, &cb, st);
    if (!st->conn) {
        fprintf(stderr, "parley: out of memory\n");
        st->rc = 1;
        finish(st);
    }
}

/* ------------------------------------------------------------------ setup */

/* http://HOST[:PORT][/...] (or ws://) into a dotted IPv4 address and a
 * port. Returns 0, or 2 after a usage error. */
static int parse_url(sub_state *st)
{
    const char *u = st->a->url, *p = strstr(u, "://");
    if (p && strncmp(u, "http://", 7) && strncmp(u, "ws://", 5))
        return client_usage(st->a, "--url must be http://HOST:PORT (TLS is not supported here)");
    p = p ? p + 3 : u;
    size_t hl = strcspn(p, ":/");
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)hl, p);
    st->opts.port = p[hl] == ':' ? atoi(p + hl + 1) : 80;
    if (!hl || st->opts.port <= 0 || st->opts.port > 65535)
        return client_usage(st->a, "--url wants http://HOST:PORT");
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(name, NULL, &hints, &res) || !res) {
        fprintf(stderr, "parley: cannot resolve %s (from %s)\n", name, st->a->url);
        return 1;
    }
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, st->host, sizeof(st->host));
    freeaddrinfo(res);
    st->opts.host = st->host;
    st->opts.path = "/ws";
    st->opts.protocol = "parley.v1";
    return 0;
}

/* --since OFFSET@EPOCH for the only channel. */
static int parse_since(sub_state *st)
{
    const char *s = st->a->since, *at = strchr(s, '@');
    char *end;
    unsigned long long off = strtoull(s, &end, 10);
    if (!at || end != at || end == s || s[0] == '-' || !at[1] || strlen(at + 1) >= 64)
        return client_usage(st->a, "--since wants OFFSET@EPOCH (as subscribe prints them)");
    if (st->nchans != 1) return client_usage(st->a, "--since is for one channel");
    st->chans[0].offset = off;
    snprintf(st->chans[0].epoch, sizeof(st->chans[0].epoch), "%s", at + 1);
    st->chans[0].have = 1;
    return 0;
}

static int get_token(sub_state *st)
{
    const client_args *a = st->a;
    if (a->token) {
        st->token = pl_strdup(a->token);
        return 0;
    }
    if (!a->user)
        return client_usage(a, "give --token T, or --user U in single-tenant development mode");
    /* Long enough for a long tail; reconnects reuse it. */
    mint_req r = {.user = a->user, .ttl = "24h", .data = a->data};
    int rc;
    st->token = mint_token(&r, &rc);
    return st->token ? 0 : rc;
}

static int run(sub_state *st)
{
    if (uv_loop_init(&st->loop)) return 1;
    st->net = bench_net_new(&st->loop);
    uv_timer_init(&st->loop, &st->retry);
    uv_signal_init(&st->loop, &st->sigint);
    uv_signal_init(&st->loop, &st->sigterm);
    st->retry.data = st->sigint.data = st->sigterm.data = st;
    uv_signal_start(&st->sigint, on_signal, SIGINT);
    uv_signal_start(&st->sigterm, on_signal, SIGTERM);
    if (st->net)
        sub_connect(st);
    else
        finish(st), st->rc = 1;
    uv_run(&st->loop, UV_RUN_DEFAULT);
    uv_loop_close(&st->loop);
    return st->rc;
}

static int subscribe_main(int argc, char **argv, const char *allowed)
{
    client_args a;
    if (client_parse(argc, argv, allowed, &a)) return 2;
    if (a.npos < 1) return client_usage(&a, "name at least one CHANNEL");
    sub_state st = {.a = &a, .nchans = a.npos, .backoff_ms = BACKOFF_MIN_MS};
    st.chans = pl_calloc((size_t)a.npos, sizeof(*st.chans));
    if (!st.chans) return 1;
    for (int i = 0; i < a.npos; i++)
        st.chans[i].name = a.pos[i];
    int rc = parse_url(&st);
    if (!rc && a.since) rc = parse_since(&st);
    if (!rc) rc = get_token(&st);
    /* Line-buffered even into a pipe: a script reads each pub as it comes. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!rc) rc = run(&st);
    pl_free(st.token);
    pl_free(st.chans);
    return rc;
}

int client_subscribe(int argc, char **argv)
{
    return subscribe_main(argc, argv, "udjstU");
}

int client_tail(int argc, char **argv)
{
    return subscribe_main(argc, argv, "udjtU");
}
