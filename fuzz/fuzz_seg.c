/* libFuzzer target for the row blob (seg.h). Each input is used twice:
 * read directly as a blob against a fixed first pub, it must decode to
 * records and then the end or PL_EIO, every record at least 8 bytes (so
 * the walk ends) with values inside the blob or the first pub's own; and
 * as the recipe of a row of pubs (fields absent, empty, repeated or cut
 * from the input; classes; derived, stored and past-2^40 ids), which
 * seg_put must write and seg_next give back field for field. ASan watches
 * both for reads past the blob. Seeds: fuzz/corpus/seg/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pub.h"
#include "engine/seg.h"
#include "util/clock.h"
#include "util/sbuf.h"
#include "util/status.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

#define LIM (1ULL << CLOCK_ULID_HALF_BITS)
#define ROW_MAX 16
#define NFIELDS 7

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

/* The seven record fields of a pub_fields, in blob order. */
static void fields_list(const pub_fields *f, const char *s[NFIELDS], size_t n[NFIELDS])
{
    const char *ss[NFIELDS] = {f->data,           f->user,    f->client,  f->type,
                               f->correlation_id, f->headers, f->idem_key};
    size_t nn[NFIELDS] = {f->data_len,           f->user_len,    f->client_len,  f->type_len,
                          f->correlation_id_len, f->headers_len, f->idem_key_len};
    memcpy(s, ss, sizeof(ss));
    memcpy(n, nn, sizeof(nn));
}

/* The inverse of fields_list. */
static pub_fields fields_from(const char *s[NFIELDS], const size_t n[NFIELDS])
{
    return (pub_fields){.data = s[0],
                        .data_len = n[0],
                        .user = s[1],
                        .user_len = n[1],
                        .client = s[2],
                        .client_len = n[2],
                        .type = s[3],
                        .type_len = n[3],
                        .correlation_id = s[4],
                        .correlation_id_len = n[4],
                        .headers = s[5],
                        .headers_len = n[5],
                        .idem_key = s[6],
                        .idem_key_len = n[6]};
}

static void pub_list(const pl_pub *p, const char *s[NFIELDS], size_t n[NFIELDS])
{
    const char *ss[NFIELDS] = {p->data,           p->user,    p->client,  p->type,
                               p->correlation_id, p->headers, p->idem_key};
    memcpy(s, ss, sizeof(ss));
    n[0] = p->data ? p->data_len : 0;
    for (int i = 1; i < NFIELDS; i++)
        n[i] = slen(ss[i]);
}

static void within(const char *s, size_t n, const char *own, const uint8_t *blob, size_t len)
{
    if (!s || s == own) return;
    CHECK((const uint8_t *)s >= blob && (const uint8_t *)s + n <= blob + len);
}

static int ulid_char(char c)
{
    return (c >= '0' && c <= '9') ||
           (c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U');
}

static void check_id(const char *id)
{
    for (int i = 0; i < PUB_ID_LEN; i++)
        CHECK(ulid_char(id[i]));
    CHECK(id[PUB_ID_LEN] == '\0');
}

/* The input as a blob: whatever it holds, the walk ends and stays inside. */
static void decode_raw(const uint8_t *data, size_t size)
{
    static const pub_fields first = {
        .data = "{}", .data_len = 2, .user = "u", .user_len = 1, .client = "", .client_len = 0};
    const char *own[NFIELDS];
    size_t own_n[NFIELDS];
    fields_list(&first, own, own_n);
    seg_iter it;
    seg_iter_init(&it, data, size, 1, 1, 1700000000000, &first);
    uint64_t want_off = 2;
    for (;;) {
        const unsigned char *was = it.at;
        pub_fields f;
        pub_class cls;
        char id[PUB_ID_LEN + 1];
        uint64_t off;
        int rc = seg_next(&it, &f, &cls, id, &off);
        if (rc == 1) {
            CHECK(it.at == data + size);
            return;
        }
        if (rc != PL_OK) {
            CHECK(rc == PL_EIO && it.at == was);
            return;
        }
        CHECK(it.at - was >= 1 + NFIELDS && it.at <= data + size);
        CHECK(cls <= PUB_GUARANTEED && off == want_off++);
        check_id(id);
        const char *s[NFIELDS];
        size_t n[NFIELDS];
        fields_list(&f, s, n);
        for (int i = 0; i < NFIELDS; i++)
            within(s[i], n[i], own[i], data, size);
    }
}

typedef struct recipe {
    const uint8_t *p;
    size_t n;
} recipe;

static uint8_t take(recipe *r)
{
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

static uint64_t take_u40(recipe *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
        v = v << 8 | take(r);
    return v;
}

/* One field of pub i: absent, empty, the previous pub's value (a fresh
 * copy, so only the bytes say "same") or up to 63 bytes of the input;
 * NUL-free except in data, which has its own length. */
static void make_field(recipe *r, int k, const char *prev, size_t prev_n, char buf[64],
                       const char **s, size_t *n)
{
    uint8_t b = take(r);
    *s = NULL;
    *n = 0;
    switch (b & 3) {
    case 0:
        break;
    case 1:
        *s = prev;
        *n = prev_n;
        break;
    case 2:
        *s = "";
        break;
    default:
        *n = b >> 2;
        for (size_t i = 0; i < *n; i++) {
            buf[i] = (char)take(r);
            if (k > 0 && !buf[i]) buf[i] = 'z';
        }
        *s = buf;
    }
}

static pl_pub *make_pub(recipe *r, const pl_pub *prev, int64_t cid, uint64_t off, int64_t ts)
{
    char bufs[NFIELDS][64];
    const char *s[NFIELDS], *ps[NFIELDS] = {0};
    size_t n[NFIELDS], pn[NFIELDS] = {0};
    if (prev) pub_list(prev, ps, pn);
    for (int k = 0; k < NFIELDS; k++)
        make_field(r, k, ps[k], pn[k], bufs[k], &s[k], &n[k]);
    pub_fields f = fields_from(s, n);
    pl_pub *p = pub_new(&f, (pub_class)(take(r) % 3));
    CHECK(p);
    p->offset = off;
    p->ts_ms = ts;
    /* Mostly the id the store derives (also past 2^40, where it is cut
     * short and must be stored); sometimes an unrelated one. */
    if (take(r) % 4)
        clock_ulid_pack(p->id, (uint64_t)ts, (uint64_t)cid, off);
    else
        clock_ulid_pack(p->id, (uint64_t)ts, take_u40(r), take_u40(r));
    return p;
}

static void same(const char *a, size_t an, const char *b, size_t bn)
{
    CHECK((a == NULL) == (b == NULL));
    CHECK(an == bn && (!an || memcmp(a, b, an) == 0));
}

static void round_trip(const uint8_t *data, size_t size)
{
    static const int64_t cids[] = {1, 42, (int64_t)LIM - 1, (int64_t)LIM, 0, -3};
    static const uint64_t firsts[] = {1, 1000, LIM - 3, LIM + 7};
    recipe r = {data, size};
    int64_t cid = cids[take(&r) % 6];
    uint64_t first_off = firsts[take(&r) % 4];
    int64_t ts = 1700000000000 + take(&r);
    size_t count = 1 + take(&r) % ROW_MAX;
    pl_pub *pubs[ROW_MAX];
    for (size_t i = 0; i < count; i++)
        pubs[i] = make_pub(&r, i ? pubs[i - 1] : NULL, cid, first_off + i, ts);

    sbuf blob;
    sbuf_init(&blob);
    for (size_t i = 1; i < count; i++)
        seg_put(&blob, pubs[i], pubs[i - 1], cid);
    CHECK(!blob.oom);

    /* The row's first pub as the store reads it back: lengths, no NULs. */
    const char *s0[NFIELDS];
    size_t n0[NFIELDS];
    pub_list(pubs[0], s0, n0);
    pub_fields first = fields_from(s0, n0);
    seg_iter it;
    seg_iter_init(&it, blob.data, blob.len, cid, first_off, ts, &first);
    pub_fields f;
    pub_class cls;
    char id[PUB_ID_LEN + 1];
    uint64_t off;
    for (size_t i = 1; i < count; i++) {
        CHECK(seg_next(&it, &f, &cls, id, &off) == PL_OK);
        const char *want[NFIELDS], *got[NFIELDS];
        size_t want_n[NFIELDS], got_n[NFIELDS];
        pub_list(pubs[i], want, want_n);
        fields_list(&f, got, got_n);
        for (int k = 0; k < NFIELDS; k++)
            same(want[k], want_n[k], got[k], got_n[k]);
        CHECK(cls == pubs[i]->cls && off == pubs[i]->offset);
        CHECK(memcmp(id, pubs[i]->id, PUB_ID_LEN + 1) == 0);
    }
    CHECK(seg_next(&it, &f, &cls, id, &off) == 1);
    sbuf_release(&blob);
    for (size_t i = 0; i < count; i++)
        pub_unref(pubs[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_raw(data, size);
    round_trip(data, size);
    return 0;
}
