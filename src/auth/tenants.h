/* The tenant registry: every tenant's JWT key set and quotas, from the
 * configuration and from the admin API. Thread-safe; records are immutable
 * and replaced whole on update (copy-on-write), so a pointer from
 * tenants_get stays valid until tenants_free. Tenants created or changed
 * through the API are persisted in a JSON file (atomic rename + fsync). */
#ifndef PL_TENANTS_H
#define PL_TENANTS_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"
#include "util/sbuf.h"

typedef struct tenant {
    char *id;
    jwt_keys *keys;
    char **secrets; /* HS256; the first signs development tokens */
    size_t nsecrets;
    char **public_keys; /* PEM */
    size_t npublic_keys;
    uint32_t max_connections;
    uint32_t max_channels;
    uint32_t publishes_per_second;
    int64_t storage_bytes;
    uint32_t history_size; /* retention caps over the namespaces' (0 = none) */
    int64_t history_ttl_ms;
    int from_api; /* created or updated through the API: persisted */
} tenant;

/* What tenants_put takes; strings are copied. */
typedef struct tenant_spec {
    const char *id;
    const char *const *secrets;
    size_t nsecrets;
    const char *const *public_keys;
    size_t npublic_keys;
    uint32_t max_connections;
    uint32_t max_channels;
    uint32_t publishes_per_second;
    int64_t storage_bytes;
    uint32_t history_size;
    int64_t history_ttl_ms;
} tenant_spec;

typedef struct tenants tenants;

/* path: where API changes are persisted (NULL = nowhere). */
tenants *tenants_new(const char *path);
void tenants_free(tenants *t);
/* Creates or replaces a tenant. from_api marks it for persistence (and saves
 * the file). 0, or -1 with err (invalid key, no key at all, I/O, memory). */
int tenants_put(tenants *t, const tenant_spec *spec, int from_api, char *err, size_t errlen);
/* Validates a spec as tenants_put would (keys parse, at least one key),
 * changing nothing. 0, or -1 with err. */
int tenants_check(const tenant_spec *spec, char *err, size_t errlen);
/* The tenant, or NULL. */
const tenant *tenants_get(tenants *t, const char *id);
/* Appends a JSON array of {"id", quotas, "secrets": count, "public_keys": count}. */
void tenants_list(tenants *t, sbuf *out);
/* Loads the persisted API tenants (after the configured ones). 0 or -1. */
int tenants_load(tenants *t, char *err, size_t errlen);

#endif
