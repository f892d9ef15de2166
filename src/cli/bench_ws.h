/* The client side of the WebSocket opening handshake (RFC 6455 section 4)
 * for `parley bench`: building the upgrade request and checking the
 * server's 101 response, including Sec-WebSocket-Accept; then reading the
 * server's frames (RFC 6455 section 5, client side) and writing our own.
 * Pure: bytes in, status out. */
#ifndef PL_BENCH_WS_H
#define PL_BENCH_WS_H

#include <stddef.h>
#include <stdint.h>

#include "util/sbuf.h"

/* The response header block may not exceed this. */
#define BENCH_WS_MAX_RESPONSE 8192

/* Writes a fresh random Sec-WebSocket-Key (24 base64 chars + NUL) into key.
 * Returns 0, or -1 when the random source fails. */
int bench_ws_key(char key[25]);
/* The Sec-WebSocket-Accept value the server must answer for key (28
 * chars + NUL). */
void bench_ws_accept(const char *key, char out[29]);
/* Appends the GET upgrade request to out. protocol may be NULL (no
 * Sec-WebSocket-Protocol header). */
void bench_ws_request(sbuf *out, const char *host, int port, const char *path, const char *protocol,
                      const char *key);
/* Checks the response bytes received so far. Returns PL_OK and sets
 * *consumed to the header length (bytes after it are WebSocket frames),
 * PL_AGAIN when the header block is not complete yet, or PL_EINVAL when it
 * is not a valid 101 answer to key (status, Upgrade, Connection, Accept) or
 * is larger than BENCH_WS_MAX_RESPONSE. When status is non-NULL it gets the
 * HTTP status code once known. */
int bench_ws_check_response(const char *buf, size_t len, const char *key, size_t *consumed,
                            int *status);

/* Appends one final (FIN) client frame with opcode (WS_OP_*) and the
 * payload masked with mask (RFC 6455 5.3; the key's bytes are taken most
 * significant first). A control frame over 125 bytes or an unknown opcode
 * appends nothing. Headers come from ws_frame_header rather than wslay so a
 * command costs one append. */
void bench_ws_frame(sbuf *out, int opcode, const void *data, size_t len, uint32_t mask);

/* Largest message (after reassembly) the bench accepts from a server. */
#define BENCH_WS_MAX_MESSAGE (16u << 20)

/* Reads a server's frame stream. A frame that arrives whole is handed over
 * where it lies in the caller's buffer; only a frame split across reads is
 * copied (into carry), and fragments of a message into msg. The bench's
 * client core reads millions of frames a second, so the common frame costs
 * a header decode and no copy. Initialise with memset 0; release with
 * bench_ws_reader_release. */
typedef struct bench_ws_reader {
    sbuf carry;     /* the bytes so far of a frame split across reads */
    sbuf msg;       /* a fragmented data message being reassembled */
    int msg_opcode; /* its opcode; 0 when none is in progress */
} bench_ws_reader;

/* Called for each whole data message (opcode 1 or 2, reassembled) and each
 * control frame (8 close, 9 ping, 10 pong). Returns 0 to go on reading, or
 * nonzero to stop: bench_ws_read then returns at once. */
typedef int (*bench_ws_on_frame)(void *ud, int opcode, const char *data, size_t len);

/* Feeds the next len bytes of the stream. Returns NULL, or why the stream
 * is refused ("websocket protocol error": reserved bits, a masked frame,
 * an unknown opcode, a continuation outside a message or a new message
 * inside one, a control frame fragmented or over 125 bytes; "websocket
 * message too big": over BENCH_WS_MAX_MESSAGE; "out of memory"). After a
 * refusal the reader must not be fed again. */
const char *bench_ws_read(bench_ws_reader *r, const char *data, size_t len, bench_ws_on_frame cb,
                          void *ud);
void bench_ws_reader_release(bench_ws_reader *r);

#endif
