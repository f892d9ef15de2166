/* The embedded SQLite engine. One storage thread owns the database and an
 * in-memory cache of channels (head, epoch, recent pubs); it drains the submit
 * queue into batches, commits every publish of a batch in one fsynced
 * transaction (group commit) and hands the whole batch to the sink.
 *
 * On-disk format (schema version 4, kept in PRAGMA user_version; versions 2
 * and 3 are upgraded in place, version 1 was a development layout without
 * cid and is refused):
 *
 *   channels(cid, tenant, channel, epoch, head, first_off, ttl_ms, next_exp_ms)
 *       One row per stream, created by its first publish or first read;
 *       cid (the rowid) names the stream in the other tables, which keeps
 *       their keys small integers. (tenant, channel) is UNIQUE.
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
 *       ROW_PUBS_MAX and never more than the channel's history_size of them;
 *       a guaranteed pub has a row of its own (deliveries and dlq name it by
 *       the row's key). Retention deletes whole rows: a row partly below
 *       first_off stays, and its pubs below first_off are not read.
 *       Rows of versions 2 and 3 are rows with n = 1.
 *       NULL columns are absent optional fields. A stored pub's id is the
 *       ULID of its accept time with (cid, off) as the tail, 40 bits each
 *       (seg_pub_id), so trace finds the row by key without an index on id.
 *       Databases created at version 2 keep their index pubs_id(id): it is
 *       what finds pubs whose ids were random, and trace uses it when
 *       present. (Without the index insert per pub, acked publishes/s
 *       rose about 18%, see bench/README.md.)
 *   deliveries(cid, off, user, state, attempts, updated_ms)   WITHOUT ROWID
 *       One row per recipient of a guaranteed pub, written in the pub's
 *       transaction (state queued); state changes commit with the batch.
 *   delivery_log(cid, off, user, state, attempt, ts, error)
 *       Every transition, for `trace`.
 *   dlq(id, tenant, channel, cid, off, user, pub_id, reason, attempts,
 *       last_error, correlation_id, failed_at)   the dead-letter queue.
 *   cursors(cid, user, off)   WITHOUT ROWID, key (cid, user)
 *       Each user's read cursor per stream; only ever moves forward, never
 *       past head. Added to version 2 databases in place (new table only).
 *   idem(cid, idem_key, off, id, ts)   WITHOUT ROWID, key (cid, idem_key)
 *       The accepted idempotency keys; rows older than the dedup window are
 *       ignored and swept. Index idem_ts(ts) drives the sweep.
 *
 * Rules that make "acked means durable" and gap-free recovery hold:
 *  1. WAL with synchronous=FULL: COMMIT returns only after the WAL is fsynced.
 *     The sink sees a publish only after the COMMIT of its batch returned.
 *  2. A batch's pubs, idem keys, trims and channel rows change in ONE
 *     transaction. If any statement or the COMMIT fails, the transaction is
 *     rolled back, every publish of the batch fails with PL_EIO and the
 *     in-memory state (heads, rings) is untouched: no offset is consumed.
 *  3. Offsets come from channels.head, which is written in the same
 *     transaction as the pubs, so an offset is never reused, not even after
 *     every pub was trimmed or the process restarted.
 *  4. The retained pubs of a channel are exactly offsets [first_off, head].
 *     Retention (history size, TTL) only ever removes a prefix.
 *  5. PRAGMA max_page_count enforces max_db_bytes, so a full "disk" is a real
 *     SQLITE_FULL on the same path as a real one.
 */
#include "engine/engine.h"
#include "engine/seg.h"

#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util/clock.h"
#include "util/map.h"
#include "util/mem.h"
#include "util/sbuf.h"
#include "util/status.h"

#define SCHEMA_VERSION 4
#define SCHEMA_VERSION_OLDEST 2 /* still opened, upgraded in place */
/* A commit's pubs of one channel share rows of at most this many pubs, and a
 * row ends early past ROW_BYTES_MAX of data: bounded blobs, and a retention
 * trim keeps a bounded surplus of rows it cut into. */
#define ROW_PUBS_MAX 256
#define ROW_BYTES_MAX (64 * 1024)
#define BATCH_MAX 4096      /* requests per batch (and per sink call) */
#define MAX_CHANNELS 10000  /* cached channels (each with a ring), LRU beyond */
#define HASH_BUCKETS 16384  /* fixed: the cache is bounded, so no rehash */
#define SWEEP_EVERY_MS 1000 /* TTL and idempotency sweeps */
#define SWEEP_CHANNELS 256  /* channels trimmed per sweep transaction */
#define DEFAULT_RING 128
#define DEFAULT_DEDUP_MS (24LL * 3600 * 1000)
#define BUSY_TIMEOUT_MS 5000
/* Checkpoint less often than SQLite's 1000 pages: one large batch dirties
 * ~1000 pages, and hot pages rewritten by consecutive batches are copied to
 * the database once per checkpoint instead of once per batch. */
#define WAL_CHECKPOINT_PAGES 16384
#define STR_(x) #x
#define STR(x) STR_(x)

/* ------------------------------------------------------------------------ */
/* Types                                                                    */
/* ------------------------------------------------------------------------ */

/* A cached channel. Committed fields mirror the channels row; b_* fields are
 * the state inside the open batch and equal the committed ones outside it. */
typedef struct chan chan;
struct chan {
    chan *hnext;
    chan *lru_prev, *lru_next;
    chan *b_next; /* list of channels touched by the batch */
    uint32_t hash;
    int64_t cid;    /* channels rowid; 0 while the row is not committed */
    int b_inserted; /* the row was inserted by the open batch */
    int b_touched;
    int b_published;
    char epoch[PUB_EPOCH_LEN + 1];
    uint64_t head, first;
    int64_t ttl_ms, next_exp_ms;
    uint64_t b_head, b_first;
    int64_t b_ttl_ms, b_next_exp_ms;
    uint32_t b_keep; /* history_size of the batch's last publish */
    /* The batch's new pubs of this channel: slot indexes + 1 (0 = none),
     * linked through slot.next_fresh in offset order. */
    uint32_t b_fresh_head, b_fresh_tail;
    /* Ring of the newest committed pubs: offsets [head - rcount + 1, head]. */
    uint32_t rcap, rcount, rstart;
    uint32_t rmax; /* ring_size: the ring grows to this on demand */
    pl_pub **ring;
    const char *tenant, *channel; /* in the same allocation */
};

/* Per-request bookkeeping of the batch being processed. */
typedef struct slot {
    engine_req *req;
    chan *ch;
    pl_pub *orig;        /* the submitted pub while req->pub is a duplicate's original */
    pl_pub *fresh;       /* the new pub this slot writes in the batch, or NULL */
    uint32_t next_fresh; /* the channel's next new pub: slot index + 1, or 0 */
} slot;

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_CHAN_GET,
    ST_CHAN_INS,
    ST_CHAN_SET,
    ST_CHAN_DUE,
    ST_PUB_INS,
    ST_PUB_RANGE,
    ST_PUB_TS,
    ST_PUB_TRIM,
    ST_IDEM_GET,
    ST_IDEM_PUT,
    ST_IDEM_EXPIRE,
    ST_CUR_GET,
    ST_CUR_SET,
    ST_DLV_INS,
    ST_DLV_GET,
    ST_DLV_SET,
    ST_DLOG_INS,
    ST_DLV_UPTO,
    ST_DLV_PENDING,
    ST_DLQ_INS,
    ST_COUNT
};

/* The first offset of the row holding offset ?2 of channel ?1 (?2 itself
 * when no row starts at or before it). */
#define ROW_OF_2                                                                                   \
    "COALESCE((SELECT off FROM pubs WHERE cid = ?1 AND off <= ?2 ORDER BY off DESC LIMIT 1), ?2)"

/* Every statement the engine runs, prepared once at open. */
static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_CHAN_GET] = "SELECT cid, epoch, head, first_off, ttl_ms, next_exp_ms FROM channels"
                    " WHERE tenant = ?1 AND channel = ?2",
    [ST_CHAN_INS] = "INSERT INTO channels(tenant, channel, epoch, head, first_off, ttl_ms,"
                    " next_exp_ms) VALUES (?1, ?2, ?3, 0, 0, 0, 0)",
    [ST_CHAN_SET] = "UPDATE channels SET head = ?2, first_off = ?3, ttl_ms = ?4,"
                    " next_exp_ms = ?5 WHERE cid = ?1",
    [ST_CHAN_DUE] = "SELECT tenant, channel FROM channels"
                    " WHERE next_exp_ms > 0 AND next_exp_ms <= ?1 LIMIT ?2",
    [ST_PUB_INS] = "INSERT INTO pubs(cid, off, id, ts, cls, data, user, client, type,"
                   " correlation_id, headers, idem_key, n, dbytes, more)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    /* Rows from the one holding offset ?2 (it may start before) to ?3. */
    [ST_PUB_RANGE] = "SELECT off, id, ts, cls, data, user, client, type, correlation_id,"
                     " headers, idem_key, n, more FROM pubs WHERE cid = ?1 AND off >= " ROW_OF_2
                     " AND off <= ?3 ORDER BY off",
    [ST_PUB_TS] = "SELECT off, ts FROM pubs WHERE cid = ?1 AND off >= " ROW_OF_2 " ORDER BY off",
    /* A row goes when all of its pubs are below ?2. */
    [ST_PUB_TRIM] = "DELETE FROM pubs WHERE cid = ?1 AND off < ?2 AND off + n <= ?2",
    [ST_IDEM_GET] = "SELECT off, id, ts FROM idem WHERE cid = ?1 AND idem_key = ?2",
    [ST_IDEM_PUT] = "INSERT OR REPLACE INTO idem(cid, idem_key, off, id, ts)"
                    " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_IDEM_EXPIRE] = "DELETE FROM idem WHERE ts < ?1",
    [ST_CUR_GET] = "SELECT off FROM cursors WHERE cid = ?1 AND user = ?2",
    [ST_CUR_SET] = "INSERT INTO cursors(cid, user, off) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT(cid, user) DO UPDATE SET off = excluded.off",
    [ST_DLV_INS] = "INSERT OR IGNORE INTO deliveries(cid, off, user, state, attempts, updated_ms)"
                   " VALUES (?1, ?2, ?3, 0, 0, ?4)",
    [ST_DLV_GET] =
        "SELECT state, attempts FROM deliveries WHERE cid = ?1 AND off = ?2 AND user = ?3",
    [ST_DLV_SET] = "UPDATE deliveries SET state = ?4, attempts = ?5, updated_ms = ?6"
                   " WHERE cid = ?1 AND off = ?2 AND user = ?3",
    [ST_DLOG_INS] = "INSERT INTO delivery_log(cid, off, user, state, attempt, ts, error)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_DLV_UPTO] = "SELECT off, state, attempts FROM deliveries WHERE cid = ?1 AND user = ?2"
                    " AND off <= ?3 AND state <= ?4 ORDER BY off",
    [ST_DLV_PENDING] = "SELECT off, attempts FROM deliveries WHERE cid = ?1 AND user = ?2"
                       " AND state <= 1 ORDER BY off",
    [ST_DLQ_INS] = "INSERT INTO dlq(tenant, channel, cid, off, user, pub_id, reason, attempts,"
                   " last_error, correlation_id, failed_at) VALUES (?1, ?2, ?3, ?4, ?5,"
                   " (SELECT id FROM pubs WHERE cid = ?3 AND off = ?4), ?6, ?7, ?8,"
                   " (SELECT correlation_id FROM pubs WHERE cid = ?3 AND off = ?4), ?9)",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS channels ("
    " cid INTEGER PRIMARY KEY, tenant TEXT NOT NULL, channel TEXT NOT NULL,"
    " epoch TEXT NOT NULL, head INTEGER NOT NULL, first_off INTEGER NOT NULL,"
    " ttl_ms INTEGER NOT NULL, next_exp_ms INTEGER NOT NULL, UNIQUE (tenant, channel));"
    "CREATE INDEX IF NOT EXISTS channels_exp ON channels(next_exp_ms) WHERE next_exp_ms > 0;"
    "CREATE TABLE IF NOT EXISTS pubs ("
    " cid INTEGER NOT NULL, off INTEGER NOT NULL, id TEXT NOT NULL, ts INTEGER NOT NULL,"
    " cls INTEGER NOT NULL, data TEXT, user TEXT, client TEXT, type TEXT,"
    " correlation_id TEXT, headers TEXT, idem_key TEXT,"
    " n INTEGER NOT NULL DEFAULT 1, dbytes INTEGER, more BLOB,"
    " PRIMARY KEY (cid, off)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS idem ("
    " cid INTEGER NOT NULL, idem_key TEXT NOT NULL, off INTEGER NOT NULL,"
    " id TEXT NOT NULL, ts INTEGER NOT NULL,"
    " PRIMARY KEY (cid, idem_key)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS idem_ts ON idem(ts);"
    "CREATE TABLE IF NOT EXISTS deliveries ("
    " cid INTEGER NOT NULL, off INTEGER NOT NULL, user TEXT NOT NULL, state INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY (cid, off, user)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS deliveries_user ON deliveries(cid, user, off);"
    "CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries(state) WHERE state = 1;"
    "CREATE TABLE IF NOT EXISTS delivery_log ("
    " cid INTEGER NOT NULL, off INTEGER NOT NULL, user TEXT NOT NULL, state INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL, ts INTEGER NOT NULL, error TEXT);"
    "CREATE INDEX IF NOT EXISTS delivery_log_pub ON delivery_log(cid, off);"
    "CREATE TABLE IF NOT EXISTS dlq ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, channel TEXT NOT NULL,"
    " cid INTEGER NOT NULL,"
    " off INTEGER NOT NULL, user TEXT NOT NULL, pub_id TEXT, reason TEXT NOT NULL,"
    " attempts INTEGER NOT NULL, last_error TEXT, correlation_id TEXT, failed_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS dlq_tenant ON dlq(tenant, id);"
    "CREATE TABLE IF NOT EXISTS cursors ("
    " cid INTEGER NOT NULL, user TEXT NOT NULL, off INTEGER NOT NULL,"
    " PRIMARY KEY (cid, user)) WITHOUT ROWID;";

/* Versions 2 and 3 stored one pub per row: rows with n = 1. */
static const char upgrade_to_4_sql[] = "ALTER TABLE pubs ADD COLUMN n INTEGER NOT NULL DEFAULT 1;"
                                       "ALTER TABLE pubs ADD COLUMN dbytes INTEGER;"
                                       "ALTER TABLE pubs ADD COLUMN more BLOB;";

typedef struct sq_engine {
    engine base;
    engine_opts opts; /* data_dir points at our copy */
    char *data_dir;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];

    pthread_mutex_t mu; /* guards the queue and the lifecycle flags */
    pthread_cond_t cv;
    engine_req *q_head, *q_tail;
    int stopping;
    int idle; /* the thread waits on cv (guarded by mu) */
    int running;
    pthread_t thread;

    /* Engine thread only. */
    chan **buckets;
    size_t nchan;
    uint32_t quota;      /* max_channels of the request being staged */
    map tenant_channels; /* tenant -> channel rows + 1 (loaded lazily) */
    map tenant_bytes;    /* tenant -> stored data bytes + 1, for tenants with a budget */
    chan *lru_head, *lru_tail;
    slot *slots;
    engine_req **out;
    int64_t last_sweep_ms;
    int b_fatal;      /* a statement of the open transaction failed */
    sbuf row_blob;    /* the `more` column being built, kept for its capacity */
    int64_t id_index; /* the database has pubs_id(id) (created at version 2) */

    pthread_mutex_t stats_mu;
    engine_stats stats;
} sq_engine;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void make_epoch(char out[PUB_EPOCH_LEN + 1])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = 0;
    while (n < PUB_EPOCH_LEN) {
        unsigned char rnd[16];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            /* The RNG failing must not stop storage; an epoch only has to
             * differ from earlier incarnations, which the clock ensures. */
            uint64_t x = (uint64_t)clock_mono_us() ^ ((uint64_t)clock_wall_ms() << 20);
            for (size_t i = 0; i < sizeof(rnd); i++, x = x * 6364136223846793005ULL + 1)
                rnd[i] = (unsigned char)(x >> 56);
        }
        /* Rejection keeps the 36 symbols uniform (252 = 7 * 36). */
        for (size_t i = 0; i < sizeof(rnd) && n < PUB_EPOCH_LEN; i++)
            if (rnd[i] < 252) out[n++] = alphabet[rnd[i] % 36];
    }
    out[PUB_EPOCH_LEN] = '\0';
}

static uint32_t chan_hash(const char *tenant, const char *channel)
{
    /* Two hashes combined unevenly: ("ab","c") and ("a","bc") differ. */
    uint64_t h = map_hash(tenant, strlen(tenant)) * 0x9E3779B97F4A7C15ULL;
    h ^= map_hash(channel, strlen(channel));
    return (uint32_t)(h ^ (h >> 32));
}

static void bind_str(sqlite3_stmt *st, int idx, const char *s)
{
    if (s)
        sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, idx);
}

/* Steps a statement that returns no rows and resets it; PL_OK or PL_EIO. */
static int run_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? PL_OK : PL_EIO;
}

static int hist_bucket_pow2(uint64_t n)
{
    for (int i = 0; i <= 10; i++)
        if (n <= (1ULL << i)) return i;
    return 11;
}

static int hist_bucket_us(int64_t us)
{
    static const int64_t bounds[] = {100,   250,   500,   1000,   2500,  5000,
                                     10000, 25000, 50000, 100000, 250000};
    for (int i = 0; i < 11; i++)
        if (us <= bounds[i]) return i;
    return 11;
}

/* ------------------------------------------------------------------------ */
/* Channel cache and rings                                                  */
/* ------------------------------------------------------------------------ */

static uint64_t ring_lo(const chan *ch)
{
    return ch->head - ch->rcount + 1;
}

static pl_pub *ring_at(const chan *ch, uint64_t off)
{
    return ch->ring[(ch->rstart + (off - ring_lo(ch))) % ch->rcap];
}

/* Doubles the ring up to rmax, so that idle channels (one subscriber, no
 * traffic) cost no ring at all. A failed allocation keeps the old size. */
static void ring_grow(chan *ch)
{
    uint32_t ncap = ch->rcap ? ch->rcap * 2 : 4;
    if (ncap > ch->rmax) ncap = ch->rmax;
    pl_pub **nr = ncap ? pl_malloc(ncap * sizeof(*nr)) : NULL;
    if (!nr) return;
    for (uint32_t i = 0; i < ch->rcount; i++)
        nr[i] = ch->ring[(ch->rstart + i) % ch->rcap];
    pl_free(ch->ring);
    ch->ring = nr;
    ch->rcap = ncap;
    ch->rstart = 0;
}

/* Appends the pub with offset ch->head + 1 (takes a reference). */
static void ring_push(chan *ch, pl_pub *p)
{
    ch->head = p->offset;
    if (ch->rcount == ch->rcap && ch->rcap < ch->rmax) ring_grow(ch);
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

/* Drops ring entries that retention removed (offsets below first). */
static void ring_trim(chan *ch)
{
    uint64_t ef = ch->first ? ch->first : ch->head + 1;
    while (ch->rcount && ring_lo(ch) < ef) {
        pub_unref(ch->ring[ch->rstart]);
        ch->ring[ch->rstart] = NULL;
        ch->rstart = (ch->rstart + 1) % ch->rcap;
        ch->rcount--;
    }
}

static void lru_unlink(sq_engine *e, chan *ch)
{
    if (ch->lru_prev)
        ch->lru_prev->lru_next = ch->lru_next;
    else
        e->lru_head = ch->lru_next;
    if (ch->lru_next)
        ch->lru_next->lru_prev = ch->lru_prev;
    else
        e->lru_tail = ch->lru_prev;
    ch->lru_prev = ch->lru_next = NULL;
}

static void lru_front(sq_engine *e, chan *ch)
{
    ch->lru_next = e->lru_head;
    if (e->lru_head) e->lru_head->lru_prev = ch;
    e->lru_head = ch;
    if (!e->lru_tail) e->lru_tail = ch;
}

static void chan_free(chan *ch)
{
    while (ch->rcount) {
        pub_unref(ch->ring[ch->rstart]);
        ch->rstart = (ch->rstart + 1) % ch->rcap;
        ch->rcount--;
    }
    pl_free(ch->ring);
    pl_free(ch);
}

static void chan_evict(sq_engine *e, chan *ch)
{
    chan **pp = &e->buckets[ch->hash % HASH_BUCKETS];
    while (*pp != ch)
        pp = &(*pp)->hnext;
    *pp = ch->hnext;
    lru_unlink(e, ch);
    e->nchan--;
    chan_free(ch);
}

/* Evicts least recently used channels beyond the bound. Only between
 * batches: a batch holds pointers to the channels it touched. */
static void chan_evict_excess(sq_engine *e)
{
    while (e->nchan > MAX_CHANNELS && e->lru_tail)
        chan_evict(e, e->lru_tail);
}

static chan *chan_alloc(sq_engine *e, const char *tenant, const char *channel, uint32_t hash)
{
    size_t tl = strlen(tenant), cl = strlen(channel);
    chan *ch = pl_calloc(1, sizeof(*ch) + tl + cl + 2);
    if (!ch) return NULL;
    ch->hash = hash;
    ch->rmax = e->opts.ring_size;
    char *names = (char *)(ch + 1);
    memcpy(names, tenant, tl + 1);
    memcpy(names + tl + 1, channel, cl + 1);
    ch->tenant = names;
    ch->channel = names + tl + 1;
    return ch;
}

static void chan_reset_batch(chan *ch)
{
    ch->b_head = ch->head;
    ch->b_first = ch->first;
    ch->b_ttl_ms = ch->ttl_ms;
    ch->b_next_exp_ms = ch->next_exp_ms;
    ch->b_keep = 0;
    ch->b_published = 0;
    ch->b_fresh_head = ch->b_fresh_tail = 0;
}

/* Returns the cached channel, loading its row or creating it (in memory,
 * with a fresh epoch; the row is written by the next transaction). NULL with
 * *status PL_ENOMEM or PL_EIO on failure. The channel stays owned by the
 * cache. */
/* Counts a new channel against the tenant's quota (e->quota); 0 when the
 * tenant is at it. The count is loaded once per tenant and kept; a channel
 * whose creation is rolled back stays counted (errs on the safe side). */
static int quota_take(sq_engine *e, const char *tenant)
{
    size_t tl = strlen(tenant);
    uintptr_t v = (uintptr_t)map_get(&e->tenant_channels, tenant, tl);
    if (!v) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(e->db, "SELECT COUNT(*) FROM channels WHERE tenant = ?1", -1, &st,
                               NULL) != SQLITE_OK)
            return 0;
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        v = sqlite3_step(st) == SQLITE_ROW ? (uintptr_t)sqlite3_column_int64(st, 0) + 1 : 0;
        sqlite3_finalize(st);
        if (!v) return 0;
    }
    if (v - 1 >= e->quota) return 0;
    return map_put(&e->tenant_channels, tenant, tl, (void *)(v + 1)) == 0;
}

/* Stored data bytes of a tenant, loaded on first use; -1 on error. */
static int64_t tenant_bytes(sq_engine *e, const char *tenant)
{
    size_t tl = strlen(tenant);
    uintptr_t v = (uintptr_t)map_get(&e->tenant_bytes, tenant, tl);
    if (v) return (int64_t)(v - 1);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(e->db,
                           "SELECT COALESCE(SUM(COALESCE(p.dbytes, LENGTH(p.data))), 0)"
                           " FROM pubs p JOIN channels c"
                           " ON c.cid = p.cid WHERE c.tenant = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    int64_t bytes = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (bytes >= 0 && map_put(&e->tenant_bytes, tenant, tl, (void *)(uintptr_t)(bytes + 1)))
        return -1;
    return bytes;
}

/* Adds delta to a tenant's tracked bytes (only tenants being tracked). */
static void tenant_bytes_add(sq_engine *e, const char *tenant, int64_t delta)
{
    size_t tl = strlen(tenant);
    uintptr_t v = (uintptr_t)map_get(&e->tenant_bytes, tenant, tl);
    if (!v) return;
    int64_t now = (int64_t)(v - 1) + delta;
    map_put(&e->tenant_bytes, tenant, tl, (void *)(uintptr_t)((now > 0 ? now : 0) + 1));
}

/* Before a retention trim: takes the data bytes of the rows it deletes (those
 * whose pubs are all below keep) off the tenant's tally (tracked tenants
 * only). PL_OK or PL_EIO. */
static int account_trim(sq_engine *e, const chan *ch, uint64_t keep)
{
    if (!map_get(&e->tenant_bytes, ch->tenant, strlen(ch->tenant))) return PL_OK;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(e->db,
                           "SELECT COALESCE(SUM(COALESCE(dbytes, LENGTH(data))), 0) FROM pubs"
                           " WHERE cid = ?1 AND off < ?2 AND off + n <= ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return PL_EIO;
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)keep);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) tenant_bytes_add(e, ch->tenant, -sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? PL_OK : PL_EIO;
}

static chan *chan_get(sq_engine *e, const char *tenant, const char *channel, int *status)
{
    uint32_t h = chan_hash(tenant, channel);
    for (chan *c = e->buckets[h % HASH_BUCKETS]; c; c = c->hnext) {
        if (c->hash == h && !strcmp(c->tenant, tenant) && !strcmp(c->channel, channel)) {
            lru_unlink(e, c);
            lru_front(e, c);
            return c;
        }
    }
    chan *ch = chan_alloc(e, tenant, channel, h);
    if (!ch) {
        *status = PL_ENOMEM;
        return NULL;
    }
    sqlite3_stmt *st = e->st[ST_CHAN_GET];
    bind_str(st, 1, tenant);
    bind_str(st, 2, channel);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        ch->cid = sqlite3_column_int64(st, 0);
        const unsigned char *ep = sqlite3_column_text(st, 1);
        snprintf(ch->epoch, sizeof(ch->epoch), "%s", ep ? (const char *)ep : "");
        ch->head = (uint64_t)sqlite3_column_int64(st, 2);
        ch->first = (uint64_t)sqlite3_column_int64(st, 3);
        ch->ttl_ms = sqlite3_column_int64(st, 4);
        ch->next_exp_ms = sqlite3_column_int64(st, 5);
    } else if (rc == SQLITE_DONE) {
        make_epoch(ch->epoch);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE && e->quota && !quota_take(e, tenant)) {
        pl_free(ch);
        *status = PL_ELIMIT;
        return NULL;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        pl_free(ch);
        *status = PL_EIO;
        return NULL;
    }
    chan_reset_batch(ch);
    ch->hnext = e->buckets[h % HASH_BUCKETS];
    e->buckets[h % HASH_BUCKETS] = ch;
    lru_front(e, ch);
    e->nchan++;
    return ch;
}

static void touch(chan *ch, chan **touched)
{
    if (ch->b_touched) return;
    ch->b_touched = 1;
    ch->b_next = *touched;
    *touched = ch;
}

/* ------------------------------------------------------------------------ */
/* Pub rows                                                                 */
/* ------------------------------------------------------------------------ */

static const char *col_text(sqlite3_stmt *st, int i, size_t *len)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    *len = s ? (size_t)sqlite3_column_bytes(st, i) : 0;
    return s;
}

/* Builds a stored pub (one reference); NULL on allocation failure. */
static pl_pub *stored_pub(sq_engine *e, const chan *ch, pub_fields *f, pub_class cls, uint64_t off,
                          const char *id, int64_t ts)
{
    f->tenant = ch->tenant;
    f->tenant_len = strlen(ch->tenant);
    f->channel = ch->channel;
    f->channel_len = strlen(ch->channel);
    pl_pub *p = pub_new(f, cls);
    if (!p) return NULL;
    p->offset = off;
    snprintf(p->id, sizeof(p->id), "%s", id ? id : "");
    p->ts_ms = ts;
    memcpy(p->epoch, ch->epoch, sizeof(p->epoch));
    return p;
}

/* Appends the pubs of one ST_PUB_RANGE row with offsets in [*next, hi] to
 * out and moves *next past them. Offsets must grow from row to row: a
 * damaged file must not overfill out. PL_OK, PL_ENOMEM or PL_EIO. */
static int row_pubs(sq_engine *e, const chan *ch, sqlite3_stmt *st, uint64_t *next, uint64_t hi,
                    pl_pub **out, size_t *n)
{
    uint64_t off = (uint64_t)sqlite3_column_int64(st, 0);
    int64_t count = sqlite3_column_int64(st, 11), ts = sqlite3_column_int64(st, 2);
    const void *more = sqlite3_column_blob(st, 12);
    size_t more_len = (size_t)sqlite3_column_bytes(st, 12);
    if (count < 1 || (count > 1) != (more != NULL) || off + (uint64_t)count - 1 < off)
        return PL_EIO;
    if (off + (uint64_t)count - 1 < *next) return PL_OK; /* ends before the range */
    pub_fields f = {0};
    f.data = col_text(st, 4, &f.data_len);
    f.user = col_text(st, 5, &f.user_len);
    f.client = col_text(st, 6, &f.client_len);
    f.type = col_text(st, 7, &f.type_len);
    f.correlation_id = col_text(st, 8, &f.correlation_id_len);
    f.headers = col_text(st, 9, &f.headers_len);
    f.idem_key = col_text(st, 10, &f.idem_key_len);
    if (off >= *next && off <= hi) {
        pl_pub *p = stored_pub(e, ch, &f, (pub_class)sqlite3_column_int(st, 3), off,
                               (const char *)sqlite3_column_text(st, 1), ts);
        if (!p) return PL_ENOMEM;
        out[(*n)++] = p;
        *next = off + 1;
    }
    seg_iter it;
    seg_iter_init(&it, more, more_len, ch->cid, off, ts, &f);
    for (int64_t k = 1; k < count; k++) {
        pub_fields g = {0};
        pub_class cls;
        char id[PUB_ID_LEN + 1];
        uint64_t o;
        if (seg_next(&it, &g, &cls, id, &o) != PL_OK) return PL_EIO;
        if (o > hi) return PL_OK;
        if (o < *next) continue;
        pl_pub *p = stored_pub(e, ch, &g, cls, o, id, ts);
        if (!p) return PL_ENOMEM;
        out[(*n)++] = p;
        *next = o + 1;
    }
    uint64_t o;
    pub_fields g;
    pub_class cls;
    char id[PUB_ID_LEN + 1];
    return seg_next(&it, &g, &cls, id, &o) == 1 ? PL_OK : PL_EIO;
}

/* Loads the retained offsets of [lo, hi] of a channel from disk into out
 * (room for hi-lo+1 references, owned by the caller), appending at *n.
 * PL_OK, PL_ENOMEM or PL_EIO; on failure the pubs already appended stay in
 * out. */
static int load_range(sq_engine *e, const chan *ch, uint64_t lo, uint64_t hi, pl_pub **out,
                      size_t *n)
{
    /* A row that retention cut into still holds pubs below first. */
    if (!ch->first || hi < ch->first) return PL_OK;
    if (lo < ch->first) lo = ch->first;
    sqlite3_stmt *st = e->st[ST_PUB_RANGE];
    int status = PL_OK, rc = SQLITE_DONE;
    uint64_t next = lo;
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)lo);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)hi);
    while (next <= hi && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        status = row_pubs(e, ch, st, &next, hi, out, n);
        if (status != PL_OK) break;
    }
    if (status == PL_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) status = PL_EIO;
    sqlite3_reset(st);
    return status;
}

/* Inserts one row: first and the count - 1 pubs after it, whose records are
 * in e->row_blob, with bytes of data in all. */
static int insert_row(sq_engine *e, const chan *ch, const pl_pub *p, uint32_t count, int64_t bytes)
{
    sqlite3_stmt *st = e->st[ST_PUB_INS];
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)p->offset);
    sqlite3_bind_text(st, 3, p->id, PUB_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, p->ts_ms);
    sqlite3_bind_int(st, 5, (int)p->cls);
    if (p->data)
        sqlite3_bind_text(st, 6, p->data, (int)p->data_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    bind_str(st, 7, p->user);
    bind_str(st, 8, p->client);
    bind_str(st, 9, p->type);
    bind_str(st, 10, p->correlation_id);
    bind_str(st, 11, p->headers);
    bind_str(st, 12, p->idem_key);
    sqlite3_bind_int(st, 13, (int)count);
    if (count > 1) {
        sqlite3_bind_int64(st, 14, bytes);
        sqlite3_bind_blob(st, 15, e->row_blob.data, (int)e->row_blob.len, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 14);
        sqlite3_bind_null(st, 15);
    }
    return run_done(st);
}

static pl_pub *fresh_pub(const sq_engine *e, uint32_t i)
{
    return e->slots[i - 1].fresh;
}

/* Batches hold a thousand requests and pubs the workers wrote, more than
 * the core's cache keeps between the engine's passes over them: the passes
 * ask for the memory a few slots ahead, so the misses overlap. */
#define PREFETCH_AHEAD 4

/* Writes one row of a channel's new pubs, from the one in slot index + 1 *i
 * on: consecutive pubs up to the row's bounds (a guaranteed pub alone).
 * Moves *i to the slot index + 1 of the next row's first pub (0: none). */
static int write_row(sq_engine *e, const chan *ch, uint32_t *i)
{
    uint32_t cap = ch->b_keep && ch->b_keep < ROW_PUBS_MAX ? ch->b_keep : ROW_PUBS_MAX;
    const pl_pub *first = fresh_pub(e, *i), *prev = first;
    uint32_t count = 1, j = e->slots[*i - 1].next_fresh;
    size_t bytes = first->data_len;
    sbuf_reset(&e->row_blob);
    for (; j && first->cls != PUB_GUARANTEED && count < cap && bytes < ROW_BYTES_MAX;
         j = e->slots[j - 1].next_fresh, count++) {
        const pl_pub *p = fresh_pub(e, j);
        uint32_t after = e->slots[j - 1].next_fresh;
        if (after) __builtin_prefetch(fresh_pub(e, after));
        if (p->cls == PUB_GUARANTEED) break;
        seg_put(&e->row_blob, p, prev, ch->cid);
        bytes += p->data_len;
        prev = p;
    }
    *i = j;
    if (e->row_blob.oom) return PL_ENOMEM;
    return insert_row(e, ch, first, count, (int64_t)bytes);
}

/* Writes the batch's new pubs of every touched channel, consecutive ones in
 * shared rows (see the format at the top). PL_OK, PL_EIO or PL_ENOMEM. */
static int write_pubs(sq_engine *e, chan *touched)
{
    for (chan *ch = touched; ch; ch = ch->b_next) {
        for (uint32_t i = ch->b_fresh_head; i;) {
            int status = write_row(e, ch, &i);
            if (status != PL_OK) return status;
        }
    }
    return PL_OK;
}

/* Inserts the row of a channel that has none yet, inside the open
 * transaction; its cid is valid only if the transaction commits. */
static int chan_insert(sq_engine *e, chan *ch)
{
    if (ch->cid) return PL_OK;
    sqlite3_stmt *st = e->st[ST_CHAN_INS];
    bind_str(st, 1, ch->tenant);
    bind_str(st, 2, ch->channel);
    bind_str(st, 3, ch->epoch);
    if (run_done(st) != PL_OK) return PL_EIO;
    ch->cid = sqlite3_last_insert_rowid(e->db);
    ch->b_inserted = 1;
    return PL_OK;
}

/* ------------------------------------------------------------------------ */
/* Transactions and retention                                               */
/* ------------------------------------------------------------------------ */

static int txn_begin(sq_engine *e, int *in_txn)
{
    if (*in_txn) return PL_OK;
    if (run_done(e->st[ST_BEGIN]) != PL_OK) return PL_EIO;
    *in_txn = 1;
    return PL_OK;
}

static void txn_rollback(sq_engine *e)
{
    /* Some errors (SQLITE_FULL, IOERR) may already have rolled back. */
    if (!sqlite3_get_autocommit(e->db)) run_done(e->st[ST_ROLLBACK]);
}

/* Removes the expired prefix of a channel inside the open transaction. */
static int ttl_trim(sq_engine *e, chan *ch, int64_t now)
{
    sqlite3_stmt *st = e->st[ST_PUB_TS];
    int64_t cutoff = now - ch->b_ttl_ms;
    uint64_t keep = ch->b_head + 1;
    int64_t next_exp = 0;
    int rc;
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)ch->b_first);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t ts = sqlite3_column_int64(st, 1);
        if (ts > cutoff) {
            /* The first row may start below first (a size trim cut into it). */
            keep = (uint64_t)sqlite3_column_int64(st, 0);
            if (keep < ch->b_first) keep = ch->b_first;
            next_exp = ts + ch->b_ttl_ms;
            break;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return PL_EIO;
    if (keep > ch->b_first) {
        if (account_trim(e, ch, keep)) return PL_EIO;
        st = e->st[ST_PUB_TRIM];
        sqlite3_bind_int64(st, 1, ch->cid);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)keep);
        if (run_done(st) != PL_OK) return PL_EIO;
    }
    ch->b_first = keep <= ch->b_head ? keep : 0;
    ch->b_next_exp_ms = next_exp;
    return PL_OK;
}

static int size_trim(sq_engine *e, chan *ch)
{
    uint64_t keep = ch->b_head - ch->b_keep + 1;
    if (account_trim(e, ch, keep)) return PL_EIO;
    sqlite3_stmt *st = e->st[ST_PUB_TRIM];
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)keep);
    if (run_done(st) != PL_OK) return PL_EIO;
    ch->b_first = keep;
    return PL_OK;
}

/* Applies retention to every touched channel and writes the rows that
 * changed, opening the transaction if needed. PL_OK or PL_EIO. */
static int finish_channels(sq_engine *e, chan *touched, int64_t now, int *in_txn)
{
    for (chan *ch = touched; ch; ch = ch->b_next) {
        if (!ch->cid && (txn_begin(e, in_txn) || chan_insert(e, ch))) return PL_EIO;
        int dirty = 0;
        if (ch->b_published && ch->b_keep && ch->b_first &&
            ch->b_head - ch->b_first + 1 > ch->b_keep) {
            if (txn_begin(e, in_txn) || size_trim(e, ch)) return PL_EIO;
            dirty = 1;
        }
        if (ch->b_ttl_ms > 0 && ch->b_first && ch->b_next_exp_ms && ch->b_next_exp_ms <= now) {
            if (txn_begin(e, in_txn) || ttl_trim(e, ch, now)) return PL_EIO;
            dirty = 1;
        }
        dirty |= ch->b_head != ch->head || ch->b_first != ch->first || ch->b_ttl_ms != ch->ttl_ms ||
                 ch->b_next_exp_ms != ch->next_exp_ms;
        if (!dirty) continue;
        if (txn_begin(e, in_txn)) return PL_EIO;
        sqlite3_stmt *st = e->st[ST_CHAN_SET];
        sqlite3_bind_int64(st, 1, ch->cid);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)ch->b_head);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)ch->b_first);
        sqlite3_bind_int64(st, 4, ch->b_ttl_ms);
        sqlite3_bind_int64(st, 5, ch->b_next_exp_ms);
        if (run_done(st) != PL_OK) return PL_EIO;
    }
    return PL_OK;
}

/* After a successful commit: the batch state becomes the committed state. */
static void apply_channels(chan *touched)
{
    for (chan *ch = touched; ch; ch = ch->b_next) {
        ch->head = ch->b_head;
        ch->first = ch->b_first;
        ch->ttl_ms = ch->b_ttl_ms;
        ch->next_exp_ms = ch->b_next_exp_ms;
        ch->b_inserted = 0;
        ch->b_touched = 0;
        ring_trim(ch);
        chan_reset_batch(ch);
    }
}

/* After a failure: forget the batch state, as if the batch never ran. */
static void revert_channels(chan *touched)
{
    for (chan *ch = touched; ch; ch = ch->b_next) {
        if (ch->b_inserted) ch->cid = 0; /* the rowid died with the transaction */
        ch->b_inserted = 0;
        ch->b_touched = 0;
        chan_reset_batch(ch);
    }
}

/* ------------------------------------------------------------------------ */
/* Publish                                                                  */
/* ------------------------------------------------------------------------ */

/* Finds the original of a duplicate: from this batch, the ring, or disk.
 * NULL with *status PL_OK when retention already removed it. */
static pl_pub *find_original(sq_engine *e, size_t upto, chan *ch, uint64_t off, int *status)
{
    if (off > ch->head) {
        for (size_t i = 0; i < upto; i++) {
            slot *s = &e->slots[i];
            if (s->fresh && s->ch == ch && s->fresh->offset == off) return pub_ref(s->fresh);
        }
        return NULL;
    }
    if (ch->rcount && off >= ring_lo(ch)) return pub_ref(ring_at(ch, off));
    if (!ch->b_first || off < ch->b_first) return NULL;
    pl_pub *p = NULL;
    size_t n = 0;
    *status = load_range(e, ch, off, off, &p, &n);
    if (*status == PL_EIO) e->b_fatal = 1;
    return n ? p : NULL;
}

/* Checks the idempotency key of slot i. Returns 1 when it is a duplicate
 * (req->pub now holds the original), 0 when the pub is new, or a negative
 * status. */
static int idem_check(sq_engine *e, size_t i, chan *ch, int64_t now)
{
    slot *s = &e->slots[i];
    pl_pub *p = s->req->pub;
    sqlite3_stmt *st = e->st[ST_IDEM_GET];
    sqlite3_bind_int64(st, 1, ch->cid);
    bind_str(st, 2, p->idem_key);
    int rc = sqlite3_step(st);
    uint64_t off = 0;
    int64_t ts = 0;
    char id[PUB_ID_LEN + 1] = "";
    if (rc == SQLITE_ROW) {
        off = (uint64_t)sqlite3_column_int64(st, 0);
        const unsigned char *t = sqlite3_column_text(st, 1);
        snprintf(id, sizeof(id), "%s", t ? (const char *)t : "");
        ts = sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        e->b_fatal = 1;
        return PL_EIO;
    }
    if (rc == SQLITE_DONE || now - ts >= e->opts.dedup_window_ms) return 0;

    int status = PL_OK;
    pl_pub *orig = find_original(e, i, ch, off, &status);
    if (status != PL_OK) return status;
    if (orig) {
        s->orig = p;
        s->req->pub = orig;
    } else {
        /* Trimmed by retention: answer with the original's identity. */
        p->offset = off;
        p->ts_ms = ts;
        memcpy(p->id, id, sizeof(p->id));
        memcpy(p->epoch, ch->epoch, sizeof(p->epoch));
    }
    s->req->duplicate = 1;
    return 1;
}

/* ---- guaranteed delivery ------------------------------------------------ */

static int log_transition(sq_engine *e, int64_t cid, uint64_t off, const char *user, int state,
                          uint32_t attempt, int64_t now, const char *error)
{
    sqlite3_stmt *st = e->st[ST_DLOG_INS];
    sqlite3_bind_int64(st, 1, cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)off);
    sqlite3_bind_text(st, 3, user, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, state);
    sqlite3_bind_int(st, 5, (int)attempt);
    sqlite3_bind_int64(st, 6, now);
    bind_str(st, 7, error);
    return run_done(st);
}

static int set_delivery(sq_engine *e, int64_t cid, uint64_t off, const char *user, int state,
                        uint32_t attempts, int64_t now, const char *error)
{
    sqlite3_stmt *st = e->st[ST_DLV_SET];
    sqlite3_bind_int64(st, 1, cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)off);
    sqlite3_bind_text(st, 3, user, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, state);
    sqlite3_bind_int(st, 5, (int)attempts);
    sqlite3_bind_int64(st, 6, now);
    if (run_done(st) != PL_OK) return PL_EIO;
    return log_transition(e, cid, off, user, state, attempts, now, error);
}

/* One queued delivery row per recipient, in the pub's transaction. */
static int insert_recipients(sq_engine *e, const chan *ch, const pl_pub *p, engine_req *r,
                             int64_t now)
{
    for (size_t i = 0; i < r->nrecipients; i++) {
        sqlite3_stmt *st = e->st[ST_DLV_INS];
        sqlite3_bind_int64(st, 1, ch->cid);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)p->offset);
        sqlite3_bind_text(st, 3, r->recipients[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        if (run_done(st) != PL_OK) return PL_EIO;
        if (sqlite3_changes(e->db) &&
            log_transition(e, ch->cid, p->offset, r->recipients[i], DLV_QUEUED, 0, now, NULL))
            return PL_EIO;
    }
    return PL_OK;
}

/* Whether a delivery may move from `from` to `to`: the final states stay,
 * except that acknowledged may still become seen and a failed one may be
 * queued again (dead-letter replay). */
static int transition_ok(int from, int to)
{
    if (from == DLV_FAILED) return to == DLV_QUEUED;
    if (from == DLV_ACKED) return to == DLV_SEEN;
    if (from == DLV_SEEN || from == DLV_EXPIRED) return 0;
    return 1;
}

static int stage_delivery(sq_engine *e, engine_req *r, chan *ch, int64_t now)
{
    if (!ch->cid) return PL_OK;
    sqlite3_stmt *st = e->st[ST_DLV_GET];
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)r->since_offset);
    sqlite3_bind_text(st, 3, r->user, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), from = -1;
    uint32_t attempts = 0;
    if (rc == SQLITE_ROW) {
        from = sqlite3_column_int(st, 0);
        attempts = (uint32_t)sqlite3_column_int(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return PL_EIO;
    if (from < 0 || !transition_ok(from, r->dstate)) return PL_OK; /* nothing to move */
    if (from == r->dstate && attempts >= r->attempt) return PL_OK; /* another device, same send */
    if (set_delivery(e, ch->cid, r->since_offset, r->user, r->dstate, r->attempt, now, r->error))
        return PL_EIO;
    r->moved = 1;
    if (r->dstate != DLV_FAILED) return PL_OK;
    st = e->st[ST_DLQ_INS];
    sqlite3_bind_text(st, 1, ch->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ch->channel, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ch->cid);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)r->since_offset);
    sqlite3_bind_text(st, 5, r->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, "max_attempts", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, (int)r->attempt);
    bind_str(st, 8, r->error);
    sqlite3_bind_int64(st, 9, now);
    return run_done(st);
}

/* Moves the user's deliveries up to since_offset (in states <= max_from) to
 * `to`; counts them in r->count. */
static int move_upto(sq_engine *e, engine_req *r, chan *ch, int max_from, int to, int64_t now)
{
    r->count = 0;
    if (!ch->cid) return PL_OK;
    uint64_t offs[256];
    uint32_t atts[256];
    int more = 1, status = PL_OK;
    while (more && status == PL_OK) {
        size_t n = 0;
        sqlite3_stmt *st = e->st[ST_DLV_UPTO];
        sqlite3_bind_int64(st, 1, ch->cid);
        sqlite3_bind_text(st, 2, r->user, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)r->since_offset);
        sqlite3_bind_int(st, 4, max_from);
        int rc;
        while (n < 256 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            offs[n] = (uint64_t)sqlite3_column_int64(st, 0);
            atts[n++] = (uint32_t)sqlite3_column_int(st, 2);
        }
        more = n == 256;
        if (!more && rc != SQLITE_DONE) status = PL_EIO;
        sqlite3_reset(st);
        for (size_t i = 0; status == PL_OK && i < n; i++)
            status = set_delivery(e, ch->cid, offs[i], r->user, to, atts[i], now, NULL);
        r->count += n;
    }
    return status;
}

/* Stages slot i's publish inside the batch transaction. Returns its status;
 * statement failures also set e->b_fatal. */
static int stage_publish(sq_engine *e, size_t i, int64_t now, chan **touched, int *in_txn)
{
    slot *s = &e->slots[i];
    engine_req *r = s->req;
    pl_pub *p = r->pub;
    int status = PL_OK;
    r->duplicate = 0;
    if (!p || !p->tenant || !p->channel) return PL_EINVAL;
    if (txn_begin(e, in_txn)) goto fatal;
    e->quota = r->max_channels;
    chan *ch = chan_get(e, p->tenant, p->channel, &status);
    e->quota = 0;
    if (!ch) {
        if (status == PL_EIO) goto fatal;
        return status;
    }
    s->ch = ch;
    touch(ch, touched);
    if (chan_insert(e, ch) != PL_OK) goto fatal;
    if (ch->b_ttl_ms != r->history_ttl_ms) {
        /* A new TTL makes the next expiry unknown: due now, recomputed. */
        ch->b_ttl_ms = r->history_ttl_ms;
        ch->b_next_exp_ms = ch->b_ttl_ms > 0 && ch->b_first ? 1 : 0;
    }
    if (p->idem_key) {
        int dup = idem_check(e, i, ch, now);
        if (dup < 0) return dup;
        if (dup) return PL_OK;
    }
    if (r->storage_bytes > 0) {
        int64_t used = tenant_bytes(e, p->tenant);
        if (used < 0) goto fatal;
        if (used + (int64_t)p->data_len > r->storage_bytes) return PL_ELIMIT;
        tenant_bytes_add(e, p->tenant, (int64_t)p->data_len);
    }
    p->offset = ch->b_head + 1;
    p->ts_ms = now;
    /* A channel created by this batch has no cid yet, and past 2^40 (not
     * reached in practice) there is no room: those pubs get a random id,
     * which seg_put then stores with the pub. */
    if (!seg_pub_id(p->id, p->ts_ms, ch->cid, p->offset)) clock_ulid_at(p->id, p->ts_ms);
    memcpy(p->epoch, ch->epoch, sizeof(p->epoch));
    if (p->cls == PUB_GUARANTEED && insert_recipients(e, ch, p, r, now) != PL_OK) goto fatal;
    if (p->idem_key) {
        sqlite3_stmt *st = e->st[ST_IDEM_PUT];
        sqlite3_bind_int64(st, 1, ch->cid);
        bind_str(st, 2, p->idem_key);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)p->offset);
        sqlite3_bind_text(st, 4, p->id, PUB_ID_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, p->ts_ms);
        if (run_done(st) != PL_OK) goto fatal;
    }
    ch->b_head = p->offset;
    if (!ch->b_first) {
        ch->b_first = p->offset;
        if (ch->b_ttl_ms > 0) ch->b_next_exp_ms = now + ch->b_ttl_ms;
    }
    ch->b_keep = r->history_size;
    ch->b_published = 1;
    s->fresh = p;
    s->next_fresh = 0;
    if (ch->b_fresh_tail)
        e->slots[ch->b_fresh_tail - 1].next_fresh = (uint32_t)i + 1;
    else
        ch->b_fresh_head = (uint32_t)i + 1;
    ch->b_fresh_tail = (uint32_t)i + 1;
    return PL_OK;
fatal:
    e->b_fatal = 1;
    return PL_EIO;
}

/* ------------------------------------------------------------------------ */
/* Read                                                                     */
/* ------------------------------------------------------------------------ */

/* Picks the newest `limit` retained offsets into [*lo, *hi]. */
static void newest(uint64_t head, uint64_t ef, uint32_t limit, uint64_t *lo, uint64_t *hi)
{
    if (!limit || ef > head) return;
    *hi = head;
    *lo = head - ef + 1 > limit ? head - limit + 1 : ef;
}

/* Decides which offsets a read returns ([lo, hi], empty when lo > hi) and
 * fills head, first, epoch, recovered and more. */
static void plan_read(const chan *ch, engine_req *r, uint64_t *lo, uint64_t *hi)
{
    uint64_t head = ch->head, since = r->since_offset;
    uint64_t ef = ch->first ? ch->first : head + 1; /* first retained, or past head */
    *lo = 1;
    *hi = 0;
    r->head = head;
    r->first = ch->first;
    memcpy(r->epoch, ch->epoch, sizeof(r->epoch));
    r->recovered = 0;
    r->more = 0;
    if (r->mode == ENGINE_READ_RECOVER) {
        int epoch_ok = !strcmp(r->since_epoch, "*") ||
                       !strncmp(r->since_epoch, ch->epoch, sizeof(r->since_epoch));
        if (r->has_since && epoch_ok && since <= head && (since == head || since + 1 >= ef)) {
            r->recovered = 1;
            if (since == head) return;
            if (!r->limit) {
                r->more = 1;
                return;
            }
            *lo = since + 1;
            *hi = head - since > r->limit ? since + r->limit : head;
            r->more = *hi < head;
            return;
        }
        newest(head, ef, r->limit, lo, hi);
        return;
    }
    if (!r->has_since) {
        newest(head, ef, r->limit, lo, hi);
        return;
    }
    if (!r->reverse) {
        if (since >= head) return;
        uint64_t from = since + 1 > ef ? since + 1 : ef;
        if (from > head) return;
        if (!r->limit) {
            r->more = 1;
            return;
        }
        *lo = from;
        *hi = head - from + 1 > r->limit ? from + r->limit - 1 : head;
        r->more = *hi < head;
        return;
    }
    /* Reverse paging: the pubs before since; `more` says older ones remain. */
    if (since <= ef || ef > head) return;
    uint64_t to = since - 1 < head ? since - 1 : head;
    if (!r->limit) {
        r->more = 1;
        return;
    }
    *hi = to;
    *lo = to - ef + 1 > r->limit ? to - r->limit + 1 : ef;
    r->more = *lo > ef;
}

/* Serves a READ from the committed state: ring first, disk for older pubs. */
static int serve_read(sq_engine *e, chan *ch, engine_req *r)
{
    uint64_t lo, hi;
    plan_read(ch, r, &lo, &hi);
    if (lo > hi) return PL_OK;
    size_t want = (size_t)(hi - lo + 1), n = 0;
    pl_pub **arr = pl_malloc(want * sizeof(*arr));
    if (!arr) return PL_ENOMEM;
    int status = PL_OK;
    uint64_t rlo = ch->rcount ? ring_lo(ch) : ch->head + 1;
    if (lo < rlo) status = load_range(e, ch, lo, hi < rlo ? hi : rlo - 1, arr, &n);
    for (uint64_t o = lo > rlo ? lo : rlo; status == PL_OK && o <= hi; o++)
        arr[n++] = pub_ref(ring_at(ch, o));
    if (status != PL_OK) {
        while (n)
            pub_unref(arr[--n]);
        pl_free(arr);
        return status;
    }
    if (r->reverse && r->mode == ENGINE_READ_HISTORY) {
        for (size_t i = 0; i < n / 2; i++) {
            pl_pub *t = arr[i];
            arr[i] = arr[n - 1 - i];
            arr[n - 1 - i] = t;
        }
    }
    r->pubs = arr;
    r->npubs = n;
    return PL_OK;
}

/* ------------------------------------------------------------------------ */
/* Batches                                                                  */
/* ------------------------------------------------------------------------ */

static void record_commit(sq_engine *e, uint64_t pubs, uint64_t dups, int64_t us, int failed)
{
    pthread_mutex_lock(&e->stats_mu);
    engine_stats *s = &e->stats;
    s->duplicates += dups;
    if (failed) {
        s->commit_failures++;
    } else if (pubs) {
        s->commits++;
        s->committed_pubs += pubs;
        if (pubs > s->batch_max) s->batch_max = pubs;
        s->batch_hist[hist_bucket_pow2(pubs)]++;
        s->commit_us_total += (uint64_t)us;
        s->commit_lat_hist[hist_bucket_us(us)]++;
    }
    pthread_mutex_unlock(&e->stats_mu);
}

/* Undoes the staging of every publish after a failed transaction. */
static void fail_publishes(sq_engine *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        slot *s = &e->slots[i];
        engine_req *r = s->req;
        /* PL_EIO: the publish whose statement failed, staged like the rest. */
        if (r->op != ENGINE_PUBLISH || (r->status != PL_OK && r->status != PL_EIO)) continue;
        r->status = PL_EIO;
        if (!r->pub) continue;
        if (s->orig) {
            pub_unref(r->pub);
            r->pub = s->orig;
            s->orig = NULL;
        }
        r->pub->offset = 0;
        r->pub->epoch[0] = '\0';
        r->duplicate = 0;
        s->fresh = NULL;
    }
}

/* Hands the batch's committed pubs to the rings. */
static uint64_t commit_publishes(sq_engine *e, size_t n, uint64_t *dups)
{
    uint64_t fresh = 0;
    for (size_t i = 0; i < n; i++) {
        slot *s = &e->slots[i];
        if (i + PREFETCH_AHEAD < n && s[PREFETCH_AHEAD].fresh)
            __builtin_prefetch(s[PREFETCH_AHEAD].fresh);
        /* A new pub: a publish that succeeded, with no original kept. */
        if (s->fresh) {
            ring_push(s->ch, s->fresh);
            fresh++;
            continue;
        }
        if (s->req->op != ENGINE_PUBLISH || s->req->status != PL_OK) continue;
        if (s->req->duplicate) {
            (*dups)++;
        }
        pub_unref(s->orig);
        s->orig = NULL;
    }
    return fresh;
}

/* Reads a user's cursor into r->cursor (0 when none). 0 or -1. */
static int cursor_get(sq_engine *e, chan *ch, engine_req *r)
{
    r->cursor = 0;
    if (!ch->cid) return 0;
    sqlite3_stmt *st = e->st[ST_CUR_GET];
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_text(st, 2, r->user, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) r->cursor = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Moves the read cursors of the batch, after the publishes committed (so
 * the channel rows exist), in a transaction of their own: a cursor never
 * goes back and never past the channel's head. */
static void apply_cursors(sq_engine *e, size_t n)
{
    int in_txn = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        slot *s = &e->slots[i];
        engine_req *r = s->req;
        if (r->op != ENGINE_CURSOR || r->status != PL_OK) continue;
        chan *ch = s->ch;
        r->head = ch->head;
        r->first = ch->first;
        memcpy(r->epoch, ch->epoch, sizeof(r->epoch));
        uint64_t want = r->since_offset < ch->head ? r->since_offset : ch->head;
        if (failed || cursor_get(e, ch, r)) {
            failed = 1;
            continue;
        }
        if (want <= r->cursor || !ch->cid) continue;
        if (!in_txn && txn_begin(e, &in_txn)) {
            failed = 1;
            continue;
        }
        sqlite3_stmt *st = e->st[ST_CUR_SET];
        sqlite3_bind_int64(st, 1, ch->cid);
        sqlite3_bind_text(st, 2, r->user, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (int64_t)want);
        if (run_done(st) != PL_OK) {
            failed = 1;
            continue;
        }
        r->cursor = want;
        r->moved = 1;
        /* Guaranteed pubs the user has now read are seen. */
        engine_req seen = {.user = r->user, .since_offset = want};
        if (move_upto(e, &seen, ch, DLV_ACKED, DLV_SEEN, clock_wall_ms()) != PL_OK) failed = 1;
    }
    if (in_txn && !failed && run_done(e->st[ST_COMMIT]) != PL_OK) failed = 1;
    if (!failed) return;
    if (in_txn) txn_rollback(e);
    for (size_t i = 0; i < n; i++) {
        engine_req *r = e->slots[i].req;
        if (r->op != ENGINE_CURSOR) continue;
        r->status = PL_EIO;
        r->moved = 0;
    }
}

static int is_query(const engine_req *r)
{
    return r->op == ENGINE_READ || r->op == ENGINE_PENDING || r->op == ENGINE_ADMIN;
}

/* Loads the pub at one offset (ring first); NULL if trimmed or on error. */
static pl_pub *load_one(sq_engine *e, chan *ch, uint64_t off)
{
    uint64_t rlo = ch->rcount ? ring_lo(ch) : ch->head + 1;
    if (off >= rlo && off <= ch->head) return pub_ref(ring_at(ch, off));
    pl_pub *p = NULL;
    size_t n = 0;
    if (load_range(e, ch, off, off, &p, &n) != PL_OK || !n) return NULL;
    return p;
}

static int grow_result(engine_req *r, size_t *cap, int with_users)
{
    if (r->npubs < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    pl_pub **np = pl_realloc(r->pubs, ncap * sizeof(*np));
    if (np) r->pubs = np;
    uint32_t *na = np ? pl_realloc(r->attempts, ncap * sizeof(*na)) : NULL;
    if (na) r->attempts = na;
    char **nu = na && with_users ? pl_realloc(r->users, ncap * sizeof(*nu)) : NULL;
    if (nu) r->users = nu;
    if (!np || !na || (with_users && !nu)) return -1;
    *cap = ncap;
    return 0;
}

/* The user's queued and sent deliveries of a channel, oldest first. */
static int serve_pending(sq_engine *e, chan *ch, engine_req *r)
{
    r->head = ch->head;
    memcpy(r->epoch, ch->epoch, sizeof(r->epoch));
    if (!ch->cid) return PL_OK;
    size_t cap = 0;
    int status = PL_OK, rc = SQLITE_DONE;
    sqlite3_stmt *st = e->st[ST_DLV_PENDING];
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_text(st, 2, r->user, -1, SQLITE_STATIC);
    uint64_t offs[1024];
    uint32_t atts[1024];
    size_t n = 0;
    while (n < 1024 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        offs[n] = (uint64_t)sqlite3_column_int64(st, 0);
        atts[n++] = (uint32_t)sqlite3_column_int(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return PL_EIO;
    int in_txn = 0, expired_ok = 1;
    for (size_t i = 0; status == PL_OK && i < n; i++) {
        pl_pub *p = load_one(e, ch, offs[i]);
        if (!p) {
            /* Retention removed it before it could be delivered: expired. */
            if (expired_ok && (txn_begin(e, &in_txn) ||
                               set_delivery(e, ch->cid, offs[i], r->user, DLV_EXPIRED, atts[i],
                                            clock_wall_ms(), "removed by retention")))
                expired_ok = 0;
            continue;
        }
        if (grow_result(r, &cap, 0)) {
            pub_unref(p);
            status = PL_ENOMEM;
            break;
        }
        r->attempts[r->npubs] = atts[i];
        r->pubs[r->npubs++] = p;
    }
    /* Marking expiry is bookkeeping: a failure leaves the rows as they were
     * (they expire on a later subscribe) and does not fail the read. */
    if (in_txn && (!expired_ok || run_done(e->st[ST_COMMIT]) != PL_OK)) txn_rollback(e);
    return status;
}

/* ---- dead-letter queue and trace ------------------------------------------ */

static const char *const state_names[] = {"queued", "sent",   "acknowledged",
                                          "seen",   "failed", "expired"};

static void json_col(sbuf *o, sqlite3_stmt *st, int col)
{
    const char *v = (const char *)sqlite3_column_text(st, col);
    if (v)
        sbuf_json_str(o, v, (size_t)sqlite3_column_bytes(st, col));
    else
        sbuf_puts(o, "null");
}

static sqlite3_stmt *dlq_select(sq_engine *e, engine_req *r, const char *what, int limit)
{
    char sql[600];
    snprintf(sql, sizeof(sql),
             "SELECT %s FROM dlq WHERE tenant = ?1 AND (?2 IS NULL OR channel = ?2)"
             " AND (?3 IS NULL OR user = ?3) AND (?4 IS NULL OR reason = ?4)"
             " AND (?5 = 0 OR failed_at >= ?5) AND (?6 = 0 OR failed_at <= ?6)"
             " AND (?7 = 0 OR id = ?7) AND id > ?8 ORDER BY id LIMIT %d",
             what, limit);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(e->db, sql, -1, &st, NULL) != SQLITE_OK) return NULL;
    sqlite3_bind_text(st, 1, r->tenant, -1, SQLITE_STATIC);
    bind_str(st, 2, r->channel);
    bind_str(st, 3, r->user);
    bind_str(st, 4, r->reason);
    sqlite3_bind_int64(st, 5, r->since_ms);
    sqlite3_bind_int64(st, 6, r->until_ms);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)r->entry_id);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)r->after_id);
    return st;
}

static int dlq_list(sq_engine *e, engine_req *r, sbuf *o)
{
    int limit = r->limit ? (int)r->limit : 100;
    sqlite3_stmt *st = dlq_select(e, r,
                                  "id, pub_id, channel, user, reason, attempts,"
                                  " last_error, correlation_id, failed_at",
                                  limit);
    if (!st) return PL_EIO;
    int n = 0, rc;
    int64_t last = 0;
    sbuf_puts(o, "{\"entries\":[");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        last = sqlite3_column_int64(st, 0);
        sbuf_printf(o, "%s{\"id\":%lld,\"pub_id\":", n++ ? "," : "", (long long)last);
        json_col(o, st, 1);
        sbuf_puts(o, ",\"channel\":");
        json_col(o, st, 2);
        sbuf_puts(o, ",\"user\":");
        json_col(o, st, 3);
        sbuf_puts(o, ",\"reason\":");
        json_col(o, st, 4);
        sbuf_printf(o, ",\"attempts\":%d,\"last_error\":", sqlite3_column_int(st, 5));
        json_col(o, st, 6);
        sbuf_puts(o, ",\"correlation_id\":");
        json_col(o, st, 7);
        sbuf_printf(o, ",\"failed_at\":%lld}", (long long)sqlite3_column_int64(st, 8));
    }
    sqlite3_finalize(st);
    sbuf_printf(o, "],\"cursor\":%lld}", (long long)(n == limit ? last : 0));
    return rc == SQLITE_DONE ? PL_OK : PL_EIO;
}

/* Replay or purge the matching entries (at most 10,000 per call). */
static int dlq_apply(sq_engine *e, engine_req *r, int replay, int64_t now)
{
    sqlite3_stmt *st = dlq_select(e, r, "id, tenant, channel, off, user", 10000);
    if (!st) return PL_EIO;
    int in_txn = 0, status = PL_OK, rc = SQLITE_DONE;
    size_t cap = 0;
    if (txn_begin(e, &in_txn)) status = PL_EIO;
    while (status == PL_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *tenant = (const char *)sqlite3_column_text(st, 1);
        const char *channel = (const char *)sqlite3_column_text(st, 2);
        uint64_t off = (uint64_t)sqlite3_column_int64(st, 3);
        const char *user = (const char *)sqlite3_column_text(st, 4);
        chan *ch = chan_get(e, tenant, channel, &status);
        if (!ch) break;
        if (replay) {
            if (set_delivery(e, ch->cid, off, user, DLV_QUEUED, 0, now, "replayed")) {
                status = PL_EIO;
                break;
            }
            pl_pub *p = load_one(e, ch, off);
            if (p && grow_result(r, &cap, 1) == 0 && (r->users[r->npubs] = pl_strdup(user))) {
                r->attempts[r->npubs] = 0;
                r->pubs[r->npubs++] = p;
            } else {
                pub_unref(p);
            }
        }
        char del[64];
        snprintf(del, sizeof(del), "DELETE FROM dlq WHERE id = %lld", (long long)id);
        if (sqlite3_exec(e->db, del, NULL, NULL, NULL) != SQLITE_OK) status = PL_EIO;
        r->count++;
    }
    sqlite3_finalize(st);
    if (status == PL_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) status = PL_EIO;
    if (status == PL_OK && in_txn && run_done(e->st[ST_COMMIT]) != PL_OK) status = PL_EIO;
    if (status != PL_OK && in_txn) txn_rollback(e);
    return status;
}

/* Finds the stored pub r->pub_id of r->tenant (a reference in *pub, its
 * cached channel in *ch): by key for ids from seg_pub_id, through pubs_id
 * where the database has that index (ids stored before version 3). */
static int find_pub(sq_engine *e, engine_req *r, chan **ch, pl_pub **pub)
{
    static const char *const sql[2] = {
        "SELECT c.channel, ?4 FROM pubs p JOIN channels c ON c.cid = p.cid"
        " WHERE p.cid = ?3 AND p.off = (SELECT off FROM pubs WHERE cid = ?3 AND off <= ?4"
        " ORDER BY off DESC LIMIT 1) AND p.off + p.n > ?4 AND c.tenant = ?2",
        "SELECT c.channel, p.off FROM pubs p JOIN channels c ON c.cid = p.cid"
        " WHERE p.id = ?1 AND c.tenant = ?2"};
    const char *id = r->pub_id ? r->pub_id : "";
    uint64_t ms, cid = 0, key_off = 0;
    int keyed = !clock_ulid_unpack(id, strlen(id), &ms, &cid, &key_off);
    int status = PL_ENOTFOUND;
    for (int k = keyed ? 0 : 1; k <= (e->id_index ? 1 : 0) && status == PL_ENOTFOUND; k++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(e->db, sql[k], -1, &st, NULL) != SQLITE_OK) return PL_EIO;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, r->tenant, -1, SQLITE_STATIC);
        if (k == 0) {
            sqlite3_bind_int64(st, 3, (sqlite3_int64)cid);
            sqlite3_bind_int64(st, 4, (sqlite3_int64)key_off);
        }
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            status = PL_OK;
            *ch = chan_get(e, r->tenant, (const char *)sqlite3_column_text(st, 0), &status);
            *pub = *ch ? load_one(e, *ch, (uint64_t)sqlite3_column_int64(st, 1)) : NULL;
            if (!*ch && status == PL_OK) status = PL_EIO;
            /* The key names a row; the id must be the pub's (same time). */
            if (status == PL_OK && (!*pub || strcmp((*pub)->id, id))) {
                pub_unref(*pub);
                *pub = NULL;
                status = PL_ENOTFOUND;
            }
        } else if (rc != SQLITE_DONE) {
            status = PL_EIO;
        }
        sqlite3_finalize(st);
    }
    return status;
}

static int trace(sq_engine *e, engine_req *r, sbuf *o)
{
    chan *ch = NULL;
    pl_pub *p = NULL;
    int status = find_pub(e, r, &ch, &p);
    if (status != PL_OK) return status;
    uint64_t off = p->offset;
    const rbuf *f = e->opts.encode ? pub_frame(p, e->opts.encode) : NULL;
    sbuf_puts(o, "{\"pub\":{");
    if (f && f->len > 14)
        sbuf_append(o, f->data + 14, f->len - 14);
    else
        sbuf_puts(o, "}");
    sbuf_printf(o, ",\"stored\":true,\"accepted_at\":%lld,\"fanout\":", (long long)p->ts_ms);
    sbuf_u64(o, atomic_load(&p->fanout));
    pub_unref(p);
    sbuf_puts(o, ",\"deliveries\":[");
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT user, state, attempts, updated_ms FROM deliveries WHERE cid = ?1"
                      " AND off = ?2 ORDER BY user";
    int rc;
    if (sqlite3_prepare_v2(e->db, sql, -1, &st, NULL) != SQLITE_OK) return PL_EIO;
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)off);
    for (int n = 0; (rc = sqlite3_step(st)) == SQLITE_ROW; n++) {
        int state = sqlite3_column_int(st, 1);
        sbuf_puts(o, n ? ",{\"user\":" : "{\"user\":");
        json_col(o, st, 0);
        sbuf_printf(o, ",\"state\":\"%s\",\"attempts\":%d,\"updated_at\":%lld,\"transitions\":[",
                    state >= 0 && state <= 5 ? state_names[state] : "unknown",
                    sqlite3_column_int(st, 2), (long long)sqlite3_column_int64(st, 3));
        sqlite3_stmt *lg = NULL;
        const char *lsql = "SELECT state, attempt, ts, error FROM delivery_log WHERE cid = ?1 AND"
                           " off = ?2 AND user = ?3 ORDER BY rowid";
        if (sqlite3_prepare_v2(e->db, lsql, -1, &lg, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(lg, 1, ch->cid);
            sqlite3_bind_int64(lg, 2, (sqlite3_int64)off);
            sqlite3_bind_text(lg, 3, (const char *)sqlite3_column_text(st, 0), -1,
                              SQLITE_TRANSIENT);
            for (int k = 0; sqlite3_step(lg) == SQLITE_ROW; k++) {
                int ls = sqlite3_column_int(lg, 0);
                sbuf_printf(o, "%s{\"state\":\"%s\",\"attempt\":%d,\"at\":%lld,\"error\":",
                            k ? "," : "", ls >= 0 && ls <= 5 ? state_names[ls] : "unknown",
                            sqlite3_column_int(lg, 1), (long long)sqlite3_column_int64(lg, 2));
                json_col(o, lg, 3);
                sbuf_putc(o, '}');
            }
            sqlite3_finalize(lg);
        }
        sbuf_puts(o, "]}");
    }
    sqlite3_finalize(st);
    sbuf_puts(o, "]}");
    return rc == SQLITE_DONE ? PL_OK : PL_EIO;
}

/* Every delivery still in state sent (after a restart: redeliver them). */
static int sent_all(sq_engine *e, engine_req *r)
{
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT c.tenant, c.channel, d.off, d.user, d.attempts FROM deliveries d"
                      " JOIN channels c ON c.cid = d.cid WHERE d.state = 1 LIMIT 100000";
    if (sqlite3_prepare_v2(e->db, sql, -1, &st, NULL) != SQLITE_OK) return PL_EIO;
    size_t cap = 0;
    int rc = SQLITE_DONE, status = PL_OK;
    while (status == PL_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        chan *ch = chan_get(e, (const char *)sqlite3_column_text(st, 0),
                            (const char *)sqlite3_column_text(st, 1), &status);
        pl_pub *p = ch ? load_one(e, ch, (uint64_t)sqlite3_column_int64(st, 2)) : NULL;
        if (!p) continue;
        if (grow_result(r, &cap, 1) ||
            !(r->users[r->npubs] = pl_strdup((const char *)sqlite3_column_text(st, 3)))) {
            pub_unref(p);
            status = PL_ENOMEM;
            break;
        }
        r->attempts[r->npubs] = (uint32_t)sqlite3_column_int(st, 4);
        r->pubs[r->npubs++] = p;
    }
    sqlite3_finalize(st);
    if (status == PL_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) status = PL_EIO;
    return status;
}

static int serve_admin(sq_engine *e, engine_req *r, int64_t now)
{
    if (r->status != PL_OK) return r->status;
    sbuf o;
    sbuf_init(&o);
    int status = PL_EINVAL;
    switch (r->admin_op) {
    case ADMIN_DLQ_LIST:
        status = dlq_list(e, r, &o);
        break;
    case ADMIN_DLQ_REPLAY:
        status = dlq_apply(e, r, 1, now);
        break;
    case ADMIN_DLQ_PURGE:
        status = dlq_apply(e, r, 0, now);
        break;
    case ADMIN_TRACE:
        status = trace(e, r, &o);
        break;
    case ADMIN_SENT_ALL:
        status = sent_all(e, r);
        break;
    default:
        break;
    }
    if (status == PL_OK && o.len) {
        r->json = o.oom ? NULL : pl_strndup(o.data, o.len);
        if (!r->json) status = PL_ENOMEM;
    }
    sbuf_release(&o);
    return status;
}

/* Processes slots[0..n): stage publishes (and the channel rows of reads) in
 * one transaction, commit, then serve the reads from the committed state.
 *
 * Linear order handed to the sink: all publishes of the batch in submission
 * order, then all reads in submission order. Reads are served after the
 * commit and therefore see every publish of the batch, so each read must
 * come after all of them in the sink array; a read submitted before a
 * publish of the same batch is thus ordered after it, which the contract
 * allows (nothing was answered yet). Serving a read at its submission
 * position instead would need a snapshot of uncommitted state. */
static void process_batch(sq_engine *e, size_t n)
{
    int64_t now = clock_wall_ms();
    int64_t t0 = clock_mono_us();
    chan *touched = NULL;
    int in_txn = 0;
    e->b_fatal = 0;

    for (size_t i = 0; i < n; i++) {
        slot *s = &e->slots[i];
        engine_req *r = s->req;
        if (i + 2 * PREFETCH_AHEAD < n) __builtin_prefetch(s[2 * PREFETCH_AHEAD].req);
        if (i + PREFETCH_AHEAD < n) __builtin_prefetch(s[PREFETCH_AHEAD].req->pub);
        r->status = PL_OK;
        if (r->op == ENGINE_PUBLISH) {
            if (!e->b_fatal) r->status = stage_publish(e, i, now, &touched, &in_txn);
        } else if (r->op == ENGINE_DELIVERY || r->op == ENGINE_ACK) {
            if (!r->tenant || !r->channel || !r->user) {
                r->status = PL_EINVAL;
                continue;
            }
            if (e->b_fatal) continue;
            s->ch = chan_get(e, r->tenant, r->channel, &r->status);
            if (!s->ch || txn_begin(e, &in_txn)) {
                if (r->status == PL_OK) r->status = PL_EIO;
                if (r->status == PL_EIO) e->b_fatal = 1;
                continue;
            }
            touch(s->ch, &touched);
            r->status = r->op == ENGINE_ACK ? move_upto(e, r, s->ch, DLV_SENT, DLV_ACKED, now)
                                            : stage_delivery(e, r, s->ch, now);
            if (r->status == PL_EIO) e->b_fatal = 1;
        } else if (r->op == ENGINE_ADMIN) {
            if (!r->tenant && r->admin_op != ADMIN_SENT_ALL) r->status = PL_EINVAL;
        } else if (r->op == ENGINE_READ || r->op == ENGINE_CURSOR || r->op == ENGINE_PENDING) {
            if (!r->tenant || !r->channel || (r->op != ENGINE_READ && !r->user)) {
                r->status = PL_EINVAL;
                continue;
            }
            e->quota = r->max_channels;
            s->ch = chan_get(e, r->tenant, r->channel, &r->status);
            e->quota = 0;
            if (s->ch) touch(s->ch, &touched);
            /* SQLite may have rolled the transaction back on that error. */
            else if (r->status == PL_EIO && in_txn)
                e->b_fatal = 1;
        } else {
            r->status = PL_EINVAL;
        }
    }
    if (!e->b_fatal && write_pubs(e, touched) != PL_OK) e->b_fatal = 1;
    if (!e->b_fatal && finish_channels(e, touched, now, &in_txn) != PL_OK) e->b_fatal = 1;
    if (!e->b_fatal && in_txn && run_done(e->st[ST_COMMIT]) != PL_OK) e->b_fatal = 1;

    uint64_t fresh = 0, dups = 0;
    if (e->b_fatal) {
        if (in_txn) txn_rollback(e);
        map_release(&e->tenant_bytes); /* the tallies counted rolled-back pubs */
        for (size_t i = 0; i < n; i++) {
            engine_req *r = e->slots[i].req;
            if (r->op == ENGINE_DELIVERY || r->op == ENGINE_ACK) {
                r->status = PL_EIO;
                r->moved = 0;
                r->count = 0;
            }
        }
        fail_publishes(e, n);
        revert_channels(touched);
    } else {
        fresh = commit_publishes(e, n, &dups);
        apply_channels(touched);
    }
    record_commit(e, fresh, dups, clock_mono_us() - t0, e->b_fatal);
    apply_cursors(e, n);

    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_query(e->slots[i].req)) e->out[k++] = e->slots[i].req;
    for (size_t i = 0; i < n; i++) {
        slot *s = &e->slots[i];
        if (!is_query(s->req)) continue;
        if (s->req->op == ENGINE_PENDING) {
            if (s->req->status == PL_OK) s->req->status = serve_pending(e, s->ch, s->req);
            e->out[k++] = s->req;
            continue;
        }
        if (s->req->op == ENGINE_ADMIN) {
            s->req->status = serve_admin(e, s->req, now);
            e->out[k++] = s->req;
            continue;
        }
        if (s->req->status == PL_OK) s->req->status = serve_read(e, s->ch, s->req);
        if (s->req->status == PL_OK && s->req->user && cursor_get(e, s->ch, s->req))
            s->req->status = PL_EIO;
        e->out[k++] = s->req;
    }
    if (e->opts.sink)
        e->opts.sink(e->opts.sink_ctx, e->out, n);
    else
        for (size_t i = 0; i < n; i++)
            engine_req_free(e->out[i]);
}

/* Trims expired pubs of channels nobody touched and forgets expired
 * idempotency keys, in its own transaction so that a full disk blocking
 * publishes does not block the deletes that free space. */
static void sweep(sq_engine *e, int64_t now)
{
    chan *touched = NULL;
    int in_txn = 0, status = PL_OK, rc;
    if (txn_begin(e, &in_txn)) return;
    sqlite3_stmt *st = e->st[ST_CHAN_DUE];
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, SWEEP_CHANNELS);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        const char *c = (const char *)sqlite3_column_text(st, 1);
        chan *ch = t && c ? chan_get(e, t, c, &status) : NULL;
        if (ch) touch(ch, &touched);
    }
    sqlite3_reset(st);
    int failed = (rc != SQLITE_ROW && rc != SQLITE_DONE) || status == PL_EIO;
    if (!failed) failed = finish_channels(e, touched, now, &in_txn) != PL_OK;
    if (!failed) {
        st = e->st[ST_IDEM_EXPIRE];
        sqlite3_bind_int64(st, 1, now - e->opts.dedup_window_ms);
        failed = run_done(st) != PL_OK;
    }
    if (!failed) failed = run_done(e->st[ST_COMMIT]) != PL_OK;
    if (failed) {
        txn_rollback(e);
        map_release(&e->tenant_bytes);
        revert_channels(touched);
    } else {
        apply_channels(touched);
    }
}

/* ------------------------------------------------------------------------ */
/* Thread and vtable                                                        */
/* ------------------------------------------------------------------------ */

static void *engine_main(void *arg)
{
    sq_engine *e = arg;
    pthread_setname_np(pthread_self(), "pl-engine");
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&e->mu);
        if (!e->q_head && !e->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += 1;
            e->idle = 1;
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
            e->idle = 0;
        }
        while (e->q_head && n < BATCH_MAX) {
            engine_req *r = e->q_head;
            e->q_head = r->_next;
            r->_next = NULL;
            e->slots[n++] = (slot){.req = r};
        }
        if (!e->q_head) e->q_tail = NULL;
        int done = e->stopping && !e->q_head;
        pthread_mutex_unlock(&e->mu);

        if (n) process_batch(e, n);
        int64_t now = clock_wall_ms();
        if (now - e->last_sweep_ms >= SWEEP_EVERY_MS) {
            e->last_sweep_ms = now;
            sweep(e, now);
        }
        chan_evict_excess(e);
        if (done) break;
    }
    return NULL;
}

static int sq_start(engine *base)
{
    sq_engine *e = (sq_engine *)base;
    if (e->running) return PL_OK;
    e->stopping = 0;
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) return PL_ERR;
    e->running = 1;
    return PL_OK;
}

static void sq_submit(engine *base, engine_req *first, engine_req *last)
{
    sq_engine *e = (sq_engine *)base;
    pthread_mutex_lock(&e->mu);
    if (e->q_tail)
        e->q_tail->_next = first;
    else
        e->q_head = first;
    e->q_tail = last;
    /* A busy engine takes the queue after its batch: no futex call. */
    if (e->idle) pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void sq_stop(engine *base)
{
    sq_engine *e = (sq_engine *)base;
    if (!e->running) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    e->running = 0;
}

static void sq_stats(engine *base, engine_stats *out)
{
    sq_engine *e = (sq_engine *)base;
    pthread_mutex_lock(&e->stats_mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->stats_mu);
}

static void sq_free(engine *base)
{
    sq_engine *e = (sq_engine *)base;
    sq_stop(base);
    map_release(&e->tenant_channels);
    map_release(&e->tenant_bytes);
    sbuf_release(&e->row_blob);
    /* Requests submitted to an engine that never ran cannot reach a sink. */
    while (e->q_head) {
        engine_req *r = e->q_head;
        e->q_head = r->_next;
        engine_req_free(r);
    }
    if (e->buckets) {
        for (size_t b = 0; b < HASH_BUCKETS; b++) {
            chan *c = e->buckets[b];
            while (c) {
                chan *next = c->hnext;
                chan_free(c);
                c = next;
            }
        }
    }
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(e->st[i]);
    sqlite3_close(e->db);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->stats_mu);
    pl_free(e->buckets);
    pl_free(e->slots);
    pl_free(e->out);
    pl_free(e->data_dir);
    pl_free(e);
}

static const engine_ops sqlite_ops = {
    .name = "sqlite",
    .start = sq_start,
    .submit = sq_submit,
    .stop = sq_stop,
    .free = sq_free,
    .stats = sq_stats,
};

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

/* mkdir -p; PL_OK or PL_EIO with errno set. */
static int make_dirs(char *path)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = c;
        if (rc != 0 && errno != EEXIST) return PL_EIO;
        if (!c) return PL_OK;
    }
}

/* Runs one statement; stores the first column of its first row in *out
 * (integer) or checks it equals want (text) when those are given. */
static int exec_one(sqlite3 *db, const char *sql, int64_t *out, const char *want)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return PL_EIO;
    int rc = sqlite3_step(st);
    int ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    if (rc == SQLITE_ROW && out) *out = sqlite3_column_int64(st, 0);
    if (want) {
        const char *got = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        ok = got && !strcmp(got, want);
    }
    sqlite3_finalize(st);
    return ok ? PL_OK : PL_EIO;
}

/* Opens the database, applies pragmas and schema, prepares statements. */
static int open_db(sq_engine *e, char *err, size_t errlen)
{
    const char *what = "open";
    char *path = NULL;
    size_t dl = strlen(e->data_dir);
    if (make_dirs(e->data_dir) != PL_OK) {
        snprintf(err, errlen, "engine: cannot create %s: %s", e->data_dir, strerror(errno));
        return PL_EIO;
    }
    path = pl_malloc(dl + sizeof("/parley.db"));
    if (!path) {
        snprintf(err, errlen, "engine: out of memory");
        return PL_ENOMEM;
    }
    memcpy(path, e->data_dir, dl);
    memcpy(path + dl, "/parley.db", sizeof("/parley.db"));
    /* NOMUTEX: the connection is used by one thread at a time (the opener,
     * then the engine thread, handed over by pthread_create/join). */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &e->db, flags, NULL) != SQLITE_OK) goto fail;
    sqlite3_busy_timeout(e->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(e->db, 1);

    int64_t version = 0, page_size = 4096, has_n = 0;
    what = "pragmas";
    if (exec_one(e->db, "PRAGMA journal_mode=WAL", NULL, "wal") ||
        exec_one(e->db, "PRAGMA synchronous=FULL", NULL, NULL) ||
        exec_one(e->db, "PRAGMA cache_size=-32768", NULL, NULL) ||
        exec_one(e->db, "PRAGMA wal_autocheckpoint=" STR(WAL_CHECKPOINT_PAGES), NULL, NULL) ||
        exec_one(e->db, "PRAGMA user_version", &version, NULL) ||
        exec_one(e->db, "SELECT count(*) FROM pragma_table_info('pubs') WHERE name = 'n'", &has_n,
                 NULL))
        goto fail;
    if (version != 0 && (version < SCHEMA_VERSION_OLDEST || version > SCHEMA_VERSION)) {
        snprintf(err, errlen, "engine: %s has schema version %lld, this build reads %d", path,
                 (long long)version, SCHEMA_VERSION);
        pl_free(path);
        return PL_EIO;
    }
    what = "schema";
    /* One transaction: a crash mid-upgrade leaves the old version intact. */
    if (sqlite3_exec(e->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        (version && !has_n && sqlite3_exec(e->db, upgrade_to_4_sql, NULL, NULL, NULL)) ||
        sqlite3_exec(e->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
        exec_one(e->db, "PRAGMA user_version=" STR(SCHEMA_VERSION), NULL, NULL) ||
        sqlite3_exec(e->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK ||
        exec_one(e->db,
                 "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'pubs_id'",
                 &e->id_index, NULL))
        goto fail;
    if (e->opts.max_db_bytes > 0) {
        what = "max_db_bytes";
        char sql[64];
        if (exec_one(e->db, "PRAGMA page_size", &page_size, NULL) || page_size <= 0) goto fail;
        int64_t pages = e->opts.max_db_bytes / page_size;
        snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%lld", (long long)(pages ? pages : 1));
        if (exec_one(e->db, sql, NULL, NULL)) goto fail;
    }
    what = "prepare";
    for (int i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(e->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &e->st[i],
                               NULL) != SQLITE_OK)
            goto fail;
    pl_free(path);
    return PL_OK;
fail:
    snprintf(err, errlen, "engine: %s %s: %s", what, path,
             e->db ? sqlite3_errmsg(e->db) : "out of memory");
    pl_free(path);
    return PL_EIO;
}

engine *engine_sqlite_new(const engine_opts *opts, char *err, size_t errlen)
{
    sq_engine *e = NULL;
    int mu = 0, cv = 0, smu = 0;
    if (!opts || !opts->data_dir || !*opts->data_dir) {
        snprintf(err, errlen, "engine: data_dir is required");
        return NULL;
    }
    e = pl_calloc(1, sizeof(*e));
    if (!e) goto oom;
    e->base.ops = &sqlite_ops;
    e->opts = *opts;
    if (!e->opts.ring_size) e->opts.ring_size = DEFAULT_RING;
    if (e->opts.dedup_window_ms <= 0) e->opts.dedup_window_ms = DEFAULT_DEDUP_MS;
    e->data_dir = pl_strdup(opts->data_dir);
    e->buckets = pl_calloc(HASH_BUCKETS, sizeof(*e->buckets));
    e->slots = pl_calloc(BATCH_MAX, sizeof(*e->slots));
    e->out = pl_calloc(BATCH_MAX, sizeof(*e->out));
    if (!e->data_dir || !e->buckets || !e->slots || !e->out) goto oom;
    e->opts.data_dir = e->data_dir;

    pthread_condattr_t ca;
    if (pthread_mutex_init(&e->mu, NULL)) goto sys;
    mu = 1;
    if (pthread_condattr_init(&ca)) goto sys;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    cv = pthread_cond_init(&e->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!cv) goto sys;
    if (pthread_mutex_init(&e->stats_mu, NULL)) goto sys;
    smu = 1;
    if (open_db(e, err, errlen) != PL_OK) goto fail;
    e->last_sweep_ms = clock_wall_ms();
    return &e->base;
oom:
    snprintf(err, errlen, "engine: out of memory");
    goto fail;
sys:
    snprintf(err, errlen, "engine: cannot create thread primitives");
fail:
    if (e) {
        /* Partly built: initialize what sq_free expects, then reuse it. */
        if (!mu) pthread_mutex_init(&e->mu, NULL);
        if (!cv) pthread_cond_init(&e->cv, NULL);
        if (!smu) pthread_mutex_init(&e->stats_mu, NULL);
        sq_free(&e->base);
    }
    return NULL;
}
