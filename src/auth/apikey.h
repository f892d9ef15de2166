/* Server API keys (PROTOCOL.md section 6): scope bits, and a thread-safe
 * in-memory key store. A key is "pk_" + base64url(32 random bytes); the store
 * keeps only its SHA-256, so a leaked store or snapshot reveals no usable key.
 * Which scope a method needs is the API's business (proto/api.c), which sits
 * above this layer; here a key only grants scopes. Persistence is the
 * caller's: apikey_foreach to save, apikey_store_load to restore. */
#ifndef PL_APIKEY_H
#define PL_APIKEY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config/vocab.h"

/* ---- scopes ------------------------------------------------------------ */

/* One bit per scope of the shared vocabulary: APIKEY_SCOPE_PUBLISH ...,
 * "*" is APIKEY_SCOPE_ALL. */
enum apikey_scope {
#define APIKEY_SCOPE_BIT(id, bit, name) APIKEY_SCOPE_##id = 1u << (bit),
    VOCAB_API_SCOPES(APIKEY_SCOPE_BIT)
#undef APIKEY_SCOPE_BIT
};

/* 1 if a key holding the scope bits mask may use what needs scope (one bit
 * of enum apikey_scope), else 0. A "*" key grants every scope; scope
 * APIKEY_SCOPE_ALL is granted by a "*" key only. 0, several bits or bits
 * outside the enum are granted by no mask: what needs no scope bit (tenant
 * administration) is not a key's to grant. */
int apikey_mask_grants(uint32_t mask, uint32_t scope);
/* Turns scope names into bits. Returns 0, or -1 (mask untouched) when a
 * name is not a scope - reject such a key instead of dropping the name. */
int apikey_scopes_parse(const char *const *scopes, size_t n, uint32_t *mask);
/* Scope name of one bit, or NULL. */
const char *apikey_scope_name(uint32_t bit);

/* ---- key store --------------------------------------------------------- */

#define APIKEY_PREFIX "pk_"
#define APIKEY_LEN 46    /* "pk_" + 43 base64url characters */
#define APIKEY_ID_LEN 26 /* a ULID */
/* Presented keys longer than this are refused before hashing. */
#define APIKEY_MAX_PRESENTED 512

/* A stored key. Immutable once in the store except `revoked`; entries live
 * until apikey_store_free, so a pointer from apikey_lookup stays valid. */
typedef struct apikey_entry {
    char id[APIKEY_ID_LEN + 1];
    uint8_t hash[32];   /* SHA-256 of the key text */
    char *tenant;       /* owned by the store */
    uint32_t scopes;    /* enum apikey_scope bits */
    int64_t created_at; /* unix ms */
    atomic_int revoked;
} apikey_entry;

typedef struct apikey_store apikey_store;

/* Returns a new empty store or NULL; the caller frees it with
 * apikey_store_free, which invalidates every entry pointer. */
apikey_store *apikey_store_new(void);
void apikey_store_free(apikey_store *s);

/* Mints a key for tenant with the scope bits at now_ms. key_out receives the
 * plaintext - the only time it exists - and id_out (optional) the id.
 * Returns 0, PL_EINVAL (empty tenant, no scopes or unknown bits), PL_ENOMEM,
 * or PL_ERR if the random generator fails. */
int apikey_create(apikey_store *s, const char *tenant, uint32_t scopes, int64_t now_ms,
                  char key_out[APIKEY_LEN + 1], char id_out[APIKEY_ID_LEN + 1]);
/* Adds a key whose text is known (keys from the config file). The text is
 * hashed and not kept. Returns as apikey_create, or PL_EINVAL if the text is
 * empty, too long, or already in the store. */
int apikey_add(apikey_store *s, const char *tenant, const char *key, size_t len, uint32_t scopes,
               int64_t now_ms, char id_out[APIKEY_ID_LEN + 1]);
/* Restores a saved entry (copied; revoked state included). Returns 0,
 * PL_EINVAL for a bad record or a duplicate id or hash, or PL_ENOMEM. */
int apikey_store_load(apikey_store *s, const apikey_entry *e);

/* The live entry for a presented bearer key, or NULL when unknown, revoked
 * or malformed. The store keeps ownership; the pointer stays valid until
 * apikey_store_free. Check authorization with apikey_mask_grants(e->scopes, ...). */
const apikey_entry *apikey_lookup(apikey_store *s, const char *key, size_t len);
/* Revokes the key with this id. Returns 0 (also if already revoked) or
 * PL_ENOTFOUND. */
int apikey_revoke(apikey_store *s, const char *id);

/* Calls fn for each entry of tenant (NULL = all, revoked ones included) in
 * creation order, under the store's read lock: fn must not call back into
 * the store's writers. fn returning non-zero stops the walk. Returns the
 * number of entries visited. */
size_t apikey_foreach(apikey_store *s, const char *tenant,
                      int (*fn)(const apikey_entry *e, void *ud), void *ud);

/* Hex of the SHA-256 of key text (65 bytes with NUL), for persistence
 * formats and logs; never the key itself. */
void apikey_hash_hex(const uint8_t hash[32], char out[65]);

#endif
