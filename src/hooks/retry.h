/* The outbound webhook delivery policy: the retry schedule with jitter, the
 * Standard Webhooks status contract (what an answer means for the message and
 * the endpoint) and endpoint health (when failures disable an endpoint).
 * Pure: no I/O and no clock reads; times and random values are passed in. */
#ifndef PL_RETRY_H
#define PL_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- schedule ----------------------------------------------------------- */

#define RETRY_MAX_ATTEMPTS 64
#define RETRY_JITTER_PCT 10                      /* each delay moves by up to +-10% */
#define RETRY_AFTER_EXTRA_MS (2LL * 3600 * 1000) /* Retry-After may add at most 2 h */

/* delays_ms[i] is the wait before attempt i + 1 after attempt i failed
 * (delays_ms[0], before the first attempt, is 0 in the default). There are
 * n_attempts attempts; after the last fails the message is dead-lettered.
 * A plain value; copying it is fine. */
typedef struct retry_policy {
    int64_t delays_ms[RETRY_MAX_ATTEMPTS];
    size_t n_attempts;   /* 1..RETRY_MAX_ATTEMPTS */
    uint32_t jitter_pct; /* 0..100 */
} retry_policy;

/* The default: immediately, 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 24h, with
 * RETRY_JITTER_PCT jitter. */
void retry_policy_default(retry_policy *p);
/* A policy over n delays (n attempts, each delay >= 0), with jitter_pct
 * (0..100). Returns PL_OK, or PL_EINVAL (p unchanged) for n == 0, n >
 * RETRY_MAX_ATTEMPTS, a negative delay or jitter_pct > 100. */
int retry_policy_set(retry_policy *p, const int64_t *delays_ms, size_t n, uint32_t jitter_pct);
/* Parses a comma-separated list of durations ("0s,5s,5m", util/clock.h
 * units, spaces around commas allowed) into p, with RETRY_JITTER_PCT.
 * Returns PL_OK or PL_EINVAL (p unchanged). */
int retry_policy_parse(retry_policy *p, const char *list);

/* The wait before attempt number `attempt` (1-based; attempt 1 is the
 * first): its scheduled delay moved by jitter drawn from rnd (any 64 random
 * bits: the same rnd gives the same delay). -1 when the policy has no such
 * attempt (the message is dead-lettered). */
int64_t retry_delay(const retry_policy *p, uint32_t attempt, uint64_t rnd);

/* ---- status contract ---------------------------------------------------- */

typedef enum retry_kind {
    RETRY_SUCCESS = 0,      /* 2xx: delivered */
    RETRY_RETRY,            /* a failure: try again after delay_ms */
    RETRY_THROTTLE,         /* 429, 502, 503, 504: the endpoint's next attempts wait */
    RETRY_ABORT_MESSAGE,    /* webhook-delivery: abort-message: stop this message only */
    RETRY_DISABLE_ENDPOINT, /* 410, or webhook-delivery: disable */
} retry_kind;

/* A name such as "retry", "throttle". Static. */
const char *retry_kind_name(retry_kind k);

/* One response header; name compared case-insensitively. Borrowed. */
typedef struct retry_header {
    const char *name;
    const char *value;
} retry_header;

/* What an attempt got: an HTTP status (0 when there was no answer: then
 * error says why, e.g. "Timeout was reached") and its headers. Borrowed. */
typedef struct retry_response {
    int status;
    const retry_header *headers;
    size_t n_headers;
    const char *error; /* NULL or "" with an answer */
} retry_response;

typedef struct retry_outcome {
    retry_kind kind;
    /* RETRY_RETRY and RETRY_THROTTLE: the wait before the next attempt,
     * max(scheduled delay, Retry-After) and at most scheduled delay + 2 h;
     * -1 when `exhausted`. 0 for the other kinds. */
    int64_t delay_ms;
    int64_t retry_after_ms; /* the answer's Retry-After, -1 when absent or malformed */
    bool exhausted;         /* a failure after the last attempt: dead-letter it */
    char reason[192];       /* for logs: "HTTP 503, throttled, Retry-After 30s" */
} retry_outcome;

/* Classifies the answer to attempt `attempt` (1-based) under policy p at
 * now_ms (unix ms, for a Retry-After date); rnd is the jitter's random
 * value. The contract:
 *   2xx success (webhook-delivery is not read: the message was accepted);
 *   410 Gone, or webhook-delivery: disable: disable the endpoint;
 *   webhook-delivery: abort-message: stop retrying this message;
 *   429, 502, 503, 504: throttle;
 *   anything else (3xx, never followed; 4xx; 5xx; no answer): retry.
 * Header values compare case-insensitively, spaces around them ignored. */
void retry_classify(const retry_policy *p, uint32_t attempt, const retry_response *r,
                    int64_t now_ms, uint64_t rnd, retry_outcome *out);

/* The webhook-delivery header's meaning: RETRY_DISABLE_ENDPOINT for
 * "disable", RETRY_ABORT_MESSAGE for "abort-message" (any case, spaces or
 * tabs around), RETRY_SUCCESS for anything else (ignored). */
retry_kind retry_parse_delivery_header(const char *s, size_t len);

/* ---- endpoint health ---------------------------------------------------- */

#define HEALTH_DISABLE_AFTER_MS (5LL * 24 * 3600 * 1000) /* no success for 5 days */
#define HEALTH_SPREAD_MS (12LL * 3600 * 1000)            /* failures at least 12 h apart */
#define HEALTH_WARN1_MS (24LL * 3600 * 1000)
#define HEALTH_WARN2_MS (72LL * 3600 * 1000)

typedef enum health_state { HEALTH_HEALTHY = 0, HEALTH_FAILING, HEALTH_DISABLED } health_state;

/* Events endpoint_health_on_result reports, ORed. */
enum health_event {
    HEALTH_EV_WARN_24H = 1,
    HEALTH_EV_WARN_72H = 2,
    HEALTH_EV_DISABLED = 4,
    HEALTH_EV_RECOVERED = 8, /* a success after failures (or after being disabled) */
};

/* One endpoint's health; zero it (or endpoint_health_init) to start. Times
 * are unix ms, 0 = never. A plain value owned by the caller. */
typedef struct endpoint_health {
    health_state state;
    int64_t failing_since; /* the first failure since the last success */
    int64_t disable_at;    /* failing: the first time a failure disables it */
    int64_t last_success;
    int64_t last_failure;
    int64_t first_seen; /* the first result: "no success for 5 days" counts from here without a
                           success */
    bool warned_24h, warned_72h;
    char reason[160]; /* disabled: why */
} endpoint_health;

void endpoint_health_init(endpoint_health *h);
/* Records the outcome of one attempt at now (unix ms) and returns the
 * events it caused. A success resets to healthy. RETRY_RETRY and
 * RETRY_THROTTLE are failures; RETRY_ABORT_MESSAGE is the receiver's choice
 * about one message and changes nothing. RETRY_DISABLE_ENDPOINT disables at
 * once. A failure disables when there was no success for
 * HEALTH_DISABLE_AFTER_MS (since the last success, or since the first
 * result) and the failures of this run span at least HEALTH_SPREAD_MS.
 * Warnings fire once per run of failures, at 24 h and 72 h after
 * failing_since. reason (may be NULL) is kept as the disable reason. */
unsigned endpoint_health_on_result(endpoint_health *h, int64_t now, retry_kind outcome,
                                   const char *reason);
/* "healthy", "failing", "disabled". Static. */
const char *health_state_name(health_state s);

#endif
