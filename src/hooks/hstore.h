/* The webhook store: hooks.db beside parley.db, holding what outbound
 * webhooks and routing rules must not forget across a crash: each rule's
 * position in the committed log, every delivery with its state and signed
 * body, every attempt, endpoint health, and the endpoints and routes created
 * through the API. A database of its own so that webhook bookkeeping never
 * shares the storage thread or a commit with publishes.
 *
 * Threading: not thread-safe. The owner (hooks/hooks.c) serializes every
 * call with its own lock. Every write is one fsynced transaction (WAL,
 * synchronous=FULL): when a call returns PL_OK its changes are durable.
 * Strings passed in are borrowed for the call; strings handed to callbacks
 * are valid only during the callback. */
#ifndef PL_HSTORE_H
#define PL_HSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "hooks/retry.h"
#include "util/sbuf.h"

typedef struct hstore hstore;

/* Delivery states. Pending deliveries are retried; the others are final
 * except that replay and recover make dead and aborted ones pending again. */
enum hstore_state {
    HSTORE_PENDING = 0,   /* waiting for its next attempt (next_ms) */
    HSTORE_DELIVERED = 1, /* a 2xx answer */
    HSTORE_DEAD = 2,      /* attempts exhausted, or the endpoint was disabled or deleted */
    HSTORE_ABORTED = 3,   /* the receiver answered webhook-delivery: abort-message */
};

/* "pending", "delivered", "dead", "aborted"; "?" otherwise. Static. */
const char *hstore_state_name(int state);

/* One delivery: a pub (or event) bound for one endpoint. */
typedef struct hstore_delivery {
    const char *id; /* unique; the webhook-id header, stable across retries */
    const char *tenant;
    const char *endpoint; /* the endpoint's id within the tenant */
    const char *rule;     /* the route that created it; NULL for none (a test send) */
    const char *channel;
    uint64_t offset;
    const char *pub_id;
    const char *correlation_id; /* NULL: none */
    const char *okey;           /* ordering key; NULL: unordered */
    int state;                  /* enum hstore_state */
    uint32_t attempts;          /* attempts made so far */
    int64_t next_ms;            /* pending: unix ms of the next attempt */
    int64_t created_ms;
    int64_t updated_ms;
    int last_status;        /* the last attempt's HTTP status, 0: none */
    const char *last_error; /* the last attempt's error; NULL: none */
    const char *body;       /* the request body (the envelope), exactly as signed and sent */
    size_t body_len;
} hstore_delivery;

/* A routing rule's position: every committed log entry with a sequence
 * number <= seq has been evaluated against it. */
typedef struct hstore_position {
    const char *tenant;
    const char *rule;
    uint64_t seq;
} hstore_position;

/* One attempt's outcome, with the delivery's state after it. */
typedef struct hstore_attempt {
    const char *delivery; /* the delivery's id */
    uint32_t attempt;     /* 1-based */
    int64_t ts_ms;        /* when it started */
    int status;           /* HTTP status, 0 without an answer */
    int64_t latency_us;
    const char *headers; /* the response headers as a JSON object text, or NULL */
    const char *body;    /* the first 4 KiB of the response body, or NULL */
    size_t body_len;
    const char *error; /* NULL or "" when answered */
    /* The delivery after this attempt. */
    int state;
    int64_t next_ms;
} hstore_attempt;

/* Opens (creating) data_dir/hooks.db (mode 0600: it holds endpoint
 * secrets). data_dir must exist. PL_OK with *out, or PL_EIO / PL_ENOMEM
 * with a message in err. */
int hstore_open(const char *data_dir, hstore **out, char *err, size_t errlen);
/* NULL ok. */
void hstore_close(hstore *s);

/* ---- positions and new deliveries ---------------------------------------- */

/* Calls fn for each stored position. PL_OK or PL_EIO (fn's nonzero return
 * stops the walk and is returned). */
int hstore_positions_load(hstore *s, int (*fn)(void *ctx, const hstore_position *p), void *ctx);
/* One transaction: inserts the deliveries whose id is not stored yet
 * (a delivery created twice is kept once: inserted[i] is 1 for those
 * inserted, 0 for those already there; inserted may be NULL), and sets the
 * positions (inserted or replaced). PL_OK, or PL_EIO with nothing changed. */
int hstore_route_commit(hstore *s, const hstore_delivery *d, size_t n, int *inserted,
                        const hstore_position *pos, size_t npos);
/* The same, with the attempts a[0..na) applied first (as
 * hstore_attempts_commit) in the same transaction: the hooks thread stores
 * the attempts that wait beside a routing batch, one commit (and one
 * fsync) instead of two. PL_OK, or PL_EIO with nothing changed. */
int hstore_route_commit_with(hstore *s, const hstore_attempt *a, size_t na,
                             const hstore_delivery *d, size_t n, int *inserted,
                             const hstore_position *pos, size_t npos);
/* Removes a rule's position (the rule was deleted). */
int hstore_position_delete(hstore *s, const char *tenant, const char *rule);

/* ---- delivery progress --------------------------------------------------- */

/* Calls fn for every pending delivery, oldest created first (with body).
 * Used at start. */
int hstore_pending_load(hstore *s, int (*fn)(void *ctx, const hstore_delivery *d), void *ctx);
/* One transaction: inserts each attempt into the attempt log and moves its
 * delivery to the attempt's state (attempts = attempt, next_ms, updated_ms
 * = ts_ms, last_status, last_error). An attempt whose delivery is not
 * stored (trimmed) is skipped; at most 4 KiB of a response body is kept.
 * PL_OK or PL_EIO with nothing changed. */
int hstore_attempts_commit(hstore *s, const hstore_attempt *a, size_t n);
/* One delivery (with body) by tenant and id; fn is called once when found.
 * PL_OK, PL_ENOTFOUND or PL_EIO. */
int hstore_delivery_get(hstore *s, const char *tenant, const char *id,
                        int (*fn)(void *ctx, const hstore_delivery *d), void *ctx);
/* Makes a dead or aborted delivery pending again at next_ms (attempts
 * restart from 0: a replay gets the whole schedule). PL_OK, PL_ENOTFOUND
 * (no such delivery of the tenant) or PL_ECONFLICT (it is pending or
 * delivered), PL_EIO. */
int hstore_delivery_requeue(hstore *s, const char *tenant, const char *id, int64_t next_ms);
/* Marks every pending delivery of an endpoint dead with error why (the
 * endpoint was disabled or deleted); *count gets how many. */
int hstore_endpoint_kill(hstore *s, const char *tenant, const char *endpoint, const char *why,
                         int64_t now_ms, uint64_t *count);

/* ---- queries (JSON answers for the API) ---------------------------------- */

/* Appends {"attempts":[{"attempt","ts","status","latency_ms","headers",
 * "body","error"}...],"more":bool} for one delivery, attempts after `after`
 * (0 = from the first), at most limit. "attempt" numbers the delivery's log
 * 1, 2, ... and goes on across a requeue (whose attempts restart the
 * schedule at 1), so that `after` pages without repeats. PL_ENOTFOUND when
 * the tenant has no such delivery. */
int hstore_attempts_json(hstore *s, const char *tenant, const char *delivery, uint32_t after,
                         uint32_t limit, sbuf *out);
/* Appends a JSON array of the deliveries of a pub (by pub id, within the
 * tenant), each {"id","endpoint","rule","state","attempts","last_status",
 * "last_error","attempt_log":[...as above, the first 20]}, oldest first;
 * [] when there are none. */
int hstore_pub_deliveries_json(hstore *s, const char *tenant, const char *pub_id, sbuf *out);
/* The deliveries of an endpoint created in [since_ms, until_ms) (until 0 =
 * no bound) whose state is dead or aborted, oldest first, at most limit:
 * fn gets each (without body). For webhooks.recover. */
int hstore_failed_in_window(hstore *s, const char *tenant, const char *endpoint, int64_t since_ms,
                            int64_t until_ms, size_t limit,
                            int (*fn)(void *ctx, const hstore_delivery *d), void *ctx);
/* Counts an endpoint's deliveries by state (out[enum hstore_state]). */
int hstore_endpoint_counts(hstore *s, const char *tenant, const char *endpoint, uint64_t out[4]);

/* ---- endpoints and routes created through the API ------------------------ */

enum hstore_kind { HSTORE_ENDPOINT = 0, HSTORE_ROUTE = 1 };

/* Stores (inserts or replaces) the JSON text spec of an endpoint or route. */
int hstore_spec_put(hstore *s, int kind, const char *tenant, const char *id, const char *spec);
/* PL_OK or PL_ENOTFOUND. */
int hstore_spec_delete(hstore *s, int kind, const char *tenant, const char *id);
/* Calls fn for each stored spec of a kind, in creation order. */
int hstore_spec_load(hstore *s, int kind,
                     int (*fn)(void *ctx, const char *tenant, const char *id, const char *spec),
                     void *ctx);

/* ---- endpoint health ------------------------------------------------------ */

int hstore_health_put(hstore *s, const char *tenant, const char *endpoint,
                      const endpoint_health *h);
/* Calls fn for each stored health record. */
int hstore_health_load(hstore *s,
                       int (*fn)(void *ctx, const char *tenant, const char *endpoint,
                                 const endpoint_health *h),
                       void *ctx);
int hstore_health_delete(hstore *s, const char *tenant, const char *endpoint);

/* ---- housekeeping ---------------------------------------------------------- */

/* Deletes delivered deliveries (and their attempts) updated before
 * before_ms; *count gets how many. */
int hstore_trim(hstore *s, int64_t before_ms, uint64_t *count);

#endif
