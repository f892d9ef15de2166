/* Unit tests for auth/apikey: what a scope mask grants (one scope, "*",
 * nothing for administration or odd bits), scope parsing, key minting and
 * lookup with hostile presented keys, revocation, listing, save/load round
 * trips, lookups racing with creates and revokes, and allocation failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/sha.h>
#include <pthread.h>

#include "auth/apikey.h"
#include "util/mem.h"
#include "util/status.h"

#define NOW 1700000000000LL

/* ---- scopes ------------------------------------------------------------ */

/* Every scope bit of the vocabulary, "*" included. */
static const uint32_t scope_bits[] = {
#define SCOPE_BIT(id, bit, name) APIKEY_SCOPE_##id,
    VOCAB_API_SCOPES(SCOPE_BIT)
#undef SCOPE_BIT
};
#define N_SCOPE_BITS (sizeof(scope_bits) / sizeof(scope_bits[0]))

static void test_mask_grants_one_scope(void **state)
{
    for (size_t i = 0; i < N_SCOPE_BITS; i++) {
        uint32_t own = scope_bits[i];
        if (own == APIKEY_SCOPE_ALL) continue;
        assert_true(apikey_mask_grants(own, own));
        /* One scope grants only itself, and never what only "*" may do. */
        for (size_t j = 0; j < N_SCOPE_BITS; j++)
            if (j != i) assert_false(apikey_mask_grants(own, scope_bits[j]));
        assert_false(apikey_mask_grants(own, APIKEY_SCOPE_ALL));
        assert_false(apikey_mask_grants(0, own));
    }
}

static void test_mask_grants_star(void **state)
{
    for (size_t i = 0; i < N_SCOPE_BITS; i++)
        assert_true(apikey_mask_grants(APIKEY_SCOPE_ALL, scope_bits[i]));
    assert_true(apikey_mask_grants(APIKEY_SCOPE_ALL, APIKEY_SCOPE_ALL));
    /* "*" is every tenant scope, never tenant administration, which needs
     * no scope bit: no mask grants "nothing", nor a made-up or compound
     * scope. */
    const uint32_t masks[] = {APIKEY_SCOPE_ALL, UINT32_MAX, 0};
    for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
        assert_false(apikey_mask_grants(masks[i], 0));
        assert_false(apikey_mask_grants(masks[i], 1u << 20));
        assert_false(apikey_mask_grants(masks[i], APIKEY_SCOPE_PUBLISH | APIKEY_SCOPE_HISTORY));
        assert_false(apikey_mask_grants(masks[i], APIKEY_SCOPE_PUBLISH | APIKEY_SCOPE_ALL));
    }
}

static void test_mask_grants_odd_masks(void **state)
{
    /* The empty mask and bits outside the enum grant no scope of the
     * vocabulary, "*" included. */
    const uint32_t masks[] = {0, 1u << 12, 1u << 20, 1u << 30,
                              ~(((uint32_t)APIKEY_SCOPE_ROUTES << 1) - 1) &
                                  ~(uint32_t)APIKEY_SCOPE_ALL};
    for (size_t m = 0; m < sizeof(masks) / sizeof(masks[0]); m++)
        for (size_t i = 0; i < N_SCOPE_BITS; i++)
            assert_false(apikey_mask_grants(masks[m], scope_bits[i]));
    /* Unknown bits beside a real scope neither add nor take away. */
    assert_true(apikey_mask_grants(APIKEY_SCOPE_INFO | 1u << 20, APIKEY_SCOPE_INFO));
    assert_false(apikey_mask_grants(APIKEY_SCOPE_INFO | 1u << 20, APIKEY_SCOPE_TRACE));
}

static void test_parsed_names_grant(void **state)
{
    uint32_t mask = 0;
    const char *ph[] = {"publish", "history"};
    assert_int_equal(apikey_scopes_parse(ph, 2, &mask), 0);
    assert_true(apikey_mask_grants(mask, APIKEY_SCOPE_PUBLISH));
    assert_true(apikey_mask_grants(mask, APIKEY_SCOPE_HISTORY));
    assert_false(apikey_mask_grants(mask, APIKEY_SCOPE_BROADCAST));
    assert_false(apikey_mask_grants(mask, APIKEY_SCOPE_ALL)); /* tokens.issue */
    mask = 77;
    assert_int_equal(apikey_scopes_parse(ph, 0, &mask), 0);
    assert_false(apikey_mask_grants(mask, APIKEY_SCOPE_PUBLISH));

    const char *star[] = {"*"};
    assert_int_equal(apikey_scopes_parse(star, 1, &mask), 0);
    assert_int_equal(mask, APIKEY_SCOPE_ALL);
    assert_true(apikey_mask_grants(mask, APIKEY_SCOPE_DLQ));

    /* Unknown or look-alike scope names are refused outright, so they never
     * reach a key and grant nothing. */
    const char *bogus[] = {"admin",   "tenants", "keys", "webhook",  "webhooks.*",
                           "Publish", "",        "**",   "publish ", "dlq.list"};
    for (size_t i = 0; i < sizeof(bogus) / sizeof(bogus[0]); i++) {
        mask = 77;
        assert_int_equal(apikey_scopes_parse(&bogus[i], 1, &mask), -1);
        assert_int_equal(mask, 77);
    }
}

static void test_scopes_parse(void **state)
{
    uint32_t mask = 77;
    const char *ok[] = {"publish", "dlq", "dlq"};
    assert_int_equal(apikey_scopes_parse(ok, 3, &mask), 0);
    assert_int_equal(mask, APIKEY_SCOPE_PUBLISH | APIKEY_SCOPE_DLQ);
    assert_true(apikey_mask_grants(mask, APIKEY_SCOPE_DLQ));
    assert_false(apikey_mask_grants(mask, APIKEY_SCOPE_HISTORY));
    const char *bad[] = {"publish", "root"};
    mask = 77;
    assert_int_equal(apikey_scopes_parse(bad, 2, &mask), -1);
    assert_int_equal(mask, 77);
    assert_string_equal(apikey_scope_name(APIKEY_SCOPE_TRACE), "trace");
    assert_string_equal(apikey_scope_name(APIKEY_SCOPE_ALL), "*");
    assert_null(apikey_scope_name(1u << 20));
    /* Key files store the bits: they never move. Bit 9 is "webhooks", as
     * when keys first stored it. */
    assert_int_equal(APIKEY_SCOPE_PUBLISH, 1u << 0);
    assert_int_equal(APIKEY_SCOPE_TRACE, 1u << 8);
    assert_int_equal(APIKEY_SCOPE_WEBHOOKS, 1u << 9);
    assert_int_equal(APIKEY_SCOPE_DLQ, 1u << 10);
    assert_true((uint32_t)APIKEY_SCOPE_ALL == 1u << 31);
    const char *wh[] = {"webhooks"};
    assert_int_equal(apikey_scopes_parse(wh, 1, &mask), 0);
    assert_int_equal(mask, APIKEY_SCOPE_WEBHOOKS);
    assert_string_equal(apikey_scope_name(APIKEY_SCOPE_WEBHOOKS), "webhooks");
}

/* ---- store ------------------------------------------------------------- */

static int count_cb(const apikey_entry *e, void *ud)
{
    (*(int *)ud)++;
    return 0;
}

static int stop_cb(const apikey_entry *e, void *ud)
{
    return 1;
}

static void test_create_lookup(void **state)
{
    apikey_store *s = apikey_store_new();
    assert_non_null(s);
    char key[APIKEY_LEN + 1], id[APIKEY_ID_LEN + 1];
    assert_int_equal(apikey_create(s, "acme", APIKEY_SCOPE_PUBLISH, NOW, key, id), 0);
    assert_int_equal(strlen(key), APIKEY_LEN);
    assert_memory_equal(key, "pk_", 3);
    for (size_t i = 3; i < APIKEY_LEN; i++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", key[i]));
    assert_int_equal(strlen(id), APIKEY_ID_LEN);

    const apikey_entry *e = apikey_lookup(s, key, strlen(key));
    assert_non_null(e);
    assert_string_equal(e->id, id);
    assert_string_equal(e->tenant, "acme");
    assert_int_equal(e->scopes, APIKEY_SCOPE_PUBLISH);
    assert_int_equal(e->created_at, NOW);
    assert_true(apikey_mask_grants(e->scopes, APIKEY_SCOPE_PUBLISH));
    assert_false(apikey_mask_grants(e->scopes, APIKEY_SCOPE_HISTORY));
    /* Only the hash is kept. */
    uint8_t digest[32];
    SHA256((const unsigned char *)key, APIKEY_LEN, digest);
    assert_memory_equal(e->hash, digest, 32);
    assert_null(memmem(e, sizeof(*e), key + 3, 16));

    /* Hostile presented keys. */
    char other[APIKEY_LEN + 2];
    memcpy(other, key, sizeof(key));
    other[APIKEY_LEN - 1] ^= 1;
    assert_null(apikey_lookup(s, other, APIKEY_LEN));
    assert_null(apikey_lookup(s, key, APIKEY_LEN - 1));
    memcpy(other, key, APIKEY_LEN);
    other[APIKEY_LEN] = 'A';
    assert_null(apikey_lookup(s, other, APIKEY_LEN + 1));
    assert_null(apikey_lookup(s, "", 0));
    assert_null(apikey_lookup(s, NULL, 5));
    assert_null(apikey_lookup(s, "pk_", 3));
    char *huge = malloc(1 << 20);
    memset(huge, 'A', 1 << 20);
    memcpy(huge, key, APIKEY_LEN);
    assert_null(apikey_lookup(s, huge, 1 << 20));
    free(huge);
    /* A key with an embedded NUL is another key, not a prefix match. */
    char nul[APIKEY_LEN + 1];
    memcpy(nul, key, APIKEY_LEN);
    nul[APIKEY_LEN] = '\0';
    assert_null(apikey_lookup(s, nul, APIKEY_LEN + 1));

    /* A second key is different and independent. */
    char key2[APIKEY_LEN + 1], id2[APIKEY_ID_LEN + 1];
    assert_int_equal(apikey_create(s, "acme", APIKEY_SCOPE_ALL, NOW, key2, id2), 0);
    assert_string_not_equal(key, key2);
    assert_string_not_equal(id, id2);
    assert_ptr_not_equal(apikey_lookup(s, key2, APIKEY_LEN), e);
    apikey_store_free(s);
}

static void test_bad_create(void **state)
{
    apikey_store *s = apikey_store_new();
    char key[APIKEY_LEN + 1] = "untouched";
    assert_int_equal(apikey_create(s, "", APIKEY_SCOPE_INFO, NOW, key, NULL), PL_EINVAL);
    assert_int_equal(apikey_create(s, NULL, APIKEY_SCOPE_INFO, NOW, key, NULL), PL_EINVAL);
    assert_int_equal(apikey_create(s, "acme", 0, NOW, key, NULL), PL_EINVAL);
    assert_int_equal(apikey_create(s, "acme", 1u << 20, NOW, key, NULL), PL_EINVAL);
    assert_string_equal(key, "untouched");
    assert_int_equal(apikey_add(s, "acme", "", 0, APIKEY_SCOPE_INFO, NOW, NULL), PL_EINVAL);
    assert_int_equal(apikey_add(s, "acme", NULL, 4, APIKEY_SCOPE_INFO, NOW, NULL), PL_EINVAL);
    assert_int_equal(
        apikey_add(s, "acme", "x", APIKEY_MAX_PRESENTED + 1, APIKEY_SCOPE_INFO, NOW, NULL),
        PL_EINVAL);
    int n = 0;
    assert_int_equal(apikey_foreach(s, NULL, count_cb, &n), 0);
    apikey_store_free(s);
}

static void test_config_keys(void **state)
{
    apikey_store *s = apikey_store_new();
    char id[APIKEY_ID_LEN + 1];
    const char *k = "static-key-from-yaml";
    assert_int_equal(apikey_add(s, "acme", k, strlen(k), APIKEY_SCOPE_HISTORY, NOW, id), 0);
    const apikey_entry *e = apikey_lookup(s, k, strlen(k));
    assert_non_null(e);
    assert_string_equal(e->id, id);
    /* The same key twice (even for another tenant) is refused. */
    assert_int_equal(apikey_add(s, "other", k, strlen(k), APIKEY_SCOPE_INFO, NOW, NULL), PL_EINVAL);
    assert_string_equal(apikey_lookup(s, k, strlen(k))->tenant, "acme");
    apikey_store_free(s);

    /* A configured key keeps its id from one start to the next (audit
     * records name it), whatever the time; another key gets another id. */
    apikey_store *again = apikey_store_new();
    char id2[APIKEY_ID_LEN + 1], other[APIKEY_ID_LEN + 1];
    assert_int_equal(
        apikey_add(again, "acme", k, strlen(k), APIKEY_SCOPE_HISTORY, NOW + 86400000, id2), 0);
    assert_string_equal(id2, id);
    const char *k2 = "static-key-from-yaml2";
    assert_int_equal(apikey_add(again, "acme", k2, strlen(k2), APIKEY_SCOPE_HISTORY, NOW, other),
                     0);
    assert_string_not_equal(other, id);
    assert_int_equal(strlen(id), APIKEY_ID_LEN);
    apikey_store_free(again);
}

static void test_revoke_and_list(void **state)
{
    apikey_store *s = apikey_store_new();
    char keys[5][APIKEY_LEN + 1], ids[5][APIKEY_ID_LEN + 1];
    const char *tenants[5] = {"acme", "beta", "acme", "acme", "beta"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(
            apikey_create(s, tenants[i], APIKEY_SCOPE_PUBLISH, NOW + i, keys[i], ids[i]), 0);
    int n = 0;
    assert_int_equal(apikey_foreach(s, "acme", count_cb, &n), 3);
    assert_int_equal(n, 3);
    n = 0;
    assert_int_equal(apikey_foreach(s, "beta", count_cb, &n), 2);
    n = 0;
    assert_int_equal(apikey_foreach(s, NULL, count_cb, &n), 5);
    n = 0;
    assert_int_equal(apikey_foreach(s, "gamma", count_cb, &n), 0);
    assert_int_equal(apikey_foreach(s, NULL, stop_cb, NULL), 1);

    const apikey_entry *e = apikey_lookup(s, keys[2], APIKEY_LEN);
    assert_non_null(e);
    assert_int_equal(apikey_revoke(s, ids[2]), 0);
    assert_int_equal(apikey_revoke(s, ids[2]), 0);
    assert_null(apikey_lookup(s, keys[2], APIKEY_LEN));
    /* The pointer obtained before the revoke stays valid and says so. */
    assert_int_equal(atomic_load((atomic_int *)&e->revoked), 1);
    assert_non_null(apikey_lookup(s, keys[3], APIKEY_LEN));
    assert_int_equal(apikey_revoke(s, "01NOPE"), PL_ENOTFOUND);
    assert_int_equal(apikey_revoke(s, ""), PL_ENOTFOUND);
    assert_int_equal(apikey_revoke(s, NULL), PL_ENOTFOUND);
    /* Listing still shows revoked keys (for the admin's view). */
    n = 0;
    assert_int_equal(apikey_foreach(s, "acme", count_cb, &n), 3);
    apikey_store_free(s);
}

static int copy_cb(const apikey_entry *e, void *ud)
{
    assert_int_equal(apikey_store_load(ud, e), 0);
    return 0;
}

static void test_save_load(void **state)
{
    apikey_store *a = apikey_store_new(), *b = apikey_store_new();
    char k1[APIKEY_LEN + 1], k2[APIKEY_LEN + 1], id2[APIKEY_ID_LEN + 1];
    assert_int_equal(apikey_create(a, "acme", APIKEY_SCOPE_DLQ, NOW, k1, NULL), 0);
    assert_int_equal(apikey_create(a, "acme", APIKEY_SCOPE_DLQ, NOW, k2, id2), 0);
    assert_int_equal(apikey_revoke(a, id2), 0);
    apikey_foreach(a, NULL, copy_cb, b);
    const apikey_entry *e = apikey_lookup(b, k1, APIKEY_LEN);
    assert_non_null(e);
    assert_int_equal(e->scopes, APIKEY_SCOPE_DLQ);
    assert_null(apikey_lookup(b, k2, APIKEY_LEN)); /* revoked state survives */
    char hex[65];
    apikey_hash_hex(e->hash, hex);
    assert_int_equal(strlen(hex), 64);

    /* Loading the same records again: duplicates are refused. */
    e = apikey_lookup(a, k1, APIKEY_LEN);
    assert_int_equal(apikey_store_load(b, e), PL_EINVAL);
    /* Malformed records. */
    apikey_entry bad;
    memset(&bad, 0, sizeof(bad));
    bad.tenant = "acme";
    bad.scopes = APIKEY_SCOPE_INFO;
    assert_int_equal(apikey_store_load(b, &bad), PL_EINVAL); /* empty id */
    memset(bad.id, 'A', sizeof(bad.id));
    assert_int_equal(apikey_store_load(b, &bad), PL_EINVAL); /* unterminated id */
    strcpy(bad.id, "01HXYZ");
    bad.tenant = NULL;
    assert_int_equal(apikey_store_load(b, &bad), PL_EINVAL);
    bad.tenant = "acme";
    bad.scopes = 0;
    assert_int_equal(apikey_store_load(b, &bad), PL_EINVAL);
    bad.scopes = APIKEY_SCOPE_INFO;
    assert_int_equal(apikey_store_load(b, &bad), 0);
    /* A key stored with bit 9 (webhooks) loads. */
    strcpy(bad.id, "01HXYZ9");
    bad.hash[0] = 9;
    bad.scopes = APIKEY_SCOPE_WEBHOOKS;
    assert_int_equal(apikey_store_load(b, &bad), 0);
    apikey_store_free(a);
    apikey_store_free(b);
}

/* ---- threads ----------------------------------------------------------- */

struct race {
    apikey_store *s;
    char key[APIKEY_LEN + 1];
    char id[APIKEY_ID_LEN + 1];
    int stop;
    int errors;
};

static void *race_lookup(void *arg)
{
    struct race *r = arg;
    int seen_revoked = 0;
    for (int i = 0; i < 20000; i++) {
        const apikey_entry *e = apikey_lookup(r->s, r->key, APIKEY_LEN);
        if (e && seen_revoked) __atomic_add_fetch(&r->errors, 1, __ATOMIC_RELAXED);
        if (e && strcmp(e->tenant, "acme")) __atomic_add_fetch(&r->errors, 1, __ATOMIC_RELAXED);
        if (!e) seen_revoked = 1;
    }
    return NULL;
}

static void *race_write(void *arg)
{
    struct race *r = arg;
    char key[APIKEY_LEN + 1], id[APIKEY_ID_LEN + 1];
    for (int i = 0; i < 300; i++) {
        if (apikey_create(r->s, "beta", APIKEY_SCOPE_INFO, NOW, key, id)) continue;
        if (i % 2) apikey_revoke(r->s, id);
        if (i == 150) apikey_revoke(r->s, r->id);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct race r = {.s = apikey_store_new()};
    assert_int_equal(apikey_create(r.s, "acme", APIKEY_SCOPE_ALL, NOW, r.key, r.id), 0);
    pthread_t th[6];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, race_lookup, &r);
    for (int i = 4; i < 6; i++)
        pthread_create(&th[i], NULL, race_write, &r);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(r.errors, 0);
    assert_null(apikey_lookup(r.s, r.key, APIKEY_LEN));
    int n = 0;
    assert_int_equal(apikey_foreach(r.s, "beta", count_cb, &n), 600);
    apikey_store_free(r.s);
}

/* ---- allocation failure ------------------------------------------------- */

static void test_oom(void **state)
{
    pl_mem_fail_after(0);
    assert_null(apikey_store_new());
    pl_mem_fail_after(-1);
    apikey_store *s = apikey_store_new();
    char key[APIKEY_LEN + 1];
    int rc = PL_ENOMEM;
    long n;
    for (n = 0; rc == PL_ENOMEM && n < 50; n++) {
        pl_mem_fail_after(n);
        rc = apikey_create(s, "acme", APIKEY_SCOPE_INFO, NOW, key, NULL);
        pl_mem_fail_after(-1);
        if (rc == PL_ENOMEM) {
            int count = 0;
            assert_int_equal(apikey_foreach(s, NULL, count_cb, &count), 0);
        }
    }
    assert_int_equal(rc, 0);
    assert_true(n > 1);
    assert_non_null(apikey_lookup(s, key, APIKEY_LEN));
    apikey_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_grants_one_scope),
        cmocka_unit_test(test_mask_grants_star),
        cmocka_unit_test(test_mask_grants_odd_masks),
        cmocka_unit_test(test_parsed_names_grant),
        cmocka_unit_test(test_scopes_parse),
        cmocka_unit_test(test_create_lookup),
        cmocka_unit_test(test_bad_create),
        cmocka_unit_test(test_config_keys),
        cmocka_unit_test(test_revoke_and_list),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
