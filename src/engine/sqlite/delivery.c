/* Guaranteed delivery rows: one per recipient, written with the pub; state
 * transitions and their log, acknowledgements up to an offset, and a user's
 * pending pubs. */
#include "engine/sqlite/sqlite_int.h"

#include <string.h>

#include "util/clock.h"
#include "util/mem.h"

static int log_transition(sq_engine *e, int64_t cid, uint64_t off, const char *user, int state,
                          uint32_t attempt, int64_t now, const char *error)
{
    sqlite3_stmt *st = e->st[SQ_ST_DLOG_INS];
    sqlite3_bind_int64(st, 1, cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)off);
    sqlite3_bind_text(st, 3, user, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, state);
    sqlite3_bind_int(st, 5, (int)attempt);
    sqlite3_bind_int64(st, 6, now);
    sq_bind_str(st, 7, error);
    return sq_run_done(st);
}

int sq_set_delivery(sq_engine *e, int64_t cid, uint64_t off, const char *user, int state,
                    uint32_t attempts, int64_t now, const char *error)
{
    sqlite3_stmt *st = e->st[SQ_ST_DLV_SET];
    sqlite3_bind_int64(st, 1, cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)off);
    sqlite3_bind_text(st, 3, user, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, state);
    sqlite3_bind_int(st, 5, (int)attempts);
    sqlite3_bind_int64(st, 6, now);
    if (sq_run_done(st) != PL_OK) return PL_EIO;
    return log_transition(e, cid, off, user, state, attempts, now, error);
}

/* One queued delivery row per recipient, in the pub's transaction. */
int sq_insert_recipients(sq_engine *e, const sq_chan *ch, const pl_pub *p, engine_req *r,
                         int64_t now)
{
    for (size_t i = 0; i < r->nrecipients; i++) {
        sqlite3_stmt *st = e->st[SQ_ST_DLV_INS];
        sqlite3_bind_int64(st, 1, ch->cid);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)p->offset);
        sqlite3_bind_text(st, 3, r->recipients[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        if (sq_run_done(st) != PL_OK) return PL_EIO;
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

int sq_stage_delivery(sq_engine *e, engine_req *r, sq_chan *ch, int64_t now)
{
    if (!ch->cid) return PL_OK;
    sqlite3_stmt *st = e->st[SQ_ST_DLV_GET];
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
    if (sq_set_delivery(e, ch->cid, r->since_offset, r->user, r->dstate, r->attempt, now, r->error))
        return PL_EIO;
    r->moved = 1;
    if (r->dstate != DLV_FAILED) return PL_OK;
    st = e->st[SQ_ST_DLQ_INS];
    sqlite3_bind_text(st, 1, ch->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ch->channel, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ch->cid);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)r->since_offset);
    sqlite3_bind_text(st, 5, r->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, "max_attempts", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, (int)r->attempt);
    sq_bind_str(st, 8, r->error);
    sqlite3_bind_int64(st, 9, now);
    return sq_run_done(st);
}

/* Moves the user's deliveries up to since_offset (in states <= max_from) to
 * `to`; counts them in r->count. */
int sq_move_upto(sq_engine *e, engine_req *r, sq_chan *ch, int max_from, int to, int64_t now)
{
    r->count = 0;
    if (!ch->cid) return PL_OK;
    uint64_t offs[256];
    uint32_t atts[256];
    int more = 1, status = PL_OK;
    while (more && status == PL_OK) {
        size_t n = 0;
        sqlite3_stmt *st = e->st[SQ_ST_DLV_UPTO];
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
            status = sq_set_delivery(e, ch->cid, offs[i], r->user, to, atts[i], now, NULL);
        r->count += n;
    }
    return status;
}

/* Makes room for one more result in r (pubs, attempts and, with_users, users),
 * *cap entries allocated so far; 0, or -1 when out of memory. */
int sq_grow_result(engine_req *r, size_t *cap, int with_users)
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

/* The user's queued and sent deliveries of a channel, oldest first, up to
 * r->head, the channel's head at the request's place in its batch (commit.c):
 * a guaranteed pub submitted after it is not pending yet. */
int sq_serve_pending(sq_engine *e, sq_chan *ch, engine_req *r)
{
    memcpy(r->epoch, ch->epoch, sizeof(r->epoch));
    if (!ch->cid) return PL_OK;
    size_t cap = 0;
    int status = PL_OK, rc = SQLITE_DONE;
    sqlite3_stmt *st = e->st[SQ_ST_DLV_PENDING];
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_text(st, 2, r->user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)r->head);
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
        pl_pub *p = sq_load_one(e, ch, offs[i]);
        if (!p) {
            /* Retention removed it before it could be delivered: expired. */
            if (expired_ok && (sq_txn_begin(e, &in_txn) ||
                               sq_set_delivery(e, ch->cid, offs[i], r->user, DLV_EXPIRED, atts[i],
                                               clock_wall_ms(), "removed by retention")))
                expired_ok = 0;
            continue;
        }
        if (sq_grow_result(r, &cap, 0)) {
            pub_unref(p);
            status = PL_ENOMEM;
            break;
        }
        r->attempts[r->npubs] = atts[i];
        r->pubs[r->npubs++] = p;
    }
    /* Marking expiry is bookkeeping: a failure leaves the rows as they were
     * (they expire on a later subscribe) and does not fail the read. */
    if (in_txn && (!expired_ok || sq_run_done(e->st[SQ_ST_COMMIT]) != PL_OK)) sq_txn_rollback(e);
    return status;
}
