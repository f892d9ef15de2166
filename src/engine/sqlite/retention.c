/* Retention: history-size and TTL trims of the channels a batch touched, in
 * its transaction, the channel rows written with them, and the periodic
 * sweep of channels nobody touches and of expired idempotency keys. */
#include "engine/sqlite/sqlite_int.h"

#include <string.h>

#define SQ_SWEEP_CHANNELS 256     /* channels trimmed per sweep transaction */
#define SQ_LOG_HOLD_RETRY_MS 1000 /* expired pubs held for the router: look again */

/* Before a retention trim: takes the data bytes of the rows it deletes (those
 * whose pubs are all below keep) off the tenant's tally (tracked tenants
 * only). PL_OK or PL_EIO. */
static int account_trim(sq_engine *e, const sq_chan *ch, uint64_t keep)
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
    if (rc == SQLITE_ROW) sq_tenant_bytes_add(e, ch->tenant, -sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? PL_OK : PL_EIO;
}

/* The lowest offset a routing log entry of ch names, or UINT64_MAX: while
 * routes read the log, retention keeps every pub an entry the router has
 * not passed names, so a router that falls behind delays trims instead of
 * missing pubs (the log is trimmed as the routes move on). PL_EIO on error. */
static int log_floor(sq_engine *e, const sq_chan *ch, uint64_t *floor)
{
    *floor = UINT64_MAX;
    if (!atomic_load_explicit(&e->log_events, memory_order_relaxed)) return PL_OK;
    sqlite3_stmt *st = e->st[SQ_ST_EVT_FLOOR];
    sqlite3_bind_int64(st, 1, ch->cid);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        *floor = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? PL_OK : PL_EIO;
}

/* Removes the expired prefix of a channel inside the open transaction. */
static int ttl_trim(sq_engine *e, sq_chan *ch, int64_t now)
{
    sqlite3_stmt *st = e->st[SQ_ST_PUB_TS];
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
    uint64_t floor;
    if (log_floor(e, ch, &floor)) return PL_EIO;
    if (keep > floor) { /* the router still needs them: the sweep comes back */
        keep = floor;
        next_exp = now + SQ_LOG_HOLD_RETRY_MS;
    }
    if (keep > ch->b_first) {
        if (account_trim(e, ch, keep)) return PL_EIO;
        st = e->st[SQ_ST_PUB_TRIM];
        sqlite3_bind_int64(st, 1, ch->cid);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)keep);
        if (sq_run_done(st) != PL_OK) return PL_EIO;
    }
    ch->b_first = keep <= ch->b_head ? keep : 0;
    ch->b_next_exp_ms = next_exp;
    return PL_OK;
}

static int size_trim(sq_engine *e, sq_chan *ch)
{
    uint64_t keep = ch->b_head - ch->b_keep + 1, floor;
    if (log_floor(e, ch, &floor)) return PL_EIO;
    if (keep > floor) keep = floor; /* the router still needs them */
    if (keep <= ch->b_first) return PL_OK;
    if (account_trim(e, ch, keep)) return PL_EIO;
    sqlite3_stmt *st = e->st[SQ_ST_PUB_TRIM];
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)keep);
    if (sq_run_done(st) != PL_OK) return PL_EIO;
    ch->b_first = keep;
    return PL_OK;
}

/* Applies retention to every touched channel and writes the rows that
 * changed, opening the transaction if needed. PL_OK or PL_EIO. */
int sq_finish_channels(sq_engine *e, sq_chan *touched, int64_t now, int *in_txn)
{
    for (sq_chan *ch = touched; ch; ch = ch->b_next) {
        if (!ch->cid && (sq_txn_begin(e, in_txn) || sq_chan_insert(e, ch))) return PL_EIO;
        int dirty = 0;
        if (ch->b_published && ch->b_keep && ch->b_first &&
            ch->b_head - ch->b_first + 1 > ch->b_keep) {
            if (sq_txn_begin(e, in_txn) || size_trim(e, ch)) return PL_EIO;
            dirty = 1;
        }
        if (ch->b_ttl_ms > 0 && ch->b_first && ch->b_next_exp_ms && ch->b_next_exp_ms <= now) {
            if (sq_txn_begin(e, in_txn) || ttl_trim(e, ch, now)) return PL_EIO;
            dirty = 1;
        }
        dirty |= ch->b_head != ch->head || ch->b_first != ch->first || ch->b_ttl_ms != ch->ttl_ms ||
                 ch->b_next_exp_ms != ch->next_exp_ms;
        if (!dirty) continue;
        if (sq_txn_begin(e, in_txn)) return PL_EIO;
        sqlite3_stmt *st = e->st[SQ_ST_CHAN_SET];
        sqlite3_bind_int64(st, 1, ch->cid);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)ch->b_head);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)ch->b_first);
        sqlite3_bind_int64(st, 4, ch->b_ttl_ms);
        sqlite3_bind_int64(st, 5, ch->b_next_exp_ms);
        if (sq_run_done(st) != PL_OK) return PL_EIO;
    }
    return PL_OK;
}

/* Trims expired pubs of channels nobody touched and forgets expired
 * idempotency keys, in its own transaction so that a full disk blocking
 * publishes does not block the deletes that free space. */
void sq_sweep(sq_engine *e, int64_t now)
{
    sq_chan *touched = NULL;
    int in_txn = 0, status = PL_OK, rc;
    if (sq_txn_begin(e, &in_txn)) return;
    sqlite3_stmt *st = e->st[SQ_ST_CHAN_DUE];
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, SQ_SWEEP_CHANNELS);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        const char *c = (const char *)sqlite3_column_text(st, 1);
        sq_chan *ch = t && c ? sq_chan_get(e, t, c, &status) : NULL;
        if (ch) sq_touch(ch, &touched);
    }
    sqlite3_reset(st);
    int failed = (rc != SQLITE_ROW && rc != SQLITE_DONE) || status == PL_EIO;
    if (!failed) failed = sq_finish_channels(e, touched, now, &in_txn) != PL_OK;
    if (!failed) {
        st = e->st[SQ_ST_IDEM_EXPIRE];
        sqlite3_bind_int64(st, 1, now - e->opts.dedup_window_ms);
        failed = sq_run_done(st) != PL_OK;
    }
    if (!failed) failed = sq_run_done(e->st[SQ_ST_COMMIT]) != PL_OK;
    if (failed) {
        sq_txn_rollback(e);
        map_release(&e->tenant_bytes);
        sq_revert_channels(touched);
    } else {
        sq_apply_channels(touched);
    }
}
