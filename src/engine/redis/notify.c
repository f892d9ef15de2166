/* The notification reader: every node reads the stream P:n, where each
 * publish script appends its pub, on a connection of its own (XREAD BLOCK),
 * so a dropped link or a restart resumes from the last entry read instead
 * of losing what went by. Entries that were trimmed before this node read
 * them, or a stream that restarted (Redis lost its data), make every
 * subscriber resume by offset (ENGINE_RESYNC). Pings through the same
 * stream prove, once a second, that this node can still deliver. */
#include "engine/redis/redis_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/plan.h"
#include "engine/redis/pack.h"
#include "util/clock.h"
#include "util/mem.h"

#define RD_READ_COUNT "1000"
#define RD_BLOCK_MS "1000"

/* The id 0-N of a stream entry: N, or 0 when it is not of that form. */
static uint64_t entry_seq(const redisReply *id)
{
    if (!id || id->type != REDIS_REPLY_STRING || id->len < 3 || memcmp(id->str, "0-", 2)) return 0;
    return strtoull(id->str + 2, NULL, 10);
}

static const redisReply *field(const redisReply *f, const char *name)
{
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i];
        if (k->type == REDIS_REPLY_STRING && k->len == strlen(name) &&
            !memcmp(k->str, name, k->len))
            return f->element[i + 1]->type == REDIS_REPLY_STRING ? f->element[i + 1] : NULL;
    }
    return NULL;
}

static int is_me(rd_engine *e, const redisReply *n)
{
    return n && n->len == strlen(e->node) && !memcmp(n->str, e->node, n->len);
}

static size_t rlen(const redisReply *r)
{
    return r ? r->len : 0;
}

static const char *rstr(const redisReply *r)
{
    return r ? r->str : NULL;
}

/* Another node's ephemeral pub or signal, with the frame its workers got
 * (this node's own went to its workers directly). */
static pl_pub *relayed(rd_engine *e, const redisReply *f)
{
    const redisReply *tn = field(f, "tn"), *c = field(f, "c"), *fl = field(f, "f");
    const redisReply *fr = field(f, "fr"), *u = field(f, "u"), *cl = field(f, "cl");
    if (is_me(e, field(f, "n")) || !tn || !c || !fl || !fr || fl->len != 1) return NULL;
    pub_fields pf = {.tenant = tn->str,
                     .tenant_len = tn->len,
                     .channel = c->str,
                     .channel_len = c->len,
                     .user = rstr(u),
                     .user_len = rlen(u),
                     .client = rstr(cl),
                     .client_len = rlen(cl)};
    pl_pub *pub = pub_new(&pf, PUB_EPHEMERAL);
    rbuf *frame = rbuf_from(fr->str, fr->len);
    if (!pub || !frame) {
        pub_unref(pub);
        rbuf_unref(frame);
        return NULL;
    }
    int flags = fl->str[0] - '0';
    pub->skip_origin = (uint8_t)(flags & 1);
    pub->to_user = (uint8_t)((flags & 2) != 0);
    pub_set_frame(pub, frame);
    return pub;
}

/* One entry into queue B: a pub, or a ping or this node's own relay (pub
 * NULL: they only advance the position). */
static void take_entry(rd_engine *e, uint64_t seq, const redisReply *f)
{
    const redisReply *k = field(f, "k"), *p = field(f, "p");
    pl_pub *pub = NULL;
    if (k && k->len == 4 && !memcmp(k->str, "ping", 4)) {
        if (is_me(e, field(f, "n"))) {
            e->ping_seen_ms = clock_wall_ms();
            atomic_store(&e->healthy, e->cmd.up && e->note.up);
        }
    } else if (k && k->len == 1 && k->str[0] == 'x') {
        pub = relayed(e, f); /* NULL for its own, or malformed: ephemeral, at most once */
    } else {
        const redisReply *t = field(f, "t"), *o = field(f, "o"), *ep = field(f, "e");
        const redisReply *tn = field(f, "n"), *c = field(f, "c");
        if (p && t && o && ep && tn && c)
            pub =
                rd_unpack(p->str, p->len, tn->str, tn->len, c->str, c->len,
                          strtoull(o->str, NULL, 10), ep->str, ep->len, strtoll(t->str, NULL, 10));
        if (!pub) {
            rd_notice(e, ENGINE_RESYNC, "notify", "an unreadable entry in the notification stream");
            return; /* skipped: B's order is by seq, a hole is harmless */
        }
    }
    rd_note *n = pl_calloc(1, sizeof(*n));
    if (!n) {
        pub_unref(pub);
        rd_notice(e, ENGINE_RESYNC, "notify", "out of memory for the notification stream");
        return;
    }
    n->seq = seq;
    n->pub = pub;
    rd_push_note(e, n);
}

static void take_entries(rd_engine *e, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1) return;
    const redisReply *s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2) return;
    const redisReply *ents = s->element[1];
    if (ents->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i < ents->elements; i++) {
        const redisReply *ent = ents->element[i];
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2) continue;
        uint64_t seq = entry_seq(ent->element[0]);
        if (!seq || seq <= e->read_pos) continue;
        if (seq != e->read_pos + 1)
            rd_notice(e, ENGINE_RESYNC, "notify",
                      "entries of the notification stream were trimmed before this node read "
                      "them (notify_maxlen)");
        e->read_pos = seq;
        if (ent->element[1]->type == REDIS_REPLY_ARRAY) take_entry(e, seq, ent->element[1]);
    }
}

static void read_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    rd_engine *e = priv;
    (void)ac;
    e->reading = 0;
    redisReply *r = reply;
    if (!r) return; /* the link went down; its reconnect reads again */
    if (e->read_gen != e->reset_gen) {
        /* Asked before a reset, from a position that no longer holds. */
        e->read_gen = e->reset_gen;
    } else if (r->type == REDIS_REPLY_ERROR)
        rd_notice(e, ENGINE_REFUSED, "notify", r->str);
    else if (r->type == REDIS_REPLY_ARRAY)
        take_entries(e, r);
    rd_read_next(e);
}

static void seq_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    rd_engine *e = priv;
    (void)ac;
    redisReply *r = reply;
    e->reading = 0;
    if (!r || r->type == REDIS_REPLY_ERROR) return;
    if (!e->pos_known) {
        e->pos = e->read_pos = r->type == REDIS_REPLY_STRING ? strtoull(r->str, NULL, 10) : 0;
        e->pos_known = 1;
    }
    rd_read_next(e);
}

void rd_read_next(rd_engine *e)
{
    if (e->reading || !e->note.up || e->stop_seen) return;
    sbuf *k = &e->key;
    rd_key(e, k, e->pos_known ? "n" : "seq", NULL, NULL);
    if (k->oom) return;
    if (!e->pos_known) {
        const char *argv[] = {"GET", k->data};
        size_t lens[] = {3, k->len};
        if (!rd_cmd(&e->note, seq_cb, e, 2, argv, lens)) e->reading = 1;
        return;
    }
    char id[32];
    snprintf(id, sizeof(id), "0-%llu", (unsigned long long)e->read_pos);
    const char *argv[] = {"XREAD",     "COUNT",   RD_READ_COUNT, "BLOCK",
                          RD_BLOCK_MS, "STREAMS", k->data,       id};
    size_t lens[8];
    for (int i = 0; i < 8; i++)
        lens[i] = i == 6 ? k->len : strlen(argv[i]);
    if (rd_cmd(&e->note, read_cb, e, 8, argv, lens)) return;
    e->reading = 1;
    e->read_gen = e->reset_gen;
}

/* The ping's seq at or below what was read when it was sent means the counter restarted: Redis
 * lost its data (no AOF, a flush, a failover to an empty replica). */
static void ping_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    rd_engine *e = priv;
    (void)ac;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_INTEGER || !e->pos_known) return;
    uint64_t seq = (uint64_t)r->integer;
    pthread_mutex_lock(&e->stats_mu);
    e->stats.notify_lag = seq > e->pos ? seq - e->pos - 1 : 0;
    e->stats.round_trips = e->cmd.writes;
    pthread_mutex_unlock(&e->stats_mu);
    if (e->ping_read_pos && seq <= e->ping_read_pos)
        rd_reset_pos(e, seq - 1, "the notification stream restarted (Redis lost its data)");
}

void rd_send_ping(rd_engine *e)
{
    sbuf *k = &e->key, *n = &e->key2, *era = &e->args;
    rd_key(e, k, "seq", NULL, NULL);
    rd_key(e, n, "n", NULL, NULL);
    rd_key(e, era, "era", NULL, NULL);
    if (k->oom || n->oom || era->oom) return;
    char maxlen[24], known[24], newera[PUB_EPOCH_LEN + 1];
    snprintf(maxlen, sizeof(maxlen), "%u", e->notify_maxlen);
    snprintf(known, sizeof(known), "%llu", (unsigned long long)(e->pos_known ? e->read_pos : 0));
    engine_make_epoch(newera);
    const char *argv[] = {
        "EVALSHA", e->sha[RD_SC_PING], "3", k->data, n->data, era->data, e->node, maxlen, known,
        newera};
    size_t lens[10];
    for (int i = 0; i < 10; i++)
        lens[i] = i == 3 ? k->len : i == 4 ? n->len : i == 5 ? era->len : strlen(argv[i]);
    if (rd_cmd(&e->cmd, ping_cb, e, 10, argv, lens)) return;
    e->ping_sent_ms = clock_wall_ms();
    e->ping_read_pos = e->pos_known ? e->read_pos : 0;
}
