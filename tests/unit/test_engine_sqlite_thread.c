/* Unit tests of the SQLite engine's thread and the objects threads share:
 * group commit, stop drains every request in sink order, a throughput
 * benchmark (printed, not asserted), pooled requests and frames made once. */
#include "engine_sqlite_helpers.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bench, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains_everything, setup_open, teardown),
        cmocka_unit_test(test_request_pool),
        cmocka_unit_test(test_frame_made_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
