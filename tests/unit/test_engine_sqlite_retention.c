/* Unit tests of the SQLite engine's retention: size and TTL trims (also
 * cutting into shared rows), the sweep of untouched channels and expired
 * idempotency keys, a full database freed by retention. */
#include "engine_sqlite_helpers.h"

/* Rows never hold more than history_size pubs; a size trim deletes whole
 * rows, and the pubs below first in a row it cut into are never read. */
static void test_retention_cuts_rows(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 2;
    engine_req *reqs[25];
    for (int i = 0; i < 25; i++)
        reqs[i] = pub_req("t1", "c", "1", NULL, 10, 0);
    engine_req **r = one_batch(f, reqs, 25);
    char id12[PUB_ID_LEN + 1];
    memcpy(id12, r[11]->pub->id, sizeof(id12));
    for (int i = 0; i < 25; i++)
        engine_req_free(r[i]);
    /* Rows 1-10, 11-20, 21-25; first = 16: the first row went. */
    assert_int_equal(count_rows(f, "SELECT count(*) FROM pubs"), 2);
    assert_int_equal(count_rows(f, "SELECT min(off) FROM pubs"), 11);
    engine_req *h = history(f, "c", 100);
    assert_range(h, 16, 25);
    assert_int_equal(h->first, 16);
    engine_req_free(h);
    h = do_read(f, "t1", "c", ENGINE_READ_HISTORY, 1, 11, NULL, 100, 0);
    assert_range(h, 16, 25);
    engine_req_free(h);
    h = do_read(f, "t1", "c", ENGINE_READ_RECOVER, 1, 12, NULL, 100, 0);
    assert_int_equal(h->recovered, 0);
    engine_req_free(h);
    assert_int_equal(trace_id(f, "t1", id12, NULL), PL_ENOTFOUND);
    fx_reopen(f);
    h = history(f, "c", 100);
    assert_range(h, 16, 25);
    engine_req_free(h);
    /* Once all of a row is below first, it goes. */
    for (int i = 0; i < 6; i++)
        publish_ok(f, "t1", "c", "1", NULL, 10, 0);
    assert_int_equal(count_rows(f, "SELECT min(off) FROM pubs"), 21);
    assert_int_equal(count_rows(f, "SELECT sum(n) FROM pubs"), 11);
    h = history(f, "c", 100);
    assert_range(h, 22, 31);
    engine_req_free(h);
}

/* A TTL trim starts at the row holding first: a row a size trim cut into
 * that has not expired keeps its retained pubs. */
static void test_ttl_with_cut_row(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 2;
    fx_open(f);
    publish_ok(f, "t1", "t", "1", NULL, 10, 1000);
    sleep_ms(500);
    engine_req *reqs[25];
    for (int i = 0; i < 25; i++)
        reqs[i] = pub_req("t1", "t", "2", NULL, 10, 1000);
    engine_req **r = one_batch(f, reqs, 25);
    for (int i = 0; i < 25; i++)
        engine_req_free(r[i]);
    /* Offsets 2-11, 12-21, 22-26 in rows; first = 17. */
    sleep_ms(700); /* the first pub expired, the batch has not */
    publish_ok(f, "t1", "t", "3", NULL, 10, 1000);
    engine_req *h = history(f, "t", 100);
    assert_range(h, 18, 27);
    engine_req_free(h);
}

static void test_retention_by_size(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 12; i++)
        publish_ok(f, "t1", "s", "1", NULL, 5, 0);
    engine_req *r = history(f, "s", 100);
    assert_int_equal(r->head, 12);
    assert_int_equal(r->first, 8);
    assert_range(r, 8, 12);
    engine_req_free(r);
    assert_int_equal(
        count_rows(f, "SELECT count(*) FROM pubs JOIN channels USING (cid) WHERE channel = 's'"),
        5);
    fx_reopen(f);
    r = history(f, "s", 100);
    assert_int_equal(r->first, 8);
    assert_range(r, 8, 12);
    engine_req_free(r);
    /* Unlimited again: nothing more is dropped, offsets continue. */
    assert_int_equal(publish_ok(f, "t1", "s", "1", NULL, 0, 0), 13);
    r = history(f, "s", 100);
    assert_range(r, 8, 13);
    engine_req_free(r);
}

static void test_retention_by_ttl(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 3; i++)
        publish_ok(f, "t1", "ttl", "1", NULL, 0, 200);
    engine_req *r = history(f, "ttl", 100);
    assert_range(r, 1, 3);
    engine_req_free(r);
    sleep_ms(300);
    /* A read alone sees the expiry. */
    r = history(f, "ttl", 100);
    assert_int_equal(r->head, 3);
    assert_int_equal(r->first, 0);
    assert_int_equal(r->npubs, 0);
    char epoch[PUB_EPOCH_LEN + 1];
    strcpy(epoch, r->epoch);
    engine_req_free(r);
    r = do_read(f, "t1", "ttl", ENGINE_READ_RECOVER, 1, 1, epoch, 10, 0);
    assert_int_equal(r->recovered, 0);
    engine_req_free(r);
    r = do_read(f, "t1", "ttl", ENGINE_READ_RECOVER, 1, 3, epoch, 10, 0);
    assert_int_equal(r->recovered, 1);
    engine_req_free(r);
    assert_int_equal(publish_ok(f, "t1", "ttl", "1", NULL, 0, 200), 4);
    r = history(f, "ttl", 100);
    assert_int_equal(r->first, 4);
    assert_range(r, 4, 4);
    engine_req_free(r);
    assert_int_equal(
        count_rows(f, "SELECT count(*) FROM pubs JOIN channels USING (cid) WHERE channel = 'ttl'"),
        1);
    /* A partly expired stream keeps its newest pubs. */
    sleep_ms(120);
    publish_ok(f, "t1", "ttl", "1", NULL, 0, 200);
    sleep_ms(120);
    r = history(f, "ttl", 100);
    assert_int_equal(r->first, 5);
    assert_range(r, 5, 5);
    engine_req_free(r);
}

static void test_sweeps_untouched_channels(void **state)
{
    fx *f = *state;
    f->opts.dedup_window_ms = 100;
    fx_open(f);
    for (int i = 0; i < 4; i++)
        publish_ok(f, "t1", "cold", "1", "key", 0, 100);
    publish_ok(f, "t1", "keep", "1", NULL, 0, 0);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM idem"), 1);
    sleep_ms(2300); /* the sweep runs at most once a second, even when idle */
    assert_int_equal(
        count_rows(f, "SELECT count(*) FROM pubs JOIN channels USING (cid) WHERE channel = 'cold'"),
        0);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM idem"), 0);
    assert_int_equal(count_rows(f, "SELECT first_off FROM channels WHERE channel = 'cold'"), 0);
    assert_int_equal(
        count_rows(f, "SELECT count(*) FROM pubs JOIN channels USING (cid) WHERE channel = 'keep'"),
        1);
    /* The key's window passed: the same key is a new publish now. */
    engine_req *r = publish(f, "t1", "cold", "1", "key", 0, 100);
    assert_int_equal(r->duplicate, 0);
    assert_int_equal(r->pub->offset, 2);
    engine_req_free(r);
}

/* Retention frees pages, so a full database recovers without a restart. */
static void test_disk_full_recovers_in_place(void **state)
{
    fx *f = *state;
    static char big[8001];
    memset(big, 'y', sizeof(big) - 1);
    big[0] = big[sizeof(big) - 2] = '"';
    f->opts.max_db_bytes = 256 * 1024;
    fx_open(f);
    uint64_t ok = 0;
    for (;;) {
        engine_req *r = publish(f, "t1", "ttl", big, NULL, 0, 1000);
        int status = r->status;
        engine_req_free(r);
        if (status != PL_OK) break;
        ok++;
        assert_true(ok < 1000);
    }
    sleep_ms(2500); /* expire everything, let the sweep delete it */
    engine_req *r = publish(f, "t1", "ttl", big, NULL, 0, 1000);
    assert_int_equal(r->status, PL_OK);
    assert_int_equal(r->pub->offset, ok + 1);
    engine_req_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retention_cuts_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_with_cut_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_size, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_ttl, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_sweeps_untouched_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_recovers_in_place, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
