/* A pub's stored form in Redis: the fields a stream entry carries besides
 * its offset (the entry id), time (field t) and epoch (the channel's meta).
 *   class   1 byte (0..2)
 *   fields  id, data, user, client, type, correlation_id, headers, idem_key,
 *           each a LEB128 code: 0 absent, n >= 1 followed by n - 1 bytes.
 * The decoder trusts nothing: Redis is shared, and a malformed entry (an id
 * that is not a ULID, an epoch not of [a-z0-9]) is an error, never a read
 * past its end. */
#ifndef PL_RD_PACK_H
#define PL_RD_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "engine/pub.h"
#include "util/sbuf.h"

/* Appends p's stored form to out. */
void rd_pack(sbuf *out, const pl_pub *p);

/* A pub of tenant/channel from a stored form, with offset, epoch (at most
 * PUB_EPOCH_LEN bytes) and ts; one reference, or NULL when the form is
 * malformed or memory ran out. */
pl_pub *rd_unpack(const char *buf, size_t len, const char *tenant, size_t tenant_len,
                  const char *channel, size_t channel_len, uint64_t offset, const char *epoch,
                  size_t epoch_len, int64_t ts);

/* 1 when s (n bytes) may be an epoch: at most PUB_EPOCH_LEN of [a-z0-9]. */
int rd_epoch_ok(const char *s, size_t n);

#endif
