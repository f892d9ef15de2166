/* Minting a connection token (HS256 JWT) the way the server will verify
 * it: shared by `parley token` and `parley subscribe --user`. The secret is
 * given, or a tenant's first jwt_secret from a config file, or the
 * development secret of a data dir; a secret is never created here (a
 * token signed with one the server does not have is refused at connect). */
#ifndef PL_MINT_H
#define PL_MINT_H

typedef struct mint_req {
    const char *user;    /* required: the token's sub */
    const char *tenant;  /* NULL: the config's only tenant, or "default" */
    const char *secret;  /* NULL: from cfgpath or data */
    const char *ttl;     /* a duration such as "1h"; at least 1s */
    const char *data;    /* data dir holding dev_secret */
    int data_default;    /* data was not given: a config's data_dir wins */
    const char *channel; /* NULL, or a channel token's channel claim */
    const char *cfgpath; /* NULL, or a config file */
} mint_req;

/* Returns the signed token (pl_malloc'd; the caller frees it), or NULL
 * after printing why on stderr, with *rc the exit code to use: 2 for a
 * usage error, 1 otherwise. */
char *mint_token(const mint_req *r, int *rc);

#endif
