/* Strict UTF-8 (RFC 3629: no overlong forms, no UTF-16 surrogates, nothing
 * above U+10FFFF), the one definition the JSON reader, the WebSocket text
 * check and the audit log's cleaning share. */
#ifndef PL_UTF8_H
#define PL_UTF8_H

#include <stddef.h>

/* Length (1-4) of the well-formed sequence at p, of which n > 0 bytes are
 * available; 0 when it is not one. */
size_t utf8_seq_len(const unsigned char *p, size_t n);
/* Whether p[0..n) is all well-formed UTF-8 (ASCII runs eight bytes a step). */
int utf8_valid(const void *p, size_t n);

#endif
