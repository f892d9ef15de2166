/* Unit tests of the SQLite engine's batch commit: contiguous offsets per
 * channel, tenants apart, a chain is one batch whose requests take effect
 * and reach the sink in submission order, idempotency within a batch
 * and against older pubs, a full disk failing a whole batch, hostile input,
 * and allocation failures leaving nothing consumed. */
#include "engine_sqlite_helpers.h"

static void test_offsets_contiguous(void **state)
{
    fx *f = *state;
    char epoch[PUB_EPOCH_LEN + 1] = "";
    for (uint64_t i = 1; i <= 100; i++) {
        engine_req *r = publish(f, "t1", "room", "{\"n\":1}", NULL, 0, 0);
        assert_int_equal(r->status, PL_OK);
        assert_int_equal(r->pub->offset, i);
        assert_int_equal(r->duplicate, 0);
        assert_int_equal(strlen(r->pub->epoch), PUB_EPOCH_LEN);
        assert_int_equal(strspn(r->pub->epoch, "abcdefghijklmnopqrstuvwxyz0123456789"),
                         PUB_EPOCH_LEN);
        if (i == 1) strcpy(epoch, r->pub->epoch);
        assert_string_equal(r->pub->epoch, epoch);
        assert_null(pub_frame_peek(r->pub)); /* encoding waits for a reader */
        assert_true(r->pub->ts_ms > 0);
        engine_req_free(r);
    }
    engine_req *h = history(f, "room", 1000);
    assert_int_equal(h->head, 100);
    assert_int_equal(h->first, 1);
    assert_range(h, 1, 100);
    engine_req_free(h);

    engine_stats st;
    engine_get_stats(f->e, &st);
    assert_int_equal(st.committed_pubs, 100);
    assert_true(st.commits >= 1 && st.commits <= 100);
    assert_int_equal(st.commit_failures, 0);
    uint64_t hist_total = 0, lat_total = 0;
    for (int i = 0; i < 12; i++) {
        hist_total += st.batch_hist[i];
        lat_total += st.commit_lat_hist[i];
    }
    assert_int_equal(hist_total, st.commits);
    assert_int_equal(lat_total, st.commits);
}

static void test_tenants_and_channels_separate(void **state)
{
    fx *f = *state;
    const char *pairs[][2] = {{"t1", "a"}, {"t2", "a"}, {"t1", "b"}, {"t1a", ""}, {"t1", "a"}};
    uint64_t want[] = {1, 1, 1, 1, 2};
    char epochs[5][PUB_EPOCH_LEN + 1];
    for (int i = 0; i < 5; i++) {
        engine_req *r = publish(f, pairs[i][0], pairs[i][1], "1", NULL, 0, 0);
        assert_int_equal(r->status, PL_OK);
        assert_int_equal(r->pub->offset, want[i]);
        strcpy(epochs[i], r->pub->epoch);
        engine_req_free(r);
    }
    assert_string_equal(epochs[0], epochs[4]);
    assert_string_not_equal(epochs[0], epochs[1]);
    assert_string_not_equal(epochs[0], epochs[2]);
    /* The same key in another tenant is a different stream. */
    engine_req *r = do_read(f, "t2", "a", ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0);
    assert_int_equal(r->head, 1);
    assert_string_equal(r->pubs[0]->tenant, "t2");
    engine_req_free(r);
}

/* A chain submitted to a running, idle engine is one batch: one commit and
 * one sink call, in chain order. That is what lets a worker's reads of one
 * loop iteration share a commit. */
static void test_chain_is_one_batch(void **state)
{
    fx *f = *state;
    publish_ok(f, "t1", "a", "0", NULL, 0, 0); /* the thread is running and now idle */
    engine_stats before;
    engine_get_stats(f->e, &before);
    size_t calls = f->c.calls;

    engine_chain ch = {0};
    engine_submit_chain(f->e, &ch); /* empty: nothing happens */
    enum { N = 300 };
    const char *chans[] = {"a", "b", "c"};
    for (int i = 0; i < N; i++) {
        char data[16];
        snprintf(data, sizeof(data), "%d", i);
        engine_chain_add(&ch, pub_req("t1", chans[i % 3], data, NULL, 0, 0));
        if (i == N / 2)
            engine_chain_add(&ch, read_req("t1", "a", ENGINE_READ_HISTORY, 0, 0, NULL, 1000, 0));
    }
    engine_submit_chain(f->e, &ch);
    assert_null(ch.head);
    assert_null(ch.tail);
    engine_req **r = take(f, N + 1);

    engine_stats after;
    engine_get_stats(f->e, &after);
    assert_int_equal(after.commits - before.commits, 1);
    assert_int_equal(after.committed_pubs - before.committed_pubs, N);
    assert_int_equal(f->c.calls - calls, 1);
    uint64_t next[3] = {2, 1, 1}; /* channel a already holds offset 1 */
    for (int i = 0, k = 0; i < N; i++, k++) {
        if (i == N / 2 + 1) {
            /* The read keeps its place in the chain and sees exactly the
             * publishes before it: a's offsets 2..N/6+2 of this batch. */
            assert_int_equal(r[k]->op, ENGINE_READ);
            assert_int_equal(r[k]->head, N / 6 + 2);
            assert_range(r[k], 1, N / 6 + 2);
            k++;
        }
        assert_int_equal(r[k]->op, ENGINE_PUBLISH);
        assert_int_equal(r[k]->status, PL_OK);
        char want[16];
        snprintf(want, sizeof(want), "%d", i);
        assert_int_equal(r[k]->pub->data_len, strlen(want));
        assert_memory_equal(r[k]->pub->data, want, strlen(want));
        assert_int_equal(r[k]->pub->offset, next[i % 3]++);
    }
    for (int i = 0; i <= N; i++)
        engine_req_free(r[i]);
}

/* Requests take effect in submission order within a batch: a read sees the
 * publishes submitted before it and none after, and the sink gets every
 * request in submission order. warm: the chain goes to the running engine
 * (rings full); cold: a restarted engine takes it, ring_size 2, so the reads
 * come from disk. */
static void reads_in_submission_order(fx *f, int warm)
{
    if (!warm) f->opts.ring_size = 2;
    fx_open(f);
    for (int i = 0; i < 3; i++)
        publish_ok(f, "t1", "a", "1", NULL, 0, 0);
    for (int i = 0; i < 2; i++)
        publish_ok(f, "t1", "b", "1", NULL, 0, 0);
    engine_req *in[] = {
        read_req("t1", "a", ENGINE_READ_HISTORY, 0, 0, NULL, 100, 0),
        read_req("t1", "a", ENGINE_READ_RECOVER, 1, 1, "*", 100, 0),
        read_req("t1", "a", ENGINE_READ_RECOVER, 1, 0, "*", 2, 0),
        read_req("t1", "a", ENGINE_READ_HISTORY, 1, 1000, NULL, 10, 1),
        pub_req("t1", "a", "2", NULL, 0, 0),
        read_req("t1", "a", ENGINE_READ_HISTORY, 0, 0, NULL, 100, 0),
        read_req("t1", "b", ENGINE_READ_HISTORY, 0, 0, NULL, 100, 0), /* 6 */
        pub_req("t1", "b", "2", NULL, 0, 0),
        read_req("t1", "c", ENGINE_READ_HISTORY, 0, 0, NULL, 100, 0),
        pub_req("t1", "a", "3", NULL, 0, 0),
        read_req("t1", "a", ENGINE_READ_RECOVER, 1, 1, "*", 100, 0), /* 10 */
        read_req("t1", "a", ENGINE_READ_HISTORY, 1, 1000, NULL, 10, 1),
        read_req("t1", "b", ENGINE_READ_HISTORY, 0, 0, NULL, 100, 0),
    };
    enum { N = sizeof(in) / sizeof(in[0]) };
    engine_req *sent[N];
    memcpy(sent, in, sizeof(in));
    engine_req **r = warm ? chain_batch(f, in, N) : one_batch(f, in, N);
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(r[i], sent[i]); /* the sink gets submission order */
        assert_int_equal(r[i]->status, PL_OK);
    }
    /* Before the publishes: a's head is 3, in every mode. */
    assert_int_equal(r[0]->head, 3);
    assert_int_equal(r[0]->first, 1);
    assert_range(r[0], 1, 3);
    assert_int_equal(r[1]->recovered, 1);
    assert_int_equal(r[1]->head, 3);
    assert_int_equal(r[1]->more, 0);
    assert_range(r[1], 2, 3);
    assert_int_equal(r[2]->recovered, 1);
    assert_int_equal(r[2]->more, 1); /* 3 is still to come, not 4 or 5 */
    assert_range(r[2], 1, 2);
    assert_range_desc(r[3], 3, 1);
    assert_int_equal(r[4]->pub->offset, 4);
    /* After the first: it is in, the second is not. */
    assert_int_equal(r[5]->head, 4);
    assert_range(r[5], 1, 4);
    /* Other channels keep their own place: b before its publish, c empty. */
    assert_int_equal(r[6]->head, 2);
    assert_range(r[6], 1, 2);
    assert_int_equal(r[7]->pub->offset, 3);
    assert_int_equal(r[8]->head, 0);
    assert_int_equal(r[8]->first, 0);
    assert_int_equal(r[8]->npubs, 0);
    assert_int_equal(r[9]->pub->offset, 5);
    assert_int_equal(r[10]->recovered, 1);
    assert_int_equal(r[10]->head, 5);
    assert_range(r[10], 2, 5);
    assert_range_desc(r[11], 5, 1);
    assert_int_equal(r[12]->head, 3);
    assert_range(r[12], 1, 3);
    for (int i = 0; i < N; i++)
        engine_req_free(r[i]);
    /* And the next batch sees everything. */
    engine_req *h = history(f, "a", 100);
    assert_range(h, 1, 5);
    engine_req_free(h);
}

static void test_reads_in_submission_order_warm(void **state)
{
    reads_in_submission_order(*state, 1);
}

static void test_reads_in_submission_order_cold(void **state)
{
    reads_in_submission_order(*state, 0);
}

/* Retention made by a later publish of the batch applies to an earlier
 * read (trims may come at any time), which never sees past its place. */
static void test_read_before_publish_with_retention(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 3; i++) {
        publish_ok(f, "t1", "r", "1", NULL, 3, 0);
        publish_ok(f, "t1", "s", "1", NULL, 1, 0);
    }
    engine_req *in[] = {
        read_req("t1", "r", ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0),
        pub_req("t1", "r", "2", NULL, 3, 0),
        read_req("t1", "r", ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0),
        read_req("t1", "s", ENGINE_READ_RECOVER, 1, 2, "*", 10, 0),
        pub_req("t1", "s", "2", NULL, 1, 0),
        read_req("t1", "s", ENGINE_READ_RECOVER, 1, 2, "*", 10, 0),
    };
    engine_req **r = chain_batch(f, in, 6);
    assert_int_equal(r[0]->head, 3);
    assert_int_equal(r[0]->first, 2); /* 1 went with the batch's trim */
    assert_range(r[0], 2, 3);
    assert_int_equal(r[1]->pub->offset, 4);
    assert_int_equal(r[2]->head, 4);
    assert_int_equal(r[2]->first, 2);
    assert_range(r[2], 2, 4);
    /* s kept only its newest: up to the read's head nothing is left. */
    assert_int_equal(r[3]->head, 3);
    assert_int_equal(r[3]->first, 0);
    assert_int_equal(r[3]->recovered, 0);
    assert_int_equal(r[3]->npubs, 0);
    assert_int_equal(r[4]->pub->offset, 4);
    assert_int_equal(r[5]->head, 4);
    assert_int_equal(r[5]->first, 4);
    assert_int_equal(r[5]->recovered, 0);
    assert_range(r[5], 4, 4);
    for (int i = 0; i < 6; i++)
        engine_req_free(r[i]);
}

/* A failed commit: no publish took effect, so every read of the batch sees
 * the committed state, and the sink still gets submission order. */
static void test_failed_commit_keeps_order(void **state)
{
    fx *f = *state;
    static char big[4001];
    memset(big, 'x', sizeof(big) - 1);
    big[0] = big[sizeof(big) - 2] = '"';
    f->opts.max_db_bytes = 256 * 1024;
    fx_open(f);
    uint64_t ok = 0;
    for (;;) {
        engine_req *p = publish(f, "t1", "full", big, NULL, 0, 0);
        int status = p->status;
        engine_req_free(p);
        if (status != PL_OK) break;
        ok++;
        assert_true(ok < 1000);
    }
    engine_req *in[] = {
        read_req("t1", "full", ENGINE_READ_HISTORY, 0, 0, NULL, 2, 0),
        pub_req("t1", "full", big, NULL, 0, 0),
        read_req("t1", "full", ENGINE_READ_RECOVER, 1, ok - 1, "*", 10, 0),
        pub_req("t1", "other", big, NULL, 0, 0),
        read_req("t1", "other", ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0),
        read_req("t1", "full", ENGINE_READ_HISTORY, 0, 0, NULL, 2, 0),
    };
    engine_req *sent[6];
    memcpy(sent, in, sizeof(in));
    engine_req **r = chain_batch(f, in, 6);
    for (int i = 0; i < 6; i++)
        assert_ptr_equal(r[i], sent[i]);
    for (int i = 0; i < 6; i++)
        assert_int_equal(r[i]->status, r[i]->op == ENGINE_PUBLISH ? PL_EIO : PL_OK);
    assert_int_equal(r[0]->head, ok);
    assert_range(r[0], ok - 1, ok);
    assert_int_equal(r[2]->head, ok);
    assert_int_equal(r[2]->recovered, 1);
    assert_range(r[2], ok, ok);
    assert_int_equal(r[4]->head, 0);
    assert_int_equal(r[4]->npubs, 0);
    assert_int_equal(r[5]->head, ok);
    assert_range(r[5], ok - 1, ok);
    for (int i = 0; i < 6; i++)
        engine_req_free(r[i]);
    engine_stats st;
    engine_get_stats(f->e, &st);
    assert_int_equal(st.committed_pubs, ok);
}

/* Cursors and pending pubs keep their place too: a CURSOR never passes the
 * head at its place, a READ reads the user's cursor as the moves before it
 * left it, a PENDING holds the guaranteed pubs submitted before it. (A
 * cursor moved past a guaranteed pub makes it seen, no longer pending: that
 * is on another channel here.) */
static void test_cursors_and_pending_in_order(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 3; i++)
        publish_ok(f, "t1", "h", "1", NULL, 0, 0);
    engine_submit(f->e, user_req(ENGINE_CURSOR, "h", "u", 1));
    engine_req *c = take(f, 1)[0];
    assert_int_equal(c->status, PL_OK);
    assert_int_equal(c->cursor, 1);
    engine_req_free(c);
    engine_submit(f->e, guaranteed_req("g", "\"q\"", "u"));
    c = take(f, 1)[0];
    assert_int_equal(c->pub->offset, 1);
    engine_req_free(c);

    engine_req *in[] = {
        user_req(ENGINE_READ, "h", "u", 0),    /* 0 */
        user_req(ENGINE_CURSOR, "h", "u", 10), /* 1 */
        user_req(ENGINE_READ, "h", "u", 0),    /* 2 */
        user_req(ENGINE_PENDING, "g", "u", 0), /* 3 */
        pub_req("t1", "h", "2", NULL, 0, 0),   /* 4 */
        guaranteed_req("g", "\"r\"", "u"),     /* 5 */
        user_req(ENGINE_PENDING, "g", "u", 0), /* 6 */
        user_req(ENGINE_CURSOR, "h", "u", 10), /* 7 */
        user_req(ENGINE_READ, "h", "u", 0),    /* 8 */
    };
    enum { N = sizeof(in) / sizeof(in[0]) };
    engine_req *sent[N];
    memcpy(sent, in, sizeof(in));
    engine_req **r = chain_batch(f, in, N);
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(r[i], sent[i]);
        assert_int_equal(r[i]->status, PL_OK);
    }
    assert_int_equal(r[0]->head, 3);
    assert_int_equal(r[0]->cursor, 1); /* not the moves after it */
    assert_int_equal(r[1]->cursor, 3); /* not 4: that pub comes later */
    assert_int_equal(r[1]->moved, 1);
    assert_int_equal(r[1]->head, 3);
    assert_int_equal(r[1]->first, 1);
    assert_int_equal(r[2]->cursor, 3);
    assert_int_equal(r[2]->head, 3);
    assert_int_equal(r[3]->head, 1);
    assert_int_equal(r[3]->npubs, 1);
    assert_int_equal(r[3]->pubs[0]->offset, 1);
    assert_int_equal(r[4]->pub->offset, 4);
    assert_int_equal(r[5]->pub->offset, 2);
    assert_int_equal(r[6]->head, 2);
    assert_int_equal(r[6]->npubs, 2);
    assert_int_equal(r[6]->pubs[1]->offset, 2);
    assert_int_equal(r[7]->cursor, 4);
    assert_int_equal(r[7]->head, 4);
    assert_int_equal(r[8]->cursor, 4);
    assert_int_equal(r[8]->head, 4);
    for (int i = 0; i < N; i++)
        engine_req_free(r[i]);
}

static void test_duplicate_in_one_batch(void **state)
{
    fx *f = *state;
    fx_new(f);
    /* Queued before start, so the thread takes them as one batch. A read
     * submitted first sees none of the publishes and comes before them; one
     * submitted last sees them all. */
    engine_submit(f->e, read_req("t1", "room", ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0));
    engine_submit(f->e, pub_req("t1", "room", "\"first\"", "K", 0, 0));
    engine_submit(f->e, pub_req("t1", "room", "\"retry\"", "K", 0, 0));
    engine_submit(f->e, pub_req("t1", "room", "\"other\"", "L", 0, 0));
    engine_submit(f->e, read_req("t1", "room", ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0));
    assert_int_equal(engine_start(f->e), PL_OK);
    engine_req **r = take(f, 5);
    assert_int_equal(f->c.calls, 1);
    assert_int_equal(r[0]->op, ENGINE_READ);
    assert_int_equal(r[0]->head, 0);
    assert_int_equal(r[0]->npubs, 0);
    assert_int_equal(r[1]->op, ENGINE_PUBLISH);
    assert_int_equal(r[1]->pub->offset, 1);
    assert_int_equal(r[1]->duplicate, 0);
    assert_int_equal(r[2]->pub->offset, 1);
    assert_int_equal(r[2]->duplicate, 1);
    assert_ptr_equal(r[2]->pub, r[1]->pub); /* the original record itself */
    assert_memory_equal(r[2]->pub->data, "\"first\"", 7);
    assert_int_equal(r[3]->pub->offset, 2);
    assert_int_equal(r[4]->op, ENGINE_READ);
    assert_int_equal(r[4]->head, 2);
    assert_range(r[4], 1, 2);
    engine_stats st;
    engine_get_stats(f->e, &st);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.committed_pubs, 2);
    for (int i = 0; i < 5; i++)
        engine_req_free(r[i]);
    assert_int_equal(count_rows(f, "SELECT sum(n) FROM pubs"), 2);
}

static void test_duplicate_original_sources(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 2;
    f->opts.dedup_window_ms = 60000;
    fx_open(f);
    /* Original on disk only (ring holds 2). */
    engine_req *o = publish(f, "t1", "a", "\"orig\"", "K", 0, 0);
    char id[PUB_ID_LEN + 1];
    strcpy(id, o->pub->id);
    engine_req_free(o);
    for (int i = 0; i < 3; i++)
        publish_ok(f, "t1", "a", "x", NULL, 0, 0);
    atomic_store(&encoded, 0);
    engine_req *d = publish(f, "t1", "a", "\"again\"", "K", 0, 0);
    assert_int_equal(d->duplicate, 1);
    assert_int_equal(d->pub->offset, 1);
    assert_string_equal(d->pub->id, id);
    assert_memory_equal(d->pub->data, "\"orig\"", 6);
    assert_null(pub_frame_peek(d->pub));
    assert_int_equal(atomic_load(&encoded), 0);
    engine_req_free(d);

    /* Original already trimmed by retention: the identity still comes back. */
    o = publish(f, "t1", "b", "\"orig\"", "K", 1, 0);
    strcpy(id, o->pub->id);
    engine_req_free(o);
    publish_ok(f, "t1", "b", "x", NULL, 1, 0);
    d = publish(f, "t1", "b", "\"again\"", "K", 1, 0);
    assert_int_equal(d->status, PL_OK);
    assert_int_equal(d->duplicate, 1);
    assert_int_equal(d->pub->offset, 1);
    assert_string_equal(d->pub->id, id);
    assert_non_null(d->pub->epoch[0]);
    engine_req_free(d);
    engine_req *h = history(f, "b", 10);
    assert_int_equal(h->head, 2);
    engine_req_free(h);
    h = do_read(f, "t1", "b", ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0);
    assert_range(h, 2, 2);
    engine_req_free(h);
    /* Same key on another channel is not a duplicate. */
    engine_req *x = publish(f, "t1", "c", "1", "K", 0, 0);
    assert_int_equal(x->duplicate, 0);
    assert_int_equal(x->pub->offset, 1);
    engine_req_free(x);
}

static void test_disk_full(void **state)
{
    fx *f = *state;
    static char big[4001];
    memset(big, 'x', sizeof(big) - 1);
    big[0] = big[sizeof(big) - 2] = '"';
    f->opts.max_db_bytes = 256 * 1024;
    fx_open(f);
    uint64_t ok = 0;
    engine_req *r = NULL;
    for (int i = 0; i < 1000; i++) {
        r = publish(f, "t1", "full", big, NULL, 0, 0);
        if (r->status != PL_OK) break;
        ok++;
        assert_int_equal(r->pub->offset, ok);
        engine_req_free(r);
        r = NULL;
    }
    assert_non_null(r);
    assert_int_equal(r->status, PL_EIO);
    assert_int_equal(r->pub->offset, 0);
    engine_req_free(r);
    assert_true(ok > 5);

    /* A whole batch fails together, keys included; reads still work. */
    engine_stop(f->e);
    engine_submit(f->e, pub_req("t1", "full", "1", "K", 0, 0));
    engine_submit(f->e, pub_req("t1", "other", big, NULL, 0, 0));
    engine_submit(f->e, pub_req("t1", "full", big, NULL, 0, 0));
    engine_submit(f->e, read_req("t1", "full", ENGINE_READ_HISTORY, 0, 0, NULL, 2, 0));
    assert_int_equal(engine_start(f->e), PL_OK);
    engine_req **b = take(f, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b[i]->status, PL_EIO);
        assert_int_equal(b[i]->duplicate, 0);
        assert_int_equal(b[i]->pub->offset, 0);
    }
    assert_int_equal(b[3]->status, PL_OK);
    assert_int_equal(b[3]->head, ok);
    assert_range(b[3], ok - 1, ok);
    for (int i = 0; i < 4; i++)
        engine_req_free(b[i]);
    engine_stats st;
    engine_get_stats(f->e, &st);
    assert_true(st.commit_failures >= 2);
    assert_int_equal(st.committed_pubs, ok);

    /* Space comes back: offsets continue with no gap, the key was not used. */
    f->opts.max_db_bytes = 0;
    fx_reopen(f);
    engine_req *h = history(f, "full", 1000);
    assert_int_equal(h->head, ok);
    assert_int_equal(h->npubs, ok);
    engine_req_free(h);
    r = publish(f, "t1", "full", "1", "K", 0, 0);
    assert_int_equal(r->status, PL_OK);
    assert_int_equal(r->duplicate, 0);
    assert_int_equal(r->pub->offset, ok + 1);
    engine_req_free(r);
    assert_int_equal(publish_ok(f, "t1", "other", "1", NULL, 0, 0), 1);
}

static void test_hostile_input(void **state)
{
    fx *f = *state;
    engine_req *bad = engine_req_new(ENGINE_PUBLISH); /* no pub */
    engine_submit(f->e, bad);
    bad = engine_req_new(ENGINE_READ); /* no channel */
    engine_submit(f->e, bad);
    bad = engine_req_new(ENGINE_PUBLISH);
    bad->op = (enum engine_op)99;
    engine_submit(f->e, bad);
    engine_submit(f->e, pub_req("t1", "ok", "1", NULL, 0, 0));
    engine_req **r = take(f, 4);
    int inval = 0, ok = 0;
    for (int i = 0; i < 4; i++) {
        if (r[i]->status == PL_EINVAL) inval++;
        if (r[i]->status == PL_OK) ok++;
        engine_req_free(r[i]);
    }
    assert_int_equal(inval, 3);
    assert_int_equal(ok, 1);

    /* Names that would break a hand-built query or a naive key. */
    const char *names[] = {"'; DROP TABLE pubs; --", "a\"b", "ünï©ødé", "a", "", "%s%n"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_int_equal(publish_ok(f, names[i], names[i], "{\"a\":\"\\u0000\"}", names[i], 0, 0),
                         1);
        assert_int_equal(publish_ok(f, "t1", names[i], "[]", NULL, 0, 0), 1);
    }
    engine_req *h = do_read(f, "'; DROP TABLE pubs; --", "'; DROP TABLE pubs; --",
                            ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0);
    assert_int_equal(h->npubs, 1);
    assert_string_equal(h->pubs[0]->idem_key, "'; DROP TABLE pubs; --");
    engine_req_free(h);

    /* Big payload with a NUL-free but odd body survives the round trip. */
    size_t n = 1 << 20;
    char *data = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    data[0] = data[n - 1] = '"';
    data[n] = '\0';
    publish_ok(f, "t1", "big", data, NULL, 0, 0);
    fx_reopen(f);
    h = history(f, "big", 1);
    assert_int_equal(h->npubs, 1);
    assert_int_equal(h->pubs[0]->data_len, n);
    assert_memory_equal(h->pubs[0]->data, data, n);
    engine_req_free(h);
    free(data);

    /* Optional fields absent stay absent after a reload. */
    pub_fields fl = {.tenant = "t1",
                     .tenant_len = 2,
                     .channel = "bare",
                     .channel_len = 4,
                     .data = "1",
                     .data_len = 1};
    engine_req *p = engine_req_new(ENGINE_PUBLISH);
    p->pub = pub_new(&fl, PUB_GUARANTEED);
    engine_submit(f->e, p);
    engine_req_free(take(f, 1)[0]);
    fx_reopen(f);
    h = history(f, "bare", 1);
    assert_int_equal(h->npubs, 1);
    assert_null(h->pubs[0]->user);
    assert_null(h->pubs[0]->client);
    assert_null(h->pubs[0]->type);
    assert_null(h->pubs[0]->correlation_id);
    assert_null(h->pubs[0]->headers);
    assert_null(h->pubs[0]->idem_key);
    assert_int_equal(h->pubs[0]->cls, PUB_GUARANTEED);
    engine_req_free(h);
}

static void test_alloc_failures(void **state)
{
    fx *f = *state;
    char err[256];
    f->opts.data_dir = f->dir;
    f->opts.sink = sink;
    f->opts.sink_ctx = &f->c;
    f->opts.encode = encode;
    /* Every allocation of engine_sqlite_new failing in turn: NULL, no leak. */
    int succeeded = 0;
    for (long k = 0; k < 20 && !succeeded; k++) {
        pl_mem_fail_after(k);
        engine *e = engine_sqlite_new(&f->opts, err, sizeof(err));
        pl_mem_fail_after(-1);
        if (e) {
            succeeded = 1;
            engine_free(e);
        } else {
            assert_true(strlen(err) > 0);
        }
    }
    assert_true(succeeded);

    /* Request-level failures: nothing consumed, later requests fine. */
    f->e = engine_sqlite_new(&f->opts, err, sizeof(err));
    assert_non_null(f->e);
    engine_submit(f->e, pub_req("t1", "new", "1", NULL, 0, 0));
    engine_submit(f->e, read_req("t1", "new2", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 0));
    pl_mem_fail_after(0);
    assert_int_equal(engine_start(f->e), PL_OK);
    engine_req **r = take(f, 2);
    pl_mem_fail_after(-1);
    assert_int_equal(r[0]->status, PL_ENOMEM);
    assert_int_equal(r[0]->pub->offset, 0);
    assert_int_equal(r[1]->status, PL_ENOMEM);
    engine_req_free(r[0]);
    engine_req_free(r[1]);
    assert_int_equal(publish_ok(f, "t1", "new", "1", NULL, 0, 0), 1);
    assert_int_equal(publish_ok(f, "t1", "new", "1", NULL, 0, 0), 2);

    /* Loading from disk under allocation failure: the read fails cleanly. */
    fx_reopen(f);
    engine_stop(f->e);
    engine_submit(f->e, read_req("t1", "new", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 0));
    engine_submit(f->e, read_req("t1", "new", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 0));
    pl_mem_fail_after(2); /* the channel, the array, then the first pub fails */
    assert_int_equal(engine_start(f->e), PL_OK);
    r = take(f, 2);
    pl_mem_fail_after(-1);
    assert_int_equal(r[0]->status, PL_ENOMEM);
    assert_int_equal(r[0]->npubs, 0);
    assert_int_equal(r[1]->status, PL_ENOMEM);
    engine_req_free(r[0]);
    engine_req_free(r[1]);
    engine_req *h = history(f, "new", 5);
    assert_range(h, 1, 2);
    engine_req_free(h);

    /* A sweep of failures at every allocation of a mixed batch. */
    for (long k = 0; k < 12; k++) {
        engine_stop(f->e);
        engine_submit(f->e, pub_req("t1", "mix", "1", "dup", 0, 0));
        engine_submit(f->e, pub_req("t1", "mix", "1", "dup", 0, 0));
        engine_submit(f->e, read_req("t1", "new", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 0));
        engine_submit(f->e, read_req("t1", "mix", ENGINE_READ_RECOVER, 1, 0, "x", 5, 0));
        pl_mem_fail_after(k);
        assert_int_equal(engine_start(f->e), PL_OK);
        r = take(f, 4);
        pl_mem_fail_after(-1);
        for (int i = 0; i < 4; i++) {
            assert_true(r[i]->status == PL_OK || r[i]->status == PL_ENOMEM);
            engine_req_free(r[i]);
        }
    }
    /* Whatever failed, "mix" holds exactly one pub (the key dedupes). */
    h = history(f, "mix", 10);
    assert_int_equal(h->head, 1);
    engine_req_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_offsets_contiguous, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_tenants_and_channels_separate, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_chain_is_one_batch, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_reads_in_submission_order_warm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_in_submission_order_cold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_before_publish_with_retention, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursors_and_pending_in_order, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_in_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_original_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_input, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
