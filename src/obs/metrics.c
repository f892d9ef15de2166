/* Prometheus text rendering; see metrics.h. */
#include "obs/metrics.h"

#include <string.h>

static const int64_t lat_bounds_us[METRICS_LAT_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000};

void metrics_command(metrics_shard *s, unsigned mi, int code)
{
    unsigned ci = code >= 100 && code < 100 + METRICS_CODES - 1 ? (unsigned)(code - 99) : 0;
    if (code && !ci) ci = 1;
    if (mi >= METRICS_METHODS) mi = METRICS_METHODS - 1;
    atomic_fetch_add_explicit(&s->commands[mi][ci], 1, memory_order_relaxed);
}

void metrics_latency(metrics_shard *s, int64_t us)
{
    if (us < 0) us = 0;
    unsigned b = 0;
    while (b < METRICS_LAT_BUCKETS - 1 && us > lat_bounds_us[b])
        b++;
    atomic_fetch_add_explicit(&s->lat[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->lat_sum_us, (uint64_t)us, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->lat_count, 1, memory_order_relaxed);
}

static uint64_t sum(metrics_shard *const *shards, int n, enum metric_counter m)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v += atomic_load_explicit(&shards[i]->c[m], memory_order_relaxed);
    return v;
}

static void counter(sbuf *o, const char *name, const char *help, const char *type, uint64_t v)
{
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s ", name, help, name, type, name);
    sbuf_u64(o, v);
    sbuf_putc(o, '\n');
}

static void histogram(sbuf *o, const char *name, const char *help, const double *bounds,
                      const uint64_t *counts, unsigned nb, double total, uint64_t count)
{
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (unsigned i = 0; i < nb; i++) {
        cum += counts[i];
        if (i + 1 < nb)
            sbuf_printf(o, "%s_bucket{le=\"%g\"} ", name, bounds[i]);
        else
            sbuf_printf(o, "%s_bucket{le=\"+Inf\"} ", name);
        sbuf_u64(o, cum);
        sbuf_putc(o, '\n');
    }
    sbuf_printf(o, "%s_sum %.6f\n%s_count ", name, total, name);
    sbuf_u64(o, count);
    sbuf_putc(o, '\n');
}

static void render_commands(sbuf *o, metrics_shard *const *shards, int n,
                            const char *const *methods, unsigned nmethods)
{
    sbuf_puts(o, "# HELP parley_commands_total Client commands by method and result.\n"
                 "# TYPE parley_commands_total counter\n");
    for (unsigned mi = 0; mi < nmethods && mi < METRICS_METHODS; mi++) {
        for (unsigned ci = 0; ci < METRICS_CODES; ci++) {
            uint64_t v = 0;
            for (int i = 0; i < n; i++)
                v += atomic_load_explicit(&shards[i]->commands[mi][ci], memory_order_relaxed);
            if (!v) continue;
            if (ci == 0)
                sbuf_printf(o, "parley_commands_total{method=\"%s\",result=\"ok\"} ", methods[mi]);
            else
                sbuf_printf(o, "parley_commands_total{method=\"%s\",result=\"%u\"} ", methods[mi],
                            ci + 99);
            sbuf_u64(o, v);
            sbuf_putc(o, '\n');
        }
    }
}

void metrics_render(sbuf *o, metrics_shard *const *shards, int n, const char *const *methods,
                    unsigned nmethods, const engine_stats *es)
{
    uint64_t ws = sum(shards, n, M_WS_OPENED) - sum(shards, n, M_WS_CLOSED);
    uint64_t sse = sum(shards, n, M_SSE_OPENED) - sum(shards, n, M_SSE_CLOSED);
    sbuf_puts(o, "# HELP parley_connections Open client connections by transport.\n"
                 "# TYPE parley_connections gauge\n");
    sbuf_printf(o, "parley_connections{transport=\"ws\"} %llu\n", (unsigned long long)ws);
    sbuf_printf(o, "parley_connections{transport=\"sse\"} %llu\n", (unsigned long long)sse);
    counter(o, "parley_connections_opened_total", "Client connections accepted.", "counter",
            sum(shards, n, M_WS_OPENED) + sum(shards, n, M_SSE_OPENED));
    render_commands(o, shards, n, methods, nmethods);
    sbuf_puts(o, "# HELP parley_pubs_total Accepted publishes by class.\n"
                 "# TYPE parley_pubs_total counter\n");
    sbuf_printf(o, "parley_pubs_total{class=\"ephemeral\"} %llu\n",
                (unsigned long long)sum(shards, n, M_PUBS_EPHEMERAL));
    sbuf_printf(o, "parley_pubs_total{class=\"standard\"} %llu\n",
                (unsigned long long)sum(shards, n, M_PUBS_STANDARD));
    sbuf_printf(o, "parley_pubs_total{class=\"guaranteed\"} %llu\n",
                (unsigned long long)sum(shards, n, M_PUBS_GUARANTEED));
    counter(o, "parley_duplicates_suppressed_total",
            "Publishes answered from the idempotency cache.", "counter",
            sum(shards, n, M_PUBS_DUPLICATE));
    counter(o, "parley_deliveries_total", "Pubs queued to subscriber connections.", "counter",
            sum(shards, n, M_DELIVERIES));
    counter(o, "parley_frames_out_total", "WebSocket frames and SSE writes sent.", "counter",
            sum(shards, n, M_FRAMES_OUT));
    counter(o, "parley_bytes_out_total", "Bytes written to clients.", "counter",
            sum(shards, n, M_BYTES_OUT));
    counter(o, "parley_slow_consumer_disconnects_total",
            "Connections closed with 4001 for exceeding the outbound queue.", "counter",
            sum(shards, n, M_SLOW_CONSUMER));
    counter(o, "parley_protocol_errors_total", "Malformed frames and protocol violations.",
            "counter", sum(shards, n, M_PROTOCOL_ERRORS));
    counter(o, "parley_recoveries_total", "Subscriptions recovered from a position.", "counter",
            sum(shards, n, M_RECOVERIES));
    counter(o, "parley_gaps_total", "Gap pushes sent (recovery impossible).", "counter",
            sum(shards, n, M_GAPS));
    counter(o, "parley_typing_forwarded_total", "Typing signals forwarded.", "counter",
            sum(shards, n, M_TYPING_FORWARDED));
    counter(o, "parley_typing_dropped_total", "Typing signals dropped by the throttle.", "counter",
            sum(shards, n, M_TYPING_DROPPED));
    counter(o, "parley_read_updates_total", "Read cursor updates that moved a cursor.", "counter",
            sum(shards, n, M_READ_UPDATES));

    double lb[METRICS_LAT_BUCKETS];
    uint64_t lc[METRICS_LAT_BUCKETS] = {0};
    uint64_t lsum = 0, lcount = 0;
    for (unsigned b = 0; b < METRICS_LAT_BUCKETS; b++) {
        lb[b] = b < METRICS_LAT_BUCKETS - 1 ? (double)lat_bounds_us[b] / 1e6 : 0;
        for (int i = 0; i < n; i++)
            lc[b] += atomic_load_explicit(&shards[i]->lat[b], memory_order_relaxed);
    }
    for (int i = 0; i < n; i++) {
        lsum += atomic_load_explicit(&shards[i]->lat_sum_us, memory_order_relaxed);
        lcount += atomic_load_explicit(&shards[i]->lat_count, memory_order_relaxed);
    }
    histogram(o, "parley_delivery_latency_seconds",
              "Publish accepted to pub queued on a subscriber connection.", lb, lc,
              METRICS_LAT_BUCKETS, (double)lsum / 1e6, lcount);

    if (!es) return;
    double bb[12], cb[12];
    static const double commit_us[11] = {100,   250,   500,   1000,   2500,  5000,
                                         10000, 25000, 50000, 100000, 250000};
    for (unsigned i = 0; i < 11; i++) {
        bb[i] = (double)(1u << i);
        cb[i] = commit_us[i] / 1e6;
    }
    bb[11] = cb[11] = 0;
    histogram(o, "parley_commit_batch_size", "Publishes per storage commit (group commit).", bb,
              es->batch_hist, 12, (double)es->committed_pubs, es->commits);
    histogram(o, "parley_commit_latency_seconds", "Storage commit latency including fsync.", cb,
              es->commit_lat_hist, 12, (double)es->commit_us_total / 1e6, es->commits);
    counter(o, "parley_commit_failures_total", "Storage commits that failed (answered 113).",
            "counter", es->commit_failures);
    counter(o, "parley_engine_duplicates_total", "Idempotency-key duplicates found by the engine.",
            "counter", es->duplicates);
}
