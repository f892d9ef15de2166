/* libFuzzer target for the bench client's WebSocket frame reader
 * (bench_ws_read): the input after its first byte is a server's byte
 * stream, read whole and again in chunks whose size the first byte picks.
 * Both readings must hand over the same frames (opcode, length, bytes) and
 * end with the same verdict; ASan watches the carry and reassembly
 * buffers. Seeds: fuzz/corpus/bench_ws/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_ws.h"
#include "util/sbuf.h"

static int record(void *ud, int opcode, const char *data, size_t len)
{
    sbuf *log = ud;
    uint8_t op = (uint8_t)opcode;
    sbuf_append(log, &op, 1);
    sbuf_append(log, &len, sizeof(len));
    sbuf_append(log, data, len);
    return 0;
}

static const char *read_all(const uint8_t *data, size_t size, size_t step, sbuf *log)
{
    bench_ws_reader r;
    memset(&r, 0, sizeof(r));
    const char *why = NULL;
    for (size_t at = 0; at < size && !why;) {
        size_t n = step && size - at > step ? step : size - at;
        why = bench_ws_read(&r, (const char *)data + at, n, record, log);
        at += n;
    }
    bench_ws_reader_release(&r);
    return why;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    sbuf a, b;
    sbuf_init(&a);
    sbuf_init(&b);
    const char *wa = read_all(data + 1, size - 1, 0, &a);
    const char *wb = read_all(data + 1, size - 1, step, &b);
    if ((wa == NULL) != (wb == NULL) || (wa && strcmp(wa, wb) != 0) || a.len != b.len ||
        (a.len && memcmp(a.data, b.data, a.len) != 0))
        abort();
    sbuf_release(&a);
    sbuf_release(&b);
    return 0;
}
