/* The server API's administration: tenants and API keys. Admin key only;
 * every change is written to the audit log before it is answered, and a
 * change the log cannot take is refused. */
#include <stdio.h>
#include <string.h>

#include "auth/apikey_file.h"
#include "proto/api_int.h"
#include "util/clock.h"
#include "util/mem.h"

int api_tenants_list(api_ctx *a)
{
    sbuf o;
    sbuf_init(&o);
    sbuf_puts(&o, "{\"tenants\":");
    tenants_list(a->srv->tenants, &o);
    sbuf_putc(&o, '}');
    api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    return 0;
}

/* Reads an optional array of strings (or one string) into v (at most 8). */
static proto_error str_list(api_ctx *a, const char *key, const char *alt, char bufs[8][2048],
                            const char **v, size_t *n, int *given)
{
    int arr;
    const char *p;
    size_t len;
    *n = 0;
    *given = 0;
    if (proto_param_str(a->b, a->params, alt, &p, &len) == PROTO_PARAM_OK) {
        if (len >= 2048) return PE_BAD_REQUEST;
        memcpy(bufs[0], p, len);
        bufs[0][len] = '\0';
        v[(*n)++] = bufs[0];
        *given = 1;
        return 0;
    }
    int r = proto_param_arr(a->b, a->params, key, &arr);
    if (r == PROTO_PARAM_MISSING) return 0;
    if (r != PROTO_PARAM_OK) return PE_BAD_REQUEST;
    *given = 1;
    for (int t = json_child(&a->b->doc, arr); t >= 0; t = json_next(&a->b->doc, t)) {
        if (*n == 8 || proto_str(a->b, t, &p, &len) != PL_OK || len >= 2048) return PE_BAD_REQUEST;
        memcpy(bufs[*n], p, len);
        bufs[*n][len] = '\0';
        v[*n] = bufs[*n];
        (*n)++;
    }
    return 0;
}

int api_tenants_put(api_ctx *a)
{
    int create = !strcmp(a->method, "tenants.create");
    const char *p;
    size_t n;
    char id[128];
    if (proto_param_str(a->b, a->params, "id", &p, &n) != PROTO_PARAM_OK || !n || n >= sizeof(id))
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST, "id required");
    memcpy(id, p, n);
    id[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", id[i]))
            return api_error(a->h, a->conn_id, PE_BAD_REQUEST, "id must be [A-Za-z0-9_.-]");
    if (a->srv->cfg->single_tenant)
        return api_error(a->h, a->conn_id, PE_NOT_AVAILABLE, "server runs single-tenant");
    const tenant *old = tenants_get(a->srv->tenants, id);
    if (create && old) return api_error(a->h, a->conn_id, PE_BAD_REQUEST, "tenant exists");
    if (!create && !old) return api_error(a->h, a->conn_id, PE_UNKNOWN_CHANNEL, "no such tenant");
    char sec[8][2048], pem[8][2048]; /* on the stack: workers run admin calls concurrently */
    const char *secrets[8], *pems[8];
    tenant_spec spec = {.id = id};
    int gs, gp;
    if (str_list(a, "jwt_secrets", "jwt_secret", sec, secrets, &spec.nsecrets, &gs) ||
        str_list(a, "jwt_public_keys", "jwt_public_key", pem, pems, &spec.npublic_keys, &gp))
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST,
                         "jwt_secrets / jwt_public_keys: at most 8 strings");
    spec.secrets = secrets;
    spec.public_keys = pems;
    if (old && !gs) {
        spec.secrets = (const char *const *)old->secrets;
        spec.nsecrets = old->nsecrets;
    }
    if (old && !gp) {
        spec.public_keys = (const char *const *)old->public_keys;
        spec.npublic_keys = old->npublic_keys;
    }
    uint64_t v;
    spec.max_connections = old ? old->max_connections : 0;
    spec.max_channels = old ? old->max_channels : 0;
    spec.publishes_per_second = old ? old->publishes_per_second : 0;
    spec.storage_bytes = old ? old->storage_bytes : 0;
    spec.history_size = old ? old->history_size : 0;
    spec.history_ttl_ms = old ? old->history_ttl_ms : 0;
    static const char *const quota[] = {"max_connections", "max_channels", "publishes_per_second",
                                        "storage_bytes",   "history_size", "history_ttl_ms"};
    for (int q = 0; q < 6; q++) {
        int r = proto_param_u64(a->b, a->params, quota[q], &v);
        if (r == PROTO_PARAM_TYPE || (r == PROTO_PARAM_OK && v > UINT32_MAX && q != 3 && q != 5))
            return api_error(a->h, a->conn_id, PE_BAD_REQUEST, quota[q]);
        if (r != PROTO_PARAM_OK) continue;
        if (q == 0) spec.max_connections = (uint32_t)v;
        if (q == 1) spec.max_channels = (uint32_t)v;
        if (q == 2) spec.publishes_per_second = (uint32_t)v;
        if (q == 3) spec.storage_bytes = (int64_t)v;
        if (q == 4) spec.history_size = (uint32_t)v;
        if (q == 5) spec.history_ttl_ms = (int64_t)v;
    }
    char details[256];
    snprintf(details, sizeof(details),
             "{\"secrets\":%zu,\"public_keys\":%zu,\"max_connections\":%u}", spec.nsecrets,
             spec.npublic_keys, spec.max_connections);
    /* Validate first: only a change that will be made is audited. */
    char err[256];
    if (tenants_check(&spec, err, sizeof(err)))
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST, err);
    if (api_audit(a->srv, a->who->actor, a->method, id, id, details))
        return api_error(a->h, a->conn_id, PE_INTERNAL, "audit log unavailable");
    if (tenants_put(a->srv->tenants, &spec, 1, err, sizeof(err)))
        return api_error(a->h, a->conn_id, PE_INTERNAL, err);
    sbuf o;
    sbuf_init(&o);
    sbuf_puts(&o, "{\"id\":");
    sbuf_json_str(&o, id, strlen(id));
    sbuf_putc(&o, '}');
    api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    return 0;
}

/* Refuses a keys.create whose scopes are missing or unknown, naming the
 * scopes of the vocabulary so the message cannot fall behind it. */
static int bad_scopes(api_ctx *a)
{
    static const char *const names[] = {
#define SCOPE_NAME(id, bit, name) name,
        VOCAB_API_SCOPES(SCOPE_NAME)
#undef SCOPE_NAME
    };
    sbuf m;
    sbuf_init(&m);
    sbuf_puts(&m, "scopes: a list of");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        sbuf_printf(&m, "%s %s", i ? "," : "", names[i]);
    api_error(a->h, a->conn_id, PE_BAD_REQUEST, m.oom || !m.data ? "scopes" : m.data);
    sbuf_release(&m);
    return 0;
}

int api_keys_create(api_ctx *a)
{
    const char *p;
    size_t n;
    char tid[128];
    if (proto_param_str(a->b, a->params, "tenant", &p, &n) != PROTO_PARAM_OK || n >= sizeof(tid))
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST, "tenant required");
    memcpy(tid, p, n);
    tid[n] = '\0';
    const tenant *t = proto_tenant(a->srv, tid);
    if (!t) return api_error(a->h, a->conn_id, PE_UNKNOWN_CHANNEL, "no such tenant");
    char sc[8][2048];
    const char *scopes[8];
    size_t ns;
    int given;
    uint32_t mask;
    if (str_list(a, "scopes", "scope", sc, scopes, &ns, &given) || !ns ||
        apikey_scopes_parse(scopes, ns, &mask))
        return bad_scopes(a);
    char key[APIKEY_LEN + 1], id[APIKEY_ID_LEN + 1];
    if (apikey_create(a->srv->keys, t->id, mask, clock_wall_ms(), key, id))
        return api_error(a->h, a->conn_id, PE_INTERNAL, NULL);
    /* The key works only once it is audited and saved. */
    if (api_audit(a->srv, a->who->actor, "keys.create", t->id, id, NULL) || api_save_keys(a->srv)) {
        apikey_revoke(a->srv->keys, id);
        return api_error(a->h, a->conn_id, PE_INTERNAL, "audit log or key file unavailable");
    }
    sbuf o;
    sbuf_init(&o);
    sbuf_printf(&o, "{\"id\":\"%s\",\"key\":\"%s\",\"tenant\":", id, key);
    sbuf_json_str(&o, t->id, strlen(t->id));
    sbuf_putc(&o, '}');
    api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    return 0;
}

typedef struct key_search {
    const char *id;
    int found;
} key_search;

static int find_key(const apikey_entry *e, void *ud)
{
    key_search *ks = ud;
    ks->found = !strcmp(e->id, ks->id);
    return ks->found;
}

int api_keys_revoke(api_ctx *a)
{
    const char *p;
    size_t n;
    char id[APIKEY_ID_LEN + 1];
    if (proto_param_str(a->b, a->params, "id", &p, &n) != PROTO_PARAM_OK || n > APIKEY_ID_LEN)
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST, "id required");
    memcpy(id, p, n);
    id[n] = '\0';
    key_search ks = {.id = id};
    apikey_foreach(a->srv->keys, NULL, find_key, &ks);
    if (!ks.found) return api_error(a->h, a->conn_id, PE_UNKNOWN_CHANNEL, "no such key");
    if (api_audit(a->srv, a->who->actor, "keys.revoke", NULL, id, NULL))
        return api_error(a->h, a->conn_id, PE_INTERNAL, "audit log unavailable");
    if (apikey_revoke(a->srv->keys, id))
        return api_error(a->h, a->conn_id, PE_UNKNOWN_CHANNEL, "no such key");
    if (api_save_keys(a->srv)) return api_error(a->h, a->conn_id, PE_INTERNAL, NULL);
    sbuf o;
    sbuf_init(&o);
    sbuf_puts(&o, "{}");
    api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    return 0;
}

static int list_key(const apikey_entry *e, void *ud)
{
    sbuf *o = ud;
    if (o->len > 9) sbuf_putc(o, ',');
    sbuf_printf(o, "{\"id\":\"%s\",\"tenant\":", e->id);
    sbuf_json_str(o, e->tenant, strlen(e->tenant));
    sbuf_printf(o, ",\"created_at\":%lld,\"revoked\":%s,\"scopes\":[", (long long)e->created_at,
                atomic_load(&e->revoked) ? "true" : "false");
    int first = 1;
    for (uint32_t bit = 1; bit; bit <<= 1) {
        if (!(e->scopes & bit)) continue;
        const char *name = apikey_scope_name(bit);
        if (!name) continue;
        sbuf_printf(o, "%s\"%s\"", first ? "" : ",", name);
        first = 0;
    }
    sbuf_puts(o, "]}");
    return 0;
}

int api_keys_list(api_ctx *a)
{
    const char *p;
    size_t n;
    char tid[128] = "";
    if (proto_param_str(a->b, a->params, "tenant", &p, &n) == PROTO_PARAM_OK && n < sizeof(tid)) {
        memcpy(tid, p, n);
        tid[n] = '\0';
    }
    sbuf o;
    sbuf_init(&o);
    sbuf_puts(&o, "{\"keys\":[");
    apikey_foreach(a->srv->keys, tid[0] ? tid : NULL, list_key, &o);
    sbuf_puts(&o, "]}");
    api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    return 0;
}
