/* Unit tests of the SQLite engine's pubs rows: ids name a row's key, a
 * commit's pubs share rows that read back field for field, damaged rows are
 * an I/O error. */
#include <ctype.h>
#include "engine_sqlite_helpers.h"

/* A stored pub's id is its accept time and (cid, offset): trace finds the
 * row by key, so the pubs table needs no index on id. */
static void test_pub_ids_locate_rows(void **state)
{
    fx *f = *state;
    char ids[4][PUB_ID_LEN + 1];
    const char *chans[4] = {"a", "a", "b", "a"};
    for (int i = 0; i < 4; i++) {
        engine_req *r = publish(f, "t1", chans[i], "{\"n\":1}", NULL, 0, 0);
        assert_int_equal(r->status, PL_OK);
        uint64_t ms, cid, off;
        assert_int_equal(clock_ulid_unpack(r->pub->id, strlen(r->pub->id), &ms, &cid, &off), 0);
        assert_int_equal(ms, (uint64_t)r->pub->ts_ms);
        assert_int_equal(cid, (uint64_t)cid_of(f, chans[i]));
        assert_int_equal(off, r->pub->offset);
        memcpy(ids[i], r->pub->id, sizeof(ids[i]));
        engine_req_free(r);
    }
    assert_string_not_equal(ids[0], ids[1]);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM sqlite_master WHERE name = 'pubs_id'"), 0);
    for (int i = 0; i < 4; i++) {
        char *json = NULL;
        assert_int_equal(trace_id(f, "t1", ids[i], &json), PL_OK);
        assert_non_null(strstr(json, "\"stored\":true"));
        free(json);
        /* Another tenant's trace never finds it. */
        assert_int_equal(trace_id(f, "t2", ids[i], NULL), PL_ENOTFOUND);
    }
    /* Ids that point at a real row but are not its id, and ids that are
     * not ULIDs at all, find nothing. */
    char forged[PUB_ID_LEN + 1];
    uint64_t ms, cid, off;
    assert_int_equal(clock_ulid_unpack(ids[0], PUB_ID_LEN, &ms, &cid, &off), 0);
    clock_ulid_pack(forged, ms + 1, cid, off);
    assert_int_equal(trace_id(f, "t1", forged, NULL), PL_ENOTFOUND);
    clock_ulid_pack(forged, ms, cid, off + 100);
    assert_int_equal(trace_id(f, "t1", forged, NULL), PL_ENOTFOUND);
    char lower[PUB_ID_LEN + 1];
    for (int i = 0; i <= PUB_ID_LEN; i++)
        lower[i] = (char)tolower((unsigned char)ids[0][i]);
    const char *bad[] = {"",
                         "x",
                         lower,
                         "01ARZ3NDEKTSV4RRFFQ69G5FA",
                         "01ARZ3NDEKTSV4RRFFQ69G5FAVV",
                         "81ARZ3NDEKTSV4RRFFQ69G5FAV",
                         "01ARZ3NDEKTSV4RRFFQ69G5FIL"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(trace_id(f, "t1", bad[i], NULL), PL_ENOTFOUND);
    /* Ids stay the same across a restart (they are stored, not derived). */
    fx_reopen(f);
    engine_req *h = history(f, "a", 10);
    assert_int_equal(h->npubs, 3);
    assert_string_equal(h->pubs[0]->id, ids[0]);
    assert_string_equal(h->pubs[2]->id, ids[3]);
    engine_req_free(h);
}

/* One commit's pubs of a channel share a row (a guaranteed pub keeps its
 * own); every field reads back the same from disk, before and after a
 * restart; reads starting inside a row and trace find each pub. */
static void test_runs_share_rows(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 2;
    enum { N = 60 };
    engine_req *reqs[N];
    char data[N][32];
    for (int i = 0; i < N; i++) {
        const char *ch = i % 3 == 2 ? "b" : "a";
        snprintf(data[i], sizeof(data[i]), "{\"i\":%d,\"s\":\"\\u00e9\"}", i);
        reqs[i] = i % 4 == 1 ? bare_req(ch, data[i], 0) : pub_req("t1", ch, data[i], NULL, 0, 0);
        if (i == 30) reqs[i]->pub->cls = PUB_GUARANTEED;
    }
    engine_req **r = one_batch(f, reqs, N);
    engine_req *done[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i]->status, PL_OK);
        done[i] = r[i];
    }
    /* a: 40 pubs split by the guaranteed one (offset 21) into 3 rows; b: 1. */
    assert_int_equal(done[30]->pub->offset, 21);
    assert_int_equal(count_rows(f, "SELECT sum(n) FROM pubs"), N);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM pubs"), 4);
    assert_int_equal(count_rows(f, "SELECT n FROM pubs WHERE off = 21 AND cls = 2"), 1);
    assert_stored(f, "a", done, N);
    assert_stored(f, "b", done, N);
    /* A read from inside the first row, and one backwards across rows. */
    engine_req *h = do_read(f, "t1", "a", ENGINE_READ_HISTORY, 1, 15, NULL, 10, 0);
    assert_range(h, 16, 25);
    engine_req_free(h);
    h = do_read(f, "t1", "a", ENGINE_READ_HISTORY, 1, 24, NULL, 5, 1);
    assert_range_desc(h, 23, 19);
    engine_req_free(h);
    for (int i = 0; i < N; i++)
        assert_int_equal(trace_id(f, "t1", done[i]->pub->id, NULL), PL_OK);
    /* An id naming a row's pub at another time is not that pub. */
    uint64_t ms, cid, off;
    char forged[PUB_ID_LEN + 1];
    assert_int_equal(clock_ulid_unpack(done[4]->pub->id, PUB_ID_LEN, &ms, &cid, &off), 0);
    clock_ulid_pack(forged, ms + 1, cid, off);
    assert_int_equal(trace_id(f, "t1", forged, NULL), PL_ENOTFOUND);
    clock_ulid_pack(forged, ms, cid, 41); /* past the last row */
    assert_int_equal(trace_id(f, "t1", forged, NULL), PL_ENOTFOUND);
    fx_reopen(f);
    assert_stored(f, "a", done, N);
    assert_stored(f, "b", done, N);
    for (int i = 0; i < N; i++)
        engine_req_free(done[i]);
}

/* A damaged row is an I/O error for the read, never a crash or a made-up
 * pub. */
static void test_damaged_rows(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 2;
    engine_req *reqs[8];
    for (int i = 0; i < 8; i++)
        reqs[i] = pub_req("t1", "d", "1", NULL, 0, 0);
    engine_req **r = one_batch(f, reqs, 8);
    for (int i = 0; i < 8; i++)
        engine_req_free(r[i]);
    const char *damage[] = {"UPDATE pubs SET more = x'0f'", "UPDATE pubs SET n = n + 1",
                            "UPDATE pubs SET n = 1", "UPDATE pubs SET more = substr(more, 1, 40)",
                            "UPDATE pubs SET n = 0"};
    char path[128];
    snprintf(path, sizeof(path), "%s/parley.db", f->dir);
    for (size_t k = 0; k < sizeof(damage) / sizeof(damage[0]); k++) {
        fx_close(f);
        sqlite3 *db;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "SAVEPOINT s", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, damage[k], NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "RELEASE s", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db); /* the engine takes the database for itself */
        fx_open(f);
        engine_submit(f->e, read_req("t1", "d", ENGINE_READ_HISTORY, 0, 0, NULL, 100, 0));
        engine_req *h = take(f, 1)[0];
        if (h->status != PL_EIO)
            fail_msg("%s: status %d, %zu pubs", damage[k], h->status, h->npubs);
        engine_req_free(h);
        fx_close(f);
        /* Undo for the next case: rewrite the original rows. */
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "DELETE FROM pubs", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        for (int i = 0; i < 8; i++)
            reqs[i] = pub_req("t1", "d", "1", NULL, 0, 0);
        r = one_batch(f, reqs, 8);
        for (int i = 0; i < 8; i++)
            engine_req_free(r[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pub_ids_locate_rows, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_runs_share_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_rows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
