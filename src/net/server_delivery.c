/* What the delivery manager needs from the server (see server_delivery.h):
 * who is subscribed, the namespace settings, and resends written to a
 * user's subscribed connections on whichever workers they live. All of it
 * runs on the manager's thread. */
#include "net/server_delivery.h"

#include <stdio.h>
#include <string.h>

#include "net/worker.h"
#include "proto/session.h"
#include "util/mem.h"

static int user_online(void *ctx, const char *tenant, const char *channel, const char *user)
{
    server *srv = ctx;
    return presence_has_user(srv->ps.presence, tenant, channel, user);
}

static void settings(void *ctx, const char *tenant, const char *channel, delivery_settings *out)
{
    server *srv = ctx;
    (void)tenant; /* namespaces are server-wide */
    const cfg_namespace *ns = config_namespace(&srv->cfg, channel, strlen(channel));
    if (!ns) return;
    out->max_attempts = ns->max_attempts;
    out->ack_wait_ms = ns->ack_wait_ms;
    out->retry_min_ms = ns->retry_min_ms;
    out->retry_max_ms = ns->retry_max_ms;
}

typedef struct resend_call {
    proto_call call;
    pl_pub *pub;
    rbuf *frame;
    char user[256];
} resend_call;

static void resend_conn(pl_sink *out, void *owner, void *arg)
{
    resend_call *rc = arg;
    if (!session_subscribed(owner, rc->pub->channel)) return;
    sink_enqueue(out, OUT_JSON, rbuf_ref(rc->frame), rc->frame->len);
}

static void resend_run(proto_host *h, proto_call *call)
{
    resend_call *rc = (resend_call *)call;
    fanout_user_each(h->fan, rc->pub->tenant, rc->user, resend_conn, rc);
}

static void resend_release(proto_call *call)
{
    resend_call *rc = (resend_call *)call;
    pub_unref(rc->pub);
    rbuf_unref(rc->frame);
    pl_free(rc);
}

/* Writes attempt N of the pub to every connection of the user subscribed to
 * its channel, on whichever worker they live. */
static void resend(void *ctx, pl_pub *pub, const char *user, uint32_t attempt)
{
    server *srv = ctx;
    resend_call *rc = pl_calloc(1, sizeof(*rc));
    if (!rc) return;
    rc->frame = delivery_frame(proto_pub_frame(pub), attempt);
    if (!rc->frame) {
        pl_free(rc);
        return;
    }
    rc->pub = pub_ref(pub);
    snprintf(rc->user, sizeof(rc->user), "%s", user);
    atomic_init(&rc->call.refs, 1);
    rc->call.fn = resend_run;
    rc->call.release = resend_release;
    server_call_all(srv, &rc->call);
}

delivery *server_delivery_new(server *srv)
{
    delivery_deps deps = {
        .eng = srv->ps.eng,
        .ctx = srv,
        .user_online = user_online,
        .resend = resend,
        .settings = settings,
    };
    return delivery_new(&deps);
}
