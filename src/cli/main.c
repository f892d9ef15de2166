/* `parley` entry point: one binary for the server and its command-line
 * tools. Subcommands are rows of one table; `parley help` lists them. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "cli/bench.h"
#include "net/server.h"
#include "obs/audit.h"
#include "obs/log.h"
#include "util/clock.h"
#include "config/config.h"
#include "util/mem.h"
#include "util/sbuf.h"

static int load_config(config *cfg, const char *path)
{
    char err[512];
    if (!path) return config_defaults(cfg) ? 1 : 0;
    if (config_load_file(cfg, path, err, sizeof(err))) {
        fprintf(stderr, "parley: %s\n", err);
        return 1;
    }
    return 0;
}

static int split_listen(config *cfg, const char *hp)
{
    const char *colon = strrchr(hp, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || *end || port <= 0 || port > 65535) {
        fprintf(stderr, "parley: --listen wants HOST:PORT, got %s\n", hp);
        return 1;
    }
    pl_free(cfg->listen_host);
    cfg->listen_host = pl_strndup(hp, (size_t)(colon - hp));
    cfg->listen_port = (int)port;
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    const char *cfgpath = NULL, *listen = NULL, *data = NULL;
    int workers = 0;
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"listen", required_argument, 0, 'l'},
                                         {"data", required_argument, 0, 'd'},
                                         {"workers", required_argument, 0, 'w'},
                                         {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "c:l:d:w:", opts, NULL)) != -1;) {
        if (o == 'c')
            cfgpath = optarg;
        else if (o == 'l')
            listen = optarg;
        else if (o == 'd')
            data = optarg;
        else if (o == 'w')
            workers = atoi(optarg);
        else
            return 2;
    }
    config cfg;
    if (load_config(&cfg, cfgpath)) return 1;
    if (listen && split_listen(&cfg, listen)) {
        config_release(&cfg);
        return 1;
    }
    if (data) {
        pl_free(cfg.data_dir);
        cfg.data_dir = pl_strdup(data);
    }
    if (workers > 0) cfg.workers = workers;
    int single = cfg.single_tenant;
    char host[256];
    snprintf(host, sizeof(host), "%s:%d", cfg.listen_host, cfg.listen_port);
    char err[512] = "";
    server *srv = server_new(&cfg, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "parley: %s\n", err);
        return 1;
    }
    if (single) {
        char secret_err[256];
        char *secret = server_dev_secret(data ? data : "./data", secret_err, sizeof(secret_err));
        if (!cfgpath && secret) {
            fprintf(stderr,
                    "parley: single-tenant development mode on ws://%s/ws\n"
                    "parley: development secret: %s\n"
                    "parley: get a token with: build/parley token --user alice%s%s\n",
                    host, secret, data ? " --data " : "", data ? data : "");
        }
        pl_free(secret);
    }
    int rc = server_run(srv);
    server_free(srv);
    return rc;
}

static int cmd_token(int argc, char **argv)
{
    const char *user = NULL, *tenant = NULL, *secret = NULL, *ttl = "1h", *data = "./data";
    const char *channel = NULL, *cfgpath = NULL;
    int data_default = 1;
    static const struct option opts[] = {
        {"user", required_argument, 0, 'u'},   {"tenant", required_argument, 0, 't'},
        {"secret", required_argument, 0, 's'}, {"ttl", required_argument, 0, 'x'},
        {"data", required_argument, 0, 'd'},   {"channel", required_argument, 0, 'C'},
        {"config", required_argument, 0, 'c'}, {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "u:t:s:x:d:C:c:", opts, NULL)) != -1;) {
        switch (o) {
        case 'u':
            user = optarg;
            break;
        case 't':
            tenant = optarg;
            break;
        case 's':
            secret = optarg;
            break;
        case 'x':
            ttl = optarg;
            break;
        case 'd':
            data = optarg;
            data_default = 0;
            break;
        case 'C':
            channel = optarg;
            break;
        case 'c':
            cfgpath = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!user) {
        fprintf(stderr, "usage: parley token --user U [--tenant T] [--ttl 1h] [--secret S | "
                        "--config FILE | --data DIR] [--channel C]\n");
        return 2;
    }
    int64_t ttl_ms = clock_parse_duration(ttl);
    if (ttl_ms < 0) {
        fprintf(stderr, "parley: invalid --ttl %s\n", ttl);
        return 2;
    }
    char *owned = NULL;
    config cfg = {0};
    int have_cfg = 0;
    if (!secret && cfgpath) {
        if (load_config(&cfg, cfgpath)) return 1;
        have_cfg = 1;
        const cfg_tenant *t =
            tenant ? config_tenant(&cfg, tenant) : (cfg.n_tenants ? &cfg.tenants[0] : NULL);
        if (t && t->n_jwt_secrets) {
            secret = t->jwt_secrets[0];
            if (!tenant) tenant = t->id;
        }
        if (cfg.single_tenant && data_default) data = cfg.data_dir;
    }
    if (!secret) {
        char err[256];
        owned = server_dev_secret(data, err, sizeof(err));
        if (!owned) {
            fprintf(stderr, "parley: %s\n", err);
            return 1;
        }
        secret = owned;
    }
    sbuf claims;
    sbuf_init(&claims);
    sbuf_puts(&claims, "{\"sub\":");
    sbuf_json_str(&claims, user, strlen(user));
    if (tenant) {
        sbuf_puts(&claims, ",\"tenant\":");
        sbuf_json_str(&claims, tenant, strlen(tenant));
    }
    if (channel) {
        sbuf_puts(&claims, ",\"channel\":");
        sbuf_json_str(&claims, channel, strlen(channel));
    }
    int64_t now = clock_wall_ms() / 1000;
    sbuf_printf(&claims, ",\"iat\":%lld,\"exp\":%lld}", (long long)now,
                (long long)(now + ttl_ms / 1000));
    char *tok = jwt_sign_hs256(secret, strlen(secret), claims.data, claims.len);
    sbuf_release(&claims);
    if (tok) printf("%s\n", tok);
    pl_free(tok);
    pl_free(owned);
    if (have_cfg) config_release(&cfg);
    return tok ? 0 : 1;
}

static int cmd_check_config(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: parley check-config FILE\n");
        return 2;
    }
    config cfg;
    char err[512];
    if (config_load_file(&cfg, argv[1], err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%s: ok (%zu tenants, %zu namespaces)\n", argv[1], cfg.n_tenants, cfg.n_namespaces);
    config_release(&cfg);
    return 0;
}

static int cmd_audit(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "verify")) {
        fprintf(stderr, "usage: parley audit verify FILE\n");
        return 2;
    }
    return audit_verify_main(argc - 1, argv + 1);
}

/* POSTs body to URL/api/v1/METHOD with the key; returns the reply text
 * (pl_malloc'd) or NULL. libcurl, blocking: this is a command-line tool. */
static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    sbuf_append(ud, p, size * n);
    return size * n;
}

static char *api_call(const char *url, const char *key, const char *method, const char *body,
                      long *status)
{
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    char full[1024], auth[600];
    snprintf(full, sizeof(full), "%s/api/v1/%s", url, method);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    sbuf out;
    sbuf_init(&out);
    curl_easy_setopt(h, CURLOPT_URL, full);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    char *text = rc == CURLE_OK && !out.oom ? pl_strndup(out.data ? out.data : "", out.len) : NULL;
    if (rc != CURLE_OK) fprintf(stderr, "parley: %s: %s\n", full, curl_easy_strerror(rc));
    sbuf_release(&out);
    return text;
}

/* `parley trace ID`: what happened to one pub, readably. */
static int cmd_trace(int argc, char **argv)
{
    const char *url = "http://127.0.0.1:8080", *key = getenv("PARLEY_API_KEY");
    static const struct option opts[] = {
        {"url", required_argument, 0, 'u'}, {"key", required_argument, 0, 'k'}, {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "u:k:", opts, NULL)) != -1;) {
        if (o == 'u')
            url = optarg;
        else if (o == 'k')
            key = optarg;
        else
            return 2;
    }
    if (optind >= argc || !key) {
        fprintf(stderr, "usage: parley trace ID [--url http://HOST:PORT] --key API_KEY "
                        "(or PARLEY_API_KEY)\n");
        return 2;
    }
    sbuf body;
    sbuf_init(&body);
    sbuf_puts(&body, "{\"id\":");
    sbuf_json_str(&body, argv[optind], strlen(argv[optind]));
    sbuf_putc(&body, '}');
    long status = 0;
    char *text = api_call(url, key, "trace", body.data, &status);
    sbuf_release(&body);
    if (!text) return 1;
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    json_t *res = json_object_get(root, "result");
    int rc = 1;
    if (!res) {
        fprintf(stderr, "parley: HTTP %ld: %s\n", status, text);
        goto out;
    }
    json_t *pub = json_object_get(res, "pub");
    printf("pub %s\n  channel  %s\n  offset   %lld (epoch %s)\n  accepted %lld (unix ms), stored\n"
           "  fanout   %lld connection(s) since the server started\n",
           json_string_value(json_object_get(pub, "id")),
           json_string_value(json_object_get(pub, "channel")),
           (long long)json_integer_value(json_object_get(pub, "offset")),
           json_string_value(json_object_get(pub, "epoch")),
           (long long)json_integer_value(json_object_get(res, "accepted_at")),
           (long long)json_integer_value(json_object_get(res, "fanout")));
    size_t i, k;
    json_t *d, *t;
    json_array_foreach(json_object_get(res, "deliveries"), i, d)
    {
        printf("  recipient %s: %s after %lld attempt(s)\n",
               json_string_value(json_object_get(d, "user")),
               json_string_value(json_object_get(d, "state")),
               (long long)json_integer_value(json_object_get(d, "attempts")));
        json_array_foreach(json_object_get(d, "transitions"), k, t)
        {
            const char *err = json_string_value(json_object_get(t, "error"));
            printf("    %lld  %-12s attempt %lld%s%s\n",
                   (long long)json_integer_value(json_object_get(t, "at")),
                   json_string_value(json_object_get(t, "state")),
                   (long long)json_integer_value(json_object_get(t, "attempt")), err ? "  " : "",
                   err ? err : "");
        }
    }
    rc = 0;
out:
    json_decref(root);
    pl_free(text);
    return rc;
}

static int cmd_bench(int argc, char **argv)
{
    return bench_main(argc, argv);
}

static int cmd_help(int argc, char **argv);

static const struct subcommand {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
} subcommands[] = {
    {"serve", cmd_serve, "serve [--config FILE] [--listen HOST:PORT] [--data DIR] [--workers N]"},
    {"token", cmd_token, "token --user U [--tenant T] [--ttl 1h] [--secret S | --config FILE]"},
    {"check-config", cmd_check_config, "check-config FILE"},
    {"trace", cmd_trace, "trace ID [--url http://127.0.0.1:8080] --key API_KEY"},
    {"audit", cmd_audit, "audit verify FILE   (checks the hash chain of DATA/audit.log)"},
    {"bench", cmd_bench, "bench SCENARIO [options]   (fanout, channels, publish, idle, storm)"},
    {"help", cmd_help, "help"},
};

static int cmd_help(int argc, char **argv)
{
    printf("usage: parley COMMAND [options]\n");
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
        printf("  parley %s\n", subcommands[i].usage);
    return 0;
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "help";
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
        if (!strcmp(subcommands[i].name, name)) return subcommands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "parley: unknown command %s\n", name);
    cmd_help(0, NULL);
    return 2;
}
