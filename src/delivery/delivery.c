/* Guaranteed delivery tracking and redelivery; see delivery.h. The manager
 * owns its map and wheel on its own thread; every other thread only appends
 * to its inbox. Persistence goes through the engine (state changes commit
 * with the next group commit); sends go to the workers as worker calls. */
#include "delivery/delivery.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "delivery/backoff.h"
#include "delivery/wheel.h"
#include "net/server_int.h"
#include "util/clock.h"
#include "util/map.h"
#include "util/mem.h"

#define TICK_MS 10

enum msg_kind { M_SENT, M_ACKED, M_REPLAY, M_RESTORE };

typedef struct dmsg {
    int kind;
    pl_pub *pub; /* M_SENT, M_REPLAY, M_RESTORE */
    char *tenant, *channel, *user;
    uint64_t upto;
    uint32_t attempt;
    struct dmsg *next;
} dmsg;

typedef struct track {
    wheel_timer timer; /* first: the wheel hands us this pointer */
    pl_pub *pub;
    char *user;
    char *key;
    uint32_t attempt;
    int64_t sent_us;
} track;

struct delivery {
    server *srv;
    uv_loop_t loop;
    uv_async_t wakeup;
    uv_timer_t timer;
    uv_thread_t thread;
    int running;
    pthread_mutex_t lock;
    dmsg *head, *tail; /* inbox, guarded by lock */
    int stopping;      /* guarded by lock */
    map tracks;        /* key -> track*, manager thread only */
    wheel *wheel;
    backoff backoff;
    pthread_mutex_t stats_lock;
    delivery_stats stats;
};

/* ---- frames --------------------------------------------------------------- */

rbuf *delivery_frame(pl_pub *pub, uint32_t attempt)
{
    static const char tail[] = ",\"attempt\":1}";
    const rbuf *f = proto_pub_frame(pub);
    size_t tl = sizeof(tail) - 1;
    if (!f) return NULL;
    if (attempt <= 1 || f->len < tl || memcmp(f->data + f->len - tl, tail, tl))
        return rbuf_ref((rbuf *)f);
    char num[16];
    int nl = snprintf(num, sizeof(num), "%u}", attempt);
    rbuf *b = rbuf_new(f->len - 2 + (size_t)nl);
    if (!b) return NULL;
    memcpy(b->data, f->data, f->len - 2);
    memcpy(b->data + f->len - 2, num, (size_t)nl);
    return b;
}

/* ---- inbox ------------------------------------------------------------------ */

static void post(delivery *d, dmsg *m)
{
    pthread_mutex_lock(&d->lock);
    int drop = d->stopping || !d->running;
    if (!drop) {
        if (d->tail)
            d->tail->next = m;
        else
            d->head = m;
        d->tail = m;
    }
    pthread_mutex_unlock(&d->lock);
    if (drop) {
        pub_unref(m->pub);
        pl_free(m->tenant);
        pl_free(m->channel);
        pl_free(m->user);
        pl_free(m);
        return;
    }
    uv_async_send(&d->wakeup);
}

static dmsg *msg_new(int kind, pl_pub *pub, const char *user)
{
    dmsg *m = pl_calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->kind = kind;
    m->pub = pub ? pub_ref(pub) : NULL;
    if (user && !(m->user = pl_strdup(user))) {
        pub_unref(m->pub);
        pl_free(m);
        return NULL;
    }
    return m;
}

static void persist(delivery *d, const pl_pub *p, const char *user, int state, uint32_t attempt,
                    const char *error);

void delivery_sent(delivery *d, pl_pub *pub, const char *user, uint32_t attempt)
{
    /* Persisted from the sending thread, before the client can see the pub:
     * an ack it sends back is then ordered after this in the engine. */
    persist(d, pub, user, DLV_SENT, attempt, NULL);
    dmsg *m = msg_new(M_SENT, pub, user);
    if (!m) return;
    m->attempt = attempt;
    post(d, m);
}

void delivery_replay(delivery *d, pl_pub *pub, const char *user)
{
    dmsg *m = msg_new(M_REPLAY, pub, user);
    if (m) post(d, m);
}

void delivery_acked(delivery *d, const char *tenant, const char *channel, const char *user,
                    uint64_t upto)
{
    dmsg *m = msg_new(M_ACKED, NULL, user);
    if (!m) return;
    m->tenant = pl_strdup(tenant);
    m->channel = pl_strdup(channel);
    m->upto = upto;
    if (!m->tenant || !m->channel) {
        pl_free(m->tenant);
        pl_free(m->channel);
        pl_free(m->user);
        pl_free(m);
        return;
    }
    post(d, m);
}

/* ---- persistence and sending ------------------------------------------------- */

static void persist(delivery *d, const pl_pub *p, const char *user, int state, uint32_t attempt,
                    const char *error)
{
    engine_req *r = engine_req_new(ENGINE_DELIVERY);
    if (!r) return;
    r->tenant = pl_strdup(p->tenant);
    r->channel = pl_strdup(p->channel);
    r->user = pl_strdup(user);
    r->error = error ? pl_strdup(error) : NULL;
    r->since_offset = p->offset;
    r->dstate = state;
    r->attempt = attempt;
    if (!r->tenant || !r->channel || !r->user) {
        engine_req_free(r);
        return;
    }
    engine_submit(d->srv->eng, r);
}

typedef struct resend_call {
    worker_call call;
    pl_pub *pub;
    rbuf *frame;
    char user[256];
} resend_call;

static void resend_conn(pl_sink *out, void *owner, void *arg)
{
    resend_call *rc = arg;
    if (!session_subscribed(owner, rc->pub->channel)) return;
    sink_enqueue(out, OUT_JSON, rbuf_ref(rc->frame), rc->frame->len);
}

static void resend_run(worker *w, worker_call *call)
{
    resend_call *rc = (resend_call *)call;
    fanout_user_each(w->fan, rc->pub->tenant, rc->user, resend_conn, rc);
}

static void resend_release(worker_call *call)
{
    resend_call *rc = (resend_call *)call;
    pub_unref(rc->pub);
    rbuf_unref(rc->frame);
    pl_free(rc);
}

/* Writes attempt N of the pub to every connection of the user subscribed to
 * its channel, on whichever worker they live. */
static void resend(delivery *d, track *t)
{
    resend_call *rc = pl_calloc(1, sizeof(*rc));
    if (!rc) return;
    rc->frame = delivery_frame(t->pub, t->attempt);
    if (!rc->frame) {
        pl_free(rc);
        return;
    }
    rc->pub = pub_ref(t->pub);
    snprintf(rc->user, sizeof(rc->user), "%s", t->user);
    atomic_init(&rc->call.refs, 1);
    rc->call.fn = resend_run;
    rc->call.release = resend_release;
    server_call_all(d->srv, &rc->call);
}

/* ---- tracking ------------------------------------------------------------------ */

static size_t track_key(char *out, size_t cap, const pl_pub *p, const char *user)
{
    int n = snprintf(out, cap, "%s\x1f%s\x1f%llu\x1f%s", p->tenant, p->channel,
                     (unsigned long long)p->offset, user);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static void track_free(delivery *d, track *t)
{
    wheel_cancel(d->wheel, &t->timer);
    map_del(&d->tracks, t->key, strlen(t->key));
    pub_unref(t->pub);
    pl_free(t->user);
    pl_free(t->key);
    pl_free(t);
}

static const cfg_namespace *ns_of(delivery *d, const pl_pub *p)
{
    return config_namespace(&d->srv->cfg, p->channel, strlen(p->channel));
}

/* Waits ack_wait, then a full-jitter backoff for the attempt made. */
static void arm(delivery *d, track *t)
{
    const cfg_namespace *ns = ns_of(d, t->pub);
    int64_t wait = ns ? ns->ack_wait_ms : 5000;
    backoff b = d->backoff;
    if (ns) backoff_configure(&b, ns->retry_min_ms, 2, ns->retry_max_ms);
    wait += backoff_delay(&b, t->attempt);
    d->backoff._rng = b._rng; /* keep the generator moving */
    wheel_add(d->wheel, &t->timer, clock_wall_ms() + wait);
}

static track *track_get(delivery *d, pl_pub *p, const char *user, int create)
{
    char key[800];
    size_t klen = track_key(key, sizeof(key), p, user);
    if (!klen) return NULL;
    track *t = map_get(&d->tracks, key, klen);
    if (t || !create) return t;
    t = pl_calloc(1, sizeof(*t));
    if (!t) return NULL;
    wheel_timer_init(&t->timer);
    t->pub = pub_ref(p);
    t->user = pl_strdup(user);
    t->key = pl_strndup(key, klen);
    if (!t->user || !t->key || map_put(&d->tracks, key, klen, t)) {
        pub_unref(t->pub);
        pl_free(t->user);
        pl_free(t->key);
        pl_free(t);
        return NULL;
    }
    return t;
}

static void on_sent(delivery *d, dmsg *m)
{
    track *t = track_get(d, m->pub, m->user, 1);
    if (!t || m->attempt <= t->attempt) return; /* another device, same attempt */
    t->attempt = m->attempt;
    t->sent_us = clock_mono_us();
    arm(d, t);
}

static void on_acked(delivery *d, dmsg *m)
{
    int64_t now = clock_mono_us();
    track **hit = pl_malloc((d->tracks.len + 1) * sizeof(*hit));
    size_t n = 0;
    if (!hit) return;
    for (size_t i = 0; i < d->tracks.cap; i++) {
        track *t = d->tracks.slots[i].value;
        if (!d->tracks.slots[i].key) continue;
        const pl_pub *p = t->pub;
        if (p->offset <= m->upto && !strcmp(t->user, m->user) && !strcmp(p->tenant, m->tenant) &&
            !strcmp(p->channel, m->channel))
            hit[n++] = t;
    }
    pthread_mutex_lock(&d->stats_lock);
    for (size_t i = 0; i < n; i++) {
        d->stats.acks++;
        d->stats.ack_count++;
        d->stats.ack_latency_us_sum += (uint64_t)(now - hit[i]->sent_us);
    }
    pthread_mutex_unlock(&d->stats_lock);
    for (size_t i = 0; i < n; i++)
        track_free(d, hit[i]);
    pl_free(hit);
}

/* A recipient with no connection subscribed to the channel gets nothing
 * from a resend: its delivery goes back to queued (no attempt is used up)
 * and is delivered when it subscribes again. */
static int recipient_offline(delivery *d, track *t)
{
    if (presence_has_user(d->srv->presence, t->pub->tenant, t->pub->channel, t->user)) return 0;
    persist(d, t->pub, t->user, DLV_QUEUED, t->attempt, "recipient offline");
    track_free(d, t);
    return 1;
}

static void on_fire(wheel_timer *tm, void *arg)
{
    delivery *d = arg;
    track *t = (track *)tm;
    const cfg_namespace *ns = ns_of(d, t->pub);
    uint32_t max = ns ? ns->max_attempts : 7;
    if (backoff_should_give_up(t->attempt, max)) {
        char err[64];
        snprintf(err, sizeof(err), "not acknowledged after %u attempts", t->attempt);
        persist(d, t->pub, t->user, DLV_FAILED, t->attempt, err);
        pthread_mutex_lock(&d->stats_lock);
        d->stats.dead_lettered++;
        pthread_mutex_unlock(&d->stats_lock);
        track_free(d, t);
        return;
    }
    if (recipient_offline(d, t)) return;
    t->attempt++;
    t->sent_us = clock_mono_us();
    persist(d, t->pub, t->user, DLV_SENT, t->attempt, NULL);
    resend(d, t);
    pthread_mutex_lock(&d->stats_lock);
    d->stats.redeliveries++;
    pthread_mutex_unlock(&d->stats_lock);
    arm(d, t);
}

static void on_timer(uv_timer_t *h);

/* One uv timer, armed for the wheel's next deadline. */
static void rearm_uv(delivery *d)
{
    int64_t next = wheel_next_deadline(d->wheel);
    if (next < 0) {
        uv_timer_stop(&d->timer);
        return;
    }
    int64_t wait = next - clock_wall_ms();
    uv_timer_start(&d->timer, on_timer, (uint64_t)(wait > 0 ? wait : 0), 0);
}

static void on_timer(uv_timer_t *h)
{
    delivery *d = h->data;
    wheel_advance(d->wheel, clock_wall_ms(), on_fire, d);
    rearm_uv(d);
}

static void handle(delivery *d, dmsg *m)
{
    switch (m->kind) {
    case M_SENT:
        on_sent(d, m);
        break;
    case M_ACKED:
        on_acked(d, m);
        break;
    case M_REPLAY: {
        track *t = track_get(d, m->pub, m->user, 1);
        if (!t || recipient_offline(d, t)) break;
        t->attempt = 1;
        t->sent_us = clock_mono_us();
        persist(d, t->pub, t->user, DLV_SENT, 1, NULL);
        resend(d, t);
        arm(d, t);
        break;
    }
    case M_RESTORE: {
        track *t = track_get(d, m->pub, m->user, 1);
        if (!t || t->attempt >= m->attempt) break;
        t->attempt = m->attempt;
        t->sent_us = clock_mono_us();
        arm(d, t);
        break;
    }
    }
    pub_unref(m->pub);
    pl_free(m->tenant);
    pl_free(m->channel);
    pl_free(m->user);
    pl_free(m);
}

static void on_wakeup(uv_async_t *a)
{
    delivery *d = a->data;
    pthread_mutex_lock(&d->lock);
    dmsg *m = d->head;
    d->head = d->tail = NULL;
    int stop = d->stopping;
    pthread_mutex_unlock(&d->lock);
    while (m) {
        dmsg *next = m->next;
        handle(d, m);
        m = next;
    }
    wheel_advance(d->wheel, clock_wall_ms(), on_fire, d);
    rearm_uv(d);
    if (stop) {
        uv_close((uv_handle_t *)&d->wakeup, NULL);
        uv_close((uv_handle_t *)&d->timer, NULL);
    }
}

static void thread_main(void *arg)
{
    delivery *d = arg;
    uv_run(&d->loop, UV_RUN_DEFAULT);
}

/* Engine completion (engine thread): the deliveries left in state sent by
 * the previous run become tracked again. */
static void restore_done(engine_req *r)
{
    delivery *d = r->ctx;
    for (size_t i = 0; r->status == PL_OK && i < r->npubs; i++) {
        dmsg *m = msg_new(M_RESTORE, r->pubs[i], r->users[i]);
        if (!m) continue;
        m->attempt = r->attempts[i] ? r->attempts[i] : 1;
        post(d, m);
    }
    engine_req_free(r);
}

delivery *delivery_new(server *srv)
{
    delivery *d = pl_calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->srv = srv;
    map_init(&d->tracks);
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->stats_lock, NULL);
    d->wheel = wheel_new(TICK_MS, clock_wall_ms());
    if (!d->wheel || backoff_init(&d->backoff)) {
        delivery_free(d);
        return NULL;
    }
    return d;
}

int delivery_start(delivery *d)
{
    uv_loop_init(&d->loop);
    uv_async_init(&d->loop, &d->wakeup, on_wakeup);
    d->wakeup.data = d;
    uv_timer_init(&d->loop, &d->timer);
    d->timer.data = d;
    d->running = 1;
    if (uv_thread_create(&d->thread, thread_main, d)) {
        d->running = 0;
        return -1;
    }
    engine_req *r = engine_req_new(ENGINE_ADMIN);
    if (!r) return 0;
    r->admin_op = ADMIN_SENT_ALL;
    r->done = restore_done;
    r->ctx = d;
    engine_submit(d->srv->eng, r);
    return 0;
}

void delivery_stop(delivery *d)
{
    if (!d || !d->running) return;
    pthread_mutex_lock(&d->lock);
    d->stopping = 1;
    pthread_mutex_unlock(&d->lock);
    uv_async_send(&d->wakeup);
    uv_thread_join(&d->thread);
    uv_loop_close(&d->loop);
    d->running = 0;
    for (dmsg *m = d->head, *n; m; m = n) {
        n = m->next;
        pub_unref(m->pub);
        pl_free(m->tenant);
        pl_free(m->channel);
        pl_free(m->user);
        pl_free(m);
    }
    d->head = d->tail = NULL;
}

void delivery_free(delivery *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->tracks.cap; i++) {
        track *t = d->tracks.slots[i].value;
        if (!d->tracks.slots[i].key) continue;
        pub_unref(t->pub);
        pl_free(t->user);
        pl_free(t->key);
        pl_free(t);
    }
    map_release(&d->tracks);
    wheel_free(d->wheel);
    pthread_mutex_destroy(&d->lock);
    pthread_mutex_destroy(&d->stats_lock);
    pl_free(d);
}

void delivery_get_stats(delivery *d, delivery_stats *out)
{
    pthread_mutex_lock(&d->stats_lock);
    *out = d->stats;
    pthread_mutex_unlock(&d->stats_lock);
}
