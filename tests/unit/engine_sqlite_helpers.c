/* The shared fixture of the SQLite engine's unit tests: see
 * engine_sqlite_helpers.h. */
#include "engine_sqlite_helpers.h"

#include "engine/sqlite/sqlite_int.h" /* count_rows asks the engine's connection */

#include <ftw.h>
#include <unistd.h>

#define COLLECT_MAX 70000

atomic_int encoded;

void sink(void *ctx, engine_req **reqs, size_t n)
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
rbuf *encode(const pl_pub *p)
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
void fx_new(fx *f)
{
    char err[256] = "";
    f->opts.data_dir = f->dir;
    f->opts.sink = sink;
    f->opts.sink_ctx = &f->c;
    f->opts.encode = encode;
    f->e = engine_sqlite_new(&f->opts, err, sizeof(err));
    if (!f->e) fail_msg("engine_sqlite_new: %s", err);
}

void fx_open(fx *f)
{
    fx_new(f);
    assert_int_equal(engine_start(f->e), PL_OK);
}

void fx_close(fx *f)
{
    if (!f->e) return;
    engine_stop(f->e);
    engine_free(f->e);
    f->e = NULL;
}

void fx_reopen(fx *f)
{
    fx_close(f);
    fx_open(f);
}

int setup(void **state)
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

int setup_open(void **state)
{
    setup(state);
    fx_open(*state);
    return 0;
}

int teardown(void **state)
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
engine_req **take(fx *f, size_t more)
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

pl_pub *mkpub(const char *tenant, const char *channel, const char *data, const char *key)
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

engine_req *pub_req(const char *tenant, const char *channel, const char *data, const char *key,
                    uint32_t hist, int64_t ttl)
{
    engine_req *r = engine_req_new(ENGINE_PUBLISH);
    assert_non_null(r);
    r->pub = mkpub(tenant, channel, data, key);
    r->history_size = hist;
    r->history_ttl_ms = ttl;
    return r;
}

engine_req *read_req(const char *tenant, const char *channel, enum engine_read_mode mode,
                     int has_since, uint64_t since, const char *epoch, uint32_t limit, int reverse)
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
engine_req *publish(fx *f, const char *tenant, const char *channel, const char *data,
                    const char *key, uint32_t hist, int64_t ttl)
{
    engine_submit(f->e, pub_req(tenant, channel, data, key, hist, ttl));
    return take(f, 1)[0];
}

uint64_t publish_ok(fx *f, const char *tenant, const char *channel, const char *data,
                    const char *key, uint32_t hist, int64_t ttl)
{
    engine_req *r = publish(f, tenant, channel, data, key, hist, ttl);
    assert_int_equal(r->status, PL_OK);
    uint64_t off = r->pub->offset;
    engine_req_free(r);
    return off;
}

engine_req *do_read(fx *f, const char *tenant, const char *channel, enum engine_read_mode mode,
                    int has_since, uint64_t since, const char *epoch, uint32_t limit, int reverse)
{
    engine_submit(f->e, read_req(tenant, channel, mode, has_since, since, epoch, limit, reverse));
    engine_req *r = take(f, 1)[0];
    assert_int_equal(r->status, PL_OK);
    return r;
}

engine_req *history(fx *f, const char *channel, uint32_t limit)
{
    return do_read(f, "t1", channel, ENGINE_READ_HISTORY, 0, 0, NULL, limit, 0);
}

/* Asserts the offsets of a read's pubs equal the expected list. */
void assert_offsets(const engine_req *r, const uint64_t *want, size_t n)
{
    if (r->npubs != n) fail_msg("npubs %zu, want %zu", r->npubs, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r->pubs[i]->offset, want[i]);
        assert_string_equal(r->pubs[i]->epoch, r->epoch);
        assert_non_null(pub_frame(r->pubs[i], encode));
    }
}

void assert_range(const engine_req *r, uint64_t lo, uint64_t hi)
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

void assert_range_desc(const engine_req *r, uint64_t hi, uint64_t lo)
{
    uint64_t want[1024];
    size_t n = 0;
    if (lo <= hi)
        for (uint64_t o = hi; o >= lo && o > 0; o--)
            want[n++] = o;
    assert_offsets(r, want, n);
}

/* Counts rows of a table: what is on disk. The engine holds the database's
 * lock, so an open engine is stopped (its requests all answered) and asked
 * through its own connection, then started again; a closed one is read
 * with a connection of our own. */
int64_t count_rows(fx *f, const char *sql)
{
    char path[128];
    sqlite3 *db = NULL;
    sqlite3_stmt *st;
    sq_engine *se = (sq_engine *)f->e;
    int running = se && se->running;
    if (running) engine_stop(f->e);
    if (se) {
        db = se->db;
    } else {
        snprintf(path, sizeof(path), "%s/parley.db", f->dir);
        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    }
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (!se) sqlite3_close(db);
    if (running) assert_int_equal(engine_start(f->e), PL_OK);
    return v;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Traces pub_id for tenant; returns the status, *json gets the result. */
int trace_id(fx *f, const char *tenant, const char *pub_id, char **json)
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

int64_t cid_of(fx *f, const char *channel)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT cid FROM channels WHERE channel = '%s'", channel);
    return count_rows(f, sql);
}

/* Restarts the engine with reqs queued before its thread runs, so they form
 * one batch; returns the n finished requests (the caller frees them). */
engine_req **one_batch(fx *f, engine_req **reqs, size_t n)
{
    fx_close(f);
    fx_new(f);
    for (size_t i = 0; i < n; i++)
        engine_submit(f->e, reqs[i]);
    assert_int_equal(engine_start(f->e), PL_OK);
    return take(f, n);
}

/* Submits reqs as one chain to the running engine, which takes it as one
 * batch (its rings and cache as they are); returns the n finished requests
 * (the caller frees them). */
engine_req **chain_batch(fx *f, engine_req **reqs, size_t n)
{
    pthread_mutex_lock(&f->c.mu);
    size_t calls = f->c.calls;
    pthread_mutex_unlock(&f->c.mu);
    engine_chain ch = {0};
    for (size_t i = 0; i < n; i++)
        engine_chain_add(&ch, reqs[i]);
    engine_submit_chain(f->e, &ch);
    engine_req **r = take(f, n);
    pthread_mutex_lock(&f->c.mu);
    assert_int_equal(f->c.calls - calls, 1);
    pthread_mutex_unlock(&f->c.mu);
    return r;
}

/* A CURSOR (off: the offset read), PENDING or READ of user on t1/channel. */
engine_req *user_req(enum engine_op op, const char *channel, const char *user, uint64_t off)
{
    engine_req *r = engine_req_new(op);
    assert_non_null(r);
    r->tenant = pl_strdup("t1");
    r->channel = pl_strdup(channel);
    r->user = pl_strdup(user);
    assert_true(r->tenant && r->channel && r->user);
    r->since_offset = off;
    return r;
}

/* A guaranteed pub on t1/channel with one recipient. */
engine_req *guaranteed_req(const char *channel, const char *data, const char *recipient)
{
    engine_req *r = engine_req_new(ENGINE_PUBLISH);
    assert_non_null(r);
    pub_fields fl = {.tenant = "t1",
                     .tenant_len = 2,
                     .channel = channel,
                     .channel_len = strlen(channel),
                     .data = data,
                     .data_len = strlen(data)};
    r->pub = pub_new(&fl, PUB_GUARANTEED);
    r->recipients = pl_malloc(sizeof(*r->recipients));
    assert_true(r->pub && r->recipients);
    r->recipients[0] = pl_strdup(recipient);
    assert_non_null(r->recipients[0]);
    r->nrecipients = 1;
    return r;
}

/* A pub with only data (every optional field absent). */
engine_req *bare_req(const char *channel, const char *data, uint32_t hist)
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

void assert_same_pub(const pl_pub *got, const pl_pub *want)
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
void assert_stored(fx *f, const char *ch, engine_req **pubs, size_t n)
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
