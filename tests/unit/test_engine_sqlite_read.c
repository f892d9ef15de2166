/* Unit tests of the SQLite engine's reads: every history mode, ring and disk
 * together, the recovery matrix, and the bounded channel cache (an evicted
 * channel reloads with its epoch and head). */
#include "engine_sqlite_helpers.h"

typedef struct recover_case {
    const char *name;
    int has_since;
    uint64_t since;
    int other_epoch;
    uint32_t limit;
    int recovered;
    uint64_t lo, hi; /* expected pubs, empty when lo > hi */
    int more;
} recover_case;

/* Channel "m": 20 pubs, history_size 15 (offsets 6..20 retained). */
static const recover_case recover_cases[] = {
    {"from a position", 1, 10, 0, 100, 1, 11, 20, 0},
    {"past the limit", 1, 10, 0, 3, 1, 11, 13, 1},
    {"at head", 1, 20, 0, 100, 1, 1, 0, 0},
    {"first retained boundary", 1, 5, 0, 100, 1, 6, 20, 0},
    {"trimmed position", 1, 4, 0, 3, 0, 18, 20, 0},
    {"trimmed from zero", 1, 0, 0, 100, 0, 6, 20, 0},
    {"future position", 1, 21, 0, 3, 0, 18, 20, 0},
    {"other epoch", 1, 10, 1, 3, 0, 18, 20, 0},
    {"no since", 0, 0, 0, 2, 0, 19, 20, 0},
    {"limit 0 recovered", 1, 10, 0, 0, 1, 1, 0, 1},
    {"limit 0 at head", 1, 20, 0, 0, 1, 1, 0, 0},
    {"limit 0 not recovered", 1, 2, 0, 0, 0, 1, 0, 0},
};

static void test_history_modes(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 20; i++)
        publish_ok(f, "t1", "h", "1", NULL, 0, 0);
    engine_req *r;

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 0);
    assert_range(r, 16, 20);
    assert_int_equal(r->head, 20);
    assert_int_equal(r->more, 0);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 1);
    assert_range_desc(r, 20, 16);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 3, NULL, 5, 0);
    assert_range(r, 4, 8);
    assert_int_equal(r->more, 1);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 15, NULL, 5, 0);
    assert_range(r, 16, 20);
    assert_int_equal(r->more, 0);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 20, NULL, 5, 0);
    assert_range(r, 1, 0);
    assert_int_equal(r->more, 0);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 10, NULL, 4, 1);
    assert_range_desc(r, 9, 6);
    assert_int_equal(r->more, 1);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 3, NULL, 10, 1);
    assert_range_desc(r, 2, 1);
    assert_int_equal(r->more, 0);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 1, NULL, 10, 1);
    assert_range(r, 1, 0);
    engine_req_free(r);

    /* Reverse from beyond head starts at head. */
    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 1000, NULL, 3, 1);
    assert_range_desc(r, 20, 18);
    engine_req_free(r);

    /* limit 0: only head and epoch. */
    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 0, 0, NULL, 0, 0);
    assert_int_equal(r->npubs, 0);
    assert_null(r->pubs);
    assert_int_equal(r->head, 20);
    assert_int_equal(strlen(r->epoch), PUB_EPOCH_LEN);
    engine_req_free(r);

    /* Hostile bounds: huge limit and since. */
    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 0, 0, NULL, UINT32_MAX, 0);
    assert_range(r, 1, 20);
    engine_req_free(r);
    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, UINT64_MAX, NULL, UINT32_MAX, 0);
    assert_range(r, 1, 0);
    engine_req_free(r);
    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, UINT64_MAX, NULL, UINT32_MAX, 1);
    assert_range_desc(r, 20, 1);
    engine_req_free(r);
    r = do_read(f, "t1", "h", ENGINE_READ_RECOVER, 1, UINT64_MAX, "zzzzzzzz", UINT32_MAX, 0);
    assert_int_equal(r->recovered, 0);
    assert_range(r, 1, 20);
    engine_req_free(r);
}

/* Ring and disk together: the ring holds the newest 4, the rest is loaded. */
static void test_reads_span_ring_and_disk(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 4;
    fx_open(f);
    for (int i = 0; i < 10; i++)
        publish_ok(f, "t1", "r", "1", NULL, 0, 0);
    engine_req *r = history(f, "r", 10);
    assert_range(r, 1, 10);
    for (size_t i = 1; i < r->npubs; i++)
        assert_string_equal(r->pubs[i]->epoch, r->epoch);
    engine_req_free(r);
    r = do_read(f, "t1", "r", ENGINE_READ_HISTORY, 1, 4, NULL, 4, 0);
    assert_range(r, 5, 8);
    engine_req_free(r);
}

static void test_recovery_matrix(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 20; i++)
        publish_ok(f, "t1", "m", "1", NULL, 15, 0);
    engine_req *h = history(f, "m", 0);
    char epoch[PUB_EPOCH_LEN + 1];
    strcpy(epoch, h->epoch);
    assert_int_equal(h->first, 6);
    engine_req_free(h);
    for (size_t i = 0; i < sizeof(recover_cases) / sizeof(recover_cases[0]); i++) {
        const recover_case *c = &recover_cases[i];
        print_message("recover: %s\n", c->name);
        engine_req *r = do_read(f, "t1", "m", ENGINE_READ_RECOVER, c->has_since, c->since,
                                c->other_epoch ? "other000" : epoch, c->limit, 0);
        assert_int_equal(r->recovered, c->recovered);
        assert_int_equal(r->more, c->more);
        assert_int_equal(r->head, 20);
        assert_int_equal(r->first, 6);
        assert_string_equal(r->epoch, epoch);
        assert_range(r, c->lo, c->hi);
        engine_req_free(r);
    }

    /* Empty channel: a read creates it with a stable, persisted epoch. */
    engine_req *r = do_read(f, "t1", "empty", ENGINE_READ_RECOVER, 0, 0, NULL, 10, 0);
    assert_int_equal(r->head, 0);
    assert_int_equal(r->first, 0);
    assert_int_equal(r->npubs, 0);
    strcpy(epoch, r->epoch);
    engine_req_free(r);
    fx_reopen(f);
    r = do_read(f, "t1", "empty", ENGINE_READ_RECOVER, 1, 0, epoch, 10, 0);
    assert_int_equal(r->recovered, 1);
    assert_string_equal(r->epoch, epoch);
    assert_int_equal(r->npubs, 0);
    engine_req_free(r);
    r = do_read(f, "t1", "empty", ENGINE_READ_RECOVER, 1, 0, "aaaaaaaa", 10, 0);
    assert_int_equal(r->recovered, 0);
    engine_req_free(r);
    /* The first publish keeps the epoch the readers were given. */
    engine_req *p = publish(f, "t1", "empty", "1", NULL, 0, 0);
    assert_string_equal(p->pub->epoch, epoch);
    engine_req_free(p);
}

static void test_channel_cache_bounded(void **state)
{
    fx *f = *state;
    char name[32];
    const int n = 10050; /* beyond the 10,000 cached channels */
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "ch-%d", i);
        engine_submit(f->e, pub_req("t1", name, "1", NULL, 0, 0));
    }
    engine_req **r = take(f, (size_t)n);
    char epoch0[PUB_EPOCH_LEN + 1];
    strcpy(epoch0, r[0]->pub->epoch);
    for (int i = 0; i < n; i++) {
        assert_int_equal(r[i]->status, PL_OK);
        assert_int_equal(r[i]->pub->offset, 1);
        engine_req_free(r[i]);
    }
    /* ch-0 was evicted: reloaded from disk with the same epoch and head. */
    engine_req *p = publish(f, "t1", "ch-0", "1", NULL, 0, 0);
    assert_int_equal(p->pub->offset, 2);
    assert_string_equal(p->pub->epoch, epoch0);
    engine_req_free(p);
    engine_req *h = history(f, "ch-0", 10);
    assert_range(h, 1, 2);
    engine_req_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_history_modes, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_reads_span_ring_and_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_matrix, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_channel_cache_bounded, setup_open, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
