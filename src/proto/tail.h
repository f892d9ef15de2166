/* Live tails: POST /api/v1/tail streams, as Server-Sent Events, the pubs of
 * the caller's tenant whose channel matches a glob, each as its event
 * envelope, from the moment it opens. A view for operators, not a delivery
 * guarantee: a tail that falls behind its queue bound is closed (4001), and
 * nothing is replayed. Each worker keeps the tails of its own connections;
 * the worker's thread only. */
#ifndef PL_TAIL_H
#define PL_TAIL_H

#include <stddef.h>
#include <stdint.h>

#include "broker/sink.h"
#include "engine/pub.h"

typedef struct tail_set tail_set;

/* NULL when out of memory. The caller frees it with tail_set_free, which
 * closes nothing (the connections are the caller's). */
tail_set *tail_set_new(void);
void tail_set_free(tail_set *t);
size_t tail_count(const tail_set *t);

/* Adds a tail on sink s (borrowed until tail_remove) of tenant's channels
 * matching the checked channel glob. 0, or -1 when out of memory. */
int tail_add(tail_set *t, pl_sink *s, const char *tenant, const char *glob);
/* Forgets the tail on s, if any: before the sink's memory goes. */
void tail_remove(tail_set *t, const pl_sink *s);

/* Queues on every open tail each of the k pubs it matches, in order, as an
 * SSE event whose data is the envelope; a tail whose queue would pass the
 * sink's bound is closed as a slow consumer instead (sink_enqueue). */
void tail_pubs(tail_set *t, pl_pub *const *pubs, size_t k);
/* Queues a comment line on every tail once per interval_ms (now_ms is the
 * worker's clock), so proxies and clients see a quiet tail is alive. */
void tail_tick(tail_set *t, int64_t now_ms, int64_t interval_ms);

#endif
