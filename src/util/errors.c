/* Lookups over the error and close-code tables of util/errors.h, and the
 * JSON error object every reply (WebSocket, SSE, HTTP API) is built with. */
#include "util/errors.h"

#include <stdio.h>
#include <string.h>

typedef struct error_row {
    int code;
    const char *message;
    int temporary;
    int http_status;
} error_row;

typedef struct close_row {
    int code;
    const char *reason;
    int reconnect;
} close_row;

#define ERROR_ROW(name, code, msg, temp, http) {code, msg, temp, http},
static const error_row error_rows[] = {PROTO_ERROR_MAP(ERROR_ROW)};
#undef ERROR_ROW

#define CLOSE_ROW(name, code, reason, reconnect) {code, reason, reconnect},
static const close_row close_rows[] = {PROTO_CLOSE_MAP(CLOSE_ROW)};
#undef CLOSE_ROW

/* Unknown codes must still produce a well-formed reply. */
static const error_row error_fallback = {0, "error", 0, 400};

static const error_row *error_find(int code)
{
    for (size_t i = 0; i < sizeof(error_rows) / sizeof(error_rows[0]); i++)
        if (error_rows[i].code == code) return &error_rows[i];
    return &error_fallback;
}

static const close_row *close_find(int code)
{
    for (size_t i = 0; i < sizeof(close_rows) / sizeof(close_rows[0]); i++)
        if (close_rows[i].code == code) return &close_rows[i];
    return NULL;
}

const char *proto_error_message(int code)
{
    return error_find(code)->message;
}

int proto_error_temporary(int code)
{
    return error_find(code)->temporary;
}

int proto_error_http_status(int code)
{
    return error_find(code)->http_status;
}

const char *proto_close_reason(int code)
{
    const close_row *r = close_find(code);
    return r ? r->reason : "closed";
}

/* The server API may close with any code of PC_MIN..PC_MAX, not only the named
 * ones: those follow the protocol's range rule. */
int proto_close_reconnect(int code)
{
    const close_row *r = close_find(code);
    return r ? r->reconnect : code < PC_NO_RECONNECT_MIN;
}

/* The object up to and including "temporary", left open for extra members. */
static void error_open(sbuf *o, int code, const char *detail)
{
    const error_row *e = error_find(code);
    sbuf_printf(o, "{\"code\":%d,\"message\":", code);
    if (detail) {
        char both[256];
        int n = snprintf(both, sizeof(both), "%s: %s", e->message, detail);
        sbuf_json_str(o, both, n < (int)sizeof(both) ? (size_t)n : sizeof(both) - 1);
    } else {
        sbuf_json_str(o, e->message, strlen(e->message));
    }
    sbuf_printf(o, ",\"temporary\":%s", e->temporary ? "true" : "false");
}

void proto_error_json(sbuf *o, int code, const char *detail)
{
    error_open(o, code, detail);
    sbuf_putc(o, '}');
}

void proto_error_json_retry(sbuf *o, int64_t retry_after_ms)
{
    proto_error_json_code_retry(o, PE_TOO_MANY_REQUESTS, NULL, retry_after_ms);
}

void proto_error_json_code_retry(sbuf *o, int code, const char *detail, int64_t retry_after_ms)
{
    error_open(o, code, detail);
    sbuf_printf(o, ",\"retry_after\":%lld}", (long long)(retry_after_ms < 1 ? 1 : retry_after_ms));
}
