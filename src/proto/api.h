/* The server HTTP API: POST /api/v1/<method> with a JSON body and a bearer
 * key. net routes the request here and gets the answer back through the
 * host's respond operation, now or after a storage round trip. */
#ifndef PL_API_H
#define PL_API_H

#include <stddef.h>
#include <stdint.h>

#include "proto/host.h"

/* Handles one request of the connection conn_id from peer (its address, for
 * logs). Returns 0 when it was answered already, 1 when the answer comes
 * later (the connection should not read further requests meanwhile). auth
 * is the Authorization header's value (NULL if absent). */
int api_handle(proto_host *h, uint64_t conn_id, const char *peer, const char *method, size_t mlen,
               const char *body, size_t blen, const char *auth, size_t alen);

/* POST /dev/token in single-tenant development mode: a token of ten
 * minutes for the body's {"user"}, with no key (the server listens where
 * only its developer reaches it). Answers 404 outside development mode.
 * Returns as api_handle. */
int api_dev_token(proto_host *h, uint64_t conn_id, const char *body, size_t blen);

/* Read-only view of the method table, for tests and tools. */
size_t api_method_count(void);
/* Row i: its method name and the scope a key needs - a scope name of the
 * vocabulary, "*" (only a "*" key), or NULL (admin key only). Either out
 * pointer may be NULL. Returns 0, or -1 past the end. Static strings. */
int api_method_at(size_t i, const char **name, const char **scope);

#endif
