/* Hexadecimal digits: the one decoder of a digit, for JSON \u escapes,
 * percent-encoded paths and queries, and hex signatures. Pure. */
#ifndef PL_HEX_H
#define PL_HEX_H

/* 0 to 15 for [0-9a-fA-F], else -1 (any other value, negative ones too). */
static inline int hex_val(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

#endif
