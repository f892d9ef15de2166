/* Commands of `parley bench`; see bench_cmd.h. */
#include "cli/bench_cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/jwt.h"

char *bench_mint(const bench_opts *o, uint32_t i)
{
    char claims[256];
    long exp = (long)time(NULL) + 86400;
    int n;
    if (o->tenant)
        n = snprintf(claims, sizeof(claims), "{\"sub\":\"bench-%u\",\"tenant\":\"%s\",\"exp\":%ld}",
                     i, o->tenant, exp);
    else
        n = snprintf(claims, sizeof(claims), "{\"sub\":\"bench-%u\",\"exp\":%ld}", i, exp);
    if (n < 0 || (size_t)n >= sizeof(claims)) return NULL;
    return jwt_sign_hs256(o->secret, strlen(o->secret), claims, (size_t)n);
}

void bench_put_connect(sbuf *out, uint64_t id, const char *token)
{
    sbuf_printf(out, "{\"id\":%" PRIu64 ",\"method\":\"connect\",\"params\":{\"token\":", id);
    sbuf_json_str(out, token, strlen(token));
    sbuf_puts(out, ",\"client\":{\"name\":\"parley-bench\"}}}");
}

void bench_put_subscribe(sbuf *out, uint64_t id, const char *channel, bool since, uint64_t offset,
                         const char *epoch)
{
    sbuf_printf(out, "{\"id\":%" PRIu64 ",\"method\":\"subscribe\",\"params\":{\"channel\":", id);
    sbuf_json_str(out, channel, strlen(channel));
    if (since) {
        sbuf_printf(out, ",\"since\":{\"offset\":%" PRIu64 ",\"epoch\":", offset);
        sbuf_json_str(out, epoch, strlen(epoch));
        sbuf_putc(out, '}');
    }
    sbuf_puts(out, "}}");
}

void bench_put_data(sbuf *out, uint32_t payload, const char *pad, uint64_t t, uint64_t s)
{
    char head[64];
    int n = snprintf(head, sizeof(head), "{\"t\":%" PRIu64 ",\"s\":%" PRIu64 ",\"p\":\"", t, s);
    size_t fixed = (size_t)n + 2;
    size_t padn = payload > fixed ? payload - fixed : 0;
    sbuf_reset(out);
    sbuf_append(out, head, (size_t)n);
    sbuf_append(out, pad, padn);
    sbuf_puts(out, "\"}");
}

void bench_put_publish(sbuf *out, uint64_t id, const char *channel, bool ephemeral,
                       const sbuf *data)
{
    sbuf_printf(out,
                "{\"id\":%" PRIu64 ",\"method\":\"publish\",\"params\":{\"channel\":\"%s\","
                "\"class\":\"%s\",\"data\":",
                id, channel, ephemeral ? "ephemeral" : "standard");
    sbuf_append(out, data->data, data->len);
    sbuf_puts(out, "}}");
}

bench_conn_opts bench_client_opts(const bench_opts *o, uint32_t i)
{
    return (bench_conn_opts){
        .host = o->host,
        .port = o->port,
        .path = o->proto == PROTO_PARLEY ? "/ws" : "/",
        .protocol = o->proto == PROTO_PARLEY ? "parley.v1" : NULL,
        .source_ip = o->source_ips > 0 ? (0x7f000001u + i % o->source_ips) : 0,
    };
}
