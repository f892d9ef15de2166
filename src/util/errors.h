/* Every code a client can see, in one place: the protocol error codes of
 * replies (1xx) and the WebSocket close codes of server-initiated closes
 * (4xxx), each with its message and flags. Replies, the HTTP API's statuses
 * and disconnect pushes are all derived from these two tables. */
#ifndef PL_PROTO_ERRORS_H
#define PL_PROTO_ERRORS_H

#include <stdint.h>

#include "util/sbuf.h"

/* X(name, code, message, temporary, http_status). The message is what a
 * reply carries (a detail may follow after ": "); temporary tells the client
 * that retrying the same command may succeed; http_status is the status of
 * the HTTP API's reply carrying the error. */
#define PROTO_ERROR_MAP(X)                                                                         \
    X(PE_INTERNAL, 100, "internal error", 1, 500)                                                  \
    X(PE_UNAUTHORIZED, 101, "unauthorized", 0, 401)                                                \
    X(PE_UNKNOWN_CHANNEL, 102, "unknown channel or namespace", 0, 404)                             \
    X(PE_PERMISSION_DENIED, 103, "permission denied", 0, 403)                                      \
    X(PE_UNKNOWN_METHOD, 104, "unknown method", 0, 404)                                            \
    X(PE_ALREADY_SUBSCRIBED, 105, "already subscribed", 0, 400)                                    \
    X(PE_LIMIT_EXCEEDED, 106, "limit exceeded", 0, 413)                                            \
    X(PE_BAD_REQUEST, 107, "bad request", 0, 400)                                                  \
    X(PE_NOT_AVAILABLE, 108, "not available", 0, 400)                                              \
    X(PE_TOKEN_EXPIRED, 109, "token expired", 0, 401)                                              \
    X(PE_TOO_MANY_REQUESTS, 111, "too many requests", 1, 429)                                      \
    X(PE_STORAGE_UNAVAILABLE, 113, "storage unavailable", 1, 503)                                  \
    X(PE_OVERLOADED, 114, "server overloaded", 1, 503)                                             \
    X(PE_REPLAYED, 115, "replayed delivery id", 0, 409)                                            \
    X(PE_NOT_FOUND, 116, "not found", 0, 404)                                                      \
    X(PE_CONFLICT, 117, "conflict", 0, 409)

/* X(name, code, reason, reconnect). The reason is the default one; a close
 * may name a more precise one (4003 "idle timeout"). reconnect follows the
 * protocol's ranges: 4000-4499 reconnect with backoff, 4500-4999 do not
 * reconnect with the same credentials. */
#define PROTO_CLOSE_MAP(X)                                                                         \
    X(PC_SHUTDOWN, 4000, "server shutdown", 1)                                                     \
    X(PC_SLOW_CONSUMER, 4001, "slow consumer", 1)                                                  \
    X(PC_OVERLOADED, 4002, "overloaded", 1)                                                        \
    X(PC_NO_PONG, 4003, "no pong", 1)                                                              \
    X(PC_RESUME, 4004, "resume required", 1)                                                       \
    X(PC_INVALID_TOKEN, 4500, "invalid token", 0)                                                  \
    X(PC_PROTOCOL_VIOLATION, 4501, "protocol violation", 0)                                        \
    X(PC_FORBIDDEN, 4502, "forbidden", 0)                                                          \
    X(PC_API_DISCONNECT, 4503, "disconnected by the server API", 0)                                \
    X(PC_TOKEN_EXPIRED, 4504, "token expired", 0)

/* The range the server API may close a connection with. */
#define PC_MIN 4000
#define PC_NO_RECONNECT_MIN 4500
#define PC_MAX 4999

/* A protocol error code; PE_OK (0) is "no error", the value of every
 * function documented as returning "0 or a protocol code". */
#define PROTO_ERROR_ENUM(name, code, msg, temp, http) name = (code),
typedef enum proto_error { PE_OK = 0, PROTO_ERROR_MAP(PROTO_ERROR_ENUM) } proto_error;
#undef PROTO_ERROR_ENUM

#define PROTO_CLOSE_ENUM(name, code, reason, reconnect) name = (code),
typedef enum proto_close { PROTO_CLOSE_MAP(PROTO_CLOSE_ENUM) } proto_close;
#undef PROTO_CLOSE_ENUM

/* Lookups; codes outside the table get a defined fallback: message "error",
 * not temporary, HTTP 400; close reason "closed", reconnect by range. */
const char *proto_error_message(int code);
int proto_error_temporary(int code);
int proto_error_http_status(int code);
const char *proto_close_reason(int code);
int proto_close_reconnect(int code);

/* Appends {"code":C,"message":"M[: detail]","temporary":B} to o; detail may
 * be NULL. */
void proto_error_json(sbuf *o, int code, const char *detail);
/* The same for PE_TOO_MANY_REQUESTS, with "retry_after" (ms, at least 1). */
void proto_error_json_retry(sbuf *o, int64_t retry_after_ms);
/* The same for any code (and detail, which may be NULL). */
void proto_error_json_code_retry(sbuf *o, int code, const char *detail, int64_t retry_after_ms);

#endif
