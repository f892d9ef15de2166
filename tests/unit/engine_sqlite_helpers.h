/* Shared fixture of the SQLite engine's unit tests (test_engine_sqlite_*.c,
 * one CTest case per file; CMake links engine_sqlite_helpers.c into each): a
 * temporary data directory, an engine whose sink collects the finished
 * requests, and helpers that publish, read and look at the file directly. */
#ifndef PL_TEST_ENGINE_SQLITE_HELPERS_H
#define PL_TEST_ENGINE_SQLITE_HELPERS_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "engine/engine.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/rbuf.h"
#include "util/status.h"

typedef struct collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    engine_req **items; /* plain malloc: allocation-failure tests must not hit it */
    size_t n;
    size_t calls;
    size_t taken;
} collector;

typedef struct fx {
    char dir[64];
    engine *e;
    collector c;
    engine_opts opts;
} fx;

/* Calls of encode since the last setup (or reset by a test). */
extern atomic_int encoded;

/* The fixture: setup makes the directory (setup_open starts an engine in it),
 * fx_new/fx_open/fx_close/fx_reopen manage f->e with f->opts, take waits for
 * the sink. */
void sink(void *ctx, engine_req **reqs, size_t n);
rbuf *encode(const pl_pub *p);
void fx_new(fx *f);
void fx_open(fx *f);
void fx_close(fx *f);
void fx_reopen(fx *f);
int setup(void **state);
int setup_open(void **state);
int teardown(void **state);
engine_req **take(fx *f, size_t more);
/* Requests, and publishing or reading one and waiting for its answer. */
pl_pub *mkpub(const char *tenant, const char *channel, const char *data, const char *key);
engine_req *pub_req(const char *tenant, const char *channel, const char *data, const char *key,
                    uint32_t hist, int64_t ttl);
engine_req *read_req(const char *tenant, const char *channel, enum engine_read_mode mode,
                     int has_since, uint64_t since, const char *epoch, uint32_t limit, int reverse);
engine_req *publish(fx *f, const char *tenant, const char *channel, const char *data,
                    const char *key, uint32_t hist, int64_t ttl);
uint64_t publish_ok(fx *f, const char *tenant, const char *channel, const char *data,
                    const char *key, uint32_t hist, int64_t ttl);
engine_req *do_read(fx *f, const char *tenant, const char *channel, enum engine_read_mode mode,
                    int has_since, uint64_t since, const char *epoch, uint32_t limit, int reverse);
engine_req *history(fx *f, const char *channel, uint32_t limit);
/* What reads returned, and what the file holds (a raw connection). */
void assert_offsets(const engine_req *r, const uint64_t *want, size_t n);
void assert_range(const engine_req *r, uint64_t lo, uint64_t hi);
void assert_range_desc(const engine_req *r, uint64_t hi, uint64_t lo);
int64_t count_rows(fx *f, const char *sql);
void sleep_ms(int ms);
int trace_id(fx *f, const char *tenant, const char *pub_id, char **json);
int64_t cid_of(fx *f, const char *channel);
engine_req **one_batch(fx *f, engine_req **reqs, size_t n);
engine_req **chain_batch(fx *f, engine_req **reqs, size_t n);
engine_req *user_req(enum engine_op op, const char *channel, const char *user, uint64_t off);
engine_req *guaranteed_req(const char *channel, const char *data, const char *recipient);
engine_req *bare_req(const char *channel, const char *data, uint32_t hist);
void assert_same_pub(const pl_pub *got, const pl_pub *want);
void assert_stored(fx *f, const char *ch, engine_req **pubs, size_t n);

#endif
