/* `parley` entry point: one binary for the server and its command-line
 * tools. Commands are rows of one table; the top-level help, `parley help
 * COMMAND` and `parley COMMAND --help` are all printed from it. */
#include <getopt.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <uv.h>

#include "cli/bench.h"
#include "cli/client.h"
#include "cli/mint.h"
#include "cli/verify.h"
#include "cli/webhook.h"
#include "config/config.h"
#include "net/server.h"
#include "cli/redis_check.h"
#include "hooks/hooks.h"
#include "obs/audit.h"
#include "util/mem.h"

/* The git commit the binary was built from (CMake passes it). */
#ifndef PARLEY_COMMIT
#define PARLEY_COMMIT "unknown"
#endif

/* Loads path and compiles its routes' rules: an error is "FILE:LINE:COL:
 * message" in err. 0 or -1 (cfg released). */
static int load_checked(config *cfg, const char *path, char *err, size_t errlen)
{
    if (config_load_file(cfg, path, err, errlen)) return -1;
    char why[600];
    if (hooks_check_config(cfg, why, sizeof(why)) == PL_OK) return 0;
    snprintf(err, errlen, "%s:%s", path, why);
    config_release(cfg);
    return -1;
}

static int load_config(config *cfg, const char *path)
{
    char err[1024];
    if (!path) return config_defaults(cfg) ? 1 : 0;
    if (load_checked(cfg, path, err, sizeof(err))) {
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
    if (server_serves_web(srv))
        fprintf(stderr, "parley: open http://%s/ (the console: http://%s/admin)\n", host, host);
    int rc = server_run(srv);
    server_free(srv);
    return rc;
}

static int cmd_token(int argc, char **argv)
{
    mint_req r = {.ttl = "1h", .data = "./data", .data_default = 1};
    static const struct option opts[] = {
        {"user", required_argument, 0, 'u'},   {"tenant", required_argument, 0, 't'},
        {"secret", required_argument, 0, 's'}, {"ttl", required_argument, 0, 'x'},
        {"data", required_argument, 0, 'd'},   {"channel", required_argument, 0, 'C'},
        {"config", required_argument, 0, 'c'}, {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "u:t:s:x:d:C:c:", opts, NULL)) != -1;) {
        switch (o) {
        case 'u':
            r.user = optarg;
            break;
        case 't':
            r.tenant = optarg;
            break;
        case 's':
            r.secret = optarg;
            break;
        case 'x':
            r.ttl = optarg;
            break;
        case 'd':
            r.data = optarg;
            r.data_default = 0;
            break;
        case 'C':
            r.channel = optarg;
            break;
        case 'c':
            r.cfgpath = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!r.user) {
        fprintf(stderr, "parley: token needs --user U (see parley help token)\n");
        return 2;
    }
    int rc;
    char *tok = mint_token(&r, &rc);
    if (tok) printf("%s\n", tok);
    pl_free(tok);
    return rc;
}

static int cmd_check_config(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: parley check-config FILE\n");
        return 2;
    }
    config cfg;
    char err[1024];
    if (load_checked(&cfg, argv[1], err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%s: ok (%zu tenants, %zu namespaces, %zu webhooks, %zu routes)\n", argv[1],
           cfg.n_tenants, cfg.n_namespaces, cfg.n_webhooks, cfg.n_routes);
    redis_check_warn(&cfg, stderr);
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

static int cmd_bench(int argc, char **argv)
{
    return bench_main(argc, argv);
}

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

/* Options every HTTP API client command takes. */
#define API_OPTIONS                                                                                \
    "  --url URL           the server (default $PARLEY_URL, else http://127.0.0.1:8080)\n"         \
    "  --key KEY           API key (default $PARLEY_API_KEY; in single-tenant development\n"       \
    "                      mode, without either, the development secret in DIR/dev_secret)\n"      \
    "  --data DIR          the server's data dir, for that secret (default ./data)\n"              \
    "  --json              one JSON object per line instead of readable lines\n"

/* Options of the WebSocket client commands. */
#define WS_OPTIONS                                                                                 \
    "  --url URL           the server (default $PARLEY_URL, else http://127.0.0.1:8080);\n"        \
    "                      the WebSocket URL is ws://HOST:PORT/ws of it\n"                         \
    "  --token T           connection token (see parley token)\n"                                  \
    "  --user U            single-tenant development mode: mint a token for U with the\n"          \
    "                      development secret in DIR/dev_secret, as parley token does\n"           \
    "  --data DIR          the server's data dir, for that secret (default ./data)\n"              \
    "  --json              each pub as its JSON push line instead of a readable line\n"            \
    "Runs until Ctrl-C or SIGTERM (exit 0). When the connection drops it reconnects\n"             \
    "with backoff and resumes every channel after the last pub it printed.\n"

static const struct subcommand {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
    const char *help; /* usage line (without "parley "), then options */
} subcommands[] = {
    {"serve", cmd_serve, "run the server",
     "serve [--config FILE] [--listen HOST:PORT] [--data DIR] [--workers N]\n"
     "Without --config: single-tenant development mode on 127.0.0.1:8080, data in ./data.\n"
     "  --config FILE       YAML configuration (docs/configuration.md)\n"
     "  --listen HOST:PORT  listen address (overrides the config)\n"
     "  --data DIR          data directory (overrides the config)\n"
     "  --workers N         worker threads (default: one per core)\n"},
    {"token", cmd_token, "print a connection token (JWT)",
     "token --user U [--tenant T] [--ttl 1h] [--channel C] [--secret S | --config FILE |\n"
     "      --data DIR]\n"
     "  --user U            the token's user (sub); required\n"
     "  --tenant T          its tenant (needed with a config of several tenants)\n"
     "  --ttl DURATION      lifetime such as 30m or 1h, at least 1s (default 1h)\n"
     "  --channel C         a channel token for C (private channels)\n"
     "  --secret S          sign with S\n"
     "  --config FILE       sign with the tenant's first jwt_secret in FILE\n"
     "  --data DIR          sign with the development secret in DIR/dev_secret (default ./data)\n"},
    {"publish", client_publish, "publish to a channel through the HTTP API",
     "publish CHANNEL [DATA | -] [options]\n"
     "DATA is JSON; a bare word that is not JSON is sent as a JSON string. With - (or\n"
     "no DATA) every non-empty line of stdin is one publish, stopping at the first error.\n"
     "Prints id, offset and epoch of each pub.\n"
     "  --class C           ephemeral, standard or guaranteed\n"
     "  --idempotency-key K a repeat answers the first pub (with -, line N uses K:N)\n"
     "  --type T            the pub's type\n" API_OPTIONS},
    {"history", client_history, "print a channel's stored pubs",
     "history CHANNEL [--limit N] [--reverse] [--since OFFSET[@EPOCH]] [options]\n"
     "Prints CHANNEL OFFSET@EPOCH ID DATA per pub.\n"
     "  --limit N           at most N pubs (up to 1000; default: the server's)\n"
     "  --reverse           newest first\n"
     "  --since OFFSET      the pubs after OFFSET (before it with --reverse)\n" API_OPTIONS},
    {"presence", client_presence, "print who is subscribed to a channel",
     "presence CHANNEL [--limit N] [options]\n"
     "Prints USER CLIENT since UNIX_MS per connection, every page.\n"
     "  --limit N           one page of at most N connections\n" API_OPTIONS},
    {"dlq", client_dlq, "list, replay or purge dead-lettered guaranteed pubs",
     "dlq list [--channel C] [--limit N] [options]\n"
     "       dlq replay|purge (--id N | --channel C | --all) [options]\n"
     "  --id N              one entry (the id dlq list prints first)\n"
     "  --channel C         the entries of channel C\n"
     "  --all               every entry (replay and purge)\n"
     "  --limit N           list: one page of at most N entries\n" API_OPTIONS},
    {"subscribe", client_subscribe, "print pubs of channels as they arrive (WebSocket)",
     "subscribe CHANNEL... [--since OFFSET@EPOCH] [options]\n"
     "Prints CHANNEL OFFSET@EPOCH ID DATA per pub.\n"
     "  --since OFFSET@EPOCH  (one channel) first the pubs after this position\n" WS_OPTIONS},
    {"tail", client_tail, "print new pubs of channels (WebSocket)",
     "tail CHANNEL... [options]\n"
     "subscribe without --since: only pubs published from now on. Channel patterns are\n"
     "not supported (the server subscribes to named channels only): name each "
     "channel.\n" WS_OPTIONS},
    {"trace", client_trace, "show what happened to one pub",
     "trace ID [options]\n"
     "Prints the pub, its fanout and, for guaranteed pubs, each recipient's "
     "deliveries.\n" API_OPTIONS},
    {"check-config", cmd_check_config, "validate a configuration file",
     "check-config FILE\n"
     "Prints FILE: ok, or the first error as FILE:LINE:COL: message (exit 1).\n"},
    {"audit", cmd_audit, "verify the audit log's hash chain",
     "audit verify FILE\n"
     "Checks the hash chain of DATA/audit.log.\n"},
    {"verify", verify_main, "check a saved webhook request's signature, explain a mismatch",
     "verify --headers FILE --body FILE --secret S [--secret S2...] [options]\n"
     "Prints ok: signature N of M matches secret K (exit 0), or what differs (exit 1):\n"
     "a re-serialized body, clock skew, a mangled secret, or a wrong secret.\n"
     "  --headers FILE      the request's headers, one 'Name: value' per line\n"
     "  --body FILE         the request's body, the raw bytes as received\n"
     "  --secret S          a secret to try (repeat for several)\n"
     "  --scheme SCHEME     standard-webhooks, hmac-sha256 or stripe (default: from the\n"
     "                      headers)\n"
     "  --header NAME       hmac-sha256: the signature header (default X-Hub-Signature-256)\n"
     "  --prefix P          hmac-sha256: before the hex (default sha256= for the default\n"
     "                      header, else none)\n"
     "  --tolerance D       accepted clock difference such as 300s or 5m (default 5m)\n"
     "  --now UNIX          the time to check against, for an old request (default: now)\n"},
    {"webhook", webhook_main, "send one signed webhook to a receiver, with retries",
     "webhook send --url URL --secret whsec_... [--secret S2...] [options]\n"
     "Sends one signed event envelope with the retry policy and status contract of\n"
     "docs/webhooks.md, printing each attempt. Exit 0 when delivered, 1 when not\n"
     "(dead-lettered, endpoint disabled, message aborted, address refused).\n"
     "  --url URL           the receiver (http or https; redirects are never followed)\n"
     "  --secret S          a whsec_ or whsk_ key; repeat to sign with several\n"
     "  --channel C         the envelope's channel (default webhook:test)\n"
     "  --type T            the envelope's type (default webhook.test)\n"
     "  --data JSON         the envelope's data (default {\"test\":true})\n"
     "  --id ID             the webhook-id header (default: the envelope's id)\n"
     "  --schedule LIST     delays before each attempt, e.g. 0s,1s,5s (default: 0s, 5s,\n"
     "                      5m, 30m, 2h, 5h, 10h, 14h, 20h, 24h), each +-10%\n"
     "  --max-attempts N    stop after N attempts (more than the schedule repeat its last)\n"
     "  --allow-network CIDR  admit a network the SSRF guard refuses, e.g. 127.0.0.0/8\n"
     "                      for a receiver on this host (repeatable)\n"
     "  --timeout D         per attempt, such as 15s (default 15s; connecting: 5s at most)\n"},
    {"bench", cmd_bench, "run a benchmark scenario",
     "bench SCENARIO [options]\n"
     "SCENARIO: fanout, channels, publish, idle, storm, chat; its options with\n"
     "parley bench SCENARIO --help (bench/README.md).\n"},
    {"version", cmd_version, "print the version, commit and library versions",
     "version\n"
     "Prints the git commit the binary was built from and the SQLite and libuv versions.\n"},
    {"help", cmd_help, "list the commands, or explain one",
     "help [COMMAND]\n"
     "Also: parley COMMAND --help.\n"},
};

#define N_SUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

static const struct subcommand *find_command(const char *name)
{
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        if (!strcmp(subcommands[i].name, name)) return &subcommands[i];
    return NULL;
}

static void list_commands(FILE *out)
{
    fprintf(out, "usage: parley COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        fprintf(out, "  %-13s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out, "\nparley help COMMAND (or parley COMMAND --help) lists its options.\n");
}

static int unknown_command(const char *name)
{
    fprintf(stderr, "parley: unknown command %s\n", name);
    list_commands(stderr);
    return 2;
}

static int command_help(const struct subcommand *c)
{
    printf("usage: parley %s", c->help);
    return 0;
}

static int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        list_commands(stdout);
        return 0;
    }
    const struct subcommand *c = find_command(argv[1]);
    return c ? command_help(c) : unknown_command(argv[1]);
}

static int cmd_version(int argc, char **argv)
{
    printf("parley commit %s\nsqlite %s\nlibuv %s\n", PARLEY_COMMIT, sqlite3_libversion(),
           uv_version_string());
    return 0;
}

static int is_help(const char *arg)
{
    return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

/* COMMAND --help anywhere before "--" prints the table's help; bench's
 * scenarios have their own (`parley bench fanout --help`). */
static int wants_help(const struct subcommand *c, int argc, char **argv)
{
    if (c->fn == cmd_bench) return argc > 1 && is_help(argv[1]);
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (is_help(argv[i])) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    /* Once, before any thread: the webhook sender and the CLI's HTTP calls
     * use libcurl. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "parley: libcurl failed to initialize\n");
        return 1;
    }
    const char *name = argc > 1 ? argv[1] : "help";
    if (is_help(name)) return cmd_help(0, NULL);
    if (!strcmp(name, "--version")) name = "version";
    const struct subcommand *c = find_command(name);
    if (!c) return unknown_command(name);
    if (argc > 1 && wants_help(c, argc - 1, argv + 1)) return command_help(c);
    return c->fn(argc - 1, argv + 1);
}
