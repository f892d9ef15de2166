/* Protocol session tests of the connection's flow: a connection that stops
 * taking what is written (slow consumer), pings and the pong deadline, token
 * expiry, and a whole connect, subscribe and publish run with every
 * allocation in turn failing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_helpers.h"
#include "util/mem.h"

static fake_conn *connected(fixture *fx)
{
    fake_conn *c = fx_conn(fx);
    conn_connect(c, "alice");
    return c;
}

static void subscribe_room(fake_conn *c, const char *since_json)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "{\"id\":2,\"method\":\"subscribe\",\"params\":{\"channel\":\"room\"%s%s}}",
             since_json ? ",\"since\":" : "", since_json ? since_json : "");
    conn_send(c, cmd);
}

static void fan_one(fixture *fx, uint64_t off)
{
    pl_pub *p = fx_pub("room", off);
    fanout_pubs(fx->host.fan, &p, 1);
    pub_unref(p);
}

/* ---- slow consumer ---------------------------------------------------------------- */

/* A reply is queued past the bound that cuts pushes (the session pauses
 * reading instead), but not past the hard cap: a subscribe result that
 * does not fit under it closes the connection as a slow consumer; the
 * subscription stays consistent and nothing more is written. */
static void result_past_the_hard_cap_closes_4001(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe_room(c, NULL);
    c->base.queued = fx->cfg.limits.outbound_queue_bytes * SINK_HARD_CAP_FACTOR - 10;
    fx_answer_read(fx, &(read_answer){.lo = 1, .hi = 0, .head = 3, .first = 1});
    assert_int_equal(c->nmsgs, 0);
    assert_int_equal(c->close_code, 4001);
    fan_one(fx, 4);
    conn_send(c, "{\"id\":3,\"method\":\"publish\",\"params\":{\"channel\":\"room\",\"data\":1}}");
    assert_int_equal(c->nmsgs, 0);
    assert_int_equal(fx->nreqs, 0); /* a closing connection runs no command */
    fx_free(fx);                    /* ASan: the session frees cleanly */
}

static void live_pub_past_the_queue_bound_closes_4001(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    subscribe_room(c, NULL);
    fx_answer_read(fx, &(read_answer){.lo = 1, .hi = 0, .head = 3, .first = 1});
    fan_one(fx, 4);
    assert_int_equal(c->nmsgs, 2);
    c->base.queued = fx->cfg.limits.outbound_queue_bytes - 10; /* of pushes */
    c->base.replies = 0;
    fan_one(fx, 5);
    fan_one(fx, 6);
    assert_int_equal(c->close_code, 4001);
    assert_int_equal(c->nmsgs, 2);
    expect_pub(c, 1, "room", 4);
    fx_free(fx);
}

static void small_queue(config *c)
{
    c->limits.outbound_queue_bytes = 8192;
}

/* A catch-up page refused by a connection past its bound: the connection
 * is closing, and no further page is read for it (the client resumes by
 * offset on its next connection). */
static void catchup_page_refused_reads_no_more_pages(void **state)
{
    (void)state;
    fixture *fx = fx_new(small_queue);
    fake_conn *c = connected(fx);
    subscribe_room(c, "{\"offset\":0,\"epoch\":\"" FX_EPOCH "\"}");
    fx_answer_read(fx, &(read_answer){.lo = 1, .hi = 500, .head = 500, .first = 1, .recovered = 1});
    assert_true(jbool(expect_result(c, 0, 2), "more"));
    if (!fx->nreqs) conn_drain(c);
    engine_req *r = fx_take(fx, ENGINE_READ);
    /* The client stopped reading: the page overflows the queue. */
    c->base.queued = fx->cfg.limits.outbound_queue_bytes - 100; /* of pushes */
    c->base.replies = 0;
    uint64_t lo = r->since_offset + 1, hi = r->since_offset + r->limit;
    fx_fill_read(r, &(read_answer){.lo = lo, .hi = hi, .head = 500, .first = 1, .more = 1});
    fx_answer(fx, r);
    assert_int_equal(c->close_code, 4001);
    assert_int_equal(fx->nreqs, 0);
    conn_drain(c); /* what was queued before the close is written */
    assert_int_equal(fx->nreqs, 0);
    fx_free(fx);
}

/* ---- backpressure on what the client caused ---------------------------------- */

static void publish_n(fake_conn *c, int first, int n)
{
    char cmd[128];
    for (int i = 0; i < n; i++) {
        snprintf(cmd, sizeof(cmd),
                 "{\"id\":%d,\"method\":\"publish\",\"params\":{\"channel\":\"room\",\"data\":1}}",
                 first + i);
        conn_send(c, cmd);
    }
}

/* Publishes pipelined faster than storage answers: reading stops at 512 in
 * flight and starts again once half of them are answered, and every one
 * is answered (none refused, no close). */
static void pipelined_publishes_pause_reading_until_answered(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    publish_n(c, 100, 511);
    assert_false(c->reading_paused);
    publish_n(c, 611, 1);
    assert_true(c->reading_paused);
    uint64_t off = 1;
    for (int i = 0; i < 255; i++)
        fx_commit(fx, fx_take(fx, ENGINE_PUBLISH), off++);
    assert_true(c->reading_paused); /* 257 in flight */
    fx_commit(fx, fx_take(fx, ENGINE_PUBLISH), off++);
    assert_false(c->reading_paused);
    while (fx->nreqs)
        fx_commit(fx, fx_take(fx, ENGINE_PUBLISH), off++);
    assert_int_equal(c->nmsgs, 512);
    for (size_t i = 0; i < c->nmsgs; i++)
        assert_int_equal(jint(expect_result(c, i, 100 + (long long)i), "offset"), (long long)i + 1);
    assert_int_equal(c->close_code, 0);
    fx_free(fx);
}

static void pong_n(fake_conn *c, int n)
{
    char cmd[64];
    for (int i = 0; i < n; i++) {
        snprintf(cmd, sizeof(cmd), "{\"id\":%d,\"method\":\"pong\"}", i);
        conn_send(c, cmd);
    }
}

/* Replies the client does not take: reading stops once they fill half the
 * queue and resumes when they are written; replies past the queue bound
 * never cut the client (pushes would). */
static void unread_replies_pause_reading_never_cut(void **state)
{
    (void)state;
    fixture *fx = fx_new(small_queue);
    fake_conn *c = connected(fx);
    size_t bound = fx->cfg.limits.outbound_queue_bytes;
    while (!c->reading_paused && c->nmsgs < 10000)
        pong_n(c, 1);
    assert_true(c->base.replies >= bound / 2);
    pong_n(c, (int)(bound / 16)); /* what one read still holds */
    assert_true(c->base.replies > bound);
    assert_int_equal(c->close_code, 0);
    conn_drain(c);
    assert_false(c->reading_paused);
    fx_free(fx);
}

/* ---- pings -------------------------------------------------------------------- */

static void ping_each_interval_and_close_without_pong(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    fx_advance_ms(fx, 24999);
    session_tick(c->s);
    assert_int_equal(c->nmsgs, 0);
    fx_advance_ms(fx, 1);
    session_tick(c->s);
    assert_int_equal(c->nmsgs, 1);
    assert_string_equal(c->msgs[0].text, "{\"push\":\"ping\"}");
    fx_advance_ms(fx, 24999);
    session_tick(c->s);
    assert_int_equal(c->close_code, 0);
    fx_advance_ms(fx, 1);
    session_tick(c->s);
    assert_int_equal(c->close_code, 4003);
    assert_string_equal(c->close_reason, "no pong");
    assert_int_equal(c->nmsgs, 1);
    fx_free(fx);
}

/* A pong, or any other frame, proves the peer alive. */
static void any_frame_answers_a_ping(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx);
    const char *frames[] = {
        "{\"method\":\"pong\"}",
        "{\"id\":9,\"method\":\"presence_stats\",\"params\":{\"channel\":\"x\"}}",
        "{\"id\":10,\"method\":\"no_such_method\"}"};
    for (int i = 0; i < 3; i++) {
        fx_advance_ms(fx, 25000);
        session_tick(c->s);
        expect_push(c, c->nmsgs - 1, "ping");
        conn_send(c, frames[i]);
    }
    fx_advance_ms(fx, 25000);
    session_tick(c->s);
    expect_push(c, c->nmsgs - 1, "ping");
    assert_int_equal(c->close_code, 0);
    /* The fire-and-forget pong got no answer; the others did. */
    assert_int_equal(jint(expect_result(c, 2, 9), "clients"), 0);
    expect_error(c, 4, 10, 104);
    fx_free(fx);
}

static void expired_token_closes_4504_on_tick(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = fx_conn(fx);
    char *tok = fx_token("alice", 30, NULL);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "{\"id\":1,\"method\":\"connect\",\"params\":{\"token\":\"%s\"}}",
             tok);
    pl_free(tok);
    conn_send(c, cmd);
    expect_result(c, 0, 1);
    fx_advance_ms(fx, 31000);
    session_tick(c->s);
    assert_int_equal(c->close_code, 4504);
    fx_free(fx);
}

/* ---- out of memory ---------------------------------------------------------------- */

/* 1 when c got an answer to command id, and not an error. */
static int answered(fake_conn *c, long long id)
{
    for (size_t i = 0; i < c->nmsgs; i++) {
        json_t *m = conn_json(c, i);
        json_t *v = json_object_get(m, "id");
        if (json_is_integer(v) && json_integer_value(v) == id)
            return json_object_get(m, "result") != NULL;
    }
    return 0;
}

/* Connect, subscribe with recovery, a stored and an ephemeral publish. The
 * test answers whatever storage was asked; its own answers may fail to
 * allocate too, as the engine's may. 1 when everything was answered. */
static int oom_scenario(fixture *fx, const char *connect_cmd)
{
    fake_conn *c = fx_conn(fx);
    if (!c->s) return 0;
    conn_send(c, connect_cmd);
    subscribe_room(c, "{\"offset\":3,\"epoch\":\"" FX_EPOCH "\"}");
    if (fx->nreqs)
        fx_answer_read(fx, &(read_answer){.lo = 4, .hi = 5, .head = 5, .first = 1, .recovered = 1});
    conn_send(c, "{\"id\":3,\"method\":\"publish\",\"params\":{\"channel\":\"room\",\"data\":1}}");
    if (fx->nreqs) fx_commit(fx, fx_take(fx, ENGINE_PUBLISH), 6);
    conn_send(c, "{\"id\":4,\"method\":\"publish\",\"params\":{\"channel\":\"room\",\"data\":2,"
                 "\"class\":\"ephemeral\"}}");
    conn_send(c, "{\"id\":5,\"method\":\"unsubscribe\",\"params\":{\"channel\":\"room\"}}");
    return c->close_code == 0 && answered(c, 1) && answered(c, 2) && answered(c, 3) &&
           answered(c, 4) && answered(c, 5) && c->nmsgs == 7;
}

/* A connect whose subs recover a channel too big for one result: the rest
 * comes as catch-up pages. 1 when the connect was answered and every pub
 * arrived. */
static int oom_catchup_scenario(fixture *fx, const char *connect_cmd)
{
    fake_conn *c = fx_conn(fx);
    if (!c->s) return 0;
    conn_send(c, connect_cmd);
    if (fx->nreqs)
        fx_answer_read(fx,
                       &(read_answer){.lo = 1, .hi = 60, .head = 60, .first = 1, .recovered = 1});
    for (int i = 0; i < 20 && c->close_code == 0 && !session_subscribed(c->s, "room"); i++) {
        if (!fx->nreqs) conn_drain(c);
        if (!fx->nreqs) break;
        engine_req *r = fx_take(fx, ENGINE_READ);
        uint64_t hi = r->since_offset + r->limit < 60 ? r->since_offset + r->limit : 60;
        fx_fill_read(
            r, &(read_answer){
                   .lo = r->since_offset + 1, .hi = hi, .head = 60, .first = 1, .more = hi < 60});
        fx_answer(fx, r);
    }
    size_t pubs = 0;
    for (size_t i = 0; i < c->nmsgs; i++)
        pubs += c->msgs[i].kind == OUT_PUB;
    if (!answered(c, 1) || c->close_code) return 0;
    json_t *room = json_object_get(json_object_get(expect_result(c, 0, 1), "subs"), "room");
    return json_array_size(json_object_get(room, "pubs")) + pubs == 60;
}

static char *connect_command(const char *subs)
{
    char *tok = fx_token("alice", 3600, NULL);
    char *cmd = malloc(2048);
    assert_non_null(cmd);
    snprintf(cmd, 2048, "{\"id\":1,\"method\":\"connect\",\"params\":{\"token\":\"%s\"%s}}", tok,
             subs);
    pl_free(tok);
    return cmd;
}

/* Runs a scenario with the n-th allocation failing for n = 0, 1, ... until
 * it completes; returns the n it completed at. */
static long fail_in_turn(int (*scenario)(fixture *, const char *), const char *cmd,
                         void (*tune)(config *))
{
    int ok = 0;
    long n;
    for (n = 0; n < 10000 && !ok; n++) {
        fixture *fx = fx_new(tune);
        pl_mem_fail_after(n);
        ok = scenario(fx, cmd);
        pl_mem_fail_after(-1);
        fx_free(fx); /* ASan: nothing leaks on any path */
    }
    assert_true(ok);
    return n;
}

static void every_allocation_failing_in_turn(void **state)
{
    (void)state;
    char *cmd = connect_command("");
    /* The run did allocate: failures were exercised on the way. */
    assert_true(fail_in_turn(oom_scenario, cmd, NULL) > 20);
    free(cmd);
}

static void every_allocation_failing_in_turn_catching_up(void **state)
{
    (void)state;
    char *cmd = connect_command(",\"subs\":{\"room\":{\"offset\":0,\"epoch\":\"" FX_EPOCH "\"}}");
    assert_true(fail_in_turn(oom_catchup_scenario, cmd, small_queue) > 20);
    free(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(result_past_the_hard_cap_closes_4001),
        cmocka_unit_test(live_pub_past_the_queue_bound_closes_4001),
        cmocka_unit_test(catchup_page_refused_reads_no_more_pages),
        cmocka_unit_test(pipelined_publishes_pause_reading_until_answered),
        cmocka_unit_test(unread_replies_pause_reading_never_cut),
        cmocka_unit_test(ping_each_interval_and_close_without_pong),
        cmocka_unit_test(any_frame_answers_a_ping),
        cmocka_unit_test(expired_token_closes_4504_on_tick),
        cmocka_unit_test(every_allocation_failing_in_turn),
        cmocka_unit_test(every_allocation_failing_in_turn_catching_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
