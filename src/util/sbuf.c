/* Growable byte buffer; see sbuf.h. */
#include "util/sbuf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/mem.h"
#include "util/utf8.h"

void sbuf_init(sbuf *b)
{
    memset(b, 0, sizeof(*b));
}

void sbuf_release(sbuf *b)
{
    pl_free(b->data);
    sbuf_init(b);
}

void sbuf_reset(sbuf *b)
{
    b->len = 0;
    b->oom = 0;
    if (b->data) b->data[0] = '\0';
}

static int grow(sbuf *b, size_t extra)
{
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *d = pl_realloc(b->data, cap);
    if (!d) {
        b->oom = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void sbuf_reserve(sbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap || b->oom) return;
    char *d = pl_realloc(b->data, b->len + extra + 1);
    if (!d) {
        b->oom = 1;
        return;
    }
    b->data = d;
    b->cap = b->len + extra + 1;
}

char *sbuf_space(sbuf *b, size_t extra)
{
    return grow(b, extra) ? NULL : b->data + b->len;
}

void sbuf_wrote(sbuf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = '\0';
}

void sbuf_append_grow(sbuf *b, const void *data, size_t len)
{
    if (grow(b, len)) return;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void sbuf_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof(tmp)) {
        sbuf_append(b, tmp, (size_t)n);
        return;
    }
    if (grow(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Integers are on every pub and reply (offsets, timestamps): formatted by
 * hand, snprintf's format parsing showed in the publish profile. */
void sbuf_u64(sbuf *b, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sbuf_append(b, tmp + i, sizeof(tmp) - i);
}

void sbuf_i64(sbuf *b, int64_t v)
{
    if (v < 0) {
        sbuf_putc(b, '-');
        sbuf_u64(b, (uint64_t)0 - (uint64_t)v);
        return;
    }
    sbuf_u64(b, (uint64_t)v);
}

/* Appends s escaped for the inside of a JSON string, without quotes. */
static void put_escaped(sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sbuf_append(b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            sbuf_append(b, esc, 2);
        } else if (c == '\n') {
            sbuf_append(b, "\\n", 2);
        } else {
            sbuf_append(b, esc, 6);
        }
    }
    sbuf_append(b, s + run, n - run);
}

void sbuf_json_str(sbuf *b, const char *s, size_t n)
{
    if (grow(b, n + 2)) return;
    b->data[b->len++] = '"';
    put_escaped(b, s, n);
    sbuf_putc(b, '"');
}

void sbuf_json_str_lossy(sbuf *b, const char *s, size_t n)
{
    if (grow(b, n + 2)) return;
    b->data[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq_len((const unsigned char *)s + i, n - i);
        if (k) {
            i += k;
            continue;
        }
        put_escaped(b, s + run, i - run);
        sbuf_append(b, "\xEF\xBF\xBD", 3); /* U+FFFD */
        run = ++i;
    }
    put_escaped(b, s + run, n - run);
    sbuf_putc(b, '"');
}

rbuf *sbuf_to_rbuf(sbuf *b)
{
    if (b->oom) return NULL;
    rbuf *r = rbuf_from(b->data, b->len);
    sbuf_reset(b);
    return r;
}
