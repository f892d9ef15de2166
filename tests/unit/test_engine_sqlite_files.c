/* Unit tests of who holds the database's files: one engine per directory,
 * no -shm file, and a removed or replaced parley.db-wal or parley.db stops
 * every later commit (PL_EIO, reported once) while what was committed before
 * stays readable after a restart. */
#include "engine_sqlite_helpers.h"

#include <sys/stat.h>
#include <unistd.h>

static char fault_what[512];
static int fault_calls;

static void on_fault(void *ctx, const char *what)
{
    (void)ctx;
    snprintf(fault_what, sizeof(fault_what), "%s", what);
    fault_calls++;
}

static void file_path(fx *f, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", f->dir, name);
}

static int exists(fx *f, const char *name)
{
    char p[160];
    struct stat st;
    file_path(f, name, p, sizeof(p));
    return stat(p, &st) == 0;
}

static void open_watched(fx *f)
{
    fault_calls = 0;
    fault_what[0] = '\0';
    f->opts.fault = on_fault;
    fx_open(f);
}

/* After the fault: publishes and reads fail, the engine says it is
 * unhealthy, the cause was reported once and names the file. */
static void assert_faulted(fx *f, const char *file)
{
    for (int i = 0; i < 3; i++) {
        engine_req *r = publish(f, "t1", "room", "late", NULL, 0, 0);
        assert_int_equal(r->status, PL_EIO);
        assert_int_equal(r->pub->offset, 0);
        engine_req_free(r);
    }
    engine_submit(f->e, read_req("t1", "room", ENGINE_READ_HISTORY, 0, 0, NULL, 100, 0));
    engine_req *h = take(f, 1)[0];
    assert_int_equal(h->status, PL_EIO);
    engine_req_free(h);
    assert_int_equal(engine_healthy(f->e), 0);
    assert_int_equal(fault_calls, 1);
    if (!strstr(fault_what, file)) fail_msg("fault says \"%s\", not %s", fault_what, file);
}

static void assert_history(fx *f, uint64_t n)
{
    engine_req *h = history(f, "room", 100);
    assert_int_equal(h->status, PL_OK);
    assert_range(h, 1, n);
    engine_req_free(h);
}

static void test_no_shm_file(void **state)
{
    fx *f = *state;
    publish_ok(f, "t1", "room", "1", NULL, 0, 0);
    assert_true(exists(f, "parley.db-wal"));
    assert_false(exists(f, "parley.db-shm")); /* the WAL index is in heap memory */
    assert_int_equal(engine_healthy(f->e), 1);
}

static void test_second_engine_fails_at_open(void **state)
{
    fx *f = *state;
    publish_ok(f, "t1", "room", "1", NULL, 0, 0);
    char err[256] = "";
    engine *two = engine_sqlite_new(&f->opts, err, sizeof(err));
    assert_null(two);
    if (!strstr(err, "locked")) fail_msg("second engine: %s", err);
    /* The first one goes on storing. */
    assert_int_equal(publish_ok(f, "t1", "room", "2", NULL, 0, 0), 2);
}

static void test_wal_removed(void **state)
{
    fx *f = *state;
    open_watched(f);
    for (int i = 0; i < 5; i++)
        publish_ok(f, "t1", "room", "1", NULL, 0, 0);
    char p[160];
    file_path(f, "parley.db-wal", p, sizeof(p));
    assert_int_equal(unlink(p), 0);
    assert_faulted(f, "parley.db-wal");
    /* Nothing committed before is lost: closing moves the WAL's pages into
     * parley.db (through the open descriptor). */
    fx_close(f);
    fx_open(f);
    assert_history(f, 5);
    assert_int_equal(publish_ok(f, "t1", "room", "1", NULL, 0, 0), 6);
}

static void test_db_replaced(void **state)
{
    fx *f = *state;
    open_watched(f);
    for (int i = 0; i < 5; i++)
        publish_ok(f, "t1", "room", "1", NULL, 0, 0);
    /* A copy of the file moved over it: same bytes, another inode. */
    char p[160], cmd[800];
    file_path(f, "parley.db", p, sizeof(p));
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s.new' && mv '%s.new' '%s'", p, p, p, p);
    assert_int_equal(system(cmd), 0);
    assert_faulted(f, "parley.db");
    fx_close(f);
    fx_open(f);
    assert_history(f, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_shm_file, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_second_engine_fails_at_open, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_wal_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_replaced, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
