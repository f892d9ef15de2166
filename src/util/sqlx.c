/* Small SQLite helpers; see sqlx.h. */
#include "util/sqlx.h"

#include <string.h>

#include "util/status.h"

int sqlx_exec_one(sqlite3 *db, const char *sql, int64_t *out, const char *want)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return PL_EIO;
    int rc = sqlite3_step(st);
    int ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    if (rc == SQLITE_ROW && out) *out = sqlite3_column_int64(st, 0);
    if (want) {
        const char *got = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        ok = got && !strcmp(got, want);
    }
    sqlite3_finalize(st);
    return ok ? PL_OK : PL_EIO;
}
