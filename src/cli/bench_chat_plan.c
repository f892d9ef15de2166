/* The chat scenario's plan: room sizes and memberships (see bench_chat.h),
 * and its share of the report. Pure: no I/O. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_chat.h"
#include "util/mem.h"

/* A swap that leaves a connection twice in one room is retried this many
 * times per repair before the plan gives up. */
#define REPAIR_TRIES 20000
/* Layouts tried before the plan gives up. */
#define LAYOUT_TRIES 20

uint64_t bench_chat_rand(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, n); the modulo bias is below 2^-32 for the sizes used. */
static uint32_t below(uint64_t *st, uint32_t n)
{
    return (uint32_t)(bench_chat_rand(st) % n);
}

const char *bench_chat_check(uint32_t conns, uint32_t rooms)
{
    static char why[200];
    uint64_t m = (uint64_t)conns * BENCH_CHAT_PER_CONN;
    uint32_t max = conns < BENCH_CHAT_MAX_SIZE ? conns : BENCH_CHAT_MAX_SIZE;
    if (conns < BENCH_CHAT_MIN_SIZE) return "--conns must be at least 2 (a room has 2 members)";
    if (rooms < BENCH_CHAT_PER_CONN)
        return "--rooms must be at least 5 (every connection is in 5 distinct rooms)";
    if ((uint64_t)rooms * BENCH_CHAT_MIN_SIZE > m) {
        snprintf(why, sizeof(why),
                 "--rooms %u is too many for %u connections: their %" PRIu64
                 " memberships fill at most %" PRIu64 " rooms of 2",
                 rooms, conns, m, m / BENCH_CHAT_MIN_SIZE);
        return why;
    }
    if ((uint64_t)rooms * max < m) {
        snprintf(why, sizeof(why),
                 "--rooms %u is too few for %u connections: their %" PRIu64
                 " memberships need rooms of more than %u members",
                 rooms, conns, m, max);
        return why;
    }
    return NULL;
}

static double curve_sum(uint32_t rooms, uint32_t min, uint32_t max, double k)
{
    double s = 0;
    for (uint32_t i = 0; i < rooms; i++)
        s += min + (max - min) * pow(1.0 - (i + 0.5) / rooms, k);
    return s;
}

/* Largest remainders first; ties by index so the sizes stay decreasing. */
static const double *frac_of;
static int by_frac(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (frac_of[x] != frac_of[y]) return frac_of[x] > frac_of[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

double bench_chat_sizes(uint32_t rooms, uint64_t total, uint32_t min, uint32_t max, uint32_t *size)
{
    /* The sum falls from rooms*max (k -> 0) to rooms*min (k -> inf):
     * bisection on log k finds the curve that holds exactly total. */
    double lo = -20, hi = 20;
    for (int it = 0; it < 200; it++) {
        double mid = (lo + hi) / 2;
        if (curve_sum(rooms, min, max, exp(mid)) > (double)total)
            lo = mid;
        else
            hi = mid;
    }
    double k = exp((lo + hi) / 2);
    double *frac = pl_calloc(rooms, sizeof(*frac));
    uint32_t *idx = pl_calloc(rooms, sizeof(*idx));
    uint64_t sum = 0;
    for (uint32_t i = 0; i < rooms; i++) {
        double x = min + (max - min) * pow(1.0 - (i + 0.5) / rooms, k);
        size[i] = (uint32_t)x;
        if (size[i] < min) size[i] = min;
        if (size[i] > max) size[i] = max;
        sum += size[i];
        if (frac) frac[i] = x - floor(x);
        if (idx) idx[i] = i;
    }
    if (frac && idx) {
        frac_of = frac;
        qsort(idx, rooms, sizeof(*idx), by_frac);
    }
    /* Rounding leaves the sum short by less than rooms; the bounds clamp
     * may leave it off the other way at the extremes. Cycle until exact. */
    for (uint32_t j = 0; sum < total; j = (j + 1) % rooms) {
        uint32_t i = idx ? idx[j] : j;
        if (size[i] < max) size[i]++, sum++;
    }
    for (uint32_t j = rooms - 1; sum > total; j = (j + rooms - 1) % rooms) {
        uint32_t i = idx ? idx[j] : j;
        if (size[i] > min) size[i]--, sum--;
    }
    pl_free(frac);
    pl_free(idx);
    return k;
}

static bool in_other_layers(const uint32_t *mine, uint32_t layer, uint32_t room)
{
    for (uint32_t l = 0; l < BENCH_CHAT_PER_CONN; l++)
        if (l != layer && mine[l] == room) return true;
    return false;
}

/* A connection twice in a room (the room crosses a layer boundary) trades
 * that layer's membership with another connection's in the same layer, so
 * sizes and the one-room-per-layer shape stay. */
static int repair(bench_chat_plan *p, uint64_t *st)
{
    uint32_t *m = p->member;
    for (uint32_t c = 0; c < p->conns; c++) {
        for (uint32_t l = 0; l < BENCH_CHAT_PER_CONN; l++) {
            uint32_t *mine = &m[(size_t)c * BENCH_CHAT_PER_CONN];
            if (!in_other_layers(mine, l, mine[l])) continue;
            /* Either of the two layers holding the room may trade. */
            uint32_t other = 0;
            while (other == l || mine[other] != mine[l])
                other++;
            int tries = 0;
            for (;; tries++) {
                if (tries == REPAIR_TRIES) return -1;
                uint32_t at = tries % 2 ? other : l;
                uint32_t d = below(st, p->conns);
                uint32_t *theirs = &m[(size_t)d * BENCH_CHAT_PER_CONN];
                uint32_t a = mine[at], b = theirs[at];
                if (d == c || a == b || in_other_layers(mine, at, b) ||
                    in_other_layers(theirs, at, a))
                    continue;
                mine[at] = b;
                theirs[at] = a;
                break;
            }
        }
    }
    return 0;
}

/* Seeded order of rooms along the layers, and a seeded permutation of the
 * connections per layer. */
static int lay_out(bench_chat_plan *p, uint64_t *st)
{
    uint32_t n = p->conns;
    uint32_t *order = pl_calloc(p->rooms, sizeof(*order));
    uint32_t *perm = pl_calloc(n, sizeof(*perm));
    if (!order || !perm) {
        pl_free(order);
        pl_free(perm);
        return -1;
    }
    for (uint32_t i = 0; i < p->rooms; i++)
        order[i] = i;
    for (uint32_t i = p->rooms - 1; i > 0; i--) {
        uint32_t j = below(st, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint32_t room = 0, left = p->size[order[0]];
    for (uint32_t l = 0; l < BENCH_CHAT_PER_CONN; l++) {
        for (uint32_t i = 0; i < n; i++)
            perm[i] = i;
        for (uint32_t i = n - 1; i > 0; i--) {
            uint32_t j = below(st, i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (uint32_t j = 0; j < n; j++) {
            while (left == 0)
                left = p->size[order[++room]];
            p->member[(size_t)perm[j] * BENCH_CHAT_PER_CONN + l] = order[room];
            left--;
        }
    }
    pl_free(order);
    pl_free(perm);
    return 0;
}

int bench_chat_plan_make(bench_chat_plan *p, uint32_t conns, uint32_t rooms, uint64_t seed)
{
    memset(p, 0, sizeof(*p));
    if (bench_chat_check(conns, rooms)) return -1;
    p->conns = conns;
    p->rooms = rooms;
    p->size = pl_calloc(rooms, sizeof(*p->size));
    p->member = pl_calloc((size_t)conns * BENCH_CHAT_PER_CONN, sizeof(*p->member));
    if (!p->size || !p->member) goto fail;
    uint32_t max = conns < BENCH_CHAT_MAX_SIZE ? conns : BENCH_CHAT_MAX_SIZE;
    p->k = bench_chat_sizes(rooms, (uint64_t)conns * BENCH_CHAT_PER_CONN, BENCH_CHAT_MIN_SIZE, max,
                            p->size);
    /* When few connections fill large rooms, a layout may leave no trade
     * that separates a pair; the next layout of the same seed is tried. */
    uint64_t st = seed;
    for (int attempt = 0; attempt < LAYOUT_TRIES; attempt++) {
        if (lay_out(p, &st) < 0) goto fail;
        if (repair(p, &st) == 0) return 0;
    }
fail:
    bench_chat_plan_release(p);
    return -1;
}

void bench_chat_plan_release(bench_chat_plan *p)
{
    pl_free(p->size);
    pl_free(p->member);
    memset(p, 0, sizeof(*p));
}

/* --------------------------------------------------------------- report */

void bench_chat_json(const bench_chat_sum *s, sbuf *j)
{
    if (!s->on) return;
    sbuf_printf(j,
                ",\"chat\":{\"rooms\":%u,\"memberships\":%u,\"size_min\":%u,\"size_median\":%u,"
                "\"size_max\":%u,\"size_k\":%.3f,\"fanout\":%.2f,\"memberships_lossy\":%" PRIu64
                ",\"memberships_dup_ooo\":%" PRIu64 ",\"find_max\":%s,\"p99_bound_ms\":%.1f,"
                "\"max_rate\":%.0f,\"steps\":[",
                s->rooms, s->memberships, s->size_min, s->size_median, s->size_max, s->size_k,
                s->fanout, s->memberships_lossy, s->memberships_dup_ooo,
                s->find_max ? "true" : "false", s->p99_bound_ms, s->max_rate);
    for (uint32_t i = 0; i < s->nsteps; i++) {
        const bench_chat_step *t = &s->steps[i];
        sbuf_printf(j,
                    "%s{\"rate\":%.0f,\"pubs\":%" PRIu64
                    ",\"pubs_per_s\":%.1f,\"deliveries\":%" PRIu64
                    ",\"deliveries_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"settle_s\":%.3f,"
                    "\"shed\":%" PRIu64 ",\"kept_up\":%s,\"ok\":%s}",
                    i ? "," : "", t->rate, t->pubs, t->pubs_per_s, t->deliveries, t->deliv_per_s,
                    t->p50_ms, t->p99_ms, t->settle_s, t->shed, t->kept_up ? "true" : "false",
                    t->ok ? "true" : "false");
    }
    sbuf_puts(j, "]}");
}

void bench_chat_human(const bench_chat_sum *s, sbuf *h)
{
    if (!s->on) return;
    sbuf_printf(h,
                ", %u rooms (sizes %u..%u, median %u, %.1f members per pub), %" PRIu64
                " of %u memberships lossy, %" PRIu64 " with dups or reordering",
                s->rooms, s->size_min, s->size_max, s->size_median, s->fanout, s->memberships_lossy,
                s->memberships, s->memberships_dup_ooo);
    if (!s->find_max) return;
    /* One line, like every summary: rate:p99 per step, then the verdict. */
    sbuf_puts(h, ", steps");
    for (uint32_t i = 0; i < s->nsteps; i++) {
        const bench_chat_step *t = &s->steps[i];
        sbuf_printf(h, " %.0f/s:p99=%.1fms%s", t->rate, t->p99_ms,
                    t->ok        ? ""
                    : t->kept_up ? "(over)"
                                 : "(behind)");
    }
    sbuf_printf(h, ", max sustainable rate %.0f pubs/s (p99 <= %.0fms, every delivery in)",
                s->max_rate, s->p99_bound_ms);
}
