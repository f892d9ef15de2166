/* The YAML walk of the configuration loader. libyaml parses; this file walks
 * the tree against key tables (one table per mapping, in the order the docs
 * list them) and validates, for the root, engine and limits sections itself
 * and through tenants.c, namespaces.c, inbound.c, webhooks.c and routes.c
 * for theirs. The first error wins and carries the line and column of the
 * offending key or value. Aliases are refused so a tiny file cannot expand
 * into a huge configuration, and nesting depth and item counts are capped. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_int.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/origin.h"

/* ------------------------------------------------------------------------ */
/* Errors and the key path                                                   */

void cfg_set_err(char *err, size_t errlen, size_t line, size_t col, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%zu:%zu: %s", line, col, msg);
}

__attribute__((format(printf, 3, 4))) int cfg_fail_at(cfg_loader *L, const yaml_node_t *n,
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
    cfg_set_err(L->err, L->errlen, line, col, msg);
    return -1;
}

int cfg_oom(cfg_loader *L, const yaml_node_t *n)
{
    return cfg_fail_at(L, n, "out of memory");
}

size_t cfg_push_key(cfg_loader *L, const char *key)
{
    size_t old = L->plen;
    int w = snprintf(L->path + old, sizeof(L->path) - old, "%s%s", old ? "." : "", key);
    if (w > 0) L->plen = old + (size_t)w < sizeof(L->path) ? old + (size_t)w : sizeof(L->path) - 1;
    return old;
}

size_t cfg_push_index(cfg_loader *L, size_t i)
{
    size_t old = L->plen;
    int w = snprintf(L->path + old, sizeof(L->path) - old, "[%zu]", i);
    if (w > 0) L->plen = old + (size_t)w < sizeof(L->path) ? old + (size_t)w : sizeof(L->path) - 1;
    return old;
}

void cfg_pop(cfg_loader *L, size_t old)
{
    L->plen = old;
    L->path[old] = '\0';
}

const char *cfg_shown(const char *s, size_t n, char out[48])
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

static yaml_node_t *node_at(cfg_loader *L, int index)
{
    return yaml_document_get_node(&L->doc, index);
}

static int is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

int cfg_is_null(const yaml_node_t *n)
{
    if (!is_plain(n)) return 0;
    const char *s = cfg_sval(n);
    return cfg_slen(n) == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

const char *cfg_kind_name(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (cfg_is_null(n)) return "null";
    return is_plain(n) ? "a plain value" : "a quoted string";
}

int cfg_get_str(cfg_loader *L, const yaml_node_t *n, const char **out)
{
    if (n->type != YAML_SCALAR_NODE || cfg_is_null(n))
        return cfg_fail_at(L, n, "expected a string, got %s", cfg_kind_name(n));
    if (memchr(cfg_sval(n), '\0', cfg_slen(n)))
        return cfg_fail_at(L, n, "string contains a NUL byte");
    *out = cfg_sval(n);
    return 0;
}

/* Decimal integer in a plain scalar, checked against [min, max]. */
static int get_int(cfg_loader *L, const yaml_node_t *n, int64_t min, int64_t max, int64_t *out)
{
    if (!is_plain(n) || cfg_is_null(n))
        return cfg_fail_at(L, n, "expected an integer, got %s", cfg_kind_name(n));
    const char *s = cfg_sval(n);
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == cfg_slen(n)) return cfg_fail_at(L, n, "expected an integer");
    for (size_t j = i; j < cfg_slen(n); j++)
        if (s[j] < '0' || s[j] > '9') return cfg_fail_at(L, n, "expected an integer");
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v < min || v > max) {
        if (s[0] == '-' && min >= 0) return cfg_fail_at(L, n, "must not be negative");
        return cfg_fail_at(L, n, "must be between %lld and %lld", (long long)min, (long long)max);
    }
    *out = v;
    return 0;
}

static int get_bool(cfg_loader *L, const yaml_node_t *n, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    if (is_plain(n) && !cfg_is_null(n)) {
        for (size_t i = 0; i < 3; i++) {
            if (!strcasecmp(cfg_sval(n), yes[i])) return *out = true, 0;
            if (!strcasecmp(cfg_sval(n), no[i])) return *out = false, 0;
        }
    }
    return cfg_fail_at(L, n, "expected true or false, got %s", cfg_kind_name(n));
}

int cfg_get_duration(cfg_loader *L, const yaml_node_t *n, int64_t min, int64_t *out)
{
    const char *s = "";
    if (n->type != YAML_SCALAR_NODE || cfg_is_null(n))
        return cfg_fail_at(L, n, "expected a duration like \"5s\", got %s", cfg_kind_name(n));
    if (cfg_get_str(L, n, &s) < 0) return -1;
    int64_t v = clock_parse_duration(s);
    char buf[48];
    if (v < 0)
        return cfg_fail_at(L, n,
                           "invalid duration '%s' (use e.g. \"200ms\", \"5s\", \"5m\", \"24h\")",
                           cfg_shown(s, cfg_slen(n), buf));
    if (v < min) return cfg_fail_at(L, n, "must be at least %lldms", (long long)min);
    *out = v;
    return 0;
}

int cfg_set_str(cfg_loader *L, const yaml_node_t *n, char **dst, bool nonempty)
{
    const char *s = "";
    if (cfg_get_str(L, n, &s) < 0) return -1;
    if (nonempty && !*s) return cfg_fail_at(L, n, "must not be empty");
    char *copy = pl_strndup(s, cfg_slen(n));
    if (!copy) return cfg_oom(L, n);
    pl_free(*dst);
    *dst = copy;
    return 0;
}

int cfg_name_ok(const char *s)
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

int cfg_base64_ok(const char *b)
{
    size_t n = strlen(b), body = n;
    while (body && b[body - 1] == '=' && n - body < 2)
        body--;
    /* One character of a group is 6 bits: never a whole byte. */
    if (!body || body % 4 == 1) return 0;
    for (size_t i = 0; i < body; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", b[i]) ||
            !b[i])
            return 0;
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

static int set_value(cfg_loader *L, const cfg_key_spec *k, yaml_node_t *v, void *obj)
{
    char *field = (char *)obj + k->off;
    int64_t i = 0;
    switch (k->kind) {
    case K_STR:
    case K_NESTR:
        return cfg_set_str(L, v, (char **)(void *)field, k->kind == K_NESTR);
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
        return cfg_get_duration(L, v, k->min, (int64_t *)(void *)field);
    case K_FN:
        return k->fn(L, v, obj);
    case K_UNSUPPORTED:
        break; /* refused while checking the keys */
    }
    return -1;
}

int cfg_parse_map(cfg_loader *L, yaml_node_t *map, const cfg_key_spec *specs, size_t n, void *obj,
                  yaml_node_t **found)
{
    yaml_node_t *local[CFG_MAX_KEYS];
    yaml_node_t **seen = found ? found : local;
    memset(seen, 0, n * sizeof(*seen));
    if (cfg_is_null(map)) return 0;
    if (map->type != YAML_MAPPING_NODE)
        return cfg_fail_at(L, map, "expected a mapping, got %s", cfg_kind_name(map));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(L, p->key), *v = node_at(L, p->value);
        if (!k || !v) return cfg_fail_at(L, map, "malformed mapping");
        if (k->type != YAML_SCALAR_NODE) return cfg_fail_at(L, k, "keys must be plain strings");
        size_t i = 0;
        while (i < n && !(strlen(specs[i].name) == cfg_slen(k) &&
                          !memcmp(specs[i].name, cfg_sval(k), cfg_slen(k))))
            i++;
        char buf[48];
        if (i == n)
            return cfg_fail_at(L, k, "unknown key '%s'", cfg_shown(cfg_sval(k), cfg_slen(k), buf));
        if (seen[i]) return cfg_fail_at(L, k, "duplicate key '%s'", specs[i].name);
        if (specs[i].kind == K_UNSUPPORTED) {
            cfg_push_key(L, specs[i].name);
            return cfg_fail_at(L, k, "not supported yet");
        }
        seen[i] = v;
    }
    for (size_t i = 0; i < n; i++) {
        if (!seen[i]) continue;
        size_t old = cfg_push_key(L, specs[i].name);
        if (set_value(L, &specs[i], seen[i], obj) < 0) return -1;
        cfg_pop(L, old);
    }
    return 0;
}

int cfg_get_seq(cfg_loader *L, yaml_node_t *v, yaml_node_item_t **items, size_t *n)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return cfg_fail_at(L, v, "expected a list, got %s", cfg_kind_name(v));
    *items = v->data.sequence.items.start;
    *n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    L->items += *n;
    if (L->items > CFG_MAX_ITEMS)
        return cfg_fail_at(L, v, "too many list items (at most %d)", CFG_MAX_ITEMS);
    return 0;
}

yaml_node_t *cfg_item_node(cfg_loader *L, yaml_node_item_t *items, size_t i, yaml_node_t *parent)
{
    yaml_node_t *n = items ? node_at(L, items[i]) : NULL;
    return n ? n : parent;
}

int cfg_parse_list(cfg_loader *L, yaml_node_t *v, const cfg_list *how, void **list, size_t *n_list)
{
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (cfg_is_null(v)) return 0;
    if (cfg_get_seq(L, v, &items, &n) < 0) return -1;
    if (n == 0) return 0;
    void *arr = pl_calloc(n, how->size);
    if (!arr) return cfg_oom(L, v);
    for (size_t i = 0; i < n; i++) {
        size_t old = cfg_push_index(L, i);
        if (how->parse(L, cfg_item_node(L, items, i, v), arr, i) < 0) {
            how->release(arr, n);
            return -1;
        }
        cfg_pop(L, old);
    }
    how->release(*list, *n_list);
    *list = arr;
    *n_list = n;
    return 0;
}

yaml_node_t *cfg_map_get(cfg_loader *L, yaml_node_t *map, const char *key)
{
    if (map->type != YAML_MAPPING_NODE) return NULL;
    size_t n = strlen(key);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(L, p->key);
        if (k && k->type == YAML_SCALAR_NODE && cfg_slen(k) == n && !memcmp(cfg_sval(k), key, n))
            return node_at(L, p->value);
    }
    return NULL;
}

size_t cfg_spec_index(const cfg_key_spec *specs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(specs[i].name, key)) return i;
    return 0;
}

void cfg_free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pl_free(v[i]);
    pl_free(v);
}

int cfg_parse_strv(cfg_loader *L, yaml_node_t *v, char ***out, size_t *n_out)
{
    yaml_node_item_t *items = NULL;
    size_t n = 1;
    int single = v->type == YAML_SCALAR_NODE;
    if (!single && cfg_get_seq(L, v, &items, &n) < 0) return -1;
    char **arr = pl_calloc(n, sizeof(*arr));
    if (!arr) return cfg_oom(L, v);
    size_t done = 0;
    for (; done < n; done++) {
        yaml_node_t *it = single ? v : cfg_item_node(L, items, done, v);
        size_t old = single ? L->plen : cfg_push_index(L, done);
        if (cfg_set_str(L, it, &arr[done], true) < 0) goto fail;
        cfg_pop(L, old);
    }
    cfg_free_strv(*out, *n_out);
    *out = arr;
    *n_out = n;
    return 0;
fail:
    cfg_free_strv(arr, done);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Root, engine and limits                                                   */

/* A "HOST:PORT" value into *host (replacing it) and *port. */
static int host_port_value(cfg_loader *L, yaml_node_t *v, char **host_out, int *port_out)
{
    const char *s = "";
    char *host = NULL, buf[48];
    int port;
    if (cfg_get_str(L, v, &s) < 0) return -1;
    int rc = split_host_port(s, &host, &port);
    if (rc == -2) return cfg_oom(L, v);
    if (rc < 0)
        return cfg_fail_at(L, v, "'%s' is not HOST:PORT with a port in 1..65535",
                           cfg_shown(s, cfg_slen(v), buf));
    pl_free(*host_out);
    *host_out = host;
    *port_out = port;
    return 0;
}

static int fn_listen(cfg_loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    return host_port_value(L, v, &c->listen_host, &c->listen_port);
}

static int fn_engine_type(cfg_loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    const char *s = "";
    char buf[48];
    if (cfg_get_str(L, v, &s) < 0) return -1;
    if (!strcmp(s, "redis"))
        c->engine_type = CFG_ENGINE_REDIS;
    else if (!strcmp(s, "sqlite"))
        c->engine_type = CFG_ENGINE_SQLITE;
    else
        return cfg_fail_at(L, v, "unknown engine type '%s' (sqlite or redis)",
                           cfg_shown(s, cfg_slen(v), buf));
    return 0;
}

static int fn_engine_address(cfg_loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    return host_port_value(L, v, &c->redis.host, &c->redis.port);
}

/* A key prefix names the cluster's keys: printable, no spaces, so that
 * redis-cli --scan "PREFIX:*" finds them all and nothing else. */
static int fn_engine_prefix(cfg_loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    const char *s = "";
    char buf[48];
    if (cfg_get_str(L, v, &s) < 0) return -1;
    size_t n = cfg_slen(v);
    int ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] > ' ' && s[i] < 127 && s[i] != '*' && s[i] != '?';
    if (!ok)
        return cfg_fail_at(L, v,
                           "'%s' is not a key prefix (1 to 64 printable characters, no "
                           "spaces, '*' or '?')",
                           cfg_shown(s, n, buf));
    char *dup = pl_strndup(s, n);
    if (!dup) return cfg_oom(L, v);
    pl_free(c->redis.prefix);
    c->redis.prefix = dup;
    return 0;
}

/* Each item of a string list checked by check (0, or -1 after cfg_fail_at)
 * into *out / *n, replacing what was there. */
static int str_list(cfg_loader *L, yaml_node_t *v,
                    int (*check)(cfg_loader *, yaml_node_t *, const char *), char ***out,
                    size_t *nout)
{
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (cfg_get_seq(L, v, &items, &n) < 0) return -1;
    char **arr = n ? pl_calloc(n, sizeof(*arr)) : NULL;
    if (n && !arr) return cfg_oom(L, v);
    size_t done = 0;
    for (; done < n; done++) {
        yaml_node_t *it = cfg_item_node(L, items, done, v);
        size_t old = cfg_push_index(L, done);
        if (cfg_set_str(L, it, &arr[done], true) < 0) goto fail;
        if (check(L, it, arr[done]) < 0) {
            done++;
            goto fail;
        }
        cfg_pop(L, old);
    }
    cfg_free_strv(*out, *nout);
    *out = arr;
    *nout = n;
    return 0;
fail:
    cfg_free_strv(arr, done);
    return -1;
}

static int check_host_port(cfg_loader *L, yaml_node_t *it, const char *s)
{
    char *host = NULL, buf[48];
    int port;
    int rc = split_host_port(s, &host, &port);
    pl_free(host);
    if (rc == -2) return cfg_oom(L, it);
    if (rc < 0)
        return cfg_fail_at(L, it, "'%s' is not HOST:PORT with a port in 1..65535",
                           cfg_shown(s, strlen(s), buf));
    return 0;
}

static int fn_sentinel_addresses(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_redis *r = obj;
    if (str_list(L, v, check_host_port, &r->sentinels, &r->n_sentinels) < 0) return -1;
    return r->n_sentinels ? 0 : cfg_fail_at(L, v, "needs at least one HOST:PORT");
}

static const cfg_key_spec sentinel_keys[] = {
    KF("addresses", fn_sentinel_addresses),
    KNS("master", cfg_redis, sentinel_master),
};

static int fn_sentinel(cfg_loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    if (cfg_parse_map(L, v, sentinel_keys, NSPEC(sentinel_keys), &c->redis, NULL) < 0) return -1;
    if (!c->redis.n_sentinels) return cfg_fail_at(L, v, "missing key 'addresses'");
    if (!c->redis.sentinel_master) return cfg_fail_at(L, v, "missing key 'master'");
    return 0;
}

static const cfg_key_spec engine_keys[] = {
    KF("type", fn_engine_type),
    KF("address", fn_engine_address),
    KNS("password", config, redis.password),
    KI("db", config, redis.db, 0, 1 << 20),
    KF("prefix", fn_engine_prefix),
    KU("notify_maxlen", config, redis.notify_maxlen, 1000, 100000000),
    KF("sentinel", fn_sentinel),
    KU("min_replicas_acked", config, redis.min_replicas_acked, 0, 16),
    KX("shards"),
    KL("max_db_bytes", config, engine_max_db_bytes, 0, INT64_MAX),
};

/* The connection keys (engine_keys[1..7]) mean nothing to SQLite, nor
 * max_db_bytes to Redis: given with the other engine they are errors, not
 * silently ignored. */
static int fn_engine(cfg_loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    yaml_node_t *found[NSPEC(engine_keys)] = {0};
    if (cfg_parse_map(L, v, engine_keys, NSPEC(engine_keys), obj, found) < 0) return -1;
    for (size_t i = 1; i <= 7 && c->engine_type != CFG_ENGINE_REDIS; i++) {
        if (!found[i]) continue;
        cfg_push_key(L, engine_keys[i].name);
        return cfg_fail_at(L, found[i], "only with engine type redis (the engine is sqlite)");
    }
    size_t mdb = cfg_spec_index(engine_keys, NSPEC(engine_keys), "max_db_bytes");
    if (c->engine_type == CFG_ENGINE_REDIS && found[mdb]) {
        cfg_push_key(L, "max_db_bytes");
        return cfg_fail_at(L, found[mdb], "only with engine type sqlite (Redis has maxmemory)");
    }
    return 0;
}

static const cfg_key_spec limit_keys[] = {
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
    KU("connects_per_second", cfg_limits, connects_per_second, 0, 1000000),
    KU("connect_burst", cfg_limits, connect_burst, 0, 1000000),
    KU("backlog_bytes", cfg_limits, backlog_bytes, 65536, 1u << 31),
    KU("backlog_shed_bytes", cfg_limits, backlog_shed_bytes, 65536, 1u << 31),
    KU("storage_queue_shed", cfg_limits, storage_queue_shed, 1, 1 << 24),
    KU("storage_queue_max", cfg_limits, storage_queue_max, 1, 1 << 24),
};

static int fn_limits(cfg_loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    yaml_node_t *found[NSPEC(limit_keys)];
    if (cfg_parse_map(L, v, limit_keys, NSPEC(limit_keys), &c->limits, found) < 0) return -1;
    if (c->limits.max_message_bytes > c->limits.max_frame_bytes) {
        yaml_node_t *at = found[cfg_spec_index(limit_keys, NSPEC(limit_keys), "max_message_bytes")];
        return cfg_fail_at(L, at ? at : v, "max_message_bytes (%u) exceeds max_frame_bytes (%u)",
                           c->limits.max_message_bytes, c->limits.max_frame_bytes);
    }
    if (c->limits.backlog_bytes > c->limits.backlog_shed_bytes) {
        yaml_node_t *at = found[cfg_spec_index(limit_keys, NSPEC(limit_keys), "backlog_bytes")];
        return cfg_fail_at(L, at ? at : v, "backlog_bytes (%u) exceeds backlog_shed_bytes (%u)",
                           c->limits.backlog_bytes, c->limits.backlog_shed_bytes);
    }
    if (c->limits.storage_queue_shed > c->limits.storage_queue_max) {
        yaml_node_t *at =
            found[cfg_spec_index(limit_keys, NSPEC(limit_keys), "storage_queue_shed")];
        return cfg_fail_at(L, at ? at : v, "storage_queue_shed (%u) exceeds storage_queue_max (%u)",
                           c->limits.storage_queue_shed, c->limits.storage_queue_max);
    }
    /* A burst without a rate limits nothing: most likely the rate was meant. */
    if (c->limits.connect_burst && !c->limits.connects_per_second) {
        yaml_node_t *at = found[cfg_spec_index(limit_keys, NSPEC(limit_keys), "connect_burst")];
        return cfg_fail_at(L, at ? at : v, "connect_burst (%u) needs connects_per_second",
                           c->limits.connect_burst);
    }
    return 0;
}

/* A list of origin patterns, each checked here so that a typo is a
 * line-numbered error rather than a browser silently refused. An empty list
 * allows no browser origin. */
static int check_origin(cfg_loader *L, yaml_node_t *it, const char *s)
{
    char buf[48];
    const char *why = origin_pattern_check(s, strlen(s));
    return why ? cfg_fail_at(L, it, "origin '%s' %s", cfg_shown(s, strlen(s), buf), why) : 0;
}

static int fn_allowed_origins(cfg_loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    return str_list(L, v, check_origin, &c->allowed_origins, &c->n_allowed_origins);
}

/* Order matters: tenants and namespaces before the sections that refer to
 * them, webhooks before the routes that name them. */
static const cfg_key_spec root_keys[] = {
    KF("listen", fn_listen),
    KNS("data_dir", config, data_dir),
    KS("web_root", config, web_root),
    KF("engine", fn_engine),
    KNS("admin_key", config, admin_key),
    KNS("metrics_token", config, metrics_token),
    KD("ping_interval", config, ping_interval_ms, 1),
    KI("workers", config, workers, 0, 1024),
    KD("dedup_window", config, dedup_window_ms, 0),
    KB("dev_tokens", config, dev_tokens),
    KF("allowed_origins", fn_allowed_origins),
    KF("limits", fn_limits),
    KF("tenants", cfg_parse_tenants),
    KF("namespaces", cfg_parse_namespaces),
    KF("webhook_allowed_networks", cfg_parse_networks),
    KF("webhooks", cfg_parse_webhooks),
    KF("routes", cfg_parse_routes),
    KF("inbound", cfg_parse_inbound),
};

_Static_assert(NSPEC(root_keys) <= CFG_MAX_KEYS, "cfg_parse_map's local table is too small");

/* ------------------------------------------------------------------------ */
/* Entry point                                                               */

static void syntax_error(yaml_parser_t *p, const char *yaml, size_t len, char *err, size_t errlen)
{
    char msg[300];
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->error == YAML_MEMORY_ERROR) {
        cfg_set_err(err, errlen, 1, 1, "out of memory");
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
    cfg_set_err(err, errlen, line, col, msg);
}

/* First pass over the event stream: syntax errors, aliases, several
 * documents and excessive nesting are refused before a tree is built. */
static int prescan(const char *yaml, size_t len, char *err, size_t errlen)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int depth = 0, docs = 0, rc = -1;
    if (!yaml_parser_initialize(&p)) {
        cfg_set_err(err, errlen, 1, 1, "out of memory");
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
            cfg_set_err(err, errlen, line, col,
                        "aliases (*name) are not allowed in the configuration");
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            cfg_set_err(err, errlen, line, col, "only one YAML document is allowed");
            break;
        }
        if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) {
            if (++depth > CFG_MAX_DEPTH) {
                cfg_set_err(err, errlen, line, col, "nesting too deep");
                break;
            }
        }
        if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) depth--;
    }
    yaml_parser_delete(&p);
    return rc;
}

int config_load_string(config *c, const char *yaml, size_t len, char *err, size_t errlen)
{
    cfg_loader L = {.c = c, .err = err, .errlen = errlen};
    yaml_parser_t p;
    int have_parser = 0, have_doc = 0;
    if (err && errlen) err[0] = '\0';
    if (config_defaults(c) < 0) {
        cfg_set_err(err, errlen, 1, 1, "out of memory");
        memset(c, 0, sizeof(*c));
        return -1;
    }
    if (!yaml) yaml = "", len = 0;
    if (len > CFG_MAX_BYTES) {
        cfg_set_err(err, errlen, 1, 1, "configuration larger than 16 MiB");
        goto fail;
    }
    if (prescan(yaml, len, err, errlen) < 0) goto fail;
    if (!yaml_parser_initialize(&p)) {
        cfg_set_err(err, errlen, 1, 1, "out of memory");
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
    if (root && !cfg_is_null(root)) {
        if (root->type != YAML_MAPPING_NODE) {
            cfg_fail_at(&L, root, "the configuration must be a mapping of keys, got %s",
                        cfg_kind_name(root));
            goto fail;
        }
        yaml_node_t *found[NSPEC(root_keys)];
        if (cfg_parse_map(&L, root, root_keys, NSPEC(root_keys), c, found) < 0) goto fail;
        /* With tenants the server is not a development one: browsers get in
         * only from origins the file names. */
        if (!c->single_tenant &&
            !found[cfg_spec_index(root_keys, NSPEC(root_keys), "allowed_origins")]) {
            cfg_free_strv(c->allowed_origins, c->n_allowed_origins);
            c->allowed_origins = NULL;
            c->n_allowed_origins = 0;
        }
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
