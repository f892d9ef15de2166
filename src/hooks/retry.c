/* The webhook delivery policy (see retry.h): schedule and jitter over
 * delivery/backoff's jitter and Retry-After parser, the status contract, and
 * the failure-density rule that decides when an endpoint is disabled. */
#include "hooks/retry.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "delivery/backoff.h"
#include "util/clock.h"
#include "util/status.h"

/* ---- schedule ----------------------------------------------------------- */

static const int64_t default_delays[] = {
    0,
    5LL * 1000,
    5LL * 60 * 1000,
    30LL * 60 * 1000,
    2LL * 3600 * 1000,
    5LL * 3600 * 1000,
    10LL * 3600 * 1000,
    14LL * 3600 * 1000,
    20LL * 3600 * 1000,
    24LL * 3600 * 1000,
};

void retry_policy_default(retry_policy *p)
{
    retry_policy_set(p, default_delays, sizeof(default_delays) / sizeof(default_delays[0]),
                     RETRY_JITTER_PCT);
}

int retry_policy_set(retry_policy *p, const int64_t *delays_ms, size_t n, uint32_t jitter_pct)
{
    if (n == 0 || n > RETRY_MAX_ATTEMPTS || jitter_pct > 100) return PL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (delays_ms[i] < 0) return PL_EINVAL;
    memset(p, 0, sizeof(*p));
    memcpy(p->delays_ms, delays_ms, n * sizeof(delays_ms[0]));
    p->n_attempts = n;
    p->jitter_pct = jitter_pct;
    return PL_OK;
}

int retry_policy_parse(retry_policy *p, const char *list)
{
    int64_t d[RETRY_MAX_ATTEMPTS];
    size_t n = 0;
    const char *s = list;
    for (;;) {
        while (*s == ' ')
            s++;
        size_t len = strcspn(s, ", ");
        char item[32];
        if (len == 0 || len >= sizeof(item) || n == RETRY_MAX_ATTEMPTS) return PL_EINVAL;
        memcpy(item, s, len);
        item[len] = '\0';
        /* "0" alone is a natural way to write "immediately". */
        d[n] = strcmp(item, "0") ? clock_parse_duration(item) : 0;
        if (d[n++] < 0) return PL_EINVAL;
        s += len;
        while (*s == ' ')
            s++;
        if (*s == '\0') break;
        if (*s++ != ',') return PL_EINVAL;
    }
    return retry_policy_set(p, d, n, RETRY_JITTER_PCT);
}

int64_t retry_delay(const retry_policy *p, uint32_t attempt, uint64_t rnd)
{
    if (attempt == 0 || attempt > p->n_attempts) return -1;
    /* A generator seeded from rnd rather than rnd itself: backoff_uniform
     * may draw more than once, and a constant source could reject forever. */
    backoff_rng rng;
    backoff_rng_seed(&rng, rnd);
    return backoff_jitter(p->delays_ms[attempt - 1], p->jitter_pct, backoff_rng_next, &rng);
}

/* ---- status contract ---------------------------------------------------- */

const char *retry_kind_name(retry_kind k)
{
    switch (k) {
    case RETRY_SUCCESS:
        return "success";
    case RETRY_RETRY:
        return "retry";
    case RETRY_THROTTLE:
        return "throttle";
    case RETRY_ABORT_MESSAGE:
        return "abort-message";
    case RETRY_DISABLE_ENDPOINT:
        return "disable-endpoint";
    }
    return "?";
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

retry_kind retry_parse_delivery_header(const char *s, size_t len)
{
    if (!s) return RETRY_SUCCESS;
    trim(&s, &len);
    if (len == 7 && !strncasecmp(s, "disable", 7)) return RETRY_DISABLE_ENDPOINT;
    if (len == 13 && !strncasecmp(s, "abort-message", 13)) return RETRY_ABORT_MESSAGE;
    return RETRY_SUCCESS;
}

/* The first header named name, or NULL. */
static const char *header(const retry_response *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (r->headers[i].name && r->headers[i].value && !strcasecmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

static bool is_throttle(int status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

/* What went wrong, for the reason: "HTTP 503" or the transport error. */
static void describe(const retry_response *r, char *out, size_t cap)
{
    if (r->status == 0)
        snprintf(out, cap, "no answer: %s", r->error && *r->error ? r->error : "unknown error");
    else if (r->status >= 300 && r->status < 400)
        snprintf(out, cap, "HTTP %d, redirect not followed", r->status);
    else
        snprintf(out, cap, "HTTP %d", r->status);
}

/* The wait after a failed attempt: the next scheduled delay, pushed back to
 * Retry-After but never more than 2 h past the schedule, so a receiver
 * cannot park a message for days with one header. */
static void schedule_next(const retry_policy *p, uint32_t attempt, uint64_t rnd, retry_outcome *out)
{
    int64_t d = retry_delay(p, attempt + 1, rnd);
    if (d < 0) {
        out->exhausted = true;
        out->delay_ms = -1;
        return;
    }
    int64_t ra = out->retry_after_ms;
    if (ra > d) {
        int64_t cap = d > INT64_MAX - RETRY_AFTER_EXTRA_MS ? INT64_MAX : d + RETRY_AFTER_EXTRA_MS;
        d = ra < cap ? ra : cap;
    }
    out->delay_ms = d;
}

void retry_classify(const retry_policy *p, uint32_t attempt, const retry_response *r,
                    int64_t now_ms, uint64_t rnd, retry_outcome *out)
{
    memset(out, 0, sizeof(*out));
    out->retry_after_ms = -1;
    char what[96];
    describe(r, what, sizeof(what));
    if (r->status >= 200 && r->status < 300) {
        out->kind = RETRY_SUCCESS;
        snprintf(out->reason, sizeof(out->reason), "HTTP %d, delivered", r->status);
        return;
    }
    const char *wd = r->status ? header(r, "webhook-delivery") : NULL;
    retry_kind asked = wd ? retry_parse_delivery_header(wd, strlen(wd)) : RETRY_SUCCESS;
    if (r->status == 410 || asked == RETRY_DISABLE_ENDPOINT) {
        out->kind = RETRY_DISABLE_ENDPOINT;
        snprintf(out->reason, sizeof(out->reason), "%s, %s", what,
                 r->status == 410 ? "Gone: disable the endpoint"
                                  : "webhook-delivery: disable the endpoint");
        return;
    }
    if (asked == RETRY_ABORT_MESSAGE) {
        out->kind = RETRY_ABORT_MESSAGE;
        snprintf(out->reason, sizeof(out->reason), "%s, webhook-delivery: abort-message", what);
        return;
    }
    const char *ra = r->status ? header(r, "retry-after") : NULL;
    if (ra) out->retry_after_ms = backoff_parse_retry_after(ra, strlen(ra), now_ms);
    out->kind = is_throttle(r->status) ? RETRY_THROTTLE : RETRY_RETRY;
    schedule_next(p, attempt, rnd, out);
    char ra_text[48] = "";
    if (out->retry_after_ms >= 0)
        snprintf(ra_text, sizeof(ra_text), ", Retry-After %llds",
                 (long long)(out->retry_after_ms / 1000));
    else if (ra)
        snprintf(ra_text, sizeof(ra_text), ", Retry-After ignored (malformed)");
    snprintf(out->reason, sizeof(out->reason), "%s%s%s", what,
             out->kind == RETRY_THROTTLE ? ", throttled" : "", ra_text);
}

/* ---- endpoint health ---------------------------------------------------- */

const char *health_state_name(health_state s)
{
    return s == HEALTH_HEALTHY ? "healthy" : s == HEALTH_FAILING ? "failing" : "disabled";
}

void endpoint_health_init(endpoint_health *h)
{
    memset(h, 0, sizeof(*h));
}

/* When continued failures disable the endpoint: 5 days without success
 * (from the last success, or from the first result without one) and the
 * run's failures at least 12 h apart, whichever comes later. */
static int64_t disable_time(const endpoint_health *h)
{
    int64_t quiet_from = h->last_success ? h->last_success : h->first_seen;
    int64_t a = quiet_from + HEALTH_DISABLE_AFTER_MS;
    int64_t b = h->failing_since + HEALTH_SPREAD_MS;
    return a > b ? a : b;
}

static void set_reason(endpoint_health *h, const char *reason, const char *fallback)
{
    snprintf(h->reason, sizeof(h->reason), "%s", reason && *reason ? reason : fallback);
}

static unsigned on_failure(endpoint_health *h, int64_t now, const char *reason)
{
    unsigned ev = 0;
    if (h->state == HEALTH_HEALTHY || !h->failing_since) {
        h->state = HEALTH_FAILING;
        h->failing_since = now;
        h->warned_24h = h->warned_72h = false;
    }
    h->last_failure = now;
    h->disable_at = disable_time(h);
    if (!h->warned_24h && now - h->failing_since >= HEALTH_WARN1_MS) {
        h->warned_24h = true;
        ev |= HEALTH_EV_WARN_24H;
    }
    if (!h->warned_72h && now - h->failing_since >= HEALTH_WARN2_MS) {
        h->warned_72h = true;
        ev |= HEALTH_EV_WARN_72H;
    }
    if (now >= h->disable_at) {
        h->state = HEALTH_DISABLED;
        set_reason(h, reason, "no success for 5 days");
        ev |= HEALTH_EV_DISABLED;
    }
    return ev;
}

unsigned endpoint_health_on_result(endpoint_health *h, int64_t now, retry_kind outcome,
                                   const char *reason)
{
    if (!h->first_seen) h->first_seen = now;
    switch (outcome) {
    case RETRY_SUCCESS: {
        unsigned ev = h->state != HEALTH_HEALTHY ? HEALTH_EV_RECOVERED : 0;
        h->state = HEALTH_HEALTHY;
        h->last_success = now;
        h->failing_since = h->disable_at = 0;
        h->warned_24h = h->warned_72h = false;
        h->reason[0] = '\0';
        return ev;
    }
    case RETRY_ABORT_MESSAGE:
        return 0;
    case RETRY_DISABLE_ENDPOINT: {
        if (h->state == HEALTH_DISABLED) return 0;
        h->last_failure = now;
        if (!h->failing_since) h->failing_since = now;
        h->state = HEALTH_DISABLED;
        h->disable_at = now;
        set_reason(h, reason, "the receiver asked to be disabled");
        return HEALTH_EV_DISABLED;
    }
    case RETRY_RETRY:
    case RETRY_THROTTLE:
        if (h->state == HEALTH_DISABLED) {
            h->last_failure = now;
            return 0;
        }
        return on_failure(h, now, reason);
    }
    return 0;
}
