/* Sharded presence table; see presence.h. A channel entry holds a map of
 * clients and a map of users (connection count and last typing time), so
 * both counts are maintained on add/remove and read in O(1). */
#include "broker/presence.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "util/map.h"
#include "util/mem.h"

#define SHARDS 64

typedef struct pclient {
    char *user;
    char *info;
    int64_t since;
} pclient;

typedef struct puser {
    uint32_t conns;
    int64_t last_typing;
} puser;

typedef struct pchan {
    map clients; /* client id -> pclient* */
    map users;   /* user -> puser* */
} pchan;

typedef struct shard {
    pthread_mutex_t lock;
    map chans; /* tenant '\x1f' channel -> pchan* */
} shard;

struct presence {
    shard shards[SHARDS];
    _Atomic uint64_t entries;
};

static shard *shard_for(presence *p, const char *key, size_t klen)
{
    return &p->shards[map_hash(key, klen) % SHARDS];
}

presence *presence_new(void)
{
    presence *p = pl_calloc(1, sizeof(*p));
    if (!p) return NULL;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&p->shards[i].lock, NULL);
        map_init(&p->shards[i].chans);
    }
    return p;
}

static void free_chan(pchan *c)
{
    for (size_t i = 0; i < c->clients.cap; i++) {
        pclient *pc = c->clients.slots[i].value;
        if (!c->clients.slots[i].key) continue;
        pl_free(pc->user);
        pl_free(pc->info);
        pl_free(pc);
    }
    for (size_t i = 0; i < c->users.cap; i++)
        if (c->users.slots[i].key) pl_free(c->users.slots[i].value);
    map_release(&c->clients);
    map_release(&c->users);
    pl_free(c);
}

void presence_free(presence *p)
{
    if (!p) return;
    for (int i = 0; i < SHARDS; i++) {
        map *m = &p->shards[i].chans;
        for (size_t k = 0; k < m->cap; k++)
            if (m->slots[k].key) free_chan(m->slots[k].value);
        map_release(m);
        pthread_mutex_destroy(&p->shards[i].lock);
    }
    pl_free(p);
}

/* Builds the channel key into key (600 bytes) and locks its shard; NULL
 * (nothing locked) when the name is too long for a key. */
static shard *lock_key(presence *p, const char *tenant, const char *channel, char *key,
                       size_t *klen)
{
    *klen = map_key2(key, 600, tenant, channel);
    if (!*klen) return NULL;
    shard *s = shard_for(p, key, *klen);
    pthread_mutex_lock(&s->lock);
    return s;
}

static pchan *get_chan(shard *s, const char *key, size_t klen, int create)
{
    pchan *c = map_get(&s->chans, key, klen);
    if (c || !create) return c;
    c = pl_calloc(1, sizeof(*c));
    if (!c) return NULL;
    if (map_put(&s->chans, key, klen, c)) {
        pl_free(c);
        return NULL;
    }
    return c;
}

static void drop_chan_if_empty(shard *s, pchan *c, const char *key, size_t klen)
{
    if (c->clients.len || c->users.len) return;
    map_del(&s->chans, key, klen);
    free_chan(c);
}

int presence_add(presence *p, const char *tenant, const char *channel, const char *client,
                 const char *user, const char *info, int64_t since_ms)
{
    char key[600];
    size_t klen;
    int rc = -1;
    shard *s = lock_key(p, tenant, channel, key, &klen);
    if (!s) return -1;
    pchan *c = get_chan(s, key, klen, 1);
    if (!c) goto out;
    rc = 0;
    if (map_get(&c->clients, client, strlen(client))) goto out;
    rc = -1;
    pclient *pc = pl_calloc(1, sizeof(*pc));
    puser *pu = map_get(&c->users, user, strlen(user));
    int new_user = !pu;
    if (new_user) pu = pl_calloc(1, sizeof(*pu));
    if (!pc || !pu) goto fail;
    pc->user = pl_strdup(user);
    pc->info = info ? pl_strdup(info) : NULL;
    pc->since = since_ms;
    if (!pc->user || (info && !pc->info)) goto fail;
    if (new_user && map_put(&c->users, user, strlen(user), pu)) goto fail;
    if (map_put(&c->clients, client, strlen(client), pc)) {
        if (new_user) map_del(&c->users, user, strlen(user));
        goto fail;
    }
    pu->conns++;
    atomic_fetch_add(&p->entries, 1);
    rc = 1;
    goto out;
fail:
    if (pc) {
        pl_free(pc->user);
        pl_free(pc->info);
        pl_free(pc);
    }
    if (new_user) pl_free(pu);
    drop_chan_if_empty(s, c, key, klen);
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int presence_remove(presence *p, const char *tenant, const char *channel, const char *client)
{
    char key[600];
    size_t klen;
    int rc = 0;
    shard *s = lock_key(p, tenant, channel, key, &klen);
    if (!s) return 0;
    pchan *c = get_chan(s, key, klen, 0);
    pclient *pc = c ? map_del(&c->clients, client, strlen(client)) : NULL;
    if (pc) {
        puser *pu = map_get(&c->users, pc->user, strlen(pc->user));
        if (pu && --pu->conns == 0) pl_free(map_del(&c->users, pc->user, strlen(pc->user)));
        pl_free(pc->user);
        pl_free(pc->info);
        pl_free(pc);
        atomic_fetch_sub(&p->entries, 1);
        drop_chan_if_empty(s, c, key, klen);
        rc = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void presence_stats(presence *p, const char *tenant, const char *channel, uint64_t *clients,
                    uint64_t *users)
{
    char key[600];
    size_t klen;
    *clients = *users = 0;
    shard *s = lock_key(p, tenant, channel, key, &klen);
    if (!s) return;
    pchan *c = get_chan(s, key, klen, 0);
    if (c) {
        *clients = c->clients.len;
        *users = c->users.len;
    }
    pthread_mutex_unlock(&s->lock);
}

uint64_t presence_page(presence *p, const char *tenant, const char *channel, uint64_t cursor,
                       uint32_t limit, sbuf *out, uint32_t *count)
{
    char key[600];
    size_t klen;
    *count = 0;
    uint64_t next = 0;
    shard *s = lock_key(p, tenant, channel, key, &klen);
    if (!s) return 0;
    pchan *c = get_chan(s, key, klen, 0);
    /* The cursor is a slot index: stable while the roster does not grow past
     * a resize, which is what paging a live roster can promise anyway. */
    for (size_t i = cursor; c && i < c->clients.cap; i++) {
        map_entry *e = &c->clients.slots[i];
        if (!e->key) continue;
        if (*count == limit) {
            next = i;
            break;
        }
        pclient *pc = e->value;
        if (*count) sbuf_putc(out, ',');
        sbuf_puts(out, "{\"client\":");
        sbuf_json_str(out, e->key, e->klen);
        sbuf_puts(out, ",\"user\":");
        sbuf_json_str(out, pc->user, strlen(pc->user));
        sbuf_puts(out, ",\"info\":");
        sbuf_puts(out, pc->info ? pc->info : "null");
        sbuf_puts(out, ",\"since\":");
        sbuf_i64(out, pc->since);
        sbuf_putc(out, '}');
        (*count)++;
    }
    pthread_mutex_unlock(&s->lock);
    return next;
}

int presence_typing_allowed(presence *p, const char *tenant, const char *channel, const char *user,
                            int64_t now_ms, int64_t interval_ms)
{
    char key[600];
    size_t klen;
    int ok = 0;
    shard *s = lock_key(p, tenant, channel, key, &klen);
    if (!s) return 0;
    pchan *c = get_chan(s, key, klen, 0);
    puser *pu = c ? map_get(&c->users, user, strlen(user)) : NULL;
    if (pu && (pu->last_typing == 0 || now_ms - pu->last_typing >= interval_ms)) {
        pu->last_typing = now_ms;
        ok = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

uint64_t presence_entries(presence *p)
{
    return atomic_load(&p->entries);
}

uint64_t presence_channels(presence *p, const char *tenant, const char *prefix, uint64_t cursor,
                           uint32_t limit, sbuf *out, uint32_t *count)
{
    size_t tl = strlen(tenant), pl = prefix ? strlen(prefix) : 0;
    *count = 0;
    /* cursor = shard << 32 | slot: stable while maps do not resize. */
    for (uint64_t sh = cursor >> 32; sh < SHARDS; sh++) {
        shard *s = &p->shards[sh];
        pthread_mutex_lock(&s->lock);
        for (size_t i = sh == cursor >> 32 ? (cursor & 0xffffffffu) : 0; i < s->chans.cap; i++) {
            map_entry *e = &s->chans.slots[i];
            if (!e->key || e->klen <= tl || memcmp(e->key, tenant, tl) || e->key[tl] != '\x1f')
                continue;
            const char *ch = e->key + tl + 1;
            size_t cl = e->klen - tl - 1;
            if (pl && (cl < pl || memcmp(ch, prefix, pl))) continue;
            if (*count == limit) {
                pthread_mutex_unlock(&s->lock);
                return sh << 32 | i;
            }
            pchan *c = e->value;
            if (*count) sbuf_putc(out, ',');
            sbuf_puts(out, "{\"channel\":");
            sbuf_json_str(out, ch, cl);
            sbuf_puts(out, ",\"clients\":");
            sbuf_u64(out, c->clients.len);
            sbuf_puts(out, ",\"users\":");
            sbuf_u64(out, c->users.len);
            sbuf_putc(out, '}');
            (*count)++;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return 0;
}

size_t presence_users(presence *p, const char *tenant, const char *channel, char ***out)
{
    char key[600];
    size_t klen, n = 0;
    *out = NULL;
    shard *s = lock_key(p, tenant, channel, key, &klen);
    if (!s) return 0;
    pchan *c = get_chan(s, key, klen, 0);
    char **v = c && c->users.len ? pl_calloc(c->users.len, sizeof(*v)) : NULL;
    for (size_t i = 0; v && i < c->users.cap; i++) {
        map_entry *e = &c->users.slots[i];
        if (e->key && (v[n] = pl_strndup(e->key, e->klen))) n++;
    }
    pthread_mutex_unlock(&s->lock);
    *out = v;
    return n;
}

int presence_has_user(presence *p, const char *tenant, const char *channel, const char *user)
{
    char key[600];
    size_t klen;
    shard *s = lock_key(p, tenant, channel, key, &klen);
    if (!s) return 0;
    pchan *c = get_chan(s, key, klen, 0);
    int has = c && map_get(&c->users, user, strlen(user)) != NULL;
    pthread_mutex_unlock(&s->lock);
    return has;
}
