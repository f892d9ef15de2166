/* The trace answer leaves the trust boundary (an operator's tool, a support
 * ticket): the pub in it is redacted by its namespace's `redact` list, while
 * subscribers and history readers keep getting the whole pub. */
#include <string.h>

#include "hooks/hooks.h"
#include "hooks/redact.h"
#include "proto/api_int.h"
#include "util/json.h"
#include "util/mem.h"
#include "util/status.h"

/* The pub object of json (the engine's trace answer) and its channel's
 * namespace; 0, or -1 when json is not the expected shape. */
static int find_pub(const config *cfg, json_doc *d, const char *json, int *pub,
                    const cfg_namespace **ns)
{
    *ns = NULL;
    size_t len = strlen(json);
    json_limits lim = {.max_tokens = len + 1, .max_depth = JSON_MAX_DEPTH_CAP};
    if (json_parse(d, json, len, &lim) != PL_OK) return -1;
    *pub = json_obj_get(d, 0, "pub");
    int ch = json_obj_get(d, *pub, "channel");
    const char *raw;
    size_t n;
    if (json_str_raw(d, ch, &raw, &n) != PL_OK) return -1;
    char *name = pl_malloc(n + 1);
    if (!name || json_str_copy(d, ch, name, n + 1, &n) != PL_OK) {
        pl_free(name);
        return -1;
    }
    *ns = config_namespace(cfg, name, n);
    pl_free(name);
    return 0;
}

/* Closes the engine's answer with the pub's webhook deliveries and their
 * attempts (their bodies were redacted when the envelope was made). */
static void add_webhooks(proto_host *h, const char *tenant, const char *pub_id, sbuf *o)
{
    if (!h->srv->hooks || !o->len || o->data[o->len - 1] != '}') return;
    o->len--;
    sbuf_puts(o, ",\"webhooks\":");
    size_t mark = o->len;
    if (hooks_trace_json(h->srv->hooks, tenant, pub_id, o) != PL_OK) {
        o->len = mark;
        sbuf_puts(o, "null");
    }
    sbuf_putc(o, '}');
}

int api_trace_result(proto_host *h, uint64_t conn_id, const char *json, const char *tenant,
                     const char *pub_id)
{
    json_doc d;
    json_doc_init(&d);
    int pub = -1;
    const cfg_namespace *ns = NULL;
    sbuf o;
    sbuf_init(&o);
    int rc = find_pub(h->srv->cfg, &d, json, &pub, &ns) ? PL_EINVAL : PL_OK;
    if (rc == PL_OK && ns && ns->n_redact) {
        /* Compiled per call: trace is a rare admin call, and a list of at
         * most 64 paths costs less than the queries that built the answer. */
        redaction *r = NULL;
        const char *s;
        size_t n;
        rc = redact_new(ns->redact, ns->n_redact, &r);
        if (rc == PL_OK) rc = json_raw(&d, pub, &s, &n);
        if (rc == PL_OK) {
            sbuf_append(&o, json, (size_t)(s - json));
            rc = redact_apply(r, s, n, &o);
            sbuf_puts(&o, s + n);
        }
        redact_free(r);
    } else if (rc == PL_OK) {
        sbuf_puts(&o, json);
    }
    json_doc_release(&d);
    if (rc == PL_OK) add_webhooks(h, tenant, pub_id, &o);
    /* Never the unredacted pub instead. */
    if (rc != PL_OK)
        rc = api_error(h, conn_id, PE_INTERNAL, "trace answer unreadable");
    else
        rc = api_result(h, conn_id, &o);
    sbuf_release(&o);
    return rc;
}
