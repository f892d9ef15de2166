/* Streaming reader of the NATS client protocol as nats-server sends it
 * (INFO, MSG, PING, PONG, +OK, -ERR), used by `parley bench --proto nats`
 * to drive the same scenarios against nats-server over WebSocket. Bytes
 * arrive in arbitrary pieces (WebSocket frames need not align with protocol
 * lines); the parser keeps the unfinished tail. Pure: no I/O. */
#ifndef PL_BENCH_NATS_H
#define PL_BENCH_NATS_H

#include <stddef.h>
#include <stdint.h>

/* Limits a hostile peer cannot push past. */
#define BENCH_NATS_MAX_LINE 4096
#define BENCH_NATS_MAX_PAYLOAD (8u << 20)

typedef struct bench_nats_cb {
    /* payload points into parser memory, valid only during the call. */
    void (*on_msg)(void *ud, uint64_t sid, const char *payload, size_t len);
    void (*on_ping)(void *ud);
    void (*on_pong)(void *ud);
    void (*on_info)(void *ud, const char *json, size_t len);
    void (*on_err)(void *ud, const char *msg, size_t len);
} bench_nats_cb;

typedef struct bench_nats {
    char *buf; /* unfinished tail, owned by the parser */
    size_t len, cap;
    int failed;
} bench_nats;

void bench_nats_init(bench_nats *p);
void bench_nats_release(bench_nats *p);
/* Feeds n bytes; calls cb for every complete item (NULL members are
 * skipped). Returns PL_OK, PL_EINVAL on a protocol violation or oversized
 * item (the parser then refuses further input), or PL_ENOMEM. */
int bench_nats_feed(bench_nats *p, const char *data, size_t n, const bench_nats_cb *cb, void *ud);

#endif
