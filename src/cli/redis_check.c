/* check-config's Redis checks; see redis_check.h. Blocking hiredis calls
 * with short timeouts: a command-line tool waits for its answer anyway. */
#include "cli/redis_check.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#define RC_TIMEOUT_US 500000

static redisContext *dial(const char *host, int port)
{
    const struct timeval tv = {0, RC_TIMEOUT_US};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c && !c->err) redisSetTimeout(c, tv);
    return c;
}

/* The master's address: asked of the sentinels when configured. */
static int master_addr(const cfg_redis *r, char *host, size_t hostlen, int *port)
{
    snprintf(host, hostlen, "%s", r->host);
    *port = r->port;
    for (size_t i = 0; i < r->n_sentinels; i++) {
        char sh[256];
        const char *colon = strrchr(r->sentinels[i], ':');
        size_t n = colon ? (size_t)(colon - r->sentinels[i]) : 0;
        if (!n || n >= sizeof(sh)) continue;
        memcpy(sh, r->sentinels[i], n);
        sh[n] = '\0';
        redisContext *c = dial(sh, atoi(colon + 1));
        redisReply *rep = c && !c->err ? redisCommand(c, "SENTINEL get-master-addr-by-name %s",
                                                      r->sentinel_master)
                                       : NULL;
        int ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2;
        if (ok) {
            snprintf(host, hostlen, "%s", rep->element[0]->str);
            *port = atoi(rep->element[1]->str);
        }
        if (rep) freeReplyObject(rep);
        if (c) redisFree(c);
        if (ok) return 0;
    }
    return r->n_sentinels ? -1 : 0;
}

/* The value of "name:" in an INFO text, or -1. */
static long info_num(const char *info, const char *name)
{
    const char *p = strstr(info, name);
    return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

static int check_info(const cfg_redis *r, redisContext *c, const char *at, FILE *out)
{
    int n = 0;
    redisReply *info = redisCommand(c, "INFO");
    if (!info || info->type != REDIS_REPLY_STRING) {
        fprintf(out, "warning: Redis at %s did not answer INFO: %s\n", at,
                info && info->type == REDIS_REPLY_ERROR ? info->str : c->errstr);
        if (info) freeReplyObject(info);
        return 1;
    }
    if (info_num(info->str, "aof_enabled:") == 0) {
        fprintf(out,
                "warning: Redis at %s has appendonly no: a Redis restart loses acked pubs "
                "(clients are told: the channels change epoch); appendonly yes with "
                "appendfsync always keeps them\n",
                at);
        n++;
    } else {
        redisReply *fs = redisCommand(c, "CONFIG GET appendfsync");
        if (fs && fs->type == REDIS_REPLY_ARRAY && fs->elements == 2 &&
            strcmp(fs->element[1]->str, "always")) {
            fprintf(out,
                    "warning: Redis at %s has appendfsync %s: a Redis crash can lose the "
                    "acked pubs of the last second (clients are told: the channels change "
                    "epoch)\n",
                    at, fs->element[1]->str);
            n++;
        }
        if (fs) freeReplyObject(fs);
    }
    long replicas = info_num(info->str, "connected_slaves:");
    if (r->min_replicas_acked && replicas < (long)r->min_replicas_acked) {
        fprintf(out,
                "warning: min_replicas_acked is %u but Redis at %s has %ld replicas "
                "connected: publishes are answered 113 until enough are\n",
                r->min_replicas_acked, at, replicas < 0 ? 0 : replicas);
        n++;
    }
    freeReplyObject(info);
    return n;
}

int redis_check_warn(const config *cfg, FILE *out)
{
    if (cfg->engine_type != CFG_ENGINE_REDIS) return 0;
    const cfg_redis *r = &cfg->redis;
    char host[256], at[300];
    int port;
    if (master_addr(r, host, sizeof(host), &port)) {
        fprintf(out,
                "warning: no sentinel named the master '%s': publishes are answered 113 until one "
                "does\n",
                r->sentinel_master);
        return 1;
    }
    snprintf(at, sizeof(at), "%s:%d", host, port);
    redisContext *c = dial(host, port);
    redisReply *ok = NULL;
    if (c && !c->err && r->password) ok = redisCommand(c, "AUTH %s", r->password);
    if (ok) freeReplyObject(ok);
    int n;
    if (!c || c->err) {
        fprintf(
            out,
            "warning: cannot reach Redis at %s (%s): publishes are answered 113 until it is up\n",
            at, c ? c->errstr : "out of memory");
        n = 1;
    } else {
        n = check_info(r, c, at, out);
    }
    if (c) redisFree(c);
    return n;
}
