/* Internals shared by the files of the protocol session (session.c,
 * subscribe.c, methods.c, sse.c): the session and subscription records and
 * the helpers every method uses. Not for anything outside proto/. */
#ifndef PL_SESSION_INT_H
#define PL_SESSION_INT_H

#include "proto/proto_int.h"
#include "proto/session.h"
#include "proto/sse_cursor.h"
#include "util/rbuf.h"

#define PAGE_SIZE 256
#define DEFAULT_RECOVER_LIMIT 1000
#define DEFAULT_HISTORY_LIMIT 100
#define MAX_HISTORY_LIMIT 1000

struct jwt;

/* A subscription of a session. */
typedef struct sub {
    fanout_sub f;        /* first: what fan-out sees (state, last offset, sink) */
    char *channel;       /* owned */
    engine_req *pending; /* guaranteed pubs awaiting this user, until the READ answers */
    const cfg_namespace *ns;
    uint8_t in_presence;
    char epoch[PUB_EPOCH_LEN + 1];
    uint32_t gen;           /* matches engine replies to this incarnation */
    uint32_t page_limit;    /* catch-up page size, tuned so a page fits the queue */
    int64_t last_typing_ms; /* typing throttle where the namespace keeps no roster */
    uint8_t read_inflight;
} sub;

/* An SSE stream's channels in query order and the position of each as
 * written to the connection so far: what the stream's event ids carry. */
typedef struct sse_stream {
    uint32_t nch;
    char *chans[SSE_CURSOR_MAX_CHANNELS]; /* owned */
    sse_pos pos[SSE_CURSOR_MAX_CHANNELS];
} sse_stream;

/* Fields ordered by size: a session is part of every connection's cost. */
struct session {
    proto_host *h; /* the worker's (borrowed) */
    pl_sink *out;  /* the connection (borrowed; outlives the session) */
    int64_t next_ping_ms;
    int64_t pong_deadline_ms; /* 0: no ping awaits its pong */
    char *user;
    const char *tenant; /* borrowed from the server's tenant table */
    int64_t exp;
    int64_t published_us;    /* monotonic: the last publish (0: none) */
    int64_t connected_at_ms; /* wall clock when connect succeeded (or the stream opened) */
    char *info;              /* JSON object text or NULL */
    char **chans;            /* the token's `channels` claim */
    size_t nchans;
    char **pubs; /* the token's `publish` claim */
    size_t npubs;
    sub **subs;
    sse_stream *stream; /* SSE streams only (owned), else NULL */
    uint32_t nsubs, capsubs;
    uint32_t inflight; /* commands submitted to storage and not answered yet */
    uint32_t gen;
    uint32_t connect_pending; /* connect with subs: READs its reply still waits for */
    uint64_t connect_id;
    sbuf connect_reply;
    rl_bucket cmds; /* limits.commands_per_second */
    char *why;      /* the last refusal's detail (sess_may_read/publish), owned; NULL before */
    char client[PUB_ID_LEN + 1];
    uint8_t connected; /* a valid token was presented (WebSocket) or the stream opened (SSE) */
    uint8_t sse;
    uint8_t connect_has_id, connect_first_sub;
    uint8_t counted_tenant, counted_user; /* held connection-limit counts */
    uint8_t counted_conn;                 /* counted in the tenant's metrics */
    uint8_t paused;                       /* 0, FLOW_PAUSED or FLOW_HELD (sess_flow) */
    uint32_t lc_seq; /* lifecycle events recorded for this client (their seq) */
};

/* ---- lifecycle events (lifecycle.c) ------------------------------------- */

enum lc_kind { LC_CONNECT, LC_DISCONNECT, LC_SUBSCRIBE, LC_UNSUBSCRIBE, LC_JOIN, LC_LEAVE };

/* Records one event of s when a route asks for its kind; channel (may be
 * NULL) and code (disconnect) describe it. */
void sess_lifecycle(session *s, enum lc_kind kind, const char *channel, uint16_t code);

/* ---- replies (session.c) ----------------------------------------------- */

/* Answers a command with error code (and detail); counted in the metrics
 * under method mi. Fire-and-forget commands (no id) get no answer except for
 * malformed ones. */
void sess_error(session *s, int has_id, uint64_t id, unsigned mi, int code, const char *detail);
/* Error 111 with the time until the limit admits the command again. */
void sess_retry(session *s, int has_id, uint64_t id, unsigned mi, int64_t wait_ms);
/* Starts {"id":N,"result": in the host's scratch buffer; the caller appends
 * the result and ends with sess_reply_end. */
sbuf *sess_reply_begin(session *s, uint64_t id);
void sess_reply_end(session *s, int has_id, unsigned mi);
/* An empty result ({}), when the command had an id. */
void sess_reply_empty(session *s, const proto_cmd *cmd, unsigned mi);
/* Sends o's text as a reply (sess_send) or a push (sess_push): one JSON
 * message, nothing when o ran out of memory. */
void sess_send(session *s, sbuf *o);
void sess_push(session *s, sbuf *o);
/* Submits a storage request that answers a command, counted in the
 * session's commands in flight until its answer (reads pause past a bound). */
void sess_submit(session *s, engine_req *r);
/* Pauses or resumes reading the client by its commands in flight and its
 * replies queued; called after each message, answer and drain. */
void sess_flow(session *s);
enum { FLOW_PAUSED = 1, FLOW_HELD = 2 /* for the backlog: counted in proto_host.held */ };
/* Bytes of pubs a reply may still carry: what replies leave of half the
 * outbound queue. A reply carries at least one pub only when no other reply
 * waits (so paging moves, and pipelined reads stay under the hard cap). */
size_t sess_reply_budget(const session *s);
/* 0 when a command may run now, else the wait in ms (connection, then user
 * limits); sess_publish_wait adds the namespace's and tenant's publish rates. */
int64_t sess_command_wait(session *s);
int64_t sess_publish_wait(session *s, const cfg_namespace *ns);
void sess_limit_keys(const session *s, char *tkey, char *ukey, size_t cap);

/* ---- identity and permissions (session.c) -------------------------------- */

/* Verifies a connection token: PE_OK with *out filled and *tkp its tenant,
 * or PE_UNAUTHORIZED / PE_TOKEN_EXPIRED with *reason a category safe to tell
 * the client (and the failure logged). out is released by the caller. */
proto_error sess_verify_token(session *s, const char *tok, size_t tlen, struct jwt *out,
                              const tenant **tkp, const char **reason);
/* Logs a refused token (what: "connection" or "channel"; why: for the
 * operator; tenant: the one it named, or NULL). */
void sess_log_auth_failure(session *s, const char *what, const char *why, const char *tenant);
/* Takes the identity of a verified token: connected from here. 0 or -1. */
int sess_login(session *s, const struct jwt *j, const tenant *tk);
/* Read access (subscribe, history, presence); tok: a channel token or NULL.
 * PE_OK with *nsp set, or the error to answer with *why (when why is not
 * NULL) saying which rule refused it (static text). */
proto_error sess_may_read(session *s, const char *ch, const cfg_namespace **nsp, const char *tok,
                          size_t tlen, const char **why);
proto_error sess_may_publish(session *s, const char *ch, const cfg_namespace **nsp,
                             const char **why);
/* The channel name of token tok (-1: absent) / of params' "channel" into
 * out (MAX_CHANNEL + 1 bytes). PE_OK or PE_BAD_REQUEST (with *why, when why
 * is not NULL, naming what is wrong). */
proto_error sess_channel_of(proto_batch *b, int tok, char *out);
proto_error sess_param_channel(proto_batch *b, int params, char *out, const char **why);
/* params' "limit" (at most 1000) and "since" {offset, epoch}: PE_OK, or the
 * error with *why naming the parameter. limit keeps its default when absent;
 * *has_since is set when since is given. */
proto_error sess_read_limit(proto_batch *b, int params, uint64_t *limit, const char **why);
proto_error sess_read_since(proto_batch *b, int params, int *has_since, uint64_t *off, char *epoch,
                            const char **why);
/* Broadcasts a signal push (join, leave, typing, read) for a channel to every
 * worker: an offset-0 pub whose frame is the push itself. */
void sess_signal(session *s, const char *ch, sbuf *frame, int skip_origin, int to_user);
/* 1 (counted) when a join, leave or typing push is to be dropped: they are
 * shed first under overload, being best effort (`presence` still answers
 * the roster exactly). Read pushes are never shed. */
int sess_shed_signal(session *s);
/* The connected session an engine answer is for, or NULL when it is gone. */
session *sess_for(proto_host *h, const pending *pd);

/* ---- subscriptions (subscribe.c) ----------------------------------------- */

sub *sess_find_sub(session *s, const char *ch);
/* Leaves a subscription: presence, fan-out, the session's list; frees it. */
void sess_drop_sub(session *s, sub *sb);
/* Registers a subscription and asks the engine for its starting point;
 * pd carries the command's id and flags. PE_OK, or the error (nothing
 * registered). */
proto_error sess_subscribe(session *s, const char *ch, const cfg_namespace *ns, int has_since,
                           uint64_t since_off, const char *since_epoch, uint32_t limit,
                           pending *pd);
/* An SSE subscription's engine answer: the channel's position becomes the
 * one the answer starts from (sse.c). */
void sess_sse_started(session *s, const char *ch, const engine_req *r, const pending *pd);
/* Frees the session's SSE stream record (sse.c); NULL ok. */
void sess_sse_free(sse_stream *st);
/* Sends a connect's reply once every subscription it asked for answered. */
void sess_finish_connect(session *s);

/* ---- methods (methods.c, subscribe.c) ------------------------------------- */

typedef void (*method_fn)(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi);
void sess_m_subscribe(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi);
void sess_m_unsubscribe(session *s, const proto_cmd *cmd, proto_batch *b, unsigned mi);

/* ---- frames (frames.c) ----------------------------------------------------- */

/* Appends a pub's object (the push frame without its "push" member). */
void proto_put_pub(sbuf *o, pl_pub *p);

#endif
