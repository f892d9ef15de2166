/* The order in which requests and other nodes' pubs reach the sink: queue A
 * (this node's requests, in submission order) merged with queue B (entries
 * of the notification stream, in stream order); redis_int.h explains why
 * this keeps the engine's contract. */
#include "engine/redis/redis_int.h"

#include "util/mem.h"

void rd_push_pend(rd_engine *e, rd_pend *p)
{
    p->next = NULL;
    if (e->a_tail)
        e->a_tail->next = p;
    else
        e->a_head = p;
    e->a_tail = p;
}

void rd_push_note(rd_engine *e, rd_note *n)
{
    n->next = NULL;
    if (e->b_tail)
        e->b_tail->next = n;
    else
        e->b_head = n;
    e->b_tail = n;
}

void rd_emit(rd_engine *e, engine_req *r)
{
    if (e->nout == e->cap_out) {
        size_t cap = e->cap_out ? e->cap_out * 2 : 256;
        engine_req **n = pl_realloc(e->out, cap * sizeof(*n));
        if (!n) { /* hand over what is gathered, then this one alone */
            rd_flush_out(e);
            e->opts.sink(e->opts.sink_ctx, &r, 1);
            return;
        }
        e->out = n;
        e->cap_out = cap;
    }
    e->out[e->nout++] = r;
}

void rd_flush_out(rd_engine *e)
{
    if (!e->nout) return;
    size_t n = e->nout;
    e->nout = 0;
    e->opts.sink(e->opts.sink_ctx, e->out, n);
}

static void pop_a(rd_engine *e)
{
    rd_pend *p = e->a_head;
    e->a_head = p->next;
    if (!e->a_head) e->a_tail = NULL;
    engine_req *r = p->req;
    pl_free(p);
    rd_emit(e, r);
}

/* Another node's pub becomes a request without an owner: the sink fans it
 * out and frees it. A pub that cannot be wrapped is a lost pub. */
static void pop_b(rd_engine *e, int emit)
{
    rd_note *n = e->b_head;
    e->b_head = n->next;
    if (!e->b_head) e->b_tail = NULL;
    e->pos = n->seq;
    if (n->pub && emit) {
        engine_req *r = engine_req_new(ENGINE_PUBLISH);
        if (r) {
            r->pub = n->pub;
            n->pub = NULL;
            rd_emit(e, r);
        } else {
            rd_notice(e, ENGINE_RESYNC, "notify", "out of memory for another node's pub");
        }
    }
    pub_unref(n->pub);
    pl_free(n);
}

void rd_drain(rd_engine *e)
{
    for (;;) {
        rd_pend *a = e->a_head;
        rd_note *b = e->b_head;
        if (a && a->replied && !a->ordered) {
            pop_a(e);
            continue;
        }
        if (a && !a->replied) break; /* its place is not known yet */
        if (b) {
            if (a && a->seq < b->seq) {
                pop_a(e);
            } else if (a && a->is_pub && a->seq == b->seq) {
                pop_a(e); /* this node's own pub: the request is its entry */
                pop_b(e, 0);
            } else {
                pop_b(e, 1);
            }
            continue;
        }
        if (a && a->seq <= e->pos) {
            pop_a(e);
            continue;
        }
        break;
    }
}

/* Requests waiting for entries that will never come (the stream
 * restarted, or the engine stops) fail: nothing they saw is certain. */
static void fail_waiting(rd_engine *e)
{
    for (rd_pend *p = e->a_head; p; p = p->next) {
        if (!p->replied || !p->ordered || p->seq <= e->pos) continue;
        p->ordered = 0;
        p->req->status = PL_EIO;
        p->req->duplicate = 0;
    }
}

/* The notification stream restarted below what this node read (Redis lost
 * its data): start over at pos, and every subscriber resumes by offset. */
void rd_reset_pos(rd_engine *e, uint64_t pos, const char *why)
{
    while (e->b_head)
        pop_b(e, 0);
    e->pos = pos;
    e->read_pos = pos;
    e->reset_gen++;
    fail_waiting(e);
    rd_notice(e, ENGINE_RESYNC, "notify", why);
}
