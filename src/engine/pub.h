/* A pub: one published message with everything the wire and the store need.
 * Immutable once handed to another thread; shared by reference count between
 * the engine's ring, worker inboxes and connection queues. The encoded push
 * frame is made on first use (pub_frame), so a pub nobody reads is never
 * encoded. */
#ifndef PL_PUB_H
#define PL_PUB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config/vocab.h"
#include "util/rbuf.h"

#define PUB_ID_LEN 26
#define PUB_EPOCH_LEN 8

typedef struct pl_pub {
    atomic_int refs;
    uint64_t offset; /* 1.. per channel; 0 for ephemeral and before commit */
    int64_t ts_ms;
    int64_t created_us; /* monotonic time of pub_new (latency metrics); 0 if loaded */
    pub_class cls;
    uint8_t skip_origin; /* signal pushes (typing, join): not to the connection `client` */
    uint8_t to_user;     /* read push: also to the user's connections not subscribed */
    char id[PUB_ID_LEN + 1];
    char epoch[PUB_EPOCH_LEN + 1];
    /* All strings below are NUL-terminated and live in the same allocation.
     * Optional ones are NULL when absent. */
    const char *tenant;
    const char *channel;
    const char *data; /* raw JSON value, never re-serialized */
    size_t data_len;
    const char *user;
    const char *client;
    const char *type;
    const char *correlation_id;
    const char *headers; /* raw JSON object */
    const char *idem_key;
    _Atomic(rbuf *) frame;   /* encoded push, owned; NULL until pub_frame */
    _Atomic uint32_t fanout; /* connections it was queued to (trace) */
} pl_pub;

/* Field values for pub_new; lengths of NULL fields are ignored. */
typedef struct pub_fields {
    const char *tenant;
    size_t tenant_len;
    const char *channel;
    size_t channel_len;
    const char *data;
    size_t data_len;
    const char *user;
    size_t user_len;
    const char *client;
    size_t client_len;
    const char *type;
    size_t type_len;
    const char *correlation_id;
    size_t correlation_id_len;
    const char *headers;
    size_t headers_len;
    const char *idem_key;
    size_t idem_key_len;
    /* The caller's readings of the wall (ms) and monotonic (us) clocks, when
     * it has them; 0 = read the clocks. */
    int64_t now_ms;
    int64_t now_us;
} pub_fields;

/* Copies the fields into one allocation; returns a pub with one reference,
 * offset 0 and ts = now, or NULL on allocation failure. An ephemeral pub has
 * a fresh id (carrying the same time); a stored one has an empty id until
 * the engine stages it (seg_pub_id, or a fresh one where that cannot). */
pl_pub *pub_new(const pub_fields *f, pub_class cls);
pl_pub *pub_ref(pl_pub *p);
/* Drops a reference; frees the pub and its frame on the last. NULL ok. */
void pub_unref(pl_pub *p);
/* Builds a committed pub's push frame (one reference); NULL on allocation
 * failure. Reads only the pub's immutable fields. */
typedef rbuf *(*pub_encode_fn)(const pl_pub *p);
/* Returns the pub's push frame, made with encode on the first call. Any thread
 * may call it once the pub is committed (offset, epoch, ts and id are final):
 * first calls that race each encode, one frame is kept and the others freed.
 * Borrowed for as long as the caller holds a reference to the pub; NULL if
 * encoding failed (a later call tries again). */
const rbuf *pub_frame(pl_pub *p, pub_encode_fn encode);
/* The frame a pub_frame call already made, or NULL. */
static inline const rbuf *pub_frame_peek(pl_pub *p)
{
    return atomic_load_explicit(&p->frame, memory_order_acquire);
}
/* Attaches a frame (takes the caller's reference), replacing any. Only before
 * the pub is shared with another thread. */
void pub_set_frame(pl_pub *p, rbuf *frame);

#endif
