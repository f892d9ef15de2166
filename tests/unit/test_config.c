/* Unit tests for the YAML configuration loader: the documented full example
 * with every value checked, one table row per error class (line, column and
 * key in the message), hostile input, and allocation failure at every point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "util/mem.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* Reads a file next to the test sources (tests/unit/../rel); caller frees. */
static char *read_rel(const char *rel, size_t *len)
{
    char path[1024];
    const char *slash = strrchr(__FILE__, '/');
    int dir = slash ? (int)(slash - __FILE__) : 1;
    snprintf(path, sizeof(path), "%.*s/%s", dir, slash ? __FILE__ : ".", rel);
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

static int load(config *c, const char *yaml, char *err, size_t errlen)
{
    return config_load_string(c, yaml, strlen(yaml), err, errlen);
}

static void assert_released(const config *c)
{
    assert_null(c->listen_host);
    assert_null(c->tenants);
    assert_null(c->namespaces);
    assert_int_equal(c->n_tenants, 0);
    assert_int_equal(c->n_namespaces, 0);
}

/* The error must be "LINE:COL: message" with the given position (col 0 =
 * any) and the message must contain want. */
static void expect_error(const char *yaml, size_t len, int line, int col, const char *want)
{
    config c;
    char err[512] = "";
    int rc = config_load_string(&c, yaml, len, err, sizeof(err));
    if (rc != -1) fail_msg("accepted: %s", yaml);
    int l = 0, cc = 0, used = 0;
    if (sscanf(err, "%d:%d: %n", &l, &cc, &used) != 2 || used == 0) fail_msg("bad error '%s'", err);
    if (l != line || (col && cc != col))
        fail_msg("error '%s' at %d:%d, expected %d:%d for:\n%s", err, l, cc, line, col, yaml);
    if (!strstr(err, want)) fail_msg("error '%s' lacks '%s'", err, want);
    assert_released(&c);
}

/* ------------------------------------------------------------------------ */
/* The full example                                                          */

static void test_full_example(void **state)
{
    size_t len;
    char *yaml = read_rel("../configs/full.yaml", &len);
    config c;
    char err[512] = "";
    int rc = config_load_string(&c, yaml, len, err, sizeof(err));
    if (rc != 0) fail_msg("%s", err);

    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 9090);
    assert_string_equal(c.data_dir, "/var/lib/parley");
    assert_string_equal(c.web_root, "/usr/share/parley/web");
    assert_true(c.engine_max_db_bytes == 10737418240LL);
    assert_string_equal(c.admin_key, "adm_7f3c2a9e41d5b6");
    assert_string_equal(c.metrics_token, "mt_41d5b67f3c2a9e");
    assert_int_equal(c.ping_interval_ms, 20000);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.dedup_window_ms, 12 * 3600 * 1000LL);
    assert_false(c.dev_tokens);
    assert_false(c.single_tenant);
    assert_int_equal(c.n_allowed_origins, 2);
    assert_string_equal(c.allowed_origins[0], "https://app.example.com");
    assert_string_equal(c.allowed_origins[1], "https://*.example.com");

    assert_int_equal(c.limits.max_message_bytes, 32768);
    assert_int_equal(c.limits.max_frame_bytes, 524288);
    assert_int_equal(c.limits.max_channels_per_connection, 64);
    assert_int_equal(c.limits.outbound_queue_bytes, 2097152);
    assert_int_equal(c.limits.max_connections_per_ip, 500);
    assert_int_equal(c.limits.handshake_timeout_ms, 5000);
    assert_int_equal(c.limits.idle_timeout_ms, 600000);
    assert_int_equal(c.limits.max_body_bytes, 262144);
    assert_int_equal(c.limits.commands_per_second, 50);
    assert_int_equal(c.limits.connects_per_second, 2000);
    assert_int_equal(c.limits.connect_burst, 4000);
    assert_int_equal(c.limits.backlog_bytes, 33554432);
    assert_int_equal(c.limits.storage_queue_shed, 5000);
    assert_int_equal(c.limits.storage_queue_max, 20000);

    assert_int_equal(c.n_tenants, 2);
    const cfg_tenant *acme = config_tenant(&c, "acme");
    assert_ptr_equal(acme, &c.tenants[0]);
    assert_int_equal(acme->n_jwt_secrets, 2);
    assert_string_equal(acme->jwt_secrets[0], "acme-secret-2024-rotating-in");
    assert_string_equal(acme->jwt_secrets[1], "acme-secret-2023-rotating-out");
    assert_int_equal(acme->n_jwt_public_keys, 0);
    assert_int_equal(acme->n_api_keys, 2);
    assert_string_equal(acme->api_keys[0].key, "pk_acme_backend");
    assert_int_equal(acme->api_keys[0].n_scopes, 4);
    assert_string_equal(acme->api_keys[0].scopes[0], "publish");
    assert_string_equal(acme->api_keys[0].scopes[3], "presence");
    assert_string_equal(acme->api_keys[1].key, "pk_acme_admin");
    assert_int_equal(acme->api_keys[1].n_scopes, 1);
    assert_string_equal(acme->api_keys[1].scopes[0], "*");
    assert_int_equal(acme->max_connections, 20000);
    assert_int_equal(acme->max_channels, 5000);
    assert_int_equal(acme->publishes_per_second, 1000);
    assert_int_equal(acme->storage_bytes, 1073741824);

    const cfg_tenant *globex = config_tenant(&c, "globex");
    assert_ptr_equal(globex, &c.tenants[1]);
    assert_int_equal(globex->n_jwt_secrets, 0);
    assert_int_equal(globex->n_jwt_public_keys, 1);
    assert_non_null(strstr(globex->jwt_public_keys[0], "-----BEGIN PUBLIC KEY-----\nMFkw"));
    assert_int_equal(globex->n_api_keys, 1);
    assert_int_equal(globex->api_keys[0].n_scopes, 4);
    assert_string_equal(globex->api_keys[0].scopes[3], "trace");
    assert_int_equal(globex->max_connections, 0);
    assert_int_equal(globex->storage_bytes, 0);
    assert_null(config_tenant(&c, "default"));
    assert_null(config_tenant(&c, NULL));

    assert_int_equal(c.n_namespaces, 4);
    const cfg_namespace *ns = &c.namespaces[0];
    assert_string_equal(ns->name, "");
    assert_int_equal(ns->history_size, 100);
    assert_int_equal(ns->history_ttl_ms, 3600000);
    assert_true(ns->presence);
    assert_int_equal(ns->cls, PUB_STANDARD);
    ns = &c.namespaces[1];
    assert_string_equal(ns->name, "chat");
    assert_int_equal(ns->history_size, 1000);
    assert_int_equal(ns->history_ttl_ms, 86400000);
    assert_true(ns->presence);
    assert_true(ns->join_leave);
    assert_true(ns->read_cursors);
    assert_true(ns->client_publish);
    assert_false(ns->is_private);
    assert_int_equal(ns->cls, PUB_STANDARD);
    assert_int_equal(ns->max_attempts, 7);
    assert_int_equal(ns->ack_wait_ms, 5000);
    assert_int_equal(ns->retry_min_ms, 1000);
    assert_int_equal(ns->retry_max_ms, 300000);
    assert_int_equal(ns->publishes_per_second, 20);
    ns = &c.namespaces[2];
    assert_string_equal(ns->name, "typing");
    assert_int_equal(ns->cls, PUB_EPHEMERAL);
    assert_int_equal(ns->history_size, 0);
    assert_false(ns->presence);
    assert_true(ns->read_cursors); /* default kept */
    ns = &c.namespaces[3];
    assert_string_equal(ns->name, "inbox");
    assert_int_equal(ns->cls, PUB_GUARANTEED);
    assert_true(ns->is_private);
    assert_int_equal(ns->max_attempts, 10);
    assert_int_equal(ns->ack_wait_ms, 30000);
    assert_int_equal(ns->retry_min_ms, 2000);
    assert_int_equal(ns->retry_max_ms, 3600000);
    assert_int_equal(ns->history_ttl_ms, 7 * 86400000LL);
    assert_int_equal(ns->n_redact, 3);
    assert_string_equal(ns->redact[0].path, "data.card.number");
    assert_true(ns->redact[0].mask);
    assert_string_equal(ns->redact[1].path, "headers.authorization");
    assert_false(ns->redact[1].mask);
    assert_string_equal(ns->redact[2].path, "data.ssn");
    assert_false(ns->redact[2].mask);
    assert_int_equal(c.namespaces[1].n_redact, 0);
    assert_null(c.namespaces[1].redact);

    assert_int_equal(c.n_inbound, 2);
    const cfg_inbound *in = &c.inbound[0];
    assert_string_equal(in->id, "github");
    assert_string_equal(in->tenant, "acme");
    assert_int_equal(in->scheme, CFG_INBOUND_HMAC);
    assert_int_equal(in->n_secrets, 2);
    assert_string_equal(in->secrets[1], "gh-old-secret");
    assert_string_equal(in->header, "X-Hub-Signature-256");
    assert_string_equal(in->prefix, "sha256=");
    assert_string_equal(in->id_header, "X-GitHub-Delivery");
    assert_string_equal(in->channel, "chat:deploys");
    assert_string_equal(in->type, "github.{header:X-GitHub-Event}");
    in = &c.inbound[1];
    assert_string_equal(in->tenant, "globex");
    assert_int_equal(in->scheme, CFG_INBOUND_STRIPE);
    assert_string_equal(in->secrets[0], "whsec_stripe_example_secret");
    assert_null(in->id_header);
    assert_string_equal(in->type, "stripe");
    assert_int_equal(in->tolerance_ms, 300000);

    config_release(&c);
    assert_released(&c);
    config_release(&c); /* released twice is harmless */
    free(yaml);
}

/* The complete example in docs/configuration.md is the same text. */
static void test_docs_example_identical(void **state)
{
    size_t flen, dlen;
    char *full = read_rel("../configs/full.yaml", &flen);
    char *doc = read_rel("../../docs/configuration.md", &dlen);
    const char *mark = strstr(doc, "<!-- full.yaml -->");
    assert_non_null(mark);
    const char *start = strstr(mark, "```yaml\n");
    assert_non_null(start);
    start += strlen("```yaml\n");
    const char *end = strstr(start, "\n```");
    assert_non_null(end);
    end++;
    if ((size_t)(end - start) != flen || memcmp(start, full, flen))
        fail_msg("docs/configuration.md example differs from tests/configs/full.yaml");
    free(full);
    free(doc);
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                  */

static void check_defaults(const config *c)
{
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    assert_string_equal(c->data_dir, "./data");
    assert_null(c->admin_key);
    assert_null(c->metrics_token);
    assert_int_equal(c->ping_interval_ms, 25000);
    assert_int_equal(c->workers, 0);
    assert_int_equal(c->dedup_window_ms, 86400000);
    assert_false(c->dev_tokens);
    assert_true(c->single_tenant);
    assert_int_equal(c->limits.max_message_bytes, 65536);
    assert_int_equal(c->limits.max_frame_bytes, 1 << 20);
    assert_int_equal(c->limits.max_channels_per_connection, 128);
    assert_int_equal(c->limits.outbound_queue_bytes, 1 << 20);
    assert_int_equal(c->limits.max_connections_per_ip, 10000);
    assert_int_equal(c->limits.handshake_timeout_ms, 10000);
    assert_int_equal(c->limits.idle_timeout_ms, 0);
    assert_int_equal(c->limits.max_body_bytes, 1 << 20);
    assert_int_equal(c->limits.commands_per_second, 0);
    assert_int_equal(c->limits.connects_per_second, 0);
    assert_int_equal(c->limits.connect_burst, 0);
    assert_int_equal(c->limits.backlog_bytes, 8u << 20);
    assert_int_equal(c->limits.backlog_shed_bytes, 256u << 20);
    assert_int_equal(c->limits.storage_queue_shed, 10000);
    assert_int_equal(c->limits.storage_queue_max, 50000);
    assert_int_equal(c->n_allowed_origins, 2);
    assert_string_equal(c->allowed_origins[0], "http://localhost:*");
    assert_string_equal(c->allowed_origins[1], "http://127.0.0.1:*");
    assert_int_equal(c->n_tenants, 1);
    assert_string_equal(c->tenants[0].id, "default");
    assert_int_equal(c->tenants[0].n_jwt_secrets, 0);
    assert_int_equal(c->n_namespaces, 5);
    const char *names[] = {"", "chat", "news", "dm", "inbox"};
    for (size_t i = 0; i < 5; i++) {
        const cfg_namespace *ns = &c->namespaces[i];
        assert_string_equal(ns->name, names[i]);
        assert_int_equal(ns->history_size, 1000);
        assert_int_equal(ns->history_ttl_ms, 86400000);
        assert_true(ns->presence);
        assert_int_equal(ns->join_leave, i == 1);
        assert_true(ns->read_cursors);
        assert_int_equal(ns->client_publish, i != 2);
        assert_false(ns->is_private);
        assert_int_equal(ns->cls, i == 4 ? PUB_GUARANTEED : PUB_STANDARD);
        assert_int_equal(ns->max_attempts, 7);
        assert_int_equal(ns->ack_wait_ms, 5000);
        assert_int_equal(ns->retry_min_ms, 1000);
        assert_int_equal(ns->retry_max_ms, 300000);
        assert_int_equal(ns->publishes_per_second, 0);
    }
}

static void test_defaults(void **state)
{
    config c;
    assert_int_equal(config_defaults(&c), 0);
    check_defaults(&c);
    config_release(&c);
}

/* Inputs with no settings load as the defaults. */
static void test_empty_inputs_are_defaults(void **state)
{
    static const char *const inputs[] = {
        "",
        "\n\n",
        "# only a comment\n",
        "~\n",
        "---\n",
        "---\n...\n",
        "{}",
        "null",
        "tenants: []\n",
        "namespaces:\n",
        "limits:\n",
        "engine: ~\n",
        "engine: {type: sqlite}\n",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        config c;
        char err[256] = "";
        if (load(&c, inputs[i], err, sizeof(err)) != 0) fail_msg("'%s': %s", inputs[i], err);
        check_defaults(&c);
        config_release(&c);
    }
    config c;
    assert_int_equal(config_load_string(&c, NULL, 0, NULL, 0), 0);
    check_defaults(&c);
    config_release(&c);
}

/* ------------------------------------------------------------------------ */
/* Accepted variants                                                         */

static void test_variants(void **state)
{
    config c;
    char err[512] = "";
    /* Block and flow styles, IPv6 listen, the sqlite engine in block style. */
    const char *yaml = "listen: \"[::1]:443\"\n"
                       "engine:\n  type: sqlite\n  max_db_bytes: 4096\n"
                       "dev_tokens: yes\n"
                       "ping_interval: 500ms\n"
                       "dedup_window: \"0s\"\n"
                       "limits: {idle_timeout: 0, max_frame_bytes: 65536, connects_per_second: 1}\n"
                       "namespaces: [{name: \"\"}, {name: a.b-c_D9, private: on}]\n";
    if (load(&c, yaml, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 443);
    assert_true(c.engine_max_db_bytes == 4096);
    assert_true(c.dev_tokens);
    assert_int_equal(c.ping_interval_ms, 500);
    assert_int_equal(c.dedup_window_ms, 0);
    assert_int_equal(c.limits.idle_timeout_ms, 0);
    assert_int_equal(c.limits.max_frame_bytes, 65536);
    assert_int_equal(c.limits.connects_per_second, 1);
    assert_int_equal(c.limits.connect_burst, 0); /* one second's worth */
    assert_true(c.single_tenant);
    assert_int_equal(c.n_namespaces, 2);
    assert_true(c.namespaces[1].is_private);
    assert_int_equal(c.namespaces[1].slow_consumer, CFG_SLOW_DISCONNECT); /* the default */
    config_release(&c);

    /* Each slow-consumer policy by name. */
    yaml = "namespaces:\n  - {name: chat, slow_consumer: disconnect}\n"
           "  - {name: dash, slow_consumer: drop_oldest}\n"
           "  - {name: tick, slow_consumer: latest}\n";
    if (load(&c, yaml, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_int_equal(c.namespaces[0].slow_consumer, CFG_SLOW_DISCONNECT);
    assert_int_equal(c.namespaces[1].slow_consumer, CFG_SLOW_DROP_OLDEST);
    assert_int_equal(c.namespaces[2].slow_consumer, CFG_SLOW_LATEST);
    config_release(&c);

    /* A single jwt_secret string; a list of public keys. */
    size_t len;
    char *full = read_rel("../configs/full.yaml", &len);
    const char *pem_start = strstr(full, "-----BEGIN");
    const char *pem_end = strstr(full, "-----END PUBLIC KEY-----");
    assert_non_null(pem_start);
    assert_non_null(pem_end);
    char pem[512] = "", line[128];
    for (const char *p = pem_start; p <= pem_end;) {
        const char *nl = strchr(p, '\n');
        snprintf(line, sizeof(line), "        %.*s\n", (int)(nl - p), p);
        strcat(pem, line);
        for (p = nl + 1; *p == ' '; p++) {
        }
    }
    char doc[2048];
    snprintf(doc, sizeof(doc),
             "tenants:\n  - id: t1\n    jwt_secret: only-one\n"
             "  - id: t2\n    jwt_public_key:\n      - |\n%s      - |\n%s",
             pem, pem);
    if (load(&c, doc, err, sizeof(err)) != 0) fail_msg("%s\n%s", err, doc);
    assert_int_equal(c.tenants[0].n_jwt_secrets, 1);
    assert_string_equal(c.tenants[0].jwt_secrets[0], "only-one");
    assert_int_equal(c.tenants[1].n_jwt_public_keys, 2);
    assert_non_null(strstr(c.tenants[1].jwt_public_keys[1], "END PUBLIC KEY"));
    config_release(&c);
    free(full);
}

#define T1 "tenants:\n  - id: acme\n    jwt_secret: s\n"

/* allowed_origins: the development default without tenants, none with
 * tenants unless the file names some, an empty list, "*". */
static void test_allowed_origins(void **state)
{
    static const struct {
        const char *yaml;
        size_t n;
        const char *first;
    } rows[] = {
        {"workers: 2\n", 2, "http://localhost:*"},
        {T1, 0, NULL},
        {T1 "allowed_origins: [\"https://app.example.com\"]\n", 1, "https://app.example.com"},
        {"allowed_origins: [\"https://app.example.com\"]\n" T1, 1, "https://app.example.com"},
        {"allowed_origins: []\n", 0, NULL},
        {T1 "allowed_origins: []\n", 0, NULL},
        {"allowed_origins: [\"*\"]\n", 1, "*"},
        {"allowed_origins:\n  - \"http://localhost:*\"\n  - \"HTTPS://*.Example.COM:*\"\n"
         "  - \"http://[::1]:8080\"\n",
         3, "http://localhost:*"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        config c;
        char err[512] = "";
        if (load(&c, rows[i].yaml, err, sizeof(err)) != 0) fail_msg("%s: %s", rows[i].yaml, err);
        if (c.n_allowed_origins != rows[i].n)
            fail_msg("%s: %zu origins, want %zu", rows[i].yaml, c.n_allowed_origins, rows[i].n);
        if (rows[i].first) assert_string_equal(c.allowed_origins[0], rows[i].first);
        config_release(&c);
        assert_null(c.allowed_origins);
    }
}

/* ------------------------------------------------------------------------ */
/* Errors: one row per rule                                                  */

typedef struct err_case {
    const char *yaml;
    int line, col;
    const char *want;
} err_case;

static const err_case err_cases[] = {
    /* syntax */
    {"listen: [\n", 2, 1, "syntax error"},
    {"a: b\n c: d\n", 2, 3, "syntax error"},
    {"key: \"unterminated\n", 2, 1, "syntax error"},
    {"\t- x\n", 1, 1, "syntax error"},
    {"ok: 1\nbad: \xff\xfe\n", 2, 6, "invalid"},
    {"a: 1\n---\nb: 2\n", 2, 1, "only one YAML document"},
    {"a: &x [1]\nb: *x\n", 2, 4, "aliases"},
    /* not a mapping */
    {"hello\n", 1, 1, "must be a mapping"},
    {"- listen: x\n", 1, 1, "must be a mapping"},
    /* unknown keys, at every level */
    {"listen: \"1.2.3.4:80\"\ndata_dir: x\nlisten_port: 9\n", 3, 1, "unknown key 'listen_port'"},
    {"engine: {type: sqlite, path: x}\n", 1, 24, "unknown key 'path'"},
    {"limits:\n  max_frame_bytes: 100\n  max_msg_bytes: 5\n", 3, 3, "'max_msg_bytes'"},
    {"tenants:\n  - id: a\n    jwt_secrt: s\n", 3, 5, "unknown key 'jwt_secrt'"},
    {"tenants:\n  - id: a\n    jwt_secret: s\n    api_keys:\n      - {key: k, scope: [publish]}\n",
     5, 18, "unknown key 'scope'"},
    {"namespaces:\n  - name: chat\n    histroy_size: 5\n", 3, 5, "'histroy_size'"},
    {"\"li\\0sten\": x\n", 1, 1, "unknown key"},
    {"[a]: 1\n", 1, 1, "keys must be"},
    {"listen: \"1.2.3.4:80\"\nlisten: \"1.2.3.4:81\"\n", 2, 1, "duplicate key 'listen'"},
    /* wrong types */
    {"workers: \"4\"\n", 1, 10, "workers: expected an integer"},
    {"namespaces:\n  - name: a\n    history_size: lots\n", 3, 19, "history_size"},
    {"namespaces:\n  - name: a\n    presence: \"true\"\n", 3, 15,
     "presence: expected true or false"},
    {"namespaces:\n  - name: a\n    presence: 1\n", 3, 15, "presence"},
    {"dev_tokens: [true]\n", 1, 13, "dev_tokens"},
    {"data_dir: [a, b]\n", 1, 11, "data_dir: expected a string"},
    {"data_dir:\n", 1, 10, "data_dir: expected a string, got null"},
    {"admin_key: {a: 1}\n", 1, 12, "admin_key"},
    {"tenants: {id: a}\n", 1, 10, "tenants: expected a list"},
    {"limits: [1, 2]\n", 1, 9, "limits: expected a mapping"},
    {"limits: {max_frame_bytes: 1.5}\n", 1, 27, "max_frame_bytes"},
    {"data_dir: \"a\\0b\"\n", 1, 11, "NUL"},
    {"data_dir: \"\"\n", 1, 11, "data_dir: must not be empty"},
    /* durations */
    {"namespaces:\n  - name: a\n    history_ttl: 5 weeks\n", 3, 18,
     "history_ttl: invalid duration"},
    {"ping_interval: \"-5s\"\n", 1, 16, "ping_interval: invalid duration"},
    {"ping_interval: 0s\n", 1, 16, "ping_interval: must be at least"},
    {"limits: {handshake_timeout: 10x}\n", 1, 29, "handshake_timeout"},
    {"namespaces: [{name: a, ack_wait: [5s]}]\n", 1, 34, "ack_wait"},
    /* negative and out of range numbers */
    {"namespaces:\n  - name: a\n    history_size: -1\n", 3, 19,
     "history_size: must not be negative"},
    {"workers: -3\n", 1, 10, "must not be negative"},
    {"workers: 99999\n", 1, 10, "workers: must be between 0 and 1024"},
    {"namespaces: [{name: a, max_attempts: 0}]\n", 1, 38, "max_attempts: must be between"},
    {"namespaces: [{name: a, history_size: 99999999999999999999999}]\n", 1, 38, "history_size"},
    {"limits: {max_message_bytes: 0}\n", 1, 29, "max_message_bytes"},
    {"tenants: [{id: a, jwt_secret: s, max_connections: 4294967296}]\n", 1, 51, "max_connections"},
    {"engine: {max_db_bytes: -1}\n", 1, 24, "max_db_bytes: must not be negative"},
    {"limits:\n  connects_per_second: -5\n", 2, 24, "connects_per_second: must not be negative"},
    {"limits:\n  connects_per_second: 1000001\n", 2, 24,
     "connects_per_second: must be between 0 and 1000000"},
    {"limits:\n  connects_per_second: 99999999999999999999\n", 2, 24, "connects_per_second"},
    {"limits:\n  connects_per_second: 2.5\n", 2, 24, "connects_per_second: expected an integer"},
    {"limits:\n  connects_per_second: \"100\"\n", 2, 24,
     "connects_per_second: expected an integer"},
    {"limits: {connect_burst: -1}\n", 1, 25, "connect_burst: must not be negative"},
    {"limits: {connect_burst: 2000000, connects_per_second: 10}\n", 1, 25,
     "connect_burst: must be between 0 and 1000000"},
    {"limits: {backlog_bytes: 1024}\n", 1, 25, "backlog_bytes: must be between 65536 and"},
    {"limits: {storage_queue_max: 0}\n", 1, 29, "storage_queue_max: must be between 1 and"},
    {"limits: {storage_queue_shed: x}\n", 1, 30, "storage_queue_shed: expected an integer"},
    /* cross-field limits */
    {"limits:\n  backlog_bytes: 1048576\n  backlog_shed_bytes: 65536\n", 2, 18,
     "backlog_bytes (1048576) exceeds backlog_shed_bytes (65536)"},
    {"limits:\n  storage_queue_max: 100\n  storage_queue_shed: 200\n", 3, 23,
     "storage_queue_shed (200) exceeds storage_queue_max (100)"},
    {"limits:\n  max_frame_bytes: 1000\n  max_message_bytes: 2000\n", 3, 22,
     "max_message_bytes (2000) exceeds max_frame_bytes"},
    {"limits:\n  connect_burst: 50\n", 2, 18, "connect_burst (50) needs connects_per_second"},
    {"limits:\n  connects_per_second: 0\n  connect_burst: 50\n", 3, 18,
     "connect_burst (50) needs connects_per_second"},
    {"namespaces:\n  - name: a\n    retry_max: 1s\n    retry_min: 2s\n", 4, 16,
     "retry_min exceeds retry_max"},
    /* redact */
    {"namespaces:\n  - name: a\n    redact: data.x\n", 3, 13, "redact: expected a list"},
    {"namespaces:\n  - name: a\n    redact: [data..x]\n", 3, 14,
     "namespaces[0].redact[0]: bad path 'data..x': empty segment"},
    {"namespaces:\n  - name: a\n    redact:\n      - data.ok\n      - body.x\n", 5, 9,
     "redact[1]: bad path 'body.x': must start with data. or headers."},
    {"namespaces:\n  - name: a\n    redact: [data]\n", 3, 14, "must start with data."},
    {"namespaces:\n  - name: a\n    redact:\n      - {path: \"data.x.\", action: mask}\n", 4, 16,
     "redact[0].path: bad path 'data.x.': empty segment"},
    {"namespaces:\n  - name: a\n    redact:\n      - {path: data.x, action: hide}\n", 4, 32,
     "redact[0].action: unknown action 'hide' (remove or mask)"},
    {"namespaces:\n  - name: a\n    redact: [{action: mask}]\n", 3, 14, "missing key 'path'"},
    {"namespaces:\n  - name: a\n    redact: [{path: data.x, mask: true}]\n", 3, 29, "mask"},
    {"namespaces:\n  - name: a\n    redact: [[data.x]]\n", 3, 14,
     "expected a path or {path, action}, got a list"},
    {"namespaces:\n  - name: a\n    redact: [\"\"]\n", 3, 14, "must not be empty"},
    {"namespaces:\n  - name: a\n    redact: [\"data.a\\tb\"]\n", 3, 14, "control character"},
    /* class and engine */
    {"namespaces:\n  - name: chat\n    class: gold\n", 3, 12, "unknown class 'gold'"},
    {"namespaces:\n  - name: dash\n    slow_consumer: drop\n", 3, 20,
     "namespaces[0].slow_consumer: unknown slow_consumer 'drop' (expected one of disconnect, "
     "drop_oldest, latest)"},
    {"namespaces: [{name: a, slow_consumer: [latest]}]\n", 1, 39, "slow_consumer"},
    {"engine: {type: mysql}\n", 1, 16, "engine.type: unknown engine type 'mysql'"},
    {"engine:\n  shards: [\"h:1\"]\n", 2, 3, "engine.shards: not supported yet"},
    {"engine: {type: sqlite, address: \"h:1\"}\n", 1, 33,
     "engine.address: only with engine type redis (the engine is sqlite)"},
    {"engine: {prefix: \"a b\", type: redis}\n", 1, 18, "engine.prefix: 'a b' is not a key prefix"},
    {"engine: {type: redis, address: \"h\"}\n", 1, 32, "engine.address: 'h' is not HOST:PORT"},
    {"engine: {type: redis, notify_maxlen: 5}\n", 1, 38, "engine.notify_maxlen"},
    /* listen */
    {"listen: localhost\n", 1, 9, "listen: 'localhost' is not HOST:PORT"},
    {"listen: \"h:70000\"\n", 1, 9, "listen"},
    {"listen: \"h:0\"\n", 1, 9, "listen"},
    {"listen: \"::1:80\"\n", 1, 9, "listen"},
    {"listen: \":80\"\n", 1, 9, "listen"},
    {"listen: \"h:8a\"\n", 1, 9, "listen"},
    {"listen: 8080\n", 1, 9, "listen"},
    /* duplicates */
    {"tenants:\n  - id: a\n    jwt_secret: s\n  - id: a\n    jwt_secret: s\n", 4, 9,
     "tenants[1].id: duplicate tenant id 'a'"},
    {"namespaces:\n  - name: chat\n  - name: news\n  - name: chat\n", 4, 11,
     "namespaces[2].name: duplicate namespace name 'chat'"},
    {"namespaces:\n  - name: \"\"\n  - {name: \"\"}\n", 3, 12, "duplicate namespace name ''"},
    {"tenants:\n  - {id: a, jwt_secret: s, api_keys: [{key: k1, scopes: [info]}]}\n"
     "  - {id: b, jwt_secret: s, api_keys: [{key: k1, scopes: [info]}]}\n",
     3, 45, "duplicate API key"},
    {"tenants:\n  - {id: a, jwt_secret: s, api_keys: [{key: k, scopes: [info]}, {key: k, "
     "scopes: [dlq]}]}\n",
     2, 71, "duplicate API key"},
    /* names */
    {"namespaces:\n  - name: \"chat room\"\n", 2, 11, "namespace name 'chat room'"},
    {"namespaces:\n  - name: \"a:b\"\n", 2, 11, "namespaces[0].name"},
    {"namespaces:\n  - history_size: 5\n", 2, 5, "missing key 'name'"},
    {"tenants: [{id: \"ac/me\", jwt_secret: s}]\n", 1, 16, "tenant id 'ac/me'"},
    /* scopes */
    {"tenants:\n  - id: a\n    jwt_secret: s\n    api_keys:\n      - key: k\n        scopes: "
     "[publish, admin]\n",
     6, 27, "unknown scope 'admin'"},
    {"tenants: [{id: a, jwt_secret: s, api_keys: [{key: k, scopes: []}]}]\n", 1, 62,
     "at least one scope"},
    {"tenants: [{id: a, jwt_secret: s, api_keys: [{key: k, scopes: publish}]}]\n", 1, 62, "scopes"},
    {"tenants: [{id: a, jwt_secret: s, api_keys: [{scopes: [info]}]}]\n", 1, 45,
     "missing key 'key'"},
    {"tenants: [{id: a, jwt_secret: s, api_keys: [{key: k}]}]\n", 1, 45, "missing key 'scopes'"},
    /* tenant secrets */
    {"tenants:\n  - id: a\n    max_channels: 5\n", 2, 5, "needs a jwt_secret or a jwt_public_key"},
    {"tenants:\n  - id: a\n    jwt_secret: []\n", 2, 5, "needs a jwt_secret"},
    {"tenants:\n  - id: a\n    jwt_secret: [s, \"\"]\n", 3, 21, "jwt_secret[1]: must not be empty"},
    {"tenants:\n  - id: a\n    jwt_public_key: \"not a key\"\n", 3, 21, "not a PEM public key"},
    {"tenants:\n  - jwt_secret: s\n", 2, 5, "missing key 'id'"},
    /* allowed_origins */
    {"allowed_origins: \"https://a.example\"\n", 1, 18, "allowed_origins: expected a list"},
    {"allowed_origins:\n  - \"https://a.example\"\n  - \"https://b.example/\"\n", 3, 5,
     "allowed_origins[1]: origin 'https://b.example/' must not end with '/'"},
    {"allowed_origins: [\"app.example.com\"]\n", 1, 19, "is not an origin like"},
    {"allowed_origins: [\"https://app.*.example.com\"]\n", 1, 19, "is not an origin"},
    {"allowed_origins: [\"http://localhost:99999\"]\n", 1, 19, "is not an origin"},
    {"allowed_origins: [\"null\"]\n", 1, 19, "'null'"},
    {"allowed_origins: [\"\"]\n", 1, 19, "allowed_origins[0]: must not be empty"},
    {"allowed_origins: [[\"https://a.example\"]]\n", 1, 19, "expected a string"},
    {"allowed_origins: [~]\n", 1, 19, "got null"},
    /* keys of features not built: refused at the key, whatever the value */
    {"engine:\n  max_db_bytes: 5\n  shards: [\"h:1\"]\n", 3, 3, "engine.shards: not supported yet"},
    {"engine:\n  type: redis\n  sentinel: {master: m}\n", 3, 13,
     "engine.sentinel: missing key 'addresses'"},
    {"engine: {type: redis, sentinel: {addresses: [\"x\"], master: m}}\n", 1, 46,
     "engine.sentinel.addresses[0]: 'x' is not HOST:PORT"},
    {"engine: {type: redis, sentinel: {addresses: [\"h:1\"]}}\n", 1, 33,
     "engine.sentinel: missing key 'master'"},
    {"engine: {type: redis, min_replicas_acked: 17}\n", 1, 43, "engine.min_replicas_acked"},
    {"engine: {min_replicas_acked: 1}\n", 1, 30,
     "engine.min_replicas_acked: only with engine type redis"},
    {"tenants:\n  - {id: a, jwt_secret: s, api_keys: [{key: k, scopes: [webhook]}]}\n", 2, 57,
     "unknown scope 'webhook'"},
};

/* ------------------------------------------------------------------------ */
/* inbound                                                                   */

#define NS_IN "namespaces:\n  - {name: hooks}\n  - {name: fast, class: ephemeral}\n"
#define SW "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static void test_inbound(void **state)
{
    (void)state;
    config c;
    char err[512] = "";
    /* Single tenant: tenant defaults; per-scheme defaults. */
    const char *good =
        NS_IN "inbound:\n"
              "  - {id: sw, scheme: standard-webhooks, secret: [" SW ", "
              "\"whsec_YWJj\"], channel: \"hooks:a\"}\n"
              "  - {id: gh, scheme: hmac-sha256, secret: s, header: X-Hub-Signature-256,"
              " id_header: X-GitHub-Delivery, channel: \"hooks:gh\","
              " type: \"github.{header:X-GitHub-Event}\"}\n"
              "  - {id: st, scheme: stripe, secret: whsec_x, channel: \"hooks:st\","
              " tolerance: 10m, tenant: default}\n";
    if (load(&c, good, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_int_equal(c.n_inbound, 3);
    assert_string_equal(c.inbound[0].tenant, "default");
    assert_int_equal(c.inbound[0].scheme, CFG_INBOUND_STANDARD);
    assert_int_equal(c.inbound[0].n_secrets, 2);
    assert_string_equal(c.inbound[0].id_header, "webhook-id");
    assert_int_equal(c.inbound[0].tolerance_ms, 300000);
    assert_null(c.inbound[0].type);
    assert_int_equal(c.inbound[1].scheme, CFG_INBOUND_HMAC);
    assert_string_equal(c.inbound[1].prefix, "sha256=");
    assert_string_equal(c.inbound[1].header, "X-Hub-Signature-256");
    assert_int_equal(c.inbound[1].tolerance_ms, 0);
    assert_string_equal(c.inbound[1].type, "github.{header:X-GitHub-Event}");
    assert_int_equal(c.inbound[2].scheme, CFG_INBOUND_STRIPE);
    assert_null(c.inbound[2].id_header);
    assert_null(c.inbound[2].prefix);
    assert_int_equal(c.inbound[2].tolerance_ms, 600000);
    assert_ptr_equal(config_inbound(&c, "gh", 2), &c.inbound[1]);
    assert_null(config_inbound(&c, "g", 1));
    assert_string_equal(config_inbound_scheme_name(CFG_INBOUND_STRIPE), "stripe");
    config_release(&c);
    /* An empty prefix is allowed; an empty list is no sources. */
    if (load(&c,
             NS_IN "inbound:\n  - {id: h, scheme: hmac-sha256, secret: s, header: X-Sig,"
                   " prefix: \"\", channel: \"hooks:x\"}\n",
             err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c.inbound[0].prefix, "");
    config_release(&c);
    if (load(&c, "inbound: []\n", err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_int_equal(c.n_inbound, 0);
    config_release(&c);
}

static void test_inbound_errors(void **state)
{
    (void)state;
    static const err_case rows[] = {
        {NS_IN "inbound:\n  - {id: a, scheme: sha1, secret: s, channel: \"hooks:a\"}\n", 5, 21,
         "inbound[0].scheme: unknown scheme 'sha1'"},
        {NS_IN "inbound:\n  - {id: a, scheme: stripe, channel: \"hooks:a\"}\n", 5, 5,
         "inbound[0]: missing key 'secret'"},
        {NS_IN "inbound:\n  - {id: a, scheme: stripe, secret: [], channel: \"hooks:a\"}\n", 5, 0,
         "must list at least one secret"},
        {NS_IN "inbound:\n  - {id: a, scheme: standard-webhooks, secret: abc, channel: "
               "\"hooks:a\"}\n",
         5, 0, "starts with whsec_"},
        {NS_IN "inbound:\n  - id: a\n    scheme: standard-webhooks\n    secret: [" SW
               ", \"whsec_a*b=\"]\n    channel: \"hooks:a\"\n",
         7, 0, "inbound[0]: standard-webhooks: the part after the prefix is not base64"},
        {NS_IN "inbound:\n  - {id: a, scheme: stripe, secret: s, channel: \"hooks:a\"}\n"
               "  - {id: a, scheme: stripe, secret: s, channel: \"hooks:b\"}\n",
         6, 0, "duplicate inbound source id 'a'"},
        {NS_IN "inbound:\n  - {id: a, tenant: nope, scheme: stripe, secret: s, channel: "
               "\"hooks:a\"}\n",
         5, 0, "unknown tenant 'nope'"},
        {T1 NS_IN "inbound:\n  - {id: a, scheme: stripe, secret: s, channel: \"hooks:a\"}\n", 8, 5,
         "missing key 'tenant' (required with tenants)"},
        {NS_IN "inbound:\n  - {id: a, scheme: stripe, secret: s, channel: \"nons:a\"}\n", 5, 0,
         "channel 'nons:a' is in no configured namespace"},
        {NS_IN "inbound:\n  - {id: a, scheme: stripe, secret: s, channel: \"fast:a\"}\n", 5, 0,
         "ephemeral"},
        {NS_IN "inbound:\n  - {id: a, scheme: stripe, secret: s, channel: \"hooks:a b\"}\n", 5, 0,
         "invalid channel name"},
        {NS_IN "inbound:\n  - {id: a, scheme: stripe, secret: s, channel: \"hooks:a\", type: "
               "\"x.{body:type}\"}\n",
         5, 0, "type: unknown placeholder"},
        {NS_IN "inbound:\n  - {id: a, scheme: stripe, secret: s, channel: \"hooks:a\", type: "
               "\"x.{header:}\"}\n",
         5, 0, "needs a header name"},
        {NS_IN "inbound:\n  - {id: a, scheme: hmac-sha256, secret: s, channel: \"hooks:a\"}\n", 5,
         0, "hmac-sha256 needs 'header'"},
        {NS_IN "inbound:\n  - {id: a, scheme: stripe, secret: s, header: X, channel: "
               "\"hooks:a\"}\n",
         5, 0, "'header' is for hmac-sha256 only"},
        {NS_IN "inbound:\n  - {id: a, scheme: hmac-sha256, header: X, secret: s, tolerance: 1m, "
               "channel: \"hooks:a\"}\n",
         5, 0, "hmac-sha256 signs no timestamp"},
        {NS_IN "inbound:\n  - {id: a, scheme: standard-webhooks, secret: " SW
               ", id_header: X, channel: \"hooks:a\"}\n",
         5, 0, "standard-webhooks signs webhook-id"},
        {"dedup_window: 9m\n" NS_IN
         "inbound:\n  - {id: a, scheme: stripe, secret: s, channel: \"hooks:a\"}\n",
         6, 0, "tolerance (300000ms) is more than half of dedup_window (540000ms)"},
        {NS_IN "inbound:\n  - {id: \"a/b\", scheme: stripe, secret: s, channel: \"hooks:a\"}\n", 5,
         0, "may only contain"},
        {NS_IN "inbound:\n  - {id: a, scheme: stripe, secret: s, channel: \"hooks:a\", color: x}\n",
         5, 0, "unknown key 'color'"},
        {"inbound: {id: a}\n", 1, 10, "inbound: expected a list"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        expect_error(rows[i].yaml, strlen(rows[i].yaml), rows[i].line, rows[i].col, rows[i].want);
}

static void test_errors(void **state)
{
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
        const err_case *e = &err_cases[i];
        expect_error(e->yaml, strlen(e->yaml), e->line, e->col, e->want);
    }
}

/* Keys of features Parley does not have are refused, never ignored: the
 * whole message for each, position included. The sqlite engine stays. */
static void test_unsupported_keys(void **state)
{
    static const struct {
        const char *yaml, *msg;
    } rows[] = {
        {"\nengine:\n  shards: [a]\n", "3:3: engine.shards: not supported yet"},
        {"engine: {type: redis, shards: []}\n", "1:23: engine.shards: not supported yet"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        config c;
        char err[256] = "";
        assert_int_equal(load(&c, rows[i].yaml, err, sizeof(err)), -1);
        assert_string_equal(err, rows[i].msg);
        assert_released(&c);
    }
    static const char *const sqlite[] = {
        "engine: {type: sqlite}\n",
        "engine:\n  type: sqlite\n  max_db_bytes: 1048576\n",
        "engine: {}\n",
    };
    for (size_t i = 0; i < sizeof(sqlite) / sizeof(sqlite[0]); i++) {
        config c;
        char err[256] = "";
        if (load(&c, sqlite[i], err, sizeof(err)) != 0) fail_msg("'%s': %s", sqlite[i], err);
        assert_int_equal(c.engine_type, CFG_ENGINE_SQLITE);
        config_release(&c);
    }
    /* The redis engine: every key lands, defaults fill the rest. */
    config c;
    char err[256] = "";
    assert_int_equal(load(&c,
                          "engine: {type: redis, address: \"10.1.2.3:7000\", password: pw, db: 3, "
                          "prefix: prod, notify_maxlen: 5000}\n",
                          err, sizeof(err)),
                     0);
    assert_int_equal(c.engine_type, CFG_ENGINE_REDIS);
    assert_string_equal(c.redis.host, "10.1.2.3");
    assert_int_equal(c.redis.port, 7000);
    assert_string_equal(c.redis.password, "pw");
    assert_int_equal(c.redis.db, 3);
    assert_string_equal(c.redis.prefix, "prod");
    assert_int_equal(c.redis.notify_maxlen, 5000);
    config_release(&c);
    assert_int_equal(load(&c, "engine: {type: redis}\n", err, sizeof(err)), 0);
    assert_string_equal(c.redis.host, "127.0.0.1");
    assert_int_equal(c.redis.port, 6379);
    assert_null(c.redis.password);
    assert_string_equal(c.redis.prefix, "parley");
    assert_int_equal(c.redis.notify_maxlen, 100000);
    config_release(&c);
}

/* Message formatting survives a tiny or absent error buffer. */
static void test_error_buffer(void **state)
{
    config c;
    char err[8];
    assert_int_equal(load(&c, "nope: 1\n", err, sizeof(err)), -1);
    assert_string_equal(err, "1:1: un");
    assert_int_equal(load(&c, "nope: 1\n", NULL, 0), -1);
    /* Hostile text in messages is cut short and made printable. */
    char big[600];
    snprintf(big, sizeof(big), "\"k\\x01%0400d\": 1\n", 0);
    char msg[512];
    assert_int_equal(load(&c, big, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "unknown key 'k?"));
    assert_true(strlen(msg) < 100);
}

/* ------------------------------------------------------------------------ */
/* Hostile input                                                             */

static void test_billion_laughs(void **state)
{
    const char *yaml = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                       "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                       "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                       "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                       "tenants: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n";
    expect_error(yaml, strlen(yaml), 2, 8, "aliases");
}

static void test_deep_nesting(void **state)
{
    size_t n = 200000;
    char *yaml = malloc(2 * n + 16);
    assert_non_null(yaml);
    strcpy(yaml, "tenants: ");
    memset(yaml + 9, '[', n);
    yaml[9 + n] = '\0';
    expect_error(yaml, strlen(yaml), 1, 0, "nesting too deep");
    /* Block mappings nested deeper than any key table. */
    size_t len = 0;
    for (int d = 0; d < 100; d++)
        len += (size_t)sprintf(yaml + len, "%*sk:\n", 2 * d, "");
    expect_error(yaml, len, 65, 0, "nesting too deep");
    free(yaml);
}

static void test_oversized(void **state)
{
    size_t n = (16u << 20) + 1;
    char *yaml = malloc(n);
    assert_non_null(yaml);
    memset(yaml, '#', n);
    expect_error(yaml, n, 1, 1, "larger than");
    free(yaml);

    /* Many list items: refused beyond the item budget, quickly. */
    size_t items = 10001, cap = items * 16 + 32, len = 0;
    yaml = malloc(cap);
    assert_non_null(yaml);
    len += (size_t)sprintf(yaml, "namespaces:\n");
    for (size_t i = 0; i < items; i++)
        len += (size_t)sprintf(yaml + len, "- name: n%zu\n", i);
    expect_error(yaml, len, 2, 1, "too many list items");
    free(yaml);
}

static uint32_t rng(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Random bytes and random edits of the full example never crash, and every
 * failure is a positioned message. ASan/valgrind check for leaks. */
static void test_garbage_and_mutations(void **state)
{
    size_t flen;
    char *full = read_rel("../configs/full.yaml", &flen);
    char *buf = malloc(flen + 64);
    assert_non_null(buf);
    uint32_t seed = 0x9e3779b9u;
    int accepted = 0;
    for (int iter = 0; iter < 3000; iter++) {
        size_t len;
        if (iter < 300) {
            len = rng(&seed) % 200;
            for (size_t i = 0; i < len; i++)
                buf[i] = (char)rng(&seed);
        } else {
            memcpy(buf, full, flen);
            len = flen;
            int edits = 1 + (int)(rng(&seed) % 4);
            for (int e = 0; e < edits; e++) {
                static const char pick[] = "\n :-[]{}&*!|>\"'#,?0a\t\\";
                buf[rng(&seed) % len] = pick[rng(&seed) % (sizeof(pick) - 1)];
            }
        }
        config c;
        char err[512] = "";
        int rc = config_load_string(&c, buf, len, err, sizeof(err));
        if (rc == 0) {
            accepted++;
            config_release(&c);
            continue;
        }
        assert_int_equal(rc, -1);
        int l, col;
        if (sscanf(err, "%d:%d: ", &l, &col) != 2 || l < 1 || col < 1) fail_msg("bad '%s'", err);
        assert_released(&c);
    }
    assert_true(accepted > 0); /* some edits land in comments or strings */
    free(buf);
    free(full);
}

/* ------------------------------------------------------------------------ */
/* Allocation failure                                                        */

static void test_alloc_failure(void **state)
{
    size_t flen;
    char *full = read_rel("../configs/full.yaml", &flen);
    int failures = 0;
    for (long n = 0;; n++) {
        config c;
        char err[512] = "";
        pl_mem_fail_after(n);
        int rc = config_load_string(&c, full, flen, err, sizeof(err));
        pl_mem_fail_after(-1);
        if (rc == 0) {
            config_release(&c);
            break;
        }
        assert_int_equal(rc, -1);
        if (!strstr(err, "out of memory")) fail_msg("n=%ld: %s", n, err);
        assert_released(&c);
        failures++;
        assert_true(n < 100000);
    }
    assert_true(failures > 40); /* every allocation of the example was hit */

    for (long n = 0; n < 20; n++) {
        config c;
        pl_mem_fail_after(n);
        int rc = config_defaults(&c);
        pl_mem_fail_after(-1);
        if (rc == 0) {
            config_release(&c);
            break;
        }
        assert_released(&c);
    }
    free(full);
}

/* ------------------------------------------------------------------------ */
/* Files and lookups                                                         */

static void test_load_file(void **state)
{
    config c;
    char err[1024];
    assert_int_equal(config_load_file(&c, "/nonexistent/parley.yaml", err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/parley.yaml: No such file or directory");
    assert_released(&c);

    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *bad = "listen: \"1.2.3.4:80\"\nnamespaces:\n  - name: x\n    class: gold\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    assert_int_equal(config_load_file(&c, path, err, sizeof(err)), -1);
    char want[256];
    snprintf(want, sizeof(want), "%s:4:12: namespaces[0].class: unknown class 'gold'", path);
    assert_non_null(strstr(err, want));
    assert_released(&c);
    unlink(path);

    size_t len;
    char *full = read_rel("../configs/full.yaml", &len);
    free(full);
    char fpath[1024];
    const char *slash = strrchr(__FILE__, '/');
    snprintf(fpath, sizeof(fpath), "%.*s/../configs/full.yaml", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".");
    if (config_load_file(&c, fpath, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_int_equal(c.n_tenants, 2);
    config_release(&c);
}

/* redact: 64 entries accepted, 65 refused at the list; null and [] are none;
 * a later namespace's list is its own. */
static void test_redact_lists(void **state)
{
    config c;
    char err[512] = "", yaml[4096];
    size_t len = (size_t)sprintf(yaml, "namespaces:\n  - name: a\n    redact:\n");
    for (int i = 0; i < 64; i++)
        len += (size_t)sprintf(yaml + len, "      - data.k%d\n", i);
    if (load(&c, yaml, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_int_equal(c.namespaces[0].n_redact, 64);
    assert_string_equal(c.namespaces[0].redact[63].path, "data.k63");
    config_release(&c);
    sprintf(yaml + len, "      - data.k64\n");
    expect_error(yaml, strlen(yaml), 4, 7, "redact: 65 entries; at most 64");

    const char *ok = "namespaces:\n  - {name: a, redact: ~}\n  - {name: b, redact: []}\n"
                     "  - {name: c, redact: [{path: \"headers.*\"}, \"data.*.x.0\"]}\n";
    if (load(&c, ok, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_int_equal(c.namespaces[0].n_redact, 0);
    assert_int_equal(c.namespaces[1].n_redact, 0);
    assert_int_equal(c.namespaces[2].n_redact, 2);
    assert_false(c.namespaces[2].redact[0].mask); /* action defaults to remove */
    assert_string_equal(c.namespaces[2].redact[1].path, "data.*.x.0");
    config_release(&c);
}

static void test_namespace_lookup(void **state)
{
    config c;
    assert_int_equal(config_defaults(&c), 0);
    const cfg_namespace *ns = config_namespace(&c, "chat:room", 9);
    assert_non_null(ns);
    assert_string_equal(ns->name, "chat");
    ns = config_namespace(&c, "room", 4);
    assert_non_null(ns);
    assert_string_equal(ns->name, "");
    assert_null(config_namespace(&c, "nope:x", 6));
    ns = config_namespace(&c, "inbox:#alice,bob", 16);
    assert_non_null(ns);
    assert_string_equal(ns->name, "inbox");
    /* Only len bytes count: "chat" without its ':' is the default namespace. */
    ns = config_namespace(&c, "chat:room", 4);
    assert_string_equal(ns->name, "");
    ns = config_namespace(&c, ":x", 2); /* empty prefix = default namespace */
    assert_string_equal(ns->name, "");
    ns = config_namespace(&c, "cha:x", 5);
    assert_null(ns);
    assert_non_null(config_tenant(&c, "default"));
    assert_null(config_tenant(&c, "acme"));
    config_release(&c);

    /* A file without a "" namespace has no default namespace. */
    char err[256];
    assert_int_equal(load(&c, "namespaces: [{name: chat}]\n", err, sizeof(err)), 0);
    assert_null(config_namespace(&c, "room", 4));
    assert_non_null(config_namespace(&c, "chat:x", 6));
    config_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_docs_example_identical),
        cmocka_unit_test(test_allowed_origins),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_empty_inputs_are_defaults),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_inbound),
        cmocka_unit_test(test_inbound_errors),
        cmocka_unit_test(test_unsupported_keys),
        cmocka_unit_test(test_error_buffer),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_garbage_and_mutations),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_redact_lists),
        cmocka_unit_test(test_namespace_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
