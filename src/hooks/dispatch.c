/* The dispatcher: each endpoint's pending deliveries, sent within its
 * max_in_flight, rate and ordering, signed at each attempt, and each answer
 * turned by the status contract (hooks/retry.h) into the delivery's next
 * state, the endpoint's health, and an attempt record stored at the end of
 * the round. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hooks/hooks_int.h"
#include "obs/log.h"
#include "util/clock.h"
#include "util/mem.h"

#define SIG_HEADER_MAX 64

static char *dup_or_null(const char *s)
{
    return s ? pl_strdup(s) : NULL;
}

void hk_dlv_free(hk_dlv *d)
{
    if (!d) return;
    pl_free(d->id);
    pl_free(d->rule);
    pl_free(d->channel);
    pl_free(d->pub_id);
    pl_free(d->correlation_id);
    pl_free(d->okey);
    pl_free(d->body);
    pl_free(d);
}

/* Takes the stored delivery's schedule and appends d to its endpoint's
 * queue. */
static int enqueue_tail(hk_endpoint *ep, hk_dlv *d, const hstore_delivery *s)
{
    d->offset = s->offset;
    d->attempts = s->attempts;
    d->next_ms = s->next_ms;
    d->created_ms = s->created_ms;
    d->prev = ep->tail;
    if (ep->tail)
        ep->tail->next = d;
    else
        ep->head = d;
    ep->tail = d;
    ep->pending++;
    return PL_OK;
}

int hk_enqueue(hooks *h, hk_endpoint *ep, const hstore_delivery *s)
{
    (void)h;
    hk_dlv *d = pl_calloc(1, sizeof(*d));
    if (!d) return PL_ENOMEM;
    d->ep = ep;
    d->id = pl_strdup(s->id);
    d->rule = dup_or_null(s->rule);
    d->channel = dup_or_null(s->channel);
    d->pub_id = dup_or_null(s->pub_id);
    d->correlation_id = dup_or_null(s->correlation_id);
    d->okey = dup_or_null(s->okey);
    d->body = pl_malloc(s->body_len + 1);
    if (!d->id || !d->body || (s->okey && !d->okey)) {
        hk_dlv_free(d);
        return PL_ENOMEM;
    }
    memcpy(d->body, s->body, s->body_len);
    d->body[s->body_len] = '\0';
    d->body_len = s->body_len;
    return enqueue_tail(ep, d, s);
}

int hk_enqueue_new(hooks *h, hk_newd *x, const hstore_delivery *s)
{
    (void)h;
    hk_dlv *d = pl_calloc(1, sizeof(*d));
    if (!d) return PL_ENOMEM;
    /* The batch's copies move over: it made them for this delivery alone
     * (its body NUL-terminated), and copying them again cost as much as
     * making them. */
    d->ep = x->ep;
    d->id = x->id;
    d->rule = x->rule;
    d->channel = x->channel;
    d->pub_id = x->pub_id;
    d->correlation_id = x->correlation_id;
    d->okey = x->okey;
    d->body = x->body;
    x->id = x->rule = x->channel = x->pub_id = x->correlation_id = x->okey = x->body = NULL;
    d->body_len = s->body_len;
    return enqueue_tail(d->ep, d, s);
}

static void unlink_dlv(hk_endpoint *ep, hk_dlv *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        ep->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        ep->tail = d->prev;
    ep->pending--;
}

static void wake_at(hooks *h, int64_t t)
{
    if (!h->next_wake_ms || t < h->next_wake_ms) h->next_wake_ms = t;
}

static void on_sent(const sender_result *r, void *user)
{
    hk_dlv *d = user;
    hooks *h = d->ep->owner;
    hk_msg *m = pl_calloc(1, sizeof(*m));
    if (!m) {
        log_event(LOG_ERROR, "webhook_result_lost", "delivery", d->id, "reason", "out of memory",
                  NULL);
        return;
    }
    m->kind = HK_MSG_RESULT;
    m->dlv = d;
    m->status = r->status;
    m->latency_us = r->latency_us;
    /* "" (answered) is kept as NULL: one allocation fewer per attempt. */
    m->error = r->error && *r->error ? pl_strdup(r->error) : NULL;
    m->retry_after = dup_or_null(r->retry_after);
    m->delivery_hdr = dup_or_null(r->delivery);
    if (r->body_len && (m->body = pl_malloc(r->body_len))) {
        memcpy(m->body, r->body, r->body_len);
        m->body_len = r->body_len;
    }
    /* Queued for hk_results_flush, which the sender calls at the end of
     * its round: one post and one wakeup per round, not per attempt. */
    if (h->res_tail)
        h->res_tail->next = m;
    else
        h->res_head = m;
    h->res_tail = m;
}

void hk_results_flush(void *user)
{
    hooks *h = user;
    if (!h->res_head) return;
    hk_post_chain(h, h->res_head, h->res_tail);
    h->res_head = h->res_tail = NULL;
}

/* The signing keys in force at now: every secret without an expiry or
 * expiring later. */
static size_t active_keys(const hk_endpoint *ep, int64_t now, const sign_key **out)
{
    size_t n = 0;
    for (size_t i = 0; i < ep->def.n_secrets && n < SIG_HEADER_MAX; i++)
        if (ep->keys[i] && (!ep->def.secret_expires_ms[i] || ep->def.secret_expires_ms[i] > now))
            out[n++] = ep->keys[i];
    return n;
}

static int send_one(hooks *h, hk_endpoint *ep, hk_dlv *d, int64_t now)
{
    const sign_key *keys[SIG_HEADER_MAX];
    size_t nk = active_keys(ep, now, keys);
    int64_t ts = now / 1000;
    char *sig = NULL;
    if (!nk || sign_header(keys, nk, d->id, strlen(d->id), ts, d->body, d->body_len, &sig))
        return PL_EINVAL;
    char h_id[256], h_ts[48], *h_sig = pl_malloc(strlen(sig) + 32);
    if (!h_sig) {
        pl_free(sig);
        return PL_ENOMEM;
    }
    snprintf(h_id, sizeof(h_id), "webhook-id: %s", d->id);
    snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %" PRId64, ts);
    sprintf(h_sig, "webhook-signature: %s", sig);
    pl_free(sig);
    const char *headers[] = {"Content-Type: application/json", "User-Agent: Parley-Webhooks/1",
                             h_id, h_ts, h_sig};
    sender_request rq = {.url = ep->def.url,
                         .headers = headers,
                         .n_headers = 5,
                         .body = d->body,
                         .body_len = d->body_len,
                         .connect_timeout_ms = ep->def.connect_timeout_ms,
                         .timeout_ms = ep->def.timeout_ms,
                         .allow = h->allow,
                         .done = on_sent,
                         .user = d};
    int st = sender_submit(h->snd, &rq);
    pl_free(h_sig);
    if (st != PL_OK) return st;
    d->in_flight = true;
    d->started_ms = now;
    ep->in_flight++;
    return PL_OK;
}

/* Takes one token of the endpoint's rate, refilled continuously; 0 when
 * none is left (wake set for the next). */
static int take_token(hooks *h, hk_endpoint *ep, int64_t now)
{
    if (!ep->def.rate) return 1;
    double rate = ep->def.rate;
    if (ep->tokens_ms) ep->tokens += (double)(now - ep->tokens_ms) * rate / 1000.0;
    ep->tokens_ms = now;
    if (ep->tokens > rate) ep->tokens = rate;
    if (ep->tokens >= 1.0) {
        ep->tokens -= 1.0;
        return 1;
    }
    wake_at(h, now + (int64_t)((1.0 - ep->tokens) * 1000.0 / rate) + 1);
    return 0;
}

static bool sendable(const hk_endpoint *ep)
{
    return ep->def.enabled && !ep->deleted && ep->health.state != HEALTH_DISABLED;
}

/* A delivery whose attempt cannot even start (no active signing key):
 * counted as a failed attempt without a request. */
static void fail_unsent(hooks *h, hk_endpoint *ep, hk_dlv *d, int st, int64_t now);

static void dispatch_ep(hooks *h, hk_endpoint *ep, int64_t now)
{
    if (!sendable(ep) || !ep->head) return;
    if (now < ep->throttle_until) {
        wake_at(h, ep->throttle_until);
        return;
    }
    map keys;
    map_init_borrowed(&keys);
    bool ordered = ep->def.ordering != CFG_ORDER_NONE;
    for (hk_dlv *d = ep->head, *next; d && ep->in_flight < ep->def.max_in_flight; d = next) {
        next = d->next;
        if (ordered && d->okey) {
            /* Only the oldest pending delivery of a key may go. */
            size_t kl = strlen(d->okey);
            if (map_get(&keys, d->okey, kl)) continue;
            map_put(&keys, d->okey, kl, d);
        }
        if (d->in_flight) continue;
        if (d->next_ms > now) {
            wake_at(h, d->next_ms);
            continue;
        }
        if (!take_token(h, ep, now)) break;
        int st = send_one(h, ep, d, now);
        if (st != PL_OK) fail_unsent(h, ep, d, st, now);
    }
    map_release(&keys);
}

void hk_dispatch(hooks *h, int64_t now)
{
    for (size_t i = 0; i < h->neps; i++)
        dispatch_ep(h, h->eps[i], now);
}

/* ---- outcomes ------------------------------------------------------------ */

static void record(hooks *h, const hk_dlv *d, int status, int64_t latency_us, const char *headers,
                   const char *body, size_t body_len, const char *error, int state, int64_t now)
{
    if (!h->natt) h->att_first_ms = now;
    if (h->natt == h->att_cap) {
        size_t ncap = h->att_cap ? h->att_cap * 2 : 64;
        hstore_attempt *na = pl_realloc(h->att, ncap * sizeof(*na));
        if (!na) {
            h->store_errors++;
            return;
        }
        h->att = na;
        h->att_cap = ncap;
    }
    char *b = NULL;
    if (body_len && (b = pl_malloc(body_len))) memcpy(b, body, body_len);
    h->att[h->natt++] = (hstore_attempt){.delivery = pl_strdup(d->id),
                                         .attempt = d->attempts,
                                         .ts_ms = d->started_ms ? d->started_ms : now,
                                         .status = status,
                                         .latency_us = latency_us,
                                         .headers = dup_or_null(headers),
                                         .body = b,
                                         .body_len = b ? body_len : 0,
                                         .error = dup_or_null(error),
                                         .state = state,
                                         .next_ms = d->next_ms};
}

void hk_flush_attempts(hooks *h, int64_t now, bool force)
{
    if (!h->natt) return;
    /* One fsynced transaction per HK_ATTEMPTS_WAIT_MS or HK_ATTEMPTS_BATCH
     * attempts, not per wakeup: a commit per answer cost more CPU than the
     * answer. A crash loses at most that window's outcomes, and those
     * deliveries are sent again (at least once). */
    if (!force && h->natt < HK_ATTEMPTS_BATCH && now - h->att_first_ms < HK_ATTEMPTS_WAIT_MS) {
        wake_at(h, h->att_first_ms + HK_ATTEMPTS_WAIT_MS);
        return;
    }
    if (hstore_attempts_commit(h->store, h->att, h->natt) != PL_OK) {
        h->store_errors++;
        log_event(LOG_ERROR, "webhook_store_failed", "reason", "attempts not recorded", NULL);
    }
    hk_attempts_clear(h);
}

void hk_attempts_clear(hooks *h)
{
    for (size_t i = 0; i < h->natt; i++) {
        pl_free((char *)h->att[i].delivery);
        pl_free((char *)h->att[i].headers);
        pl_free((char *)h->att[i].body);
        pl_free((char *)h->att[i].error);
    }
    h->natt = 0;
}

static void on_done_dlq(engine_req *r)
{
    if (r->status != PL_OK)
        log_event(LOG_ERROR, "webhook_dlq_failed", "delivery", r->ref, "reason",
                  "the DLQ entry could not be written", NULL);
    engine_req_free(r);
}

/* A delivery out of attempts enters the DLQ beside guaranteed pubs. */
static void dead_letter(hooks *h, const hk_endpoint *ep, const hk_dlv *d, const char *reason,
                        const char *error)
{
    engine_req *r = engine_req_new(ENGINE_ADMIN);
    if (!r) return;
    r->admin_op = ADMIN_DLQ_ADD;
    r->done = on_done_dlq;
    r->tenant = pl_strdup(ep->def.tenant);
    r->channel = dup_or_null(d->channel);
    r->since_offset = d->offset;
    r->user = pl_strdup(ep->def.id);
    r->ref = pl_strdup(d->id);
    r->pub_id = dup_or_null(d->pub_id);
    r->reason = pl_strdup(reason);
    r->error = dup_or_null(error);
    r->correlation = dup_or_null(d->correlation_id);
    r->attempt = d->attempts;
    if (!r->tenant || !r->user || !r->ref || !r->reason) {
        engine_req_free(r);
        return;
    }
    engine_submit(h->env.eng, r);
}

static void health_events(hooks *h, hk_endpoint *ep, unsigned ev, int64_t now)
{
    if (!ev) return;
    if (ev & HEALTH_EV_WARN_24H) hk_op_event(h, ep, HK_EV_FAILING_24H, "no success for 24h");
    if (ev & HEALTH_EV_WARN_72H) hk_op_event(h, ep, HK_EV_FAILING_72H, "no success for 72h");
    if (ev & HEALTH_EV_RECOVERED) hk_op_event(h, ep, HK_EV_RECOVERED, NULL);
    if (ev & HEALTH_EV_DISABLED) hk_endpoint_disable(h, ep, ep->health.reason, now);
    if (hstore_health_put(h->store, ep->def.tenant, ep->def.id, &ep->health) != PL_OK)
        h->store_errors++;
}

static void finish(hooks *h, hk_endpoint *ep, hk_dlv *d, int state)
{
    (void)h;
    if (state == HSTORE_PENDING) return;
    if (state == HSTORE_DELIVERED) ep->delivered++;
    if (state == HSTORE_DEAD) ep->dead++;
    if (state == HSTORE_ABORTED) ep->aborted++;
    unlink_dlv(ep, d);
    hk_dlv_free(d);
}

static void fail_unsent(hooks *h, hk_endpoint *ep, hk_dlv *d, int st, int64_t now)
{
    const char *why = st == PL_EINVAL ? "no active signing secret" : "the sender refused it";
    d->attempts++;
    int64_t delay = retry_delay(&ep->policy, d->attempts + 1, hk_random(h));
    int state = delay < 0 ? HSTORE_DEAD : HSTORE_PENDING;
    d->next_ms = delay < 0 ? 0 : now + delay;
    d->started_ms = now;
    ep->failed_attempts++;
    record(h, d, 0, 0, NULL, NULL, 0, why, state, now);
    if (state == HSTORE_DEAD) dead_letter(h, ep, d, "webhook_failed", why);
    finish(h, ep, d, state);
}

static void observe_latency(hk_endpoint *ep, int64_t us)
{
    static const int64_t bounds_ms[] = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
    size_t b = 0;
    while (b < 11 && us > bounds_ms[b] * 1000)
        b++;
    ep->lat_hist[b]++;
    ep->lat_sum_s += (double)us / 1e6;
}

/* The response headers the contract reads, as a JSON object. */
static char *headers_json(const hk_msg *m)
{
    /* Most answers carry neither: NULL stands for "{}", built by nobody. */
    if (!m->retry_after && !m->delivery_hdr) return NULL;
    json_t *o = json_object();
    if (m->retry_after) json_object_set_new(o, "retry-after", json_string(m->retry_after));
    if (m->delivery_hdr) json_object_set_new(o, "webhook-delivery", json_string(m->delivery_hdr));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

void hk_on_result(hooks *h, hk_msg *m, int64_t now)
{
    hk_dlv *d = m->dlv;
    hk_endpoint *ep = d->ep;
    d->in_flight = false;
    ep->in_flight--;
    d->attempts++;
    retry_header hdrs[2];
    size_t nh = 0;
    if (m->retry_after) hdrs[nh++] = (retry_header){"Retry-After", m->retry_after};
    if (m->delivery_hdr) hdrs[nh++] = (retry_header){"webhook-delivery", m->delivery_hdr};
    retry_response resp = {m->status, hdrs, nh, m->error};
    retry_outcome out;
    retry_classify(&ep->policy, d->attempts, &resp, now, hk_random(h), &out);
    if (m->status) observe_latency(ep, m->latency_us);
    int state = HSTORE_PENDING;
    switch (out.kind) {
    case RETRY_SUCCESS:
        state = HSTORE_DELIVERED;
        break;
    case RETRY_ABORT_MESSAGE:
        state = HSTORE_ABORTED;
        break;
    case RETRY_DISABLE_ENDPOINT:
        state = HSTORE_DEAD;
        break;
    case RETRY_RETRY:
    case RETRY_THROTTLE:
        state = out.exhausted ? HSTORE_DEAD : HSTORE_PENDING;
        d->next_ms = out.exhausted ? 0 : now + out.delay_ms;
        if (out.kind == RETRY_THROTTLE && !out.exhausted) ep->throttle_until = d->next_ms;
        break;
    }
    /* The endpoint's health first: a failure that disables it ends this
     * delivery too, and its record must say so. */
    unsigned ev = endpoint_health_on_result(&ep->health, now, out.kind, out.reason);
    if (state == HSTORE_PENDING && (!sendable(ep) || (ev & HEALTH_EV_DISABLED)))
        state = HSTORE_DEAD;
    if (out.kind != RETRY_SUCCESS) ep->failed_attempts++;
    char *hj = headers_json(m);
    const char *err =
        m->status ? (out.kind == RETRY_SUCCESS ? NULL : out.reason) : (m->error ? m->error : "");
    record(h, d, m->status, m->latency_us, hj ? hj : "{}", m->body, m->body_len, err, state, now);
    free(hj);
    if (state == HSTORE_DEAD && out.kind != RETRY_DISABLE_ENDPOINT && !(ev & HEALTH_EV_DISABLED))
        dead_letter(h, ep, d, "webhook_failed", err);
    finish(h, ep, d, state);
    health_events(h, ep, ev, now);
}

void hk_endpoint_disable(hooks *h, hk_endpoint *ep, const char *why, int64_t now)
{
    uint64_t killed = 0;
    hk_flush_attempts(h, now, true); /* their states first: the kill decides after them */
    if (hstore_endpoint_kill(h->store, ep->def.tenant, ep->def.id, why, now, &killed) != PL_OK)
        h->store_errors++;
    /* In-flight ones finish with their answer; the rest are dead now. */
    for (hk_dlv *d = ep->head, *next; d; d = next) {
        next = d->next;
        if (d->in_flight) continue;
        ep->dead++;
        unlink_dlv(ep, d);
        hk_dlv_free(d);
    }
    char reason[256];
    snprintf(reason, sizeof(reason), "%s; %" PRIu64 " pending deliveries dead", why ? why : "",
             killed);
    hk_op_event(h, ep, HK_EV_DISABLED, reason);
}
