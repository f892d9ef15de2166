/* Unit tests for auth/jwt: each algorithm with keys generated here, the
 * classic attacks (alg none, alg confusion, kid games, bit flips), malformed
 * encodings, claim validation, key rotation, patterns and out-of-memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "auth/jwt.h"
#include "util/mem.h"
#include "util/status.h"

#define NOW 1700000000LL
#define SECRET "s3cret-key-for-tests-0123456789abcdef"

enum signer { SIG_NONE, SIG_HS, SIG_RS, SIG_ES, SIG_RAW };

struct fixture {
    EVP_PKEY *rsa;
    EVP_PKEY *ec;
    char *rsa_pem;
    char *ec_pem;
};

/* ---- helpers ---------------------------------------------------------- */

static char *b64url(const unsigned char *in, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

static size_t sign_pkey(EVP_PKEY *k, const char *in, unsigned char *sig, size_t cap)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = cap;
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &len, (const unsigned char *)in, strlen(in)), 1);
    EVP_MD_CTX_free(ctx);
    return len;
}

/* DER ECDSA signature -> JWS raw R||S. */
static void der_to_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
    const BIGNUM *r, *s;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &der, (long)len);
    assert_non_null(es);
    ECDSA_SIG_get0(es, &r, &s);
    assert_int_equal(BN_bn2binpad(r, raw, 32), 32);
    assert_int_equal(BN_bn2binpad(s, raw + 32, 32), 32);
    ECDSA_SIG_free(es);
}

/* Builds header.claims.signature, signing with the given method. key is the
 * HMAC secret (SIG_HS), an EVP_PKEY (SIG_RS, SIG_ES) or raw signature bytes
 * of length keylen (SIG_RAW). The result is malloc'd. */
static char *mk(const char *hdr, const char *claims, enum signer how, const void *key,
                size_t keylen)
{
    char *h = b64url((const unsigned char *)hdr, strlen(hdr));
    char *c = b64url((const unsigned char *)claims, strlen(claims));
    size_t in_len = strlen(h) + strlen(c) + 2;
    char *in = malloc(in_len);
    unsigned char sig[1024];
    size_t sig_len = 0;
    unsigned int md_len = 0;

    snprintf(in, in_len, "%s.%s", h, c);
    switch (how) {
    case SIG_NONE:
        break;
    case SIG_HS:
        HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)in, strlen(in), sig, &md_len);
        sig_len = md_len;
        break;
    case SIG_RS:
        sig_len = sign_pkey((EVP_PKEY *)key, in, sig, sizeof(sig));
        break;
    case SIG_ES: {
        unsigned char der[128];
        size_t dl = sign_pkey((EVP_PKEY *)key, in, der, sizeof(der));
        der_to_raw(der, dl, sig);
        sig_len = 64;
        break;
    }
    case SIG_RAW:
        memcpy(sig, key, keylen);
        sig_len = keylen;
        break;
    }
    char *s = b64url(sig, sig_len);
    size_t n = strlen(in) + strlen(s) + 2;
    char *tok = malloc(n);
    snprintf(tok, n, "%s.%s", in, s);
    free(h);
    free(c);
    free(in);
    free(s);
    return tok;
}

static jwt_keys *hmac_keys(const char *secret, const char *kid)
{
    jwt_keys *k = jwt_keys_new();
    assert_non_null(k);
    assert_int_equal(jwt_keys_add_hmac(k, secret, strlen(secret), kid), PL_OK);
    return k;
}

/* Parses and verifies a NUL-terminated token; returns the first failure. */
static enum jwt_result check(const char *tok, const jwt_keys *keys, int64_t now)
{
    struct jwt t;
    enum jwt_result rc = jwt_parse(tok, strlen(tok), &t);
    if (rc == JWT_OK) rc = jwt_verify(&t, keys, now);
    if (rc != JWT_OK) {
        assert_non_null(jwt_errmsg(&t));
        assert_string_not_equal(jwt_errmsg(&t), "ok");
        assert_null(t.sub);
    }
    jwt_release(&t);
    return rc;
}

static enum jwt_result check_hs(const char *hdr, const char *claims)
{
    jwt_keys *k = hmac_keys(SECRET, NULL);
    char *tok = mk(hdr, claims, SIG_HS, SECRET, strlen(SECRET));
    enum jwt_result rc = check(tok, k, NOW);
    free(tok);
    jwt_keys_free(k);
    return rc;
}

static char *pem_of(EVP_PKEY *k, const char *structure, int selection)
{
    OSSL_ENCODER_CTX *ctx = OSSL_ENCODER_CTX_new_for_pkey(k, selection, "PEM", structure, NULL);
    unsigned char *data = NULL;
    size_t len = 0;
    assert_non_null(ctx);
    assert_int_equal(OSSL_ENCODER_to_data(ctx, &data, &len), 1);
    OSSL_ENCODER_CTX_free(ctx);
    char *s = malloc(len + 1);
    memcpy(s, data, len);
    s[len] = '\0';
    OPENSSL_free(data);
    return s;
}

static char *pub_pem(EVP_PKEY *k)
{
    return pem_of(k, "SubjectPublicKeyInfo", EVP_PKEY_PUBLIC_KEY);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->rsa = EVP_RSA_gen(2048);
    f->ec = EVP_EC_gen("P-256");
    assert_non_null(f->rsa);
    assert_non_null(f->ec);
    f->rsa_pem = pub_pem(f->rsa);
    f->ec_pem = pub_pem(f->ec);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    EVP_PKEY_free(f->rsa);
    EVP_PKEY_free(f->ec);
    free(f->rsa_pem);
    free(f->ec_pem);
    free(f);
    return 0;
}

static const char *HS = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
static const char *RS = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
static const char *ES = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";
static const char *BASIC = "{\"sub\":\"alice\",\"tenant\":\"acme\"}";

/* ---- valid tokens ----------------------------------------------------- */

static void test_hs256_valid_all_claims(void **state)
{
    const char *claims = "{\"sub\":\"alice\",\"tenant\":\"acme\",\"exp\":1700003600,"
                         "\"iat\":1699999000,\"nbf\":1699999000,\"info\":{\"name\":\"Alice\","
                         "\"n\":[1,2]},\"channels\":[\"chat:*\",\"inbox:#alice\"],"
                         "\"publish\":[\"chat:general\"],\"channel\":\"dm:#alice,bob\","
                         "\"custom\":\"x\",\"num\":5}";
    jwt_keys *k = hmac_keys(SECRET, NULL);
    char *tok = jwt_sign_hs256(SECRET, strlen(SECRET), claims, strlen(claims));
    struct jwt t;

    assert_non_null(tok);
    assert_int_equal(jwt_parse(tok, strlen(tok), &t), JWT_OK);
    assert_string_equal(jwt_peek_tenant(&t), "acme");
    assert_null(t.sub); /* nothing exposed before verify */
    assert_null(jwt_claim_str(&t, "custom"));
    assert_int_equal(jwt_verify(&t, k, NOW), JWT_OK);
    assert_string_equal(jwt_errmsg(&t), "ok");
    assert_string_equal(t.sub, "alice");
    assert_string_equal(t.tenant, "acme");
    assert_string_equal(t.channel, "dm:#alice,bob");
    assert_int_equal(t.exp, 1700003600);
    assert_int_equal(t.iat, 1699999000);
    assert_string_equal(t.info, "{\"name\":\"Alice\",\"n\":[1,2]}");
    assert_int_equal(t.n_channels, 2);
    assert_string_equal(t.channels[0], "chat:*");
    assert_string_equal(t.channels[1], "inbox:#alice");
    assert_int_equal(t.n_publish, 1);
    assert_string_equal(t.publish[0], "chat:general");
    assert_string_equal(jwt_claim_str(&t, "custom"), "x");
    assert_null(jwt_claim_str(&t, "num"));
    assert_null(jwt_claim_str(&t, "missing"));
    /* Verifying again is allowed and gives the same answer. */
    assert_int_equal(jwt_verify(&t, k, NOW), JWT_OK);
    assert_string_equal(t.sub, "alice");
    jwt_release(&t);
    assert_null(t.sub);
    jwt_release(&t); /* idempotent */
    pl_free(tok);
    jwt_keys_free(k);
}

static void test_minimal_claims(void **state)
{
    jwt_keys *k = hmac_keys(SECRET, NULL);
    char *tok = mk(HS, "{\"sub\":\"u\"}", SIG_HS, SECRET, strlen(SECRET));
    struct jwt t;
    assert_int_equal(jwt_parse(tok, strlen(tok), &t), JWT_OK);
    assert_null(jwt_peek_tenant(&t));
    assert_int_equal(jwt_verify(&t, k, NOW), JWT_OK);
    assert_null(t.tenant);
    assert_null(t.info);
    assert_null(t.channel);
    assert_int_equal(t.exp, 0);
    assert_int_equal(t.iat, 0);
    assert_int_equal(t.n_channels, 0);
    assert_int_equal(t.n_publish, 0);
    jwt_release(&t);
    free(tok);
    jwt_keys_free(k);
}

static void test_rs256_valid(void **state)
{
    struct fixture *f = *state;
    jwt_keys *k = jwt_keys_new();
    assert_int_equal(jwt_keys_add_pem(k, f->rsa_pem, NULL), PL_OK);
    char *tok = mk(RS, BASIC, SIG_RS, f->rsa, 0);
    assert_int_equal(check(tok, k, NOW), JWT_OK);
    free(tok);
    jwt_keys_free(k);
}

static void test_rs256_pkcs1_pem(void **state)
{
    struct fixture *f = *state;
    char *pem = pem_of(f->rsa, "type-specific", EVP_PKEY_PUBLIC_KEY);
    assert_non_null(strstr(pem, "BEGIN RSA PUBLIC KEY"));
    jwt_keys *k = jwt_keys_new();
    assert_int_equal(jwt_keys_add_pem(k, pem, NULL), PL_OK);
    char *tok = mk(RS, BASIC, SIG_RS, f->rsa, 0);
    assert_int_equal(check(tok, k, NOW), JWT_OK);
    free(tok);
    free(pem);
    jwt_keys_free(k);
}

static void test_es256_valid(void **state)
{
    struct fixture *f = *state;
    jwt_keys *k = jwt_keys_new();
    assert_int_equal(jwt_keys_add_pem(k, f->ec_pem, NULL), PL_OK);
    for (int i = 0; i < 20; i++) { /* random k: R and S with leading zero bytes too */
        char *tok = mk(ES, BASIC, SIG_ES, f->ec, 0);
        assert_int_equal(check(tok, k, NOW), JWT_OK);
        free(tok);
    }
    jwt_keys_free(k);
}

static void test_es256_der_signature_rejected(void **state)
{
    struct fixture *f = *state;
    jwt_keys *k = jwt_keys_new();
    assert_int_equal(jwt_keys_add_pem(k, f->ec_pem, NULL), PL_OK);
    /* A DER signature (what OpenSSL produces) is not the JWS form. */
    char *h = b64url((const unsigned char *)ES, strlen(ES));
    char *c = b64url((const unsigned char *)BASIC, strlen(BASIC));
    char in[512];
    unsigned char der[128];
    snprintf(in, sizeof(in), "%s.%s", h, c);
    size_t dl = sign_pkey(f->ec, in, der, sizeof(der));
    char *tok = mk(ES, BASIC, SIG_RAW, der, dl);
    assert_int_equal(check(tok, k, NOW), JWT_INVALID);
    /* Short and long raw signatures are refused without reading past them. */
    for (size_t n = 0; n < 70; n += 1) {
        if (n == 64) continue;
        unsigned char raw[70];
        memset(raw, 0x5a, sizeof(raw));
        char *t = mk(ES, BASIC, SIG_RAW, raw, n);
        assert_int_equal(check(t, k, NOW), JWT_INVALID);
        free(t);
    }
    /* An all-zero R||S must not crash or pass. */
    unsigned char zero[64] = {0};
    char *tok2 = mk(ES, BASIC, SIG_RAW, zero, sizeof(zero));
    assert_int_equal(check(tok2, k, NOW), JWT_INVALID);
    free(h);
    free(c);
    free(tok);
    free(tok2);
    jwt_keys_free(k);
}

/* ---- attacks ---------------------------------------------------------- */

static void test_alg_none_and_others(void **state)
{
    jwt_keys *k = hmac_keys(SECRET, NULL);
    const char *hdrs[] = {"{\"alg\":\"none\"}",  "{\"alg\":\"None\"}",  "{\"alg\":\"NONE\"}",
                          "{\"alg\":\"HS512\"}", "{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}",
                          "{\"alg\":\"PS256\"}", "{\"alg\":\"EdDSA\"}", "{\"typ\":\"JWT\"}",
                          "{\"alg\":null}",      "{\"alg\":256}",       "{\"alg\":[\"HS256\"]}",
                          "{\"alg\":\"\"}"};
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        char *none = mk(hdrs[i], BASIC, SIG_NONE, NULL, 0);
        char *hs = mk(hdrs[i], BASIC, SIG_HS, SECRET, strlen(SECRET));
        assert_int_equal(check(none, k, NOW), JWT_INVALID);
        assert_int_equal(check(hs, k, NOW), JWT_INVALID);
        free(none);
        free(hs);
    }
    /* A valid HS256 token with its signature stripped. */
    char *tok = mk(HS, BASIC, SIG_NONE, NULL, 0);
    assert_int_equal(check(tok, k, NOW), JWT_INVALID);
    free(tok);
    jwt_keys_free(k);
}

static void test_alg_confusion(void **state)
{
    struct fixture *f = *state;
    jwt_keys *k = jwt_keys_new();
    assert_int_equal(jwt_keys_add_pem(k, f->rsa_pem, NULL), PL_OK);
    assert_int_equal(jwt_keys_add_pem(k, f->ec_pem, NULL), PL_OK);

    /* HS256 keyed with the public key text, or its DER: the classic attack. */
    char *t1 = mk(HS, BASIC, SIG_HS, f->rsa_pem, strlen(f->rsa_pem));
    char *t2 = mk(HS, BASIC, SIG_HS, f->ec_pem, strlen(f->ec_pem));
    assert_int_equal(check(t1, k, NOW), JWT_INVALID);
    assert_int_equal(check(t2, k, NOW), JWT_INVALID);

    /* With an HMAC key present too, an RS256/ES256 header over an HMAC
     * signature must still fail. */
    assert_int_equal(jwt_keys_add_hmac(k, SECRET, strlen(SECRET), NULL), PL_OK);
    char *t3 = mk(RS, BASIC, SIG_HS, SECRET, strlen(SECRET));
    char *t4 = mk(ES, BASIC, SIG_HS, SECRET, strlen(SECRET));
    assert_int_equal(check(t3, k, NOW), JWT_INVALID);
    assert_int_equal(check(t4, k, NOW), JWT_INVALID);

    /* Right signature, wrong declared algorithm. */
    char *t5 = mk(ES, BASIC, SIG_RS, f->rsa, 0);
    char *t6 = mk(RS, BASIC, SIG_ES, f->ec, 0);
    assert_int_equal(check(t5, k, NOW), JWT_INVALID);
    assert_int_equal(check(t6, k, NOW), JWT_INVALID);

    /* HMAC keyed with the PEM verifies nowhere even when the PEM text is
     * also configured as an HMAC secret of a different key set. */
    jwt_keys *only_pub = jwt_keys_new();
    assert_int_equal(jwt_keys_add_pem(only_pub, f->rsa_pem, NULL), PL_OK);
    char *t7 = mk(HS, BASIC, SIG_HS, "", 0);
    assert_int_equal(check(t7, only_pub, NOW), JWT_INVALID);

    free(t1);
    free(t2);
    free(t3);
    free(t4);
    free(t5);
    free(t6);
    free(t7);
    jwt_keys_free(k);
    jwt_keys_free(only_pub);
}

/* Decodes the signature of tok, flips one bit at byte i, re-encodes. */
static char *flip_sig_bit(const char *tok, size_t byte, int bit)
{
    const char *dot = strrchr(tok, '.');
    size_t n = strlen(dot + 1);
    char *std = malloc(n + 4);
    unsigned char raw[600];
    size_t pad = (4 - n % 4) % 4;
    for (size_t i = 0; i < n; i++)
        std[i] = dot[1 + i] == '-' ? '+' : dot[1 + i] == '_' ? '/' : dot[1 + i];
    memset(std + n, '=', pad);
    int got = EVP_DecodeBlock(raw, (unsigned char *)std, (int)(n + pad));
    size_t len = (size_t)got - pad;
    raw[byte % len] ^= (unsigned char)(1u << bit);
    char *s = b64url(raw, len);
    size_t head = (size_t)(dot - tok);
    char *out = malloc(head + strlen(s) + 2);
    memcpy(out, tok, head + 1);
    strcpy(out + head + 1, s);
    free(std);
    free(s);
    return out;
}

static void test_bad_signature_bitflips(void **state)
{
    struct fixture *f = *state;
    jwt_keys *k = jwt_keys_new();
    assert_int_equal(jwt_keys_add_hmac(k, SECRET, strlen(SECRET), NULL), PL_OK);
    assert_int_equal(jwt_keys_add_pem(k, f->rsa_pem, NULL), PL_OK);
    assert_int_equal(jwt_keys_add_pem(k, f->ec_pem, NULL), PL_OK);
    char *toks[] = {mk(HS, BASIC, SIG_HS, SECRET, strlen(SECRET)), mk(RS, BASIC, SIG_RS, f->rsa, 0),
                    mk(ES, BASIC, SIG_ES, f->ec, 0)};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(check(toks[i], k, NOW), JWT_OK);
        for (size_t byte = 0; byte < 64; byte += 7) {
            char *bad = flip_sig_bit(toks[i], byte, (int)(byte % 8));
            assert_int_equal(check(bad, k, NOW), JWT_INVALID);
            free(bad);
        }
        free(toks[i]);
    }
    /* Tampered claims with the original signature. */
    char *good = mk(HS, BASIC, SIG_HS, SECRET, strlen(SECRET));
    char *evil = mk(HS, "{\"sub\":\"admin\",\"tenant\":\"acme\"}", SIG_NONE, NULL, 0);
    char *gsig = strrchr(good, '.') + 1;
    char *forged = malloc(strlen(evil) + strlen(gsig) + 1);
    strcpy(forged, evil);
    strcat(forged, gsig);
    assert_int_equal(check(forged, k, NOW), JWT_INVALID);
    /* Wrong secret. */
    jwt_keys *other = hmac_keys("another-secret", NULL);
    assert_int_equal(check(good, other, NOW), JWT_INVALID);
    assert_int_equal(check(good, NULL, NOW), JWT_INVALID);
    jwt_keys *empty = jwt_keys_new();
    assert_int_equal(check(good, empty, NOW), JWT_INVALID);
    free(good);
    free(evil);
    free(forged);
    jwt_keys_free(other);
    jwt_keys_free(empty);
    jwt_keys_free(k);
}

/* ---- malformed -------------------------------------------------------- */

static void test_malformed_tokens(void **state)
{
    jwt_keys *k = hmac_keys(SECRET, NULL);
    char *good = mk(HS, BASIC, SIG_HS, SECRET, strlen(SECRET));
    struct jwt t;

    /* Every strict prefix fails (never OK) and never crashes. */
    for (size_t n = 0; n < strlen(good); n++) {
        enum jwt_result rc = jwt_parse(good, n, &t);
        if (rc == JWT_OK) rc = jwt_verify(&t, k, NOW);
        assert_int_equal(rc, JWT_INVALID);
        jwt_release(&t);
    }
    assert_int_equal(check(good, k, NOW), JWT_OK);

    const char *bad[] = {
        "",
        ".",
        "..",
        "...",
        "garbage",
        "a.b",
        "a.b.c.d",
        "e30.e30.",                                   /* {} has no alg */
        "e30=.e30.AAAA",                              /* padding */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0=.AAAA", /* padding in claims */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.AA==",  /* padding in sig */
        "eyJhbGci+iJIUzI1NiJ9.eyJzdWIiOiJ1In0.AAAA",  /* standard alphabet */
        "eyJhbGci/iJIUzI1NiJ9.eyJzdWIiOiJ1In0.AAAA",
        "eyJhbGciOiJIUzI1NiJ9 .eyJzdWIiOiJ1In0.AAAA",             /* space */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.A",                 /* impossible length */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.AB",                /* non-zero trailing bits */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.AAB",               /* non-zero trailing bits */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.AAAA.",             /* too many dots */
        "eyJhbGciOiJIUzI1NiJ9..AAAA",                             /* empty claims */
        ".eyJzdWIiOiJ1In0.AAAA",                                  /* empty header */
        "W10.e30.AAAA",                                           /* header [] */
        "eyJhbGciOiJIUzI1NiJ9.W10.AAAA",                          /* claims [] */
        "eyJhbGciOiJIUzI1NiJ9.MQ.AAAA",                           /* claims 1 */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1Ig.AAAA",               /* {"sub":"u" */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In19.AAAA",             /* trailing } */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwic3ViIjoiYiJ9.AAAA", /* duplicate sub */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(check(bad[i], k, NOW), JWT_INVALID);
        /* All but the first alg-less one fail in the parser already. */
        if (strcmp(bad[i], "e30.e30.") != 0) {
            assert_int_equal(jwt_parse(bad[i], strlen(bad[i]), &t), JWT_INVALID);
            jwt_release(&t);
        }
    }
    assert_int_equal(jwt_parse("e30.e30.", 8, &t), JWT_OK);
    assert_int_equal(jwt_verify(&t, k, NOW), JWT_INVALID);
    jwt_release(&t);

    /* Embedded NUL, and NUL inside the length. */
    char withnul[256];
    size_t gl = strlen(good);
    memcpy(withnul, good, gl);
    withnul[10] = '\0';
    assert_int_equal(jwt_parse(withnul, gl, &t), JWT_INVALID);
    jwt_release(&t);
    /* Duplicate alg in header: ambiguity is refused. */
    char *dup = mk("{\"alg\":\"none\",\"alg\":\"HS256\"}", BASIC, SIG_HS, SECRET, strlen(SECRET));
    assert_int_equal(check(dup, k, NOW), JWT_INVALID);
    /* \u0000 in a claim string is refused. */
    char *nul = mk(HS, "{\"sub\":\"a\\u0000b\"}", SIG_HS, SECRET, strlen(SECRET));
    assert_int_equal(check(nul, k, NOW), JWT_INVALID);
    /* crit header. */
    char *crit =
        mk("{\"alg\":\"HS256\",\"crit\":[\"x\"],\"x\":1}", BASIC, SIG_HS, SECRET, strlen(SECRET));
    assert_int_equal(check(crit, k, NOW), JWT_INVALID);
    /* NULL and verify without parse. */
    assert_int_equal(jwt_parse(NULL, 5, &t), JWT_INVALID);
    assert_int_equal(jwt_verify(&t, k, NOW), JWT_INVALID);
    assert_null(jwt_peek_tenant(&t));
    jwt_release(&t);
    free(dup);
    free(nul);
    free(crit);
    free(good);
    jwt_keys_free(k);
}

static void test_oversized(void **state)
{
    jwt_keys *k = hmac_keys(SECRET, NULL);
    size_t pad = JWT_MAX_LEN;
    char *claims = malloc(pad + 64);
    struct jwt t;

    /* Just under the limit verifies; just over is refused before parsing. */
    for (size_t fill = 5000; fill < 6200; fill += 1) {
        snprintf(claims, pad + 64, "{\"sub\":\"u\",\"p\":\"%0*d\"}", (int)fill, 0);
        char *tok = mk(HS, claims, SIG_HS, SECRET, strlen(SECRET));
        size_t n = strlen(tok);
        enum jwt_result rc = check(tok, k, NOW);
        assert_int_equal(rc, n <= JWT_MAX_LEN ? JWT_OK : JWT_INVALID);
        if (n > JWT_MAX_LEN) {
            assert_int_equal(jwt_parse(tok, n, &t), JWT_INVALID);
            assert_string_equal(jwt_errmsg(&t), "token too long");
            jwt_release(&t);
        }
        free(tok);
    }
    /* Minting refuses claims that would make an unverifiable token. */
    snprintf(claims, pad + 64, "{\"sub\":\"u\",\"p\":\"%0*d\"}", 7000, 0);
    assert_null(jwt_sign_hs256(SECRET, strlen(SECRET), claims, strlen(claims)));
    /* Deep nesting in info stays within the length limit and is handled. */
    char deep[6100];
    size_t d = 0;
    d += (size_t)sprintf(deep, "{\"sub\":\"u\",\"info\":");
    for (int i = 0; i < 2900; i++)
        deep[d++] = '[';
    for (int i = 0; i < 2900; i++)
        deep[d++] = ']';
    deep[d++] = '}';
    deep[d] = '\0';
    char *tok = mk(HS, deep, SIG_HS, SECRET, strlen(SECRET));
    enum jwt_result rc = jwt_parse(tok, strlen(tok), &t);
    assert_int_equal(rc, JWT_INVALID);
    jwt_release(&t);
    free(tok);
    free(claims);
    jwt_keys_free(k);
}

/* ---- claims ----------------------------------------------------------- */

static void test_expiry(void **state)
{
    char c[128];
    snprintf(c, sizeof(c), "{\"sub\":\"u\",\"exp\":%lld}", NOW - 1);
    assert_int_equal(check_hs(HS, c), JWT_EXPIRED);
    snprintf(c, sizeof(c), "{\"sub\":\"u\",\"exp\":%lld}", NOW);
    assert_int_equal(check_hs(HS, c), JWT_EXPIRED);
    snprintf(c, sizeof(c), "{\"sub\":\"u\",\"exp\":%lld}", NOW + 1);
    assert_int_equal(check_hs(HS, c), JWT_OK);
    snprintf(c, sizeof(c), "{\"sub\":\"u\",\"exp\":%lld.5}", NOW);
    assert_int_equal(check_hs(HS, c), JWT_EXPIRED);
    snprintf(c, sizeof(c), "{\"sub\":\"u\",\"exp\":%lld.5}", NOW + 1);
    assert_int_equal(check_hs(HS, c), JWT_OK);
    assert_int_equal(check_hs(HS, "{\"sub\":\"u\",\"exp\":0}"), JWT_EXPIRED);
    assert_int_equal(check_hs(HS, "{\"sub\":\"u\",\"exp\":-5}"), JWT_EXPIRED);
    assert_int_equal(check_hs(HS, "{\"sub\":\"u\",\"exp\":1e300}"), JWT_INVALID);
    assert_int_equal(check_hs(HS, "{\"sub\":\"u\",\"exp\":9223372036854775807}"), JWT_OK);
    /* An expired token with a bad signature is invalid, not expired. */
    jwt_keys *k = hmac_keys("other", NULL);
    snprintf(c, sizeof(c), "{\"sub\":\"u\",\"exp\":%lld}", NOW - 1);
    char *tok = mk(HS, c, SIG_HS, SECRET, strlen(SECRET));
    assert_int_equal(check(tok, k, NOW), JWT_INVALID);
    free(tok);
    jwt_keys_free(k);
    /* Malformed and expired reads as invalid. */
    snprintf(c, sizeof(c), "{\"exp\":%lld}", NOW - 1);
    assert_int_equal(check_hs(HS, c), JWT_INVALID);
}

static void test_nbf(void **state)
{
    char c[128];
    snprintf(c, sizeof(c), "{\"sub\":\"u\",\"nbf\":%lld}", NOW + 1);
    assert_int_equal(check_hs(HS, c), JWT_INVALID);
    snprintf(c, sizeof(c), "{\"sub\":\"u\",\"nbf\":%lld}", NOW);
    assert_int_equal(check_hs(HS, c), JWT_OK);
    snprintf(c, sizeof(c), "{\"sub\":\"u\",\"nbf\":%lld}", NOW - 100);
    assert_int_equal(check_hs(HS, c), JWT_OK);
    assert_int_equal(check_hs(HS, "{\"sub\":\"u\",\"nbf\":\"0\"}"), JWT_INVALID);
}

static void test_sub_required(void **state)
{
    assert_int_equal(check_hs(HS, "{}"), JWT_INVALID);
    assert_int_equal(check_hs(HS, "{\"tenant\":\"acme\"}"), JWT_INVALID);
    assert_int_equal(check_hs(HS, "{\"sub\":\"\"}"), JWT_INVALID);
    assert_int_equal(check_hs(HS, "{\"sub\":null}"), JWT_INVALID);
    assert_int_equal(check_hs(HS, "{\"sub\":42}"), JWT_INVALID);
    assert_int_equal(check_hs(HS, "{\"sub\":[\"a\"]}"), JWT_INVALID);
    assert_int_equal(check_hs(HS, "{\"SUB\":\"a\"}"), JWT_INVALID);
}

static void test_claim_types(void **state)
{
    const char *bad[] = {
        "{\"sub\":\"u\",\"tenant\":5}",
        "{\"sub\":\"u\",\"tenant\":null}",
        "{\"sub\":\"u\",\"channel\":{}}",
        "{\"sub\":\"u\",\"exp\":\"123\"}",
        "{\"sub\":\"u\",\"exp\":true}",
        "{\"sub\":\"u\",\"iat\":true}",
        "{\"sub\":\"u\",\"iat\":[1]}",
        "{\"sub\":\"u\",\"nbf\":null}",
        "{\"sub\":\"u\",\"info\":\"x\"}",
        "{\"sub\":\"u\",\"info\":[]}",
        "{\"sub\":\"u\",\"info\":null}",
        "{\"sub\":\"u\",\"channels\":\"chat:*\"}",
        "{\"sub\":\"u\",\"channels\":{}}",
        "{\"sub\":\"u\",\"channels\":[\"a\",1]}",
        "{\"sub\":\"u\",\"channels\":[null]}",
        "{\"sub\":\"u\",\"publish\":[[\"a\"]]}",
        "{\"sub\":\"u\",\"publish\":[\"a\",{}]}",
        "{\"sub\":\"u\",\"publish\":true}",
        "{\"sub\":\"u\",\"channels\":[\"a\\u0000b\"]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(check_hs(HS, bad[i]), JWT_INVALID);
    }
    const char *good[] = {
        "{\"sub\":\"u\",\"channels\":[]}",
        "{\"sub\":\"u\",\"info\":{}}",
        "{\"sub\":\"u\",\"aud\":[1,2],\"iss\":5}", /* unknown claims are ignored */
        "{\"sub\":\"\\u00e9l\\u00e8ve\"}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(check_hs(HS, good[i]), JWT_OK);
    }
}

static void test_peek_tenant(void **state)
{
    struct jwt t;
    char *tok = mk(HS, "{\"sub\":\"u\",\"tenant\":7}", SIG_HS, SECRET, strlen(SECRET));
    assert_int_equal(jwt_parse(tok, strlen(tok), &t), JWT_OK);
    assert_null(jwt_peek_tenant(&t));
    jwt_release(&t);
    free(tok);

    /* The tenant picked before verification is the tenant that was signed:
     * a forged claim picks the victim's keys and fails with them. */
    jwt_keys *acme = hmac_keys("acme-secret", NULL);
    jwt_keys *evil = hmac_keys("evil-secret", NULL);
    tok = mk(HS, "{\"sub\":\"u\",\"tenant\":\"acme\"}", SIG_HS, "evil-secret", 11);
    assert_int_equal(jwt_parse(tok, strlen(tok), &t), JWT_OK);
    const char *name = jwt_peek_tenant(&t);
    assert_string_equal(name, "acme");
    assert_int_equal(jwt_verify(&t, strcmp(name, "acme") == 0 ? acme : evil, NOW), JWT_INVALID);
    assert_null(t.tenant);
    jwt_release(&t);
    free(tok);
    jwt_keys_free(acme);
    jwt_keys_free(evil);
}

/* ---- key ids and rotation --------------------------------------------- */

static void test_kid(void **state)
{
    struct fixture *f = *state;
    jwt_keys *k = jwt_keys_new();
    assert_int_equal(jwt_keys_add_hmac(k, "secret-a", 8, "a"), PL_OK);
    assert_int_equal(jwt_keys_add_hmac(k, "secret-b", 8, "b"), PL_OK);
    assert_int_equal(jwt_keys_add_pem(k, f->ec_pem, "e"), PL_OK);
    assert_int_equal(jwt_keys_count(k), 3);

    char *ta = mk("{\"alg\":\"HS256\",\"kid\":\"a\"}", BASIC, SIG_HS, "secret-a", 8);
    char *tb = mk("{\"alg\":\"HS256\",\"kid\":\"b\"}", BASIC, SIG_HS, "secret-b", 8);
    char *tnokid = mk(HS, BASIC, SIG_HS, "secret-b", 8);
    char *twrong = mk("{\"alg\":\"HS256\",\"kid\":\"a\"}", BASIC, SIG_HS, "secret-b", 8);
    char *tunk = mk("{\"alg\":\"HS256\",\"kid\":\"c\"}", BASIC, SIG_HS, "secret-a", 8);
    char *tnum = mk("{\"alg\":\"HS256\",\"kid\":1}", BASIC, SIG_HS, "secret-a", 8);
    char *tempty = mk("{\"alg\":\"HS256\",\"kid\":\"\"}", BASIC, SIG_HS, "secret-a", 8);
    char *te = mk("{\"alg\":\"ES256\",\"kid\":\"e\"}", BASIC, SIG_ES, f->ec, 0);
    char *te_as_a = mk("{\"alg\":\"ES256\",\"kid\":\"a\"}", BASIC, SIG_ES, f->ec, 0);
    assert_int_equal(check(ta, k, NOW), JWT_OK);
    assert_int_equal(check(tb, k, NOW), JWT_OK);
    assert_int_equal(check(tnokid, k, NOW), JWT_OK);
    assert_int_equal(check(twrong, k, NOW), JWT_INVALID);
    assert_int_equal(check(tnum, k, NOW), JWT_INVALID);
    assert_int_equal(check(tempty, k, NOW), JWT_INVALID);
    assert_int_equal(check(te, k, NOW), JWT_OK);
    assert_int_equal(check(te_as_a, k, NOW), JWT_INVALID);

    struct jwt t;
    assert_int_equal(jwt_parse(tunk, strlen(tunk), &t), JWT_OK);
    assert_int_equal(jwt_verify(&t, k, NOW), JWT_INVALID);
    assert_string_equal(jwt_errmsg(&t), "unknown kid");
    jwt_release(&t);

    /* A kid in the token never matches a key configured without one. */
    jwt_keys *nokid = hmac_keys("secret-a", NULL);
    assert_int_equal(check(ta, nokid, NOW), JWT_INVALID);

    char *all[] = {ta, tb, tnokid, twrong, tunk, tnum, tempty, te, te_as_a};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        free(all[i]);
    jwt_keys_free(nokid);
    jwt_keys_free(k);
}

static void test_rotation(void **state)
{
    jwt_keys *both = jwt_keys_new();
    assert_int_equal(jwt_keys_add_hmac(both, "old-secret", 10, NULL), PL_OK);
    assert_int_equal(jwt_keys_add_hmac(both, "new-secret", 10, NULL), PL_OK);
    char *told = jwt_sign_hs256("old-secret", 10, BASIC, strlen(BASIC));
    char *tnew = jwt_sign_hs256("new-secret", 10, BASIC, strlen(BASIC));
    assert_int_equal(check(told, both, NOW), JWT_OK);
    assert_int_equal(check(tnew, both, NOW), JWT_OK);
    /* The old secret is retired: the set is rebuilt without it. */
    jwt_keys *after = hmac_keys("new-secret", NULL);
    assert_int_equal(check(told, after, NOW), JWT_INVALID);
    assert_int_equal(check(tnew, after, NOW), JWT_OK);
    pl_free(told);
    pl_free(tnew);
    jwt_keys_free(both);
    jwt_keys_free(after);
}

static void test_add_pem_rejects(void **state)
{
    struct fixture *f = *state;
    jwt_keys *k = jwt_keys_new();
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *rsa1024 = EVP_RSA_gen(1024);
    char *p384_pem = pub_pem(p384);
    char *ed_pem = pub_pem(ed);
    char *rsa1024_pem = pub_pem(rsa1024);
    char *ec_priv = pem_of(f->ec, "PrivateKeyInfo", EVP_PKEY_KEYPAIR);
    char *rsa_priv = pem_of(f->rsa, "PrivateKeyInfo", EVP_PKEY_KEYPAIR);
    char *truncated = strdup(f->rsa_pem);
    truncated[strlen(truncated) / 2] = '\0';

    assert_int_equal(jwt_keys_add_pem(k, p384_pem, NULL), PL_EINVAL);
    assert_int_equal(jwt_keys_add_pem(k, ed_pem, NULL), PL_EINVAL);
    assert_int_equal(jwt_keys_add_pem(k, rsa1024_pem, NULL), PL_EINVAL);
    assert_int_equal(jwt_keys_add_pem(k, ec_priv, NULL), PL_EINVAL);
    assert_int_equal(jwt_keys_add_pem(k, rsa_priv, NULL), PL_EINVAL);
    assert_int_equal(jwt_keys_add_pem(k, truncated, NULL), PL_EINVAL);
    assert_int_equal(jwt_keys_add_pem(k, "", NULL), PL_EINVAL);
    assert_int_equal(
        jwt_keys_add_pem(k, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", NULL),
        PL_EINVAL);
    assert_int_equal(jwt_keys_add_pem(k, SECRET, NULL), PL_EINVAL);
    assert_int_equal(jwt_keys_add_pem(k, NULL, NULL), PL_EINVAL);
    assert_int_equal(jwt_keys_add_pem(NULL, f->ec_pem, NULL), PL_EINVAL);
    assert_int_equal(jwt_keys_add_hmac(k, "", 0, NULL), PL_EINVAL);
    assert_int_equal(jwt_keys_add_hmac(k, NULL, 4, NULL), PL_EINVAL);
    assert_int_equal(jwt_keys_count(k), 0);
    assert_int_equal(jwt_keys_count(NULL), 0);
    jwt_keys_free(NULL);

    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(rsa1024);
    free(p384_pem);
    free(ed_pem);
    free(rsa1024_pem);
    free(ec_priv);
    free(rsa_priv);
    free(truncated);
    jwt_keys_free(k);
}

/* ---- minting ---------------------------------------------------------- */

static void test_sign_hs256(void **state)
{
    char *tok = jwt_sign_hs256(SECRET, strlen(SECRET), BASIC, strlen(BASIC));
    char *ref = mk(HS, BASIC, SIG_HS, SECRET, strlen(SECRET));
    assert_non_null(tok);
    assert_string_equal(tok, ref); /* same bytes as an independent encoder */
    assert_int_equal(strncmp(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37), 0);
    free(ref);
    pl_free(tok);
    assert_null(jwt_sign_hs256(SECRET, 0, BASIC, strlen(BASIC)));
    assert_null(jwt_sign_hs256(NULL, 3, BASIC, strlen(BASIC)));
    assert_null(jwt_sign_hs256(SECRET, strlen(SECRET), "[1]", 3));
    assert_null(jwt_sign_hs256(SECRET, strlen(SECRET), "{\"sub\":", 7));
    assert_null(jwt_sign_hs256(SECRET, strlen(SECRET), "{} x", 4));
    assert_null(jwt_sign_hs256(SECRET, strlen(SECRET), NULL, 0));
    /* claims_len is honoured: trailing bytes beyond it are ignored. */
    tok = jwt_sign_hs256(SECRET, strlen(SECRET), "{\"sub\":\"u\"}GARBAGE", 11);
    assert_non_null(tok);
    jwt_keys *k = hmac_keys(SECRET, NULL);
    assert_int_equal(check(tok, k, NOW), JWT_OK);
    pl_free(tok);
    jwt_keys_free(k);
}

/* ---- patterns --------------------------------------------------------- */

static void test_pattern_match(void **state)
{
    static const struct {
        const char *pattern, *channel;
        int match;
    } cases[] = {
        {"*", "", 1},
        {"*", "anything:at#all", 1},
        {"chat:*", "chat:general", 1},
        {"chat:*", "chat:", 1},
        {"chat:*", "chat", 0},
        {"chat:*", "chatter:x", 0},
        {"chat:*", "xchat:general", 0},
        {"inbox:#alice", "inbox:#alice", 1},
        {"inbox:#alice", "inbox:#alicex", 0},
        {"inbox:#alice", "inbox:#alic", 0},
        {"inbox:#alice", "Inbox:#alice", 0},
        {"", "", 1},
        {"", "a", 0},
        {"a", "", 0},
        {"*:general", "chat:general", 1},
        {"*:general", "chat:general2", 0},
        {"dm:*alice*", "dm:#alice,bob", 1},
        {"dm:*alice*", "dm:#bob,carol", 0},
        {"a*b*c", "abc", 1},
        {"a*b*c", "aXbYc", 1},
        {"a*b*c", "aXbYcZ", 0},
        {"a*b*c", "abcbc", 1},
        {"**", "x", 1},
        {"a**b", "ab", 1},
        {"a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0},
        {"?", "x", 0}, /* only '*' is special */
        {"[ab]", "a", 0},
        {"chat:room.1", "chat:room.1", 1},
        {"chat:room.1", "chat:roomX1", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = jwt_pattern_match(cases[i].pattern, cases[i].channel, strlen(cases[i].channel));
        if (got != cases[i].match)
            fail_msg("pattern '%s' channel '%s': got %d", cases[i].pattern, cases[i].channel, got);
    }
    /* Length, not NUL, bounds the channel. */
    assert_int_equal(jwt_pattern_match("chat:a", "chat:abc", 6), 1);
    assert_int_equal(jwt_pattern_match("chat:a", "chat:a\0b", 8), 0);
    assert_int_equal(jwt_pattern_match("chat:*", "chat:a\0b", 8), 1);
    assert_int_equal(jwt_pattern_match(NULL, "x", 1), 0);
    assert_int_equal(jwt_pattern_match("*", NULL, 0), 1);
    /* A long hostile channel against many stars finishes quickly. */
    char big[4096];
    memset(big, 'a', sizeof(big));
    assert_int_equal(jwt_pattern_match("*a*a*a*a*a*a*a*a*a*b", big, sizeof(big)), 0);
}

/* ---- out of memory ---------------------------------------------------- */

static void test_oom(void **state)
{
    struct fixture *f = *state;
    const char *claims = "{\"sub\":\"alice\",\"tenant\":\"acme\",\"info\":{\"a\":1},"
                         "\"channels\":[\"chat:*\"],\"publish\":[\"x\",\"y\"]}";
    char *tok = jwt_sign_hs256(SECRET, strlen(SECRET), claims, strlen(claims));
    int ok_seen = 0;

    assert_non_null(tok);
    for (long i = 0; i < 64 && !ok_seen; i++) {
        struct jwt t;
        jwt_keys *k = NULL;
        enum jwt_result rc = JWT_NOMEM;
        pl_mem_fail_after(i);
        k = jwt_keys_new();
        if (k && jwt_keys_add_hmac(k, SECRET, strlen(SECRET), "kid") == PL_OK &&
            jwt_keys_add_hmac(k, SECRET, strlen(SECRET), NULL) == PL_OK &&
            jwt_keys_add_pem(k, f->ec_pem, "e") == PL_OK &&
            jwt_keys_add_pem(k, f->ec_pem, NULL) == PL_OK &&
            jwt_keys_add_hmac(k, "x", 1, NULL) == PL_OK) {
            rc = jwt_parse(tok, strlen(tok), &t);
            if (rc == JWT_OK) rc = jwt_verify(&t, k, NOW);
            if (rc == JWT_OK) {
                assert_string_equal(t.sub, "alice");
                assert_string_equal(t.info, "{\"a\":1}");
                assert_int_equal(t.n_publish, 2);
                ok_seen = 1;
            } else {
                assert_int_equal(rc, JWT_NOMEM);
                assert_string_equal(jwt_errmsg(&t), "out of memory");
            }
            jwt_release(&t);
        }
        jwt_keys_free(k);
        pl_mem_fail_after(-1);
    }
    assert_true(ok_seen);

    ok_seen = 0;
    for (long i = 0; i < 16 && !ok_seen; i++) {
        pl_mem_fail_after(i);
        char *m = jwt_sign_hs256(SECRET, strlen(SECRET), BASIC, strlen(BASIC));
        pl_mem_fail_after(-1);
        if (m) ok_seen = 1;
        pl_free(m);
    }
    assert_true(ok_seen);
    pl_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256_valid_all_claims),
        cmocka_unit_test(test_minimal_claims),
        cmocka_unit_test(test_rs256_valid),
        cmocka_unit_test(test_rs256_pkcs1_pem),
        cmocka_unit_test(test_es256_valid),
        cmocka_unit_test(test_es256_der_signature_rejected),
        cmocka_unit_test(test_alg_none_and_others),
        cmocka_unit_test(test_alg_confusion),
        cmocka_unit_test(test_bad_signature_bitflips),
        cmocka_unit_test(test_malformed_tokens),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_nbf),
        cmocka_unit_test(test_sub_required),
        cmocka_unit_test(test_claim_types),
        cmocka_unit_test(test_peek_tenant),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_add_pem_rejects),
        cmocka_unit_test(test_sign_hs256),
        cmocka_unit_test(test_pattern_match),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
