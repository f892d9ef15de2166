/* Unit tests for the webhooks, routes and webhook_allowed_networks sections
 * of the configuration: the full example's entries field by field, the
 * defaults, every error class with its line and column, a route's match as
 * JSON text, and the marks that place the rule compiler's errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "config/config.h"
#include "hooks/rule.h"
#include "util/status.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static char *read_rel(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", PARLEY_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void load_ok(config *c, const char *yaml)
{
    char err[512] = "";
    if (config_load_string(c, yaml, strlen(yaml), err, sizeof(err)) != 0)
        fail_msg("refused: %s\n%s", err, yaml);
}

/* The error must be exactly "LINE:COL: ..." and contain want. */
static void expect_error(const char *yaml, int line, int col, const char *want)
{
    config c;
    char err[512] = "";
    if (config_load_string(&c, yaml, strlen(yaml), err, sizeof(err)) != -1)
        fail_msg("accepted:\n%s", yaml);
    int l = 0, cc = 0;
    if (sscanf(err, "%d:%d:", &l, &cc) != 2) fail_msg("bad error '%s'", err);
    if (l != line || cc != col)
        fail_msg("error '%s' at %d:%d, expected %d:%d for:\n%s", err, l, cc, line, col, yaml);
    if (!strstr(err, want)) fail_msg("error '%s' lacks '%s'", err, want);
    assert_null(c.webhooks);
    assert_null(c.routes);
    assert_null(c.webhook_allowed_networks);
}

/* ------------------------------------------------------------------------ */
/* The full example                                                          */

static void check_full_webhooks(const config *c)
{
    assert_int_equal(c->n_webhook_allowed_networks, 2);
    assert_string_equal(c->webhook_allowed_networks[0], "10.20.0.0/16");
    assert_string_equal(c->webhook_allowed_networks[1], "fd00:1234::/32");
    assert_int_equal(c->n_webhooks, 2);
    const cfg_webhook *w = config_webhook(c, "acme", "ops");
    assert_ptr_equal(w, &c->webhooks[0]);
    assert_string_equal(w->url, "https://ops.example.com/hooks/parley");
    assert_int_equal(w->n_secrets, 2);
    assert_string_equal(w->secrets[0], "whsec_cGFybGV5LW9wcy13ZWJob29rLXNlY3JldC0yMDI2LWI=");
    assert_string_equal(w->secrets[1], "whsec_cGFybGV5LW9wcy13ZWJob29rLXNlY3JldC0yMDI1LWE=");
    assert_int_equal(w->secret_expires_ms[0], 0);
    assert_int_equal(w->secret_expires_ms[1], 1798675200000LL); /* 2026-12-31T00:00:00Z */
    assert_int_equal(w->max_attempts, 5);
    assert_int_equal(w->n_retry_schedule, 5);
    static const int64_t sched[] = {0, 5000, 300000, 1800000, 7200000};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(w->retry_schedule[i], sched[i]);
    assert_int_equal(w->timeout_ms, 10000);
    assert_int_equal(w->connect_timeout_ms, 2000);
    assert_int_equal(w->max_in_flight, 32);
    assert_int_equal(w->rate, 50);
    assert_int_equal(w->ordering, CFG_ORDER_CHANNEL);
    assert_null(w->order_path);
    assert_true(w->enabled);

    w = config_webhook(c, "globex", "billing-sync");
    assert_ptr_equal(w, &c->webhooks[1]);
    assert_string_equal(w->url, "http://10.20.0.7:8080/parley");
    assert_int_equal(w->n_secrets, 1);
    assert_string_equal(w->secrets[0], "whsk_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=");
    assert_int_equal(w->secret_expires_ms[0], 0);
    assert_int_equal(w->max_attempts, 10);
    assert_null(w->retry_schedule);
    assert_int_equal(w->n_retry_schedule, 0);
    assert_int_equal(w->timeout_ms, 15000);
    assert_int_equal(w->connect_timeout_ms, 5000);
    assert_int_equal(w->max_in_flight, 16);
    assert_int_equal(w->rate, 0);
    assert_int_equal(w->ordering, CFG_ORDER_PATH);
    assert_string_equal(w->order_path, "data.customer_id");
    assert_true(w->enabled);
    assert_null(config_webhook(c, "globex", "ops"));
    assert_null(config_webhook(c, "acme", "billing-sync"));
    assert_null(config_webhook(c, NULL, "ops"));
}

static void check_full_routes(const config *c)
{
    assert_int_equal(c->n_routes, 3);
    const cfg_route *r = &c->routes[0];
    assert_string_equal(r->id, "incidents");
    assert_string_equal(r->tenant, "acme");
    assert_string_equal(r->match, "{\"channel\":\"chat:**\",\"type\":[\"incident.*\"],\"where\":"
                                  "{\"data.severity\":{\"$in\":[\"high\",\"critical\"]}}}");
    assert_string_equal(r->webhook, "ops");
    assert_null(r->publish);
    assert_true(r->enabled);
    assert_int_equal(r->n_marks, 9);
    r = &c->routes[1];
    assert_string_equal(r->id, "invoices");
    assert_string_equal(r->tenant, "globex");
    assert_string_equal(r->match, "{\"channel\":\"inbox:billing\",\"type\":\"invoice.paid\"}");
    assert_string_equal(r->webhook, "billing-sync");
    r = &c->routes[2];
    assert_string_equal(r->id, "escalations");
    assert_string_equal(r->match, "{\"where\":{\"data.priority\":{\"$gte\":3}}}");
    assert_null(r->webhook);
    assert_string_equal(r->publish, "inbox:escalations");
    assert_true(r->enabled);
}

static void test_full_example(void **state)
{
    size_t len;
    char *yaml = read_rel("tests/configs/full.yaml", &len);
    config c;
    char err[512] = "";
    if (config_load_string(&c, yaml, len, err, sizeof(err)) != 0) fail_msg("%s", err);
    check_full_webhooks(&c);
    check_full_routes(&c);
    /* The example's rules are ones the rule compiler takes. */
    for (size_t i = 0; i < c.n_routes; i++) {
        json_t *m = json_loads(c.routes[i].match, 0, NULL);
        assert_non_null(m);
        rule_match *rm = NULL;
        rule_error re;
        if (rule_match_compile(m, &rm, &re) != PL_OK)
            fail_msg("route %zu: %s: %s", i, re.path, re.reason);
        rule_match_free(rm);
        json_decref(m);
    }
    config_release(&c);
    assert_null(c.webhooks);
    assert_null(c.routes);
    free(yaml);
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                  */

static void test_defaults(void **state)
{
    config c;
    load_ok(&c, "");
    assert_null(c.webhooks);
    assert_int_equal(c.n_webhooks, 0);
    assert_null(c.routes);
    assert_null(c.webhook_allowed_networks);
    config_release(&c);

    load_ok(&c, "webhooks: []\nroutes: []\nwebhook_allowed_networks: []\n");
    assert_int_equal(c.n_webhooks + c.n_routes + c.n_webhook_allowed_networks, 0);
    config_release(&c);

    load_ok(&c, "webhooks:\n  - {id: w, url: \"http://127.0.0.1:9000\", secret: whsec_AAAA}\n"
                "routes:\n  - {id: r, action: {webhook: w}}\n"
                "  - {id: p, tenant: default, match: ~, action: {publish: \"chat:x\"}, "
                "enabled: false}\n");
    const cfg_webhook *w = config_webhook(&c, "default", "w");
    assert_non_null(w);
    assert_int_equal(w->n_secrets, 1);
    assert_int_equal(w->secret_expires_ms[0], 0);
    assert_int_equal(w->max_attempts, 10);
    assert_null(w->retry_schedule);
    assert_int_equal(w->timeout_ms, 15000);
    assert_int_equal(w->connect_timeout_ms, 5000);
    assert_int_equal(w->max_in_flight, 16);
    assert_int_equal(w->rate, 0);
    assert_int_equal(w->ordering, CFG_ORDER_NONE);
    assert_null(w->order_path);
    assert_true(w->enabled);
    const cfg_route *r = &c.routes[0];
    assert_string_equal(r->tenant, "default");
    assert_string_equal(r->match, "{}");
    assert_int_equal(r->n_marks, 0);
    assert_true(r->enabled);
    size_t line = 9, col = 9;
    config_route_mark(r, "match.where", &line, &col);
    assert_true(line == 0 && col == 0);
    r = &c.routes[1];
    assert_string_equal(r->match, "{}");
    assert_string_equal(r->publish, "chat:x");
    assert_false(r->enabled);
    config_release(&c);

    /* Attempts follow a given schedule; a short timeout lowers the
     * default connect timeout. Ids are per tenant. */
    load_ok(&c, "tenants: [{id: a, jwt_secret: s}, {id: b, jwt_secret: s}]\n"
                "webhooks:\n"
                "  - {id: w, tenant: a, url: \"https://[::1]:8443/x?y#z\", secret: whsk_AAAA,\n"
                "     retry_schedule: [\"1s\", \"0s\", 3], timeout: \"2s\", ordering: "
                "headers.x-key}\n"
                "  - {id: w, tenant: b, url: \"HTTPS://b.example\", secret: [whsec_AA==]}\n"
                "  - {id: v, tenant: b, url: \"http://b.example\", secret: whsec_AA==,\n"
                "     max_attempts: 1, connect_timeout: \"100ms\", timeout: \"5m\"}\n");
    w = config_webhook(&c, "a", "w");
    assert_int_equal(w->n_retry_schedule, 3);
    assert_int_equal(w->retry_schedule[2], 3000);
    assert_int_equal(w->max_attempts, 3);
    assert_int_equal(w->timeout_ms, 2000);
    assert_int_equal(w->connect_timeout_ms, 2000);
    assert_int_equal(w->ordering, CFG_ORDER_PATH);
    assert_string_equal(w->order_path, "headers.x-key");
    assert_ptr_equal(config_webhook(&c, "b", "w"), &c.webhooks[1]);
    w = config_webhook(&c, "b", "v");
    assert_int_equal(w->max_attempts, 1);
    assert_int_equal(w->connect_timeout_ms, 100);
    assert_int_equal(w->timeout_ms, 300000);
    config_release(&c);

    /* Expiry times: fractions of a second down to the millisecond. */
    load_ok(&c, "webhooks:\n  - id: w\n    url: \"http://x\"\n    secret:\n"
                "      - {secret: whsec_AAAA, expires: \"2026-12-31T00:00:00.5Z\"}\n"
                "      - {secret: whsec_AAAA, expires: 2024-02-29t23:59:59.123456z}\n"
                "      - {secret: whsec_AAAA, expires: \"1970-01-01T00:00:01Z\"}\n");
    assert_int_equal(c.webhooks[0].secret_expires_ms[0], 1798675200500LL);
    assert_int_equal(c.webhooks[0].secret_expires_ms[1], 1709251199123LL);
    assert_int_equal(c.webhooks[0].secret_expires_ms[2], 1000);
    config_release(&c);

    load_ok(&c, "webhook_allowed_networks: [\"127.0.0.1\", \"::1\", \"0.0.0.0/0\", \"::/0\",\n"
                "  \"10.1.0.0/16\", \"fe80::/10\", \"192.168.1.128/25\"]\n");
    assert_int_equal(c.n_webhook_allowed_networks, 7);
    assert_string_equal(c.webhook_allowed_networks[0], "127.0.0.1");
    assert_string_equal(c.webhook_allowed_networks[6], "192.168.1.128/25");
    config_release(&c);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

typedef struct err_case {
    const char *yaml;
    int line, col;
    const char *want;
} err_case;

#define TT "tenants:\n  - {id: acme, jwt_secret: s}\n  - {id: globex, jwt_secret: s}\n"
#define OPS                                                                                        \
    "webhooks:\n  - {id: ops, tenant: acme, url: \"https://ops.example\", secret: whsec_AAAA}\n"
#define W1 "webhooks:\n  - id: w\n    secret: whsec_AAAA\n" /* lines 1-3 */
#define R1 "routes:\n  - id: r\n    action: {publish: \"chat:a\"}\n"

static const err_case webhook_errors[] = {
    /* url */
    {W1 "    url: \"ftp://x.example\"\n", 4, 10,
     "webhooks[0].url: 'ftp://x.example' must start with http:// or https://"},
    {W1 "    url: \"https://user:pw@x.example/\"\n", 4, 10, "must not carry credentials"},
    {W1 "    url: \"https://x.example/a b\"\n", 4, 10, "contains a space"},
    {W1 "    url: \"https:///x\"\n", 4, 10, "has no host"},
    {W1 "    url: \"http://x.example:0/\"\n", 4, 10, "has a bad port"},
    {W1 "    url: \"http://x.example:80:80/\"\n", 4, 10, "has a bad port"},
    {W1 "    url: \"http://[::g]/\"\n", 4, 10, "bad IPv6 address"},
    {W1 "    url: \"\"\n", 4, 10, "webhooks[0].url: must not be empty"},
    /* required keys, ids, tenants */
    {"webhooks:\n  - {id: w, secret: whsec_AAAA}\n", 2, 5, "webhooks[0]: missing key 'url'"},
    {"webhooks:\n  - {id: w, url: \"http://x\"}\n", 2, 5, "missing key 'secret'"},
    {"webhooks:\n  - {url: \"http://x\", secret: whsec_AAAA}\n", 2, 5, "missing key 'id'"},
    {"webhooks:\n  - {id: \"a b\", url: \"http://x\", secret: whsec_AAAA}\n", 2, 10,
     "webhooks[0].id: webhook id 'a b' may only contain"},
    {"webhooks:\n  - {id: w, url: \"http://x\", secret: whsec_AAAA}\n"
     "  - {id: w, url: \"http://y\", secret: whsec_AAAA}\n",
     3, 10, "webhooks[1].id: duplicate webhook id 'w' in tenant 'default'"},
    {"webhooks:\n  - {id: w, tenant: acme, url: \"http://x\", secret: whsec_AAAA}\n", 2, 21,
     "webhooks[0].tenant: unknown tenant 'acme'"},
    {TT "webhooks:\n  - {id: w, url: \"http://x\", secret: whsec_AAAA}\n", 5, 5,
     "webhooks[0]: missing key 'tenant' (required with tenants)"},
    {W1 "    url: \"http://x\"\n    retries: 3\n", 5, 5, "unknown key 'retries'"},
    /* secrets */
    {"webhooks:\n  - {id: w, url: \"http://x\", secret: abc}\n", 2, 38,
     "webhooks[0].secret: a webhook secret starts with whsec_ (HMAC) or whsk_ (Ed25519)"},
    {"webhooks:\n  - {id: w, url: \"http://x\", secret: [whsec_AAAA, \"whsec_A!\"]}\n", 2, 51,
     "webhooks[0].secret[1]: the part after the prefix is not base64"},
    {"webhooks:\n  - {id: w, url: \"http://x\", secret: []}\n", 2, 38, "must list 1 to 8 secrets"},
    {"webhooks:\n  - {id: w, url: \"http://x\", secret: [a, a, a, a, a, a, a, a, a]}\n", 2, 38,
     "must list 1 to 8 secrets"},
    {"webhooks:\n  - {id: w, url: \"http://x\", secret: {secret: whsec_AAAA}}\n", 2, 38,
     "expected a secret or a list of secrets, got a mapping"},
    {"webhooks:\n  - {id: w, url: \"http://x\", secret: [{expires: \"2027-01-01T00:00:00Z\"}]}\n",
     2, 39, "webhooks[0].secret[0]: missing key 'secret'"},
    {"webhooks:\n  - {id: w, url: \"http://x\", secret: [{secret: abc}]}\n", 2, 48,
     "webhooks[0].secret[0].secret: a webhook secret starts with"},
    {"webhooks:\n  - {id: w, url: \"http://x\", secret: [{secret: whsec_AAAA, expires: "
     "\"2026-02-29T00:00:00Z\"}]}\n",
     2, 69, "webhooks[0].secret[0].expires: '2026-02-29T00:00:00Z' is not a UTC time"},
    {"webhooks:\n  - {id: w, url: \"http://x\", secret: [{secret: whsec_AAAA, expires: "
     "\"2026-12-31T00:00:00+01:00\"}]}\n",
     2, 69, "is not a UTC time like \"2026-12-31T00:00:00Z\""},
    {"webhooks:\n  - {id: w, url: \"http://x\", secret: [{secret: whsec_AAAA, expiry: x}]}\n", 2,
     60, "unknown key 'expiry'"},
    /* delivery */
    {W1 "    url: \"http://x\"\n    retry_schedule: [\"1s\", \"2s\"]\n    max_attempts: 3\n", 6, 19,
     "webhooks[0].max_attempts: max_attempts (3) exceeds the retry schedule's length (2)"},
    {W1 "    url: \"http://x\"\n    max_attempts: 11\n", 5, 19,
     "max_attempts (11) exceeds the retry schedule's length (10)"},
    {W1 "    url: \"http://x\"\n    max_attempts: 65\n", 5, 19, "must be between 1 and 64"},
    {W1 "    url: \"http://x\"\n    retry_schedule: []\n", 5, 21, "must list 1 to 64 delays"},
    {W1 "    url: \"http://x\"\n    retry_schedule: [\"1s\", \"soon\"]\n", 5, 28,
     "webhooks[0].retry_schedule[1]: invalid duration 'soon'"},
    {W1 "    url: \"http://x\"\n    timeout: \"10m\"\n", 5, 14,
     "webhooks[0].timeout: must be at most 300000ms"},
    {W1 "    url: \"http://x\"\n    timeout: \"500ms\"\n", 5, 14, "must be at least 1000ms"},
    {W1 "    url: \"http://x\"\n    connect_timeout: \"50ms\"\n", 5, 22, "at least 100ms"},
    {W1 "    url: \"http://x\"\n    timeout: \"10s\"\n    connect_timeout: \"20s\"\n", 6, 22,
     "webhooks[0].connect_timeout: connect_timeout (20000ms) exceeds timeout (10000ms)"},
    {W1 "    url: \"http://x\"\n    max_in_flight: 0\n", 5, 20, "must be between 1 and 1024"},
    {W1 "    url: \"http://x\"\n    rate: 100001\n", 5, 11, "must be between 0 and 100000"},
    {W1 "    url: \"http://x\"\n    enabled: maybe\n", 5, 14, "expected true or false"},
    /* ordering */
    {W1 "    url: \"http://x\"\n    ordering: fifo\n", 5, 15,
     "webhooks[0].ordering: unknown ordering 'fifo' (none, channel, or a path such as "
     "data.customer_id or headers.x-key)"},
    {W1 "    url: \"http://x\"\n    ordering: headers\n", 5, 15, "unknown ordering 'headers'"},
    {W1 "    url: \"http://x\"\n    ordering: data.\n", 5, 15,
     "bad ordering path 'data.': empty segment"},
    {W1 "    url: \"http://x\"\n    ordering: data.a..b\n", 5, 15, "empty segment"},
    {W1 "    url: \"http://x\"\n    ordering: data.*.id\n", 5, 15, "'*' names several values"},
};

static const err_case network_errors[] = {
    {"webhook_allowed_networks: [\"10.1.2.3/16\"]\n", 1, 28,
     "webhook_allowed_networks[0]: '10.1.2.3/16' has bits set past /16; did you mean "
     "10.1.0.0/16?"},
    {"webhook_allowed_networks:\n  - \"::1/128\"\n  - \"fd00::1/16\"\n", 3, 5,
     "webhook_allowed_networks[1]: 'fd00::1/16' has bits set past /16; did you mean fd00::/16?"},
    {"webhook_allowed_networks: [\"10.0.0/8\"]\n", 1, 28,
     "'10.0.0/8' is not an IPv4 or IPv6 address"},
    {"webhook_allowed_networks: [\"10.0.0.0/33\"]\n", 1, 28, "needs a prefix of 0-32"},
    {"webhook_allowed_networks: [\"::/129\"]\n", 1, 28, "needs a prefix of 0-128"},
    {"webhook_allowed_networks: [\"10.0.0.0/\"]\n", 1, 28, "needs a prefix of 0-32"},
    {"webhook_allowed_networks: [\"10.0.0.0/+8\"]\n", 1, 28, "needs a prefix"},
    {"webhook_allowed_networks: [\"localhost\"]\n", 1, 28, "is not an IPv4 or IPv6 address"},
    {"webhook_allowed_networks: [\"\"]\n", 1, 28, "must not be empty"},
    {"webhook_allowed_networks: \"10.0.0.0/8\"\n", 1, 27, "expected a list of networks"},
};

static const err_case route_errors[] = {
    {TT OPS "routes:\n  - id: r\n    tenant: globex\n    action: {webhook: ops}\n", 9, 23,
     "routes[0].action.webhook: no webhook 'ops' in tenant 'globex' (a webhook 'ops' belongs to "
     "another tenant, 'acme'"},
    {TT OPS "routes:\n  - id: r\n    tenant: acme\n    action: {webhook: nope}\n", 9, 23,
     "routes[0].action.webhook: no webhook 'nope' in tenant 'acme'"},
    {"routes:\n  - {id: r, action: {publish: \"chat:a\"}}\n"
     "  - {id: r, action: {publish: \"chat:b\"}}\n",
     3, 10, "routes[1].id: duplicate route id 'r' in tenant 'default'"},
    {"routes:\n  - {id: r, action: {publish: \"nope:a\"}}\n", 2, 31,
     "routes[0].action.publish: channel 'nope:a' is in no configured namespace"},
    {"namespaces:\n  - {name: live, class: ephemeral}\nroutes:\n  - {id: r, action: {publish: "
     "\"live:a\"}}\n",
     4, 31, "routes[0].action.publish: channel 'live:a' is ephemeral"},
    {"routes:\n  - {id: r, action: {publish: \"chat:a b\"}}\n", 2, 31,
     "'chat:a b' is not a valid channel name"},
    {"routes:\n  - {id: r, action: {publish: \":a\"}}\n", 2, 31, "not a valid channel name"},
    {"routes:\n  - {id: r, action: {}}\n", 2, 21,
     "routes[0].action: needs exactly one of {webhook: ID} or {publish: CHANNEL}"},
    {"routes:\n  - {id: r, action: {webhook: w, publish: \"chat:a\"}}\n", 2, 21,
     "needs exactly one of"},
    {"routes:\n  - {id: r, action: \"chat:a\"}\n", 2, 21,
     "expected {webhook: ID} or {publish: CHANNEL}, got a quoted string"},
    {"routes:\n  - {id: r, action: {topic: x}}\n", 2, 22, "unknown key 'topic'"},
    {"routes:\n  - {id: r}\n", 2, 5, "routes[0]: missing key 'action'"},
    {"routes:\n  - {action: {publish: \"chat:a\"}}\n", 2, 5, "missing key 'id'"},
    {"routes:\n  - {id: r, tenant: acme, action: {publish: \"chat:a\"}}\n", 2, 21,
     "unknown tenant 'acme'"},
    {"routes:\n  - {id: r, action: {publish: \"chat:a\"}, when: x}\n", 2, 42, "unknown key 'when'"},
    /* match */
    {R1 "    match:\n      where: {\"data.x\": 1, \"data.x\": 2}\n", 5, 28,
     "routes[0].match.where: duplicate key 'data.x'"},
    {R1 "    match:\n      type: a\n      type: b\n", 6, 7,
     "routes[0].match: duplicate key 'type'"},
    {R1 "    match: [a]\n", 4, 12, "routes[0].match: expected a mapping, got a list"},
    {R1 "    match: \"channel\"\n", 4, 12, "expected a mapping, got a quoted string"},
    {R1 "    match: {[a]: 1}\n", 4, 13, "keys must be strings, got a list"},
    {R1 "    match: {where: {data.x: .inf}}\n", 4, 29,
     "routes[0].match.where.data.x: '.inf' has no JSON form"},
    {R1 "    match: {where: {data.x: 1e999}}\n", 4, 29, "number '1e999' is out of range"},
    {R1 "    match: {where: {data.x: [1, 99999999999999999999]}}\n", 4, 33,
     "routes[0].match.where.data.x[1]: number '99999999999999999999' is out of range"},
    {R1 "    match: {where: {data.x: \"a\\0b\"}}\n", 4, 29, "string contains a NUL byte"},
};

static void run_errors(const err_case *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_error(rows[i].yaml, rows[i].line, rows[i].col, rows[i].want);
}

static void test_webhook_errors(void **state)
{
    run_errors(webhook_errors, sizeof(webhook_errors) / sizeof(webhook_errors[0]));
    /* A URL longer than 2048 bytes. */
    char yaml[2300];
    snprintf(yaml, sizeof(yaml), W1 "    url: \"https://x.example/%02100d\"\n", 0);
    expect_error(yaml, 4, 10, "is longer than 2048 bytes");
}

static void test_network_errors(void **state)
{
    run_errors(network_errors, sizeof(network_errors) / sizeof(network_errors[0]));
}

static void test_route_errors(void **state)
{
    run_errors(route_errors, sizeof(route_errors) / sizeof(route_errors[0]));
}

/* Nesting: 32 levels of mappings and lists in a match are fine, 33 are not. */
static void test_match_depth(void **state)
{
    char yaml[512];
    for (int levels = 32; levels <= 33; levels++) {
        int n = snprintf(yaml, sizeof(yaml), R1 "    match: ");
        for (int i = 0; i < levels; i++)
            n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, i % 2 ? "[" : "{a: ");
        n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "1");
        for (int i = levels - 1; i >= 0; i--)
            n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, i % 2 ? "]" : "}");
        snprintf(yaml + n, sizeof(yaml) - (size_t)n, "\n");
        if (levels == 32) {
            config c;
            load_ok(&c, yaml);
            config_release(&c);
        } else {
            /* "{a: " is 4 columns, "[" 1: the 33rd level opens at column
             * 12 + 16 * 4 + 16 * 1. */
            expect_error(yaml, 4, 12 + 16 * 4 + 16, "nesting deeper than 32 levels");
        }
    }
}

/* ------------------------------------------------------------------------ */
/* match as JSON, and its marks                                              */

static void test_match_json(void **state)
{
    config c;
    load_ok(&c, R1 "    match:\n"
                   "      channel: [\"chat:*\"]\n"
                   "      where:\n"
                   "        data.a: \"5\"\n"
                   "        data.b: 5\n"
                   "        data.c: true\n"
                   "        data.d: null\n"
                   "        data.e: ~\n"
                   "        data.f: -1.5e3\n"
                   "        data.g: 'x'\n"
                   "        data.h: 007\n"
                   "        data.i: [1, \"two\", {k: v}, False]\n"
                   "        data.j: {}\n"
                   "        data.k: yes\n"
                   "        data.l:\n"
                   "        data.m: 'q\"b\\'\n"
                   "        data.n: \"true\"\n"
                   "        data.o: 0.5\n"
                   "        data.p: +5\n"
                   "        data.q: |\n"
                   "          two\n"
                   "          lines\n");
    assert_string_equal(c.routes[0].match,
                        "{\"channel\":[\"chat:*\"],\"where\":{\"data.a\":\"5\",\"data.b\":5,"
                        "\"data.c\":true,\"data.d\":null,\"data.e\":null,\"data.f\":-1.5e3,"
                        "\"data.g\":\"x\",\"data.h\":\"007\",\"data.i\":[1,\"two\",{\"k\":\"v\"},"
                        "false],\"data.j\":{},\"data.k\":\"yes\",\"data.l\":null,"
                        "\"data.m\":\"q\\\"b\\\\\",\"data.n\":\"true\",\"data.o\":0.5,"
                        "\"data.p\":\"+5\",\"data.q\":\"two\\nlines\\n\"}}");
    json_error_t je;
    json_t *j = json_loads(c.routes[0].match, 0, &je);
    if (!j) fail_msg("not JSON: %s", je.text);
    assert_true(json_is_integer(json_object_get(json_object_get(j, "where"), "data.b")));
    json_decref(j);
    config_release(&c);
}

static void expect_mark(const cfg_route *r, const char *path, size_t line, size_t col)
{
    size_t l = 99, c = 99;
    config_route_mark(r, path, &l, &c);
    if (l != line || c != col) fail_msg("%s: at %zu:%zu, expected %zu:%zu", path, l, c, line, col);
}

static void test_marks(void **state)
{
    config c;
    load_ok(&c, R1 "    match:\n"
                   "      channel: [\"chat:*\", \"news:*\"]\n"
                   "      type: \"a.*\"\n"
                   "      where:\n"
                   "        data.severity: {\"$in\": [\"high\", \"critical\"]}\n"
                   "        $or:\n"
                   "          - {\"data.n\": 5}\n");
    const cfg_route *r = &c.routes[0];
    assert_int_equal(r->n_marks, 13);
    expect_mark(r, "match", 5, 7);
    expect_mark(r, "match.channel", 5, 16);
    expect_mark(r, "match.channel[0]", 5, 17);
    expect_mark(r, "match.channel[1]", 5, 27);
    expect_mark(r, "match.type", 6, 13);
    expect_mark(r, "match.where", 8, 9);
    expect_mark(r, "match.where.data.severity", 8, 24);
    expect_mark(r, "match.where.data.severity.$in", 8, 32);
    expect_mark(r, "match.where.data.severity.$in[1]", 8, 41);
    expect_mark(r, "match.where.$or", 10, 11);
    expect_mark(r, "match.where.$or[0]", 10, 13);
    expect_mark(r, "match.where.$or[0].data.n", 10, 24);
    /* Not recorded exactly: the longest recorded prefix at a boundary. */
    expect_mark(r, "match.where.data.severity.$in[1].x", 8, 41);
    expect_mark(r, "match.where.data.severity.$nin", 8, 24);
    expect_mark(r, "match.channel[7]", 5, 16);
    expect_mark(r, "match.typeX", 5, 7);
    expect_mark(r, "match.where.data", 8, 9);
    expect_mark(r, "other", 0, 0);
    expect_mark(r, "", 0, 0);
    config_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_example),   cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_webhook_errors), cmocka_unit_test(test_network_errors),
        cmocka_unit_test(test_route_errors),   cmocka_unit_test(test_match_depth),
        cmocka_unit_test(test_match_json),     cmocka_unit_test(test_marks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
