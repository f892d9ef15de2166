/* libFuzzer target for proto/sse_cursor: the input is a Last-Event-ID value
 * parsed for a stream of three channels; whatever it yields must encode
 * into a cursor that parses back to the same positions. Seeds:
 * fuzz/corpus/sse_cursor/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sse_cursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const chans[] = {"chat:a", "chat:b@1", "c"};
    sse_pos pos[3], back[3];
    size_t got = sse_cursor_parse((const char *)data, size, chans, 3, pos);
    size_t known = 0;
    for (int i = 0; i < 3; i++)
        known += pos[i].known;
    if (got != known) abort();
    char out[SSE_CURSOR_MAX_LEN];
    size_t n = sse_cursor_encode(pos, 3, out, sizeof(out));
    if (!n || n != strlen(out)) abort();
    if (sse_cursor_parse(out, n, chans, 3, back) != got) abort();
    for (int i = 0; i < 3; i++)
        if (back[i].known != pos[i].known ||
            (pos[i].known &&
             (back[i].offset != pos[i].offset || strcmp(back[i].epoch, pos[i].epoch))))
            abort();
    return 0;
}
