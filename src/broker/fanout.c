/* Per-worker channel table and fan-out. A committed pub reaches every
 * worker once; here it is queued, as the shared frame, on each local
 * subscriber that is live and has not seen its offset yet (consecutive pubs
 * of a channel as one joined buffer for WebSocket subscribers). Subscriptions
 * still recovering skip live pubs: the READ they wait for covers them (the
 * engine orders that READ after every pub already handed to this worker). */
#include <string.h>

#include "delivery/delivery.h"
#include "net/server_int.h"
#include "util/clock.h"
#include "util/mem.h"

chan *fanout_chan(worker *w, const char *tenant, const char *channel, int create)
{
    char key[600];
    size_t klen = map_key2(key, sizeof(key), tenant, channel);
    if (!klen) return NULL;
    chan *ch = map_get(&w->channels, key, klen);
    if (ch || !create) return ch;
    ch = pl_calloc(1, sizeof(*ch) + klen);
    if (!ch) return NULL;
    memcpy(ch->key, key, klen);
    ch->klen = (uint32_t)klen;
    if (map_put(&w->channels, ch->key, klen, ch)) {
        pl_free(ch);
        return NULL;
    }
    return ch;
}

int fanout_attach(worker *w, sub *s, const char *tenant)
{
    chan *ch = fanout_chan(w, tenant, s->channel, 1);
    if (!ch) return -1;
    if (ch->n == ch->cap) {
        uint32_t ncap = ch->cap ? ch->cap * 2 : 4;
        sub **ns = pl_realloc(ch->subs, ncap * sizeof(*ns));
        if (!ns) return -1;
        ch->subs = ns;
        ch->cap = ncap;
    }
    s->ch = ch;
    s->idx = ch->n;
    ch->subs[ch->n++] = s;
    return 0;
}

void fanout_detach(worker *w, sub *s)
{
    chan *ch = s->ch;
    if (!ch) return;
    ch->subs[s->idx] = ch->subs[--ch->n];
    ch->subs[s->idx]->idx = s->idx;
    s->ch = NULL;
    if (ch->n) return;
    map_del(&w->channels, ch->key, ch->klen);
    pl_free(ch->subs);
    pl_free(ch);
}

static void fanout_to_user(worker *w, pl_pub *pub);

/* Queues pub on s when s should get it; returns whether it was queued. */
static int deliver_one(worker *w, sub *s, pl_pub *pub, size_t shed_above)
{
    if (s->state != SUB_LIVE) return 0;
    if (pub->offset) {
        if (pub->offset <= s->last_offset) return 0;
        s->last_offset = pub->offset;
    } else {
        /* Ephemeral traffic is shed first: never a reason to cut a
         * connection, dropped once its queue is half full. */
        if (s->c->qbytes > shed_above) return 0;
        if (pub->skip_origin && pub->client && !strcmp(s->client, pub->client)) return 0;
    }
    if (conn_enqueue_pub(s->c, pub) != 0) return 0;
    if (pub->cls == PUB_GUARANTEED && pub->offset) delivery_sent(w->srv->delivery, pub, s->user, 1);
    return 1;
}

/* Counts delivered copies of pub in its trace, its tenant and metrics. */
static void account(worker *w, pl_pub *pub, uint64_t delivered)
{
    if (!delivered) return;
    atomic_fetch_add_explicit(&pub->fanout, (uint32_t)delivered, memory_order_relaxed);
    tenant_counters *tc = metrics_tenant(&w->metrics, pub->tenant);
    if (tc) atomic_fetch_add_explicit(&tc->deliveries, delivered, memory_order_relaxed);
    metrics_add(&w->metrics, M_DELIVERIES, delivered);
    if (pub->created_us) metrics_latency(&w->metrics, clock_mono_us() - pub->created_us);
}

static size_t shed_limit(const worker *w)
{
    return w->srv->cfg.limits.outbound_queue_bytes / 2;
}

/* ch: the pub's channel on this worker, NULL when nobody here subscribes. */
static void fanout_pub(worker *w, chan *ch, pl_pub *pub)
{
    if (pub->to_user && pub->user) fanout_to_user(w, pub);
    if (!ch) return;
    uint64_t delivered = 0;
    size_t shed_above = shed_limit(w);
    /* Detaching happens only when a closed handle is released, never during
     * this loop, so the array is stable here. */
    for (uint32_t i = 0; i < ch->n; i++)
        delivered += (uint64_t)deliver_one(w, ch->subs[i], pub, shed_above);
    account(w, pub, delivered);
}

/* ---- runs: several pubs of one channel at once ---------------------------- */

/* Whether pub may join a run: no per-recipient work (guaranteed tracking,
 * origin skipping, pushes to a user's devices), so every subscriber that
 * takes the first pub of the run takes them all. */
static int runnable(const pl_pub *p)
{
    return !p->to_user && p->cls != PUB_GUARANTEED && !(p->skip_origin && p->client);
}

static int continues_run(const pl_pub *first, const pl_pub *prev, const pl_pub *next)
{
    if (!runnable(next) || strcmp(first->channel, next->channel) != 0 ||
        strcmp(first->tenant, next->tenant) != 0)
        return 0;
    return first->offset ? next->offset > prev->offset : next->offset == 0;
}

/* The frames of pubs joined by '\n': the body of one text frame, the same
 * bytes flush() writes for consecutive pubs queued one by one. NULL when a
 * frame or the buffer cannot be made. */
static rbuf *join_frames(pl_pub *const *pubs, size_t n)
{
    size_t len = n - 1;
    for (size_t i = 0; i < n; i++) {
        const rbuf *f = proto_pub_frame(pubs[i]);
        if (!f) return NULL;
        len += f->len;
    }
    rbuf *b = rbuf_new(len);
    if (!b) return NULL;
    char *at = b->data;
    for (size_t i = 0; i < n; i++) {
        if (i) *at++ = '\n';
        const rbuf *f = pub_frame_peek(pubs[i]);
        memcpy(at, f->data, f->len);
        at += f->len;
    }
    return b;
}

/* Whether s takes the whole run as one item: a live WebSocket subscriber
 * that has seen none of it, with room under the shedding limit for
 * ephemeral runs. Anyone else gets the run pub by pub. */
static int takes_whole(const sub *s, pl_pub *const *pubs, size_t len, size_t shed_above)
{
    if (s->state != SUB_LIVE || s->c->transport != T_WS) return 0;
    if (pubs[0]->offset) return s->last_offset < pubs[0]->offset;
    return s->c->qbytes + len <= shed_above;
}

static void fanout_run(worker *w, chan *ch, pl_pub *const *pubs, size_t n)
{
    size_t shed_above = shed_limit(w);
    uint64_t whole = 0, single[FANOUT_RUN_MAX] = {0};
    rbuf *joined = NULL;
    int tried = 0;
    for (uint32_t i = 0; i < ch->n; i++) {
        sub *s = ch->subs[i];
        /* Built once the first subscriber can take it; without it (out of
         * memory) everyone gets the pubs one by one. */
        if (!tried && s->state == SUB_LIVE && s->c->transport == T_WS) {
            joined = join_frames(pubs, n);
            tried = 1;
        }
        size_t len = joined ? joined->len : 0;
        if (joined && takes_whole(s, pubs, len, shed_above)) {
            if (pubs[0]->offset) s->last_offset = pubs[n - 1]->offset;
            if (conn_enqueue(s->c, OUT_PUBS, rbuf_ref(joined), len) == 0) whole++;
            continue;
        }
        for (size_t k = 0; k < n; k++)
            single[k] += (uint64_t)deliver_one(w, s, pubs[k], shed_above);
    }
    if (joined) rbuf_unref(joined);
    for (size_t k = 0; k < n; k++)
        account(w, pubs[k], whole + single[k]);
}

/* Frames are made here, on first use (pub_frame): a pub that nobody on any
 * worker receives is never encoded. */
void fanout_pubs(worker *w, pl_pub *const *pubs, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        if (runnable(pubs[i]))
            while (j < n && j - i < FANOUT_RUN_MAX && continues_run(pubs[i], pubs[j - 1], pubs[j]))
                j++;
        chan *ch = fanout_chan(w, pubs[i]->tenant, pubs[i]->channel, 0);
        if (j - i == 1)
            fanout_pub(w, ch, pubs[i]);
        else if (ch)
            fanout_run(w, ch, pubs + i, j - i);
        i = j;
    }
}

/* ---- a user's connections on this worker -------------------------------- */

typedef struct uconns {
    conn **v;
    uint32_t n, cap;
    char key[]; /* tenant '\x1f' user: the map's (borrowed) key */
} uconns;

int fanout_user_add(worker *w, conn *c, const char *tenant, const char *user)
{
    char key[600];
    size_t klen = map_key2(key, sizeof(key), tenant, user);
    if (!klen) return -1;
    uconns *u = map_get(&w->users, key, klen);
    if (!u) {
        u = pl_calloc(1, sizeof(*u) + klen);
        if (u) memcpy(u->key, key, klen);
        if (!u || map_put(&w->users, u->key, klen, u)) {
            pl_free(u);
            return -1;
        }
    }
    if (u->n == u->cap) {
        uint32_t ncap = u->cap ? u->cap * 2 : 2;
        conn **nv = pl_realloc(u->v, ncap * sizeof(*nv));
        if (!nv) return -1;
        u->v = nv;
        u->cap = ncap;
    }
    u->v[u->n++] = c;
    return 0;
}

void fanout_user_del(worker *w, conn *c, const char *tenant, const char *user)
{
    char key[600];
    size_t klen = map_key2(key, sizeof(key), tenant, user);
    uconns *u = klen ? map_get(&w->users, key, klen) : NULL;
    if (!u) return;
    for (uint32_t i = 0; i < u->n; i++)
        if (u->v[i] == c) {
            u->v[i] = u->v[--u->n];
            break;
        }
    if (u->n) return;
    map_del(&w->users, key, klen);
    pl_free(u->v);
    pl_free(u);
}

/* Read pushes also reach the user's devices that are not subscribed to the
 * channel (multi-device sync); subscribed ones got it through the channel. */
static void fanout_to_user(worker *w, pl_pub *pub)
{
    char key[600];
    size_t klen = map_key2(key, sizeof(key), pub->tenant, pub->user);
    uconns *u = klen ? map_get(&w->users, key, klen) : NULL;
    for (uint32_t i = 0; u && i < u->n; i++)
        if (!session_subscribed(u->v[i], pub->channel)) conn_enqueue_pub(u->v[i], pub);
}

void fanout_user_each(worker *w, const char *tenant, const char *user, void (*fn)(conn *, void *),
                      void *arg)
{
    char key[600];
    size_t klen = map_key2(key, sizeof(key), tenant, user);
    uconns *u = klen ? map_get(&w->users, key, klen) : NULL;
    /* Closing does not detach (that happens when the handle is released),
     * so the array is stable during the walk. */
    for (uint32_t i = 0; u && i < u->n; i++)
        fn(u->v[i], arg);
}
