/* NATS protocol reader for the bench. Items are parsed straight from the
 * caller's bytes when possible; only an incomplete tail is copied into the
 * parser's buffer, so the common case (whole MSGs per frame) copies nothing. */
#include "cli/bench_nats.h"

#include <string.h>
#include <strings.h>

#include "cli/bench_scan.h"
#include "util/mem.h"
#include "util/status.h"

void bench_nats_init(bench_nats *p)
{
    memset(p, 0, sizeof(*p));
}

void bench_nats_release(bench_nats *p)
{
    pl_free(p->buf);
    memset(p, 0, sizeof(*p));
}

/* Splits the control line into at most 5 space/tab separated words. */
static int split(const char *s, size_t n, const char **w, size_t *wl, int max)
{
    int c = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == n) break;
        if (c == max) return -1;
        w[c] = s + i;
        while (i < n && s[i] != ' ' && s[i] != '\t')
            i++;
        wl[c] = (size_t)((s + i) - w[c]);
        c++;
    }
    return c;
}

static int word_is(const char *w, size_t wl, const char *op)
{
    return wl == strlen(op) && strncasecmp(w, op, wl) == 0;
}

/* Parses one item at the start of s. Returns bytes consumed, 0 when more
 * input is needed, -1 on a protocol violation. */
static long parse_one(const char *s, size_t n, const bench_nats_cb *cb, void *ud)
{
    const char *nl = memchr(s, '\n', n < BENCH_NATS_MAX_LINE ? n : BENCH_NATS_MAX_LINE);
    if (!nl) return n >= BENCH_NATS_MAX_LINE ? -1 : 0;
    size_t line = (size_t)(nl - s);
    if (line == 0 || s[line - 1] != '\r') return -1;
    line--;
    const char *w[5];
    size_t wl[5];
    int nw = split(s, line, w, wl, 5);
    if (nw < 1) return -1;
    size_t head = line + 2;
    if (word_is(w[0], wl[0], "MSG")) {
        /* MSG <subject> <sid> [reply-to] <#bytes> */
        uint64_t sid, bytes;
        if (nw != 4 && nw != 5) return -1;
        if (bench_parse_u64(w[2], wl[2], &sid) < 0 ||
            bench_parse_u64(w[nw - 1], wl[nw - 1], &bytes) < 0 || bytes > BENCH_NATS_MAX_PAYLOAD)
            return -1;
        if (n - head < bytes + 2) return 0;
        if (s[head + bytes] != '\r' || s[head + bytes + 1] != '\n') return -1;
        if (cb->on_msg) cb->on_msg(ud, sid, s + head, (size_t)bytes);
        return (long)(head + bytes + 2);
    }
    if (nw == 1 && word_is(w[0], wl[0], "PING")) {
        if (cb->on_ping) cb->on_ping(ud);
    } else if (nw == 1 && word_is(w[0], wl[0], "PONG")) {
        if (cb->on_pong) cb->on_pong(ud);
    } else if (nw == 1 && word_is(w[0], wl[0], "+OK")) {
        /* verbose acknowledgement: nothing to do */
    } else if (word_is(w[0], wl[0], "INFO")) {
        const char *j = w[0] + wl[0];
        if (cb->on_info) cb->on_info(ud, j, (size_t)(s + line - j));
    } else if (word_is(w[0], wl[0], "-ERR")) {
        const char *m = w[0] + wl[0];
        if (cb->on_err) cb->on_err(ud, m, (size_t)(s + line - m));
    } else {
        return -1;
    }
    return (long)head;
}

/* Consumes as many whole items from s as possible; returns bytes used or -1. */
static long parse_all(const char *s, size_t n, const bench_nats_cb *cb, void *ud)
{
    size_t used = 0;
    while (used < n) {
        long r = parse_one(s + used, n - used, cb, ud);
        if (r < 0) return -1;
        if (r == 0) break;
        used += (size_t)r;
    }
    return (long)used;
}

static int keep(bench_nats *p, const char *data, size_t n)
{
    if (n == 0) return PL_OK;
    if (p->len + n > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + n)
            cap *= 2;
        char *nb = pl_realloc(p->buf, cap);
        if (!nb) return PL_ENOMEM;
        p->buf = nb;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, data, n);
    p->len += n;
    return PL_OK;
}

int bench_nats_feed(bench_nats *p, const char *data, size_t n, const bench_nats_cb *cb, void *ud)
{
    if (p->failed) return PL_EINVAL;
    if (p->len == 0) {
        long used = parse_all(data, n, cb, ud);
        if (used < 0) goto fail;
        return keep(p, data + used, n - (size_t)used);
    }
    int rc = keep(p, data, n);
    if (rc != PL_OK) return rc;
    long used = parse_all(p->buf, p->len, cb, ud);
    if (used < 0) goto fail;
    memmove(p->buf, p->buf + used, p->len - (size_t)used);
    p->len -= (size_t)used;
    /* A tail can only be one unfinished item; anything larger is hostile. */
    if (p->len > BENCH_NATS_MAX_PAYLOAD + BENCH_NATS_MAX_LINE + 2) goto fail;
    return PL_OK;
fail:
    p->failed = 1;
    return PL_EINVAL;
}
