/* Tenant registry; see tenants.h. Replaced records are kept until
 * tenants_free because readers hold plain pointers without a lock. */
#include "auth/tenants.h"

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/mem.h"

struct tenants {
    pthread_rwlock_t lock;
    tenant **live;
    size_t n, cap;
    tenant **retired;
    size_t nretired, capretired;
    char *path;
};

static void tenant_free(tenant *t)
{
    if (!t) return;
    pl_free(t->id);
    jwt_keys_free(t->keys);
    for (size_t i = 0; i < t->nsecrets; i++)
        pl_free(t->secrets[i]);
    for (size_t i = 0; i < t->npublic_keys; i++)
        pl_free(t->public_keys[i]);
    pl_free(t->secrets);
    pl_free(t->public_keys);
    pl_free(t);
}

tenants *tenants_new(const char *path)
{
    tenants *t = pl_calloc(1, sizeof(*t));
    if (!t) return NULL;
    pthread_rwlock_init(&t->lock, NULL);
    if (path && !(t->path = pl_strdup(path))) {
        tenants_free(t);
        return NULL;
    }
    return t;
}

void tenants_free(tenants *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++)
        tenant_free(t->live[i]);
    for (size_t i = 0; i < t->nretired; i++)
        tenant_free(t->retired[i]);
    pl_free(t->live);
    pl_free(t->retired);
    pl_free(t->path);
    pthread_rwlock_destroy(&t->lock);
    pl_free(t);
}

static char **copy_list(const char *const *src, size_t n)
{
    char **d = pl_calloc(n, sizeof(*d));
    for (size_t i = 0; d && i < n; i++) {
        if ((d[i] = pl_strdup(src[i]))) continue;
        while (i)
            pl_free(d[--i]);
        pl_free(d);
        return NULL;
    }
    return d;
}

static tenant *build(const tenant_spec *s, int from_api, char *err, size_t errlen)
{
    tenant *t = pl_calloc(1, sizeof(*t));
    if (!t) goto oom;
    t->from_api = from_api;
    t->max_connections = s->max_connections;
    t->max_channels = s->max_channels;
    t->publishes_per_second = s->publishes_per_second;
    t->storage_bytes = s->storage_bytes;
    t->history_size = s->history_size;
    t->history_ttl_ms = s->history_ttl_ms;
    if (!(t->id = pl_strdup(s->id)) || !(t->keys = jwt_keys_new())) goto oom;
    if (s->nsecrets && !(t->secrets = copy_list(s->secrets, s->nsecrets))) goto oom;
    t->nsecrets = s->nsecrets;
    if (s->npublic_keys && !(t->public_keys = copy_list(s->public_keys, s->npublic_keys))) goto oom;
    t->npublic_keys = s->npublic_keys;
    if (!s->nsecrets && !s->npublic_keys) {
        snprintf(err, errlen, "tenant %s needs a jwt_secret or jwt_public_key", s->id);
        goto fail;
    }
    for (size_t i = 0; i < s->nsecrets; i++)
        if (strlen(s->secrets[i]) < 16 ||
            jwt_keys_add_hmac(t->keys, s->secrets[i], strlen(s->secrets[i]), NULL)) {
            snprintf(err, errlen, "tenant %s: JWT secrets must be at least 16 bytes", s->id);
            goto fail;
        }
    for (size_t i = 0; i < s->npublic_keys; i++)
        if (jwt_keys_add_pem(t->keys, s->public_keys[i], NULL)) {
            snprintf(err, errlen, "tenant %s: public key %zu is not an RSA or P-256 PEM", s->id, i);
            goto fail;
        }
    return t;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    tenant_free(t);
    return NULL;
}

static json_t *strs_json(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* Writes every API tenant to path.tmp, fsyncs, renames over path. */
static int save(tenants *t)
{
    if (!t->path) return 0;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < t->n; i++) {
        tenant *x = t->live[i];
        if (!x->from_api) continue;
        json_t *o =
            json_pack("{s:s,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:I}", "id", x->id, "jwt_secrets",
                      strs_json(x->secrets, x->nsecrets), "jwt_public_keys",
                      strs_json(x->public_keys, x->npublic_keys), "max_connections",
                      (json_int_t)x->max_connections, "max_channels", (json_int_t)x->max_channels,
                      "publishes_per_second", (json_int_t)x->publishes_per_second, "storage_bytes",
                      (json_int_t)x->storage_bytes, "history_size", (json_int_t)x->history_size,
                      "history_ttl_ms", (json_int_t)x->history_ttl_ms);
        if (o) json_array_append_new(arr, o);
    }
    char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    if (!text) return -1;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", t->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    size_t len = strlen(text);
    int rc = fd >= 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0) close(fd);
    free(text);
    if (rc == 0) rc = rename(tmp, t->path);
    return rc;
}

int tenants_check(const tenant_spec *spec, char *err, size_t errlen)
{
    tenant *x = build(spec, 0, err, errlen);
    tenant_free(x);
    return x ? 0 : -1;
}

int tenants_put(tenants *t, const tenant_spec *spec, int from_api, char *err, size_t errlen)
{
    tenant *x = build(spec, from_api, err, errlen);
    if (!x) return -1;
    int rc = -1;
    pthread_rwlock_wrlock(&t->lock);
    size_t i = 0;
    while (i < t->n && strcmp(t->live[i]->id, spec->id))
        i++;
    if (i == t->n && t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 8;
        tenant **nl = pl_realloc(t->live, ncap * sizeof(*nl));
        if (!nl) goto out;
        t->live = nl;
        t->cap = ncap;
    }
    if (i < t->n) {
        if (t->nretired == t->capretired) {
            size_t ncap = t->capretired ? t->capretired * 2 : 8;
            tenant **nr = pl_realloc(t->retired, ncap * sizeof(*nr));
            if (!nr) goto out;
            t->retired = nr;
            t->capretired = ncap;
        }
        t->retired[t->nretired++] = t->live[i];
    } else {
        t->n++;
    }
    t->live[i] = x;
    x = NULL;
    rc = from_api && save(t) ? -1 : 0;
    if (rc) snprintf(err, errlen, "cannot persist tenants");
out:
    pthread_rwlock_unlock(&t->lock);
    if (x) {
        snprintf(err, errlen, "out of memory");
        tenant_free(x);
    }
    return rc;
}

const tenant *tenants_get(tenants *t, const char *id)
{
    const tenant *found = NULL;
    if (!id) return NULL;
    pthread_rwlock_rdlock(&t->lock);
    for (size_t i = 0; i < t->n && !found; i++)
        if (!strcmp(t->live[i]->id, id)) found = t->live[i];
    pthread_rwlock_unlock(&t->lock);
    return found;
}

void tenants_list(tenants *t, sbuf *out)
{
    pthread_rwlock_rdlock(&t->lock);
    sbuf_putc(out, '[');
    for (size_t i = 0; i < t->n; i++) {
        tenant *x = t->live[i];
        if (i) sbuf_putc(out, ',');
        sbuf_puts(out, "{\"id\":");
        sbuf_json_str(out, x->id, strlen(x->id));
        sbuf_printf(out,
                    ",\"max_connections\":%u,\"max_channels\":%u,\"publishes_per_second\":%u,"
                    "\"storage_bytes\":%lld,\"history_size\":%u,\"history_ttl_ms\":%lld,"
                    "\"jwt_secrets\":%zu,\"jwt_public_keys\":%zu,"
                    "\"source\":\"%s\"}",
                    x->max_connections, x->max_channels, x->publishes_per_second,
                    (long long)x->storage_bytes, x->history_size, (long long)x->history_ttl_ms,
                    x->nsecrets, x->npublic_keys, x->from_api ? "api" : "config");
    }
    sbuf_putc(out, ']');
    pthread_rwlock_unlock(&t->lock);
}

static const char **json_strs(json_t *a, size_t *n)
{
    *n = json_is_array(a) ? json_array_size(a) : 0;
    const char **v = *n ? pl_calloc(*n, sizeof(*v)) : NULL;
    for (size_t i = 0; v && i < *n; i++)
        v[i] = json_string_value(json_array_get(a, i));
    for (size_t i = 0; v && i < *n; i++)
        if (!v[i]) {
            pl_free(v);
            return NULL;
        }
    return v;
}

int tenants_load(tenants *t, char *err, size_t errlen)
{
    if (!t->path || access(t->path, F_OK)) return 0;
    json_error_t je;
    json_t *arr = json_load_file(t->path, 0, &je);
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "%s: %s", t->path, arr ? "not an array" : je.text);
        json_decref(arr);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        tenant_spec s = {0};
        s.id = json_string_value(json_object_get(o, "id"));
        s.secrets = json_strs(json_object_get(o, "jwt_secrets"), &s.nsecrets);
        s.public_keys = json_strs(json_object_get(o, "jwt_public_keys"), &s.npublic_keys);
        s.max_connections = (uint32_t)json_integer_value(json_object_get(o, "max_connections"));
        s.max_channels = (uint32_t)json_integer_value(json_object_get(o, "max_channels"));
        s.publishes_per_second =
            (uint32_t)json_integer_value(json_object_get(o, "publishes_per_second"));
        s.storage_bytes = json_integer_value(json_object_get(o, "storage_bytes"));
        s.history_size = (uint32_t)json_integer_value(json_object_get(o, "history_size"));
        s.history_ttl_ms = json_integer_value(json_object_get(o, "history_ttl_ms"));
        if (!s.id) {
            snprintf(err, errlen, "%s: tenant %zu has no id", t->path, i);
            rc = -1;
        } else {
            /* from_api = 1 but do not rewrite the file while loading it. */
            char *path = t->path;
            t->path = NULL;
            rc = tenants_put(t, &s, 1, err, errlen);
            t->path = path;
        }
        pl_free((void *)s.secrets);
        pl_free((void *)s.public_keys);
    }
    json_decref(arr);
    return rc;
}
