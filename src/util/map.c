/* Open-addressing hash map with backward-shift deletion; see map.h. */
#include "util/map.h"

#include <string.h>

#include "util/mem.h"

uint64_t map_hash(const char *key, size_t klen)
{
    /* Eight bytes a step (multiply, then fold the high bits down), the tail
     * zero-padded; the length is mixed in so padding cannot collide. Keys
     * are channel names and ids of tens of bytes, hashed per command. */
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ klen, w;
    size_t i = 0;
    for (; i + 8 <= klen; i += 8) {
        memcpy(&w, key + i, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
    }
    w = 0;
    if (i < klen) memcpy(&w, key + i, klen - i);
    h = (h ^ w) * 0x94D049BB133111EBULL;
    return h ^ (h >> 29);
}

void map_init(map *m)
{
    memset(m, 0, sizeof(*m));
}

void map_init_borrowed(map *m)
{
    map_init(m);
    m->borrowed = 1;
}

void map_release(map *m)
{
    uint8_t borrowed = m->borrowed;
    for (size_t i = 0; !borrowed && i < m->cap; i++)
        pl_free(m->slots[i].key);
    pl_free(m->slots);
    map_init(m);
    m->borrowed = borrowed;
}

static map_entry *find(const map *m, const char *key, size_t klen, uint32_t h)
{
    if (!m->cap) return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        map_entry *e = &m->slots[i];
        if (!e->key) return e;
        if (e->hash == h && e->klen == klen && !memcmp(e->key, key, klen)) return e;
    }
}

static int grow(map *m)
{
    if (m->cap >= UINT32_MAX / 2) return -1;
    uint32_t cap = m->cap ? m->cap * 2 : 2; /* small: many maps hold one entry */
    map_entry *slots = pl_calloc(cap, sizeof(*slots));
    if (!slots) return -1;
    map old = *m;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.slots[i].key) continue;
        *find(m, old.slots[i].key, old.slots[i].klen, old.slots[i].hash) = old.slots[i];
    }
    pl_free(old.slots);
    return 0;
}

void *map_get(const map *m, const char *key, size_t klen)
{
    map_entry *e = find(m, key, klen, (uint32_t)map_hash(key, klen));
    return e && e->key ? e->value : NULL;
}

int map_put(map *m, const char *key, size_t klen, void *value)
{
    if (klen >= UINT32_MAX) return -1;
    if (((size_t)m->len + 1) * 4 > (size_t)m->cap * 3 && grow(m)) return -1;
    uint32_t h = (uint32_t)map_hash(key, klen);
    map_entry *e = find(m, key, klen, h);
    if (!e->key) {
        char *k = (char *)key;
        if (!m->borrowed) {
            if (!(k = pl_malloc(klen + 1))) return -1;
            memcpy(k, key, klen);
            k[klen] = '\0';
        }
        e->key = k;
        e->klen = (uint32_t)klen;
        e->hash = h;
        m->len++;
    } else if (m->borrowed) {
        e->key = (char *)key; /* the old key may go with the old value */
    }
    e->value = value;
    return 0;
}

void *map_del(map *m, const char *key, size_t klen)
{
    map_entry *e = find(m, key, klen, (uint32_t)map_hash(key, klen));
    if (!e || !e->key) return NULL;
    void *value = e->value;
    if (!m->borrowed) pl_free(e->key);
    size_t i = (size_t)(e - m->slots);
    /* Backward shift: pull later entries of the probe run into the hole. */
    for (size_t j = (i + 1) & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
        map_entry *n = &m->slots[j];
        if (!n->key) break;
        size_t home = n->hash & (m->cap - 1);
        if (((j - home) & (m->cap - 1)) >= ((j - i) & (m->cap - 1))) {
            m->slots[i] = *n;
            i = j;
        }
    }
    memset(&m->slots[i], 0, sizeof(m->slots[i]));
    m->len--;
    return value;
}

size_t map_key2(char *out, size_t cap, const char *a, const char *b)
{
    size_t al = strlen(a), bl = strlen(b);
    if (al + bl + 1 > cap) return 0;
    memcpy(out, a, al);
    out[al] = '\x1f';
    memcpy(out + al + 1, b, bl);
    return al + bl + 1;
}
