/* The namespaces section: per-namespace history, presence, publish class,
 * redelivery, slow-consumer and redaction settings (the `redact` list is parsed
 * in redact.c), and the lookup of a channel's namespace. */
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"
#include "config/vocab.h"
#include "util/mem.h"

void cfg_namespace_init(cfg_namespace *ns)
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

/* "ephemeral, standard or guaranteed", from the vocabulary, for messages. */
static const char *class_choices(char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; vocab_class_name((pub_class)i); i++) {
        const char *sep = !i ? "" : vocab_class_name((pub_class)(i + 1)) ? ", " : " or ";
        int w = snprintf(out + used, n - used, "%s%s", sep, vocab_class_name((pub_class)i));
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
    }
    return out;
}

static int fn_class(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_namespace *ns = obj;
    const char *s = "";
    char buf[48], choices[64];
    if (cfg_get_str(L, v, &s) < 0) return -1;
    if (!vocab_class_parse(s, cfg_slen(v), &ns->cls)) return 0;
    return cfg_fail_at(L, v, "unknown class '%s' (%s)", cfg_shown(s, cfg_slen(v), buf),
                       class_choices(choices, sizeof(choices)));
}

static int fn_slow_consumer(cfg_loader *L, yaml_node_t *v, void *obj)
{
    static const char *const names[] = {"disconnect", "drop_oldest", "latest"};
    cfg_namespace *ns = obj;
    const char *s = "";
    char buf[48];
    if (cfg_get_str(L, v, &s) < 0) return -1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == cfg_slen(v) && !memcmp(names[i], s, cfg_slen(v))) {
            ns->slow_consumer = (uint8_t)i; /* the order of enum cfg_slow */
            return 0;
        }
    return cfg_fail_at(L, v,
                       "unknown slow_consumer '%s' (expected one of disconnect, drop_oldest, "
                       "latest)",
                       cfg_shown(s, cfg_slen(v), buf));
}

static const cfg_key_spec namespace_keys[] = {
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
    KF("slow_consumer", fn_slow_consumer),
    KF("redact", cfg_parse_redact),
};

_Static_assert(NSPEC(namespace_keys) <= CFG_MAX_KEYS, "cfg_parse_map's local table is too small");

void cfg_namespaces_release(cfg_namespace *ns, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pl_free(ns[i].name);
        cfg_redact_release(ns[i].redact, ns[i].n_redact);
    }
    pl_free(ns);
}

static int parse_namespace(cfg_loader *L, yaml_node_t *it, cfg_namespace *arr, size_t i)
{
    yaml_node_t *found[NSPEC(namespace_keys)];
    cfg_namespace *ns = &arr[i];
    if (cfg_parse_map(L, it, namespace_keys, NSPEC(namespace_keys), ns, found) < 0) return -1;
    if (!ns->name)
        return cfg_fail_at(L, it, "missing key 'name' (the default namespace is name: \"\")");
    char buf[48];
    size_t old = cfg_push_key(L, "name");
    if (*ns->name && !cfg_name_ok(ns->name))
        return cfg_fail_at(L, found[0], "namespace name '%s' may only contain A-Z a-z 0-9 _ . -",
                           cfg_shown(ns->name, strlen(ns->name), buf));
    for (size_t j = 0; j < i; j++)
        if (!strcmp(arr[j].name, ns->name))
            return cfg_fail_at(L, found[0], "duplicate namespace name '%s'", ns->name);
    cfg_pop(L, old);
    if (ns->retry_min_ms > ns->retry_max_ms) {
        yaml_node_t *at = found[cfg_spec_index(namespace_keys, NSPEC(namespace_keys), "retry_min")];
        return cfg_fail_at(L, at ? at : it, "retry_min exceeds retry_max");
    }
    return 0;
}

int cfg_parse_namespaces(cfg_loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (cfg_is_null(v)) return 0;
    if (cfg_get_seq(L, v, &items, &n) < 0) return -1;
    if (n == 0) return 0; /* same as absent: the default namespaces */
    cfg_namespace *arr = pl_calloc(n, sizeof(*arr));
    if (!arr) return cfg_oom(L, v);
    for (size_t i = 0; i < n; i++)
        cfg_namespace_init(&arr[i]);
    for (size_t i = 0; i < n; i++) {
        size_t old = cfg_push_index(L, i);
        if (parse_namespace(L, cfg_item_node(L, items, i, v), arr, i) < 0) {
            cfg_namespaces_release(arr, n);
            return -1;
        }
        cfg_pop(L, old);
    }
    cfg_namespaces_release(c->namespaces, c->n_namespaces);
    c->namespaces = arr;
    c->n_namespaces = n;
    return 0;
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
