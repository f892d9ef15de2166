/* The delivery state machine (see tracker.h). A tracked delivery is a
 * `track`, keyed by its (pub, user) and linked in its `group`, the list of
 * one (tenant, user, channel)'s tracks in offset order, which is what an ack
 * walks. Both maps borrow their keys from inside the track or group, so a
 * new delivery costs one allocation (two for a new group). */
#include "delivery/tracker.h"

#include <stdio.h>
#include <string.h>

#include "delivery/backoff.h"
#include "delivery/wheel.h"
#include "util/clock.h"
#include "util/map.h"
#include "util/mem.h"

#define TRACKER_TICK_MS 10
#define KEY_MAX 800

typedef struct group {
    struct track *head, *tail; /* ascending offsets */
    const char *user;          /* inside key's allocation */
    uint32_t klen;
    char key[]; /* tenant \x1f user \x1f channel, NUL, user, NUL */
} group;

typedef struct track {
    wheel_timer timer; /* first: the wheel hands us this pointer */
    struct track *prev, *next;
    group *g;
    pl_pub *pub;
    uint32_t attempt;
    int64_t sent_us;
    uint32_t klen;
    char key[]; /* the group's key \x1f offset */
} track;

struct tracker {
    delivery_deps deps;
    map tracks; /* track key -> track */
    map groups; /* group key -> group */
    wheel *wheel;
    backoff backoff;
    delivery_stats stats;
};

/* ---- persistence ------------------------------------------------------------ */

void tracker_persist(engine *eng, const pl_pub *p, const char *user, int state, uint32_t attempt,
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
    if (!r->tenant || !r->channel || !r->user || (error && !r->error)) {
        engine_req_free(r);
        return;
    }
    engine_submit(eng, r);
}

static void persist(tracker *t, const track *k, int state, const char *error)
{
    tracker_persist(t->deps.eng, k->pub, k->g->user, state, k->attempt, error);
}

/* ---- index -------------------------------------------------------------------- */

static size_t group_key(char *out, size_t cap, const char *tenant, const char *user,
                        const char *channel)
{
    int n = snprintf(out, cap, "%s\x1f%s\x1f%s", tenant, user, channel);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static group *group_get(tracker *t, const char *key, size_t klen, const char *user, int create)
{
    group *g = map_get(&t->groups, key, klen);
    if (g || !create) return g;
    size_t ulen = strlen(user);
    g = pl_calloc(1, sizeof(*g) + klen + ulen + 2);
    if (!g) return NULL;
    memcpy(g->key, key, klen);
    memcpy(g->key + klen + 1, user, ulen);
    g->user = g->key + klen + 1;
    g->klen = (uint32_t)klen;
    if (map_put(&t->groups, g->key, klen, g)) {
        pl_free(g);
        return NULL;
    }
    return g;
}

static void group_drop_if_empty(tracker *t, group *g)
{
    if (g->head) return;
    map_del(&t->groups, g->key, g->klen);
    pl_free(g);
}

/* Links k into its group by offset. Fan-out sends in offset order, so the
 * walk back from the tail is usually empty. */
static void group_link(group *g, track *k)
{
    track *after = g->tail;
    while (after && after->pub->offset > k->pub->offset)
        after = after->prev;
    k->g = g;
    k->prev = after;
    k->next = after ? after->next : g->head;
    if (k->next)
        k->next->prev = k;
    else
        g->tail = k;
    if (after)
        after->next = k;
    else
        g->head = k;
}

static void track_free(tracker *t, track *k)
{
    group *g = k->g;
    wheel_cancel(t->wheel, &k->timer);
    map_del(&t->tracks, k->key, k->klen);
    if (k->prev)
        k->prev->next = k->next;
    else
        g->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        g->tail = k->prev;
    pub_unref(k->pub);
    pl_free(k);
    group_drop_if_empty(t, g);
}

static track *track_get(tracker *t, pl_pub *p, const char *user, int create)
{
    char key[KEY_MAX];
    size_t glen = group_key(key, sizeof(key), p->tenant, user, p->channel);
    if (!glen) return NULL;
    int n = snprintf(key + glen, sizeof(key) - glen, "\x1f%llu", (unsigned long long)p->offset);
    if (n <= 0 || (size_t)n >= sizeof(key) - glen) return NULL;
    size_t klen = glen + (size_t)n;
    track *k = map_get(&t->tracks, key, klen);
    if (k || !create) return k;
    group *g = group_get(t, key, glen, user, 1);
    if (!g) return NULL;
    if (!(k = pl_calloc(1, sizeof(*k) + klen + 1))) goto fail;
    memcpy(k->key, key, klen);
    k->klen = (uint32_t)klen;
    if (map_put(&t->tracks, k->key, klen, k)) goto fail;
    wheel_timer_init(&k->timer);
    k->pub = pub_ref(p);
    group_link(g, k);
    return k;
fail:
    pl_free(k);
    group_drop_if_empty(t, g);
    return NULL;
}

/* ---- transitions ------------------------------------------------------------- */

static void settings_of(tracker *t, const pl_pub *p, delivery_settings *s)
{
    *s = (delivery_settings){.max_attempts = 7,
                             .ack_wait_ms = 5000,
                             .retry_min_ms = BACKOFF_DEFAULT_BASE_MS,
                             .retry_max_ms = BACKOFF_DEFAULT_CAP_MS};
    if (t->deps.settings) t->deps.settings(t->deps.ctx, p->tenant, p->channel, s);
}

/* Waits ack_wait, then a full-jitter backoff for the attempt made. */
static void arm(tracker *t, track *k)
{
    delivery_settings s;
    settings_of(t, k->pub, &s);
    backoff b = t->backoff;
    backoff_configure(&b, s.retry_min_ms, BACKOFF_DEFAULT_FACTOR, s.retry_max_ms);
    int64_t wait = s.ack_wait_ms + backoff_delay(&b, k->attempt);
    t->backoff._rng = b._rng; /* keep the generator moving */
    wheel_add(t->wheel, &k->timer, k->sent_us / 1000 + wait);
}

static void resend(tracker *t, track *k)
{
    if (t->deps.resend) t->deps.resend(t->deps.ctx, k->pub, k->g->user, k->attempt);
}

/* A recipient with no connection subscribed to the channel gets nothing
 * from a resend: its delivery goes back to queued (no attempt is used up)
 * and is delivered when it subscribes again. */
static int recipient_offline(tracker *t, track *k)
{
    const pl_pub *p = k->pub;
    if (!t->deps.user_online || t->deps.user_online(t->deps.ctx, p->tenant, p->channel, k->g->user))
        return 0;
    persist(t, k, DLV_QUEUED, "recipient offline");
    track_free(t, k);
    return 1;
}

void tracker_sent(tracker *t, pl_pub *pub, const char *user, uint32_t attempt)
{
    track *k = track_get(t, pub, user, 1);
    if (!k || attempt <= k->attempt) return; /* another device, same attempt */
    k->attempt = attempt;
    k->sent_us = tracker_now_us(t);
    arm(t, k);
}

void tracker_acked(tracker *t, const char *tenant, const char *channel, const char *user,
                   uint64_t upto)
{
    char key[KEY_MAX];
    size_t klen = group_key(key, sizeof(key), tenant, user, channel);
    group *g = klen ? group_get(t, key, klen, user, 0) : NULL;
    if (!g) return;
    int64_t now = tracker_now_us(t);
    /* Freeing the group's last track frees the group. */
    for (track *k = g->head; k && k->pub->offset <= upto;) {
        track *next = k->next;
        t->stats.acks++;
        t->stats.ack_count++;
        t->stats.ack_latency_us_sum += (uint64_t)(now - k->sent_us);
        track_free(t, k);
        k = next;
    }
}

void tracker_replay(tracker *t, pl_pub *pub, const char *user)
{
    track *k = track_get(t, pub, user, 1);
    if (!k || recipient_offline(t, k)) return;
    k->attempt = 1;
    k->sent_us = tracker_now_us(t);
    persist(t, k, DLV_SENT, NULL);
    resend(t, k);
    arm(t, k);
}

void tracker_restore(tracker *t, pl_pub *pub, const char *user, uint32_t attempt)
{
    track *k = track_get(t, pub, user, 1);
    if (!k || k->attempt >= attempt) return;
    k->attempt = attempt;
    k->sent_us = tracker_now_us(t);
    arm(t, k);
}

static void on_fire(wheel_timer *tm, void *arg)
{
    tracker *t = arg;
    track *k = (track *)tm;
    delivery_settings s;
    settings_of(t, k->pub, &s);
    if (backoff_should_give_up(k->attempt, s.max_attempts)) {
        char err[64];
        snprintf(err, sizeof(err), "not acknowledged after %u attempts", k->attempt);
        persist(t, k, DLV_FAILED, err);
        t->stats.dead_lettered++;
        track_free(t, k);
        return;
    }
    if (recipient_offline(t, k)) return;
    k->attempt++;
    k->sent_us = tracker_now_us(t);
    persist(t, k, DLV_SENT, NULL);
    resend(t, k);
    t->stats.redeliveries++;
    arm(t, k);
}

size_t tracker_advance(tracker *t)
{
    return wheel_advance(t->wheel, tracker_now_us(t) / 1000, on_fire, t);
}

int64_t tracker_next_us(tracker *t)
{
    int64_t ms = wheel_next_deadline(t->wheel);
    return ms < 0 ? -1 : ms * 1000;
}

int64_t tracker_now_us(const tracker *t)
{
    return t->deps.now_us ? t->deps.now_us(t->deps.ctx) : clock_mono_us();
}

void tracker_stats(const tracker *t, delivery_stats *out)
{
    *out = t->stats;
    out->tracked = t->tracks.len;
}

/* ---- lifetime ------------------------------------------------------------------ */

tracker *tracker_new(const delivery_deps *deps)
{
    tracker *t = pl_calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->deps = *deps;
    map_init_borrowed(&t->tracks);
    map_init_borrowed(&t->groups);
    backoff_init(&t->backoff); /* a clock-seeded generator still de-synchronizes */
    if (deps->rand) backoff_set_rand(&t->backoff, deps->rand, deps->ctx);
    if (!(t->wheel = wheel_new(TRACKER_TICK_MS, tracker_now_us(t) / 1000))) {
        pl_free(t);
        return NULL;
    }
    return t;
}

void tracker_free(tracker *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->groups.cap; i++) {
        group *g = t->groups.slots[i].value;
        if (!t->groups.slots[i].key) continue;
        for (track *k = g->head, *next; k; k = next) {
            next = k->next;
            pub_unref(k->pub);
            pl_free(k);
        }
        pl_free(g);
    }
    map_release(&t->tracks);
    map_release(&t->groups);
    wheel_free(t->wheel);
    pl_free(t);
}
