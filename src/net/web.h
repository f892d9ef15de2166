/* The web app's files, served at / and /admin: every file under the web root
 * is read once at start into memory, with a gzip copy and an ETag, so a
 * request never touches the file system and no path can name a file outside
 * the root. Immutable after web_load: any thread may read it. */
#ifndef PL_NET_WEB_H
#define PL_NET_WEB_H

#include <stddef.h>

#include "util/rbuf.h"

#define WEB_MAX_FILES 1024        /* files under one root */
#define WEB_MAX_BYTES (64u << 20) /* their total size */
#define WEB_MAX_DEPTH 8           /* directory levels below the root */
#define WEB_MAX_PATH 512          /* bytes of a decoded request path */

typedef struct web_root web_root;

/* Reads every regular file under dir (symbolic links and names starting
 * with '.' are skipped). Returns NULL with a message in err when dir cannot
 * be read, holds no index.html, or passes a limit above. The caller frees
 * it with web_free. */
web_root *web_load(const char *dir, char *err, size_t errlen);
void web_free(web_root *w);
size_t web_count(const web_root *w);

/* What a request path resolved to. Borrowed from the root: body is not
 * referenced for the caller (rbuf_ref it to queue it). */
typedef struct web_file {
    rbuf *body;       /* the bytes to send: the gzip copy when gzip is set */
    const char *type; /* Content-Type */
    const char *etag; /* strong ETag of this representation, quotes included */
    int gzip;         /* body is the gzip copy (Content-Encoding: gzip) */
} web_file;

enum web_status { WEB_FOUND, WEB_NOT_FOUND, WEB_BAD_PATH };

/* Finds the file a request path (as sent, percent-encoded, without the
 * query) names: "/" is index.html, a path ending in '/' or naming a
 * directory is its index.html. WEB_BAD_PATH for a path no file can have: a
 * bad or NUL escape, a control byte or backslash, an empty, "." or ".."
 * segment, or over WEB_MAX_PATH. gzip: the client accepts gzip. */
enum web_status web_find(const web_root *w, const char *path, size_t len, int gzip, web_file *out);

/* Decodes a request path into out (cap bytes, NUL-terminated): without the
 * leading '/', with index.html for a trailing '/'. 0, or -1 as WEB_BAD_PATH
 * above. Exposed for the fuzzer. */
int web_path(const char *path, size_t len, char *out, size_t cap);

/* 1 if an Accept-Encoding value admits gzip (listed with a q above 0). */
int web_accepts_gzip(const char *v, size_t len);
/* 1 if an If-None-Match value names etag (or is "*"). Weak tags match
 * their strong form, as RFC 9110's weak comparison says for this header. */
int web_etag_match(const char *v, size_t len, const char *etag);

#endif
