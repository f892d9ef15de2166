/* Sharded presence table; see presence.h. A channel entry holds a map of
 * clients and a map of users (connection count and last typing time), so
 * both counts are maintained on add/remove and read in O(1). Most channels
 * have one member (a user's own feed, a DM half), so a roster of one keeps
 * its client inline and makes no maps: that is what idle memory per
 * connection is mostly made of. */
#include "broker/presence.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "util/map.h"
#include "util/mem.h"

#define SHARDS 64

/* One allocation per client in a channel: client id, user and info follow
 * the header, and the client id is the roster map's (borrowed) key. */
typedef struct pclient {
    int64_t since;
    uint32_t uoff; /* user at text + uoff */
    uint32_t ioff; /* info at text + ioff; 0 = no info */
    char text[];
} pclient;

typedef struct puser {
    int64_t last_typing;
    uint32_t conns;
    char name[]; /* the users map's key */
} puser;

typedef struct pchan {
    pclient *solo;       /* the only client, while the maps are unused */
    int64_t solo_typing; /* its user's last typing signal */
    map clients;         /* client id -> pclient*, once a second client came */
    map users;           /* user -> puser* */
    char key[];          /* tenant '\x1f' channel: the shard map's key */
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

static const char *pc_user(const pclient *pc)
{
    return pc->text + pc->uoff;
}

static uint64_t chan_clients(const pchan *c)
{
    return c->solo ? 1 : c->clients.len;
}

static uint64_t chan_users(const pchan *c)
{
    return c->solo ? 1 : c->users.len;
}

/* The user's last typing time in the channel, or NULL when the user has no
 * client in it. */
static int64_t *user_typing(pchan *c, const char *user)
{
    if (c->solo) return strcmp(pc_user(c->solo), user) ? NULL : &c->solo_typing;
    puser *pu = map_get(&c->users, user, strlen(user));
    return pu ? &pu->last_typing : NULL;
}

presence *presence_new(void)
{
    presence *p = pl_calloc(1, sizeof(*p));
    if (!p) return NULL;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&p->shards[i].lock, NULL);
        map_init_borrowed(&p->shards[i].chans);
    }
    return p;
}

static void free_chan(pchan *c)
{
    pl_free(c->solo);
    for (size_t i = 0; i < c->clients.cap; i++)
        if (c->clients.slots[i].key) pl_free(c->clients.slots[i].value);
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
    c = pl_calloc(1, sizeof(*c) + klen);
    if (!c) return NULL;
    map_init_borrowed(&c->clients);
    map_init_borrowed(&c->users);
    memcpy(c->key, key, klen);
    if (map_put(&s->chans, c->key, klen, c)) {
        pl_free(c);
        return NULL;
    }
    return c;
}

static void drop_chan_if_empty(shard *s, pchan *c, const char *key, size_t klen)
{
    if (c->solo || c->clients.len || c->users.len) return;
    map_del(&s->chans, key, klen);
    free_chan(c);
}

static pclient *pclient_new(const char *client, const char *user, const char *info,
                            int64_t since_ms)
{
    size_t cl = strlen(client) + 1, ul = strlen(user) + 1, il = info ? strlen(info) + 1 : 0;
    pclient *pc = pl_malloc(sizeof(*pc) + cl + ul + il);
    if (!pc) return NULL;
    pc->since = since_ms;
    pc->uoff = (uint32_t)cl;
    pc->ioff = info ? (uint32_t)(cl + ul) : 0;
    memcpy(pc->text, client, cl);
    memcpy(pc->text + cl, user, ul);
    if (info) memcpy(pc->text + cl + ul, info, il);
    return pc;
}

/* Puts pc into a roster that already has maps; 0 or -1 (pc not taken). */
static int add_to_maps(pchan *c, pclient *pc)
{
    const char *user = pc_user(pc);
    size_t ul = strlen(user);
    puser *pu = map_get(&c->users, user, ul);
    int new_user = !pu;
    if (new_user) {
        if (!(pu = pl_calloc(1, sizeof(*pu) + ul + 1))) return -1;
        memcpy(pu->name, user, ul + 1);
        if (map_put(&c->users, pu->name, ul, pu)) goto fail;
    }
    if (map_put(&c->clients, pc->text, strlen(pc->text), pc)) {
        if (new_user) map_del(&c->users, user, ul);
        goto fail;
    }
    pu->conns++;
    return 0;
fail:
    if (new_user) pl_free(pu);
    return -1;
}

/* A second client joins: the inline one moves into the maps, keeping its
 * user's typing time. */
static int promote_solo(pchan *c)
{
    if (add_to_maps(c, c->solo)) return -1;
    const char *user = pc_user(c->solo);
    ((puser *)map_get(&c->users, user, strlen(user)))->last_typing = c->solo_typing;
    c->solo = NULL;
    c->solo_typing = 0;
    return 0;
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
    if (c->solo ? !strcmp(c->solo->text, client)
                : map_get(&c->clients, client, strlen(client)) != NULL)
        goto out;
    rc = -1;
    pclient *pc = pclient_new(client, user, info, since_ms);
    if (!pc) goto fail;
    if (!c->solo && !c->clients.len) {
        c->solo = pc; /* a new channel: the roster of one */
    } else if ((c->solo && promote_solo(c)) || add_to_maps(c, pc)) {
        pl_free(pc);
        goto fail;
    }
    atomic_fetch_add(&p->entries, 1);
    rc = 1;
    goto out;
fail:
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
    pclient *pc = NULL;
    if (c && c->solo && !strcmp(c->solo->text, client)) {
        pc = c->solo;
        c->solo = NULL;
        c->solo_typing = 0;
    } else if (c) {
        pc = map_del(&c->clients, client, strlen(client));
    }
    if (pc) {
        const char *user = pc_user(pc);
        puser *pu = map_get(&c->users, user, strlen(user));
        if (pu && --pu->conns == 0) pl_free(map_del(&c->users, user, strlen(user)));
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
        *clients = chan_clients(c);
        *users = chan_users(c);
    }
    pthread_mutex_unlock(&s->lock);
}

static void put_client(sbuf *out, const pclient *pc)
{
    sbuf_puts(out, "{\"client\":");
    sbuf_json_str(out, pc->text, strlen(pc->text));
    sbuf_puts(out, ",\"user\":");
    sbuf_json_str(out, pc_user(pc), strlen(pc_user(pc)));
    sbuf_puts(out, ",\"info\":");
    sbuf_puts(out, pc->ioff ? pc->text + pc->ioff : "null");
    sbuf_puts(out, ",\"since\":");
    sbuf_i64(out, pc->since);
    sbuf_putc(out, '}');
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
    if (c && c->solo && cursor == 0 && limit > 0) {
        put_client(out, c->solo);
        *count = 1;
    }
    /* The cursor is a slot index: stable while the roster does not grow past
     * a resize, which is what paging a live roster can promise anyway. */
    for (size_t i = cursor; c && i < c->clients.cap; i++) {
        map_entry *e = &c->clients.slots[i];
        if (!e->key) continue;
        if (*count == limit) {
            next = i;
            break;
        }
        if (*count) sbuf_putc(out, ',');
        put_client(out, e->value);
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
    int64_t *last = c ? user_typing(c, user) : NULL;
    if (last && (*last == 0 || now_ms - *last >= interval_ms)) {
        *last = now_ms;
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
            sbuf_u64(out, chan_clients(c));
            sbuf_puts(out, ",\"users\":");
            sbuf_u64(out, chan_users(c));
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
    char **v = c ? pl_calloc(chan_users(c), sizeof(*v)) : NULL;
    if (v && c->solo && (v[0] = pl_strdup(pc_user(c->solo)))) n = 1;
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
    int has = c && user_typing(c, user) != NULL;
    pthread_mutex_unlock(&s->lock);
    return has;
}
