/* Internals of the Redis engine, shared by its files:
 *   thread.c  the engine thread (a libuv loop), the vtable, the constructor
 *   link.c    the two connections (commands; the notification reader) and
 *             their reconnects
 *   scripts.c the Lua scripts, loaded on every connect and called by SHA
 *   ops.c     each request kind as Redis commands, and their replies
 *   notify.c  the reader of the notification stream, and pings
 *   order.c   the order in which finished requests and other nodes' pubs
 *             reach the sink
 *
 * Keys (P = the configured prefix, T = tenant, C = channel):
 *   P:m:T:C   hash {off, ep}: the channel's head offset and epoch
 *   P:s:T:C   stream of the channel's pubs, entry id 0-OFFSET, fields
 *             t (accept time, ms) and p (pack.h)
 *   P:c:T:C   hash user -> read cursor
 *   P:i:T:LEN(C):C:KEY  an idempotency key -> the offset it got (PX window)
 *   P:tc:T    set of the tenant's channels (the channel quota)
 *   P:seq     counter of the notification stream
 *   P:n       the notification stream: entry id 0-SEQ for every pub any
 *             node commits (fields t o e n c p: time, offset, epoch,
 *             tenant, channel, packed pub), every node's pings (k n), and
 *             ephemeral pubs and signals (k=x n tn c u cl f fr: node,
 *             tenant, channel, user, client, flags, the push frame)
 *
 * Order. The publish script appends to the channel's stream and to P:n in
 * one atomic step, so P:n orders all pubs consistently with every channel's
 * offsets. Each node reads P:n (XREAD BLOCK on its own connection) and hands
 * the sink pubs in P:n order. Its own requests wait in a queue in
 * submission order (A); a reply tells each request its place in P:n (a
 * publish: its entry; a read: the P:n head it saw). order.c merges A with
 * the entries read (B): a request goes to the sink after every entry before
 * its place and before every entry after it, which is the engine contract.
 * A node's own publish reaches the sink as the request itself when its
 * entry comes up, other nodes' pubs as requests without an owner. */
#ifndef PL_RD_INT_H
#define PL_RD_INT_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "engine/engine.h"
#include "engine/redis/redis.h"
#include "util/sbuf.h"

typedef struct rd_engine rd_engine;

typedef struct rd_link {
    rd_engine *e;
    const char *name; /* for logs: "commands" or "notify" */
    redisAsyncContext *ac;
    int up;              /* connected; commands may be sent */
    uint32_t backoff_ms; /* next reconnect delay */
    uv_timer_t retry;
    void (*on_up)(rd_engine *e); /* after the greeting is queued */
    int64_t down_since_ms;       /* 0 while up */
    uint64_t writes;             /* socket writes: round trips (commands are pipelined) */
} rd_link;

/* A request in flight, in submission order (queue A). */
typedef struct rd_pend {
    engine_req *req;
    struct rd_pend *next;
    uint64_t seq;    /* its place in P:n, once replied */
    int replied;     /* finished; seq is set when ordered */
    int ordered;     /* must wait for the reader to pass seq */
    int is_pub;      /* a publish whose own entry is seq */
    int tries;       /* reads: attempts after a trim raced them */
    uint64_t lo, hi; /* reads: the planned offsets */
} rd_pend;

/* An entry read from P:n (queue B). pub is NULL for pings. */
typedef struct rd_note {
    uint64_t seq;
    pl_pub *pub;
    struct rd_note *next;
} rd_note;

enum rd_script { RD_SC_PUBLISH, RD_SC_LOOK, RD_SC_CURSOR, RD_SC_PING, RD_SC_RELAY, RD_SC_COUNT };

struct rd_engine {
    engine base;
    engine_opts opts;
    char *host, *password, *prefix;
    int port, db;
    uint32_t notify_maxlen;
    char **sentinels; /* owned copies; host is then the last master named */
    size_t n_sentinels;
    char *sentinel_master;
    uint32_t min_replicas;
    char node[PUB_ID_LEN + 1]; /* this node's id in pings */

    pthread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;
    uv_check_t after_io; /* hands what the iteration finished to the sink */
    int running, loop_ready, closed;

    pthread_mutex_t mu; /* guards the submit queue and stopping */
    engine_req *q_head, *q_tail;
    int stopping;
    int stop_seen; /* the engine thread's copy of stopping, taken under mu */
    int64_t stop_deadline_ms;

    rd_link cmd, note;
    char sha[RD_SC_COUNT][41];

    rd_pend *a_head, *a_tail;
    rd_note *b_head, *b_tail;
    uint64_t pos;                 /* the last P:n entry handed on */
    uint64_t read_pos;            /* the last P:n entry read (queued in B or handed on) */
    int pos_known;                /* pos was read from Redis since the start */
    int reading;                  /* an XREAD is outstanding */
    uint32_t reset_gen, read_gen; /* resets of pos; the one the XREAD was asked in */
    int64_t ping_sent_ms, ping_seen_ms;
    uint64_t ping_read_pos; /* read_pos when the last ping was sent */
    atomic_int healthy;

    engine_req **out; /* the batch for the sink */
    size_t nout, cap_out;
    sbuf key, key2, args; /* scratch */

    pthread_mutex_t stats_mu;
    engine_stats stats;
};

/* link.c */
void rd_link_init(rd_engine *e, rd_link *l, const char *name, void (*on_up)(rd_engine *));
void rd_link_connect(rd_link *l);
void rd_link_close(rd_link *l);
int rd_cmd(rd_link *l, redisCallbackFn *fn, void *priv, int argc, const char **argv,
           const size_t *lens);

/* scripts.c */
const char *rd_script_text(enum rd_script s);
void rd_scripts_sha(char sha[RD_SC_COUNT][41]);

/* ops.c */
/* Starts a chain (linked by _next) of requests, in order. */
void rd_start_reqs(rd_engine *e, engine_req *r);

/* notify.c */
void rd_send_ping(rd_engine *e);
void rd_read_next(rd_engine *e);

/* order.c */
void rd_push_pend(rd_engine *e, rd_pend *p);
void rd_push_note(rd_engine *e, rd_note *n);
void rd_drain(rd_engine *e);
void rd_flush_out(rd_engine *e);
void rd_emit(rd_engine *e, engine_req *r);
void rd_reset_pos(rd_engine *e, uint64_t pos, const char *why);

/* Tells the server (opts.notice) about link: what. */
void rd_notice(rd_engine *e, enum engine_notice kind, const char *link, const char *what);

/* Keys: P:kind:T:C into b (reset first). */
void rd_key(rd_engine *e, sbuf *b, const char *kind, const char *tenant, const char *channel);

#endif
