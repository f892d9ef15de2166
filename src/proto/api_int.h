/* Internals shared by the server HTTP API's files: api.c (dispatch,
 * authentication, the tenant methods), api_admin.c (tenants and keys,
 * admin key only), api_trace.c (the redacted trace answer),
 * api_routes.c (routes.test) and api_ops.c (connections, audit.list). */
#ifndef PL_API_INT_H
#define PL_API_INT_H

#include "proto/api.h"
#include "proto/proto_int.h"

/* Who is calling: the admin key, or a tenant API key (its tenant and id). */
typedef struct caller {
    int admin;
    int dev;
    const char *tenant;
    const apikey_entry *key; /* tenant keys */
    char actor[64];          /* for the audit log: "admin" or "key:<id>" */
} caller;

typedef struct api_ctx {
    proto_host *h;
    proto_server *srv;
    uint64_t conn_id; /* the HTTP connection to answer */
    proto_batch *b;
    int params;
    const char *tenant; /* the key's tenant (or "default" in single-tenant mode) */
    const caller *who;
    const char *method;
    char detail[160]; /* what a failed publish names (empty: nothing) */
} api_ctx;

typedef int (*api_fn)(api_ctx *a);

/* Answers the request with error code (and detail) / with {"result": o}.
 * Both return 0 (answered), for `return api_error(...)` in a method. */
int api_error(proto_host *h, uint64_t conn_id, int code, const char *detail);
int api_result(proto_host *h, uint64_t conn_id, sbuf *o);
/* Appends an audit record; -1 when it could not be written (the action must
 * then be refused). */
int api_audit(proto_server *srv, const char *actor, const char *action, const char *tenant,
              const char *target, const char *details);
/* Persists the API-created keys (hashes only). 0 or -1. */
int api_save_keys(proto_server *srv);

/* The admin methods (api_admin.c). Each returns 0 when answered, 1 when the
 * answer comes after a storage round trip. */
int api_tenants_list(api_ctx *a);
int api_tenants_put(api_ctx *a);
int api_keys_create(api_ctx *a);
int api_keys_revoke(api_ctx *a);
int api_keys_list(api_ctx *a);

/* connections: the live connections of a user (or one client) of the
 * tenant, gathered from every worker; answered by the asking worker once
 * each has looked. audit.list (admin key only): the audit log's newest
 * records and the check of its chain, read on a pool thread. Both return 0
 * when answered at once (an error), 1 when the answer comes later. */
int api_connections(api_ctx *a);
int api_audit_list(api_ctx *a);

/* Answers a trace with the engine's JSON, its pub redacted by the pub's
 * namespace (api_trace.c); an answer that cannot be redacted is a 500.
 * Returns 0. */
int api_trace_result(proto_host *h, uint64_t conn_id, const char *json, const char *tenant,
                     const char *pub_id);

/* routes.test (api_routes.c): params match and event; answers the rule's
 * explanation on the event. Returns 0. */
int api_routes_test(api_ctx *a);
/* webhooks.* and routes.* but routes.test (api_webhooks.c). Returns 0. */
int api_webhooks(api_ctx *a);
/* tail (tail.c): params channel (a glob); answers with a stream of the
 * tenant's matching pubs. Returns 0. */
int api_tail(api_ctx *a);

#endif
