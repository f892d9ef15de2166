/* Token buckets and the sharded keyed limiter; see ratelimit.h.
 * Units: a bucket holds micro-tokens, so a rate of R tokens/s refills exactly
 * R micro-tokens per microsecond and no division ever happens on the refill
 * path. Each shard keeps its buckets on an LRU list, newest at the head. */
#include "auth/ratelimit.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "util/map.h"
#include "util/mem.h"
#include "util/status.h"

#define MICRO 1000000ULL

/* ---- bucket ------------------------------------------------------------ */

static uint64_t capacity(const rl_bucket *b)
{
    return b->burst * MICRO;
}

static void clamp_limits(rl_bucket *b, uint64_t rate, uint64_t burst)
{
    if (rate > RL_MAX_RATE) rate = RL_MAX_RATE;
    if (burst == 0) burst = rate ? rate : 1;
    if (burst > RL_MAX_BURST) burst = RL_MAX_BURST;
    b->rate = rate;
    b->burst = burst;
}

void rl_bucket_init(rl_bucket *b, uint64_t rate, uint64_t burst, int64_t now_us)
{
    clamp_limits(b, rate, burst);
    b->_level = capacity(b);
    b->_last = now_us;
}

void rl_bucket_set(rl_bucket *b, uint64_t rate, uint64_t burst, int64_t now_us)
{
    if (b->rate == 0) {
        rl_bucket_init(b, rate, burst, now_us);
        return;
    }
    clamp_limits(b, rate, burst);
    if (b->_level > capacity(b)) b->_level = capacity(b);
}

/* Microseconds of refill needed before the bucket is full (0 when it is). */
static uint64_t us_to_full(const rl_bucket *b)
{
    uint64_t need = capacity(b) - b->_level;
    return (need + b->rate - 1) / b->rate;
}

static void refill(rl_bucket *b, int64_t now_us)
{
    if (now_us < b->_last) {
        /* Never credit a backwards step; only a large one moves the mark, so
         * jitter between threads cannot mint tokens by crediting twice. */
        if (b->_last - now_us > RL_BACKSTEP_US) b->_last = now_us;
        return;
    }
    uint64_t elapsed = (uint64_t)now_us - (uint64_t)b->_last;
    if (elapsed >= us_to_full(b))
        b->_level = capacity(b);
    else
        b->_level += elapsed * b->rate; /* < need + rate: cannot overflow */
    b->_last = now_us;
}

int64_t rl_take(rl_bucket *b, int64_t now_us, uint64_t n)
{
    if (b->rate == 0 || n == 0) return 0;
    if (n > b->burst) return RL_NEVER;
    refill(b, now_us);
    uint64_t want = n * MICRO;
    if (b->_level >= want) {
        b->_level -= want;
        return 0;
    }
    uint64_t wait_us = (want - b->_level + b->rate - 1) / b->rate;
    uint64_t wait_ms = (wait_us + 999) / 1000;
    /* A step back leaves _last ahead of now; the caller waits for that too. */
    if (now_us < b->_last) wait_ms += ((uint64_t)(b->_last - now_us) + 999) / 1000;
    return wait_ms ? (int64_t)wait_ms : 1;
}

int rl_bucket_full(const rl_bucket *b, int64_t now_us)
{
    if (b->rate == 0 || b->_level >= capacity(b)) return 1;
    if (now_us < b->_last) return 0;
    return (uint64_t)now_us - (uint64_t)b->_last >= us_to_full(b);
}

/* ---- backlog of refused requests -------------------------------------- */

/* splitmix64's finalizer: neighbouring seeds (connection ids) get unrelated
 * jitters. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

int64_t rl_backlog_slot(rl_backlog *q, uint64_t rate, int64_t wait_ms, int64_t now_us,
                        int64_t max_ms, uint64_t seed)
{
    if (rate == 0) return wait_ms > 0 ? wait_ms : 1;
    if (rate > RL_MAX_RATE) rate = RL_MAX_RATE;
    int64_t step = (int64_t)(MICRO / rate);
    if (step < 1) step = 1;
    int64_t jitter = (int64_t)(mix64(seed ^ (uint64_t)now_us) % (uint64_t)step);
    int64_t earliest = now_us + (wait_ms > 0 ? wait_ms : 1) * 1000;
    int64_t cur = atomic_load_explicit(&q->_next_us, memory_order_relaxed), slot;
    do {
        slot = cur > earliest ? cur : earliest;
        if (slot - now_us > max_ms * 1000) return max_ms + jitter / 1000;
    } while (!atomic_compare_exchange_weak_explicit(&q->_next_us, &cur, slot + step,
                                                    memory_order_relaxed, memory_order_relaxed));
    int64_t ms = (slot + jitter - now_us + 999) / 1000;
    return ms > 0 ? ms : 1;
}

/* ---- keyed table ------------------------------------------------------- */

typedef struct rl_entry {
    rl_bucket bucket;
    struct rl_entry *prev, *next; /* LRU neighbours; head = most recent */
    size_t klen;
    char key[];
} rl_entry;

/* Aligned so two shards' mutexes never share a cache line. */
typedef struct rl_shard {
    pthread_mutex_t mu;
    map buckets; /* key -> rl_entry * (owned) */
    map conns;   /* key -> uint32_t * live connection count (owned) */
    rl_entry *head, *tail;
    size_t n;
} __attribute__((aligned(64))) rl_shard;

struct rl_table {
    size_t shard_cap; /* buckets per shard */
    rl_shard shards[RL_SHARDS];
};

/* Lazy eviction looks at this many LRU-tail buckets per take. Two per take
 * drains idle buckets faster than one take can create them. */
#define EVICT_SCAN 2

rl_table *rl_table_new(size_t max_entries)
{
    if (max_entries == 0) max_entries = RL_DEFAULT_MAX_ENTRIES;
    rl_table *t = pl_calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->shard_cap = (max_entries + RL_SHARDS - 1) / RL_SHARDS;
    for (int i = 0; i < RL_SHARDS; i++) {
        pthread_mutex_init(&t->shards[i].mu, NULL);
        map_init(&t->shards[i].buckets);
        map_init(&t->shards[i].conns);
    }
    return t;
}

void rl_table_free(rl_table *t)
{
    if (!t) return;
    for (int i = 0; i < RL_SHARDS; i++) {
        rl_shard *s = &t->shards[i];
        for (rl_entry *e = s->head, *next; e; e = next) {
            next = e->next;
            pl_free(e);
        }
        for (size_t j = 0; j < s->conns.cap; j++)
            if (s->conns.slots[j].key) pl_free(s->conns.slots[j].value);
        map_release(&s->buckets);
        map_release(&s->conns);
        pthread_mutex_destroy(&s->mu);
    }
    pl_free(t);
}

static rl_shard *shard_for(rl_table *t, const char *key, size_t klen)
{
    /* FNV's top bits barely move when only the last bytes differ ("ip:..1",
     * "ip:..2"), so mix first (murmur3 fmix64). Top bits: the shard's map
     * indexes its slots by the low bits of map_hash. */
    uint64_t h = map_hash(key, klen);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return &t->shards[h >> 58];
}

static void lru_unlink(rl_shard *s, rl_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_head(rl_shard *s, rl_entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head) s->head->prev = e;
    s->head = e;
    if (!s->tail) s->tail = e;
}

static void drop(rl_shard *s, rl_entry *e)
{
    lru_unlink(s, e);
    map_del(&s->buckets, e->key, e->klen);
    s->n--;
    pl_free(e);
}

static void evict_idle(rl_shard *s, int64_t now_us, const rl_entry *keep)
{
    for (int i = 0; i < EVICT_SCAN && s->tail && s->tail != keep; i++) {
        if (!rl_bucket_full(&s->tail->bucket, now_us)) break;
        drop(s, s->tail);
    }
}

/* Returns the bucket of key, created full (evicting the LRU bucket when the
 * shard is at its bound), or NULL on allocation failure. */
static rl_entry *get_or_create(rl_table *t, rl_shard *s, const char *key, size_t klen,
                               uint64_t rate, uint64_t burst, int64_t now_us)
{
    rl_entry *e = map_get(&s->buckets, key, klen);
    if (e) {
        rl_bucket_set(&e->bucket, rate, burst, now_us);
        lru_unlink(s, e);
        lru_push_head(s, e);
        return e;
    }
    if (s->n >= t->shard_cap && s->tail) drop(s, s->tail);
    e = pl_malloc(sizeof(*e) + klen + 1);
    if (!e) return NULL;
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    e->klen = klen;
    rl_bucket_init(&e->bucket, rate, burst, now_us);
    if (map_put(&s->buckets, e->key, klen, e)) {
        pl_free(e);
        return NULL;
    }
    lru_push_head(s, e);
    s->n++;
    return e;
}

int64_t rl_table_take(rl_table *t, const char *key, uint64_t rate, uint64_t burst, int64_t now_us,
                      uint64_t n)
{
    if (rate == 0) return 0;
    size_t klen = strlen(key);
    rl_shard *s = shard_for(t, key, klen);
    int64_t r = 0;
    pthread_mutex_lock(&s->mu);
    rl_entry *e = get_or_create(t, s, key, klen, rate, burst, now_us);
    if (e) r = rl_take(&e->bucket, now_us, n);
    evict_idle(s, now_us, e);
    pthread_mutex_unlock(&s->mu);
    return r;
}

size_t rl_table_sweep(rl_table *t, int64_t now_us)
{
    size_t dropped = 0;
    for (int i = 0; i < RL_SHARDS; i++) {
        rl_shard *s = &t->shards[i];
        pthread_mutex_lock(&s->mu);
        for (rl_entry *e = s->tail, *prev; e; e = prev) {
            prev = e->prev;
            if (!rl_bucket_full(&e->bucket, now_us)) continue;
            drop(s, e);
            dropped++;
        }
        pthread_mutex_unlock(&s->mu);
    }
    return dropped;
}

size_t rl_table_size(rl_table *t)
{
    size_t n = 0;
    for (int i = 0; i < RL_SHARDS; i++) {
        pthread_mutex_lock(&t->shards[i].mu);
        n += t->shards[i].n;
        pthread_mutex_unlock(&t->shards[i].mu);
    }
    return n;
}

/* ---- connection counters ----------------------------------------------- */

/* Counters are heap cells so a release changes them in place: a release must
 * not need memory, or a failed allocation would leak a slot forever. */
int rl_conn_acquire(rl_table *t, const char *key, uint32_t max)
{
    size_t klen = strlen(key);
    rl_shard *s = shard_for(t, key, klen);
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    uint32_t *count = map_get(&s->conns, key, klen);
    if (count) {
        if ((max && *count >= max) || *count == UINT32_MAX)
            rc = -1;
        else
            ++*count;
    } else if (!(count = pl_malloc(sizeof(*count)))) {
        rc = PL_ENOMEM;
    } else if (map_put(&s->conns, key, klen, count)) {
        pl_free(count);
        rc = PL_ENOMEM;
    } else {
        *count = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void rl_conn_release(rl_table *t, const char *key)
{
    size_t klen = strlen(key);
    rl_shard *s = shard_for(t, key, klen);
    pthread_mutex_lock(&s->mu);
    uint32_t *count = map_get(&s->conns, key, klen);
    if (count && --*count == 0) pl_free(map_del(&s->conns, key, klen));
    pthread_mutex_unlock(&s->mu);
}

uint32_t rl_conn_count(rl_table *t, const char *key)
{
    size_t klen = strlen(key);
    rl_shard *s = shard_for(t, key, klen);
    pthread_mutex_lock(&s->mu);
    uint32_t *count = map_get(&s->conns, key, klen);
    uint32_t n = count ? *count : 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}
