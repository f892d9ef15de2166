/* Client connections: the HTTP phase, the WebSocket and SSE upgrades, and
 * the outbound queue that coalesces whatever is ready into one write per
 * connection per flush round. A connection is its worker's; it implements
 * the sink (broker/sink.h) its session and fan-out write through.
 *
 * Connection lifecycle:
 *
 *   accept -> CS_HTTP --GET /ws + valid upgrade--> CS_WS --connect ok--> (session connected)
 *                |  \--GET /sse + valid token-----> CS_SSE
 *                \--other routes: respond, keep-alive or close
 *   any state --error, timeout, shutdown, peer close--> CS_CLOSING -> freed in on_close
 */
#ifndef PL_CONN_H
#define PL_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/worker.h"
#include "proto/session.h"

/* Accepts one connection from the worker's listener (nothing on failure). */
void conn_on_accept(worker *w, uv_stream_t *listener);
/* Starts closing: WebSocket close frame with code/reason (after queued
 * output), SSE/HTTP: close after flush. code: a proto_close, or any code of
 * PC_MIN..PC_MAX the server API names (reconnect then follows the range). */
void conn_close(conn *c, uint16_t code, const char *reason);
/* conn_close whose disconnect push also says when to come back:
 * "retry_after" (ms) when retry_after_ms > 0. */
void conn_close_retry(conn *c, uint16_t code, const char *reason, int64_t retry_after_ms);
/* Flushes up to max queued connections, oldest first, stopping after the
 * last one of the round in progress (w->round_last, which it then clears),
 * then, if no round is left in progress, the urgent ones. Frees connections
 * closed while they were queued. */
void conn_flush_dirty(worker *w, size_t max);
/* Bytes queued to the connections waiting for a flush whose socket takes
 * them (a connection with a write pending in the kernel is behind on its
 * own reading, not on the worker's): the worker's output backlog. Walks the
 * flush list. */
size_t conn_backlog(worker *w);
/* Flushes the connections queued with answers. */
void conn_flush_urgent(worker *w);
/* Answers the HTTP request of c with a JSON body (keep-alive as the request
 * asked); resumes reading if the request was pending. */
void conn_http_respond(conn *c, int status, const char *body, size_t len, int64_t retry_after_ms);
/* Answers the HTTP request of c with a stream (see proto_host_ops.stream):
 * its sink, or NULL. */
pl_sink *conn_http_stream(conn *c, const char *head, size_t len);
/* Once a second: deadlines, idle timeouts, session ticks, idle queues. */
void conn_tick_all(worker *w);

/* The live (not closed) connection of this worker with id, or NULL. */
conn *conn_find(worker *w, uint64_t id);
/* The connection's session (NULL before an upgrade). */
session *conn_session(conn *c);
/* Calls fn for the session of every open connection of the worker (fn may
 * close a connection, not free it). */
void conn_each_session(worker *w, void (*fn)(session *s, void *arg), void *arg);
/* Closes every open connection of the worker with code and reason. */
void conn_close_all(worker *w, uint16_t code, const char *reason);
/* Shutdown: every connection gets the shutdown close (HTTP ones are cut). */
void conn_shutdown_all(worker *w);

#endif
