/* The embedded SQLite engine, what its files share. One storage thread owns
 * the database and a cache of channels; it commits each batch of requests in
 * one fsynced transaction (group commit) and then hands it to the sink.
 *
 * On disk (schema version 5, in PRAGMA user_version; versions 2 to 4 are
 * upgraded in place, 1 was a development layout without cid and is refused):
 *   channels(cid, tenant, channel, epoch, head, first_off, ttl_ms, next_exp_ms)
 *       One row per stream, created by its first publish or first read; cid
 *       (the rowid) names it in the other tables. (tenant, channel) UNIQUE.
 *       epoch: 8 chars [a-z0-9], never changes once written.
 *       head: highest offset ever assigned (0 = none); only grows.
 *       first_off: oldest retained offset; 0 = nothing retained.
 *       ttl_ms: history TTL of the channel's latest publish (0 = forever).
 *       next_exp_ms: no retained pub expires before this time (0 = none
 *       will); a lower bound, indexed so the sweep finds due channels.
 *   pubs(cid, off, id, ts, cls, data, user, client, type, correlation_id,
 *        headers, idem_key, n, dbytes, more)   WITHOUT ROWID, key (cid, off)
 *       One row holds n pubs, offsets [off, off + n - 1], all accepted by one
 *       commit (so ts is theirs): the columns are the first pub, `more` the
 *       others (seg.h), dbytes the data bytes of all n (NULL when n = 1).
 *       A commit writes a channel's consecutive pubs as one row, at most
 *       SQ_ROW_PUBS_MAX and never more than the channel's history_size of
 *       them; a guaranteed pub has a row of its own (deliveries and dlq name
 *       it by the row's key). Retention deletes whole rows: a row partly
 *       below first_off stays, and its pubs below first_off are not read.
 *       NULL columns are absent optional fields. A stored pub's id is the
 *       ULID of its accept time with (cid, off) as the tail, 40 bits each
 *       (seg_pub_id), so trace finds the row by key without an index on id
 *       (+18% acked publishes/s, bench/README.md). Databases created at
 *       version 2 keep pubs_id(id) for their random ids; trace uses it.
 *   deliveries(cid, off, user, state, attempts, updated_ms)   WITHOUT ROWID
 *       One row per recipient of a guaranteed pub, written in the pub's
 *       transaction (state queued); state changes commit with the batch.
 *   delivery_log(cid, off, user, state, attempt, ts, error)   each transition, for trace
 *   dlq(id, tenant, channel, cid, off, user, pub_id, reason, attempts, last_error,
 *       correlation_id, failed_at, kind, ref)   the dead-letter queue; kind
 *       "webhook": user = the endpoint, ref = the delivery id.
 *   events(seq, cid, off, n)   the routes' log: an entry per pubs row written
 *       while logging is on, in its transaction; seq (AUTOINCREMENT) never reused.
 *       Index events_cid(cid, off): retention keeps what an entry names.
 *   cursors(cid, user, off)   WITHOUT ROWID, key (cid, user)
 *       Each user's read cursor per stream: only moves forward, never past head.
 *   idem(cid, idem_key, off, id, ts)   WITHOUT ROWID, key (cid, idem_key)
 *       The accepted idempotency keys; rows older than the dedup window are
 *       ignored and swept. Index idem_ts(ts) drives the sweep.
 *
 * Rules that make "acked means durable" and gap-free recovery hold:
 *  1. WAL with synchronous=FULL: COMMIT returns only after the WAL is fsynced.
 *     The sink sees a publish only after the COMMIT of its batch returned.
 *  2. A batch's pubs, idem keys, delivery rows and state changes, trims and
 *     channel rows change in ONE transaction. If any statement or the COMMIT
 *     fails, it is rolled back, every publish of the batch fails with PL_EIO
 *     and the in-memory state (heads, rings) is untouched: no offset is
 *     consumed. Cursor moves commit next, alone; so do the sweep, DLQ
 *     replay/purge and expiring pending pubs.
 *  3. Offsets are contiguous per channel: they come from channels.head,
 *     written with the pubs, so none is reused, even after a full trim or a restart.
 *  4. The retained pubs of a channel are exactly offsets [first_off, head].
 *     Retention (history size, TTL) only ever removes a prefix, in every
 *     batch that touches the channel (reads too) and in the sweep.
 *  5. PRAGMA max_page_count enforces max_db_bytes: a full "disk" is a real SQLITE_FULL.
 *  6. A key younger than the dedup window makes a publish a duplicate: no
 *     offset, the original's answer (its identity alone once trimmed).
 *  7. An epoch is drawn when the engine first meets a channel without a row
 *     (a read too) and written with the row. It names this incarnation of
 *     the stream: a position recovers only under the same epoch (or "*").
 *  8. Rings hold committed pubs only, a channel's newest: pushed after the
 *     COMMIT, cut when first moves. The cache evicts between batches only.
 *  9. Delivery states are final except acknowledged -> seen (the cursor
 *     passed it) and failed -> queued (DLQ replay); failed writes a dlq row.
 * 10. One engine holds the files (locked at open) and answers a commit only
 *     while they are the ones it opened; else never again (files.h).
 *
 * Files (sq_ marks what they share): schema.c tables, upgrades, statements,
 * opening; files.c the files' identity; cache.c the channel cache, LRU, rings,
 * tenant quotas and bytes; rows.c pubs rows read and written; retention.c
 * trims, channel rows, the sweep; commit.c the batch: staging, idempotency,
 * commit or undo, answers; read.c reads and cursors; delivery.c
 * guaranteed-delivery rows; admin.c DLQ, trace, sent-all; thread.c the
 * thread, the vtable, engine_sqlite_new. Retention, reads and deliveries are
 * files of their own (each is a rule); what the commit path runs per pub is
 * static inline here, as it was inlined.
 */
#ifndef PL_ENGINE_SQLITE_INT_H
#define PL_ENGINE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "engine/engine.h" /* stddef.h, stdint.h, util/status.h */
#include "engine/sqlite/files.h"
#include "util/map.h"
#include "util/mem.h"
#include "util/sbuf.h"

#define SQ_ROW_PUBS_MAX 256          /* a row ends at this many pubs, */
#define SQ_ROW_BYTES_MAX (64 * 1024) /* or past this many data bytes */
#define SQ_HASH_BUCKETS 16384        /* fixed: the cache is bounded, so no rehash */

/* A cached channel. Committed fields mirror the channels row; b_* fields are
 * the state inside the open batch and equal the committed ones outside it. */
typedef struct sq_chan sq_chan;
struct sq_chan {
    sq_chan *hnext;
    sq_chan *lru_prev, *lru_next;
    sq_chan *b_next; /* list of channels touched by the batch */
    uint32_t hash;
    int64_t cid;                            /* channels rowid; 0 until committed */
    int b_inserted, b_touched, b_published; /* inserted by the open batch, ... */
    char epoch[PUB_EPOCH_LEN + 1];
    uint64_t head, first;
    int64_t ttl_ms, next_exp_ms;
    uint64_t b_head, b_first;
    int64_t b_ttl_ms, b_next_exp_ms;
    uint32_t b_keep; /* history_size of the batch's last publish */
    /* The batch's new pubs of this channel: slot indexes + 1 (0 = none),
     * linked through sq_slot.next_fresh in offset order. */
    uint32_t b_fresh_head, b_fresh_tail;
    /* Ring of the newest committed pubs: offsets [head - rcount + 1, head]. */
    uint32_t rcap, rcount, rstart;
    uint32_t rmax; /* ring_size: the ring grows to this on demand */
    pl_pub **ring;
    const char *tenant, *channel; /* in the same allocation */
};

/* Per-request bookkeeping of the batch being processed. */
typedef struct sq_slot {
    engine_req *req;
    sq_chan *ch;
    pl_pub *orig;        /* the submitted pub while req->pub is a duplicate's original */
    pl_pub *fresh;       /* the new pub this slot writes in the batch, or NULL */
    uint32_t next_fresh; /* the channel's next new pub: slot index + 1, or 0 */
} sq_slot;

/* The statements prepared at open (schema.c has their SQL). */
enum {
    SQ_ST_BEGIN,
    SQ_ST_COMMIT,
    SQ_ST_ROLLBACK,
    SQ_ST_CHAN_GET,
    SQ_ST_CHAN_INS,
    SQ_ST_CHAN_SET,
    SQ_ST_CHAN_DUE,
    SQ_ST_PUB_INS,
    SQ_ST_PUB_RANGE,
    SQ_ST_PUB_TS,
    SQ_ST_PUB_TRIM,
    SQ_ST_IDEM_GET,
    SQ_ST_IDEM_PUT,
    SQ_ST_IDEM_EXPIRE,
    SQ_ST_CUR_GET,
    SQ_ST_CUR_SET,
    SQ_ST_CUR_ALL,
    SQ_ST_DLV_INS,
    SQ_ST_DLV_GET,
    SQ_ST_DLV_SET,
    SQ_ST_DLOG_INS,
    SQ_ST_DLV_UPTO,
    SQ_ST_DLV_PENDING,
    SQ_ST_DLQ_INS,
    SQ_ST_EVT_INS,
    SQ_ST_EVT_READ,
    SQ_ST_EVT_HEAD,
    SQ_ST_EVT_TRIM,
    SQ_ST_EVT_FLOOR,
    SQ_ST_COUNT
};

typedef struct sq_engine {
    engine base;
    engine_opts opts; /* data_dir points at our copy */
    char *data_dir;
    sqlite3 *db;
    sqlite3_stmt *st[SQ_ST_COUNT];
    pthread_mutex_t mu; /* guards the queue and the lifecycle flags */
    pthread_cond_t cv;
    engine_req *q_head, *q_tail;
    int stopping, running;
    int idle; /* the thread waits on cv (guarded by mu) */
    pthread_t thread;
    /* Engine thread only. */
    sq_chan **buckets;
    size_t nchan;
    uint32_t quota;      /* max_channels of the request being staged */
    map tenant_channels; /* tenant -> channel rows + 1 (loaded lazily) */
    map tenant_bytes;    /* tenant -> stored data bytes + 1, for tenants with a budget */
    sq_chan *lru_head, *lru_tail;
    sq_slot *slots;
    engine_req **out;
    int64_t last_sweep_ms;
    int b_fatal;               /* a statement of the open transaction failed */
    sbuf row_blob;             /* the `more` column being built, kept for its capacity */
    int64_t id_index;          /* the database has pubs_id(id) (created at version 2) */
    atomic_int log_events;     /* commits write events rows (engine_log_events) */
    _Atomic uint64_t log_head; /* the newest committed events seq (engine_log_events) */
    uint64_t b_log_last;       /* the newest events seq this batch wrote; 0: none */
    sq_files files;
    pthread_mutex_t stats_mu;
    engine_stats stats;
} sq_engine;

/* schema.c */
int sq_open_db(sq_engine *e, char *err, size_t errlen);
/* cache.c */
sq_chan *sq_chan_get(sq_engine *e, const char *tenant, const char *channel, int *status);
int sq_chan_insert(sq_engine *e, sq_chan *ch);
void sq_apply_channels(sq_chan *touched);
void sq_revert_channels(sq_chan *touched);
void sq_chan_evict_excess(sq_engine *e);
void sq_chan_free(sq_chan *ch);
void sq_ring_grow(sq_chan *ch); /* up to rmax; called on the rare push that fills the ring */
int64_t sq_tenant_bytes(sq_engine *e, const char *tenant);
void sq_tenant_bytes_add(sq_engine *e, const char *tenant, int64_t delta);
/* rows.c */
int sq_load_range(sq_engine *e, const sq_chan *ch, uint64_t lo, uint64_t hi, pl_pub **out,
                  size_t *n);
pl_pub *sq_load_one(sq_engine *e, sq_chan *ch, uint64_t off);
int sq_write_pubs(sq_engine *e, sq_chan *touched);
/* retention.c */
int sq_finish_channels(sq_engine *e, sq_chan *touched, int64_t now, int *in_txn);
void sq_sweep(sq_engine *e, int64_t now);
/* commit.c */
void sq_process_batch(sq_engine *e, size_t n);
void sq_txn_rollback(sq_engine *e);
/* read.c */
int sq_serve_read(sq_engine *e, sq_chan *ch, engine_req *r);
int sq_cursor_get(sq_engine *e, sq_chan *ch, engine_req *r);
void sq_apply_cursors(sq_engine *e, size_t n);
/* delivery.c */
int sq_insert_recipients(sq_engine *e, const sq_chan *ch, const pl_pub *p, engine_req *r,
                         int64_t now);
int sq_stage_delivery(sq_engine *e, engine_req *r, sq_chan *ch, int64_t now);
int sq_move_upto(sq_engine *e, engine_req *r, sq_chan *ch, int max_from, int to, int64_t now);
int sq_set_delivery(sq_engine *e, int64_t cid, uint64_t off, const char *user, int state,
                    uint32_t attempts, int64_t now, const char *error);
int sq_grow_result(engine_req *r, size_t *cap, int with_users);
int sq_serve_pending(sq_engine *e, sq_chan *ch, engine_req *r);
int sq_serve_admin(sq_engine *e, engine_req *r, int64_t now); /* admin.c */
int sq_serve_events(sq_engine *e, engine_req *r);             /* events.c */

static inline void sq_bind_str(sqlite3_stmt *st, int idx, const char *s)
{
    if (s)
        sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, idx);
}

/* Steps a statement that returns no rows and resets it; PL_OK or PL_EIO. */
static inline int sq_run_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? PL_OK : PL_EIO;
}

static inline int sq_txn_begin(sq_engine *e, int *in_txn)
{
    if (*in_txn) return PL_OK;
    if (sq_run_done(e->st[SQ_ST_BEGIN]) != PL_OK) return PL_EIO;
    *in_txn = 1;
    return PL_OK;
}

static inline void sq_touch(sq_chan *ch, sq_chan **touched)
{
    if (ch->b_touched) return;
    ch->b_touched = 1;
    ch->b_next = *touched;
    *touched = ch;
}

static inline uint64_t sq_ring_lo(const sq_chan *ch)
{
    return ch->head - ch->rcount + 1;
}

static inline pl_pub *sq_ring_at(const sq_chan *ch, uint64_t off)
{
    return ch->ring[(ch->rstart + (off - sq_ring_lo(ch))) % ch->rcap];
}

/* Appends the pub with offset ch->head + 1 (takes a reference). */
static inline void sq_ring_push(sq_chan *ch, pl_pub *p)
{
    ch->head = p->offset;
    if (ch->rcount == ch->rcap && ch->rcap < ch->rmax) sq_ring_grow(ch);
    if (!ch->rcap) return;
    if (ch->rcount == ch->rcap) {
        pub_unref(ch->ring[ch->rstart]);
        ch->ring[ch->rstart] = pub_ref(p);
        ch->rstart = (ch->rstart + 1) % ch->rcap;
    } else {
        ch->ring[(ch->rstart + ch->rcount) % ch->rcap] = pub_ref(p);
        ch->rcount++;
    }
}

#endif
