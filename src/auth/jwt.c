/* JWT verification and HS256 minting on OpenSSL 3 and jansson. Invariants:
 * only HS256/RS256/ES256 are ever accepted, each algorithm only uses keys of
 * its own type (no alg confusion), the signature is checked before any claim
 * is trusted, and every byte of a token is bounded by JWT_MAX_LEN up front. */
#include "auth/jwt.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/mem.h"
#include "util/status.h"

#define HS256_LEN 32
#define ES256_LEN 64
#define RSA_MIN_BITS 2048

enum key_type { KEY_HMAC, KEY_RSA, KEY_EC };

struct jwt_key {
    enum key_type type;
    char *kid; /* or NULL */
    unsigned char *secret;
    size_t secret_len;
    EVP_PKEY *pkey;
};

struct jwt_keys {
    struct jwt_key *v;
    size_t n;
    size_t cap;
};

/* ======================================================================
 * base64url (RFC 4648 section 5, unpadded), through OpenSSL's base64
 * ====================================================================== */

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Decodes n base64url characters into a pl_malloc'd buffer (*out, *out_len;
 * always NUL-terminated for convenience). Rejects padding, any character
 * outside the alphabet, impossible lengths and non-zero trailing bits, so
 * every payload has exactly one accepted encoding. */
static enum jwt_result b64url_decode(const char *in, size_t n, unsigned char **out, size_t *out_len)
{
    enum jwt_result rc = JWT_NOMEM;
    size_t pad = (4 - n % 4) % 4;
    char *tmp = NULL;
    unsigned char *buf = NULL;

    *out = NULL;
    *out_len = 0;
    if (n % 4 == 1 || n > JWT_MAX_LEN) return JWT_INVALID;
    for (size_t i = 0; i < n; i++)
        if (b64url_val((unsigned char)in[i]) < 0) return JWT_INVALID;
    if (n > 0) {
        int last = b64url_val((unsigned char)in[n - 1]);
        if ((pad == 2 && (last & 0x0f)) || (pad == 1 && (last & 0x03))) return JWT_INVALID;
    }
    tmp = pl_malloc(n + pad + 1);
    buf = pl_malloc((n + pad) / 4 * 3 + 1);
    if (!tmp || !buf) goto fail;
    for (size_t i = 0; i < n; i++)
        tmp[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    memset(tmp + n, '=', pad);
    int got = EVP_DecodeBlock(buf, (const unsigned char *)tmp, (int)(n + pad));
    if (got < 0 || (size_t)got < pad) {
        rc = JWT_INVALID;
        goto fail;
    }
    *out_len = (size_t)got - pad;
    buf[*out_len] = '\0';
    *out = buf;
    pl_free(tmp);
    return JWT_OK;
fail:
    pl_free(tmp);
    pl_free(buf);
    return rc;
}

/* Writes the unpadded base64url form of n bytes to out, which must hold
 * 4 * ((n + 2) / 3) + 1 bytes; returns the length written (NUL excluded). */
static size_t b64url_encode(char *out, const unsigned char *in, size_t n)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    size_t m = (size_t)len;

    while (m > 0 && out[m - 1] == '=')
        m--;
    for (size_t i = 0; i < m; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[m] = '\0';
    return m;
}

/* ======================================================================
 * key set
 * ====================================================================== */

jwt_keys *jwt_keys_new(void)
{
    return pl_calloc(1, sizeof(jwt_keys));
}

void jwt_keys_free(jwt_keys *keys)
{
    if (!keys) return;
    for (size_t i = 0; i < keys->n; i++) {
        struct jwt_key *k = &keys->v[i];
        if (k->secret) OPENSSL_cleanse(k->secret, k->secret_len);
        pl_free(k->secret);
        pl_free(k->kid);
        EVP_PKEY_free(k->pkey);
    }
    pl_free(keys->v);
    pl_free(keys);
}

size_t jwt_keys_count(const jwt_keys *keys)
{
    return keys ? keys->n : 0;
}

/* Appends k (taking its allocations) or leaves everything to the caller. */
static int keys_push(jwt_keys *keys, const struct jwt_key *k)
{
    if (keys->n == keys->cap) {
        size_t cap = keys->cap ? keys->cap * 2 : 4;
        struct jwt_key *v = pl_realloc(keys->v, cap * sizeof(*v));
        if (!v) return PL_ENOMEM;
        keys->v = v;
        keys->cap = cap;
    }
    keys->v[keys->n++] = *k;
    return PL_OK;
}

int jwt_keys_add_hmac(jwt_keys *keys, const void *secret, size_t len, const char *kid)
{
    struct jwt_key k = {.type = KEY_HMAC, .secret_len = len};

    if (!keys || !secret || len == 0 || len > JWT_MAX_LEN * 64) return PL_EINVAL;
    k.secret = pl_malloc(len);
    if (!k.secret) goto fail;
    memcpy(k.secret, secret, len);
    if (kid && !(k.kid = pl_strdup(kid))) goto fail;
    if (keys_push(keys, &k) != PL_OK) goto fail;
    return PL_OK;
fail:
    pl_free(k.secret);
    pl_free(k.kid);
    return PL_ENOMEM;
}

/* Decodes one PEM public key; NULL when the text holds none. Selecting only
 * public keys makes the decoder refuse private-key PEMs outright (pinned by
 * test_add_pem_rejects): a private key in the config is a leak to report. */
static EVP_PKEY *decode_public_pem(const char *pem)
{
    EVP_PKEY *pkey = NULL;
    const unsigned char *data = (const unsigned char *)pem;
    size_t len = strlen(pem);
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(
        &pkey, "PEM", NULL, NULL, OSSL_KEYMGMT_SELECT_PUBLIC_KEY, NULL, NULL);

    if (!dctx) return NULL;
    if (!OSSL_DECODER_from_data(dctx, &data, &len)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    OSSL_DECODER_CTX_free(dctx);
    return pkey;
}

static int classify_pkey(const EVP_PKEY *pkey, enum key_type *type)
{
    char group[64];
    size_t glen = 0;

    if (EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_id(pkey) == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) return PL_EINVAL;
        *type = KEY_RSA;
        return PL_OK;
    }
    if (EVP_PKEY_get_id(pkey) == EVP_PKEY_EC &&
        EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) == 1 &&
        strcmp(group, SN_X9_62_prime256v1) == 0) {
        *type = KEY_EC;
        return PL_OK;
    }
    return PL_EINVAL;
}

int jwt_keys_add_pem(jwt_keys *keys, const char *pem, const char *kid)
{
    struct jwt_key k = {0};
    int rc = PL_EINVAL;

    if (!keys || !pem) return PL_EINVAL;
    k.pkey = decode_public_pem(pem);
    if (!k.pkey || classify_pkey(k.pkey, &k.type) != PL_OK) goto out;
    rc = PL_ENOMEM;
    if (kid && !(k.kid = pl_strdup(kid))) goto out;
    if (keys_push(keys, &k) != PL_OK) goto out;
    k.pkey = NULL;
    k.kid = NULL;
    rc = PL_OK;
out:
    /* The decoder tries several formats and queues errors even when one
     * succeeds; see check_signature for why the queue must be left empty. */
    ERR_clear_error();
    EVP_PKEY_free(k.pkey);
    pl_free(k.kid);
    return rc;
}

/* ======================================================================
 * parsing
 * ====================================================================== */

static enum jwt_result fail_with(struct jwt *jwt, enum jwt_result rc, const char *why)
{
    jwt->_err = rc == JWT_NOMEM ? "out of memory" : why;
    return rc;
}

/* Decodes one base64url segment holding a JSON object. */
static enum jwt_result parse_json_part(struct jwt *jwt, const char *seg, size_t n, json_t **out,
                                       const char *what)
{
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    json_error_t err;
    enum jwt_result rc = b64url_decode(seg, n, &raw, &raw_len);

    if (rc != JWT_OK) return fail_with(jwt, rc, what);
    *out = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, &err);
    pl_free(raw);
    if (!*out) {
        rc = json_error_code(&err) == json_error_out_of_memory ? JWT_NOMEM : JWT_INVALID;
        return fail_with(jwt, rc, what);
    }
    if (!json_is_object(*out)) return fail_with(jwt, JWT_INVALID, what);
    return JWT_OK;
}

enum jwt_result jwt_parse(const char *token, size_t len, struct jwt *out)
{
    const char *dot1, *dot2;
    enum jwt_result rc;

    memset(out, 0, sizeof(*out));
    out->_err = "ok";
    if (!token || len == 0) return fail_with(out, JWT_INVALID, "empty token");
    if (len > JWT_MAX_LEN) return fail_with(out, JWT_INVALID, "token too long");
    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return fail_with(out, JWT_INVALID, "token is not three dot-separated parts");

    rc = parse_json_part(out, token, (size_t)(dot1 - token), &out->_header, "bad header");
    if (rc != JWT_OK) return rc;
    rc = parse_json_part(out, dot1 + 1, (size_t)(dot2 - dot1 - 1), &out->_claims, "bad claims");
    if (rc != JWT_OK) return rc;
    rc = b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &out->_sig, &out->_sig_len);
    if (rc != JWT_OK) return fail_with(out, rc, "bad signature encoding");
    out->_signed_len = (size_t)(dot2 - token);
    out->_signed = pl_strndup(token, out->_signed_len);
    if (!out->_signed) return fail_with(out, JWT_NOMEM, NULL);
    return JWT_OK;
}

/* A string member of obj: 1 and *out when it is a string without embedded
 * NUL, 0 when absent, -1 when present with any other type. */
static int get_str(const json_t *obj, const char *name, const char **out)
{
    json_t *v = json_object_get(obj, name);

    *out = NULL;
    if (!v) return 0;
    if (!json_is_string(v)) return -1;
    *out = json_string_value(v);
    return strlen(*out) == json_string_length(v) ? 1 : -1;
}

const char *jwt_peek_tenant(const struct jwt *jwt)
{
    const char *t = NULL;

    if (!jwt || !jwt->_claims) return NULL;
    return get_str(jwt->_claims, "tenant", &t) == 1 ? t : NULL;
}

/* ======================================================================
 * signatures
 * ====================================================================== */

enum alg { ALG_HS256, ALG_RS256, ALG_ES256 };

static int hs256_ok(const struct jwt *jwt, const struct jwt_key *k)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (jwt->_sig_len != HS256_LEN || k->secret_len > INT32_MAX) return 0;
    if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)jwt->_signed,
              jwt->_signed_len, md, &md_len))
        return 0;
    return md_len == HS256_LEN && CRYPTO_memcmp(md, jwt->_sig, HS256_LEN) == 0;
}

static int digest_verify(EVP_PKEY *pkey, const unsigned char *sig, size_t sig_len,
                         const struct jwt *jwt)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = 0;

    if (!ctx) return 0;
    if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1)
        ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)jwt->_signed,
                              jwt->_signed_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static int rs256_ok(const struct jwt *jwt, const struct jwt_key *k)
{
    if (jwt->_sig_len != (size_t)EVP_PKEY_get_size(k->pkey)) return 0;
    return digest_verify(k->pkey, jwt->_sig, jwt->_sig_len, jwt);
}

/* JWS carries ECDSA as raw R||S (RFC 7518 3.4); OpenSSL verifies DER. */
static int es256_ok(const struct jwt *jwt, const struct jwt_key *k)
{
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL;
    int der_len, ok = 0;

    if (jwt->_sig_len != ES256_LEN) return 0;
    es = ECDSA_SIG_new();
    r = BN_bin2bn(jwt->_sig, ES256_LEN / 2, NULL);
    s = BN_bin2bn(jwt->_sig + ES256_LEN / 2, ES256_LEN / 2, NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) goto fail;
    r = s = NULL; /* owned by es now */
    der_len = i2d_ECDSA_SIG(es, &der);
    if (der_len <= 0) goto fail;
    ok = digest_verify(k->pkey, der, (size_t)der_len, jwt);
fail:
    OPENSSL_free(der);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return ok;
}

static int alg_from_header(const json_t *hdr, enum alg *alg)
{
    const char *s = NULL;

    if (get_str(hdr, "alg", &s) != 1) return -1;
    if (strcmp(s, "HS256") == 0)
        *alg = ALG_HS256;
    else if (strcmp(s, "RS256") == 0)
        *alg = ALG_RS256;
    else if (strcmp(s, "ES256") == 0)
        *alg = ALG_ES256;
    else
        return -1;
    return 0;
}

static int key_fits(const struct jwt_key *k, enum alg alg)
{
    return (alg == ALG_HS256 && k->type == KEY_HMAC) || (alg == ALG_RS256 && k->type == KEY_RSA) ||
           (alg == ALG_ES256 && k->type == KEY_EC);
}

static enum jwt_result check_signature(struct jwt *jwt, const jwt_keys *keys)
{
    enum alg alg;
    const char *kid = NULL;
    size_t kid_known = 0;

    if (alg_from_header(jwt->_header, &alg) != 0)
        return fail_with(jwt, JWT_INVALID, "alg missing or not HS256/RS256/ES256");
    /* We implement no JWS extensions, so a token that declares one critical
     * must be refused (RFC 7515 4.1.11). */
    if (json_object_get(jwt->_header, "crit"))
        return fail_with(jwt, JWT_INVALID, "crit header not supported");
    if (get_str(jwt->_header, "kid", &kid) < 0) return fail_with(jwt, JWT_INVALID, "bad kid");
    for (size_t i = 0; keys && i < keys->n; i++) {
        const struct jwt_key *k = &keys->v[i];
        if (kid && (!k->kid || strcmp(k->kid, kid) != 0)) continue;
        kid_known++;
        if (!key_fits(k, alg)) continue;
        if ((alg == ALG_HS256 && hs256_ok(jwt, k)) || (alg == ALG_RS256 && rs256_ok(jwt, k)) ||
            (alg == ALG_ES256 && es256_ok(jwt, k)))
            return JWT_OK;
    }
    /* Failed verifications leave entries on the thread's OpenSSL error
     * queue, which would confuse a later SSL_get_error on the same thread. */
    ERR_clear_error();
    if (kid && !kid_known) return fail_with(jwt, JWT_INVALID, "unknown kid");
    return fail_with(jwt, JWT_INVALID, "bad signature");
}

/* ======================================================================
 * claims
 * ====================================================================== */

/* A NumericDate member: 1 and *out when a number, 0 when absent, -1 when of
 * another type or out of range. Fractions are truncated toward -inf. */
static int get_time(const json_t *obj, const char *name, int64_t *out)
{
    json_t *v = json_object_get(obj, name);

    *out = 0;
    if (!v) return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = floor(json_real_value(v));
        if (!isfinite(d) || d < -9.0e15 || d > 9.0e15) return -1;
        *out = (int64_t)d;
        return 1;
    }
    return -1;
}

/* Collects an array of pattern strings into a pl_malloc'd pointer array. */
static enum jwt_result get_patterns(struct jwt *jwt, const char *name, const char ***out,
                                    size_t *n_out)
{
    json_t *arr = json_object_get(jwt->_claims, name);
    const char **v;
    size_t n;

    *out = NULL;
    *n_out = 0;
    if (!arr) return JWT_OK;
    if (!json_is_array(arr)) return fail_with(jwt, JWT_INVALID, "channels/publish not an array");
    n = json_array_size(arr);
    if (n == 0) return JWT_OK;
    v = pl_malloc(n * sizeof(*v));
    if (!v) return fail_with(jwt, JWT_NOMEM, NULL);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e)) {
            pl_free(v);
            return fail_with(jwt, JWT_INVALID, "channels/publish entry not a string");
        }
        v[i] = json_string_value(e);
    }
    *out = v;
    *n_out = n;
    return JWT_OK;
}

static enum jwt_result get_info(struct jwt *jwt)
{
    json_t *info = json_object_get(jwt->_claims, "info");
    size_t n;

    if (!info) return JWT_OK;
    if (!json_is_object(info)) return fail_with(jwt, JWT_INVALID, "info not an object");
    n = json_dumpb(info, NULL, 0, JSON_COMPACT);
    if (n == 0) return fail_with(jwt, JWT_NOMEM, NULL);
    jwt->_info = pl_malloc(n + 1);
    if (!jwt->_info) return fail_with(jwt, JWT_NOMEM, NULL);
    if (json_dumpb(info, jwt->_info, n, JSON_COMPACT) != n) return fail_with(jwt, JWT_NOMEM, NULL);
    jwt->_info[n] = '\0';
    return JWT_OK;
}

static void clear_claims(struct jwt *jwt)
{
    pl_free(jwt->_info);
    pl_free((void *)jwt->channels);
    pl_free((void *)jwt->publish);
    jwt->_info = NULL;
    jwt->sub = jwt->tenant = jwt->channel = jwt->info = NULL;
    jwt->channels = jwt->publish = NULL;
    jwt->n_channels = jwt->n_publish = 0;
    jwt->exp = jwt->iat = 0;
    jwt->_verified = 0;
}

/* Fills the public fields from verified claims. Type errors come first so
 * a malformed token reads as invalid even when it is also expired. */
static enum jwt_result check_claims(struct jwt *jwt, int64_t now_s)
{
    const json_t *c = jwt->_claims;
    int64_t nbf = 0;
    int has_exp, has_nbf;
    enum jwt_result rc;

    if (get_str(c, "sub", &jwt->sub) != 1 || jwt->sub[0] == '\0')
        return fail_with(jwt, JWT_INVALID, "sub missing or not a non-empty string");
    if (get_str(c, "tenant", &jwt->tenant) < 0)
        return fail_with(jwt, JWT_INVALID, "tenant not a string");
    if (get_str(c, "channel", &jwt->channel) < 0)
        return fail_with(jwt, JWT_INVALID, "channel not a string");
    has_exp = get_time(c, "exp", &jwt->exp);
    has_nbf = get_time(c, "nbf", &nbf);
    if (has_exp < 0 || has_nbf < 0 || get_time(c, "iat", &jwt->iat) < 0)
        return fail_with(jwt, JWT_INVALID, "exp/nbf/iat not a number");
    if ((rc = get_patterns(jwt, "channels", &jwt->channels, &jwt->n_channels)) != JWT_OK ||
        (rc = get_patterns(jwt, "publish", &jwt->publish, &jwt->n_publish)) != JWT_OK ||
        (rc = get_info(jwt)) != JWT_OK)
        return rc;
    if (has_exp && now_s >= jwt->exp) return fail_with(jwt, JWT_EXPIRED, "token expired");
    if (has_nbf && now_s < nbf) return fail_with(jwt, JWT_INVALID, "token not yet valid (nbf)");
    jwt->info = jwt->_info;
    return JWT_OK;
}

enum jwt_result jwt_verify(struct jwt *jwt, const jwt_keys *keys, int64_t now_s)
{
    enum jwt_result rc;

    clear_claims(jwt);
    if (!jwt->_header || !jwt->_claims || !jwt->_signed)
        return fail_with(jwt, JWT_INVALID, "token not parsed");
    rc = check_signature(jwt, keys);
    if (rc == JWT_OK) rc = check_claims(jwt, now_s);
    if (rc != JWT_OK) {
        clear_claims(jwt);
        return rc;
    }
    jwt->_err = "ok";
    jwt->_verified = 1;
    return JWT_OK;
}

const char *jwt_claim_str(const struct jwt *jwt, const char *name)
{
    const char *s = NULL;

    if (!jwt || !jwt->_verified || !name) return NULL;
    return get_str(jwt->_claims, name, &s) == 1 ? s : NULL;
}

const char *jwt_errmsg(const struct jwt *jwt)
{
    return jwt && jwt->_err ? jwt->_err : "ok";
}

const char *jwt_reason(const struct jwt *jwt)
{
    /* The failure messages of this file that are not "the token is not a
     * well-formed JWT of ours"; every other one is. */
    static const struct {
        const char *err, *reason;
    } reasons[] = {
        {"ok", "ok"},
        {"bad signature", "bad signature"},
        {"unknown kid", "unknown key id"},
        {"alg missing or not HS256/RS256/ES256", "algorithm not allowed"},
        {"sub missing or not a non-empty string", "missing sub"},
        {"token expired", "token expired"},
        {"token not yet valid (nbf)", "token not yet valid"},
        {"out of memory", "server out of memory"},
    };
    const char *err = jwt_errmsg(jwt);
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (!strcmp(err, reasons[i].err)) return reasons[i].reason;
    return "token malformed";
}

void jwt_release(struct jwt *jwt)
{
    if (!jwt) return;
    clear_claims(jwt);
    json_decref(jwt->_header);
    json_decref(jwt->_claims);
    pl_free(jwt->_signed);
    pl_free(jwt->_sig);
    memset(jwt, 0, sizeof(*jwt));
    jwt->_err = "ok";
}

/* ======================================================================
 * minting
 * ====================================================================== */

static int is_json_object(const char *s, size_t n)
{
    json_error_t err;
    json_t *v = json_loadb(s, n, JSON_REJECT_DUPLICATES, &err);
    int ok = json_is_object(v);

    json_decref(v);
    return ok;
}

char *jwt_sign_hs256(const char *secret, size_t secret_len, const char *claims_json,
                     size_t claims_len)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    size_t cap, n;
    char *tok = NULL;

    if (!secret || secret_len == 0 || secret_len > INT32_MAX || !claims_json ||
        claims_len > JWT_MAX_LEN || !is_json_object(claims_json, claims_len))
        return NULL;
    cap =
        4 * ((sizeof(header) + 2) / 3) + 4 * ((claims_len + 2) / 3) + 4 * ((HS256_LEN + 2) / 3) + 3;
    tok = pl_malloc(cap);
    if (!tok) return NULL;
    n = b64url_encode(tok, (const unsigned char *)header, sizeof(header) - 1);
    tok[n++] = '.';
    n += b64url_encode(tok + n, (const unsigned char *)claims_json, claims_len);
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)tok, n, md, &md_len) ||
        md_len != HS256_LEN)
        goto fail;
    tok[n++] = '.';
    n += b64url_encode(tok + n, md, md_len);
    if (n > JWT_MAX_LEN) goto fail;
    return tok;
fail:
    pl_free(tok);
    return NULL;
}

/* ======================================================================
 * patterns
 * ====================================================================== */

int jwt_pattern_match(const char *pattern, const char *channel, size_t len)
{
    size_t p = 0, c = 0, star = (size_t)-1, star_c = 0;

    if (!pattern || (!channel && len)) return 0;
    while (c < len) {
        if (pattern[p] == '*') {
            star = p++;
            star_c = c;
        } else if (pattern[p] != '\0' && pattern[p] == channel[c]) {
            p++;
            c++;
        } else if (star != (size_t)-1) {
            /* Let the last star swallow one more byte and retry from there;
             * earlier stars never need revisiting. */
            p = star + 1;
            c = ++star_c;
        } else {
            return 0;
        }
    }
    while (pattern[p] == '*')
        p++;
    return pattern[p] == '\0';
}
