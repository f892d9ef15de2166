/* Retry schedules (see backoff.h): exponential backoff with full jitter for
 * guaranteed redelivery, explicit schedules honoring Retry-After for
 * webhooks, and the small PRNG behind the jitter. Every multiplication is
 * checked against the cap first, so no attempt number can overflow. */
#include "delivery/backoff.h"

#include <string.h>

#include <openssl/rand.h>

#include "util/clock.h"
#include "util/status.h"

/* ------------------------------------------------------------------------ */
/* PRNG                                                                      */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void backoff_rng_seed(backoff_rng *r, uint64_t seed)
{
    /* splitmix64 never yields four zero words, the one state xoshiro must
     * not start from. */
    for (int i = 0; i < 4; i++)
        r->_s[i] = splitmix64(&seed);
}

int backoff_rng_seed_random(backoff_rng *r)
{
    uint64_t seed;
    if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) == 1) {
        backoff_rng_seed(r, seed);
        return PL_OK;
    }
    /* Still distinct per process and per generator, just guessable. */
    seed = (uint64_t)clock_mono_us() ^ ((uint64_t)clock_wall_ms() << 20) ^ (uint64_t)(uintptr_t)r;
    backoff_rng_seed(r, seed);
    return PL_ERR;
}

uint64_t backoff_rng_next(void *state)
{
    uint64_t *s = ((backoff_rng *)state)->_s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t backoff_uniform(backoff_rand_fn fn, void *state, uint64_t n)
{
    if (n <= 1) return 0;
    /* Reject the lowest 2^64 mod n values so every residue is equally
     * likely; fewer than half of all draws are ever rejected. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = fn(state);
        if (x >= threshold) return x % n;
    }
}

/* Draws from [0, n) with fn/state, or with rng when fn is NULL. */
static uint64_t draw(backoff_rand_fn fn, void *state, backoff_rng *rng, uint64_t n)
{
    if (!fn) return backoff_uniform(backoff_rng_next, rng, n);
    return backoff_uniform(fn, state, n);
}

/* ------------------------------------------------------------------------ */
/* Exponential backoff                                                       */

int backoff_init(backoff *b)
{
    b->base_ms = BACKOFF_DEFAULT_BASE_MS;
    b->factor = BACKOFF_DEFAULT_FACTOR;
    b->cap_ms = BACKOFF_DEFAULT_CAP_MS;
    b->rand = NULL;
    b->rand_state = NULL;
    return backoff_rng_seed_random(&b->_rng);
}

int backoff_configure(backoff *b, int64_t base_ms, uint32_t factor, int64_t cap_ms)
{
    if (base_ms < 0 || cap_ms < 0 || factor == 0) return PL_EINVAL;
    b->base_ms = base_ms;
    b->factor = factor;
    b->cap_ms = cap_ms;
    return PL_OK;
}

void backoff_set_rand(backoff *b, backoff_rand_fn fn, void *state)
{
    b->rand = fn;
    b->rand_state = state;
}

int64_t backoff_bound(const backoff *b, uint32_t attempt)
{
    int64_t v = b->base_ms;
    if (v >= b->cap_ms) return b->cap_ms;
    if (v == 0 || b->factor <= 1) return v;
    /* v < cap here; stop as soon as the next step would pass the cap, which
     * with factor >= 2 takes at most 63 rounds whatever the attempt. */
    for (uint32_t i = 1; i < attempt; i++) {
        if (v > b->cap_ms / (int64_t)b->factor) return b->cap_ms;
        v *= (int64_t)b->factor;
    }
    return v;
}

int64_t backoff_delay(backoff *b, uint32_t attempt)
{
    uint64_t bound = (uint64_t)backoff_bound(b, attempt);
    return (int64_t)draw(b->rand, b->rand_state, &b->_rng, bound + 1);
}

bool backoff_should_give_up(uint32_t attempts, uint32_t max_attempts)
{
    return max_attempts != 0 && attempts >= max_attempts;
}

/* ------------------------------------------------------------------------ */
/* Explicit schedule                                                         */

static const int64_t default_schedule[] = {5000, 300000, 1800000, 7200000, 18000000, 36000000};

int backoff_schedule_init(backoff_schedule *s, const int64_t *delays, size_t n, uint32_t jitter_pct,
                          int64_t cap_ms)
{
    if (jitter_pct > 100) return PL_EINVAL;
    if (n == 0) {
        delays = default_schedule;
        n = sizeof(default_schedule) / sizeof(default_schedule[0]);
    }
    for (size_t i = 0; i < n; i++)
        if (delays[i] < 0) return PL_EINVAL;
    s->delays_ms = delays;
    s->n_delays = n;
    s->jitter_pct = jitter_pct;
    s->cap_ms = cap_ms > 0 ? cap_ms : BACKOFF_SCHEDULE_DEFAULT_CAP_MS;
    s->rand = NULL;
    s->rand_state = NULL;
    return backoff_rng_seed_random(&s->_rng);
}

void backoff_schedule_set_rand(backoff_schedule *s, backoff_rand_fn fn, void *state)
{
    s->rand = fn;
    s->rand_state = state;
}

int64_t backoff_jitter(int64_t d, uint32_t pct, backoff_rand_fn fn, void *state)
{
    if (pct == 0 || d <= 0) return d;
    if (pct > 100) pct = 100;
    uint64_t u = (uint64_t)d;
    uint64_t j = u / 100 * pct + u % 100 * pct / 100; /* <= d: no overflow */
    uint64_t v = u - j + backoff_uniform(fn, state, 2 * j + 1);
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* d moved uniformly within +-pct% of itself, saturating at INT64_MAX. */
static int64_t jitter(backoff_schedule *s, int64_t d)
{
    if (!s->rand) return backoff_jitter(d, s->jitter_pct, backoff_rng_next, &s->_rng);
    return backoff_jitter(d, s->jitter_pct, s->rand, s->rand_state);
}

int64_t backoff_schedule_delay(backoff_schedule *s, uint32_t attempt, int64_t retry_after_ms)
{
    size_t i = attempt == 0 ? 0 : attempt - 1;
    if (i >= s->n_delays) i = s->n_delays - 1;
    int64_t d = jitter(s, s->delays_ms[i]);
    if (retry_after_ms > d) d = retry_after_ms;
    return d < s->cap_ms ? d : s->cap_ms;
}

/* ------------------------------------------------------------------------ */
/* Retry-After                                                               */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* n digits at s as a number, or -1. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int index_of(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (s[0] == names[i][0] && s[1] == names[i][1] && s[2] == names[i][2]) return i;
    return -1;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" (exactly 29 bytes) to unix ms, or -1. */
static int parse_imf_fixdate(const char *s, size_t len, int64_t *out)
{
    static const char *const wdays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (len != 29 || index_of(s, wdays, 7) < 0 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' ||
        s[11] != ' ' || s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25] != ' ' ||
        s[26] != 'G' || s[27] != 'M' || s[28] != 'T')
        return -1;
    int day = digits(s + 5, 2), mon = index_of(s + 8, months, 12) + 1, year = digits(s + 12, 4);
    int hh = digits(s + 17, 2), mm = digits(s + 20, 2), ss = digits(s + 23, 2);
    if (day < 1 || mon < 1 || year < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 ||
        ss > 60 || day > clock_days_in_month(year, mon))
        return -1;
    int64_t secs = clock_days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss;
    *out = secs * 1000;
    return 0;
}

/* Seconds of a day from "HH:MM:SS" at s, or -1 (a leap second 60 is read
 * as the next second, as parse_imf_fixdate does). */
static int64_t clock_of_day(const char *s)
{
    if (s[2] != ':' || s[5] != ':') return -1;
    int hh = digits(s, 2), mm = digits(s + 3, 2), ss = digits(s + 6, 2);
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60) return -1;
    return (int64_t)hh * 3600 + mm * 60 + ss;
}

static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* The obsolete RFC 850 form, "Sunday, 06-Nov-94 08:49:37 GMT": a two-digit
 * year more than 50 years after now_ms's year is the century before
 * (RFC 9110 section 5.6.7). 0 with *out, or -1. */
static int parse_rfc850(const char *s, size_t len, int64_t now_ms, int64_t *out)
{
    static const char *const wdays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};
    size_t w = 0;
    while (w < len && s[w] != ',')
        w++;
    int known = 0;
    for (int i = 0; i < 7; i++)
        known |= strlen(wdays[i]) == w && !memcmp(s, wdays[i], w);
    if (!known || len != w + 24) return -1;
    const char *p = s + w; /* ", 06-Nov-94 08:49:37 GMT" */
    if (p[1] != ' ' || p[4] != '-' || p[8] != '-' || p[11] != ' ' || memcmp(p + 20, " GMT", 4))
        return -1;
    int day = digits(p + 2, 2), mon = index_of(p + 5, month_names, 12) + 1, yy = digits(p + 9, 2);
    int64_t tod = clock_of_day(p + 12);
    if (day < 1 || mon < 1 || yy < 0 || tod < 0) return -1;
    int64_t now_year = 1970 + (now_ms / 1000) / 31556952; /* mean Gregorian year: close enough */
    int64_t century = now_year / 100;
    int64_t year = century * 100 + yy;
    if (year > now_year + 50) year = (century - 1) * 100 + yy;
    /* A clock past year 9999 (only a hostile or broken caller's) would
     * overflow the milliseconds below. */
    if (year < 0 || year > 9999 || day > clock_days_in_month((int)year, mon)) return -1;
    *out = (clock_days_from_civil(year, mon, day) * 86400 + tod) * 1000;
    return 0;
}

/* The obsolete asctime form, "Sun Nov  6 08:49:37 1994" (the day padded
 * with a space). 0 with *out, or -1. */
static int parse_asctime(const char *s, size_t len, int64_t *out)
{
    static const char *const wdays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    if (len != 24 || index_of(s, wdays, 7) < 0 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' ||
        s[19] != ' ')
        return -1;
    int mon = index_of(s + 4, month_names, 12) + 1;
    int day = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2), year = digits(s + 20, 4);
    int64_t tod = clock_of_day(s + 11);
    if (mon < 1 || day < 1 || year < 0 || tod < 0 || day > clock_days_in_month(year, mon))
        return -1;
    *out = (clock_days_from_civil(year, mon, day) * 86400 + tod) * 1000;
    return 0;
}

int64_t backoff_parse_retry_after(const char *s, size_t len, int64_t now_ms)
{
    while (len > 0 && is_ows(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && is_ows(s[len - 1]))
        len--;
    if (len == 0) return -1;
    if (is_digit(s[0])) {
        int64_t secs = 0;
        for (size_t i = 0; i < len; i++) {
            if (!is_digit(s[i])) return -1;
            if (secs <= INT64_MAX / 10000)
                secs = secs * 10 + (s[i] - '0');
            else
                secs = INT64_MAX / 1000 + 1; /* saturated: stays large */
        }
        return secs > INT64_MAX / 1000 ? INT64_MAX : secs * 1000;
    }
    int64_t at;
    if (parse_imf_fixdate(s, len, &at) < 0 && parse_rfc850(s, len, now_ms, &at) < 0 &&
        parse_asctime(s, len, &at) < 0)
        return -1;
    int64_t delta;
    if (__builtin_sub_overflow(at, now_ms, &delta)) return now_ms < 0 ? INT64_MAX : 0;
    return delta > 0 ? delta : 0;
}
