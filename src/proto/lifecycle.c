/* Lifecycle events: a client's connect, disconnect (with its close code),
 * subscribe and unsubscribe, and presence join and leave, stored as pubs of
 * types $sys.client.* and $sys.presence.* on the tenant's channels
 * $sys:clients and $sys:presence, so that routes reading the committed log
 * deliver them at least once. Recorded only while a route names one of those
 * channels (proto_server.lifecycle, set by the hooks service): otherwise
 * each costs one atomic load. */
#include <stdio.h>
#include <string.h>

#include "proto/session_int.h"
#include "util/mem.h"

static const char *const kinds[] = {
    [LC_CONNECT] = "client.connect",     [LC_DISCONNECT] = "client.disconnect",
    [LC_SUBSCRIBE] = "client.subscribe", [LC_UNSUBSCRIBE] = "client.unsubscribe",
    [LC_JOIN] = "presence.join",         [LC_LEAVE] = "presence.leave",
};

static void stored(engine_req *r)
{
    engine_req_free(r); /* nothing waits for it: the log has it, or it failed (counted) */
}

void sess_lifecycle(session *s, enum lc_kind kind, const char *channel, uint16_t code)
{
    proto_server *srv = s->h->srv;
    unsigned want = kind >= LC_JOIN ? LIFECYCLE_PRESENCE : LIFECYCLE_CLIENT;
    if (!(atomic_load_explicit(&srv->lifecycle, memory_order_relaxed) & want) || !s->connected)
        return;
    char peer[64] = "";
    sink_peer(s->out, peer, sizeof(peer));
    sbuf d;
    sbuf_init(&d);
    sbuf_printf(&d, "{\"client\":\"%s\",\"seq\":%u,\"user\":", s->client, ++s->lc_seq);
    sbuf_json_str(&d, s->user, strlen(s->user));
    if (channel) {
        sbuf_puts(&d, ",\"channel\":");
        sbuf_json_str(&d, channel, strlen(channel));
    }
    if (kind == LC_DISCONNECT) sbuf_printf(&d, ",\"code\":%u", code);
    if (kind == LC_CONNECT) {
        sbuf_puts(&d, ",\"remote\":");
        sbuf_json_str(&d, peer, strlen(peer));
        sbuf_printf(&d, ",\"transport\":\"%s\"", s->sse ? "sse" : "websocket");
    }
    sbuf_putc(&d, '}');
    char type[40];
    int tl = snprintf(type, sizeof(type), "$sys.%s", kinds[kind]);
    const char *ch = kind >= LC_JOIN ? "$sys:presence" : "$sys:clients";
    pub_fields f = {.tenant = s->tenant,
                    .tenant_len = strlen(s->tenant),
                    .channel = ch,
                    .channel_len = strlen(ch),
                    .data = d.data,
                    .data_len = d.len,
                    .type = type,
                    .type_len = (size_t)tl};
    engine_req *r = d.oom ? NULL : engine_req_new(ENGINE_PUBLISH);
    pl_pub *p = r ? pub_new(&f, PUB_STANDARD) : NULL;
    sbuf_release(&d);
    if (!p) {
        engine_req_free(r);
        metrics_add(s->h->metrics, M_LIFECYCLE_LOST, 1);
        return;
    }
    r->pub = p;
    r->done = stored;
    r->history_size = LIFECYCLE_HISTORY;
    r->history_ttl_ms = LIFECYCLE_TTL_MS;
    engine_submit(srv->eng, r);
}
