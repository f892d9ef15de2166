/* Token minting for the command line (see mint.h). */
#include "cli/mint.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "auth/jwt.h"
#include "config/config.h"
#include "net/server.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/sbuf.h"

/* The secret a token must be signed with, as the server will verify it:
 * a tenant's first HS256 secret from the config, or the development secret
 * of the data dir the server uses. 0, or an exit code after saying what is
 * wrong and how to point at the right server. */
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

static char *sign(const char *user, const char *tenant, const char *channel, int64_t ttl_ms,
                  const char *secret)
{
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
    return tok;
}

char *mint_token(const mint_req *r, int *rc)
{
    int64_t ttl_ms = clock_parse_duration(r->ttl ? r->ttl : "1h");
    if (ttl_ms < 1000) {
        fprintf(stderr, "parley: --ttl must be at least 1s, such as 1h or 30m (got %s)\n", r->ttl);
        *rc = 2;
        return NULL;
    }
    const char *tenant = r->tenant, *secret = r->secret;
    char *owned = NULL, err[512];
    config cfg = {0};
    int have_cfg = 0;
    if (!secret && r->cfgpath) {
        if (config_load_file(&cfg, r->cfgpath, err, sizeof(err))) {
            fprintf(stderr, "parley: %s\n", err);
            *rc = 1;
            return NULL;
        }
        have_cfg = 1;
    }
    *rc = secret ? 0
                 : token_secret(have_cfg ? &cfg : NULL, r->cfgpath, r->data ? r->data : "./data",
                                r->data_default, &tenant, &secret, &owned);
    char *tok = *rc ? NULL : sign(r->user, tenant, r->channel, ttl_ms, secret);
    if (!*rc && !tok) {
        fprintf(stderr, "parley: could not sign the token\n");
        *rc = 1;
    }
    pl_free(owned);
    if (have_cfg) config_release(&cfg);
    return tok;
}
