/* Unit tests for the row blob (seg.h): pubs come back field for field,
 * repeated values cost a byte, ids that can't be derived are kept, and no
 * truncated or hostile blob is read past its end or accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/pub.h"
#include "engine/seg.h"
#include "util/clock.h"
#include "util/sbuf.h"
#include "util/status.h"

#define TS 1700000000123LL
#define LIM (1ULL << CLOCK_ULID_HALF_BITS)

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

/* A pub as the engine stores it: committed offset, the batch's ts and the
 * id derived from (ts, cid, offset) unless random_id. */
static pl_pub *mk(const pub_fields *f, pub_class cls, int64_t cid, uint64_t off, int random_id)
{
    pl_pub *p = pub_new(f, cls);
    assert_non_null(p);
    p->offset = off;
    p->ts_ms = TS;
    /* As the engine stages it: the derived id, or a random one. */
    if (random_id)
        clock_ulid_at(p->id, TS);
    else
        clock_ulid_pack(p->id, (uint64_t)TS, (uint64_t)cid, off);
    return p;
}

static pub_fields fields_of(const pl_pub *p)
{
    pub_fields f = {0};
    f.data = p->data;
    f.data_len = p->data_len;
    f.user = p->user;
    f.user_len = slen(p->user);
    f.client = p->client;
    f.client_len = slen(p->client);
    f.type = p->type;
    f.type_len = slen(p->type);
    f.correlation_id = p->correlation_id;
    f.correlation_id_len = slen(p->correlation_id);
    f.headers = p->headers;
    f.headers_len = slen(p->headers);
    f.idem_key = p->idem_key;
    f.idem_key_len = slen(p->idem_key);
    return f;
}

static void same_str(const char *want, size_t want_n, const char *got, size_t got_n)
{
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_int_equal(got_n, want_n);
    assert_memory_equal(got, want, want_n);
}

static void same_pub(const pl_pub *want, const pub_fields *got, pub_class cls, const char *id,
                     uint64_t off)
{
    same_str(want->data, want->data_len, got->data, got->data_len);
    same_str(want->user, slen(want->user), got->user, got->user_len);
    same_str(want->client, slen(want->client), got->client, got->client_len);
    same_str(want->type, slen(want->type), got->type, got->type_len);
    same_str(want->correlation_id, slen(want->correlation_id), got->correlation_id,
             got->correlation_id_len);
    same_str(want->headers, slen(want->headers), got->headers, got->headers_len);
    same_str(want->idem_key, slen(want->idem_key), got->idem_key, got->idem_key_len);
    assert_int_equal(cls, want->cls);
    assert_string_equal(id, want->id);
    assert_int_equal(off, want->offset);
}

/* Encodes pubs[1..n-1] the way a commit does (prev = the pub before). */
static void encode(sbuf *b, pl_pub **pubs, size_t n, int64_t cid)
{
    sbuf_init(b);
    for (size_t i = 1; i < n; i++)
        seg_put(b, pubs[i], pubs[i - 1], cid);
    assert_false(b->oom);
}

/* Decodes the whole blob against pubs[0]'s row and checks every record. */
static void decode_equal(const void *blob, size_t len, pl_pub **pubs, size_t n, int64_t cid)
{
    pub_fields first = fields_of(pubs[0]), f;
    seg_iter it;
    seg_iter_init(&it, blob, len, cid, pubs[0]->offset, TS, &first);
    pub_class cls;
    char id[PUB_ID_LEN + 1];
    uint64_t off;
    for (size_t i = 1; i < n; i++) {
        memset(&f, 0, sizeof(f));
        assert_int_equal(seg_next(&it, &f, &cls, id, &off), PL_OK);
        same_pub(pubs[i], &f, cls, id, off);
    }
    assert_int_equal(seg_next(&it, &f, &cls, id, &off), 1);
}

static void free_pubs(pl_pub **pubs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pub_unref(pubs[i]);
}

static const char *const users[] = {"alice", "alice", "bob", NULL, "", "", "alice", "\xc3\xa9ve"};
static const char *const clients[] = {"c-1", "c-1", "c-1", "c-2", NULL, "c-2", "c-1"};
static const char *const datas[] = {"{\"text\":\"hi \\\"there\\\"\"}",
                                    "\"caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80\"",
                                    "42",
                                    "",
                                    NULL,
                                    "[1,2,{\"a\":null}]",
                                    "{\"text\":\"hi \\\"there\\\"\"}"};

/* A row of 50 varied pubs: NULL and empty fields, runs of one user and
 * client, arbitrary non-NUL data bytes, all three classes, a few random ids. */
static void round_trip_row(void **state)
{
    enum { N = 50 };
    const int64_t cid = 77;
    const uint64_t first_off = 1000;
    pl_pub *pubs[N];
    char bytes[N][200], corr[N][16];
    for (size_t i = 0; i < N; i++) {
        pub_fields f = {0};
        size_t dn = i * 4 % 200;
        for (size_t j = 0; j < dn; j++)
            bytes[i][j] = (char)((i * 37 + j * 11) % 255 + 1);
        if (i % 4 == 3) {
            f.data = bytes[i];
            f.data_len = dn;
        } else {
            f.data = datas[i % 7];
            f.data_len = slen(f.data);
        }
        f.user = users[i % 8];
        f.user_len = slen(f.user);
        f.client = clients[i / 3 % 7];
        f.client_len = slen(f.client);
        f.type = i % 5 == 0 ? "chat" : i % 5 == 1 ? "" : NULL;
        f.type_len = slen(f.type);
        snprintf(corr[i], sizeof(corr[i]), "corr-%zu", i);
        f.correlation_id = i % 3 ? corr[i] : NULL;
        f.correlation_id_len = slen(f.correlation_id);
        f.headers = i < 25 ? "{\"x-trace\":\"1\"}" : i % 2 ? "{}" : NULL;
        f.headers_len = slen(f.headers);
        f.idem_key = i % 6 == 0 ? "k" : i % 6 == 1 ? "k" : NULL;
        f.idem_key_len = slen(f.idem_key);
        pubs[i] = mk(&f, (pub_class)(i % 3), cid, first_off + i, i % 9 == 4);
    }
    sbuf b;
    encode(&b, pubs, N, cid);
    decode_equal(b.data, b.len, pubs, N, cid);
    sbuf_release(&b);
    free_pubs(pubs, N);
}

/* An empty string is a value, not an absence, also when repeated. */
static void empty_is_not_absent(void **state)
{
    pub_fields e = {.data = "", .user = "", .client = "", .type = ""};
    pub_fields a = {.data = NULL};
    pl_pub *pubs[] = {mk(&e, PUB_STANDARD, 5, 10, 0), mk(&e, PUB_STANDARD, 5, 11, 0),
                      mk(&a, PUB_STANDARD, 5, 12, 0), mk(&e, PUB_STANDARD, 5, 13, 0)};
    sbuf b;
    encode(&b, pubs, 4, 5);
    decode_equal(b.data, b.len, pubs, 4, 5);
    sbuf_release(&b);
    free_pubs(pubs, 4);
}

/* A row of one pub stores no blob; the store hands NULL and 0. */
static void no_blob_is_the_end(void **state)
{
    pub_fields first = {.data = "1", .data_len = 1}, f;
    seg_iter it;
    seg_iter_init(&it, NULL, 0, 1, 1, TS, &first);
    pub_class cls;
    char id[PUB_ID_LEN + 1];
    uint64_t off;
    assert_int_equal(seg_next(&it, &f, &cls, id, &off), 1);
}

/* A run of pubs from one user and connection, as a chat burst is: the
 * repeats are a byte each, not 30. */
static void repeats_are_cheap(void **state)
{
    enum { N = 101 };
    const char *who = "user-0123456789abcdefghijklmno";
    const char *conn = "conn-0123456789abcdefghijklmno";
    assert_int_equal(strlen(who), 30);
    pl_pub *pubs[N];
    for (size_t i = 0; i < N; i++) {
        pub_fields f = {.data = "1", .data_len = 1, .user = who, .user_len = 30};
        f.client = conn;
        f.client_len = 30;
        pubs[i] = mk(&f, PUB_STANDARD, 3, 500 + i, 0);
    }
    sbuf b;
    encode(&b, pubs, N, 3);
    assert_true(b.len < 100 * 30);
    decode_equal(b.data, b.len, pubs, N, 3);
    sbuf_release(&b);
    free_pubs(pubs, N);
}

/* Decodes with another cid or first offset: only ids that were stored
 * survive that unchanged. */
static void ids_equal_under(const sbuf *b, pl_pub **pubs, size_t n, int64_t cid, uint64_t first)
{
    pub_fields f0 = fields_of(pubs[0]), f;
    seg_iter it;
    seg_iter_init(&it, b->data, b->len, cid, first, TS, &f0);
    pub_class cls;
    char id[PUB_ID_LEN + 1];
    uint64_t off;
    for (size_t i = 1; i < n; i++) {
        assert_int_equal(seg_next(&it, &f, &cls, id, &off), PL_OK);
        assert_string_equal(id, pubs[i]->id);
    }
    assert_int_equal(seg_next(&it, &f, &cls, id, &off), 1);
}

/* Past 2^40 (offsets or cids) the id can't be packed from the key, so it is
 * stored: the pub keeps the id it had, whatever the row decodes with. */
static void ids_past_2_40_are_stored(void **state)
{
    pub_fields f = {.data = "x", .data_len = 1};
    /* Offsets crossing 2^40 in a small channel: one random id, one that is
     * what packing would give with the high bits dropped. */
    pl_pub *a[] = {mk(&f, PUB_STANDARD, 9, LIM - 2, 0), mk(&f, PUB_STANDARD, 9, LIM - 1, 0),
                   mk(&f, PUB_STANDARD, 9, LIM, 1), mk(&f, PUB_STANDARD, 9, LIM + 1, 1)};
    clock_ulid_pack(a[3]->id, (uint64_t)TS, 9, LIM + 1);
    sbuf b;
    encode(&b, a, 4, 9);
    decode_equal(b.data, b.len, a, 4, 9);
    assert_int_equal(b.len, 8 + 2 * (8 + PUB_ID_LEN)); /* LIM - 1 still derived */
    sbuf_release(&b);
    free_pubs(a, 4);

    /* A cid past 2^40 (and a non-positive one) stores every id. */
    const int64_t cids[] = {(int64_t)LIM + 3, 0, -4};
    for (size_t k = 0; k < 3; k++) {
        pl_pub *c[] = {mk(&f, PUB_GUARANTEED, cids[k], 1, 1), mk(&f, PUB_GUARANTEED, cids[k], 2, 1),
                       mk(&f, PUB_GUARANTEED, cids[k], 3, 1)};
        clock_ulid_pack(c[2]->id, (uint64_t)TS, (uint64_t)cids[k], 3);
        encode(&b, c, 3, cids[k]);
        decode_equal(b.data, b.len, c, 3, cids[k]);
        ids_equal_under(&b, c, 3, 12345, 700);
        sbuf_release(&b);
        free_pubs(c, 3);
    }
}

/* A blob of mixed records (stored ids, values, repeats) and the lengths at
 * which its records end. */
static size_t sample_blob(sbuf *b, pl_pub **pubs, size_t *ends)
{
    pub_fields f = {.data = "{\"a\":\"\xc3\xa9\"}", .user = "u1", .client = "c", .idem_key = "ik"};
    f.data_len = strlen(f.data);
    f.user_len = 2;
    f.client_len = 1;
    f.idem_key_len = 2;
    size_t n = 0;
    pubs[n++] = mk(&f, PUB_STANDARD, 4, 20, 0);
    pubs[n++] = mk(&f, PUB_STANDARD, 4, 21, 0);
    f.user = NULL;
    pubs[n++] = mk(&f, PUB_EPHEMERAL, 4, 22, 1);
    f.user = "u2";
    f.headers = "{\"h\":1}";
    f.headers_len = strlen(f.headers);
    pubs[n++] = mk(&f, PUB_GUARANTEED, 4, 23, 0);
    f.data = NULL;
    f.idem_key = "ik-2"; /* the blob ends in a value, not a code */
    f.idem_key_len = 4;
    pubs[n++] = mk(&f, PUB_GUARANTEED, 4, 24, 1);
    sbuf_init(b);
    ends[0] = 0;
    for (size_t i = 1; i < n; i++) {
        seg_put(b, pubs[i], pubs[i - 1], 4);
        ends[i] = b->len;
    }
    assert_false(b->oom);
    return n;
}

/* Each prefix of a valid blob: whole records decode and then either the end
 * (a cut at a record boundary) or PL_EIO (a cut inside one); never more.
 * Each prefix sits in an allocation of its exact size for ASan. */
static void truncations(void **state)
{
    pl_pub *pubs[8];
    size_t ends[8];
    sbuf b;
    size_t n = sample_blob(&b, pubs, ends);
    pub_fields first = fields_of(pubs[0]);
    size_t inside = 0, boundary = 0;
    for (size_t len = 0; len < b.len; len++) {
        unsigned char *cut = malloc(len ? len : 1);
        assert_non_null(cut);
        memcpy(cut, b.data, len);
        size_t whole = 0;
        while (whole + 1 < n && ends[whole + 1] <= len)
            whole++;
        seg_iter it;
        seg_iter_init(&it, cut, len, 4, 20, TS, &first);
        pub_fields f;
        pub_class cls;
        char id[PUB_ID_LEN + 1];
        uint64_t off;
        for (size_t i = 1; i <= whole; i++) {
            assert_int_equal(seg_next(&it, &f, &cls, id, &off), PL_OK);
            same_pub(pubs[i], &f, cls, id, off);
        }
        int rc = seg_next(&it, &f, &cls, id, &off);
        if (ends[whole] == len) {
            assert_int_equal(rc, 1);
            boundary++;
        } else {
            assert_int_equal(rc, PL_EIO);
            /* A failed record doesn't move the iterator past it. */
            assert_int_equal(seg_next(&it, &f, &cls, id, &off), PL_EIO);
            inside++;
        }
        free(cut);
    }
    assert_int_equal(boundary, n - 1);
    assert_int_equal(inside, b.len - (n - 1));
    sbuf_release(&b);
    free_pubs(pubs, n);
}

/* The first pub of the hostile rows: data and user present, the rest not. */
static const pub_fields hostile_first = {.data = "d", .data_len = 1, .user = "u", .user_len = 1};

/* A decoded value points into the blob or is the row's first pub's own;
 * reading it all lets ASan see a value that runs past the blob. */
static void inside_value(const char *s, size_t n, const char *own, const unsigned char *blob,
                         size_t len)
{
    if (!s || s == own) return;
    assert_true((const unsigned char *)s >= blob && (const unsigned char *)s + n <= blob + len);
    volatile unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (unsigned char)s[i];
    (void)sum;
}

static void inside_row(const pub_fields *f, const unsigned char *blob, size_t len)
{
    const pub_fields *h = &hostile_first;
    inside_value(f->data, f->data_len, h->data, blob, len);
    inside_value(f->user, f->user_len, h->user, blob, len);
    inside_value(f->client, f->client_len, h->client, blob, len);
    inside_value(f->type, f->type_len, h->type, blob, len);
    inside_value(f->correlation_id, f->correlation_id_len, h->correlation_id, blob, len);
    inside_value(f->headers, f->headers_len, h->headers, blob, len);
    inside_value(f->idem_key, f->idem_key_len, h->idem_key, blob, len);
}

/* Decodes blob (in an allocation of its exact size) to its end; returns the
 * last status and how many records came before it. */
static int decode_all(const unsigned char *blob, size_t len, int64_t cid, size_t *records)
{
    unsigned char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, blob, len);
    seg_iter it;
    seg_iter_init(&it, copy, len, cid, 1, TS, &hostile_first);
    pub_fields f;
    pub_class cls;
    char id[PUB_ID_LEN + 1];
    uint64_t off;
    int rc;
    *records = 0;
    while ((rc = seg_next(&it, &f, &cls, id, &off)) == PL_OK) {
        (*records)++;
        inside_row(&f, copy, len);
    }
    free(copy);
    return rc;
}

static void rejects(const unsigned char *blob, size_t len, size_t good_records)
{
    size_t records;
    assert_int_equal(decode_all(blob, len, 1, &records), PL_EIO);
    assert_int_equal(records, good_records);
}

static void hostile_blobs(void **state)
{
    size_t records;
    /* The valid shape the hostile ones are cut from: a derived id, then one
     * with a stored id, data "xy" then the same again, user repeated. */
    static const unsigned char good[] = {0x01, 4,   'x', 'y', 1,   0,   0,   0,   0,   0,   0x06,
                                         '0',  '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A',
                                         'B',  'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'M', 'N',
                                         'P',  'Q', 'T', 'Z', 1,   1,   0,   0,   0,   0,   0};
    assert_int_equal(decode_all(good, sizeof(good), 1, &records), 1);
    assert_int_equal(records, 2);

    unsigned char b[sizeof(good)];
#define MUTATE(at, v)                                                                              \
    do {                                                                                           \
        memcpy(b, good, sizeof(good));                                                             \
        b[at] = (v);                                                                               \
    } while (0)
    MUTATE(0, 0x08); /* a flag bit past bit 2 */
    rejects(b, sizeof(b), 0);
    MUTATE(0, 0x03); /* class 3 */
    rejects(b, sizeof(b), 0);
    MUTATE(10, 0x04); /* class 0 with a stored id is fine... */
    assert_int_equal(decode_all(b, sizeof(b), 1, &records), 1);
    MUTATE(10, 0x86); /* ...bit 7 is not */
    rejects(b, sizeof(b), 1);
    MUTATE(11, 'a'); /* lower case id */
    rejects(b, sizeof(b), 1);
    MUTATE(35, 'U'); /* not in the alphabet */
    rejects(b, sizeof(b), 1);
    MUTATE(20, '-');
    rejects(b, sizeof(b), 1);
    rejects(good, 10 + 1 + 25, 1); /* id cut short */
    rejects(good, 10 + 1, 1);      /* id missing */
    MUTATE(1, 0x0c);               /* data of 10 bytes, 41 left: runs into the next record */
    rejects(b, sizeof(b), 0);
    rejects(good, 3, 0); /* data of 2 bytes, 1 there */

    /* Lengths: six LEB128 bytes, a 5-byte one above 32 bits, one just past
     * SEG_FIELD_MAX + 2 and one past the blob's end. */
    static const unsigned char leb6[] = {0x00, 0x82, 0x80, 0x80, 0x80, 0x80, 0x00,
                                         0,    0,    0,    0,    0,    0};
    rejects(leb6, sizeof(leb6), 0);
    static const unsigned char leb33[] = {0x00, 0x82, 0x80, 0x80, 0x80, 0x10, 0, 0, 0, 0, 0, 0};
    rejects(leb33, sizeof(leb33), 0);
    uint32_t big = SEG_FIELD_MAX + 3;
    unsigned char over[] = {0x00,
                            (unsigned char)(0x80 | (big & 0x7f)),
                            (unsigned char)(0x80 | (big >> 7 & 0x7f)),
                            (unsigned char)(0x80 | (big >> 14 & 0x7f)),
                            (unsigned char)(big >> 21),
                            0,
                            0,
                            0,
                            0,
                            0,
                            0};
    rejects(over, sizeof(over), 0);
    static const unsigned char past[] = {0x00, 0x80, 0x80, 0x80, 0x10, 0, 0, 0, 0, 0, 0};
    rejects(past, sizeof(past), 0); /* 2^25 - 2 bytes announced, none there */

    /* "Same as before" with nothing before: type is absent in the row's
     * first pub; user is present there but absent in the first record. */
    static const unsigned char same_type[] = {0x00, 1, 1, 0, 1, 0, 0, 0};
    rejects(same_type, sizeof(same_type), 0);
    static const unsigned char same_user[] = {0x00, 1, 0, 0, 0, 0, 0, 0, 0x00, 1, 1, 0, 0, 0, 0, 0};
    rejects(same_user, sizeof(same_user), 1);

    /* No stored id where none can be derived (cid 0 or past 2^40): the
     * encoder never writes that. */
    static const unsigned char bare[] = {0x00, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(decode_all(bare, sizeof(bare), 0, &records), PL_EIO);
    assert_int_equal(decode_all(bare, sizeof(bare), (int64_t)LIM, &records), PL_EIO);
    assert_int_equal(decode_all(bare, sizeof(bare), (int64_t)LIM - 1, &records), 1);
#undef MUTATE
}

/* A record with a value of n bytes, all there: flags, data, six absent. */
static unsigned char *record_of(size_t n, size_t *len)
{
    unsigned char *r = malloc(n + 16);
    assert_non_null(r);
    size_t at = 0;
    r[at++] = 0x00;
    for (uint64_t v = n + 2; v; v >>= 7)
        r[at++] = (unsigned char)((v & 0x7f) | (v >> 7 ? 0x80 : 0));
    memset(r + at, 'v', n);
    at += n;
    memset(r + at, 0, 6);
    *len = at + 6;
    return r;
}

/* SEG_FIELD_MAX is the limit even when the bytes are there. */
static void field_max(void **state)
{
    size_t len, records;
    unsigned char *r = record_of(SEG_FIELD_MAX, &len);
    assert_int_equal(decode_all(r, len, 1, &records), 1);
    assert_int_equal(records, 1);
    free(r);
    r = record_of(SEG_FIELD_MAX + 1, &len);
    rejects(r, len, 0);
    free(r);
}

/* A value the decoder would refuse is not written: the write fails through
 * the oom latch the caller checks anyway. */
static void oversize_field_latches_oom(void **state)
{
    size_t n = SEG_FIELD_MAX + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, 'a', n);
    pub_fields f = {.data = big, .data_len = n}, small = {.data = "x", .data_len = 1};
    pl_pub *first = mk(&small, PUB_STANDARD, 1, 1, 0), *p = mk(&f, PUB_STANDARD, 1, 2, 0);
    free(big);
    sbuf b;
    sbuf_init(&b);
    seg_put(&b, p, first, 1);
    assert_true(b.oom);
    assert_int_equal(b.len, 0);
    sbuf_release(&b);
    pub_unref(first);
    pub_unref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_row),
        cmocka_unit_test(empty_is_not_absent),
        cmocka_unit_test(no_blob_is_the_end),
        cmocka_unit_test(repeats_are_cheap),
        cmocka_unit_test(ids_past_2_40_are_stored),
        cmocka_unit_test(truncations),
        cmocka_unit_test(hostile_blobs),
        cmocka_unit_test(field_max),
        cmocka_unit_test(oversize_field_latches_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
