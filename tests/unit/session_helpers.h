/* The fixture of the protocol session tests (test_session_*.c): a proto_server
 * and one proto_host around a real config, tenants, presence, rate limits and
 * fan-out; host operations that keep the storage requests for the test to
 * answer as the engine would; recording connections; HS256 tokens. */
#ifndef PL_SESSION_HELPERS_H
#define PL_SESSION_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "proto/session.h"

#define FX_SECRET "session-test-secret"
#define FX_EPOCH "ep0ch001"
#define FX_MAX_REQS 1024
#define FX_MAX_CONNS 8

/* What a connection was sent, in order: every JSON message (replies and
 * pushes), every pub frame, every gap push. */
typedef struct fake_msg {
    enum out_kind kind; /* OUT_JSON for replies and pushes, OUT_PUB, OUT_GAP, OUT_RAW */
    char *text;         /* malloc'd */
    json_t *json;       /* parsed on first use */
} fake_msg;

typedef struct fixture fixture;

/* A connection as net/conn.c keeps it: a byte bound on what is queued (past
 * it the connection is closed with 4001 and the item dropped), nothing
 * queued once closing, and the first close code kept. */
typedef struct fake_conn {
    pl_sink base; /* first */
    fixture *fx;
    session *s;
    fake_msg *msgs;
    size_t nmsgs, cap;
    uint16_t close_code; /* 0 while open */
    char close_reason[64];
    size_t refused;     /* items dropped (closing, or past the bound) */
    int reading_paused; /* the session stopped reading (sink reading op) */
} fake_conn;

struct fixture {
    config cfg;
    proto_server srv;
    proto_host host;
    proto_host *hosts[1];
    metrics_shard metrics;
    engine_req *reqs[FX_MAX_REQS]; /* submitted and not yet taken, in order */
    size_t nreqs;
    size_t submitted;  /* every request ever submitted */
    size_t broadcasts; /* pubs posted to the workers' fan-outs */
    fake_conn *conns[FX_MAX_CONNS];
    size_t nconns;
};

/* ---- fixture ------------------------------------------------------------- */

/* The default configuration (single tenant, namespaces "", chat, news, dm,
 * inbox) after tune (may be NULL) changed it. The host clock is now. */
fixture *fx_new(void (*tune)(config *c));
/* Frees every session, connection and unanswered request, then the rest. */
void fx_free(fixture *fx);
/* Moves the host's clocks forward. */
void fx_advance_ms(fixture *fx, int64_t ms);

/* ---- connections ----------------------------------------------------------- */

/* A WebSocket connection with its session (NULL session when out of memory). */
fake_conn *fx_conn(fixture *fx);
/* The session is released and its connection gone (find no longer sees it). */
void fx_conn_gone(fake_conn *c);
/* One text message from the client. */
void conn_send(fake_conn *c, const char *text);
/* The connection wrote out what it queued and the session may continue. */
void conn_drain(fake_conn *c);
/* Forgets what was recorded so far. */
void conn_clear(fake_conn *c);
/* The i-th recorded message, parsed (fails the test when it is not JSON). */
json_t *conn_json(fake_conn *c, size_t i);
/* Connects with a valid token for user and asserts the result; clears. */
void conn_connect(fake_conn *c, const char *user);

/* ---- tokens ---------------------------------------------------------------- */

/* An HS256 token for the tenant's secret with sub = user and exp = now +
 * ttl_s (no exp when ttl_s is 0); extra (may be NULL) is appended inside the
 * claims object. pl_free it. */
char *fx_token(const char *user, int64_t ttl_s, const char *extra);

/* ---- the engine -------------------------------------------------------------- */

/* Takes the oldest unanswered request, asserting its operation. */
engine_req *fx_take(fixture *fx, enum engine_op op);
/* Hands an answered request back to the worker (proto_on_engine_done). */
void fx_answer(fixture *fx, engine_req *r);
/* A committed pub of channel ch at offset off: data {"n":off}, user bob. */
pl_pub *fx_pub(const char *ch, uint64_t off);

/* What a READ answer says: the pubs lo..hi (none when lo > hi) and the
 * channel's state, as engine/sqlite/read.c fills them. */
typedef struct read_answer {
    uint64_t lo, hi;
    uint64_t head, first;
    const char *epoch; /* NULL: FX_EPOCH */
    int recovered, more;
} read_answer;
void fx_fill_read(engine_req *r, const read_answer *a);
/* Takes the oldest request (a READ), answers it with a and hands it back. */
void fx_answer_read(fixture *fx, const read_answer *a);
/* Commits a PUBLISH at offset off as the engine and the hub would: the pub
 * goes to the fan-out first, then the answer to its worker. */
void fx_commit(fixture *fx, engine_req *r, uint64_t off);

/* ---- assertions on what a client saw ---------------------------------------- */

/* Message i is {"id":id,"error":{"code":code,...}} (id < 0: no id); returns
 * the error's message. */
const char *expect_error(fake_conn *c, size_t i, long long id, int code);
/* Message i is {"id":id,"result":{...}}; returns the result. */
json_t *expect_result(fake_conn *c, size_t i, long long id);
/* Message i is a push of this kind ("pub", "gap", "ping", ...); returns it. */
json_t *expect_push(fake_conn *c, size_t i, const char *kind);
/* Message i is a pub push of channel ch at offset off. */
void expect_pub(fake_conn *c, size_t i, const char *ch, uint64_t off);
/* The offsets of the result's "pubs" array are lo..hi in order. */
void expect_pubs(json_t *result, uint64_t lo, uint64_t hi);

long long jint(json_t *o, const char *key);
const char *jstr(json_t *o, const char *key);
int jbool(json_t *o, const char *key);

#endif
