/* The webhooks.* and routes.* API methods: endpoints and routes created,
 * changed and deleted at run time (kept in hooks.db; those of the
 * configuration file are read-only here), endpoint health, the attempt log,
 * replay and recovery of failed deliveries. Every method runs under the
 * service's lock, on the caller's thread. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hooks/hooks_int.h"
#include "obs/log.h"
#include "util/clock.h"
#include "util/mem.h"

#define RECOVER_MAX 10000
#define ATTEMPTS_PAGE 20
#define ATTEMPTS_PAGE_MAX 100
#define STR_(x) #x
#define STR(x) STR_(x)
#define RECOVER_SHOWN 20
#define ROTATE_DEFAULT_MS (24LL * 3600 * 1000)

typedef struct call {
    hooks *h;
    const char *tenant;
    const json_t *p;
    sbuf *out;
    char *why;
    size_t whylen;
    int64_t now;
} call;

static int fail(call *c, int st, const char *fmt, const char *arg)
{
    snprintf(c->why, c->whylen, fmt, arg ? arg : "");
    return st;
}

static const char *str_param(const call *c, const char *k)
{
    return json_string_value(json_object_get(c->p, k));
}

static hk_endpoint *endpoint_param(call *c, int *st)
{
    const char *id = str_param(c, "id");
    hk_endpoint *ep = id ? hk_endpoint_find(c->h, c->tenant, id) : NULL;
    *st = !id   ? fail(c, PL_EINVAL, "id: expected the webhook's id", NULL)
          : !ep ? fail(c, PL_ENOTFOUND, "no webhook '%.64s' in this tenant", id)
                : PL_OK;
    return ep;
}

static void health_json(const hk_endpoint *ep, sbuf *o)
{
    const endpoint_health *hl = &ep->health;
    sbuf_puts(o, "{\"id\":");
    sbuf_json_str(o, ep->def.id, strlen(ep->def.id));
    sbuf_printf(o,
                ",\"state\":\"%s\",\"enabled\":%s,\"failing_since\":%" PRId64
                ",\"disable_at\":%" PRId64 ",\"last_success\":%" PRId64 ",\"last_failure\":%" PRId64
                ",\"pending\":%zu,\"in_flight\":%zu,\"reason\":",
                health_state_name(hl->state), ep->def.enabled ? "true" : "false", hl->failing_since,
                hl->disable_at, hl->last_success, hl->last_failure, ep->pending, ep->in_flight);
    if (hl->state == HEALTH_DISABLED)
        sbuf_json_str(o, hl->reason, strlen(hl->reason));
    else
        sbuf_puts(o, "null");
}

static void endpoint_json(const hk_endpoint *ep, bool secrets, sbuf *o)
{
    hk_webhook_to_json(&ep->def, secrets, o);
    o->len--; /* reopen the object */
    sbuf_printf(o, ",\"source\":\"%s\",\"health\":", ep->from_api ? "api" : "config");
    health_json(ep, o);
    sbuf_puts(o, "}}");
}

static int w_list(call *c)
{
    sbuf_puts(c->out, "{\"webhooks\":[");
    int n = 0;
    for (size_t i = 0; i < c->h->neps; i++) {
        const hk_endpoint *ep = c->h->eps[i];
        if (strcmp(ep->def.tenant, c->tenant)) continue;
        if (n++) sbuf_putc(c->out, ',');
        endpoint_json(ep, false, c->out);
    }
    sbuf_puts(c->out, "]}");
    return PL_OK;
}

/* Stores an API endpoint's whole definition, secrets included. */
static int store_endpoint(call *c, const cfg_webhook *w)
{
    sbuf s;
    sbuf_init(&s);
    int st = hk_webhook_to_json(w, true, &s);
    if (st == PL_OK) {
        sbuf_putc(&s, '\0');
        st = s.oom ? PL_ENOMEM
                   : hstore_spec_put(c->h->store, HSTORE_ENDPOINT, c->tenant, w->id, s.data);
    }
    sbuf_release(&s);
    return st;
}

static int w_create(call *c)
{
    cfg_webhook w;
    hk_endpoint *ep = NULL;
    int st = hk_webhook_from_json(c->p, c->tenant, &w, c->why, c->whylen);
    if (st != PL_OK) return st;
    if (hk_endpoint_find(c->h, c->tenant, w.id))
        st = fail(c, PL_ECONFLICT, "a webhook '%.64s' exists in this tenant", w.id);
    if (st == PL_OK) st = hk_endpoint_new(c->h, &w, true, &ep, c->why, c->whylen);
    hk_webhook_release(&w);
    if (st == PL_OK) st = store_endpoint(c, &ep->def);
    if (st == PL_OK) {
        hk_endpoint **n = pl_realloc(c->h->eps, (c->h->neps + 1) * sizeof(*n));
        if (!n) st = PL_ENOMEM;
        if (n) c->h->eps = n;
    }
    if (st != PL_OK) {
        hk_endpoint_free(ep);
        return st;
    }
    c->h->eps[c->h->neps++] = ep;
    /* The one answer that shows the secrets whole: the caller needs them. */
    endpoint_json(ep, true, c->out);
    return PL_OK;
}

/* Moves what a rebuilt endpoint defines into ep, keeping its queue,
 * health and counters. */
static void swap_definition(hk_endpoint *ep, hk_endpoint *fresh)
{
    cfg_webhook def = ep->def;
    sign_key **keys = ep->keys;
    retry_policy pol = ep->policy;
    ep->def = fresh->def;
    ep->keys = fresh->keys;
    ep->policy = fresh->policy;
    fresh->def = def;
    fresh->keys = keys;
    fresh->policy = pol;
}

/* Re-enables an endpoint its failures (or a 410) disabled. */
static void reenable(call *c, hk_endpoint *ep)
{
    if (ep->health.state != HEALTH_DISABLED) return;
    endpoint_health_init(&ep->health);
    hstore_health_put(c->h->store, ep->def.tenant, ep->def.id, &ep->health);
    hk_op_event(c->h, ep, HK_EV_ENABLED, "re-enabled through the API");
}

/* Rebuilds an API endpoint from its stored definition with the members of
 * changes replacing its own, stores it and swaps it in. */
static int rebuild(call *c, hk_endpoint *ep, const json_t *changes)
{
    hk_endpoint *fresh = NULL;
    sbuf s;
    sbuf_init(&s);
    hk_webhook_to_json(&ep->def, true, &s);
    json_t *merged = s.oom ? NULL : json_loadb(s.data, s.len, 0, NULL);
    sbuf_release(&s);
    if (!merged) return PL_ENOMEM;
    json_object_update(merged, (json_t *)changes);
    cfg_webhook w;
    int st = hk_webhook_from_json(merged, c->tenant, &w, c->why, c->whylen);
    json_decref(merged);
    if (st != PL_OK) return st;
    st = hk_endpoint_new(c->h, &w, true, &fresh, c->why, c->whylen);
    hk_webhook_release(&w);
    if (st == PL_OK) st = store_endpoint(c, &fresh->def);
    if (st == PL_OK) swap_definition(ep, fresh);
    hk_endpoint_free(fresh);
    return st;
}

static int w_update(call *c)
{
    int st;
    hk_endpoint *ep = endpoint_param(c, &st);
    if (!ep) return st;
    json_t *en = json_object_get(c->p, "enabled");
    if (!ep->from_api) {
        if (json_object_size(c->p) != 2 || !json_is_true(en))
            return fail(c, PL_ECONFLICT,
                        "webhook '%.64s' is defined in the configuration file: only "
                        "{\"enabled\": true} (re-enabling it after it was disabled) applies",
                        ep->def.id);
    } else {
        st = rebuild(c, ep, c->p);
        if (st != PL_OK) return st;
    }
    if (json_is_true(en)) reenable(c, ep);
    endpoint_json(ep, false, c->out);
    return PL_OK;
}

static int w_delete(call *c)
{
    int st;
    hk_endpoint *ep = endpoint_param(c, &st);
    if (!ep) return st;
    if (!ep->from_api)
        return fail(c, PL_ECONFLICT, "webhook '%.64s' is defined in the configuration file",
                    ep->def.id);
    for (size_t i = 0; i < c->h->nroutes; i++) {
        const hk_route *r = c->h->routes[i];
        if (r->webhook && !strcmp(r->tenant, c->tenant) && !strcmp(r->webhook, ep->def.id))
            return fail(c, PL_ECONFLICT, "route '%.64s' sends to this webhook: delete it first",
                        r->id);
    }
    hk_endpoint **gone = pl_realloc(c->h->gone, (c->h->ngone + 1) * sizeof(*gone));
    if (!gone) return PL_ENOMEM;
    c->h->gone = gone;
    st = hstore_spec_delete(c->h->store, HSTORE_ENDPOINT, c->tenant, ep->def.id);
    if (st != PL_OK) return st;
    hstore_health_delete(c->h->store, c->tenant, ep->def.id);
    ep->deleted = true;
    hk_endpoint_disable(c->h, ep, "endpoint deleted", c->now);
    size_t i = 0;
    while (c->h->eps[i] != ep)
        i++;
    c->h->eps[i] = c->h->eps[--c->h->neps];
    c->h->gone[c->h->ngone++] = ep;
    sbuf_printf(c->out, "{\"deleted\":true}");
    return PL_OK;
}

static int w_health(call *c)
{
    int st;
    hk_endpoint *ep = endpoint_param(c, &st);
    if (!ep) return st;
    uint64_t n[4] = {0, 0, 0, 0};
    st = hstore_endpoint_counts(c->h->store, c->tenant, ep->def.id, n);
    if (st != PL_OK) return st;
    health_json(ep, c->out);
    sbuf_printf(c->out,
                ",\"deliveries\":{\"pending\":%" PRIu64 ",\"delivered\":%" PRIu64
                ",\"dead\":%" PRIu64 ",\"aborted\":%" PRIu64 "}}",
                n[HSTORE_PENDING], n[HSTORE_DELIVERED], n[HSTORE_DEAD], n[HSTORE_ABORTED]);
    return PL_OK;
}

static int w_attempts(call *c)
{
    const char *id = str_param(c, "delivery");
    json_t *after = json_object_get(c->p, "after"), *limit = json_object_get(c->p, "limit");
    if (!id) return fail(c, PL_EINVAL, "delivery: expected a delivery id", NULL);
    if ((after && (!json_is_integer(after) || json_integer_value(after) < 0)) ||
        (limit && (!json_is_integer(limit) || json_integer_value(limit) < 1 ||
                   json_integer_value(limit) > ATTEMPTS_PAGE_MAX)))
        return fail(c, PL_EINVAL,
                    "after: expected an attempt number >= 0; limit: 1 to " STR(ATTEMPTS_PAGE_MAX),
                    NULL);
    int st = hstore_attempts_json(
        c->h->store, c->tenant, id, after ? (uint32_t)json_integer_value(after) : 0,
        limit ? (uint32_t)json_integer_value(limit) : ATTEMPTS_PAGE, c->out);
    return st == PL_ENOTFOUND ? fail(c, st, "no delivery '%.128s' in this tenant", id) : st;
}

static int enqueue_stored(void *ctx, const hstore_delivery *d)
{
    hooks *h = ctx;
    hk_endpoint *ep = hk_endpoint_find(h, d->tenant, d->endpoint);
    return ep ? hk_enqueue(h, ep, d) : PL_OK;
}

/* Makes one failed delivery pending again and queues it. */
static int requeue(call *c, const char *id)
{
    int st = hstore_delivery_requeue(c->h->store, c->tenant, id, c->now);
    if (st == PL_OK) st = hstore_delivery_get(c->h->store, c->tenant, id, enqueue_stored, c->h);
    return st;
}

static int w_replay(call *c)
{
    const char *id = str_param(c, "delivery");
    if (!id) return fail(c, PL_EINVAL, "delivery: expected a delivery id", NULL);
    int st = requeue(c, id);
    if (st == PL_ENOTFOUND) return fail(c, st, "no delivery '%.128s' in this tenant", id);
    if (st == PL_ECONFLICT)
        return fail(c, st,
                    "delivery '%.128s' is pending or delivered: only a dead or aborted "
                    "one is replayed",
                    id);
    if (st == PL_OK) sbuf_puts(c->out, "{\"queued\":true}");
    return st;
}

typedef struct found {
    char **ids;
    size_t n;
} found;

static int collect(void *ctx, const hstore_delivery *d)
{
    found *f = ctx;
    return (f->ids[f->n++] = pl_strdup(d->id)) ? PL_OK : PL_ENOMEM;
}

/* Whether a stored delivery's envelope matches a rule (recover's filter). */
typedef struct filter_ctx {
    const rule_match *m;
    rule_event *ev;
    int matched;
} filter_ctx;

static int filter_one(void *ctx, const hstore_delivery *d)
{
    filter_ctx *fc = ctx;
    json_t *env = json_loadb(d->body, d->body_len, 0, NULL);
    const char *ch = json_string_value(json_object_get(env, "channel"));
    const char *type = json_string_value(json_object_get(env, "type"));
    char *data = env ? json_dumps(json_object_get(env, "data"), JSON_ENCODE_ANY) : NULL;
    char *hdrs = env ? json_dumps(json_object_get(env, "headers"), 0) : NULL;
    rule_event_fields f = {.tenant = d->tenant,
                           .channel = ch ? ch : "",
                           .channel_len = ch ? strlen(ch) : 0,
                           .type = type,
                           .type_len = type ? strlen(type) : 0,
                           .data = data ? data : "null",
                           .data_len = data ? strlen(data) : 4,
                           .headers = hdrs,
                           .headers_len = hdrs ? strlen(hdrs) : 0};
    rule_event_prepare(fc->ev, &f);
    fc->matched = rule_match_eval(fc->m, fc->ev);
    free(data);
    free(hdrs);
    json_decref(env);
    return PL_OK;
}

/* Keeps the ids of f whose deliveries match filter (a rule's match). */
static int filter_ids(call *c, const json_t *filter, found *f)
{
    rule_error re = {{0}, {0}};
    filter_ctx fc = {NULL, rule_event_new(), 0};
    int st = fc.ev ? rule_match_compile(filter, (rule_match **)&fc.m, &re) : PL_ENOMEM;
    if (st == PL_EINVAL) snprintf(c->why, c->whylen, "filter%s: %s", re.path + 5, re.reason);
    size_t kept = 0, i = 0;
    for (; st == PL_OK && i < f->n; i++) {
        fc.matched = 0;
        st = hstore_delivery_get(c->h->store, c->tenant, f->ids[i], filter_one, &fc);
        if (fc.matched || st != PL_OK)
            f->ids[kept++] = f->ids[i];
        else
            pl_free(f->ids[i]);
    }
    for (; i < f->n; i++) /* not looked at (an error): kept for the caller to free */
        f->ids[kept++] = f->ids[i];
    f->n = kept;
    rule_match_free((rule_match *)fc.m);
    rule_event_free(fc.ev);
    return st;
}

static int w_recover(call *c)
{
    int st;
    json_t *since = json_object_get(c->p, "since"), *until = json_object_get(c->p, "until");
    json_t *dry = json_object_get(c->p, "dry_run");
    json_t *filter = json_object_get(c->p, "filter");
    const char *eid = str_param(c, "endpoint");
    hk_endpoint *ep = eid ? hk_endpoint_find(c->h, c->tenant, eid) : NULL;
    if (!eid) return fail(c, PL_EINVAL, "endpoint: expected the webhook's id", NULL);
    if (!ep) return fail(c, PL_ENOTFOUND, "no webhook '%.64s' in this tenant", eid);
    if (!json_is_integer(since) || (until && !json_is_integer(until)) ||
        (dry && !json_is_boolean(dry)) || (filter && !json_is_object(filter)))
        return fail(c, PL_EINVAL,
                    "since, until: expected unix times in milliseconds; dry_run: a boolean; "
                    "filter: a match object {channel, type, where}",
                    NULL);
    found f = {pl_calloc(RECOVER_MAX, sizeof(char *)), 0};
    if (!f.ids) return PL_ENOMEM;
    st = hstore_failed_in_window(c->h->store, c->tenant, eid, json_integer_value(since),
                                 until ? json_integer_value(until) : 0, RECOVER_MAX, collect, &f);
    if (st == PL_OK && filter) st = filter_ids(c, filter, &f);
    size_t queued = 0;
    for (size_t i = 0; st == PL_OK && !json_is_true(dry) && i < f.n; i++)
        if (requeue(c, f.ids[i]) == PL_OK) queued++;
    if (st == PL_OK) {
        sbuf_printf(c->out, "{\"count\":%zu,\"queued\":%zu,\"dry_run\":%s,\"ids\":[", f.n, queued,
                    json_is_true(dry) ? "true" : "false");
        for (size_t i = 0; i < f.n && i < RECOVER_SHOWN; i++) {
            if (i) sbuf_putc(c->out, ',');
            sbuf_json_str(c->out, f.ids[i], strlen(f.ids[i]));
        }
        sbuf_puts(c->out, "]}");
    }
    for (size_t i = 0; i < f.n; i++)
        pl_free(f.ids[i]);
    pl_free(f.ids);
    return st;
}

/* A new secret signs first; the others sign beside it until they expire,
 * at most expire_previous_in from now, so receivers can switch at leisure. */
static int w_rotate(call *c)
{
    int st;
    hk_endpoint *ep = endpoint_param(c, &st);
    if (!ep) return st;
    if (!ep->from_api)
        return fail(c, PL_ECONFLICT,
                    "webhook '%.64s' is defined in the configuration file: list the new secret "
                    "there, before the old one",
                    ep->def.id);
    const char *secret = str_param(c, "secret");
    json_t *in = json_object_get(c->p, "expire_previous_in");
    int64_t keep = in ? (json_is_string(in) ? clock_parse_duration(json_string_value(in)) : -1)
                      : ROTATE_DEFAULT_MS;
    if (keep < 0 || (json_object_get(c->p, "secret") && !secret))
        return fail(c, PL_EINVAL,
                    "secret: expected a string (absent: a new one is made); expire_previous_in: "
                    "a duration such as \"24h\"",
                    NULL);
    json_t *list = json_array(), *first = json_object();
    if (secret) json_object_set_new(first, "secret", json_string(secret));
    json_array_append_new(list, first);
    for (size_t i = 0; i < ep->def.n_secrets && json_array_size(list) < CFG_WEBHOOK_MAX_SECRETS;
         i++) {
        int64_t exp = ep->def.secret_expires_ms[i];
        if (exp && exp <= c->now) continue; /* already expired: dropped */
        if (!exp || exp > c->now + keep) exp = c->now + keep;
        json_array_append_new(
            list, json_pack("{s:s,s:I}", "secret", ep->def.secrets[i], "expires", (json_int_t)exp));
    }
    json_t *changes = json_pack("{s:o}", "secret", list);
    st = changes ? rebuild(c, ep, changes) : PL_ENOMEM;
    json_decref(changes);
    if (st != PL_OK) return st;
    sbuf_puts(c->out, "{\"secret\":");
    sbuf_json_str(c->out, ep->def.secrets[0], strlen(ep->def.secrets[0]));
    sbuf_printf(c->out, ",\"previous_expire_at\":%" PRId64 "}", c->now + keep);
    return PL_OK;
}

/* ---- routes ----------------------------------------------------------------- */

static void route_json(const hk_route *r, sbuf *o)
{
    sbuf_puts(o, "{\"id\":");
    sbuf_json_str(o, r->id, strlen(r->id));
    sbuf_printf(o, ",\"match\":%s,\"action\":{\"%s\":", r->match_json,
                r->webhook ? "webhook" : "publish");
    const char *a = r->webhook ? r->webhook : r->publish;
    sbuf_json_str(o, a, strlen(a));
    sbuf_printf(
        o, "},\"enabled\":%s,\"source\":\"%s\",\"matched\":%" PRIu64 ",\"unroutable\":%" PRIu64 "}",
        r->enabled ? "true" : "false", r->from_api ? "api" : "config", r->matched, r->missed);
}

static int r_list(call *c)
{
    sbuf_puts(c->out, "{\"routes\":[");
    int n = 0;
    for (size_t i = 0; i < c->h->nroutes; i++) {
        const hk_route *r = c->h->routes[i];
        if (strcmp(r->tenant, c->tenant)) continue;
        if (n++) sbuf_putc(c->out, ',');
        route_json(r, c->out);
    }
    sbuf_puts(c->out, "]}");
    return PL_OK;
}

static int route_spec_store(call *c, const hk_route *r)
{
    json_t *o = json_object(), *a = json_object();
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "match", json_loads(r->match_json, 0, NULL));
    json_object_set_new(a, r->webhook ? "webhook" : "publish",
                        json_string(r->webhook ? r->webhook : r->publish));
    json_object_set_new(o, "action", a);
    json_object_set_new(o, "enabled", json_boolean(r->enabled));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int st = s ? hstore_spec_put(c->h->store, HSTORE_ROUTE, c->tenant, r->id, s) : PL_ENOMEM;
    free(s);
    return st;
}

/* A route's webhook must be an endpoint of the same tenant. */
static int check_action(call *c, const hk_route *r)
{
    if (r->webhook && !hk_endpoint_find(c->h, c->tenant, r->webhook))
        return fail(c, PL_EINVAL, "action.webhook: no webhook '%.64s' in this tenant", r->webhook);
    return PL_OK;
}

/* Where a new route starts: after the newest log entry committed, as the
 * engine counts it when logging is turned on (it may have been off), so
 * every pub committed after routes.create answers is evaluated, and none
 * committed before. */
static uint64_t start_pos(hooks *h)
{
    uint64_t at = engine_log_events(h->env.eng, 1);
    h->log_on = true;
    return at;
}

static int r_put(call *c, bool create)
{
    const char *id = str_param(c, "id");
    hk_route *old = id ? hk_route_find(c->h, c->tenant, id) : NULL, *r = NULL;
    json_t *spec = (json_t *)c->p;
    if (!create) {
        if (!id) return fail(c, PL_EINVAL, "id: expected the route's id", NULL);
        if (!old) return fail(c, PL_ENOTFOUND, "no route '%.64s' in this tenant", id);
        if (!old->from_api)
            return fail(c, PL_ECONFLICT, "route '%.64s' is defined in the configuration file", id);
    } else if (old) {
        return fail(c, PL_ECONFLICT, "a route '%.64s' exists in this tenant", id);
    }
    json_t *merged = NULL;
    if (old) {
        merged = json_pack("{s:s,s:o,s:{s:s},s:b}", "id", old->id, "match",
                           json_loads(old->match_json, 0, NULL), "action",
                           old->webhook ? "webhook" : "publish",
                           old->webhook ? old->webhook : old->publish, "enabled", old->enabled);
        if (!merged) return PL_ENOMEM;
        json_object_update(merged, spec);
        spec = merged;
    }
    int st = hk_route_from_json(spec, c->tenant, &r, c->why, c->whylen);
    json_decref(merged);
    if (st == PL_OK) st = check_action(c, r);
    if (st == PL_OK) st = route_spec_store(c, r);
    if (st != PL_OK) {
        hk_route_free(r);
        return st;
    }
    r->from_api = true;
    if (old) {
        r->pos = old->pos; /* the log evaluated so far stays evaluated */
        size_t i = 0;
        while (c->h->routes[i] != old)
            i++;
        c->h->routes[i] = r;
        hk_route_free(old);
    } else {
        hk_route **n = pl_realloc(c->h->routes, (c->h->nroutes + 1) * sizeof(*n));
        if (!n) {
            hk_route_free(r);
            return PL_ENOMEM;
        }
        c->h->routes = n;
        r->pos = start_pos(c->h);
        /* Stored now: a crash before the route's first batch must not move
         * its start to a later head. */
        hstore_position at = {r->tenant, r->id, r->pos};
        if (hstore_route_commit(c->h->store, NULL, 0, NULL, &at, 1)) c->h->store_errors++;
        c->h->routes[c->h->nroutes++] = r;
    }
    route_json(r, c->out);
    return PL_OK;
}

static int r_delete(call *c)
{
    const char *id = str_param(c, "id");
    hk_route *r = id ? hk_route_find(c->h, c->tenant, id) : NULL;
    if (!id) return fail(c, PL_EINVAL, "id: expected the route's id", NULL);
    if (!r) return fail(c, PL_ENOTFOUND, "no route '%.64s' in this tenant", id);
    if (!r->from_api)
        return fail(c, PL_ECONFLICT, "route '%.64s' is defined in the configuration file", id);
    int st = hstore_spec_delete(c->h->store, HSTORE_ROUTE, c->tenant, id);
    if (st == PL_OK) st = hstore_position_delete(c->h->store, c->tenant, id);
    if (st != PL_OK) return st;
    size_t i = 0;
    while (c->h->routes[i] != r)
        i++;
    c->h->routes[i] = c->h->routes[--c->h->nroutes];
    hk_route_free(r);
    sbuf_puts(c->out, "{\"deleted\":true}");
    return PL_OK;
}

int hooks_api(hooks *h, const char *kind, const char *method, const char *tenant,
              const json_t *params, sbuf *out, char *why, size_t whylen)
{
    call c = {h, tenant, params, out, why, whylen, clock_wall_ms()};
    int st = PL_EINVAL;
    why[0] = '\0';
    pthread_mutex_lock(&h->mu);
    /* What the store answers includes every attempt that has ended. */
    hk_flush_attempts(h, c.now, true);
    if (!strcmp(kind, "webhooks")) {
        static const struct {
            const char *name;
            int (*fn)(call *);
        } m[] = {{"list", w_list},     {"create", w_create},   {"update", w_update},
                 {"delete", w_delete}, {"health", w_health},   {"attempts", w_attempts},
                 {"replay", w_replay}, {"recover", w_recover}, {"rotate_secret", w_rotate}};
        for (size_t i = 0; i < sizeof(m) / sizeof(*m); i++)
            if (!strcmp(method, m[i].name)) st = m[i].fn(&c);
    } else if (!strcmp(method, "list")) {
        st = r_list(&c);
    } else if (!strcmp(method, "create") || !strcmp(method, "update")) {
        st = r_put(&c, !strcmp(method, "create"));
    } else if (!strcmp(method, "delete")) {
        st = r_delete(&c);
    }
    if (st == PL_OK && strcmp(kind, "webhooks")) {
        hk_sys_update(h);
        hk_router_log_on(h);
    }
    pthread_mutex_unlock(&h->mu);
    hooks_poke(h); /* dispatch what changed now */
    if (st == PL_ENOMEM) snprintf(why, whylen, "out of memory");
    if (st == PL_EIO) snprintf(why, whylen, "hooks.db could not be written");
    return st;
}

size_t hooks_requeue(hooks *h, const char *tenant, char *const *ids, size_t n)
{
    char why[8];
    call c = {h, tenant, NULL, NULL, why, sizeof(why), clock_wall_ms()};
    size_t queued = 0;
    pthread_mutex_lock(&h->mu);
    hk_flush_attempts(h, c.now, true);
    for (size_t i = 0; i < n; i++)
        queued += requeue(&c, ids[i]) == PL_OK;
    pthread_mutex_unlock(&h->mu);
    hooks_poke(h);
    return queued;
}
