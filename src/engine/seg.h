/* The stored form of a run of pubs that share one row of the pubs table: a
 * channel's consecutive pubs of one commit. The row's columns hold the first
 * pub; the others follow in one blob, so a commit writes one row per channel
 * instead of one per pub (bench/README.md has what that bought).
 *
 * Blob: one record per pub, in offset order (offsets follow the row's, ts is
 * the row's, tenant and channel the row's channel):
 *   flags   1 byte: bits 0-1 the class (0..2), bit 2 set when the id follows
 *           (otherwise it is clock_ulid_pack(ts, cid, offset), which needs
 *           0 < cid < 2^CLOCK_ULID_HALF_BITS and offset < 2^CLOCK_ULID_HALF_BITS:
 *           past that ids are random and always follow); other bits 0
 *   id      26 bytes, only with bit 2
 *   fields  data, user, client, type, correlation_id, headers, idem_key, each
 *           a LEB128 code: 0 absent, 1 the same as the previous pub's value
 *           (the row's first pub for the first record), n >= 2 followed by
 *           n - 2 bytes of value.
 * The decoder trusts nothing: any malformed blob is PL_EIO, never a read
 * past its end. */
#ifndef PL_SEG_H
#define PL_SEG_H

#include <stddef.h>
#include <stdint.h>

#include "engine/pub.h"
#include "util/sbuf.h"

/* Longest value a field may have (a larger code is malformed). */
#define SEG_FIELD_MAX (64u * 1024 * 1024)

/* A stored pub's id: the ULID of its accept time ts with (cid, off) as the
 * tail, 40 bits each, so trace finds its row by key. Writes it to out and
 * returns 1; returns 0 (out untouched) past 2^40 in either, where the pub
 * keeps a random id. */
int seg_pub_id(char out[PUB_ID_LEN + 1], int64_t ts, int64_t cid, uint64_t off);

/* Appends p's record to out. prev is the pub before p in the row (the row's
 * first pub for the first record); cid names the channel, for the id, which
 * is left out when it equals the one derived from p->ts_ms (so p->ts_ms must
 * be the row's ts). A field longer than SEG_FIELD_MAX appends nothing and
 * latches out->oom: such a record could not be read back. */
void seg_put(sbuf *out, const pl_pub *p, const pl_pub *prev, int64_t cid);

/* Reads records back. The strings it returns point into the blob and into
 * the fields given at init, so both must outlive the iterator's use; they
 * are NOT NUL-terminated (pub_new copies them with their lengths). */
typedef struct seg_iter {
    const unsigned char *at, *end;
    int64_t cid;
    int64_t ts;
    uint64_t off;    /* offset of the next record */
    pub_fields prev; /* the previous pub's fields (tenant, channel unused) */
} seg_iter;

/* first: the row's first pub's fields (only the seven record fields are
 * read); first_off: that pub's offset. */
void seg_iter_init(seg_iter *it, const void *blob, size_t len, int64_t cid, uint64_t first_off,
                   int64_t ts, const pub_fields *first);
/* Decodes the next record into *f (the seven record fields; tenant and
 * channel untouched), *cls, id (26 characters and NUL) and *off. PL_OK, 1 at
 * the end of the blob, PL_EIO when the blob is malformed. */
int seg_next(seg_iter *it, pub_fields *f, pub_class *cls, char id[PUB_ID_LEN + 1], uint64_t *off);

#endif
