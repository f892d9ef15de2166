/* String-keyed hash map (open addressing, linear probing) for per-thread
 * tables: a worker's channels, connections by id. Not thread-safe. Keys are
 * copied and owned by the map, or, in a map made with map_init_borrowed,
 * borrowed from the caller; values are borrowed pointers. */
#ifndef PL_MAP_H
#define PL_MAP_H

#include <stddef.h>
#include <stdint.h>

/* 24 bytes: tables with one entry per connection are what idle memory is
 * made of, so the hash is kept in 32 bits (it only picks slots and skips
 * most key compares). */
typedef struct map_entry {
    char *key; /* NULL = empty slot */
    void *value;
    uint32_t klen;
    uint32_t hash;
} map_entry;

typedef struct map {
    map_entry *slots;
    uint32_t cap; /* power of two */
    uint32_t len;
    uint8_t borrowed; /* keys are the caller's, not copies */
} map;

void map_init(map *m);
/* A map that stores the key pointers it is given instead of copies: the
 * caller keeps each key's bytes alive and unchanged while its entry is in
 * the map (typically the key lives inside the value). Saves an allocation
 * per entry. */
void map_init_borrowed(map *m);
/* Frees slots and (unless borrowed) keys; values are the caller's. After it
 * the map is empty and usable again, in the same key mode. */
void map_release(map *m);
void *map_get(const map *m, const char *key, size_t klen);
/* Inserts or replaces (a borrowed map then keeps the new key pointer);
 * returns 0, or -1 on allocation failure or a key of 4 GiB or more. */
int map_put(map *m, const char *key, size_t klen, void *value);
/* Removes the key; returns its value or NULL. */
void *map_del(map *m, const char *key, size_t klen);
uint64_t map_hash(const char *key, size_t klen);
/* Writes the composite key a '\x1f' b (tenant and channel, tenant and user)
 * into out; returns its length, or 0 when it does not fit in cap. */
size_t map_key2(char *out, size_t cap, const char *a, const char *b);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ... */

#endif
