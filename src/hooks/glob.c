/* Segment globs of routing rules: validation at compile time, matching at
 * evaluation. Matching never allocates and never recurses; a segment's '*'
 * backtracks to its last star only, so one match is O(pattern x subject). */
#include "hooks/glob.h"

#include <string.h>

const char *glob_check(const char *pat, size_t n, char sep, int whole_star)
{
    if (n == 0) return "invalid glob: empty";
    if (n > GLOB_MAX_LEN) return "invalid glob: over 256 bytes";
    size_t start = 0;
    while (start <= n) {
        const char *e = memchr(pat + start, sep, n - start);
        size_t end = e ? (size_t)(e - pat) : n;
        size_t len = end - start;
        const char *seg = pat + start;
        int dstar = len == 2 && seg[0] == '*' && seg[1] == '*';
        if (dstar && end != n) return "invalid glob: '**' must be the last segment";
        if (!dstar && memchr(seg, '*', len)) {
            if (whole_star && len != 1) return "invalid glob: '*' must be a whole segment";
            for (size_t i = 0; i + 1 < len; i++)
                if (seg[i] == '*' && seg[i + 1] == '*')
                    return "invalid glob: '**' must be a whole segment";
        }
        start = end + 1;
    }
    return NULL;
}

/* One segment: '*' matches any run of bytes (the segment has no separator). */
static int seg_match(const char *p, size_t pn, const char *s, size_t sn)
{
    size_t pi = 0, si = 0, star = (size_t)-1, mark = 0;
    while (si < sn) {
        if (pi < pn && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < pn && p[pi] == s[si]) {
            pi++;
            si++;
        } else if (star != (size_t)-1) {
            pi = star + 1;
            si = ++mark;
        } else {
            return 0;
        }
    }
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}

int glob_match(const char *pat, size_t pn, const char *s, size_t sn, char sep)
{
    size_t pi = 0, si = 0;
    for (;;) {
        const char *pe = memchr(pat + pi, sep, pn - pi);
        size_t pend = pe ? (size_t)(pe - pat) : pn;
        /* A subject segment starts at si: '**' has its one or more. */
        if (pend - pi == 2 && pat[pi] == '*' && pat[pi + 1] == '*') return 1;
        const char *se = memchr(s + si, sep, sn - si);
        size_t send = se ? (size_t)(se - s) : sn;
        if (!seg_match(pat + pi, pend - pi, s + si, send - si)) return 0;
        int plast = pend == pn, slast = send == sn;
        if (plast || slast) return plast && slast;
        pi = pend + 1;
        si = send + 1;
    }
}
