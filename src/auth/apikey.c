/* API key scopes and the key store; see apikey.h. Entries are indexed by the
 * SHA-256 of the key text (lookup) and by id (revoke); both maps and the
 * creation-ordered array sit behind one rwlock, since lookups on every API
 * request vastly outnumber creations and revocations. */
#include "auth/apikey.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <string.h>

#include "util/clock.h"
#include "util/map.h"
#include "util/mem.h"
#include "util/status.h"

/* ---- scopes ------------------------------------------------------------ */

static const struct {
    const char *name;
    uint32_t bit;
} scope_names[] = {
#define SCOPE_ROW(id, bit, name) {name, APIKEY_SCOPE_##id},
    VOCAB_API_SCOPES(SCOPE_ROW)
#undef SCOPE_ROW
};

#define N_SCOPES (sizeof(scope_names) / sizeof(scope_names[0]))
/* Bits a stored key may hold: every bit the vocabulary names (a row added
 * there is valid here). */
#define SCOPE_OR(id, bit, name) | APIKEY_SCOPE_##id
#define VALID_BITS (0u VOCAB_API_SCOPES(SCOPE_OR))

const char *apikey_scope_name(uint32_t bit)
{
    for (size_t i = 0; i < N_SCOPES; i++)
        if (scope_names[i].bit == bit) return scope_names[i].name;
    return NULL;
}

static uint32_t scope_bit(const char *name)
{
    for (size_t i = 0; name && i < N_SCOPES; i++)
        if (!strcmp(scope_names[i].name, name)) return scope_names[i].bit;
    return 0;
}

int apikey_mask_grants(uint32_t mask, uint32_t scope)
{
    if (!scope || (scope & (scope - 1)) || (scope & ~VALID_BITS)) return 0;
    return (mask & (scope | APIKEY_SCOPE_ALL)) != 0;
}

int apikey_scopes_parse(const char *const *scopes, size_t n, uint32_t *mask)
{
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bit = scope_bit(scopes[i]);
        if (!bit) return -1;
        m |= bit;
    }
    *mask = m;
    return 0;
}

/* ---- key store --------------------------------------------------------- */

struct apikey_store {
    pthread_rwlock_t lock;
    apikey_entry **all; /* creation order; owned */
    size_t n, cap;
    map by_hash; /* 32 raw digest bytes -> entry */
    map by_id;   /* id -> entry */
};

apikey_store *apikey_store_new(void)
{
    apikey_store *s = pl_calloc(1, sizeof(*s));
    if (!s) return NULL;
    if (pthread_rwlock_init(&s->lock, NULL)) {
        pl_free(s);
        return NULL;
    }
    map_init(&s->by_hash);
    map_init(&s->by_id);
    return s;
}

static void entry_free(apikey_entry *e)
{
    if (!e) return;
    pl_free(e->tenant);
    pl_free(e);
}

void apikey_store_free(apikey_store *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++)
        entry_free(s->all[i]);
    pl_free(s->all);
    map_release(&s->by_hash);
    map_release(&s->by_id);
    pthread_rwlock_destroy(&s->lock);
    pl_free(s);
}

void apikey_hash_hex(const uint8_t hash[32], char out[65])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[hash[i] >> 4];
        out[2 * i + 1] = hex[hash[i] & 15];
    }
    out[64] = '\0';
}

static void b64url(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = tab[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = tab[v & 63];
    }
    out[o] = '\0';
}

/* Takes ownership of e. Caller holds the write lock. Returns 0, PL_EINVAL
 * for a duplicate id or hash, or PL_ENOMEM; e is freed on failure. */
static int insert(apikey_store *s, apikey_entry *e)
{
    int rc = PL_EINVAL;
    if (map_get(&s->by_hash, (const char *)e->hash, 32) || map_get(&s->by_id, e->id, strlen(e->id)))
        goto fail;
    rc = PL_ENOMEM;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        apikey_entry **all = pl_realloc(s->all, cap * sizeof(*all));
        if (!all) goto fail;
        s->all = all;
        s->cap = cap;
    }
    if (map_put(&s->by_hash, (const char *)e->hash, 32, e)) goto fail;
    if (map_put(&s->by_id, e->id, strlen(e->id), e)) {
        map_del(&s->by_hash, (const char *)e->hash, 32);
        goto fail;
    }
    s->all[s->n++] = e;
    return 0;
fail:
    entry_free(e);
    return rc;
}

/* Builds an entry; the id is fresh unless given. Returns NULL on bad input
 * (*rc = PL_EINVAL) or allocation failure (*rc = PL_ENOMEM). */
static apikey_entry *entry_new(const char *tenant, uint32_t scopes, int64_t created_at, int *rc)
{
    *rc = PL_EINVAL;
    if (!tenant || !*tenant || !scopes || (scopes & ~VALID_BITS)) return NULL;
    *rc = PL_ENOMEM;
    apikey_entry *e = pl_calloc(1, sizeof(*e));
    if (!e) return NULL;
    e->tenant = pl_strdup(tenant);
    if (!e->tenant) {
        pl_free(e);
        return NULL;
    }
    e->scopes = scopes;
    e->created_at = created_at;
    atomic_init(&e->revoked, 0);
    clock_ulid(e->id);
    *rc = 0;
    return e;
}

static int add_locked(apikey_store *s, apikey_entry *e, char id_out[APIKEY_ID_LEN + 1])
{
    char id[APIKEY_ID_LEN + 1];
    memcpy(id, e->id, sizeof(id));
    pthread_rwlock_wrlock(&s->lock);
    int rc = insert(s, e);
    pthread_rwlock_unlock(&s->lock);
    if (rc == 0 && id_out) memcpy(id_out, id, sizeof(id));
    return rc;
}

/* A configured key's id is the same at every start (audit records and
 * keys.list name it across restarts), so it is derived from the key's hash
 * instead of drawn: a ULID-shaped digest of the hash under its own label. */
static void config_key_id(const uint8_t hash[32], char out[APIKEY_ID_LEN + 1])
{
    static const char label[] = "parley configured API key id\n";
    uint8_t in[sizeof(label) - 1 + 32], d[SHA256_DIGEST_LENGTH];
    memcpy(in, label, sizeof(label) - 1);
    memcpy(in + sizeof(label) - 1, hash, 32);
    SHA256(in, sizeof(in), d);
    uint64_t v[3] = {0, 0, 0};
    for (int i = 0; i < 16; i++) {
        int k = i < 6 ? 0 : i < 11 ? 1 : 2;
        v[k] = (v[k] << 8) | d[i];
    }
    clock_ulid_pack(out, v[0], v[1], v[2]);
}

int apikey_add(apikey_store *s, const char *tenant, const char *key, size_t len, uint32_t scopes,
               int64_t now_ms, char id_out[APIKEY_ID_LEN + 1])
{
    if (!key || len == 0 || len > APIKEY_MAX_PRESENTED) return PL_EINVAL;
    int rc;
    apikey_entry *e = entry_new(tenant, scopes, now_ms, &rc);
    if (!e) return rc;
    SHA256((const unsigned char *)key, len, e->hash);
    config_key_id(e->hash, e->id);
    return add_locked(s, e, id_out);
}

int apikey_create(apikey_store *s, const char *tenant, uint32_t scopes, int64_t now_ms,
                  char key_out[APIKEY_LEN + 1], char id_out[APIKEY_ID_LEN + 1])
{
    uint8_t rnd[32];
    char key[APIKEY_LEN + 1];
    int rc;
    apikey_entry *e = entry_new(tenant, scopes, now_ms, &rc);
    if (!e) return rc;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        entry_free(e);
        return PL_ERR;
    }
    memcpy(key, APIKEY_PREFIX, 3);
    b64url(rnd, sizeof(rnd), key + 3);
    SHA256((const unsigned char *)key, APIKEY_LEN, e->hash);
    rc = add_locked(s, e, id_out);
    if (rc == 0) memcpy(key_out, key, sizeof(key));
    OPENSSL_cleanse(rnd, sizeof(rnd));
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

int apikey_store_load(apikey_store *s, const apikey_entry *src)
{
    size_t idlen = strnlen(src->id, sizeof(src->id));
    if (idlen == 0 || idlen > APIKEY_ID_LEN) return PL_EINVAL;
    int rc;
    apikey_entry *e = entry_new(src->tenant, src->scopes, src->created_at, &rc);
    if (!e) return rc;
    memcpy(e->id, src->id, idlen + 1);
    memcpy(e->hash, src->hash, sizeof(e->hash));
    atomic_store(&e->revoked, atomic_load((atomic_int *)&src->revoked) ? 1 : 0);
    return add_locked(s, e, NULL);
}

const apikey_entry *apikey_lookup(apikey_store *s, const char *key, size_t len)
{
    if (!key || len == 0 || len > APIKEY_MAX_PRESENTED) return NULL;
    uint8_t digest[32];
    SHA256((const unsigned char *)key, len, digest);
    pthread_rwlock_rdlock(&s->lock);
    /* The map compares digests with memcmp; that leaks nothing usable, as
     * nobody can steer the digest of a key toward a stored one. The final
     * word is still a constant-time comparison. */
    apikey_entry *e = map_get(&s->by_hash, (const char *)digest, sizeof(digest));
    if (e && (CRYPTO_memcmp(e->hash, digest, sizeof(digest)) || atomic_load(&e->revoked))) e = NULL;
    pthread_rwlock_unlock(&s->lock);
    return e;
}

int apikey_revoke(apikey_store *s, const char *id)
{
    pthread_rwlock_wrlock(&s->lock);
    apikey_entry *e = id ? map_get(&s->by_id, id, strlen(id)) : NULL;
    if (e) atomic_store(&e->revoked, 1);
    pthread_rwlock_unlock(&s->lock);
    return e ? 0 : PL_ENOTFOUND;
}

size_t apikey_foreach(apikey_store *s, const char *tenant,
                      int (*fn)(const apikey_entry *e, void *ud), void *ud)
{
    size_t visited = 0;
    pthread_rwlock_rdlock(&s->lock);
    for (size_t i = 0; i < s->n; i++) {
        if (tenant && strcmp(s->all[i]->tenant, tenant)) continue;
        visited++;
        if (fn(s->all[i], ud)) break;
    }
    pthread_rwlock_unlock(&s->lock);
    return visited;
}
