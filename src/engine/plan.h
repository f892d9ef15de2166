/* What every engine decides the same way: which offsets a read returns given
 * a channel's head, first retained offset and epoch, and fresh epochs. Pure
 * functions, shared by engine/sqlite/ and engine/redis/ so both answer a
 * history or recovery read identically. */
#ifndef PL_ENGINE_PLAN_H
#define PL_ENGINE_PLAN_H

#include <stdint.h>

#include "engine/engine.h"

/* Decides which offsets the READ r returns ([*lo, *hi], empty when
 * *lo > *hi) for a channel whose newest offset is r->head, oldest retained
 * offset `first` (0: none retained up to head) and epoch `epoch`, and fills
 * r->first, r->epoch, r->recovered and r->more. */
void engine_plan_read(engine_req *r, uint64_t first, const char *epoch, uint64_t *lo, uint64_t *hi);

/* A new random epoch: PUB_EPOCH_LEN symbols of [a-z0-9]. */
void engine_make_epoch(char out[PUB_EPOCH_LEN + 1]);

#endif
