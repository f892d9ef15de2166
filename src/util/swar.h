/* Eight bytes a step (SWAR) for the JSON string scans of the server's reader
 * and the bench client's: which bytes of a word end or break a string's
 * plain run. */
#ifndef PL_SWAR_H
#define PL_SWAR_H

#include <stdint.h>

#define SWAR_ONES 0x0101010101010101ULL
#define SWAR_HIGHS 0x8080808080808080ULL

/* The high bit of each byte of w that is '"', '\\' or below 0x20; bytes with
 * their high bit set are never flagged. The lowest flagged byte is exact,
 * but borrows may flag bytes above it too: ask only whether any byte is
 * flagged, or which is the lowest. */
static inline uint64_t swar_json_stops(uint64_t w)
{
    uint64_t q = w ^ (SWAR_ONES * '"'), b = w ^ (SWAR_ONES * '\\');
    return ((q - SWAR_ONES) | (b - SWAR_ONES) | (w - SWAR_ONES * 0x20)) & ~w & SWAR_HIGHS;
}

#endif
