/* The webhooks.* and routes.* API methods (routes.test aside): the request's
 * params handed to the hooks service (hooks/hooks.h), its answer mapped to
 * the protocol's errors, every change audited before it is made. Also the
 * pub producer of the `publish` route action, which any thread may call. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "hooks/hooks.h"
#include "proto/api_int.h"
#include "util/mem.h"
#include "util/status.h"

static int mutates(const char *m)
{
    return strcmp(m, "list") && strcmp(m, "health") && strcmp(m, "attempts");
}

/* The route action's channel follows the same rules as a publish's. */
static const char *check_publish_channel(const proto_server *srv, const json_t *p)
{
    const char *ch = json_string_value(json_object_get(json_object_get(p, "action"), "publish"));
    if (!ch) return NULL;
    size_t n = strlen(ch);
    if (proto_channel_valid(ch, n) != PE_OK) return "action.publish: not a valid channel name";
    const cfg_namespace *ns = config_namespace(srv->cfg, ch, n);
    if (!ns) return "action.publish: the channel's namespace is not configured";
    if (ns->cls == PUB_EPHEMERAL)
        return "action.publish: the channel is ephemeral: a route publishes to stored channels";
    return NULL;
}

static proto_error code_of(int st)
{
    switch (st) {
    case PL_EINVAL:
        return PE_BAD_REQUEST;
    case PL_ENOTFOUND:
        return PE_NOT_FOUND;
    case PL_ECONFLICT:
        return PE_CONFLICT;
    case PL_EIO:
        return PE_STORAGE_UNAVAILABLE;
    default:
        return PE_INTERNAL;
    }
}

int api_webhooks(api_ctx *a)
{
    char kind[16], why[600];
    const char *dot = strchr(a->method, '.');
    if (!a->srv->hooks)
        return api_error(a->h, a->conn_id, PE_NOT_AVAILABLE, "webhooks are not running");
    snprintf(kind, sizeof(kind), "%.*s", (int)(dot - a->method), a->method);
    const char *raw = "{}";
    size_t n = 2;
    if (a->params >= 0 && json_raw(&a->b->doc, a->params, &raw, &n) != PL_OK)
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST, "params: expected an object");
    json_error_t jerr;
    char unreadable[300];
    json_t *p = json_loadb(raw, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!p) /* duplicate keys, \u0000 in a string, an integer beyond 64 bits */
        snprintf(unreadable, sizeof(unreadable), "params: not readable: %s", jerr.text);
    /* The admin key names the tenant in params; the spec does not hold it. */
    if (p && a->who->admin) json_object_del(p, "tenant");
    const char *bad = !p ? unreadable : check_publish_channel(a->srv, p);
    if (bad) {
        json_decref(p);
        return api_error(a->h, a->conn_id, PE_BAD_REQUEST, bad);
    }
    const char *target = json_string_value(json_object_get(p, "id"));
    if (!target) target = json_string_value(json_object_get(p, "delivery"));
    if (!target) target = json_string_value(json_object_get(p, "endpoint"));
    /* Bounded: a hostile id (refused by the call) must not make the audit
     * record, and so the call, fail. */
    char tgt[256];
    snprintf(tgt, sizeof(tgt), "%s", target ? target : "");
    if (mutates(dot + 1) && api_audit(a->srv, a->who->actor, a->method, a->tenant, tgt, NULL)) {
        json_decref(p);
        return api_error(a->h, a->conn_id, PE_INTERNAL, "audit log unavailable");
    }
    sbuf o;
    sbuf_init(&o);
    int st = hooks_api(a->srv->hooks, kind, dot + 1, a->tenant, p, &o, why, sizeof(why));
    json_decref(p);
    int rc = st == PL_OK ? api_result(a->h, a->conn_id, &o)
                         : api_error(a->h, a->conn_id, code_of(st), why[0] ? why : NULL);
    sbuf_release(&o);
    return rc;
}
