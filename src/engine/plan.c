/* Read planning and epochs, shared by the engines; see plan.h. */
#include "engine/plan.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "util/clock.h"

/* Picks the newest `limit` retained offsets into [*lo, *hi]. */
static void newest(uint64_t head, uint64_t ef, uint32_t limit, uint64_t *lo, uint64_t *hi)
{
    if (!limit || ef > head) return;
    *hi = head;
    *lo = head - ef + 1 > limit ? head - limit + 1 : ef;
}

void engine_plan_read(engine_req *r, uint64_t first, const char *epoch, uint64_t *lo, uint64_t *hi)
{
    uint64_t head = r->head, since = r->since_offset;
    uint64_t ef = first ? first : head + 1; /* first retained, or past head */
    *lo = 1;
    *hi = 0;
    r->first = first;
    snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
    r->recovered = 0;
    r->more = 0;
    if (r->mode == ENGINE_READ_CURSORS) return; /* the engine reads them */
    if (r->mode == ENGINE_READ_RECOVER) {
        int epoch_ok =
            !strcmp(r->since_epoch, "*") || !strncmp(r->since_epoch, epoch, sizeof(r->since_epoch));
        if (r->has_since && epoch_ok && since <= head && (since == head || since + 1 >= ef)) {
            r->recovered = 1;
            if (since == head) return;
            if (!r->limit) {
                r->more = 1;
                return;
            }
            *lo = since + 1;
            *hi = head - since > r->limit ? since + r->limit : head;
            r->more = *hi < head;
            return;
        }
        newest(head, ef, r->limit, lo, hi);
        return;
    }
    if (!r->has_since) {
        newest(head, ef, r->limit, lo, hi);
        return;
    }
    if (!r->reverse) {
        if (since >= head) return;
        uint64_t from = since + 1 > ef ? since + 1 : ef;
        if (from > head) return;
        if (!r->limit) {
            r->more = 1;
            return;
        }
        *lo = from;
        *hi = head - from + 1 > r->limit ? from + r->limit - 1 : head;
        r->more = *hi < head;
        return;
    }
    /* Reverse paging: the pubs before since; `more` says older ones remain. */
    if (since <= ef || ef > head) return;
    uint64_t to = since - 1 < head ? since - 1 : head;
    if (!r->limit) {
        r->more = 1;
        return;
    }
    *hi = to;
    *lo = to - ef + 1 > r->limit ? to - r->limit + 1 : ef;
    r->more = *lo > ef;
}

void engine_make_epoch(char out[PUB_EPOCH_LEN + 1])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = 0;
    while (n < PUB_EPOCH_LEN) {
        unsigned char rnd[16];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            /* The RNG failing must not stop storage; an epoch only has to
             * differ from earlier incarnations, which the clock ensures. */
            uint64_t x = (uint64_t)clock_mono_us() ^ ((uint64_t)clock_wall_ms() << 20);
            for (size_t i = 0; i < sizeof(rnd); i++, x = x * 6364136223846793005ULL + 1)
                rnd[i] = (unsigned char)(x >> 56);
        }
        /* Rejection keeps the 36 symbols uniform (252 = 7 * 36). */
        for (size_t i = 0; i < sizeof(rnd) && n < PUB_EPOCH_LEN; i++)
            if (rnd[i] < 252) out[n++] = alphabet[rnd[i] % 36];
    }
    out[PUB_EPOCH_LEN] = '\0';
}
