/* libFuzzer target for the WebSocket receive session: arbitrary client bytes, fed in chunks
 * whose sizes come from the first input byte. Checks the session's promises: delivered text is
 * valid UTF-8 within the limit, output is whole unmasked control frames with the close last,
 * on_closed fires at most once, recreating an idle session changes nothing observable, and a
 * session that reads everything through wslay (ws_session_wslay_only) reports exactly the same
 * transcript as the one with the direct path for plain text frames. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws.h"
#include "util/status.h"

/* What a run reported, in order: 'T' len bytes, 'S' len bytes, 'C' code, 'R' feed result. */
typedef struct transcript {
    uint8_t *p;
    size_t len, cap;
} transcript;

static void log_put(transcript *l, char tag, const void *data, size_t len)
{
    if (l->len + len + 1 + sizeof(len) > l->cap) {
        size_t cap = (l->cap + len + 64) * 2;
        uint8_t *p = realloc(l->p, cap);
        if (!p) abort();
        l->p = p;
        l->cap = cap;
    }
    l->p[l->len++] = (uint8_t)tag;
    memcpy(l->p + l->len, &len, sizeof(len));
    l->len += sizeof(len);
    if (len) memcpy(l->p + l->len, data, len);
    l->len += len;
}

typedef struct fz {
    transcript log;
    int wslay_only;
    size_t max;
    int closed;
    int close_sent;
    int close_on_text;
    ws_session *s;
} fz;

/* Returns 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        size_t need;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i - 1 < need) return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += need + 1;
    }
    return 1;
}

static void on_text(void *ud, const uint8_t *data, size_t len)
{
    fz *f = ud;

    if (f->closed || len > f->max || !utf8_valid(data, len)) abort();
    log_put(&f->log, 'T', data, len);
    if (f->close_on_text && ws_session_close(f->s, 4501, "bad") != PL_OK) abort();
}

/* Every call must hold whole unmasked control frames; nothing may follow a close. */
static int on_send(void *ud, const uint8_t *data, size_t len)
{
    fz *f = ud;
    size_t i = 0;

    log_put(&f->log, 'S', data, len);
    while (i < len) {
        size_t plen;

        if (f->close_sent || len - i < 2 || (data[i + 1] & 0x80)) abort();
        if (data[i] != 0x88 && data[i] != 0x8a) abort();
        plen = data[i + 1];
        if (plen > 125 || (data[i] == 0x88 && plen == 1) || len - i - 2 < plen) abort();
        if (data[i] == 0x88) f->close_sent = 1;
        i += 2 + plen;
    }
    return 0;
}

static void on_closed(void *ud, uint16_t code)
{
    fz *f = ud;

    if (f->closed++) abort();
    log_put(&f->log, 'C', &code, sizeof(code));
}

static const ws_callbacks CBS = {on_text, on_send, on_closed};

static ws_session *session(fz *f)
{
    ws_session *s = ws_session_new(&CBS, f, f->max);
    if (s && f->wslay_only) ws_session_wslay_only(s);
    return s;
}

/* Runs the input through one session (recreated whenever idle); 0, or -1 if out of memory. */
static int run(fz *f, const uint8_t *data, size_t size)
{
    static const size_t maxes[] = {0, 200, 4096, 70000};
    size_t chunk, off = 1;
    uint8_t ctl = data[0];

    chunk = (size_t)(ctl & 0x0f) + 1; /* 1..16, scaled up for larger inputs below */
    if (ctl & 0x40) chunk *= 97;
    f->max = maxes[(ctl >> 4) & 3];
    f->close_on_text = (ctl & 0x80) != 0;
    f->s = session(f);
    if (!f->s) return -1;
    if (f->max < 125) f->max = 125;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        int rv = ws_session_feed(f->s, data + off, n);

        log_put(&f->log, 'R', &rv, sizeof(rv));
        if (f->closed ? (rv != PL_OK && rv != PL_DECLINED) : rv != PL_OK) abort();
        if (f->closed && ws_session_state(f->s) != WS_CLOSED) abort();
        /* The server frees idle sessions; the stream must carry on unchanged. */
        if (ws_session_idle(f->s)) {
            ws_session_free(f->s);
            f->s = session(f);
            if (!f->s) return -1;
        }
        off += n;
    }
    if (ws_session_state(f->s) == WS_CLOSED && !f->closed) abort();
    ws_session_free(f->s);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz a = {0}, b = {.wslay_only = 1};

    if (size < 1) return 0;
    if (run(&a, data, size) == 0 && run(&b, data, size) == 0 &&
        (a.log.len != b.log.len || (a.log.len && memcmp(a.log.p, b.log.p, a.log.len))))
        abort();
    free(a.log.p);
    free(b.log.p);
    return 0;
}
