/* The storage thread (takes the queue in batches, sweeps once a second,
 * evicts cached channels), the engine vtable, and engine_sqlite_new. */
#include "engine/sqlite/sqlite_int.h"

#include <stdio.h>
#include <time.h>

#include "util/clock.h"
#include "util/mem.h"

#define SQ_BATCH_MAX 4096      /* requests per batch (and per sink call) */
#define SQ_SWEEP_EVERY_MS 1000 /* TTL and idempotency sweeps */
#define SQ_DEFAULT_RING 128
#define SQ_DEFAULT_DEDUP_MS (24LL * 3600 * 1000)

static void *engine_main(void *arg)
{
    sq_engine *e = arg;
    pthread_setname_np(pthread_self(), "pl-engine");
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&e->mu);
        if (!e->q_head && !e->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += 1;
            e->idle = 1;
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
            e->idle = 0;
        }
        while (e->q_head && n < SQ_BATCH_MAX) {
            engine_req *r = e->q_head;
            e->q_head = r->_next;
            r->_next = NULL;
            e->slots[n++] = (sq_slot){.req = r};
        }
        if (!e->q_head) e->q_tail = NULL;
        int done = e->stopping && !e->q_head;
        pthread_mutex_unlock(&e->mu);

        if (n) sq_process_batch(e, n);
        int64_t now = clock_wall_ms();
        /* Faulted: nothing is written again, not even trims (files.h). */
        if (now - e->last_sweep_ms >= SQ_SWEEP_EVERY_MS && !sq_files_faulted(&e->files)) {
            e->last_sweep_ms = now;
            sq_sweep(e, now);
        }
        sq_chan_evict_excess(e);
        if (done) break;
    }
    return NULL;
}

static int op_start(engine *base)
{
    sq_engine *e = (sq_engine *)base;
    if (e->running) return PL_OK;
    e->stopping = 0;
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) return PL_ERR;
    e->running = 1;
    return PL_OK;
}

static void op_submit(engine *base, engine_req *first, engine_req *last)
{
    sq_engine *e = (sq_engine *)base;
    pthread_mutex_lock(&e->mu);
    if (e->q_tail)
        e->q_tail->_next = first;
    else
        e->q_head = first;
    e->q_tail = last;
    /* A busy engine takes the queue after its batch: no futex call. */
    if (e->idle) pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void op_stop(engine *base)
{
    sq_engine *e = (sq_engine *)base;
    if (!e->running) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    e->running = 0;
}

static void op_stats(engine *base, engine_stats *out)
{
    sq_engine *e = (sq_engine *)base;
    pthread_mutex_lock(&e->stats_mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->stats_mu);
}

static int op_healthy(engine *base)
{
    return !sq_files_faulted(&((sq_engine *)base)->files);
}

static void op_free(engine *base)
{
    sq_engine *e = (sq_engine *)base;
    op_stop(base);
    map_release(&e->tenant_channels);
    map_release(&e->tenant_bytes);
    sbuf_release(&e->row_blob);
    /* Requests submitted to an engine that never ran cannot reach a sink. */
    while (e->q_head) {
        engine_req *r = e->q_head;
        e->q_head = r->_next;
        engine_req_free(r);
    }
    if (e->buckets) {
        for (size_t b = 0; b < SQ_HASH_BUCKETS; b++) {
            sq_chan *c = e->buckets[b];
            while (c) {
                sq_chan *next = c->hnext;
                sq_chan_free(c);
                c = next;
            }
        }
    }
    for (int i = 0; i < SQ_ST_COUNT; i++)
        sqlite3_finalize(e->st[i]);
    if (e->db && sq_files_faulted(&e->files)) {
        /* Closing unlinks the WAL by name: not a file that replaced ours. */
        int keep = 1;
        sqlite3_file_control(e->db, "main", SQLITE_FCNTL_PERSIST_WAL, &keep);
    }
    sqlite3_close(e->db);
    sq_files_release(&e->files);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->stats_mu);
    pl_free(e->buckets);
    pl_free(e->slots);
    pl_free(e->out);
    pl_free(e->data_dir);
    pl_free(e);
}

static uint64_t op_log_events(engine *base, int on)
{
    sq_engine *e = (sq_engine *)base;
    atomic_store(&e->log_events, on != 0);
    return atomic_load(&e->log_head);
}

static const engine_ops sqlite_ops = {
    .name = "sqlite",
    .start = op_start,
    .submit = op_submit,
    .stop = op_stop,
    .free = op_free,
    .stats = op_stats,
    .healthy = op_healthy,
    .log_events = op_log_events,
};

engine *engine_sqlite_new(const engine_opts *opts, char *err, size_t errlen)
{
    sq_engine *e = NULL;
    int mu = 0, cv = 0, smu = 0;
    if (!opts || !opts->data_dir || !*opts->data_dir) {
        snprintf(err, errlen, "engine: data_dir is required");
        return NULL;
    }
    e = pl_calloc(1, sizeof(*e));
    if (!e) goto oom;
    e->base.ops = &sqlite_ops;
    e->opts = *opts;
    if (!e->opts.ring_size) e->opts.ring_size = SQ_DEFAULT_RING;
    if (e->opts.dedup_window_ms <= 0) e->opts.dedup_window_ms = SQ_DEFAULT_DEDUP_MS;
    e->data_dir = pl_strdup(opts->data_dir);
    e->buckets = pl_calloc(SQ_HASH_BUCKETS, sizeof(*e->buckets));
    e->slots = pl_calloc(SQ_BATCH_MAX, sizeof(*e->slots));
    e->out = pl_calloc(SQ_BATCH_MAX, sizeof(*e->out));
    if (!e->data_dir || !e->buckets || !e->slots || !e->out) goto oom;
    e->opts.data_dir = e->data_dir;

    pthread_condattr_t ca;
    if (pthread_mutex_init(&e->mu, NULL)) goto sys;
    mu = 1;
    if (pthread_condattr_init(&ca)) goto sys;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    cv = pthread_cond_init(&e->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!cv) goto sys;
    if (pthread_mutex_init(&e->stats_mu, NULL)) goto sys;
    smu = 1;
    if (sq_open_db(e, err, errlen) != PL_OK) goto fail;
    e->last_sweep_ms = clock_wall_ms();
    return &e->base;
oom:
    snprintf(err, errlen, "engine: out of memory");
    goto fail;
sys:
    snprintf(err, errlen, "engine: cannot create thread primitives");
fail:
    if (e) {
        /* Partly built: initialize what op_free expects, then reuse it. */
        if (!mu) pthread_mutex_init(&e->mu, NULL);
        if (!cv) pthread_cond_init(&e->cv, NULL);
        if (!smu) pthread_mutex_init(&e->stats_mu, NULL);
        op_free(&e->base);
    }
    return NULL;
}
