/* Retry schedules for guaranteed redelivery and outbound webhooks: pure
 * arithmetic plus an injectable random source, so tests are deterministic.
 * All delays are in milliseconds; integer math only, saturating instead of
 * overflowing for any attempt number.
 *
 * Attempts count from 1: `attempt` is the number of attempts already made,
 * and the delay returned is the wait before the next one. */
#ifndef PL_BACKOFF_H
#define PL_BACKOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Random source                                                             */

/* Returns 64 uniformly random bits; state is whatever the caller passed. */
typedef uint64_t (*backoff_rand_fn)(void *state);

/* The default generator: xoshiro256**, small and fast, not cryptographic
 * (jitter only needs to de-synchronize retries). Caller-owned, one per
 * thread. */
typedef struct backoff_rng {
    uint64_t _s[4];
} backoff_rng;

/* Seeds r deterministically from seed (expanded with splitmix64). */
void backoff_rng_seed(backoff_rng *r, uint64_t seed);
/* Seeds r from OpenSSL RAND_bytes. Returns PL_OK, or PL_ERR if no entropy
 * was available (r is then seeded from the clock and its address). */
int backoff_rng_seed_random(backoff_rng *r);
/* A backoff_rand_fn over a backoff_rng (state must point to one). */
uint64_t backoff_rng_next(void *state);
/* A uniform value in [0, n) without modulo bias; n must be > 0. */
uint64_t backoff_uniform(backoff_rand_fn fn, void *state, uint64_t n);

/* ------------------------------------------------------------------------ */
/* Exponential backoff with full jitter                                      */

#define BACKOFF_DEFAULT_BASE_MS 1000
#define BACKOFF_DEFAULT_FACTOR 2
#define BACKOFF_DEFAULT_CAP_MS 300000

/* Plain caller-owned value; copying it copies the generator state too. */
typedef struct backoff {
    int64_t base_ms;      /* >= 0 */
    uint32_t factor;      /* >= 1 */
    int64_t cap_ms;       /* >= 0 */
    backoff_rand_fn rand; /* NULL: use _rng */
    void *rand_state;     /* borrowed; passed to rand */
    backoff_rng _rng;
} backoff;

/* Sets the defaults (1 s, x2, 5 min) and seeds the built-in generator from
 * RAND_bytes. Returns PL_OK, or PL_ERR as backoff_rng_seed_random. */
int backoff_init(backoff *b);
/* Sets the curve, e.g. from a namespace's retry_min / retry_max. Returns
 * PL_OK, or PL_EINVAL (b unchanged) for a negative base or cap or factor 0. */
int backoff_configure(backoff *b, int64_t base_ms, uint32_t factor, int64_t cap_ms);
/* Replaces the random source (fn NULL restores the built-in generator);
 * state is borrowed and must outlive b's use. */
void backoff_set_rand(backoff *b, backoff_rand_fn fn, void *state);

/* The upper bound of the delay after `attempt` attempts:
 * min(cap, base * factor^(attempt - 1)); attempt 0 counts as 1. Monotonic in
 * attempt, never overflows. */
int64_t backoff_bound(const backoff *b, uint32_t attempt);
/* A delay drawn uniformly from [0, backoff_bound(b, attempt)] ("full
 * jitter"). */
int64_t backoff_delay(backoff *b, uint32_t attempt);

/* True when `attempts` attempts exhaust max_attempts (0 = no limit), i.e.
 * the item goes to the dead-letter queue instead of being retried. */
bool backoff_should_give_up(uint32_t attempts, uint32_t max_attempts);

/* ------------------------------------------------------------------------ */
/* Explicit schedule (outbound webhooks)                                     */

#define BACKOFF_SCHEDULE_DEFAULT_CAP_MS (24LL * 3600 * 1000)

/* Delays for retries 1, 2, ...; the last one repeats. */
typedef struct backoff_schedule {
    const int64_t *delays_ms; /* borrowed, e.g. cfg_webhook.retry_schedule_ms */
    size_t n_delays;
    uint32_t jitter_pct;  /* 0..100: each delay moves by up to +-pct% */
    int64_t cap_ms;       /* hard ceiling, also for Retry-After */
    backoff_rand_fn rand; /* NULL: use _rng */
    void *rand_state;
    backoff_rng _rng;
} backoff_schedule;

/* d moved uniformly within +-pct% of itself (pct is clamped to 100),
 * drawing from fn/state (one draw or a few, see backoff_uniform);
 * saturates at INT64_MAX; d <= 0 and pct 0 are returned unchanged. Shared
 * by the schedules here and the webhook retry policy (hooks/retry.h). */
int64_t backoff_jitter(int64_t d, uint32_t pct, backoff_rand_fn fn, void *state);

/* Sets up s over delays (borrowed; n == 0 selects the built-in
 * 5s, 5m, 30m, 2h, 5h, 10h). cap_ms <= 0 selects
 * BACKOFF_SCHEDULE_DEFAULT_CAP_MS. Seeds the built-in generator. Returns
 * PL_OK, PL_EINVAL for a negative delay or jitter_pct > 100, or PL_ERR as
 * backoff_rng_seed_random. */
int backoff_schedule_init(backoff_schedule *s, const int64_t *delays, size_t n, uint32_t jitter_pct,
                          int64_t cap_ms);
/* Replaces the random source, as backoff_set_rand. */
void backoff_schedule_set_rand(backoff_schedule *s, backoff_rand_fn fn, void *state);
/* The wait after `attempt` failed attempts (0 counts as 1): the scheduled
 * delay with jitter, or retry_after_ms when that is larger (pass -1 when the
 * response had no Retry-After), never more than the cap. */
int64_t backoff_schedule_delay(backoff_schedule *s, uint32_t attempt, int64_t retry_after_ms);

/* Parses an HTTP Retry-After value (len bytes, not NUL-terminated): either
 * delay-seconds ("120") or an HTTP-date, optionally surrounded by spaces or
 * tabs. An HTTP-date is an IMF-fixdate ("Wed, 21 Oct 2015 07:28:00 GMT") or
 * one of the obsolete forms RFC 9110 section 5.6.7 requires recipients to
 * accept: RFC 850 ("Wednesday, 21-Oct-15 07:28:00 GMT", a two-digit year
 * more than 50 years ahead of now_ms being the century before) and asctime
 * ("Wed Oct 21 07:28:00 2015", the day padded with a space). Returns the
 * delay in ms relative to now_ms (unix ms; 0 for a date in the past),
 * saturating at INT64_MAX for huge values, or -1 if the value is
 * malformed. */
int64_t backoff_parse_retry_after(const char *s, size_t len, int64_t now_ms);

#endif
