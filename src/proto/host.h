/* What the protocol layer (client sessions and the HTTP API) needs from the
 * server that runs it, handed in by net: the server-wide services
 * (proto_server) and, per worker thread, a proto_host with the worker's own
 * tables and a few operations. The protocol layer never sees a socket, a
 * loop or a worker; unit tests build both structs around fakes
 * (tests/unit/session_helpers.c).
 *
 * Threading: a proto_host and everything reached through it is used by its
 * worker's thread only, except where a member says otherwise. */
#ifndef PL_PROTO_HOST_H
#define PL_PROTO_HOST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/apikey.h"
#include "auth/ratelimit.h"
#include "auth/tenants.h"
#include "broker/fanout.h"
#include "broker/presence.h"
#include "config/config.h"
#include "delivery/delivery.h"
#include "engine/engine.h"
#include "obs/audit.h"
#include "obs/metrics.h"
#include "proto/command.h"
#include "proto/tail.h"
#include "util/sbuf.h"

typedef struct proto_host proto_host;
typedef struct proto_server proto_server;
typedef struct session session;
typedef struct inbound inbound;
typedef struct hooks hooks;

/* A function run on every worker (the server API's actions on live
 * connections, resends of guaranteed pubs). Reference counted: the poster
 * holds one, call_all takes it, the last worker to run it calls release. */
typedef struct proto_call {
    atomic_int refs;
    void (*fn)(proto_host *h, struct proto_call *call);
    void (*release)(struct proto_call *call);
} proto_call;

/* Server-wide operations. Any thread. */
typedef struct proto_server_ops {
    /* Runs call->fn on every worker, taking the caller's reference. */
    void (*call_all)(proto_server *ps, proto_call *call);
    /* Runs call->fn on the worker of h only, taking the caller's
     * reference: how an answer gathered on other threads gets back to the
     * worker that owns the asking connection. Once the workers have
     * stopped, the call is released without running. */
    void (*call_one)(proto_server *ps, proto_host *h, proto_call *call);
    /* 1 while the server is ready (not starting, not shutting down). */
    int (*ready)(proto_server *ps);
} proto_server_ops;

/* The server-wide services. Filled by the server before any worker starts;
 * the pointers stay valid until every worker has stopped. */
struct proto_server {
    const proto_server_ops *ops;
    const config *cfg;
    engine *eng;
    tenants *tenants;   /* configured and API-created tenants */
    apikey_store *keys; /* the configured ones first, then API-created */
    size_t config_keys; /* how many configured keys lead the store */
    char *keys_path;    /* where API-created keys persist (hashes only), owned by the server */
    pthread_mutex_t keys_lock; /* serializes writing keys_path */
    audit_log *audit;          /* administrative actions; NULL refuses them */
    const char *dev_secret;    /* single-tenant development secret, or NULL */
    presence *presence;
    rl_table *limits; /* rate buckets and connection counters shared by all workers */
    delivery *dlv;
    inbound *inbound; /* the inbound webhook sources (proto/inbound.h); NULL: none */
    hooks *hooks;     /* outbound webhooks and routes (hooks/hooks.h); NULL: not running */
    int nworkers;
    proto_host **hosts; /* every worker's host: read-only from other threads (metrics) */
    /* Overload signals, any thread: stored publishes submitted and not yet
     * answered (proto_submit_pub), and one bit per worker whose unwritten
     * output passed limits.backlog_bytes (publishers wait) or
     * limits.backlog_shed_bytes
     * (ephemeral work is shed), set and cleared by net. */
    atomic_long storage_queue;
    atomic_uint backlogged;
    atomic_uint shedding;
    /* Lifecycle events to record (LIFECYCLE_* bits), set by the hooks
     * service while a route names their channel; any thread. */
    atomic_uint lifecycle;
    /* 1 while an audit.list reads the audit log (proto/api_ops.c): one at a
     * time, as each reads the whole file; any thread. */
    atomic_int audit_reading;
};

#define LIFECYCLE_CLIENT 1u   /* $sys:clients: connect, disconnect, subscribe, unsubscribe */
#define LIFECYCLE_PRESENCE 2u /* $sys:presence: join, leave */

/* Per-worker operations; the worker's thread only. */
typedef struct proto_host_ops {
    /* Hands r to the engine at the end of the loop iteration, with every
     * other request of the iteration; the engine owns r from here. Requests
     * keep the order of the calls. */
    void (*submit)(proto_host *h, engine_req *r);
    /* Posts pub to every worker's fan-out (each takes its own reference). */
    void (*broadcast)(proto_host *h, pl_pub *pub);
    /* The session of a live connection of this worker, or NULL (closed, or
     * not upgraded). Engine answers find their connection so. */
    session *(*find)(proto_host *h, uint64_t conn_id);
    /* Answers the pending HTTP API request of a connection of this worker
     * with a JSON body (no-op when the connection is gone); retry_after_ms
     * > 0 adds a Retry-After header (whole seconds, rounded up). */
    void (*respond)(proto_host *h, uint64_t conn_id, int status, const char *body, size_t len,
                    int64_t retry_after_ms);
    /* Calls fn for every session of this worker (fn may close, not free). */
    void (*each_session)(proto_host *h, void (*fn)(session *s, void *arg), void *arg);
    /* Answers the HTTP API request being handled with a stream instead of
     * one body: writes head (status line and header lines, CRLF-ended; the
     * connection adds its own and the blank line) and returns the
     * connection's sink, open until the client goes, which then removes it
     * from `tails`. NULL when the connection is gone or out of memory. */
    pl_sink *(*stream)(proto_host *h, uint64_t conn_id, const char *head, size_t len);
    /* Runs work(arg) on a pool thread, then done(h, arg) on this worker:
     * for a slow call (reading a large file) that must not stall the
     * worker's connections. work may not touch the worker's state. 0, or
     * -1 when it could not be queued (nothing runs). The worker stops only
     * after done ran. */
    int (*offload)(proto_host *h, void (*work)(void *arg), void (*done)(proto_host *h, void *arg),
                   void *arg);
} proto_host_ops;

/* The session of the storage answer being handled (conn_id 0: none). */
typedef struct proto_answer {
    uint64_t conn_id;
    session *s;
} proto_answer;

struct proto_host {
    const proto_host_ops *ops;
    proto_server *srv;
    fanout *fan;              /* channels and users of this worker's connections */
    metrics_shard *metrics;   /* this worker's; other threads only read it */
    engine_req_pool req_pool; /* blocks of answered requests (proto_req_new) */
    proto_batch batch;        /* reused by the command decoder */
    sbuf scratch;             /* reused for replies */
    int64_t now_ms;           /* wall clock, read once per event by the worker */
    int64_t now_us;           /* monotonic, read with now_ms */
    uint32_t held;            /* sessions not read while a worker is backlogged (sess_flow) */
    proto_answer answer;      /* set by proto_on_engine_done around a done handler */
    tail_set *tails;          /* live tails on this worker's connections (proto/tail.h) */
};

/* Sets up the host's own members (pool, batch, scratch); ops, srv, fan and
 * metrics are the caller's to fill. */
void proto_host_init(proto_host *h);
void proto_host_release(proto_host *h);

/* The tenant with this id (any id in single-tenant mode: the one tenant);
 * valid for the server's lifetime. NULL if unknown. */
const tenant *proto_tenant(const proto_server *ps, const char *id);

#endif
