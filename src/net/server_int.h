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
#include "proto/api.h"
#include "proto/command.h"
#include "proto/host.h"
#include "proto/session.h"
#include "config/config.h"
#include "util/map.h"
#include "util/sbuf.h"

typedef struct server server;
typedef struct worker worker;
typedef struct conn conn;

/* ---- outbound queue -------------------------------------------------------- */

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
    conn *round_last;      /* the flush round in progress ends after this one; NULL: none */
    int64_t round_busy_us; /* time the round in progress spent writing */
    uv_idle_t spin;        /* active while a round is in progress */
    int64_t flush_at_us;   /* monotonic: no flush before (0: flush every iteration) */
    void *write_spare;     /* one write request kept for reuse (net/conn.c), owned */
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
    atomic_int ready;
    atomic_int workers_up; /* every worker is initialized: the hub may post to them */
    /* engine-thread staging for the sink, one vector per worker */
    inbox_stage *stage; /* one per worker */
};

/* net/server.c */
/* Reads the clocks into now_ms and now_us: once per event, not per command. */
void worker_clock(worker *w);
void worker_post(worker *w, const inbox_msg *msgs, size_t n);
/* Runs call->fn on every worker (takes the caller's reference). */
void server_call_all(server *srv, proto_call *call);
void server_render_metrics(server *srv, sbuf *out);
/* The worker whose host h is. */
worker *worker_of(proto_host *h);

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

#endif
