/* The committed log read back for routing rules (ENGINE_EVENTS): entries in
 * commit order, each a row of one channel's pubs, served from the rings
 * where they still hold them and from the pubs rows otherwise. */
#include "engine/sqlite/sqlite_int.h"

#include <string.h>

/* Makes room for n more pubs (and their seqs) in r. */
static int reserve(engine_req *r, size_t *cap, size_t n)
{
    if (r->npubs + n <= *cap) return PL_OK;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < r->npubs + n)
        ncap *= 2;
    pl_pub **np = pl_realloc(r->pubs, ncap * sizeof(*np));
    if (!np) return PL_ENOMEM;
    r->pubs = np;
    uint64_t *ns = pl_realloc(r->seqs, ncap * sizeof(*ns));
    if (!ns) return PL_ENOMEM;
    r->seqs = ns;
    *cap = ncap;
    return PL_OK;
}

/* Appends the retained pubs [lo, hi] of ch: the part older than the ring
 * from the rows, the rest from the ring. */
static int load_entry(sq_engine *e, sq_chan *ch, uint64_t lo, uint64_t hi, engine_req *r)
{
    uint64_t rlo = ch->rcount ? sq_ring_lo(ch) : ch->head + 1;
    size_t before = r->npubs;
    if (lo < rlo) {
        int status = sq_load_range(e, ch, lo, hi < rlo ? hi : rlo - 1, r->pubs, &r->npubs);
        if (status != PL_OK) return status;
    }
    for (uint64_t off = lo > rlo ? lo : rlo; off <= hi && off <= ch->head; off++)
        r->pubs[r->npubs++] = pub_ref(sq_ring_at(ch, off));
    r->count += (hi - lo + 1) - (r->npubs - before);
    return PL_OK;
}

int sq_serve_events(sq_engine *e, engine_req *r)
{
    sqlite3_stmt *st;
    if (r->trim_seq) {
        st = e->st[SQ_ST_EVT_TRIM];
        sqlite3_bind_int64(st, 1, (sqlite3_int64)r->trim_seq);
        if (sq_run_done(st) != PL_OK) return PL_EIO;
    }
    st = e->st[SQ_ST_EVT_HEAD];
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return PL_EIO;
    }
    r->head = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (!r->limit) return PL_OK;

    st = e->st[SQ_ST_EVT_READ];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)r->since_offset);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)r->limit);
    int status = PL_OK, rc = SQLITE_DONE;
    size_t cap = 0;
    while (status == PL_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
        r->cursor = seq;
        uint64_t off = (uint64_t)sqlite3_column_int64(st, 2);
        int64_t n = sqlite3_column_int64(st, 3);
        const char *tenant = (const char *)sqlite3_column_text(st, 4);
        const char *channel = (const char *)sqlite3_column_text(st, 5);
        if (n < 1 || n > SQ_ROW_PUBS_MAX || !tenant || !channel) {
            status = PL_EIO;
            break;
        }
        sq_chan *ch = sq_chan_get(e, tenant, channel, &status);
        if (!ch) {
            if (status == PL_OK) status = PL_EIO;
            break;
        }
        size_t from = r->npubs;
        status = reserve(r, &cap, (size_t)n);
        if (status == PL_OK) status = load_entry(e, ch, off, off + (uint64_t)n - 1, r);
        for (size_t i = from; i < r->npubs; i++)
            r->seqs[i] = seq;
    }
    if (status == PL_OK && rc != SQLITE_DONE) status = PL_EIO;
    sqlite3_reset(st);
    return status;
}
