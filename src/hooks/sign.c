/* Standard Webhooks signatures (see sign.h): key strings, the v1 HMAC-SHA256
 * and v1a Ed25519 schemes over "{id}.{ts}.{body}", and a bounded parser of
 * the signature header. Every MAC comparison is constant-time. */
#include "hooks/sign.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include "util/mem.h"

#define MAC_LEN 32
#define ED_SIG_LEN 64
#define ED_KEY_LEN 32
#define MAX_KEY_BYTES 4096 /* any real secret is far shorter */

enum key_kind { KEY_HMAC, KEY_ED_SECRET, KEY_ED_PUBLIC };

struct sign_key {
    enum key_kind kind;
    unsigned char *bytes; /* KEY_HMAC */
    size_t len;
    /* KEY_HMAC: keyed once, duplicated per MAC (read only, so threads may
     * share the key). The one-shot HMAC() fetched the algorithm and keyed
     * a context on every call, a third of a signature's cost. NULL: the
     * one-shot is used. */
    EVP_MAC_CTX *hmac;
    EVP_PKEY *pkey; /* KEY_ED_* */
};

/* ---- base64 ----------------------------------------------------------- */

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes into out (room for cap bytes): 0, or -1 when invalid or too long.
 * Padding is optional (secrets are often copied without it), but when
 * present it must complete the last quantum. */
static int b64_decode_into(const char *s, size_t n, unsigned char *out, size_t cap, size_t *len)
{
    size_t pad = 0, o = 0;
    uint32_t acc = 0;
    while (pad < 2 && n > 0 && s[n - 1] == '=') {
        n--;
        pad++;
    }
    if (n == 0 || n % 4 == 1 || (pad && (n + pad) % 4) || n / 4 * 3 + 2 > cap) return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3) {
            out[o++] = (unsigned char)(acc >> 16);
            out[o++] = (unsigned char)(acc >> 8);
            out[o++] = (unsigned char)acc;
            acc = 0;
        }
    }
    if (n % 4 == 2) out[o++] = (unsigned char)(acc >> 4);
    if (n % 4 == 3) {
        out[o++] = (unsigned char)(acc >> 10);
        out[o++] = (unsigned char)(acc >> 2);
    }
    *len = o;
    return 0;
}

unsigned char *sign_base64_decode(const char *s, size_t n, size_t *out_len)
{
    *out_len = 0;
    if (n > SIZE_MAX / 3) return NULL;
    size_t cap = n / 4 * 3 + 3;
    unsigned char *out = pl_malloc(cap);
    if (out && b64_decode_into(s, n, out, cap, out_len)) {
        pl_free(out);
        return NULL;
    }
    return out;
}

/* Decodes exactly want bytes (at most ED_SIG_LEN) into dst: 0, or -1. */
static int b64_decode_exact(const char *s, size_t n, unsigned char *dst, size_t want)
{
    unsigned char tmp[ED_SIG_LEN + 3];
    size_t got;
    if (b64_decode_into(s, n, tmp, sizeof(tmp), &got) || got != want) return -1;
    memcpy(dst, tmp, want);
    return 0;
}

/* ---- keys ------------------------------------------------------------- */

sign_key *sign_key_hmac(const void *bytes, size_t len)
{
    if (len == 0 || len > MAX_KEY_BYTES) return NULL;
    sign_key *k = pl_calloc(1, sizeof(*k));
    if (!k) return NULL;
    k->kind = KEY_HMAC;
    k->len = len;
    if (!(k->bytes = pl_malloc(len))) {
        pl_free(k);
        return NULL;
    }
    memcpy(k->bytes, bytes, len);
    EVP_MAC *m = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    k->hmac = m ? EVP_MAC_CTX_new(m) : NULL;
    EVP_MAC_free(m);
    OSSL_PARAM ps[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                       OSSL_PARAM_construct_end()};
    if (k->hmac && EVP_MAC_init(k->hmac, k->bytes, k->len, ps) != 1) {
        EVP_MAC_CTX_free(k->hmac);
        k->hmac = NULL;
    }
    return k;
}

void sign_key_free(sign_key *k)
{
    if (!k) return;
    if (k->bytes) OPENSSL_cleanse(k->bytes, k->len);
    pl_free(k->bytes);
    EVP_MAC_CTX_free(k->hmac);
    EVP_PKEY_free(k->pkey);
    pl_free(k);
}

/* A 64-byte secret key is libsodium's seed||public: the public half is
 * checked so that a key pasted from the wrong pair is refused, not used. */
static enum sign_key_err ed_secret(const unsigned char *raw, size_t len, sign_key *k)
{
    unsigned char pub[ED_KEY_LEN];
    size_t pub_len = sizeof(pub);
    if (len != ED_KEY_LEN && len != 2 * ED_KEY_LEN) return SIGN_KEY_BAD_LENGTH;
    k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, ED_KEY_LEN);
    if (!k->pkey) return SIGN_KEY_NOMEM;
    if (len == 2 * ED_KEY_LEN &&
        (EVP_PKEY_get_raw_public_key(k->pkey, pub, &pub_len) != 1 || pub_len != ED_KEY_LEN ||
         CRYPTO_memcmp(pub, raw + ED_KEY_LEN, ED_KEY_LEN) != 0))
        return SIGN_KEY_BAD_LENGTH;
    k->kind = KEY_ED_SECRET;
    return SIGN_KEY_OK;
}

static enum sign_key_err ed_public(const unsigned char *raw, size_t len, sign_key *k)
{
    if (len != ED_KEY_LEN) return SIGN_KEY_BAD_LENGTH;
    k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, len);
    if (!k->pkey) return SIGN_KEY_BAD_LENGTH;
    k->kind = KEY_ED_PUBLIC;
    return SIGN_KEY_OK;
}

static int has_prefix(const char *s, size_t len, const char *p)
{
    size_t n = strlen(p);
    return len >= n && memcmp(s, p, n) == 0;
}

enum sign_key_err sign_key_parse(const char *s, size_t len, sign_key **out)
{
    enum key_kind kind;
    size_t skip;
    *out = NULL;
    if (has_prefix(s, len, "v1,") || has_prefix(s, len, "v1a,")) return SIGN_KEY_PASTED;
    if (has_prefix(s, len, "whsec_"))
        kind = KEY_HMAC, skip = 6;
    else if (has_prefix(s, len, "whsk_"))
        kind = KEY_ED_SECRET, skip = 5;
    else if (has_prefix(s, len, "whpk_"))
        kind = KEY_ED_PUBLIC, skip = 5;
    else
        return SIGN_KEY_NO_PREFIX;
    if (len == skip) return SIGN_KEY_EMPTY;
    if (len - skip > 4 * MAX_KEY_BYTES / 3) return SIGN_KEY_BAD_LENGTH;
    size_t raw_len, cap = (len - skip) / 4 * 3 + 3;
    unsigned char *raw = pl_malloc(cap);
    if (!raw) return SIGN_KEY_NOMEM;
    if (b64_decode_into(s + skip, len - skip, raw, cap, &raw_len)) {
        pl_free(raw);
        return SIGN_KEY_BAD_BASE64;
    }
    enum sign_key_err rc = SIGN_KEY_NOMEM;
    if (kind == KEY_HMAC) {
        if ((*out = sign_key_hmac(raw, raw_len))) rc = SIGN_KEY_OK;
    } else {
        sign_key *k = pl_calloc(1, sizeof(*k));
        rc = !k                      ? SIGN_KEY_NOMEM
             : kind == KEY_ED_SECRET ? ed_secret(raw, raw_len, k)
                                     : ed_public(raw, raw_len, k);
        if (rc == SIGN_KEY_OK)
            *out = k;
        else
            sign_key_free(k);
    }
    OPENSSL_cleanse(raw, raw_len);
    pl_free(raw);
    return rc;
}

const char *sign_key_errstr(enum sign_key_err e)
{
    switch (e) {
    case SIGN_KEY_OK:
        return "ok";
    case SIGN_KEY_NO_PREFIX:
        return "missing whsec_ (or whsk_/whpk_) prefix";
    case SIGN_KEY_PASTED:
        return "starts with a signature's \"v1,\": the secret was pasted with it";
    case SIGN_KEY_BAD_BASE64:
        return "the part after the prefix is not base64";
    case SIGN_KEY_EMPTY:
        return "empty key after the prefix";
    case SIGN_KEY_BAD_LENGTH:
        return "wrong key length (Ed25519: 32 bytes, or 64 with matching halves; at most 4 KiB)";
    case SIGN_KEY_NOMEM:
        return "out of memory";
    }
    return "unknown error";
}

/* ---- content, MAC and signatures --------------------------------------- */

/* "{id}.{ts}.{body}" in one buffer: Ed25519 signs in one shot, and HMAC
 * over one buffer keeps both schemes on the same bytes. */
static unsigned char *content(const char *id, size_t id_len, int64_t ts, const void *body,
                              size_t body_len, size_t *len)
{
    char tsbuf[24];
    int tn = snprintf(tsbuf, sizeof(tsbuf), "%lld", (long long)ts);
    if (tn <= 0 || body_len > SIZE_MAX - id_len - 32) return NULL;
    *len = id_len + 1 + (size_t)tn + 1 + body_len;
    unsigned char *buf = pl_malloc(*len + 1);
    if (!buf) return NULL;
    unsigned char *p = buf;
    memcpy(p, id, id_len);
    p += id_len;
    *p++ = '.';
    memcpy(p, tsbuf, (size_t)tn);
    p += tn;
    *p++ = '.';
    if (body_len) memcpy(p, body, body_len);
    return buf;
}

static int mac(const sign_key *k, const unsigned char *msg, size_t len, unsigned char out[MAC_LEN])
{
    EVP_MAC_CTX *c = k->hmac ? EVP_MAC_CTX_dup(k->hmac) : NULL;
    if (c) {
        size_t got = 0;
        int ok = EVP_MAC_update(c, msg, len) == 1 && EVP_MAC_final(c, out, &got, MAC_LEN) == 1 &&
                 got == MAC_LEN;
        EVP_MAC_CTX_free(c);
        return ok ? 0 : -1;
    }
    unsigned int n = 0;
    return HMAC(EVP_sha256(), k->bytes, (int)k->len, msg, len, out, &n) && n == MAC_LEN ? 0 : -1;
}

static int ed_sign(const sign_key *k, const unsigned char *msg, size_t len,
                   unsigned char out[ED_SIG_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = ED_SIG_LEN;
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, out, &n, msg, len) == 1 && n == ED_SIG_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

static int ed_verify(const sign_key *k, const unsigned char *msg, size_t len,
                     const unsigned char sig[ED_SIG_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, ED_SIG_LEN, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static void put_entry(char **p, const char *scheme, const unsigned char *sig, size_t n, int first)
{
    if (!first) *(*p)++ = ' ';
    size_t sl = strlen(scheme);
    memcpy(*p, scheme, sl);
    *p += sl;
    *p += EVP_EncodeBlock((unsigned char *)*p, sig, (int)n);
}

int sign_header(const sign_key *const *keys, size_t n_keys, const char *id, size_t id_len,
                int64_t ts, const void *body, size_t body_len, char **out)
{
    size_t len;
    unsigned char *msg = NULL;
    char *hdr = NULL, *p;
    *out = NULL;
    if (n_keys == 0 || n_keys > SIGN_MAX_ENTRIES) return -1;
    for (size_t i = 0; i < n_keys; i++)
        if (keys[i]->kind == KEY_ED_PUBLIC) return -1;
    if (!(msg = content(id, id_len, ts, body, body_len, &len))) return -1;
    /* "v1a," + base64 of 64 bytes (88) + a space is the widest entry. */
    if (!(hdr = pl_malloc(n_keys * 94 + 1))) goto fail;
    p = hdr;
    for (size_t i = 0; i < n_keys; i++) {
        unsigned char sig[ED_SIG_LEN];
        if (keys[i]->kind == KEY_HMAC) {
            if (mac(keys[i], msg, len, sig)) goto fail;
            put_entry(&p, "v1,", sig, MAC_LEN, i == 0);
        } else {
            if (ed_sign(keys[i], msg, len, sig)) goto fail;
            put_entry(&p, "v1a,", sig, ED_SIG_LEN, i == 0);
        }
    }
    *p = '\0';
    pl_free(msg);
    *out = hdr;
    return 0;
fail:
    pl_free(msg);
    pl_free(hdr);
    return -1;
}

/* ---- parsing ---------------------------------------------------------- */

int sign_parse_timestamp(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    if (!s || n == 0 || n > 18) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int parse_entry(const char *s, size_t n, sign_entry *e)
{
    const char *comma = memchr(s, ',', n);
    unsigned char tmp[ED_SIG_LEN];
    if (!comma || comma == s || comma + 1 == s + n) return -1;
    size_t vlen = (size_t)(comma - s);
    e->sig = comma + 1;
    e->sig_len = n - vlen - 1;
    if (vlen == 2 && !memcmp(s, "v1", 2)) {
        e->scheme = SIGN_SCHEME_V1;
        return b64_decode_exact(e->sig, e->sig_len, tmp, MAC_LEN);
    }
    if (vlen == 3 && !memcmp(s, "v1a", 3)) {
        e->scheme = SIGN_SCHEME_V1A;
        return b64_decode_exact(e->sig, e->sig_len, tmp, ED_SIG_LEN);
    }
    e->scheme = SIGN_SCHEME_OTHER;
    return 0;
}

int sign_header_parse(const char *s, size_t n, sign_entry *out, size_t cap)
{
    size_t count = 0, i = 0;
    if (!s || n == 0 || n > SIGN_MAX_HEADER) return -1;
    if (cap > SIGN_MAX_ENTRIES) cap = SIGN_MAX_ENTRIES;
    while (i < n) {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        size_t start = i;
        while (i < n && s[i] != ' ')
            i++;
        if (count == cap || parse_entry(s + start, i - start, &out[count])) return -1;
        count++;
    }
    return count ? (int)count : -1;
}

/* ---- verifying -------------------------------------------------------- */

static int missing(const char *s, size_t n)
{
    return !s || n == 0;
}

/* Does any entry match key k? Sets *entry to the first that does. */
static int key_matches(const sign_key *k, const sign_entry *e, int n, const unsigned char *msg,
                       size_t len, size_t *entry)
{
    unsigned char want[MAC_LEN], got[ED_SIG_LEN];
    int have_mac = 0;
    for (int i = 0; i < n; i++) {
        if (k->kind == KEY_HMAC && e[i].scheme == SIGN_SCHEME_V1) {
            if (!have_mac && mac(k, msg, len, want)) return -1;
            have_mac = 1;
            if (b64_decode_exact(e[i].sig, e[i].sig_len, got, MAC_LEN) == 0 &&
                CRYPTO_memcmp(want, got, MAC_LEN) == 0) {
                *entry = (size_t)i;
                return 1;
            }
        } else if (k->kind != KEY_HMAC && e[i].scheme == SIGN_SCHEME_V1A) {
            if (b64_decode_exact(e[i].sig, e[i].sig_len, got, ED_SIG_LEN) == 0 &&
                ed_verify(k, msg, len, got)) {
                *entry = (size_t)i;
                return 1;
            }
        }
    }
    return 0;
}

static enum sign_result check_signatures(const sign_request *req, int64_t ts,
                                         const sign_key *const *keys, size_t n_keys,
                                         sign_match *match)
{
    sign_entry entries[SIGN_MAX_ENTRIES];
    size_t len;
    int n = sign_header_parse(req->signature, req->signature_len, entries, SIGN_MAX_ENTRIES);
    if (n < 0 || req->id_len > SIGN_MAX_ID) return SIGN_MALFORMED_HEADER;
    unsigned char *msg = content(req->id, req->id_len, ts, req->body, req->body_len, &len);
    if (!msg) return SIGN_NOMEM;
    enum sign_result rc = SIGN_NO_MATCH;
    for (size_t k = 0; k < n_keys && rc == SIGN_NO_MATCH; k++) {
        size_t entry = 0;
        int m = key_matches(keys[k], entries, n, msg, len, &entry);
        if (m < 0) rc = SIGN_NOMEM;
        if (m > 0) {
            rc = SIGN_OK;
            if (match) *match = (sign_match){.entry = entry, .n_entries = (size_t)n, .key = k};
        }
    }
    pl_free(msg);
    return rc;
}

static enum sign_result verify(const sign_request *req, const sign_key *const *keys, size_t n_keys,
                               int check_time, int64_t now, int64_t tolerance_s, sign_match *match)
{
    int64_t ts;
    if (missing(req->id, req->id_len) || missing(req->timestamp, req->timestamp_len) ||
        missing(req->signature, req->signature_len))
        return SIGN_MISSING_HEADER;
    if (sign_parse_timestamp(req->timestamp, req->timestamp_len, &ts))
        return SIGN_MALFORMED_TIMESTAMP;
    if (check_time && now - ts > tolerance_s) return SIGN_STALE;
    if (check_time && ts - now > tolerance_s) return SIGN_FUTURE;
    return check_signatures(req, ts, keys, n_keys, match);
}

enum sign_result sign_verify(const sign_request *req, const sign_key *const *keys, size_t n_keys,
                             int64_t now, int64_t tolerance_s, sign_match *match)
{
    return verify(req, keys, n_keys, 1, now, tolerance_s, match);
}

enum sign_result sign_verify_ignoring_time(const sign_request *req, const sign_key *const *keys,
                                           size_t n_keys, sign_match *match)
{
    return verify(req, keys, n_keys, 0, 0, 0, match);
}

const char *sign_result_str(enum sign_result r)
{
    switch (r) {
    case SIGN_OK:
        return "ok";
    case SIGN_NO_MATCH:
        return "no matching signature";
    case SIGN_MALFORMED_HEADER:
        return "malformed signature header";
    case SIGN_STALE:
        return "stale timestamp";
    case SIGN_FUTURE:
        return "timestamp in the future";
    case SIGN_MALFORMED_TIMESTAMP:
        return "malformed timestamp";
    case SIGN_MISSING_HEADER:
        return "missing header";
    case SIGN_NOMEM:
        return "out of memory";
    }
    return "unknown result";
}
