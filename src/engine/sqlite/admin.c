/* Admin queries: the dead-letter queue (list, replay, purge), trace of a
 * pub and its deliveries, and every delivery left sent (resent after a
 * restart). */
#include "engine/sqlite/sqlite_int.h"

#include <stdio.h>
#include <string.h>

#include "util/clock.h"
#include "util/mem.h"

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
    sq_bind_str(st, 2, r->channel);
    sq_bind_str(st, 3, r->user);
    sq_bind_str(st, 4, r->reason);
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
                                  " last_error, correlation_id, failed_at, kind, ref",
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
        if (sqlite3_column_type(st, 9) == SQLITE_NULL) {
            sbuf_puts(o, ",\"kind\":\"delivery\",\"user\":");
            json_col(o, st, 3);
        } else {
            /* A webhook delivery: its endpoint and delivery id. */
            sbuf_puts(o, ",\"kind\":");
            json_col(o, st, 9);
            sbuf_puts(o, ",\"endpoint\":");
            json_col(o, st, 3);
            sbuf_puts(o, ",\"delivery_id\":");
            json_col(o, st, 10);
        }
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
    sqlite3_stmt *st = dlq_select(e, r, "id, tenant, channel, off, user, ref", 10000);
    if (!st) return PL_EIO;
    int in_txn = 0, status = PL_OK, rc = SQLITE_DONE;
    size_t cap = 0;
    if (sq_txn_begin(e, &in_txn)) status = PL_EIO;
    while (status == PL_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *tenant = (const char *)sqlite3_column_text(st, 1);
        const char *channel = (const char *)sqlite3_column_text(st, 2);
        uint64_t off = (uint64_t)sqlite3_column_int64(st, 3);
        const char *user = (const char *)sqlite3_column_text(st, 4);
        const char *ref = (const char *)sqlite3_column_text(st, 5);
        sq_chan *ch = ref ? NULL : sq_chan_get(e, tenant, channel, &status);
        if (!ch && !ref) break;
        if (replay && ref) {
            /* A webhook delivery: the caller requeues it by id. */
            char **nr = pl_realloc(r->refs, (r->nrefs + 1) * sizeof(*nr));
            if (!nr || !(nr[r->nrefs] = pl_strdup(ref))) {
                if (nr) r->refs = nr;
                status = PL_ENOMEM;
                break;
            }
            r->refs = nr;
            r->nrefs++;
        } else if (replay) {
            if (sq_set_delivery(e, ch->cid, off, user, DLV_QUEUED, 0, now, "replayed")) {
                status = PL_EIO;
                break;
            }
            pl_pub *p = sq_load_one(e, ch, off);
            if (p && sq_grow_result(r, &cap, 1) == 0 && (r->users[r->npubs] = pl_strdup(user))) {
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
    if (status == PL_OK && in_txn && sq_run_done(e->st[SQ_ST_COMMIT]) != PL_OK) status = PL_EIO;
    if (status != PL_OK && in_txn) sq_txn_rollback(e);
    return status;
}

/* Finds the stored pub r->pub_id of r->tenant (a reference in *pub, its
 * cached channel in *ch): by key for ids from seg_pub_id, through pubs_id
 * where the database has that index (ids stored before version 3). */
static int find_pub(sq_engine *e, engine_req *r, sq_chan **ch, pl_pub **pub)
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
            *ch = sq_chan_get(e, r->tenant, (const char *)sqlite3_column_text(st, 0), &status);
            *pub = *ch ? sq_load_one(e, *ch, (uint64_t)sqlite3_column_int64(st, 1)) : NULL;
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
    sq_chan *ch = NULL;
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

/* A webhook delivery out of attempts joins the DLQ (engine.h, ADMIN_DLQ_ADD). */
static int dlq_add(sq_engine *e, engine_req *r, int64_t now)
{
    static const char sql[] =
        "INSERT INTO dlq(tenant, channel, cid, off, user, pub_id, reason, attempts, last_error,"
        " correlation_id, failed_at, kind, ref) VALUES (?1, ?2,"
        " COALESCE((SELECT cid FROM channels WHERE tenant = ?1 AND channel = ?2), 0), ?3, ?4, ?5,"
        " ?6, ?7, ?8, ?9, ?10, 'webhook', ?11)";
    if (!r->channel || !r->user || !r->ref || !r->reason) return PL_EINVAL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(e->db, sql, -1, &st, NULL) != SQLITE_OK) return PL_EIO;
    sqlite3_bind_text(st, 1, r->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->channel, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)r->since_offset);
    sqlite3_bind_text(st, 4, r->user, -1, SQLITE_STATIC);
    sq_bind_str(st, 5, r->pub_id);
    sqlite3_bind_text(st, 6, r->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, r->attempt);
    sq_bind_str(st, 8, r->error);
    sq_bind_str(st, 9, r->correlation);
    sqlite3_bind_int64(st, 10, now);
    sqlite3_bind_text(st, 11, r->ref, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
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
        sq_chan *ch = sq_chan_get(e, (const char *)sqlite3_column_text(st, 0),
                                  (const char *)sqlite3_column_text(st, 1), &status);
        pl_pub *p = ch ? sq_load_one(e, ch, (uint64_t)sqlite3_column_int64(st, 2)) : NULL;
        if (!p) continue;
        if (sq_grow_result(r, &cap, 1) ||
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

int sq_serve_admin(sq_engine *e, engine_req *r, int64_t now)
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
    case ADMIN_DLQ_ADD:
        status = dlq_add(e, r, now);
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
