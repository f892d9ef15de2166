/* Client command decoder (PROTOCOL.md section 2): turns one WebSocket text message
 * holding one or more '\n'-separated JSON objects into commands, each with its own
 * result, so one bad command in a batch does not hide the others. Pure: no I/O;
 * the only memory it allocates is kept in the batch and reused. */
#ifndef PL_PROTO_COMMAND_H
#define PL_PROTO_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "util/errors.h"
#include "util/json.h"

#define PROTO_ERR_LIMIT PE_LIMIT_EXCEEDED    /* too many tokens or nesting too deep */
#define PROTO_ERR_BAD_REQUEST PE_BAD_REQUEST /* malformed JSON or wrong command shape */
#define PROTO_ID_MAX (UINT64_C(1) << 53)     /* largest id a JavaScript client can hold */

typedef struct proto_cmd {
    int has_id;  /* 0: fire-and-forget, or the id was invalid (then error is set) */
    uint64_t id; /* 1..PROTO_ID_MAX when has_id */
    /* Method name, unescaped, not NUL-terminated; NULL when missing. Points into
     * the message or into the batch: valid until the next decode on the batch. */
    const char *method;
    size_t method_len;
    int params;         /* token of the params object, -1 when absent */
    int tok;            /* token of the command object, -1 when the message is not JSON */
    proto_error error;  /* PE_OK, PROTO_ERR_BAD_REQUEST or PROTO_ERR_LIMIT */
    const char *errmsg; /* short reason when error != 0; static or in the batch */
} proto_cmd;

/* One per connection (or worker); reused across messages. Public read-only
 * members: doc (for json_* accessors on params), cmds, ncmds. */
typedef struct proto_batch {
    json_doc doc;
    proto_cmd *cmds; /* ncmds commands in message order; points at _arr or _one */
    size_t ncmds;
    proto_cmd *_arr; /* owned */
    size_t _cap;
    proto_cmd _one;
    char *_scratch; /* owned; unescaped strings, at their own source offsets */
    size_t _scratch_cap;
    char _errbuf[160];
} proto_batch;

void proto_batch_init(proto_batch *b);
/* Frees what the batch owns; it may be reused after proto_batch_init. */
void proto_batch_release(proto_batch *b);

/* Decodes msg[0..len) (borrowed: it must outlive every span and token taken from
 * this decode). lim: NULL for defaults. Returns
 *   PL_OK      one command per top-level value, each with its own error field;
 *   PL_EINVAL  the message is not valid JSON: one command, PE_BAD_REQUEST, no id;
 *   PL_ELIMIT  token or depth limit hit: one command, PE_LIMIT_EXCEEDED, no id;
 *   PL_ENOMEM  no commands (answer with PE_INTERNAL or close).
 * Required shape: {"id": 1..2^53 (optional), "method": non-empty string,
 * "params": object (optional)}; null is not accepted for id or params, other
 * top-level keys are ignored, and with duplicate keys the last one wins.
 * A member named "data" is opaque (json_limits.opaque_key): valid JSON, but
 * one token without children, read whole (proto_param_raw, json_raw). */
int proto_decode(proto_batch *b, const char *msg, size_t len, const json_limits *lim);

/* Typed getters for member `key` of object token obj (usually cmd->params; -1 is
 * accepted and means no params). Results: */
#define PROTO_PARAM_OK 0
#define PROTO_PARAM_MISSING (-1)
#define PROTO_PARAM_TYPE (-2) /* present but of another type or out of range */

/* Unescaped string contents (not NUL-terminated, may hold NUL bytes), pointing
 * into the message or the batch's scratch; valid until the next decode. */
int proto_param_str(const proto_batch *b, int obj, const char *key, const char **p, size_t *n);
/* Non-negative integer (no fraction, no exponent) that fits in uint64_t. */
int proto_param_u64(const proto_batch *b, int obj, const char *key, uint64_t *out);
int proto_param_bool(const proto_batch *b, int obj, const char *key, int *out);
/* Token index of an object / array value, for nested getters and json_* walks. */
int proto_param_obj(const proto_batch *b, int obj, const char *key, int *tok);
int proto_param_arr(const proto_batch *b, int obj, const char *key, int *tok);
/* Raw bytes of a value of any type, exactly as sent (strings with quotes): used to
 * pass a publish's `data` through without re-serializing. */
int proto_param_raw(const proto_batch *b, int obj, const char *key, const char **p, size_t *n);

/* Unescaped contents of any string token of the batch (e.g. an object key met
 * while walking `subs` with json_child/json_next); PL_OK or PL_EINVAL. */
int proto_str(const proto_batch *b, int tok, const char **p, size_t *n);

#endif
