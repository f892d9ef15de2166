/* The client protocol session: one per WebSocket or SSE connection, from the
 * upgrade to the close. It reads commands, answers them and manages the
 * connection's subscriptions, writing only through its sink and reaching the
 * rest of the server only through its proto_host. A session belongs to its
 * worker's thread.
 *
 * Lifecycle: session_new at the upgrade (not yet connected; only `connect`
 * is accepted) -> connected after a valid token -> session_free when the
 * connection is released. The connection outlives its session. */
#ifndef PL_SESSION_H
#define PL_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "broker/sink.h"
#include "proto/host.h"

/* A session for a WebSocket connection; h and out are borrowed and must
 * outlive it. NULL when out of memory. */
session *session_new(proto_host *h, pl_sink *out);
/* Leaves every subscription, releases the connection's counts; NULL ok. */
void session_free(session *s);
/* One text message: a batch of commands. */
void session_on_text(session *s, const char *data, size_t len);
/* The connection's queue drained below its low-water mark: catch-up pages
 * may continue. */
void session_on_drain(session *s);
/* Once a second: pings, pong deadline, token expiry. */
void session_tick(session *s);
/* 1 after a successful connect (or for an SSE stream). */
int session_connected(const session *s);
/* 1 if the session (passed as void* for the fan-out's callback) has a live
 * subscription to channel. */
int session_subscribed(void *s, const char *channel);

/* Opens an SSE stream for GET url (path and query) with the client's
 * Last-Event-ID (NULL if none); extra_head (NULL for none) is header lines,
 * each ending in CRLF, that the connection adds to the response head (its
 * CORS headers). Returns the session (streaming has begun), or NULL with
 * *status (an HTTP status) and *why set and nothing sent. */
session *session_sse_open(proto_host *h, pl_sink *out, const char *url, size_t len,
                          const char *last_event_id, const char *extra_head, int *status,
                          const char **why);

/* The event id of an SSE stream's pub event, as its connection writes it:
 * records p as written and puts the cursor of the whole stream (every
 * channel's epoch and offset, see proto/sse_cursor.h) into out (cap bytes).
 * Returns its length, or 0 when s is not an SSE stream or it does not fit. */
#define SSE_EVENT_ID_MAX 512 /* enough for any stream's cursor */
size_t session_sse_event_id(session *s, const pl_pub *p, char *out, size_t cap);

/* An engine answer posted to this worker: calls the done handler of the
 * request's pending record (sessions and the HTTP API alike). Takes r. */
void proto_on_engine_done(proto_host *h, engine_req *r);

/* Builds a committed pub's push frame (pub_encode_fn). */
rbuf *proto_encode_pub(const pl_pub *pub);
/* The publish action of routes (hooks_publish_fn; ctx is the proto_server):
 * any thread, no session. PL_EINVAL for a channel a route cannot feed (not
 * valid, namespace not configured, or ephemeral: no log to resume from). */
int proto_route_publish(void *ctx, const pub_fields *f, void (*done)(void *arg, int status),
                        void *arg);
/* The pub's push frame, encoded on first use; NULL on allocation failure. */
const rbuf *proto_pub_frame(pl_pub *pub);
/* A gap push naming offsets from..to of channel ch in epoch (recovery that
 * cannot be served, or pubs a slow-consumer policy dropped). One reference
 * for the caller; NULL when out of memory. */
rbuf *proto_gap_frame(const char *ch, const char *epoch, uint64_t from, uint64_t to);

/* The client methods' names, indexed as metrics_command counts them. */
extern const char *const session_method_names[];
extern const unsigned session_method_count;

#endif
