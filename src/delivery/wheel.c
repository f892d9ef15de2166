/* Hierarchical timer wheel; see wheel.h for the contract.
 *
 * Design notes:
 * 1. Ticks. A timer's tick is ceil(deadline / tick_ms). `cur` is the next tick
 *    to process: every tick < cur is done, so a timer whose tick < cur goes to
 *    the `pending` list, fired first by the next wheel_advance.
 * 2. Placement (the Linux "timer wheel" scheme). With delta = tick - cur, a
 *    timer goes to level L = the smallest with delta < 256^(L+1), slot
 *    (tick >> 8L) & 255; beyond 2^32 ticks, to the overflow list. Every level-0
 *    slot thus holds timers of one single tick.
 * 3. Processing tick c: first cascade (re-place) level L slot (c >> 8L) & 255
 *    for every L >= 1 whose low 8L bits of c are zero, and rescan the overflow
 *    list when the low 32 bits are zero; then fire level-0 slot c & 255. The
 *    re-placed timers land in lower levels (or in the slot fired right now).
 * 4. Skipping. Advancing over idle ticks one by one would cost a day of 1 ms
 *    ticks per day of idleness; instead next_event() finds the next tick with
 *    work from per-level bitmaps of non-empty slots, so cost is per timer, not
 *    per tick. Bits are cleared lazily (a cancel does not know its slot): a set
 *    bit may name an empty slot, and is dropped when found so.
 * 5. Order. A fired slot is sorted by (deadline, seq) with a stable list merge
 *    sort, skipped when already sorted (the common case with 1 ms ticks). */
#include "delivery/wheel.h"

#include <stddef.h>

#include "util/mem.h"

#define LEVELS 4
#define SLOT_BITS 8
#define SLOTS (1u << SLOT_BITS)
#define SLOT_MASK (SLOTS - 1)
#define WORDS (SLOTS / 64)
#define SPAN_BITS (LEVELS * SLOT_BITS) /* ticks covered by the levels: 2^32 */

struct wheel {
    uint64_t tick_ms;
    uint64_t cur;          /* next tick to process */
    int64_t last_ms;       /* largest now_ms seen */
    uint64_t seq;          /* next wheel_add sequence number */
    size_t count;          /* pending timers */
    uint64_t overflow_min; /* lower bound of the ticks in `overflow` */
    bool firing;           /* inside wheel_advance */
    wheel_link pending;    /* already due: fire at the next advance */
    wheel_link overflow;   /* more than 2^32 ticks ahead when placed */
    uint64_t bits[LEVELS][WORDS];
    wheel_link slots[LEVELS][SLOTS];
};

#define TIMER_OF(l) ((wheel_timer *)((char *)(l)-offsetof(wheel_timer, _link)))

/* ------------------------------------------------------------------------ */
/* Intrusive circular lists with a sentinel head                             */

static void list_init(wheel_link *h)
{
    h->_next = h->_prev = h;
}

static bool list_empty(const wheel_link *h)
{
    return h->_next == h;
}

static void list_push(wheel_link *h, wheel_link *n)
{
    n->_prev = h->_prev;
    n->_next = h;
    h->_prev->_next = n;
    h->_prev = n;
}

static void list_unlink(wheel_link *n)
{
    n->_prev->_next = n->_next;
    n->_next->_prev = n->_prev;
    n->_next = n->_prev = NULL;
}

/* Moves every node of src to the empty list dst; src becomes empty. */
static void list_take(wheel_link *dst, wheel_link *src)
{
    if (list_empty(src)) {
        list_init(dst);
        return;
    }
    dst->_next = src->_next;
    dst->_prev = src->_prev;
    dst->_next->_prev = dst;
    dst->_prev->_next = dst;
    list_init(src);
}

/* ------------------------------------------------------------------------ */
/* Ordering                                                                  */

static bool before(const wheel_link *a, const wheel_link *b)
{
    const wheel_timer *ta = TIMER_OF(a), *tb = TIMER_OF(b);
    return ta->_deadline < tb->_deadline || (ta->_deadline == tb->_deadline && ta->_seq < tb->_seq);
}

static bool list_sorted(const wheel_link *h)
{
    for (const wheel_link *n = h->_next; n->_next != h; n = n->_next)
        if (before(n->_next, n)) return false;
    return true;
}

/* Stable bottom-up merge sort of a NULL-terminated list linked by _next
 * (Tatham's algorithm: no recursion, no extra memory). Returns the new head. */
static wheel_link *merge_sort(wheel_link *list)
{
    for (size_t insize = 1;; insize *= 2) {
        wheel_link *p = list, *tail = NULL;
        size_t merges = 0;
        list = NULL;
        while (p) {
            merges++;
            wheel_link *q = p;
            size_t psize = 0, qsize = insize;
            while (psize < insize && q) {
                psize++;
                q = q->_next;
            }
            while (psize > 0 || (qsize > 0 && q)) {
                wheel_link *e;
                if (psize == 0 || (qsize > 0 && q && before(q, p))) {
                    e = q;
                    q = q->_next;
                    qsize--;
                } else {
                    e = p;
                    p = p->_next;
                    psize--;
                }
                if (tail)
                    tail->_next = e;
                else
                    list = e;
                tail = e;
            }
            p = q;
        }
        tail->_next = NULL;
        if (merges <= 1) return list;
    }
}

static void list_sort(wheel_link *h)
{
    if (list_empty(h) || list_sorted(h)) return;
    h->_prev->_next = NULL;
    wheel_link *prev = h;
    for (wheel_link *n = merge_sort(h->_next); n; n = n->_next) {
        prev->_next = n;
        n->_prev = prev;
        prev = n;
    }
    prev->_next = h;
    h->_prev = prev;
}

/* ------------------------------------------------------------------------ */
/* Placement                                                                 */

static uint64_t tick_of(const wheel *w, int64_t ms)
{
    if (ms <= 0) return 0;
    uint64_t u = (uint64_t)ms;
    return u / w->tick_ms + (u % w->tick_ms != 0);
}

static unsigned level_of(uint64_t delta)
{
    unsigned top_bit = 63u - (unsigned)__builtin_clzll(delta | 1);
    unsigned lvl = top_bit / SLOT_BITS;
    return lvl < LEVELS ? lvl : LEVELS;
}

static void set_bit(wheel *w, unsigned lvl, unsigned slot)
{
    w->bits[lvl][slot >> 6] |= 1ull << (slot & 63);
}

/* Links t where its tick belongs relative to cur (note 2). */
static void place(wheel *w, wheel_timer *t)
{
    uint64_t tick = tick_of(w, t->_deadline);
    if (tick < w->cur) {
        list_push(&w->pending, &t->_link);
        return;
    }
    unsigned lvl = level_of(tick - w->cur);
    if (lvl == LEVELS) {
        if (tick < w->overflow_min) w->overflow_min = tick;
        list_push(&w->overflow, &t->_link);
        return;
    }
    unsigned slot = (unsigned)(tick >> (lvl * SLOT_BITS)) & SLOT_MASK;
    list_push(&w->slots[lvl][slot], &t->_link);
    set_bit(w, lvl, slot);
}

/* Distance (0..255) from slot `start`, going up with wrap-around, to the first
 * non-empty slot of level lvl; -1 if all are empty. Drops stale bits. */
static int ring_next(wheel *w, unsigned lvl, unsigned start)
{
    unsigned k = 0;
    while (k < SLOTS) {
        unsigned idx = (start + k) & SLOT_MASK;
        uint64_t word = w->bits[lvl][idx >> 6] >> (idx & 63);
        if (word == 0) {
            k += 64 - (idx & 63);
            continue;
        }
        k += (unsigned)__builtin_ctzll(word);
        if (k >= SLOTS) break;
        idx = (start + k) & SLOT_MASK;
        if (!list_empty(&w->slots[lvl][idx])) return (int)k;
        w->bits[lvl][idx >> 6] &= ~(1ull << (idx & 63));
        k++;
    }
    return -1;
}

static uint64_t round_up(uint64_t v, unsigned bits)
{
    uint64_t unit = 1ull << bits;
    return (v + unit - 1) & ~(unit - 1);
}

/* The next tick >= cur at which something fires or cascades (note 4). */
static bool next_event(wheel *w, uint64_t *ev)
{
    uint64_t best = UINT64_MAX;
    int k = ring_next(w, 0, (unsigned)(w->cur & SLOT_MASK));
    if (k >= 0) best = w->cur + (uint64_t)k;
    for (unsigned lvl = 1; lvl < LEVELS; lvl++) {
        unsigned shift = lvl * SLOT_BITS;
        uint64_t at = round_up(w->cur, shift);
        k = ring_next(w, lvl, (unsigned)(at >> shift) & SLOT_MASK);
        if (k >= 0 && at + ((uint64_t)k << shift) < best) best = at + ((uint64_t)k << shift);
    }
    if (!list_empty(&w->overflow)) {
        /* An overflow timer fits the levels from the last 2^32 boundary
         * before its tick on; earlier rescans would only put it back. */
        uint64_t at = round_up(w->cur, SPAN_BITS);
        uint64_t fits = w->overflow_min & ~((1ull << SPAN_BITS) - 1);
        if (fits > at) at = fits;
        if (at < best) best = at;
    }
    *ev = best;
    return best != UINT64_MAX;
}

static void cascade(wheel *w, unsigned lvl, unsigned slot)
{
    wheel_link tmp;
    list_take(&tmp, &w->slots[lvl][slot]);
    w->bits[lvl][slot >> 6] &= ~(1ull << (slot & 63));
    while (!list_empty(&tmp)) {
        wheel_link *n = tmp._next;
        list_unlink(n);
        place(w, TIMER_OF(n));
    }
}

static void rescan_overflow(wheel *w)
{
    wheel_link tmp;
    list_take(&tmp, &w->overflow);
    w->overflow_min = UINT64_MAX;
    while (!list_empty(&tmp)) {
        wheel_link *n = tmp._next;
        list_unlink(n);
        place(w, TIMER_OF(n));
    }
}

/* ------------------------------------------------------------------------ */
/* Firing                                                                    */

/* Fires every timer of src in (deadline, seq) order. The batch sits in a
 * local list so callbacks can cancel or re-add any of its members (that
 * unlinks them from the batch) and new timers land in the wheel proper. */
static size_t fire_list(wheel *w, wheel_link *src, wheel_cb cb, void *arg)
{
    wheel_link batch;
    size_t fired = 0;
    list_take(&batch, src);
    list_sort(&batch);
    while (!list_empty(&batch)) {
        wheel_link *n = batch._next;
        list_unlink(n);
        w->count--;
        fired++;
        cb(TIMER_OF(n), arg);
    }
    return fired;
}

/* Processes tick c (note 3) and returns the number of timers fired. */
static size_t process_tick(wheel *w, uint64_t c, wheel_cb cb, void *arg)
{
    w->cur = c;
    for (unsigned lvl = 1; lvl < LEVELS; lvl++) {
        unsigned shift = lvl * SLOT_BITS;
        if (c & ((1ull << shift) - 1)) break;
        cascade(w, lvl, (unsigned)(c >> shift) & SLOT_MASK);
    }
    if ((c & ((1ull << SPAN_BITS) - 1)) == 0 && !list_empty(&w->overflow)) rescan_overflow(w);
    w->cur = c + 1;
    return fire_list(w, &w->slots[0][c & SLOT_MASK], cb, arg);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

wheel *wheel_new(uint32_t tick_ms, int64_t now_ms)
{
    if (tick_ms == 0 || tick_ms > WHEEL_MAX_TICK_MS) return NULL;
    wheel *w = pl_calloc(1, sizeof(*w));
    if (!w) return NULL;
    if (now_ms < 0) now_ms = 0;
    w->tick_ms = tick_ms;
    w->cur = (uint64_t)now_ms / tick_ms + 1;
    w->last_ms = now_ms;
    w->overflow_min = UINT64_MAX;
    list_init(&w->pending);
    list_init(&w->overflow);
    for (unsigned l = 0; l < LEVELS; l++)
        for (unsigned s = 0; s < SLOTS; s++)
            list_init(&w->slots[l][s]);
    return w;
}

void wheel_free(wheel *w)
{
    pl_free(w);
}

void wheel_timer_init(wheel_timer *t)
{
    t->_link._next = t->_link._prev = NULL;
    t->_deadline = 0;
    t->_seq = 0;
}

bool wheel_timer_pending(const wheel_timer *t)
{
    return t->_link._next != NULL;
}

int64_t wheel_timer_deadline(const wheel_timer *t)
{
    return t->_deadline;
}

void wheel_add(wheel *w, wheel_timer *t, int64_t deadline_ms)
{
    if (wheel_timer_pending(t)) {
        list_unlink(&t->_link);
        w->count--;
    }
    t->_deadline = deadline_ms;
    t->_seq = w->seq++;
    place(w, t);
    w->count++;
}

bool wheel_cancel(wheel *w, wheel_timer *t)
{
    if (!wheel_timer_pending(t)) return false;
    list_unlink(&t->_link);
    w->count--;
    return true;
}

size_t wheel_advance(wheel *w, int64_t now_ms, wheel_cb cb, void *arg)
{
    if (w->firing) return 0;
    w->firing = true;
    if (now_ms > w->last_ms) w->last_ms = now_ms;
    size_t fired = fire_list(w, &w->pending, cb, arg);
    /* INT64_MAX is the end of time: it also fires deadlines whose due time
     * (rounded up to a tick) would not fit in an int64_t. */
    uint64_t target =
        w->last_ms == INT64_MAX ? tick_of(w, INT64_MAX) : (uint64_t)w->last_ms / w->tick_ms;
    uint64_t ev;
    while (w->cur <= target && next_event(w, &ev) && ev <= target)
        fired += process_tick(w, ev, cb, arg);
    if (w->cur <= target) w->cur = target + 1;
    w->firing = false;
    return fired;
}

int64_t wheel_next_deadline(wheel *w)
{
    if (!list_empty(&w->pending)) return w->last_ms;
    uint64_t ev;
    if (!next_event(w, &ev)) return -1;
    if (ev > (uint64_t)INT64_MAX / w->tick_ms) return INT64_MAX;
    return (int64_t)(ev * w->tick_ms);
}

size_t wheel_count(const wheel *w)
{
    return w->count;
}

uint32_t wheel_tick_ms(const wheel *w)
{
    return (uint32_t)w->tick_ms;
}
