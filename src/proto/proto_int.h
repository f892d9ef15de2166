/* Internals shared by the client protocol (proto/session*.c) and the server
 * HTTP API (proto/api.c): publish parsing and submission, reply pieces and
 * the record that rides along with every engine request. */
#ifndef PL_PROTO_INT_H
#define PL_PROTO_INT_H

#include "proto/host.h"
#include "util/errors.h"

#define MAX_CHANNEL 255
#define MAX_IDEM_KEY 128
#define HEADERS_MAX 64      /* entries in a pub's headers */
#define HEADER_NAME_MAX 256 /* bytes of a header name */
#define PUSH_PREFIX_LEN 14  /* strlen("{\"push\":\"pub\",") */

/* What an HTTP API answer completes (api.c's done handler tells them apart;
 * the session's requests each carry their own handler instead). */
enum api_pending_kind { P_API_PUBLISH, P_API_HISTORY, P_API_BROADCAST, P_API_CURSORS, P_API_ADMIN };

typedef struct pending pending;

/* Handles the engine's answer to a request on the worker that made it. r
 * (and pd, which lives inside it) is recycled after the call unless the
 * handler kept it and cleared pd->keep to say so. */
typedef void (*pending_done)(proto_host *h, pending *pd, engine_req *r);

struct pending {
    pending_done done;
    uint64_t conn_id;
    uint64_t cmd_id;
    uint32_t gen;
    uint8_t kind; /* API requests: enum api_pending_kind */
    uint8_t has_id;
    uint8_t in_connect;
    uint8_t method;
    uint64_t since_offset;
    uint8_t has_since;
    void *agg;           /* API broadcast/cursors aggregate, NULL otherwise */
    uint32_t slot;       /* its index in the aggregate */
    uint8_t server_side; /* subscription made by the server API: result as a push */
    uint8_t kept;        /* set by done when it keeps r (not recycled) */
    uint8_t flow;        /* counted in its session's commands in flight (sess_submit) */
};

/* The params of a publish, as tokens (-1: absent), found in one walk over
 * params by proto_publish_params. */
enum {
    PUBP_CHANNEL,
    PUBP_DATA,
    PUBP_CLASS,
    PUBP_IDEM,
    PUBP_TYPE,
    PUBP_CORRELATION,
    PUBP_HEADERS,
    PUBP_N
};
void proto_publish_params(const proto_batch *b, int params, int v[PUBP_N]);
/* Validates a publish's data, class, idempotency key, type, correlation id
 * and headers (v from proto_publish_params) into f (spans into the batch)
 * and cls. PE_OK or the code to answer with. */
proto_error proto_parse_publish(const proto_server *srv, proto_batch *b, const int v[PUBP_N],
                                const cfg_namespace *ns, pub_fields *f, pub_class *cls,
                                char *detail, size_t cap);
/* Takes the pub: ephemeral ones are fanned out now, stored ones go to the
 * engine with a copy of pd. PE_OK; PE_OVERLOADED when shed (ephemeral while
 * the server is overloaded, any while the storage queue is full); or
 * PE_INTERNAL when out of memory. The pub is dropped on an error. */
proto_error proto_submit_pub(proto_host *h, pl_pub *p, const cfg_namespace *ns, pending *pd);
/* Overload (proto_overloaded: a worker's output or the storage queue past
 * its mark) sheds ephemeral publishes and presence and typing signals; a
 * 114 carries retry_after (ms), spread over OVERLOAD_RETRY_MS..2x. */
#define OVERLOAD_RETRY_MS 500
int proto_overloaded(const proto_server *srv);
int64_t proto_overload_retry_ms(const proto_host *h);
/* Appends the publish result of an ephemeral pub (answered at once: never
 * stored, so offset 0 and no epoch) to o. */
void proto_ephemeral_result(sbuf *o, const char *id);
void proto_put_pubs(sbuf *o, engine_req *r);
/* A storage request with its pending record inside it (engine_req_new_ctx),
 * from w's pool: zeroed, at *pd when pd is not NULL, freed with the request.
 * NULL on allocation failure. Every request the session and the API submit
 * is made so: session_on_engine_done recycles only the request. */
static inline engine_req *proto_req_new(proto_host *h, enum engine_op op, pending **pd)
{
    engine_req *r = engine_req_new_pooled(&h->req_pool, op, sizeof(pending));
    if (pd) *pd = r ? r->ctx : NULL;
    if (r) r->owner = h;
    return r;
}

static inline void host_submit(proto_host *h, engine_req *r)
{
    h->ops->submit(h, r);
}
/* Retention of the system channels ($sys:clients, $sys:presence,
 * $sys:webhooks): what routes read from them, kept a while for a restart. */
#define LIFECYCLE_HISTORY 10000
#define LIFECYCLE_TTL_MS (24LL * 3600 * 1000)
/* PE_OK if the channel name is valid (PROTOCOL.md section 5), else PE_BAD_REQUEST. */
proto_error proto_channel_valid(const char *s, size_t n);
/* A since {offset, epoch} object: PE_OK, or 107 with *why naming the
 * member (static text). An epoch that cannot be ours matches none. */
proto_error proto_parse_since(proto_batch *b, int obj, uint64_t *off, char *epoch,
                              const char **why);
/* The tenant's channel quota (0 = none), for engine requests. */
uint32_t tenant_max_channels(const proto_server *srv, const char *tid);
/* The protocol error code of an engine status: PE_STORAGE_UNAVAILABLE,
 * PE_LIMIT_EXCEEDED or PE_INTERNAL. */
proto_error proto_engine_error(int status);
/* Stored pubs after a read cursor (what `unread` reports). */
uint64_t proto_unread(const engine_req *r);

/* The API's actions on live connections. */
const char *session_client(const session *s);
const char *session_tenant(const session *s);
const char *session_user(const session *s);
/* Appends the connection's description for the API's `connections`:
 * {"client","user","transport","remote","connected_at","channels"}. */
void session_describe(session *s, sbuf *o);
void session_server_subscribe(session *s, const char *channel);
void session_server_unsubscribe(session *s, const char *channel);
void session_disconnect(session *s, uint16_t code, const char *reason);

#endif
