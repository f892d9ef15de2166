/* The server HTTP API: POST /api/v1/<method> with a JSON body and a bearer
 * key. net routes the request here and gets the answer back through the
 * host's respond operation, now or after a storage round trip. */
#ifndef PL_API_H
#define PL_API_H

#include <stddef.h>
#include <stdint.h>

#include "proto/host.h"

/* Handles one request of the connection conn_id. Returns 0 when it was
 * answered already, 1 when the answer comes later (the connection should
 * not read further requests meanwhile). auth is the Authorization header's
 * value (NULL if absent). */
int api_handle(proto_host *h, uint64_t conn_id, const char *method, size_t mlen, const char *body,
               size_t blen, const char *auth, size_t alen);

#endif
