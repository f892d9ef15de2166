/* What goes on the wire for a pub: the push frame every subscriber shares,
 * the pub objects of results, and channel-name validation. Pure: no
 * session, no host. */
#include <stdio.h>
#include <string.h>

#include "proto/proto_int.h"
#include "proto/session.h"
#include "util/mem.h"

rbuf *proto_encode_pub(const pl_pub *p)
{
    sbuf o;
    sbuf_init(&o);
    /* One allocation: fixed fields take under 200 bytes besides these. */
    sbuf_reserve(&o, 200 + 2 * strlen(p->channel) + p->data_len +
                         (p->user ? 2 * strlen(p->user) : 0) + (p->type ? 2 * strlen(p->type) : 0) +
                         (p->correlation_id ? 2 * strlen(p->correlation_id) : 0) +
                         (p->headers ? strlen(p->headers) : 0));
    sbuf_puts(&o, "{\"push\":\"pub\",\"channel\":");
    sbuf_json_str(&o, p->channel, strlen(p->channel));
    sbuf_puts(&o, ",\"offset\":");
    sbuf_u64(&o, p->offset);
    if (p->offset) {
        sbuf_puts(&o, ",\"epoch\":\"");
        sbuf_puts(&o, p->epoch);
        sbuf_putc(&o, '"');
    }
    sbuf_puts(&o, ",\"id\":\"");
    sbuf_puts(&o, p->id);
    sbuf_puts(&o, "\",\"ts\":");
    sbuf_i64(&o, p->ts_ms);
    sbuf_puts(&o, ",\"data\":");
    sbuf_append(&o, p->data ? p->data : "null", p->data ? p->data_len : 4);
    if (p->user || p->client) {
        sbuf_puts(&o, ",\"info\":{");
        if (p->user) {
            sbuf_puts(&o, "\"user\":");
            sbuf_json_str(&o, p->user, strlen(p->user));
        }
        if (p->client) {
            sbuf_puts(&o, p->user ? ",\"client\":" : "\"client\":");
            sbuf_json_str(&o, p->client, strlen(p->client));
        }
        sbuf_putc(&o, '}');
    }
    if (p->type) {
        sbuf_puts(&o, ",\"type\":");
        sbuf_json_str(&o, p->type, strlen(p->type));
    }
    if (p->correlation_id) {
        sbuf_puts(&o, ",\"correlation_id\":");
        sbuf_json_str(&o, p->correlation_id, strlen(p->correlation_id));
    }
    if (p->headers) {
        sbuf_puts(&o, ",\"headers\":");
        sbuf_puts(&o, p->headers);
    }
    if (p->cls != PUB_STANDARD) {
        sbuf_puts(&o, ",\"class\":\"");
        sbuf_puts(&o, vocab_class_name(p->cls));
        sbuf_putc(&o, '"');
    }
    /* Last on purpose: redeliveries rewrite just this number. */
    if (p->cls == PUB_GUARANTEED && p->offset) sbuf_puts(&o, ",\"attempt\":1");
    sbuf_putc(&o, '}');
    rbuf *frame = sbuf_to_rbuf(&o);
    sbuf_release(&o);
    return frame;
}

const rbuf *proto_pub_frame(pl_pub *p)
{
    return pub_frame(p, proto_encode_pub);
}

/* Appends a pub as an element of a `pubs` array: its frame without "push". */
void proto_put_pub(sbuf *o, pl_pub *p)
{
    const rbuf *f = proto_pub_frame(p);
    if (!f || f->len <= PUSH_PREFIX_LEN) {
        o->oom = 1; /* the answer would lack a pub: fail it as out of memory */
        return;
    }
    sbuf_putc(o, '{');
    sbuf_append(o, f->data + PUSH_PREFIX_LEN, f->len - PUSH_PREFIX_LEN);
}

void proto_put_pubs(sbuf *o, engine_req *r)
{
    sbuf_puts(o, "\"pubs\":[");
    for (size_t i = 0; i < r->npubs; i++) {
        if (i) sbuf_putc(o, ',');
        proto_put_pub(o, r->pubs[i]);
    }
    sbuf_putc(o, ']');
}

/* ASCII letters and digits and _ . = @ / - : a byte table, since every
 * byte of every channel name of every command is looked up. */
#define CC_8(a, b, c, d, e, f, g, h) a, b, c, d, e, f, g, h
static const unsigned char chan_chars[256] = {
    CC_8(0, 0, 0, 0, 0, 0, 0, 0), CC_8(0, 0, 0, 0, 0, 0, 0, 0), /* 0x00 */
    CC_8(0, 0, 0, 0, 0, 0, 0, 0), CC_8(0, 0, 0, 0, 0, 0, 0, 0), /* 0x10 */
    CC_8(0, 0, 0, 0, 0, 0, 0, 0), CC_8(0, 0, 0, 0, 0, 1, 1, 1), /* 0x20: - . / */
    CC_8(1, 1, 1, 1, 1, 1, 1, 1), CC_8(1, 1, 0, 0, 0, 1, 0, 0), /* 0x30: 0-9 = */
    CC_8(1, 1, 1, 1, 1, 1, 1, 1), CC_8(1, 1, 1, 1, 1, 1, 1, 1), /* 0x40: @ A-O */
    CC_8(1, 1, 1, 1, 1, 1, 1, 1), CC_8(1, 1, 1, 0, 0, 0, 0, 1), /* 0x50: P-Z _ */
    CC_8(0, 1, 1, 1, 1, 1, 1, 1), CC_8(1, 1, 1, 1, 1, 1, 1, 1), /* 0x60: a-o */
    CC_8(1, 1, 1, 1, 1, 1, 1, 1), CC_8(1, 1, 1, 0, 0, 0, 0, 0), /* 0x70: p-z */
};
#undef CC_8

/* Validates a channel name (PROTOCOL.md section 5). Returns 0 or PE_BAD_REQUEST. */
proto_error proto_channel_valid(const char *s, size_t n)
{
    if (n == 0 || n > MAX_CHANNEL) return PE_BAD_REQUEST;
    const unsigned char *u = (const unsigned char *)s;
    int colon = 0, hash = 0;
    size_t start = 0; /* where the current segment began */
    for (size_t i = 0; i < n; i++) {
        /* Nearly every byte of a name is plain: four at a time. */
        while (n - i >= 4 && chan_chars[u[i]] & chan_chars[u[i + 1]] & chan_chars[u[i + 2]] &
                                 chan_chars[u[i + 3]])
            i += 4;
        if (i == n) break;
        unsigned char ch = u[i];
        if (chan_chars[ch]) continue;
        if (ch == ':' && !colon && !hash && i > 0)
            colon = 1;
        else if (ch == '#' && !hash)
            hash = 1;
        else if (!(ch == ',' && hash && i > start))
            return PE_BAD_REQUEST;
        start = i + 1;
    }
    return start == n ? PE_BAD_REQUEST : 0;
}

void proto_ephemeral_result(sbuf *o, const char *id)
{
    sbuf_puts(o, "{\"id\":\"");
    sbuf_puts(o, id);
    sbuf_puts(o, "\",\"offset\":0,\"epoch\":\"\",\"duplicate\":false}");
}
