/* Holds docs/troubleshooting.md to util/errors.h: every error code (1xx) and
 * close code (4xxx) of the tables has its own heading or table row, once,
 * and no heading or row names a code the tables do not have. The page is
 * where a newcomer looks first; a code added or removed in the tables must
 * show up there too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "source_file.h"

#include "util/errors.h"

#ifndef PARLEY_SOURCE_DIR
#error "PARLEY_SOURCE_DIR must name the source tree (CMakeLists.txt sets it)"
#endif

#define MAX_CODES 64

/* Every code of both tables, in table order. */
#define CODE_OF_ERROR(name, code, msg, temp, http) (code),
#define CODE_OF_CLOSE(name, code, reason, reconnect) (code),
static const int table_codes[] = {PROTO_ERROR_MAP(CODE_OF_ERROR) PROTO_CLOSE_MAP(CODE_OF_CLOSE)};
#undef CODE_OF_ERROR
#undef CODE_OF_CLOSE
#define NCODES (sizeof(table_codes) / sizeof(table_codes[0]))

static int in_table(long code)
{
    for (size_t i = 0; i < NCODES; i++)
        if (table_codes[i] == code) return 1;
    return 0;
}

/* The number a line names as a code: a heading whose text starts with a
 * number ("### 101 unauthorized") or a table row whose first cell is one
 * ("| 4500 | ..."), possibly in backticks. -1 for any other line. */
static long line_code(const char *line, size_t len)
{
    const char *p = line, *end = line + len;
    if (p < end && *p == '#') {
        while (p < end && *p == '#')
            p++;
    } else if (p < end && *p == '|') {
        p++;
    } else {
        return -1;
    }
    while (p < end && (*p == ' ' || *p == '`'))
        p++;
    if (p == end || *p < '0' || *p > '9') return -1;
    long code = 0;
    while (p < end && *p >= '0' && *p <= '9' && code < 100000)
        code = code * 10 + (*p++ - '0');
    /* "101 unauthorized", "| 101 |", "`101`": the number stands alone. */
    if (p < end && *p != ' ' && *p != '`' && *p != '|') return -1;
    return code;
}

/* Checks text against the tables. 0 when it agrees; else writes what is
 * wrong into why and returns -1. */
static int check_page(const char *text, char *why, size_t whylen)
{
    int seen[NCODES] = {0};
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        long code = line_code(line, len);
        if (code >= 0) {
            if (!in_table(code)) {
                snprintf(why, whylen, "%ld is documented but is not in util/errors.h", code);
                return -1;
            }
            for (size_t i = 0; i < NCODES; i++)
                if (table_codes[i] == code && seen[i]++) {
                    snprintf(why, whylen, "%ld is documented twice", code);
                    return -1;
                }
        }
        line = nl ? nl + 1 : line + len;
    }
    for (size_t i = 0; i < NCODES; i++)
        if (!seen[i]) {
            snprintf(why, whylen, "%d has no heading or table row", table_codes[i]);
            return -1;
        }
    return 0;
}

/* A page built from the tables themselves, one heading per code. */
static char *page_of_all_codes(void)
{
    size_t cap = NCODES * 32 + 64, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    n += (size_t)snprintf(s + n, cap - n, "# Troubleshooting\n\n");
    for (size_t i = 0; i < NCODES; i++)
        n += (size_t)snprintf(s + n, cap - n, "### %d something\n\ntext\n", table_codes[i]);
    return s;
}

static void test_the_page_names_every_code_once_and_no_other(void **state)
{
    (void)state;
    char *text = source_slurp(PARLEY_SOURCE_DIR "/docs/troubleshooting.md");
    char why[128] = "";
    if (check_page(text, why, sizeof(why))) fail_msg("docs/troubleshooting.md: %s", why);
    free(text);
}

static void test_the_check_accepts_headings_and_rows(void **state)
{
    (void)state;
    char why[128] = "";
    char *s = page_of_all_codes();
    assert_int_equal(check_page(s, why, sizeof(why)), 0);
    /* A table row stands for a heading; numbers inside prose are not codes. */
    char *p = strstr(s, "### 4504 something");
    assert_non_null(p);
    memcpy(p, "| `4504` | x |     ", strlen("### 4504 something"));
    assert_int_equal(check_page(s, why, sizeof(why)), 0);
    free(s);
    assert_int_equal(line_code("HTTP 429 with 111 in prose", strlen("HTTP 429 with 111 in prose")),
                     -1);
    assert_int_equal(line_code("## 1xx codes", strlen("## 1xx codes")), -1);
    assert_int_equal(line_code("| 4003 | no pong |", strlen("| 4003 | no pong |")), 4003);
}

static void test_the_check_refuses_a_missing_an_extra_and_a_twice_named_code(void **state)
{
    (void)state;
    char why[128] = "";
    char *s = page_of_all_codes();
    char *p = strstr(s, "### 109 something");
    assert_non_null(p);
    p[0] = 'x'; /* no longer a heading */
    assert_int_equal(check_page(s, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "109 has no heading"));
    free(s);

    s = page_of_all_codes();
    size_t n = strlen(s);
    char *more = realloc(s, n + 32);
    assert_non_null(more);
    strcpy(more + n, "### 110 not a code\n");
    assert_int_equal(check_page(more, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "110 is documented but"));
    strcpy(more + n, "| 4001 | again |\n");
    assert_int_equal(check_page(more, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "4001 is documented twice"));
    free(more);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_page_names_every_code_once_and_no_other),
        cmocka_unit_test(test_the_check_accepts_headings_and_rows),
        cmocka_unit_test(test_the_check_refuses_a_missing_an_extra_and_a_twice_named_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
