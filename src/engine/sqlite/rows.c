/* The pubs rows: reading a range of offsets back into pubs (a row holds
 * several, seg.h), and writing the new pubs of a batch, a channel's
 * consecutive ones sharing a row. */
#include "engine/sqlite/sqlite_int.h"

#include <stdio.h>
#include <string.h>

#include "engine/seg.h"

static const char *col_text(sqlite3_stmt *st, int i, size_t *len)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    *len = s ? (size_t)sqlite3_column_bytes(st, i) : 0;
    return s;
}

/* Builds a stored pub (one reference); NULL on allocation failure. */
static pl_pub *stored_pub(sq_engine *e, const sq_chan *ch, pub_fields *f, pub_class cls,
                          uint64_t off, const char *id, int64_t ts)
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

/* Appends the pubs of one SQ_ST_PUB_RANGE row with offsets in [*next, hi] to
 * out and moves *next past them. Offsets must grow from row to row: a
 * damaged file must not overfill out. PL_OK, PL_ENOMEM or PL_EIO. */
static int row_pubs(sq_engine *e, const sq_chan *ch, sqlite3_stmt *st, uint64_t *next, uint64_t hi,
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
int sq_load_range(sq_engine *e, const sq_chan *ch, uint64_t lo, uint64_t hi, pl_pub **out,
                  size_t *n)
{
    /* A row that retention cut into still holds pubs below first. */
    if (!ch->first || hi < ch->first) return PL_OK;
    if (lo < ch->first) lo = ch->first;
    sqlite3_stmt *st = e->st[SQ_ST_PUB_RANGE];
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

/* Loads the pub at one offset (ring first); NULL if trimmed or on error. */
pl_pub *sq_load_one(sq_engine *e, sq_chan *ch, uint64_t off)
{
    uint64_t rlo = ch->rcount ? sq_ring_lo(ch) : ch->head + 1;
    if (off >= rlo && off <= ch->head) return pub_ref(sq_ring_at(ch, off));
    pl_pub *p = NULL;
    size_t n = 0;
    if (sq_load_range(e, ch, off, off, &p, &n) != PL_OK || !n) return NULL;
    return p;
}

/* Inserts one row: first and the count - 1 pubs after it, whose records are
 * in e->row_blob, with bytes of data in all. */
static int insert_row(sq_engine *e, const sq_chan *ch, const pl_pub *p, uint32_t count,
                      int64_t bytes)
{
    sqlite3_stmt *st = e->st[SQ_ST_PUB_INS];
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)p->offset);
    sqlite3_bind_text(st, 3, p->id, PUB_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, p->ts_ms);
    sqlite3_bind_int(st, 5, (int)p->cls);
    if (p->data)
        sqlite3_bind_text(st, 6, p->data, (int)p->data_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    sq_bind_str(st, 7, p->user);
    sq_bind_str(st, 8, p->client);
    sq_bind_str(st, 9, p->type);
    sq_bind_str(st, 10, p->correlation_id);
    sq_bind_str(st, 11, p->headers);
    sq_bind_str(st, 12, p->idem_key);
    sqlite3_bind_int(st, 13, (int)count);
    if (count > 1) {
        sqlite3_bind_int64(st, 14, bytes);
        sqlite3_bind_blob(st, 15, e->row_blob.data, (int)e->row_blob.len, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 14);
        sqlite3_bind_null(st, 15);
    }
    int status = sq_run_done(st);
    if (status != PL_OK || !atomic_load_explicit(&e->log_events, memory_order_relaxed))
        return status;
    st = e->st[SQ_ST_EVT_INS];
    sqlite3_bind_int64(st, 1, ch->cid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)p->offset);
    sqlite3_bind_int(st, 3, (int)count);
    status = sq_run_done(st);
    if (status == PL_OK) e->b_log_last = (uint64_t)sqlite3_last_insert_rowid(e->db);
    return status;
}

static pl_pub *fresh_pub(const sq_engine *e, uint32_t i)
{
    return e->slots[i - 1].fresh;
}

/* Writes one row of a channel's new pubs, from the one in slot index + 1 *i
 * on: consecutive pubs up to the row's bounds (a guaranteed pub alone).
 * Moves *i to the slot index + 1 of the next row's first pub (0: none).
 * The bounds (SQ_ROW_PUBS_MAX, SQ_ROW_BYTES_MAX, history_size) keep blobs
 * bounded, and the surplus a retention trim leaves in a row it cut into. */
static int write_row(sq_engine *e, const sq_chan *ch, uint32_t *i)
{
    uint32_t cap = ch->b_keep && ch->b_keep < SQ_ROW_PUBS_MAX ? ch->b_keep : SQ_ROW_PUBS_MAX;
    const pl_pub *first = fresh_pub(e, *i), *prev = first;
    uint32_t count = 1, j = e->slots[*i - 1].next_fresh;
    size_t bytes = first->data_len;
    sbuf_reset(&e->row_blob);
    for (; j && first->cls != PUB_GUARANTEED && count < cap && bytes < SQ_ROW_BYTES_MAX;
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
 * shared rows (the format is in sqlite_int.h). PL_OK, PL_EIO or PL_ENOMEM. */
int sq_write_pubs(sq_engine *e, sq_chan *touched)
{
    for (sq_chan *ch = touched; ch; ch = ch->b_next) {
        for (uint32_t i = ch->b_fresh_head; i;) {
            int status = write_row(e, ch, &i);
            if (status != PL_OK) return status;
        }
    }
    return PL_OK;
}
