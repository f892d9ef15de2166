/* Unit tests for obs/audit: records round-trip and chain across reopen;
 * edits, deletions, reorderings, insertions (naive and forged), truncation
 * and every single-byte flip are each reported at the right line and seq;
 * a broken file is refused for appending; bad input, write failures, lock
 * conflicts, concurrent appenders and allocation failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "obs/audit.h"
#include "util/mem.h"
#include "util/status.h"

#define TS 1700000000000LL

/* ---- fixture: a fresh directory per test --------------------------------- */

struct fx {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/parley-audit-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof(f->path), "%s/audit.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static audit_event event(const char *actor, const char *action, const char *details)
{
    audit_event ev = {.ts_ms = TS,
                      .actor = actor,
                      .action = action,
                      .tenant = "acme",
                      .target = "key-1",
                      .correlation_id = "corr-1",
                      .details = details,
                      .details_len = details ? strlen(details) : 0};
    return ev;
}

/* Writes n records to a new log at path. */
static void make_log(const char *path, int n)
{
    audit_report r;
    audit_log *log = audit_open(path, &r);
    assert_non_null(log);
    char actor[32], details[64];
    for (int i = 1; i <= n; i++) {
        snprintf(actor, sizeof(actor), "user-%d", i);
        snprintf(details, sizeof(details), "{\"n\": %d}", i);
        audit_event ev = event(actor, "keys.revoke", details);
        uint64_t seq = 0;
        assert_int_equal(audit_append(log, &ev, &seq), 0);
        assert_int_equal(seq, (uint64_t)i);
    }
    audit_close(log);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void spit(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Splits a file into at most 64 lines (each without its newline). */
struct lines {
    char *buf;
    char *line[64];
    size_t n;
};

static void read_lines(const char *path, struct lines *l)
{
    size_t len;
    l->buf = slurp(path, &len);
    l->n = 0;
    for (char *p = l->buf, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        l->line[l->n++] = p;
    }
}

/* Writes lines in the given order (indexes into l, -1 = the extra line). */
static void write_lines(const char *path, const struct lines *l, const int *order, size_t n,
                        const char *extra)
{
    FILE *f = fopen(path, "wb");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", order[i] < 0 ? extra : l->line[order[i]]);
    fclose(f);
}

static void expect_bad(const char *path, uint64_t line, uint64_t seq, const char *why_part)
{
    audit_report r;
    assert_int_equal(audit_verify(path, &r), -1);
    if (r.bad_line != line || r.bad_seq != seq || !strstr(r.why, why_part))
        fail_msg("got line %llu seq %llu: %s", (unsigned long long)r.bad_line,
                 (unsigned long long)r.bad_seq, r.why);
    assert_int_equal(r.records, line - 1);
    /* The writer refuses such a file and leaves it as it is. */
    size_t before, after;
    free(slurp(path, &before));
    audit_report r2;
    assert_null(audit_open(path, &r2));
    assert_int_equal(r2.bad_line, line);
    free(slurp(path, &after));
    assert_int_equal(before, after);
}

static void sha_hex(const char *s, size_t n, char out[65])
{
    uint8_t d[32];
    SHA256((const unsigned char *)s, n, d);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

/* Recomputes a line's own hash member after an edit, as a forger would. */
static char *rehash(const char *line)
{
    char *copy = strdup(line);
    char *h = strstr(copy, ",\"hash\":\"");
    char hex[65];
    sha_hex(copy, (size_t)(h - copy), hex);
    memcpy(h + 9, hex, 64);
    return copy;
}

/* ---- round trip ---------------------------------------------------------- */

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    make_log(f->path, 3);
    audit_report r;
    assert_int_equal(audit_verify(f->path, &r), 0);
    assert_int_equal(r.records, 3);

    struct lines l;
    read_lines(f->path, &l);
    assert_int_equal(l.n, 3);
    json_error_t err;
    json_t *o = json_loads(l.line[0], 0, &err);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 1);
    assert_int_equal(json_integer_value(json_object_get(o, "ts")), TS);
    assert_string_equal(json_string_value(json_object_get(o, "actor")), "user-1");
    assert_string_equal(json_string_value(json_object_get(o, "action")), "keys.revoke");
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(o, "target")), "key-1");
    assert_string_equal(json_string_value(json_object_get(o, "correlation_id")), "corr-1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "details"), "n")), 1);
    char zeros[65];
    memset(zeros, '0', 64);
    zeros[64] = '\0';
    assert_string_equal(json_string_value(json_object_get(o, "prev")), zeros);
    json_decref(o);
    /* Details are stored compactly. */
    assert_non_null(strstr(l.line[1], "\"details\":{\"n\":2}"));
    /* prev is the SHA-256 of the previous line. */
    o = json_loads(l.line[1], 0, &err);
    char hex[65];
    sha_hex(l.line[0], strlen(l.line[0]), hex);
    assert_string_equal(json_string_value(json_object_get(o, "prev")), hex);
    json_decref(o);
    free(l.buf);

    /* Reopening continues the chain. */
    audit_log *log = audit_open(f->path, &r);
    assert_non_null(log);
    assert_int_equal(r.records, 3);
    assert_int_equal(audit_count(log), 3);
    audit_event ev = event("admin", "tenants.create", NULL);
    ev.ts_ms = 0; /* now */
    uint64_t seq;
    assert_int_equal(audit_append(log, &ev, &seq), 0);
    assert_int_equal(seq, 4);
    audit_close(log);
    assert_int_equal(audit_verify(f->path, &r), 0);
    assert_int_equal(r.records, 4);
    read_lines(f->path, &l);
    assert_non_null(strstr(l.line[3], "\"details\":{}"));
    free(l.buf);
}

static void test_hostile_strings(void **state)
{
    struct fx *f = *state;
    audit_log *log = audit_open(f->path, NULL);
    assert_non_null(log);
    audit_event ev = event("a\"b\\c\nd\te\x01", "dlq.purge",
                           "{\n  \"filter\": {\"user\": \"x\\ny\"},\n  \"all\" : true }");
    ev.tenant = "t\xff\xfe";                /* invalid UTF-8 */
    ev.target = "\xed\xa0\x80-\xc0\xaf";    /* a surrogate and an overlong */
    ev.correlation_id = "\xf0\x9f\x98\x80"; /* a valid 4-byte sequence */
    assert_int_equal(audit_append(log, &ev, NULL), 0);
    audit_close(log);
    audit_report r;
    assert_int_equal(audit_verify(f->path, &r), 0);
    struct lines l;
    read_lines(f->path, &l);
    assert_int_equal(l.n, 1); /* the newline in a field did not split the record */
    json_error_t err;
    json_t *o = json_loads(l.line[0], 0, &err);
    assert_string_equal(json_string_value(json_object_get(o, "actor")), "a\"b\\c\nd\te\x01");
    assert_string_equal(json_string_value(json_object_get(o, "tenant")),
                        "t\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(json_string_value(json_object_get(o, "correlation_id")),
                        "\xf0\x9f\x98\x80");
    json_t *d = json_object_get(o, "details");
    assert_true(json_is_true(json_object_get(d, "all")));
    json_decref(o);
    free(l.buf);
}

static void test_bad_input(void **state)
{
    struct fx *f = *state;
    audit_log *log = audit_open(f->path, NULL);
    const char *bad[] = {"[1,2]", "\"str\"", "{", "{\"a\":1}{", "nope", "{\"a\":1,\"a\":2}", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        audit_event ev = event("admin", "dlq.purge", bad[i]);
        assert_int_equal(audit_append(log, &ev, NULL), PL_EINVAL);
    }
    char *big = malloc(AUDIT_MAX_DETAILS + 64);
    memset(big, ' ', AUDIT_MAX_DETAILS + 63);
    memcpy(big, "{}", 2);
    big[AUDIT_MAX_DETAILS + 63] = '\0';
    audit_event ev = event("admin", "dlq.purge", big);
    assert_int_equal(audit_append(log, &ev, NULL), PL_EINVAL);
    free(big);
    char *longf = malloc(AUDIT_MAX_FIELD + 2);
    memset(longf, 'x', AUDIT_MAX_FIELD + 1);
    longf[AUDIT_MAX_FIELD + 1] = '\0';
    ev = event(longf, "x", NULL);
    assert_int_equal(audit_append(log, &ev, NULL), PL_EINVAL);
    longf[AUDIT_MAX_FIELD] = '\0'; /* exactly at the limit is fine */
    ev = event(longf, "x", NULL);
    assert_int_equal(audit_append(log, &ev, NULL), 0);
    free(longf);
    assert_int_equal(audit_count(log), 1);
    audit_close(log);
    audit_report r;
    assert_int_equal(audit_verify(f->path, &r), 0);
    assert_int_equal(r.records, 1);
}

/* ---- tampering ----------------------------------------------------------- */

static void test_edit(void **state)
{
    struct fx *f = *state;
    make_log(f->path, 5);
    struct lines l;
    read_lines(f->path, &l);
    char *p = strstr(l.line[2], "user-3");
    p[5] = '9';
    int order[] = {0, 1, 2, 3, 4};
    write_lines(f->path, &l, order, 5, NULL);
    expect_bad(f->path, 3, 3, "hash mismatch");
    /* A forger who also fixes that record's hash is caught by the next. */
    char *forged = rehash(l.line[2]);
    l.line[2] = forged;
    write_lines(f->path, &l, order, 5, NULL);
    expect_bad(f->path, 4, 4, "prev does not match");
    free(forged);
    free(l.buf);
}

static void test_edit_seq_and_ts(void **state)
{
    struct fx *f = *state;
    make_log(f->path, 3);
    struct lines l;
    read_lines(f->path, &l);
    char *p = strstr(l.line[1], "\"ts\":");
    p[6] = p[6] == '9' ? '8' : '9';
    int order[] = {0, 1, 2};
    write_lines(f->path, &l, order, 3, NULL);
    expect_bad(f->path, 2, 2, "hash mismatch");
    free(l.buf);
}

static void test_delete(void **state)
{
    struct fx *f = *state;
    make_log(f->path, 5);
    struct lines l;
    read_lines(f->path, &l);
    int order[] = {0, 1, 3, 4};
    write_lines(f->path, &l, order, 4, NULL);
    expect_bad(f->path, 3, 4, "deleted");
    int first[] = {1, 2, 3, 4};
    write_lines(f->path, &l, first, 4, NULL);
    expect_bad(f->path, 1, 2, "deleted");
    free(l.buf);
}

static void test_reorder(void **state)
{
    struct fx *f = *state;
    make_log(f->path, 5);
    struct lines l;
    read_lines(f->path, &l);
    int order[] = {0, 1, 3, 2, 4};
    write_lines(f->path, &l, order, 5, NULL);
    expect_bad(f->path, 3, 4, "reordered");
    free(l.buf);
}

static void test_insert(void **state)
{
    struct fx *f = *state;
    make_log(f->path, 4);
    struct lines l;
    read_lines(f->path, &l);
    /* A copy of an earlier record. */
    int dup[] = {0, 1, 2, 1, 3};
    write_lines(f->path, &l, dup, 5, NULL);
    expect_bad(f->path, 4, 2, "inserted");
    /* A made-up line. */
    int junk[] = {0, -1, 1, 2, 3};
    write_lines(f->path, &l, junk, 5, "{\"seq\":2,\"note\":\"trust me\"}");
    expect_bad(f->path, 2, 2, "malformed");
    /* A well-forged record 3 (right seq, prev and hash) slipped in before
     * the real record 3: the real one no longer fits the chain. */
    char prev[65];
    sha_hex(l.line[1], strlen(l.line[1]), prev);
    char line[512];
    snprintf(
        line, sizeof(line),
        "{\"seq\":3,\"ts\":1,\"actor\":\"x\",\"action\":\"y\",\"tenant\":\"t\",\"target\":\"\","
        "\"correlation_id\":\"\",\"details\":{},\"prev\":\"%s\",\"hash\":\"%064d\"}",
        prev, 0);
    char *forged = rehash(line);
    int ins[] = {0, 1, -1, 2, 3};
    write_lines(f->path, &l, ins, 5, forged);
    expect_bad(f->path, 4, 3, "inserted");
    free(forged);
    free(l.buf);
}

static void test_truncate(void **state)
{
    struct fx *f = *state;
    make_log(f->path, 5);
    size_t len;
    char *data = slurp(f->path, &len);
    /* A torn last line. */
    spit(f->path, data, len - 20);
    expect_bad(f->path, 5, 5, "no newline");
    /* Only the newline missing. */
    spit(f->path, data, len - 1);
    expect_bad(f->path, 5, 5, "no newline");
    /* Line 3 cut short in the middle of the file. */
    struct lines l;
    read_lines(f->path, &l);
    l.line[2][strlen(l.line[2]) / 2] = '\0';
    int order[] = {0, 1, 2, 3};
    write_lines(f->path, &l, order, 4, NULL);
    expect_bad(f->path, 3, 3, "garbled");
    /* Whole records cut off at the end are not detectable (documented). */
    spit(f->path, data, (size_t)(strchr(data, '\n') - data) + 1);
    audit_report r;
    assert_int_equal(audit_verify(f->path, &r), 0);
    assert_int_equal(r.records, 1);
    free(l.buf);
    free(data);
}

/* Property: flipping any single bit 0 of any byte is reported at the line
 * holding that byte. */
static void test_every_byte_flip(void **state)
{
    struct fx *f = *state;
    make_log(f->path, 3);
    size_t len;
    char *data = slurp(f->path, &len);
    char *copy = malloc(len);
    uint64_t line = 1;
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, data, len);
        copy[i] ^= 1;
        audit_report r;
        assert_int_equal(audit_verify_mem(copy, len, &r), -1);
        if (r.bad_line != line)
            fail_msg("byte %zu: line %llu, want %llu: %s", i, (unsigned long long)r.bad_line,
                     (unsigned long long)line, r.why);
        if (data[i] == '\n') line++;
    }
    free(copy);
    free(data);
}

static void test_garbage_files(void **state)
{
    audit_report r;
    assert_int_equal(audit_verify_mem("", 0, &r), 0);
    assert_int_equal(r.records, 0);
    static const struct {
        const char *data;
        uint64_t line;
        size_t len; /* 0 = strlen */
    } cases[] = {
        {"\n", 1, 0},
        {"{}\n", 1, 0},
        {"null\n", 1, 0},
        {"[1]\n", 1, 0},
        {"\x00\x01\x02\n", 1, 4},
        {"{\"seq\":1}", 1, 0},
        {"{\"seq\":-1,\"ts\":1,\"actor\":\"\",\"action\":\"\",\"tenant\":\"\",\"target\":\"\","
         "\"correlation_id\":\"\",\"details\":{},\"prev\":\"0\",\"hash\":\"0\"}\n",
         1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].data);
        assert_int_equal(audit_verify_mem(cases[i].data, len, &r), -1);
        assert_int_equal(r.bad_line, cases[i].line);
        assert_int_equal(r.bad_seq, 1);
    }
    assert_int_equal(audit_verify_mem("\n", 1, NULL), -1);
    assert_int_equal(audit_verify("/nonexistent/audit.log", &r), -1);
    assert_int_equal(r.bad_line, 0);
    assert_non_null(strstr(r.why, "cannot open"));
}

static void test_overlong_line(void **state)
{
    size_t n = AUDIT_MAX_LINE + 2;
    char *data = malloc(n);
    memset(data, 'x', n);
    data[n - 1] = '\n';
    audit_report r;
    assert_int_equal(audit_verify_mem(data, n, &r), -1);
    assert_non_null(strstr(r.why, "longer"));
    free(data);
}

/* ---- operation ----------------------------------------------------------- */

static void test_lock_and_cli(void **state)
{
    struct fx *f = *state;
    audit_log *log = audit_open(f->path, NULL);
    assert_non_null(log);
    audit_report r;
    assert_null(audit_open(f->path, &r));
    assert_non_null(strstr(r.why, "locked"));
    audit_event ev = event("admin", "disconnect", "{\"user\":\"bob\"}");
    assert_int_equal(audit_append(log, &ev, NULL), 0);
    audit_close(log);

    char *ok[] = {"verify", f->path};
    assert_int_equal(audit_verify_main(2, ok), 0);
    char *usage[] = {"verify"};
    assert_int_equal(audit_verify_main(1, usage), 2);
    spit(f->path, "garbage\n", 8);
    assert_int_equal(audit_verify_main(2, ok), 1);
}

static void test_write_failure(void **state)
{
    /* /dev/full: every write fails with ENOSPC and cannot be truncated. */
    audit_log *log = audit_open("/dev/full", NULL);
    if (!log) skip();
    audit_event ev = event("admin", "dlq.purge", NULL);
    assert_int_equal(audit_append(log, &ev, NULL), PL_EIO);
    assert_int_equal(audit_append(log, &ev, NULL), PL_EIO);
    assert_int_equal(audit_count(log), 0);
    audit_close(log);
}

struct writer {
    audit_log *log;
    int id;
};

static void *append_many(void *arg)
{
    struct writer *w = arg;
    char actor[16];
    snprintf(actor, sizeof(actor), "t%d", w->id);
    for (int i = 0; i < 50; i++) {
        audit_event ev = event(actor, "publish", "{\"i\":1}");
        if (audit_append(w->log, &ev, NULL)) return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct fx *f = *state;
    audit_log *log = audit_open(f->path, NULL);
    pthread_t th[8];
    struct writer w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (struct writer){log, i};
        pthread_create(&th[i], NULL, append_many, &w[i]);
    }
    for (int i = 0; i < 8; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    assert_int_equal(audit_count(log), 400);
    audit_close(log);
    audit_report r;
    assert_int_equal(audit_verify(f->path, &r), 0);
    assert_int_equal(r.records, 400);
}

static void test_oom(void **state)
{
    struct fx *f = *state;
    pl_mem_fail_after(0);
    assert_null(audit_open(f->path, NULL));
    pl_mem_fail_after(-1);
    audit_log *log = audit_open(f->path, NULL);
    audit_event ev = event("admin", "tenants.update", "{\"max_connections\":10}");
    int rc = PL_ENOMEM;
    for (long n = 0; rc == PL_ENOMEM && n < 100; n++) {
        pl_mem_fail_after(n);
        rc = audit_append(log, &ev, NULL);
        pl_mem_fail_after(-1);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(audit_count(log), 1);
    audit_close(log);
    audit_report r;
    assert_int_equal(audit_verify(f->path, &r), 0);
    assert_int_equal(r.records, 1);
}

/* Expected audit_tail text: the given lines (1-based), comma-joined. */
static void expect_tail(audit_log *log, const struct lines *l, uint64_t before, uint32_t limit,
                        const int *want, size_t nwant, uint64_t want_next)
{
    sbuf o, e;
    sbuf_init(&o);
    sbuf_init(&e);
    for (size_t i = 0; i < nwant; i++) {
        if (i) sbuf_putc(&e, ',');
        size_t k = (size_t)want[i] - 1;
        if (k < l->n) sbuf_puts(&e, l->line[k]);
    }
    uint64_t next = 99;
    assert_int_equal(audit_tail(log, before, limit, &o, &next), PL_OK);
    assert_int_equal(next, want_next);
    assert_int_equal(o.len, e.len);
    if (e.len) assert_memory_equal(o.data, e.data, e.len);
    sbuf_release(&o);
    sbuf_release(&e);
}

/* The API's reads of a live log: pages newest first, and the chain check
 * of what was written, which sees an edit made behind the log's back but
 * not a line still being written. */
static void test_tail_and_verify_log(void **state)
{
    struct fx *f = *state;
    audit_log *log = audit_open(f->path, NULL);
    assert_non_null(log);
    uint64_t next = 99;
    sbuf o;
    sbuf_init(&o);
    assert_int_equal(audit_tail(log, 0, 10, &o, &next), PL_OK);
    assert_int_equal(o.len, 0);
    assert_int_equal(next, 0);
    audit_report r;
    assert_int_equal(audit_verify_log(log, &r), 0);
    assert_int_equal(r.records, 0);
    audit_close(log);

    make_log(f->path, 5);
    log = audit_open(f->path, NULL);
    assert_non_null(log);
    struct lines l;
    read_lines(f->path, &l);
    assert_int_equal(l.n, 5);
    expect_tail(log, &l, 0, 10, (int[]){5, 4, 3, 2, 1}, 5, 0);
    expect_tail(log, &l, 0, 2, (int[]){5, 4}, 2, 4);
    expect_tail(log, &l, 4, 2, (int[]){3, 2}, 2, 2);
    expect_tail(log, &l, 2, 2, (int[]){1}, 1, 0);
    expect_tail(log, &l, 1, 2, NULL, 0, 0);
    assert_int_equal(audit_verify_log(log, &r), 0);
    assert_int_equal(r.records, 5);

    /* A line being written past the last append is not read. */
    int fd = open(f->path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"seq\":6", 8), 8);
    assert_int_equal(audit_verify_log(log, &r), 0);
    expect_tail(log, &l, 0, 1, (int[]){5}, 1, 5);

    /* An edit in place is found; a line that is no JSON shows as corrupt. */
    size_t at = 0; /* where line 3 starts (read_lines cut the lines with NULs) */
    for (int nl = 0; nl < 2; at++)
        nl += l.buf[at] == '\0';
    close(fd);
    fd = open(f->path, O_WRONLY); /* not O_APPEND: pwrite would append */
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "#", 1, (off_t)at), 1);
    close(fd);
    assert_int_equal(audit_verify_log(log, &r), -1);
    assert_int_equal(r.bad_line, 3);
    assert_int_equal(r.bad_seq, 3);
    assert_int_equal(r.records, 2);
    sbuf_init(&o);
    assert_int_equal(audit_tail(log, 4, 1, &o, &next), PL_OK);
    assert_non_null(o.data);
    const char *want = "{\"corrupt\":\"#\\\"seq\\\":3,";
    assert_int_equal(strncmp(o.data, want, strlen(want)), 0);
    assert_int_equal(next, 3); /* the next page begins with record 2 */
    sbuf_release(&o);
    audit_close(log);
    free(l.buf);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_roundtrip),
        T(test_hostile_strings),
        T(test_bad_input),
        T(test_edit),
        T(test_edit_seq_and_ts),
        T(test_delete),
        T(test_reorder),
        T(test_insert),
        T(test_truncate),
        T(test_every_byte_flip),
        T(test_garbage_files),
        T(test_overlong_line),
        T(test_lock_and_cli),
        T(test_write_failure),
        T(test_threads),
        T(test_oom),
        T(test_tail_and_verify_log),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
