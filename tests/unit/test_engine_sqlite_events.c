/* Unit tests of the committed log routes read (ENGINE_EVENTS): nothing is
 * written while it is off; once on, every stored pub comes back in commit
 * order with its entry's sequence number, from the ring and from disk;
 * retention-trimmed entries are counted, not invented; trims keep the
 * sequence growing across a reopen. */
#include "engine_sqlite_helpers.h"

static engine_req *events(fx *f, uint64_t since, uint32_t limit, uint64_t trim)
{
    engine_req *r = engine_req_new(ENGINE_EVENTS);
    r->since_offset = since;
    r->limit = limit;
    r->trim_seq = trim;
    engine_submit(f->e, r);
    engine_req *got = take(f, 1)[0];
    assert_int_equal(got->status, PL_OK);
    return got;
}

static void test_off_writes_nothing(void **state)
{
    fx *f = *state;
    publish_ok(f, "t1", "a", "1", NULL, 0, 0);
    engine_req *r = events(f, 0, 100, 0);
    assert_int_equal(r->head, 0);
    assert_int_equal(r->npubs, 0);
    engine_req_free(r);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM events"), 0);
}

static void test_commit_order_with_seqs(void **state)
{
    fx *f = *state;
    engine_log_events(f->e, 1);
    const char *chans[] = {"a", "b", "a", "c", "b"};
    for (int i = 0; i < 5; i++) {
        char data[16];
        snprintf(data, sizeof(data), "%d", i);
        publish_ok(f, i == 3 ? "t2" : "t1", chans[i], data, NULL, 0, 0);
    }
    engine_req *r = events(f, 0, 100, 0);
    assert_int_equal(r->npubs, 5);
    assert_int_equal(r->head, r->seqs[4]);
    for (size_t i = 0; i < 5; i++) {
        char data[16];
        snprintf(data, sizeof(data), "%zu", i);
        assert_string_equal(r->pubs[i]->channel, chans[i]);
        assert_string_equal(r->pubs[i]->tenant, i == 3 ? "t2" : "t1");
        assert_string_equal(r->pubs[i]->data, data);
        assert_int_not_equal(r->pubs[i]->id[0], '\0');
        if (i) assert_true(r->seqs[i] > r->seqs[i - 1]);
    }
    uint64_t mid = r->seqs[1], head = r->head;
    engine_req_free(r);
    /* From a position, and at most `limit` entries. */
    r = events(f, mid, 2, 0);
    assert_int_equal(r->npubs, 2);
    assert_string_equal(r->pubs[0]->data, "2");
    assert_string_equal(r->pubs[1]->data, "3");
    engine_req_free(r);
    /* limit 0: the head alone. */
    r = events(f, 0, 0, 0);
    assert_int_equal(r->npubs, 0);
    assert_int_equal(r->head, head);
    engine_req_free(r);
    /* Turning logging on (again) answers the newest committed entry, the
     * start of a route created now; after a reopen too, and off keeps it. */
    assert_int_equal(engine_log_events(f->e, 1), head);
    fx_reopen(f);
    assert_int_equal(engine_log_events(f->e, 0), head);
    publish_ok(f, "t1", "d", "off", NULL, 0, 0);
    assert_int_equal(engine_log_events(f->e, 1), head);
    publish_ok(f, "t1", "d", "on", NULL, 0, 0);
    r = events(f, head, 10, 0);
    assert_int_equal(r->npubs, 1);
    assert_string_equal(r->pubs[0]->data, "on");
    assert_int_equal(engine_log_events(f->e, 1), r->seqs[0]);
    engine_req_free(r);
}

static void test_one_entry_per_row_from_disk(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 2;
    fx_open(f);
    engine_log_events(f->e, 1);
    /* One batch of 10 pubs of one channel: one row, one entry. */
    engine_req *reqs[10];
    for (int i = 0; i < 10; i++) {
        char data[16];
        snprintf(data, sizeof(data), "%d", i);
        reqs[i] = pub_req("t1", "row", data, NULL, 0, 0);
    }
    engine_req **got = chain_batch(f, reqs, 10);
    for (int i = 0; i < 10; i++)
        engine_req_free(got[i]);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM events"), 1);
    fx_reopen(f); /* rings empty: every pub comes from the rows */
    engine_req *r = events(f, 0, 100, 0);
    assert_int_equal(r->npubs, 10);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(r->pubs[i]->offset, i + 1);
        assert_int_equal(r->seqs[i], r->seqs[0]);
    }
    assert_int_equal(r->count, 0);
    engine_req_free(r);
}

static void test_retention_and_trim(void **state)
{
    fx *f = *state;
    engine_log_events(f->e, 1);
    for (int i = 0; i < 5; i++)
        publish_ok(f, "t1", "short", "1", NULL, 2, 0); /* history_size 2 */
    fx_reopen(f); /* rings empty: the pubs must come from the rows */
    engine_log_events(f->e, 1);
    engine_req *r = events(f, 0, 100, 0);
    /* Retention held back the pubs the log still names: none is missing. */
    assert_int_equal(r->npubs, 5);
    assert_int_equal(r->count, 0);
    assert_int_equal(r->pubs[0]->offset, 1);
    uint64_t head = r->head, before = r->seqs[2]; /* the entry of offset 3 */
    engine_req_free(r);
    /* Once the router passed offset 3, the next commit trims to history_size. */
    r = events(f, 0, 100, before);
    assert_int_equal(r->head, head);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM events"), 2);
    engine_req_free(r);
    publish_ok(f, "t1", "short", "1", NULL, 2, 0);
    assert_int_equal(count_rows(f, "SELECT min(off) FROM pubs WHERE cid = "
                                   "(SELECT cid FROM channels WHERE channel = 'short')"),
                     4);
    r = events(f, before, 100, 0);
    assert_int_equal(r->npubs, 3); /* offsets 4, 5 and 6: still named, still there */
    assert_int_equal(r->count, 0);
    head = r->head;
    engine_req_free(r);
    /* Trimming everything keeps the sequence growing, across a reopen too. */
    engine_req_free(events(f, 0, 0, head));
    fx_reopen(f);
    engine_log_events(f->e, 1);
    publish_ok(f, "t1", "short", "1", NULL, 2, 0);
    r = events(f, 0, 100, 0);
    assert_int_equal(r->npubs, 1);
    assert_true(r->seqs[0] > head);
    engine_req_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_off_writes_nothing, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_commit_order_with_seqs, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_one_entry_per_row_from_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_and_trim, setup_open, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
