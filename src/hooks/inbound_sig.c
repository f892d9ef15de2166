/* Inbound webhook signature schemes other than Standard Webhooks (see
 * inbound_sig.h): GitHub-style hex HMAC of the body and Stripe's t/v1
 * header. Parsers scan each byte at most once and never read past n. */
#include "hooks/inbound_sig.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "util/hex.h"

#define MAX_SECRET INT_MAX

int inbound_sig_hex_mac(const char *s, size_t n, unsigned char mac[INBOUND_SIG_MAC_LEN])
{
    if (n != 2 * INBOUND_SIG_MAC_LEN) return -1;
    for (size_t i = 0; i < INBOUND_SIG_MAC_LEN; i++) {
        int hi = hex_val((unsigned char)s[2 * i]), lo = hex_val((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        mac[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* HMAC-SHA256 over up to two pieces (Stripe's "{t}." and the body), without
 * copying the body. */
static int mac2(const inbound_sig_secret *s, const void *a, size_t alen, const void *b, size_t blen,
                unsigned char out[INBOUND_SIG_MAC_LEN])
{
    if (s->len > MAX_SECRET) return -1;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t n = 0;
    /* A zero-length key is legal HMAC; OpenSSL wants a non-NULL pointer. */
    const unsigned char *key = s->len ? s->data : (const unsigned char *)"";
    int ok = ctx && EVP_MAC_init(ctx, key, s->len, params) == 1 &&
             (!alen || EVP_MAC_update(ctx, a, alen) == 1) &&
             (!blen || EVP_MAC_update(ctx, b, blen) == 1) &&
             EVP_MAC_final(ctx, out, &n, INBOUND_SIG_MAC_LEN) == 1 && n == INBOUND_SIG_MAC_LEN;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    return ok ? 0 : -1;
}

/* ---- hmac-sha256 ------------------------------------------------------ */

int inbound_sig_hmac_parse(const char *value, size_t n, const char *prefix,
                           unsigned char mac[INBOUND_SIG_MAC_LEN])
{
    size_t pl = prefix ? strlen(prefix) : 0;
    if (!value || n > INBOUND_SIG_MAX_HEADER || n < pl || (pl && memcmp(value, prefix, pl)))
        return -1;
    return inbound_sig_hex_mac(value + pl, n - pl, mac);
}

enum sign_result inbound_sig_hmac_verify(const char *value, size_t n, const char *prefix,
                                         const void *body, size_t body_len,
                                         const inbound_sig_secret *secrets, size_t n_secrets,
                                         size_t *key)
{
    unsigned char got[INBOUND_SIG_MAC_LEN], want[INBOUND_SIG_MAC_LEN];
    if (!value || n == 0) return SIGN_MISSING_HEADER;
    if (inbound_sig_hmac_parse(value, n, prefix, got)) return SIGN_MALFORMED_HEADER;
    for (size_t i = 0; i < n_secrets; i++) {
        if (mac2(&secrets[i], body, body_len, NULL, 0, want)) return SIGN_NOMEM;
        if (CRYPTO_memcmp(want, got, sizeof(got)) == 0) {
            if (key) *key = i;
            return SIGN_OK;
        }
    }
    return SIGN_NO_MATCH;
}

/* ---- Stripe ----------------------------------------------------------- */

/* One KEY=VALUE item of the header into out. */
static enum sign_result stripe_item(const char *s, size_t n, inbound_sig_stripe *out, int *have_t)
{
    const char *eq = memchr(s, '=', n);
    if (!eq || eq == s) return SIGN_MALFORMED_HEADER;
    size_t klen = (size_t)(eq - s), vlen = n - klen - 1;
    const char *v = eq + 1;
    if (klen == 1 && s[0] == 't') {
        if (*have_t || sign_parse_timestamp(v, vlen, &out->t)) return SIGN_MALFORMED_TIMESTAMP;
        *have_t = 1;
    } else if (klen == 2 && !memcmp(s, "v1", 2)) {
        if (out->n_v1 == INBOUND_SIG_MAX_V1 || inbound_sig_hex_mac(v, vlen, out->v1[out->n_v1]))
            return SIGN_MALFORMED_HEADER;
        out->n_v1++;
    }
    return SIGN_OK;
}

enum sign_result inbound_sig_stripe_parse(const char *value, size_t n, inbound_sig_stripe *out)
{
    int have_t = 0;
    out->t = 0;
    out->n_v1 = 0;
    if (!value || n == 0) return SIGN_MISSING_HEADER;
    if (n > INBOUND_SIG_MAX_HEADER) return SIGN_MALFORMED_HEADER;
    for (size_t i = 0; i <= n;) {
        const char *comma = memchr(value + i, ',', n - i);
        size_t end = comma ? (size_t)(comma - value) : n;
        enum sign_result rc = stripe_item(value + i, end - i, out, &have_t);
        if (rc != SIGN_OK) return rc;
        i = end + 1;
    }
    if (!have_t) return SIGN_MALFORMED_TIMESTAMP;
    return out->n_v1 ? SIGN_OK : SIGN_MALFORMED_HEADER;
}

static enum sign_result stripe_check(const inbound_sig_stripe *h, const void *body, size_t body_len,
                                     const inbound_sig_secret *secrets, size_t n_secrets,
                                     size_t *entry, size_t *key)
{
    char prefix[24];
    size_t pl = 0;
    int64_t t = h->t;
    /* "{t}." written by hand: t has at most 18 digits (the parser's bound). */
    char digits[20];
    size_t nd = 0;
    do {
        digits[nd++] = (char)('0' + t % 10);
        t /= 10;
    } while (t);
    while (nd)
        prefix[pl++] = digits[--nd];
    prefix[pl++] = '.';
    for (size_t k = 0; k < n_secrets; k++) {
        unsigned char want[INBOUND_SIG_MAC_LEN];
        if (mac2(&secrets[k], prefix, pl, body, body_len, want)) return SIGN_NOMEM;
        for (size_t i = 0; i < h->n_v1; i++) {
            if (CRYPTO_memcmp(want, h->v1[i], INBOUND_SIG_MAC_LEN) == 0) {
                if (entry) *entry = i;
                if (key) *key = k;
                return SIGN_OK;
            }
        }
    }
    return SIGN_NO_MATCH;
}

enum sign_result inbound_sig_stripe_verify(const char *value, size_t n, const void *body,
                                           size_t body_len, const inbound_sig_secret *secrets,
                                           size_t n_secrets, int64_t now, int64_t tolerance_s,
                                           size_t *entry, size_t *key)
{
    inbound_sig_stripe h;
    enum sign_result rc = inbound_sig_stripe_parse(value, n, &h);
    if (rc != SIGN_OK) return rc;
    if (now - h.t > tolerance_s) return SIGN_STALE;
    if (h.t - now > tolerance_s) return SIGN_FUTURE;
    return stripe_check(&h, body, body_len, secrets, n_secrets, entry, key);
}

enum sign_result inbound_sig_stripe_verify_ignoring_time(const char *value, size_t n,
                                                         const void *body, size_t body_len,
                                                         const inbound_sig_secret *secrets,
                                                         size_t n_secrets, size_t *entry,
                                                         size_t *key)
{
    inbound_sig_stripe h;
    enum sign_result rc = inbound_sig_stripe_parse(value, n, &h);
    if (rc != SIGN_OK) return rc;
    return stripe_check(&h, body, body_len, secrets, n_secrets, entry, key);
}
