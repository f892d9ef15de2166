/* Unit tests of the SQLite engine against a real database in a temporary
 * directory: offsets, tenants, restart, idempotency, every read mode and the
 * recovery matrix, retention, a full disk, group commit, allocation failures,
 * hostile input, and a small throughput benchmark (printed, not asserted). */
#include <ctype.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "engine/engine.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/rbuf.h"
#include "util/status.h"

/* ------------------------------------------------------------------------ */
/* Fixture: a temp dir, an engine and a sink that collects finished requests */
/* ------------------------------------------------------------------------ */

#define COLLECT_MAX 70000

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

static atomic_int encoded;

static void sink(void *ctx, engine_req **reqs, size_t n)
{
    collector *c = ctx;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        assert_true(c->n < COLLECT_MAX);
        c->items[c->n++] = reqs[i];
    }
    c->calls++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Stand-in for the push encoder: counts its calls. */
static rbuf *encode(const pl_pub *p)
{
    assert_non_null(p->id);
    atomic_fetch_add(&encoded, 1);
    return rbuf_from("F", 1);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* Creates the engine without starting its thread. */
static void fx_new(fx *f)
{
    char err[256] = "";
    f->opts.data_dir = f->dir;
    f->opts.sink = sink;
    f->opts.sink_ctx = &f->c;
    f->opts.encode = encode;
    f->e = engine_sqlite_new(&f->opts, err, sizeof(err));
    if (!f->e) fail_msg("engine_sqlite_new: %s", err);
}

static void fx_open(fx *f)
{
    fx_new(f);
    assert_int_equal(engine_start(f->e), PL_OK);
}

static void fx_close(fx *f)
{
    if (!f->e) return;
    engine_stop(f->e);
    engine_free(f->e);
    f->e = NULL;
}

static void fx_reopen(fx *f)
{
    fx_close(f);
    fx_open(f);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/pl-engine-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    strcat(f->dir, "/data"); /* missing: the engine must create it */
    pthread_mutex_init(&f->c.mu, NULL);
    pthread_cond_init(&f->c.cv, NULL);
    f->c.items = malloc(COLLECT_MAX * sizeof(*f->c.items));
    atomic_store(&encoded, 0);
    *state = f;
    return 0;
}

static int setup_open(void **state)
{
    setup(state);
    fx_open(*state);
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    pl_mem_fail_after(-1);
    fx_close(f);
    for (size_t i = f->c.taken; i < f->c.n; i++)
        engine_req_free(f->c.items[i]);
    free(f->c.items);
    pthread_mutex_destroy(&f->c.mu);
    pthread_cond_destroy(&f->c.cv);
    *strrchr(f->dir, '/') = '\0';
    nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Waits until the sink delivered `more` requests beyond those taken; returns
 * the first of them (the caller takes ownership of all `more`). */
static engine_req **take(fx *f, size_t more)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    const char *t = getenv("PL_TEST_TIMEOUT_S"); /* raise under valgrind/helgrind */
    dl.tv_sec += t ? atoi(t) : 30;
    pthread_mutex_lock(&f->c.mu);
    while (f->c.n < f->c.taken + more)
        if (pthread_cond_timedwait(&f->c.cv, &f->c.mu, &dl) != 0) break;
    size_t have = f->c.n - f->c.taken;
    engine_req **first = &f->c.items[f->c.taken];
    f->c.taken += more <= have ? more : have;
    pthread_mutex_unlock(&f->c.mu);
    if (have < more) fail_msg("timed out: %zu of %zu requests", have, more);
    return first;
}

static pl_pub *mkpub(const char *tenant, const char *channel, const char *data, const char *key)
{
    pub_fields fl = {.tenant = tenant,
                     .tenant_len = strlen(tenant),
                     .channel = channel,
                     .channel_len = strlen(channel),
                     .data = data,
                     .data_len = strlen(data),
                     .user = "alice",
                     .user_len = 5,
                     .client = "c-1",
                     .client_len = 3,
                     .type = "message.created",
                     .type_len = 15,
                     .correlation_id = "corr-9",
                     .correlation_id_len = 6,
                     .headers = "{\"x\":\"1\"}",
                     .headers_len = 9,
                     .idem_key = key,
                     .idem_key_len = key ? strlen(key) : 0};
    pl_pub *p = pub_new(&fl, PUB_STANDARD);
    assert_non_null(p);
    return p;
}

static engine_req *pub_req(const char *tenant, const char *channel, const char *data,
                           const char *key, uint32_t hist, int64_t ttl)
{
    engine_req *r = engine_req_new(ENGINE_PUBLISH);
    assert_non_null(r);
    r->pub = mkpub(tenant, channel, data, key);
    r->history_size = hist;
    r->history_ttl_ms = ttl;
    return r;
}

static engine_req *read_req(const char *tenant, const char *channel, enum engine_read_mode mode,
                            int has_since, uint64_t since, const char *epoch, uint32_t limit,
                            int reverse)
{
    engine_req *r = engine_req_new(ENGINE_READ);
    assert_non_null(r);
    r->tenant = pl_strdup(tenant);
    r->channel = pl_strdup(channel);
    assert_non_null(r->tenant);
    assert_non_null(r->channel);
    r->mode = mode;
    r->has_since = has_since;
    r->since_offset = since;
    snprintf(r->since_epoch, sizeof(r->since_epoch), "%s", epoch ? epoch : "");
    r->limit = limit;
    r->reverse = reverse;
    return r;
}

/* Publishes one pub and waits for its completion; the caller frees it. */
static engine_req *publish(fx *f, const char *tenant, const char *channel, const char *data,
                           const char *key, uint32_t hist, int64_t ttl)
{
    engine_submit(f->e, pub_req(tenant, channel, data, key, hist, ttl));
    return take(f, 1)[0];
}

static uint64_t publish_ok(fx *f, const char *tenant, const char *channel, const char *data,
                           const char *key, uint32_t hist, int64_t ttl)
{
    engine_req *r = publish(f, tenant, channel, data, key, hist, ttl);
    assert_int_equal(r->status, PL_OK);
    uint64_t off = r->pub->offset;
    engine_req_free(r);
    return off;
}

static engine_req *do_read(fx *f, const char *tenant, const char *channel,
                           enum engine_read_mode mode, int has_since, uint64_t since,
                           const char *epoch, uint32_t limit, int reverse)
{
    engine_submit(f->e, read_req(tenant, channel, mode, has_since, since, epoch, limit, reverse));
    engine_req *r = take(f, 1)[0];
    assert_int_equal(r->status, PL_OK);
    return r;
}

static engine_req *history(fx *f, const char *channel, uint32_t limit)
{
    return do_read(f, "t1", channel, ENGINE_READ_HISTORY, 0, 0, NULL, limit, 0);
}

/* Asserts the offsets of a read's pubs equal the expected list. */
static void assert_offsets(const engine_req *r, const uint64_t *want, size_t n)
{
    if (r->npubs != n) fail_msg("npubs %zu, want %zu", r->npubs, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r->pubs[i]->offset, want[i]);
        assert_string_equal(r->pubs[i]->epoch, r->epoch);
        assert_non_null(pub_frame(r->pubs[i], encode));
    }
}

static void assert_range(const engine_req *r, uint64_t lo, uint64_t hi)
{
    uint64_t want[1024];
    size_t n = 0;
    if (lo <= hi) {
        assert_true(hi - lo < 1024);
        for (uint64_t o = lo; o <= hi; o++)
            want[n++] = o;
    }
    assert_offsets(r, want, n);
}

static void assert_range_desc(const engine_req *r, uint64_t hi, uint64_t lo)
{
    uint64_t want[1024];
    size_t n = 0;
    if (lo <= hi)
        for (uint64_t o = hi; o >= lo && o > 0; o--)
            want[n++] = o;
    assert_offsets(r, want, n);
}

/* Counts rows of a table with a raw connection (what is really on disk). */
static int64_t count_rows(fx *f, const char *sql)
{
    char path[128];
    sqlite3 *db;
    sqlite3_stmt *st;
    snprintf(path, sizeof(path), "%s/parley.db", f->dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* Offsets, tenants, restart                                                */
/* ------------------------------------------------------------------------ */

static void test_offsets_contiguous(void **state)
{
    fx *f = *state;
    char epoch[PUB_EPOCH_LEN + 1] = "";
    for (uint64_t i = 1; i <= 100; i++) {
        engine_req *r = publish(f, "t1", "room", "{\"n\":1}", NULL, 0, 0);
        assert_int_equal(r->status, PL_OK);
        assert_int_equal(r->pub->offset, i);
        assert_int_equal(r->duplicate, 0);
        assert_int_equal(strlen(r->pub->epoch), PUB_EPOCH_LEN);
        assert_int_equal(strspn(r->pub->epoch, "abcdefghijklmnopqrstuvwxyz0123456789"),
                         PUB_EPOCH_LEN);
        if (i == 1) strcpy(epoch, r->pub->epoch);
        assert_string_equal(r->pub->epoch, epoch);
        assert_null(pub_frame_peek(r->pub)); /* encoding waits for a reader */
        assert_true(r->pub->ts_ms > 0);
        engine_req_free(r);
    }
    engine_req *h = history(f, "room", 1000);
    assert_int_equal(h->head, 100);
    assert_int_equal(h->first, 1);
    assert_range(h, 1, 100);
    engine_req_free(h);

    engine_stats st;
    engine_get_stats(f->e, &st);
    assert_int_equal(st.committed_pubs, 100);
    assert_true(st.commits >= 1 && st.commits <= 100);
    assert_int_equal(st.commit_failures, 0);
    uint64_t hist_total = 0, lat_total = 0;
    for (int i = 0; i < 12; i++) {
        hist_total += st.batch_hist[i];
        lat_total += st.commit_lat_hist[i];
    }
    assert_int_equal(hist_total, st.commits);
    assert_int_equal(lat_total, st.commits);
}

static void test_tenants_and_channels_separate(void **state)
{
    fx *f = *state;
    const char *pairs[][2] = {{"t1", "a"}, {"t2", "a"}, {"t1", "b"}, {"t1a", ""}, {"t1", "a"}};
    uint64_t want[] = {1, 1, 1, 1, 2};
    char epochs[5][PUB_EPOCH_LEN + 1];
    for (int i = 0; i < 5; i++) {
        engine_req *r = publish(f, pairs[i][0], pairs[i][1], "1", NULL, 0, 0);
        assert_int_equal(r->status, PL_OK);
        assert_int_equal(r->pub->offset, want[i]);
        strcpy(epochs[i], r->pub->epoch);
        engine_req_free(r);
    }
    assert_string_equal(epochs[0], epochs[4]);
    assert_string_not_equal(epochs[0], epochs[1]);
    assert_string_not_equal(epochs[0], epochs[2]);
    /* The same key in another tenant is a different stream. */
    engine_req *r = do_read(f, "t2", "a", ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0);
    assert_int_equal(r->head, 1);
    assert_string_equal(r->pubs[0]->tenant, "t2");
    engine_req_free(r);
}

static void test_restart_keeps_everything(void **state)
{
    fx *f = *state;
    char key[16];
    for (int i = 1; i <= 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        publish_ok(f, "t1", "room", "{\"v\":[1,2]}", key, 0, 0);
    }
    engine_req *before = history(f, "room", 100);
    fx_reopen(f);
    atomic_store(&encoded, 0);
    engine_req *after = history(f, "room", 100);
    assert_int_equal(after->head, 10);
    assert_int_equal(after->first, 1);
    assert_string_equal(after->epoch, before->epoch);
    assert_int_equal(after->npubs, 10);
    assert_int_equal(atomic_load(&encoded), 0); /* loaded from disk, not encoded yet */
    for (int i = 0; i < 10; i++) {
        const rbuf *fr = pub_frame(after->pubs[i], encode);
        assert_non_null(fr);
        assert_ptr_equal(pub_frame(after->pubs[i], encode), fr); /* made once */
    }
    assert_int_equal(atomic_load(&encoded), 10);
    for (int i = 0; i < 10; i++) {
        pl_pub *a = before->pubs[i], *b = after->pubs[i];
        assert_int_equal(a->offset, b->offset);
        assert_string_equal(a->id, b->id);
        assert_int_equal(a->ts_ms, b->ts_ms);
        assert_int_equal(b->cls, PUB_STANDARD);
        assert_string_equal(b->tenant, "t1");
        assert_string_equal(b->channel, "room");
        assert_int_equal(b->data_len, strlen("{\"v\":[1,2]}"));
        assert_memory_equal(b->data, "{\"v\":[1,2]}", b->data_len);
        assert_string_equal(b->user, "alice");
        assert_string_equal(b->client, "c-1");
        assert_string_equal(b->type, "message.created");
        assert_string_equal(b->correlation_id, "corr-9");
        assert_string_equal(b->headers, "{\"x\":\"1\"}");
        assert_string_equal(b->idem_key, a->idem_key);
        assert_string_equal(b->epoch, before->epoch);
    }
    /* Idempotency survives the restart. */
    engine_req *d = publish(f, "t1", "room", "{\"other\":1}", "k3", 0, 0);
    assert_int_equal(d->status, PL_OK);
    assert_int_equal(d->duplicate, 1);
    assert_int_equal(d->pub->offset, 3);
    assert_string_equal(d->pub->id, before->pubs[2]->id);
    assert_memory_equal(d->pub->data, "{\"v\":[1,2]}", d->pub->data_len);
    engine_req_free(d);
    /* The next offset continues. */
    assert_int_equal(publish_ok(f, "t1", "room", "1", "k11", 0, 0), 11);
    engine_req_free(before);
    engine_req_free(after);
}

/* Traces pub_id for tenant; returns the status, *json gets the result. */
static int trace_id(fx *f, const char *tenant, const char *pub_id, char **json)
{
    engine_req *r = engine_req_new(ENGINE_ADMIN);
    assert_non_null(r);
    r->admin_op = ADMIN_TRACE;
    r->tenant = pl_strdup(tenant);
    r->pub_id = pl_strdup(pub_id);
    engine_submit(f->e, r);
    r = take(f, 1)[0];
    int status = r->status;
    if (json) *json = r->json ? strdup(r->json) : NULL;
    engine_req_free(r);
    return status;
}

static int64_t cid_of(fx *f, const char *channel)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT cid FROM channels WHERE channel = '%s'", channel);
    return count_rows(f, sql);
}

/* A stored pub's id is its accept time and (cid, offset): trace finds the
 * row by key, so the pubs table needs no index on id. */
static void test_pub_ids_locate_rows(void **state)
{
    fx *f = *state;
    char ids[4][PUB_ID_LEN + 1];
    const char *chans[4] = {"a", "a", "b", "a"};
    for (int i = 0; i < 4; i++) {
        engine_req *r = publish(f, "t1", chans[i], "{\"n\":1}", NULL, 0, 0);
        assert_int_equal(r->status, PL_OK);
        uint64_t ms, cid, off;
        assert_int_equal(clock_ulid_unpack(r->pub->id, strlen(r->pub->id), &ms, &cid, &off), 0);
        assert_int_equal(ms, (uint64_t)r->pub->ts_ms);
        assert_int_equal(cid, (uint64_t)cid_of(f, chans[i]));
        assert_int_equal(off, r->pub->offset);
        memcpy(ids[i], r->pub->id, sizeof(ids[i]));
        engine_req_free(r);
    }
    assert_string_not_equal(ids[0], ids[1]);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM sqlite_master WHERE name = 'pubs_id'"), 0);
    for (int i = 0; i < 4; i++) {
        char *json = NULL;
        assert_int_equal(trace_id(f, "t1", ids[i], &json), PL_OK);
        assert_non_null(strstr(json, "\"stored\":true"));
        free(json);
        /* Another tenant's trace never finds it. */
        assert_int_equal(trace_id(f, "t2", ids[i], NULL), PL_ENOTFOUND);
    }
    /* Ids that point at a real row but are not its id, and ids that are
     * not ULIDs at all, find nothing. */
    char forged[PUB_ID_LEN + 1];
    uint64_t ms, cid, off;
    assert_int_equal(clock_ulid_unpack(ids[0], PUB_ID_LEN, &ms, &cid, &off), 0);
    clock_ulid_pack(forged, ms + 1, cid, off);
    assert_int_equal(trace_id(f, "t1", forged, NULL), PL_ENOTFOUND);
    clock_ulid_pack(forged, ms, cid, off + 100);
    assert_int_equal(trace_id(f, "t1", forged, NULL), PL_ENOTFOUND);
    char lower[PUB_ID_LEN + 1];
    for (int i = 0; i <= PUB_ID_LEN; i++)
        lower[i] = (char)tolower((unsigned char)ids[0][i]);
    const char *bad[] = {"",
                         "x",
                         lower,
                         "01ARZ3NDEKTSV4RRFFQ69G5FA",
                         "01ARZ3NDEKTSV4RRFFQ69G5FAVV",
                         "81ARZ3NDEKTSV4RRFFQ69G5FAV",
                         "01ARZ3NDEKTSV4RRFFQ69G5FIL"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(trace_id(f, "t1", bad[i], NULL), PL_ENOTFOUND);
    /* Ids stay the same across a restart (they are stored, not derived). */
    fx_reopen(f);
    engine_req *h = history(f, "a", 10);
    assert_int_equal(h->npubs, 3);
    assert_string_equal(h->pubs[0]->id, ids[0]);
    assert_string_equal(h->pubs[2]->id, ids[3]);
    engine_req_free(h);
}

/* A version 2 database (random ids, index pubs_id) opens as version 3 in
 * place: its index is kept, so both its old ids and new ones trace. */
static void test_version_2_database_upgraded(void **state)
{
    fx *f = *state;
    fx_open(f);
    publish_ok(f, "t1", "room", "1", NULL, 0, 0);
    fx_close(f);
    char db[160];
    sqlite3 *h;
    snprintf(db, sizeof(db), "%s/parley.db", f->dir);
    const char *old_id = "01JD0000000000000000000042";
    char sql[256];
    snprintf(sql, sizeof(sql),
             "CREATE INDEX pubs_id ON pubs(id); UPDATE pubs SET id = '%s';"
             " ALTER TABLE pubs DROP COLUMN more; ALTER TABLE pubs DROP COLUMN dbytes;"
             " ALTER TABLE pubs DROP COLUMN n; PRAGMA user_version=2;",
             old_id);
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    fx_open(f);
    assert_int_equal(count_rows(f, "PRAGMA user_version"), 4);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM sqlite_master WHERE name = 'pubs_id'"), 1);
    engine_req *r = publish(f, "t1", "room", "2", NULL, 0, 0);
    assert_int_equal(r->status, PL_OK);
    assert_int_equal(trace_id(f, "t1", old_id, NULL), PL_OK);
    assert_int_equal(trace_id(f, "t1", r->pub->id, NULL), PL_OK);
    assert_int_equal(trace_id(f, "t2", old_id, NULL), PL_ENOTFOUND);
    engine_req_free(r);
    /* Version 1 (a development layout) is refused, not modified. */
    fx_close(f);
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "PRAGMA user_version=1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    char err[256] = "";
    f->opts.data_dir = f->dir;
    assert_null(engine_sqlite_new(&f->opts, err, sizeof(err)));
    assert_non_null(strstr(err, "schema version 1"));
    assert_int_equal(count_rows(f, "PRAGMA user_version"), 1);
}

/* ------------------------------------------------------------------------ */
/* Rows shared by a commit's pubs                                           */
/* ------------------------------------------------------------------------ */

/* Restarts the engine with reqs queued before its thread runs, so they form
 * one batch; returns the n finished requests (the caller frees them). */
static engine_req **one_batch(fx *f, engine_req **reqs, size_t n)
{
    fx_close(f);
    fx_new(f);
    for (size_t i = 0; i < n; i++)
        engine_submit(f->e, reqs[i]);
    assert_int_equal(engine_start(f->e), PL_OK);
    return take(f, n);
}

/* A pub with only data (every optional field absent). */
static engine_req *bare_req(const char *channel, const char *data, uint32_t hist)
{
    engine_req *r = engine_req_new(ENGINE_PUBLISH);
    assert_non_null(r);
    pub_fields fl = {.tenant = "t1",
                     .tenant_len = 2,
                     .channel = channel,
                     .channel_len = strlen(channel),
                     .data = data,
                     .data_len = strlen(data)};
    r->pub = pub_new(&fl, PUB_EPHEMERAL);
    assert_non_null(r->pub);
    r->history_size = hist;
    return r;
}

static void assert_same_pub(const pl_pub *got, const pl_pub *want)
{
    assert_int_equal(got->offset, want->offset);
    assert_string_equal(got->id, want->id);
    assert_int_equal(got->ts_ms, want->ts_ms);
    assert_int_equal(got->cls, want->cls);
    assert_int_equal(got->data_len, want->data_len);
    assert_memory_equal(got->data, want->data, want->data_len);
    const char *g[] = {got->user,           got->client,  got->type,
                       got->correlation_id, got->headers, got->idem_key};
    const char *w[] = {want->user,           want->client,  want->type,
                       want->correlation_id, want->headers, want->idem_key};
    for (int k = 0; k < 6; k++) {
        if (!w[k])
            assert_null(g[k]);
        else
            assert_string_equal(g[k], w[k]);
    }
}

/* Reads channel ch back (ring of 2: from disk) and compares every pub with
 * what its publish answered. */
static void assert_stored(fx *f, const char *ch, engine_req **pubs, size_t n)
{
    engine_req *h = history(f, ch, 1000);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(pubs[i]->pub->channel, ch)) continue;
        assert_true(k < h->npubs);
        assert_same_pub(h->pubs[k++], pubs[i]->pub);
    }
    assert_int_equal(k, h->npubs);
    engine_req_free(h);
}

/* One commit's pubs of a channel share a row (a guaranteed pub keeps its
 * own); every field reads back the same from disk, before and after a
 * restart; reads starting inside a row and trace find each pub. */
static void test_runs_share_rows(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 2;
    enum { N = 60 };
    engine_req *reqs[N];
    char data[N][32];
    for (int i = 0; i < N; i++) {
        const char *ch = i % 3 == 2 ? "b" : "a";
        snprintf(data[i], sizeof(data[i]), "{\"i\":%d,\"s\":\"\\u00e9\"}", i);
        reqs[i] = i % 4 == 1 ? bare_req(ch, data[i], 0) : pub_req("t1", ch, data[i], NULL, 0, 0);
        if (i == 30) reqs[i]->pub->cls = PUB_GUARANTEED;
    }
    engine_req **r = one_batch(f, reqs, N);
    engine_req *done[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i]->status, PL_OK);
        done[i] = r[i];
    }
    /* a: 40 pubs split by the guaranteed one (offset 21) into 3 rows; b: 1. */
    assert_int_equal(done[30]->pub->offset, 21);
    assert_int_equal(count_rows(f, "SELECT sum(n) FROM pubs"), N);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM pubs"), 4);
    assert_int_equal(count_rows(f, "SELECT n FROM pubs WHERE off = 21 AND cls = 2"), 1);
    assert_stored(f, "a", done, N);
    assert_stored(f, "b", done, N);
    /* A read from inside the first row, and one backwards across rows. */
    engine_req *h = do_read(f, "t1", "a", ENGINE_READ_HISTORY, 1, 15, NULL, 10, 0);
    assert_range(h, 16, 25);
    engine_req_free(h);
    h = do_read(f, "t1", "a", ENGINE_READ_HISTORY, 1, 24, NULL, 5, 1);
    assert_range_desc(h, 23, 19);
    engine_req_free(h);
    for (int i = 0; i < N; i++)
        assert_int_equal(trace_id(f, "t1", done[i]->pub->id, NULL), PL_OK);
    /* An id naming a row's pub at another time is not that pub. */
    uint64_t ms, cid, off;
    char forged[PUB_ID_LEN + 1];
    assert_int_equal(clock_ulid_unpack(done[4]->pub->id, PUB_ID_LEN, &ms, &cid, &off), 0);
    clock_ulid_pack(forged, ms + 1, cid, off);
    assert_int_equal(trace_id(f, "t1", forged, NULL), PL_ENOTFOUND);
    clock_ulid_pack(forged, ms, cid, 41); /* past the last row */
    assert_int_equal(trace_id(f, "t1", forged, NULL), PL_ENOTFOUND);
    fx_reopen(f);
    assert_stored(f, "a", done, N);
    assert_stored(f, "b", done, N);
    for (int i = 0; i < N; i++)
        engine_req_free(done[i]);
}

/* Rows never hold more than history_size pubs; a size trim deletes whole
 * rows, and the pubs below first in a row it cut into are never read. */
static void test_retention_cuts_rows(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 2;
    engine_req *reqs[25];
    for (int i = 0; i < 25; i++)
        reqs[i] = pub_req("t1", "c", "1", NULL, 10, 0);
    engine_req **r = one_batch(f, reqs, 25);
    char id12[PUB_ID_LEN + 1];
    memcpy(id12, r[11]->pub->id, sizeof(id12));
    for (int i = 0; i < 25; i++)
        engine_req_free(r[i]);
    /* Rows 1-10, 11-20, 21-25; first = 16: the first row went. */
    assert_int_equal(count_rows(f, "SELECT count(*) FROM pubs"), 2);
    assert_int_equal(count_rows(f, "SELECT min(off) FROM pubs"), 11);
    engine_req *h = history(f, "c", 100);
    assert_range(h, 16, 25);
    assert_int_equal(h->first, 16);
    engine_req_free(h);
    h = do_read(f, "t1", "c", ENGINE_READ_HISTORY, 1, 11, NULL, 100, 0);
    assert_range(h, 16, 25);
    engine_req_free(h);
    h = do_read(f, "t1", "c", ENGINE_READ_RECOVER, 1, 12, NULL, 100, 0);
    assert_int_equal(h->recovered, 0);
    engine_req_free(h);
    assert_int_equal(trace_id(f, "t1", id12, NULL), PL_ENOTFOUND);
    fx_reopen(f);
    h = history(f, "c", 100);
    assert_range(h, 16, 25);
    engine_req_free(h);
    /* Once all of a row is below first, it goes. */
    for (int i = 0; i < 6; i++)
        publish_ok(f, "t1", "c", "1", NULL, 10, 0);
    assert_int_equal(count_rows(f, "SELECT min(off) FROM pubs"), 21);
    assert_int_equal(count_rows(f, "SELECT sum(n) FROM pubs"), 11);
    h = history(f, "c", 100);
    assert_range(h, 22, 31);
    engine_req_free(h);
}

/* A TTL trim starts at the row holding first: a row a size trim cut into
 * that has not expired keeps its retained pubs. */
static void test_ttl_with_cut_row(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 2;
    fx_open(f);
    publish_ok(f, "t1", "t", "1", NULL, 10, 1000);
    sleep_ms(500);
    engine_req *reqs[25];
    for (int i = 0; i < 25; i++)
        reqs[i] = pub_req("t1", "t", "2", NULL, 10, 1000);
    engine_req **r = one_batch(f, reqs, 25);
    for (int i = 0; i < 25; i++)
        engine_req_free(r[i]);
    /* Offsets 2-11, 12-21, 22-26 in rows; first = 17. */
    sleep_ms(700); /* the first pub expired, the batch has not */
    publish_ok(f, "t1", "t", "3", NULL, 10, 1000);
    engine_req *h = history(f, "t", 100);
    assert_range(h, 18, 27);
    engine_req_free(h);
}

/* A damaged row is an I/O error for the read, never a crash or a made-up
 * pub. */
static void test_damaged_rows(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 2;
    engine_req *reqs[8];
    for (int i = 0; i < 8; i++)
        reqs[i] = pub_req("t1", "d", "1", NULL, 0, 0);
    engine_req **r = one_batch(f, reqs, 8);
    for (int i = 0; i < 8; i++)
        engine_req_free(r[i]);
    const char *damage[] = {"UPDATE pubs SET more = x'0f'", "UPDATE pubs SET n = n + 1",
                            "UPDATE pubs SET n = 1", "UPDATE pubs SET more = substr(more, 1, 40)",
                            "UPDATE pubs SET n = 0"};
    char path[128];
    snprintf(path, sizeof(path), "%s/parley.db", f->dir);
    for (size_t k = 0; k < sizeof(damage) / sizeof(damage[0]); k++) {
        fx_close(f);
        sqlite3 *db;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "SAVEPOINT s", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, damage[k], NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "RELEASE s", NULL, NULL, NULL), SQLITE_OK);
        fx_open(f);
        engine_submit(f->e, read_req("t1", "d", ENGINE_READ_HISTORY, 0, 0, NULL, 100, 0));
        engine_req *h = take(f, 1)[0];
        if (h->status != PL_EIO)
            fail_msg("%s: status %d, %zu pubs", damage[k], h->status, h->npubs);
        engine_req_free(h);
        fx_close(f);
        /* Undo for the next case: rewrite the original rows. */
        assert_int_equal(sqlite3_exec(db, "DELETE FROM pubs", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        for (int i = 0; i < 8; i++)
            reqs[i] = pub_req("t1", "d", "1", NULL, 0, 0);
        r = one_batch(f, reqs, 8);
        for (int i = 0; i < 8; i++)
            engine_req_free(r[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* Idempotency and batch order                                              */
/* ------------------------------------------------------------------------ */

static void test_duplicate_in_one_batch(void **state)
{
    fx *f = *state;
    fx_new(f);
    /* Queued before start, so the thread takes them as one batch. A read
     * submitted first must still be ordered after the publishes it sees. */
    engine_submit(f->e, read_req("t1", "room", ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0));
    engine_submit(f->e, pub_req("t1", "room", "\"first\"", "K", 0, 0));
    engine_submit(f->e, pub_req("t1", "room", "\"retry\"", "K", 0, 0));
    engine_submit(f->e, pub_req("t1", "room", "\"other\"", "L", 0, 0));
    assert_int_equal(engine_start(f->e), PL_OK);
    engine_req **r = take(f, 4);
    assert_int_equal(f->c.calls, 1);
    assert_int_equal(r[0]->op, ENGINE_PUBLISH);
    assert_int_equal(r[0]->pub->offset, 1);
    assert_int_equal(r[0]->duplicate, 0);
    assert_int_equal(r[1]->pub->offset, 1);
    assert_int_equal(r[1]->duplicate, 1);
    assert_ptr_equal(r[1]->pub, r[0]->pub); /* the original record itself */
    assert_memory_equal(r[1]->pub->data, "\"first\"", 7);
    assert_int_equal(r[2]->pub->offset, 2);
    assert_int_equal(r[3]->op, ENGINE_READ);
    assert_int_equal(r[3]->head, 2);
    assert_range(r[3], 1, 2);
    engine_stats st;
    engine_get_stats(f->e, &st);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.committed_pubs, 2);
    for (int i = 0; i < 4; i++)
        engine_req_free(r[i]);
    assert_int_equal(count_rows(f, "SELECT sum(n) FROM pubs"), 2);
}

/* A chain submitted to a running, idle engine is one batch: one commit and
 * one sink call, in chain order. That is what lets a worker's reads of one
 * loop iteration share a commit. */
static void test_chain_is_one_batch(void **state)
{
    fx *f = *state;
    publish_ok(f, "t1", "a", "0", NULL, 0, 0); /* the thread is running and now idle */
    engine_stats before;
    engine_get_stats(f->e, &before);
    size_t calls = f->c.calls;

    engine_chain ch = {0};
    engine_submit_chain(f->e, &ch); /* empty: nothing happens */
    enum { N = 300 };
    const char *chans[] = {"a", "b", "c"};
    for (int i = 0; i < N; i++) {
        char data[16];
        snprintf(data, sizeof(data), "%d", i);
        engine_chain_add(&ch, pub_req("t1", chans[i % 3], data, NULL, 0, 0));
        if (i == N / 2)
            engine_chain_add(&ch, read_req("t1", "a", ENGINE_READ_HISTORY, 0, 0, NULL, 1000, 0));
    }
    engine_submit_chain(f->e, &ch);
    assert_null(ch.head);
    assert_null(ch.tail);
    engine_req **r = take(f, N + 1);

    engine_stats after;
    engine_get_stats(f->e, &after);
    assert_int_equal(after.commits - before.commits, 1);
    assert_int_equal(after.committed_pubs - before.committed_pubs, N);
    assert_int_equal(f->c.calls - calls, 1);
    uint64_t next[3] = {2, 1, 1}; /* channel a already holds offset 1 */
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i]->op, ENGINE_PUBLISH);
        assert_int_equal(r[i]->status, PL_OK);
        char want[16];
        snprintf(want, sizeof(want), "%d", i);
        assert_int_equal(r[i]->pub->data_len, strlen(want));
        assert_memory_equal(r[i]->pub->data, want, strlen(want));
        assert_int_equal(r[i]->pub->offset, next[i % 3]++);
    }
    /* The read comes after every publish of its batch and sees them all. */
    assert_int_equal(r[N]->op, ENGINE_READ);
    assert_range(r[N], 1, N / 3 + 1);
    for (int i = 0; i <= N; i++)
        engine_req_free(r[i]);
}

static void test_duplicate_original_sources(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 2;
    f->opts.dedup_window_ms = 60000;
    fx_open(f);
    /* Original on disk only (ring holds 2). */
    engine_req *o = publish(f, "t1", "a", "\"orig\"", "K", 0, 0);
    char id[PUB_ID_LEN + 1];
    strcpy(id, o->pub->id);
    engine_req_free(o);
    for (int i = 0; i < 3; i++)
        publish_ok(f, "t1", "a", "x", NULL, 0, 0);
    atomic_store(&encoded, 0);
    engine_req *d = publish(f, "t1", "a", "\"again\"", "K", 0, 0);
    assert_int_equal(d->duplicate, 1);
    assert_int_equal(d->pub->offset, 1);
    assert_string_equal(d->pub->id, id);
    assert_memory_equal(d->pub->data, "\"orig\"", 6);
    assert_null(pub_frame_peek(d->pub));
    assert_int_equal(atomic_load(&encoded), 0);
    engine_req_free(d);

    /* Original already trimmed by retention: the identity still comes back. */
    o = publish(f, "t1", "b", "\"orig\"", "K", 1, 0);
    strcpy(id, o->pub->id);
    engine_req_free(o);
    publish_ok(f, "t1", "b", "x", NULL, 1, 0);
    d = publish(f, "t1", "b", "\"again\"", "K", 1, 0);
    assert_int_equal(d->status, PL_OK);
    assert_int_equal(d->duplicate, 1);
    assert_int_equal(d->pub->offset, 1);
    assert_string_equal(d->pub->id, id);
    assert_non_null(d->pub->epoch[0]);
    engine_req_free(d);
    engine_req *h = history(f, "b", 10);
    assert_int_equal(h->head, 2);
    engine_req_free(h);
    h = do_read(f, "t1", "b", ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0);
    assert_range(h, 2, 2);
    engine_req_free(h);
    /* Same key on another channel is not a duplicate. */
    engine_req *x = publish(f, "t1", "c", "1", "K", 0, 0);
    assert_int_equal(x->duplicate, 0);
    assert_int_equal(x->pub->offset, 1);
    engine_req_free(x);
}

/* ------------------------------------------------------------------------ */
/* Reads                                                                    */
/* ------------------------------------------------------------------------ */

static void test_history_modes(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 20; i++)
        publish_ok(f, "t1", "h", "1", NULL, 0, 0);
    engine_req *r;

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 0);
    assert_range(r, 16, 20);
    assert_int_equal(r->head, 20);
    assert_int_equal(r->more, 0);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 1);
    assert_range_desc(r, 20, 16);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 3, NULL, 5, 0);
    assert_range(r, 4, 8);
    assert_int_equal(r->more, 1);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 15, NULL, 5, 0);
    assert_range(r, 16, 20);
    assert_int_equal(r->more, 0);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 20, NULL, 5, 0);
    assert_range(r, 1, 0);
    assert_int_equal(r->more, 0);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 10, NULL, 4, 1);
    assert_range_desc(r, 9, 6);
    assert_int_equal(r->more, 1);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 3, NULL, 10, 1);
    assert_range_desc(r, 2, 1);
    assert_int_equal(r->more, 0);
    engine_req_free(r);

    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 1, NULL, 10, 1);
    assert_range(r, 1, 0);
    engine_req_free(r);

    /* Reverse from beyond head starts at head. */
    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, 1000, NULL, 3, 1);
    assert_range_desc(r, 20, 18);
    engine_req_free(r);

    /* limit 0: only head and epoch. */
    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 0, 0, NULL, 0, 0);
    assert_int_equal(r->npubs, 0);
    assert_null(r->pubs);
    assert_int_equal(r->head, 20);
    assert_int_equal(strlen(r->epoch), PUB_EPOCH_LEN);
    engine_req_free(r);

    /* Hostile bounds: huge limit and since. */
    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 0, 0, NULL, UINT32_MAX, 0);
    assert_range(r, 1, 20);
    engine_req_free(r);
    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, UINT64_MAX, NULL, UINT32_MAX, 0);
    assert_range(r, 1, 0);
    engine_req_free(r);
    r = do_read(f, "t1", "h", ENGINE_READ_HISTORY, 1, UINT64_MAX, NULL, UINT32_MAX, 1);
    assert_range_desc(r, 20, 1);
    engine_req_free(r);
    r = do_read(f, "t1", "h", ENGINE_READ_RECOVER, 1, UINT64_MAX, "zzzzzzzz", UINT32_MAX, 0);
    assert_int_equal(r->recovered, 0);
    assert_range(r, 1, 20);
    engine_req_free(r);
}

/* Ring and disk together: the ring holds the newest 4, the rest is loaded. */
static void test_reads_span_ring_and_disk(void **state)
{
    fx *f = *state;
    f->opts.ring_size = 4;
    fx_open(f);
    for (int i = 0; i < 10; i++)
        publish_ok(f, "t1", "r", "1", NULL, 0, 0);
    engine_req *r = history(f, "r", 10);
    assert_range(r, 1, 10);
    for (size_t i = 1; i < r->npubs; i++)
        assert_string_equal(r->pubs[i]->epoch, r->epoch);
    engine_req_free(r);
    r = do_read(f, "t1", "r", ENGINE_READ_HISTORY, 1, 4, NULL, 4, 0);
    assert_range(r, 5, 8);
    engine_req_free(r);
}

typedef struct recover_case {
    const char *name;
    int has_since;
    uint64_t since;
    int other_epoch;
    uint32_t limit;
    int recovered;
    uint64_t lo, hi; /* expected pubs, empty when lo > hi */
    int more;
} recover_case;

/* Channel "m": 20 pubs, history_size 15 (offsets 6..20 retained). */
static const recover_case recover_cases[] = {
    {"from a position", 1, 10, 0, 100, 1, 11, 20, 0},
    {"past the limit", 1, 10, 0, 3, 1, 11, 13, 1},
    {"at head", 1, 20, 0, 100, 1, 1, 0, 0},
    {"first retained boundary", 1, 5, 0, 100, 1, 6, 20, 0},
    {"trimmed position", 1, 4, 0, 3, 0, 18, 20, 0},
    {"trimmed from zero", 1, 0, 0, 100, 0, 6, 20, 0},
    {"future position", 1, 21, 0, 3, 0, 18, 20, 0},
    {"other epoch", 1, 10, 1, 3, 0, 18, 20, 0},
    {"no since", 0, 0, 0, 2, 0, 19, 20, 0},
    {"limit 0 recovered", 1, 10, 0, 0, 1, 1, 0, 1},
    {"limit 0 at head", 1, 20, 0, 0, 1, 1, 0, 0},
    {"limit 0 not recovered", 1, 2, 0, 0, 0, 1, 0, 0},
};

static void test_recovery_matrix(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 20; i++)
        publish_ok(f, "t1", "m", "1", NULL, 15, 0);
    engine_req *h = history(f, "m", 0);
    char epoch[PUB_EPOCH_LEN + 1];
    strcpy(epoch, h->epoch);
    assert_int_equal(h->first, 6);
    engine_req_free(h);
    for (size_t i = 0; i < sizeof(recover_cases) / sizeof(recover_cases[0]); i++) {
        const recover_case *c = &recover_cases[i];
        print_message("recover: %s\n", c->name);
        engine_req *r = do_read(f, "t1", "m", ENGINE_READ_RECOVER, c->has_since, c->since,
                                c->other_epoch ? "other000" : epoch, c->limit, 0);
        assert_int_equal(r->recovered, c->recovered);
        assert_int_equal(r->more, c->more);
        assert_int_equal(r->head, 20);
        assert_int_equal(r->first, 6);
        assert_string_equal(r->epoch, epoch);
        assert_range(r, c->lo, c->hi);
        engine_req_free(r);
    }

    /* Empty channel: a read creates it with a stable, persisted epoch. */
    engine_req *r = do_read(f, "t1", "empty", ENGINE_READ_RECOVER, 0, 0, NULL, 10, 0);
    assert_int_equal(r->head, 0);
    assert_int_equal(r->first, 0);
    assert_int_equal(r->npubs, 0);
    strcpy(epoch, r->epoch);
    engine_req_free(r);
    fx_reopen(f);
    r = do_read(f, "t1", "empty", ENGINE_READ_RECOVER, 1, 0, epoch, 10, 0);
    assert_int_equal(r->recovered, 1);
    assert_string_equal(r->epoch, epoch);
    assert_int_equal(r->npubs, 0);
    engine_req_free(r);
    r = do_read(f, "t1", "empty", ENGINE_READ_RECOVER, 1, 0, "aaaaaaaa", 10, 0);
    assert_int_equal(r->recovered, 0);
    engine_req_free(r);
    /* The first publish keeps the epoch the readers were given. */
    engine_req *p = publish(f, "t1", "empty", "1", NULL, 0, 0);
    assert_string_equal(p->pub->epoch, epoch);
    engine_req_free(p);
}

/* ------------------------------------------------------------------------ */
/* Retention                                                                */
/* ------------------------------------------------------------------------ */

static void test_retention_by_size(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 12; i++)
        publish_ok(f, "t1", "s", "1", NULL, 5, 0);
    engine_req *r = history(f, "s", 100);
    assert_int_equal(r->head, 12);
    assert_int_equal(r->first, 8);
    assert_range(r, 8, 12);
    engine_req_free(r);
    assert_int_equal(
        count_rows(f, "SELECT count(*) FROM pubs JOIN channels USING (cid) WHERE channel = 's'"),
        5);
    fx_reopen(f);
    r = history(f, "s", 100);
    assert_int_equal(r->first, 8);
    assert_range(r, 8, 12);
    engine_req_free(r);
    /* Unlimited again: nothing more is dropped, offsets continue. */
    assert_int_equal(publish_ok(f, "t1", "s", "1", NULL, 0, 0), 13);
    r = history(f, "s", 100);
    assert_range(r, 8, 13);
    engine_req_free(r);
}

static void test_retention_by_ttl(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 3; i++)
        publish_ok(f, "t1", "ttl", "1", NULL, 0, 200);
    engine_req *r = history(f, "ttl", 100);
    assert_range(r, 1, 3);
    engine_req_free(r);
    sleep_ms(300);
    /* A read alone sees the expiry. */
    r = history(f, "ttl", 100);
    assert_int_equal(r->head, 3);
    assert_int_equal(r->first, 0);
    assert_int_equal(r->npubs, 0);
    char epoch[PUB_EPOCH_LEN + 1];
    strcpy(epoch, r->epoch);
    engine_req_free(r);
    r = do_read(f, "t1", "ttl", ENGINE_READ_RECOVER, 1, 1, epoch, 10, 0);
    assert_int_equal(r->recovered, 0);
    engine_req_free(r);
    r = do_read(f, "t1", "ttl", ENGINE_READ_RECOVER, 1, 3, epoch, 10, 0);
    assert_int_equal(r->recovered, 1);
    engine_req_free(r);
    assert_int_equal(publish_ok(f, "t1", "ttl", "1", NULL, 0, 200), 4);
    r = history(f, "ttl", 100);
    assert_int_equal(r->first, 4);
    assert_range(r, 4, 4);
    engine_req_free(r);
    assert_int_equal(
        count_rows(f, "SELECT count(*) FROM pubs JOIN channels USING (cid) WHERE channel = 'ttl'"),
        1);
    /* A partly expired stream keeps its newest pubs. */
    sleep_ms(120);
    publish_ok(f, "t1", "ttl", "1", NULL, 0, 200);
    sleep_ms(120);
    r = history(f, "ttl", 100);
    assert_int_equal(r->first, 5);
    assert_range(r, 5, 5);
    engine_req_free(r);
}

static void test_sweeps_untouched_channels(void **state)
{
    fx *f = *state;
    f->opts.dedup_window_ms = 100;
    fx_open(f);
    for (int i = 0; i < 4; i++)
        publish_ok(f, "t1", "cold", "1", "key", 0, 100);
    publish_ok(f, "t1", "keep", "1", NULL, 0, 0);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM idem"), 1);
    sleep_ms(2300); /* the sweep runs at most once a second, even when idle */
    assert_int_equal(
        count_rows(f, "SELECT count(*) FROM pubs JOIN channels USING (cid) WHERE channel = 'cold'"),
        0);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM idem"), 0);
    assert_int_equal(count_rows(f, "SELECT first_off FROM channels WHERE channel = 'cold'"), 0);
    assert_int_equal(
        count_rows(f, "SELECT count(*) FROM pubs JOIN channels USING (cid) WHERE channel = 'keep'"),
        1);
    /* The key's window passed: the same key is a new publish now. */
    engine_req *r = publish(f, "t1", "cold", "1", "key", 0, 100);
    assert_int_equal(r->duplicate, 0);
    assert_int_equal(r->pub->offset, 2);
    engine_req_free(r);
}

/* ------------------------------------------------------------------------ */
/* Storage failure                                                          */
/* ------------------------------------------------------------------------ */

static void test_disk_full(void **state)
{
    fx *f = *state;
    static char big[4001];
    memset(big, 'x', sizeof(big) - 1);
    big[0] = big[sizeof(big) - 2] = '"';
    f->opts.max_db_bytes = 256 * 1024;
    fx_open(f);
    uint64_t ok = 0;
    engine_req *r = NULL;
    for (int i = 0; i < 1000; i++) {
        r = publish(f, "t1", "full", big, NULL, 0, 0);
        if (r->status != PL_OK) break;
        ok++;
        assert_int_equal(r->pub->offset, ok);
        engine_req_free(r);
        r = NULL;
    }
    assert_non_null(r);
    assert_int_equal(r->status, PL_EIO);
    assert_int_equal(r->pub->offset, 0);
    engine_req_free(r);
    assert_true(ok > 5);

    /* A whole batch fails together, keys included; reads still work. */
    engine_stop(f->e);
    engine_submit(f->e, pub_req("t1", "full", "1", "K", 0, 0));
    engine_submit(f->e, pub_req("t1", "other", big, NULL, 0, 0));
    engine_submit(f->e, pub_req("t1", "full", big, NULL, 0, 0));
    engine_submit(f->e, read_req("t1", "full", ENGINE_READ_HISTORY, 0, 0, NULL, 2, 0));
    assert_int_equal(engine_start(f->e), PL_OK);
    engine_req **b = take(f, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b[i]->status, PL_EIO);
        assert_int_equal(b[i]->duplicate, 0);
        assert_int_equal(b[i]->pub->offset, 0);
    }
    assert_int_equal(b[3]->status, PL_OK);
    assert_int_equal(b[3]->head, ok);
    assert_range(b[3], ok - 1, ok);
    for (int i = 0; i < 4; i++)
        engine_req_free(b[i]);
    engine_stats st;
    engine_get_stats(f->e, &st);
    assert_true(st.commit_failures >= 2);
    assert_int_equal(st.committed_pubs, ok);

    /* Space comes back: offsets continue with no gap, the key was not used. */
    f->opts.max_db_bytes = 0;
    fx_reopen(f);
    engine_req *h = history(f, "full", 1000);
    assert_int_equal(h->head, ok);
    assert_int_equal(h->npubs, ok);
    engine_req_free(h);
    r = publish(f, "t1", "full", "1", "K", 0, 0);
    assert_int_equal(r->status, PL_OK);
    assert_int_equal(r->duplicate, 0);
    assert_int_equal(r->pub->offset, ok + 1);
    engine_req_free(r);
    assert_int_equal(publish_ok(f, "t1", "other", "1", NULL, 0, 0), 1);
}

/* Retention frees pages, so a full database recovers without a restart. */
static void test_disk_full_recovers_in_place(void **state)
{
    fx *f = *state;
    static char big[8001];
    memset(big, 'y', sizeof(big) - 1);
    big[0] = big[sizeof(big) - 2] = '"';
    f->opts.max_db_bytes = 256 * 1024;
    fx_open(f);
    uint64_t ok = 0;
    for (;;) {
        engine_req *r = publish(f, "t1", "ttl", big, NULL, 0, 1000);
        int status = r->status;
        engine_req_free(r);
        if (status != PL_OK) break;
        ok++;
        assert_true(ok < 1000);
    }
    sleep_ms(2500); /* expire everything, let the sweep delete it */
    engine_req *r = publish(f, "t1", "ttl", big, NULL, 0, 1000);
    assert_int_equal(r->status, PL_OK);
    assert_int_equal(r->pub->offset, ok + 1);
    engine_req_free(r);
}

/* ------------------------------------------------------------------------ */
/* Concurrency: group commit and the benchmark                              */
/* ------------------------------------------------------------------------ */

/* Each benchmark publisher keeps up to `window` publishes in flight (1 =
 * submit and wait, like a client waiting for each ack). */
typedef struct bench {
    engine *e;
    int per_thread;
    int window;
    char channel[32];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight;
    int errors;
    uint64_t last;
} bench;

static void bench_sink(void *ctx, engine_req **reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bench *b = reqs[i]->owner;
        pthread_mutex_lock(&b->mu);
        /* Offsets of one publisher's channel arrive in increasing order. */
        if (reqs[i]->status != PL_OK || reqs[i]->pub->offset <= b->last) b->errors++;
        b->last = reqs[i]->pub->offset;
        b->inflight--;
        pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->mu);
        engine_req_free(reqs[i]);
    }
}

static void *bench_thread(void *arg)
{
    bench *b = arg;
    for (int i = 0; i < b->per_thread; i++) {
        engine_req *r = pub_req("t1", b->channel, "{\"text\":\"hello world\"}", NULL, 1000, 0);
        r->owner = b;
        pthread_mutex_lock(&b->mu);
        while (b->inflight >= b->window)
            pthread_cond_wait(&b->cv, &b->mu);
        b->inflight++;
        pthread_mutex_unlock(&b->mu);
        engine_submit(b->e, r);
    }
    pthread_mutex_lock(&b->mu);
    while (b->inflight)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* nthreads publishers; each channel is shared by `share` publishers when
 * window is 1 (one channel per publisher otherwise, to check order). */
static void run_bench(fx *f, int nthreads, int per_thread, int window, int share, engine_stats *st,
                      double *secs)
{
    char err[256];
    f->opts.data_dir = f->dir;
    f->opts.sink = bench_sink;
    f->opts.sink_ctx = NULL;
    f->opts.encode = NULL;
    f->e = engine_sqlite_new(&f->opts, err, sizeof(err));
    assert_non_null(f->e);
    assert_int_equal(engine_start(f->e), PL_OK);
    static pthread_t th[64];
    static bench b[64];
    assert_true(nthreads <= 64);
    int64_t t0 = clock_mono_us();
    for (int i = 0; i < nthreads; i++) {
        b[i] = (bench){.e = f->e, .per_thread = per_thread, .window = window};
        pthread_mutex_init(&b[i].mu, NULL);
        pthread_cond_init(&b[i].cv, NULL);
        snprintf(b[i].channel, sizeof(b[i].channel), "bench-%d", i / share);
        pthread_create(&th[i], NULL, bench_thread, &b[i]);
    }
    int errors = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        errors += b[i].errors;
    }
    *secs = (double)(clock_mono_us() - t0) / 1e6;
    engine_get_stats(f->e, st);
    fx_close(f);
    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_destroy(&b[i].mu);
        pthread_cond_destroy(&b[i].cv);
    }
    assert_int_equal(errors, 0);
}

static void print_bench(const char *what, const engine_stats *st, double secs)
{
    double commits = (double)(st->commits ? st->commits : 1);
    print_message("bench %s: %llu pubs in %.2f s = %.0f acked pubs/s, avg batch %.1f, "
                  "max batch %llu, avg commit %.0f us\n",
                  what, (unsigned long long)st->committed_pubs, secs,
                  (double)st->committed_pubs / secs, (double)st->committed_pubs / commits,
                  (unsigned long long)st->batch_max, (double)st->commit_us_total / commits);
}

static void test_group_commit(void **state)
{
    fx *f = *state;
    engine_stats st;
    double secs;
    run_bench(f, 16, 100, 1, 4, &st, &secs);
    assert_int_equal(st.committed_pubs, 1600);
    assert_true(st.batch_max > 1);
    assert_true(st.commits < st.committed_pubs);
    assert_int_equal(count_rows(f, "SELECT sum(n) FROM pubs"), 1600);
    assert_int_equal(count_rows(f, "SELECT sum(head) FROM channels"), 1600);
}

/* Throughput, printed: PL_BENCH_PUBS (total) and PL_BENCH_WINDOW (in flight
 * per publisher) override the defaults. */
static void test_bench(void **state)
{
    fx *f = *state;
    const char *env = getenv("PL_BENCH_PUBS");
    const char *wenv = getenv("PL_BENCH_WINDOW");
    int total = env ? atoi(env) : 64 * 100;
    int window = wenv ? atoi(wenv) : 1;
    engine_stats st;
    double secs;
    char what[64];
    run_bench(f, 64, total / 64, window > 0 ? window : 1, 1, &st, &secs);
    snprintf(what, sizeof(what), "64 publishers x window %d", window);
    print_bench(what, &st, secs);
    assert_int_equal(st.committed_pubs, (uint64_t)(total / 64) * 64);
    if (wenv) return;
    /* Pipelined: what one engine thread sustains when batches are large. */
    run_bench(f, 64, 1000, 64, 1, &st, &secs);
    print_bench("64 publishers x window 64", &st, secs);
    assert_int_equal(st.committed_pubs, 64000);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle, hostile input, allocation failures, cache bounds              */
/* ------------------------------------------------------------------------ */

static void test_stop_drains_everything(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 500; i++) {
        engine_submit(f->e, pub_req("t1", i % 2 ? "a" : "b", "1", NULL, 0, 0));
        if (i % 50 == 0)
            engine_submit(f->e, read_req("t1", "a", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 0));
    }
    engine_stop(f->e);
    assert_int_equal(f->c.n, 510);
    engine_free(f->e);
    f->e = NULL;
    /* Sink order: each read sees exactly the publishes before it. */
    uint64_t head_a = 0;
    for (size_t i = 0; i < f->c.n; i++) {
        engine_req *r = f->c.items[i];
        if (r->op == ENGINE_PUBLISH) {
            assert_int_equal(r->status, PL_OK);
            if (!strcmp(r->pub->channel, "a")) head_a = r->pub->offset;
        } else {
            assert_int_equal(r->head, head_a);
        }
    }
}

static void test_hostile_input(void **state)
{
    fx *f = *state;
    engine_req *bad = engine_req_new(ENGINE_PUBLISH); /* no pub */
    engine_submit(f->e, bad);
    bad = engine_req_new(ENGINE_READ); /* no channel */
    engine_submit(f->e, bad);
    bad = engine_req_new(ENGINE_PUBLISH);
    bad->op = (enum engine_op)99;
    engine_submit(f->e, bad);
    engine_submit(f->e, pub_req("t1", "ok", "1", NULL, 0, 0));
    engine_req **r = take(f, 4);
    int inval = 0, ok = 0;
    for (int i = 0; i < 4; i++) {
        if (r[i]->status == PL_EINVAL) inval++;
        if (r[i]->status == PL_OK) ok++;
        engine_req_free(r[i]);
    }
    assert_int_equal(inval, 3);
    assert_int_equal(ok, 1);

    /* Names that would break a hand-built query or a naive key. */
    const char *names[] = {"'; DROP TABLE pubs; --", "a\"b", "ünï©ødé", "a", "", "%s%n"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_int_equal(publish_ok(f, names[i], names[i], "{\"a\":\"\\u0000\"}", names[i], 0, 0),
                         1);
        assert_int_equal(publish_ok(f, "t1", names[i], "[]", NULL, 0, 0), 1);
    }
    engine_req *h = do_read(f, "'; DROP TABLE pubs; --", "'; DROP TABLE pubs; --",
                            ENGINE_READ_HISTORY, 0, 0, NULL, 10, 0);
    assert_int_equal(h->npubs, 1);
    assert_string_equal(h->pubs[0]->idem_key, "'; DROP TABLE pubs; --");
    engine_req_free(h);

    /* Big payload with a NUL-free but odd body survives the round trip. */
    size_t n = 1 << 20;
    char *data = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    data[0] = data[n - 1] = '"';
    data[n] = '\0';
    publish_ok(f, "t1", "big", data, NULL, 0, 0);
    fx_reopen(f);
    h = history(f, "big", 1);
    assert_int_equal(h->npubs, 1);
    assert_int_equal(h->pubs[0]->data_len, n);
    assert_memory_equal(h->pubs[0]->data, data, n);
    engine_req_free(h);
    free(data);

    /* Optional fields absent stay absent after a reload. */
    pub_fields fl = {.tenant = "t1",
                     .tenant_len = 2,
                     .channel = "bare",
                     .channel_len = 4,
                     .data = "1",
                     .data_len = 1};
    engine_req *p = engine_req_new(ENGINE_PUBLISH);
    p->pub = pub_new(&fl, PUB_GUARANTEED);
    engine_submit(f->e, p);
    engine_req_free(take(f, 1)[0]);
    fx_reopen(f);
    h = history(f, "bare", 1);
    assert_int_equal(h->npubs, 1);
    assert_null(h->pubs[0]->user);
    assert_null(h->pubs[0]->client);
    assert_null(h->pubs[0]->type);
    assert_null(h->pubs[0]->correlation_id);
    assert_null(h->pubs[0]->headers);
    assert_null(h->pubs[0]->idem_key);
    assert_int_equal(h->pubs[0]->cls, PUB_GUARANTEED);
    engine_req_free(h);
}

static void test_bad_data_dir(void **state)
{
    char err[256] = "";
    engine_opts o = {.data_dir = "/proc/nope/parley"};
    assert_null(engine_sqlite_new(&o, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    o.data_dir = "";
    assert_null(engine_sqlite_new(&o, err, sizeof(err)));
    assert_null(engine_sqlite_new(NULL, err, sizeof(err)));
    /* A file where the database directory should be. */
    fx *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s", f->dir);
    *strrchr(path, '/') = '\0';
    strcat(path, "/file");
    FILE *fp = fopen(path, "w");
    fputs("x", fp);
    fclose(fp);
    o.data_dir = path;
    assert_null(engine_sqlite_new(&o, err, sizeof(err)));
    /* A database from a newer schema is refused, not modified. */
    fx_open(f);
    fx_close(f);
    char db[160];
    sqlite3 *h;
    snprintf(db, sizeof(db), "%s/parley.db", f->dir);
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    o.data_dir = f->dir;
    assert_null(engine_sqlite_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "schema version 99"));
}

/* Threads racing to make a pub's frame all get the one that is kept; the
 * losers' frames are freed (ASan's leak check). */
struct frame_race {
    pl_pub *p;
    pthread_barrier_t *go;
    const rbuf *got;
};

static void *frame_racer(void *arg)
{
    struct frame_race *fr = arg;
    pthread_barrier_wait(fr->go);
    fr->got = pub_frame(fr->p, encode);
    return NULL;
}

static rbuf *encode_fails(const pl_pub *p)
{
    (void)p;
    return NULL;
}

/* A worker's request pool: an answered request's block comes back zeroed
 * for the next one, what the request owned is released, only blocks of the
 * pool's size and at most cap of them are kept, and requests may outlive
 * the pool. */
static void test_request_pool(void **state)
{
    (void)state;
    enum { CTX = 56, CAP = 4 };
    engine_req_pool pool;
    engine_req_pool_init(&pool, CAP);
    engine_req *r = engine_req_new_pooled(&pool, ENGINE_PUBLISH, CTX);
    assert_non_null(r);
    assert_ptr_equal(r->ctx, (char *)r + ((sizeof(engine_req) + _Alignof(max_align_t) - 1) &
                                          ~(_Alignof(max_align_t) - 1)));
    pl_pub *p = mkpub("t", "c", "{}", NULL);
    r->pub = pub_ref(p); /* released by the recycle, as engine_req_free would */
    r->tenant = pl_strdup("t");
    r->status = PL_EIO;
    memset(r->ctx, 0xab, CTX);
    engine_req_recycle(&pool, r);
    assert_int_equal(pool.n, 1);
    assert_int_equal(atomic_load(&p->refs), 1);
    engine_req *again = engine_req_new_pooled(&pool, ENGINE_READ, CTX);
    assert_ptr_equal(again, r); /* the same block, last freed first */
    assert_int_equal(pool.n, 0);
    assert_int_equal(again->op, ENGINE_READ);
    assert_int_equal(again->status, PL_OK);
    assert_null(again->pub);
    assert_null(again->tenant);
    for (int i = 0; i < CTX; i++)
        assert_int_equal(((unsigned char *)again->ctx)[i], 0);
    /* Another context size is made and freed outside the pool. */
    engine_req *other = engine_req_new_pooled(&pool, ENGINE_READ, CTX * 2);
    assert_non_null(other);
    engine_req_recycle(&pool, other);
    assert_int_equal(pool.n, 0);
    engine_req *plain = engine_req_new_ctx(ENGINE_READ, CTX);
    engine_req_recycle(&pool, plain);
    assert_int_equal(pool.n, 0);
    /* At most CAP kept; the rest freed. */
    engine_req *many[CAP + 2];
    for (int i = 0; i < CAP + 2; i++)
        assert_non_null(many[i] = engine_req_new_pooled(&pool, ENGINE_PUBLISH, CTX));
    for (int i = 0; i < CAP + 2; i++)
        engine_req_recycle(&pool, many[i]);
    assert_int_equal(pool.n, CAP);
    /* Out of memory: NULL, and nothing kept is lost. */
    engine_req *kept[CAP];
    for (int i = 0; i < CAP; i++)
        kept[i] = engine_req_new_pooled(&pool, ENGINE_PUBLISH, CTX);
    pl_mem_fail_after(0);
    assert_null(engine_req_new_pooled(&pool, ENGINE_PUBLISH, CTX));
    pl_mem_fail_after(-1);
    /* Outliving the pool: freed as plain requests, on any thread. */
    engine_req_recycle(&pool, kept[0]);
    engine_req_pool_release(&pool);
    for (int i = 1; i < CAP; i++)
        engine_req_free(kept[i]);
    engine_req_recycle(&pool, again); /* a released pool keeps nothing */
    assert_int_equal(pool.n, 0);
    pub_unref(p);
}

static void test_frame_made_once(void **state)
{
    (void)state;
    pub_fields fl = {.tenant = "t", .tenant_len = 1, .channel = "c", .channel_len = 1};
    pl_pub *p = pub_new(&fl, PUB_STANDARD);
    assert_non_null(p);
    assert_null(pub_frame(p, encode_fails)); /* a failure is not kept */
    assert_null(pub_frame_peek(p));
    enum { N = 4 };
    pthread_t t[N];
    pthread_barrier_t go;
    struct frame_race fr[N];
    atomic_store(&encoded, 0);
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        fr[i] = (struct frame_race){.p = p, .go = &go};
        assert_int_equal(pthread_create(&t[i], NULL, frame_racer, &fr[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    assert_non_null(fr[0].got);
    for (int i = 1; i < N; i++)
        assert_ptr_equal(fr[i].got, fr[0].got);
    assert_ptr_equal(pub_frame_peek(p), fr[0].got);
    assert_true(atomic_load(&encoded) >= 1 && atomic_load(&encoded) <= N);
    pub_unref(p);
}

static void test_alloc_failures(void **state)
{
    fx *f = *state;
    char err[256];
    f->opts.data_dir = f->dir;
    f->opts.sink = sink;
    f->opts.sink_ctx = &f->c;
    f->opts.encode = encode;
    /* Every allocation of engine_sqlite_new failing in turn: NULL, no leak. */
    int succeeded = 0;
    for (long k = 0; k < 20 && !succeeded; k++) {
        pl_mem_fail_after(k);
        engine *e = engine_sqlite_new(&f->opts, err, sizeof(err));
        pl_mem_fail_after(-1);
        if (e) {
            succeeded = 1;
            engine_free(e);
        } else {
            assert_true(strlen(err) > 0);
        }
    }
    assert_true(succeeded);

    /* Request-level failures: nothing consumed, later requests fine. */
    f->e = engine_sqlite_new(&f->opts, err, sizeof(err));
    assert_non_null(f->e);
    engine_submit(f->e, pub_req("t1", "new", "1", NULL, 0, 0));
    engine_submit(f->e, read_req("t1", "new2", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 0));
    pl_mem_fail_after(0);
    assert_int_equal(engine_start(f->e), PL_OK);
    engine_req **r = take(f, 2);
    pl_mem_fail_after(-1);
    assert_int_equal(r[0]->status, PL_ENOMEM);
    assert_int_equal(r[0]->pub->offset, 0);
    assert_int_equal(r[1]->status, PL_ENOMEM);
    engine_req_free(r[0]);
    engine_req_free(r[1]);
    assert_int_equal(publish_ok(f, "t1", "new", "1", NULL, 0, 0), 1);
    assert_int_equal(publish_ok(f, "t1", "new", "1", NULL, 0, 0), 2);

    /* Loading from disk under allocation failure: the read fails cleanly. */
    fx_reopen(f);
    engine_stop(f->e);
    engine_submit(f->e, read_req("t1", "new", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 0));
    engine_submit(f->e, read_req("t1", "new", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 0));
    pl_mem_fail_after(2); /* the channel, the array, then the first pub fails */
    assert_int_equal(engine_start(f->e), PL_OK);
    r = take(f, 2);
    pl_mem_fail_after(-1);
    assert_int_equal(r[0]->status, PL_ENOMEM);
    assert_int_equal(r[0]->npubs, 0);
    assert_int_equal(r[1]->status, PL_ENOMEM);
    engine_req_free(r[0]);
    engine_req_free(r[1]);
    engine_req *h = history(f, "new", 5);
    assert_range(h, 1, 2);
    engine_req_free(h);

    /* A sweep of failures at every allocation of a mixed batch. */
    for (long k = 0; k < 12; k++) {
        engine_stop(f->e);
        engine_submit(f->e, pub_req("t1", "mix", "1", "dup", 0, 0));
        engine_submit(f->e, pub_req("t1", "mix", "1", "dup", 0, 0));
        engine_submit(f->e, read_req("t1", "new", ENGINE_READ_HISTORY, 0, 0, NULL, 5, 0));
        engine_submit(f->e, read_req("t1", "mix", ENGINE_READ_RECOVER, 1, 0, "x", 5, 0));
        pl_mem_fail_after(k);
        assert_int_equal(engine_start(f->e), PL_OK);
        r = take(f, 4);
        pl_mem_fail_after(-1);
        for (int i = 0; i < 4; i++) {
            assert_true(r[i]->status == PL_OK || r[i]->status == PL_ENOMEM);
            engine_req_free(r[i]);
        }
    }
    /* Whatever failed, "mix" holds exactly one pub (the key dedupes). */
    h = history(f, "mix", 10);
    assert_int_equal(h->head, 1);
    engine_req_free(h);
}

static void test_channel_cache_bounded(void **state)
{
    fx *f = *state;
    char name[32];
    const int n = 10050; /* beyond the 10,000 cached channels */
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "ch-%d", i);
        engine_submit(f->e, pub_req("t1", name, "1", NULL, 0, 0));
    }
    engine_req **r = take(f, (size_t)n);
    char epoch0[PUB_EPOCH_LEN + 1];
    strcpy(epoch0, r[0]->pub->epoch);
    for (int i = 0; i < n; i++) {
        assert_int_equal(r[i]->status, PL_OK);
        assert_int_equal(r[i]->pub->offset, 1);
        engine_req_free(r[i]);
    }
    /* ch-0 was evicted: reloaded from disk with the same epoch and head. */
    engine_req *p = publish(f, "t1", "ch-0", "1", NULL, 0, 0);
    assert_int_equal(p->pub->offset, 2);
    assert_string_equal(p->pub->epoch, epoch0);
    engine_req_free(p);
    engine_req *h = history(f, "ch-0", 10);
    assert_range(h, 1, 2);
    engine_req_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_offsets_contiguous, setup_open, teardown),
        cmocka_unit_test(test_frame_made_once),
        cmocka_unit_test(test_request_pool),
        cmocka_unit_test_setup_teardown(test_chain_is_one_batch, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_tenants_and_channels_separate, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_everything, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_pub_ids_locate_rows, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_version_2_database_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs_share_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_cuts_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_with_cut_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_in_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_original_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_modes, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_reads_span_ring_and_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_matrix, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_size, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_ttl, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_sweeps_untouched_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_recovers_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains_everything, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_input, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_bad_data_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_cache_bounded, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_bench, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
