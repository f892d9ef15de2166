/* Reader for the Parley server lines `parley bench` cares about: pushes
 * (pub, gap, ping, disconnect) and command replies (id, result fields
 * offset/epoch/recovered/more/pubs, error code). One line is one JSON
 * object; a server frame holds several separated by '\n'. The payload we
 * publish is {"t":<send CLOCK_MONOTONIC ns>,"s":<per-channel sequence>,...}
 * and both numbers are pulled out of `data`. Pure: bytes in, struct out. */
#ifndef PL_BENCH_SCAN_H
#define PL_BENCH_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum bench_kind {
    BENCH_BAD = 0,    /* not JSON, not an object, or a field of the wrong type */
    BENCH_PUB,        /* push "pub" */
    BENCH_GAP,        /* push "gap": from..to can no longer be delivered */
    BENCH_PING,       /* push "ping": answer {"method":"pong"} */
    BENCH_DISCONNECT, /* push "disconnect" with code */
    BENCH_PUSH_OTHER, /* join/leave/typing/read/unsubscribe: ignored */
    BENCH_RESULT,     /* {"id":N,"result":{...}} */
    BENCH_ERROR,      /* {"id":N,"error":{...}} or an error without id */
} bench_kind;

typedef struct bench_pub {
    uint64_t offset; /* 0 for ephemeral */
    uint64_t t;      /* data.t, 0 when absent */
    uint64_t s;      /* data.s, 0 when absent */
} bench_pub;

#define BENCH_EPOCH_MAX 64

typedef struct bench_line {
    bench_kind kind;
    uint64_t id;         /* reply id; 0 when absent */
    const char *channel; /* points into the scanned line; NULL when absent */
    size_t channel_len;
    char epoch[BENCH_EPOCH_MAX]; /* "" when absent */
    bench_pub pub;               /* BENCH_PUB */
    uint64_t offset;             /* BENCH_RESULT: result.offset */
    bool has_offset;
    bool recovered, more;  /* BENCH_RESULT of subscribe */
    uint64_t from, to;     /* BENCH_GAP */
    int code;              /* BENCH_ERROR / BENCH_DISCONNECT */
    const bench_pub *pubs; /* BENCH_RESULT: result.pubs; owned by the scanner, valid
                              until its next use */
    size_t npubs;
} bench_line;

typedef struct bench_scanner bench_scanner;

/* Returns a scanner (token and pub storage grows on demand), or NULL. Free
 * with bench_scanner_free. */
bench_scanner *bench_scanner_new(void);
void bench_scanner_free(bench_scanner *sc);
/* Scans one line (no '\n'). Always fills out; out->kind is BENCH_BAD when
 * the line is malformed, too large (more than 1 Mi tokens) or nested more
 * than 128 deep (bench payloads are flat; the bound keeps a hostile line
 * from costing quadratic time). */
void bench_scan(bench_scanner *sc, const char *line, size_t len, bench_line *out);

/* Test hook: pub pushes normally take a one-pass fast path; off forces
 * every line through jsmn so the two can be compared. */
void bench_scanner_set_fast(bench_scanner *sc, bool on);

/* Reads t and s from a bench payload object (NATS messages carry the
 * payload bare). Returns 0, or -1 when json is not an object; absent or
 * non-integer fields are left 0. */
int bench_scan_data(bench_scanner *sc, const char *json, size_t len, bench_pub *out);

/* Parses an unsigned decimal integer filling exactly [s, s+n); -1 on any
 * other byte, empty input or overflow. */
int bench_parse_u64(const char *s, size_t n, uint64_t *out);

#endif
