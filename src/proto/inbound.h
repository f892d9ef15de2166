/* Inbound webhooks: POST /hooks/in/<source> from another system (GitHub,
 * Stripe, any Standard Webhooks sender) verified on its raw body and turned
 * into a pub on the source's channel. net routes the request here and gets
 * the answer back through the host's respond operation. */
#ifndef PL_INBOUND_H
#define PL_INBOUND_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "util/sbuf.h"

typedef struct proto_host proto_host;
typedef struct inbound inbound;

/* Builds the sources of cfg->inbound, parsing their keys (hooks/sign.h) and
 * checking their channels. cfg is borrowed and must outlive the result,
 * which the caller frees with inbound_free. NULL with err written when a
 * source cannot be used, or out of memory. Safe to share between threads:
 * only its counters change, atomically. */
inbound *inbound_new(const config *cfg, char *err, size_t errlen);
void inbound_free(inbound *in);

/* Reads a request header by name (case-insensitive): its value, or NULL
 * (and *len 0) when absent. */
typedef const char *(*inbound_header_fn)(void *ctx, const char *name, size_t *len);

/* One request, borrowed for the call only. */
typedef struct inbound_request {
    const char *source; /* the path after /hooks/in/ (not NUL-terminated) */
    size_t source_len;
    const char *body; /* the raw bytes as received */
    size_t body_len;
    int body_too_large; /* over limits.max_body_bytes: the body was cut */
    inbound_header_fn header;
    void *header_ctx;
    const char *peer; /* the remote address, for logs */
} inbound_request;

/* Handles one request of the connection conn_id on h's worker (through
 * h->srv->inbound, which may be NULL: no sources). Returns 0 when it was
 * answered already, 1 when the answer comes after the commit. */
int inbound_handle(proto_host *h, uint64_t conn_id, const inbound_request *rq);

/* Appends parley_inbound_requests_total{source,result} and the count of
 * requests for unknown sources to out. in may be NULL. */
void inbound_render_metrics(const inbound *in, sbuf *out);

#endif
