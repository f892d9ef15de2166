/* Wall and monotonic time, and unique ids. */
#ifndef PL_CLOCK_H
#define PL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Unix time in milliseconds. */
int64_t clock_wall_ms(void);
/* Monotonic time in microseconds (for latency measurements). */
int64_t clock_mono_us(void);
/* Writes a 26-character ULID (time-ordered, random tail) plus NUL into out. */
void clock_ulid(char out[27]);
/* The same for a time the caller read (Unix ms). */
void clock_ulid_at(char out[27], int64_t ms);
/* A ULID's 80-bit tail as two halves of this many bits each. */
#define CLOCK_ULID_HALF_BITS 40
/* Writes the ULID of ms (48 bits) and the tail halves hi and lo (40 bits
 * each; higher bits are dropped) plus NUL into out. */
void clock_ulid_pack(char out[27], uint64_t ms, uint64_t hi, uint64_t lo);
/* Reads back what clock_ulid_pack wrote: 0, or -1 unless s is exactly 26
 * characters of the ULID alphabet (upper case) with a 48-bit timestamp. */
int clock_ulid_unpack(const char *s, size_t len, uint64_t *ms, uint64_t *hi, uint64_t *lo);
/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (the
 * calendar part of timegm, which is neither C11 nor free of the TZ
 * environment). */
int64_t clock_days_from_civil(int64_t y, int m, int d);
/* Days in month m (1..12) of year y. */
int clock_days_in_month(int64_t y, int m);
/* Parses "200ms", "5s", "5m", "24h", "7d" into milliseconds; -1 if invalid. */
int64_t clock_parse_duration(const char *s);

#endif
