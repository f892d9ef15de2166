/* `parley bench` command line: option parsing, the fd limit, the server
 * probes (/proc/PID for CPU and RSS, /metrics for commit batch sizes) and
 * the report (one human line and one JSON line per run on stdout). The run
 * itself is bench_run.c. */
#include "cli/bench.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli/bench_int.h"
#include "util/clock.h"
#include "util/sbuf.h"

/* --------------------------------------------------------------- probes */

double bench_proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and ')'; fields restart after the
     * last ')'. utime and stime are fields 14 and 15, 11 and 12 after it. */
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? (double)(ut + st) / (double)hz : -1;
}

long bench_proc_rss_kib(pid_t pid)
{
    if (pid <= 0) return -1;
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

double bench_prom_sum(const char *text, size_t len, const char *name)
{
    size_t nl = strlen(name);
    double sum = 0;
    int found = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > nl && memcmp(p, name, nl) == 0 && (p[nl] == '{' || p[nl] == ' ')) {
            const char *q = p + nl;
            if (*q == '{') {
                /* Skip the labels; quoted values may hold '}'. */
                int quoted = 0;
                for (q++; q < eol; q++) {
                    if (quoted && *q == '\\' && q + 1 < eol)
                        q++;
                    else if (*q == '"')
                        quoted = !quoted;
                    else if (!quoted && *q == '}')
                        break;
                }
                q++;
            }
            char num[64];
            while (q < eol && (*q == ' ' || *q == '\t'))
                q++;
            size_t k = 0;
            while (q < eol && !isspace((unsigned char)*q) && k < sizeof(num) - 1)
                num[k++] = *q++;
            num[k] = '\0';
            char *e;
            double v = strtod(num, &e);
            if (k && *e == '\0') {
                sum += v;
                found = 1;
            }
        }
        p = eol + 1;
    }
    return found ? sum : -1;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    sbuf *b = ud;
    if (b->len + size * n > (64u << 20)) return 0;
    sbuf_append(b, data, size * n);
    return b->oom ? 0 : size * n;
}

int bench_fetch_batch(const char *host, int port, double *sum, double *count)
{
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%d/metrics", host, port);
    sbuf body;
    sbuf_init(&body);
    int rc = -1;
    CURL *h = curl_easy_init();
    if (!h) goto done;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(h) != CURLE_OK ||
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200)
        goto done;
    *sum = bench_prom_sum(body.data, body.len, "parley_commit_batch_size_sum");
    *count = bench_prom_sum(body.data, body.len, "parley_commit_batch_size_count");
    if (*sum >= 0 && *count >= 0) rc = 0;
done:
    if (h) curl_easy_cleanup(h);
    sbuf_release(&body);
    return rc;
}

/* -------------------------------------------------------------- options */

static const char usage[] =
    "usage: parley bench <fanout|channels|publish|idle|storm|chat> [options]\n"
    "  --url HOST:PORT           server (default 127.0.0.1:8080; IPv4 only)\n"
    "  --sub-url HOST:PORT       subscribers connect here instead (fanout, channels,\n"
    "                            storm): another node of a cluster\n"
    "  --proto parley|nats       protocol (nats: fanout, channels, idle, chat)\n"
    "  --secret S --tenant T     HS256 secret and tenant for minted tokens (parley)\n"
    "  --subs N                  subscribers (fanout, channels, storm; default 1000)\n"
    "  --conns N                 connections (idle: default 1000; chat: 10000)\n"
    "  --rooms N                 chat: rooms, each connection in 5 of them, sizes 2..200\n"
    "                            skewed (default 2000; see bench/README.md)\n"
    "  --seed N                  chat: room order, memberships and speakers (default 1)\n"
    "  --find-max                chat: steps the rate up from --rate (each step --duration)\n"
    "                            until a step is not met; reports the highest met\n"
    "  --p99-bound T             chat --find-max: a step's p99 bound (default 100ms)\n"
    "  --step-factor F           chat --find-max: rate growth per step (default 1.25)\n"
    "  --publishers N            publishers (publish; default 64)\n"
    "  --channels N              storm: spread subscribers over N channels, publishes\n"
    "                            round-robin (default 1: everyone on one channel)\n"
    "  --payload B               bytes of each pub's data (default 64)\n"
    "  --inflight N              publishes in flight per publisher (default 64)\n"
    "  --rate N                  publishes/s over all publishers (default max; storm 10000;\n"
    "                            chat 2000, at least 1)\n"
    "  --class ephemeral|standard  delivery class (default standard)\n"
    "  --duration T              publishing time (default 10s)\n"
    "  --count N                 stop after N publishes\n"
    "  --hold T                  idle: hold time (default 10s)\n"
    "  --verify                  idle: once all are subscribed, one more connection\n"
    "                            writes one publish per channel at once, no window;\n"
    "                            fails (exit 1) unless every publish is acked, every\n"
    "                            subscriber gets its pub and the server closes no\n"
    "                            connection (waits up to --drain after --hold; parley)\n"
    "  --verify-read-after T     idle --verify: the publisher reads nothing until T after\n"
    "                            the burst, as a client that writes its whole batch before\n"
    "                            reading its answers (default 0: read as they arrive)\n"
    "  --drop-at T               storm: drop subscribers T after publishing starts (default 2s)\n"
    "  --drain T                 wait this long for acks and deliveries after publishing (5s)\n"
    "  --timeout T               hard bound of the run (default: everything above + 60s)\n"
    "  --server-pid PID          report the server's CPU (and RSS for idle)\n"
    "  --source-ips N            spread sources over 127.0.0.1..127.0.0.N (default 8; 0 = off)\n"
    "  --connect-concurrency N   connections being set up at once (default 256)\n"
    "  --label TEXT              copied into the JSON line\n"
    "  --quiet                   no progress lines\n"
    "T is seconds (\"2.5\") or a duration (\"500ms\", \"1m\").\n";

static int parse_u32(const char *s, uint32_t *out)
{
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (!*s || *e || v > UINT32_MAX || s[0] == '-') return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_secs(const char *s, double *out)
{
    char *e;
    double v = strtod(s, &e);
    if (*s && !*e && v >= 0 && v < 1e7) {
        *out = v;
        return 0;
    }
    int64_t ms = clock_parse_duration(s);
    if (ms < 0) return -1;
    *out = (double)ms / 1000.0;
    return 0;
}

/* HOST:PORT (ws:// or http:// allowed) into host (hostlen bytes), *port. */
static int parse_url(const char *s, char *host, size_t hostlen, int *port_out)
{
    if (strncmp(s, "ws://", 5) == 0)
        s += 5;
    else if (strncmp(s, "http://", 7) == 0)
        s += 7;
    const char *colon = strchr(s, ':');
    if (!colon || (size_t)(colon - s) >= hostlen || colon == s) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char port[8];
    size_t pl = strcspn(colon + 1, "/");
    if (pl == 0 || pl >= sizeof(port)) return -1;
    memcpy(port, colon + 1, pl);
    port[pl] = '\0';
    uint32_t p;
    if (parse_u32(port, &p) < 0 || p == 0 || p > 65535) return -1;
    *port_out = (int)p;
    return 0;
}

static const char *scen_names[] = {"fanout", "channels", "publish", "idle", "storm", "chat"};
#define NSCEN (sizeof(scen_names) / sizeof(scen_names[0]))

/* Options given explicitly, where the scenario has its own default. */
typedef struct seen_opts {
    bool subs, rate, timeout, read_after, conns;
    const char *chat_opt; /* the first chat-only option given */
} seen_opts;

static double parse_factor(const char *s)
{
    char *e;
    double v = strtod(s, &e);
    return *s && !*e && v > 1 && v <= 10 ? v : -1;
}

/* The chat scenario's own options; false when a is not one. */
static bool parse_chat_opt(const char *a, const char *v, bench_opts *o, seen_opts *seen, int *bad)
{
    if (strcmp(a, "--rooms") == 0)
        *bad = parse_u32(v, &o->rooms);
    else if (strcmp(a, "--seed") == 0) {
        char *e;
        o->seed = strtoull(v, &e, 10);
        *bad = !*v || *e || v[0] == '-';
    } else if (strcmp(a, "--p99-bound") == 0)
        *bad = parse_secs(v, &o->p99_bound_s) || o->p99_bound_s <= 0;
    else if (strcmp(a, "--step-factor") == 0)
        *bad = (o->step_factor = parse_factor(v)) < 0;
    else
        return false;
    if (!seen->chat_opt) seen->chat_opt = a;
    return true;
}

/* One option a with its value v. 0, 1 when v is bad, -1 when a is unknown. */
static int parse_opt(const char *a, const char *v, bench_opts *o, const char **label,
                     char host[2][64], seen_opts *seen)
{
    int bad = 0;
    if (strcmp(a, "--url") == 0) {
        bad = parse_url(v, host[0], sizeof(host[0]), &o->port);
        o->host = host[0];
    } else if (strcmp(a, "--sub-url") == 0) {
        bad = parse_url(v, host[1], sizeof(host[1]), &o->sub_port);
        o->sub_host = host[1];
    } else if (strcmp(a, "--proto") == 0) {
        if (strcmp(v, "parley") == 0)
            o->proto = PROTO_PARLEY;
        else if (strcmp(v, "nats") == 0)
            o->proto = PROTO_NATS;
        else
            bad = 1;
    } else if (strcmp(a, "--secret") == 0)
        o->secret = v;
    else if (strcmp(a, "--tenant") == 0)
        o->tenant = v;
    else if (strcmp(a, "--subs") == 0) {
        bad = parse_u32(v, &o->subs);
        seen->subs = true;
    } else if (strcmp(a, "--conns") == 0) {
        bad = parse_u32(v, &o->conns);
        seen->conns = true;
    } else if (parse_chat_opt(a, v, o, seen, &bad))
        ;
    else if (strcmp(a, "--channels") == 0)
        bad = parse_u32(v, &o->channels) || o->channels == 0;
    else if (strcmp(a, "--publishers") == 0)
        bad = parse_u32(v, &o->publishers) || o->publishers == 0;
    else if (strcmp(a, "--payload") == 0)
        bad = parse_u32(v, &o->payload) || o->payload > (1u << 20);
    else if (strcmp(a, "--inflight") == 0)
        bad = parse_u32(v, &o->inflight) || o->inflight == 0 || o->inflight > 65536;
    else if (strcmp(a, "--rate") == 0) {
        uint32_t rate = 0;
        bad = parse_u32(v, &rate);
        o->rate = rate;
        seen->rate = true;
    } else if (strcmp(a, "--class") == 0) {
        if (strcmp(v, "ephemeral") == 0)
            o->ephemeral = true;
        else if (strcmp(v, "standard") == 0)
            o->ephemeral = false;
        else
            bad = 1;
    } else if (strcmp(a, "--duration") == 0)
        bad = parse_secs(v, &o->duration_s);
    else if (strcmp(a, "--count") == 0) {
        char *e;
        o->count = strtoull(v, &e, 10);
        bad = !*v || *e || v[0] == '-';
    } else if (strcmp(a, "--hold") == 0)
        bad = parse_secs(v, &o->hold_s);
    else if (strcmp(a, "--verify-read-after") == 0) {
        bad = parse_secs(v, &o->verify_read_after_s);
        seen->read_after = true;
    } else if (strcmp(a, "--drop-at") == 0)
        bad = parse_secs(v, &o->drop_at_s);
    else if (strcmp(a, "--drain") == 0)
        bad = parse_secs(v, &o->drain_s);
    else if (strcmp(a, "--timeout") == 0) {
        bad = parse_secs(v, &o->timeout_s);
        seen->timeout = true;
    } else if (strcmp(a, "--server-pid") == 0) {
        uint32_t pid = 0;
        bad = parse_u32(v, &pid) || pid == 0 || pid > INT32_MAX;
        o->server_pid = (pid_t)pid;
    } else if (strcmp(a, "--source-ips") == 0)
        bad = parse_u32(v, &o->source_ips) || o->source_ips > 254;
    else if (strcmp(a, "--connect-concurrency") == 0)
        bad = parse_u32(v, &o->connect_concurrency) || o->connect_concurrency == 0;
    else if (strcmp(a, "--label") == 0)
        *label = v;
    else
        return -1;
    return bad ? 1 : 0;
}

/* The chat scenario's defaults and refusals. 0 or -1. */
static int check_chat(bench_opts *o, const seen_opts *seen)
{
    if (o->scenario != SCEN_CHAT) {
        if (!seen->chat_opt) return 0;
        fprintf(stderr, "bench: %s is an option of the chat scenario only, not %s\n",
                seen->chat_opt, scen_names[o->scenario]);
        return -1;
    }
    if (!seen->conns) o->conns = 10000;
    if (!seen->rate) o->rate = 2000;
    if (o->rate < 1) {
        fprintf(stderr, "bench: chat publishes at a fixed rate: --rate must be at least 1\n");
        return -1;
    }
    const char *why = bench_chat_check(o->conns, o->rooms);
    if (why) {
        fprintf(stderr, "bench: %s\n", why);
        return -1;
    }
    if (!seen->timeout && o->find_max)
        o->timeout_s =
            BENCH_CHAT_MAX_STEPS * (o->duration_s + 2) + o->drain_s + 60 + o->conns / 500.0;
    return 0;
}

/* Scenario defaults and the combinations a run cannot do. 0 or -1. */
static int check_opts(bench_opts *o, const seen_opts *seen)
{
    if (!seen->subs && o->scenario == SCEN_STORM) o->subs = 1000;
    if (!seen->rate && o->scenario == SCEN_STORM) o->rate = 10000;
    if (!seen->timeout)
        o->timeout_s = o->duration_s + o->hold_s + o->drain_s + o->verify_read_after_s + 60;
    if (check_chat(o, seen) < 0) return -1;
    if (o->proto == PROTO_PARLEY && !o->secret) {
        fprintf(stderr, "bench: --secret is required for --proto parley\n");
        return -1;
    }
    if (o->proto == PROTO_NATS && (o->scenario == SCEN_PUBLISH || o->scenario == SCEN_STORM)) {
        fprintf(stderr, "bench: %s needs acks and offsets; it runs with --proto parley only\n",
                scen_names[o->scenario]);
        return -1;
    }
    if (o->verify && o->scenario != SCEN_IDLE) {
        fprintf(stderr, "bench: --verify is an option of the idle scenario only, not %s\n",
                scen_names[o->scenario]);
        return -1;
    }
    if (seen->read_after && !o->verify) {
        fprintf(stderr, "bench: --verify-read-after needs --verify\n");
        return -1;
    }
    if (o->verify && o->proto == PROTO_NATS) {
        fprintf(stderr, "bench: --verify needs publish acks; it runs with --proto parley only\n");
        return -1;
    }
    if (o->scenario == SCEN_STORM && o->ephemeral) {
        fprintf(stderr, "bench: storm measures recovery, which ephemeral pubs do not have\n");
        return -1;
    }
    if ((o->scenario == SCEN_FANOUT || o->scenario == SCEN_CHANNELS || o->scenario == SCEN_STORM) &&
        o->subs == 0) {
        fprintf(stderr, "bench: --subs must be at least 1\n");
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, bench_opts *o, const char **label, char host[2][64])
{
    seen_opts seen = {0};
    if (argc < 2) return -1;
    int sc = -1;
    for (size_t i = 0; i < NSCEN; i++)
        if (strcmp(argv[1], scen_names[i]) == 0) sc = (int)i;
    if (sc < 0) return -1;
    o->scenario = (bench_scenario)sc;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
            continue;
        }
        if (strcmp(a, "--verify") == 0) {
            o->verify = true;
            continue;
        }
        if (strcmp(a, "--find-max") == 0) {
            o->find_max = true;
            if (!seen.chat_opt) seen.chat_opt = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench: %s needs a value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        int rc = parse_opt(a, v, o, label, host, &seen);
        if (rc < 0) {
            fprintf(stderr, "bench: unknown option %s\n", a);
            return -1;
        }
        if (rc) {
            fprintf(stderr, "bench: bad value for %s: %s\n", a, v);
            return -1;
        }
    }
    return check_opts(o, &seen);
}

/* Raises the soft fd limit to the hard one; returns the new soft limit. */
static long raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

/* --------------------------------------------------------------- report */

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void json_hist(sbuf *j, const char *name, const bench_hist *h)
{
    sbuf_printf(j,
                ",\"%s\":{\"count\":%" PRIu64 ",\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
                "\"p999\":%.1f,\"max\":%.1f}",
                name, h->count, us(bench_hist_quantile(h, 0.5)), us(bench_hist_quantile(h, 0.9)),
                us(bench_hist_quantile(h, 0.99)), us(bench_hist_quantile(h, 0.999)),
                us(bench_hist_quantile(h, 1.0)));
}

static void human_hist(sbuf *s, const char *name, const bench_hist *h)
{
    if (!h->count) return;
    sbuf_printf(s, ", %s p50 %.2fms p90 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms", name,
                us(bench_hist_quantile(h, 0.5)) / 1000, us(bench_hist_quantile(h, 0.9)) / 1000,
                us(bench_hist_quantile(h, 0.99)) / 1000, us(bench_hist_quantile(h, 0.999)) / 1000,
                us(h->max) / 1000);
}

static double per_s(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0;
}

static bool verdict(const bench_opts *o, const bench_result *r)
{
    bool stored = o->proto == PROTO_PARLEY && !o->ephemeral;
    if (!r->ok || r->conn_errors || r->server_errors || r->proto_errors) return false;
    if (stored && (r->lost || r->dups || r->reorder || r->gaps)) return false;
    if (o->verify && !bench_verify_pass(&r->verify)) return false;
    return true;
}

/* The human summary of the scenarios that publish. */
static void human_traffic(sbuf *h, const bench_opts *o, const bench_result *r, double pubs_s,
                          double deliv_s)
{
    sbuf_printf(h, ", %u B, %" PRIu64 " pubs acked (%.0f/s), %" PRIu64 " deliveries (%.0f/s)",
                o->payload, r->pubs_acked, pubs_s, r->deliveries, deliv_s);
    human_hist(h, "latency", &r->latency);
    if (o->scenario == SCEN_PUBLISH) human_hist(h, "ack", &r->ack);
    sbuf_printf(h, ", lost %" PRIu64 " dup %" PRIu64 " reordered %" PRIu64, r->lost, r->dups,
                r->reorder);
    if (o->scenario == SCEN_STORM) {
        if (r->catchup_s >= 0)
            sbuf_printf(h, ", caught up in %.3fs", r->catchup_s);
        else
            sbuf_puts(h, ", NOT caught up");
        sbuf_printf(h, ", gaps %" PRIu64, r->gaps);
    }
    if (o->scenario == SCEN_CHAT) sbuf_printf(h, ", gaps %" PRIu64, r->gaps);
    bench_chat_human(&r->chat, h);
    if (r->commit_batch >= 0) sbuf_printf(h, ", commit batch %.1f", r->commit_batch);
}

static void report(const bench_opts *o, const bench_result *r, const char *label, bool pass)
{
    const char *proto = o->proto == PROTO_PARLEY ? "parley" : "nats";
    const char *cls = o->proto == PROTO_NATS ? "core" : o->ephemeral ? "ephemeral" : "standard";
    double pubs_s = per_s(r->pubs_acked, r->publish_s);
    double deliv_s = per_s(r->deliveries, r->deliver_s);
    long rss_delta =
        r->rss_before_kib >= 0 && r->rss_hold_kib >= 0 ? r->rss_hold_kib - r->rss_before_kib : -1;
    double per_conn =
        rss_delta >= 0 && r->connections ? (double)rss_delta * 1024.0 / (double)r->connections : -1;

    sbuf h;
    sbuf_init(&h);
    sbuf_printf(&h, "%s %s/%s: %" PRIu64 " conns", scen_names[o->scenario], proto, cls,
                r->connections);
    if (o->scenario == SCEN_IDLE) {
        sbuf_printf(&h, ", connect %.0f/s", per_s(r->connections, r->connect_s));
        if (per_conn >= 0)
            sbuf_printf(&h, ", server RSS %ld -> %ld KiB = %.0f B/conn", r->rss_before_kib,
                        r->rss_hold_kib, per_conn);
        bench_verify_human(&r->verify, &h);
        if (r->commit_batch >= 0) sbuf_printf(&h, ", commit batch %.1f", r->commit_batch);
    } else {
        human_traffic(&h, o, r, pubs_s, deliv_s);
    }
    if (r->server_cpu_s >= 0) sbuf_printf(&h, ", server CPU %.2fs", r->server_cpu_s);
    if (r->shed) sbuf_printf(&h, ", %" PRIu64 " publishes shed (server overloaded)", r->shed);
    if (r->conn_errors || r->server_errors || r->proto_errors)
        sbuf_printf(&h, ", errors conn %" PRIu64 " server %" PRIu64 " protocol %" PRIu64,
                    r->conn_errors, r->server_errors, r->proto_errors);
    sbuf_printf(&h, ": %s%s%s", pass ? "PASS" : "FAIL", r->failure ? " - " : "",
                r->failure ? r->failure : "");

    sbuf j;
    sbuf_init(&j);
    sbuf_printf(&j, "{\"scenario\":\"%s\",\"proto\":\"%s\",\"class\":\"%s\"",
                scen_names[o->scenario], proto, cls);
    if (label) {
        sbuf_puts(&j, ",\"label\":");
        sbuf_json_str(&j, label, strlen(label));
    }
    sbuf_printf(&j,
                ",\"ok\":%s,\"connections\":%" PRIu64 ",\"subs\":%u,\"publishers\":%u,"
                "\"payload\":%u,\"inflight\":%u,\"rate\":%.0f,\"connect_s\":%.3f,"
                "\"connect_per_s\":%.1f,\"pubs_sent\":%" PRIu64 ",\"pubs_acked\":%" PRIu64
                ",\"publish_s\":%.3f,\"pubs_per_s\":%.1f,\"deliveries\":%" PRIu64
                ",\"expected\":%" PRIu64 ",\"deliver_s\":%.3f,\"deliveries_per_s\":%.1f",
                pass ? "true" : "false", r->connections,
                o->scenario == SCEN_IDLE || o->scenario == SCEN_CHAT ? o->conns
                : o->scenario == SCEN_PUBLISH                        ? 0
                                                                     : o->subs,
                o->scenario == SCEN_PUBLISH ? o->publishers
                : o->scenario == SCEN_CHAT  ? o->conns
                : o->scenario == SCEN_IDLE  ? (o->verify ? 1 : 0)
                                            : 1,
                o->payload, o->scenario == SCEN_CHAT ? BENCH_CHAT_WINDOW : o->inflight, o->rate,
                r->connect_s, per_s(r->connections, r->connect_s), r->pubs_sent, r->pubs_acked,
                r->publish_s, pubs_s, r->deliveries, r->expected, r->deliver_s, deliv_s);
    json_hist(&j, "latency_us", &r->latency);
    json_hist(&j, "ack_latency_us", &r->ack);
    sbuf_printf(&j,
                ",\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64 ",\"out_of_order\":%" PRIu64
                ",\"gaps\":%" PRIu64 ",\"conn_errors\":%" PRIu64 ",\"server_errors\":%" PRIu64
                ",\"protocol_errors\":%" PRIu64 ",\"shed\":%" PRIu64,
                r->lost, r->dups, r->reorder, r->gaps, r->conn_errors, r->server_errors,
                r->proto_errors, r->shed);
    if (o->scenario == SCEN_STORM)
        sbuf_printf(&j, ",\"catchup_s\":%.3f,\"recovered\":%" PRIu64, r->catchup_s, r->recovered);
    if (r->server_cpu_s >= 0) sbuf_printf(&j, ",\"server_cpu_s\":%.2f", r->server_cpu_s);
    if (r->commit_batch >= 0) sbuf_printf(&j, ",\"commit_batch_avg\":%.2f", r->commit_batch);
    if (r->rss_before_kib >= 0) sbuf_printf(&j, ",\"rss_before_kib\":%ld", r->rss_before_kib);
    if (r->rss_hold_kib >= 0) sbuf_printf(&j, ",\"rss_hold_kib\":%ld", r->rss_hold_kib);
    if (per_conn >= 0) sbuf_printf(&j, ",\"rss_per_conn_bytes\":%.0f", per_conn);
    bench_verify_json(&r->verify, &j);
    bench_chat_json(&r->chat, &j);
    sbuf_printf(&j, ",\"elapsed_s\":%.3f", r->elapsed_s);
    if (r->failure) {
        sbuf_puts(&j, ",\"failure\":");
        sbuf_json_str(&j, r->failure, strlen(r->failure));
    }
    sbuf_puts(&j, "}");
    if (!h.oom && !j.oom) {
        printf("%s\n%s\n", h.data, j.data);
        fflush(stdout);
    }
    sbuf_release(&h);
    sbuf_release(&j);
}

/* ----------------------------------------------------------------- main */

int bench_main(int argc, char **argv)
{
    char host[2][64]; /* --url, --sub-url */
    char run_id[27];
    const char *label = NULL;
    bench_opts o = {
        .proto = PROTO_PARLEY,
        .host = "127.0.0.1",
        .port = 8080,
        .subs = 1000,
        .conns = 1000,
        .publishers = 64,
        .channels = 1,
        .payload = 64,
        .inflight = 64,
        .duration_s = 10,
        .hold_s = 10,
        .drop_at_s = 2,
        .drain_s = 5,
        .source_ips = 8,
        .connect_concurrency = 256,
        .rooms = 2000,
        .seed = 1,
        .p99_bound_s = 0.1,
        .step_factor = 1.25,
    };
    /* `parley bench SCENARIO --help` is what `parley help bench` points to. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
    if (parse_args(argc, argv, &o, &label, host) < 0) {
        fputs(usage, stderr);
        return 2;
    }
    clock_ulid(run_id);
    o.run_id = run_id;
    long fds = raise_fd_limit();
    uint64_t need = o.scenario == SCEN_CHAT      ? (uint64_t)o.conns
                    : o.scenario == SCEN_IDLE    ? (uint64_t)o.conns + o.verify
                    : o.scenario == SCEN_PUBLISH ? o.publishers
                                                 : (uint64_t)o.subs + 1;
    if (fds > 0 && need + 32 > (uint64_t)fds)
        fprintf(stderr, "bench: warning: %" PRIu64 " connections but only %ld file descriptors\n",
                need, fds);
    bench_result r;
    memset(&r, 0, sizeof(r));
    if (bench_run(&o, &r) < 0) return 1;
    bool pass = verdict(&o, &r);
    report(&o, &r, label, pass);
    return pass ? 0 : 1;
}
