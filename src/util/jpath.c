/* The dotted JSON path parser: split on '.', classify each segment as key,
 * index or wildcard, enforce the length bounds that keep matching cheap. */
#include <string.h>

#include "util/jpath.h"

static long seg_index(const char *s, size_t n)
{
    if (n > 9 || (n > 1 && s[0] == '0')) return -1; /* "01" is a key, not index 1 */
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

const char *jpath_parse(const char *s, jpath *out)
{
    out->n = 0;
    size_t len = strlen(s);
    if (!len) return "empty path";
    if (len > JPATH_MAX_LEN) return "path longer than 256 bytes";
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && s[j] != '.') {
            if ((unsigned char)s[j] < 0x20 || s[j] == 0x7f) return "control character in path";
            j++;
        }
        if (j == i) return "empty segment (two dots, or a dot at an end)";
        if (out->n == JPATH_MAX_SEGS) return "more than 16 segments";
        jpath_seg *g = &out->seg[out->n++];
        g->s = s + i;
        g->n = j - i;
        g->wild = g->n == 1 && s[i] == '*';
        g->index = seg_index(g->s, g->n);
        i = j + 1;
    }
    return NULL;
}
