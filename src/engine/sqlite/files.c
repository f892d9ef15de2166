/* Identity checks of the database's files: see files.h. */
#include "engine/sqlite/files.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util/mem.h"
#include "util/status.h"

int sq_files_init(sq_files *f, char *db_path)
{
    struct stat st;
    size_t n = strlen(db_path);
    memset(f, 0, sizeof(*f));
    f->db_path = db_path;
    f->wal_path = pl_malloc(n + sizeof("-wal"));
    if (!f->wal_path) return PL_ENOMEM;
    memcpy(f->wal_path, db_path, n);
    memcpy(f->wal_path + n, "-wal", sizeof("-wal"));
    if (stat(db_path, &st) != 0) return PL_EIO;
    f->db_dev = st.st_dev;
    f->db_ino = st.st_ino;
    if (stat(f->wal_path, &st) == 0) {
        f->wal_dev = st.st_dev;
        f->wal_ino = st.st_ino;
        f->wal_known = 1;
    }
    return PL_OK;
}

void sq_files_release(sq_files *f)
{
    pl_free(f->db_path);
    pl_free(f->wal_path);
    f->db_path = f->wal_path = NULL;
}

static int faulted(sq_files *f, char *why, size_t whylen, const char *path, const char *what)
{
    if (!sq_files_faulted(f))
        snprintf(why, whylen, "%s %s; commits stop until an operator restarts the server", path,
                 what);
    atomic_store(&f->fault, 1);
    return PL_EIO;
}

int sq_files_check(sq_files *f, char *why, size_t whylen)
{
    struct stat st;
    if (sq_files_faulted(f)) return PL_EIO;
    if (stat(f->db_path, &st) != 0)
        return faulted(f, why, whylen, f->db_path, errno == ENOENT ? "vanished" : "cannot be read");
    if (st.st_dev != f->db_dev || st.st_ino != f->db_ino)
        return faulted(f, why, whylen, f->db_path, "was replaced by another file");
    if (stat(f->wal_path, &st) != 0) {
        /* SQLite creates the WAL at the first write and deletes it only at
         * close: once seen, it must stay. */
        if (errno == ENOENT && !f->wal_known) return PL_OK;
        return faulted(f, why, whylen, f->wal_path,
                       errno == ENOENT ? "vanished" : "cannot be read");
    }
    if (!f->wal_known) {
        f->wal_dev = st.st_dev;
        f->wal_ino = st.st_ino;
        f->wal_known = 1;
    } else if (st.st_dev != f->wal_dev || st.st_ino != f->wal_ino) {
        return faulted(f, why, whylen, f->wal_path, "was replaced by another file");
    }
    return PL_OK;
}
