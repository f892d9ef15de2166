/* Per-worker channel table and fan-out. A committed pub reaches every
 * worker once; here it is queued, as the shared frame, on each local
 * subscriber that is live and has not seen its offset yet (consecutive pubs
 * of a channel as one joined buffer for WebSocket subscribers). Subscribers
 * are reached only through their sink (broker/sink.h). A fanout belongs to
 * one worker thread.
 *
 * Subscription states (the protocol session drives the transitions):
 *
 *   RECOVERING --READ done, nothing more--> LIVE
 *   RECOVERING --READ done, more to stream--> CATCHUP --last page--> LIVE
 *
 * While not LIVE a subscription skips live pubs: the READ it waits for was
 * ordered by the engine after them, so nothing is missed or repeated. */
#ifndef PL_FANOUT_H
#define PL_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "broker/sink.h"
#include "delivery/delivery.h"
#include "engine/pub.h"
#include "obs/metrics.h"

typedef struct fanout fanout;

enum sub_state {
    SUB_RECOVERING, /* a READ is in flight; live pubs are skipped (the READ covers them) */
    SUB_CATCHUP,    /* streaming history pages; waits for the connection to drain */
    SUB_LIVE,
};

/* What a subscriber gets when the pushes queued to it pass the outbound
 * queue bound (the namespace's slow_consumer). */
enum fan_slow {
    FAN_SLOW_DISCONNECT,  /* closed with 4001; resumes by offset */
    FAN_SLOW_DROP_OLDEST, /* the channel's oldest queued pubs give way, named by a gap */
    FAN_SLOW_LATEST,      /* all the channel's queued pubs give way to the newest */
};

/* What fan-out sees of a subscription. The protocol session embeds it as the
 * first member of its own record and owns it; fanout_attach links it into the
 * channel until fanout_detach. */
typedef struct fanout_sub {
    pl_sink *out;         /* the subscriber's connection (borrowed) */
    const char *client;   /* the session's client id (borrowed) */
    const char *user;     /* the session's user (borrowed) */
    uint64_t last_offset; /* the newest offset the subscriber has been sent */
    void *_ch;            /* private to fanout: the channel */
    uint32_t _idx;        /* private to fanout: position in the channel */
    uint8_t state;        /* enum sub_state */
    uint8_t policy;       /* enum fan_slow, set before fanout_attach */
    sink_gap _gap;        /* private to fanout: the policy's last gap (released by fanout_detach) */
} fanout_sub;

/* What a fanout is built from; everything is borrowed for its lifetime. */
typedef struct fanout_env {
    delivery *dlv;          /* told of every guaranteed pub written; may be NULL */
    metrics_shard *metrics; /* the worker's */
    pub_encode_fn encode;   /* makes a pub's push frame on first use */
    size_t shed_above;      /* ephemeral pubs skip a subscriber with more bytes queued */
    size_t queue_bound;     /* pushes a subscriber may have queued (limits.outbound_queue_bytes) */
    /* 1 if the connection (the owner given to fanout_user_add) has a live
     * subscription to channel: user-addressed pubs skip it (it gets them
     * through the channel). */
    int (*subscribed)(void *owner, const char *channel);
} fanout_env;

/* NULL when out of memory. */
fanout *fanout_new(const fanout_env *env);
/* Frees the tables; subscriptions and users must all be detached. */
void fanout_free(fanout *f);

/* Links s into the channel tenant/channel (creating it). 0 or -1 (out of
 * memory, nothing linked). */
int fanout_attach(fanout *f, fanout_sub *s, const char *tenant, const char *channel);
/* Unlinks s (no-op when not linked) and releases its policy's gap; an
 * empty channel is freed. */
void fanout_detach(fanout *f, fanout_sub *s);
/* Subscriptions linked on this worker, all channels. */
size_t fanout_subs(const fanout *f);

/* The most pubs a worker hands fanout_pubs at once, and so the longest run
 * joined into one buffer (commits of the engine are usually shorter). */
#define FANOUT_RUN_MAX 128
/* Fans out n pubs in the order given (a worker's inbox drain). Runs of pubs
 * of one channel go to each caught-up WebSocket subscriber as one shared
 * buffer, one queue item, instead of one item per pub. Borrows the pubs. */
void fanout_pubs(fanout *f, pl_pub *const *pubs, size_t n);
/* A stored pub that could not reach this worker: every subscriber of its
 * channel here is closed with 4002 (it resumes by offset), so none of them
 * misses it silently. Returns how many were closed. */
size_t fanout_lost(fanout *f, const pl_pub *pub);
/* Closes every subscriber on this worker with 4002 (pubs were lost and which
 * ones is not known). Returns how many connections were closed. */
size_t fanout_lost_all(fanout *f);

/* Registers a connection under its user, for pushes to all of a user's
 * devices; owner is what env->subscribed is asked about. 0 or -1. */
int fanout_user_add(fanout *f, pl_sink *out, void *owner, const char *tenant, const char *user);
void fanout_user_del(fanout *f, pl_sink *out, const char *tenant, const char *user);
/* Calls fn for each of this worker's connections of the user (fn may close
 * the connection but must not free it). */
void fanout_user_each(fanout *f, const char *tenant, const char *user,
                      void (*fn)(pl_sink *out, void *owner, void *arg), void *arg);

#endif
