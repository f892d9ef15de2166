/* Prometheus metrics. Each worker owns one metrics_shard and is its only
 * writer (relaxed atomics keep the concurrent /metrics reader defined);
 * metrics_render sums the shards into text format. Other modules' figures
 * (storage, delivery, presence) are written with metrics_counter and
 * metrics_histogram by whoever holds them: obs knows no module above it. */
#ifndef PL_METRICS_H
#define PL_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include <pthread.h>

#include "util/map.h"
#include "util/sbuf.h"

enum metric_counter {
    M_WS_OPENED,
    M_WS_CLOSED,
    M_SSE_OPENED,
    M_SSE_CLOSED,
    M_HTTP_REQUESTS,
    M_PUBS_EPHEMERAL,
    M_PUBS_STANDARD,
    M_PUBS_GUARANTEED,
    M_PUBS_DUPLICATE,
    M_DELIVERIES,
    M_FRAMES_OUT,
    M_BYTES_OUT,
    M_SLOW_CONSUMER,
    M_PROTOCOL_ERRORS,
    M_RECOVERIES,
    M_GAPS,
    M_TYPING_FORWARDED,
    M_TYPING_DROPPED,
    M_READ_UPDATES,
    M_PUBS_LOST,
    M_READS_PAUSED,           /* a client's reading paused: its commands outran their answers */
    M_READS_RESUMED,          /* ... resumed, or the paused connection closed */
    M_SHED_CONNECT,           /* WebSocket and SSE opens refused by limits.connects_per_second */
    M_SHED_EPHEMERAL_BACKLOG, /* ephemeral publishes refused: a worker's output backlog */
    M_SHED_EPHEMERAL_STORAGE, /* ... the storage queue past storage_queue_shed */
    M_SHED_STORED,            /* stored publishes refused: the storage queue full */
    M_SHED_SIGNALS,           /* presence and typing pushes not sent under overload */
    M_BACKLOGGED,             /* a worker's output backlog passed limits.backlog_bytes */
    M_SLOW_DROPPED_OLDEST,    /* pubs dropped from queues by the drop_oldest policy */
    M_SLOW_DROPPED_LATEST,    /* ... by the latest policy */
    M_LIFECYCLE_LOST,         /* lifecycle events not recorded: out of memory */
    M__COUNT
};

#define METRICS_METHODS 24
#define METRICS_CODES 19 /* 0 = ok, then code - 99 for codes 100..117 */
#define METRICS_LAT_BUCKETS 14

/* One tenant's counters on one shard (labelled series on /metrics). */
typedef struct tenant_counters {
    _Atomic uint64_t connections_opened, connections_closed, pubs, deliveries;
} tenant_counters;

typedef struct metrics_shard {
    _Atomic uint64_t c[M__COUNT];
    _Atomic uint64_t commands[METRICS_METHODS][METRICS_CODES];
    _Atomic uint64_t lat[METRICS_LAT_BUCKETS]; /* publish-to-delivery, by bucket */
    _Atomic uint64_t lat_sum_us;
    _Atomic uint64_t lat_count;
    pthread_mutex_t tenants_lock; /* guards the map (the renderer walks it), not the counters */
    map tenants;                  /* tenant id -> tenant_counters*, owned */
} metrics_shard;

void metrics_shard_init(metrics_shard *s);
void metrics_shard_release(metrics_shard *s);
/* The shard's counters of a tenant, created on first use (owner thread
 * only); NULL when out of memory. */
tenant_counters *metrics_tenant(metrics_shard *s, const char *tenant);

static inline void metrics_add(metrics_shard *s, enum metric_counter m, uint64_t n)
{
    atomic_fetch_add_explicit(&s->c[m], n, memory_order_relaxed);
}

/* Counts one command of method index mi with result code (0 = ok). */
void metrics_command(metrics_shard *s, unsigned mi, int code);
/* Records one publish-to-delivery latency in microseconds. */
void metrics_latency(metrics_shard *s, int64_t us);

/* Appends the Prometheus text for n shards (their counters, commands by the
 * method names indexed as in metrics_command, latencies and per-tenant
 * series) to out. */
void metrics_render(sbuf *out, metrics_shard *const *shards, int n, const char *const *methods,
                    unsigned nmethods);
/* One counter or gauge (type "counter" or "gauge") with its HELP and TYPE. */
void metrics_counter(sbuf *o, const char *name, const char *help, const char *type, uint64_t v);
/* One histogram: nb buckets, bounds[i] the upper bound of bucket i (the last
 * is +Inf whatever its bound), counts per bucket (not cumulative). */
void metrics_histogram(sbuf *o, const char *name, const char *help, const double *bounds,
                       const uint64_t *counts, unsigned nb, double total, uint64_t count);

#endif
