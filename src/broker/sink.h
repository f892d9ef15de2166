/* A subscriber's way out: the interface through which fan-out and the
 * protocol session write to a client connection without knowing what it is.
 * net/conn.c implements it for WebSocket and SSE connections; unit tests
 * implement it with a recording fake. A sink belongs to one worker thread. */
#ifndef PL_SINK_H
#define PL_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "engine/pub.h"
#include "util/rbuf.h"

/* What a queued item holds. Every item carries one reference. */
enum out_kind {
    OUT_PUB,   /* pl_pub*: its shared frame; SSE adds an id line */
    OUT_JSON,  /* rbuf* holding one JSON object (reply or push) */
    OUT_GAP,   /* rbuf* holding a gap push (an event named gap on SSE) */
    OUT_RAW,   /* rbuf* written as is (HTTP responses, WebSocket control frames) */
    OUT_PUBS,  /* rbuf* holding several pub frames joined by '\n' (WebSocket only) */
    OUT_REPLY, /* rbuf* holding replies to the client's own commands (JSON, joined by '\n') */
};

enum sink_kind {
    SINK_NONE, /* not upgraded yet */
    SINK_WS,   /* WebSocket: takes joined runs of pubs (OUT_PUBS) */
    SINK_SSE,  /* Server-Sent Events */
};

typedef struct pl_sink pl_sink;

/* Replies stay below the queue bound by backpressure, not by cutting; a
 * connection whose queue still reaches this many times the bound (replies
 * of pipelined reads already in storage when reading paused) is cut. */
#define SINK_HARD_CAP_FACTOR 4

/* The gap push a sink placed for one subscription's dropped pubs (see
 * drop_pubs). The caller keeps it between calls, zeroed at first, and
 * releases `item` with rbuf_unref when the subscription goes. */
typedef struct sink_gap {
    rbuf *item;        /* the gap push queued last (one reference), or NULL */
    uint64_t from, to; /* the offsets it names */
} sink_gap;

typedef struct sink_ops {
    /* Queues an item, taking the reference in ref. 0, or -1 when it was
     * dropped: the sink is closing, out of memory, or past its queue bound
     * (it is then being closed with 4001 and the client resumes by offset). */
    int (*enqueue)(pl_sink *s, enum out_kind kind, void *ref, size_t len);
    /* Queues a pub (takes its own reference), encoding its frame if nobody
     * has. -1 as enqueue, or when the frame cannot be made (the sink is then
     * closed with 4002, so the client recovers the pub by reconnecting). */
    int (*enqueue_pub)(pl_sink *s, pl_pub *p);
    /* Queues a copy of one JSON push. 0 or -1. */
    int (*send_json)(pl_sink *s, const char *json, size_t len);
    /* Queues a copy of one reply to the client's own command. Replies are
     * counted in `replies` and never cut the connection as a slow consumer
     * (the session bounds them by pausing reads) up to a hard cap of
     * SINK_HARD_CAP_FACTOR times the queue bound. 0 or -1. */
    int (*send_reply)(pl_sink *s, const char *json, size_t len);
    /* Stops (on = 0) or resumes (on = 1) reading the client's input: TCP
     * backpressure on a client whose commands outrun their answers. NULL:
     * nothing to pause (fakes). */
    void (*reading)(pl_sink *s, int on);
    /* Makes room for like, a stored pub of a subscription whose
     * slow-consumer policy drops instead of disconnecting: drops queued (not
     * being written) OUT_PUB items of like's tenant and channel, oldest
     * first, until the pushes have need bytes less (all = 1: every one of
     * them), and puts a gap push naming the dropped offsets where the first
     * of them was (or widens g's gap when that is still queued: one gap per
     * channel, never a queue of gaps), so the client sees the gap before the
     * newer pubs, in offset order. When dropping every queued pub of the
     * channel does not free need bytes, like is named by the gap too.
     * Returns the pubs dropped (like included), and sets *skip when like was
     * named (the caller then does not queue it); -1 when nothing was dropped
     * or out of memory (the caller queues like and the usual 4001 applies).
     * NULL: the sink never drops (then every policy disconnects). */
    int (*drop_pubs)(pl_sink *s, const pl_pub *like, size_t need, int all, sink_gap *g, int *skip);
    /* Starts closing with a close code and reason, after what is queued. */
    void (*close)(pl_sink *s, uint16_t code, const char *reason);
    /* Writes the peer's address ("192.0.2.7", "::1") into out; "" when
     * unknown. NULL: never known (fakes). For logs. */
    void (*peer)(pl_sink *s, char *out, size_t cap);
} sink_ops;

struct pl_sink {
    const sink_ops *ops;
    size_t queued;       /* bytes queued and being written, kept by the implementation */
    size_t replies;      /* of which replies (OUT_REPLY), kept by the implementation */
    uint64_t id;         /* the connection's id, unique in the server */
    uint8_t kind;        /* enum sink_kind */
    uint8_t closing;     /* closing was decided: the connection takes no more commands */
    uint8_t closed;      /* gone: nothing more is written */
    uint16_t close_code; /* the code it closed with (sent, or the peer's); 0: none */
    uint16_t peer_port;  /* the peer's TCP port, kept by the implementation; 0: unknown */
};

static inline int sink_enqueue(pl_sink *s, enum out_kind kind, void *ref, size_t len)
{
    return s->ops->enqueue(s, kind, ref, len);
}

static inline int sink_enqueue_pub(pl_sink *s, pl_pub *p)
{
    return s->ops->enqueue_pub(s, p);
}

static inline int sink_send_json(pl_sink *s, const char *json, size_t len)
{
    return s->ops->send_json(s, json, len);
}

static inline int sink_send_reply(pl_sink *s, const char *json, size_t len)
{
    return s->ops->send_reply(s, json, len);
}

static inline void sink_reading(pl_sink *s, int on)
{
    if (s->ops->reading) s->ops->reading(s, on);
}

static inline int sink_drop_pubs(pl_sink *s, const pl_pub *like, size_t need, int all, sink_gap *g,
                                 int *skip)
{
    *skip = 0;
    return s->ops->drop_pubs ? s->ops->drop_pubs(s, like, need, all, g, skip) : -1;
}

static inline void sink_close(pl_sink *s, uint16_t code, const char *reason)
{
    s->ops->close(s, code, reason);
}

static inline void sink_peer(pl_sink *s, char *out, size_t cap)
{
    if (cap) out[0] = '\0';
    if (s->ops->peer) s->ops->peer(s, out, cap);
}

#endif
