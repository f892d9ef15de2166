/* The stored form of a run of pubs; see seg.h. */
#include "engine/seg.h"

#include <string.h>

#include "util/clock.h"
#include "util/status.h"

enum {
    SEG_CLS_MASK = 3,
    SEG_HAS_ID = 4,
    SEG_NFIELDS = 7,
    SEG_ABSENT = 0,
    SEG_SAME = 1,
    SEG_VALUE = 2, /* codes from here on carry code - SEG_VALUE bytes */
    SEG_LEB_MAX = 5,
};

/* A record's seven fields side by side, so encoder and decoder share one
 * loop and the blob order is written down once (here and in the getters). */
typedef struct field_view {
    const char *s[SEG_NFIELDS];
    size_t n[SEG_NFIELDS];
} field_view;

static size_t str_len(const char *s)
{
    return s ? strlen(s) : 0;
}

static void view_of_pub(field_view *v, const pl_pub *p)
{
    const char *s[SEG_NFIELDS] = {p->data,           p->user,    p->client,  p->type,
                                  p->correlation_id, p->headers, p->idem_key};
    memcpy(v->s, s, sizeof(s));
    /* data is a raw JSON value with its own length; the rest are C strings. */
    v->n[0] = p->data ? p->data_len : 0;
    for (int i = 1; i < SEG_NFIELDS; i++)
        v->n[i] = str_len(s[i]);
}

static void view_of_fields(field_view *v, const pub_fields *f)
{
    const char *s[SEG_NFIELDS] = {f->data,           f->user,    f->client,  f->type,
                                  f->correlation_id, f->headers, f->idem_key};
    size_t n[SEG_NFIELDS] = {f->data_len,           f->user_len,    f->client_len,  f->type_len,
                             f->correlation_id_len, f->headers_len, f->idem_key_len};
    memcpy(v->s, s, sizeof(s));
    memcpy(v->n, n, sizeof(n));
}

static void fields_of_view(pub_fields *f, const field_view *v)
{
    f->data = v->s[0];
    f->data_len = v->n[0];
    f->user = v->s[1];
    f->user_len = v->n[1];
    f->client = v->s[2];
    f->client_len = v->n[2];
    f->type = v->s[3];
    f->type_len = v->n[3];
    f->correlation_id = v->s[4];
    f->correlation_id_len = v->n[4];
    f->headers = v->s[5];
    f->headers_len = v->n[5];
    f->idem_key = v->s[6];
    f->idem_key_len = v->n[6];
}

int seg_pub_id(char out[PUB_ID_LEN + 1], int64_t ts, int64_t cid, uint64_t off)
{
    uint64_t lim = 1ULL << CLOCK_ULID_HALF_BITS;
    if (cid <= 0 || (uint64_t)cid >= lim || off >= lim) return 0;
    clock_ulid_pack(out, (uint64_t)ts, (uint64_t)cid, off);
    return 1;
}

/* Writes v as LEB128 at w (at most SEG_LEB_MAX bytes for a field code);
 * returns the byte after it. */
static unsigned char *put_leb(unsigned char *w, uint64_t v)
{
    do {
        unsigned char b = (unsigned char)(v & 0x7f);
        v >>= 7;
        *w++ = v ? b | 0x80 : b;
    } while (v);
    return w;
}

/* 1 if field i of prev holds the n bytes at s. prev's C strings are not
 * measured: equal means the same bytes and the terminator right after. */
static int same_field(const field_view *prev, int i, const char *s, size_t n)
{
    const char *q = prev->s[i];
    if (!q) return 0;
    if (i == 0) return prev->n[0] == n && memcmp(q, s, n) == 0;
    return strncmp(q, s, n) == 0 && q[n] == '\0';
}

void seg_put(sbuf *out, const pl_pub *p, const pl_pub *prev, int64_t cid)
{
    field_view cur;
    view_of_pub(&cur, p);
    /* Only data's length is needed from prev (its strings end in NUL). */
    field_view was = {.s = {prev->data, prev->user, prev->client, prev->type, prev->correlation_id,
                            prev->headers, prev->idem_key},
                      .n = {prev->data ? prev->data_len : 0}};
    /* seg_next would refuse such a record and with it the whole row; failing
     * the write (the caller checks oom once) beats storing what can't be read. */
    size_t need = 1 + PUB_ID_LEN;
    for (int i = 0; i < SEG_NFIELDS; i++) {
        if (cur.n[i] > SEG_FIELD_MAX) {
            out->oom = 1;
            return;
        }
        need += SEG_LEB_MAX + cur.n[i];
    }
    unsigned char *w = (unsigned char *)sbuf_space(out, need), *start = w;
    if (!w) return;
    char derived[PUB_ID_LEN + 1];
    int explicit_id =
        !seg_pub_id(derived, p->ts_ms, cid, p->offset) || memcmp(derived, p->id, PUB_ID_LEN) != 0;
    *w++ = (unsigned char)(((unsigned)p->cls & SEG_CLS_MASK) | (explicit_id ? SEG_HAS_ID : 0));
    if (explicit_id) {
        memcpy(w, p->id, PUB_ID_LEN);
        w += PUB_ID_LEN;
    }
    for (int i = 0; i < SEG_NFIELDS; i++) {
        if (!cur.s[i]) {
            *w++ = SEG_ABSENT;
        } else if (same_field(&was, i, cur.s[i], cur.n[i])) {
            *w++ = SEG_SAME;
        } else {
            w = put_leb(w, (uint64_t)cur.n[i] + SEG_VALUE);
            memcpy(w, cur.s[i], cur.n[i]);
            w += cur.n[i];
        }
    }
    sbuf_wrote(out, (size_t)(w - start));
}

void seg_iter_init(seg_iter *it, const void *blob, size_t len, int64_t cid, uint64_t first_off,
                   int64_t ts, const pub_fields *first)
{
    it->at = blob;
    /* A row of one pub has no blob: NULL + 0 is undefined in C. */
    it->end = len ? it->at + len : it->at;
    it->cid = cid;
    it->ts = ts;
    it->off = first_off + 1;
    it->prev = *first;
}

/* At most 5 bytes; the value bound keeps every later length computation
 * inside 32 bits and away from huge allocations in pub_new. */
static int get_leb(const unsigned char **at, const unsigned char *end, uint64_t *v)
{
    uint64_t acc = 0;
    for (int i = 0; i < SEG_LEB_MAX && *at < end; i++) {
        unsigned b = *(*at)++;
        acc |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (acc > (uint64_t)SEG_FIELD_MAX + SEG_VALUE) return PL_EIO;
            *v = acc;
            return PL_OK;
        }
    }
    return PL_EIO;
}

static int get_field(const unsigned char **at, const unsigned char *end, const char **s, size_t *n)
{
    uint64_t code;
    if (get_leb(at, end, &code) != PL_OK) return PL_EIO;
    if (code == SEG_ABSENT) {
        *s = NULL;
        *n = 0;
    } else if (code == SEG_SAME) {
        /* *s, *n already hold the previous value; there must be one. */
        if (!*s) return PL_EIO;
    } else {
        uint64_t len = code - SEG_VALUE;
        if (len > (uint64_t)(end - *at)) return PL_EIO;
        *s = (const char *)*at;
        *n = (size_t)len;
        *at += len;
    }
    return PL_OK;
}

/* Ids go out to clients and into trace lookups, so only the alphabet
 * clock_ulid writes is let through. */
static int ulid_char(unsigned char c)
{
    return (c >= '0' && c <= '9') ||
           (c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U');
}

static int get_id(const unsigned char **at, const unsigned char *end, char id[PUB_ID_LEN + 1])
{
    if (end - *at < PUB_ID_LEN) return PL_EIO;
    for (int i = 0; i < PUB_ID_LEN; i++) {
        if (!ulid_char((*at)[i])) return PL_EIO;
        id[i] = (char)(*at)[i];
    }
    id[PUB_ID_LEN] = '\0';
    *at += PUB_ID_LEN;
    return PL_OK;
}

int seg_next(seg_iter *it, pub_fields *f, pub_class *cls, char id[PUB_ID_LEN + 1], uint64_t *off)
{
    const unsigned char *at = it->at;
    if (at == it->end) return 1;
    unsigned flags = *at++;
    if ((flags & ~(unsigned)(SEG_CLS_MASK | SEG_HAS_ID)) || (flags & SEG_CLS_MASK) == SEG_CLS_MASK)
        return PL_EIO;
    char rec_id[PUB_ID_LEN + 1];
    if (flags & SEG_HAS_ID) {
        if (get_id(&at, it->end, rec_id) != PL_OK) return PL_EIO;
    } else if (!seg_pub_id(rec_id, it->ts, it->cid, it->off)) {
        /* seg_put never leaves out an id it couldn't derive. */
        return PL_EIO;
    }
    /* Decoded over the previous values so that code 1 simply keeps them;
     * the iterator only moves once the whole record is good. */
    field_view v;
    view_of_fields(&v, &it->prev);
    for (int i = 0; i < SEG_NFIELDS; i++)
        if (get_field(&at, it->end, &v.s[i], &v.n[i]) != PL_OK) return PL_EIO;
    fields_of_view(f, &v);
    fields_of_view(&it->prev, &v);
    *cls = (pub_class)(flags & SEG_CLS_MASK);
    memcpy(id, rec_id, sizeof(rec_id));
    *off = it->off++;
    it->at = at;
    return PL_OK;
}
