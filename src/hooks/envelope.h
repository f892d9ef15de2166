/* The event envelope: the one JSON form of a pub for everything that leaves
 * Parley (webhook bodies, trace and log lines describing a pub). Fields are
 * only ever added; schema_version changes only on a breaking change; the
 * fields and their types are listed in docs/webhooks.md. */
#ifndef PL_ENVELOPE_H
#define PL_ENVELOPE_H

#include "engine/pub.h"
#include "hooks/redact.h"
#include "util/sbuf.h"

#define ENVELOPE_SCHEMA_VERSION 1

/* Appends the envelope of p to out:
 *   {"id","type"?,"tenant","channel","offset","epoch"?,"ts","schema_version",
 *    "correlation_id"?,"idempotency_key"?,"headers","data"}
 * Optional fields (?) are omitted when the pub has none: type,
 * correlation_id and idempotency_key when not given, epoch for an
 * ephemeral pub (offset 0). headers is always an object ({} when none);
 * data is the published JSON byte for byte. r (NULL = none) redacts data
 * and headers. Returns PL_OK, PL_ENOMEM (out's oom latched), or PL_EINVAL
 * when the pub's data or headers are not valid JSON (only possible with
 * redaction, which must parse them); on failure out is as it was. */
int envelope_write(sbuf *out, const pl_pub *p, const redaction *r);

#endif
