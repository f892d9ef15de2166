/* Guaranteed delivery: tracks every guaranteed pub written to a recipient
 * and not yet acknowledged, redelivers it with backoff, and dead-letters it
 * after the namespace's attempt limit. Runs on its own thread with its own
 * libuv loop and one timer wheel (never a timer per message); workers talk
 * to it through a mutex-guarded inbox.
 *
 * Per recipient user of a pub (persisted in the engine, see engine.h):
 *
 *              publish                 written to a connection
 *   (none) ----------> QUEUED ---------------------------------> SENT
 *                        ^  dlq.replay                            |  |
 *                        |                  ack wait + backoff    |  | ack covering it
 *                      FAILED <-- attempts > max_attempts ------ (resend, attempt+1)
 *                                                                    v
 *   EXPIRED (retention removed the pub first)            ACKNOWLEDGED --read cursor--> SEEN
 *
 * QUEUED -> SENT: delivery_sent (fan-out, or pending pubs on subscribe).
 * SENT -> SENT(attempt+1): the wheel fires after ack_wait + backoff(attempt).
 * SENT -> QUEUED: the resend is due but the recipient has no subscribed
 *   connection; no attempt is used up, it is delivered on its next subscribe.
 * SENT -> FAILED: attempts exhausted; the engine writes the dead-letter entry.
 * QUEUED/SENT -> ACKNOWLEDGED: the `ack` command (engine ENGINE_ACK).
 * ACKNOWLEDGED -> SEEN: the user's read cursor passes the offset.
 *
 * The transitions are tracker.h (no thread, no I/O); this module is their
 * thread and inbox. Everything the manager needs from the server comes in
 * through delivery_deps. */
#ifndef PL_DELIVERY_H
#define PL_DELIVERY_H

#include <stdint.h>

#include "engine/engine.h"
#include "engine/pub.h"

typedef struct delivery delivery;

typedef struct delivery_stats {
    uint64_t tracked, redeliveries, acks, dead_lettered, ack_latency_us_sum, ack_count;
} delivery_stats;

/* A namespace's delivery settings. The manager fills in the defaults (7
 * attempts, 5 s ack wait, retries from 1 s to 5 min) before asking, so a
 * channel without settings keeps them. */
typedef struct delivery_settings {
    uint32_t max_attempts; /* 0 = no limit */
    int64_t ack_wait_ms;
    int64_t retry_min_ms, retry_max_ms;
} delivery_settings;

/* What the manager needs from the rest of the server, copied by
 * delivery_new. Every callback gets ctx and runs on the manager's thread
 * (the one that calls the tracker, see tracker.h), never under a lock of the
 * manager, and must not call back into the manager. NULL callbacks are
 * allowed: see each one. */
typedef struct delivery_deps {
    /* Persists delivery state; borrowed, must outlive the manager (any
     * thread submits to it: delivery_sent persists from the caller's). */
    engine *eng;
    void *ctx; /* borrowed; passed back to the callbacks */
    /* 1 if the user has a connection subscribed to the channel. Any state it
     * reads must be safe to read from the manager's thread. NULL: always 1. */
    int (*user_online)(void *ctx, const char *tenant, const char *channel, const char *user);
    /* Writes attempt `attempt` of the pub to the user's connections that are
     * subscribed to its channel. pub and user are borrowed for the call: the
     * callee takes its own references. NULL: nothing is written. */
    void (*resend)(void *ctx, pl_pub *pub, const char *user, uint32_t attempt);
    /* Overrides *out (prefilled with the defaults) with the settings of the
     * channel's namespace. NULL: the defaults. */
    void (*settings)(void *ctx, const char *tenant, const char *channel, delivery_settings *out);
    /* Monotonic clock in microseconds. NULL: the real one (clock_mono_us). */
    int64_t (*now_us)(void *ctx);
    /* 64 random bits for the retry jitter. NULL: a generator seeded from
     * RAND_bytes. */
    uint64_t (*rand)(void *ctx);
} delivery_deps;

/* A stopped manager over deps (copied); NULL on allocation failure. */
delivery *delivery_new(const delivery_deps *deps);
/* Starts the thread and loads the deliveries left in state sent. 0 or -1. */
int delivery_start(delivery *d);
/* Stops the thread; pending timers are dropped (their state is persisted). */
void delivery_stop(delivery *d);
/* Frees a stopped (or never started) manager. NULL is ignored. */
void delivery_free(delivery *d);

/* A guaranteed pub was written to a connection of user with this attempt
 * number. Any thread; takes nothing (refs its own). */
void delivery_sent(delivery *d, pl_pub *pub, const char *user, uint32_t attempt);
/* The user acknowledged the channel up to offset. Any thread. */
void delivery_acked(delivery *d, const char *tenant, const char *channel, const char *user,
                    uint64_t upto);
/* Starts delivery again at attempt 1 (dead-letter replay). Any thread. */
void delivery_replay(delivery *d, pl_pub *pub, const char *user);
/* The counters as of the manager's last round. Any thread. */
void delivery_get_stats(delivery *d, delivery_stats *out);

/* The frame of a guaranteed pub for a given attempt, from its push frame
 * (which carries attempt 1): frame itself when attempt is 1, else a copy
 * with the attempt number. One reference, or NULL when frame is NULL or on
 * allocation failure. Any thread. */
rbuf *delivery_frame(const rbuf *frame, uint32_t attempt);

#endif
