/* Internals shared by the server's files (net/server.c, net/conn.c,
 * broker/fanout.c, proto/session.c): the top-level struct server, its
 * workers and their connections. Everything here is owned by one worker
 * thread unless marked otherwise.
 *
 * Connection lifecycle:
 *
 *   accept -> CS_HTTP --GET /ws + valid upgrade--> CS_WS --connect ok--> (session)
 *                |  \--GET /sse + valid token-----> CS_SSE
 *                \--other routes: respond, keep-alive or close
 *   any state --error, timeout, shutdown, peer close--> CS_CLOSING -> freed in on_close
 */
#ifndef PL_SERVER_INT_H
#define PL_SERVER_INT_H

#include <http_parser.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "auth/jwt.h"
#include "auth/apikey.h"
#include "auth/ratelimit.h"
#include "auth/tenants.h"
#include "obs/audit.h"
#include "broker/fanout.h"
#include "broker/presence.h"
#include "broker/sink.h"
#include "engine/engine.h"
#include "net/inbox.h"
#include "net/ws.h"
#include "obs/metrics.h"
#include "proto/command.h"
#include "config/config.h"
#include "util/map.h"
#include "util/sbuf.h"

typedef struct server server;
typedef struct worker worker;
typedef struct conn conn;
typedef struct sub sub;
typedef struct session session;

/* ---- subscriptions (proto/session.c) -------------------------------------- */

struct sub {
    fanout_sub f; /* first: what fan-out sees (state, last offset, sink) */
    char *channel; /* owned */
    engine_req *pending; /* guaranteed pubs awaiting this user, until the READ answers */
    const cfg_namespace *ns;
    uint8_t in_presence;
    char epoch[PUB_EPOCH_LEN + 1];
    uint32_t gen;           /* matches engine replies to this incarnation */
    uint32_t page_limit;    /* catch-up page size, tuned so a page fits the queue */
    int64_t last_typing_ms; /* typing throttle where the namespace keeps no roster */
    uint8_t read_inflight;
};

typedef struct out_item {
    void *ref; /* pl_pub* or rbuf*, one reference owned by the queue */
    uint32_t kind;
    uint32_t len;
} out_item;

/* ---- connections (net/conn.c) -------------------------------------------- */

enum conn_state { CS_HTTP, CS_WS, CS_SSE, CS_CLOSING };
enum { DIRTY_QUEUED = 1, DIRTY_GONE = 2 };

typedef struct http_req http_req;

struct conn {
    uv_tcp_t tcp; /* first: handle->data is not needed to find the conn */
    pl_sink out;  /* id, kind (WS or SSE once upgraded), queued bytes, closed */
    worker *w;
    uint8_t state;
    uint8_t writing;
    uint8_t dirty; /* 0, DIRTY_QUEUED or DIRTY_GONE (closed while queued) */
    uint8_t close_after_flush;
    uint8_t ip_family; /* 0 when not counted against max_connections_per_ip */
    uint8_t ip[16];
    uint16_t close_code; /* WebSocket close code once closing was decided */
    http_req *http;      /* only in CS_HTTP */
    ws_session *ws;      /* WebSocket parser; freed while idle (no partial frame) */
    session *s;          /* after a successful connect (WS) or SSE open */
    out_item *q;
    uint32_t qhead, qlen, qcap;
    uint32_t reply_room; /* > 0: the last queued item is a reply buffer with this much room */
    int64_t deadline_ms; /* handshake / close deadline; 0 = none */
    int64_t last_rx_ms;  /* last bytes from the peer (idle_timeout) */
    int64_t next_ping_ms;
    int64_t pong_deadline_ms;
    conn *dirty_next;
    conn *prev, *next; /* worker's list of all connections */
};

/* ---- workers (net/server.c) --------------------------------------------- */


/* A function run on every worker (server API actions on live connections);
 * refcounted, freed by the last worker to run it. */
typedef struct worker_call {
    atomic_int refs;
    void (*fn)(worker *w, struct worker_call *call);
    void (*release)(struct worker_call *call);
} worker_call;


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
    fanout *fan;  /* channels and users of this worker's connections */
    map conns;    /* id (8 bytes) -> conn* */
    conn *all;    /* list head */
    conn *dirty;  /* connections with queued output to flush, oldest first */
    conn *dirty_tail;
    conn *urgent; /* the same for answers: written whenever no round runs */
    conn *urgent_tail;
    conn *round_last;      /* the flush round in progress ends after this one; NULL: none */
    int64_t round_busy_us; /* time the round in progress spent writing */
    uv_idle_t spin;        /* active while a round is in progress */
    int64_t flush_at_us;   /* monotonic: no flush before (0: flush every iteration) */
    void *write_spare;     /* one write request kept for reuse (net/conn.c), owned */
    uint64_t next_conn_id;
    proto_batch batch; /* reused by the command decoder */
    sbuf scratch;      /* reused for replies */
    char readbuf[65536];
    metrics_shard metrics;
    engine_chain outbox;                 /* storage requests of this iteration (worker_submit) */
    engine_req_pool req_pool;            /* blocks of answered requests (proto_req_new) */
    int64_t now_ms;                      /* wall clock, cached per event (worker_clock) */
    int64_t now_us;                      /* monotonic, cached with now_ms */
};

/* ---- the server ---------------------------------------------------------- */

struct server {
    config cfg;
    engine *eng;
    int nworkers;
    worker **workers;
    tenants *tenants;   /* configured and API-created tenants */
    apikey_store *keys; /* API keys, hashed: the configured ones first, then API-created */
    size_t config_keys; /* how many configured keys lead the store */
    pthread_mutex_t keys_file_lock;
    audit_log *audit; /* administrative actions, hash-chained */
    char *dev_secret; /* single-tenant development secret, or NULL */
    presence *presence;
    rl_table *limits;          /* rate buckets and connection counters shared by all workers */
    struct delivery *delivery; /* guaranteed delivery manager (own thread) */
    atomic_int ready;
    /* engine-thread staging for the sink, one vector per worker */
    inbox_stage *stage; /* one per worker */
};

/* net/server.c */
/* Reads the clocks into now_ms and now_us: once per event, not per command. */
void worker_clock(worker *w);
void worker_post(worker *w, const inbox_msg *msgs, size_t n);
/* Hands r to the engine at the end of the loop iteration, with every other
 * request of the iteration (one queue lock, one wakeup, one commit). Requests
 * keep the order of the calls; the engine owns r from here. */
void worker_submit(worker *w, engine_req *r);
/* Posts a pub (one new reference per worker) to every worker's inbox. */
void server_broadcast_pub(server *srv, pl_pub *pub);
/* The tenant with this id (any id in single-tenant mode: "default"); the
 * pointer stays valid for the server's lifetime. NULL if unknown. */
const tenant *server_tenant(server *srv, const char *id);
/* Persists the API-created keys (hashes only) to DATA/apikeys.json. 0 or -1. */
int server_save_keys(server *srv);
/* Appends an audit record; -1 when it could not be written (the action must
 * then be refused). */
int server_audit(server *srv, const char *actor, const char *action, const char *tenant,
                 const char *target, const char *details);
/* Runs call->fn on every worker (takes the caller's reference). */
void server_call_all(server *srv, worker_call *call);
void server_render_metrics(server *srv, sbuf *out);

/* net/conn.c */
void conn_on_accept(worker *w, uv_stream_t *listener);
/* Formats the limiter key of the connection's peer address into out. */
void conn_ip_key(const conn *c, char *out, size_t cap);
/* Queues an item (takes the reference in ref) and schedules a flush. Returns
 * -1 when the outbound queue bound was exceeded (the connection is then being
 * closed with PC_SLOW_CONSUMER and the reference was dropped). */
int conn_enqueue(conn *c, enum out_kind kind, void *ref, size_t len);
/* Queues a pub (takes its own reference), encoding its frame if nobody has.
 * -1 as conn_enqueue, or when the frame cannot be made (the connection is then
 * closed with PC_OVERLOADED, so the client recovers the pub by reconnecting). */
int conn_enqueue_pub(conn *c, pl_pub *p);
int conn_send_json(conn *c, const char *json, size_t len);
/* Starts closing: WebSocket close frame with code/reason (after queued
 * output), SSE/HTTP: close after flush. code: a proto_close, or any code of
 * PC_MIN..PC_MAX the server API names (reconnect then follows the range). */
void conn_close(conn *c, uint16_t code, const char *reason);
/* Closes the socket now, dropping queued output. */
void conn_abort(conn *c);
/* Flushes up to max queued connections, oldest first, stopping after the
 * last one of the round in progress (w->round_last, which it then clears),
 * then, if no round is left in progress, the urgent ones. */
void conn_flush_dirty(worker *w, size_t max);
/* Flushes the connections queued with answers. */
void conn_flush_urgent(worker *w);
/* Answers the HTTP request of c with a JSON body (keep-alive as the request
 * asked); resumes reading if the request was pending. */
void conn_http_respond(conn *c, int status, const char *body, size_t len);
void worker_tick_conns(worker *w);
/* Shutdown: disconnect push with PC_SHUTDOWN and close. */
void conn_shutdown(conn *c);

/* proto/api.c: handles POST /api/v1/<method>; answers with
 * conn_http_respond, now (returns 0) or after an engine round trip (1). */
int api_handle(conn *c, const char *method, size_t mlen, const char *body, size_t blen,
               const char *auth, size_t alen);

/* 1 if the connection (a conn*) has a live subscription to the channel. */
int session_subscribed(void *c, const char *channel);

/* proto/session.c */
void session_on_text(conn *c, const char *data, size_t len);
void session_on_engine_done(worker *w, engine_req *req);
void session_on_drain(conn *c);
void session_free(conn *c);
/* Opens an SSE stream; 0, or an HTTP status with *why set (nothing sent). */
int session_sse_open(conn *c, const char *url, size_t url_len, const char *last_event_id,
                     const char **why);
void session_tick(conn *c);
/* Builds a committed pub's push frame (pub_encode_fn). */
rbuf *proto_encode_pub(const pl_pub *pub);
/* The pub's push frame, encoded on first use; NULL on allocation failure. */
const rbuf *proto_pub_frame(pl_pub *pub);
extern const char *const session_method_names[];
extern const unsigned session_method_count;

#endif
