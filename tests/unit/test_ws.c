/* Unit tests for net/ws: handshake checks, server frame headers, and the receive session fed
 * with client frames built here by a small masked-frame encoder, including hostile input. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/ws.h"
#include "util/mem.h"
#include "util/sbuf.h"
#include "util/status.h"

/* ================================================================ helpers */

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends one client frame to b: masked unless mask is 0, minimal length encoding. */
static void frame_raw(sbuf *b, int fin, int rsv, int opcode, int mask, const void *payload,
                      size_t len)
{
    const uint8_t *p = payload;
    uint8_t hdr[14];
    size_t n = 0;

    hdr[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | opcode);
    if (len < 126) {
        hdr[n++] = (uint8_t)((mask ? 0x80 : 0) | len);
    } else if (len <= 0xffff) {
        hdr[n++] = (uint8_t)((mask ? 0x80 : 0) | 126);
        hdr[n++] = (uint8_t)(len >> 8);
        hdr[n++] = (uint8_t)len;
    } else {
        hdr[n++] = (uint8_t)((mask ? 0x80 : 0) | 127);
        for (int i = 0; i < 8; i++)
            hdr[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (mask) {
        memcpy(hdr + n, MASK, 4);
        n += 4;
    }
    sbuf_append(b, hdr, n);
    for (size_t i = 0; i < len; i++)
        sbuf_putc(b, (char)(p[i] ^ (mask ? MASK[i % 4] : 0)));
}

static void frame(sbuf *b, int fin, int opcode, const char *text)
{
    frame_raw(b, fin, 0, opcode, 1, text, strlen(text));
}

static void close_frame(sbuf *b, uint16_t code, const char *reason)
{
    uint8_t p[WS_CONTROL_PAYLOAD_MAX];
    size_t n = ws_close_payload(p, code, reason);

    frame_raw(b, 1, 0, WS_OP_CLOSE, 1, p, n);
}

/* What the session reported, for assertions. */
typedef struct rec {
    sbuf texts; /* messages joined by '|' */
    int ntext;
    sbuf out; /* bytes the session asked to send */
    int nsend;
    int closed;
    uint16_t code;
    int fail_send;
    uint16_t close_on_text; /* ws_session_close with this code from on_text */
    ws_session *s;
} rec;

static void on_text(void *ud, const uint8_t *data, size_t len)
{
    rec *r = ud;

    if (r->ntext++) sbuf_putc(&r->texts, '|');
    sbuf_append(&r->texts, data, len);
    if (r->close_on_text)
        assert_int_equal(ws_session_close(r->s, r->close_on_text, "bad json"), PL_OK);
}

static int on_send(void *ud, const uint8_t *data, size_t len)
{
    rec *r = ud;

    /* Every call holds whole unmasked control frames. */
    for (size_t i = 0; i < len; i += 2 + (data[i + 1] & 0x7f)) {
        assert_true(len - i >= 2);
        assert_true(data[i] == 0x88 || data[i] == 0x8a);
        assert_true(data[i + 1] <= 125);
        assert_true(len - i - 2 >= data[i + 1]);
    }
    if (r->fail_send) return -1;
    r->nsend++;
    sbuf_append(&r->out, data, len);
    return 0;
}

static void on_closed(void *ud, uint16_t code)
{
    rec *r = ud;

    r->closed++;
    r->code = code;
}

static const ws_callbacks CBS = {on_text, on_send, on_closed};

static void rec_init(rec *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    sbuf_init(&r->texts);
    sbuf_init(&r->out);
    r->s = ws_session_new(&CBS, r, max);
    assert_non_null(r->s);
}

static void rec_release(rec *r)
{
    ws_session_free(r->s);
    sbuf_release(&r->texts);
    sbuf_release(&r->out);
}

static int feed(rec *r, const sbuf *b)
{
    return ws_session_feed(r->s, (const uint8_t *)b->data, b->len);
}

static const char *texts(rec *r)
{
    return r->texts.len ? r->texts.data : "";
}

/* Asserts the session sent exactly one close frame with code and then closed with it. */
static void assert_closed_with(rec *r, uint16_t code)
{
    uint8_t want[4] = {0x88, 0x02, (uint8_t)(code >> 8), (uint8_t)code};

    assert_int_equal(r->out.len, 4);
    assert_memory_equal(r->out.data, want, 4);
    assert_int_equal(r->closed, 1);
    assert_int_equal(r->code, code);
    assert_int_equal(ws_session_state(r->s), WS_CLOSED);
    assert_int_equal(ws_session_idle(r->s), 0);
}

/* ================================================================ handshake */

#define SP(s) s, sizeof(s) - 1

static void test_handshake_table(void **state)
{
    static const struct {
        const char *up, *conn, *ver, *key;
        int want;
    } rows[] = {
        {"websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", 0},
        {"WebSocket", "keep-alive, Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", 0},
        {" websocket ", "upgrade ,keep-alive", " 13 ", " AAAAAAAAAAAAAAAAAAAAAA== ", 0},
        {"h2c, websocket", "UPGRADE", "13", "/////////////////////w==", 0},
        {NULL, "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", 400},
        {"h2c", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", 400},
        {"websockets", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", 400},
        {"websocket", NULL, "13", "dGhlIHNhbXBsZSBub25jZQ==", 400},
        {"websocket", "keep-alive", "13", "dGhlIHNhbXBsZSBub25jZQ==", 400},
        {"websocket", "upgraded", "13", "dGhlIHNhbXBsZSBub25jZQ==", 400},
        {"websocket", "", "13", "dGhlIHNhbXBsZSBub25jZQ==", 400},
        {"websocket", "Upgrade", NULL, "dGhlIHNhbXBsZSBub25jZQ==", 400},
        {"websocket", "Upgrade", "8", "dGhlIHNhbXBsZSBub25jZQ==", 426},
        {"websocket", "Upgrade", "", "dGhlIHNhbXBsZSBub25jZQ==", 426},
        {"websocket", "Upgrade", "13, 8", "dGhlIHNhbXBsZSBub25jZQ==", 426},
        {"websocket", "Upgrade", "130", "dGhlIHNhbXBsZSBub25jZQ==", 426},
        {"websocket", "Upgrade", "13", NULL, 400},
        {"websocket", "Upgrade", "13", "", 400},
        {"websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ", 400},       /* no padding */
        {"websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZR==", 400},     /* 17th bits set */
        {"websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ=", 400},      /* short */
        {"websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25j*Q==", 400},     /* bad symbol */
        {"websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ===", 400},    /* long */
        {"websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQAA", 400},     /* 18 bytes */
        {"websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZSBhbmQ=", 400}, /* 20 bytes */
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ws_handshake h = {
            rows[i].up,   rows[i].up ? strlen(rows[i].up) : 0,
            rows[i].conn, rows[i].conn ? strlen(rows[i].conn) : 0,
            rows[i].ver,  rows[i].ver ? strlen(rows[i].ver) : 0,
            rows[i].key,  rows[i].key ? strlen(rows[i].key) : 0,
        };
        int got = ws_handshake_check(&h);
        if (got != rows[i].want) fail_msg("row %zu: got %d want %d", i, got, rows[i].want);
    }
}

static void test_handshake_spans_not_terminated(void **state)
{
    /* The header values are spans into a request buffer: bytes after them must not count. */
    const char buf[] = "websocketXUpgradeX13XdGhlIHNhbXBsZSBub25jZQ==X";
    ws_handshake h = {buf, 9, buf + 10, 7, buf + 18, 2, buf + 21, 24};

    assert_int_equal(ws_handshake_check(&h), 0);
    h.version_len = 1;
    assert_int_equal(ws_handshake_check(&h), 426);
    h.version_len = 2;
    h.key_len = 23;
    assert_int_equal(ws_handshake_check(&h), 400);
}

static void test_accept_key(void **state)
{
    char out[WS_ACCEPT_LEN + 1];
    char big[200];

    assert_int_equal(ws_accept_key(SP("dGhlIHNhbXBsZSBub25jZQ=="), out), PL_OK);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    memset(big, 'A', sizeof(big));
    assert_int_equal(ws_accept_key(big, sizeof(big), out), PL_EINVAL);
}

static void test_handshake_responses(void **state)
{
    sbuf b;

    sbuf_init(&b);
    assert_int_equal(ws_handshake_write_101(&b, SP(" dGhlIHNhbXBsZSBub25jZQ== "), 1), PL_OK);
    assert_string_equal(b.data, "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                "Sec-WebSocket-Protocol: parley.v1\r\n"
                                "\r\n");
    sbuf_reset(&b);
    assert_int_equal(ws_handshake_write_101(&b, SP("dGhlIHNhbXBsZSBub25jZQ=="), 0), PL_OK);
    assert_null(strstr(b.data, "Sec-WebSocket-Protocol"));
    assert_non_null(strstr(b.data, "\r\n\r\n"));
    sbuf_reset(&b);
    assert_int_equal(ws_handshake_write_426(&b), PL_OK);
    assert_non_null(strstr(b.data, "426 Upgrade Required\r\n"));
    assert_non_null(strstr(b.data, "Sec-WebSocket-Version: 13\r\n"));
    sbuf_release(&b);
}

static void test_subprotocol_table(void **state)
{
    static const struct {
        const char *v;
        int want;
    } rows[] = {
        {"parley.v1", 1},
        {"chat, parley.v1", 1},
        {"  parley.v1  ,chat", 1},
        {"a,\tparley.v1\t,b", 1},
        {"chat", 0},
        {"", 0},
        {",,,", 0},
        {"parley.v10", 0},
        {"parley.v", 0},
        {"xparley.v1", 0},
        {"Parley.V1", 0},
        {"parley.v1x, chat", 0},
        {"parley v1", 0},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (ws_offers_subprotocol(rows[i].v, strlen(rows[i].v)) != rows[i].want)
            fail_msg("row %zu (%s)", i, rows[i].v);
    assert_int_equal(ws_offers_subprotocol(NULL, 0), 0);
    /* A span that stops before the token's end must not match. */
    assert_int_equal(ws_offers_subprotocol("parley.v1", 8), 0);
}

/* ================================================================ outgoing frames */

static void test_frame_header_table(void **state)
{
    static const struct {
        int op;
        uint64_t len;
        int fin;
        size_t n;
        uint8_t want[10];
    } rows[] = {
        {WS_OP_TEXT, 0, 1, 2, {0x81, 0x00}},
        {WS_OP_TEXT, 125, 1, 2, {0x81, 0x7d}},
        {WS_OP_TEXT, 126, 1, 4, {0x81, 0x7e, 0x00, 0x7e}},
        {WS_OP_TEXT, 65535, 1, 4, {0x81, 0x7e, 0xff, 0xff}},
        {WS_OP_TEXT, 65536, 1, 10, {0x81, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}},
        {WS_OP_TEXT, 0x0102030405060708ull, 1, 10, {0x81, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8}},
        {WS_OP_TEXT, 5, 0, 2, {0x01, 0x05}},
        {WS_OP_CONT, 5, 1, 2, {0x80, 0x05}},
        {WS_OP_BINARY, 1, 1, 2, {0x82, 0x01}},
        {WS_OP_CLOSE, 2, 1, 2, {0x88, 0x02}},
        {WS_OP_PING, 125, 1, 2, {0x89, 0x7d}},
        {WS_OP_PONG, 0, 1, 2, {0x8a, 0x00}},
        {WS_OP_PING, 126, 1, 0, {0}},
        {WS_OP_CLOSE, 2, 0, 0, {0}},
        {3, 1, 1, 0, {0}},
        {0xb, 1, 1, 0, {0}},
        {-1, 1, 1, 0, {0}},
        {WS_OP_TEXT, 1ull << 63, 1, 0, {0}},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t out[WS_FRAME_HEADER_MAX];
        size_t n = ws_frame_header(out, rows[i].op, rows[i].len, rows[i].fin);
        if (n != rows[i].n) fail_msg("row %zu: length %zu want %zu", i, n, rows[i].n);
        assert_memory_equal(out, rows[i].want, n);
    }
}

static void test_close_payload(void **state)
{
    uint8_t out[WS_CONTROL_PAYLOAD_MAX];
    char reason[300];
    size_t n;

    assert_int_equal(ws_close_payload(out, 0, "ignored"), 0);
    assert_int_equal(ws_close_payload(out, 1000, NULL), 2);
    assert_memory_equal(out, "\x03\xe8", 2);
    n = ws_close_payload(out, 4501, "bye");
    assert_int_equal(n, 5);
    assert_memory_equal(out,
                        "\x11\x95"
                        "bye",
                        5);

    memset(reason, 'a', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    assert_int_equal(ws_close_payload(out, 1000, reason), 125);

    /* 122 ASCII bytes then a 2-byte character: cutting at 123 would split it. */
    memset(reason, 'a', 122);
    strcpy(reason + 122, "\xc3\xa9tail");
    assert_int_equal(ws_close_payload(out, 1000, reason), 2 + 122);
    /* 121 then the same character fits exactly. */
    memset(reason, 'a', 121);
    strcpy(reason + 121, "\xc3\xa9tail");
    assert_int_equal(ws_close_payload(out, 1000, reason), 2 + 123);
    assert_memory_equal(out + 2 + 121, "\xc3\xa9", 2);
    /* A 4-byte character straddling the limit is dropped whole. */
    memset(reason, 'a', 121);
    strcpy(reason + 121, "\xf0\x9f\x98\x80");
    assert_int_equal(ws_close_payload(out, 1000, reason), 2 + 121);
}

/* ================================================================ receive session */

static void test_single_text(void **state)
{
    rec r;
    sbuf in;

    rec_init(&r, 1024);
    sbuf_init(&in);
    assert_int_equal(ws_session_idle(r.s), 1);
    frame(&in, 1, WS_OP_TEXT, "{\"id\":1,\"method\":\"ping\"}");
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.ntext, 1);
    assert_string_equal(texts(&r), "{\"id\":1,\"method\":\"ping\"}");
    assert_int_equal(r.out.len, 0);
    assert_int_equal(ws_session_state(r.s), WS_OPEN);
    assert_int_equal(ws_session_idle(r.s), 1);
    /* Empty feeds and empty messages are fine. */
    assert_int_equal(ws_session_feed(r.s, NULL, 0), PL_OK);
    sbuf_reset(&in);
    frame(&in, 1, WS_OP_TEXT, "");
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.ntext, 2);
    assert_int_equal(r.closed, 0);
    sbuf_release(&in);
    rec_release(&r);
}

static void test_byte_by_byte(void **state)
{
    rec r;
    sbuf in;
    char msg[301];

    for (size_t i = 0; i < 300; i++)
        msg[i] = (char)('a' + i % 26);
    msg[300] = '\0';
    rec_init(&r, 1024);
    sbuf_init(&in);
    frame(&in, 1, WS_OP_TEXT, msg);            /* 16-bit length form */
    frame(&in, 1, WS_OP_TEXT, "\xe2\x82\xac"); /* a 3-byte character split across feeds */
    for (size_t i = 0; i < in.len; i++) {
        assert_int_equal(ws_session_feed(r.s, (const uint8_t *)in.data + i, 1), PL_OK);
        /* Idle exactly at the frame boundaries. */
        assert_int_equal(ws_session_idle(r.s), i + 1 == 8 + 300 || i + 1 == in.len);
    }
    assert_int_equal(r.ntext, 2);
    assert_memory_equal(r.texts.data, msg, 300);
    assert_string_equal(r.texts.data + 301, "\xe2\x82\xac");
    sbuf_release(&in);
    rec_release(&r);
}

static void test_fragmented_with_ping(void **state)
{
    rec r;
    sbuf in;

    rec_init(&r, 1024);
    sbuf_init(&in);
    frame(&in, 0, WS_OP_TEXT, "Hel");
    frame(&in, 1, WS_OP_PING, "p1");
    frame(&in, 0, WS_OP_CONT, "lo \xc3"); /* UTF-8 sequence split across fragments */
    frame(&in, 1, WS_OP_PONG, "unsolicited");
    frame(&in, 0, WS_OP_CONT, "");
    frame(&in, 1, WS_OP_CONT, "\xa9t\xc3\xa9");
    frame(&in, 1, WS_OP_TEXT, "next");
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.ntext, 2);
    assert_string_equal(texts(&r), "Hello \xc3\xa9t\xc3\xa9|next");
    assert_int_equal(r.out.len, 4);
    assert_memory_equal(r.out.data, "\x8a\x02p1", 4);
    assert_int_equal(ws_session_idle(r.s), 1);
    assert_int_equal(r.closed, 0);
    sbuf_release(&in);
    rec_release(&r);
}

static void test_fragmented_not_idle(void **state)
{
    rec r;
    sbuf in;

    rec_init(&r, 1024);
    sbuf_init(&in);
    frame(&in, 0, WS_OP_TEXT, "part");
    assert_int_equal(feed(&r, &in), PL_OK);
    /* Every byte fed is used, but a message is half received: the session holds state. */
    assert_int_equal(ws_session_idle(r.s), 0);
    assert_int_equal(r.ntext, 0);
    sbuf_reset(&in);
    frame(&in, 1, WS_OP_CONT, "ial");
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(ws_session_idle(r.s), 1);
    assert_string_equal(texts(&r), "partial");
    sbuf_release(&in);
    rec_release(&r);
}

static void test_two_messages_one_feed(void **state)
{
    rec r;
    sbuf in;

    rec_init(&r, 1024);
    sbuf_init(&in);
    frame(&in, 1, WS_OP_TEXT, "{\"a\":1}");
    frame(&in, 1, WS_OP_TEXT, "{\"b\":2}\n{\"c\":3}");
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.ntext, 2);
    assert_string_equal(texts(&r), "{\"a\":1}|{\"b\":2}\n{\"c\":3}");
    sbuf_release(&in);
    rec_release(&r);
}

static void test_ping_pong(void **state)
{
    rec r;
    sbuf in;
    char big[126];
    uint8_t want[2 + 125];

    memset(big, 'z', 125);
    big[125] = '\0';
    rec_init(&r, 1024);
    sbuf_init(&in);
    frame(&in, 1, WS_OP_PING, "abcd");
    frame(&in, 1, WS_OP_PING, "");
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.out.len, 8);
    assert_memory_equal(r.out.data,
                        "\x8a\x04"
                        "abcd"
                        "\x8a\x00",
                        8);
    sbuf_reset(&in);
    sbuf_reset(&r.out);
    frame(&in, 1, WS_OP_PING, big);
    assert_int_equal(feed(&r, &in), PL_OK);
    want[0] = 0x8a;
    want[1] = 125;
    memset(want + 2, 'z', 125);
    assert_int_equal(r.out.len, sizeof(want));
    assert_memory_equal(r.out.data, want, sizeof(want));
    assert_int_equal(r.ntext, 0);
    assert_int_equal(r.closed, 0);
    sbuf_release(&in);
    rec_release(&r);
}

static void test_many_pings_batched_in_order(void **state)
{
    rec r;
    sbuf in, want;
    uint8_t p[WS_CONTROL_PAYLOAD_MAX];

    rec_init(&r, 1024);
    sbuf_init(&in);
    sbuf_init(&want);
    for (int i = 0; i < 60; i++) {
        size_t n = (size_t)(i * 37) % 126; /* lengths 0..125 so batches fill unevenly */
        memset(p, 'a' + i % 26, n);
        frame_raw(&in, 1, 0, WS_OP_PING, 1, p, n);
        sbuf_putc(&want, (char)0x8a);
        sbuf_putc(&want, (char)n);
        sbuf_append(&want, p, n);
    }
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.out.len, want.len);
    assert_memory_equal(r.out.data, want.data, want.len);
    /* Batched: fewer send calls than pongs, yet every call held whole frames (on_send). */
    assert_true(r.nsend < 60);
    assert_true(r.nsend > 1);
    sbuf_release(&want);
    sbuf_release(&in);
    rec_release(&r);
}

static void test_close_handshake(void **state)
{
    rec r;
    sbuf in;

    rec_init(&r, 1024);
    sbuf_init(&in);
    frame(&in, 1, WS_OP_TEXT, "last");
    close_frame(&in, 1001, "going");
    frame(&in, 1, WS_OP_TEXT, "after close");
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_string_equal(texts(&r), "last");
    assert_int_equal(r.out.len, 9);
    assert_memory_equal(r.out.data, "\x88\x07\x03\xe9going", 9);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.code, 1001);
    assert_int_equal(ws_session_state(r.s), WS_CLOSED);
    assert_int_equal(feed(&r, &in), PL_DECLINED);
    assert_int_equal(ws_session_close(r.s, 1000, NULL), PL_DECLINED);
    assert_int_equal(r.closed, 1);
    rec_release(&r);

    /* A close without a body is echoed empty and reported as 1005. */
    rec_init(&r, 1024);
    sbuf_reset(&in);
    close_frame(&in, 0, NULL);
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.out.len, 2);
    assert_memory_equal(r.out.data, "\x88\x00", 2);
    assert_int_equal(r.code, WS_CLOSE_NO_STATUS);
    assert_int_equal(r.closed, 1);
    sbuf_release(&in);
    rec_release(&r);
}

static void test_server_close(void **state)
{
    rec r;
    sbuf in;
    char reason[200];

    rec_init(&r, 1024);
    sbuf_init(&in);
    assert_int_equal(ws_session_close(r.s, 0, NULL), PL_EINVAL);
    assert_int_equal(ws_session_close(r.s, 1005, NULL), PL_EINVAL);
    assert_int_equal(ws_session_close(r.s, 1006, NULL), PL_EINVAL);
    assert_int_equal(ws_session_close(r.s, 999, NULL), PL_EINVAL);
    assert_int_equal(ws_session_close(r.s, 2000, NULL), PL_EINVAL);
    assert_int_equal(ws_session_close(r.s, 5000, NULL), PL_EINVAL);
    assert_int_equal(r.out.len, 0);

    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    assert_int_equal(ws_session_close(r.s, 4000, reason), PL_OK);
    assert_int_equal(r.out.len, 2 + 125);
    assert_memory_equal(r.out.data, "\x88\x7d\x0f\xa0rrr", 7);
    assert_int_equal(ws_session_state(r.s), WS_CLOSING);
    assert_int_equal(ws_session_idle(r.s), 0);
    assert_int_equal(r.closed, 0);
    assert_int_equal(ws_session_close(r.s, 1000, NULL), PL_DECLINED);

    /* Data after our close is ignored, pings are not answered; the peer's close ends it. */
    sbuf_reset(&r.out);
    frame(&in, 1, WS_OP_TEXT, "late");
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.ntext, 0);
    assert_int_equal(ws_session_state(r.s), WS_CLOSING);
    sbuf_reset(&in);
    close_frame(&in, 1000, NULL);
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.out.len, 0); /* our close was already sent; nothing is echoed */
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.code, 4000);
    assert_int_equal(ws_session_state(r.s), WS_CLOSED);
    sbuf_release(&in);
    rec_release(&r);
}

static void test_close_from_callback(void **state)
{
    rec r;
    sbuf in;

    rec_init(&r, 1024);
    r.close_on_text = 4501;
    sbuf_init(&in);
    frame(&in, 1, WS_OP_TEXT, "not json");
    frame(&in, 1, WS_OP_TEXT, "dropped");
    frame(&in, 1, WS_OP_PING, "x");
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.ntext, 1);
    assert_int_equal(r.out.len, 12);
    assert_memory_equal(r.out.data,
                        "\x88\x0a\x11\x95"
                        "bad json",
                        12);
    assert_int_equal(ws_session_state(r.s), WS_CLOSING);
    sbuf_reset(&in);
    close_frame(&in, 4501, NULL);
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.code, 4501);
    sbuf_release(&in);
    rec_release(&r);
}

/* Message limit for the hostile-input tests (the session raises anything under 125). */
#define TEST_MAX 200

/* Builds a hostile stream for test_violation_table. */
typedef void (*build_fn)(sbuf *b);

static void b_bad_utf8(sbuf *b)
{
    frame(b, 1, WS_OP_TEXT, "ok \xff");
}
static void b_overlong_utf8(sbuf *b)
{
    frame(b, 1, WS_OP_TEXT, "\xc0\xaf");
}
static void b_surrogate(sbuf *b)
{
    frame(b, 1, WS_OP_TEXT, "\xed\xa0\x80");
}
static void b_truncated_utf8(sbuf *b)
{
    frame(b, 1, WS_OP_TEXT, "end \xe2\x82");
}
static void b_bad_utf8_fragment(sbuf *b)
{
    frame(b, 0, WS_OP_TEXT, "ok");
    frame(b, 1, WS_OP_CONT, "\x80");
}
static void b_binary(sbuf *b)
{
    frame_raw(b, 1, 0, WS_OP_BINARY, 1, "\x00\x01", 2);
}
static void b_binary_fragment(sbuf *b)
{
    frame_raw(b, 0, 0, WS_OP_BINARY, 1, "\x00\x01", 2);
}
static void b_unmasked(sbuf *b)
{
    frame_raw(b, 1, 0, WS_OP_TEXT, 0, "hi", 2);
}
static void b_unmasked_ping(sbuf *b)
{
    frame_raw(b, 1, 0, WS_OP_PING, 0, "", 0);
}
static void b_rsv1(sbuf *b)
{
    frame_raw(b, 1, 4, WS_OP_TEXT, 1, "hi", 2);
}
static void b_rsv3(sbuf *b)
{
    frame_raw(b, 1, 1, WS_OP_TEXT, 1, "hi", 2);
}
static void b_opcode3(sbuf *b)
{
    frame_raw(b, 1, 0, 3, 1, "hi", 2);
}
static void b_opcode_b(sbuf *b)
{
    frame_raw(b, 1, 0, 0xb, 1, "", 0);
}
static void b_lone_continuation(sbuf *b)
{
    frame(b, 1, WS_OP_CONT, "x");
}
static void b_text_inside_fragmented(sbuf *b)
{
    frame(b, 0, WS_OP_TEXT, "a");
    frame(b, 1, WS_OP_TEXT, "b");
}
static void b_long_ping(sbuf *b)
{
    char p[127];
    memset(p, 'p', 126);
    p[126] = '\0';
    frame(b, 1, WS_OP_PING, p);
}
static void b_fragmented_ping(sbuf *b)
{
    frame(b, 0, WS_OP_PING, "p");
}
static void b_nonminimal_len16(sbuf *b)
{
    sbuf_append(b,
                "\x81\xfe\x00\x05"
                "\0\0\0\0"
                "hello",
                13);
}
static void b_nonminimal_len64(sbuf *b)
{
    sbuf_append(b,
                "\x81\xff\0\0\0\0\0\0\x00\x05"
                "\0\0\0\0"
                "hello",
                19);
}
static void b_len_top_bit(sbuf *b)
{
    sbuf_append(b,
                "\x81\xff\x80\0\0\0\0\x01\0\0"
                "\0\0\0\0"
                "x",
                15);
}
static void b_close_len1(sbuf *b)
{
    frame_raw(b, 1, 0, WS_OP_CLOSE, 1, "\x03", 1);
}
static void b_close_code_999(sbuf *b)
{
    close_frame(b, 999, NULL);
}
static void b_close_code_1005(sbuf *b)
{
    close_frame(b, 1005, NULL);
}
static void b_close_code_5000(sbuf *b)
{
    close_frame(b, 5000, NULL);
}
static void b_close_bad_reason(sbuf *b)
{
    frame_raw(b, 1, 0, WS_OP_CLOSE, 1, "\x03\xe8\xff", 3);
}
static void b_oversized(sbuf *b)
{
    char m[TEST_MAX + 2];
    memset(m, 'm', TEST_MAX + 1);
    m[TEST_MAX + 1] = '\0';
    frame(b, 1, WS_OP_TEXT, m);
}
static void b_oversized_fragments(sbuf *b)
{
    char m[TEST_MAX / 2 + 2];
    memset(m, 'm', TEST_MAX / 2 + 1);
    m[TEST_MAX / 2 + 1] = '\0';
    frame(b, 0, WS_OP_TEXT, m);
    frame(b, 1, WS_OP_CONT, m);
}
static void b_valid_then_bad(sbuf *b)
{
    frame(b, 1, WS_OP_TEXT, "fine");
    frame(b, 1, WS_OP_PING, "p");
    frame_raw(b, 1, 0, WS_OP_TEXT, 0, "bad", 3);
}

static void test_violation_table(void **state)
{
    static const struct {
        const char *name;
        build_fn build;
        uint16_t code;
        int ntext;  /* messages delivered before the violation */
        size_t pre; /* bytes sent before the close */
    } rows[] = {
        {"bad utf8", b_bad_utf8, 1007, 0, 0},
        {"overlong utf8", b_overlong_utf8, 1007, 0, 0},
        {"surrogate", b_surrogate, 1007, 0, 0},
        {"truncated utf8", b_truncated_utf8, 1007, 0, 0},
        {"bad utf8 in fragment", b_bad_utf8_fragment, 1007, 0, 0},
        {"binary", b_binary, 1003, 0, 0},
        {"binary fragment", b_binary_fragment, 1003, 0, 0},
        {"unmasked", b_unmasked, 1002, 0, 0},
        {"unmasked ping", b_unmasked_ping, 1002, 0, 0},
        {"rsv1", b_rsv1, 1002, 0, 0},
        {"rsv3", b_rsv3, 1002, 0, 0},
        {"opcode 3", b_opcode3, 1002, 0, 0},
        {"opcode 0xb", b_opcode_b, 1002, 0, 0},
        {"lone continuation", b_lone_continuation, 1002, 0, 0},
        {"text inside fragmented", b_text_inside_fragmented, 1002, 0, 0},
        {"ping over 125", b_long_ping, 1002, 0, 0},
        {"fragmented ping", b_fragmented_ping, 1002, 0, 0},
        {"non-minimal 16-bit length", b_nonminimal_len16, 1002, 0, 0},
        {"non-minimal 64-bit length", b_nonminimal_len64, 1002, 0, 0},
        {"length top bit", b_len_top_bit, 1002, 0, 0},
        {"close body of 1 byte", b_close_len1, 1002, 0, 0},
        {"close code 999", b_close_code_999, 1002, 0, 0},
        {"close code 1005", b_close_code_1005, 1002, 0, 0},
        {"close code 5000", b_close_code_5000, 1002, 0, 0},
        {"close reason not utf8", b_close_bad_reason, 1007, 0, 0},
        {"oversized", b_oversized, 1009, 0, 0},
        {"oversized in fragments", b_oversized_fragments, 1009, 0, 0},
        /* wslay sends a queued close ahead of a queued pong; the pong is then dropped. */
        {"valid then unmasked", b_valid_then_bad, 1002, 1, 0},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t want[4] = {0x88, 0x02, (uint8_t)(rows[i].code >> 8), (uint8_t)rows[i].code};
        rec r;
        sbuf in;

        rec_init(&r, TEST_MAX);
        sbuf_init(&in);
        rows[i].build(&in);
        /* Trailing garbage after a violation must be ignored. */
        sbuf_append(&in, "\x81\x85garbage", 9);
        if (feed(&r, &in) != PL_OK) fail_msg("%s: feed failed", rows[i].name);
        if (r.closed != 1 || r.code != rows[i].code || r.ntext != rows[i].ntext)
            fail_msg("%s: closed=%d code=%u ntext=%d", rows[i].name, r.closed, r.code, r.ntext);
        if (r.out.len != rows[i].pre + 4 || memcmp(r.out.data + rows[i].pre, want, 4) != 0)
            fail_msg("%s: wrong close frame (%zu bytes out)", rows[i].name, r.out.len);
        assert_int_equal(ws_session_state(r.s), WS_CLOSED);
        assert_int_equal(feed(&r, &in), PL_DECLINED);
        assert_int_equal(r.closed, 1);
        sbuf_release(&in);
        rec_release(&r);
    }
}

static void test_violation_byte_by_byte(void **state)
{
    /* The same violations detected when the bytes trickle in one at a time. */
    static const build_fn builds[] = {b_bad_utf8,         b_binary,    b_unmasked,      b_long_ping,
                                      b_nonminimal_len64, b_oversized, b_close_code_999};
    static const uint16_t codes[] = {1007, 1003, 1002, 1002, 1002, 1009, 1002};

    for (size_t i = 0; i < sizeof(builds) / sizeof(builds[0]); i++) {
        rec r;
        sbuf in;
        size_t k;

        rec_init(&r, TEST_MAX);
        sbuf_init(&in);
        builds[i](&in);
        for (k = 0; k < in.len && ws_session_state(r.s) != WS_CLOSED; k++)
            assert_int_equal(ws_session_feed(r.s, (const uint8_t *)in.data + k, 1), PL_OK);
        assert_closed_with(&r, codes[i]);
        sbuf_release(&in);
        rec_release(&r);
    }
}

static void test_exactly_max(void **state)
{
    rec r;
    sbuf in;
    char m[TEST_MAX + 1];

    memset(m, 'm', TEST_MAX);
    m[TEST_MAX] = '\0';
    rec_init(&r, TEST_MAX);
    sbuf_init(&in);
    frame(&in, 1, WS_OP_TEXT, m);
    frame(&in, 0, WS_OP_TEXT, m + 50);
    frame(&in, 1, WS_OP_CONT, m + TEST_MAX - 50);
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.ntext, 2);
    assert_int_equal(r.closed, 0);
    sbuf_release(&in);
    rec_release(&r);
}

static void test_large_message(void **state)
{
    rec r;
    sbuf in;
    char *m = pl_malloc(70001);

    memset(m, 'q', 70000);
    m[70000] = '\0';
    rec_init(&r, 100000);
    sbuf_init(&in);
    frame(&in, 1, WS_OP_TEXT, m); /* 64-bit length form */
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.ntext, 1);
    assert_int_equal(r.texts.len, 70000);
    assert_memory_equal(r.texts.data, m, 70000);
    assert_int_equal(ws_session_idle(r.s), 1);
    pl_free(m);
    sbuf_release(&in);
    rec_release(&r);
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void test_huge_frame_header(void **state)
{
    /* A header claiming 64 MiB against a 64 KiB limit. wslay reports a frame once it has one
     * payload byte, and refuses it then: nothing of the 64 MiB is ever allocated. */
    static const uint8_t hdr[] = {0x81, 0xff, 0, 0, 0, 0, 0x04, 0, 0, 0, 1, 2, 3, 4};
    rec r;
    size_t before;

    rec_init(&r, 65536);
    before = heap_in_use();
    assert_int_equal(ws_session_feed(r.s, hdr, sizeof(hdr)), PL_OK);
    assert_int_equal(r.closed, 0);
    assert_int_equal(ws_session_idle(r.s), 0);
    assert_int_equal(ws_session_feed(r.s, (const uint8_t *)"x", 1), PL_OK);
    /* (mallinfo2 reads zero under sanitizers and valgrind; the check then passes trivially.) */
    assert_true(heap_in_use() < before + 1024 * 1024);
    assert_closed_with(&r, 1009);
    rec_release(&r);

    /* Header and payload start in one feed. */
    rec_init(&r, 65536);
    {
        uint8_t buf[sizeof(hdr) + 100];
        memcpy(buf, hdr, sizeof(hdr));
        memset(buf + sizeof(hdr), 'a', 100);
        assert_int_equal(ws_session_feed(r.s, buf, sizeof(buf)), PL_OK);
    }
    assert_closed_with(&r, 1009);
    rec_release(&r);
}

static void test_idle_free_new(void **state)
{
    /* For every split point of a stream, free and recreate the session whenever it says it is
     * idle; the messages delivered must not change. Idle must hold exactly at the boundaries
     * of frames that are not inside a fragmented message. */
    sbuf in;
    size_t bounds[8];
    size_t nb = 0;
    char big[200];

    memset(big, 'b', 199);
    big[199] = '\0';
    sbuf_init(&in);
    frame(&in, 1, WS_OP_TEXT, "one");
    bounds[nb++] = in.len;
    frame(&in, 1, WS_OP_PING, "p");
    bounds[nb++] = in.len;
    frame(&in, 0, WS_OP_TEXT, "tw");
    frame(&in, 1, WS_OP_PING, "q");
    frame(&in, 1, WS_OP_CONT, "o");
    bounds[nb++] = in.len;
    frame(&in, 1, WS_OP_TEXT, big);
    bounds[nb++] = in.len;
    frame(&in, 1, WS_OP_TEXT, "");
    bounds[nb++] = in.len;

    for (size_t k = 0; k <= in.len; k++) {
        rec r;
        int idle;
        int boundary = k == 0;

        for (size_t j = 0; j < nb; j++)
            boundary |= bounds[j] == k;
        rec_init(&r, 1024);
        assert_int_equal(ws_session_feed(r.s, (const uint8_t *)in.data, k), PL_OK);
        idle = ws_session_idle(r.s);
        if (idle != boundary) fail_msg("split %zu: idle=%d boundary=%d", k, idle, boundary);
        if (idle) {
            ws_session_free(r.s);
            r.s = ws_session_new(&CBS, &r, 1024);
            assert_non_null(r.s);
        }
        assert_int_equal(ws_session_feed(r.s, (const uint8_t *)in.data + k, in.len - k), PL_OK);
        assert_int_equal(r.ntext, 4);
        assert_int_equal(r.texts.len, 3 + 1 + 3 + 1 + 199 + 1);
        assert_memory_equal(r.texts.data, "one|two|bbb", 11);
        assert_int_equal(r.out.len, 6);
        assert_memory_equal(r.out.data, "\x8a\x01p\x8a\x01q", 6);
        assert_int_equal(r.closed, 0);
        assert_int_equal(ws_session_idle(r.s), 1);
        rec_release(&r);
    }
    sbuf_release(&in);
}

static void test_send_failure(void **state)
{
    rec r;
    sbuf in;

    rec_init(&r, 1024);
    sbuf_init(&in);
    r.fail_send = 1;
    frame(&in, 1, WS_OP_PING, "p");
    assert_int_equal(feed(&r, &in), PL_EIO);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.code, WS_CLOSE_ABNORMAL);
    assert_int_equal(ws_session_state(r.s), WS_CLOSED);
    rec_release(&r);

    /* Failing to send our own close for a frame-level error. */
    rec_init(&r, 1024);
    r.fail_send = 1;
    sbuf_reset(&in);
    b_long_ping(&in);
    assert_int_equal(feed(&r, &in), PL_EIO);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.code, WS_CLOSE_ABNORMAL);
    rec_release(&r);

    /* And a server-initiated close. */
    rec_init(&r, 1024);
    r.fail_send = 1;
    assert_int_equal(ws_session_close(r.s, 1000, NULL), PL_EIO);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.code, WS_CLOSE_ABNORMAL);
    sbuf_release(&in);
    rec_release(&r);
}

static void test_new_out_of_memory(void **state)
{
    pl_mem_fail_after(0);
    assert_null(ws_session_new(&CBS, NULL, 1024));
    pl_mem_fail_after(-1);
    ws_session_free(NULL);
}

static void test_small_max_still_allows_pings(void **state)
{
    rec r;
    sbuf in;
    char p[126];

    memset(p, 'p', 125);
    p[125] = '\0';
    rec_init(&r, 0);
    sbuf_init(&in);
    frame(&in, 1, WS_OP_PING, p);
    assert_int_equal(feed(&r, &in), PL_OK);
    assert_int_equal(r.out.len, 127);
    assert_int_equal(r.closed, 0);
    sbuf_release(&in);
    rec_release(&r);
}

/* ================================================================ direct path */

/* Feeds stream in chunks of `chunk` bytes to a session and to one that reads everything through
 * wslay; both must report the same messages, sends and close. */
static void assert_same_as_wslay(const sbuf *stream, size_t max, size_t chunk, uint16_t cot)
{
    rec a, b;
    rec_init(&a, max);
    rec_init(&b, max);
    ws_session_wslay_only(b.s);
    a.close_on_text = b.close_on_text = cot;
    for (size_t off = 0; off < stream->len; off += chunk) {
        size_t n = stream->len - off < chunk ? stream->len - off : chunk;
        int ra = ws_session_feed(a.s, (const uint8_t *)stream->data + off, n);
        int rb = ws_session_feed(b.s, (const uint8_t *)stream->data + off, n);
        assert_int_equal(ra, rb);
        assert_int_equal(ws_session_state(a.s), ws_session_state(b.s));
        assert_int_equal(ws_session_idle(a.s), ws_session_idle(b.s));
    }
    assert_int_equal(a.ntext, b.ntext);
    assert_int_equal(a.texts.len, b.texts.len);
    if (a.texts.len) assert_memory_equal(a.texts.data, b.texts.data, a.texts.len);
    assert_int_equal(a.out.len, b.out.len);
    if (a.out.len) assert_memory_equal(a.out.data, b.out.data, a.out.len);
    assert_int_equal(a.closed, b.closed);
    assert_int_equal(a.code, b.code);
    rec_release(&a);
    rec_release(&b);
}

static void text_of(sbuf *b, size_t len, const char *unit)
{
    char *t = malloc(len + 1);
    size_t n = 0, u = strlen(unit);
    while (n + u <= len) {
        memcpy(t + n, unit, u);
        n += u;
    }
    while (n < len)
        t[n++] = 'x';
    t[n] = '\0';
    frame(b, 1, WS_OP_TEXT, t);
    free(t);
}

static void test_direct_path_matches_wslay(void **state)
{
    enum { NSTREAMS = 9 };
    sbuf st[NSTREAMS];
    for (int i = 0; i < NSTREAMS; i++)
        sbuf_init(&st[i]);
    /* 0: plain frames of every length class, multi-byte text, pings and a fragmented message
     * between them, then a close. */
    const size_t lens[] = {1, 7, 8, 9, 125, 126, 127, 300, 4000, 8191, 8192, 8193, 65535, 70000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        text_of(&st[0], lens[i], i % 2 ? "\xc3\xa9" : "\xf0\x9d\x84\x9e-");
        if (i == 3) frame(&st[0], 1, WS_OP_PING, "hb");
        if (i == 6) {
            frame(&st[0], 0, WS_OP_TEXT, "frag");
            frame(&st[0], 1, WS_OP_PING, "mid");
            frame(&st[0], 1, WS_OP_CONT, "ment");
        }
    }
    close_frame(&st[0], 1000, "bye");
    text_of(&st[0], 10, "after close");
    /* 1-4: bad text after good text (invalid, overlong, surrogate, truncated UTF-8). */
    const char *bad[] = {"ok\xff", "ok\xc0\xaf", "ok\xed\xa0\x80", "ok\xe2\x82"};
    for (int i = 0; i < 4; i++) {
        frame(&st[1 + i], 1, WS_OP_TEXT, "first");
        frame(&st[1 + i], 1, WS_OP_TEXT, bad[i]);
        frame(&st[1 + i], 1, WS_OP_TEXT, "never");
    }
    /* 5: an empty text frame, then a non-minimal 16-bit length. */
    frame(&st[5], 1, WS_OP_TEXT, "a");
    frame(&st[5], 1, WS_OP_TEXT, "");
    frame(&st[5], 1, WS_OP_TEXT, "b");
    sbuf_append(&st[5], "\x81\xfe\x00\x05", 4);
    sbuf_append(&st[5], MASK, 4);
    sbuf_append(&st[5], "hello", 5);
    /* 6: unmasked, 7: reserved bit, after a good frame. */
    frame(&st[6], 1, WS_OP_TEXT, "good");
    frame_raw(&st[6], 1, 0, WS_OP_TEXT, 0, "bare", 4);
    frame(&st[7], 1, WS_OP_TEXT, "good");
    frame_raw(&st[7], 1, 4, WS_OP_TEXT, 1, "rsv", 3);
    /* 8: at max_message (1000) and one byte over. */
    text_of(&st[8], 1000, "m");
    text_of(&st[8], 1001, "m");
    const size_t chunks[] = {1, 2, 3, 5, 7, 64, 150, 4096, 1 << 20};
    for (int i = 0; i < NSTREAMS; i++)
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            size_t max = i == 8 ? 1000 : 100000;
            assert_same_as_wslay(&st[i], max, chunks[c], 0);
            assert_same_as_wslay(&st[i], max, chunks[c], 4501);
        }
    for (int i = 0; i < NSTREAMS; i++)
        sbuf_release(&st[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_table),
        cmocka_unit_test(test_handshake_spans_not_terminated),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_handshake_responses),
        cmocka_unit_test(test_subprotocol_table),
        cmocka_unit_test(test_frame_header_table),
        cmocka_unit_test(test_close_payload),
        cmocka_unit_test(test_single_text),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_fragmented_with_ping),
        cmocka_unit_test(test_fragmented_not_idle),
        cmocka_unit_test(test_two_messages_one_feed),
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_many_pings_batched_in_order),
        cmocka_unit_test(test_close_handshake),
        cmocka_unit_test(test_server_close),
        cmocka_unit_test(test_close_from_callback),
        cmocka_unit_test(test_violation_table),
        cmocka_unit_test(test_violation_byte_by_byte),
        cmocka_unit_test(test_exactly_max),
        cmocka_unit_test(test_large_message),
        cmocka_unit_test(test_huge_frame_header),
        cmocka_unit_test(test_idle_free_new),
        cmocka_unit_test(test_send_failure),
        cmocka_unit_test(test_new_out_of_memory),
        cmocka_unit_test(test_small_max_still_allows_pings),
        cmocka_unit_test(test_direct_path_matches_wslay),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
