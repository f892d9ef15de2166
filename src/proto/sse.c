/* Server-Sent Events streams: GET /sse?token=...&channel=... opens a
 * session that subscribes to each channel and resumes from Last-Event-ID. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/session_int.h"

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* URL-decodes src[0..n) into out (cap bytes); returns the length or -1. */
static long url_decode(const char *src, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)src[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1;
            int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
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

/* Reads the stream's token and channels from the query and starts it: 0,
 * or an HTTP status with *why set (nothing sent). */
static int sse_start(session *s, const char *url, size_t len, const char *last_event_id,
                     const char **why)
{
    const char *q = memchr(url, '?', len);
    char token[8192] = "";
    char chans[16][MAX_CHANNEL + 1];
    int nch = 0;
    *why = "bad request";
    if (!q) return 400;
    for (const char *p = q + 1, *end = url + len; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq) {
            size_t kl = (size_t)(eq - p);
            if (kl == 5 && !memcmp(p, "token", 5)) {
                if (url_decode(eq + 1, (size_t)(e - eq - 1), token, sizeof(token)) < 0) return 400;
            } else if (kl == 7 && !memcmp(p, "channel", 7)) {
                if (nch == 16) return 400;
                long n = url_decode(eq + 1, (size_t)(e - eq - 1), chans[nch], sizeof(chans[nch]));
                if (n < 0 || proto_channel_valid(chans[nch], (size_t)n)) return 400;
                nch++;
            }
        }
        p = e + 1;
    }
    if (!nch) return 400;
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
    for (int i = 0; i < nch; i++) {
        const cfg_namespace *ns;
        rc = sess_may_read(s, chans[i], &ns, NULL, 0, NULL);
        if (rc) {
            *why = proto_error_message(rc);
            return proto_error_http_status(rc);
        }
    }
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\nConnection: keep-alive\r\n"
                               "X-Accel-Buffering: no\r\n\r\nretry: 2000\n\n";
    rbuf *r = rbuf_from(head, sizeof(head) - 1);
    if (r) sink_enqueue(s->out, OUT_RAW, r, r->len);
    s->next_ping_ms = s->h->now_ms + s->h->srv->cfg->ping_interval_ms;
    /* Last-Event-ID is "channel@offset": resume that channel from there. */
    const char *at = last_event_id ? strrchr(last_event_id, '@') : NULL;
    for (int i = 0; i < nch; i++) {
        pending pd = {.method = 1};
        int has_since = at && (size_t)(at - last_event_id) == strlen(chans[i]) &&
                        !memcmp(last_event_id, chans[i], strlen(chans[i]));
        uint64_t off = has_since ? strtoull(at + 1, NULL, 10) : 0;
        const cfg_namespace *ns = config_namespace(s->h->srv->cfg, chans[i], strlen(chans[i]));
        sess_subscribe(s, chans[i], ns, has_since, off, "*", DEFAULT_RECOVER_LIMIT, &pd);
    }
    return 0;
}

session *session_sse_open(proto_host *h, pl_sink *out, const char *url, size_t len,
                          const char *last_event_id, int *status, const char **why)
{
    session *s = session_new(h, out);
    if (!s) {
        *status = 503;
        *why = proto_error_message(PE_INTERNAL);
        return NULL;
    }
    *status = sse_start(s, url, len, last_event_id, why);
    if (!*status) return s;
    session_free(s);
    return NULL;
}
