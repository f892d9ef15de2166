/* The web app's files in memory (see web.h): loading a root, the request
 * path's decoding and lookup, and the two request headers that choose a
 * representation (Accept-Encoding, If-None-Match). */
#include "net/web.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "util/mem.h"
#include "util/hex.h"

#define GZIP_MIN_BYTES 256 /* smaller files gain nothing worth a header */
#define ETAG_HEX 16        /* hex digits of the SHA-256 kept in an ETag */
#define ZLIB_GZIP_WBITS 31 /* 15-bit window, gzip wrapper */
#define ZLIB_MEM_LEVEL 8

typedef struct entry {
    char *path; /* relative to the root, '/'-separated */
    const char *type;
    rbuf *body, *gz; /* gz NULL when compressing does not pay */
    char etag[ETAG_HEX + 3], etag_gz[ETAG_HEX + 6];
} entry;

struct web_root {
    entry *v;
    size_t n, cap, bytes;
};

static const struct {
    const char *ext, *type;
    int text; /* worth compressing */
} types[] = {
    {"html", "text/html; charset=utf-8", 1},
    {"js", "text/javascript; charset=utf-8", 1},
    {"mjs", "text/javascript; charset=utf-8", 1},
    {"css", "text/css; charset=utf-8", 1},
    {"json", "application/json", 1},
    {"map", "application/json", 1},
    {"svg", "image/svg+xml", 1},
    {"txt", "text/plain; charset=utf-8", 1},
    {"webmanifest", "application/manifest+json", 1},
    {"png", "image/png", 0},
    {"ico", "image/x-icon", 0},
    {"woff2", "font/woff2", 0},
};

static const char *type_of(const char *path, int *text)
{
    const char *dot = strrchr(path, '.');
    *text = 0;
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (!strcasecmp(dot + 1, types[i].ext)) {
                *text = types[i].text;
                return types[i].type;
            }
    return "application/octet-stream";
}

/* A gzip copy of b, or NULL when it would not be smaller (or no memory). */
static rbuf *gzip_copy(const rbuf *b)
{
    z_stream z = {0};
    if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, ZLIB_GZIP_WBITS, ZLIB_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    uLong bound = deflateBound(&z, (uLong)b->len);
    rbuf *out = rbuf_new(bound);
    if (out) {
        z.next_in = (Bytef *)b->data;
        z.avail_in = (uInt)b->len;
        z.next_out = (Bytef *)out->data;
        z.avail_out = (uInt)bound;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END || z.total_out >= b->len) {
            rbuf_unref(out);
            out = NULL;
        } else {
            out->len = z.total_out;
        }
    }
    deflateEnd(&z);
    return out;
}

static void etag_of(const rbuf *b, char *etag, char *etag_gz)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[ETAG_HEX + 1];
    if (!EVP_Digest(b->data, b->len, md, &mdlen, EVP_sha256(), NULL)) memset(md, 0, sizeof(md));
    for (int i = 0; i < ETAG_HEX / 2; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(etag, ETAG_HEX + 3, "\"%s\"", hex);
    snprintf(etag_gz, ETAG_HEX + 6, "\"%s-gz\"", hex);
}

static rbuf *read_file(const char *full, size_t size)
{
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return NULL;
    rbuf *b = rbuf_new(size);
    size_t got = 0;
    while (b && got < size) {
        ssize_t r = read(fd, b->data + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (b && got != size) { /* changed while read: refuse rather than serve half */
        rbuf_unref(b);
        b = NULL;
    }
    return b;
}

static int add_file(web_root *w, const char *full, const char *rel, size_t size, char *err,
                    size_t errlen)
{
    if (w->n == WEB_MAX_FILES || size > WEB_MAX_BYTES - w->bytes) {
        snprintf(err, errlen, "more than %d files or %u bytes", WEB_MAX_FILES, WEB_MAX_BYTES);
        return -1;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 32;
        entry *nv = pl_realloc(w->v, cap * sizeof(*nv));
        if (!nv) goto oom;
        w->v = nv;
        w->cap = cap;
    }
    entry *e = &w->v[w->n];
    memset(e, 0, sizeof(*e));
    int text;
    e->type = type_of(rel, &text);
    if (!(e->path = pl_strdup(rel))) goto oom;
    if (!(e->body = read_file(full, size))) {
        pl_free(e->path);
        snprintf(err, errlen, "%s: cannot read", full);
        return -1;
    }
    if (text && size >= GZIP_MIN_BYTES) e->gz = gzip_copy(e->body);
    etag_of(e->body, e->etag, e->etag_gz);
    w->bytes += size;
    w->n++;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static int walk(web_root *w, const char *dir, const char *rel, int depth, char *err, size_t errlen)
{
    if (depth > WEB_MAX_DEPTH) {
        snprintf(err, errlen, "%s: deeper than %d levels", dir, WEB_MAX_DEPTH);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (struct dirent *de; !rc && (de = readdir(d));) {
        if (de->d_name[0] == '.') continue;
        char full[4096], sub[WEB_MAX_PATH];
        struct stat st;
        int n1 = snprintf(full, sizeof(full), "%s/%s", dir, de->d_name);
        int n2 = snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        if (n1 < 0 || (size_t)n1 >= sizeof(full) || n2 < 0 || (size_t)n2 >= sizeof(sub)) {
            snprintf(err, errlen, "%s: path too long", full);
            rc = -1;
        } else if (lstat(full, &st) < 0) {
            snprintf(err, errlen, "%s: %s", full, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk(w, full, sub, depth + 1, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            rc = add_file(w, full, sub, (size_t)st.st_size, err, errlen);
        }
    }
    closedir(d);
    return rc;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->path, ((const entry *)b)->path);
}

static const entry *lookup(const web_root *w, const char *path)
{
    entry key = {.path = (char *)path};
    return w->n ? bsearch(&key, w->v, w->n, sizeof(*w->v), entry_cmp) : NULL;
}

web_root *web_load(const char *dir, char *err, size_t errlen)
{
    web_root *w = pl_calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (walk(w, dir, "", 0, err, errlen) < 0) goto fail;
    if (w->n) qsort(w->v, w->n, sizeof(*w->v), entry_cmp);
    if (!lookup(w, "index.html")) {
        snprintf(err, errlen, "%s: no index.html", dir);
        goto fail;
    }
    return w;
fail:
    web_free(w);
    return NULL;
}

void web_free(web_root *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        pl_free(w->v[i].path);
        rbuf_unref(w->v[i].body);
        rbuf_unref(w->v[i].gz);
    }
    pl_free(w->v);
    pl_free(w);
}

size_t web_count(const web_root *w)
{
    return w ? w->n : 0;
}

/* 1 if the segment out[start..end) is empty, "." or "..". */
static int bad_segment(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

int web_path(const char *path, size_t len, char *out, size_t cap)
{
    static const char index[] = "index.html";
    if (!len || path[0] != '/' || cap < sizeof(index)) return -1;
    size_t o = 0, seg = 0;
    for (size_t i = 1; i < len; i++) {
        int c = (unsigned char)path[i];
        if (c == '%') {
            int hi = i + 2 < len ? hex_val(path[i + 1]) : -1,
                lo = hi < 0 ? -1 : hex_val(path[i + 2]);
            if (lo < 0) return -1;
            c = hi << 4 | lo;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || c == '\\') return -1; /* NUL and controls, escaped or not */
        if (o + 1 >= cap) return -1;
        if (c == '/') {
            if (bad_segment(out + seg, o - seg)) return -1;
            seg = o + 1;
        }
        out[o++] = (char)c;
    }
    if (o > seg && bad_segment(out + seg, o - seg)) return -1;
    if (o == seg) { /* "/" or a trailing '/': the directory's index */
        if (o + sizeof(index) > cap) return -1;
        memcpy(out + o, index, sizeof(index));
        return 0;
    }
    out[o] = '\0';
    return 0;
}

enum web_status web_find(const web_root *w, const char *path, size_t len, int gzip, web_file *out)
{
    char rel[WEB_MAX_PATH + sizeof("/index.html")];
    if (len > WEB_MAX_PATH || web_path(path, len, rel, sizeof(rel)) < 0) return WEB_BAD_PATH;
    const entry *e = lookup(w, rel);
    if (!e) { /* "/admin" names the directory: its index */
        size_t n = strlen(rel);
        memcpy(rel + n, "/index.html", sizeof("/index.html"));
        e = lookup(w, rel);
    }
    if (!e) return WEB_NOT_FOUND;
    int z = gzip && e->gz;
    *out = (web_file){
        .body = z ? e->gz : e->body, .type = e->type, .etag = z ? e->etag_gz : e->etag, .gzip = z};
    return WEB_FOUND;
}

/* Calls fn on each comma-separated member of v, trimmed; stops at a non-zero return. */
static int each_member(const char *v, size_t len, int (*fn)(const char *, size_t, const void *),
                       const void *ud)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        int r = b > a ? fn(v + a, b - a, ud) : 0;
        if (r) return r;
        i = j + 1;
    }
    return 0;
}

/* "gzip" or "gzip;q=X" with X above 0: 1; "gzip;q=0": -1 (refused); else 0. */
static int gzip_member(const char *m, size_t n, const void *ud)
{
    (void)ud;
    if (n < 4 || strncasecmp(m, "gzip", 4) || (n > 4 && m[4] != ';' && m[4] != ' ')) return 0;
    const char *q = NULL;
    for (size_t i = 4; i + 1 < n; i++)
        if ((m[i] == 'q' || m[i] == 'Q') && m[i + 1] == '=') q = m + i + 2;
    if (!q) return 1;
    for (const char *p = q; p < m + n; p++)
        if (*p >= '1' && *p <= '9') return 1;
    return -1;
}

int web_accepts_gzip(const char *v, size_t len)
{
    return v && each_member(v, len, gzip_member, NULL) == 1;
}

static int etag_member(const char *m, size_t n, const void *ud)
{
    const char *etag = ud;
    if (n == 1 && m[0] == '*') return 1;
    if (n > 2 && m[0] == 'W' && m[1] == '/') m += 2, n -= 2;
    return n == strlen(etag) && !memcmp(m, etag, n);
}

int web_etag_match(const char *v, size_t len, const char *etag)
{
    return v && each_member(v, len, etag_member, etag) == 1;
}
