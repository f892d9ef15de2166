/* Small SQLite helpers shared by the two databases Parley keeps (the
 * engine's parley.db and the webhook store's hooks.db). */
#ifndef PL_SQLX_H
#define PL_SQLX_H

#include <sqlite3.h>
#include <stdint.h>

/* Runs one statement; stores the first column of its first row in *out
 * (integer) or checks it equals want (text) when those are given (NULL:
 * not asked). PL_OK, or PL_EIO when it fails or the text differs. */
int sqlx_exec_one(sqlite3 *db, const char *sql, int64_t *out, const char *want);

#endif
