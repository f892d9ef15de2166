/* The routes section: rules over committed pubs and their action (a webhook
 * of the same tenant, or a channel to publish to). A rule's `match` is kept
 * as compact JSON for the rule compiler (hooks/rule.h), which checks its
 * meaning, with the line and column of every member so that the compiler's
 * errors can point into the file. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"
#include "util/mem.h"
#include "util/sbuf.h"

#define MATCH_MAX_DEPTH 32  /* mappings and lists inside a match, itself included */
#define MATCH_MAX_PATH 1024 /* bytes of a member's path, e.g. "match.where.data.x" */
#define CHANNEL_MAX 255     /* as the protocol's channel names */

/* One match being converted: its JSON text, the path of the node being
 * visited, and the route whose marks are filled (owned by it as they are
 * added, so a failure frees them with the route). */
typedef struct match_conv {
    cfg_loader *L;
    cfg_route *r;
    size_t cap; /* of r->marks */
    sbuf json;
    sbuf path;
} match_conv;

/* ------------------------------------------------------------------------ */
/* YAML to JSON                                                              */

static int add_mark(match_conv *m, const yaml_node_t *n)
{
    cfg_route *r = m->r;
    if (m->path.oom) return cfg_oom(m->L, n);
    if (r->n_marks == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        cfg_mark *grown = pl_realloc(r->marks, cap * sizeof(*grown));
        if (!grown) return cfg_oom(m->L, n);
        r->marks = grown;
        m->cap = cap;
    }
    cfg_mark *mk = &r->marks[r->n_marks];
    mk->path = pl_strndup(m->path.data, m->path.len);
    if (!mk->path) return cfg_oom(m->L, n);
    mk->line = n->start_mark.line + 1;
    mk->col = n->start_mark.column + 1;
    r->n_marks++;
    return 0;
}

/* JSON's number syntax: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
 * *integer is set when there is neither fraction nor exponent. */
static int json_number(const char *s, size_t n, int *integer)
{
    size_t i = s[0] == '-', d;
    if (i == n || s[i] < '0' || s[i] > '9') return 0;
    if (s[i++] != '0')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    *integer = 1;
    if (i < n && s[i] == '.') {
        for (d = ++i; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        }
        if (i == d) return 0;
        *integer = 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i += i + 1 < n && (s[i + 1] == '+' || s[i + 1] == '-') ? 2 : 1;
        for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        }
        if (i == d) return 0;
        *integer = 0;
    }
    return i == n;
}

static int one_of(const char *s, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, words[i])) return 1;
    return 0;
}

/* A plain scalar: null, a boolean, a number when it is one in JSON's
 * syntax, else a string. YAML's infinities and NaN have no JSON form. */
static int emit_plain(match_conv *m, const yaml_node_t *n)
{
    static const char *const yes[] = {"true", "True", "TRUE"}, *const no[] = {"false", "False",
                                                                              "FALSE"};
    static const char *const odd[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf", "+.INF",
                                      "-.inf", "-.Inf", "-.INF", ".nan",  ".NaN",  ".NAN"};
    const char *s = cfg_sval(n);
    size_t len = cfg_slen(n);
    char buf[48];
    int integer = 0;
    if (cfg_is_null(n)) return sbuf_puts(&m->json, "null"), 0;
    if (one_of(s, yes, NSPEC(yes))) return sbuf_puts(&m->json, "true"), 0;
    if (one_of(s, no, NSPEC(no))) return sbuf_puts(&m->json, "false"), 0;
    if (one_of(s, odd, NSPEC(odd)))
        return cfg_fail_at(m->L, n, "'%s' has no JSON form (quote it for a string)",
                           cfg_shown(s, len, buf));
    if (json_number(s, len, &integer)) {
        /* Integers past 64 bits do not load as JSON integers either. */
        int bad = 0;
        errno = 0;
        if (integer)
            bad = strtoll(s, NULL, 10) && errno == ERANGE;
        else
            bad = !isfinite(strtod(s, NULL));
        if (bad) return cfg_fail_at(m->L, n, "number '%s' is out of range", cfg_shown(s, len, buf));
        sbuf_append(&m->json, s, len);
        return 0;
    }
    sbuf_json_str(&m->json, s, len);
    return 0;
}

static int emit_scalar(match_conv *m, const yaml_node_t *n)
{
    if (memchr(cfg_sval(n), '\0', cfg_slen(n)))
        return cfg_fail_at(m->L, n, "string contains a NUL byte");
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) return emit_plain(m, n);
    sbuf_json_str(&m->json, cfg_sval(n), cfg_slen(n)); /* quoted or block: a string */
    return 0;
}

static int emit_node(match_conv *m, yaml_node_t *n, int depth);

/* Appends a segment to both paths: the mark's and the loader's (messages). */
static int path_push(match_conv *m, const yaml_node_t *at, const char *key, size_t i, size_t old[2])
{
    old[0] = m->path.len;
    old[1] = key ? cfg_push_key(m->L, key) : cfg_push_index(m->L, i);
    if (key) {
        sbuf_putc(&m->path, '.');
        sbuf_puts(&m->path, key);
    } else {
        sbuf_printf(&m->path, "[%zu]", i);
    }
    if (m->path.len > MATCH_MAX_PATH)
        return cfg_fail_at(m->L, at, "path longer than %d bytes", MATCH_MAX_PATH);
    return 0;
}

static void path_pop(match_conv *m, const size_t old[2])
{
    if (m->path.data) m->path.data[old[0]] = '\0';
    m->path.len = old[0];
    cfg_pop(m->L, old[1]);
}

static int emit_seq(match_conv *m, yaml_node_t *n, int depth)
{
    yaml_node_item_t *items = NULL;
    size_t count = 0, old[2];
    if (cfg_get_seq(m->L, n, &items, &count) < 0) return -1;
    sbuf_putc(&m->json, '[');
    for (size_t i = 0; i < count; i++) {
        if (i) sbuf_putc(&m->json, ',');
        yaml_node_t *it = cfg_item_node(m->L, items, i, n);
        if (path_push(m, it, NULL, i, old) < 0 || emit_node(m, it, depth + 1) < 0) return -1;
        path_pop(m, old);
    }
    sbuf_putc(&m->json, ']');
    return 0;
}

/* A key must be a string, present once in its mapping. */
static int check_key(match_conv *m, yaml_node_pair_t *first, yaml_node_pair_t *p, yaml_node_t *k)
{
    char buf[48];
    if (k->type != YAML_SCALAR_NODE)
        return cfg_fail_at(m->L, k, "keys must be strings, got %s", cfg_kind_name(k));
    if (memchr(cfg_sval(k), '\0', cfg_slen(k)))
        return cfg_fail_at(m->L, k, "key contains a NUL byte");
    for (yaml_node_pair_t *q = first; q < p; q++) {
        yaml_node_t *prev = yaml_document_get_node(&m->L->doc, q->key);
        if (prev && prev->type == YAML_SCALAR_NODE && cfg_slen(prev) == cfg_slen(k) &&
            !memcmp(cfg_sval(prev), cfg_sval(k), cfg_slen(k)))
            return cfg_fail_at(m->L, k, "duplicate key '%s'",
                               cfg_shown(cfg_sval(k), cfg_slen(k), buf));
    }
    return 0;
}

static int emit_map(match_conv *m, yaml_node_t *n, int depth)
{
    yaml_node_pair_t *first = n->data.mapping.pairs.start, *top = n->data.mapping.pairs.top;
    size_t old[2];
    /* Members share the file's item budget, which bounds the duplicate
     * checks' quadratic cost. */
    m->L->items += (size_t)(top - first);
    if (m->L->items > CFG_MAX_ITEMS)
        return cfg_fail_at(m->L, n, "too many list items and match members (at most %d)",
                           CFG_MAX_ITEMS);
    sbuf_putc(&m->json, '{');
    for (yaml_node_pair_t *p = first; p < top; p++) {
        yaml_node_t *k = yaml_document_get_node(&m->L->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&m->L->doc, p->value);
        if (!k || !v) return cfg_fail_at(m->L, n, "malformed mapping");
        if (check_key(m, first, p, k) < 0) return -1;
        if (p > first) sbuf_putc(&m->json, ',');
        sbuf_json_str(&m->json, cfg_sval(k), cfg_slen(k));
        sbuf_putc(&m->json, ':');
        if (path_push(m, k, cfg_sval(k), 0, old) < 0 || emit_node(m, v, depth + 1) < 0) return -1;
        path_pop(m, old);
    }
    sbuf_putc(&m->json, '}');
    return 0;
}

static int emit_node(match_conv *m, yaml_node_t *n, int depth)
{
    int rc = 0;
    if (add_mark(m, n) < 0) return -1;
    if (n->type != YAML_SCALAR_NODE && depth > MATCH_MAX_DEPTH)
        return cfg_fail_at(m->L, n, "nesting deeper than %d levels", MATCH_MAX_DEPTH);
    if (n->type == YAML_MAPPING_NODE)
        rc = emit_map(m, n, depth);
    else if (n->type == YAML_SEQUENCE_NODE)
        rc = emit_seq(m, n, depth);
    else
        rc = emit_scalar(m, n);
    if (rc == 0 && m->json.oom) return cfg_oom(m->L, n);
    return rc;
}

static int fn_match(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_route *r = obj;
    match_conv m = {.L = L, .r = r};
    int rc = -1;
    sbuf_init(&m.json);
    sbuf_init(&m.path);
    sbuf_puts(&m.path, "match");
    if (cfg_is_null(v)) {
        sbuf_puts(&m.json, "{}"); /* `match:` with no value: every pub, like no key */
        rc = add_mark(&m, v);
        if (rc == 0 && m.json.oom) rc = cfg_oom(L, v);
    } else if (v->type != YAML_MAPPING_NODE) {
        cfg_fail_at(L, v, "expected a mapping, got %s", cfg_kind_name(v));
    } else {
        rc = emit_node(&m, v, 1);
    }
    if (rc == 0) {
        pl_free(r->match);
        r->match = m.json.data; /* the sbuf's buffer is a pl_malloc'd string */
        sbuf_init(&m.json);
    }
    sbuf_release(&m.json);
    sbuf_release(&m.path);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The action                                                                */

static const cfg_key_spec action_keys[] = {
    KNS("webhook", cfg_route, webhook),
    KNS("publish", cfg_route, publish),
};

static int fn_action(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_route *r = obj;
    if (v->type != YAML_MAPPING_NODE)
        return cfg_fail_at(L, v, "expected {webhook: ID} or {publish: CHANNEL}, got %s",
                           cfg_kind_name(v));
    if (cfg_parse_map(L, v, action_keys, NSPEC(action_keys), r, NULL) < 0) return -1;
    if (!r->webhook == !r->publish)
        return cfg_fail_at(L, v, "needs exactly one of {webhook: ID} or {publish: CHANNEL}");
    return 0;
}

/* The protocol's channel names: [A-Za-z0-9_-./=@], one ':' after the
 * namespace, one '#' before the user list, ',' between users. */
static int channel_ok(const char *s, size_t n)
{
    int colon = 0, hash = 0;
    size_t start = 0; /* where the current segment began */
    if (n == 0 || n > CHANNEL_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            (ch && strchr("_-./=@", ch)))
            continue;
        if (ch == ':' && !colon && !hash && i > 0)
            colon = 1;
        else if (ch == '#' && !hash)
            hash = 1;
        else if (!(ch == ',' && hash && i > start))
            return 0;
        start = i + 1;
    }
    return start != n;
}

/* The webhook of the same tenant, or the other tenants' one named alike
 * for the message. */
static int check_webhook(cfg_loader *L, yaml_node_t *at, const cfg_route *r)
{
    const config *c = L->c;
    char buf[48], tbuf[48];
    if (config_webhook(c, r->tenant, r->webhook)) return 0;
    const char *shown = cfg_shown(r->webhook, strlen(r->webhook), buf);
    const char *tenant = cfg_shown(r->tenant, strlen(r->tenant), tbuf);
    for (size_t i = 0; i < c->n_webhooks; i++)
        if (!strcmp(c->webhooks[i].id, r->webhook))
            return cfg_fail_at(L, at,
                               "no webhook '%s' in tenant '%s' (a webhook '%s' belongs to another "
                               "tenant, '%s'; a route may only use its own tenant's webhooks)",
                               shown, tenant, shown, c->webhooks[i].tenant);
    return cfg_fail_at(L, at, "no webhook '%s' in tenant '%s'", shown, tenant);
}

static int check_action(cfg_loader *L, yaml_node_t *it, const cfg_route *r)
{
    yaml_node_t *an = cfg_map_get(L, it, "action");
    yaml_node_t *at = an ? cfg_map_get(L, an, r->webhook ? "webhook" : "publish") : NULL;
    char buf[48];
    cfg_push_key(L, "action");
    cfg_push_key(L, r->webhook ? "webhook" : "publish");
    if (!at) at = it;
    if (r->webhook) return check_webhook(L, at, r);
    size_t n = strlen(r->publish);
    if (!channel_ok(r->publish, n))
        return cfg_fail_at(L, at, "'%s' is not a valid channel name",
                           cfg_shown(r->publish, n, buf));
    const cfg_namespace *ns = config_namespace(L->c, r->publish, n);
    if (!ns)
        return cfg_fail_at(L, at, "channel '%s' is in no configured namespace",
                           cfg_shown(r->publish, n, buf));
    /* A route's output must be in the log other routes and clients resume from. */
    if (ns->cls == PUB_EPHEMERAL)
        return cfg_fail_at(L, at, "channel '%s' is ephemeral: a route publishes to stored channels",
                           cfg_shown(r->publish, n, buf));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Entries                                                                   */

static const cfg_key_spec route_keys[] = {
    KNS("id", cfg_route, id), KNS("tenant", cfg_route, tenant),  KF("match", fn_match),
    KF("action", fn_action),  KB("enabled", cfg_route, enabled),
};

static int parse_route(cfg_loader *L, yaml_node_t *it, cfg_route *arr, size_t i)
{
    yaml_node_t *found[NSPEC(route_keys)];
    cfg_route *r = &arr[i];
    r->enabled = true;
    if (cfg_parse_map(L, it, route_keys, NSPEC(route_keys), r, found) < 0) return -1;
    if (!r->id) return cfg_fail_at(L, it, "missing key 'id'");
    if (!r->webhook && !r->publish) return cfg_fail_at(L, it, "missing key 'action'");
    yaml_node_t *idn = found[0];
    if (cfg_check_owner(L, it, idn, found[1], r->id, &r->tenant, "route") < 0) return -1;
    size_t old = cfg_push_key(L, "id");
    for (size_t j = 0; j < i; j++)
        if (!strcmp(arr[j].id, r->id) && !strcmp(arr[j].tenant, r->tenant))
            return cfg_fail_at(L, idn, "duplicate route id '%s' in tenant '%s'", r->id, r->tenant);
    cfg_pop(L, old);
    if (!r->match && !(r->match = pl_strdup("{}"))) return cfg_oom(L, it);
    old = L->plen;
    if (check_action(L, it, r) < 0) return -1;
    cfg_pop(L, old);
    return 0;
}

void cfg_routes_release(cfg_route *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pl_free(r[i].id);
        pl_free(r[i].tenant);
        pl_free(r[i].match);
        for (size_t j = 0; j < r[i].n_marks; j++)
            pl_free(r[i].marks[j].path);
        pl_free(r[i].marks);
        pl_free(r[i].webhook);
        pl_free(r[i].publish);
    }
    pl_free(r);
}

static int parse_entry(cfg_loader *L, yaml_node_t *it, void *arr, size_t i)
{
    return parse_route(L, it, arr, i);
}

static void release_entries(void *arr, size_t n)
{
    cfg_routes_release(arr, n);
}

int cfg_parse_routes(cfg_loader *L, yaml_node_t *v, void *obj)
{
    static const cfg_list how = {sizeof(cfg_route), parse_entry, release_entries};
    config *c = obj;
    /* The redis engine has no committed log for them to run from yet. */
    if (c->engine_type == CFG_ENGINE_REDIS && v->type == YAML_SEQUENCE_NODE &&
        v->data.sequence.items.top != v->data.sequence.items.start)
        return cfg_fail_at(L, v,
                           "routes need engine type sqlite (the redis engine does not run them)");
    return cfg_parse_list(L, v, &how, (void **)&c->routes, &c->n_routes);
}

void config_route_mark(const cfg_route *r, const char *path, size_t *line, size_t *col)
{
    const cfg_mark *best = NULL;
    size_t best_len = 0;
    *line = *col = 0;
    for (size_t i = 0; path && i < r->n_marks; i++) {
        const cfg_mark *mk = &r->marks[i];
        size_t n = strlen(mk->path);
        /* A prefix only at a boundary: "match.type" is not in "match.typeX". */
        if (strncmp(path, mk->path, n) || (path[n] && path[n] != '.' && path[n] != '[')) continue;
        if (!best || n > best_len) best = mk, best_len = n;
    }
    if (best) *line = best->line, *col = best->col;
}
