/* Server-Sent Events streams: GET /sse?token=...&channel=... opens a
 * session that subscribes to each channel and resumes from Last-Event-ID. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/session_int.h"
#include "util/hex.h"
#include "util/mem.h"
#include "util/sbuf.h"

/* URL-decodes src[0..n) into out (cap bytes); returns the length or -1. */
static long url_decode(const char *src, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)src[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1;
            int hi = hex_val(src[i + 1]), lo = hex_val(src[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            ch = hi * 16 + lo;
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (o + 1 >= cap) return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return (long)o;
}

/* Reads the token and the channels (at most SSE_CURSOR_MAX_CHANNELS) from
 * the query: the channel count, or -1 for a bad query. */
static int parse_query(const char *url, size_t len, char *token, size_t tcap,
                       char (*chans)[MAX_CHANNEL + 1])
{
    const char *q = memchr(url, '?', len);
    int nch = 0;
    if (!q) return -1;
    for (const char *p = q + 1, *end = url + len; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq) {
            size_t kl = (size_t)(eq - p);
            if (kl == 5 && !memcmp(p, "token", 5)) {
                if (url_decode(eq + 1, (size_t)(e - eq - 1), token, tcap) < 0) return -1;
            } else if (kl == 7 && !memcmp(p, "channel", 7)) {
                if (nch == SSE_CURSOR_MAX_CHANNELS) return -1;
                long n = url_decode(eq + 1, (size_t)(e - eq - 1), chans[nch], MAX_CHANNEL + 1);
                if (n < 0 || proto_channel_valid(chans[nch], (size_t)n)) return -1;
                nch++;
            }
        }
        p = e + 1;
    }
    return nch ? nch : -1;
}

void sess_sse_free(sse_stream *st)
{
    if (!st) return;
    for (uint32_t i = 0; i < st->nch; i++)
        pl_free(st->chans[i]);
    pl_free(st);
}

/* The stream record: its channels, positioned from Last-Event-ID. */
static sse_stream *stream_new(char (*chans)[MAX_CHANNEL + 1], int nch, const char *last_event_id)
{
    sse_stream *st = pl_calloc(1, sizeof(*st));
    if (!st) return NULL;
    for (; st->nch < (uint32_t)nch; st->nch++)
        if (!(st->chans[st->nch] = pl_strdup(chans[st->nch]))) {
            sess_sse_free(st);
            return NULL;
        }
    /* Bounded: a longer value is no cursor, and is not read past the bound. */
    size_t llen = last_event_id ? strnlen(last_event_id, SSE_CURSOR_MAX_LEN + 1) : 0;
    sse_cursor_parse(last_event_id, llen, (const char *const *)st->chans, st->nch, st->pos);
    return st;
}

/* Checks read access to every channel: 0, or an HTTP status with *why. */
static int may_read_all(session *s, char (*chans)[MAX_CHANNEL + 1], int nch, const char **why)
{
    for (int i = 0; i < nch; i++) {
        const cfg_namespace *ns;
        int rc = sess_may_read(s, chans[i], &ns, NULL, 0, NULL);
        if (rc) {
            *why = proto_error_message(rc);
            return proto_error_http_status(rc);
        }
    }
    return 0;
}

/* The stream's response head, with the connection's own header lines
 * (extra, CRLF-terminated, may be NULL) before the blank line. */
static void sse_head(session *s, const char *extra)
{
    sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  "Cache-Control: no-cache\r\nConnection: keep-alive\r\n"
                  "X-Accel-Buffering: no\r\n");
    if (extra) sbuf_puts(&b, extra);
    sbuf_puts(&b, "\r\nretry: 2000\n\n");
    rbuf *r = sbuf_to_rbuf(&b);
    sbuf_release(&b);
    if (r) sink_enqueue(s->out, OUT_RAW, r, r->len);
}

/* Reads the stream's token and channels from the query and starts it: 0,
 * or an HTTP status with *why set (nothing sent). */
static int sse_start(session *s, const char *url, size_t len, const char *last_event_id,
                     const char *extra_head, const char **why)
{
    char token[8192] = "";
    char chans[SSE_CURSOR_MAX_CHANNELS][MAX_CHANNEL + 1];
    *why = "bad request";
    int nch = parse_query(url, len, token, sizeof(token), chans);
    if (nch < 0) return 400;
    struct jwt j;
    const tenant *tk = NULL;
    const char *reason = NULL;
    int code = sess_verify_token(s, token, strlen(token), &j, &tk, &reason);
    if (code) {
        jwt_release(&j);
        *why = code == PE_UNAUTHORIZED ? reason : proto_error_message(code);
        return proto_error_http_status(code);
    }
    int rc = sess_login(s, &j, tk);
    jwt_release(&j);
    if (rc) return 503;
    s->sse = 1;
    rc = may_read_all(s, chans, nch, why);
    if (rc) return rc;
    if (!(s->stream = stream_new(chans, nch, last_event_id))) return 503;
    sse_head(s, extra_head);
    s->next_ping_ms = s->h->now_ms + s->h->srv->cfg->ping_interval_ms;
    /* Each channel resumes from its own position with the usual recovery
     * rules; one without a position starts live. */
    for (uint32_t i = 0; i < s->stream->nch; i++) {
        pending pd = {.method = 1};
        const sse_pos *ps = &s->stream->pos[i];
        const char *ch = s->stream->chans[i];
        const cfg_namespace *ns = config_namespace(s->h->srv->cfg, ch, strlen(ch));
        sess_subscribe(s, ch, ns, ps->known, ps->offset, ps->epoch, DEFAULT_RECOVER_LIMIT, &pd);
    }
    return 0;
}

_Static_assert(SSE_EVENT_ID_MAX >= SSE_CURSOR_MAX_LEN, "an event id holds any cursor");

static sse_pos *stream_pos(session *s, const char *ch)
{
    sse_stream *st = s ? s->stream : NULL;
    for (uint32_t i = 0; st && i < st->nch; i++)
        if (!strcmp(st->chans[i], ch)) return &st->pos[i];
    return NULL;
}

void sess_sse_started(session *s, const char *ch, const engine_req *r, const pending *pd)
{
    sse_pos *ps = stream_pos(s, ch);
    if (!ps) return;
    /* Until the channel's first event is written the stream stands where
     * the answer starts: after the head when live, at the client's position
     * when resuming. A position the answer could not recover keeps its own
     * epoch, so a reconnect before anything newer is written meets the same
     * gap again rather than skipping it. */
    ps->known = 1;
    ps->offset = pd->has_since ? pd->since_offset : r->head;
    const char *ep = pd->has_since && strcmp(r->since_epoch, "*") ? r->since_epoch : r->epoch;
    snprintf(ps->epoch, sizeof(ps->epoch), "%s", ep);
}

size_t session_sse_event_id(session *s, const pl_pub *p, char *out, size_t cap)
{
    if (cap) out[0] = '\0';
    if (!s || !s->stream) return 0;
    sse_pos *ps = stream_pos(s, p->channel);
    if (ps) {
        ps->known = 1;
        ps->offset = p->offset;
        snprintf(ps->epoch, sizeof(ps->epoch), "%s", p->epoch);
    }
    return sse_cursor_encode(s->stream->pos, s->stream->nch, out, cap);
}

session *session_sse_open(proto_host *h, pl_sink *out, const char *url, size_t len,
                          const char *last_event_id, const char *extra_head, int *status,
                          const char **why)
{
    session *s = session_new(h, out);
    if (!s) {
        *status = 503;
        *why = proto_error_message(PE_INTERNAL);
        return NULL;
    }
    *status = sse_start(s, url, len, last_event_id, extra_head, why);
    if (!*status) return s;
    session_free(s);
    return NULL;
}
