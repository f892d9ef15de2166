/* Unit tests for the client-visible code tables of util/errors.h: every row
 * is complete and unique, close codes follow the protocol's reconnect ranges,
 * error codes map to an HTTP error status, unknown codes get the documented
 * fallback, and the JSON error object keeps its exact shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/errors.h"

typedef struct row {
    int code;
    const char *name;
    const char *message;
    int flag; /* temporary (errors) or reconnect (close codes) */
    int http;
} row;

#define ERROR_ROW(name, code, msg, temp, http) {code, #name, msg, temp, http},
static const row error_rows[] = {PROTO_ERROR_MAP(ERROR_ROW)};
#undef ERROR_ROW
#define CLOSE_ROW(name, code, reason, reconnect) {code, #name, reason, reconnect, 0},
static const row close_rows[] = {PROTO_CLOSE_MAP(CLOSE_ROW)};
#undef CLOSE_ROW

#define N_ERRORS (sizeof(error_rows) / sizeof(error_rows[0]))
#define N_CLOSES (sizeof(close_rows) / sizeof(close_rows[0]))

static void test_error_rows_complete(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ERRORS; i++) {
        const row *r = &error_rows[i];
        assert_true(r->code >= 100 && r->code <= 199);
        assert_true(!strncmp(r->name, "PE_", 3));
        assert_non_null(r->message);
        assert_true(r->message[0] != '\0');
        assert_true(r->flag == 0 || r->flag == 1);
        /* The lookups answer what the row says. */
        assert_string_equal(proto_error_message(r->code), r->message);
        assert_int_equal(proto_error_temporary(r->code), r->flag);
        assert_int_equal(proto_error_http_status(r->code), r->http);
    }
}

static void test_error_http_status_is_an_error(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ERRORS; i++) {
        int st = error_rows[i].http;
        assert_true(st >= 400 && st <= 599);
        /* A temporary error is the server's condition, a permanent one the
         * request's: 5xx or 429 for the first, 4xx for the second. */
        if (error_rows[i].flag)
            assert_true(st >= 500 || st == 429);
        else
            assert_true(st < 500);
    }
}

static void test_close_rows_follow_ranges(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CLOSES; i++) {
        const row *r = &close_rows[i];
        assert_true(r->code >= PC_MIN && r->code <= PC_MAX);
        assert_true(!strncmp(r->name, "PC_", 3));
        assert_non_null(r->message);
        assert_true(r->message[0] != '\0');
        assert_int_equal(r->flag, r->code < PC_NO_RECONNECT_MIN);
        assert_int_equal(proto_close_reconnect(r->code), r->flag);
        assert_string_equal(proto_close_reason(r->code), r->message);
    }
}

static void test_codes_unique(void **state)
{
    (void)state;
    const row *all[N_ERRORS + N_CLOSES];
    size_t n = 0;
    for (size_t i = 0; i < N_ERRORS; i++)
        all[n++] = &error_rows[i];
    for (size_t i = 0; i < N_CLOSES; i++)
        all[n++] = &close_rows[i];
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            assert_int_not_equal(all[i]->code, all[j]->code);
            assert_string_not_equal(all[i]->name, all[j]->name);
        }
}

static void test_unknown_codes_fall_back(void **state)
{
    (void)state;
    const int unknown[] = {0, 99, 110, 112, 118, 199, 4000, -1};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_string_equal(proto_error_message(unknown[i]), "error");
        assert_int_equal(proto_error_temporary(unknown[i]), 0);
        assert_int_equal(proto_error_http_status(unknown[i]), 400);
    }
    /* The server API may close with codes outside the table. */
    assert_string_equal(proto_close_reason(4100), "closed");
    assert_int_equal(proto_close_reconnect(4100), 1);
    assert_int_equal(proto_close_reconnect(PC_NO_RECONNECT_MIN - 1), 1);
    assert_int_equal(proto_close_reconnect(4700), 0);
    assert_int_equal(proto_close_reconnect(PC_MAX), 0);
}

static void expect_json(void (*fill)(sbuf *), const char *want)
{
    sbuf o;
    sbuf_init(&o);
    fill(&o);
    assert_false(o.oom);
    assert_int_equal(o.len, strlen(want));
    assert_memory_equal(o.data, want, o.len);
    sbuf_release(&o);
}

static void bad_request_with_detail(sbuf *o)
{
    proto_error_json(o, PE_BAD_REQUEST, "say \"hi\"");
}

static void internal_error(sbuf *o)
{
    proto_error_json(o, PE_INTERNAL, NULL);
}

static void unknown_error(sbuf *o)
{
    proto_error_json(o, 112, NULL);
}

static void retry_zero(sbuf *o)
{
    proto_error_json_retry(o, 0);
}

static void retry_later(sbuf *o)
{
    proto_error_json_retry(o, 250);
}

static void test_error_json(void **state)
{
    (void)state;
    expect_json(bad_request_with_detail,
                "{\"code\":107,\"message\":\"bad request: say \\\"hi\\\"\",\"temporary\":false}");
    expect_json(internal_error, "{\"code\":100,\"message\":\"internal error\",\"temporary\":true}");
    expect_json(unknown_error, "{\"code\":112,\"message\":\"error\",\"temporary\":false}");
    expect_json(retry_zero, "{\"code\":111,\"message\":\"too many requests\",\"temporary\":true,"
                            "\"retry_after\":1}");
    expect_json(retry_later, "{\"code\":111,\"message\":\"too many requests\",\"temporary\":true,"
                             "\"retry_after\":250}");
}

static void test_error_json_long_detail_is_cut(void **state)
{
    (void)state;
    char detail[600];
    memset(detail, 'x', sizeof(detail) - 1);
    detail[sizeof(detail) - 1] = '\0';
    sbuf o;
    sbuf_init(&o);
    proto_error_json(&o, PE_BAD_REQUEST, detail);
    assert_false(o.oom);
    /* message is cut to 255 bytes: "bad request: " and 242 x's. */
    const char *m = strstr(o.data, "\"message\":\"bad request: ");
    assert_non_null(m);
    const char *end = strchr(m + 11, '"');
    assert_int_equal(end - (m + 11), 255);
    sbuf_release(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_rows_complete),
        cmocka_unit_test(test_error_http_status_is_an_error),
        cmocka_unit_test(test_close_rows_follow_ranges),
        cmocka_unit_test(test_codes_unique),
        cmocka_unit_test(test_unknown_codes_fall_back),
        cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_error_json_long_detail_is_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
