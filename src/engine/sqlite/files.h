/* The database's files and who owns them. The engine opens parley.db with
 * locking_mode EXCLUSIVE: it takes the file's lock at open and holds it until
 * close, so a second process (or engine) fails at open instead of sharing
 * it, and SQLite keeps the WAL index in heap memory, so there is no -shm file
 * whose loss or mapping faults (SIGBUS) could take the server down.
 *
 * An open descriptor outlives its path: a deleted or replaced parley.db-wal
 * or parley.db goes on taking commits that a restart never sees. So the
 * engine remembers the device and inode of both at open and compares them
 * after every COMMIT, before answering (two stat() calls per batch). A
 * mismatch or a missing file is a fault for good: the batch and every later
 * request fail with PL_EIO, nothing on disk is touched again, and
 * engine_opts.fault reports it once; an operator restarts the server. */
#ifndef PL_ENGINE_SQLITE_FILES_H
#define PL_ENGINE_SQLITE_FILES_H

#include <stdatomic.h>
#include <sys/types.h>

typedef struct sq_files {
    char *db_path, *wal_path; /* owned */
    dev_t db_dev, wal_dev;
    ino_t db_ino, wal_ino;
    int wal_known;    /* the WAL existed when last checked: from then on it must */
    atomic_int fault; /* set once by the engine thread, read by any */
} sq_files;

/* Takes db_path (pl_malloc'd) and remembers the identity of the files as
 * they are now (call after the first write: the WAL exists then). PL_OK,
 * PL_ENOMEM or PL_EIO (parley.db cannot be stat'ed). */
int sq_files_init(sq_files *f, char *db_path);
void sq_files_release(sq_files *f);
/* PL_OK while both files are the ones opened; else PL_EIO, sets the fault
 * and, the first time, writes what changed into why (NUL-terminated). */
int sq_files_check(sq_files *f, char *why, size_t whylen);

static inline int sq_files_faulted(sq_files *f)
{
    return atomic_load_explicit(&f->fault, memory_order_relaxed);
}

#endif
