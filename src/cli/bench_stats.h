/* Measurement pieces of `parley bench`: a log-linear latency histogram
 * (about 1.6% relative precision, constant memory, O(1) record) and a
 * per-stream sequence tracker that counts lost, duplicated and out-of-order
 * deliveries exactly, using a growable bitmap of the sequence numbers seen. */
#ifndef PL_BENCH_STATS_H
#define PL_BENCH_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values 0..63 are exact; above that, each power of two has 64 buckets. */
#define BENCH_HIST_SUB 64
#define BENCH_HIST_BUCKETS (BENCH_HIST_SUB + 58 * BENCH_HIST_SUB)

typedef struct bench_hist {
    uint64_t count;
    uint64_t min, max;
    double sum;
    uint64_t buckets[BENCH_HIST_BUCKETS];
} bench_hist;

void bench_hist_init(bench_hist *h);
void bench_hist_record(bench_hist *h, uint64_t v);
/* Adds every sample of src into dst. */
void bench_hist_merge(bench_hist *dst, const bench_hist *src);
/* The value at quantile q (0 < q <= 1): the smallest recorded bucket whose
 * cumulative count reaches ceil(q * count), reported as the bucket's upper
 * bound clamped to [min, max]. q >= 1 returns max exactly; 0 when empty. */
uint64_t bench_hist_quantile(const bench_hist *h, double q);
/* Bucket index of v and the largest value that maps to that index. Exposed
 * for the unit tests. */
size_t bench_hist_index(uint64_t v);
uint64_t bench_hist_upper(size_t index);

/* Sequence tracker for one stream (a subscriber's view of one channel).
 * Sequence numbers are > base; base is the position before the first
 * expected item (the channel's offset at subscribe time, or 0). Memory is
 * one bit per sequence number after base, owned by the tracker. */
typedef struct bench_seq {
    uint64_t base;    /* items expected are base+1 .. */
    uint64_t next;    /* lowest sequence not yet seen (contiguous prefix + 1) */
    uint64_t highest; /* highest sequence seen, or base */
    uint64_t unique;  /* distinct sequence numbers seen */
    uint64_t dups;    /* arrivals of a sequence already seen */
    uint64_t reorder; /* arrivals below `highest` that were new */
    uint64_t invalid; /* arrivals <= base or beyond the bitmap limit */
    uint64_t *bits;
    size_t nwords;
} bench_seq;

/* Sequences further than this past base are counted invalid (bounds the
 * bitmap at 16 MiB per stream against a hostile or broken server). */
#define BENCH_SEQ_MAX_SPAN (UINT64_C(1) << 27)

void bench_seq_init(bench_seq *s, uint64_t base);
void bench_seq_release(bench_seq *s);
/* Records one arrival. Returns 0, or -1 when the bitmap cannot grow (the
 * arrival is then counted invalid). */
int bench_seq_add(bench_seq *s, uint64_t seq);
/* Whether seq was seen. */
bool bench_seq_has(const bench_seq *s, uint64_t seq);
/* How many of base+1 .. last were never seen (0 when last <= base). */
uint64_t bench_seq_missing(const bench_seq *s, uint64_t last);

#endif
