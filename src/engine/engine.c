/* Engine-independent request helpers; see engine.h. */
#include "engine/engine.h"

#include <stddef.h>
#include <string.h>

#include "util/mem.h"

engine_req *engine_req_new(enum engine_op op)
{
    engine_req *r = pl_calloc(1, sizeof(*r));
    if (r) r->op = op;
    return r;
}

/* The context follows the request, aligned for any type: one allocation
 * per request on the publish path instead of two. */
static size_t ctx_offset(void)
{
    return (sizeof(engine_req) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
}

static engine_req *init_ctx(engine_req *r, enum engine_op op)
{
    r->op = op;
    r->ctx = (char *)r + ctx_offset();
    return r;
}

engine_req *engine_req_new_ctx(enum engine_op op, size_t ctx_size)
{
    engine_req *r = pl_calloc(1, ctx_offset() + ctx_size);
    return r ? init_ctx(r, op) : NULL;
}

/* Everything the request owns but its own block. */
static void release_owned(engine_req *r)
{
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
    pl_free(r->ref);
    pl_free(r->correlation);
    for (size_t i = 0; i < r->nrefs; i++)
        pl_free(r->refs[i]);
    pl_free(r->refs);
    pl_free(r->seqs);
}

void engine_req_free(engine_req *r)
{
    if (!r) return;
    release_owned(r);
    pl_free(r);
}

void engine_req_pool_init(engine_req_pool *p, size_t cap)
{
    *p = (engine_req_pool){.cap = cap};
}

void engine_req_pool_release(engine_req_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        pl_free(p->blocks[i]);
    pl_free(p->blocks);
    *p = (engine_req_pool){0}; /* later recycles just free */
}

engine_req *engine_req_new_pooled(engine_req_pool *p, enum engine_op op, size_t ctx_size)
{
    size_t block = ctx_offset() + ctx_size;
    if (!p->block) p->block = block;
    if (block != p->block) return engine_req_new_ctx(op, ctx_size);
    engine_req *r = p->n ? p->blocks[--p->n] : pl_malloc(block);
    if (!r) return NULL;
    memset(r, 0, block);
    r->_block = block;
    return init_ctx(r, op);
}

void engine_req_recycle(engine_req_pool *p, engine_req *r)
{
    if (!r) return;
    if (r->_block != p->block || !p->block) {
        engine_req_free(r);
        return;
    }
    release_owned(r);
    if (!p->blocks && p->cap) p->blocks = pl_malloc(p->cap * sizeof(*p->blocks));
    if (p->n < p->cap && p->blocks)
        p->blocks[p->n++] = r;
    else
        pl_free(r);
}
