/* Redaction: a namespace's `redact` list compiled into paths, and the copy of
 * a pub's data or headers with the matched members removed or masked, for
 * everything that leaves the trust boundary (trace output, webhook bodies).
 * The pub is never touched: subscribers still get it whole. */
#ifndef PL_REDACT_H
#define PL_REDACT_H

#include <stddef.h>

#include "config/config.h"
#include "util/sbuf.h"

/* What a masked value becomes, whatever its type: no length or type leaks. */
#define REDACT_MASK "\"***\""

/* Opaque and immutable once built: any thread may use it. */
typedef struct redaction redaction;

/* Compiles n entries (validated by the config loader; checked again here).
 * Copies the paths: rules may be freed afterwards. *out is NULL when n is 0
 * (NULL means "no redaction" everywhere). Returns PL_OK, PL_EINVAL (a bad
 * path, or n > CFG_MAX_REDACT) or PL_ENOMEM. Free with redact_free. */
int redact_new(const cfg_redact *rules, size_t n, redaction **out);
void redact_free(redaction *r);

/* Appends to out a copy of json (len bytes, one JSON value) with the paths
 * applied from its root: their first segment names a member of it, so json
 * is an object holding "data" and "headers" members, such as a pub in a
 * push frame or an event envelope. r NULL: a verbatim copy. */
int redact_apply(const redaction *r, const char *json, size_t len, sbuf *out);
/* The same for the value of one such member alone (a pub's data or
 * headers): only the paths starting with root ("data" or "headers") apply,
 * from their second segment. */
int redact_member(const redaction *r, const char *root, const char *json, size_t len, sbuf *out);
/* Both return PL_OK, PL_EINVAL when json is not valid JSON (nothing is
 * appended: a caller must not fall back to the unredacted bytes), PL_ELIMIT
 * when it is over 16 MiB or nested deeper than 4096, or PL_ENOMEM.
 *
 * Matching: object keys compare after unescaping ("a\u0062" is key ab), and
 * every duplicate of a matched key is redacted; header names (the segment
 * after "headers") compare ASCII case-insensitively. A digit segment is an
 * array index and also an object key. A path that meets a scalar, or a
 * missing member, matches nothing. Remove wins over mask when both match.
 * Bytes outside matched members are copied verbatim, whitespace included:
 * a document nothing matches comes out byte-identical. */

#endif
