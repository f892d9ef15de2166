/* Internals shared by the files of `parley bench`: the parsed options and
 * the figures one run produces. bench.c parses the command line and prints;
 * bench_run.c drives the connections on libuv and fills a bench_result. */
#ifndef PL_BENCH_INT_H
#define PL_BENCH_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli/bench_chat.h"
#include "cli/bench_stats.h"
#include "cli/bench_verify.h"

typedef enum bench_scenario {
    SCEN_FANOUT,
    SCEN_CHANNELS,
    SCEN_PUBLISH,
    SCEN_IDLE,
    SCEN_STORM,
    SCEN_CHAT,
} bench_scenario;

typedef enum bench_proto { PROTO_PARLEY, PROTO_NATS } bench_proto;

typedef struct bench_opts {
    bench_scenario scenario;
    bench_proto proto;
    const char *host; /* dotted IPv4 */
    int port;
    const char *sub_host; /* --sub-url: subscribers' server, NULL = host */
    int sub_port;
    uint32_t subs;       /* fanout, channels, storm */
    uint32_t conns;      /* idle, chat */
    uint32_t rooms;      /* chat: rooms the connections are members of */
    uint64_t seed;       /* chat: room sizes order, memberships, who publishes */
    bool find_max;       /* chat: step the rate up until a step is not met */
    double p99_bound_s;  /* chat --find-max: a step is met when p99 is within this */
    double step_factor;  /* chat --find-max: each step's rate is the last one's times this */
    uint32_t publishers; /* publish */
    uint32_t channels;   /* storm: subscribers spread over this many channels */
    uint32_t payload;    /* bytes of the pub's data JSON */
    uint32_t inflight;   /* per publisher */
    double rate;         /* publishes per second over all publishers; 0 = max */
    bool ephemeral;      /* --class ephemeral (else standard) */
    double duration_s;   /* publishing time */
    uint64_t count;      /* max publishes, 0 = no bound other than time */
    double hold_s;       /* idle: how long connections are held */
    bool verify;         /* idle: one publish per channel in a burst, every delivery checked */
    double verify_read_after_s; /* idle --verify: the publisher reads nothing until then */
    double drop_at_s;           /* storm: when the subscribers drop, after publishing starts */
    double drain_s;             /* after publishing: wait for acks and deliveries */
    double timeout_s;           /* hard bound of the whole run */
    pid_t server_pid;           /* 0 = unknown */
    const char *secret;         /* HS256 secret for tokens (Parley) */
    const char *tenant;         /* tenant claim or NULL */
    uint32_t source_ips;        /* spread sources over 127.0.0.1 .. 127.0.0.N */
    uint32_t connect_concurrency;
    bool quiet;         /* no progress lines */
    const char *run_id; /* channel name component, unique per run */
} bench_opts;

typedef struct bench_result {
    bool ok;             /* finished without failure (figures may still show loss) */
    const char *failure; /* static text when !ok */
    uint64_t connections;
    double connect_s; /* time to get every connection ready */
    uint64_t pubs_sent, pubs_acked;
    double publish_s; /* first publish to last ack */
    uint64_t deliveries;
    double deliver_s;   /* first publish to last delivery */
    bench_hist latency; /* publish to delivery, ns */
    bench_hist ack;     /* publish to ack, ns */
    uint64_t expected;  /* deliveries expected over all subscribers */
    uint64_t lost, dups, reorder, gaps;
    uint64_t conn_errors, server_errors, proto_errors;
    uint64_t shed;    /* publishes refused with 114 (overload): retried after a pause, not errors */
    double catchup_s; /* storm: drop to last subscriber caught up; <0 if never */
    uint64_t recovered;                /* storm: pubs received in subscribe results */
    double server_cpu_s;               /* <0 when unknown */
    double commit_batch;               /* publish: average batch size, <0 when unknown */
    long rss_before_kib, rss_hold_kib; /* idle; <0 when unknown */
    bench_verify_sum verify;           /* idle --verify */
    bench_chat_sum chat;               /* chat */
    double elapsed_s;
} bench_result;

/* Runs the scenario. Fills r (which the caller zeroes) and returns 0 when
 * the run completed, or -1 when it could not start. r->ok tells whether it
 * failed midway. */
int bench_run(const bench_opts *o, bench_result *r);
/* The chat scenario's engine (bench_chat.c), called by bench_run. */
int bench_chat_run(const bench_opts *o, bench_result *r);

/* /proc readers: utime+stime in seconds, VmRSS in KiB; -1 when unknown. */
double bench_proc_cpu_s(pid_t pid);
long bench_proc_rss_kib(pid_t pid);
/* Sums the `name` samples (any labels) in Prometheus text; -1 if absent. */
double bench_prom_sum(const char *text, size_t len, const char *name);
/* Fetches http://host:port/metrics and returns the parley_commit_batch_size
 * _sum and _count totals; -1 on failure. */
int bench_fetch_batch(const char *host, int port, double *sum, double *count);

#endif
