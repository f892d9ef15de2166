/* The tenants section: ids, JWT secrets and public keys, API keys with their
 * scopes (unique across all tenants) and per-tenant quotas. */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <string.h>

#include "config/config_int.h"
#include "config/vocab.h"
#include "util/mem.h"

/* Scope names are the shared vocabulary's; the key store turns them into
 * bits when the server loads the keys. */
static int fn_scopes(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_api_key *k = obj;
    if (v->type != YAML_SEQUENCE_NODE)
        return cfg_fail_at(L, v, "expected a list of scopes, got %s", cfg_kind_name(v));
    if (cfg_parse_strv(L, v, &k->scopes, &k->n_scopes) < 0) return -1;
    if (k->n_scopes == 0) return cfg_fail_at(L, v, "must list at least one scope");
    for (size_t i = 0; i < k->n_scopes; i++) {
        if (vocab_scope_known(k->scopes[i])) continue;
        char buf[48];
        yaml_node_t *it = cfg_item_node(L, v->data.sequence.items.start, i, v);
        return cfg_fail_at(L, it, "unknown scope '%s'",
                           cfg_shown(k->scopes[i], strlen(k->scopes[i]), buf));
    }
    return 0;
}

static const cfg_key_spec api_key_keys[] = {
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
    cfg_free_strv(k->scopes, k->n_scopes);
}

static int fn_api_keys(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_tenant *t = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (cfg_get_seq(L, v, &items, &n) < 0) return -1;
    for (size_t i = 0; i < t->n_api_keys; i++)
        api_key_free(&t->api_keys[i]);
    pl_free(t->api_keys);
    t->n_api_keys = 0;
    t->api_keys = pl_calloc(n, sizeof(*t->api_keys));
    if (!t->api_keys) return cfg_oom(L, v);
    t->n_api_keys = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = cfg_item_node(L, items, i, v), *found[NSPEC(api_key_keys)];
        size_t old = cfg_push_index(L, i);
        if (cfg_parse_map(L, it, api_key_keys, NSPEC(api_key_keys), &t->api_keys[i], found) < 0)
            return -1;
        cfg_api_key *k = &t->api_keys[i];
        if (!k->key) return cfg_fail_at(L, it, "missing key 'key'");
        if (!k->scopes) return cfg_fail_at(L, it, "missing key 'scopes'");
        int dup = key_taken(t, i, k->key);
        for (size_t j = 0; j < L->n_tenants_so_far && !dup; j++)
            dup = key_taken(&L->tenants_so_far[j], L->tenants_so_far[j].n_api_keys, k->key);
        if (dup) {
            cfg_push_key(L, "key");
            return cfg_fail_at(L, found[0],
                               "duplicate API key (keys must be unique across tenants)");
        }
        cfg_pop(L, old);
    }
    return 0;
}

static int fn_jwt_secret(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_tenant *t = obj;
    return cfg_parse_strv(L, v, &t->jwt_secrets, &t->n_jwt_secrets);
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

static int fn_jwt_public_key(cfg_loader *L, yaml_node_t *v, void *obj)
{
    cfg_tenant *t = obj;
    if (cfg_parse_strv(L, v, &t->jwt_public_keys, &t->n_jwt_public_keys) < 0) return -1;
    for (size_t i = 0; i < t->n_jwt_public_keys; i++) {
        if (pem_ok(t->jwt_public_keys[i])) continue;
        yaml_node_t *at = v->type == YAML_SEQUENCE_NODE
                              ? cfg_item_node(L, v->data.sequence.items.start, i, v)
                              : v;
        return cfg_fail_at(L, at, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
    }
    return 0;
}

static const cfg_key_spec tenant_keys[] = {
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
    cfg_free_strv(t->jwt_secrets, t->n_jwt_secrets);
    cfg_free_strv(t->jwt_public_keys, t->n_jwt_public_keys);
    for (size_t i = 0; i < t->n_api_keys; i++)
        api_key_free(&t->api_keys[i]);
    pl_free(t->api_keys);
}

void cfg_tenants_release(cfg_tenant *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tenant_free(&t[i]);
    pl_free(t);
}

static int parse_tenant(cfg_loader *L, yaml_node_t *it, cfg_tenant *arr, size_t i)
{
    yaml_node_t *found[NSPEC(tenant_keys)];
    cfg_tenant *t = &arr[i];
    L->tenants_so_far = arr;
    L->n_tenants_so_far = i;
    if (cfg_parse_map(L, it, tenant_keys, NSPEC(tenant_keys), t, found) < 0) return -1;
    if (!t->id) return cfg_fail_at(L, it, "missing key 'id'");
    char buf[48];
    size_t old = cfg_push_key(L, "id");
    if (!cfg_name_ok(t->id))
        return cfg_fail_at(L, found[0], "tenant id '%s' may only contain A-Z a-z 0-9 _ . -",
                           cfg_shown(t->id, strlen(t->id), buf));
    for (size_t j = 0; j < i; j++)
        if (!strcmp(arr[j].id, t->id))
            return cfg_fail_at(L, found[0], "duplicate tenant id '%s'", t->id);
    cfg_pop(L, old);
    if (!t->n_jwt_secrets && !t->n_jwt_public_keys)
        return cfg_fail_at(L, it, "tenant '%s' needs a jwt_secret or a jwt_public_key", t->id);
    size_t sb = cfg_spec_index(tenant_keys, NSPEC(tenant_keys), "storage_bytes");
    if (L->c->engine_type == CFG_ENGINE_REDIS && found[sb]) {
        cfg_push_key(L, "storage_bytes");
        return cfg_fail_at(L, found[sb],
                           "needs engine type sqlite (the redis engine does not "
                           "count stored bytes)");
    }
    return 0;
}

int cfg_parse_tenants(cfg_loader *L, yaml_node_t *v, void *obj)
{
    config *c = obj;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (cfg_is_null(v)) return 0;
    if (cfg_get_seq(L, v, &items, &n) < 0) return -1;
    if (n == 0) return 0; /* same as absent: single tenant */
    cfg_tenant *arr = pl_calloc(n, sizeof(*arr));
    if (!arr) return cfg_oom(L, v);
    for (size_t i = 0; i < n; i++) {
        size_t old = cfg_push_index(L, i);
        if (parse_tenant(L, cfg_item_node(L, items, i, v), arr, i) < 0) {
            cfg_tenants_release(arr, n);
            return -1;
        }
        cfg_pop(L, old);
    }
    cfg_tenants_release(c->tenants, c->n_tenants);
    c->tenants = arr;
    c->n_tenants = n;
    c->single_tenant = false;
    return 0;
}

const cfg_tenant *config_tenant(const config *c, const char *id)
{
    if (!id) return NULL;
    for (size_t i = 0; i < c->n_tenants; i++)
        if (c->tenants[i].id && !strcmp(c->tenants[i].id, id)) return &c->tenants[i];
    return NULL;
}
