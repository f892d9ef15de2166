/* Webhook signatures in the Standard Webhooks format: secrets, signing and
 * verification of `webhook-id`, `webhook-timestamp` and `webhook-signature`.
 * Pure: no clock reads, no I/O; the caller passes the time in.
 *
 * Keys, as written in configuration and given to a receiver:
 *   whsec_<base64>  a symmetric secret (scheme v1, HMAC-SHA256); any length > 0
 *   whsk_<base64>   an Ed25519 secret key (scheme v1a): the 32-byte seed, or
 *                   the 64-byte seed||public form (the public half must match)
 *   whpk_<base64>   an Ed25519 public key (scheme v1a, verify only): 32 bytes
 * Base64 is the standard alphabet (RFC 4648 section 4), padding optional.
 *
 * Signed content: "{webhook-id}.{timestamp}.{body}", timestamp in decimal
 * unix seconds. Header: space-separated "v1,<base64 MAC>" / "v1a,<base64
 * signature>" entries, one per active key, so that keys rotate without a
 * receiver rejecting anything. */
#ifndef PL_SIGN_H
#define PL_SIGN_H

#include <stddef.h>
#include <stdint.h>

/* Bounds on hostile input: a longer signature header, or one with more
 * entries, is malformed; the work of a verification is at most
 * SIGN_MAX_ENTRIES comparisons or signature checks per key. */
#define SIGN_MAX_HEADER 8192
#define SIGN_MAX_ENTRIES 64
#define SIGN_MAX_ID 256
#define SIGN_TOLERANCE_DEFAULT 300 /* seconds, either way */

/* ---- keys ------------------------------------------------------------- */

typedef struct sign_key sign_key;

enum sign_key_err {
    SIGN_KEY_OK = 0,
    SIGN_KEY_NO_PREFIX,  /* none of whsec_, whsk_, whpk_ */
    SIGN_KEY_PASTED,     /* starts with "v1," or "v1a,": a signature's prefix */
    SIGN_KEY_BAD_BASE64, /* the part after the prefix is not base64 */
    SIGN_KEY_EMPTY,      /* nothing after the prefix */
    SIGN_KEY_BAD_LENGTH, /* an Ed25519 key of the wrong size or mismatched halves */
    SIGN_KEY_NOMEM,
};

/* Parses a key string of len bytes (no trimming: whitespace is bad base64).
 * On SIGN_KEY_OK *out is a new key the caller frees with sign_key_free;
 * otherwise *out is NULL. */
enum sign_key_err sign_key_parse(const char *s, size_t len, sign_key **out);
/* A v1 key from raw bytes (len > 0), copied; NULL when out of memory or len
 * is 0. Free with sign_key_free. */
sign_key *sign_key_hmac(const void *bytes, size_t len);
/* Frees the key and wipes its bytes. NULL is allowed. */
void sign_key_free(sign_key *k);
/* A fixed English phrase for an error, e.g. "missing whsec_ prefix". */
const char *sign_key_errstr(enum sign_key_err e);

/* Decodes standard base64 (padding optional, nothing else accepted) into a
 * pl_malloc'd buffer the caller frees; NULL when invalid, empty or out of
 * memory. Exposed for diagnosis tools that try variants of a secret. */
unsigned char *sign_base64_decode(const char *s, size_t n, size_t *out_len);

/* ---- signing ---------------------------------------------------------- */

/* Writes the webhook-signature value for (id, ts, body), one entry per key in
 * key order, into *out (pl_malloc'd, NUL-terminated; the caller frees).
 * Returns 0, or -1 when a key cannot sign (a whpk_ public key), there are no
 * keys or more than SIGN_MAX_ENTRIES, or out of memory (*out is then NULL). */
int sign_header(const sign_key *const *keys, size_t n_keys, const char *id, size_t id_len,
                int64_t ts, const void *body, size_t body_len, char **out);

/* ---- verifying -------------------------------------------------------- */

enum sign_result {
    SIGN_OK = 0,
    SIGN_NO_MATCH,            /* well-formed, but no entry matches any key */
    SIGN_MALFORMED_HEADER,    /* the signature header does not parse */
    SIGN_STALE,               /* timestamp older than now - tolerance */
    SIGN_FUTURE,              /* timestamp newer than now + tolerance */
    SIGN_MALFORMED_TIMESTAMP, /* not decimal unix seconds */
    SIGN_MISSING_HEADER,      /* a header absent or empty */
    SIGN_NOMEM,
};

/* A request as received. A NULL (or empty) header is missing; the body is
 * the raw bytes, never a re-serialization. Nothing is kept. */
typedef struct sign_request {
    const char *id;
    size_t id_len;
    const char *timestamp;
    size_t timestamp_len;
    const char *signature;
    size_t signature_len;
    const void *body;
    size_t body_len;
} sign_request;

/* Which entry matched which key (indexes from 0) and how many entries the
 * header has. */
typedef struct sign_match {
    size_t entry;
    size_t n_entries;
    size_t key;
} sign_match;

/* Checks, in this order: headers present, timestamp well-formed and within
 * tolerance_s of now (seconds, either way; the edge passes), signature header
 * well-formed, then any entry against any key. match may be NULL; it is set
 * on SIGN_OK. */
enum sign_result sign_verify(const sign_request *req, const sign_key *const *keys, size_t n_keys,
                             int64_t now, int64_t tolerance_s, sign_match *match);
/* The same without the time check (a malformed timestamp is still refused):
 * for tools explaining an old request. Never use it to accept a request. */
enum sign_result sign_verify_ignoring_time(const sign_request *req, const sign_key *const *keys,
                                           size_t n_keys, sign_match *match);
/* A fixed English phrase for a result, e.g. "stale timestamp". */
const char *sign_result_str(enum sign_result r);

/* ---- parsing, for verifiers and fuzzing -------------------------------- */

/* Parses decimal unix seconds (1 to 18 digits, nothing else): 0, or -1. */
int sign_parse_timestamp(const char *s, size_t n, int64_t *out);

enum sign_scheme { SIGN_SCHEME_V1, SIGN_SCHEME_V1A, SIGN_SCHEME_OTHER };

/* One entry of a signature header; sig points into the header. */
typedef struct sign_entry {
    enum sign_scheme scheme;
    const char *sig; /* base64, as written */
    size_t sig_len;
} sign_entry;

/* Splits a signature header on runs of spaces into at most cap entries
 * (cap <= SIGN_MAX_ENTRIES). Every entry must be "VERSION,SIGNATURE"; v1 and
 * v1a signatures must be base64 (padding optional) of 32 and 64 bytes; other versions are kept
 * as SIGN_SCHEME_OTHER and never match. Returns the entry count (> 0), or -1
 * when malformed (empty, too long, too many entries, a bad entry). */
int sign_header_parse(const char *s, size_t n, sign_entry *out, size_t cap);

#endif
