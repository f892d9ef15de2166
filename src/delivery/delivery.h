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
 * ACKNOWLEDGED -> SEEN: the user's read cursor passes the offset. */
#ifndef PL_DELIVERY_H
#define PL_DELIVERY_H

#include <stdint.h>

#include "engine/pub.h"

typedef struct delivery delivery;
struct server;

typedef struct delivery_stats {
    uint64_t tracked, redeliveries, acks, dead_lettered, ack_latency_us_sum, ack_count;
} delivery_stats;

delivery *delivery_new(struct server *srv);
/* Starts the thread and loads the deliveries left in state sent. 0 or -1. */
int delivery_start(delivery *d);
/* Stops the thread; pending timers are dropped (their state is persisted). */
void delivery_stop(delivery *d);
void delivery_free(delivery *d);

/* A guaranteed pub was written to a connection of user with this attempt
 * number. Any thread; takes nothing (refs its own). */
void delivery_sent(delivery *d, pl_pub *pub, const char *user, uint32_t attempt);
/* The user acknowledged the channel up to offset. Any thread. */
void delivery_acked(delivery *d, const char *tenant, const char *channel, const char *user,
                    uint64_t upto);
/* Starts delivery again at attempt 1 (dead-letter replay). Any thread. */
void delivery_replay(delivery *d, pl_pub *pub, const char *user);
void delivery_get_stats(delivery *d, delivery_stats *out);

/* The frame of a guaranteed pub for a given attempt: the shared frame when
 * attempt is 1, else a copy with the attempt number (one reference, or NULL). */
rbuf *delivery_frame(pl_pub *pub, uint32_t attempt);

#endif
