/* The guaranteed-delivery state machine of delivery.h without a thread: the
 * deliveries in state sent, their redelivery timers on one wheel, and the
 * transitions, persisted through the engine. Time comes from deps->now_us
 * and nothing here blocks or touches a socket, so it can be driven directly
 * (the delivery thread, unit tests).
 *
 * Single-threaded: every tracker_* call but tracker_persist must come from
 * one thread at a time. Deliveries are indexed by (pub, user) and by
 * (tenant, user, channel) in offset order, so an ack costs O(1 + the
 * deliveries it acknowledges). */
#ifndef PL_TRACKER_H
#define PL_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include "delivery/delivery.h"

typedef struct tracker tracker;

/* An empty tracker over deps (copied; what it points to is borrowed, see
 * delivery_deps); NULL on allocation failure. */
tracker *tracker_new(const delivery_deps *deps);
/* Frees the tracker and what it tracks; their persisted state stays as it
 * is. NULL is ignored. */
void tracker_free(tracker *t);

/* QUEUED/SENT -> SENT: attempt `attempt` of pub went to user (the caller
 * persisted it); the redelivery timer starts. An attempt not newer than the
 * tracked one (another device of the user) changes nothing. pub and user are
 * borrowed. */
void tracker_sent(tracker *t, pl_pub *pub, const char *user, uint32_t attempt);
/* SENT -> ACKNOWLEDGED for the user's deliveries of the channel with offset
 * <= upto (the engine persisted the ack); they stop being tracked. */
void tracker_acked(tracker *t, const char *tenant, const char *channel, const char *user,
                   uint64_t upto);
/* FAILED -> SENT with attempt 1, sent now; or QUEUED when the user is
 * offline. */
void tracker_replay(tracker *t, pl_pub *pub, const char *user);
/* A delivery persisted in state sent with this attempt (restart): tracked
 * again, its timer restarted from now. */
void tracker_restore(tracker *t, pl_pub *pub, const char *user, uint32_t attempt);

/* Fires every redelivery due at deps->now_us: resend with attempt+1,
 * QUEUED when the user is offline, FAILED when attempts are exhausted.
 * Returns how many fired. */
size_t tracker_advance(tracker *t);
/* When tracker_advance should next run, in the microseconds of
 * deps->now_us (may be early, never late; <= now means now); -1 when
 * nothing is tracked. */
int64_t tracker_next_us(tracker *t);
/* deps->now_us, or the real monotonic clock. */
int64_t tracker_now_us(const tracker *t);

/* Counters since tracker_new; tracked is the current count. */
void tracker_stats(const tracker *t, delivery_stats *out);

/* Persists (tenant, channel, offset of p, user) -> state with attempt and
 * error (may be NULL) through eng. Any thread. Nothing is persisted when a
 * request cannot be allocated. */
void tracker_persist(engine *eng, const pl_pub *p, const char *user, int state, uint32_t attempt,
                     const char *error);

#endif
