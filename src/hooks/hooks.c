/* The hooks service's thread and lifecycle: building endpoints and routes
 * from the configuration and the store, the inbox other threads post to,
 * the loop (read the log, dispatch, record attempts, sleep until the next
 * due delivery), metrics and trace. */
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hooks/hooks_int.h"
#include "obs/log.h"
#include "util/clock.h"
#include "util/mem.h"

#define TRIM_EVERY_MS (3600LL * 1000)
/* On stop, attempts in flight get this long to finish (and be recorded), so
 * a restart does not send again what a receiver already took. */
#define STOP_GRACE_MS 5000

void hk_post(hooks *h, hk_msg *m)
{
    pthread_mutex_lock(&h->in_mu);
    if (h->in_tail)
        h->in_tail->next = m;
    else
        h->in_head = m;
    h->in_tail = m;
    pthread_cond_signal(&h->in_cv);
    pthread_mutex_unlock(&h->in_mu);
}

void hk_post_chain(hooks *h, hk_msg *first, hk_msg *last)
{
    pthread_mutex_lock(&h->in_mu);
    if (h->in_tail)
        h->in_tail->next = first;
    else
        h->in_head = first;
    h->in_tail = last;
    pthread_cond_signal(&h->in_cv);
    pthread_mutex_unlock(&h->in_mu);
}

/* Called after every commit by the engine thread, so it costs nothing when
 * it can: a poke already pending is not repeated, and while a log read is
 * out its answer wakes the thread, which then sees the flag (set before
 * read_out is looked at; the thread clears read_out before it looks at the
 * flag under in_mu, so one of the two sees the other). */
void hooks_poke(hooks *h)
{
    if (!h || atomic_exchange(&h->poke_flag, true)) return;
    if (atomic_load(&h->read_out)) return;
    pthread_mutex_lock(&h->in_mu);
    pthread_cond_signal(&h->in_cv);
    pthread_mutex_unlock(&h->in_mu);
}

uint64_t hk_random(hooks *h)
{
    /* xorshift64*: jitter needs spread, not secrecy. */
    h->rnd ^= h->rnd >> 12;
    h->rnd ^= h->rnd << 25;
    h->rnd ^= h->rnd >> 27;
    return h->rnd * 0x2545F4914F6CDD1Dull;
}

hk_endpoint *hk_endpoint_find(hooks *h, const char *tenant, const char *id)
{
    for (size_t i = 0; id && i < h->neps; i++)
        if (!strcmp(h->eps[i]->def.id, id) && !strcmp(h->eps[i]->def.tenant, tenant))
            return h->eps[i];
    return NULL;
}

hk_route *hk_route_find(hooks *h, const char *tenant, const char *id)
{
    for (size_t i = 0; id && i < h->nroutes; i++)
        if (!strcmp(h->routes[i]->id, id) && !strcmp(h->routes[i]->tenant, tenant))
            return h->routes[i];
    return NULL;
}

void hk_sys_update(hooks *h)
{
    unsigned bits = 0;
    for (size_t i = 0; i < h->nroutes; i++)
        if (h->routes[i]->enabled) bits |= h->routes[i]->sys;
    h->sys_wanted = bits;
    if (!h->nroutes && h->log_on) {
        /* Nothing reads the log: stop writing it (a new route starts at the
         * head anyway). */
        engine_log_events(h->env.eng, 0);
        h->log_on = false;
    }
    if (h->env.lifecycle) atomic_store(h->env.lifecycle, bits & (HK_SYS_CLIENTS | HK_SYS_PRESENCE));
}

static void op_published(void *arg, int status)
{
    (void)arg;
    if (status != PL_OK)
        log_event(LOG_WARN, "webhook_event_not_published", "channel", "$sys:webhooks", NULL);
}

void hk_op_event(hooks *h, const hk_endpoint *ep, enum hk_op_event ev, const char *reason)
{
    static const char *const names[HK_EV__COUNT] = {"disabled", "enabled", "failing_24h",
                                                    "failing_72h", "recovered"};
    const char *t = ep->def.tenant, *id = ep->def.id;
    h->op_events[ev]++;
    log_event(ev == HK_EV_DISABLED || ev == HK_EV_FAILING_72H ? LOG_WARN : LOG_INFO,
              "webhook_state", "tenant", t, "endpoint", id, "event", names[ev], "reason",
              reason ? reason : "", NULL);
    json_t *d = json_pack(
        "{s:s,s:s,s:s,s:I,s:I,s:I}", "endpoint", id, "event", names[ev], "reason",
        reason ? reason : "", "failing_since", (json_int_t)ep->health.failing_since, "last_success",
        (json_int_t)ep->health.last_success, "last_failure", (json_int_t)ep->health.last_failure);
    char *data = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    char action[48];
    snprintf(action, sizeof(action), "webhooks.%s", names[ev]);
    if (data && h->env.audit && ev != HK_EV_RECOVERED) {
        audit_event a = {.actor = "server",
                         .action = action,
                         .tenant = t,
                         .target = id,
                         .details = data,
                         .details_len = strlen(data)};
        if (audit_append(h->env.audit, &a, NULL) != PL_OK)
            log_event(LOG_ERROR, "audit_failed", "action", action, NULL);
    }
    if (data && (h->sys_wanted & HK_SYS_WEBHOOKS)) {
        char type[48];
        snprintf(type, sizeof(type), "$sys.webhook.%s", names[ev]);
        pub_fields f = {.tenant = t,
                        .tenant_len = strlen(t),
                        .channel = "$sys:webhooks",
                        .channel_len = 13,
                        .data = data,
                        .data_len = strlen(data),
                        .type = type,
                        .type_len = strlen(type)};
        if (h->env.publish(h->env.publish_ctx, &f, op_published, NULL) != PL_OK)
            op_published(NULL, PL_ERR);
    }
    free(data);
}

static void free_msg(hk_msg *m)
{
    engine_req_free(m->req);
    pl_free(m->error);
    pl_free(m->retry_after);
    pl_free(m->delivery_hdr);
    pl_free(m->body);
    pl_free(m);
}

static void handle(hooks *h, hk_msg *m, int64_t now)
{
    if (m->kind == HK_MSG_EVENTS) {
        hk_router_on_events(h, m->req, now);
        m->req = NULL;
    } else if (m->kind == HK_MSG_RESULT) {
        hk_on_result(h, m, now);
    } else if (m->kind == HK_MSG_PUBLISHED) {
        hk_router_on_published(h, m->status);
    }
    free_msg(m);
}

/* Sleeps (without mu) until a message, a poke, stop, or the next due time. */
static void wait_for_work(hooks *h, int64_t now)
{
    int64_t wait = HK_TICK_MS;
    if (h->next_wake_ms && h->next_wake_ms - now < wait) wait = h->next_wake_ms - now;
    if (h->retry_read_ms > now && h->retry_read_ms - now < wait) wait = h->retry_read_ms - now;
    if (h->more) wait = 0;
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_lock(&h->in_mu);
    if (wait > 0 && !h->in_head && !atomic_load(&h->poke_flag) && !h->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&h->in_cv, &h->in_mu, &ts);
    }
    pthread_mutex_unlock(&h->in_mu);
    pthread_mutex_lock(&h->mu);
}

static void render_stats(hooks *h, int64_t now);

static bool attempts_in_flight(const hooks *h)
{
    for (size_t i = 0; i < h->neps; i++)
        if (h->eps[i]->in_flight) return true;
    for (size_t i = 0; i < h->ngone; i++)
        if (h->gone[i]->in_flight) return true;
    return false;
}

static void *hooks_main(void *arg)
{
    hooks *h = arg;
    pthread_setname_np(pthread_self(), "pl-hooks");
    int64_t last_trim = clock_wall_ms(), stop_by = 0;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        pthread_mutex_lock(&h->in_mu);
        hk_msg *m = h->in_head;
        h->in_head = h->in_tail = NULL;
        bool poked = atomic_exchange(&h->poke_flag, false), stopping = h->stopping;
        pthread_mutex_unlock(&h->in_mu);
        int64_t now = clock_wall_ms();
        h->poked = h->poked || poked;
        while (m) {
            hk_msg *next = m->next;
            handle(h, m, now);
            m = next;
        }
        /* Stopping waits for the engine's answers to what was asked of it
         * (they call back into h), and a while for attempts in flight. */
        if (stopping && !stop_by) stop_by = now + STOP_GRACE_MS;
        if (stopping && !h->reading && !h->publishes_out &&
            (!attempts_in_flight(h) || now >= stop_by)) {
            hk_flush_attempts(h, now, true);
            break;
        }
        h->next_wake_ms = 0;
        if (!stopping) {
            hk_router_step(h, now);
            hk_dispatch(h, now);
        }
        hk_flush_attempts(h, now, stopping);
        if (now - h->stats_ms >= HK_METRICS_EVERY_MS) render_stats(h, now);
        if (now - last_trim >= TRIM_EVERY_MS) {
            uint64_t n = 0;
            last_trim = now;
            if (hstore_trim(h->store, now - HK_TRIM_AFTER_MS, &n) != PL_OK) h->store_errors++;
        }
        wait_for_work(h, clock_wall_ms());
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---- building ------------------------------------------------------------ */

static int add_endpoint(hooks *h, hk_endpoint *ep)
{
    hk_endpoint **n = pl_realloc(h->eps, (h->neps + 1) * sizeof(*n));
    if (!n) return PL_ENOMEM;
    h->eps = n;
    h->eps[h->neps++] = ep;
    return PL_OK;
}

static int add_route(hooks *h, hk_route *r)
{
    hk_route **n = pl_realloc(h->routes, (h->nroutes + 1) * sizeof(*n));
    if (!n) return PL_ENOMEM;
    h->routes = n;
    h->routes[h->nroutes++] = r;
    return PL_OK;
}

static int route_from_cfg(const cfg_route *cr, hk_route **out, char *err, size_t errlen, size_t i)
{
    rule_error re = {{0}, {0}};
    int st = hk_route_new(cr->tenant, cr->id, cr->match, cr->webhook, cr->publish, cr->enabled, out,
                          &re);
    if (st == PL_EINVAL) {
        size_t line = 0, col = 0;
        config_route_mark(cr, re.path, &line, &col);
        snprintf(err, errlen, "%zu:%zu: routes[%zu].%s: %s", line, col, i, re.path, re.reason);
    } else if (st != PL_OK) {
        snprintf(err, errlen, "out of memory");
    }
    return st;
}

int hooks_check_config(const config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        hk_route *r = NULL;
        int st = route_from_cfg(&cfg->routes[i], &r, err, errlen, i);
        hk_route_free(r);
        if (st != PL_OK) return st;
    }
    return PL_OK;
}

static int load_spec_endpoint(void *ctx, const char *tenant, const char *id, const char *spec)
{
    hooks *h = ctx;
    char why[256];
    json_t *j = json_loads(spec, 0, NULL);
    cfg_webhook w;
    hk_endpoint *ep = NULL;
    int st = j ? hk_webhook_from_json(j, tenant, &w, why, sizeof(why)) : PL_EINVAL;
    json_decref(j);
    if (st == PL_OK) {
        st = hk_endpoint_find(h, tenant, id) ? PL_ECONFLICT
                                             : hk_endpoint_new(h, &w, true, &ep, why, sizeof(why));
        hk_webhook_release(&w);
    }
    if (st == PL_OK) st = add_endpoint(h, ep);
    if (st != PL_OK) {
        hk_endpoint_free(ep);
        /* A stored endpoint the configuration now shadows, or one this build
         * refuses, is reported and left in the store. */
        log_event(LOG_WARN, "webhook_not_loaded", "tenant", tenant, "endpoint", id, "reason",
                  st == PL_ECONFLICT ? "the configuration defines the same id" : why, NULL);
    }
    return st == PL_ENOMEM ? st : PL_OK;
}

static int load_spec_route(void *ctx, const char *tenant, const char *id, const char *spec)
{
    hooks *h = ctx;
    char why[600] = "";
    json_t *j = json_loads(spec, 0, NULL);
    hk_route *r = NULL;
    int st = j ? hk_route_from_json(j, tenant, &r, why, sizeof(why)) : PL_EINVAL;
    json_decref(j);
    if (st == PL_OK && hk_route_find(h, tenant, id)) st = PL_ECONFLICT;
    if (st == PL_OK) {
        r->from_api = true;
        st = add_route(h, r);
    }
    if (st != PL_OK) {
        hk_route_free(r);
        log_event(LOG_WARN, "route_not_loaded", "tenant", tenant, "route", id, "reason",
                  st == PL_ECONFLICT ? "the configuration defines the same id" : why, NULL);
    }
    return st == PL_ENOMEM ? st : PL_OK;
}

static int load_health(void *ctx, const char *tenant, const char *id, const endpoint_health *hl)
{
    hk_endpoint *ep = hk_endpoint_find(ctx, tenant, id);
    if (ep) ep->health = *hl;
    return PL_OK;
}

static int load_position(void *ctx, const hstore_position *p)
{
    hk_route *r = hk_route_find(ctx, p->tenant, p->rule);
    if (r) r->pos = p->seq;
    return PL_OK;
}

static int load_pending(void *ctx, const hstore_delivery *d)
{
    hooks *h = ctx;
    hk_endpoint *ep = hk_endpoint_find(h, d->tenant, d->endpoint);
    if (!ep) {
        log_event(LOG_WARN, "webhook_delivery_orphan", "delivery", d->id, "endpoint", d->endpoint,
                  "reason", "its endpoint no longer exists; kept in the store", NULL);
        return PL_OK;
    }
    return hk_enqueue(h, ep, d);
}

static int build_config(hooks *h, char *err, size_t errlen)
{
    const config *cfg = h->env.cfg;
    char why[256];
    for (size_t i = 0; i < cfg->n_namespaces; i++) {
        const cfg_namespace *ns = &cfg->namespaces[i];
        redaction *r = NULL;
        if (!ns->n_redact) continue;
        if (redact_new(ns->redact, ns->n_redact, &r) != PL_OK ||
            map_put(&h->redactions, ns->name, strlen(ns->name), r) != 0) {
            redact_free(r);
            snprintf(err, errlen, "namespace '%s': redact: cannot compile", ns->name);
            return PL_EINVAL;
        }
    }
    for (size_t i = 0; i < cfg->n_webhooks; i++) {
        hk_endpoint *ep = NULL;
        int st = hk_endpoint_new(h, &cfg->webhooks[i], false, &ep, why, sizeof(why));
        if (st == PL_OK && (st = add_endpoint(h, ep)) != PL_OK) hk_endpoint_free(ep);
        if (st != PL_OK) {
            snprintf(err, errlen, "webhooks[%zu] (%s): %s", i, cfg->webhooks[i].id, why);
            return st;
        }
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        hk_route *r = NULL;
        int st = route_from_cfg(&cfg->routes[i], &r, err, errlen, i);
        if (st == PL_OK && (st = add_route(h, r)) != PL_OK) hk_route_free(r);
        if (st != PL_OK) return st;
    }
    return PL_OK;
}

static int load_store(hooks *h, char *err, size_t errlen)
{
    int st = hstore_spec_load(h->store, HSTORE_ENDPOINT, load_spec_endpoint, h);
    if (st == PL_OK) st = hstore_spec_load(h->store, HSTORE_ROUTE, load_spec_route, h);
    if (st == PL_OK) st = hstore_health_load(h->store, load_health, h);
    if (st == PL_OK) st = hstore_positions_load(h->store, load_position, h);
    if (st == PL_OK) st = hstore_pending_load(h->store, load_pending, h);
    if (st != PL_OK) snprintf(err, errlen, "hooks.db: cannot load (%d)", st);
    return st;
}

int hooks_new(const hooks_env *env, hooks **out, char *err, size_t errlen)
{
    hooks *h = pl_calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return PL_ENOMEM;
    }
    h->env = *env;
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->in_mu, NULL);
    pthread_mutex_init(&h->stats_mu, NULL);
    sbuf_init(&h->stats);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->in_cv, &ca);
    pthread_condattr_destroy(&ca);
    map_init(&h->redactions);
    if (RAND_bytes((unsigned char *)&h->rnd, sizeof(h->rnd)) != 1 || !h->rnd)
        h->rnd = (uint64_t)clock_mono_us() | 1;
    const config *cfg = env->cfg;
    int st = hstore_open(cfg->data_dir, &h->store, err, errlen);
    if (st == PL_OK && cfg->n_webhook_allowed_networks)
        st = ssrf_allowlist_new((const char *const *)cfg->webhook_allowed_networks,
                                cfg->n_webhook_allowed_networks, &h->allow, err, errlen);
    if (st == PL_OK) st = build_config(h, err, errlen);
    if (st == PL_OK) st = load_store(h, err, errlen);
    if (st == PL_OK) {
        hk_sys_update(h);
        render_stats(h, clock_wall_ms());
    }
    if (st != PL_OK) {
        hooks_free(h);
        return st;
    }
    *out = h;
    return PL_OK;
}

int hooks_start(hooks *h)
{
    hk_router_log_on(h); /* before any worker accepts a publish */
    /* The log may hold entries committed before a crash or stop that no
     * route evaluated yet: read once without waiting for a new commit. */
    h->poked = true;
    char err[256];
    if (sender_new(0, &h->snd, err, sizeof(err)) != PL_OK) {
        log_event(LOG_ERROR, "webhook_sender_failed", "reason", err, NULL);
        return PL_ERR;
    }
    sender_set_flush(h->snd, hk_results_flush, h);
    if (pthread_create(&h->thread, NULL, hooks_main, h) != 0) return PL_ERR;
    h->running = true;
    return PL_OK;
}

static void free_redaction(hooks *h)
{
    for (uint32_t i = 0; i < h->redactions.cap; i++)
        if (h->redactions.slots && h->redactions.slots[i].key)
            redact_free(h->redactions.slots[i].value);
    map_release(&h->redactions);
}

void hooks_stop(hooks *h)
{
    if (!h || !h->running) return;
    pthread_mutex_lock(&h->in_mu);
    h->stopping = true;
    pthread_cond_signal(&h->in_cv);
    pthread_mutex_unlock(&h->in_mu);
    pthread_join(h->thread, NULL);
    h->running = false;
    /* Attempts in flight are cancelled: their results are dropped, the
     * deliveries stay pending in the store and are sent after a restart. */
    sender_free(h->snd);
    h->snd = NULL;
    pthread_mutex_lock(&h->in_mu);
    hk_msg *m = h->in_head;
    h->in_head = h->in_tail = NULL;
    pthread_mutex_unlock(&h->in_mu);
    for (hk_msg *next; m; m = next) {
        next = m->next;
        free_msg(m);
    }
}

void hooks_free(hooks *h)
{
    if (!h) return;
    hooks_stop(h);
    hk_router_release(h);
    hk_attempts_clear(h);
    pl_free(h->att);
    for (size_t i = 0; i < h->neps; i++)
        hk_endpoint_free(h->eps[i]);
    pl_free(h->eps);
    for (size_t i = 0; i < h->ngone; i++)
        hk_endpoint_free(h->gone[i]);
    pl_free(h->gone);
    for (size_t i = 0; i < h->nroutes; i++)
        hk_route_free(h->routes[i]);
    pl_free(h->routes);
    free_redaction(h);
    ssrf_allowlist_free(h->allow);
    hstore_close(h->store);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->in_mu);
    pthread_mutex_destroy(&h->stats_mu);
    sbuf_release(&h->stats);
    pthread_cond_destroy(&h->in_cv);
    pl_free(h);
}

/* ---- metrics and trace ----------------------------------------------------- */

int hooks_trace_json(hooks *h, const char *tenant, const char *pub_id, sbuf *out)
{
    pthread_mutex_lock(&h->mu);
    hk_flush_attempts(h, clock_wall_ms(), true);
    int st = hstore_pub_deliveries_json(h->store, tenant, pub_id, out);
    pthread_mutex_unlock(&h->mu);
    return st;
}

static void render_endpoint(const hk_endpoint *ep, int64_t now, sbuf *o)
{
    static const char *const le[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                     "0.5",   "1",    "2.5",   "5",    "10",  "+Inf"};
    const char *t = ep->def.tenant, *id = ep->def.id;
    const char *outcomes[] = {"delivered", "dead", "aborted"};
    uint64_t counts[] = {ep->delivered, ep->dead, ep->aborted};
    for (int i = 0; i < 3; i++)
        sbuf_printf(o,
                    "parley_webhook_deliveries_total{tenant=\"%s\",endpoint=\"%s\",outcome=\"%s\"} "
                    "%" PRIu64 "\n",
                    t, id, outcomes[i], counts[i]);
    sbuf_printf(o,
                "parley_webhook_failed_attempts_total{tenant=\"%s\",endpoint=\"%s\"} %" PRIu64 "\n",
                t, id, ep->failed_attempts);
    sbuf_printf(o, "parley_webhook_queue_depth{tenant=\"%s\",endpoint=\"%s\"} %zu\n", t, id,
                ep->pending);
    sbuf_printf(o, "parley_webhook_in_flight{tenant=\"%s\",endpoint=\"%s\"} %zu\n", t, id,
                ep->in_flight);
    double oldest = ep->head ? (double)(now - ep->head->created_ms) / 1000.0 : 0;
    sbuf_printf(o, "parley_webhook_oldest_pending_seconds{tenant=\"%s\",endpoint=\"%s\"} %.3f\n", t,
                id, oldest < 0 ? 0 : oldest);
    uint64_t cum = 0;
    for (int b = 0; b < 12; b++) {
        cum += ep->lat_hist[b];
        sbuf_printf(
            o,
            "parley_webhook_attempt_seconds_bucket{tenant=\"%s\",endpoint=\"%s\",le=\"%s\"} "
            "%" PRIu64 "\n",
            t, id, le[b], cum);
    }
    sbuf_printf(o, "parley_webhook_attempt_seconds_sum{tenant=\"%s\",endpoint=\"%s\"} %.6f\n", t,
                id, ep->lat_sum_s);
    sbuf_printf(o,
                "parley_webhook_attempt_seconds_count{tenant=\"%s\",endpoint=\"%s\"} %" PRIu64 "\n",
                t, id, cum);
}

void hooks_render_metrics(hooks *h, sbuf *o)
{
    pthread_mutex_lock(&h->stats_mu);
    if (h->stats.len) sbuf_append(o, h->stats.data, h->stats.len);
    pthread_mutex_unlock(&h->stats_mu);
}

/* Renders the metrics text (mu held) and publishes it for scrapes. */
static void render_stats(hooks *h, int64_t now)
{
    sbuf o;
    sbuf_init(&o);
    size_t by_state[3] = {0, 0, 0};
    for (size_t i = 0; i < h->neps; i++) {
        render_endpoint(h->eps[i], now, &o);
        by_state[h->eps[i]->health.state < 3 ? h->eps[i]->health.state : 0]++;
    }
    for (int s = 0; s < 3; s++)
        sbuf_printf(&o, "parley_webhook_endpoints{state=\"%s\"} %zu\n",
                    health_state_name((health_state)s), by_state[s]);
    static const char *const evn[HK_EV__COUNT] = {"disabled", "enabled", "failing_24h",
                                                  "failing_72h", "recovered"};
    for (int e = 0; e < HK_EV__COUNT; e++)
        sbuf_printf(&o, "parley_webhook_state_changes_total{event=\"%s\"} %" PRIu64 "\n", evn[e],
                    h->op_events[e]);
    for (size_t i = 0; i < h->nroutes; i++) {
        const hk_route *r = h->routes[i];
        sbuf_printf(&o, "parley_route_matches_total{tenant=\"%s\",route=\"%s\"} %" PRIu64 "\n",
                    r->tenant, r->id, r->matched);
        sbuf_printf(&o, "parley_route_unroutable_total{tenant=\"%s\",route=\"%s\"} %" PRIu64 "\n",
                    r->tenant, r->id, r->missed);
    }
    uint64_t min = hk_router_min_pos(h);
    sbuf_printf(&o, "parley_route_lag_entries %" PRIu64 "\n",
                min == HK_POS_UNSET || min > h->head ? 0 : h->head - min);
    sbuf_printf(&o, "parley_route_deliveries_created_total %" PRIu64 "\n", h->deliveries_created);
    sbuf_printf(&o, "parley_route_deliveries_deduplicated_total %" PRIu64 "\n", h->deduplicated);
    sbuf_printf(&o, "parley_route_events_missed_total %" PRIu64 "\n", h->events_missed);
    sbuf_printf(&o, "parley_route_publishes_refused_total %" PRIu64 "\n", h->publishes_refused);
    sbuf_printf(&o, "parley_webhook_store_errors_total %" PRIu64 "\n", h->store_errors);
    h->stats_ms = now;
    if (o.oom) {
        sbuf_release(&o);
        return;
    }
    pthread_mutex_lock(&h->stats_mu);
    sbuf tmp = h->stats;
    h->stats = o;
    pthread_mutex_unlock(&h->stats_mu);
    sbuf_release(&tmp);
}
