/* Reads: which offsets a history or recovery read returns and serving them
 * (ring first, rows for older offsets), and the users' read cursors. */
#include "engine/sqlite/sqlite_int.h"

#include "engine/plan.h"

#include <string.h>

#include "util/clock.h"
#include "util/mem.h"

/* The first retained offset a request that sees the channel up to head
 * reports: 0 when retention (applied by the batch for all its requests) left
 * none up to there. */
static uint64_t seen_first(const sq_chan *ch, uint64_t head)
{
    return ch->first <= head ? ch->first : 0;
}

/* Serves a READ from the committed state: ring first, disk for older pubs.
 * The ring and the rows hold every offset up to the committed head, so a
 * read capped below it finds its pubs the same way. */
int sq_serve_read(sq_engine *e, sq_chan *ch, engine_req *r)
{
    uint64_t lo, hi;
    engine_plan_read(r, seen_first(ch, r->head), ch->epoch, &lo, &hi);
    if (lo > hi) return PL_OK;
    size_t want = (size_t)(hi - lo + 1), n = 0;
    pl_pub **arr = pl_malloc(want * sizeof(*arr));
    if (!arr) return PL_ENOMEM;
    int status = PL_OK;
    uint64_t rlo = ch->rcount ? sq_ring_lo(ch) : ch->head + 1;
    if (lo < rlo) status = sq_load_range(e, ch, lo, hi < rlo ? hi : rlo - 1, arr, &n);
    for (uint64_t o = lo > rlo ? lo : rlo; status == PL_OK && o <= hi; o++)
        arr[n++] = pub_ref(sq_ring_at(ch, o));
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

/* Reads a user's cursor into r->cursor (0 when none). 0 or -1. */
int sq_cursor_get(sq_engine *e, sq_chan *ch, engine_req *r)
{
    r->cursor = 0;
    if (!ch->cid) return 0;
    sqlite3_stmt *st = e->st[SQ_ST_CUR_GET];
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_text(st, 2, r->user, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) r->cursor = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Reads every user's cursor on the channel into r->json (see
 * ENGINE_READ_CURSORS). 0 or -1. */
static int cursors_all(sq_engine *e, sq_chan *ch, engine_req *r)
{
    sbuf o;
    sbuf_init(&o);
    sbuf_putc(&o, '[');
    int rc = SQLITE_DONE;
    if (ch->cid) {
        sqlite3_stmt *st = e->st[SQ_ST_CUR_ALL];
        sqlite3_bind_int64(st, 1, ch->cid);
        sqlite3_bind_int64(st, 2, r->limit);
        size_t n = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *user = (const char *)sqlite3_column_text(st, 0);
            sbuf_puts(&o, n++ ? ",{\"user\":" : "{\"user\":");
            sbuf_json_str(&o, user ? user : "", user ? strlen(user) : 0);
            sbuf_puts(&o, ",\"offset\":");
            sbuf_u64(&o, (uint64_t)sqlite3_column_int64(st, 1));
            sbuf_putc(&o, '}');
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    sbuf_putc(&o, ']');
    pl_free(r->json);
    r->json = rc == SQLITE_DONE && !o.oom ? pl_strndup(o.data, o.len) : NULL;
    sbuf_release(&o);
    return r->json ? 0 : -1;
}

/* Moves the read cursors of the batch, after the publishes committed (so
 * the channel rows exist), in a transaction of their own: a cursor never
 * goes back and never past the channel's head as of the CURSOR's place in
 * the batch. The READs that ask for a user's cursor read it in the same
 * pass, so each sees the moves submitted before it and none after. */
void sq_apply_cursors(sq_engine *e, size_t n)
{
    int in_txn = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        sq_slot *s = &e->slots[i];
        engine_req *r = s->req;
        if (r->status != PL_OK) continue;
        sq_chan *ch = s->ch;
        if (r->op == ENGINE_READ && r->mode == ENGINE_READ_CURSORS) {
            if (cursors_all(e, ch, r)) r->status = PL_EIO;
            continue;
        }
        if (r->op == ENGINE_READ && r->user) {
            if (sq_cursor_get(e, ch, r)) {
                r->status = PL_EIO;
                if (in_txn) failed = 1; /* SQLite may have ended the transaction */
            }
            continue;
        }
        if (r->op != ENGINE_CURSOR) continue;
        r->first = seen_first(ch, r->head);
        memcpy(r->epoch, ch->epoch, sizeof(r->epoch));
        uint64_t want = r->since_offset < r->head ? r->since_offset : r->head;
        if (failed || sq_cursor_get(e, ch, r)) {
            failed = 1;
            continue;
        }
        if (want <= r->cursor || !ch->cid) continue;
        if (!in_txn && sq_txn_begin(e, &in_txn)) {
            failed = 1;
            continue;
        }
        sqlite3_stmt *st = e->st[SQ_ST_CUR_SET];
        sqlite3_bind_int64(st, 1, ch->cid);
        sqlite3_bind_text(st, 2, r->user, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (int64_t)want);
        if (sq_run_done(st) != PL_OK) {
            failed = 1;
            continue;
        }
        r->cursor = want;
        r->moved = 1;
        /* Guaranteed pubs the user has now read are seen. */
        engine_req seen = {.user = r->user, .since_offset = want};
        if (sq_move_upto(e, &seen, ch, DLV_ACKED, DLV_SEEN, clock_wall_ms()) != PL_OK) failed = 1;
    }
    if (in_txn && !failed && sq_run_done(e->st[SQ_ST_COMMIT]) != PL_OK) failed = 1;
    if (!failed) return;
    if (in_txn) sq_txn_rollback(e);
    /* No move took effect: the READs read their cursors again. */
    for (size_t i = 0; i < n; i++) {
        sq_slot *s = &e->slots[i];
        engine_req *r = s->req;
        if (r->op == ENGINE_CURSOR) {
            r->status = PL_EIO;
            r->moved = 0;
        } else if (r->op == ENGINE_READ && r->status == PL_OK &&
                   (r->mode == ENGINE_READ_CURSORS ? cursors_all(e, s->ch, r)
                                                   : r->user && sq_cursor_get(e, s->ch, r))) {
            r->status = PL_EIO;
        }
    }
}
