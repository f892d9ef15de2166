/* libFuzzer target for the bench client's reader of server lines
 * (cli/bench_scan): every input is scanned by the one-pass paths (the
 * server's exact pub layout, then the general walk) and by jsmn alone; the
 * two must agree on what the line is and on every field the bench reads,
 * and bare payloads likewise. Seeds: fuzz/corpus/bench_scan/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_scan.h"

static void agree(const bench_line *a, const bench_line *b)
{
    if (a->kind != b->kind || a->pub.offset != b->pub.offset || a->pub.t != b->pub.t ||
        a->pub.s != b->pub.s || a->channel_len != b->channel_len || strcmp(a->epoch, b->epoch))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bench_scanner *fast = bench_scanner_new();
    bench_scanner *slow = bench_scanner_new();
    if (!fast || !slow) abort();
    bench_scanner_set_fast(slow, 0);
    /* Exact-size copies so ASan sees any read past the line. */
    char *line = malloc(size ? size : 1);
    if (!line) abort();
    memcpy(line, data, size);
    bench_line a, b;
    bench_scan(fast, line, size, &a);
    bench_scan(slow, line, size, &b);
    /* Whatever the line is, the fast paths only ever add speed: both read it the same. */
    agree(&a, &b);
    bench_pub pa, pb;
    int ra = bench_scan_data(fast, line, size, &pa);
    int rb = bench_scan_data(slow, line, size, &pb);
    if (ra != rb || pa.t != pb.t || pa.s != pb.s) abort();
    free(line);
    bench_scanner_free(fast);
    bench_scanner_free(slow);
    return 0;
}
