/* Unit tests for the webhook delivery policy (hooks/retry.c): the schedule
 * and its jitter bounds, every status class of the contract, Retry-After
 * (seconds, the three date forms, garbage, the cap), the webhook-delivery
 * header, and the failure-density rule behind auto-disable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hooks/retry.h"
#include "util/status.h"

#define S 1000LL
#define M (60 * S)
#define H (60 * M)
#define D (24 * H)

/* ---- schedule ----------------------------------------------------------- */

static void default_schedule(void **state)
{
    retry_policy p;
    retry_policy_default(&p);
    static const int64_t want[] = {0,     5 * S,  5 * M,  30 * M, 2 * H,
                                   5 * H, 10 * H, 14 * H, 20 * H, 24 * H};
    assert_int_equal(p.n_attempts, 10);
    assert_int_equal(p.jitter_pct, RETRY_JITTER_PCT);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(p.delays_ms[i], want[i]);
    assert_int_equal(retry_delay(&p, 0, 1), -1);
    assert_int_equal(retry_delay(&p, 1, 1), 0); /* immediately, jitter or not */
    assert_int_equal(retry_delay(&p, 11, 1), -1);
}

static void jitter_bounds_and_determinism(void **state)
{
    retry_policy p;
    retry_policy_default(&p);
    for (uint32_t a = 2; a <= 10; a++) {
        int64_t base = p.delays_ms[a - 1], lo = base - base / 10, hi = base + base / 10;
        int64_t min = INT64_MAX, max = 0;
        for (uint64_t r = 0; r < 2000; r++) {
            int64_t d = retry_delay(&p, a, r * 0x9e3779b97f4a7c15ull);
            assert_true(d >= lo && d <= hi);
            if (d < min) min = d;
            if (d > max) max = d;
            assert_int_equal(d, retry_delay(&p, a, r * 0x9e3779b97f4a7c15ull));
        }
        /* The draws spread over most of the range, not one point. */
        assert_true(max - min > (hi - lo) * 8 / 10);
    }
    int64_t none[] = {0, 1000, 2000};
    assert_int_equal(retry_policy_set(&p, none, 3, 0), PL_OK);
    for (uint64_t r = 0; r < 50; r++)
        assert_int_equal(retry_delay(&p, 2, r), 1000);
}

static void schedule_parse_and_set(void **state)
{
    static const struct {
        const char *in;
        int ok;
        size_t n;
        int64_t last;
    } rows[] = {
        {"0s,1s,1s", 1, 3, 1000}, {"0, 5s , 5m", 1, 3, 300000},
        {"2h", 1, 1, 7200000},    {"", 0, 0, 0},
        {"1s,", 0, 0, 0},         {",1s", 0, 0, 0},
        {"1s,,2s", 0, 0, 0},      {"1x", 0, 0, 0},
        {"-1s", 0, 0, 0},         {"1s;2s", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        retry_policy p;
        retry_policy_default(&p);
        int rc = retry_policy_parse(&p, rows[i].in);
        if ((rc == PL_OK) != rows[i].ok) print_error("row %zu: \"%s\"\n", i, rows[i].in);
        assert_int_equal(rc == PL_OK, rows[i].ok);
        if (rows[i].ok) {
            assert_int_equal(p.n_attempts, rows[i].n);
            assert_int_equal(p.delays_ms[p.n_attempts - 1], rows[i].last);
        } else {
            assert_int_equal(p.n_attempts, 10); /* unchanged */
        }
    }
    char many[RETRY_MAX_ATTEMPTS * 3 + 8] = "";
    for (int i = 0; i <= RETRY_MAX_ATTEMPTS; i++)
        strcat(many, i ? ",1s" : "1s");
    retry_policy p;
    assert_int_equal(retry_policy_parse(&p, many), PL_EINVAL);
    int64_t neg[] = {0, -5};
    assert_int_equal(retry_policy_set(&p, neg, 2, 10), PL_EINVAL);
    assert_int_equal(retry_policy_set(&p, neg, 0, 10), PL_EINVAL);
    assert_int_equal(retry_policy_set(&p, neg, 1, 101), PL_EINVAL);
}

/* ---- status contract ---------------------------------------------------- */

static retry_policy fixed(void)
{
    retry_policy p;
    int64_t d[] = {0, 10 * S, 5 * M, 1 * H};
    retry_policy_set(&p, d, 4, 0);
    return p;
}

static void classify(int status, const char *ra, const char *wd, const char *err, uint32_t attempt,
                     int64_t now, retry_outcome *o)
{
    retry_policy p = fixed();
    retry_header h[3];
    size_t n = 0;
    if (ra) h[n++] = (retry_header){"Retry-After", ra};
    if (wd) h[n++] = (retry_header){"Webhook-Delivery", wd};
    h[n++] = (retry_header){"content-type", "text/plain"};
    retry_response r = {.status = status, .headers = h, .n_headers = n, .error = err};
    retry_classify(&p, attempt, &r, now, 42, o);
}

static void status_classes(void **state)
{
    static const struct {
        int status;
        retry_kind kind;
        const char *in_reason;
    } rows[] = {
        {200, RETRY_SUCCESS, "delivered"},     {204, RETRY_SUCCESS, "HTTP 204"},
        {299, RETRY_SUCCESS, "delivered"},     {301, RETRY_RETRY, "redirect not followed"},
        {302, RETRY_RETRY, "redirect"},        {307, RETRY_RETRY, "redirect"},
        {308, RETRY_RETRY, "redirect"},        {400, RETRY_RETRY, "HTTP 400"},
        {401, RETRY_RETRY, "HTTP 401"},        {404, RETRY_RETRY, "HTTP 404"},
        {410, RETRY_DISABLE_ENDPOINT, "Gone"}, {413, RETRY_RETRY, "HTTP 413"},
        {429, RETRY_THROTTLE, "throttled"},    {500, RETRY_RETRY, "HTTP 500"},
        {501, RETRY_RETRY, "HTTP 501"},        {502, RETRY_THROTTLE, "throttled"},
        {503, RETRY_THROTTLE, "throttled"},    {504, RETRY_THROTTLE, "throttled"},
        {505, RETRY_RETRY, "HTTP 505"},        {100, RETRY_RETRY, "HTTP 100"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        retry_outcome o;
        classify(rows[i].status, NULL, NULL, NULL, 1, 0, &o);
        if (o.kind != rows[i].kind || !strstr(o.reason, rows[i].in_reason))
            print_error("row %zu: %d -> %s (%s)\n", i, rows[i].status, retry_kind_name(o.kind),
                        o.reason);
        assert_int_equal(o.kind, rows[i].kind);
        assert_non_null(strstr(o.reason, rows[i].in_reason));
        if (o.kind == RETRY_RETRY || o.kind == RETRY_THROTTLE) {
            assert_int_equal(o.delay_ms, 10 * S);
            assert_false(o.exhausted);
        }
    }
    /* No answer: a failure with the transport's words. */
    retry_outcome o;
    classify(0, NULL, NULL, "Timeout was reached", 2, 0, &o);
    assert_int_equal(o.kind, RETRY_RETRY);
    assert_int_equal(o.delay_ms, 5 * M);
    assert_non_null(strstr(o.reason, "Timeout was reached"));
    /* Headers of a failed transport are never read. */
    classify(0, "100", "disable", "Connection refused", 1, 0, &o);
    assert_int_equal(o.kind, RETRY_RETRY);
    assert_int_equal(o.retry_after_ms, -1);
    /* After the last attempt: exhausted, dead-letter. */
    classify(500, NULL, NULL, NULL, 4, 0, &o);
    assert_int_equal(o.kind, RETRY_RETRY);
    assert_true(o.exhausted);
    assert_int_equal(o.delay_ms, -1);
    classify(503, "5", NULL, NULL, 4, 0, &o);
    assert_true(o.exhausted);
}

static void retry_after_values(void **state)
{
    const int64_t now = 1445412480000LL - 30 * S; /* 30 s before Wed, 21 Oct 2015 07:28:00 */
    static const struct {
        const char *ra;
        uint32_t attempt;
        int64_t want_delay, want_ra;
    } rows[] = {
        /* attempt 1 failed: schedule says 10 s before attempt 2 */
        {"2", 1, 10 * S, 2 * S},   /* smaller than backoff: backoff */
        {"60", 1, 60 * S, 60 * S}, /* larger: honoured */
        {" 60 ", 1, 60 * S, 60 * S},
        {"Wed, 21 Oct 2015 07:28:00 GMT", 1, 30 * S, 30 * S},
        {"Wednesday, 21-Oct-15 07:28:00 GMT", 1, 30 * S, 30 * S},
        {"Wed Oct 21 07:28:00 2015", 1, 30 * S, 30 * S},
        {"Wed, 21 Oct 2015 07:27:00 GMT", 1, 10 * S, 0}, /* past: 0 */
        {"soon", 1, 10 * S, -1},
        {"-5", 1, 10 * S, -1},
        {"1.5", 1, 10 * S, -1},
        {"", 1, 10 * S, -1},
        {"99999999999999999999999", 1, 10 * S + 2 * H, INT64_MAX}, /* capped */
        {"86400", 1, 10 * S + 2 * H, 86400 * S},
        {"7210", 1, 7210 * S, 7210 * S}, /* exactly the cap */
        {"7211", 1, 7210 * S, 7211 * S}, /* one past */
        {"86400", 3, 3 * H, 86400 * S},  /* 1 h backoff: cap 3 h */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        retry_outcome o;
        classify(429, rows[i].ra, NULL, NULL, rows[i].attempt, now, &o);
        if (o.delay_ms != rows[i].want_delay || o.retry_after_ms != rows[i].want_ra)
            print_error("row %zu: \"%s\" -> %lld / %lld\n", i, rows[i].ra, (long long)o.delay_ms,
                        (long long)o.retry_after_ms);
        assert_int_equal(o.kind, RETRY_THROTTLE);
        assert_int_equal(o.delay_ms, rows[i].want_delay);
        assert_int_equal(o.retry_after_ms, rows[i].want_ra);
    }
    /* Retry-After on a plain failure is honoured too. */
    retry_outcome o;
    classify(500, "120", NULL, NULL, 1, now, &o);
    assert_int_equal(o.kind, RETRY_RETRY);
    assert_int_equal(o.delay_ms, 120 * S);
    assert_non_null(strstr(o.reason, "Retry-After 120s"));
    classify(500, "junk", NULL, NULL, 1, now, &o);
    assert_non_null(strstr(o.reason, "ignored"));
}

static void delivery_header(void **state)
{
    static const struct {
        const char *v;
        retry_kind k;
    } rows[] = {
        {"disable", RETRY_DISABLE_ENDPOINT},
        {"DISABLE", RETRY_DISABLE_ENDPOINT},
        {" Disable\t", RETRY_DISABLE_ENDPOINT},
        {"abort-message", RETRY_ABORT_MESSAGE},
        {"Abort-Message", RETRY_ABORT_MESSAGE},
        {"  ABORT-MESSAGE ", RETRY_ABORT_MESSAGE},
        {"disabled", RETRY_SUCCESS},
        {"abort", RETRY_SUCCESS},
        {"abort-message, disable", RETRY_SUCCESS},
        {"", RETRY_SUCCESS},
        {"dis able", RETRY_SUCCESS},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(retry_parse_delivery_header(rows[i].v, strlen(rows[i].v)), rows[i].k);
    assert_int_equal(retry_parse_delivery_header(NULL, 0), RETRY_SUCCESS);

    retry_outcome o;
    classify(500, NULL, "Disable", NULL, 1, 0, &o);
    assert_int_equal(o.kind, RETRY_DISABLE_ENDPOINT);
    classify(503, "5", "abort-message", NULL, 1, 0, &o);
    assert_int_equal(o.kind, RETRY_ABORT_MESSAGE);
    assert_non_null(strstr(o.reason, "abort-message"));
    classify(400, NULL, "whatever", NULL, 1, 0, &o);
    assert_int_equal(o.kind, RETRY_RETRY);
    /* A 2xx is delivered: the header is not read. */
    classify(200, NULL, "disable", NULL, 1, 0, &o);
    assert_int_equal(o.kind, RETRY_SUCCESS);
    /* 410 wins over abort-message: the endpoint is gone. */
    classify(410, NULL, "abort-message", NULL, 1, 0, &o);
    assert_int_equal(o.kind, RETRY_DISABLE_ENDPOINT);
}

/* ---- endpoint health ---------------------------------------------------- */

#define T0 (1700000000LL * 1000)

static void day_of_failures_does_not_disable(void **state)
{
    endpoint_health h;
    endpoint_health_init(&h);
    assert_int_equal(endpoint_health_on_result(&h, T0, RETRY_SUCCESS, NULL), 0);
    unsigned all = 0;
    for (int64_t t = T0 + H; t <= T0 + D; t += H)
        all |= endpoint_health_on_result(&h, t, RETRY_RETRY, "HTTP 500");
    assert_int_equal(h.state, HEALTH_FAILING);
    assert_false(all & HEALTH_EV_DISABLED);
    assert_int_equal(h.failing_since, T0 + H);
    assert_int_equal(h.last_success, T0);
    assert_int_equal(h.last_failure, T0 + D);
    assert_int_equal(h.disable_at, T0 + 5 * D);
    assert_string_equal(health_state_name(h.state), "failing");
}

static void five_days_spread_disables(void **state)
{
    endpoint_health h;
    endpoint_health_init(&h);
    endpoint_health_on_result(&h, T0, RETRY_SUCCESS, NULL);
    unsigned ev = endpoint_health_on_result(&h, T0 + 4 * D, RETRY_RETRY, "HTTP 500");
    assert_int_equal(ev, 0);
    assert_int_equal(h.disable_at, T0 + 5 * D);
    ev = endpoint_health_on_result(&h, T0 + 5 * D - 1, RETRY_THROTTLE, "HTTP 503");
    assert_false(ev & HEALTH_EV_DISABLED);
    ev = endpoint_health_on_result(&h, T0 + 5 * D, RETRY_RETRY, "HTTP 500");
    assert_true(ev & HEALTH_EV_DISABLED);
    assert_int_equal(h.state, HEALTH_DISABLED);
    assert_string_equal(h.reason, "HTTP 500");
    /* Disabled: further failures report nothing. */
    assert_int_equal(endpoint_health_on_result(&h, T0 + 6 * D, RETRY_RETRY, NULL), 0);
}

static void dense_failures_do_not_disable(void **state)
{
    endpoint_health h;
    endpoint_health_init(&h);
    endpoint_health_on_result(&h, T0, RETRY_SUCCESS, NULL);
    /* Quiet for 5 days, then failures only 1 h apart: too dense. */
    for (int i = 0; i <= 11; i++)
        assert_false(endpoint_health_on_result(&h, T0 + 5 * D + i * H, RETRY_RETRY, NULL) &
                     HEALTH_EV_DISABLED);
    assert_int_equal(h.state, HEALTH_FAILING);
    assert_int_equal(h.disable_at, T0 + 5 * D + 12 * H);
    assert_true(endpoint_health_on_result(&h, T0 + 5 * D + 12 * H, RETRY_RETRY, NULL) &
                HEALTH_EV_DISABLED);
}

static void never_succeeded(void **state)
{
    endpoint_health h;
    endpoint_health_init(&h);
    endpoint_health_on_result(&h, T0, RETRY_RETRY, NULL);
    assert_int_equal(h.disable_at, T0 + 5 * D);
    assert_false(endpoint_health_on_result(&h, T0 + 4 * D, RETRY_RETRY, NULL) & HEALTH_EV_DISABLED);
    assert_true(endpoint_health_on_result(&h, T0 + 5 * D, RETRY_RETRY, NULL) & HEALTH_EV_DISABLED);
}

static void success_resets_and_warnings_fire_once(void **state)
{
    endpoint_health h;
    endpoint_health_init(&h);
    endpoint_health_on_result(&h, T0, RETRY_SUCCESS, NULL);
    unsigned w24 = 0, w72 = 0;
    for (int64_t t = T0 + H; t <= T0 + 4 * D; t += H) {
        unsigned ev = endpoint_health_on_result(&h, t, RETRY_RETRY, NULL);
        if (ev & HEALTH_EV_WARN_24H) {
            w24++;
            assert_int_equal(t, T0 + H + D);
        }
        if (ev & HEALTH_EV_WARN_72H) {
            w72++;
            assert_int_equal(t, T0 + H + 3 * D);
        }
        assert_false(ev & HEALTH_EV_DISABLED);
    }
    assert_int_equal(w24, 1);
    assert_int_equal(w72, 1);
    /* An abort-message is no failure and no success. */
    assert_int_equal(endpoint_health_on_result(&h, T0 + 4 * D + 1, RETRY_ABORT_MESSAGE, NULL), 0);
    assert_int_equal(h.state, HEALTH_FAILING);
    assert_int_equal(endpoint_health_on_result(&h, T0 + 4 * D + 2, RETRY_SUCCESS, NULL),
                     HEALTH_EV_RECOVERED);
    assert_int_equal(h.state, HEALTH_HEALTHY);
    assert_int_equal(h.failing_since, 0);
    assert_int_equal(h.disable_at, 0);
    /* A new run: the 5 days count from the new success; warnings again. */
    unsigned ev = endpoint_health_on_result(&h, T0 + 8 * D, RETRY_RETRY, NULL);
    assert_false(ev & HEALTH_EV_DISABLED);
    ev = endpoint_health_on_result(&h, T0 + 9 * D + H, RETRY_RETRY, NULL);
    assert_true(ev & HEALTH_EV_WARN_24H);
    assert_true(ev & HEALTH_EV_DISABLED); /* 5 days since the success, 24 h spread */
    assert_int_equal(endpoint_health_on_result(&h, T0 + 10 * D, RETRY_SUCCESS, NULL),
                     HEALTH_EV_RECOVERED);
}

static void gone_disables_at_once(void **state)
{
    endpoint_health h;
    endpoint_health_init(&h);
    endpoint_health_on_result(&h, T0, RETRY_SUCCESS, NULL);
    assert_int_equal(endpoint_health_on_result(&h, T0 + S, RETRY_DISABLE_ENDPOINT, "HTTP 410"),
                     HEALTH_EV_DISABLED);
    assert_int_equal(h.state, HEALTH_DISABLED);
    assert_int_equal(h.disable_at, T0 + S);
    assert_string_equal(h.reason, "HTTP 410");
    assert_int_equal(endpoint_health_on_result(&h, T0 + 2 * S, RETRY_DISABLE_ENDPOINT, NULL), 0);
    assert_string_equal(health_state_name(h.state), "disabled");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_schedule),
        cmocka_unit_test(jitter_bounds_and_determinism),
        cmocka_unit_test(schedule_parse_and_set),
        cmocka_unit_test(status_classes),
        cmocka_unit_test(retry_after_values),
        cmocka_unit_test(delivery_header),
        cmocka_unit_test(day_of_failures_does_not_disable),
        cmocka_unit_test(five_days_spread_disables),
        cmocka_unit_test(dense_failures_do_not_disable),
        cmocka_unit_test(never_succeeded),
        cmocka_unit_test(success_resets_and_warnings_fire_once),
        cmocka_unit_test(gone_disables_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
