/* Strict UTF-8; see utf8.h. */
#include "util/utf8.h"

#include <stdint.h>
#include <string.h>

#include "util/swar.h"

size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (n < need || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return need;
}

int utf8_valid(const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;
    while (i < n) {
        uint64_t w[4];
        /* ASCII runs (most of a command) 32 bytes a step, then 8. */
        if (n - i >= 32 && (memcpy(w, s + i, 32), !((w[0] | w[1] | w[2] | w[3]) & SWAR_HIGHS))) {
            i += 32;
            continue;
        }
        if (n - i >= 8 && (memcpy(w, s + i, 8), !(w[0] & SWAR_HIGHS))) {
            i += 8;
            continue;
        }
        size_t k = utf8_seq_len(s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}
