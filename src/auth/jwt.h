/* JWT connection and channel tokens (PROTOCOL.md section 5): a small verifier
 * on OpenSSL 3 for HS256, RS256 and ES256, HS256 minting, and the glob match
 * used by the `channels`/`publish` claims. Every other `alg` (`none` first of
 * all) is rejected, and each algorithm only ever uses keys of its own type.
 *
 * The server-side flow, in this order:
 *
 *     struct jwt t;
 *     rc = jwt_parse(token, len, &t);           // split, base64url, JSON; no trust yet
 *     name = jwt_peek_tenant(&t);               // UNVERIFIED: only to pick a key set
 *     keys = tenant_keys(name);                 // unknown/NULL tenant -> reject (101)
 *     rc = jwt_verify(&t, keys, now_s);         // signature, then exp/nbf/claims
 *     use t.sub, t.tenant (== name), ...        // only when rc == JWT_OK
 *     jwt_release(&t);
 *
 * Picking keys from an unverified claim is safe because the claim is the one
 * the signature then covers: a forged `tenant` selects that tenant's keys and
 * fails to verify with them. A server in multi-tenant mode must not fall back
 * to some default key set when the claim is absent. */
#ifndef PL_JWT_H
#define PL_JWT_H

#include <stddef.h>
#include <stdint.h>

/* Longest token accepted, checked before any other work. */
#define JWT_MAX_LEN 8192

/* JWT_INVALID maps to protocol error 101 (close 4500), JWT_EXPIRED to 109
 * (close 4504). The mapping itself lives in util/errors.h. */
enum jwt_result {
    JWT_OK = 0,
    JWT_INVALID = -1,
    JWT_EXPIRED = -2,
    JWT_NOMEM = -3,
};

/* ---- key set ---------------------------------------------------------- */

/* A tenant's active verification keys; several may be active at once so that
 * secrets rotate without downtime. Immutable once built, so one set may be
 * shared by threads that only verify. */
typedef struct jwt_keys jwt_keys;

/* Returns an empty key set, or NULL when out of memory. Free with jwt_keys_free. */
jwt_keys *jwt_keys_new(void);
/* Frees the set and every key in it. NULL is allowed. */
void jwt_keys_free(jwt_keys *keys);
/* Adds an HS256 secret (copied; len > 0). kid may be NULL (copied if not).
 * Returns PL_OK, PL_EINVAL for an empty secret or PL_ENOMEM. */
int jwt_keys_add_hmac(jwt_keys *keys, const void *secret, size_t len, const char *kid);
/* Adds a public key from a NUL-terminated PEM ("BEGIN PUBLIC KEY" or PKCS#1
 * "BEGIN RSA PUBLIC KEY"): RSA of at least 2048 bits (used for RS256) or EC
 * P-256 (used for ES256). pem and kid are copied/parsed, not kept. Returns
 * PL_OK, PL_EINVAL for anything else (private keys, other curves, Ed25519,
 * RSA-PSS, garbage) or PL_ENOMEM. */
int jwt_keys_add_pem(jwt_keys *keys, const char *pem, const char *kid);
/* Number of keys in the set. */
size_t jwt_keys_count(const jwt_keys *keys);

/* ---- tokens ----------------------------------------------------------- */

/* A parsed token. Lives in caller memory; everything it points to is owned
 * by it and freed by jwt_release. The public fields are filled by
 * jwt_verify only when it returns JWT_OK, and are NULL/0 otherwise. Members
 * starting with '_' are private. */
struct jwt {
    const char *sub;       /* user id; non-empty */
    const char *tenant;    /* or NULL */
    const char *channel;   /* channel tokens only; or NULL */
    const char *info;      /* compact JSON text of the `info` object, or NULL */
    int64_t exp;           /* 0 if absent */
    int64_t iat;           /* 0 if absent */
    const char **channels; /* subscribe patterns, n_channels of them */
    size_t n_channels;
    const char **publish; /* publish patterns, n_publish of them */
    size_t n_publish;

    struct json_t *_header;
    struct json_t *_claims;
    char *_signed; /* "header.payload" as received: the signing input */
    size_t _signed_len;
    unsigned char *_sig; /* decoded signature */
    size_t _sig_len;
    char *_info;
    const char *_err; /* static text of the last failure */
    int _verified;
};

/* Splits the token (len bytes, need not be NUL-terminated) into its three
 * base64url parts (no padding, no other characters accepted), decodes them
 * and parses header and claims as JSON objects. Verifies nothing. Returns
 * JWT_OK, JWT_INVALID (too long, wrong shape, bad encoding, bad JSON) or
 * JWT_NOMEM. *out is always initialised, whatever the result: call
 * jwt_release on it afterwards. The token bytes are copied, not kept. */
enum jwt_result jwt_parse(const char *token, size_t len, struct jwt *out);

/* The `tenant` claim of a parsed but NOT yet verified token, for choosing
 * the key set to verify with and for nothing else. NULL when absent or not
 * a string. The pointer is owned by jwt and valid until jwt_release. */
const char *jwt_peek_tenant(const struct jwt *jwt);

/* Checks the signature with the keys of the header's `alg` (HS256 only HMAC
 * secrets, RS256 only RSA keys, ES256 only P-256 keys; with a `kid` only
 * keys carrying that kid, an unknown kid fails), then the claims: `exp` not
 * reached (else JWT_EXPIRED), `nbf` reached, `sub` a non-empty string, and
 * the types of tenant/channel (string), info (object), channels/publish
 * (arrays of strings), exp/iat/nbf (numbers). now_s is unix seconds. Returns
 * JWT_OK and fills the public fields, or JWT_INVALID, JWT_EXPIRED, JWT_NOMEM
 * with jwt_errmsg telling why. keys may be NULL (nothing verifies). */
enum jwt_result jwt_verify(struct jwt *jwt, const jwt_keys *keys, int64_t now_s);

/* The string claim `name` of a verified token, or NULL when the token is not
 * verified, the claim is absent or not a string. Owned by jwt. */
const char *jwt_claim_str(const struct jwt *jwt, const char *name);

/* Static text explaining the last failure of jwt_parse/jwt_verify, for logs
 * (never sent to clients); "ok" when there was none. */
const char *jwt_errmsg(const struct jwt *jwt);

/* A short category of the last failure that is safe to tell the client
 * (it never echoes the token): "token malformed", "bad signature",
 * "unknown key id", "algorithm not allowed", "missing sub", "token expired",
 * "token not yet valid"; "ok" when there was none. Static text. */
const char *jwt_reason(const struct jwt *jwt);

/* Frees everything the jwt owns; the struct may then be reused by jwt_parse. */
void jwt_release(struct jwt *jwt);

/* Mints an HS256 token with header {"alg":"HS256","typ":"JWT"} over the
 * claims (claims_len bytes of a JSON object, encoded as given). Returns a
 * pl_malloc'd NUL-terminated token the caller frees with pl_free, or NULL
 * when the secret is empty, the claims are not a JSON object, the token
 * would exceed JWT_MAX_LEN, or memory runs out. */
char *jwt_sign_hs256(const char *secret, size_t secret_len, const char *claims_json,
                     size_t claims_len);

/* ---- patterns --------------------------------------------------------- */

/* 1 if the channel (len bytes) matches pattern (NUL-terminated), else 0.
 * '*' matches any run of bytes, including none and including ':' and '#';
 * every other byte matches itself. No recursion; O(len * strlen(pattern))
 * worst case. */
int jwt_pattern_match(const char *pattern, const char *channel, size_t len);

#endif
