/* Signature schemes of webhooks sent to Parley by other services, besides
 * Standard Webhooks (hooks/sign.h): a plain HMAC-SHA256 of the raw body in
 * hex behind a header prefix (GitHub's `X-Hub-Signature-256: sha256=<hex>`)
 * and Stripe's `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]` over
 * "{t}.{body}". Pure and bounded: hostile headers cost at most
 * INBOUND_SIG_MAX_HEADER bytes of scanning and one MAC per secret.
 *
 * Secrets are raw bytes used as the HMAC key as given: Stripe keys with the
 * whole "whsec_..." string, never base64-decoded. Results are sign.h's. */
#ifndef PL_INBOUND_SIG_H
#define PL_INBOUND_SIG_H

#include <stddef.h>
#include <stdint.h>

#include "hooks/sign.h"

#define INBOUND_SIG_MAX_HEADER 8192
#define INBOUND_SIG_MAX_V1 16 /* v1 entries kept from a Stripe header */
#define INBOUND_SIG_MAC_LEN 32

/* A secret: borrowed bytes, not copied. */
typedef struct inbound_sig_secret {
    const void *data;
    size_t len;
} inbound_sig_secret;

/* Decodes exactly 2 * INBOUND_SIG_MAC_LEN hex digits (either case) into mac:
 * 0, or -1 for any other length or character. */
int inbound_sig_hex_mac(const char *s, size_t n, unsigned char mac[INBOUND_SIG_MAC_LEN]);

/* ---- hmac-sha256 (GitHub style) ---------------------------------------- */

/* Parses "PREFIX<64 hex>" (prefix compared exactly, may be ""): 0, or -1. */
int inbound_sig_hmac_parse(const char *value, size_t n, const char *prefix,
                           unsigned char mac[INBOUND_SIG_MAC_LEN]);
/* Verifies a header value (NULL or empty: SIGN_MISSING_HEADER) against each
 * secret: SIGN_OK with *key the index of the secret that matched (key may be
 * NULL), SIGN_MALFORMED_HEADER, SIGN_NO_MATCH or SIGN_NOMEM. */
enum sign_result inbound_sig_hmac_verify(const char *value, size_t n, const char *prefix,
                                         const void *body, size_t body_len,
                                         const inbound_sig_secret *secrets, size_t n_secrets,
                                         size_t *key);

/* ---- Stripe ------------------------------------------------------------- */

typedef struct inbound_sig_stripe {
    int64_t t;
    size_t n_v1;
    unsigned char v1[INBOUND_SIG_MAX_V1][INBOUND_SIG_MAC_LEN];
} inbound_sig_stripe;

/* Parses a Stripe-Signature value: comma-separated KEY=VALUE items; exactly
 * one t (decimal unix seconds), one to INBOUND_SIG_MAX_V1 v1 entries of 64
 * hex digits; other keys (v0, future schemes) are skipped. Returns SIGN_OK,
 * SIGN_MISSING_HEADER (NULL or empty), SIGN_MALFORMED_TIMESTAMP (no t, a bad
 * or repeated t) or SIGN_MALFORMED_HEADER. */
enum sign_result inbound_sig_stripe_parse(const char *value, size_t n, inbound_sig_stripe *out);
/* Parses, checks t within tolerance_s of now (either way; the edge passes),
 * then every v1 entry against every secret. On SIGN_OK, *entry and *key
 * (either may be NULL) say which v1 entry (from 0) matched which secret. */
enum sign_result inbound_sig_stripe_verify(const char *value, size_t n, const void *body,
                                           size_t body_len, const inbound_sig_secret *secrets,
                                           size_t n_secrets, int64_t now, int64_t tolerance_s,
                                           size_t *entry, size_t *key);
/* The same without the time check, for tools explaining an old request. */
enum sign_result inbound_sig_stripe_verify_ignoring_time(const char *value, size_t n,
                                                         const void *body, size_t body_len,
                                                         const inbound_sig_secret *secrets,
                                                         size_t n_secrets, size_t *entry,
                                                         size_t *key);

#endif
