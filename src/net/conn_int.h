/* Internals of a client connection shared by net/conn.c (reading, the
 * outbound queue, the sink) and net/conn_http.c (the HTTP phase and its
 * routes). Nothing outside those two files includes it. */
#ifndef PL_CONN_INT_H
#define PL_CONN_INT_H

#include "net/conn.h"
#include "net/ws.h"

#define CLOSE_GRACE_MS 2000

/* ---- outbound queue -------------------------------------------------------- */

typedef struct out_item {
    void *ref; /* pl_pub* or rbuf*, one reference owned by the queue */
    uint32_t kind;
    uint32_t len;
} out_item;

/* ---- connections ------------------------------------------------------------- */

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
    uint8_t paused;    /* reading stopped by the session (sink reading op) */
    uint8_t streaming; /* an API stream (a tail): in the worker's tail set */
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
    conn *dirty_next;
    conn *prev, *next; /* worker's list of all connections */
};

/* ---- conn.c, for the HTTP phase ------------------------------------------ */

/* Queues an item (takes ref); -1 when dropped (see sink_ops.enqueue). */
int conn_enqueue(conn *c, enum out_kind kind, void *ref, size_t len);
/* Closes at once, dropping what is queued. */
void conn_abort(conn *c);
/* Reads from the socket again (after conn_http_read paused it). */
void conn_read_start(conn *c);
/* Handles bytes as if just read (what followed an upgrade request). */
void conn_feed(conn *c, const char *data, size_t len);
extern const ws_callbacks conn_ws_callbacks;

/* ---- conn_http.c ----------------------------------------------------------- */

/* The HTTP phase's record for a new connection; NULL when out of memory. */
http_req *conn_http_new(conn *c);
void conn_http_free(http_req *h);
/* Reads request bytes in the HTTP phase: routes each complete request. */
void conn_http_read(conn *c, const char *data, size_t len);
/* Answers with an error body and closes after it (429 carries a retry hint). */
void conn_respond_error(conn *c, int status, const char *reason, int code, const char *msg);

#endif
