/* The configuration's lifetime: the built-in defaults, reading a file for
 * the loader (load.c) and releasing everything a config owns. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/config_int.h"
#include "util/mem.h"

int config_defaults(config *c)
{
    static const char *const ns_names[] = {"", "chat", "news", "dm", "inbox"};
    memset(c, 0, sizeof(*c));
    c->listen_host = pl_strdup("127.0.0.1");
    c->data_dir = pl_strdup("./data");
    c->redis.host = pl_strdup("127.0.0.1");
    c->redis.prefix = pl_strdup("parley");
    c->tenants = pl_calloc(1, sizeof(*c->tenants));
    c->namespaces = pl_calloc(NSPEC(ns_names), sizeof(*c->namespaces));
    if (!c->listen_host || !c->data_dir || !c->redis.host || !c->redis.prefix || !c->tenants ||
        !c->namespaces)
        goto fail;
    c->redis.port = 6379;
    c->redis.notify_maxlen = 100000;
    c->listen_port = 8080;
    c->ping_interval_ms = 25000;
    c->dedup_window_ms = 24 * 3600 * 1000LL;
    c->single_tenant = true;
    c->limits = (cfg_limits){
        .max_message_bytes = 65536,
        .max_frame_bytes = 1 << 20,
        .max_channels_per_connection = 128,
        .outbound_queue_bytes = 1 << 20,
        .max_connections_per_ip = 10000,
        .handshake_timeout_ms = 10000,
        .idle_timeout_ms = 0,
        .max_body_bytes = 1 << 20,
        .commands_per_second = 0,
        .typing_interval_ms = 2000,
        .backlog_bytes = 8u << 20,
        .backlog_shed_bytes = 256u << 20,
        .storage_queue_shed = 10000,
        .storage_queue_max = 50000,
    };
    c->n_tenants = 1;
    if (cfg_dev_origins(c) < 0) goto fail;
    c->tenants[0].id = pl_strdup("default");
    if (!c->tenants[0].id) goto fail;
    c->n_namespaces = NSPEC(ns_names);
    for (size_t i = 0; i < NSPEC(ns_names); i++) {
        cfg_namespace_init(&c->namespaces[i]);
        c->namespaces[i].name = pl_strdup(ns_names[i]);
        if (!c->namespaces[i].name) goto fail;
    }
    c->namespaces[1].join_leave = true;
    c->namespaces[2].client_publish = false;
    c->namespaces[4].cls = PUB_GUARANTEED;
    return 0;
fail:
    config_release(c);
    return -1;
}

int cfg_dev_origins(config *c)
{
    static const char *const dev[] = {"http://localhost:*", "http://127.0.0.1:*"};
    char **v = pl_calloc(NSPEC(dev), sizeof(*v));
    if (!v) return -1;
    for (size_t i = 0; i < NSPEC(dev); i++) {
        if (!(v[i] = pl_strdup(dev[i]))) {
            cfg_free_strv(v, i);
            return -1;
        }
    }
    cfg_free_strv(c->allowed_origins, c->n_allowed_origins);
    c->allowed_origins = v;
    c->n_allowed_origins = NSPEC(dev);
    return 0;
}

/* Reads at most CFG_MAX_BYTES + 1 bytes into a new buffer (caller frees). */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = pl_malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap > CFG_MAX_BYTES) break;
            char *nb = pl_realloc(buf, cap * 2);
            if (!nb) goto fail;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) goto fail;
        if (r == 0) break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
fail:
    pl_free(buf);
    return NULL;
}

int config_load_file(config *c, const char *path, char *err, size_t errlen)
{
    char inner[600];
    size_t len = 0;
    memset(c, 0, sizeof(*c));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    errno = 0;
    char *buf = read_all(fd, &len);
    int saved = errno;
    close(fd);
    if (!buf) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, saved ? strerror(saved) : "out of memory");
        return -1;
    }
    int rc = config_load_string(c, buf, len, inner, sizeof(inner));
    pl_free(buf);
    if (rc < 0 && err && errlen) snprintf(err, errlen, "%s:%s", path, inner);
    return rc;
}

void config_release(config *c)
{
    pl_free(c->listen_host);
    pl_free(c->data_dir);
    pl_free(c->redis.host);
    pl_free(c->redis.password);
    pl_free(c->redis.prefix);
    cfg_free_strv(c->redis.sentinels, c->redis.n_sentinels);
    pl_free(c->redis.sentinel_master);
    pl_free(c->web_root);
    pl_free(c->admin_key);
    pl_free(c->metrics_token);
    cfg_tenants_release(c->tenants, c->n_tenants);
    cfg_namespaces_release(c->namespaces, c->n_namespaces);
    cfg_inbound_release(c->inbound, c->n_inbound);
    cfg_webhooks_release(c->webhooks, c->n_webhooks);
    cfg_routes_release(c->routes, c->n_routes);
    cfg_free_strv(c->webhook_allowed_networks, c->n_webhook_allowed_networks);
    cfg_free_strv(c->allowed_origins, c->n_allowed_origins);
    memset(c, 0, sizeof(*c));
}
