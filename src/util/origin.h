/* Browser origins and the patterns of the allowed_origins setting: parsing
 * and matching, pure (no allocation, no state). An origin is what a browser
 * sends in the Origin header, "scheme://host" or "scheme://host:port"; a
 * pattern is an origin in which the port may be "*" (any port, or none) and
 * the leftmost host label may be "*" (one or more labels), or the single
 * pattern "*" (any origin, "null" included). Scheme and host compare without
 * regard to case; a scheme's default port (80 for http and ws, 443 for https
 * and wss) is the same as no port. */
#ifndef PL_UTIL_ORIGIN_H
#define PL_UTIL_ORIGIN_H

#include <stddef.h>

/* Longer origins and patterns are refused: no real origin comes close. */
#define ORIGIN_MAX 300

/* NULL when pat[0..len) is a valid pattern, else a static explanation. */
const char *origin_pattern_check(const char *pat, size_t len);

/* 1 if origin[0..olen) matches the pattern, else 0. A malformed origin
 * (path, trailing slash, user info, spaces, control bytes, over ORIGIN_MAX)
 * matches nothing; "null" matches only "*"; an invalid pattern matches
 * nothing. */
int origin_match(const char *pat, size_t plen, const char *origin, size_t olen);

/* 1 if the origin matches any of the n NUL-terminated patterns. */
int origin_allowed(char *const *pats, size_t n, const char *origin, size_t olen);

#endif
