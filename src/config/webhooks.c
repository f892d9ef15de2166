/* The webhooks section (endpoints that committed pubs are delivered to: URL,
 * signing secrets, retry schedule, timeouts, ordering) and
 * webhook_allowed_networks, the CIDRs the outbound SSRF guard lets through.
 * Only syntax and cross-references are checked; nothing here reads a clock. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config_int.h"
#include "util/jpath.h"
#include "util/clock.h"
#include "util/mem.h"

#define URL_MAX 2048
#define TIMEOUT_DEFAULT_MS 15000
#define TIMEOUT_MAX_MS (5 * 60 * 1000)
#define CONNECT_DEFAULT_MS 5000
#define CONNECT_MIN_MS (1000 / 10)
#define CONNECT_MAX_MS 60000
#define SCHEDULE_MAX 64
#define SCHEDULE_DEFAULT_LEN 10 /* the server's schedule: 0s, 5s, 5m, ... 24h */
#define MAX_IN_FLIGHT_DEFAULT 16

/* ------------------------------------------------------------------------ */
/* Ownership: ids and tenants, shared with routes.c                          */

int config_id_ok(const char *id)
{
    return cfg_name_ok(id) && strlen(id) <= CFG_ID_MAX;
}

int cfg_check_owner(cfg_loader *L, yaml_node_t *it, yaml_node_t *id_node, yaml_node_t *tenant_node,
                    const char *id, char **tenant, const char *what)
{
    const config *c = L->c;
    char buf[48];
    size_t old = cfg_push_key(L, "id");
    if (!config_id_ok(id))
        return cfg_fail_at(L, id_node, "%s id '%s' may only contain A-Z a-z 0-9 _ . - (at most %d)",
                           what, cfg_shown(id, strlen(id), buf), CFG_ID_MAX);
    cfg_pop(L, old);
    if (!*tenant && !c->single_tenant)
        return cfg_fail_at(L, it, "missing key 'tenant' (required with tenants)");
    if (!*tenant && !(*tenant = pl_strdup("default"))) return cfg_oom(L, it);
    old = cfg_push_key(L, "tenant");
    if (!config_tenant(c, *tenant))
        return cfg_fail_at(L, tenant_node ? tenant_node : it, "unknown tenant '%s'",
                           cfg_shown(*tenant, strlen(*tenant), buf));
    cfg_pop(L, old);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Secrets                                                                   */

/* A light check of a signing secret: the prefix and base64. The server
 * decodes it (and checks an Ed25519 key's length) at start. */
const char *config_webhook_secret_error(const char *s)
{
    const char *b = !strncmp(s, "whsec_", 6) ? s + 6 : !strncmp(s, "whsk_", 5) ? s + 5 : NULL;
    if (!b) return "a webhook secret starts with whsec_ (HMAC) or whsk_ (Ed25519)";
    return cfg_base64_ok(b) ? NULL : "the part after the prefix is not base64";
}

/* Reads n digits at s; -1 unless they are all digits. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (RFC 3339 in UTC) to unix ms; -1 when
 * malformed or not after the epoch (0 means "never expires"). */
static int64_t parse_utc(const char *s)
{
    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > clock_days_in_month(y, mo) || h < 0 || h > 23 ||
        mi < 0 || mi > 59 || sec < 0 || sec > 59)
        return -1;
    const char *p = s + 19;
    int64_t ms = 0;
    int k = 0;
    if (*p == '.') { /* milliseconds: digits past the third are dropped */
        if (p[1] < '0' || p[1] > '9') return -1;
        for (p++; *p >= '0' && *p <= '9'; p++, k++)
            if (k < 3) ms = ms * 10 + (*p - '0');
        for (; k < 3; k++)
            ms *= 10;
    }
    if ((*p != 'Z' && *p != 'z') || p[1]) return -1;
    int64_t t = ((clock_days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec;
    t = t * 1000 + ms;
    return t > 0 ? t : -1;
}

typedef struct secret_entry {
    char *secret;
    int64_t expires_ms;
} secret_entry;

static int fn_expires(cfg_loader *L, yaml_node_t *v, void *obj)
{
    secret_entry *e = obj;
    const char *s = "";
    char buf[48];
    if (cfg_get_str(L, v, &s) < 0) return -1;
    e->expires_ms = parse_utc(s);
    if (e->expires_ms < 0)
        return cfg_fail_at(L, v, "'%s' is not a UTC time like \"2026-12-31T00:00:00Z\"",
                           cfg_shown(s, cfg_slen(v), buf));
    return 0;
}

static const cfg_key_spec secret_keys[] = {
    KNS("secret", secret_entry, secret),
    KF("expires", fn_expires),
};

/* One secret: a string, or {secret, expires}. Stores into slot i of w. */
static int parse_secret(cfg_loader *L, yaml_node_t *it, cfg_webhook *w, size_t i)
{
    secret_entry e = {0};
    yaml_node_t *found[NSPEC(secret_keys)], *at = it;
    if (it->type == YAML_MAPPING_NODE) {
        int rc = cfg_parse_map(L, it, secret_keys, NSPEC(secret_keys), &e, found);
        w->secrets[i] = e.secret; /* owned by w from here, freed with it */
        w->secret_expires_ms[i] = e.expires_ms;
        if (rc < 0) return -1;
        if (!e.secret) return cfg_fail_at(L, it, "missing key 'secret'");
        at = found[0];
        cfg_push_key(L, "secret");
    } else if (cfg_set_str(L, it, &w->secrets[i], true) < 0) {
        return -1;
    }
    const char *why = config_webhook_secret_error(w->secrets[i]);
    return why ? cfg_fail_at(L, at, "%s", why) : 0;
}

static int fn_secret(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_webhook *w = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 1;
    int single = v->type == YAML_SCALAR_NODE;
    if (!single && v->type != YAML_SEQUENCE_NODE)
        return cfg_fail_at(L, v, "expected a secret or a list of secrets, got %s",
                           cfg_kind_name(v));
    if (!single && cfg_get_seq(L, v, &items, &n) < 0) return -1;
    if (n == 0 || n > CFG_WEBHOOK_MAX_SECRETS)
        return cfg_fail_at(L, v, "must list 1 to %d secrets", CFG_WEBHOOK_MAX_SECRETS);
    w->secrets = pl_calloc(n, sizeof(*w->secrets));
    w->secret_expires_ms = pl_calloc(n, sizeof(*w->secret_expires_ms));
    if (!w->secrets || !w->secret_expires_ms) return cfg_oom(L, v);
    w->n_secrets = n;
    for (size_t i = 0; i < n; i++) {
        size_t old = single ? L->plen : cfg_push_index(L, i);
        if (parse_secret(L, single ? v : cfg_item_node(L, items, i, v), w, i) < 0) return -1;
        cfg_pop(L, old);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Delivery keys                                                             */

static int fn_schedule(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_webhook *w = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (cfg_get_seq(L, v, &items, &n) < 0) return -1;
    if (n == 0 || n > SCHEDULE_MAX)
        return cfg_fail_at(L, v, "must list 1 to %d delays", SCHEDULE_MAX);
    w->retry_schedule = pl_calloc(n, sizeof(*w->retry_schedule));
    if (!w->retry_schedule) return cfg_oom(L, v);
    w->n_retry_schedule = n;
    for (size_t i = 0; i < n; i++) {
        size_t old = cfg_push_index(L, i);
        if (cfg_get_duration(L, cfg_item_node(L, items, i, v), 0, &w->retry_schedule[i]) < 0)
            return -1;
        cfg_pop(L, old);
    }
    return 0;
}

static int get_bounded(cfg_loader *L, yaml_node_t *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (cfg_get_duration(L, v, lo, out) < 0) return -1;
    if (*out > hi) return cfg_fail_at(L, v, "must be at most %lldms", (long long)hi);
    return 0;
}

static int fn_timeout(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_webhook *w = obj;
    return get_bounded(L, v, 1000, TIMEOUT_MAX_MS, &w->timeout_ms);
}

static int fn_connect_timeout(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_webhook *w = obj;
    return get_bounded(L, v, CONNECT_MIN_MS, CONNECT_MAX_MS, &w->connect_timeout_ms);
}

/* An ordering path names one value per pub: a wildcard would name several. */
const char *config_order_path_error(const char *s)
{
    jpath jp;
    const char *why = jpath_parse(s, &jp);
    if (why) return why;
    if (jp.n < 2) return "needs a member after data. or headers.";
    for (size_t i = 0; i < jp.n; i++)
        if (jp.seg[i].wild) return "'*' names several values, not one";
    return NULL;
}

static int fn_ordering(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_webhook *w = obj;
    const char *s = "";
    char buf[48];
    if (cfg_get_str(L, v, &s) < 0) return -1;
    if (!strcmp(s, "none") || !strcmp(s, "channel")) {
        w->ordering = s[0] == 'n' ? CFG_ORDER_NONE : CFG_ORDER_CHANNEL;
        return 0;
    }
    if (strncmp(s, "data.", 5) && strncmp(s, "headers.", 8))
        return cfg_fail_at(L, v,
                           "unknown ordering '%s' (none, channel, or a path such as "
                           "data.customer_id or headers.x-key)",
                           cfg_shown(s, cfg_slen(v), buf));
    const char *why = config_order_path_error(s);
    if (why)
        return cfg_fail_at(L, v, "bad ordering path '%s': %s", cfg_shown(s, cfg_slen(v), buf), why);
    if (cfg_set_str(L, v, &w->order_path, true) < 0) return -1;
    w->ordering = CFG_ORDER_PATH;
    return 0;
}

/* Applied in this order: retry_schedule before nothing that needs it (the
 * checks across keys run after the table). */
static const cfg_key_spec webhook_keys[] = {
    KNS("id", cfg_webhook, id),
    KNS("tenant", cfg_webhook, tenant),
    KNS("url", cfg_webhook, url),
    KF("secret", fn_secret),
    KU("max_attempts", cfg_webhook, max_attempts, 1, SCHEDULE_MAX),
    KF("retry_schedule", fn_schedule),
    KF("timeout", fn_timeout),
    KF("connect_timeout", fn_connect_timeout),
    KU("max_in_flight", cfg_webhook, max_in_flight, 1, 1024),
    KU("rate", cfg_webhook, rate, 0, 100000),
    KF("ordering", fn_ordering),
    KB("enabled", cfg_webhook, enabled),
};

_Static_assert(NSPEC(webhook_keys) <= CFG_MAX_KEYS, "cfg_parse_map's local table is too small");

static yaml_node_t *at_key(yaml_node_t **found, const char *key)
{
    return found[cfg_spec_index(webhook_keys, NSPEC(webhook_keys), key)];
}

/* ------------------------------------------------------------------------ */
/* The URL                                                                   */

/* The authority of an http(s) URL: a host (a name, an IPv4 address or a
 * bracketed IPv6 one) and an optional port; no credentials. */
static const char *authority_error(const char *a, size_t n)
{
    if (memchr(a, '@', n)) return "must not carry credentials (user:password@)";
    const char *colon = NULL;
    size_t host = n;
    if (n && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        char v6[64];
        size_t len = close ? (size_t)(close - a - 1) : 0;
        if (!close || !len || len >= sizeof(v6)) return "has a bad IPv6 address";
        memcpy(v6, a + 1, len);
        v6[len] = '\0';
        unsigned char bin[16];
        if (inet_pton(AF_INET6, v6, bin) != 1) return "has a bad IPv6 address";
        host = (size_t)(close - a) + 1;
        if (host < n && a[host] != ':') return "has a bad IPv6 address";
        colon = host < n ? a + host : NULL;
    } else {
        colon = memchr(a, ':', n);
        host = colon ? (size_t)(colon - a) : n;
        if (colon && memchr(colon + 1, ':', n - host - 1)) return "has a bad port";
    }
    if (!host) return "has no host";
    if (!colon) return NULL;
    size_t plen = n - (size_t)(colon - a) - 1;
    int port = plen && plen <= 5 ? digits(colon + 1, (int)plen) : -1;
    return port >= 1 && port <= 65535 ? NULL : "has a bad port (1-65535)";
}

const char *config_webhook_url_error(const char *u)
{
    size_t n = strlen(u);
    if (n > URL_MAX) return "is longer than 2048 bytes";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f)
            return "contains a space or a control character";
    size_t skip = !strncasecmp(u, "http://", 7) ? 7 : !strncasecmp(u, "https://", 8) ? 8 : 0;
    if (!skip) return "must start with http:// or https://";
    const char *a = u + skip;
    return authority_error(a, strcspn(a, "/?#"));
}

/* ------------------------------------------------------------------------ */
/* Entries                                                                   */

/* The keys that depend on each other: attempts and schedule, the two
 * timeouts. */
static int check_delivery(cfg_loader *L, yaml_node_t *it, yaml_node_t **found, cfg_webhook *w)
{
    size_t len = w->n_retry_schedule ? w->n_retry_schedule : SCHEDULE_DEFAULT_LEN;
    yaml_node_t *ma = at_key(found, "max_attempts"), *ct = at_key(found, "connect_timeout");
    if (!ma) w->max_attempts = (uint32_t)len;
    if (w->max_attempts > len) {
        cfg_push_key(L, "max_attempts");
        return cfg_fail_at(L, ma,
                           "max_attempts (%u) exceeds the retry schedule's length (%zu): each "
                           "attempt needs a delay",
                           w->max_attempts, len);
    }
    /* A short timeout lowers the default connect timeout rather than
     * making an untouched default an error. */
    if (!ct && w->connect_timeout_ms > w->timeout_ms) w->connect_timeout_ms = w->timeout_ms;
    if (w->connect_timeout_ms > w->timeout_ms) {
        cfg_push_key(L, "connect_timeout");
        return cfg_fail_at(L, ct, "connect_timeout (%lldms) exceeds timeout (%lldms)",
                           (long long)w->connect_timeout_ms, (long long)w->timeout_ms);
    }
    return 0;
}

static int parse_webhook(cfg_loader *L, yaml_node_t *it, cfg_webhook *arr, size_t i)
{
    yaml_node_t *found[NSPEC(webhook_keys)];
    cfg_webhook *w = &arr[i];
    *w = (cfg_webhook){.timeout_ms = TIMEOUT_DEFAULT_MS,
                       .connect_timeout_ms = CONNECT_DEFAULT_MS,
                       .max_in_flight = MAX_IN_FLIGHT_DEFAULT,
                       .enabled = true};
    if (cfg_parse_map(L, it, webhook_keys, NSPEC(webhook_keys), w, found) < 0) return -1;
    static const char *const required[] = {"id", "url", "secret"};
    for (size_t k = 0; k < NSPEC(required); k++)
        if (!at_key(found, required[k])) return cfg_fail_at(L, it, "missing key '%s'", required[k]);
    yaml_node_t *idn = at_key(found, "id");
    if (cfg_check_owner(L, it, idn, at_key(found, "tenant"), w->id, &w->tenant, "webhook") < 0)
        return -1;
    size_t old = cfg_push_key(L, "url");
    const char *why = config_webhook_url_error(w->url);
    char buf[48];
    if (why)
        return cfg_fail_at(L, at_key(found, "url"), "'%s' %s",
                           cfg_shown(w->url, strlen(w->url), buf), why);
    cfg_pop(L, old);
    old = cfg_push_key(L, "id");
    for (size_t j = 0; j < i; j++)
        if (!strcmp(arr[j].id, w->id) && !strcmp(arr[j].tenant, w->tenant))
            return cfg_fail_at(L, idn, "duplicate webhook id '%s' in tenant '%s'", w->id,
                               w->tenant);
    cfg_pop(L, old);
    return check_delivery(L, it, found, w);
}

void cfg_webhooks_release(cfg_webhook *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pl_free(w[i].id);
        pl_free(w[i].tenant);
        pl_free(w[i].url);
        cfg_free_strv(w[i].secrets, w[i].n_secrets);
        pl_free(w[i].secret_expires_ms);
        pl_free(w[i].retry_schedule);
        pl_free(w[i].order_path);
    }
    pl_free(w);
}

static int parse_entry(cfg_loader *L, yaml_node_t *it, void *arr, size_t i)
{
    return parse_webhook(L, it, arr, i);
}

static void release_entries(void *arr, size_t n)
{
    cfg_webhooks_release(arr, n);
}

int cfg_parse_webhooks(cfg_loader *L, yaml_node_t *v, void *obj)
{
    static const cfg_list how = {sizeof(cfg_webhook), parse_entry, release_entries};
    config *c = obj;
    /* The redis engine has no committed log for them to run from yet. */
    if (c->engine_type == CFG_ENGINE_REDIS && v->type == YAML_SEQUENCE_NODE &&
        v->data.sequence.items.top != v->data.sequence.items.start)
        return cfg_fail_at(L, v,
                           "webhooks need engine type sqlite (the redis engine does not run them)");
    return cfg_parse_list(L, v, &how, (void **)&c->webhooks, &c->n_webhooks);
}

const cfg_webhook *config_webhook(const config *c, const char *tenant, const char *id)
{
    if (!tenant || !id) return NULL;
    for (size_t i = 0; i < c->n_webhooks; i++)
        if (!strcmp(c->webhooks[i].id, id) && !strcmp(c->webhooks[i].tenant, tenant))
            return &c->webhooks[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* webhook_allowed_networks                                                  */

/* ADDRESS or ADDRESS/BITS. NULL, or why not; hint gets the network meant
 * when host bits are set past the prefix. */
static const char *cidr_error(const char *s, char *hint, size_t hintlen)
{
    char addr[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (!alen || alen >= sizeof(addr)) return "is not an IPv4 or IPv6 address";
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    int v6 = strchr(addr, ':') != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bin) != 1) return "is not an IPv4 or IPv6 address";
    int max = v6 ? 128 : 32;
    size_t plen = slash ? strlen(slash + 1) : 0;
    int bits = !slash ? max : plen && plen <= 3 ? digits(slash + 1, (int)plen) : -1;
    if (bits < 0 || bits > max) return v6 ? "needs a prefix of 0-128" : "needs a prefix of 0-32";
    int stray = 0;
    for (int i = bits; i < max; i++) {
        unsigned char bit = (unsigned char)(0x80u >> (i % 8));
        stray |= bin[i / 8] & bit;
        bin[i / 8] &= (unsigned char)~bit;
    }
    if (!stray) return NULL;
    char net[INET6_ADDRSTRLEN];
    inet_ntop(v6 ? AF_INET6 : AF_INET, bin, net, sizeof(net));
    snprintf(hint, hintlen, "has bits set past /%d; did you mean %s/%d?", bits, net, bits);
    return hint;
}

int cfg_parse_networks(cfg_loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    char **arr = NULL, hint[128], buf[48];
    size_t n = 0;
    if (cfg_is_null(v)) return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return cfg_fail_at(L, v, "expected a list of networks, got %s", cfg_kind_name(v));
    /* An empty list is allowed: it admits nothing, as no key does. */
    if (v->data.sequence.items.top != v->data.sequence.items.start &&
        cfg_parse_strv(L, v, &arr, &n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *why = cidr_error(arr[i], hint, sizeof(hint));
        if (!why) continue;
        cfg_push_index(L, i);
        cfg_fail_at(L, cfg_item_node(L, v->data.sequence.items.start, i, v), "'%s' %s",
                    cfg_shown(arr[i], strlen(arr[i]), buf), why);
        cfg_free_strv(arr, n);
        return -1;
    }
    cfg_free_strv(c->webhook_allowed_networks, c->n_webhook_allowed_networks);
    c->webhook_allowed_networks = arr;
    c->n_webhook_allowed_networks = n;
    return 0;
}
