/* Protocol session tests of `publish`: a stored publish is answered only
 * when storage has committed it (after its pub reached the subscribers),
 * duplicates and storage failures as the engine reports them, ephemeral
 * publishes answered at once and fanned out, and the refusals (bad params,
 * no client publish, unknown namespace) with their codes. */
#include <stdio.h>
#include <string.h>

#include "session_helpers.h"

static fake_conn *connected(fixture *fx, const char *user)
{
    fake_conn *c = fx_conn(fx);
    conn_connect(c, user);
    return c;
}

/* A live subscriber of ch at head. */
static fake_conn *subscriber(fixture *fx, const char *ch, uint64_t head)
{
    fake_conn *c = connected(fx, "carol");
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "{\"id\":2,\"method\":\"subscribe\",\"params\":{\"channel\":\"%s\"}}", ch);
    conn_send(c, cmd);
    fx_answer_read(fx, &(read_answer){.lo = 1, .hi = 0, .head = head, .first = 1});
    expect_result(c, 0, 2);
    conn_clear(c);
    return c;
}

static void publish(fake_conn *c, int id, const char *params)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "{\"id\":%d,\"method\":\"publish\",\"params\":%s}", id, params);
    conn_send(c, cmd);
}

static void stored_publish_is_answered_when_committed(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *sub = subscriber(fx, "room", 41);
    fake_conn *c = connected(fx, "alice");
    publish(c, 5, "{\"channel\":\"room\",\"data\":{\"text\":\"hi\"},\"type\":\"msg\"}");
    assert_int_equal(c->nmsgs, 0); /* nothing before storage answers */
    engine_req *r = fx_take(fx, ENGINE_PUBLISH);
    assert_string_equal(r->pub->channel, "room");
    assert_string_equal(r->pub->user, "alice");
    assert_int_equal(r->pub->data_len, strlen("{\"text\":\"hi\"}"));
    assert_int_equal(r->history_size, 1000); /* the namespace's retention */
    assert_int_equal(sub->nmsgs, 0);
    fx_commit(fx, r, 42);
    assert_int_equal(c->nmsgs, 1);
    json_t *res = expect_result(c, 0, 5);
    assert_int_equal(strlen(jstr(res, "id")), 26);
    assert_int_equal(jint(res, "offset"), 42);
    assert_string_equal(jstr(res, "epoch"), FX_EPOCH);
    assert_false(jbool(res, "duplicate"));
    /* The subscriber got the pub, the same id, the publisher's identity. */
    json_t *p = expect_push(sub, 0, "pub");
    assert_int_equal(jint(p, "offset"), 42);
    assert_string_equal(jstr(p, "id"), jstr(res, "id"));
    assert_string_equal(jstr(p, "type"), "msg");
    assert_string_equal(jstr(json_object_get(p, "info"), "user"), "alice");
    assert_string_equal(jstr(json_object_get(p, "data"), "text"), "hi");
    fx_free(fx);
}

/* The engine replaces a duplicate by the stored original. */
static void duplicate_publish_answers_the_original(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx, "alice");
    publish(c, 5, "{\"channel\":\"room\",\"data\":1,\"idempotency_key\":\"k1\"}");
    engine_req *r = fx_take(fx, ENGINE_PUBLISH);
    assert_string_equal(r->pub->idem_key, "k1");
    pub_unref(r->pub);
    r->pub = fx_pub("room", 17);
    r->duplicate = 1;
    r->status = PL_OK;
    fx_answer(fx, r);
    json_t *res = expect_result(c, 0, 5);
    assert_int_equal(jint(res, "offset"), 17);
    assert_true(jbool(res, "duplicate"));
    fx_free(fx);
}

static void storage_failure_is_113(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx, "alice");
    publish(c, 5, "{\"channel\":\"room\",\"data\":1}");
    engine_req *r = fx_take(fx, ENGINE_PUBLISH);
    r->status = PL_EIO;
    fx_answer(fx, r);
    assert_int_equal(c->nmsgs, 1);
    assert_string_equal(expect_error(c, 0, 5, 113), "storage unavailable");
    assert_true(jbool(json_object_get(conn_json(c, 0), "error"), "temporary"));
    assert_int_equal(c->close_code, 0);
    fx_free(fx);
}

/* The answer of a connection that went away meanwhile goes nowhere. */
static void answer_after_the_connection_left(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx, "alice");
    publish(c, 5, "{\"channel\":\"room\",\"data\":1}");
    fx_conn_gone(c);
    fx_commit(fx, fx_take(fx, ENGINE_PUBLISH), 1);
    assert_int_equal(c->nmsgs, 0);
    fx_free(fx);
}

static void ephemeral_publish_is_answered_at_once(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *sub = subscriber(fx, "room", 3);
    fake_conn *c = connected(fx, "alice");
    publish(c, 5, "{\"channel\":\"room\",\"data\":{\"x\":1},\"class\":\"ephemeral\"}");
    assert_int_equal(fx->nreqs, 0); /* never stored */
    assert_int_equal(fx->broadcasts, 1);
    json_t *res = expect_result(c, 0, 5);
    assert_int_equal(jint(res, "offset"), 0);
    assert_string_equal(jstr(res, "epoch"), "");
    assert_false(jbool(res, "duplicate"));
    json_t *p = expect_push(sub, 0, "pub");
    assert_int_equal(jint(p, "offset"), 0);
    assert_null(json_object_get(p, "epoch"));
    assert_string_equal(jstr(p, "class"), "ephemeral");
    assert_string_equal(jstr(p, "id"), jstr(res, "id"));
    fx_free(fx);
}

static void bad_params_are_107(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx, "alice");
    publish(c, 1, "{\"channel\":\"room\"}");                                  /* no data */
    publish(c, 2, "{\"channel\":\"bad channel\",\"data\":1}");                /* name */
    publish(c, 3, "{\"data\":1}");                                            /* no channel */
    publish(c, 4, "{\"channel\":\"room\",\"data\":1,\"class\":\"loud\"}");    /* class */
    publish(c, 5, "{\"channel\":\"room\",\"data\":1,\"headers\":{\"a\":1}}"); /* headers */
    assert_int_equal(c->nmsgs, 5);
    /* Each names what is wrong (the channel errors come from its own check). */
    static const char *const why[5] = {"bad request: data: missing", "bad request", "bad request",
                                       "bad request: class: expected ephemeral, standard or "
                                       "guaranteed",
                                       "bad request: headers: every value must be a string"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(expect_error(c, (size_t)i, i + 1, 107), why[i]);
    assert_int_equal(fx->nreqs, 0);
    assert_int_equal(c->close_code, 0);
    fx_free(fx);
}

static void refusals_by_namespace(void **state)
{
    (void)state;
    fixture *fx = fx_new(NULL);
    fake_conn *c = connected(fx, "alice");
    publish(c, 1, "{\"channel\":\"news:today\",\"data\":1}"); /* client_publish off */
    publish(c, 2, "{\"channel\":\"nope:x\",\"data\":1}");
    publish(c, 3, "{\"channel\":\"dm:#bob,carol\",\"data\":1}"); /* not alice's */
    /* Each refusal names the rule. */
    assert_string_equal(expect_error(c, 0, 1, 103),
                        "permission denied: the namespace does not allow client publish");
    assert_string_equal(expect_error(c, 1, 2, 102),
                        "unknown channel or namespace: no namespace 'nope' is configured");
    assert_string_equal(expect_error(c, 2, 3, 103),
                        "permission denied: not in the channel's user list");
    assert_int_equal(fx->nreqs, 0);
    fx_free(fx);
}

static void small_messages(config *c)
{
    c->limits.max_message_bytes = 8;
}

static void data_over_the_limit_is_106(void **state)
{
    (void)state;
    fixture *fx = fx_new(small_messages);
    fake_conn *c = connected(fx, "alice");
    publish(c, 1, "{\"channel\":\"room\",\"data\":\"123456789\"}");
    assert_string_equal(expect_error(c, 0, 1, 106),
                        "limit exceeded: the pub is 11 bytes (data, headers, type, correlation_id);"
                        " limits.max_message_bytes is 8");
    assert_int_equal(fx->nreqs, 0);
    fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stored_publish_is_answered_when_committed),
        cmocka_unit_test(duplicate_publish_answers_the_original),
        cmocka_unit_test(storage_failure_is_113),
        cmocka_unit_test(answer_after_the_connection_left),
        cmocka_unit_test(ephemeral_publish_is_answered_at_once),
        cmocka_unit_test(bad_params_are_107),
        cmocka_unit_test(refusals_by_namespace),
        cmocka_unit_test(data_over_the_limit_is_106),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
