/* The engine: the source of truth for channel streams. It assigns offsets,
 * persists pubs in commit order, dedupes idempotency keys, applies retention
 * and serves history. Implementations (engine/sqlite/, engine/redis/) sit
 * behind this vtable; only the composition root knows which is in use.
 *
 * Threading and ordering contract (what makes recovery gap-free):
 *  - engine_submit() may be called from any thread; the engine owns the
 *    request until the sink gets it back.
 *  - Requests take effect in submission order: the order in which their
 *    submits reached the queue (a chain's requests in chain order, one
 *    thread's submits in the order it made them), batches included.
 *  - The sink is called on the engine's own thread with batches of finished
 *    requests, in that same order across all calls, which is consistent with
 *    the store: a READ (and a PENDING or CURSOR) sees exactly the PUBLISHes
 *    handed to the sink before it, which are those submitted before it; a
 *    PUBLISH submitted after it is not seen, even in the same commit.
 *    (Retention, ACK and DELIVERY changes of a commit may show in all its
 *    reads; engine/sqlite/commit.c.) A PUBLISH with status PL_OK is
 *    committed and fsynced before the sink sees it.
 *  - The sink owns the requests it receives and frees them with
 *    engine_req_free().
 */
#ifndef PL_ENGINE_H
#define PL_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/pub.h"
#include "util/status.h"

typedef struct engine engine;
typedef struct engine_req engine_req;
enum engine_op {
    ENGINE_PUBLISH = 1,
    ENGINE_READ = 2,
    ENGINE_CURSOR = 3,   /* set a user's read cursor (monotonic) */
    ENGINE_DELIVERY = 4, /* one guaranteed delivery changes state */
    ENGINE_ACK = 5,      /* a user acknowledges a channel's guaranteed pubs up to an offset */
    ENGINE_PENDING = 6,  /* a user's unacknowledged guaranteed pubs of a channel */
    ENGINE_ADMIN = 7,    /* dead-letter queue and trace queries (admin_op) */
    ENGINE_EVENTS = 8,   /* the committed log read in commit order (engine_log_events) */
    ENGINE_RELAY = 9,    /* pub: an ephemeral pub or signal for the other nodes (engine/redis/) */
};

/* Delivery states of a pub for one recipient (delivery/delivery.h). */
enum delivery_state {
    DLV_QUEUED = 0,
    DLV_SENT = 1,
    DLV_ACKED = 2,
    DLV_SEEN = 3,
    DLV_FAILED = 4,
    DLV_EXPIRED = 5,
};

enum engine_admin_op {
    ADMIN_DLQ_LIST = 1,   /* json: {"entries":[...],"cursor":N} */
    ADMIN_DLQ_REPLAY = 2, /* entries removed, deliveries queued again; pubs/users to resend */
    ADMIN_DLQ_PURGE = 3,  /* entries removed */
    ADMIN_TRACE = 4,      /* json: the pub, its deliveries and their transitions */
    ADMIN_SENT_ALL = 5,   /* every delivery in state sent: pubs/users/attempts (restart) */
    ADMIN_DLQ_ADD = 6,    /* a failed webhook delivery enters the DLQ (fields below) */
};

enum engine_read_mode {
    ENGINE_READ_HISTORY = 0, /* the history method's semantics (docs/protocol.md) */
    ENGINE_READ_RECOVER = 1, /* subscribe-with-since: if `since` cannot be recovered,
                                return the newest `limit` pubs and recovered = 0 */
    ENGINE_READ_CURSORS = 2, /* no pubs; json: [{"user","offset"}] furthest first,
                                at most `limit`; head, first, epoch as for a read */
};

struct engine_req {
    /* What every publish's commit reads comes first, within 64 bytes: each
     * cache line of a batch's requests is a miss the first time. */
    enum engine_op op;
    int status;               /* PL_OK, PL_EIO (storage unavailable: nothing stored), PL_ENOMEM */
    struct engine_req *_next; /* engine-private: chain and queue links (no allocation) */
    void *owner; /* opaque routing for the sink (e.g. the worker and connection that asked) */
    /* When set, the sink hands the finished request to this function (on the
     * engine thread) instead of routing it by owner; it frees the request. */
    void (*done)(engine_req *r);
    void *ctx; /* the requester's; engine_req_new_ctx puts it inside the request */

    /* PUBLISH in: a pub with tenant, channel, data, ... and offset 0; one
     * reference owned by the request. Out on success: offset, epoch and ts
     * are set (or, on duplicate, the pub is replaced by the original's
     * stored record and duplicate = 1). */
    pl_pub *pub;
    uint32_t history_size;  /* retention: keep at most this many (0 = unlimited) */
    uint32_t max_channels;  /* PUBLISH/READ: the tenant's channel quota (0 = none); creating
                               a channel beyond it fails with PL_ELIMIT */
    int64_t storage_bytes;  /* PUBLISH: the tenant's stored-data budget (0 = none); a pub
                               that would exceed it fails with PL_ELIMIT */
    int64_t history_ttl_ms; /* retention: drop older than this (0 = forever) */
    int duplicate;
    size_t _block; /* engine_req_new_pooled: the block's size; 0 otherwise */

    /* READ in. tenant/channel are owned copies (engine_req_free frees them). */
    char *tenant;
    char *channel;
    enum engine_read_mode mode;
    int has_since;
    uint64_t since_offset;
    char since_epoch[PUB_EPOCH_LEN + 1]; /* "*" matches any epoch (SSE ids carry none) */
    uint32_t limit;
    int reverse;
    /* READ out: references owned by the request. */
    pl_pub **pubs;
    size_t npubs;
    uint64_t head;  /* latest offset of the channel (0 = empty) */
    uint64_t first; /* oldest retained offset (0 = none retained) */
    char epoch[PUB_EPOCH_LEN + 1];
    int recovered; /* RECOVER: every pub after since is retained, epoch matched */
    int more;      /* pubs exist after the last one returned (forward reads) */

    /* Read cursors. READ: when user is set, cursor is filled with that user's
     * read cursor on the channel. CURSOR in: tenant, channel, user and
     * since_offset = the offset read; the cursor only moves forward and never
     * past head. Out: cursor (value after), moved (1 if it changed), head,
     * first, epoch. The write commits with the batch. */
    char *user; /* owned copy, freed by engine_req_free */
    uint64_t cursor;
    int moved;

    /* Guaranteed delivery. PUBLISH: recipients get a delivery row (queued) in
     * the pub's transaction. DELIVERY: (tenant, channel, user, since_offset)
     * moves to dstate with attempt and error; failed also writes a
     * dead-letter entry. ACK: user's queued/sent pubs with offset <=
     * since_offset become acknowledged; count says how many. PENDING: pubs
     * and attempts of the user's queued/sent deliveries on the channel.
     * ADMIN: admin_op with the filters below (tenant required); results in
     * json (pl_malloc'd) and, for replay and sent-all, pubs[i] for users[i]
     * with attempts[i]. All owned by the request. */
    char **recipients;
    size_t nrecipients;
    int dstate;
    uint32_t attempt;
    char *error;
    uint32_t *attempts;
    char **users;
    uint64_t count;
    int admin_op;
    char *reason, *pub_id; /* DLQ filter; TRACE */
    int64_t since_ms, until_ms;
    uint64_t entry_id, after_id; /* DLQ entry (0 = by filter); DLQ list paging cursor */
    int all;
    char *json;
    /* ADMIN_DLQ_ADD: a webhook delivery of the pub tenant/channel/
     * since_offset (pub_id): user = endpoint, ref = delivery id, reason,
     * attempt, error, correlation. DLQ replay hands webhook entries' delivery
     * ids back in refs[0..nrefs) for the caller to requeue. */
    char *ref, *correlation, **refs;
    size_t nrefs;

    /* EVENTS: the committed log in commit order; an entry is a row of one
     * channel's pubs. In: since_offset (read entries after this sequence
     * number), limit (entries; 0: head only), trim_seq (first delete
     * entries up to it; 0: none). Out: pubs with seqs[i] (their entry's),
     * head (newest entry), cursor (last entry read, 0: none), count (pubs
     * of entries retention already removed: none are returned for them). */
    uint64_t *seqs, trim_seq;
};

/* Engine thread: n finished requests in linear order; the callee owns them. */
typedef void (*engine_sink_fn)(void *sink_ctx, engine_req **reqs, size_t n);
enum engine_notice { ENGINE_DOWN = 1, ENGINE_UP = 2, ENGINE_RESYNC = 3, ENGINE_REFUSED = 4 };

typedef struct engine_opts {
    const char *data_dir;
    int64_t dedup_window_ms; /* idempotency keys remembered this long (default 24h) */
    uint32_t ring_size;      /* recent pubs kept in memory per channel */
    int64_t max_db_bytes;    /* 0 = unlimited; beyond it publishes fail with PL_EIO */
    engine_sink_fn sink;
    void *sink_ctx;
    pub_encode_fn encode; /* push frames: trace shows a pub as its frame does */
    /* Once, on the engine thread: the engine stopped storing for good (its
     * files were removed or replaced); every request fails with PL_EIO. */
    void (*fault)(void *sink_ctx, const char *what);
    /* Engine thread: news of a store reached over a network (engine/redis/);
     * on ENGINE_RESYNC every subscriber must resume by offset. */
    void (*notice)(void *sink_ctx, enum engine_notice kind, const char *what);
} engine_opts;

typedef struct engine_stats {
    uint64_t commits, committed_pubs, commit_failures, duplicates, batch_max;
    uint64_t commit_us_total;         /* sum of commit latencies */
    uint64_t batch_hist[12];          /* commit batch sizes: buckets 1,2,4,...,1024,+Inf */
    uint64_t commit_lat_hist[12];     /* us: 100,250,500,1000,...,250000,+Inf (1-2.5-5 steps) */
    uint64_t round_trips, notify_lag; /* engine/redis/: commands sent; entries behind */
} engine_stats;

typedef struct engine_ops {
    const char *name;
    int (*start)(engine *e);
    /* Queues first.._next..last (whose _next is NULL), in that order, in one step. */
    void (*submit)(engine *e, engine_req *first, engine_req *last);
    /* Finishes every submitted request (they reach the sink), then stops the thread. */
    void (*stop)(engine *e);
    void (*free)(engine *e);
    void (*stats)(engine *e, engine_stats *out);
    int (*healthy)(engine *e); /* any thread: 0 once the engine cannot store */
    /* Any thread: whether commits write log entries for ENGINE_EVENTS (off
     * until the first routing rule exists: a server without rules pays
     * nothing), for the batches after the call. Returns the newest committed
     * entry's sequence number (0: none): a route created now starts there. */
    uint64_t (*log_events)(engine *e, int on);
} engine_ops;

struct engine {
    const engine_ops *ops;
};

/* The embedded SQLite engine; NULL with a message in err on failure. */
engine *engine_sqlite_new(const engine_opts *opts, char *err, size_t errlen);

static inline int engine_start(engine *e)
{
    return e->ops->start(e);
}
static inline void engine_submit(engine *e, engine_req *r)
{
    r->_next = NULL;
    e->ops->submit(e, r, r);
}

/* Requests gathered on one thread and submitted together: one lock and at
 * most one wakeup of the engine thread for all of them, and they share a
 * commit. Order within the chain is submission order. */
typedef struct engine_chain {
    engine_req *head, *tail;
} engine_chain;

static inline void engine_chain_add(engine_chain *ch, engine_req *r)
{
    r->_next = NULL;
    if (ch->tail)
        ch->tail->_next = r;
    else
        ch->head = r;
    ch->tail = r;
}

/* Submits the chain's requests (the engine owns them now) and empties it. */
static inline void engine_submit_chain(engine *e, engine_chain *ch)
{
    if (!ch->head) return;
    e->ops->submit(e, ch->head, ch->tail);
    ch->head = ch->tail = NULL;
}
static inline void engine_stop(engine *e)
{
    e->ops->stop(e);
}
static inline void engine_free(engine *e)
{
    if (e) e->ops->free(e);
}
static inline void engine_get_stats(engine *e, engine_stats *out)
{
    e->ops->stats(e, out);
}
static inline int engine_healthy(engine *e)
{
    return e->ops->healthy(e);
}
static inline uint64_t engine_log_events(engine *e, int on)
{
    return e->ops->log_events(e, on);
}

/* Allocates a zeroed request; NULL on allocation failure. */
engine_req *engine_req_new(enum engine_op op);
/* The same with ctx pointing at ctx_size zeroed bytes inside the request's
 * own allocation (aligned for any type), freed with it. */
engine_req *engine_req_new_ctx(enum engine_op op, size_t ctx_size);
/* Frees a request with the references and strings it owns and its ctx. */
void engine_req_free(engine_req *r);

/* Request blocks kept for reuse by the owning thread (a worker): malloc and
 * free were a sixth of a worker's time. */
typedef struct engine_req_pool {
    void **blocks; /* free blocks of `block` bytes, last freed first; owned */
    size_t n, cap;
    size_t block; /* request plus context, fixed by the first pooled request */
} engine_req_pool;

/* Keeps at most cap blocks; no allocation until the first free. */
void engine_req_pool_init(engine_req_pool *p, size_t cap);
/* Frees the kept blocks. Requests from the pool may outlive it: they are
 * plain allocations, and engine_req_free takes them on any thread. */
void engine_req_pool_release(engine_req_pool *p);
/* engine_req_new_ctx from p's blocks (p's thread only). A ctx_size other
 * than the first pooled request's is allocated outside the pool. */
engine_req *engine_req_new_pooled(engine_req_pool *p, enum engine_op op, size_t ctx_size);
/* engine_req_free on p's thread, keeping r's block in p when it has room
 * and r is a block of p's size. */
void engine_req_recycle(engine_req_pool *p, engine_req *r);

#endif
