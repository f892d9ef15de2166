/* What the files of the hooks service share (hooks.c: the thread, the
 * inbox, lifecycle; router.c: the committed log to deliveries and
 * publishes; dispatch.c: endpoint queues, attempts and their outcomes;
 * hooks_api.c: the API methods; spec.c: endpoints and routes from
 * configuration or JSON).
 *
 * Locks: mu guards everything below it in struct hooks (endpoints, routes,
 * the store); the thread holds it while it works and API calls take it. in_mu
 * guards only the inbox and the wakeup: the engine and sender threads post
 * there and must never wait for a store write. Order: mu, then in_mu. */
#ifndef PL_HOOKS_INT_H
#define PL_HOOKS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "hooks/hooks.h"
#include "hooks/hstore.h"
#include "hooks/redact.h"
#include "hooks/retry.h"
#include "hooks/rule.h"
#include "hooks/sender.h"
#include "hooks/sign.h"
#include "hooks/ssrf.h"
#include "util/map.h"

#define HK_READ_ENTRIES 512 /* log entries read per ENGINE_EVENTS request */
#define HK_MAX_CHAIN 8      /* routes a pub may pass through (loop protection) */
#define HK_CHAIN_HEADER "parley-route"
#define HK_TICK_MS 1000
#define HK_METRICS_EVERY_MS 200
#define HK_ATTEMPTS_BATCH 512
#define HK_ATTEMPTS_WAIT_MS 20
#define HK_TRIM_AFTER_MS (7LL * 24 * 3600 * 1000) /* delivered deliveries kept a week */

/* System channels ($sys:...) a route may read; only a route whose channel
 * glob starts with '$' sees them, never a catch-all. */
#define HK_SYS_CLIENTS 1u  /* $sys:clients (lifecycle) */
#define HK_SYS_PRESENCE 2u /* $sys:presence (lifecycle) */
#define HK_SYS_WEBHOOKS 4u /* $sys:webhooks (endpoint state changes) */

/* Endpoint state changes, counted and published on $sys:webhooks. */
enum hk_op_event {
    HK_EV_DISABLED,
    HK_EV_ENABLED,
    HK_EV_FAILING_24H,
    HK_EV_FAILING_72H,
    HK_EV_RECOVERED,
    HK_EV__COUNT
};

typedef struct hk_endpoint hk_endpoint;

/* A pending delivery in memory (the store has it too). */
typedef struct hk_dlv {
    struct hk_dlv *prev, *next; /* the endpoint's pending list, in creation order */
    hk_endpoint *ep;
    char *id, *rule, *channel, *pub_id, *correlation_id, *okey;
    uint64_t offset;
    uint32_t attempts;
    int64_t next_ms, created_ms;
    char *body;
    size_t body_len;
    bool in_flight;
    int64_t started_ms; /* of the attempt in flight */
} hk_dlv;

/* An endpoint: its definition, keys, policy, health and queue. */
struct hk_endpoint {
    hooks *owner;
    cfg_webhook def; /* owned strings (spec.c builds and frees it) */
    bool from_api;   /* created through the API (stored in hooks.db) */
    bool deleted;    /* deleted while attempts were in flight: freed when they end */
    sign_key **keys; /* def.secrets parsed, same order */
    retry_policy policy;
    endpoint_health health;
    hk_dlv *head, *tail; /* pending, creation order */
    size_t pending, in_flight;
    int64_t throttle_until; /* unix ms: a 429/5xx asked to wait */
    double tokens;          /* rate limit bucket */
    int64_t tokens_ms;
    /* metrics */
    uint64_t delivered, failed_attempts, dead, aborted;
    uint64_t lat_hist[12]; /* attempt latency buckets (ms):
                              5,10,25,50,100,250,500,1000,2500,5000,10000,+Inf */
    double lat_sum_s;
};

typedef struct hk_route {
    char *tenant, *id;
    char *match_json; /* as given */
    rule_match *match;
    char *webhook; /* action: endpoint id, or NULL */
    char *publish; /* action: channel, or NULL */
    bool enabled, from_api;
    unsigned sys; /* HK_SYS_* channels its `channel` globs name explicitly */
    uint64_t pos; /* the committed log up to here is evaluated */
    uint64_t matched, published, missed;
} hk_route;

/* A delivery a router batch creates, with the strings it owns. */
typedef struct hk_newd {
    hstore_delivery d; /* its strings are the copies below: the batch outlives the pubs */
    hk_endpoint *ep;
    char *id, *okey, *body, *rule, *channel, *pub_id, *correlation_id;
} hk_newd;

/* The router's batch: deliveries waiting for the batch's publishes. */
typedef struct hk_batch {
    hk_newd *d;
    size_t n, cap;
    size_t pub_start; /* the deliveries of the pub being routed start here */
    uint64_t last_seq;
} hk_batch;

/* Something another thread handed to the hooks thread. */
typedef struct hk_msg {
    struct hk_msg *next;
    int kind; /* HK_MSG_* */
    engine_req *req;
    hk_dlv *dlv;
    int status;
    int64_t latency_us;
    char *error;
    char *retry_after;
    char *delivery_hdr;
    char *body;
    size_t body_len;
} hk_msg;

enum { HK_MSG_EVENTS = 1, HK_MSG_RESULT, HK_MSG_PUBLISHED };

struct hooks {
    hooks_env env;
    pthread_t thread;
    bool running;

    /* The metrics text, rendered by the thread at most every
     * HK_METRICS_EVERY_MS: a scrape (on a worker) never waits for mu, which
     * a routing batch or a store write holds. */
    pthread_mutex_t stats_mu;
    sbuf stats;
    int64_t stats_ms;

    pthread_mutex_t in_mu;
    pthread_cond_t in_cv;
    hk_msg *in_head, *in_tail;
    bool stopping;
    /* hooks_poke since the thread last looked; set without in_mu when it
     * is already set (the engine pokes after every commit). */
    atomic_bool poke_flag;
    /* Mirrors reading for hooks_poke: while a log read is out its answer
     * wakes the thread, so a poke need not. */
    atomic_bool read_out;
    /* Attempt results of the sender's current round, posted together by
     * hk_results_flush (sender thread only). */
    hk_msg *res_head, *res_tail;

    pthread_mutex_t mu;
    hstore *store;
    sender *snd;
    ssrf_allowlist *allow;
    map redactions; /* namespace name -> redaction* (NULL values not stored) */
    hk_endpoint **eps;
    size_t neps;
    hk_route **routes;
    size_t nroutes;
    hk_endpoint **gone; /* deleted endpoints, freed at the end (batches may point at them) */
    size_t ngone;
    /* router */
    bool reading;          /* an ENGINE_EVENTS request is in flight */
    bool more;             /* the last read was full: read again */
    bool log_on;           /* engine_log_events was turned on */
    bool poked;            /* new commits may be in the log */
    uint64_t head;         /* newest log sequence number seen */
    uint64_t trimmed;      /* log entries up to here were trimmed */
    size_t publishes_out;  /* publish actions of the current batch not answered */
    int publish_failed;    /* one of them failed: the batch is read again */
    hk_batch cur;          /* the batch being routed */
    int64_t retry_read_ms; /* a failed batch is read again from here on */
    /* dispatcher */
    uint64_t rnd;
    int64_t next_wake_ms;
    hstore_attempt *att; /* attempts finished, not stored yet (hk_flush_attempts) */
    size_t natt, att_cap;
    int64_t att_first_ms; /* when the oldest of them finished */
    uint64_t events_missed, store_errors, deliveries_created, deduplicated, publishes_refused;
    uint64_t op_events[HK_EV__COUNT];
    unsigned sys_wanted; /* HK_SYS_* bits some enabled route names */
};

/* hooks.c */
void hk_post(hooks *h, hk_msg *m);
/* Posts the chain first..last (linked by next) with one wakeup. */
void hk_post_chain(hooks *h, hk_msg *first, hk_msg *last);
hk_endpoint *hk_endpoint_find(hooks *h, const char *tenant, const char *id);
hk_route *hk_route_find(hooks *h, const char *tenant, const char *id);
uint64_t hk_random(hooks *h);
/* Recomputes which system channels enabled routes read (after any route
 * change) and tells the protocol layer which lifecycle events to record. */
void hk_sys_update(hooks *h);
/* An endpoint state change: counted, logged, audited, and published on the
 * tenant's $sys:webhooks when a route reads it. */
void hk_op_event(hooks *h, const hk_endpoint *ep, enum hk_op_event ev, const char *reason);
/* router.c */
void hk_router_step(hooks *h, int64_t now);
void hk_router_on_events(hooks *h, engine_req *r, int64_t now);
void hk_router_on_published(hooks *h, int status);
uint64_t hk_router_min_pos(hooks *h);
void hk_router_release(hooks *h);
/* Turns the engine's log on once a route exists: before any pub the route
 * must see can commit (at start, before the workers; on a route's creation). */
void hk_router_log_on(hooks *h);
#define HK_POS_UNSET UINT64_MAX
/* dispatch.c */
void hk_dispatch(hooks *h, int64_t now);
void hk_on_result(hooks *h, hk_msg *m, int64_t now);
/* Stores the attempts recorded since the last call, once enough wait or
 * enough time passed (force: now; readers of the store force it first). */
void hk_flush_attempts(hooks *h, int64_t now, bool force);
/* Frees the attempts recorded (once stored). */
void hk_attempts_clear(hooks *h);
int hk_enqueue(hooks *h, hk_endpoint *ep, const hstore_delivery *d);
/* The same for a delivery a router batch made (s its stored form): its
 * strings move from x to the queue. */
int hk_enqueue_new(hooks *h, hk_newd *x, const hstore_delivery *s);
void hk_dlv_free(hk_dlv *d);
/* The sender's round callback: posts the round's results at once. */
void hk_results_flush(void *user);
void hk_endpoint_disable(hooks *h, hk_endpoint *ep, const char *why, int64_t now);
/* spec.c */
int hk_endpoint_new(hooks *h, const cfg_webhook *def, bool from_api, hk_endpoint **out, char *why,
                    size_t whylen);
void hk_endpoint_free(hk_endpoint *ep);
int hk_webhook_from_json(const json_t *spec, const char *tenant, cfg_webhook *out, char *why,
                         size_t whylen);
void hk_webhook_release(cfg_webhook *w);
int hk_webhook_to_json(const cfg_webhook *w, bool show_secrets, sbuf *out);
int hk_route_new(const char *tenant, const char *id, const char *match_json, const char *webhook,
                 const char *publish, bool enabled, hk_route **out, rule_error *rerr);
void hk_route_free(hk_route *r);
/* An API route spec {id, match, action: {webhook | publish}, enabled}; why
 * names the member at fault ("match.where...: reason" for the rule). */
int hk_route_from_json(const json_t *spec, const char *tenant, hk_route **out, char *why,
                       size_t whylen);

#endif
