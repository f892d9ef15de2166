/* Hashed hierarchical timer wheel: one per worker, driving millions of pending
 * redeliveries from a single event-loop timer. Four levels of 256 slots plus an
 * overflow list; add and cancel are O(1), advancing is amortized O(1) per
 * timer (each timer cascades down at most four times). Single-threaded.
 *
 * Time is in caller-chosen milliseconds (uv_now or wall clock), cut into ticks
 * of tick_ms. A deadline is rounded UP to its tick, so a timer never fires
 * early and fires at most tick_ms - 1 ms after its deadline: exactly, it fires
 * during the first wheel_advance whose now_ms >= ceil(deadline / tick_ms) *
 * tick_ms (the "due time"). Deadlines at or before the due time of the last
 * advance fire at the next wheel_advance.
 *
 * Ordering guarantee: within one wheel_advance call, timers fire in
 * nondecreasing deadline order (the exact milliseconds given to wheel_add),
 * and timers with equal deadlines fire in the order of their latest
 * wheel_add. A timer (re)added from a callback fires in the same call if its
 * due time lies after the tick being processed and not after now_ms (keeping
 * the order above); one already due fires at the next call, so a callback
 * that re-arms itself for "now" cannot loop forever.
 *
 * Timers are intrusive: embed a wheel_timer in your struct and get back to it
 * with container_of in the callback. The wheel never allocates per timer and
 * never owns a timer; it only links them. */
#ifndef PL_WHEEL_H
#define PL_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wheel wheel;

typedef struct wheel_link {
    struct wheel_link *_next, *_prev;
} wheel_link;

/* Caller-owned; members are private. Initialize with wheel_timer_init. */
typedef struct wheel_timer {
    wheel_link _link; /* _next == NULL: not pending */
    int64_t _deadline;
    uint64_t _seq; /* order of wheel_add calls, breaks deadline ties */
} wheel_timer;

/* Called once per expired timer; t is no longer pending when called and may
 * be re-added, cancelled or freed by the callback. The callback may add or
 * cancel any timer, but must not call wheel_advance or wheel_free. */
typedef void (*wheel_cb)(wheel_timer *t, void *arg);

#define WHEEL_MAX_TICK_MS 60000u

/* Returns a new empty wheel with ticks of tick_ms (1..WHEEL_MAX_TICK_MS)
 * whose clock starts at now_ms (negative is taken as 0), or NULL on a bad
 * tick_ms or allocation failure. Free with wheel_free. */
wheel *wheel_new(uint32_t tick_ms, int64_t now_ms);
/* Frees the wheel. Pending timers are not touched (they belong to the
 * caller): they are left stale and must be re-initialized with
 * wheel_timer_init before reuse. NULL is ignored. */
void wheel_free(wheel *w);

/* Marks t as not pending. Call once before first use. */
void wheel_timer_init(wheel_timer *t);
/* True while t is scheduled in a wheel. */
bool wheel_timer_pending(const wheel_timer *t);
/* The deadline t was last added with. */
int64_t wheel_timer_deadline(const wheel_timer *t);

/* Schedules t (borrowed until it fires or is cancelled) to fire at
 * deadline_ms. A pending t is rescheduled (it keeps no trace of its old
 * deadline). Deadlines in the past fire at the next wheel_advance; any
 * int64_t deadline is accepted. O(1), never fails. */
void wheel_add(wheel *w, wheel_timer *t, int64_t deadline_ms);
/* Unschedules t; returns true if it was pending in w. O(1). */
bool wheel_cancel(wheel *w, wheel_timer *t);

/* Moves the wheel's clock to now_ms and calls cb(t, arg) for every timer due
 * by then, in the order given at the top of this file. A now_ms earlier than
 * a previous one only fires the timers that were already due; INT64_MAX fires
 * every pending timer (next_deadline saturates to it). Returns the
 * number of callbacks made; 0 if called from inside a callback (refused). */
size_t wheel_advance(wheel *w, int64_t now_ms, wheel_cb cb, void *arg);

/* When the event loop should next call wheel_advance, in ms: never later than
 * the due time of the earliest pending timer; may be earlier (a point where a
 * higher level must cascade, at most one such wakeup per level before a timer
 * fires). A value <= the last now_ms means "now". Returns -1 when no timer is
 * pending. Arm one uv_timer for this after every wheel_advance and wheel_add
 * that may have moved it earlier. Not const: it drops stale slot bits. */
int64_t wheel_next_deadline(wheel *w);

/* Number of pending timers. */
size_t wheel_count(const wheel *w);
uint32_t wheel_tick_ms(const wheel *w);

#endif
