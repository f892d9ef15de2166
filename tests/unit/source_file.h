/* Reading a file of the source tree from a unit test (the docs a test
 * checks against the code). Include after <cmocka.h>. */
#ifndef PL_TEST_SOURCE_FILE_H
#define PL_TEST_SOURCE_FILE_H

#include <stdio.h>
#include <stdlib.h>

/* The whole file at path, NUL-terminated; the caller frees it. Fails the
 * test when it cannot be read. */
static inline char *source_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

#endif
