/* WebSocket protocol layer (RFC 6455), pure and socket-free: handshake checks, frame headers
 * for the server's own (unmasked) frames, and a receive session that runs client bytes through
 * wslay and hands back complete, validated text messages plus the control frames to write.
 * Nothing here touches a socket; the caller moves bytes in and out. */
#ifndef PL_NET_WS_H
#define PL_NET_WS_H

#include <stddef.h>
#include <stdint.h>

#include "util/sbuf.h"

/* ---------------------------------------------------------------- constants */

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* reported only: the peer's close carried no code */
    WS_CLOSE_ABNORMAL = 1006,  /* reported only: the transport failed, no close frame */
    WS_CLOSE_BAD_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

#define WS_SUBPROTOCOL "parley.v1"
#define WS_ACCEPT_LEN 28       /* base64 of a SHA-1 digest, without the NUL */
#define WS_FRAME_HEADER_MAX 10 /* server frames are unmasked: 2 + 8 length bytes at most */
#define WS_CLOSE_REASON_MAX 123
#define WS_CONTROL_PAYLOAD_MAX 125

/* ---------------------------------------------------------------- handshake */

/* The upgrade request's header values as spans into the request (not NUL-terminated). A NULL
 * pointer means the header was absent. Nothing is owned; the spans must outlive the call. */
typedef struct ws_handshake {
    const char *upgrade;
    size_t upgrade_len;
    const char *connection;
    size_t connection_len;
    const char *version;
    size_t version_len;
    const char *key;
    size_t key_len;
} ws_handshake;

/* Returns 0 if the request may be upgraded, 426 if Sec-WebSocket-Version is present but not 13
 * (answer with ws_handshake_write_426), or 400 for anything else: Upgrade lacking the token
 * "websocket", Connection lacking the token "upgrade" (both case-insensitive comma lists),
 * version missing, or Sec-WebSocket-Key not the canonical base64 of exactly 16 bytes. The HTTP
 * layer checks method GET and HTTP/1.1 itself. */
int ws_handshake_check(const ws_handshake *h);

/* Returns 1 if the Sec-WebSocket-Protocol value (a comma-separated list, whitespace tolerant,
 * exact-case tokens) offers "parley.v1", else 0. NULL value returns 0. */
int ws_offers_subprotocol(const char *value, size_t len);

/* Writes base64(SHA1(key + GUID)) and a NUL into out. The key is used as given (validate it with
 * ws_handshake_check first). Returns PL_OK, or PL_EINVAL if key_len > 128 or hashing failed. */
int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* Appends the complete "101 Switching Protocols" response, with Sec-WebSocket-Protocol echoed
 * when with_subprotocol is set, to out (caller owns out). Returns PL_OK, PL_EINVAL (see
 * ws_accept_key) or PL_ENOMEM if the sbuf is in its oom state. */
int ws_handshake_write_101(sbuf *out, const char *key, size_t key_len, int with_subprotocol);

/* Appends a complete "426 Upgrade Required" response naming version 13. Returns PL_OK or
 * PL_ENOMEM. */
int ws_handshake_write_426(sbuf *out);

/* ---------------------------------------------------------------- outgoing frames */

/* Writes the header of an unmasked server frame into out and returns its length (2, 4 or 10).
 * The payload follows it unchanged, so one payload buffer can be shared by every connection.
 * Returns 0 for an unknown opcode, a control frame (close, ping, pong) over 125 bytes or not
 * final, or a length of 2^63 or more. */
size_t ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], int opcode, uint64_t payload_len, int fin);

/* Masks (or unmasks: the same XOR) n bytes of src into dst with a frame's 4-byte key, eight
 * bytes at a time. dst may equal src; they must not otherwise overlap. */
void ws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4]);

/* Writes a close frame payload into out: the code in network order, then reason (NUL-terminated,
 * may be NULL) cut to at most 123 bytes without splitting a UTF-8 sequence. Returns the payload
 * length; code 0 yields an empty payload (no status). */
size_t ws_close_payload(uint8_t out[WS_CONTROL_PAYLOAD_MAX], uint16_t code, const char *reason);

/* ---------------------------------------------------------------- receive session */

/* Callbacks get the ud given to ws_session_new. Byte pointers are valid only during the call;
 * the callee copies what it keeps. A callback may call ws_session_close but must not free the
 * session. */
typedef struct ws_callbacks {
    /* One complete (reassembled) text message, validated as UTF-8. */
    void (*on_text)(void *ud, const uint8_t *data, size_t len);
    /* Raw bytes to write to the peer, in order: pongs and close frames. Each call holds whole
     * frames. Returns 0 when the bytes were taken, nonzero to fail the session. */
    int (*send)(void *ud, const uint8_t *data, size_t len);
    /* Called once, when the session reaches WS_CLOSED; see ws_session_feed for the code. */
    void (*on_closed)(void *ud, uint16_t code);
} ws_callbacks;

typedef struct ws_session ws_session;

enum ws_state {
    WS_OPEN,    /* exchanging messages */
    WS_CLOSING, /* we sent a close (ws_session_close) and wait for the peer's */
    WS_CLOSED,  /* finished: the caller closes the TCP connection */
};

/* Returns a new server session, or NULL on allocation failure. cb is borrowed and must outlive
 * the session (one static table serves every connection); ud is passed back untouched.
 * max_message bounds a reassembled message in bytes; it is raised to at least 125 so control
 * frames always fit. The session itself is small; once a frame needs wslay (anything but whole
 * plain text frames) it also holds wslay's context, about 9 KiB of buffers, so free the session
 * of an idle connection (see ws_session_idle). Free with ws_session_free. */
ws_session *ws_session_new(const ws_callbacks *cb, void *ud, size_t max_message);

/* Frees the session and everything it holds. NULL is ignored. No callback is made. */
void ws_session_free(ws_session *s);

/* Consumes all len bytes read from the client (the data is only borrowed), calling on_text for
 * each complete message and send for the pongs and close frames they call for. The session
 * ends (WS_CLOSED, on_closed called) when:
 *  - the peer's close arrives: it is echoed; the code is the one that began the closing
 *    handshake (ours after ws_session_close, else the peer's, 1005 when it had none);
 *  - the peer breaks the protocol: our close is sent first and its code reported: 1002
 *    (unmasked, reserved bits or opcode, bad fragmentation, bad close), 1003 (binary message),
 *    1007 (invalid UTF-8), 1009 (message over max_message, refused from its header and first
 *    payload byte, nothing buffered);
 *  - wslay runs out of memory (1011 sent, PL_ENOMEM returned) or send fails (1006, PL_EIO).
 * Returns PL_OK (check ws_session_state), PL_ENOMEM or PL_EIO as above, or PL_DECLINED if the
 * session was already closed (nothing is consumed). */
int ws_session_feed(ws_session *s, const uint8_t *data, size_t len);

/* Starts a server-initiated close: sends a close frame with code (1000-1003, 1007-1014 or
 * 3000-4999) and reason (NUL-terminated, may be NULL, cut like ws_close_payload), then waits
 * for the peer's close (WS_CLOSING); the caller applies its own timeout. Inside a callback the
 * frame is sent when ws_session_feed returns, and later text messages are dropped. Returns
 * PL_OK, PL_EINVAL for a code that must not be sent, PL_DECLINED if not WS_OPEN, PL_EIO if send
 * failed (the session is then closed with 1006), PL_ENOMEM if wslay's context could not be
 * made (nothing sent). */
int ws_session_close(ws_session *s, uint16_t code, const char *reason);

enum ws_state ws_session_state(const ws_session *s);

/* Returns 1 when the session is WS_OPEN and holds nothing of the client's stream: every byte fed
 * belonged to a complete frame and no fragmented message is half received. The caller may then
 * free the session and create a new one on the next read; the stream continues correctly. */
int ws_session_idle(const ws_session *s);

/* Reads every byte through wslay's event layer, without the direct path for plain text frames
 * (see ws.c): the reference behaviour, for differential tests and fuzzing. */
void ws_session_wslay_only(ws_session *s);

#endif
