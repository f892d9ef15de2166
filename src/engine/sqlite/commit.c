/* The batch: stage every request in one transaction (publishes get their
 * offsets, idempotency keys find their originals), commit it or undo all of
 * it, hand the new pubs to the rings, then answer the reads from the
 * committed state and give the batch to the sink, in the order the engine
 * contract asks for. */
#include "engine/sqlite/sqlite_int.h"

#include <stdio.h>
#include <string.h>

#include "engine/seg.h"
#include "util/clock.h"

/* Batches hold a thousand requests and pubs the workers wrote, more than
 * the core's cache keeps between the engine's passes over them: the passes
 * ask for the memory a few slots ahead, so the misses overlap. */
#define SQ_PREFETCH_AHEAD 4

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

/* Finds the original of a duplicate: from this batch, the ring, or disk.
 * NULL with *status PL_OK when retention already removed it. */
static pl_pub *find_original(sq_engine *e, size_t upto, sq_chan *ch, uint64_t off, int *status)
{
    if (off > ch->head) {
        for (size_t i = 0; i < upto; i++) {
            sq_slot *s = &e->slots[i];
            if (s->fresh && s->ch == ch && s->fresh->offset == off) return pub_ref(s->fresh);
        }
        return NULL;
    }
    if (ch->rcount && off >= sq_ring_lo(ch)) return pub_ref(sq_ring_at(ch, off));
    if (!ch->b_first || off < ch->b_first) return NULL;
    pl_pub *p = NULL;
    size_t n = 0;
    *status = sq_load_range(e, ch, off, off, &p, &n);
    if (*status == PL_EIO) e->b_fatal = 1;
    return n ? p : NULL;
}

/* Checks the idempotency key of slot i. Returns 1 when it is a duplicate
 * (req->pub now holds the original), 0 when the pub is new, or a negative
 * status. */
static int idem_check(sq_engine *e, size_t i, sq_chan *ch, int64_t now)
{
    sq_slot *s = &e->slots[i];
    pl_pub *p = s->req->pub;
    sqlite3_stmt *st = e->st[SQ_ST_IDEM_GET];
    sqlite3_bind_int64(st, 1, ch->cid);
    sq_bind_str(st, 2, p->idem_key);
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

/* Stages slot i's publish inside the batch transaction. Returns its status;
 * statement failures also set e->b_fatal. */
static int stage_publish(sq_engine *e, size_t i, int64_t now, sq_chan **touched, int *in_txn)
{
    sq_slot *s = &e->slots[i];
    engine_req *r = s->req;
    pl_pub *p = r->pub;
    int status = PL_OK;
    r->duplicate = 0;
    if (!p || !p->tenant || !p->channel) return PL_EINVAL;
    if (sq_txn_begin(e, in_txn)) goto fatal;
    e->quota = r->max_channels;
    sq_chan *ch = sq_chan_get(e, p->tenant, p->channel, &status);
    e->quota = 0;
    if (!ch) {
        if (status == PL_EIO) goto fatal;
        return status;
    }
    s->ch = ch;
    sq_touch(ch, touched);
    if (sq_chan_insert(e, ch) != PL_OK) goto fatal;
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
        int64_t used = sq_tenant_bytes(e, p->tenant);
        if (used < 0) goto fatal;
        if (used + (int64_t)p->data_len > r->storage_bytes) return PL_ELIMIT;
        sq_tenant_bytes_add(e, p->tenant, (int64_t)p->data_len);
    }
    p->offset = ch->b_head + 1;
    p->ts_ms = now;
    /* A channel created by this batch has no cid yet, and past 2^40 (not
     * reached in practice) there is no room: those pubs get a random id,
     * which seg_put then stores with the pub. */
    if (!seg_pub_id(p->id, p->ts_ms, ch->cid, p->offset)) clock_ulid_at(p->id, p->ts_ms);
    memcpy(p->epoch, ch->epoch, sizeof(p->epoch));
    if (p->cls == PUB_GUARANTEED && sq_insert_recipients(e, ch, p, r, now) != PL_OK) goto fatal;
    if (p->idem_key) {
        sqlite3_stmt *st = e->st[SQ_ST_IDEM_PUT];
        sqlite3_bind_int64(st, 1, ch->cid);
        sq_bind_str(st, 2, p->idem_key);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)p->offset);
        sqlite3_bind_text(st, 4, p->id, PUB_ID_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, p->ts_ms);
        if (sq_run_done(st) != PL_OK) goto fatal;
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

void sq_txn_rollback(sq_engine *e)
{
    /* Some errors (SQLITE_FULL, IOERR) may already have rolled back. */
    if (!sqlite3_get_autocommit(e->db)) sq_run_done(e->st[SQ_ST_ROLLBACK]);
}

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
        sq_slot *s = &e->slots[i];
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
        sq_slot *s = &e->slots[i];
        if (i + SQ_PREFETCH_AHEAD < n && s[SQ_PREFETCH_AHEAD].fresh)
            __builtin_prefetch(s[SQ_PREFETCH_AHEAD].fresh);
        /* A new pub: a publish that succeeded, with no original kept. */
        if (s->fresh) {
            sq_ring_push(s->ch, s->fresh);
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

/* Stages a DELIVERY or ACK request (slot s) in the batch transaction. */
static void stage_delivery_req(sq_engine *e, sq_slot *s, int64_t now, sq_chan **touched,
                               int *in_txn)
{
    engine_req *r = s->req;
    if (!r->tenant || !r->channel || !r->user) {
        r->status = PL_EINVAL;
        return;
    }
    if (e->b_fatal) return;
    s->ch = sq_chan_get(e, r->tenant, r->channel, &r->status);
    if (!s->ch || sq_txn_begin(e, in_txn)) {
        if (r->status == PL_OK) r->status = PL_EIO;
        if (r->status == PL_EIO) e->b_fatal = 1;
        return;
    }
    sq_touch(s->ch, touched);
    r->status = r->op == ENGINE_ACK ? sq_move_upto(e, r, s->ch, DLV_SENT, DLV_ACKED, now)
                                    : sq_stage_delivery(e, r, s->ch, now);
    if (r->status == PL_EIO) e->b_fatal = 1;
}

/* Finds (or creates) the channel of a READ, CURSOR or PENDING request (slot
 * s); they are served after the commit, each as of its place in the batch:
 * r->head keeps the channel's head staged so far (the committed head plus
 * the publishes submitted before it), and serving caps the committed state
 * there. */
static void stage_read_req(sq_engine *e, sq_slot *s, sq_chan **touched, int in_txn)
{
    engine_req *r = s->req;
    if (!r->tenant || !r->channel || (r->op != ENGINE_READ && !r->user)) {
        r->status = PL_EINVAL;
        return;
    }
    e->quota = r->max_channels;
    s->ch = sq_chan_get(e, r->tenant, r->channel, &r->status);
    e->quota = 0;
    if (s->ch) {
        sq_touch(s->ch, touched);
        r->head = s->ch->b_head;
    }
    /* SQLite may have rolled the transaction back on that error. */
    else if (r->status == PL_EIO && in_txn)
        e->b_fatal = 1;
}

/* After a failed transaction: every staged change of the batch is undone. */
static void undo_batch(sq_engine *e, size_t n, sq_chan *touched, int in_txn)
{
    if (in_txn) sq_txn_rollback(e);
    map_release(&e->tenant_bytes); /* the tallies counted rolled-back pubs */
    for (size_t i = 0; i < n; i++) {
        engine_req *r = e->slots[i].req;
        if (r->op == ENGINE_DELIVERY || r->op == ENGINE_ACK) {
            r->status = PL_EIO;
            r->moved = 0;
            r->count = 0;
        } else if (e->slots[i].ch && r->op != ENGINE_PUBLISH) {
            /* No publish took effect: reads see the committed head. */
            r->head = e->slots[i].ch->head;
        }
    }
    fail_publishes(e, n);
    sq_revert_channels(touched);
}

/* The files are not the ones opened (files.h): every request of the batch
 * fails, with nothing staged left behind; the first time, says why. */
static void fail_faulted(sq_engine *e, size_t n, const char *why)
{
    for (size_t i = 0; i < n; i++) {
        engine_req *r = e->slots[i].req;
        r->status = PL_EIO;
        r->moved = 0;
        r->count = 0;
    }
    if (why[0] && e->opts.fault) e->opts.fault(e->opts.sink_ctx, why);
}

/* Serves the batch's queries from the committed state, each capped at its
 * place in the batch, and hands every request to the sink in submission
 * order (see sq_process_batch). */
static void answer_batch(sq_engine *e, size_t n, int64_t now)
{
    for (size_t i = 0; i < n; i++) {
        sq_slot *s = &e->slots[i];
        engine_req *r = s->req;
        e->out[i] = r;
        if (r->status != PL_OK) continue;
        if (r->op == ENGINE_READ)
            r->status = sq_serve_read(e, s->ch, r);
        else if (r->op == ENGINE_PENDING)
            r->status = sq_serve_pending(e, s->ch, r);
        else if (r->op == ENGINE_ADMIN)
            r->status = sq_serve_admin(e, r, now);
        else if (r->op == ENGINE_EVENTS)
            r->status = sq_serve_events(e, r);
    }
    if (e->opts.sink)
        e->opts.sink(e->opts.sink_ctx, e->out, n);
    else
        for (size_t i = 0; i < n; i++)
            engine_req_free(e->out[i]);
}

/* Processes slots[0..n): stage publishes (and the channel rows of reads) in
 * one transaction, commit, then serve the reads from the committed state.
 *
 * Requests take effect in submission order, and the sink gets them in that
 * order: a READ (or PENDING, or CURSOR) sees exactly the publishes submitted
 * before it, in this batch and earlier ones. Staging records the channel's
 * head at the request's place (stage_read_req); after the commit the ring
 * and the rows hold every pub up to it, so the read is served from the
 * committed state capped there, with no snapshot of uncommitted state. A
 * publish submitted after a read thus reaches the sink after it: a
 * subscription whose READ it follows is live by then and gets it as a push.
 * After a failed commit no publish took effect, and the cap falls to the
 * committed head. What the cap does not undo: retention trims made by the
 * batch apply to all its reads (as trims may at any time); PENDING sees the
 * batch's ACK and DELIVERY state changes and the seen marks of its CURSOR
 * moves (pubs the user acknowledged or read anyway); ADMIN queries the
 * whole batch. A READ's user cursor is read in order with the batch's
 * CURSOR moves (sq_apply_cursors). */
void sq_process_batch(sq_engine *e, size_t n)
{
    int64_t now = clock_wall_ms();
    int64_t t0 = clock_mono_us();
    sq_chan *touched = NULL;
    int in_txn = 0;
    e->b_fatal = 0;
    if (sq_files_faulted(&e->files)) {
        fail_faulted(e, n, "");
        record_commit(e, 0, 0, 0, 1);
        answer_batch(e, n, now);
        return;
    }

    for (size_t i = 0; i < n; i++) {
        sq_slot *s = &e->slots[i];
        engine_req *r = s->req;
        if (i + 2 * SQ_PREFETCH_AHEAD < n) __builtin_prefetch(s[2 * SQ_PREFETCH_AHEAD].req);
        if (i + SQ_PREFETCH_AHEAD < n) __builtin_prefetch(s[SQ_PREFETCH_AHEAD].req->pub);
        r->status = PL_OK;
        if (r->op == ENGINE_PUBLISH) {
            if (!e->b_fatal) r->status = stage_publish(e, i, now, &touched, &in_txn);
        } else if (r->op == ENGINE_DELIVERY || r->op == ENGINE_ACK) {
            stage_delivery_req(e, s, now, &touched, &in_txn);
        } else if (r->op == ENGINE_ADMIN) {
            if (!r->tenant && r->admin_op != ADMIN_SENT_ALL) r->status = PL_EINVAL;
        } else if (r->op == ENGINE_EVENTS) {
            /* served from the committed state, after the batch's commit */
        } else if (r->op == ENGINE_READ || r->op == ENGINE_CURSOR || r->op == ENGINE_PENDING) {
            stage_read_req(e, s, &touched, in_txn);
        } else {
            r->status = PL_EINVAL;
        }
    }
    if (!e->b_fatal && sq_write_pubs(e, touched) != PL_OK) e->b_fatal = 1;
    if (!e->b_fatal && sq_finish_channels(e, touched, now, &in_txn) != PL_OK) e->b_fatal = 1;
    /* The files must be the ones opened (files.h). Checked before the
     * COMMIT, so a batch that finds them changed rolls back and stores
     * nothing, and after it, before any answer: a change during the COMMIT
     * is not acked (though it may be on disk, as after a failed COMMIT). */
    char why[512] = "";
    int lost = !e->b_fatal && in_txn && sq_files_check(&e->files, why, sizeof(why)) != PL_OK;
    if (!e->b_fatal && !lost && in_txn && sq_run_done(e->st[SQ_ST_COMMIT]) != PL_OK) e->b_fatal = 1;
    int committed = in_txn && !e->b_fatal && !lost;
    if (committed && sq_files_check(&e->files, why, sizeof(why)) != PL_OK) lost = 1;

    uint64_t fresh = 0, dups = 0;
    if (e->b_fatal || lost) {
        undo_batch(e, n, touched, in_txn && !committed);
        if (lost) fail_faulted(e, n, why);
    } else {
        fresh = commit_publishes(e, n, &dups);
        sq_apply_channels(touched);
        /* A route created from now on starts after this batch's entries. */
        if (committed && e->b_log_last) atomic_store(&e->log_head, e->b_log_last);
    }
    e->b_log_last = 0;
    record_commit(e, fresh, dups, clock_mono_us() - t0, e->b_fatal || lost);
    sq_apply_cursors(e, n);
    answer_batch(e, n, now);
}
