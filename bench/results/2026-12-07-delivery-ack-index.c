/* Ack cost of the guaranteed-delivery manager with many outstanding
 * deliveries: drives the public delivery API (its thread, its inbox) with an
 * engine that persists nothing, and times acks until the manager has
 * processed them. Build and run: see 2026-12-07-delivery-ack-index.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "delivery/delivery.h"
#include "engine/engine.h"
#include "util/clock.h"
#include "util/mem.h"
#ifdef OLD_API
#include "net/server_int.h"
#endif

static void fe_submit(engine *e, engine_req *first, engine_req *last)
{
    (void)e;
    (void)last;
    while (first) {
        engine_req *n = first->_next;
        if (first->done)
            first->done(first); /* restore: nothing persisted */
        else
            engine_req_free(first);
        first = n;
    }
}
static int fe_start(engine *e) { (void)e; return 0; }
static void fe_nop(engine *e) { (void)e; }
static void fe_stats(engine *e, engine_stats *o) { (void)e; memset(o, 0, sizeof(*o)); }
static const engine_ops fake_ops = {"null", fe_start, fe_submit, fe_nop, fe_nop, fe_stats};

static uint64_t acks(delivery *d)
{
    delivery_stats s;
    delivery_get_stats(d, &s);
    return s.acks;
}

static void wait_acks(delivery *d, uint64_t n)
{
    while (acks(d) < n)
        usleep(50);
}

static pl_pub *mkpub(const char *channel, uint64_t off)
{
    pub_fields f = {.tenant = "t", .tenant_len = 1, .channel = channel,
                    .channel_len = strlen(channel), .data = "1", .data_len = 1};
    pl_pub *p = pub_new(&f, PUB_GUARANTEED);
    p->offset = off;
    return p;
}

/* nusers x nchan x per deliveries outstanding; then `probe` acks, each
 * acking the next per / chunks offsets of one (user, channel). */
static void ack_one(delivery *d, int i, int nusers, int nchan, int per, int chunks)
{
    char ch[32], user[32];
    int pair = i / chunks, j = i % chunks;
    snprintf(ch, sizeof(ch), "c%d", pair % nchan);
    snprintf(user, sizeof(user), "u%d", (pair / nchan) % nusers);
    delivery_acked(d, "t", ch, user, (uint64_t)(j + 1) * (uint64_t)(per / chunks));
}

static void run(const char *label, int nusers, int nchan, int per, int chunks, int probe)
{
    engine fe = {&fake_ops};
#ifdef OLD_API
    static cfg_namespace ns = {.name = "", .max_attempts = 7, .ack_wait_ms = 3600000,
                               .retry_min_ms = 1000, .retry_max_ms = 1000};
    server srv = {0};
    srv.eng = &fe;
    srv.cfg.namespaces = &ns;
    srv.cfg.n_namespaces = 1;
    delivery *d = delivery_new(&srv);
#else
    delivery_deps deps = {.eng = &fe};
    delivery *d = delivery_new(&deps);
#endif
    delivery_start(d);
    char ch[32], user[32];
    pl_pub **pubs = pl_calloc((size_t)nchan * (size_t)per, sizeof(*pubs));
    for (int c = 0; c < nchan; c++)
        for (int k = 0; k < per; k++) {
            snprintf(ch, sizeof(ch), "c%d", c);
            pubs[c * per + k] = mkpub(ch, (uint64_t)k + 1);
        }
    for (int u = 0; u < nusers; u++)
        for (int i = 0; i < nchan * per; i++) {
            snprintf(user, sizeof(user), "u%d", u);
            delivery_sent(d, pubs[i], user, 1);
        }
    sleep(2); /* let the manager take them all in */
    uint64_t each = (uint64_t)(per / chunks), a0 = acks(d);
    int lat_n = probe < 200 ? probe : 200;
    int64_t t0 = clock_mono_us();
    /* Latency: one ack at a time, each waited for. */
    for (int i = 0; i < lat_n; i++) {
        ack_one(d, i, nusers, nchan, per, chunks);
        wait_acks(d, a0 + (uint64_t)(i + 1) * each);
    }
    int64_t t1 = clock_mono_us();
    /* Throughput: the rest posted at once. */
    for (int i = lat_n; i < probe; i++)
        ack_one(d, i, nusers, nchan, per, chunks);
    wait_acks(d, a0 + (uint64_t)probe * each);
    int64_t t2 = clock_mono_us();
    printf("%s: %d outstanding (%d users x %d channels x %d offsets), acks of %llu each\n", label,
           nusers * nchan * per, nusers, nchan, per, (unsigned long long)each);
    printf("  one ack at a time: %d acks, %.1f us per ack (round trip)\n", lat_n,
           (double)(t1 - t0) / lat_n);
    if (probe > lat_n)
        printf("  posted at once: %d acks in %.3f s = %.0f acks/s\n", probe - lat_n,
               (double)(t2 - t1) / 1e6, (probe - lat_n) / ((double)(t2 - t1) / 1e6));
    delivery_stop(d);
    delivery_free(d);
    for (int i = 0; i < nchan * per; i++)
        pub_unref(pubs[i]);
    pl_free(pubs);
}

int main(int argc, char **argv)
{
    int probe = argc > 1 ? atoi(argv[1]) : 2000;
    run("spread", 1000, 100, 1, 1, probe);
    run("one stream", 1, 1, 100000, 100, 100);
    return 0;
}
