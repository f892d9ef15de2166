/* Abuse limits: token buckets (publishes, commands, API calls) and keyed
 * connection counters, shared by every worker thread. Bucket arithmetic is in
 * integer micro-tokens, so no rounding ever drifts in the client's favour; a
 * keyed table is sharded over RL_SHARDS mutexes and stays bounded in memory
 * by dropping buckets that have refilled (indistinguishable from new ones). */
#ifndef PL_RATELIMIT_H
#define PL_RATELIMIT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Largest rate (tokens/s) and burst accepted; larger values are clamped so the
 * micro-token arithmetic cannot overflow. */
#define RL_MAX_RATE 1000000000ULL
#define RL_MAX_BURST 1000000000ULL
/* A clock step backwards larger than this rebases the bucket instead of
 * freezing it until the clock catches up (see rl_take). */
#define RL_BACKSTEP_US 1000000LL
/* rl_take's answer when n exceeds the burst: no wait will ever admit it. */
#define RL_NEVER INT64_MAX

/* One token bucket. Plain value type, not thread-safe: a per-connection
 * bucket lives in its connection; shared keys go through rl_table. */
typedef struct rl_bucket {
    uint64_t rate;   /* tokens per second; 0 = unlimited */
    uint64_t burst;  /* capacity in tokens, >= 1 when rate > 0 */
    uint64_t _level; /* micro-tokens currently held, <= burst * 1e6 */
    int64_t _last;   /* time (us) up to which refill has been credited */
} rl_bucket;

/* Sets up a full bucket. burst 0 means one second's worth (at least 1). */
void rl_bucket_init(rl_bucket *b, uint64_t rate, uint64_t burst, int64_t now_us);
/* Changes the limits in place, keeping the current level (clamped to the new
 * burst). A bucket that becomes unlimited and limited again starts full. */
void rl_bucket_set(rl_bucket *b, uint64_t rate, uint64_t burst, int64_t now_us);
/* Takes n tokens at time now_us (any clock in microseconds; a monotonic one
 * is best). Returns 0 when admitted (the tokens are consumed), otherwise the
 * number of milliseconds (>= 1) after which n tokens will be there - the
 * `retry_after` of error 111 - and consumes nothing; RL_NEVER if n > burst.
 * Time going backwards credits nothing: small steps (threads reading the
 * clock before taking a lock) wait until the clock passes the newest time
 * seen; a step back of more than RL_BACKSTEP_US restarts counting from now. */
int64_t rl_take(rl_bucket *b, int64_t now_us, uint64_t n);
/* 1 when the bucket is full at now_us (it could be dropped and recreated
 * with no observable difference), else 0. Unlimited buckets are always full. */
int rl_bucket_full(const rl_bucket *b, int64_t now_us);

/* ---- backlog of refused requests -------------------------------------- */

/* Spreads out the comebacks of requests a bucket refused. The bucket's own
 * wait is the same for everyone refused in one instant (the next token), so
 * a crowd told only that would all come back together and mostly be refused
 * again; the backlog instead hands each refused request its own slot, 1/rate
 * apart, after the slots already handed out: the crowd returns at the rate
 * the bucket admits. Thread-safe (one atomic); zero-initialize it. */
typedef struct rl_backlog {
    _Atomic int64_t _next_us; /* start of the first free slot */
} rl_backlog;

/* The retry_after (ms, >= 1) for one refused request at now_us: the next
 * free slot, no earlier than the bucket's wait_ms (rl_take's answer), plus a
 * jitter inside the slot taken from seed (any per-request value, hashed
 * here), so that requests do not land on the slot's edge together. The slot
 * is taken. Past max_ms no slot is taken and about max_ms is returned
 * (jittered over one slot): the backlog is longer than anyone should wait.
 * rate 0 answers wait_ms. */
int64_t rl_backlog_slot(rl_backlog *q, uint64_t rate, int64_t wait_ms, int64_t now_us,
                        int64_t max_ms, uint64_t seed);

/* ---- keyed table ------------------------------------------------------- */

#define RL_SHARDS 64
/* Default bound on buckets kept by a table (rl_table_new(0)). */
#define RL_DEFAULT_MAX_ENTRIES 1000000

/* Buckets and connection counters by string key ("user:acme/alice",
 * "tenant:acme", "ip:127.0.0.1", "key:<api key id>"). Thread-safe. */
typedef struct rl_table rl_table;

/* Returns a new table holding at most max_entries buckets (0 = default;
 * the bound is enforced per shard, so it is rounded up to a multiple of
 * RL_SHARDS), or NULL on allocation failure. The caller frees it with rl_table_free. */
rl_table *rl_table_new(size_t max_entries);
void rl_table_free(rl_table *t);

/* rl_take on the bucket of key (created full on first use). rate and burst
 * are given on every call so a config reload applies at once; rate 0 admits
 * without touching the table. Returns as rl_take; when the bucket cannot be
 * allocated the request is admitted (fail open: a limiter must not turn
 * memory pressure into an outage) and 0 is returned. The key is copied.
 * When the table is at its bound, the least recently used bucket is dropped
 * (that key's next request sees a full bucket): size the bound well above
 * the number of keys live within one refill period. */
int64_t rl_table_take(rl_table *t, const char *key, uint64_t rate, uint64_t burst, int64_t now_us,
                      uint64_t n);

/* Counts one more live connection for key unless max (> 0) are already
 * counted. max 0 = unlimited but still counted, so every successful acquire
 * is paired with one rl_conn_release. Returns 0, -1 at the limit, or
 * PL_ENOMEM. Counters are never evicted; they vanish when they reach 0. */
int rl_conn_acquire(rl_table *t, const char *key, uint32_t max);
/* Forgets one connection of key; a key with no count is ignored. */
void rl_conn_release(rl_table *t, const char *key);
/* Current connection count of key (for metrics and tests). */
uint32_t rl_conn_count(rl_table *t, const char *key);

/* Drops every bucket that is full at now_us, in all shards, and returns how
 * many went. Lazy eviction only cleans a shard when traffic reaches it; a
 * periodic sweep (say every few seconds from a timer) returns the memory of
 * shards that went quiet. */
size_t rl_table_sweep(rl_table *t, int64_t now_us);
/* Buckets currently held (all shards; approximate while others run). */
size_t rl_table_size(rl_table *t);

#endif
