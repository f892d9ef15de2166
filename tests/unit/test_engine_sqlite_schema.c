/* Unit tests of the SQLite engine's database file: everything survives a
 * restart, schema version 2 is upgraded in place, bad directories and
 * versions this build does not read (1, 99) are refused. */
#include "engine_sqlite_helpers.h"

static void test_restart_keeps_everything(void **state)
{
    fx *f = *state;
    char key[16];
    for (int i = 1; i <= 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        publish_ok(f, "t1", "room", "{\"v\":[1,2]}", key, 0, 0);
    }
    engine_req *before = history(f, "room", 100);
    fx_reopen(f);
    atomic_store(&encoded, 0);
    engine_req *after = history(f, "room", 100);
    assert_int_equal(after->head, 10);
    assert_int_equal(after->first, 1);
    assert_string_equal(after->epoch, before->epoch);
    assert_int_equal(after->npubs, 10);
    assert_int_equal(atomic_load(&encoded), 0); /* loaded from disk, not encoded yet */
    for (int i = 0; i < 10; i++) {
        const rbuf *fr = pub_frame(after->pubs[i], encode);
        assert_non_null(fr);
        assert_ptr_equal(pub_frame(after->pubs[i], encode), fr); /* made once */
    }
    assert_int_equal(atomic_load(&encoded), 10);
    for (int i = 0; i < 10; i++) {
        pl_pub *a = before->pubs[i], *b = after->pubs[i];
        assert_int_equal(a->offset, b->offset);
        assert_string_equal(a->id, b->id);
        assert_int_equal(a->ts_ms, b->ts_ms);
        assert_int_equal(b->cls, PUB_STANDARD);
        assert_string_equal(b->tenant, "t1");
        assert_string_equal(b->channel, "room");
        assert_int_equal(b->data_len, strlen("{\"v\":[1,2]}"));
        assert_memory_equal(b->data, "{\"v\":[1,2]}", b->data_len);
        assert_string_equal(b->user, "alice");
        assert_string_equal(b->client, "c-1");
        assert_string_equal(b->type, "message.created");
        assert_string_equal(b->correlation_id, "corr-9");
        assert_string_equal(b->headers, "{\"x\":\"1\"}");
        assert_string_equal(b->idem_key, a->idem_key);
        assert_string_equal(b->epoch, before->epoch);
    }
    /* Idempotency survives the restart. */
    engine_req *d = publish(f, "t1", "room", "{\"other\":1}", "k3", 0, 0);
    assert_int_equal(d->status, PL_OK);
    assert_int_equal(d->duplicate, 1);
    assert_int_equal(d->pub->offset, 3);
    assert_string_equal(d->pub->id, before->pubs[2]->id);
    assert_memory_equal(d->pub->data, "{\"v\":[1,2]}", d->pub->data_len);
    engine_req_free(d);
    /* The next offset continues. */
    assert_int_equal(publish_ok(f, "t1", "room", "1", "k11", 0, 0), 11);
    engine_req_free(before);
    engine_req_free(after);
}

/* A version 2 database (random ids, index pubs_id) opens as version 3 in
 * place: its index is kept, so both its old ids and new ones trace. */
static void test_version_2_database_upgraded(void **state)
{
    fx *f = *state;
    fx_open(f);
    publish_ok(f, "t1", "room", "1", NULL, 0, 0);
    fx_close(f);
    char db[160];
    sqlite3 *h;
    snprintf(db, sizeof(db), "%s/parley.db", f->dir);
    const char *old_id = "01JD0000000000000000000042";
    char sql[256];
    snprintf(sql, sizeof(sql),
             "CREATE INDEX pubs_id ON pubs(id); UPDATE pubs SET id = '%s';"
             " ALTER TABLE pubs DROP COLUMN more; ALTER TABLE pubs DROP COLUMN dbytes;"
             " ALTER TABLE pubs DROP COLUMN n; PRAGMA user_version=2;",
             old_id);
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    fx_open(f);
    assert_int_equal(count_rows(f, "PRAGMA user_version"), 5);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM sqlite_master WHERE name = 'pubs_id'"), 1);
    engine_req *r = publish(f, "t1", "room", "2", NULL, 0, 0);
    assert_int_equal(r->status, PL_OK);
    assert_int_equal(trace_id(f, "t1", old_id, NULL), PL_OK);
    assert_int_equal(trace_id(f, "t1", r->pub->id, NULL), PL_OK);
    assert_int_equal(trace_id(f, "t2", old_id, NULL), PL_ENOTFOUND);
    engine_req_free(r);
    /* Version 1 (a development layout) is refused, not modified. */
    fx_close(f);
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "PRAGMA user_version=1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    char err[256] = "";
    f->opts.data_dir = f->dir;
    assert_null(engine_sqlite_new(&f->opts, err, sizeof(err)));
    assert_non_null(strstr(err, "schema version 1"));
    assert_int_equal(count_rows(f, "PRAGMA user_version"), 1);
}

static void test_bad_data_dir(void **state)
{
    char err[256] = "";
    engine_opts o = {.data_dir = "/proc/nope/parley"};
    assert_null(engine_sqlite_new(&o, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    o.data_dir = "";
    assert_null(engine_sqlite_new(&o, err, sizeof(err)));
    assert_null(engine_sqlite_new(NULL, err, sizeof(err)));
    /* A file where the database directory should be. */
    fx *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s", f->dir);
    *strrchr(path, '/') = '\0';
    strcat(path, "/file");
    FILE *fp = fopen(path, "w");
    fputs("x", fp);
    fclose(fp);
    o.data_dir = path;
    assert_null(engine_sqlite_new(&o, err, sizeof(err)));
    /* A database from a newer schema is refused, not modified. */
    fx_open(f);
    fx_close(f);
    char db[160];
    sqlite3 *h;
    snprintf(db, sizeof(db), "%s/parley.db", f->dir);
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    o.data_dir = f->dir;
    assert_null(engine_sqlite_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "schema version 99"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restart_keeps_everything, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_version_2_database_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_data_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
