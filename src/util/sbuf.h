/* Growable byte buffer for building replies and log lines. An allocation
 * failure latches `oom`; callers check it once at the end instead of after
 * every append. The bytes are always NUL-terminated when len > 0. */
#ifndef PL_SBUF_H
#define PL_SBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/rbuf.h"

typedef struct sbuf {
    char *data;
    size_t len;
    size_t cap;
    int oom;
} sbuf;

void sbuf_init(sbuf *b);
/* Frees the contents; the struct may be reused after sbuf_init. */
void sbuf_release(sbuf *b);
void sbuf_reset(sbuf *b);
/* Makes room for extra more bytes (one allocation instead of doublings). */
void sbuf_reserve(sbuf *b, size_t extra);
/* Room for up to extra more bytes (growing by doubling, for many small
 * writes): the caller writes them at the returned pointer, then calls
 * sbuf_wrote with how many it wrote. NULL in the oom state. */
char *sbuf_space(sbuf *b, size_t extra);
void sbuf_wrote(sbuf *b, size_t n);
/* sbuf_append's path when the bytes do not fit (grows, or latches oom). */
void sbuf_append_grow(sbuf *b, const void *data, size_t len);

/* Inline: replies and pushes are built from many short pieces, mostly
 * literals whose length the compiler knows. */
static inline void sbuf_append(sbuf *b, const void *data, size_t len)
{
    if (len < b->cap - b->len) { /* room for the bytes and the NUL */
        if (len) memcpy(b->data + b->len, data, len);
        b->len += len;
        b->data[b->len] = '\0';
        return;
    }
    sbuf_append_grow(b, data, len);
}

static inline void sbuf_puts(sbuf *b, const char *s)
{
    sbuf_append(b, s, strlen(s));
}

static inline void sbuf_putc(sbuf *b, char c)
{
    sbuf_append(b, &c, 1);
}
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_u64(sbuf *b, uint64_t v);
void sbuf_i64(sbuf *b, int64_t v);
/* Appends s (n bytes, UTF-8) as a quoted, escaped JSON string. */
void sbuf_json_str(sbuf *b, const char *s, size_t n);
/* The same for bytes that may not be UTF-8 (a response body, a log line):
 * each byte that does not start a well-formed sequence becomes U+FFFD, so
 * the result is always valid JSON. */
void sbuf_json_str_lossy(sbuf *b, const char *s, size_t n);
/* Moves the contents into a new rbuf (one reference); the sbuf is emptied.
 * Returns NULL on allocation failure or if the sbuf is in the oom state. */
rbuf *sbuf_to_rbuf(sbuf *b);

#endif
