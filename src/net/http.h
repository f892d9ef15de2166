/* HTTP/1.1 request reading for the server's HTTP phase: bytes in, one parsed request out, with
 * http-parser doing the parsing. Pure: no socket, no clock, no global state; the caller moves
 * the bytes, routes the request and writes the answer. */
#ifndef PL_NET_HTTP_H
#define PL_NET_HTTP_H

#include <http_parser.h>
#include <stddef.h>

#include "util/status.h"

/* The most bytes of URL, header names and header values one request may carry; past it the
 * request is refused with 431. (http-parser's own limit on the whole head, 80 KiB counting every
 * byte, still applies and is reported as malformed.) */
#define HTTP_MAX_HEAD 16384

/* A reader of one connection's request stream, and the request it last read. Opaque. */
typedef struct http_request http_request;

/* The headers the server itself reads, by id (names are matched case-insensitively); every
 * header, these included, can also be read by name (http_header_named). */
enum http_header_id {
    HTTP_H_UPGRADE,
    HTTP_H_CONNECTION,
    HTTP_H_WS_KEY,      /* Sec-WebSocket-Key */
    HTTP_H_WS_VERSION,  /* Sec-WebSocket-Version */
    HTTP_H_WS_PROTOCOL, /* Sec-WebSocket-Protocol */
    HTTP_H_LAST_EVENT_ID,
    HTTP_H_AUTHORIZATION,
    HTTP_H_ORIGIN, /* checked against allowed_origins, echoed by CORS answers */
    HTTP_H__COUNT
};

/* Returns a reader for requests whose bodies may be up to max_body bytes, or NULL when out of
 * memory. The caller owns it (http_request_free); it owns every buffer it hands out. */
http_request *http_request_new(size_t max_body);
void http_request_free(http_request *r);

/* Reads up to len bytes of the request stream and sets *used to how many it took. Returns
 *   PL_OK      a request is ready (the accessors below read it); bytes past *used belong to the
 *              next request, or to another protocol when http_upgrade is set. Call http_next
 *              before feeding the next request's bytes; until then PL_OK is repeated, taking none.
 *              An upgrade request (Upgrade with Connection: upgrade, or CONNECT) is ready as soon
 *              as http-parser stops on it, which may be before its body has all arrived.
 *   PL_AGAIN   everything was taken and the request is not complete: feed more.
 *   PL_EINVAL  malformed (bad method, URL, version, header, Content-Length or chunk, NUL bytes).
 *   PL_ELIMIT  URL and headers over HTTP_MAX_HEAD.
 *   PL_ENOMEM  a buffer could not grow.
 * After an error the stream cannot be resynchronised: every later call returns the same error
 * (http_error says how to answer it). A body over max_body is not an error here: the request
 * still completes and the stream stays in sync; http_error reports 413 and the body is cut. */
int http_feed(http_request *r, const char *data, size_t len, size_t *used);

/* Forgets the request read (its buffers are kept for reuse) and resumes reading after it.
 * After an error it changes nothing: the error stays. */
void http_next(http_request *r);

/* Returns the HTTP status that answers what went wrong with the request, or 0 if nothing did:
 * 400 malformed, 431 head over the limit, 503 out of memory (each after http_feed returned the
 * matching error), 413 body over the limit (after PL_OK). When not 0 and the pointers are not
 * NULL, *phrase gets the status line's reason phrase and *message a short explanation, both
 * static strings. */
int http_error(const http_request *r, const char **phrase, const char **message);

/* Accessors for the request last read (after PL_OK; before, they see what has arrived so far).
 * Pointers stay valid until the next http_feed, http_next or http_request_free; strings are
 * NUL-terminated as well as counted. */
enum http_method http_method_of(const http_request *r);
/* 1 if the connection stays open after the answer (HTTP/1.1 without Connection: close, or
 * HTTP/1.0 with Connection: keep-alive), else 0. */
int http_keep_alive(const http_request *r);
/* 1 if the request asks to leave HTTP (see http_feed), else 0. */
int http_upgrade(const http_request *r);
/* The request target as sent; "" when none was read. */
const char *http_url(const http_request *r, size_t *len);
/* The target up to its first '?'. */
const char *http_path(const http_request *r, size_t *len);
/* The target after its first '?', or NULL (and *len 0) when it has none. */
const char *http_query(const http_request *r, size_t *len);
/* The header's value, or NULL (and *len 0) when the request did not send it; "" for a header
 * sent empty. A header sent more than once reads as its values joined with nothing between. */
const char *http_header(const http_request *r, enum http_header_id id, size_t *len);
/* Any header by name (compared case-insensitively), known or not: the value of its first
 * occurrence, NUL-terminated, or NULL (and *len 0) when the request did not send it; "" for a
 * header sent empty. Chunked trailers count as headers. Linear in the request's header bytes
 * (at most HTTP_MAX_HEAD). */
const char *http_header_named(const http_request *r, const char *name, size_t *len);
/* The body ("" when none); chunked bodies are decoded. */
const char *http_body(const http_request *r, size_t *len);

#endif
