/* libFuzzer target for net/http: arbitrary bytes read as a request stream, once whole and once
 * cut in two at a point the input picks. Checks each run's promises (what a status means for
 * *used and http_error, accessors consistent with each other (a header by id and by name), a ready
 * request repeated until http_next) and that both runs read the same requests and end the same way.
 * Input: byte 0 picks the body limit, byte 1 the cut (a fraction of the rest), then the stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"
#include "util/status.h"

/* What a run read: one record per request, then how it ended. */
typedef struct transcript {
    uint8_t *p;
    size_t len, cap;
    size_t upgrade_at; /* where the upgrade record starts; SIZE_MAX if none */
} transcript;

static void put(transcript *t, const void *data, size_t len)
{
    if (t->len + len > t->cap) {
        size_t cap = (t->len + len + 64) * 2;
        uint8_t *p = realloc(t->p, cap);
        if (!p) abort();
        t->p = p;
        t->cap = cap;
    }
    if (len) memcpy(t->p + t->len, data, len);
    t->len += len;
}

static void put_span(transcript *t, const char *s, size_t n)
{
    uint8_t absent = s == NULL;
    put(t, &absent, 1);
    put(t, &n, sizeof(n));
    put(t, s, n);
}

/* NUL-terminated, and n == 0 whenever s is NULL. */
static void check_span(const char *s, size_t n)
{
    if (s ? s[n] != '\0' : n != 0) abort();
}

static void check_target(const http_request *r)
{
    size_t ulen, plen, qlen;
    const char *u = http_url(r, &ulen), *p = http_path(r, &plen), *q = http_query(r, &qlen);
    check_span(u, ulen);
    check_span(q, qlen);
    if (!u || p != u || plen > ulen || memchr(p, '?', plen)) abort();
    if (q ? q != u + plen + 1 || plen + 1 + qlen != ulen : plen != ulen) abort();
}

/* Appends the request just read; an upgrade request's body is left out, since where
 * http-parser stops in it depends on how the bytes arrived. */
static void record(transcript *t, const http_request *r, size_t max_body)
{
    uint8_t head[3] = {(uint8_t)http_method_of(r), (uint8_t)http_keep_alive(r),
                       (uint8_t)http_upgrade(r)};
    size_t n;
    const char *s;
    int err = http_error(r, NULL, NULL);

    if (head[1] > 1 || head[2] > 1 || (err != 0 && err != 413)) abort();
    check_target(r);
    if (head[2]) t->upgrade_at = t->len;
    put(t, "R", 1);
    put(t, head, sizeof(head));
    s = http_url(r, &n);
    put_span(t, s, n);
    static const char *const known[HTTP_H__COUNT] = {"Upgrade",
                                                     "Connection",
                                                     "Sec-WebSocket-Key",
                                                     "Sec-WebSocket-Version",
                                                     "Sec-WebSocket-Protocol",
                                                     "Last-Event-ID",
                                                     "Authorization",
                                                     "Origin"};
    for (int i = 0; i < HTTP_H__COUNT; i++) {
        s = http_header(r, (enum http_header_id)i, &n);
        check_span(s, n);
        put_span(t, s, n);
        /* By name: the same presence, and the first value begins the joined one. */
        size_t m;
        const char *v = http_header_named(r, known[i], &m);
        check_span(v, m);
        if (!v != !s || (v && (m > n || memcmp(v, s, m)))) abort();
    }
    static const char *const other[] = {"content-type", "X-HUB-SIGNATURE-256", "webhook-id", "x"};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        s = http_header_named(r, other[i], &n);
        check_span(s, n);
        put_span(t, s, n);
    }
    s = http_body(r, &n);
    check_span(s, n);
    if (n > max_body) abort();
    if (head[2]) return;
    put(t, &err, sizeof(err));
    if (!err) put_span(t, s, n);
}

/* Reads data[0..size) handed over in two parts, data[0..cut) then the rest. */
static void run(transcript *t, const uint8_t *data, size_t size, size_t cut, size_t max_body)
{
    http_request *r = http_request_new(max_body);
    const char *in = (const char *)data;
    size_t off = 0, start = 0; /* start: where the request being read began */

    if (!r) abort();
    t->upgrade_at = SIZE_MAX;
    for (;;) {
        size_t end = off < cut ? cut : size, used = 0;
        int st = http_feed(r, in + off, end - off, &used);
        if (used > end - off) abort();
        off += used;
        if (st == PL_AGAIN) {
            int err = http_error(r, NULL, NULL);
            if (off != end || (err != 0 && err != 413)) abort();
            if (end == size) {
                put(t, "A", 1);
                break;
            }
            continue;
        }
        if (st != PL_OK) {
            int want = st == PL_EINVAL ? 400 : st == PL_ELIMIT ? 431 : st == PL_ENOMEM ? 503 : -1;
            if (http_error(r, NULL, NULL) != want) abort();
            if (http_feed(r, in, size, &used) != st || used != 0) abort();
            put(t, "E", 1);
            break;
        }
        if (off == start) abort(); /* no request is made of no bytes */
        record(t, r, max_body);
        if (http_feed(r, in + off, size - off, &used) != PL_OK || used != 0) abort();
        if (http_upgrade(r)) break; /* the rest is another protocol */
        if (off == size) {
            put(t, "A", 1);
            break;
        }
        http_next(r);
        start = off;
    }
    http_request_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t body_limits[] = {0, 16, 4096, 1 << 20};
    transcript a = {0}, b = {0};

    if (size < 2) return 0;
    size_t max_body = body_limits[data[0] & 3];
    size_t len = size - 2;
    size_t cut = len * data[1] / 255;
    data += 2;

    run(&a, data, len, len, max_body);
    run(&b, data, len, cut, max_body);
    size_t k = a.upgrade_at < b.upgrade_at ? a.upgrade_at : b.upgrade_at;
    if (k == SIZE_MAX) {
        if (a.len != b.len || (a.len && memcmp(a.p, b.p, a.len))) abort();
    } else if (a.len < k || b.len < k || (k && memcmp(a.p, b.p, k))) {
        abort();
    }
    free(a.p);
    free(b.p);
    return 0;
}
