/* Unit tests for net/web: request paths decoded or refused (traversal,
 * escapes, NUL, controls), Accept-Encoding and If-None-Match read, and a
 * root loaded from a temporary directory: lookups, directory indexes, gzip
 * copies that inflate to the file, ETags per representation, skipped
 * dotfiles and links, and the roots that refuse to load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "net/web.h"

static const struct {
    const char *in, *want; /* want NULL: refused */
} path_rows[] = {
    {"/", "index.html"},
    {"/index.html", "index.html"},
    {"/admin/", "admin/index.html"},
    {"/admin", "admin"},
    {"/a%20b.js", "a b.js"},
    {"/%61dmin/app.js", "admin/app.js"},
    {"/a/b/c.css", "a/b/c.css"},
    {"/..", NULL},
    {"/../etc/passwd", NULL},
    {"/a/../b", NULL},
    {"/a/..", NULL},
    {"/.", NULL},
    {"/./a", NULL},
    {"/%2e%2e/x", NULL},
    {"/%2E%2E%2Fx", NULL},
    {"/a%2f..%2fb", NULL},
    {"//a", NULL},
    {"/a//b", NULL},
    {"/a%00", NULL},
    {"/a%0a", NULL},
    {"/a%7f", NULL},
    {"/a\\b", NULL},
    {"/a%5cb", NULL},
    {"/%", NULL},
    {"/%4", NULL},
    {"/%g0", NULL},
    {"a", NULL},
    {"", NULL},
    {"/.hidden", ".hidden"}, /* decodes; the root never holds dotfiles */
    {"/..a", "..a"},
};

static void test_paths(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(path_rows) / sizeof(path_rows[0]); i++) {
        char out[WEB_MAX_PATH];
        int rc = web_path(path_rows[i].in, strlen(path_rows[i].in), out, sizeof(out));
        if (!path_rows[i].want) {
            if (rc != -1) fail_msg("row %zu (%s): accepted as %s", i, path_rows[i].in, out);
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(out, path_rows[i].want);
        }
    }
    /* a raw NUL inside the counted path is refused too */
    char out[64];
    assert_int_equal(web_path("/a\0b", 4, out, sizeof(out)), -1);
    /* too long for the output */
    assert_int_equal(web_path("/abcdefgh", 9, out, 8), -1);
    assert_int_equal(web_path("/", 1, out, 8), -1); /* no room for index.html */
}

static void test_headers(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int want;
    } ae[] = {{"gzip", 1},
              {"GZIP", 1},
              {"br, gzip", 1},
              {"gzip;q=0.5", 1},
              {"gzip; q=1", 1},
              {"gzip;q=0", 0},
              {"gzip;q=0.000", 0},
              {"deflate", 0},
              {"gzipx", 0},
              {"x-gzip", 0},
              {"", 0},
              {" , ,gzip ,", 1},
              {"identity", 0},
              {"br;q=1,gzip;q=0.001", 1}};
    for (size_t i = 0; i < sizeof(ae) / sizeof(ae[0]); i++)
        if (web_accepts_gzip(ae[i].v, strlen(ae[i].v)) != ae[i].want)
            fail_msg("Accept-Encoding %s", ae[i].v);
    assert_int_equal(web_accepts_gzip(NULL, 0), 0);
    const char *tag = "\"abc\"";
    assert_int_equal(web_etag_match("\"abc\"", 5, tag), 1);
    assert_int_equal(web_etag_match("W/\"abc\"", 7, tag), 1);
    assert_int_equal(web_etag_match("\"x\", \"abc\"", 10, tag), 1);
    assert_int_equal(web_etag_match("*", 1, tag), 1);
    assert_int_equal(web_etag_match("\"abcd\"", 6, tag), 0);
    assert_int_equal(web_etag_match("abc", 3, tag), 0);
    assert_int_equal(web_etag_match("", 0, tag), 0);
    assert_int_equal(web_etag_match(NULL, 0, tag), 0);
}

static void put(const char *dir, const char *name, const char *data, size_t len)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void inflate_eq(const rbuf *gz, const char *want, size_t wlen)
{
    char *out = malloc(wlen + 16);
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 31), Z_OK);
    z.next_in = (Bytef *)gz->data;
    z.avail_in = (uInt)gz->len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)(wlen + 16);
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, wlen);
    assert_memory_equal(out, want, wlen);
    inflateEnd(&z);
    free(out);
}

static void test_root(void **state)
{
    (void)state;
    char dir[] = "/tmp/parley-web-XXXXXX", sub[600], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof(sub), "%s/admin", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_null(web_load(dir, err, sizeof(err))); /* no index.html yet */
    assert_non_null(strstr(err, "no index.html"));
    char js[4000];
    for (size_t i = 0; i < sizeof(js); i++)
        js[i] = "let x = 1;\n"[i % 11];
    put(dir, "index.html", "<p>hi</p>", 9);
    put(dir, "app.js", js, sizeof(js));
    put(dir, "admin/index.html", "<p>admin</p>", 12);
    put(dir, ".env", "SECRET", 6);
    char link[600];
    snprintf(link, sizeof(link), "%s/passwd", dir);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    web_root *w = web_load(dir, err, sizeof(err));
    assert_non_null(w);
    assert_int_equal(web_count(w), 3); /* not .env, not the link */
    web_file f, fz;
    assert_int_equal(web_find(w, "/", 1, 1, &f), WEB_FOUND);
    assert_int_equal(f.gzip, 0); /* too small to gain */
    assert_memory_equal(f.body->data, "<p>hi</p>", 9);
    assert_string_equal(f.type, "text/html; charset=utf-8");
    assert_int_equal(web_find(w, "/admin", 6, 0, &f), WEB_FOUND);
    assert_memory_equal(f.body->data, "<p>admin</p>", 12);
    assert_int_equal(web_find(w, "/app.js", 7, 0, &f), WEB_FOUND);
    assert_int_equal(web_find(w, "/app.js", 7, 1, &fz), WEB_FOUND);
    assert_int_equal(f.body->len, sizeof(js));
    assert_int_equal(fz.gzip, 1);
    assert_true(fz.body->len < sizeof(js) / 4);
    inflate_eq(fz.body, js, sizeof(js));
    assert_string_not_equal(f.etag, fz.etag);
    assert_string_equal(f.type, "text/javascript; charset=utf-8");
    char etag[64];
    snprintf(etag, sizeof(etag), "%s", f.etag);
    assert_int_equal(web_find(w, "/.env", 5, 0, &f), WEB_NOT_FOUND);
    assert_int_equal(web_find(w, "/passwd", 7, 0, &f), WEB_NOT_FOUND);
    assert_int_equal(web_find(w, "/nope", 5, 0, &f), WEB_NOT_FOUND);
    assert_int_equal(web_find(w, "/../app.js", 10, 0, &f), WEB_BAD_PATH);
    char longp[WEB_MAX_PATH + 8];
    memset(longp, 'a', sizeof(longp));
    longp[0] = '/';
    assert_int_equal(web_find(w, longp, sizeof(longp), 0, &f), WEB_BAD_PATH);
    web_free(w);
    /* the same content gives the same ETag: a restart keeps caches valid */
    web_root *w2 = web_load(dir, err, sizeof(err));
    web_file g;
    assert_int_equal(web_find(w2, "/app.js", 7, 0, &g), WEB_FOUND);
    assert_string_equal(g.etag, etag);
    web_free(w2);
    assert_null(web_load("/nonexistent/parley-web", err, sizeof(err)));
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
