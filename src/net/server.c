/* Server lifecycle, worker threads and the hub that carries the engine's
 * committed pubs and finished requests to the workers in engine order. Each
 * worker owns its connections and subscription table; the only cross-thread
 * traffic is the inbox (mutex + uv_async) and refcounted pubs. */
#include "net/server.h"

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery/delivery.h"
#include "engine/redis/redis.h"
#include "net/server_delivery.h"
#include "auth/apikey_file.h"
#include "net/conn.h"
#include "net/server_delivery.h"
#include "net/web.h"
#include "net/worker.h"
#include "obs/log.h"
#include "hooks/hooks.h"
#include "proto/inbound.h"
#include "util/clock.h"
#include "util/mem.h"

/* ======================================================================
 * Inbox and hub
 * ====================================================================== */

static void call_unref(proto_call *call)
{
    if (atomic_fetch_sub(&call->refs, 1) == 1) call->release(call);
}

static void drop_msg(inbox_msg m)
{
    if (m.type == INBOX_PUB)
        pub_unref(m.ptr);
    else if (m.type == INBOX_CALL)
        call_unref(m.ptr);
    else
        engine_req_free(m.ptr);
}

void server_call_all(server *srv, proto_call *call)
{
    atomic_fetch_add(&call->refs, srv->ps.nworkers - 1);
    for (int i = 0; i < srv->ps.nworkers; i++) {
        inbox_msg m = {INBOX_CALL, call};
        worker_post(srv->workers[i], &m, 1);
    }
}

void worker_clock(worker *w)
{
    w->host.now_ms = clock_wall_ms();
    w->host.now_us = clock_mono_us();
}

void worker_post(worker *w, const inbox_msg *msgs, size_t n)
{
    inbox_post(&w->inbox, msgs, n, drop_msg);
    uv_async_send(&w->wakeup);
}

void server_broadcast_pub(server *srv, pl_pub *pub)
{
    for (int i = 0; i < srv->ps.nworkers; i++) {
        inbox_msg m = {INBOX_PUB, pub_ref(pub)};
        worker_post(srv->workers[i], &m, 1);
    }
}

/* Engine sink (engine thread): committed pubs go to every worker, each
 * finished request to the worker that asked, preserving the engine's order
 * so a READ reply never overtakes a pub it already covers. */
static void hub_sink(void *ctx, engine_req **reqs, size_t n)
{
    server *srv = ctx;
    /* Before the workers exist (the engine answers startup requests first)
     * nobody subscribes and no request has a worker to answer. */
    int nstaged =
        atomic_load_explicit(&srv->workers_up, memory_order_acquire) ? srv->ps.nworkers : 0;
    int committed = 0;
    for (size_t i = 0; i < n; i++) {
        engine_req *r = reqs[i];
        if (r->op == ENGINE_PUBLISH && r->status == PL_OK && !r->duplicate) {
            committed = 1;
            for (int k = 0; k < nstaged; k++) {
                inbox_msg m = {INBOX_PUB, pub_ref(r->pub)};
                inbox_stage_push(&srv->stage[k], &srv->workers[k]->inbox, m, drop_msg);
            }
        }
        if (r->done) {
            r->done(r);
            continue;
        }
        worker *w = r->owner ? worker_of(r->owner) : NULL;
        inbox_msg m = {INBOX_DONE, r};
        if (w)
            inbox_stage_push(&srv->stage[w->index], &w->inbox, m, drop_msg);
        else
            engine_req_free(r);
    }
    for (int k = 0; k < nstaged; k++)
        if (inbox_stage_flush(&srv->stage[k], &srv->workers[k]->inbox, drop_msg))
            uv_async_send(&srv->workers[k]->wakeup);
    /* Routes read the log the commit extended. */
    if (committed) hooks_poke(srv->ps.hooks);
}

/* ======================================================================
 * Worker thread
 * ====================================================================== */

static void handle_msg(worker *w, const inbox_msg *m)
{
    if (m->type == INBOX_CALL) {
        proto_call *call = m->ptr;
        call->fn(&w->host, call);
        call_unref(call);
    } else {
        proto_on_engine_done(&w->host, m->ptr);
    }
}

/* A publish's answer may wait until the pubs around it are fanned out: no
 * order is promised between a reply and pushes. Any other answer keeps its
 * place (a READ's must not overtake a pub it does not cover). */
static int may_wait(const inbox_msg *m)
{
    return m->type == INBOX_DONE && ((const engine_req *)m->ptr)->op == ENGINE_PUBLISH;
}

/* Messages that found no room in the inbox (memory ran short). A lost pub
 * closes its channel's subscribers here with 4002 so they resume by offset;
 * answers and calls are handled as usual (a READ answer before the pubs it
 * covers only makes those pubs be skipped). Unknown losses close every
 * connection of the worker. Never silent: counted and logged. */
static void handle_lost(worker *w, inbox_batch *b)
{
    for (size_t i = 0; i < b->nreserve; i++) {
        inbox_msg *m = &b->reserve[i];
        if (m->type != INBOX_PUB) {
            handle_msg(w, m);
            continue;
        }
        pl_pub *p = m->ptr;
        size_t closed = fanout_lost(w->host.fan, p);
        metrics_add(&w->metrics, M_PUBS_LOST, 1);
        char n[24];
        snprintf(n, sizeof(n), "%zu", closed);
        log_event(LOG_ERROR, "pub_lost", "tenant", p->tenant, "channel", p->channel, "reason",
                  "worker inbox out of memory", "subscribers_closed", n, NULL);
        pub_unref(p);
    }
    if (!b->lost_all) return;
    metrics_add(&w->metrics, M_PUBS_LOST, 1);
    log_event(LOG_ERROR, "pub_lost", "reason", "worker inbox and reserve out of memory", "action",
              "closing every connection of the worker", NULL);
    conn_close_all(w, PC_OVERLOADED, "overloaded");
}

static void drain_inbox(worker *w)
{
    inbox_batch *b = &w->batch_in;
    inbox_take(&w->inbox, b);
    worker_clock(w);
    handle_lost(w, b);
    inbox_msg *msgs = b->msgs;
    size_t n = b->n;
    for (size_t i = 0; i < n;) {
        if (msgs[i].type != INBOX_PUB) {
            handle_msg(w, &msgs[i++]);
            continue;
        }
        /* The engine posts each pub followed by its publish's answer; the
         * pubs of a commit go out together (fanout_pubs joins runs of one
         * channel), then those answers. */
        pl_pub *run[FANOUT_RUN_MAX];
        size_t k = 0, j = i;
        for (; j < n && k < FANOUT_RUN_MAX; j++) {
            if (msgs[j].type == INBOX_PUB)
                run[k++] = msgs[j].ptr;
            else if (!may_wait(&msgs[j]))
                break;
        }
        fanout_pubs(w->host.fan, run, k);
        tail_pubs(w->host.tails, run, k);
        for (; i < j; i++) {
            if (msgs[i].type == INBOX_PUB)
                pub_unref(msgs[i].ptr);
            else
                handle_msg(w, &msgs[i]);
        }
    }
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void worker_backlog_seen(worker *w);

static void on_wakeup(uv_async_t *a)
{
    worker *w = a->data;
    if (atomic_load(&w->stop_accepting) && !w->listener_closed) {
        w->listener_closed = 1;
        close_handle((uv_handle_t *)&w->listener);
    }
    drain_inbox(w);
    worker_backlog_seen(w);
    if (atomic_load(&w->shutting_down) == 1) {
        atomic_store(&w->shutting_down, 2);
        conn_shutdown_all(w);
        worker_clock(w);
        uv_timer_set_repeat(&w->tick, 50);
        uv_timer_again(&w->tick);
    }
}

/* A flush round costs one write syscall per dirty connection, and on
 * loopback the kernel's receive side and the reader's wakeup too: 2.5 to
 * 7 us each on the 2-core bench machine when readers sleep between pubs.
 * At a moderate rate of pubs to a large channel every pub would start its
 * own round, and the rounds alone would fill the core (then queueing sets
 * the latency). So a round that took longer than FLUSH_PACE_MIN_US holds
 * the next one back by as long as it took, at most FLUSH_PACE_MAX_US: the
 * pubs that arrive meanwhile share the next round's writes, and commits and
 * reads get the core. Cheap rounds (small fan-out, replies) are never held
 * back.
 *
 * A round is the connections queued when it starts, written FLUSH_CHUNK at
 * a time with a poll for input between chunks: publishes that arrive while
 * a thousand subscribers are being written are read and committed at once,
 * and reach the subscribers the round has not written yet in this round,
 * instead of waiting for its end and then for the next one. (Fan-out to
 * 1,000 subscribers at 2,200 pubs/s, p99: 21-26 ms with whole rounds and a
 * 3 ms hold, 19-21 ms in chunks, 15.5 ms in chunks with a 1 ms hold, the
 * same max rate.) */
#define FLUSH_PACE_MIN_US 200
#define FLUSH_PACE_MAX_US 1000
#define FLUSH_CHUNK 64

static void on_pacer(uv_timer_t *t);

static void on_spin(uv_idle_t *h)
{
    (void)h; /* only keeps the loop's poll from sleeping while a round runs */
}

/* Starts the next round now or when pacing allows: a connection queued
 * after the last round began must not wait for the next input to wake the
 * loop. */
static void schedule_round(worker *w, int64_t now)
{
    if (!w->dirty) return;
    if (now >= w->flush_at_us) {
        uv_idle_start(&w->spin, on_spin); /* the next turn's check phase */
    } else if (!uv_is_active((uv_handle_t *)&w->pacer)) {
        uv_update_time(&w->loop);
        uv_timer_start(&w->pacer, on_pacer, (uint64_t)(w->flush_at_us - now + 999) / 1000, 0);
    }
}

static void resume_publisher(session *s, void *arg)
{
    (void)arg;
    session_on_drain(s);
}

/* Publishers of every worker slow down while any worker is behind on its
 * writes (sess_flow stops reading them and their answers wait for the end
 * of the round): the pubs they would add are what the subscribers cannot
 * take yet. A worker sets its bit past limits.backlog_bytes and clears it
 * under half of that, waking every worker to read its publishers again.
 * Past limits.backlog_shed_bytes ephemeral publishes and signals are shed
 * with 114 until it is back under the hold mark. */
static void worker_backlog(worker *w, size_t bytes)
{
    proto_server *ps = &w->srv->ps;
    unsigned bit = 1u << (w->index % 32), high = w->srv->cfg.limits.backlog_bytes;
    unsigned was = atomic_load(&ps->backlogged);
    atomic_store_explicit(&w->backlog_bytes, bytes, memory_order_relaxed);
    if (bytes > w->srv->cfg.limits.backlog_shed_bytes)
        atomic_fetch_or(&ps->shedding, bit);
    else if (bytes < high)
        atomic_fetch_and(&ps->shedding, ~bit);
    if (bytes > high && !(was & bit)) {
        atomic_fetch_or(&ps->backlogged, bit);
        metrics_add(&w->metrics, M_BACKLOGGED, 1);
    } else if (bytes < high / 2 && (was & bit) && atomic_fetch_and(&ps->backlogged, ~bit) == bit) {
        for (int i = 0; i < ps->nworkers; i++)
            uv_async_send(&w->srv->workers[i]->wakeup);
    }
}

/* Reads the publishers held for the backlog again once no worker is
 * backlogged: checked at every wakeup, flush and tick while any is held
 * (level, not edge: the backlog may come and go between two looks). */
static void worker_backlog_seen(worker *w)
{
    if (!w->host.held || atomic_load(&w->srv->ps.backlogged)) return;
    conn_each_session(w, resume_publisher, NULL);
}

static void worker_flush(worker *w)
{
    uv_idle_stop(&w->spin);
    worker_backlog_seen(w);
    if (!w->round_last || !atomic_load_explicit(&w->srv->ps.backlogged, memory_order_relaxed))
        conn_flush_urgent(w); /* as conn_flush_dirty: held to the round's end when behind */
    if (!w->dirty) {
        worker_backlog(w, 0);
        return;
    }
    int64_t now = clock_mono_us();
    if (!w->round_last) {
        if (now < w->flush_at_us) {
            schedule_round(w, now);
            return;
        }
        w->round_last = w->dirty_tail;
        w->round_busy_us = 0;
        worker_backlog(w, conn_backlog(w));
    }
    conn_flush_dirty(w, FLUSH_CHUNK);
    int64_t end = clock_mono_us();
    w->round_busy_us += end - now;
    if (w->round_last) {
        uv_idle_start(&w->spin, on_spin);
        return;
    }
    int64_t took = w->round_busy_us;
    w->flush_at_us =
        took > FLUSH_PACE_MIN_US ? end + (took < FLUSH_PACE_MAX_US ? took : FLUSH_PACE_MAX_US) : 0;
    /* A round that wrote everything ends the backlog now: the loop may
     * sleep next, and a held publisher must not wait for the tick. */
    if (!w->dirty) worker_backlog(w, 0);
    schedule_round(w, end);
}

/* ---- the protocol host (proto/host.h) ------------------------------------ */

worker *worker_of(proto_host *h)
{
    return (worker *)((char *)h - offsetof(worker, host));
}

/* Requests of one loop iteration go to the engine together (one queue lock,
 * one wakeup, one commit), in the order of the calls. */
static void host_submit_impl(proto_host *h, engine_req *r)
{
    engine_chain_add(&worker_of(h)->outbox, r);
}

static void relay_done(engine_req *r)
{
    engine_req_free(r);
}

/* Ephemeral pubs and signals go to this node's workers at once and, in
 * cluster mode, through the engine to the other nodes. */
static void host_broadcast(proto_host *h, pl_pub *pub)
{
    worker *w = worker_of(h);
    server_broadcast_pub(w->srv, pub);
    if (w->srv->cfg.engine_type != CFG_ENGINE_REDIS) return;
    engine_req *r = engine_req_new(ENGINE_RELAY);
    if (!r) return; /* ephemeral: at most once, as documented */
    r->pub = pub_ref(pub);
    r->done = relay_done;
    engine_chain_add(&w->outbox, r);
}

static session *host_find(proto_host *h, uint64_t conn_id)
{
    conn *c = conn_find(worker_of(h), conn_id);
    return c ? conn_session(c) : NULL;
}

static void host_respond(proto_host *h, uint64_t conn_id, int status, const char *body, size_t len,
                         int64_t retry_after_ms)
{
    conn *c = conn_find(worker_of(h), conn_id);
    if (c) conn_http_respond(c, status, body, len, retry_after_ms);
}

static pl_sink *host_stream(proto_host *h, uint64_t conn_id, const char *head, size_t len)
{
    conn *c = conn_find(worker_of(h), conn_id);
    return c ? conn_http_stream(c, head, len) : NULL;
}

static void host_each_session(proto_host *h, void (*fn)(session *s, void *arg), void *arg)
{
    conn_each_session(worker_of(h), fn, arg);
}

/* A slow call run on libuv's thread pool: its after callback runs on the
 * worker's loop, which keeps running (even when stopping) until it did. */
typedef struct offload_req {
    uv_work_t req;
    proto_host *h;
    void (*work)(void *arg);
    void (*done)(proto_host *h, void *arg);
    void *arg;
} offload_req;

static void offload_work(uv_work_t *req)
{
    offload_req *o = req->data;
    o->work(o->arg);
}

static void offload_after(uv_work_t *req, int status)
{
    (void)status; /* never cancelled: done always runs */
    offload_req *o = req->data;
    worker_clock(worker_of(o->h));
    o->done(o->h, o->arg);
    pl_free(o);
}

static int host_offload(proto_host *h, void (*work)(void *arg),
                        void (*done)(proto_host *h, void *arg), void *arg)
{
    offload_req *o = pl_calloc(1, sizeof(*o));
    if (!o) return -1;
    *o = (offload_req){.h = h, .work = work, .done = done, .arg = arg};
    o->req.data = o;
    if (uv_queue_work(&worker_of(h)->loop, &o->req, offload_work, offload_after)) {
        pl_free(o);
        return -1;
    }
    return 0;
}

static const proto_host_ops host_ops = {
    .submit = host_submit_impl,
    .broadcast = host_broadcast,
    .find = host_find,
    .respond = host_respond,
    .each_session = host_each_session,
    .stream = host_stream,
    .offload = host_offload,
};

static void on_flush(uv_check_t *h)
{
    worker *w = h->data;
    /* Before the writes: a storage thread on another core commits while
     * this one writes. */
    engine_submit_chain(w->srv->ps.eng, &w->outbox);
    worker_flush(w);
}

static void on_pacer(uv_timer_t *t)
{
    worker_flush(t->data);
}

static void on_tick(uv_timer_t *t)
{
    worker *w = t->data;
    worker_clock(w);
    conn_tick_all(w);
    tail_tick(w->host.tails, w->host.now_ms, w->srv->cfg.ping_interval_ms);
    worker_backlog_seen(w);
    /* Requests, pings and closes queued by the tick go out now, not after
     * the next poll (which may sleep until the next tick). */
    engine_submit_chain(w->srv->ps.eng, &w->outbox);
    conn_flush_dirty(w, SIZE_MAX);
    if (atomic_load(&w->shutting_down) == 2 && !w->all) {
        close_handle((uv_handle_t *)&w->wakeup);
        close_handle((uv_handle_t *)&w->flusher);
        close_handle((uv_handle_t *)&w->pacer);
        close_handle((uv_handle_t *)&w->spin);
        close_handle((uv_handle_t *)&w->tick);
        close_handle((uv_handle_t *)&w->listener);
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    if (status < 0) return;
    conn_on_accept(listener->data, listener);
}

/* The listen address as a sockaddr; -1 with err set when it is not one. */
static int listen_addr(const server *srv, struct sockaddr_storage *addr, char *err, size_t errlen)
{
    if (uv_ip4_addr(srv->cfg.listen_host, srv->cfg.listen_port, (struct sockaddr_in *)addr) &&
        uv_ip6_addr(srv->cfg.listen_host, srv->cfg.listen_port, (struct sockaddr_in6 *)addr)) {
        snprintf(err, errlen, "invalid listen host %s", srv->cfg.listen_host);
        return -1;
    }
    return 0;
}

/* Fails when anything already listens on the address. The workers' own
 * listeners share the port with SO_REUSEPORT (the kernel spreads accepts
 * over them), which would also let a second process join the group and
 * take part of the traffic: a plain bind first, which any listener on the
 * port refuses, keeps the port this process's alone. */
static int check_port_free(const server *srv, const struct sockaddr_storage *addr, char *err,
                           size_t errlen)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* TIME_WAIT is no owner */
    socklen_t len =
        addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int rc = bind(fd, (const struct sockaddr *)addr, len);
    int saved = errno;
    close(fd);
    if (rc == 0) return 0;
    errno = saved;
fail:
    snprintf(err, errlen, "listen on %s:%d: %s%s", srv->cfg.listen_host, srv->cfg.listen_port,
             strerror(errno),
             errno == EADDRINUSE ? " (another process listens there: stop it or choose --listen)"
                                 : "");
    return -1;
}

static int listen_reuseport(worker *w, char *err, size_t errlen)
{
    server *srv = w->srv;
    struct sockaddr_storage addr;
    int rc;
    if (listen_addr(srv, &addr, err, errlen)) return -1;
    if ((rc = uv_tcp_init_ex(&w->loop, &w->listener, addr.ss_family))) goto fail;
    w->listener.data = w;
    uv_os_fd_t fd;
    if ((rc = uv_fileno((uv_handle_t *)&w->listener, &fd))) goto fail;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if ((rc = uv_tcp_bind(&w->listener, (struct sockaddr *)&addr, 0))) goto fail;
    if ((rc = uv_listen((uv_stream_t *)&w->listener, 4096, on_connection))) goto fail;
    return 0;
fail:
    snprintf(err, errlen, "listen on %s:%d: %s", srv->cfg.listen_host, srv->cfg.listen_port,
             uv_strerror(rc));
    return -1;
}

static int worker_init(worker *w, server *srv, int index, char *err, size_t errlen)
{
    w->srv = srv;
    w->index = index;
    map_init_borrowed(&w->conns); /* keys live in the values */
    metrics_shard_init(&w->metrics);
    fanout_env fe = {
        .dlv = srv->ps.dlv,
        .metrics = &w->metrics,
        .encode = proto_encode_pub,
        .shed_above = srv->cfg.limits.outbound_queue_bytes / 2,
        .queue_bound = srv->cfg.limits.outbound_queue_bytes,
        .subscribed = session_subscribed,
    };
    if (!(w->host.fan = fanout_new(&fe))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    proto_host_init(&w->host);
    w->host.ops = &host_ops;
    w->host.srv = &srv->ps;
    w->host.metrics = &w->metrics;
    if (inbox_init(&w->inbox)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    worker_clock(w);
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_check_init(&w->loop, &w->flusher);
    w->flusher.data = w;
    uv_check_start(&w->flusher, on_flush);
    uv_timer_init(&w->loop, &w->pacer);
    uv_idle_init(&w->loop, &w->spin);
    w->pacer.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 1000, 1000);
    return listen_reuseport(w, err, errlen);
}

static void worker_main(void *arg)
{
    worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Nothing is left in practice (every turn ends with a check phase);
     * whatever is goes to the engine's queue, which frees what it never
     * answered, rather than leaking here. */
    engine_submit_chain(w->srv->ps.eng, &w->outbox);
    conn_flush_dirty(w, SIZE_MAX); /* frees connections closed while queued */
}

static void walk_close(uv_handle_t *h, void *arg)
{
    close_handle(h);
}

static void worker_release(worker *w)
{
    /* Walk and close anything left (only on error paths), then drain. */
    uv_walk(&w->loop, walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    inbox_release(&w->inbox, drop_msg);
    pl_free(w->write_spare);
    proto_host_release(&w->host);
    fanout_free(w->host.fan);
    map_release(&w->conns);
    metrics_shard_release(&w->metrics);
}

/* ======================================================================
 * Server
 * ====================================================================== */

char *server_dev_secret_read(const char *data_dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/dev_secret", data_dir);
    char buf[128];
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    return n >= 16 ? pl_strndup(buf, n) : NULL;
}

char *server_dev_secret(const char *data_dir, char *err, size_t errlen)
{
    char *old = server_dev_secret_read(data_dir);
    if (old) return old;
    char path[4096], buf[128];
    snprintf(path, sizeof(path), "%s/dev_secret", data_dir);
    mkdir(data_dir, 0700);
    unsigned char rnd[24];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(err, errlen, "no randomness for the development secret");
        return NULL;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(buf + 2 * i, 3, "%02x", rnd[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, buf, 48) != 48) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    close(fd);
    return pl_strndup(buf, 48);
}

static int count_key(const apikey_entry *e, void *ud)
{
    return 0;
}

static int load_tenants(server *srv, char *err, size_t errlen)
{
    config *cfg = &srv->cfg;
    char path[4200];
    snprintf(path, sizeof(path), "%s/tenants.json", cfg->data_dir);
    if (!(srv->ps.tenants = tenants_new(path)) || !(srv->ps.keys = apikey_store_new())) return -1;
    if (cfg->single_tenant) {
        srv->dev_secret = server_dev_secret(cfg->data_dir, err, errlen);
        if (!srv->dev_secret) return -1;
        srv->ps.dev_secret = srv->dev_secret;
        const char *secrets[] = {srv->dev_secret};
        tenant_spec spec = {.id = "default", .secrets = secrets, .nsecrets = 1};
        return tenants_put(srv->ps.tenants, &spec, 0, err, errlen);
    }
    for (size_t i = 0; i < cfg->n_tenants; i++) {
        const cfg_tenant *t = &cfg->tenants[i];
        tenant_spec spec = {
            .id = t->id,
            .secrets = (const char *const *)t->jwt_secrets,
            .nsecrets = t->n_jwt_secrets,
            .public_keys = (const char *const *)t->jwt_public_keys,
            .npublic_keys = t->n_jwt_public_keys,
            .max_connections = t->max_connections,
            .max_channels = t->max_channels,
            .publishes_per_second = t->publishes_per_second,
            .storage_bytes = t->storage_bytes,
            .history_size = t->history_size,
            .history_ttl_ms = t->history_ttl_ms,
        };
        if (tenants_put(srv->ps.tenants, &spec, 0, err, errlen)) return -1;
        for (size_t k = 0; k < t->n_api_keys; k++) {
            const cfg_api_key *ak = &t->api_keys[k];
            uint32_t mask;
            char id[APIKEY_ID_LEN + 1];
            if (apikey_scopes_parse((const char *const *)ak->scopes, ak->n_scopes, &mask) ||
                apikey_add(srv->ps.keys, t->id, ak->key, strlen(ak->key), mask, clock_wall_ms(),
                           id)) {
                snprintf(err, errlen, "tenant %s: cannot load API key %zu", t->id, k);
                return -1;
            }
        }
    }
    srv->ps.config_keys = apikey_foreach(srv->ps.keys, NULL, count_key, NULL);
    if (apikey_file_load(srv->ps.keys, srv->ps.keys_path, err, errlen)) return -1;
    return tenants_load(srv->ps.tenants, err, errlen);
}

/* ---- the services the protocol layer uses (proto/host.h) ------------------ */

static void ps_call_all(proto_server *ps, proto_call *call)
{
    server_call_all((server *)((char *)ps - offsetof(server, ps)), call);
}

/* Once the worker threads have ended (workers_up cleared) the inboxes are
 * being released: a call posted then would outlive its inbox. */
static void ps_call_one(proto_server *ps, proto_host *h, proto_call *call)
{
    server *srv = (server *)((char *)ps - offsetof(server, ps));
    if (!atomic_load_explicit(&srv->workers_up, memory_order_acquire)) {
        call_unref(call);
        return;
    }
    inbox_msg m = {INBOX_CALL, call};
    worker_post(worker_of(h), &m, 1);
}

static int ps_ready(proto_server *ps)
{
    return atomic_load(&((server *)((char *)ps - offsetof(server, ps)))->ready);
}

static const proto_server_ops server_ops = {
    .call_all = ps_call_all, .call_one = ps_call_one, .ready = ps_ready};

/* Engine thread, once: the engine stopped storing for good (engine.h);
 * /readyz fails from now on, and an operator must restart the server. */
static void engine_fault(void *ctx, const char *what)
{
    (void)ctx;
    log_event(LOG_ERROR, "storage_fault", "error", what, "action",
              "storage is unavailable until an operator restarts the server", NULL);
}

/* Worker: closes every connection so each client resumes by offset. */
static void resume_run(proto_host *h, proto_call *call)
{
    (void)call;
    conn_close_all(worker_of(h), PC_RESUME, "resume required");
}

static void resume_release(proto_call *call)
{
    pl_free(call);
}

/* Engine thread: news of the Redis link. A resync closes every client
 * connection (4004): the node may have missed pubs other nodes stored, and
 * a subscribe with `since` recovers them from Redis or reports the gap. */
static void engine_notice(void *ctx, enum engine_notice kind, const char *what)
{
    server *srv = ctx;
    static const char *const events[] = {"", "redis_down", "redis_up", "redis_resync",
                                         "redis_refused"};
    log_event(kind == ENGINE_UP ? LOG_INFO : LOG_ERROR, events[kind], "detail", what, NULL);
    atomic_fetch_add(&srv->engine_notices[kind], 1);
    if (kind != ENGINE_RESYNC || !atomic_load(&srv->workers_up)) return;
    proto_call *call = pl_calloc(1, sizeof(*call));
    if (!call) return;
    atomic_init(&call->refs, 1);
    call->fn = resume_run;
    call->release = resume_release;
    server_call_all(srv, call);
}

static engine *engine_new(server *srv, char *err, size_t errlen)
{
    engine_opts eo = {
        .data_dir = srv->cfg.data_dir,
        .dedup_window_ms = srv->cfg.dedup_window_ms,
        .ring_size = 128,
        .max_db_bytes = srv->cfg.engine_max_db_bytes,
        .sink = hub_sink,
        .sink_ctx = srv,
        .encode = proto_encode_pub,
        .fault = engine_fault,
        .notice = engine_notice,
    };
    if (srv->cfg.engine_type == CFG_ENGINE_SQLITE) return engine_sqlite_new(&eo, err, errlen);
    const cfg_redis *r = &srv->cfg.redis;
    engine_redis_conf rc = {.host = r->host,
                            .port = r->port,
                            .password = r->password,
                            .db = r->db,
                            .prefix = r->prefix,
                            .notify_maxlen = r->notify_maxlen,
                            .sentinels = (const char *const *)r->sentinels,
                            .n_sentinels = r->n_sentinels,
                            .sentinel_master = r->sentinel_master,
                            .min_replicas_acked = r->min_replicas_acked};
    return engine_redis_new(&eo, &rc, err, errlen);
}

/* The data directory belongs to one server: DATA/lock, held with flock for
 * the process's lifetime (the kernel releases it however the process ends),
 * holds the owner's PID so a second server can say who has it. */
static int lock_data_dir(server *srv, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/lock", srv->cfg.data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "data dir %s: cannot open %s: %s", srv->cfg.data_dir, path,
                 strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(err, errlen,
                 "data dir %s is in use by another parley serve%s%s%s: stop it, or give this "
                 "one another --data",
                 srv->cfg.data_dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        close(fd);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)len, 0) != len) {
        /* The lock holds without the PID; only the message would lack it. */
    }
    srv->lock_fd = fd;
    return 0;
}

/* The web app: cfg.web_root, or else the web/ directory beside the binary
 * when there is one; "" turns it off. A root that cannot be loaded stops the
 * start: pages that silently answer 404 would help no one. */
static int load_web(server *srv, char *err, size_t errlen)
{
    const char *root = srv->cfg.web_root;
    char exe[4096], why[512];
    if (root && !*root) return 0;
    if (!root) {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - sizeof("web"));
        char *slash = n > 0 ? memrchr(exe, '/', (size_t)n) : NULL;
        struct stat st;
        if (!slash) return 0;
        memcpy(slash + 1, "web", sizeof("web"));
        if (stat(exe, &st) || !S_ISDIR(st.st_mode)) return 0;
        root = exe;
    }
    if (!(srv->web = web_load(root, why, sizeof(why)))) {
        snprintf(err, errlen, "web_root %s", why);
        return -1;
    }
    return 0;
}

int server_serves_web(const server *srv)
{
    return srv->web != NULL;
}

server *server_new(config *cfg, char *err, size_t errlen)
{
    server *srv = pl_calloc(1, sizeof(*srv));
    if (!srv) {
        config_release(cfg);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    srv->ps.ops = &server_ops;
    srv->ps.cfg = &srv->cfg;
    pthread_mutex_init(&srv->ps.keys_lock, NULL);
    size_t plen = strlen(srv->cfg.data_dir) + sizeof("/apikeys.json");
    if (!(srv->ps.keys_path = pl_malloc(plen))) goto fail;
    snprintf(srv->ps.keys_path, plen, "%s/apikeys.json", srv->cfg.data_dir);
    if (mkdir(srv->cfg.data_dir, 0700) && errno != EEXIST) {
        snprintf(err, errlen, "data dir %s: %s", srv->cfg.data_dir, strerror(errno));
        goto fail;
    }
    if (lock_data_dir(srv, err, errlen) || load_tenants(srv, err, errlen) ||
        load_web(srv, err, errlen))
        goto fail;
    char apath[4200];
    snprintf(apath, sizeof(apath), "%s/audit.log", srv->cfg.data_dir);
    audit_report ar = {0};
    if (!(srv->ps.audit = audit_open(apath, &ar))) {
        snprintf(err, errlen, "audit log %s: line %llu: %s", apath, (unsigned long long)ar.bad_line,
                 ar.why);
        goto fail;
    }
    if (!(srv->ps.inbound = inbound_new(&srv->cfg, err, errlen))) goto fail;
    srv->ps.presence = presence_new();
    srv->ps.limits = rl_table_new(1 << 20);
    if (!srv->ps.presence || !srv->ps.limits) goto fail;
    srv->ps.nworkers = srv->cfg.workers > 0 ? srv->cfg.workers : (int)uv_available_parallelism();
    if (srv->ps.nworkers < 1) srv->ps.nworkers = 1;
    if (srv->ps.nworkers > 64) srv->ps.nworkers = 64;
    srv->workers = pl_calloc((size_t)srv->ps.nworkers, sizeof(*srv->workers));
    srv->ps.hosts = pl_calloc((size_t)srv->ps.nworkers, sizeof(*srv->ps.hosts));
    srv->stage = pl_calloc((size_t)srv->ps.nworkers, sizeof(*srv->stage));
    if (!srv->workers || !srv->ps.hosts || !srv->stage) goto fail;
    srv->ps.eng = engine_new(srv, err, errlen);
    if (!srv->ps.eng || !(srv->ps.dlv = server_delivery_new(srv))) goto fail;
    hooks_env he = {.cfg = &srv->cfg,
                    .eng = srv->ps.eng,
                    .publish = proto_route_publish,
                    .publish_ctx = &srv->ps,
                    .lifecycle = &srv->ps.lifecycle,
                    .audit = srv->ps.audit};
    if (hooks_new(&he, &srv->ps.hooks, err, errlen) != PL_OK) goto fail;
    return srv;
fail:
    if (!err[0]) snprintf(err, errlen, "out of memory");
    server_free(srv);
    return NULL;
}

void server_free(server *srv)
{
    if (!srv) return;
    hooks_free(srv->ps.hooks);
    web_free(srv->web);
    delivery_free(srv->ps.dlv);
    engine_free(srv->ps.eng);
    presence_free(srv->ps.presence);
    inbound_free(srv->ps.inbound);
    rl_table_free(srv->ps.limits);
    tenants_free(srv->ps.tenants);
    apikey_store_free(srv->ps.keys);
    audit_close(srv->ps.audit);
    for (int i = 0; i < srv->ps.nworkers && srv->stage; i++)
        inbox_stage_release(&srv->stage[i]);
    for (int i = 0; i < srv->ps.nworkers && srv->workers; i++)
        pl_free(srv->workers[i]);
    pl_free(srv->workers);
    pl_free(srv->ps.hosts);
    pl_free(srv->ps.keys_path);
    pthread_mutex_destroy(&srv->ps.keys_lock);
    pl_free(srv->stage);
    pl_free(srv->dev_secret);
    if (srv->lock_fd > 0) close(srv->lock_fd); /* releases the data dir */
    config_release(&srv->cfg);
    pl_free(srv);
}

/* The storage engine's figures: commit batches and latency, failures and
 * duplicates found. */
static void render_engine_stats(sbuf *o, const engine_stats *es)
{
    double bb[12], cb[12];
    static const double commit_us[11] = {100,   250,   500,   1000,   2500,  5000,
                                         10000, 25000, 50000, 100000, 250000};
    for (unsigned i = 0; i < 11; i++) {
        bb[i] = (double)(1u << i);
        cb[i] = commit_us[i] / 1e6;
    }
    bb[11] = cb[11] = 0;
    metrics_histogram(o, "parley_commit_batch_size", "Publishes per storage commit (group commit).",
                      bb, es->batch_hist, 12, (double)es->committed_pubs, es->commits);
    metrics_histogram(o, "parley_commit_latency_seconds", "Storage commit latency including fsync.",
                      cb, es->commit_lat_hist, 12, (double)es->commit_us_total / 1e6, es->commits);
    metrics_counter(o, "parley_commit_failures_total",
                    "Storage commits that failed (answered 113).", "counter", es->commit_failures);
    metrics_counter(o, "parley_engine_duplicates_total",
                    "Idempotency-key duplicates found by the engine.", "counter", es->duplicates);
}

/* The Redis engine's link: commands, lag behind the notification stream,
 * and what happened to the link (engine_notice). */
static void render_engine_link(server *srv, sbuf *o, const engine_stats *es)
{
    static const char *const names[] = {"", "down", "up", "resync", "refused"};
    if (srv->cfg.engine_type != CFG_ENGINE_REDIS) return;
    metrics_counter(o, "parley_engine_round_trips_total",
                    "Writes of the command link to Redis, at the last ping (each carries every "
                    "command queued since the previous one).",
                    "counter", es->round_trips);
    metrics_counter(o, "parley_engine_notify_lag",
                    "Entries of the notification stream this node had not handed on at the "
                    "last ping.",
                    "gauge", es->notify_lag);
    metrics_counter(o, "parley_engine_ready", "1 while this node can store and deliver.", "gauge",
                    (uint64_t)engine_healthy(srv->ps.eng));
    sbuf_puts(o, "# HELP parley_engine_link_events_total Redis link events: down, up, resync "
                 "(clients told to resume), refused (Redis answered an error).\n"
                 "# TYPE parley_engine_link_events_total counter\n");
    for (int k = ENGINE_DOWN; k <= ENGINE_REFUSED; k++) {
        sbuf_printf(o, "parley_engine_link_events_total{event=\"%s\"} ", names[k]);
        sbuf_u64(o, atomic_load(&srv->engine_notices[k]));
        sbuf_putc(o, '\n');
    }
}

void server_render_metrics(server *srv, sbuf *out)
{
    metrics_shard *shards[64];
    for (int i = 0; i < srv->ps.nworkers; i++)
        shards[i] = &srv->workers[i]->metrics;
    engine_stats es;
    engine_get_stats(srv->ps.eng, &es);
    metrics_render(out, shards, srv->ps.nworkers, session_method_names, session_method_count);
    render_engine_stats(out, &es);
    render_engine_link(srv, out, &es);
    inbound_render_metrics(srv->ps.inbound, out);
    if (srv->ps.hooks) hooks_render_metrics(srv->ps.hooks, out);
    size_t backlog = 0;
    for (int i = 0; i < srv->ps.nworkers; i++)
        backlog += atomic_load_explicit(&srv->workers[i]->backlog_bytes, memory_order_relaxed);
    metrics_counter(out, "parley_backlog_bytes",
                    "Output waiting for the workers to write it, as last measured.", "gauge",
                    backlog);
    metrics_counter(out, "parley_backlogged_workers",
                    "Workers past limits.backlog_bytes now (publishers are slowed).", "gauge",
                    (uint64_t)__builtin_popcount(atomic_load(&srv->ps.backlogged)));
    long sq = atomic_load(&srv->ps.storage_queue);
    metrics_counter(out, "parley_storage_queue",
                    "Stored publishes submitted and not yet answered by storage.", "gauge",
                    sq > 0 ? (uint64_t)sq : 0);
    sbuf_puts(out, "# HELP parley_presence_entries Clients present in channels.\n"
                   "# TYPE parley_presence_entries gauge\nparley_presence_entries ");
    sbuf_u64(out, presence_entries(srv->ps.presence));
    sbuf_putc(out, '\n');
    delivery_stats ds;
    delivery_get_stats(srv->ps.dlv, &ds);
    sbuf_printf(out,
                "# HELP parley_redeliveries_total Guaranteed pubs sent again after no ack.\n"
                "# TYPE parley_redeliveries_total counter\nparley_redeliveries_total %llu\n"
                "# HELP parley_acks_total Guaranteed deliveries acknowledged.\n"
                "# TYPE parley_acks_total counter\nparley_acks_total %llu\n"
                "# HELP parley_dead_lettered_total Guaranteed deliveries moved to the DLQ.\n"
                "# TYPE parley_dead_lettered_total counter\nparley_dead_lettered_total %llu\n"
                "# HELP parley_ack_latency_seconds Time from (re)send to ack.\n"
                "# TYPE parley_ack_latency_seconds summary\n"
                "parley_ack_latency_seconds_sum %.6f\nparley_ack_latency_seconds_count %llu\n",
                (unsigned long long)ds.redeliveries, (unsigned long long)ds.acks,
                (unsigned long long)ds.dead_lettered, (double)ds.ack_latency_us_sum / 1e6,
                (unsigned long long)ds.ack_count);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    server *srv = sig->data;
    log_event(LOG_INFO, "shutdown", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    atomic_store(&srv->ready, 0);
    uv_stop(sig->loop);
}

int server_run(server *srv)
{
    char err[512] = "";
    int started = 0, rc = 1;
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_storage addr;
    if (listen_addr(srv, &addr, err, sizeof(err)) ||
        check_port_free(srv, &addr, err, sizeof(err))) {
        log_event(LOG_ERROR, "startup_failed", "error", err, NULL);
        return 1;
    }
    if (engine_start(srv->ps.eng)) {
        log_event(LOG_ERROR, "engine_start_failed", NULL);
        return 1;
    }
    if (delivery_start(srv->ps.dlv) || hooks_start(srv->ps.hooks)) {
        log_event(LOG_ERROR, "delivery_start_failed", NULL);
        delivery_stop(srv->ps.dlv);
        engine_stop(srv->ps.eng);
        return 1;
    }
    for (int i = 0; i < srv->ps.nworkers; i++) {
        worker *w = srv->workers[i] = pl_calloc(1, sizeof(worker));
        if (!w || worker_init(w, srv, i, err, sizeof(err))) goto out;
        srv->ps.hosts[i] = &w->host;
    }
    atomic_store_explicit(&srv->workers_up, 1, memory_order_release);
    for (int i = 0; i < srv->ps.nworkers; i++, started++)
        uv_thread_create(&srv->workers[i]->thread, worker_main, srv->workers[i]);
    atomic_store(&srv->ready, 1);
    char port[16], nw[16];
    snprintf(port, sizeof(port), "%d", srv->cfg.listen_port);
    snprintf(nw, sizeof(nw), "%d", srv->ps.nworkers);
    log_event(LOG_INFO, "listening", "host", srv->cfg.listen_host, "#port", port, "#workers", nw,
              "data_dir", srv->cfg.data_dir, "engine", srv->ps.eng->ops->name, NULL);

    uv_loop_t main_loop;
    uv_loop_init(&main_loop);
    uv_signal_t sigterm, sigint;
    uv_signal_init(&main_loop, &sigterm);
    uv_signal_init(&main_loop, &sigint);
    sigterm.data = sigint.data = srv;
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_run(&main_loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_run(&main_loop, UV_RUN_DEFAULT);
    uv_loop_close(&main_loop);
    rc = 0;
out:
    if (err[0]) log_event(LOG_ERROR, "startup_failed", "error", err, NULL);
    /* Stop accepting, let every submitted publish commit and its reply reach
     * the workers, then disconnect clients with PC_SHUTDOWN and stop the loops. */
    for (int i = 0; i < started; i++) {
        atomic_store(&srv->workers[i]->stop_accepting, 1);
        uv_async_send(&srv->workers[i]->wakeup);
    }
    delivery_stop(srv->ps.dlv);
    hooks_stop(srv->ps.hooks); /* before the engine: it waits for its reads */
    engine_stop(srv->ps.eng);
    for (int i = 0; i < started; i++) {
        atomic_store(&srv->workers[i]->shutting_down, 1);
        uv_async_send(&srv->workers[i]->wakeup);
    }
    for (int i = 0; i < started; i++)
        uv_thread_join(&srv->workers[i]->thread);
    atomic_store_explicit(&srv->workers_up, 0, memory_order_release); /* ps_call_one */
    for (int i = 0; i < srv->ps.nworkers; i++)
        if (srv->workers[i] && srv->workers[i]->srv) worker_release(srv->workers[i]);
    log_event(LOG_INFO, "stopped", NULL);
    return rc;
}
