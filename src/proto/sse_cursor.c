/* SSE stream cursors (see sse_cursor.h for the format). */
#include "proto/sse_cursor.h"

#include <stdio.h>
#include <string.h>

size_t sse_cursor_encode(const sse_pos *pos, size_t n, char *out, size_t cap)
{
    if (!cap) return 0;
    out[0] = '\0';
    if (n > SSE_CURSOR_MAX_CHANNELS) return 0;
    size_t o = 0;
    int w = snprintf(out, cap, "v1:");
    if (w < 0 || (size_t)w >= cap) goto full;
    o = (size_t)w;
    for (size_t i = 0; i < n; i++) {
        w = pos[i].known ? snprintf(out + o, cap - o, "%s%s.%llu", i ? "," : "", pos[i].epoch,
                                    (unsigned long long)pos[i].offset)
                         : snprintf(out + o, cap - o, "%s", i ? "," : "");
        if (w < 0 || (size_t)w >= cap - o) goto full;
        o += (size_t)w;
    }
    return o;
full:
    out[0] = '\0';
    return 0;
}

static int epoch_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* A decimal offset of 1..20 digits that fits 64 bits: 0 with *off set. */
static int parse_offset(const char *p, size_t n, uint64_t *off)
{
    uint64_t v = 0;
    if (!n || n > 20) return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *off = v;
    return 0;
}

/* One entry "EPOCH.OFFSET" or "" into *pos: 0, or -1 when malformed. */
static int parse_entry(const char *p, size_t n, sse_pos *pos)
{
    if (!n) return 0;
    const char *dot = memchr(p, '.', n);
    size_t el = dot ? (size_t)(dot - p) : 0;
    if (el == 1 ? p[0] != '*' : el != PUB_EPOCH_LEN) return -1;
    for (size_t i = 0; el > 1 && i < el; i++)
        if (!epoch_char(p[i])) return -1;
    if (parse_offset(dot + 1, n - el - 1, &pos->offset)) return -1;
    memcpy(pos->epoch, p, el);
    pos->epoch[el] = '\0';
    pos->known = 1;
    return 0;
}

static size_t parse_v1(const char *v, size_t len, size_t nch, sse_pos *pos)
{
    sse_pos tmp[SSE_CURSOR_MAX_CHANNELS];
    memset(tmp, 0, sizeof(tmp));
    size_t i = 0;
    for (const char *p = v + 3, *end = v + len;; i++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (i >= SSE_CURSOR_MAX_CHANNELS || parse_entry(p, (size_t)(e - p), &tmp[i])) return 0;
        if (!comma) break;
        p = comma + 1;
    }
    size_t got = 0;
    for (size_t k = 0; k < nch; k++) {
        pos[k] = tmp[k];
        got += pos[k].known;
    }
    return got;
}

/* "CHANNEL@OFFSET": the last '@' splits (channel names may hold '@'). */
static size_t parse_legacy(const char *v, size_t len, const char *const *chans, size_t nch,
                           sse_pos *pos)
{
    const char *at = NULL;
    for (size_t i = len; i-- > 0;)
        if (v[i] == '@') {
            at = v + i;
            break;
        }
    uint64_t off;
    if (!at || parse_offset(at + 1, len - (size_t)(at - v) - 1, &off)) return 0;
    size_t cl = (size_t)(at - v);
    for (size_t k = 0; k < nch; k++)
        if (strlen(chans[k]) == cl && !memcmp(chans[k], v, cl)) {
            pos[k].known = 1;
            pos[k].offset = off;
            memcpy(pos[k].epoch, "*", 2);
            return 1;
        }
    return 0;
}

size_t sse_cursor_parse(const char *v, size_t len, const char *const *chans, size_t nch,
                        sse_pos *pos)
{
    if (nch > SSE_CURSOR_MAX_CHANNELS) nch = SSE_CURSOR_MAX_CHANNELS;
    memset(pos, 0, nch * sizeof(*pos));
    if (!v || len > SSE_CURSOR_MAX_LEN) return 0;
    if (memchr(v, '@', len)) return parse_legacy(v, len, chans, nch, pos);
    if (len >= 3 && !memcmp(v, "v1:", 3)) return parse_v1(v, len, nch, pos);
    return 0;
}
