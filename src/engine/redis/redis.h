/* The Redis engine: the same engine interface (engine/engine.h) with the
 * channels in a Redis server that several Parley nodes share. How it keeps
 * the engine's ordering contract across nodes is in redis_int.h;
 * docs/cluster.md has what it promises. */
#ifndef PL_ENGINE_REDIS_H
#define PL_ENGINE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

typedef struct engine_redis_conf {
    const char *host;
    int port;
    const char *password; /* NULL: no AUTH */
    int db;
    const char *prefix;     /* of every key, followed by ':' */
    uint32_t notify_maxlen; /* entries kept in the cross-node stream */
    /* Sentinel: when set, host/port are asked of these ("HOST:PORT" each)
     * for the master named sentinel_master, on every (re)connect. */
    const char *const *sentinels;
    size_t n_sentinels;
    const char *sentinel_master;
    uint32_t min_replicas_acked; /* WAIT for this many replicas before an ack */
} engine_redis_conf;

/* Creates the engine (strings are copied); it connects when started, and
 * keeps reconnecting while Redis is away. NULL with a message in err. */
engine *engine_redis_new(const engine_opts *opts, const engine_redis_conf *rc, char *err,
                         size_t errlen);

#endif
