/* Engine-independent request helpers; see engine.h. */
#include "engine/engine.h"

#include <stddef.h>

#include "util/mem.h"

engine_req *engine_req_new(enum engine_op op)
{
    engine_req *r = pl_calloc(1, sizeof(*r));
    if (r) r->op = op;
    return r;
}

engine_req *engine_req_new_ctx(enum engine_op op, size_t ctx_size)
{
    /* The context follows the request, aligned for any type: one allocation
     * per request on the publish path instead of two. */
    size_t head = (sizeof(engine_req) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
    engine_req *r = pl_calloc(1, head + ctx_size);
    if (!r) return NULL;
    r->op = op;
    r->ctx = (char *)r + head;
    return r;
}

void engine_req_free(engine_req *r)
{
    if (!r) return;
    pub_unref(r->pub);
    for (size_t i = 0; i < r->npubs; i++)
        pub_unref(r->pubs[i]);
    pl_free(r->pubs);
    pl_free(r->tenant);
    pl_free(r->channel);
    pl_free(r->user);
    for (size_t i = 0; i < r->nrecipients; i++)
        pl_free(r->recipients[i]);
    pl_free(r->recipients);
    for (size_t i = 0; r->users && i < r->npubs; i++)
        pl_free(r->users[i]);
    pl_free(r->users);
    pl_free(r->attempts);
    pl_free(r->error);
    pl_free(r->reason);
    pl_free(r->pub_id);
    pl_free(r->json);
    pl_free(r);
}
