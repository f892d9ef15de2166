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

/* Single-tenant development mode, with or without a config file: where to
 * connect, the development secret, and a token command that finds it. */
static void print_dev_banner(const char *host, const char *data_dir, const char *cfgpath)
{
    char secret_err[256];
    char *secret = server_dev_secret(data_dir, secret_err, sizeof(secret_err));
    if (!secret) return;
    int default_dir = !strcmp(data_dir, "./data") || !strcmp(data_dir, "data");
    fprintf(stderr,
            "parley: single-tenant development mode on ws://%s/ws\n"
            "parley: development secret: %s\n"
            "parley: get a token with: build/parley token --user alice%s%s%s%s\n",
            host, secret, cfgpath ? " --config " : "", cfgpath ? cfgpath : "",
            !cfgpath && !default_dir ? " --data " : "", !cfgpath && !default_dir ? data_dir : "");
    pl_free(secret);
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
    char host[256], data_dir[4096];
    snprintf(host, sizeof(host), "%s:%d", cfg.listen_host, cfg.listen_port);
    snprintf(data_dir, sizeof(data_dir), "%s", cfg.data_dir);
    char err[512] = "";
    server *srv = server_new(&cfg, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "parley: %s\n", err);
        return 1;
    }
    if (single) print_dev_banner(host, data_dir, cfgpath);
    int rc = server_run(srv);
    server_free(srv);
    return rc;
}

/* The secret a token must be signed with, as the server will verify it:
 * a tenant's first HS256 secret from the config, or the development secret
 * of the data dir the server uses. Never creates one (a token signed with a
 * secret the server does not have is refused at connect). 0, or an exit
 * code after saying what is wrong and how to point at the right server. */
static int token_secret(const config *cfg, const char *cfgpath, const char *data, int data_default,
                        const char **tenant, const char **secret, char **owned)
{
    if (cfg && !cfg->single_tenant) {
        const cfg_tenant *t = NULL;
        if (*tenant && !(t = config_tenant(cfg, *tenant))) {
            fprintf(stderr, "parley: %s has no tenant '%s'\n", cfgpath, *tenant);
            return 1;
        }
        if (!t && cfg->n_tenants > 1) {
            fprintf(stderr, "parley: %s has %zu tenants: say which with --tenant\n", cfgpath,
                    cfg->n_tenants);
            return 2;
        }
        if (!t) t = &cfg->tenants[0];
        if (!t->n_jwt_secrets) {
            fprintf(stderr, "parley: tenant '%s' has no jwt_secret to sign with\n", t->id);
            return 1;
        }
        *tenant = t->id;
        *secret = t->jwt_secrets[0];
        return 0;
    }
    if (*tenant && strcmp(*tenant, "default")) {
        fprintf(stderr, "parley: single-tenant development mode has only the tenant 'default'\n");
        return 1;
    }
    if (cfg && data_default) data = cfg->data_dir;
    if (!(*owned = server_dev_secret_read(data))) {
        fprintf(stderr,
                "parley: no development secret in %s/dev_secret: start the server first, or "
                "point to its data dir with --data DIR or its config with --config FILE\n",
                data);
        return 1;
    }
    *secret = *owned;
    return 0;
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
    if (ttl_ms < 1000) {
        fprintf(stderr, "parley: --ttl must be at least 1s, such as 1h or 30m (got %s)\n", ttl);
        return 2;
    }
    char *owned = NULL;
    config cfg = {0};
    int have_cfg = 0;
    if (!secret && cfgpath) {
        if (load_config(&cfg, cfgpath)) return 1;
        have_cfg = 1;
    }
    int rc = secret ? 0
                    : token_secret(have_cfg ? &cfg : NULL, cfgpath, data, data_default, &tenant,
                                   &secret, &owned);
    if (rc) {
        if (have_cfg) config_release(&cfg);
        return rc;
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
