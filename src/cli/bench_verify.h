/* The idle scenario's verification burst (`parley bench idle --verify`):
 * once every subscriber is connected and subscribed, one publisher writes
 * one publish per subscribed channel without waiting for any answer, and
 * the run checks that every publish was answered (acked, or refused with an
 * error code), that every subscriber received exactly its channel's pub,
 * and that the server closed no connection. The tracker here is the
 * bookkeeping and the verdict; bench_run.c sends and routes the frames. */
#ifndef PL_BENCH_VERIFY_H
#define PL_BENCH_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/sbuf.h"

/* Distinct codes kept per table; later codes are folded into the last. */
#define BENCH_VERIFY_CODES 16
/* The key a close without a close frame (reset, EOF) is counted under: the
 * code WebSocket reserves for an abnormal closure. */
#define BENCH_VERIFY_ABNORMAL 1006

typedef struct bench_code_count {
    int code;
    uint64_t count;
} bench_code_count;

typedef struct bench_code_table {
    bench_code_count e[BENCH_VERIFY_CODES];
    size_t n;
} bench_code_table;

/* The figures of one verification, plain data (copied into the result). */
typedef struct bench_verify_sum {
    bool on;                      /* --verify was given */
    bool started;                 /* the burst was sent */
    uint64_t channels;            /* subscribers, one channel each */
    uint64_t published;           /* publishes written */
    uint64_t acked;               /* answered with a result */
    uint64_t refused;             /* answered with an error */
    uint64_t unanswered;          /* published - acked - refused */
    uint64_t delivered;           /* subscribers that received their channel's pub */
    uint64_t missing;             /* subscribers that did not */
    uint64_t extra;               /* deliveries beyond the first, or of a pub not sent */
    uint64_t mismatched;          /* delivered offset differs from the acked offset */
    bench_code_table refused_by;  /* error code -> publishes */
    bench_code_table disconnects; /* close code -> connections closed by the server */
    int publisher_close;          /* the publisher's close code; 0 while open */
    uint64_t acked_at_close;      /* acks the publisher had when it was closed */
    uint64_t delivered_at_close;  /* subscribers served by then */
    double burst_write_s;         /* burst start until the last byte left the bench */
    double settle_s;              /* burst start to the last ack or delivery; <0 if none */
} bench_verify_sum;

typedef struct bench_verify {
    bench_verify_sum sum;
    uint32_t n;
    uint64_t first_id; /* command id of channel 0's publish; ids are consecutive */
    uint8_t *answer;   /* per channel: 0 none, 1 acked, 2 refused */
    uint32_t *got;     /* per channel: deliveries */
    uint64_t *ack_off, *got_off;
    uint64_t t_burst, t_last;
} bench_verify;

/* Allocates the per-channel state for n channels. 0, or -1 on OOM. */
int bench_verify_init(bench_verify *v, uint32_t n);
void bench_verify_release(bench_verify *v);
/* The burst is about to be written: ids first_id .. first_id+n-1. */
void bench_verify_start(bench_verify *v, uint64_t first_id, uint64_t now);
/* The channel index of a burst publish id, or -1 when id is not one. */
int64_t bench_verify_chan(const bench_verify *v, uint64_t id);
/* A reply to publish id: acked at offset, or refused with code. Returns
 * false when id is not a burst publish or was answered already. */
bool bench_verify_ack(bench_verify *v, uint64_t id, uint64_t offset, uint64_t now);
bool bench_verify_refuse(bench_verify *v, uint64_t id, int code, uint64_t now);
/* A pub reached the subscriber of channel chan (s = the payload's sequence
 * number; the burst sends s = 1 on every channel). */
void bench_verify_deliver(bench_verify *v, uint32_t chan, uint64_t offset, uint64_t s,
                          uint64_t now);
/* The server closed a connection with code (the disconnect push's code,
 * else the close frame's, else BENCH_VERIFY_ABNORMAL). */
void bench_verify_closed(bench_verify *v, int code, bool publisher);
/* Every publish answered and every subscriber served: nothing more can
 * arrive. (With the publisher closed early this stays false; the run then
 * waits --drain for deliveries of publishes whose answers were lost.) */
bool bench_verify_settled(const bench_verify *v);
/* Fills the derived figures (unanswered, delivered, missing, ...). */
void bench_verify_finish(bench_verify *v);
/* No missing delivery, no unanswered or refused publish, nothing extra or
 * mismatched, and no connection closed by the server. */
bool bench_verify_pass(const bench_verify_sum *s);
/* ,"verify":{...} for the JSON line, and a ", verify ..." human part. */
void bench_verify_json(const bench_verify_sum *s, sbuf *j);
void bench_verify_human(const bench_verify_sum *s, sbuf *h);

#endif
