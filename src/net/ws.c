/* WebSocket protocol layer: handshake helpers, server frame headers, and the receive session
 * around a wslay server context. wslay parses and reassembles; this file adds what Parley needs
 * on top (text only, proper close codes, idle accounting), batches wslay's output, and reads
 * plain single-frame text messages itself (the direct path) when wslay holds nothing. */
#include "net/ws.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "util/mem.h"
#include "util/status.h"
#include "util/utf8.h"

/* ================================================================ handshake */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_MAX 128

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **p, size_t *n)
{
    while (*n > 0 && is_ows(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && is_ows((*p)[*n - 1]))
        (*n)--;
}

/* Returns 1 if the comma-separated list s[0..n) has an element equal to tok after trimming. */
static int list_has(const char *s, size_t n, const char *tok, int nocase)
{
    size_t toklen = strlen(tok);
    const char *end;

    if (!s) return 0;
    end = s + n;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        const char *e = s;
        size_t elen = (size_t)(stop - s);

        trim(&e, &elen);
        if (elen == toklen &&
            (nocase ? strncasecmp(e, tok, toklen) == 0 : memcmp(e, tok, toklen) == 0))
            return 1;
        if (!comma) break;
        s = comma + 1;
    }
    return 0;
}

static int is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* 16 bytes encode as 22 symbols and "==". The last symbol carries only 2 data bits, so its
 * low 4 bits must be zero (A, Q, g or w): anything else does not decode to exactly 16 bytes. */
static int key_ok(const char *k, size_t n)
{
    trim(&k, &n);
    if (n != 24 || k[22] != '=' || k[23] != '=') return 0;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64(k[i])) return 0;
    return strchr("AQgw", k[21]) != NULL;
}

int ws_handshake_check(const ws_handshake *h)
{
    const char *v = h->version;
    size_t vn = h->version_len;

    if (!list_has(h->upgrade, h->upgrade_len, "websocket", 1)) return 400;
    if (!list_has(h->connection, h->connection_len, "upgrade", 1)) return 400;
    if (!v) return 400;
    trim(&v, &vn);
    if (vn != 2 || memcmp(v, "13", 2) != 0) return 426;
    if (!h->key || !key_ok(h->key, h->key_len)) return 400;
    return 0;
}

int ws_offers_subprotocol(const char *value, size_t len)
{
    return list_has(value, len, WS_SUBPROTOCOL, 0);
}

int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    char buf[WS_KEY_MAX + sizeof(WS_GUID)];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (key_len > WS_KEY_MAX) return PL_EINVAL;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, WS_GUID, sizeof(WS_GUID) - 1);
    if (EVP_Digest(buf, key_len + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != 20)
        return PL_EINVAL;
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return PL_OK;
}

int ws_handshake_write_101(sbuf *out, const char *key, size_t key_len, int with_subprotocol)
{
    char accept[WS_ACCEPT_LEN + 1];
    const char *k = key;
    size_t kn = key_len;

    trim(&k, &kn);
    if (ws_accept_key(k, kn, accept) != PL_OK) return PL_EINVAL;
    sbuf_puts(out, "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: ");
    sbuf_puts(out, accept);
    sbuf_puts(out, "\r\n");
    if (with_subprotocol) sbuf_puts(out, "Sec-WebSocket-Protocol: " WS_SUBPROTOCOL "\r\n");
    sbuf_puts(out, "\r\n");
    return out->oom ? PL_ENOMEM : PL_OK;
}

int ws_handshake_write_426(sbuf *out)
{
    sbuf_puts(out, "HTTP/1.1 426 Upgrade Required\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "Connection: close\r\n"
                   "Content-Length: 0\r\n"
                   "\r\n");
    return out->oom ? PL_ENOMEM : PL_OK;
}

/* ================================================================ outgoing frames */

size_t ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], int opcode, uint64_t payload_len, int fin)
{
    switch (opcode) {
    case WS_OP_CONT:
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (payload_len > WS_CONTROL_PAYLOAD_MAX || !fin) return 0;
        break;
    default:
        return 0;
    }
    if (payload_len >> 63) return 0;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    return 10;
}

/* Returns the longest prefix of s[0..n) (n <= max) that does not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    size_t i;

    if (n <= max) return n;
    i = max;
    /* Back up over continuation bytes to the lead byte of the sequence cut at max. */
    while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
        i--;
    return i;
}

size_t ws_close_payload(uint8_t out[WS_CONTROL_PAYLOAD_MAX], uint16_t code, const char *reason)
{
    size_t n;

    if (code == 0) return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (!reason) return 2;
    n = utf8_cut(reason, strlen(reason), WS_CLOSE_REASON_MAX);
    memcpy(out + 2, reason, n);
    return 2 + n;
}

/* ================================================================ receive session
 *
 * States (ws_session_state) and the call that moves between them:
 *
 *   WS_OPEN --ws_session_close--> WS_CLOSING --peer close (feed)--> WS_CLOSED
 *      |                                                               ^
 *      +--peer close echoed, violation, send or memory failure (feed)--+
 *
 * Idle accounting: wslay reads ahead into its own 4 KiB buffer, so "all bytes fed were used"
 * cannot be asked of it. Instead every byte is counted: a frame header's size follows from its
 * payload length (wslay rejects non-minimal length encodings and unmasked client frames) and
 * payload bytes arrive through the chunk callback. fed == used with no frame or fragmented
 * message open means wslay holds nothing of the stream. */

#define WS_OUT_BATCH 256
/* Largest payload the direct path takes (it unmasks into a stack buffer). */
#define WS_FAST_MAX 8192

struct ws_session {
    wslay_event_context_ptr ctx; /* made when a frame needs wslay (need_ctx) */
    const ws_callbacks *cb;
    void *ud;
    const uint8_t *in; /* unread part of the bytes given to feed; borrowed */
    size_t in_len;
    uint64_t fed;
    uint64_t used;
    uint64_t frame_left; /* payload bytes of the open frame wslay has not passed on yet */
    size_t max_message;
    struct outbuf *out; /* set only while flushing */
    enum ws_state state;
    uint16_t close_code; /* code we sent first (ws_session_close or a violation we found) */
    unsigned in_feed : 1;
    unsigned in_frame : 1;   /* a frame's header was seen, its payload is incomplete */
    unsigned in_message : 1; /* a data frame without FIN was seen; continuations follow */
    unsigned send_failed : 1;
    unsigned wslay_only : 1; /* ws_session_wslay_only: no direct path */
};

struct outbuf {
    uint8_t data[WS_OUT_BATCH];
    size_t len;
    size_t frame_left; /* bytes of the frame being written still to come */
};

static size_t header_size(uint64_t payload_len)
{
    size_t n = 2 + 4; /* client frames carry a 4-byte mask key */

    if (payload_len > 0xffff)
        n += 8;
    else if (payload_len >= 126)
        n += 2;
    return n;
}

static ssize_t on_wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                             void *ud)
{
    ws_session *s = ud;
    size_t n = len < s->in_len ? len : s->in_len;

    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, s->in, n);
    s->in += n;
    s->in_len -= n;
    return (ssize_t)n;
}

static int out_flush(ws_session *s)
{
    struct outbuf *o = s->out;

    if (o->len > 0 && s->cb->send(s->ud, o->data, o->len) != 0) s->send_failed = 1;
    o->len = 0;
    return s->send_failed ? -1 : 0;
}

/* wslay writes a frame as a header call and a payload call; batching them keeps each of
 * cb->send's calls to whole frames. Only control frames pass here (at most 127 bytes, as server
 * frames are unmasked), so a batch flushed before a frame starts always has room for it. */
static ssize_t on_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                             int flags, void *ud)
{
    ws_session *s = ud;
    struct outbuf *o = s->out;

    if (s->send_failed || !o || len == 0) goto fail;
    if (o->frame_left == 0) {
        if (len < 2 || (data[1] & 0x7f) > WS_CONTROL_PAYLOAD_MAX) goto fail;
        o->frame_left = 2 + (size_t)(data[1] & 0x7f);
        if (sizeof(o->data) - o->len < o->frame_left && out_flush(s) != 0) goto fail;
    }
    if (len > o->frame_left) goto fail;
    memcpy(o->data + o->len, data, len);
    o->len += len;
    o->frame_left -= len;
    return (ssize_t)len;
fail:
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

/* Queues our close for a violation wslay does not check, and stops reading: wslay finishes the
 * current frame's bookkeeping but delivers nothing more. */
static void violation(ws_session *s, uint16_t code)
{
    if (wslay_event_queue_close(s->ctx, code, NULL, 0) == 0) s->close_code = code;
    wslay_event_shutdown_read(s->ctx);
}

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *ud)
{
    ws_session *s = ud;

    s->used += header_size(arg->payload_length);
    s->frame_left = arg->payload_length;
    s->in_frame = 1;
    if (arg->opcode == WSLAY_BINARY_FRAME)
        violation(s, WS_CLOSE_UNSUPPORTED);
    else if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->payload_length == 1)
        violation(s, WS_CLOSE_PROTOCOL); /* RFC 6455 5.5.1: a body starts with a 2-byte code */
    else if (arg->opcode == WSLAY_TEXT_FRAME)
        s->in_message = !arg->fin;
    else if (arg->opcode == WSLAY_CONTINUATION_FRAME && arg->fin)
        s->in_message = 0;
}

static void on_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *ud)
{
    ws_session *s = ud;

    s->used += arg->data_length;
    s->frame_left -= arg->data_length;
}

static void on_frame_end(wslay_event_context_ptr ctx, void *ud)
{
    ws_session *s = ud;

    s->in_frame = 0;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud)
{
    ws_session *s = ud;

    /* Once our close is queued, RFC 6455 7.1.4 lets us ignore data until the peer's close. */
    if (arg->opcode != WSLAY_TEXT_FRAME || s->close_code != 0 || s->state != WS_OPEN) return;
    if (!wslay_event_get_read_enabled(ctx)) return;
    s->cb->on_text(s->ud, arg->msg, arg->msg_length);
}

static const struct wslay_event_callbacks wslay_cbs = {
    .recv_callback = on_wslay_recv,
    .send_callback = on_wslay_send,
    .on_frame_recv_start_callback = on_frame_start,
    .on_frame_recv_chunk_callback = on_frame_chunk,
    .on_frame_recv_end_callback = on_frame_end,
    .on_msg_recv_callback = on_msg,
};

ws_session *ws_session_new(const ws_callbacks *cb, void *ud, size_t max_message)
{
    ws_session *s = pl_calloc(1, sizeof(*s));

    if (!s) return NULL;
    s->cb = cb;
    s->ud = ud;
    s->state = WS_OPEN;
    s->max_message = max_message < WS_CONTROL_PAYLOAD_MAX ? WS_CONTROL_PAYLOAD_MAX : max_message;
    return s;
}

/* wslay's context holds 8 KiB of buffers: most reads are whole plain text frames that the
 * direct path takes without it, so it is made only for the first frame that needs it. */
static int need_ctx(ws_session *s)
{
    if (s->ctx) return 0;
    if (wslay_event_context_server_init(&s->ctx, &wslay_cbs, s) != 0) {
        s->ctx = NULL;
        return -1;
    }
    wslay_event_config_set_max_recv_msg_length(s->ctx, s->max_message);
    return 0;
}

void ws_session_free(ws_session *s)
{
    if (!s) return;
    if (s->ctx) wslay_event_context_free(s->ctx);
    pl_free(s);
}

static void finish(ws_session *s, uint16_t code)
{
    if (s->state == WS_CLOSED) return;
    s->state = WS_CLOSED;
    if (s->ctx) {
        wslay_event_shutdown_read(s->ctx);
        wslay_event_shutdown_write(s->ctx);
    }
    s->cb->on_closed(s->ud, code);
}

/* Writes our own close frame, bypassing wslay, for failures after which wslay's queue is
 * unusable (it queues a close without a code on frame-level errors). */
static void send_close_direct(ws_session *s, uint16_t code)
{
    uint8_t frame[WS_FRAME_HEADER_MAX + WS_CONTROL_PAYLOAD_MAX];
    size_t n = ws_close_payload(frame + 2, code, NULL);

    ws_frame_header(frame, WS_OP_CLOSE, n, 1);
    if (s->cb->send(s->ud, frame, 2 + n) != 0) s->send_failed = 1;
}

/* Sends whatever wslay queued, then moves the state on from what has been exchanged. */
static int flush_and_settle(ws_session *s)
{
    struct outbuf o = {.len = 0, .frame_left = 0};
    int rv;
    int sent;

    if (!s->ctx) return PL_OK; /* only the direct path ran: nothing to send */
    s->out = &o;
    rv = wslay_event_send(s->ctx);
    if (rv == 0) out_flush(s);
    s->out = NULL;
    if (rv != 0 || s->send_failed) {
        finish(s, WS_CLOSE_ABNORMAL);
        return PL_EIO;
    }
    sent = wslay_event_get_close_sent(s->ctx);
    if (sent && wslay_event_get_close_received(s->ctx)) {
        uint16_t peer = wslay_event_get_status_code_received(s->ctx);
        finish(s, s->close_code ? s->close_code : peer);
    } else if (sent && !wslay_event_get_read_enabled(s->ctx)) {
        finish(s, s->close_code ? s->close_code : wslay_event_get_status_code_sent(s->ctx));
    } else if (sent) {
        s->state = WS_CLOSING;
    }
    return PL_OK;
}

void ws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4])
{
    uint32_t k32;
    memcpy(&k32, key, 4);
    uint64_t k = ((uint64_t)k32 << 32) | k32;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ key[i & 3];
}

/* The direct path: while wslay holds nothing, the complete, final, masked, non-empty text frames
 * at the start of data (minimal length encoding, payload within WS_FAST_MAX and max_message,
 * valid UTF-8) go straight to on_text. wslay's event layer would copy each into its buffer,
 * unmask it a byte at a time, allocate the message and check it again (9% of the server's CPU
 * in `bench publish`). It stops at the first frame that is anything else, which wslay then
 * reads with its usual result. Returns the bytes consumed. */
static size_t direct_frames(ws_session *s, const uint8_t *data, size_t len)
{
    uint8_t buf[WS_FAST_MAX];
    size_t at = 0;
    /* wslay stops reading at the peer's close, which it may have just read. */
    while (ws_session_idle(s) && (!s->ctx || wslay_event_get_read_enabled(s->ctx)) &&
           len - at >= 6) {
        const uint8_t *h = data + at;
        size_t plen = h[1] & 0x7fu, hl = 6;
        if (h[0] != 0x81 || !(h[1] & 0x80) || plen == 127) break;
        if (plen == 126) {
            if (len - at < 8) break;
            plen = ((size_t)h[2] << 8) | h[3];
            hl = 8;
            if (plen < 126) break;
        }
        if (plen == 0 || plen > WS_FAST_MAX || plen > s->max_message || len - at - hl < plen) break;
        ws_mask(buf, h + hl, plen, h + hl - 4);
        if (!utf8_valid(buf, plen)) break;
        at += hl + plen;
        s->fed += hl + plen;
        s->used += hl + plen;
        s->cb->on_text(s->ud, buf, plen);
    }
    return at;
}

/* How much of len bytes to give wslay next: only the rest of its open frame when that is known
 * (so the direct path can take the frames after it), else everything. */
static size_t wslay_share(const ws_session *s, size_t len)
{
    if (s->wslay_only || !s->in_frame || s->in_message || s->fed != s->used ||
        s->state != WS_OPEN || s->close_code != 0 || s->frame_left == 0 || s->frame_left >= len)
        return len;
    return (size_t)s->frame_left;
}

int ws_session_feed(ws_session *s, const uint8_t *data, size_t len)
{
    int rv = 0;
    uint16_t code;

    if (s->state == WS_CLOSED) return PL_DECLINED;
    s->in_feed = 1;
    while (len > 0 && rv == 0) {
        size_t n = s->wslay_only ? 0 : direct_frames(s, data, len);
        data += n;
        len -= n;
        if (len == 0) break;
        if (need_ctx(s) != 0) {
            rv = WSLAY_ERR_NOMEM;
            break;
        }
        n = wslay_share(s, len);
        s->in = data;
        s->in_len = n;
        s->fed += n;
        rv = wslay_event_recv(s->ctx);
        s->in = NULL;
        s->in_len = 0;
        data += n;
        len -= n;
    }
    s->in_feed = 0;
    if (rv == 0) return flush_and_settle(s);
    /* Frame-level errors (bad length encoding, oversized or fragmented control frame) come back
     * as a callback failure; anything else is wslay's allocation failing. */
    code = rv == WSLAY_ERR_CALLBACK_FAILURE ? WS_CLOSE_PROTOCOL : WS_CLOSE_INTERNAL;
    rv = code == WS_CLOSE_INTERNAL ? PL_ENOMEM : PL_OK;
    /* A close queued earlier in this feed (ws_session_close from a callback) is not sent yet;
     * it goes out in wslay's place with its own code. */
    if (s->close_code) code = s->close_code;
    if (!s->ctx || !wslay_event_get_close_sent(s->ctx)) send_close_direct(s, code);
    if (s->send_failed) {
        finish(s, WS_CLOSE_ABNORMAL);
        return PL_EIO;
    }
    finish(s, code);
    return rv;
}

static int code_sendable(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int ws_session_close(ws_session *s, uint16_t code, const char *reason)
{
    uint8_t payload[WS_CONTROL_PAYLOAD_MAX];
    size_t n;

    if (!code_sendable(code)) return PL_EINVAL;
    if (s->state != WS_OPEN || s->close_code != 0) return PL_DECLINED;
    if (need_ctx(s) != 0) return PL_ENOMEM;
    n = ws_close_payload(payload, code, reason);
    if (wslay_event_queue_close(s->ctx, code, payload + 2, n - 2) != 0) return PL_DECLINED;
    s->close_code = code;
    if (s->in_feed) return PL_OK;
    return flush_and_settle(s);
}

enum ws_state ws_session_state(const ws_session *s)
{
    return s->state;
}

int ws_session_idle(const ws_session *s)
{
    return s->state == WS_OPEN && s->close_code == 0 && s->fed == s->used && !s->in_frame &&
           !s->in_message;
}

void ws_session_wslay_only(ws_session *s)
{
    s->wslay_only = 1;
}
