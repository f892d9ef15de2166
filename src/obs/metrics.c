/* Prometheus text rendering; see metrics.h. */
#include "obs/metrics.h"

#include <string.h>

#include "util/mem.h"

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

void metrics_counter(sbuf *o, const char *name, const char *help, const char *type, uint64_t v)
{
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s ", name, help, name, type, name);
    sbuf_u64(o, v);
    sbuf_putc(o, '\n');
}

void metrics_histogram(sbuf *o, const char *name, const char *help, const double *bounds,
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

/* ---- per-tenant series ---------------------------------------------------- */

void metrics_shard_init(metrics_shard *s)
{
    memset(s, 0, sizeof(*s));
    map_init(&s->tenants);
    pthread_mutex_init(&s->tenants_lock, NULL);
}

void metrics_shard_release(metrics_shard *s)
{
    for (size_t i = 0; i < s->tenants.cap; i++)
        if (s->tenants.slots[i].key) pl_free(s->tenants.slots[i].value);
    map_release(&s->tenants);
    pthread_mutex_destroy(&s->tenants_lock);
}

tenant_counters *metrics_tenant(metrics_shard *s, const char *tenant)
{
    size_t n = strlen(tenant);
    tenant_counters *tc = map_get(&s->tenants, tenant, n);
    if (tc) return tc;
    tc = pl_calloc(1, sizeof(*tc));
    if (!tc) return NULL;
    pthread_mutex_lock(&s->tenants_lock);
    if (map_put(&s->tenants, tenant, n, tc)) {
        pl_free(tc);
        tc = NULL;
    }
    pthread_mutex_unlock(&s->tenants_lock);
    return tc;
}

/* Adds one shard's tenant counters into sums (tenant id -> tenant_counters*). */
/* Work refused to keep the server responsive, one series per class of work
 * and reason: a table so that each new kind of shedding is one row. */
static void render_shed(sbuf *o, metrics_shard *const *shards, int n)
{
    static const struct {
        enum metric_counter m;
        const char *cls, *reason;
    } rows[] = {
        {M_SHED_CONNECT, "connect", "connect_rate"},
        {M_SHED_EPHEMERAL_BACKLOG, "ephemeral", "backlog"},
        {M_SHED_EPHEMERAL_STORAGE, "ephemeral", "storage_queue"},
        {M_SHED_STORED, "stored", "storage_queue"},
        {M_SHED_SIGNALS, "signal", "overload"},
    };
    sbuf_puts(o, "# HELP parley_shed_total Work refused to keep the server responsive.\n"
                 "# TYPE parley_shed_total counter\n");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        sbuf_printf(o, "parley_shed_total{class=\"%s\",reason=\"%s\"} %llu\n", rows[i].cls,
                    rows[i].reason, (unsigned long long)sum(shards, n, rows[i].m));
}

static void sum_tenants(map *sums, metrics_shard *s)
{
    pthread_mutex_lock(&s->tenants_lock);
    for (size_t k = 0; k < s->tenants.cap; k++) {
        map_entry *e = &s->tenants.slots[k];
        if (!e->key) continue;
        tenant_counters *src = e->value, *dst = map_get(sums, e->key, e->klen);
        if (!dst && (dst = pl_calloc(1, sizeof(*dst))) && map_put(sums, e->key, e->klen, dst)) {
            pl_free(dst);
            dst = NULL;
        }
        if (!dst) continue;
        dst->connections_opened += atomic_load(&src->connections_opened);
        dst->connections_closed += atomic_load(&src->connections_closed);
        dst->pubs += atomic_load(&src->pubs);
        dst->deliveries += atomic_load(&src->deliveries);
    }
    pthread_mutex_unlock(&s->tenants_lock);
}

/* Per-tenant series, summed over shards: each tenant's own numbers under
 * its own label (an operator endpoint; see docs/security.md). */
static void render_tenants(sbuf *out, metrics_shard *const *shards, int n)
{
    map sums;
    map_init(&sums);
    for (int i = 0; i < n; i++)
        sum_tenants(&sums, shards[i]);
    static const char *const names[] = {"parley_tenant_connections", "parley_tenant_pubs_total",
                                        "parley_tenant_deliveries_total"};
    static const char *const help[] = {"Open client connections of a tenant.",
                                       "Publishes accepted for a tenant.",
                                       "Pubs queued to a tenant's subscribers."};
    for (int m = 0; m < 3; m++) {
        sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", names[m], help[m], names[m],
                    m ? "counter" : "gauge");
        for (size_t k = 0; k < sums.cap; k++) {
            map_entry *e = &sums.slots[k];
            if (!e->key) continue;
            tenant_counters *t = e->value;
            uint64_t v = m == 0   ? t->connections_opened - t->connections_closed
                         : m == 1 ? t->pubs
                                  : t->deliveries;
            sbuf_printf(out, "%s{tenant=", names[m]);
            sbuf_json_str(out, e->key, e->klen);
            sbuf_printf(out, "} %llu\n", (unsigned long long)v);
        }
    }
    for (size_t k = 0; k < sums.cap; k++)
        if (sums.slots[k].key) pl_free(sums.slots[k].value);
    map_release(&sums);
}

void metrics_render(sbuf *o, metrics_shard *const *shards, int n, const char *const *methods,
                    unsigned nmethods)
{
    uint64_t ws = sum(shards, n, M_WS_OPENED) - sum(shards, n, M_WS_CLOSED);
    uint64_t sse = sum(shards, n, M_SSE_OPENED) - sum(shards, n, M_SSE_CLOSED);
    sbuf_puts(o, "# HELP parley_connections Open client connections by transport.\n"
                 "# TYPE parley_connections gauge\n");
    sbuf_printf(o, "parley_connections{transport=\"ws\"} %llu\n", (unsigned long long)ws);
    sbuf_printf(o, "parley_connections{transport=\"sse\"} %llu\n", (unsigned long long)sse);
    metrics_counter(o, "parley_connections_opened_total", "Client connections accepted.", "counter",
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
    metrics_counter(o, "parley_duplicates_suppressed_total",
                    "Publishes answered from the idempotency cache.", "counter",
                    sum(shards, n, M_PUBS_DUPLICATE));
    metrics_counter(o, "parley_deliveries_total", "Pubs queued to subscriber connections.",
                    "counter", sum(shards, n, M_DELIVERIES));
    metrics_counter(o, "parley_frames_out_total", "WebSocket frames and SSE writes sent.",
                    "counter", sum(shards, n, M_FRAMES_OUT));
    metrics_counter(o, "parley_bytes_out_total", "Bytes written to clients.", "counter",
                    sum(shards, n, M_BYTES_OUT));
    metrics_counter(o, "parley_slow_consumer_disconnects_total",
                    "Connections closed with 4001 for exceeding the outbound queue.", "counter",
                    sum(shards, n, M_SLOW_CONSUMER));
    sbuf_puts(o, "# HELP parley_slow_consumer_dropped_total Queued pubs a slow-consumer policy "
                 "dropped (named by a gap push) instead of disconnecting.\n"
                 "# TYPE parley_slow_consumer_dropped_total counter\n");
    sbuf_printf(o, "parley_slow_consumer_dropped_total{policy=\"drop_oldest\"} %llu\n",
                (unsigned long long)sum(shards, n, M_SLOW_DROPPED_OLDEST));
    sbuf_printf(o, "parley_slow_consumer_dropped_total{policy=\"latest\"} %llu\n",
                (unsigned long long)sum(shards, n, M_SLOW_DROPPED_LATEST));
    metrics_counter(o, "parley_protocol_errors_total", "Malformed frames and protocol violations.",
                    "counter", sum(shards, n, M_PROTOCOL_ERRORS));
    metrics_counter(o, "parley_recoveries_total", "Subscriptions recovered from a position.",
                    "counter", sum(shards, n, M_RECOVERIES));
    metrics_counter(
        o, "parley_gaps_total",
        "Gap pushes sent (recovery impossible, or pubs dropped by a slow-consumer policy).",
        "counter", sum(shards, n, M_GAPS));
    metrics_counter(o, "parley_typing_forwarded_total", "Typing signals forwarded.", "counter",
                    sum(shards, n, M_TYPING_FORWARDED));
    metrics_counter(o, "parley_typing_dropped_total", "Typing signals dropped by the throttle.",
                    "counter", sum(shards, n, M_TYPING_DROPPED));
    metrics_counter(o, "parley_read_updates_total", "Read cursor updates that moved a cursor.",
                    "counter", sum(shards, n, M_READ_UPDATES));
    metrics_counter(o, "parley_pubs_lost_total",
                    "Stored pubs that could not be handed to a worker (its subscribers of the "
                    "channel were closed with 4002 to resume by offset).",
                    "counter", sum(shards, n, M_PUBS_LOST));
    metrics_counter(
        o, "parley_lifecycle_lost_total",
        "Lifecycle events ($sys.client.*, $sys.presence.*) a route asked for that could "
        "not be recorded (out of memory).",
        "counter", sum(shards, n, M_LIFECYCLE_LOST));
    metrics_counter(o, "parley_read_pauses_total",
                    "Times a client's input stopped being read because its commands outran their "
                    "answers (backpressure).",
                    "counter", sum(shards, n, M_READS_PAUSED));
    /* Resumes read first: a pause always precedes its resume, so the
     * difference cannot wrap. */
    uint64_t resumed = sum(shards, n, M_READS_RESUMED);
    metrics_counter(o, "parley_paused_connections",
                    "Connections whose input is not read now (backpressure).", "gauge",
                    sum(shards, n, M_READS_PAUSED) - resumed);
    render_shed(o, shards, n);
    metrics_counter(o, "parley_backlog_overloads_total",
                    "Times a worker's output backlog passed limits.backlog_bytes (publishers are "
                    "slowed until it drains).",
                    "counter", sum(shards, n, M_BACKLOGGED));

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
    metrics_histogram(o, "parley_delivery_latency_seconds",
                      "Publish accepted to pub queued on a subscriber connection.", lb, lc,
                      METRICS_LAT_BUCKETS, (double)lsum / 1e6, lcount);
    render_tenants(o, shards, n);
}
