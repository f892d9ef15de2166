/* Latency histogram and sequence tracking for `parley bench`. Both are
 * plain data with no I/O so the percentile math and the loss/dup/reorder
 * accounting can be unit-tested exactly. */
#include "cli/bench_stats.h"

#include <math.h>
#include <string.h>

#include "util/mem.h"

/* ---------------------------------------------------------------- histogram */

void bench_hist_init(bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

size_t bench_hist_index(uint64_t v)
{
    if (v < BENCH_HIST_SUB) return (size_t)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    uint64_t sub = (v >> (e - 6)) & (BENCH_HIST_SUB - 1);
    return BENCH_HIST_SUB + (size_t)(e - 6) * BENCH_HIST_SUB + (size_t)sub;
}

uint64_t bench_hist_upper(size_t index)
{
    if (index < BENCH_HIST_SUB) return index;
    size_t k = index - BENCH_HIST_SUB;
    unsigned shift = (unsigned)(k / BENCH_HIST_SUB);
    uint64_t sub = k % BENCH_HIST_SUB;
    uint64_t lower = (BENCH_HIST_SUB + sub) << shift;
    return lower + ((UINT64_C(1) << shift) - 1);
}

void bench_hist_record(bench_hist *h, uint64_t v)
{
    h->buckets[bench_hist_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src)
{
    if (src->count == 0) return;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t bench_hist_quantile(const bench_hist *h, double q)
{
    if (h->count == 0) return 0;
    if (q >= 1.0) return h->max;
    if (!(q > 0.0)) return h->min;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = bench_hist_upper(i);
            if (v > h->max) v = h->max;
            if (v < h->min) v = h->min;
            return v;
        }
    }
    return h->max;
}

/* ----------------------------------------------------------------- sequence */

void bench_seq_init(bench_seq *s, uint64_t base)
{
    memset(s, 0, sizeof(*s));
    s->base = base;
    s->next = base + 1;
    s->highest = base;
}

void bench_seq_release(bench_seq *s)
{
    pl_free(s->bits);
    s->bits = NULL;
    s->nwords = 0;
}

/* Grows the bitmap so bit `rel` exists; doubling keeps appends amortized. */
static int reserve(bench_seq *s, uint64_t rel)
{
    size_t need = (size_t)(rel / 64) + 1;
    if (need <= s->nwords) return 0;
    size_t n = s->nwords ? s->nwords : 16;
    while (n < need)
        n *= 2;
    uint64_t *nb = pl_realloc(s->bits, n * sizeof(*nb));
    if (!nb) return -1;
    memset(nb + s->nwords, 0, (n - s->nwords) * sizeof(*nb));
    s->bits = nb;
    s->nwords = n;
    return 0;
}

bool bench_seq_has(const bench_seq *s, uint64_t seq)
{
    if (seq <= s->base) return false;
    uint64_t rel = seq - s->base - 1;
    if (rel / 64 >= s->nwords) return false;
    return (s->bits[rel / 64] >> (rel % 64)) & 1;
}

int bench_seq_add(bench_seq *s, uint64_t seq)
{
    if (seq <= s->base || seq - s->base > BENCH_SEQ_MAX_SPAN) {
        s->invalid++;
        return 0;
    }
    uint64_t rel = seq - s->base - 1;
    if (reserve(s, rel) < 0) {
        s->invalid++;
        return -1;
    }
    uint64_t mask = UINT64_C(1) << (rel % 64);
    if (s->bits[rel / 64] & mask) {
        s->dups++;
        return 0;
    }
    s->bits[rel / 64] |= mask;
    s->unique++;
    if (seq < s->highest)
        s->reorder++;
    else
        s->highest = seq;
    while (bench_seq_has(s, s->next))
        s->next++;
    return 0;
}

uint64_t bench_seq_missing(const bench_seq *s, uint64_t last)
{
    if (last <= s->base) return 0;
    uint64_t want = last - s->base;
    uint64_t got = 0;
    /* Count set bits in base+1..last only: items past `last` do not offset
     * missing ones. */
    uint64_t full = want / 64;
    for (uint64_t w = 0; w < full && w < s->nwords; w++)
        got += (uint64_t)__builtin_popcountll(s->bits[w]);
    uint64_t rem = want % 64;
    if (rem && full < s->nwords)
        got += (uint64_t)__builtin_popcountll(s->bits[full] & ((UINT64_C(1) << rem) - 1));
    return want - got;
}
