/* The engine's two Redis connections: one for commands (pipelined: hiredis
 * writes every command queued in a loop iteration in one go) and one that
 * blocks in XREAD on the notification stream. Each reconnects with backoff
 * (100 ms doubling to 2 s) for as long as the engine runs. */
#include "engine/redis/redis_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/mem.h"

#define RD_BACKOFF_MIN_MS 100u /* reconnect delays */
#define RD_BACKOFF_MAX_MS 2000

/* hiredis's event hooks on a uv_poll. Not hiredis's own libuv adapter: it
 * drops a poll error, so a connect that failed asynchronously (ECONNREFUSED
 * while Redis restarts) never reached hiredis and the link hung forever.
 * Here an error is handed to hiredis as readiness, and it finds the error
 * itself. */
typedef struct rd_events {
    redisAsyncContext *ac; /* NULL once hiredis let go of the context */
    uv_poll_t poll;
    int events;
} rd_events;

static void poll_cb(uv_poll_t *h, int status, int events)
{
    rd_events *p = h->data;
    if (status < 0) events = UV_READABLE | UV_WRITABLE;
    if (p->ac && (events & UV_WRITABLE)) {
        /* One write carries every command queued since the last: a round
         * trip, however many commands it pipelines. */
        ((rd_link *)p->ac->data)->writes++;
        redisAsyncHandleWrite(p->ac);
    }
    if (p->ac && (events & UV_READABLE)) redisAsyncHandleRead(p->ac);
}

static void ev_set(rd_events *p, int events)
{
    p->events = events;
    if (events)
        uv_poll_start(&p->poll, events, poll_cb);
    else
        uv_poll_stop(&p->poll);
}

static void ev_add_read(void *d)
{
    rd_events *p = d;
    ev_set(p, p->events | UV_READABLE);
}

static void ev_del_read(void *d)
{
    rd_events *p = d;
    ev_set(p, p->events & ~UV_READABLE);
}

static void ev_add_write(void *d)
{
    rd_events *p = d;
    ev_set(p, p->events | UV_WRITABLE);
}

static void ev_del_write(void *d)
{
    rd_events *p = d;
    ev_set(p, p->events & ~UV_WRITABLE);
}

static void ev_closed(uv_handle_t *h)
{
    pl_free(h->data);
}

static void ev_cleanup(void *d)
{
    rd_events *p = d;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, ev_closed);
}

static int ev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    rd_events *p = pl_calloc(1, sizeof(*p));
    if (!p) return -1;
    if (uv_poll_init(loop, &p->poll, ac->c.fd)) {
        pl_free(p);
        return -1;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return 0;
}

static void retry_cb(uv_timer_t *t)
{
    rd_link_connect(t->data);
}

static void schedule_retry(rd_link *l)
{
    if (l->e->stop_seen) return;
    uv_timer_start(&l->retry, retry_cb, l->backoff_ms, 0);
    l->backoff_ms = l->backoff_ms * 2 > RD_BACKOFF_MAX_MS ? RD_BACKOFF_MAX_MS : l->backoff_ms * 2;
}

static void went_down(rd_link *l, const char *why)
{
    int was_up = l->up;
    l->up = 0;
    l->ac = NULL;
    if (!l->down_since_ms) l->down_since_ms = clock_wall_ms();
    atomic_store(&l->e->healthy, 0);
    if (was_up || l->backoff_ms == RD_BACKOFF_MIN_MS) rd_notice(l->e, ENGINE_DOWN, l->name, why);
    schedule_retry(l);
}

/* A greeting command failed (wrong password, no such db, no scripting):
 * the link is no use, say why and start over. */
static void greet_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    rd_link *l = priv;
    if (reply && reply->type != REDIS_REPLY_ERROR) return;
    if (!reply) return; /* the link went down: its own callback says so */
    rd_notice(l->e, ENGINE_REFUSED, l->name, reply->str);
    redisAsyncDisconnect(ac);
}

/* Behind Sentinel the link must reach the master: a demoted one (a
 * failover happened, its old address still answers) is left at once, and
 * the sentinels asked again. */
static void role_cb(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    rd_link *l = priv;
    if (!reply) return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements &&
        reply->element[0]->type == REDIS_REPLY_STRING && !strcmp(reply->element[0]->str, "master"))
        return;
    rd_notice(l->e, ENGINE_REFUSED, l->name, "not the master (asking the sentinels again)");
    redisAsyncDisconnect(ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rd_link *l = ac->data;
    if (status != REDIS_OK) {
        went_down(l, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    rd_engine *e = l->e;
    l->up = 1;
    l->backoff_ms = RD_BACKOFF_MIN_MS;
    if (l->down_since_ms) rd_notice(e, ENGINE_UP, l->name, "connected");
    l->down_since_ms = 0;
    redisAsyncContext *c = (redisAsyncContext *)ac;
    if (e->password) redisAsyncCommand(c, greet_cb, l, "AUTH %s", e->password);
    if (e->n_sentinels) redisAsyncCommand(c, role_cb, l, "ROLE");
    if (e->db) redisAsyncCommand(c, greet_cb, l, "SELECT %d", e->db);
    for (int s = 0; s < RD_SC_COUNT; s++)
        redisAsyncCommand(c, greet_cb, l, "SCRIPT LOAD %s", rd_script_text((enum rd_script)s));
    if (l->on_up) l->on_up(e);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rd_link *l = ac->data;
    (void)status;
    went_down(l, ac->errstr[0] ? ac->errstr : "connection closed");
}

void rd_link_init(rd_engine *e, rd_link *l, const char *name, void (*on_up)(rd_engine *))
{
    memset(l, 0, sizeof(*l));
    l->e = e;
    l->name = name;
    l->on_up = on_up;
    l->backoff_ms = RD_BACKOFF_MIN_MS;
    l->down_since_ms = clock_wall_ms();
    uv_timer_init(&e->loop, &l->retry);
    l->retry.data = l;
}

/* Asks the sentinels, in order, for the master's address into host/port:
 * 0, or -1 with why when none named it. Blocking, at most 250 ms per
 * sentinel, and only while a link (re)connects: the master is unknown or
 * gone then, and nothing else on this thread can reach Redis anyway. */
static int ask_sentinels(rd_engine *e, char *why, size_t whylen)
{
    const struct timeval tv = {0, 250000};
    snprintf(why, whylen, "no sentinel configured");
    for (size_t i = 0; i < e->n_sentinels; i++) {
        char host[256];
        const char *colon = strrchr(e->sentinels[i], ':');
        size_t hn = colon ? (size_t)(colon - e->sentinels[i]) : 0;
        if (!hn || hn >= sizeof(host)) continue;
        memcpy(host, e->sentinels[i], hn);
        host[hn] = '\0';
        redisContext *c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
        redisReply *r = NULL;
        if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK)
            r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", e->sentinel_master);
        int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                 r->element[0]->type == REDIS_REPLY_STRING &&
                 r->element[1]->type == REDIS_REPLY_STRING;
        char *addr = ok ? pl_strdup(r->element[0]->str) : NULL;
        if (addr) {
            pl_free(e->host);
            e->host = addr;
            e->port = atoi(r->element[1]->str);
        } else {
            snprintf(why, whylen, "sentinel %s: %s", e->sentinels[i],
                     !c || c->err                        ? (c ? c->errstr : "out of memory")
                     : r && r->type == REDIS_REPLY_ERROR ? r->str
                                                         : "does not know the master");
        }
        if (r) freeReplyObject(r);
        if (c) redisFree(c);
        if (addr) return 0;
    }
    return -1;
}

void rd_link_connect(rd_link *l)
{
    rd_engine *e = l->e;
    if (l->ac || e->stop_seen) return;
    char why[300];
    if (e->n_sentinels && ask_sentinels(e, why, sizeof(why))) {
        went_down(l, why);
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(e->host, e->port);
    if (!ac || ac->err) {
        went_down(l, ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        return;
    }
    ac->data = l;
    if (ev_attach(ac, &e->loop)) {
        redisAsyncFree(ac);
        went_down(l, "cannot watch the socket");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    l->ac = ac;
}

/* Stops for good: pending commands' callbacks run with no reply. */
void rd_link_close(rd_link *l)
{
    uv_timer_stop(&l->retry);
    uv_close((uv_handle_t *)&l->retry, NULL);
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    l->up = 0;
    if (ac) {
        ac->onDisconnect = NULL;
        redisAsyncFree(ac);
    }
}

int rd_cmd(rd_link *l, redisCallbackFn *fn, void *priv, int argc, const char **argv,
           const size_t *lens)
{
    if (!l->up || !l->ac) return -1;
    return redisAsyncCommandArgv(l->ac, fn, priv, argc, argv, lens) == REDIS_OK ? 0 : -1;
}
