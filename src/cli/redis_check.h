/* parley check-config's look at the Redis a cluster configuration names:
 * warnings (not errors: nodes wait for Redis) when it cannot be reached or
 * is configured weaker than the configuration relies on. */
#ifndef PL_REDIS_CHECK_H
#define PL_REDIS_CHECK_H

#include <stdio.h>

#include "config/config.h"

/* Writes one "warning: ..." line per finding to out; returns how many. */
int redis_check_warn(const config *cfg, FILE *out);

#endif
