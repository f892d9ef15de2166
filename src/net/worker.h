/* A worker thread and the server that owns the workers: what net/server.c
 * (lifecycle, the hub, the protocol host), net/conn.c and
 * net/server_delivery.c share. Everything in a worker is its own thread's
 * unless marked otherwise; struct server holds the modules, built before
 * the workers start and torn down after they stop. */
#ifndef PL_WORKER_H
#define PL_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "config/config.h"
#include "net/inbox.h"
#include "net/web.h"
#include "obs/metrics.h"
#include "proto/host.h"
#include "util/map.h"
#include "util/sbuf.h"

typedef struct server server;
typedef struct worker worker;
typedef struct conn conn;

struct worker {
    server *srv;
    int index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_tcp_t listener;
    uv_async_t wakeup;
    uv_check_t flusher;
    uv_timer_t pacer; /* wakes the loop for a flush held back by pacing */
    uv_timer_t tick;
    inbox inbox;          /* from the engine thread and other workers */
    inbox_batch batch_in; /* what the last drain took */
    atomic_int stop_accepting;
    atomic_int shutting_down;
    int listener_closed;
    map conns;   /* id (8 bytes) -> conn* */
    conn *all;   /* list head */
    conn *dirty; /* connections with queued output to flush, oldest first */
    conn *dirty_tail;
    conn *urgent; /* the same for answers: written whenever no round runs */
    conn *urgent_tail;
    conn *round_last;            /* the flush round in progress ends after this one; NULL: none */
    int64_t round_busy_us;       /* time the round in progress spent writing */
    uv_idle_t spin;              /* active while a round is in progress */
    int64_t flush_at_us;         /* monotonic: no flush before (0: flush every iteration) */
    void *write_spare;           /* one write request kept for reuse (net/conn.c), owned */
    atomic_size_t backlog_bytes; /* as last measured (conn_backlog); read by /metrics */
    uint64_t next_conn_id;
    char readbuf[65536];
    metrics_shard metrics;
    engine_chain outbox; /* storage requests of this iteration (worker_submit) */
    proto_host host;     /* what the protocol layer uses: fan-out, clocks, pool, scratch */
};

/* ---- the server ---------------------------------------------------------- */

struct server {
    config cfg;
    proto_server ps; /* the services: engine, tenants, keys, audit, presence, limits, delivery */
    worker **workers;
    char *dev_secret; /* single-tenant development secret, or NULL (ps.dev_secret) */
    web_root *web;    /* the web app's files, or NULL when not served */
    int lock_fd;      /* DATA/lock, flocked while the server lives; 0 before */
    atomic_int ready;
    atomic_int workers_up;          /* every worker is initialized: the hub may post to them;
                                     * cleared once the worker threads ended */
    rl_backlog connect_backlog;     /* retry slots of opens refused by connects_per_second */
    atomic_ulong engine_notices[5]; /* by enum engine_notice: links lost, back, resyncs, refusals */
    /* engine-thread staging for the sink, one vector per worker */
    inbox_stage *stage; /* one per worker */
};

/* Reads the clocks into now_ms and now_us: once per event, not per command. */
void worker_clock(worker *w);
void worker_post(worker *w, const inbox_msg *msgs, size_t n);
/* Runs call->fn on every worker (takes the caller's reference). */
void server_call_all(server *srv, proto_call *call);
void server_render_metrics(server *srv, sbuf *out);
/* The worker whose host h is. */
worker *worker_of(proto_host *h);

#endif
