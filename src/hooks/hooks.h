/* Outbound webhooks and routing rules as a running service: a thread that
 * reads the committed log (engine ENGINE_EVENTS), evaluates every route on
 * each stored pub, turns matches into webhook deliveries or publishes, and
 * delivers to endpoints through the sender (hooks/sender.h) on the retry
 * schedule and status contract of hooks/retry.h, with each route's position,
 * every delivery and every attempt kept in the webhook store
 * (hooks/hstore.h). Nothing here runs on a worker or the storage thread
 * except the short hand-offs named below. */
#ifndef PL_HOOKS_H
#define PL_HOOKS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config/config.h"
#include "engine/engine.h"
#include "engine/pub.h"
#include "obs/audit.h"
#include "util/sbuf.h"

typedef struct hooks hooks;

/* Publishes a pub a route produced (a `publish` action), through the same
 * path as any stored publish (the namespace's class and retention,
 * recipients, fan-out). Called on the hooks thread; f is borrowed for the
 * call. done(arg, status) is
 * called exactly once, on any thread, with PL_OK once the pub is committed
 * (or was a duplicate of its idempotency key) or an error. Returns PL_OK, or
 * an error (done is then never called). */
typedef int (*hooks_publish_fn)(void *ctx, const pub_fields *f, void (*done)(void *arg, int status),
                                void *arg);

typedef struct hooks_env {
    const config *cfg; /* borrowed for the service's life */
    engine *eng;
    hooks_publish_fn publish;
    void *publish_ctx;
    /* Where the service says which lifecycle events routes want (bit 1:
     * $sys:clients, bit 2: $sys:presence); NULL: nowhere. */
    atomic_uint *lifecycle;
    audit_log *audit; /* endpoint disabled and re-enabled are recorded; NULL: not */
} hooks_env;

/* Builds the service from cfg (webhooks, routes, webhook_allowed_networks)
 * and the endpoints and routes stored by the API, opening hooks.db in
 * cfg->data_dir. Nothing runs until hooks_start. PL_OK with *out, or an error
 * with a message in err. */
int hooks_new(const hooks_env *env, hooks **out, char *err, size_t errlen);
/* Starts the thread (and the sender). PL_OK or PL_ERR. */
int hooks_start(hooks *h);
/* Any thread, cheap: new pubs may have been committed. */
void hooks_poke(hooks *h);
/* Stops the thread and the sender: attempts in flight are cancelled (their
 * deliveries stay pending and are sent after a restart). The engine must
 * still run: the thread waits for its answers. API calls still answer
 * afterwards; nothing is sent. NULL ok; a second call does nothing. */
void hooks_stop(hooks *h);
/* Stops (hooks_stop) and frees everything. NULL ok. */
void hooks_free(hooks *h);

/* Compiles every configured route's match; on the first that does not
 * compile writes "LINE:COL: routes[i].match...: reason" (line and column of
 * the offending member) into err and returns PL_EINVAL. */
int hooks_check_config(const config *cfg, char *err, size_t errlen);

/* The webhooks.* and routes.* API methods (docs/api.md), any thread: method
 * is the name after the dot ("create", "list", ...) and kind "webhooks" or
 * "routes". params is the request's params object (borrowed). The answer's
 * JSON result is appended to out. Returns PL_OK, or PL_EINVAL (why says
 * which member is wrong and how), PL_ENOTFOUND, PL_ECONFLICT (why says
 * what), PL_EIO, PL_ENOMEM. */
int hooks_api(hooks *h, const char *kind, const char *method, const char *tenant,
              const json_t *params, sbuf *out, char *why, size_t whylen);

/* Queues again the failed deliveries ids[0..n) of a tenant (a DLQ replay of
 * webhook entries); returns how many were queued. Any thread. */
size_t hooks_requeue(hooks *h, const char *tenant, char *const *ids, size_t n);

/* Appends the webhook deliveries of a pub (with their attempts) as a JSON
 * array to out, for trace. */
int hooks_trace_json(hooks *h, const char *tenant, const char *pub_id, sbuf *out);

/* Appends the Prometheus lines of the parley_webhook_* and parley_route_*
 * families. */
void hooks_render_metrics(hooks *h, sbuf *out);

#endif
