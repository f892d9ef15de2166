/* A worker's inbox: what other threads hand a worker (committed pubs,
 * answered storage requests, calls to run on every worker), in order, under
 * one mutex. Posting never drops a message silently: when the queue cannot
 * grow, the message goes to a reserve allocated up front, and when that is
 * full too the inbox says so (lost_all), so the worker can close the
 * subscribers that would otherwise miss a pub without knowing it.
 *
 * The engine thread stages the messages of one commit per worker in an
 * inbox_stage and posts them with one lock; the stage keeps their order even
 * when it cannot grow. */
#ifndef PL_INBOX_H
#define PL_INBOX_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

enum inbox_type { INBOX_PUB, INBOX_DONE, INBOX_CALL };

typedef struct inbox_msg {
    uint32_t type; /* enum inbox_type */
    void *ptr;     /* pl_pub*, engine_req* or worker call, owned by the message */
} inbox_msg;

/* Messages kept aside when the queue could not grow. */
#define INBOX_RESERVE 256

typedef struct inbox {
    pthread_mutex_t lock;
    inbox_msg *q, *spare; /* spare: the array the last take handed out, for reuse */
    size_t len, cap, spare_cap;
    inbox_msg *reserve; /* INBOX_RESERVE slots, allocated by inbox_init */
    size_t nreserve;
    int lost_all; /* a message was dropped: the reserve was full too */
} inbox;

/* What inbox_take hands the worker. msgs and reserve stay owned by the inbox
 * (valid until the next take); the messages themselves are the worker's. */
typedef struct inbox_batch {
    inbox_msg *msgs;
    size_t n;
    inbox_msg reserve[INBOX_RESERVE]; /* copied out: handled before msgs */
    size_t nreserve;
    int lost_all; /* some message was dropped (and released) */
} inbox_batch;

/* 0, or -1 when the reserve cannot be allocated. */
int inbox_init(inbox *ib);
/* Releases every message left (drop is called for each) and the arrays. */
void inbox_release(inbox *ib, void (*drop)(inbox_msg m));
/* Appends n messages, taking them. A message that finds no room is kept in
 * the reserve, or, with the reserve full, released with drop and counted in
 * lost_all. Any thread. */
void inbox_post(inbox *ib, const inbox_msg *msgs, size_t n, void (*drop)(inbox_msg m));
/* Takes everything posted so far into out (the worker's thread only). */
void inbox_take(inbox *ib, inbox_batch *out);

/* The engine thread's staging vector for one worker. */
typedef struct inbox_stage {
    inbox_msg *v;
    size_t len, cap;
    int posted; /* something went to the inbox directly since the last flush */
} inbox_stage;

/* Stages m for ib. When the stage cannot grow, what it holds is posted first
 * and m after it, so the order is kept. */
void inbox_stage_push(inbox_stage *st, inbox *ib, inbox_msg m, void (*drop)(inbox_msg m));
/* Posts what is staged; returns whether anything was posted since the last
 * flush (the worker then needs a wakeup). */
int inbox_stage_flush(inbox_stage *st, inbox *ib, void (*drop)(inbox_msg m));
void inbox_stage_release(inbox_stage *st);

#endif
