/* Segment globs for routing rules: channel globs (segments split by ':') and
 * event-type globs (split by '.'). '*' matches within one segment, '**' as
 * the last whole segment matches one or more remaining segments. Pure. */
#ifndef PL_GLOB_H
#define PL_GLOB_H

#include <stddef.h>

#define GLOB_MAX_LEN 256

/* NULL if pat[0..n) is a valid glob with separator sep, else a static reason
 * ("invalid glob: ..."). whole_star: '*' may only be a whole segment (channel
 * names cannot hold '*', so a partial one is a mistake, not a literal). */
const char *glob_check(const char *pat, size_t n, char sep, int whole_star);
/* 1 if the checked glob pat[0..pn) matches s[0..sn), else 0. */
int glob_match(const char *pat, size_t pn, const char *s, size_t sn, char sep);

#endif
