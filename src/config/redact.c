/* A namespace's `redact` list: paths into pub data and headers to remove or
 * mask before a pub leaves the trust boundary. Validated here with line
 * numbers; compiled by hooks/redact.c, which config sits below. */
#include <string.h>

#include "config/config_int.h"
#include "util/jpath.h"
#include "util/mem.h"

void cfg_redact_release(cfg_redact *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pl_free(r[i].path);
    pl_free(r);
}

static int fn_action(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_redact *r = obj;
    const char *s = "";
    char buf[48];
    if (cfg_get_str(L, v, &s) < 0) return -1;
    if (!strcmp(s, "remove") || !strcmp(s, "mask")) {
        r->mask = s[0] == 'm';
        return 0;
    }
    return cfg_fail_at(L, v, "unknown action '%s' (remove or mask)",
                       cfg_shown(s, cfg_slen(v), buf));
}

static const cfg_key_spec redact_keys[] = {
    KNS("path", cfg_redact, path),
    KF("action", fn_action),
};

/* The path's syntax and root; at is where to point an error. */
static int check_path(cfg_loader *L, const yaml_node_t *at, const char *path)
{
    jpath jp;
    char buf[48];
    const char *why = jpath_parse(path, &jp);
    if (why)
        return cfg_fail_at(L, at, "bad path '%s': %s", cfg_shown(path, strlen(path), buf), why);
    int data = jp.seg[0].n == 4 && !memcmp(jp.seg[0].s, "data", 4);
    int headers = jp.seg[0].n == 7 && !memcmp(jp.seg[0].s, "headers", 7);
    if ((!data && !headers) || jp.n < 2)
        return cfg_fail_at(L, at, "bad path '%s': must start with data. or headers.",
                           cfg_shown(path, strlen(path), buf));
    return 0;
}

static int parse_entry(cfg_loader *L, yaml_node_t *it, cfg_redact *r)
{
    if (it->type == YAML_SCALAR_NODE) { /* a bare path: remove */
        if (cfg_set_str(L, it, &r->path, true) < 0) return -1;
        return check_path(L, it, r->path);
    }
    if (it->type != YAML_MAPPING_NODE)
        return cfg_fail_at(L, it, "expected a path or {path, action}, got %s", cfg_kind_name(it));
    yaml_node_t *found[NSPEC(redact_keys)];
    if (cfg_parse_map(L, it, redact_keys, NSPEC(redact_keys), r, found) < 0) return -1;
    if (!r->path) return cfg_fail_at(L, it, "missing key 'path'");
    size_t old = cfg_push_key(L, "path");
    if (check_path(L, found[0], r->path) < 0) return -1;
    cfg_pop(L, old);
    return 0;
}

int cfg_parse_redact(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_namespace *ns = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (cfg_is_null(v)) return 0;
    if (cfg_get_seq(L, v, &items, &n) < 0) return -1;
    if (n > CFG_MAX_REDACT) return cfg_fail_at(L, v, "%zu entries; at most %d", n, CFG_MAX_REDACT);
    if (n == 0) return 0;
    cfg_redact *arr = pl_calloc(n, sizeof(*arr));
    if (!arr) return cfg_oom(L, v);
    /* Owned by the namespace from here, so a failure below is freed with it. */
    cfg_redact_release(ns->redact, ns->n_redact);
    ns->redact = arr;
    ns->n_redact = n;
    for (size_t i = 0; i < n; i++) {
        size_t old = cfg_push_index(L, i);
        if (parse_entry(L, cfg_item_node(L, items, i, v), &arr[i]) < 0) return -1;
        cfg_pop(L, old);
    }
    return 0;
}
