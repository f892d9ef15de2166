/* libFuzzer target for auth/jwt: the input is a token to parse and verify
 * against an HMAC key and an EC P-256 key; it is also minted as HS256 claims
 * (mint -> parse -> verify must never fail on the signature), and split into
 * pattern/channel for jwt_pattern_match. Seeds: fuzz/corpus/jwt/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>

#include "auth/jwt.h"
#include "util/mem.h"

#define FUZZ_SECRET "fuzz-secret"
#define FUZZ_NOW 1700000000LL

/* Built once per process; a fuzz harness is the one place this is fine. */
static jwt_keys *keys;

static char *ec_public_pem(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    OSSL_ENCODER_CTX *ctx =
        OSSL_ENCODER_CTX_new_for_pkey(k, EVP_PKEY_PUBLIC_KEY, "PEM", "SubjectPublicKeyInfo", NULL);
    unsigned char *data = NULL;
    size_t len = 0;
    char *pem = NULL;

    if (ctx && OSSL_ENCODER_to_data(ctx, &data, &len) == 1) {
        pem = malloc(len + 1);
        memcpy(pem, data, len);
        pem[len] = '\0';
    }
    OPENSSL_free(data);
    OSSL_ENCODER_CTX_free(ctx);
    EVP_PKEY_free(k);
    return pem;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *pem = ec_public_pem();

    keys = jwt_keys_new();
    if (!keys || !pem || jwt_keys_add_hmac(keys, FUZZ_SECRET, strlen(FUZZ_SECRET), NULL) != 0 ||
        jwt_keys_add_hmac(keys, FUZZ_SECRET, strlen(FUZZ_SECRET), "k1") != 0 ||
        jwt_keys_add_pem(keys, pem, NULL) != 0 || jwt_keys_add_pem(keys, pem, "e1") != 0)
        abort();
    free(pem);
    return 0;
}

static void check_verified(const struct jwt *t)
{
    if (!t->sub || t->sub[0] == '\0') abort();
    if ((t->n_channels && !t->channels) || (t->n_publish && !t->publish)) abort();
    for (size_t i = 0; i < t->n_channels; i++)
        if (!t->channels[i]) abort();
    for (size_t i = 0; i < t->n_publish; i++)
        if (!t->publish[i]) abort();
    if (t->info && t->info[0] != '{') abort();
    (void)jwt_claim_str(t, "sub");
}

static void run_token(const char *tok, size_t len, int must_sign_ok)
{
    struct jwt t;
    enum jwt_result rc = jwt_parse(tok, len, &t);

    (void)jwt_peek_tenant(&t);
    if (rc == JWT_OK) rc = jwt_verify(&t, keys, FUZZ_NOW);
    if (rc == JWT_OK)
        check_verified(&t);
    else if (t.sub || jwt_errmsg(&t) == NULL)
        abort();
    if (must_sign_ok && (rc == JWT_NOMEM || strcmp(jwt_errmsg(&t), "bad signature") == 0 ||
                         strcmp(jwt_errmsg(&t), "bad claims") == 0))
        abort();
    jwt_release(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *tok;
    char *copy;

    run_token((const char *)data, size, 0);

    tok = jwt_sign_hs256(FUZZ_SECRET, strlen(FUZZ_SECRET), (const char *)data, size);
    if (tok) {
        run_token(tok, strlen(tok), 1);
        pl_free(tok);
    }

    /* Pattern = bytes up to the first NUL, channel = the rest. */
    copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    size_t plen = strlen(copy);
    const char *chan = plen < size ? copy + plen + 1 : "";
    size_t clen = plen < size ? size - plen - 1 : 0;
    int m = jwt_pattern_match(copy, chan, clen);
    if (plen == 1 && copy[0] == '*' && !m) abort();
    free(copy);
    return 0;
}
