/* The Parley commands every `parley bench` engine sends (bench_run.c for the
 * one-channel scenarios, bench_chat.c for chat), built in one place so the
 * wire format the figures are measured with is the same for all: tokens,
 * connect, subscribe, the timestamped payload and publish, and the
 * connection options of client number i. */
#ifndef PL_BENCH_CMD_H
#define PL_BENCH_CMD_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/bench_conn.h"
#include "cli/bench_int.h"
#include "util/sbuf.h"

/* An HS256 token for user bench-<i> (tenant claim from o), valid a day.
 * Caller frees; NULL on failure. */
char *bench_mint(const bench_opts *o, uint32_t i);
/* Appends {"id":id,"method":"connect",...} with token. */
void bench_put_connect(sbuf *out, uint64_t id, const char *token);
/* Appends a subscribe to channel; with since, resumes after offset@epoch. */
void bench_put_subscribe(sbuf *out, uint64_t id, const char *channel, bool since, uint64_t offset,
                         const char *epoch);
/* Replaces out with the pub's data {"t":t,"s":s,"p":"xx.."}, padded with
 * bytes of pad (at least payload bytes) to payload bytes when it can be. */
void bench_put_data(sbuf *out, uint32_t payload, const char *pad, uint64_t t, uint64_t s);
/* Appends a publish of data to channel in the class of o. */
void bench_put_publish(sbuf *out, uint64_t id, const char *channel, bool ephemeral,
                       const sbuf *data);
/* The connection options of client i: path and subprotocol by o->proto,
 * the source address spread over --source-ips. */
bench_conn_opts bench_client_opts(const bench_opts *o, uint32_t i);

#endif
