/* The fixture of the protocol session tests: a fake server and worker around
 * real services, recording connections, and the test in the engine's place
 * (see session_helpers.h). The fake's own bookkeeping uses malloc, not
 * pl_malloc, so out-of-memory runs fail only the code under test. */
#include "session_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "util/clock.h"
#include "util/mem.h"

/* ---- the recording sink ------------------------------------------------------ */

static fake_conn *fc(pl_sink *s)
{
    return (fake_conn *)s;
}

static void record(fake_conn *c, enum out_kind kind, const char *text, size_t len)
{
    if (c->nmsgs == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->msgs = realloc(c->msgs, c->cap * sizeof(*c->msgs));
        assert_non_null(c->msgs);
    }
    char *t = malloc(len + 1);
    assert_non_null(t);
    memcpy(t, text, len);
    t[len] = '\0';
    c->msgs[c->nmsgs++] = (fake_msg){.kind = kind, .text = t};
}

/* As net/conn.c: nothing but raw bytes once closing, and a push past the
 * queue bound (beside the replies), or anything past the hard cap, closes
 * the connection as a slow consumer, dropping the queue. 0 when taken. */
static int admit(fake_conn *c, enum out_kind kind, size_t len)
{
    size_t bound = c->fx->cfg.limits.outbound_queue_bytes;
    if (c->base.closed || (kind != OUT_RAW && c->base.closing)) {
        c->refused++;
        return -1;
    }
    if (kind != OUT_RAW &&
        (c->base.queued + len > bound * SINK_HARD_CAP_FACTOR ||
         (kind != OUT_REPLY && c->base.queued - c->base.replies + len > bound))) {
        c->refused++;
        c->base.queued = c->base.replies = 0; /* conn.c drops what was not written yet */
        sink_close(&c->base, PC_SLOW_CONSUMER, "slow consumer");
        return -1;
    }
    c->base.queued += len;
    if (kind == OUT_REPLY) c->base.replies += len;
    return 0;
}

static void record_pubs(fake_conn *c, const rbuf *b)
{
    const char *p = b->data, *end = b->data + b->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        record(c, OUT_PUB, p, (size_t)(e - p));
        p = nl ? nl + 1 : end;
    }
}

static int f_enqueue(pl_sink *s, enum out_kind kind, void *ref, size_t len)
{
    fake_conn *c = fc(s);
    int rc = admit(c, kind, len);
    if (kind == OUT_PUB) {
        pl_pub *p = ref;
        const rbuf *f = proto_pub_frame(p);
        if (!rc && f) record(c, OUT_PUB, f->data, f->len);
        pub_unref(p);
        return rc;
    }
    rbuf *b = ref;
    if (!rc && kind == OUT_PUBS) record_pubs(c, b);
    if (!rc && kind != OUT_PUBS) record(c, kind, b->data, b->len);
    rbuf_unref(b);
    return rc;
}

static int f_enqueue_pub(pl_sink *s, pl_pub *p)
{
    const rbuf *f = proto_pub_frame(p);
    if (!f) {
        /* As conn.c: a pub that cannot be encoded closes the connection. */
        sink_close(s, PC_OVERLOADED, "overloaded");
        return -1;
    }
    return f_enqueue(s, OUT_PUB, pub_ref(p), f->len);
}

static int f_send_json(pl_sink *s, const char *json, size_t len)
{
    fake_conn *c = fc(s);
    if (admit(c, OUT_JSON, len)) return -1;
    record(c, OUT_JSON, json, len);
    return 0;
}

static int f_send_reply(pl_sink *s, const char *json, size_t len)
{
    fake_conn *c = fc(s);
    if (admit(c, OUT_REPLY, len)) return -1;
    record(c, OUT_REPLY, json, len);
    return 0;
}

static void f_reading(pl_sink *s, int on)
{
    fc(s)->reading_paused = !on;
}

static void f_close(pl_sink *s, uint16_t code, const char *reason)
{
    fake_conn *c = fc(s);
    if (s->closed || s->closing) return;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
    s->closing = 1;
}

static const sink_ops fake_sink_ops = {.enqueue = f_enqueue,
                                       .enqueue_pub = f_enqueue_pub,
                                       .send_json = f_send_json,
                                       .send_reply = f_send_reply,
                                       .reading = f_reading,
                                       .close = f_close};

/* ---- the host ---------------------------------------------------------------- */

static fixture *fx_of(proto_host *h)
{
    return (fixture *)((char *)h - offsetof(fixture, host));
}

static void h_submit(proto_host *h, engine_req *r)
{
    fixture *fx = fx_of(h);
    assert_true(fx->nreqs < FX_MAX_REQS);
    fx->reqs[fx->nreqs++] = r;
    fx->submitted++;
}

/* The hub: every worker's fan-out gets the pub (one worker here). */
static void h_broadcast(proto_host *h, pl_pub *pub)
{
    fx_of(h)->broadcasts++;
    fanout_pubs(h->fan, &pub, 1);
}

static session *h_find(proto_host *h, uint64_t id)
{
    fixture *fx = fx_of(h);
    for (size_t i = 0; i < fx->nconns; i++)
        if (fx->conns[i]->base.id == id && !fx->conns[i]->base.closed) return fx->conns[i]->s;
    return NULL;
}

static void h_respond(proto_host *h, uint64_t id, int status, const char *body, size_t len,
                      int64_t retry_after_ms)
{
    (void)h, (void)id, (void)status, (void)body, (void)len;
    fail_msg("the session answered an HTTP request");
}

static void h_each(proto_host *h, void (*fn)(session *s, void *arg), void *arg)
{
    fixture *fx = fx_of(h);
    for (size_t i = 0; i < fx->nconns; i++)
        if (fx->conns[i]->s) fn(fx->conns[i]->s, arg);
}

static int h_offload(proto_host *h, void (*work)(void *arg), void (*done)(proto_host *h, void *arg),
                     void *arg)
{
    (void)h, (void)work, (void)done, (void)arg;
    fail_msg("the session offloaded work (only API methods do)");
    return -1;
}

static const proto_host_ops host_ops = {h_submit, h_broadcast, h_find,   h_respond,
                                        h_each,   NULL,        h_offload};

static void ps_call_all(proto_server *ps, proto_call *call)
{
    (void)ps;
    call->release(call);
}

static void ps_call_one(proto_server *ps, proto_host *h, proto_call *call)
{
    (void)ps, (void)h;
    call->release(call);
}

static int ps_ready(proto_server *ps)
{
    (void)ps;
    return 1;
}

static const proto_server_ops server_ops = {ps_call_all, ps_call_one, ps_ready};

/* ---- fixture ------------------------------------------------------------- */

/* Single-tenant development mode as net/server.c sets it up: the tenant
 * "default" with one HS256 secret. */
static void add_tenant(fixture *fx)
{
    char err[256] = "";
    const char *secrets[] = {FX_SECRET};
    tenant_spec spec = {.id = "default", .secrets = secrets, .nsecrets = 1};
    fx->srv.tenants = tenants_new(NULL);
    assert_non_null(fx->srv.tenants);
    assert_int_equal(tenants_put(fx->srv.tenants, &spec, 0, err, sizeof(err)), 0);
    fx->srv.dev_secret = FX_SECRET;
}

static void init_host(fixture *fx)
{
    metrics_shard_init(&fx->metrics);
    fanout_env fe = {
        .dlv = NULL, /* no guaranteed namespace is used */
        .metrics = &fx->metrics,
        .encode = proto_encode_pub,
        .shed_above = fx->cfg.limits.outbound_queue_bytes / 2,
        .queue_bound = fx->cfg.limits.outbound_queue_bytes,
        .subscribed = session_subscribed,
    };
    proto_host_init(&fx->host);
    fx->host.ops = &host_ops;
    fx->host.srv = &fx->srv;
    fx->host.metrics = &fx->metrics;
    fx->host.fan = fanout_new(&fe);
    assert_non_null(fx->host.fan);
    fx->host.now_ms = clock_wall_ms();
    fx->host.now_us = clock_mono_us();
}

fixture *fx_new(void (*tune)(config *c))
{
    fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(config_defaults(&fx->cfg), 0);
    if (tune) tune(&fx->cfg);
    fx->srv.ops = &server_ops;
    fx->srv.cfg = &fx->cfg;
    add_tenant(fx);
    fx->srv.presence = presence_new();
    fx->srv.limits = rl_table_new(0);
    assert_non_null(fx->srv.presence);
    assert_non_null(fx->srv.limits);
    pthread_mutex_init(&fx->srv.keys_lock, NULL);
    fx->srv.nworkers = 1;
    fx->hosts[0] = &fx->host;
    fx->srv.hosts = fx->hosts;
    init_host(fx);
    return fx;
}

static void conn_free(fake_conn *c)
{
    session_free(c->s);
    conn_clear(c);
    free(c->msgs);
    free(c);
}

void fx_free(fixture *fx)
{
    for (size_t i = 0; i < fx->nconns; i++)
        conn_free(fx->conns[i]);
    for (size_t i = 0; i < fx->nreqs; i++)
        engine_req_free(fx->reqs[i]);
    fanout_free(fx->host.fan);
    proto_host_release(&fx->host);
    metrics_shard_release(&fx->metrics);
    presence_free(fx->srv.presence);
    rl_table_free(fx->srv.limits);
    tenants_free(fx->srv.tenants);
    pthread_mutex_destroy(&fx->srv.keys_lock);
    config_release(&fx->cfg);
    free(fx);
}

void fx_advance_ms(fixture *fx, int64_t ms)
{
    fx->host.now_ms += ms;
    fx->host.now_us += ms * 1000;
}

/* ---- connections ----------------------------------------------------------- */

fake_conn *fx_conn(fixture *fx)
{
    assert_true(fx->nconns < FX_MAX_CONNS);
    fake_conn *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->fx = fx;
    c->base.ops = &fake_sink_ops;
    c->base.id = 100 + fx->nconns;
    c->base.kind = SINK_WS;
    c->s = session_new(&fx->host, &c->base);
    fx->conns[fx->nconns++] = c;
    return c;
}

void fx_conn_gone(fake_conn *c)
{
    session_free(c->s);
    c->s = NULL;
    c->base.closed = 1;
}

void conn_send(fake_conn *c, const char *text)
{
    session_on_text(c->s, text, strlen(text));
}

void conn_drain(fake_conn *c)
{
    c->base.queued = c->base.replies = 0;
    session_on_drain(c->s);
}

void conn_clear(fake_conn *c)
{
    for (size_t i = 0; i < c->nmsgs; i++) {
        free(c->msgs[i].text);
        json_decref(c->msgs[i].json);
    }
    c->nmsgs = 0;
}

json_t *conn_json(fake_conn *c, size_t i)
{
    if (i >= c->nmsgs) fail_msg("message %zu of %zu expected", i + 1, c->nmsgs);
    fake_msg *m = &c->msgs[i];
    if (!m->json) m->json = json_loads(m->text, 0, NULL);
    if (!m->json) fail_msg("not JSON: %s", m->text);
    return m->json;
}

void conn_connect(fake_conn *c, const char *user)
{
    char *tok = fx_token(user, 3600, NULL);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "{\"id\":1,\"method\":\"connect\",\"params\":{\"token\":\"%s\"}}",
             tok);
    pl_free(tok);
    conn_send(c, cmd);
    json_t *res = expect_result(c, 0, 1);
    assert_string_equal(jstr(res, "user"), user);
    assert_int_equal(c->nmsgs, 1);
    conn_clear(c);
}

/* ---- tokens ---------------------------------------------------------------- */

char *fx_token(const char *user, int64_t ttl_s, const char *extra)
{
    char claims[512];
    int n = snprintf(claims, sizeof(claims), "{\"sub\":\"%s\"", user);
    if (ttl_s)
        n += snprintf(claims + n, sizeof(claims) - (size_t)n, ",\"exp\":%lld",
                      (long long)(clock_wall_ms() / 1000 + ttl_s));
    if (extra) n += snprintf(claims + n, sizeof(claims) - (size_t)n, ",%s", extra);
    n += snprintf(claims + n, sizeof(claims) - (size_t)n, "}");
    char *tok = jwt_sign_hs256(FX_SECRET, strlen(FX_SECRET), claims, (size_t)n);
    assert_non_null(tok);
    return tok;
}

/* ---- the engine -------------------------------------------------------------- */

engine_req *fx_take(fixture *fx, enum engine_op op)
{
    if (!fx->nreqs) fail_msg("no request was submitted");
    engine_req *r = fx->reqs[0];
    memmove(fx->reqs, fx->reqs + 1, (fx->nreqs - 1) * sizeof(*fx->reqs));
    fx->nreqs--;
    assert_int_equal(r->op, op);
    return r;
}

void fx_answer(fixture *fx, engine_req *r)
{
    proto_on_engine_done(&fx->host, r);
}

pl_pub *fx_pub(const char *ch, uint64_t off)
{
    char data[32];
    int n = snprintf(data, sizeof(data), "{\"n\":%llu}", (unsigned long long)off);
    pub_fields f = {.tenant = "default",
                    .tenant_len = 7,
                    .channel = ch,
                    .channel_len = strlen(ch),
                    .data = data,
                    .data_len = (size_t)n,
                    .user = "bob",
                    .user_len = 3};
    pl_pub *p = pub_new(&f, PUB_STANDARD);
    if (!p) return NULL;
    p->offset = off;
    snprintf(p->epoch, sizeof(p->epoch), "%s", FX_EPOCH);
    clock_ulid(p->id);
    return p;
}

void fx_fill_read(engine_req *r, const read_answer *a)
{
    r->status = PL_OK;
    r->head = a->head;
    r->first = a->first;
    snprintf(r->epoch, sizeof(r->epoch), "%s", a->epoch ? a->epoch : FX_EPOCH);
    r->recovered = a->recovered;
    r->more = a->more;
    if (a->lo > a->hi) return;
    size_t n = (size_t)(a->hi - a->lo + 1);
    r->pubs = pl_calloc(n, sizeof(*r->pubs));
    if (!r->pubs) {
        r->status = PL_ENOMEM; /* as the engine: an answer without its pubs fails */
        return;
    }
    for (uint64_t o = a->lo; o <= a->hi; o++) {
        pl_pub *p = fx_pub(r->channel, o);
        if (!p) {
            r->status = PL_ENOMEM;
            return;
        }
        r->pubs[r->npubs++] = p;
    }
}

void fx_answer_read(fixture *fx, const read_answer *a)
{
    engine_req *r = fx_take(fx, ENGINE_READ);
    fx_fill_read(r, a);
    fx_answer(fx, r);
}

void fx_commit(fixture *fx, engine_req *r, uint64_t off)
{
    r->status = PL_OK;
    r->pub->offset = off;
    snprintf(r->pub->epoch, sizeof(r->pub->epoch), "%s", FX_EPOCH);
    clock_ulid(r->pub->id);
    fanout_pubs(fx->host.fan, &r->pub, 1);
    fx_answer(fx, r);
}

/* ---- assertions on what a client saw ---------------------------------------- */

long long jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) fail_msg("\"%s\" is not an integer", key);
    return json_integer_value(v);
}

const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

int jbool(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_boolean(v)) fail_msg("\"%s\" is not a boolean", key);
    return json_is_true(v);
}

static void expect_id(json_t *m, long long id)
{
    if (id < 0)
        assert_null(json_object_get(m, "id"));
    else
        assert_int_equal(jint(m, "id"), id);
}

const char *expect_error(fake_conn *c, size_t i, long long id, int code)
{
    json_t *m = conn_json(c, i);
    expect_id(m, id);
    json_t *e = json_object_get(m, "error");
    if (!e) fail_msg("an error expected: %s", c->msgs[i].text);
    assert_int_equal(jint(e, "code"), code);
    return jstr(e, "message");
}

json_t *expect_result(fake_conn *c, size_t i, long long id)
{
    json_t *m = conn_json(c, i);
    expect_id(m, id);
    json_t *r = json_object_get(m, "result");
    if (!json_is_object(r)) fail_msg("a result expected: %s", c->msgs[i].text);
    return r;
}

json_t *expect_push(fake_conn *c, size_t i, const char *kind)
{
    json_t *m = conn_json(c, i);
    assert_string_equal(jstr(m, "push"), kind);
    return m;
}

void expect_pub(fake_conn *c, size_t i, const char *ch, uint64_t off)
{
    json_t *m = expect_push(c, i, "pub");
    assert_int_equal(c->msgs[i].kind, OUT_PUB);
    assert_string_equal(jstr(m, "channel"), ch);
    assert_int_equal(jint(m, "offset"), off);
    assert_int_equal(jint(json_object_get(m, "data"), "n"), off);
}

void expect_pubs(json_t *result, uint64_t lo, uint64_t hi)
{
    json_t *pubs = json_object_get(result, "pubs");
    assert_true(json_is_array(pubs));
    size_t n = lo > hi ? 0 : (size_t)(hi - lo + 1);
    assert_int_equal(json_array_size(pubs), n);
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(pubs, i);
        assert_int_equal(jint(p, "offset"), lo + i);
        assert_int_equal(jint(json_object_get(p, "data"), "n"), lo + i);
        assert_null(json_object_get(p, "push"));
    }
}
