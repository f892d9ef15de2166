/* YAML configuration loader. libyaml parses; this file only walks the tree
 * against key tables (one table per mapping, in the order the docs list them)
 * and validates. The first error wins and carries the line and column of the
 * offending key or value. Aliases are refused so a tiny file cannot expand
 * into a huge configuration, and nesting depth and item counts are capped. */
#include "util/config.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "util/clock.h"
#include "util/mem.h"

#define MAX_CONFIG_BYTES (16u << 20)
#define MAX_DEPTH 64
#define MAX_ITEMS 10000 /* list items in the whole file; keeps duplicate checks cheap */
#define MAX_KEYS 32     /* keys in one table */

/* ------------------------------------------------------------------------ */
/* Loader state and errors                                                   */

typedef struct loader {
    yaml_document_t doc;
    config *c;
    char *err;
    size_t errlen;
    int failed;
    size_t items;
    char path[200]; /* where we are, e.g. "namespaces[2].history_ttl" */
    size_t plen;
    /* Tenants parsed so far in the file, for API key uniqueness. */
    const cfg_tenant *tenants_so_far;
    size_t n_tenants_so_far;
    yaml_node_t *action_webhook; /* value node of the current route's action.webhook */
} loader;

static void set_err(char *err, size_t errlen, size_t line, size_t col, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%zu:%zu: %s", line, col, msg);
}

/* Records the first error at node n (or at 1:1 when n is NULL); returns -1. */
__attribute__((format(printf, 3, 4))) static int fail_at(loader *L, const yaml_node_t *n,
                                                         const char *fmt, ...)
{
    if (L->failed) return -1;
    L->failed = 1;
    char msg[512];
    int off = 0;
    if (L->plen) off = snprintf(msg, sizeof(msg), "%s: ", L->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + off, sizeof(msg) - (size_t)off, fmt, ap);
    va_end(ap);
    size_t line = n ? n->start_mark.line + 1 : 1, col = n ? n->start_mark.column + 1 : 1;
    set_err(L->err, L->errlen, line, col, msg);
    return -1;
}

static int oom(loader *L, const yaml_node_t *n)
{
    return fail_at(L, n, "out of memory");
}

/* Path helpers: push returns the old length to restore with pop. */
static size_t push_key(loader *L, const char *key)
{
    size_t old = L->plen;
    int w = snprintf(L->path + old, sizeof(L->path) - old, "%s%s", old ? "." : "", key);
    if (w > 0) L->plen = old + (size_t)w < sizeof(L->path) ? old + (size_t)w : sizeof(L->path) - 1;
    return old;
}

static size_t push_index(loader *L, size_t i)
{
    size_t old = L->plen;
    int w = snprintf(L->path + old, sizeof(L->path) - old, "[%zu]", i);
    if (w > 0) L->plen = old + (size_t)w < sizeof(L->path) ? old + (size_t)w : sizeof(L->path) - 1;
    return old;
}

static void pop(loader *L, size_t old)
{
    L->plen = old;
    L->path[old] = '\0';
}

/* A printable, bounded copy of user text for messages. */
static const char *shown(const char *s, size_t n, char out[48])
{
    size_t j = 0;
    for (size_t i = 0; i < n && j < 40; i++)
        out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (n > 40) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
    return out;
}

/* ------------------------------------------------------------------------ */
/* Scalars                                                                   */

static yaml_node_t *node_at(loader *L, int index)
{
    return yaml_document_get_node(&L->doc, index);
}

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static size_t slen(const yaml_node_t *n)
{
    return n->data.scalar.length;
}

static int is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static int is_null(const yaml_node_t *n)
{
    if (!is_plain(n)) return 0;
    const char *s = sval(n);
    return slen(n) == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static const char *kind_name(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (is_null(n)) return "null";
    return is_plain(n) ? "a plain value" : "a quoted string";
}

/* Points *out at the scalar's text; rejects non-scalars, null and NUL bytes. */
static int get_str(loader *L, const yaml_node_t *n, const char **out)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail_at(L, n, "expected a string, got %s", kind_name(n));
    if (memchr(sval(n), '\0', slen(n))) return fail_at(L, n, "string contains a NUL byte");
    *out = sval(n);
    return 0;
}

/* Decimal integer in a plain scalar, checked against [min, max]. */
static int get_int(loader *L, const yaml_node_t *n, int64_t min, int64_t max, int64_t *out)
{
    if (!is_plain(n) || is_null(n))
        return fail_at(L, n, "expected an integer, got %s", kind_name(n));
    const char *s = sval(n);
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == slen(n)) return fail_at(L, n, "expected an integer");
    for (size_t j = i; j < slen(n); j++)
        if (s[j] < '0' || s[j] > '9') return fail_at(L, n, "expected an integer");
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v < min || v > max) {
        if (s[0] == '-' && min >= 0) return fail_at(L, n, "must not be negative");
        return fail_at(L, n, "must be between %lld and %lld", (long long)min, (long long)max);
    }
    *out = v;
    return 0;
}

static int get_bool(loader *L, const yaml_node_t *n, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    if (is_plain(n) && !is_null(n)) {
        for (size_t i = 0; i < 3; i++) {
            if (!strcasecmp(sval(n), yes[i])) return *out = true, 0;
            if (!strcasecmp(sval(n), no[i])) return *out = false, 0;
        }
    }
    return fail_at(L, n, "expected true or false, got %s", kind_name(n));
}

static int get_duration(loader *L, const yaml_node_t *n, int64_t min, int64_t *out)
{
    const char *s = "";
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail_at(L, n, "expected a duration like \"5s\", got %s", kind_name(n));
    if (get_str(L, n, &s) < 0) return -1;
    int64_t v = clock_parse_duration(s);
    char buf[48];
    if (v < 0)
        return fail_at(L, n, "invalid duration '%s' (use e.g. \"200ms\", \"5s\", \"5m\", \"24h\")",
                       shown(s, slen(n), buf));
    if (v < min) return fail_at(L, n, "must be at least %lldms", (long long)min);
    *out = v;
    return 0;
}

/* Replaces *dst with a copy of the string in n. */
static int set_str(loader *L, const yaml_node_t *n, char **dst, bool nonempty)
{
    const char *s = "";
    if (get_str(L, n, &s) < 0) return -1;
    if (nonempty && !*s) return fail_at(L, n, "must not be empty");
    char *copy = pl_strndup(s, slen(n));
    if (!copy) return oom(L, n);
    pl_free(*dst);
    *dst = copy;
    return 0;
}

static int name_ok(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

/* "HOST:PORT" or "[V6]:PORT". On success *host is a new string (caller frees). */
static int split_host_port(const char *s, char **host, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || !colon[1] || strlen(colon + 1) > 5) return -1;
    long p = 0;
    for (const char *q = colon + 1; *q; q++) {
        if (*q < '0' || *q > '9') return -1;
        p = p * 10 + (*q - '0');
    }
    if (p < 1 || p > 65535) return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    } else if (memchr(h, ':', hl)) {
        return -1; /* bare IPv6 needs brackets */
    }
    if (hl == 0) return -1;
    for (size_t i = 0; i < hl; i++)
        if (h[i] <= ' ' || h[i] == '[' || h[i] == ']' || h[i] == '/' || h[i] == 0x7f) return -1;
    *host = pl_strndup(h, hl);
    if (!*host) return -2;
    *port = (int)p;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Key tables                                                                */

typedef int (*key_fn)(loader *L, yaml_node_t *v, void *obj);

enum kind { K_STR, K_NESTR, K_BOOL, K_U32, K_INT, K_I64, K_DUR, K_FN };

typedef struct key_spec {
    const char *name;
    enum kind kind;
    size_t off;
    int64_t min, max; /* integers: range; durations: min only */
    key_fn fn;
} key_spec;

#define NSPEC(t) (sizeof(t) / sizeof((t)[0]))
#define KS(n, T, f)                                                                                \
    {                                                                                              \
        n, K_STR, offsetof(T, f), 0, 0, NULL                                                       \
    }
#define KNS(n, T, f)                                                                               \
    {                                                                                              \
        n, K_NESTR, offsetof(T, f), 0, 0, NULL                                                     \
    }
#define KB(n, T, f)                                                                                \
    {                                                                                              \
        n, K_BOOL, offsetof(T, f), 0, 0, NULL                                                      \
    }
#define KU(n, T, f, lo, hi)                                                                        \
    {                                                                                              \
        n, K_U32, offsetof(T, f), lo, hi, NULL                                                     \
    }
#define KI(n, T, f, lo, hi)                                                                        \
    {                                                                                              \
        n, K_INT, offsetof(T, f), lo, hi, NULL                                                     \
    }
#define KL(n, T, f, lo, hi)                                                                        \
    {                                                                                              \
        n, K_I64, offsetof(T, f), lo, hi, NULL                                                     \
    }
#define KD(n, T, f, lo)                                                                            \
    {                                                                                              \
        n, K_DUR, offsetof(T, f), lo, 0, NULL                                                      \
    }
#define KF(n, fn)                                                                                  \
    {                                                                                              \
        n, K_FN, 0, 0, 0, fn                                                                       \
    }

static int set_value(loader *L, const key_spec *k, yaml_node_t *v, void *obj)
{
    char *field = (char *)obj + k->off;
    int64_t i = 0;
    switch (k->kind) {
    case K_STR:
    case K_NESTR:
        return set_str(L, v, (char **)(void *)field, k->kind == K_NESTR);
    case K_BOOL:
        return get_bool(L, v, (bool *)(void *)field);
    case K_U32:
        if (get_int(L, v, k->min, k->max, &i) < 0) return -1;
        *(uint32_t *)(void *)field = (uint32_t)i;
        return 0;
    case K_INT:
        if (get_int(L, v, k->min, k->max, &i) < 0) return -1;
        *(int *)(void *)field = (int)i;
        return 0;
    case K_I64:
        return get_int(L, v, k->min, k->max, (int64_t *)(void *)field);
    case K_DUR:
        return get_duration(L, v, k->min, (int64_t *)(void *)field);
    case K_FN:
        return k->fn(L, v, obj);
    }
    return -1;
}

/* Checks every key of the mapping against the table (unknown and duplicate
 * keys are errors), then applies the values in table order so that later
 * sections can refer to earlier ones. found (may be NULL) receives the
 * value node of each key present, for checks across keys. Null = empty. */
static int parse_map(loader *L, yaml_node_t *map, const key_spec *specs, size_t n, void *obj,
                     yaml_node_t **found)
{
    yaml_node_t *local[MAX_KEYS];
    yaml_node_t **seen = found ? found : local;
    memset(seen, 0, n * sizeof(*seen));
    if (is_null(map)) return 0;
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(L, map, "expected a mapping, got %s", kind_name(map));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(L, p->key), *v = node_at(L, p->value);
        if (!k || !v) return fail_at(L, map, "malformed mapping");
        if (k->type != YAML_SCALAR_NODE) return fail_at(L, k, "keys must be plain strings");
        size_t i = 0;
        while (i < n &&
               !(strlen(specs[i].name) == slen(k) && !memcmp(specs[i].name, sval(k), slen(k))))
            i++;
        char buf[48];
        if (i == n) return fail_at(L, k, "unknown key '%s'", shown(sval(k), slen(k), buf));
        if (seen[i]) return fail_at(L, k, "duplicate key '%s'", specs[i].name);
        seen[i] = v;
    }
    for (size_t i = 0; i < n; i++) {
        if (!seen[i]) continue;
        size_t old = push_key(L, specs[i].name);
        if (set_value(L, &specs[i], seen[i], obj) < 0) return -1;
        pop(L, old);
    }
    return 0;
}

/* Validates a list node and charges its length to the file's item budget. */
static int get_seq(loader *L, yaml_node_t *v, yaml_node_item_t **items, size_t *n)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return fail_at(L, v, "expected a list, got %s", kind_name(v));
    *items = v->data.sequence.items.start;
    *n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    L->items += *n;
    if (L->items > MAX_ITEMS) return fail_at(L, v, "too many list items (at most %d)", MAX_ITEMS);
    return 0;
}

static yaml_node_t *item_node(loader *L, yaml_node_item_t *items, size_t i, yaml_node_t *parent)
{
    yaml_node_t *n = items ? node_at(L, items[i]) : NULL;
    return n ? n : parent;
}

/* The index of key in specs, for reading parse_map's found array. */
static size_t spec_index(const key_spec *specs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(specs[i].name, key)) return i;
    return 0;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pl_free(v[i]);
    pl_free(v);
}

/* A string or a list of strings, each non-empty; replaces *out. */
static int parse_strv(loader *L, yaml_node_t *v, char ***out, size_t *n_out)
{
    yaml_node_item_t *items = NULL;
    size_t n = 1;
    int single = v->type == YAML_SCALAR_NODE;
    if (!single && get_seq(L, v, &items, &n) < 0) return -1;
    char **arr = pl_calloc(n, sizeof(*arr));
    if (!arr) return oom(L, v);
    size_t done = 0;
    for (; done < n; done++) {
        yaml_node_t *it = single ? v : item_node(L, items, done, v);
        size_t old = single ? L->plen : push_index(L, done);
        if (set_str(L, it, &arr[done], true) < 0) goto fail;
        pop(L, old);
    }
    free_strv(*out, *n_out);
    *out = arr;
    *n_out = n;
    return 0;
fail:
    free_strv(arr, done);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Top-level scalars and engine                                              */

static int fn_listen(loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    const char *s = "";
    char *host = NULL, buf[48];
    int port;
    if (get_str(L, v, &s) < 0) return -1;
    int rc = split_host_port(s, &host, &port);
    if (rc == -2) return oom(L, v);
    if (rc < 0)
        return fail_at(L, v, "'%s' is not HOST:PORT with a port in 1..65535",
                       shown(s, slen(v), buf));
    pl_free(c->listen_host);
    c->listen_host = host;
    c->listen_port = port;
    return 0;
}

static int fn_engine_type(loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    const char *s = "";
    char buf[48];
    if (get_str(L, v, &s) < 0) return -1;
    if (strcmp(s, "sqlite") && strcmp(s, "redis"))
        return fail_at(L, v, "unknown engine type '%s' (sqlite or redis)", shown(s, slen(v), buf));
    return set_str(L, v, &c->engine_type, true);
}

static const key_spec engine_keys[] = {
    KF("type", fn_engine_type),
    KNS("address", config, engine_address),
    KL("max_db_bytes", config, engine_max_db_bytes, 0, INT64_MAX),
};

static int fn_engine(loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    yaml_node_t *found[NSPEC(engine_keys)];
    if (parse_map(L, v, engine_keys, NSPEC(engine_keys), c, found) < 0) return -1;
    yaml_node_t *addr = found[spec_index(engine_keys, NSPEC(engine_keys), "address")];
    int redis = !strcmp(c->engine_type, "redis");
    if (redis && !addr) return fail_at(L, v, "the redis engine needs an 'address'");
    if (!redis && addr) {
        size_t old = push_key(L, "address");
        fail_at(L, addr, "only the redis engine takes an address");
        pop(L, old);
        return -1;
    }
    if (addr) {
        char *host = NULL;
        int port, rc = split_host_port(c->engine_address, &host, &port);
        pl_free(host);
        if (rc == -2) return oom(L, addr);
        if (rc < 0) {
            size_t old = push_key(L, "address");
            fail_at(L, addr, "not HOST:PORT with a port in 1..65535");
            pop(L, old);
            return -1;
        }
    }
    return 0;
}

static const key_spec limit_keys[] = {
    KU("max_message_bytes", cfg_limits, max_message_bytes, 1, 1 << 30),
    KU("max_frame_bytes", cfg_limits, max_frame_bytes, 1, 1 << 30),
    KU("max_channels_per_connection", cfg_limits, max_channels_per_connection, 1, 1 << 20),
    KU("outbound_queue_bytes", cfg_limits, outbound_queue_bytes, 1, 1 << 30),
    KU("max_connections_per_ip", cfg_limits, max_connections_per_ip, 1, 1 << 24),
    KD("handshake_timeout", cfg_limits, handshake_timeout_ms, 1),
    KD("idle_timeout", cfg_limits, idle_timeout_ms, 0),
    KU("max_body_bytes", cfg_limits, max_body_bytes, 1, 1 << 30),
    KU("commands_per_second", cfg_limits, commands_per_second, 0, 1 << 24),
    KU("user_commands_per_second", cfg_limits, user_commands_per_second, 0, 1 << 24),
    KU("api_requests_per_second", cfg_limits, api_requests_per_second, 0, 1 << 24),
    KU("max_connections_per_user", cfg_limits, max_connections_per_user, 0, 1 << 24),
    KD("typing_interval", cfg_limits, typing_interval_ms, 0),
};

static int fn_limits(loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    yaml_node_t *found[NSPEC(limit_keys)];
    if (parse_map(L, v, limit_keys, NSPEC(limit_keys), &c->limits, found) < 0) return -1;
    if (c->limits.max_message_bytes > c->limits.max_frame_bytes) {
        yaml_node_t *at = found[spec_index(limit_keys, NSPEC(limit_keys), "max_message_bytes")];
        return fail_at(L, at ? at : v, "max_message_bytes (%u) exceeds max_frame_bytes (%u)",
                       c->limits.max_message_bytes, c->limits.max_frame_bytes);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Tenants                                                                   */

static const char *const scope_names[] = {"publish",  "broadcast", "history",    "presence",
                                          "channels", "subscribe", "disconnect", "info",
                                          "trace",    "webhooks",  "dlq",        "*"};

static int fn_scopes(loader *L, yaml_node_t *v, void *obj)
{
    cfg_api_key *k = obj;
    if (v->type != YAML_SEQUENCE_NODE)
        return fail_at(L, v, "expected a list of scopes, got %s", kind_name(v));
    if (parse_strv(L, v, &k->scopes, &k->n_scopes) < 0) return -1;
    if (k->n_scopes == 0) return fail_at(L, v, "must list at least one scope");
    for (size_t i = 0; i < k->n_scopes; i++) {
        size_t j = 0;
        while (j < NSPEC(scope_names) && strcmp(scope_names[j], k->scopes[i]))
            j++;
        char buf[48];
        if (j == NSPEC(scope_names)) {
            yaml_node_t *it = item_node(L, v->data.sequence.items.start, i, v);
            return fail_at(L, it, "unknown scope '%s'",
                           shown(k->scopes[i], strlen(k->scopes[i]), buf));
        }
    }
    return 0;
}

static const key_spec api_key_keys[] = {
    KNS("key", cfg_api_key, key),
    KF("scopes", fn_scopes),
};

static int key_taken(const cfg_tenant *t, size_t n_keys, const char *key)
{
    for (size_t i = 0; i < n_keys; i++)
        if (t->api_keys[i].key && !strcmp(t->api_keys[i].key, key)) return 1;
    return 0;
}

static void api_key_free(cfg_api_key *k)
{
    pl_free(k->key);
    free_strv(k->scopes, k->n_scopes);
}

static int fn_api_keys(loader *L, yaml_node_t *v, void *obj)
{
    cfg_tenant *t = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (get_seq(L, v, &items, &n) < 0) return -1;
    for (size_t i = 0; i < t->n_api_keys; i++)
        api_key_free(&t->api_keys[i]);
    pl_free(t->api_keys);
    t->n_api_keys = 0;
    t->api_keys = pl_calloc(n, sizeof(*t->api_keys));
    if (!t->api_keys) return oom(L, v);
    t->n_api_keys = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = item_node(L, items, i, v), *found[NSPEC(api_key_keys)];
        size_t old = push_index(L, i);
        if (parse_map(L, it, api_key_keys, NSPEC(api_key_keys), &t->api_keys[i], found) < 0)
            return -1;
        cfg_api_key *k = &t->api_keys[i];
        if (!k->key) return fail_at(L, it, "missing key 'key'");
        if (!k->scopes) return fail_at(L, it, "missing key 'scopes'");
        int dup = key_taken(t, i, k->key);
        for (size_t j = 0; j < L->n_tenants_so_far && !dup; j++)
            dup = key_taken(&L->tenants_so_far[j], L->tenants_so_far[j].n_api_keys, k->key);
        if (dup) {
            push_key(L, "key");
            return fail_at(L, found[0], "duplicate API key (keys must be unique across tenants)");
        }
        pop(L, old);
    }
    return 0;
}

static int fn_jwt_secret(loader *L, yaml_node_t *v, void *obj)
{
    cfg_tenant *t = obj;
    return parse_strv(L, v, &t->jwt_secrets, &t->n_jwt_secrets);
}

/* Rejects what OpenSSL cannot read as a SubjectPublicKeyInfo PEM now rather
 * than at the first token. */
static int pem_ok(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio) return 0;
    EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (!key) return 0;
    EVP_PKEY_free(key);
    return 1;
}

static int fn_jwt_public_key(loader *L, yaml_node_t *v, void *obj)
{
    cfg_tenant *t = obj;
    if (parse_strv(L, v, &t->jwt_public_keys, &t->n_jwt_public_keys) < 0) return -1;
    for (size_t i = 0; i < t->n_jwt_public_keys; i++) {
        if (pem_ok(t->jwt_public_keys[i])) continue;
        yaml_node_t *at =
            v->type == YAML_SEQUENCE_NODE ? item_node(L, v->data.sequence.items.start, i, v) : v;
        return fail_at(L, at, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
    }
    return 0;
}

static const key_spec tenant_keys[] = {
    KNS("id", cfg_tenant, id),
    KF("jwt_secret", fn_jwt_secret),
    KF("jwt_public_key", fn_jwt_public_key),
    KF("api_keys", fn_api_keys),
    KU("max_connections", cfg_tenant, max_connections, 0, UINT32_MAX),
    KU("max_channels", cfg_tenant, max_channels, 0, UINT32_MAX),
    KU("publishes_per_second", cfg_tenant, publishes_per_second, 0, UINT32_MAX),
    KL("storage_bytes", cfg_tenant, storage_bytes, 0, INT64_MAX),
    KU("history_size", cfg_tenant, history_size, 0, UINT32_MAX),
    KD("history_ttl", cfg_tenant, history_ttl_ms, 0),
};

static void tenant_free(cfg_tenant *t)
{
    pl_free(t->id);
    free_strv(t->jwt_secrets, t->n_jwt_secrets);
    free_strv(t->jwt_public_keys, t->n_jwt_public_keys);
    for (size_t i = 0; i < t->n_api_keys; i++)
        api_key_free(&t->api_keys[i]);
    pl_free(t->api_keys);
}

static void tenants_free(cfg_tenant *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tenant_free(&t[i]);
    pl_free(t);
}

static int parse_tenant(loader *L, yaml_node_t *it, cfg_tenant *arr, size_t i)
{
    yaml_node_t *found[NSPEC(tenant_keys)];
    cfg_tenant *t = &arr[i];
    L->tenants_so_far = arr;
    L->n_tenants_so_far = i;
    if (parse_map(L, it, tenant_keys, NSPEC(tenant_keys), t, found) < 0) return -1;
    if (!t->id) return fail_at(L, it, "missing key 'id'");
    char buf[48];
    size_t old = push_key(L, "id");
    if (!name_ok(t->id))
        return fail_at(L, found[0], "tenant id '%s' may only contain A-Z a-z 0-9 _ . -",
                       shown(t->id, strlen(t->id), buf));
    for (size_t j = 0; j < i; j++)
        if (!strcmp(arr[j].id, t->id))
            return fail_at(L, found[0], "duplicate tenant id '%s'", t->id);
    pop(L, old);
    if (!t->n_jwt_secrets && !t->n_jwt_public_keys)
        return fail_at(L, it, "tenant '%s' needs a jwt_secret or a jwt_public_key", t->id);
    return 0;
}

static int fn_tenants(loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (is_null(v)) return 0;
    if (get_seq(L, v, &items, &n) < 0) return -1;
    if (n == 0) return 0; /* same as absent: single tenant */
    cfg_tenant *arr = pl_calloc(n, sizeof(*arr));
    if (!arr) return oom(L, v);
    for (size_t i = 0; i < n; i++) {
        size_t old = push_index(L, i);
        if (parse_tenant(L, item_node(L, items, i, v), arr, i) < 0) {
            tenants_free(arr, n);
            return -1;
        }
        pop(L, old);
    }
    tenants_free(c->tenants, c->n_tenants);
    c->tenants = arr;
    c->n_tenants = n;
    c->single_tenant = false;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Namespaces                                                                */

static void ns_init(cfg_namespace *ns)
{
    memset(ns, 0, sizeof(*ns));
    ns->history_size = 1000;
    ns->history_ttl_ms = 24 * 3600 * 1000LL;
    ns->presence = true;
    ns->read_cursors = true;
    ns->client_publish = true;
    ns->cls = PUB_STANDARD;
    ns->max_attempts = 7;
    ns->ack_wait_ms = 5000;
    ns->retry_min_ms = 1000;
    ns->retry_max_ms = 5 * 60 * 1000;
}

static int fn_class(loader *L, yaml_node_t *v, void *obj)
{
    static const char *const names[] = {"ephemeral", "standard", "guaranteed"};
    cfg_namespace *ns = obj;
    const char *s = "";
    char buf[48];
    if (get_str(L, v, &s) < 0) return -1;
    for (int i = 0; i < 3; i++) {
        if (!strcmp(s, names[i])) {
            ns->cls = (pub_class)i;
            return 0;
        }
    }
    return fail_at(L, v, "unknown class '%s' (ephemeral, standard or guaranteed)",
                   shown(s, slen(v), buf));
}

static const key_spec namespace_keys[] = {
    KS("name", cfg_namespace, name),
    KU("history_size", cfg_namespace, history_size, 0, UINT32_MAX),
    KD("history_ttl", cfg_namespace, history_ttl_ms, 0),
    KB("presence", cfg_namespace, presence),
    KB("join_leave", cfg_namespace, join_leave),
    KB("read_cursors", cfg_namespace, read_cursors),
    KB("client_publish", cfg_namespace, client_publish),
    KB("private", cfg_namespace, is_private),
    KF("class", fn_class),
    KU("max_attempts", cfg_namespace, max_attempts, 1, 1000),
    KD("ack_wait", cfg_namespace, ack_wait_ms, 1),
    KD("retry_min", cfg_namespace, retry_min_ms, 1),
    KD("retry_max", cfg_namespace, retry_max_ms, 1),
    KU("publishes_per_second", cfg_namespace, publishes_per_second, 0, UINT32_MAX),
};

static void namespaces_free(cfg_namespace *ns, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pl_free(ns[i].name);
    pl_free(ns);
}

static int parse_namespace(loader *L, yaml_node_t *it, cfg_namespace *arr, size_t i)
{
    yaml_node_t *found[NSPEC(namespace_keys)];
    cfg_namespace *ns = &arr[i];
    if (parse_map(L, it, namespace_keys, NSPEC(namespace_keys), ns, found) < 0) return -1;
    if (!ns->name)
        return fail_at(L, it, "missing key 'name' (the default namespace is name: \"\")");
    char buf[48];
    size_t old = push_key(L, "name");
    if (*ns->name && !name_ok(ns->name))
        return fail_at(L, found[0], "namespace name '%s' may only contain A-Z a-z 0-9 _ . -",
                       shown(ns->name, strlen(ns->name), buf));
    for (size_t j = 0; j < i; j++)
        if (!strcmp(arr[j].name, ns->name))
            return fail_at(L, found[0], "duplicate namespace name '%s'", ns->name);
    pop(L, old);
    if (ns->retry_min_ms > ns->retry_max_ms) {
        yaml_node_t *at = found[spec_index(namespace_keys, NSPEC(namespace_keys), "retry_min")];
        return fail_at(L, at ? at : it, "retry_min exceeds retry_max");
    }
    return 0;
}

static int fn_namespaces(loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (is_null(v)) return 0;
    if (get_seq(L, v, &items, &n) < 0) return -1;
    if (n == 0) return 0; /* same as absent: the default namespaces */
    cfg_namespace *arr = pl_calloc(n, sizeof(*arr));
    if (!arr) return oom(L, v);
    for (size_t i = 0; i < n; i++)
        ns_init(&arr[i]);
    for (size_t i = 0; i < n; i++) {
        size_t old = push_index(L, i);
        if (parse_namespace(L, item_node(L, items, i, v), arr, i) < 0) {
            namespaces_free(arr, n);
            return -1;
        }
        pop(L, old);
    }
    namespaces_free(c->namespaces, c->n_namespaces);
    c->namespaces = arr;
    c->n_namespaces = n;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Webhooks, routes, inbound                                                 */

/* Fills a missing tenant with "default" when single-tenant, and checks that
 * the tenant exists. at is the tenant value node or the item. */
static int resolve_tenant(loader *L, char **tenant, yaml_node_t *tnode, yaml_node_t *item)
{
    const config *c = L->c;
    if (!*tenant) {
        if (!c->single_tenant) return fail_at(L, item, "missing key 'tenant'");
        *tenant = pl_strdup("default");
        return *tenant ? 0 : oom(L, item);
    }
    if (config_tenant(c, *tenant)) return 0;
    char buf[48];
    size_t old = push_key(L, "tenant");
    fail_at(L, tnode, "unknown tenant '%s'", shown(*tenant, strlen(*tenant), buf));
    pop(L, old);
    return -1;
}

static int fn_retry_schedule(loader *L, yaml_node_t *v, void *obj)
{
    cfg_webhook *w = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (get_seq(L, v, &items, &n) < 0) return -1;
    if (n == 0) return fail_at(L, v, "must list at least one delay");
    int64_t *arr = pl_calloc(n, sizeof(*arr));
    if (!arr) return oom(L, v);
    for (size_t i = 0; i < n; i++) {
        size_t old = push_index(L, i);
        if (get_duration(L, item_node(L, items, i, v), 0, &arr[i]) < 0) {
            pl_free(arr);
            return -1;
        }
        pop(L, old);
    }
    pl_free(w->retry_schedule_ms);
    w->retry_schedule_ms = arr;
    w->n_retry_schedule = n;
    return 0;
}

static const key_spec webhook_keys[] = {
    KNS("id", cfg_webhook, id),
    KNS("tenant", cfg_webhook, tenant),
    KNS("url", cfg_webhook, url),
    KNS("secret", cfg_webhook, secret),
    KU("max_attempts", cfg_webhook, max_attempts, 1, 100),
    KF("retry_schedule", fn_retry_schedule),
};

static const int64_t default_schedule[] = {5000,     300000,   1800000, 7200000,
                                           18000000, 36000000, 36000000};

static void webhook_free(cfg_webhook *w)
{
    pl_free(w->id);
    pl_free(w->tenant);
    pl_free(w->url);
    pl_free(w->secret);
    pl_free(w->retry_schedule_ms);
}

static void webhooks_free(cfg_webhook *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        webhook_free(&w[i]);
    pl_free(w);
}

/* Ids double as URL path segments and route targets: unique, safe chars. */
static int check_id(loader *L, const char *what, const char *id, yaml_node_t *at, size_t i,
                    const void *arr, size_t stride, size_t id_off)
{
    char buf[48];
    size_t old = push_key(L, "id");
    if (!name_ok(id))
        return fail_at(L, at, "%s id '%s' may only contain A-Z a-z 0-9 _ . -", what,
                       shown(id, strlen(id), buf));
    for (size_t j = 0; j < i; j++) {
        const char *other = *(char *const *)(const void *)((const char *)arr + j * stride + id_off);
        if (!strcmp(other, id)) return fail_at(L, at, "duplicate %s id '%s'", what, id);
    }
    pop(L, old);
    return 0;
}

static int parse_webhook(loader *L, yaml_node_t *it, cfg_webhook *arr, size_t i)
{
    yaml_node_t *found[NSPEC(webhook_keys)];
    cfg_webhook *w = &arr[i];
    if (parse_map(L, it, webhook_keys, NSPEC(webhook_keys), w, found) < 0) return -1;
    if (!w->id) return fail_at(L, it, "missing key 'id'");
    if (check_id(L, "webhook", w->id, found[0], i, arr, sizeof(*arr), offsetof(cfg_webhook, id)) <
        0)
        return -1;
    if (resolve_tenant(L, &w->tenant, found[1], it) < 0) return -1;
    if (!w->url) return fail_at(L, it, "missing key 'url'");
    if (strncmp(w->url, "http://", 7) && strncmp(w->url, "https://", 8)) {
        push_key(L, "url");
        return fail_at(L, found[2], "must be an http:// or https:// URL");
    }
    if (!w->secret) return fail_at(L, it, "missing key 'secret'");
    return 0;
}

static int fn_webhooks(loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (is_null(v)) return 0;
    if (get_seq(L, v, &items, &n) < 0) return -1;
    cfg_webhook *arr = pl_calloc(n, sizeof(*arr));
    if (!arr) return oom(L, v);
    c->webhooks = arr; /* owned by c from here so failures release it */
    for (size_t i = 0; i < n; i++) {
        cfg_webhook *w = &arr[i];
        w->max_attempts = 8;
        w->retry_schedule_ms = pl_malloc(sizeof(default_schedule));
        c->n_webhooks = i + 1;
        if (!w->retry_schedule_ms) return oom(L, v);
        memcpy(w->retry_schedule_ms, default_schedule, sizeof(default_schedule));
        w->n_retry_schedule = NSPEC(default_schedule);
        size_t old = push_index(L, i);
        if (parse_webhook(L, item_node(L, items, i, v), arr, i) < 0) return -1;
        pop(L, old);
    }
    return 0;
}

static const key_spec match_keys[] = {
    KNS("channel", cfg_route, match_channel),
    KNS("type", cfg_route, match_type),
};

static const key_spec action_keys[] = {
    KNS("webhook", cfg_route, action_webhook),
    KNS("publish", cfg_route, action_publish),
};

static int fn_match(loader *L, yaml_node_t *v, void *obj)
{
    return parse_map(L, v, match_keys, NSPEC(match_keys), obj, NULL);
}

static int fn_action(loader *L, yaml_node_t *v, void *obj)
{
    cfg_route *r = obj;
    yaml_node_t *found[NSPEC(action_keys)];
    if (parse_map(L, v, action_keys, NSPEC(action_keys), r, found) < 0) return -1;
    if (!!r->action_webhook == !!r->action_publish)
        return fail_at(L, v, "needs exactly one of 'webhook' or 'publish'");
    L->action_webhook = found[0];
    return 0;
}

static const key_spec route_keys[] = {
    KNS("id", cfg_route, id),
    KNS("tenant", cfg_route, tenant),
    KF("match", fn_match),
    KF("action", fn_action),
};

static void route_free(cfg_route *r)
{
    pl_free(r->id);
    pl_free(r->tenant);
    pl_free(r->match_channel);
    pl_free(r->match_type);
    pl_free(r->action_webhook);
    pl_free(r->action_publish);
}

/* A route may only deliver to an endpoint of its own tenant. */
static int check_route_webhook(loader *L, const cfg_route *r)
{
    const config *c = L->c;
    char buf[48];
    size_t old = push_key(L, "action");
    push_key(L, "webhook");
    for (size_t i = 0; i < c->n_webhooks; i++) {
        if (strcmp(c->webhooks[i].id, r->action_webhook)) continue;
        if (strcmp(c->webhooks[i].tenant, r->tenant))
            return fail_at(L, L->action_webhook, "webhook '%s' belongs to tenant '%s'",
                           r->action_webhook, c->webhooks[i].tenant);
        pop(L, old);
        return 0;
    }
    return fail_at(L, L->action_webhook, "unknown webhook '%s'",
                   shown(r->action_webhook, strlen(r->action_webhook), buf));
}

static int parse_route(loader *L, yaml_node_t *it, cfg_route *arr, size_t i)
{
    yaml_node_t *found[NSPEC(route_keys)];
    cfg_route *r = &arr[i];
    L->action_webhook = NULL;
    if (parse_map(L, it, route_keys, NSPEC(route_keys), r, found) < 0) return -1;
    if (!r->id) return fail_at(L, it, "missing key 'id'");
    if (check_id(L, "route", r->id, found[0], i, arr, sizeof(*arr), offsetof(cfg_route, id)) < 0)
        return -1;
    if (resolve_tenant(L, &r->tenant, found[1], it) < 0) return -1;
    if (!found[3]) return fail_at(L, it, "missing key 'action'");
    if (r->action_webhook) return check_route_webhook(L, r);
    return 0;
}

static int fn_routes(loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (is_null(v)) return 0;
    if (get_seq(L, v, &items, &n) < 0) return -1;
    c->routes = pl_calloc(n, sizeof(*c->routes));
    if (!c->routes) return oom(L, v);
    c->n_routes = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = item_node(L, items, i, v);
        size_t old = push_index(L, i);
        if (parse_route(L, it, c->routes, i) < 0) return -1;
        pop(L, old);
    }
    return 0;
}

static int fn_scheme(loader *L, yaml_node_t *v, void *obj)
{
    cfg_inbound *in = obj;
    const char *s = "";
    char buf[48];
    if (get_str(L, v, &s) < 0) return -1;
    if (strcmp(s, "standard-webhooks") && strcmp(s, "hmac-sha256"))
        return fail_at(L, v, "unknown scheme '%s' (standard-webhooks or hmac-sha256)",
                       shown(s, slen(v), buf));
    return set_str(L, v, &in->scheme, true);
}

static const key_spec inbound_keys[] = {
    KNS("id", cfg_inbound, id),
    KNS("tenant", cfg_inbound, tenant),
    KF("scheme", fn_scheme),
    KNS("header", cfg_inbound, header),
    KNS("secret", cfg_inbound, secret),
    KNS("channel", cfg_inbound, channel),
    KNS("type", cfg_inbound, type),
    KD("tolerance", cfg_inbound, tolerance_ms, 1000),
};

static void inbound_free(cfg_inbound *in)
{
    pl_free(in->id);
    pl_free(in->tenant);
    pl_free(in->scheme);
    pl_free(in->header);
    pl_free(in->secret);
    pl_free(in->channel);
    pl_free(in->type);
}

static int parse_inbound(loader *L, yaml_node_t *it, cfg_inbound *arr, size_t i)
{
    yaml_node_t *found[NSPEC(inbound_keys)];
    cfg_inbound *in = &arr[i];
    in->tolerance_ms = 5 * 60 * 1000;
    if (parse_map(L, it, inbound_keys, NSPEC(inbound_keys), in, found) < 0) return -1;
    if (!in->id) return fail_at(L, it, "missing key 'id'");
    if (check_id(L, "inbound", in->id, found[0], i, arr, sizeof(*arr), offsetof(cfg_inbound, id)) <
        0)
        return -1;
    if (resolve_tenant(L, &in->tenant, found[1], it) < 0) return -1;
    if (!in->scheme) return fail_at(L, it, "missing key 'scheme'");
    if (!strcmp(in->scheme, "hmac-sha256") && !in->header)
        return fail_at(L, it, "scheme hmac-sha256 needs a 'header'");
    if (!in->secret) return fail_at(L, it, "missing key 'secret'");
    if (!in->channel) return fail_at(L, it, "missing key 'channel'");
    return 0;
}

static int fn_inbound(loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (is_null(v)) return 0;
    if (get_seq(L, v, &items, &n) < 0) return -1;
    c->inbound = pl_calloc(n, sizeof(*c->inbound));
    if (!c->inbound) return oom(L, v);
    c->n_inbound = n;
    for (size_t i = 0; i < n; i++) {
        size_t old = push_index(L, i);
        if (parse_inbound(L, item_node(L, items, i, v), c->inbound, i) < 0) return -1;
        pop(L, old);
    }
    return 0;
}

/* Order matters: tenants before the sections that refer to them, webhooks
 * before routes. */
static const key_spec root_keys[] = {
    KF("listen", fn_listen),
    KNS("data_dir", config, data_dir),
    KF("engine", fn_engine),
    KNS("admin_key", config, admin_key),
    KD("ping_interval", config, ping_interval_ms, 1),
    KI("workers", config, workers, 0, 1024),
    KD("dedup_window", config, dedup_window_ms, 0),
    KB("dev_tokens", config, dev_tokens),
    KF("limits", fn_limits),
    KF("tenants", fn_tenants),
    KF("namespaces", fn_namespaces),
    KF("webhooks", fn_webhooks),
    KF("routes", fn_routes),
    KF("inbound", fn_inbound),
};

_Static_assert(NSPEC(root_keys) <= MAX_KEYS, "parse_map's local table is too small");
_Static_assert(NSPEC(namespace_keys) <= MAX_KEYS, "parse_map's local table is too small");

/* ------------------------------------------------------------------------ */
/* Entry points                                                              */

static void syntax_error(yaml_parser_t *p, const char *yaml, size_t len, char *err, size_t errlen)
{
    char msg[300];
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->error == YAML_MEMORY_ERROR) {
        set_err(err, errlen, 1, 1, "out of memory");
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        size_t off = p->problem_offset < len ? p->problem_offset : len;
        line = 1;
        col = 1;
        for (size_t i = 0; i < off; i++) {
            if (yaml[i] == '\n')
                line++, col = 1;
            else
                col++;
        }
    }
    snprintf(msg, sizeof(msg), "syntax error: %s%s%s", p->problem ? p->problem : "invalid YAML",
             p->context ? " " : "", p->context ? p->context : "");
    set_err(err, errlen, line, col, msg);
}

/* First pass over the event stream: syntax errors, aliases, several
 * documents and excessive nesting are refused before a tree is built. */
static int prescan(const char *yaml, size_t len, char *err, size_t errlen)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int depth = 0, docs = 0, rc = -1;
    if (!yaml_parser_initialize(&p)) {
        set_err(err, errlen, 1, 1, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(&p, yaml, len, err, errlen);
            break;
        }
        yaml_event_type_t t = ev.type;
        size_t line = ev.start_mark.line + 1, col = ev.start_mark.column + 1;
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT) {
            rc = 0;
            break;
        }
        if (t == YAML_ALIAS_EVENT) {
            set_err(err, errlen, line, col, "aliases (*name) are not allowed in the configuration");
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            set_err(err, errlen, line, col, "only one YAML document is allowed");
            break;
        }
        if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) {
            if (++depth > MAX_DEPTH) {
                set_err(err, errlen, line, col, "nesting too deep");
                break;
            }
        }
        if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) depth--;
    }
    yaml_parser_delete(&p);
    return rc;
}

int config_defaults(config *c)
{
    static const char *const ns_names[] = {"", "chat", "news", "dm", "inbox"};
    memset(c, 0, sizeof(*c));
    c->listen_host = pl_strdup("127.0.0.1");
    c->data_dir = pl_strdup("./data");
    c->engine_type = pl_strdup("sqlite");
    c->tenants = pl_calloc(1, sizeof(*c->tenants));
    c->namespaces = pl_calloc(NSPEC(ns_names), sizeof(*c->namespaces));
    if (!c->listen_host || !c->data_dir || !c->engine_type || !c->tenants || !c->namespaces)
        goto fail;
    c->listen_port = 8080;
    c->ping_interval_ms = 25000;
    c->dedup_window_ms = 24 * 3600 * 1000LL;
    c->single_tenant = true;
    c->limits = (cfg_limits){
        .max_message_bytes = 65536,
        .max_frame_bytes = 1 << 20,
        .max_channels_per_connection = 128,
        .outbound_queue_bytes = 1 << 20,
        .max_connections_per_ip = 10000,
        .handshake_timeout_ms = 10000,
        .idle_timeout_ms = 0,
        .max_body_bytes = 1 << 20,
        .commands_per_second = 0,
        .typing_interval_ms = 2000,
    };
    c->n_tenants = 1;
    c->tenants[0].id = pl_strdup("default");
    if (!c->tenants[0].id) goto fail;
    c->n_namespaces = NSPEC(ns_names);
    for (size_t i = 0; i < NSPEC(ns_names); i++) {
        ns_init(&c->namespaces[i]);
        c->namespaces[i].name = pl_strdup(ns_names[i]);
        if (!c->namespaces[i].name) goto fail;
    }
    c->namespaces[1].join_leave = true;
    c->namespaces[2].client_publish = false;
    c->namespaces[4].cls = PUB_GUARANTEED;
    return 0;
fail:
    config_release(c);
    return -1;
}

int config_load_string(config *c, const char *yaml, size_t len, char *err, size_t errlen)
{
    loader L = {.c = c, .err = err, .errlen = errlen};
    yaml_parser_t p;
    int have_parser = 0, have_doc = 0;
    if (err && errlen) err[0] = '\0';
    if (config_defaults(c) < 0) {
        set_err(err, errlen, 1, 1, "out of memory");
        memset(c, 0, sizeof(*c));
        return -1;
    }
    if (!yaml) yaml = "", len = 0;
    if (len > MAX_CONFIG_BYTES) {
        set_err(err, errlen, 1, 1, "configuration larger than 16 MiB");
        goto fail;
    }
    if (prescan(yaml, len, err, errlen) < 0) goto fail;
    if (!yaml_parser_initialize(&p)) {
        set_err(err, errlen, 1, 1, "out of memory");
        goto fail;
    }
    have_parser = 1;
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&p, &L.doc)) {
        syntax_error(&p, yaml, len, err, errlen);
        goto fail;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&L.doc);
    if (root && !is_null(root)) {
        if (root->type != YAML_MAPPING_NODE) {
            fail_at(&L, root, "the configuration must be a mapping of keys, got %s",
                    kind_name(root));
            goto fail;
        }
        if (parse_map(&L, root, root_keys, NSPEC(root_keys), c, NULL) < 0) goto fail;
    }
    yaml_document_delete(&L.doc);
    yaml_parser_delete(&p);
    return 0;
fail:
    if (have_doc) yaml_document_delete(&L.doc);
    if (have_parser) yaml_parser_delete(&p);
    config_release(c);
    return -1;
}

/* Reads at most MAX_CONFIG_BYTES + 1 bytes into a new buffer (caller frees). */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = pl_malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap > MAX_CONFIG_BYTES) break;
            char *nb = pl_realloc(buf, cap * 2);
            if (!nb) goto fail;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) goto fail;
        if (r == 0) break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
fail:
    pl_free(buf);
    return NULL;
}

int config_load_file(config *c, const char *path, char *err, size_t errlen)
{
    char inner[600];
    size_t len = 0;
    memset(c, 0, sizeof(*c));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    errno = 0;
    char *buf = read_all(fd, &len);
    int saved = errno;
    close(fd);
    if (!buf) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, saved ? strerror(saved) : "out of memory");
        return -1;
    }
    int rc = config_load_string(c, buf, len, inner, sizeof(inner));
    pl_free(buf);
    if (rc < 0 && err && errlen) snprintf(err, errlen, "%s:%s", path, inner);
    return rc;
}

void config_release(config *c)
{
    pl_free(c->listen_host);
    pl_free(c->data_dir);
    pl_free(c->engine_type);
    pl_free(c->engine_address);
    pl_free(c->admin_key);
    tenants_free(c->tenants, c->n_tenants);
    namespaces_free(c->namespaces, c->n_namespaces);
    webhooks_free(c->webhooks, c->n_webhooks);
    for (size_t i = 0; i < c->n_routes; i++)
        route_free(&c->routes[i]);
    pl_free(c->routes);
    for (size_t i = 0; i < c->n_inbound; i++)
        inbound_free(&c->inbound[i]);
    pl_free(c->inbound);
    memset(c, 0, sizeof(*c));
}

const cfg_namespace *config_namespace(const config *c, const char *channel, size_t len)
{
    if (!channel) channel = "";
    const char *colon = memchr(channel, ':', len);
    size_t n = colon ? (size_t)(colon - channel) : 0;
    for (size_t i = 0; i < c->n_namespaces; i++) {
        const char *name = c->namespaces[i].name;
        if (strlen(name) == n && !memcmp(name, channel, n)) return &c->namespaces[i];
    }
    return NULL;
}

const cfg_tenant *config_tenant(const config *c, const char *id)
{
    if (!id) return NULL;
    for (size_t i = 0; i < c->n_tenants; i++)
        if (c->tenants[i].id && !strcmp(c->tenants[i].id, id)) return &c->tenants[i];
    return NULL;
}
