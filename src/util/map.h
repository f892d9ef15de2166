/* String-keyed hash map (open addressing, linear probing) for per-thread
 * tables: a worker's channels, connections by id. Not thread-safe. Keys are
 * copied and owned by the map; values are borrowed pointers. */
#ifndef PL_MAP_H
#define PL_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct map_entry {
    char *key; /* NULL = empty slot */
    size_t klen;
    uint64_t hash;
    void *value;
} map_entry;

typedef struct map {
    map_entry *slots;
    size_t cap; /* power of two */
    size_t len;
} map;

void map_init(map *m);
/* Frees keys and slots; values are the caller's. */
void map_release(map *m);
void *map_get(const map *m, const char *key, size_t klen);
/* Inserts or replaces; returns 0, or -1 on allocation failure. */
int map_put(map *m, const char *key, size_t klen, void *value);
/* Removes the key; returns its value or NULL. */
void *map_del(map *m, const char *key, size_t klen);
uint64_t map_hash(const char *key, size_t klen);
/* Writes the composite key a '\x1f' b (tenant and channel, tenant and user)
 * into out; returns its length, or 0 when it does not fit in cap. */
size_t map_key2(char *out, size_t cap, const char *a, const char *b);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ... */

#endif
