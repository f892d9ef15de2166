/* SSE stream cursors: the event id of an SSE stream names the position of
 * every channel of the stream, so a reconnecting EventSource, which echoes
 * only the last id it saw, resumes all of them. Pure functions, no state.
 *
 * Format: "v1:" then one entry per channel of the stream, in the order of
 * the query's `channel` parameters, joined by ','. An entry is
 * "EPOCH.OFFSET" (the channel's epoch, then the offset written so far in
 * decimal) or empty when the stream has no position for that channel yet.
 * EPOCH "*" (unchecked) stands only for a channel resumed from the older
 * form whose starting point has not come from storage yet.
 * The older form "CHANNEL@OFFSET" (one channel, no epoch) is still read. */
#ifndef PL_SSE_CURSOR_H
#define PL_SSE_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "engine/pub.h"

#define SSE_CURSOR_MAX_CHANNELS 16
/* "v1:" + 16 entries of epoch, '.', 20 digits and ',' (NUL included). */
#define SSE_CURSOR_MAX_LEN (3 + SSE_CURSOR_MAX_CHANNELS * (PUB_EPOCH_LEN + 22) + 1)

/* The position of one channel of a stream. known 0: none (start live).
 * epoch "*" (only from the older form) matches any epoch. */
typedef struct sse_pos {
    uint64_t offset;
    char epoch[PUB_EPOCH_LEN + 1];
    uint8_t known;
} sse_pos;

/* Writes the cursor of pos[0..n) (n at most SSE_CURSOR_MAX_CHANNELS) into
 * out (cap bytes, NUL-terminated). Returns its length, or 0 when it does not
 * fit or n is out of range (out then holds ""). */
size_t sse_cursor_encode(const sse_pos *pos, size_t n, char *out, size_t cap);

/* Reads a Last-Event-ID value (len bytes, need not be NUL-terminated) for a
 * stream of the nch channels chans (in query order) into pos[0..nch). A
 * cursor's entries map to the channels by position: missing entries, extra
 * entries and a malformed cursor (any bad entry, or longer than
 * SSE_CURSOR_MAX_LEN) leave the channels without a position; the older form
 * gives its channel that offset with epoch "*". Returns how many channels
 * got a position. */
size_t sse_cursor_parse(const char *v, size_t len, const char *const *chans, size_t nch,
                        sse_pos *pos);

#endif
