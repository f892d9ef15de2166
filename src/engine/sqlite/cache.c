/* The channel cache: a fixed hash table of the channels in use, bounded by
 * LRU eviction between batches, each with its epoch, committed and in-batch
 * state and a ring of its newest committed pubs; loading a channel's row or
 * creating it; the tenants' channel quotas and stored-byte tallies. */
#include "engine/sqlite/sqlite_int.h"

#include <stdio.h>
#include <string.h>

#include "engine/plan.h"
#include "util/clock.h"
#include "util/mem.h"

#define SQ_MAX_CHANNELS 10000 /* cached channels (each with a ring), LRU beyond */

static uint32_t chan_hash(const char *tenant, const char *channel)
{
    /* Two hashes combined unevenly: ("ab","c") and ("a","bc") differ. */
    uint64_t h = map_hash(tenant, strlen(tenant)) * 0x9E3779B97F4A7C15ULL;
    h ^= map_hash(channel, strlen(channel));
    return (uint32_t)(h ^ (h >> 32));
}

/* Drops ring entries that retention removed (offsets below first). */
static void ring_trim(sq_chan *ch)
{
    uint64_t ef = ch->first ? ch->first : ch->head + 1;
    while (ch->rcount && sq_ring_lo(ch) < ef) {
        pub_unref(ch->ring[ch->rstart]);
        ch->ring[ch->rstart] = NULL;
        ch->rstart = (ch->rstart + 1) % ch->rcap;
        ch->rcount--;
    }
}

static void lru_unlink(sq_engine *e, sq_chan *ch)
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

static void lru_front(sq_engine *e, sq_chan *ch)
{
    ch->lru_next = e->lru_head;
    if (e->lru_head) e->lru_head->lru_prev = ch;
    e->lru_head = ch;
    if (!e->lru_tail) e->lru_tail = ch;
}

void sq_chan_free(sq_chan *ch)
{
    while (ch->rcount) {
        pub_unref(ch->ring[ch->rstart]);
        ch->rstart = (ch->rstart + 1) % ch->rcap;
        ch->rcount--;
    }
    pl_free(ch->ring);
    pl_free(ch);
}

static void chan_evict(sq_engine *e, sq_chan *ch)
{
    sq_chan **pp = &e->buckets[ch->hash % SQ_HASH_BUCKETS];
    while (*pp != ch)
        pp = &(*pp)->hnext;
    *pp = ch->hnext;
    lru_unlink(e, ch);
    e->nchan--;
    sq_chan_free(ch);
}

/* Evicts least recently used channels beyond the bound. Only between
 * batches: a batch holds pointers to the channels it touched. */
void sq_chan_evict_excess(sq_engine *e)
{
    while (e->nchan > SQ_MAX_CHANNELS && e->lru_tail)
        chan_evict(e, e->lru_tail);
}

static sq_chan *chan_alloc(sq_engine *e, const char *tenant, const char *channel, uint32_t hash)
{
    size_t tl = strlen(tenant), cl = strlen(channel);
    sq_chan *ch = pl_calloc(1, sizeof(*ch) + tl + cl + 2);
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

static void chan_reset_batch(sq_chan *ch)
{
    ch->b_head = ch->head;
    ch->b_first = ch->first;
    ch->b_ttl_ms = ch->ttl_ms;
    ch->b_next_exp_ms = ch->next_exp_ms;
    ch->b_keep = 0;
    ch->b_published = 0;
    ch->b_fresh_head = ch->b_fresh_tail = 0;
}

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
int64_t sq_tenant_bytes(sq_engine *e, const char *tenant)
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
void sq_tenant_bytes_add(sq_engine *e, const char *tenant, int64_t delta)
{
    size_t tl = strlen(tenant);
    uintptr_t v = (uintptr_t)map_get(&e->tenant_bytes, tenant, tl);
    if (!v) return;
    int64_t now = (int64_t)(v - 1) + delta;
    map_put(&e->tenant_bytes, tenant, tl, (void *)(uintptr_t)((now > 0 ? now : 0) + 1));
}

/* Returns the cached channel, loading its row or creating it (in memory,
 * with a fresh epoch; the row is written by the next transaction). NULL with
 * *status PL_ENOMEM, PL_EIO or, past the tenant's quota (e->quota), PL_ELIMIT
 * on failure. The channel stays owned by the cache. */
sq_chan *sq_chan_get(sq_engine *e, const char *tenant, const char *channel, int *status)
{
    uint32_t h = chan_hash(tenant, channel);
    for (sq_chan *c = e->buckets[h % SQ_HASH_BUCKETS]; c; c = c->hnext) {
        if (c->hash == h && !strcmp(c->tenant, tenant) && !strcmp(c->channel, channel)) {
            lru_unlink(e, c);
            lru_front(e, c);
            return c;
        }
    }
    sq_chan *ch = chan_alloc(e, tenant, channel, h);
    if (!ch) {
        *status = PL_ENOMEM;
        return NULL;
    }
    sqlite3_stmt *st = e->st[SQ_ST_CHAN_GET];
    sq_bind_str(st, 1, tenant);
    sq_bind_str(st, 2, channel);
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
        engine_make_epoch(ch->epoch);
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
    ch->hnext = e->buckets[h % SQ_HASH_BUCKETS];
    e->buckets[h % SQ_HASH_BUCKETS] = ch;
    lru_front(e, ch);
    e->nchan++;
    return ch;
}

/* Inserts the row of a channel that has none yet, inside the open
 * transaction; its cid is valid only if the transaction commits. */
int sq_chan_insert(sq_engine *e, sq_chan *ch)
{
    if (ch->cid) return PL_OK;
    sqlite3_stmt *st = e->st[SQ_ST_CHAN_INS];
    sq_bind_str(st, 1, ch->tenant);
    sq_bind_str(st, 2, ch->channel);
    sq_bind_str(st, 3, ch->epoch);
    if (sq_run_done(st) != PL_OK) return PL_EIO;
    ch->cid = sqlite3_last_insert_rowid(e->db);
    ch->b_inserted = 1;
    return PL_OK;
}

/* After a successful commit: the batch state becomes the committed state. */
void sq_apply_channels(sq_chan *touched)
{
    for (sq_chan *ch = touched; ch; ch = ch->b_next) {
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
void sq_revert_channels(sq_chan *touched)
{
    for (sq_chan *ch = touched; ch; ch = ch->b_next) {
        if (ch->b_inserted) ch->cid = 0; /* the rowid died with the transaction */
        ch->b_inserted = 0;
        ch->b_touched = 0;
        chan_reset_batch(ch);
    }
}

/* Doubles the ring up to rmax, so that idle channels (one subscriber, no
 * traffic) cost no ring at all. A failed allocation keeps the old size. */
void sq_ring_grow(sq_chan *ch)
{
    uint32_t ncap = ch->rcap ? ch->rcap * 2 : 4;
    if (ncap > ch->rmax) ncap = ch->rmax;
    pl_pub **nr = ncap ? pl_malloc(ncap * sizeof(*nr)) : NULL;
    if (!nr) return;
    /* An empty ring (rcap 0) holds nothing: rcount is 0 there too. */
    for (uint32_t i = 0; ch->rcap && i < ch->rcount; i++)
        nr[i] = ch->ring[(ch->rstart + i) % ch->rcap];
    pl_free(ch->ring);
    ch->ring = nr;
    ch->rcap = ncap;
    ch->rstart = 0;
}
