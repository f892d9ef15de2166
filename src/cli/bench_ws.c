/* WebSocket handshake for the bench client. The response header block is
 * parsed with http-parser once it is complete (a blank line seen), so the
 * header callbacks always see whole fields and values. */
#include "cli/bench_ws.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "net/ws.h"
#include "util/status.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int bench_ws_key(char key[25])
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1) return -1;
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    return 0;
}

void bench_ws_accept(const char *key, char out[29])
{
    char in[128];
    unsigned char md[SHA_DIGEST_LENGTH];
    /* Keys we check are 24 chars; a longer one cannot match anyway. */
    int n = snprintf(in, sizeof(in), "%.64s%s", key, WS_GUID);
    SHA1((const unsigned char *)in, (size_t)n, md);
    EVP_EncodeBlock((unsigned char *)out, md, sizeof(md));
}

void bench_ws_request(sbuf *out, const char *host, int port, const char *path, const char *protocol,
                      const char *key)
{
    sbuf_printf(out,
                "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                "Sec-WebSocket-Version: 13\r\n",
                path, host, port, key);
    if (protocol) sbuf_printf(out, "Sec-WebSocket-Protocol: %s\r\n", protocol);
    sbuf_puts(out, "\r\n");
}

/* What the header callbacks collected. */
typedef struct hs_state {
    char field[64];
    size_t field_len;
    bool field_too_long;
    bool upgrade_ok, connection_ok, accept_ok;
    bool dup_accept;
    const char *key;
    bool done;
} hs_state;

static int on_field(http_parser *p, const char *at, size_t len)
{
    hs_state *st = p->data;
    st->field_too_long = len >= sizeof(st->field);
    st->field_len = st->field_too_long ? 0 : len;
    if (!st->field_too_long) memcpy(st->field, at, len);
    return 0;
}

static bool field_is(const hs_state *st, const char *name)
{
    return st->field_len == strlen(name) && strncasecmp(st->field, name, st->field_len) == 0;
}

/* Whether the comma-separated list v contains token tok (case-insensitive). */
static bool has_token(const char *v, size_t len, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0) return true;
    }
    return false;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    hs_state *st = p->data;
    if (field_is(st, "Upgrade")) {
        st->upgrade_ok = len == 9 && strncasecmp(at, "websocket", 9) == 0;
    } else if (field_is(st, "Connection")) {
        st->connection_ok = has_token(at, len, "upgrade");
    } else if (field_is(st, "Sec-WebSocket-Accept")) {
        char want[29];
        bench_ws_accept(st->key, want);
        if (st->accept_ok) st->dup_accept = true;
        st->accept_ok = len == 28 && memcmp(at, want, 28) == 0;
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    hs_state *st = p->data;
    st->done = true;
    /* 1: there is no body to look for after a 101 */
    return 1;
}

int bench_ws_check_response(const char *buf, size_t len, const char *key, size_t *consumed,
                            int *status)
{
    size_t scan = len < BENCH_WS_MAX_RESPONSE ? len : BENCH_WS_MAX_RESPONSE;
    const char *end = memmem(buf, scan, "\r\n\r\n", 4);
    if (!end) return len >= BENCH_WS_MAX_RESPONSE ? PL_EINVAL : PL_AGAIN;
    size_t head = (size_t)(end - buf) + 4;

    http_parser_settings settings;
    memset(&settings, 0, sizeof(settings));
    settings.on_header_field = on_field;
    settings.on_header_value = on_value;
    settings.on_headers_complete = on_headers_complete;
    hs_state st;
    memset(&st, 0, sizeof(st));
    st.key = key;
    http_parser parser;
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = &st;
    http_parser_execute(&parser, &settings, buf, head);
    if (HTTP_PARSER_ERRNO(&parser) != HPE_OK &&
        HTTP_PARSER_ERRNO(&parser) != HPE_CB_headers_complete)
        return PL_EINVAL;
    if (status) *status = (int)parser.status_code;
    if (!st.done || parser.status_code != 101 || !st.upgrade_ok || !st.connection_ok ||
        !st.accept_ok || st.dup_accept)
        return PL_EINVAL;
    *consumed = head;
    return PL_OK;
}

void bench_ws_frame(sbuf *out, int opcode, const void *data, size_t len, uint32_t mask)
{
    /* The server's header encoder, then the mask bit and key a client adds. */
    uint8_t h[WS_FRAME_HEADER_MAX + 4];
    size_t n = ws_frame_header(h, opcode, len, 1);
    if (!n) return;
    h[1] |= 0x80;
    uint8_t *key = h + n;
    key[0] = (uint8_t)(mask >> 24);
    key[1] = (uint8_t)(mask >> 16);
    key[2] = (uint8_t)(mask >> 8);
    key[3] = (uint8_t)mask;
    sbuf_append(out, h, n + 4);
    size_t at = out->len;
    sbuf_append(out, data, len);
    if (out->oom) return;
    uint8_t *p = (uint8_t *)out->data + at;
    ws_mask(p, p, len, key);
}

/* ------------------------------------------------------------ frame reading */

/* Header bytes a frame needs given its first n bytes (n >= 2): 2, 4 or 10. */
static size_t header_len(const uint8_t *p)
{
    uint8_t l7 = p[1] & 0x7f;
    return l7 == 126 ? 4 : l7 == 127 ? 10 : 2;
}

/* Decodes the header at p (all header_len bytes present). Returns NULL or
 * why the frame is refused before its payload is read. */
static const char *decode_header(const bench_ws_reader *r, const uint8_t *p, uint64_t *len)
{
    uint8_t op = p[0] & 0x0f;
    uint64_t l = p[1] & 0x7f;
    if ((p[0] & 0x70) || (p[1] & 0x80)) return "websocket protocol error";
    if (l == 126) {
        l = (uint64_t)p[2] << 8 | p[3];
    } else if (l == 127) {
        l = 0;
        for (int i = 2; i < 10; i++)
            l = l << 8 | p[i];
    }
    *len = l;
    switch (op) {
    case WS_OP_CONT:
        if (!r->msg_opcode) return "websocket protocol error";
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (r->msg_opcode) return "websocket protocol error";
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        return (p[0] & 0x80) && l <= 125 ? NULL : "websocket protocol error";
    default:
        return "websocket protocol error";
    }
    return l > BENCH_WS_MAX_MESSAGE - r->msg.len ? "websocket message too big" : NULL;
}

/* One whole frame (header already checked). *stop is set when cb asks. */
static const char *take_frame(bench_ws_reader *r, uint8_t b0, const char *data, size_t len,
                              bench_ws_on_frame cb, void *ud, bool *stop)
{
    int op = b0 & 0x0f;
    bool fin = b0 & 0x80;
    if (op >= WS_OP_CLOSE || (fin && op != WS_OP_CONT)) {
        *stop = cb(ud, op, data, len) != 0;
        return NULL;
    }
    if (op != WS_OP_CONT) r->msg_opcode = op;
    sbuf_append(&r->msg, data, len);
    if (r->msg.oom) return "out of memory";
    if (fin) {
        op = r->msg_opcode;
        r->msg_opcode = 0;
        *stop = cb(ud, op, r->msg.data, r->msg.len) != 0;
        sbuf_reset(&r->msg);
    }
    return NULL;
}

/* Size of the frame (header and payload) starting with the n bytes at p,
 * or 0 while its header is incomplete; *why is set when it is refused. */
static size_t frame_size(const bench_ws_reader *r, const uint8_t *p, size_t n, const char **why)
{
    if (n < 2 || n < header_len(p)) return 0;
    uint64_t plen = 0;
    if ((*why = decode_header(r, p, &plen))) return 0;
    return header_len(p) + (size_t)plen;
}

/* Moves bytes of a split frame into carry until it is whole. Returns the
 * bytes taken from data; *whole says whether carry now holds the frame. */
static size_t fill_carry(bench_ws_reader *r, const char *data, size_t len, const char **why,
                         bool *whole)
{
    size_t used = 0;
    *whole = false;
    for (;;) {
        const uint8_t *p = (const uint8_t *)r->carry.data;
        size_t total = frame_size(r, p, r->carry.len, why);
        if (*why) return used;
        if (total && r->carry.len == total) {
            *whole = true;
            return used;
        }
        if (used == len) return used;
        size_t want = total ? total : r->carry.len < 2 ? 2 : header_len(p);
        size_t take = want - r->carry.len < len - used ? want - r->carry.len : len - used;
        sbuf_append(&r->carry, data + used, take);
        if (r->carry.oom) {
            *why = "out of memory";
            return used;
        }
        used += take;
    }
}

const char *bench_ws_read(bench_ws_reader *r, const char *data, size_t len, bench_ws_on_frame cb,
                          void *ud)
{
    const char *why = NULL;
    bool stop = false;
    size_t used = 0;
    if (r->carry.len) {
        bool whole;
        used = fill_carry(r, data, len, &why, &whole);
        if (why || !whole) return why;
        const uint8_t *p = (const uint8_t *)r->carry.data;
        size_t hl = header_len(p);
        why = take_frame(r, p[0], r->carry.data + hl, r->carry.len - hl, cb, ud, &stop);
        sbuf_reset(&r->carry);
        if (why || stop) return why;
    }
    while (used < len) {
        const uint8_t *p = (const uint8_t *)data + used;
        size_t n = len - used;
        size_t total = frame_size(r, p, n, &why);
        if (why) return why;
        if (!total || total > n) {
            sbuf_append(&r->carry, p, n);
            return r->carry.oom ? "out of memory" : NULL;
        }
        size_t hl = header_len(p);
        why = take_frame(r, p[0], (const char *)p + hl, total - hl, cb, ud, &stop);
        if (why || stop) return why;
        used += total;
    }
    return NULL;
}

void bench_ws_reader_release(bench_ws_reader *r)
{
    sbuf_release(&r->carry);
    sbuf_release(&r->msg);
    r->msg_opcode = 0;
}
