/* Endpoints and routes as the service holds them: built from configuration
 * entries or from API JSON (validated with the same bounds as the
 * configuration loader), written back as JSON for the API and the store. */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "hooks/glob.h"
#include "hooks/hooks_int.h"
#include "util/clock.h"
#include "util/jpath.h"
#include "util/mem.h"

#define DEFAULT_TIMEOUT_MS 15000
#define DEFAULT_CONNECT_MS 5000
#define DEFAULT_IN_FLIGHT 16

void hk_webhook_release(cfg_webhook *w)
{
    pl_free(w->id);
    pl_free(w->tenant);
    pl_free(w->url);
    for (size_t i = 0; i < w->n_secrets; i++)
        pl_free(w->secrets[i]);
    pl_free(w->secrets);
    pl_free(w->secret_expires_ms);
    pl_free(w->retry_schedule);
    pl_free(w->order_path);
    memset(w, 0, sizeof(*w));
}

static int copy_webhook(const cfg_webhook *s, cfg_webhook *d)
{
    *d = *s;
    d->id = pl_strdup(s->id);
    d->tenant = pl_strdup(s->tenant);
    d->url = pl_strdup(s->url);
    d->order_path = s->order_path ? pl_strdup(s->order_path) : NULL;
    d->secrets = pl_calloc(s->n_secrets ? s->n_secrets : 1, sizeof(char *));
    d->secret_expires_ms = pl_calloc(s->n_secrets ? s->n_secrets : 1, sizeof(int64_t));
    d->retry_schedule =
        s->n_retry_schedule ? pl_malloc(s->n_retry_schedule * sizeof(int64_t)) : NULL;
    int ok = d->id && d->tenant && d->url && d->secrets && d->secret_expires_ms &&
             (!s->order_path || d->order_path) && (!s->n_retry_schedule || d->retry_schedule);
    d->n_secrets = 0;
    for (size_t i = 0; ok && i < s->n_secrets; i++) {
        ok = (d->secrets[i] = pl_strdup(s->secrets[i])) != NULL;
        d->secret_expires_ms[i] = s->secret_expires_ms ? s->secret_expires_ms[i] : 0;
        d->n_secrets += ok;
    }
    if (ok && s->n_retry_schedule)
        memcpy(d->retry_schedule, s->retry_schedule, s->n_retry_schedule * sizeof(int64_t));
    if (!ok) {
        if (!d->retry_schedule) d->n_retry_schedule = 0;
        hk_webhook_release(d);
        return PL_ENOMEM;
    }
    return PL_OK;
}

static int build_policy(hk_endpoint *ep, char *why, size_t whylen)
{
    const cfg_webhook *w = &ep->def;
    if (w->n_retry_schedule) {
        if (retry_policy_set(&ep->policy, w->retry_schedule, w->n_retry_schedule,
                             RETRY_JITTER_PCT) != PL_OK) {
            snprintf(why, whylen, "retry_schedule: expected 1 to %d durations >= 0",
                     RETRY_MAX_ATTEMPTS);
            return PL_EINVAL;
        }
    } else {
        retry_policy_default(&ep->policy);
    }
    if (w->max_attempts && w->max_attempts < ep->policy.n_attempts)
        ep->policy.n_attempts = w->max_attempts;
    return PL_OK;
}

int hk_endpoint_new(hooks *h, const cfg_webhook *def, bool from_api, hk_endpoint **out, char *why,
                    size_t whylen)
{
    hk_endpoint *ep = pl_calloc(1, sizeof(*ep));
    if (!ep || copy_webhook(def, &ep->def) != PL_OK) {
        pl_free(ep);
        snprintf(why, whylen, "out of memory");
        return PL_ENOMEM;
    }
    ep->owner = h;
    ep->from_api = from_api;
    if (!ep->def.timeout_ms) ep->def.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!ep->def.connect_timeout_ms) ep->def.connect_timeout_ms = DEFAULT_CONNECT_MS;
    if (!ep->def.max_in_flight) ep->def.max_in_flight = DEFAULT_IN_FLIGHT;
    endpoint_health_init(&ep->health);
    int st = build_policy(ep, why, whylen);
    ep->keys = pl_calloc(ep->def.n_secrets ? ep->def.n_secrets : 1, sizeof(*ep->keys));
    if (st == PL_OK && !ep->keys) st = PL_ENOMEM;
    for (size_t i = 0; st == PL_OK && i < ep->def.n_secrets; i++) {
        const char *s = ep->def.secrets[i];
        enum sign_key_err e = sign_key_parse(s, strlen(s), &ep->keys[i]);
        if (e == SIGN_KEY_OK && !strncmp(s, "whpk_", 5)) {
            snprintf(why, whylen,
                     "secret %zu: a whpk_ public key cannot sign: give whsec_ or whsk_", i + 1);
            st = PL_EINVAL;
        } else if (e != SIGN_KEY_OK) {
            snprintf(why, whylen, "secret %zu: %s", i + 1, sign_key_errstr(e));
            st = e == SIGN_KEY_NOMEM ? PL_ENOMEM : PL_EINVAL;
        }
    }
    if (st != PL_OK) {
        hk_endpoint_free(ep);
        return st;
    }
    *out = ep;
    return PL_OK;
}

void hk_endpoint_free(hk_endpoint *ep)
{
    if (!ep) return;
    for (hk_dlv *d = ep->head, *next; d; d = next) {
        next = d->next;
        hk_dlv_free(d);
    }
    for (size_t i = 0; ep->keys && i < ep->def.n_secrets; i++)
        sign_key_free(ep->keys[i]);
    pl_free(ep->keys);
    hk_webhook_release(&ep->def);
    pl_free(ep);
}

/* ---- JSON (the API's endpoint spec) ------------------------------------- */

/* A fresh whsec_ secret: 24 random bytes. */
static char *new_secret(void)
{
    unsigned char raw[24];
    char *s = pl_malloc(6 + 33);
    if (!s || RAND_bytes(raw, sizeof(raw)) != 1) {
        pl_free(s);
        return NULL;
    }
    memcpy(s, "whsec_", 6);
    EVP_EncodeBlock((unsigned char *)s + 6, raw, sizeof(raw));
    return s;
}

static int u32_member(const json_t *spec, const char *k, uint32_t lo, uint32_t hi, uint32_t *out,
                      char *why, size_t whylen)
{
    json_t *v = json_object_get(spec, k);
    if (!v) return PL_OK;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(why, whylen, "%s: expected an integer from %u to %u", k, lo, hi);
        return PL_EINVAL;
    }
    *out = (uint32_t)json_integer_value(v);
    return PL_OK;
}

static int dur_member(const json_t *spec, const char *k, int64_t lo, int64_t hi, int64_t *out,
                      char *why, size_t whylen)
{
    json_t *v = json_object_get(spec, k);
    if (!v) return PL_OK;
    int64_t d = json_is_string(v) ? clock_parse_duration(json_string_value(v)) : -1;
    if (d < lo || d > hi) {
        snprintf(why, whylen, "%s: expected a duration such as \"15s\" from %lldms to %lldms", k,
                 (long long)lo, (long long)hi);
        return PL_EINVAL;
    }
    *out = d;
    return PL_OK;
}

static int secrets_member(const json_t *spec, cfg_webhook *w, char *why, size_t whylen)
{
    json_t *v = json_object_get(spec, "secret");
    size_t n = !v ? 1 : json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (!n || n > CFG_WEBHOOK_MAX_SECRETS) {
        snprintf(why, whylen, "secret: expected a string or a list of 1 to %d strings",
                 CFG_WEBHOOK_MAX_SECRETS);
        return PL_EINVAL;
    }
    w->secrets = pl_calloc(n, sizeof(char *));
    w->secret_expires_ms = pl_calloc(n, sizeof(int64_t));
    if (!w->secrets || !w->secret_expires_ms) return PL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        json_t *exp = json_is_object(s) ? json_object_get(s, "expires") : NULL;
        if (json_is_object(s)) s = json_object_get(s, "secret");
        if ((s && !json_is_string(s)) || (exp && !json_is_null(exp) && !json_is_integer(exp))) {
            snprintf(why, whylen,
                     "secret[%zu]: expected a string or {\"secret\": string, \"expires\": unix ms}",
                     i);
            return PL_EINVAL;
        }
        const char *bad = s ? config_webhook_secret_error(json_string_value(s)) : NULL;
        if (bad) {
            snprintf(why, whylen, "secret[%zu]: %s", i, bad);
            return PL_EINVAL;
        }
        w->secrets[i] = s ? pl_strdup(json_string_value(s)) : new_secret();
        if (!w->secrets[i]) return PL_ENOMEM;
        w->secret_expires_ms[i] = json_is_integer(exp) ? json_integer_value(exp) : 0;
        w->n_secrets++;
    }
    return PL_OK;
}

static int schedule_member(const json_t *spec, cfg_webhook *w, char *why, size_t whylen)
{
    json_t *v = json_object_get(spec, "retry_schedule");
    if (!v) return PL_OK;
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (!n || n > RETRY_MAX_ATTEMPTS) {
        snprintf(why, whylen, "retry_schedule: expected a list of 1 to %d durations",
                 RETRY_MAX_ATTEMPTS);
        return PL_EINVAL;
    }
    w->retry_schedule = pl_calloc(n, sizeof(int64_t));
    if (!w->retry_schedule) return PL_ENOMEM;
    w->n_retry_schedule = n;
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(v, i);
        int64_t ms = json_is_string(d) ? clock_parse_duration(json_string_value(d)) : -1;
        if (ms < 0) {
            snprintf(why, whylen, "retry_schedule[%zu]: expected a duration such as \"5m\"", i);
            return PL_EINVAL;
        }
        w->retry_schedule[i] = ms;
    }
    return PL_OK;
}

static int ordering_member(const json_t *spec, cfg_webhook *w, char *why, size_t whylen)
{
    json_t *v = json_object_get(spec, "ordering");
    if (!v) return PL_OK;
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "none")) return PL_OK;
    if (s && !strcmp(s, "channel")) {
        w->ordering = CFG_ORDER_CHANNEL;
        return PL_OK;
    }
    int path =
        s && (!strncmp(s, "data.", 5) || !strncmp(s, "headers.", 8)) && !config_order_path_error(s);
    if (!path) {
        snprintf(why, whylen,
                 "ordering: expected \"none\", \"channel\" or a path such as \"data.order_id\"");
        return PL_EINVAL;
    }
    w->ordering = CFG_ORDER_PATH;
    w->order_path = pl_strdup(s);
    return w->order_path ? PL_OK : PL_ENOMEM;
}

static const char *const webhook_keys[] = {"id",
                                           "url",
                                           "secret",
                                           "max_attempts",
                                           "retry_schedule",
                                           "timeout",
                                           "connect_timeout",
                                           "max_in_flight",
                                           "rate",
                                           "ordering",
                                           "enabled"};

static int known_keys(const json_t *spec, const char *const *keys, size_t n, char *why,
                      size_t whylen)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)spec, k, v)
    {
        size_t i = 0;
        while (i < n && strcmp(k, keys[i]))
            i++;
        if (i == n) {
            snprintf(why, whylen, "%.64s: unknown member", k);
            return PL_EINVAL;
        }
    }
    return PL_OK;
}

int hk_webhook_from_json(const json_t *spec, const char *tenant, cfg_webhook *w, char *why,
                         size_t whylen)
{
    memset(w, 0, sizeof(*w));
    w->enabled = true;
    const char *id = json_string_value(json_object_get(spec, "id"));
    const char *url = json_string_value(json_object_get(spec, "url"));
    json_t *en = json_object_get(spec, "enabled");
    int st =
        known_keys(spec, webhook_keys, sizeof(webhook_keys) / sizeof(*webhook_keys), why, whylen);
    if (st == PL_OK && (!id || !config_id_ok(id))) {
        snprintf(why, whylen, "id: expected 1 to %d of A-Z a-z 0-9 _ . -", CFG_ID_MAX);
        st = PL_EINVAL;
    }
    const char *bad_url = url ? config_webhook_url_error(url) : "is missing";
    if (st == PL_OK && bad_url) {
        snprintf(why, whylen, "url %s", bad_url);
        st = PL_EINVAL;
    }
    if (st == PL_OK && en && !json_is_boolean(en)) {
        snprintf(why, whylen, "enabled: expected true or false");
        st = PL_EINVAL;
    }
    if (st == PL_OK) {
        w->enabled = !en || json_is_true(en);
        w->id = pl_strdup(id);
        w->tenant = pl_strdup(tenant);
        w->url = pl_strdup(url);
        st = w->id && w->tenant && w->url ? PL_OK : PL_ENOMEM;
    }
    if (st == PL_OK) st = secrets_member(spec, w, why, whylen);
    if (st == PL_OK) st = schedule_member(spec, w, why, whylen);
    if (st == PL_OK)
        st = u32_member(spec, "max_attempts", 1, RETRY_MAX_ATTEMPTS, &w->max_attempts, why, whylen);
    if (st == PL_OK)
        st = u32_member(spec, "max_in_flight", 1, 1024, &w->max_in_flight, why, whylen);
    if (st == PL_OK) st = u32_member(spec, "rate", 0, 100000, &w->rate, why, whylen);
    if (st == PL_OK) st = dur_member(spec, "timeout", 1000, 300000, &w->timeout_ms, why, whylen);
    if (st == PL_OK)
        st = dur_member(spec, "connect_timeout", 100, 60000, &w->connect_timeout_ms, why, whylen);
    if (st == PL_OK) st = ordering_member(spec, w, why, whylen);
    if (st == PL_OK && w->max_attempts > (w->n_retry_schedule ? w->n_retry_schedule : 10)) {
        snprintf(why, whylen, "max_attempts: %u is more than the retry schedule's %zu attempts",
                 w->max_attempts, w->n_retry_schedule ? w->n_retry_schedule : (size_t)10);
        st = PL_EINVAL;
    }
    if (st == PL_OK && w->connect_timeout_ms && w->timeout_ms &&
        w->connect_timeout_ms > w->timeout_ms) {
        snprintf(why, whylen, "connect_timeout: longer than timeout");
        st = PL_EINVAL;
    }
    if (st != PL_OK) {
        if (st == PL_ENOMEM) snprintf(why, whylen, "out of memory");
        hk_webhook_release(w);
    }
    return st;
}

/* A secret as the API shows it: its prefix and its last 4 characters. */
static void secret_hint(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s);
    const char *us = strchr(s, '_');
    size_t pre = us ? (size_t)(us - s) + 1 : 0;
    snprintf(out, cap, "%.*s...%s", (int)pre, s, n > pre + 8 ? s + n - 4 : "");
}

/* A duration as the configuration writes it: "5m", "2h", "1500ms". */
static json_t *duration(int64_t ms)
{
    char b[32];
    if (ms && ms % 3600000 == 0)
        snprintf(b, sizeof(b), "%lldh", (long long)(ms / 3600000));
    else if (ms && ms % 60000 == 0)
        snprintf(b, sizeof(b), "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(b, sizeof(b), "%llds", (long long)(ms / 1000));
    else
        snprintf(b, sizeof(b), "%lldms", (long long)ms);
    return json_string(b);
}

int hk_webhook_to_json(const cfg_webhook *w, bool show_secrets, sbuf *out)
{
    json_t *o = json_object(), *secrets = json_array(), *sched = json_array();
    char hint[64];
    for (size_t i = 0; i < w->n_secrets; i++) {
        json_t *s = json_object();
        secret_hint(w->secrets[i], hint, sizeof(hint));
        json_object_set_new(s, "secret", json_string(show_secrets ? w->secrets[i] : hint));
        json_object_set_new(s, "expires",
                            w->secret_expires_ms && w->secret_expires_ms[i]
                                ? json_integer(w->secret_expires_ms[i])
                                : json_null());
        json_array_append_new(secrets, s);
    }
    for (size_t i = 0; i < w->n_retry_schedule; i++)
        json_array_append_new(sched, duration(w->retry_schedule[i]));
    json_object_set_new(o, "id", json_string(w->id));
    json_object_set_new(o, "url", json_string(w->url));
    json_object_set_new(o, "secret", secrets);
    if (w->max_attempts) json_object_set_new(o, "max_attempts", json_integer(w->max_attempts));
    if (w->n_retry_schedule)
        json_object_set_new(o, "retry_schedule", sched);
    else
        json_decref(sched);
    if (w->timeout_ms) json_object_set_new(o, "timeout", duration(w->timeout_ms));
    if (w->connect_timeout_ms)
        json_object_set_new(o, "connect_timeout", duration(w->connect_timeout_ms));
    if (w->max_in_flight) json_object_set_new(o, "max_in_flight", json_integer(w->max_in_flight));
    json_object_set_new(o, "rate", json_integer(w->rate));
    json_object_set_new(o, "ordering",
                        json_string(w->ordering == CFG_ORDER_CHANNEL ? "channel"
                                    : w->ordering == CFG_ORDER_PATH  ? w->order_path
                                                                     : "none"));
    json_object_set_new(o, "enabled", json_boolean(w->enabled));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) return PL_ENOMEM;
    sbuf_puts(out, s);
    free(s);
    return out->oom ? PL_ENOMEM : PL_OK;
}

/* ---- routes ---------------------------------------------------------------- */

/* The system channels a match's channel globs name explicitly. */
static unsigned sys_channels(const json_t *m)
{
    static const char *const chans[] = {"$sys:clients", "$sys:presence", "$sys:webhooks"};
    json_t *c = json_object_get(m, "channel");
    unsigned bits = 0;
    for (size_t i = 0; i < (json_is_array(c) ? json_array_size(c) : 1); i++) {
        const char *g = json_string_value(json_is_array(c) ? json_array_get(c, i) : c);
        if (!g || g[0] != '$') continue;
        for (unsigned k = 0; k < 3; k++)
            if (glob_match(g, strlen(g), chans[k], strlen(chans[k]), ':')) bits |= 1u << k;
    }
    return bits;
}

int hk_route_new(const char *tenant, const char *id, const char *match_json, const char *webhook,
                 const char *publish, bool enabled, hk_route **out, rule_error *rerr)
{
    hk_route *r = pl_calloc(1, sizeof(*r));
    json_t *m = json_loads(match_json ? match_json : "{}", JSON_REJECT_DUPLICATES, NULL);
    int st = r && m ? PL_OK : PL_ENOMEM;
    if (r && !m) {
        snprintf(rerr->path, sizeof(rerr->path), "match");
        snprintf(rerr->reason, sizeof(rerr->reason), "not readable JSON");
        st = PL_EINVAL;
    }
    if (st == PL_OK) st = rule_match_compile(m, &r->match, rerr);
    if (st == PL_OK) r->sys = sys_channels(m);
    json_decref(m);
    if (st == PL_OK) {
        r->tenant = pl_strdup(tenant);
        r->id = pl_strdup(id);
        r->match_json = pl_strdup(match_json ? match_json : "{}");
        r->webhook = webhook ? pl_strdup(webhook) : NULL;
        r->publish = publish ? pl_strdup(publish) : NULL;
        r->enabled = enabled;
        r->pos = HK_POS_UNSET;
        if (!r->tenant || !r->id || !r->match_json || (webhook && !r->webhook) ||
            (publish && !r->publish))
            st = PL_ENOMEM;
    }
    if (st != PL_OK) {
        hk_route_free(r);
        return st;
    }
    *out = r;
    return PL_OK;
}

void hk_route_free(hk_route *r)
{
    if (!r) return;
    rule_match_free(r->match);
    pl_free(r->tenant);
    pl_free(r->id);
    pl_free(r->match_json);
    pl_free(r->webhook);
    pl_free(r->publish);
    pl_free(r);
}

static const char *const route_keys[] = {"id", "match", "action", "enabled"};

/* The action: exactly one of webhook (an id) and publish (a channel). */
static int route_action(const json_t *a, const char **webhook, const char **publish, char *why,
                        size_t whylen)
{
    *webhook = json_string_value(json_object_get(a, "webhook"));
    *publish = json_string_value(json_object_get(a, "publish"));
    if (!json_is_object(a) || json_object_size(a) != 1 || (!*webhook && !*publish)) {
        snprintf(why, whylen,
                 "action: expected {\"webhook\": endpoint id} or {\"publish\": channel}");
        return PL_EINVAL;
    }
    if (*webhook && !config_id_ok(*webhook)) {
        snprintf(why, whylen, "action.webhook: expected a webhook id");
        return PL_EINVAL;
    }
    if (*publish && (!**publish || strlen(*publish) > 255)) {
        snprintf(why, whylen, "action.publish: expected a channel name");
        return PL_EINVAL;
    }
    return PL_OK;
}

int hk_route_from_json(const json_t *spec, const char *tenant, hk_route **out, char *why,
                       size_t whylen)
{
    const char *id = json_string_value(json_object_get(spec, "id"));
    json_t *match = json_object_get(spec, "match"), *en = json_object_get(spec, "enabled");
    const char *webhook = NULL, *publish = NULL;
    int st = known_keys(spec, route_keys, sizeof(route_keys) / sizeof(*route_keys), why, whylen);
    if (st == PL_OK && (!id || !config_id_ok(id))) {
        snprintf(why, whylen, "id: expected 1 to %d of A-Z a-z 0-9 _ . -", CFG_ID_MAX);
        st = PL_EINVAL;
    }
    if (st == PL_OK && match && !json_is_object(match)) {
        snprintf(why, whylen, "match: expected an object {channel, type, where}");
        st = PL_EINVAL;
    }
    if (st == PL_OK && en && !json_is_boolean(en)) {
        snprintf(why, whylen, "enabled: expected true or false");
        st = PL_EINVAL;
    }
    if (st == PL_OK)
        st = route_action(json_object_get(spec, "action"), &webhook, &publish, why, whylen);
    if (st != PL_OK) return st;
    char *m = match ? json_dumps(match, JSON_COMPACT) : NULL;
    rule_error re = {{0}, {0}};
    st = match && !m
             ? PL_ENOMEM
             : hk_route_new(tenant, id, m, webhook, publish, !en || json_is_true(en), out, &re);
    free(m);
    if (st == PL_EINVAL) snprintf(why, whylen, "%s: %s", re.path, re.reason);
    return st;
}
