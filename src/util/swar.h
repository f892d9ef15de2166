/* Eight bytes a step (SWAR) for the JSON scans of the server's reader and
 * the bench client's: which bytes of a word end or break a string's plain
 * run, or end a number's digits. */
#ifndef PL_SWAR_H
#define PL_SWAR_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

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

/* The high bit of each byte of w that is not an ASCII digit; exact for
 * every byte (no borrow crosses bytes). */
static inline uint64_t swar_nondigits(uint64_t w)
{
    uint64_t x = w ^ (SWAR_ONES * '0'); /* digits become 0..9 */
    return (((x & (SWAR_ONES * 0x7f)) + SWAR_ONES * 0x76) | x) & SWAR_HIGHS;
}

/* The 8 bytes at p as a word whose lowest byte is p[0] (any host order), so
 * swar_first names bytes by their position. */
static inline uint64_t swar_load(const void *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return le64toh(w);
}

/* The position (0..7) of the lowest flagged byte of a mask from swar_load's
 * word, or 8 if none is flagged. */
static inline unsigned swar_first(uint64_t m)
{
    return m ? (unsigned)__builtin_ctzll(m) >> 3 : 8;
}

#endif
