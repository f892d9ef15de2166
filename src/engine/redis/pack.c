/* Stored form of a pub in Redis streams; see pack.h. */
#include "engine/redis/pack.h"

#include <string.h>

#define RD_FIELDS 8
#define RD_FIELD_MAX (64u * 1024 * 1024)

static void put_field(sbuf *out, const char *s, size_t n)
{
    uint64_t code = s ? (uint64_t)n + 1 : 0;
    do {
        uint8_t b = code & 0x7f;
        code >>= 7;
        sbuf_putc(out, (char)(code ? b | 0x80 : b));
    } while (code);
    if (s && n) sbuf_append(out, s, n);
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

void rd_pack(sbuf *out, const pl_pub *p)
{
    sbuf_putc(out, (char)p->cls);
    put_field(out, p->id, strlen(p->id));
    put_field(out, p->data ? p->data : "", p->data_len);
    const char *rest[] = {p->user, p->client, p->type, p->correlation_id, p->headers, p->idem_key};
    for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
        put_field(out, rest[i], slen(rest[i]));
}

/* Reads one field: 0 and *s = NULL when absent, -1 when malformed. */
static int get_field(const char **pp, const char *end, const char **s, size_t *n)
{
    uint64_t code = 0;
    for (int shift = 0;; shift += 7) {
        if (*pp >= end || shift > 56) return -1;
        uint8_t b = (uint8_t) * (*pp)++;
        code |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    *s = NULL;
    *n = 0;
    if (!code) return 0;
    if (code - 1 > RD_FIELD_MAX || code - 1 > (uint64_t)(end - *pp)) return -1;
    *s = *pp;
    *n = (size_t)(code - 1);
    *pp += *n;
    return 0;
}

/* Ids and epochs are written into push frames as they are: only the
 * characters they are made of are accepted. */
static int chars_ok(const char *s, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(set, s[i])) return 0;
    return 1;
}

int rd_epoch_ok(const char *s, size_t n)
{
    return n <= PUB_EPOCH_LEN && chars_ok(s, n, "abcdefghijklmnopqrstuvwxyz0123456789");
}

pl_pub *rd_unpack(const char *buf, size_t len, const char *tenant, size_t tenant_len,
                  const char *channel, size_t channel_len, uint64_t offset, const char *epoch,
                  size_t epoch_len, int64_t ts)
{
    const char *p = buf, *end = buf + len;
    if (!len || (uint8_t)buf[0] > PUB_GUARANTEED) return NULL;
    pub_class cls = (pub_class)(uint8_t)*p++;
    const char *v[RD_FIELDS];
    size_t n[RD_FIELDS];
    for (int i = 0; i < RD_FIELDS; i++)
        if (get_field(&p, end, &v[i], &n[i])) return NULL;
    if (p != end || !v[0] || n[0] != PUB_ID_LEN || !v[1] || !rd_epoch_ok(epoch, epoch_len) ||
        !chars_ok(v[0], n[0], "0123456789ABCDEFGHJKMNPQRSTVWXYZ"))
        return NULL;
    pub_fields f = {.tenant = tenant,
                    .tenant_len = tenant_len,
                    .channel = channel,
                    .channel_len = channel_len,
                    .data = v[1],
                    .data_len = n[1],
                    .user = v[2],
                    .user_len = n[2],
                    .client = v[3],
                    .client_len = n[3],
                    .type = v[4],
                    .type_len = n[4],
                    .correlation_id = v[5],
                    .correlation_id_len = n[5],
                    .headers = v[6],
                    .headers_len = n[6],
                    .idem_key = v[7],
                    .idem_key_len = n[7],
                    .now_ms = ts};
    pl_pub *pub = pub_new(&f, cls);
    if (!pub) return NULL;
    memcpy(pub->id, v[0], PUB_ID_LEN);
    pub->id[PUB_ID_LEN] = '\0';
    memcpy(pub->epoch, epoch, epoch_len);
    pub->epoch[epoch_len] = '\0';
    pub->offset = offset;
    pub->ts_ms = ts;
    return pub;
}
