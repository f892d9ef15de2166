/* Each request kind as Redis commands, and their replies. A reply only
 * fills the request and marks it replied; order.c decides when it reaches
 * the sink (after the loop iteration's I/O, in thread.c). */
#include "engine/redis/redis_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/plan.h"
#include "engine/redis/pack.h"
#include "util/clock.h"
#include "util/mem.h"

#define RD_PUB_BATCH 64 /* publishes per script call */
#define RD_MAX_ARGS (9 + 13 * RD_PUB_BATCH)
#define RD_READ_TRIES 3
#define RD_WAIT_MS "1000" /* how long WAIT waits for min_replicas_acked replicas */

/* Arguments built in one buffer, then pointed at (the buffer may move
 * while it grows). */
typedef struct rd_args {
    sbuf *b;
    size_t off[RD_MAX_ARGS], len[RD_MAX_ARGS];
    int n;
} rd_args;

static void av_begin(rd_args *a, sbuf *b)
{
    a->b = b;
    a->n = 0;
    sbuf_reset(b);
}

static void av_open(rd_args *a)
{
    a->off[a->n] = a->b->len;
}

static void av_close(rd_args *a)
{
    a->len[a->n] = a->b->len - a->off[a->n];
    a->n++;
}

static void av_add(rd_args *a, const char *s, size_t n)
{
    av_open(a);
    sbuf_append(a->b, s, n);
    av_close(a);
}

static void av_str(rd_args *a, const char *s)
{
    av_add(a, s ? s : "", s ? strlen(s) : 0);
}

static void av_u64(rd_args *a, uint64_t v)
{
    av_open(a);
    sbuf_u64(a->b, v);
    av_close(a);
}

static void key_into(rd_engine *e, sbuf *b, const char *kind, const char *tenant,
                     const char *channel)
{
    sbuf_puts(b, e->prefix);
    sbuf_putc(b, ':');
    sbuf_puts(b, kind);
    if (tenant) {
        sbuf_putc(b, ':');
        sbuf_puts(b, tenant);
    }
    if (channel) {
        sbuf_putc(b, ':');
        sbuf_puts(b, channel);
    }
}

static void av_key(rd_args *a, rd_engine *e, const char *kind, const char *tenant,
                   const char *channel)
{
    av_open(a);
    key_into(e, a->b, kind, tenant, channel);
    av_close(a);
}

void rd_key(rd_engine *e, sbuf *b, const char *kind, const char *tenant, const char *channel)
{
    sbuf_reset(b);
    key_into(e, b, kind, tenant, channel);
}

static int av_send(rd_engine *e, rd_link *l, rd_args *a, redisCallbackFn *fn, void *priv)
{
    const char *argv[RD_MAX_ARGS];
    if (a->b->oom) return -1;
    for (int i = 0; i < a->n; i++)
        argv[i] = a->b->data + a->off[i];
    (void)e;
    return rd_cmd(l, fn, priv, a->n, argv, a->len);
}

static void av_evalsha(rd_args *a, rd_engine *e, enum rd_script s, int nkeys)
{
    av_str(a, "EVALSHA");
    av_str(a, e->sha[s]);
    av_u64(a, (uint64_t)nkeys);
}

static void finish(rd_pend *p, int status)
{
    p->req->status = status;
    p->replied = 1;
}

/* A reply that is no answer: the link went down (outcome unknown: a
 * publish may have been stored, its retry with an idempotency key tells),
 * or Redis refused the command. */
static int bad_reply(rd_engine *e, rd_pend *p, redisReply *r)
{
    if (r && r->type != REDIS_REPLY_ERROR) return 0;
    if (r && !strncmp(r->str, "READONLY", 8) && e->cmd.ac) {
        /* A replica now (failover): reconnect, to the master Sentinel names. */
        redisAsyncDisconnect(e->cmd.ac);
    } else if (r && !strncmp(r->str, "NOSCRIPT", 8) && e->cmd.ac) {
        /* The scripts were flushed: load them again for the next calls. */
        for (int s = 0; s < RD_SC_COUNT; s++)
            redisAsyncCommand(e->cmd.ac, NULL, NULL, "SCRIPT LOAD %s",
                              rd_script_text((enum rd_script)s));
    }
    if (r) rd_notice(e, ENGINE_REFUSED, "commands", r->str);
    finish(p, PL_EIO);
    return 1;
}

static uint64_t as_u64(const redisReply *r)
{
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer > 0 ? (uint64_t)r->integer : 0;
    if (r->type == REDIS_REPLY_STRING) return strtoull(r->str, NULL, 10);
    return 0;
}

static int is_str(const redisReply *r, const char *s)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(s) && !memcmp(r->str, s, r->len);
}

/* An epoch as Redis holds it; an empty one when it is not an epoch (a
 * hostile or corrupt meta must not reach push frames). */
static void copy_epoch(char out[PUB_EPOCH_LEN + 1], const redisReply *r)
{
    size_t n = r && r->type == REDIS_REPLY_STRING ? r->len : 0;
    if (n && !rd_epoch_ok(r->str, n)) n = 0;
    if (n) memcpy(out, r->str, n);
    out[n] = '\0';
}

/* ---------------------------------------------------------------- publish */

static void publish_dup(rd_engine *e, rd_pend *p, redisReply *r)
{
    engine_req *q = p->req;
    pl_pub *old = q->pub;
    uint64_t off = as_u64(r->element[1]);
    char ep[PUB_EPOCH_LEN + 1];
    copy_epoch(ep, r->element[2]);
    q->duplicate = 1;
    if (r->elements >= 5 && r->element[4]->type == REDIS_REPLY_STRING) {
        pl_pub *orig = rd_unpack(r->element[4]->str, r->element[4]->len, old->tenant,
                                 strlen(old->tenant), old->channel, strlen(old->channel), off, ep,
                                 strlen(ep), (int64_t)as_u64(r->element[3]));
        if (orig) {
            q->pub = orig;
            pub_unref(old);
        }
    }
    if (q->pub == old) {
        old->offset = off;
        memcpy(old->epoch, ep, sizeof(ep));
    }
    pthread_mutex_lock(&e->stats_mu);
    e->stats.duplicates++;
    pthread_mutex_unlock(&e->stats_mu);
    finish(p, PL_OK);
}

/* One publish's result in a batch's reply. */
static void publish_one(rd_engine *e, rd_pend *p, redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || !r->elements) {
        finish(p, PL_EIO);
    } else if (is_str(r->element[0], "limit")) {
        finish(p, PL_ELIMIT);
    } else if (is_str(r->element[0], "dup") && r->elements >= 3) {
        publish_dup(e, p, r);
    } else if (is_str(r->element[0], "ok") && r->elements == 4) {
        pl_pub *pub = p->req->pub;
        pub->offset = as_u64(r->element[1]);
        copy_epoch(pub->epoch, r->element[2]);
        p->seq = as_u64(r->element[3]);
        p->ordered = p->is_pub = 1;
        finish(p, PL_OK);
    } else {
        finish(p, PL_EIO);
    }
}

/* The publishes of one script call (priv). */
typedef struct rd_batch {
    size_t n;
    int waiting; /* a WAIT follows the script call */
    rd_pend *p[RD_PUB_BATCH];
} rd_batch;

static void publish_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    rd_batch *b = priv;
    rd_engine *e = ((rd_link *)ac->data)->e;
    redisReply *r = reply;
    int whole = r && r->type == REDIS_REPLY_ARRAY && r->elements == b->n;
    for (size_t i = 0; i < b->n; i++) {
        if (bad_reply(e, b->p[i], r))
            continue;
        else if (!whole)
            finish(b->p[i], PL_EIO);
        else
            publish_one(e, b->p[i], r->element[i]);
        /* With WAIT behind it, the answer waits for the replicas (wait_cb). */
        if (b->waiting) b->p[i]->replied = 0;
    }
    pthread_mutex_lock(&e->stats_mu);
    e->stats.commits++;
    e->stats.committed_pubs += b->n;
    if (b->n > e->stats.batch_max) e->stats.batch_max = b->n;
    pthread_mutex_unlock(&e->stats_mu);
    if (!b->waiting) pl_free(b);
}

/* WAIT's answer: the batch's new pubs reached min_replicas_acked replicas,
 * or they are answered 113 (stored on the master only: a failover may lose
 * them, a retry with the same idempotency key tells). */
static void wait_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    rd_batch *b = priv;
    rd_engine *e = ((rd_link *)ac->data)->e;
    redisReply *r = reply;
    int enough = r && r->type == REDIS_REPLY_INTEGER && r->integer >= (long long)e->min_replicas;
    if (r && !enough)
        rd_notice(e, ENGINE_REFUSED, "commands", "fewer replicas than min_replicas_acked acked");
    for (size_t i = 0; i < b->n; i++) {
        rd_pend *p = b->p[i];
        if (!enough && p->req->status == PL_OK && !p->req->duplicate) {
            p->req->status = PL_EIO;
            p->ordered = 0;
        }
        p->replied = 1;
    }
    pl_free(b);
}

static void idem_key(rd_args *a, rd_engine *e, const pl_pub *pub)
{
    av_open(a);
    key_into(e, a->b, "i", pub->tenant, NULL);
    sbuf_putc(a->b, ':');
    sbuf_u64(a->b, strlen(pub->channel));
    sbuf_putc(a->b, ':');
    sbuf_puts(a->b, pub->channel);
    sbuf_putc(a->b, ':');
    sbuf_puts(a->b, pub->idem_key ? pub->idem_key : "");
    av_close(a);
}

/* Whether the publish can go to Redis; if not it is finished here. */
static int publishable(rd_engine *e, rd_pend *p)
{
    engine_req *r = p->req;
    /* Per-recipient delivery state lives in the SQLite engine only. */
    if (r->nrecipients || r->pub->cls == PUB_GUARANTEED) {
        finish(p, PL_DECLINED);
        return 0;
    }
    if (!e->cmd.up) {
        finish(p, PL_EIO);
        return 0;
    }
    if (!r->pub->id[0]) clock_ulid_at(r->pub->id, r->pub->ts_ms);
    return 1;
}

static void pub_args(rd_args *a, rd_engine *e, const engine_req *r)
{
    const pl_pub *pub = r->pub;
    char ep[PUB_EPOCH_LEN + 1];
    engine_make_epoch(ep);
    av_str(a, ep);
    av_u64(a, (uint64_t)pub->ts_ms);
    av_u64(a, r->history_size);
    av_u64(a, r->history_ttl_ms > 0 ? (uint64_t)r->history_ttl_ms : 0);
    av_u64(a, r->max_channels);
    av_str(a, pub->channel);
    av_str(a, pub->tenant);
    av_open(a);
    rd_pack(a->b, pub);
    av_close(a);
    av_str(a, pub->idem_key ? "1" : "0");
}

/* One script call for up to RD_PUB_BATCH publishes, in their order. The
 * keys go first (KEYS), then the arguments: two passes over the batch. */
static void send_publishes(rd_engine *e, rd_batch *b)
{
    rd_args a;
    av_begin(&a, &e->args);
    av_evalsha(&a, e, RD_SC_PUBLISH, (int)(3 + 4 * b->n));
    av_key(&a, e, "seq", NULL, NULL);
    av_key(&a, e, "n", NULL, NULL);
    av_key(&a, e, "era", NULL, NULL);
    for (size_t i = 0; i < b->n; i++) {
        const pl_pub *pub = b->p[i]->req->pub;
        av_key(&a, e, "m", pub->tenant, pub->channel);
        av_key(&a, e, "s", pub->tenant, pub->channel);
        idem_key(&a, e, pub);
        av_key(&a, e, "tc", pub->tenant, NULL);
    }
    av_u64(&a, e->notify_maxlen);
    av_u64(&a, (uint64_t)e->opts.dedup_window_ms);
    for (size_t i = 0; i < b->n; i++)
        pub_args(&a, e, b->p[i]->req);
    b->waiting = e->min_replicas > 0;
    if (!av_send(e, &e->cmd, &a, publish_cb, b)) {
        if (!b->waiting) return;
        char n[16];
        snprintf(n, sizeof(n), "%u", e->min_replicas);
        const char *argv[] = {"WAIT", n, RD_WAIT_MS};
        const size_t lens[] = {4, strlen(n), strlen(RD_WAIT_MS)};
        if (!rd_cmd(&e->cmd, wait_cb, b, 3, argv, lens)) return;
        /* The script went out but WAIT cannot follow: the link is going
         * down, and both callbacks run with no reply. */
        b->waiting = 0;
        return;
    }
    for (size_t i = 0; i < b->n; i++)
        finish(b->p[i], PL_EIO);
    pl_free(b);
}

/* ------------------------------------------------------------------ reads */

static void start_look(rd_engine *e, rd_pend *p);

/* Every user's cursor, furthest first, at most limit. */
static int cmp_cursor(const void *x, const void *y)
{
    uint64_t a = as_u64(((redisReply *const *)x)[1]), b = as_u64(((redisReply *const *)y)[1]);
    return a < b ? 1 : a > b ? -1 : 0;
}

static int cursors_json(engine_req *r, redisReply *all)
{
    size_t n = all && all->type == REDIS_REPLY_ARRAY ? all->elements / 2 : 0;
    if (n) qsort(all->element, n, 2 * sizeof(redisReply *), cmp_cursor);
    sbuf o;
    sbuf_init(&o);
    sbuf_putc(&o, '[');
    for (size_t i = 0; i < n && (!r->limit || i < r->limit); i++) {
        redisReply *u = all->element[2 * i];
        sbuf_puts(&o, i ? ",{\"user\":" : "{\"user\":");
        sbuf_json_str(&o, u->str ? u->str : "", u->str ? u->len : 0);
        sbuf_puts(&o, ",\"offset\":");
        sbuf_u64(&o, as_u64(all->element[2 * i + 1]));
        sbuf_putc(&o, '}');
    }
    sbuf_putc(&o, ']');
    pl_free(r->json);
    r->json = o.oom ? NULL : pl_strndup(o.data, o.len);
    sbuf_release(&o);
    return r->json ? 0 : -1;
}

/* The pubs [lo, hi] as read; any offset missing (a trim raced the read) or
 * malformed makes the read start over. */
static int take_range(rd_pend *p, redisReply *r)
{
    engine_req *q = p->req;
    size_t want = (size_t)(p->hi - p->lo + 1);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != want) return -1;
    pl_pub **arr = pl_calloc(want, sizeof(*arr));
    if (!arr) return -1;
    size_t n = 0;
    for (; n < want; n++) {
        redisReply *ent = r->element[n], *f;
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2) break;
        if (as_u64(ent->element[0]) != 0 || ent->element[0]->len < 3) break;
        uint64_t off = strtoull(ent->element[0]->str + 2, NULL, 10);
        f = ent->element[1];
        if (off != p->lo + n || f->type != REDIS_REPLY_ARRAY || f->elements != 4) break;
        arr[n] = rd_unpack(f->element[3]->str, f->element[3]->len, q->tenant, strlen(q->tenant),
                           q->channel, strlen(q->channel), off, q->epoch, strlen(q->epoch),
                           (int64_t)as_u64(f->element[1]));
        if (!arr[n]) break;
    }
    if (n < want) {
        while (n)
            pub_unref(arr[--n]);
        pl_free(arr);
        return -1;
    }
    if (q->reverse && q->mode == ENGINE_READ_HISTORY)
        for (size_t i = 0; i < n / 2; i++) {
            pl_pub *t = arr[i];
            arr[i] = arr[n - 1 - i];
            arr[n - 1 - i] = t;
        }
    q->pubs = arr;
    q->npubs = n;
    return 0;
}

static void range_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    rd_pend *p = priv;
    rd_engine *e = ((rd_link *)ac->data)->e;
    if (bad_reply(e, p, reply)) return;
    if (!take_range(p, reply)) return finish(p, PL_OK);
    if (++p->tries >= RD_READ_TRIES) return finish(p, PL_EIO);
    start_look(e, p);
}

static void look_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    rd_pend *p = priv;
    rd_engine *e = ((rd_link *)ac->data)->e;
    redisReply *r = reply;
    engine_req *q = p->req;
    if (bad_reply(e, p, r)) return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements && is_str(r->element[0], "limit"))
        return finish(p, PL_ELIMIT);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 5) return finish(p, PL_EIO);
    p->seq = as_u64(r->element[0]);
    p->ordered = 1;
    q->head = as_u64(r->element[1]);
    char ep[PUB_EPOCH_LEN + 1];
    copy_epoch(ep, r->element[2]);
    uint64_t first = as_u64(r->element[3]);
    if (q->user) q->cursor = as_u64(r->element[4]);
    engine_plan_read(q, first <= q->head ? first : 0, ep, &p->lo, &p->hi);
    if (q->mode == ENGINE_READ_CURSORS)
        return finish(p,
                      cursors_json(q, r->elements > 5 ? r->element[5] : NULL) ? PL_ENOMEM : PL_OK);
    if (p->lo > p->hi) return finish(p, PL_OK);
    rd_args a;
    char lo[32], hi[32];
    snprintf(lo, sizeof(lo), "0-%llu", (unsigned long long)p->lo);
    snprintf(hi, sizeof(hi), "0-%llu", (unsigned long long)p->hi);
    av_begin(&a, &e->args);
    av_str(&a, "XRANGE");
    av_key(&a, e, "s", q->tenant, q->channel);
    av_str(&a, lo);
    av_str(&a, hi);
    if (av_send(e, &e->cmd, &a, range_cb, p)) finish(p, PL_EIO);
}

static void start_look(rd_engine *e, rd_pend *p)
{
    engine_req *q = p->req;
    char ep[PUB_EPOCH_LEN + 1];
    engine_make_epoch(ep);
    rd_args a;
    av_begin(&a, &e->args);
    av_evalsha(&a, e, RD_SC_LOOK, 6);
    av_key(&a, e, "m", q->tenant, q->channel);
    av_key(&a, e, "s", q->tenant, q->channel);
    av_key(&a, e, "seq", NULL, NULL);
    av_key(&a, e, "c", q->tenant, q->channel);
    av_key(&a, e, "tc", q->tenant, NULL);
    av_key(&a, e, "era", NULL, NULL);
    av_str(&a, ep);
    av_u64(&a, (uint64_t)clock_wall_ms());
    av_u64(&a, q->history_ttl_ms > 0 ? (uint64_t)q->history_ttl_ms : 0);
    av_u64(&a, q->max_channels);
    av_str(&a, q->channel);
    av_str(&a, q->user);
    av_str(&a, q->mode == ENGINE_READ_CURSORS ? "1" : "0");
    if (av_send(e, &e->cmd, &a, look_cb, p)) finish(p, PL_EIO);
}

/* ---------------------------------------------------------------- cursors */

static void cursor_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    rd_pend *p = priv;
    rd_engine *e = ((rd_link *)ac->data)->e;
    redisReply *r = reply;
    engine_req *q = p->req;
    if (bad_reply(e, p, r)) return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 6) return finish(p, PL_EIO);
    p->seq = as_u64(r->element[0]);
    p->ordered = 1;
    q->cursor = as_u64(r->element[1]);
    q->moved = as_u64(r->element[2]) != 0;
    q->head = as_u64(r->element[3]);
    copy_epoch(q->epoch, r->element[4]);
    uint64_t first = as_u64(r->element[5]);
    q->first = first <= q->head ? first : 0;
    finish(p, PL_OK);
}

static void start_cursor(rd_engine *e, rd_pend *p)
{
    engine_req *q = p->req;
    rd_args a;
    av_begin(&a, &e->args);
    av_evalsha(&a, e, RD_SC_CURSOR, 4);
    av_key(&a, e, "m", q->tenant, q->channel);
    av_key(&a, e, "s", q->tenant, q->channel);
    av_key(&a, e, "seq", NULL, NULL);
    av_key(&a, e, "c", q->tenant, q->channel);
    av_str(&a, q->user);
    av_u64(&a, q->since_offset);
    if (av_send(e, &e->cmd, &a, cursor_cb, p)) finish(p, PL_EIO);
}

/* ---------------------------------------------------------------- the rest */

/* What has no state here: no guaranteed pubs are stored by this engine, so
 * acks find nothing and the dead-letter queue is empty; the committed log
 * for routes does not exist (the configuration refuses routes). */
static void answer_local(rd_pend *p)
{
    engine_req *r = p->req;
    if (r->op == ENGINE_ACK || r->op == ENGINE_PENDING || r->op == ENGINE_DELIVERY)
        return finish(p, PL_OK);
    if (r->op != ENGINE_ADMIN) return finish(p, PL_EIO);
    switch (r->admin_op) {
    case ADMIN_DLQ_LIST:
        pl_free(r->json);
        r->json = pl_strdup("{\"entries\":[],\"cursor\":0}");
        return finish(p, r->json ? PL_OK : PL_ENOMEM);
    case ADMIN_SENT_ALL:
    case ADMIN_DLQ_REPLAY:
    case ADMIN_DLQ_PURGE:
        return finish(p, PL_OK);
    case ADMIN_TRACE:
        return finish(p, PL_ENOTFOUND);
    default:
        return finish(p, PL_EIO);
    }
}

static void relay_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    rd_pend *p = priv;
    rd_engine *e = ((rd_link *)ac->data)->e;
    if (!bad_reply(e, p, reply)) finish(p, PL_OK);
}

/* An ephemeral pub or signal, with the frame this node's workers got, for
 * the other nodes' subscribers (notify.c hands it to their sinks). At most
 * once: while Redis is away it is dropped, as ephemeral pubs may be. */
static void start_relay(rd_engine *e, rd_pend *p)
{
    pl_pub *pub = p->req->pub;
    const rbuf *frame = pub ? pub_frame_peek(pub) : NULL;
    if (!frame) return finish(p, PL_EINVAL);
    char flags[2] = {(char)('0' + (pub->skip_origin ? 1 : 0) + (pub->to_user ? 2 : 0)), 0};
    rd_args a;
    av_begin(&a, &e->args);
    av_evalsha(&a, e, RD_SC_RELAY, 2);
    av_key(&a, e, "seq", NULL, NULL);
    av_key(&a, e, "n", NULL, NULL);
    av_u64(&a, e->notify_maxlen);
    av_str(&a, e->node);
    av_str(&a, pub->tenant);
    av_str(&a, pub->channel);
    av_str(&a, pub->user);
    av_str(&a, pub->client);
    av_str(&a, flags);
    av_add(&a, frame->data, frame->len);
    if (av_send(e, &e->cmd, &a, relay_cb, p)) finish(p, PL_EIO);
}

static rd_pend *pend_new(rd_engine *e, engine_req *r)
{
    rd_pend *p = pl_calloc(1, sizeof(*p));
    if (!p) {
        r->status = PL_ENOMEM;
        rd_emit(e, r);
        return NULL;
    }
    p->req = r;
    r->status = PL_OK;
    rd_push_pend(e, p);
    return p;
}

static void start_one(rd_engine *e, rd_pend *p)
{
    engine_req *r = p->req;
    int needs_redis = r->op == ENGINE_READ || r->op == ENGINE_CURSOR || r->op == ENGINE_RELAY;
    if (needs_redis && !e->cmd.up) return finish(p, PL_EIO);
    switch (r->op) {
    case ENGINE_READ:
        return start_look(e, p);
    case ENGINE_CURSOR:
        return start_cursor(e, p);
    case ENGINE_RELAY:
        return start_relay(e, p);
    default:
        return answer_local(p);
    }
}

/* Starts a chain of requests in order: runs of publishes share a script
 * call, anything else goes alone between them. */
void rd_start_reqs(rd_engine *e, engine_req *r)
{
    rd_batch *b = NULL;
    while (r) {
        engine_req *next = r->_next;
        r->_next = NULL;
        rd_pend *p = pend_new(e, r);
        r = next;
        if (!p) continue;
        if (p->req->op != ENGINE_PUBLISH) {
            if (b) send_publishes(e, b);
            b = NULL;
            start_one(e, p);
            continue;
        }
        if (!publishable(e, p)) continue;
        if (!b && !(b = pl_calloc(1, sizeof(*b)))) {
            finish(p, PL_ENOMEM);
            continue;
        }
        b->p[b->n++] = p;
        if (b->n == RD_PUB_BATCH) {
            send_publishes(e, b);
            b = NULL;
        }
    }
    if (b) send_publishes(e, b);
}
