/* The host's own members and the tenant lookup shared by sessions and the
 * API; see host.h. */
#include "proto/host.h"

#include <string.h>

void proto_host_init(proto_host *h)
{
    proto_batch_init(&h->batch);
    sbuf_init(&h->scratch);
    /* Room for thousands in flight: 64 connections with 64 publishes each
     * unanswered are 4,096. At most about 4 MB kept. */
    engine_req_pool_init(&h->req_pool, 8192);
    h->tails = tail_set_new(); /* NULL: the tail method answers 500 */
}

void proto_host_release(proto_host *h)
{
    engine_req_pool_release(&h->req_pool);
    proto_batch_release(&h->batch);
    sbuf_release(&h->scratch);
    tail_set_free(h->tails);
    h->tails = NULL;
}

const tenant *proto_tenant(const proto_server *ps, const char *id)
{
    return tenants_get(ps->tenants, ps->cfg->single_tenant ? "default" : id);
}
