/* Unit tests for channel permissions: one table of channel x claims x
 * namespace cases for reading and one for publishing, each row with the
 * expected answer, plus the user-list parser's edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/perm.h"

static cfg_namespace open_ns = {.name = "chat", .client_publish = true};
static cfg_namespace readonly_ns = {.name = "news", .client_publish = false};
static cfg_namespace private_ns = {.name = "ops", .client_publish = true, .is_private = true};

static char *chans_ops[] = {"ops:*"};
static char *chans_one[] = {"ops:deploys"};
static char *pubs_news[] = {"news:*"};
static char *pubs_ops[] = {"ops:alerts"};

typedef struct row {
    const char *channel;
    const cfg_namespace *ns;
    const char *user;
    char **channels;
    size_t n_channels;
    char **publish;
    size_t n_publish;
    perm_result read, pub;
} row;

static const row rows[] = {
    /* open namespace: anyone reads and publishes */
    {"chat:lobby", &open_ns, "alice", NULL, 0, NULL, 0, PERM_OK, PERM_OK},
    /* no namespace matched */
    {"nope:x", NULL, "alice", NULL, 0, NULL, 0, PERM_NO_NAMESPACE, PERM_NO_NAMESPACE},
    /* user lists: listed, not listed, last of the list, prefix of a name */
    {"chat:#alice,bob", &open_ns, "alice", NULL, 0, NULL, 0, PERM_OK, PERM_OK},
    {"chat:#alice,bob", &open_ns, "bob", NULL, 0, NULL, 0, PERM_OK, PERM_OK},
    {"chat:#alice,bob", &open_ns, "carol", NULL, 0, NULL, 0, PERM_NOT_LISTED, PERM_NOT_LISTED},
    {"chat:#alice,bob", &open_ns, "ali", NULL, 0, NULL, 0, PERM_NOT_LISTED, PERM_NOT_LISTED},
    {"chat:#alice,bob", &open_ns, "bobby", NULL, 0, NULL, 0, PERM_NOT_LISTED, PERM_NOT_LISTED},
    /* a user list wins over claims */
    {"ops:#alice", &private_ns, "bob", chans_ops, 1, pubs_ops, 1, PERM_NOT_LISTED, PERM_NOT_LISTED},
    /* namespace without client publish: reading is fine, a publish claim grants */
    {"news:today", &readonly_ns, "alice", NULL, 0, NULL, 0, PERM_OK, PERM_CLIENT_PUBLISH},
    {"news:today", &readonly_ns, "alice", NULL, 0, pubs_news, 1, PERM_OK, PERM_OK},
    /* private namespace: a channels claim grants reading, not publishing */
    {"ops:deploys", &private_ns, "alice", NULL, 0, NULL, 0, PERM_NEED_TOKEN, PERM_PRIVATE},
    {"ops:deploys", &private_ns, "alice", chans_ops, 1, NULL, 0, PERM_OK, PERM_PRIVATE},
    {"ops:deploys", &private_ns, "alice", chans_one, 1, NULL, 0, PERM_OK, PERM_PRIVATE},
    {"ops:alerts", &private_ns, "alice", chans_one, 1, NULL, 0, PERM_NEED_TOKEN, PERM_PRIVATE},
    {"ops:alerts", &private_ns, "alice", NULL, 0, pubs_ops, 1, PERM_NEED_TOKEN, PERM_OK},
};

static void the_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row *r = &rows[i];
        perm_claims who = {r->user, r->channels, r->n_channels, r->publish, r->n_publish};
        perm_result rd = perm_read(r->ns, r->channel, &who);
        perm_result pb = perm_publish(r->ns, r->channel, &who);
        if (rd != r->read || pb != r->pub)
            fail_msg("row %zu (%s as %s): read %d want %d, publish %d want %d", i, r->channel,
                     r->user, rd, r->read, pb, r->pub);
    }
}

static void every_refusal_says_why(void **state)
{
    (void)state;
    assert_string_equal(perm_why(PERM_OK), "");
    for (int r = PERM_NO_NAMESPACE; r <= PERM_CLIENT_PUBLISH; r++)
        assert_true(strlen(perm_why((perm_result)r)) > 10);
    assert_non_null(strstr(perm_why(PERM_NOT_LISTED), "user list"));
    assert_non_null(strstr(perm_why(PERM_NEED_TOKEN), "channel token"));
}

static void user_list_edges(void **state)
{
    (void)state;
    assert_false(perm_has_user_list("chat:lobby"));
    assert_true(perm_has_user_list("dm:#a,b"));
    assert_true(perm_user_listed("chat:lobby", "anyone"));
    assert_true(perm_user_listed("dm:#a", "a"));
    assert_false(perm_user_listed("dm:#", "a"));
    assert_false(perm_user_listed("dm:#a,", ""));
    assert_true(perm_user_listed("dm:#a,,b", "b"));
    assert_false(perm_user_listed("dm:#ab", "a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_table),
        cmocka_unit_test(every_refusal_says_why),
        cmocka_unit_test(user_list_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
