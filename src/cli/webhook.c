/* `parley webhook send` (see webhook.h): builds an event envelope from an
 * ephemeral pl_pub (hooks/envelope.h), signs each attempt (hooks/sign.h),
 * sends it through hooks/sender.h and follows hooks/retry.h's contract,
 * waiting for each answer on a condition variable the sender thread signals. */
#include "cli/webhook.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "delivery/backoff.h"
#include "engine/pub.h"
#include "hooks/envelope.h"
#include "hooks/retry.h"
#include "hooks/sender.h"
#include "hooks/sign.h"
#include "hooks/ssrf.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/sbuf.h"
#include "util/status.h"

#define MAX_SECRETS 16
#define MAX_NETWORKS 32
#define BODY_SHOWN 200 /* bytes of a failed answer's body printed */

struct opts {
    const char *url, *channel, *type, *data, *id, *schedule, *timeout, *max_attempts;
    const char *secrets[MAX_SECRETS];
    size_t n_secrets;
    const char *networks[MAX_NETWORKS];
    size_t n_networks;
};

/* One attempt's answer, copied off the sender thread. */
struct answer {
    uv_mutex_t lock;
    uv_cond_t cond;
    bool ready;
    int status;
    ssrf_verdict ssrf;
    int64_t latency_us;
    char error[512], address[64], retry_after[256], delivery[256];
    bool has_retry_after, has_delivery;
    char body[BODY_SHOWN + 1];
};

struct run {
    struct opts o;
    retry_policy policy;
    sign_key *keys[MAX_SECRETS];
    ssrf_allowlist *allow;
    int64_t timeout_ms;
    char id[SIGN_MAX_ID + 1];
    sbuf body;
    sender *snd;
    struct answer a;
};

static int usage(const char *msg)
{
    fprintf(stderr, "parley: webhook send: %s (see parley help webhook)\n", msg);
    return 2;
}

/* ---- options ------------------------------------------------------------ */

static int parse_opts(struct opts *o, int argc, char **argv)
{
    static const struct option opts[] = {{"url", required_argument, 0, 'u'},
                                         {"secret", required_argument, 0, 's'},
                                         {"channel", required_argument, 0, 'c'},
                                         {"type", required_argument, 0, 't'},
                                         {"data", required_argument, 0, 'd'},
                                         {"id", required_argument, 0, 'i'},
                                         {"schedule", required_argument, 0, 'S'},
                                         {"max-attempts", required_argument, 0, 'm'},
                                         {"allow-network", required_argument, 0, 'a'},
                                         {"timeout", required_argument, 0, 'T'},
                                         {0, 0, 0, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'u':
            o->url = optarg;
            break;
        case 'c':
            o->channel = optarg;
            break;
        case 't':
            o->type = optarg;
            break;
        case 'd':
            o->data = optarg;
            break;
        case 'i':
            o->id = optarg;
            break;
        case 'S':
            o->schedule = optarg;
            break;
        case 'm':
            o->max_attempts = optarg;
            break;
        case 'T':
            o->timeout = optarg;
            break;
        case 's':
            if (o->n_secrets == MAX_SECRETS) return usage("at most 16 --secret");
            o->secrets[o->n_secrets++] = optarg;
            break;
        case 'a':
            if (o->n_networks == MAX_NETWORKS) return usage("at most 32 --allow-network");
            o->networks[o->n_networks++] = optarg;
            break;
        default:
            return 2;
        }
    }
    if (optind < argc) return usage("unexpected argument");
    if (!o->url) return usage("needs --url URL");
    if (!o->n_secrets) return usage("needs --secret whsec_... (repeat to sign with several)");
    return 0;
}

/* Only http and https, and a URL libcurl can read: anything else is a
 * mistake in the command line, not a delivery failure. */
static int check_url(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok ? 0 : usage("--url wants an http:// or https:// URL");
}

static int parse_policy(struct run *r)
{
    retry_policy_default(&r->policy);
    if (r->o.schedule && retry_policy_parse(&r->policy, r->o.schedule))
        return usage("--schedule wants durations such as 0s,1s,5m (at most 64)");
    if (r->o.max_attempts) {
        char *end;
        long n = strtol(r->o.max_attempts, &end, 10);
        if (*end || n < 1 || n > RETRY_MAX_ATTEMPTS) return usage("--max-attempts wants 1 to 64");
        /* More attempts than the schedule has repeat its last delay. */
        for (size_t i = r->policy.n_attempts; i < (size_t)n; i++)
            r->policy.delays_ms[i] = r->policy.delays_ms[r->policy.n_attempts - 1];
        r->policy.n_attempts = (size_t)n;
    }
    r->timeout_ms = clock_parse_duration(r->o.timeout ? r->o.timeout : "15s");
    if (r->timeout_ms <= 0) return usage("--timeout wants a duration such as 15s");
    return 0;
}

static int parse_keys(struct run *r)
{
    for (size_t i = 0; i < r->o.n_secrets; i++) {
        const char *s = r->o.secrets[i];
        enum sign_key_err e = sign_key_parse(s, strlen(s), &r->keys[i]);
        if (e != SIGN_KEY_OK) {
            fprintf(stderr, "parley: webhook send: --secret %zu: %s\n", i + 1, sign_key_errstr(e));
            return 2;
        }
        if (!strncmp(s, "whpk_", 5)) return usage("a whpk_ public key cannot sign");
    }
    char err[256];
    int rc = ssrf_allowlist_new(r->o.networks, r->o.n_networks, &r->allow, err, sizeof(err));
    if (rc == PL_EINVAL) {
        fprintf(stderr, "parley: webhook send: --allow-network %s\n", err);
        return 2;
    }
    return rc ? 1 : 0;
}

/* ---- the envelope ------------------------------------------------------- */

static int build_envelope(struct run *r)
{
    const char *data = r->o.data ? r->o.data : "{\"test\":true}";
    json_error_t jerr;
    json_t *j = json_loads(data, JSON_DECODE_ANY, &jerr);
    if (!j) return usage("--data is not JSON");
    json_decref(j);
    const char *channel = r->o.channel ? r->o.channel : "webhook:test";
    const char *type = r->o.type ? r->o.type : "webhook.test";
    pub_fields f = {
        .tenant = "default",
        .tenant_len = 7,
        .channel = channel,
        .channel_len = strlen(channel),
        .data = data,
        .data_len = strlen(data),
        .type = type,
        .type_len = strlen(type),
        .headers = "{}",
        .headers_len = 2,
    };
    /* An ephemeral pub gets its id at once; stored pubs get theirs from the
     * engine, which this tool does not involve. */
    pl_pub *p = pub_new(&f, PUB_EPHEMERAL);
    if (!p) return 1;
    int rc = envelope_write(&r->body, p, NULL);
    snprintf(r->id, sizeof(r->id), "%s", r->o.id ? r->o.id : p->id);
    pub_unref(p);
    if (rc != PL_OK) return 1;
    if (r->o.id && (!*r->o.id || strlen(r->o.id) > SIGN_MAX_ID || strpbrk(r->o.id, "\r\n")))
        return usage("--id wants 1 to 256 characters on one line");
    return 0;
}

/* ---- one attempt -------------------------------------------------------- */

static void on_done(const sender_result *res, void *user)
{
    struct answer *a = user;
    uv_mutex_lock(&a->lock);
    a->status = res->status;
    a->ssrf = res->ssrf;
    a->latency_us = res->latency_us;
    snprintf(a->error, sizeof(a->error), "%s", res->error);
    snprintf(a->address, sizeof(a->address), "%s", res->address);
    a->has_retry_after = res->retry_after != NULL;
    snprintf(a->retry_after, sizeof(a->retry_after), "%s",
             res->retry_after ? res->retry_after : "");
    a->has_delivery = res->delivery != NULL;
    snprintf(a->delivery, sizeof(a->delivery), "%s", res->delivery ? res->delivery : "");
    size_t n = res->body_len < BODY_SHOWN ? res->body_len : BODY_SHOWN;
    memcpy(a->body, res->body, n);
    a->body[n] = '\0';
    a->ready = true;
    uv_cond_signal(&a->cond);
    uv_mutex_unlock(&a->lock);
}

/* Signs for now and sends; waits for the answer. 0, or 1 on a local
 * failure (said on stderr). */
static int attempt(struct run *r)
{
    int64_t ts = clock_wall_ms() / 1000;
    char *sig = NULL;
    if (sign_header((const sign_key *const *)r->keys, r->o.n_secrets, r->id, strlen(r->id), ts,
                    r->body.data, r->body.len, &sig)) {
        fprintf(stderr, "parley: webhook send: cannot sign\n");
        return 1;
    }
    char h_id[SIGN_MAX_ID + 16], h_ts[48];
    snprintf(h_id, sizeof(h_id), "webhook-id: %s", r->id);
    snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %lld", (long long)ts);
    size_t sig_len = strlen(sig) + 24;
    char *h_sig = pl_malloc(sig_len);
    if (!h_sig) {
        pl_free(sig);
        return 1;
    }
    snprintf(h_sig, sig_len, "webhook-signature: %s", sig);
    pl_free(sig);
    const char *headers[] = {"Content-Type: application/json", h_id, h_ts, h_sig};
    sender_request req = {.url = r->o.url,
                          .headers = headers,
                          .n_headers = 4,
                          .body = r->body.data,
                          .body_len = r->body.len,
                          .timeout_ms = r->timeout_ms,
                          .allow = r->allow,
                          .done = on_done,
                          .user = &r->a};
    r->a.ready = false;
    int rc = sender_submit(r->snd, &req);
    pl_free(h_sig);
    if (rc != PL_OK) {
        fprintf(stderr, "parley: webhook send: cannot queue the request\n");
        return 1;
    }
    uv_mutex_lock(&r->a.lock);
    while (!r->a.ready)
        uv_cond_wait(&r->a.cond, &r->a.lock);
    uv_mutex_unlock(&r->a.lock);
    return 0;
}

/* ---- the run ------------------------------------------------------------ */

static void print_time(int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[32];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    printf("%s.%03dZ", buf, (int)(ms % 1000));
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* The guard refused: no attempt will do better, so stop at once and say how
 * to admit the address. */
static int refused(const struct run *r)
{
    printf("not delivered: %s\n", r->a.error);
    /* An IPv4-mapped address is judged as its IPv4 host, and so admitted by
     * an IPv4 entry. */
    const char *a = r->a.address;
    bool v6 = strchr(a, ':') && strncasecmp(a, "::ffff:", 7);
    const char *net = r->a.ssrf != SSRF_LOOPBACK ? NULL : v6 ? "::1/128" : "127.0.0.0/8";
    if (net)
        printf("loopback is refused unless allowed: pass --allow-network %s\n", net);
    else if (r->a.address[0])
        printf("to send there anyway, pass --allow-network with its network (e.g. %s)\n",
               r->a.address);
    return 1;
}

/* Prints one attempt's line: time, status, latency, outcome and reason. */
static void print_attempt(const struct run *r, uint32_t n, int64_t at, const retry_outcome *o)
{
    printf("attempt %u at ", n);
    print_time(at);
    if (r->a.status)
        printf(": status %d", r->a.status);
    else
        printf(": no status");
    printf(", %lld ms, %s: %s", (long long)(r->a.latency_us / 1000), retry_kind_name(o->kind),
           o->reason);
    if ((o->kind == RETRY_RETRY || o->kind == RETRY_THROTTLE) && !o->exhausted)
        printf("; next attempt in %.1fs", (double)o->delay_ms / 1000);
    printf("\n");
    if (r->a.status && (r->a.status < 200 || r->a.status > 299) && r->a.body[0])
        printf("  body: %s\n", r->a.body);
    fflush(stdout);
}

static int deliver(struct run *r, backoff_rng *rng)
{
    int64_t wait = retry_delay(&r->policy, 1, backoff_rng_next(rng));
    for (uint32_t n = 1;; n++) {
        if (wait > 0) sleep_ms(wait);
        int64_t at = clock_wall_ms();
        if (attempt(r)) return 1;
        if (r->a.ssrf != SSRF_OK) return refused(r);
        retry_header h[2];
        size_t nh = 0;
        if (r->a.has_retry_after) h[nh++] = (retry_header){"Retry-After", r->a.retry_after};
        if (r->a.has_delivery) h[nh++] = (retry_header){"webhook-delivery", r->a.delivery};
        retry_response resp = {
            .status = r->a.status, .headers = h, .n_headers = nh, .error = r->a.error};
        retry_outcome o;
        retry_classify(&r->policy, n, &resp, clock_wall_ms(), backoff_rng_next(rng), &o);
        print_attempt(r, n, at, &o);
        switch (o.kind) {
        case RETRY_SUCCESS:
            printf("delivered on attempt %u (webhook-id %s)\n", n, r->id);
            return 0;
        case RETRY_DISABLE_ENDPOINT:
            printf("not delivered: the endpoint would be disabled (%s)\n", o.reason);
            return 1;
        case RETRY_ABORT_MESSAGE:
            printf("not delivered: the receiver aborted this message (%s)\n", o.reason);
            return 1;
        case RETRY_RETRY:
        case RETRY_THROTTLE:
            if (o.exhausted) {
                printf("not delivered: dead-lettered after %u attempts\n", n);
                return 1;
            }
            wait = o.delay_ms;
        }
    }
}

static void run_release(struct run *r)
{
    sender_free(r->snd);
    for (size_t i = 0; i < MAX_SECRETS; i++)
        sign_key_free(r->keys[i]);
    ssrf_allowlist_free(r->allow);
    sbuf_release(&r->body);
    uv_cond_destroy(&r->a.cond);
    uv_mutex_destroy(&r->a.lock);
}

int webhook_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "send")) return usage("the subcommand is send");
    struct run r;
    memset(&r, 0, sizeof(r));
    uv_mutex_init(&r.a.lock);
    uv_cond_init(&r.a.cond);
    sbuf_init(&r.body);
    int rc = parse_opts(&r.o, argc - 1, argv + 1);
    if (!rc) rc = check_url(r.o.url);
    if (!rc) rc = parse_policy(&r);
    if (!rc) rc = parse_keys(&r);
    if (!rc) rc = build_envelope(&r);
    char err[256];
    if (!rc && sender_new(1, &r.snd, err, sizeof(err))) {
        fprintf(stderr, "parley: webhook send: %s\n", err);
        rc = 1;
    }
    if (!rc) {
        backoff_rng rng;
        backoff_rng_seed_random(&rng);
        printf("sending %zu bytes to %s (webhook-id %s, %zu attempts at most)\n", r.body.len,
               r.o.url, r.id, r.policy.n_attempts);
        fflush(stdout);
        rc = deliver(&r, &rng);
    }
    run_release(&r);
    return rc;
}
