/* Wall and monotonic time, and unique ids. */
#ifndef PL_CLOCK_H
#define PL_CLOCK_H

#include <stdint.h>

/* Unix time in milliseconds. */
int64_t clock_wall_ms(void);
/* Monotonic time in microseconds (for latency measurements). */
int64_t clock_mono_us(void);
/* Writes a 26-character ULID (time-ordered, random tail) plus NUL into out. */
void clock_ulid(char out[27]);
/* Parses "200ms", "5s", "5m", "24h", "7d" into milliseconds; -1 if invalid. */
int64_t clock_parse_duration(const char *s);

#endif
