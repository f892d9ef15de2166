/* Per-worker channel table and fan-out; see fanout.h. Subscriptions still
 * recovering skip live pubs: the READ they wait for covers them (the engine
 * orders that READ after every pub already handed to this worker). */
#include "broker/fanout.h"

#include <string.h>

#include "util/clock.h"
#include "util/errors.h"
#include "util/map.h"
#include "util/mem.h"
#include "util/rbuf.h"

typedef struct fan_chan {
    fanout_sub **subs;
    uint32_t n, cap;
    uint32_t klen;
    char key[]; /* tenant '\x1f' channel: the map borrows it */
} fan_chan;

/* A user's connections on this worker. */
typedef struct uconn {
    pl_sink *out;
    void *owner;
} uconn;

typedef struct uconns {
    uconn *v;
    uint32_t n, cap;
    uint32_t klen;
    char key[]; /* tenant '\x1f' user: the map borrows it */
} uconns;

struct fanout {
    fanout_env env;
    map channels; /* key -> fan_chan* */
    map users;    /* tenant '\x1f' user -> uconns* */
    size_t nsubs;
};

fanout *fanout_new(const fanout_env *env)
{
    fanout *f = pl_calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->env = *env;
    map_init_borrowed(&f->channels); /* keys live in the values */
    map_init_borrowed(&f->users);
    return f;
}

void fanout_free(fanout *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->channels.cap; i++) {
        fan_chan *ch = f->channels.slots[i].value;
        if (!f->channels.slots[i].key) continue;
        pl_free(ch->subs);
        pl_free(ch);
    }
    for (size_t i = 0; i < f->users.cap; i++) {
        uconns *u = f->users.slots[i].value;
        if (!f->users.slots[i].key) continue;
        pl_free(u->v);
        pl_free(u);
    }
    map_release(&f->channels);
    map_release(&f->users);
    pl_free(f);
}

size_t fanout_subs(const fanout *f)
{
    return f->nsubs;
}

/* ---- channels ------------------------------------------------------------ */

static fan_chan *find_chan(fanout *f, const char *tenant, const char *channel)
{
    char key[600];
    size_t klen = map_key2(key, sizeof(key), tenant, channel);
    return klen ? map_get(&f->channels, key, klen) : NULL;
}

static fan_chan *make_chan(fanout *f, const char *tenant, const char *channel)
{
    char key[600];
    size_t klen = map_key2(key, sizeof(key), tenant, channel);
    if (!klen) return NULL;
    fan_chan *ch = map_get(&f->channels, key, klen);
    if (ch) return ch;
    ch = pl_calloc(1, sizeof(*ch) + klen);
    if (!ch) return NULL;
    memcpy(ch->key, key, klen);
    ch->klen = (uint32_t)klen;
    if (map_put(&f->channels, ch->key, klen, ch)) {
        pl_free(ch);
        return NULL;
    }
    return ch;
}

static void drop_chan_if_empty(fanout *f, fan_chan *ch)
{
    if (ch->n) return;
    map_del(&f->channels, ch->key, ch->klen);
    pl_free(ch->subs);
    pl_free(ch);
}

int fanout_attach(fanout *f, fanout_sub *s, const char *tenant, const char *channel)
{
    fan_chan *ch = make_chan(f, tenant, channel);
    if (!ch) return -1;
    if (ch->n == ch->cap) {
        uint32_t ncap = ch->cap ? ch->cap * 2 : 4;
        fanout_sub **ns = pl_realloc(ch->subs, ncap * sizeof(*ns));
        if (!ns) {
            drop_chan_if_empty(f, ch);
            return -1;
        }
        ch->subs = ns;
        ch->cap = ncap;
    }
    s->_ch = ch;
    s->_idx = ch->n;
    ch->subs[ch->n++] = s;
    f->nsubs++;
    return 0;
}

void fanout_detach(fanout *f, fanout_sub *s)
{
    fan_chan *ch = s->_ch;
    rbuf_unref(s->_gap.item);
    s->_gap.item = NULL;
    if (!ch) return;
    ch->subs[s->_idx] = ch->subs[--ch->n];
    ch->subs[s->_idx]->_idx = s->_idx;
    s->_ch = NULL;
    f->nsubs--;
    drop_chan_if_empty(f, ch);
}

/* ---- one pub at a time ----------------------------------------------------- */

static void fanout_to_user(fanout *f, pl_pub *pub);

/* A stored pub that would take a subscriber whose policy drops past its
 * queue bound: the channel's queued pubs give way (the sink names them with
 * a gap) instead of the connection. Returns 1 to queue pub, 0 when the gap
 * names it instead. A queue full of anything else (other channels,
 * presence pushes) has nothing to give: the sink's bound closes it with
 * 4001 as for any subscriber. */
static int make_room(fanout *f, fanout_sub *s, pl_pub *pub)
{
    const rbuf *fr = pub_frame(pub, f->env.encode);
    pl_sink *o = s->out;
    if (!fr || !f->env.queue_bound || o->closing) return 1;
    size_t pushes = o->queued - o->replies;
    if (pushes + fr->len <= f->env.queue_bound) return 1;
    int skip, n = sink_drop_pubs(o, pub, pushes + fr->len - f->env.queue_bound,
                                 s->policy == FAN_SLOW_LATEST, &s->_gap, &skip);
    if (n <= 0) return 1;
    metrics_add(f->env.metrics,
                s->policy == FAN_SLOW_LATEST ? M_SLOW_DROPPED_LATEST : M_SLOW_DROPPED_OLDEST,
                (uint64_t)n);
    return !skip;
}

/* Queues pub on s when s should get it; returns whether it was queued. */
static int deliver_one(fanout *f, fanout_sub *s, pl_pub *pub)
{
    if (s->state != SUB_LIVE) return 0;
    if (pub->offset) {
        if (pub->offset <= s->last_offset) return 0;
        /* Named by a gap counts as seen: the client knows of the offset. */
        s->last_offset = pub->offset;
        if (s->policy != FAN_SLOW_DISCONNECT && !make_room(f, s, pub)) {
            /* A guaranteed pub the gap names is still owed: the tracker
             * redelivers it until acknowledged, as one dropped from the queue. */
            if (pub->cls == PUB_GUARANTEED && f->env.dlv)
                delivery_sent(f->env.dlv, pub, s->user, 1);
            return 0;
        }
    } else {
        /* Ephemeral traffic is shed first: never a reason to cut a
         * connection, dropped once its queue is half full. */
        if (s->out->queued > f->env.shed_above) return 0;
        if (pub->skip_origin && pub->client && !strcmp(s->client, pub->client)) return 0;
    }
    if (sink_enqueue_pub(s->out, pub) != 0) return 0;
    if (pub->cls == PUB_GUARANTEED && pub->offset && f->env.dlv)
        delivery_sent(f->env.dlv, pub, s->user, 1);
    return 1;
}

/* Counts delivered copies of pub in its trace, its tenant and metrics. */
static void account(fanout *f, pl_pub *pub, uint64_t delivered)
{
    if (!delivered) return;
    atomic_fetch_add_explicit(&pub->fanout, (uint32_t)delivered, memory_order_relaxed);
    tenant_counters *tc = metrics_tenant(f->env.metrics, pub->tenant);
    if (tc) atomic_fetch_add_explicit(&tc->deliveries, delivered, memory_order_relaxed);
    metrics_add(f->env.metrics, M_DELIVERIES, delivered);
    if (pub->created_us) metrics_latency(f->env.metrics, clock_mono_us() - pub->created_us);
}

/* ch: the pub's channel on this worker, NULL when nobody here subscribes. */
static void fanout_pub(fanout *f, fan_chan *ch, pl_pub *pub)
{
    if (pub->to_user && pub->user) fanout_to_user(f, pub);
    if (!ch) return;
    uint64_t delivered = 0;
    /* Detaching happens only when a closed handle is released, never during
     * this loop, so the array is stable here. */
    for (uint32_t i = 0; i < ch->n; i++)
        delivered += (uint64_t)deliver_one(f, ch->subs[i], pub);
    account(f, pub, delivered);
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
 * bytes a connection writes for consecutive pubs queued one by one. NULL
 * when a frame or the buffer cannot be made. */
static rbuf *join_frames(fanout *f, pl_pub *const *pubs, size_t n)
{
    size_t len = n - 1;
    for (size_t i = 0; i < n; i++) {
        const rbuf *fr = pub_frame(pubs[i], f->env.encode);
        if (!fr) return NULL;
        len += fr->len;
    }
    rbuf *b = rbuf_new(len);
    if (!b) return NULL;
    char *at = b->data;
    for (size_t i = 0; i < n; i++) {
        if (i) *at++ = '\n';
        const rbuf *fr = pub_frame_peek(pubs[i]);
        memcpy(at, fr->data, fr->len);
        at += fr->len;
    }
    return b;
}

/* Whether s takes the whole run as one item: a live WebSocket subscriber
 * that has seen none of it, with room under the shedding limit for
 * ephemeral runs. Anyone else gets the run pub by pub. */
static int takes_whole(const fanout *f, const fanout_sub *s, pl_pub *const *pubs, size_t len)
{
    /* A policy that drops pubs from the queue needs each as its own item
     * (its channel and offset known); a joined buffer cannot be cut. */
    if (s->policy != FAN_SLOW_DISCONNECT) return 0;
    if (s->state != SUB_LIVE || s->out->kind != SINK_WS) return 0;
    if (pubs[0]->offset) return s->last_offset < pubs[0]->offset;
    return s->out->queued + len <= f->env.shed_above;
}

static void fanout_run(fanout *f, fan_chan *ch, pl_pub *const *pubs, size_t n)
{
    uint64_t whole = 0, single[FANOUT_RUN_MAX] = {0};
    rbuf *joined = NULL;
    int tried = 0;
    for (uint32_t i = 0; i < ch->n; i++) {
        fanout_sub *s = ch->subs[i];
        /* Built once the first subscriber can take it; without it (out of
         * memory) everyone gets the pubs one by one. */
        if (!tried && s->state == SUB_LIVE && s->out->kind == SINK_WS) {
            joined = join_frames(f, pubs, n);
            tried = 1;
        }
        size_t len = joined ? joined->len : 0;
        if (joined && takes_whole(f, s, pubs, len)) {
            if (pubs[0]->offset) s->last_offset = pubs[n - 1]->offset;
            if (sink_enqueue(s->out, OUT_PUBS, rbuf_ref(joined), len) == 0) whole++;
            continue;
        }
        for (size_t k = 0; k < n; k++)
            single[k] += (uint64_t)deliver_one(f, s, pubs[k]);
    }
    if (joined) rbuf_unref(joined);
    for (size_t k = 0; k < n; k++)
        account(f, pubs[k], whole + single[k]);
}

/* Frames are made here, on first use (pub_frame): a pub that nobody on any
 * worker receives is never encoded. */
void fanout_pubs(fanout *f, pl_pub *const *pubs, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        if (runnable(pubs[i]))
            while (j < n && j - i < FANOUT_RUN_MAX && continues_run(pubs[i], pubs[j - 1], pubs[j]))
                j++;
        fan_chan *ch = find_chan(f, pubs[i]->tenant, pubs[i]->channel);
        if (j - i == 1)
            fanout_pub(f, ch, pubs[i]);
        else if (ch)
            fanout_run(f, ch, pubs + i, j - i);
        i = j;
    }
}

/* ---- lost pubs ------------------------------------------------------------ */

size_t fanout_lost(fanout *f, const pl_pub *pub)
{
    fan_chan *ch = find_chan(f, pub->tenant, pub->channel);
    size_t n = 0;
    /* Closing does not detach (that happens when the connection is
     * released), so the array is stable during the walk. */
    for (uint32_t i = 0; ch && i < ch->n; i++, n++)
        sink_close(ch->subs[i]->out, PC_OVERLOADED, "overloaded");
    return n;
}

size_t fanout_lost_all(fanout *f)
{
    size_t n = 0;
    for (size_t k = 0; k < f->channels.cap; k++) {
        fan_chan *ch = f->channels.slots[k].value;
        if (!f->channels.slots[k].key) continue;
        for (uint32_t i = 0; i < ch->n; i++, n++)
            sink_close(ch->subs[i]->out, PC_OVERLOADED, "overloaded");
    }
    return n;
}

/* ---- a user's connections on this worker -------------------------------- */

static uconns *find_user(fanout *f, const char *tenant, const char *user)
{
    char key[600];
    size_t klen = map_key2(key, sizeof(key), tenant, user);
    return klen ? map_get(&f->users, key, klen) : NULL;
}

int fanout_user_add(fanout *f, pl_sink *out, void *owner, const char *tenant, const char *user)
{
    char key[600];
    size_t klen = map_key2(key, sizeof(key), tenant, user);
    if (!klen) return -1;
    uconns *u = map_get(&f->users, key, klen);
    if (!u) {
        u = pl_calloc(1, sizeof(*u) + klen);
        if (u) {
            memcpy(u->key, key, klen);
            u->klen = (uint32_t)klen;
        }
        if (!u || map_put(&f->users, u->key, klen, u)) {
            pl_free(u);
            return -1;
        }
    }
    if (u->n == u->cap) {
        uint32_t ncap = u->cap ? u->cap * 2 : 2;
        uconn *nv = pl_realloc(u->v, ncap * sizeof(*nv));
        if (!nv) {
            if (!u->n) {
                map_del(&f->users, u->key, klen);
                pl_free(u->v);
                pl_free(u);
            }
            return -1;
        }
        u->v = nv;
        u->cap = ncap;
    }
    u->v[u->n++] = (uconn){out, owner};
    return 0;
}

void fanout_user_del(fanout *f, pl_sink *out, const char *tenant, const char *user)
{
    uconns *u = find_user(f, tenant, user);
    if (!u) return;
    for (uint32_t i = 0; i < u->n; i++)
        if (u->v[i].out == out) {
            u->v[i] = u->v[--u->n];
            break;
        }
    if (u->n) return;
    map_del(&f->users, u->key, u->klen);
    pl_free(u->v);
    pl_free(u);
}

/* Read pushes also reach the user's devices that are not subscribed to the
 * channel (multi-device sync); subscribed ones got it through the channel. */
static void fanout_to_user(fanout *f, pl_pub *pub)
{
    uconns *u = find_user(f, pub->tenant, pub->user);
    for (uint32_t i = 0; u && i < u->n; i++)
        if (!f->env.subscribed || !f->env.subscribed(u->v[i].owner, pub->channel))
            sink_enqueue_pub(u->v[i].out, pub);
}

void fanout_user_each(fanout *f, const char *tenant, const char *user,
                      void (*fn)(pl_sink *out, void *owner, void *arg), void *arg)
{
    uconns *u = find_user(f, tenant, user);
    /* Closing does not detach (that happens when the connection is
     * released), so the array is stable during the walk. */
    for (uint32_t i = 0; u && i < u->n; i++)
        fn(u->v[i].out, u->v[i].owner, arg);
}
