/* Unit tests for hooks/sign and hooks/inbound_sig: the Standard Webhooks
 * known answer, rotation with several secrets, Ed25519 (v1a), time
 * tolerance, hostile headers, GitHub's documented HMAC example, Stripe
 * headers, every verify result and every key parse error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hooks/inbound_sig.h"
#include "hooks/sign.h"
#include "util/mem.h"

#define KAT_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define KAT_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define KAT_TS 1614265330
#define KAT_BODY "{\"test\": 2432232314}"
#define KAT_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* ---- helpers ---------------------------------------------------------- */

static sign_key *key(const char *s)
{
    sign_key *k = NULL;
    assert_int_equal(sign_key_parse(s, strlen(s), &k), SIGN_KEY_OK);
    assert_non_null(k);
    return k;
}

static enum sign_key_err key_err(const char *s)
{
    sign_key *k = NULL;
    enum sign_key_err e = sign_key_parse(s, strlen(s), &k);
    if (e != SIGN_KEY_OK) assert_null(k);
    sign_key_free(k);
    return e;
}

static sign_request req(const char *id, const char *ts, const char *sig, const char *body)
{
    return (sign_request){.id = id,
                          .id_len = id ? strlen(id) : 0,
                          .timestamp = ts,
                          .timestamp_len = ts ? strlen(ts) : 0,
                          .signature = sig,
                          .signature_len = sig ? strlen(sig) : 0,
                          .body = body,
                          .body_len = body ? strlen(body) : 0};
}

static enum sign_result check(const char *sig, const char *body, sign_key **keys, size_t n,
                              int64_t now)
{
    sign_request r = req(KAT_ID, "1614265330", sig, body);
    return sign_verify(&r, (const sign_key *const *)keys, n, now, SIGN_TOLERANCE_DEFAULT, NULL);
}

/* A fresh whsec_ secret of 24 random-ish bytes derived from seed. */
static char *secret_of(unsigned char seed)
{
    unsigned char raw[24];
    char *s = malloc(6 + 33);
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(seed * 31 + i * 7);
    memcpy(s, "whsec_", 6);
    EVP_EncodeBlock((unsigned char *)s + 6, raw, sizeof(raw));
    return s;
}

static char *ed_key_string(EVP_PKEY *pk, int pub)
{
    unsigned char raw[32];
    size_t n = sizeof(raw);
    char *s = malloc(5 + 45);
    if (pub)
        assert_int_equal(EVP_PKEY_get_raw_public_key(pk, raw, &n), 1);
    else
        assert_int_equal(EVP_PKEY_get_raw_private_key(pk, raw, &n), 1);
    memcpy(s, pub ? "whpk_" : "whsk_", 5);
    EVP_EncodeBlock((unsigned char *)s + 5, raw, (int)n);
    return s;
}

/* ---- Standard Webhooks -------------------------------------------------- */

static void test_known_answer(void **state)
{
    sign_key *k = key(KAT_SECRET);
    char *hdr = NULL;
    const sign_key *ks[] = {k};
    assert_int_equal(
        sign_header(ks, 1, KAT_ID, strlen(KAT_ID), KAT_TS, KAT_BODY, strlen(KAT_BODY), &hdr), 0);
    assert_string_equal(hdr, KAT_SIG);
    sign_match m = {9, 9, 9};
    sign_request r = req(KAT_ID, "1614265330", KAT_SIG, KAT_BODY);
    assert_int_equal(sign_verify(&r, ks, 1, KAT_TS, 300, &m), SIGN_OK);
    assert_int_equal(m.entry, 0);
    assert_int_equal(m.n_entries, 1);
    assert_int_equal(m.key, 0);
    sign_key_free(k);
    pl_free(hdr);
}

static void test_rotation(void **state)
{
    for (size_t n = 1; n <= 3; n++) {
        sign_key *keys[3];
        char *hdr = NULL;
        for (size_t i = 0; i < n; i++) {
            char *s = secret_of((unsigned char)(i + 1));
            keys[i] = key(s);
            free(s);
        }
        assert_int_equal(sign_header((const sign_key *const *)keys, n, KAT_ID, strlen(KAT_ID),
                                     KAT_TS, KAT_BODY, strlen(KAT_BODY), &hdr),
                         0);
        /* One entry per key, space-separated. */
        size_t spaces = 0;
        for (char *p = hdr; *p; p++)
            spaces += *p == ' ';
        assert_int_equal(spaces, n - 1);
        for (size_t i = 0; i < n; i++) {
            sign_match m;
            sign_request r = req(KAT_ID, "1614265330", hdr, KAT_BODY);
            assert_int_equal(sign_verify(&r, (const sign_key *const *)&keys[i], 1, KAT_TS, 300, &m),
                             SIGN_OK);
            assert_int_equal(m.entry, i);
            assert_int_equal(m.n_entries, n);
            assert_int_equal(m.key, 0);
        }
        assert_int_equal(check(hdr, KAT_BODY "x", keys, n, KAT_TS), SIGN_NO_MATCH);
        char *other = secret_of(99);
        sign_key *o = key(other);
        assert_int_equal(check(hdr, KAT_BODY, &o, 1, KAT_TS), SIGN_NO_MATCH);
        sign_key_free(o);
        free(other);
        for (size_t i = 0; i < n; i++)
            sign_key_free(keys[i]);
        pl_free(hdr);
    }
}

static void test_ed25519(void **state)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(pk);
    char *sk_s = ed_key_string(pk, 0), *pk_s = ed_key_string(pk, 1);
    sign_key *sk = key(sk_s), *pub = key(pk_s), *hm = key(KAT_SECRET);
    const sign_key *signers[] = {hm, sk};
    char *hdr = NULL;
    assert_int_equal(
        sign_header(signers, 2, KAT_ID, strlen(KAT_ID), KAT_TS, KAT_BODY, strlen(KAT_BODY), &hdr),
        0);
    assert_memory_equal(hdr, KAT_SIG " v1a,", strlen(KAT_SIG) + 5);
    sign_match m;
    sign_request r = req(KAT_ID, "1614265330", hdr, KAT_BODY);
    assert_int_equal(sign_verify(&r, (const sign_key *const *)&pub, 1, KAT_TS, 300, &m), SIGN_OK);
    assert_int_equal(m.entry, 1);
    assert_int_equal(sign_verify(&r, (const sign_key *const *)&sk, 1, KAT_TS, 300, &m), SIGN_OK);
    assert_int_equal(check(hdr, "{\"test\": 2432232315}", &pub, 1, KAT_TS), SIGN_NO_MATCH);
    /* A public key cannot sign. */
    char *none = (char *)1;
    assert_int_equal(sign_header((const sign_key *const *)&pub, 1, "a", 1, 1, "", 0, &none), -1);
    assert_null(none);
    /* The 64-byte seed||public form, and one whose halves do not match. */
    unsigned char raw[64];
    size_t n = 32;
    char s64[5 + 89];
    EVP_PKEY_get_raw_private_key(pk, raw, &n);
    EVP_PKEY_get_raw_public_key(pk, raw + 32, &n);
    memcpy(s64, "whsk_", 5);
    EVP_EncodeBlock((unsigned char *)s64 + 5, raw, 64);
    sign_key *sk64 = key(s64);
    assert_int_equal(check(hdr, KAT_BODY, &sk64, 1, KAT_TS), SIGN_OK);
    raw[40] ^= 1;
    EVP_EncodeBlock((unsigned char *)s64 + 5, raw, 64);
    assert_int_equal(key_err(s64), SIGN_KEY_BAD_LENGTH);
    assert_int_equal(key_err("whpk_AAAA"), SIGN_KEY_BAD_LENGTH);
    sign_key_free(sk64);
    sign_key_free(sk);
    sign_key_free(pub);
    sign_key_free(hm);
    free(sk_s);
    free(pk_s);
    pl_free(hdr);
    EVP_PKEY_free(pk);
}

static void test_tolerance(void **state)
{
    sign_key *k = key(KAT_SECRET);
    assert_int_equal(check(KAT_SIG, KAT_BODY, &k, 1, KAT_TS + 300), SIGN_OK);
    assert_int_equal(check(KAT_SIG, KAT_BODY, &k, 1, KAT_TS - 300), SIGN_OK);
    assert_int_equal(check(KAT_SIG, KAT_BODY, &k, 1, KAT_TS + 301), SIGN_STALE);
    assert_int_equal(check(KAT_SIG, KAT_BODY, &k, 1, KAT_TS - 301), SIGN_FUTURE);
    /* Time is checked before the signature, and ignored on request. */
    assert_int_equal(check(KAT_SIG, "tampered", &k, 1, KAT_TS + 301), SIGN_STALE);
    sign_request r = req(KAT_ID, "1614265330", KAT_SIG, KAT_BODY);
    assert_int_equal(sign_verify_ignoring_time(&r, (const sign_key *const *)&k, 1, NULL), SIGN_OK);
    const char *bad_ts[] = {
        "", "abc", "-1614265330", "+1614265330", "1614265330 ", "1e9", "1234567890123456789"};
    for (size_t i = 0; i < sizeof(bad_ts) / sizeof(bad_ts[0]); i++) {
        r = req(KAT_ID, bad_ts[i], KAT_SIG, KAT_BODY);
        enum sign_result want = bad_ts[i][0] ? SIGN_MALFORMED_TIMESTAMP : SIGN_MISSING_HEADER;
        assert_int_equal(sign_verify(&r, (const sign_key *const *)&k, 1, KAT_TS, 300, NULL), want);
    }
    sign_key_free(k);
}

static void test_malformed_headers(void **state)
{
    sign_key *k = key(KAT_SECRET);
    const char *bad[] = {" ",
                         "v1",
                         "v1,",
                         ",abc",
                         "v1,not base64!",
                         "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O",
                         "v1,AAAA",
                         "v1a,AAAA",
                         "v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                         KAT_SIG " v1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(check(bad[i], KAT_BODY, &k, 1, KAT_TS), SIGN_MALFORMED_HEADER);
    /* Padding is optional, as in secrets. */
    assert_int_equal(
        check("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", KAT_BODY, &k, 1, KAT_TS), SIGN_OK);
    /* Unknown versions never match, and do not spoil a good entry. */
    assert_int_equal(check("v2,whatever " KAT_SIG, KAT_BODY, &k, 1, KAT_TS), SIGN_OK);
    assert_int_equal(check("v2,whatever", KAT_BODY, &k, 1, KAT_TS), SIGN_NO_MATCH);
    assert_int_equal(check("  " KAT_SIG "   ", KAT_BODY, &k, 1, KAT_TS), SIGN_OK);
    /* 1000 entries: over SIGN_MAX_ENTRIES (and SIGN_MAX_HEADER). */
    size_t one = strlen(KAT_SIG) + 1;
    char *many = malloc(1000 * one + 1);
    for (size_t i = 0; i < 1000; i++) {
        memcpy(many + i * one, KAT_SIG, one - 1);
        many[i * one + one - 1] = ' ';
    }
    many[1000 * one - 1] = '\0';
    assert_int_equal(check(many, KAT_BODY, &k, 1, KAT_TS), SIGN_MALFORMED_HEADER);
    /* SIGN_MAX_ENTRIES short entries fit; one more does not. */
    many[0] = '\0';
    for (size_t i = 0; i < SIGN_MAX_ENTRIES - 1; i++)
        strcat(many, "v9,x ");
    strcat(many, KAT_SIG);
    assert_int_equal(check(many, KAT_BODY, &k, 1, KAT_TS), SIGN_OK);
    strcat(many, " v9,x");
    assert_int_equal(check(many, KAT_BODY, &k, 1, KAT_TS), SIGN_MALFORMED_HEADER);
    free(many);
    /* Huge input: rejected by length before any work. */
    size_t huge_len = 1 << 20;
    char *huge = malloc(huge_len + 1);
    memset(huge, 'A', huge_len);
    memcpy(huge, "v1,", 3);
    huge[huge_len] = '\0';
    assert_int_equal(check(huge, KAT_BODY, &k, 1, KAT_TS), SIGN_MALFORMED_HEADER);
    free(huge);
    sign_entry e[2];
    assert_int_equal(sign_header_parse(KAT_SIG " " KAT_SIG " " KAT_SIG, 3 * one - 1, e, 2), -1);
    sign_key_free(k);
}

static void test_verify_results(void **state)
{
    sign_key *k = key(KAT_SECRET);
    const sign_key *const *ks = (const sign_key *const *)&k;
    sign_request r = req(NULL, "1614265330", KAT_SIG, KAT_BODY);
    assert_int_equal(sign_verify(&r, ks, 1, KAT_TS, 300, NULL), SIGN_MISSING_HEADER);
    r = req(KAT_ID, NULL, KAT_SIG, KAT_BODY);
    assert_int_equal(sign_verify(&r, ks, 1, KAT_TS, 300, NULL), SIGN_MISSING_HEADER);
    r = req(KAT_ID, "1614265330", "", KAT_BODY);
    assert_int_equal(sign_verify(&r, ks, 1, KAT_TS, 300, NULL), SIGN_MISSING_HEADER);
    r = req(KAT_ID, "1614265330", KAT_SIG, KAT_BODY "\n");
    assert_int_equal(sign_verify(&r, ks, 1, KAT_TS, 300, NULL), SIGN_NO_MATCH);
    r = req(KAT_ID "x", "1614265330", KAT_SIG, KAT_BODY);
    assert_int_equal(sign_verify(&r, ks, 1, KAT_TS, 300, NULL), SIGN_NO_MATCH);
    assert_int_equal(sign_verify(&r, ks, 0, KAT_TS, 300, NULL), SIGN_NO_MATCH);
    for (int i = SIGN_OK; i <= SIGN_NOMEM; i++)
        assert_non_null(sign_result_str((enum sign_result)i));
    assert_string_equal(sign_result_str(SIGN_STALE), "stale timestamp");
    sign_key_free(k);
}

static void test_key_errors(void **state)
{
    assert_int_equal(key_err("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), SIGN_KEY_NO_PREFIX);
    assert_int_equal(key_err(""), SIGN_KEY_NO_PREFIX);
    assert_int_equal(key_err("v1," KAT_SECRET), SIGN_KEY_PASTED);
    assert_int_equal(key_err("v1a,whsk_AAAA"), SIGN_KEY_PASTED);
    assert_int_equal(key_err("whsec_"), SIGN_KEY_EMPTY);
    assert_int_equal(key_err("whsec_MfKQ9r8G KYqrTwjU"), SIGN_KEY_BAD_BASE64);
    assert_int_equal(key_err("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La-aSw"), SIGN_KEY_BAD_BASE64);
    assert_int_equal(key_err("whsec_A"), SIGN_KEY_BAD_BASE64);
    assert_int_equal(key_err("whsec_AA="), SIGN_KEY_BAD_BASE64);
    assert_int_equal(key_err("whsec_===="), SIGN_KEY_BAD_BASE64);
    assert_int_equal(key_err("whsec_AA=="), SIGN_KEY_OK);
    assert_int_equal(key_err("whsec_AA"), SIGN_KEY_OK);
    for (int i = SIGN_KEY_OK; i <= SIGN_KEY_NOMEM; i++)
        assert_non_null(sign_key_errstr((enum sign_key_err)i));
    size_t n;
    unsigned char *b = sign_base64_decode("aGk=", 4, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(b, "hi", 2);
    pl_free(b);
    assert_null(sign_key_hmac("x", 0));
}

static void test_oom(void **state)
{
    sign_key *k = key(KAT_SECRET);
    const sign_key *ks[] = {k};
    for (long i = 0; i < 4; i++) {
        char *hdr = NULL;
        sign_key *k2 = NULL;
        pl_mem_fail_after(i);
        int rc =
            sign_header(ks, 1, KAT_ID, strlen(KAT_ID), KAT_TS, KAT_BODY, strlen(KAT_BODY), &hdr);
        enum sign_key_err ke = sign_key_parse(KAT_SECRET, strlen(KAT_SECRET), &k2);
        sign_request r = req(KAT_ID, "1614265330", KAT_SIG, KAT_BODY);
        enum sign_result vr = sign_verify(&r, ks, 1, KAT_TS, 300, NULL);
        pl_mem_fail_after(-1);
        assert_true(rc == 0 || hdr == NULL);
        assert_true(ke == SIGN_KEY_OK || ke == SIGN_KEY_NOMEM);
        assert_true(vr == SIGN_OK || vr == SIGN_NOMEM);
        pl_free(hdr);
        sign_key_free(k2);
    }
    sign_key_free(k);
}

/* ---- GitHub-style hmac-sha256 ------------------------------------------ */

#define GH_SECRET "It's a Secret to Everybody"
#define GH_BODY "Hello, World!"
#define GH_SIG "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

static void test_github(void **state)
{
    inbound_sig_secret s[] = {{"wrong", 5}, {GH_SECRET, strlen(GH_SECRET)}};
    size_t k = 9;
    assert_int_equal(inbound_sig_hmac_verify(GH_SIG, strlen(GH_SIG), "sha256=", GH_BODY,
                                             strlen(GH_BODY), s, 2, &k),
                     SIGN_OK);
    assert_int_equal(k, 1);
    const char *upper = "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17";
    assert_int_equal(inbound_sig_hmac_verify(upper, strlen(upper), "sha256=", GH_BODY,
                                             strlen(GH_BODY), s, 2, NULL),
                     SIGN_OK);
    assert_int_equal(inbound_sig_hmac_verify(GH_SIG, strlen(GH_SIG), "sha256=", GH_BODY "\n",
                                             strlen(GH_BODY) + 1, s, 2, NULL),
                     SIGN_NO_MATCH);
    assert_int_equal(
        inbound_sig_hmac_verify(GH_SIG + 7, 64, "", GH_BODY, strlen(GH_BODY), s, 2, NULL), SIGN_OK);
    const char *bad[] = {
        "sha256=", "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17 ",
        "sha256=g57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(inbound_sig_hmac_verify(bad[i], strlen(bad[i]), "sha256=", GH_BODY,
                                                 strlen(GH_BODY), s, 2, NULL),
                         SIGN_MALFORMED_HEADER);
    assert_int_equal(inbound_sig_hmac_verify(NULL, 0, "sha256=", GH_BODY, 13, s, 2, NULL),
                     SIGN_MISSING_HEADER);
}

/* ---- Stripe -------------------------------------------------------------- */

#define ST_SECRET "whsec_test_secret"
#define ST_BODY "{\"id\":\"evt_1\",\"object\":\"event\"}"

static void stripe_hex(const char *secret, const char *t, const char *body, char out[65])
{
    unsigned char mac[32];
    unsigned int n = 0;
    char msg[256];
    snprintf(msg, sizeof(msg), "%s.%s", t, body);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, strlen(msg), mac, &n);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static enum sign_result stripe(const char *hdr, const char *body, int64_t now)
{
    inbound_sig_secret s[] = {{ST_SECRET, strlen(ST_SECRET)}};
    return inbound_sig_stripe_verify(hdr, strlen(hdr), body, strlen(body), s, 1, now, 300, NULL,
                                     NULL);
}

static void test_stripe(void **state)
{
    char good[65], other[65], hdr[512];
    stripe_hex(ST_SECRET, "1492774577", ST_BODY, good);
    stripe_hex("whsec_other", "1492774577", ST_BODY, other);
    /* The secret is the key as written: the base64 form is not decoded. */
    snprintf(
        hdr, sizeof(hdr),
        "t=1492774577,v1=%s,v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
        good);
    assert_int_equal(stripe(hdr, ST_BODY, 1492774577), SIGN_OK);
    assert_int_equal(stripe(hdr, ST_BODY " ", 1492774577), SIGN_NO_MATCH);
    assert_int_equal(stripe(hdr, ST_BODY, 1492774577 + 301), SIGN_STALE);
    assert_int_equal(stripe(hdr, ST_BODY, 1492774577 - 301), SIGN_FUTURE);
    assert_int_equal(stripe(hdr, ST_BODY, 1492774577 + 300), SIGN_OK);
    /* Several v1 entries (rotation): the second matches. */
    inbound_sig_secret s[] = {{ST_SECRET, strlen(ST_SECRET)}};
    size_t entry = 9, key = 9;
    snprintf(hdr, sizeof(hdr), "t=1492774577,v1=%s,v1=%s", other, good);
    assert_int_equal(inbound_sig_stripe_verify(hdr, strlen(hdr), ST_BODY, strlen(ST_BODY), s, 1,
                                               1492774577, 300, &entry, &key),
                     SIGN_OK);
    assert_int_equal(entry, 1);
    assert_int_equal(key, 0);
    assert_int_equal(inbound_sig_stripe_verify_ignoring_time(hdr, strlen(hdr), ST_BODY,
                                                             strlen(ST_BODY), s, 1, NULL, NULL),
                     SIGN_OK);
    /* Order of items does not matter. */
    snprintf(hdr, sizeof(hdr), "v1=%s,t=1492774577", good);
    assert_int_equal(stripe(hdr, ST_BODY, 1492774577), SIGN_OK);
    /* Edge cases. */
    struct {
        const char *h;
        enum sign_result want;
    } cases[] = {
        {"", SIGN_MISSING_HEADER},
        {"t=1492774577", SIGN_MALFORMED_HEADER},
        {"v1=00", SIGN_MALFORMED_HEADER},
        {"t=abc,v1=x", SIGN_MALFORMED_TIMESTAMP},
        {"t=,v1=x", SIGN_MALFORMED_TIMESTAMP},
        {"t=1,t=2", SIGN_MALFORMED_TIMESTAMP},
        {"garbage", SIGN_MALFORMED_HEADER},
        {"=x,t=1", SIGN_MALFORMED_HEADER},
        {",,,", SIGN_MALFORMED_HEADER},
        {"t=1492774577,", SIGN_MALFORMED_HEADER},
        {"t=1492774577,v0=abc", SIGN_MALFORMED_HEADER},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(stripe(cases[i].h, ST_BODY, 1492774577), cases[i].want);
    /* No timestamp at all. */
    snprintf(hdr, sizeof(hdr), "v1=%s", good);
    assert_int_equal(stripe(hdr, ST_BODY, 1492774577), SIGN_MALFORMED_TIMESTAMP);
    /* More v1 entries than kept. */
    size_t len = (size_t)snprintf(hdr, sizeof(hdr), "t=1");
    char *big = malloc(32 * 70 + 16);
    strcpy(big, hdr);
    for (int i = 0; i <= INBOUND_SIG_MAX_V1; i++)
        len += (size_t)sprintf(big + len, ",v1=%s", good);
    assert_int_equal(stripe(big, ST_BODY, 1), SIGN_MALFORMED_HEADER);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_ed25519),
        cmocka_unit_test(test_tolerance),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_verify_results),
        cmocka_unit_test(test_key_errors),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_github),
        cmocka_unit_test(test_stripe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
