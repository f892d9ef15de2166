/* The inbound section: sources of signed webhooks from other systems, each
 * checked against the tenants, namespaces and dedup window read before it.
 * Keys are only checked lightly here; the server parses them at start. */
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"
#include "util/mem.h"

#define TOLERANCE_DEFAULT_MS (5 * 60 * 1000LL)
#define STANDARD_ID_HEADER "webhook-id"
#define HMAC_PREFIX_DEFAULT "sha256="

static const char *const scheme_names[] = {"standard-webhooks", "hmac-sha256", "stripe"};

const char *config_inbound_scheme_name(int scheme)
{
    return scheme >= 0 && scheme < 3 ? scheme_names[scheme] : "?";
}

static int fn_scheme(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_inbound *in = obj;
    const char *s = "";
    char buf[48];
    if (cfg_get_str(L, v, &s) < 0) return -1;
    for (size_t i = 0; i < NSPEC(scheme_names); i++)
        if (!strcmp(s, scheme_names[i])) {
            in->scheme = (uint8_t)i;
            return 0;
        }
    return cfg_fail_at(L, v, "unknown scheme '%s' (standard-webhooks, hmac-sha256 or stripe)",
                       cfg_shown(s, cfg_slen(v), buf));
}

static int fn_secret(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_inbound *in = obj;
    if (v->type == YAML_SEQUENCE_NODE && v->data.sequence.items.top == v->data.sequence.items.start)
        return cfg_fail_at(L, v, "must list at least one secret");
    return cfg_parse_strv(L, v, &in->secrets, &in->n_secrets);
}

static int fn_tolerance(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_inbound *in = obj;
    return cfg_get_duration(L, v, 1000, &in->tolerance_ms);
}

/* Applied in this order: scheme before the keys whose meaning depends on it. */
static const cfg_key_spec inbound_keys[] = {
    KNS("id", cfg_inbound, id),
    KF("scheme", fn_scheme),
    KNS("tenant", cfg_inbound, tenant),
    KF("secret", fn_secret),
    KNS("header", cfg_inbound, header),
    KS("prefix", cfg_inbound, prefix),
    KNS("id_header", cfg_inbound, id_header),
    KNS("channel", cfg_inbound, channel),
    KNS("type", cfg_inbound, type),
    KF("tolerance", fn_tolerance),
};

_Static_assert(NSPEC(inbound_keys) <= CFG_MAX_KEYS, "cfg_parse_map's local table is too small");

static yaml_node_t *at_key(yaml_node_t **found, const char *key, yaml_node_t *dflt)
{
    yaml_node_t *n = found[cfg_spec_index(inbound_keys, NSPEC(inbound_keys), key)];
    return n ? n : dflt;
}

/* 1 if s is a header name (an HTTP token: letters, digits and !#$%&'*+-.^_`|~). */
static int header_name_ok(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (!n) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              (ch && strchr(extra, ch))))
            return 0;
    }
    return 1;
}

/* The type template: text and {header:Name} placeholders; any other brace is
 * an error, so that a typo never becomes a literal type. NULL, or why not. */
static const char *template_error(const char *t)
{
    for (const char *p = t; *p; p++) {
        if (*p == '}') return "a '}' without its '{'";
        if (*p != '{') continue;
        const char *end = strchr(p, '}');
        if (!end) return "a '{' without its '}'";
        if (strncmp(p + 1, "header:", 7)) return "unknown placeholder (only {header:Name})";
        if (!header_name_ok(p + 8, (size_t)(end - p - 8)))
            return "{header:Name} needs a header name";
        p = end;
    }
    return NULL;
}

/* A light check of a standard-webhooks key: the prefix and standard base64
 * (padding optional). The server parses it fully (hooks/sign.h) at start. */
static const char *standard_key_error(const char *k)
{
    if (strncmp(k, "whsec_", 6) && strncmp(k, "whpk_", 5))
        return "a standard-webhooks secret starts with whsec_ (or whpk_ for v1a)";
    const char *b = k + (k[2] == 's' ? 6 : 5);
    return cfg_base64_ok(b) ? NULL : "the part after the prefix is not base64";
}

/* The scheme-dependent keys: what each scheme needs, refuses and defaults. */
static int check_scheme_keys(cfg_loader *L, yaml_node_t *it, yaml_node_t **found, cfg_inbound *in)
{
    int hmac = in->scheme == CFG_INBOUND_HMAC;
    const char *name = scheme_names[in->scheme];
    if (hmac && !in->header) return cfg_fail_at(L, it, "hmac-sha256 needs 'header'");
    if (!hmac && in->header)
        return cfg_fail_at(L, at_key(found, "header", it), "'header' is for hmac-sha256 only");
    if (!hmac && in->prefix)
        return cfg_fail_at(L, at_key(found, "prefix", it), "'prefix' is for hmac-sha256 only");
    if (hmac && found[cfg_spec_index(inbound_keys, NSPEC(inbound_keys), "tolerance")])
        return cfg_fail_at(L, at_key(found, "tolerance", it),
                           "'tolerance': hmac-sha256 signs no timestamp");
    if (in->scheme == CFG_INBOUND_STANDARD && in->id_header)
        return cfg_fail_at(L, at_key(found, "id_header", it),
                           "'id_header': standard-webhooks signs webhook-id, which is the id");
    if (in->header && !header_name_ok(in->header, strlen(in->header)))
        return cfg_fail_at(L, at_key(found, "header", it), "not a header name");
    if (in->id_header && !header_name_ok(in->id_header, strlen(in->id_header)))
        return cfg_fail_at(L, at_key(found, "id_header", it), "not a header name");
    char **fill = hmac && !in->prefix                  ? &in->prefix
                  : in->scheme == CFG_INBOUND_STANDARD ? &in->id_header
                                                       : NULL;
    const char *dflt = hmac ? HMAC_PREFIX_DEFAULT : STANDARD_ID_HEADER;
    if (fill && !(*fill = pl_strdup(dflt))) return cfg_oom(L, it);
    if (hmac) in->tolerance_ms = 0;
    for (size_t i = 0; i < in->n_secrets && in->scheme == CFG_INBOUND_STANDARD; i++) {
        const char *why = standard_key_error(in->secrets[i]);
        yaml_node_t *sv = at_key(found, "secret", it);
        if (why)
            return cfg_fail_at(L,
                               sv->type == YAML_SEQUENCE_NODE
                                   ? cfg_item_node(L, sv->data.sequence.items.start, i, sv)
                                   : sv,
                               "%s: %s", name, why);
    }
    return 0;
}

/* The keys that refer to other sections: tenant, channel, tolerance. */
static int check_refs(cfg_loader *L, yaml_node_t *it, yaml_node_t **found, cfg_inbound *in)
{
    const config *c = L->c;
    char buf[48];
    if (!in->tenant && !c->single_tenant)
        return cfg_fail_at(L, it, "missing key 'tenant' (required with tenants)");
    if (!in->tenant && !(in->tenant = pl_strdup("default"))) return cfg_oom(L, it);
    if (!config_tenant(c, in->tenant))
        return cfg_fail_at(L, at_key(found, "tenant", it), "unknown tenant '%s'",
                           cfg_shown(in->tenant, strlen(in->tenant), buf));
    yaml_node_t *ch = at_key(found, "channel", it);
    size_t n = strlen(in->channel);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)in->channel[i] <= ' ' || in->channel[i] == 0x7f)
            return cfg_fail_at(L, ch, "invalid channel name");
    const cfg_namespace *ns = n <= 255 ? config_namespace(c, in->channel, n) : NULL;
    if (!ns)
        return cfg_fail_at(L, ch, "channel '%s' is in no configured namespace",
                           cfg_shown(in->channel, n, buf));
    if (ns->cls == PUB_EPHEMERAL)
        return cfg_fail_at(L, ch,
                           "channel '%s': its namespace's class is ephemeral (inbound pubs "
                           "are stored, for replay protection)",
                           cfg_shown(in->channel, n, buf));
    /* A replay must land inside the window that remembers the first one. */
    if (in->tolerance_ms * 2 > c->dedup_window_ms)
        return cfg_fail_at(L, at_key(found, "tolerance", it),
                           "tolerance (%lldms) is more than half of dedup_window (%lldms)",
                           (long long)in->tolerance_ms, (long long)c->dedup_window_ms);
    return 0;
}

static int parse_source(cfg_loader *L, yaml_node_t *it, cfg_inbound *arr, size_t i)
{
    yaml_node_t *found[NSPEC(inbound_keys)];
    cfg_inbound *in = &arr[i];
    in->tolerance_ms = TOLERANCE_DEFAULT_MS;
    if (cfg_parse_map(L, it, inbound_keys, NSPEC(inbound_keys), in, found) < 0) return -1;
    static const char *const required[] = {"id", "scheme", "secret", "channel"};
    for (size_t k = 0; k < NSPEC(required); k++)
        if (!found[cfg_spec_index(inbound_keys, NSPEC(inbound_keys), required[k])])
            return cfg_fail_at(L, it, "missing key '%s'", required[k]);
    char buf[48];
    yaml_node_t *idn = found[0];
    size_t old = cfg_push_key(L, "id");
    if (!cfg_name_ok(in->id) || strlen(in->id) > CFG_INBOUND_ID_MAX)
        return cfg_fail_at(L, idn, "source id '%s' may only contain A-Z a-z 0-9 _ . - (at most %d)",
                           cfg_shown(in->id, strlen(in->id), buf), CFG_INBOUND_ID_MAX);
    for (size_t j = 0; j < i; j++)
        if (!strcmp(arr[j].id, in->id))
            return cfg_fail_at(L, idn, "duplicate inbound source id '%s'", in->id);
    cfg_pop(L, old);
    const char *why = in->type ? template_error(in->type) : NULL;
    if (why) return cfg_fail_at(L, at_key(found, "type", it), "type: %s", why);
    if (check_scheme_keys(L, it, found, in) < 0) return -1;
    return check_refs(L, it, found, in);
}

void cfg_inbound_release(cfg_inbound *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pl_free(in[i].id);
        pl_free(in[i].tenant);
        cfg_free_strv(in[i].secrets, in[i].n_secrets);
        pl_free(in[i].header);
        pl_free(in[i].prefix);
        pl_free(in[i].id_header);
        pl_free(in[i].channel);
        pl_free(in[i].type);
    }
    pl_free(in);
}

static int parse_entry(cfg_loader *L, yaml_node_t *it, void *arr, size_t i)
{
    return parse_source(L, it, arr, i);
}

static void release_entries(void *arr, size_t n)
{
    cfg_inbound_release(arr, n);
}

int cfg_parse_inbound(cfg_loader *L, yaml_node_t *v, void *obj)
{
    static const cfg_list how = {sizeof(cfg_inbound), parse_entry, release_entries};
    config *c = obj;
    return cfg_parse_list(L, v, &how, (void **)&c->inbound, &c->n_inbound);
}

const cfg_inbound *config_inbound(const config *c, const char *id, size_t n)
{
    for (size_t i = 0; i < c->n_inbound; i++)
        if (strlen(c->inbound[i].id) == n && !memcmp(c->inbound[i].id, id, n))
            return &c->inbound[i];
    return NULL;
}
