/* Time and id helpers; see clock.h. */
#include "util/clock.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Ids need uniqueness, not secrecy: a per-thread splitmix64 seeded once
 * from the OS avoids a RAND_bytes call (a lock and a getpid) per pub. The
 * thread-local state is the generator's own, like the allocation hook. */
static uint64_t next_random(void)
{
    static _Thread_local uint64_t state;
    static _Thread_local int seeded;
    if (!seeded) {
        if (RAND_bytes((unsigned char *)&state, sizeof(state)) != 1)
            state = (uint64_t)clock_mono_us();
        seeded = 1;
    }
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static const char ulid_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Every character from its own shift of the input, with no chain from one
 * to the next: three ids a publish pass through here. */
void clock_ulid_pack(char out[27], uint64_t ms, uint64_t hi, uint64_t lo)
{
#pragma GCC unroll 10
    for (int i = 0; i < 10; i++)
        out[i] = ulid_alphabet[(ms >> (45 - 5 * i)) & 31];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        out[10 + i] = ulid_alphabet[(hi >> (35 - 5 * i)) & 31];
        out[18 + i] = ulid_alphabet[(lo >> (35 - 5 * i)) & 31];
    }
    out[26] = '\0';
}

int clock_ulid_unpack(const char *s, size_t len, uint64_t *ms, uint64_t *hi, uint64_t *lo)
{
    /* The first character carries only 3 of the timestamp's 48 bits. */
    if (!s || len != 26 || s[0] > '7') return -1;
    uint64_t v[3] = {0, 0, 0};
    for (size_t i = 0; i < 26; i++) {
        const char *at = memchr(ulid_alphabet, s[i], 32);
        if (!at) return -1;
        size_t k = i < 10 ? 0 : i < 18 ? 1 : 2;
        v[k] = (v[k] << 5) | (uint64_t)(at - ulid_alphabet);
    }
    *ms = v[0];
    *hi = v[1];
    *lo = v[2];
    return 0;
}

void clock_ulid_at(char out[27], int64_t ms)
{
    uint64_t mask = (1ULL << CLOCK_ULID_HALF_BITS) - 1;
    clock_ulid_pack(out, (uint64_t)ms, next_random() & mask, next_random() & mask);
}

void clock_ulid(char out[27])
{
    clock_ulid_at(out, clock_wall_ms());
}

int64_t clock_parse_duration(const char *s)
{
    if (!s || !isdigit((unsigned char)*s)) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (v < 0 || v > 1000000000LL) return -1;
    int64_t mul;
    if (!strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s") || !*end)
        mul = 1000;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else if (!strcmp(end, "d"))
        mul = 86400000;
    else
        return -1;
    return (int64_t)v * mul;
}

/* Howard Hinnant's days_from_civil. */
int64_t clock_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int clock_days_in_month(int64_t y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}
