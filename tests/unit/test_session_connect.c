/* Protocol session tests of `connect`: what a client sees for a missing,
 * invalid, expired and valid token, a second connect, a command before
 * connect, and a connect whose `subs` answer only once every subscription's
 * READ has. Runs whole sessions against the fixture of session_helpers.h. */
#include <stdio.h>
#include <string.h>

#include "auth/jwt.h"
#include "session_helpers.h"
#include "util/mem.h"

static void send_connect(fake_conn *c, const char *tok)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "{\"id\":1,\"method\":\"connect\",\"params\":{\"token\":\"%s\"}}",
             tok);
    conn_send(c, cmd);
}

static void no_token_is_unauthorized_and_closes(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = fx_conn(fx);
    conn_send(c, "{\"id\":1,\"method\":\"connect\",\"params\":{}}");
    assert_int_equal(c->nmsgs, 1);
    assert_string_equal(expect_error(c, 0, 1, 101), "unauthorized: token required");
    assert_int_equal(c->close_code, 4500);
    assert_false(session_connected(c->s));
    fx_free(fx);
}

static void bad_token_is_unauthorized_and_closes(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *garbage = fx_conn(fx), *forged = fx_conn(fx);
    send_connect(garbage, "not.a.token");
    /* A well-formed token signed with another secret. */
    char *tok = jwt_sign_hs256("another-secret", 14, "{\"sub\":\"eve\"}", 13);
    assert_non_null(tok);
    send_connect(forged, tok);
    pl_free(tok);
    fake_conn *both[] = {garbage, forged};
    /* The category of the failure, never the token. */
    static const char *const why[] = {"unauthorized: token malformed",
                                      "unauthorized: bad signature"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(both[i]->nmsgs, 1);
        assert_string_equal(expect_error(both[i], 0, 1, 101), why[i]);
        assert_int_equal(both[i]->close_code, 4500);
        assert_false(session_connected(both[i]->s));
    }
    fx_free(fx);
}

static void expired_token_is_109_and_closes_with_4504(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = fx_conn(fx);
    char *tok = fx_token("alice", -60, NULL);
    send_connect(c, tok);
    pl_free(tok);
    assert_int_equal(c->nmsgs, 1);
    assert_string_equal(expect_error(c, 0, 1, 109), "token expired");
    assert_int_equal(c->close_code, 4504);
    assert_false(session_connected(c->s));
    fx_free(fx);
}

static void good_token_connects(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = fx_conn(fx);
    char *tok = fx_token("alice", 3600, NULL);
    send_connect(c, tok);
    pl_free(tok);
    assert_int_equal(c->nmsgs, 1);
    json_t *res = expect_result(c, 0, 1);
    assert_int_equal(strlen(jstr(res, "client")), 26); /* a ULID */
    assert_string_equal(jstr(res, "user"), "alice");
    assert_string_equal(jstr(res, "tenant"), "default");
    assert_true(jint(res, "expires_at") > 0);
    assert_int_equal(jint(res, "ping"), 25);
    json_t *lim = json_object_get(res, "limits");
    assert_non_null(lim);
    assert_int_equal(jint(lim, "typing_interval"), 2000);
    assert_int_equal(jint(lim, "max_frame_bytes"), 1 << 20);
    assert_int_equal(jint(lim, "max_message_bytes"), 65536);
    assert_int_equal(jint(lim, "max_channels_per_connection"), 128);
    assert_int_equal(json_object_size(json_object_get(res, "subs")), 0);
    assert_int_equal(c->close_code, 0);
    assert_true(session_connected(c->s));
    assert_int_equal(fx->nreqs, 0); /* nothing asked of storage */
    fx_free(fx);
}

static void second_connect_is_refused_and_stays_open(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = fx_conn(fx);
    conn_connect(c, "alice");
    char *tok = fx_token("mallory", 3600, NULL);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "{\"id\":7,\"method\":\"connect\",\"params\":{\"token\":\"%s\"}}",
             tok);
    pl_free(tok);
    conn_send(c, cmd);
    assert_int_equal(c->nmsgs, 1);
    assert_string_equal(expect_error(c, 0, 7, 107), "bad request: already connected");
    assert_int_equal(c->close_code, 0);
    /* Still alice: a pong with an id is answered. */
    conn_send(c, "{\"id\":8,\"method\":\"pong\"}");
    expect_result(c, 1, 8);
    fx_free(fx);
}

/* The rest of the batch is not run once the connection is closing. */
static void command_before_connect_closes(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = fx_conn(fx);
    conn_send(c, "{\"id\":1,\"method\":\"subscribe\",\"params\":{\"channel\":\"room\"}}\n"
                 "{\"id\":2,\"method\":\"publish\",\"params\":{\"channel\":\"room\",\"data\":1}}");
    assert_int_equal(c->nmsgs, 1);
    assert_string_equal(expect_error(c, 0, 1, 101), "unauthorized: connect first");
    assert_int_equal(c->close_code, 4501);
    assert_int_equal(fx->nreqs, 0);
    fx_free(fx);
}

static void connect_subs_command(fake_conn *c)
{
    char *tok = fx_token("alice", 3600, NULL);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "{\"id\":1,\"method\":\"connect\",\"params\":{\"token\":\"%s\",\"subs\":{"
             "\"room\":{\"offset\":3,\"epoch\":\"" FX_EPOCH "\"},"
             "\"chat:lobby\":{},\"nope:x\":{}}}}",
             tok);
    pl_free(tok);
    conn_send(c, cmd);
}

/* The READs carry what each subscription asked for: room recovers from 3. */
static void answer_connect_reads(fixture *fx, fake_conn *c)
{
    engine_req *room = fx_take(fx, ENGINE_READ);
    assert_string_equal(room->channel, "room");
    assert_int_equal(room->mode, ENGINE_READ_RECOVER);
    assert_int_equal(room->since_offset, 3);
    assert_string_equal(room->since_epoch, FX_EPOCH);
    fx_fill_read(room, &(read_answer){.lo = 4, .hi = 5, .head = 5, .first = 1, .recovered = 1});
    fx_answer(fx, room);
    assert_int_equal(c->nmsgs, 0); /* chat:lobby has not answered */
    engine_req *lobby = fx_take(fx, ENGINE_READ);
    assert_string_equal(lobby->channel, "chat:lobby");
    assert_int_equal(lobby->mode, ENGINE_READ_HISTORY);
    fx_fill_read(lobby, &(read_answer){.lo = 1, .hi = 0, .head = 9, .first = 1});
    fx_answer(fx, lobby);
}

static void connect_with_subs_answers_after_every_read(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = fx_conn(fx);
    connect_subs_command(c);
    assert_int_equal(c->nmsgs, 0);
    assert_int_equal(fx->nreqs, 2);
    answer_connect_reads(fx, c);
    assert_int_equal(c->nmsgs, 1);
    json_t *subs = json_object_get(expect_result(c, 0, 1), "subs");
    assert_int_equal(json_object_size(subs), 3);
    json_t *room = json_object_get(subs, "room");
    assert_true(jbool(room, "recovered"));
    assert_int_equal(jint(room, "offset"), 5);
    expect_pubs(room, 4, 5);
    json_t *lobby = json_object_get(subs, "chat:lobby");
    assert_false(jbool(lobby, "recovered"));
    assert_int_equal(jint(lobby, "offset"), 9);
    expect_pubs(lobby, 1, 0);
    json_t *err = json_object_get(json_object_get(subs, "nope:x"), "error");
    assert_int_equal(jint(err, "code"), 102);
    /* Both subscriptions are live: the next pub of each arrives. */
    pl_pub *p[] = {fx_pub("room", 6), fx_pub("chat:lobby", 10)};
    fanout_pubs(fx->host.fan, p, 2);
    pub_unref(p[0]);
    pub_unref(p[1]);
    assert_int_equal(c->nmsgs, 3);
    expect_pub(c, 1, "room", 6);
    expect_pub(c, 2, "chat:lobby", 10);
    fx_free(fx);
}

/* A subscription of the connect that storage fails is an error in `subs`;
 * the connect itself succeeds. */
static void connect_sub_storage_failure_is_reported_in_subs(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = fx_conn(fx);
    connect_subs_command(c);
    engine_req *room = fx_take(fx, ENGINE_READ);
    room->status = PL_EIO;
    fx_answer(fx, room);
    fx_answer_read(fx, &(read_answer){.lo = 1, .hi = 0, .head = 0});
    json_t *subs = json_object_get(expect_result(c, 0, 1), "subs");
    json_t *err = json_object_get(json_object_get(subs, "room"), "error");
    assert_int_equal(jint(err, "code"), 113);
    assert_int_equal(jint(json_object_get(subs, "chat:lobby"), "offset"), 0);
    assert_false(session_subscribed(c->s, "room"));
    assert_true(session_subscribed(c->s, "chat:lobby"));
    fx_free(fx);
}

/* A client may leave a channel of its connect's subs before that READ
 * answers (the session is connected from the connect on): the connect is
 * still answered, naming the channel as unsubscribed meanwhile. */
static void connect_answers_when_a_sub_is_left_before_its_read(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = fx_conn(fx);
    connect_subs_command(c);
    conn_send(c, "{\"id\":2,\"method\":\"unsubscribe\",\"params\":{\"channel\":\"room\"}}");
    expect_result(c, 0, 2);
    fx_answer_read(fx, &(read_answer){.lo = 4, .hi = 5, .head = 5, .first = 1, .recovered = 1});
    fx_answer_read(fx, &(read_answer){.lo = 1, .hi = 0, .head = 9, .first = 1});
    assert_int_equal(c->nmsgs, 2);
    json_t *subs = json_object_get(expect_result(c, 1, 1), "subs");
    json_t *err = json_object_get(json_object_get(subs, "room"), "error");
    assert_int_equal(jint(err, "code"), 107);
    assert_string_equal(jstr(err, "message"), "bad request: unsubscribed meanwhile");
    assert_int_equal(jint(json_object_get(subs, "chat:lobby"), "offset"), 9);
    assert_false(session_subscribed(c->s, "room"));
    fx_free(fx);
}

static void one_connection_per_user(config *c)
{
    c->limits.max_connections_per_user = 1;
}

/* Past the user's connection limit: 106 and close 4502. The refused
 * session gives back no count it did not take: when the first connection
 * leaves, the user may connect again. */
static void connection_limit_refuses_and_closes_4502(void **state)
{
    (void)state;
    fixture *fx = fx_new(one_connection_per_user);
    fake_conn *first = fx_conn(fx);
    conn_connect(first, "alice");
    fake_conn *second = fx_conn(fx);
    char *tok = fx_token("alice", 3600, NULL);
    send_connect(second, tok);
    assert_string_equal(expect_error(second, 0, 1, 106), "limit exceeded: too many connections");
    assert_int_equal(second->close_code, 4502);
    fx_conn_gone(second);
    fake_conn *third = fx_conn(fx);
    send_connect(third, tok);
    expect_error(third, 0, 1, 106); /* the first still holds the one */
    fx_conn_gone(first);
    fake_conn *fourth = fx_conn(fx);
    send_connect(fourth, tok);
    pl_free(tok);
    assert_string_equal(jstr(expect_result(fourth, 0, 1), "user"), "alice");
    fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_token_is_unauthorized_and_closes),
        cmocka_unit_test(bad_token_is_unauthorized_and_closes),
        cmocka_unit_test(expired_token_is_109_and_closes_with_4504),
        cmocka_unit_test(good_token_connects),
        cmocka_unit_test(second_connect_is_refused_and_stays_open),
        cmocka_unit_test(command_before_connect_closes),
        cmocka_unit_test(connect_with_subs_answers_after_every_read),
        cmocka_unit_test(connect_sub_storage_failure_is_reported_in_subs),
        cmocka_unit_test(connect_answers_when_a_sub_is_left_before_its_read),
        cmocka_unit_test(connection_limit_refuses_and_closes_4502),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
