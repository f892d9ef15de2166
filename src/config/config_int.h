/* Internals shared by the files of the configuration loader (src/config):
 * the loader state with its first-error rule, YAML node helpers, and the
 * key tables that cfg_parse_map walks. Nothing outside src/config uses it. */
#ifndef PL_CONFIG_INT_H
#define PL_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "config/config.h"

#define CFG_MAX_BYTES (16u << 20)
#define CFG_MAX_DEPTH 64
#define CFG_MAX_ITEMS 10000 /* list items in the whole file; keeps duplicate checks cheap */
#define CFG_MAX_KEYS 32     /* keys in one table */

/* One load in progress. The config being filled is borrowed; err is the
 * caller's buffer. */
typedef struct cfg_loader {
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
} cfg_loader;

/* ---- errors and the key path ------------------------------------------- */

/* Writes "LINE:COL: msg" into err (when there is room for anything). */
void cfg_set_err(char *err, size_t errlen, size_t line, size_t col, const char *msg);
/* Records the first error at node n (or at 1:1 when n is NULL), prefixed
 * with the current key path; later errors are dropped. Returns -1. */
__attribute__((format(printf, 3, 4))) int cfg_fail_at(cfg_loader *L, const yaml_node_t *n,
                                                      const char *fmt, ...);
int cfg_oom(cfg_loader *L, const yaml_node_t *n);
/* Path helpers: push returns the old length to restore with cfg_pop. */
size_t cfg_push_key(cfg_loader *L, const char *key);
size_t cfg_push_index(cfg_loader *L, size_t i);
void cfg_pop(cfg_loader *L, size_t old);
/* A printable, bounded copy of user text for messages; returns out. */
const char *cfg_shown(const char *s, size_t n, char out[48]);

/* ---- nodes and scalars --------------------------------------------------- */

static inline const char *cfg_sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static inline size_t cfg_slen(const yaml_node_t *n)
{
    return n->data.scalar.length;
}

int cfg_is_null(const yaml_node_t *n);
/* "a mapping", "a list", "null", ... for "expected X, got Y" messages. */
const char *cfg_kind_name(const yaml_node_t *n);
/* Points *out at the scalar's text (owned by the document); rejects
 * non-scalars, null and NUL bytes. */
int cfg_get_str(cfg_loader *L, const yaml_node_t *n, const char **out);
/* Replaces *dst (owned, freed here) with a copy of the string in n. */
int cfg_set_str(cfg_loader *L, const yaml_node_t *n, char **dst, bool nonempty);
int cfg_get_duration(cfg_loader *L, const yaml_node_t *n, int64_t min, int64_t *out);
/* 1 if s is non-empty and only A-Z a-z 0-9 _ . - (ids and names). */
int cfg_name_ok(const char *s);

/* ---- key tables ---------------------------------------------------------- */

typedef int (*cfg_key_fn)(cfg_loader *L, yaml_node_t *v, void *obj);

/* K_UNSUPPORTED: a key of a feature not built yet, refused wherever it
 * appears so that a file written for it never half-works. */
enum cfg_kind { K_STR, K_NESTR, K_BOOL, K_U32, K_INT, K_I64, K_DUR, K_FN, K_UNSUPPORTED };

typedef struct cfg_key_spec {
    const char *name;
    enum cfg_kind kind;
    size_t off;
    int64_t min, max; /* integers: range; durations: min only */
    cfg_key_fn fn;
} cfg_key_spec;

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
#define KX(n)                                                                                      \
    {                                                                                              \
        n, K_UNSUPPORTED, 0, 0, 0, NULL                                                            \
    }

/* Checks every key of the mapping against the table (unknown, duplicate and
 * unsupported keys are errors), then applies the values in table order so
 * that later sections can refer to earlier ones. found (may be NULL, else
 * n entries) receives the value node of each key present, for checks across
 * keys. A null mapping is an empty one. At most CFG_MAX_KEYS specs. */
int cfg_parse_map(cfg_loader *L, yaml_node_t *map, const cfg_key_spec *specs, size_t n, void *obj,
                  yaml_node_t **found);
/* The index of key in specs, for reading cfg_parse_map's found array. */
size_t cfg_spec_index(const cfg_key_spec *specs, size_t n, const char *key);
/* Validates a list node and charges its length to the file's item budget. */
int cfg_get_seq(cfg_loader *L, yaml_node_t *v, yaml_node_item_t **items, size_t *n);
/* Item i of a list, or parent when the document is malformed. */
yaml_node_t *cfg_item_node(cfg_loader *L, yaml_node_item_t *items, size_t i, yaml_node_t *parent);
/* A string or a list of strings, each non-empty; replaces *out (owned). */
int cfg_parse_strv(cfg_loader *L, yaml_node_t *v, char ***out, size_t *n_out);
void cfg_free_strv(char **v, size_t n);

/* The value node of key in a mapping, or NULL (absent, or map not a mapping). */
yaml_node_t *cfg_map_get(cfg_loader *L, yaml_node_t *map, const char *key);
/* 1 if b is standard base64 (padding optional): the light check of signing
 * keys, which the server decodes at start. Allocates nothing. */
int cfg_base64_ok(const char *b);

/* How a section that is a list of entries is read: each entry by parse
 * (into arr[i], arr zeroed, elements of size bytes), release frees n
 * entries of an array. */
typedef struct cfg_list {
    size_t size;
    int (*parse)(cfg_loader *L, yaml_node_t *it, void *arr, size_t i);
    void (*release)(void *arr, size_t n);
} cfg_list;

/* Reads the list v into a new array that replaces *list (released) when v
 * is a non-empty sequence; null or empty keeps the old list. 0 or -1. */
int cfg_parse_list(cfg_loader *L, yaml_node_t *v, const cfg_list *how, void **list, size_t *n_list);

/* ---- sections (tenants.c, namespaces.c, inbound.c, webhooks.c, routes.c) ---- */

/* Key functions of the root table: replace c's default list when the file
 * gives a non-empty one. obj is the config. */
int cfg_parse_tenants(cfg_loader *L, yaml_node_t *v, void *obj);
int cfg_parse_namespaces(cfg_loader *L, yaml_node_t *v, void *obj);
int cfg_parse_inbound(cfg_loader *L, yaml_node_t *v, void *obj);
void cfg_tenants_release(cfg_tenant *t, size_t n);
void cfg_inbound_release(cfg_inbound *in, size_t n);
void cfg_namespaces_release(cfg_namespace *ns, size_t n);
/* webhook_allowed_networks, webhooks (webhooks.c) and routes (routes.c);
 * obj is the config. Routes refer to webhooks, so webhooks come first. */
int cfg_parse_networks(cfg_loader *L, yaml_node_t *v, void *obj);
int cfg_parse_webhooks(cfg_loader *L, yaml_node_t *v, void *obj);
int cfg_parse_routes(cfg_loader *L, yaml_node_t *v, void *obj);
void cfg_webhooks_release(cfg_webhook *w, size_t n);
void cfg_routes_release(cfg_route *r, size_t n);
/* The id and tenant of a webhook or route (what: "webhook", "route"): the id's
 * syntax, then the tenant as inbound sources resolve it (required with
 * tenants, "default" without; *tenant is set when absent). it is the entry,
 * id_node and tenant_node (may be NULL) its values, for error positions. */
int cfg_check_owner(cfg_loader *L, yaml_node_t *it, yaml_node_t *id_node, yaml_node_t *tenant_node,
                    const char *id, char **tenant, const char *what);
/* A namespace's `redact` list (redact.c); obj is the cfg_namespace. */
int cfg_parse_redact(cfg_loader *L, yaml_node_t *v, void *obj);
void cfg_redact_release(cfg_redact *r, size_t n);
/* Replaces c's allowed_origins with the development default. -1 when out
 * of memory (c unchanged). */
int cfg_dev_origins(config *c);
/* Sets the documented defaults of one namespace (name NULL). */
void cfg_namespace_init(cfg_namespace *ns);

#endif
