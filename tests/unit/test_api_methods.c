/* Holds the server API's method table (proto/api.c) to what surrounds it:
 * every method has a unique name and a scope of the vocabulary (or is admin
 * only), docs/api.md documents exactly the table's methods under the same
 * scopes, and a black-box test in tests/integration calls every method. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "source_file.h"

#include <glob.h>

#include "config/vocab.h"
#include "proto/api.h"

#ifndef PARLEY_SOURCE_DIR
#error "PARLEY_SOURCE_DIR must name the source tree (CMakeLists.txt sets it)"
#endif

#define MAX_DOC 128
#define NAME_CAP 64

/* A method as docs/api.md names it; scope NULL = admin key only. */
typedef struct doc_method {
    char name[NAME_CAP];
    char scope[NAME_CAP];
    int admin;
} doc_method;

typedef struct doc {
    doc_method rows[MAX_DOC]; /* the Scopes table */
    size_t nrows;
    char headings[MAX_DOC][NAME_CAP]; /* ### headings of the method sections */
    size_t nheadings;
} doc;

/* ---- reading the tree ----------------------------------------------------- */

/* Copies [p, p+n) without surrounding blanks into out. */
static void copy_trimmed(char *out, const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
        n--;
    if (n >= NAME_CAP) fail_msg("name too long in docs/api.md: %.*s", (int)n, p);
    memcpy(out, p, n);
    out[n] = '\0';
}

/* The scope a Scopes table row names in its first cell: "`history`" is
 * history, "`*` only" is "*", "admin key only" is admin. */
static void parse_scope_cell(const char *cell, char scope[NAME_CAP], int *admin)
{
    size_t n = strlen(cell);
    *admin = 0;
    if (!strcmp(cell, "admin key only"))
        *admin = 1;
    else if (!strcmp(cell, "`*` only"))
        strcpy(scope, "*");
    else if (n > 2 && cell[0] == '`' && cell[n - 1] == '`' && !memchr(cell + 1, '`', n - 2))
        copy_trimmed(scope, cell + 1, n - 2);
    else
        fail_msg("docs/api.md Scopes table: unreadable scope cell '%s'", cell);
}

/* One row "| scope | `m1`, `m2` |" of the Scopes table into d->rows. */
static void parse_scope_row(doc *d, const char *line, size_t len)
{
    const char *bar1 = memchr(line + 1, '|', len - 1);
    const char *bar2 = bar1 ? memchr(bar1 + 1, '|', (size_t)(line + len - bar1 - 1)) : NULL;
    if (!bar2) fail_msg("docs/api.md Scopes table: a row needs two cells: %.*s", (int)len, line);
    char cell[NAME_CAP], scope[NAME_CAP];
    int admin;
    copy_trimmed(cell, line + 1, (size_t)(bar1 - line - 1));
    parse_scope_cell(cell, scope, &admin);
    for (const char *p = bar1 + 1; p < bar2; p++) {
        if (*p != '`') continue;
        const char *end = memchr(p + 1, '`', (size_t)(bar2 - p - 1));
        if (!end) fail_msg("docs/api.md Scopes table: unclosed ` in %.*s", (int)len, line);
        assert_true(d->nrows < MAX_DOC);
        doc_method *m = &d->rows[d->nrows++];
        copy_trimmed(m->name, p + 1, (size_t)(end - p - 1));
        memcpy(m->scope, scope, sizeof(scope));
        m->admin = admin;
        p = end;
    }
}

/* The Scopes table: the lines starting with '|' right after "## Scopes"
 * and its prose, header and separator skipped. A blank line ends it. */
static void parse_scopes_table(doc *d, const char *text)
{
    const char *p = strstr(text, "\n## Scopes\n");
    if (!p) fail_msg("docs/api.md has no \"## Scopes\" section");
    p = strchr(p + 1, '\n') + 1;
    while (*p && *p != '|' && strncmp(p, "## ", 3))
        p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p);
    int line_no = 0;
    while (*p == '|') {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (line_no == 1 && strncmp(p, "|---", 4))
            fail_msg("docs/api.md Scopes table: second line must be the separator");
        if (line_no++ >= 2) parse_scope_row(d, p, len);
        p += len + (eol != NULL);
    }
    if (d->nrows == 0) fail_msg("docs/api.md Scopes table has no rows");
}

/* Every "### a, b" heading inside a "## ... methods ..." section. */
static void parse_headings(doc *d, const char *text)
{
    int in_methods = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (!strncmp(p, "## ", 3)) {
            char title[256];
            snprintf(title, sizeof(title), "%.*s", (int)len, p);
            in_methods = strstr(title, "methods") != NULL;
        } else if (in_methods && !strncmp(p, "### ", 4)) {
            const char *q = p + 4, *end = p + len;
            while (q < end) {
                const char *comma = memchr(q, ',', (size_t)(end - q));
                const char *stop = comma ? comma : end;
                assert_true(d->nheadings < MAX_DOC);
                char *name = d->headings[d->nheadings++];
                copy_trimmed(name, q, (size_t)(stop - q));
                q = stop + 1;
            }
        }
        p += len + (eol != NULL);
    }
}

static void read_doc(doc *d)
{
    memset(d, 0, sizeof(*d));
    char *text = source_slurp(PARLEY_SOURCE_DIR "/docs/api.md");
    parse_scopes_table(d, text);
    parse_headings(d, text);
    free(text);
}

/* ---- the table ------------------------------------------------------------ */

/* The row index of name in the method table, or -1. */
static long code_index(const char *name)
{
    const char *n;
    for (size_t i = 0; api_method_at(i, &n, NULL) == 0; i++)
        if (!strcmp(n, name)) return (long)i;
    return -1;
}

static void test_rows_complete(void **state)
{
    size_t count = api_method_count();
    assert_true(count > 0);
    const char *name, *scope;
    assert_int_equal(api_method_at(count, &name, &scope), -1);
    int bad = 0;
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(api_method_at(i, &name, &scope), 0);
        assert_non_null(name);
        if (!name[0] || code_index(name) != (long)i) {
            print_error("method '%s' (row %zu) is empty or not unique\n", name, i);
            bad++;
        }
        if (scope && !vocab_scope_known(scope)) {
            print_error("method '%s' needs scope '%s', which is not in the vocabulary\n", name,
                        scope);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* ---- the docs ------------------------------------------------------------- */

/* 0 if the table's method i is in the Scopes table once, with its scope. */
static int check_documented_scope(const doc *d, const char *name, const char *scope)
{
    int seen = 0, bad = 0;
    for (size_t r = 0; r < d->nrows; r++) {
        const doc_method *m = &d->rows[r];
        if (strcmp(m->name, name)) continue;
        seen++;
        if (m->admin != !scope || (scope && strcmp(m->scope, scope))) {
            print_error("docs/api.md Scopes table: '%s' is under '%s', the code says '%s'\n", name,
                        m->admin ? "admin key only" : m->scope, scope ? scope : "admin key only");
            bad++;
        }
    }
    if (seen != 1) {
        print_error("docs/api.md Scopes table names '%s' %d times (must be once)\n", name, seen);
        bad++;
    }
    return bad;
}

static void test_docs_match_table(void **state)
{
    doc *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    read_doc(d);
    int bad = 0;
    const char *name, *scope;
    for (size_t i = 0; api_method_at(i, &name, &scope) == 0; i++) {
        bad += check_documented_scope(d, name, scope);
        int heading = 0;
        for (size_t h = 0; h < d->nheadings; h++)
            heading |= !strcmp(d->headings[h], name);
        if (!heading) {
            print_error("docs/api.md has no \"### \" heading for method '%s'\n", name);
            bad++;
        }
    }
    for (size_t r = 0; r < d->nrows; r++)
        if (code_index(d->rows[r].name) < 0) {
            print_error("docs/api.md Scopes table names '%s', which is no method\n",
                        d->rows[r].name);
            bad++;
        }
    for (size_t h = 0; h < d->nheadings; h++)
        if (code_index(d->headings[h]) < 0) {
            print_error("docs/api.md has a heading for '%s', which is no method\n", d->headings[h]);
            bad++;
        }
    free(d);
    assert_int_equal(bad, 0);
}

/* ---- the black-box tests -------------------------------------------------- */

static int ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.';
}

static const char *skip_blanks_back(const char *start, const char *p)
{
    while (p > start && strchr(" \t\r\n", p[-1]))
        p--;
    return p;
}

/* 1 if the string literal opening at q (its '"') is the method argument of
 * an API call: the second argument of api(...), api_error(...) or
 * api_raw(...), or the one after server when such a function is handed on,
 * as in asyncio.to_thread(api, server, "publish", ...). */
static int is_api_call_arg(const char *start, const char *q)
{
    const char *p = skip_blanks_back(start, q);
    if (p == start || p[-1] != ',') return 0;
    p--; /* the comma after the server argument; walk back over that argument */
    while (p > start && !strchr(",()", p[-1]))
        p--;
    if (p == start) return 0;
    p = skip_blanks_back(start, p - 1);
    static const char *const fns[] = {"api_error", "api_raw", "api"};
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        size_t n = strlen(fns[i]);
        if ((size_t)(p - start) >= n && !memcmp(p - n, fns[i], n) &&
            (p - n == start || !ident_char(p[-(long)n - 1])))
            return 1;
    }
    return 0;
}

/* 1 if text calls the API method name somewhere. */
static int calls_method(const char *text, const char *name)
{
    char quoted[NAME_CAP + 2];
    snprintf(quoted, sizeof(quoted), "\"%s\"", name);
    for (const char *q = strstr(text, quoted); q; q = strstr(q + 1, quoted))
        if (is_api_call_arg(text, q)) return 1;
    return 0;
}

static void test_every_method_has_a_black_box_test(void **state)
{
    glob_t g;
    assert_int_equal(glob(PARLEY_SOURCE_DIR "/tests/integration/*.py", 0, NULL, &g), 0);
    char **texts = calloc(g.gl_pathc, sizeof(char *));
    assert_non_null(texts);
    for (size_t f = 0; f < g.gl_pathc; f++)
        texts[f] = source_slurp(g.gl_pathv[f]);
    int bad = 0;
    const char *name;
    for (size_t i = 0; api_method_at(i, &name, NULL) == 0; i++) {
        int called = 0;
        for (size_t f = 0; f < g.gl_pathc && !called; f++)
            called = calls_method(texts[f], name);
        if (!called) {
            print_error("no test in tests/integration calls API method '%s'\n", name);
            bad++;
        }
    }
    for (size_t f = 0; f < g.gl_pathc; f++)
        free(texts[f]);
    free(texts);
    globfree(&g);
    assert_int_equal(bad, 0);
}

/* The call matcher itself: only the method argument of an API call counts. */
static void test_call_matcher(void **state)
{
    assert_true(calls_method("api(srv, \"info\", {})", "info"));
    assert_true(calls_method("api_error(\n    srv,\n    \"info\")", "info"));
    assert_true(calls_method("to_thread(api_raw, s, \"info\", b)", "info"));
    assert_false(calls_method("cl.call(\"info\", {})", "info"));
    assert_false(calls_method("api(srv, \"publish\", {\"info\": 1})", "info"));
    assert_false(calls_method("my_api(srv, \"info\")", "info"));
    assert_false(calls_method("api(\"info\")", "info"));
    assert_false(calls_method("\"info\"", "info"));
    assert_false(calls_method("api(srv, \"infos\")", "info"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_complete),
        cmocka_unit_test(test_docs_match_table),
        cmocka_unit_test(test_call_matcher),
        cmocka_unit_test(test_every_method_has_a_black_box_test),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
