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

void clock_ulid(char out[27])
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint64_t ms = (uint64_t)clock_wall_ms();
    unsigned char rnd[10];
    uint64_t a = next_random(), b = next_random();
    memcpy(rnd, &a, 8);
    memcpy(rnd + 8, &b, 2);
    for (int i = 9; i >= 0; i--) {
        out[i] = alphabet[ms & 31];
        ms >>= 5;
    }
    /* 80 random bits -> 16 base32 characters. */
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 5; i++)
        hi = (hi << 8) | rnd[i];
    for (int i = 5; i < 10; i++)
        lo = (lo << 8) | rnd[i];
    for (int i = 0; i < 8; i++) {
        out[17 - i] = alphabet[hi & 31];
        hi >>= 5;
        out[25 - i] = alphabet[lo & 31];
        lo >>= 5;
    }
    out[26] = '\0';
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
