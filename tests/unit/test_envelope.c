/* Unit tests for the event envelope: a pub with every field, a minimal
 * (ephemeral) one, escaping of every string, redaction of data and headers;
 * each output is parsed with jansson and must hold exactly the documented
 * members with their types. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hooks/envelope.h"
#include "util/status.h"

#define F(field, s) .field = (s), .field##_len = sizeof(s) - 1

static json_t *load(const sbuf *o)
{
    json_error_t e;
    json_t *j = json_loadb(o->data, o->len, JSON_ALLOW_NUL, &e);
    if (!j) fail_msg("not JSON (%s): %s", e.text, o->data);
    assert_true(json_is_object(j));
    return j;
}

/* The members of j are exactly names (NULL-terminated), in any order. */
static void exactly(json_t *j, const char *const *names)
{
    size_t n = 0;
    for (; names[n]; n++)
        if (!json_object_get(j, names[n])) fail_msg("member %s missing", names[n]);
    assert_int_equal(json_object_size(j), n);
}

static pl_pub *stored(pl_pub *p, uint64_t off)
{
    p->offset = off;
    memcpy(p->id, "01M81XQ6HFGBV8TJ8TV46RPKCC", PUB_ID_LEN + 1);
    memcpy(p->epoch, "0kjk8b3x", PUB_EPOCH_LEN + 1);
    return p;
}

static void everything(void **state)
{
    (void)state;
    pub_fields f = {F(tenant, "acme"),
                    F(channel, "orders:eu"),
                    F(data, "{\"total\": 12.5, \"items\":[1,2]}"),
                    F(user, "alice"),
                    F(type, "order.created"),
                    F(correlation_id, "c-1"),
                    F(headers, "{\"x-trace\":\"abc\"}"),
                    F(idem_key, "k-7"),
                    .now_ms = 1795361053231};
    pl_pub *p = stored(pub_new(&f, PUB_STANDARD), 42);
    sbuf o;
    sbuf_init(&o);
    assert_int_equal(envelope_write(&o, p, NULL), PL_OK);
    assert_string_equal(o.data, "{\"id\":\"01M81XQ6HFGBV8TJ8TV46RPKCC\",\"type\":\"order.created\","
                                "\"tenant\":\"acme\",\"channel\":\"orders:eu\",\"offset\":42,"
                                "\"epoch\":\"0kjk8b3x\",\"ts\":1795361053231,\"schema_version\":1,"
                                "\"correlation_id\":\"c-1\",\"idempotency_key\":\"k-7\","
                                "\"headers\":{\"x-trace\":\"abc\"},"
                                "\"data\":{\"total\": 12.5, \"items\":[1,2]}}");
    json_t *j = load(&o);
    static const char *const all[] = {
        "id", "type",           "tenant",         "channel",         "offset",  "epoch",
        "ts", "schema_version", "correlation_id", "idempotency_key", "headers", "data",
        NULL};
    exactly(j, all);
    assert_true(json_is_integer(json_object_get(j, "offset")));
    assert_true(json_is_integer(json_object_get(j, "ts")));
    assert_int_equal(json_integer_value(json_object_get(j, "schema_version")), 1);
    assert_true(json_is_object(json_object_get(j, "headers")));
    assert_true(json_is_object(json_object_get(j, "data")));
    json_decref(j);
    sbuf_release(&o);
    pub_unref(p);
}

static void minimal(void **state)
{
    (void)state;
    pub_fields f = {F(tenant, "default"), F(channel, "chat"), F(data, "7"), .now_ms = 5};
    pl_pub *p = pub_new(&f, PUB_EPHEMERAL);
    sbuf o;
    sbuf_init(&o);
    assert_int_equal(envelope_write(&o, p, NULL), PL_OK);
    json_t *j = load(&o);
    static const char *const few[] = {
        "id", "tenant", "channel", "offset", "ts", "schema_version", "headers", "data", NULL};
    exactly(j, few);
    assert_int_equal(json_integer_value(json_object_get(j, "offset")), 0);
    assert_int_equal(json_object_size(json_object_get(j, "headers")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "data")), 7);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "id"))), PUB_ID_LEN);
    json_decref(j);
    sbuf_release(&o);
    pub_unref(p);
}

static void escaping(void **state)
{
    (void)state;
    pub_fields f = {
        F(tenant, "t\"q"),      F(channel, "c\\h:\xe2\x98\x83"), F(data, "\"\\u0000\\n\""),
        F(type, "a\nb\tc\x01"), F(correlation_id, "</script>"),  F(idem_key, "\x7f\xc3\xa9")};
    pl_pub *p = stored(pub_new(&f, PUB_STANDARD), 1);
    sbuf o;
    sbuf_init(&o);
    assert_int_equal(envelope_write(&o, p, NULL), PL_OK);
    assert_non_null(strstr(o.data, "\"type\":\"a\\nb\\u0009c\\u0001\""));
    assert_non_null(strstr(o.data, "\"tenant\":\"t\\\"q\""));
    json_t *j = load(&o);
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "t\"q");
    assert_string_equal(json_string_value(json_object_get(j, "channel")), "c\\h:\xe2\x98\x83");
    assert_string_equal(json_string_value(json_object_get(j, "type")), "a\nb\tc\x01");
    assert_string_equal(json_string_value(json_object_get(j, "correlation_id")), "</script>");
    assert_string_equal(json_string_value(json_object_get(j, "idempotency_key")), "\x7f\xc3\xa9");
    json_decref(j);
    sbuf_release(&o);
    pub_unref(p);
}

static void redacted(void **state)
{
    (void)state;
    pub_fields f = {F(tenant, "acme"), F(channel, "pay:1"),
                    F(data, "{\"card\":{\"number\":\"4111\",\"exp\":\"12/29\"},\"ssn\":\"1\"}"),
                    F(headers, "{\"Authorization\":\"Bearer x\",\"x-a\":\"b\"}")};
    pl_pub *p = stored(pub_new(&f, PUB_STANDARD), 3);
    cfg_redact rules[] = {
        {"data.card.number", true}, {"headers.authorization", false}, {"data.ssn", false}};
    redaction *r = NULL;
    assert_int_equal(redact_new(rules, 3, &r), PL_OK);
    sbuf o;
    sbuf_init(&o);
    assert_int_equal(envelope_write(&o, p, r), PL_OK);
    assert_non_null(strstr(o.data, ",\"headers\":{\"x-a\":\"b\"},\"data\":{\"card\":{\"number\":"
                                   "\"***\",\"exp\":\"12/29\"}}}"));
    json_decref(load(&o));
    /* the pub itself is untouched */
    assert_string_equal(p->data,
                        "{\"card\":{\"number\":\"4111\",\"exp\":\"12/29\"},\"ssn\":\"1\"}");
    /* data that is not JSON is refused rather than sent unredacted */
    pub_fields g = {F(tenant, "acme"), F(channel, "pay:1"), F(data, "{oops")};
    pl_pub *q = pub_new(&g, PUB_STANDARD);
    sbuf_reset(&o);
    sbuf_puts(&o, "x");
    assert_int_equal(envelope_write(&o, q, r), PL_EINVAL);
    assert_string_equal(o.data, "x");
    pub_unref(q);
    sbuf_release(&o);
    redact_free(r);
    pub_unref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(everything),
        cmocka_unit_test(minimal),
        cmocka_unit_test(escaping),
        cmocka_unit_test(redacted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
