/* Inbound webhooks (docs/webhooks.md, Inbound webhooks): a request for a
 * configured source is verified on its raw body first, then published with
 * the delivery id as idempotency key, and answered once committed. */
#include "proto/inbound.h"

#include <stdio.h>
#include <string.h>

#include "hooks/inbound_sig.h"
#include "hooks/sign.h"
#include "obs/log.h"
#include "proto/api_int.h"
#include "proto/proto_int.h"
#include "util/mem.h"
#include "util/utf8.h"

#define STRIPE_HEADER "Stripe-Signature"
#define DELIVERY_ID_MAX 200 /* bytes of a delivery id read from a header or body */
#define TYPE_MAX 255        /* as a publish's type */

/* What became of a request, one counter per source each. */
#define INBOUND_RESULTS(X)                                                                         \
    X(R_ACCEPTED, "accepted")                                                                      \
    X(R_MISSING_HEADER, "missing_header")                                                          \
    X(R_MALFORMED_SIGNATURE, "malformed_signature")                                                \
    X(R_BAD_SIGNATURE, "bad_signature")                                                            \
    X(R_STALE, "stale_timestamp")                                                                  \
    X(R_FUTURE, "future_timestamp")                                                                \
    X(R_BAD_TIMESTAMP, "malformed_timestamp")                                                      \
    X(R_REPLAYED, "replayed")                                                                      \
    X(R_TOO_LARGE, "too_large")                                                                    \
    X(R_BAD_REQUEST, "bad_request")                                                                \
    X(R_UNAVAILABLE, "unavailable")

#define RESULT_ENUM(id, name) id,
enum inbound_result { INBOUND_RESULTS(RESULT_ENUM) R__COUNT };
#undef RESULT_ENUM

#define RESULT_NAME(id, name) name,
static const char *const result_names[R__COUNT] = {INBOUND_RESULTS(RESULT_NAME)};
#undef RESULT_NAME

typedef struct source {
    const cfg_inbound *cfg;
    sign_key **keys;             /* standard-webhooks, parsed from the secrets */
    inbound_sig_secret *secrets; /* the others: the secret strings' bytes, borrowed */
    size_t n_secrets;
    const cfg_namespace *ns;
    _Atomic uint64_t counts[R__COUNT];
} source;

struct inbound {
    const config *cfg;
    source *src;
    size_t n;
    _Atomic uint64_t unknown; /* requests for no configured source */
};

/* What rides from the submit to the commit's answer. Owned by the pending
 * record's `agg` until inbound_answered frees it. */
typedef struct answer_ctx {
    source *src;
    char peer[64];
    char delivery[DELIVERY_ID_MAX + 1];
} answer_ctx;

/* ---- building ------------------------------------------------------------ */

static int source_init(source *s, const config *cfg, const cfg_inbound *ci, char *err,
                       size_t errlen)
{
    s->cfg = ci;
    s->n_secrets = ci->n_secrets;
    s->ns = config_namespace(cfg, ci->channel, strlen(ci->channel));
    if (!s->ns || proto_channel_valid(ci->channel, strlen(ci->channel))) {
        snprintf(err, errlen, "inbound source %s: invalid channel '%s'", ci->id, ci->channel);
        return -1;
    }
    if (ci->scheme != CFG_INBOUND_STANDARD) {
        if (!(s->secrets = pl_calloc(ci->n_secrets, sizeof(*s->secrets)))) return -1;
        for (size_t i = 0; i < ci->n_secrets; i++)
            s->secrets[i] = (inbound_sig_secret){ci->secrets[i], strlen(ci->secrets[i])};
        return 0;
    }
    if (!(s->keys = pl_calloc(ci->n_secrets, sizeof(*s->keys)))) return -1;
    for (size_t i = 0; i < ci->n_secrets; i++) {
        enum sign_key_err e = sign_key_parse(ci->secrets[i], strlen(ci->secrets[i]), &s->keys[i]);
        if (e == SIGN_KEY_OK) continue;
        /* Never the secret itself: logs and error output are not for keys. */
        snprintf(err, errlen, "inbound source %s: secret %zu: %s", ci->id, i + 1,
                 sign_key_errstr(e));
        return -1;
    }
    return 0;
}

inbound *inbound_new(const config *cfg, char *err, size_t errlen)
{
    inbound *in = pl_calloc(1, sizeof(*in));
    if (in && cfg->n_inbound) in->src = pl_calloc(cfg->n_inbound, sizeof(*in->src));
    if (!in || (cfg->n_inbound && !in->src)) goto oom;
    in->cfg = cfg;
    for (; in->n < cfg->n_inbound; in->n++) {
        err[0] = '\0';
        if (source_init(&in->src[in->n], cfg, &cfg->inbound[in->n], err, errlen)) {
            in->n++; /* freed with the others */
            if (err[0]) goto fail;
            goto oom;
        }
    }
    return in;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    inbound_free(in);
    return NULL;
}

void inbound_free(inbound *in)
{
    if (!in) return;
    for (size_t i = 0; in->src && i < in->n; i++) {
        for (size_t k = 0; in->src[i].keys && k < in->src[i].n_secrets; k++)
            sign_key_free(in->src[i].keys[k]);
        pl_free(in->src[i].keys);
        pl_free(in->src[i].secrets);
    }
    pl_free(in->src);
    pl_free(in);
}

/* ---- answers ------------------------------------------------------------- */

/* Answers an error, counts it under result and logs it (source, reason,
 * remote; never a secret or a signature). Returns 0 (answered). */
static int reject(proto_host *h, uint64_t conn_id, source *s, enum inbound_result result, int code,
                  const char *detail, const char *peer)
{
    if (s) atomic_fetch_add_explicit(&s->counts[result], 1, memory_order_relaxed);
    log_event(LOG_WARN, "inbound_rejected", "source", s ? s->cfg->id : "", "reason",
              detail ? detail : proto_error_message(code), "remote", peer ? peer : "", NULL);
    return api_error(h, conn_id, code, detail); /* the API's error body, status and retry hint */
}

static void inbound_answered(proto_host *h, pending *pd, engine_req *r)
{
    answer_ctx *ax = pd->agg;
    source *s = ax->src;
    if (r->status != PL_OK) {
        int code = proto_engine_error(r->status);
        reject(h, pd->conn_id, s, code == PE_LIMIT_EXCEEDED ? R_TOO_LARGE : R_UNAVAILABLE, code,
               NULL, ax->peer);
    } else if (r->duplicate) {
        log_event(LOG_INFO, "inbound_replayed", "source", s->cfg->id, "delivery_id", ax->delivery,
                  NULL);
        reject(h, pd->conn_id, s, R_REPLAYED, PE_REPLAYED, NULL, ax->peer);
    } else {
        atomic_fetch_add_explicit(&s->counts[R_ACCEPTED], 1, memory_order_relaxed);
        sbuf o;
        sbuf_init(&o);
        sbuf_puts(&o, "{\"result\":{\"channel\":");
        sbuf_json_str(&o, r->pub->channel, strlen(r->pub->channel));
        sbuf_puts(&o, ",\"offset\":");
        sbuf_u64(&o, r->pub->offset);
        sbuf_printf(&o, ",\"epoch\":\"%s\",\"id\":\"%s\"}}", r->pub->epoch, r->pub->id);
        h->ops->respond(h, pd->conn_id, o.oom ? 500 : 200, o.data ? o.data : "{}", o.len, 0);
        sbuf_release(&o);
    }
    pl_free(ax);
}

/* ---- verification --------------------------------------------------------- */

/* The outcome of a check: result R_ACCEPTED to go on, else what to answer. */
typedef struct verdict {
    enum inbound_result result;
    int code;
    char detail[160];
} verdict;

static void set_verdict(verdict *v, enum inbound_result r, int code, const char *detail)
{
    v->result = r;
    v->code = code;
    snprintf(v->detail, sizeof(v->detail), "%s", detail);
}

static const char *header(const inbound_request *rq, const char *name, size_t *len)
{
    const char *v = rq->header(rq->header_ctx, name, len);
    if (!v) *len = 0;
    return v;
}

/* Maps a sign.h result to the answer; missing names the first absent header. */
static void sign_verdict(verdict *v, enum sign_result sr, const char *missing)
{
    char msg[160];
    switch (sr) {
    case SIGN_OK:
        v->result = R_ACCEPTED;
        return;
    case SIGN_NO_MATCH:
        set_verdict(v, R_BAD_SIGNATURE, PE_UNAUTHORIZED, "signature does not match");
        return;
    case SIGN_MALFORMED_HEADER:
        set_verdict(v, R_MALFORMED_SIGNATURE, PE_UNAUTHORIZED, "malformed signature header");
        return;
    case SIGN_MISSING_HEADER:
        snprintf(msg, sizeof(msg), "missing header %s", missing);
        set_verdict(v, R_MISSING_HEADER, PE_UNAUTHORIZED, msg);
        return;
    case SIGN_STALE:
        set_verdict(v, R_STALE, PE_BAD_REQUEST, "stale timestamp");
        return;
    case SIGN_FUTURE:
        set_verdict(v, R_FUTURE, PE_BAD_REQUEST, "timestamp in the future");
        return;
    case SIGN_MALFORMED_TIMESTAMP:
        set_verdict(v, R_BAD_TIMESTAMP, PE_BAD_REQUEST, "malformed timestamp");
        return;
    case SIGN_NOMEM:
        break;
    }
    set_verdict(v, R_UNAVAILABLE, PE_INTERNAL, "out of memory");
}

/* Checks the signature of the raw body, before anything reads it. */
static void verify(const source *s, const inbound_request *rq, int64_t now, verdict *v)
{
    const cfg_inbound *c = s->cfg;
    int64_t tol = c->tolerance_ms / 1000;
    size_t n;
    if (c->scheme == CFG_INBOUND_STANDARD) {
        static const char *const names[] = {"webhook-id", "webhook-timestamp", "webhook-signature"};
        sign_request sr = {.body = rq->body, .body_len = rq->body_len};
        sr.id = header(rq, names[0], &sr.id_len);
        sr.timestamp = header(rq, names[1], &sr.timestamp_len);
        sr.signature = header(rq, names[2], &sr.signature_len);
        const char *missing = !sr.id_len ? names[0] : !sr.timestamp_len ? names[1] : names[2];
        sign_verdict(
            v, sign_verify(&sr, (const sign_key *const *)s->keys, s->n_secrets, now, tol, NULL),
            missing);
        return;
    }
    if (c->scheme == CFG_INBOUND_HMAC) {
        const char *val = header(rq, c->header, &n);
        sign_verdict(v,
                     inbound_sig_hmac_verify(val, n, c->prefix, rq->body, rq->body_len, s->secrets,
                                             s->n_secrets, NULL),
                     c->header);
        return;
    }
    const char *val = header(rq, STRIPE_HEADER, &n);
    sign_verdict(v,
                 inbound_sig_stripe_verify(val, n, rq->body, rq->body_len, s->secrets, s->n_secrets,
                                           now, tol, NULL, NULL),
                 STRIPE_HEADER);
}

/* ---- the pub -------------------------------------------------------------- */

/* The delivery id into out (NUL-terminated): webhook-id, the id_header, or a
 * Stripe event's "id"; "" when the source has none. The body was parsed into
 * doc (root, or -1 when it is not JSON). */
static void delivery_id(const source *s, const inbound_request *rq, const json_doc *doc, int root,
                        char *out, verdict *v)
{
    const cfg_inbound *c = s->cfg;
    size_t n = 0;
    out[0] = '\0';
    if (c->id_header) {
        const char *id = header(rq, c->id_header, &n);
        if (!n) {
            char msg[160];
            snprintf(msg, sizeof(msg), "missing header %s", c->id_header);
            set_verdict(v, R_BAD_REQUEST, PE_BAD_REQUEST, msg);
            return;
        }
        if (n > DELIVERY_ID_MAX || !utf8_valid(id, n)) {
            set_verdict(v, R_BAD_REQUEST, PE_BAD_REQUEST, "delivery id too long or not UTF-8");
            return;
        }
        memcpy(out, id, n);
        out[n] = '\0';
        return;
    }
    if (c->scheme != CFG_INBOUND_STRIPE || root < 0 || json_kind(doc, root) != JSON_KIND_OBJECT)
        return;
    int t = json_obj_get(doc, root, "id");
    if (t < 0 || json_kind(doc, t) != JSON_KIND_STRING) return;
    if (json_str_copy(doc, t, out, DELIVERY_ID_MAX + 1, &n) != PL_OK || memchr(out, '\0', n)) {
        out[0] = '\0';
        set_verdict(v, R_BAD_REQUEST, PE_BAD_REQUEST, "the body's id is too long");
    }
}

/* The type from the source's template, {header:Name} replaced by the
 * header's value ("" when absent). */
static void expand_type(const char *tpl, const inbound_request *rq, sbuf *out, verdict *v)
{
    for (const char *p = tpl; *p;) {
        const char *open = strstr(p, "{header:");
        const char *close = open ? strchr(open, '}') : NULL;
        if (!close) {
            sbuf_puts(out, p);
            break;
        }
        sbuf_append(out, p, (size_t)(open - p));
        char name[128];
        size_t nlen = (size_t)(close - open - 8), vlen = 0;
        snprintf(name, sizeof(name), "%.*s", (int)nlen, open + 8);
        const char *val = nlen < sizeof(name) ? header(rq, name, &vlen) : NULL;
        if (val) sbuf_append(out, val, vlen);
        p = close + 1;
    }
    if (out->len > TYPE_MAX || !utf8_valid(out->data ? out->data : "", out->len))
        set_verdict(v, R_BAD_REQUEST, PE_BAD_REQUEST,
                    "the type is over 255 bytes or not UTF-8 with these headers");
}

/* The pub's data: the body when it is one JSON value, else the body as a
 * JSON string (which must then be UTF-8). */
static void put_data(const inbound_request *rq, const json_doc *doc, int root, sbuf *data,
                     verdict *v)
{
    const char *raw;
    size_t n;
    if (root >= 0 && json_raw(doc, root, &raw, &n) == PL_OK) {
        sbuf_append(data, raw, n);
        return;
    }
    if (!utf8_valid(rq->body, rq->body_len)) {
        set_verdict(v, R_BAD_REQUEST, PE_BAD_REQUEST, "the body is neither JSON nor UTF-8 text");
        return;
    }
    sbuf_json_str(data, rq->body, rq->body_len);
}

/* Builds the pub of a verified request and submits it. Returns 1 when it
 * waits for the commit, 0 when answered. */
static int publish(proto_host *h, uint64_t conn_id, source *s, const inbound_request *rq)
{
    verdict v = {.result = R_ACCEPTED};
    json_doc *doc = &h->batch.doc;
    int root = json_parse(doc, rq->body, rq->body_len, NULL) == PL_OK && json_count(doc) == 1
                   ? json_root(doc, 0)
                   : -1;
    char id[DELIVERY_ID_MAX + 1], idem[MAX_IDEM_KEY + 1];
    sbuf data, type, hdrs;
    sbuf_init(&data);
    sbuf_init(&type);
    sbuf_init(&hdrs);
    delivery_id(s, rq, doc, root, id, &v);
    if (!v.result) put_data(rq, doc, root, &data, &v);
    if (!v.result && s->cfg->type) expand_type(s->cfg->type, rq, &type, &v);
    sbuf_puts(&hdrs, "{\"source\":");
    sbuf_json_str(&hdrs, s->cfg->id, strlen(s->cfg->id));
    if (id[0]) {
        sbuf_puts(&hdrs, ",\"delivery_id\":");
        sbuf_json_str(&hdrs, id, strlen(id));
    }
    sbuf_putc(&hdrs, '}');
    /* The source's id first: two sources' ids never collide. */
    int ilen = snprintf(idem, sizeof(idem), "%s:%s", s->cfg->id, id);
    if (!v.result && (ilen < 0 || (size_t)ilen >= sizeof(idem)))
        set_verdict(&v, R_BAD_REQUEST, PE_BAD_REQUEST, "delivery id too long");
    size_t total = data.len + hdrs.len + type.len;
    if (!v.result && total > h->srv->cfg->limits.max_message_bytes)
        set_verdict(&v, R_TOO_LARGE, PE_LIMIT_EXCEEDED, "the pub is over limits.max_message_bytes");
    if (!v.result && (data.oom || type.oom || hdrs.oom))
        set_verdict(&v, R_UNAVAILABLE, PE_INTERNAL, "out of memory");
    pl_pub *p = NULL;
    answer_ctx *ax = NULL;
    if (!v.result) {
        pub_fields f = {.tenant = s->cfg->tenant,
                        .tenant_len = strlen(s->cfg->tenant),
                        .channel = s->cfg->channel,
                        .channel_len = strlen(s->cfg->channel),
                        .data = data.data,
                        .data_len = data.len,
                        .type = type.len ? type.data : NULL,
                        .type_len = type.len,
                        .headers = hdrs.data,
                        .headers_len = hdrs.len,
                        .idem_key = id[0] ? idem : NULL,
                        .idem_key_len = id[0] ? (size_t)ilen : 0,
                        .now_ms = h->now_ms,
                        .now_us = h->now_us};
        p = pub_new(&f, s->ns->cls);
        ax = pl_calloc(1, sizeof(*ax));
    }
    sbuf_release(&data);
    sbuf_release(&type);
    sbuf_release(&hdrs);
    if (v.result) return reject(h, conn_id, s, v.result, v.code, v.detail, rq->peer);
    if (!p || !ax) {
        pub_unref(p);
        pl_free(ax);
        return reject(h, conn_id, s, R_UNAVAILABLE, PE_INTERNAL, "out of memory", rq->peer);
    }
    ax->src = s;
    snprintf(ax->peer, sizeof(ax->peer), "%s", rq->peer ? rq->peer : "");
    snprintf(ax->delivery, sizeof(ax->delivery), "%s", id);
    pending pd = {.conn_id = conn_id, .done = inbound_answered, .agg = ax};
    int code = proto_submit_pub(h, p, s->ns, &pd);
    if (!code) return 1;
    pl_free(ax);
    return reject(h, conn_id, s, R_UNAVAILABLE, code, NULL, rq->peer);
}

int inbound_handle(proto_host *h, uint64_t conn_id, const inbound_request *rq)
{
    inbound *in = h->srv->inbound;
    source *s = NULL;
    for (size_t i = 0; in && i < in->n && !s; i++)
        if (strlen(in->src[i].cfg->id) == rq->source_len &&
            !memcmp(in->src[i].cfg->id, rq->source, rq->source_len))
            s = &in->src[i];
    if (!s) {
        if (in) atomic_fetch_add_explicit(&in->unknown, 1, memory_order_relaxed);
        return reject(h, conn_id, NULL, R_BAD_REQUEST, PE_UNKNOWN_CHANNEL, "no such inbound source",
                      rq->peer);
    }
    if (rq->body_too_large)
        return reject(h, conn_id, s, R_TOO_LARGE, PE_LIMIT_EXCEEDED, "request body too large",
                      rq->peer);
    verdict v = {.result = R_ACCEPTED};
    verify(s, rq, h->now_ms / 1000, &v);
    if (v.result) return reject(h, conn_id, s, v.result, v.code, v.detail, rq->peer);
    return publish(h, conn_id, s, rq);
}

void inbound_render_metrics(const inbound *in, sbuf *out)
{
    sbuf_puts(out, "# HELP parley_inbound_requests_total Inbound webhook requests by source and "
                   "result.\n# TYPE parley_inbound_requests_total counter\n");
    for (size_t i = 0; in && i < in->n; i++)
        for (int r = 0; r < R__COUNT; r++) {
            sbuf_printf(out, "parley_inbound_requests_total{source=\"%s\",result=\"%s\"} ",
                        in->src[i].cfg->id, result_names[r]);
            sbuf_u64(out, atomic_load_explicit(&in->src[i].counts[r], memory_order_relaxed));
            sbuf_putc(out, '\n');
        }
    metrics_counter(out, "parley_inbound_unknown_source_total",
                    "Inbound webhook requests for no configured source (answered 404).", "counter",
                    in ? atomic_load_explicit(&in->unknown, memory_order_relaxed) : 0);
}
