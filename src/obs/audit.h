/* Append-only, hash-chained audit log of administrative actions: one JSON
 * object per line, written with one write() and fdatasync'd before
 * audit_append returns. The chain makes edits, deletions, insertions,
 * reorderings and torn lines detectable by `parley audit verify FILE`.
 *
 * On-disk format (the member order is fixed; nothing else may appear):
 *
 *   {"seq":N,"ts":MS,"actor":S,"action":S,"tenant":S,"target":S,
 *    "correlation_id":S,"details":{...},"prev":H,"hash":H}\n
 *
 *   seq   1, 2, 3, ... with no gaps
 *   ts    unix milliseconds
 *   prev  hex SHA-256 of the previous line's bytes (without its newline);
 *         64 zeros for the first record
 *   hash  hex SHA-256 of the record's content: the line's bytes before
 *         the ,"hash": member (so it covers prev, and through it the chain)
 *
 * The chain holds no secret: it detects tampering that did not rewrite every
 * later line, and cannot see the last records cut off whole. Anchor the
 * last hash elsewhere (logs, metrics) where that matters. */
#ifndef PL_AUDIT_H
#define PL_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "util/sbuf.h"

#define AUDIT_MAX_LINE (1u << 20)     /* longer lines are corrupt by definition */
#define AUDIT_MAX_FIELD 4096          /* actor, action, tenant, target, correlation_id */
#define AUDIT_MAX_DETAILS (64u << 10) /* details JSON text */

/* One action to record. Strings are borrowed for the call; NULL means "".
 * Invalid UTF-8 is recorded with U+FFFD in place of the bad bytes. */
typedef struct audit_event {
    int64_t ts_ms;      /* 0 = now */
    const char *actor;  /* "admin", "key:<id>", ... */
    const char *action; /* "tenants.create", "keys.revoke", "dlq.purge", ... */
    const char *tenant;
    const char *target; /* what was acted on: a key id, a user, ... */
    const char *correlation_id;
    const char *details; /* JSON object text, re-serialized compactly; NULL = {} */
    size_t details_len;
} audit_event;

/* Where a file first goes wrong. On success `records` is the record count
 * and the rest is zero. */
typedef struct audit_report {
    uint64_t records;  /* good records before the first bad one */
    uint64_t bad_seq;  /* seq written on the bad record, or the one expected there */
    uint64_t bad_line; /* 1-based; 0 when the file could not be read at all */
    char why[200];
} audit_report;

typedef struct audit_log audit_log;

/* Opens (creating, mode 0600) the log at path for appending, after checking
 * the whole chain and taking an exclusive flock so no second process appends.
 * Returns the log, or NULL with r (optional) saying why: I/O error, locked,
 * or the first broken record - appending to a broken chain would bury the
 * evidence, so an operator must look at it first. Caller closes with
 * audit_close. */
audit_log *audit_open(const char *path, audit_report *r);
/* Appends one record and fdatasyncs it; safe from any thread. Returns 0 and
 * the record's seq in seq_out (optional); PL_EINVAL for details that are not
 * a JSON object or over-long fields; PL_ENOMEM; or PL_EIO when writing or
 * syncing failed (a partial line is cut off again; if even that fails, the
 * log refuses every later append). An action that cannot be audited should
 * not be carried out. */
int audit_append(audit_log *log, const audit_event *ev, uint64_t *seq_out);
/* Number of records in the log. */
uint64_t audit_count(audit_log *log);
/* Checks the chain of what the log has written so far as audit_verify
 * checks a file: the bytes up to the last record appended when the call
 * began (a line being written meanwhile is not read, so it is never taken
 * for a torn one), read from the file itself, so edits made behind the
 * log's back are found. Reads that whole prefix without holding the log's
 * lock (appends go on). Any thread. 0 (r->records set) or -1 with r
 * describing the first bad record. */
int audit_verify_log(audit_log *log, audit_report *r);
/* Appends to out, comma-separated and newest first, at most limit records
 * of that same prefix whose seq is below before (0: from the newest): each
 * its line's JSON object as stored, or {"corrupt":"<the line>"} for a line
 * that is not one. Reads backwards from the end, so a page costs the bytes
 * of its records and of the records after it, not the whole file. *next is
 * the before of the next page (the seq of its first record + 1), 0 when the
 * page reached the first line. Any thread. PL_OK, PL_EIO, or PL_ENOMEM. */
int audit_tail(audit_log *log, uint64_t before, uint32_t limit, sbuf *out, uint64_t *next);
void audit_close(audit_log *log);

/* Checks the chain of the file at path. Returns 0 (r->records set) or -1
 * with r describing the first bad record. Reads through mmap; does not lock. */
int audit_verify(const char *path, audit_report *r);
/* The same over bytes in memory (a pure function, for tests and fuzzing). */
int audit_verify_mem(const char *data, size_t len, audit_report *r);
/* `parley audit verify FILE`: argv[1] is FILE. Prints "ok (N records)" to
 * stdout and returns 0, or prints "FILE: record N (line L): why" to stderr
 * and returns 1; 2 on usage errors. */
int audit_verify_main(int argc, char **argv);

#endif
