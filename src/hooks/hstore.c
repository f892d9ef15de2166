/* The webhook store (hstore.h) on SQLite: hooks.db in the data directory,
 * one connection used by one owner, every write one fsynced transaction.
 *
 * Format (PRAGMA user_version = 1):
 *   deliveries  one row per delivery, keyed by its id (unique across
 *               tenants); body is the signed envelope as a BLOB. Indexes:
 *               pending ones by creation (start-up load), per endpoint by
 *               creation (recover, counts, kill), per pub (the pub's view),
 *               delivered ones by update time (trim).
 *   attempts    the attempt log, keyed by (delivery, n): n numbers a
 *               delivery's attempts 1, 2, ... across replays, since a replay
 *               restarts `attempt` (the schedule's number, kept beside it) at
 *               1. n is what the API shows as "attempt" and pages by.
 *   positions   each routing rule's sequence number, by (tenant, rule).
 *   specs       endpoints and routes created through the API; seq (an
 *               AUTOINCREMENT key) is the creation order, kept on replace.
 *   health      endpoint_health by (tenant, endpoint). */
#include "hooks/hstore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/mem.h"
#include "util/sqlx.h"
#include "util/status.h"

#define HS_VERSION 1
#define HS_BUSY_TIMEOUT_MS 5000
#define HS_BODY_MAX (4 * 1024) /* response bytes kept per attempt */
#define HS_PUB_LOG_MAX 20      /* attempts shown per delivery of a pub */

#define STR_(x) #x
#define STR(x) STR_(x)

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_POS_LOAD,
    ST_POS_SET,
    ST_POS_DEL,
    ST_DLV_INS,
    ST_DLV_PENDING,
    ST_DLV_GET,
    ST_DLV_STATE,
    ST_DLV_ATTEMPT,
    ST_DLV_REQUEUE,
    ST_DLV_KILL,
    ST_DLV_FAILED,
    ST_DLV_COUNTS,
    ST_DLV_OF_PUB,
    ST_ATT_INS,
    ST_ATT_PAGE,
    ST_SPEC_PUT,
    ST_SPEC_DEL,
    ST_SPEC_LOAD,
    ST_HEALTH_PUT,
    ST_HEALTH_LOAD,
    ST_HEALTH_DEL,
    ST_TRIM_ATT,
    ST_TRIM_DLV,
    ST_COUNT
};

/* The columns read_delivery reads, in its order; body last. */
#define DLV_COLS                                                                                   \
    "id, tenant, endpoint, rule, channel, off, pub_id, correlation_id, okey, state, attempts,"     \
    " next_ms, created_ms, updated_ms, last_status, last_error"
#define DLV_COL_BODY 16

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_POS_LOAD] = "SELECT tenant, rule, seq FROM positions ORDER BY tenant, rule",
    [ST_POS_SET] = "INSERT INTO positions(tenant, rule, seq) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT(tenant, rule) DO UPDATE SET seq = excluded.seq",
    [ST_POS_DEL] = "DELETE FROM positions WHERE tenant = ?1 AND rule = ?2",
    /* ON CONFLICT(id) and not OR IGNORE: only a known id is skipped, a
     * missing required value still fails. */
    [ST_DLV_INS] = "INSERT INTO deliveries(" DLV_COLS ", body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
                   " ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) ON CONFLICT(id) DO NOTHING",
    [ST_DLV_PENDING] = "SELECT " DLV_COLS ", body FROM deliveries WHERE state = 0"
                       " ORDER BY created_ms, id",
    [ST_DLV_GET] = "SELECT " DLV_COLS ", body FROM deliveries WHERE tenant = ?1 AND id = ?2",
    [ST_DLV_STATE] = "SELECT state FROM deliveries WHERE tenant = ?1 AND id = ?2",
    [ST_DLV_ATTEMPT] = "UPDATE deliveries SET state = ?2, attempts = ?3, next_ms = ?4,"
                       " updated_ms = ?5, last_status = ?6, last_error = ?7 WHERE id = ?1",
    [ST_DLV_REQUEUE] = "UPDATE deliveries SET state = 0, attempts = 0, next_ms = ?3"
                       " WHERE tenant = ?1 AND id = ?2",
    [ST_DLV_KILL] = "UPDATE deliveries SET state = 2, last_error = ?3, updated_ms = ?4"
                    " WHERE tenant = ?1 AND endpoint = ?2 AND state = 0",
    [ST_DLV_FAILED] = "SELECT " DLV_COLS " FROM deliveries WHERE tenant = ?1 AND endpoint = ?2"
                      " AND created_ms >= ?3 AND (?4 = 0 OR created_ms < ?4) AND state IN (2, 3)"
                      " ORDER BY created_ms, id LIMIT ?5",
    [ST_DLV_COUNTS] = "SELECT state, count(*) FROM deliveries WHERE tenant = ?1 AND endpoint = ?2"
                      " GROUP BY state",
    [ST_DLV_OF_PUB] = "SELECT id, endpoint, rule, state, attempts, last_status, last_error"
                      " FROM deliveries WHERE tenant = ?1 AND pub_id = ?2 ORDER BY created_ms, id",
    [ST_ATT_INS] = "INSERT INTO attempts(delivery, n, attempt, ts, status, latency_us, headers,"
                   " body, error) VALUES (?1, (SELECT COALESCE(MAX(n), 0) + 1 FROM attempts"
                   " WHERE delivery = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_ATT_PAGE] = "SELECT n, ts, status, latency_us, headers, body, error FROM attempts"
                    " WHERE delivery = ?1 AND n > ?2 ORDER BY n LIMIT ?3",
    [ST_SPEC_PUT] = "INSERT INTO specs(kind, tenant, id, spec) VALUES (?1, ?2, ?3, ?4)"
                    " ON CONFLICT(kind, tenant, id) DO UPDATE SET spec = excluded.spec",
    [ST_SPEC_DEL] = "DELETE FROM specs WHERE kind = ?1 AND tenant = ?2 AND id = ?3",
    [ST_SPEC_LOAD] = "SELECT tenant, id, spec FROM specs WHERE kind = ?1 ORDER BY seq",
    [ST_HEALTH_PUT] = "INSERT OR REPLACE INTO health(tenant, endpoint, state, failing_since,"
                      " disable_at, last_success, last_failure, first_seen, warned_24h,"
                      " warned_72h, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_HEALTH_LOAD] = "SELECT tenant, endpoint, state, failing_since, disable_at, last_success,"
                       " last_failure, first_seen, warned_24h, warned_72h, reason FROM health"
                       " ORDER BY tenant, endpoint",
    [ST_HEALTH_DEL] = "DELETE FROM health WHERE tenant = ?1 AND endpoint = ?2",
    [ST_TRIM_ATT] = "DELETE FROM attempts WHERE delivery IN (SELECT id FROM deliveries"
                    " WHERE state = 1 AND updated_ms < ?1)",
    [ST_TRIM_DLV] = "DELETE FROM deliveries WHERE state = 1 AND updated_ms < ?1",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS deliveries ("
    " id TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL, endpoint TEXT NOT NULL, rule TEXT,"
    " channel TEXT NOT NULL, off INTEGER NOT NULL, pub_id TEXT NOT NULL, correlation_id TEXT,"
    " okey TEXT, state INTEGER NOT NULL, attempts INTEGER NOT NULL, next_ms INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, last_status INTEGER NOT NULL,"
    " last_error TEXT, body BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(created_ms, id)"
    " WHERE state = 0;"
    "CREATE INDEX IF NOT EXISTS deliveries_endpoint ON deliveries(tenant, endpoint, created_ms);"
    "CREATE INDEX IF NOT EXISTS deliveries_pub ON deliveries(tenant, pub_id);"
    "CREATE INDEX IF NOT EXISTS deliveries_done ON deliveries(updated_ms) WHERE state = 1;"
    "CREATE TABLE IF NOT EXISTS attempts ("
    " delivery TEXT NOT NULL, n INTEGER NOT NULL, attempt INTEGER NOT NULL, ts INTEGER NOT NULL,"
    " status INTEGER NOT NULL, latency_us INTEGER NOT NULL, headers TEXT, body BLOB, error TEXT,"
    " PRIMARY KEY (delivery, n)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS positions ("
    " tenant TEXT NOT NULL, rule TEXT NOT NULL, seq INTEGER NOT NULL,"
    " PRIMARY KEY (tenant, rule)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS specs ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL, tenant TEXT NOT NULL,"
    " id TEXT NOT NULL, spec TEXT NOT NULL, UNIQUE (kind, tenant, id));"
    "CREATE TABLE IF NOT EXISTS health ("
    " tenant TEXT NOT NULL, endpoint TEXT NOT NULL, state INTEGER NOT NULL,"
    " failing_since INTEGER NOT NULL, disable_at INTEGER NOT NULL,"
    " last_success INTEGER NOT NULL, last_failure INTEGER NOT NULL,"
    " first_seen INTEGER NOT NULL, warned_24h INTEGER NOT NULL, warned_72h INTEGER NOT NULL,"
    " reason TEXT NOT NULL, PRIMARY KEY (tenant, endpoint)) WITHOUT ROWID;";

struct hstore {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
};

const char *hstore_state_name(int state)
{
    switch (state) {
    case HSTORE_PENDING:
        return "pending";
    case HSTORE_DELIVERED:
        return "delivered";
    case HSTORE_DEAD:
        return "dead";
    case HSTORE_ABORTED:
        return "aborted";
    default:
        return "?";
    }
}

/* ---- statements and transactions ------------------------------------------ */

/* A prepared statement, ready for binding. */
static sqlite3_stmt *stmt(hstore *s, int id)
{
    sqlite3_stmt *st = s->st[id];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

/* Resets st so that it holds no read snapshot between calls (an open one
 * would stop WAL checkpoints) and returns rc. */
static int done(sqlite3_stmt *st, int rc)
{
    sqlite3_reset(st);
    return rc;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* "" is no error, stored as NULL like a missing one. */
static void bind_error(sqlite3_stmt *st, int i, const char *v)
{
    bind_text(st, i, v && *v ? v : NULL);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

/* Steps a statement that returns no row: PL_OK or PL_EIO. Leaves it reset. */
static int run(sqlite3_stmt *st)
{
    return done(st, sqlite3_step(st) == SQLITE_DONE ? PL_OK : PL_EIO);
}

static int tx_begin(hstore *s)
{
    return run(stmt(s, ST_BEGIN));
}

/* Commits when rc is PL_OK, otherwise (or when the commit fails) rolls
 * back; returns rc, or PL_EIO for a failed commit. */
static int tx_end(hstore *s, int rc)
{
    if (rc == PL_OK && run(stmt(s, ST_COMMIT)) == PL_OK) return PL_OK;
    /* A failed COMMIT may leave the transaction open; a rolled back one
     * makes this ROLLBACK fail harmlessly. */
    run(stmt(s, ST_ROLLBACK));
    return rc == PL_OK ? PL_EIO : rc;
}

/* ---- opening ---------------------------------------------------------------- */

/* Creates the file 0600 before SQLite opens it (SQLite would use 0644 less
 * the umask, and the WAL files copy the database file's mode). */
static int create_private(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return PL_EIO;
    int rc = fchmod(fd, 0600) == 0 ? PL_OK : PL_EIO;
    close(fd);
    return rc;
}

/* Pragmas, version check, schema, statements. */
static int setup_db(hstore *s, const char *path, char *err, size_t errlen)
{
    const char *what = "pragmas";
    int64_t version = 0;
    sqlite3_busy_timeout(s->db, HS_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(s->db, 1);
    if (sqlx_exec_one(s->db, "PRAGMA journal_mode=WAL", NULL, "wal") ||
        sqlx_exec_one(s->db, "PRAGMA synchronous=FULL", NULL, NULL) ||
        sqlx_exec_one(s->db, "PRAGMA user_version", &version, NULL))
        goto fail;
    if (version > HS_VERSION) {
        snprintf(err, errlen, "hooks: %s has schema version %" PRId64 ", this build reads %d", path,
                 version, HS_VERSION);
        return PL_EIO;
    }
    what = "schema";
    /* One transaction: a failure leaves no half-made schema behind. */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) goto fail;
    if (sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlx_exec_one(s->db, "PRAGMA user_version=" STR(HS_VERSION), NULL, NULL) ||
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "hooks: schema %s: %s", path, sqlite3_errmsg(s->db));
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return PL_EIO;
    }
    what = "prepare";
    for (int i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                               NULL) != SQLITE_OK)
            goto fail;
    return PL_OK;
fail:
    snprintf(err, errlen, "hooks: %s %s: %s", what, path, sqlite3_errmsg(s->db));
    return PL_EIO;
}

int hstore_open(const char *data_dir, hstore **out, char *err, size_t errlen)
{
    static const char name[] = "/hooks.db";
    size_t dl = strlen(data_dir);
    int rc = PL_ENOMEM;
    hstore *s = pl_calloc(1, sizeof(*s));
    char *path = pl_malloc(dl + sizeof(name));
    if (!s || !path) {
        snprintf(err, errlen, "hooks: out of memory");
        goto out;
    }
    memcpy(path, data_dir, dl);
    memcpy(path + dl, name, sizeof(name));
    rc = PL_EIO;
    if (create_private(path) != PL_OK) {
        snprintf(err, errlen, "hooks: cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    /* NOMUTEX: the owner serializes every call (hstore.h). */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "hooks: open %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto out;
    }
    rc = setup_db(s, path, err, errlen);
out:
    pl_free(path);
    if (rc != PL_OK) {
        hstore_close(s);
        s = NULL;
    }
    *out = s;
    return rc;
}

void hstore_close(hstore *s)
{
    if (!s) return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    pl_free(s);
}

/* ---- positions and new deliveries ---------------------------------------- */

int hstore_positions_load(hstore *s, int (*fn)(void *ctx, const hstore_position *p), void *ctx)
{
    sqlite3_stmt *st = stmt(s, ST_POS_LOAD);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        hstore_position p = {.tenant = col_text(st, 0),
                             .rule = col_text(st, 1),
                             .seq = (uint64_t)sqlite3_column_int64(st, 2)};
        int r = fn(ctx, &p);
        if (r) return done(st, r);
    }
    return done(st, rc == SQLITE_DONE ? PL_OK : PL_EIO);
}

/* Inserts d unless its id is stored; *inserted says which. */
static int insert_delivery(hstore *s, const hstore_delivery *d, int *inserted)
{
    sqlite3_stmt *st = stmt(s, ST_DLV_INS);
    bind_text(st, 1, d->id);
    bind_text(st, 2, d->tenant);
    bind_text(st, 3, d->endpoint);
    bind_text(st, 4, d->rule);
    bind_text(st, 5, d->channel);
    sqlite3_bind_int64(st, 6, (int64_t)d->offset);
    bind_text(st, 7, d->pub_id);
    bind_text(st, 8, d->correlation_id);
    bind_text(st, 9, d->okey);
    sqlite3_bind_int(st, 10, d->state);
    sqlite3_bind_int64(st, 11, d->attempts);
    sqlite3_bind_int64(st, 12, d->next_ms);
    sqlite3_bind_int64(st, 13, d->created_ms);
    sqlite3_bind_int64(st, 14, d->updated_ms);
    sqlite3_bind_int(st, 15, d->last_status);
    bind_error(st, 16, d->last_error);
    /* Never NULL: an empty body is an empty blob. */
    sqlite3_bind_blob64(st, 17, d->body ? d->body : "", d->body ? d->body_len : 0, SQLITE_STATIC);
    if (run(st) != PL_OK) return PL_EIO;
    *inserted = sqlite3_changes(s->db) > 0;
    return PL_OK;
}

static int set_position(hstore *s, const hstore_position *p)
{
    sqlite3_stmt *st = stmt(s, ST_POS_SET);
    bind_text(st, 1, p->tenant);
    bind_text(st, 2, p->rule);
    sqlite3_bind_int64(st, 3, (int64_t)p->seq);
    return run(st);
}

static int apply_attempt(hstore *s, const hstore_attempt *a);

int hstore_route_commit(hstore *s, const hstore_delivery *d, size_t n, int *inserted,
                        const hstore_position *pos, size_t npos)
{
    return hstore_route_commit_with(s, NULL, 0, d, n, inserted, pos, npos);
}

int hstore_route_commit_with(hstore *s, const hstore_attempt *a, size_t na,
                             const hstore_delivery *d, size_t n, int *inserted,
                             const hstore_position *pos, size_t npos)
{
    int rc = tx_begin(s);
    if (rc != PL_OK) return rc;
    for (size_t i = 0; i < na && rc == PL_OK; i++)
        rc = apply_attempt(s, &a[i]);
    for (size_t i = 0; i < n && rc == PL_OK; i++) {
        int ins = 0;
        rc = insert_delivery(s, &d[i], &ins);
        if (inserted) inserted[i] = ins;
    }
    for (size_t i = 0; i < npos && rc == PL_OK; i++)
        rc = set_position(s, &pos[i]);
    return tx_end(s, rc);
}

/* Runs a one-statement write (bound by the caller) as its own transaction;
 * *changes (when given) gets the rows it changed. */
static int write_one(hstore *s, sqlite3_stmt *st, uint64_t *changes)
{
    /* The caller bound st before this BEGIN: stmt() resets only the
     * statement it hands out, so the bindings stay. */
    if (tx_begin(s) != PL_OK) return done(st, PL_EIO);
    int rc = run(st);
    if (rc == PL_OK && changes) *changes = (uint64_t)sqlite3_changes(s->db);
    return tx_end(s, rc);
}

int hstore_position_delete(hstore *s, const char *tenant, const char *rule)
{
    sqlite3_stmt *st = stmt(s, ST_POS_DEL);
    bind_text(st, 1, tenant);
    bind_text(st, 2, rule);
    return write_one(s, st, NULL);
}

/* ---- delivery progress --------------------------------------------------- */

/* The row at st (DLV_COLS, then body when with_body) as a delivery. */
static void read_delivery(sqlite3_stmt *st, int with_body, hstore_delivery *d)
{
    memset(d, 0, sizeof(*d));
    d->id = col_text(st, 0);
    d->tenant = col_text(st, 1);
    d->endpoint = col_text(st, 2);
    d->rule = col_text(st, 3);
    d->channel = col_text(st, 4);
    d->offset = (uint64_t)sqlite3_column_int64(st, 5);
    d->pub_id = col_text(st, 6);
    d->correlation_id = col_text(st, 7);
    d->okey = col_text(st, 8);
    d->state = sqlite3_column_int(st, 9);
    d->attempts = (uint32_t)sqlite3_column_int64(st, 10);
    d->next_ms = sqlite3_column_int64(st, 11);
    d->created_ms = sqlite3_column_int64(st, 12);
    d->updated_ms = sqlite3_column_int64(st, 13);
    d->last_status = sqlite3_column_int(st, 14);
    d->last_error = col_text(st, 15);
    if (!with_body) return;
    d->body = sqlite3_column_blob(st, DLV_COL_BODY);
    d->body_len = (size_t)sqlite3_column_bytes(st, DLV_COL_BODY);
    if (!d->body) d->body = ""; /* an empty blob reads as NULL */
}

/* Calls fn for each row of a bound delivery query. *rows (when given)
 * counts them. */
static int each_delivery(sqlite3_stmt *st, int with_body, size_t *rows,
                         int (*fn)(void *ctx, const hstore_delivery *d), void *ctx)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        hstore_delivery d;
        read_delivery(st, with_body, &d);
        if (rows) ++*rows;
        int r = fn(ctx, &d);
        if (r) return done(st, r);
    }
    return done(st, rc == SQLITE_DONE ? PL_OK : PL_EIO);
}

int hstore_pending_load(hstore *s, int (*fn)(void *ctx, const hstore_delivery *d), void *ctx)
{
    return each_delivery(stmt(s, ST_DLV_PENDING), 1, NULL, fn, ctx);
}

/* Moves a's delivery to its state and logs the attempt. A delivery that is
 * not stored (trimmed meanwhile) gets no orphan log row. */
static int apply_attempt(hstore *s, const hstore_attempt *a)
{
    sqlite3_stmt *st = stmt(s, ST_DLV_ATTEMPT);
    bind_text(st, 1, a->delivery);
    sqlite3_bind_int(st, 2, a->state);
    sqlite3_bind_int64(st, 3, a->attempt);
    sqlite3_bind_int64(st, 4, a->next_ms);
    sqlite3_bind_int64(st, 5, a->ts_ms);
    sqlite3_bind_int(st, 6, a->status);
    bind_error(st, 7, a->error);
    if (run(st) != PL_OK) return PL_EIO;
    if (sqlite3_changes(s->db) == 0) return PL_OK;
    st = stmt(s, ST_ATT_INS);
    bind_text(st, 1, a->delivery);
    sqlite3_bind_int64(st, 2, a->attempt);
    sqlite3_bind_int64(st, 3, a->ts_ms);
    sqlite3_bind_int(st, 4, a->status);
    sqlite3_bind_int64(st, 5, a->latency_us);
    bind_text(st, 6, a->headers);
    if (a->body)
        sqlite3_bind_blob64(st, 7, a->body, a->body_len < HS_BODY_MAX ? a->body_len : HS_BODY_MAX,
                            SQLITE_STATIC);
    bind_error(st, 8, a->error);
    return run(st);
}

int hstore_attempts_commit(hstore *s, const hstore_attempt *a, size_t n)
{
    int rc = tx_begin(s);
    if (rc != PL_OK) return rc;
    for (size_t i = 0; i < n && rc == PL_OK; i++)
        rc = apply_attempt(s, &a[i]);
    return tx_end(s, rc);
}

int hstore_delivery_get(hstore *s, const char *tenant, const char *id,
                        int (*fn)(void *ctx, const hstore_delivery *d), void *ctx)
{
    sqlite3_stmt *st = stmt(s, ST_DLV_GET);
    bind_text(st, 1, tenant);
    bind_text(st, 2, id);
    size_t rows = 0;
    int rc = each_delivery(st, 1, &rows, fn, ctx);
    return rc == PL_OK && rows == 0 ? PL_ENOTFOUND : rc;
}

/* The state of the tenant's delivery id in *state: PL_OK, PL_ENOTFOUND or
 * PL_EIO. */
static int delivery_state(hstore *s, const char *tenant, const char *id, int *state)
{
    sqlite3_stmt *st = stmt(s, ST_DLV_STATE);
    bind_text(st, 1, tenant);
    bind_text(st, 2, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *state = sqlite3_column_int(st, 0);
    return done(st, rc == SQLITE_ROW ? PL_OK : rc == SQLITE_DONE ? PL_ENOTFOUND : PL_EIO);
}

int hstore_delivery_requeue(hstore *s, const char *tenant, const char *id, int64_t next_ms)
{
    int rc = tx_begin(s);
    if (rc != PL_OK) return rc;
    int state = 0;
    rc = delivery_state(s, tenant, id, &state);
    if (rc == PL_OK && state != HSTORE_DEAD && state != HSTORE_ABORTED) rc = PL_ECONFLICT;
    if (rc == PL_OK) {
        sqlite3_stmt *st = stmt(s, ST_DLV_REQUEUE);
        bind_text(st, 1, tenant);
        bind_text(st, 2, id);
        sqlite3_bind_int64(st, 3, next_ms);
        rc = run(st);
    }
    return tx_end(s, rc);
}

int hstore_endpoint_kill(hstore *s, const char *tenant, const char *endpoint, const char *why,
                         int64_t now_ms, uint64_t *count)
{
    sqlite3_stmt *st = stmt(s, ST_DLV_KILL);
    bind_text(st, 1, tenant);
    bind_text(st, 2, endpoint);
    bind_error(st, 3, why);
    sqlite3_bind_int64(st, 4, now_ms);
    uint64_t n = 0;
    int rc = write_one(s, st, &n);
    if (count) *count = rc == PL_OK ? n : 0;
    return rc;
}

/* ---- queries (JSON answers for the API) ---------------------------------- */

/* Appends s as a JSON string, or null. */
static void put_str_or_null(sbuf *b, const char *v, size_t n)
{
    if (v)
        sbuf_json_str_lossy(b, v, n);
    else
        sbuf_puts(b, "null");
}

/* Appends the attempt at st (ST_ATT_PAGE's columns) as a JSON object. */
static void put_attempt(sbuf *b, sqlite3_stmt *st)
{
    sbuf_puts(b, "{\"attempt\":");
    sbuf_i64(b, sqlite3_column_int64(st, 0));
    sbuf_puts(b, ",\"ts\":");
    sbuf_i64(b, sqlite3_column_int64(st, 1));
    sbuf_puts(b, ",\"status\":");
    sbuf_i64(b, sqlite3_column_int64(st, 2));
    sbuf_printf(b, ",\"latency_ms\":%.3f", (double)sqlite3_column_int64(st, 3) / 1000.0);
    /* Already a JSON object, made by the sender from the response. */
    const char *headers = col_text(st, 4);
    sbuf_puts(b, ",\"headers\":");
    sbuf_puts(b, headers ? headers : "null");
    sbuf_puts(b, ",\"body\":");
    const char *body = sqlite3_column_blob(st, 5);
    size_t body_len = (size_t)sqlite3_column_bytes(st, 5);
    if (!body && sqlite3_column_type(st, 5) != SQLITE_NULL) body = ""; /* empty blob */
    put_str_or_null(b, body, body_len);
    sbuf_puts(b, ",\"error\":");
    const char *error = col_text(st, 6);
    put_str_or_null(b, error, error ? strlen(error) : 0);
    sbuf_putc(b, '}');
}

/* Appends the JSON array of a delivery's attempts after `after`, at most
 * limit; *more says whether others follow. */
static int put_attempts(hstore *s, const char *delivery, uint32_t after, uint32_t limit, sbuf *out,
                        int *more)
{
    sqlite3_stmt *st = stmt(s, ST_ATT_PAGE);
    bind_text(st, 1, delivery);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, (int64_t)limit + 1); /* one more tells whether there are more */
    sbuf_putc(out, '[');
    uint32_t rows = 0;
    int rc;
    *more = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (rows == limit) {
            *more = 1;
            rc = SQLITE_DONE;
            break;
        }
        if (rows++) sbuf_putc(out, ',');
        put_attempt(out, st);
    }
    sbuf_putc(out, ']');
    return done(st, rc == SQLITE_DONE ? PL_OK : PL_EIO);
}

/* The end of a JSON answer: PL_ENOMEM when out ran out of memory. */
static int json_end(const sbuf *out, int rc)
{
    return rc == PL_OK && out->oom ? PL_ENOMEM : rc;
}

int hstore_attempts_json(hstore *s, const char *tenant, const char *delivery, uint32_t after,
                         uint32_t limit, sbuf *out)
{
    int state, more = 0;
    int rc = delivery_state(s, tenant, delivery, &state);
    if (rc != PL_OK) return rc;
    sbuf_puts(out, "{\"attempts\":");
    rc = put_attempts(s, delivery, after, limit, out, &more);
    sbuf_puts(out, more ? ",\"more\":true}" : ",\"more\":false}");
    return json_end(out, rc);
}

/* Appends the delivery at st (ST_DLV_OF_PUB's columns) with its first
 * attempts. */
static int put_pub_delivery(hstore *s, sqlite3_stmt *st, sbuf *out)
{
    const char *id = col_text(st, 0), *rule = col_text(st, 2), *err = col_text(st, 6);
    sbuf_puts(out, "{\"id\":");
    sbuf_json_str_lossy(out, id, strlen(id));
    sbuf_puts(out, ",\"endpoint\":");
    sbuf_json_str_lossy(out, col_text(st, 1), (size_t)sqlite3_column_bytes(st, 1));
    sbuf_puts(out, ",\"rule\":");
    put_str_or_null(out, rule, rule ? strlen(rule) : 0);
    sbuf_puts(out, ",\"state\":");
    const char *state = hstore_state_name(sqlite3_column_int(st, 3));
    sbuf_json_str(out, state, strlen(state));
    sbuf_puts(out, ",\"attempts\":");
    sbuf_i64(out, sqlite3_column_int64(st, 4));
    sbuf_puts(out, ",\"last_status\":");
    sbuf_i64(out, sqlite3_column_int64(st, 5));
    sbuf_puts(out, ",\"last_error\":");
    put_str_or_null(out, err, err ? strlen(err) : 0);
    sbuf_puts(out, ",\"attempt_log\":");
    int more;
    int rc = put_attempts(s, id, 0, HS_PUB_LOG_MAX, out, &more);
    sbuf_putc(out, '}');
    return rc;
}

int hstore_pub_deliveries_json(hstore *s, const char *tenant, const char *pub_id, sbuf *out)
{
    sqlite3_stmt *st = stmt(s, ST_DLV_OF_PUB);
    bind_text(st, 1, tenant);
    bind_text(st, 2, pub_id);
    sbuf_putc(out, '[');
    int rc = SQLITE_DONE, n = 0, r = PL_OK;
    while (r == PL_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n++) sbuf_putc(out, ',');
        r = put_pub_delivery(s, st, out);
    }
    sbuf_putc(out, ']');
    if (r == PL_OK && rc != SQLITE_DONE) r = PL_EIO;
    return json_end(out, done(st, r));
}

int hstore_failed_in_window(hstore *s, const char *tenant, const char *endpoint, int64_t since_ms,
                            int64_t until_ms, size_t limit,
                            int (*fn)(void *ctx, const hstore_delivery *d), void *ctx)
{
    sqlite3_stmt *st = stmt(s, ST_DLV_FAILED);
    bind_text(st, 1, tenant);
    bind_text(st, 2, endpoint);
    sqlite3_bind_int64(st, 3, since_ms);
    sqlite3_bind_int64(st, 4, until_ms);
    sqlite3_bind_int64(st, 5, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    return each_delivery(st, 0, NULL, fn, ctx);
}

int hstore_endpoint_counts(hstore *s, const char *tenant, const char *endpoint, uint64_t out[4])
{
    sqlite3_stmt *st = stmt(s, ST_DLV_COUNTS);
    bind_text(st, 1, tenant);
    bind_text(st, 2, endpoint);
    memset(out, 0, 4 * sizeof(out[0]));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int state = sqlite3_column_int(st, 0);
        if (state >= HSTORE_PENDING && state <= HSTORE_ABORTED)
            out[state] = (uint64_t)sqlite3_column_int64(st, 1);
    }
    return done(st, rc == SQLITE_DONE ? PL_OK : PL_EIO);
}

/* ---- endpoints and routes created through the API ------------------------ */

int hstore_spec_put(hstore *s, int kind, const char *tenant, const char *id, const char *spec)
{
    sqlite3_stmt *st = stmt(s, ST_SPEC_PUT);
    sqlite3_bind_int(st, 1, kind);
    bind_text(st, 2, tenant);
    bind_text(st, 3, id);
    bind_text(st, 4, spec);
    return write_one(s, st, NULL);
}

int hstore_spec_delete(hstore *s, int kind, const char *tenant, const char *id)
{
    sqlite3_stmt *st = stmt(s, ST_SPEC_DEL);
    sqlite3_bind_int(st, 1, kind);
    bind_text(st, 2, tenant);
    bind_text(st, 3, id);
    uint64_t n = 0;
    int rc = write_one(s, st, &n);
    return rc == PL_OK && n == 0 ? PL_ENOTFOUND : rc;
}

int hstore_spec_load(hstore *s, int kind,
                     int (*fn)(void *ctx, const char *tenant, const char *id, const char *spec),
                     void *ctx)
{
    sqlite3_stmt *st = stmt(s, ST_SPEC_LOAD);
    sqlite3_bind_int(st, 1, kind);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int r = fn(ctx, col_text(st, 0), col_text(st, 1), col_text(st, 2));
        if (r) return done(st, r);
    }
    return done(st, rc == SQLITE_DONE ? PL_OK : PL_EIO);
}

/* ---- endpoint health ------------------------------------------------------ */

int hstore_health_put(hstore *s, const char *tenant, const char *endpoint, const endpoint_health *h)
{
    sqlite3_stmt *st = stmt(s, ST_HEALTH_PUT);
    bind_text(st, 1, tenant);
    bind_text(st, 2, endpoint);
    sqlite3_bind_int(st, 3, (int)h->state);
    sqlite3_bind_int64(st, 4, h->failing_since);
    sqlite3_bind_int64(st, 5, h->disable_at);
    sqlite3_bind_int64(st, 6, h->last_success);
    sqlite3_bind_int64(st, 7, h->last_failure);
    sqlite3_bind_int64(st, 8, h->first_seen);
    sqlite3_bind_int(st, 9, h->warned_24h);
    sqlite3_bind_int(st, 10, h->warned_72h);
    sqlite3_bind_text(st, 11, h->reason, (int)strnlen(h->reason, sizeof(h->reason)), SQLITE_STATIC);
    return write_one(s, st, NULL);
}

/* The health row at st (ST_HEALTH_LOAD's columns). */
static void read_health(sqlite3_stmt *st, endpoint_health *h)
{
    memset(h, 0, sizeof(*h));
    int state = sqlite3_column_int(st, 2);
    h->state = state == HEALTH_FAILING    ? HEALTH_FAILING
               : state == HEALTH_DISABLED ? HEALTH_DISABLED
                                          : HEALTH_HEALTHY;
    h->failing_since = sqlite3_column_int64(st, 3);
    h->disable_at = sqlite3_column_int64(st, 4);
    h->last_success = sqlite3_column_int64(st, 5);
    h->last_failure = sqlite3_column_int64(st, 6);
    h->first_seen = sqlite3_column_int64(st, 7);
    h->warned_24h = sqlite3_column_int(st, 8) != 0;
    h->warned_72h = sqlite3_column_int(st, 9) != 0;
    const char *reason = col_text(st, 10);
    if (reason) snprintf(h->reason, sizeof(h->reason), "%s", reason);
}

int hstore_health_load(hstore *s,
                       int (*fn)(void *ctx, const char *tenant, const char *endpoint,
                                 const endpoint_health *h),
                       void *ctx)
{
    sqlite3_stmt *st = stmt(s, ST_HEALTH_LOAD);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        endpoint_health h;
        read_health(st, &h);
        int r = fn(ctx, col_text(st, 0), col_text(st, 1), &h);
        if (r) return done(st, r);
    }
    return done(st, rc == SQLITE_DONE ? PL_OK : PL_EIO);
}

int hstore_health_delete(hstore *s, const char *tenant, const char *endpoint)
{
    sqlite3_stmt *st = stmt(s, ST_HEALTH_DEL);
    bind_text(st, 1, tenant);
    bind_text(st, 2, endpoint);
    return write_one(s, st, NULL);
}

/* ---- housekeeping ---------------------------------------------------------- */

int hstore_trim(hstore *s, int64_t before_ms, uint64_t *count)
{
    int rc = tx_begin(s);
    if (rc != PL_OK) return rc;
    sqlite3_stmt *st = stmt(s, ST_TRIM_ATT);
    sqlite3_bind_int64(st, 1, before_ms);
    rc = run(st);
    uint64_t n = 0;
    if (rc == PL_OK) {
        st = stmt(s, ST_TRIM_DLV);
        sqlite3_bind_int64(st, 1, before_ms);
        rc = run(st);
        n = (uint64_t)sqlite3_changes(s->db);
    }
    rc = tx_end(s, rc);
    if (count) *count = rc == PL_OK ? n : 0;
    return rc;
}
