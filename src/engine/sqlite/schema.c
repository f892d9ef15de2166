/* The database file: its tables (the format is described in sqlite_int.h),
 * the upgrades from older versions, the statements the engine prepares, and
 * opening it all (directory, pragmas, schema, size limit). */
#include "engine/sqlite/sqlite_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util/mem.h"
#include "util/sqlx.h"

#define SQ_SCHEMA_VERSION 5
#define SQ_SCHEMA_VERSION_OLDEST 2 /* still opened, upgraded in place */
/* The lock is held from open to close (files.h): this is how long an open
 * waits for its holder, a server still shutting down, before failing. */
#define SQ_BUSY_TIMEOUT_MS 5000
/* Checkpoint less often than SQLite's 1000 pages: one large batch dirties
 * ~1000 pages, and hot pages rewritten by consecutive batches are copied to
 * the database once per checkpoint instead of once per batch. */
#define SQ_WAL_CHECKPOINT_PAGES 16384

#define STR_(x) #x
#define STR(x) STR_(x)

/* The first offset of the row holding offset ?2 of channel ?1 (?2 itself
 * when no row starts at or before it). */
#define ROW_OF_2                                                                                   \
    "COALESCE((SELECT off FROM pubs WHERE cid = ?1 AND off <= ?2 ORDER BY off DESC LIMIT 1), ?2)"

/* Every statement the engine runs, prepared once at open. */
static const char *const stmt_sql[SQ_ST_COUNT] = {
    [SQ_ST_BEGIN] = "BEGIN IMMEDIATE",
    [SQ_ST_COMMIT] = "COMMIT",
    [SQ_ST_ROLLBACK] = "ROLLBACK",
    [SQ_ST_CHAN_GET] = "SELECT cid, epoch, head, first_off, ttl_ms, next_exp_ms FROM channels"
                       " WHERE tenant = ?1 AND channel = ?2",
    [SQ_ST_CHAN_INS] = "INSERT INTO channels(tenant, channel, epoch, head, first_off, ttl_ms,"
                       " next_exp_ms) VALUES (?1, ?2, ?3, 0, 0, 0, 0)",
    [SQ_ST_CHAN_SET] = "UPDATE channels SET head = ?2, first_off = ?3, ttl_ms = ?4,"
                       " next_exp_ms = ?5 WHERE cid = ?1",
    [SQ_ST_CHAN_DUE] = "SELECT tenant, channel FROM channels"
                       " WHERE next_exp_ms > 0 AND next_exp_ms <= ?1 LIMIT ?2",
    [SQ_ST_PUB_INS] = "INSERT INTO pubs(cid, off, id, ts, cls, data, user, client, type,"
                      " correlation_id, headers, idem_key, n, dbytes, more)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    /* Rows from the one holding offset ?2 (it may start before) to ?3. */
    [SQ_ST_PUB_RANGE] = "SELECT off, id, ts, cls, data, user, client, type, correlation_id,"
                        " headers, idem_key, n, more FROM pubs WHERE cid = ?1 AND off >= " ROW_OF_2
                        " AND off <= ?3 ORDER BY off",
    [SQ_ST_PUB_TS] = "SELECT off, ts FROM pubs WHERE cid = ?1 AND off >= " ROW_OF_2 " ORDER BY off",
    /* A row goes when all of its pubs are below ?2. */
    [SQ_ST_PUB_TRIM] = "DELETE FROM pubs WHERE cid = ?1 AND off < ?2 AND off + n <= ?2",
    [SQ_ST_IDEM_GET] = "SELECT off, id, ts FROM idem WHERE cid = ?1 AND idem_key = ?2",
    [SQ_ST_IDEM_PUT] = "INSERT OR REPLACE INTO idem(cid, idem_key, off, id, ts)"
                       " VALUES (?1, ?2, ?3, ?4, ?5)",
    [SQ_ST_IDEM_EXPIRE] = "DELETE FROM idem WHERE ts < ?1",
    [SQ_ST_CUR_GET] = "SELECT off FROM cursors WHERE cid = ?1 AND user = ?2",
    [SQ_ST_CUR_ALL] =
        "SELECT user, off FROM cursors WHERE cid = ?1 ORDER BY off DESC, user LIMIT ?2",
    [SQ_ST_CUR_SET] = "INSERT INTO cursors(cid, user, off) VALUES (?1, ?2, ?3)"
                      " ON CONFLICT(cid, user) DO UPDATE SET off = excluded.off",
    [SQ_ST_DLV_INS] =
        "INSERT OR IGNORE INTO deliveries(cid, off, user, state, attempts, updated_ms)"
        " VALUES (?1, ?2, ?3, 0, 0, ?4)",
    [SQ_ST_DLV_GET] =
        "SELECT state, attempts FROM deliveries WHERE cid = ?1 AND off = ?2 AND user = ?3",
    [SQ_ST_DLV_SET] = "UPDATE deliveries SET state = ?4, attempts = ?5, updated_ms = ?6"
                      " WHERE cid = ?1 AND off = ?2 AND user = ?3",
    [SQ_ST_DLOG_INS] = "INSERT INTO delivery_log(cid, off, user, state, attempt, ts, error)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [SQ_ST_DLV_UPTO] = "SELECT off, state, attempts FROM deliveries WHERE cid = ?1 AND user = ?2"
                       " AND off <= ?3 AND state <= ?4 ORDER BY off",
    [SQ_ST_DLV_PENDING] = "SELECT off, attempts FROM deliveries WHERE cid = ?1 AND user = ?2"
                          " AND off <= ?3 AND state <= 1 ORDER BY off",
    [SQ_ST_DLQ_INS] = "INSERT INTO dlq(tenant, channel, cid, off, user, pub_id, reason, attempts,"
                      " last_error, correlation_id, failed_at) VALUES (?1, ?2, ?3, ?4, ?5,"
                      " (SELECT id FROM pubs WHERE cid = ?3 AND off = ?4), ?6, ?7, ?8,"
                      " (SELECT correlation_id FROM pubs WHERE cid = ?3 AND off = ?4), ?9)",
    [SQ_ST_EVT_INS] = "INSERT INTO events(cid, off, n) VALUES (?1, ?2, ?3)",
    [SQ_ST_EVT_READ] = "SELECT e.seq, e.cid, e.off, e.n, c.tenant, c.channel FROM events e"
                       " JOIN channels c ON c.cid = e.cid WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
    [SQ_ST_EVT_HEAD] = "SELECT COALESCE(MAX(seq), 0) FROM events",
    [SQ_ST_EVT_TRIM] = "DELETE FROM events WHERE seq <= ?1",
    [SQ_ST_EVT_FLOOR] = "SELECT MIN(off) FROM events WHERE cid = ?1",
};

/* Every table and index, created where missing: on a version 2 database
 * this adds cursors (a new table only). */
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
    " attempts INTEGER NOT NULL, last_error TEXT, correlation_id TEXT, failed_at INTEGER NOT NULL,"
    " kind TEXT, ref TEXT);"
    "CREATE INDEX IF NOT EXISTS dlq_tenant ON dlq(tenant, id);"
    "CREATE TABLE IF NOT EXISTS cursors ("
    " cid INTEGER NOT NULL, user TEXT NOT NULL, off INTEGER NOT NULL,"
    " PRIMARY KEY (cid, user)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, cid INTEGER NOT NULL, off INTEGER NOT NULL,"
    " n INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_cid ON events(cid, off);";

/* Version 5 added webhook deliveries to the DLQ. */
static const char upgrade_to_5_sql[] = "ALTER TABLE dlq ADD COLUMN kind TEXT;"
                                       "ALTER TABLE dlq ADD COLUMN ref TEXT;";

/* Versions 2 and 3 stored one pub per row: rows with n = 1. */
static const char upgrade_to_4_sql[] = "ALTER TABLE pubs ADD COLUMN n INTEGER NOT NULL DEFAULT 1;"
                                       "ALTER TABLE pubs ADD COLUMN dbytes INTEGER;"
                                       "ALTER TABLE pubs ADD COLUMN more BLOB;";

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

/* Opens the database, applies pragmas and schema, prepares statements. */
int sq_open_db(sq_engine *e, char *err, size_t errlen)
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
    sqlite3_busy_timeout(e->db, SQ_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(e->db, 1);

    int64_t version = 0, page_size = 4096, has_n = 0, has_kind = 0, log_head = 0;
    what = "pragmas";
    /* EXCLUSIVE before WAL: the WAL index then lives in heap memory, and the
     * schema transaction below takes the lock for good (files.h). */
    if (sqlx_exec_one(e->db, "PRAGMA locking_mode=EXCLUSIVE", NULL, "exclusive") ||
        sqlx_exec_one(e->db, "PRAGMA journal_mode=WAL", NULL, "wal") ||
        sqlx_exec_one(e->db, "PRAGMA synchronous=FULL", NULL, NULL) ||
        sqlx_exec_one(e->db, "PRAGMA cache_size=-32768", NULL, NULL) ||
        sqlx_exec_one(e->db, "PRAGMA wal_autocheckpoint=" STR(SQ_WAL_CHECKPOINT_PAGES), NULL,
                      NULL) ||
        sqlx_exec_one(e->db, "PRAGMA user_version", &version, NULL) ||
        sqlx_exec_one(e->db, "SELECT count(*) FROM pragma_table_info('pubs') WHERE name = 'n'",
                      &has_n, NULL) ||
        sqlx_exec_one(e->db, "SELECT count(*) FROM pragma_table_info('dlq') WHERE name = 'kind'",
                      &has_kind, NULL))
        goto fail;
    if (version != 0 && (version < SQ_SCHEMA_VERSION_OLDEST || version > SQ_SCHEMA_VERSION)) {
        snprintf(err, errlen, "engine: %s has schema version %lld, this build reads %d", path,
                 (long long)version, SQ_SCHEMA_VERSION);
        pl_free(path);
        return PL_EIO;
    }
    what = "schema";
    /* One transaction: a crash mid-upgrade leaves the old version intact. */
    if (sqlite3_exec(e->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        (version && !has_n && sqlite3_exec(e->db, upgrade_to_4_sql, NULL, NULL, NULL)) ||
        (version && !has_kind && sqlite3_exec(e->db, upgrade_to_5_sql, NULL, NULL, NULL)) ||
        sqlite3_exec(e->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlx_exec_one(e->db, "PRAGMA user_version=" STR(SQ_SCHEMA_VERSION), NULL, NULL) ||
        sqlite3_exec(e->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK ||
        sqlx_exec_one(
            e->db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'pubs_id'",
            &e->id_index, NULL) ||
        sqlx_exec_one(e->db, "SELECT COALESCE(MAX(seq), 0) FROM events", &log_head, NULL))
        goto fail;
    atomic_store(&e->log_head, (uint64_t)log_head);
    if (e->opts.max_db_bytes > 0) {
        what = "max_db_bytes";
        char sql[64];
        if (sqlx_exec_one(e->db, "PRAGMA page_size", &page_size, NULL) || page_size <= 0) goto fail;
        int64_t pages = e->opts.max_db_bytes / page_size;
        snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%lld", (long long)(pages ? pages : 1));
        if (sqlx_exec_one(e->db, sql, NULL, NULL)) goto fail;
    }
    what = "prepare";
    for (int i = 0; i < SQ_ST_COUNT; i++)
        if (sqlite3_prepare_v3(e->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &e->st[i],
                               NULL) != SQLITE_OK)
            goto fail;
    int rc = sq_files_init(&e->files, path); /* takes path */
    if (rc == PL_OK) return PL_OK;
    if (rc == PL_ENOMEM)
        snprintf(err, errlen, "engine: out of memory");
    else
        snprintf(err, errlen, "engine: cannot stat %s: %s", path, strerror(errno));
    sq_files_release(&e->files);
    return rc;
fail:
    snprintf(err, errlen, "engine: %s %s: %s", what, path,
             e->db ? sqlite3_errmsg(e->db) : "out of memory");
    pl_free(path);
    return PL_EIO;
}
