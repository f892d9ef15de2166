/* One client WebSocket connection of `parley bench` on a libuv loop: TCP
 * connect (optionally from a chosen source address, so many connections can
 * spread over 127.0.0.1..127.0.0.N), the opening handshake, then wslay for
 * frames. Outgoing messages are queued and written once per loop iteration
 * (a uv_check flush), so a burst of commands becomes one write.
 *
 * Lifecycle: bench_conn_open -> connecting -> handshaking -> open
 * (on_open) -> closed (on_close, exactly once, for every connection,
 * whether it failed, was closed by the peer or by bench_conn_close). The
 * connection is freed by the loop after on_close returns. */
#ifndef PL_BENCH_CONN_H
#define PL_BENCH_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct bench_net bench_net;
typedef struct bench_conn bench_conn;

typedef struct bench_conn_cb {
    void (*on_open)(bench_conn *c, void *ud);
    /* A complete text or binary message; data is valid during the call. */
    void (*on_message)(bench_conn *c, void *ud, int binary, const char *data, size_t len);
    /* error is NULL for a close we asked for, else a static description;
     * ws_code is the peer's close code (0 when none). */
    void (*on_close)(bench_conn *c, void *ud, const char *error, int ws_code);
} bench_conn_cb;

typedef struct bench_conn_opts {
    const char *host; /* dotted IPv4 of the server */
    int port;
    const char *path;     /* "/ws" for Parley, "/" for NATS */
    const char *protocol; /* Sec-WebSocket-Protocol or NULL */
    uint32_t source_ip;   /* host byte order; 0 = let the kernel choose */
} bench_conn_opts;

/* Creates the shared I/O state for loop (read buffer, flush hook). Returns
 * NULL on failure. bench_net_free must be called after every connection
 * has closed; it then closes its handle and needs one more loop run. */
bench_net *bench_net_new(uv_loop_t *loop);
void bench_net_free(bench_net *n);
/* Connections that have not reached on_close yet. */
size_t bench_net_live(const bench_net *n);

/* Starts a connection; opts strings are copied. Returns NULL only on
 * allocation failure (connect errors arrive through on_close). */
bench_conn *bench_conn_open(bench_net *n, const bench_conn_opts *opts, const bench_conn_cb *cb,
                            void *ud);
/* Queues one text (binary = 0) or binary message; written at the end of
 * this loop iteration. data is copied. Returns 0, or -1 when the
 * connection is not open. */
int bench_conn_send(bench_conn *c, int binary, const void *data, size_t len);
/* Drops the TCP connection at once (no close handshake). on_close follows
 * from the loop with error NULL. Safe inside callbacks; idempotent. */
void bench_conn_close(bench_conn *c);
/* Stops (on = false) or resumes reading while open: a peer that does not
 * read sees its replies pile up in the kernel and then in the server. */
void bench_conn_reading(bench_conn *c, bool on);
/* Bytes queued but not yet accepted by the kernel. */
size_t bench_conn_pending(const bench_conn *c);
void *bench_conn_ud(const bench_conn *c);
void bench_conn_set_ud(bench_conn *c, void *ud);

#endif
