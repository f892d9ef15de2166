/* HTTP/1.1 request reading: http-parser's callbacks collect the URL, the headers the server
 * reads (and every header, by name) and the body into buffers of the reader, and http_feed turns
 * the parser's stops into a status. See http.h. */
#include "net/http.h"

#include <string.h>
#include <strings.h>

#include "util/mem.h"
#include "util/sbuf.h"
#include "util/status.h"

static const char *const header_names[HTTP_H__COUNT] = {
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "last-event-id",
    "authorization",
    "origin",
};

struct http_request {
    http_parser p;
    size_t max_body;
    sbuf url;
    sbuf field;
    sbuf hv[HTTP_H__COUNT];
    sbuf all; /* every header as "name\0value\0" records, in the order sent */
    sbuf body;
    unsigned present; /* bit per header id sent in this request */
    int cur;          /* header being captured, -1 if dropped */
    int in_value;
    int open_value; /* the last record in `all` still lacks its value's NUL */
    size_t head_bytes;
    int complete;
    int ready; /* PL_OK was returned; nothing more is read until http_next */
    int too_big;
    int oom;
    int fault; /* PL_EINVAL, PL_ELIMIT or PL_ENOMEM once the stream is lost */
};

/* Returns nonzero, which stops the parser, when the head is over the limit or b could not
 * grow. */
static int keep(http_request *r, sbuf *b, const char *at, size_t n)
{
    r->head_bytes += n;
    if (r->head_bytes > HTTP_MAX_HEAD) return 1;
    if (b) sbuf_append(b, at, n);
    if (b && b->oom) r->oom = 1;
    return r->oom;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    http_request *r = p->data;
    return keep(r, &r->url, at, n);
}

/* Ends the record of the header being read, if any. */
static int close_value(http_request *r)
{
    if (!r->open_value) return 0;
    r->open_value = 0;
    sbuf_putc(&r->all, '\0');
    if (r->all.oom) r->oom = 1;
    return r->oom;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    http_request *r = p->data;
    if (r->in_value) {
        if (close_value(r)) return 1;
        sbuf_reset(&r->field);
        r->in_value = 0;
    }
    return keep(r, &r->field, at, n);
}

static int header_id(const sbuf *field)
{
    for (int i = 0; i < HTTP_H__COUNT; i++)
        if (field->len == strlen(header_names[i]) &&
            !strncasecmp(field->data, header_names[i], field->len))
            return i;
    return -1;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    http_request *r = p->data;
    /* RFC 9110 5.5: a NUL in a field value is refused (400), which also
     * keeps the "name\0value\0" records of `all` unambiguous. */
    if (memchr(at, '\0', n)) return 1;
    if (!r->in_value) {
        r->in_value = 1;
        r->cur = header_id(&r->field);
        if (r->cur >= 0) r->present |= 1u << r->cur;
        /* The name's bytes were counted in the head already. */
        sbuf_append(&r->all, r->field.data ? r->field.data : "", r->field.len);
        sbuf_putc(&r->all, '\0');
        r->open_value = 1;
    }
    if (keep(r, r->cur >= 0 ? &r->hv[r->cur] : NULL, at, n)) return 1;
    sbuf_append(&r->all, at, n);
    if (r->all.oom) r->oom = 1;
    return r->oom;
}

static int on_headers_complete(http_parser *p)
{
    http_request *r = p->data;
    /* 0 goes on with the body; anything else would tell http-parser to skip it. */
    return close_value(r) ? -1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    http_request *r = p->data;
    if (r->body.len + n > r->max_body) {
        r->too_big = 1;
        return 0; /* read on to the end: the stream stays in sync for the answer */
    }
    sbuf_append(&r->body, at, n);
    r->oom = r->body.oom;
    return r->oom;
}

/* Pausing keeps the next pipelined request unread until the caller is done with this one. */
static int on_message_complete(http_parser *p)
{
    if (close_value(p->data)) return 1; /* a chunked body's last trailer */
    ((http_request *)p->data)->complete = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

http_request *http_request_new(size_t max_body)
{
    http_request *r = pl_calloc(1, sizeof(*r));
    if (!r) return NULL;
    http_parser_init(&r->p, HTTP_REQUEST);
    r->p.data = r;
    r->max_body = max_body;
    r->cur = -1;
    return r;
}

void http_request_free(http_request *r)
{
    if (!r) return;
    sbuf_release(&r->url);
    sbuf_release(&r->field);
    sbuf_release(&r->all);
    sbuf_release(&r->body);
    for (int i = 0; i < HTTP_H__COUNT; i++)
        sbuf_release(&r->hv[i]);
    pl_free(r);
}

int http_feed(http_request *r, const char *data, size_t len, size_t *used)
{
    *used = 0;
    if (r->fault) return r->fault;
    if (r->ready) return PL_OK;
    /* Zero bytes would tell http-parser the stream ended. */
    if (len) *used = http_parser_execute(&r->p, &parser_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->p);
    if (e != HPE_OK && e != HPE_PAUSED) {
        r->fault = r->oom ? PL_ENOMEM : r->head_bytes > HTTP_MAX_HEAD ? PL_ELIMIT : PL_EINVAL;
        return r->fault;
    }
    /* Not only complete requests: the server leaves HTTP on an upgrade request's head, so one
     * is ready whenever the parser stops on it, even with part of a body still to come. */
    r->ready = r->complete || r->p.upgrade;
    return r->ready ? PL_OK : PL_AGAIN;
}

void http_next(http_request *r)
{
    sbuf_reset(&r->url);
    sbuf_reset(&r->field);
    sbuf_reset(&r->all);
    sbuf_reset(&r->body);
    for (int i = 0; i < HTTP_H__COUNT; i++)
        sbuf_reset(&r->hv[i]);
    r->present = 0;
    r->cur = -1;
    r->in_value = 0;
    r->open_value = 0;
    r->head_bytes = 0;
    r->complete = 0;
    r->ready = 0;
    r->too_big = 0;
    if (!r->fault) http_parser_pause(&r->p, 0); /* a lost stream stays lost */
}

int http_error(const http_request *r, const char **phrase, const char **message)
{
    static const struct {
        int fault, status;
        const char *phrase, *message;
    } answers[] = {
        {PL_EINVAL, 400, "Bad Request", "malformed HTTP request"},
        {PL_ELIMIT, 431, "Request Header Fields Too Large", "request head too large"},
        {PL_ENOMEM, 503, "Service Unavailable", "out of memory"},
        {0, 413, "Payload Too Large", "request body too large"},
    };
    size_t i = 0;
    if (!r->fault && !r->too_big) return 0;
    while (answers[i].fault != r->fault)
        i++;
    if (phrase) *phrase = answers[i].phrase;
    if (message) *message = answers[i].message;
    return answers[i].status;
}

enum http_method http_method_of(const http_request *r)
{
    return (enum http_method)r->p.method;
}

int http_keep_alive(const http_request *r)
{
    return http_should_keep_alive(&r->p) != 0;
}

int http_upgrade(const http_request *r)
{
    return r->p.upgrade != 0;
}

static const char *text(const sbuf *b, size_t *len)
{
    *len = b->len;
    return b->data ? b->data : "";
}

const char *http_url(const http_request *r, size_t *len)
{
    return text(&r->url, len);
}

const char *http_path(const http_request *r, size_t *len)
{
    const char *u = text(&r->url, len);
    const char *q = memchr(u, '?', *len);
    if (q) *len = (size_t)(q - u);
    return u;
}

const char *http_query(const http_request *r, size_t *len)
{
    size_t n;
    const char *u = text(&r->url, &n);
    const char *q = memchr(u, '?', n);
    *len = q ? n - (size_t)(q + 1 - u) : 0;
    return q ? q + 1 : NULL;
}

const char *http_header(const http_request *r, enum http_header_id id, size_t *len)
{
    *len = 0;
    if ((unsigned)id >= HTTP_H__COUNT || !(r->present & (1u << id))) return NULL;
    return text(&r->hv[id], len);
}

const char *http_header_named(const http_request *r, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    const char *p = r->all.data, *end = p ? p + r->all.len : NULL;
    *len = 0;
    while (p && p < end) {
        /* A record ends with the value's NUL, which an unfinished request may lack. */
        const char *val = memchr(p, '\0', (size_t)(end - p));
        const char *vend = val ? memchr(val + 1, '\0', (size_t)(end - val - 1)) : NULL;
        if (!vend) return NULL;
        if ((size_t)(val - p) == nlen && !strncasecmp(p, name, nlen)) {
            *len = (size_t)(vend - val - 1);
            return val + 1;
        }
        p = vend + 1;
    }
    return NULL;
}

const char *http_body(const http_request *r, size_t *len)
{
    return text(&r->body, len);
}
