/* Protocol session tests of `subscribe`: every recovery case driven by the
 * engine answers the test feeds (no position, within retention, at the head,
 * trimmed, another epoch, catch-up pages as the connection drains), the
 * limits, the race of an unsubscribe or resubscribe with the READ, and live
 * pubs around recovery arriving exactly once and in order. */
#include <stdio.h>
#include <string.h>

#include "session_helpers.h"

/* Subscribes to ch with command id id; since_json (NULL: none) is the `since`
 * object. */
static void subscribe(fake_conn *c, int id, const char *ch, const char *since_json)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "{\"id\":%d,\"method\":\"subscribe\",\"params\":{\"channel\":\"%s\"%s%s}}", id, ch,
             since_json ? ",\"since\":" : "", since_json ? since_json : "");
    conn_send(c, cmd);
}

static fake_conn *connected(fixture *fx)
{
    fake_conn *c = fx_conn(fx);
    conn_connect(c, "alice");
    return c;
}

/* Pubs the hub hands this worker (committed, in offset order). */
static void fan(fixture *fx, const char *ch, uint64_t lo, uint64_t hi)
{
    pl_pub *ps[64] = {0};
    assert_true(hi - lo < 64);
    size_t n = 0;
    for (uint64_t o = lo; o <= hi; o++)
        ps[n++] = fx_pub(ch, o);
    fanout_pubs(fx->host.fan, ps, n);
    for (size_t i = 0; i < n; i++)
        pub_unref(ps[i]);
}

/* The subscribe READ the session asked for: mode, position and epoch. */
static engine_req *take_subscribe_read(fixture *fx, int mode, uint64_t since, const char *epoch)
{
    engine_req *r = fx_take(fx, ENGINE_READ);
    assert_int_equal(r->mode, mode);
    assert_int_equal(r->has_since, mode == ENGINE_READ_RECOVER);
    assert_int_equal(r->since_offset, since);
    if (epoch) assert_string_equal(r->since_epoch, epoch);
    assert_int_equal(r->limit, mode == ENGINE_READ_RECOVER ? 1000 : 0);
    return r;
}

/* ---- recovery cases ------------------------------------------------------------ */

static void without_since_starts_at_the_head(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "room", NULL);
    assert_int_equal(c->nmsgs, 0);
    engine_req *r = take_subscribe_read(fx, ENGINE_READ_HISTORY, 0, NULL);
    fx_fill_read(r, &(read_answer){.lo = 1, .hi = 0, .head = 41, .first = 1});
    fx_answer(fx, r);
    assert_int_equal(c->nmsgs, 1);
    json_t *res = expect_result(c, 0, 2);
    assert_int_equal(jint(res, "offset"), 41);
    assert_string_equal(jstr(res, "epoch"), FX_EPOCH);
    assert_false(jbool(res, "recovered"));
    assert_false(jbool(res, "more"));
    expect_pubs(res, 1, 0);
    assert_int_equal(jint(res, "unread"), 41); /* read cursors on, no cursor yet */
    fan(fx, "room", 42, 42);
    assert_int_equal(c->nmsgs, 2);
    expect_pub(c, 1, "room", 42);
    fx_free(fx);
}

static void since_within_retention_recovers_exactly_the_missed(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "room", "{\"offset\":5,\"epoch\":\"" FX_EPOCH "\"}");
    engine_req *r = take_subscribe_read(fx, ENGINE_READ_RECOVER, 5, FX_EPOCH);
    fx_fill_read(r, &(read_answer){.lo = 6, .hi = 10, .head = 10, .first = 1, .recovered = 1});
    fx_answer(fx, r);
    assert_int_equal(c->nmsgs, 1); /* no gap push */
    json_t *res = expect_result(c, 0, 2);
    assert_true(jbool(res, "recovered"));
    assert_false(jbool(res, "more"));
    assert_int_equal(jint(res, "offset"), 10);
    expect_pubs(res, 6, 10);
    fan(fx, "room", 11, 11);
    expect_pub(c, 1, "room", 11);
    fx_free(fx);
}

static void since_at_the_head_misses_nothing(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "room", "{\"offset\":10,\"epoch\":\"" FX_EPOCH "\"}");
    engine_req *r = take_subscribe_read(fx, ENGINE_READ_RECOVER, 10, FX_EPOCH);
    fx_fill_read(r, &(read_answer){.lo = 1, .hi = 0, .head = 10, .first = 1, .recovered = 1});
    fx_answer(fx, r);
    assert_int_equal(c->nmsgs, 1);
    json_t *res = expect_result(c, 0, 2);
    assert_true(jbool(res, "recovered"));
    expect_pubs(res, 1, 0);
    fan(fx, "room", 10, 11); /* 10 was the client's already */
    assert_int_equal(c->nmsgs, 2);
    expect_pub(c, 1, "room", 11);
    fx_free(fx);
}

/* The engine answers the newest retained pubs; the trimmed range is a gap. */
static void since_older_than_retention_is_a_gap(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "room", "{\"offset\":5,\"epoch\":\"" FX_EPOCH "\"}");
    engine_req *r = take_subscribe_read(fx, ENGINE_READ_RECOVER, 5, FX_EPOCH);
    fx_fill_read(r, &(read_answer){.lo = 20, .hi = 50, .head = 50, .first = 20});
    fx_answer(fx, r);
    assert_int_equal(c->nmsgs, 2);
    json_t *res = expect_result(c, 0, 2);
    assert_false(jbool(res, "recovered"));
    expect_pubs(res, 20, 50);
    json_t *gap = expect_push(c, 1, "gap");
    assert_int_equal(c->msgs[1].kind, OUT_GAP);
    assert_string_equal(jstr(gap, "channel"), "room");
    assert_string_equal(jstr(gap, "epoch"), FX_EPOCH);
    assert_int_equal(jint(gap, "from"), 6);
    assert_int_equal(jint(gap, "to"), 19);
    fx_free(fx);
}

/* Nothing the client holds belongs to the stream it finds: the gap is
 * 1..since, in the new epoch. */
static void foreign_epoch_is_a_gap_from_one(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "room", "{\"offset\":5,\"epoch\":\"oldepoch\"}");
    engine_req *r = take_subscribe_read(fx, ENGINE_READ_RECOVER, 5, "oldepoch");
    fx_fill_read(r, &(read_answer){.lo = 1, .hi = 3, .head = 3, .first = 1});
    fx_answer(fx, r);
    json_t *res = expect_result(c, 0, 2);
    assert_false(jbool(res, "recovered"));
    assert_string_equal(jstr(res, "epoch"), FX_EPOCH);
    expect_pubs(res, 1, 3);
    json_t *gap = expect_push(c, 1, "gap");
    assert_string_equal(jstr(gap, "epoch"), FX_EPOCH);
    assert_int_equal(jint(gap, "from"), 1);
    assert_int_equal(jint(gap, "to"), 5);
    fx_free(fx);
}

/* ---- catch-up pages --------------------------------------------------------------- */

static void small_queue(config *c)
{
    c->limits.outbound_queue_bytes = 8192;
}

/* Answers a catch-up page READ as the engine would for a channel whose
 * head is head: forward from since_offset, at most limit pubs. */
static void answer_page(fixture *fx, uint64_t head)
{
    engine_req *r = fx_take(fx, ENGINE_READ);
    assert_int_equal(r->mode, ENGINE_READ_HISTORY);
    assert_true(r->has_since);
    assert_true(r->limit >= 1 && r->limit <= 256);
    uint64_t lo = r->since_offset + 1;
    uint64_t hi = head - r->since_offset > r->limit ? r->since_offset + r->limit : head;
    fx_fill_read(r,
                 &(read_answer){.lo = lo, .hi = hi, .head = head, .first = 1, .more = hi < head});
    fx_answer(fx, r);
}

/* Offsets of the pub pushes recorded from message `from` on. */
static size_t pushed_offsets(fake_conn *c, size_t from, uint64_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = from; i < c->nmsgs && n < cap; i++)
        if (c->msgs[i].kind == OUT_PUB) out[n++] = (uint64_t)jint(conn_json(c, i), "offset");
    return n;
}

/* Streams pages until the subscription is live; a page is asked for only
 * while the queue is below its low-water mark. Returns the pages read. */
static int stream_pages(fixture *fx, fake_conn *c, uint64_t head)
{
    int pages = 0;
    while (!session_subscribed(c->s, "room")) {
        if (!fx->nreqs) {
            assert_true(c->base.queued >= fx->cfg.limits.outbound_queue_bytes / 2);
            conn_drain(c);
        }
        assert_int_equal(fx->nreqs, 1); /* one page in flight at a time */
        answer_page(fx, head);
        pages++;
    }
    return pages;
}

static void big_recovery_continues_as_pages_on_drain(void **state)
{
    (void)state;
    fixture *fx = fx_new(small_queue);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "room", "{\"offset\":0,\"epoch\":\"" FX_EPOCH "\"}");
    engine_req *r = take_subscribe_read(fx, ENGINE_READ_RECOVER, 0, FX_EPOCH);
    fx_fill_read(r, &(read_answer){.lo = 1, .hi = 200, .head = 200, .first = 1, .recovered = 1});
    fx_answer(fx, r);
    json_t *res = expect_result(c, 0, 2);
    assert_true(jbool(res, "recovered"));
    assert_true(jbool(res, "more"));
    size_t k = json_array_size(json_object_get(res, "pubs"));
    assert_true(k > 0 && k < 200);
    assert_true(strlen(c->msgs[0].text) <= 8192 / 2 + 512); /* half the queue, give or take */
    expect_pubs(res, 1, k);
    assert_false(session_subscribed(c->s, "room")); /* not live while catching up */
    fan(fx, "room", 201, 201);                      /* skipped: the pages will read it */
    assert_true(stream_pages(fx, c, 201) > 1);
    uint64_t got[256];
    size_t n = pushed_offsets(c, 1, got, 256);
    assert_int_equal(n, 201 - k);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(got[i], k + 1 + i);
    fan(fx, "room", 201, 202); /* live now: 201 was paged, 202 is new */
    assert_int_equal(pushed_offsets(c, 1, got, 256), 202 - k);
    expect_pub(c, c->nmsgs - 1, "room", 202);
    assert_int_equal(c->close_code, 0);
    fx_free(fx);
}

/* ---- limits ---------------------------------------------------------------------- */

static void twice_is_already_subscribed(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "room", NULL);
    subscribe(c, 3, "room", NULL); /* before the READ answers */
    assert_string_equal(expect_error(c, 0, 3, 105), "already subscribed");
    fx_answer_read(fx, &(read_answer){.lo = 1, .hi = 0, .head = 0});
    expect_result(c, 1, 2);
    subscribe(c, 4, "room", NULL); /* and after */
    expect_error(c, 2, 4, 105);
    assert_int_equal(fx->nreqs, 0);
    fx_free(fx);
}

static void two_channels(config *c)
{
    c->limits.max_channels_per_connection = 2;
}

static void too_many_channels_is_106(void **state)
{
    (void)state;
    fixture *fx = fx_new(two_channels);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "a", NULL);
    subscribe(c, 3, "b", NULL);
    subscribe(c, 4, "c", NULL);
    assert_int_equal(c->nmsgs, 1);
    assert_string_equal(expect_error(c, 0, 4, 106), "limit exceeded");
    assert_int_equal(fx->nreqs, 2);
    /* Leaving one makes room again. */
    conn_send(c, "{\"id\":5,\"method\":\"unsubscribe\",\"params\":{\"channel\":\"a\"}}");
    expect_result(c, 1, 5);
    subscribe(c, 6, "c", NULL);
    assert_int_equal(fx->nreqs, 3);
    fx_free(fx);
}

static void unknown_namespace_and_bad_channel(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "nope:x", NULL);
    subscribe(c, 3, "bad channel", NULL);
    expect_error(c, 0, 2, 102);
    expect_error(c, 1, 3, 107);
    assert_int_equal(fx->nreqs, 0);
    fx_free(fx);
}

/* ---- the race of unsubscribe and resubscribe with the READ --------------------- */

static void resubscribe_before_the_answer_uses_the_new_read(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "room", NULL);
    conn_send(c, "{\"id\":3,\"method\":\"unsubscribe\",\"params\":{\"channel\":\"room\"}}");
    subscribe(c, 4, "room", NULL);
    assert_int_equal(fx->nreqs, 2);
    fx_answer_read(fx, &(read_answer){.lo = 1, .hi = 0, .head = 5, .first = 1});
    expect_result(c, 0, 3);
    assert_string_equal(expect_error(c, 1, 2, 107), "bad request: unsubscribed meanwhile");
    /* The stale answer did not make the new subscription live: a pub the new
     * READ covers is not pushed now. */
    fan(fx, "room", 6, 6);
    assert_int_equal(c->nmsgs, 2);
    fx_answer_read(fx, &(read_answer){.lo = 1, .hi = 0, .head = 6, .first = 1});
    json_t *res = expect_result(c, 2, 4);
    assert_int_equal(jint(res, "offset"), 6);
    fan(fx, "room", 6, 7);
    assert_int_equal(c->nmsgs, 4);
    expect_pub(c, 3, "room", 7);
    fx_free(fx);
}

static void unsubscribe_before_the_answer(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "room", NULL);
    conn_send(c, "{\"id\":3,\"method\":\"unsubscribe\",\"params\":{\"channel\":\"room\"}}");
    fx_answer_read(fx, &(read_answer){.lo = 1, .hi = 0, .head = 5, .first = 1});
    assert_int_equal(c->nmsgs, 2);
    expect_result(c, 0, 3);
    assert_string_equal(expect_error(c, 1, 2, 107), "bad request: unsubscribed meanwhile");
    fan(fx, "room", 6, 6);
    assert_int_equal(c->nmsgs, 2);
    assert_false(session_subscribed(c->s, "room"));
    fx_free(fx);
}

/* ---- live pubs around recovery ------------------------------------------------------- */

static void live_pubs_while_recovering_come_once_in_order(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe(c, 2, "room", "{\"offset\":3,\"epoch\":\"" FX_EPOCH "\"}");
    fan(fx, "room", 4, 5); /* committed before the READ: it will carry them */
    assert_int_equal(c->nmsgs, 0);
    fx_answer_read(fx, &(read_answer){.lo = 4, .hi = 5, .head = 5, .first = 1, .recovered = 1});
    expect_pubs(expect_result(c, 0, 2), 4, 5);
    fan(fx, "room", 5, 9); /* 5 again (already in the result), then a run */
    fan(fx, "room", 10, 10);
    assert_int_equal(c->nmsgs, 6);
    for (uint64_t o = 6; o <= 10; o++)
        expect_pub(c, (size_t)(o - 5), "room", o);
    fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(without_since_starts_at_the_head),
        cmocka_unit_test(since_within_retention_recovers_exactly_the_missed),
        cmocka_unit_test(since_at_the_head_misses_nothing),
        cmocka_unit_test(since_older_than_retention_is_a_gap),
        cmocka_unit_test(foreign_epoch_is_a_gap_from_one),
        cmocka_unit_test(big_recovery_continues_as_pages_on_drain),
        cmocka_unit_test(twice_is_already_subscribed),
        cmocka_unit_test(too_many_channels_is_106),
        cmocka_unit_test(unknown_namespace_and_bad_channel),
        cmocka_unit_test(resubscribe_before_the_answer_uses_the_new_read),
        cmocka_unit_test(unsubscribe_before_the_answer),
        cmocka_unit_test(live_pubs_while_recovering_come_once_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
