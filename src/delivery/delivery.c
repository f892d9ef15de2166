/* The delivery manager's thread (see delivery.h): its own libuv loop runs
 * the tracker (tracker.h, the state machine) and one timer for the tracker's
 * wheel; every other thread only appends to its inbox. Whatever the
 * manager does to the server goes through delivery_deps. */
#include "delivery/delivery.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "delivery/tracker.h"
#include "util/mem.h"

enum msg_kind { M_SENT, M_ACKED, M_REPLAY, M_RESTORE };

typedef struct dmsg {
    int kind;
    pl_pub *pub; /* M_SENT, M_REPLAY, M_RESTORE */
    char *tenant, *channel, *user;
    uint64_t upto;
    uint32_t attempt;
    struct dmsg *next;
} dmsg;

struct delivery {
    delivery_deps deps;
    tracker *tr; /* manager thread only once started */
    uv_loop_t loop;
    uv_async_t wakeup;
    uv_timer_t timer;
    uv_thread_t thread;
    int running;
    pthread_mutex_t lock;
    dmsg *head, *tail; /* inbox, guarded by lock */
    int stopping;      /* guarded by lock */
    pthread_mutex_t stats_lock;
    delivery_stats stats; /* the tracker's, copied after each round */
};

/* ---- frames --------------------------------------------------------------- */

rbuf *delivery_frame(const rbuf *f, uint32_t attempt)
{
    static const char tail[] = ",\"attempt\":1}";
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

static void msg_free(dmsg *m)
{
    pub_unref(m->pub);
    pl_free(m->tenant);
    pl_free(m->channel);
    pl_free(m->user);
    pl_free(m);
}

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
        msg_free(m);
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
        msg_free(m);
        return NULL;
    }
    return m;
}

void delivery_sent(delivery *d, pl_pub *pub, const char *user, uint32_t attempt)
{
    /* Persisted from the sending thread, before the client can see the pub:
     * an ack it sends back is then ordered after this in the engine. */
    tracker_persist(d->deps.eng, pub, user, DLV_SENT, attempt, NULL);
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
        msg_free(m);
        return;
    }
    post(d, m);
}

/* ---- the manager thread -------------------------------------------------------- */

static void handle(delivery *d, dmsg *m)
{
    switch (m->kind) {
    case M_SENT:
        tracker_sent(d->tr, m->pub, m->user, m->attempt);
        break;
    case M_ACKED:
        tracker_acked(d->tr, m->tenant, m->channel, m->user, m->upto);
        break;
    case M_REPLAY:
        tracker_replay(d->tr, m->pub, m->user);
        break;
    case M_RESTORE:
        tracker_restore(d->tr, m->pub, m->user, m->attempt);
        break;
    }
    msg_free(m);
}

static void on_timer(uv_timer_t *h);

/* Fires what is due, publishes the counters and arms the one uv timer for
 * the wheel's next deadline. */
static void round_end(delivery *d)
{
    tracker_advance(d->tr);
    pthread_mutex_lock(&d->stats_lock);
    tracker_stats(d->tr, &d->stats);
    pthread_mutex_unlock(&d->stats_lock);
    int64_t next = tracker_next_us(d->tr);
    if (next < 0) {
        uv_timer_stop(&d->timer);
        return;
    }
    int64_t wait = (next - tracker_now_us(d->tr) + 999) / 1000;
    uv_timer_start(&d->timer, on_timer, (uint64_t)(wait > 0 ? wait : 0), 0);
}

static void on_timer(uv_timer_t *h)
{
    round_end(h->data);
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
    round_end(d);
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

/* ---- lifetime ------------------------------------------------------------------ */

delivery *delivery_new(const delivery_deps *deps)
{
    delivery *d = pl_calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->deps = *deps;
    if (!(d->tr = tracker_new(deps))) {
        pl_free(d);
        return NULL;
    }
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->stats_lock, NULL);
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
        uv_close((uv_handle_t *)&d->wakeup, NULL);
        uv_close((uv_handle_t *)&d->timer, NULL);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        uv_loop_close(&d->loop);
        return -1;
    }
    engine_req *r = engine_req_new(ENGINE_ADMIN);
    if (!r) return 0;
    r->admin_op = ADMIN_SENT_ALL;
    r->done = restore_done;
    r->ctx = d;
    engine_submit(d->deps.eng, r);
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
        msg_free(m);
    }
    d->head = d->tail = NULL;
}

void delivery_free(delivery *d)
{
    if (!d) return;
    tracker_free(d->tr);
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
