/* Dotted paths into JSON documents ("data.items.0.token", "data.users.*.email"):
 * the one parser of their syntax, shared by the configuration loader (which
 * reports bad paths with line numbers) and the redaction walker in hooks/.
 * Pure; segments point into the caller's string. */
#ifndef PL_JPATH_H
#define PL_JPATH_H

#include <stddef.h>

#define JPATH_MAX_LEN 256 /* bytes of a whole path */
#define JPATH_MAX_SEGS 16

/* One segment: an object key, or an array index when all digits (it then
 * also matches the object key of the same spelling), or the wildcard "*"
 * (any key or index). Keys holding '.' or spelled "*" cannot be named. */
typedef struct jpath_seg {
    const char *s; /* borrowed from the parsed string; not NUL-terminated */
    size_t n;
    int wild;   /* the segment is "*" */
    long index; /* its array index, or -1 if not all digits (or too large) */
} jpath_seg;

typedef struct jpath {
    jpath_seg seg[JPATH_MAX_SEGS];
    size_t n;
} jpath;

/* Splits s (NUL-terminated) on '.'; segments are non-empty and free of
 * control characters. Returns NULL with *out filled, or a static message
 * saying what is wrong ("empty segment", ...). out borrows s. */
const char *jpath_parse(const char *s, jpath *out);

#endif
