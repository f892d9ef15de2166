/* Unit tests for redaction: a table of (paths, document, expected output)
 * covering remove and mask at every depth, arrays, wildcards, missing paths
 * (byte-identical), paths through scalars, escaped and case-folded keys;
 * then large documents, invalid input, and every output parsed by jansson. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hooks/redact.h"
#include "util/mem.h"
#include "util/status.h"

/* Rules are written as one string: "PATH" removes, "=PATH" masks, ';'
 * between them. */
static redaction *compile(const char *spec)
{
    cfg_redact rules[CFG_MAX_REDACT];
    char *copy = strdup(spec), *save = NULL;
    size_t n = 0;
    for (char *t = strtok_r(copy, ";", &save); t; t = strtok_r(NULL, ";", &save), n++) {
        rules[n].mask = *t == '=';
        rules[n].path = t + (*t == '=');
    }
    redaction *r = NULL;
    assert_int_equal(redact_new(rules, n, &r), PL_OK);
    free(copy);
    return r;
}

static void assert_valid_json(const char *s, size_t n)
{
    json_error_t e;
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j) fail_msg("not JSON (%s): %.*s", e.text, (int)n, s);
    json_decref(j);
}

typedef struct row {
    const char *rules;
    const char *in;   /* the pub object: {"data":..., "headers":...} */
    const char *want; /* NULL: the same bytes as in */
} row;

static const row rows[] = {
    /* top level of data, remove and mask */
    {"data.ssn", "{\"data\":{\"ssn\":\"123\",\"name\":\"x\"}}", "{\"data\":{\"name\":\"x\"}}"},
    {"data.name", "{\"data\":{\"ssn\":\"123\",\"name\":\"x\"}}", "{\"data\":{\"ssn\":\"123\"}}"},
    {"=data.ssn", "{\"data\":{\"ssn\":\"123\",\"name\":\"x\"}}",
     "{\"data\":{\"ssn\":\"***\",\"name\":\"x\"}}"},
    /* masking hides type too */
    {"=data.n;=data.o", "{\"data\":{\"n\":42,\"o\":{\"a\":[1]}}}",
     "{\"data\":{\"n\":\"***\",\"o\":\"***\"}}"},
    /* the only member; every member */
    {"data.a", "{\"data\":{\"a\":1}}", "{\"data\":{}}"},
    {"data.*", "{\"data\": { \"a\" : 1 , \"b\" : 2 } }", "{\"data\": {  } }"},
    /* whitespace around kept members survives */
    {"data.b", "{ \"data\" : { \"a\" : 1 ,\n \"b\" : 2 ,\n \"c\" : 3 } }",
     "{ \"data\" : { \"a\" : 1 ,\n \"c\" : 3 } }"},
    /* nested */
    {"=data.card.number", "{\"data\":{\"card\":{\"number\":\"4111\",\"exp\":\"12/29\"},\"x\":1}}",
     "{\"data\":{\"card\":{\"number\":\"***\",\"exp\":\"12/29\"},\"x\":1}}"},
    {"data.card.number", "{\"data\":{\"card\":{\"exp\":\"1\",\"number\":\"4111\"}}}",
     "{\"data\":{\"card\":{\"exp\":\"1\"}}}"},
    /* arrays: one index, every index, a key inside every element */
    {"data.items.0.token", "{\"data\":{\"items\":[{\"token\":\"t\",\"q\":1},{\"token\":\"u\"}]}}",
     "{\"data\":{\"items\":[{\"q\":1},{\"token\":\"u\"}]}}"},
    {"data.items.1", "{\"data\":{\"items\":[1,2,3]}}", "{\"data\":{\"items\":[1,3]}}"},
    {"data.items.0", "{\"data\":{\"items\":[1,2,3]}}", "{\"data\":{\"items\":[2,3]}}"},
    {"data.items.2", "{\"data\":{\"items\":[1,2,3]}}", "{\"data\":{\"items\":[1,2]}}"},
    {"=data.items.*", "{\"data\":{\"items\":[1,[2],3]}}",
     "{\"data\":{\"items\":[\"***\",\"***\",\"***\"]}}"},
    {"data.users.*.email",
     "{\"data\":{\"users\":[{\"id\":1,\"email\":\"a@x\"},{\"email\":\"b@x\",\"id\":2},{\"id\":3}]}"
     "}",
     "{\"data\":{\"users\":[{\"id\":1},{\"id\":2},{\"id\":3}]}}"},
    {"data.users.*.email", "{\"data\":{\"users\":{\"al\":{\"email\":1},\"bo\":{\"email\":2}}}}",
     "{\"data\":{\"users\":{\"al\":{},\"bo\":{}}}}"},
    /* an index segment is also an object key; not an index for "01" */
    {"data.m.0", "{\"data\":{\"m\":{\"0\":1,\"1\":2}}}", "{\"data\":{\"m\":{\"1\":2}}}"},
    {"data.items.01", "{\"data\":{\"items\":[1,2]}}", NULL},
    /* data itself an array */
    {"data.0.k", "{\"data\":[{\"k\":1,\"j\":2},{\"k\":3}]}", "{\"data\":[{\"j\":2},{\"k\":3}]}"},
    /* paths not present: byte-identical */
    {"data.nope", "{\"data\":{\"a\":1, \"b\" :[ 1 , 2 ]}}", NULL},
    {"data.a.b.c", "{\"data\":{\"a\":{\"x\":{}}}}", NULL},
    {"data.items.9", "{\"data\":{\"items\":[1,2]}}", NULL},
    {"data.a", "{\"data\":7}", NULL},
    {"data.a", "{\"other\":{\"a\":1}}", NULL},
    /* through a non-object: no match */
    {"data.a.b", "{\"data\":{\"a\":\"string\"}}", NULL},
    {"data.a.b", "{\"data\":{\"a\":[{\"b\":1}]}}", NULL},
    {"data.a.0", "{\"data\":{\"a\":{\"b\":1}}}", NULL},
    /* escaped keys compare unescaped */
    {"data.ab", "{\"data\":{\"a\\u0062\":1,\"c\":2}}", "{\"data\":{\"c\":2}}"},
    {"data.caf\xc3\xa9", "{\"data\":{\"caf\\u00e9\":1,\"caf\xc3\xa9\":2,\"x\":3}}",
     "{\"data\":{\"x\":3}}"},
    {"data.\xe2\x98\x83.k", "{\"data\":{\"\xe2\x98\x83\":{\"k\":1,\"j\":2}}}",
     "{\"data\":{\"\xe2\x98\x83\":{\"j\":2}}}"},
    {"data.a\"b", "{\"data\":{\"a\\\"b\":1}}", "{\"data\":{}}"},
    /* data keys are case-sensitive; header names are not */
    {"data.ssn", "{\"data\":{\"SSN\":1}}", NULL},
    {"headers.authorization", "{\"headers\":{\"Authorization\":\"Bearer x\",\"x-a\":\"1\"}}",
     "{\"headers\":{\"x-a\":\"1\"}}"},
    {"=headers.AUTHORIZATION", "{\"headers\":{\"authorization\":\"Bearer x\"}}",
     "{\"headers\":{\"authorization\":\"***\"}}"},
    /* every duplicate of a key */
    {"data.k", "{\"data\":{\"k\":1,\"k\":2,\"j\":3}}", "{\"data\":{\"j\":3}}"},
    /* remove wins over mask; several paths at once */
    {"=data.k;data.k", "{\"data\":{\"k\":1}}", "{\"data\":{}}"},
    {"data.a;=data.b.c;headers.h", "{\"data\":{\"a\":1,\"b\":{\"c\":2}},\"headers\":{\"h\":\"v\"}}",
     "{\"data\":{\"b\":{\"c\":\"***\"}},\"headers\":{}}"},
    /* a wildcard and a deeper path on the same member */
    {"data.*.x;=data.a", "{\"data\":{\"a\":{\"x\":1},\"b\":{\"x\":2,\"y\":3}}}",
     "{\"data\":{\"a\":\"***\",\"b\":{\"y\":3}}}"},
    /* surrounding whitespace */
    {"data.a", " \n{\"data\":{\"a\":1}}\n ", " \n{\"data\":{}}\n "},
};

static void the_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row *t = &rows[i];
        redaction *r = compile(t->rules);
        sbuf o;
        sbuf_init(&o);
        int rc = redact_apply(r, t->in, strlen(t->in), &o);
        const char *want = t->want ? t->want : t->in;
        if (rc != PL_OK || o.len != strlen(want) || memcmp(o.data, want, o.len))
            fail_msg("row %zu (%s): rc %d\n got  %.*s\n want %s", i, t->rules, rc, (int)o.len,
                     o.data ? o.data : "", want);
        assert_valid_json(o.data, o.len);
        sbuf_release(&o);
        redact_free(r);
    }
}

/* redact_member: the value alone, only the paths under its root. */
static void member_values(void **state)
{
    (void)state;
    redaction *r = compile("data.a;=headers.h;=data.b.0");
    sbuf o;
    sbuf_init(&o);
    const char *data = "{\"a\":1,\"b\":[\"x\",\"y\"],\"h\":2}";
    assert_int_equal(redact_member(r, "data", data, strlen(data), &o), PL_OK);
    assert_string_equal(o.data, "{\"b\":[\"***\",\"y\"],\"h\":2}");
    sbuf_reset(&o);
    const char *hdr = "{\"h\":\"v\",\"a\":\"w\"}";
    assert_int_equal(redact_member(r, "headers", hdr, strlen(hdr), &o), PL_OK);
    assert_string_equal(o.data, "{\"h\":\"***\",\"a\":\"w\"}");
    sbuf_reset(&o);
    /* scalar data: nothing to match, copied */
    assert_int_equal(redact_member(r, "data", "\"s\"", 3, &o), PL_OK);
    assert_string_equal(o.data, "\"s\"");
    sbuf_reset(&o);
    /* no redaction: verbatim */
    assert_int_equal(redact_member(NULL, "data", data, strlen(data), &o), PL_OK);
    assert_string_equal(o.data, data);
    sbuf_release(&o);
    redact_free(r);
}

static void invalid_input_appends_nothing(void **state)
{
    (void)state;
    redaction *r = compile("data.a");
    sbuf o;
    sbuf_init(&o);
    sbuf_puts(&o, "keep");
    static const char *bad[] = {"", "{", "{\"data\":{\"a\":1}} {}", "[1,]", "{\"a\":01}", "nul"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(redact_apply(r, bad[i], strlen(bad[i]), &o), PL_EINVAL);
        assert_string_equal(o.data, "keep");
    }
    sbuf_release(&o);
    redact_free(r);
}

static void compile_errors(void **state)
{
    (void)state;
    redaction *r = (redaction *)1;
    assert_int_equal(redact_new(NULL, 0, &r), PL_OK);
    assert_null(r);
    static const char *bad[] = {"data", "body.x", "data..x", "data.x.", "", "headers"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg_redact rules[2] = {{"data.ok", false}, {(char *)bad[i], true}};
        assert_int_equal(redact_new(rules, 2, &r), PL_EINVAL);
        assert_null(r);
    }
    cfg_redact many[CFG_MAX_REDACT + 1];
    for (size_t i = 0; i <= CFG_MAX_REDACT; i++)
        many[i] = (cfg_redact){"data.x", false};
    assert_int_equal(redact_new(many, CFG_MAX_REDACT + 1, &r), PL_EINVAL);
    assert_int_equal(redact_new(many, CFG_MAX_REDACT, &r), PL_OK);
    redact_free(r);
    redact_free(NULL);
    /* allocation failures leak nothing (checked under ASan) */
    for (long k = 0; k < 6; k++) {
        pl_mem_fail_after(k);
        int rc = redact_new(many, 4, &r);
        pl_mem_fail_after(-1);
        if (rc == PL_OK)
            redact_free(r);
        else
            assert_int_equal(rc, PL_ENOMEM);
    }
}

/* 20,000 users, every second one with a secret; deep nesting below. */
static void large_documents(void **state)
{
    (void)state;
    sbuf in, want, out;
    sbuf_init(&in);
    sbuf_init(&want);
    sbuf_init(&out);
    sbuf_puts(&in, "{\"data\":{\"users\":[");
    sbuf_puts(&want, "{\"data\":{\"users\":[");
    for (int i = 0; i < 20000; i++) {
        sbuf_printf(&in, "%s{\"id\":%d%s,\"tags\":[1,2,{\"x\":\"y\"}]}", i ? "," : "", i,
                    i % 2 ? ",\"secret\":\"s3cr3t\"" : "");
        sbuf_printf(&want, "%s{\"id\":%d%s,\"tags\":[1,2,{\"x\":\"y\"}]}", i ? "," : "", i,
                    i % 2 ? ",\"secret\":\"***\"" : "");
    }
    sbuf_puts(&in, "]}}");
    sbuf_puts(&want, "]}}");
    redaction *r = compile("=data.users.*.secret");
    assert_int_equal(redact_apply(r, in.data, in.len, &out), PL_OK);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);
    assert_valid_json(out.data, out.len);
    redact_free(r);

    /* 2,000 levels deep: the walk goes 16 segments down (element 0 of the
     * 14th array is removed with the 1,986 levels inside it); the rest is
     * copied as spans */
    sbuf_reset(&in);
    sbuf_reset(&out);
    sbuf_puts(&in, "{\"data\":{\"a\":");
    for (int i = 0; i < 2000; i++)
        sbuf_puts(&in, "[");
    for (int i = 0; i < 2000; i++)
        sbuf_puts(&in, "]");
    sbuf_puts(&in, ",\"b\":1}}");
    r = compile("data.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0");
    assert_int_equal(redact_apply(r, in.data, in.len, &out), PL_OK);
    assert_valid_json(out.data, out.len);
    assert_int_equal(out.len, in.len - 2 * (2000 - 14));
    redact_free(r);
    sbuf_release(&in);
    sbuf_release(&want);
    sbuf_release(&out);
}

/* Whatever the rules, a valid input gives valid JSON: every row's input
 * against every row's rules. */
static void output_always_valid(void **state)
{
    (void)state;
    size_t n = sizeof(rows) / sizeof(rows[0]);
    for (size_t i = 0; i < n; i++) {
        redaction *r = compile(rows[i].rules);
        for (size_t j = 0; j < n; j++) {
            sbuf o;
            sbuf_init(&o);
            assert_int_equal(redact_apply(r, rows[j].in, strlen(rows[j].in), &o), PL_OK);
            assert_valid_json(o.data, o.len);
            sbuf_release(&o);
        }
        redact_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_table),
        cmocka_unit_test(member_values),
        cmocka_unit_test(invalid_input_appends_nothing),
        cmocka_unit_test(compile_errors),
        cmocka_unit_test(large_documents),
        cmocka_unit_test(output_always_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
