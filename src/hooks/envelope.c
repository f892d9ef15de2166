/* The event envelope writer: fixed member order, strings escaped with
 * sbuf_json_str, data and headers copied raw or through redaction. */
#include <string.h>

#include "hooks/envelope.h"
#include "util/status.h"

static void str_member(sbuf *o, const char *name, const char *s)
{
    if (!s) return;
    sbuf_puts(o, name);
    sbuf_json_str(o, s, strlen(s));
}

/* A raw JSON member value, redacted when r has paths under root. */
static int raw_member(sbuf *o, const redaction *r, const char *root, const char *json, size_t n)
{
    if (!r) {
        sbuf_append(o, json, n);
        return PL_OK;
    }
    return redact_member(r, root, json, n, o);
}

int envelope_write(sbuf *out, const pl_pub *p, const redaction *r)
{
    size_t mark = out->len;
    sbuf_reserve(out, 256 + p->data_len + (p->headers ? strlen(p->headers) : 0));
    sbuf_puts(out, "{\"id\":\"");
    sbuf_puts(out, p->id);
    sbuf_putc(out, '"');
    str_member(out, ",\"type\":", p->type);
    sbuf_puts(out, ",\"tenant\":");
    sbuf_json_str(out, p->tenant ? p->tenant : "", p->tenant ? strlen(p->tenant) : 0);
    sbuf_puts(out, ",\"channel\":");
    sbuf_json_str(out, p->channel ? p->channel : "", p->channel ? strlen(p->channel) : 0);
    sbuf_puts(out, ",\"offset\":");
    sbuf_u64(out, p->offset);
    if (p->offset && p->epoch[0]) {
        sbuf_puts(out, ",\"epoch\":");
        sbuf_json_str(out, p->epoch, strlen(p->epoch));
    }
    sbuf_puts(out, ",\"ts\":");
    sbuf_i64(out, p->ts_ms);
    sbuf_puts(out, ",\"schema_version\":");
    sbuf_u64(out, ENVELOPE_SCHEMA_VERSION);
    str_member(out, ",\"correlation_id\":", p->correlation_id);
    str_member(out, ",\"idempotency_key\":", p->idem_key);
    sbuf_puts(out, ",\"headers\":");
    int rc = p->headers ? raw_member(out, r, "headers", p->headers, strlen(p->headers)) : PL_OK;
    if (!p->headers) sbuf_puts(out, "{}");
    sbuf_puts(out, ",\"data\":");
    if (rc == PL_OK) rc = p->data ? raw_member(out, r, "data", p->data, p->data_len) : PL_OK;
    if (!p->data) sbuf_puts(out, "null");
    sbuf_putc(out, '}');
    if (rc == PL_OK && out->oom) rc = PL_ENOMEM;
    if (rc != PL_OK && out->data) {
        out->len = mark;
        out->data[mark] = '\0';
    }
    return rc;
}
