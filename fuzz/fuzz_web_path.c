/* libFuzzer target for net/web's request reading: arbitrary bytes as a
 * request path, an Accept-Encoding and an If-None-Match value. Checks the
 * promises a file lookup rests on: an accepted path has no empty, "." or
 * ".." segment, no NUL, control byte or backslash, and fits its buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/web.h"

static void check_path(const char *out)
{
    size_t n = strlen(out);
    if (!n || out[0] == '/') abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f || out[i] == '\\') abort();
    const char *seg = out;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (!len || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            abort();
        if (!end) break;
        seg = end + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char out[WEB_MAX_PATH];
    if (web_path(s, size, out, sizeof(out)) == 0) {
        if (strlen(out) >= sizeof(out)) abort();
        check_path(out);
    }
    int g = web_accepts_gzip(s, size);
    if (g != 0 && g != 1) abort();
    (void)web_etag_match(s, size, "\"0123456789abcdef\"");
    return 0;
}
