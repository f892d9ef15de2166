/* The router: reads the committed log in order (ENGINE_EVENTS), evaluates
 * every route of a pub's tenant on it, and turns matches into webhook
 * deliveries and publishes. A batch's deliveries and every route's new
 * position are stored in one transaction, after the batch's publishes are
 * committed: a crash before it reads the batch again, and the deliveries
 * (keyed by pub and endpoint) and publishes (keyed by route and pub) it
 * makes twice are kept once. */
#include <stdio.h>
#include <string.h>

#include "hooks/envelope.h"
#include "hooks/hooks_int.h"
#include "obs/log.h"
#include "util/clock.h"
#include "util/mem.h"

static void batch_clear(hk_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        hk_newd *x = &b->d[i];
        pl_free(x->id);
        pl_free(x->okey);
        pl_free(x->body);
        pl_free(x->rule);
        pl_free(x->channel);
        pl_free(x->pub_id);
        pl_free(x->correlation_id);
    }
    b->n = 0;
    b->pub_start = 0;
}

void hk_router_log_on(hooks *h)
{
    if (h->log_on || !h->nroutes) return;
    engine_log_events(h->env.eng, 1);
    h->log_on = true;
}

/* Stores, in one transaction with the deliveries ds[0..n), seq as the
 * position of every route that needs it: those without one (unset: a new
 * route starts at the log's head, stored at once so that a crash before its
 * first batch does not move its start past what was committed meanwhile),
 * or those behind seq. Positions move in memory only once stored. */
static int store_positions(hooks *h, uint64_t seq, bool unset, const hstore_delivery *ds, size_t n,
                           int *inserted)
{
    /* A batch takes the attempts waiting to be stored along: they would
     * have their own commit within HK_ATTEMPTS_WAIT_MS anyway. */
    size_t na = unset ? 0 : h->natt;
    hstore_position *pos = pl_calloc(h->nroutes ? h->nroutes : 1, sizeof(*pos));
    if (!pos) return PL_ENOMEM;
    size_t npos = 0;
    for (size_t i = 0; i < h->nroutes; i++) {
        hk_route *rt = h->routes[i];
        if (unset ? rt->pos == HK_POS_UNSET : rt->pos != HK_POS_UNSET && rt->pos < seq)
            pos[npos++] = (hstore_position){rt->tenant, rt->id, seq};
    }
    int st = n || npos || na
                 ? hstore_route_commit_with(h->store, h->att, na, ds, n, inserted, pos, npos)
                 : PL_OK;
    pl_free(pos);
    if (st != PL_OK) return st;
    if (na) hk_attempts_clear(h);
    for (size_t i = 0; i < h->nroutes; i++) {
        hk_route *rt = h->routes[i];
        if (unset ? rt->pos == HK_POS_UNSET : rt->pos != HK_POS_UNSET && rt->pos < seq)
            rt->pos = seq;
    }
    return PL_OK;
}

uint64_t hk_router_min_pos(hooks *h)
{
    uint64_t min = HK_POS_UNSET;
    for (size_t i = 0; i < h->nroutes; i++)
        if (h->routes[i]->pos != HK_POS_UNSET && h->routes[i]->pos < min) min = h->routes[i]->pos;
    return min;
}

static void on_events_done(engine_req *r)
{
    hooks *h = r->ctx;
    hk_msg *m = pl_calloc(1, sizeof(*m));
    if (!m) {
        /* Nothing read is lost: the positions did not move. */
        engine_req_free(r);
        return;
    }
    m->kind = HK_MSG_EVENTS;
    m->req = r;
    hk_post(h, m);
}

void hk_router_step(hooks *h, int64_t now)
{
    if (!h->nroutes || h->reading || h->publishes_out || now < h->retry_read_ms) return;
    hk_router_log_on(h);
    int unset = 0;
    for (size_t i = 0; i < h->nroutes; i++)
        unset |= h->routes[i]->pos == HK_POS_UNSET;
    uint64_t min = hk_router_min_pos(h);
    if (!unset && !h->more && min >= h->head && !h->poked) return;
    engine_req *r = engine_req_new(ENGINE_EVENTS);
    if (!r) return;
    r->done = on_events_done;
    r->ctx = h;
    /* Routes without a position start at the log's head: ask for it alone. */
    r->since_offset = unset || min == HK_POS_UNSET ? 0 : min;
    r->limit = unset || min == HK_POS_UNSET ? 0 : HK_READ_ENTRIES;
    /* Entries every route passed are deleted in steps of a read, or all at
     * once when the routes are caught up: retention keeps the pubs the log
     * names, so what lingers here lingers in the channels too. */
    if (!unset && min != HK_POS_UNSET && min > h->trimmed &&
        (min > h->trimmed + HK_READ_ENTRIES || min >= h->head)) {
        r->trim_seq = min;
        h->trimmed = min;
    }
    h->reading = true;
    atomic_store(&h->read_out, true);
    h->poked = false;
    engine_submit(h->env.eng, r);
}

/* The route chain a pub carries in its headers (HK_CHAIN_HEADER: route ids
 * separated by commas), or NULL. */
static char *chain_of(const pl_pub *p)
{
    if (!p->headers) return NULL;
    json_t *hd = json_loads(p->headers, 0, NULL);
    const char *v = hd ? json_string_value(json_object_get(hd, HK_CHAIN_HEADER)) : NULL;
    char *c = v ? pl_strdup(v) : NULL;
    json_decref(hd);
    return c;
}

static int chain_has(const char *chain, const char *id, size_t *len)
{
    *len = 0;
    if (!chain) return 0;
    size_t n = strlen(id);
    int found = 0;
    for (const char *s = chain; *s;) {
        const char *e = strchr(s, ',');
        size_t k = e ? (size_t)(e - s) : strlen(s);
        found |= k == n && !memcmp(s, id, n);
        (*len)++;
        s = e ? e + 1 : s + k;
    }
    return found;
}

/* The ordering key of a delivery of p to ep, or NULL (unordered). */
static char *order_key(const hk_endpoint *ep, const pl_pub *p)
{
    if (ep->def.ordering == CFG_ORDER_CHANNEL) return pl_strdup(p->channel);
    if (ep->def.ordering != CFG_ORDER_PATH || !ep->def.order_path) return NULL;
    const char *path = ep->def.order_path;
    int in_data = !strncmp(path, "data.", 5);
    const char *src = in_data ? p->data : p->headers;
    json_t *v = src ? json_loads(src, JSON_DECODE_ANY, NULL) : NULL, *at = v;
    char seg[256];
    /* A header is named whole after "headers.", as in rules. */
    if (!in_data) at = json_object_get(v, path + 8);
    for (const char *s = strchr(path, '.') + 1; in_data && at && *s;) {
        const char *e = strchr(s, '.');
        size_t k = e ? (size_t)(e - s) : strlen(s);
        snprintf(seg, sizeof(seg), "%.*s", (int)k, s);
        at = json_is_array(at) ? json_array_get(at, strtoul(seg, NULL, 10))
                               : json_object_get(at, seg);
        s = e ? e + 1 : s + k;
    }
    char *key = at ? json_dumps(at, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(v);
    /* A pub without the member is ordered with the others that lack it. */
    char *out = pl_strdup(key ? key : "");
    free(key);
    return out;
}

static const redaction *redaction_of(hooks *h, const char *channel)
{
    const char *colon = strchr(channel, ':');
    size_t n = colon ? (size_t)(colon - channel) : 0;
    return map_get(&h->redactions, channel, n);
}

static int add_delivery(hooks *h, hk_batch *b, hk_endpoint *ep, const hk_route *rt, pl_pub *p)
{
    char id[PUB_ID_LEN + CFG_ID_MAX + 2];
    snprintf(id, sizeof(id), "%s.%s", p->id, ep->def.id);
    /* Two routes, one message: only this pub's deliveries can share its id. */
    for (size_t i = b->pub_start; i < b->n; i++)
        if (!strcmp(b->d[i].id, id)) return PL_OK;
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        hk_newd *nd = pl_realloc(b->d, ncap * sizeof(*nd));
        if (!nd) return PL_ENOMEM;
        b->d = nd;
        b->cap = ncap;
    }
    sbuf body;
    sbuf_init(&body);
    int st = envelope_write(&body, p, redaction_of(h, p->channel));
    hk_newd *x = &b->d[b->n];
    memset(x, 0, sizeof(*x));
    x->ep = ep;
    x->id = pl_strdup(id);
    x->okey = order_key(ep, p);
    x->body = pl_strndup(body.data ? body.data : "", body.len);
    x->rule = pl_strdup(rt->id);
    x->channel = pl_strdup(p->channel);
    x->pub_id = pl_strdup(p->id);
    x->correlation_id = p->correlation_id ? pl_strdup(p->correlation_id) : NULL;
    size_t blen = body.len;
    sbuf_release(&body);
    b->n++;
    if (st != PL_OK || !x->id || !x->body || !x->rule || !x->channel || !x->pub_id ||
        (p->correlation_id && !x->correlation_id) ||
        (ep->def.ordering != CFG_ORDER_NONE && !x->okey))
        return st != PL_OK ? st : PL_ENOMEM;
    int64_t now = clock_wall_ms();
    /* The schedule's first delay is the wait before attempt 1. */
    int64_t first = retry_delay(&ep->policy, 1, hk_random(h));
    x->d = (hstore_delivery){.id = x->id,
                             .tenant = ep->def.tenant,
                             .endpoint = ep->def.id,
                             .rule = x->rule,
                             .channel = x->channel,
                             .offset = p->offset,
                             .pub_id = x->pub_id,
                             .correlation_id = x->correlation_id,
                             .okey = x->okey,
                             .state = HSTORE_PENDING,
                             .next_ms = now + (first > 0 ? first : 0),
                             .created_ms = now,
                             .updated_ms = now,
                             .body = x->body,
                             .body_len = blen};
    return PL_OK;
}

static void on_published(void *arg, int status)
{
    hooks *h = arg;
    hk_msg *m = pl_calloc(1, sizeof(*m));
    if (!m) {
        /* Cannot tell the thread: it stays waiting; fail loudly. */
        log_event(LOG_ERROR, "route_publish_lost", "reason", "out of memory", NULL);
        return;
    }
    m->kind = HK_MSG_PUBLISHED;
    m->status = status;
    hk_post(h, m);
}

/* The publish action: the pub's data, type, correlation and headers (plus
 * the route chain) on the route's channel, keyed so that a batch read again
 * publishes it once. */
static int add_publish(hooks *h, const hk_route *rt, const pl_pub *p, const char *chain)
{
    json_t *hd = p->headers ? json_loads(p->headers, 0, NULL) : json_object();
    if (!hd) hd = json_object();
    char chain_buf[HK_MAX_CHAIN * (CFG_ID_MAX + 1) + 1];
    snprintf(chain_buf, sizeof(chain_buf), "%s%s%s", chain ? chain : "", chain ? "," : "", rt->id);
    json_object_set_new(hd, HK_CHAIN_HEADER, json_string(chain_buf));
    char *headers = json_dumps(hd, JSON_COMPACT);
    json_decref(hd);
    char idem[PUB_ID_LEN + CFG_ID_MAX + 16];
    int idem_len = snprintf(idem, sizeof(idem), "route:%s:%s", rt->id, p->id);
    pub_fields f = {.tenant = p->tenant,
                    .tenant_len = strlen(p->tenant),
                    .channel = rt->publish,
                    .channel_len = strlen(rt->publish),
                    .data = p->data,
                    .data_len = p->data_len,
                    .type = p->type,
                    .type_len = p->type ? strlen(p->type) : 0,
                    .correlation_id = p->correlation_id ? p->correlation_id : p->id,
                    .correlation_id_len = strlen(p->correlation_id ? p->correlation_id : p->id),
                    .headers = headers,
                    .headers_len = headers ? strlen(headers) : 0,
                    .idem_key = idem,
                    .idem_key_len = (size_t)idem_len};
    int st = headers ? h->env.publish(h->env.publish_ctx, &f, on_published, h) : PL_ENOMEM;
    free(headers);
    if (st == PL_OK) h->publishes_out++;
    return st;
}

/* Evaluates the routes of p's tenant whose position is before seq. */
static int route_pub(hooks *h, hk_batch *b, rule_event *ev, pl_pub *p, uint64_t seq)
{
    char *chain = NULL;
    int prepared = 0, st = PL_OK;
    for (size_t i = 0; i < h->nroutes && st == PL_OK; i++) {
        hk_route *rt = h->routes[i];
        if (!rt->enabled || rt->pos >= seq || strcmp(rt->tenant, p->tenant)) continue;
        if (p->channel[0] == '$' && !rt->sys) continue; /* system channels: named only */
        if (!prepared) {
            rule_event_fields f = {.tenant = p->tenant,
                                   .channel = p->channel,
                                   .channel_len = strlen(p->channel),
                                   .type = p->type,
                                   .type_len = p->type ? strlen(p->type) : 0,
                                   .data = p->data,
                                   .data_len = p->data_len,
                                   .headers = p->headers,
                                   .headers_len = p->headers ? strlen(p->headers) : 0};
            rule_event_prepare(ev, &f);
            chain = chain_of(p);
            prepared = 1;
        }
        size_t depth;
        /* Loop protection: never on a pub this route produced, directly or
         * through others, and not past HK_MAX_CHAIN routes. */
        if (chain_has(chain, rt->id, &depth) || depth >= HK_MAX_CHAIN) continue;
        if (!rule_match_eval(rt->match, ev)) continue;
        rt->matched++;
        if (rt->publish) {
            st = add_publish(h, rt, p, chain);
            if (st == PL_OK) rt->published++;
            if (st == PL_EINVAL) {
                /* A target that can never take it: counted, not retried. */
                rt->missed++;
                st = PL_OK;
            }
            continue;
        }
        hk_endpoint *ep = hk_endpoint_find(h, rt->tenant, rt->webhook);
        if (!ep || !ep->def.enabled || ep->health.state == HEALTH_DISABLED) {
            rt->missed++;
            continue;
        }
        st = add_delivery(h, b, ep, rt, p);
    }
    pl_free(chain);
    return st;
}

/* Stores the batch's deliveries and moves every route to its last entry,
 * then queues the new deliveries. */
static void finish_batch(hooks *h, hk_batch *b, int64_t now)
{
    int *inserted = b->n ? pl_calloc(b->n, sizeof(int)) : NULL;
    hstore_delivery *ds = b->n ? pl_calloc(b->n, sizeof(*ds)) : NULL;
    int st = b->n && (!inserted || !ds) ? PL_ENOMEM : PL_OK;
    for (size_t i = 0; i < b->n && st == PL_OK; i++) {
        ds[i] = b->d[i].d;
        /* The endpoint's strings as they are now (an update replaces them). */
        ds[i].tenant = b->d[i].ep->def.tenant;
        ds[i].endpoint = b->d[i].ep->def.id;
    }
    if (st == PL_OK) st = store_positions(h, b->last_seq, false, ds, b->n, inserted);
    if (st != PL_OK) {
        h->store_errors++;
        h->retry_read_ms = now + HK_TICK_MS;
        log_event(LOG_ERROR, "route_store_failed", "reason", "hooks.db write failed", NULL);
    } else {
        for (size_t i = 0; inserted && i < b->n; i++) {
            if (!inserted[i]) {
                h->deduplicated++;
                continue;
            }
            h->deliveries_created++;
            hk_enqueue_new(h, &b->d[i], &ds[i]);
        }
    }
    pl_free(inserted);
    pl_free(ds);
    batch_clear(b);
}

void hk_router_on_events(hooks *h, engine_req *r, int64_t now)
{
    h->reading = false;
    atomic_store(&h->read_out, false);
    if (r->status != PL_OK) {
        h->retry_read_ms = now + HK_TICK_MS;
        log_event(LOG_WARN, "route_read_failed", "reason", "the committed log could not be read",
                  NULL);
        engine_req_free(r);
        return;
    }
    if (r->head > h->head) h->head = r->head;
    h->events_missed += r->count;
    if (store_positions(h, r->head, true, NULL, 0, NULL) != PL_OK) {
        h->store_errors++;
        h->retry_read_ms = now + HK_TICK_MS;
        engine_req_free(r);
        return;
    }
    rule_event *ev = r->npubs ? rule_event_new() : NULL;
    int st = r->npubs && !ev ? PL_ENOMEM : PL_OK;
    for (size_t i = 0; i < r->npubs && st == PL_OK; i++) {
        h->cur.pub_start = h->cur.n;
        st = route_pub(h, &h->cur, ev, r->pubs[i], r->seqs[i]);
    }
    rule_event_free(ev);
    /* Entries whose pubs retention removed still move the position: they
     * are counted and said, never skipped in silence. */
    uint64_t last = r->cursor ? r->cursor : r->since_offset;
    if (r->count) {
        char n[24];
        snprintf(n, sizeof(n), "%llu", (unsigned long long)r->count);
        log_event(LOG_ERROR, "route_events_missed", "pubs", n, "reason",
                  "retention removed them before routes read them (routing fell behind)", NULL);
    }
    h->more = r->limit && last < r->head;
    h->cur.last_seq = last;
    engine_req_free(r);
    if (st != PL_OK) h->publish_failed = 1;
    if (!h->publishes_out) hk_router_on_published(h, PL_OK);
}

void hk_router_on_published(hooks *h, int status)
{
    int64_t now = clock_wall_ms();
    if (h->publishes_out) h->publishes_out--;
    if (status == PL_ELIMIT) {
        /* The tenant's channel or storage quota refuses it: reading the
         * batch again would refuse it again and hold every route back. */
        h->publishes_refused++;
        log_event(LOG_WARN, "route_publish_refused", "reason", "tenant quota exceeded", NULL);
    } else if (status != PL_OK) {
        h->publish_failed = 1;
    }
    if (h->publishes_out) return;
    if (h->publish_failed) {
        /* Read the batch again later; what it made twice is deduplicated. */
        h->publish_failed = 0;
        batch_clear(&h->cur);
        h->retry_read_ms = now + HK_TICK_MS;
        log_event(LOG_WARN, "route_batch_retry", "reason", "a publish action failed", NULL);
        return;
    }
    finish_batch(h, &h->cur, now);
}

void hk_router_release(hooks *h)
{
    batch_clear(&h->cur);
    pl_free(h->cur.d);
    memset(&h->cur, 0, sizeof(h->cur));
}
