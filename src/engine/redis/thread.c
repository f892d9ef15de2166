/* The Redis engine's thread (a libuv loop: the two links, the submit
 * wakeup, a tick for pings, health and stopping), the vtable and the
 * constructor. */
#include "engine/redis/redis_int.h"

#include <stdio.h>
#include <string.h>

#include "util/clock.h"
#include "util/mem.h"

#define RD_TICK_MS 250
#define RD_PING_EVERY_MS 1000
#define RD_PING_STALE_MS 3000 /* no ping back for this long: not ready */
#define RD_STOP_WAIT_MS 5000

void rd_notice(rd_engine *e, enum engine_notice kind, const char *link, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%s:%d %s: %s", e->host, e->port, link, what);
    if (e->opts.notice) e->opts.notice(e->opts.sink_ctx, kind, msg);
}

/* Every iteration, after its I/O: what the replies and entries of the
 * iteration finished goes to the sink in one call. */
static void after_io_cb(uv_check_t *h)
{
    rd_engine *e = h->data;
    rd_drain(e);
    rd_flush_out(e);
}

static void close_all(rd_engine *e)
{
    if (e->closed) return;
    e->closed = 1;
    uv_timer_stop(&e->tick);
    uv_close((uv_handle_t *)&e->tick, NULL);
    rd_link_close(&e->cmd);
    rd_link_close(&e->note);
    /* Closing the links answered their commands (no reply: PL_EIO); what
     * still waits for the reader never gets its entry now. */
    e->pos = UINT64_MAX;
    rd_drain(e);
    rd_flush_out(e);
    uv_check_stop(&e->after_io);
    uv_close((uv_handle_t *)&e->after_io, NULL);
    uv_close((uv_handle_t *)&e->wake, NULL);
}

static void tick_cb(uv_timer_t *t)
{
    rd_engine *e = t->data;
    int64_t now = clock_wall_ms();
    if (e->cmd.up && now - e->ping_sent_ms >= RD_PING_EVERY_MS) rd_send_ping(e);
    int ok = e->cmd.up && e->note.up && e->pos_known && e->ping_seen_ms &&
             now - e->ping_seen_ms < RD_PING_STALE_MS;
    atomic_store(&e->healthy, ok);
    rd_read_next(e);
    if (e->stop_seen && (!e->a_head || now >= e->stop_deadline_ms)) close_all(e);
}

static void wake_cb(uv_async_t *a)
{
    rd_engine *e = a->data;
    pthread_mutex_lock(&e->mu);
    engine_req *r = e->q_head;
    e->q_head = e->q_tail = NULL;
    int stopping = e->stopping;
    pthread_mutex_unlock(&e->mu);
    rd_start_reqs(e, r);
    if (stopping && !e->stop_seen) {
        e->stop_seen = 1;
        e->stop_deadline_ms = clock_wall_ms() + RD_STOP_WAIT_MS;
    }
}

/* The first command on a new link is a ping: it finds, before any
 * publish of this node runs, whether Redis came back without writes this
 * node had seen (ping_lua). */
static void cmd_up(rd_engine *e)
{
    rd_send_ping(e);
}

static void note_up(rd_engine *e)
{
    rd_read_next(e);
}

static void *engine_main(void *arg)
{
    rd_engine *e = arg;
    pthread_setname_np(pthread_self(), "pl-redis");
    rd_link_connect(&e->cmd);
    rd_link_connect(&e->note);
    uv_timer_start(&e->tick, tick_cb, RD_TICK_MS, RD_TICK_MS);
    uv_check_start(&e->after_io, after_io_cb);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int op_start(engine *base)
{
    rd_engine *e = (rd_engine *)base;
    if (e->running) return PL_OK;
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) return PL_ERR;
    e->running = 1;
    return PL_OK;
}

static void op_submit(engine *base, engine_req *first, engine_req *last)
{
    rd_engine *e = (rd_engine *)base;
    pthread_mutex_lock(&e->mu);
    if (e->q_tail)
        e->q_tail->_next = first;
    else
        e->q_head = first;
    e->q_tail = last;
    pthread_mutex_unlock(&e->mu);
    uv_async_send(&e->wake);
}

static void op_stop(engine *base)
{
    rd_engine *e = (rd_engine *)base;
    if (!e->running) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_mutex_unlock(&e->mu);
    uv_async_send(&e->wake);
    pthread_join(e->thread, NULL);
    e->running = 0;
}

static void op_stats(engine *base, engine_stats *out)
{
    rd_engine *e = (rd_engine *)base;
    pthread_mutex_lock(&e->stats_mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->stats_mu);
}

static int op_healthy(engine *base)
{
    return atomic_load(&((rd_engine *)base)->healthy);
}

/* Routes read a committed log this engine does not keep (the
 * configuration refuses routes with it). */
static uint64_t op_log_events(engine *base, int on)
{
    (void)base;
    (void)on;
    return 0;
}

static void op_free(engine *base)
{
    rd_engine *e = (rd_engine *)base;
    op_stop(base);
    if (e->loop_ready) {
        if (!e->closed) {
            /* Never ran: close the handles the constructor made. */
            uv_close((uv_handle_t *)&e->wake, NULL);
            uv_close((uv_handle_t *)&e->tick, NULL);
            uv_close((uv_handle_t *)&e->after_io, NULL);
            uv_close((uv_handle_t *)&e->cmd.retry, NULL);
            uv_close((uv_handle_t *)&e->note.retry, NULL);
        }
        uv_run(&e->loop, UV_RUN_DEFAULT);
        uv_loop_close(&e->loop);
    }
    while (e->q_head) {
        engine_req *r = e->q_head;
        e->q_head = r->_next;
        engine_req_free(r);
    }
    sbuf_release(&e->key);
    sbuf_release(&e->key2);
    sbuf_release(&e->args);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->stats_mu);
    pl_free(e->out);
    pl_free(e->host);
    pl_free(e->password);
    pl_free(e->prefix);
    for (size_t i = 0; i < e->n_sentinels; i++)
        pl_free(e->sentinels[i]);
    pl_free(e->sentinels);
    pl_free(e->sentinel_master);
    pl_free(e);
}

static const engine_ops redis_ops = {
    .name = "redis",
    .start = op_start,
    .submit = op_submit,
    .stop = op_stop,
    .free = op_free,
    .stats = op_stats,
    .healthy = op_healthy,
    .log_events = op_log_events,
};

static int init_loop(rd_engine *e)
{
    if (uv_loop_init(&e->loop)) return -1;
    uv_async_init(&e->loop, &e->wake, wake_cb);
    uv_timer_init(&e->loop, &e->tick);
    uv_check_init(&e->loop, &e->after_io);
    e->wake.data = e->tick.data = e->after_io.data = e;
    rd_link_init(e, &e->cmd, "commands", cmd_up);
    rd_link_init(e, &e->note, "notify", note_up);
    e->loop_ready = 1;
    return 0;
}

static int copy_sentinels(rd_engine *e, const engine_redis_conf *rc)
{
    if (!rc->n_sentinels) return 1;
    e->sentinels = pl_calloc(rc->n_sentinels, sizeof(*e->sentinels));
    e->sentinel_master = pl_strdup(rc->sentinel_master ? rc->sentinel_master : "");
    if (!e->sentinels || !e->sentinel_master) return 0;
    for (size_t i = 0; i < rc->n_sentinels; i++, e->n_sentinels++)
        if (!(e->sentinels[i] = pl_strdup(rc->sentinels[i]))) return 0;
    return 1;
}

engine *engine_redis_new(const engine_opts *opts, const engine_redis_conf *rc, char *err,
                         size_t errlen)
{
    rd_engine *e = pl_calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "engine: out of memory");
        return NULL;
    }
    e->base.ops = &redis_ops;
    e->opts = *opts;
    if (e->opts.dedup_window_ms <= 0) e->opts.dedup_window_ms = 24LL * 3600 * 1000;
    e->host = pl_strdup(rc->host ? rc->host : "127.0.0.1");
    e->password = rc->password ? pl_strdup(rc->password) : NULL;
    e->prefix = pl_strdup(rc->prefix ? rc->prefix : "parley");
    e->port = rc->port ? rc->port : 6379;
    e->db = rc->db;
    e->notify_maxlen = rc->notify_maxlen ? rc->notify_maxlen : 100000;
    e->min_replicas = rc->min_replicas_acked;
    int ok = copy_sentinels(e, rc);
    clock_ulid(e->node);
    rd_scripts_sha(e->sha);
    sbuf_init(&e->key);
    sbuf_init(&e->key2);
    sbuf_init(&e->args);
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->stats_mu, NULL);
    if (!ok || !e->host || !e->prefix || (rc->password && !e->password)) {
        snprintf(err, errlen, "engine: out of memory");
        op_free(&e->base);
        return NULL;
    }
    if (init_loop(e)) {
        snprintf(err, errlen, "engine: cannot create its event loop");
        op_free(&e->base);
        return NULL;
    }
    return &e->base;
}
